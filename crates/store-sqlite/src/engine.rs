//! The SQLite engine of the one SQL store: a read pool, and one write connection behind a
//! mutex (writes serialize in-process without busy loops; a statement on a dedicated
//! connection costs about half of one through a one-connection pool). Every write
//! transaction is `BEGIN IMMEDIATE`, so a second process on the same file waits on the busy
//! timeout instead of failing a read-to-write upgrade.

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteQueryResult, SqliteRow};
use sqlx::{Executor, Sqlite};
use tokio::sync::{Mutex, MutexGuard};
use tokio::task::JoinHandle;

use statehouse_core::store::metrics::PoolStatus;
use statehouse_store_sql::pool::Waiting;
use statehouse_store_sql::sqlx_conn::{Record, SqlxConn};
use statehouse_store_sql::{DbError, DbErrorKind, Dialect, Engine, Tx};

pub struct SqliteEngine {
    pub(crate) read: SqlitePool,
    write: Arc<Mutex<WriteConn>>,
    checkpointer: JoinHandle<()>,
    /// Callers waiting for a read connection or the write connection (`/metrics`).
    waiting: Waiting,
}

/// The write connection, and whether a transaction on it may still be open (one dropped
/// without a commit): it is rolled back before the connection is used again.
pub struct WriteConn {
    conn: SqliteConnection,
    open: bool,
}

impl Drop for SqliteEngine {
    fn drop(&mut self) {
        self.checkpointer.abort();
    }
}

impl SqliteEngine {
    pub(crate) fn new(
        read: SqlitePool,
        write: SqliteConnection,
        checkpointer: JoinHandle<()>,
    ) -> Self {
        SqliteEngine {
            read,
            write: Arc::new(Mutex::new(WriteConn {
                conn: write,
                open: false,
            })),
            checkpointer,
            waiting: Waiting::default(),
        }
    }

    async fn write_conn(&self) -> Result<MutexGuard<'_, WriteConn>, DbError> {
        let waiting = self.waiting.enter();
        let mut guard = self.write.lock().await;
        drop(waiting);
        guard.roll_back_if_open().await;
        Ok(guard)
    }
}

impl WriteConn {
    /// Rolls back a transaction left open (dropped without a commit, a BEGIN or script that
    /// failed half-way).
    async fn roll_back_if_open(&mut self) {
        if self.open {
            if let Err(e) = self.conn.execute("ROLLBACK").await {
                tracing::debug!(error = %e, "SQLite rollback of an abandoned transaction failed");
            }
            self.open = false;
        }
    }
}

/// Rolls back at once what a dropped transaction or statement left open: until then it holds
/// the database's write lock, which other processes on the file would wait for.
fn roll_back_soon(write: &Arc<Mutex<WriteConn>>) {
    let write = write.clone();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move { write.lock().await.roll_back_if_open().await });
    }
}

/// Classifies an SQLite error (SQLite names no constraint: a unique violation is "already exists").
pub(crate) fn db_error(e: sqlx::Error) -> DbError {
    let kind = match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            DbErrorKind::Unique { constraint: None }
        }
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => DbErrorKind::ForeignKey,
        sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::NotNullViolation => {
            DbErrorKind::NotNull
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::Decode(_) => DbErrorKind::Decode,
        _ => DbErrorKind::Other,
    };
    let message = e.to_string();
    DbError::new(kind, message, e)
}

/// A read connection from the pool.
pub struct SqliteRead(PoolConnection<Sqlite>);

impl SqlxConn for SqliteRead {
    type Db = Sqlite;
    fn connection(&mut self) -> &mut SqliteConnection {
        &mut self.0
    }
    fn error(&self, e: sqlx::Error) -> DbError {
        db_error(e)
    }
    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}

/// The write connection, in a `BEGIN IMMEDIATE` transaction ([`Engine::begin`]) or for one
/// statement committed on its own ([`Engine::writer`]). Such a statement may be a script with
/// its own `BEGIN … COMMIT` (the journal's fast seal): while one runs, the connection is marked
/// as possibly inside a transaction. Whatever is left open — a transaction dropped uncommitted,
/// a script failed or abandoned half-way — is rolled back at once.
pub struct SqliteWrite<'e> {
    guard: MutexGuard<'e, WriteConn>,
    write: Arc<Mutex<WriteConn>>,
    in_transaction: bool,
}

impl SqlxConn for SqliteWrite<'_> {
    type Db = Sqlite;
    fn connection(&mut self) -> &mut SqliteConnection {
        &mut self.guard.conn
    }
    fn error(&self, e: sqlx::Error) -> DbError {
        db_error(e)
    }
    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
    fn starting(&mut self) {
        if !self.in_transaction {
            self.guard.open = true;
        }
    }
    fn finished(&mut self) {
        if !self.in_transaction {
            self.guard.open = false;
        }
    }
}

impl Drop for SqliteWrite<'_> {
    fn drop(&mut self) {
        if self.guard.open {
            roll_back_soon(&self.write);
        }
    }
}

impl Tx for SqliteWrite<'_> {
    async fn commit(mut self) -> Result<(), DbError> {
        self.guard.conn.execute("COMMIT").await.map_err(db_error)?;
        self.guard.open = false;
        Ok(())
    }
}

impl Engine for SqliteEngine {
    type Row = Record<SqliteRow>;
    type Read<'e> = SqliteRead;
    type Tx<'e> = SqliteWrite<'e>;
    type Writer<'e> = SqliteWrite<'e>;

    const DIALECT: Dialect = Dialect::Sqlite;

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn read(&self) -> Result<SqliteRead, DbError> {
        let waiting = self.waiting.enter();
        let conn = self.read.acquire().await;
        drop(waiting);
        Ok(SqliteRead(conn.map_err(db_error)?))
    }

    async fn begin(&self) -> Result<SqliteWrite<'_>, DbError> {
        let mut guard = self.write_conn().await?;
        // Marked open first: if BEGIN fails half-way, the next user rolls back.
        guard.open = true;
        guard
            .conn
            .execute("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        Ok(SqliteWrite {
            guard,
            write: self.write.clone(),
            in_transaction: true,
        })
    }

    async fn writer(&self) -> Result<SqliteWrite<'_>, DbError> {
        Ok(SqliteWrite {
            guard: self.write_conn().await?,
            write: self.write.clone(),
            in_transaction: false,
        })
    }

    /// The read pool's connections and the write connection (in use while its mutex is held).
    fn pool_status(&self) -> PoolStatus {
        let open = u64::from(self.read.size());
        let idle = u64::try_from(self.read.num_idle()).unwrap_or(u64::MAX);
        let writing = u64::from(self.write.try_lock().is_err());
        PoolStatus {
            in_use: open.saturating_sub(idle) + writing,
            idle: idle + (1 - writing),
            waiters: self.waiting.count(),
            max: u64::from(self.read.options().get_max_connections()) + 1,
        }
    }
}
