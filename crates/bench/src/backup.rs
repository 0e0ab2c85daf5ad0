//! Section 4, PostgreSQL backups (issue 4): statehouse's backup pipeline (`run_backup`:
//! `pg_dump -Fc -Z0` → zstd 5 → age → a local directory) against the shell pipeline
//! `pg_dump -Fc -Z0 | zstd -5 -T1 > file` measured in the same run, its peak memory, the size
//! against pg_dump's own `-Z5`, and `restore_from` against `zstd -d | pg_restore`.
//!
//! Every statehouse operation runs in a child process (this binary re-executed with the hidden
//! `--backup-child` flag, the job in an environment variable), which reports its own `VmHWM`
//! when done: the peak memory is the operation's alone, not the bench's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use statehouse_backup::pg_tools::{PgToolSearch, find_pg_tool_for_server};
use statehouse_backup::{BackupTarget, LocalDirTarget, PgConnection, generate_key_pair};

use crate::http::MB;
use crate::stats;

mod child;
mod report;

pub use child::run_child;
use child::{ChildJob, timed_child};
pub use report::render;

/// Targets of issue 4.
const THROUGHPUT_RATIO: f64 = 0.95;
const PEAK_RSS_BYTES: u64 = 64 * MB as u64;
const ZSTD_LEVEL: i32 = 5;

#[derive(Debug, Clone)]
pub struct Plan {
    /// The PostgreSQL URL (a superuser; its database is where databases are created and dropped).
    pub url: String,
    /// The database backed up.
    pub database: String,
    /// Recreate `database` with `pgbench -i -s <scale>` first.
    pub init_scale: Option<u32>,
    /// Rounds of the backup measurements (baseline A and both statehouse rows take turns).
    pub reps: usize,
    /// Where the dumps and the statehouse target directory go.
    pub work_dir: PathBuf,
}

/// One timed run.
#[derive(Debug, Clone, Copy)]
struct Run {
    wall: Duration,
    output_bytes: u64,
    dump_bytes: u64,
    peak_rss_bytes: Option<u64>,
    /// User + system CPU seconds of every process of the run (tools included).
    cpu_secs: f64,
}

/// The runs of one row of the table.
struct Row {
    label: String,
    runs: Vec<Run>,
}

impl Row {
    fn new(label: impl Into<String>) -> Row {
        Row {
            label: label.into(),
            runs: Vec::new(),
        }
    }

    fn median_wall(&self) -> Duration {
        let walls: Vec<Duration> = self.runs.iter().map(|r| r.wall).collect();
        stats::median(&walls).unwrap_or_default()
    }

    fn output_bytes(&self) -> u64 {
        self.runs.last().map_or(0, |r| r.output_bytes)
    }

    fn dump_bytes(&self) -> u64 {
        self.runs.last().map_or(0, |r| r.dump_bytes)
    }

    /// pg_dump archive bytes per second, MiB/s, at the median wall time.
    fn throughput(&self) -> f64 {
        self.dump_bytes() as f64 / MB as f64 / self.median_wall().as_secs_f64().max(1e-9)
    }

    fn median_cpu(&self) -> f64 {
        let mut cpu: Vec<f64> = self.runs.iter().map(|r| r.cpu_secs).collect();
        cpu.sort_by(f64::total_cmp);
        cpu.get(cpu.len() / 2).copied().unwrap_or(0.0)
    }

    fn peak_rss(&self) -> Option<u64> {
        self.runs.iter().filter_map(|r| r.peak_rss_bytes).max()
    }
}

pub struct Results {
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
    pub server_version: String,
    pub database: String,
    pub database_bytes: u64,
    pub init: Option<(u32, Duration)>,
    pub reps: usize,
    baseline_a: Row,
    statehouse: Row,
    statehouse_counted: Row,
    baseline_b: Row,
    restore_baseline: Row,
    restore_statehouse: Row,
    /// Rows in all user tables of the source, and of each restored database.
    source_rows: u64,
    restored_rows: (u64, u64),
}

/// The libpq environment of `connection` with `database` as the default database.
fn libpq_env(connection: &PgConnection, database: &str) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("PGHOST", connection.host.clone()),
        ("PGPORT", connection.port.to_string()),
        ("PGUSER", connection.user.clone()),
        ("PGDATABASE", database.to_owned()),
    ];
    if let Some(password) = &connection.password {
        env.push(("PGPASSWORD", password.clone()));
    }
    if let Some(mode) = &connection.sslmode {
        env.push(("PGSSLMODE", mode.clone()));
    }
    env
}

