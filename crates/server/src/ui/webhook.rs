//! `/ui/workspaces/{ws}/webhooks/{id}`: one webhook (workspace admins) — its settings, changed
//! in a form (a new signing secret on request, shown once), its delivery log a page at a
//! time, newest first, with redelivery, a ping to test the receiver, and deletion after a
//! confirmation. As `/api/v1/workspaces/{ws}/webhooks/{id}…`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::clock::Timestamp;
use statehouse_core::service::WebhookChange;
use statehouse_core::webhooks::Delivery;

use super::format::{ago, utc};
use super::links::{query_escape, webhook_page, webhooks_of};
use super::listing::ROWS;
use super::page::{
    Chrome, OrPage, Refusal, Section, UiError, UiForm, Viewer, page, render, see_other,
};
use super::tokens::SecretPage;
use super::webhooks::{WebhookRow, events_of, known_events};
use crate::AppState;

pub struct DeliveryRow {
    pub id: String,
    pub event: String,
    pub created: String,
    pub created_ago: String,
    pub status: &'static str,
    pub attempts: i64,
    pub code: String,
    pub error: String,
    pub delivered: String,
    pub redelivery: bool,
    pub redeliver: String,
}

impl DeliveryRow {
    fn of(d: &Delivery, base: &str, now: Timestamp) -> DeliveryRow {
        DeliveryRow {
            id: d.id.clone(),
            event: d.kind.clone(),
            created: utc(d.created_at),
            created_ago: ago(now, d.created_at),
            status: d.status.as_str(),
            attempts: d.attempts,
            code: d.last_status_code.map_or(String::new(), |c| c.to_string()),
            error: d.last_error.clone().unwrap_or_default(),
            delivered: d.delivered_at.map_or(String::new(), utc),
            redelivery: d.redelivery_of.is_some(),
            redeliver: format!("{base}/deliveries/{}/redeliver", query_escape(&d.id)),
        }
    }
}

/// The change form as typed.
#[derive(Debug, Default, Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    events: String,
    #[serde(default)]
    description: String,
    enabled: Option<String>,
    rotate_secret: Option<String>,
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct WebhookPage {
    chrome: Chrome,
    access_at: &'static str,
    workspace: String,
    list_href: String,
    hook: WebhookRow,
    form: ChangeForm,
    known_events: String,
    base: String,
    deliveries: Vec<DeliveryRow>,
    older: String,
    newest: String,
    notice: &'static str,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct WebhookQuery {
    /// Deliveries created before this time (milliseconds), as the API's cursor.
    before: Option<i64>,
    done: Option<String>,
}

/// `GET /ui/workspaces/{ws}/webhooks/{id}`.
pub async fn show(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path((ws, id)): Path<(String, String)>,
    Query(q): Query<WebhookQuery>,
) -> Result<Response, UiError> {
    let notice = match q.done.as_deref() {
        Some("saved") => "The webhook was saved.",
        Some("pinged") => "A ping was queued: it appears in the delivery log below.",
        Some("redelivered") => "The delivery was queued again, as a new delivery.",
        _ => "",
    };
    render_page(&app, viewer, &uri, (&ws, &id), q.before, notice, None, None).await
}

#[allow(clippy::too_many_arguments)]
async fn render_page(
    app: &AppState,
    viewer: Viewer,
    uri: &Uri,
    (ws, id): (&str, &str),
    before: Option<i64>,
    notice: &'static str,
    refusal: Option<Refusal>,
    typed: Option<ChangeForm>,
) -> Result<Response, UiError> {
    let services = &app.services;
    let hook = services
        .webhook(&viewer.who, ws, id)
        .await
        .or_page(&viewer)?;
    let found = services
        .webhook_deliveries(&viewer.who, ws, id, before.map(Timestamp), ROWS)
        .await
        .or_page(&viewer)?;
    let base = webhook_page(ws, &hook.id);
    let now = services.now();
    // A full page may have more behind it: the API's cursor is the last delivery's time.
    let older = match found.last() {
        Some(last) if found.len() as i64 >= ROWS => {
            format!("{base}?before={}#deliveries", last.created_at.millis())
        }
        _ => String::new(),
    };
    let form = typed.unwrap_or_else(|| ChangeForm {
        url: hook.url.clone(),
        events: hook.events.join(", "),
        description: hook.description.clone(),
        enabled: hook.enabled.then(|| "on".into()),
        rotate_secret: None,
    });
    let (status, error) = match refusal {
        Some(r) => (r.status, r.message),
        None => (StatusCode::OK, String::new()),
    };
    let data = WebhookPage {
        chrome: Chrome::signed_in(&viewer, "Webhook", uri, Section::Access),
        access_at: "workspaces",
        workspace: ws.to_owned(),
        list_href: webhooks_of(ws),
        hook: WebhookRow::of(ws, &hook),
        form,
        known_events: known_events(),
        deliveries: found
            .iter()
            .map(|d| DeliveryRow::of(d, &base, now))
            .collect(),
        older,
        newest: if before.is_some() {
            format!("{base}#deliveries")
        } else {
            String::new()
        },
        base,
        notice,
        error,
    };
    Ok(render(status, &data))
}

