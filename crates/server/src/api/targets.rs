//! `/api/v1/workspaces/{ws}/targets…`: storage targets of backups (secrets never shown).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use statehouse_backup::service::{TargetInput, TargetView, TestOutcome};
use statehouse_backup::targets::TargetSpec;
use utoipa::ToSchema;

use super::extract::{Order, parse};
use super::{ApiError, ApiJson, ApiQuery, Caller, ErrorBody, Page, PageParams};
use crate::AppState;

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
    responses((status = 200, body = Page<TargetView>)))]
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
    responses((status = 201, body = TargetView),
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
    responses((status = 200, body = TargetView)))]
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
    responses((status = 200, body = TargetView)))]
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
    responses((status = 204),
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
    responses((status = 200, body = TestOutcome)))]
pub async fn test_target(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, target)): Path<(String, String)>,
) -> Result<Json<TestOutcome>, ApiError> {
    Ok(Json(app.backups.test_target(&who, &ws, &target).await?))
}
