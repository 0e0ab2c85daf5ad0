//! Metric names, and what the services count (through the `metrics` facade: a no-op until a
//! recorder is installed, which `statehouse serve` does). Counters and histograms are per
//! process; figures about the whole store are read at scrape time
//! ([`crate::store::metrics`]).
//!
//! Labels stay bounded: refusal reasons are a fixed set, and a state's workspace and name are
//! labels only when `metrics.state_labels` turns them on (and only on successful operations,
//! whose names exist).

use crate::Error;

/// Every metric name statehouse exports, in one place (the server, the backup crate and the
/// tests use these).
pub mod names {
    // HTTP (server crate).
    pub const HTTP_REQUESTS: &str = "statehouse_http_requests_total";
    pub const HTTP_REQUEST_SECONDS: &str = "statehouse_http_request_duration_seconds";
    pub const S3_REQUESTS: &str = "statehouse_s3_requests_total";
    pub const S3_REQUEST_SECONDS: &str = "statehouse_s3_request_duration_seconds";
    // States and locks (services).
    pub const STATE_WRITES: &str = "statehouse_state_writes_total";
    pub const STATE_WRITES_REFUSED: &str = "statehouse_state_writes_refused_total";
    pub const STATE_READS: &str = "statehouse_state_reads_total";
    pub const STATE_READS_REFUSED: &str = "statehouse_state_reads_refused_total";
    pub const LOCKS_ACQUIRED: &str = "statehouse_locks_acquired_total";
    pub const LOCKS_RELEASED: &str = "statehouse_locks_released_total";
    pub const LOCK_CONFLICTS: &str = "statehouse_lock_conflicts_total";
    // Webhooks and notifications.
    pub const WEBHOOK_ATTEMPTS: &str = "statehouse_webhook_attempts_total";
    pub const WEBHOOK_FAILURES: &str = "statehouse_webhook_attempt_failures_total";
    pub const NOTIFICATIONS_SENT: &str = "statehouse_notifications_sent_total";
    pub const NOTIFICATION_FAILURES: &str = "statehouse_notification_failures_total";
    pub const NOTIFICATIONS_UNDELIVERED: &str = "statehouse_notifications_undelivered_total";
    pub const NOTIFICATIONS_QUEUED: &str = "statehouse_notifications_queued";
    // Backup storage targets.
    pub const TARGET_ERRORS: &str = "statehouse_target_errors_total";
    // The store.
    pub const STORE_QUERY_SECONDS: &str = "statehouse_store_query_duration_seconds";
    pub const STORE_HOST_SWITCHES: &str = "statehouse_store_host_switches_total";
    pub const STORE_LAG_TOLERANT_READS: &str = "statehouse_store_lag_tolerant_reads_total";
}

/// Every value [`refusal_reason`] gives.
pub const REFUSAL_REASONS: [&str; 10] = [
    "locked",
    "conflict",
    "invalid",
    "too_large",
    "unauthorized",
    "forbidden",
    "not_found",
    "rate_limited",
    "unavailable",
    "error",
];

/// Why a write (or read, or lock) was refused, as a label: one of a fixed set
/// ([`REFUSAL_REASONS`]).
pub fn refusal_reason(e: &Error) -> &'static str {
    match e {
        Error::Locked { .. } => "locked",
        // Serial not above the stored one, another lineage, a lock that is gone.
        Error::Conflict(_) => "conflict",
        // Not JSON, Content-MD5 mismatch, bad name.
        Error::BadRequest(_) => "invalid",
        Error::TooLarge(_) => "too_large",
        Error::Unauthorized(_) => "unauthorized",
        Error::Forbidden(_) => "forbidden",
        Error::NotFound(_) => "not_found",
        Error::TooManyRequests { .. } => "rate_limited",
        Error::Store(_) | Error::Unavailable(_) => "unavailable",
        Error::Config(_) | Error::Internal(_) => "error",
    }
}

/// Counts an audited action's outcome, for the actions metrics follow (`state.write`,
/// `state.read`, `lock.acquire`, `lock.release`, `lock.force_release`); others are ignored.
/// `state` is `(workspace, state)` when per-state labels are on.
pub fn observe_action(action: &str, outcome: Result<(), &Error>, state: Option<(&str, &str)>) {
    let labelled = |name: &'static str| match state {
        Some((workspace, state)) => ::metrics::counter!(
            name,
            "workspace" => workspace.to_owned(),
            "state" => state.to_owned()
        ),
        None => ::metrics::counter!(name),
    };
    match (action, outcome) {
        ("state.write", Ok(())) => labelled(names::STATE_WRITES).increment(1),
        ("state.write", Err(e)) => {
            ::metrics::counter!(names::STATE_WRITES_REFUSED, "reason" => refusal_reason(e))
                .increment(1);
        }
        ("state.read", Ok(())) => labelled(names::STATE_READS).increment(1),
        ("state.read", Err(e)) => {
            ::metrics::counter!(names::STATE_READS_REFUSED, "reason" => refusal_reason(e))
                .increment(1);
        }
        ("lock.acquire", Ok(())) => labelled(names::LOCKS_ACQUIRED).increment(1),
        ("lock.acquire", Err(Error::Locked { .. })) => {
            labelled(names::LOCK_CONFLICTS).increment(1);
        }
        ("lock.release", Ok(())) => {
            ::metrics::counter!(names::LOCKS_RELEASED, "forced" => "false").increment(1);
        }
        ("lock.force_release", Ok(())) => {
            ::metrics::counter!(names::LOCKS_RELEASED, "forced" => "true").increment(1);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_reason_from_the_fixed_set() {
        let errors = [
            Error::Locked {
                holder_info: "{}".into(),
            },
            Error::Conflict("serial".into()),
            Error::BadRequest("md5".into()),
            Error::TooLarge("big".into()),
            Error::Unauthorized("who".into()),
            Error::Forbidden("no".into()),
            Error::NotFound("gone".into()),
            Error::Unavailable("down".into()),
            Error::Internal("bug".into()),
        ];
        let reasons: Vec<&str> = errors.iter().map(refusal_reason).collect();
        assert!(reasons.iter().all(|r| REFUSAL_REASONS.contains(r)));
        assert_eq!(
            reasons,
            [
                "locked",
                "conflict",
                "invalid",
                "too_large",
                "unauthorized",
                "forbidden",
                "not_found",
                "unavailable",
                "error"
            ]
        );
    }
}
