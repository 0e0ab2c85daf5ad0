//! The embedded default store: one SQLite file in WAL mode.
//!
//! Writers share one dedicated connection behind a mutex (writes serialize in-process without
//! busy loops) and every write transaction is `BEGIN IMMEDIATE`, so a second statehouse process
//! on the same file waits on the busy timeout instead of failing a read-to-write upgrade.
//! WAL checkpoints run in a background task, not inside a request's commit.
//! `synchronous=NORMAL` in WAL mode keeps every committed transaction across a process crash
//! (`kill -9`); only an OS crash or power loss can drop the last commits.

mod audit;
mod backups;
pub mod engine;
mod pending;
mod seal;
mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row, Sqlite, Transaction};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

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
use statehouse_core::store::pending::Journaling;
use statehouse_core::store::search::ResourceSearch;
use statehouse_core::{Error, Result};

mod accounts;
mod keys;
mod search;

use crate::pending::insert_pending;

const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the background checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// A WAL seen above this many frames (≈16 MB with 4 KiB pages) is truncated once writes pause.
const TRUNCATE_ABOVE_FRAMES: i64 = 4096;
/// The checkpointer's busy timeout: a `TRUNCATE` checkpoint gives up (and is retried at a later
/// pause) rather than wait longer for the write lock, or hold it longer waiting for readers.
const CHECKPOINTER_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 50";

pub struct SqliteStore {
    read: SqlitePool,
    /// The one write connection: writes serialize here without busy loops, and a statement on
    /// a dedicated connection costs about half of one through a one-connection pool.
    write: Mutex<SqliteConnection>,
    checkpointer: JoinHandle<()>,
    /// The journal's head as this process last wrote it (appends check it in the database).
    journal_head: std::sync::Mutex<Option<statehouse_core::store::seal::JournalHead>>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpointer.abort();
    }
}

fn db_err(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(d) = &e
        && d.is_unique_violation()
    {
        return Error::Conflict("already exists".into());
    }
    Error::Store(e.to_string())
}

fn open_err(e: sqlx::Error) -> Error {
    Error::Store(format!("cannot open SQLite database: {e}"))
}

impl SqliteStore {
    /// Opens (creating if missing, mode 0600) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        create_private_file(path)?;
        let options = SqliteConnectOptions::new().filename(path);
        Self::open_with(options.create_if_missing(true)).await
    }

    /// Opens a `sqlite:` URL (e.g. `sqlite:///var/lib/statehouse/db.sqlite`), creating a
    /// missing file with mode 0600.
    pub async fn open_url(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("invalid SQLite URL: {e}")))?;
        if !url.contains(":memory:") && !url.contains("mode=memory") {
            create_private_file(options.get_filename())?;
        }
        Self::open_with(options.create_if_missing(true)).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<Self> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // Checkpoints run in the background task below, not inside whichever commit crosses
        // SQLite's automatic threshold (their fsyncs were the POST tail latency).
        // sqlx has no migration lock for SQLite: when two processes start on a new file at
        // once, the loser fails (connecting, while the winner switches the file to WAL, or on
        // tables the winner just created); by then the winner is done (or nearly), so a retry
        // finds the file in WAL mode and the migrations applied.
        let mut attempt = 0;
        let write = loop {
            match open_writer(&options).await {
                Ok(conn) => break conn,
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "SQLite first open raced another process; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            // Connections to a local file don't go stale; the ping cost 20–40 µs per query.
            .test_before_acquire(false)
            .connect_with(options.clone().read_only(true))
            .await
            .map_err(open_err)?;
        // Opened with the usual busy timeout (first opens may race other processes), then
        // shortened: see `checkpoint_loop`.
        let mut checkpoint_conn = options.connect().await.map_err(open_err)?;
        sqlx::query(CHECKPOINTER_BUSY_TIMEOUT)
            .execute(&mut checkpoint_conn)
            .await
            .map_err(open_err)?;
        let checkpointer = tokio::spawn(checkpoint_loop(checkpoint_conn));
        Ok(SqliteStore {
            read,
            write: Mutex::new(write),
            checkpointer,
            journal_head: std::sync::Mutex::new(None),
        })
    }
}

