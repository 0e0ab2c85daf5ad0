//! Checking the stored chain: every entry, the head, and the proof of the last prune.

use serde::Serialize;

use super::{AuditEntry, AuditQuery, ChainHead, PRUNE_ACTION, PruneProof, entry_hash};
use crate::Result;
use crate::store::audit::AuditStore;

/// What went wrong with the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// An entry's content no longer matches its hash.
    Altered,
    /// Entries are missing in the middle of the chain, or its oldest entries are gone without
    /// the `audit.prune` entry that proves they were pruned.
    Removed,
    /// An entry does not follow its predecessor (reordered, or a row replaced).
    Broken,
    /// An entry exists where the chain has none.
    Inserted,
    /// The newest entries are missing (or the chain head was changed).
    Truncated,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainProblem {
    /// The first sequence number where the chain breaks.
    pub seq: i64,
    pub kind: ProblemKind,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Entries whose hashes were checked.
    pub checked: u64,
    pub head: ChainHead,
    /// `None`: the chain is intact.
    pub problem: Option<ChainProblem>,
    /// Entries of committed changes not sealed into the chain yet (the journal writer seals
    /// them moments after their change; they are not covered by this check).
    pub unsealed: u64,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

const VERIFY_PAGE: i64 = 1_000;

/// Walks every stored entry, a page at a time, in sequence order, and reports the first
/// altered, removed, reordered or inserted entry, missing newest entries, or a pruned point
/// without its proof. Entries appended while it runs are not checked (they are beyond the
/// head it started from).
pub async fn verify_chain(store: &dyn AuditStore) -> Result<VerifyReport> {
    let report = verify_once(store).await?;
    if report.problem.is_some() {
        // A prune running at the same time removes the oldest entries under our feet: look
        // again from the new pruned point before calling it tampering.
        let head = store.audit_head().await?;
        if head.pruned_seq != report.head.pruned_seq {
            return verify_once(store).await;
        }
    }
    Ok(report)
}

async fn verify_once(store: &dyn AuditStore) -> Result<VerifyReport> {
    let head = store.audit_head().await?;
    let mut checked = 0u64;
    let mut expected = head.pruned_seq + 1;
    let mut prev = head.pruned_hash.clone();
    // From the very first stored row, whatever its number: rows at or below the pruned point
    // (zero and negative numbers included) are insertions.
    let mut cursor = None;
    let problem = 'walk: loop {
        let page = store
            .audit_entries(&AuditQuery {
                cursor,
                limit: VERIFY_PAGE,
                ..AuditQuery::default()
            })
            .await?;
        let Some(last) = page.last() else { break None };
        cursor = Some(last.seq);
        for entry in &page {
            if entry.seq > head.last_seq {
                break 'walk None;
            }
            if let Some(problem) = check_entry(entry, expected, &prev) {
                break 'walk Some(problem);
            }
            prev = entry.hash.clone();
            expected += 1;
            checked += 1;
        }
    };
    let problem = match problem {
        Some(p) => Some(p),
        None => match check_end(store, &head, expected - 1, &prev).await? {
            Some(p) => Some(p),
            None => check_pruned(store, &head).await?,
        },
    };
    Ok(VerifyReport {
        checked,
        head,
        problem,
        unsealed: store.unsealed_count().await?,
    })
}

pub(super) fn check_entry(entry: &AuditEntry, expected: i64, prev: &str) -> Option<ChainProblem> {
    let seq = entry.seq;
    if seq < expected {
        return Some(ChainProblem {
            seq,
            kind: ProblemKind::Inserted,
            message: format!(
                "entry {seq} should not exist: the chain continues at entry {expected} (inserted, or left behind by pruning)"
            ),
        });
    }
    if seq > expected {
        let range = if seq - 1 == expected {
            format!("entry {expected} is")
        } else {
            format!("entries {expected} to {} are", seq - 1)
        };
        return Some(ChainProblem {
            seq: expected,
            kind: ProblemKind::Removed,
            message: format!("{range} missing: removed from the log"),
        });
    }
    if entry.prev_hash != prev {
        return Some(ChainProblem {
            seq,
            kind: ProblemKind::Broken,
            message: format!(
                "entry {seq} does not follow entry {}: its previous-hash does not match (entries reordered, replaced or inserted)",
                seq - 1
            ),
        });
    }
    if entry_hash(&entry.prev_hash, seq, &entry.record) != entry.hash {
        return Some(ChainProblem {
            seq,
            kind: ProblemKind::Altered,
            message: format!("entry {seq} was altered: its content does not match its hash"),
        });
    }
    None
}

