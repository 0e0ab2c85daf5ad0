//! What a change writes for the journal inside its own transaction.
//!
//! A state write, lock change, delete, … stores its audit record and event as one *pending* row
//! in the same transaction as the change, so the change and its entry commit together (or not
//! at all, also across `kill -9`). The journal writer of any process then *seals* pending rows:
//! under the chain head's row lock it gives each record its sequence number and hash and each
//! event its number, in the order the rows became visible, and removes them from the pending
//! table — in one transaction. Until then they are the chain's unsealed tail.
//!
//! A pending row is one JSON document (so PostgreSQL takes any text, NULs included, escaped by
//! JSON) plus the change's time.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{AuditRecord, Outcome};
use crate::clock::Timestamp;
use crate::events::NewEvent;
use crate::{Error, Result};

/// The journal entries of one change: its audit records (usually one) and the events it emits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalEntries {
    pub records: Vec<AuditRecord>,
    pub events: Vec<NewEvent>,
}

/// Makes a change's journal entries from its outcome. Stores call it inside the change's
/// transaction, once the outcome is decided, and store what it gives before committing.
pub type Journaling<'a, T> = &'a (dyn Fn(&T) -> JournalEntries + Send + Sync);

/// A [`Journaling`] that records nothing (tests, tools working below the services).
pub fn no_journal<T>(_: &T) -> JournalEntries {
    JournalEntries::default()
}

/// Format version of the pending row text.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Row {
    v: u32,
    #[serde(default)]
    records: Vec<Record>,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Serialize, Deserialize)]
