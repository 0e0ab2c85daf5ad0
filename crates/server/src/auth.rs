//! Credentials: HTTP basic auth with the token as password (Terraform's `username`/`password`,
//! `TF_HTTP_PASSWORD`), or `Authorization: Bearer <token>` (OpenTofu `headers`). The REST API
//! also accepts a browser session (the `statehouse_session` cookie), with CSRF protection.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, header};
use base64::Engine;
use statehouse_core::access::Principal;
use statehouse_core::accounts::{Session, SessionSecret, constant_time_eq};
use statehouse_core::{Error, Result};

use crate::AppState;
use crate::forwarded::ClientOrigin;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "statehouse_session";
/// The header a cookie-authenticated request with an unsafe method must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The principal of a token (basic or bearer); what the http backend accepts (never cookies).
/// It carries the client's address, which also goes into the audit log when the token is
/// refused.
pub async fn principal(
    state: &AppState,
    headers: &HeaderMap,
    source_ip: Option<String>,
) -> Result<Principal> {
    let secret = presented_secret(headers)?;
    state.services.authenticate_from(&secret, source_ip).await
}

/// The principal of an API request: a token when an `Authorization` header is present, else
/// the session cookie. A cookie-authenticated request with an unsafe method must carry the
/// session's CSRF token in `X-CSRF-Token` (a page of another site can make the browser send
/// the cookie, but cannot read the token).
pub async fn api_principal(state: &AppState, parts: &Parts) -> Result<Principal> {
    api_caller(state, parts)
        .await
        .map(|(principal, _)| principal)
}

/// [`api_principal`] with the session it came through (`None` for a token).
pub async fn api_caller(state: &AppState, parts: &Parts) -> Result<(Principal, Option<Session>)> {
    let headers = &parts.headers;
    let source_ip = client_ip(&parts.extensions);
    match session_cookie(headers) {
        Some(cookie) if !headers.contains_key(header::AUTHORIZATION) => {
            let secret = SessionSecret::from_cookie(&cookie);
            let (mut principal, session) = state.services.authenticate_session(&secret).await?;
            if !is_safe(&parts.method) && !carries_csrf_token(headers, &secret) {
                return Err(Error::Forbidden(
                    "missing or wrong X-CSRF-Token header: a request authenticated by the session cookie \
                     must carry the csrf_token the login (or GET /api/v1/auth/me) returned"
                        .into(),
                ));
            }
            principal.source_ip = source_ip;
            Ok((principal, Some(session)))
        }
        _ => Ok((principal(state, headers, source_ip).await?, None)),
    }
}

/// Whether the request's `X-CSRF-Token` is the one of this session (compared in constant time).
pub fn carries_csrf_token(headers: &HeaderMap, secret: &SessionSecret) -> bool {
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    constant_time_eq(presented, &secret.csrf_token())
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The client's address: the connection's peer, or what a trusted proxy forwarded
/// ([`crate::forwarded`]).
pub fn client_ip(extensions: &Extensions) -> Option<String> {
    match extensions.get::<ClientOrigin>() {
        Some(origin) => Some(origin.ip.to_string()),
        None => extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string()),
    }
}

/// The client spoke HTTPS: to a TLS listener, or to a trusted proxy that says so.
pub fn client_https(extensions: &Extensions) -> bool {
    extensions.get::<ClientOrigin>().is_some_and(|o| o.https)
}

/// Extracts the client's address, if the server was started with connection info.
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(&parts.extensions)))
    }
}

/// Extracts whether the client spoke HTTPS ([`client_https`]).
pub struct ClientHttps(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for ClientHttps {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientHttps(client_https(&parts.extensions)))
    }
}

/// The value of the session cookie, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// `Set-Cookie` for a new session (`max_age_secs`), or with `None` one that removes it.
pub fn session_cookie_header(
    value: Option<&str>,
    max_age_secs: i64,
    secure: bool,
) -> Option<HeaderValue> {
    let (value, max_age) = match value {
        Some(v) => (v, max_age_secs.max(0)),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .ok()
}

fn presented_secret(headers: &HeaderMap) -> Result<String> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Error::Unauthorized(
            "no credentials: send the token as the basic-auth password (Terraform: username = any, password = token) \
             or as `Authorization: Bearer <token>`"
                .into(),
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| Error::Unauthorized("Authorization header is not ASCII".into()))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .ok_or_else(|| Error::Unauthorized("malformed basic credentials".into()))?;
        let (_, password) = decoded.split_once(':').unwrap_or(("", decoded.as_str()));
        if password.is_empty() {
            return Err(Error::Unauthorized(
                "basic credentials carry no password: put the token there".into(),
            ));
        }
        return Ok(password.to_owned());
    }
    Err(Error::Unauthorized(
        "unsupported Authorization scheme: use Basic or Bearer".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn reads_bearer_and_basic() {
        assert_eq!(
            presented_secret(&with("Bearer sht_abc")).ok().as_deref(),
            Some("sht_abc")
        );
        assert_eq!(
            presented_secret(&with("bearer  sht_abc ")).ok().as_deref(),
            Some("sht_abc")
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("terraform:sht_xyz");
        assert_eq!(
            presented_secret(&with(&format!("Basic {basic}")))
                .ok()
                .as_deref(),
            Some("sht_xyz")
        );
    }

    #[test]
    fn reads_the_session_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; statehouse_session=shs_abc; x=y"),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("shs_abc"));
        let mut empty = HeaderMap::new();
        empty.insert(
            header::COOKIE,
            HeaderValue::from_static("statehouse_session="),
        );
        assert_eq!(session_cookie(&empty), None);
        assert_eq!(session_cookie(&HeaderMap::new()), None);
        let set = session_cookie_header(Some("shs_abc"), 60, true)
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        assert_eq!(
            set,
            "statehouse_session=shs_abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        let clear = session_cookie_header(None, 60, false)
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        assert_eq!(
            clear,
            "statehouse_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }

    #[test]
    fn refuses_the_rest() {
        for bad in ["", "Bearer", "Basic !!!", "Digest abc", "Basic dXNlcjo="] {
            assert!(
                matches!(presented_secret(&with(bad)), Err(Error::Unauthorized(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            presented_secret(&HeaderMap::new()),
            Err(Error::Unauthorized(_))
        ));
    }
}
