//! The lock queue (`lock_wait`): waiters of a state in `lock_waiters`, first come first served.
//!
//! Joining the queue and handing the lock over both happen in a transaction on the state row
//! (read for update), so a release and a new waiter serialize: a waiter is either in the queue
//! when the lock is released, and gets it, or sees the lock free when it joins, and takes it.
//! `states.lock_queue_len` mirrors the queue's length so that the one-statement release in
//! [`crate::locks`] (the common case) only runs while nobody waits.

use statehouse_core::Result;
use statehouse_core::clock::Timestamp;
use statehouse_core::lock_queue::{LockOrQueue, LockWaiter, QueuedLock, WaitStatus};
use statehouse_core::model::{LockOutcome, LockRequest};
use statehouse_core::store::pending::JournalEntries;

use crate::SqlStore;
use crate::engine::{Conn, Engine, Row, Tx};
use crate::locks::set_lock;
use crate::pending::insert_pending;
use crate::query::sql;

impl<E: Engine> SqlStore<E> {
    pub(crate) async fn lock_or_enqueue_sql(
        &self,
        workspace_id: &str,
        name: &str,
        waiter: &LockWaiter<'_>,
        live_since: Timestamp,
    ) -> Result<LockOrQueue> {
        let req = waiter.request;
        let mut tx = self.engine.begin().await?;
        let state = self
            .state_for_update_or_create(&mut tx, workspace_id, name, req.at)
            .await?;
        let outcome = match &state.lock {
            Some(held) if held.id == req.id && held.token_id == req.token_id => {
                Some((LockOutcome::AlreadyHeld, waiter.already_held))
            }
            Some(_) => None,
            None => {
                let waiting: i64 =
                    sql("SELECT COUNT(*) FROM lock_waiters WHERE state_id = $1 AND seen_at >= $2")
                        .bind(&state.id)
                        .bind(live_since)
                        .scalar(&mut tx)
                        .await?;
                (waiting == 0).then_some((LockOutcome::Acquired, waiter.acquired))
            }
        };
        if let Some((outcome, entries)) = outcome {
            if outcome == LockOutcome::Acquired {
                set_lock(&mut tx, &state.id, req).await?;
            }
            insert_pending(&mut tx, entries).await?;
            tx.commit().await?;
            return Ok(LockOrQueue::Locked(outcome));
        }
        sql(
            "INSERT INTO lock_waiters (id, state_id, lock_id, lock_info, token_id, holder, \
             enqueued_at, seen_at, journal) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(waiter.id)
        .bind(&state.id)
        .bind(&req.id)
        .bind(&req.info)
        .bind(&req.token_id)
        .bind(&req.holder)
        .bind(req.at)
        .bind(req.at)
        .bind(waiter.acquired.encode())
        .execute(&mut tx)
        .await?;
        recount(&mut tx, &state.id).await?;
        tx.commit().await?;
        Ok(LockOrQueue::Queued)
    }

    pub(crate) async fn lock_wait_status_sql(
        &self,
        workspace_id: &str,
        name: &str,
        waiter_id: &str,
        req: &LockRequest,
        touch: Option<Timestamp>,
    ) -> Result<WaitStatus> {
        let present = match touch {
            Some(at) => {
                sql("UPDATE lock_waiters SET seen_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(waiter_id)
                    .execute(&mut self.engine.writer().await?)
                    .await?
                    > 0
            }
            None => sql("SELECT 1 FROM lock_waiters WHERE id = $1")
                .bind(waiter_id)
                .fetch_optional(&mut self.engine.read().await?)
                .await?
                .is_some(),
        };
        if present {
            return Ok(WaitStatus::Waiting);
        }
        // Gone from the queue: handed the lock (which is then this request's), or removed.
        let holder = sql("SELECT lock_id, lock_token_id FROM states \
             WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL")
        .bind(workspace_id)
        .bind(name)
        .fetch_optional(&mut self.engine.read().await?)
        .await?;
        let granted = match holder {
            Some(row) => {
                row.get::<Option<String>>("lock_id")?.as_deref() == Some(req.id.as_str())
                    && row.get::<Option<String>>("lock_token_id")?.as_deref()
                        == Some(req.token_id.as_str())
            }
            None => false,
        };
        Ok(if granted {
            WaitStatus::Granted
        } else {
            WaitStatus::Gone
        })
    }

    pub(crate) async fn leave_lock_queue_sql(&self, waiter_id: &str) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        let state_id: Option<String> =
            sql("DELETE FROM lock_waiters WHERE id = $1 RETURNING state_id")
                .bind(waiter_id)
                .optional_scalar(&mut tx)
                .await?;
        if let Some(state_id) = &state_id {
            recount(&mut tx, state_id).await?;
        }
        tx.commit().await?;
        Ok(state_id.is_some())
    }

    pub(crate) async fn lock_queue_sql(
        &self,
        workspace_id: &str,
        name: &str,
        live_since: Timestamp,
    ) -> Result<Vec<QueuedLock>> {
        let rows = sql(
            "SELECT w.lock_id, w.holder, w.lock_info, w.enqueued_at FROM lock_waiters w \
             JOIN states s ON s.id = w.state_id \
             WHERE s.workspace_id = $1 AND s.name = $2 AND s.deleted_at IS NULL AND w.seen_at >= $3 \
             ORDER BY w.enqueued_at, w.id",
        )
        .bind(workspace_id)
        .bind(name)
        .bind(live_since)
        .fetch_all(&mut self.engine.read().await?)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(QueuedLock {
                    lock_id: row.get("lock_id")?,
                    holder: row.get("holder")?,
                    info: row.get("lock_info")?,
                    enqueued_at: row.get("enqueued_at")?,
                })
            })
            .collect()
    }
}

