//! Section 3, resource search: seeds 10,000 states holding 1,000,000 resource instances in
//! total straight through the store (`Store::write_version`, the write path's own index
//! update), then measures `Services::search_resources` — what `GET /api/v1/search/resources`
//! runs — for a mix of exact and prefix searches by several fields. Baseline: the very same
//! SQL against a copy of the index table without its indexes (a scan per query).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use std::collections::BTreeMap;

use statehouse_core::access::{Grants, Principal, Role};
use statehouse_core::clock::{SystemClock, Timestamp};
use statehouse_core::crypto::{Cipher, Keyring, MasterKey, SealedBody};
use statehouse_core::model::{VersionWrite, Workspace, WorkspaceSettings};
use statehouse_core::search::ResourceQuery;
use statehouse_core::service::{Services, new_id};
use statehouse_core::store::Store;
use statehouse_core::store::search::{
    FieldMatch, MatchMode, ResourceSearch, SearchField, VersionResources,
};
use statehouse_core::tfstate::{IdentifyingAttributes, IndexKey, IndexedResource, Mode};
use statehouse_store_postgres::PgSettings;
use statehouse_store_sql::search::search_query;
use statehouse_store_sql::{Arg, Dialect};

use crate::pg;
use crate::server::Store as StoreKind;
use crate::stats::Summary;

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub states: usize,
    pub instances: usize,
    pub workspaces: usize,
    /// Timed searches per query kind.
    pub samples: usize,
    /// Timed baseline runs per query kind (each scans the whole table).
    pub baseline_samples: usize,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                states: 1_000,
                instances: 100_000,
                workspaces: 20,
                samples: 20,
                baseline_samples: 1,
            }
        } else {
            Plan {
                states: 10_000,
                instances: 1_000_000,
                workspaces: 20,
                samples: 100,
                baseline_samples: 3,
            }
        }
    }
}

pub struct KindResult {
    pub label: String,
    pub all: Summary,
    pub scoped: Summary,
    pub baseline: Option<Summary>,
    /// Results of the first sample (how much the query matches, up to a page).
    pub hits: usize,
}

pub struct StoreResult {
    pub store: &'static str,
    pub states: usize,
    pub instances: usize,
    pub seed_time: Duration,
    pub mix_all: Summary,
    pub mix_scoped: Summary,
    pub baseline_mix: Option<Summary>,
    pub kinds: Vec<KindResult>,
    /// A 5,000-instance state: first write (rows inserted) and a rewrite with 10 changes.
    pub big_first_write: Duration,
    pub big_rewrite: Duration,
}

/// A small, fast, deterministic generator (xorshift64*): the data set is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Skewed towards 0, like real type popularity.
    fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((u * u * u) * n as f64) as usize
    }
    fn hex(&mut self, len: usize) -> String {
        let mut s = format!("{:016x}{:016x}", self.next(), self.next());
        s.truncate(len);
        s
    }
}

