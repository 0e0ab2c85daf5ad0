//! Mapping of domain errors onto HTTP responses, done once for every route.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use statehouse_core::Error;

/// An error as the Terraform/OpenTofu client sees it: a one-line text reason, or for lock
/// conflicts the holder's LockInfo JSON (the client parses it).
pub struct WireError(pub Error);

impl From<Error> for WireError {
    fn from(e: Error) -> Self {
        WireError(e)
    }
}

/// `Retry-After` of a `503` (the store could not be reached): time for a database restart or
/// failover to make progress before the client tries again.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// The `Retry-After` an error's answer carries, if any.
pub fn retry_after_of(e: &Error) -> Option<u64> {
    match e {
        Error::TooManyRequests {
            retry_after_secs, ..
        } => Some(*retry_after_secs),
        Error::Store(_) | Error::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_SECS),
        _ => None,
    }
}

pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::BadRequest(_) => StatusCode::BAD_REQUEST,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Locked { .. } => StatusCode::LOCKED,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Store(_) | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Config(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for WireError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        let retry_after = retry_after_of(&self.0);
        let mut response = self.answer(status);
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl WireError {
    fn answer(self, status: StatusCode) -> Response {
        match self.0 {
            Error::Locked { holder_info } => {
                tracing::info!(
                    status = 423,
                    "request refused: state is locked by another client"
                );
                ([(header::CONTENT_TYPE, "application/json")], holder_info)
                    .into_response_with(status)
            }
            Error::Unauthorized(msg) => {
                let mut resp = (status, format!("{msg}\n")).into_response();
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"statehouse\", charset=\"UTF-8\""),
                );
                resp
            }
            Error::TooManyRequests { message, .. } => {
                tracing::info!(status = 429, reason = %message, "request refused");
                (status, format!("{message}\n")).into_response()
            }
            e @ (Error::Store(_) | Error::Internal(_) | Error::Config(_)) => {
                // Details go to the log (with the request id), not to the client.
                tracing::error!(error = %e, "request failed");
                (
                    status,
                    "statehouse could not complete the request; see the server log\n",
                )
                    .into_response()
            }
            e => {
                // Terraform shows only the status code ("HTTP error: 409"); the reason goes to
                // the log too, so an operator can tell the user why.
                tracing::info!(status = status.as_u16(), reason = %e, "request refused");
                (status, format!("{e}\n")).into_response()
            }
        }
    }
}

trait WithStatus {
    fn into_response_with(self, status: StatusCode) -> Response;
}

impl<T: IntoResponse> WithStatus for T {
    fn into_response_with(self, status: StatusCode) -> Response {
        (status, self).into_response()
    }
}
