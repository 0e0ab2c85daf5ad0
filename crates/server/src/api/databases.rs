//! `/api/v1/workspaces/{ws}/databases…`: PostgreSQL databases to back up — register, change,
//! check, health, a read-only backup role, and "back up now".

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use statehouse_backup::service::{
    BackupView, DatabaseChange, DatabaseSpec, DatabaseView, HealthCheckView, HealthReport,
    ReadonlyRole, ReadonlyRoleRequest, RetentionVerdictView, Uptime,
};
use statehouse_backup::settings::{ConnectionSettings, DatabaseSettings};
use statehouse_core::Error;
use statehouse_core::clock::Timestamp;
use utoipa::{IntoParams, ToSchema};

use super::extract::{Order, checked_limit, parse};
use super::progress::with_progress;
use super::{ApiError, ApiJson, ApiQuery, Caller, ErrorBody, Page, PageParams};
use crate::AppState;

/// A database to register: `url` or `connection` (fields), plus the settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDatabase {
    pub name: String,
    /// Storage target name.
    pub target: String,
    /// `postgres://user:password@host:5432/db?sslmode=…` (the password is kept sealed).
    pub url: Option<String>,
    /// Or the connection as fields (without password).
    #[schema(value_type = Option<Object>)]
    pub connection: Option<ConnectionSettings>,
    pub password: Option<String>,
    /// `{"kind":"single"}` (default) or `{"kind":"server","include":[…],"exclude":[…]}`.
    #[schema(value_type = Option<Object>)]
    pub mode: Option<serde_json::Value>,
    /// e.g. `{"every":"daily","at":"02:30","timezone":"Europe/Berlin"}`; none = manual only.
    #[schema(value_type = Option<Object>)]
    pub schedule: Option<serde_json::Value>,
    /// `keep_last`, `keep_days`, `keep_daily`/`weekly`/`monthly`/`yearly`, `max_total_bytes`.
    #[schema(value_type = Option<Object>)]
    pub retention: Option<serde_json::Value>,
    /// `{"after_backup":true,"schedule":{…}}`.
    #[schema(value_type = Option<Object>)]
    pub verify: Option<serde_json::Value>,
    /// `{"enabled":true,"interval_secs":60,"timeout_secs":5,"down_after":3}`.
    #[schema(value_type = Option<Object>)]
    pub health: Option<serde_json::Value>,
    pub zstd_level: Option<i32>,
    pub stall_timeout_secs: Option<u64>,
    pub total_timeout_secs: Option<u64>,
    pub retries: Option<u32>,
    /// What backups leave out, as pg_dump patterns:
    /// `{"schemas":[…],"tables":[…],"table_data":[…]}`.
    #[schema(value_type = Option<Object>)]
    pub exclude: Option<serde_json::Value>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// Changes to a database; fields left out keep their value.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabasePatch {
    pub name: Option<String>,
    pub target: Option<String>,
    pub url: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub connection: Option<ConnectionSettings>,
    /// An empty string removes the password.
    pub password: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub mode: Option<serde_json::Value>,
    /// A new schedule; to remove it (manual backups only) send `clear_schedule: true`.
    #[schema(value_type = Option<Object>)]
    pub schedule: Option<serde_json::Value>,
    #[serde(default)]
    pub clear_schedule: bool,
    #[schema(value_type = Option<Object>)]
    pub retention: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub verify: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub health: Option<serde_json::Value>,
    pub zstd_level: Option<i32>,
    pub stall_timeout_secs: Option<u64>,
    pub total_timeout_secs: Option<u64>,
    pub retries: Option<u32>,
    /// Replaces what backups leave out (`{}` leaves nothing out).
    #[schema(value_type = Option<Object>)]
    pub exclude: Option<serde_json::Value>,
    pub enabled: Option<bool>,
}

