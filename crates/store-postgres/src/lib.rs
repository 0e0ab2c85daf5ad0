//! The PostgreSQL store, for production and for several statehouse replicas on one database.
//!
//! Same semantics as the SQLite store, same [`Store`] trait, its own `migrations/`. Every
//! mutating call is one transaction at READ COMMITTED that first takes the state's row lock
//! (`SELECT … FOR UPDATE`) and then reads the row afresh, so writes, locks, unlocks and deletes
//! on one state serialize across connections and processes, and [`rules`] decide on current
//! rows. States are created with `INSERT … ON CONFLICT DO NOTHING` against the partial unique
//! index on live names, so racing creators end up on one row.
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

mod audit;
mod backups;
pub mod engine;
mod pending;
mod seal;
mod webhooks;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, ConnectOptions, Postgres, Row, Transaction};

use statehouse_core::access::{Role, Token};
use statehouse_core::clock::Timestamp;
use statehouse_core::crypto::SealedBody;
use statehouse_core::model::{
    DeletedState, HeldLock, LockOutcome, LockRequest, NewToken, StateFilter, StateRecord,
    UnlockOutcome, UnlockRequest, VersionMeta, VersionWrite, Workspace, WorkspaceSettings,
    WriteOutcome,
};
use statehouse_core::rules::{self, Incoming, WriteContext, WriteDecision};
use statehouse_core::store::Store;
use statehouse_core::store::pending::{JournalEntries, Journaling};
use statehouse_core::store::search::ResourceSearch;
use statehouse_core::{Error, Result};

mod accounts;
mod keys;
mod search;

use crate::pending::insert_pending;

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

pub struct PgStore {
    pool: PgPool,
    /// Where the database is, for error messages (no password).
    target: Arc<str>,
    /// The journal's head as this process last wrote it (appends check it in the database).
    journal_head: std::sync::Mutex<Option<statehouse_core::store::seal::JournalHead>>,
}

impl PgStore {
    /// Opens the pool, creates the schema if needed and applies migrations. Several processes
    /// may do this at once: migrations run under a PostgreSQL advisory lock.
    pub async fn connect(settings: &PgSettings) -> Result<Self> {
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
        let store = PgStore {
            pool,
            target,
            journal_head: std::sync::Mutex::new(None),
        };
        if !settings.create_if_missing && !store.holds_a_store().await? {
            let place = match &settings.schema {
                Some(schema) => format!("in schema {schema:?} "),
                None => String::new(),
            };
            return Err(Error::NotFound(format!(
                "no statehouse store {place}at {}",
                store.target
            )));
        }
        if let Some(schema) = &settings.schema {
            store.create_schema(schema).await?;
        }
        MIGRATOR.run(&store.pool).await.map_err(|e| {
            Error::Store(format!(
                "PostgreSQL migration failed at {}: {e}",
                store.target
            ))
        })?;
        Ok(store)
    }

    /// Whether statehouse's tables exist where this store looks (its schema, or the
    /// connection's `search_path`).
    async fn holds_a_store(&self) -> Result<bool> {
        sqlx::query_scalar("SELECT to_regclass('workspaces') IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.db_err(e))
    }

    /// Creates `schema` unless it exists (checked first, so a role without CREATE on the
    /// database can use a schema an admin made for it).
    async fn create_schema(&self, schema: &str) -> Result<()> {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.db_err(e))?;
        if exists {
            return Ok(());
        }
        let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quoted_schema(schema)?);
        match sqlx::query(AssertSqlSafe(sql)).execute(&self.pool).await {
            Ok(_) => Ok(()),
            // Another process created it at the same moment (pg_namespace unique index).
            Err(sqlx::Error::Database(d))
                if d.is_unique_violation() || d.code().as_deref() == Some("42P06") =>
            {
                Ok(())
            }
            Err(e) => Err(Error::Store(format!(
                "cannot create schema {schema:?} at {}: {e}",
                self.target
            ))),
        }
    }

    /// The pool, for maintenance commands (backups, imports) that need raw access.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection (waits for checked-out ones to come back).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn db_err(&self, e: sqlx::Error) -> Error {
        map_error(&self.target, e)
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(|e| self.db_err(e))
    }

    /// Stores a change's journal entries in its transaction, then commits it.
    async fn commit_with(
        &self,
        mut tx: Transaction<'static, Postgres>,
        entries: &JournalEntries,
    ) -> Result<()> {
        insert_pending(&mut tx, entries)
            .await
            .map_err(|e| self.db_err(e))?;
        tx.commit().await.map_err(|e| self.db_err(e))
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
    Error::Store(format!("cannot connect to PostgreSQL at {target}: {cause}"))
}

