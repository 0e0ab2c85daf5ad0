//! Encryption at rest: envelope encryption with AES-256-GCM.
//!
//! Every stored body gets its own random 256-bit data key. The body is zstd-compressed and
//! sealed with that data key; the data key is sealed ("wrapped") with the master key. Both
//! seals carry associated data naming the record they belong to, so a ciphertext copied onto
//! another row fails to open. Rotating the master key re-wraps data keys only.
//!
//! The master key lives in a file outside the database ([`KeyFile`]). A running server notices
//! when the file changes and follows it, with rules that keep a damaged or foreign file from
//! losing data: new data is sealed only with a key verified against the store (its check value
//! recorded in the database, see `Services::verify_master_keys`); a changed file is refused
//! (the current keys stay) when it holds a key the store verified under the same id with other
//! bytes, and is only taken over once it holds a verified key. Any key in the file may open
//! data: a wrong one just fails to.

mod compress;
mod keyring;
mod text;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::RwLock;
use std::time::SystemTime;

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

pub use self::compress::{Compressed, compress};
use self::keyring::KEY_LEN;
pub use self::keyring::{KeyFile, Keyring, MasterKey};
use crate::Error;
use crate::sealed::SealedKind;

const NONCE_LEN: usize = 12;

/// A body after compression and encryption, as the store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedBody {
    /// Which master key wrapped the data key.
    pub key_id: String,
    /// nonce ‖ AES-GCM(master key, data key)
    pub wrapped_key: Vec<u8>,
    /// nonce ‖ AES-GCM(data key, zstd(body))
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SealedBody(key {}, {} bytes)",
            self.key_id,
            self.ciphertext.len()
        )
    }
}

/// Names the record a sealed body belongs to; becomes the associated data of both seals.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub kind: SealedKind,
    pub owner_id: &'a str,
    pub record_id: &'a str,
}

impl Binding<'_> {
    fn aad(&self, part: &str) -> Vec<u8> {
        format!(
            "statehouse/v1/{}/{}/{}/{}",
            self.kind.as_str(),
            part,
            self.owner_id,
            self.record_id
        )
        .into_bytes()
    }
}

/// The keys a [`Cipher`] works with.
struct KeyState {
    ring: Keyring,
    /// A changed key file that holds no key verified for this store yet: taken over once all
    /// its keys are ([`Cipher::promote_pending`]), never before.
    pending: Option<Keyring>,
    /// The key file's modification time when it was last read (taken over or not).
    seen: Option<SystemTime>,
    /// Keys proven to be this store's (their check values match the store's, or they open its
    /// data), by id; only these seal.
    verified: HashMap<String, MasterKey>,
}

impl KeyState {
    /// What to do with a changed key file: refuse it when one of its keys differs from the
    /// key verified under the same id (a damaged file); take it over when it holds a verified
    /// key (a rotation went on); otherwise keep it pending until its keys are verified (a
    /// file from another installation never is: it lacks the keys the store's data needs).
    fn follow(&mut self, ring: Keyring) -> Result<(), String> {
        for key in ring.all() {
            if let Some(known) = self.verified.get(key.id())
                && !ring.holds(known)
            {
                return Err(format!(
                    "its master key {} differs from the key verified under that id (the file is damaged, or from another installation)",
                    key.id()
                ));
            }
        }
        if ring.all().any(|k| self.verified.contains_key(k.id())) {
            self.ring = ring;
            self.pending = None;
        } else {
            tracing::warn!(
                primary = ring.primary().id(),
                "the changed master key file holds no key verified for this store yet; it is used once its keys are checked against the database"
            );
            self.pending = Some(ring);
        }
        Ok(())
    }

    /// The ring keys are verified for: the pending one when there is one.
    fn candidate(&self) -> &Keyring {
        self.pending.as_ref().unwrap_or(&self.ring)
    }

    /// The first active key that is verified.
    fn sealing_key(&self) -> Result<MasterKey, Error> {
        self.ring
            .keys()
            .iter()
            .find(|k| self.verified.contains_key(k.id()))
            .cloned()
            .ok_or_else(|| {
                Error::Config(format!(
                    "no verified master key to encrypt with: master key {} has not been checked against this store yet \
                     (a running server checks a new key within seconds; see its log)",
                    self.ring.primary().id()
                ))
            })
    }
}

