//! What one journal append (a sealing round) writes, computed the same way for both stores:
//! the records chained after the head, the events numbered after the last event, and the head
//! the round leaves.

use crate::audit::{self, AuditEntry, AuditRecord};
use crate::events::{Event, NewEvent};
use crate::webhooks::event_body;

/// The chain head and event counter, as read under the head's row lock or as this process
/// last left them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalHead {
    pub last_seq: i64,
    pub last_hash: String,
    pub last_event_seq: i64,
}

/// An event ready to insert.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub event: Event,
    /// The payload as stored (JSON text).
    pub payload: String,
    /// The prefix filter that also matches its kind (`lock.acquired` → `lock.*`).
    pub prefix: String,
    /// The body of its webhook deliveries.
    pub body: String,
}

/// What one round appends after a head.
#[derive(Debug, Clone)]
pub struct Round {
    pub entries: Vec<AuditEntry>,
    pub events: Vec<PreparedEvent>,
    pub new_head: JournalHead,
}

impl Round {
    pub fn after(head: &JournalHead, records: &[AuditRecord], events: &[NewEvent]) -> Round {
        let entries = audit::chain(head.last_seq, &head.last_hash, records);
        let events: Vec<PreparedEvent> = events
            .iter()
            .zip(head.last_event_seq + 1..)
            .map(|(e, seq)| {
                let event = Event::from_new(seq, e);
                PreparedEvent {
                    body: event_body(&event),
                    payload: e.payload.to_string(),
                    prefix: prefix_filter(&e.kind),
                    event,
                }
            })
            .collect();
        let new_head = JournalHead {
            last_seq: entries.last().map_or(head.last_seq, |e| e.seq),
            last_hash: entries
                .last()
                .map_or_else(|| head.last_hash.clone(), |e| e.hash.clone()),
            last_event_seq: head.last_event_seq + events.len() as i64,
        };
        Round {
            entries,
            events,
            new_head,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.events.is_empty()
    }

    /// The stored events, in order.
    pub fn into_events(self) -> Vec<Event> {
        self.events.into_iter().map(|e| e.event).collect()
    }
}

/// `lock.acquired` → `lock.*`: the prefix filter that also matches an event kind.
fn prefix_filter(kind: &str) -> String {
    match kind.split_once('.') {
        Some((prefix, _)) => format!("{prefix}.*"),
        None => kind.to_owned(),
    }
}
