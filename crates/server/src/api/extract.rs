//! Request extractors that answer bad input with API errors: the caller, JSON bodies, query
//! strings, and cursor pagination.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use statehouse_core::Error;
use statehouse_core::access::Principal;
use statehouse_core::accounts::Session;
use statehouse_core::clock::Timestamp;
use statehouse_core::printable::first_control;
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::error::UnsupportedMediaType;
use crate::{AppState, auth};

/// The authenticated principal making the request (token, or session cookie with CSRF
/// protection), with the client's address.
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller(auth::api_principal(state, parts).await?))
    }
}

/// A [`Caller`] with the session it came through (`None` for a token), for routes that
/// describe the session itself.
pub struct SessionCaller(pub Principal, pub Option<Session>);

impl FromRequestParts<Arc<AppState>> for SessionCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let (principal, session) = auth::api_caller(state, parts).await?;
        Ok(SessionCaller(principal, session))
    }
}

/// A JSON body; malformed JSON, wrong fields and strings holding U+0000 are a 400 naming
/// the problem.
///
/// The body is read as JSON when it says so (`application/json`, `…+json`), says nothing, or
/// carries `application/x-www-form-urlencoded` — what `curl -d` sends unless told otherwise,
/// so the README's one-line examples work as typed. Any other declared type is a 415.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        refuse_other_media_types(&req).map_err(IntoResponse::into_response)?;
        let req = super::json_text::refuse_nul_strings(req)
            .await
            .map_err(IntoResponse::into_response)?;
        read_json(req, state).await.map(ApiJson)
    }
}

/// A JSON body whose strings may hold any character, U+0000 included: for a body the service
/// checks itself and never stores as sent (a login, whose refusals count against the client).
pub struct ApiJsonAnyText<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJsonAnyText<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        refuse_other_media_types(&req).map_err(IntoResponse::into_response)?;
        read_json(req, state).await.map(ApiJsonAnyText)
    }
}

/// A 415 when the request declares a media type [`ApiJson`] does not read.
fn refuse_other_media_types(req: &Request) -> Result<(), UnsupportedMediaType> {
    if let Some(declared) = req.headers().get(header::CONTENT_TYPE) {
        let declared = declared.to_str().unwrap_or("(not text)");
        if !is_json_or_curl_default(declared) {
            return Err(UnsupportedMediaType(format!(
                "Content-Type {declared:?} is not accepted: send a JSON body (Content-Type: application/json)"
            )));
        }
    }
    Ok(())
}

async fn read_json<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<T, Response> {
    let body = Bytes::from_request(req, state).await.map_err(|rejection| {
        ApiError(Error::BadRequest(format!(
            "cannot read the request body: {}",
            rejection.body_text()
        )))
        .into_response()
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError(Error::BadRequest(format!("invalid JSON body: {e}"))).into_response())
}

/// Whether a declared media type is one [`ApiJson`] reads as JSON.
fn is_json_or_curl_default(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
        || essence == "application/x-www-form-urlencoded"
}

/// Query parameters; unknown values or wrong types are a 400 naming the problem.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError(Error::BadRequest(format!(
                "invalid query parameters: {}",
                rejection.body_text()
            )))),
        }
    }
}

/// Page size when the client gives none.
pub const DEFAULT_LIMIT: i64 = 100;

/// Cursor pagination: pass `next_cursor` from one page as `cursor` to get the next.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Items per page, 1–1000 (default 100).
    pub limit: Option<i64>,
}

impl PageParams {
    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }

    /// The position the cursor encodes, if any.
    pub fn position(&self) -> Result<Option<String>, ApiError> {
        self.cursor.as_deref().map(decode_cursor).transpose()
    }

    /// The position of a cursor over a numeric key (version, sequence, time), if any.
    pub fn numeric_position(&self) -> Result<Option<i64>, ApiError> {
        numeric_position(self.cursor.as_deref())
    }
}

/// The numeric position `cursor` encodes, if given.
pub fn numeric_position(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|c| {
            decode_cursor(c)?
                .parse::<i64>()
                .map_err(|_| ApiError(Error::BadRequest("invalid cursor".into())))
        })
        .transpose()
}

/// `limit`, or the default page size; outside 1–1000 it is a 400.
pub fn checked_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=1_000).contains(&limit) {
        return Err(Error::BadRequest("limit must be between 1 and 1000".into()).into());
    }
    Ok(limit)
}

