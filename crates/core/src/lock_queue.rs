//! Lock queueing: a LOCK that finds its state locked may wait for it (`lock_wait`) instead of
//! failing at once. Waiters queue in the store, first come first served across replicas; whoever
//! releases the lock hands it to the oldest waiter still waiting, in the same transaction, so
//! the lock is never free while someone waits and nobody can jump the queue.

use std::time::Duration;

use crate::clock::{Timestamp, parse_duration};
use crate::model::{LockOutcome, LockRequest};
use crate::store::pending::JournalEntries;
use crate::{Error, Result};

/// A waiter not seen for this long is passed over and removed (its server went away without
/// taking it out of the queue).
pub const WAITER_TTL: Duration = Duration::from_secs(10);
/// How often a waiting request tells the store it still waits.
pub const WAITER_HEARTBEAT: Duration = Duration::from_secs(2);
/// How often a waiting request looks whether the lock was handed to it by another server (a
/// release on its own server wakes it at once).
pub const WAITER_POLL: Duration = Duration::from_millis(200);
/// The longest a LOCK may wait.
pub const MAX_LOCK_WAIT: Duration = Duration::from_secs(60 * 60);

/// A LOCK joining its state's queue.
pub struct LockWaiter<'a> {
    /// The waiter's own id (not the client's lock ID: a retried LOCK is a new waiter).
    pub id: &'a str,
    pub request: &'a LockRequest,
    /// The audit record and event of acquiring the lock, written with the lock change whoever
    /// makes it (this request, or a release handing the lock over).
    pub acquired: &'a JournalEntries,
    /// The entries of answering at once because the lock is already this request's.
    pub already_held: &'a JournalEntries,
}

/// What joining the queue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOrQueue {
    /// Nobody was in the way: the lock is taken (or was already this request's).
    Locked(LockOutcome),
    /// The request waits in the queue.
    Queued,
}

/// Where a waiting request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    /// Still in the queue.
    Waiting,
    /// The lock was handed to it.
    Granted,
    /// Out of the queue without the lock: the state was deleted, or the waiter was passed over
    /// as gone.
    Gone,
}

/// A waiter as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedLock {
    /// The client's lock ID.
    pub lock_id: String,
    /// The token (or user) that waits.
    pub holder: String,
    /// The client's LockInfo JSON, as sent.
    pub info: String,
    pub enqueued_at: Timestamp,
}

/// Reads a `lock_wait` value: a duration such as `30s`, `10m` or `1h` (`0` waits not at all),
/// at most [`MAX_LOCK_WAIT`].
pub fn parse_lock_wait(text: &str) -> Result<Duration> {
    let text = text.trim();
    let wait = if text == "0" {
        Duration::ZERO
    } else {
        parse_duration(text).map_err(|_| {
            Error::BadRequest(format!(
                "lock_wait {text:?} is not a duration: write e.g. 30s, 10m or 1h (0: do not wait)"
            ))
        })?
    };
    if wait > MAX_LOCK_WAIT {
        return Err(Error::BadRequest(format!(
            "lock_wait {text:?} is longer than the longest wait, 1h"
        )));
    }
    Ok(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_wait_values() {
        assert_eq!(parse_lock_wait("0").ok(), Some(Duration::ZERO));
        assert_eq!(parse_lock_wait("90s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(parse_lock_wait("10m").ok(), Some(Duration::from_secs(600)));
        assert_eq!(parse_lock_wait("1h").ok(), Some(MAX_LOCK_WAIT));
        for bad in ["", "soon", "-5s", "2h", "10 parsecs"] {
            assert!(parse_lock_wait(bad).is_err(), "{bad:?}");
        }
    }
}
