//! The server's log: `STATEHOUSE_LOG` (an `EnvFilter`, default `info`) chooses what statehouse's
//! own code logs; every dependency is capped at `warn`, whatever it says. Dependencies print
//! credentials in their debug output (OpenDAL and reqsign a storage target's keys, sqlx the
//! statements that set a role's password, HTTP clients headers at trace level), and a
//! credential must never reach the log at any level.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter when `STATEHOUSE_LOG` is unset or invalid.
const DEFAULT_FILTER: &str = "info";

/// Installs the log (`text` or `json` lines on stderr) for the whole process.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_env("STATEHOUSE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Colours only on a terminal: piped into journald, docker logs or a file, escape codes
    // would garble every line.
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(dependency_cap());
    if format == "json" {
        registry.with(layer.json()).init();
    } else {
        registry.with(layer).init();
    }
}

/// Everything but statehouse's own crates (and its request log) at `warn` at most.
pub fn dependency_cap() -> Targets {
    Targets::new()
        .with_default(LevelFilter::WARN)
        // statehouse, statehouse_core, statehouse_backup, … (targets are module paths).
        .with_target("statehouse", LevelFilter::TRACE)
        // The request log of the HTTP server (method, path, status, duration; no headers).
        .with_target("tower_http", LevelFilter::TRACE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn dependencies_are_capped_at_warn_and_statehouse_is_not() {
        let cap = dependency_cap();
        assert!(cap.would_enable("statehouse_backup::service", &Level::TRACE));
        assert!(cap.would_enable("statehouse", &Level::DEBUG));
        assert!(cap.would_enable("tower_http::trace", &Level::DEBUG));
        for noisy in [
            "opendal_service_s3::backend",
            "reqsign_core::api",
            "sqlx::query",
            "hyper",
        ] {
            assert!(!cap.would_enable(noisy, &Level::DEBUG), "{noisy}");
            assert!(!cap.would_enable(noisy, &Level::INFO), "{noisy}");
            assert!(cap.would_enable(noisy, &Level::WARN), "{noisy}");
        }
    }
}