/// Seals and opens bodies with the current keyring, following changes of the key file.
pub struct Cipher {
    file: Option<KeyFile>,
    state: RwLock<KeyState>,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(***)")
    }
}

impl Cipher {
    /// A cipher bound to a key file; it follows the file when its modification time changes.
    /// Nothing is sealed until its keys are verified ([`Cipher::mark_verified`]).
    pub fn from_file(file: KeyFile) -> Result<Self, Error> {
        let ring = file.load()?;
        let seen = file.modified();
        Ok(Cipher {
            file: Some(file),
            state: RwLock::new(KeyState {
                ring,
                pending: None,
                seen,
                verified: HashMap::new(),
            }),
        })
    }

    /// A cipher with a fixed keyring, every key trusted (tests, tools).
    pub fn fixed(ring: Keyring) -> Self {
        let verified = ring.all().map(|k| (k.id.clone(), k.clone())).collect();
        Cipher {
            file: None,
            state: RwLock::new(KeyState {
                ring,
                pending: None,
                seen: None,
                verified,
            }),
        }
    }

    /// The key file this cipher follows, if any.
    pub fn key_file(&self) -> Option<&Path> {
        self.file.as_ref().map(KeyFile::path)
    }

    /// Reads the key file again when it changed ([`KeyState::follow`]); a file that cannot be
    /// read or is refused leaves the keys as they are, and is logged once per change.
    fn refresh(&self) -> Result<(), Error> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mtime = file.modified();
        if mtime == self.state.read().map_err(|_| poisoned())?.seen {
            return Ok(());
        }
        let mut state = self.state.write().map_err(|_| poisoned())?;
        if mtime == state.seen {
            return Ok(());
        }
        state.seen = mtime;
        let refusal = match file.load() {
            Ok(ring) => match state.follow(ring) {
                Ok(()) => return Ok(()),
                Err(why) => why,
            },
            Err(e) => e.to_string(),
        };
        state.pending = None;
        tracing::error!(
            file = %file.path().display(),
            error = %refusal,
            "the changed master key file is refused; statehouse keeps the keys it had. Put the right file back"
        );
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&KeyState) -> T) -> Result<T, Error> {
        self.refresh()?;
        Ok(f(&*self.state.read().map_err(|_| poisoned())?))
    }

    /// The keys in use (following the key file).
    pub fn keyring(&self) -> Result<Keyring, Error> {
        self.read(|s| s.ring.clone())
    }

    /// The keys to verify: those of a changed key file waiting for verification, else the
    /// keys in use.
    pub fn candidate_keyring(&self) -> Result<Keyring, Error> {
        self.read(|s| s.candidate().clone())
    }

    /// Keys of [`Cipher::candidate_keyring`] that are not verified yet.
    pub fn unverified_keys(&self) -> Result<Vec<MasterKey>, Error> {
        self.read(|s| {
            s.candidate()
                .all()
                .filter(|k| !s.verified.contains_key(k.id()))
                .cloned()
                .collect()
        })
    }

    /// Records that `key` belongs to this store (the caller checked it against the store), if
    /// the current or pending ring still holds it unchanged.
    pub fn mark_verified(&self, key: &MasterKey) -> Result<(), Error> {
        let mut state = self.state.write().map_err(|_| poisoned())?;
        if state.candidate().holds(key) || state.ring.holds(key) {
            state.verified.insert(key.id.clone(), key.clone());
        }
        Ok(())
    }

    /// Takes a pending key file over once all its keys are verified; true when it did.
    pub fn promote_pending(&self) -> Result<bool, Error> {
        let mut state = self.state.write().map_err(|_| poisoned())?;
        let ready = state.pending.as_ref().is_some_and(|p| {
            p.all()
                .all(|k| state.verified.get(k.id()).is_some_and(|v| p.holds(v)))
        });
        if ready && let Some(pending) = state.pending.take() {
            state.ring = pending;
        }
        Ok(ready)
    }

    /// The id of the key new data is sealed with.
    pub fn sealing_key_id(&self) -> Result<String, Error> {
        Ok(self.read(KeyState::sealing_key)??.id)
    }

    /// The sealing key's id and its [`MasterKey::derived_secret`] for `purpose`.
    pub fn derived_secret(&self, purpose: &str) -> Result<(String, Zeroizing<String>), Error> {
        let key = self.read(KeyState::sealing_key)??;
        Ok((key.id.clone(), key.derived_secret(purpose)?))
    }

    /// zstd-compress then encrypt `plain` under a fresh data key. Compression streams into
    /// the output buffer and encryption happens in place, so sealing a large body costs about
    /// one compressed copy of it in memory.
    pub fn seal(&self, plain: &[u8], binding: Binding<'_>) -> Result<SealedBody, Error> {
        self.seal_compressed(compress(plain)?, binding)
    }

    /// Encrypts a body [`compress`]ed ahead under a fresh data key: [`Cipher::seal`] in two
    /// steps, for a caller that compresses before it knows the binding.
    pub fn seal_compressed(
        &self,
        compressed: Compressed,
        binding: Binding<'_>,
    ) -> Result<SealedBody, Error> {
        let master = self.read(KeyState::sealing_key)??;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = compressed.0;
        out[..NONCE_LEN].copy_from_slice(&nonce);

        let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(data_key.as_mut());
        let body_cipher = Aes256Gcm::new(data_key.as_ref().into());
        let tag = body_cipher
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &binding.aad("body"),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| Error::Internal("encryption failed".into()))?;
        out.extend_from_slice(&tag);
        // The compressed size is guessed before compressing: a body that hardly compresses
        // leaves the buffer up to twice its length, which a caller holding many sealed
        // chunks (a multipart part) would keep.
        if out.capacity() - out.len() > out.len() / 8 {
            out.shrink_to_fit();
        }

        let wrapped_key = encrypt(&aead(&master), data_key.as_ref(), &binding.aad("key"))?;
        Ok(SealedBody {
            key_id: master.id.clone(),
            wrapped_key,
            ciphertext: out,
        })
    }

    /// Decrypt and decompress a body sealed by [`Cipher::seal`] with the same binding.
    /// `size_hint` is the expected plaintext size (one allocation when it is right).
    pub fn open(
        &self,
        sealed: &SealedBody,
        binding: Binding<'_>,
        size_hint: usize,
    ) -> Result<Vec<u8>, Error> {
        let data_key = self.unwrap_key(&sealed.key_id, &sealed.wrapped_key, binding)?;
        let body_cipher = Aes256Gcm::new(data_key.as_ref().into());
        let compressed = decrypt(&body_cipher, &sealed.ciphertext, &binding.aad("body"))?;
        let corrupt =
            |e: std::io::Error| Error::Internal(format!("stored body does not decompress: {e}"));
        let mut out = Vec::with_capacity(size_hint);
        let mut decoder = zstd::stream::Decoder::new(compressed.as_slice()).map_err(corrupt)?;
        std::io::copy(&mut decoder, &mut out).map_err(corrupt)?;
        Ok(out)
    }

    fn unwrap_key(
        &self,
        key_id: &str,
        wrapped: &[u8],
        binding: Binding<'_>,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, Error> {
        let master = self.read(|s| s.ring.find(key_id).cloned())?.ok_or_else(|| {
            Error::Internal(format!(
                "data key is wrapped with master key {key_id}, which is not in the master key file"
            ))
        })?;
        unwrap_with(&master, wrapped, binding)
    }

    /// Re-wrap a data key under the sealing key (master key rotation).
    pub fn rewrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        binding: Binding<'_>,
    ) -> Result<(String, Vec<u8>), Error> {
        let data_key = self.unwrap_key(key_id, wrapped, binding)?;
        let master = self.read(KeyState::sealing_key)??;
        Ok((
            master.id.clone(),
            encrypt(&aead(&master), data_key.as_ref(), &binding.aad("key"))?,
        ))
    }
}

