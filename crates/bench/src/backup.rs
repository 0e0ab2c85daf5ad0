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
use serde::{Deserialize, Serialize};
use statehouse_backup::pg_tools::{PgToolSearch, find_pg_tool_for_server};
use statehouse_backup::{
    BackupTarget, Decryption, DumpOptions, Encryption, LocalDirTarget, PgConnection,
    RestoreOptions, generate_key_pair, restore_from, run_backup,
};
use statehouse_core::clock::SystemClock;

use crate::http::MB;
use crate::stats;

/// The job of a child process, as JSON.
const JOB_ENV: &str = "STATEHOUSE_BENCH_CHILD_JOB";
/// The age identity a restoring child decrypts with (kept off the command line).
const IDENTITY_ENV: &str = "STATEHOUSE_BENCH_AGE_IDENTITY";

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

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum ChildJob {
    Backup {
        url: String,
        database: String,
        pg_dump: PathBuf,
        recipient: String,
        count_rows: bool,
        target_dir: PathBuf,
        object: String,
    },
    Restore {
        url: String,
        database: String,
        pg_restore: PathBuf,
        target_dir: PathBuf,
        object: String,
    },
}

/// What a child prints as its last line.
#[derive(Debug, Serialize, Deserialize)]
struct ChildOutcome {
    dump_bytes: u64,
    stored_bytes: u64,
    peak_rss_bytes: u64,
    /// CPU time of the process itself and of its waited-for children (pg_dump, pg_restore).
    cpu_self_secs: f64,
    cpu_children_secs: f64,
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

/// The hidden child mode: runs one job from the environment, prints its outcome as JSON.
pub fn run_child() -> Result<()> {
    let job: ChildJob = serde_json::from_str(
        &std::env::var(JOB_ENV).with_context(|| format!("{JOB_ENV} is not set"))?,
    )
    .context("reading the child job")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let (dump_bytes, stored_bytes) = rt.block_on(child_job(job))?;
    drop(rt);
    let (cpu_self_secs, cpu_children_secs) = own_cpu_secs()?;
    let outcome = ChildOutcome {
        dump_bytes,
        stored_bytes,
        peak_rss_bytes: own_peak_rss()?,
        cpu_self_secs,
        cpu_children_secs,
    };
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}

async fn child_job(job: ChildJob) -> Result<(u64, u64)> {
    match job {
        ChildJob::Backup {
            url,
            database,
            pg_dump,
            recipient,
            count_rows,
            target_dir,
            object,
        } => {
            let options = DumpOptions {
                pg_dump,
                connection: PgConnection::from_url(&url)?.with_database(&database),
                zstd_level: ZSTD_LEVEL,
                encryption: Encryption::from_config(&[recipient], None)?,
                count_rows,
                stall_timeout: Duration::from_secs(300),
                total_timeout: Duration::from_secs(6 * 3600),
                exclusions: Default::default(),
            };
            let target = LocalDirTarget::new(target_dir);
            let metadata = run_backup(&options, None, &target, &object, None, &SystemClock).await?;
            if count_rows && metadata.row_counts.is_none() {
                bail!("the backup was asked to count rows but recorded none");
            }
            Ok((metadata.dump_bytes, metadata.stored_bytes))
        }
        ChildJob::Restore {
            url,
            database,
            pg_restore,
            target_dir,
            object,
        } => {
            let identity = std::env::var(IDENTITY_ENV)
                .with_context(|| format!("{IDENTITY_ENV} is not set"))?;
            let decryption = Decryption::from_identity_file_text(&identity.into())?;
            let target = LocalDirTarget::new(target_dir);
            let metadata = target.read_metadata(&object).await?;
            let mut options = RestoreOptions::new(
                pg_restore,
                PgConnection::from_url(&url)?.with_database(&database),
                decryption,
            );
            options.expected_sha256 = Some(metadata.sha256.clone());
            let mut reader = target.open(&object).await?;
            let outcome = restore_from(&options, &mut reader, &|_| {}).await?;
            Ok((outcome.dump_bytes, outcome.stored_bytes))
        }
    }
}

/// `VmHWM` of this process: its peak resident memory so far.
fn own_peak_rss() -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmHWM in /proc/self/status")?;
    Ok(kib * 1024)
}

/// User + system CPU seconds of this process and of its waited-for children, from
/// `/proc/self/stat` (fields 14 to 17, in clock ticks).
fn own_cpu_secs() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no command name in /proc/self/stat")?;
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let [utime, stime, cutime, cstime] = fields[..] else {
        bail!("/proc/self/stat is too short");
    };
    let tick = clock_ticks_per_second();
    Ok((
        (utime + stime) as f64 / tick,
        (cutime + cstime) as f64 / tick,
    ))
}

/// `getconf CLK_TCK` (100 on Linux unless told otherwise).
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
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

