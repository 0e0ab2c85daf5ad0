//! Who the caller is (a token, a user, the local operator) and what it may do in a workspace.

use std::sync::Arc;

use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::access::{Grants, Principal, Role, Token, TokenSecret, hash_secret};
use crate::accounts::UserAccess;
use crate::audit::AuditRecord;
use crate::clock::Timestamp;
use crate::model::Workspace;
use crate::{Error, Result};

use super::*;

impl Services {
    /// Lets `secret` authenticate as [`Principal::local_operator`] through these services (and
    /// their clones made afterwards). For a CLI process talking to its own in-process API: the
    /// secret is random per process, kept in memory only, and never stored, so it grants
    /// nothing beyond the operator's access to the data directory and master key.
    pub fn trust_operator_secret(&mut self, secret: &TokenSecret) {
        self.operator_secret = Some(Arc::new(Sha256::digest(secret.expose().as_bytes()).into()));
    }

    fn is_operator_secret(&self, presented: &str) -> bool {
        self.operator_secret.as_deref().is_some_and(|expected| {
            let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
            bool::from(presented.ct_eq(expected))
        })
    }

    /// [`Services::authenticate`] for a request from `source_ip`, which the principal carries;
    /// a refused secret is audited (`token.authenticate`, denied) with the address.
    pub async fn authenticate_from(
        &self,
        secret: &str,
        source_ip: Option<String>,
    ) -> Result<Principal> {
        match self.authenticate(secret).await {
            Ok(principal) => Ok(Principal {
                source_ip,
                ..principal
            }),
            Err(e) => {
                if !matches!(e, Error::Store(_) | Error::Internal(_)) {
                    let record = AuditRecord::new(self.now(), "unknown", "token.authenticate")
                        .source_ip(source_ip)
                        .refused_by(&e);
                    self.journal.enqueue(record).await;
                }
                Err(e)
            }
        }
    }

    /// The principal for a presented token secret. Served from memory for up to a second
    /// (tokens and users alike), so the hot path does not touch the database.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        if self.is_operator_secret(secret) {
            return Ok(Principal::local_operator());
        }
        let hash = hash_secret(secret);
        let now = self.now();
        let token = match self.tokens.get(&hash, now) {
            Some(t) => Some(t),
            None => {
                // S3 keys sign requests; they are never presented (the store leaves them out).
                let found = self
                    .store
                    .token_by_hash(&hash)
                    .await?
                    .filter(|t| !t.is_s3_key());
                if let Some(t) = &found {
                    self.tokens.put(hash, t.clone(), now);
                }
                found
            }
        };
        let token = match token {
            Some(t) if t.is_usable_at(now) => t,
            Some(t) if t.revoked_at.is_some() => {
                return Err(Error::Unauthorized("token has been revoked".into()));
            }
            Some(_) => return Err(Error::Unauthorized("token has expired".into())),
            None => return Err(Error::Unauthorized("unknown token".into())),
        };
        let principal = match &token.user_id {
            None => Principal::from_token(&token),
            Some(user_id) => {
                let access = self.user_access(user_id).await?.ok_or_else(|| {
                    Error::Unauthorized("the user this token belonged to no longer exists".into())
                })?;
                if access.user.is_disabled() {
                    return Err(Error::Unauthorized(format!(
                        "user {:?} is disabled: its tokens do not work until an instance admin enables it again",
                        access.user.name
                    )));
                }
                Principal::for_user_token(&access, &token)
            }
        };
        self.note_token_use(&token, now).await;
        Ok(principal)
    }

    /// A user with its memberships, from the one-second cache or the store.
    pub(super) async fn user_access(&self, user_id: &str) -> Result<Option<UserAccess>> {
        let now = self.now();
        if let Some(access) = self.users.get(user_id, now) {
            return Ok(Some(access));
        }
        let Some(user) = self.store.user_by_id(user_id).await? else {
            return Ok(None);
        };
        let memberships = self
            .store
            .user_memberships(user_id)
            .await?
            .into_iter()
            .map(|m| (m.workspace_id, m.role))
            .collect();
        let access = UserAccess { user, memberships };
        self.users.put(user_id.to_owned(), access.clone(), now);
        Ok(Some(access))
    }

    /// Records that a token was used, at most once a minute per token (per process; the stored
    /// time also counts, so replicas do not each write every minute). A failure to record is
    /// logged, never fatal to the request.
    pub(super) async fn note_token_use(&self, token: &Token, now: Timestamp) {
        if self.recently_touched.get(&token.id, now).is_some() {
            return;
        }
        self.recently_touched.put(token.id.clone(), (), now);
        if token
            .last_used_at
            .is_some_and(|t| now.millis() - t.millis() < TOKEN_TOUCH_MILLIS)
        {
            return;
        }
        if let Err(e) = self.store.touch_token(&token.id, now).await {
            tracing::warn!(token_id = token.id, error = %e, "could not record token use");
        }
    }

    /// Drops what this process remembers about a user (roles, disabled flag), so a change
    /// applies here at once (elsewhere within the cache's second).
    pub fn forget_user(&self, user_id: &str) {
        self.users.forget(user_id);
        self.tokens
            .forget_matching(|t| t.user_id.as_deref() == Some(user_id));
        self.s3_keys
            .forget_matching(|k| k.token.user_id.as_deref() == Some(user_id));
    }

    /// Drops a token or S3 key from this process's cache (after a revocation).
    pub fn forget_token(&self, token_id: &str) {
        self.tokens.forget_matching(|t| t.id == token_id);
        self.s3_keys.forget_matching(|k| k.token.id == token_id);
        self.recently_touched.forget(token_id);
    }

    /// Resolves the workspace and checks the principal's role there. A principal without any
    /// role there gets the answer a missing workspace gets ([`Services::visible_workspace`]).
    pub async fn authorize(
        &self,
        who: &Principal,
        ws: &str,
        needed: Role,
        action: &str,
    ) -> Result<(Workspace, Role)> {
        let workspace = self.visible_workspace(who, ws).await?;
        let role = who.require(&workspace.id, needed, action)?;
        Ok((workspace, role))
    }

    /// The workspace named `ws` as `who` may know of it. A principal with no role in it gets
    /// the same `NotFound` as for a workspace that does not exist, so workspace names cannot
    /// be probed; instance admins and principals with a role everywhere learn which it is.
    pub async fn visible_workspace(&self, who: &Principal, ws: &str) -> Result<Workspace> {
        let sees_all = who.is_instance_admin() || matches!(who.grants, Grants::Everywhere(_));
        let hidden = || {
            Error::NotFound(format!(
                "workspace \"{ws}\" does not exist or {} has no role in it",
                who.describe()
            ))
        };
        match self.workspace(ws).await {
            Ok(workspace) if sees_all || who.role_in(&workspace.id).is_some() => Ok(workspace),
            Ok(_) => Err(hidden()),
            Err(Error::NotFound(_)) if !sees_all => Err(hidden()),
            Err(e) => Err(e),
        }
    }
}
