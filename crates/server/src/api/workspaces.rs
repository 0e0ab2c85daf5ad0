//! `/api/v1/workspaces`: list, create, show, change (rename, policies), delete.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer};
use statehouse_core::workspaces::WorkspaceChange;
use utoipa::ToSchema;

use super::extract::Order;
use super::views::WorkspaceView;
use super::{ApiError, ApiJson, ApiQuery, Caller, ErrorBody, Page, PageParams};
use crate::AppState;

/// The workspaces the caller has a role in, by name.
#[utoipa::path(get, path = "/workspaces", tag = "workspaces", operation_id = "list_workspaces",
    params(PageParams),
    responses((status = 200, body = Page<WorkspaceView>)))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<WorkspaceView>>, ApiError> {
    let all = app.services.list_workspaces(&who).await?;
    let views = all
        .iter()
        .map(|(ws, role)| WorkspaceView::new(ws, *role))
        .collect();
    Ok(Json(Page::select(views, &page, Order::Ascending, |w| {
        w.name.clone()
    })?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkspace {
    /// 1–63 characters a-z, 0-9, `-` or `_`, starting with a letter or digit.
    pub name: String,
}

/// Creates a workspace (instance admins).
#[utoipa::path(post, path = "/workspaces", tag = "workspaces", operation_id = "create_workspace", request_body = NewWorkspace,
    responses((status = 201, body = WorkspaceView), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    ApiJson(body): ApiJson<NewWorkspace>,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    let ws = app.services.create_workspace_as(&who, &body.name).await?;
    let role = who
        .role_in(&ws.id)
        .unwrap_or(statehouse_core::access::Role::Admin);
    Ok((StatusCode::CREATED, Json(WorkspaceView::new(&ws, role))))
}

/// One workspace with its policies.
#[utoipa::path(get, path = "/workspaces/{ws}", tag = "workspaces", operation_id = "show_workspace",
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 200, body = WorkspaceView)))]
pub async fn show(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let (workspace, role) = app.services.workspace_for(&who, &ws).await?;
    Ok(Json(WorkspaceView::new(&workspace, role)))
}

/// Fields to change; absent fields stay, `null` turns a policy off.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePatch {
    /// New name (tokens and memberships follow; backend addresses change with it).
    pub name: Option<String>,
    pub serial_protection: Option<bool>,
    /// Keep the newest N versions of each state (null: no count rule).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub keep_versions: Option<Option<i64>>,
    /// Keep versions younger than this many seconds (null: no age rule).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub keep_versions_for_seconds: Option<Option<i64>>,
    /// Flag locks held longer than this many seconds as stale (null: never).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub stale_lock_after_seconds: Option<Option<i64>>,
    /// A LOCK whose address has no `lock_wait` waits this many seconds (1–3600) for a held
    /// lock (null: it does not wait).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub lock_wait_seconds: Option<Option<i64>>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

fn millis(seconds: Option<Option<i64>>) -> Option<Option<i64>> {
    seconds.map(|s| s.map(|s| s.saturating_mul(1_000)))
}

/// Renames a workspace or changes its policies (workspace admins).
#[utoipa::path(patch, path = "/workspaces/{ws}", tag = "workspaces", operation_id = "change_workspace", request_body = WorkspacePatch,
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 200, body = WorkspaceView),
        (status = 409, body = ErrorBody)))]
pub async fn change(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiJson(patch): ApiJson<WorkspacePatch>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let change = WorkspaceChange {
        name: patch.name,
        serial_protection: patch.serial_protection,
        keep_versions: patch.keep_versions,
        keep_versions_for_millis: millis(patch.keep_versions_for_seconds),
        stale_lock_after_millis: millis(patch.stale_lock_after_seconds),
        lock_wait_millis: millis(patch.lock_wait_seconds),
    };
    let updated = app.services.change_workspace(&who, &ws, &change).await?;
    let role = who
        .role_in(&updated.id)
        .unwrap_or(statehouse_core::access::Role::Admin);
    Ok(Json(WorkspaceView::new(&updated, role)))
}

/// Deletes a workspace without states (instance admins); its tokens go with it.
#[utoipa::path(delete, path = "/workspaces/{ws}", tag = "workspaces", operation_id = "delete_workspace",
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 204),
        (status = 409, body = ErrorBody, description = "the workspace still has states")))]
pub async fn delete(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.services.delete_workspace(&who, &ws).await?;
    Ok(StatusCode::NO_CONTENT)
}
