//! The PostgreSQL store, for production and for several statehouse replicas on one database:
//! the one SQL store (`statehouse-store-sql`) over [`engine::PgEngine`]. This crate keeps what
//! only PostgreSQL has: connecting (URL, pool, per-connection settings, schema), migrations
//! (under PostgreSQL's advisory lock, so replicas may start at once) and error classification.
//!
//! # Connecting
//!
//! [`PgSettings::url`] is a `postgres://` or `postgresql://` URL, read by sqlx 0.9 the way libpq
//! reads URLs: `user:password@host:port/dbname`, and the query parameters `host` (a path means a
//! Unix socket directory: `postgres:///statehouse?host=/var/run/postgresql`), `hostaddr`,
//! `port`, `dbname`, `user`, `password`, `sslmode` (`disable`, `allow`, `prefer`, `require`,
//! `verify-ca`, `verify-full`), `sslrootcert`, `sslcert`, `sslkey`, `application_name` and
//! `options`. Whatever the URL leaves out comes from the libpq environment variables `PGHOST`,
//! `PGHOSTADDR`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`,
//! `PGSSLCERT`, `PGSSLKEY`, `PGAPPNAME`, `PGOPTIONS`, and the password file (`PGPASSFILE` or
//! `~/.pgpass`). An empty URL (or a bare `postgres://`) means "environment only".
//!
//! Gaps compared with libpq (sqlx 0.9 does not implement them; unknown URL parameters are
//! ignored with a warning in the log):
//! - one host only: no `host1,host2` lists, `target_session_attrs` or `load_balance_hosts`.
//!   For PostgreSQL HA, point the URL at the primary's virtual IP or at a proxy (HAProxy,
//!   PgBouncer in session mode, Patroni's REST-routed endpoint);
//! - `connect_timeout`, `keepalives*` and `tcp_user_timeout` are ignored: use
//!   [`PgSettings::acquire_timeout`];
//! - no `service` / `PGSERVICE` (`pg_service.conf`), no `passfile` URL parameter (the
//!   `PGPASSFILE` variable works), no `sslpassword` (encrypted client keys), `sslcrl`,
//!   `channel_binding`, `requirepeer`, GSSAPI/Kerberos (`gssencmode`, `krbsrvname`);
//! - key/value connection strings (`host=… dbname=…`) are not accepted, only URLs.
//!
//! Per-connection settings ([`PgSettings`] timeouts and `search_path`) are applied with `SET`
//! right after each connection opens, which also works through PgBouncer in session mode (it
//! rejects the `options` startup parameter). PgBouncer in transaction mode would lose them and
//! is not supported.

pub mod engine;
mod probe;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions};

use statehouse_core::{Error, Result};
use statehouse_store_sql::SqlStore;

pub use engine::PgEngine;
pub use probe::probe;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How to reach PostgreSQL and how to behave there.
#[derive(Clone)]
pub struct PgSettings {
    /// `postgres://user:password@host:port/dbname?sslmode=…`; empty: PG* environment only.
    pub url: String,
    /// Connections kept open even when idle.
    pub pool_min: u32,
    /// Most connections this process opens.
    pub pool_max: u32,
    /// How long a request waits for a connection (and how long connecting may take at start):
    /// while the database is down, requests fail (`503`) after this long.
    pub acquire_timeout: Duration,
    /// Idle connections above `pool_min` are closed after this long.
    pub idle_timeout: Option<Duration>,
    /// `statement_timeout` of every connection; `None` keeps the server's or role's setting.
    pub statement_timeout: Option<Duration>,
    /// `idle_in_transaction_session_timeout` of every connection; `None`: server setting.
    pub idle_in_transaction_session_timeout: Option<Duration>,
    /// `lock_timeout` of every connection (waiting for a state's row lock); `None`: server setting.
    pub lock_timeout: Option<Duration>,
    /// Schema holding statehouse's tables (created if missing, first on `search_path`); `None`:
    /// the role's default `search_path` (usually `public`). A plain identifier: a letter or `_`,
    /// then letters, digits or `_`, at most 63 characters; case is kept.
    pub schema: Option<String>,
    /// Create the schema and tables when there is no store yet (true), or fail with
    /// `NotFound` (commands that must find an existing store).
    pub create_if_missing: bool,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            url: String::new(),
            pool_min: 0,
            pool_max: 10,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            statement_timeout: Some(Duration::from_secs(60)),
            idle_in_transaction_session_timeout: Some(Duration::from_secs(60)),
            lock_timeout: Some(Duration::from_secs(30)),
            schema: None,
            create_if_missing: true,
        }
    }
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &redact_url(&self.url))
            .field("pool_min", &self.pool_min)
            .field("pool_max", &self.pool_max)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field(
                "idle_in_transaction_session_timeout",
                &self.idle_in_transaction_session_timeout,
            )
            .field("lock_timeout", &self.lock_timeout)
            .field("schema", &self.schema)
            .finish()
    }
}

