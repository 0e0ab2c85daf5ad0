//! S3 access keys: tokens that sign S3 requests (SigV4) instead of being presented.
//!
//! An S3 key is a row of the tokens table (its kind, role, expiry, revocation and last use are a
//! token's) with an access key id and a secret access key. SigV4 needs the secret on the
//! server, so unlike a token's secret it is stored sealed under the master key
//! ([`SealedKind::S3Key`]), never as a hash. Its `secret_hash` is a value no SHA-256 ever
//! equals ([`unpresentable_hash`]), so the key never works as a bearer token either.

use std::fmt;

use rand::Rng;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::access::{Principal, Token};
use crate::crypto::{Binding, SealedBody};
use crate::model::NewToken;
use crate::sealed::SealedKind;

/// What every access key id starts with, so a statehouse key is recognisable (AWS's own start
/// with `AKIA`/`ASIA`).
pub const ACCESS_KEY_PREFIX: &str = "SHK";
/// AWS's lengths: 20 characters of id, 40 of secret.
pub const ACCESS_KEY_ID_LEN: usize = 20;
pub const SECRET_LEN: usize = 40;

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// The secret alphabet AWS uses: 64 symbols, so each character carries 6 random bits.
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A new access key id: the prefix and 17 random uppercase letters and digits (~88 bits).
pub fn generate_access_key_id() -> String {
    let mut rng = rand::rngs::OsRng;
    let mut id = String::with_capacity(ACCESS_KEY_ID_LEN);
    id.push_str(ACCESS_KEY_PREFIX);
    while id.len() < ACCESS_KEY_ID_LEN {
        id.push(char::from(ID_ALPHABET[rng.gen_range(0..ID_ALPHABET.len())]));
    }
    id
}

/// Whether `s` has the shape of one of our access key ids (anything else is answered without
/// a store lookup).
pub fn is_access_key_id(s: &str) -> bool {
    s.len() == ACCESS_KEY_ID_LEN
        && s.starts_with(ACCESS_KEY_PREFIX)
        && s.bytes().all(|b| ID_ALPHABET.contains(&b))
}

/// The `secret_hash` stored for an S3 key: not 64 hex digits, so no presented bearer secret's
/// SHA-256 can equal it (and it stays unique, as the column requires).
pub fn unpresentable_hash(access_key_id: &str) -> String {
    format!("s3-key:{access_key_id}")
}

/// Where an S3 key's sealed secret is bound: the token's own row.
pub fn secret_binding(token_id: &str) -> Binding<'_> {
    SealedKind::S3Key.binding(token_id, token_id)
}

/// A secret access key, shown once at creation; wiped from memory when dropped.
pub struct S3Secret(Zeroizing<String>);

impl S3Secret {
    /// 40 characters of `[A-Za-z0-9+/]` (240 random bits).
    pub fn generate() -> Self {
        let mut rng = rand::rngs::OsRng;
        let mut secret = Zeroizing::new(String::with_capacity(SECRET_LEN));
        for _ in 0..SECRET_LEN {
            secret.push(char::from(
                SECRET_ALPHABET[rng.gen_range(0..SECRET_ALPHABET.len())],
            ));
        }
        S3Secret(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for S3Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("S3Secret(***)")
    }
}

/// An S3 key to store: its token row, access key id and sealed secret.
#[derive(Debug, Clone)]
pub struct NewS3Key {
    pub token: NewToken,
    pub access_key_id: String,
    pub secret: SealedBody,
}

/// A stored S3 key with its sealed secret (`token.s3_access_key_id` is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredS3Key {
    pub token: Token,
    pub secret: SealedBody,
}

impl StoredS3Key {
    pub fn access_key_id(&self) -> &str {
        self.token.s3_access_key_id.as_deref().unwrap_or_default()
    }
}

/// The secret of a usable S3 key and the principal it acts as (what the S3 listener checks a
/// request's signature with, then authorizes by).
pub struct S3KeyCredentials {
    pub secret: Zeroizing<String>,
    pub principal: Principal,
}

impl fmt::Debug for S3KeyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3KeyCredentials")
            .field("secret", &"***")
            .field("principal", &self.principal)
            .finish()
    }
}

/// An S3 key as listings show it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct S3KeyInfo {
    pub access_key_id: String,
    #[serde(flatten)]
    pub token: crate::service::TokenInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_key_ids_have_the_aws_shape_and_our_prefix() {
        let a = generate_access_key_id();
        let b = generate_access_key_id();
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert_eq!(id.len(), 20);
            assert!(id.starts_with("SHK"), "{id}");
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
                "{id}"
            );
            assert!(is_access_key_id(id));
        }
        for bad in [
            "",
            "SHK",
            "AKIAIOSFODNN7EXAMPLE",
            "SHKabcdefghijklmnopq",
            "SHK0000000000000000\0",
        ] {
            assert!(!is_access_key_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_forty_characters_of_the_aws_alphabet_and_never_debugged() {
        let a = S3Secret::generate();
        let b = S3Secret::generate();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 40);
        assert!(
            a.expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
        );
        assert!(!format!("{a:?}").contains(a.expose()));
        let creds = S3KeyCredentials {
            secret: Zeroizing::new(a.expose().to_owned()),
            principal: Principal::local_operator(),
        };
        assert!(!format!("{creds:?}").contains(a.expose()));
    }

    #[test]
    fn the_stored_hash_is_never_a_presented_secret_s() {
        let hash = unpresentable_hash("SHK00000000000000000");
        assert_ne!(hash.len(), 64);
        assert!(!hash.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
