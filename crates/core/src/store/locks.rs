//! State locks: taking, releasing, force-unlocking, and flagging stale ones.

use async_trait::async_trait;

use super::pending::{Journaling, no_journal};
use crate::Result;
use crate::clock::Timestamp;
use crate::lock_queue::{LockOrQueue, LockWaiter, QueuedLock, WaitStatus};
use crate::model::{LockOutcome, LockRequest, StateRecord, UnlockOutcome, UnlockRequest};

#[async_trait]
pub trait LockStore: Send + Sync {
    /// Takes the lock after [`crate::rules::decide_lock`], creating the state row if needed.
    async fn lock_state_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        request: &LockRequest,
        journal: Journaling<'_, LockOutcome>,
    ) -> Result<LockOutcome>;
    async fn lock_state(
        &self,
        workspace_id: &str,
        name: &str,
        request: &LockRequest,
    ) -> Result<LockOutcome> {
        self.lock_state_journaled(workspace_id, name, request, &no_journal::<LockOutcome>)
            .await
    }
    async fn unlock_state_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        request: &UnlockRequest,
        journal: Journaling<'_, UnlockOutcome>,
    ) -> Result<UnlockOutcome>;
    async fn unlock_state(
        &self,
        workspace_id: &str,
        name: &str,
        request: &UnlockRequest,
    ) -> Result<UnlockOutcome> {
        self.unlock_state_journaled(workspace_id, name, request, &no_journal::<UnlockOutcome>)
            .await
    }

    /// Takes the lock as [`LockStore::lock_state_journaled`] does when it is free and nobody
    /// seen since `live_since` waits for it (or when it is already this request's), creating
    /// the state row if needed; otherwise puts `waiter` at the end of the state's queue. A
    /// release hands a queued waiter the lock with its `acquired` entries.
    async fn lock_or_enqueue(
        &self,
        workspace_id: &str,
        name: &str,
        waiter: &LockWaiter<'_>,
        live_since: Timestamp,
    ) -> Result<LockOrQueue>;

    /// Where waiter `waiter_id` (asking for `request`) stands; with `touch`, records that its
    /// client still waits at that time.
    async fn lock_wait_status(
        &self,
        workspace_id: &str,
        name: &str,
        waiter_id: &str,
        request: &LockRequest,
        touch: Option<Timestamp>,
    ) -> Result<WaitStatus>;

    /// Takes a waiter out of its queue; `false` when it was no longer there (handed the lock,
    /// or passed over).
    async fn leave_lock_queue(&self, waiter_id: &str) -> Result<bool>;

    /// A state's waiters seen since `live_since`, first in line first.
    async fn lock_queue(
        &self,
        workspace_id: &str,
        name: &str,
        live_since: Timestamp,
    ) -> Result<Vec<QueuedLock>>;

    /// Claims the workspace's locks taken before `locked_before` that were not flagged yet and
    /// returns them: each lock is returned once, across all replicas.
    async fn flag_stale_locks(
        &self,
        workspace_id: &str,
        locked_before: Timestamp,
    ) -> Result<Vec<StateRecord>>;
}
