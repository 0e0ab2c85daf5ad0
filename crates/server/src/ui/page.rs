//! What every page shares: the signed-in viewer (session cookie), forms checked against the
//! session's CSRF token, the page chrome (navigation, theme, user), and errors as HTML pages.
//!
//! The UI authenticates exactly as the REST API does for a browser: the `statehouse_session`
//! cookie, and for every unsafe request the session's CSRF token — here as the hidden form
//! field `csrf_token` (pages work without JavaScript, so it cannot be a header).

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use statehouse_core::Error;
use statehouse_core::access::{Grants, Principal, Role};
use statehouse_core::accounts::{SessionSecret, constant_time_eq};

use super::assets;
use super::links::{query_escape, safe_local_path};
use crate::AppState;
use crate::auth::{client_ip, session_cookie};

/// The theme cookie: `light` or `dark`; absent follows the system setting.
pub const THEME_COOKIE: &str = "statehouse_theme";

/// Bodies of UI forms are small; anything larger is refused before parsing.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The person signed in through the session cookie.
pub struct Viewer {
    pub who: Principal,
    /// The session's CSRF token, put into every form as `csrf_token`.
    pub csrf: String,
    pub theme: Theme,
    /// The cookie's secret (to end the session).
    pub session: SessionSecret,
}

impl Viewer {
    pub fn name(&self) -> &str {
        self.who
            .user
            .as_ref()
            .map(|u| u.name.as_str())
            .unwrap_or(&self.who.token_name)
    }

    /// Instance admins read the whole audit log, workspace admins their workspaces' part.
    pub fn reads_audit(&self) -> bool {
        match &self.who.grants {
            Grants::Everywhere(role) => *role >= Role::Admin,
            Grants::Workspaces(roles) => roles.values().any(|r| *r >= Role::Admin),
        }
    }

    /// Whether the viewer holds at least `role` in the workspace (by id).
    pub fn can(&self, workspace_id: &str, role: Role) -> bool {
        self.who.role_in(workspace_id).is_some_and(|r| r >= role)
    }
}

impl FromRequestParts<Arc<AppState>> for Viewer {
    type Rejection = UiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let theme = Theme::of(&parts.headers);
        let Some(cookie) = session_cookie(&parts.headers) else {
            return Err(UiError::sign_in(&parts.uri));
        };
        let secret = SessionSecret::from_cookie(&cookie);
        let (mut who, _) = match state.services.authenticate_session(&secret).await {
            Ok(found) => found,
            Err(Error::Unauthorized(_)) => return Err(UiError::sign_in(&parts.uri)),
            Err(e) => return Err(UiError::new(e, theme)),
        };
        who.source_ip = client_ip(&parts.extensions);
        Ok(Viewer {
            who,
            csrf: secret.csrf_token(),
            theme,
            session: secret,
        })
    }
}

/// A form posted by a signed-in viewer, with the session's CSRF token checked before anything
/// else is read. Fields are decoded into `T`; unknown or malformed fields are a 400 page.
pub struct UiForm<T>(pub Viewer, pub T);

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf_token: String,
}

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for UiForm<T> {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let theme = viewer.theme;
        let fields = read_form_body(Request::from_parts(parts, body), theme).await?;
        let presented: CsrfField = serde_urlencoded::from_bytes(&fields).unwrap_or(CsrfField {
            csrf_token: String::new(),
        });
        if !constant_time_eq(&presented.csrf_token, &viewer.csrf) {
            return Err(UiError::new(
                Error::Forbidden(
                    "this form was not sent from a statehouse page of your session (missing or \
                     wrong CSRF token): reload the page and try again"
                        .into(),
                ),
                theme,
            ));
        }
        let value = parse_form(&fields, theme)?;
        Ok(UiForm(viewer, value))
    }
}

/// A form with no fields of its own (only the CSRF token).
#[derive(Deserialize)]
pub struct NoFields {}

/// A form posted without a session (sign in, first-run setup).
pub struct PublicForm<T>(pub T, pub Theme);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for PublicForm<T> {
    type Rejection = UiError;

