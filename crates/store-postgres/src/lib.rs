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
//! Beyond what sqlx reads, statehouse reads (module [`conninfo`]):
//! - several hosts, as libpq takes them: `postgres://h1:5432,h2:5433/db`, `?host=h1,h2&port=…`,
//!   `PGHOST=h1,h2`, with `target_session_attrs` (`any`, `read-write`, `primary`; `read-only`,
//!   `standby`, `prefer-standby` for [`PgSettings::read_url`]). The pool stays on the first
//!   host that fits and moves when it stops fitting (module `failover`);
//! - key/value connection strings (`host=h1,h2 port=5432 dbname=statehouse user=…`).
//!
//! Gaps compared with libpq (unknown URL parameters are ignored with a warning in the log):
//! `load_balance_hosts=random`, `hostaddr` lists; `connect_timeout`, `keepalives*` and
//! `tcp_user_timeout` are ignored (use [`PgSettings::acquire_timeout`]); no `service` /
//! `PGSERVICE` (`pg_service.conf`), no `passfile` parameter (the `PGPASSFILE` variable works),
//! no `sslpassword` (encrypted client keys), `sslcrl`, `channel_binding`, `requirepeer`,
//! GSSAPI/Kerberos (`gssencmode`, `krbsrvname`).
//!
//! Per-connection settings ([`PgSettings`] timeouts and `search_path`) are applied with `SET`
//! right after each connection opens, which also works through PgBouncer in session mode (it
//! rejects the `options` startup parameter). PgBouncer in transaction mode would lose them and
//! is not supported.

pub mod conninfo;
pub mod engine;
mod failover;
mod probe;
mod replica;

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use statehouse_core::{Error, Result};
use statehouse_store_sql::SqlStore;

use conninfo::{ConnInfo, SessionAttrs};
pub use conninfo::{is_conninfo, redact as redact_url};
pub use engine::PgEngine;
use engine::Side;
use failover::Failover;
pub use probe::probe;
use replica::Replica;

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
    /// A read replica (a streaming standby of the same cluster) for reads that tolerate lag;
    /// same forms as `url` (default `target_session_attrs` there: any).
    pub read_url: Option<String>,
    /// The most a read from the replica may lag behind the primary; a replica further
    /// behind is not used.
    pub read_max_lag: Duration,
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
            read_url: None,
            read_max_lag: Duration::from_secs(2),
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
            .field("read_url", &self.read_url.as_deref().map(redact_url))
            .field("read_max_lag", &self.read_max_lag)
            .finish()
    }
}

/// Reads a connection string (see the crate docs) on top of the PG* environment; with
/// several hosts, the first one's options.
pub fn connect_options(url: &str) -> Result<PgConnectOptions> {
    Ok(conninfo::parse(url)?.hosts.swap_remove(0))
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

/// Opens the pool (on the host of the URL's list that fits its `target_session_attrs`),
/// opens the read replica's pool if there is one, creates the schema if needed and applies
/// migrations. Several processes may do this at once: migrations run under a PostgreSQL
/// advisory lock.
pub async fn connect(settings: &PgSettings) -> Result<PgStore> {
    if settings.pool_max == 0 || settings.pool_min > settings.pool_max {
        return Err(Error::Config(format!(
            "PostgreSQL pool size: need 1 <= pool_max and pool_min <= pool_max (got min {}, max {})",
            settings.pool_min, settings.pool_max
        )));
    }
    let info = named(conninfo::parse(&settings.url)?);
    if !matches!(
        info.attrs,
        SessionAttrs::Any | SessionAttrs::ReadWrite | SessionAttrs::Primary
    ) {
        return Err(Error::Config(format!(
            "target_session_attrs={} suits postgres.read_url, not the store's URL: statehouse \
             writes there (use read-write or primary)",
            info.attrs.name()
        )));
    }
    if info.hosts.len() > 1 && info.attrs == SessionAttrs::Any {
        tracing::warn!(
            "the PostgreSQL URL lists {} hosts without target_session_attrs=read-write: \
             statehouse uses the first that answers, which may be a standby after a failover",
            info.hosts.len()
        );
    }
    let schema = settings.schema.as_deref().map(quoted_schema).transpose()?;
    let setup: Arc<str> = session_setup(settings, schema.as_deref()).into();
    let primary = open_side(settings, info, &setup, Startup::Connected).await?;
    let replica = match settings
        .read_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        None => None,
        Some(url) => {
            let info = named(conninfo::parse(url)?);
            // The replica may be down at start: reads use the primary until it answers.
            let side = open_side(settings, info, &setup, Startup::Lazy).await?;
            Some(Arc::new(Replica::new(side, settings.read_max_lag)))
        }
    };
    let engine = PgEngine {
        primary,
        replica,
        waiting: Default::default(),
    };
    if !settings.create_if_missing && !holds_a_store(&engine).await? {
        let place = match &settings.schema {
            Some(schema) => format!("in schema {schema:?} "),
            None => String::new(),
        };
        return Err(Error::NotFound(format!(
            "no statehouse store {place}at {}",
            engine.target()
        )));
    }
    if let Some(schema) = &settings.schema {
        create_schema(&engine, schema).await?;
    }
    MIGRATOR.run(engine.pool()).await.map_err(|e| {
        Error::store(format!(
            "PostgreSQL migration failed at {}: {e}",
            engine.target()
        ))
    })?;
    Ok(SqlStore::new(engine))
}

