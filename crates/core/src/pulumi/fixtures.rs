//! Checkpoints as the Pulumi CLI writes them, built for tests: a stack resource with outputs
//! (one secret), the default AWS provider, an S3 bucket, a component with a child whose URN
//! joins the types with `$`, a resource read with `get`, pending operations; minified (CLI ≥
//! 3.238) or indented with 4 spaces (older CLIs), plain, gzip or zstd.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use serde::Serialize;
use serde_json::{Value, json};

use super::secrets::{SECRET_SIG, SIG_KEY};

pub const STACK: &str = "organization/shop/dev";
pub const PROVIDER_ID: &str = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
pub const CIPHERTEXT: &str = "v1:Zm9vYmFyYmF6:CIPHERTEXT-MUST-NOT-SHOW";

pub fn urn(qualified_type: &str, name: &str) -> String {
    format!("urn:pulumi:dev::shop::{qualified_type}::{name}")
}

pub fn stack_urn() -> String {
    urn("pulumi:pulumi:Stack", "shop-dev")
}

pub fn provider_urn() -> String {
    urn("pulumi:providers:aws", "default_6_66_2")
}

pub fn provider_ref() -> String {
    format!("{}::{PROVIDER_ID}", provider_urn())
}

pub fn secret(ciphertext: &str) -> Value {
    json!({ SIG_KEY: SECRET_SIG, "ciphertext": ciphertext })
}

/// The root stack resource with these outputs.
pub fn stack(outputs: Value) -> Value {
    json!({
        "urn": stack_urn(),
        "custom": false,
        "type": "pulumi:pulumi:Stack",
        "outputs": outputs,
        "created": "2024-05-02T09:12:44.125Z",
        "modified": "2024-05-02T09:12:44.125Z"
    })
}

pub fn provider() -> Value {
    json!({
        "urn": provider_urn(),
        "custom": true,
        "id": PROVIDER_ID,
        "type": "pulumi:providers:aws",
        "inputs": {"__internal": {}, "region": "eu-west-1", "skipCredentialsValidation": "false", "version": "6.66.2"},
        "outputs": {"region": "eu-west-1", "skipCredentialsValidation": "false", "version": "6.66.2"},
        "created": "2024-05-02T09:12:45.001Z",
        "modified": "2024-05-02T09:12:45.001Z"
    })
}

