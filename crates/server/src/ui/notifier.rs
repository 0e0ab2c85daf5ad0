//! `/ui/workspaces/{ws}/notifiers/{name}`: one notifier — its public settings, which secrets are
//! set, the events it receives and the databases it is about — and, for workspace admins,
//! "Send test" (the receiver's answer on the page), the change form (a secret left empty is
//! kept; moving where secrets go needs them again, as the service says) and deletion after a
//! confirmation. As `/api/v1/workspaces/{ws}/notifiers/{name}…`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::access::Role;

use super::config_form::{
    DeletePage, Fact, FieldView, Posted, Shown, Tested, facts, fields, kind_named, settings_of,
};
use super::links::{notifier_page, notifiers_of};
use super::notifier_kinds::NOTIFIER_KINDS;
use super::notifiers::{NotifierRow, database_choices, input_of};
use super::page::{
    Chrome, NoFields, OrPage, Refusal, Section, UiError, UiForm, Viewer, page, render, see_other,
};
use super::states::Choice;
use super::webhooks::known_events;
use crate::AppState;

#[derive(Template)]
#[template(path = "notifier.html")]
struct NotifierPage {
    chrome: Chrome,
    workspace: String,
    list_href: String,
    notifier: NotifierRow,
    kind_label: &'static str,
    facts: Vec<Fact>,
    created: String,
    updated: String,
    can_manage: bool,
    base: String,
    /// The change form as shown.
    new_name: String,
    fields: Vec<FieldView>,
    events: String,
    known_events: String,
    databases: Vec<Choice>,
    enabled: bool,
    tested: Option<Tested>,
    notice: &'static str,
    error: String,
}

/// What the page shows besides the notifier.
#[derive(Default)]
struct Extras<'a> {
    notice: &'static str,
    tested: Option<Tested>,
    refusal: Option<Refusal>,
    typed: Option<&'a Posted>,
}

#[derive(Debug, Default, Deserialize)]
pub struct NotifierQuery {
    done: Option<String>,
}

/// `GET /ui/workspaces/{ws}/notifiers/{name}`.
pub async fn show(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path((ws, name)): Path<(String, String)>,
    Query(q): Query<NotifierQuery>,
) -> Result<Response, UiError> {
    let notice = match q.done.as_deref() {
        Some("created") => "The notifier was added. Try it with \"Send test\".",
        Some("saved") => "The notifier was saved.",
        _ => "",
    };
    let extras = Extras {
        notice,
        ..Extras::default()
    };
    render_page(&app, viewer, &uri, (&ws, &name), extras).await
}

async fn render_page(
    app: &AppState,
    viewer: Viewer,
    uri: &Uri,
    (ws, key): (&str, &str),
    extras: Extras<'_>,
) -> Result<Response, UiError> {
    let n = app
        .backups
        .notifier(&viewer.who, ws, key)
        .await
        .or_page(&viewer)?;
    let (_, role) = app
        .services
        .workspace_for(&viewer.who, ws)
        .await
        .or_page(&viewer)?;
    let chosen = extras
        .typed
        .map_or_else(|| n.databases.clone(), |t| t.all("databases"));
    let databases = database_choices(app, &viewer, ws, &chosen).await?;
    let kind = kind_named(NOTIFIER_KINDS, &n.kind);
    let (status, error) = match extras.refusal {
        Some(r) => (r.status, r.message),
        None => (StatusCode::OK, String::new()),
    };
    let shown = Shown {
        stored: Some((&n.settings, &n.secrets_set)),
        typed: extras.typed,
    };
    let data = NotifierPage {
        chrome: Chrome::signed_in(
            &viewer,
            format!("Notifier {}", n.name),
            uri,
            Section::Backups,
        ),
        workspace: ws.to_owned(),
        list_href: notifiers_of(ws),
        notifier: NotifierRow::of(ws, &n),
        kind_label: kind.map_or("", |k| k.label),
        facts: facts(kind, &n.settings, &n.secrets_set),
        created: n.created_at.clone(),
        updated: n.updated_at.clone(),
        can_manage: role >= Role::Admin,
        base: notifier_page(ws, &n.name),
        new_name: extras
            .typed
            .map_or_else(|| n.name.clone(), |t| t.get("name").to_owned()),
        fields: kind.map_or_else(Vec::new, |k| fields(k, &shown)),
        events: extras
            .typed
            .map_or_else(|| n.events.join(", "), |t| t.get("events").to_owned()),
        known_events: known_events(),
        databases,
        enabled: extras.typed.map_or(n.enabled, |t| t.has("enabled")),
        tested: extras.tested,
        notice: extras.notice,
        error,
    };
    Ok(render(status, &data))
}

