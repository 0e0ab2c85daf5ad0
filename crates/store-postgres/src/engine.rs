//! The PostgreSQL engine of the one SQL store: one pool; a write transaction is a pooled
//! connection in `BEGIN` (READ COMMITTED), whose rows the store locks with `FOR UPDATE`.

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Postgres, Row as _, Transaction, TypeInfo, ValueRef};

use statehouse_core::{Error, Result};
use statehouse_store_sql::rows::ColumnRef;
use statehouse_store_sql::{Arg, Conn, DbError, DbErrorKind, Dialect, Engine, Row, Sql, Tx};

pub struct PgEngine {
    pub(crate) pool: PgPool,
    /// Where the database is, for error messages (no password).
    pub(crate) target: Arc<str>,
}

impl PgEngine {
    /// The pool, for maintenance commands that need raw access.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Where the database is (no password), as error messages name it.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Closes every connection (waits for checked-out ones to come back).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Classifies a PostgreSQL error by its SQLSTATE and constraint, naming the server (never
/// the password).
pub(crate) fn db_error(target: &str, e: sqlx::Error) -> DbError {
    let (kind, message) = match &e {
        sqlx::Error::Database(d) => {
            let kind = if d.is_unique_violation() {
                DbErrorKind::Unique {
                    constraint: d.constraint().map(str::to_owned),
                }
            } else if d.is_foreign_key_violation() {
                DbErrorKind::ForeignKey
            } else {
                match d.code().as_deref() {
                    Some("23502") => DbErrorKind::NotNull, // not_null_violation
                    // serialization_failure, deadlock_detected
                    Some("40001" | "40P01") => DbErrorKind::Concurrent,
                    // query_canceled (statement_timeout), lock_not_available (lock_timeout),
                    // admin_shutdown, crash_shutdown, cannot_connect_now
                    Some("57014" | "55P03" | "57P01" | "57P02" | "57P03") => {
                        DbErrorKind::Unavailable
                    }
                    _ => DbErrorKind::Other,
                }
            };
            let message = match d.code().as_deref() {
                Some("57014" | "55P03") => format!(
                    "PostgreSQL at {target} did not answer in time ({}); retry",
                    d.message()
                ),
                Some("57P01" | "57P02" | "57P03") => {
                    format!("PostgreSQL at {target} is unavailable: {}", d.message())
                }
                _ => format!("PostgreSQL error: {}", d.message()),
            };
            (kind, message)
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => (
            DbErrorKind::Unavailable,
            format!("PostgreSQL at {target} is unreachable: {e}"),
        ),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::Decode(_) => (DbErrorKind::Decode, e.to_string()),
        _ => (DbErrorKind::Other, e.to_string()),
    };
    DbError::new(kind, message, e)
}

fn query(sql: Sql<'_>) -> Query<'static, Postgres, PgArguments> {
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
pub struct PgRecord(PgRow);

fn column<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(
    row: &'r PgRow,
    col: ColumnRef<'_>,
) -> Result<T> {
    let got = match col {
        ColumnRef::Name(name) => row.try_get(name),
        ColumnRef::Index(i) => row.try_get(i),
    };
    got.map_err(|e| Error::Internal(format!("reading column {col}: {e}")))
}

impl Row for PgRecord {
    /// Any integer column (`SMALLINT`, `INTEGER`, `BIGINT`) reads as an `i64`.
    fn opt_int(&self, col: ColumnRef<'_>) -> Result<Option<i64>> {
        let raw = match col {
            ColumnRef::Name(name) => self.0.try_get_raw(name),
            ColumnRef::Index(i) => self.0.try_get_raw(i),
        }
        .map_err(|e| Error::Internal(format!("reading column {col}: {e}")))?;
        if raw.is_null() {
            return Ok(None);
        }
        match raw.type_info().name() {
            "INT2" => Ok(column::<Option<i16>>(&self.0, col)?.map(i64::from)),
            "INT4" => Ok(column::<Option<i32>>(&self.0, col)?.map(i64::from)),
            _ => column(&self.0, col),
        }
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

/// Runs statements on a PostgreSQL connection.
macro_rules! pg_conn {
    ($ty:ty) => {
        impl Conn for $ty {
            type Row = PgRecord;
            async fn execute(&mut self, sql: Sql<'_>) -> Result<u64, DbError> {
                let done = query(sql)
                    .execute(&mut *self.conn)
                    .await
                    .map_err(|e| db_error(self.target, e))?;
                Ok(done.rows_affected())
            }
            async fn fetch_all(&mut self, sql: Sql<'_>) -> Result<Vec<PgRecord>, DbError> {
                let rows = query(sql)
                    .fetch_all(&mut *self.conn)
                    .await
                    .map_err(|e| db_error(self.target, e))?;
                Ok(rows.into_iter().map(PgRecord).collect())
            }
            async fn fetch_optional(&mut self, sql: Sql<'_>) -> Result<Option<PgRecord>, DbError> {
                let row = query(sql)
                    .fetch_optional(&mut *self.conn)
                    .await
                    .map_err(|e| db_error(self.target, e))?;
                Ok(row.map(PgRecord))
            }
        }
    };
}

/// A pooled connection (reads, and writes of one statement).
pub struct PgConn<'e> {
    conn: PoolConnection<Postgres>,
    target: &'e str,
}
pg_conn!(PgConn<'_>);

/// A transaction on a pooled connection; rolled back when dropped uncommitted.
pub struct PgTx<'e> {
    conn: Transaction<'static, Postgres>,
    target: &'e str,
}
pg_conn!(PgTx<'_>);

impl Tx for PgTx<'_> {
    async fn commit(self) -> Result<(), DbError> {
        let target = self.target;
        self.conn.commit().await.map_err(|e| db_error(target, e))
    }
}

impl Engine for PgEngine {
    type Row = PgRecord;
    type Read<'e> = PgConn<'e>;
    type Tx<'e> = PgTx<'e>;
    type Writer<'e> = PgConn<'e>;

    const DIALECT: Dialect = Dialect::Postgres;

    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn read(&self) -> Result<PgConn<'_>, DbError> {
        let conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| db_error(&self.target, e))?;
        Ok(PgConn {
            conn,
            target: &self.target,
        })
    }

    async fn begin(&self) -> Result<PgTx<'_>, DbError> {
        let conn = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error(&self.target, e))?;
        Ok(PgTx {
            conn,
            target: &self.target,
        })
    }

    async fn writer(&self) -> Result<PgConn<'_>, DbError> {
        self.read().await
    }
}
