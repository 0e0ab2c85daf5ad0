//! Health checks of databases (connect + `SELECT 1`), uptime, the "check" action (also
//! privileges and the pg_dump that would be used), and the read-only role helper.

use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;
use statehouse_core::access::{Principal, Role};
use statehouse_core::audit::AuditRecord;
use statehouse_core::backups::{DatabaseRecord, HealthCheck, HealthStatus};
use statehouse_core::clock::Timestamp;
use statehouse_core::events::{NewEvent, kind};
use statehouse_core::{Error, Result};
use utoipa::ToSchema;

use super::BackupService;
use super::databases::ReadonlyRoleRequest;
use crate::connection::PgConnection;
use crate::pg_tools::find_pg_tool;
use crate::roles::PrivilegeWarning;
use crate::settings::{DatabaseMode, DatabaseSecrets, DatabaseSettings};

const DAY_MILLIS: i64 = 86_400_000;
/// Health checks are kept this long (uptime looks back 30 days).
pub const HEALTH_HISTORY_MILLIS: i64 = 31 * DAY_MILLIS;

/// Share of good checks over the last 24 hours, 7 and 30 days (`None`: no check then).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Uptime {
    pub last_24h: Option<f64>,
    pub last_7d: Option<f64>,
    pub last_30d: Option<f64>,
}

/// The "check" action's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthReport {
    pub database: String,
    pub reachable: bool,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
    /// `unknown`, `up`, `down` after this check.
    pub status: String,
    pub server_version: Option<String>,
    /// The pg_dump this server would use, and its major version.
    pub pg_dump: Option<String>,
    /// Databases a whole-server run would back up now.
    pub databases: Vec<String>,
    /// Privilege warnings for the configured role (superuser, can write, missing SELECT, …).
    pub warnings: Vec<String>,
    /// The role can change data or create objects (or is a superuser): a read-only role for
    /// backups is advised (`POST …/readonly-role`).
    pub can_write: bool,
    pub uptime: Uptime,
}

/// One health check as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthCheckView {
    pub at: String,
    pub ok: bool,
    pub latency_ms: Option<i64>,
    pub error: Option<String>,
}

/// A created read-only role (the password is shown once).
#[derive(Serialize, ToSchema)]
pub struct ReadonlyRole {
    pub role: String,
    pub password: String,
    /// The database now connects as this role.
    pub used_for_backups: bool,
}

impl std::fmt::Debug for ReadonlyRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReadonlyRole({}, ***)", self.role)
    }
}

impl BackupService {
    /// Checks a database once, records the check, and emits `database.down`/`database.up` when
    /// its status changes (not for the first `up`).
    pub(crate) async fn run_health_check(&self, db: &DatabaseRecord) -> Result<HealthCheck> {
        let settings = DatabaseSettings::from_json(&db.settings)?;
        let connection = self.connection_for(db, &settings, &settings.connection.database)?;
        let timeout = Duration::from_secs(settings.health.timeout_secs);
        let outcome = crate::check_health(&connection, timeout).await;
        let check = HealthCheck {
            database_id: db.id.clone(),
            at: self.core.now(),
            ok: outcome.is_ok(),
            latency_ms: outcome
                .as_ref()
                .ok()
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            error: outcome.err(),
        };
        let transition = self
            .core
            .backup_store()
            .record_health_check(&check, &|health, check| {
                crate::uptime::health_after(health, check, i64::from(settings.health.down_after))
            })
            .await?;
        if let Some(t) = transition {
            let kind = match (t.from, t.to) {
                (_, HealthStatus::Down) => Some(kind::DATABASE_DOWN),
                (HealthStatus::Down, HealthStatus::Up) => Some(kind::DATABASE_UP),
                _ => None,
            };
            if let Some(kind) = kind {
                let (workspace, database) = self.names_of(&db.workspace_id, &db.id).await;
                let event = NewEvent {
                    at: check.at,
                    kind: kind.to_owned(),
                    workspace_id: Some(db.workspace_id.clone()),
                    workspace: Some(workspace),
                    subject: Some(database.clone()),
                    actor: "health-check".into(),
                    payload: json!({
                        "database_id": db.id,
                        "database": database,
                        "error": check.error,
                        "failures_in_a_row": settings.health.down_after,
                    }),
                };
                self.core.emit_event(event).await?;
            }
        }
        Ok(check)
    }

