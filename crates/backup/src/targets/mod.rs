//! Storage targets: where a backup object and its sidecar metadata (`<object>.json`) land.
//!
//! [`BackupTarget`] is the one interface the pipeline, restore, download and verification use;
//! [`open_target`] turns a [`TargetSpec`] into one: [`LocalDirTarget`] for a local directory,
//! an OpenDAL-backed target for S3 (and R2, MinIO), Azure Blob, GCS, SFTP, WebDAV, FTP and
//! Google Drive.
//!
//! Memory per upload is bounded (see [`upload_plan`]): multipart services get
//! [`UPLOAD_MEMORY_BUDGET`] at most (up to about 280 GiB expected objects), SFTP and FTP stream,
//! WebDAV and Google Drive are spooled to a temp file and then held in memory for their single
//! upload request (capped at [`SPOOLED_UPLOAD_LIMIT`]).

mod explain;
mod local;
mod remote;
mod spec;
mod transport;
mod writer;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use statehouse_outbound::OutboundPolicy;

use crate::pipeline::BackupError;

pub use local::LocalDirTarget;
pub use remote::{BucketObject, BucketReader, SPOOLED_UPLOAD_LIMIT};
pub use spec::{
    AzblobSpec, FtpSpec, GcsSpec, GdriveSpec, KnownHostsStrategy, LocalSpec, S3Spec, Secret,
    SftpSpec, TargetSpec, WebdavSpec,
};
pub use writer::{MIN_PART_SIZE, UPLOAD_MEMORY_BUDGET, UploadPlan, upload_plan};

/// The folder [`BackupTarget::probe`] writes its test object into.
pub const PROBE_FOLDER: &str = ".statehouse-probe";

/// The sidecar JSON written next to each backup object (`<object>.json`), enough to find and
/// restore a backup with standard tools alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupMetadata {
    /// Version of this JSON layout.
    pub format_version: u32,
    /// The object's name in its target (`<db>/<db>-<UTC time>-<id>.dump.zst.age`).
    pub object: String,
    pub database: String,
    /// The server's `server_version`, when it was known.
    pub server_version: Option<String>,
    pub statehouse_version: String,
    /// How the object was made, outermost layer last.
    pub pipeline: String,
    pub zstd_level: i32,
    /// age public keys (`age1…`) of the recipients; any matching identity decrypts.
    pub recipients: Vec<String>,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: i64,
    /// Size of pg_dump's archive before compression.
    pub dump_bytes: u64,
    /// Size of the stored object.
    pub stored_bytes: u64,
    /// Lowercase hex SHA-256 of the stored object.
    pub sha256: String,
    /// How to restore it without statehouse.
    pub restore_command: String,
    /// Rows per table (`schema.table`) in the dumped snapshot, when they were counted: what a
    /// restore must give back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_counts: Option<crate::RowCounts>,
}

/// A streaming reader of a stored object.
pub type ObjectReader = Box<dyn AsyncRead + Send + Unpin>;

/// A storage target. Object names are relative `/`-separated paths without `.` or `..`
/// segments (see [`crate::object_name`]); the sidecar of `name` is `name.json`.
#[async_trait]
pub trait BackupTarget: Send + Sync {
    /// Starts writing the object `name`; it becomes visible only on
    /// [`BackupUpload::commit`] wherever the service allows (see each kind's notes).
    /// `expected_size` (bytes, a hint such as the previous backup's size) sizes the parts of
    /// multipart uploads so that very large objects stay within the service's part count.
    async fn begin(
        &self,
        name: &str,
        expected_size: Option<u64>,
    ) -> Result<Box<dyn BackupUpload>, BackupError>;

    /// Streams the object `name` back, without loading it in memory. A missing object is
    /// [`BackupError::NotFound`].
    async fn open(&self, name: &str) -> Result<ObjectReader, BackupError>;

    /// The stored size of `name`, `None` when there is no such object.
    async fn size(&self, name: &str) -> Result<Option<u64>, BackupError>;

