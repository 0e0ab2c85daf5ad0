//! `/ui/workspaces`: the workspaces the viewer has a role in, with their policies at a
//! glance, and for instance admins the form that creates one. As `GET`/`POST
//! /api/v1/workspaces`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::access::Role;

use super::format::duration;
use super::links::{members_of, webhooks_of, workspace_page};
use super::listing::{Pager, select};
use super::page::{Chrome, OrPage, Refusal, Section, UiError, UiForm, Viewer, render, see_other};
use crate::AppState;
use crate::api::Order;

pub struct WorkspaceRow {
    pub name: String,
    pub href: String,
    pub role: String,
    pub serial_protection: bool,
    pub retention: String,
    pub stale_after: String,
    /// Empty unless the viewer administers the workspace.
    pub members: String,
    pub webhooks: String,
}

#[derive(Template)]
#[template(path = "workspaces.html")]
struct WorkspacesPage {
    chrome: Chrome,
    access_at: &'static str,
    rows: Vec<WorkspaceRow>,
    pager: Pager,
    can_create: bool,
    error: String,
    draft_name: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
}

/// "newest 10, and any younger than 30 d 0 h", or "every version".
pub fn retention_text(keep: Option<i64>, keep_for_millis: Option<i64>) -> String {
    match (keep, keep_for_millis) {
        (None, None) => "every version".into(),
        (Some(n), None) => format!("newest {n}"),
        (None, Some(ms)) => format!("younger than {}", duration(ms / 1_000)),
        (Some(n), Some(ms)) => format!("newest {n}, and any younger than {}", duration(ms / 1_000)),
    }
}

/// `GET /ui/workspaces`.
pub async fn list(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    show(&app, viewer, &uri, q.cursor.as_deref(), None, String::new()).await
}

async fn show(
    app: &AppState,
    viewer: Viewer,
    uri: &Uri,
    cursor: Option<&str>,
    refusal: Option<Refusal>,
    draft_name: String,
) -> Result<Response, UiError> {
    let all = app
        .services
        .list_workspaces(&viewer.who)
        .await
        .or_page(&viewer)?;
    let page = select(all, cursor, Order::Ascending, |(w, _)| w.name.clone()).or_page(&viewer)?;
    let rows = page
        .items
        .iter()
        .map(|(w, role)| {
            let admin = *role == Role::Admin;
            WorkspaceRow {
                name: w.name.clone(),
                href: workspace_page(&w.name),
                role: role.to_string(),
                serial_protection: w.serial_protection,
                retention: retention_text(
                    w.settings.keep_versions,
                    w.settings.keep_versions_for_millis,
                ),
                stale_after: w
                    .settings
                    .stale_lock_after_millis
                    .map_or("never".into(), |ms| duration(ms / 1_000)),
                members: if admin {
                    members_of(&w.name)
                } else {
                    String::new()
                },
                webhooks: if admin {
                    webhooks_of(&w.name)
                } else {
                    String::new()
                },
            }
        })
        .collect();
    let (status, error) = match refusal {
        Some(r) => (r.status, r.message),
        None => (StatusCode::OK, String::new()),
    };
    let data = WorkspacesPage {
        chrome: Chrome::signed_in(&viewer, "Workspaces", uri, Section::Access),
        access_at: "workspaces",
        rows,
        pager: Pager::new("/ui/workspaces", cursor, page.next_cursor.as_deref()),
        can_create: viewer.who.is_instance_admin(),
        error,
        draft_name,
    };
    Ok(render(status, &data))
}

#[derive(Debug, Deserialize)]
pub struct NewWorkspaceForm {
    name: String,
}

/// `POST /ui/workspaces`: creates a workspace (instance admins).
pub async fn create(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    UiForm(viewer, form): UiForm<NewWorkspaceForm>,
) -> Result<Response, UiError> {
    match app
        .services
        .create_workspace_as(&viewer.who, &form.name)
        .await
    {
        Ok(ws) => {
            tracing::info!(
                workspace = ws.name,
                by = viewer.who.actor(),
                "workspace created (UI)"
            );
            see_other(&format!("{}?done=created", workspace_page(&ws.name)))
        }
        Err(e) => {
            let refusal = Refusal::of(e, &viewer)?;
            show(&app, viewer, &uri, None, Some(refusal), form.name).await
        }
    }
}