/// Every host named `statehouse` in `pg_stat_activity` unless the URL names it otherwise.
fn named(mut info: ConnInfo) -> ConnInfo {
    for host in &mut info.hosts {
        if host.get_application_name().is_none() {
            *host = host.clone().application_name("statehouse");
        }
    }
    info
}

/// How a pool starts.
#[derive(PartialEq)]
enum Startup {
    /// Connected to a host that fits (waiting up to `acquire_timeout` for one), or an error.
    Connected,
    /// Connections are opened when first needed; the first fitting host is looked for once.
    Lazy,
}

/// A pool on the host of `info` that fits, with the session setup and checks on every
/// connection.
async fn open_side(
    settings: &PgSettings,
    info: ConnInfo,
    setup: &Arc<str>,
    startup: Startup,
) -> Result<Side> {
    let target: Arc<str> = conninfo::describe(&info).into();
    let probe_timeout = settings
        .acquire_timeout
        .clamp(Duration::from_millis(500), Duration::from_secs(3));
    let pool_name = match startup {
        Startup::Connected => "primary",
        Startup::Lazy => "replica",
    };
    let failover = Arc::new(Failover::new(info, pool_name, probe_timeout));
    if failover.watches() && startup == Startup::Lazy {
        match failover.find().await {
            Ok(index) => failover.start_at(index),
            Err(why) => tracing::warn!("PostgreSQL at {target}: {why}"),
        }
    } else if failover.watches() {
        let deadline = tokio::time::Instant::now() + settings.acquire_timeout;
        loop {
            match failover.find().await {
                Ok(index) => {
                    failover.start_at(index);
                    break;
                }
                Err(why) if tokio::time::Instant::now() >= deadline => {
                    return Err(Error::store(format!(
                        "cannot connect to PostgreSQL at {target}: {why}"
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
    let options = failover.current_options();
    let pool_setup = setup.clone();
    let checks = failover.clone();
    let keeps = failover.clone();
    let options_of_pool = PgPoolOptions::new()
        .min_connections(settings.pool_min)
        .max_connections(settings.pool_max)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(settings.idle_timeout)
        // No ping before every checkout (it doubled the round trips of small requests).
        // A connection broken since its last use fails that one request, is discarded
        // (with every connection opened before it: see `failover`), and the client's retry
        // (Terraform retries 5xx) gets a fresh one.
        .test_before_acquire(false)
        .before_acquire(move |_conn, meta| {
            let keep = keeps.keeps(meta.age);
            Box::pin(async move { Ok(keep) })
        })
        // A connection keeps the largest message it ever sent or received in its buffers (a
        // 50 MB state, a 1 MiB chunk): back to the default size whenever it returns to the
        // pool, so the pool does not hold that much per connection for good.
        .after_release(|conn, _meta| {
            conn.shrink_buffers();
            Box::pin(async { Ok(true) })
        })
        .after_connect(move |conn, _meta| {
            let setup = pool_setup.clone();
            let checks = checks.clone();
            Box::pin(async move {
                if !setup.is_empty() {
                    sqlx::raw_sql(AssertSqlSafe(setup))
                        .execute(&mut *conn)
                        .await?;
                }
                checks.check_session(conn).await
            })
        });
    let pool = match startup {
        Startup::Connected => options_of_pool.connect_with(options.clone()).await,
        Startup::Lazy => Ok(options_of_pool.connect_lazy_with(options.clone())),
    };
    match pool {
        Ok(pool) => Ok(Side {
            pool,
            failover,
            target,
            is_replica: startup == Startup::Lazy,
        }),
        Err(e) => Err(connect_failure(&options, setup, &target, e).await),
    }
}

/// Whether statehouse's tables exist where this store looks (its schema, or the
/// connection's `search_path`).
async fn holds_a_store(engine: &PgEngine) -> Result<bool> {
    sqlx::query_scalar("SELECT to_regclass('workspaces') IS NOT NULL")
        .fetch_one(engine.pool())
        .await
        .map_err(|e| engine::db_error(engine.target(), e).into())
}

/// Creates `schema` unless it exists (checked first, so a role without CREATE on the
/// database can use a schema an admin made for it).
async fn create_schema(engine: &PgEngine, schema: &str) -> Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(engine.pool())
            .await
            .map_err(|e| Error::from(engine::db_error(engine.target(), e)))?;
    if exists {
        return Ok(());
    }
    let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quoted_schema(schema)?);
    match sqlx::query(AssertSqlSafe(sql)).execute(engine.pool()).await {
        Ok(_) => Ok(()),
        // Another process created it at the same moment (pg_namespace unique index).
        Err(sqlx::Error::Database(d))
            if d.is_unique_violation() || d.code().as_deref() == Some("42P06") =>
        {
            Ok(())
        }
        Err(e) => Err(Error::store(format!(
            "cannot create schema {schema:?} at {}: {e}",
            engine.target()
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
        let info = conninfo::parse("postgres://alice:topsecret@db.example:6543/state").unwrap();
        let d = conninfo::describe(&info);
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
