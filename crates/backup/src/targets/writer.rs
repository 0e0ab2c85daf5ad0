//! A tokio `AsyncWrite` over an OpenDAL [`opendal::Writer`], with an explicit async close and
//! abort (which a plain `AsyncWrite` cannot express), plus the part sizing of multipart uploads.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;

/// The smallest part of a multipart upload. S3 requires ≥ 5 MiB; 8 MiB keeps request counts
/// sane.
pub const MIN_PART_SIZE: usize = 8 * 1024 * 1024;
/// The memory one backup upload may hold in part buffers (issue 4's target).
pub const UPLOAD_MEMORY_BUDGET: usize = 64 * 1024 * 1024;
/// Parts planned for the expected size: S3 allows 10,000; the rest is headroom for a backup
/// that outgrows its hint.
const PLANNED_PARTS: u64 = 9_000;
const MIB: u64 = 1024 * 1024;
/// At most this many parts in flight at once.
const MAX_CONCURRENCY: usize = 4;
/// Bytes gathered from the pipeline before they are handed to OpenDAL in one call.
const BATCH: usize = 256 * 1024;

/// How a multipart upload is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadPlan {
    /// Bytes per part.
    pub part_size: usize,
    /// Parts uploaded at the same time.
    pub concurrency: usize,
}

impl UploadPlan {
    /// The most memory the upload holds in part buffers: the part being filled plus the parts in
    /// flight.
    pub fn memory_bound(&self) -> usize {
        self.part_size.saturating_mul(self.concurrency + 1)
    }
}

/// Part size and concurrency for an object of about `expected_size` bytes.
///
/// The part size is `max(8 MiB, expected / 9000 rounded up to a MiB)`, so an object up to
/// 10,000 parts (S3's limit) fits even when it grows 11 % past its hint; the concurrency is what
/// still fits in [`UPLOAD_MEMORY_BUDGET`] (at most 4, at least 1). So memory stays within 64 MiB
/// up to about 9000 × 32 MiB ≈ 280 GiB expected; larger backups need larger parts and the bound
/// becomes two parts (≈ 2 × expected / 9000: 230 MiB at 1 TiB) — parts must grow there, or the
/// upload would run out of part numbers. Without a hint parts are 8 MiB, which limits the object
/// to about 78 GiB on S3: pass the previous backup's size or the database size.
pub fn upload_plan(expected_size: Option<u64>) -> UploadPlan {
    let wanted = expected_size.map_or(0, |size| size.div_ceil(PLANNED_PARTS).div_ceil(MIB) * MIB);
    let part_size = usize::try_from(wanted)
        .unwrap_or(usize::MAX)
        .max(MIN_PART_SIZE);
    let concurrency = (UPLOAD_MEMORY_BUDGET / part_size)
        .saturating_sub(1)
        .clamp(1, MAX_CONCURRENCY);
    UploadPlan {
        part_size,
        concurrency,
    }
}

/// Turns an OpenDAL error into the user-facing message (with the target's hints, secrets blanked).
pub(crate) type Describe = Arc<dyn Fn(&opendal::Error) -> String + Send + Sync>;

type PendingWrite = Pin<Box<dyn Future<Output = (opendal::Writer, opendal::Result<()>)> + Send>>;

enum State {
    Idle(opendal::Writer),
    Writing(PendingWrite),
    /// A write failed (the message is kept for every later call) or the writer was taken.
    Broken(String),
}

/// `AsyncWrite` into an OpenDAL writer. Writes are gathered into [`BATCH`]-sized buffers, each
/// handed to OpenDAL (which cuts and uploads parts) before more is accepted.
pub(crate) struct OpendalSink {
    state: State,
    buffer: BytesMut,
    describe: Describe,
}

impl OpendalSink {
    pub(crate) fn new(writer: opendal::Writer, describe: Describe) -> Self {
        OpendalSink {
            state: State::Idle(writer),
            buffer: BytesMut::new(),
            describe,
        }
    }

    fn start(&mut self, writer: opendal::Writer, bytes: Bytes) {
        let mut writer = writer;
        self.state = State::Writing(Box::pin(async move {
            let result = writer.write(bytes).await;
            (writer, result)
        }));
    }

