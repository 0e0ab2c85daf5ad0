//! Webhooks and their deliveries on PostgreSQL. Workers claim deliveries with
//! `FOR UPDATE SKIP LOCKED`, so replicas never claim the same one.

use async_trait::async_trait;
use sqlx::postgres::PgRow;

use statehouse_core::Result;
use statehouse_core::clock::Timestamp;
use statehouse_core::crypto::SealedBody;
use statehouse_core::store::webhooks::WebhookStore;
use statehouse_core::webhooks::{
    AttemptResult, ClaimedDelivery, Delivery, DeliveryAttempt, DeliveryStatus, Webhook,
};

use crate::audit::insert_deliveries;
use crate::{PgStore, get};

const WEBHOOK_COLUMNS: &str = "SELECT id, workspace_id, url, events, enabled, description, created_at, updated_at, \
    key_id, wrapped_key, secret FROM webhooks";

const DELIVERY_COLUMNS: &str = "SELECT id, webhook_id, event_seq, kind, body, created_at, status, attempts, \
    next_attempt_at, last_status_code, last_error, delivered_at, redelivery_of FROM webhook_deliveries";

fn webhook_from(row: &PgRow) -> Result<Webhook> {
    let events: String = get(row, "events")?;
    Ok(Webhook {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        url: get(row, "url")?,
        events: serde_json::from_str(&events).map_err(|e| {
            statehouse_core::Error::Internal(format!(
                "stored webhook filter is not a JSON list: {e}"
            ))
        })?,
        enabled: get(row, "enabled")?,
        description: get(row, "description")?,
        created_at: Timestamp(get(row, "created_at")?),
        updated_at: Timestamp(get(row, "updated_at")?),
        secret: SealedBody {
            key_id: get(row, "key_id")?,
            wrapped_key: get(row, "wrapped_key")?,
            ciphertext: get(row, "secret")?,
        },
    })
}

fn delivery_from(row: &PgRow) -> Result<Delivery> {
    let status: String = get(row, "status")?;
    Ok(Delivery {
        id: get(row, "id")?,
        webhook_id: get(row, "webhook_id")?,
        event_seq: get(row, "event_seq")?,
        kind: get(row, "kind")?,
        body: get(row, "body")?,
        created_at: Timestamp(get(row, "created_at")?),
        status: DeliveryStatus::parse(&status)?,
        attempts: get(row, "attempts")?,
        next_attempt_at: get::<Option<i64>>(row, "next_attempt_at")?.map(Timestamp),
        last_status_code: get(row, "last_status_code")?,
        last_error: get(row, "last_error")?,
        delivered_at: get::<Option<i64>>(row, "delivered_at")?.map(Timestamp),
        redelivery_of: get(row, "redelivery_of")?,
    })
}

