//! Recently read or written state bodies, in plaintext, by version id. A version never changes
//! once written (a rollback or a rotation of the master key makes a new version or re-wraps the
//! same plaintext), so an entry is never stale and needs no invalidation, on any replica. A hit
//! spares reading the sealed body from the database, decrypting and decompressing it: a GET of a
//! state that did not change since the last read or write costs one small query.
//!
//! Bounded: bodies above [`MAX_ENTRY`] are never kept, and the oldest entries go once the total
//! passes [`MAX_TOTAL`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;

/// The largest body kept.
pub const MAX_ENTRY: usize = 8 * 1024 * 1024;
/// What all kept bodies may add up to.
pub const MAX_TOTAL: usize = 64 * 1024 * 1024;

#[derive(Default)]
pub struct BodyCache {
    inner: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    bodies: HashMap<String, Bytes>,
    /// Version ids, oldest first.
    order: VecDeque<String>,
    total: usize,
}

impl BodyCache {
    pub fn get(&self, version_id: &str) -> Option<Bytes> {
        self.inner.lock().ok()?.bodies.get(version_id).cloned()
    }

    /// Keeps `body` as version `version_id`'s, unless it is too large to keep.
    pub fn put(&self, version_id: &str, body: Bytes) {
        if body.len() > MAX_ENTRY {
            return;
        }
        let Ok(mut kept) = self.inner.lock() else {
            return;
        };
        if kept.bodies.contains_key(version_id) {
            return;
        }
        kept.total += body.len();
        kept.bodies.insert(version_id.to_owned(), body);
        kept.order.push_back(version_id.to_owned());
        while kept.total > MAX_TOTAL {
            let Some(oldest) = kept.order.pop_front() else {
                break;
            };
            if let Some(gone) = kept.bodies.remove(&oldest) {
                kept.total -= gone.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bodies_are_kept_within_bounds_oldest_going_first() {
        let cache = BodyCache::default();
        cache.put("v1", Bytes::from(vec![1; 10]));
        assert_eq!(cache.get("v1").unwrap().as_ref(), &[1; 10]);
        assert!(cache.get("v2").is_none());
        cache.put("big", Bytes::from(vec![0; MAX_ENTRY + 1]));
        assert!(cache.get("big").is_none(), "too large to keep");
        let chunks = MAX_TOTAL / MAX_ENTRY;
        for n in 0..chunks {
            cache.put(&format!("c{n}"), Bytes::from(vec![2; MAX_ENTRY]));
        }
        assert!(cache.get("v1").is_none(), "the oldest went first");
        assert!((0..chunks).all(|n| cache.get(&format!("c{n}")).is_some()));
        cache.put("next", Bytes::from(vec![3; MAX_ENTRY]));
        assert!(cache.get("c0").is_none() && cache.get("next").is_some());
        let total = cache.inner.lock().unwrap().total;
        assert!(total <= MAX_TOTAL, "{total}");
    }
}
