//! Encryption at rest: envelope encryption with AES-256-GCM.
//!
//! Every stored body gets its own random 256-bit data key. The body is zstd-compressed and
//! sealed with that data key; the data key is sealed ("wrapped") with the master key. Both
//! seals carry associated data naming the record they belong to, so a ciphertext copied onto
//! another row fails to open. Rotating the master key re-wraps data keys only.
//!
//! The master key lives in a file outside the database. During a rotation the file holds two
//! keys (new first); a running server notices the file changed and picks the new key up.

use std::fmt;
use std::fs;
use std::io::Write;

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::Error;

const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;
const FILE_HEADER: &str = "# statehouse master key file. Back it up somewhere safe and separate from the database:\n# without it no stored state can be read. Keep the file mode 0600.\n";
/// zstd level for state bodies: fast enough to keep pushes cheap, still ~10x on state JSON.
const ZSTD_LEVEL: i32 = 3;

/// One master key with its short identifier (recorded next to every wrapped data key).
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl MasterKey {
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        let mut id = [0u8; 4];
        rand::rngs::OsRng.fill_bytes(&mut id);
        MasterKey {
            id: hex::encode(id),
            key,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.key.as_ref().into())
    }

    /// A secret for one purpose (e.g. encrypting statehouse's own backups), derived from this
    /// key with HMAC-SHA256 so it never reveals the key itself; lowercase hex.
    pub fn derived_secret(&self, purpose: &str) -> Result<Zeroizing<String>, Error> {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.key.as_ref())
            .map_err(|e| Error::Internal(format!("deriving a secret failed: {e}")))?;
        mac.update(b"statehouse/derived/v1/");
        mac.update(purpose.as_bytes());
        Ok(Zeroizing::new(hex::encode(mac.finalize().into_bytes())))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, ***)", self.id)
    }
}

/// The keys in the master key file; the first is the one new data keys are wrapped with.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<MasterKey>,
}

impl Keyring {
    pub fn new(primary: MasterKey) -> Self {
        Keyring {
            keys: vec![primary],
        }
    }

    pub fn primary(&self) -> &MasterKey {
        &self.keys[0]
    }

    pub fn keys(&self) -> &[MasterKey] {
        &self.keys
    }

    pub fn with_new_primary(&self, key: MasterKey) -> Keyring {
        let mut keys = vec![key];
        keys.extend(self.keys.iter().cloned());
        Keyring { keys }
    }

    pub fn only_primary(&self) -> Keyring {
        Keyring::new(self.primary().clone())
    }

    fn find(&self, id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    fn to_file_text(&self) -> String {
        let mut text = String::from(FILE_HEADER);
        for k in &self.keys {
            let b64 = base64::engine::general_purpose::STANDARD.encode(k.key.as_ref());
            text.push_str(&format!("key {} {}\n", k.id, b64));
        }
        text
    }

    fn parse(text: &str, path: &Path) -> Result<Keyring, Error> {
        let bad = |why: String| Error::Config(format!("master key file {}: {why}", path.display()));
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [kind, id, b64] = parts[..] else {
                return Err(bad(format!("line {} is not 'key <id> <base64>'", n + 1)));
            };
            if kind != "key" || id.is_empty() {
                return Err(bad(format!("line {} is not 'key <id> <base64>'", n + 1)));
            }
            let raw = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| bad(format!("line {}: key is not base64", n + 1)))?,
            );
            let key: [u8; KEY_LEN] = raw
                .as_slice()
                .try_into()
                .map_err(|_| bad(format!("line {}: key is not {KEY_LEN} bytes", n + 1)))?;
            keys.push(MasterKey {
                id: id.to_owned(),
                key: Zeroizing::new(key),
            });
        }
        if keys.is_empty() {
            return Err(bad("no key in file".into()));
        }
        Ok(Keyring { keys })
    }
}

/// The master key file on disk.
#[derive(Debug, Clone)]
pub struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        KeyFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the keyring, creating a new key file (mode 0600) when none exists.
    /// Returns whether the file was created.
    pub fn load_or_create(&self) -> Result<(Keyring, bool), Error> {
        if self.path.exists() {
            return Ok((self.load()?, false));
        }
        let ring = Keyring::new(MasterKey::generate());
        self.save(&ring)?;
        Ok((ring, true))
    }

    pub fn load(&self) -> Result<Keyring, Error> {
        let text = fs::read_to_string(&self.path).map_err(|e| {
            Error::Config(format!(
                "cannot read master key file {}: {e}",
                self.path.display()
            ))
        })?;
        Keyring::parse(&text, &self.path)
    }

    /// Atomically replaces the file: write a temporary file (0600), fsync, rename.
    pub fn save(&self, ring: &Keyring) -> Result<(), Error> {
        let io = |e: std::io::Error| {
            Error::Config(format!(
                "cannot write master key file {}: {e}",
                self.path.display()
            ))
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.path.with_extension("tmp");
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(ring.to_file_text().as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::rename(&tmp, &self.path).map_err(io)?;
        Ok(())
    }

    fn modified(&self) -> Option<SystemTime> {
        fs::metadata(&self.path).and_then(|m| m.modified()).ok()
    }
}

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
    pub kind: &'a str,
    pub owner_id: &'a str,
    pub record_id: &'a str,
}

impl Binding<'_> {
    fn aad(&self, part: &str) -> Vec<u8> {
        format!(
            "statehouse/v1/{}/{}/{}/{}",
            self.kind, part, self.owner_id, self.record_id
        )
        .into_bytes()
    }
}