/// One page of a listing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when more items follow: pass it as `cursor`.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page of `items` fetched with `limit`; when it is full, the cursor resumes after the
    /// position `key` gives for the last item.
    pub fn of(items: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Self {
        let full = i64::try_from(items.len()).unwrap_or(i64::MAX) >= limit;
        let next_cursor = if full {
            items.last().map(|last| encode_cursor(&key(last)))
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

/// Which way a listing runs through its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

impl<T> Page<T> {
    /// One page of a listing the service returns whole (workspaces, users, tokens, …: short
    /// lists): the items ordered by `key` (unique per item) in `order`, those after the
    /// cursor's position, at most `limit` of them; `next_cursor` only when more follow.
    pub fn select(
        all: Vec<T>,
        params: &PageParams,
        order: Order,
        key: impl Fn(&T) -> String,
    ) -> Result<Self, ApiError> {
        let limit = usize::try_from(checked_limit(params.limit)?).unwrap_or(usize::MAX);
        let after = params.position()?;
        let mut keyed: Vec<(String, T)> = all.into_iter().map(|item| (key(&item), item)).collect();
        keyed.sort_by(|a, b| match order {
            Order::Ascending => a.0.cmp(&b.0),
            Order::Descending => b.0.cmp(&a.0),
        });
        let mut rest = keyed.into_iter().filter(|(k, _)| match (&after, order) {
            (None, _) => true,
            (Some(after), Order::Ascending) => k > after,
            (Some(after), Order::Descending) => k < after,
        });
        let page: Vec<(String, T)> = rest.by_ref().take(limit).collect();
        let next_cursor = match rest.next() {
            Some(_) => page.last().map(|(k, _)| encode_cursor(k)),
            None => None,
        };
        Ok(Page {
            items: page.into_iter().map(|(_, item)| item).collect(),
            next_cursor,
        })
    }
}

/// A listing key that sorts by time, then id (times in milliseconds, zero-padded).
pub fn time_key(at: Timestamp, id: &str) -> String {
    format!("{:020}:{id}", at.0.max(0))
}

pub fn encode_cursor(position: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(position)
}

pub fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        // Positions are names and numbers: a control character means a forged cursor.
        .filter(|position| first_control(position).is_none())
        .ok_or_else(|| {
            ApiError(Error::BadRequest(
                "invalid cursor: pass next_cursor from the previous page unchanged".into(),
            ))
        })
}

/// A settings object of a request body as `T`; a 400 naming `what` when it does not fit.
pub(super) fn parse<T: serde::de::DeserializeOwned>(
    what: &str,
    value: serde_json::Value,
) -> Result<T, ApiError> {
    serde_json::from_value(value)
        .map_err(|e| ApiError(Error::BadRequest(format!("{what} is not valid: {e}"))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let page = Page::of(vec!["a/b", "c d"], 2, |s| s.to_string());
        let cursor = page.next_cursor.clone();
        let params = PageParams {
            cursor,
            limit: Some(2),
        };
        assert_eq!(params.position().ok().flatten().as_deref(), Some("c d"));
        assert!(
            Page::of(vec!["a"], 2, |s| s.to_string())
                .next_cursor
                .is_none()
        );
        for cursor in ["!!!".to_owned(), encode_cursor("a\0b")] {
            let bad = PageParams {
                cursor: Some(cursor),
                limit: None,
            };
            assert!(bad.position().is_err());
        }
    }

    #[test]
    fn json_is_read_from_json_types_none_and_curls_default() {
        for accepted in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
            "application/x-www-form-urlencoded",
        ] {
            assert!(is_json_or_curl_default(accepted), "{accepted}");
        }
        for refused in [
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/xml",
            "",
        ] {
            assert!(!is_json_or_curl_default(refused), "{refused}");
        }
    }

    #[test]
    fn whole_listings_are_paged_in_key_order() {
        let params = |cursor: Option<String>, limit| PageParams {
            cursor,
            limit: Some(limit),
        };
        let all = || vec!["c", "a", "d", "b", "e"];
        let key = |s: &&str| s.to_string();
        let first = Page::select(all(), &params(None, 2), Order::Ascending, key).unwrap();
        assert_eq!(first.items, ["a", "b"]);
        let second =
            Page::select(all(), &params(first.next_cursor, 2), Order::Ascending, key).unwrap();
        assert_eq!(second.items, ["c", "d"]);
        let last =
            Page::select(all(), &params(second.next_cursor, 2), Order::Ascending, key).unwrap();
        assert_eq!(last.items, ["e"]);
        assert!(last.next_cursor.is_none(), "no cursor after the last item");
        let exact = Page::select(all(), &params(None, 5), Order::Ascending, key).unwrap();
        assert!(
            exact.next_cursor.is_none(),
            "a page that ends the listing has no cursor"
        );
        let newest = Page::select(all(), &params(None, 3), Order::Descending, key).unwrap();
        assert_eq!(newest.items, ["e", "d", "c"]);
        let older = Page::select(
            all(),
            &params(newest.next_cursor, 3),
            Order::Descending,
            key,
        )
        .unwrap();
        assert_eq!(older.items, ["b", "a"]);
        assert!(Page::select(all(), &params(None, 0), Order::Ascending, key).is_err());
    }
}
