//! State locks: taking, releasing, force-unlocking, and flagging stale ones.
//!
//! LOCK and UNLOCK are the hottest statements: the common case (a free lock taken, a held lock
//! released by its holder) is one UPDATE with its journal entries, sent as one trip to the
//! database and committed on its own. PostgreSQL runs it as one statement (the UPDATE and the
//! journal INSERT in one data-modifying CTE); SQLite has no such CTEs, so it runs a script of
//! `BEGIN IMMEDIATE`, the UPDATE, an INSERT guarded by `changes()`, and `COMMIT` in one call to
//! its write connection (four calls cost four thread hand-offs). Either way a row comes back
//! when the UPDATE matched. Everything else — a missing state, a retried LOCK, a conflict — is
//! decided by [`rules`] in a transaction on the state row read for update.

use async_trait::async_trait;

use statehouse_core::Result;
use statehouse_core::clock::Timestamp;
use statehouse_core::lock_queue::{LockOrQueue, LockWaiter, QueuedLock, WAITER_TTL, WaitStatus};
use statehouse_core::model::{LockOutcome, LockRequest, StateRecord, UnlockOutcome, UnlockRequest};
use statehouse_core::rules;
use statehouse_core::store::locks::LockStore;
use statehouse_core::store::pending::{JournalEntries, Journaling};

use crate::SqlStore;
use crate::engine::{Conn, Dialect, Engine, Row, Tx};
use crate::lock_queue::hand_over;
use crate::pending::insert_pending;
use crate::query::{Sql, sql};
use crate::states::state_by_id;

/// Takes a free lock: binds $1–$7.
macro_rules! take_free_lock {
    () => {
        "UPDATE states SET lock_id = $1, lock_info = $2, lock_token_id = $3, lock_holder = $4, locked_at = $5 \
         WHERE workspace_id = $6 AND name = $7 AND deleted_at IS NULL AND lock_id IS NULL"
    };
}

/// Releases the caller's own lock while nobody waits for it (a waiter is handed the lock in
/// the transaction of the slow path): binds $1–$4.
macro_rules! release_own_lock {
    () => {
        "UPDATE states SET lock_id = NULL, lock_info = NULL, lock_token_id = NULL, lock_holder = NULL, \
         locked_at = NULL WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL \
         AND lock_id = $3 AND lock_token_id = $4 AND lock_queue_len = 0"
    };
}

/// One trip: `$change` (an UPDATE) and, when it matched, the journal entries ($at, $entry,
/// $journaled), committed together; one row back when the UPDATE matched.
macro_rules! one_trip {
    (Sqlite, $change:expr, $at:literal, $entry:literal, $journaled:literal) => {
        concat!(
            "BEGIN IMMEDIATE; ",
            $change,
            " RETURNING 1; INSERT INTO journal_pending (at, entry) SELECT ",
            $at,
            ", ",
            $entry,
            " WHERE changes() = 1 AND ",
            $journaled,
            "; COMMIT"
        )
    };
    (Postgres, $change:expr, $at:literal, $entry:literal, $journaled:literal) => {
        concat!(
            "WITH changed AS (",
            $change,
            " RETURNING 1), logged AS (INSERT INTO journal_pending (at, entry) SELECT ",
            $at,
            ", ",
            $entry,
            " FROM changed WHERE ",
            $journaled,
            ") SELECT 1 FROM changed"
        )
    };
}

fn take_free_lock_trip(dialect: Dialect) -> &'static str {
    dialect.pick(
        one_trip!(Sqlite, take_free_lock!(), "$8", "$9", "$10"),
        one_trip!(Postgres, take_free_lock!(), "$8", "$9", "$10"),
    )
}

fn release_own_lock_trip(dialect: Dialect) -> &'static str {
    dialect.pick(
        one_trip!(Sqlite, release_own_lock!(), "$5", "$6", "$7"),
        one_trip!(Postgres, release_own_lock!(), "$5", "$6", "$7"),
    )
}

/// Gives state `state_id` the lock of `req`, in the caller's transaction on the state row.
pub(crate) async fn set_lock<C: Conn>(tx: &mut C, state_id: &str, req: &LockRequest) -> Result<()> {
    sql(
        "UPDATE states SET lock_id = $1, lock_info = $2, lock_token_id = $3, lock_holder = $4, \
         locked_at = $5 WHERE id = $6",
    )
    .bind(&req.id)
    .bind(&req.info)
    .bind(&req.token_id)
    .bind(&req.holder)
    .bind(req.at)
    .bind(state_id)
    .execute(tx)
    .await?;
    Ok(())
}

fn logged<'a>(statement: Sql<'a>, entries: &JournalEntries) -> Sql<'a> {
    statement
        .bind(entries.at())
        .bind(entries.encode())
        .bind(!entries.is_empty())
}

/// [`WAITER_TTL`] in milliseconds.
const WAITER_TTL_MILLIS: i64 = WAITER_TTL.as_millis() as i64;

