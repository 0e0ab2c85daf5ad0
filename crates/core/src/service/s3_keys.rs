//! S3 access keys as their owners manage them (created, listed, revoked: the rules of tokens),
//! and the lookup the S3 listener makes on every request ([`Services::s3_key_credentials`]).

use serde_json::json;
use zeroize::Zeroizing;

use super::accounts::TokenOwner;
use super::tokens::{check_token_expiry, check_token_name};
use super::{Services, new_id};
use crate::access::{Principal, Role, S3KeyCredentials, Token, TokenKind};
use crate::audit::AuditRecord;
use crate::model::NewToken;
use crate::s3_keys::{
    NewS3Key, S3KeyInfo, S3Secret, SECRET_LEN, StoredS3Key, generate_access_key_id,
    is_access_key_id, secret_binding, unpresentable_hash,
};
use crate::{Error, Result};

/// Whose S3 key to create. Every key acts in one workspace (a bucket is a workspace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3KeyOwner {
    /// A workspace service key with a fixed role (workspace admins).
    Service,
    /// A key of the calling user, acting with its roles in the workspace.
    Me,
    /// A key of the named user (that user itself, or an instance admin).
    User(String),
}

/// An S3 key to create.
#[derive(Debug, Clone)]
pub struct S3KeyRequest {
    pub workspace: String,
    pub name: String,
    pub owner: S3KeyOwner,
    /// Service keys: their role (required). User keys: the most they may do (default:
    /// whatever the user may in the workspace).
    pub role: Option<Role>,
    pub expires_in_millis: Option<i64>,
}

impl Services {
    /// Creates an S3 key; its secret is returned this once. Who may create which kind is
    /// exactly as for tokens ([`Services::token_owner`]). Audited as `s3_key.create`, the
    /// target being the access key id.
    pub async fn create_s3_key(
        &self,
        who: &Principal,
        request: S3KeyRequest,
    ) -> Result<(S3KeyInfo, S3Secret)> {
        let mut detail = json!({
            "name": request.name,
            "role": request.role,
            "user": match &request.owner {
                S3KeyOwner::Service => None,
                S3KeyOwner::Me => who.user.as_ref().map(|u| u.name.clone()),
                S3KeyOwner::User(name) => Some(name.clone()),
            },
            "expires_in_ms": request.expires_in_millis,
        });
        let record = AuditRecord::by(who, "s3_key.create", self.now())
            .workspace(request.workspace.clone())
            .detail(detail.clone());
        let result = self.create_s3_key_unaudited(who, request).await;
        self.conclude(result, record, |(key, _), r| {
            detail["token_id"] = json!(key.token.id);
            (r.target(key.access_key_id.clone()).detail(detail), None)
        })
        .await
    }

    async fn create_s3_key_unaudited(
        &self,
        who: &Principal,
        request: S3KeyRequest,
    ) -> Result<(S3KeyInfo, S3Secret)> {
        let name = check_token_name(&request.name)?.to_owned();
        check_token_expiry(request.expires_in_millis)?;
        let workspace = self.visible_workspace(who, &request.workspace).await?;
        let owner = match request.owner {
            S3KeyOwner::Service => TokenOwner::Service,
            S3KeyOwner::Me => TokenOwner::Me,
            S3KeyOwner::User(name) => TokenOwner::User(name),
        };
        let (user_id, role) = self
            .token_owner(who, &owner, Some(&workspace), request.role)
            .await?;
        let now = self.now();
        let id = new_id();
        let access_key_id = generate_access_key_id();
        let secret = S3Secret::generate();
        let sealed = self
            .cipher
            .seal(secret.expose().as_bytes(), secret_binding(&id))?;
        let token = self
            .store
            .create_s3_key(&NewS3Key {
                token: NewToken {
                    id,
                    name,
                    user_id,
                    workspace_id: Some(workspace.id),
                    role,
                    secret_hash: unpresentable_hash(&access_key_id),
                    created_at: now,
                    expires_at: request.expires_in_millis.map(|m| now.plus_millis(m)),
                },
                access_key_id,
                secret: sealed,
            })
            .await?;
        let info = self.describe_s3_keys(vec![token]).await?.pop();
        let info = info.ok_or_else(|| Error::Internal("created S3 key vanished".into()))?;
        Ok((info, secret))
    }

    /// The S3 keys of a workspace `who` may see (never their secrets): instance admins all,
    /// others their own user keys and, as workspace admins, its service keys. Oldest first.
    pub async fn list_s3_keys(&self, who: &Principal, ws: &str) -> Result<Vec<S3KeyInfo>> {
        let workspace = self.visible_workspace(who, ws).await?;
        let keys = self.store.list_s3_keys(&workspace.id).await?;
        let visible = keys.into_iter().filter(|t| may_manage(who, t)).collect();
        self.describe_s3_keys(visible).await
    }

    /// Revokes an S3 key of a workspace by its access key id: one's own, a service key of a
    /// workspace one administers, or (instance admins) any. Applies on this process at once,
    /// elsewhere within a second. Audited as `s3_key.revoke`.
    pub async fn revoke_s3_key(
        &self,
        who: &Principal,
        ws: &str,
        access_key_id: &str,
    ) -> Result<S3KeyInfo> {
        let record = AuditRecord::by(who, "s3_key.revoke", self.now())
            .workspace(ws)
            .target(access_key_id);
        let result = self.revoke_s3_key_unaudited(who, ws, access_key_id).await;
        self.conclude(result, record, |info, r| {
            (
                r.detail(json!({"name": info.token.name, "token_id": info.token.id})),
                None,
            )
        })
        .await
    }

