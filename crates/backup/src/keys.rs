//! Who can read a backup: age x25519 recipients (one or more public keys) or a passphrase (age
//! scrypt), and the matching identities or passphrase to decrypt.

use std::io::Read;

use age::secrecy::{ExposeSecret, SecretString};

use crate::pipeline::BackupError;

/// scrypt work factor (N = 2^15) of passphrase-encrypted backups: 32 MiB and a fraction of a
/// second, inside the per-operation memory budget of 64 MB. A passphrase is only as strong as
/// its length; prefer x25519 recipients, or a long random passphrase.
pub const PASSPHRASE_WORK_FACTOR: u8 = 15;
/// The highest scrypt work factor accepted when decrypting: age's own CLI encrypts with about
/// 2^18 (256 MiB), so its files still open; anything above is refused rather than risking
/// gigabytes of memory for a crafted header.
pub const MAX_PASSPHRASE_WORK_FACTOR: u8 = 18;

/// A new x25519 key pair: the identity (`AGE-SECRET-KEY-1…`, keep it secret: it decrypts) and
/// its recipient (`age1…`, public: backups are encrypted to it).
pub fn generate_key_pair() -> (SecretString, String) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    (identity.to_string(), recipient)
}

/// How a backup is encrypted.
#[derive(Clone)]
pub enum Encryption {
    /// To one or more age public keys; any matching identity decrypts.
    Recipients(Vec<age::x25519::Recipient>),
    /// With a passphrase (age scrypt). age allows a passphrase only as the sole recipient.
    Passphrase(SecretString),
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Encryption::Recipients(r) => f.debug_tuple("Recipients").field(r).finish(),
            Encryption::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
        }
    }
}

impl Encryption {
    /// From configuration: public keys (`age1…`) or a passphrase, exactly one of the two kinds.
    pub fn from_config(
        recipients: &[String],
        passphrase: Option<SecretString>,
    ) -> Result<Encryption, BackupError> {
        match (recipients.is_empty(), passphrase) {
            (false, Some(_)) => Err(BackupError::Config(
                "a backup can be encrypted to age recipients or with a passphrase, not both: age \
                 allows a passphrase only as the sole recipient; remove one of them"
                    .to_owned(),
            )),
            (true, None) => Err(BackupError::Config(
                "a backup needs at least one age recipient (age1…) or a passphrase to encrypt with"
                    .to_owned(),
            )),
            (true, Some(passphrase)) => Ok(Encryption::Passphrase(passphrase)),
            (false, None) => recipients
                .iter()
                .map(|text| parse_recipient(text))
                .collect::<Result<Vec<_>, _>>()
                .map(Encryption::Recipients),
        }
    }

    /// The public keys (`age1…`), empty for a passphrase.
    pub fn recipients_text(&self) -> Vec<String> {
        match self {
            Encryption::Recipients(r) => r.iter().map(ToString::to_string).collect(),
            Encryption::Passphrase(_) => Vec::new(),
        }
    }

    /// An encryptor for one object. A passphrase costs a fraction of a second of scrypt: call
    /// it off the async workers.
    pub(crate) fn encryptor(&self) -> Result<age::Encryptor, BackupError> {
        match self {
            Encryption::Recipients(recipients) => {
                if recipients.is_empty() {
                    return Err(BackupError::Config(
                        "a backup needs at least one age recipient (age1…) to encrypt to"
                            .to_owned(),
                    ));
                }
                age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                    .map_err(|e| {
                        BackupError::Config(format!("cannot encrypt to these recipients: {e}"))
                    })
            }
            Encryption::Passphrase(passphrase) => {
                if passphrase.expose_secret().is_empty() {
                    return Err(BackupError::Config(
                        "the backup passphrase is empty; set a long random one".to_owned(),
                    ));
                }
                let mut recipient = age::scrypt::Recipient::new(passphrase.clone());
                recipient.set_work_factor(PASSPHRASE_WORK_FACTOR);
                age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                    .map_err(|e| {
                        BackupError::Config(format!("cannot encrypt with the passphrase: {e}"))
                    })
            }
        }
    }
}

