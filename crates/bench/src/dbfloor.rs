//! The database alone: the statements the store runs for a LOCK and an UNLOCK with the audit
//! log on, sent by the database's own client with the same number of concurrent clients, on a
//! store the binary under test created (same schema, same indexes, same state rows).
//!
//! - PostgreSQL: `pgbench -M prepared` with a script of the store's two statements, one CTE
//!   each (`UPDATE states … RETURNING 1` and `INSERT INTO journal_pending … FROM` it).
//! - SQLite: concurrent `sqlite3` processes on the store's file, each running a script of
//!   `BEGIN IMMEDIATE; UPDATE states …; INSERT INTO journal_pending …; COMMIT` transactions,
//!   with the store's busy timeout and `synchronous=NORMAL`.
//!
//! Every UPDATE must match its row: the journal row is inserted only when it did (as the store's
//! fast path does), and the pending rows are counted after each slice, then deleted (the store's
//! journal writer deletes them too), outside the timed window.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::json;
use statehouse_core::audit::AuditRecord;
use statehouse_core::clock::{Clock, SystemClock};
use statehouse_core::events::NewEvent;
use statehouse_core::store::pending::JournalEntries;
use tokio::runtime::Runtime;

use crate::http::{client, lock_info};
use crate::latency::lock_request;
use crate::machine;
use crate::server::{KeptStore, Server, Store};

/// The store's SQLite busy timeout (`store-sqlite`'s `BUSY_TIMEOUT`).
const SQLITE_BUSY_TIMEOUT_MS: u64 = 30_000;
/// Pairs per `sqlite3` process in the first (warm-up) run, before a rate is known.
const SQLITE_WARMUP_PAIRS: usize = 200;
/// Transactions per `pgbench` client in the warm-up run.
const PG_WARMUP_PAIRS: usize = 100;

/// Pairs the database did (summed over slices).
#[derive(Debug, Clone, Default)]
pub struct DbRate {
    pub pairs: u64,
    pub elapsed: Duration,
    /// CPU-seconds all CPUs were busy meanwhile ÷ number of CPUs.
    pub machine_busy_secs: f64,
}

