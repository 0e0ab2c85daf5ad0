//! States: live, soft-deleted, restored, purged; the one-shot overwrite window.

use async_trait::async_trait;

use super::pending::{Journaling, no_journal};
use crate::Result;
use crate::clock::Timestamp;
use crate::model::{DeletedState, StateFilter, StateRecord};

#[async_trait]
pub trait StateStore: Send + Sync {
    async fn state(&self, workspace_id: &str, name: &str) -> Result<Option<StateRecord>>;
    /// The live state, created empty (no versions) when missing.
    async fn ensure_state(
        &self,
        workspace_id: &str,
        name: &str,
        at: Timestamp,
    ) -> Result<StateRecord>;
    /// Live states in name order, filtered and paged by `filter`.
    async fn list_states(
        &self,
        workspace_id: &str,
        filter: &StateFilter,
    ) -> Result<Vec<StateRecord>>;
    /// Soft delete: the state stops being live, its versions stay. `Locked` while someone
    /// holds its lock; false when there is no such live state.
    async fn delete_state_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        by: &str,
        at: Timestamp,
        journal: Journaling<'_, bool>,
    ) -> Result<bool>;
    async fn delete_state(
        &self,
        workspace_id: &str,
        name: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<bool> {
        self.delete_state_journaled(workspace_id, name, by, at, &no_journal::<bool>)
            .await
    }
    async fn list_deleted_states(&self, workspace_id: &str) -> Result<Vec<DeletedState>>;
    /// Makes a deleted state live again; `Conflict` when a live state has its name.
    async fn restore_state_journaled(
        &self,
        workspace_id: &str,
        state_id: &str,
        at: Timestamp,
        journal: Journaling<'_, bool>,
    ) -> Result<bool>;
    async fn restore_state(
        &self,
        workspace_id: &str,
        state_id: &str,
        at: Timestamp,
    ) -> Result<bool> {
        self.restore_state_journaled(workspace_id, state_id, at, &no_journal::<bool>)
            .await
    }
    /// Removes a deleted state and all its versions for good; false when not a deleted state.
    async fn purge_state_journaled(
        &self,
        workspace_id: &str,
        state_id: &str,
        journal: Journaling<'_, bool>,
    ) -> Result<bool>;
    async fn purge_state(&self, workspace_id: &str, state_id: &str) -> Result<bool> {
        self.purge_state_journaled(workspace_id, state_id, &no_journal::<bool>)
            .await
    }
    /// Opens (or with `None` closes) the one-shot window for a write that breaks serial/lineage
    /// protection; false when there is no such live state.
    async fn set_overwrite_until_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        until: Option<Timestamp>,
        journal: Journaling<'_, bool>,
    ) -> Result<bool>;
    async fn set_overwrite_until(
        &self,
        workspace_id: &str,
        name: &str,
        until: Option<Timestamp>,
    ) -> Result<bool> {
        self.set_overwrite_until_journaled(workspace_id, name, until, &no_journal::<bool>)
            .await
    }
}
