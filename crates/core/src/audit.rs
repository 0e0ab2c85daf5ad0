//! The audit log: who did what, to which target, from where, when, and how it ended.
//!
//! Entries form a hash chain. Each entry's `hash` is SHA-256 over the previous entry's hash and
//! a canonical encoding of its own content (sequence number included), so changing, removing,
//! reordering or inserting a row breaks the chain at that row, and removing the newest rows
//! shows against the chain head (the store keeps the newest sequence number and hash in a
//! one-row table updated in the same transaction as the appends). Pruning old entries keeps the
//! hash of the last pruned one, so what remains still verifies, and appends an entry proving
//! what it removed ([`PruneProof`]).
//!
//! A change stores its record in its own transaction, as a pending row that the journal's
//! writer seals into the chain moments later (see [`crate::store::pending`]); reads and
//! refusals reach the store through the writer's queue (see [`crate::journal`]), appended in
//! batches. [`verify_chain`] walks the stored chain page by page.

mod prune;
mod verify;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use self::prune::{PRUNE_ACTION, PruneProof};
pub use self::verify::{ChainProblem, ProblemKind, VerifyReport, verify_chain};
use crate::access::Principal;
use crate::clock::Timestamp;
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
            assert!(verify::check_entry(e, e.seq, &e.prev_hash).is_none());
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
