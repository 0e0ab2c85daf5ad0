//! Verifying a stored backup. Cheap: the object decrypts, matches its checksum, decompresses
//! whole, and pg_restore reads a non-empty table of contents from it (no server needed). Full:
//! it is restored into a scratch database on a verification server and every table's row count
//! is compared with the counts taken in the dump's own snapshot.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::time::Instant;

use crate::connection::{PgConnection, query_error, quote_ident, version_of_session};
use crate::decode::{DecodeError, decode_into};
use crate::keys::Decryption;
use crate::pipeline::{BackupError, Timer, clean_stderr, read_tail};
use crate::restore::{RestoreOptions, restore_from};
use crate::row_counts::{RowCounts, count_rows};

/// Scratch databases of full verifications are named `statehouse_verify_<unix seconds of the
/// verification server's clock>_<random>`.
pub const SCRATCH_DATABASE_PREFIX: &str = "statehouse_verify_";

/// A scratch database older than this, with nobody connected, was left by a verification whose
/// process died (a live one drops its own): the next full verification drops it. Far beyond
/// any verification's total timeout in practice, so another replica's running one is never hit.
pub const ABANDONED_SCRATCH_AFTER: Duration = Duration::from_secs(2 * 24 * 3_600);

/// How a verification reads the object.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The `pg_restore` binary (see [`crate::pg_tools::find_pg_tool`]).
    pub pg_restore: PathBuf,
    pub decryption: Decryption,
    /// The object's recorded SHA-256; a different object fails the verification.
    pub expected_sha256: Option<String>,
    /// Full verification: `pg_restore --jobs` (above 1 the archive is spooled to disk first).
    pub jobs: u32,
    /// Where that spool file goes; the system's temporary directory when `None`.
    pub spool_dir: Option<PathBuf>,
    pub stall_timeout: Duration,
    pub total_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationLevel {
    /// Decrypt, checksum, decompress, `pg_restore --list`.
    Cheap,
    /// Restore into a scratch database and compare row counts.
    Full,
}

/// A table whose row count after the restore differs from the dump's (`None`: the table is
/// missing on that side).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowCountMismatch {
    pub table: String,
    pub expected: Option<i64>,
    pub restored: Option<i64>,
}

/// The outcome of a verification that ran. `ok == false` means the backup failed it; `detail`
/// says why (or, when ok, what was checked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerificationReport {
    pub level: VerificationLevel,
    pub ok: bool,
    /// Full: tables whose rows were counted and compared. Cheap: tables with data in the
    /// archive's table of contents.
    pub tables_checked: usize,
    pub mismatches: Vec<RowCountMismatch>,
    pub duration: Duration,
    pub detail: String,
}

/// A failure that says the backup is bad (as opposed to the verification being unable to run).
fn is_backup_fault(e: &BackupError) -> bool {
    matches!(
        e,
        BackupError::Decode(_)
            | BackupError::ChecksumMismatch { .. }
            | BackupError::PgRestore { .. }
    )
}

/// `Ok(report)` for a verification that ran (the backup passed or failed it); `Err` when it
/// could not run (tool missing, storage unreadable, timeouts, server unreachable).
fn report_or_error(
    level: VerificationLevel,
    started: Instant,
    error: BackupError,
) -> Result<VerificationReport, BackupError> {
    if is_backup_fault(&error) {
        Ok(VerificationReport {
            level,
            ok: false,
            tables_checked: 0,
            mismatches: Vec::new(),
            duration: started.elapsed(),
            detail: error.to_string(),
        })
    } else {
        Err(error)
    }
}

