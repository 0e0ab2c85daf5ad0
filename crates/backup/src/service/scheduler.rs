//! The scheduler every server runs: due backups are queued (exactly once across replicas, by
//! compare-and-set on the job clock), queued runs are claimed under a lease up to this
//! process's concurrency limit, runs whose worker died are failed and retried, scheduled
//! verifications and health checks run, old health checks are pruned.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use statehouse_core::Result;
use statehouse_core::backups::{BackupFilter, BackupStatus, BackupTrigger, DatabaseRecord};
use statehouse_core::events::kind;
use tokio::sync::watch;

use statehouse_core::clock::Timestamp;

use super::health::HEALTH_HISTORY_MILLIS;
use super::{BackupService, SelfBackupSetup};
use crate::schedule::is_catch_up;
use crate::settings::DatabaseSettings;

/// How often the scheduler looks for due work.
pub const TICK_EVERY: Duration = Duration::from_secs(5);
/// Due jobs of one kind handled per tick.
const DUE_BATCH: i64 = 200;

/// What one scheduler pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Scheduled runs queued (caught-up ones included).
    pub queued: usize,
    pub caught_up: usize,
    /// Queued runs this process started.
    pub started: usize,
    /// Runs failed because their worker stopped renewing its lease.
    pub abandoned: usize,
    pub verifications: usize,
    pub health_checks: usize,
    /// Backups of statehouse's own store started.
    pub self_backups: usize,
}

/// Job-clock name of the self-backup schedule.
const SELF_BACKUP_JOB: &str = "self-backup";

impl BackupService {
    /// One scheduler pass at the clock's current time. Work it starts runs in the background
    /// ([`BackupService::wait_idle`] waits for it).
    pub async fn tick(&self) -> Result<TickReport> {
        let now = self.core.now();
        let store = self.core.backup_store();
        let mut report = TickReport::default();

        let abandoned = store
            .fail_abandoned_backups(
                now,
                "the statehouse process running this backup stopped (its lease expired)",
            )
            .await?;
        for run in abandoned {
            report.abandoned += 1;
            self.emit_backup_event(
                &run,
                kind::BACKUP_FAILED,
                serde_json::json!({"error": run.error}),
            )
            .await;
            if let Ok(Some(db)) = store.database(&run.workspace_id, &run.database_id).await {
                self.retry_after_failure(&run, &db).await;
            }
        }

        let databases = store.all_databases().await?;
        let find = |job: &str, prefix: &str| -> Option<(DatabaseRecord, DatabaseSettings)> {
            let id = job.strip_prefix(prefix)?;
            let db = databases.iter().find(|d| d.id == id)?.clone();
            let settings = DatabaseSettings::from_json(&db.settings).ok()?;
            Some((db, settings))
        };

        for (job, due) in store.due_jobs("backup:", now, DUE_BATCH).await? {
            let Some((db, settings)) = find(&job, "backup:") else {
                store.delete_job(&job).await?;
                continue;
            };
            let Some(schedule) = settings.schedule.as_ref().filter(|_| db.enabled) else {
                store.delete_job(&job).await?;
                continue;
            };
            let next = schedule.next_after(now)?;
            let trigger = if is_catch_up(due, now) {
                BackupTrigger::CatchUp
            } else {
                BackupTrigger::Schedule
            };
            let run = self.scheduled_run(&db, trigger);
            if store.advance_job(&job, Some(due), next, Some(&run)).await? {
                report.queued += 1;
                if trigger == BackupTrigger::CatchUp {
                    report.caught_up += 1;
                    tracing::info!(database = %db.name, due = %due.to_rfc3339(), "a scheduled backup was missed while no server ran; running it now");
                }
            }
        }

        for (job, due) in store.due_jobs("verify:", now, DUE_BATCH).await? {
            let Some((db, settings)) = find(&job, "verify:") else {
                store.delete_job(&job).await?;
                continue;
            };
            let Some(schedule) = settings.verify.schedule.as_ref().filter(|_| db.enabled) else {
                store.delete_job(&job).await?;
                continue;
            };
            let next = schedule.next_after(now)?;
            if !store.advance_job(&job, Some(due), next, None).await? {
                continue;
            }
            let newest = store
                .list_backups(
                    &db.workspace_id,
                    &BackupFilter {
                        database_id: Some(db.id.clone()),
                        status: Some(BackupStatus::Succeeded),
                        server_run: None,
                        before: None,
                        limit: 1,
                    },
                )
                .await?;
            if let Some(run) = newest.into_iter().next() {
                report.verifications += 1;
                let service = self.clone();
                self.spawn_counted(async move {
                    if let Err(e) = service.verify_run(&run, &db).await {
                        tracing::warn!(backup = %run.id, error = %e, "scheduled verification could not run");
                    }
                });
            }
        }

        for (job, due) in store.due_jobs("health:", now, DUE_BATCH).await? {
            let Some((db, settings)) = find(&job, "health:") else {
                store.delete_job(&job).await?;
                continue;
            };
            if !db.enabled || !settings.health.enabled {
                store.delete_job(&job).await?;
                continue;
            }
            let every = i64::try_from(settings.health.interval_secs.saturating_mul(1_000))
                .unwrap_or(i64::MAX);
            // The next check follows this one by the interval, not the missed slots.
            let next = due.plus_millis(every).max(now.plus_millis(every / 2));
            if !store.advance_job(&job, Some(due), next, None).await? {
                continue;
            }
            report.health_checks += 1;
            let service = self.clone();
            self.spawn_counted(async move {
                if let Err(e) = service.run_health_check(&db).await {
                    tracing::warn!(database = %db.name, error = %e, "recording a health check failed");
                }
            });
        }

        if let Some(setup) = &self.options.self_backup
            && self.self_backup_due(setup, now).await?
        {
            report.self_backups += 1;
            let service = self.clone();
            let setup = setup.clone();
            self.spawn_counted(async move {
                match service.self_backup_now(&setup).await {
                    Ok(meta) => tracing::info!(object = %meta.object, bytes = meta.stored_bytes, "statehouse backed up its own store"),
                    Err(e) => tracing::error!(error = %e, "backing up statehouse's own store failed; retrying at the next scheduled time"),
                }
            });
        }

        let running = self.running_backups.load(Ordering::SeqCst);
        let free = self.options.concurrency.saturating_sub(running);
        if free > 0 {
            let claimed = store
                .claim_backups(now, &self.worker_id, self.lease_until(), free as i64)
                .await?;
            for run in claimed {
                report.started += 1;
                self.running_backups.fetch_add(1, Ordering::SeqCst);
                let service = self.clone();
                self.spawn_counted(async move {
                    service.execute(run, None).await;
                    service.running_backups.fetch_sub(1, Ordering::SeqCst);
                });
            }
        }
        Ok(report)
    }

