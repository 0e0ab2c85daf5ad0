//! What an engine crate gives the one SQL store: connections and transactions, running a
//! [`Sql`] statement, reading a row, and which dialect its SQL text is in. Everything else —
//! the statements, the flow, the rules — is written once in this crate.

use std::future::Future;

use statehouse_core::Result;
use statehouse_core::store::metrics::PoolStatus;

use crate::error::DbError;

use crate::query::Sql;
use crate::rows::ColumnRef;

/// The two SQL dialects, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// One writer at a time (`BEGIN IMMEDIATE`): a write transaction excludes every other writer,
    /// so no row locks are needed.
    Sqlite,
    /// Many writers: rows are locked with `FOR UPDATE`, claims skip locked rows.
    Postgres,
}

impl Dialect {
    /// `sqlite` or `postgres`, whichever is this dialect's.
    pub fn pick<T>(self, sqlite: T, postgres: T) -> T {
        match self {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }
}

/// A database engine (SQLite or PostgreSQL).
pub trait Engine: Send + Sync + 'static {
    type Row: Row;
    /// A connection for reading.
    type Read<'e>: Conn<Row = Self::Row>
    where
        Self: 'e;
    /// A write transaction, begun; dropped without [`Tx::commit`] it rolls back.
    type Tx<'e>: Tx<Row = Self::Row>
    where
        Self: 'e;
    /// A connection for a write made of one statement, committed on its own.
    type Writer<'e>: Conn<Row = Self::Row>
    where
        Self: 'e;

    const DIALECT: Dialect;

    /// `sqlite` or `postgres`, for logs.
    fn kind(&self) -> &'static str;
    fn read(&self) -> impl Future<Output = Result<Self::Read<'_>, DbError>> + Send;
    /// A connection for a read that tolerates lag (listings, search, metrics): a read
    /// replica's while it is within the configured staleness bound and has this process's
    /// writes; the primary's otherwise.
    fn read_lagging(&self) -> impl Future<Output = Result<Self::Read<'_>, DbError>> + Send {
        self.read()
    }
    fn begin(&self) -> impl Future<Output = Result<Self::Tx<'_>, DbError>> + Send;
    fn writer(&self) -> impl Future<Output = Result<Self::Writer<'_>, DbError>> + Send;
    /// This process's connections: in use, idle, callers waiting (for `/metrics`).
    fn pool_status(&self) -> PoolStatus;
}

/// Runs statements; errors are already the store's (mapped once, by the engine).
pub trait Conn: Send {
    type Row: Row;
    fn execute(&mut self, sql: Sql<'_>) -> impl Future<Output = Result<u64, DbError>> + Send;
    fn fetch_all(
        &mut self,
        sql: Sql<'_>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, DbError>> + Send;
    fn fetch_optional(
        &mut self,
        sql: Sql<'_>,
    ) -> impl Future<Output = Result<Option<Self::Row>, DbError>> + Send;
    /// Whether this connection's reads may lag the primary (a read replica's).
    fn lags(&self) -> bool;
}

/// A write transaction.
pub trait Tx: Conn {
    fn commit(self) -> impl Future<Output = Result<(), DbError>> + Send;
}

/// One result row. Columns are read by name or by position.
pub trait Row: Send + Sync + 'static {
    fn opt_int(&self, col: ColumnRef<'_>) -> Result<Option<i64>>;
    fn opt_text(&self, col: ColumnRef<'_>) -> Result<Option<String>>;
    fn opt_bool(&self, col: ColumnRef<'_>) -> Result<Option<bool>>;
    fn opt_bytes(&self, col: ColumnRef<'_>) -> Result<Option<Vec<u8>>>;

    /// A column's value as `T`.
    fn get<'c, T: crate::rows::Column>(&self, col: impl Into<ColumnRef<'c>>) -> Result<T>
    where
        Self: Sized,
    {
        T::read(self, col.into())
    }
}
