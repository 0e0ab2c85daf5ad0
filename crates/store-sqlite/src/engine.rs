//! The SQLite engine of the one SQL store: a read pool, and one write connection behind a
//! mutex (writes serialize in-process without busy loops; a statement on a dedicated
//! connection costs about half of one through a one-connection pool). Every write
//! transaction is `BEGIN IMMEDIATE`, so a second process on the same file waits on the busy
//! timeout instead of failing a read-to-write upgrade.

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Executor, Row as _, Sqlite};
use tokio::sync::{Mutex, MutexGuard};
use tokio::task::JoinHandle;

use statehouse_core::{Error, Result};
use statehouse_store_sql::rows::ColumnRef;
use statehouse_store_sql::{Arg, Conn, DbError, DbErrorKind, Dialect, Engine, Row, Sql, Tx};

pub struct SqliteEngine {
    pub(crate) read: SqlitePool,
    write: Arc<Mutex<WriteConn>>,
    checkpointer: JoinHandle<()>,
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
        }
    }

    async fn write_conn(&self) -> Result<MutexGuard<'_, WriteConn>, DbError> {
        let mut guard = self.write.lock().await;
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

fn query(sql: Sql<'_>) -> Query<'static, Sqlite, SqliteArguments> {
    let (text, args) = sql.into_parts();
    let mut query = match text {
        Cow::Borrowed(text) => sqlx::query(text),
        Cow::Owned(text) => sqlx::query(AssertSqlSafe(text)),
    };
    for arg in args {
        query = match arg {
            Arg::Int(v) => query.bind(v),
            Arg::Bool(v) => query.bind(v),
            Arg::Text(Some(Cow::Borrowed(v))) => query.bind(v),
            Arg::Text(v) => query.bind(v.map(Cow::into_owned)),
            Arg::Bytes(Some(Cow::Borrowed(v))) => query.bind(v),
            Arg::Bytes(v) => query.bind(v.map(Cow::into_owned)),
        };
    }
    query
}

/// A result row.
pub struct SqliteRecord(SqliteRow);

fn column<'r, T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>>(
    row: &'r SqliteRow,
    col: ColumnRef<'_>,
) -> Result<T> {
    let got = match col {
        ColumnRef::Name(name) => row.try_get(name),
        ColumnRef::Index(i) => row.try_get(i),
    };
    got.map_err(|e| Error::Internal(format!("reading column {col}: {e}")))
}

impl Row for SqliteRecord {
    fn opt_int(&self, col: ColumnRef<'_>) -> Result<Option<i64>> {
        column(&self.0, col)
    }
    fn opt_text(&self, col: ColumnRef<'_>) -> Result<Option<String>> {
        column(&self.0, col)
    }
    fn opt_bool(&self, col: ColumnRef<'_>) -> Result<Option<bool>> {
        column(&self.0, col)
    }
    fn opt_bytes(&self, col: ColumnRef<'_>) -> Result<Option<Vec<u8>>> {
        column(&self.0, col)
    }
}

/// Runs statements on any SQLite connection. `$before` and `$after` run around each
/// statement (the writer marks its connection while a statement runs: see [`SqliteWriter`]).
macro_rules! sqlite_conn {
    ($ty:ty, |$self:ident| $conn:expr, before: $before:expr, after: $after:expr) => {
        impl Conn for $ty {
            type Row = SqliteRecord;
            async fn execute(&mut $self, sql: Sql<'_>) -> Result<u64, DbError> {
                $before;
                let done = query(sql).execute($conn).await.map_err(db_error)?;
                $after;
                Ok(done.rows_affected())
            }
            async fn fetch_all(&mut $self, sql: Sql<'_>) -> Result<Vec<SqliteRecord>, DbError> {
                $before;
                let rows = query(sql).fetch_all($conn).await.map_err(db_error)?;
                $after;
                Ok(rows.into_iter().map(SqliteRecord).collect())
            }
            async fn fetch_optional(
                &mut $self,
                sql: Sql<'_>,
            ) -> Result<Option<SqliteRecord>, DbError> {
                $before;
                let row = query(sql).fetch_optional($conn).await.map_err(db_error)?;
                $after;
                Ok(row.map(SqliteRecord))
            }
        }
    };
}

/// A read connection from the pool.
pub struct SqliteRead(PoolConnection<Sqlite>);
sqlite_conn!(SqliteRead, |self| &mut *self.0, before: (), after: ());

/// The write connection, for one statement committed on its own. A statement may also be a
/// script with its own `BEGIN … COMMIT` (the journal's fast seal): while one runs the
/// connection is marked as possibly inside a transaction, so one that fails or is abandoned
/// half-way is rolled back before the connection is used again.
pub struct SqliteWriter<'e>(MutexGuard<'e, WriteConn>, Arc<Mutex<WriteConn>>);
sqlite_conn!(
    SqliteWriter<'_>,
    |self| &mut self.0.conn,
    before: self.0.open = true,
    after: self.0.open = false
);

impl Drop for SqliteWriter<'_> {
    fn drop(&mut self) {
        if self.0.open {
            roll_back_soon(&self.1);
        }
    }
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if self.0.open {
            roll_back_soon(&self.1);
        }
    }
}

/// A `BEGIN IMMEDIATE` transaction on the write connection.
/// Dropped uncommitted, it is rolled back at once.
pub struct SqliteTx<'e>(MutexGuard<'e, WriteConn>, Arc<Mutex<WriteConn>>);
sqlite_conn!(SqliteTx<'_>, |self| &mut self.0.conn, before: (), after: ());

impl Tx for SqliteTx<'_> {
    async fn commit(mut self) -> Result<(), DbError> {
        self.0.conn.execute("COMMIT").await.map_err(db_error)?;
        self.0.open = false;
        Ok(())
    }
}

impl Engine for SqliteEngine {
    type Row = SqliteRecord;
    type Read<'e> = SqliteRead;
    type Tx<'e> = SqliteTx<'e>;
    type Writer<'e> = SqliteWriter<'e>;

    const DIALECT: Dialect = Dialect::Sqlite;

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn read(&self) -> Result<SqliteRead, DbError> {
        Ok(SqliteRead(self.read.acquire().await.map_err(db_error)?))
    }

    async fn begin(&self) -> Result<SqliteTx<'_>, DbError> {
        let mut guard = self.write_conn().await?;
        // Marked open first: if BEGIN fails half-way, the next user rolls back.
        guard.open = true;
        guard
            .conn
            .execute("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        Ok(SqliteTx(guard, self.write.clone()))
    }

    async fn writer(&self) -> Result<SqliteWriter<'_>, DbError> {
        Ok(SqliteWriter(self.write_conn().await?, self.write.clone()))
    }
}
