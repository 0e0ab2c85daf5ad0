//! Runs as the API shows them ([`BackupView`], [`VerificationView`]) and reading them: a
//! workspace's runs, one run, a run's verifications.

use serde::Serialize;
use statehouse_core::Result;
use statehouse_core::access::{Principal, Role};
use statehouse_core::backups::{BackupFilter, BackupRecord, BackupStatus, VerificationRecord};
use statehouse_core::clock::Timestamp;
use statehouse_core::model::Workspace;
use utoipa::ToSchema;

use crate::service::{BackupService, not_found};

/// A backup run as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackupView {
    pub id: String,
    /// The registered database's name.
    pub database: String,
    /// The PostgreSQL database dumped (none for a whole server's globals).
    pub db_name: Option<String>,
    /// `database` (a pg_dump archive) or `globals` (a whole server's roles, memberships and
    /// tablespaces: `pg_dumpall --globals-only`).
    pub kind: String,
    /// Shared by every backup of one whole-server run (restore them together with
    /// `POST …/backups/{id}/restore-server`).
    pub server_run: Option<String>,
    pub target: String,
    pub object: Option<String>,
    /// `queued`, `running`, `succeeded`, `failed`.
    pub status: String,
    /// `schedule`, `catch_up`, `manual`, `retry`.
    pub trigger: String,
    pub attempt: i64,
    pub requested_by: String,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    /// Bytes stored: of the finished object, or so far while running.
    pub stored_bytes: Option<i64>,
    pub dump_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub server_version: Option<String>,
    pub error: Option<String>,
    /// Latest verification: `restore` or `list` level, ok or not.
    pub verified_at: Option<String>,
    pub verification_level: Option<String>,
    pub verification_ok: Option<bool>,
    /// Recipients, zstd level, row counts at dump time.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// One verification as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VerificationView {
    pub id: String,
    pub backup_id: String,
    pub at: String,
    /// `restore` (scratch restore + row counts) or `list` (decrypt, checksum, table of contents).
    pub level: String,
    pub ok: bool,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<&VerificationRecord> for VerificationView {
    fn from(v: &VerificationRecord) -> Self {
        VerificationView {
            id: v.id.clone(),
            backup_id: v.backup_id.clone(),
            at: v.at.to_rfc3339(),
            level: v.level.clone(),
            ok: v.ok,
            detail: v.detail.clone(),
        }
    }
}

impl BackupService {
    pub(super) async fn view_backups(&self, runs: &[BackupRecord]) -> Result<Vec<BackupView>> {
        // Every listing is of one workspace: its databases' and targets' names, read once.
        let (databases, targets) = match runs.first() {
            Some(first) => (
                self.core
                    .backup_store()
                    .list_databases(&first.workspace_id)
                    .await?,
                self.core
                    .backup_store()
                    .list_targets(&first.workspace_id)
                    .await?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        let mut out = Vec::with_capacity(runs.len());
        for b in runs {
            let database = databases
                .iter()
                .find(|d| d.id == b.database_id)
                .map_or_else(|| b.database_id.clone(), |d| d.name.clone());
            let target = targets
                .iter()
                .find(|t| t.id == b.target_id)
                .map_or_else(|| b.target_id.clone(), |t| t.name.clone());
            out.push(BackupView {
                id: b.id.clone(),
                database,
                db_name: b.db_name.clone(),
                kind: b.kind.as_str().to_owned(),
                server_run: b.server_run.clone(),
                target,
                object: b.object.clone(),
                status: b.status.as_str().to_owned(),
                trigger: b.trigger.as_str().to_owned(),
                attempt: b.attempt,
                requested_by: b.requested_by.clone(),
                queued_at: b.queued_at.to_rfc3339(),
                started_at: b.started_at.map(|t| t.to_rfc3339()),
                finished_at: b.finished_at.map(|t| t.to_rfc3339()),
                duration_ms: b
                    .started_at
                    .zip(b.finished_at)
                    .map(|(s, f)| f.millis().saturating_sub(s.millis())),
                stored_bytes: b.stored_bytes,
                dump_bytes: b.dump_bytes,
                sha256: b.sha256.clone(),
                server_version: b.server_version.clone(),
                error: b.error.clone(),
                verified_at: b.verification.as_ref().map(|v| v.at.to_rfc3339()),
                verification_level: b.verification.as_ref().map(|v| v.level.clone()),
                verification_ok: b.verification.as_ref().map(|v| v.ok),
                detail: b.detail.clone(),
            });
        }
        Ok(out)
    }

    pub(crate) async fn find_backup(
        &self,
        workspace: &Workspace,
        id: &str,
    ) -> Result<BackupRecord> {
        self.core
            .backup_store()
            .backup(&workspace.id, id)
            .await?
            .ok_or_else(|| not_found("backup", id, &workspace.name))
    }

    /// Backups of a workspace (or of one database, or of one whole-server run), newest
    /// first.
    #[allow(clippy::too_many_arguments)]
    pub async fn list_backups(
        &self,
        who: &Principal,
        ws: &str,
        database: Option<&str>,
        status: Option<BackupStatus>,
        server_run: Option<&str>,
        before: Option<(Timestamp, String)>,
        limit: i64,
    ) -> Result<Vec<BackupView>> {
        let (workspace, _) = self
            .core
            .authorize(who, ws, Role::Viewer, "listing backups")
            .await?;
        let database_id = match database {
            Some(key) => Some(self.find_database(&workspace, key).await?.id),
            None => None,
        };
        let filter = BackupFilter {
            database_id,
            status,
            server_run: server_run.map(str::to_owned),
            before,
            limit,
        };
        let runs = self
            .core
            .backup_store()
            .list_backups(&workspace.id, &filter)
            .await?;
        self.view_backups(&runs).await
    }

    pub async fn backup(&self, who: &Principal, ws: &str, id: &str) -> Result<BackupView> {
        let (workspace, _) = self
            .core
            .authorize(who, ws, Role::Viewer, "reading a backup")
            .await?;
        let run = self.find_backup(&workspace, id).await?;
        Ok(self.view_backups(&[run]).await?.remove(0))
    }

    pub async fn list_verifications(
        &self,
        who: &Principal,
        ws: &str,
        id: &str,
    ) -> Result<Vec<VerificationView>> {
        let (workspace, _) = self
            .core
            .authorize(who, ws, Role::Viewer, "reading a backup")
            .await?;
        let run = self.find_backup(&workspace, id).await?;
        Ok(self
            .core
            .backup_store()
            .list_verifications(&run.id)
            .await?
            .iter()
            .map(VerificationView::from)
            .collect())
    }
}
