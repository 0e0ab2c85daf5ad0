//! Webhooks and their deliveries. Workers claim deliveries under a lease; on PostgreSQL the
//! claim skips rows another replica is claiming right now (`FOR UPDATE … SKIP LOCKED`), on
//! SQLite the one writer makes the claim exclusive.

use async_trait::async_trait;

use statehouse_core::Result;
use statehouse_core::clock::Timestamp;
use statehouse_core::crypto::SealedBody;
use statehouse_core::store::webhooks::WebhookStore;
use statehouse_core::webhooks::{
    AttemptResult, ClaimedDelivery, Delivery, DeliveryAttempt, DeliveryStatus, Webhook,
};

use crate::engine::{Engine, Row, Tx};
use crate::query::{Sql, arg, json_elements, json_list, sql};
use crate::{Conn, SqlStore};

const WEBHOOK_COLUMNS: &str = "SELECT id, workspace_id, url, events, enabled, description, created_at, updated_at, \
    key_id, wrapped_key, secret FROM webhooks";

const DELIVERY_COLUMNS: &str = "SELECT id, webhook_id, event_seq, kind, body, created_at, status, attempts, \
    next_attempt_at, last_status_code, last_error, delivered_at, redelivery_of FROM webhook_deliveries";

/// Rows per multi-row INSERT (well under both engines' parameter limits).
const INSERT_CHUNK: usize = 100;

fn webhook_from(row: &impl Row) -> Result<Webhook> {
    let events: String = row.get("events")?;
    Ok(Webhook {
        id: row.get("id")?,
        workspace_id: row.get("workspace_id")?,
        url: row.get("url")?,
        events: serde_json::from_str(&events).map_err(|e| {
            statehouse_core::Error::Internal(format!(
                "stored webhook filter is not a JSON list: {e}"
            ))
        })?,
        enabled: row.get("enabled")?,
        description: row.get("description")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        secret: SealedBody {
            key_id: row.get("key_id")?,
            wrapped_key: row.get("wrapped_key")?,
            ciphertext: row.get("secret")?,
        },
    })
}

fn delivery_from(row: &impl Row) -> Result<Delivery> {
    let status: String = row.get("status")?;
    Ok(Delivery {
        id: row.get("id")?,
        webhook_id: row.get("webhook_id")?,
        event_seq: row.get("event_seq")?,
        kind: row.get("kind")?,
        body: row.get("body")?,
        created_at: row.get("created_at")?,
        status: DeliveryStatus::parse(&status)?,
        attempts: row.get("attempts")?,
        next_attempt_at: row.get("next_attempt_at")?,
        last_status_code: row.get("last_status_code")?,
        last_error: row.get("last_error")?,
        delivered_at: row.get("delivered_at")?,
        redelivery_of: row.get("redelivery_of")?,
    })
}

fn filter_text(webhook: &Webhook) -> String {
    serde_json::Value::from(webhook.events.clone()).to_string()
}

/// Inserts deliveries (in the caller's transaction), in multi-row statements.
pub(crate) async fn insert_deliveries<C: Conn>(tx: &mut C, deliveries: &[Delivery]) -> Result<()> {
    for chunk in deliveries.chunks(INSERT_CHUNK) {
        let mut q = Sql::built(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_seq, kind, body, created_at, status, attempts, \
             next_attempt_at, redelivery_of) "
                .to_owned(),
        );
        q.push_values(chunk.iter().map(|d| {
            [
                arg(&d.id),
                arg(&d.webhook_id),
                arg(d.event_seq),
                arg(&d.kind),
                arg(&d.body),
                arg(d.created_at),
                arg(d.status.as_str()),
                arg(d.attempts),
                arg(d.next_attempt_at),
                arg(&d.redelivery_of),
            ]
        }));
        q.execute(tx).await?;
    }
    Ok(())
}

