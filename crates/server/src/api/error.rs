//! API errors: `{"error": {"code", "message"}}` with the status the domain error maps to.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use statehouse_core::Error;
use utoipa::ToSchema;

use crate::wire::{retry_after_of, status_of};

/// A domain error on its way to an API client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// The body of every API error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `locked`, `too_large`, `unsupported_media_type`, `too_many_requests`,
    /// `unavailable`, `internal`.
    pub code: &'static str,
    /// What went wrong and what to do, for humans.
    pub message: String,
    /// For `locked`: the current holder's lock info as the client sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub lock: Option<serde_json::Value>,
}

fn code_of(e: &Error) -> &'static str {
    match e {
        Error::BadRequest(_) => "bad_request",
        Error::Unauthorized(_) => "unauthorized",
        Error::Forbidden(_) => "forbidden",
        Error::NotFound(_) => "not_found",
        Error::Conflict(_) => "conflict",
        Error::Locked { .. } => "locked",
        Error::TooLarge(_) => "too_large",
        Error::TooManyRequests { .. } => "too_many_requests",
        Error::Store(_) | Error::Unavailable(_) => "unavailable",
        Error::Config(_) | Error::Internal(_) => "internal",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        let code = code_of(&self.0);
        let retry_after = retry_after_of(&self.0);
        let (message, lock) = match self.0 {
            Error::Locked { holder_info } => {
                let lock = serde_json::from_str(&holder_info).ok();
                ("the state is locked by another client".to_owned(), lock)
            }
            e @ (Error::Store(_) | Error::Internal(_)) => {
                // Details go to the log (with the request id), not to the client.
                tracing::error!(error = %e, "API request failed");
                (
                    "statehouse could not complete the request; see the server log".to_owned(),
                    None,
                )
            }
            Error::Unavailable(message) => {
                tracing::warn!(status = status.as_u16(), reason = %message, "API request failed");
                (message, None)
            }
            e => {
                tracing::info!(status = status.as_u16(), reason = %e, "API request refused");
                (e.to_string(), None)
            }
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code,
                    message,
                    lock,
                },
            }),
        )
            .into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if code == "unauthorized" {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"statehouse\""),
            );
        }
        response
    }
}

/// A request body in a media type the API does not read: `415`.
pub struct UnsupportedMediaType(pub String);

impl IntoResponse for UnsupportedMediaType {
    fn into_response(self) -> Response {
        tracing::info!(status = 415, reason = %self.0, "API request refused");
        let body = ErrorBody {
            error: ErrorDetail {
                code: "unsupported_media_type",
                message: self.0,
                lock: None,
            },
        };
        (axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(body)).into_response()
    }
}

/// Answer for paths under `/api/v1` that do not exist.
pub async fn not_found() -> ApiError {
    ApiError(Error::NotFound(
        "no such API endpoint; the API is described at /api/v1/openapi.json".into(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::http::StatusCode;
    use http_body_util::BodyExt;

    use super::*;

    async fn answer(e: Error) -> (StatusCode, serde_json::Value) {
        let response = ApiError(e).into_response();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn an_unreachable_dependency_is_503_with_its_reason() {
        let reason = "cannot connect to PostgreSQL at db.internal:5432: connection refused by \
                      db.internal:5432 (is PostgreSQL running and listening there?)";
        let (status, body) = answer(Error::Unavailable(reason.into())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "unavailable");
        assert_eq!(body["error"]["message"], reason);
        // statehouse's own failures still say nothing but where to look.
        let (status, body) = answer(Error::Internal("a bug".into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body["error"]["message"],
            "statehouse could not complete the request; see the server log"
        );
    }
}
