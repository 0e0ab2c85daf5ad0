//! `/api/v1/auth`: password login (a session cookie for browsers), logout, and who am I.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use statehouse_core::Error;
use statehouse_core::access::Credential;
use statehouse_core::accounts::SessionSecret;
use utoipa::ToSchema;

use super::extract::{ApiJsonAnyText, SessionCaller};
use super::users::UserView;
use super::{ApiError, ErrorBody};
use crate::AppState;
use crate::auth::{ClientIp, carries_csrf_token, session_cookie, session_cookie_header};

/// A password login. (No `Debug`: the password must never reach a log.)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginView {
    pub user: UserView,
    /// Send it as `X-CSRF-Token` with every POST, PUT, PATCH and DELETE of this session.
    pub csrf_token: String,
    /// The session's absolute end (it also ends after `idle_timeout_seconds` unused).
    pub expires_at: String,
    pub idle_timeout_seconds: i64,
}

/// Logs in with a user name and password: sets the `statehouse_session` cookie (HttpOnly,
/// SameSite=Strict, Secure unless configured otherwise) and returns the CSRF token. Failed
/// logins are limited per account and per client address (then 429 with `Retry-After`).
/// Refused with 403 when password sign-in is turned off (`oidc.local_login = false`).
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    security(()),
    responses((status = 200, body = LoginView,
            headers(("set-cookie" = String, description = "the session cookie"))),
        (status = 401, body = ErrorBody, description = "wrong user name or password"),
        (status = 429, body = ErrorBody, description = "too many failed logins; see Retry-After")))]
pub async fn login(
    State(app): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    ApiJsonAnyText(body): ApiJsonAnyText<LoginRequest>,
) -> Result<Response, ApiError> {
    let logged_in = app
        .services
        .login(&body.name, &body.password, ip.as_deref())
        .await?;
    tracing::info!(user = logged_in.user.name, source_ip = ip, "logged in");
    let settings = app.services.auth_settings();
    let max_age = (logged_in.session.expires_at.millis() - app.services.now().millis()) / 1_000;
    let cookie = session_cookie_header(
        Some(logged_in.secret.expose()),
        max_age,
        settings.cookie_secure,
    )
    .ok_or_else(|| Error::Internal("session cookie is not a valid header".into()))?;
    let view = LoginView {
        user: UserView::new(&logged_in.user, None),
        csrf_token: logged_in.csrf_token,
        expires_at: logged_in.session.expires_at.to_rfc3339(),
        idle_timeout_seconds: settings.session_idle_millis / 1_000,
    };
    let mut response = Json(view).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Ends the session of the cookie sent (with its `X-CSRF-Token`) and removes the cookie.
/// Answers 204 also when there was no session.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(()),
    responses((status = 204, headers(("set-cookie" = String, description = "removes the cookie"))),
        (status = 403, body = ErrorBody, description = "missing or wrong X-CSRF-Token")))]
pub async fn logout(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(cookie) = session_cookie(&headers) {
        let secret = SessionSecret::from_cookie(&cookie);
        if !carries_csrf_token(&headers, &secret) {
            return Err(ApiError(Error::Forbidden(
                "missing or wrong X-CSRF-Token header: logging out needs the session's csrf_token"
                    .into(),
            )));
        }
        app.services.logout(&secret).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(clear) = session_cookie_header(None, 0, app.services.auth_settings().cookie_secure)
    {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleInWorkspace {
    pub workspace: String,
    /// `outputs`, `viewer`, `editor` or `admin`.
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    /// The user behind the session or user token; absent for service and instance tokens.
    pub user: Option<UserView>,
    /// `session`, or the token's kind: `user`, `service`, `instance`.
    pub credential: String,
    /// The token's id and name (absent for sessions).
    pub token_id: Option<String>,
    pub token_name: Option<String>,
    /// Manages users, instance tokens and workspaces.
    pub instance_admin: bool,
    /// A user token restricted to a workspace or a role.
    pub narrowed: bool,
    /// Every workspace the caller has a role in.
    pub workspaces: Vec<RoleInWorkspace>,
    /// For a session: the CSRF token to send as `X-CSRF-Token`.
    pub csrf_token: Option<String>,
    /// For a session: its absolute end.
    pub session_expires_at: Option<String>,
}

/// Who the caller is, with its roles (any credential: session, user, service or instance token).
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    responses((status = 200, body = MeView)))]
pub async fn me(
    State(app): State<Arc<AppState>>,
    SessionCaller(who, session): SessionCaller,
    headers: HeaderMap,
) -> Result<Json<MeView>, ApiError> {
    let services = &app.services;
    let user = services.caller_user(&who).await?;
    let workspaces = services
        .list_workspaces(&who)
        .await?
        .into_iter()
        .map(|(ws, role)| RoleInWorkspace {
            workspace: ws.name,
            role: role.to_string(),
        })
        .collect();
    let (credential, token_id, token_name, csrf_token, session_expires_at) = match who.credential {
        Credential::Session => {
            // The session was authenticated with the request; only its CSRF token is derived
            // from the cookie again.
            let secret = session_cookie(&headers).map(|c| SessionSecret::from_cookie(&c));
            (
                "session".to_owned(),
                None,
                None,
                secret.map(|s| s.csrf_token()),
                session.map(|s| s.expires_at.to_rfc3339()),
            )
        }
        Credential::Token(kind) => (
            kind.as_str().to_owned(),
            Some(who.token_id.clone()),
            Some(who.token_name.clone()),
            None,
            None,
        ),
        Credential::Local => ("local".to_owned(), None, None, None, None),
    };
    Ok(Json(MeView {
        user: user.map(|u| UserView::new(&u, None)),
        credential,
        token_id,
        token_name,
        instance_admin: who.instance_admin,
        narrowed: who.narrowed,
        workspaces,
        csrf_token,
        session_expires_at,
    }))
}
