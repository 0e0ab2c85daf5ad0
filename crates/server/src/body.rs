//! Reading request bodies with a size cap, into one allocation when the length is announced.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use http_body_util::BodyExt;
use statehouse_core::{Error, Result};

pub async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>> {
    let too_large = || {
        Error::TooLarge(format!(
            "body is larger than the configured maximum of {limit} bytes (STATEHOUSE_MAX_STATE_BYTES)"
        ))
    };
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(announced.unwrap_or(0));
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Error::BadRequest(format!("could not read request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(too_large());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}