const AWS: &str = "provider[\"registry.terraform.io/hashicorp/aws\"]";
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
const MODULES: &[&str] = &[
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

fn instance(rng: &mut Rng, state_no: usize, ordinal: usize) -> IndexedResource {
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

fn version_write(state_id: &str, serial: i64, resources: Vec<IndexedResource>) -> VersionWrite {
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
        resources: VersionResources::Indexed(resources),
    }
}

/// How many instances state `i` of `n` holds: 50 to 150 (100 on average), scaled to the plan.
fn instances_of(i: usize, plan: &Plan) -> usize {
    let mean = plan.instances / plan.states;
    mean / 2 + (i * 37) % (mean + 1)
}

/// Values drawn from the seeded data, for the searches.
#[derive(Default)]
struct Samples {
    ids: Vec<String>,
    arns: Vec<String>,
    names: Vec<String>,
    types: Vec<String>,
    resource_names: Vec<String>,
}

/// `checkpoint`: SQLite only. Back-to-back seeding never pauses, so the server's checkpointer
/// (which resets the WAL at pauses) would let the WAL grow by gigabytes; the seeder resets it
/// every 100 states instead.
async fn seed(
    store: Arc<dyn Store>,
    plan: &Plan,
    writers: usize,
    checkpoint: Option<sqlx::SqlitePool>,
) -> Result<(Vec<Workspace>, Samples, usize)> {
    let mut workspaces = Vec::new();
    for w in 0..plan.workspaces {
        let ws = Workspace {
            id: new_id(),
            name: format!("team-{w:02}"),
            serial_protection: true,
            created_at: Timestamp(1_700_000_000_000),
            settings: WorkspaceSettings::DEFAULT,
        };
        store.create_workspace(&ws).await?;
        workspaces.push(ws);
    }
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = store.clone();
        let workspaces = workspaces.clone();
        let checkpoint = checkpoint.clone();
        let (states, per) = (plan.states, *plan);
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut total = 0usize;
            for i in (writer..states).step_by(writers) {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
                let ws = &workspaces[i % workspaces.len()];
                let name = format!("env/svc-{i:05}");
                let record = store
                    .ensure_state(&ws.id, &name, Timestamp(1_700_000_000_000))
                    .await?;
                let resources: Vec<IndexedResource> = (0..instances_of(i, &per))
                    .map(|j| instance(&mut rng, i, j))
                    .collect();
                total += resources.len();
                if i % 50 == 0 {
                    let r = &resources[rng.below(resources.len())];
                    samples.ids.extend(r.ids.id.clone());
                    samples.types.push(r.resource_type.clone());
                    samples.resource_names.push(r.name.clone());
                    if let Some(r) = resources.iter().find(|r| r.ids.arn.is_some()) {
                        samples.arns.extend(r.ids.arn.clone());
                    }
                    if let Some(r) = resources.iter().find(|r| r.ids.name.is_some()) {
                        samples.names.extend(r.ids.name.clone());
                    }
                }
                store
                    .write_version(&ws.id, &name, version_write(&record.id, 1, resources))
                    .await?;
                if let Some(pool) = checkpoint.as_ref().filter(|_| i % 100 == 99) {
                    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                        .execute(pool)
                        .await?;
                }
            }
            anyhow::Ok((samples, total))
        }));
    }
    let mut samples = Samples::default();
    let mut total = 0;
    for task in tasks {
        let (s, n) = task.await??;
        samples.ids.extend(s.ids);
        samples.arns.extend(s.arns);
        samples.names.extend(s.names);
        samples.types.extend(s.types);
        samples.resource_names.extend(s.resource_names);
        total += n;
    }
    Ok((workspaces, samples, total))
}

/// One kind of search, with a value drawn per sample.
struct Kind {
    label: &'static str,
    make: fn(&mut Rng, &Samples) -> ResourceQuery,
}

fn pick(rng: &mut Rng, from: &[String]) -> String {
    if from.is_empty() {
        return "none".into();
    }
    from[rng.below(from.len())].clone()
}

fn prefix_of(s: &str, len: usize) -> String {
    s.chars().take(len).collect()
}