impl DbRate {
    pub fn per_second(&self) -> f64 {
        self.pairs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn machine_busy(&self) -> f64 {
        self.machine_busy_secs / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn absorb(&mut self, other: DbRate) {
        self.pairs += other.pairs;
        self.elapsed += other.elapsed;
        self.machine_busy_secs += other.machine_busy_secs;
    }
}

/// What the store wrote for the seeded locks, reused verbatim by the floor's statements.
struct Values {
    workspace_id: String,
    lock_id: String,
    lock_info: String,
    token_id: String,
    holder: String,
    at: i64,
}

/// A stopped server's store, ready for the database's own client.
pub struct DbFloor {
    kept: KeptStore,
    values: Values,
    /// Scripts are written here.
    dir: tempfile::TempDir,
    /// `sqlite3 3.40.1` or `pgbench (PostgreSQL) 15.x`.
    tool: String,
    /// Pairs per second of the last SQLite run, to size the next one.
    rate: f64,
}

/// The state each floor client locks and unlocks.
fn state_name(worker: usize) -> String {
    format!("bench/dbfloor-{worker}")
}

impl DbFloor {
    /// Starts `bin` on a fresh store, has it create `workers` states by locking them, stops it
    /// and keeps its store, with the locks released.
    pub fn prepare(rt: &Runtime, bin: &Path, store: &Store, workers: usize) -> Result<DbFloor> {
        let tool = match store {
            Store::Sqlite => "sqlite3",
            Store::Postgres(_) => "pgbench",
        };
        let tool = version(tool)?;
        let server = Server::start(rt, bin, store)?;
        let client = client()?;
        let lock = Method::from_bytes(b"LOCK")?;
        let info = lock_info(&uuid::Uuid::new_v4().to_string());
        rt.block_on(async {
            for w in 0..workers {
                let url = server.tf_address(&state_name(w));
                lock_request(&client, &lock, &url, &server.token, &info).await?;
            }
            anyhow::Ok(())
        })
        .with_context(|| server.log_text())?;
        let kept = server.stop_keeping_store()?;
        let mut floor = DbFloor {
            values: Values {
                workspace_id: String::new(),
                lock_id: String::new(),
                lock_info: String::new(),
                token_id: String::new(),
                holder: String::new(),
                at: SystemClock.now().millis(),
            },
            kept,
            dir: tempfile::Builder::new()
                .prefix("statehouse-bench-dbfloor-")
                .tempdir()
                .context("creating a temp dir for the database floor's scripts")?,
            tool,
            rate: 0.0,
        };
        floor.read_values()?;
        floor.query(
            "UPDATE states SET lock_id = NULL, lock_info = NULL, lock_token_id = NULL, \
             lock_holder = NULL, locked_at = NULL WHERE name LIKE 'bench/dbfloor-%'; \
             DELETE FROM journal_pending",
        )?;
        Ok(floor)
    }

    /// Reads back what the store wrote for the first seeded lock.
    fn read_values(&mut self) -> Result<()> {
        let object = match self.kept.store {
            Store::Sqlite => "json_object",
            Store::Postgres(_) => "json_build_object",
        };
        let text = self.query(&format!(
            "SELECT {object}('workspace_id', workspace_id, 'lock_id', lock_id, 'lock_info', lock_info, \
             'token_id', lock_token_id, 'holder', lock_holder) FROM states WHERE name = '{}'",
            state_name(0)
        ))?;
        let row: serde_json::Value = serde_json::from_str(text.trim())
            .with_context(|| format!("reading the seeded lock row {text:?}"))?;
        let field = |name: &str| -> Result<String> {
            row.get(name)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .with_context(|| format!("the seeded lock row has no {name}: {row}"))
        };
        self.values.workspace_id = field("workspace_id")?;
        self.values.lock_id = field("lock_id")?;
        self.values.lock_info = field("lock_info")?;
        self.values.token_id = field("token_id")?;
        self.values.holder = field("holder")?;
        Ok(())
    }

    /// How the floor is measured, for the report.
    pub fn method(&self) -> String {
        match self.kept.store {
            Store::Sqlite => format!(
                "N concurrent `{}` processes (N = the workers) on the store's file (WAL), each \
                 running a script of transactions: `BEGIN IMMEDIATE; UPDATE states … WHERE … AND \
                 lock_id IS NULL; INSERT INTO journal_pending … WHERE changes() = 1; COMMIT` for a \
                 LOCK, the same with the release UPDATE for an UNLOCK; `busy_timeout = {}`, \
                 `synchronous = NORMAL`, `foreign_keys = ON` as the store sets them, SQLite's \
                 default WAL autocheckpoint (the store checkpoints on its own connection). The \
                 CLI parses every statement anew (the store reuses prepared ones), and a process \
                 that finds the file locked sleeps in SQLite's busy handler (the store queues its \
                 writes on one connection instead): a conservative floor. Pairs ÷ wall time from \
                 the first process started to the last one done",
                self.tool, SQLITE_BUSY_TIMEOUT_MS
            ),
            Store::Postgres(_) => format!(
                "`{}`: `pgbench -n -M prepared -c N -j 2 -T {}` per slice (N = the workers), a \
                 script of the store's two statements for a LOCK and an UNLOCK (one CTE each: \
                 `UPDATE states … RETURNING 1` and `INSERT INTO journal_pending … FROM` it) with \
                 the values the server stored; pairs/s = pgbench's tps without connection time",
                self.tool,
                crate::locks::SLICE.as_secs().max(1)
            ),
        }
    }

    /// A short run with `workers` clients (uncounted).
    pub fn warm_up(&mut self, workers: usize) -> Result<()> {
        let rate = match self.kept.store {
            Store::Sqlite => self.sqlite_run(workers, SQLITE_WARMUP_PAIRS)?,
            Store::Postgres(_) => self.pgbench(workers, Duration::ZERO)?,
        };
        self.rate = rate.per_second();
        Ok(())
    }

    /// `workers` clients for about `time`.
    pub fn slice(&mut self, workers: usize, time: Duration) -> Result<DbRate> {
        let rate = match self.kept.store {
            Store::Sqlite => {
                let per_worker =
                    (self.rate * time.as_secs_f64() / workers.max(1) as f64).round() as usize;
                self.sqlite_run(workers, per_worker.max(20))?
            }
            Store::Postgres(_) => self.pgbench(workers, time)?,
        };
        self.rate = rate.per_second();
        Ok(rate)
    }

    /// `workers` `sqlite3` processes doing `pairs` pairs each.
    fn sqlite_run(&mut self, workers: usize, pairs: usize) -> Result<DbRate> {
        let mut scripts = Vec::with_capacity(workers);
        for w in 0..workers {
            let path = self.dir.path().join(format!("worker-{w}.sql"));
            std::fs::write(&path, self.sqlite_script(w, pairs))
                .with_context(|| format!("writing {}", path.display()))?;
            scripts.push(path);
        }
        let db = self.kept.sqlite_file();
        let machine = machine::cpu_counters()?;
        let started = Instant::now();
        let mut children = Vec::with_capacity(workers);
        for script in &scripts {
            let input =
                File::open(script).with_context(|| format!("opening {}", script.display()))?;
            children.push(
                Command::new("sqlite3")
                    .arg("-batch")
                    .arg(&db)
                    .stdin(input)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .context("starting sqlite3")?,
            );
        }
        let mut failures = Vec::new();
        for child in children {
            let out = child.wait_with_output().context("waiting for sqlite3")?;
            if !out.status.success() {
                failures.push(format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        let elapsed = started.elapsed();
        let busy = machine::busy_since(machine)?;
        if !failures.is_empty() {
            bail!("sqlite3 failed: {}", failures.join("; "));
        }
        let total = (workers * pairs) as u64;
        self.check_and_clear(total)?;
        Ok(DbRate {
            pairs: total,
            elapsed,
            machine_busy_secs: busy * elapsed.as_secs_f64(),
        })
    }

    /// One `sqlite3` process's script: `pairs` LOCK and UNLOCK transactions on its state.
    fn sqlite_script(&self, worker: usize, pairs: usize) -> String {
        let v = &self.values;
        let name = state_name(worker);
        let (lock_entry, unlock_entry) = self.entries(&name);
        let filter = format!(
            "workspace_id = {} AND name = {} AND deleted_at IS NULL",
            quote(&v.workspace_id),
            quote(&name)
        );
        let lock = format!(
            "BEGIN IMMEDIATE;\nUPDATE states SET lock_id = {}, lock_info = {}, lock_token_id = {}, \
             lock_holder = {}, locked_at = {} WHERE {filter} AND lock_id IS NULL;\n\
             INSERT INTO journal_pending (at, entry) SELECT {}, {} WHERE changes() = 1;\nCOMMIT;\n",
            quote(&v.lock_id),
            quote(&v.lock_info),
            quote(&v.token_id),
            quote(&v.holder),
            v.at,
            v.at,
            quote(&lock_entry),
        );
        let unlock = format!(
            "BEGIN IMMEDIATE;\nUPDATE states SET lock_id = NULL, lock_info = NULL, lock_token_id = NULL, \
             lock_holder = NULL, locked_at = NULL WHERE {filter} AND lock_id = {} AND lock_token_id = {};\n\
             INSERT INTO journal_pending (at, entry) SELECT {}, {} WHERE changes() = 1;\nCOMMIT;\n",
            quote(&v.lock_id),
            quote(&v.token_id),
            v.at,
            quote(&unlock_entry),
        );
        let mut script = format!(
            ".bail on\nPRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};\n\
             PRAGMA synchronous = NORMAL;\nPRAGMA foreign_keys = ON;\n"
        );
        script.reserve(pairs * (lock.len() + unlock.len()));
        for _ in 0..pairs {
            script.push_str(&lock);
            script.push_str(&unlock);
        }
        script
    }

    /// `pgbench` with `workers` clients for `time` (whole seconds), or, with a zero time, a
    /// warm-up of [`PG_WARMUP_PAIRS`] pairs per client.
    fn pgbench(&mut self, workers: usize, time: Duration) -> Result<DbRate> {
        let Store::Postgres(url) = &self.kept.store else {
            bail!("pgbench needs a PostgreSQL store");
        };
        let script = self.dir.path().join("lock-unlock.sql");
        std::fs::write(&script, PG_SCRIPT)
            .with_context(|| format!("writing {}", script.display()))?;
        let v = &self.values;
        let (lock_entry, unlock_entry) = self.entries(&state_name(0));
        let mut cmd = Command::new("pgbench");
        cmd.env("PGOPTIONS", self.search_path()?)
            .args(["-n", "-M", "prepared"])
            .arg(format!("--client={workers}"))
            .arg(format!("--jobs={}", workers.clamp(1, 2)));
        if time.is_zero() {
            cmd.arg(format!("--transactions={PG_WARMUP_PAIRS}"));
        } else {
            cmd.arg(format!("--time={}", time.as_secs().max(1)));
        }
        for (name, value) in [
            ("ws", v.workspace_id.as_str()),
            ("lock_id", &v.lock_id),
            ("info", &v.lock_info),
            ("token_id", &v.token_id),
            ("holder", &v.holder),
            ("at", &v.at.to_string()),
            ("lock_entry", &lock_entry),
            ("unlock_entry", &unlock_entry),
            ("logged", "true"),
        ] {
            cmd.arg("-D").arg(format!("{name}={value}"));
        }
        cmd.arg("-f").arg(&script).arg(url);
        let machine = machine::cpu_counters()?;
        let started = Instant::now();
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .context("running pgbench")?;
        let wall = started.elapsed();
        let busy = machine::busy_since(machine)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "pgbench failed ({}): {}\n{stdout}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let pairs: u64 = after_marker(&stdout, "number of transactions actually processed:")
            .and_then(|s| s.split('/').next()?.trim().parse().ok())
            .with_context(|| format!("no transaction count in pgbench's output:\n{stdout}"))?;
        let tps: f64 = after_marker(&stdout, "tps =")
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no tps in pgbench's output:\n{stdout}"))?;
        self.check_and_clear(pairs)?;
        let elapsed = Duration::from_secs_f64(pairs as f64 / tps.max(1e-9));
        Ok(DbRate {
            pairs,
            elapsed,
            machine_busy_secs: busy * elapsed.min(wall).as_secs_f64(),
        })
    }

    /// The LOCK's and the UNLOCK's pending journal row, as the server makes them.
    fn entries(&self, name: &str) -> (String, String) {
        let v = &self.values;
        let at = statehouse_core::clock::Timestamp(v.at);
        let record = |action: &str| AuditRecord {
            token_id: Some(v.token_id.clone()),
            token_name: Some(v.holder.clone()),
            source_ip: Some("127.0.0.1".into()),
            ..AuditRecord::new(at, v.holder.clone(), action)
                .workspace("default")
                .target(name)
        };
        let event = |kind: &str, payload| NewEvent {
            at,
            kind: kind.into(),
            workspace_id: Some(v.workspace_id.clone()),
            workspace: Some("default".into()),
            subject: Some(name.into()),
            actor: v.holder.clone(),
            payload,
        };
        let info: serde_json::Value = serde_json::from_str(&v.lock_info).unwrap_or_default();
        let lock = JournalEntries::of(
            record("lock.acquire").detail(json!({"lock_id": v.lock_id, "already_held": false})),
            Some(event(
                "lock.acquired",
                json!({"lock_id": v.lock_id, "info": info}),
            )),
        );
        let unlock = JournalEntries::of(
            record("lock.release").detail(json!({"lock_id": v.lock_id})),
            Some(event("lock.released", json!({"lock_id": v.lock_id}))),
        );
        (lock.encode(), unlock.encode())
    }

    /// Checks that each of `pairs` pairs stored its two journal rows (so every UPDATE matched),
    /// then deletes them.
    fn check_and_clear(&self, pairs: u64) -> Result<()> {
        let rows: u64 = self
            .query("SELECT count(*) FROM journal_pending")?
            .trim()
            .parse()
            .context("counting journal_pending")?;
        if rows != 2 * pairs {
            bail!(
                "the database floor stored {rows} journal rows for {pairs} LOCK+UNLOCK pairs \
                 (expected {}): some UPDATEs did not match their row",
                2 * pairs
            );
        }
        self.query("DELETE FROM journal_pending")?;
        Ok(())
    }

    /// `PGOPTIONS` putting the store's schema first on the search path.
    fn search_path(&self) -> Result<String> {
        let schema = self
            .kept
            .schema()
            .context("the PostgreSQL store has no schema")?;
        Ok(format!("-c search_path={schema}"))
    }

    /// Runs SQL with the database's CLI (`sqlite3` or `psql`); its output.
    fn query(&self, sql: &str) -> Result<String> {
        let mut cmd = match &self.kept.store {
            Store::Sqlite => {
                let mut c = Command::new("sqlite3");
                c.arg("-batch")
                    .arg("-cmd")
                    .arg(format!(".timeout {SQLITE_BUSY_TIMEOUT_MS}"))
                    .arg(self.kept.sqlite_file())
                    .arg(sql);
                c
            }
            Store::Postgres(url) => {
                let mut c = Command::new("psql");
                c.env("PGOPTIONS", self.search_path()?)
                    .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
                    .arg(url)
                    .arg("-c")
                    .arg(sql);
                c
            }
        };
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .context("running the database's CLI")?;
        if !out.status.success() {
            bail!(
                "{sql}: {}",
                String::from_utf8_lossy(&out.stderr).trim().to_owned()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The store's LOCK and UNLOCK statements on PostgreSQL (`store-sql`'s `TAKE_FREE_LOCK_LOGGED`
/// and `RELEASE_OWN_LOCK_LOGGED`), each client on its own state.
const PG_SCRIPT: &str = "\
WITH taken AS (UPDATE states SET lock_id = :lock_id, lock_info = :info, lock_token_id = :token_id, lock_holder = :holder, locked_at = :at WHERE workspace_id = :ws AND name = 'bench/dbfloor-' || :client_id AND deleted_at IS NULL AND lock_id IS NULL RETURNING 1), logged AS (INSERT INTO journal_pending (at, entry) SELECT :at, :lock_entry FROM taken WHERE :logged) SELECT count(*) FROM taken;
WITH released AS (UPDATE states SET lock_id = NULL, lock_info = NULL, lock_token_id = NULL, lock_holder = NULL, locked_at = NULL WHERE workspace_id = :ws AND name = 'bench/dbfloor-' || :client_id AND deleted_at IS NULL AND lock_id = :lock_id AND lock_token_id = :token_id RETURNING 1), logged AS (INSERT INTO journal_pending (at, entry) SELECT :at, :unlock_entry FROM released WHERE :logged) SELECT count(*) FROM released;
";

/// `sqlite3 3.40.1` / `pgbench (PostgreSQL) 15.18`: the first words of `TOOL --version`.
fn version(tool: &str) -> Result<String> {
    let out = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{tool} is not installed (needed for the database floor)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    Ok(match tool {
        "sqlite3" => format!("sqlite3 {}", words.first().copied().unwrap_or("?")),
        _ => words.iter().take(3).copied().collect::<Vec<_>>().join(" "),
    })
}

/// What follows `marker` on its line.
fn after_marker<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(marker))
        .map(str::trim)
}

/// An SQL string literal.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_output_is_read() {
        let out = "transaction type: lock-unlock.sql\nnumber of clients: 8\n\
                   number of transactions actually processed: 12172\n\
                   initial connection time = 98.608 ms\n\
                   tps = 6353.979067 (without initial connection time)\n";
        assert_eq!(
            after_marker(out, "number of transactions actually processed:"),
            Some("12172")
        );
        assert_eq!(
            after_marker(out, "tps =").and_then(|s| s.split_whitespace().next()),
            Some("6353.979067")
        );
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(quote("it's"), "'it''s'");
    }
}