    /// Reads the sidecar `name.json`. A missing sidecar is [`BackupError::NotFound`].
    async fn read_metadata(&self, name: &str) -> Result<BackupMetadata, BackupError>;

    /// Removes the object and its sidecar; already missing ones are fine.
    async fn delete(&self, name: &str) -> Result<(), BackupError>;
    /// Names of the objects under the folder `prefix` (ending in `/`), sidecars included,
    /// in no particular order; an absent folder lists nothing.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError>;

    /// The "test connection" action: writes a small object under [`PROBE_FOLDER`], reads it
    /// back, compares and deletes it. The error says which step failed and why, in words a user
    /// can act on (credentials refused, bucket missing, host unreachable, …).
    async fn probe(&self) -> Result<(), BackupError>;
}

/// One object being written.
#[async_trait]
pub trait BackupUpload: Send {
    fn writer(&mut self) -> &mut (dyn AsyncWrite + Send + Unpin);
    /// Makes the object durable and visible under its name, then writes its sidecar metadata.
    async fn commit(self: Box<Self>, metadata: &BackupMetadata) -> Result<(), BackupError>;
    /// Throws away what was written; nothing stays visible.
    async fn abort(self: Box<Self>);
}

/// Opens the target a spec describes (after validating it), under `policy`: a `local`
/// directory must be inside its roots, and every connection a remote target makes is checked
/// by it (see [`transport`]). Nothing is contacted yet: call [`BackupTarget::probe`] to check
/// the settings work.
pub fn open_target(
    spec: &TargetSpec,
    policy: &Arc<OutboundPolicy>,
) -> Result<Arc<dyn BackupTarget>, BackupError> {
    spec.validate()?;
    match spec {
        TargetSpec::Local(local) => Ok(Arc::new(LocalDirTarget::new(
            policy.confine_local(&local.path)?,
        ))),
        remote => Ok(Arc::new(remote::RemoteTarget::open(
            remote,
            policy.clone(),
        )?)),
    }
}

/// The sidecar's name.
pub(crate) fn sidecar_name(name: &str) -> String {
    format!("{name}.json")
}

/// Object names are relative `/`-separated paths of plain segments, the same on every target.
pub(crate) fn check_object_name(name: &str) -> Result<(), BackupError> {
    let plain = !name.is_empty()
        && name
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'))
        && !name.chars().any(char::is_control);
    if plain {
        Ok(())
    } else {
        Err(BackupError::Config(format!(
            "backup object name {name:?} must be a relative path without '..'"
        )))
    }
}

/// A random probe object name.
pub(crate) fn probe_name() -> String {
    format!("{PROBE_FOLDER}/{}", uuid::Uuid::new_v4())
}

/// The bytes the probe writes.
pub(crate) fn probe_payload(name: &str) -> Vec<u8> {
    format!("statehouse storage probe {name}\n").into_bytes()
}

/// The metadata encoded as the sidecar file.
pub(crate) fn encode_metadata(metadata: &BackupMetadata) -> Result<Vec<u8>, BackupError> {
    serde_json::to_vec_pretty(metadata)
        .map_err(|e| BackupError::Storage(format!("cannot encode the metadata: {e}")))
}

pub(crate) fn decode_metadata(name: &str, bytes: &[u8]) -> Result<BackupMetadata, BackupError> {
    serde_json::from_slice(bytes).map_err(|e| {
        BackupError::Storage(format!(
            "the metadata file {} is not valid backup metadata: {e}",
            sidecar_name(name)
        ))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn object_names_must_be_plain_relative_paths() {
        for bad in [
            "",
            "../x",
            "/etc/passwd",
            "a/../../b",
            "./a",
            "a//b",
            "a/",
            "a\\b",
        ] {
            assert!(check_object_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "db/db-1.dump.zst.age", ".statehouse-probe/x"] {
            check_object_name(good).unwrap();
        }
    }
}
