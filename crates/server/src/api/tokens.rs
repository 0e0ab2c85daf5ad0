//! `/api/v1/tokens`: users manage their own tokens, workspace admins their workspace's service
//! tokens, instance admins all. The secret is in the create response only.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use statehouse_core::Error;
use statehouse_core::clock::Timestamp;
use statehouse_core::service::{TokenInfo, TokenOwner, TokenRequest};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Order, time_key};
use super::users::parse_role;
use super::{ApiError, ApiJson, ApiQuery, Caller, ErrorBody, Page, PageParams};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    /// `user` (acts with its user's roles, optionally narrowed), `service` (one workspace,
    /// fixed role) or `instance` (its role in every workspace).
    pub kind: String,
    /// The owning user (user tokens).
    pub user: Option<String>,
    /// Service tokens: their workspace. User tokens: the workspace they are narrowed to.
    pub workspace: Option<String>,
    /// Service and instance tokens: their role. User tokens: the most they may do.
    pub role: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    /// Updated about once a minute at most.
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
}

impl TokenView {
    pub(super) fn new(t: &TokenInfo, now: Timestamp) -> Self {
        let status = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at.is_some_and(|e| now >= e) {
            "expired"
        } else {
            "active"
        };
        TokenView {
            id: t.id.clone(),
            name: t.name.clone(),
            kind: t.kind.as_str().to_owned(),
            user: t.user.clone(),
            workspace: t.workspace.clone(),
            role: t.role.to_string(),
            created_at: t.created_at.to_rfc3339(),
            expires_at: t.expires_at.map(|e| e.to_rfc3339()),
            last_used_at: t.last_used_at.map(|e| e.to_rfc3339()),
            revoked_at: t.revoked_at.map(|e| e.to_rfc3339()),
            status: status.to_owned(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TokenFilter {
    /// Only tokens acting in this workspace (its service tokens, user tokens narrowed to it).
    pub workspace: Option<String>,
    /// Only this user's tokens.
    pub user: Option<String>,
    pub cursor: Option<String>,
    /// 1–1000, default 100.
    pub limit: Option<i64>,
}

/// The tokens the caller may see: its own, the service tokens of workspaces it administers,
/// or (instance admins) all. Never their secrets.
/// In creation order.
#[utoipa::path(get, path = "/tokens", tag = "tokens", operation_id = "list_tokens",
    params(TokenFilter),
    responses((status = 200, body = Page<TokenView>),
        (status = 404, body = ErrorBody, description = "no such user or workspace")))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    ApiQuery(filter): ApiQuery<TokenFilter>,
) -> Result<Json<Page<TokenView>>, ApiError> {
    let mut tokens = app
        .services
        .tokens_visible_to(&who, filter.workspace.as_deref())
        .await?;
    if let Some(user) = &filter.user {
        // User names are stored in lower case.
        let wanted = user.trim().to_lowercase();
        tokens.retain(|t| t.user.as_deref() == Some(wanted.as_str()));
    }
    let page = PageParams {
        cursor: filter.cursor,
        limit: filter.limit,
    };
    let page = Page::select(tokens, &page, Order::Ascending, |t| {
        time_key(t.created_at, &t.id)
    })?;
    let now = app.services.now();
    Ok(Json(Page {
        items: page.items.iter().map(|t| TokenView::new(t, now)).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// A name to recognise it by (shown as the writer of states and holder of locks).
    pub name: String,
    /// `user` (default: a token of the caller, or of `user`), `service` or `instance`.
    pub kind: Option<String>,
    /// Instance admins: create the user token for this user instead of themselves.
    pub user: Option<String>,
    /// Service tokens: their workspace (required). User tokens: narrow to this workspace.
    pub workspace: Option<String>,
    /// Service and instance tokens: their role (required). User tokens: the most they may do
    /// (default: everything the user may).
    pub role: Option<String>,
    /// Lifetime in seconds (default: no expiry).
    pub expires_in_seconds: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: TokenView,
    /// The secret, shown this once: use it as `Authorization: Bearer <secret>` or as the
    /// basic-auth password (Terraform `TF_HTTP_PASSWORD`).
    pub secret: String,
}

/// Creates a token: a user token of one's own (through a session or an unrestricted token,
/// optionally narrowed to a workspace and/or a maximum role), a workspace service token
/// (workspace admins) or an instance token (instance admins).
#[utoipa::path(post, path = "/tokens", tag = "tokens", operation_id = "create_token", request_body = NewToken,
    responses((status = 201, body = CreatedToken),
        (status = 404, body = ErrorBody, description = "no such user or workspace")))]
pub async fn create(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let owner = match (body.kind.as_deref().unwrap_or("user"), body.user) {
        ("user", None) => TokenOwner::Me,
        ("user", Some(user)) => TokenOwner::User(user),
        ("service", None) => TokenOwner::Service,
        ("instance", None) => TokenOwner::Instance,
        ("service" | "instance", Some(_)) => {
            return Err(ApiError(Error::BadRequest(
                "only user tokens have a user; leave \"user\" out".into(),
            )));
        }
        (other, _) => {
            return Err(ApiError(Error::BadRequest(format!(
                "unknown token kind {other:?}: use user, service or instance"
            ))));
        }
    };
    let role = body.role.as_deref().map(parse_role).transpose()?;
    let request = TokenRequest {
        name: body.name,
        owner,
        workspace: body.workspace,
        role,
        expires_in_millis: body.expires_in_seconds.map(|s| s.saturating_mul(1_000)),
    };
    let (token, secret) = app.services.create_token_as(&who, request).await?;
    let info = app
        .services
        .describe_tokens(vec![token])
        .await?
        .pop()
        .ok_or_else(|| Error::Internal("created token vanished".into()))?;
    tracing::info!(
        token = info.name,
        kind = info.kind.as_str(),
        by = who.actor(),
        "token created"
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: TokenView::new(&info, app.services.now()),
            secret: secret.expose().to_owned(),
        }),
    ))
}

/// Revokes a token: one's own, a service token of a workspace one administers, or (instance
/// admins) any. Applies on this server at once, on other replicas within a second.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, body = TokenView), (status = 409, body = ErrorBody, description = "already revoked")))]
pub async fn revoke(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    let info = app.services.revoke_token_as(&who, &id).await?;
    tracing::info!(token = info.name, by = who.actor(), "token revoked");
    Ok(Json(TokenView::new(&info, app.services.now())))
}
