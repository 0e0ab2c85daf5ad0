//! Signing in and out, the first run's password setup, and the theme choice.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use statehouse_core::Error;
use statehouse_core::accounts::SessionSecret;
use statehouse_core::service::LoggedIn;

use super::links::safe_local_path;
use super::page::{Chrome, NoFields, PublicForm, THEME_COOKIE, Theme, UiError, UiForm, render};
use crate::AppState;
use crate::auth::{ClientIp, session_cookie, session_cookie_header};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    name: String,
    error: String,
    notice: String,
    /// The session cookie is `Secure`: the page warns when the browser is not in a secure
    /// context (plain HTTP to a non-local host), where it would drop the cookie.
    secure_cookie: bool,
    /// "Sign in with <label>" (single sign-on); empty when it is not configured.
    sso_label: String,
    /// `/ui/oidc/start?next=…`
    sso_href: String,
    /// The password form is shown (`oidc.local_login`).
    password_login: bool,
}

impl LoginPage {
    fn new(app: &AppState, theme: Theme, uri: &Uri, next: String) -> LoginPage {
        let sso_label = app
            .oidc
            .as_ref()
            .map(|o| o.settings.button_label.clone())
            .unwrap_or_default();
        LoginPage {
            chrome: Chrome::public(theme, "Sign in", uri),
            sso_href: super::links::oidc_start(&next),
            next,
            name: String::new(),
            error: String::new(),
            notice: String::new(),
            secure_cookie: app.services.auth_settings().cookie_secure,
            sso_label,
            password_login: app.services.auth_settings().password_login,
        }
    }
}