fn kinds() -> Vec<Kind> {
    vec![
        Kind {
            label: "`id` exact",
            make: (|r, s| ResourceQuery {
                id: Some(pick(r, &s.ids)),
                ..Default::default()
            }),
        },
        Kind {
            label: "`id` prefix (6 chars)",
            make: (|r, s| ResourceQuery {
                id: Some(prefix_of(&pick(r, &s.ids), 6)),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            }),
        },
        Kind {
            label: "`arn` exact",
            make: (|r, s| ResourceQuery {
                arn: Some(pick(r, &s.arns)),
                ..Default::default()
            }),
        },
        Kind {
            label: "`arn` prefix (service + account)",
            make: (|r, s| ResourceQuery {
                arn: Some(prefix_of(&pick(r, &s.arns), 30)),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            }),
        },
        Kind {
            label: "`name_attribute` exact",
            make: (|r, s| ResourceQuery {
                name_attribute: Some(pick(r, &s.names)),
                ..Default::default()
            }),
        },
        Kind {
            label: "`q` exact (any attribute)",
            make: (|r, s| ResourceQuery {
                q: Some(pick(r, &s.names)),
                ..Default::default()
            }),
        },
        Kind {
            label: "`q` prefix (any attribute)",
            make: (|r, s| ResourceQuery {
                q: Some(prefix_of(&pick(r, &s.names), 10)),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            }),
        },
        Kind {
            label: "`type` exact",
            make: (|r, s| ResourceQuery {
                resource_type: Some(pick(r, &s.types)),
                ..Default::default()
            }),
        },
        Kind {
            label: "`type` prefix `aws_iam`",
            make: (|_, _| ResourceQuery {
                resource_type: Some("aws_iam".into()),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            }),
        },
        Kind {
            label: "`name` exact",
            make: (|r, s| ResourceQuery {
                name: Some(pick(r, &s.resource_names)),
                ..Default::default()
            }),
        },
        Kind {
            label: "`module` prefix",
            make: (|r, _| ResourceQuery {
                module: Some(format!("module.{}", MODULES[r.below(MODULES.len())])),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            }),
        },
        Kind {
            label: "`provider` exact (aws, 60 % of rows)",
            make: (|_, _| ResourceQuery {
                provider: Some(AWS.into()),
                ..Default::default()
            }),
        },
        Kind {
            label: "`self_link` prefix",
            make: (|_, _| ResourceQuery {
                self_link: Some("https://www.googleapis.com/compute/v1/projects/acme-prod/".into()),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            }),
        },
        Kind {
            label: "`mode=data`",
            make: (|_, _| ResourceQuery {
                mode: Some("data".into()),
                ..Default::default()
            }),
        },
        Kind {
            label: "`type` exact + `module` prefix",
            make: (|r, s| ResourceQuery {
                resource_type: Some(pick(r, &s.types)),
                module: Some(format!("module.{}", MODULES[r.below(MODULES.len())])),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            }),
        },
        Kind {
            label: "`id` exact, no match",
            make: (|r, _| ResourceQuery {
                id: Some(format!("i-missing{}", r.hex(8))),
                ..Default::default()
            }),
        },
    ]
}

/// The store-level search a query becomes (for the baseline SQL).
fn store_search(query: &ResourceQuery, workspace_ids: Vec<String>) -> ResourceSearch {
    let mut matches = Vec::new();
    let mut add = |field, value: &Option<String>| {
        if let Some(v) = value {
            matches.push(FieldMatch {
                field,
                value: v.clone(),
            });
        }
    };
    add(SearchField::Type, &query.resource_type);
    add(SearchField::Name, &query.name);
    add(SearchField::Module, &query.module);
    add(SearchField::Provider, &query.provider);
    add(SearchField::Mode, &query.mode);
    add(SearchField::Id, &query.id);
    add(SearchField::Arn, &query.arn);
    add(SearchField::NameAttribute, &query.name_attribute);
    add(SearchField::SelfLink, &query.self_link);
    add(SearchField::Any, &query.q);
    ResourceSearch::new(workspace_ids, matches, query.match_mode, None, 101)
}

enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Raw {
    async fn execute(&self, sql: &str) -> Result<()> {
        match self {
            Raw::Sqlite(p) => {
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(p)
                    .await?;
            }
            Raw::Postgres(p) => {
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(p)
                    .await?;
            }
        }
        Ok(())
    }

    /// Runs the store's search SQL with the index table swapped for the unindexed copy.
    async fn baseline(&self, search: &ResourceSearch) -> Result<usize> {
        let dialect = match self {
            Raw::Sqlite(_) => Dialect::Sqlite,
            Raw::Postgres(_) => Dialect::Postgres,
        };
        let (sql, binds) = search_query(search, dialect).into_parts();
        let mut sql = sql.replace("FROM resource_index r", "FROM bench_plain_index r");
        // The copy has none of the indexes the SQLite query names.
        while let Some(start) = sql.find(" INDEXED BY ") {
            let end = sql[start + 12..]
                .find(' ')
                .map_or(sql.len(), |e| start + 12 + e);
            sql.replace_range(start..end, "");
        }
        match self {
            Raw::Sqlite(p) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for b in binds {
                    q = match b {
                        Arg::Text(t) => q.bind(t.map(|t| t.into_owned())),
                        Arg::Int(i) => q.bind(i),
                        other => return Err(anyhow!("the search binds no {other:?}")),
                    };
                }
                Ok(q.fetch_all(p).await?.len())
            }
            Raw::Postgres(p) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for b in binds {
                    q = match b {
                        Arg::Text(t) => q.bind(t.map(|t| t.into_owned())),
                        Arg::Int(i) => q.bind(i),
                        other => return Err(anyhow!("the search binds no {other:?}")),
                    };
                }
                Ok(q.fetch_all(p).await?.len())
            }
        }
    }
}

