//! `/api/v1/workspaces/{ws}/states…`: listings, detail, versions and their bodies, kept
//! versions, locks and force-unlock, soft delete, restore and purge.
//!
//! State names contain slashes; in these paths a name is one URL-encoded segment
//! (`env%2Fprod`), decoded before use.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use statehouse_core::Error;
use statehouse_core::clock::Timestamp;
use statehouse_core::model::StateFilter;
use statehouse_core::tfstate::{Output, StateDiff};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Order, time_key};
use super::views::{DeletedStateView, LockView, StateView, VersionView};
use super::{ApiError, ApiJson, ApiQuery, Caller, ErrorBody, Page, PageParams};
use crate::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StateListQuery {
    /// Only states whose name starts with this.
    pub prefix: Option<String>,
    /// `true`: only locked states; `false`: only unlocked ones.
    pub locked: Option<bool>,
    /// Only states written since this RFC 3339 time.
    pub changed_since: Option<String>,
    /// `name` (default) or `changed`: most recently changed first.
    pub sort: Option<String>,
    pub cursor: Option<String>,
    /// 1–1000, default 100.
    pub limit: Option<i64>,
}

/// Live states of a workspace in name order (or most recently changed first), with current
/// version and lock.
#[utoipa::path(get, path = "/workspaces/{ws}/states", tag = "states", operation_id = "list_states",
    params(("ws" = String, Path, description = "workspace name"), StateListQuery),
    responses((status = 200, body = Page<StateView>)))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiQuery(q): ApiQuery<StateListQuery>,
) -> Result<Json<Page<StateView>>, ApiError> {
    let page = PageParams {
        cursor: q.cursor,
        limit: q.limit,
    };
    let by_change = match q.sort.as_deref() {
        None | Some("name") => false,
        Some("changed") => true,
        Some(other) => {
            return Err(
                Error::BadRequest(format!("invalid sort {other:?}: use name or changed")).into(),
            );
        }
    };
    let (after_changed, after_name) = match page.position()? {
        Some(position) if by_change => {
            let (at, name) = changed_position(&position)?;
            (Some(at), Some(name))
        }
        other => (None, other),
    };
    let filter = StateFilter {
        name_prefix: q.prefix,
        locked: q.locked,
        changed_since: q
            .changed_since
            .as_deref()
            .map(Timestamp::parse_rfc3339)
            .transpose()?,
        recently_changed_first: by_change,
        after_name,
        after_changed,
        limit: Some(page.limit()),
        tolerate_lag: true,
    };
    let (workspace, states) = app.services.list_states(&who, &ws, &filter).await?;
    let now = app.services.now();
    let keys: Vec<String> = states
        .iter()
        .map(|s| {
            if by_change {
                time_key(s.updated_at, &s.name)
            } else {
                s.name.clone()
            }
        })
        .collect();
    let views: Vec<StateView> = states
        .iter()
        .map(|s| StateView::new(&workspace, s, now))
        .collect();
    let mut page_out = Page::of(views, page.limit(), |s: &StateView| s.name.clone());
    if page_out.next_cursor.is_some() {
        page_out.next_cursor = keys.last().map(|k| super::extract::encode_cursor(k));
    }
    Ok(Json(page_out))
}

/// A `changed` cursor's position: the update time (milliseconds) and the name.
fn changed_position(position: &str) -> Result<(Timestamp, String), ApiError> {
    position
        .split_once(':')
        .and_then(|(millis, name)| Some((Timestamp(millis.parse().ok()?), name.to_owned())))
        .ok_or_else(|| {
            Error::BadRequest(
                "invalid cursor: pass next_cursor from the previous page unchanged".into(),
            )
            .into()
        })
}

/// One state: current version and lock.
#[utoipa::path(get, path = "/workspaces/{ws}/states/{state}", tag = "states", operation_id = "show_state",
    params(("ws" = String, Path, description = "workspace name"),
        ("state" = String, Path, description = "state name, URL-encoded")),
    responses((status = 200, body = StateView)))]
pub async fn show(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, state)): Path<(String, String)>,
) -> Result<Json<StateView>, ApiError> {
    let (workspace, record) = app.services.state_detail(&who, &ws, &state).await?;
    Ok(Json(StateView::new(
        &workspace,
        &record,
        app.services.now(),
    )))
}

/// Soft-deletes a state (workspace admins): it disappears from the backend and listings, its
/// versions stay restorable until purged. Refused while locked.
#[utoipa::path(delete, path = "/workspaces/{ws}/states/{state}", tag = "states", operation_id = "delete_state",
    params(("ws" = String, Path, description = "workspace name"),
        ("state" = String, Path, description = "state name, URL-encoded")),
    responses((status = 204),
        (status = 423, body = ErrorBody)))]
