//! Executing a claimed run: connecting to the database, keeping the run's lease, dumping into the
//! target, recording the outcome, and following up (retention, verification, a retry).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use statehouse_core::backups::{
    BackupFilter, BackupKind, BackupRecord, BackupResult, BackupStatus, DatabaseRecord,
};
use statehouse_core::clock::Timestamp;
use statehouse_core::events::kind;
use statehouse_core::{Error, Result};

use super::ProgressFn;
use super::progress::CountingTarget;
use crate::connection::PgConnection;
use crate::pg_tools::find_pg_tool_for_server;
use crate::pipeline::DumpOptions;
use crate::service::BackupService;
use crate::service::server_runs::is_whole_server;
use crate::settings::{DatabaseMode, DatabaseSettings};
use crate::{object_name, run_backup};

impl BackupService {
    pub(crate) fn connection_for(
        &self,
        db: &DatabaseRecord,
        settings: &DatabaseSettings,
        database: &str,
    ) -> Result<PgConnection> {
        Ok(settings.connection.to_pg(
            database,
            self.database_password(db)?,
            self.outbound().clone(),
        ))
    }

    pub(crate) fn lease_until(&self) -> Timestamp {
        let millis = i64::try_from(self.options.lease.as_millis()).unwrap_or(i64::MAX);
        self.core.now().plus_millis(millis)
    }

    /// The PostgreSQL databases a run of `db` dumps: its own, or the server's (whole-server
    /// mode, discovered now).
    pub(super) async fn databases_to_dump(
        &self,
        db: &DatabaseRecord,
        settings: &DatabaseSettings,
    ) -> Result<Vec<String>> {
        match &settings.mode {
            DatabaseMode::Single => Ok(vec![settings.connection.database.clone()]),
            DatabaseMode::Server { include, exclude } => {
                let conn = self.connection_for(db, settings, &settings.connection.database)?;
                let found = crate::discover_databases(&conn, include, exclude)
                    .await
                    .map_err(|e| {
                        Error::Config(format!("listing the server's databases failed: {e}"))
                    })?;
                if found.is_empty() {
                    return Err(Error::Config(format!(
                        "no database on {} matches the include/exclude patterns",
                        settings.connection.display()
                    )));
                }
                Ok(found)
            }
        }
    }

