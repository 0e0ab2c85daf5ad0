//! Restores: one backup into a database (a globals backup onto a server), or a whole server
//! from one whole-server run — its globals first (roles, memberships, tablespaces), then each
//! database with its owners and grants.
//!
//! Nothing that holds data is replaced unasked: a restore into a database that has objects of
//! its own, or of globals onto a server that has roles of its own, is refused (400, saying
//! what would be overwritten) unless the request says `overwrite`. The refusal comes before
//! anything changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use age::secrecy::SecretString;
use serde::Serialize;
use serde_json::json;
use statehouse_core::access::Principal;
use statehouse_core::audit::AuditRecord;
use statehouse_core::backups::{
    BackupFilter, BackupKind, BackupRecord, BackupStatus, DatabaseRecord,
};
use statehouse_core::model::Workspace;
use statehouse_core::{Error, Result};
use utoipa::ToSchema;

use super::BackupService;
use super::runs::{ProgressFn, server_decryption_for};
use crate::connection::PgConnection;
use crate::globals::{
    GlobalsReadOptions, GlobalsRestoreOptions, GlobalsRestoreOutcome, existing_roles,
    restore_globals_from,
};
use crate::keys::Decryption;
use crate::pg_tools::find_pg_tool_for_server;
use crate::restore::{DatabaseContents, MAINTENANCE_DATABASE, RestoreOptions, database_contents};
use crate::settings::DatabaseSettings;

/// How the refusals say to confirm.
const CONFIRM: &str = "confirm with \"overwrite\": true (statehouse db restore --force)";

/// Restoring a backup (or a whole-server run).
#[derive(Clone, Default)]
pub struct RestoreRequest {
    /// Restore into this database of the backup's server (default: the one dumped).
    pub into_database: Option<String>,
    /// Or onto another server altogether (`postgres://…`).
    pub into_url: Option<String>,
    /// Create the database when missing (default true).
    pub create: Option<bool>,
    /// `--clean --if-exists` (default true).
    pub clean: Option<bool>,
    /// `--no-owner` (default true for one database; false for a whole server, whose roles are
    /// restored first).
    pub no_owner: Option<bool>,
    /// pg_restore jobs (default 1; above 1 the archive is spooled to disk first).
    pub jobs: Option<u32>,
    /// An age identity file's text, for backups the server cannot decrypt itself.
    pub identity: Option<SecretString>,
    pub passphrase: Option<SecretString>,
    /// Replace what the destination holds: a database with objects, roles on the server.
    pub overwrite: bool,
}

impl std::fmt::Debug for RestoreRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreRequest")
            .field("into_database", &self.into_database)
            .field("into_url", &self.into_url.as_ref().map(|_| "<url>"))
            .field("jobs", &self.jobs)
            .field("overwrite", &self.overwrite)
            .finish_non_exhaustive()
    }
}

/// What a restore did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RestoreView {
    pub backup_id: String,
    /// `database` or `globals`.
    pub kind: String,
    /// The database restored into (for globals: the one psql connected to).
    pub database: String,
    pub created_database: bool,
    pub stored_bytes: u64,
    pub dump_bytes: u64,
    pub duration_ms: u64,
    /// Globals only: roles in the script, those that already existed, and the connecting role
    /// whose password was put back.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub globals: Option<GlobalsRestoreOutcome>,
}

/// What a whole-server restore did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerRestoreView {
    pub server_run: String,
    /// `host:port` restored onto.
    pub server: String,
    pub globals: RestoreView,
    pub databases: Vec<RestoreView>,
    pub duration_ms: u64,
}

/// The backups of one whole-server run that a restore uses: the globals and each database's
/// newest successful attempt.
struct ServerRun {
    id: String,
    globals: BackupRecord,
    databases: BTreeMap<String, BackupRecord>,
}

