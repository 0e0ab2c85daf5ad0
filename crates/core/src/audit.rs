//! The audit log: who did what, to which target, from where, when, and how it ended.
//!
//! Entries form a hash chain. Each entry's `hash` is SHA-256 over the previous entry's hash and
//! a canonical encoding of its own content (sequence number included), so changing, removing,
//! reordering or inserting a row breaks the chain at that row, and removing the newest rows
//! shows against the chain head (the store keeps the newest sequence number and hash in a
//! one-row table updated in the same transaction as the appends). Pruning old entries keeps the
//! hash of the last pruned one, so what remains still verifies.
//!
//! Records reach the store through the journal's writer (see [`crate::journal`]), which appends
//! them in batches; [`verify_chain`] walks the stored chain page by page.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::access::Principal;
use crate::clock::Timestamp;
use crate::store::audit::AuditStore;
use crate::{Error, Result};

/// `prev_hash` of the first entry ever appended (and the pruned hash of a chain never pruned).
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How an audited attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    /// Refused for lack of credentials or rights (401, 403).
    Denied,
    /// Refused or failed for any other reason (bad input, conflicts, locks, errors).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Result<Outcome> {
        match text {
            "success" => Ok(Outcome::Success),
            "denied" => Ok(Outcome::Denied),
            "failed" => Ok(Outcome::Failed),
            other => Err(Error::BadRequest(format!(
                "unknown audit outcome {other:?}: use success, denied or failed"
            ))),
        }
    }
}

/// One audited attempt, before it is chained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub at: Timestamp,
    /// Who acted: the user's name, or a service token's name (`Principal::actor`); `local-cli`
    /// for operator commands, `unknown` when an unknown credential was presented.
    pub actor: String,
    pub token_id: Option<String>,
    pub token_name: Option<String>,
    pub source_ip: Option<String>,
    /// Dotted name such as `state.write`, `lock.acquire`, `token.create`.
    pub action: String,
    /// Workspace name, when the action happened in one.
    pub workspace: Option<String>,
    /// What was acted on: a state name, a token id, a webhook id, …
    pub target: Option<String>,
    pub outcome: Outcome,
    /// Why it was denied or failed (the error message the caller got).
    pub reason: Option<String>,
    /// Extra facts as JSON text, hashed exactly as stored.
    pub detail: Option<String>,
}

impl AuditRecord {
    /// A successful action by `actor`; refine with the builder methods.
    pub fn new(at: Timestamp, actor: impl Into<String>, action: &str) -> Self {
        AuditRecord {
            at,
            actor: actor.into(),
            token_id: None,
            token_name: None,
            source_ip: None,
            action: action.to_owned(),
            workspace: None,
            target: None,
            outcome: Outcome::Success,
            reason: None,
            detail: None,
        }
    }

    /// An action by a principal: its actor (user or token name), token and address.
    pub fn by(who: &Principal, action: &str, at: Timestamp) -> Self {
        AuditRecord {
            token_id: Some(who.token_id.clone()),
            token_name: Some(who.token_name.clone()),
            source_ip: who.source_ip.clone(),
            ..AuditRecord::new(at, who.actor(), action)
        }
    }

