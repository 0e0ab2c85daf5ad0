//! The HTTP face of statehouse: the Terraform/OpenTofu `http` backend, health endpoints,
//! request ids and structured request logs.

pub mod api;
mod auth;
mod body;
mod connections;
pub mod forwarded;
mod health;
pub mod maintenance;
pub mod metrics;
pub mod oidc;
pub mod s3;
mod tf_http;
mod timeouts;
pub mod tls;
pub mod ui;
mod url_text;
pub mod webhook_sender;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Request};
use statehouse_core::service::Services;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use connections::{ConnectionLimits, OVERFLOW_CONNECTIONS, serve};
pub use timeouts::Timeouts;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    /// PostgreSQL backups (databases, targets, notifiers, runs).
    pub backups: statehouse_backup::service::BackupService,
    /// Bodies larger than this are refused with 413.
    pub max_state_bytes: usize,
    /// Single sign-on for the web UI (`[oidc]`), when configured.
    pub oidc: Option<Arc<oidc::OidcLogin>>,
    /// Where the S3 endpoint listens (`s3_listen`), for the pages that tell Pulumi users how
    /// to reach it; `None` when it is off.
    pub s3_endpoint: Option<std::net::SocketAddr>,
    /// The S3 endpoint speaks HTTPS (`[tls]`).
    pub s3_tls: bool,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let state = Arc::new(state);
    Router::new()
        .merge(health::routes())
        .merge(tf_http::routes())
        .merge(api::routes())
        .merge(ui::routes())
        .route_layer(axum::middleware::from_fn(
            url_text::refuse_control_characters,
        ))
        // An explicit 404 (axum's default fallback would bypass the layers below: uncounted,
        // unlogged).
        .fallback(not_found)
        // Around every route and the fallback, so each request is counted by its route
        // template (`metrics::http`).
        .layer(axum::middleware::from_fn(metrics::http::track))
        .with_state(state)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            // Logged per request: method, path (with query), status, latency, request id.
            // Never headers (credentials) nor bodies (state contents).
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
                })
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Micros),
                ),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// What a request no route matches gets.
async fn not_found() -> axum::http::StatusCode {
    axum::http::StatusCode::NOT_FOUND
}

/// How long `serve` waits for in-flight requests after SIGTERM before giving up.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