/// Applies the optional settings fields of a create or patch body onto `settings`.
#[allow(clippy::too_many_arguments)]
fn apply_settings(
    settings: &mut DatabaseSettings,
    mode: Option<serde_json::Value>,
    schedule: Option<serde_json::Value>,
    retention: Option<serde_json::Value>,
    verify: Option<serde_json::Value>,
    health: Option<serde_json::Value>,
    zstd_level: Option<i32>,
    stall: Option<u64>,
    total: Option<u64>,
    retries: Option<u32>,
    exclude: Option<serde_json::Value>,
) -> Result<(), ApiError> {
    if let Some(v) = mode {
        settings.mode = parse("mode", v)?;
    }
    if let Some(v) = schedule {
        settings.schedule = Some(parse("schedule", v)?);
    }
    if let Some(v) = retention {
        settings.retention = parse("retention", v)?;
    }
    if let Some(v) = verify {
        settings.verify = parse("verify", v)?;
    }
    if let Some(v) = health {
        settings.health = parse("health", v)?;
    }
    if let Some(v) = zstd_level {
        settings.zstd_level = v;
    }
    if let Some(v) = stall {
        settings.stall_timeout_secs = v;
    }
    if let Some(v) = total {
        settings.total_timeout_secs = v;
    }
    if let Some(v) = retries {
        settings.retries = v;
    }
    if let Some(v) = exclude {
        settings.exclude = parse("exclude", v)?;
    }
    Ok(())
}

fn connection_of(
    url: Option<String>,
    connection: Option<ConnectionSettings>,
    password: Option<String>,
) -> Result<Option<(ConnectionSettings, Option<String>)>, ApiError> {
    match (url, connection) {
        (Some(_), Some(_)) => Err(ApiError(Error::BadRequest(
            "give either url or connection, not both".into(),
        ))),
        (Some(url), None) => {
            let (c, from_url) = ConnectionSettings::from_url(&url)?;
            Ok(Some((c, password.or(from_url))))
        }
        (None, Some(c)) => {
            c.validate()?;
            Ok(Some((c, password)))
        }
        (None, None) => Ok(None),
    }
}

/// The workspace's registered databases.
#[utoipa::path(get, path = "/workspaces/{ws}/databases", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"), PageParams),
    responses((status = 200, body = Page<DatabaseView>)))]
pub async fn list_databases(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<DatabaseView>>, ApiError> {
    let all = app.backups.list_databases(&who, &ws).await?;
    Ok(Json(Page::select(all, &page, Order::Ascending, |d| {
        d.name.clone()
    })?))
}

/// Registers a PostgreSQL database (workspace admin).
#[utoipa::path(post, path = "/workspaces/{ws}/databases", tag = "backups", request_body = NewDatabase,
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 201, body = DatabaseView),
        (status = 409, body = ErrorBody)))]
pub async fn create_database(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<NewDatabase>,
) -> Result<(StatusCode, Json<DatabaseView>), ApiError> {
    let (connection, password) = connection_of(body.url, body.connection, body.password)?
        .ok_or_else(|| {
            ApiError(Error::BadRequest(
                "a database needs url (postgres://…) or connection fields".into(),
            ))
        })?;
    let mut settings = DatabaseSettings::new(connection);
    apply_settings(
        &mut settings,
        body.mode,
        body.schedule,
        body.retention,
        body.verify,
        body.health,
        body.zstd_level,
        body.stall_timeout_secs,
        body.total_timeout_secs,
        body.retries,
        body.exclude,
    )?;
    let spec = DatabaseSpec {
        name: body.name,
        target: body.target,
        settings,
        password,
        enabled: body.enabled.unwrap_or(true),
    };
    let view = app.backups.create_database(&who, &ws, spec).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One database (never its password).
#[utoipa::path(get, path = "/workspaces/{ws}/databases/{db}", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("db" = String, Path, description = "database name or id")),
    responses((status = 200, body = DatabaseView)))]
pub async fn show_database(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, db)): Path<(String, String)>,
) -> Result<Json<DatabaseView>, ApiError> {
    Ok(Json(app.backups.database(&who, &ws, &db).await?))
}

/// Changes a database (workspace admin).
#[utoipa::path(patch, path = "/workspaces/{ws}/databases/{db}", tag = "backups",
    request_body = DatabasePatch,
    params(("ws" = String, Path, description = "workspace name"),
        ("db" = String, Path, description = "database name or id")),
    responses((status = 200, body = DatabaseView)))]
