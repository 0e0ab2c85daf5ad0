//! Valid Terraform v4 state documents of a chosen size, in shapes Terraform 1.0.3 accepts for
//! `terraform state push`.
//!
//! - [`Payload::Resources`]: many managed resources shaped like `aws_instance` entries of a real
//!   state (repeated attribute names, random ids, ARNs, IPs, tags). Compresses about as well as
//!   real states do.
//! - [`Payload::Random`]: a few hundred 64 KiB blobs of pseudo-random letters in outputs and
//!   `null_resource` attributes (the shape of the end-to-end tests). Compresses poorly (≈1.7×):
//!   the worst case for compression time and for memory.

use std::fmt::Write;

use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{Value, json};

pub const LINEAGE: &str = "5e1f7e6a-0000-4000-8000-00000000beef";

/// What a generated state is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Payload {
    /// Many `aws_instance`-like resources (realistic; compresses ~5-10×).
    Resources,
    /// Blobs of pseudo-random letters (worst case; compresses ~1.7×).
    Random,
}

impl Payload {
    pub fn describe(self) -> &'static str {
        match self {
            Payload::Resources => {
                "`resources`: many `aws_instance`-like managed resources (ids, ARNs, IPs, tags), compressing like real states"
            }
            Payload::Random => {
                "`random`: 64 KiB blobs of pseudo-random letters in outputs and `null_resource` attributes, barely compressible (worst case)"
            }
        }
    }
}

/// A xorshift generator: deterministic per salt, cheap.
struct Rng(u64);

impl Rng {
    fn new(salt: &str) -> Rng {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for b in salt.bytes() {
            x = (x ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(x | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn letters(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'a' + (self.next() % 26) as u8))
            .collect()
    }

    fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len);
        while s.len() < len {
            let _ = write!(s, "{:016x}", self.next());
        }
        s.truncate(len);
        s
    }

    fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A state body without its serial, so a sequence of writes with increasing serials can be
/// produced cheaply.
pub struct StateTemplate {
    /// Everything after `"serial":N,` up to and including the closing brace.
    rest: String,
}

impl StateTemplate {
    /// A state of about `size` bytes (never less).
    pub fn new(payload: Payload, size: usize, salt: &str) -> anyhow::Result<StateTemplate> {
        let mut rng = Rng::new(salt);
        let mut outputs = serde_json::Map::new();
        outputs.insert("salt".into(), json!({"value": salt, "type": "string"}));
        let resources = match payload {
            Payload::Random => random_blobs(&mut rng, size, &mut outputs)?,
            Payload::Resources => instances(&mut rng, size, &mut outputs)?,
        };
        let rest = format!(
            "\"lineage\":\"{LINEAGE}\",\"outputs\":{},\"resources\":[{}]}}",
            serde_json::to_string(&outputs)?,
            resources.join(",")
        );
        Ok(StateTemplate { rest })
    }

