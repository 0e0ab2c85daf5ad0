//! The master keys and the file that holds them.
//!
//! The file has one line per key: `key <id> <base64>` for active keys (the first one seals new
//! data; others are being re-wrapped away from during a rotation) and `retired <id> <base64>`
//! for keys a rotation replaced. A retired key never seals anything; it stays so that
//! self-backups made before the rotation (encrypted with a passphrase derived from the key that
//! was active then) can still be restored, until `statehouse key forget-retired` drops it.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::Error;

pub(super) const KEY_LEN: usize = 32;
const FILE_HEADER: &str = "# statehouse master key file. Back it up somewhere safe and separate from the database:\n# without it no stored state can be read. Keep the file mode 0600.\n# `key` lines are in use (the first seals new data); `retired` lines only open self-backups\n# made before a rotation (drop them with `statehouse key forget-retired`).\n";

/// One master key with its short identifier (recorded next to every wrapped data key).
#[derive(Clone)]
pub struct MasterKey {
    pub(super) id: String,
    pub(super) key: Zeroizing<[u8; KEY_LEN]>,
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

    fn mac(&self) -> Result<Hmac<sha2::Sha256>, Error> {
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.key.as_ref())
            .map_err(|e| Error::Internal(format!("keying HMAC failed: {e}")))
    }

    /// A secret for one purpose (e.g. encrypting statehouse's own backups), derived from this
    /// key with HMAC-SHA256 so it never reveals the key itself; lowercase hex.
    pub fn derived_secret(&self, purpose: &str) -> Result<Zeroizing<String>, Error> {
        let mut mac = self.mac()?;
        mac.update(b"statehouse/derived/v1/");
        mac.update(purpose.as_bytes());
        Ok(Zeroizing::new(hex::encode(mac.finalize().into_bytes())))
    }

    /// A 256-bit key for one purpose (sealing a configuration secret, a login cookie), derived
    /// from this key with HMAC-SHA256 under its own label, so it reveals nothing about the key
    /// and differs from every [`MasterKey::derived_secret`].
    pub fn derived_key(&self, purpose: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, Error> {
        let mut mac = self.mac()?;
        mac.update(b"statehouse/derived-key/v1/");
        mac.update(purpose.as_bytes());
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&mac.finalize().into_bytes());
        Ok(key)
    }

    /// The value the store records for this key's id (HMAC-SHA256 of a fixed label and the
    /// id): a key file whose key under that id was damaged or replaced no longer matches it.
    /// It reveals nothing about the key.
    pub fn check_value(&self) -> Result<Vec<u8>, Error> {
        let mut mac = self.mac()?;
        mac.update(b"statehouse/key-check/v1/");
        mac.update(self.id.as_bytes());
        Ok(mac.finalize().into_bytes().to_vec())
    }

    /// Whether `check` is this key's [`MasterKey::check_value`] (compared in constant time).
    pub fn matches_check(&self, check: &[u8]) -> bool {
        let Ok(mut mac) = self.mac() else {
            return false;
        };
        mac.update(b"statehouse/key-check/v1/");
        mac.update(self.id.as_bytes());
        mac.verify_slice(check).is_ok()
    }

    fn same_bytes(&self, other: &MasterKey) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.key.as_ref().ct_eq(other.key.as_ref()))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, ***)", self.id)
    }
}

/// The keys in the master key file: active ones (the first is the primary) and retired ones.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<MasterKey>,
    retired: Vec<MasterKey>,
}

impl Keyring {
    pub fn new(primary: MasterKey) -> Self {
        Keyring {
            keys: vec![primary],
            retired: Vec::new(),
        }
    }

    /// The first active key: the one new data is sealed with once the store has verified it.
    pub fn primary(&self) -> &MasterKey {
        &self.keys[0]
    }

    /// The active keys, primary first.
    pub fn keys(&self) -> &[MasterKey] {
        &self.keys
    }

    /// Keys replaced by a rotation, kept for restoring older self-backups.
    pub fn retired(&self) -> &[MasterKey] {
        &self.retired
    }

    /// Active keys then retired ones.
    pub fn all(&self) -> impl Iterator<Item = &MasterKey> {
        self.keys.iter().chain(&self.retired)
    }

    pub fn is_retired(&self, id: &str) -> bool {
        self.retired.iter().any(|k| k.id == id)
    }

    /// `key` becomes the primary; the active keys stay active behind it (while data keys are
    /// re-wrapped), retired ones stay retired.
    pub fn with_new_primary(&self, key: MasterKey) -> Keyring {
        let mut keys = vec![key];
        keys.extend(self.keys.iter().cloned());
        Keyring {
            keys,
            retired: self.retired.clone(),
        }
    }

    /// Every active key but the primary becomes retired (the end of a rotation).
    pub fn retire_all_but_primary(&self) -> Keyring {
        let mut retired: Vec<MasterKey> = self.keys[1..].to_vec();
        retired.extend(self.retired.iter().cloned());
        Keyring {
            keys: vec![self.primary().clone()],
            retired,
        }
    }