fn map_error(target: &str, e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(d) => {
            if d.is_unique_violation() {
                let what = match d.constraint() {
                    Some("workspaces_name_unique") => "a workspace with this name already exists",
                    Some("tokens_secret_hash_unique") => "a token with this secret already exists",
                    Some("states_live_name") => "a live state with this name already exists",
                    Some("state_versions_number") => {
                        "this version number was taken by a concurrent write; retry"
                    }
                    Some(c) if c.ends_with("_pkey") => "a record with this id already exists",
                    _ => "already exists",
                };
                return Error::Conflict(what.to_owned());
            }
            match d.code().as_deref() {
                // serialization_failure, deadlock_detected
                Some("40001" | "40P01") => Error::Conflict(
                    "a concurrent change got in the way; nothing was written, retry".into(),
                ),
                // query_canceled (statement_timeout), lock_not_available (lock_timeout)
                Some("57014" | "55P03") => Error::Store(format!(
                    "PostgreSQL at {target} did not answer in time ({}); retry",
                    d.message()
                )),
                // admin_shutdown, crash_shutdown, cannot_connect_now
                Some("57P01" | "57P02" | "57P03") => Error::Store(format!(
                    "PostgreSQL at {target} is unavailable: {}",
                    d.message()
                )),
                _ => Error::Store(format!("PostgreSQL error: {}", d.message())),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => {
            Error::Store(format!("PostgreSQL at {target} is unreachable: {e}"))
        }
        _ => Error::Store(e.to_string()),
    }
}

// ---- rows ------------------------------------------------------------------------------------

const STATE_COLUMNS: &str = "SELECT s.id, s.workspace_id, s.name, s.created_at, s.updated_at, s.overwrite_until, \
    s.lock_id, s.lock_info, s.lock_token_id, s.lock_holder, s.locked_at, \
    v.id AS v_id, v.version_no, v.serial, v.lineage, v.md5, v.size, v.created_at AS v_created_at, \
    v.created_by, v.client_version, v.forced, v.client_encrypted, v.kept, v.resource_count \
    FROM states s LEFT JOIN state_versions v ON v.id = s.current_version_id";

const LIVE_STATE: &str = "SELECT s.id, s.workspace_id, s.name, s.created_at, s.updated_at, s.overwrite_until, \
    s.lock_id, s.lock_info, s.lock_token_id, s.lock_holder, s.locked_at, \
    v.id AS v_id, v.version_no, v.serial, v.lineage, v.md5, v.size, v.created_at AS v_created_at, \
    v.created_by, v.client_version, v.forced, v.client_encrypted, v.kept, v.resource_count \
    FROM states s LEFT JOIN state_versions v ON v.id = s.current_version_id \
    WHERE s.workspace_id = $1 AND s.name = $2 AND s.deleted_at IS NULL";

const STATE_BY_ID: &str = "SELECT s.id, s.workspace_id, s.name, s.created_at, s.updated_at, s.overwrite_until, \
    s.lock_id, s.lock_info, s.lock_token_id, s.lock_holder, s.locked_at, \
    v.id AS v_id, v.version_no, v.serial, v.lineage, v.md5, v.size, v.created_at AS v_created_at, \
    v.created_by, v.client_version, v.forced, v.client_encrypted, v.kept, v.resource_count \
    FROM states s LEFT JOIN state_versions v ON v.id = s.current_version_id \
    WHERE s.id = $1";

const VERSION_COLUMNS: &str = "id AS v_id, state_id, version_no, serial, lineage, md5, size, \
    created_at AS v_created_at, created_by, client_version, forced, client_encrypted, kept, resource_count";

fn get<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(
    row: &'r PgRow,
    col: &str,
) -> Result<T> {
    row.try_get(col)
        .map_err(|e| Error::Internal(format!("reading column {col}: {e}")))
}

fn version_from(row: &PgRow, state_id: Option<&str>) -> Result<Option<VersionMeta>> {
    let Some(id) = get::<Option<String>>(row, "v_id")? else {
        return Ok(None);
    };
    let state_id = match state_id {
        Some(s) => s.to_owned(),
        None => get(row, "state_id")?,
    };
    Ok(Some(VersionMeta {
        id,
        state_id,
        version_no: get(row, "version_no")?,
        serial: get(row, "serial")?,
        lineage: get(row, "lineage")?,
        md5: get(row, "md5")?,
        size: get(row, "size")?,
        created_at: Timestamp(get(row, "v_created_at")?),
        created_by: get(row, "created_by")?,
        client_version: get(row, "client_version")?,
        forced: get(row, "forced")?,
        client_encrypted: get(row, "client_encrypted")?,
        kept: get(row, "kept")?,
        resource_count: get(row, "resource_count")?,
    }))
}

fn state_from(row: &PgRow) -> Result<StateRecord> {
    let id: String = get(row, "id")?;
    let lock = match get::<Option<String>>(row, "lock_id")? {
        None => None,
        Some(lock_id) => Some(HeldLock {
            id: lock_id,
            info: get(row, "lock_info")?,
            token_id: get(row, "lock_token_id")?,
            holder: get(row, "lock_holder")?,
            locked_at: Timestamp(get(row, "locked_at")?),
        }),
    };
    Ok(StateRecord {
        current: version_from(row, Some(&id))?,
        workspace_id: get(row, "workspace_id")?,
        name: get(row, "name")?,
        created_at: Timestamp(get(row, "created_at")?),
        updated_at: Timestamp(get(row, "updated_at")?),
        overwrite_until: get::<Option<i64>>(row, "overwrite_until")?.map(Timestamp),
        lock,
        id,
    })
}

fn workspace_from(row: &PgRow) -> Result<Workspace> {
    Ok(Workspace {
        id: get(row, "id")?,
        name: get(row, "name")?,
        serial_protection: get(row, "serial_protection")?,
        created_at: Timestamp(get(row, "created_at")?),
        settings: WorkspaceSettings {
            keep_versions: get(row, "keep_versions")?,
            keep_versions_for_millis: get(row, "keep_versions_for_ms")?,
            stale_lock_after_millis: get(row, "stale_lock_after_ms")?,
        },
    })
}

fn token_from(row: &PgRow) -> Result<Token> {
    let role: String = get(row, "role")?;
    Ok(Token {
        id: get(row, "id")?,
        name: get(row, "name")?,
        user_id: get(row, "user_id")?,
        workspace_id: get(row, "workspace_id")?,
        role: parse_role(&role)?,
        secret_hash: get(row, "secret_hash")?,
        created_at: Timestamp(get(row, "created_at")?),
        expires_at: get::<Option<i64>>(row, "expires_at")?.map(Timestamp),
        revoked_at: get::<Option<i64>>(row, "revoked_at")?.map(Timestamp),
        last_used_at: get::<Option<i64>>(row, "last_used_at")?.map(Timestamp),
    })
}

fn parse_role(role: &str) -> Result<Role> {
    Role::from_str(role).map_err(|_| Error::Internal(format!("stored role {role:?} is unknown")))
}

fn version_with_body(row: &PgRow) -> Result<Option<(VersionMeta, SealedBody)>> {
    let Some(meta) = version_from(row, None)? else {
        return Ok(None);
    };
    let sealed = SealedBody {
        key_id: get(row, "key_id")?,
        wrapped_key: get(row, "wrapped_key")?,
        ciphertext: get(row, "body")?,
    };
    Ok(Some((meta, sealed)))
}

// ---- transactions on one state ----------------------------------------------------------------

/// How often a transaction retries finding a state row that a concurrent transaction created
/// and deleted again before we could lock it.
const ENSURE_ATTEMPTS: usize = 5;

impl PgStore {
    /// Row-locks the live state and reads it afresh (after the lock, so the read sees every
    /// change committed before we got it). `None` when there is no live state of that name.
    async fn lock_live_state(
        &self,
        tx: &mut PgConnection,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<StateRecord>> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM states WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL FOR UPDATE",
        )
        .bind(workspace_id)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.db_err(e))?;
        let Some(id) = id else { return Ok(None) };
        let row = sqlx::query(STATE_BY_ID)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.db_err(e))?;
        state_from(&row).map(Some)
    }

    async fn insert_empty_state(
        &self,
        conn: &mut PgConnection,
        workspace_id: &str,
        name: &str,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO states (id, workspace_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(statehouse_core::service::new_id())
        .bind(workspace_id)
        .bind(name)
        .bind(at.0)
        .execute(&mut *conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// The live state, row-locked, created first when missing.
    async fn lock_or_create_state(
        &self,
        tx: &mut PgConnection,
        workspace_id: &str,
        name: &str,
        at: Timestamp,
    ) -> Result<StateRecord> {
        for _ in 0..ENSURE_ATTEMPTS {
            if let Some(state) = self.lock_live_state(tx, workspace_id, name).await? {
                return Ok(state);
            }
            // Waits for a concurrent creator of the same name, then does nothing if it committed.
            self.insert_empty_state(tx, workspace_id, name, at).await?;
        }
        Err(Error::Conflict(format!(
            "state {name:?} was created and deleted concurrently; retry"
        )))
    }
}

#[async_trait]
impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    async fn claim_flag(&self, name: &str, at: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO instance_flags (name, set_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(at.0)
        .execute(&self.pool)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_workspace(&self, ws: &Workspace) -> Result<()> {
        sqlx::query(
            "INSERT INTO workspaces (id, name, serial_protection, created_at, keep_versions, \
             keep_versions_for_ms, stale_lock_after_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&ws.id)
        .bind(&ws.name)
        .bind(ws.serial_protection)
        .bind(ws.created_at.0)
        .bind(ws.settings.keep_versions)
        .bind(ws.settings.keep_versions_for_millis)
        .bind(ws.settings.stale_lock_after_millis)
        .execute(&self.pool)
        .await
        .map_err(|e| match self.db_err(e) {
            Error::Conflict(_) => {
                Error::Conflict(format!("workspace {:?} already exists", ws.name))
            }
            other => other,
        })?;
        Ok(())
    }

    async fn workspace_by_name(&self, name: &str) -> Result<Option<Workspace>> {
        let row = sqlx::query("SELECT * FROM workspaces WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        row.as_ref().map(workspace_from).transpose()
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        let rows = sqlx::query("SELECT * FROM workspaces ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        rows.iter().map(workspace_from).collect()
    }

    async fn update_workspace(&self, ws: &Workspace) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE workspaces SET name = $1, serial_protection = $2, keep_versions = $3, \
             keep_versions_for_ms = $4, stale_lock_after_ms = $5 WHERE id = $6",
        )
        .bind(&ws.name)
        .bind(ws.serial_protection)
        .bind(ws.settings.keep_versions)
        .bind(ws.settings.keep_versions_for_millis)
        .bind(ws.settings.stale_lock_after_millis)
        .bind(&ws.id)
        .execute(&self.pool)
        .await
        .map_err(|e| match self.db_err(e) {
            Error::Conflict(_) => {
                Error::Conflict(format!("workspace {:?} already exists", ws.name))
            }
            other => other,
        })?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_workspace(&self, workspace_id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        // The workspace row lock keeps a concurrent first write from creating a state in it.
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM workspaces WHERE id = $1 FOR UPDATE")
                .bind(workspace_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.db_err(e))?;
        if found.is_none() {
            return Ok(false);
        }
        let states: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM states WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.db_err(e))?;
        if states > 0 {
            return Err(Error::Conflict(format!(
                "the workspace still has {states} state(s), live or deleted; delete and purge them first"
            )));
        }
        backups::delete_workspace_backups(self, &mut tx, workspace_id).await?;
        // A workspace's webhooks go with it (their deliveries cascade), like its tokens.
        sqlx::query("DELETE FROM webhooks WHERE workspace_id = $1")
            .bind(workspace_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_err(e))?;
        sqlx::query("DELETE FROM tokens WHERE workspace_id = $1")
            .bind(workspace_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_err(e))?;
        let done = sqlx::query("DELETE FROM workspaces WHERE id = $1")
            .bind(workspace_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_err(e))?;
        tx.commit().await.map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_token(&self, t: &NewToken) -> Result<Token> {
        sqlx::query(
            "INSERT INTO tokens (id, name, user_id, workspace_id, role, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.user_id)
        .bind(&t.workspace_id)
        .bind(t.role.as_str())
        .bind(&t.secret_hash)
        .bind(t.created_at.0)
        .bind(t.expires_at.map(|e| e.0))
        .execute(&self.pool)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(Token {
            id: t.id.clone(),
            name: t.name.clone(),
            user_id: t.user_id.clone(),
            workspace_id: t.workspace_id.clone(),
            role: t.role,
            secret_hash: t.secret_hash.clone(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: None,
            last_used_at: None,
        })
    }

    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<Token>> {
        let row = sqlx::query("SELECT * FROM tokens WHERE secret_hash = $1")
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        row.as_ref().map(token_from).transpose()
    }

    async fn list_tokens(&self, workspace_id: Option<&str>) -> Result<Vec<Token>> {
        let rows = match workspace_id {
            Some(ws) => {
                sqlx::query(
                    "SELECT * FROM tokens WHERE workspace_id = $1 ORDER BY created_at, id COLLATE \"C\"",
                )
                .bind(ws)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query("SELECT * FROM tokens ORDER BY created_at, id COLLATE \"C\"")
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(|e| self.db_err(e))?;
        rows.iter().map(token_from).collect()
    }

    async fn revoke_token(&self, token_id: &str, at: Timestamp) -> Result<bool> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at.0)
                .bind(token_id)
                .execute(&self.pool)
                .await
                .map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn state(&self, workspace_id: &str, name: &str) -> Result<Option<StateRecord>> {
        let row = sqlx::query(LIVE_STATE)
            .bind(workspace_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        row.as_ref().map(state_from).transpose()
    }

    async fn ensure_state(
        &self,
        workspace_id: &str,
        name: &str,
        at: Timestamp,
    ) -> Result<StateRecord> {
        for _ in 0..ENSURE_ATTEMPTS {
            if let Some(state) = self.state(workspace_id, name).await? {
                return Ok(state);
            }
            let mut conn = self.pool.acquire().await.map_err(|e| self.db_err(e))?;
            self.insert_empty_state(&mut conn, workspace_id, name, at)
                .await?;
        }
        Err(Error::Conflict(format!(
            "state {name:?} was created and deleted concurrently; retry"
        )))
    }

    async fn list_states(
        &self,
        workspace_id: &str,
        filter: &StateFilter,
    ) -> Result<Vec<StateRecord>> {
        // Prefix as a range on the "C"-collated name (an index range scan, no LIKE escaping).
        let prefix_end = filter
            .name_prefix
            .as_deref()
            .and_then(|p| ResourceSearch::prefix_range(p).1);
        let sql = sqlx::AssertSqlSafe(format!(
            "{STATE_COLUMNS} WHERE s.workspace_id = $1 AND s.deleted_at IS NULL \
             AND ($2::text IS NULL OR s.name >= $2) AND ($3::text IS NULL OR s.name < $3) \
             AND ($4::boolean IS NULL OR (s.lock_id IS NOT NULL) = $4) \
             AND ($5::bigint IS NULL OR s.updated_at >= $5) \
             AND ($6::text IS NULL OR s.name > $6) \
             ORDER BY s.name LIMIT $7"
        ));
        let rows = sqlx::query(sql)
            .bind(workspace_id)
            .bind(&filter.name_prefix)
            .bind(&prefix_end)
            .bind(filter.locked)
            .bind(filter.changed_since.map(|t| t.0))
            .bind(&filter.after_name)
            .bind(filter.limit.unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        rows.iter().map(state_from).collect()
    }

    async fn current_body(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<(VersionMeta, SealedBody)>> {
        let sql = AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS}, key_id, wrapped_key, body FROM state_versions \
             WHERE id = (SELECT current_version_id FROM states \
                         WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL)"
        ));
        let row = sqlx::query(sql)
            .bind(workspace_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        row.as_ref()
            .map(version_with_body)
            .transpose()
            .map(Option::flatten)
    }

    async fn version_body(
        &self,
        state_id: &str,
        version_no: i64,
    ) -> Result<Option<(VersionMeta, SealedBody)>> {
        let sql = AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS}, key_id, wrapped_key, body FROM state_versions \
             WHERE state_id = $1 AND version_no = $2"
        ));
        let row = sqlx::query(sql)
            .bind(state_id)
            .bind(version_no)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        row.as_ref()
            .map(version_with_body)
            .transpose()
            .map(Option::flatten)
    }

    async fn list_versions(
        &self,
        state_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<VersionMeta>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM state_versions WHERE state_id = $1 \
             AND ($2::bigint IS NULL OR version_no < $2) ORDER BY version_no DESC LIMIT $3"
        ));
        let rows = sqlx::query(sql)
            .bind(state_id)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        rows.iter()
            .filter_map(|r| version_from(r, None).transpose())
            .collect()
    }

    async fn set_version_kept_journaled(
        &self,
        state_id: &str,
        version_no: i64,
        kept: bool,
        journal: Journaling<'_, bool>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE state_versions SET kept = $1 WHERE state_id = $2 AND version_no = $3",
        )
        .bind(kept)
        .bind(state_id)
        .bind(version_no)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db_err(e))?;
        let found = done.rows_affected() == 1;
        self.commit_with(tx, &journal(&found)).await?;
        Ok(found)
    }

    async fn prune_versions(
        &self,
        workspace_id: &str,
        keep_last: Option<i64>,
        created_before: Option<Timestamp>,
        limit: i64,
    ) -> Result<u64> {
        if keep_last.is_none() && created_before.is_none() {
            return Ok(0);
        }
        // SKIP LOCKED: two replicas pruning at once split the work instead of queueing.
        let done = sqlx::query(
            "DELETE FROM state_versions WHERE id IN ( \
               SELECT v.id FROM state_versions v JOIN states s ON s.id = v.state_id \
               WHERE s.workspace_id = $1 AND v.id IS DISTINCT FROM s.current_version_id AND NOT v.kept \
               AND ($2::bigint IS NULL OR v.version_no <= \
                    (SELECT MAX(m.version_no) FROM state_versions m WHERE m.state_id = v.state_id) - $2) \
               AND ($3::bigint IS NULL OR v.created_at < $3) \
               LIMIT $4 FOR UPDATE OF v SKIP LOCKED)",
        )
        .bind(workspace_id)
        .bind(keep_last)
        .bind(created_before.map(|t| t.0))
        .bind(limit)
        .execute(&self.pool)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected())
    }

    async fn write_version_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        w: VersionWrite,
        journal: Journaling<'_, WriteOutcome>,
    ) -> Result<WriteOutcome> {
        let mut tx = self.begin().await?;
        let state = match self.lock_live_state(&mut tx, workspace_id, name).await? {
            Some(s) if s.id == w.state_id => s,
            _ => {
                return Err(Error::Conflict(
                    "the state was deleted or replaced while this write was in flight; nothing was written, retry".into(),
                ));
            }
        };
        let protection: bool =
            sqlx::query_scalar("SELECT serial_protection FROM workspaces WHERE id = $1")
                .bind(workspace_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.db_err(e))?;
        let decision = rules::decide_write(
            WriteContext {
                current: state.current.as_ref(),
                lock: state.lock.as_ref(),
                serial_protection: protection,
                overwrite_until: state.overwrite_until,
                now: w.at,
            },
            Incoming {
                serial: w.serial,
                lineage: &w.lineage,
                md5: &w.md5,
                lock_id: w.lock_id.as_deref(),
                token_id: &w.token_id,
            },
        )?;
        let (forced, consumes_override) = match decision {
            WriteDecision::Unchanged => {
                let current = state
                    .current
                    .ok_or_else(|| Error::Internal("unchanged without a current version".into()))?;
                let outcome = WriteOutcome::Unchanged(current);
                self.commit_with(tx, &journal(&outcome)).await?;
                return Ok(outcome);
            }
            WriteDecision::Append {
                forced,
                consumes_override,
            } => (forced, consumes_override),
        };
        let resource_count = w.resources.count();
        // Safe without a sequence: every writer of this state holds its row lock.
        let version_no: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version_no), 0) + 1 FROM state_versions WHERE state_id = $1",
        )
        .bind(&state.id)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.db_err(e))?;
        sqlx::query(
            "INSERT INTO state_versions (id, state_id, version_no, serial, lineage, md5, size, created_at, created_by, \
             client_version, forced, client_encrypted, resource_count, key_id, wrapped_key, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&w.version_id)
        .bind(&state.id)
        .bind(version_no)
        .bind(w.serial)
        .bind(&w.lineage)
        .bind(&w.md5)
        .bind(w.size)
        .bind(w.at.0)
        .bind(&w.author)
        .bind(&w.client_version)
        .bind(forced)
        .bind(w.client_encrypted)
        .bind(resource_count)
        .bind(&w.sealed.key_id)
        .bind(&w.sealed.wrapped_key)
        // Moved, not copied: for a large body this buffer is the biggest thing in memory.
        .bind(w.sealed.ciphertext)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db_err(e))?;
        sqlx::query(
            "UPDATE states SET current_version_id = $1, updated_at = $2, \
             overwrite_until = CASE WHEN $3 THEN NULL ELSE overwrite_until END WHERE id = $4",
        )
        .bind(&w.version_id)
        .bind(w.at.0)
        .bind(consumes_override)
        .bind(&state.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db_err(e))?;
        self.replace_index(&mut tx, &state.id, version_no, w.at, w.resources)
            .await?;
        let outcome = WriteOutcome::Created(VersionMeta {
            id: w.version_id.clone(),
            state_id: state.id,
            version_no,
            serial: w.serial,
            lineage: w.lineage.clone(),
            md5: w.md5.clone(),
            size: w.size,
            created_at: w.at,
            created_by: w.author.clone(),
            client_version: w.client_version.clone(),
            forced,
            client_encrypted: w.client_encrypted,
            kept: false,
            resource_count,
        });
        self.commit_with(tx, &journal(&outcome)).await?;
        Ok(outcome)
    }

    async fn lock_state_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        req: &LockRequest,
        journal: Journaling<'_, LockOutcome>,
    ) -> Result<LockOutcome> {
        // Fast path, one statement: a free lock on an existing live state is simply taken
        // (what `rules::decide_lock` says for a free lock), its journal entries stored with it.
        // Everything else — a missing state, a retried LOCK, a conflict — is decided in the
        // transaction below.
        let entries = journal(&LockOutcome::Acquired);
        let taken: i64 = sqlx::query_scalar(
            "WITH taken AS ( \
             UPDATE states SET lock_id = $1, lock_info = $2, lock_token_id = $3, lock_holder = $4, locked_at = $5 \
             WHERE workspace_id = $6 AND name = $7 AND deleted_at IS NULL AND lock_id IS NULL \
             RETURNING 1), \
             logged AS (INSERT INTO journal_pending (at, entry) SELECT $8, $9 FROM taken WHERE $10) \
             SELECT count(*) FROM taken",
        )
        .bind(&req.id)
        .bind(&req.info)
        .bind(&req.token_id)
        .bind(&req.holder)
        .bind(req.at.0)
        .bind(workspace_id)
        .bind(name)
        .bind(entries.at().millis())
        .bind(entries.encode())
        .bind(!entries.is_empty())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.db_err(e))?;
        if taken == 1 {
            return Ok(LockOutcome::Acquired);
        }
        let mut tx = self.begin().await?;
        let state = self
            .lock_or_create_state(&mut tx, workspace_id, name, req.at)
            .await?;
        let outcome = rules::decide_lock(state.lock.as_ref(), &req.id, &req.token_id)?;
        if outcome == LockOutcome::Acquired {
            sqlx::query(
                "UPDATE states SET lock_id = $1, lock_info = $2, lock_token_id = $3, lock_holder = $4, locked_at = $5 \
                 WHERE id = $6",
            )
            .bind(&req.id)
            .bind(&req.info)
            .bind(&req.token_id)
            .bind(&req.holder)
            .bind(req.at.0)
            .bind(&state.id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_err(e))?;
        }
        self.commit_with(tx, &journal(&outcome)).await?;
        Ok(outcome)
    }

    async fn unlock_state_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        req: &UnlockRequest,
        journal: Journaling<'_, UnlockOutcome>,
    ) -> Result<UnlockOutcome> {
        // Fast path, one statement: the holder releasing its own lock (matching ID and token),
        // its journal entries stored with it.
        if let Some(id) = &req.id {
            let entries = journal(&UnlockOutcome::Released);
            let released: i64 = sqlx::query_scalar(
                "WITH released AS ( \
                 UPDATE states SET lock_id = NULL, lock_info = NULL, lock_token_id = NULL, lock_holder = NULL, \
                 locked_at = NULL WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL \
                 AND lock_id = $3 AND lock_token_id = $4 \
                 RETURNING 1), \
                 logged AS (INSERT INTO journal_pending (at, entry) SELECT $5, $6 FROM released WHERE $7) \
                 SELECT count(*) FROM released",
            )
            .bind(workspace_id)
            .bind(name)
            .bind(id)
            .bind(&req.token_id)
            .bind(entries.at().millis())
            .bind(entries.encode())
            .bind(!entries.is_empty())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
            if released == 1 {
                return Ok(UnlockOutcome::Released);
            }
        }
        let mut tx = self.begin().await?;
        let Some(state) = self.lock_live_state(&mut tx, workspace_id, name).await? else {
            let outcome = UnlockOutcome::NotLocked;
            self.commit_with(tx, &journal(&outcome)).await?;
            return Ok(outcome);
        };
        let outcome = rules::decide_unlock(state.lock.as_ref(), req)?;
        if outcome != UnlockOutcome::NotLocked {
            sqlx::query(
                "UPDATE states SET lock_id = NULL, lock_info = NULL, lock_token_id = NULL, lock_holder = NULL, \
                 locked_at = NULL WHERE id = $1",
            )
            .bind(&state.id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_err(e))?;
        }
        self.commit_with(tx, &journal(&outcome)).await?;
        Ok(outcome)
    }

    async fn delete_state_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        by: &str,
        at: Timestamp,
        journal: Journaling<'_, bool>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let Some(state) = self.lock_live_state(&mut tx, workspace_id, name).await? else {
            return Ok(false);
        };
        if let Some(lock) = state.lock {
            return Err(Error::Locked {
                holder_info: lock.info,
            });
        }
        sqlx::query("UPDATE states SET deleted_at = $1, deleted_by = $2 WHERE id = $3")
            .bind(at.0)
            .bind(by)
            .bind(&state.id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_err(e))?;
        self.commit_with(tx, &journal(&true)).await?;
        Ok(true)
    }

    async fn list_deleted_states(&self, workspace_id: &str) -> Result<Vec<DeletedState>> {
        let rows = sqlx::query(
            "SELECT s.id, s.workspace_id, s.name, s.deleted_at, s.deleted_by, \
             (SELECT COUNT(*) FROM state_versions v WHERE v.state_id = s.id) AS versions \
             FROM states s WHERE s.workspace_id = $1 AND s.deleted_at IS NOT NULL \
             ORDER BY s.deleted_at DESC, s.id COLLATE \"C\"",
        )
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.db_err(e))?;
        rows.iter()
            .map(|r| {
                Ok(DeletedState {
                    id: get(r, "id")?,
                    workspace_id: get(r, "workspace_id")?,
                    name: get(r, "name")?,
                    deleted_at: Timestamp(get(r, "deleted_at")?),
                    deleted_by: get::<Option<String>>(r, "deleted_by")?.unwrap_or_default(),
                    versions: get(r, "versions")?,
                })
            })
            .collect()
    }

    async fn restore_state_journaled(
        &self,
        workspace_id: &str,
        state_id: &str,
        at: Timestamp,
        journal: Journaling<'_, bool>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let name: Option<String> = sqlx::query_scalar(
            "SELECT name FROM states WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NOT NULL FOR UPDATE",
        )
        .bind(state_id)
        .bind(workspace_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.db_err(e))?;
        let Some(name) = name else { return Ok(false) };
        let live_name_taken = || {
            Error::Conflict(format!(
                "a live state named {name:?} exists; delete or rename it before restoring this one"
            ))
        };
        let live: Option<String> = sqlx::query_scalar(
            "SELECT id FROM states WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL",
        )
        .bind(workspace_id)
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.db_err(e))?;
        if live.is_some() {
            return Err(live_name_taken());
        }
        // A state created under that name meanwhile trips the live-name index: same answer.
        sqlx::query(
            "UPDATE states SET deleted_at = NULL, deleted_by = NULL, updated_at = $1 WHERE id = $2",
        )
        .bind(at.0)
        .bind(state_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| match self.db_err(e) {
            Error::Conflict(_) => live_name_taken(),
            other => other,
        })?;
        self.commit_with(tx, &journal(&true)).await?;
        Ok(true)
    }

    async fn purge_state_journaled(
        &self,
        workspace_id: &str,
        state_id: &str,
        journal: Journaling<'_, bool>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let found: Option<String> = sqlx::query_scalar(
            "SELECT id FROM states WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NOT NULL FOR UPDATE",
        )
        .bind(state_id)
        .bind(workspace_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.db_err(e))?;
        if found.is_none() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM state_versions WHERE state_id = $1")
            .bind(state_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_err(e))?;
        sqlx::query("DELETE FROM states WHERE id = $1")
            .bind(state_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_err(e))?;
        self.commit_with(tx, &journal(&true)).await?;
        Ok(true)
    }

    async fn set_overwrite_until_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        until: Option<Timestamp>,
        journal: Journaling<'_, bool>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE states SET overwrite_until = $1 WHERE workspace_id = $2 AND name = $3 AND deleted_at IS NULL",
        )
        .bind(until.map(|u| u.0))
        .bind(workspace_id)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db_err(e))?;
        let found = done.rows_affected() == 1;
        self.commit_with(tx, &journal(&found)).await?;
        Ok(found)
    }

    async fn flag_stale_locks(
        &self,
        workspace_id: &str,
        locked_before: Timestamp,
    ) -> Result<Vec<StateRecord>> {
        let mut tx = self.begin().await?;
        // One UPDATE claims each lock once: a concurrent replica's UPDATE waits on the row and
        // then no longer matches.
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE states SET stale_flagged_lock_id = lock_id \
             WHERE workspace_id = $1 AND deleted_at IS NULL AND lock_id IS NOT NULL AND locked_at < $2 \
             AND stale_flagged_lock_id IS DISTINCT FROM lock_id RETURNING id",
        )
        .bind(workspace_id)
        .bind(locked_before.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.db_err(e))?;
        let mut flagged = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(STATE_BY_ID)
                .bind(&id)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.db_err(e))?;
            flagged.push(state_from(&row)?);
        }
        tx.commit().await.map_err(|e| self.db_err(e))?;
        Ok(flagged)
    }
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
