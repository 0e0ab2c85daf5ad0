//! The PostgreSQL engine of the one SQL store: one pool on the primary (kept on the right host
//! by [`Failover`]), and optionally one on a read replica for reads that tolerate lag; a write
//! transaction is a pooled connection in `BEGIN` (READ COMMITTED), whose rows the store locks
//! with `FOR UPDATE`.

use std::ops::DerefMut;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, PgQueryResult, PgRow};
use sqlx::{Postgres, Transaction};

use statehouse_core::metrics::names;
use statehouse_core::store::metrics::PoolStatus;
use statehouse_store_sql::pool::Waiting;
use statehouse_store_sql::sqlx_conn::{Record, SqlxConn};
use statehouse_store_sql::{DbError, DbErrorKind, Dialect, Engine, Tx};

use crate::failover::Failover;
use crate::replica::Replica;

pub struct PgEngine {
    /// The primary: every write and every read that must be current.
    pub(crate) primary: Side,
    /// The read replica (`read_url`), for reads that tolerate lag.
    pub(crate) replica: Option<Arc<Replica>>,
    /// Callers waiting for a pooled connection (`/metrics`).
    pub(crate) waiting: Waiting,
}

/// One pool and the server it is kept on.
pub(crate) struct Side {
    pub(crate) pool: PgPool,
    pub(crate) failover: Arc<Failover>,
    /// Where the database is, for error messages (no password).
    pub(crate) target: Arc<str>,
    /// The read replica's pool (reads only).
    pub(crate) is_replica: bool,
}

impl Side {
    /// Classifies `e`; an error that says the server went away or cannot write any more
    /// closes the pool's connections and starts a search for the right host.
    fn error(&self, e: sqlx::Error) -> DbError {
        if server_lost(&e) {
            self.failover.drop_open_connections();
            self.failover.search_soon(&self.pool);
        } else if matches!(e, sqlx::Error::PoolTimedOut) {
            self.failover.search_soon(&self.pool);
        }
        // A standby cancels a read that holds back replay ("conflict with recovery", SQLSTATE
        // 40001): nothing was written, the read can simply be asked again.
        if self.is_replica
            && let sqlx::Error::Database(d) = &e
            && d.code().as_deref() == Some("40001")
        {
            let message = format!(
                "the read replica at {} cancelled the read (a conflict with recovery); retry",
                self.target
            );
            return DbError::new(DbErrorKind::Unavailable, message, e);
        }
        db_error(&self.target, e)
    }

    async fn acquire(&self) -> Result<PoolConnection<Postgres>, DbError> {
        let acquire = self.pool.acquire();
        self.failover
            .watch(&self.pool, acquire)
            .await
            .map_err(|e| self.error(e))
    }
}

/// Counts a read that tolerates lag by where it is served (only with a read replica).
fn lag_tolerant_read(served_by: &'static str) {
    ::metrics::counter!(names::STORE_LAG_TOLERANT_READS, "served_by" => served_by).increment(1);
}

/// Whether `e` means the connection's server is gone, restarting or no longer writable.
fn server_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => matches!(
            d.code().as_deref(),
            Some("57P01" | "57P02" | "57P03" | "25006") | Some("08000" | "08003" | "08006")
        ),
        _ => false,
    }
}

impl PgEngine {
    /// The primary's pool, for maintenance commands that need raw access.
    pub fn pool(&self) -> &PgPool {
        &self.primary.pool
    }

    /// Where the database is (no password), as error messages name it.
    pub fn target(&self) -> &str {
        &self.primary.target
    }

    /// `host:port` of the primary host in use.
    pub fn current_host(&self) -> String {
        self.primary.failover.current_place()
    }

    /// Whether reads that tolerate lag would go to the read replica now.
    pub fn replica_in_use(&self) -> bool {
        self.replica.as_ref().is_some_and(|r| r.usable())
    }