/// `POST /ui/workspaces/{ws}/notifiers/{name}`: saves the change form, as `PATCH
/// …/notifiers/{name}` with the full settings (secrets left empty are kept).
pub async fn change(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path((ws, key)): Path<(String, String)>,
    UiForm(viewer, posted): UiForm<Posted>,
) -> Result<Response, UiError> {
    let current = app
        .backups
        .notifier(&viewer.who, &ws, &key)
        .await
        .or_page(&viewer)?;
    let new_name = posted.get("name").trim();
    // The service renames when the name is not empty.
    let rename = if new_name == current.name {
        String::new()
    } else {
        new_name.to_owned()
    };
    let settings = match kind_named(NOTIFIER_KINDS, &current.kind) {
        Some(kind) => settings_of(kind, &posted, &current.secrets_set).map(Some),
        None => Ok(None),
    };
    let saved = match settings {
        Ok(settings) => {
            let input = input_of(&posted, rename, settings);
            app.backups
                .update_notifier(&viewer.who, &ws, &key, input)
                .await
        }
        Err(e) => Err(e),
    };
    match saved {
        Ok(n) => see_other(&format!("{}?done=saved", notifier_page(&ws, &n.name))),
        Err(e) => {
            let refusal = Refusal::of(e, &viewer)?;
            let extras = Extras {
                refusal: Some(refusal),
                typed: Some(&posted),
                ..Extras::default()
            };
            render_page(&app, viewer, &uri, (&ws, &key), extras).await
        }
    }
}

/// `POST /ui/workspaces/{ws}/notifiers/{name}/test`: sends a test notification now (workspace
/// admins), as `POST …/test`; the receiver's answer is shown on the notifier's page.
pub async fn test(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path((ws, key)): Path<(String, String)>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    let outcome = app
        .backups
        .test_notifier(&viewer.who, &ws, &key)
        .await
        .or_page(&viewer)?;
    let extras = Extras {
        tested: Some(Tested::of(
            &outcome,
            "the receiver accepted a test notification",
        )),
        ..Extras::default()
    };
    render_page(&app, viewer, &uri, (&ws, &key), extras).await
}

/// `GET /ui/workspaces/{ws}/notifiers/{name}/delete`: what will be deleted, and the button
/// (workspace admins).
pub async fn confirm_delete(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path((ws, key)): Path<(String, String)>,
) -> Result<Response, UiError> {
    app.backups
        .require_admin(&viewer.who, &ws, "deleting a notifier")
        .await
        .or_page(&viewer)?;
    let n = app
        .backups
        .notifier(&viewer.who, &ws, &key)
        .await
        .or_page(&viewer)?;
    let mut shown = facts(
        kind_named(NOTIFIER_KINDS, &n.kind),
        &n.settings,
        &n.secrets_set,
    );
    shown.push(Fact {
        label: "Events".into(),
        value: n.events.join(", "),
    });
    let base = notifier_page(&ws, &n.name);
    page(&DeletePage {
        chrome: Chrome::signed_in(&viewer, "Delete a notifier", &uri, Section::Backups),
        what: "notifier",
        facts: shown,
        name: n.name,
        workspace: ws,
        warning: "Its events are no longer sent anywhere by it. To pause it instead, untick \
                  \"Enabled\" and save."
            .to_owned(),
        action: format!("{base}/delete"),
        back: base,
    })
}

/// `POST /ui/workspaces/{ws}/notifiers/{name}/delete`: as `DELETE …/notifiers/{name}`.
pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path((ws, key)): Path<(String, String)>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    app.backups
        .delete_notifier(&viewer.who, &ws, &key)
        .await
        .or_page(&viewer)?;
    see_other(&format!("{}?done=deleted", notifiers_of(&ws)))
}