    /// Waits for the write in flight; afterwards the state is `Idle` or `Broken`.
    fn poll_settle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.state {
            State::Idle(_) => Poll::Ready(Ok(())),
            State::Broken(message) => Poll::Ready(Err(io::Error::other(message.clone()))),
            State::Writing(pending) => {
                let (writer, result) = ready!(pending.as_mut().poll(cx));
                match result {
                    Ok(()) => {
                        self.state = State::Idle(writer);
                        Poll::Ready(Ok(()))
                    }
                    Err(e) => {
                        let message = (self.describe)(&e);
                        self.state = State::Broken(message.clone());
                        Poll::Ready(Err(io::Error::other(message)))
                    }
                }
            }
        }
    }

    /// Sends what is buffered and waits for it.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_settle(cx))?;
            if self.buffer.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let bytes = self.buffer.split().freeze();
            if let State::Idle(writer) =
                std::mem::replace(&mut self.state, State::Broken("writer taken".to_owned()))
            {
                self.start(writer, bytes);
            }
        }
    }

    /// Everything written so far handed to OpenDAL; the writer back for close or abort.
    async fn take(&mut self) -> Result<opendal::Writer, String> {
        let drained = std::future::poll_fn(|cx| self.poll_drain(cx)).await;
        let state = std::mem::replace(&mut self.state, State::Broken("writer taken".to_owned()));
        match (drained, state) {
            (Ok(()), State::Idle(writer)) => Ok(writer),
            (Err(e), _) => Err(e.to_string()),
            (Ok(()), State::Broken(message)) => Err(message),
            (Ok(()), State::Writing(_)) => Err("a write is still in flight".to_owned()),
        }
    }

    /// Uploads the rest and completes the object (makes it visible on multipart services).
    pub(crate) async fn close(&mut self) -> Result<(), String> {
        let mut writer = self.take().await?;
        writer
            .close()
            .await
            .map(|_| ())
            .map_err(|e| (self.describe)(&e))
    }

    /// Stops the upload: parts already uploaded are discarded where the service can (S3, Azure,
    /// GCS). Errors are ignored; the caller deletes whatever may remain.
    pub(crate) async fn abort(&mut self) {
        // A write in flight is allowed to end first; its outcome no longer matters.
        let _ = std::future::poll_fn(|cx| self.poll_settle(cx)).await;
        self.buffer.clear();
        if let State::Idle(mut writer) =
            std::mem::replace(&mut self.state, State::Broken("aborted".to_owned()))
        {
            let _ = writer.abort().await;
        }
    }
}

impl AsyncWrite for OpendalSink {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buffer.len() >= BATCH {
            ready!(this.poll_drain(cx))?;
        } else {
            // A failed earlier write fails this one too.
            ready!(this.poll_settle(cx))?;
        }
        let n = data
            .len()
            .min(BATCH.saturating_sub(this.buffer.len()).max(1));
        this.buffer.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_drain(cx)
    }

    /// Only drains: completing the object is [`OpendalSink::close`]'s job, so that a shut-down
    /// stream never commits by accident.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_drain(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const GIB: u64 = 1024 * 1024 * 1024;

    #[test]
    fn small_backups_use_8_mib_parts_within_the_budget() {
        for expected in [None, Some(0), Some(GIB), Some(70 * GIB)] {
            let plan = upload_plan(expected);
            assert_eq!(plan.part_size, MIN_PART_SIZE, "{expected:?}");
            assert_eq!(plan.concurrency, 4);
            assert!(plan.memory_bound() <= UPLOAD_MEMORY_BUDGET);
        }
    }

    #[test]
    fn parts_grow_so_huge_backups_fit_in_10000_parts() {
        for expected in [100 * GIB, 280 * GIB, 1024 * GIB, 5 * 1024 * GIB] {
            let plan = upload_plan(Some(expected));
            assert_eq!(plan.part_size as u64 % MIB, 0);
            // 11 % growth past the hint still fits S3's 10,000 parts.
            assert!(
                (expected + expected / 9).div_ceil(plan.part_size as u64) <= 10_000,
                "{expected}"
            );
            if expected <= 280 * GIB {
                assert!(plan.memory_bound() <= UPLOAD_MEMORY_BUDGET, "{plan:?}");
            } else {
                assert_eq!(plan.concurrency, 1);
            }
        }
        // 1 TiB: 117 MiB parts, one in flight.
        assert_eq!(upload_plan(Some(1024 * GIB)).part_size as u64, 117 * MIB);
    }
}
