//! The transfer floor: a bare axum server (same framework and HTTP stack as statehouse, on its
//! own two-worker runtime) that answers a GET with a fixed body held in memory and a POST by
//! reading the body and answering 200. What statehouse adds per request is its latency minus
//! this floor's.

use std::net::SocketAddr;
use std::thread;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;
use tokio::sync::oneshot;

/// A running floor server; stops when dropped.
pub struct Floor {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Floor {
    /// Serves `body` at `/blob` (GET) and swallows POSTs there.
    pub fn start(body: Vec<u8>) -> Result<Floor> {
        let body = Bytes::from(body);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<Result<SocketAddr, String>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = addr_tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = addr_tx.send(listener.local_addr().map_err(|e| e.to_string()));
                let app = Router::new().route(
                    "/blob",
                    get(move || {
                        let body = body.clone();
                        async move { ([(header::CONTENT_TYPE, "application/json")], body) }
                    })
                    .post(|body: Bytes| async move {
                        std::hint::black_box(body.len());
                        "ok"
                    }),
                );
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx
            .recv()
            .context("the floor server thread ended early")?
            .map_err(anyhow::Error::msg)
            .context("starting the floor server")?;
        Ok(Floor {
            url: format!("http://{addr}/blob"),
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
