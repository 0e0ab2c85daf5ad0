//! `/api/v1/workspaces/{ws}/webhooks`: outgoing webhooks of a workspace (workspace admins),
//! their delivery log, redelivery and ping.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use statehouse_core::clock::Timestamp;
use statehouse_core::service::{WebhookChange, WebhookSpec};
use statehouse_core::webhooks::{Delivery, DeliveryAttempt, Webhook};
use utoipa::ToSchema;

use super::extract::{Order, checked_limit, time_key};
use super::{ApiError, ApiJson, ApiQuery, Caller, Page, PageParams};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    /// Event kinds, prefixes such as `lock.*`, or `*`.
    pub events: Vec<String>,
    pub enabled: bool,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Webhook> for WebhookView {
    fn from(w: &Webhook) -> Self {
        WebhookView {
            id: w.id.clone(),
            url: w.url.clone(),
            events: w.events.clone(),
            enabled: w.enabled,
            description: w.description.clone(),
            created_at: w.created_at.to_rfc3339(),
            updated_at: w.updated_at.to_rfc3339(),
        }
    }
}

/// A webhook with its signing secret, which is shown only here (creation, rotation).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    pub webhook: WebhookView,
    /// Verify `X-Statehouse-Signature-256` with it (see the README); `null` when unchanged.
    pub secret: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `http://` or `https://` URL that receives the POSTs.
    pub url: String,
    /// Event kinds (`state.written`), prefixes (`lock.*`) or `*`.
    pub events: Vec<String>,
    /// Default true.
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
    /// Generate a new signing secret (returned once in the answer).
    #[serde(default)]
    pub rotate_secret: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub webhook_id: String,
    /// `seq` of the event; null for pings.
    pub event_seq: Option<i64>,
    pub event: String,
    pub created_at: String,
    /// `pending`, `delivered` or `failed` (gave up after every attempt).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
    /// Set on a redelivery: the delivery it repeats.
    pub redelivery_of: Option<String>,
    #[serde(skip)]
    created_ms: i64,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        DeliveryView {
            id: d.id.clone(),
            webhook_id: d.webhook_id.clone(),
            event_seq: d.event_seq,
            event: d.kind.clone(),
            created_at: d.created_at.to_rfc3339(),
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.map(Timestamp::to_rfc3339),
            last_status_code: d.last_status_code,
            last_error: d.last_error.clone(),
            delivered_at: d.delivered_at.map(Timestamp::to_rfc3339),
            redelivery_of: d.redelivery_of.clone(),
            created_ms: d.created_at.millis(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i64,
    pub time: String,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl From<&DeliveryAttempt> for AttemptView {
    fn from(a: &DeliveryAttempt) -> Self {
        AttemptView {
            attempt: a.attempt,
            time: a.at.to_rfc3339(),
            status_code: a.status_code,
            error: a.error.clone(),
            duration_ms: a.duration_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    pub delivery: DeliveryView,
    pub attempts: Vec<AttemptView>,
    /// The JSON body as sent.
    pub body: String,
}

/// The workspace's webhooks (workspace admins).
#[utoipa::path(get, path = "/workspaces/{ws}/webhooks", tag = "webhooks",
    operation_id = "list_webhooks",
    params(("ws" = String, Path, description = "workspace name"), PageParams),
    responses((status = 200, body = Page<WebhookView>)))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<WebhookView>>, ApiError> {
    let hooks = app.services.list_webhooks(&who, &ws).await?;
    let page = Page::select(hooks, &page, Order::Ascending, |w| {
        time_key(w.created_at, &w.id)
    })?;
    Ok(Json(Page {
        items: page.items.iter().map(WebhookView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Creates a webhook; the answer carries its signing secret, shown this once.
#[utoipa::path(post, path = "/workspaces/{ws}/webhooks", tag = "webhooks", operation_id = "create_webhook", request_body = NewWebhook,
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 201, body = WebhookWithSecret)))]
pub async fn create(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<WebhookWithSecret>), ApiError> {
    let spec = WebhookSpec {
        url: body.url,
        events: body.events,
        enabled: body.enabled.unwrap_or(true),
        description: body.description.unwrap_or_default(),
    };
    let (hook, secret) = app.services.create_webhook(&who, &ws, spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecret {
            webhook: WebhookView::from(&hook),
            secret: Some(secret.expose().to_owned()),
        }),
    ))
}

/// One webhook (never its secret).
#[utoipa::path(get, path = "/workspaces/{ws}/webhooks/{id}", tag = "webhooks", operation_id = "show_webhook",
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "webhook id")),
    responses((status = 200, body = WebhookView)))]