    /// Closes every connection (waits for checked-out ones to come back).
    pub async fn close(&self) {
        self.primary.pool.close().await;
        if let Some(replica) = &self.replica {
            replica.side.pool.close().await;
        }
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
                    // admin_shutdown, crash_shutdown, cannot_connect_now,
                    // read_only_sql_transaction (a standby: a failover under way),
                    // connection_exception and its kinds
                    Some(
                        "57014" | "55P03" | "57P01" | "57P02" | "57P03" | "25006" | "08000"
                        | "08003" | "08006",
                    ) => DbErrorKind::Unavailable,
                    _ => DbErrorKind::Other,
                }
            };
            let message = match d.code().as_deref() {
                Some("57014" | "55P03") => format!(
                    "PostgreSQL at {target} did not answer in time ({}); retry",
                    d.message()
                ),
                Some("57P01" | "57P02" | "57P03" | "08000" | "08003" | "08006") => {
                    format!("PostgreSQL at {target} is unavailable: {}", d.message())
                }
                Some("25006") => format!(
                    "PostgreSQL at {target} does not accept writes (a standby; a failover may be \
                     under way); retry"
                ),
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
    side: &'e Side,
    /// Writes through this connection are noted here, so that reads that tolerate lag wait
    /// for the replica to have them (read-your-writes).
    writes_to: Option<&'e Replica>,
}

/// A transaction on a pooled connection; rolled back when dropped uncommitted.
pub type PgTx<'e> = PgConn<'e, Transaction<'static, Postgres>>;

impl<C: DerefMut<Target = PgConnection> + Send> SqlxConn for PgConn<'_, C> {
    type Db = Postgres;
    fn connection(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
    fn error(&self, e: sqlx::Error) -> DbError {
        self.side.error(e)
    }
    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
    fn finished(&mut self) {
        if let Some(replica) = self.writes_to {
            replica.note_write();
        }
    }
    fn lags(&self) -> bool {
        self.side.is_replica
    }
}

impl Tx for PgTx<'_> {
    async fn commit(self) -> Result<(), DbError> {
        let side = self.side;
        self.conn.commit().await.map_err(|e| side.error(e))?;
        if let Some(replica) = self.writes_to {
            replica.note_write();
        }
        Ok(())
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
        let conn = self.primary.acquire().await;
        drop(waiting);
        Ok(PgConn {
            conn: conn?,
            side: &self.primary,
            writes_to: None,
        })
    }

    async fn read_lagging(&self) -> Result<PgConn<'_>, DbError> {
        if let Some(replica) = &self.replica {
            replica.sample_soon(&self.primary.pool);
            if replica.usable() {
                match replica.acquire().await {
                    Ok(conn) => {
                        lag_tolerant_read("replica");
                        return Ok(PgConn {
                            conn,
                            side: &replica.side,
                            writes_to: None,
                        });
                    }
                    Err(e) => {
                        tracing::debug!("read replica unavailable, reading from the primary: {e}")
                    }
                }
            }
            lag_tolerant_read("primary");
        }
        self.read().await
    }

    async fn begin(&self) -> Result<PgTx<'_>, DbError> {
        let conn = self.read().await?;
        let side = conn.side;
        let tx = Transaction::begin(conn.conn, None)
            .await
            .map_err(|e| side.error(e))?;
        Ok(PgTx {
            conn: tx,
            side,
            writes_to: self.replica.as_deref(),
        })
    }

    async fn writer(&self) -> Result<PgConn<'_>, DbError> {
        let mut conn = self.read().await?;
        conn.writes_to = self.replica.as_deref();
        Ok(conn)
    }

    fn pool_status(&self) -> PoolStatus {
        let pool = &self.primary.pool;
        let open = u64::from(pool.size());
        let idle = u64::try_from(pool.num_idle()).unwrap_or(u64::MAX);
        PoolStatus {
            in_use: open.saturating_sub(idle),
            idle,
            waiters: self.waiting.count(),
            max: u64::from(pool.options().get_max_connections()),
        }
    }
}
