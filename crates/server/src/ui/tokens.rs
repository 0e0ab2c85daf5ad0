//! `/ui/tokens`: the tokens the viewer may see (its own, the service tokens of workspaces it
//! administers, all for instance admins), creating one — its secret shown once, on the
//! answer to the form — and revoking one after a confirmation. As `/api/v1/tokens`.

use std::str::FromStr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::Error;
use statehouse_core::access::Role;
use statehouse_core::clock::Timestamp;
use statehouse_core::service::{TokenInfo, TokenOwner, TokenRequest};

use super::format::{ago, utc};
use super::links::{query_escape, token_revoke};
use super::listing::{Pager, select};
use super::page::{
    Chrome, OrPage, Refusal, Section, UiError, UiForm, Viewer, page, render, see_other,
};
use super::states::Choice;
use crate::AppState;
use crate::api::{Order, time_key};

const DAY_SECONDS: i64 = 86_400;

pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub user: String,
    pub workspace: String,
    pub role: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    /// `active`, `expired` or `revoked`, as the API says.
    pub status: &'static str,
    pub revoke: String,
}

impl TokenRow {
    pub(super) fn of(t: &TokenInfo, now: Timestamp) -> TokenRow {
        let status = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at.is_some_and(|e| now >= e) {
            "expired"
        } else {
            "active"
        };
        TokenRow {
            id: t.id.clone(),
            name: t.name.clone(),
            kind: t.kind.as_str().to_owned(),
            user: t.user.clone().unwrap_or_default(),
            workspace: t.workspace.clone().unwrap_or_default(),
            role: t.role.to_string(),
            created: utc(t.created_at),
            last_used: t.last_used_at.map_or("never".into(), |at| ago(now, at)),
            expires: t.expires_at.map_or("never".into(), utc),
            status,
            revoke: token_revoke(&t.id),
        }
    }
}

/// What the create form had in it when it comes back with an error.
#[derive(Default)]
pub struct Draft {
    pub name: String,
    pub user: String,
    pub expires_in_days: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    chrome: Chrome,
    access_at: &'static str,
    rows: Vec<TokenRow>,
    pager: Pager,
    filter: Vec<Choice>,
    notice: &'static str,
    error: String,
    kinds: Vec<Choice>,
    workspaces: Vec<Choice>,
    roles: Vec<Choice>,
    is_instance_admin: bool,
    draft: Draft,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only tokens acting in this workspace.
    #[serde(default)]
    workspace: String,
    cursor: Option<String>,
    done: Option<String>,
}

/// `GET /ui/tokens`.
pub async fn list(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    let notice = match q.done.as_deref() {
        Some("revoked") => "The token was revoked: it no longer works.",
        _ => "",
    };
    show(
        &app,
        viewer,
        &uri,
        &q,
        notice,
        None,
        NewTokenForm::default(),
    )
    .await
}