/// An `aws:s3/bucket:Bucket` under `parent` (the stack when `None`), qualified type `qtype`.
pub fn bucket(qtype: &str, name: &str, parent: Option<String>, tags: Value) -> Value {
    let id = format!("{name}-4f2a1b3");
    json!({
        "urn": urn(qtype, name),
        "custom": true,
        "id": id,
        "type": "aws:s3/bucket:Bucket",
        "inputs": {"__defaults": ["bucket", "forceDestroy"], "bucket": id, "forceDestroy": false, "tags": tags},
        "outputs": {
            "accelerationStatus": "",
            "arn": format!("arn:aws:s3:::{id}"),
            "bucket": id,
            "bucketDomainName": format!("{id}.s3.amazonaws.com"),
            "id": id,
            "region": "eu-west-1",
            "tags": tags,
            "tagsAll": tags,
            "serverSideEncryptionConfiguration": {"rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}}
        },
        "parent": parent.unwrap_or_else(stack_urn),
        "provider": provider_ref(),
        "propertyDependencies": {"bucket": [], "tags": []},
        "created": "2024-05-02T09:12:50.333Z",
        "modified": "2024-05-02T09:12:50.333Z"
    })
}

/// A component resource (`shop:index:Site`) and its child bucket, whose URN carries the
/// parent type: `shop:index:Site$aws:s3/bucket:Bucket`.
pub fn component_with_child() -> [Value; 2] {
    let site = urn("shop:index:Site", "web");
    [
        json!({
            "urn": site,
            "custom": false,
            "type": "shop:index:Site",
            "outputs": {"url": "https://web.example.com"},
            "parent": stack_urn(),
            "created": "2024-05-02T09:12:46.000Z",
            "modified": "2024-05-02T09:12:46.000Z"
        }),
        bucket(
            "shop:index:Site$aws:s3/bucket:Bucket",
            "web-content",
            Some(site),
            json!({"site": "web"}),
        ),
    ]
}

/// A random password whose `result` is a secret.
pub fn password(ciphertext: &str) -> Value {
    json!({
        "urn": urn("random:index/randomPassword:RandomPassword", "db"),
        "custom": true,
        "id": "none",
        "type": "random:index/randomPassword:RandomPassword",
        "inputs": {"length": 24, "special": true},
        "outputs": {"length": 24, "result": secret(ciphertext), "special": true},
        "parent": stack_urn(),
        "provider": format!("{}::a1b2c3", urn("pulumi:providers:random", "default_4_16_0")),
        "additionalSecretOutputs": ["bcryptHash"]
    })
}

/// A VPC read with `aws.ec2.Vpc.get`: not managed by the stack.
pub fn read_vpc() -> Value {
    json!({
        "urn": urn("aws:ec2/vpc:Vpc", "shared"),
        "custom": true,
        "external": true,
        "id": "vpc-0a1b2c3d",
        "type": "aws:ec2/vpc:Vpc",
        "inputs": {},
        "outputs": {"arn": "arn:aws:ec2:eu-west-1:123456789012:vpc/vpc-0a1b2c3d", "cidrBlock": "10.0.0.0/16", "id": "vpc-0a1b2c3d"},
        "parent": stack_urn(),
        "provider": provider_ref()
    })
}

/// A checkpoint document with its keys in the order the CLI writes them (a `Value` map
/// would sort them).
#[derive(Serialize)]
pub struct Document {
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<&'static str>>,
    pub checkpoint: Value,
}

/// A checkpoint document being built.
pub struct Checkpoint {
    pub version: u64,
    pub resources: Vec<Value>,
    pub pending: Vec<Value>,
    /// `false`: no `latest` at all, as `pulumi stack init` writes.
    pub deployed: bool,
}

impl Checkpoint {
    pub fn new(version: u64) -> Self {
        Checkpoint {
            version,
            resources: Vec::new(),
            pending: Vec::new(),
            deployed: true,
        }
    }

    /// What `pulumi stack init` saves.
    pub fn initialized() -> Self {
        Checkpoint {
            version: 0,
            resources: Vec::new(),
            pending: Vec::new(),
            deployed: false,
        }
    }

    /// The usual stack: outputs with a secret, provider, bucket, component with child,
    /// password, a read VPC.
    pub fn typical(version: u64) -> Self {
        let [site, child] = component_with_child();
        Checkpoint::new(version)
            .with(stack(json!({
                "bucketName": "assets-4f2a1b3",
                "endpoints": {"web": "https://web.example.com", "apiKey": secret(CIPHERTEXT)},
                "dbPassword": secret(CIPHERTEXT)
            })))
            .with(provider())
            .with(bucket(
                "aws:s3/bucket:Bucket",
                "assets",
                None,
                json!({"env": "dev"}),
            ))
            .with(site)
            .with(child)
            .with(password(CIPHERTEXT))
            .with(read_vpc())
    }

    pub fn with(mut self, resource: Value) -> Self {
        self.resources.push(resource);
        self
    }

    /// An operation left pending on `resource` (`creating`, `updating`, `deleting`).
    pub fn pending(mut self, resource: Value, kind: &str) -> Self {
        self.pending
            .push(json!({"resource": resource, "type": kind}));
        self
    }

    /// The document in the CLI's key order: `version`, `features`, `checkpoint`.
    pub fn document(&self) -> Document {
        if !self.deployed {
            return Document {
                version: self.version,
                features: None,
                checkpoint: json!({"stack": STACK}),
            };
        }
        Document {
            version: self.version,
            features: (self.version >= 4).then(|| vec!["refreshBeforeUpdate"]),
            checkpoint: json!({
                "stack": STACK,
                "config": {"aws:region": "eu-west-1", "shop:dbPassword": secret(CIPHERTEXT)},
                "latest": {
                    "manifest": {"time": "2024-05-02T09:12:51.12Z", "magic": "4c0fd2c8b0a8e2c2", "version": "v3.142.0",
                        "plugins": [{"name": "aws", "path": "/home/u/.pulumi/plugins/resource-aws-v6.66.2", "type": "resource", "version": "6.66.2"}]},
                    "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:pSq0bJ5sXxk=:v1:KdSNxVsnPyGgzw1a:T1yPYkJZ"}},
                    "resources": self.resources,
                    "pending_operations": self.pending,
                    "metadata": {}
                }
            }),
        }
    }

    /// As CLIs since 3.238 write it.
    pub fn minified(&self) -> Vec<u8> {
        serde_json::to_vec(&self.document()).unwrap()
    }

    /// As older CLIs write it: indented with 4 spaces.
    pub fn indented(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        self.document().serialize(&mut serializer).unwrap();
        out
    }

    pub fn gzip(&self) -> Vec<u8> {
        gzip(&self.minified())
    }

    pub fn zstd(&self) -> Vec<u8> {
        zstd::encode_all(&self.minified()[..], 3).unwrap()
    }
}

pub fn gzip(text: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text).unwrap();
    encoder.finish().unwrap()
}
