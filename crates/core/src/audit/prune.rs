//! The proof a prune leaves in the chain.
//!
//! Pruning removes the oldest entries, so what remains starts after a "pruned point" kept in
//! the chain head. Moving that point and deleting recent entries must not pass for pruning, so
//! the prune transaction also appends an `audit.prune` entry stating what it removed: the range,
//! the hash of the last removed entry (the first kept one links to it), the time of the newest
//! removed entry and the cut-off they were all older than. Verification checks the newest such
//! entry against the chain head (see [`super::verify_chain`]).

use serde_json::{Value, json};

use super::{AuditEntry, AuditRecord};
use crate::clock::Timestamp;

/// The action of the entries prunes append.
pub const PRUNE_ACTION: &str = "audit.prune";

/// What one prune removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneProof {
    /// The first and last removed sequence numbers.
    pub from_seq: i64,
    pub through_seq: i64,
    /// Hash of the last removed entry.
    pub last_hash: String,
    /// Time of the newest removed entry.
    pub newest_at: Timestamp,
    /// Only entries older than this were removed.
    pub before: Timestamp,
}

impl PruneProof {
    /// The `audit.prune` entry of a prune made at `at`.
    pub fn record(&self, at: Timestamp) -> AuditRecord {
        AuditRecord::new(at, "statehouse", PRUNE_ACTION).detail(json!({
            "pruned": self.through_seq - self.from_seq + 1,
            "from_seq": self.from_seq,
            "through_seq": self.through_seq,
            "last_hash": self.last_hash,
            "newest_at": self.newest_at,
            "before": self.before,
            "retention_ms": at.millis() - self.before.millis(),
        }))
    }

    /// The proof an `audit.prune` entry states; `None` when it states none.
    pub fn from_entry(entry: &AuditEntry) -> Option<PruneProof> {
        if entry.record.action != PRUNE_ACTION {
            return None;
        }
        let detail: Value = serde_json::from_str(entry.record.detail.as_deref()?).ok()?;
        let number = |key: &str| detail.get(key).and_then(Value::as_i64);
        Some(PruneProof {
            from_seq: number("from_seq")?,
            through_seq: number("through_seq")?,
            last_hash: detail.get("last_hash")?.as_str()?.to_owned(),
            newest_at: Timestamp(number("newest_at")?),
            before: Timestamp(number("before")?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{GENESIS_HASH, chain};

    #[test]
    fn proofs_round_trip_through_their_entry() {
        let proof = PruneProof {
            from_seq: 1,
            through_seq: 40,
            last_hash: "ab".repeat(32),
            newest_at: Timestamp(900),
            before: Timestamp(1_000),
        };
        let entry = chain(40, &proof.last_hash, &[proof.record(Timestamp(5_000))]).remove(0);
        assert_eq!(PruneProof::from_entry(&entry), Some(proof));
        let other = chain(
            0,
            GENESIS_HASH,
            &[AuditRecord::new(Timestamp(1), "x", "state.read")],
        );
        assert_eq!(PruneProof::from_entry(&other[0]), None);
    }
}
