//! Targets reached through OpenDAL: S3 (and R2, MinIO), Azure Blob, GCS, SFTP, WebDAV, FTP and
//! Google Drive.
//!
//! How each kind writes, so that an object is visible only once committed:
//! - S3, Azure Blob, GCS: multipart (block) uploads, cut by [`upload_plan`]; the object appears
//!   when the upload completes, an abort discards the parts.
//! - SFTP: streamed into `<name>.partial`, renamed to `<name>` on commit, deleted on abort.
//! - FTP: streamed; OpenDAL writes a temporary `<file>.<random>` in the root folder and renames
//!   it on close. FTP transfers cannot be abandoned without desynchronising the connection, so an
//!   abort finishes the transfer and deletes the object right away: a partial object is visible
//!   under its name for that moment, never with its sidecar (which marks a finished backup).
//! - WebDAV, Google Drive: OpenDAL uploads these in one request from one in-memory buffer, so the
//!   object is spooled to an (unlinked) temp file while the dump runs and read into memory for
//!   the upload at commit: memory ≈ object size, capped by [`SPOOLED_UPLOAD_LIMIT`].
//!
//! How the OpenDAL operator of each kind is built is in `operator`, the upload of one object in
//! `upload`; reading a whole folder of an S3 bucket (`statehouse import s3`) in `bucket`.

mod bucket;
mod operator;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opendal::{ErrorKind, Operator};
use statehouse_outbound::OutboundPolicy;
use tokio::sync::OnceCell;

pub use self::bucket::{BucketObject, BucketReader};
use self::operator::build;
use self::upload::{Body, RemoteUpload, UploadTo, spool_too_large};
use crate::pipeline::BackupError;
use crate::targets::explain::Explainer;
use crate::targets::spec::TargetSpec;
use crate::targets::writer::{OpendalSink, upload_plan};
use crate::targets::{
    BackupMetadata, BackupTarget, BackupUpload, ObjectReader, PROBE_FOLDER, check_object_name,
    decode_metadata, probe_name, probe_payload, sidecar_name,
};

/// The largest object WebDAV and Google Drive targets take: OpenDAL sends those in one request
/// from one in-memory buffer, so the whole object is in memory during its upload.
pub const SPOOLED_UPLOAD_LIMIT: u64 = 1024 * 1024 * 1024;
/// The whole storage test gives up after this long (a host that drops packets).
const PROBE_TIMEOUT: Duration = Duration::from_secs(45);
/// Read-side chunking of object stores: two 4 MiB ranges in flight.
const READ_CHUNK: usize = 4 * 1024 * 1024;
/// Streamed (SFTP, FTP) writes go out in pieces of this size.
const STREAM_CHUNK: usize = 1024 * 1024;

/// How a kind of target writes an object (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteMode {
    Multipart,
    StreamThenRename,
    StreamServiceTemp,
    Spooled,
}

pub(crate) struct RemoteTarget {
    spec: TargetSpec,
    policy: Arc<OutboundPolicy>,
    /// Built on first use, when the service is about to be contacted: SFTP and FTP hosts are
    /// resolved and checked then.
    built: OnceCell<Built>,
    explainer: Arc<Explainer>,
    mode: WriteMode,
}

struct Built {
    op: Operator,
    /// The SFTP private key, written to a 0600 temp file for the `ssh` client; removed on drop.
    _key_file: Option<tempfile::TempPath>,
}

impl RemoteTarget {
    /// Prepares a validated, non-local spec; nothing is contacted (or resolved) yet.
    pub(crate) fn open(
        spec: &TargetSpec,
        policy: Arc<OutboundPolicy>,
    ) -> Result<RemoteTarget, BackupError> {
        let (label, mode) = match spec {
            TargetSpec::Local(_) => {
                return Err(BackupError::Config(
                    "a local directory target is not a remote target".to_owned(),
                ));
            }
            TargetSpec::S3(s) => (format!("S3 bucket {:?}", s.bucket), WriteMode::Multipart),
            TargetSpec::Azblob(s) => (
                format!("Azure Blob container {:?}", s.container),
                WriteMode::Multipart,
            ),
            TargetSpec::Gcs(s) => (format!("GCS bucket {:?}", s.bucket), WriteMode::Multipart),
            TargetSpec::Sftp(s) => (
                format!("SFTP server {}:{}", s.host, s.port),
                WriteMode::StreamThenRename,
            ),
            TargetSpec::Webdav(s) => (format!("WebDAV server {}", s.endpoint), WriteMode::Spooled),
            TargetSpec::Ftp(s) => (
                format!("FTP server {}", s.endpoint),
                WriteMode::StreamServiceTemp,
            ),
            TargetSpec::Gdrive(s) => (
                format!("Google Drive folder {:?}", s.root),
                WriteMode::Spooled,
            ),
        };
        Ok(RemoteTarget {
            spec: spec.clone(),
            policy,
            built: OnceCell::new(),
            explainer: Arc::new(Explainer::new(spec, label)),
            mode,
        })
    }