    /// The full state document with this serial.
    pub fn body(&self, serial: u64) -> Vec<u8> {
        let head = format!("{{\"version\":4,\"terraform_version\":\"1.0.3\",\"serial\":{serial},");
        let mut out = Vec::with_capacity(head.len() + self.rest.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(self.rest.as_bytes());
        out
    }
}

/// Alternating string outputs and `null_resource` instances of 64 KiB of random letters.
fn random_blobs(
    rng: &mut Rng,
    size: usize,
    outputs: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<Vec<String>> {
    let piece = 64 * 1024;
    let mut resources = Vec::new();
    let mut total = 0;
    let mut i = 0;
    while total < size {
        let len = piece.min(size - total).max(16);
        if i % 2 == 0 {
            outputs.insert(
                format!("blob_{i:05}"),
                json!({"value": rng.letters(len), "type": "string"}),
            );
        } else {
            resources.push(serde_json::to_string(&json!({
                "mode": "managed",
                "type": "null_resource",
                "name": format!("r{i:05}"),
                "provider": "provider[\"registry.terraform.io/hashicorp/null\"]",
                "instances": [{
                    "schema_version": 0,
                    "attributes": { "id": format!("{i}"), "triggers": { "data": rng.letters(len) } },
                    "sensitive_attributes": [],
                    "private": "bnVsbA==",
                }],
            }))?);
        }
        total += len + 64;
        i += 1;
    }
    Ok(resources)
}

/// `aws_instance`-like resources until the state reaches `size`.
fn instances(
    rng: &mut Rng,
    size: usize,
    outputs: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<Vec<String>> {
    const ZONES: [&str; 3] = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
    const TYPES: [&str; 4] = ["t3.micro", "t3.small", "m5.large", "c5.xlarge"];
    const TEAMS: [&str; 4] = ["platform", "payments", "search", "data"];
    let mut resources = Vec::new();
    let mut total = 0;
    let mut i = 0u64;
    while total < size {
        let id = format!("i-0{}", rng.hex(16));
        let (a, b) = (rng.below(250) + 1, rng.below(250) + 1);
        let zone = ZONES[(i % 3) as usize];
        let team = TEAMS[rng.below(4) as usize];
        let attributes = json!({
            "ami": format!("ami-0{}", rng.hex(16)),
            "arn": format!("arn:aws:ec2:eu-west-1:123456789012:instance/{id}"),
            "associate_public_ip_address": false,
            "availability_zone": zone,
            "cpu_core_count": 1,
            "cpu_threads_per_core": 2,
            "disable_api_termination": false,
            "ebs_block_device": [],
            "ebs_optimized": false,
            "get_password_data": false,
            "iam_instance_profile": "",
            "id": id,
            "instance_initiated_shutdown_behavior": null,
            "instance_state": "running",
            "instance_type": TYPES[rng.below(4) as usize],
            "key_name": "deploy",
            "metadata_options": [{
                "http_endpoint": "enabled",
                "http_put_response_hop_limit": 1,
                "http_tokens": "required"
            }],
            "monitoring": false,
            "network_interface": [],
            "primary_network_interface_id": format!("eni-0{}", rng.hex(16)),
            "private_dns": format!("ip-10-0-{a}-{b}.eu-west-1.compute.internal"),
            "private_ip": format!("10.0.{a}.{b}"),
            "public_dns": "",
            "public_ip": "",
            "root_block_device": [{
                "delete_on_termination": true,
                "device_name": "/dev/xvda",
                "encrypted": true,
                "iops": 3000,
                "kms_key_id": format!("arn:aws:kms:eu-west-1:123456789012:key/{}", rng.uuid()),
                "tags": {},
                "throughput": 125,
                "volume_id": format!("vol-0{}", rng.hex(16)),
                "volume_size": 8 * (1 + rng.below(8)),
                "volume_type": "gp3"
            }],
            "security_groups": [],
            "source_dest_check": true,
            "subnet_id": format!("subnet-0{}", rng.hex(16)),
            "tags": {"Name": format!("web-{i}"), "env": "prod", "team": team, "managed-by": "terraform"},
            "tags_all": {"Name": format!("web-{i}"), "env": "prod", "team": team, "managed-by": "terraform"},
            "tenancy": "default",
            "timeouts": null,
            "user_data": rng.hex(40),
            "volume_tags": null,
            "vpc_security_group_ids": [format!("sg-0{}", rng.hex(16)), format!("sg-0{}", rng.hex(16))]
        });
        let private = base64::engine::general_purpose::STANDARD.encode(format!(
            "{{\"e2bfb730-ecaa-11e6-8f88-34363bc7c4c0\":{{\"create\":600000000000,\"delete\":1200000000000,\"update\":600000000000}},\"schema_version\":\"1\",\"nonce\":\"{}\"}}",
            rng.hex(16)
        ));
        let text = serde_json::to_string(&json!({
            "mode": "managed",
            "type": "aws_instance",
            "name": format!("web_{i}"),
            "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
            "instances": [{
                "schema_version": 1,
                "attributes": attributes,
                "sensitive_attributes": [],
                "private": private,
                "dependencies": [
                    "aws_security_group.web",
                    format!("aws_subnet.private_{}", i % 3)
                ]
            }]
        }))?;
        total += text.len() + 1;
        resources.push(text);
        if i < 20 {
            outputs.insert(
                format!("web_{i}_ip"),
                json!({"value": format!("10.0.{a}.{b}"), "type": "string"}),
            );
        }
        i += 1;
    }
    Ok(resources)
}

/// The `Content-MD5` header value Terraform sends: base64 of the body's MD5.
pub fn content_md5(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bodies_are_valid_state_json_of_the_asked_size() {
        for payload in [Payload::Random, Payload::Resources] {
            let t = StateTemplate::new(payload, 300_000, "x").unwrap();
            let body = t.body(7);
            assert!(
                body.len() >= 300_000 && body.len() < 310_000,
                "{payload:?}: {}",
                body.len()
            );
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["version"], 4);
            assert_eq!(v["serial"], 7);
            assert_eq!(v["lineage"], LINEAGE);
            assert_eq!(v["outputs"]["salt"]["value"], "x");
            assert!(v["resources"][0]["instances"][0]["attributes"]["id"].is_string());
        }
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }
}