#[async_trait]
impl<E: Engine> LockStore for SqlStore<E> {
    async fn lock_state_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        req: &LockRequest,
        journal: Journaling<'_, LockOutcome>,
    ) -> Result<LockOutcome> {
        let take = sql(take_free_lock_trip(E::DIALECT))
            .bind(&req.id)
            .bind(&req.info)
            .bind(&req.token_id)
            .bind(&req.holder)
            .bind(req.at)
            .bind(workspace_id)
            .bind(name);
        // All rows are read: on SQLite, stopping at the first would leave the script's INSERT
        // and COMMIT unrun.
        let taken = logged(take, &journal(&LockOutcome::Acquired))
            .fetch_all(&mut self.engine.writer().await?)
            .await?;
        if !taken.is_empty() {
            return Ok(LockOutcome::Acquired);
        }
        let mut tx = self.engine.begin().await?;
        let state = self
            .state_for_update_or_create(&mut tx, workspace_id, name, req.at)
            .await?;
        let outcome = rules::decide_lock(state.lock.as_ref(), &req.id, &req.token_id)?;
        if outcome == LockOutcome::Acquired {
            set_lock(&mut tx, &state.id, req).await?;
        }
        insert_pending(&mut tx, &journal(&outcome)).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn unlock_state_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        req: &UnlockRequest,
        journal: Journaling<'_, UnlockOutcome>,
    ) -> Result<UnlockOutcome> {
        if let Some(id) = &req.id {
            let release = sql(release_own_lock_trip(E::DIALECT))
                .bind(workspace_id)
                .bind(name)
                .bind(id)
                .bind(&req.token_id);
            let released = logged(release, &journal(&UnlockOutcome::Released))
                .fetch_all(&mut self.engine.writer().await?)
                .await?;
            if !released.is_empty() {
                return Ok(UnlockOutcome::Released);
            }
        }
        let mut tx = self.engine.begin().await?;
        let Some(state) = self
            .live_state_for_update(&mut tx, workspace_id, name)
            .await?
        else {
            let outcome = UnlockOutcome::NotLocked;
            insert_pending(&mut tx, &journal(&outcome)).await?;
            tx.commit().await?;
            return Ok(outcome);
        };
        let outcome = rules::decide_unlock(state.lock.as_ref(), req)?;
        if outcome != UnlockOutcome::NotLocked {
            sql("UPDATE states SET lock_id = NULL, lock_info = NULL, lock_token_id = NULL, lock_holder = NULL, \
                 locked_at = NULL WHERE id = $1")
            .bind(&state.id)
            .execute(&mut tx)
            .await?;
        }
        // The release's entries first, then (if someone waits) the next holder's.
        insert_pending(&mut tx, &journal(&outcome)).await?;
        if outcome != UnlockOutcome::NotLocked {
            let live_since = req.at.plus_millis(-WAITER_TTL_MILLIS);
            hand_over(&mut tx, &state.id, req.at, live_since).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn lock_or_enqueue(
        &self,
        workspace_id: &str,
        name: &str,
        waiter: &LockWaiter<'_>,
        live_since: Timestamp,
    ) -> Result<LockOrQueue> {
        self.lock_or_enqueue_sql(workspace_id, name, waiter, live_since)
            .await
    }

    async fn lock_wait_status(
        &self,
        workspace_id: &str,
        name: &str,
        waiter_id: &str,
        request: &LockRequest,
        touch: Option<Timestamp>,
    ) -> Result<WaitStatus> {
        self.lock_wait_status_sql(workspace_id, name, waiter_id, request, touch)
            .await
    }

    async fn leave_lock_queue(&self, waiter_id: &str) -> Result<bool> {
        self.leave_lock_queue_sql(waiter_id).await
    }

    async fn lock_queue(
        &self,
        workspace_id: &str,
        name: &str,
        live_since: Timestamp,
    ) -> Result<Vec<QueuedLock>> {
        self.lock_queue_sql(workspace_id, name, live_since).await
    }

    async fn flag_stale_locks(
        &self,
        workspace_id: &str,
        locked_before: Timestamp,
    ) -> Result<Vec<StateRecord>> {
        let mut tx = self.engine.begin().await?;
        // One UPDATE claims each lock once: a concurrent replica's UPDATE waits on the row and
        // then no longer matches.
        let ids = sql(
            "UPDATE states SET stale_flagged_lock_id = lock_id \
             WHERE workspace_id = $1 AND deleted_at IS NULL AND lock_id IS NOT NULL AND locked_at < $2 \
             AND stale_flagged_lock_id IS DISTINCT FROM lock_id RETURNING id",
        )
        .bind(workspace_id)
        .bind(locked_before)
        .fetch_all(&mut tx)
        .await?;
        let mut flagged = Vec::with_capacity(ids.len());
        for row in ids {
            let id: String = row.get(0)?;
            flagged.push(state_by_id(&mut tx, &id).await?);
        }
        tx.commit().await?;
        Ok(flagged)
    }
}
