//! The open-files limit: every HTTP connection is a file descriptor, and so is every database
//! connection, backup pipe and file. Many systems start services with a soft limit of 1,024
//! although the hard limit allows far more; `serve` raises the soft limit to the hard one and
//! keeps the connection limit within what remains.

use statehouse_server::{ConnectionLimits, OVERFLOW_CONNECTIONS};

/// Descriptors kept for everything but client connections (store, pool, backups, logs).
const RESERVED: u64 = 256;
/// The fewest connections the limit is ever lowered to.
const FLOOR: usize = 16;

/// Raises the soft open-files limit to the hard limit; returns the soft limit then in force
/// (`None` when unlimited or unknown).
#[cfg(unix)]
pub fn raise_soft_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current?;
    // An unlimited hard limit cannot be the soft one (the kernel caps descriptors anyway).
    let Some(hard) = limit.maximum.filter(|hard| *hard > soft) else {
        return Some(soft);
    };
    let raised = rustix::process::Rlimit {
        current: Some(hard),
        maximum: Some(hard),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!(from = soft, to = hard, "raised the open-files limit");
            Some(hard)
        }
        Err(e) => {
            tracing::warn!(limit = soft, error = %e, "cannot raise the open-files limit");
            Some(soft)
        }
    }
}

#[cfg(not(unix))]
pub fn raise_soft_limit() -> Option<u64> {
    None
}

/// `limits` with `max_connections` lowered, if needed, so that the connections (with the
/// few answered beyond the limit) and the reserve fit in `open_files`.
pub fn fit(mut limits: ConnectionLimits, open_files: Option<u64>) -> ConnectionLimits {
    let Some(open_files) = open_files else {
        return limits;
    };
    let overflow = OVERFLOW_CONNECTIONS as u64;
    let available = open_files.saturating_sub(RESERVED + overflow);
    let available = usize::try_from(available).unwrap_or(usize::MAX).max(FLOOR);
    if limits.max_connections > available {
        tracing::warn!(
            configured = limits.max_connections,
            used = available,
            open_files,
            "http.max_connections lowered to fit the open-files limit; raise the limit \
             (systemd LimitNOFILE=, ulimit -n) to serve more connections"
        );
        limits.max_connections = available;
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_fits_the_open_files_limit() {
        let limits = ConnectionLimits::default();
        assert_eq!(fit(limits, None).max_connections, limits.max_connections);
        assert_eq!(
            fit(limits, Some(1_048_576)).max_connections,
            limits.max_connections
        );
        let fitted = fit(limits, Some(1024)).max_connections;
        assert_eq!(fitted, 1024 - 256 - OVERFLOW_CONNECTIONS);
        assert_eq!(fit(limits, Some(100)).max_connections, FLOOR);
    }

    #[cfg(unix)]
    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        use rustix::process::{Resource, getrlimit};
        let in_force = raise_soft_limit();
        let now = getrlimit(Resource::Nofile);
        assert_eq!(in_force, now.current);
        if let (Some(soft), Some(hard)) = (now.current, now.maximum) {
            assert_eq!(soft, hard, "the soft limit should now be the hard limit");
        }
    }
}
