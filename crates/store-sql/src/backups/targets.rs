//! Backup targets: where backups are stored. A target is deleted only while nothing refers to
//! it.

use statehouse_core::backups::TargetRecord;
use statehouse_core::{Error, Result};

use super::{bind_sealed, by_ids, decode, err, json_text, locked, named, sealed_from};
use crate::SqlStore;
use crate::engine::{Engine, Row, Tx};
use crate::query::sql;

const LIST: &str = "SELECT id, workspace_id, name, kind, settings, created_at, updated_at, \
    key_id, wrapped_key, secret FROM backup_targets WHERE workspace_id = $1 ORDER BY name";
pub(super) const BY_ID: &str = "SELECT id, workspace_id, name, kind, settings, created_at, updated_at, \
    key_id, wrapped_key, secret FROM backup_targets WHERE workspace_id = $1 AND id = $2";
pub(super) const BY_NAME: &str = "SELECT id, workspace_id, name, kind, settings, created_at, updated_at, \
    key_id, wrapped_key, secret FROM backup_targets WHERE workspace_id = $1 AND name = $2";
const INSERT: &str = "INSERT INTO backup_targets (id, workspace_id, name, kind, settings, \
    created_at, updated_at, key_id, wrapped_key, secret) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const UPDATE: &str = "UPDATE backup_targets SET name = $3, kind = $4, settings = $5, \
    updated_at = $6, key_id = $7, wrapped_key = $8, secret = $9 WHERE workspace_id = $1 AND id = $2";
/// The target's row (locked on PostgreSQL before counting what refers to it; databases check
/// their target with it too).
pub(super) const EXISTS: &str = "SELECT id FROM backup_targets WHERE workspace_id = $1 AND id = $2";
/// `databases` and `backups` referring to target `$1`.
const REFERENCES: &str = "SELECT \
    (SELECT COUNT(*) FROM backup_databases WHERE target_id = $1) AS databases, \
    (SELECT COUNT(*) FROM backups WHERE target_id = $1) AS backups";
const DELETE: &str = "DELETE FROM backup_targets WHERE workspace_id = $1 AND id = $2";

fn target_from(row: &impl Row) -> Result<TargetRecord> {
    Ok(TargetRecord {
        id: row.get("id")?,
        workspace_id: row.get("workspace_id")?,
        name: row.get("name")?,
        kind: row.get("kind")?,
        settings: row.get("settings")?,
        secrets: sealed_from(row)?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

/// `None` when nothing refers to the target; the refusal otherwise.
fn in_use(row: &impl Row) -> Result<Option<Error>> {
    let (databases, backups): (i64, i64) = (row.get("databases")?, row.get("backups")?);
    if databases == 0 && backups == 0 {
        return Ok(None);
    }
    Ok(Some(Error::Conflict(format!(
        "the backup target is still used by {databases} database(s) and {backups} backup(s); \
         move those databases to another target and delete those backups first"
    ))))
}

pub(super) async fn create<E: Engine>(store: &SqlStore<E>, t: &TargetRecord) -> Result<()> {
    let q = sql(INSERT)
        .bind(&t.id)
        .bind(&t.workspace_id)
        .bind(&t.name)
        .bind(&t.kind)
        .bind(json_text(&t.settings))
        .bind(t.created_at)
        .bind(t.updated_at);
    bind_sealed(q, t.secrets.as_ref())
        .execute(&mut store.engine.writer().await?)
        .await
        .map_err(named("backup target", &t.name))?;
    Ok(())
}

pub(super) async fn list<E: Engine>(
    store: &SqlStore<E>,
    workspace_id: &str,
) -> Result<Vec<TargetRecord>> {
    let rows = sql(LIST)
        .bind(workspace_id)
        .fetch_all(&mut store.engine.read().await?)
        .await?;
    decode(&rows, target_from)
}

/// The target `BY_ID` or `BY_NAME` finds.
pub(super) async fn by<E: Engine>(
    store: &SqlStore<E>,
    statement: &'static str,
    workspace_id: &str,
    key: &str,
) -> Result<Option<TargetRecord>> {
    let row = by_ids(statement, workspace_id, key)
        .fetch_optional(&mut store.engine.read().await?)
        .await?;
    row.as_ref().map(target_from).transpose()
}

pub(super) async fn update<E: Engine>(store: &SqlStore<E>, t: &TargetRecord) -> Result<bool> {
    let q = sql(UPDATE)
        .bind(&t.workspace_id)
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.kind)
        .bind(json_text(&t.settings))
        .bind(t.updated_at);
    let done = bind_sealed(q, t.secrets.as_ref())
        .execute(&mut store.engine.writer().await?)
        .await
        .map_err(named("backup target", &t.name))?;
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
    let row = sql(REFERENCES).bind(id).fetch_one(&mut tx).await?;
    if let Some(refusal) = in_use(&row)? {
        return Err(refusal);
    }
    let done = by_ids(DELETE, workspace_id, id)
        .execute(&mut tx)
        .await
        .map_err(err)?;
    tx.commit().await?;
    Ok(done == 1)
}
