//! Configuration: defaults → TOML file (`--config` / `STATEHOUSE_CONFIG`) → environment
//! (`STATEHOUSE_*`, nested keys with `__`, e.g. `STATEHOUSE_POSTGRES__POOL_MAX`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use statehouse_core::accounts::AuthSettings;
use statehouse_outbound::{OutboundConfig, OutboundPolicy, StoreLocation};
use statehouse_server::forwarded::TrustedProxies;
use statehouse_server::{ConnectionLimits, Timeouts};

use crate::config_keys;
pub use crate::config_metrics::MetricsConfig;
pub use crate::config_oidc::OidcConfig;
use crate::config_paths::{absolute, absolute_sqlite_url, sqlite_url_file};
pub use crate::config_tls::TlsConfig;

#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Address of the S3 endpoint (Pulumi's DIY backend); `off` turns it off.
    pub s3_listen: String,
    /// Domains under which `<bucket>.<domain>` addresses a bucket (virtual-host style); path
    /// style always works.
    pub s3_domains: Vec<String>,
    /// Where the SQLite database and the master key file live by default.
    pub data_dir: PathBuf,
    /// `postgres://…` selects PostgreSQL; `sqlite:…` a SQLite file; empty: SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Default: `<data_dir>/master.key`.
    pub master_key_file: Option<PathBuf>,
    /// Larger state bodies are refused with 413.
    pub max_state_bytes: u64,
    /// `text` (default) or `json`.
    pub log_format: String,
    /// Audit entries older than this are pruned (the chain stays verifiable).
    pub audit_retention: HumanDuration,
    /// Events (and finished webhook deliveries) older than this are pruned.
    pub event_retention: HumanDuration,
    pub postgres: PostgresConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub self_backup: SelfBackupConfig,
    /// Where webhooks, notifiers, storage targets and databases of workspaces may connect.
    pub outbound: OutboundConfig,
    /// Single sign-on for the web UI (OpenID Connect).
    pub oidc: OidcConfig,
    /// `GET /metrics` (Prometheus).
    pub metrics: MetricsConfig,
    /// HTTPS on the main and the S3 listeners.
    pub tls: TlsConfig,
    /// Reverse proxies (addresses or CIDR blocks) whose `X-Forwarded-For` / `Forwarded` /
    /// `X-Forwarded-Proto` are believed; none by default.
    pub trusted_proxies: Vec<String>,
}

/// The built-in schedule that backs up statehouse's own store (restore with
/// `statehouse restore-self` and the master key file).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SelfBackupConfig {
    pub enabled: bool,
    /// Where the backups go; default `<data_dir>/self-backups`. Keep a copy elsewhere too.
    pub dir: Option<PathBuf>,
    /// Five-field cron expression (default: daily at 03:15).
    pub cron: String,
    /// IANA time zone of `cron`.
    pub timezone: String,
    /// Newest backups kept.
    pub keep_last: usize,
}

impl Default for SelfBackupConfig {
    fn default() -> Self {
        SelfBackupConfig {
            enabled: true,
            dir: None,
            cron: "15 3 * * *".into(),
            timezone: "UTC".into(),
            keep_last: 14,
        }
    }
}

/// HTTP connections: timeouts and a limit, so that idle or stalled clients cannot use up the
/// server's connections. The defaults accept a 512 MiB upload over a slow link (only pauses
/// count, never the total time).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// A connection waiting for its next request is closed after this long.
    pub idle_timeout: HumanDuration,
    /// A request's headers must be complete this long after its first byte.
    pub header_timeout: HumanDuration,
    /// The longest pause while a request body arrives, or while a client takes a response.
    pub body_timeout: HumanDuration,
    /// Connections served at once (lowered at start if the open-files limit cannot hold them).
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let defaults = ConnectionLimits::default();
        HttpConfig {
            idle_timeout: HumanDuration(defaults.timeouts.idle),
            header_timeout: HumanDuration(defaults.timeouts.header),
            body_timeout: HumanDuration(defaults.timeouts.body),
            max_connections: defaults.max_connections,
        }
    }
}

