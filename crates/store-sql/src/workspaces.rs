//! Workspaces: their names, serial protection and settings.

use async_trait::async_trait;

use statehouse_core::model::{Workspace, WorkspaceSettings};
use statehouse_core::store::workspaces::WorkspaceStore;
use statehouse_core::{Error, Result};

use crate::SqlStore;
use crate::engine::{Engine, Row, Tx};
use crate::error::DbError;
use crate::query::{Sql, sql};

fn workspace_from(row: &impl Row) -> Result<Workspace> {
    Ok(Workspace {
        id: row.get("id")?,
        name: row.get("name")?,
        serial_protection: row.get("serial_protection")?,
        created_at: row.get("created_at")?,
        settings: WorkspaceSettings {
            keep_versions: row.get("keep_versions")?,
            keep_versions_for_millis: row.get("keep_versions_for_ms")?,
            stale_lock_after_millis: row.get("stale_lock_after_ms")?,
            lock_wait_millis: row.get("lock_wait_ms")?,
        },
    })
}

/// A taken name, said with the name.
fn name_taken(name: &str) -> impl FnOnce(DbError) -> Error + '_ {
    move |e| {
        if e.is_unique() {
            Error::Conflict(format!("workspace {name:?} already exists"))
        } else {
            e.into()
        }
    }
}

#[async_trait]
impl<E: Engine> WorkspaceStore for SqlStore<E> {
    async fn create_workspace(&self, ws: &Workspace) -> Result<()> {
        sql(
            "INSERT INTO workspaces (id, name, serial_protection, created_at, keep_versions, \
             keep_versions_for_ms, stale_lock_after_ms, lock_wait_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&ws.id)
        .bind(&ws.name)
        .bind(ws.serial_protection)
        .bind(ws.created_at)
        .bind(ws.settings.keep_versions)
        .bind(ws.settings.keep_versions_for_millis)
        .bind(ws.settings.stale_lock_after_millis)
        .bind(ws.settings.lock_wait_millis)
        .execute(&mut self.engine.writer().await?)
        .await
        .map_err(name_taken(&ws.name))?;
        Ok(())
    }

    async fn workspace_by_name(&self, name: &str) -> Result<Option<Workspace>> {
        let row = sql("SELECT * FROM workspaces WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut self.engine.read().await?)
            .await?;
        row.as_ref().map(workspace_from).transpose()
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        let rows = sql("SELECT * FROM workspaces ORDER BY name")
            .fetch_all(&mut self.engine.read().await?)
            .await?;
        rows.iter().map(workspace_from).collect()
    }

    async fn update_workspace(&self, ws: &Workspace) -> Result<bool> {
        let done = sql(
            "UPDATE workspaces SET name = $1, serial_protection = $2, keep_versions = $3, \
             keep_versions_for_ms = $4, stale_lock_after_ms = $5, lock_wait_ms = $6 WHERE id = $7",
        )
        .bind(&ws.name)
        .bind(ws.serial_protection)
        .bind(ws.settings.keep_versions)
        .bind(ws.settings.keep_versions_for_millis)
        .bind(ws.settings.stale_lock_after_millis)
        .bind(ws.settings.lock_wait_millis)
        .bind(&ws.id)
        .execute(&mut self.engine.writer().await?)
        .await
        .map_err(name_taken(&ws.name))?;
        Ok(done == 1)
    }

    async fn delete_workspace(&self, workspace_id: &str) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        // The workspace row lock (PostgreSQL; SQLite's one writer excludes everyone) keeps a
        // concurrent first write from creating a state in it.
        let found: Option<String> = Sql::built(format!(
            "SELECT id FROM workspaces WHERE id = $1{}",
            self.for_update()
        ))
        .bind(workspace_id)
        .optional_scalar(&mut tx)
        .await?;
        if found.is_none() {
            return Ok(false);
        }
        let states: i64 = sql("SELECT COUNT(*) FROM states WHERE workspace_id = $1")
            .bind(workspace_id)
            .scalar(&mut tx)
            .await?;
        if states > 0 {
            return Err(Error::Conflict(format!(
                "the workspace still has {states} state(s), live or deleted; delete and purge them first"
            )));
        }
        crate::backups::delete_workspace_backups(&mut tx, workspace_id).await?;
        // A workspace's webhooks go with it (their deliveries cascade), like its tokens.
        for statement in [
            "DELETE FROM webhooks WHERE workspace_id = $1",
            "DELETE FROM tokens WHERE workspace_id = $1",
        ] {
            sql(statement).bind(workspace_id).execute(&mut tx).await?;
        }
        let done = sql("DELETE FROM workspaces WHERE id = $1")
            .bind(workspace_id)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(done == 1)
    }
}
