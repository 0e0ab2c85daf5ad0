//! The internal event stream: what happened to states and locks, for subscribers in this
//! process (a tokio broadcast), for other replicas and pollers (`GET /api/v1/events`), and for
//! outgoing webhooks. Events are stored by the journal's writer in the same transaction as the
//! audit entries of the same batch, with their webhook deliveries.

use serde::Serialize;

use crate::Error;
use crate::clock::Timestamp;

/// Event kinds. Webhook filters name these, or a prefix (`lock.*`), or `*`.
pub mod kind {
    pub const STATE_WRITTEN: &str = "state.written";
    pub const STATE_DELETED: &str = "state.deleted";
    pub const STATE_RESTORED: &str = "state.restored";
    pub const STATE_ROLLED_BACK: &str = "state.rolled_back";
    pub const LOCK_ACQUIRED: &str = "lock.acquired";
    pub const LOCK_RELEASED: &str = "lock.released";
    pub const LOCK_FORCE_UNLOCKED: &str = "lock.force_unlocked";
    pub const LOCK_STALE: &str = "lock.stale";
    pub const BACKUP_SUCCEEDED: &str = "backup.succeeded";
    pub const BACKUP_FAILED: &str = "backup.failed";
    /// A backup was deleted: by retention (the payload's `reason` names the rule) or by hand.
    pub const BACKUP_DELETED: &str = "backup.deleted";
    pub const VERIFICATION_SUCCEEDED: &str = "verification.succeeded";
    pub const VERIFICATION_FAILED: &str = "verification.failed";
    pub const DATABASE_DOWN: &str = "database.down";
    pub const DATABASE_UP: &str = "database.up";
    /// Sent only to one webhook, on request, to test it.
    pub const PING: &str = "ping";

    /// Every kind statehouse emits (webhook filters are checked against these).
    pub const ALL: &[&str] = &[
        STATE_WRITTEN,
        STATE_DELETED,
        STATE_RESTORED,
        STATE_ROLLED_BACK,
        LOCK_ACQUIRED,
        LOCK_RELEASED,
        LOCK_FORCE_UNLOCKED,
        LOCK_STALE,
        BACKUP_SUCCEEDED,
        BACKUP_FAILED,
        BACKUP_DELETED,
        VERIFICATION_SUCCEEDED,
        VERIFICATION_FAILED,
        DATABASE_DOWN,
        DATABASE_UP,
    ];
}

/// An event to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub at: Timestamp,
    pub kind: String,
    pub workspace_id: Option<String>,
    /// The workspace's name (what subscribers show).
    pub workspace: Option<String>,
    /// What the event is about, usually a state name.
    pub subject: Option<String>,
    pub actor: String,
    pub payload: serde_json::Value,
}

/// A stored event. `seq` increases in commit order across all replicas, so a poller that
/// remembers the last `seq` it saw misses nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub seq: i64,
    pub at: Timestamp,
    pub kind: String,
    #[serde(skip)]
    pub workspace_id: Option<String>,
    pub workspace: Option<String>,
    pub subject: Option<String>,
    pub actor: String,
    pub payload: serde_json::Value,
}

impl Event {
    pub fn from_new(seq: i64, new: &NewEvent) -> Event {
        Event {
            seq,
            at: new.at,
            kind: new.kind.clone(),
            workspace_id: new.workspace_id.clone(),
            workspace: new.workspace.clone(),
            subject: new.subject.clone(),
            actor: new.actor.clone(),
            payload: new.payload.clone(),
        }
    }
}

/// Checks a webhook's event filter: each entry is a known kind, a known kind's prefix ending in
/// `.*` (`lock.*`), or `*`. Returns the filter trimmed and deduplicated.
pub fn parse_filter(filter: &[String]) -> Result<Vec<String>, Error> {
    if filter.is_empty() {
        return Err(Error::BadRequest(
            "the event filter is empty: list event kinds (e.g. \"state.written\"), prefixes (\"lock.*\") or \"*\"".into(),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for raw in filter {
        let item = raw.trim();
        let known = item == "*"
            || kind::ALL.contains(&item)
            || item.strip_suffix(".*").is_some_and(|prefix| {
                kind::ALL
                    .iter()
                    .any(|k| k.split_once('.').is_some_and(|(p, _)| p == prefix))
            });
        if !known {
            return Err(Error::BadRequest(format!(
                "unknown event kind {item:?} in the filter: use \"*\", \"state.*\", \"lock.*\" or one of {}",
                kind::ALL.join(", ")
            )));
        }
        if !out.iter().any(|o| o == item) {
            out.push(item.to_owned());
        }
    }
    Ok(out)
}

/// Whether an event of `kind` passes a (parsed) filter.
pub fn filter_matches(filter: &[String], kind: &str) -> bool {
    filter.iter().any(|f| {
        f == "*"
            || f == kind
            || f.strip_suffix('*')
                .is_some_and(|prefix| kind.starts_with(prefix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn filters_parse_and_match() {
        let f = parse_filter(&strings(&["lock.*", " state.written ", "lock.*"])).ok();
        assert_eq!(f, Some(strings(&["lock.*", "state.written"])));
        let f = f.unwrap_or_default();
        assert!(filter_matches(&f, "lock.acquired"));
        assert!(filter_matches(&f, "lock.force_unlocked"));
        assert!(filter_matches(&f, "state.written"));
        assert!(!filter_matches(&f, "state.deleted"));
        assert!(filter_matches(&strings(&["*"]), "state.deleted"));
        for bad in [&[][..], &["locks.*"], &["state.exploded"], &["ping"], &[""]] {
            assert!(parse_filter(&strings(bad)).is_err(), "{bad:?}");
        }
    }
}
