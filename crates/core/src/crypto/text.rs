//! Small sealed texts: a secret in the configuration file (`sealed:…`), a short-lived cookie.
//! Not envelope encryption: AES-256-GCM under a key derived from a master key for
//! `purpose` ([`super::MasterKey::derived_key`]), the purpose as associated data. The text
//! names the master key (`<key id>.<base64url(nonce ‖ ciphertext)>`), so it opens as long as
//! the key file holds that key, retired or not.

use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use zeroize::Zeroizing;

use super::{Cipher, KeyState, decrypt, encrypt};
use crate::Error;

impl Cipher {
    /// Seals `plain` under the sealing key for `purpose`.
    pub fn seal_text(&self, purpose: &str, plain: &[u8]) -> Result<String, Error> {
        let master = self.read(KeyState::sealing_key)??;
        let key = master.derived_key(purpose)?;
        let sealed = encrypt(
            &Aes256Gcm::new(key.as_ref().into()),
            plain,
            purpose.as_bytes(),
        )?;
        Ok(format!(
            "{}.{}",
            master.id,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    /// Opens a text made by [`Cipher::seal_text`] for the same `purpose`. Every failure reads
    /// alike to the caller (wrong purpose, tampered, unknown key, not a sealed text) except a
    /// key missing from the key file, which is named.
    pub fn open_text(&self, purpose: &str, text: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        let malformed = || Error::BadRequest("not a sealed text made by statehouse".into());
        let (key_id, body) = text.trim().split_once('.').ok_or_else(malformed)?;
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| malformed())?;
        let master = self
            .read(|s| s.ring.find(key_id).cloned())?
            .ok_or_else(|| {
                Error::Config(format!(
                    "sealed with master key {key_id:?}, which is not in the master key file"
                ))
            })?;
        let key = master.derived_key(purpose)?;
        decrypt(
            &Aes256Gcm::new(key.as_ref().into()),
            &sealed,
            purpose.as_bytes(),
        )
        .map(Zeroizing::new)
        .map_err(|_| {
            Error::BadRequest(
                "the sealed text does not open (altered, or sealed for something else)".into(),
            )
        })
    }

    /// Whether a text made by [`Cipher::seal_text`] names a key other than the sealing key
    /// (sealed before a rotation: seal it again before the old key is forgotten).
    pub fn text_sealed_under_old_key(&self, text: &str) -> bool {
        let Some((key_id, _)) = text.trim().split_once('.') else {
            return false;
        };
        self.sealing_key_id().is_ok_and(|id| id != key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Keyring, MasterKey};
    use super::*;

    #[test]
    fn sealed_texts_open_only_for_their_purpose_and_key() -> Result<(), Error> {
        let old = MasterKey::generate();
        let cipher = Cipher::fixed(Keyring::new(old.clone()));
        let text = cipher.seal_text("oidc-client-secret", b"hunter2-hunter2")?;
        assert!(!text.contains("hunter2"));
        assert!(text.starts_with(&format!("{}.", old.id())));
        assert_eq!(
            cipher.open_text("oidc-client-secret", &text)?.as_slice(),
            b"hunter2-hunter2"
        );
        assert!(cipher.open_text("oidc-login-cookie", &text).is_err());
        let mut altered = text.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).map_err(|e| Error::Internal(e.to_string()))?;
        assert!(cipher.open_text("oidc-client-secret", &altered).is_err());
        assert!(
            cipher
                .open_text("oidc-client-secret", "no dot here")
                .is_err()
        );
        // After a rotation the old key still opens it (retired keys stay in the file), and
        // the text is known to be sealed under an old key.
        let rotated = Cipher::fixed(Keyring::new(old).with_new_primary(MasterKey::generate()));
        assert_eq!(
            rotated.open_text("oidc-client-secret", &text)?.as_slice(),
            b"hunter2-hunter2"
        );
        assert!(rotated.text_sealed_under_old_key(&text));
        assert!(!cipher.text_sealed_under_old_key(&text));
        // A key file without that key names the key.
        let other = Cipher::fixed(Keyring::new(MasterKey::generate()));
        assert!(matches!(
            other.open_text("oidc-client-secret", &text),
            Err(Error::Config(_))
        ));
        Ok(())
    }
}