/// Cheap verification: no server needed. Decrypts and decompresses the whole object (which
/// authenticates every age chunk), checks its SHA-256 and has `pg_restore --list` read the
/// archive's table of contents, which must not be empty.
pub async fn verify_cheap<R: AsyncRead + Unpin + ?Sized>(
    options: &VerifyOptions,
    object: &mut R,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<VerificationReport, BackupError> {
    let started = Instant::now();
    let level = VerificationLevel::Cheap;
    let timer = Timer::new(options.stall_timeout, options.total_timeout);
    let mut child = Command::new(&options.pg_restore)
        .arg("--list")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| BackupError::Spawn {
            path: options.pg_restore.display().to_string(),
            source,
        })?;
    let stderr_task = child.stderr.take().map(|s| tokio::spawn(read_tail(s)));
    let toc_task = child.stdout.take().map(|s| tokio::spawn(count_toc(s)));
    let (Some(mut stdin), Some(toc_task)) = (child.stdin.take(), toc_task) else {
        let _ = child.kill().await;
        return Err(BackupError::Decode(
            "pg_restore's input or output was not captured".to_owned(),
        ));
    };
    // pg_restore --list stops reading after the table of contents; the rest is still decoded,
    // so damage anywhere in the object is found.
    let decoded = decode_into(
        object,
        &options.decryption,
        options.expected_sha256.as_deref(),
        &mut stdin,
        true,
        &timer,
        progress,
    )
    .await;
    let _ = stdin.shutdown().await;
    drop(stdin);
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(e) => {
            let _ = child.kill().await;
            let e = match e {
                DecodeError::Backup(e) => e,
                DecodeError::Sink(e) => BackupError::PgRestore {
                    status: "stopped reading its input".to_owned(),
                    stderr: e.to_string(),
                },
            };
            return report_or_error(level, started, e);
        }
    };
    let status = match timer.run_total(child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(BackupError::Decode(format!("waiting for pg_restore: {e}"))),
        Err(e) => {
            let _ = child.kill().await;
            return Err(e);
        }
    };
    let (entries, tables) = toc_task.await.unwrap_or((0, 0));
    let stderr = match stderr_task {
        Some(task) => task.await.unwrap_or_default(),
        None => String::new(),
    };
    let (ok, detail) = if !status.success() {
        (
            false,
            format!(
                "pg_restore --list failed ({status}): {}",
                clean_stderr("pg_restore", &stderr)
            ),
        )
    } else if entries == 0 {
        (
            false,
            "the archive's table of contents is empty: this is not a usable dump".to_owned(),
        )
    } else {
        (
            true,
            format!(
                "decrypted, checksum {}, {} archive bytes decompressed; table of contents: {entries} \
                 entries, {tables} tables with data",
                if options.expected_sha256.is_some() {
                    "matches"
                } else {
                    "computed (none recorded to compare)"
                },
                decoded.dump_bytes
            ),
        )
    };
    Ok(VerificationReport {
        level,
        ok,
        tables_checked: tables,
        mismatches: Vec::new(),
        duration: started.elapsed(),
        detail,
    })
}

/// Counts the entries of `pg_restore --list` output (lines not starting with `;`) and the
/// `TABLE DATA` ones among them, without keeping the listing.
async fn count_toc<R: AsyncRead + Unpin>(stdout: R) -> (usize, usize) {
    let mut lines = BufReader::new(stdout).lines();
    let (mut entries, mut tables) = (0, 0);
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        entries += 1;
        if line.contains(" TABLE DATA ") {
            tables += 1;
        }
    }
    (entries, tables)
}

/// Full verification: restores `object` into a new scratch database (see
/// [`SCRATCH_DATABASE_PREFIX`]) on `server` (any database of it that the user can connect to;
/// the user needs CREATEDB), first dropping scratch databases abandoned long ago, counts
/// the rows of every user table and compares them with `expected_row_counts` (the dump's
/// [`crate::DumpOutcome::row_counts`]). The scratch database is dropped afterwards, also when the
/// restore or the comparison fails.
pub async fn verify_full<R: AsyncRead + Unpin + ?Sized>(
    options: &VerifyOptions,
    server: &PgConnection,
    expected_row_counts: &RowCounts,
    object: &mut R,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<VerificationReport, BackupError> {
    let started = Instant::now();
    let level = VerificationLevel::Full;
    let mut admin = server.connect().await?;
    let version = version_of_session(server, &mut admin).await?;
    // The server's clock names the scratch database: the same clock for every replica.
    let (server_now,): (i64,) = sqlx::query_as("SELECT extract(epoch FROM now())::bigint")
        .fetch_one(&mut admin)
        .await
        .map_err(|e| query_error(server, "reading the server's clock", &e))?;
    let swept_note = match drop_abandoned_scratch(&mut admin, server_now).await {
        Ok(dropped) if dropped.is_empty() => String::new(),
        Ok(dropped) => format!(
            "; dropped {} scratch database(s) left by interrupted verifications: {}",
            dropped.len(),
            dropped.join(", ")
        ),
        Err(e) => format!(
            "; looking for scratch databases left by interrupted verifications failed: {}",
            crate::connection::explain(server, &e)
        ),
    };
    let scratch_name = format!(
        "{SCRATCH_DATABASE_PREFIX}{server_now}_{}",
        &statehouse_core::service::new_id().replace('-', "")[..16]
    );
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {}",
        quote_ident(&scratch_name)
    )))
        .execute(&mut admin)
        .await
        .map_err(|e| {
            query_error(
                server,
                &format!(
                    "creating the scratch database {scratch_name} (the verification user needs CREATEDB)"
                ),
                &e,
            )
        })?;
    let scratch = server.with_database(&scratch_name);
    let result = restore_and_count(options, &scratch, object, progress).await;
    // Always dropped; FORCE (PostgreSQL 13+) ends sessions a failed restore may have left.
    let force = if version.major >= 13 {
        " WITH (FORCE)"
    } else {
        ""
    };
    let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {}{force}",
        quote_ident(&scratch_name)
    )))
    .execute(&mut admin)
    .await;
    let _ = admin.close().await;
    let drop_note = match dropped {
        Ok(_) => swept_note,
        Err(e) => format!(
            "; the scratch database {scratch_name} could not be dropped ({}): drop it by hand{swept_note}",
            crate::connection::explain(server, &e)
        ),
    };
    let restored = match result {
        Ok(restored) => restored,
        Err(e) => {
            return report_or_error(level, started, e).map(|mut report| {
                report.detail.push_str(&drop_note);
                report
            });
        }
    };
    let mismatches = compare_counts(expected_row_counts, &restored);
    let ok = mismatches.is_empty();
    let detail = if ok {
        format!(
            "restored into a scratch database on {}:{} and counted the rows of {} tables: all \
             match the dump",
            server.host,
            server.port,
            restored.len()
        )
    } else {
        format!(
            "{} of {} tables differ from the row counts taken at dump time",
            mismatches.len(),
            expected_row_counts.len().max(restored.len())
        )
    };
    Ok(VerificationReport {
        level,
        ok,
        tables_checked: restored.len(),
        mismatches,
        duration: started.elapsed(),
        detail: detail + &drop_note,
    })
}

