//! Backups leaving: retention after each successful backup, and explicit deletes. Each
//! deletion is logged, audited (`backup.delete`, with why: the retention rule or who asked)
//! and announced (`backup.deleted`), so nothing disappears without a trace.

use serde::Serialize;
use serde_json::json;
use statehouse_core::access::{Principal, Role};
use statehouse_core::audit::AuditRecord;
use statehouse_core::backups::{
    BackupFilter, BackupKind, BackupRecord, BackupStatus, DatabaseRecord,
};
use statehouse_core::events::kind;
use statehouse_core::{Error, Result};
use utoipa::ToSchema;

use super::BackupService;
use crate::retention::{Kept, RetentionPolicy};
use crate::schedule::parse_timezone;
use crate::settings::DatabaseSettings;

/// What a retention policy would do to one existing backup.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetentionVerdictView {
    pub backup_id: String,
    /// The PostgreSQL database (none for a whole server's globals).
    pub db_name: Option<String>,
    /// `database` or `globals`.
    pub kind: String,
    pub finished_at: String,
    pub stored_bytes: Option<i64>,
    /// The rules that keep it (`keep-last`, `keep-daily`, …, `newest`); empty when it goes.
    pub kept_by: Vec<String>,
    /// Why it would be deleted.
    pub deleted_because: Option<String>,
}

/// Calendar buckets of retention follow the schedule's time zone (UTC without a schedule).
fn retention_zone(settings: &DatabaseSettings) -> Result<chrono_tz::Tz> {
    match &settings.schedule {
        Some(s) => parse_timezone(&s.timezone),
        None => Ok(chrono_tz::Tz::UTC),
    }
}

/// Successful runs split into what retention keeps apart, each newest first as given.
fn series_of(runs: &[BackupRecord]) -> Vec<Vec<&BackupRecord>> {
    let mut groups: Vec<(Series, Vec<&BackupRecord>)> = Vec::new();
    for run in runs {
        let series = (run.kind, run.db_name.clone());
        match groups.iter_mut().find(|(key, _)| *key == series) {
            Some((_, list)) => list.push(run),
            None => groups.push((series, vec![run])),
        }
    }
    groups.into_iter().map(|(_, list)| list).collect()
}

fn kept_of(group: &[&BackupRecord]) -> Vec<Kept> {
    group
        .iter()
        .map(|b| Kept {
            id: b.id.clone(),
            finished_at: b.finished_at.unwrap_or(b.queued_at),
            stored_bytes: b
                .stored_bytes
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
        })
        .collect()
}

/// Who deletes what retention lets go, in the audit log and events.
const RETENTION_ACTOR: &str = "statehouse";

/// What retention keeps apart: the server's globals, or one PostgreSQL database (by name).
type Series = (BackupKind, Option<String>);