/// Whether `key` opens a data key wrapped for `binding` (a key check by trial decryption).
pub fn opens(key: &MasterKey, wrapped: &[u8], binding: Binding<'_>) -> bool {
    unwrap_with(key, wrapped, binding).is_ok()
}

fn unwrap_with(
    master: &MasterKey,
    wrapped: &[u8],
    binding: Binding<'_>,
) -> Result<Zeroizing<[u8; KEY_LEN]>, Error> {
    let raw = Zeroizing::new(decrypt(&aead(master), wrapped, &binding.aad("key"))?);
    let key: [u8; KEY_LEN] = raw
        .as_slice()
        .try_into()
        .map_err(|_| Error::Internal("unwrapped data key has the wrong length".into()))?;
    Ok(Zeroizing::new(key))
}

fn aead(master: &MasterKey) -> Aes256Gcm {
    Aes256Gcm::new(master.key.as_ref().into())
}

fn poisoned() -> Error {
    Error::Internal("key state lock poisoned".into())
}

fn encrypt(cipher: &Aes256Gcm, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| Error::Internal("encryption failed".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn decrypt(cipher: &Aes256Gcm, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
    if sealed.len() < NONCE_LEN {
        return Err(Error::Internal("stored ciphertext is truncated".into()));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| {
            Error::Internal(
                "stored ciphertext failed authentication (wrong master key, or altered data)"
                    .into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding<'a>(record: &'a str) -> Binding<'a> {
        SealedKind::State.binding("s1", record)
    }

    fn io(e: std::io::Error) -> Error {
        Error::Internal(e.to_string())
    }

    /// Lets the file's modification time move on (the cipher follows it).
    fn tick() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    #[test]
    fn seal_open_roundtrip_and_binding() -> Result<(), Error> {
        let cipher = Cipher::fixed(Keyring::new(MasterKey::generate()));
        let body = br#"{"marker":"find-me-if-you-can"}"#.repeat(100);
        let sealed = cipher.seal(&body, binding("v1"))?;
        assert!(!sealed.ciphertext.windows(8).any(|w| w == b"find-me-"));
        assert_eq!(cipher.open(&sealed, binding("v1"), 0)?, body);
        // The same ciphertext presented as another record does not open.
        assert!(cipher.open(&sealed, binding("v2"), 0).is_err());
        // Nor as another kind of record.
        let as_webhook = SealedKind::Webhook.binding("s1", "v1");
        assert!(cipher.open(&sealed, as_webhook, 0).is_err());
        // Two seals of the same body differ (random data keys and nonces).
        assert_ne!(
            cipher.seal(&body, binding("v1"))?.ciphertext,
            sealed.ciphertext
        );
        Ok(())
    }

    #[test]
    fn tampering_is_detected() -> Result<(), Error> {
        let cipher = Cipher::fixed(Keyring::new(MasterKey::generate()));
        let mut sealed = cipher.seal(b"{}", binding("v1"))?;
        let last = sealed.ciphertext.len() - 1;
        sealed.ciphertext[last] ^= 1;
        assert!(cipher.open(&sealed, binding("v1"), 0).is_err());
        Ok(())
    }

    fn verified_cipher(file: &KeyFile) -> Result<Cipher, Error> {
        let cipher = Cipher::from_file(file.clone())?;
        for key in cipher.unverified_keys()? {
            cipher.mark_verified(&key)?;
        }
        Ok(cipher)
    }

    #[test]
    fn key_file_roundtrip_mode_and_rotation() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(io)?;
        let file = KeyFile::new(dir.path().join("master.key"));
        let (ring, created) = file.load_or_create()?;
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file.path()).map_err(io)?;
            assert_eq!(mode.permissions().mode() & 0o777, 0o600);
            assert_eq!(file.loose_permissions(), None);
            let chmod =
                |m| std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(m));
            chmod(0o644).map_err(io)?;
            assert_eq!(file.loose_permissions(), Some(0o644));
            // Group-readable is private enough only for a file root owns (a Secret, /etc).
            chmod(0o640).map_err(io)?;
            let root_owned = std::os::unix::fs::MetadataExt::uid(&mode) == 0;
            let expected = if root_owned { None } else { Some(0o640) };
            assert_eq!(file.loose_permissions(), expected);
            chmod(0o660).map_err(io)?;
            assert_eq!(file.loose_permissions(), Some(0o660));
            chmod(0o600).map_err(io)?;
        }
        let unverified = Cipher::from_file(file.clone())?;
        assert!(
            unverified.seal(b"x", binding("v0")).is_err(),
            "nothing is sealed with a key not verified against the store"
        );
        let cipher = verified_cipher(&file)?;
        let sealed = cipher.seal(b"hello", binding("v1"))?;
        assert_eq!(sealed.key_id, ring.primary().id());

        // Rotation: new primary first, old still present; the running cipher follows the file
        // and keeps sealing with the verified old key until the new one is verified.
        let rotated = ring.with_new_primary(MasterKey::generate());
        tick();
        file.save(&rotated)?;
        assert_eq!(cipher.sealing_key_id()?, ring.primary().id());
        cipher.mark_verified(rotated.primary())?;
        assert_eq!(cipher.sealing_key_id()?, rotated.primary().id());
        let (new_id, new_wrapped) =
            cipher.rewrap(&sealed.key_id, &sealed.wrapped_key, binding("v1"))?;
        assert_eq!(new_id, rotated.primary().id());
        let moved = SealedBody {
            key_id: new_id,
            wrapped_key: new_wrapped,
            ..sealed.clone()
        };
        // The old key retires: it opens, never seals.
        tick();
        file.save(&rotated.retire_all_but_primary())?;
        assert_eq!(cipher.open(&moved, binding("v1"), 5)?, b"hello");
        assert_eq!(cipher.open(&sealed, binding("v1"), 5)?, b"hello");
        // Forgetting the retired key: the old wrapping no longer opens.
        tick();
        file.save(&rotated.retire_all_but_primary().without_retired())?;
        assert_eq!(cipher.open(&moved, binding("v1"), 5)?, b"hello");
        assert!(cipher.open(&sealed, binding("v1"), 0).is_err());
        Ok(())
    }

    #[test]
    fn a_damaged_or_foreign_key_file_is_not_followed() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(io)?;
        let path = dir.path().join("master.key");
        let file = KeyFile::new(&path);
        let (ring, _) = file.load_or_create()?;
        let cipher = verified_cipher(&file)?;
        let before = cipher.seal(b"before", binding("v1"))?;

        // One base64 character of the key changed, id kept.
        let text = std::fs::read_to_string(&path).map_err(io)?;
        let line = text
            .lines()
            .find(|l| l.starts_with("key "))
            .unwrap_or_default();
        let b64 = line.rsplit(' ').next().unwrap_or_default();
        let flipped = if b64.starts_with('A') { "B" } else { "A" };
        let damaged = line.replacen(b64, &format!("{flipped}{}", &b64[1..]), 1);
        tick();
        std::fs::write(&path, text.replace(line, &damaged)).map_err(io)?;
        let during = cipher.seal(b"during", binding("v2"))?;
        assert_eq!(during.key_id, ring.primary().id());
        assert_eq!(cipher.open(&before, binding("v1"), 0)?, b"before");

        // A foreign file (another installation's key) drops the active key: refused too.
        tick();
        file.save(&Keyring::new(MasterKey::generate()))?;
        let foreign = cipher.seal(b"foreign", binding("v3"))?;
        assert_eq!(foreign.key_id, ring.primary().id());

        // Unreadable text: the keys stay.
        tick();
        std::fs::write(&path, "key x not-base64!\n").map_err(io)?;
        assert!(cipher.seal(b"x", binding("v4")).is_ok());

        // The right file back: everything written meanwhile opens with it alone.
        tick();
        file.save(&ring)?;
        let fresh = verified_cipher(&file)?;
        for (sealed, record, body) in [
            (&before, "v1", &b"before"[..]),
            (&during, "v2", b"during"),
            (&foreign, "v3", b"foreign"),
        ] {
            assert_eq!(fresh.open(sealed, binding(record), 0)?, body);
        }
        Ok(())
    }

    #[test]
    fn bad_key_files_are_explained() {
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { return };
        let path = dir.path().join("k");
        let _ = std::fs::write(&path, "key abc not-base64!\n");
        let err = KeyFile::new(&path)
            .load()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not base64"), "{err}");
        let _ = std::fs::write(&path, "# only comments\n");
        let err = KeyFile::new(&path)
            .load()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("no key"), "{err}");
    }
}
