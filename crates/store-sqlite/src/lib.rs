//! The embedded default store: one SQLite file in WAL mode, served by the one SQL store
//! (`statehouse-store-sql`) over [`engine::SqliteEngine`]. This crate keeps what only SQLite
//! has: opening the file (mode 0600), its migrations, the one write connection and the WAL
//! checkpointer.
//!
//! `synchronous=NORMAL` in WAL mode keeps every committed transaction across a process crash
//! (`kill -9`); only an OS crash or power loss can drop the last commits.

mod checkpoint;
pub mod engine;
mod probe;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};

use statehouse_core::{Error, Result};
use statehouse_store_sql::SqlStore;

pub use engine::SqliteEngine;
pub use probe::probe;

/// The store on SQLite.
pub type SqliteStore = SqlStore<SqliteEngine>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

fn open_err(e: sqlx::Error) -> Error {
    Error::store(format!("cannot open SQLite database: {e}"))
}

/// Opens (creating if missing, mode 0600) the database file and applies migrations.
pub async fn open(path: &Path) -> Result<SqliteStore> {
    create_private_file(path)?;
    let options = SqliteConnectOptions::new().filename(path);
    open_with(options.create_if_missing(true)).await
}

/// Opens a `sqlite:` URL (e.g. `sqlite:///var/lib/statehouse/db.sqlite`), creating a
/// missing file with mode 0600.
pub async fn open_url(url: &str) -> Result<SqliteStore> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::Config(format!("invalid SQLite URL: {e}")))?;
    if !url.contains(":memory:") && !url.contains("mode=memory") {
        create_private_file(options.get_filename())?;
    }
    open_with(options.create_if_missing(true)).await
}

async fn open_with(options: SqliteConnectOptions) -> Result<SqliteStore> {
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
    sqlx::query(checkpoint::CHECKPOINTER_BUSY_TIMEOUT)
        .execute(&mut checkpoint_conn)
        .await
        .map_err(open_err)?;
    let checkpointer = tokio::spawn(checkpoint::checkpoint_loop(checkpoint_conn));
    Ok(SqlStore::new(SqliteEngine::new(read, write, checkpointer)))
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
        Err(e) => Err(Error::store(format!(
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
    MIGRATOR
        .run_direct(None, &mut write, false)
        .await
        .map_err(|e| Error::store(format!("SQLite migration failed: {e}")))?;
    Ok(write)
}