/// Creates a missing database file readable by its owner only (SQLite would create it with
/// the umask's mode, usually 0644); its `-wal` and `-shm` files take the same mode. An existing
/// file is left as it is.
fn create_private_file(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Store(format!(
            "cannot create SQLite database {}: {e}",
            path.display()
        ))),
    }
}

/// The write connection, migrated. Checkpoints run in the background task (`checkpoint_loop`),
/// not inside whichever commit crosses SQLite's automatic threshold (their fsyncs were the POST
/// tail latency).
async fn open_writer(options: &SqliteConnectOptions) -> Result<SqliteConnection> {
    let mut write = options
        .clone()
        .pragma("wal_autocheckpoint", "0")
        .connect()
        .await
        .map_err(open_err)?;
    // `run_direct` is `run` on a connection; `run(&mut conn)` makes `open`'s future not provably
    // `Send` ("`Acquire` is not general enough").
    sqlx::migrate!("./migrations")
        .run_direct(None, &mut write, false)
        .await
        .map_err(|e| Error::Store(format!("SQLite migration failed: {e}")))?;
    Ok(write)
}

/// Every write transaction is `BEGIN IMMEDIATE`: a second process on the same file waits on the
/// busy timeout instead of failing a read-to-write upgrade.
async fn begin_write(conn: &mut SqliteConnection) -> Result<Transaction<'_, Sqlite>> {
    conn.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)
}

/// The WAL checkpointer, on its own connection, until the store is dropped (which aborts it).
///
/// Every second a `PASSIVE` checkpoint copies what it can without waiting for (or blocking)
/// readers or writers; once all frames are copied, the next writer restarts the WAL from its
/// beginning, so the file does not grow without bound. Several processes on one file each run
/// one: a `PASSIVE` checkpoint that finds another in progress just reports busy.
///
/// `PASSIVE` never shrinks the file, so after the WAL has been seen above
/// [`TRUNCATE_ABOVE_FRAMES`] a `TRUNCATE` checkpoint resets it to zero bytes — but only at a
/// pause in writing (a tick that finds the WAL fully checkpointed and unchanged since the last
/// tick), because `TRUNCATE` takes the write lock and waits for readers (bounded here to 50 ms by
/// [`CHECKPOINTER_BUSY_TIMEOUT`]) and fsyncs: under sustained writes it would bring back the
/// request-path stalls this task exists to remove.
async fn checkpoint_loop(mut conn: SqliteConnection) {
    let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate
    let mut last_log = -1;
    let mut grew_large = false;
    loop {
        ticks.tick().await;
        let (busy, log, checkpointed) = match checkpoint(&mut conn, PASSIVE).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "SQLite WAL checkpoint (PASSIVE) failed");
                continue;
            }
        };
        grew_large |= log > TRUNCATE_ABOVE_FRAMES;
        let paused = busy == 0 && log == checkpointed && log == last_log;
        last_log = log;
        if grew_large && paused {
            match checkpoint(&mut conn, TRUNCATE).await {
                Ok((0, _, _)) => {
                    grew_large = false;
                    last_log = 0;
                }
                Ok(_) => {
                    tracing::debug!("SQLite WAL checkpoint (TRUNCATE) was busy; retrying later")
                }
                Err(e) => tracing::debug!(error = %e, "SQLite WAL checkpoint (TRUNCATE) failed"),
            }
        }
    }
}

const PASSIVE: &str = "PRAGMA wal_checkpoint(PASSIVE)";
const TRUNCATE: &str = "PRAGMA wal_checkpoint(TRUNCATE)";

/// Runs one `PRAGMA wal_checkpoint(…)`: (busy, frames in the WAL, frames checkpointed).
async fn checkpoint(
    conn: &mut SqliteConnection,
    pragma: &'static str,
) -> sqlx::Result<(i64, i64, i64)> {
    sqlx::query_as(pragma).fetch_one(conn).await
}

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
    WHERE s.workspace_id = ? AND s.name = ? AND s.deleted_at IS NULL";

