//! Credentials: HTTP basic auth with the token as password (Terraform's `username`/`password`,
//! `TF_HTTP_PASSWORD`), or `Authorization: Bearer <token>` (OpenTofu `headers`).

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap, header};
use base64::Engine;
use statehouse_core::access::Principal;
use statehouse_core::{Error, Result};

use crate::AppState;

/// The caller's principal, with the client's address (audited, also for refused tokens).
pub async fn principal(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Result<Principal> {
    let secret = presented_secret(headers)?;
    state
        .services
        .authenticate_from(&secret, source_ip(extensions))
        .await
}

/// The client's address, when the server was started with connection info.
pub fn source_ip(extensions: &Extensions) -> Option<String> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
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