fn parse_recipient(text: &str) -> Result<age::x25519::Recipient, BackupError> {
    text.trim().parse().map_err(|e| {
        BackupError::Config(format!(
            "{:?} is not an age x25519 recipient ({e}); it looks like age1… (age-keygen -y prints it)",
            text.trim()
        ))
    })
}

/// How to decrypt a backup.
#[derive(Clone)]
pub enum Decryption {
    /// age identities (`AGE-SECRET-KEY-1…`); one of them must match a recipient of the object.
    Identities(Vec<age::x25519::Identity>),
    /// The passphrase the object was encrypted with.
    Passphrase(SecretString),
}

impl std::fmt::Debug for Decryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decryption::Identities(ids) => write!(f, "Identities(<{} redacted>)", ids.len()),
            Decryption::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
        }
    }
}

impl Decryption {
    /// Identities from the text of an age key file (`age-keygen` output): one
    /// `AGE-SECRET-KEY-1…` per line, `#` comments and blank lines ignored.
    pub fn from_identity_file_text(text: &SecretString) -> Result<Decryption, BackupError> {
        let mut identities = Vec::new();
        for (number, line) in text.expose_secret().lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The parse error text never contains the key itself.
            let identity = line.parse::<age::x25519::Identity>().map_err(|_| {
                BackupError::Config(format!(
                    "line {} of the age identity is not an x25519 identity (AGE-SECRET-KEY-1…)",
                    number + 1
                ))
            })?;
            identities.push(identity);
        }
        if identities.is_empty() {
            return Err(BackupError::Config(
                "the age identity holds no key (AGE-SECRET-KEY-1…)".to_owned(),
            ));
        }
        Ok(Decryption::Identities(identities))
    }

    /// Starts decrypting `input` (reads and checks the age header; a passphrase costs scrypt
    /// time here: call it off the async workers). Every later read authenticates its chunk, and
    /// a truncated or altered object fails with an error, never with short data.
    pub(crate) fn decrypt<R: Read>(
        &self,
        input: R,
    ) -> Result<age::stream::StreamReader<R>, BackupError> {
        let decryptor = age::Decryptor::new(input).map_err(|e| decrypt_error(&e))?;
        let result = match self {
            Decryption::Identities(identities) => {
                if decryptor.is_scrypt() {
                    return Err(BackupError::Decode(
                        "this backup is encrypted with a passphrase, not to age recipients; \
                         supply the passphrase"
                            .to_owned(),
                    ));
                }
                decryptor.decrypt(identities.iter().map(|i| i as &dyn age::Identity))
            }
            Decryption::Passphrase(passphrase) => {
                if !decryptor.is_scrypt() {
                    return Err(BackupError::Decode(
                        "this backup is encrypted to age recipients, not with a passphrase; \
                         supply an identity (AGE-SECRET-KEY-1…)"
                            .to_owned(),
                    ));
                }
                let mut identity = age::scrypt::Identity::new(passphrase.clone());
                identity.set_max_work_factor(MAX_PASSPHRASE_WORK_FACTOR);
                decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))
            }
        };
        result.map_err(|e| decrypt_error(&e))
    }
}

