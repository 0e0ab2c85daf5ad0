//! The child processes that run statehouse's backup and restore, each reporting its own peak
//! memory and CPU time when done.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use statehouse_backup::{
    BackupTarget, Decryption, DumpOptions, Encryption, LocalDirTarget, PgConnection,
    RestoreOptions, restore_from, run_backup,
};
use statehouse_core::clock::SystemClock;

use super::ZSTD_LEVEL;

/// The job of a child process, as JSON.
pub(super) const JOB_ENV: &str = "STATEHOUSE_BENCH_CHILD_JOB";
/// The age identity a restoring child decrypts with (kept off the command line).
pub(super) const IDENTITY_ENV: &str = "STATEHOUSE_BENCH_AGE_IDENTITY";

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum ChildJob {
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
pub(super) struct ChildOutcome {
    pub(super) dump_bytes: u64,
    pub(super) stored_bytes: u64,
    pub(super) peak_rss_bytes: u64,
    /// CPU time of the process itself and of its waited-for children (pg_dump, pg_restore).
    pub(super) cpu_self_secs: f64,
    pub(super) cpu_children_secs: f64,
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

/// Runs one job in a child process and times it.
pub(super) fn timed_child(
    job: &ChildJob,
    identity: Option<&str>,
) -> Result<(Duration, ChildOutcome)> {
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
