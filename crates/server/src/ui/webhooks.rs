//! `/ui/workspaces/{ws}/webhooks`: a workspace's outgoing webhooks (workspace admins) and the
//! form that creates one — its signing secret shown once, on the answer. As `GET`/`POST
//! /api/v1/workspaces/{ws}/webhooks`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::events::kind;
use statehouse_core::service::WebhookSpec;
use statehouse_core::webhooks::Webhook;

use super::format::utc;
use super::links::{webhook_page, webhooks_of, workspace_page};
use super::listing::{Pager, select};
use super::page::{Chrome, OrPage, Refusal, Section, UiError, UiForm, Viewer, render};
use super::tokens::SecretPage;
use crate::AppState;
use crate::api::{Order, time_key};

pub struct WebhookRow {
    pub href: String,
    pub url: String,
    pub events: String,
    pub enabled: bool,
    pub description: String,
    pub created: String,
}

impl WebhookRow {
    pub fn of(ws: &str, w: &Webhook) -> WebhookRow {
        WebhookRow {
            href: webhook_page(ws, &w.id),
            url: w.url.clone(),
            events: w.events.join(", "),
            enabled: w.enabled,
            description: w.description.clone(),
            created: utc(w.created_at),
        }
    }
}

/// The event filter as typed: comma- or space-separated kinds, prefixes or `*`.
pub fn events_of(typed: &str) -> Vec<String> {
    typed
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The kinds a filter may name, for the forms' hint.
pub fn known_events() -> String {
    kind::ALL.join(", ")
}

/// The create form as typed.
#[derive(Debug, Deserialize)]
pub struct NewWebhookForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    events: String,
    #[serde(default)]
    description: String,
    enabled: Option<String>,
}

impl Default for NewWebhookForm {
    fn default() -> Self {
        NewWebhookForm {
            url: String::new(),
            events: "*".into(),
            description: String::new(),
            enabled: Some("on".into()),
        }
    }
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    chrome: Chrome,
    access_at: &'static str,
    workspace: String,
    workspace_href: String,
    action: String,
    rows: Vec<WebhookRow>,
    pager: Pager,
    known_events: String,
    form: NewWebhookForm,
    notice: &'static str,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
    done: Option<String>,
}

/// `GET /ui/workspaces/{ws}/webhooks`.
pub async fn list(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path(ws): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    let notice = match q.done.as_deref() {
        Some("deleted") => "The webhook was deleted with its delivery log.",
        _ => "",
    };
    let form = NewWebhookForm::default();
    show(
        &app,
        viewer,
        &uri,
        &ws,
        q.cursor.as_deref(),
        notice,
        None,
        form,
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
    form: NewWebhookForm,
) -> Result<Response, UiError> {
    let hooks = app
        .services
        .list_webhooks(&viewer.who, ws)
        .await
        .or_page(&viewer)?;
    let page = select(hooks, cursor, Order::Ascending, |w| {
        time_key(w.created_at, &w.id)
    })
    .or_page(&viewer)?;
    let (status, error) = match refusal {
        Some(r) => (r.status, r.message),
        None => (StatusCode::OK, String::new()),
    };
    let base = webhooks_of(ws);
    let data = WebhooksPage {
        chrome: Chrome::signed_in(&viewer, format!("Webhooks of {ws}"), uri, Section::Access),
        access_at: "workspaces",
        workspace: ws.to_owned(),
        workspace_href: workspace_page(ws),
        rows: page.items.iter().map(|w| WebhookRow::of(ws, w)).collect(),
        pager: Pager::new(&base, cursor, page.next_cursor.as_deref()),
        action: base,
        known_events: known_events(),
        form,
        notice,
        error,
    };
    Ok(render(status, &data))
}

/// `POST /ui/workspaces/{ws}/webhooks`: creates a webhook; the answer is the only page that
/// shows its signing secret.
pub async fn create(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path(ws): Path<String>,
    UiForm(viewer, form): UiForm<NewWebhookForm>,
) -> Result<Response, UiError> {
    let spec = WebhookSpec {
        url: form.url.clone(),
        events: events_of(&form.events),
        enabled: form.enabled.is_some(),
        description: form.description.clone(),
    };
    let (hook, secret) = match app.services.create_webhook(&viewer.who, &ws, spec).await {
        Ok(made) => made,
        Err(e) => {
            let refusal = Refusal::of(e, &viewer)?;
            return show(&app, viewer, &uri, &ws, None, "", Some(refusal), form).await;
        }
    };
    tracing::info!(
        workspace = ws,
        webhook = hook.id,
        by = viewer.who.actor(),
        "webhook created (UI)"
    );
    let data = SecretPage {
        chrome: Chrome::signed_in(&viewer, "Webhook created", &uri, Section::Access),
        heading: "Webhook created".into(),
        facts: vec![
            ("URL".into(), hook.url.clone()),
            ("Events".into(), hook.events.join(", ")),
            (
                "Enabled".into(),
                if hook.enabled { "yes" } else { "no" }.into(),
            ),
        ],
        secret: secret.expose().to_owned(),
        usage: "The receiver verifies the X-Statehouse-Signature-256 header of each request with \
                this signing secret.",
        back: webhook_page(&ws, &hook.id),
        kept: super::tokens::KEPT_SEALED,
        back_label: "On to the webhook",
    };
    Ok(render(StatusCode::CREATED, &data))
}
