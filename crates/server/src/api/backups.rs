//! `/api/v1/workspaces/{ws}/backups…`: backup runs — list, show, download, delete, restore
//! (a database, globals, a whole server) and verify.

use std::sync::Arc;

use age::secrecy::SecretString;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use statehouse_backup::service::{
    BackupView, RestoreRequest, RestoreView, ServerRestoreView, VerificationView,
};
use statehouse_core::Error;
use statehouse_core::backups::BackupStatus;
use statehouse_core::clock::Timestamp;
use utoipa::{IntoParams, ToSchema};

use super::extract::{Order, checked_limit, decode_cursor};
use super::progress::with_progress;
use super::{ApiError, ApiJson, ApiQuery, Caller, ErrorBody, Page, PageParams};
use crate::AppState;

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
    responses((status = 200, body = Page<BackupView>)))]
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
    responses((status = 200, body = BackupView)))]
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
    responses((status = 204),
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
    responses((status = 200, body = RestoreView),
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
    responses((status = 200, body = ServerRestoreView),
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
    responses((status = 200, body = VerificationView), (status = 409, body = ErrorBody)))]
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
    responses((status = 200, body = Page<VerificationView>)))]
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
