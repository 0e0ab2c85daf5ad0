//! Registered databases. A database is deleted with its health checks and its job-clock
//! entries, but only once it has no backups (nothing is dropped silently).

use statehouse_core::backups::{DatabaseHealth, DatabaseRecord, HealthStatus};
use statehouse_core::{Error, Result};

use super::{
    bind_sealed, by_ids, decode, err, jobs, json_text, locked, named, sealed_from, targets,
};
use crate::SqlStore;
use crate::engine::{Engine, Row, Tx};
use crate::query::sql;

const LIST: &str = "SELECT id, workspace_id, name, settings, target_id, enabled, created_at, \
    updated_at, key_id, wrapped_key, secret, health_status, health_failures, health_changed_at, \
    health_last_check_at, health_last_error FROM backup_databases WHERE workspace_id = $1 ORDER BY name";
const ALL: &str = "SELECT id, workspace_id, name, settings, target_id, enabled, created_at, \
    updated_at, key_id, wrapped_key, secret, health_status, health_failures, health_changed_at, \
    health_last_check_at, health_last_error FROM backup_databases ORDER BY workspace_id, name";
pub(super) const BY_ID: &str = "SELECT id, workspace_id, name, settings, target_id, enabled, created_at, \
    updated_at, key_id, wrapped_key, secret, health_status, health_failures, health_changed_at, \
    health_last_check_at, health_last_error FROM backup_databases WHERE workspace_id = $1 AND id = $2";
pub(super) const BY_NAME: &str = "SELECT id, workspace_id, name, settings, target_id, enabled, created_at, \
    updated_at, key_id, wrapped_key, secret, health_status, health_failures, health_changed_at, \
    health_last_check_at, health_last_error FROM backup_databases WHERE workspace_id = $1 AND name = $2";
const INSERT: &str = "INSERT INTO backup_databases (id, workspace_id, name, settings, \
    target_id, enabled, created_at, updated_at, key_id, wrapped_key, secret) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
const UPDATE: &str = "UPDATE backup_databases SET name = $3, settings = $4, target_id = $5, \
    enabled = $6, updated_at = $7, key_id = $8, wrapped_key = $9, secret = $10 \
    WHERE workspace_id = $1 AND id = $2";
/// The database's row (locked on PostgreSQL before counting its backups).
const EXISTS: &str = "SELECT id FROM backup_databases WHERE workspace_id = $1 AND id = $2";
const BACKUPS: &str = "SELECT COUNT(*) AS n FROM backups WHERE database_id = $1";
/// Job names that may belong to database `$1` (a superset: [`database_job`] decides).
const JOB_CANDIDATES: &str = "SELECT name FROM job_clock WHERE name LIKE '%' || $1 || '%'";
const DELETE: &str = "DELETE FROM backup_databases WHERE workspace_id = $1 AND id = $2";

/// Refusal of a database whose target is not one of its workspace's.
fn foreign_target(target_id: &str) -> Error {
    Error::BadRequest(format!(
        "backup target {target_id:?} does not exist in this workspace; create it first or pick one of the workspace's targets"
    ))
}

fn in_use(backups: i64) -> Error {
    Error::Conflict(format!(
        "the database still has {backups} backup(s); delete them first (nothing is dropped silently)"
    ))
}

/// Whether job `name` belongs to the database: `<kind>:<database id>` or
/// `<kind>:<database id>:<anything>`.
fn database_job(name: &str, database_id: &str) -> bool {
    name.split_once(':').is_some_and(|(_, rest)| {
        rest.strip_prefix(database_id)
            .is_some_and(|tail| tail.is_empty() || tail.starts_with(':'))
    })
}

/// A database's health columns.
pub(super) fn health_from(row: &impl Row) -> Result<DatabaseHealth> {
    let status: String = row.get("health_status")?;
    Ok(DatabaseHealth {
        status: HealthStatus::parse(&status).ok_or_else(|| {
            Error::Internal(format!("stored health status {status:?} is unknown"))
        })?,
        consecutive_failures: row.get("health_failures")?,
        changed_at: row.get("health_changed_at")?,
        last_check_at: row.get("health_last_check_at")?,
        last_error: row.get("health_last_error")?,
    })
}

fn database_from(row: &impl Row) -> Result<DatabaseRecord> {
    Ok(DatabaseRecord {
        id: row.get("id")?,
        workspace_id: row.get("workspace_id")?,
        name: row.get("name")?,
        settings: row.get("settings")?,
        secrets: sealed_from(row)?,
        target_id: row.get("target_id")?,
        enabled: row.get("enabled")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        health: health_from(row)?,
    })
}