/// After the lock of state `state_id` was released in `tx` (at `at`): hands it to the oldest
/// waiter seen since `live_since` and writes that waiter's entries, re-dated to `at`. Waiters
/// not seen since then are removed. Returns the new holder's lock ID, if any.
pub(crate) async fn hand_over<C: Conn>(
    tx: &mut C,
    state_id: &str,
    at: Timestamp,
    live_since: Timestamp,
) -> Result<Option<String>> {
    sql("DELETE FROM lock_waiters WHERE state_id = $1 AND seen_at < $2")
        .bind(state_id)
        .bind(live_since)
        .execute(tx)
        .await?;
    let next = sql(
        "SELECT id, lock_id, lock_info, token_id, holder, journal FROM lock_waiters \
         WHERE state_id = $1 ORDER BY enqueued_at, id LIMIT 1",
    )
    .bind(state_id)
    .fetch_optional(tx)
    .await?;
    let handed = match next {
        None => None,
        Some(row) => {
            let waiter_id: String = row.get("id")?;
            let lock_id: String = row.get("lock_id")?;
            let handed = LockRequest {
                id: lock_id.clone(),
                info: row.get("lock_info")?,
                token_id: row.get("token_id")?,
                holder: row.get("holder")?,
                at,
            };
            set_lock(tx, state_id, &handed).await?;
            sql("DELETE FROM lock_waiters WHERE id = $1")
                .bind(&waiter_id)
                .execute(tx)
                .await?;
            let mut entries = JournalEntries::decode(&row.get::<String>("journal")?)?;
            for record in &mut entries.records {
                record.at = at;
            }
            for event in &mut entries.events {
                event.at = at;
            }
            insert_pending(tx, &entries).await?;
            Some(lock_id)
        }
    };
    recount(tx, state_id).await?;
    Ok(handed)
}

/// Sets `states.lock_queue_len` to the queue's length.
async fn recount<C: Conn>(tx: &mut C, state_id: &str) -> Result<()> {
    sql("UPDATE states SET lock_queue_len = \
         (SELECT COUNT(*) FROM lock_waiters WHERE state_id = $1) WHERE id = $2")
    .bind(state_id)
    .bind(state_id)
    .execute(tx)
    .await?;
    Ok(())
}
