//! Starting runs: a new run's record, the scheduler's runs, "queue a backup", "backup now" (run
//! in this process), and the retry queued after a failure.

use serde_json::json;
use statehouse_core::Result;
use statehouse_core::access::{Principal, Role};
use statehouse_core::audit::AuditRecord;
use statehouse_core::backups::{
    BackupKind, BackupRecord, BackupStatus, BackupTrigger, DatabaseRecord,
};
use statehouse_core::clock::Timestamp;
use statehouse_core::service::new_id;

use super::{BackupView, ProgressFn};
use crate::service::BackupService;
use crate::service::server_runs::{grouped, is_whole_server};
use crate::settings::DatabaseSettings;

impl BackupService {
    pub(super) fn new_run(
        &self,
        db: &DatabaseRecord,
        db_name: Option<String>,
        trigger: BackupTrigger,
        attempt: i64,
        requested_by: &str,
        not_before: Timestamp,
    ) -> BackupRecord {
        BackupRecord {
            id: new_id(),
            workspace_id: db.workspace_id.clone(),
            database_id: db.id.clone(),
            db_name,
            kind: BackupKind::Database,
            server_run: None,
            target_id: db.target_id.clone(),
            object: None,
            status: BackupStatus::Queued,
            trigger,
            attempt,
            requested_by: requested_by.to_owned(),
            queued_at: self.core.now(),
            not_before,
            started_at: None,
            finished_at: None,
            lease_owner: None,
            lease_until: None,
            stored_bytes: None,
            dump_bytes: None,
            sha256: None,
            server_version: None,
            error: None,
            detail: json!({}),
            verification: None,
        }
    }

    /// A scheduled run of `db` (the scheduler enqueues it with its job-clock advance).
    pub(crate) fn scheduled_run(
        &self,
        db: &DatabaseRecord,
        trigger: BackupTrigger,
    ) -> BackupRecord {
        grouped(
            db,
            self.new_run(db, None, trigger, 1, "schedule", self.core.now()),
        )
    }

    /// Queues a backup for the workers (workspace editor) and returns at once.
    pub async fn queue_backup(&self, who: &Principal, ws: &str, key: &str) -> Result<BackupView> {
        let record = AuditRecord::by(who, "backup.queue", self.core.now())
            .workspace(ws)
            .target(key);
        let result = async {
            let (workspace, _) = self
                .core
                .authorize(who, ws, Role::Editor, "starting backups")
                .await?;
            let db = self.find_database(&workspace, key).await?;
            let run = grouped(
                &db,
                self.new_run(
                    &db,
                    None,
                    BackupTrigger::Manual,
                    1,
                    &who.actor(),
                    self.core.now(),
                ),
            );
            self.core.backup_store().insert_backup(&run).await?;
            Ok(self.view_backups(&[run]).await?.remove(0))
        }
        .await;
        self.core
            .conclude(result, record, |v, r| {
                (r.detail(json!({"backup": v.id})), None)
            })
            .await
    }

    /// Backs `key` up now in this process (workspace editor) and returns the finished runs
    /// (in whole-server mode: the server's globals, then one per database). `progress` hears
    /// the bytes stored so far.
    pub async fn backup_now(
        &self,
        who: &Principal,
        ws: &str,
        key: &str,
        progress: Option<ProgressFn>,
    ) -> Result<Vec<BackupView>> {
        let record = AuditRecord::by(who, "backup.run", self.core.now())
            .workspace(ws)
            .target(key);
        let result = async {
            let (workspace, _) = self
                .core
                .authorize(who, ws, Role::Editor, "starting backups")
                .await?;
            let db = self.find_database(&workspace, key).await?;
            let settings = DatabaseSettings::from_json(&db.settings)?;
            let names = self.databases_to_dump(&db, &settings).await?;
            let server_run = is_whole_server(&settings).then(new_id);
            let globals = server_run.as_ref().map(|_| (BackupKind::Globals, None));
            let dumps = names.into_iter().map(|n| (BackupKind::Database, Some(n)));
            let mut finished = Vec::new();
            for (kind, name) in globals.into_iter().chain(dumps) {
                let mut run = self.new_run(
                    &db,
                    name,
                    BackupTrigger::Manual,
                    1,
                    &who.actor(),
                    self.core.now(),
                );
                run.kind = kind;
                run.server_run = server_run.clone();
                run.status = BackupStatus::Running;
                run.started_at = Some(self.core.now());
                run.lease_owner = Some(self.worker_id.clone());
                run.lease_until = Some(self.lease_until());
                self.core.backup_store().insert_backup(&run).await?;
                finished.push(self.execute(run, progress.clone()).await);
            }
            self.view_backups(&finished).await
        }
        .await;
        self.core
            .conclude(result, record, |runs, r| {
                let ids: Vec<&str> = runs.iter().map(|v| v.id.as_str()).collect();
                let failed = runs.iter().filter(|v| v.status == "failed").count();
                (r.detail(json!({"backups": ids, "failed": failed})), None)
            })
            .await
    }

    pub(crate) async fn retry_after_failure(&self, run: &BackupRecord, db: &DatabaseRecord) {
        let Ok(settings) = DatabaseSettings::from_json(&db.settings) else {
            return;
        };
        if run.attempt > i64::from(settings.retries) || !db.enabled {
            return;
        }
        let attempt = run.attempt + 1;
        let delay =
            i64::try_from(DatabaseSettings::retry_delay(attempt).as_millis()).unwrap_or(i64::MAX);
        let mut retry = self.new_run(
            db,
            run.db_name.clone(),
            BackupTrigger::Retry,
            attempt,
            &run.requested_by,
            self.core.now().plus_millis(delay),
        );
        retry.kind = run.kind;
        retry.server_run = run.server_run.clone();
        if let Err(e) = self.core.backup_store().insert_backup(&retry).await {
            tracing::warn!(backup = %run.id, error = %e, "queueing a retry failed");
        }
    }
}
