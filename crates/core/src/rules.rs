//! The decisions behind writes and locks, as pure functions. Each store calls them inside its
//! transaction with the rows it just read, so both stores decide exactly alike.

use crate::Error;
use crate::clock::Timestamp;
use crate::model::{HeldLock, LockOutcome, UnlockOutcome, UnlockRequest, VersionMeta};

/// What the store should do with an incoming version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteDecision {
    /// Same bytes as the current version: acknowledge, store nothing.
    Unchanged,
    /// Store as a new version. `forced`: serial/lineage protection was overridden;
    /// `consumes_override`: the state's one-shot overwrite permission is used up.
    Append {
        forced: bool,
        consumes_override: bool,
    },
}

/// The facts a write is judged on.
#[derive(Debug, Clone, Copy)]
pub struct WriteContext<'a> {
    pub current: Option<&'a VersionMeta>,
    pub lock: Option<&'a HeldLock>,
    pub serial_protection: bool,
    pub overwrite_until: Option<Timestamp>,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub serial: i64,
    pub lineage: &'a str,
    pub md5: &'a str,
    pub lock_id: Option<&'a str>,
    /// The credential (token or session id) the write comes with: a lock ID counts only
    /// with the credential that took the lock.
    pub token_id: &'a str,
}

pub fn decide_write(ctx: WriteContext<'_>, incoming: Incoming<'_>) -> Result<WriteDecision, Error> {
    check_lock_for_write(ctx.lock, incoming.lock_id, incoming.token_id)?;
    let Some(current) = ctx.current else {
        return Ok(WriteDecision::Append {
            forced: false,
            consumes_override: false,
        });
    };
    if current.md5 == incoming.md5 {
        return Ok(WriteDecision::Unchanged);
    }
    let problem = if current.lineage != incoming.lineage {
        Some(format!(
            "lineage {:?} does not match the stored state's lineage {:?} (version {}): this is a different state. \
             If you really mean to replace it, an admin can allow one overwrite with \
             `statehouse state allow-overwrite` and you push again",
            incoming.lineage, current.lineage, current.version_no
        ))
    } else if incoming.serial <= current.serial {
        Some(format!(
            "serial {} is not above the stored serial {} (version {}): the state changed since you read it. \
             Run `terraform refresh`/`plan` again to pick up the latest state; to replace it on purpose, \
             an admin can allow one overwrite with `statehouse state allow-overwrite`",
            incoming.serial, current.serial, current.version_no
        ))
    } else {
        None
    };
    let Some(problem) = problem else {
        return Ok(WriteDecision::Append {
            forced: false,
            consumes_override: false,
        });
    };
    if !ctx.serial_protection {
        return Ok(WriteDecision::Append {
            forced: true,
            consumes_override: false,
        });
    }
    if ctx.overwrite_until.is_some_and(|until| ctx.now < until) {
        return Ok(WriteDecision::Append {
            forced: true,
            consumes_override: true,
        });
    }
    Err(Error::Conflict(problem))
}

fn check_lock_for_write(
    lock: Option<&HeldLock>,
    claimed: Option<&str>,
    token_id: &str,
) -> Result<(), Error> {
    match (lock, claimed) {
        (Some(held), Some(id)) if held.is_held_by(id, token_id) => Ok(()),
        (Some(held), _) => Err(Error::Locked {
            holder_info: held.info.clone(),
        }),
        (None, Some(id)) => Err(Error::Conflict(format!(
            "lock {id:?} is not held on this state any more (released or force-unlocked); \
             nothing was written. Run the command again to take a new lock"
        ))),
        (None, None) => Ok(()),
    }
}

/// Taking a lock: free → acquired; held with the same ID by the same credential → success
/// again (clients retry, with the credential they locked with). The same ID from another
/// credential is a conflict: a lock ID read from a 423 answer is not a key to the lock.
pub fn decide_lock(
    held: Option<&HeldLock>,
    id: &str,
    token_id: &str,
) -> Result<LockOutcome, Error> {
    match held {
        None => Ok(LockOutcome::Acquired),
        Some(h) if h.is_held_by(id, token_id) => Ok(LockOutcome::AlreadyHeld),
        Some(h) => Err(Error::Locked {
            holder_info: h.info.clone(),
        }),
    }
}

