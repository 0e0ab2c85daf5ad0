//! The `[metrics]` section: `GET /metrics` on the main listener or its own, behind a bearer
//! token or not, and whether state metrics carry per-state labels.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// `GET /metrics` in the Prometheus text format.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Serve `/metrics` (and record figures at all).
    pub enabled: bool,
    /// Serve `/metrics` on a listener of its own (e.g. `127.0.0.1:9464`) instead of the main
    /// one; empty: on the main listener.
    pub listen: String,
    /// A file holding the bearer token scrapers must send (`Authorization: Bearer …`); none:
    /// `/metrics` is open to whoever reaches the listener.
    pub token_file: Option<PathBuf>,
    /// Label state metrics (writes, reads, lock ages) with workspace and state names: one
    /// series per state, so off by default.
    pub state_labels: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: String::new(),
            token_file: None,
            state_labels: false,
        }
    }
}

impl MetricsConfig {
    /// The token of `token_file` (trimmed), if one is configured. Never logged.
    pub fn token(&self) -> Result<Option<zeroize::Zeroizing<String>>> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the metrics token file {} (STATEHOUSE_METRICS__TOKEN_FILE)",
                path.display()
            )
        })?);
        let token = zeroize::Zeroizing::new(text.trim().to_owned());
        if token.is_empty() || token.contains(char::is_whitespace) {
            anyhow::bail!(
                "the metrics token file {} must hold one token without spaces (STATEHOUSE_METRICS__TOKEN_FILE)",
                path.display()
            );
        }
        Ok(Some(token))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use crate::config::Config;

    #[test]
    #[allow(clippy::result_large_err)]
    fn the_metrics_section_has_defaults_env_and_a_token_file() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None).unwrap();
            assert!(c.metrics.enabled, "/metrics is on by default");
            assert_eq!(c.metrics.listen, "", "on the main listener by default");
            assert!(c.metrics.token().unwrap().is_none());
            assert!(!c.metrics.state_labels);
            jail.create_file("token", "  s3cr3t-metrics-token\n")?;
            jail.create_file(
                "c.toml",
                "[metrics]\nlisten = \"127.0.0.1:9464\"\ntoken_file = \"token\"\n",
            )?;
            jail.set_env("STATEHOUSE_METRICS__STATE_LABELS", "true");
            let c = Config::load(Some(Path::new("c.toml"))).unwrap();
            assert_eq!(c.metrics.listen, "127.0.0.1:9464");
            assert!(c.metrics.state_labels);
            assert!(c.metrics.token_file.as_ref().unwrap().is_absolute());
            assert_eq!(
                c.metrics.token().unwrap().unwrap().as_str(),
                "s3cr3t-metrics-token"
            );
            assert!(
                !format!("{c:?}").contains("s3cr3t"),
                "the token is never shown"
            );
            jail.create_file("empty", "\n")?;
            jail.set_env("STATEHOUSE_METRICS__TOKEN_FILE", "empty");
            let err = Config::load(None).unwrap().metrics.token().unwrap_err();
            assert!(
                err.to_string().contains("STATEHOUSE_METRICS__TOKEN_FILE"),
                "{err}"
            );
            jail.set_env("STATEHOUSE_METRICS__ENABLED", "false");
            assert!(!Config::load(None).unwrap().metrics.enabled);
            jail.create_file("bad.toml", "[metrics]\ntoken = \"x\"\n")?;
            assert!(
                Config::load(Some(Path::new("bad.toml"))).is_err(),
                "a typo in the section is refused"
            );
            Ok(())
        });
    }
}
