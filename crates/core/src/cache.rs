//! A small map whose entries are trusted for a fixed time, measured on the injected clock.
//! Used for lookups that happen on every request but change rarely (tokens, workspaces), where
//! the time-to-live bounds how long another replica's change may go unseen.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::clock::Timestamp;

pub struct TtlCache<V> {
    ttl_millis: i64,
    entries: RwLock<HashMap<String, (V, Timestamp)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl_millis: i64) -> Self {
        TtlCache {
            ttl_millis,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The value stored under `key` if it was stored less than the TTL before `now`.
    pub fn get(&self, key: &str, now: Timestamp) -> Option<V> {
        let entries = self.entries.read().ok()?;
        let (value, at) = entries.get(key)?;
        (now.millis() - at.millis() < self.ttl_millis).then(|| value.clone())
    }

    pub fn put(&self, key: String, value: V, now: Timestamp) {
        if let Ok(mut entries) = self.entries.write() {
            // Expired entries go when the map grows, so it stays as small as the live set.
            if entries.len() >= 1024 {
                entries.retain(|_, (_, at)| now.millis() - at.millis() < self.ttl_millis);
            }
            entries.insert(key, (value, now));
        }
    }

    pub fn forget(&self, key: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(key);
        }
    }

    /// Drops every entry whose value matches (e.g. all cached tokens of one user).
    pub fn forget_matching(&self, matches: impl Fn(&V) -> bool) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, (value, _)| !matches(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_for_the_ttl() {
        let cache = TtlCache::new(1_000);
        cache.put("a".into(), 1, Timestamp(10_000));
        assert_eq!(cache.get("a", Timestamp(10_000)), Some(1));
        assert_eq!(cache.get("a", Timestamp(10_999)), Some(1));
        assert_eq!(cache.get("a", Timestamp(11_000)), None);
        assert_eq!(cache.get("b", Timestamp(10_000)), None);
        cache.put("a".into(), 2, Timestamp(11_000));
        assert_eq!(cache.get("a", Timestamp(11_500)), Some(2));
        cache.forget("a");
        assert_eq!(cache.get("a", Timestamp(11_500)), None);
    }

    #[test]
    fn entries_are_forgotten_by_value() {
        let cache = TtlCache::new(1_000);
        cache.put("a".into(), "alice", Timestamp(0));
        cache.put("b".into(), "bob", Timestamp(0));
        cache.put("c".into(), "alice", Timestamp(0));
        cache.forget_matching(|v| *v == "alice");
        assert_eq!(cache.get("a", Timestamp(1)), None);
        assert_eq!(cache.get("c", Timestamp(1)), None);
        assert_eq!(cache.get("b", Timestamp(1)), Some("bob"));
    }

    #[test]
    fn expired_entries_are_swept_when_the_map_grows() {
        let cache = TtlCache::new(1_000);
        for i in 0..1024 {
            cache.put(format!("old{i}"), i, Timestamp(0));
        }
        cache.put("new".into(), 0, Timestamp(5_000));
        let len = cache.entries.read().map(|e| e.len()).unwrap_or(0);
        assert_eq!(len, 1);
    }
}