const VERSION_COLUMNS: &str = "id AS v_id, state_id, version_no, serial, lineage, md5, size, \
    created_at AS v_created_at, created_by, client_version, forced, client_encrypted, kept, resource_count";

fn get<'r, T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>>(
    row: &'r SqliteRow,
    col: &str,
) -> Result<T> {
    row.try_get(col).map_err(db_err)
}

fn version_from(row: &SqliteRow, state_id: Option<&str>) -> Result<Option<VersionMeta>> {
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

fn state_from(row: &SqliteRow) -> Result<StateRecord> {
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

fn workspace_from(row: &SqliteRow) -> Result<Workspace> {
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

fn token_from(row: &SqliteRow) -> Result<Token> {
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

fn sealed_from(row: &SqliteRow) -> Result<SealedBody> {
    Ok(SealedBody {
        key_id: get(row, "key_id")?,
        wrapped_key: get(row, "wrapped_key")?,
        ciphertext: get(row, "body")?,
    })
}

fn version_with_body(row: &SqliteRow) -> Result<Option<(VersionMeta, SealedBody)>> {
    let Some(meta) = version_from(row, None)? else {
        return Ok(None);
    };
    Ok(Some((meta, sealed_from(row)?)))
}

async fn live_state_in(
    tx: &mut Transaction<'_, Sqlite>,
    workspace_id: &str,
    name: &str,
) -> Result<Option<StateRecord>> {
    let row = sqlx::query(LIVE_STATE)
        .bind(workspace_id)
        .bind(name)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    row.as_ref().map(state_from).transpose()
}

async fn insert_empty_state(
    tx: &mut Transaction<'_, Sqlite>,
    workspace_id: &str,
    name: &str,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO states (id, workspace_id, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT DO NOTHING",
    )
    .bind(statehouse_core::service::new_id())
    .bind(workspace_id)
    .bind(name)
    .bind(at.0)
    .bind(at.0)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn ensure_state_in(
    tx: &mut Transaction<'_, Sqlite>,
    workspace_id: &str,
    name: &str,
    at: Timestamp,
) -> Result<StateRecord> {
    if let Some(state) = live_state_in(tx, workspace_id, name).await? {
        return Ok(state);
    }
    insert_empty_state(tx, workspace_id, name, at).await?;
    live_state_in(tx, workspace_id, name)
        .await?
        .ok_or_else(|| Error::Internal("state row vanished inside its transaction".into()))
}

async fn commit(tx: Transaction<'_, Sqlite>) -> Result<()> {
    tx.commit().await.map_err(db_err)
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn claim_flag(&self, name: &str, at: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO instance_flags (name, set_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(at.0)
        .execute(&mut *self.write.lock().await)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_workspace(&self, ws: &Workspace) -> Result<()> {
        sqlx::query(
            "INSERT INTO workspaces (id, name, serial_protection, created_at, keep_versions, \
             keep_versions_for_ms, stale_lock_after_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&ws.id)
        .bind(&ws.name)
        .bind(ws.serial_protection)
        .bind(ws.created_at.0)
        .bind(ws.settings.keep_versions)
        .bind(ws.settings.keep_versions_for_millis)
        .bind(ws.settings.stale_lock_after_millis)
        .execute(&mut *self.write.lock().await)
        .await
        .map_err(|e| match db_err(e) {
            Error::Conflict(_) => {
                Error::Conflict(format!("workspace {:?} already exists", ws.name))
            }
            other => other,
        })?;
        Ok(())
    }

    async fn workspace_by_name(&self, name: &str) -> Result<Option<Workspace>> {
        let row = sqlx::query("SELECT * FROM workspaces WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(workspace_from).transpose()
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        let rows = sqlx::query("SELECT * FROM workspaces ORDER BY name")
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(workspace_from).collect()
    }

    async fn update_workspace(&self, ws: &Workspace) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE workspaces SET name = ?, serial_protection = ?, keep_versions = ?, \
             keep_versions_for_ms = ?, stale_lock_after_ms = ? WHERE id = ?",
        )
        .bind(&ws.name)
        .bind(ws.serial_protection)
        .bind(ws.settings.keep_versions)
        .bind(ws.settings.keep_versions_for_millis)
        .bind(ws.settings.stale_lock_after_millis)
        .bind(&ws.id)
        .execute(&mut *self.write.lock().await)
        .await
        .map_err(|e| match db_err(e) {
            Error::Conflict(_) => {
                Error::Conflict(format!("workspace {:?} already exists", ws.name))
            }
            other => other,
        })?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_workspace(&self, workspace_id: &str) -> Result<bool> {
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        let states: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM states WHERE workspace_id = ?")
            .bind(workspace_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if states > 0 {
            return Err(Error::Conflict(format!(
                "the workspace still has {states} state(s), live or deleted; delete and purge them first"
            )));
        }
        backups::delete_workspace_backups(&mut tx, workspace_id).await?;
        // A workspace's webhooks go with it (their deliveries cascade), like its tokens.
        sqlx::query("DELETE FROM webhooks WHERE workspace_id = ?")
            .bind(workspace_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM tokens WHERE workspace_id = ?")
            .bind(workspace_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let done = sqlx::query("DELETE FROM workspaces WHERE id = ?")
            .bind(workspace_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        commit(tx).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_token(&self, t: &NewToken) -> Result<Token> {
        sqlx::query(
            "INSERT INTO tokens (id, name, user_id, workspace_id, role, secret_hash, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.user_id)
        .bind(&t.workspace_id)
        .bind(t.role.as_str())
        .bind(&t.secret_hash)
        .bind(t.created_at.0)
        .bind(t.expires_at.map(|e| e.0))
        .execute(&mut *self.write.lock().await)
        .await
        .map_err(db_err)?;
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
        let row = sqlx::query("SELECT * FROM tokens WHERE secret_hash = ?")
            .bind(secret_hash)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(token_from).transpose()
    }

    async fn list_tokens(&self, workspace_id: Option<&str>) -> Result<Vec<Token>> {
        let rows = match workspace_id {
            Some(ws) => {
                sqlx::query("SELECT * FROM tokens WHERE workspace_id = ? ORDER BY created_at, id")
                    .bind(ws)
                    .fetch_all(&self.read)
                    .await
            }
            None => {
                sqlx::query("SELECT * FROM tokens ORDER BY created_at, id")
                    .fetch_all(&self.read)
                    .await
            }
        }
        .map_err(db_err)?;
        rows.iter().map(token_from).collect()
    }

    async fn revoke_token(&self, token_id: &str, at: Timestamp) -> Result<bool> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(at.0)
                .bind(token_id)
                .execute(&mut *self.write.lock().await)
                .await
                .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn state(&self, workspace_id: &str, name: &str) -> Result<Option<StateRecord>> {
        let row = sqlx::query(LIVE_STATE)
            .bind(workspace_id)
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(state_from).transpose()
    }

    async fn ensure_state(
        &self,
        workspace_id: &str,
        name: &str,
        at: Timestamp,
    ) -> Result<StateRecord> {
        if let Some(state) = self.state(workspace_id, name).await? {
            return Ok(state);
        }
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        let state = ensure_state_in(&mut tx, workspace_id, name, at).await?;
        commit(tx).await?;
        Ok(state)
    }

    async fn list_states(
        &self,
        workspace_id: &str,
        filter: &StateFilter,
    ) -> Result<Vec<StateRecord>> {
        // Prefix as a range on the name (an index range scan, and no LIKE wildcards to escape).
        let prefix_end = filter
            .name_prefix
            .as_deref()
            .and_then(|p| ResourceSearch::prefix_range(p).1);
        let sql = sqlx::AssertSqlSafe(format!(
            "{STATE_COLUMNS} WHERE s.workspace_id = ? AND s.deleted_at IS NULL \
             AND (? IS NULL OR s.name >= ?) AND (? IS NULL OR s.name < ?) \
             AND (? IS NULL OR (s.lock_id IS NOT NULL) = ?) \
             AND (? IS NULL OR s.updated_at >= ?) \
             AND (? IS NULL OR s.name > ?) \
             ORDER BY s.name LIMIT ?"
        ));
        let rows = sqlx::query(sql)
            .bind(workspace_id)
            .bind(&filter.name_prefix)
            .bind(&filter.name_prefix)
            .bind(&prefix_end)
            .bind(&prefix_end)
            .bind(filter.locked)
            .bind(filter.locked)
            .bind(filter.changed_since.map(|t| t.0))
            .bind(filter.changed_since.map(|t| t.0))
            .bind(&filter.after_name)
            .bind(&filter.after_name)
            .bind(filter.limit.unwrap_or(i64::MAX))
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(state_from).collect()
    }

    async fn current_body(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<(VersionMeta, SealedBody)>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS}, key_id, wrapped_key, body FROM state_versions \
             WHERE id = (SELECT current_version_id FROM states WHERE workspace_id = ? AND name = ? AND deleted_at IS NULL)"
        ));
        let row = sqlx::query(sql)
            .bind(workspace_id)
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
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
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS}, key_id, wrapped_key, body FROM state_versions WHERE state_id = ? AND version_no = ?"
        ));
        let row = sqlx::query(sql)
            .bind(state_id)
            .bind(version_no)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
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
            "SELECT {VERSION_COLUMNS} FROM state_versions WHERE state_id = ? \
             AND (? IS NULL OR version_no < ?) ORDER BY version_no DESC LIMIT ?"
        ));
        let rows = sqlx::query(sql)
            .bind(state_id)
            .bind(before)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
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
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        let done =
            sqlx::query("UPDATE state_versions SET kept = ? WHERE state_id = ? AND version_no = ?")
                .bind(kept)
                .bind(state_id)
                .bind(version_no)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        let found = done.rows_affected() == 1;
        insert_pending(&mut tx, &journal(&found)).await?;
        commit(tx).await?;
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
        let done = sqlx::query(
            "DELETE FROM state_versions WHERE id IN ( \
               SELECT v.id FROM state_versions v JOIN states s ON s.id = v.state_id \
               WHERE s.workspace_id = ? AND v.id IS NOT s.current_version_id AND v.kept = 0 \
               AND (? IS NULL OR v.version_no <= \
                    (SELECT MAX(m.version_no) FROM state_versions m WHERE m.state_id = v.state_id) - ?) \
               AND (? IS NULL OR v.created_at < ?) \
               LIMIT ?)",
        )
        .bind(workspace_id)
        .bind(keep_last)
        .bind(keep_last)
        .bind(created_before.map(|t| t.0))
        .bind(created_before.map(|t| t.0))
        .bind(limit)
        .execute(&mut *self.write.lock().await)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn write_version_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        w: VersionWrite,
        journal: Journaling<'_, WriteOutcome>,
    ) -> Result<WriteOutcome> {
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        let state = live_state_in(&mut tx, workspace_id, name).await?;
        let state = match state {
            Some(s) if s.id == w.state_id => s,
            _ => {
                return Err(Error::Conflict(
                    "the state was deleted or replaced while this write was in flight; nothing was written, retry".into(),
                ));
            }
        };
        let protection: bool =
            sqlx::query_scalar("SELECT serial_protection FROM workspaces WHERE id = ?")
                .bind(workspace_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
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
                insert_pending(&mut tx, &journal(&outcome)).await?;
                commit(tx).await?;
                return Ok(outcome);
            }
            WriteDecision::Append {
                forced,
                consumes_override,
            } => (forced, consumes_override),
        };
        let resource_count = w.resources.count();
        let version_no: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version_no), 0) + 1 FROM state_versions WHERE state_id = ?",
        )
        .bind(&state.id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO state_versions (id, state_id, version_no, serial, lineage, md5, size, created_at, created_by, \
             client_version, forced, client_encrypted, resource_count, key_id, wrapped_key, body) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .map_err(db_err)?;
        sqlx::query(
            "UPDATE states SET current_version_id = ?, updated_at = ?, \
             overwrite_until = CASE WHEN ? THEN NULL ELSE overwrite_until END WHERE id = ?",
        )
        .bind(&w.version_id)
        .bind(w.at.0)
        .bind(consumes_override)
        .bind(&state.id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        search::replace_index(&mut tx, &state.id, version_no, w.at, w.resources).await?;
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
        insert_pending(&mut tx, &journal(&outcome)).await?;
        commit(tx).await?;
        Ok(outcome)
    }

    async fn lock_state_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        req: &LockRequest,
        journal: Journaling<'_, LockOutcome>,
    ) -> Result<LockOutcome> {
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        // Fast path, one statement: a free lock on an existing live state is simply taken
        // (what `rules::decide_lock` says for a free lock). Everything else — a missing
        // state, a retried LOCK, a conflict — is decided in the transaction below.
        let taken = sqlx::query(
            "UPDATE states SET lock_id = ?, lock_info = ?, lock_token_id = ?, lock_holder = ?, locked_at = ? \
             WHERE workspace_id = ? AND name = ? AND deleted_at IS NULL AND lock_id IS NULL",
        )
        .bind(&req.id)
        .bind(&req.info)
        .bind(&req.token_id)
        .bind(&req.holder)
        .bind(req.at.0)
        .bind(workspace_id)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if taken.rows_affected() == 1 {
            insert_pending(&mut tx, &journal(&LockOutcome::Acquired)).await?;
            commit(tx).await?;
            return Ok(LockOutcome::Acquired);
        }
        let state = ensure_state_in(&mut tx, workspace_id, name, req.at).await?;
        let outcome = rules::decide_lock(state.lock.as_ref(), &req.id, &req.token_id)?;
        if outcome == LockOutcome::Acquired {
            sqlx::query(
                "UPDATE states SET lock_id = ?, lock_info = ?, lock_token_id = ?, lock_holder = ?, locked_at = ? WHERE id = ?",
            )
            .bind(&req.id)
            .bind(&req.info)
            .bind(&req.token_id)
            .bind(&req.holder)
            .bind(req.at.0)
            .bind(&state.id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        insert_pending(&mut tx, &journal(&outcome)).await?;
        commit(tx).await?;
        Ok(outcome)
    }

    async fn unlock_state_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        req: &UnlockRequest,
        journal: Journaling<'_, UnlockOutcome>,
    ) -> Result<UnlockOutcome> {
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        // Fast path, one statement: the holder releasing its own lock (matching ID and token).
        if let Some(id) = &req.id {
            let released = sqlx::query(
                "UPDATE states SET lock_id = NULL, lock_info = NULL, lock_token_id = NULL, lock_holder = NULL, \
                 locked_at = NULL WHERE workspace_id = ? AND name = ? AND deleted_at IS NULL \
                 AND lock_id = ? AND lock_token_id = ?",
            )
            .bind(workspace_id)
            .bind(name)
            .bind(id)
            .bind(&req.token_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if released.rows_affected() == 1 {
                insert_pending(&mut tx, &journal(&UnlockOutcome::Released)).await?;
                commit(tx).await?;
                return Ok(UnlockOutcome::Released);
            }
        }
        let Some(state) = live_state_in(&mut tx, workspace_id, name).await? else {
            insert_pending(&mut tx, &journal(&UnlockOutcome::NotLocked)).await?;
            commit(tx).await?;
            return Ok(UnlockOutcome::NotLocked);
        };
        let outcome = rules::decide_unlock(state.lock.as_ref(), req)?;
        if outcome != UnlockOutcome::NotLocked {
            sqlx::query(
                "UPDATE states SET lock_id = NULL, lock_info = NULL, lock_token_id = NULL, lock_holder = NULL, \
                 locked_at = NULL WHERE id = ?",
            )
            .bind(&state.id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        insert_pending(&mut tx, &journal(&outcome)).await?;
        commit(tx).await?;
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
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        let Some(state) = live_state_in(&mut tx, workspace_id, name).await? else {
            return Ok(false);
        };
        if let Some(lock) = state.lock {
            return Err(Error::Locked {
                holder_info: lock.info,
            });
        }
        sqlx::query("UPDATE states SET deleted_at = ?, deleted_by = ? WHERE id = ?")
            .bind(at.0)
            .bind(by)
            .bind(&state.id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_pending(&mut tx, &journal(&true)).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn list_deleted_states(&self, workspace_id: &str) -> Result<Vec<DeletedState>> {
        let rows = sqlx::query(
            "SELECT s.id, s.workspace_id, s.name, s.deleted_at, s.deleted_by, \
             (SELECT COUNT(*) FROM state_versions v WHERE v.state_id = s.id) AS versions \
             FROM states s WHERE s.workspace_id = ? AND s.deleted_at IS NOT NULL ORDER BY s.deleted_at DESC, s.id",
        )
        .bind(workspace_id)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
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
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        let name: Option<String> = sqlx::query_scalar(
            "SELECT name FROM states WHERE id = ? AND workspace_id = ? AND deleted_at IS NOT NULL",
        )
        .bind(state_id)
        .bind(workspace_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(name) = name else { return Ok(false) };
        if live_state_in(&mut tx, workspace_id, &name).await?.is_some() {
            return Err(Error::Conflict(format!(
                "a live state named {name:?} exists; delete or rename it before restoring this one"
            )));
        }
        sqlx::query(
            "UPDATE states SET deleted_at = NULL, deleted_by = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(at.0)
        .bind(state_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_pending(&mut tx, &journal(&true)).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn purge_state_journaled(
        &self,
        workspace_id: &str,
        state_id: &str,
        journal: Journaling<'_, bool>,
    ) -> Result<bool> {
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        sqlx::query(
            "DELETE FROM state_versions WHERE state_id = \
             (SELECT id FROM states WHERE id = ? AND workspace_id = ? AND deleted_at IS NOT NULL)",
        )
        .bind(state_id)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let done = sqlx::query(
            "DELETE FROM states WHERE id = ? AND workspace_id = ? AND deleted_at IS NOT NULL",
        )
        .bind(state_id)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let purged = done.rows_affected() == 1;
        insert_pending(&mut tx, &journal(&purged)).await?;
        commit(tx).await?;
        Ok(purged)
    }

    async fn set_overwrite_until_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        until: Option<Timestamp>,
        journal: Journaling<'_, bool>,
    ) -> Result<bool> {
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        let done = sqlx::query(
            "UPDATE states SET overwrite_until = ? WHERE workspace_id = ? AND name = ? AND deleted_at IS NULL",
        )
        .bind(until.map(|u| u.0))
        .bind(workspace_id)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let found = done.rows_affected() == 1;
        insert_pending(&mut tx, &journal(&found)).await?;
        commit(tx).await?;
        Ok(found)
    }

    async fn flag_stale_locks(
        &self,
        workspace_id: &str,
        locked_before: Timestamp,
    ) -> Result<Vec<StateRecord>> {
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE states SET stale_flagged_lock_id = lock_id \
             WHERE workspace_id = ? AND deleted_at IS NULL AND lock_id IS NOT NULL AND locked_at < ? \
             AND stale_flagged_lock_id IS NOT lock_id RETURNING id",
        )
        .bind(workspace_id)
        .bind(locked_before.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut flagged = Vec::with_capacity(ids.len());
        for id in ids {
            let sql = sqlx::AssertSqlSafe(format!("{STATE_COLUMNS} WHERE s.id = ?"));
            let row = sqlx::query(sql)
                .bind(&id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            flagged.push(state_from(&row)?);
        }
        commit(tx).await?;
        Ok(flagged)
    }
}
