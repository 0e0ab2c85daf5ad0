//! `/ui/states`: the states of a workspace, filtered by name prefix, lock and last change, a
//! page at a time in name order.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::Error;
use statehouse_core::history::lock_is_stale;
use statehouse_core::model::StateFilter;
use statehouse_core::objects::stack_of;

use super::format::{ago, size};
use super::links::{query_escape, state_page};
use super::page::{Chrome, OrPage, Section, UiError, Viewer, page};
use crate::AppState;

/// States per page.
const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    ws: Option<String>,
    #[serde(default)]
    prefix: String,
    /// `yes`, `no` or empty (either).
    #[serde(default)]
    locked: String,
    /// `1h`, `24h`, `7d`, `30d` or empty (any time).
    #[serde(default)]
    changed: String,
    /// `changed`: most recently changed first; else by name.
    #[serde(default)]
    sort: String,
    /// The last name of the previous page (by change: `<millis>:<name>`).
    cursor: Option<String>,
}

/// A choice of a `<select>`.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// `options` as `(value, label)` choices of a `<select>`, `current` selected.
pub fn choices(options: &[(&str, &str)], current: &str) -> Vec<Choice> {
    options
        .iter()
        .map(|(value, label)| Choice {
            value: (*value).into(),
            label: (*label).into(),
            selected: *value == current,
        })
        .collect()
}

pub struct StateRow {
    pub href: String,
    pub name: String,
    /// A Pulumi stack (`pulumi/<project>/<stack>`), badged as such.
    pub pulumi: bool,
    pub version: String,
    pub serial: String,
    pub resources: String,
    pub size: String,
    pub changed: String,
    pub writer: String,
    /// Empty when unlocked.
    pub lock_holder: String,
    pub lock_age: String,
    pub stale: bool,
}

#[derive(Template)]
#[template(path = "states.html")]
struct StatesPage {
    chrome: Chrome,
    workspaces: Vec<Choice>,
    workspace: String,
    prefix: String,
    locked: Vec<Choice>,
    changed: Vec<Choice>,
    sort: Vec<Choice>,
    rows: Vec<StateRow>,
    /// Empty on the last page.
    next_page: String,
    first_page: String,
    paged: bool,
    /// Set for workspace admins: the deleted states' page.
    deleted_href: String,
}

