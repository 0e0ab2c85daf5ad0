//! The once-a-minute upkeep every server runs: version retention, stale-lock detection,
//! abandoned S3 uploads and unused blobs (`Services::run_maintenance`). Every replica runs
//! it; the store makes each deletion and each stale-lock flag happen once.

use std::time::Duration;

use statehouse_core::service::Services;
use tokio::sync::watch;

const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);

/// Runs a maintenance pass every minute until `stop` turns true.
pub async fn run_maintenance(services: Services, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(MAINTENANCE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticks.tick() => {}
        }
        match services.run_maintenance().await {
            Ok(report) => {
                if report.versions_pruned > 0 {
                    tracing::info!(
                        versions = report.versions_pruned,
                        "version retention deleted old versions"
                    );
                }
                if report.uploads_aborted > 0 || report.blobs_swept > 0 {
                    tracing::info!(
                        uploads = report.uploads_aborted,
                        blobs = report.blobs_swept,
                        "abandoned multipart uploads and unused S3 blobs removed"
                    );
                }
                for (ws, state) in &report.stale_locks {
                    if let Some(lock) = &state.lock {
                        tracing::warn!(
                            workspace = %ws.name,
                            state = %state.name,
                            holder = %lock.holder,
                            since = %lock.locked_at.to_rfc3339(),
                            "lock is stale"
                        );
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "maintenance pass failed; retrying next minute"),
        }
    }
}