    /// The operator, built on first use.
    async fn op(&self) -> Result<&Operator, BackupError> {
        let built = self
            .built
            .get_or_try_init(|| build(&self.spec, &self.policy, &self.explainer.label))
            .await?;
        Ok(&built.op)
    }
}

impl RemoteTarget {
    /// A failed read, look-up or delete.
    fn failure(&self, what: &str, e: &opendal::Error) -> BackupError {
        BackupError::Target(format!(
            "{what} on the {}: {}",
            self.explainer.label,
            self.explainer.explain(e, false)
        ))
    }

    /// A failed write.
    fn write_failure(&self, what: &str, e: &opendal::Error) -> BackupError {
        BackupError::Storage(format!(
            "{what} on the {}: {}",
            self.explainer.label,
            self.explainer.explain(e, true)
        ))
    }

    fn sink(&self, writer: opendal::Writer) -> OpendalSink {
        let explainer = self.explainer.clone();
        OpendalSink::new(writer, Arc::new(move |e| explainer.explain(e, true)))
    }
}

#[async_trait]
impl BackupTarget for RemoteTarget {
    async fn begin(
        &self,
        name: &str,
        expected_size: Option<u64>,
    ) -> Result<Box<dyn BackupUpload>, BackupError> {
        check_object_name(name)?;
        let writing = |what: &str, path: &str| format!("cannot start writing {path} ({what})");
        let op = self.op().await?;
        let body = match self.mode {
            WriteMode::Multipart => {
                let plan = upload_plan(expected_size);
                let writer = op
                    .writer_with(name)
                    .chunk(plan.part_size)
                    .concurrent(plan.concurrency)
                    .await
                    .map_err(|e| self.write_failure(&writing("multipart", name), &e))?;
                Body::Stream(self.sink(writer))
            }
            WriteMode::StreamThenRename | WriteMode::StreamServiceTemp => {
                let path = self.upload_path(name);
                let writer = op
                    .writer_with(&path)
                    .chunk(STREAM_CHUNK)
                    .await
                    .map_err(|e| self.write_failure(&writing("stream", &path), &e))?;
                Body::Stream(self.sink(writer))
            }
            WriteMode::Spooled => {
                if let Some(expected) = expected_size.filter(|s| *s > SPOOLED_UPLOAD_LIMIT) {
                    return Err(spool_too_large(&self.explainer.label, expected));
                }
                let file = tempfile::tempfile().map_err(|e| {
                    BackupError::Storage(format!(
                        "cannot create a temporary file to stage the upload: {e}"
                    ))
                })?;
                Body::Spool(tokio::fs::File::from_std(file))
            }
        };
        Ok(Box::new(RemoteUpload {
            to: UploadTo {
                op: op.clone(),
                explainer: self.explainer.clone(),
                mode: self.mode,
                name: name.to_owned(),
            },
            body,
        }))
    }

    async fn open(&self, name: &str) -> Result<ObjectReader, BackupError> {
        check_object_name(name)?;
        let size = self.size(name).await?.ok_or_else(|| self.not_found(name))?;
        let op = self.op().await?;
        let reader = if self.mode == WriteMode::Multipart {
            op.reader_with(name).chunk(READ_CHUNK).concurrent(2).await
        } else {
            op.reader(name).await
        }
        .map_err(|e| self.failure(&format!("cannot read {name}"), &e))?;
        let stream = reader
            .into_bytes_stream(0..size)
            .await
            .map_err(|e| self.failure(&format!("cannot read {name}"), &e))?;
        Ok(Box::new(tokio_util::io::StreamReader::new(stream)))
    }