fn filter_text(webhook: &Webhook) -> String {
    serde_json::Value::from(webhook.events.clone()).to_string()
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn create_webhook(&self, w: &Webhook) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhooks (id, workspace_id, url, events, enabled, description, created_at, updated_at, \
             key_id, wrapped_key, secret) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&w.id)
        .bind(&w.workspace_id)
        .bind(&w.url)
        .bind(filter_text(w))
        .bind(w.enabled)
        .bind(&w.description)
        .bind(w.created_at.millis())
        .bind(w.updated_at.millis())
        .bind(&w.secret.key_id)
        .bind(&w.secret.wrapped_key)
        .bind(&w.secret.ciphertext)
        .execute(&self.pool)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    async fn list_webhooks(&self, workspace_id: &str) -> Result<Vec<Webhook>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{WEBHOOK_COLUMNS} WHERE workspace_id = $1 ORDER BY created_at, id"
        ));
        let rows = sqlx::query(sql)
            .bind(workspace_id)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        rows.iter().map(webhook_from).collect()
    }

    async fn webhook(&self, workspace_id: &str, id: &str) -> Result<Option<Webhook>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{WEBHOOK_COLUMNS} WHERE workspace_id = $1 AND id = $2"
        ));
        let row = sqlx::query(sql)
            .bind(workspace_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        row.as_ref().map(webhook_from).transpose()
    }

    async fn update_webhook(&self, w: &Webhook) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhooks SET url = $1, events = $2, enabled = $3, description = $4, updated_at = $5, \
             key_id = $6, wrapped_key = $7, secret = $8 WHERE id = $9 AND workspace_id = $10",
        )
        .bind(&w.url)
        .bind(filter_text(w))
        .bind(w.enabled)
        .bind(&w.description)
        .bind(w.updated_at.millis())
        .bind(&w.secret.key_id)
        .bind(&w.secret.wrapped_key)
        .bind(&w.secret.ciphertext)
        .bind(&w.id)
        .bind(&w.workspace_id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_webhook(&self, workspace_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND workspace_id = $2")
            .bind(id)
            .bind(workspace_id)
            .execute(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_delivery(&self, delivery: &Delivery) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.db_err(e))?;
        insert_deliveries(&mut conn, std::slice::from_ref(delivery))
            .await
            .map_err(|e| self.db_err(e))
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        lease_owner: &str,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>> {
        // Rows another worker is claiming right now are skipped, not waited for; the lease
        // keeps them from being claimed again once that worker's transaction commits.
        let ids: Vec<String> = sqlx::query_scalar(
            "WITH due AS (SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND w.enabled \
             AND (d.lease_until IS NULL OR d.lease_until <= $1) \
             ORDER BY d.next_attempt_at LIMIT $2 FOR UPDATE OF d SKIP LOCKED) \
             UPDATE webhook_deliveries SET lease_owner = $3, lease_until = $4 \
             FROM due WHERE webhook_deliveries.id = due.id RETURNING webhook_deliveries.id",
        )
            .bind(now.millis())
            .bind(limit)
            .bind(lease_owner)
            .bind(lease_until.millis())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "{DELIVERY_COLUMNS} WHERE id = ANY($1) AND lease_owner = $2 ORDER BY next_attempt_at"
        ));
        let rows = sqlx::query(sql)
            .bind(&ids)
            .bind(lease_owner)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let delivery = delivery_from(row)?;
            let sql = sqlx::AssertSqlSafe(format!("{WEBHOOK_COLUMNS} WHERE id = $1"));
            let Some(row) = sqlx::query(sql)
                .bind(&delivery.webhook_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.db_err(e))?
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
        let mut tx = self.begin().await?;
        let a = &r.attempt;
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, lease_owner = NULL, \
             lease_until = NULL, last_status_code = $4, last_error = $5, \
             delivered_at = CASE WHEN $1 = 'delivered' THEN $6 ELSE delivered_at END \
             WHERE id = $7 AND lease_owner = $8",
        )
        .bind(r.status.as_str())
        .bind(a.attempt)
        .bind(r.next_attempt_at.map(Timestamp::millis))
        .bind(a.status_code)
        .bind(&a.error)
        .bind(a.at.millis())
        .bind(&r.delivery_id)
        .bind(&r.lease_owner)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db_err(e))?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&r.delivery_id)
        .bind(a.attempt)
        .bind(a.at.millis())
        .bind(a.status_code)
        .bind(&a.error)
        .bind(a.duration_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db_err(e))?;
        tx.commit().await.map_err(|e| self.db_err(e))?;
        Ok(true)
    }

    async fn list_deliveries(
        &self,
        webhook_id: &str,
        before: Option<Timestamp>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{DELIVERY_COLUMNS} WHERE webhook_id = $1 AND created_at < $2 ORDER BY created_at DESC, id DESC LIMIT $3"
        ));
        let rows = sqlx::query(sql)
            .bind(webhook_id)
            .bind(before.map_or(i64::MAX, Timestamp::millis))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        rows.iter().map(delivery_from).collect()
    }

    async fn delivery(&self, webhook_id: &str, id: &str) -> Result<Option<Delivery>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{DELIVERY_COLUMNS} WHERE webhook_id = $1 AND id = $2"
        ));
        let row = sqlx::query(sql)
            .bind(webhook_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        row.as_ref().map(delivery_from).transpose()
    }

    async fn delivery_attempts(&self, delivery_id: &str) -> Result<Vec<DeliveryAttempt>> {
        let rows = sqlx::query(
            "SELECT attempt, at, status_code, error, duration_ms FROM webhook_attempts \
             WHERE delivery_id = $1 ORDER BY attempt",
        )
        .bind(delivery_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.db_err(e))?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryAttempt {
                    attempt: get(r, "attempt")?,
                    at: Timestamp(get(r, "at")?),
                    status_code: get(r, "status_code")?,
                    error: get(r, "error")?,
                    duration_ms: get(r, "duration_ms")?,
                })
            })
            .collect()
    }

    async fn prune_deliveries(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE created_at < $1 AND status <> 'pending'",
        )
        .bind(before.millis())
        .execute(&self.pool)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected())
    }
}
