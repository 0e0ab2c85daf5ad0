//! Health checks of databases. A check and the database's health it changes are recorded in
//! one transaction, deciding on the database's row as it is (locked on PostgreSQL; SQLite's
//! one writer excludes every other change meanwhile).

use statehouse_core::Result;
use statehouse_core::backups::{HealthCheck, HealthCounts, HealthTransition};
use statehouse_core::clock::Timestamp;
use statehouse_core::store::backups::HealthRule;

use super::{databases, decode, err, locked};
use crate::SqlStore;
use crate::engine::{Engine, Row, Tx};
use crate::query::sql;

/// A database's health columns; locked on PostgreSQL.
const DATABASE_HEALTH: &str = "SELECT health_status, health_failures, health_changed_at, \
    health_last_check_at, health_last_error FROM backup_databases WHERE id = $1";
const SET_DATABASE_HEALTH: &str = "UPDATE backup_databases SET health_status = $2, health_failures = $3, \
    health_changed_at = $4, health_last_check_at = $5, health_last_error = $6 WHERE id = $1";
const INSERT: &str = "INSERT INTO health_checks (database_id, at, ok, latency_ms, error) \
    VALUES ($1, $2, $3, $4, $5)";
const COUNTS: &str = "SELECT COUNT(*) AS total, \
    COALESCE(SUM(CASE WHEN ok THEN 1 ELSE 0 END), 0) AS good \
    FROM health_checks WHERE database_id = $1 AND at >= $2";
const LIST: &str = "SELECT database_id, at, ok, latency_ms, error FROM health_checks \
    WHERE database_id = $1 AND at < $2 ORDER BY at DESC, id DESC LIMIT $3";
const PRUNE: &str = "DELETE FROM health_checks WHERE at < $1";

fn check_from(row: &impl Row) -> Result<HealthCheck> {
    Ok(HealthCheck {
        database_id: row.get("database_id")?,
        at: row.get("at")?,
        ok: row.get("ok")?,
        latency_ms: row.get("latency_ms")?,
        error: row.get("error")?,
    })
}

pub(super) async fn record<E: Engine>(
    store: &SqlStore<E>,
    check: &HealthCheck,
    rule: HealthRule<'_>,
) -> Result<Option<HealthTransition>> {
    let mut tx = store.engine.begin().await?;
    let Some(row) = locked(store.dialect(), DATABASE_HEALTH)
        .bind(&check.database_id)
        .fetch_optional(&mut tx)
        .await?
    else {
        return Ok(None);
    };
    let current = databases::health_from(&row)?;
    let (health, transition) = rule(&current, check);
    sql(SET_DATABASE_HEALTH)
        .bind(&check.database_id)
        .bind(health.status.as_str())
        .bind(health.consecutive_failures)
        .bind(health.changed_at)
        .bind(health.last_check_at)
        .bind(&health.last_error)
        .execute(&mut tx)
        .await
        .map_err(err)?;
    sql(INSERT)
        .bind(&check.database_id)
        .bind(check.at)
        .bind(check.ok)
        .bind(check.latency_ms)
        .bind(&check.error)
        .execute(&mut tx)
        .await
        .map_err(err)?;
    tx.commit().await?;
    Ok(transition)
}

pub(super) async fn counts<E: Engine>(
    store: &SqlStore<E>,
    database_id: &str,
    since: Timestamp,
) -> Result<HealthCounts> {
    let row = sql(COUNTS)
        .bind(database_id)
        .bind(since)
        .fetch_optional(&mut store.engine.read().await?)
        .await?;
    let Some(row) = row else {
        return Ok(HealthCounts::default());
    };
    Ok(HealthCounts {
        total: row.get("total")?,
        ok: row.get("good")?,
    })
}

pub(super) async fn list<E: Engine>(
    store: &SqlStore<E>,
    database_id: &str,
    before: Option<Timestamp>,
    limit: i64,
) -> Result<Vec<HealthCheck>> {
    let rows = sql(LIST)
        .bind(database_id)
        .bind(before.map_or(i64::MAX, Timestamp::millis))
        .bind(limit)
        .fetch_all(&mut store.engine.read().await?)
        .await?;
    decode(&rows, check_from)
}

pub(super) async fn prune<E: Engine>(store: &SqlStore<E>, before: Timestamp) -> Result<u64> {
    sql(PRUNE)
        .bind(before)
        .execute(&mut store.engine.writer().await?)
        .await
        .map_err(err)
}
