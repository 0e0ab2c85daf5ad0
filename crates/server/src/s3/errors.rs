//! Domain errors as S3 error answers, mapped in one place. A service error whose message
//! starts with an S3 error code and a colon (`InvalidPart: …`) names its code; everything else
//! maps by its kind.

use s3s::{S3Error, S3ErrorCode};
use statehouse_core::Error;

/// Codes a service message may name (anything else is not trusted as a code).
const NAMED_CODES: [&str; 6] = [
    "InvalidPart",
    "InvalidPartOrder",
    "EntityTooSmall",
    "InvalidRequest",
    "NoSuchUpload",
    "NoSuchKey",
];

fn named(message: &str) -> Option<(S3ErrorCode, String)> {
    let (code, rest) = message.split_once(": ")?;
    NAMED_CODES
        .contains(&code)
        .then(|| S3ErrorCode::from_bytes(code.as_bytes()))
        .flatten()
        .map(|c| (c, rest.to_owned()))
}

/// The S3 answer to a domain error.
pub fn s3_error(e: Error) -> S3Error {
    let (code, message) = match &e {
        Error::BadRequest(m) => named(m).unwrap_or((S3ErrorCode::InvalidArgument, m.clone())),
        Error::NotFound(m) => named(m).unwrap_or((S3ErrorCode::NoSuchBucket, m.clone())),
        Error::Unauthorized(m) => (S3ErrorCode::InvalidAccessKeyId, m.clone()),
        Error::Forbidden(m) => (S3ErrorCode::AccessDenied, m.clone()),
        Error::Conflict(m) => (S3ErrorCode::OperationAborted, m.clone()),
        Error::Locked { holder_info } => (
            S3ErrorCode::PreconditionFailed,
            format!("the stack is locked by another client; its lock: {holder_info}"),
        ),
        Error::TooLarge(m) => (S3ErrorCode::EntityTooLarge, m.clone()),
        Error::TooManyRequests { message, .. } => (S3ErrorCode::SlowDown, message.clone()),
        Error::Unavailable(m) => (S3ErrorCode::ServiceUnavailable, m.clone()),
        // As on the other listeners: a store failure is a 503, which S3 clients retry.
        Error::Store(s) => {
            tracing::warn!(error = %s, "S3 request failed in the store");
            (
                S3ErrorCode::ServiceUnavailable,
                "the database is unavailable; retry".to_owned(),
            )
        }
        Error::Internal(_) | Error::Config(_) => {
            tracing::error!(error = %e, "S3 request failed");
            (
                S3ErrorCode::InternalError,
                "internal error; the server log has the details".to_owned(),
            )
        }
    };
    let mut error = S3Error::with_message(code.clone(), message);
    if code == S3ErrorCode::OperationAborted {
        error.set_status_code(http::StatusCode::CONFLICT);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_codes_and_kinds() {
        let e = s3_error(Error::BadRequest(
            "InvalidPart: part 2 was not uploaded".into(),
        ));
        assert_eq!(e.code(), &S3ErrorCode::InvalidPart);
        assert_eq!(e.message(), Some("part 2 was not uploaded"));
        let e = s3_error(Error::NotFound("NoSuchKey: no object".into()));
        assert_eq!(e.code(), &S3ErrorCode::NoSuchKey);
        let e = s3_error(Error::NotFound("workspace \"x\" does not exist".into()));
        assert_eq!(e.code(), &S3ErrorCode::NoSuchBucket);
        let e = s3_error(Error::BadRequest("Whatever: not a code we name".into()));
        assert_eq!(e.code(), &S3ErrorCode::InvalidArgument);
        let e = s3_error(Error::Forbidden("viewer".into()));
        assert_eq!(e.code(), &S3ErrorCode::AccessDenied);
    }
}
