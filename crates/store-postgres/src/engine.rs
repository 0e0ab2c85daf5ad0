//! The PostgreSQL engine of the one SQL store: one pool; a write transaction is a pooled
//! connection in `BEGIN` (READ COMMITTED), whose rows the store locks with `FOR UPDATE`.

use std::ops::DerefMut;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, PgQueryResult, PgRow};
use sqlx::{Postgres, Transaction};

use statehouse_core::store::metrics::PoolStatus;
use statehouse_store_sql::pool::Waiting;
use statehouse_store_sql::sqlx_conn::{Record, SqlxConn};
use statehouse_store_sql::{DbError, DbErrorKind, Dialect, Engine, Tx};

pub struct PgEngine {
    pub(crate) pool: PgPool,
    /// Where the database is, for error messages (no password).
    pub(crate) target: Arc<str>,
    /// Callers waiting for a pooled connection (`/metrics`).
    pub(crate) waiting: Waiting,
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

/// A connection of the pool as the store uses it: `C` is the pooled connection itself (reads,
/// writes of one statement) or a transaction on one ([`PgTx`]).
pub struct PgConn<'e, C = PoolConnection<Postgres>> {
    conn: C,
    target: &'e str,
}

/// A transaction on a pooled connection; rolled back when dropped uncommitted.
pub type PgTx<'e> = PgConn<'e, Transaction<'static, Postgres>>;

impl<C: DerefMut<Target = PgConnection> + Send> SqlxConn for PgConn<'_, C> {
    type Db = Postgres;
    fn connection(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
    fn error(&self, e: sqlx::Error) -> DbError {
        db_error(self.target, e)
    }
    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}

impl Tx for PgTx<'_> {
    async fn commit(self) -> Result<(), DbError> {
        let target = self.target;
        self.conn.commit().await.map_err(|e| db_error(target, e))
    }
}

impl Engine for PgEngine {
    type Row = Record<PgRow>;
    type Read<'e> = PgConn<'e>;
    type Tx<'e> = PgTx<'e>;
    type Writer<'e> = PgConn<'e>;

    const DIALECT: Dialect = Dialect::Postgres;

    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn read(&self) -> Result<PgConn<'_>, DbError> {
        let waiting = self.waiting.enter();
        let conn = self.pool.acquire().await;
        drop(waiting);
        let conn = conn.map_err(|e| db_error(&self.target, e))?;
        Ok(PgConn {
            conn,
            target: &self.target,
        })
    }

    async fn begin(&self) -> Result<PgTx<'_>, DbError> {
        let waiting = self.waiting.enter();
        let conn = self.pool.begin().await;
        drop(waiting);
        let conn = conn.map_err(|e| db_error(&self.target, e))?;
        Ok(PgTx {
            conn,
            target: &self.target,
        })
    }

    async fn writer(&self) -> Result<PgConn<'_>, DbError> {
        self.read().await
    }

    fn pool_status(&self) -> PoolStatus {
        let open = u64::from(self.pool.size());
        let idle = u64::try_from(self.pool.num_idle()).unwrap_or(u64::MAX);
        PoolStatus {
            in_use: open.saturating_sub(idle),
            idle,
            waiters: self.waiting.count(),
            max: u64::from(self.pool.options().get_max_connections()),
        }
    }
}
