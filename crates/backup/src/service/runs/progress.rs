//! Progress of a running backup: the callback that hears it, and the target wrapper that counts
//! the bytes its upload receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::pipeline::BackupError;
use crate::targets::{BackupTarget, ObjectReader};

/// Called with the bytes moved so far and the expected total, when known.
pub type ProgressFn = Arc<dyn Fn(u64, Option<u64>) + Send + Sync>;

/// Counts the bytes a target's upload receives (progress of a running backup).
pub(super) struct CountingTarget {
    pub(super) inner: Arc<dyn BackupTarget>,
    pub(super) written: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl BackupTarget for CountingTarget {
    async fn begin(
        &self,
        name: &str,
        expected_size: Option<u64>,
    ) -> std::result::Result<Box<dyn crate::targets::BackupUpload>, BackupError> {
        let inner = self.inner.begin(name, expected_size).await?;
        Ok(Box::new(CountingUpload {
            inner,
            written: self.written.clone(),
        }))
    }
    async fn open(&self, name: &str) -> std::result::Result<ObjectReader, BackupError> {
        self.inner.open(name).await
    }
    async fn size(&self, name: &str) -> std::result::Result<Option<u64>, BackupError> {
        self.inner.size(name).await
    }
    async fn read_metadata(
        &self,
        name: &str,
    ) -> std::result::Result<crate::targets::BackupMetadata, BackupError> {
        self.inner.read_metadata(name).await
    }
    async fn delete(&self, name: &str) -> std::result::Result<(), BackupError> {
        self.inner.delete(name).await
    }
    async fn list(&self, prefix: &str) -> std::result::Result<Vec<String>, BackupError> {
        self.inner.list(prefix).await
    }
    async fn probe(&self) -> std::result::Result<(), BackupError> {
        self.inner.probe().await
    }
}

struct CountingUpload {
    inner: Box<dyn crate::targets::BackupUpload>,
    written: Arc<AtomicU64>,
}

impl tokio::io::AsyncWrite for CountingUpload {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(this.inner.writer()).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &polled {
            this.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.inner.writer()).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.inner.writer()).poll_shutdown(cx)
    }
}

#[async_trait::async_trait]
impl crate::targets::BackupUpload for CountingUpload {
    fn writer(&mut self) -> &mut (dyn tokio::io::AsyncWrite + Send + Unpin) {
        self
    }

    async fn commit(
        self: Box<Self>,
        metadata: &crate::targets::BackupMetadata,
    ) -> std::result::Result<(), BackupError> {
        self.inner.commit(metadata).await
    }

    async fn abort(self: Box<Self>) {
        self.inner.abort().await
    }
}