async fn check_end(
    store: &dyn AuditStore,
    head: &ChainHead,
    last_checked: i64,
    last_hash: &str,
) -> Result<Option<ChainProblem>> {
    if last_checked < head.last_seq {
        let first = last_checked + 1;
        let range = if first == head.last_seq {
            format!("entry {first} is")
        } else {
            format!("entries {first} to {} are", head.last_seq)
        };
        return Ok(Some(ChainProblem {
            seq: first,
            kind: ProblemKind::Truncated,
            message: format!(
                "{range} missing: the newest entries were removed (the chain head says the log ends at {})",
                head.last_seq
            ),
        }));
    }
    if last_hash != head.last_hash {
        return Ok(Some(ChainProblem {
            seq: head.last_seq,
            kind: ProblemKind::Truncated,
            message: format!(
                "entry {} does not match the chain head's hash: the newest entries were replaced or the head was changed",
                head.last_seq
            ),
        }));
    }
    // Rows beyond the head: appended since we started (fine, the head moved) or inserted.
    let beyond = store
        .audit_entries(&AuditQuery::all_after(head.last_seq, 1))
        .await?;
    if let Some(entry) = beyond.first() {
        let now = store.audit_head().await?;
        if entry.seq > now.last_seq {
            return Ok(Some(ChainProblem {
                seq: entry.seq,
                kind: ProblemKind::Inserted,
                message: format!(
                    "entry {} lies beyond the chain head ({}): it was inserted",
                    entry.seq, now.last_seq
                ),
            }));
        }
    }
    Ok(None)
}

/// A chain that starts after entry N must hold the `audit.prune` entry of the prune that
/// removed entry N, stating N, its hash, and a cut-off its removed entries were older than:
/// moving the pruned point and deleting entries cannot forge that without breaking the chain.
async fn check_pruned(store: &dyn AuditStore, head: &ChainHead) -> Result<Option<ChainProblem>> {
    if head.pruned_seq == 0 {
        return Ok(None);
    }
    let newest = store
        .audit_entries(&AuditQuery {
            action: Some(PRUNE_ACTION.to_owned()),
            cursor: Some(head.last_seq + 1),
            newest_first: true,
            limit: 1,
            ..AuditQuery::default()
        })
        .await?;
    let unproven = |why: String| {
        Some(ChainProblem {
            seq: head.pruned_seq,
            kind: ProblemKind::Removed,
            message: format!(
                "entries up to {} are gone, but {why}: they were removed, not pruned by retention",
                head.pruned_seq
            ),
        })
    };
    let Some(entry) = newest.first() else {
        return Ok(unproven(
            "no audit.prune entry records their removal".into(),
        ));
    };
    let Some(proof) = PruneProof::from_entry(entry) else {
        return Ok(unproven(format!(
            "the last audit.prune entry ({}) does not say what it removed",
            entry.seq
        )));
    };
    if proof.through_seq != head.pruned_seq || proof.last_hash != head.pruned_hash {
        return Ok(unproven(format!(
            "the last audit.prune entry ({}) records the removal of entries up to {} (hash {})",
            entry.seq, proof.through_seq, proof.last_hash
        )));
    }
    if proof.newest_at >= proof.before || proof.before > entry.record.at {
        return Ok(unproven(format!(
            "the last audit.prune entry ({}) records entries that were not older than its cut-off",
            entry.seq
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditRecord, GENESIS_HASH, chain};
    use crate::clock::Timestamp;

    fn record(n: i64) -> AuditRecord {
        AuditRecord::new(Timestamp(1_000 + n), "ci", "state.write")
            .workspace("default")
            .target(format!("s{n}"))
    }

    #[test]
    fn entry_checks_name_the_problem() {
        let entries = chain(0, GENESIS_HASH, &[record(1), record(2)]);
        let mut altered = entries[1].clone();
        altered.record.actor = "mallory".into();
        assert_eq!(
            check_entry(&altered, 2, &entries[0].hash).map(|p| p.kind),
            Some(ProblemKind::Altered)
        );
        assert_eq!(
            check_entry(&entries[1], 1, GENESIS_HASH).map(|p| p.kind),
            Some(ProblemKind::Removed)
        );
        assert_eq!(
            check_entry(&entries[0], 2, &entries[0].hash).map(|p| p.kind),
            Some(ProblemKind::Inserted)
        );
        let mut moved = entries[1].clone();
        moved.seq = 1;
        assert_eq!(
            check_entry(&moved, 1, GENESIS_HASH).map(|p| p.kind),
            Some(ProblemKind::Broken)
        );
    }
}