pub async fn run(kind: &StoreKind, plan: &Plan) -> Result<StoreResult> {
    let dir = tempfile::tempdir()?;
    let mut schema = None;
    let (store, raw, writers): (Arc<dyn Store>, Raw, usize) = match kind {
        StoreKind::Sqlite => {
            let path = dir.path().join("search.sqlite");
            let store = statehouse_store_sqlite::open(&path).await?;
            let raw = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
                .await?;
            (Arc::new(store), Raw::Sqlite(raw), 1)
        }
        StoreKind::Postgres(url) => {
            let name = pg::unique_name("bench_search");
            let store = statehouse_store_postgres::connect(&PgSettings {
                url: url.clone(),
                schema: Some(name.clone()),
                ..PgSettings::default()
            })
            .await
            .map_err(|e| anyhow!("{e}"))?;
            schema = Some((url.clone(), name));
            let pool = store.engine().pool().clone();
            (Arc::new(store), Raw::Postgres(pool), 4)
        }
    };
    let result = measure(kind, plan, store, &raw, writers).await;
    if let Some((url, name)) = schema {
        pg::drop_schema(&url, &name);
    }
    result
}

async fn measure(
    kind: &StoreKind,
    plan: &Plan,
    store: Arc<dyn Store>,
    raw: &Raw,
    writers: usize,
) -> Result<StoreResult> {
    eprintln!(
        "  seeding {} states with ~{} instances",
        plan.states, plan.instances
    );
    let started = Instant::now();
    let checkpoint = match raw {
        Raw::Sqlite(pool) => Some(pool.clone()),
        Raw::Postgres(_) => None,
    };
    let (workspaces, samples, instances) = seed(store.clone(), plan, writers, checkpoint).await?;
    let seed_time = started.elapsed();
    eprintln!(
        "  seeded {instances} instances in {:.1} s",
        seed_time.as_secs_f64()
    );
    if let Raw::Postgres(_) = raw {
        // What autovacuum does after a bulk load; the planner needs the statistics.
        raw.execute("ANALYZE").await?;
    }

    // A big state's writes: every row inserted once, then only what changed.
    let ws = &workspaces[0];
    let record = store
        .ensure_state(&ws.id, "big", Timestamp(1_700_000_000_000))
        .await?;
    let mut rng = Rng(42);
    let big: Vec<IndexedResource> = (0..5_000).map(|j| instance(&mut rng, 99_999, j)).collect();
    let started = Instant::now();
    store
        .write_version(&ws.id, "big", version_write(&record.id, 1, big.clone()))
        .await?;
    let big_first_write = started.elapsed();
    let mut changed = big;
    for r in changed.iter_mut().take(10) {
        r.ids.id = Some(format!("changed-{}", rng.hex(8)));
    }
    let started = Instant::now();
    store
        .write_version(&ws.id, "big", version_write(&record.id, 2, changed))
        .await?;
    let big_rewrite = started.elapsed();

    let cipher = Arc::new(Cipher::fixed(Keyring::new(MasterKey::generate())));
    let services = Services::new(store.clone(), cipher, Arc::new(SystemClock));
    let everyone = Principal::local_operator();
    let one_workspace = Principal {
        instance_admin: false,
        grants: Grants::Workspaces(BTreeMap::from([(workspaces[1].id.clone(), Role::Viewer)])),
        ..Principal::local_operator()
    };
    let all_ids: Vec<String> = workspaces.iter().map(|w| w.id.clone()).collect();

    let mut rng = Rng(7);
    let kinds = kinds();
    let mut results = Vec::new();
    let mut mix_all = Vec::new();
    let mut mix_scoped = Vec::new();
    let mut baseline_mix = Vec::new();
    for (k, kind_def) in kinds.iter().enumerate() {
        eprintln!("  {}", kind_def.label);
        let mut all = Vec::new();
        let mut scoped = Vec::new();
        let mut hits = 0;
        for i in 0..plan.samples {
            let query = (kind_def.make)(&mut rng, &samples);
            let started = Instant::now();
            let page = services
                .search_resources(&everyone, &query)
                .await
                .with_context(|| format!("search {query:?}"))?;
            all.push(started.elapsed());
            if i == 0 {
                hits = page.results.len();
            }
            let started = Instant::now();
            services.search_resources(&one_workspace, &query).await?;
            scoped.push(started.elapsed());
        }
        let mut baseline = Vec::new();
        if k == 0 {
            raw.execute("DROP TABLE IF EXISTS bench_plain_index")
                .await?;
            raw.execute("CREATE TABLE bench_plain_index AS SELECT * FROM resource_index")
                .await?;
        }
        for _ in 0..plan.baseline_samples {
            let query = (kind_def.make)(&mut rng, &samples);
            let search = store_search(&query, all_ids.clone());
            let started = Instant::now();
            raw.baseline(&search).await?;
            baseline.push(started.elapsed());
        }
        mix_all.extend(&all);
        mix_scoped.extend(&scoped);
        baseline_mix.extend(&baseline);
        results.push(KindResult {
            label: kind_def.label.to_owned(),
            all: Summary::of(&all).context("no samples")?,
            scoped: Summary::of(&scoped).context("no samples")?,
            baseline: Summary::of(&baseline),
            hits,
        });
    }
    raw.execute("DROP TABLE IF EXISTS bench_plain_index")
        .await?;
    Ok(StoreResult {
        store: kind.label(),
        states: plan.states,
        instances,
        seed_time,
        mix_all: Summary::of(&mix_all).context("no samples")?,
        mix_scoped: Summary::of(&mix_scoped).context("no samples")?,
        baseline_mix: Summary::of(&baseline_mix),
        kinds: results,
        big_first_write,
        big_rewrite,
    })
}