impl Config {
    /// The `trusted_proxies` entries, checked.
    pub fn trusted_proxies(&self) -> Result<TrustedProxies> {
        TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("{e} (STATEHOUSE_TRUSTED_PROXIES)"))
    }
}

impl HttpConfig {
    pub fn limits(&self) -> Result<ConnectionLimits> {
        let timeouts = [
            ("idle_timeout", self.idle_timeout),
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
        ];
        for (key, value) in timeouts {
            if value.0 < Duration::from_millis(100) {
                anyhow::bail!(
                    "http.{key} must be at least 100ms (STATEHOUSE_HTTP__{})",
                    key.to_uppercase()
                );
            }
        }
        if self.max_connections == 0 {
            anyhow::bail!(
                "http.max_connections must be at least 1 (STATEHOUSE_HTTP__MAX_CONNECTIONS)"
            );
        }
        Ok(ConnectionLimits {
            timeouts: Timeouts {
                idle: self.idle_timeout.0,
                header: self.header_timeout.0,
                body: self.body_timeout.0,
            },
            max_connections: self.max_connections,
        })
    }
}

/// Browser sessions (password login).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Mark the session cookie `Secure` (sent over HTTPS only). Turn off only for plain-HTTP
    /// setups on a trusted network or localhost.
    pub cookie_secure: bool,
    /// A session unused for this long ends.
    pub session_idle: HumanDuration,
    /// A session ends this long after login, however much it is used.
    pub session_lifetime: HumanDuration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let defaults = AuthSettings::default();
        let millis = |m: i64| HumanDuration(Duration::from_millis(u64::try_from(m).unwrap_or(0)));
        AuthConfig {
            cookie_secure: defaults.cookie_secure,
            session_idle: millis(defaults.session_idle_millis),
            session_lifetime: millis(defaults.session_lifetime_millis),
        }
    }
}