    async fn uptime(&self, database_id: &str) -> Result<Uptime> {
        let now = self.core.now();
        let share = |since: Timestamp| async move {
            let counts = self
                .core
                .backup_store()
                .health_counts(database_id, since)
                .await?;
            Ok::<_, Error>(if counts.total == 0 {
                None
            } else {
                Some((counts.ok as f64 * 10_000.0 / counts.total as f64).round() / 100.0)
            })
        };
        Ok(Uptime {
            last_24h: share(now.plus_millis(-DAY_MILLIS)).await?,
            last_7d: share(now.plus_millis(-7 * DAY_MILLIS)).await?,
            last_30d: share(now.plus_millis(-30 * DAY_MILLIS)).await?,
        })
    }

    /// Checks a database now (workspace viewer): reachability, version, the pg_dump that
    /// would be used, discovered databases (whole-server mode), privilege warnings, uptime.
    pub async fn check_database(
        &self,
        who: &Principal,
        ws: &str,
        key: &str,
    ) -> Result<HealthReport> {
        let (workspace, _) = self
            .core
            .authorize(who, ws, Role::Viewer, "checking databases")
            .await?;
        let db = self.find_database(&workspace, key).await?;
        let settings = DatabaseSettings::from_json(&db.settings)?;
        let check = self.run_health_check(&db).await?;
        let connection = self.connection_for(&db, &settings, &settings.connection.database)?;
        let mut report = HealthReport {
            database: db.name.clone(),
            reachable: check.ok,
            latency_ms: check.latency_ms.and_then(|l| u64::try_from(l).ok()),
            error: check.error.clone(),
            status: String::new(),
            server_version: None,
            pg_dump: None,
            databases: Vec::new(),
            warnings: Vec::new(),
            can_write: false,
            uptime: self.uptime(&db.id).await?,
        };
        if check.ok {
            self.probe(&connection, &settings.mode, &mut report).await;
        }
        report.status = self
            .core
            .backup_store()
            .database(&workspace.id, &db.id)
            .await?
            .map(|d| d.health.status.as_str().to_owned())
            .unwrap_or_default();
        Ok(report)
    }

    /// What a reachable server tells about a connection: version, the pg_dump to use, the
    /// databases a whole-server run would dump, and the role's privileges.
    async fn probe(
        &self,
        connection: &PgConnection,
        mode: &DatabaseMode,
        report: &mut HealthReport,
    ) {
        match crate::server_version(connection).await {
            Ok(version) => {
                report.pg_dump =
                    match find_pg_tool("pg_dump", version.major, &self.options.pg_tools).await {
                        Ok(tool) => Some(format!(
                            "{} (PostgreSQL {})",
                            tool.path.display(),
                            tool.major
                        )),
                        Err(e) => {
                            report.warnings.push(e.to_string());
                            None
                        }
                    };
                report.server_version = Some(version.text);
            }
            Err(e) => report.warnings.push(e.to_string()),
        }
        if let DatabaseMode::Server { include, exclude } = mode {
            match crate::discover_databases(connection, include, exclude).await {
                Ok(found) => report.databases = found,
                Err(e) => report.warnings.push(e.to_string()),
            }
        }
        match crate::check_privileges(connection).await {
            Ok(warnings) => {
                report.can_write = warnings.iter().any(|w| {
                    matches!(
                        w,
                        PrivilegeWarning::Superuser { .. }
                            | PrivilegeWarning::CanWrite { .. }
                            | PrivilegeWarning::CanCreate { .. }
                    )
                });
                report
                    .warnings
                    .extend(warnings.iter().map(ToString::to_string));
            }
            Err(e) => report.warnings.push(e.to_string()),
        }
    }

