//! A statement and the values bound to it, written once for both engines. Placeholders are
//! `$1`, `$2`, …: PostgreSQL's own form, which SQLite (through sqlx) reads as numbered
//! parameters too.

use std::borrow::Cow;

use statehouse_core::Result;
use statehouse_core::clock::Timestamp;

use crate::engine::{Conn, Dialect, Row};
use crate::error::DbError;
use crate::rows::Column;

/// A value to bind. Borrowed where the caller keeps the value; a NULL keeps its type
/// (PostgreSQL types every parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg<'a> {
    Int(Option<i64>),
    Bool(Option<bool>),
    Text(Option<Cow<'a, str>>),
    Bytes(Option<Cow<'a, [u8]>>),
}

/// What can be bound to a placeholder.
pub trait ToArg<'a>: Sized {
    fn to_arg(self) -> Arg<'a>;
    /// This type's NULL.
    fn null() -> Arg<'a>;
}

macro_rules! to_arg {
    ($($ty:ty => $variant:ident($value:ident) $make:expr),* $(,)?) => {$(
        impl<'a> ToArg<'a> for $ty {
            fn to_arg(self) -> Arg<'a> {
                let $value = self;
                Arg::$variant(Some($make))
            }
            fn null() -> Arg<'a> {
                Arg::$variant(None)
            }
        }
    )*};
}

to_arg!(
    i64 => Int(v) v,
    bool => Bool(v) v,
    Timestamp => Int(v) v.0,
    &'a str => Text(v) Cow::Borrowed(v),
    &'a String => Text(v) Cow::Borrowed(v.as_str()),
    String => Text(v) Cow::Owned(v),
    &'a [u8] => Bytes(v) Cow::Borrowed(v),
    &'a Vec<u8> => Bytes(v) Cow::Borrowed(v.as_slice()),
    Vec<u8> => Bytes(v) Cow::Owned(v),
);

impl<'a, T: ToArg<'a>> ToArg<'a> for Option<T> {
    fn to_arg(self) -> Arg<'a> {
        self.map_or_else(T::null, ToArg::to_arg)
    }
    fn null() -> Arg<'a> {
        T::null()
    }
}

impl<'a> ToArg<'a> for &'a Option<String> {
    fn to_arg(self) -> Arg<'a> {
        self.as_deref().to_arg()
    }
    fn null() -> Arg<'a> {
        Arg::Text(None)
    }
}

impl<'a> ToArg<'a> for &'a Option<Vec<u8>> {
    fn to_arg(self) -> Arg<'a> {
        self.as_deref().to_arg()
    }
    fn null() -> Arg<'a> {
        Arg::Bytes(None)
    }
}

impl<'a> ToArg<'a> for &'a Option<i64> {
    fn to_arg(self) -> Arg<'a> {
        (*self).to_arg()
    }
    fn null() -> Arg<'a> {
        Arg::Int(None)
    }
}

impl<'a> ToArg<'a> for &'a i64 {
    fn to_arg(self) -> Arg<'a> {
        (*self).to_arg()
    }
    fn null() -> Arg<'a> {
        Arg::Int(None)
    }
}

/// A value as an [`Arg`] (for [`Sql::push_values`]).
pub fn arg<'a>(value: impl ToArg<'a>) -> Arg<'a> {
    value.to_arg()
}

impl<'a> ToArg<'a> for Arg<'a> {
    fn to_arg(self) -> Arg<'a> {
        self
    }
    fn null() -> Arg<'a> {
        Arg::Text(None)
    }
}

/// A subquery of the elements of placeholder `$n`, which holds a JSON array of text (lists
/// are bound as JSON on both engines): `… IN {json_elements(d, 1)}`.
pub fn json_elements(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("(SELECT value FROM json_each(${n}))"),
        Dialect::Postgres => format!("(SELECT jsonb_array_elements_text(${n}::jsonb))"),
    }
}

/// A list of text as the JSON array [`json_elements`] reads.
pub fn json_list<S: AsRef<str>>(items: &[S]) -> String {
    serde_json::Value::from(items.iter().map(|s| s.as_ref()).collect::<Vec<_>>()).to_string()
}

/// A statement: its text and its values in placeholder order.
#[derive(Debug, Clone)]
pub struct Sql<'a> {
    text: Cow<'static, str>,
    args: Vec<Arg<'a>>,
}

/// A statement written in full (the common case).
pub fn sql<'a>(text: &'static str) -> Sql<'a> {
    Sql {
        text: Cow::Borrowed(text),
        args: Vec::new(),
    }
}

impl<'a> Sql<'a> {
    /// A statement whose text was built at run time (from constants, never from input).
    pub fn built(text: String) -> Self {
        Sql {
            text: Cow::Owned(text),
            args: Vec::new(),
        }
    }

    /// Binds the next placeholder.
    pub fn bind(mut self, value: impl ToArg<'a>) -> Self {
        self.args.push(value.to_arg());
        self
    }

    /// Appends text (a constant fragment).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.to_mut().push_str(text);
        self
    }

    /// Appends the next placeholder and binds it.
    pub fn push_bind(&mut self, value: impl ToArg<'a>) -> &mut Self {
        self.args.push(value.to_arg());
        let n = self.args.len();
        self.text.to_mut().push_str(&format!("${n}"));
        self
    }

    /// Appends `VALUES ($1, $2, …), ($3, $4, …)`: one tuple per row, its values bound.
    pub fn push_values<const N: usize>(
        &mut self,
        rows: impl IntoIterator<Item = [Arg<'a>; N]>,
    ) -> &mut Self {
        self.push("VALUES ");
        for (i, row) in rows.into_iter().enumerate() {
            self.push(if i == 0 { "(" } else { ", (" });
            for (j, value) in row.into_iter().enumerate() {
                if j > 0 {
                    self.push(", ");
                }
                self.push_bind(value);
            }
            self.push(")");
        }
        self
    }

    /// How many values are bound so far (the last placeholder's number).
    pub fn bound(&self) -> usize {
        self.args.len()
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn into_parts(self) -> (Cow<'static, str>, Vec<Arg<'a>>) {
        (self.text, self.args)
    }

    /// Runs the statement; the number of rows it changed.
    pub async fn execute<C: Conn>(self, conn: &mut C) -> Result<u64, DbError> {
        conn.execute(self).await
    }

    pub async fn fetch_all<C: Conn>(self, conn: &mut C) -> Result<Vec<C::Row>, DbError> {
        conn.fetch_all(self).await
    }

    pub async fn fetch_optional<C: Conn>(self, conn: &mut C) -> Result<Option<C::Row>, DbError> {
        conn.fetch_optional(self).await
    }

    /// The one row the statement returns (an internal error when it returns none).
    pub async fn fetch_one<C: Conn>(self, conn: &mut C) -> Result<C::Row> {
        conn.fetch_optional(self).await?.ok_or_else(|| {
            statehouse_core::Error::Internal(
                "a statement expected to return a row returned none".into(),
            )
        })
    }

    /// The first column of the one row the statement returns.
    pub async fn scalar<T: Column, C: Conn>(self, conn: &mut C) -> Result<T> {
        self.fetch_one(conn).await?.get(0)
    }

    /// The first column of the first row, if there is one.
    pub async fn optional_scalar<T: Column, C: Conn>(self, conn: &mut C) -> Result<Option<T>> {
        match conn.fetch_optional(self).await? {
            Some(row) => row.get(0).map(Some),
            None => Ok(None),
        }
    }
}
