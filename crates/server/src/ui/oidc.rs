//! Single sign-on (OpenID Connect, authorization code with PKCE): the start sends the browser
//! to the provider, the callback signs the user in through the same service path as a password
//! login (session, audit), with roles from its groups.
//!
//! What the sign-in must remember between the two (`state`, `nonce`, the PKCE verifier, where
//! to go next) travels in a cookie sealed with a key derived from the master key: nothing is
//! kept on the server, so any replica can take the callback. The cookie lives 10 minutes, is
//! HttpOnly and `SameSite=Lax` (the provider's redirect back is a cross-site navigation, which
//! would not carry a `Strict` cookie), and only for `/ui/oidc`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use statehouse_core::Error;
use statehouse_core::accounts::constant_time_eq;

use super::page::{Chrome, Theme, UiError, render};
use super::sign_in::{new_session_cookie, next_or_home, refused_sign_in};
use crate::AppState;
use crate::auth::ClientIp;
use crate::oidc::{OidcLogin, PendingSignIn};

const COOKIE: &str = "statehouse_oidc";
/// The sealed cookie's purpose (its key is derived from the master key for it).
const COOKIE_PURPOSE: &str = "oidc-sign-in-cookie";
/// A sign-in must come back from the provider within this long.
const SIGN_IN_MILLIS: i64 = 10 * 60_000;

#[derive(Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

fn configured(app: &AppState, theme: Theme) -> Result<Arc<OidcLogin>, UiError> {
    app.oidc.clone().ok_or_else(|| {
        UiError::new(
            Error::NotFound("single sign-on is not configured on this server".into()),
            theme,
        )
    })
}

/// `GET /ui/oidc/start?next=`: to the provider's sign-in, with a fresh `state`, `nonce` and
/// PKCE challenge remembered in the sealed cookie.
pub async fn start(
    State(app): State<Arc<AppState>>,
    Query(q): Query<StartQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, UiError> {
    let theme = Theme::of(&headers);
    let oidc = configured(&app, theme)?;
    let next = next_or_home(q.next.as_deref());
    let (url, pending) = match oidc.start(&next).await {
        Ok(started) => started,
        Err(e) => return Ok(refused_sign_in(&app, theme, &uri, &next, e)),
    };
    let sealed = serde_json::to_vec(&pending)
        .map_err(|e| Error::Internal(format!("sign-in cookie: {e}")))
        .and_then(|json| app.services.cipher.seal_text(COOKIE_PURPOSE, &json))
        .map_err(|e| UiError::new(e, theme))?;
    let mut response = Redirect::to(&url).into_response();
    let secure = app.services.auth_settings().cookie_secure;
    if let Some(cookie) = cookie_header(Some(&sealed), secure) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// The provider that answers (RFC 9207), when it says.
    iss: Option<String>,
}

#[derive(Template)]
#[template(path = "oidc_done.html")]
struct DonePage {
    chrome: Chrome,
    next: String,
}

/// `GET /ui/oidc/callback`: the provider's answer. Checks `state` against the cookie, then
/// exchanges the code, verifies the ID token and signs the user in. The answer is a page that
/// moves on by itself (a meta refresh): the session cookie is `SameSite=Strict`, and a
/// browser would not send it on a redirect chain that began on the provider's site.
pub async fn callback(
    State(app): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Query(q): Query<CallbackQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, UiError> {
    let theme = Theme::of(&headers);
    let oidc = configured(&app, theme)?;
    let pending = pending_of(&app, &headers);
    let next = pending
        .as_ref()
        .map(|p| p.next.clone())
        .unwrap_or_else(|| "/".to_owned());
    let result = sign_in(&app, &oidc, pending, q, ip.as_deref()).await;
    let secure = app.services.auth_settings().cookie_secure;
    let mut response = match result {
        Ok(logged_in) => {
            tracing::info!(
                user = logged_in.user.name,
                source_ip = ip,
                "logged in (single sign-on)"
            );
            let done = DonePage {
                chrome: Chrome::public(theme, "Signed in", &uri),
                next: next_or_home(Some(&next)),
            };
            let cookie =
                new_session_cookie(&app, &logged_in).map_err(|e| UiError::new(e, theme))?;
            let mut response = render(StatusCode::OK, &done);
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(e) => refused_sign_in(&app, theme, &uri, &next, e),
    };
    if let Some(clear) = cookie_header(None, secure) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    Ok(response)
}

async fn sign_in(
    app: &AppState,
    oidc: &OidcLogin,
    pending: Option<PendingSignIn>,
    q: CallbackQuery,
    ip: Option<&str>,
) -> Result<statehouse_core::service::LoggedIn, Error> {
    if let Some(error) = q.error {
        let detail = q
            .error_description
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return Err(Error::Unauthorized(format!(
            "the identity provider did not sign you in ({error}{detail})"
        )));
    }
    let pending = pending.ok_or_else(|| {
        Error::BadRequest(
            "this sign-in was not started in this browser, or took longer than 10 minutes: \
             start again"
                .into(),
        )
    })?;
    let state_matches = q
        .state
        .as_deref()
        .is_some_and(|s| constant_time_eq(s, &pending.state));
    if !state_matches {
        return Err(Error::BadRequest(
            "the identity provider's answer does not belong to this browser's sign-in (its \
             state differs): start again"
                .into(),
        ));
    }
    if let Some(iss) = q.iss.as_deref()
        && iss.trim_end_matches('/') != oidc.settings.issuer_url.trim_end_matches('/')
    {
        return Err(Error::BadRequest(
            "the answer names another identity provider than the configured one (iss differs)"
                .into(),
        ));
    }
    let code = q
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::BadRequest("the identity provider sent no code".into()))?;
    let identity = oidc.finish(&code, &pending).await?;
    app.services
        .sso_login(&identity, &oidc.settings.mapping, ip)
        .await
}

/// The sign-in this browser started, if its cookie opens and is less than 10 minutes old.
fn pending_of(app: &AppState, headers: &HeaderMap) -> Option<PendingSignIn> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_owned())?;
    let json = app.services.cipher.open_text(COOKIE_PURPOSE, &value).ok()?;
    let pending: PendingSignIn = serde_json::from_slice(&json).ok()?;
    let age = app.services.now().millis() - pending.started_at;
    (0..SIGN_IN_MILLIS).contains(&age).then_some(pending)
}

/// `Set-Cookie` for the sign-in cookie, or with `None` one that removes it.
fn cookie_header(value: Option<&str>, secure: bool) -> Option<HeaderValue> {
    let (value, max_age) = match value {
        Some(v) => (v, SIGN_IN_MILLIS / 1000),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/ui/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .ok()
}