/// Drops this user's scratch databases that are older than [`ABANDONED_SCRATCH_AFTER`] by
/// their name and have no sessions; returns their names. Names without a time (written before
/// they carried one) are left alone: their age is unknown.
async fn drop_abandoned_scratch(
    admin: &mut sqlx::PgConnection,
    server_now: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let candidates: Vec<(String,)> = sqlx::query_as(
        "SELECT d.datname::text FROM pg_database d
         WHERE starts_with(d.datname::text, $1)
           AND pg_get_userbyid(d.datdba) = current_user
           AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
    )
    .bind(SCRATCH_DATABASE_PREFIX)
    .fetch_all(&mut *admin)
    .await?;
    let horizon = i64::try_from(ABANDONED_SCRATCH_AFTER.as_secs()).unwrap_or(i64::MAX);
    let mut dropped = Vec::new();
    for (name,) in candidates {
        let created = name
            .strip_prefix(SCRATCH_DATABASE_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(secs, _)| secs.parse::<i64>().ok());
        if created.is_some_and(|created| server_now.saturating_sub(created) > horizon) {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {}",
                quote_ident(&name)
            )))
            .execute(&mut *admin)
            .await?;
            dropped.push(name);
        }
    }
    Ok(dropped)
}

async fn restore_and_count<R: AsyncRead + Unpin + ?Sized>(
    options: &VerifyOptions,
    scratch: &PgConnection,
    object: &mut R,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<RowCounts, BackupError> {
    let restore = RestoreOptions {
        // A fresh database: nothing to clean; the dump's owners and grantees need not exist here.
        clean: false,
        no_owner: true,
        no_privileges: true,
        exit_on_error: true,
        single_transaction: false,
        create_if_missing: false,
        jobs: options.jobs,
        spool_dir: options.spool_dir.clone(),
        expected_sha256: options.expected_sha256.clone(),
        stall_timeout: options.stall_timeout,
        total_timeout: options.total_timeout,
        ..RestoreOptions::new(
            options.pg_restore.clone(),
            scratch.clone(),
            options.decryption.clone(),
        )
    };
    restore_from(&restore, object, progress).await?;
    let mut session = scratch.connect().await?;
    let counts = count_rows(scratch, &mut session).await;
    let _ = session.close().await;
    counts
}

fn compare_counts(expected: &RowCounts, restored: &RowCounts) -> Vec<RowCountMismatch> {
    let mut tables: Vec<&String> = expected.keys().chain(restored.keys()).collect();
    tables.sort();
    tables.dedup();
    tables
        .into_iter()
        .filter_map(|table| {
            let (e, r) = (expected.get(table).copied(), restored.get(table).copied());
            (e != r).then(|| RowCountMismatch {
                table: table.clone(),
                expected: e,
                restored: r,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn counts_are_compared_both_ways() {
        let expected: RowCounts = [("public.a".to_owned(), 3), ("public.b".to_owned(), 1)].into();
        let restored: RowCounts = [("public.a".to_owned(), 2), ("public.c".to_owned(), 0)].into();
        assert_eq!(
            compare_counts(&expected, &restored),
            vec![
                RowCountMismatch {
                    table: "public.a".to_owned(),
                    expected: Some(3),
                    restored: Some(2)
                },
                RowCountMismatch {
                    table: "public.b".to_owned(),
                    expected: Some(1),
                    restored: None
                },
                RowCountMismatch {
                    table: "public.c".to_owned(),
                    expected: None,
                    restored: Some(0)
                },
            ]
        );
        assert!(compare_counts(&expected, &expected).is_empty());
    }
}