/// `GET /ui/states`.
pub async fn list(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    let services = &app.services;
    let workspaces = services
        .list_workspaces(&viewer.who)
        .await
        .or_page(&viewer)?;
    let Some(ws) =
        q.ws.clone()
            .or_else(|| workspaces.first().map(|(w, _)| w.name.clone()))
    else {
        return Err(UiError::new(
            Error::NotFound("you have no role in any workspace yet: ask an admin for one".into()),
            viewer.theme,
        ));
    };
    let now = services.now();
    let changed_since = match q.changed.as_str() {
        "" => None,
        "1h" => Some(now.plus_millis(-3_600_000)),
        "24h" => Some(now.plus_millis(-86_400_000)),
        "7d" => Some(now.plus_millis(-7 * 86_400_000)),
        "30d" => Some(now.plus_millis(-30 * 86_400_000)),
        other => {
            return Err(UiError::new(
                Error::BadRequest(format!(
                    "unknown time range {other:?}: choose 1h, 24h, 7d or 30d"
                )),
                viewer.theme,
            ));
        }
    };
    let locked = match q.locked.as_str() {
        "" => None,
        "yes" => Some(true),
        "no" => Some(false),
        other => {
            return Err(UiError::new(
                Error::BadRequest(format!("unknown lock filter {other:?}: choose yes or no")),
                viewer.theme,
            ));
        }
    };
    let by_change = q.sort == "changed";
    let (after_changed, after_name) = match (&q.cursor, by_change) {
        (Some(cursor), true) => {
            let (millis, name) = cursor
                .split_once(':')
                .and_then(|(m, n)| Some((m.parse::<i64>().ok()?, n.to_owned())))
                .ok_or_else(|| {
                    UiError::new(
                        Error::BadRequest(
                            "invalid page position: start again from the first page".into(),
                        ),
                        viewer.theme,
                    )
                })?;
            (Some(statehouse_core::clock::Timestamp(millis)), Some(name))
        }
        (cursor, _) => (None, cursor.clone()),
    };
    let filter = StateFilter {
        name_prefix: Some(q.prefix.trim().to_owned()).filter(|p| !p.is_empty()),
        locked,
        changed_since,
        recently_changed_first: by_change,
        after_name,
        after_changed,
        limit: Some(PAGE),
        tolerate_lag: true,
    };
    let (workspace, states) = services
        .list_states(&viewer.who, &ws, &filter)
        .await
        .or_page(&viewer)?;
    let rows: Vec<StateRow> = states
        .iter()
        .map(|s| {
            let current = s.current.as_ref();
            StateRow {
                href: state_page(&workspace.name, &s.name),
                name: s.name.clone(),
                pulumi: stack_of(&s.name).is_some(),
                version: current.map_or("—".into(), |c| c.version_no.to_string()),
                serial: current.map_or("—".into(), |c| c.serial.to_string()),
                resources: current
                    .and_then(|c| c.resource_count)
                    .map_or("—".into(), |n| n.to_string()),
                size: current.map_or("—".into(), |c| size(c.size)),
                changed: ago(now, s.updated_at),
                writer: current.map_or(String::new(), |c| c.created_by.clone()),
                lock_holder: s.lock.as_ref().map_or(String::new(), |l| l.holder.clone()),
                lock_age: s
                    .lock
                    .as_ref()
                    .map_or(String::new(), |l| ago(now, l.locked_at)),
                stale: s
                    .lock
                    .as_ref()
                    .is_some_and(|l| lock_is_stale(&workspace, l.locked_at, now)),
            }
        })
        .collect();
    let filters = format!(
        "/ui/states?ws={}&prefix={}&locked={}&changed={}&sort={}",
        query_escape(&workspace.name),
        query_escape(q.prefix.trim()),
        query_escape(&q.locked),
        query_escape(&q.changed),
        query_escape(&q.sort)
    );
    let next_page = match states.last() {
        Some(last) if states.len() as i64 == PAGE => {
            let position = if by_change {
                format!("{}:{}", last.updated_at.millis(), last.name)
            } else {
                last.name.clone()
            };
            format!("{filters}&cursor={}", query_escape(&position))
        }
        _ => String::new(),
    };
    let page_data = StatesPage {
        chrome: Chrome::signed_in(
            &viewer,
            format!("States in {}", workspace.name),
            &uri,
            Section::States,
        ),
        workspaces: workspaces
            .iter()
            .map(|(w, role)| Choice {
                value: w.name.clone(),
                label: format!("{} ({role})", w.name),
                selected: w.name == workspace.name,
            })
            .collect(),
        workspace: workspace.name.clone(),
        prefix: q.prefix.trim().to_owned(),
        locked: choices(
            &[("", "any"), ("yes", "locked"), ("no", "unlocked")],
            &q.locked,
        ),
        changed: choices(
            &[
                ("", "any time"),
                ("1h", "last hour"),
                ("24h", "last 24 hours"),
                ("7d", "last 7 days"),
                ("30d", "last 30 days"),
            ],
            &q.changed,
        ),
        sort: choices(
            &[("name", "name"), ("changed", "recently changed")],
            &q.sort,
        ),
        rows,
        next_page,
        first_page: filters,
        paged: q.cursor.is_some(),
        deleted_href: if viewer.can(&workspace.id, statehouse_core::access::Role::Admin) {
            format!("/ui/deleted?ws={}", query_escape(&workspace.name))
        } else {
            String::new()
        },
    };
    page(&page_data)
}