    async fn from_request(req: Request, _: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let theme = Theme::of(req.headers());
        if is_cross_site(req.headers()) {
            // Without a session there is no CSRF token; a form another site posts (a login into
            // the attacker's account, say) is told apart by what the browser says of its origin.
            return Err(UiError::new(
                Error::Forbidden("this form was posted from another site".into()),
                theme,
            ));
        }
        let fields = read_form_body(req, theme).await?;
        Ok(PublicForm(parse_form(&fields, theme)?, theme))
    }
}

/// Whether the browser says the request comes from another site: `Sec-Fetch-Site:
/// cross-site`, or an `Origin` whose host is not the `Host` asked for.
fn is_cross_site(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    if text(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return true;
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            !origin_host.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}

async fn read_form_body(req: Request, theme: Theme) -> Result<Bytes, UiError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(UiError::new(
            Error::BadRequest("send the page's form (application/x-www-form-urlencoded)".into()),
            theme,
        ));
    }
    axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            UiError::new(
                Error::TooLarge(format!(
                    "a form may send at most {MAX_FORM_BYTES} bytes (or the upload broke off)"
                )),
                theme,
            )
        })
}

fn parse_form<T: DeserializeOwned>(fields: &[u8], theme: Theme) -> Result<T, UiError> {
    serde_urlencoded::from_bytes(fields).map_err(|e| {
        UiError::new(
            Error::BadRequest(format!("the form's fields are not as expected: {e}")),
            theme,
        )
    })
}

/// Light, dark, or the system's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Theme {
    System,
    Light,
    Dark,
}

impl Theme {
    pub fn of(headers: &HeaderMap) -> Theme {
        let value = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == THEME_COOKIE)
            .map(|(_, value)| value);
        Theme::parse(value.unwrap_or(""))
    }

    pub fn parse(value: &str) -> Theme {
        match value {
            "light" => Theme::Light,
            "dark" => Theme::Dark,
            _ => Theme::System,
        }
    }

    /// The value of `<html data-theme>` (`system` lets the CSS follow the OS setting).
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::System => "system",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }
}

/// A navigation entry of the page header.
pub struct NavItem {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

/// What the layout needs on every page.
pub struct Chrome {
    pub title: String,
    pub theme: &'static str,
    pub css: &'static str,
    pub js: &'static str,
    /// Empty on the sign-in pages.
    pub user: String,
    pub csrf: String,
    pub nav: Vec<NavItem>,
    /// Where the theme form sends the browser back to.
    pub here: String,
}

/// The sections of the UI, in the header's order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    States,
    Search,
    Backups,
    /// Users, tokens, workspaces and their members and webhooks.
    Access,
    Audit,
}

impl Chrome {
    pub fn signed_in(viewer: &Viewer, title: impl Into<String>, here: &Uri, at: Section) -> Chrome {
        let mut nav = vec![
            NavItem {
                label: "Overview",
                href: "/".into(),
                current: at == Section::Overview,
            },
            NavItem {
                label: "States",
                href: "/ui/states".into(),
                current: at == Section::States,
            },
            NavItem {
                label: "Search",
                href: "/ui/search".into(),
                current: at == Section::Search,
            },
            NavItem {
                label: "Backups",
                href: "/ui/backups".into(),
                current: at == Section::Backups,
            },
            NavItem {
                label: "Access",
                href: "/ui/users".into(),
                current: at == Section::Access,
            },
        ];
        if viewer.reads_audit() {
            nav.push(NavItem {
                label: "Audit",
                href: "/ui/audit".into(),
                current: at == Section::Audit,
            });
        }
        Chrome {
            title: title.into(),
            theme: viewer.theme.as_str(),
            css: assets::CSS.path.as_str(),
            js: assets::JS.path.as_str(),
            user: viewer.name().to_owned(),
            csrf: viewer.csrf.clone(),
            nav,
            here: here_of(here),
        }
    }

    pub fn public(theme: Theme, title: impl Into<String>, here: &Uri) -> Chrome {
        Chrome {
            title: title.into(),
            theme: theme.as_str(),
            css: assets::CSS.path.as_str(),
            js: assets::JS.path.as_str(),
            user: String::new(),
            csrf: String::new(),
            nav: Vec::new(),
            here: here_of(here),
        }
    }
}

