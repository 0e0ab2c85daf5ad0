//! The store's figures for `/metrics`: one statement of scalar subqueries (the same text on
//! both engines), and the held locks when per-state labels are on.

use async_trait::async_trait;

use statehouse_core::Result;
use statehouse_core::clock::Timestamp;
use statehouse_core::store::metrics::{
    HeldLockAge, MAX_LISTED_LOCKS, MetricsStore, PoolStatus, StoreGauges,
};

use crate::SqlStore;
use crate::engine::{Engine, Row};
use crate::query::sql;

/// Counts and oldest times; `$1` is now (stale: held longer than the workspace allows).
const GAUGES: &str = "SELECT \
     (SELECT count(*) FROM states WHERE lock_id IS NOT NULL AND deleted_at IS NULL) AS locks_held, \
     (SELECT min(locked_at) FROM states WHERE lock_id IS NOT NULL AND deleted_at IS NULL) AS oldest_lock_at, \
     (SELECT count(*) FROM states s JOIN workspaces w ON w.id = s.workspace_id \
        WHERE s.lock_id IS NOT NULL AND s.deleted_at IS NULL AND w.stale_lock_after_ms IS NOT NULL \
        AND s.locked_at < $1 - w.stale_lock_after_ms) AS stale_locks, \
     (SELECT count(*) FROM journal_pending) AS audit_pending, \
     (SELECT min(at) FROM journal_pending) AS oldest_audit_pending_at, \
     (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS webhooks_pending, \
     (SELECT count(*) FROM webhook_deliveries WHERE status = 'failed') AS webhooks_failed";

fn count(row: &impl Row, column: &str) -> Result<u64> {
    let n: i64 = row.get(column)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[async_trait]
impl<E: Engine> MetricsStore for SqlStore<E> {
    async fn store_gauges(&self, now: Timestamp, list_locks: bool) -> Result<StoreGauges> {
        let mut conn = self.engine.read_lagging().await?;
        let row = sql(GAUGES).bind(now).fetch_one(&mut conn).await?;
        let mut gauges = StoreGauges {
            locks_held: count(&row, "locks_held")?,
            oldest_lock_at: row.get("oldest_lock_at")?,
            stale_locks: count(&row, "stale_locks")?,
            audit_pending: count(&row, "audit_pending")?,
            oldest_audit_pending_at: row.get("oldest_audit_pending_at")?,
            webhooks_pending: count(&row, "webhooks_pending")?,
            webhooks_failed: count(&row, "webhooks_failed")?,
            held_locks: Vec::new(),
        };
        if list_locks {
            let rows = sql(
                "SELECT w.name AS workspace, s.name AS state, s.locked_at FROM states s \
                 JOIN workspaces w ON w.id = s.workspace_id \
                 WHERE s.lock_id IS NOT NULL AND s.deleted_at IS NULL \
                 ORDER BY s.locked_at, s.id LIMIT $1",
            )
            .bind(i64::from(MAX_LISTED_LOCKS))
            .fetch_all(&mut conn)
            .await?;
            for row in rows {
                gauges.held_locks.push(HeldLockAge {
                    workspace: row.get("workspace")?,
                    state: row.get("state")?,
                    locked_at: row.get("locked_at")?,
                });
            }
        }
        Ok(gauges)
    }

    fn pool_status(&self) -> PoolStatus {
        self.engine.pool_status()
    }
}