struct Record {
    at: i64,
    actor: String,
    token_id: Option<String>,
    token_name: Option<String>,
    source_ip: Option<String>,
    action: String,
    workspace: Option<String>,
    target: Option<String>,
    outcome: String,
    reason: Option<String>,
    detail: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Event {
    at: i64,
    kind: String,
    workspace_id: Option<String>,
    workspace: Option<String>,
    subject: Option<String>,
    actor: String,
    payload: serde_json::Value,
}

impl JournalEntries {
    /// One record and, maybe, one event.
    pub fn of(record: AuditRecord, event: Option<NewEvent>) -> JournalEntries {
        JournalEntries {
            records: vec![record],
            events: event.into_iter().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.events.is_empty()
    }

    /// Adds `other`'s entries after these.
    pub fn and(mut self, other: JournalEntries) -> JournalEntries {
        self.records.extend(other.records);
        self.events.extend(other.events);
        self
    }

    /// The change's time, stored beside the row (the first record's, else the first event's).
    pub fn at(&self) -> Timestamp {
        self.records
            .first()
            .map(|r| r.at)
            .or(self.events.first().map(|e| e.at))
            .unwrap_or(Timestamp(0))
    }

    /// The pending row's text.
    pub fn encode(&self) -> String {
        let row = Row {
            v: VERSION,
            records: (self.records.iter())
                .map(|r| Record {
                    at: r.at.millis(),
                    actor: r.actor.clone(),
                    token_id: r.token_id.clone(),
                    token_name: r.token_name.clone(),
                    source_ip: r.source_ip.clone(),
                    action: r.action.clone(),
                    workspace: r.workspace.clone(),
                    target: r.target.clone(),
                    outcome: r.outcome.as_str().to_owned(),
                    reason: r.reason.clone(),
                    detail: r.detail.clone(),
                })
                .collect(),
            events: (self.events.iter())
                .map(|e| Event {
                    at: e.at.millis(),
                    kind: e.kind.clone(),
                    workspace_id: e.workspace_id.clone(),
                    workspace: e.workspace.clone(),
                    subject: e.subject.clone(),
                    actor: e.actor.clone(),
                    payload: e.payload.clone(),
                })
                .collect(),
        };
        // Serializing these plain structs cannot fail.
        serde_json::to_string(&row).unwrap_or_default()
    }

    /// Reads a pending row's text.
    pub fn decode(text: &str) -> Result<JournalEntries> {
        let row: Row = serde_json::from_str(text)
            .map_err(|e| Error::Internal(format!("unreadable pending journal row: {e}")))?;
        if row.v != VERSION {
            return Err(Error::Internal(format!(
                "pending journal row of unknown format {}",
                row.v
            )));
        }
        let mut records = Vec::with_capacity(row.records.len());
        for r in row.records {
            records.push(AuditRecord {
                at: Timestamp(r.at),
                actor: r.actor,
                token_id: r.token_id,
                token_name: r.token_name,
                source_ip: r.source_ip,
                action: r.action,
                workspace: r.workspace,
                target: r.target,
                outcome: Outcome::parse(&r.outcome).map_err(|_| {
                    Error::Internal(format!("pending audit outcome {:?} is unknown", r.outcome))
                })?,
                reason: r.reason,
                detail: r.detail,
            });
        }
        let events = (row.events.into_iter())
            .map(|e| NewEvent {
                at: Timestamp(e.at),
                kind: e.kind,
                workspace_id: e.workspace_id,
                workspace: e.workspace,
                subject: e.subject,
                actor: e.actor,
                payload: e.payload,
            })
            .collect();
        Ok(JournalEntries { records, events })
    }

    /// What a pending row that cannot be read is sealed as, so the chain shows it (and the
    /// sealing of every other row goes on).
    pub fn unreadable(id: i64, at: Timestamp, error: &Error) -> JournalEntries {
        JournalEntries::of(
            AuditRecord::new(at, "statehouse", "audit.unreadable")
                .failed(error.to_string())
                .detail(json!({"pending_id": id})),
            None,
        )
    }
}

/// Pending rows as read for sealing: their id, and their entries (or why they cannot be read).
pub fn decode_rows(rows: Vec<(i64, i64, String)>) -> Vec<(i64, JournalEntries)> {
    rows.into_iter()
        .map(|(id, at, text)| {
            let entries = JournalEntries::decode(&text)
                .unwrap_or_else(|e| JournalEntries::unreadable(id, Timestamp(at), &e));
            (id, entries)
        })
        .collect()
}

/// Splits sealed rows into their records and events, in row order.
pub fn split(rows: &[(i64, JournalEntries)]) -> (Vec<AuditRecord>, Vec<NewEvent>) {
    let records = rows.iter().flat_map(|(_, e)| e.records.clone()).collect();
    let events = rows.iter().flat_map(|(_, e)| e.events.clone()).collect();
    (records, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_with_any_text() {
        let entries = JournalEntries::of(
            AuditRecord::new(Timestamp(7), "x\0y", "lock.acquire")
                .workspace("w\\s")
                .target("t\u{1}")
                .failed("bad \0 name")
                .detail(json!({"info": "a\u{0}b"})),
            Some(NewEvent {
                at: Timestamp(8),
                kind: "lock.acquired".into(),
                workspace_id: Some("id".into()),
                workspace: None,
                subject: Some("s\0".into()),
                actor: "x\0y".into(),
                payload: json!({"n": 1, "f": 1.5, "nested": [null, true, "\0"]}),
            }),
        );
        let text = entries.encode();
        assert!(!text.contains('\0'), "JSON escapes NUL");
        assert_eq!(JournalEntries::decode(&text).ok(), Some(entries.clone()));
        assert_eq!(entries.at(), Timestamp(7));
        assert!(JournalEntries::default().is_empty());
    }

    #[test]
    fn unreadable_rows_are_sealed_as_such() {
        let rows = decode_rows(vec![(3, 42, "not json".into())]);
        let record = rows[0].1.records.first().cloned();
        assert_eq!(
            record
                .as_ref()
                .map(|r| (r.action.as_str(), r.at, r.outcome)),
            Some(("audit.unreadable", Timestamp(42), Outcome::Failed))
        );
    }
}
