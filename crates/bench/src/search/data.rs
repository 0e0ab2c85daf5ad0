//! The synthetic data set: resource instances like real AWS, Google and Azure states, from a
//! deterministic generator (the same every run), and the version writes that carry them.

use statehouse_core::clock::Timestamp;
use statehouse_core::crypto::SealedBody;
use statehouse_core::model::VersionWrite;
use statehouse_core::service::new_id;
use statehouse_core::store::search::VersionResources;
use statehouse_core::tfstate::{IdentifyingAttributes, IndexKey, IndexedResource, Mode};

/// A small, fast, deterministic generator (xorshift64*): the data set is the same every run.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Skewed towards 0, like real type popularity.
    fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((u * u * u) * n as f64) as usize
    }
    pub(super) fn hex(&mut self, len: usize) -> String {
        let mut s = format!("{:016x}{:016x}", self.next(), self.next());
        s.truncate(len);
        s
    }
}

pub(super) const AWS: &str = "provider[\"registry.terraform.io/hashicorp/aws\"]";
const GOOGLE: &str = "provider[\"registry.terraform.io/hashicorp/google\"]";
const AZURE: &str = "provider[\"registry.terraform.io/hashicorp/azurerm\"]";
const ACCOUNT: &str = "123456789012";

/// (type, id prefix, ARN service/resource, has a name attribute)
const AWS_TYPES: &[(&str, &str, &str, bool)] = &[
    (
        "aws_instance",
        "i-",
        "ec2:eu-west-1:123456789012:instance/",
        false,
    ),
    ("aws_security_group_rule", "sgrule-", "", false),
    ("aws_iam_role_policy_attachment", "", "", false),
    ("aws_route53_record", "", "", true),
    (
        "aws_security_group",
        "sg-",
        "ec2:eu-west-1:123456789012:security-group/",
        true,
    ),
    ("aws_iam_role", "", "iam::123456789012:role/", true),
    ("aws_s3_bucket", "", "s3:::", false),
    ("aws_iam_policy", "", "iam::123456789012:policy/", true),
    (
        "aws_lambda_function",
        "",
        "lambda:eu-west-1:123456789012:function:",
        false,
    ),
    (
        "aws_subnet",
        "subnet-",
        "ec2:eu-west-1:123456789012:subnet/",
        false,
    ),
    (
        "aws_route_table",
        "rtb-",
        "ec2:eu-west-1:123456789012:route-table/",
        false,
    ),
    (
        "aws_cloudwatch_log_group",
        "",
        "logs:eu-west-1:123456789012:log-group:",
        true,
    ),
    (
        "aws_ecs_service",
        "",
        "ecs:eu-west-1:123456789012:service/",
        true,
    ),
    (
        "aws_db_instance",
        "db-",
        "rds:eu-west-1:123456789012:db:",
        true,
    ),
    ("aws_kms_key", "", "kms:eu-west-1:123456789012:key/", false),
    (
        "aws_sqs_queue",
        "https://sqs.eu-west-1.amazonaws.com/123456789012/",
        "sqs:eu-west-1:123456789012:",
        true,
    ),
    ("aws_sns_topic", "", "sns:eu-west-1:123456789012:", true),
    ("aws_vpc", "vpc-", "ec2:eu-west-1:123456789012:vpc/", false),
    (
        "aws_lb",
        "",
        "elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/",
        true,
    ),
    ("aws_eip", "eipalloc-", "", false),
];
const GOOGLE_TYPES: &[&str] = &[
    "google_compute_instance",
    "google_storage_bucket",
    "google_project_iam_member",
    "google_compute_firewall",
    "google_service_account",
];
const AZURE_TYPES: &[&str] = &[
    "azurerm_resource_group",
    "azurerm_virtual_machine",
    "azurerm_storage_account",
    "azurerm_network_interface",
];
const DATA_TYPES: &[(&str, &str)] = &[
    ("aws_ami", AWS),
    ("aws_caller_identity", AWS),
    ("aws_iam_policy_document", AWS),
    (
        "terraform_remote_state",
        "provider[\"terraform.io/builtin/terraform\"]",
    ),
];
const NAMES: &[&str] = &[
    "this", "main", "web", "api", "worker", "db", "cache", "queue", "logs", "assets", "public",
    "private", "internal", "edge", "admin", "backup", "metrics", "events", "auth", "search",
];
pub(super) const MODULES: &[&str] = &[
    "network",
    "app",
    "database",
    "monitoring",
    "iam",
    "dns",
    "cdn",
    "storage",
    "queue",
    "cluster",
    "bastion",
    "vpn",
    "logging",
    "secrets",
    "registry",
];
const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa",
];

