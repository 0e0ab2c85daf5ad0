//! The one adapter from sqlx to [`Conn`] and [`Row`]: an engine's connection types say which
//! sqlx connection they run on and how its errors are classified ([`SqlxConn`]); binding a
//! [`Sql`]'s values, running it and reading its rows is written here once for both drivers.

use std::borrow::Cow;
use std::time::Instant;

use sqlx::query::Query;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type, TypeInfo, ValueRef,
};

use statehouse_core::{Error, Result};

use crate::engine::{Conn, Row};
use crate::error::DbError;
use crate::pool::record_statement;
use crate::query::{Arg, Sql};
use crate::rows::ColumnRef;

/// A connection of an engine, as sqlx sees it.
pub trait SqlxConn: Send {
    type Db: Database;
    fn connection(&mut self) -> &mut <Self::Db as Database>::Connection;
    /// Classifies an error of this connection.
    fn error(&self, e: sqlx::Error) -> DbError;
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;
    /// Runs before each statement (the SQLite writer marks its connection: see its engine).
    fn starting(&mut self) {}
    /// Runs after each statement that succeeded.
    fn finished(&mut self) {}
    /// See [`Conn::lags`].
    fn lags(&self) -> bool {
        false
    }
}

/// A result row of any sqlx driver.
pub struct Record<R>(pub R);

fn query<'q, DB>(sql: Sql<'q>) -> Query<'q, DB, <DB as Database>::Arguments>
where
    DB: Database,
    for<'e> Option<i64>: Encode<'e, DB> + Type<DB>,
    for<'e> Option<bool>: Encode<'e, DB> + Type<DB>,
    for<'e> Option<String>: Encode<'e, DB> + Type<DB>,
    for<'e> Option<Vec<u8>>: Encode<'e, DB> + Type<DB>,
{
    let (text, args) = sql.into_parts();
    let mut query = match text {
        Cow::Borrowed(text) => sqlx::query(text),
        Cow::Owned(text) => sqlx::query(sqlx::AssertSqlSafe(text)),
    };
    for arg in args {
        // Owned values move into the arguments; borrowed ones are copied there (sqlx keeps
        // its own buffer either way).
        query = match arg {
            Arg::Int(v) => query.bind(v),
            Arg::Bool(v) => query.bind(v),
            Arg::Text(v) => query.bind(v.map(Cow::into_owned)),
            Arg::Bytes(v) => query.bind(v.map(Cow::into_owned)),
        };
    }
    query
}

impl<T> Conn for T
where
    T: SqlxConn,
    for<'c> &'c mut <T::Db as Database>::Connection: Executor<'c, Database = T::Db>,
    for<'q> <T::Db as Database>::Arguments: IntoArguments<T::Db> + 'q,
    for<'e> Option<i64>: Encode<'e, T::Db> + Type<T::Db>,
    for<'e> Option<bool>: Encode<'e, T::Db> + Type<T::Db>,
    for<'e> Option<String>: Encode<'e, T::Db> + Type<T::Db>,
    for<'e> Option<Vec<u8>>: Encode<'e, T::Db> + Type<T::Db>,
    Record<<T::Db as Database>::Row>: Row,
{
    type Row = Record<<T::Db as Database>::Row>;

    fn lags(&self) -> bool {
        SqlxConn::lags(self)
    }

    async fn execute(&mut self, sql: Sql<'_>) -> Result<u64, DbError> {
        self.starting();
        let started = Instant::now();
        let done = query::<T::Db>(sql).execute(self.connection()).await;
        record_statement(started);
        let done = done.map_err(|e| self.error(e))?;
        self.finished();
        Ok(T::rows_affected(&done))
    }

    async fn fetch_all(&mut self, sql: Sql<'_>) -> Result<Vec<Self::Row>, DbError> {
        self.starting();
        let started = Instant::now();
        let rows = query::<T::Db>(sql).fetch_all(self.connection()).await;
        record_statement(started);
        let rows = rows.map_err(|e| self.error(e))?;
        self.finished();
        Ok(rows.into_iter().map(Record).collect())
    }

    async fn fetch_optional(&mut self, sql: Sql<'_>) -> Result<Option<Self::Row>, DbError> {
        self.starting();
        let started = Instant::now();
        let row = query::<T::Db>(sql).fetch_optional(self.connection()).await;
        record_statement(started);
        let row = row.map_err(|e| self.error(e))?;
        self.finished();
        Ok(row.map(Record))
    }
}

fn column<'r, R, T>(row: &'r R, col: ColumnRef<'_>) -> Result<T>
where
    R: sqlx::Row,
    T: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
    usize: ColumnIndex<R>,
{
    let got = match col {
        ColumnRef::Name(name) => row.try_get(name),
        ColumnRef::Index(i) => row.try_get(i),
    };
    got.map_err(|e| Error::Internal(format!("reading column {col}: {e}")))
}

impl<R> Row for Record<R>
where
    R: sqlx::Row + Sync + 'static,
    for<'c> &'c str: ColumnIndex<R>,
    usize: ColumnIndex<R>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i32>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i16>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<bool>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<Vec<u8>>: Decode<'r, R::Database> + Type<R::Database>,
{
    /// Any integer column reads as an `i64`: PostgreSQL's `SMALLINT` and `INTEGER` (a literal,
    /// a `count`) too, which its driver would refuse to widen.
    fn opt_int(&self, col: ColumnRef<'_>) -> Result<Option<i64>> {
        let raw = match col {
            ColumnRef::Name(name) => self.0.try_get_raw(name),
            ColumnRef::Index(i) => self.0.try_get_raw(i),
        }
        .map_err(|e| Error::Internal(format!("reading column {col}: {e}")))?;
        if raw.is_null() {
            return Ok(None);
        }
        // Read per value, so compared without copying the type's name.
        let narrow = match raw.type_info().name() {
            "INT2" => Some(2),
            "INT4" => Some(4),
            _ => None,
        };
        drop(raw);
        match narrow {
            Some(2) => Ok(column::<R, Option<i16>>(&self.0, col)?.map(i64::from)),
            Some(_) => Ok(column::<R, Option<i32>>(&self.0, col)?.map(i64::from)),
            None => column(&self.0, col),
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