/// Refuses a target that is not the workspace's (in the write's transaction; not locked on
/// PostgreSQL: the foreign key refuses a target deleted meanwhile).
async fn check_target<C: crate::Conn>(tx: &mut C, d: &DatabaseRecord) -> Result<()> {
    let target = by_ids(targets::EXISTS, &d.workspace_id, &d.target_id)
        .fetch_optional(tx)
        .await?;
    match target {
        Some(_) => Ok(()),
        None => Err(foreign_target(&d.target_id)),
    }
}

pub(super) async fn create<E: Engine>(store: &SqlStore<E>, d: &DatabaseRecord) -> Result<()> {
    let mut tx = store.engine.begin().await?;
    check_target(&mut tx, d).await?;
    let q = sql(INSERT)
        .bind(&d.id)
        .bind(&d.workspace_id)
        .bind(&d.name)
        .bind(json_text(&d.settings))
        .bind(&d.target_id)
        .bind(d.enabled)
        .bind(d.created_at)
        .bind(d.updated_at);
    bind_sealed(q, d.secrets.as_ref())
        .execute(&mut tx)
        .await
        .map_err(named("database", &d.name))?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn list<E: Engine>(
    store: &SqlStore<E>,
    workspace_id: &str,
) -> Result<Vec<DatabaseRecord>> {
    let rows = sql(LIST)
        .bind(workspace_id)
        .fetch_all(&mut store.engine.read().await?)
        .await?;
    decode(&rows, database_from)
}

pub(super) async fn all<E: Engine>(store: &SqlStore<E>) -> Result<Vec<DatabaseRecord>> {
    let rows = sql(ALL).fetch_all(&mut store.engine.read().await?).await?;
    decode(&rows, database_from)
}

/// The database `BY_ID` or `BY_NAME` finds.
pub(super) async fn by<E: Engine>(
    store: &SqlStore<E>,
    statement: &'static str,
    workspace_id: &str,
    key: &str,
) -> Result<Option<DatabaseRecord>> {
    let row = by_ids(statement, workspace_id, key)
        .fetch_optional(&mut store.engine.read().await?)
        .await?;
    row.as_ref().map(database_from).transpose()
}

pub(super) async fn update<E: Engine>(store: &SqlStore<E>, d: &DatabaseRecord) -> Result<bool> {
    let mut tx = store.engine.begin().await?;
    check_target(&mut tx, d).await?;
    let q = sql(UPDATE)
        .bind(&d.workspace_id)
        .bind(&d.id)
        .bind(&d.name)
        .bind(json_text(&d.settings))
        .bind(&d.target_id)
        .bind(d.enabled)
        .bind(d.updated_at);
    let done = bind_sealed(q, d.secrets.as_ref())
        .execute(&mut tx)
        .await
        .map_err(named("database", &d.name))?;
    tx.commit().await?;
    Ok(done == 1)
}

pub(super) async fn delete<E: Engine>(
    store: &SqlStore<E>,
    workspace_id: &str,
    id: &str,
) -> Result<bool> {
    let mut tx = store.engine.begin().await?;
    let found = locked(store.dialect(), EXISTS)
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&mut tx)
        .await?;
    if found.is_none() {
        return Ok(false);
    }
    let backups: i64 = sql(BACKUPS).bind(id).scalar(&mut tx).await?;
    if backups > 0 {
        return Err(in_use(backups));
    }
    let candidates = sql(JOB_CANDIDATES).bind(id).fetch_all(&mut tx).await?;
    for job in candidates {
        let name: String = job.get("name")?;
        if database_job(&name, id) {
            jobs::delete_in(&mut tx, &name).await?;
        }
    }
    let done = by_ids(DELETE, workspace_id, id)
        .execute(&mut tx)
        .await
        .map_err(err)?;
    tx.commit().await?;
    Ok(done == 1)
}

#[cfg(test)]
mod tests {
    use super::database_job;

    #[test]
    fn jobs_belong_to_a_database_by_exact_id() {
        assert!(database_job("backup:db-1", "db-1"));
        assert!(database_job("verify:db-1:weekly", "db-1"));
        assert!(!database_job("backup:db-10", "db-1"));
        assert!(!database_job("self-backup", "db-1"));
        assert!(!database_job("db-1", "db-1"));
    }
}