    pub fn workspace(mut self, name: impl Into<String>) -> Self {
        self.workspace = Some(name.into());
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn token(mut self, id: Option<String>, name: Option<String>) -> Self {
        self.token_id = id;
        self.token_name = name;
        self
    }

    pub fn source_ip(mut self, ip: Option<String>) -> Self {
        self.source_ip = ip;
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    pub fn denied(mut self, reason: impl Into<String>) -> Self {
        self.outcome = Outcome::Denied;
        self.reason = Some(reason.into());
        self
    }

    pub fn failed(mut self, reason: impl Into<String>) -> Self {
        self.outcome = Outcome::Failed;
        self.reason = Some(reason.into());
        self
    }

    /// Denied for 401/403 errors, failed for everything else; the reason is the message.
    pub fn refused_by(self, error: &Error) -> Self {
        let reason = match error {
            Error::Locked { holder_info } => format!("{error}: {}", truncate(holder_info, 500)),
            other => other.to_string(),
        };
        match error {
            Error::Unauthorized(_) | Error::Forbidden(_) | Error::TooManyRequests { .. } => {
                self.denied(reason)
            }
            _ => self.failed(reason),
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// An entry as stored: the record with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(flatten)]
    pub record: AuditRecord,
    pub prev_hash: String,
    pub hash: String,
}

/// The chain's anchors, kept in one row next to the entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    /// The newest appended entry (0 before the first).
    pub last_seq: i64,
    pub last_hash: String,
    /// Entries up to this one were pruned (0: none).
    pub pruned_seq: i64,
    /// Hash of the last pruned entry ([`GENESIS_HASH`] when none was).
    pub pruned_hash: String,
}

/// The hash of entry `seq` holding `record`, chained to `prev_hash`.
///
/// Canonical encoding: a version tag, the previous hash, the sequence number and timestamp as
/// 8 big-endian bytes, then every text field in a fixed order as a presence byte followed by
/// its length (4 bytes, big-endian) and bytes — so no two different entries encode alike.
pub fn entry_hash(prev_hash: &str, seq: i64, record: &AuditRecord) -> String {
    let mut h = Sha256::new();
    h.update(b"statehouse-audit-v1\n");
    h.update(prev_hash.as_bytes());
    h.update(seq.to_be_bytes());
    h.update(record.at.millis().to_be_bytes());
    let fields = [
        Some(record.actor.as_str()),
        record.token_id.as_deref(),
        record.token_name.as_deref(),
        record.source_ip.as_deref(),
        Some(record.action.as_str()),
        record.workspace.as_deref(),
        record.target.as_deref(),
        Some(record.outcome.as_str()),
        record.reason.as_deref(),
        record.detail.as_deref(),
    ];
    for field in fields {
        match field {
            None => h.update([0u8]),
            Some(text) => {
                h.update([1u8]);
                h.update((text.len() as u32).to_be_bytes());
                h.update(text.as_bytes());
            }
        }
    }
    hex::encode(h.finalize())
}

/// Chains `records` after `head`: the entries to insert, with sequence numbers and hashes.
/// Stores call this inside their append transaction, with the head row locked.
pub fn chain(last_seq: i64, last_hash: &str, records: &[AuditRecord]) -> Vec<AuditEntry> {
    let mut prev = last_hash.to_owned();
    let mut seq = last_seq;
    records
        .iter()
        .map(|record| {
            seq += 1;
            let hash = entry_hash(&prev, seq, record);
            AuditEntry {
                seq,
                record: record.clone(),
                prev_hash: std::mem::replace(&mut prev, hash.clone()),
                hash,
            }
        })
        .collect()
}

/// Which entries a query returns. Every filter is optional; `action` ending in `.*` matches
/// the prefix (`lock.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub target: Option<String>,
    pub action: Option<String>,
    pub workspace: Option<String>,
    pub outcome: Option<Outcome>,
    /// Entries at or after this time.
    pub since: Option<Timestamp>,
    /// Entries before this time.
    pub until: Option<Timestamp>,
    /// Continue after this sequence number (in the query's order).
    pub cursor: Option<i64>,
    pub newest_first: bool,
    pub limit: i64,
}

impl AuditQuery {
    /// The whole log, oldest first, from `after` on.
    pub fn all_after(after: i64, limit: i64) -> Self {
        AuditQuery {
            cursor: Some(after),
            limit,
            ..AuditQuery::default()
        }
    }

    /// `action` as a SQL `LIKE` pattern or exact value: `(value, is_prefix)`.
    pub fn action_pattern(&self) -> Option<(String, bool)> {
        self.action.as_ref().map(|a| match a.strip_suffix('*') {
            Some(prefix) => (prefix.to_owned(), true),
            None => (a.clone(), false),
        })
    }
}

/// What went wrong with the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// An entry's content no longer matches its hash.
    Altered,
    /// Entries are missing in the middle of the chain.
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
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

const VERIFY_PAGE: i64 = 1_000;

/// Walks the stored chain, a page at a time, from the pruned point to the head, and reports the
/// first altered, removed, reordered or inserted entry, or missing newest entries. Entries
/// appended while it runs are not checked (they are beyond the head it started from).
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
    let mut cursor = 0;
    let problem = 'walk: loop {
        let page = store
            .audit_entries(&AuditQuery::all_after(cursor, VERIFY_PAGE))
            .await?;
        let Some(last) = page.last() else { break None };
        cursor = last.seq;
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
        None => check_end(store, &head, expected - 1, &prev).await?,
    };
    Ok(VerifyReport {
        checked,
        head,
        problem,
    })
}