fn millis(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

fn server_of(connection: &PgConnection) -> String {
    format!("{}:{}", connection.host, connection.port)
}

impl BackupService {
    /// How to decrypt `run`: the key the caller brought, else the server's own.
    async fn decryption_for(
        &self,
        workspace: &Workspace,
        run: &BackupRecord,
        request: &RestoreRequest,
    ) -> Result<Decryption> {
        match (&request.identity, &request.passphrase) {
            (Some(identity), _) => Decryption::from_identity_file_text(identity)
                .map_err(|e| Error::BadRequest(e.to_string())),
            (None, Some(p)) => Ok(Decryption::Passphrase(p.clone())),
            (None, None) => {
                let (identities, passphrase) = self.managed_identities(&workspace.id).await?;
                server_decryption_for(run, &identities, passphrase.as_ref())?.ok_or_else(|| {
                    Error::BadRequest(
                        "the server holds no key for this backup (it was encrypted to recipients \
                         whose identities only their owners hold): supply the age identity \
                         (--identity key.txt) or the passphrase"
                            .into(),
                    )
                })
            }
        }
    }

    /// The server a restore goes to, connected to `database`: the one given by URL (its own
    /// database when `database` is `None`), else the backup's registered server.
    fn destination(
        &self,
        db: &DatabaseRecord,
        settings: &DatabaseSettings,
        request: &RestoreRequest,
        database: Option<&str>,
    ) -> Result<PgConnection> {
        match &request.into_url {
            Some(url) => {
                let c = self.checked(
                    PgConnection::from_url(url).map_err(|e| Error::BadRequest(e.to_string()))?,
                );
                Ok(match database {
                    Some(name) => c.with_database(name),
                    None => c,
                })
            }
            None => self.connection_for(
                db,
                settings,
                database.unwrap_or(&settings.connection.database),
            ),
        }
    }

    /// A client tool able to talk to the server behind `connection` (asked through the
    /// maintenance database when the target database does not exist yet).
    async fn tool_for(&self, tool: &str, connection: &PgConnection) -> Result<std::path::PathBuf> {
        let probe = connection.with_database(MAINTENANCE_DATABASE);
        let found = match find_pg_tool_for_server(tool, &probe, &self.options.pg_tools).await {
            Ok((found, _)) => found,
            Err(_) => {
                find_pg_tool_for_server(tool, connection, &self.options.pg_tools)
                    .await?
                    .0
            }
        };
        Ok(found.path)
    }

    /// Why restoring into `connection.database` needs `overwrite`, if it does.
    async fn database_refusal(&self, connection: &PgConnection) -> Result<Option<String>> {
        Ok(match database_contents(connection).await? {
            DatabaseContents::Objects(what) => Some(format!(
                "database {:?} on {} is not empty ({what})",
                connection.database,
                server_of(connection)
            )),
            DatabaseContents::Missing | DatabaseContents::Empty => None,
        })
    }

    /// Why restoring globals onto the server of `connection` needs `overwrite`, if it does.
    async fn roles_refusal(&self, connection: &PgConnection) -> Result<Option<String>> {
        let roles = existing_roles(connection).await?;
        Ok((!roles.is_empty()).then(|| {
            format!(
                "the server {} already has roles of its own ({}), which the backup's roles of the \
                 same names replace (attributes, passwords, memberships)",
                server_of(connection),
                roles.join(", ")
            )
        }))
    }

    /// Restores a backup (workspace admin): a database backup into its database, another
    /// database of the same server, or another server; a globals backup onto its server or
    /// another. `progress` hears the stored bytes read.
    pub async fn restore_backup(
        &self,
        who: &Principal,
        ws: &str,
        id: &str,
        request: RestoreRequest,
        progress: Option<ProgressFn>,
    ) -> Result<RestoreView> {
        let record = AuditRecord::by(who, "backup.restore", self.core.now())
            .workspace(ws)
            .target(id)
            .detail(json!({
                "into_database": request.into_database,
                "into_other_server": request.into_url.is_some(),
                "overwrite": request.overwrite,
            }));
        let result = async {
            let workspace = self.admin_of(who, ws, "restoring backups").await?;
            let run = self.find_backup(&workspace, id).await?;
            let db = self.database_of(&workspace, &run).await?;
            let settings = DatabaseSettings::from_json(&db.settings)?;
            let decryption = self.decryption_for(&workspace, &run, &request).await?;
            if run.kind == BackupKind::Globals {
                if request.into_database.is_some() {
                    return Err(Error::BadRequest(format!(
                        "backup {id} holds a server's globals (roles, tablespaces): they go onto \
                         a server, not into a database; leave out the database (--into)"
                    )));
                }
                let connection = self.destination(&db, &settings, &request, None)?;
                if !request.overwrite
                    && let Some(why) = self.roles_refusal(&connection).await?
                {
                    return Err(Error::BadRequest(format!(
                        "{why}: restoring the globals of backup {id} changes them; {CONFIRM}"
                    )));
                }
                return self
                    .restore_globals(&run, &connection, decryption, progress, 0, None)
                    .await;
            }
            let name = request
                .into_database
                .clone()
                .or_else(|| run.db_name.clone())
                .unwrap_or_else(|| settings.connection.database.clone());
            let connection = match (&request.into_url, &request.into_database) {
                // A URL names its own database unless one is given.
                (Some(_), None) => self.destination(&db, &settings, &request, None)?,
                _ => self.destination(&db, &settings, &request, Some(&name))?,
            };
            if !request.overwrite
                && let Some(why) = self.database_refusal(&connection).await?
            {
                return Err(Error::BadRequest(format!(
                    "{why}: restoring backup {id} replaces its objects; {CONFIRM}, or restore \
                     into a new database (--into NAME)"
                )));
            }
            let mut options = self.restore_options(&run, &connection, decryption).await?;
            options.create_if_missing = request.create.unwrap_or(true);
            options.clean = request.clean.unwrap_or(true);
            options.no_owner = request.no_owner.unwrap_or(true);
            options.jobs = request.jobs.unwrap_or(1).max(1);
            self.restore_database(&run, options, progress, 0, None)
                .await
        }
        .await;
        self.core
            .conclude(result, record, |v, r| {
                (
                    r.detail(
                        json!({"database": v.database, "created": v.created_database,
                        "kind": v.kind}),
                    ),
                    None,
                )
            })
            .await
    }

    /// Restores a whole server (workspace admin) from the whole-server run that backup `id`
    /// belongs to: its globals first, then each of its databases with owners and grants (a
    /// missing database is created by the archive's own `CREATE DATABASE`, with its owner).
    /// Onto the registered server, or another one (`into_url`, as a superuser). `progress`
    /// hears the stored bytes read across all of them.
    pub async fn restore_server(
        &self,
        who: &Principal,
        ws: &str,
        id: &str,
        request: RestoreRequest,
        progress: Option<ProgressFn>,
    ) -> Result<ServerRestoreView> {
        let record = AuditRecord::by(who, "backup.restore_server", self.core.now())
            .workspace(ws)
            .target(id)
            .detail(json!({
                "into_other_server": request.into_url.is_some(),
                "overwrite": request.overwrite,
            }));
        let result = async {
            let workspace = self.admin_of(who, ws, "restoring backups").await?;
            if request.into_database.is_some() {
                return Err(Error::BadRequest(
                    "a whole-server restore restores every database under its own name; leave out \
                     the database (--into)"
                        .into(),
                ));
            }
            let run = self.find_backup(&workspace, id).await?;
            let db = self.database_of(&workspace, &run).await?;
            let settings = DatabaseSettings::from_json(&db.settings)?;
            let server_run = self.server_run_of(&workspace, &run).await?;
            let base = self.destination(&db, &settings, &request, None)?;
            let started = std::time::Instant::now();

            // Everything that would be overwritten is named before anything changes.
            if !request.overwrite {
                let mut refusals = Vec::new();
                refusals.extend(self.roles_refusal(&base).await?);
                for name in server_run.databases.keys() {
                    refusals.extend(self.database_refusal(&base.with_database(name)).await?);
                }
                if !refusals.is_empty() {
                    return Err(Error::BadRequest(format!(
                        "{}: restoring whole-server run {} replaces them; {CONFIRM}",
                        refusals.join("; "),
                        server_run.id
                    )));
                }
            }

            let total: u64 = std::iter::once(&server_run.globals)
                .chain(server_run.databases.values())
                .filter_map(|b| b.stored_bytes.and_then(|n| u64::try_from(n).ok()))
                .sum();
            let done = Arc::new(AtomicU64::new(0));
            let decryption = self
                .decryption_for(&workspace, &server_run.globals, &request)
                .await?;
            let globals = self
                .restore_globals(
                    &server_run.globals,
                    &base,
                    decryption,
                    progress.clone(),
                    0,
                    Some(total),
                )
                .await
                .map_err(|e| {
                    Error::BadRequest(format!(
                        "restoring the globals of whole-server run {} failed, nothing else was \
                         restored: {e}",
                        server_run.id
                    ))
                })?;
            done.fetch_add(globals.stored_bytes, Ordering::SeqCst);
            let mut databases = Vec::new();
            for (name, backup) in &server_run.databases {
                let connection = base.with_database(name);
                let decryption = self.decryption_for(&workspace, backup, &request).await?;
                let mut options = self
                    .restore_options(backup, &connection, decryption)
                    .await?;
                options.no_owner = request.no_owner.unwrap_or(false);
                options.jobs = request.jobs.unwrap_or(1).max(1);
                if database_contents(&connection).await? == DatabaseContents::Missing {
                    options.create_from_archive = true;
                    options.clean = false;
                } else {
                    options.clean = request.clean.unwrap_or(true);
                }
                let offset = done.load(Ordering::SeqCst);
                let restored = self
                    .restore_database(backup, options, progress.clone(), offset, Some(total))
                    .await
                    .map_err(|e| {
                        let finished: Vec<&str> = databases
                            .iter()
                            .map(|d: &RestoreView| d.database.as_str())
                            .collect();
                        Error::BadRequest(format!(
                            "restoring database {name:?} of whole-server run {} failed: {e}; \
                             restored before it: the globals{}{}",
                            server_run.id,
                            if finished.is_empty() { "" } else { ", " },
                            finished.join(", ")
                        ))
                    })?;
                done.fetch_add(restored.stored_bytes, Ordering::SeqCst);
                databases.push(restored);
            }
            Ok(ServerRestoreView {
                server_run: server_run.id.clone(),
                server: server_of(&base),
                globals,
                databases,
                duration_ms: millis(started.elapsed()),
            })
        }
        .await;
        self.core
            .conclude(result, record, |v, r| {
                let names: Vec<&str> = v.databases.iter().map(|d| d.database.as_str()).collect();
                (
                    r.detail(json!({"server_run": v.server_run, "server": v.server,
                        "databases": names})),
                    None,
                )
            })
            .await
    }

    async fn database_of(
        &self,
        workspace: &Workspace,
        run: &BackupRecord,
    ) -> Result<DatabaseRecord> {
        self.core
            .backup_store()
            .database(&workspace.id, &run.database_id)
            .await?
            .ok_or_else(|| Error::Conflict("the backup's database is no longer registered".into()))
    }

    /// The whole-server run `run` belongs to, with a successful backup of its globals and of
    /// each of its databases (their newest attempts), or why it cannot be restored whole.
    async fn server_run_of(&self, workspace: &Workspace, run: &BackupRecord) -> Result<ServerRun> {
        let Some(group) = run.server_run.clone() else {
            return Err(Error::BadRequest(format!(
                "backup {} is not part of a whole-server run; restore it with `statehouse db \
                 restore {}`",
                run.id, run.id
            )));
        };
        let filter = BackupFilter {
            server_run: Some(group.clone()),
            limit: 10_000,
            ..BackupFilter::default()
        };
        // Newest first: the first successful attempt seen is the one to use.
        let runs = self
            .core
            .backup_store()
            .list_backups(&workspace.id, &filter)
            .await?;
        let mut globals = None;
        let mut databases = BTreeMap::new();
        let mut without_success = Vec::new();
        for b in &runs {
            match (b.kind, &b.db_name) {
                (BackupKind::Globals, _) if b.status == BackupStatus::Succeeded => {
                    globals.get_or_insert_with(|| b.clone());
                }
                (BackupKind::Database, Some(name)) if b.status == BackupStatus::Succeeded => {
                    databases.entry(name.clone()).or_insert_with(|| b.clone());
                }
                (BackupKind::Database, Some(name)) => without_success.push(name.clone()),
                _ => {}
            }
        }
        without_success.retain(|name| !databases.contains_key(name));
        without_success.sort();
        without_success.dedup();
        if let Some(pending) = runs
            .iter()
            .find(|b| matches!(b.status, BackupStatus::Queued | BackupStatus::Running))
        {
            return Err(Error::Conflict(format!(
                "whole-server run {group} is still {} (backup {}); restore it once it has ended",
                pending.status.as_str(),
                pending.id
            )));
        }
        let Some(globals) = globals else {
            return Err(Error::BadRequest(format!(
                "whole-server run {group} has no successful backup of the server's globals (roles, \
                 tablespaces), so owners and grants cannot be restored with it; restore its \
                 databases one by one (`statehouse db restore ID --keep-owner` once the roles \
                 exist) or use a newer run"
            )));
        };
        if !without_success.is_empty() {
            return Err(Error::BadRequest(format!(
                "whole-server run {group} has no successful backup of {}; use another run, or \
                 restore its globals and databases one by one",
                without_success.join(", ")
            )));
        }
        Ok(ServerRun {
            id: group,
            globals,
            databases,
        })
    }

    /// The restore options of a database backup into `connection` (defaults; callers set
    /// clean, owner, jobs and creation).
    async fn restore_options(
        &self,
        run: &BackupRecord,
        connection: &PgConnection,
        decryption: Decryption,
    ) -> Result<RestoreOptions> {
        let pg_restore = self.tool_for("pg_restore", connection).await?;
        let mut options = RestoreOptions::new(pg_restore, connection.clone(), decryption);
        options.expected_sha256 = run.sha256.clone();
        Ok(options)
    }

    /// Runs one database restore; progress is reported from `offset` on, out of `total`
    /// (the run's own size when `None`).
    async fn restore_database(
        &self,
        run: &BackupRecord,
        options: RestoreOptions,
        progress: Option<ProgressFn>,
        offset: u64,
        total: Option<u64>,
    ) -> Result<RestoreView> {
        let object = self.stored_object(run)?.to_owned();
        let (_, target) = self.target_of(run).await?;
        let mut reader = target
            .open(&object)
            .await
            .map_err(|e| Error::Unavailable(format!("reading {object} failed: {e}")))?;
        let total = total.or_else(|| run.stored_bytes.and_then(|n| u64::try_from(n).ok()));
        let report = move |n: u64| {
            if let Some(p) = &progress {
                p(offset + n, total);
            }
        };
        let started = std::time::Instant::now();
        let outcome = crate::restore::restore_from(&options, &mut reader, &report)
            .await
            .map_err(|e| Error::BadRequest(format!("the restore failed: {e}")))?;
        Ok(RestoreView {
            backup_id: run.id.clone(),
            kind: BackupKind::Database.as_str().to_owned(),
            database: options.connection.database.clone(),
            created_database: outcome.created_database,
            stored_bytes: outcome.stored_bytes,
            dump_bytes: outcome.dump_bytes,
            duration_ms: millis(started.elapsed()),
            globals: None,
        })
    }

    /// Runs one globals restore onto the server of `connection`.
    async fn restore_globals(
        &self,
        run: &BackupRecord,
        connection: &PgConnection,
        decryption: Decryption,
        progress: Option<ProgressFn>,
        offset: u64,
        total: Option<u64>,
    ) -> Result<RestoreView> {
        let object = self.stored_object(run)?.to_owned();
        let (_, target) = self.target_of(run).await?;
        let mut reader = target
            .open(&object)
            .await
            .map_err(|e| Error::Unavailable(format!("reading {object} failed: {e}")))?;
        let options = GlobalsRestoreOptions {
            psql: self.tool_for("psql", connection).await?,
            connection: connection.clone(),
            read: GlobalsReadOptions {
                decryption,
                expected_sha256: run.sha256.clone(),
                stall_timeout: Duration::from_secs(300),
                total_timeout: Duration::from_secs(3_600),
            },
        };
        let total = total.or_else(|| run.stored_bytes.and_then(|n| u64::try_from(n).ok()));
        let report = move |n: u64| {
            if let Some(p) = &progress {
                p(offset + n, total);
            }
        };
        let started = std::time::Instant::now();
        let outcome = restore_globals_from(&options, &mut reader, &report)
            .await
            .map_err(|e| Error::BadRequest(format!("the restore failed: {e}")))?;
        Ok(RestoreView {
            backup_id: run.id.clone(),
            kind: BackupKind::Globals.as_str().to_owned(),
            database: connection.database.clone(),
            created_database: false,
            stored_bytes: outcome.stored_bytes,
            dump_bytes: outcome.script_bytes,
            duration_ms: millis(started.elapsed()),
            globals: Some(outcome),
        })
    }
}
