use thiserror::Error;

/// Every failure a statehouse operation can report. Each variant maps to one HTTP status;
/// messages are one line, say what went wrong and how to proceed, and never contain secrets
/// or request bodies.
#[derive(Debug, Error)]
pub enum Error {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or unknown credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 409: conflicts with the current state (serial, lineage, names, concurrent change).
    #[error("{0}")]
    Conflict(String),
    /// 423: the state is locked by someone else; carries the holder's LockInfo JSON.
    #[error("state is locked by another client")]
    Locked { holder_info: String },
    /// 429: too many attempts (failed logins); retry after the given number of seconds.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// 413
    #[error("{0}")]
    TooLarge(String),
    /// Configuration or key file problems (startup, CLI).
    #[error("{0}")]
    Config(String),
    /// The database failed or is unreachable (503 when unreachable, else 500).
    #[error("store error: {0}")]
    Store(#[source] StoreError),
    /// 503: something outside statehouse it was asked to use (a database to back up, a
    /// storage target) could not be reached, did not answer in time or failed; the message
    /// says which and why, and is shown to the caller.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or corrupted data.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A store failure: one line for the caller (naming the database, never a password), and the
/// database driver's own error as its source, for logs.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct StoreError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl StoreError {
    pub fn new(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            source: None,
        }
    }

    /// The same failure, with what caused it.
    pub fn caused_by(
        mut self,
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = source;
        self
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Error {
    /// A store failure without an underlying cause.
    pub fn store(message: impl Into<String>) -> Self {
        Error::Store(StoreError::new(message))
    }
}