impl BackupService {
    /// Successful backups of a database, newest first (all pages).
    async fn succeeded_backups(&self, db: &DatabaseRecord) -> Result<Vec<BackupRecord>> {
        let mut all = Vec::new();
        let mut before = None;
        loop {
            let filter = BackupFilter {
                database_id: Some(db.id.clone()),
                status: Some(BackupStatus::Succeeded),
                server_run: None,
                before: before.clone(),
                limit: 500,
            };
            let page = self
                .core
                .backup_store()
                .list_backups(&db.workspace_id, &filter)
                .await?;
            let done = page.len() < 500;
            before = page.last().map(|b| (b.queued_at, b.id.clone()));
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Deletes what the database's retention policy no longer keeps (object, sidecar, row),
    /// per PostgreSQL database (and for the server's globals) in whole-server mode. Every
    /// deletion is logged, audited and announced with the rule that let it go; one that fails
    /// is audited as failed and the others still go. Returns how many went, or the first
    /// failure.
    pub(crate) async fn apply_retention(&self, db: &DatabaseRecord) -> Result<u64> {
        let settings = DatabaseSettings::from_json(&db.settings)?;
        if settings.retention.is_empty() {
            return Ok(0);
        }
        let tz = retention_zone(&settings)?;
        let runs = self.succeeded_backups(db).await?;
        let mut deleted = 0;
        let mut first_failure = None;
        for group in series_of(&runs) {
            let kept = kept_of(&group);
            for deletion in settings
                .retention
                .plan_deletions(&kept, self.core.now(), tz)
            {
                let Some(run) = group.iter().find(|b| b.id == deletion.id) else {
                    continue;
                };
                match self.retire(run, &deletion.reason).await {
                    Ok(()) => deleted += 1,
                    Err(e) => {
                        first_failure.get_or_insert(e);
                    }
                }
            }
        }
        match first_failure {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }

    /// What `policy` would do to a database's successful backups now (workspace viewer),
    /// newest first per series: the rules that keep each one, or why it would go. Nothing is
    /// deleted; `timezone` (default: the schedule's) places the calendar buckets.
    pub async fn retention_preview(
        &self,
        who: &Principal,
        ws: &str,
        key: &str,
        policy: &RetentionPolicy,
        timezone: Option<&str>,
    ) -> Result<Vec<RetentionVerdictView>> {
        let (workspace, _) = self
            .core
            .authorize(who, ws, Role::Viewer, "previewing retention")
            .await?;
        policy.validate()?;
        let db = self.find_database(&workspace, key).await?;
        let settings = DatabaseSettings::from_json(&db.settings)?;
        let tz = match timezone {
            Some(name) => parse_timezone(name)?,
            None => retention_zone(&settings)?,
        };
        let runs = self.succeeded_backups(&db).await?;
        let mut views = Vec::with_capacity(runs.len());
        for group in series_of(&runs) {
            for verdict in policy.verdicts(&kept_of(&group), self.core.now(), tz) {
                let Some(run) = group.iter().find(|b| b.id == verdict.id) else {
                    continue;
                };
                views.push(RetentionVerdictView {
                    backup_id: run.id.clone(),
                    db_name: run.db_name.clone(),
                    kind: run.kind.as_str().to_owned(),
                    finished_at: run.finished_at.unwrap_or(run.queued_at).to_rfc3339(),
                    stored_bytes: run.stored_bytes,
                    kept_by: verdict.kept_by.iter().map(|r| (*r).to_owned()).collect(),
                    deleted_because: verdict.deleted_because,
                });
            }
        }
        Ok(views)
    }

    /// Deletes one backup retention let go, with its log line, audit entry and event.
    async fn retire(&self, run: &BackupRecord, reason: &str) -> Result<()> {
        let (workspace, database) = self.names_of(&run.workspace_id, &run.database_id).await;
        let mut record = AuditRecord::new(self.core.now(), RETENTION_ACTOR, "backup.delete")
            .workspace(&workspace)
            .target(&run.id)
            .detail(deletion_detail(run, &database));
        match self.remove_backup(run).await {
            Ok(()) => {
                tracing::info!(backup = %run.id, database = %database,
                    db_name = run.db_name.as_deref().unwrap_or_default(),
                    object = run.object.as_deref().unwrap_or_default(),
                    %reason, "retention deleted a backup");
                record.reason = Some(reason.to_owned());
                let mut event = self
                    .backup_event(run, kind::BACKUP_DELETED, json!({"reason": reason}))
                    .await;
                event.actor = RETENTION_ACTOR.to_owned();
                self.core.record_with_event(record, event).await?;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(backup = %run.id, database = %database, %reason, error = %e,
                    "retention could not delete a backup; retrying after the next backup");
                self.core
                    .record_later(record.failed(format!("{reason}; deleting it failed: {e}")))
                    .await;
                Err(e)
            }
        }
    }

    /// Deletes a finished run's object and sidecar, then its row.
    async fn remove_backup(&self, run: &BackupRecord) -> Result<()> {
        if let Some(object) = &run.object {
            let target = self
                .core
                .backup_store()
                .target(&run.workspace_id, &run.target_id)
                .await?
                .ok_or_else(|| Error::Config("the backup's storage target is gone".into()))?;
            self.open_stored_target(&target)?
                .delete(object)
                .await
                .map_err(|e| Error::Unavailable(format!("deleting {object} failed: {e}")))?;
        }
        self.core
            .backup_store()
            .delete_backup(&run.workspace_id, &run.id)
            .await?;
        Ok(())
    }

    /// Deletes a backup (workspace admin): its object and sidecar, then its record; logged,
    /// audited and announced (`backup.deleted`) like retention's deletions.
    pub async fn delete_backup(&self, who: &Principal, ws: &str, id: &str) -> Result<()> {
        let record = AuditRecord::by(who, "backup.delete", self.core.now())
            .workspace(ws)
            .target(id);
        let result = async {
            let workspace = self.admin_of(who, ws, "deleting backups").await?;
            let run = self.find_backup(&workspace, id).await?;
            if matches!(run.status, BackupStatus::Queued | BackupStatus::Running) {
                return Err(Error::Conflict(format!(
                    "backup {id} is {}; wait until it ends",
                    run.status.as_str()
                )));
            }
            self.remove_backup(&run).await?;
            let reason = format!("deleted by {}", who.actor());
            let (_, database) = self.names_of(&run.workspace_id, &run.database_id).await;
            tracing::info!(backup = %run.id, database = %database,
                db_name = run.db_name.as_deref().unwrap_or_default(),
                object = run.object.as_deref().unwrap_or_default(),
                %reason, "a backup was deleted");
            let mut event = self
                .backup_event(&run, kind::BACKUP_DELETED, json!({"reason": reason}))
                .await;
            event.actor = who.actor();
            Ok((deletion_detail(&run, &database), event))
        }
        .await;
        self.core
            .conclude(result, record, |(detail, event), r| {
                (r.detail(detail.clone()), Some(event.clone()))
            })
            .await
            .map(|_| ())
    }
}

/// What the audit entry of a deletion keeps about the backup that went.
fn deletion_detail(run: &BackupRecord, database: &str) -> serde_json::Value {
    json!({
        "database": database,
        "db_name": run.db_name,
        "object": run.object,
        "stored_bytes": run.stored_bytes,
        "finished_at": run.finished_at.map(|t| t.to_rfc3339()),
    })
}
