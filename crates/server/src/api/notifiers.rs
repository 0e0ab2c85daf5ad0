//! `/api/v1/workspaces/{ws}/notifiers…`: where backup and health events are sent.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use statehouse_backup::service::{NotifierInput, NotifierView, TestOutcome};
use utoipa::ToSchema;

use super::extract::Order;
use super::{ApiError, ApiJson, ApiQuery, Caller, ErrorBody, Page, PageParams};
use crate::AppState;

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
    responses((status = 200, body = Page<NotifierView>)))]
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
    responses((status = 201, body = NotifierView),
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
    responses((status = 200, body = NotifierView)))]
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
    responses((status = 200, body = NotifierView)))]
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
    responses((status = 204)))]
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
    responses((status = 200, body = TestOutcome)))]
pub async fn test_notifier(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, notifier)): Path<(String, String)>,
) -> Result<Json<TestOutcome>, ApiError> {
    Ok(Json(app.backups.test_notifier(&who, &ws, &notifier).await?))
}