    async fn size(&self, name: &str) -> Result<Option<u64>, BackupError> {
        check_object_name(name)?;
        let op = self.op().await?;
        match op.stat(name).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.content_length())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.failure(&format!("cannot look up {name}"), &e)),
        }
    }

    async fn read_metadata(&self, name: &str) -> Result<BackupMetadata, BackupError> {
        check_object_name(name)?;
        let op = self.op().await?;
        let sidecar = sidecar_name(name);
        match op.read(&sidecar).await {
            Ok(buffer) => decode_metadata(name, &buffer.to_vec()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(BackupError::NotFound(format!(
                "the metadata file {sidecar} does not exist on the {}",
                self.explainer.label
            ))),
            Err(e) => Err(self.failure(&format!("cannot read {sidecar}"), &e)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), BackupError> {
        check_object_name(name)?;
        let op = self.op().await?;
        for path in [name.to_owned(), sidecar_name(name)] {
            match op.delete(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(self.failure(&format!("cannot delete {path}"), &e)),
            }
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        let op = self.op().await?;
        match op.list(prefix).await {
            Ok(entries) => Ok(entries
                .into_iter()
                .filter(|e| e.metadata().is_file())
                .map(|e| e.path().to_owned())
                .collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(self.failure(&format!("cannot list {prefix}"), &e)),
        }
    }

    async fn probe(&self) -> Result<(), BackupError> {
        let name = probe_name();
        let payload = probe_payload(&name);
        let label = &self.explainer.label;
        let step = |step: &str, e: &opendal::Error, writing: bool| {
            BackupError::Target(format!(
                "the storage test of the {label} failed while {step}: {}",
                self.explainer.explain(e, writing)
            ))
        };
        let run = async {
            let op = self.op().await.map_err(|e| {
                BackupError::Target(format!("the storage test of the {label} failed: {e}"))
            })?;
            op.write(&name, payload.clone())
                .await
                .map_err(|e| step("writing a test object", &e, true))?;
            let read = op
                .read(&name)
                .await
                .map_err(|e| step("reading the test object back", &e, false));
            let deleted = op
                .delete(&name)
                .await
                .map_err(|e| step("deleting the test object", &e, false));
            if self.mode != WriteMode::Multipart {
                // File-like stores keep the (now empty) folder otherwise.
                let _ = op.delete(&format!("{PROBE_FOLDER}/")).await;
            }
            if read?.to_vec() != payload {
                return Err(BackupError::Target(format!(
                    "the storage test of the {label} failed: the test object read back differs from what was written"
                )));
            }
            deleted
        };
        tokio::time::timeout(PROBE_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| {
                Err(BackupError::Target(format!(
                    "the storage test of the {label} did not finish within {} s: {}",
                    PROBE_TIMEOUT.as_secs(),
                    self.explainer.unreachable()
                )))
            })
    }
}

impl RemoteTarget {
    /// Where the bytes of `name` go while it is being written.
    fn upload_path(&self, name: &str) -> String {
        match self.mode {
            WriteMode::StreamThenRename => format!("{name}.partial"),
            _ => name.to_owned(),
        }
    }

    fn not_found(&self, name: &str) -> BackupError {
        BackupError::NotFound(format!(
            "backup object {name} does not exist on the {}",
            self.explainer.label
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::targets::{WebdavSpec, open_target};

    #[tokio::test]
    async fn spooled_targets_refuse_backups_larger_than_they_can_hold() {
        let spec = TargetSpec::Webdav(WebdavSpec {
            endpoint: "http://127.0.0.1:9".to_owned(),
            username: None,
            password: None,
            root: None,
        });
        let target = open_target(&spec, &Arc::new(OutboundPolicy::default())).unwrap();
        let err = target
            .begin("db/x.dump.zst.age", Some(2 * SPOOLED_UPLOAD_LIMIT))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("larger than the 1024 MiB"), "{err}");
        assert!(
            err.contains("use an S3, Azure, GCS, SFTP or FTP target"),
            "{err}"
        );
    }
}
