//! What a registered database and a workspace's backup settings hold, as stored: public
//! settings (JSON on the row) and secrets (a sealed JSON object). Parsing and validation live
//! here so the API, the CLI and the scheduler agree.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use statehouse_core::{Error, Result};

use crate::exclusions::DumpExclusions;
use crate::pipeline::{DEFAULT_ZSTD_LEVEL, PgConnection, ZSTD_LEVELS};
use crate::retention::RetentionPolicy;
use crate::schedule::ScheduleSpec;

/// Where to connect, without the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSettings {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// The database (single mode); the maintenance database to connect to (server mode).
    pub database: String,
    pub user: String,
    /// libpq sslmode (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslmode: Option<String>,
    /// PEM of the CA that signed the server's certificate (`verify-ca`/`verify-full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
}

fn default_port() -> u16 {
    5432
}

const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

impl ConnectionSettings {
    /// Reads `postgres://user:password@host:port/database?sslmode=…`; the password comes back
    /// separately (it is a secret).
    pub fn from_url(url: &str) -> Result<(ConnectionSettings, Option<String>)> {
        let pg = PgConnection::from_url(url).map_err(|e| Error::BadRequest(e.to_string()))?;
        let settings = ConnectionSettings {
            host: pg.host,
            port: pg.port,
            database: pg.database,
            user: pg.user,
            sslmode: pg.sslmode,
            ca_cert: None,
        };
        settings.validate()?;
        Ok((settings, pg.password))
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::BadRequest(m));
        if self.host.trim().is_empty() {
            return bad("the database host is empty".into());
        }
        if self.port == 0 {
            return bad("the database port must be 1-65535".into());
        }
        if self.database.trim().is_empty() || self.user.trim().is_empty() {
            return bad("the database name and user must not be empty".into());
        }
        if let Some(mode) = &self.sslmode
            && !SSL_MODES.contains(&mode.as_str())
        {
            return bad(format!(
                "sslmode {mode:?} is not one of {}",
                SSL_MODES.join(", ")
            ));
        }
        if let Some(pem) = &self.ca_cert
            && !pem.contains("-----BEGIN CERTIFICATE-----")
        {
            return bad("ca_cert must be a PEM certificate (-----BEGIN CERTIFICATE-----)".into());
        }
        Ok(())
    }

    /// The same server, another database.
    pub fn with_database(&self, database: &str) -> ConnectionSettings {
        ConnectionSettings {
            database: database.to_owned(),
            ..self.clone()
        }
    }

    /// The connection to `database` on this server, with its password, checked against the
    /// outbound policy whenever it connects (a workspace named it).
    pub fn to_pg(
        &self,
        database: &str,
        password: Option<String>,
        policy: std::sync::Arc<statehouse_outbound::OutboundPolicy>,
    ) -> PgConnection {
        PgConnection {
            host: self.host.clone(),
            port: self.port,
            database: database.to_owned(),
            user: self.user.clone(),
            password,
            sslmode: self.sslmode.clone(),
            ca_certificate: self.ca_cert.clone(),
            connect_timeout: crate::connection::DEFAULT_CONNECT_TIMEOUT,
            policy: Some(policy),
        }
    }

    /// Whether `other` is the same server (host and port): a stored password may only go
    /// where it went before.
    pub fn same_server(&self, other: &ConnectionSettings) -> bool {
        self.host == other.host && self.port == other.port
    }

    /// `user@host:port/database`, for messages (never the password).
    pub fn display(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

/// One database, or every database of a server found at each run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DatabaseMode {
    Single,
    /// Whole server: connect to `connection.database` (e.g. `postgres`) and back up every
    /// database matching `include` (default all) and not `exclude`; new ones are picked up.
    Server {
        #[serde(default)]
        include: Vec<String>,
        #[serde(default)]
        exclude: Vec<String>,
    },
}

/// Verification of a database's backups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySettings {
    /// Verify each backup right after it succeeds.
    #[serde(default)]
    pub after_backup: bool,
    /// Also verify the newest backup on this schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
}

/// Health checks of a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_health_interval")]
    pub interval_secs: u64,
    #[serde(default = "default_health_timeout")]
    pub timeout_secs: u64,
    /// Consecutive failed checks before the database counts as down.
    #[serde(default = "default_down_after")]
    pub down_after: u32,
}

