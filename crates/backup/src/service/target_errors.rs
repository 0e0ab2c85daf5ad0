//! Storage targets as the backup service opens them: each failed operation on a target (a
//! missing object aside) counts in `statehouse_target_errors_total`, labelled with the
//! target's name, id and kind (targets are few, configured by admins) and the operation.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use statehouse_core::backups::TargetRecord;
use statehouse_core::metrics::names;
use tokio::io::AsyncWrite;

use crate::BackupError;
use crate::targets::{BackupMetadata, BackupTarget, BackupUpload, ObjectReader};

/// A target whose failures are counted.
pub(crate) struct ObservedTarget {
    inner: Arc<dyn BackupTarget>,
    labels: Arc<Labels>,
}

struct Labels {
    target: String,
    target_id: String,
    kind: String,
}

impl Labels {
    fn count(&self, operation: &'static str) {
        ::metrics::counter!(
            names::TARGET_ERRORS,
            "target" => self.target.clone(),
            "target_id" => self.target_id.clone(),
            "kind" => self.kind.clone(),
            "operation" => operation
        )
        .increment(1);
    }

    fn observe<T>(
        &self,
        operation: &'static str,
        result: Result<T, BackupError>,
    ) -> Result<T, BackupError> {
        if let Err(e) = &result
            && !matches!(e, BackupError::NotFound(_))
        {
            self.count(operation);
        }
        result
    }
}

impl ObservedTarget {
    pub(crate) fn wrap(
        record: &TargetRecord,
        inner: Arc<dyn BackupTarget>,
    ) -> Arc<dyn BackupTarget> {
        Arc::new(ObservedTarget {
            inner,
            labels: Arc::new(Labels {
                target: record.name.clone(),
                target_id: record.id.clone(),
                kind: record.kind.clone(),
            }),
        })
    }
}

#[async_trait]
impl BackupTarget for ObservedTarget {
    async fn begin(
        &self,
        name: &str,
        expected_size: Option<u64>,
    ) -> Result<Box<dyn BackupUpload>, BackupError> {
        let inner = self
            .labels
            .observe("begin", self.inner.begin(name, expected_size).await)?;
        Ok(Box::new(ObservedUpload {
            inner,
            labels: self.labels.clone(),
        }))
    }
    async fn open(&self, name: &str) -> Result<ObjectReader, BackupError> {
        self.labels.observe("open", self.inner.open(name).await)
    }
    async fn size(&self, name: &str) -> Result<Option<u64>, BackupError> {
        self.labels.observe("size", self.inner.size(name).await)
    }
    async fn read_metadata(&self, name: &str) -> Result<BackupMetadata, BackupError> {
        self.labels
            .observe("read_metadata", self.inner.read_metadata(name).await)
    }
    async fn delete(&self, name: &str) -> Result<(), BackupError> {
        self.labels.observe("delete", self.inner.delete(name).await)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        self.labels.observe("list", self.inner.list(prefix).await)
    }
    async fn probe(&self) -> Result<(), BackupError> {
        self.labels.observe("probe", self.inner.probe().await)
    }
}

struct ObservedUpload {
    inner: Box<dyn BackupUpload>,
    labels: Arc<Labels>,
}

impl ObservedUpload {
    fn observe_io<T>(&self, polled: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if let Poll::Ready(Err(_)) = &polled {
            self.labels.count("write");
        }
        polled
    }
}

impl AsyncWrite for ObservedUpload {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(self.inner.writer()).poll_write(cx, buf);
        self.observe_io(polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(self.inner.writer()).poll_flush(cx);
        self.observe_io(polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(self.inner.writer()).poll_shutdown(cx);
        self.observe_io(polled)
    }
}

#[async_trait]
impl BackupUpload for ObservedUpload {
    fn writer(&mut self) -> &mut (dyn AsyncWrite + Send + Unpin) {
        self
    }

    async fn commit(self: Box<Self>, metadata: &BackupMetadata) -> Result<(), BackupError> {
        let labels = self.labels.clone();
        labels.observe("commit", self.inner.commit(metadata).await)
    }

    async fn abort(self: Box<Self>) {
        self.inner.abort().await
    }
}
