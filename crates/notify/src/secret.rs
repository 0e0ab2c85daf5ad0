use std::fmt;

use serde::{Deserialize, Serialize};

/// A password, token or secret URL. Serializes as the plain string (it is stored encrypted, see
/// [`crate::NotifierSpec::split_secrets`]) but never shows in `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// What stands in for a secret in logs and API answers.
pub(crate) const REDACTED: &str = "********";

/// Removes every known secret from text that came from elsewhere (a receiver's answer, a
/// library's error), in case it echoes one back.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        // Very short values (a 1-character password) would blank out ordinary words.
        if secret.len() >= 4 {
            text = text.replace(secret, REDACTED);
        }
    }
    text
}

/// `https://hooks.slack.com/…`: enough to recognise a secret URL without revealing it.
pub(crate) fn url_hint(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => match parsed.host_str() {
            Some(host) => match parsed.port() {
                Some(port) => format!("{}://{host}:{port}/…", parsed.scheme()),
                None => format!("{}://{host}/…", parsed.scheme()),
            },
            None => REDACTED.to_owned(),
        },
        Err(_) => REDACTED.to_owned(),
    }
}