    async fn revoke_s3_key_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        access_key_id: &str,
    ) -> Result<S3KeyInfo> {
        let workspace = self.visible_workspace(who, ws).await?;
        let not_found = || {
            Error::NotFound(format!(
                "workspace {:?} has no S3 key {access_key_id:?}",
                workspace.name
            ))
        };
        let key = match is_access_key_id(access_key_id) {
            true => self.store.s3_key(access_key_id).await?,
            false => None,
        };
        let token = key
            .map(|k| k.token)
            .filter(|t| t.workspace_id.as_deref() == Some(workspace.id.as_str()))
            .ok_or_else(not_found)?;
        if !may_manage(who, &token) {
            // A service key: refused by role. Someone else's user key: not even named.
            if token.kind() != TokenKind::Service {
                return Err(not_found());
            }
            who.require(&workspace.id, Role::Admin, "revoking S3 service keys")?;
        }
        if !self.store.revoke_token(&token.id, self.now()).await? {
            return Err(Error::Conflict(format!(
                "S3 key {access_key_id} ({:?}) is already revoked",
                token.name
            )));
        }
        self.forget_token(&token.id);
        let revoked = self
            .store
            .token_by_id(&token.id)
            .await?
            .ok_or_else(not_found)?;
        self.describe_s3_keys(vec![revoked])
            .await?
            .pop()
            .ok_or_else(not_found)
    }

    async fn describe_s3_keys(&self, tokens: Vec<Token>) -> Result<Vec<S3KeyInfo>> {
        let ids: Vec<String> = tokens
            .iter()
            .map(|t| t.s3_access_key_id.clone().unwrap_or_default())
            .collect();
        let infos = self.describe_tokens(tokens).await?;
        Ok(ids
            .into_iter()
            .zip(infos)
            .map(|(access_key_id, token)| S3KeyInfo {
                access_key_id,
                token,
            })
            .collect())
    }

    /// The secret of a usable S3 key and the principal it acts as (`None`: no such key).
    /// Revoked or expired keys and disabled users give `Error::Unauthorized` with the reason.
    /// Records last use at most about once a minute, like tokens.
    ///
    /// On every S3 request: the key is served from memory for up to a second (as tokens are
    /// by [`Services::authenticate`]), and opened anew each time, so its plaintext lives no
    /// longer than the request. Refusals are audited (`s3_key.authenticate`) with the address.
    pub async fn s3_key_credentials(
        &self,
        access_key_id: &str,
        source_ip: Option<String>,
    ) -> Result<Option<S3KeyCredentials>> {
        let refused = match self.s3_key_credentials_unaudited(access_key_id).await {
            Ok(Some(mut credentials)) => {
                credentials.principal.source_ip = source_ip;
                return Ok(Some(credentials));
            }
            Ok(None) => None,
            Err(e @ (Error::Store(_) | Error::Internal(_))) => return Err(e),
            Err(e) => Some(e),
        };
        let unknown = Error::Unauthorized("unknown S3 access key id".into());
        let mut record = AuditRecord::new(self.now(), "unknown", "s3_key.authenticate")
            .source_ip(source_ip)
            .refused_by(refused.as_ref().unwrap_or(&unknown));
        // A presented id is no secret, but only one of our shape is worth keeping.
        if is_access_key_id(access_key_id) {
            record = record.target(access_key_id);
        }
        self.journal.enqueue(record).await;
        refused.map_or(Ok(None), Err)
    }

    async fn s3_key_credentials_unaudited(
        &self,
        access_key_id: &str,
    ) -> Result<Option<S3KeyCredentials>> {
        if !is_access_key_id(access_key_id) {
            return Ok(None);
        }
        let now = self.now();
        let key = match self.s3_keys.get(access_key_id, now) {
            Some(key) => key,
            None => match self.store.s3_key(access_key_id).await? {
                Some(key) => {
                    self.s3_keys.put(access_key_id.to_owned(), key.clone(), now);
                    key
                }
                None => return Ok(None),
            },
        };
        let StoredS3Key { token, secret } = key;
        if token.revoked_at.is_some() {
            return Err(Error::Unauthorized("S3 key has been revoked".into()));
        }
        if !token.is_usable_at(now) {
            return Err(Error::Unauthorized("S3 key has expired".into()));
        }
        let principal = match &token.user_id {
            None => Principal::from_token(&token),
            Some(user_id) => {
                let access = self.user_access(user_id).await?.ok_or_else(|| {
                    Error::Unauthorized("the user this S3 key belonged to no longer exists".into())
                })?;
                if access.user.is_disabled() {
                    return Err(Error::Unauthorized(format!(
                        "user {:?} is disabled: its S3 keys do not work until an instance admin enables it again",
                        access.user.name
                    )));
                }
                Principal::for_user_token(&access, &token)
            }
        };
        let plain = Zeroizing::new(self.cipher.open(
            &secret,
            secret_binding(&token.id),
            SECRET_LEN,
        )?);
        let text = std::str::from_utf8(&plain)
            .map_err(|_| Error::Internal("a stored S3 secret is not text".into()))?;
        let secret = Zeroizing::new(text.to_owned());
        self.note_token_use(&token, now).await;
        Ok(Some(S3KeyCredentials { secret, principal }))
    }
}

/// Whether `who` manages this key without a role check: instance admins any, users their own.
/// Workspace admins manage service keys, checked by role where it matters.
fn may_manage(who: &Principal, token: &Token) -> bool {
    who.instance_admin
        || token.user_id.is_some() && token.user_id.as_deref() == who.user_id()
        || token.kind() == TokenKind::Service
            && token
                .workspace_id
                .as_deref()
                .and_then(|w| who.role_in(w))
                .is_some_and(|r| r >= Role::Admin)
}