#[async_trait]
impl<E: Engine> WebhookStore for SqlStore<E> {
    async fn create_webhook(&self, w: &Webhook) -> Result<()> {
        sql("INSERT INTO webhooks (id, workspace_id, url, events, enabled, description, created_at, updated_at, \
             key_id, wrapped_key, secret) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(&w.id)
        .bind(&w.workspace_id)
        .bind(&w.url)
        .bind(filter_text(w))
        .bind(w.enabled)
        .bind(&w.description)
        .bind(w.created_at)
        .bind(w.updated_at)
        .bind(&w.secret.key_id)
        .bind(&w.secret.wrapped_key)
        .bind(&w.secret.ciphertext)
        .execute(&mut self.engine.writer().await?)
        .await?;
        Ok(())
    }

    async fn list_webhooks(&self, workspace_id: &str) -> Result<Vec<Webhook>> {
        let rows = Sql::built(format!(
            "{WEBHOOK_COLUMNS} WHERE workspace_id = $1 ORDER BY created_at, id"
        ))
        .bind(workspace_id)
        .fetch_all(&mut self.engine.read().await?)
        .await?;
        rows.iter().map(webhook_from).collect()
    }

    async fn webhook(&self, workspace_id: &str, id: &str) -> Result<Option<Webhook>> {
        let row = Sql::built(format!(
            "{WEBHOOK_COLUMNS} WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&mut self.engine.read().await?)
        .await?;
        row.as_ref().map(webhook_from).transpose()
    }

    async fn update_webhook(&self, w: &Webhook) -> Result<bool> {
        let done = sql(
            "UPDATE webhooks SET url = $1, events = $2, enabled = $3, description = $4, updated_at = $5, \
             key_id = $6, wrapped_key = $7, secret = $8 WHERE id = $9 AND workspace_id = $10",
        )
        .bind(&w.url)
        .bind(filter_text(w))
        .bind(w.enabled)
        .bind(&w.description)
        .bind(w.updated_at)
        .bind(&w.secret.key_id)
        .bind(&w.secret.wrapped_key)
        .bind(&w.secret.ciphertext)
        .bind(&w.id)
        .bind(&w.workspace_id)
        .execute(&mut self.engine.writer().await?)
        .await?;
        Ok(done == 1)
    }

    async fn delete_webhook(&self, workspace_id: &str, id: &str) -> Result<bool> {
        let done = sql("DELETE FROM webhooks WHERE id = $1 AND workspace_id = $2")
            .bind(id)
            .bind(workspace_id)
            .execute(&mut self.engine.writer().await?)
            .await?;
        Ok(done == 1)
    }

    async fn any_enabled_webhook(&self) -> Result<bool> {
        let found: Option<i64> = sql("SELECT 1 FROM webhooks WHERE enabled = TRUE LIMIT 1")
            .optional_scalar(&mut self.engine.read().await?)
            .await?;
        Ok(found.is_some())
    }

    async fn insert_delivery(&self, delivery: &Delivery) -> Result<()> {
        insert_deliveries(
            &mut self.engine.writer().await?,
            std::slice::from_ref(delivery),
        )
        .await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        lease_owner: &str,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>> {
        // One statement, so the claim is atomic on both engines. On PostgreSQL rows another
        // worker is claiming right now are skipped, not waited for; the lease keeps them from
        // being claimed again once that worker's transaction commits.
        let skip_locked = self.dialect().pick("", " FOR UPDATE OF d SKIP LOCKED");
        let claim = Sql::built(format!(
            "WITH due AS (SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND w.enabled = TRUE \
             AND (d.lease_until IS NULL OR d.lease_until <= $1) \
             ORDER BY d.next_attempt_at LIMIT $2{skip_locked}) \
             UPDATE webhook_deliveries SET lease_owner = $3, lease_until = $4 \
             FROM due WHERE webhook_deliveries.id = due.id RETURNING webhook_deliveries.id"
        ))
        .bind(now)
        .bind(limit)
        .bind(lease_owner)
        .bind(lease_until);
        let ids = claim
            .fetch_all(&mut self.engine.writer().await?)
            .await?
            .iter()
            .map(|r| r.get::<String>(0))
            .collect::<Result<Vec<_>>>()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.engine.read().await?;
        let rows = Sql::built(format!(
            "{DELIVERY_COLUMNS} WHERE id IN {} AND lease_owner = $2 ORDER BY next_attempt_at",
            json_elements(self.dialect(), 1)
        ))
        .bind(json_list(&ids))
        .bind(lease_owner)
        .fetch_all(&mut conn)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let delivery = delivery_from(row)?;
            let Some(row) = Sql::built(format!("{WEBHOOK_COLUMNS} WHERE id = $1"))
                .bind(&delivery.webhook_id)
                .fetch_optional(&mut conn)
                .await?
            else {
                continue; // deleted meanwhile; its deliveries went with it
            };
            let hook = webhook_from(&row)?;
            claimed.push(ClaimedDelivery {
                delivery,
                workspace_id: hook.workspace_id,
                url: hook.url,
                secret: hook.secret,
                lease_owner: lease_owner.to_owned(),
            });
        }
        Ok(claimed)
    }

    async fn finish_attempt(&self, r: &AttemptResult) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        let a = &r.attempt;
        let done = sql(
            "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, lease_owner = NULL, \
             lease_until = NULL, last_status_code = $4, last_error = $5, \
             delivered_at = CASE WHEN $1 = 'delivered' THEN $6 ELSE delivered_at END \
             WHERE id = $7 AND lease_owner = $8",
        )
        .bind(r.status.as_str())
        .bind(a.attempt)
        .bind(r.next_attempt_at)
        .bind(a.status_code)
        .bind(&a.error)
        .bind(a.at)
        .bind(&r.delivery_id)
        .bind(&r.lease_owner)
        .execute(&mut tx)
        .await?;
        if done != 1 {
            return Ok(false);
        }
        sql("INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&r.delivery_id)
        .bind(a.attempt)
        .bind(a.at)
        .bind(a.status_code)
        .bind(&a.error)
        .bind(a.duration_ms)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_deliveries(
        &self,
        webhook_id: &str,
        before: Option<Timestamp>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        let rows = Sql::built(format!(
            "{DELIVERY_COLUMNS} WHERE webhook_id = $1 AND created_at < $2 ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(webhook_id)
        .bind(before.map_or(i64::MAX, Timestamp::millis))
        .bind(limit)
        .fetch_all(&mut self.engine.read().await?)
        .await?;
        rows.iter().map(delivery_from).collect()
    }

    async fn delivery(&self, webhook_id: &str, id: &str) -> Result<Option<Delivery>> {
        let row = Sql::built(format!(
            "{DELIVERY_COLUMNS} WHERE webhook_id = $1 AND id = $2"
        ))
        .bind(webhook_id)
        .bind(id)
        .fetch_optional(&mut self.engine.read().await?)
        .await?;
        row.as_ref().map(delivery_from).transpose()
    }

    async fn delivery_attempts(&self, delivery_id: &str) -> Result<Vec<DeliveryAttempt>> {
        let rows = sql(
            "SELECT attempt, at, status_code, error, duration_ms FROM webhook_attempts \
             WHERE delivery_id = $1 ORDER BY attempt",
        )
        .bind(delivery_id)
        .fetch_all(&mut self.engine.read().await?)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryAttempt {
                    attempt: r.get("attempt")?,
                    at: r.get("at")?,
                    status_code: r.get("status_code")?,
                    error: r.get("error")?,
                    duration_ms: r.get("duration_ms")?,
                })
            })
            .collect()
    }

    async fn prune_deliveries(&self, before: Timestamp) -> Result<u64> {
        let done =
            sql("DELETE FROM webhook_deliveries WHERE created_at < $1 AND status <> 'pending'")
                .bind(before)
                .execute(&mut self.engine.writer().await?)
                .await?;
        Ok(done)
    }
}
