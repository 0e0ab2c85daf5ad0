//! The store's figures for `/metrics`, read at most once per [`STORE_GAUGES_MILLIS`] however
//! often (and by how many scrapers) `/metrics` is asked.

use std::sync::Arc;

use super::Services;
use crate::Result;
use crate::store::metrics::{PoolStatus, StoreGauges};

/// How long the store's figures are reused: scrapes cannot hammer the database.
pub const STORE_GAUGES_MILLIS: i64 = 5_000;

const KEY: &str = "store";

impl Services {
    /// Labels state metrics with the workspace and state name (`metrics.state_labels`): one
    /// series per state, so off by default.
    pub fn with_state_metric_labels(mut self, on: bool) -> Self {
        self.state_metric_labels = on;
        self
    }

    pub fn state_metric_labels(&self) -> bool {
        self.state_metric_labels
    }

    /// Locks, stale locks, audit entries not yet sealed and webhook deliveries waiting, as the
    /// store holds them (shared by every replica), read at most every few seconds. Held locks
    /// are listed only with per-state labels on.
    pub async fn store_gauges(&self) -> Result<Arc<StoreGauges>> {
        let now = self.now();
        if let Some(cached) = self.store_gauges.get(KEY, now) {
            return Ok(cached);
        }
        let gauges = Arc::new(
            self.store
                .store_gauges(now, self.state_metric_labels)
                .await?,
        );
        self.store_gauges.put(KEY.to_owned(), gauges.clone(), now);
        Ok(gauges)
    }

    /// Audit entries and events this process holds in memory, not yet written to the store.
    pub fn journal_queued(&self) -> usize {
        self.journal.queued()
    }

    /// This process's database connections.
    pub fn pool_status(&self) -> PoolStatus {
        self.store.pool_status()
    }
}
