//! The Terraform/OpenTofu `http` state backend at `/tf/{workspace}/{state-name}`.
//!
//! On the state address: GET reads, POST (or PUT) writes, DELETE soft-deletes, LOCK/UNLOCK
//! lock (Terraform's defaults). GitLab style works too: POST `<address>/lock` locks and
//! DELETE `<address>/lock` unlocks.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine;
use serde::Deserialize;
use statehouse_core::Error;
use statehouse_core::lock_queue::parse_lock_wait;
use statehouse_core::model::{LockOutcome, UnlockOutcome, WriteOutcome};
use statehouse_core::names::LOCK_SEGMENT;
use statehouse_core::objects::PULUMI_STATE_PREFIX;

use crate::AppState;
use crate::auth::{ClientIp, principal};
use crate::body::read_limited;
use crate::wire::WireError;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/tf/{workspace}/{*name}", any(dispatch))
}

#[derive(Debug, Deserialize)]
struct Params {
    /// The lock ID the client holds, appended to writes.
    #[serde(rename = "ID")]
    id: Option<String>,
    /// On the lock address: how long a LOCK waits in line for a held lock (`10m`; `0`: not
    /// at all). Without it, the workspace's `lock_wait` setting.
    lock_wait: Option<String>,
}

enum Operation {
    Read,
    Write,
    Delete,
    Lock,
    Unlock,
}

/// Splits the path into the state name and the operation the method asks for.
fn operation(method: &Method, raw_name: &str) -> Result<(String, Operation), Error> {
    let lock_suffix = format!("/{LOCK_SEGMENT}");
    if let Some(name) = raw_name.strip_suffix(&lock_suffix) {
        let op = match method.as_str() {
            "POST" | "PUT" | "LOCK" => Operation::Lock,
            "DELETE" | "UNLOCK" => Operation::Unlock,
            other => return Err(method_not_allowed(other, "POST, DELETE, LOCK, UNLOCK")),
        };
        return Ok((name.to_owned(), op));
    }
    let op = match method.as_str() {
        "GET" => Operation::Read,
        "POST" | "PUT" => Operation::Write,
        "DELETE" => Operation::Delete,
        "LOCK" => Operation::Lock,
        "UNLOCK" => Operation::Unlock,
        other => {
            return Err(method_not_allowed(
                other,
                "GET, POST, PUT, DELETE, LOCK, UNLOCK",
            ));
        }
    };
    Ok((raw_name.to_owned(), op))
}

fn method_not_allowed(method: &str, allowed: &str) -> Error {
    Error::BadRequest(format!(
        "method {method} is not supported here; use {allowed}"
    ))
}

async fn dispatch(
    State(state): State<Arc<AppState>>,
    method: Method,
    Path((workspace, raw_name)): Path<(String, String)>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    ClientIp(source_ip): ClientIp,
    body: Body,
) -> Result<Response, WireError> {
    let (name, op) = operation(&method, &raw_name)?;
    if name.starts_with(PULUMI_STATE_PREFIX) {
        return Err(Error::BadRequest(format!(
            "states named {PULUMI_STATE_PREFIX}… are Pulumi stacks, written through the S3 endpoint; give this Terraform state another name"
        ))
        .into());
    }
    let who = principal(&state, &headers, source_ip).await?;
    let services = &state.services;
    match op {
        Operation::Read => {
            // The `outputs` role gets the state reduced to its outputs.
            let Some(read) = services
                .read_state_for_backend(&who, &workspace, &name)
                .await?
            else {
                return Ok(StatusCode::NO_CONTENT.into_response());
            };
            let mut response = read.body.into_response();
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            // The MD5 of the exact bytes sent, so the client can check what it received.
            if let Some(v) =
                hex_to_base64(&read.md5_hex).and_then(|b| HeaderValue::from_str(&b).ok())
            {
                h.insert("content-md5", v);
            }
            Ok(response)
        }
        Operation::Write => {
            let body = read_limited(&headers, body, state.max_state_bytes).await?;
            let claimed = claimed_md5(&headers)?;
            let outcome = services
                .write_state(
                    &who,
                    &workspace,
                    &name,
                    body,
                    claimed.as_deref(),
                    params.id.as_deref(),
                )
                .await?;
            match &outcome {
                WriteOutcome::Created(v) => tracing::info!(
                    workspace,
                    state = name,
                    version = v.version_no,
                    serial = v.serial,
                    size = v.size,
                    forced = v.forced,
                    by = who.token_name,
                    "state written"
                ),
                WriteOutcome::Unchanged(v) => {
                    tracing::debug!(
                        workspace,
                        state = name,
                        version = v.version_no,
                        "identical write acknowledged"
                    )
                }
            }
            Ok(StatusCode::OK.into_response())
        }
        Operation::Delete => {
            services.delete_state(&who, &workspace, &name).await?;
            tracing::info!(
                workspace,
                state = name,
                by = who.token_name,
                "state deleted (recoverable until purged)"
            );
            Ok(StatusCode::OK.into_response())
        }
        Operation::Lock => {
            let info = read_limited(&headers, body, 64 * 1024).await?;
            let wait = params
                .lock_wait
                .as_deref()
                .map(parse_lock_wait)
                .transpose()?;
            let outcome = services
                .lock_state_waiting(&who, &workspace, &name, &info, wait)
                .await?;
            if outcome == LockOutcome::Acquired {
                tracing::debug!(
                    workspace,
                    state = name,
                    by = who.token_name,
                    "lock acquired"
                );
            }
            Ok(StatusCode::OK.into_response())
        }
        Operation::Unlock => {
            let info = read_limited(&headers, body, 64 * 1024).await?;
            match services
                .unlock_state(&who, &workspace, &name, &info)
                .await?
            {
                UnlockOutcome::ForceReleased { previous } => tracing::warn!(
                    workspace,
                    state = name,
                    by = who.token_name,
                    holder = previous.holder,
                    lock_id = previous.id,
                    "lock force-unlocked"
                ),
                UnlockOutcome::Released => {
                    tracing::debug!(
                        workspace,
                        state = name,
                        by = who.token_name,
                        "lock released"
                    )
                }
                UnlockOutcome::NotLocked => {}
            }
            Ok(StatusCode::OK.into_response())
        }
    }
}

/// Terraform sends `Content-MD5` (base64 MD5 of the body) with every write; the service
/// compares it with what arrived.
fn claimed_md5(headers: &HeaderMap) -> Result<Option<Vec<u8>>, Error> {
    let Some(claimed) = headers.get("content-md5") else {
        return Ok(None);
    };
    claimed
        .to_str()
        .ok()
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
        .map(Some)
        .ok_or_else(|| Error::BadRequest("Content-MD5 header is not base64".into()))
}

fn hex_to_base64(hex_digest: &str) -> Option<String> {
    let raw = hex::decode(hex_digest).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(raw))
}