    /// The same keys without the retired ones.
    pub fn without_retired(&self) -> Keyring {
        Keyring {
            keys: self.keys.clone(),
            retired: Vec::new(),
        }
    }

    pub fn find(&self, id: &str) -> Option<&MasterKey> {
        self.all().find(|k| k.id == id)
    }

    /// Whether this ring holds `key` under its id with the very same bytes.
    pub fn holds(&self, key: &MasterKey) -> bool {
        self.find(&key.id).is_some_and(|k| k.same_bytes(key))
    }

    fn to_file_text(&self) -> String {
        let mut text = String::from(FILE_HEADER);
        let lines = self
            .keys
            .iter()
            .map(|k| ("key", k))
            .chain(self.retired.iter().map(|k| ("retired", k)));
        for (kind, k) in lines {
            let b64 = base64::engine::general_purpose::STANDARD.encode(k.key.as_ref());
            text.push_str(&format!("{kind} {} {}\n", k.id, b64));
        }
        text
    }

    fn parse(text: &str, path: &Path) -> Result<Keyring, Error> {
        let bad = |why: String| Error::Config(format!("master key file {}: {why}", path.display()));
        let mut keys = Vec::new();
        let mut retired = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let shape = || bad(format!("line {} is not 'key <id> <base64>'", n + 1));
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [kind, id, b64] = parts[..] else {
                return Err(shape());
            };
            let is_retired = match kind {
                "key" => false,
                "retired" => true,
                _ => return Err(shape()),
            };
            if id.is_empty() {
                return Err(shape());
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
            let key = MasterKey {
                id: id.to_owned(),
                key: Zeroizing::new(key),
            };
            if keys
                .iter()
                .chain(&retired)
                .any(|k: &MasterKey| k.id == key.id)
            {
                return Err(bad(format!("line {}: key id {id} appears twice", n + 1)));
            }
            if is_retired {
                retired.push(key);
            } else {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(bad("no key in file (a `key <id> <base64>` line)".into()));
        }
        Ok(Keyring { keys, retired })
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
        let text = Zeroizing::new(fs::read_to_string(&self.path).map_err(|e| {
            Error::Config(format!(
                "cannot read master key file {}: {e}",
                self.path.display()
            ))
        })?);
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
        file.write_all(Zeroizing::new(ring.to_file_text()).as_bytes())
            .map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::rename(&tmp, &self.path).map_err(io)?;
        Ok(())
    }

    /// The file's permission bits when others than its owner may use it (they should not: the
    /// key opens every state); `None` when it is private or on systems without modes. As
    /// PostgreSQL does for its TLS keys, a file owned by root may also be readable by its group
    /// (0640, 0440): how a systemd `/etc` file or a Kubernetes Secret mounted with `fsGroup`
    /// gives a service user the key without giving it to anyone else.
    pub fn loose_permissions(&self) -> Option<u32> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let meta = fs::metadata(&self.path).ok()?;
            let mode = meta.permissions().mode() & 0o777;
            let forbidden = if meta.uid() == 0 { 0o037 } else { 0o077 };
            (mode & forbidden != 0).then_some(mode)
        }
        #[cfg(not(unix))]
        {
            None
        }
    }

    pub(super) fn modified(&self) -> Option<SystemTime> {
        fs::metadata(&self.path).and_then(|m| m.modified()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Keyring, Error> {
        Keyring::parse(text, Path::new("k"))
    }

    #[test]
    fn retired_keys_round_trip_and_never_lead() -> Result<(), Error> {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let ring = Keyring::new(old.clone())
            .with_new_primary(new.clone())
            .retire_all_but_primary();
        assert_eq!(ring.primary().id(), new.id());
        assert!(ring.is_retired(old.id()));
        let back = parse(&ring.to_file_text())?;
        assert_eq!(back.primary().id(), new.id());
        assert_eq!(back.retired().len(), 1);
        assert!(back.holds(&old) && back.holds(&new));
        assert_eq!(back.without_retired().all().count(), 1);
        // A file of retired keys only has no key to work with.
        let only_retired = format!("retired {} {}\n", old.id(), "A".repeat(43) + "=");
        assert!(parse(&only_retired).is_err());
        Ok(())
    }

    #[test]
    fn check_values_tell_keys_apart() -> Result<(), Error> {
        let key = MasterKey::generate();
        let check = key.check_value()?;
        assert!(key.matches_check(&check));
        let mut damaged = key.clone();
        damaged.key[0] ^= 1;
        assert!(!damaged.matches_check(&check));
        assert!(!key.matches_check(&check[..31]));
        Ok(())
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let key = MasterKey::generate();
        let line = Keyring::new(key).to_file_text();
        let body = line.lines().last().unwrap_or_default().to_owned();
        let twice = format!("{body}\n{}\n", body.replacen("key", "retired", 1));
        let err = parse(&twice)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("appears twice"), "{err}");
    }
}