impl AuthConfig {
    pub fn settings(&self) -> Result<AuthSettings> {
        let millis = |d: &HumanDuration| i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX);
        let settings = AuthSettings {
            password_login: true,
            cookie_secure: self.cookie_secure,
            session_idle_millis: millis(&self.session_idle),
            session_lifetime_millis: millis(&self.session_lifetime),
        };
        if settings.session_idle_millis < 60_000 || settings.session_lifetime_millis < 60_000 {
            anyhow::bail!(
                "auth.session_idle and auth.session_lifetime must be at least 1m (STATEHOUSE_AUTH__SESSION_IDLE, STATEHOUSE_AUTH__SESSION_LIFETIME)"
            );
        }
        Ok(settings)
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresConfig {
    pub pool_min: u32,
    pub pool_max: u32,
    pub acquire_timeout: HumanDuration,
    pub idle_timeout: HumanDuration,
    pub statement_timeout: HumanDuration,
    pub idle_in_transaction_session_timeout: HumanDuration,
    pub lock_timeout: HumanDuration,
    /// Schema to live in (created if missing); default: the connection's `search_path`.
    pub schema: Option<String>,
    /// A read replica (streaming standby) for listings, search and metrics; same forms as
    /// `database_url`.
    pub read_url: Option<String>,
    /// The most the read replica may lag behind for a read to use it.
    pub read_max_lag: HumanDuration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            s3_listen: "127.0.0.1:8081".into(),
            s3_domains: Vec::new(),
            data_dir: PathBuf::from("./statehouse-data"),
            database_url: None,
            master_key_file: None,
            max_state_bytes: 512 * 1024 * 1024,
            log_format: "text".into(),
            audit_retention: HumanDuration(Duration::from_secs(365 * 86_400)),
            event_retention: HumanDuration(Duration::from_secs(30 * 86_400)),
            postgres: PostgresConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            self_backup: SelfBackupConfig::default(),
            outbound: OutboundConfig::default(),
            oidc: OidcConfig::default(),
            metrics: MetricsConfig::default(),
            tls: TlsConfig::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for PostgresConfig {
    fn default() -> Self {
        let secs = |s| HumanDuration(Duration::from_secs(s));
        PostgresConfig {
            pool_min: 0,
            pool_max: 10,
            acquire_timeout: secs(5),
            idle_timeout: secs(600),
            statement_timeout: secs(60),
            idle_in_transaction_session_timeout: secs(60),
            lock_timeout: secs(30),
            schema: None,
            read_url: None,
            read_max_lag: secs(2),
        }
    }
}

impl Config {
    /// `STATEHOUSE_*` variables of this process that name no setting (what [`Config::load`]
    /// warns about).
    pub fn unknown_env_vars() -> Result<Vec<String>> {
        let known = config_keys::values(&Serialized::defaults(Config::default()))?;
        let vars = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
        Ok(config_keys::unknown_env_vars(&known, vars))
    }

    /// Loads the configuration; an unknown key in the TOML file is refused, `STATEHOUSE_*`
    /// variables that name no setting are warned about, and relative paths are resolved
    /// against the working directory.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let cwd = std::env::current_dir().context("cannot read the working directory")?;
        let defaults = Serialized::defaults(Config::default());
        let known = config_keys::values(&defaults)?;
        let mut figment = Figment::from(defaults);
        if let Some(file) = file {
            let file = &absolute(file, &cwd);
            if !file.exists() {
                anyhow::bail!("configuration file {} does not exist", file.display());
            }
            let toml = Toml::file_exact(file);
            let given = config_keys::values(&toml)
                .with_context(|| format!("invalid configuration file {}", file.display()))?;
            config_keys::refuse_unknown_keys(&known, &given, file)?;
            figment = figment.merge(toml);
        }
        let vars = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
        for name in config_keys::unknown_env_vars(&known, vars) {
            errln!(
                "warning: environment variable {name} is not a statehouse setting and is ignored (a typo? see the Configuration section of the README)"
            );
        }
        let figment = figment.merge(
            Env::prefixed("STATEHOUSE_")
                .split("__")
                // Client-side settings of the CLI and the log filter, not configuration.
                .ignore(&["config", "server", "token", "log"]),
        );
        let mut config: Config = figment.extract().context("invalid configuration")?;
        config.resolve_paths(&cwd);
        Ok(config)
    }

    /// Makes every path absolute against `cwd` (data dir, key file, self-backup directory,
    /// `sqlite:` URL).
    fn resolve_paths(&mut self, cwd: &Path) {
        self.data_dir = absolute(&self.data_dir, cwd);
        self.master_key_file = self.master_key_file.as_deref().map(|p| absolute(p, cwd));
        self.self_backup.dir = self.self_backup.dir.as_deref().map(|p| absolute(p, cwd));
        self.metrics.token_file = self.metrics.token_file.as_deref().map(|p| absolute(p, cwd));
        self.tls.cert_file = self.tls.cert_file.as_deref().map(|p| absolute(p, cwd));
        self.tls.key_file = self.tls.key_file.as_deref().map(|p| absolute(p, cwd));
        self.database_url = self
            .database_url
            .as_deref()
            .map(|url| absolute_sqlite_url(url, cwd));
    }

    /// Session settings (`auth.*`) with password sign-in as `oidc.local_login` says. Turning
    /// password sign-in off without single sign-on is refused: nobody could sign in.
    pub fn auth_settings(&self) -> Result<AuthSettings> {
        let mut settings = self.auth.settings()?;
        if !self.oidc.local_login && !self.oidc.enabled() {
            anyhow::bail!(
                "oidc.local_login = false needs single sign-on (oidc.issuer_url): nobody could sign in to the web UI \
                 (STATEHOUSE_OIDC__LOCAL_LOGIN, STATEHOUSE_OIDC__ISSUER_URL)"
            );
        }
        settings.password_login = self.oidc.local_login;
        Ok(settings)
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    pub fn self_backup_dir(&self) -> PathBuf {
        self.self_backup
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("self-backups"))
    }

    /// The outbound policy of `[outbound]`: `local` targets inside
    /// `outbound.local_target_roots` (default `<data_dir>/backups`), and statehouse's own store
    /// (a PostgreSQL `database_url`) refused as a workspace's database.
    pub fn outbound_policy(&self) -> std::sync::Arc<OutboundPolicy> {
        let mut roots = self.outbound.local_target_roots.clone();
        if roots.is_empty() {
            roots.push(self.data_dir.join("backups"));
        }
        // Every host of the store's connection string (a multi-host URL names several).
        let store = self
            .database_url
            .as_deref()
            .filter(|_| self.is_postgres())
            .and_then(|url| statehouse_store_postgres::conninfo::endpoints(url).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|(host, port, database)| StoreLocation {
                host,
                port,
                database,
            })
            .collect();
        std::sync::Arc::new(
            OutboundPolicy::from_config(&self.outbound)
                .with_local_roots(roots)
                .with_own_store(store),
        )
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("statehouse.db")
    }

    /// The SQLite database file in use: the data directory's, or a `sqlite:` URL's; `None` on
    /// PostgreSQL (or an in-memory database).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match self
            .database_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            None => Some(self.sqlite_path()),
            Some(url) => sqlite_url_file(url),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url
            .as_deref()
            .is_some_and(statehouse_store_postgres::is_conninfo)
    }
}

