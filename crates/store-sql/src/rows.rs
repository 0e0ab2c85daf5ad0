//! Reading typed values out of a [`Row`], the same way on both engines.

use std::fmt;

use statehouse_core::clock::Timestamp;
use statehouse_core::{Error, Result};

use crate::engine::Row;

/// A column named, or numbered from 0.
#[derive(Debug, Clone, Copy)]
pub enum ColumnRef<'c> {
    Name(&'c str),
    Index(usize),
}

impl<'c> From<&'c str> for ColumnRef<'c> {
    fn from(name: &'c str) -> Self {
        ColumnRef::Name(name)
    }
}

impl From<usize> for ColumnRef<'_> {
    fn from(index: usize) -> Self {
        ColumnRef::Index(index)
    }
}

impl fmt::Display for ColumnRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnRef::Name(name) => f.write_str(name),
            ColumnRef::Index(i) => write!(f, "#{i}"),
        }
    }
}

/// A type a column is read as.
pub trait Column: Sized {
    fn read<R: Row + ?Sized>(row: &R, col: ColumnRef<'_>) -> Result<Self>;
}

fn null(col: ColumnRef<'_>) -> Error {
    Error::Internal(format!("stored column {col} is unexpectedly NULL"))
}

macro_rules! columns {
    ($($ty:ty => $read:ident),* $(,)?) => {$(
        impl Column for Option<$ty> {
            fn read<R: Row + ?Sized>(row: &R, col: ColumnRef<'_>) -> Result<Self> {
                row.$read(col)
            }
        }
        impl Column for $ty {
            fn read<R: Row + ?Sized>(row: &R, col: ColumnRef<'_>) -> Result<Self> {
                row.$read(col)?.ok_or_else(|| null(col))
            }
        }
    )*};
}

columns!(i64 => opt_int, String => opt_text, bool => opt_bool, Vec<u8> => opt_bytes);

impl Column for Option<Timestamp> {
    fn read<R: Row + ?Sized>(row: &R, col: ColumnRef<'_>) -> Result<Self> {
        Ok(row.opt_int(col)?.map(Timestamp))
    }
}

impl Column for Timestamp {
    fn read<R: Row + ?Sized>(row: &R, col: ColumnRef<'_>) -> Result<Self> {
        row.opt_int(col)?.map(Timestamp).ok_or_else(|| null(col))
    }
}

impl Column for serde_json::Value {
    /// JSON stored as text, exactly as serialized.
    fn read<R: Row + ?Sized>(row: &R, col: ColumnRef<'_>) -> Result<Self> {
        let text = String::read(row, col)?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Internal(format!("stored column {col} is not valid JSON: {e}")))
    }
}
