//! `/api/v1/workspaces/{ws}/s3-keys`: S3 access keys of a workspace (for Pulumi's DIY backend
//! and other S3 clients; a bucket is a workspace). Who may create, see and revoke which key is
//! as for tokens. The secret access key is in the create response only; keys are named in
//! paths by their access key id.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use statehouse_core::Error;
use statehouse_core::s3_keys::S3KeyInfo;
use statehouse_core::service::{S3KeyOwner, S3KeyRequest};
use utoipa::ToSchema;

use super::extract::{Order, time_key};
use super::tokens::TokenView;
use super::users::parse_role;
use super::{ApiError, ApiJson, ApiQuery, Caller, ErrorBody, Page, PageParams};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct S3KeyView {
    /// The key's public half (`SHK…`, 20 characters): `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// The token behind the key: its id, name (shown as writer and lock holder), kind
    /// (`service` or `user`), role, expiry, last use and status.
    #[serde(flatten)]
    pub token: TokenView,
}

impl S3KeyView {
    fn new(key: &S3KeyInfo, now: statehouse_core::clock::Timestamp) -> Self {
        S3KeyView {
            access_key_id: key.access_key_id.clone(),
            token: TokenView::new(&key.token, now),
        }
    }
}

/// The S3 keys of the workspace the caller may see: instance admins all, others their own and,
/// as workspace admins, the workspace's service keys. Never their secrets. In creation order.
#[utoipa::path(get, path = "/workspaces/{ws}/s3-keys", tag = "s3-keys", operation_id = "list_s3_keys",
    params(("ws" = String, Path, description = "workspace name"), PageParams),
    responses((status = 200, body = Page<S3KeyView>)))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<S3KeyView>>, ApiError> {
    let keys = app.services.list_s3_keys(&who, &ws).await?;
    let page = Page::select(keys, &page, Order::Ascending, |k| {
        time_key(k.token.created_at, &k.token.id)
    })?;
    let now = app.services.now();
    Ok(Json(Page {
        items: page.items.iter().map(|k| S3KeyView::new(k, now)).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewS3Key {
    /// A name to recognise it by (shown as the writer of states and holder of locks).
    pub name: String,
    /// `service` (default without `user`: the workspace's, with a fixed role; workspace
    /// admins) or `user` (default with `user`: acts with its user's roles in the workspace).
    pub kind: Option<String>,
    /// A user key of this user (itself, or any user for instance admins); with `kind: user`
    /// and no `user`, a key of the caller.
    pub user: Option<String>,
    /// Service keys: their role (required). User keys: the most they may do (default:
    /// everything the user may in the workspace).
    pub role: Option<String>,
    /// Lifetime in seconds (default: no expiry).
    pub expires_in_seconds: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedS3Key {
    pub key: S3KeyView,
    /// `AWS_ACCESS_KEY_ID` (also in `key`).
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`, shown this once: statehouse keeps it encrypted and never
    /// shows it again.
    pub secret_access_key: String,
}

/// Creates an S3 key in the workspace: a service key (workspace admins) or a user key of one's
/// own (through a session or an unrestricted token), capped by `role`.
#[utoipa::path(post, path = "/workspaces/{ws}/s3-keys", tag = "s3-keys", operation_id = "create_s3_key",
    request_body = NewS3Key,
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 201, body = CreatedS3Key),
        (status = 409, body = ErrorBody, description = "the user is disabled")))]
pub async fn create(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<NewS3Key>,
) -> Result<(StatusCode, Json<CreatedS3Key>), ApiError> {
    let default_kind = if body.user.is_some() {
        "user"
    } else {
        "service"
    };
    let owner = match (body.kind.as_deref().unwrap_or(default_kind), body.user) {
        ("service", None) => S3KeyOwner::Service,
        ("user", None) => S3KeyOwner::Me,
        ("user", Some(user)) => S3KeyOwner::User(user),
        ("service", Some(_)) => {
            return Err(ApiError(Error::BadRequest(
                "only user keys have a user; leave \"user\" out".into(),
            )));
        }
        (other, _) => {
            return Err(ApiError(Error::BadRequest(format!(
                "unknown S3 key kind {other:?}: use service or user"
            ))));
        }
    };
    let role = body.role.as_deref().map(parse_role).transpose()?;
    let request = S3KeyRequest {
        workspace: ws,
        name: body.name,
        owner,
        role,
        expires_in_millis: body.expires_in_seconds.map(|s| s.saturating_mul(1_000)),
    };
    let (key, secret) = app.services.create_s3_key(&who, request).await?;
    tracing::info!(
        access_key_id = key.access_key_id,
        name = key.token.name,
        by = who.actor(),
        "S3 key created"
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedS3Key {
            access_key_id: key.access_key_id.clone(),
            key: S3KeyView::new(&key, app.services.now()),
            secret_access_key: secret.expose().to_owned(),
        }),
    ))
}

/// Revokes an S3 key by its access key id: one's own, a service key of a workspace one
/// administers, or (instance admins) any. Applies on this server at once, on other replicas
/// within a second.
#[utoipa::path(delete, path = "/workspaces/{ws}/s3-keys/{access_key_id}", tag = "s3-keys",
    operation_id = "revoke_s3_key",
    params(("ws" = String, Path, description = "workspace name"),
        ("access_key_id" = String, Path, description = "the key's access key id (SHK…)")),
    responses((status = 200, body = S3KeyView),
        (status = 409, body = ErrorBody, description = "already revoked")))]
pub async fn revoke(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, access_key_id)): Path<(String, String)>,
) -> Result<Json<S3KeyView>, ApiError> {
    let key = app
        .services
        .revoke_s3_key(&who, &ws, &access_key_id)
        .await?;
    tracing::info!(
        access_key_id = key.access_key_id,
        by = who.actor(),
        "S3 key revoked"
    );
    Ok(Json(S3KeyView::new(&key, app.services.now())))
}
