//! Section 3, resource search: seeds 10,000 states holding 1,000,000 resource instances in
//! total straight through the store (`Store::write_version`, the write path's own index
//! update), then measures `Services::search_resources` — what `GET /api/v1/search/resources`
//! runs — for a mix of exact and prefix searches by several fields. Baseline: the very same
//! SQL against a copy of the index table without its indexes (a scan per query). Then the web
//! UI's pages on the same data ([`ui_pages`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use std::collections::BTreeMap;

use statehouse_core::access::{Grants, Principal, Role};
use statehouse_core::clock::{SystemClock, Timestamp};
use statehouse_core::crypto::{Cipher, Keyring, MasterKey};
use statehouse_core::model::{Workspace, WorkspaceSettings};
use statehouse_core::search::ResourceQuery;
use statehouse_core::service::{Services, new_id};
use statehouse_core::store::Store;
use statehouse_core::store::search::{FieldMatch, ResourceSearch, SearchField};
use statehouse_core::tfstate::IndexedResource;
use statehouse_store_postgres::PgSettings;
use statehouse_store_sql::search::search_query;
use statehouse_store_sql::{Arg, Dialect};

use crate::pg;
use crate::server::Store as StoreKind;
use crate::stats::Summary;

mod data;
mod kinds;
mod report;
mod ui_pages;

use data::{Rng, instance, version_write};
use kinds::kinds;
pub use report::render;

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
    /// The web UI's pages on the same data.
    pub pages: Vec<ui_pages::PageResult>,
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
    let pages = ui_pages::measure(&services, &workspaces, plan.samples).await?;
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
        pages,
    })
}
