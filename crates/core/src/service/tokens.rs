//! Minting API tokens, and the first start's bootstrap admin token.

use serde_json::json;

use crate::access::{Role, Token, TokenSecret};
use crate::audit::AuditRecord;
use crate::clock::Timestamp;
use crate::model::NewToken;
use crate::{Error, Result};

use super::*;

impl Services {
    /// Exactly once per database, across all replicas: create the instance admin user `admin`
    /// (without a password: it cannot log in until one is set) and mint a token of its, whose
    /// secret is returned to be shown to the operator.
    pub async fn claim_bootstrap_token(&self) -> Result<Option<TokenSecret>> {
        if !self.store.claim_flag(BOOTSTRAP_FLAG, self.now()).await? {
            return Ok(None);
        }
        let admin = match self.store.user_by_name(BOOTSTRAP_USER).await? {
            Some(user) => user,
            None => self.insert_user(BOOTSTRAP_USER, None, true).await?,
        };
        let (token, secret) = self
            .mint_token(Some(admin.id), None, Role::Admin, "bootstrap-admin", None)
            .await?;
        let record = AuditRecord::new(self.now(), "statehouse", "token.create")
            .target(token.id.clone())
            .detail(json!({"name": token.name, "role": token.role, "user": BOOTSTRAP_USER, "bootstrap": true}));
        self.journal.commit(Some(record), None).await?;
        Ok(Some(secret))
    }

    /// Creates a workspace service token, or with `workspace: None` an instance token, without
    /// checking who asks (local CLI, tests); [`Services::create_token_as`] checks.
    pub async fn create_token(
        &self,
        workspace: Option<&str>,
        role: Role,
        name: &str,
        expires_in_millis: Option<i64>,
    ) -> Result<(Token, TokenSecret)> {
        let ws = match workspace {
            Some(w) => Some(self.workspace(w).await?),
            None => None,
        };
        let name = check_token_name(name)?;
        check_token_expiry(expires_in_millis)?;
        let expires = expires_in_millis.map(|m| self.now().plus_millis(m));
        self.mint_token(None, ws.map(|w| w.id), role, name, expires)
            .await
    }

    pub(super) async fn mint_token(
        &self,
        user_id: Option<String>,
        workspace_id: Option<String>,
        role: Role,
        name: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<(Token, TokenSecret)> {
        let secret = TokenSecret::generate();
        let token = self
            .store
            .create_token(&NewToken {
                id: new_id(),
                name: name.to_owned(),
                user_id,
                workspace_id,
                role,
                secret_hash: secret.hash(),
                created_at: self.now(),
                expires_at,
            })
            .await?;
        Ok((token, secret))
    }
}

pub(super) fn check_token_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(Error::BadRequest(
            "token name must be 1-100 printable characters".into(),
        ));
    }
    Ok(name)
}

pub(super) fn check_token_expiry(expires_in_millis: Option<i64>) -> Result<()> {
    if expires_in_millis.is_some_and(|m| m <= 0) {
        return Err(Error::BadRequest(
            "token expiry must be in the future".into(),
        ));
    }
    Ok(())
}