    /// Tries connection settings before they are saved (workspace admin): reachability,
    /// version, the pg_dump to use, discovered databases, privileges. Records nothing.
    /// Changing database `existing`, its stored password is used when `password` is `None`
    /// and the server is the same (a stored password never goes to another server).
    pub async fn test_connection(
        &self,
        who: &Principal,
        ws: &str,
        settings: &DatabaseSettings,
        password: Option<String>,
        existing: Option<&str>,
    ) -> Result<HealthReport> {
        let workspace = self
            .admin_of(who, ws, "testing database connections")
            .await?;
        settings.validate()?;
        let password = match (password.filter(|p| !p.is_empty()), existing) {
            (Some(p), _) => Some(p),
            (None, Some(key)) => {
                let db = self.find_database(&workspace, key).await?;
                let stored = DatabaseSettings::from_json(&db.settings)?;
                if stored.connection.same_server(&settings.connection) {
                    self.database_password(&db)?
                } else {
                    None
                }
            }
            (None, None) => None,
        };
        let connection = settings.connection.to_pg(
            &settings.connection.database,
            password,
            self.outbound().clone(),
        );
        let timeout = Duration::from_secs(settings.health.timeout_secs);
        let outcome = crate::check_health(&connection, timeout).await;
        let mut report = HealthReport {
            database: settings.connection.display(),
            reachable: outcome.is_ok(),
            latency_ms: outcome
                .as_ref()
                .ok()
                .and_then(|d| u64::try_from(d.as_millis()).ok()),
            error: outcome.as_ref().err().cloned(),
            status: if outcome.is_ok() { "up" } else { "down" }.to_owned(),
            server_version: None,
            pg_dump: None,
            databases: Vec::new(),
            warnings: Vec::new(),
            can_write: false,
            uptime: Uptime {
                last_24h: None,
                last_7d: None,
                last_30d: None,
            },
        };
        if outcome.is_ok() {
            self.probe(&connection, &settings.mode, &mut report).await;
        }
        Ok(report)
    }

    /// A database's health checks, newest first.
    pub async fn health_history(
        &self,
        who: &Principal,
        ws: &str,
        key: &str,
        before: Option<Timestamp>,
        limit: i64,
    ) -> Result<(Uptime, Vec<HealthCheckView>)> {
        let (workspace, _) = self
            .core
            .authorize(who, ws, Role::Viewer, "reading database health")
            .await?;
        let db = self.find_database(&workspace, key).await?;
        let checks = self
            .core
            .backup_store()
            .list_health_checks(&db.id, before, limit)
            .await?
            .into_iter()
            .map(|c| HealthCheckView {
                at: c.at.to_rfc3339(),
                ok: c.ok,
                latency_ms: c.latency_ms,
                error: c.error,
            })
            .collect();
        Ok((self.uptime(&db.id).await?, checks))
    }

    /// Creates a read-only login role for backing up a database (workspace admin), through an
    /// admin connection given for this call only (never stored).
    pub async fn create_readonly_role(
        &self,
        who: &Principal,
        ws: &str,
        key: &str,
        request: ReadonlyRoleRequest,
    ) -> Result<ReadonlyRole> {
        let record = AuditRecord::by(who, "database.readonly_role", self.core.now())
            .workspace(ws)
            .target(key)
            .detail(json!({"role": request.role, "use_for_backups": request.use_for_backups}));
        let result = async {
            let workspace = self.admin_of(who, ws, "creating backup roles").await?;
            let db = self.find_database(&workspace, key).await?;
            let mut settings = DatabaseSettings::from_json(&db.settings)?;
            let mut admin = self.checked(
                PgConnection::from_url(&request.admin_url)
                    .map_err(|e| Error::BadRequest(e.to_string()))?,
            );
            admin.ca_certificate = settings.connection.ca_cert.clone();
            let databases = match &settings.mode {
                DatabaseMode::Single => vec![settings.connection.database.clone()],
                DatabaseMode::Server { include, exclude } => {
                    crate::discover_databases(&admin, include, exclude)
                        .await
                        .map_err(|e| Error::BadRequest(e.to_string()))?
                }
            };
            let password = match &request.password {
                Some(p) if !p.is_empty() => p.clone(),
                _ => {
                    use rand::Rng;
                    rand::thread_rng()
                        .sample_iter(&rand::distributions::Alphanumeric)
                        .take(32)
                        .map(char::from)
                        .collect()
                }
            };
            let secret = SecretString::from(password.clone());
            crate::create_readonly_role(&admin, &request.role, &secret, &databases)
                .await
                .map_err(|e| {
                    Error::BadRequest(format!("creating role {:?} failed: {e}", request.role))
                })?;
            if request.use_for_backups {
                settings.connection.user = request.role.clone();
                let secrets = DatabaseSecrets {
                    password: Some(secret.expose_secret().to_owned()),
                };
                let mut changed = db.clone();
                changed.settings = settings.to_json()?;
                changed.secrets = self.seal_secrets(
                    statehouse_core::backups::SealedKind::Database,
                    &workspace.id,
                    &db.id,
                    &secrets,
                )?;
                changed.updated_at = self.core.now();
                self.core.backup_store().update_database(&changed).await?;
            }
            Ok(ReadonlyRole {
                role: request.role.clone(),
                password,
                used_for_backups: request.use_for_backups,
            })
        }
        .await;
        self.core.conclude(result, record, |_, r| (r, None)).await
    }
}
