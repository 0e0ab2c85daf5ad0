//! `/api/v1/workspaces/{ws}/backup-encryption…`: how a workspace's backups are encrypted.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use statehouse_backup::service::{EncryptionChange, EncryptionView, GeneratedKey};
use statehouse_backup::settings::ConnectionSettings;
use utoipa::ToSchema;

use super::{ApiError, ApiJson, Caller};
use crate::AppState;

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EncryptionPatch {
    /// Generate a new managed key pair (older backups stay readable: old keys are kept).
    #[serde(default)]
    pub generate_managed_key: bool,
    /// Stop encrypting to the managed key: the server can no longer read new backups.
    #[serde(default)]
    pub drop_managed_key: bool,
    /// Recipients (`age1…`) whose identities only their owners hold; replaces the list.
    pub recipients: Option<Vec<String>>,
    /// Encrypt with this passphrase instead (age: then no other recipient); "" switches it off.
    pub passphrase: Option<String>,
    /// Where full verifications restore to; `url` with password, or "" to remove it.
    pub verification_server_url: Option<String>,
}

/// The workspace's backup encryption and verification server.
#[utoipa::path(get, path = "/workspaces/{ws}/backup-encryption", tag = "backups",
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 200, body = EncryptionView)))]
pub async fn encryption(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
) -> Result<Json<EncryptionView>, ApiError> {
    Ok(Json(app.backups.encryption(&who, &ws).await?))
}

/// Changes how new backups are encrypted, or the verification server (workspace admin).
#[utoipa::path(patch, path = "/workspaces/{ws}/backup-encryption", tag = "backups",
    request_body = EncryptionPatch,
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 200, body = EncryptionView)))]
pub async fn change_encryption(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<EncryptionPatch>,
) -> Result<Json<EncryptionView>, ApiError> {
    let verification_server = match body.verification_server_url {
        None => None,
        Some(url) if url.trim().is_empty() => Some(None),
        Some(url) => Some(Some(ConnectionSettings::from_url(&url)?)),
    };
    let change = EncryptionChange {
        generate_managed_key: body.generate_managed_key,
        drop_managed_key: body.drop_managed_key,
        recipients: body.recipients,
        passphrase: body.passphrase.map(|p| Some(p).filter(|p| !p.is_empty())),
        verification_server,
    };
    Ok(Json(
        app.backups.change_encryption(&who, &ws, change).await?,
    ))
}

/// Exports the managed identity (workspace admin; audited) for restores without statehouse:
/// save `identity` as `key.txt` for `age -d -i key.txt`.
#[utoipa::path(post, path = "/workspaces/{ws}/backup-encryption/export", tag = "backups",
    params(("ws" = String, Path, description = "workspace name")),
    responses((status = 200, body = GeneratedKey)))]
pub async fn export_key(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
) -> Result<Json<GeneratedKey>, ApiError> {
    Ok(Json(app.backups.export_managed_key(&who, &ws).await?))
}
