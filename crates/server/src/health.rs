//! `GET /healthz`: the process is up. `GET /readyz`: the database answers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::AppState;

/// How long `/readyz` waits for the database: probes want a quick answer, and a database that
/// takes longer than this to answer `SELECT 1` is not ready for requests either.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", operation_id = "healthz", security(()),
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// The database answers (within a few seconds).
#[utoipa::path(get, path = "/readyz", tag = "health", operation_id = "readyz", security(()),
    responses((status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "the database does not answer", body = String,
            content_type = "text/plain")))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, String) {
    let ping = tokio::time::timeout(READY_TIMEOUT, state.services.ping_store()).await;
    match ping.unwrap_or_else(|_| {
        Err(statehouse_core::Error::store(format!(
            "no answer from the database within {}s",
            READY_TIMEOUT.as_secs()
        )))
    }) {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "database unreachable\n".into(),
            )
        }
    }
}
