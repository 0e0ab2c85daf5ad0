//! Storage targets: where a backup object and its sidecar metadata land. A small trait so
//! OpenDAL targets (S3, Azure, …) can follow the local directory.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::pipeline::BackupError;

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
}

/// A storage target: objects are written in one stream and become visible only on commit.
#[async_trait]
pub trait BackupTarget: Send + Sync {
    /// Starts writing the object `name` (a relative `/`-separated path).
    async fn begin(&self, name: &str) -> Result<Box<dyn BackupUpload>, BackupError>;
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

/// A local directory: `<root>/<name>.partial` while writing, fsynced and renamed to `<name>` on
/// commit, then `<name>.json` beside it.
#[derive(Debug, Clone)]
pub struct LocalDirTarget {
    root: PathBuf,
}

impl LocalDirTarget {
    pub fn new(root: impl Into<PathBuf>) -> LocalDirTarget {
        LocalDirTarget { root: root.into() }
    }

    fn resolve(&self, name: &str) -> Result<PathBuf, BackupError> {
        let relative = Path::new(name);
        let plain = !name.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(BackupError::Config(format!(
                "backup object name {name:?} must be a relative path without '..'"
            )));
        }
        Ok(self.root.join(relative))
    }
}

fn storage_error(what: &str, path: &Path, e: std::io::Error) -> BackupError {
    BackupError::Storage(format!("{what} {}: {e}", path.display()))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(suffix);
    PathBuf::from(text)
}

#[async_trait]
impl BackupTarget for LocalDirTarget {
    async fn begin(&self, name: &str) -> Result<Box<dyn BackupUpload>, BackupError> {
        let path = self.resolve(name)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| storage_error("cannot create the backup directory", &dir, e))?;
        let partial = with_suffix(&path, ".partial");
        let file = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| storage_error("cannot create", &partial, e))?;
        Ok(Box::new(LocalUpload {
            file,
            partial,
            path,
            dir,
        }))
    }
}

struct LocalUpload {
    file: tokio::fs::File,
    partial: PathBuf,
    path: PathBuf,
    dir: PathBuf,
}

/// Writes `bytes` to `path` durably: a `.partial` file, fsync, rename.
async fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let partial = with_suffix(path, ".partial");
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| storage_error("cannot create", &partial, e))?;
    file.write_all(bytes)
        .await
        .map_err(|e| storage_error("cannot write", &partial, e))?;
    file.sync_all()
        .await
        .map_err(|e| storage_error("cannot sync", &partial, e))?;
    tokio::fs::rename(&partial, path)
        .await
        .map_err(|e| storage_error("cannot rename into place", path, e))
}

#[async_trait]
impl BackupUpload for LocalUpload {
    fn writer(&mut self) -> &mut (dyn AsyncWrite + Send + Unpin) {
        &mut self.file
    }

    async fn commit(mut self: Box<Self>, metadata: &BackupMetadata) -> Result<(), BackupError> {
        self.file
            .flush()
            .await
            .map_err(|e| storage_error("cannot write", &self.partial, e))?;
        self.file
            .sync_all()
            .await
            .map_err(|e| storage_error("cannot sync", &self.partial, e))?;
        tokio::fs::rename(&self.partial, &self.path)
            .await
            .map_err(|e| storage_error("cannot rename into place", &self.path, e))?;
        let json = serde_json::to_vec_pretty(metadata)
            .map_err(|e| BackupError::Storage(format!("cannot encode the metadata: {e}")))?;
        write_durably(&with_suffix(&self.path, ".json"), &json).await?;
        // The renames are durable only once the directory itself is synced.
        let dir = tokio::fs::File::open(&self.dir)
            .await
            .map_err(|e| storage_error("cannot open", &self.dir, e))?;
        dir.sync_all()
            .await
            .map_err(|e| storage_error("cannot sync", &self.dir, e))
    }

    async fn abort(self: Box<Self>) {
        drop(self.file);
        let _ = tokio::fs::remove_file(&self.partial).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn names_escaping_the_root_are_refused() {
        let target = LocalDirTarget::new("/tmp/never-created-statehouse");
        for name in ["", "../x", "/etc/passwd", "a/../../b", "./a"] {
            assert!(target.begin(name).await.is_err(), "{name:?}");
        }
    }

    #[tokio::test]
    async fn aborted_uploads_leave_nothing_and_commits_are_renamed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = LocalDirTarget::new(tmp.path());
        let mut upload = target.begin("db/a.dump.zst.age").await.unwrap();
        upload.writer().write_all(b"half").await.unwrap();
        assert!(tmp.path().join("db/a.dump.zst.age.partial").exists());
        upload.abort().await;
        assert!(!tmp.path().join("db/a.dump.zst.age.partial").exists());
        assert!(!tmp.path().join("db/a.dump.zst.age").exists());
    }
}
