//! The one storage abstraction. Two implementations (SQLite, PostgreSQL) pass one conformance
//! suite (`statehouse-store-conformance`).
//!
//! Contract every implementation keeps:
//! - each mutating call is one transaction; state writes and lock changes decide with
//!   [`crate::rules`] on rows read inside that transaction (row-locked on PostgreSQL, a
//!   write transaction on SQLite), so concurrent callers and processes serialize correctly;
//! - "live" states are those not soft-deleted; at most one live state per (workspace, name);
//! - timestamps are given by the caller (time is injected);
//! - a change made through a `*_journaled` method stores the journal entries its
//!   [`Journaling`] gives for the outcome it returns in the change's own transaction (see
//!   [`pending`]) — except a `false` ("no such …") outcome, which changed nothing; errors store
//!   nothing. The plain method of the same name records nothing (tests, tools).

pub mod accounts;
pub mod audit;
pub mod backups;
pub mod backups_sql;
pub mod keys;
pub mod keys_sql;
pub mod nul;
pub mod pending;
pub mod seal;
pub mod webhooks;

use async_trait::async_trait;

pub mod search;
pub mod search_sql;

use self::pending::{Journaling, no_journal};
use crate::Result;
use crate::access::Token;
use crate::clock::Timestamp;
use crate::crypto::SealedBody;
use crate::model::{
    DeletedState, LockOutcome, LockRequest, NewToken, StateFilter, StateRecord, UnlockOutcome,
    UnlockRequest, VersionMeta, VersionWrite, Workspace, WriteOutcome,
};

#[async_trait]
pub trait Store:
    accounts::AccountStore
    + audit::AuditStore
    + backups::BackupStore
    + keys::KeyStore
    + search::SearchStore
    + webhooks::WebhookStore
    + Send
    + Sync
    + 'static
{
    /// Which backend this is ("sqlite" or "postgres"), for logs.
    fn kind(&self) -> &'static str;

    /// Cheap round trip to the database (readiness).
    async fn ping(&self) -> Result<()>;

    /// Sets a named instance flag once; true for the one caller that set it (first-start bootstrap).
    async fn claim_flag(&self, name: &str, at: Timestamp) -> Result<bool>;

    // Workspaces

    /// Fails with `Conflict` when the name is taken.
    async fn create_workspace(&self, workspace: &Workspace) -> Result<()>;
    async fn workspace_by_name(&self, name: &str) -> Result<Option<Workspace>>;
    async fn list_workspaces(&self) -> Result<Vec<Workspace>>;
    /// Stores the workspace's name, serial protection and settings (by id). False when there
    /// is no such workspace; `Conflict` when the new name is taken.
    async fn update_workspace(&self, workspace: &Workspace) -> Result<bool>;
    /// Deletes an empty workspace with its tokens and its backup settings. `Conflict` while it
    /// has states (live or soft-deleted), backup databases, backup targets or notifiers; false
    /// when there is no such workspace.
    async fn delete_workspace(&self, workspace_id: &str) -> Result<bool>;

    // Tokens

    async fn create_token(&self, token: &NewToken) -> Result<Token>;
    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<Token>>;
    /// All tokens (revoked too); `Some(ws)`: only that workspace's.
    async fn list_tokens(&self, workspace_id: Option<&str>) -> Result<Vec<Token>>;
    /// False when there is no such unrevoked token.
    async fn revoke_token(&self, token_id: &str, at: Timestamp) -> Result<bool>;

    // States

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

    /// Claims the workspace's locks taken before `locked_before` that were not flagged yet and
    /// returns them: each lock is returned once, across all replicas.
    async fn flag_stale_locks(
        &self,
        workspace_id: &str,
        locked_before: Timestamp,
    ) -> Result<Vec<StateRecord>>;
}
