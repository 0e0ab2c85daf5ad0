//! Backup runs: "backup now", the worker's runs, listing, download, delete, restore, verify,
//! and retention after each success.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use age::secrecy::SecretString;
use serde::Serialize;
use serde_json::json;
use statehouse_core::access::{Principal, Role};
use statehouse_core::audit::AuditRecord;
use statehouse_core::backups::{
    BackupFilter, BackupKind, BackupRecord, BackupResult, BackupStatus, BackupTrigger,
    DatabaseRecord, TargetRecord, VerificationRecord,
};
use statehouse_core::clock::Timestamp;
use statehouse_core::events::{NewEvent, kind};
use statehouse_core::model::Workspace;
use statehouse_core::service::new_id;
use statehouse_core::{Error, Result};
use utoipa::ToSchema;

use super::encryption::Encryptor;
use super::server_runs::{grouped, is_whole_server};
use super::{BackupService, not_found};
use crate::connection::PgConnection;
use crate::keys::{Decryption, Encryption};
use crate::pg_tools::{find_pg_tool, find_pg_tool_for_server};
use crate::pipeline::{BackupError, DumpOptions};
use crate::settings::{DatabaseMode, DatabaseSettings};
use crate::targets::{BackupTarget, ObjectReader};
use crate::verify::{VerificationReport, VerifyOptions, verify_cheap, verify_full};
use crate::{object_name, run_backup};

/// Called with the bytes moved so far and the expected total, when known.
pub type ProgressFn = Arc<dyn Fn(u64, Option<u64>) + Send + Sync>;

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

/// Counts the bytes a target's upload receives (progress of a running backup).
struct CountingTarget {
    inner: Arc<dyn BackupTarget>,
    written: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl BackupTarget for CountingTarget {
    async fn begin(
        &self,
        name: &str,
        expected_size: Option<u64>,
    ) -> std::result::Result<Box<dyn crate::targets::BackupUpload>, BackupError> {
        let inner = self.inner.begin(name, expected_size).await?;
        Ok(Box::new(CountingUpload {
            inner,
            written: self.written.clone(),
        }))
    }
    async fn open(&self, name: &str) -> std::result::Result<ObjectReader, BackupError> {
        self.inner.open(name).await
    }
    async fn size(&self, name: &str) -> std::result::Result<Option<u64>, BackupError> {
        self.inner.size(name).await
    }
    async fn read_metadata(
        &self,
        name: &str,
    ) -> std::result::Result<crate::targets::BackupMetadata, BackupError> {
        self.inner.read_metadata(name).await
    }
    async fn delete(&self, name: &str) -> std::result::Result<(), BackupError> {
        self.inner.delete(name).await
    }
    async fn list(&self, prefix: &str) -> std::result::Result<Vec<String>, BackupError> {
        self.inner.list(prefix).await
    }
    async fn probe(&self) -> std::result::Result<(), BackupError> {
        self.inner.probe().await
    }
}

struct CountingUpload {
    inner: Box<dyn crate::targets::BackupUpload>,
    written: Arc<AtomicU64>,
}

impl tokio::io::AsyncWrite for CountingUpload {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(this.inner.writer()).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &polled {
            this.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.inner.writer()).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.inner.writer()).poll_shutdown(cx)
    }
}

#[async_trait::async_trait]
impl crate::targets::BackupUpload for CountingUpload {
    fn writer(&mut self) -> &mut (dyn tokio::io::AsyncWrite + Send + Unpin) {
        self
    }

    async fn commit(
        self: Box<Self>,
        metadata: &crate::targets::BackupMetadata,
    ) -> std::result::Result<(), BackupError> {
        self.inner.commit(metadata).await
    }

    async fn abort(self: Box<Self>) {
        self.inner.abort().await
    }
}

/// How a stored backup can be decrypted by the server, when it can.
fn decryption_from(
    identities: &[String],
    passphrase: Option<&String>,
) -> std::result::Result<Option<Decryption>, BackupError> {
    if let Some(p) = passphrase {
        return Ok(Some(Decryption::Passphrase(SecretString::from(p.clone()))));
    }
    if identities.is_empty() {
        return Ok(None);
    }
    Decryption::from_identity_file_text(&SecretString::from(identities.join("\n"))).map(Some)
}

/// What the server can decrypt `run` with: only identities among the backup's recipients, or
/// the passphrase for a passphrase backup (no recipients recorded). `None`: the backup was made
/// for keys only their owners hold.
pub(super) fn server_decryption_for(
    run: &BackupRecord,
    identities: &[String],
    passphrase: Option<&String>,
) -> Result<Option<Decryption>> {
    let recipients: Vec<String> = run
        .detail
        .get("recipients")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or_default();
    if recipients.is_empty() {
        return decryption_from(&[], passphrase).map_err(|e| Error::Internal(e.to_string()));
    }
    let usable: Vec<String> = identities
        .iter()
        .filter(|text| {
            text.parse::<age::x25519::Identity>()
                .is_ok_and(|id| recipients.contains(&id.to_public().to_string()))
        })
        .cloned()
        .collect();
    decryption_from(&usable, None).map_err(|e| Error::Internal(e.to_string()))
}

