//! Registered databases: create, list, change, delete, check, and the read-only role helper.

use serde::Serialize;
use serde_json::json;
use statehouse_core::access::{Principal, Role};
use statehouse_core::audit::AuditRecord;
use statehouse_core::backups::{DatabaseRecord, SealedKind};
use statehouse_core::model::Workspace;
use statehouse_core::service::new_id;
use statehouse_core::{Error, Result};
use utoipa::ToSchema;

use super::{BackupService, check_name, not_found};
use crate::settings::{DatabaseSecrets, DatabaseSettings};

/// Job-clock names of a database's recurring work.
pub(crate) fn backup_job(database_id: &str) -> String {
    format!("backup:{database_id}")
}
pub(crate) fn verify_job(database_id: &str) -> String {
    format!("verify:{database_id}")
}
pub(crate) fn health_job(database_id: &str) -> String {
    format!("health:{database_id}")
}

/// What a database is registered with.
#[derive(Debug, Clone)]
pub struct DatabaseSpec {
    pub name: String,
    /// The target's name.
    pub target: String,
    pub settings: DatabaseSettings,
    pub password: Option<String>,
    pub enabled: bool,
}

/// Changes to a database; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct DatabaseChange {
    pub name: Option<String>,
    pub target: Option<String>,
    pub settings: Option<DatabaseSettings>,
    /// `Some(None)` removes the password.
    pub password: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// A registered database as the API shows it (never its password).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatabaseView {
    pub id: String,
    pub name: String,
    /// The storage target's name.
    pub target: String,
    pub enabled: bool,
    /// Connection (without password), mode, schedule, retention, verification, health,
    /// zstd level, timeouts, retries.
    #[schema(value_type = Object)]
    pub settings: DatabaseSettings,
    pub has_password: bool,
    /// `unknown`, `up` or `down`.
    pub health: String,
    pub consecutive_failures: i64,
    pub health_changed_at: Option<String>,
    pub last_check_at: Option<String>,
    pub last_check_error: Option<String>,
    /// When the schedule runs it next (none without a schedule or when disabled).
    pub next_backup_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Creating a read-only login role for backups.
#[derive(Debug, Clone)]
pub struct ReadonlyRoleRequest {
    /// A connection allowed to create roles and grant (e.g. the owner or a superuser).
    pub admin_url: String,
    pub role: String,
    /// Generated when not given.
    pub password: Option<String>,
    /// Switch the database's connection to the new role.
    pub use_for_backups: bool,
}

impl BackupService {
    pub(crate) async fn admin_of(
        &self,
        who: &Principal,
        ws: &str,
        action: &str,
    ) -> Result<Workspace> {
        Ok(self.core.authorize(who, ws, Role::Admin, action).await?.0)
    }

    /// Refuses callers who are not admins of the workspace (before anything is looked up).
    pub async fn require_admin(&self, who: &Principal, ws: &str, action: &str) -> Result<()> {
        self.admin_of(who, ws, action).await.map(|_| ())
    }

    pub(crate) async fn find_database(
        &self,
        workspace: &Workspace,
        key: &str,
    ) -> Result<DatabaseRecord> {
        let store = self.core.backup_store();
        if let Some(found) = store.database_by_name(&workspace.id, key).await? {
            return Ok(found);
        }
        store
            .database(&workspace.id, key)
            .await?
            .ok_or_else(|| not_found("database", key, &workspace.name))
    }

    pub(crate) fn database_password(&self, db: &DatabaseRecord) -> Result<Option<String>> {
        let secrets: DatabaseSecrets = self.open_secrets(
            SealedKind::Database,
            &db.workspace_id,
            &db.id,
            db.secrets.as_ref(),
        )?;
        Ok(secrets.password)
    }

