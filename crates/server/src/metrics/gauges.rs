//! The gauges read at scrape time: the store's figures (shared by every replica), this
//! process's connection pool, and each registered database's backups. A store that does not
//! answer makes `statehouse_store_up` 0 and leaves its figures out; the process's own figures
//! are still served.

use statehouse_backup::service::BackupService;
use statehouse_core::backups::HealthStatus;
use statehouse_core::clock::Timestamp;

use super::text::Exposition;

fn seconds(ts: Timestamp) -> f64 {
    ts.millis() as f64 / 1000.0
}

fn age(now: Timestamp, since: Option<Timestamp>) -> f64 {
    since.map_or(0.0, |at| {
        (now.millis() - at.millis()).max(0) as f64 / 1000.0
    })
}

pub async fn write(out: &mut Exposition, backups: &BackupService) {
    let services = &backups.core;
    let pool = services.pool_status();
    out.gauge(
        "statehouse_store_pool_connections",
        "Database connections of this process, by state (in_use, idle)",
    );
    out.sample(
        "statehouse_store_pool_connections",
        &[("state", "in_use")],
        pool.in_use as f64,
    );
    out.sample(
        "statehouse_store_pool_connections",
        &[("state", "idle")],
        pool.idle as f64,
    );
    out.gauge(
        "statehouse_store_pool_max_connections",
        "The most connections the pool opens",
    );
    out.sample(
        "statehouse_store_pool_max_connections",
        &[],
        pool.max as f64,
    );
    out.gauge(
        "statehouse_store_pool_waiters",
        "Callers waiting for a database connection",
    );
    out.sample("statehouse_store_pool_waiters", &[], pool.waiters as f64);

    out.gauge(
        "statehouse_audit_queued_entries",
        "Audit entries and events this process holds in memory, not yet written to the store",
    );
    out.sample(
        "statehouse_audit_queued_entries",
        &[],
        services.journal_queued() as f64,
    );

    let store = services.store_gauges().await;
    // A store that did not answer is not asked again in the same scrape.
    let databases = match &store {
        Ok(_) => Some(backups.database_metrics().await),
        Err(_) => None,
    };
    let up = store.is_ok() && matches!(databases, Some(Ok(_)));
    out.gauge(
        "statehouse_store_up",
        "1 when the store answered this scrape's queries",
    );
    out.sample("statehouse_store_up", &[], f64::from(u8::from(up)));
    let now = services.now();
    match store {
        Ok(g) => {
            out.gauge("statehouse_locks_held", "State locks held (all replicas)");
            out.sample("statehouse_locks_held", &[], g.locks_held as f64);
            out.gauge(
                "statehouse_lock_oldest_age_seconds",
                "Age of the oldest lock held (0 when none is)",
            );
            out.sample(
                "statehouse_lock_oldest_age_seconds",
                &[],
                age(now, g.oldest_lock_at),
            );
            out.gauge(
                "statehouse_locks_stale",
                "Locks held longer than their workspace's stale_lock_after",
            );
            out.sample("statehouse_locks_stale", &[], g.stale_locks as f64);
            if services.state_metric_labels() {
                out.gauge(
                    "statehouse_lock_age_seconds",
                    "Age of each held lock (metrics.state_labels)",
                );
                for lock in &g.held_locks {
                    out.sample(
                        "statehouse_lock_age_seconds",
                        &[("workspace", &lock.workspace), ("state", &lock.state)],
                        age(now, Some(lock.locked_at)),
                    );
                }
            }
            out.gauge(
                "statehouse_audit_pending_entries",
                "Audit entries and events committed but not yet sealed into the hash chain",
            );
            out.sample(
                "statehouse_audit_pending_entries",
                &[],
                g.audit_pending as f64,
            );
            out.gauge(
                "statehouse_audit_oldest_pending_age_seconds",
                "Age of the oldest audit entry waiting to be sealed (0 when none is)",
            );
            out.sample(
                "statehouse_audit_oldest_pending_age_seconds",
                &[],
                age(now, g.oldest_audit_pending_at),
            );
            out.gauge(
                "statehouse_webhook_deliveries_pending",
                "Webhook deliveries waiting for an attempt",
            );
            out.sample(
                "statehouse_webhook_deliveries_pending",
                &[],
                g.webhooks_pending as f64,
            );
            out.gauge(
                "statehouse_webhook_deliveries_failed",
                "Webhook deliveries that gave up after every attempt (until pruned)",
            );
            out.sample(
                "statehouse_webhook_deliveries_failed",
                &[],
                g.webhooks_failed as f64,
            );
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the store's figures could not be read"),
    }
    match databases {
        Some(Ok(list)) => write_databases(out, &list),
        Some(Err(e)) => tracing::warn!(error = %e, "metrics: backup figures could not be read"),
        None => {}
    }
}

/// One family per figure, one sample per database (labels: workspace, database).
fn write_databases(out: &mut Exposition, list: &[statehouse_backup::service::DatabaseMetrics]) {
    type Figure = fn(&statehouse_backup::service::DatabaseMetrics) -> Option<f64>;
    let families: [(&str, &str, Figure); 11] = [
        (
            "statehouse_backup_enabled",
            "1 when the database's backups are enabled",
            |d| Some(f64::from(u8::from(d.figures.enabled))),
        ),
        (
            "statehouse_backup_database_created_timestamp_seconds",
            "When the database was registered",
            |d| Some(seconds(d.figures.created_at)),
        ),
        (
            "statehouse_backup_schedule_interval_seconds",
            "Time between two scheduled backups (absent without a schedule)",
            |d| d.schedule_interval_millis.map(|ms| ms as f64 / 1000.0),
        ),
        (
            "statehouse_backup_last_success_timestamp_seconds",
            "When the newest successful backup finished (absent before the first)",
            |d| d.figures.last_success_at.map(seconds),
        ),
        (
            "statehouse_backup_last_duration_seconds",
            "How long the newest successful backup took",
            |d| d.figures.last_success_millis.map(|ms| ms as f64 / 1000.0),
        ),
        (
            "statehouse_backup_last_size_bytes",
            "Stored size of the newest successful backup",
            |d| d.figures.last_success_bytes.map(|b| b as f64),
        ),
        (
            "statehouse_backup_consecutive_failures",
            "Backup runs that failed since the newest successful one",
            |d| Some(d.figures.failures_since_success as f64),
        ),
        (
            "statehouse_backup_last_verification_timestamp_seconds",
            "When the newest verification of the database's backups ran",
            |d| d.figures.last_verification_at.map(seconds),
        ),
        (
            "statehouse_backup_last_verification_success",
            "1 when the newest verification passed, 0 when it failed",
            |d| {
                d.figures
                    .last_verification_ok
                    .map(|ok| f64::from(u8::from(ok)))
            },
        ),
        (
            "statehouse_database_up",
            "Health checks: 1 up, 0 down (absent until checked)",
            |d| match d.figures.health {
                HealthStatus::Up => Some(1.0),
                HealthStatus::Down => Some(0.0),
                HealthStatus::Unknown => None,
            },
        ),
        (
            "statehouse_database_health_consecutive_failures",
            "Failed health checks in a row",
            |d| Some(d.figures.health_failures as f64),
        ),
    ];
    for (name, help, figure) in families {
        out.gauge(name, help);
        for d in list {
            if let Some(value) = figure(d) {
                out.sample(
                    name,
                    &[
                        ("workspace", &d.figures.workspace),
                        ("database", &d.figures.database),
                    ],
                    value,
                );
            }
        }
    }
}
