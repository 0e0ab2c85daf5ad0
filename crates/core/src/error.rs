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
    Store(String),
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
