//! Storage of the journal: the hash-chained audit log and the event stream (with the webhook
//! deliveries events create).

use async_trait::async_trait;

use crate::Result;
use crate::audit::{AuditEntry, AuditQuery, AuditRecord, ChainHead};
use crate::clock::Timestamp;
use crate::events::{Event, NewEvent};

/// Most pending rows sealed in one transaction.
pub const SEAL_BATCH: usize = 2_000;

/// Hands over everything queued for the journal: audit records and events, in order.
pub type TakeBatch<'a> = &'a mut (dyn FnMut() -> (Vec<AuditRecord>, Vec<NewEvent>) + Send);

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Seals the pending rows changes left (see [`crate::store::pending`]), then appends
    /// `records` and `events` after them. In one transaction per up to [`SEAL_BATCH`] pending
    /// rows (the batch goes with the last): records chained after the head (with
    /// [`crate::audit::chain`]), events numbered after the last event, one pending delivery
    /// per event for every enabled webhook of the event's workspace whose filter matches, and
    /// the sealed pending rows removed. The chain head row is locked for the transaction, so
    /// appends of several processes serialize and sequence numbers follow commit order.
    /// Returns every event stored, in sequence order: the last `events.len()` are `events`'.
    async fn append_journal(
        &self,
        records: &[AuditRecord],
        events: &[NewEvent],
    ) -> Result<Vec<Event>>;

    /// [`AuditStore::append_journal`] of a batch taken by calling `take` once the store is
    /// ready to write it, so that entries queued while it waited (for its write connection)
    /// join the batch. The default takes the batch at once.
    async fn append_queued(&self, take: TakeBatch<'_>) -> Result<Vec<Event>> {
        let (records, events) = take();
        self.append_journal(&records, &events).await
    }

    async fn audit_head(&self) -> Result<ChainHead>;

    /// How many pending rows wait to be sealed (the chain's unsealed tail).
    async fn unsealed_count(&self) -> Result<u64>;

    /// Entries matching the query, in sequence order (newest first if asked), after the cursor.
    async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;

    /// Removes up to `max` of the oldest entries, stopping at the first entry at or after
    /// `before`; the head keeps the hash of the last removed one. In the same transaction it
    /// seals pending rows and appends the `audit.prune` entry proving the removal
    /// ([`crate::audit::PruneProof`], made at `at`), so a pruned point without its proof is
    /// tampering. Returns how many went.
    async fn prune_audit(&self, before: Timestamp, max: i64, at: Timestamp) -> Result<u64>;

    /// Events after `after_seq`, oldest first; `workspace_ids: Some` keeps those workspaces'.
    async fn events_after(
        &self,
        after_seq: i64,
        workspace_ids: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<Event>>;

    /// The newest event's `seq` (0 before the first).
    async fn last_event_seq(&self) -> Result<i64>;

    /// Removes events older than `before`; returns how many went.
    async fn prune_events(&self, before: Timestamp) -> Result<u64>;
}