fn ms(d: Duration) -> String {
    crate::stats::ms(d)
}

/// The search section of the report, in Markdown.
pub fn render(results: &[StoreResult]) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "## 3. Resource search\n");
    for r in results {
        let target = if r.store == "SQLite" { 200.0 } else { 100.0 };
        let p95 = r.mix_all.p95.as_secs_f64() * 1e3;
        let _ = writeln!(
            o,
            "### {}: {} states, {} resource instances (seeded through the store in {:.0} s)\n",
            r.store,
            r.states,
            r.instances,
            r.seed_time.as_secs_f64()
        );
        let _ = writeln!(
            o,
            "Mix of all kinds below, every workspace readable: p50 {} / p95 {} / p99 {} ms — target p95 ≤ {target:.0} ms: **{}**. \
             One workspace (of {}) readable: p50 {} / p95 {} / p99 {} ms.{}\n",
            ms(r.mix_all.p50),
            ms(r.mix_all.p95),
            ms(r.mix_all.p99),
            if p95 <= target { "met" } else { "missed" },
            20,
            ms(r.mix_scoped.p50),
            ms(r.mix_scoped.p95),
            ms(r.mix_scoped.p99),
            r.baseline_mix
                .map(|b| format!(
                    " Baseline (same SQL on an unindexed copy of the table): p50 {} / p95 {} ms.",
                    ms(b.p50),
                    ms(b.p95)
                ))
                .unwrap_or_default()
        );
        let _ = writeln!(
            o,
            "Write path: a 5,000-instance state's first write {} ms (all rows inserted), the next write with 10 instances changed {} ms.\n",
            ms(r.big_first_write),
            ms(r.big_rewrite)
        );
        let _ = writeln!(
            o,
            "| query | hits (page ≤ 100) | p50 ms | p95 ms | p99 ms | one workspace p95 ms | baseline p50 ms |"
        );
        let _ = writeln!(o, "|---|--:|--:|--:|--:|--:|--:|");
        for k in &r.kinds {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} |",
                k.label,
                k.hits,
                ms(k.all.p50),
                ms(k.all.p95),
                ms(k.all.p99),
                ms(k.scoped.p95),
                k.baseline.map(|b| ms(b.p50)).unwrap_or_else(|| "–".into())
            );
        }
        let _ = writeln!(o);
    }
    o
}