pub async fn delete(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, state)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.services.delete_state(&who, &ws, &state).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Versions of a state, newest first.
#[utoipa::path(get, path = "/workspaces/{ws}/states/{state}/versions", tag = "versions",
    params(("ws" = String, Path, description = "workspace name"),
        ("state" = String, Path, description = "state name, URL-encoded"), PageParams),
    responses((status = 200, body = Page<VersionView>)))]
pub async fn versions(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, state)): Path<(String, String)>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<VersionView>>, ApiError> {
    let before = page.numeric_position()?;
    let found = app
        .services
        .list_versions(&who, &ws, &state, before, page.limit())
        .await?;
    let views = found.iter().map(VersionView::from).collect();
    Ok(Json(Page::of(views, page.limit(), |v: &VersionView| {
        v.version.to_string()
    })))
}

/// One version's metadata.
#[utoipa::path(get, path = "/workspaces/{ws}/states/{state}/versions/{version}", tag = "versions",
    params(("ws" = String, Path, description = "workspace name"),
        ("state" = String, Path, description = "state name, URL-encoded"),
        ("version" = i64, Path, description = "version number")),
    responses((status = 200, body = VersionView)))]
pub async fn version(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, state, version)): Path<(String, String, i64)>,
) -> Result<Json<VersionView>, ApiError> {
    let (meta, _) = app
        .services
        .read_version(&who, &ws, &state, version)
        .await?;
    Ok(Json(VersionView::from(&meta)))
}

/// Downloads a version: the state file exactly as it was written.
#[utoipa::path(get, path = "/workspaces/{ws}/states/{state}/versions/{version}/body", tag = "versions",
    params(("ws" = String, Path, description = "workspace name"),
        ("state" = String, Path, description = "state name, URL-encoded"),
        ("version" = i64, Path, description = "version number")),
    responses((status = 200, description = "the state file", content_type = "application/json")))]
pub async fn version_body(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, state, version)): Path<(String, String, i64)>,
) -> Result<Response, ApiError> {
    let (meta, body) = app
        .services
        .read_version(&who, &ws, &state, version)
        .await?;
    let file = format!(
        "attachment; filename=\"{}-v{}.tfstate\"",
        state.replace('/', "_"),
        meta.version_no
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, file),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepVersion {
    /// `true`: version retention never deletes this version; `false`: it may again.
    pub kept: bool,
}

/// Marks a version as kept by retention, or releases it (workspace admins).
#[utoipa::path(put, path = "/workspaces/{ws}/states/{state}/versions/{version}/keep", tag = "versions",
    request_body = KeepVersion,
    params(("ws" = String, Path, description = "workspace name"),
        ("state" = String, Path, description = "state name, URL-encoded"),
        ("version" = i64, Path, description = "version number")),
    responses((status = 204)))]
pub async fn keep_version(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, state, version)): Path<(String, String, i64)>,
    ApiJson(body): ApiJson<KeepVersion>,
) -> Result<StatusCode, ApiError> {
    app.services
        .keep_version(&who, &ws, &state, version, body.kept)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who holds the state's lock, since when, for what; 404 when unlocked.
#[utoipa::path(get, path = "/workspaces/{ws}/states/{state}/lock", tag = "locks",
    params(("ws" = String, Path, description = "workspace name"),
        ("state" = String, Path, description = "state name, URL-encoded")),
    responses((status = 200, body = LockView)))]
pub async fn lock(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, state)): Path<(String, String)>,
) -> Result<Json<LockView>, ApiError> {
    let (workspace, record) = app.services.state_detail(&who, &ws, &state).await?;
    let lock = record
        .lock
        .as_ref()
        .ok_or_else(|| Error::NotFound(format!("state {:?} is not locked", record.name)))?;
    Ok(Json(LockView::new(lock, &workspace, app.services.now())))
}

/// Force-unlocks the state (workspace admins); returns the lock that was released.
#[utoipa::path(delete, path = "/workspaces/{ws}/states/{state}/lock", tag = "locks",
    params(("ws" = String, Path, description = "workspace name"),
        ("state" = String, Path, description = "state name, URL-encoded")),
    responses((status = 200, body = LockView),
        (status = 404, body = ErrorBody, description = "not locked")))]
pub async fn force_unlock(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, state)): Path<(String, String)>,
) -> Result<Json<LockView>, ApiError> {
    let (workspace, _) = app.services.workspace_for(&who, &ws).await?;
    let previous = app.services.force_unlock(&who, &ws, &state).await?;
    Ok(Json(LockView::new(
        &previous,
        &workspace,
        app.services.now(),
    )))
}

/// Soft-deleted states of the workspace (workspace admins).
/// Most recently deleted first.
#[utoipa::path(get, path = "/workspaces/{ws}/deleted-states", tag = "states",
    params(("ws" = String, Path, description = "workspace name"), PageParams),
    responses((status = 200, body = Page<DeletedStateView>)))]