fn check_entry(entry: &AuditEntry, expected: i64, prev: &str) -> Option<ChainProblem> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: i64) -> AuditRecord {
        AuditRecord::new(Timestamp(1_000 + n), "ci", "state.write")
            .workspace("default")
            .target(format!("s{n}"))
    }

    #[test]
    fn chain_links_each_entry_to_the_previous() {
        let entries = chain(0, GENESIS_HASH, &[record(1), record(2), record(3)]);
        assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(entries[0].prev_hash, GENESIS_HASH);
        assert_eq!(entries[1].prev_hash, entries[0].hash);
        assert_eq!(entries[2].prev_hash, entries[1].hash);
        for e in &entries {
            assert_eq!(e.hash, entry_hash(&e.prev_hash, e.seq, &e.record));
            assert!(check_entry(e, e.seq, &e.prev_hash).is_none());
        }
        // Continuing a chain gives the same entries as building it at once.
        let first = chain(0, GENESIS_HASH, &[record(1)]);
        let rest = chain(1, &first[0].hash, &[record(2), record(3)]);
        assert_eq!(rest, entries[1..]);
    }

    #[test]
    fn every_field_is_in_the_hash() {
        let base = record(1);
        let h = |r: &AuditRecord| entry_hash(GENESIS_HASH, 1, r);
        let variants = [
            AuditRecord {
                at: Timestamp(5),
                ..base.clone()
            },
            AuditRecord {
                actor: "x".into(),
                ..base.clone()
            },
            base.clone().token(Some("t".into()), None),
            base.clone().token(None, Some("t".into())),
            base.clone().source_ip(Some("1.2.3.4".into())),
            AuditRecord {
                action: "state.read".into(),
                ..base.clone()
            },
            base.clone().workspace("other"),
            base.clone().target("other"),
            base.clone().failed("boom"),
            base.clone().detail(serde_json::json!({"a": 1})),
        ];
        for v in &variants {
            assert_ne!(h(v), h(&base), "{v:?}");
        }
        assert_ne!(entry_hash(GENESIS_HASH, 2, &base), h(&base), "seq");
        assert_ne!(entry_hash(&"1".repeat(64), 1, &base), h(&base), "prev");
        // Field boundaries are unambiguous.
        let a = AuditRecord::new(Timestamp(0), "ab", "c");
        let b = AuditRecord::new(Timestamp(0), "a", "bc");
        assert_ne!(h(&a), h(&b));
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

    #[test]
    fn refusals_map_to_outcomes() {
        let r = record(1).refused_by(&Error::Forbidden("no".into()));
        assert_eq!(
            (r.outcome, r.reason.as_deref()),
            (Outcome::Denied, Some("no"))
        );
        let r = record(1).refused_by(&Error::Conflict("serial".into()));
        assert_eq!(r.outcome, Outcome::Failed);
        let r = record(1).refused_by(&Error::Locked {
            holder_info: "{\"ID\":\"x\"}".into(),
        });
        assert_eq!(r.outcome, Outcome::Failed);
        assert!(r.reason.unwrap_or_default().contains("\"ID\""));
    }
}
