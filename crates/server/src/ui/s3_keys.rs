//! `/ui/s3-keys`: the S3 access keys the viewer may see in its workspaces (for Pulumi's DIY
//! backend; a bucket is a workspace), creating one — its secret shown once, with the
//! `export AWS_…` and `pulumi login` lines — and revoking one after a confirmation. As
//! `/api/v1/workspaces/{ws}/s3-keys`: who may create, see and revoke which key is the service's
//! rule, the same as for tokens.

use std::str::FromStr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::Error;
use statehouse_core::access::Role;
use statehouse_core::s3_keys::S3KeyInfo;
use statehouse_core::service::{S3KeyOwner, S3KeyRequest};

use super::links::{s3_key_revoke, s3_keys_of};
use super::listing::{Pager, select};
use super::page::{
    Chrome, NoFields, OrPage, Refusal, Section, UiError, UiForm, Viewer, page, render, see_other,
};
use super::pulumi::{PulumiLogin, s3_host_port, s3_tls_host_port};
use super::states::Choice;
use super::tokens::{KEPT_SEALED, TokenRow, expiry_millis};
use crate::AppState;
use crate::api::{Order, time_key};

pub struct KeyRow {
    pub access_key_id: String,
    /// Name, kind, user, workspace, role, times and status, as the tokens page shows them.
    pub token: TokenRow,
    pub revoke: String,
}

