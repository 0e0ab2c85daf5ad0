//! Local users, their workspace memberships, browser sessions, and password hashing.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::access::{Role, hash_secret, random_secret};
use crate::clock::Timestamp;
use crate::{Error, Result};

/// A local user. Users log in with a password (web UI) and own user tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    /// Unique; lower case letters, digits and `.` `_` `-` `@`.
    pub name: String,
    /// Argon2id PHC string; `None`: the user cannot log in until a password is set.
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// May manage users, and has the admin role in every workspace.
    pub instance_admin: bool,
    pub created_at: Timestamp,
    /// A disabled user cannot log in and its tokens and sessions do not work.
    pub disabled_at: Option<Timestamp>,
    /// The identity-provider account single sign-on created this user for (`issuer#sub`);
    /// `None` for users made any other way, which single sign-on never signs in.
    #[serde(skip)]
    pub sso_subject: Option<String>,
}

impl User {
    pub fn has_password(&self) -> bool {
        self.password_hash.is_some()
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

/// A user's role in one workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub user_id: String,
    pub user_name: String,
    pub workspace_id: String,
    pub workspace_name: String,
    pub role: Role,
    /// When the role was last set.
    pub granted_at: Timestamp,
}

/// A user with its roles, as authentication needs them (cached briefly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccess {
    pub user: User,
    /// Workspace id → role.
    pub memberships: BTreeMap<String, Role>,
}

/// A browser session. Only the SHA-256 of its secret (the cookie value) is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    #[serde(skip)]
    pub secret_hash: String,
    pub created_at: Timestamp,
    /// Updated at most about once a minute; the idle timeout counts from it.
    pub last_seen_at: Timestamp,
    /// The absolute end of the session, whatever its use.
    pub expires_at: Timestamp,
    pub source_ip: Option<String>,
}

const SESSION_PREFIX: &str = "shs_";

/// A session's secret, the value of the session cookie.
pub struct SessionSecret(String);

impl SessionSecret {
    pub fn generate() -> Self {
        SessionSecret(random_secret(SESSION_PREFIX))
    }

    pub fn from_cookie(value: &str) -> Self {
        SessionSecret(value.to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> String {
        hash_secret(&self.0)
    }

    /// The CSRF token of this session: derived from the secret, so it needs no storage and a
    /// page can be given it again (it is only as good as the cookie, which scripts cannot read).
    pub fn csrf_token(&self) -> String {
        let digest = Sha256::digest(format!("statehouse-csrf:{}", self.0).as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(***)")
    }
}

/// Compares two strings in time that depends only on their lengths (`subtle`, as for the
/// operator secret).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Session lifetimes and the cookie's `Secure` attribute (configuration `auth.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthSettings {
    /// A session unused for this long ends.
    pub session_idle_millis: i64,
    /// A session ends this long after login, used or not.
    pub session_lifetime_millis: i64,
    /// Mark the session cookie `Secure` (browsers send it over HTTPS only).
    pub cookie_secure: bool,
    /// Users may sign in with a password (`oidc.local_login`; off: single sign-on only, and
    /// tokens).
    pub password_login: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            session_idle_millis: 8 * 3_600_000,
            session_lifetime_millis: 7 * 86_400_000,
            cookie_secure: true,
            password_login: true,
        }
    }
}

/// Checks and normalises (to lower case) a user name.
pub fn parse_user_name(name: &str) -> Result<String> {
    let name = name.trim().to_lowercase();
    let valid_char = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '@')
    };
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() || name.len() > 64 || !starts_well || !name.chars().all(valid_char) {
        return Err(Error::BadRequest(format!(
            "invalid user name {name:?}: use 1-64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit"
        )));
    }
    Ok(name)
}

pub const MIN_PASSWORD_CHARS: usize = 10;
const MAX_PASSWORD_BYTES: usize = 1024;

/// Checks a new password's length.
pub fn check_new_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::BadRequest(format!(
            "password is too short: use at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::BadRequest(format!(
            "password is too long: at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Argon2id with the crate's default parameters, as a PHC string. CPU-heavy (tens of ms):
/// call from a blocking thread (see [`hash_password_blocking`]).
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

/// True when `password` matches the PHC string (any algorithm the argon2 crate reads).
pub fn verify_password(phc: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, verified against when a login names an unknown user (or one
/// without a password), so such a failure takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_secret("")).unwrap_or_default())
}

/// [`hash_password`] on a blocking thread.
pub async fn hash_password_blocking(password: &str) -> Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| Error::Internal(format!("password hashing task failed: {e}")))?
}

/// [`verify_password`] on a blocking thread; with `None`, verifies against a dummy hash and
/// answers false (same cost as a wrong password).
pub async fn verify_password_blocking(phc: Option<&str>, password: &str) -> bool {
    let phc = phc.map(str::to_owned);
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_password(&phc, &password),
        None => {
            verify_password(dummy_hash(), &password);
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn passwords_hash_to_argon2id_phc_and_verify() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password(&phc, "correct horse battery"));
        assert!(!verify_password(&phc, "correct horse batterY"));
        assert!(!verify_password("not a phc string", "x"));
        let again = hash_password("correct horse battery").unwrap();
        assert_ne!(phc, again, "salted");
    }

    #[tokio::test]
    async fn blocking_variants_and_the_dummy() {
        let phc = hash_password_blocking("0123456789").await.unwrap();
        assert!(verify_password_blocking(Some(&phc), "0123456789").await);
        assert!(!verify_password_blocking(Some(&phc), "012345678").await);
        assert!(!verify_password_blocking(None, "0123456789").await);
        assert!(dummy_hash().starts_with("$argon2id$"));
    }

    /// An unknown user is checked against the dummy hash: it must cost what a real one costs,
    /// so its algorithm, version, memory, iterations, parallelism and lengths are those of the
    /// hashes passwords get.
    #[test]
    fn the_dummy_hash_costs_what_real_hashes_cost() {
        let real = hash_password("some user's password").unwrap();
        let real = PasswordHash::new(&real).unwrap();
        let dummy = PasswordHash::new(dummy_hash()).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.salt.map(|s| s.len()), real.salt.map(|s| s.len()));
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
        assert_eq!(dummy.algorithm.as_str(), "argon2id");
    }

    #[test]
    fn new_passwords_have_a_minimum_length() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("ten chars!").is_ok());
        assert!(check_new_password(&"x".repeat(2000)).is_err());
    }

    #[test]
    fn user_names() {
        assert_eq!(parse_user_name(" Alice ").unwrap(), "alice");
        assert_eq!(parse_user_name("ops.bot-1@corp").unwrap(), "ops.bot-1@corp");
        for bad in ["", "-x", "a b", "ä", &"a".repeat(65), "x/y"] {
            assert!(parse_user_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn session_secrets_and_csrf() {
        let a = SessionSecret::generate();
        let b = SessionSecret::generate();
        assert!(a.expose().starts_with("shs_"));
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.csrf_token(), b.csrf_token());
        assert_eq!(
            a.csrf_token(),
            SessionSecret::from_cookie(a.expose()).csrf_token()
        );
        assert_ne!(a.csrf_token(), a.expose());
        assert!(!format!("{a:?}").contains(a.expose()));
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
