//! A database's uptime as health checks move it: when it is up, when a run of failures makes
//! it down, and what changed.

use statehouse_core::backups::{DatabaseHealth, HealthCheck, HealthStatus, HealthTransition};

/// A database's health after `check`: a good check makes it `Up` and resets the failure count;
/// a failed one counts, and the `down_after`-th failure in a row (at least the first) makes it
/// `Down`. The last error is the failed check's, cleared by a good one. Returns the status
/// change, if any.
///
/// The store applies it inside the check's transaction, on the health as stored
/// ([`statehouse_core::store::backups::BackupStore::record_health_check`]).
pub fn health_after(
    current: &DatabaseHealth,
    check: &HealthCheck,
    down_after: i64,
) -> (DatabaseHealth, Option<HealthTransition>) {
    let (status, consecutive_failures, last_error) = if check.ok {
        (HealthStatus::Up, 0, None)
    } else {
        let failures = current.consecutive_failures.saturating_add(1);
        let status = if failures >= down_after.max(1) {
            HealthStatus::Down
        } else {
            current.status
        };
        (status, failures, check.error.clone())
    };
    let transition = (status != current.status).then_some(HealthTransition {
        from: current.status,
        to: status,
    });
    let health = DatabaseHealth {
        status,
        consecutive_failures,
        changed_at: if transition.is_some() {
            Some(check.at)
        } else {
            current.changed_at
        },
        last_check_at: Some(check.at),
        last_error,
    };
    (health, transition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use statehouse_core::clock::Timestamp;

    fn check(ok: bool) -> HealthCheck {
        HealthCheck {
            database_id: "db".into(),
            at: Timestamp(10),
            ok,
            latency_ms: None,
            error: (!ok).then(|| "refused".to_owned()),
        }
    }

    #[test]
    fn the_down_after_th_failure_turns_a_database_down() {
        let mut health = DatabaseHealth::default();
        let (next, change) = health_after(&health, &check(true), 3);
        assert_eq!(
            change,
            Some(HealthTransition {
                from: HealthStatus::Unknown,
                to: HealthStatus::Up
            })
        );
        health = next;
        for n in 1..3 {
            let (next, change) = health_after(&health, &check(false), 3);
            assert_eq!((change, next.consecutive_failures), (None, n));
            assert_eq!(next.last_error.as_deref(), Some("refused"));
            health = next;
        }
        let (next, change) = health_after(&health, &check(false), 3);
        assert_eq!(change.map(|c| c.to), Some(HealthStatus::Down));
        assert_eq!(next.changed_at, Some(Timestamp(10)));
        let (next, change) = health_after(&next, &check(true), 3);
        assert_eq!(change.map(|c| c.to), Some(HealthStatus::Up));
        assert_eq!((next.consecutive_failures, next.last_error), (0, None));
    }
}
