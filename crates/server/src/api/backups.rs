//! `/api/v1/workspaces/{ws}/…` for PostgreSQL backups: databases (register, check, health,
//! read-only role, backup now), backups (list, show, download, delete, restore, verify),
//! storage targets, notifiers, and the workspace's backup encryption.
//!
//! Long operations (backup now, restore) answer with JSON when they end; asked with
//! `Accept: application/x-ndjson` they stream progress lines first:
//! `{"progress":{"bytes":N,"total":T}}` … then `{"result":…}` or `{"error":{…}}`.

use std::sync::Arc;

use age::secrecy::SecretString;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use statehouse_backup::service::{
    BackupService, BackupView, DatabaseChange, DatabaseSpec, DatabaseView, EncryptionChange,
    EncryptionView, GeneratedKey, HealthCheckView, HealthReport, NotifierInput, NotifierView,
    ProgressFn, ReadonlyRole, ReadonlyRoleRequest, RestoreRequest, RestoreView, ServerRestoreView,
    TargetInput, TargetView, TestOutcome, Uptime, VerificationView,
};
use statehouse_backup::settings::{ConnectionSettings, DatabaseSettings};
use statehouse_backup::targets::TargetSpec;
use statehouse_core::Error;
use statehouse_core::backups::BackupStatus;
use statehouse_core::clock::Timestamp;
use utoipa::{IntoParams, ToSchema};

use super::extract::{Order, checked_limit, decode_cursor};
use super::{ApiError, ApiJson, ApiQuery, Caller, ErrorBody, Page, PageParams};
use crate::AppState;

const NDJSON: &str = "application/x-ndjson";

fn wants_progress(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(NDJSON))
}