pub async fn change_database(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, db)): Path<(String, String)>,
    ApiJson(body): ApiJson<DatabasePatch>,
) -> Result<Json<DatabaseView>, ApiError> {
    app.backups
        .require_admin(&who, &ws, "changing databases")
        .await?;
    let current = app.backups.database(&who, &ws, &db).await?;
    let mut settings = current.settings.clone();
    let mut password_change = body
        .password
        .clone()
        .map(|p| Some(p).filter(|p| !p.is_empty()));
    if let Some((connection, password)) = connection_of(body.url, body.connection, body.password)? {
        settings.connection = connection;
        if password.is_some() {
            password_change = Some(password);
        }
    }
    if body.clear_schedule {
        settings.schedule = None;
    }
    apply_settings(
        &mut settings,
        body.mode,
        body.schedule,
        body.retention,
        body.verify,
        body.health,
        body.zstd_level,
        body.stall_timeout_secs,
        body.total_timeout_secs,
        body.retries,
        body.exclude,
    )?;
    let change = DatabaseChange {
        name: body.name,
        target: body.target,
        settings: (settings != current.settings).then_some(settings),
        password: password_change,
        enabled: body.enabled,
    };
    Ok(Json(
        app.backups.update_database(&who, &ws, &db, change).await?,
    ))
}

/// Unregisters a database (workspace admin); refused while it has backups.
#[utoipa::path(delete, path = "/workspaces/{ws}/databases/{db}", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("db" = String, Path, description = "database name or id")),
    responses((status = 204),
        (status = 409, body = ErrorBody)))]
pub async fn delete_database(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, db)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.backups.delete_database(&who, &ws, &db).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks a database now: reachability, version, pg_dump to use, privileges, uptime.
#[utoipa::path(post, path = "/workspaces/{ws}/databases/{db}/check", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("db" = String, Path, description = "database name or id")),
    responses((status = 200, body = HealthReport)))]
pub async fn check_database(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, db)): Path<(String, String)>,
) -> Result<Json<HealthReport>, ApiError> {
    Ok(Json(app.backups.check_database(&who, &ws, &db).await?))
}

/// Connection settings to try before saving them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionTest {
    pub url: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub connection: Option<ConnectionSettings>,
    pub password: Option<String>,
    /// `{"kind":"server","include":[…],"exclude":[…]}` lists the databases it would dump.
    #[schema(value_type = Option<Object>)]
    pub mode: Option<serde_json::Value>,
    /// The registered database being changed: its stored password is used when none is
    /// given and the host and port are unchanged.
    pub database: Option<String>,
}

/// Tries a connection before it is saved (workspace admin); nothing is recorded.
#[utoipa::path(post, path = "/workspaces/{ws}/database-connection-test", tag = "backups",
    request_body = ConnectionTest,
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 200, body = HealthReport)))]
pub async fn test_connection(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<ConnectionTest>,
) -> Result<Json<HealthReport>, ApiError> {
    let (connection, password) = connection_of(body.url, body.connection, body.password)?
        .ok_or_else(|| {
            ApiError(Error::BadRequest(
                "give url (postgres://…) or connection fields to test".into(),
            ))
        })?;
    let mut settings = DatabaseSettings::new(connection);
    if let Some(mode) = body.mode {
        settings.mode = parse("mode", mode)?;
    }
    let report = app
        .backups
        .test_connection(&who, &ws, &settings, password, body.database.as_deref())
        .await?;
    Ok(Json(report))
}

/// A retention policy to try on a database's existing backups.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionPreviewRequest {
    /// `keep_last`, `keep_days`, `keep_daily`/`weekly`/`monthly`/`yearly`, `max_total_bytes`.
    #[schema(value_type = Object)]
    pub retention: serde_json::Value,
    /// Time zone of the calendar buckets; default the schedule's.
    pub timezone: Option<String>,
}

