//! A database error, classified once by the engine that saw it. The store decides on its
//! [`DbErrorKind`], never on message text; the cause is kept as the error's source.

use std::error::Error as StdError;

use statehouse_core::{Error, StoreError};

/// What kind of failure a database reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbErrorKind {
    /// A unique constraint refused the row (its name, when the engine reports one).
    Unique { constraint: Option<String> },
    /// A foreign key refused the change (the referenced row is gone, or still referenced).
    ForeignKey,
    /// A NOT NULL constraint refused a value (the journal's head check makes one on purpose
    /// when the head moved).
    NotNull,
    /// A concurrent transaction got in the way (serialization failure, deadlock): retrying helps.
    Concurrent,
    /// The database is unreachable, shut down or did not answer in time.
    Unavailable,
    /// A stored value could not be read as the expected type.
    Decode,
    /// Anything else.
    Other,
}

/// A failed statement: its kind, a one-line message (naming the server, never a password),
/// and the engine's own error as its source.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    pub kind: DbErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl DbError {
    pub fn new(
        kind: DbErrorKind,
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        DbError {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    pub fn is_unique(&self) -> bool {
        matches!(self.kind, DbErrorKind::Unique { .. })
    }

    pub fn is_foreign_key(&self) -> bool {
        self.kind == DbErrorKind::ForeignKey
    }
}

/// The words for a taken unique value, by the constraint's name in the schema.
fn taken(constraint: Option<&str>) -> &'static str {
    match constraint {
        Some("workspaces_name_unique") => "a workspace with this name already exists",
        Some("tokens_secret_hash_unique") => "a token with this secret already exists",
        Some("tokens_s3_access_key_id") => "an S3 key with this access key id already exists",
        Some("states_live_name") => "a live state with this name already exists",
        Some("state_versions_number") => {
            "this version number was taken by a concurrent write; retry"
        }
        Some(c) if c.ends_with("_pkey") => "a record with this id already exists",
        _ => "already exists",
    }
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Self {
        match &e.kind {
            DbErrorKind::Unique { constraint } => {
                Error::Conflict(taken(constraint.as_deref()).into())
            }
            DbErrorKind::Concurrent => Error::Conflict(
                "a concurrent change got in the way; nothing was written, retry".into(),
            ),
            DbErrorKind::Decode => Error::Internal(e.message),
            _ => Error::Store(StoreError::new(e.message).caused_by(e.source)),
        }
    }
}