/// The URL with any password (in the user info or a `password=` parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let main = match (main.find("://"), main.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &main[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &main[..scheme_end + 3], &main[at..]),
                None => main.to_owned(),
            }
        }
        _ => main.to_owned(),
    };
    match query {
        None => main,
        Some(q) => {
            let params: Vec<String> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{main}?{}", params.join("&"))
        }
    }
}

/// Reads `url` on top of the PG* environment (see the crate docs).
pub fn connect_options(url: &str) -> Result<PgConnectOptions> {
    let url = url.trim();
    if url.is_empty() {
        return Ok(PgConnectOptions::new());
    }
    let scheme_ok = ["postgres://", "postgresql://"].iter().any(|s| {
        url.get(..s.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(s))
    });
    if !scheme_ok {
        return Err(Error::Config(format!(
            "invalid PostgreSQL URL {:?}: it must start with postgres:// or postgresql://",
            redact_url(url)
        )));
    }
    // sqlx starts from the PG* environment (what `PgConnectOptions::new()` reads), applies the
    // URL's parts and parameters, then looks the password up in the password file if still
    // unset. A URL without host (`postgres://`, `postgres:///db`) keeps PGHOST / the default.
    PgConnectOptions::from_str(url)
        .map_err(|e| Error::Config(format!("invalid PostgreSQL URL {:?}: {e}", redact_url(url))))
}

/// `host:port` (or the socket), database and user, for messages. Never the password.
fn describe(options: &PgConnectOptions) -> String {
    let place = match options.get_socket() {
        Some(dir) => format!("socket {}/.s.PGSQL.{}", dir.display(), options.get_port()),
        None if options.get_host().starts_with('/') => format!(
            "socket {}/.s.PGSQL.{}",
            options.get_host(),
            options.get_port()
        ),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    let user = options.get_username();
    let database = options.get_database().unwrap_or(user);
    format!("{place} (database {database:?}, user {user:?})")
}

/// Checks that `schema` is a plain identifier and returns it double-quoted.
fn quoted_schema(schema: &str) -> Result<String> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok || !rest_ok || schema.len() > 63 || schema.to_ascii_lowercase().starts_with("pg_")
    {
        return Err(Error::Config(format!(
            "invalid PostgreSQL schema {schema:?}: use 1-63 characters a-z, A-Z, 0-9 or '_', \
             starting with a letter or '_' (and not with pg_)"
        )));
    }
    Ok(format!("\"{schema}\""))
}

/// The `SET` statements run on every new connection.
fn session_setup(settings: &PgSettings, schema: Option<&str>) -> String {
    let mut sql = String::new();
    let timeouts = [
        ("statement_timeout", settings.statement_timeout),
        (
            "idle_in_transaction_session_timeout",
            settings.idle_in_transaction_session_timeout,
        ),
        ("lock_timeout", settings.lock_timeout),
    ];
    for (name, value) in timeouts {
        if let Some(value) = value {
            // At least 1 ms: 0 would mean "no timeout".
            let millis = value.as_millis().clamp(1, i32::MAX as u128);
            sql.push_str(&format!("SET {name} = {millis};"));
        }
    }
    if let Some(schema) = schema {
        // Only our schema (pg_catalog is always searched): nothing of another schema is seen.
        sql.push_str(&format!("SET search_path TO {schema};"));
    }
    sql
}

/// The store on PostgreSQL.
pub type PgStore = SqlStore<PgEngine>;