fn yes() -> bool {
    true
}
fn default_health_interval() -> u64 {
    60
}
fn default_health_timeout() -> u64 {
    5
}
fn default_down_after() -> u32 {
    3
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            enabled: true,
            interval_secs: default_health_interval(),
            timeout_secs: default_health_timeout(),
            down_after: default_down_after(),
        }
    }
}

/// Everything about a registered database except its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub connection: ConnectionSettings,
    #[serde(default = "single")]
    pub mode: DatabaseMode,
    /// No schedule: backups run only when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    #[serde(default)]
    pub retention: RetentionPolicy,
    #[serde(default)]
    pub verify: VerifySettings,
    #[serde(default)]
    pub health: HealthSettings,
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// No bytes for this long fails a backup.
    #[serde(default = "default_stall_secs")]
    pub stall_timeout_secs: u64,
    /// A backup running longer than this fails.
    #[serde(default = "default_total_secs")]
    pub total_timeout_secs: u64,
    /// Further attempts after a failed scheduled or manual backup.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Schemas, tables and table data the backups leave out (pg_dump patterns; in
    /// whole-server mode, in every database).
    #[serde(default, skip_serializing_if = "DumpExclusions::is_empty")]
    pub exclude: DumpExclusions,
}

fn single() -> DatabaseMode {
    DatabaseMode::Single
}
fn default_zstd_level() -> i32 {
    DEFAULT_ZSTD_LEVEL
}
fn default_stall_secs() -> u64 {
    300
}
fn default_total_secs() -> u64 {
    12 * 3_600
}
fn default_retries() -> u32 {
    2
}

/// First retry after this long; each further one waits 4× longer, at most [`MAX_RETRY_DELAY`].
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(60);
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3_600);

impl DatabaseSettings {
    pub fn new(connection: ConnectionSettings) -> DatabaseSettings {
        DatabaseSettings {
            connection,
            mode: DatabaseMode::Single,
            schedule: None,
            retention: RetentionPolicy::default(),
            verify: VerifySettings::default(),
            health: HealthSettings::default(),
            zstd_level: DEFAULT_ZSTD_LEVEL,
            stall_timeout_secs: default_stall_secs(),
            total_timeout_secs: default_total_secs(),
            retries: default_retries(),
            exclude: DumpExclusions::default(),
        }
    }

    pub fn from_json(value: &serde_json::Value) -> Result<DatabaseSettings> {
        serde_json::from_value(value.clone())
            .map_err(|e| Error::Internal(format!("stored database settings do not parse: {e}")))
    }