fn here_of(uri: &Uri) -> String {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    safe_local_path(path).unwrap_or("/").to_owned()
}

/// Renders a template into a response with `status`.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a UI template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "statehouse could not render this page; see the server log",
            )
                .into_response()
        }
    }
}

/// A page: 200 with the rendered template.
pub fn page(template: &impl Template) -> Result<Response, UiError> {
    Ok(render(StatusCode::OK, template))
}

/// A service's refusal of a form, shown above the form again (with the refusal's 4xx status)
/// so the user can correct what was typed. Only bad input and conflicts are shown this way;
/// every other error (no permission, nothing there, the store down) is the error page.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    pub fn of(error: Error, viewer: &Viewer) -> Result<Refusal, UiError> {
        match error {
            e @ (Error::BadRequest(_) | Error::Conflict(_) | Error::TooLarge(_)) => {
                tracing::info!(reason = %e, "UI form refused");
                Ok(Refusal {
                    status: crate::wire::status_of(&e),
                    message: e.to_string(),
                })
            }
            other => Err(UiError::new(other, viewer.theme)),
        }
    }

    /// A refusal of the page itself (input the services never see, e.g. a number that is
    /// not one).
    pub fn bad_input(message: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

/// After a successful form post: back to a page with a 303 (so a reload does not post again).
pub fn see_other(to: &str) -> Result<Response, UiError> {
    Ok(Redirect::to(to).into_response())
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    reason: &'static str,
    message: String,
}

/// A domain error on its way to a browser: a page saying what went wrong and what to do, or,
/// for a missing session, the sign-in page.
pub struct UiError {
    kind: UiErrorKind,
}

enum UiErrorKind {
    SignIn { next: String },
    Failed { error: Error, theme: Theme },
}

impl UiError {
    pub fn new(error: Error, theme: Theme) -> UiError {
        UiError {
            kind: UiErrorKind::Failed { error, theme },
        }
    }

    fn sign_in(uri: &Uri) -> UiError {
        UiError {
            kind: UiErrorKind::SignIn { next: here_of(uri) },
        }
    }
}

/// Errors of services called by a page of `viewer`.
pub trait OrPage<T> {
    fn or_page(self, viewer: &Viewer) -> Result<T, UiError>;
}

impl<T> OrPage<T> for Result<T, Error> {
    fn or_page(self, viewer: &Viewer) -> Result<T, UiError> {
        self.map_err(|e| UiError::new(e, viewer.theme))
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (error, theme) = match self.kind {
            UiErrorKind::SignIn { next } => {
                let to = if next == "/" {
                    "/ui/login".to_owned()
                } else {
                    format!("/ui/login?next={}", query_escape(&next))
                };
                return Redirect::to(&to).into_response();
            }
            UiErrorKind::Failed { error, theme } => (error, theme),
        };
        let status = crate::wire::status_of(&error);
        let message = match error {
            e @ (Error::Store(_) | Error::Internal(_)) => {
                tracing::error!(error = %e, "UI request failed");
                "statehouse could not complete the request; see the server log".to_owned()
            }
            Error::Locked { .. } => "the state is locked by another client".to_owned(),
            e => {
                tracing::info!(status = status.as_u16(), reason = %e, "UI request refused");
                e.to_string()
            }
        };
        let page = ErrorPage {
            chrome: Chrome::public(theme, "Error", &Uri::from_static("/")),
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error"),
            message,
        };
        render(status, &page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, axum::http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn forms_from_other_sites_are_told_apart() {
        let same = headers(&[
            ("host", "sh.example:8080"),
            ("origin", "https://sh.example:8080"),
        ]);
        assert!(!is_cross_site(&same));
        assert!(!is_cross_site(&headers(&[("host", "sh.example")])));
        for cross in [
            headers(&[("host", "sh.example"), ("origin", "https://evil.example")]),
            headers(&[("host", "sh.example"), ("origin", "null")]),
            headers(&[("host", "sh.example"), ("sec-fetch-site", "cross-site")]),
        ] {
            assert!(is_cross_site(&cross), "{cross:?}");
        }
    }
}
