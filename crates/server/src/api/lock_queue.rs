//! `GET /api/v1/workspaces/{ws}/states/{state}/lock/queue`: the LOCK requests waiting for a
//! state's lock (`lock_wait`), first in line first.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use statehouse_core::lock_queue::QueuedLock;
use utoipa::ToSchema;

use super::{ApiError, Caller, Page};
use crate::AppState;

/// One waiting LOCK.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedLockView {
    /// Its place in line, from 1.
    pub position: usize,
    /// The client's lock ID.
    pub id: String,
    /// The token (or user) that waits.
    pub holder: String,
    /// LockInfo `Operation` (e.g. `OperationTypeApply`).
    pub operation: Option<String>,
    /// LockInfo `Who` (user@host).
    pub who: Option<String>,
    pub waiting_since: String,
    pub waiting_seconds: i64,
}

impl QueuedLockView {
    pub(crate) fn new(position: usize, queued: &QueuedLock, now_millis: i64) -> Self {
        let info: serde_json::Value = serde_json::from_str(&queued.info).unwrap_or_default();
        let field = |name: &str| {
            info.get(name)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        QueuedLockView {
            position,
            id: queued.lock_id.clone(),
            holder: queued.holder.clone(),
            operation: field("Operation"),
            who: field("Who"),
            waiting_since: queued.enqueued_at.to_rfc3339(),
            waiting_seconds: (now_millis - queued.enqueued_at.millis()).max(0) / 1_000,
        }
    }
}

/// The LOCK requests waiting in line for the state's lock (`?lock_wait=` on the lock address,
/// or the workspace's `lock_wait`), first in line first; empty when nobody waits. One page: a
/// line is short (no cursor).
#[utoipa::path(get, path = "/workspaces/{ws}/states/{state}/lock/queue", tag = "locks",
    operation_id = "show_lock_queue",
    params(("ws" = String, Path, description = "workspace name"),
        ("state" = String, Path, description = "state name, URL-encoded")),
    responses((status = 200, body = Page<QueuedLockView>)))]
pub async fn queue(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, state)): Path<(String, String)>,
) -> Result<Json<Page<QueuedLockView>>, ApiError> {
    let queued = app.services.lock_queue(&who, &ws, &state).await?;
    let now = app.services.now().millis();
    let items = queued
        .iter()
        .enumerate()
        .map(|(i, q)| QueuedLockView::new(i + 1, q, now))
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}
