//! Deleting a state (soft: its versions stay) and the workspace's deleted states with restore
//! and purge — workspace admins, through the same services as `DELETE …/states/{state}`,
//! `…/deleted-states`, `…/restore` and `…/purge`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::Error;

use super::format::{ago, utc};
use super::links::{query_escape, state_action, state_page, states_of};
use super::page::{Chrome, NoFields, OrPage, Section, UiError, UiForm, Viewer, page, see_other};
use crate::AppState;

#[derive(Template)]
#[template(path = "delete_state.html")]
struct DeletePage {
    chrome: Chrome,
    workspace: String,
    name: String,
    versions: i64,
    locked: bool,
    action: String,
    back: String,
}

/// `GET /ui/delete/{ws}/{name}`: what deleting means, and the button.
pub async fn confirm_delete(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path((ws, name)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let (workspace, record) = app
        .services
        .state_detail(&viewer.who, &ws, &name)
        .await
        .or_page(&viewer)?;
    page(&DeletePage {
        chrome: Chrome::signed_in(&viewer, "Delete state", &uri, Section::States),
        workspace: workspace.name.clone(),
        name: record.name.clone(),
        versions: record.current.as_ref().map_or(0, |c| c.version_no),
        locked: record.lock.is_some(),
        action: state_action("delete", &workspace.name, &record.name),
        back: state_page(&workspace.name, &record.name),
    })
}

/// `POST /ui/delete/{ws}/{name}`: soft-deletes the state (refused while locked).
pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path((ws, name)): Path<(String, String)>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    app.services
        .delete_state(&viewer.who, &ws, &name)
        .await
        .or_page(&viewer)?;
    see_other(&format!(
        "/ui/deleted?ws={}&done=deleted&name={}",
        query_escape(&ws),
        query_escape(&name)
    ))
}

pub struct DeletedRow {
    pub id: String,
    pub name: String,
    pub deleted_at: String,
    pub deleted_ago: String,
    pub deleted_by: String,
    pub versions: i64,
}

#[derive(Template)]
#[template(path = "deleted_states.html")]
struct DeletedPage {
    chrome: Chrome,
    workspace: String,
    notice: String,
    rows: Vec<DeletedRow>,
    states_href: String,
}

#[derive(Debug, Deserialize)]
pub struct DeletedQuery {
    ws: String,
    done: Option<String>,
    #[serde(default)]
    name: String,
}

/// `GET /ui/deleted?ws=`: the workspace's deleted states, most recently deleted first.
pub async fn list(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Query(q): Query<DeletedQuery>,
) -> Result<Response, UiError> {
    let deleted = app
        .services
        .list_deleted_states(&viewer.who, &q.ws)
        .await
        .or_page(&viewer)?;
    let now = app.services.now();
    let mut rows: Vec<DeletedRow> = deleted
        .iter()
        .map(|d| DeletedRow {
            id: d.id.clone(),
            name: d.name.clone(),
            deleted_at: utc(d.deleted_at),
            deleted_ago: ago(now, d.deleted_at),
            deleted_by: d.deleted_by.clone(),
            versions: d.versions,
        })
        .collect();
    rows.sort_by(|a, b| b.deleted_at.cmp(&a.deleted_at));
    // The name only echoes a state name (never arbitrary text from a link).
    let named = statehouse_core::names::StateName::parse(&q.name).is_ok();
    let notice = match q.done.as_deref().filter(|_| named) {
        Some("deleted") => format!(
            "State {:?} was deleted. Its versions stay here until purged; restore brings it back.",
            q.name
        ),
        Some("restored") => format!("State {:?} was restored.", q.name),
        Some("purged") => format!(
            "State {:?} and all its versions were removed for good.",
            q.name
        ),
        _ => String::new(),
    };
    page(&DeletedPage {
        chrome: Chrome::signed_in(&viewer, "Deleted states", &uri, Section::States),
        workspace: q.ws.clone(),
        notice,
        rows,
        states_href: states_of(&q.ws),
    })
}

#[derive(Deserialize)]
pub struct DeletedAction {
    ws: String,
    id: String,
    /// For a purge: the state's name typed again, as the confirmation.
    #[serde(default)]
    confirm_name: String,
}

/// The deleted state with this id, as the list shows it.
async fn deleted_state(
    app: &AppState,
    viewer: &Viewer,
    ws: &str,
    id: &str,
) -> Result<statehouse_core::model::DeletedState, UiError> {
    app.services
        .list_deleted_states(&viewer.who, ws)
        .await
        .or_page(viewer)?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| {
            UiError::new(
                Error::NotFound("no such deleted state (restored or purged meanwhile?)".into()),
                viewer.theme,
            )
        })
}

/// `POST /ui/deleted/restore`.
pub async fn restore(
    State(app): State<Arc<AppState>>,
    UiForm(viewer, form): UiForm<DeletedAction>,
) -> Result<Response, UiError> {
    let found = deleted_state(&app, &viewer, &form.ws, &form.id).await?;
    app.services
        .restore_state(&viewer.who, &form.ws, &form.id)
        .await
        .or_page(&viewer)?;
    see_other(&format!(
        "/ui/deleted?ws={}&done=restored&name={}",
        query_escape(&form.ws),
        query_escape(&found.name)
    ))
}

/// `POST /ui/deleted/purge`: needs the state's name typed again.
pub async fn purge(
    State(app): State<Arc<AppState>>,
    UiForm(viewer, form): UiForm<DeletedAction>,
) -> Result<Response, UiError> {
    let found = deleted_state(&app, &viewer, &form.ws, &form.id).await?;
    if form.confirm_name.trim() != found.name {
        return Err(UiError::new(
            Error::BadRequest(format!(
                "type the state's name ({:?}) to confirm the purge: it removes every version for good",
                found.name
            )),
            viewer.theme,
        ));
    }
    app.services
        .purge_state(&viewer.who, &form.ws, &form.id)
        .await
        .or_page(&viewer)?;
    see_other(&format!(
        "/ui/deleted?ws={}&done=purged&name={}",
        query_escape(&form.ws),
        query_escape(&found.name)
    ))
}