    pub fn to_json(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).map_err(|e| Error::Internal(e.to_string()))
    }

    pub fn validate(&self) -> Result<()> {
        self.connection.validate()?;
        if let Some(schedule) = &self.schedule {
            schedule.validate()?;
        }
        if let Some(schedule) = &self.verify.schedule {
            schedule.validate()?;
        }
        self.retention.validate()?;
        // The pipeline's range: higher levels need more memory than a backup may use.
        if !ZSTD_LEVELS.contains(&self.zstd_level) {
            return Err(Error::BadRequest(format!(
                "zstd_level {} is out of range; use {}-{} (default {DEFAULT_ZSTD_LEVEL}; levels \
                 above {} need more memory than a backup may use)",
                self.zstd_level,
                ZSTD_LEVELS.start(),
                ZSTD_LEVELS.end(),
                ZSTD_LEVELS.end()
            )));
        }
        if self.stall_timeout_secs < 10 || self.total_timeout_secs < 60 {
            return Err(Error::BadRequest(
                "stall_timeout_secs must be at least 10 and total_timeout_secs at least 60".into(),
            ));
        }
        if self.retries > 10 {
            return Err(Error::BadRequest("retries must be at most 10".into()));
        }
        let h = &self.health;
        if h.interval_secs < 10 || h.timeout_secs == 0 || h.timeout_secs > h.interval_secs {
            return Err(Error::BadRequest(
                "health interval_secs must be at least 10 and timeout_secs between 1 and the interval"
                    .into(),
            ));
        }
        if h.down_after == 0 {
            return Err(Error::BadRequest(
                "health down_after must be at least 1".into(),
            ));
        }
        self.exclude.validate().map_err(Error::BadRequest)?;
        if let DatabaseMode::Server { include, exclude } = &self.mode {
            for pattern in include.iter().chain(exclude) {
                if pattern.trim().is_empty() {
                    return Err(Error::BadRequest(
                        "database include/exclude patterns must not be empty".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Delay before retry number `attempt` (the first retry is attempt 2).
    pub fn retry_delay(attempt: i64) -> Duration {
        let exponent = u32::try_from(attempt.saturating_sub(2).clamp(0, 10)).unwrap_or(0);
        FIRST_RETRY_DELAY
            .saturating_mul(4u32.saturating_pow(exponent))
            .min(MAX_RETRY_DELAY)
    }
}

/// A database's secret settings.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseSecrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for DatabaseSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseSecrets(***)")
    }
}

/// A workspace's backup encryption and verification server (public part).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceBackupConfig {
    /// The public half (`age1…`) of the key pair statehouse generated and keeps: with it the
    /// server can restore and verify this workspace's backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_recipient: Option<String>,
    /// Recipients whose identities only their owners hold (`age1…`).
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Encrypt with a passphrase instead (age allows no other recipient with it).
    #[serde(default)]
    pub passphrase: bool,
    /// Where full verifications restore to (a scratch database is created and dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_server: Option<ConnectionSettings>,
}

/// A workspace's backup secrets.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceBackupSecrets {
    /// `AGE-SECRET-KEY-1…` of the managed key pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_identity: Option<String>,
    /// Managed identities replaced by a newer one, oldest first: older backups need them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_identities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_password: Option<String>,
}

impl std::fmt::Debug for WorkspaceBackupSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkspaceBackupSecrets(***)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn connection() -> ConnectionSettings {
        ConnectionSettings::from_url("postgres://app:s3cret@db.example:6432/shop?sslmode=require")
            .unwrap()
            .0
    }

    #[test]
    fn urls_split_into_settings_and_password() {
        let (c, password) = ConnectionSettings::from_url(
            "postgres://app:s3cret@db.example:6432/shop?sslmode=require",
        )
        .unwrap();
        assert_eq!(password.as_deref(), Some("s3cret"));
        assert_eq!(c.display(), "app@db.example:6432/shop");
        assert_eq!(c.sslmode.as_deref(), Some("require"));
        assert!(!serde_json::to_string(&c).unwrap().contains("s3cret"));
        let err = ConnectionSettings::from_url("postgres://a@h/d?sslmode=sometimes").unwrap_err();
        assert!(err.to_string().contains("sslmode"), "{err}");
    }

    #[test]
    fn defaults_fill_in_and_round_trip() {
        let settings: DatabaseSettings = serde_json::from_value(serde_json::json!({
            "connection": {"host": "h", "database": "d", "user": "u"}
        }))
        .unwrap();
        assert_eq!(settings.mode, DatabaseMode::Single);
        assert_eq!(settings.zstd_level, DEFAULT_ZSTD_LEVEL);
        assert_eq!(settings.connection.port, 5432);
        assert!(settings.health.enabled);
        settings.validate().unwrap();
        let back = DatabaseSettings::from_json(&settings.to_json().unwrap()).unwrap();
        assert_eq!(back, settings);
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut s = DatabaseSettings::new(connection());
        s.zstd_level = 30;
        assert!(s.validate().is_err());
        // Levels the pipeline would refuse at backup time are refused when saved.
        s.zstd_level = 22;
        assert!(s.validate().is_err());
        s.zstd_level = 19;
        s.validate().unwrap();
        let mut s = DatabaseSettings::new(connection());
        s.health.down_after = 0;
        assert!(s.validate().is_err());
        let unknown = serde_json::from_value::<DatabaseSettings>(serde_json::json!({
            "connection": {"host": "h", "database": "d", "user": "u"},
            "shedule": {"every": "hourly"}
        }));
        assert!(unknown.is_err(), "typos are refused, not ignored");
    }

    #[test]
    fn retries_back_off_and_cap() {
        assert_eq!(DatabaseSettings::retry_delay(2), Duration::from_secs(60));
        assert_eq!(DatabaseSettings::retry_delay(3), Duration::from_secs(240));
        assert_eq!(DatabaseSettings::retry_delay(9), MAX_RETRY_DELAY);
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = DatabaseSecrets {
            password: Some("hunter2".into()),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