    /// Whether the self-backup is due now (this process won it); plans the first run.
    async fn self_backup_due(&self, setup: &SelfBackupSetup, now: Timestamp) -> Result<bool> {
        let store = self.core.backup_store();
        let next = setup.policy.schedule.next_after(now)?;
        match store.job_next_run(SELF_BACKUP_JOB).await? {
            None => {
                store.advance_job(SELF_BACKUP_JOB, None, next, None).await?;
                Ok(false)
            }
            Some(due) if due <= now => {
                store
                    .advance_job(SELF_BACKUP_JOB, Some(due), next, None)
                    .await
            }
            Some(_) => Ok(false),
        }
    }

    /// Backs statehouse's own store up now (the schedule's work; also `statehouse self-backup`).
    pub async fn self_backup_now(
        &self,
        setup: &SelfBackupSetup,
    ) -> Result<crate::targets::BackupMetadata> {
        // The operator configured this target, not a workspace: a local directory is used as
        // given, anything else under the outbound policy.
        let target: std::sync::Arc<dyn crate::targets::BackupTarget> = match &setup.target {
            crate::targets::TargetSpec::Local(local) => {
                std::sync::Arc::new(crate::targets::LocalDirTarget::new(&local.path))
            }
            other => crate::targets::open_target(other, self.outbound()).map_err(|e| {
                statehouse_core::Error::Config(format!("the self-backup target: {e}"))
            })?,
        };
        crate::self_backup::run_self_backup(
            &setup.source,
            target.as_ref(),
            setup.policy.keep_last,
            &self.core.cipher,
            self.core.clock.as_ref(),
            &self.options.pg_tools,
        )
        .await
        .map_err(statehouse_core::Error::from)
    }

    /// Runs the scheduler every few seconds until `stop` turns true, then waits for the runs it
    /// started. Old health checks are pruned once an hour.
    pub async fn run_scheduler(self, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(TICK_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut passes: u64 = 0;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = ticks.tick() => {}
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "backup scheduler pass failed; retrying shortly");
            }
            passes += 1;
            if passes % 720 == 1 {
                let before = self.core.now().plus_millis(-HEALTH_HISTORY_MILLIS);
                if let Err(e) = self.core.backup_store().prune_health_checks(before).await {
                    tracing::warn!(error = %e, "pruning old health checks failed");
                }
            }
        }
        self.wait_idle().await;
    }
}