/// What a retention policy would keep and delete among a database's backups now (nothing is
/// deleted).
#[utoipa::path(post, path = "/workspaces/{ws}/databases/{db}/retention-preview", tag = "backups",
    request_body = RetentionPreviewRequest,
    params(("ws" = String, Path, description = "workspace name"),
        ("db" = String, Path, description = "database name or id")),
    responses((status = 200, body = Vec<RetentionVerdictView>)))]
pub async fn retention_preview(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, db)): Path<(String, String)>,
    ApiJson(body): ApiJson<RetentionPreviewRequest>,
) -> Result<Json<Vec<RetentionVerdictView>>, ApiError> {
    let policy = parse("retention", body.retention)?;
    let verdicts = app
        .backups
        .retention_preview(&who, &ws, &db, &policy, body.timezone.as_deref())
        .await?;
    Ok(Json(verdicts))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthHistory {
    pub uptime: Uptime,
    pub checks: Page<HealthCheckView>,
}

/// A database's uptime and health checks, newest first.
#[utoipa::path(get, path = "/workspaces/{ws}/databases/{db}/health", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("db" = String, Path, description = "database name or id"), PageParams),
    responses((status = 200, body = HealthHistory)))]
pub async fn health(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, db)): Path<(String, String)>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<HealthHistory>, ApiError> {
    let before = page.numeric_position()?.map(Timestamp);
    let limit = checked_limit(page.limit)?;
    let (uptime, checks) = app
        .backups
        .health_history(&who, &ws, &db, before, limit)
        .await?;
    let checks = Page::of(checks, limit, |c: &HealthCheckView| {
        Timestamp::parse_rfc3339(&c.at)
            .map(|t| t.millis().to_string())
            .unwrap_or_default()
    });
    Ok(Json(HealthHistory { uptime, checks }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReadonlyRole {
    /// A connection allowed to create roles and grant (used for this call only).
    pub admin_url: String,
    pub role: String,
    /// Generated when left out.
    pub password: Option<String>,
    /// Switch the database to connect as the new role (default true).
    pub use_for_backups: Option<bool>,
}

/// Creates a read-only login role for backups (workspace admin); its password is shown once.
#[utoipa::path(post, path = "/workspaces/{ws}/databases/{db}/readonly-role", tag = "backups",
    request_body = NewReadonlyRole,
    params(("ws" = String, Path, description = "workspace name"),
        ("db" = String, Path, description = "database name or id")),
    responses((status = 201, body = ReadonlyRole)))]
pub async fn readonly_role(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, db)): Path<(String, String)>,
    ApiJson(body): ApiJson<NewReadonlyRole>,
) -> Result<(StatusCode, Json<ReadonlyRole>), ApiError> {
    let request = ReadonlyRoleRequest {
        admin_url: body.admin_url,
        role: body.role,
        password: body.password,
        use_for_backups: body.use_for_backups.unwrap_or(true),
    };
    let role = app
        .backups
        .create_readonly_role(&who, &ws, &db, request)
        .await?;
    Ok((StatusCode::CREATED, Json(role)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BackupNowParams {
    /// Run it in this request and answer when it ends (default); false queues it for the
    /// workers and answers 202 at once.
    pub wait: Option<bool>,
}

/// Backs a database up now (workspace editor). With `wait` (default) the answer comes when
/// it ends — the finished runs, one per database in whole-server mode — or streams progress
/// lines with `Accept: application/x-ndjson`.
#[utoipa::path(post, path = "/workspaces/{ws}/databases/{db}/backups", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("db" = String, Path, description = "database name or id"), BackupNowParams),
    responses((status = 200, body = Vec<BackupView>), (status = 202, body = BackupView)))]
pub async fn backup_now(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, db)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<BackupNowParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if params.wait == Some(false) {
        let queued = app.backups.queue_backup(&who, &ws, &db).await?;
        return Ok((StatusCode::ACCEPTED, Json(queued)).into_response());
    }
    let service = app.backups.clone();
    Ok(with_progress(
        &app.backups,
        &headers,
        StatusCode::OK,
        move |progress| async move { service.backup_now(&who, &ws, &db, progress).await },
    )
    .await)
}