    /// Runs a claimed (running, leased) run to its end, records the outcome, emits its event,
    /// and follows up: retention and verification after a success, a retry after a failure.
    /// Returns the run as finished.
    pub(crate) async fn execute(
        &self,
        mut run: BackupRecord,
        progress: Option<ProgressFn>,
    ) -> BackupRecord {
        let db = match self
            .core
            .backup_store()
            .database(&run.workspace_id, &run.database_id)
            .await
        {
            Ok(Some(db)) => db,
            Ok(None) => {
                let result = self.failed_result(&run, "its database was unregistered".into());
                self.finish(&mut run, result).await;
                return run;
            }
            Err(e) => {
                let result = self.failed_result(&run, e.to_string());
                self.finish(&mut run, result).await;
                return run;
            }
        };
        let renewer = {
            let service = self.clone();
            let id = run.id.clone();
            tokio::spawn(async move {
                let every = service.options.lease / 3;
                loop {
                    tokio::time::sleep(every).await;
                    let until = service.lease_until();
                    match service
                        .core
                        .backup_store()
                        .renew_backup(&id, &service.worker_id, until, None, None)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(e) => {
                            tracing::warn!(backup = %id, error = %e, "renewing a backup lease failed")
                        }
                    }
                }
            })
        };
        let outcome = self.perform(&mut run, &db, progress).await;
        renewer.abort();
        let result = match outcome {
            Ok(result) => result,
            Err(e) => self.failed_result(&run, e.to_string()),
        };
        let succeeded = result.status == BackupStatus::Succeeded;
        self.finish(&mut run, result).await;
        if succeeded {
            if let Err(e) = self.apply_retention(&db).await {
                tracing::warn!(database = %db.name, error = %e, "retention failed; retrying after the next backup");
            }
            let verify_after = DatabaseSettings::from_json(&db.settings)
                .map(|s| s.verify.after_backup)
                .unwrap_or(false);
            if verify_after && let Err(e) = self.verify_run(&run, &db).await {
                tracing::warn!(backup = %run.id, error = %e, "verification could not run");
            }
        } else {
            self.retry_after_failure(&run, &db).await;
        }
        run
    }

    fn failed_result(&self, run: &BackupRecord, error: String) -> BackupResult {
        BackupResult {
            status: BackupStatus::Failed,
            finished_at: self.core.now(),
            db_name: run.db_name.clone(),
            object: run.object.clone(),
            stored_bytes: None,
            dump_bytes: None,
            sha256: None,
            server_version: run.server_version.clone(),
            error: Some(error),
            detail: run.detail.clone(),
        }
    }

    /// Records the end of a run and emits `backup.succeeded`/`backup.failed`.
    async fn finish(&self, run: &mut BackupRecord, result: BackupResult) {
        match self
            .core
            .backup_store()
            .finish_backup(&run.id, &self.worker_id, &result)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(backup = %run.id, "the backup's lease was lost before it finished; its outcome is not recorded");
                return;
            }
            Err(e) => {
                tracing::error!(backup = %run.id, error = %e, "recording a backup's outcome failed");
                return;
            }
        }
        run.status = result.status;
        run.finished_at = Some(result.finished_at);
        run.db_name = result.db_name.clone();
        run.object = result.object.clone();
        run.stored_bytes = result.stored_bytes;
        run.dump_bytes = result.dump_bytes;
        run.sha256 = result.sha256.clone();
        run.server_version = result.server_version.clone();
        run.error = result.error.clone();
        run.detail = result.detail.clone();
        run.lease_owner = None;
        run.lease_until = None;
        let db_name = run.db_name.as_deref().unwrap_or_default();
        let kind = if run.status == BackupStatus::Succeeded {
            tracing::info!(backup = %run.id, database = %db_name,
                object = run.object.as_deref().unwrap_or_default(),
                bytes = run.stored_bytes.unwrap_or(0), "backup succeeded");
            kind::BACKUP_SUCCEEDED
        } else {
            tracing::warn!(backup = %run.id, database = %db_name,
                error = run.error.as_deref().unwrap_or_default(), "backup failed");
            kind::BACKUP_FAILED
        };
        self.emit_backup_event(run, kind, json!({"error": run.error}))
            .await;
    }

    /// Dumps one database into the target. In whole-server mode a run without a database
    /// name first discovers the server's databases and queues one run for each other one.
    async fn perform(
        &self,
        run: &mut BackupRecord,
        db: &DatabaseRecord,
        progress: Option<ProgressFn>,
    ) -> Result<BackupResult> {
        if run.kind == BackupKind::Globals {
            return self.perform_globals(run, db).await;
        }
        let settings = DatabaseSettings::from_json(&db.settings)?;
        let db_name = match &run.db_name {
            Some(name) => name.clone(),
            None => {
                let mut names = self.databases_to_dump(db, &settings).await?.into_iter();
                let first = names
                    .next()
                    .unwrap_or_else(|| settings.connection.database.clone());
                // In whole-server mode: the other databases and the server's globals, in the
                // same whole-server run.
                let server_run = run.server_run.clone().unwrap_or_else(|| run.id.clone());
                let others = names.map(|n| (BackupKind::Database, Some(n)));
                let globals = is_whole_server(&settings).then_some((BackupKind::Globals, None));
                for (kind, name) in others.chain(globals) {
                    let mut sibling =
                        self.new_run(db, name, run.trigger, 1, &run.requested_by, self.core.now());
                    sibling.kind = kind;
                    sibling.server_run = Some(server_run.clone());
                    self.core.backup_store().insert_backup(&sibling).await?;
                }
                first
            }
        };
        run.db_name = Some(db_name.clone());
        let connection = self.connection_for(db, &settings, &db_name)?;
        let (pg_dump, version) =
            find_pg_tool_for_server("pg_dump", &connection, &self.options.pg_tools).await?;
        run.server_version = Some(version.text.clone());
        let target_record = self
            .core
            .backup_store()
            .target(&db.workspace_id, &db.target_id)
            .await?
            .ok_or_else(|| Error::Config("the database's storage target is gone".into()))?;
        let written = Arc::new(AtomicU64::new(0));
        let target = CountingTarget {
            inner: self.open_stored_target(&target_record)?,
            written: written.clone(),
        };
        let name = object_name(&db_name, self.core.now(), &run.id);
        self.core
            .backup_store()
            .renew_backup(
                &run.id,
                &self.worker_id,
                self.lease_until(),
                Some(&name),
                Some(&db_name),
            )
            .await?;
        run.object = Some(name.clone());
        let encryption = self.encryption_for(&db.workspace_id).await?;
        let expected = self.previous_size(db).await;
        // Row counts cost a scan of every table; only a full verification (which needs a
        // verification server) compares them.
        let (config, _) = self.backup_config(&db.workspace_id).await?;
        let options = DumpOptions {
            pg_dump: pg_dump.path,
            connection,
            zstd_level: settings.zstd_level,
            encryption,
            count_rows: config.verification_server.is_some(),
            stall_timeout: Duration::from_secs(settings.stall_timeout_secs),
            total_timeout: Duration::from_secs(settings.total_timeout_secs),
            exclusions: settings.exclude.clone(),
        };
        // Progress: to the caller who asked for it (every half second) and into the run's row
        // (every two seconds), where every replica's pages read it.
        let reporter = {
            let written = written.clone();
            let service = self.clone();
            let id = run.id.clone();
            tokio::spawn(async move {
                let mut recorded = 0;
                for tick in 0u64.. {
                    let bytes = written.load(Ordering::Relaxed);
                    if let Some(report) = &progress {
                        report(bytes, expected);
                    }
                    if tick % 4 == 3 && bytes != recorded {
                        recorded = bytes;
                        let stored = i64::try_from(bytes).unwrap_or(i64::MAX);
                        if let Err(e) = service
                            .core
                            .backup_store()
                            .report_backup_progress(&id, &service.worker_id, stored)
                            .await
                        {
                            tracing::debug!(backup = %id, error = %e, "recording progress failed");
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        };
        let dumped = run_backup(
            &options,
            Some(version.text.clone()),
            &target,
            &name,
            expected,
            self.core.clock.as_ref(),
        )
        .await;
        reporter.abort();
        let metadata = dumped?;
        Ok(BackupResult {
            status: BackupStatus::Succeeded,
            finished_at: self.core.now(),
            db_name: Some(db_name),
            object: Some(name),
            stored_bytes: i64::try_from(metadata.stored_bytes).ok(),
            dump_bytes: i64::try_from(metadata.dump_bytes).ok(),
            sha256: Some(metadata.sha256.clone()),
            server_version: Some(version.text),
            error: None,
            detail: json!({
                "recipients": metadata.recipients,
                "zstd_level": metadata.zstd_level,
                "row_counts": metadata.row_counts,
                "pg_dump_version": pg_dump.major,
            }),
        })
    }

    /// The newest successful backup's size: the upload's part size follows it.
    async fn previous_size(&self, db: &DatabaseRecord) -> Option<u64> {
        let filter = BackupFilter {
            database_id: Some(db.id.clone()),
            status: Some(BackupStatus::Succeeded),
            server_run: None,
            before: None,
            limit: 1,
        };
        let last = self
            .core
            .backup_store()
            .list_backups(&db.workspace_id, &filter)
            .await
            .ok()?;
        last.first()
            .and_then(|b| b.stored_bytes)
            .and_then(|n| u64::try_from(n).ok())
    }
}
