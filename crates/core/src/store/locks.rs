//! State locks: taking, releasing, force-unlocking, and flagging stale ones.

use async_trait::async_trait;

use super::pending::{Journaling, no_journal};
use crate::Result;
use crate::clock::Timestamp;
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

    /// Claims the workspace's locks taken before `locked_before` that were not flagged yet and
    /// returns them: each lock is returned once, across all replicas.
    async fn flag_stale_locks(
        &self,
        workspace_id: &str,
        locked_before: Timestamp,
    ) -> Result<Vec<StateRecord>>;
}
