use thiserror::Error;

/// Why a notifier could not be configured or a notification was not delivered. Messages are one
/// line, say what to do, and never contain secrets (passwords, tokens, webhook URLs).
#[derive(Debug, Error)]
pub enum NotifyError {
    /// The notifier's settings are wrong; retrying will not help.
    #[error("{0}")]
    Invalid(String),
    /// The receiver answered with an error status (or, for Telegram, `ok: false`).
    #[error("{channel} answered HTTP {status}{}", detail_suffix(.detail))]
    Rejected {
        channel: &'static str,
        status: u16,
        /// What to check, in our words (the receiver's own words are never repeated).
        detail: String,
    },
    /// The mail server refused the login or the message, or the TLS handshake failed.
    #[error("{message}")]
    Smtp {
        message: String,
        /// The server answered with a permanent (5xx) refusal or TLS failed: retrying is futile.
        permanent: bool,
    },
    /// The receiver could not be reached, or did not answer in time (one message for every
    /// reason, so that it does not tell an open port from a closed one).
    #[error("{0}")]
    Unreachable(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl NotifyError {
    /// Whether sending the same notification again later may succeed (the receiver was
    /// unreachable, overloaded or failing), as opposed to a configuration the receiver rejects.
    pub fn is_retryable(&self) -> bool {
        match self {
            NotifyError::Invalid(_) => false,
            NotifyError::Rejected { status, .. } => matches!(*status, 408 | 429) || *status >= 500,
            NotifyError::Smtp { permanent, .. } => !permanent,
            NotifyError::Unreachable(_) => true,
        }
    }
}