/// The major version in a `server_version` text (`15.4 (Debian …)` → 15).
pub(super) fn major_of(version: &str) -> Option<u32> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok())
}

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

    async fn view_backups(&self, runs: &[BackupRecord]) -> Result<Vec<BackupView>> {
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

    fn new_run(
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

    pub(crate) fn lease_until(&self) -> Timestamp {
        let millis = i64::try_from(self.options.lease.as_millis()).unwrap_or(i64::MAX);
        self.core.now().plus_millis(millis)
    }

    /// The PostgreSQL databases a run of `db` dumps: its own, or the server's (whole-server
    /// mode, discovered now).
    async fn databases_to_dump(
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
        let reporter = progress.map(|report| {
            let written = written.clone();
            tokio::spawn(async move {
                loop {
                    report(written.load(Ordering::Relaxed), expected);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        });
        let dumped = run_backup(
            &options,
            Some(version.text.clone()),
            &target,
            &name,
            expected,
            self.core.clock.as_ref(),
        )
        .await;
        if let Some(reporter) = reporter {
            reporter.abort();
        }
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

    /// How new backups of the workspace are encrypted.
    pub(super) async fn encryption_for(&self, workspace_id: &str) -> Result<Encryption> {
        Ok(match self.encryptor(workspace_id).await? {
            Encryptor::Recipients(r) => Encryption::Recipients(r),
            Encryptor::Passphrase(p) => Encryption::Passphrase(SecretString::from(p)),
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

    pub(super) async fn target_of(
        &self,
        run: &BackupRecord,
    ) -> Result<(TargetRecord, Arc<dyn BackupTarget>)> {
        let record = self
            .core
            .backup_store()
            .target(&run.workspace_id, &run.target_id)
            .await?
            .ok_or_else(|| Error::Config("the backup's storage target is gone".into()))?;
        let opened = self.open_stored_target(&record)?;
        Ok((record, opened))
    }

    pub(super) fn stored_object<'a>(&self, run: &'a BackupRecord) -> Result<&'a str> {
        match (&run.status, &run.object) {
            (BackupStatus::Succeeded, Some(object)) => Ok(object),
            _ => Err(Error::Conflict(format!(
                "backup {} has no stored object (it is {})",
                run.id,
                run.status.as_str()
            ))),
        }
    }

    /// Opens a backup's stored object for download (workspace admin): the run, the object's
    /// size and a streaming reader of its exact bytes.
    pub async fn open_backup(
        &self,
        who: &Principal,
        ws: &str,
        id: &str,
    ) -> Result<(BackupView, Option<u64>, ObjectReader)> {
        let record = AuditRecord::by(who, "backup.download", self.core.now())
            .workspace(ws)
            .target(id);
        let result = async {
            let workspace = self.admin_of(who, ws, "downloading backups").await?;
            let run = self.find_backup(&workspace, id).await?;
            let object = self.stored_object(&run)?.to_owned();
            let (_, target) = self.target_of(&run).await?;
            let size = target
                .size(&object)
                .await
                .map_err(|e| Error::Unavailable(format!("reading {object} failed: {e}")))?;
            let reader = target
                .open(&object)
                .await
                .map_err(|e| Error::Unavailable(format!("reading {object} failed: {e}")))?;
            let view = self.view_backups(&[run]).await?.remove(0);
            Ok((view, size, reader))
        }
        .await;
        self.core.conclude(result, record, |_, r| (r, None)).await
    }

    /// Verifies a backup now (workspace editor) and records the outcome.
    pub async fn verify_backup(
        &self,
        who: &Principal,
        ws: &str,
        id: &str,
    ) -> Result<VerificationView> {
        let record = AuditRecord::by(who, "backup.verify", self.core.now())
            .workspace(ws)
            .target(id);
        let result = async {
            let (workspace, _) = self
                .core
                .authorize(who, ws, Role::Editor, "verifying backups")
                .await?;
            let run = self.find_backup(&workspace, id).await?;
            self.stored_object(&run)?;
            let db = self
                .core
                .backup_store()
                .database(&workspace.id, &run.database_id)
                .await?
                .ok_or_else(|| {
                    Error::Conflict("the backup's database is no longer registered".into())
                })?;
            self.verify_run(&run, &db)
                .await
                .map(|v| VerificationView::from(&v))
        }
        .await;
        self.core
            .conclude(result, record, |v, r| {
                (r.detail(json!({"level": v.level, "ok": v.ok})), None)
            })
            .await
    }

    /// Verifies a stored backup as well as this server can: a scratch restore with row counts
    /// when a verification server is set, the backup has row counts (taken while it was set)
    /// and the server can decrypt; `pg_restore --list` after decrypting when it can decrypt;
    /// otherwise the stored object's checksum. Records the outcome and emits
    /// `verification.succeeded`/`verification.failed`.
    pub(crate) async fn verify_run(
        &self,
        run: &BackupRecord,
        db: &DatabaseRecord,
    ) -> Result<VerificationRecord> {
        let object = self.stored_object(run)?.to_owned();
        let (config, secrets) = self.backup_config(&db.workspace_id).await?;
        let (identities, passphrase) = self.managed_identities(&db.workspace_id).await?;
        let decryption = server_decryption_for(run, &identities, passphrase.as_ref())?;
        let (_, target) = self.target_of(run).await?;
        let mut reader = target
            .open(&object)
            .await
            .map_err(|e| Error::Unavailable(format!("reading {object} failed: {e}")))?;
        let settings = DatabaseSettings::from_json(&db.settings)?;
        let expected_counts: Option<crate::RowCounts> = run
            .detail
            .get("row_counts")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        let (level, ok, detail) = match decryption {
            None => {
                let (ok, detail) = checksum_only(&mut reader, run.sha256.as_deref()).await;
                ("checksum", ok, json!({"detail": detail}))
            }
            Some(decryption) if run.kind == BackupKind::Globals => {
                let options = crate::globals::GlobalsReadOptions {
                    decryption,
                    expected_sha256: run.sha256.clone(),
                    stall_timeout: Duration::from_secs(settings.stall_timeout_secs),
                    total_timeout: Duration::from_secs(settings.total_timeout_secs),
                };
                let report = crate::globals::verify_globals(&options, &mut reader).await?;
                (
                    "list",
                    report.ok,
                    serde_json::to_value(&report).unwrap_or_else(|_| json!({})),
                )
            }
            Some(decryption) => {
                let major = run
                    .server_version
                    .as_deref()
                    .and_then(major_of)
                    .unwrap_or(0);
                let mut options = VerifyOptions {
                    pg_restore: find_pg_tool("pg_restore", major, &self.options.pg_tools)
                        .await?
                        .path,
                    decryption,
                    expected_sha256: run.sha256.clone(),
                    jobs: 1,
                    spool_dir: None,
                    stall_timeout: Duration::from_secs(settings.stall_timeout_secs),
                    total_timeout: Duration::from_secs(settings.total_timeout_secs),
                };
                let report: VerificationReport =
                    match (&config.verification_server, &expected_counts) {
                        (Some(server), Some(counts)) => {
                            let conn = server.to_pg(
                                &server.database,
                                secrets.verification_password.clone(),
                                self.outbound().clone(),
                            );
                            let (tool, _) = find_pg_tool_for_server(
                                "pg_restore",
                                &conn,
                                &self.options.pg_tools,
                            )
                            .await?;
                            options.pg_restore = tool.path;
                            verify_full(&options, &conn, counts, &mut reader, &|_| {}).await?
                        }
                        (server, _) => {
                            let mut report = verify_cheap(&options, &mut reader, &|_| {}).await?;
                            if server.is_some() {
                                report.detail.push_str(
                                    "; checked without a scratch restore: this backup has no row \
                                     counts to compare (it was taken before the verification \
                                     server was set)",
                                );
                            }
                            report
                        }
                    };
                let level = match report.level {
                    crate::verify::VerificationLevel::Full => "restore",
                    crate::verify::VerificationLevel::Cheap => "list",
                };
                (
                    level,
                    report.ok,
                    serde_json::to_value(&report).unwrap_or_else(|_| json!({})),
                )
            }
        };
        let verification = VerificationRecord {
            id: new_id(),
            backup_id: run.id.clone(),
            at: self.core.now(),
            level: level.to_owned(),
            ok,
            detail: detail.clone(),
        };
        self.core
            .backup_store()
            .record_verification(&verification)
            .await?;
        let kind = if ok {
            kind::VERIFICATION_SUCCEEDED
        } else {
            kind::VERIFICATION_FAILED
        };
        let error = detail
            .get("detail")
            .and_then(|d| d.as_str())
            .map(str::to_owned);
        self.emit_backup_event(
            run,
            kind,
            json!({"level": level, "error": error, "detail": error}),
        )
        .await;
        Ok(verification)
    }
}

/// Reads a stored object to its end and compares its SHA-256 with the recorded one (what can
/// be checked without the key).
async fn checksum_only(reader: &mut ObjectReader, expected: Option<&str>) -> (bool, String) {
    use sha2::{Digest, Sha256};
    use tokio::io::AsyncReadExt;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) => return (false, format!("reading the stored object failed: {e}")),
        }
    }
    let actual = hex::encode(hasher.finalize());
    match expected {
        Some(expected) if expected == actual => (
            true,
            format!(
                "the server cannot decrypt this backup; its {total} stored bytes match the recorded SHA-256"
            ),
        ),
        Some(expected) => (
            false,
            format!(
                "the stored object's SHA-256 is {actual}, but {expected} was recorded: the object is damaged or was replaced"
            ),
        ),
        None => (false, "no checksum was recorded for this backup".into()),
    }
}
