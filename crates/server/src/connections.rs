//! Accepting HTTP connections: at most `max_connections` at once, each under the timeouts of
//! [`crate::timeouts`], and a graceful drain on shutdown.
//!
//! At the limit, new connections are not left waiting in the kernel's queue: a few more
//! (`OVERFLOW_CONNECTIONS`) are accepted and answered at once — `/healthz` and `/readyz` as
//! usual, so probes keep working, everything else `503` with `Retry-After` — then closed.
//! Beyond those, a new connection is closed as soon as it is accepted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::forwarded::TrustedProxies;
use crate::timeouts::{Activity, GuardedIo, TimedBody, Timeouts, TrackedBody};

/// How the server treats connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Idle, header and body timeouts (see [`crate::timeouts`]).
    pub timeouts: Timeouts,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    /// The defaults of the `[http]` configuration section.
    fn default() -> Self {
        ConnectionLimits {
            timeouts: Timeouts {
                idle: Duration::from_secs(60),
                header: Duration::from_secs(30),
                body: Duration::from_secs(60),
            },
            max_connections: 1024,
        }
    }
}

/// Connections accepted beyond the limit only to be answered at once and closed.
pub const OVERFLOW_CONNECTIONS: usize = 32;
/// The longest an overflow connection may take to send its request.
const OVERFLOW_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `app` on `listener` (over TLS when `tls` is given: the handshake must complete
/// within the header timeout) until `shutdown` changes to `true`, then stops accepting, lets
/// in-flight requests finish (idle connections close at once) and returns when every
/// connection is closed. The caller bounds that wait.
///
/// Each request carries its [`crate::forwarded::ClientOrigin`] (read with
/// [`crate::auth::client_ip`]): the peer, or what `proxies` forwarded.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    proxies: TrustedProxies,
    mut shutdown: watch::Receiver<bool>,
) {
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let overflow = Arc::new(Semaphore::new(OVERFLOW_CONNECTIONS));
    let at_limit = AtomicBool::new(false);
    loop {
        let (stream, peer) = tokio::select! {
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                if at_limit.swap(false, Ordering::Relaxed) {
                    tracing::info!(max_connections = max, "connections below the limit again");
                }
                let conn = Connection {
                    app: app.clone(),
                    peer,
                    timeouts: limits.timeouts,
                    keep_alive: true,
                    tls: tls.clone(),
                    proxies: proxies.clone(),
                };
                tokio::spawn(conn.run(stream, slot, shutdown.clone()));
            }
            Err(_) => {
                if !at_limit.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        max_connections = max,
                        "connection limit reached: new connections get 503 (health checks are still answered) until some close; \
                         raise http.max_connections if this load is legitimate"
                    );
                }
                let Ok(slot) = overflow.clone().try_acquire_owned() else {
                    // Closing at once beats leaving the client in the kernel's queue.
                    drop(stream);
                    continue;
                };
                let short = OVERFLOW_TIMEOUT;
                let conn = Connection {
                    app: overflow_app(app.clone(), max),
                    peer,
                    timeouts: Timeouts {
                        idle: short.min(limits.timeouts.idle),
                        header: short.min(limits.timeouts.header),
                        body: short.min(limits.timeouts.body),
                    },
                    keep_alive: false,
                    tls: tls.clone(),
                    proxies: proxies.clone(),
                };
                tokio::spawn(conn.run(stream, slot, shutdown.clone()));
            }
        }
    }
    drop(listener);
    // Every connection holds a slot until it closes: having them all back means all are closed.
    let _ = slots
        .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
        .await;
    let _ = overflow
        .acquire_many(u32::try_from(OVERFLOW_CONNECTIONS).unwrap_or(u32::MAX))
        .await;
}

/// Resolves once `shutdown` says to stop (or its sender is gone), holding no borrow of it.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Errors of `accept` itself: a failed handshake concerns one client; anything else (most
/// often "too many open files") is logged and retried after a pause, which lets connections
/// close in the meantime.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

struct Connection {
    app: Router,
    peer: SocketAddr,
    timeouts: Timeouts,
    keep_alive: bool,
    tls: Option<TlsAcceptor>,
    proxies: TrustedProxies,
}

impl Connection {
    async fn run(
        mut self,
        stream: TcpStream,
        slot: OwnedSemaphorePermit,
        shutdown: watch::Receiver<bool>,
    ) {
        match self.tls.take() {
            None => self.serve_io(stream, false, shutdown).await,
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(self.timeouts.header, acceptor.accept(stream)).await;
                match handshake {
                    Ok(Ok(stream)) => self.serve_io(stream, true, shutdown).await,
                    // A client that does not speak TLS, or too slowly: its business.
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
                }
            }
        }
        drop(slot);
    }

    async fn serve_io<I>(self, stream: I, tls: bool, mut shutdown: watch::Receiver<bool>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let io = TokioIo::new(GuardedIo::new(stream, activity.clone(), self.timeouts));
        let Connection {
            app,
            peer,
            timeouts,
            keep_alive,
            tls: _,
            proxies,
        } = self;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let guard = activity.request_started();
            let mut request = request.map(|body| TimedBody::new(body, timeouts.body));
            let origin = proxies.origin(peer.ip(), tls, request.headers());
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(origin);
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await?;
                Ok::<_, Infallible>(response.map(|body| Body::new(TrackedBody::new(body, guard))))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .keep_alive(keep_alive)
            .header_read_timeout(None::<Duration>);
        let connection = builder.serve_connection(io, service);
        let mut connection = std::pin::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = stopped(&mut shutdown) => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection closed");
        }
    }
}

/// What a connection beyond the limit may do: health checks, nothing else.
fn overflow_app(app: Router, max: usize) -> Router {
    Router::new().fallback(move |request: Request<Body>| {
        let app = app.clone();
        async move {
            match request.uri().path() {
                "/healthz" | "/readyz" => match app.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
                _ => busy(max),
            }
        }
    })
}

fn busy(max: usize) -> Response<Body> {
    let body = serde_json::json!({"error": {
        "code": "unavailable",
        "message": format!("the server has too many open connections (limit {max}); retry shortly"),
    }});
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
