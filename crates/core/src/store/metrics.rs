//! Figures about the whole store for `/metrics`: locks held, stale locks, audit entries not yet
//! sealed, webhook deliveries waiting; and the connection pool of this process. Read from the
//! database, so every replica sharing one PostgreSQL reports the same truth.

use async_trait::async_trait;

use crate::Result;
use crate::clock::Timestamp;

/// What the store holds right now (one read, at scrape time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreGauges {
    /// Live states whose lock is held.
    pub locks_held: u64,
    /// When the oldest lock still held was taken.
    pub oldest_lock_at: Option<Timestamp>,
    /// Locks held longer than their workspace's `stale_lock_after`.
    pub stale_locks: u64,
    /// Audit entries (and events) committed but not yet sealed into the hash chain.
    pub audit_pending: u64,
    /// When the oldest of them was committed.
    pub oldest_audit_pending_at: Option<Timestamp>,
    /// Webhook deliveries waiting for an attempt (first or retry).
    pub webhooks_pending: u64,
    /// Webhook deliveries that gave up (every attempt failed), until pruned.
    pub webhooks_failed: u64,
    /// Each held lock, oldest first; filled only when asked for (per-state labels are opt-in).
    pub held_locks: Vec<HeldLockAge>,
}

/// One held lock, for per-state metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLockAge {
    pub workspace: String,
    pub state: String,
    pub locked_at: Timestamp,
}

/// The database connections of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections checked out (running a statement or a transaction).
    pub in_use: u64,
    /// Connections open and waiting in the pool.
    pub idle: u64,
    /// Callers waiting for a connection.
    pub waiters: u64,
    /// The most connections the pool opens.
    pub max: u64,
}

/// At most this many held locks are listed per scrape (per-state labels).
pub const MAX_LISTED_LOCKS: u32 = 1000;

#[async_trait]
pub trait MetricsStore: Send + Sync {
    /// The store's figures at `now`; `list_locks` also lists the held locks (oldest first, at
    /// most [`MAX_LISTED_LOCKS`]).
    async fn store_gauges(&self, now: Timestamp, list_locks: bool) -> Result<StoreGauges>;

    /// This process's connection pool (no database round trip).
    fn pool_status(&self) -> PoolStatus;
}
