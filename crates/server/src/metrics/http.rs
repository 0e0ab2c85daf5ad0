//! Request counts and latencies: on the main listener by route template (axum's
//! [`MatchedPath`], never the raw path; `unmatched` when no route matched), on the S3
//! listener by S3 operation name (`unknown` when the request never reached one: a bad
//! signature, an unroutable address).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use s3s::S3Result;
use s3s::access::{S3Access, S3AccessContext};
use statehouse_core::metrics::names;

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";
/// The operation label of an S3 request that reached no operation.
pub const UNKNOWN_OPERATION: &str = "unknown";

/// Middleware of the main application: counts and times every request by route template,
/// method and status (nothing when metrics are off).
pub async fn track(request: Request, next: Next) -> Response {
    if !super::recording() {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed();
    let labels = [
        ("route", route),
        ("method", method.to_owned()),
        ("status", status),
    ];
    ::metrics::counter!(names::HTTP_REQUESTS, &labels).increment(1);
    ::metrics::histogram!(names::HTTP_REQUEST_SECONDS, &labels).record(elapsed.as_secs_f64());
    response
}

/// Methods as labels: the ones statehouse serves, anything else as `other` (a client may send
/// any token as a method).
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "LOCK" => "LOCK",
        "UNLOCK" => "UNLOCK",
        _ => "other",
    }
}

/// Where the S3 service writes the operation it resolved a request to (a request extension,
/// read back once the answer is ready).
#[derive(Clone, Default)]
pub struct S3OperationSlot(Arc<OnceLock<String>>);

impl S3OperationSlot {
    pub fn name(&self) -> &str {
        self.0.get().map_or(UNKNOWN_OPERATION, String::as_str)
    }
}

/// Counts and times one S3 request, once answered.
pub fn record_s3(slot: &S3OperationSlot, status: u16, elapsed: Duration) {
    if !super::recording() {
        return;
    }
    let labels = [
        ("operation", slot.name().to_owned()),
        ("status", status.to_string()),
    ];
    ::metrics::counter!(names::S3_REQUESTS, &labels).increment(1);
    ::metrics::histogram!(names::S3_REQUEST_SECONDS, &labels).record(elapsed.as_secs_f64());
}

/// The S3 service's access check: notes the operation's name in the request's
/// [`S3OperationSlot`], then does what s3s does without one (a signature is required; each
/// operation authorizes against the key's workspace role itself).
pub struct NoteOperation;

#[async_trait::async_trait]
impl S3Access for NoteOperation {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let name = cx.s3_op().name().to_owned();
        if let Some(slot) = cx.extensions_mut().get::<S3OperationSlot>() {
            let _ = slot.0.set(name);
        }
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3s::s3_error!(AccessDenied, "Signature is required")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"LOCK").unwrap_or(Method::GET)),
            "LOCK"
        );
        assert_eq!(
            method_label(&Method::from_bytes(b"XYZZY").unwrap_or(Method::GET)),
            "other"
        );
    }

    #[test]
    fn an_s3_request_without_an_operation_is_unknown() {
        let slot = S3OperationSlot::default();
        assert_eq!(slot.name(), UNKNOWN_OPERATION);
        let _ = slot.0.set("PutObject".into());
        assert_eq!(slot.clone().name(), "PutObject");
    }
}
