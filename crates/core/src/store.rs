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
pub mod index_update;
pub mod keys;
pub mod locks;
pub mod metrics;
pub mod nul;
pub mod objects;
pub mod pending;
pub mod seal;
pub mod states;
pub mod tokens;
pub mod versions;
pub mod webhooks;
pub mod workspaces;

use async_trait::async_trait;

pub mod search;

use crate::Result;
use crate::clock::Timestamp;

/// Every store trait, for callers of [`Store`]'s methods: `use statehouse_core::store::prelude::*;`.
pub mod prelude {
    pub use super::Store;
    pub use super::accounts::AccountStore;
    pub use super::audit::AuditStore;
    pub use super::backups::BackupStore;
    pub use super::keys::KeyStore;
    pub use super::locks::LockStore;
    pub use super::metrics::MetricsStore;
    pub use super::objects::ObjectStore;
    pub use super::search::SearchStore;
    pub use super::states::StateStore;
    pub use super::tokens::TokenStore;
    pub use super::versions::VersionStore;
    pub use super::webhooks::WebhookStore;
    pub use super::workspaces::WorkspaceStore;
}

#[async_trait]
pub trait Store:
    accounts::AccountStore
    + audit::AuditStore
    + backups::BackupStore
    + keys::KeyStore
    + search::SearchStore
    + webhooks::WebhookStore
    + workspaces::WorkspaceStore
    + tokens::TokenStore
    + states::StateStore
    + versions::VersionStore
    + locks::LockStore
    + metrics::MetricsStore
    + objects::ObjectStore
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
}