impl KeyRow {
    fn of(key: &S3KeyInfo, now: statehouse_core::clock::Timestamp) -> KeyRow {
        let token = TokenRow::of(&key.token, now);
        KeyRow {
            access_key_id: key.access_key_id.clone(),
            revoke: s3_key_revoke(&token.workspace, &key.access_key_id),
            token,
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
#[template(path = "s3_keys.html")]
struct KeysPage {
    chrome: Chrome,
    access_at: &'static str,
    rows: Vec<KeyRow>,
    pager: Pager,
    filter: Vec<Choice>,
    notice: &'static str,
    error: String,
    kinds: Vec<Choice>,
    workspaces: Vec<Choice>,
    roles: Vec<Choice>,
    is_instance_admin: bool,
    draft: Draft,
    /// `host:port` of the S3 endpoint; empty when it is off.
    endpoint: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only keys of this workspace.
    #[serde(default)]
    workspace: String,
    cursor: Option<String>,
    done: Option<String>,
}

/// `GET /ui/s3-keys`.
pub async fn list(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    let notice = match q.done.as_deref() {
        Some("revoked") => "The S3 key was revoked: S3 requests signed with it are refused.",
        _ => "",
    };
    show(&app, viewer, &uri, &headers, &q, notice, None).await
}

/// The page; after a refused form, with the service's message and what was typed.
async fn show(
    app: &AppState,
    viewer: Viewer,
    uri: &Uri,
    headers: &HeaderMap,
    q: &ListQuery,
    notice: &'static str,
    refused: Option<(Refusal, NewKeyForm)>,
) -> Result<Response, UiError> {
    let services = &app.services;
    let workspaces = services
        .list_workspaces(&viewer.who)
        .await
        .or_page(&viewer)?;
    let mut keys = Vec::new();
    for (ws, _) in &workspaces {
        if q.workspace.is_empty() || q.workspace == ws.name {
            keys.extend(
                services
                    .list_s3_keys(&viewer.who, &ws.name)
                    .await
                    .or_page(&viewer)?,
            );
        }
    }
    let page = select(keys, q.cursor.as_deref(), Order::Ascending, |k| {
        time_key(k.token.created_at, &k.token.id)
    })
    .or_page(&viewer)?;
    let now = services.now();
    let is_instance_admin = viewer.who.is_instance_admin();
    let mut kinds = vec![(
        "user",
        "user: acts as you in the workspace (at most its role)",
    )];
    if workspaces.iter().any(|(_, r)| *r == Role::Admin) {
        kinds.push(("service", "service: the workspace's, with a fixed role"));
    }
    let choice = |value: &str, label: String, current: &str| Choice {
        selected: value == current,
        value: value.to_owned(),
        label,
    };
    let (status, error, form) = match refused {
        Some((r, form)) => (r.status, r.message, form),
        None => (
            StatusCode::OK,
            String::new(),
            NewKeyForm {
                workspace: q.workspace.clone(),
                ..NewKeyForm::default()
            },
        ),
    };
    let base = s3_keys_of(&q.workspace);
    let data = KeysPage {
        chrome: Chrome::signed_in(&viewer, "S3 keys", uri, Section::Access),
        access_at: "s3-keys",
        rows: page.items.iter().map(|k| KeyRow::of(k, now)).collect(),
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
        workspaces: workspaces
            .iter()
            .map(|(w, r)| choice(&w.name, format!("{} ({r})", w.name), &form.workspace))
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
        endpoint: app
            .s3_endpoint
            .map_or(String::new(), |addr| match app.s3_tls {
                true => format!("https://{}", s3_tls_host_port(addr, headers)),
                false => format!("http://{}", s3_host_port(addr, headers)),
            }),
    };
    Ok(render(status, &data))
}

/// The API's `NewS3Key` as form fields; empty means "not given".
#[derive(Debug, Default, Deserialize)]
pub struct NewKeyForm {
    #[serde(default)]
    name: String,
    /// `user` or `service`.
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

/// The form's fields as the service's request, or what is wrong with them (the mapping of
/// `POST /api/v1/workspaces/{ws}/s3-keys`).
fn request_of(form: &NewKeyForm) -> Result<S3KeyRequest, Error> {
    let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let owner = match (form.kind.as_str(), given(&form.user)) {
        ("user" | "", None) => S3KeyOwner::Me,
        ("user" | "", Some(user)) => S3KeyOwner::User(user),
        ("service", None) => S3KeyOwner::Service,
        ("service", Some(_)) => {
            return Err(Error::BadRequest(
                "only user keys have a user; leave \"user\" empty".into(),
            ));
        }
        (other, _) => {
            return Err(Error::BadRequest(format!(
                "unknown S3 key kind {other:?}: use user or service"
            )));
        }
    };
    let workspace = given(&form.workspace).ok_or_else(|| {
        Error::BadRequest("choose the workspace the key is for (its bucket)".into())
    })?;
    Ok(S3KeyRequest {
        workspace,
        name: form.name.clone(),
        owner,
        role: given(&form.role).map(|r| Role::from_str(&r)).transpose()?,
        expires_in_millis: expiry_millis(&form.expires_in_days)?,
    })
}

/// `secret_once.html` with the `pulumi login` line after the secret.
#[derive(Template)]
#[template(path = "s3_key_created.html")]
struct CreatedPage {
    chrome: Chrome,
    heading: String,
    facts: Vec<(String, String)>,
    secret: String,
    usage: &'static str,
    kept: &'static str,
    back: String,
    back_label: &'static str,
    login: PulumiLogin,
}

/// `POST /ui/s3-keys`: creates a key; the answer is the only page that shows its secret.
pub async fn create(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    UiForm(viewer, form): UiForm<NewKeyForm>,
) -> Result<Response, UiError> {
    let created = match request_of(&form) {
        Ok(request) => app.services.create_s3_key(&viewer.who, request).await,
        Err(e) => Err(e),
    };
    let (key, secret) = match created {
        Ok(made) => made,
        Err(e) => {
            let refusal = Refusal::of(e, &viewer)?;
            let q = ListQuery::default();
            return show(&app, viewer, &uri, &headers, &q, "", Some((refusal, form))).await;
        }
    };
    tracing::info!(
        access_key_id = key.access_key_id,
        name = key.token.name,
        by = viewer.who.actor(),
        "S3 key created (UI)"
    );
    let row = KeyRow::of(&key, app.services.now());
    let mut facts = vec![
        ("Access key id".to_owned(), row.access_key_id.clone()),
        ("Workspace (bucket)".to_owned(), row.token.workspace.clone()),
        ("Kind".to_owned(), row.token.kind.clone()),
        ("Role".to_owned(), row.token.role.clone()),
        ("Expires".to_owned(), row.token.expires.clone()),
    ];
    if !row.token.user.is_empty() {
        facts.push(("User".into(), row.token.user.clone()));
    }
    // Both alphabets are shell-safe ([A-Z0-9] and [A-Za-z0-9+/]): no quoting needed.
    let secret = format!(
        "export AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={}",
        key.access_key_id,
        secret.expose()
    );
    let data = CreatedPage {
        chrome: Chrome::signed_in(&viewer, "S3 key created", &uri, Section::Access),
        heading: format!("S3 key {} created", key.token.name),
        facts,
        secret,
        usage: "Paste these lines into the shell that runs pulumi (or into your CI's secrets).",
        kept: KEPT_SEALED,
        back: "/ui/s3-keys".into(),
        back_label: "Back to the S3 keys",
        login: PulumiLogin::new(app.s3_endpoint, app.s3_tls, &headers, &row.token.workspace),
    };
    Ok(render(StatusCode::CREATED, &data))
}

#[derive(Template)]
#[template(path = "s3_key_revoke.html")]
struct RevokePage {
    chrome: Chrome,
    key: KeyRow,
}

/// `GET /ui/s3-keys/{ws}/{access_key_id}/revoke`: what will be revoked, and the button.
pub async fn confirm_revoke(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path((ws, access_key_id)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let keys = app
        .services
        .list_s3_keys(&viewer.who, &ws)
        .await
        .or_page(&viewer)?;
    let Some(key) = keys.iter().find(|k| k.access_key_id == access_key_id) else {
        // The service's answer for a key one may not see.
        return Err(UiError::new(
            Error::NotFound(format!("workspace {ws:?} has no S3 key {access_key_id:?}")),
            viewer.theme,
        ));
    };
    page(&RevokePage {
        chrome: Chrome::signed_in(&viewer, "Revoke an S3 key", &uri, Section::Access),
        key: KeyRow::of(key, app.services.now()),
    })
}

/// `POST /ui/s3-keys/{ws}/{access_key_id}/revoke`: as
/// `DELETE /api/v1/workspaces/{ws}/s3-keys/{access_key_id}`.
pub async fn revoke(
    State(app): State<Arc<AppState>>,
    Path((ws, access_key_id)): Path<(String, String)>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    let key = app
        .services
        .revoke_s3_key(&viewer.who, &ws, &access_key_id)
        .await
        .or_page(&viewer)?;
    tracing::info!(
        access_key_id = key.access_key_id,
        by = viewer.who.actor(),
        "S3 key revoked (UI)"
    );
    see_other("/ui/s3-keys?done=revoked")
}