pub(super) fn instance(rng: &mut Rng, state_no: usize, ordinal: usize) -> IndexedResource {
    let module = match rng.below(10) {
        0..=3 => String::new(),
        4..=6 => format!("module.{}", MODULES[rng.skewed(MODULES.len())]),
        7 | 8 => format!(
            "module.{}[\"{}\"]",
            MODULES[rng.skewed(MODULES.len())],
            WORDS[rng.below(WORDS.len())]
        ),
        _ => format!(
            "module.{}.module.{}[{}]",
            MODULES[rng.skewed(MODULES.len())],
            MODULES[rng.below(MODULES.len())],
            rng.below(3)
        ),
    };
    let env = ["prod", "staging", "dev"][state_no % 3];
    let word = WORDS[rng.below(WORDS.len())];
    let label = format!("{env}-{word}-{state_no}-{ordinal}");
    let mut ids = IdentifyingAttributes::default();
    let (mode, resource_type, provider) = match rng.below(100) {
        0..=9 => {
            let (t, p) = DATA_TYPES[rng.skewed(DATA_TYPES.len())];
            ids.id = Some(if t == "aws_ami" {
                format!("ami-{}", rng.hex(17))
            } else {
                format!("{}", rng.next() % 10_000_000_000)
            });
            (Mode::Data, t.to_owned(), p)
        }
        10..=79 => {
            let (t, id_prefix, arn, named) = AWS_TYPES[rng.skewed(AWS_TYPES.len())];
            let id = if id_prefix.is_empty() {
                label.clone()
            } else if id_prefix.starts_with("https://") {
                format!("{id_prefix}{label}")
            } else {
                format!("{id_prefix}{}", rng.hex(17))
            };
            if !arn.is_empty() {
                let tail = if id.starts_with("https://") {
                    &label
                } else {
                    &id
                };
                ids.arn = Some(format!("arn:aws:{arn}{tail}"));
            }
            if named {
                ids.name = Some(label.clone());
            }
            ids.id = Some(id);
            (Mode::Managed, t.to_owned(), AWS)
        }
        80..=91 => {
            let t = GOOGLE_TYPES[rng.skewed(GOOGLE_TYPES.len())];
            let id = format!("projects/acme-{env}/zones/europe-west1-b/instances/{label}");
            ids.self_link = Some(format!("https://www.googleapis.com/compute/v1/{id}"));
            ids.name = Some(label.clone());
            ids.id = Some(id);
            (Mode::Managed, t.to_owned(), GOOGLE)
        }
        _ => {
            let t = AZURE_TYPES[rng.skewed(AZURE_TYPES.len())];
            ids.id = Some(format!(
                "/subscriptions/{}/resourceGroups/rg-{env}/providers/Microsoft.Compute/{label}",
                ACCOUNT
            ));
            ids.name = Some(label.clone());
            (Mode::Managed, t.to_owned(), AZURE)
        }
    };
    let base = NAMES[rng.skewed(NAMES.len())];
    // Addresses are unique within a state: count, for_each, or a distinct name.
    let (name, key) = match rng.below(10) {
        0..=4 => (base.to_owned(), Some(IndexKey::Int(ordinal as i64))),
        5 | 6 => (
            base.to_owned(),
            Some(IndexKey::Str(format!("{word}-{ordinal}"))),
        ),
        _ => (format!("{base}_{ordinal}"), None),
    };
    IndexedResource {
        address: statehouse_core::tfstate::instance_address(
            Some(&module),
            mode,
            &resource_type,
            &name,
            key.as_ref(),
        ),
        mode,
        resource_type,
        name,
        module,
        provider: provider.to_owned(),
        index_key: key,
        ids,
    }
}

fn sealed() -> SealedBody {
    SealedBody {
        key_id: "bench".into(),
        wrapped_key: vec![0; 40],
        ciphertext: vec![1; 64],
    }
}

pub(super) fn version_write(
    state_id: &str,
    serial: i64,
    resources: Vec<IndexedResource>,
) -> VersionWrite {
    VersionWrite {
        state_id: state_id.to_owned(),
        version_id: new_id(),
        serial,
        lineage: "bench".into(),
        md5: format!("{:032x}", serial),
        size: 64,
        client_version: Some("1.0.3".into()),
        client_encrypted: false,
        sealed: sealed(),
        lock_id: None,
        token_id: "bench".into(),
        author: "bench".into(),
        at: Timestamp(1_700_000_000_000 + serial),
        resources: VersionResources::Indexed(resources.into()),
    }
}