pub async fn show(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(WebhookView::from(
        &app.services.webhook(&who, &ws, &id).await?,
    )))
}

/// Changes a webhook; `rotate_secret: true` returns a new secret once.
#[utoipa::path(patch, path = "/workspaces/{ws}/webhooks/{id}", tag = "webhooks", operation_id = "change_webhook",
    request_body = WebhookPatch,
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "webhook id")),
    responses((status = 200, body = WebhookWithSecret)))]
pub async fn change(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id)): Path<(String, String)>,
    ApiJson(patch): ApiJson<WebhookPatch>,
) -> Result<Json<WebhookWithSecret>, ApiError> {
    let change = WebhookChange {
        url: patch.url,
        events: patch.events,
        enabled: patch.enabled,
        description: patch.description,
        rotate_secret: patch.rotate_secret,
    };
    let (hook, secret) = app.services.update_webhook(&who, &ws, &id, change).await?;
    Ok(Json(WebhookWithSecret {
        webhook: WebhookView::from(&hook),
        secret: secret.map(|s| s.expose().to_owned()),
    }))
}

/// Deletes a webhook and its delivery log.
#[utoipa::path(delete, path = "/workspaces/{ws}/webhooks/{id}", tag = "webhooks", operation_id = "delete_webhook",
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "webhook id")),
    responses((status = 204)))]
pub async fn delete(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.services.delete_webhook(&who, &ws, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The webhook's deliveries, newest first.
#[utoipa::path(get, path = "/workspaces/{ws}/webhooks/{id}/deliveries", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "webhook id"), PageParams),
    responses((status = 200, body = Page<DeliveryView>)))]
pub async fn deliveries(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id)): Path<(String, String)>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<DeliveryView>>, ApiError> {
    let before = page.numeric_position()?.map(Timestamp);
    let limit = checked_limit(page.limit)?;
    let found = app
        .services
        .webhook_deliveries(&who, &ws, &id, before, limit)
        .await?;
    let views = found.iter().map(DeliveryView::from).collect();
    Ok(Json(Page::of(views, limit, |d: &DeliveryView| {
        d.created_ms.to_string()
    })))
}

/// One delivery with every attempt and the body sent.
#[utoipa::path(get, path = "/workspaces/{ws}/webhooks/{id}/deliveries/{delivery}", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "webhook id"),
        ("delivery" = String, Path, description = "delivery id")),
    responses((status = 200, body = DeliveryDetail)))]
pub async fn delivery(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id, delivery)): Path<(String, String, String)>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    let (d, attempts) = app
        .services
        .webhook_delivery(&who, &ws, &id, &delivery)
        .await?;
    Ok(Json(DeliveryDetail {
        delivery: DeliveryView::from(&d),
        attempts: attempts.iter().map(AttemptView::from).collect(),
        body: d.body,
    }))
}

/// Sends a delivery again (a new delivery with the same body, due at once).
#[utoipa::path(post, path = "/workspaces/{ws}/webhooks/{id}/deliveries/{delivery}/redeliver",
    tag = "webhooks",
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "webhook id"),
        ("delivery" = String, Path, description = "delivery id")),
    responses((status = 202, body = DeliveryView)))]
pub async fn redeliver(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id, delivery)): Path<(String, String, String)>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let d = app.services.redeliver(&who, &ws, &id, &delivery).await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(&d))))
}

/// Queues a `ping` event to this webhook only, to test the receiver.
#[utoipa::path(post, path = "/workspaces/{ws}/webhooks/{id}/ping", tag = "webhooks",
    params(("ws" = String, Path, description = "workspace name"),
        ("id" = String, Path, description = "webhook id")),
    responses((status = 202, body = DeliveryView)))]
pub async fn ping(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let d = app.services.ping_webhook(&who, &ws, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(&d))))
}
