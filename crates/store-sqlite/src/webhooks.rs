//! Webhooks and their deliveries on SQLite.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;

use statehouse_core::Result;
use statehouse_core::clock::Timestamp;
use statehouse_core::crypto::SealedBody;
use statehouse_core::store::webhooks::WebhookStore;
use statehouse_core::webhooks::{
    AttemptResult, ClaimedDelivery, Delivery, DeliveryAttempt, DeliveryStatus, Webhook,
};

use crate::audit::insert_deliveries;
use crate::{SqliteStore, begin_write, commit, db_err, get};

const WEBHOOK_COLUMNS: &str = "SELECT id, workspace_id, url, events, enabled, description, created_at, updated_at, \
    key_id, wrapped_key, secret FROM webhooks";

const DELIVERY_COLUMNS: &str = "SELECT id, webhook_id, event_seq, kind, body, created_at, status, attempts, \
    next_attempt_at, last_status_code, last_error, delivered_at, redelivery_of FROM webhook_deliveries";

fn webhook_from(row: &SqliteRow) -> Result<Webhook> {
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

fn delivery_from(row: &SqliteRow) -> Result<Delivery> {
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
impl WebhookStore for SqliteStore {
    async fn create_webhook(&self, w: &Webhook) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhooks (id, workspace_id, url, events, enabled, description, created_at, updated_at, \
             key_id, wrapped_key, secret) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&mut *self.write.lock().await)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn list_webhooks(&self, workspace_id: &str) -> Result<Vec<Webhook>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{WEBHOOK_COLUMNS} WHERE workspace_id = ? ORDER BY created_at, id"
        ));
        let rows = sqlx::query(sql)
            .bind(workspace_id)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(webhook_from).collect()
    }

    async fn webhook(&self, workspace_id: &str, id: &str) -> Result<Option<Webhook>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{WEBHOOK_COLUMNS} WHERE workspace_id = ? AND id = ?"
        ));
        let row = sqlx::query(sql)
            .bind(workspace_id)
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(webhook_from).transpose()
    }

    async fn update_webhook(&self, w: &Webhook) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhooks SET url = ?, events = ?, enabled = ?, description = ?, updated_at = ?, \
             key_id = ?, wrapped_key = ?, secret = ? WHERE id = ? AND workspace_id = ?",
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
        .execute(&mut *self.write.lock().await)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_webhook(&self, workspace_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = ? AND workspace_id = ?")
            .bind(id)
            .bind(workspace_id)
            .execute(&mut *self.write.lock().await)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_delivery(&self, delivery: &Delivery) -> Result<()> {
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        insert_deliveries(&mut tx, std::slice::from_ref(delivery)).await?;
        commit(tx).await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        lease_owner: &str,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>> {
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        // The write transaction is the claim's lock: no other writer runs meanwhile.
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND w.enabled = 1 \
             AND (d.lease_until IS NULL OR d.lease_until <= ?) ORDER BY d.next_attempt_at LIMIT ?",
        )
        .bind(now.millis())
        .bind(now.millis())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            sqlx::query(
                "UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ? WHERE id = ?",
            )
            .bind(lease_owner)
            .bind(lease_until.millis())
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            let sql = sqlx::AssertSqlSafe(format!("{DELIVERY_COLUMNS} WHERE id = ?"));
            let row = sqlx::query(sql)
                .bind(&id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            let delivery = delivery_from(&row)?;
            let sql = sqlx::AssertSqlSafe(format!("{WEBHOOK_COLUMNS} WHERE id = ?"));
            let row = sqlx::query(sql)
                .bind(&delivery.webhook_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            let hook = webhook_from(&row)?;
            claimed.push(ClaimedDelivery {
                delivery,
                workspace_id: hook.workspace_id,
                url: hook.url,
                secret: hook.secret,
                lease_owner: lease_owner.to_owned(),
            });
        }
        commit(tx).await?;
        Ok(claimed)
    }

    async fn finish_attempt(&self, r: &AttemptResult) -> Result<bool> {
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        let a = &r.attempt;
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, lease_owner = NULL, \
             lease_until = NULL, last_status_code = ?, last_error = ?, \
             delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END \
             WHERE id = ? AND lease_owner = ?",
        )
        .bind(r.status.as_str())
        .bind(a.attempt)
        .bind(r.next_attempt_at.map(Timestamp::millis))
        .bind(a.status_code)
        .bind(&a.error)
        .bind(r.status.as_str())
        .bind(a.at.millis())
        .bind(&r.delivery_id)
        .bind(&r.lease_owner)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.delivery_id)
        .bind(a.attempt)
        .bind(a.at.millis())
        .bind(a.status_code)
        .bind(&a.error)
        .bind(a.duration_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        commit(tx).await?;
        Ok(true)
    }

    async fn list_deliveries(
        &self,
        webhook_id: &str,
        before: Option<Timestamp>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{DELIVERY_COLUMNS} WHERE webhook_id = ? AND created_at < ? ORDER BY created_at DESC, id DESC LIMIT ?"
        ));
        let rows = sqlx::query(sql)
            .bind(webhook_id)
            .bind(before.map_or(i64::MAX, Timestamp::millis))
            .bind(limit)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(delivery_from).collect()
    }

    async fn delivery(&self, webhook_id: &str, id: &str) -> Result<Option<Delivery>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{DELIVERY_COLUMNS} WHERE webhook_id = ? AND id = ?"
        ));
        let row = sqlx::query(sql)
            .bind(webhook_id)
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(delivery_from).transpose()
    }

    async fn delivery_attempts(&self, delivery_id: &str) -> Result<Vec<DeliveryAttempt>> {
        let rows = sqlx::query(
            "SELECT attempt, at, status_code, error, duration_ms FROM webhook_attempts \
             WHERE delivery_id = ? ORDER BY attempt",
        )
        .bind(delivery_id)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
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
            "DELETE FROM webhook_deliveries WHERE created_at < ? AND status <> 'pending'",
        )
        .bind(before.millis())
        .execute(&mut *self.write.lock().await)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
