//! Every database's backup figures for `/metrics`, in one statement: the database row, its
//! workspace's name, and correlated subqueries over its runs and verifications (the same text
//! on both engines; `backups_database` and `backup_verifications_backup` serve them).

use statehouse_core::backups::{DatabaseFigures, HealthStatus};
use statehouse_core::{Error, Result};

use crate::SqlStore;
use crate::engine::{Engine, Row};
use crate::query::sql;

const FIGURES: &str = "SELECT w.name AS workspace, d.name AS database, d.enabled, d.settings, \
     d.created_at, d.health_status, d.health_failures, d.health_last_check_at, \
     (SELECT max(b.finished_at) FROM backups b WHERE b.database_id = d.id AND b.status = 'succeeded') \
        AS last_success_at, \
     (SELECT b.finished_at - b.started_at FROM backups b WHERE b.database_id = d.id \
        AND b.status = 'succeeded' ORDER BY b.finished_at DESC LIMIT 1) AS last_success_millis, \
     (SELECT b.stored_bytes FROM backups b WHERE b.database_id = d.id \
        AND b.status = 'succeeded' ORDER BY b.finished_at DESC LIMIT 1) AS last_success_bytes, \
     (SELECT count(*) FROM backups b WHERE b.database_id = d.id AND b.status = 'failed' \
        AND b.finished_at > COALESCE((SELECT max(s.finished_at) FROM backups s \
            WHERE s.database_id = d.id AND s.status = 'succeeded'), 0)) AS failures_since_success, \
     (SELECT v.at FROM backup_verifications v JOIN backups b ON b.id = v.backup_id \
        WHERE b.database_id = d.id ORDER BY v.at DESC LIMIT 1) AS last_verification_at, \
     (SELECT CASE WHEN v.ok THEN 1 ELSE 0 END FROM backup_verifications v \
        JOIN backups b ON b.id = v.backup_id \
        WHERE b.database_id = d.id ORDER BY v.at DESC LIMIT 1) AS last_verification_ok \
     FROM backup_databases d JOIN workspaces w ON w.id = d.workspace_id \
     ORDER BY w.name, d.name";

pub(super) async fn all<E: Engine>(store: &SqlStore<E>) -> Result<Vec<DatabaseFigures>> {
    let rows = sql(FIGURES)
        .fetch_all(&mut store.engine.read().await?)
        .await?;
    rows.iter().map(figures_from).collect()
}

fn figures_from(row: &impl Row) -> Result<DatabaseFigures> {
    let status: String = row.get("health_status")?;
    let verification_ok: Option<i64> = row.get("last_verification_ok")?;
    Ok(DatabaseFigures {
        workspace: row.get("workspace")?,
        database: row.get("database")?,
        enabled: row.get("enabled")?,
        settings: row.get("settings")?,
        created_at: row.get("created_at")?,
        health: HealthStatus::parse(&status).ok_or_else(|| {
            Error::Internal(format!("stored health status {status:?} is unknown"))
        })?,
        health_failures: row.get("health_failures")?,
        health_last_check_at: row.get("health_last_check_at")?,
        last_success_at: row.get("last_success_at")?,
        last_success_millis: row.get("last_success_millis")?,
        last_success_bytes: row.get("last_success_bytes")?,
        failures_since_success: row.get("failures_since_success")?,
        last_verification_at: row.get("last_verification_at")?,
        last_verification_ok: verification_ok.map(|ok| ok != 0),
    })
}
