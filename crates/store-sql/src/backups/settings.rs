//! A workspace's backup settings, and what deleting a workspace means for its backups.

use statehouse_core::backups::WorkspaceBackupSettings;
use statehouse_core::{Error, Result};

use super::{bind_sealed, err, json_text, sealed_from};
use crate::SqlStore;
use crate::engine::{Conn, Engine, Row};
use crate::query::sql;

const GET: &str = "SELECT workspace_id, settings, updated_at, key_id, wrapped_key, secret \
    FROM workspace_backup_settings WHERE workspace_id = $1";
const PUT: &str = "INSERT INTO workspace_backup_settings (workspace_id, settings, \
    updated_at, key_id, wrapped_key, secret) VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (workspace_id) DO UPDATE SET settings = excluded.settings, \
    updated_at = excluded.updated_at, key_id = excluded.key_id, \
    wrapped_key = excluded.wrapped_key, secret = excluded.secret";
/// What of a workspace's backup configuration would be lost with it.
const WORKSPACE_ROWS: &str = "SELECT \
    (SELECT COUNT(*) FROM backup_databases WHERE workspace_id = $1) AS databases, \
    (SELECT COUNT(*) FROM backup_targets WHERE workspace_id = $1) AS targets, \
    (SELECT COUNT(*) FROM notifiers WHERE workspace_id = $1) AS notifiers";
/// The workspace's own backup settings go with it (like its tokens).
const DELETE: &str = "DELETE FROM workspace_backup_settings WHERE workspace_id = $1";

fn settings_from(row: &impl Row) -> Result<WorkspaceBackupSettings> {
    Ok(WorkspaceBackupSettings {
        workspace_id: row.get("workspace_id")?,
        settings: row.get("settings")?,
        secrets: sealed_from(row)?,
        updated_at: row.get("updated_at")?,
    })
}

pub(super) async fn get<E: Engine>(
    store: &SqlStore<E>,
    workspace_id: &str,
) -> Result<Option<WorkspaceBackupSettings>> {
    let row = sql(GET)
        .bind(workspace_id)
        .fetch_optional(&mut store.engine.read().await?)
        .await?;
    row.as_ref().map(settings_from).transpose()
}

pub(super) async fn put<E: Engine>(store: &SqlStore<E>, s: &WorkspaceBackupSettings) -> Result<()> {
    let q = sql(PUT)
        .bind(&s.workspace_id)
        .bind(json_text(&s.settings))
        .bind(s.updated_at);
    bind_sealed(q, s.secrets.as_ref())
        .execute(&mut store.engine.writer().await?)
        .await
        .map_err(err)?;
    Ok(())
}

/// Refuses to delete a workspace that still has backup databases, targets or notifiers, and
/// removes its backup settings — inside `delete_workspace`'s transaction (which on PostgreSQL
/// holds the workspace's row lock: no backup row can be added to it meanwhile).
pub(crate) async fn delete_workspace_backups<C: Conn>(
    tx: &mut C,
    workspace_id: &str,
) -> Result<()> {
    let row = sql(WORKSPACE_ROWS)
        .bind(workspace_id)
        .fetch_one(&mut *tx)
        .await?;
    let databases: i64 = row.get("databases")?;
    let targets: i64 = row.get("targets")?;
    let notifiers: i64 = row.get("notifiers")?;
    if databases + targets + notifiers > 0 {
        return Err(Error::Conflict(format!(
            "the workspace still has {databases} backup database(s), {targets} backup target(s) and \
             {notifiers} notifier(s); delete them (and their backups) first"
        )));
    }
    sql(DELETE)
        .bind(workspace_id)
        .execute(tx)
        .await
        .map_err(err)?;
    Ok(())
}
