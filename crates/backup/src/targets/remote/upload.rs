//! One object's upload to a remote target: streamed, multipart or spooled (see the `remote`
//! module documentation), its commit with the sidecar, and its abort with the clean-up each kind
//! needs.

use std::io::SeekFrom;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use opendal::Operator;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

use super::{SPOOLED_UPLOAD_LIMIT, STREAM_CHUNK, WriteMode};
use crate::pipeline::BackupError;
use crate::targets::explain::Explainer;
use crate::targets::writer::OpendalSink;
use crate::targets::{BackupMetadata, BackupUpload, encode_metadata, sidecar_name};

pub(super) fn spool_too_large(label: &str, size: u64) -> BackupError {
    BackupError::Storage(format!(
        "the backup ({} MiB) is larger than the {} MiB a {label} target takes (WebDAV and Google Drive uploads are held in memory); use an S3, Azure, GCS, SFTP or FTP target for large databases",
        size.div_ceil(1024 * 1024),
        SPOOLED_UPLOAD_LIMIT / (1024 * 1024)
    ))
}

pub(super) enum Body {
    Stream(OpendalSink),
    Spool(tokio::fs::File),
    /// Committed or aborted: writes go nowhere.
    Done(tokio::io::Sink),
}

pub(super) struct RemoteUpload {
    pub(super) to: UploadTo,
    pub(super) body: Body,
}

/// What an upload needs besides its body; `Sync`, unlike the body, so it can be borrowed
/// across awaits.
pub(super) struct UploadTo {
    pub(super) op: Operator,
    pub(super) explainer: Arc<Explainer>,
    pub(super) mode: WriteMode,
    pub(super) name: String,
}

impl UploadTo {
    fn failure(&self, what: &str, e: &opendal::Error) -> BackupError {
        BackupError::Storage(format!(
            "{what} on the {}: {}",
            self.explainer.label,
            self.explainer.explain(e, true)
        ))
    }

    /// Uploads the spooled object in one request (see [`SPOOLED_UPLOAD_LIMIT`]).
    async fn upload_spool(&self, file: &mut tokio::fs::File) -> Result<(), BackupError> {
        let io = |e: std::io::Error| {
            BackupError::Storage(format!("cannot read back the staged upload: {e}"))
        };
        file.flush().await.map_err(io)?;
        let size = file.seek(SeekFrom::End(0)).await.map_err(io)?;
        if size > SPOOLED_UPLOAD_LIMIT {
            return Err(spool_too_large(&self.explainer.label, size));
        }
        file.seek(SeekFrom::Start(0)).await.map_err(io)?;
        let mut chunks = Vec::new();
        loop {
            let mut chunk = Vec::with_capacity(STREAM_CHUNK);
            let n = (&mut *file)
                .take(STREAM_CHUNK as u64)
                .read_to_end(&mut chunk)
                .await
                .map_err(io)?;
            if n == 0 {
                break;
            }
            chunks.push(Bytes::from(chunk));
        }
        self.op
            .write(&self.name, opendal::Buffer::from(chunks))
            .await
            .map(|_| ())
            .map_err(|e| self.failure(&format!("cannot upload {}", self.name), &e))
    }

    /// Deletes the temporary file FTP's writer leaves in the root folder (`<file>.<8 random
    /// letters or digits>`) when an upload stops half-way.
    async fn sweep_ftp_temp(&self) {
        let base = self.name.rsplit('/').next().unwrap_or(&self.name);
        let Ok(entries) = self.op.list("/").await else {
            return;
        };
        for entry in entries {
            let leftover = entry
                .name()
                .strip_prefix(base)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|random| {
                    random.len() == 8 && random.chars().all(|c| c.is_ascii_alphanumeric())
                });
            if leftover {
                let _ = self.op.delete(entry.path()).await;
            }
        }
    }
}

#[async_trait]
impl BackupUpload for RemoteUpload {
    fn writer(&mut self) -> &mut (dyn AsyncWrite + Send + Unpin) {
        match &mut self.body {
            Body::Stream(sink) => sink,
            Body::Spool(file) => file,
            Body::Done(sink) => sink,
        }
    }

    async fn commit(mut self: Box<Self>, metadata: &BackupMetadata) -> Result<(), BackupError> {
        let to = &self.to;
        match std::mem::replace(&mut self.body, Body::Done(tokio::io::sink())) {
            Body::Stream(mut sink) => {
                if let Err(message) = sink.close().await {
                    let failure = BackupError::Storage(format!(
                        "cannot complete {} on the {}: {message}",
                        to.name, to.explainer.label
                    ));
                    if to.mode == WriteMode::StreamThenRename {
                        let _ = to.op.delete(&format!("{}.partial", to.name)).await;
                    }
                    return Err(failure);
                }
                if to.mode == WriteMode::StreamThenRename {
                    let partial = format!("{}.partial", to.name);
                    if let Err(e) = to.op.rename(&partial, &to.name).await {
                        let _ = to.op.delete(&partial).await;
                        return Err(
                            to.failure(&format!("cannot rename {partial} to {}", to.name), &e)
                        );
                    }
                }
            }
            Body::Spool(mut file) => to.upload_spool(&mut file).await?,
            Body::Done(_) => {}
        }
        let sidecar = sidecar_name(&to.name);
        to.op
            .write(&sidecar, encode_metadata(metadata)?)
            .await
            .map(|_| ())
            .map_err(|e| {
                to.failure(
                    &format!(
                        "the backup object {} is stored but its metadata file {sidecar} could not be written",
                        to.name
                    ),
                    &e,
                )
            })
    }

    async fn abort(mut self: Box<Self>) {
        if let Body::Stream(sink) = &mut self.body {
            if self.to.mode == WriteMode::StreamServiceTemp {
                // FTP cannot abort a transfer and stay in step with the server (the pooled
                // connection would then answer the next command with this transfer's reply):
                // the transfer is finished instead, and the object deleted below.
                let _ = sink.close().await;
            } else {
                sink.abort().await;
            }
        }
        // Drops the writer (and with it FTP's data connection) before cleaning up after it.
        self.body = Body::Done(tokio::io::sink());
        let to = &self.to;
        match to.mode {
            WriteMode::Multipart | WriteMode::Spooled => {}
            WriteMode::StreamThenRename => {
                let _ = to.op.delete(&format!("{}.partial", to.name)).await;
            }
            WriteMode::StreamServiceTemp => {
                let _ = to.op.delete(&to.name).await;
                to.sweep_ftp_temp().await;
            }
        }
    }
}