/// Passwords in a database URL never reach logs or `Debug` output.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("s3_listen", &self.s3_listen)
            .field("s3_domains", &self.s3_domains)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("master_key_file", &self.master_key_path())
            .field("max_state_bytes", &self.max_state_bytes)
            .field("oidc", &self.oidc)
            .field("metrics", &self.metrics)
            .field("tls", &self.tls)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

/// A connection string with its password replaced by `***` (URL or key/value form).
pub use statehouse_store_postgres::redact_url;

/// A duration written as `30s`, `10m`, `500ms` … (a bare number means seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0.as_millis()))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(HumanDuration(Duration::from_secs(s))),
            Raw::Text(t) => statehouse_core::clock::parse_duration(&t)
                .map(HumanDuration)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use statehouse_core::access::Role;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn the_http_section_has_defaults_env_and_checks() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None).unwrap();
            assert_eq!(c.http.limits().unwrap(), ConnectionLimits::default());
            assert_eq!(c.postgres.acquire_timeout.0, Duration::from_secs(5));
            jail.create_file("c.toml", "[http]\nheader_timeout = \"10s\"\n")?;
            jail.set_env("STATEHOUSE_HTTP__IDLE_TIMEOUT", "2m");
            jail.set_env("STATEHOUSE_HTTP__MAX_CONNECTIONS", "50");
            let limits = Config::load(Some(Path::new("c.toml")))
                .unwrap()
                .http
                .limits()
                .unwrap();
            assert_eq!(limits.timeouts.idle, Duration::from_secs(120));
            assert_eq!(limits.timeouts.header, Duration::from_secs(10));
            assert_eq!(limits.timeouts.body, Duration::from_secs(60));
            assert_eq!(limits.max_connections, 50);
            jail.set_env("STATEHOUSE_HTTP__BODY_TIMEOUT", "0");
            let err = Config::load(None).unwrap().http.limits().unwrap_err();
            assert!(
                err.to_string().contains("STATEHOUSE_HTTP__BODY_TIMEOUT"),
                "{err}"
            );
            jail.set_env("STATEHOUSE_HTTP__BODY_TIMEOUT", "60s");
            jail.set_env("STATEHOUSE_HTTP__MAX_CONNECTIONS", "0");
            assert!(Config::load(None).unwrap().http.limits().is_err());
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn layers_defaults_file_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "listen = \"0.0.0.0:9000\"\n[postgres]\npool_max = 3\nstatement_timeout = \"5s\"\n",
            )?;
            jail.set_env("STATEHOUSE_POSTGRES__POOL_MAX", "7");
            jail.set_env("STATEHOUSE_SERVER", "http://ignored");
            jail.set_env(
                "STATEHOUSE_DATABASE_URL",
                "postgres://u:secret-pw-9f3@db.example/statehouse",
            );
            let c = Config::load(Some(Path::new("c.toml"))).unwrap();
            assert_eq!(c.listen, "0.0.0.0:9000");
            assert_eq!(c.postgres.pool_max, 7);
            assert_eq!(c.postgres.statement_timeout.0, Duration::from_secs(5));
            assert_eq!(c.max_state_bytes, 512 * 1024 * 1024);
            assert_eq!(
                c.audit_retention.0,
                Duration::from_secs(365 * 86_400),
                "audit entries are kept a year by default"
            );
            assert_eq!(c.event_retention.0, Duration::from_secs(30 * 86_400));
            // (A fixed marker: the jail's random directory name may contain any two letters.)
            assert!(!format!("{c:?}").contains("secret-pw-9f3"));
            assert!(
                c.auth.cookie_secure,
                "session cookies are Secure by default"
            );
            assert_eq!(c.auth.settings().unwrap(), AuthSettings::default());
            jail.set_env("STATEHOUSE_AUTH__COOKIE_SECURE", "false");
            jail.set_env("STATEHOUSE_AUTH__SESSION_IDLE", "30m");
            let c = Config::load(Some(Path::new("c.toml"))).unwrap();
            let auth = c.auth.settings().unwrap();
            assert!(!auth.cookie_secure);
            assert_eq!(auth.session_idle_millis, 30 * 60_000);
            jail.set_env("STATEHOUSE_AUTH__SESSION_IDLE", "5s");
            let c = Config::load(Some(Path::new("c.toml"))).unwrap();
            assert!(
                c.auth.settings().is_err(),
                "sub-minute sessions are refused"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn the_oidc_section_has_defaults_a_mapping_env_and_checks() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None).unwrap();
            assert!(!c.oidc.enabled());
            assert!(c.oidc.local_login);
            assert_eq!(c.oidc.scopes, ["openid", "profile", "email", "groups"]);
            assert_eq!(c.oidc.username_claim, "preferred_username");
            assert!(c.auth_settings().unwrap().password_login);
            jail.create_file(
                "c.toml",
                r#"
[oidc]
issuer_url = "https://idp.example/realms/x"
client_id = "statehouse"
client_secret = "plain-secret-value"
public_url = "https://sh.example"
admin_groups = ["ops"]
local_login = false

[oidc.workspace_roles.platform]
default = "editor"
infra = "viewer"
"#,
            )?;
            let c = Config::load(Some(Path::new("c.toml"))).unwrap();
            assert!(c.oidc.enabled());
            assert_eq!(c.oidc.workspace_roles["platform"]["infra"], Role::Viewer);
            assert!(!c.auth_settings().unwrap().password_login);
            let debug = format!("{c:?}");
            assert!(!debug.contains("plain-secret-value"), "{debug}");
            jail.set_env("STATEHOUSE_OIDC__ADMIN_GROUPS", "[a, b]");
            jail.set_env("STATEHOUSE_OIDC__CLIENT_SECRET", "sealed:x.y");
            let c = Config::load(Some(Path::new("c.toml"))).unwrap();
            assert_eq!(c.oidc.admin_groups, ["a", "b"]);
            assert_eq!(c.oidc.client_secret.as_deref(), Some("sealed:x.y"));
            // A typo inside the section, and a role that is none, are refused.
            jail.create_file("bad.toml", "[oidc]\nissuer = \"https://x\"\n")?;
            assert!(Config::load(Some(Path::new("bad.toml"))).is_err());
            jail.create_file(
                "role.toml",
                "[oidc.workspace_roles.g]\ndefault = \"owner\"\n",
            )?;
            assert!(Config::load(Some(Path::new("role.toml"))).is_err());
            // Password login off without single sign-on would lock everyone out.
            jail.clear_env();
            jail.set_env("STATEHOUSE_OIDC__LOCAL_LOGIN", "false");
            let c = Config::load(None).unwrap();
            assert!(c.auth_settings().is_err());
            Ok(())
        });
    }
}