    async fn view_database(&self, db: &DatabaseRecord) -> Result<DatabaseView> {
        let settings = DatabaseSettings::from_json(&db.settings)?;
        let target = self
            .core
            .backup_store()
            .target(&db.workspace_id, &db.target_id)
            .await?
            .map(|t| t.name)
            .unwrap_or_else(|| db.target_id.clone());
        let next_backup_at = if db.enabled && settings.schedule.is_some() {
            self.core
                .backup_store()
                .job_next_run(&backup_job(&db.id))
                .await?
                .map(|t| t.to_rfc3339())
        } else {
            None
        };
        Ok(DatabaseView {
            id: db.id.clone(),
            name: db.name.clone(),
            target,
            enabled: db.enabled,
            has_password: db.secrets.is_some(),
            health: db.health.status.as_str().to_owned(),
            consecutive_failures: db.health.consecutive_failures,
            health_changed_at: db.health.changed_at.map(|t| t.to_rfc3339()),
            last_check_at: db.health.last_check_at.map(|t| t.to_rfc3339()),
            last_check_error: db.health.last_error.clone(),
            next_backup_at,
            settings,
            created_at: db.created_at.to_rfc3339(),
            updated_at: db.updated_at.to_rfc3339(),
        })
    }

    /// Keeps the job clock in line with a database's settings: a schedule gets its next run
    /// (kept if already planned), a removed schedule or a disabled database loses it.
    pub(crate) async fn sync_jobs(
        &self,
        db: &DatabaseRecord,
        settings: &DatabaseSettings,
        rescheduled: bool,
    ) -> Result<()> {
        let store = self.core.backup_store();
        let now = self.core.now();
        let plans = [
            (backup_job(&db.id), settings.schedule.as_ref()),
            (verify_job(&db.id), settings.verify.schedule.as_ref()),
        ];
        for (job, schedule) in plans {
            let current = store.job_next_run(&job).await?;
            match schedule.filter(|_| db.enabled) {
                Some(schedule) => {
                    if current.is_none() || rescheduled {
                        let next = schedule.next_after(now)?;
                        store.advance_job(&job, current, next, None).await?;
                    }
                }
                None => {
                    if current.is_some() {
                        store.delete_job(&job).await?;
                    }
                }
            }
        }
        let job = health_job(&db.id);
        let current = store.job_next_run(&job).await?;
        if db.enabled && settings.health.enabled {
            if current.is_none() {
                store.advance_job(&job, None, now, None).await?;
            }
        } else if current.is_some() {
            store.delete_job(&job).await?;
        }
        Ok(())
    }

    /// Registers a database (workspace admin). A workspace without backup encryption gets a
    /// managed key pair here, so the first backup can run without further setup.
    pub async fn create_database(
        &self,
        who: &Principal,
        ws: &str,
        spec: DatabaseSpec,
    ) -> Result<DatabaseView> {
        let record = AuditRecord::by(who, "database.create", self.core.now())
            .workspace(ws)
            .target(spec.name.clone())
            .detail(json!({
                "target": spec.target,
                "connection": spec.settings.connection.display(),
            }));
        let result = async {
            let workspace = self.admin_of(who, ws, "registering databases").await?;
            let name = check_name("database", &spec.name)?;
            spec.settings.validate()?;
            let target = self.find_target(&workspace, &spec.target).await?;
            self.ensure_encryption(who, &workspace).await?;
            let id = new_id();
            let now = self.core.now();
            let secrets = DatabaseSecrets {
                password: spec.password.filter(|p| !p.is_empty()),
            };
            let db = DatabaseRecord {
                secrets: self.seal_secrets(SealedKind::Database, &workspace.id, &id, &secrets)?,
                id,
                workspace_id: workspace.id.clone(),
                name,
                settings: spec.settings.to_json()?,
                target_id: target.id,
                enabled: spec.enabled,
                created_at: now,
                updated_at: now,
                health: Default::default(),
            };
            self.core.backup_store().create_database(&db).await?;
            self.sync_jobs(&db, &spec.settings, true).await?;
            self.view_database(&db).await
        }
        .await;
        self.core
            .conclude(result, record, |v, r| (r.target(v.name.clone()), None))
            .await
    }

