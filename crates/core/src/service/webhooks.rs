//! Services of outgoing webhooks: management by workspace admins, and the delivery worker.

use serde_json::json;

use super::{Services, new_id};
use crate::access::{Principal, Role};
use crate::audit::AuditRecord;
use crate::events::{self, kind};
use crate::model::Workspace;
use crate::webhooks::{
    AttemptResult, DELIVERY_TIMEOUT, Delivery, DeliveryAttempt, DeliveryStatus, HEADER_DELIVERY,
    HEADER_EVENT, HEADER_SIGNATURE, HEADER_TIMESTAMP, LEASE_MILLIS, OutgoingRequest, Webhook,
    WebhookSecret, WebhookTransport, next_attempt_after, secret_binding, signature, validate_url,
};
use crate::{Error, Result};

/// Longest webhook description.
const MAX_DESCRIPTION: usize = 500;

/// What a webhook is created with.
#[derive(Debug, Clone)]
pub struct WebhookSpec {
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub description: String,
}

/// Changes to a webhook; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
    /// Generate a new signing secret (returned once).
    pub rotate_secret: bool,
}

fn check_description(text: &str) -> Result<String> {
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION || text.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!(
            "webhook description must be at most {MAX_DESCRIPTION} printable characters"
        )));
    }
    Ok(text.to_owned())
}

/// How long [`Services::webhooks_enabled`] trusts what it read.
pub(crate) const WEBHOOKS_ENABLED_MILLIS: i64 = 1_000;
/// The one key of that cache.
const ANY_ENABLED: &str = "any";

impl Services {
    async fn webhook_admin(&self, who: &Principal, ws: &str) -> Result<Workspace> {
        Ok(self
            .authorize(who, ws, Role::Admin, "managing webhooks")
            .await?
            .0)
    }