/// Opens the pool, creates the schema if needed and applies migrations. Several processes
/// may do this at once: migrations run under a PostgreSQL advisory lock.
pub async fn connect(settings: &PgSettings) -> Result<PgStore> {
    let mut options = connect_options(&settings.url)?;
    if options.get_application_name().is_none() {
        options = options.application_name("statehouse");
    }
    let target: Arc<str> = describe(&options).into();
    let schema = settings.schema.as_deref().map(quoted_schema).transpose()?;
    if settings.pool_max == 0 || settings.pool_min > settings.pool_max {
        return Err(Error::Config(format!(
            "PostgreSQL pool size: need 1 <= pool_max and pool_min <= pool_max (got min {}, max {})",
            settings.pool_min, settings.pool_max
        )));
    }
    let setup: Arc<str> = session_setup(settings, schema.as_deref()).into();
    let pool_setup = setup.clone();
    let pool = PgPoolOptions::new()
        .min_connections(settings.pool_min)
        .max_connections(settings.pool_max)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(settings.idle_timeout)
        // No ping before every checkout (it doubled the round trips of small requests).
        // A connection broken since its last use fails that one request, is discarded,
        // and the client's retry (Terraform retries 5xx) gets a fresh one.
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            let setup = pool_setup.clone();
            Box::pin(async move {
                if !setup.is_empty() {
                    sqlx::raw_sql(AssertSqlSafe(setup)).execute(conn).await?;
                }
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await;
    let pool = match pool {
        Ok(pool) => pool,
        Err(e) => return Err(connect_failure(&options, &setup, &target, e).await),
    };
    let engine = PgEngine {
        pool,
        target,
        waiting: Default::default(),
    };
    if !settings.create_if_missing && !holds_a_store(&engine).await? {
        let place = match &settings.schema {
            Some(schema) => format!("in schema {schema:?} "),
            None => String::new(),
        };
        return Err(Error::NotFound(format!(
            "no statehouse store {place}at {}",
            engine.target
        )));
    }
    if let Some(schema) = &settings.schema {
        create_schema(&engine, schema).await?;
    }
    MIGRATOR.run(&engine.pool).await.map_err(|e| {
        Error::store(format!(
            "PostgreSQL migration failed at {}: {e}",
            engine.target
        ))
    })?;
    Ok(SqlStore::new(engine))
}

/// Whether statehouse's tables exist where this store looks (its schema, or the
/// connection's `search_path`).
async fn holds_a_store(engine: &PgEngine) -> Result<bool> {
    sqlx::query_scalar("SELECT to_regclass('workspaces') IS NOT NULL")
        .fetch_one(&engine.pool)
        .await
        .map_err(|e| engine::db_error(&engine.target, e).into())
}

/// Creates `schema` unless it exists (checked first, so a role without CREATE on the
/// database can use a schema an admin made for it).
async fn create_schema(engine: &PgEngine, schema: &str) -> Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&engine.pool)
            .await
            .map_err(|e| Error::from(engine::db_error(&engine.target, e)))?;
    if exists {
        return Ok(());
    }
    let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quoted_schema(schema)?);
    match sqlx::query(AssertSqlSafe(sql)).execute(&engine.pool).await {
        Ok(_) => Ok(()),
        // Another process created it at the same moment (pg_namespace unique index).
        Err(sqlx::Error::Database(d))
            if d.is_unique_violation() || d.code().as_deref() == Some("42P06") =>
        {
            Ok(())
        }
        Err(e) => Err(Error::store(format!(
            "cannot create schema {schema:?} at {}: {e}",
            engine.target
        ))),
    }
}