    pub async fn list_databases(&self, who: &Principal, ws: &str) -> Result<Vec<DatabaseView>> {
        let (workspace, _) = self
            .core
            .authorize(who, ws, Role::Viewer, "listing databases")
            .await?;
        let mut out = Vec::new();
        for db in self
            .core
            .backup_store()
            .list_databases(&workspace.id)
            .await?
        {
            out.push(self.view_database(&db).await?);
        }
        Ok(out)
    }

    /// A database by name or id.
    pub async fn database(&self, who: &Principal, ws: &str, key: &str) -> Result<DatabaseView> {
        let (workspace, _) = self
            .core
            .authorize(who, ws, Role::Viewer, "reading a database")
            .await?;
        let db = self.find_database(&workspace, key).await?;
        self.view_database(&db).await
    }

    /// Changes a database (workspace admin).
    pub async fn update_database(
        &self,
        who: &Principal,
        ws: &str,
        key: &str,
        change: DatabaseChange,
    ) -> Result<DatabaseView> {
        let record = AuditRecord::by(who, "database.update", self.core.now())
            .workspace(ws)
            .target(key)
            .detail(json!({
                "name": change.name,
                "target": change.target,
                "settings_changed": change.settings.is_some(),
                "password_changed": change.password.is_some(),
                "enabled": change.enabled,
            }));
        let result = async {
            let workspace = self.admin_of(who, ws, "changing databases").await?;
            let mut db = self.find_database(&workspace, key).await?;
            let mut settings = DatabaseSettings::from_json(&db.settings)?;
            let mut rescheduled = false;
            if let Some(name) = &change.name {
                db.name = check_name("database", name)?;
            }
            if let Some(target) = &change.target {
                db.target_id = self.find_target(&workspace, target).await?.id;
            }
            if let Some(new) = change.settings {
                new.validate()?;
                let moved = !new.connection.same_server(&settings.connection);
                if moved && change.password.is_none() && db.secrets.is_some() {
                    return Err(Error::BadRequest(format!(
                        "changing the host or port of database {:?} would send its stored \
                         password elsewhere: give the password again in the same change \
                         (the password field, --password-stdin, or in the URL), or remove it \
                         (--no-password)",
                        db.name
                    )));
                }
                rescheduled = new.schedule != settings.schedule
                    || new.verify.schedule != settings.verify.schedule;
                settings = new;
                db.settings = settings.to_json()?;
            }
            if let Some(password) = change.password {
                let secrets = DatabaseSecrets {
                    password: password.filter(|p| !p.is_empty()),
                };
                db.secrets =
                    self.seal_secrets(SealedKind::Database, &workspace.id, &db.id, &secrets)?;
            }
            if let Some(enabled) = change.enabled {
                rescheduled |= enabled && !db.enabled;
                db.enabled = enabled;
            }
            db.updated_at = self.core.now();
            if !self.core.backup_store().update_database(&db).await? {
                return Err(not_found("database", key, &workspace.name));
            }
            self.sync_jobs(&db, &settings, rescheduled).await?;
            self.view_database(&db).await
        }
        .await;
        self.core
            .conclude(result, record, |v, r| (r.target(v.name.clone()), None))
            .await
    }

    /// Unregisters a database (workspace admin); refused while backups of it exist.
    pub async fn delete_database(&self, who: &Principal, ws: &str, key: &str) -> Result<()> {
        let record = AuditRecord::by(who, "database.delete", self.core.now())
            .workspace(ws)
            .target(key);
        let result = async {
            let workspace = self.admin_of(who, ws, "deleting databases").await?;
            let db = self.find_database(&workspace, key).await?;
            match self.core.backup_store().delete_database(&workspace.id, &db.id).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(not_found("database", key, &workspace.name)),
                Err(Error::Conflict(_)) => Err(Error::Conflict(format!(
                    "database {:?} still has backups; delete them first (statehouse backup list --database {} / backup delete), or disable the database to stop new ones",
                    db.name, db.name
                ))),
                Err(e) => Err(e),
            }
        }
        .await;
        self.core.conclude(result, record, |_, r| (r, None)).await
    }
}
