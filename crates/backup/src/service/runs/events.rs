//! Events about runs (`backup.succeeded`, `verification.failed`, …): their payload, and the
//! workspace and database names they carry.

use serde_json::json;
use statehouse_core::backups::BackupRecord;
use statehouse_core::events::NewEvent;

use crate::service::BackupService;

impl BackupService {
    pub(crate) async fn emit_backup_event(
        &self,
        run: &BackupRecord,
        kind: &str,
        extra: serde_json::Value,
    ) {
        let event = self.backup_event(run, kind, extra).await;
        if let Err(e) = self.core.emit_event(event).await {
            tracing::warn!(backup = %run.id, error = %e, "emitting a backup event failed");
        }
    }

    /// An event about `run` (its ids, names, object and size, plus `extra`), by whoever asked
    /// for the run.
    pub(crate) async fn backup_event(
        &self,
        run: &BackupRecord,
        kind: &str,
        extra: serde_json::Value,
    ) -> NewEvent {
        let (workspace, database) = self.names_of(&run.workspace_id, &run.database_id).await;
        let mut payload = json!({
            "backup_id": run.id,
            "database_id": run.database_id,
            "database": database,
            "db_name": run.db_name,
            "kind": run.kind.as_str(),
            "server_run": run.server_run,
            "object": run.object,
            "stored_bytes": run.stored_bytes,
            "trigger": run.trigger.as_str(),
            "attempt": run.attempt,
        });
        if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                p.insert(k.clone(), v.clone());
            }
        }
        NewEvent {
            at: self.core.now(),
            kind: kind.to_owned(),
            workspace_id: Some(run.workspace_id.clone()),
            workspace: Some(workspace),
            subject: Some(database),
            actor: run.requested_by.clone(),
            payload,
        }
    }

    /// Workspace and database names for events (ids when they are gone).
    pub(crate) async fn names_of(&self, workspace_id: &str, database_id: &str) -> (String, String) {
        let workspace = self
            .core
            .workspace_name(workspace_id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| workspace_id.to_owned());
        let database = self
            .core
            .backup_store()
            .database(workspace_id, database_id)
            .await
            .ok()
            .flatten()
            .map(|d| d.name)
            .unwrap_or_else(|| database_id.to_owned());
        (workspace, database)
    }
}