/// `POST /ui/workspaces/{ws}/webhooks/{id}`: saves what the form changed (and rotates the
/// secret when asked, showing the new one once), as `PATCH …/webhooks/{id}`.
pub async fn change(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path((ws, id)): Path<(String, String)>,
    UiForm(viewer, form): UiForm<ChangeForm>,
) -> Result<Response, UiError> {
    let services = &app.services;
    let current = services
        .webhook(&viewer.who, &ws, &id)
        .await
        .or_page(&viewer)?;
    // Only what differs is sent, so the audit log says what really changed.
    let events = events_of(&form.events);
    let enabled = form.enabled.is_some();
    let change = WebhookChange {
        url: (form.url.trim() != current.url).then(|| form.url.clone()),
        events: (events != current.events).then_some(events),
        enabled: (enabled != current.enabled).then_some(enabled),
        description: (form.description.trim() != current.description)
            .then(|| form.description.clone()),
        rotate_secret: form.rotate_secret.is_some(),
    };
    match services.update_webhook(&viewer.who, &ws, &id, change).await {
        Ok((hook, Some(secret))) => {
            let data = SecretPage {
                chrome: Chrome::signed_in(&viewer, "New signing secret", &uri, Section::Access),
                heading: "The webhook has a new signing secret".into(),
                facts: vec![("URL".into(), hook.url.clone())],
                secret: secret.expose().to_owned(),
                usage: "Give it to the receiver: requests are signed with it from now on.",
                back: webhook_page(&ws, &hook.id),
                kept: super::tokens::KEPT_SEALED,
                back_label: "Back to the webhook",
            };
            Ok(render(StatusCode::OK, &data))
        }
        Ok((hook, None)) => see_other(&format!("{}?done=saved", webhook_page(&ws, &hook.id))),
        Err(e) => {
            let refusal = Refusal::of(e, &viewer)?;
            render_page(
                &app,
                viewer,
                &uri,
                (&ws, &id),
                None,
                "",
                Some(refusal),
                Some(form),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct NoFields {}

/// `POST /ui/workspaces/{ws}/webhooks/{id}/ping`: queues a `ping` to this webhook.
pub async fn ping(
    State(app): State<Arc<AppState>>,
    Path((ws, id)): Path<(String, String)>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    app.services
        .ping_webhook(&viewer.who, &ws, &id)
        .await
        .or_page(&viewer)?;
    see_other(&format!(
        "{}?done=pinged#deliveries",
        webhook_page(&ws, &id)
    ))
}

/// `POST /ui/workspaces/{ws}/webhooks/{id}/deliveries/{delivery}/redeliver`.
pub async fn redeliver(
    State(app): State<Arc<AppState>>,
    Path((ws, id, delivery)): Path<(String, String, String)>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    app.services
        .redeliver(&viewer.who, &ws, &id, &delivery)
        .await
        .or_page(&viewer)?;
    see_other(&format!(
        "{}?done=redelivered#deliveries",
        webhook_page(&ws, &id)
    ))
}

#[derive(Template)]
#[template(path = "webhook_delete.html")]
struct DeletePage {
    chrome: Chrome,
    workspace: String,
    hook: WebhookRow,
    action: String,
}

/// `GET /ui/workspaces/{ws}/webhooks/{id}/delete`: what will be deleted, and the button.
pub async fn confirm_delete(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let hook = app
        .services
        .webhook(&viewer.who, &ws, &id)
        .await
        .or_page(&viewer)?;
    let row = WebhookRow::of(&ws, &hook);
    page(&DeletePage {
        chrome: Chrome::signed_in(&viewer, "Delete a webhook", &uri, Section::Access),
        workspace: ws.clone(),
        action: format!("{}/delete", row.href),
        hook: row,
    })
}

/// `POST /ui/workspaces/{ws}/webhooks/{id}/delete`: as `DELETE …/webhooks/{id}`.
pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path((ws, id)): Path<(String, String)>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    app.services
        .delete_webhook(&viewer.who, &ws, &id)
        .await
        .or_page(&viewer)?;
    see_other(&format!("{}?done=deleted", webhooks_of(&ws)))
}
