//! Storage of webhooks and their deliveries.

use async_trait::async_trait;

use crate::Result;
use crate::clock::Timestamp;
use crate::webhooks::{AttemptResult, ClaimedDelivery, Delivery, DeliveryAttempt, Webhook};

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_webhook(&self, webhook: &Webhook) -> Result<()>;
    async fn list_webhooks(&self, workspace_id: &str) -> Result<Vec<Webhook>>;
    async fn webhook(&self, workspace_id: &str, id: &str) -> Result<Option<Webhook>>;
    /// Replaces url, events, enabled, description, secret and updated_at; false when missing.
    async fn update_webhook(&self, webhook: &Webhook) -> Result<bool>;
    /// Removes the webhook and its deliveries; false when missing.
    async fn delete_webhook(&self, workspace_id: &str, id: &str) -> Result<bool>;
    /// Whether any workspace has an enabled webhook (whether an event may be delivered).
    async fn any_enabled_webhook(&self) -> Result<bool>;

    /// Adds a delivery outside of an event's transaction (pings, redeliveries).
    async fn insert_delivery(&self, delivery: &Delivery) -> Result<()>;
    /// Claims up to `limit` pending deliveries that are due at `now`, of enabled webhooks, and
    /// not claimed by anyone else (or whose claim expired), until `lease_until`. Claims by
    /// concurrent callers, also in other processes, never overlap.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        lease_owner: &str,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>>;
    /// Records an attempt and the delivery's new status, if the claim is still this one's;
    /// false when the claim was lost (expired and taken over).
    async fn finish_attempt(&self, result: &AttemptResult) -> Result<bool>;
    /// A webhook's deliveries, newest first, created before `before` when given.
    async fn list_deliveries(
        &self,
        webhook_id: &str,
        before: Option<Timestamp>,
        limit: i64,
    ) -> Result<Vec<Delivery>>;
    async fn delivery(&self, webhook_id: &str, id: &str) -> Result<Option<Delivery>>;
    /// A delivery's attempts, first first.
    async fn delivery_attempts(&self, delivery_id: &str) -> Result<Vec<DeliveryAttempt>>;
    /// Removes finished (delivered or failed) deliveries created before `before`.
    async fn prune_deliveries(&self, before: Timestamp) -> Result<u64>;
}
