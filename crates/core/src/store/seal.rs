//! What one journal append (a sealing round) writes, computed the same way for both stores:
//! the records chained after the head, the events numbered after the last event, and the head
//! the round leaves.

use crate::Error;
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

/// The first rows stored beyond the head, read when a round failed because a number it appends
/// was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beyond {
    pub last_seq: i64,
    /// The first audit entry after `last_seq`.
    pub entry: Option<i64>,
    pub last_event_seq: i64,
    /// The first event after `last_event_seq`.
    pub event: Option<i64>,
}

impl Beyond {
    /// Why nothing can be appended: a row already holds a number past the head. Statehouse
    /// numbers rows under the head's lock, so someone with database access inserted it; every
    /// round stops there until it is removed (changes still commit, their entries pending).
    /// `None` when no such row exists (the conflict was something else).
    pub fn blocked(&self) -> Option<Error> {
        let (what, seq, head) = match (self.entry, self.event) {
            (Some(seq), _) => ("audit entry", seq, format!("entry {}", self.last_seq)),
            (None, Some(seq)) => ("event", seq, format!("event {}", self.last_event_seq)),
            (None, None) => return None,
        };
        Some(Error::store(format!(
            "{what} {seq} already exists beyond the chain head ({head}): it was inserted into the \
             database, and no audit entry or event can be sealed until it is removed; \
             `statehouse audit verify` reports it — investigate, then delete that row or restore \
             the database from a backup you trust"
        )))
    }
}

/// `lock.acquired` → `lock.*`: the prefix filter that also matches an event kind.
fn prefix_filter(kind: &str) -> String {
    match kind.split_once('.') {
        Some((prefix, _)) => format!("{prefix}.*"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_row_beyond_the_head_is_named() {
        let beyond = |entry, event| Beyond {
            last_seq: 7,
            entry,
            last_event_seq: 3,
            event,
        };
        assert!(beyond(None, None).blocked().is_none());
        let entry = beyond(Some(8), Some(4)).blocked().unwrap().to_string();
        assert!(
            entry.contains("audit entry 8 already exists beyond the chain head (entry 7)"),
            "{entry}"
        );
        let event = beyond(None, Some(5)).blocked().unwrap().to_string();
        assert!(
            event.contains("event 5 already exists beyond the chain head (event 3)"),
            "{event}"
        );
    }
}
