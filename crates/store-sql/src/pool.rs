//! What the engines share for `/metrics`: callers waiting for a connection, and the time each
//! statement takes (recorded by the sqlx adapter).

use std::sync::atomic::{AtomicU64, Ordering};

/// How many callers wait for a connection right now. Two atomic additions per acquisition.
#[derive(Debug, Default)]
pub struct Waiting(AtomicU64);

impl Waiting {
    /// Counts the caller as waiting until the returned guard is dropped (also when the wait is
    /// abandoned: a cancelled request).
    pub fn enter(&self) -> WaitGuard<'_> {
        self.0.fetch_add(1, Ordering::Relaxed);
        WaitGuard(&self.0)
    }

    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct WaitGuard<'a>(&'a AtomicU64);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Records how long one statement took, in seconds (`statehouse_store_query_duration_seconds`).
pub fn record_statement(started: std::time::Instant) {
    ::metrics::histogram!(statehouse_core::metrics::names::STORE_QUERY_SECONDS)
        .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_counts_until_the_guard_drops() {
        let waiting = Waiting::default();
        let first = waiting.enter();
        let second = waiting.enter();
        assert_eq!(waiting.count(), 2);
        drop(first);
        assert_eq!(waiting.count(), 1);
        drop(second);
        assert_eq!(waiting.count(), 0);
    }
}
