//! `/ui/workspaces/{ws}/members`: who has which role in a workspace, and (its admins) giving,
//! changing and taking roles away. As `/api/v1/workspaces/{ws}/members`.

use std::str::FromStr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::access::Role;

use super::format::utc;
use super::links::{members_of, query_escape, user_page, workspace_page};
use super::listing::{Pager, select};
use super::page::{Chrome, OrPage, Refusal, Section, UiError, UiForm, Viewer, render, see_other};
use super::states::Choice;
use super::user::role_choices;
use crate::AppState;
use crate::api::Order;

pub struct MemberRow {
    pub user: String,
    pub href: String,
    pub role: String,
    pub granted: String,
    pub roles: Vec<Choice>,
    pub remove: String,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    chrome: Chrome,
    access_at: &'static str,
    workspace: String,
    workspace_href: String,
    action: String,
    rows: Vec<MemberRow>,
    pager: Pager,
    roles: Vec<Choice>,
    draft_user: String,
    notice: &'static str,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct MembersQuery {
    cursor: Option<String>,
    done: Option<String>,
}

/// `GET /ui/workspaces/{ws}/members` (workspace admins).
pub async fn list(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path(ws): Path<String>,
    Query(q): Query<MembersQuery>,
) -> Result<Response, UiError> {
    let notice = match q.done.as_deref() {
        Some("set") => "The role was set.",
        Some("removed") => "The member was removed.",
        _ => "",
    };
    show(
        &app,
        viewer,
        &uri,
        &ws,
        q.cursor.as_deref(),
        notice,
        None,
        String::new(),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn show(
    app: &AppState,
    viewer: Viewer,
    uri: &Uri,
    ws: &str,
    cursor: Option<&str>,
    notice: &'static str,
    refusal: Option<Refusal>,
    draft_user: String,
) -> Result<Response, UiError> {
    let members = app
        .services
        .members(&viewer.who, ws)
        .await
        .or_page(&viewer)?;
    let page =
        select(members, cursor, Order::Ascending, |m| m.user_name.clone()).or_page(&viewer)?;
    let base = members_of(ws);
    let rows = page
        .items
        .iter()
        .map(|m| MemberRow {
            user: m.user_name.clone(),
            href: user_page(&m.user_name),
            role: m.role.to_string(),
            granted: utc(m.granted_at),
            roles: role_choices(m.role),
            remove: format!("{base}/{}/remove", query_escape(&m.user_name)),
        })
        .collect();
    let (status, error) = match refusal {
        Some(r) => (r.status, r.message),
        None => (StatusCode::OK, String::new()),
    };
    let data = MembersPage {
        chrome: Chrome::signed_in(&viewer, format!("Members of {ws}"), uri, Section::Access),
        access_at: "workspaces",
        workspace: ws.to_owned(),
        workspace_href: workspace_page(ws),
        pager: Pager::new(&base, cursor, page.next_cursor.as_deref()),
        action: base,
        rows,
        roles: role_choices(Role::Viewer),
        draft_user,
        notice,
        error,
    };
    Ok(render(status, &data))
}

#[derive(Debug, Deserialize)]
pub struct MemberForm {
    user: String,
    role: String,
}

/// `POST /ui/workspaces/{ws}/members`: gives a user a role, replacing the one it had.
pub async fn set(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path(ws): Path<String>,
    UiForm(viewer, form): UiForm<MemberForm>,
) -> Result<Response, UiError> {
    let result = match Role::from_str(&form.role) {
        Ok(role) => {
            app.services
                .set_member(&viewer.who, &ws, &form.user, role)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(m) => {
            tracing::info!(workspace = ws, user = m.user_name, role = %m.role, by = viewer.who.actor(), "member role set (UI)");
            see_other(&format!("{}?done=set", members_of(&ws)))
        }
        Err(e) => {
            let refusal = Refusal::of(e, &viewer)?;
            show(&app, viewer, &uri, &ws, None, "", Some(refusal), form.user).await
        }
    }
}

#[derive(Deserialize)]
pub struct NoFields {}

/// `POST /ui/workspaces/{ws}/members/{user}/remove`: takes the user's role away.
pub async fn remove(
    State(app): State<Arc<AppState>>,
    Path((ws, user)): Path<(String, String)>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    app.services
        .remove_member(&viewer.who, &ws, &user)
        .await
        .or_page(&viewer)?;
    tracing::info!(
        workspace = ws,
        user,
        by = viewer.who.actor(),
        "member removed (UI)"
    );
    see_other(&format!("{}?done=removed", members_of(&ws)))
}