fn decrypt_error(e: &age::DecryptError) -> BackupError {
    BackupError::Decode(match e {
        age::DecryptError::NoMatchingKeys => {
            "none of the given identities can decrypt this backup: it was encrypted to other \
             recipients"
                .to_owned()
        }
        age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed => {
            "the backup cannot be decrypted: the passphrase is wrong or the object is damaged"
                .to_owned()
        }
        age::DecryptError::ExcessiveWork { required, .. } => format!(
            "the backup's passphrase header asks for scrypt work factor 2^{required}, more than \
             the accepted 2^{MAX_PASSPHRASE_WORK_FACTOR}; decrypt it with the age CLI instead"
        ),
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
            "the object is not an age-encrypted backup (its header is invalid or damaged)"
                .to_owned()
        }
        age::DecryptError::Io(e) => format!(
            "the backup object is damaged or incomplete (reading its age header: {e}); it cannot \
             be restored"
        ),
        age::DecryptError::InvalidMac => {
            "the backup's header is damaged (its MAC does not match)".to_owned()
        }
        // Reachable once anything enables age's `plugin` feature (more variants).
        #[allow(unreachable_patterns)]
        other => format!("the backup cannot be decrypted: {other}"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::Write;

    fn encrypt(encryption: &Encryption, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = encryption
            .encryptor()
            .unwrap()
            .wrap_output(&mut out)
            .unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap();
        out
    }

    fn decrypt(decryption: &Decryption, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut reader = decryption.decrypt(data).map_err(|e| e.to_string())?;
        let mut plain = Vec::new();
        reader.read_to_end(&mut plain).map_err(|e| e.to_string())?;
        Ok(plain)
    }

    #[test]
    fn generated_pairs_round_trip_and_other_keys_are_refused() {
        let (identity, recipient) = generate_key_pair();
        assert!(identity.expose_secret().starts_with("AGE-SECRET-KEY-1"));
        assert!(recipient.starts_with("age1"));
        let (_, second) = generate_key_pair();
        let encryption = Encryption::from_config(&[recipient, second], None).unwrap();
        let data = encrypt(&encryption, b"hello");
        let file = SecretString::from(format!(
            "# created: now\n# public key: x\n{}\n",
            identity.expose_secret()
        ));
        let decryption = Decryption::from_identity_file_text(&file).unwrap();
        assert_eq!(decrypt(&decryption, &data).unwrap(), b"hello");

        let (stranger, _) = generate_key_pair();
        let err = decrypt(
            &Decryption::from_identity_file_text(&stranger).unwrap(),
            &data,
        )
        .unwrap_err();
        assert!(err.contains("encrypted to other recipients"), "{err}");
        let err = decrypt(&Decryption::Passphrase("x".to_owned().into()), &data).unwrap_err();
        assert!(err.contains("not with a passphrase"), "{err}");
    }

    #[test]
    fn a_passphrase_is_the_sole_recipient_and_is_checked_on_decryption() {
        let (_, recipient) = generate_key_pair();
        let err = Encryption::from_config(&[recipient], Some("pw".to_owned().into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not both") && err.contains("sole recipient"),
            "{err}"
        );
        let err = Encryption::from_config(&[], None).unwrap_err().to_string();
        assert!(err.contains("at least one age recipient"), "{err}");
        let err = Encryption::from_config(&["age1nope".to_owned()], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not an age x25519 recipient"), "{err}");
        assert!(
            Encryption::Passphrase(String::new().into())
                .encryptor()
                .is_err()
        );

        let secret = "correct horse battery staple";
        let encryption = Encryption::from_config(&[], Some(secret.to_owned().into())).unwrap();
        assert!(!format!("{encryption:?}").contains("horse"));
        let data = encrypt(&encryption, b"rows");
        assert_eq!(
            decrypt(&Decryption::Passphrase(secret.to_owned().into()), &data).unwrap(),
            b"rows"
        );
        let err = decrypt(&Decryption::Passphrase("wrong".to_owned().into()), &data).unwrap_err();
        assert!(err.contains("passphrase is wrong"), "{err}");
        let (identity, _) = generate_key_pair();
        let err = decrypt(
            &Decryption::from_identity_file_text(&identity).unwrap(),
            &data,
        )
        .unwrap_err();
        assert!(err.contains("encrypted with a passphrase"), "{err}");
    }

    #[test]
    fn identity_files_without_keys_or_with_garbage_are_refused_without_echoing_them() {
        let err = Decryption::from_identity_file_text(&"# only a comment\n".to_owned().into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no key"), "{err}");
        let err =
            Decryption::from_identity_file_text(&"AGE-SECRET-KEY-1TOPSECRET".to_owned().into())
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("line 1") && !err.contains("TOPSECRET"),
            "{err}"
        );
    }
}