/// Runs `work` (detached, see [`BackupService::detached`]) and answers its result as JSON, or
/// (asked for NDJSON) streams its progress lines followed by the result.
async fn with_progress<T, F, Fut>(
    backups: &BackupService,
    headers: &HeaderMap,
    status: StatusCode,
    work: F,
) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce(Option<ProgressFn>) -> Fut,
    Fut: std::future::Future<Output = statehouse_core::Result<T>> + Send + 'static,
{
    if !wants_progress(headers) {
        return match backups.detached(work(None)).await {
            Ok(value) => (status, Json(value)).into_response(),
            Err(e) => ApiError(e).into_response(),
        };
    }
    let (lines, receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
    let progress_lines = lines.clone();
    let last_sent = Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
    let progress: ProgressFn = Arc::new(move |bytes, total| {
        let Ok(mut last) = last_sent.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_millis(250)) {
            return;
        }
        *last = Some(std::time::Instant::now());
        let line = serde_json::json!({"progress": {"bytes": bytes, "total": total}});
        let _ = progress_lines.send(format!("{line}\n"));
    });
    let fut = backups.detached(work(Some(progress)));
    tokio::spawn(async move {
        let last = match fut.await {
            Ok(value) => serde_json::json!({"result": value}),
            Err(e) => {
                // The same body the JSON answer would carry, plus its status.
                let response = ApiError(e).into_response();
                let status = response.status().as_u16();
                let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
                    .await
                    .unwrap_or_default();
                let mut line: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or_else(|_| serde_json::json!({}));
                if let Some(error) = line.get_mut("error").and_then(|e| e.as_object_mut()) {
                    error.insert("status".into(), status.into());
                }
                line
            }
        };
        let _ = lines.send(format!("{last}\n"));
    });
    let stream = futures::stream::unfold(receiver, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::io::Error>(bytes::Bytes::from(line)), rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    response
}

// ---- databases ------------------------------------------------------------------------------

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

fn parse<T: serde::de::DeserializeOwned>(
    what: &str,
    value: serde_json::Value,
) -> Result<T, ApiError> {
    serde_json::from_value(value)
        .map_err(|e| ApiError(Error::BadRequest(format!("{what} is not valid: {e}"))))
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
    responses((status = 200, body = Page<DatabaseView>), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
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
    responses((status = 201, body = DatabaseView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
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
    responses((status = 200, body = DatabaseView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
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
    responses((status = 200, body = DatabaseView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
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
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
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
    responses((status = 200, body = HealthReport), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn check_database(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, db)): Path<(String, String)>,
) -> Result<Json<HealthReport>, ApiError> {
    Ok(Json(app.backups.check_database(&who, &ws, &db).await?))
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
    responses((status = 200, body = HealthHistory), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
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
    responses((status = 201, body = ReadonlyRole), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
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
    responses((status = 200, body = Vec<BackupView>), (status = 202, body = BackupView),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
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

// ---- backups ----------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BackupListParams {
    /// Only this database's backups (name or id).
    pub database: Option<String>,
    /// `queued`, `running`, `succeeded`, `failed`.
    pub status: Option<String>,
    /// Only the backups of this whole-server run (its databases and globals).
    pub server_run: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

/// The workspace's backups, newest first.
#[utoipa::path(get, path = "/workspaces/{ws}/backups", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"), BackupListParams),
    responses((status = 200, body = Page<BackupView>), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_backups(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiQuery(params): ApiQuery<BackupListParams>,
) -> Result<Json<Page<BackupView>>, ApiError> {
    let limit = checked_limit(params.limit)?;
    let status = params
        .status
        .as_deref()
        .map(|s| {
            BackupStatus::parse(s).ok_or_else(|| {
                ApiError(Error::BadRequest(format!(
                    "status {s:?} is not one of queued, running, succeeded, failed"
                )))
            })
        })
        .transpose()?;
    let before = params
        .cursor
        .as_deref()
        .map(|c| {
            let text = decode_cursor(c)?;
            let (millis, id) = text
                .split_once(':')
                .and_then(|(m, id)| m.parse::<i64>().ok().map(|m| (m, id.to_owned())))
                .ok_or_else(|| ApiError(Error::BadRequest("invalid cursor".into())))?;
            Ok::<_, ApiError>((Timestamp(millis), id))
        })
        .transpose()?;
    let found = app
        .backups
        .list_backups(
            &who,
            &ws,
            params.database.as_deref(),
            status,
            params.server_run.as_deref(),
            before,
            limit,
        )
        .await?;
    Ok(Json(Page::of(found, limit, |b: &BackupView| {
        let millis = Timestamp::parse_rfc3339(&b.queued_at)
            .map(|t| t.millis())
            .unwrap_or_default();
        format!("{millis}:{}", b.id)
    })))
}

/// One backup.
#[utoipa::path(get, path = "/workspaces/{ws}/backups/{id}", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "backup id")),
    responses((status = 200, body = BackupView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn show_backup(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<BackupView>, ApiError> {
    Ok(Json(app.backups.backup(&who, &ws, &id).await?))
}

/// Deletes a backup: its stored object and sidecar, then its record (workspace admin).
#[utoipa::path(delete, path = "/workspaces/{ws}/backups/{id}", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "backup id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn delete_backup(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.backups.delete_backup(&who, &ws, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Downloads a backup's stored object, streamed, exactly as stored (`age` → `zstd` → pg_dump
/// custom format; workspace admin).
#[utoipa::path(get, path = "/workspaces/{ws}/backups/{id}/object", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "backup id")),
    responses((status = 200, content_type = "application/octet-stream"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn download_backup(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (view, size, reader) = app.backups.open_backup(&who, &ws, &id).await?;
    let file = view
        .object
        .as_deref()
        .and_then(|o| o.rsplit('/').next())
        .unwrap_or("backup.dump.zst.age")
        .replace('"', "");
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024);
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(size) = size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(sha) = view
        .sha256
        .as_deref()
        .and_then(|s| HeaderValue::from_str(s).ok())
    {
        headers.insert("x-statehouse-sha256", sha);
    }
    Ok(response)
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// Restore into this database (default: the one dumped), created when missing.
    pub database: Option<String>,
    /// Or into another server (`postgres://…`).
    pub url: Option<String>,
    /// Default true.
    pub create: Option<bool>,
    /// `--clean --if-exists` (default true).
    pub clean: Option<bool>,
    /// `--no-owner` (default true).
    pub no_owner: Option<bool>,
    /// pg_restore jobs (default 1).
    pub jobs: Option<u32>,
    /// An age identity (key file text) for backups the server cannot decrypt.
    pub identity: Option<String>,
    pub passphrase: Option<String>,
    /// Replace what the destination holds: a database with objects of its own, or (globals)
    /// roles on the server. Without it such a restore is refused with 400, naming what would
    /// be overwritten.
    pub overwrite: Option<bool>,
}

impl RestoreBody {
    fn into_request(self) -> RestoreRequest {
        RestoreRequest {
            into_database: self.database,
            into_url: self.url,
            create: self.create,
            clean: self.clean,
            no_owner: self.no_owner,
            jobs: self.jobs,
            identity: self.identity.map(SecretString::from),
            passphrase: self.passphrase.map(SecretString::from),
            overwrite: self.overwrite.unwrap_or(false),
        }
    }
}

/// Restores a backup (workspace admin): a database backup into a database, a globals backup
/// onto a server. Refused with 400, before anything changes, when the database has objects
/// (or, for globals, the server has roles) of its own, unless `overwrite`. Streams progress
/// lines with `Accept: application/x-ndjson`.
#[utoipa::path(post, path = "/workspaces/{ws}/backups/{id}/restore", tag = "backups",
    request_body = RestoreBody,
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "backup id")),
    responses((status = 200, body = RestoreView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn restore_backup(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RestoreBody>,
) -> Result<Response, ApiError> {
    let request = body.into_request();
    let service = app.backups.clone();
    Ok(with_progress(
        &app.backups,
        &headers,
        StatusCode::OK,
        move |progress| async move {
            service
                .restore_backup(&who, &ws, &id, request, progress)
                .await
        },
    )
    .await)
}

/// Restores a whole server (workspace admin) from the whole-server run backup `id` belongs to:
/// the server's globals (roles, memberships, tablespaces) first, then every database of the
/// run with its owners and grants (`no_owner` defaults to false; a missing database is created
/// with its owner). Onto the registered server, or `url` (connect as a superuser). Refused
/// with 400, before anything changes, when a database has objects or the server has roles of
/// its own, unless `overwrite`. Streams progress lines with `Accept: application/x-ndjson`.
#[utoipa::path(post, path = "/workspaces/{ws}/backups/{id}/restore-server", tag = "backups",
    request_body = RestoreBody,
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "any backup id of the whole-server run")),
    responses((status = 200, body = ServerRestoreView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn restore_server(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RestoreBody>,
) -> Result<Response, ApiError> {
    let request = body.into_request();
    let service = app.backups.clone();
    Ok(with_progress(
        &app.backups,
        &headers,
        StatusCode::OK,
        move |progress| async move {
            service
                .restore_server(&who, &ws, &id, request, progress)
                .await
        },
    )
    .await)
}

/// Verifies a backup now and records the outcome (workspace editor).
#[utoipa::path(post, path = "/workspaces/{ws}/backups/{id}/verify", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "backup id")),
    responses((status = 200, body = VerificationView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn verify_backup(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<VerificationView>, ApiError> {
    let backups = app.backups.clone();
    let verification = app
        .backups
        .detached(async move { backups.verify_backup(&who, &ws, &id).await });
    Ok(Json(verification.await?))
}

/// A backup's verifications, newest first.
#[utoipa::path(get, path = "/workspaces/{ws}/backups/{id}/verifications", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "backup id"), PageParams),
    responses((status = 200, body = Page<VerificationView>), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn verifications(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id)): Path<(String, String)>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<VerificationView>>, ApiError> {
    let all = app.backups.list_verifications(&who, &ws, &id).await?;
    Ok(Json(Page::select(all, &page, Order::Descending, |v| {
        format!("{}:{}", v.at, v.id)
    })?))
}

// ---- targets --------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewTarget {
    pub name: String,
    /// `{"kind":"s3","bucket":…}` etc.; secrets included (kept sealed, never shown again).
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetPatch {
    pub name: Option<String>,
    /// The full settings; secrets left out are kept.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

/// The workspace's storage targets (secrets never shown).
#[utoipa::path(get, path = "/workspaces/{ws}/targets", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"), PageParams),
    responses((status = 200, body = Page<TargetView>), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_targets(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<TargetView>>, ApiError> {
    let all = app.backups.list_targets(&who, &ws).await?;
    Ok(Json(Page::select(all, &page, Order::Ascending, |t| {
        t.name.clone()
    })?))
}

/// Adds a storage target (workspace admin).
#[utoipa::path(post, path = "/workspaces/{ws}/targets", tag = "backups", request_body = NewTarget,
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 201, body = TargetView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn create_target(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<NewTarget>,
) -> Result<(StatusCode, Json<TargetView>), ApiError> {
    let spec: TargetSpec = parse("target settings", body.settings)?;
    let view = app
        .backups
        .create_target(
            &who,
            &ws,
            TargetInput {
                name: body.name,
                spec,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One storage target.
#[utoipa::path(get, path = "/workspaces/{ws}/targets/{target}", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("target" = String, Path, description = "target name or id")),
    responses((status = 200, body = TargetView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn show_target(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, target)): Path<(String, String)>,
) -> Result<Json<TargetView>, ApiError> {
    Ok(Json(app.backups.target(&who, &ws, &target).await?))
}

/// Changes a storage target (workspace admin).
#[utoipa::path(patch, path = "/workspaces/{ws}/targets/{target}", tag = "backups",
    request_body = TargetPatch,
    params(("ws" = String, Path, description = "workspace name"),
        ("target" = String, Path, description = "target name or id")),
    responses((status = 200, body = TargetView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn change_target(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, target)): Path<(String, String)>,
    ApiJson(body): ApiJson<TargetPatch>,
) -> Result<Json<TargetView>, ApiError> {
    Ok(Json(
        app.backups
            .update_target(&who, &ws, &target, body.name, body.settings)
            .await?,
    ))
}

/// Removes a storage target (workspace admin); refused while used.
#[utoipa::path(delete, path = "/workspaces/{ws}/targets/{target}", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("target" = String, Path, description = "target name or id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn delete_target(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, target)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.backups.delete_target(&who, &ws, &target).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Tests a storage target: writes, reads back and deletes a probe object.
#[utoipa::path(post, path = "/workspaces/{ws}/targets/{target}/test", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("target" = String, Path, description = "target name or id")),
    responses((status = 200, body = TestOutcome), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn test_target(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, target)): Path<(String, String)>,
) -> Result<Json<TestOutcome>, ApiError> {
    Ok(Json(app.backups.test_target(&who, &ws, &target).await?))
}

// ---- notifiers ------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNotifier {
    pub name: String,
    /// `{"kind":"slack","webhook_url":…}` etc.; secrets kept sealed, never shown again.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// Event kinds, prefixes or `*` (default: backup.failed, verification.failed, database.*).
    pub events: Option<Vec<String>>,
    /// Only these databases' events (names); default all.
    pub databases: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifierPatch {
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
    pub events: Option<Vec<String>>,
    pub databases: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// The workspace's notifiers (secrets never shown).
#[utoipa::path(get, path = "/workspaces/{ws}/notifiers", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"), PageParams),
    responses((status = 200, body = Page<NotifierView>), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_notifiers(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<NotifierView>>, ApiError> {
    let all = app.backups.list_notifiers(&who, &ws).await?;
    Ok(Json(Page::select(all, &page, Order::Ascending, |n| {
        n.name.clone()
    })?))
}

/// Adds a notifier (workspace admin).
#[utoipa::path(post, path = "/workspaces/{ws}/notifiers", tag = "backups", request_body = NewNotifier,
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 201, body = NotifierView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn create_notifier(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<NewNotifier>,
) -> Result<(StatusCode, Json<NotifierView>), ApiError> {
    let input = NotifierInput {
        name: body.name,
        settings: Some(body.settings),
        events: body.events,
        databases: body.databases,
        enabled: body.enabled,
    };
    let view = app.backups.create_notifier(&who, &ws, input).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One notifier.
#[utoipa::path(get, path = "/workspaces/{ws}/notifiers/{notifier}", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("notifier" = String, Path, description = "notifier name or id")),
    responses((status = 200, body = NotifierView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn show_notifier(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, notifier)): Path<(String, String)>,
) -> Result<Json<NotifierView>, ApiError> {
    Ok(Json(app.backups.notifier(&who, &ws, &notifier).await?))
}

/// Changes a notifier (workspace admin); secrets left out are kept.
#[utoipa::path(patch, path = "/workspaces/{ws}/notifiers/{notifier}", tag = "backups",
    request_body = NotifierPatch,
    params(("ws" = String, Path, description = "workspace name"),
        ("notifier" = String, Path, description = "notifier name or id")),
    responses((status = 200, body = NotifierView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn change_notifier(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, notifier)): Path<(String, String)>,
    ApiJson(body): ApiJson<NotifierPatch>,
) -> Result<Json<NotifierView>, ApiError> {
    let input = NotifierInput {
        name: body.name.unwrap_or_default(),
        settings: body.settings,
        events: body.events,
        databases: body.databases,
        enabled: body.enabled,
    };
    Ok(Json(
        app.backups
            .update_notifier(&who, &ws, &notifier, input)
            .await?,
    ))
}

/// Removes a notifier (workspace admin).
#[utoipa::path(delete, path = "/workspaces/{ws}/notifiers/{notifier}", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("notifier" = String, Path, description = "notifier name or id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_notifier(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, notifier)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.backups.delete_notifier(&who, &ws, &notifier).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a test notification and reports the receiver's answer.
#[utoipa::path(post, path = "/workspaces/{ws}/notifiers/{notifier}/test", tag = "backups",
    params(("ws" = String, Path, description = "workspace name"),
        ("notifier" = String, Path, description = "notifier name or id")),
    responses((status = 200, body = TestOutcome), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn test_notifier(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, notifier)): Path<(String, String)>,
) -> Result<Json<TestOutcome>, ApiError> {
    Ok(Json(app.backups.test_notifier(&who, &ws, &notifier).await?))
}

// ---- encryption -----------------------------------------------------------------------------

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EncryptionPatch {
    /// Generate a new managed key pair (older backups stay readable: old keys are kept).
    #[serde(default)]
    pub generate_managed_key: bool,
    /// Stop encrypting to the managed key: the server can no longer read new backups.
    #[serde(default)]
    pub drop_managed_key: bool,
    /// Recipients (`age1…`) whose identities only their owners hold; replaces the list.
    pub recipients: Option<Vec<String>>,
    /// Encrypt with this passphrase instead (age: then no other recipient); "" switches it off.
    pub passphrase: Option<String>,
    /// Where full verifications restore to; `url` with password, or "" to remove it.
    pub verification_server_url: Option<String>,
}

/// The workspace's backup encryption and verification server.
#[utoipa::path(get, path = "/workspaces/{ws}/backup-encryption", tag = "backups",
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 200, body = EncryptionView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn encryption(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
) -> Result<Json<EncryptionView>, ApiError> {
    Ok(Json(app.backups.encryption(&who, &ws).await?))
}

/// Changes how new backups are encrypted, or the verification server (workspace admin).
#[utoipa::path(patch, path = "/workspaces/{ws}/backup-encryption", tag = "backups",
    request_body = EncryptionPatch,
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 200, body = EncryptionView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn change_encryption(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<EncryptionPatch>,
) -> Result<Json<EncryptionView>, ApiError> {
    let verification_server = match body.verification_server_url {
        None => None,
        Some(url) if url.trim().is_empty() => Some(None),
        Some(url) => Some(Some(ConnectionSettings::from_url(&url)?)),
    };
    let change = EncryptionChange {
        generate_managed_key: body.generate_managed_key,
        drop_managed_key: body.drop_managed_key,
        recipients: body.recipients,
        passphrase: body.passphrase.map(|p| Some(p).filter(|p| !p.is_empty())),
        verification_server,
    };
    Ok(Json(
        app.backups.change_encryption(&who, &ws, change).await?,
    ))
}

/// Exports the managed identity (workspace admin; audited) for restores without statehouse:
/// save `identity` as `key.txt` for `age -d -i key.txt`.
#[utoipa::path(post, path = "/workspaces/{ws}/backup-encryption/export", tag = "backups",
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 200, body = GeneratedKey), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn export_key(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
) -> Result<Json<GeneratedKey>, ApiError> {
    Ok(Json(app.backups.export_managed_key(&who, &ws).await?))
}
