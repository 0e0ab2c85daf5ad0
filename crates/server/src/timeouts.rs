//! Timeouts of one HTTP connection, so that a client that goes quiet cannot hold a connection
//! (and its file descriptor) forever:
//!
//! - **idle**: between requests (from the connection's start, or the end of the previous
//!   response, to the first byte of the next request);
//! - **header**: from a request's first byte until its whole head (request line and headers)
//!   has arrived;
//! - **body**: the longest pause while the server waits for more of a request body, or for the
//!   client to take more of a response. A pause, not a total: a large upload over a slow link
//!   that keeps moving is never cut.
//!
//! None of them runs while a handler works on a request (a handler may rightly take long).
//! [`GuardedIo`] enforces idle, header and response-write timeouts on the socket; the phase it
//! needs comes from [`Activity`], which the connection's service updates as requests start
//! ([`Activity::request_started`]) and as their responses end ([`TrackedBody`]).
//! [`TimedBody`] enforces the body timeout on request bodies, counted only while a handler
//! waits for more of one.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The three timeouts of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub idle: Duration,
    pub header: Duration,
    pub body: Duration,
}

/// Where a connection is between requests, shared by its socket and its service.
#[derive(Clone)]
pub struct Activity(Arc<Mutex<ActivityState>>);

struct ActivityState {
    phase: Phase,
    /// The socket's reader, parked without a deadline while requests were busy: woken when the
    /// connection turns idle, so the idle timeout starts to count.
    parked_reader: Option<Waker>,
}

#[derive(Clone, Copy)]
enum Phase {
    /// Waiting for the next request since this instant.
    Idle(Instant),
    /// The next request's head began arriving at this instant.
    Head(Instant),
    /// This many requests are being answered.
    Busy(usize),
}

impl Activity {
    pub fn new() -> Self {
        Activity(Arc::new(Mutex::new(ActivityState {
            phase: Phase::Idle(Instant::now()),
            parked_reader: None,
        })))
    }

    fn with<T>(&self, f: impl FnOnce(&mut ActivityState) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update of a few plain fields.
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    /// A request's head has been read: no read timeout until its response ends. The returned
    /// guard marks that end when dropped (put it into the response body with [`TrackedBody`]).
    pub fn request_started(&self) -> RequestGuard {
        self.with(|s| {
            s.phase = match s.phase {
                Phase::Busy(n) => Phase::Busy(n + 1),
                Phase::Idle(_) | Phase::Head(_) => Phase::Busy(1),
            }
        });
        RequestGuard(self.clone())
    }

    fn request_finished(&self) {
        let waker = self.with(|s| {
            if let Phase::Busy(n) = s.phase {
                s.phase = if n > 1 {
                    Phase::Busy(n - 1)
                } else {
                    Phase::Idle(Instant::now())
                };
            }
            s.parked_reader.take()
        });
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn bytes_read(&self) {
        self.with(|s| {
            if let Phase::Idle(_) = s.phase {
                s.phase = Phase::Head(Instant::now());
            }
        });
    }

    /// When the socket must have delivered what the client owes, and what it owes; `None`
    /// while requests are being answered (then `waker` is woken when they are done).
    fn read_deadline(&self, t: &Timeouts, waker: &Waker) -> Option<(Instant, &'static str)> {
        self.with(|s| match s.phase {
            Phase::Idle(since) => Some((since + t.idle, "idle connection timed out")),
            Phase::Head(since) => Some((since + t.header, "request headers timed out")),
            Phase::Busy(_) => {
                s.parked_reader = Some(waker.clone());
                None
            }
        })
    }
}

/// Marks the end of one request's response when dropped.
pub struct RequestGuard(Activity);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

/// A socket with the idle and header timeouts on reads and the body timeout on writes.
pub struct GuardedIo<T> {
    inner: T,
    activity: Activity,
    timeouts: Timeouts,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    /// A write is waiting for the client to read (the write timer runs).
    write_stalled: bool,
}

impl<T> GuardedIo<T> {
    pub fn new(inner: T, activity: Activity, timeouts: Timeouts) -> Self {
        let now = Instant::now();
        GuardedIo {
            inner,
            activity,
            timeouts,
            read_timer: Box::pin(tokio::time::sleep_until(now + timeouts.idle)),
            write_timer: Box::pin(tokio::time::sleep_until(now + timeouts.body)),
            write_stalled: false,
        }
    }

    /// A write that cannot proceed: fails once it has waited longer than the body timeout.
    fn stalled<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        if !self.write_stalled {
            self.write_stalled = true;
            let deadline = Instant::now() + self.timeouts.body;
            self.write_timer.as_mut().reset(deadline);
        }
        if self.write_timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(timed_out("client stopped reading the response")));
        }
        Poll::Pending
    }

    fn progressed<R>(
        &mut self,
        result: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match result {
            Poll::Pending => self.stalled(cx),
            ready => {
                self.write_stalled = false;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some((deadline, what)) =
                    this.activity.read_deadline(&this.timeouts, cx.waker())
                else {
                    return Poll::Pending;
                };
                if this.read_timer.deadline() != deadline {
                    this.read_timer.as_mut().reset(deadline);
                }
                if this.read_timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(timed_out(what)));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progressed(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progressed(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.progressed(result, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progressed(result, cx)
    }
}

/// A request body that fails when no data arrives for the body timeout while a handler waits
/// for it (time the handler spends elsewhere does not count).
pub struct TimedBody<B> {
    inner: B,
    limit: Duration,
    waiting: Option<Pin<Box<Sleep>>>,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, limit: Duration) -> Self {
        TimedBody {
            inner,
            limit,
            waiting: None,
        }
    }
}

/// The error a [`TimedBody`] ends with.
#[derive(Debug)]
pub struct BodyTimedOut(Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the client sent no data for {}s in the middle of the request body",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for BodyTimedOut {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let limit = this.limit;
                let timer = this
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_ready() {
                    let timed_out: BoxError = Box::new(BodyTimedOut(limit));
                    return Poll::Ready(Some(Err(timed_out)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that holds its request's [`RequestGuard`] until it is done (or dropped).
pub struct TrackedBody<B> {
    inner: B,
    _guard: RequestGuard,
}

impl<B> TrackedBody<B> {
    pub fn new(inner: B, guard: RequestGuard) -> Self {
        TrackedBody {
            inner,
            _guard: guard,
        }
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