async fn show(
    app: &AppState,
    viewer: Viewer,
    uri: &Uri,
    q: &ListQuery,
    notice: &'static str,
    refusal: Option<Refusal>,
    form: NewTokenForm,
) -> Result<Response, UiError> {
    let services = &app.services;
    let workspace = Some(q.workspace.as_str()).filter(|w| !w.is_empty());
    let tokens = services
        .tokens_visible_to(&viewer.who, workspace)
        .await
        .or_page(&viewer)?;
    let page = select(tokens, q.cursor.as_deref(), Order::Ascending, |t| {
        time_key(t.created_at, &t.id)
    })
    .or_page(&viewer)?;
    let now = services.now();
    let workspaces = services
        .list_workspaces(&viewer.who)
        .await
        .or_page(&viewer)?;
    let admin_somewhere = workspaces.iter().any(|(_, r)| *r == Role::Admin);
    let is_instance_admin = viewer.who.is_instance_admin();
    let mut kinds = vec![("user", "user: acts as you (optionally narrowed)")];
    if admin_somewhere {
        kinds.push(("service", "service: one workspace, fixed role"));
    }
    if is_instance_admin {
        kinds.push(("instance", "instance: its role in every workspace"));
    }
    let choice = |value: &str, label: String, current: &str| Choice {
        selected: value == current,
        value: value.to_owned(),
        label,
    };
    let (status, error) = match refusal {
        Some(r) => (r.status, r.message),
        None => (StatusCode::OK, String::new()),
    };
    let base = format!("/ui/tokens?workspace={}", query_escape(&q.workspace));
    let data = TokensPage {
        chrome: Chrome::signed_in(&viewer, "Tokens", uri, Section::Access),
        access_at: "tokens",
        rows: page.items.iter().map(|t| TokenRow::of(t, now)).collect(),
        pager: Pager::new(&base, q.cursor.as_deref(), page.next_cursor.as_deref()),
        filter: std::iter::once(choice("", "every workspace".into(), &q.workspace))
            .chain(
                workspaces
                    .iter()
                    .map(|(w, _)| choice(&w.name, w.name.clone(), &q.workspace)),
            )
            .collect(),
        notice,
        error,
        kinds: kinds
            .iter()
            .map(|(v, l)| choice(v, (*l).into(), &form.kind))
            .collect(),
        workspaces: std::iter::once(choice("", "— none —".into(), &form.workspace))
            .chain(
                workspaces
                    .iter()
                    .map(|(w, r)| choice(&w.name, format!("{} ({r})", w.name), &form.workspace)),
            )
            .collect(),
        roles: std::iter::once(choice("", "— default —".into(), &form.role))
            .chain(
                Role::ALL
                    .iter()
                    .map(|r| choice(r.as_str(), r.as_str().into(), &form.role)),
            )
            .collect(),
        is_instance_admin,
        draft: Draft {
            name: form.name,
            user: form.user,
            expires_in_days: form.expires_in_days,
        },
    };
    Ok(render(status, &data))
}

/// The API's `NewToken` as form fields; empty means "not given".
#[derive(Debug, Default, Deserialize)]
pub struct NewTokenForm {
    #[serde(default)]
    name: String,
    /// `user`, `service` or `instance`.
    #[serde(default)]
    kind: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    workspace: String,
    #[serde(default)]
    role: String,
    /// Whole days; empty: no expiry.
    #[serde(default)]
    expires_in_days: String,
}

#[derive(Template)]
#[template(path = "secret_once.html")]
pub struct SecretPage {
    pub chrome: Chrome,
    pub heading: String,
    pub facts: Vec<(String, String)>,
    pub secret: String,
    pub usage: &'static str,
    /// How statehouse keeps the secret (why it cannot show it again).
    pub kept: &'static str,
    pub back: String,
    pub back_label: &'static str,
}

/// [`SecretPage::kept`] of secrets statehouse stores only a hash of.
pub const KEPT_AS_HASH: &str = "statehouse keeps only a hash of it and cannot show it again.";
/// [`SecretPage::kept`] of secrets statehouse keeps sealed to use them itself.
pub const KEPT_SEALED: &str =
    "statehouse keeps it sealed under the master key to use it, and never shows it again.";

/// The form's fields as the service's request, or what is wrong with them (the same
/// mapping as `POST /api/v1/tokens`).
fn request_of(form: &NewTokenForm) -> Result<TokenRequest, Error> {
    let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let owner = match (form.kind.as_str(), given(&form.user)) {
        ("user" | "", None) => TokenOwner::Me,
        ("user" | "", Some(user)) => TokenOwner::User(user),
        ("service", None) => TokenOwner::Service,
        ("instance", None) => TokenOwner::Instance,
        ("service" | "instance", Some(_)) => {
            return Err(Error::BadRequest(
                "only user tokens have a user; leave \"user\" empty".into(),
            ));
        }
        (other, _) => {
            return Err(Error::BadRequest(format!(
                "unknown token kind {other:?}: use user, service or instance"
            )));
        }
    };
    let role = given(&form.role).map(|r| Role::from_str(&r)).transpose()?;
    Ok(TokenRequest {
        name: form.name.clone(),
        owner,
        workspace: given(&form.workspace),
        role,
        expires_in_millis: expiry_millis(&form.expires_in_days)?,
    })
}

