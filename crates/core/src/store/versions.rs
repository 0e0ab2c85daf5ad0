//! A state's versions: bodies, history, kept marks, retention, and appending a write.

use async_trait::async_trait;

use super::pending::{Journaling, no_journal};
use crate::Result;
use crate::clock::Timestamp;
use crate::crypto::SealedBody;
use crate::model::{VersionMeta, VersionWrite, WriteOutcome};

#[async_trait]
pub trait VersionStore: Send + Sync {
    /// The current version of a live state with its sealed body.
    async fn current_body(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<(VersionMeta, SealedBody)>>;
    /// Any version of any state (deleted ones too), by number.
    async fn version_body(
        &self,
        state_id: &str,
        version_no: i64,
    ) -> Result<Option<(VersionMeta, SealedBody)>>;
    /// Newest first: up to `limit` versions numbered below `before` (all when `None`).
    async fn list_versions(
        &self,
        state_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<VersionMeta>>;
    /// Marks a version as kept (spared by retention) or not; false when there is no such version.
    async fn set_version_kept_journaled(
        &self,
        state_id: &str,
        version_no: i64,
        kept: bool,
        journal: Journaling<'_, bool>,
    ) -> Result<bool>;
    async fn set_version_kept(&self, state_id: &str, version_no: i64, kept: bool) -> Result<bool> {
        self.set_version_kept_journaled(state_id, version_no, kept, &no_journal::<bool>)
            .await
    }
    /// Deletes up to `limit` versions of the workspace's states (live or deleted) that are not
    /// current, not kept, not among their state's newest `keep_last` (when given) and created
    /// before `created_before` (when given); returns how many went. With neither given, nothing
    /// goes.
    async fn prune_versions(
        &self,
        workspace_id: &str,
        keep_last: Option<i64>,
        created_before: Option<Timestamp>,
        limit: i64,
    ) -> Result<u64>;

    /// Appends a version after [`crate::rules::decide_write`]. `Conflict` when the live state
    /// is no longer `write.state_id`.
    async fn write_version_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        write: VersionWrite,
        journal: Journaling<'_, WriteOutcome>,
    ) -> Result<WriteOutcome>;
    async fn write_version(
        &self,
        workspace_id: &str,
        name: &str,
        write: VersionWrite,
    ) -> Result<WriteOutcome> {
        self.write_version_journaled(workspace_id, name, write, &no_journal::<WriteOutcome>)
            .await
    }
}
