//! `/ui/workspaces/{ws}/notifiers`: where a workspace's backup, verification and database
//! events are sent — each notifier's kind, public settings, events and databases — and, for its
//! admins, the form that adds one: a form per kind (`?kind=` picks it), the events it receives
//! and the databases it is about. As `GET`/`POST /api/v1/workspaces/{ws}/notifiers`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_backup::service::{NotifierInput, NotifierView};
use statehouse_core::Error;
use statehouse_core::access::Role;

use super::config_form::{
    FieldView, Kind, Posted, Shown, fields, kind_choices, kind_named, settings_of, summary,
};
use super::links::{notifier_page, notifiers_of};
use super::notifier_kinds::NOTIFIER_KINDS;
use super::page::{Chrome, OrPage, Refusal, Section, UiError, UiForm, Viewer, render, see_other};
use super::states::Choice;
use super::webhooks::{events_of, known_events};
use crate::AppState;

/// The events a new notifier receives unless told otherwise (the service's default).
pub const DEFAULT_EVENTS: &str = "backup.failed, verification.failed, database.*";

pub struct NotifierRow {
    pub name: String,
    pub href: String,
    pub kind: String,
    pub summary: String,
    pub events: String,
    /// Empty: every database.
    pub databases: String,
    pub enabled: bool,
}

impl NotifierRow {
    pub fn of(ws: &str, n: &NotifierView) -> NotifierRow {
        NotifierRow {
            name: n.name.clone(),
            href: notifier_page(ws, &n.name),
            kind: n.kind.clone(),
            summary: summary(kind_named(NOTIFIER_KINDS, &n.kind), &n.settings),
            events: n.events.join(", "),
            databases: n.databases.join(", "),
            enabled: n.enabled,
        }
    }
}

/// The workspace's databases as checkboxes, those in `chosen` ticked.
pub async fn database_choices(
    app: &AppState,
    viewer: &Viewer,
    ws: &str,
    chosen: &[String],
) -> Result<Vec<Choice>, UiError> {
    let databases = app
        .backups
        .list_databases(&viewer.who, ws)
        .await
        .or_page(viewer)?;
    Ok(databases
        .into_iter()
        .map(|d| Choice {
            selected: chosen.contains(&d.name),
            label: d.name.clone(),
            value: d.name,
        })
        .collect())
}

/// What the notifier form says besides its settings: events (empty: the default), databases
/// (none ticked: all) and whether it is enabled.
pub fn input_of(
    posted: &Posted,
    name: String,
    settings: Option<serde_json::Value>,
) -> NotifierInput {
    let events = events_of(posted.get("events"));
    NotifierInput {
        name,
        settings,
        events: (!events.is_empty()).then_some(events),
        databases: Some(posted.all("databases")),
        enabled: Some(posted.has("enabled")),
    }
}

#[derive(Template)]
#[template(path = "notifiers.html")]
struct NotifiersPage {
    chrome: Chrome,
    workspace: String,
    rows: Vec<NotifierRow>,
    can_manage: bool,
    action: String,
    kinds: Vec<Choice>,
    kind: &'static Kind,
    fields: Vec<FieldView>,
    name: String,
    events: String,
    known_events: String,
    databases: Vec<Choice>,
    enabled: bool,
    notice: &'static str,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    kind: Option<String>,
    done: Option<String>,
}

/// What the add form shows besides the list.
struct Draft<'a> {
    kind: &'a str,
    notice: &'static str,
    refusal: Option<Refusal>,
    typed: Option<&'a Posted>,
}

/// `GET /ui/workspaces/{ws}/notifiers`.
pub async fn list(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path(ws): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    let notice = match q.done.as_deref() {
        Some("deleted") => "The notifier was deleted.",
        _ => "",
    };
    let draft = Draft {
        kind: q.kind.as_deref().unwrap_or("email"),
        notice,
        refusal: None,
        typed: None,
    };
    show(&app, viewer, &uri, &ws, draft).await
}

async fn show(
    app: &AppState,
    viewer: Viewer,
    uri: &Uri,
    ws: &str,
    draft: Draft<'_>,
) -> Result<Response, UiError> {
    let notifiers = app
        .backups
        .list_notifiers(&viewer.who, ws)
        .await
        .or_page(&viewer)?;
    let (_, role) = app
        .services
        .workspace_for(&viewer.who, ws)
        .await
        .or_page(&viewer)?;
    let chosen = draft.typed.map_or_else(Vec::new, |t| t.all("databases"));
    let databases = database_choices(app, &viewer, ws, &chosen).await?;
    let kind = kind_named(NOTIFIER_KINDS, draft.kind).unwrap_or(&NOTIFIER_KINDS[0]);
    let (status, error) = match draft.refusal {
        Some(r) => (r.status, r.message),
        None => (StatusCode::OK, String::new()),
    };
    let data = NotifiersPage {
        chrome: Chrome::signed_in(&viewer, format!("Notifiers of {ws}"), uri, Section::Backups),
        workspace: ws.to_owned(),
        rows: notifiers.iter().map(|n| NotifierRow::of(ws, n)).collect(),
        can_manage: role >= Role::Admin,
        action: notifiers_of(ws),
        kinds: kind_choices(NOTIFIER_KINDS, kind.name),
        kind,
        fields: fields(
            kind,
            &Shown {
                stored: None,
                typed: draft.typed,
            },
        ),
        name: draft
            .typed
            .map_or_else(String::new, |t| t.get("name").to_owned()),
        events: draft
            .typed
            .map_or_else(|| DEFAULT_EVENTS.to_owned(), |t| t.get("events").to_owned()),
        known_events: known_events(),
        databases,
        enabled: draft.typed.is_none_or(|t| t.has("enabled")),
        notice: draft.notice,
        error,
    };
    Ok(render(status, &data))
}

/// `POST /ui/workspaces/{ws}/notifiers`: adds a notifier (workspace admins), as `POST
/// …/notifiers`; "Send test" on its page tries it.
pub async fn create(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path(ws): Path<String>,
    UiForm(viewer, posted): UiForm<Posted>,
) -> Result<Response, UiError> {
    let kind_name = posted.get("kind").to_owned();
    let made = match kind_named(NOTIFIER_KINDS, &kind_name) {
        Some(kind) => match settings_of(kind, &posted, &[]) {
            Ok(settings) => {
                let name = posted.get("name").trim().to_owned();
                let input = input_of(&posted, name, Some(settings));
                app.backups.create_notifier(&viewer.who, &ws, input).await
            }
            Err(e) => Err(e),
        },
        None => Err(Error::BadRequest(format!(
            "unknown kind of notifier {kind_name:?}"
        ))),
    };
    match made {
        Ok(notifier) => {
            tracing::info!(
                workspace = ws,
                notifier = notifier.name,
                by = viewer.who.actor(),
                "notifier added (UI)"
            );
            see_other(&format!(
                "{}?done=created",
                notifier_page(&ws, &notifier.name)
            ))
        }
        Err(e) => {
            let refusal = Refusal::of(e, &viewer)?;
            let draft = Draft {
                kind: &kind_name,
                notice: "",
                refusal: Some(refusal),
                typed: Some(&posted),
            };
            show(&app, viewer, &uri, &ws, draft).await
        }
    }
}
