//! Long backup operations (backup now, restore) answer with JSON when they end; asked with
//! `Accept: application/x-ndjson` they stream progress lines first:
//! `{"progress":{"bytes":N,"total":T}}` … then `{"result":…}` or `{"error":{…}}`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use statehouse_backup::service::{BackupService, ProgressFn};

use super::ApiError;

const NDJSON: &str = "application/x-ndjson";

fn wants_progress(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(NDJSON))
}

/// Runs `work` (detached, see [`BackupService::detached`]) and answers its result as JSON, or
/// (asked for NDJSON) streams its progress lines followed by the result.
pub(super) async fn with_progress<T, F, Fut>(
    backups: &BackupService,
    headers: &HeaderMap,
    status: StatusCode,
    work: F,
) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce(Option<ProgressFn>) -> Fut,
    Fut: std::future::Future<Output = statehouse_core::Result<T>> + Send + 'static,
{
    if !wants_progress(headers) {
        return match backups.detached(work(None)).await {
            Ok(value) => (status, Json(value)).into_response(),
            Err(e) => ApiError(e).into_response(),
        };
    }
    let (lines, receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
    let progress_lines = lines.clone();
    let last_sent = Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
    let progress: ProgressFn = Arc::new(move |bytes, total| {
        let Ok(mut last) = last_sent.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_millis(250)) {
            return;
        }
        *last = Some(std::time::Instant::now());
        let line = serde_json::json!({"progress": {"bytes": bytes, "total": total}});
        let _ = progress_lines.send(format!("{line}\n"));
    });
    let fut = backups.detached(work(Some(progress)));
    tokio::spawn(async move {
        let last = match fut.await {
            Ok(value) => serde_json::json!({"result": value}),
            Err(e) => {
                // The same body the JSON answer would carry, plus its status.
                let response = ApiError(e).into_response();
                let status = response.status().as_u16();
                let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
                    .await
                    .unwrap_or_default();
                let mut line: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or_else(|_| serde_json::json!({}));
                if let Some(error) = line.get_mut("error").and_then(|e| e.as_object_mut()) {
                    error.insert("status".into(), status.into());
                }
                line
            }
        };
        let _ = lines.send(format!("{last}\n"));
    });
    let stream = futures::stream::unfold(receiver, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::io::Error>(bytes::Bytes::from(line)), rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    response
}
