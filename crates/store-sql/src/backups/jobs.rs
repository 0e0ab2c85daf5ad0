//! The job clock: one row per recurring job (`backup:<database id>`, `health:<database id>`,
//! `self-backup`, …) holding when it next runs. Schedules move by compare-and-set, so of
//! several processes exactly one wins a due run.

use statehouse_core::Result;
use statehouse_core::backups::BackupRecord;
use statehouse_core::clock::Timestamp;

use super::{decode, err, runs};
use crate::SqlStore;
use crate::engine::{Conn, Engine, Row, Tx};
use crate::query::sql;

const NEXT_RUN: &str = "SELECT next_run_at FROM job_clock WHERE name = $1";
/// Prefix match by `substr` (exact and case-sensitive on both engines, unlike `LIKE`).
const DUE: &str = "SELECT name, next_run_at FROM job_clock \
    WHERE substr(name, 1, length($1)) = $1 AND next_run_at <= $2 \
    ORDER BY next_run_at, name LIMIT $3";
const ADVANCE: &str = "UPDATE job_clock SET next_run_at = $2 WHERE name = $1 AND next_run_at = $3";
const CREATE: &str = "INSERT INTO job_clock (name, next_run_at) VALUES ($1, $2) \
    ON CONFLICT (name) DO NOTHING";
const DELETE: &str = "DELETE FROM job_clock WHERE name = $1";

/// Removes a job in the caller's transaction; whether it was there.
pub(super) async fn delete_in<C: Conn>(conn: &mut C, name: &str) -> Result<bool> {
    let done = sql(DELETE).bind(name).execute(conn).await.map_err(err)?;
    Ok(done == 1)
}

pub(super) async fn next_run<E: Engine>(
    store: &SqlStore<E>,
    name: &str,
) -> Result<Option<Timestamp>> {
    sql(NEXT_RUN)
        .bind(name)
        .optional_scalar(&mut store.engine.read().await?)
        .await
}

pub(super) async fn due<E: Engine>(
    store: &SqlStore<E>,
    prefix: &str,
    now: Timestamp,
    limit: i64,
) -> Result<Vec<(String, Timestamp)>> {
    let rows = sql(DUE)
        .bind(prefix)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut store.engine.read().await?)
        .await?;
    decode(&rows, |row| Ok((row.get("name")?, row.get("next_run_at")?)))
}

pub(super) async fn advance<E: Engine>(
    store: &SqlStore<E>,
    name: &str,
    expected: Option<Timestamp>,
    next: Timestamp,
    enqueue: Option<&BackupRecord>,
) -> Result<bool> {
    let mut tx = store.engine.begin().await?;
    let moved = match expected {
        Some(expected) => sql(ADVANCE).bind(name).bind(next).bind(expected),
        None => sql(CREATE).bind(name).bind(next),
    }
    .execute(&mut tx)
    .await
    .map_err(err)?;
    if moved != 1 {
        return Ok(false);
    }
    if let Some(backup) = enqueue {
        runs::insert_in(&mut tx, backup).await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn delete<E: Engine>(store: &SqlStore<E>, name: &str) -> Result<bool> {
    delete_in(&mut store.engine.writer().await?, name).await
}