/// The sign-in page showing a refusal (a failed single sign-on) with `status`.
pub(super) fn refused_sign_in(
    app: &AppState,
    theme: Theme,
    uri: &Uri,
    next: &str,
    e: Error,
) -> Response {
    let status = crate::wire::status_of(&e);
    let mut page = LoginPage::new(app, theme, uri, next_or_home(Some(next)));
    page.error = refusal_text(e);
    render(status, &page)
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

/// `GET /ui/login`: the sign-in form (a signed-in browser goes on to where it was headed).
pub async fn login_page(
    State(app): State<Arc<AppState>>,
    Query(q): Query<LoginQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let next = next_or_home(q.next.as_deref());
    if let Some(cookie) = session_cookie(&headers)
        && app
            .services
            .authenticate_session(&SessionSecret::from_cookie(&cookie))
            .await
            .is_ok()
    {
        return Redirect::to(&next).into_response();
    }
    let mut page = LoginPage::new(&app, Theme::of(&headers), &uri, next);
    if q.signed_out.is_some() {
        page.notice = "You are signed out.".into();
    }
    render(StatusCode::OK, &page)
}

/// A password login. (No `Debug`: it carries the password.)
#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// `POST /ui/login`: checks the password through the same service (limits and audit) as
/// `POST /api/v1/auth/login`, then sets the same session cookie.
pub async fn login(
    State(app): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    uri: Uri,
    PublicForm(form, theme): PublicForm<LoginForm>,
) -> Response {
    let next = next_or_home(Some(&form.next));
    match app
        .services
        .login(&form.name, &form.password, ip.as_deref())
        .await
    {
        Ok(logged_in) => {
            tracing::info!(user = logged_in.user.name, source_ip = ip, "logged in (UI)");
            signed_in(&app, &logged_in, &next)
        }
        Err(e) => {
            let status = crate::wire::status_of(&e);
            let retry_after = crate::wire::retry_after_of(&e);
            let mut page = LoginPage::new(&app, theme, &uri, next);
            page.name = form.name;
            page.error = refusal_text(e);
            let mut response = render(status, &page);
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
    }
}

/// The message a sign-in page shows for a refusal (never internals).
fn refusal_text(e: Error) -> String {
    match e {
        Error::Store(_) | Error::Internal(_) => {
            tracing::error!(error = %e, "sign-in failed");
            "statehouse could not complete the sign-in; see the server log".into()
        }
        other => other.to_string(),
    }
}

/// The session cookie of a new login, and on to `next`.
pub(super) fn signed_in(app: &AppState, logged_in: &LoggedIn, next: &str) -> Response {
    match new_session_cookie(app, logged_in) {
        Ok(cookie) => {
            let mut response = Redirect::to(next).into_response();
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Err(e) => UiError::new(e, Theme::System).into_response(),
    }
}

/// `Set-Cookie` for the session of a new login.
pub(super) fn new_session_cookie(
    app: &AppState,
    logged_in: &LoggedIn,
) -> Result<HeaderValue, Error> {
    let settings = app.services.auth_settings();
    let max_age = (logged_in.session.expires_at.millis() - app.services.now().millis()) / 1_000;
    session_cookie_header(
        Some(logged_in.secret.expose()),
        max_age,
        settings.cookie_secure,
    )
    .ok_or_else(|| Error::Internal("session cookie is not a valid header".into()))
}

/// `POST /ui/logout`: ends the session (CSRF-checked like every form) and removes the cookie.
pub async fn logout(
    State(app): State<Arc<AppState>>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    app.services
        .logout(&viewer.session)
        .await
        .map_err(|e| UiError::new(e, viewer.theme))?;
    let mut response = Redirect::to("/ui/login?signed_out=1").into_response();
    if let Some(clear) = session_cookie_header(None, 0, app.services.auth_settings().cookie_secure)
    {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    Ok(response)
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    chrome: Chrome,
    error: String,
}

/// `GET /ui/setup`: the first run's form (token and a new password).
pub async fn setup_page(headers: HeaderMap, uri: Uri) -> Response {
    let page = SetupPage {
        chrome: Chrome::public(Theme::of(&headers), "Set your password", &uri),
        error: String::new(),
    };
    render(StatusCode::OK, &page)
}

/// First-run setup. (No `Debug`: it carries a token and a password.)
#[derive(Deserialize)]
pub struct SetupForm {
    token: String,
    password: String,
    confirm: String,
}

/// `POST /ui/setup`: sets the first password of the token's user and signs in.
pub async fn setup(
    State(app): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    uri: Uri,
    PublicForm(form, theme): PublicForm<SetupForm>,
) -> Response {
    let result = if form.password != form.confirm {
        Err(Error::BadRequest(
            "the two passwords differ: type the same password twice".into(),
        ))
    } else {
        app.services
            .set_first_password(&form.token, &form.password, ip.as_deref())
            .await
    };
    match result {
        Ok(logged_in) => {
            tracing::info!(user = logged_in.user.name, "first password set (UI)");
            signed_in(&app, &logged_in, "/")
        }
        Err(e) => {
            let status = crate::wire::status_of(&e);
            let page = SetupPage {
                chrome: Chrome::public(theme, "Set your password", &uri),
                error: refusal_text(e),
            };
            render(status, &page)
        }
    }
}

#[derive(Deserialize)]
pub struct ThemeForm {
    theme: String,
    #[serde(default)]
    back: String,
}

/// `POST /ui/theme`: remembers the theme in a cookie (a year), and back to the page.
pub async fn choose_theme(PublicForm(form, _): PublicForm<ThemeForm>) -> Response {
    let theme = Theme::parse(&form.theme);
    let cookie = match theme {
        Theme::System => format!("{THEME_COOKIE}=; Path=/; Max-Age=0; SameSite=Lax"),
        other => format!(
            "{THEME_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
            other.as_str()
        ),
    };
    let back = next_or_home(Some(&form.back));
    let mut response = Redirect::to(&back).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Where to go after signing in: a local path, else the overview.
pub(super) fn next_or_home(next: Option<&str>) -> String {
    next.and_then(safe_local_path)
        .filter(|p| {
            !p.starts_with("/ui/login") && !p.starts_with("/ui/setup") && !p.starts_with("/ui/oidc")
        })
        .unwrap_or("/")
        .to_owned()
}