/// A pool that never came up: try once more directly to report why (the pool only says it
/// timed out), naming the server but never the password.
async fn connect_failure(
    options: &PgConnectOptions,
    setup: &str,
    target: &str,
    e: sqlx::Error,
) -> Error {
    let cause = match e {
        sqlx::Error::PoolTimedOut => {
            let direct = async {
                let mut conn = options.connect().await?;
                if !setup.is_empty() {
                    sqlx::raw_sql(AssertSqlSafe(setup.to_owned()))
                        .execute(&mut conn)
                        .await?;
                }
                Ok::<_, sqlx::Error>(())
            };
            match tokio::time::timeout(Duration::from_secs(10), direct).await {
                Ok(Err(direct)) => direct.to_string(),
                Ok(Ok(())) => "timed out waiting for a connection".to_owned(),
                Err(_) => "no answer within 10 s".to_owned(),
            }
        }
        other => other.to_string(),
    };
    Error::store(format!("cannot connect to PostgreSQL at {target}: {cause}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert_eq!(
            quoted_schema("statehouse").ok(),
            Some("\"statehouse\"".into())
        );
        assert_eq!(quoted_schema("_T1").ok(), Some("\"_T1\"".into()));
        for bad in [
            "",
            "1abc",
            "a-b",
            "a\"b",
            "a b",
            "pg_temp",
            "ü",
            &"x".repeat(64),
        ] {
            assert!(
                matches!(quoted_schema(bad), Err(Error::Config(_))),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db?sslmode=require"),
            "postgres://u:***@h:5432/db?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://h/db?user=u&password=secret&x=1"),
            "postgresql://h/db?user=u&password=***&x=1"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url(""), "");
    }

    #[test]
    fn url_options_follow_libpq() {
        let o = connect_options(
            "postgres://alice:pw@db.example:6543/state?sslmode=require&application_name=x",
        )
        .unwrap();
        assert_eq!(o.get_host(), "db.example");
        assert_eq!(o.get_port(), 6543);
        assert_eq!(o.get_username(), "alice");
        assert_eq!(o.get_database(), Some("state"));
        assert!(matches!(
            o.get_ssl_mode(),
            sqlx::postgres::PgSslMode::Require
        ));
        assert_eq!(o.get_application_name(), Some("x"));
        let o = connect_options("postgresql:///state?host=/var/run/postgresql&port=5433").unwrap();
        assert_eq!(
            o.get_socket().map(|p| p.display().to_string()),
            Some("/var/run/postgresql".into())
        );
        assert_eq!(o.get_port(), 5433);
        assert_eq!(o.get_database(), Some("state"));
        for empty in ["", "postgres://", "postgresql:///db"] {
            let o = connect_options(empty).unwrap();
            assert!(
                !o.get_host().is_empty() || o.get_socket().is_some(),
                "{empty:?} should fall back to PGHOST or the default host"
            );
        }
        for bad in ["mysql://h/db", "h:5432", "postgres://h:notaport/db"] {
            let err = connect_options(bad).err();
            assert!(matches!(err, Some(Error::Config(_))), "{bad:?}: {err:?}");
        }
        let err = connect_options("postgres://u:topsecret@h:x/db")
            .err()
            .unwrap();
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }

    #[test]
    fn descriptions_name_host_port_not_password() {
        let o = connect_options("postgres://alice:topsecret@db.example:6543/state").unwrap();
        let d = describe(&o);
        assert!(
            d.contains("db.example:6543") && d.contains("state") && d.contains("alice"),
            "{d}"
        );
        assert!(!d.contains("topsecret"), "{d}");
    }

    #[test]
    fn session_setup_sets_timeouts_and_path() {
        let settings = PgSettings::default();
        let sql = session_setup(&settings, Some("\"s1\""));
        assert!(sql.contains("SET statement_timeout = 60000;"), "{sql}");
        assert!(
            sql.contains("SET idle_in_transaction_session_timeout = 60000;"),
            "{sql}"
        );
        assert!(sql.contains("SET lock_timeout = 30000;"), "{sql}");
        assert!(sql.contains("SET search_path TO \"s1\";"), "{sql}");
        let none = PgSettings {
            statement_timeout: None,
            idle_in_transaction_session_timeout: None,
            lock_timeout: None,
            ..PgSettings::default()
        };
        assert_eq!(session_setup(&none, None), "");
        let tiny = PgSettings {
            statement_timeout: Some(Duration::from_micros(10)),
            ..none
        };
        assert_eq!(session_setup(&tiny, None), "SET statement_timeout = 1;");
    }

    #[test]
    fn settings_debug_hides_the_password() {
        let settings = PgSettings {
            url: "postgres://u:topsecret@h/db".into(),
            ..PgSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("topsecret") && shown.contains("u:***@h"),
            "{shown}"
        );
    }
}