/// Releasing a lock. The holder (same token, matching ID) may release it; anything else is a
/// force-unlock, allowed to admins only.
pub fn decide_unlock(held: Option<&HeldLock>, req: &UnlockRequest) -> Result<UnlockOutcome, Error> {
    let Some(held) = held else {
        return Ok(UnlockOutcome::NotLocked);
    };
    let released = |forced| {
        Ok(if forced {
            UnlockOutcome::ForceReleased {
                previous: held.clone(),
            }
        } else {
            UnlockOutcome::Released
        })
    };
    match &req.id {
        Some(id) if *id != held.id => Err(Error::Locked {
            holder_info: held.info.clone(),
        }),
        Some(_) if req.token_id == held.token_id => released(false),
        _ if req.is_admin => released(true),
        Some(_) => Err(Error::Forbidden(format!(
            "the lock was taken by token {:?}; releasing someone else's lock is a force-unlock, which needs the admin role",
            held.holder
        ))),
        None => Err(Error::Forbidden(
            "force-unlock needs the admin role in this workspace".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(serial: i64, lineage: &str, md5: &str) -> VersionMeta {
        VersionMeta {
            id: "v".into(),
            state_id: "s".into(),
            version_no: 3,
            serial,
            lineage: lineage.into(),
            md5: md5.into(),
            size: 1,
            created_at: Timestamp(0),
            created_by: "t".into(),
            client_version: None,
            forced: false,
            client_encrypted: false,
            kept: false,
            resource_count: None,
        }
    }

    fn lock(id: &str, token: &str) -> HeldLock {
        HeldLock {
            id: id.into(),
            info: format!(r#"{{"ID":"{id}"}}"#),
            token_id: token.into(),
            holder: format!("{token}-name"),
            locked_at: Timestamp(0),
        }
    }

    fn ctx<'a>(current: Option<&'a VersionMeta>, lock: Option<&'a HeldLock>) -> WriteContext<'a> {
        WriteContext {
            current,
            lock,
            serial_protection: true,
            overwrite_until: None,
            now: Timestamp(1_000),
        }
    }

    fn incoming<'a>(
        serial: i64,
        lineage: &'a str,
        md5: &'a str,
        lock_id: Option<&'a str>,
    ) -> Incoming<'a> {
        Incoming {
            serial,
            lineage,
            md5,
            lock_id,
            token_id: "tokA",
        }
    }

    const APPEND: WriteDecision = WriteDecision::Append {
        forced: false,
        consumes_override: false,
    };

    #[test]
    fn first_write_is_accepted_whatever_its_serial() {
        assert_eq!(
            decide_write(ctx(None, None), incoming(0, "l", "m", None)).ok(),
            Some(APPEND)
        );
    }

    #[test]
    fn serial_must_grow_unless_identical() {
        let cur = version(5, "l", "m5");
        assert_eq!(
            decide_write(ctx(Some(&cur), None), incoming(6, "l", "m6", None)).ok(),
            Some(APPEND)
        );
        assert_eq!(
            decide_write(ctx(Some(&cur), None), incoming(5, "l", "m5", None)).ok(),
            Some(WriteDecision::Unchanged)
        );
        for serial in [5, 4, 0] {
            let err = decide_write(ctx(Some(&cur), None), incoming(serial, "l", "other", None));
            assert!(
                matches!(&err, Err(Error::Conflict(m)) if m.contains("not above")),
                "{err:?}"
            );
        }
    }

    #[test]
    fn lineage_change_is_refused() {
        let cur = version(5, "l", "m5");
        let err = decide_write(ctx(Some(&cur), None), incoming(9, "other", "x", None));
        assert!(
            matches!(&err, Err(Error::Conflict(m)) if m.contains("lineage")),
            "{err:?}"
        );
    }

    #[test]
    fn overrides_flag_the_write() {
        let cur = version(5, "l", "m5");
        let mut c = ctx(Some(&cur), None);
        c.overwrite_until = Some(Timestamp(2_000));
        assert_eq!(
            decide_write(c, incoming(0, "new", "x", None)).ok(),
            Some(WriteDecision::Append {
                forced: true,
                consumes_override: true
            })
        );
        // An expired window does not help.
        c.now = Timestamp(2_000);
        assert!(decide_write(c, incoming(0, "new", "x", None)).is_err());
        // Workspace without protection: accepted and flagged, nothing consumed.
        let mut c = ctx(Some(&cur), None);
        c.serial_protection = false;
        assert_eq!(
            decide_write(c, incoming(1, "l", "x", None)).ok(),
            Some(WriteDecision::Append {
                forced: true,
                consumes_override: false
            })
        );
        // A normal write does not consume the window.
        let mut c = ctx(Some(&cur), None);
        c.overwrite_until = Some(Timestamp(2_000));
        assert_eq!(
            decide_write(c, incoming(6, "l", "x", None)).ok(),
            Some(APPEND)
        );
    }

    #[test]
    fn writes_respect_locks() {
        let held = lock("L1", "tokA");
        assert_eq!(
            decide_write(ctx(None, Some(&held)), incoming(1, "l", "m", Some("L1"))).ok(),
            Some(APPEND)
        );
        for claimed in [None, Some("L2")] {
            let err = decide_write(ctx(None, Some(&held)), incoming(1, "l", "m", claimed));
            assert!(
                matches!(&err, Err(Error::Locked { holder_info }) if holder_info.contains("L1")),
                "{err:?}"
            );
        }
        // Claiming a lock that is gone is refused, even for identical content.
        let cur = version(1, "l", "m");
        let err = decide_write(ctx(Some(&cur), None), incoming(1, "l", "m", Some("L1")));
        assert!(matches!(err, Err(Error::Conflict(_))));
        // Locked state, identical content, wrong ID: refused (no information leak through "unchanged").
        let err = decide_write(ctx(Some(&cur), Some(&held)), incoming(1, "l", "m", None));
        assert!(matches!(err, Err(Error::Locked { .. })));
        // The holder's ID from another credential (copied from a 423 answer): refused.
        for current in [None, Some(&cur)] {
            let copied = Incoming {
                token_id: "tokB",
                ..incoming(1, "l", "m", Some("L1"))
            };
            let err = decide_write(ctx(current, Some(&held)), copied);
            assert!(matches!(err, Err(Error::Locked { .. })), "{err:?}");
        }
    }

    #[test]
    fn locking_is_idempotent_per_id() {
        let held = lock("L1", "tokA");
        assert_eq!(
            decide_lock(None, "L1", "tokA").ok(),
            Some(LockOutcome::Acquired)
        );
        assert_eq!(
            decide_lock(Some(&held), "L1", "tokA").ok(),
            Some(LockOutcome::AlreadyHeld)
        );
        for (id, token) in [("L2", "tokA"), ("L1", "tokB")] {
            assert!(
                matches!(
                    decide_lock(Some(&held), id, token),
                    Err(Error::Locked { holder_info }) if holder_info.contains("L1")
                ),
                "{id} from {token}"
            );
        }
    }

    #[test]
    fn unlock_matrix() {
        let held = lock("L1", "tokA");
        let req = |id: Option<&str>, token: &str, is_admin| UnlockRequest {
            id: id.map(str::to_owned),
            token_id: token.into(),
            is_admin,
            at: crate::clock::Timestamp(0),
        };
        let released = |forced| {
            Some(if forced {
                UnlockOutcome::ForceReleased {
                    previous: held.clone(),
                }
            } else {
                UnlockOutcome::Released
            })
        };
        assert_eq!(
            decide_unlock(None, &req(Some("L1"), "tokA", false)).ok(),
            Some(UnlockOutcome::NotLocked)
        );
        assert_eq!(
            decide_unlock(Some(&held), &req(Some("L1"), "tokA", false)).ok(),
            released(false)
        );
        assert_eq!(
            decide_unlock(Some(&held), &req(Some("L1"), "tokB", true)).ok(),
            released(true)
        );
        assert_eq!(
            decide_unlock(Some(&held), &req(None, "tokB", true)).ok(),
            released(true)
        );
        assert!(matches!(
            decide_unlock(Some(&held), &req(Some("L1"), "tokB", false)),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            decide_unlock(Some(&held), &req(None, "tokA", false)),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            decide_unlock(Some(&held), &req(Some("L2"), "tokA", true)),
            Err(Error::Locked { .. })
        ));
    }
}