/// A form's "expires in days" field as a lifetime in milliseconds (empty: no expiry).
pub(super) fn expiry_millis(days: &str) -> Result<Option<i64>, Error> {
    let days = days.trim();
    if days.is_empty() {
        return Ok(None);
    }
    match days.parse::<i64>() {
        Ok(d) if d > 0 => Ok(Some(d.saturating_mul(DAY_SECONDS * 1_000))),
        _ => Err(Error::BadRequest(format!(
            "expiry {days:?} is not a whole number of days above 0 (leave it empty for no expiry)"
        ))),
    }
}

/// `POST /ui/tokens`: creates a token; the answer is the only page that shows its secret.
pub async fn create(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    UiForm(viewer, form): UiForm<NewTokenForm>,
) -> Result<Response, UiError> {
    let services = &app.services;
    let created = match request_of(&form) {
        Ok(request) => services.create_token_as(&viewer.who, request).await,
        Err(e) => Err(e),
    };
    let (token, secret) = match created {
        Ok(made) => made,
        Err(e) => {
            let refusal = Refusal::of(e, &viewer)?;
            let q = ListQuery::default();
            return show(&app, viewer, &uri, &q, "", Some(refusal), form).await;
        }
    };
    let info = services
        .describe_tokens(vec![token])
        .await
        .or_page(&viewer)?
        .pop()
        .ok_or_else(|| {
            UiError::new(
                Error::Internal("created token vanished".into()),
                viewer.theme,
            )
        })?;
    tracing::info!(
        token = info.name,
        kind = info.kind.as_str(),
        by = viewer.who.actor(),
        "token created (UI)"
    );
    let row = TokenRow::of(&info, services.now());
    let mut facts = vec![
        ("Kind".to_owned(), row.kind),
        ("Role".to_owned(), row.role),
        ("Expires".to_owned(), row.expires),
    ];
    if !row.user.is_empty() {
        facts.push(("User".into(), row.user));
    }
    if !row.workspace.is_empty() {
        facts.push(("Workspace".into(), row.workspace));
    }
    let data = SecretPage {
        chrome: Chrome::signed_in(&viewer, "Token created", &uri, Section::Access),
        heading: format!("Token {} created", info.name),
        facts,
        secret: secret.expose().to_owned(),
        usage: "Use it as Authorization: Bearer <secret>, or as the basic-auth password \
                (TF_HTTP_PASSWORD for Terraform).",
        back: "/ui/tokens".into(),
        kept: KEPT_AS_HASH,
        back_label: "Back to the tokens",
    };
    Ok(render(StatusCode::CREATED, &data))
}

#[derive(Template)]
#[template(path = "token_revoke.html")]
struct RevokePage {
    chrome: Chrome,
    token: TokenRow,
    action: String,
}

/// `GET /ui/tokens/{id}/revoke`: what will be revoked, and the button that does it.
pub async fn confirm_revoke(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let tokens = app
        .services
        .tokens_visible_to(&viewer.who, None)
        .await
        .or_page(&viewer)?;
    let Some(token) = tokens.iter().find(|t| t.id == id) else {
        // The service's answer for a token one may not see.
        return Err(UiError::new(
            Error::NotFound(format!("token {id:?} does not exist")),
            viewer.theme,
        ));
    };
    let row = TokenRow::of(token, app.services.now());
    page(&RevokePage {
        chrome: Chrome::signed_in(&viewer, "Revoke a token", &uri, Section::Access),
        action: row.revoke.clone(),
        token: row,
    })
}

#[derive(Deserialize)]
pub struct NoFields {}

/// `POST /ui/tokens/{id}/revoke`: as `DELETE /api/v1/tokens/{id}`.
pub async fn revoke(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    let info = app
        .services
        .revoke_token_as(&viewer.who, &id)
        .await
        .or_page(&viewer)?;
    tracing::info!(
        token = info.name,
        by = viewer.who.actor(),
        "token revoked (UI)"
    );
    see_other("/ui/tokens?done=revoked")
}