pub async fn deleted(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<DeletedStateView>>, ApiError> {
    let found = app.services.list_deleted_states(&who, &ws).await?;
    let page = Page::select(found, &page, Order::Descending, |d| {
        time_key(d.deleted_at, &d.id)
    })?;
    Ok(Json(Page {
        items: page.items.iter().map(DeletedStateView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Makes a soft-deleted state live again (workspace admins).
#[utoipa::path(post, path = "/workspaces/{ws}/deleted-states/{id}/restore", tag = "states",
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "id of the deleted state")),
    responses((status = 204),
        (status = 409, body = ErrorBody, description = "a live state has its name")))]
pub async fn restore(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.services.restore_state(&who, &ws, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a soft-deleted state and all its versions for good (workspace admins).
#[utoipa::path(delete, path = "/workspaces/{ws}/deleted-states/{id}", tag = "states",
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "id of the deleted state")),
    responses((status = 204)))]
pub async fn purge(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.services.purge_state(&who, &ws, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The older version (default: the one before `to`).
    pub from: Option<i64>,
    /// The newer version (default: the current one).
    pub to: Option<i64>,
}

/// Differences between two versions of a state.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffView {
    pub from: i64,
    pub to: i64,
    /// `kind` (`terraform`, or `pulumi` when both versions are Pulumi checkpoints), `before`/
    /// `after` headers (serial, lineage, client version, instance count), `added` and
    /// `removed` instances, `changed` instances with their changed attribute `path`s and
    /// `before`/`after` values, `unchanged` count, and `outputs` (`added`, `removed`,
    /// `changed`). Sensitive values read `(sensitive)` unless the caller is a workspace admin.
    /// For Pulumi: addresses are URNs, `type` the type token, `module` the parent's URN,
    /// `provider` the provider's URN, `lineage` the stack name, paths start with `inputs.` or
    /// `outputs.`, a replaced resource awaiting deletion has `deposed: "pending-delete"`, an
    /// interrupted operation shows as `status` (`pending updating`), `outputs` are the stack's
    /// outputs, and secrets read `(secret)` for every caller.
    #[schema(value_type = Object)]
    pub diff: StateDiff,
}

/// Resource-level diff between two versions: added, removed and changed instances (with
/// attribute paths and values) and output changes.
#[utoipa::path(get, path = "/workspaces/{ws}/states/{state}/diff", tag = "versions",
    params(("ws" = String, Path, description = "workspace name"),
        ("state" = String, Path, description = "state name, URL-encoded"), DiffQuery),
    responses((status = 200, body = DiffView)))]
pub async fn diff(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, state)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> Result<Json<DiffView>, ApiError> {
    let (from, to, diff) = app
        .services
        .diff_versions(&who, &ws, &state, q.from, q.to)
        .await?;
    Ok(Json(DiffView { from, to, diff }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The version to make current again.
    pub version: i64,
}

/// Makes an earlier version current again: it is written as a new version with the serial
/// bumped above the current one, so the next `terraform plan` accepts it (editors). Refused
/// (423) while another client holds the lock.
#[utoipa::path(post, path = "/workspaces/{ws}/states/{state}/rollback", tag = "versions",
    request_body = Rollback,
    params(("ws" = String, Path, description = "workspace name"),
        ("state" = String, Path, description = "state name, URL-encoded")),
    responses((status = 201, body = VersionView, description = "the new current version"), (status = 409, body = ErrorBody),
        (status = 423, body = ErrorBody)))]
pub async fn rollback(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, state)): Path<(String, String)>,
    ApiJson(body): ApiJson<Rollback>,
) -> Result<(StatusCode, Json<VersionView>), ApiError> {
    let meta = app
        .services
        .rollback(&who, &ws, &state, body.version)
        .await?;
    Ok((StatusCode::CREATED, Json(VersionView::from(&meta))))
}

/// A state's current outputs.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutputsView {
    /// The version they come from.
    pub version: i64,
    pub serial: i64,
    /// `name`, `value` (`(sensitive)` unless the caller is a workspace admin), `type`,
    /// `sensitive`. For a Pulumi stack: the stack's outputs, secrets (anywhere in a value)
    /// reading `(secret)` with `sensitive: true` for every caller, `type` null.
    #[schema(value_type = Vec<Object>)]
    pub outputs: Vec<Output>,
}

/// The current outputs of a state.
#[utoipa::path(get, path = "/workspaces/{ws}/states/{state}/outputs", tag = "states",
    params(("ws" = String, Path, description = "workspace name"),
        ("state" = String, Path, description = "state name, URL-encoded")),
    responses((status = 200, body = OutputsView)))]
pub async fn outputs(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, state)): Path<(String, String)>,
) -> Result<Json<OutputsView>, ApiError> {
    let (meta, outputs) = app.services.current_outputs(&who, &ws, &state).await?;
    Ok(Json(OutputsView {
        version: meta.version_no,
        serial: meta.serial,
        outputs,
    }))
}