/// One SQL statement through `psql` in `database`; its trimmed output.
fn psql(connection: &PgConnection, database: &str, sql: &str) -> Result<String> {
    let out = Command::new("psql")
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .envs(libpq_env(connection, database))
        .stdin(Stdio::null())
        .output()
        .context("running psql (is postgresql-client installed?)")?;
    if !out.status.success() {
        bail!(
            "psql failed on `{sql}` in {database}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs a `bash` pipeline (with `pipefail`) and times it: wall time and the CPU seconds of all
/// its processes (bash's `times`; the pipeline's own output must go to a file).
fn timed_shell(script: &str, env: &[(&str, String)]) -> Result<(Duration, f64)> {
    let started = Instant::now();
    let out = Command::new("bash")
        .args(["-c", &format!("set -euo pipefail; {script}; times")])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running `{script}`"))?;
    let wall = started.elapsed();
    if !out.status.success() {
        bail!(
            "`{script}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let times = String::from_utf8_lossy(&out.stdout);
    // Second line: user and system time of the children, like `0m1.060s 0m3.305s`.
    let cpu = times
        .lines()
        .nth(1)
        .map(|line| line.split_whitespace().filter_map(parse_times_value).sum())
        .unwrap_or(0.0);
    Ok((wall, cpu))
}

/// `1m2.500s` → 62.5.
fn parse_times_value(text: &str) -> Option<f64> {
    let (minutes, seconds) = text.strip_suffix('s')?.split_once('m')?;
    Some(minutes.parse::<f64>().ok()? * 60.0 + seconds.parse::<f64>().ok()?)
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading the size of {}", path.display()))?
        .len())
}

/// Rows in all user tables of `database` (one `count(*)` per table).
fn total_rows(connection: &PgConnection, database: &str) -> Result<u64> {
    let sql = "SELECT coalesce(sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, relname), false, true, '')))[1]::text::bigint), 0) FROM pg_stat_user_tables";
    let text = psql(connection, database, sql)?;
    text.parse()
        .with_context(|| format!("reading a row count from {text:?}"))
}

fn create_database(connection: &PgConnection, name: &str) -> Result<()> {
    psql(
        connection,
        &connection.database,
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    )?;
    psql(
        connection,
        &connection.database,
        &format!("CREATE DATABASE \"{name}\""),
    )?;
    Ok(())
}

fn drop_database(connection: &PgConnection, name: &str) {
    if let Err(e) = psql(
        connection,
        &connection.database,
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    ) {
        eprintln!("note: could not drop the scratch database {name}: {e}");
    }
}

pub fn run(plan: &Plan) -> Result<Results> {
    let base = PgConnection::from_url(&plan.url)?;
    if plan
        .database
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || c == '_'))
    {
        bail!(
            "--database {:?}: use letters, digits and _ only (the bench quotes it into SQL)",
            plan.database
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let search = PgToolSearch::system();
    let (pg_dump, version) = rt.block_on(find_pg_tool_for_server("pg_dump", &base, &search))?;
    let (pg_restore, _) = rt.block_on(find_pg_tool_for_server("pg_restore", &base, &search))?;
    let pg_dump = pg_dump.path;
    let pg_restore = pg_restore.path;

    let init = match plan.init_scale {
        Some(scale) => {
            let pgbench = pg_dump.with_file_name("pgbench");
            let pgbench = if pgbench.is_file() {
                pgbench
            } else {
                PathBuf::from("pgbench")
            };
            eprintln!(
                "creating {} with `pgbench -i -s {scale}` (about {} MB)",
                plan.database,
                scale * 15
            );
            create_database(&base, &plan.database)?;
            let (wall, _) = timed_shell(
                "\"$PGBENCH\" -i -q -s \"$SCALE\"",
                &[
                    libpq_env(&base, &plan.database),
                    vec![
                        ("PGBENCH", pgbench.display().to_string()),
                        ("SCALE", scale.to_string()),
                    ],
                ]
                .concat(),
            )?;
            Some((scale, wall))
        }
        None => None,
    };
    let database_bytes: u64 = psql(
        &base,
        &plan.database,
        "SELECT pg_database_size(current_database())",
    )?
    .parse()
    .context("reading the database size")?;
    eprintln!("counting the rows of {}", plan.database);
    let source_rows = total_rows(&base, &plan.database)?;

    let work = tempfile::Builder::new()
        .prefix("statehouse-bench-backup-")
        .tempdir_in(&plan.work_dir)
        .with_context(|| format!("creating a work directory in {}", plan.work_dir.display()))?;
    let target_dir = work.path().join("target");
    std::fs::create_dir_all(&target_dir)?;
    let target = LocalDirTarget::new(&target_dir);
    let file_a = work.path().join("baseline-a.dump.zst");
    let file_b = work.path().join("baseline-b.dump");
    let (identity, recipient) = generate_key_pair();
    let identity = {
        use age::secrecy::ExposeSecret;
        identity.expose_secret().to_owned()
    };
    let mut env = libpq_env(&base, &plan.database);
    env.push(("PG_DUMP", pg_dump.display().to_string()));
    env.push(("PG_RESTORE", pg_restore.display().to_string()));
    env.push(("FILE_A", file_a.display().to_string()));
    env.push(("FILE_B", file_b.display().to_string()));

    let mut baseline_a = Row::new("A: `pg_dump -Fc -Z0 | zstd -5 -T1 > file`");
    let mut statehouse = Row::new(
        "statehouse `run_backup`: zstd 5 + age (1 x25519 recipient); no row counts (no verification server, the default)",
    );
    let mut statehouse_counted =
        Row::new("statehouse `run_backup`, `count_rows: true` (a verification server is set)");
    let mut baseline_b = Row::new("B: `pg_dump -Fc -Z5 > file`");
    let mut object = String::new();
    for round in 0..plan.reps {
        eprintln!("backup round {} of {}", round + 1, plan.reps);
        let (wall, cpu_secs) = timed_shell(
            "\"$PG_DUMP\" -Fc -Z0 --no-password | zstd -5 -T1 -q > \"$FILE_A\"",
            &env,
        )?;
        baseline_a.runs.push(Run {
            wall,
            output_bytes: file_size(&file_a)?,
            dump_bytes: 0,
            peak_rss_bytes: None,
            cpu_secs,
        });
        for (row, count_rows) in [(&mut statehouse, false), (&mut statehouse_counted, true)] {
            let name = format!(
                "{db}/{db}-{round}-{}.dump.zst.age",
                if count_rows { "counted" } else { "plain" },
                db = plan.database
            );
            let (wall, outcome) = timed_child(
                &ChildJob::Backup {
                    url: plan.url.clone(),
                    database: plan.database.clone(),
                    pg_dump: pg_dump.clone(),
                    recipient: recipient.clone(),
                    count_rows,
                    target_dir: target_dir.clone(),
                    object: name.clone(),
                },
                None,
            )?;
            row.runs.push(Run {
                wall,
                output_bytes: outcome.stored_bytes,
                dump_bytes: outcome.dump_bytes,
                peak_rss_bytes: Some(outcome.peak_rss_bytes),
                cpu_secs: outcome.cpu_self_secs + outcome.cpu_children_secs,
            });
            // Keep one object for the restore; the others only take disk space.
            if count_rows || round + 1 < plan.reps {
                rt.block_on(target.delete(&name))?;
            } else {
                object = name;
            }
        }
    }
    // The same database gives the same archive: baseline A's throughput counts the bytes
    // statehouse's pg_dump produced.
    let dump_bytes = statehouse.dump_bytes();
    for run in &mut baseline_a.runs {
        run.dump_bytes = dump_bytes;
    }

    eprintln!("baseline B: pg_dump -Fc -Z5");
    let (wall, cpu_secs) = timed_shell("\"$PG_DUMP\" -Fc -Z5 --no-password > \"$FILE_B\"", &env)?;
    baseline_b.runs.push(Run {
        wall,
        output_bytes: file_size(&file_b)?,
        dump_bytes,
        peak_rss_bytes: None,
        cpu_secs,
    });
    std::fs::remove_file(&file_b).ok();

    let restore_flags = "--no-password --clean --if-exists --no-owner --exit-on-error";
    let mut restore_baseline = Row::new(format!(
        "`zstd -d < fileA | pg_restore {restore_flags} -d <new db>`"
    ));
    let mut restore_statehouse = Row::new(
        "statehouse `restore_from` (age → zstd → pg_restore, streamed, 1 job, same flags)",
    );
    let scratch = format!("{}_restore_{}", plan.database, std::process::id());

    eprintln!("restore: zstd -d | pg_restore");
    create_database(&base, &scratch)?;
    let mut restore_env = env.clone();
    restore_env.push(("RESTORE_DB", scratch.clone()));
    let (wall, cpu_secs) = timed_shell(
        &format!("zstd -d -q < \"$FILE_A\" | \"$PG_RESTORE\" {restore_flags} -d \"$RESTORE_DB\""),
        &restore_env,
    )?;
    restore_baseline.runs.push(Run {
        wall,
        output_bytes: baseline_a.output_bytes(),
        dump_bytes,
        peak_rss_bytes: None,
        cpu_secs,
    });
    let restored_baseline = total_rows(&base, &scratch)?;
    drop_database(&base, &scratch);

    eprintln!("restore: statehouse restore_from");
    create_database(&base, &scratch)?;
    let (wall, outcome) = timed_child(
        &ChildJob::Restore {
            url: plan.url.clone(),
            database: scratch.clone(),
            pg_restore: pg_restore.clone(),
            target_dir: target_dir.clone(),
            object: object.clone(),
        },
        Some(&identity),
    )?;
    restore_statehouse.runs.push(Run {
        wall,
        output_bytes: outcome.stored_bytes,
        dump_bytes: outcome.dump_bytes,
        peak_rss_bytes: Some(outcome.peak_rss_bytes),
        cpu_secs: outcome.cpu_self_secs + outcome.cpu_children_secs,
    });
    let restored_statehouse = total_rows(&base, &scratch)?;
    drop_database(&base, &scratch);
    drop(work);

    Ok(Results {
        pg_dump,
        pg_restore,
        server_version: version.text,
        database: plan.database.clone(),
        database_bytes,
        init,
        reps: plan.reps,
        baseline_a,
        statehouse,
        statehouse_counted,
        baseline_b,
        restore_baseline,
        restore_statehouse,
        source_rows,
        restored_rows: (restored_baseline, restored_statehouse),
    })
}