    async fn find_webhook(&self, workspace: &Workspace, id: &str) -> Result<Webhook> {
        self.store.webhook(&workspace.id, id).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "no webhook {id:?} in workspace {:?}",
                workspace.name
            ))
        })
    }

    fn seal_secret(
        &self,
        workspace_id: &str,
        webhook_id: &str,
    ) -> Result<(WebhookSecret, crate::crypto::SealedBody)> {
        let secret = WebhookSecret::generate();
        let sealed = self.cipher.seal(
            secret.expose().as_bytes(),
            secret_binding(workspace_id, webhook_id),
        )?;
        Ok((secret, sealed))
    }

    /// Creates a webhook (workspace admin); its signing secret is returned once.
    pub async fn create_webhook(
        &self,
        who: &Principal,
        ws: &str,
        spec: WebhookSpec,
    ) -> Result<(Webhook, WebhookSecret)> {
        let record = AuditRecord::by(who, "webhook.create", self.now())
            .workspace(ws)
            .detail(json!({"url": spec.url, "events": spec.events, "enabled": spec.enabled}));
        let result = async {
            let workspace = self.webhook_admin(who, ws).await?;
            let id = new_id();
            let (secret, sealed) = self.seal_secret(&workspace.id, &id)?;
            let now = self.now();
            let webhook = Webhook {
                id,
                workspace_id: workspace.id,
                url: validate_url(&spec.url)?,
                events: events::parse_filter(&spec.events)?,
                enabled: spec.enabled,
                description: check_description(&spec.description)?,
                created_at: now,
                updated_at: now,
                secret: sealed,
            };
            self.store.create_webhook(&webhook).await?;
            self.webhooks_enabled.forget(ANY_ENABLED);
            Ok((webhook, secret))
        }
        .await;
        self.conclude(result, record, |(w, _), r| (r.target(w.id.clone()), None))
            .await
    }

    pub async fn list_webhooks(&self, who: &Principal, ws: &str) -> Result<Vec<Webhook>> {
        let workspace = self.webhook_admin(who, ws).await?;
        self.store.list_webhooks(&workspace.id).await
    }

    pub async fn webhook(&self, who: &Principal, ws: &str, id: &str) -> Result<Webhook> {
        let workspace = self.webhook_admin(who, ws).await?;
        self.find_webhook(&workspace, id).await
    }

    /// Changes a webhook (workspace admin); a rotated secret is returned once.
    pub async fn update_webhook(
        &self,
        who: &Principal,
        ws: &str,
        id: &str,
        change: WebhookChange,
    ) -> Result<(Webhook, Option<WebhookSecret>)> {
        let record = AuditRecord::by(who, "webhook.update", self.now())
            .workspace(ws)
            .target(id)
            .detail(json!({
                "url": change.url,
                "events": change.events,
                "enabled": change.enabled,
                "rotate_secret": change.rotate_secret,
            }));
        let result = async {
            let workspace = self.webhook_admin(who, ws).await?;
            let mut webhook = self.find_webhook(&workspace, id).await?;
            if let Some(url) = &change.url {
                webhook.url = validate_url(url)?;
            }
            if let Some(filter) = &change.events {
                webhook.events = events::parse_filter(filter)?;
            }
            if let Some(enabled) = change.enabled {
                webhook.enabled = enabled;
            }
            if let Some(description) = &change.description {
                webhook.description = check_description(description)?;
            }
            let secret = if change.rotate_secret {
                let (secret, sealed) = self.seal_secret(&workspace.id, &webhook.id)?;
                webhook.secret = sealed;
                Some(secret)
            } else {
                None
            };
            webhook.updated_at = self.now();
            let updated = self.store.update_webhook(&webhook).await?;
            self.webhooks_enabled.forget(ANY_ENABLED);
            if !updated {
                return Err(Error::NotFound(format!(
                    "webhook {id:?} was deleted meanwhile"
                )));
            }
            Ok((webhook, secret))
        }
        .await;
        self.conclude(result, record, |_, r| (r, None)).await
    }

    /// Deletes a webhook and its delivery log (workspace admin).
    pub async fn delete_webhook(&self, who: &Principal, ws: &str, id: &str) -> Result<()> {
        let record = AuditRecord::by(who, "webhook.delete", self.now())
            .workspace(ws)
            .target(id);
        let result = async {
            let workspace = self.webhook_admin(who, ws).await?;
            let deleted = self.store.delete_webhook(&workspace.id, id).await?;
            self.webhooks_enabled.forget(ANY_ENABLED);
            if deleted {
                Ok(())
            } else {
                Err(Error::NotFound(format!(
                    "no webhook {id:?} in workspace {:?}",
                    workspace.name
                )))
            }
        }
        .await;
        self.conclude(result, record, |_, r| (r, None)).await
    }

    /// A webhook's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        who: &Principal,
        ws: &str,
        id: &str,
        before: Option<crate::clock::Timestamp>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        let workspace = self.webhook_admin(who, ws).await?;
        let webhook = self.find_webhook(&workspace, id).await?;
        self.store
            .list_deliveries(&webhook.id, before, limit.clamp(1, 1_000))
            .await
    }

    /// One delivery with its attempts.
    pub async fn webhook_delivery(
        &self,
        who: &Principal,
        ws: &str,
        id: &str,
        delivery_id: &str,
    ) -> Result<(Delivery, Vec<DeliveryAttempt>)> {
        let workspace = self.webhook_admin(who, ws).await?;
        let webhook = self.find_webhook(&workspace, id).await?;
        let delivery = self
            .store
            .delivery(&webhook.id, delivery_id)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!("no delivery {delivery_id:?} of webhook {id:?}"))
            })?;
        let attempts = self.store.delivery_attempts(&delivery.id).await?;
        Ok((delivery, attempts))
    }

    /// Sends a delivery again, as a new delivery with the same body (workspace admin).
    pub async fn redeliver(
        &self,
        who: &Principal,
        ws: &str,
        id: &str,
        delivery_id: &str,
    ) -> Result<Delivery> {
        let record = AuditRecord::by(who, "webhook.redeliver", self.now())
            .workspace(ws)
            .target(id)
            .detail(json!({"delivery": delivery_id}));
        let result = async {
            let (original, _) = self.webhook_delivery(who, ws, id, delivery_id).await?;
            let mut delivery = Delivery::new(
                &original.webhook_id,
                original.event_seq,
                &original.kind,
                original.body.clone(),
                self.now(),
            );
            delivery.redelivery_of = Some(original.id);
            self.store.insert_delivery(&delivery).await?;
            Ok(delivery)
        }
        .await;
        self.conclude(result, record, |_, r| (r, None)).await
    }

    /// Queues a `ping` delivery to one webhook, to test it (workspace admin).
    pub async fn ping_webhook(&self, who: &Principal, ws: &str, id: &str) -> Result<Delivery> {
        let record = AuditRecord::by(who, "webhook.ping", self.now())
            .workspace(ws)
            .target(id);
        let result = async {
            let workspace = self.webhook_admin(who, ws).await?;
            let webhook = self.find_webhook(&workspace, id).await?;
            let body = json!({
                "event": kind::PING,
                "time": self.now().to_rfc3339(),
                "workspace": workspace.name,
                "webhook": webhook.id,
                "actor": who.token_name,
            })
            .to_string();
            let delivery = Delivery::new(&webhook.id, None, kind::PING, body, self.now());
            self.store.insert_delivery(&delivery).await?;
            Ok(delivery)
        }
        .await;
        self.conclude(result, record, |_, r| (r, None)).await
    }

    /// Whether any webhook is enabled, read at most once per [`WEBHOOKS_ENABLED_MILLIS`]
    /// (changes made through this process are seen at once): an event wakes the delivery
    /// worker only when a webhook may have a delivery for it, so events cost no query when
    /// none is configured.
    pub async fn webhooks_enabled(&self) -> Result<bool> {
        let now = self.now();
        if let Some(known) = self.webhooks_enabled.get(ANY_ENABLED, now) {
            return Ok(known);
        }
        let enabled = self.store.any_enabled_webhook().await?;
        self.webhooks_enabled
            .put(ANY_ENABLED.to_owned(), enabled, now);
        Ok(enabled)
    }

    /// Claims due deliveries and sends them (concurrently), recording each attempt and
    /// scheduling retries; returns how many were attempted. The delivery worker calls this
    /// in a loop.
    pub async fn deliver_due_webhooks(
        &self,
        transport: &dyn WebhookTransport,
        limit: i64,
    ) -> Result<usize> {
        let now = self.now();
        let owner = new_id();
        let claimed = self
            .store
            .claim_deliveries(now, now.plus_millis(LEASE_MILLIS), &owner, limit)
            .await?;
        let count = claimed.len();
        let sends = claimed.into_iter().map(|claim| async move {
            let delivery = &claim.delivery;
            let attempt_no = delivery.attempts + 1;
            let started = self.now();
            let outcome = match self
                .cipher
                .open(
                    &claim.secret,
                    secret_binding(&claim.workspace_id, &delivery.webhook_id),
                    64,
                )
                .and_then(WebhookSecret::from_bytes)
            {
                Ok(secret) => {
                    let timestamp = (started.millis() / 1_000).to_string();
                    match signature(secret.expose(), &timestamp, delivery.body.as_bytes()) {
                        Ok(sig) => {
                            let request = OutgoingRequest {
                                url: claim.url.clone(),
                                headers: vec![
                                    (HEADER_EVENT, delivery.kind.clone()),
                                    (HEADER_DELIVERY, delivery.id.clone()),
                                    (HEADER_TIMESTAMP, timestamp),
                                    (HEADER_SIGNATURE, sig),
                                ],
                                body: delivery.body.clone(),
                                timeout: DELIVERY_TIMEOUT,
                            };
                            transport.post(request).await
                        }
                        Err(e) => failed_locally(e),
                    }
                }
                Err(e) => failed_locally(e),
            };
            let ok = outcome.status.is_some_and(|s| (200..300).contains(&s));
            ::metrics::counter!(crate::metrics::names::WEBHOOK_ATTEMPTS).increment(1);
            if !ok {
                ::metrics::counter!(crate::metrics::names::WEBHOOK_FAILURES).increment(1);
            }
            let finished = self.now();
            let (status, next) = if ok {
                (DeliveryStatus::Delivered, None)
            } else {
                match next_attempt_after(attempt_no, finished) {
                    Some(next) => (DeliveryStatus::Pending, Some(next)),
                    None => (DeliveryStatus::Failed, None),
                }
            };
            let error = match (&outcome.error, outcome.status) {
                (Some(e), _) => Some(e.clone()),
                (None, Some(s)) if !ok => Some(format!("receiver answered HTTP {s}")),
                _ => None,
            };
            let result = AttemptResult {
                delivery_id: delivery.id.clone(),
                lease_owner: claim.lease_owner.clone(),
                attempt: DeliveryAttempt {
                    attempt: attempt_no,
                    at: started,
                    status_code: outcome.status.map(i64::from),
                    error,
                    duration_ms: outcome.duration_ms,
                },
                status,
                next_attempt_at: next,
            };
            match self.store.finish_attempt(&result).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    delivery = %delivery.id,
                    "webhook delivery claim expired before its attempt was recorded"
                ),
                Err(e) => tracing::error!(
                    delivery = %delivery.id,
                    error = %e,
                    "could not record a webhook delivery attempt"
                ),
            }
            if !ok {
                tracing::info!(
                    delivery = %delivery.id,
                    webhook = %delivery.webhook_id,
                    attempt = attempt_no,
                    status = ?outcome.status,
                    error = ?outcome.error,
                    retry_at = ?next.map(|t| t.to_rfc3339()),
                    "webhook delivery failed"
                );
            }
        });
        futures::future::join_all(sends).await;
        Ok(count)
    }
}

fn failed_locally(e: Error) -> crate::webhooks::TransportOutcome {
    tracing::error!(error = %e, "cannot sign a webhook delivery");
    crate::webhooks::TransportOutcome {
        status: None,
        error: Some(format!("statehouse could not sign the delivery: {e}")),
        duration_ms: 0,
    }
}