/// Seals and opens bodies with the current keyring, following changes of the key file.
pub struct Cipher {
    file: Option<KeyFile>,
    state: RwLock<(Keyring, Option<SystemTime>)>,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(***)")
    }
}

impl Cipher {
    /// A cipher bound to a key file; it reloads the file when its modification time changes.
    pub fn from_file(file: KeyFile) -> Result<Self, Error> {
        let ring = file.load()?;
        let mtime = file.modified();
        Ok(Cipher {
            file: Some(file),
            state: RwLock::new((ring, mtime)),
        })
    }

    /// A cipher with a fixed keyring (tests, tools).
    pub fn fixed(ring: Keyring) -> Self {
        Cipher {
            file: None,
            state: RwLock::new((ring, None)),
        }
    }

    fn refresh(&self) -> Result<(), Error> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mtime = file.modified();
        let current = self.state.read().map_err(|_| poisoned())?.1;
        if mtime != current {
            let ring = file.load()?;
            *self.state.write().map_err(|_| poisoned())? = (ring, mtime);
        }
        Ok(())
    }

    fn ring(&self) -> Result<Keyring, Error> {
        self.refresh()?;
        Ok(self.state.read().map_err(|_| poisoned())?.0.clone())
    }

    pub fn primary_key_id(&self) -> Result<String, Error> {
        Ok(self.ring()?.primary().id.clone())
    }

    /// The primary key's id and its [`MasterKey::derived_secret`] for `purpose`.
    pub fn derived_secret(&self, purpose: &str) -> Result<(String, Zeroizing<String>), Error> {
        let ring = self.ring()?;
        let primary = ring.primary();
        Ok((primary.id.clone(), primary.derived_secret(purpose)?))
    }

    /// zstd-compress then encrypt `plain` under a fresh data key. Compression streams into
    /// the output buffer and encryption happens in place, so sealing a large body costs about
    /// one compressed copy of it in memory.
    pub fn seal(&self, plain: &[u8], binding: Binding<'_>) -> Result<SealedBody, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() / 8 + 64);
        out.extend_from_slice(&nonce);
        let mut encoder = zstd::stream::Encoder::new(out, ZSTD_LEVEL)
            .map_err(|e| Error::Internal(format!("compression failed: {e}")))?;
        encoder
            .write_all(plain)
            .map_err(|e| Error::Internal(format!("compression failed: {e}")))?;
        let mut out = encoder
            .finish()
            .map_err(|e| Error::Internal(format!("compression failed: {e}")))?;

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

        let ring = self.ring()?;
        let master = ring.primary();
        let wrapped_key = encrypt(&master.cipher(), data_key.as_ref(), &binding.aad("key"))?;
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
        let ring = self.ring()?;
        let master = ring.find(key_id).ok_or_else(|| {
            Error::Internal(format!(
                "data key is wrapped with master key {key_id}, which is not in the master key file"
            ))
        })?;
        let raw = Zeroizing::new(decrypt(&master.cipher(), wrapped, &binding.aad("key"))?);
        let key: [u8; KEY_LEN] = raw
            .as_slice()
            .try_into()
            .map_err(|_| Error::Internal("unwrapped data key has the wrong length".into()))?;
        Ok(Zeroizing::new(key))
    }

    /// Re-wrap a data key under this cipher's primary key (master key rotation).
    pub fn rewrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        binding: Binding<'_>,
    ) -> Result<(String, Vec<u8>), Error> {
        let data_key = self.unwrap_key(key_id, wrapped, binding)?;
        let ring = self.ring()?;
        let master = ring.primary();
        Ok((
            master.id.clone(),
            encrypt(&master.cipher(), data_key.as_ref(), &binding.aad("key"))?,
        ))
    }
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
        Binding {
            kind: "state",
            owner_id: "s1",
            record_id: record,
        }
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

    #[test]
    fn key_file_roundtrip_mode_and_rotation() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Internal(e.to_string()))?;
        let file = KeyFile::new(dir.path().join("master.key"));
        let (ring, created) = file.load_or_create()?;
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(file.path()).map_err(|e| Error::Internal(e.to_string()))?;
            assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        }
        let cipher = Cipher::from_file(file.clone())?;
        let sealed = cipher.seal(b"hello", binding("v1"))?;
        assert_eq!(sealed.key_id, ring.primary().id());

        // Rotation: new primary first, old still present; the running cipher follows the file.
        let rotated = ring.with_new_primary(MasterKey::generate());
        std::thread::sleep(std::time::Duration::from_millis(20));
        file.save(&rotated)?;
        let (new_id, new_wrapped) =
            cipher.rewrap(&sealed.key_id, &sealed.wrapped_key, binding("v1"))?;
        assert_eq!(new_id, rotated.primary().id());
        let moved = SealedBody {
            key_id: new_id,
            wrapped_key: new_wrapped,
            ..sealed.clone()
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        file.save(&rotated.only_primary())?;
        assert_eq!(cipher.open(&moved, binding("v1"), 5)?, b"hello");
        // The old wrapping no longer opens once the old key is gone.
        assert!(cipher.open(&sealed, binding("v1"), 0).is_err());
        Ok(())
    }

    #[test]
    fn bad_key_files_are_explained() {
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { return };
        let path = dir.path().join("k");
        let _ = fs::write(&path, "key abc not-base64!\n");
        let err = KeyFile::new(&path)
            .load()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not base64"), "{err}");
        let _ = fs::write(&path, "# only comments\n");
        let err = KeyFile::new(&path)
            .load()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("no key"), "{err}");
    }
}