/// Runs one job in a child process and times it.
fn timed_child(job: &ChildJob, identity: Option<&str>) -> Result<(Duration, ChildOutcome)> {
    let exe = std::env::current_exe().context("finding the bench binary to re-execute")?;
    let mut command = Command::new(exe);
    command
        .arg("--backup-child")
        .env(JOB_ENV, serde_json::to_string(job)?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(identity) = identity {
        command.env(IDENTITY_ENV, identity);
    }
    let started = Instant::now();
    let out = command
        .output()
        .context("running the bench's child process")?;
    let wall = started.elapsed();
    if !out.status.success() {
        bail!(
            "the statehouse {} failed: {}",
            match job {
                ChildJob::Backup { .. } => "backup",
                ChildJob::Restore { .. } => "restore",
            },
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let outcome = serde_json::from_str(last)
        .with_context(|| format!("reading the child's outcome from {last:?}"))?;
    Ok((wall, outcome))
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

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MB as f64)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn runs_text(row: &Row) -> String {
    row.runs
        .iter()
        .map(|r| format!("{:.1}", r.wall.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn render(r: &Results) -> String {
    let mut o = String::new();
    let _ = write_report(&mut o, r);
    o
}

fn write_report(o: &mut String, r: &Results) -> std::fmt::Result {
    use std::fmt::Write;
    writeln!(o, "## 4. PostgreSQL backups\n")?;
    write!(
        o,
        "Database `{}`: {} MiB on disk, {} rows in its tables, a {} MiB pg_dump archive (`-Z0`)",
        r.database,
        mib(r.database_bytes),
        r.source_rows,
        mib(r.statehouse.dump_bytes()),
    )?;
    if let Some((scale, wall)) = r.init {
        write!(
            o,
            "; created by `pgbench -i -s {scale}` in {:.0} s",
            wall.as_secs_f64()
        )?;
    }
    writeln!(
        o,
        ". PostgreSQL {}; `{}` and `{}` (the ones statehouse picks for this server).\n",
        r.server_version,
        r.pg_dump.display(),
        r.pg_restore.display()
    )?;

    let a = r.baseline_a.throughput();
    let ratio = r.statehouse.throughput() / a;
    let rss = r
        .statehouse
        .peak_rss()
        .max(r.statehouse_counted.peak_rss())
        .unwrap_or(0);
    let size = r.statehouse.output_bytes() as f64 / r.baseline_b.output_bytes().max(1) as f64;
    let restore_ratio = r.restore_statehouse.throughput() / r.restore_baseline.throughput();
    writeln!(o, "| target | figure | |")?;
    writeln!(o, "|---|---|---|")?;
    writeln!(
        o,
        "| backup throughput ≥ {THROUGHPUT_RATIO}× baseline A | {ratio:.2}× ({:.0} vs {a:.0} MiB/s of pg_dump output) | {} |",
        r.statehouse.throughput(),
        verdict(ratio >= THROUGHPUT_RATIO)
    )?;
    let counted_ratio = r.statehouse_counted.throughput() / a;
    writeln!(
        o,
        "| the same while a verification server is set (rows counted in the dump's snapshot) | {counted_ratio:.2}× ({:.0} MiB/s) | {} |",
        r.statehouse_counted.throughput(),
        verdict(counted_ratio >= THROUGHPUT_RATIO)
    )?;
    writeln!(
        o,
        "| peak RSS of a backup ≤ {} MiB | {} MiB (`VmHWM` of the process running `run_backup`) | {} |",
        PEAK_RSS_BYTES / MB as u64,
        mib(rss),
        verdict(rss <= PEAK_RSS_BYTES)
    )?;
    writeln!(
        o,
        "| size vs pg_dump's own `-Z5` | {size:.2}× ({} vs {} MiB) | {} |",
        mib(r.statehouse.output_bytes()),
        mib(r.baseline_b.output_bytes()),
        if size <= 1.0 { "smaller" } else { "larger" }
    )?;
    writeln!(
        o,
        "| restore throughput vs `zstd -d \\| pg_restore` | {restore_ratio:.2}× ({:.0} vs {:.0} MiB/s) | |",
        r.restore_statehouse.throughput(),
        r.restore_baseline.throughput()
    )?;
    writeln!(o)?;

    writeln!(
        o,
        "Backups: median wall time of {} rounds (A, statehouse, statehouse counting rows take turns in each round); throughput = pg_dump archive bytes ÷ wall time; CPU = user + system seconds of every process of the run except the PostgreSQL server (pg_dump and the compressor: `zstd`, or the process running `run_backup`).\n",
        r.reps
    )?;
    writeln!(
        o,
        "| backup | wall s (median) | runs, s | pg_dump MiB/s | vs A | output MiB | CPU s | peak RSS MiB |"
    )?;
    writeln!(o, "|---|---|---|---|---|---|---|---|")?;
    for row in [
        &r.baseline_a,
        &r.statehouse,
        &r.statehouse_counted,
        &r.baseline_b,
    ] {
        writeln!(
            o,
            "| {} | {:.2} | {} | {:.0} | {:.2}× | {} | {:.1} | {} |",
            row.label.replace('|', "\\|"),
            row.median_wall().as_secs_f64(),
            runs_text(row),
            row.throughput(),
            row.throughput() / a,
            mib(row.output_bytes()),
            row.median_cpu(),
            row.peak_rss().map_or_else(|| "–".to_owned(), mib)
        )?;
    }
    writeln!(o)?;
    writeln!(
        o,
        "Restores, each into a new empty database (created untimed, dropped afterwards), of the last round's archives:\n"
    )?;
    writeln!(
        o,
        "| restore | wall s | pg_dump MiB/s | vs baseline | rows restored | CPU s | peak RSS MiB |"
    )?;
    writeln!(o, "|---|---|---|---|---|---|---|")?;
    let b = r.restore_baseline.throughput();
    for (row, rows) in [
        (&r.restore_baseline, r.restored_rows.0),
        (&r.restore_statehouse, r.restored_rows.1),
    ] {
        writeln!(
            o,
            "| {} | {:.2} | {:.0} | {:.2}× | {rows}{} | {:.1} | {} |",
            row.label.replace('|', "\\|"),
            row.median_wall().as_secs_f64(),
            row.throughput(),
            row.throughput() / b,
            if rows == r.source_rows {
                " (all)"
            } else {
                " (**differs from the source**)"
            },
            row.median_cpu(),
            row.peak_rss().map_or_else(|| "–".to_owned(), mib)
        )?;
    }
    writeln!(o)?;
    Ok(())
}
