//! A local directory target.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{
    BackupMetadata, BackupTarget, BackupUpload, ObjectReader, check_object_name, decode_metadata,
    encode_metadata, probe_name, probe_payload,
};
use crate::pipeline::BackupError;

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
        check_object_name(name)?;
        Ok(self.root.join(name))
    }
}

fn storage_error(what: &str, path: &Path, e: std::io::Error) -> BackupError {
    BackupError::Storage(describe(what, path, &e))
}

/// A failed read, look-up or delete.
fn target_error(what: &str, path: &Path, e: std::io::Error) -> BackupError {
    BackupError::Target(describe(what, path, &e))
}

fn describe(what: &str, path: &Path, e: &std::io::Error) -> String {
    let hint = match e.kind() {
        ErrorKind::PermissionDenied => {
            " (the statehouse process may not write there: check the directory's owner and mode)"
        }
        ErrorKind::StorageFull => " (the disk is full)",
        _ => "",
    };
    format!("{what} {}: {e}{hint}", path.display())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(suffix);
    PathBuf::from(text)
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

async fn remove_if_present(path: &Path) -> Result<(), BackupError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(target_error("cannot delete", path, e)),
    }
}

#[async_trait]
impl BackupTarget for LocalDirTarget {
    async fn begin(
        &self,
        name: &str,
        _expected_size: Option<u64>,
    ) -> Result<Box<dyn BackupUpload>, BackupError> {
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

    async fn open(&self, name: &str) -> Result<ObjectReader, BackupError> {
        let path = self.resolve(name)?;
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Box::new(file)),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(BackupError::NotFound(format!(
                "backup object {name} does not exist in {}",
                self.root.display()
            ))),
            Err(e) => Err(target_error("cannot open", &path, e)),
        }
    }

    async fn size(&self, name: &str) -> Result<Option<u64>, BackupError> {
        let path = self.resolve(name)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(target_error("cannot read the size of", &path, e)),
        }
    }

    async fn read_metadata(&self, name: &str) -> Result<BackupMetadata, BackupError> {
        let path = with_suffix(&self.resolve(name)?, ".json");
        match tokio::fs::read(&path).await {
            Ok(bytes) => decode_metadata(name, &bytes),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(BackupError::NotFound(format!(
                "the metadata file {} does not exist",
                path.display()
            ))),
            Err(e) => Err(target_error("cannot read", &path, e)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), BackupError> {
        let path = self.resolve(name)?;
        remove_if_present(&path).await?;
        remove_if_present(&with_suffix(&path, ".json")).await
    }

    async fn probe(&self) -> Result<(), BackupError> {
        let name = probe_name();
        let path = self.resolve(&name)?;
        let payload = probe_payload(&name);
        let step = |step: &str, e: BackupError| {
            let cause = match e {
                BackupError::Storage(m) | BackupError::Target(m) => m,
                other => other.to_string(),
            };
            BackupError::Target(format!(
                "the storage test failed while {step} in {}: {cause}",
                self.root.display()
            ))
        };
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| step("creating a folder", storage_error("cannot create", dir, e)))?;
        }
        write_durably(&path, &payload)
            .await
            .map_err(|e| step("writing a test file", e))?;
        let read = tokio::fs::read(&path).await.map_err(|e| {
            step(
                "reading the test file back",
                storage_error("cannot read", &path, e),
            )
        });
        let removed = remove_if_present(&path)
            .await
            .map_err(|e| step("deleting the test file", e));
        if read? != payload {
            return Err(BackupError::Target(format!(
                "the storage test failed: the test file read back from {} differs from what was written",
                self.root.display()
            )));
        }
        removed
    }
}

struct LocalUpload {
    file: tokio::fs::File,
    partial: PathBuf,
    path: PathBuf,
    dir: PathBuf,
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
        write_durably(
            &with_suffix(&self.path, ".json"),
            &encode_metadata(metadata)?,
        )
        .await?;
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
            assert!(target.begin(name, None).await.is_err(), "{name:?}");
        }
    }

    #[tokio::test]
    async fn aborted_uploads_leave_nothing_and_commits_are_renamed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = LocalDirTarget::new(tmp.path());
        let mut upload = target.begin("db/a.dump.zst.age", None).await.unwrap();
        upload.writer().write_all(b"half").await.unwrap();
        assert!(tmp.path().join("db/a.dump.zst.age.partial").exists());
        upload.abort().await;
        assert!(!tmp.path().join("db/a.dump.zst.age.partial").exists());
        assert!(!tmp.path().join("db/a.dump.zst.age").exists());
        assert_eq!(target.size("db/a.dump.zst.age").await.unwrap(), None);
    }

    #[tokio::test]
    async fn probe_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let target = LocalDirTarget::new(tmp.path());
        target.probe().await.unwrap();
        let left = std::fs::read_dir(tmp.path().join(".statehouse-probe")).unwrap();
        assert_eq!(left.count(), 0);
        let err = target.read_metadata("db/missing").await.unwrap_err();
        assert!(matches!(err, BackupError::NotFound(_)), "{err}");
    }

    #[tokio::test]
    async fn probe_says_which_step_failed() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = LocalDirTarget::new(&file).probe().await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("while creating a folder"), "{text}");
    }
}
