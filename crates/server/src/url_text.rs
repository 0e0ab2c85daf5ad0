//! URLs whose path parameters (names, ids) or query values hold control characters, and path
//! parameters longer than any name or id, are refused with a 400 naming the parameter before
//! any handler runs: no name or id statehouse knows holds one, PostgreSQL text cannot hold
//! U+0000 at all, an overlong value does not fit PostgreSQL's indexes, and such values should
//! reach neither SQL nor the audit log.

use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use statehouse_core::Error;
use statehouse_core::printable::{escaped, refuse_control};

use crate::api::ApiError;
use crate::wire::WireError;

/// Longer than any name (state names: 512 bytes) or id statehouse keeps.
const MAX_PATH_PARAMETER: usize = 1024;

/// Middleware (as a route layer, so the matched route's parameter names are known).
pub async fn refuse_control_characters(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Err(refusal) = check(&mut parts).await {
        return if parts.uri.path().starts_with("/api/") {
            ApiError(refusal).into_response()
        } else {
            WireError(refusal).into_response()
        };
    }
    next.run(Request::from_parts(parts, body)).await
}

async fn check(parts: &mut Parts) -> Result<(), Error> {
    // Parameters that are not UTF-8 are left to the route's own extractor to refuse.
    if let Ok(params) = RawPathParams::from_request_parts(parts, &()).await {
        for (name, value) in &params {
            let field = format!("URL path parameter {name:?}");
            refuse_control(&field, value)?;
            if value.len() > MAX_PATH_PARAMETER {
                return Err(Error::BadRequest(format!(
                    "{field} is longer than {MAX_PATH_PARAMETER} bytes; no name or id is that long"
                )));
            }
        }
    }
    let Some(query) = parts.uri.query() else {
        return Ok(());
    };
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let field = format!("query parameter {:?}", escaped(&key));
        refuse_control(&field, &key)?;
        refuse_control(&field, &value)?;
    }
    Ok(())
}
