//! `/`: what needs attention now — locks held (stale and oldest first), databases that are
//! down, states changed in the last 24 hours — across every workspace the viewer can read.
//! The region refreshes itself from `/ui/partials/overview`.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use statehouse_core::access::Role;
use statehouse_core::history::lock_is_stale;
use statehouse_core::model::StateFilter;

use super::format::{ago, utc};
use super::links::state_page;
use super::page::{Chrome, OrPage, Section, UiError, Viewer, page};
use crate::AppState;

/// Most rows a section lists (the states page has them all).
const SECTION_ROWS: usize = 20;
/// States read per workspace and section.
const PER_WORKSPACE: i64 = 100;
const DAY_MILLIS: i64 = 86_400_000;

pub struct LockRow {
    pub workspace: String,
    pub state: String,
    pub href: String,
    pub holder: String,
    pub operation: String,
    pub age: String,
    pub stale: bool,
    age_millis: i64,
}

pub struct ChangeRow {
    pub workspace: String,
    pub state: String,
    pub href: String,
    pub version: i64,
    pub writer: String,
    pub when: String,
    at: i64,
}

pub struct DatabaseRow {
    pub workspace: String,
    pub name: String,
    pub failures: i64,
    pub since: String,
    pub error: String,
}

/// The refreshing region.
pub struct OverviewBody {
    pub locks: Vec<LockRow>,
    pub more_locks: usize,
    pub changes: Vec<ChangeRow>,
    pub databases_down: Vec<DatabaseRow>,
    pub workspaces: usize,
    pub as_of: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    body: OverviewBody,
}

#[derive(Template)]
#[template(path = "overview_partial.html")]
struct OverviewPartial {
    body: OverviewBody,
}

/// `GET /`.
pub async fn show(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Response, UiError> {
    let body = gather(&app, &viewer).await?;
    page(&OverviewPage {
        chrome: Chrome::signed_in(&viewer, "Overview", &uri, Section::Overview),
        body,
    })
}

/// `GET /ui/partials/overview`: the region alone, for the page's refresh.
pub async fn partial(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
) -> Result<Response, UiError> {
    let body = gather(&app, &viewer).await?;
    page(&OverviewPartial { body })
}

async fn gather(app: &AppState, viewer: &Viewer) -> Result<OverviewBody, UiError> {
    let services = &app.services;
    let now = services.now();
    let workspaces = services
        .list_workspaces(&viewer.who)
        .await
        .or_page(viewer)?;
    let mut locks = Vec::new();
    let mut changes = Vec::new();
    let mut databases_down = Vec::new();
    for (ws, role) in &workspaces {
        if *role < Role::Viewer {
            continue;
        }
        let locked = StateFilter {
            locked: Some(true),
            limit: Some(PER_WORKSPACE),
            ..StateFilter::default()
        };
        let (_, held) = services
            .list_states(&viewer.who, &ws.name, &locked)
            .await
            .or_page(viewer)?;
        for state in &held {
            let Some(lock) = &state.lock else { continue };
            let info: serde_json::Value = serde_json::from_str(&lock.info).unwrap_or_default();
            locks.push(LockRow {
                workspace: ws.name.clone(),
                state: state.name.clone(),
                href: state_page(&ws.name, &state.name),
                holder: lock.holder.clone(),
                operation: info
                    .get("Operation")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned(),
                age: ago(now, lock.locked_at),
                stale: lock_is_stale(ws, lock.locked_at, now),
                age_millis: now.millis() - lock.locked_at.millis(),
            });
        }
        let recent = StateFilter {
            changed_since: Some(now.plus_millis(-DAY_MILLIS)),
            limit: Some(PER_WORKSPACE),
            ..StateFilter::default()
        };
        let (_, changed) = services
            .list_states(&viewer.who, &ws.name, &recent)
            .await
            .or_page(viewer)?;
        for state in &changed {
            let Some(current) = &state.current else {
                continue;
            };
            changes.push(ChangeRow {
                workspace: ws.name.clone(),
                state: state.name.clone(),
                href: state_page(&ws.name, &state.name),
                version: current.version_no,
                writer: current.created_by.clone(),
                when: ago(now, current.created_at),
                at: current.created_at.millis(),
            });
        }
        // Databases are listed for viewers too; a failure to list them (a backup store
        // problem) must not hide the states' news.
        if let Ok(databases) = app.backups.list_databases(&viewer.who, &ws.name).await {
            databases_down.extend(
                databases
                    .into_iter()
                    .filter(|d| d.health == "down")
                    .map(|d| DatabaseRow {
                        workspace: ws.name.clone(),
                        name: d.name,
                        failures: d.consecutive_failures,
                        since: d.health_changed_at.unwrap_or_default(),
                        error: d.last_check_error.unwrap_or_default(),
                    }),
            );
        }
    }
    // Stale first, then the oldest: those are the ones someone must look at.
    locks.sort_by(|a, b| b.stale.cmp(&a.stale).then(b.age_millis.cmp(&a.age_millis)));
    let more_locks = locks.len().saturating_sub(SECTION_ROWS);
    locks.truncate(SECTION_ROWS);
    changes.sort_by_key(|c| std::cmp::Reverse(c.at));
    changes.truncate(SECTION_ROWS);
    Ok(OverviewBody {
        locks,
        more_locks,
        changes,
        databases_down,
        workspaces: workspaces.len(),
        as_of: utc(now),
    })
}
