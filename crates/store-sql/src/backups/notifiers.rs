//! Notifiers: where backup and health events are sent.

use statehouse_core::Result;
use statehouse_core::backups::NotifierRecord;

use super::{
    bind_sealed, by_ids, decode, err, json_text, list_text, named, sealed_from, string_list,
};
use crate::SqlStore;
use crate::engine::{Engine, Row};
use crate::query::sql;

const LIST: &str = "SELECT id, workspace_id, name, kind, settings, events, database_ids, \
    enabled, created_at, updated_at, key_id, wrapped_key, secret FROM notifiers \
    WHERE workspace_id = $1 ORDER BY name";
pub(super) const BY_ID: &str = "SELECT id, workspace_id, name, kind, settings, events, database_ids, \
    enabled, created_at, updated_at, key_id, wrapped_key, secret FROM notifiers \
    WHERE workspace_id = $1 AND id = $2";
pub(super) const BY_NAME: &str = "SELECT id, workspace_id, name, kind, settings, events, database_ids, \
    enabled, created_at, updated_at, key_id, wrapped_key, secret FROM notifiers \
    WHERE workspace_id = $1 AND name = $2";
const INSERT: &str = "INSERT INTO notifiers (id, workspace_id, name, kind, settings, events, \
    database_ids, enabled, created_at, updated_at, key_id, wrapped_key, secret) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
const UPDATE: &str = "UPDATE notifiers SET name = $3, kind = $4, settings = $5, events = $6, \
    database_ids = $7, enabled = $8, updated_at = $9, key_id = $10, wrapped_key = $11, secret = $12 \
    WHERE workspace_id = $1 AND id = $2";
const DELETE: &str = "DELETE FROM notifiers WHERE workspace_id = $1 AND id = $2";

fn notifier_from(row: &impl Row) -> Result<NotifierRecord> {
    Ok(NotifierRecord {
        id: row.get("id")?,
        workspace_id: row.get("workspace_id")?,
        name: row.get("name")?,
        kind: row.get("kind")?,
        settings: row.get("settings")?,
        secrets: sealed_from(row)?,
        events: string_list(row, "events")?.ok_or_else(|| {
            statehouse_core::Error::Internal("stored column events is unexpectedly NULL".into())
        })?,
        database_ids: string_list(row, "database_ids")?,
        enabled: row.get("enabled")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

pub(super) async fn create<E: Engine>(store: &SqlStore<E>, n: &NotifierRecord) -> Result<()> {
    let q = sql(INSERT)
        .bind(&n.id)
        .bind(&n.workspace_id)
        .bind(&n.name)
        .bind(&n.kind)
        .bind(json_text(&n.settings))
        .bind(list_text(&n.events))
        .bind(n.database_ids.as_deref().map(list_text))
        .bind(n.enabled)
        .bind(n.created_at)
        .bind(n.updated_at);
    bind_sealed(q, n.secrets.as_ref())
        .execute(&mut store.engine.writer().await?)
        .await
        .map_err(named("notifier", &n.name))?;
    Ok(())
}

pub(super) async fn list<E: Engine>(
    store: &SqlStore<E>,
    workspace_id: &str,
) -> Result<Vec<NotifierRecord>> {
    let rows = sql(LIST)
        .bind(workspace_id)
        .fetch_all(&mut store.engine.read().await?)
        .await?;
    decode(&rows, notifier_from)
}

/// The notifier `BY_ID` or `BY_NAME` finds.
pub(super) async fn by<E: Engine>(
    store: &SqlStore<E>,
    statement: &'static str,
    workspace_id: &str,
    key: &str,
) -> Result<Option<NotifierRecord>> {
    let row = by_ids(statement, workspace_id, key)
        .fetch_optional(&mut store.engine.read().await?)
        .await?;
    row.as_ref().map(notifier_from).transpose()
}

pub(super) async fn update<E: Engine>(store: &SqlStore<E>, n: &NotifierRecord) -> Result<bool> {
    let q = sql(UPDATE)
        .bind(&n.workspace_id)
        .bind(&n.id)
        .bind(&n.name)
        .bind(&n.kind)
        .bind(json_text(&n.settings))
        .bind(list_text(&n.events))
        .bind(n.database_ids.as_deref().map(list_text))
        .bind(n.enabled)
        .bind(n.updated_at);
    let done = bind_sealed(q, n.secrets.as_ref())
        .execute(&mut store.engine.writer().await?)
        .await
        .map_err(named("notifier", &n.name))?;
    Ok(done == 1)
}

pub(super) async fn delete<E: Engine>(
    store: &SqlStore<E>,
    workspace_id: &str,
    id: &str,
) -> Result<bool> {
    let done = by_ids(DELETE, workspace_id, id)
        .execute(&mut store.engine.writer().await?)
        .await
        .map_err(err)?;
    Ok(done == 1)
}
