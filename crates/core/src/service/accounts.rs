//! Users, workspace memberships and tokens as their owners manage them. Every method takes
//! the acting principal and checks it: instance admins manage users and instance tokens,
//! workspace admins their workspace's members and service tokens, users their own tokens.

use serde::Serialize;
use serde_json::json;

use super::tokens::{check_token_expiry, check_token_name};
use super::{Services, new_id};
use crate::access::{Credential, Principal, Role, Token, TokenKind, TokenSecret};
use crate::accounts::{
    Membership, User, check_new_password, hash_password_blocking, parse_user_name,
};
use crate::audit::AuditRecord;
use crate::clock::Timestamp;
use crate::model::Workspace;
use crate::{Error, Result};

/// Changes to a user; `None` leaves a field as it is.
#[derive(Clone, Default)]
pub struct UserChange {
    pub password: Option<String>,
    pub instance_admin: Option<bool>,
    pub disabled: Option<bool>,
}

/// Never shows the password.
impl std::fmt::Debug for UserChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserChange")
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("instance_admin", &self.instance_admin)
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// Whose token to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOwner {
    /// A user token of the calling user.
    Me,
    /// A user token of the named user (that user itself, or an instance admin).
    User(String),
    /// A workspace service token (workspace admins).
    Service,
    /// An instance token, no user, no workspace (instance admins).
    Instance,
}

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub owner: TokenOwner,
    /// Service tokens: their workspace (required). User tokens: narrow to this workspace.
    pub workspace: Option<String>,
    /// Service and instance tokens: their role (required). User tokens: the most they may do
    /// (default: whatever the user may).
    pub role: Option<Role>,
    pub expires_in_millis: Option<i64>,
}

/// A token as listings show it, with its owner's and workspace's names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub kind: TokenKind,
    pub user: Option<String>,
    pub workspace: Option<String>,
    pub role: Role,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl Services {
    /// Creates a user without asking who may (first start, and behind the checks below).
    pub(super) async fn insert_user(
        &self,
        name: &str,
        password: Option<&str>,
        instance_admin: bool,
    ) -> Result<User> {
        let name = parse_user_name(name)?;
        let password_hash = match password {
            Some(p) => {
                check_new_password(p)?;
                Some(hash_password_blocking(p).await?)
            }
            None => None,
        };
        let user = User {
            id: new_id(),
            name,
            password_hash,
            instance_admin,
            created_at: self.now(),
            disabled_at: None,
            sso_subject: None,
        };
        self.store.create_user(&user).await.map_err(|e| match e {
            Error::Conflict(_) => Error::Conflict(format!("user {:?} already exists", user.name)),
            other => other,
        })?;
        Ok(user)
    }

    /// Creates a user (instance admins). Without a password the user cannot log in until one
    /// is set, but can own tokens.
    async fn create_user_unaudited(
        &self,
        who: &Principal,
        name: &str,
        password: Option<&str>,
        instance_admin: bool,
    ) -> Result<User> {
        who.require_instance_admin("creating users")?;
        self.insert_user(name, password, instance_admin).await
    }

    /// All users (instance admins).
    pub async fn list_users(&self, who: &Principal) -> Result<Vec<User>> {
        who.require_instance_admin("listing users")?;
        self.store.list_users().await
    }

    /// A user by name (instance admins, or the user itself).
    pub async fn user(&self, who: &Principal, name: &str) -> Result<User> {
        let user = self.find_user(name).await?;
        if who.user_id() != Some(user.id.as_str()) {
            who.require_instance_admin("reading other users")?;
        }
        Ok(user)
    }

    /// The caller's own user record; `None` for a caller that is not a user (a service or
    /// instance token) or whose user is gone.
    pub async fn caller_user(&self, who: &Principal) -> Result<Option<User>> {
        match who.user_id() {
            Some(id) => self.store.user_by_id(id).await,
            None => Ok(None),
        }
    }

    /// A user's workspace roles (instance admins, or the user itself).
    pub async fn user_memberships(&self, who: &Principal, name: &str) -> Result<Vec<Membership>> {
        let user = self.user(who, name).await?;
        self.store.user_memberships(&user.id).await
    }

    pub(super) async fn find_user(&self, name: &str) -> Result<User> {
        let lookup = parse_user_name(name).unwrap_or_else(|_| name.to_owned());
        self.store
            .user_by_name(&lookup)
            .await?
            .ok_or_else(|| Error::NotFound(format!("user {name:?} does not exist")))
    }

    /// Sets a password, the instance admin flag, or disables/enables a user. Instance admins
    /// change anything; users may set their own password (through a session or an
    /// unrestricted token). A new password or disabling ends the user's sessions; every change
    /// applies to this process at once and to others within a second.
    async fn update_user_unaudited(
        &self,
        who: &Principal,
        name: &str,
        change: UserChange,
    ) -> Result<User> {
        let mut user = self.find_user(name).await?;
        let own_password_only = change.instance_admin.is_none() && change.disabled.is_none();
        let is_self = who.user_id() == Some(user.id.as_str());
        if !(who.instance_admin || is_self && own_password_only && acts_fully_as_user(who)) {
            who.require_instance_admin("changing users (other than one's own password)")?;
        }
        if let Some(password) = &change.password {
            check_new_password(password)?;
        }
        let now = self.now();
        let disable = change.disabled == Some(true) && !user.is_disabled();
        let demote = change.instance_admin == Some(false) && user.instance_admin;
        if (disable || demote) && user.instance_admin && !user.is_disabled() {
            self.ensure_another_instance_admin(&user).await?;
        }
        if let Some(password) = &change.password {
            user.password_hash = Some(hash_password_blocking(password).await?);
        }
        if let Some(admin) = change.instance_admin {
            user.instance_admin = admin;
        }
        match change.disabled {
            Some(true) if user.disabled_at.is_none() => user.disabled_at = Some(now),
            Some(false) => user.disabled_at = None,
            _ => {}
        }
        if !self.store.update_user(&user).await? {
            return Err(Error::NotFound(format!("user {name:?} does not exist")));
        }
        if change.password.is_some() || user.is_disabled() {
            self.store.delete_user_sessions(&user.id).await?;
        }
        self.forget_user(&user.id);
        Ok(user)
    }

    /// Removes a user with its memberships, tokens and sessions (instance admins).
    async fn delete_user_unaudited(&self, who: &Principal, name: &str) -> Result<User> {
        who.require_instance_admin("deleting users")?;
        let user = self.find_user(name).await?;
        if who.user_id() == Some(user.id.as_str()) {
            return Err(Error::Conflict(
                "you cannot delete yourself; another instance admin can".into(),
            ));
        }
        if user.instance_admin && !user.is_disabled() {
            self.ensure_another_instance_admin(&user).await?;
        }
        if !self.store.delete_user(&user.id).await? {
            return Err(Error::NotFound(format!("user {name:?} does not exist")));
        }
        self.forget_user(&user.id);
        Ok(user)
    }

    /// Refuses a change that would leave no enabled instance admin user.
    pub(super) async fn ensure_another_instance_admin(&self, user: &User) -> Result<()> {
        let others = self
            .store
            .list_users()
            .await?
            .into_iter()
            .filter(|u| u.id != user.id && u.instance_admin && !u.is_disabled())
            .count();
        if others == 0 {
            return Err(Error::Conflict(format!(
                "{:?} is the only enabled instance admin; make another user instance admin first",
                user.name
            )));
        }
        Ok(())
    }

    // ---- memberships ----------------------------------------------------------------------

    /// A workspace's members (its admins, instance admins).
    pub async fn members(&self, who: &Principal, ws: &str) -> Result<Vec<Membership>> {
        let (workspace, _) = self
            .authorize(who, ws, Role::Admin, "listing members")
            .await?;
        self.store.workspace_members(&workspace.id).await
    }

    /// Gives a user a role in a workspace, replacing the one it had (workspace admins,
    /// instance admins). Applies to this process at once, elsewhere within a second.
    async fn set_member_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        user_name: &str,
        role: Role,
    ) -> Result<Membership> {
        let (workspace, _) = self
            .authorize(who, ws, Role::Admin, "managing members")
            .await?;
        let user = self.find_user(user_name).await?;
        let now = self.now();
        self.store
            .set_membership(&user.id, &workspace.id, role, now)
            .await?;
        self.forget_user(&user.id);
        Ok(Membership {
            user_id: user.id,
            user_name: user.name,
            workspace_id: workspace.id,
            workspace_name: workspace.name,
            role,
            granted_at: now,
        })
    }

    /// Takes a user's role in a workspace away (workspace admins, instance admins).
    async fn remove_member_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        user_name: &str,
    ) -> Result<()> {
        let (workspace, _) = self
            .authorize(who, ws, Role::Admin, "managing members")
            .await?;
        let user = self.find_user(user_name).await?;
        let removed = self
            .store
            .remove_membership(&user.id, &workspace.id)
            .await?;
        self.forget_user(&user.id);
        if !removed {
            return Err(Error::NotFound(format!(
                "user {:?} is not a member of workspace {:?}",
                user.name, workspace.name
            )));
        }
        Ok(())
    }

    // ---- tokens ---------------------------------------------------------------------------

    /// Creates a token of any kind, checking that `who` may ([`Services::token_owner`]).
    async fn create_token_as_unaudited(
        &self,
        who: &Principal,
        request: NewToken,
    ) -> Result<(Token, TokenSecret)> {
        let name = check_token_name(&request.name)?.to_owned();
        check_token_expiry(request.expires_in_millis)?;
        let workspace = match &request.workspace {
            Some(w) => Some(self.visible_workspace(who, w).await?),
            None => None,
        };
        let (user_id, role) = self
            .token_owner(who, &request.owner, workspace.as_ref(), request.role)
            .await?;
        let expires = request.expires_in_millis.map(|m| self.now().plus_millis(m));
        self.mint_token(user_id, workspace.map(|w| w.id), role, &name, expires)
            .await
    }

    /// Who owns a token `who` asks for, and its role, if `who` may create it: a user makes
    /// its own tokens (through a session or an unrestricted token), a workspace admin that
    /// workspace's service tokens, an instance admin anything. S3 keys follow the same rules.
    pub(super) async fn token_owner(
        &self,
        who: &Principal,
        owner: &TokenOwner,
        workspace: Option<&Workspace>,
        role: Option<Role>,
    ) -> Result<(Option<String>, Role)> {
        Ok(match owner {
            TokenOwner::Me | TokenOwner::User(_) => {
                let user = match owner {
                    TokenOwner::User(n) => self.find_user(n).await?,
                    _ => {
                        let id = who.user_id().ok_or_else(|| {
                            Error::BadRequest(format!(
                                "{} has no user to own a token; create a service token (with a workspace) instead",
                                who.describe()
                            ))
                        })?;
                        self.store
                            .user_by_id(id)
                            .await?
                            .ok_or_else(|| Error::NotFound("your user no longer exists".into()))?
                    }
                };
                let is_self = who.user_id() == Some(user.id.as_str());
                if !(is_self && acts_fully_as_user(who) || who.instance_admin) {
                    if is_self {
                        return Err(Error::Forbidden(format!(
                            "{} is narrowed, so it cannot create tokens; log in or use an unrestricted token",
                            who.describe()
                        )));
                    }
                    who.require_instance_admin("creating tokens for other users")?;
                }
                if user.is_disabled() {
                    return Err(Error::Conflict(format!(
                        "user {:?} is disabled; enable it before creating tokens for it",
                        user.name
                    )));
                }
                (Some(user.id), role.unwrap_or(Role::Admin))
            }
            TokenOwner::Service => {
                let ws = workspace
                    .ok_or_else(|| Error::BadRequest("a service token needs a workspace".into()))?;
                who.require(&ws.id, Role::Admin, "creating service tokens")?;
                let role =
                    role.ok_or_else(|| Error::BadRequest("a service token needs a role".into()))?;
                (None, role)
            }
            TokenOwner::Instance => {
                if workspace.is_some() {
                    return Err(Error::BadRequest(
                        "an instance token has no workspace; leave it out or create a service token".into(),
                    ));
                }
                who.require_instance_admin("creating instance tokens")?;
                let role =
                    role.ok_or_else(|| Error::BadRequest("an instance token needs a role".into()))?;
                (None, role)
            }
        })
    }

    /// The tokens `who` may see: instance admins all; others their own user tokens and the
    /// service tokens of workspaces they administer. `workspace`: only tokens acting there
    /// (service tokens, and user tokens narrowed to it).
    pub async fn tokens_visible_to(
        &self,
        who: &Principal,
        workspace: Option<&str>,
    ) -> Result<Vec<TokenInfo>> {
        let ws_id = match workspace {
            Some(w) => Some(self.visible_workspace(who, w).await?.id),
            None => None,
        };
        let all = self.store.list_tokens(ws_id.as_deref()).await?;
        let visible: Vec<Token> = all
            .into_iter()
            .filter(|t| {
                who.instance_admin
                    || t.user_id.is_some() && t.user_id.as_deref() == who.user_id()
                    || t.kind() == TokenKind::Service
                        && t.workspace_id
                            .as_deref()
                            .and_then(|w| who.role_in(w))
                            .is_some_and(|r| r >= Role::Admin)
            })
            .collect();
        self.describe_tokens(visible).await
    }

    /// Tokens with their users' and workspaces' names.
    pub async fn describe_tokens(&self, tokens: Vec<Token>) -> Result<Vec<TokenInfo>> {
        let workspaces = self.store.list_workspaces().await?;
        let users = if tokens.iter().any(|t| t.user_id.is_some()) {
            self.store.list_users().await?
        } else {
            Vec::new()
        };
        Ok(tokens
            .into_iter()
            .map(|t| TokenInfo {
                kind: t.kind(),
                user: t.user_id.as_ref().map(|id| {
                    users
                        .iter()
                        .find(|u| &u.id == id)
                        .map(|u| u.name.clone())
                        .unwrap_or_else(|| id.clone())
                }),
                workspace: t.workspace_id.as_ref().map(|id| {
                    workspaces
                        .iter()
                        .find(|w| &w.id == id)
                        .map(|w| w.name.clone())
                        .unwrap_or_else(|| id.clone())
                }),
                id: t.id,
                name: t.name,
                role: t.role,
                created_at: t.created_at,
                expires_at: t.expires_at,
                last_used_at: t.last_used_at,
                revoked_at: t.revoked_at,
            })
            .collect())
    }

    /// Revokes a token: one's own, a service token of a workspace one administers, or (instance
    /// admins) any. Applies to this process at once, elsewhere within a second.
    async fn revoke_token_as_unaudited(
        &self,
        who: &Principal,
        token_id: &str,
    ) -> Result<TokenInfo> {
        let not_found = || Error::NotFound(format!("token {token_id:?} does not exist"));
        let token = self
            .store
            .token_by_id(token_id)
            .await?
            .ok_or_else(not_found)?;
        let own = token.user_id.is_some() && token.user_id.as_deref() == who.user_id();
        if !(who.instance_admin || own) {
            match (token.kind(), token.workspace_id.as_deref()) {
                (TokenKind::Service, Some(ws)) => {
                    // Someone without any role there must not learn the token exists.
                    if who.role_in(ws).is_none() {
                        return Err(not_found());
                    }
                    who.require(ws, Role::Admin, "revoking service tokens")?;
                }
                _ => return Err(not_found()),
            }
        }
        if !self.store.revoke_token(&token.id, self.now()).await? {
            return Err(Error::Conflict(format!(
                "token {:?} is already revoked",
                token.name
            )));
        }
        self.forget_token(&token.id);
        let revoked = self
            .store
            .token_by_id(&token.id)
            .await?
            .ok_or_else(not_found)?;
        self.describe_tokens(vec![revoked])
            .await?
            .pop()
            .ok_or_else(not_found)
    }
}

/// A session, an unrestricted user token, or the local CLI: acts with all its user's powers.
fn acts_fully_as_user(who: &Principal) -> bool {
    match who.credential {
        Credential::Session | Credential::Local => true,
        Credential::Token(TokenKind::User) => !who.narrowed,
        Credential::Token(_) => false,
    }
}

/// The audited entry points of account management: each records its outcome (successes
/// wait until the entry is stored). Passwords and secrets never reach the log.
impl Services {
    /// Creates a user (instance admins). Audited as `user.create`.
    pub async fn create_user(
        &self,
        who: &Principal,
        name: &str,
        password: Option<&str>,
        instance_admin: bool,
    ) -> Result<User> {
        let record = AuditRecord::by(who, "user.create", self.now())
            .target(name)
            .detail(json!({"instance_admin": instance_admin, "password_set": password.is_some()}));
        let result = self
            .create_user_unaudited(who, name, password, instance_admin)
            .await;
        self.conclude(result, record, |_, r| (r, None)).await
    }

    /// Changes a user's password, instance-admin flag or disabled flag. Audited as
    /// `user.update` (never the password itself).
    pub async fn update_user(
        &self,
        who: &Principal,
        name: &str,
        change: UserChange,
    ) -> Result<User> {
        let record = AuditRecord::by(who, "user.update", self.now())
            .target(name)
            .detail(json!({
                "password_changed": change.password.is_some(),
                "instance_admin": change.instance_admin,
                "disabled": change.disabled,
            }));
        let result = self.update_user_unaudited(who, name, change).await;
        self.conclude(result, record, |_, r| (r, None)).await
    }

    /// Deletes a user (instance admins). Audited as `user.delete`.
    pub async fn delete_user(&self, who: &Principal, name: &str) -> Result<User> {
        let record = AuditRecord::by(who, "user.delete", self.now()).target(name);
        let result = self.delete_user_unaudited(who, name).await;
        self.conclude(result, record, |_, r| (r, None)).await
    }

    /// Grants a user a role in a workspace (workspace admins). Audited as `member.set`.
    pub async fn set_member(
        &self,
        who: &Principal,
        ws: &str,
        user_name: &str,
        role: Role,
    ) -> Result<Membership> {
        let record = AuditRecord::by(who, "member.set", self.now())
            .workspace(ws)
            .target(user_name)
            .detail(json!({"role": role}));
        let result = self.set_member_unaudited(who, ws, user_name, role).await;
        self.conclude(result, record, |_, r| (r, None)).await
    }

    /// Removes a user from a workspace (workspace admins). Audited as `member.remove`.
    pub async fn remove_member(&self, who: &Principal, ws: &str, user_name: &str) -> Result<()> {
        let record = AuditRecord::by(who, "member.remove", self.now())
            .workspace(ws)
            .target(user_name);
        let result = self.remove_member_unaudited(who, ws, user_name).await;
        self.conclude(result, record, |_, r| (r, None)).await
    }

    /// Creates a token of any kind, checking that `who` may (see the unaudited variant).
    /// Audited as `token.create`; the target is the new token's id.
    pub async fn create_token_as(
        &self,
        who: &Principal,
        request: NewToken,
    ) -> Result<(Token, TokenSecret)> {
        let mut record = AuditRecord::by(who, "token.create", self.now()).detail(json!({
            "name": request.name,
            "workspace": request.workspace,
            "role": request.role,
            "expires_in_ms": request.expires_in_millis,
        }));
        if let Some(ws) = &request.workspace {
            record = record.workspace(ws.clone());
        }
        let result = self.create_token_as_unaudited(who, request).await;
        self.conclude(result, record, |(token, _), r| {
            (r.target(token.id.clone()), None)
        })
        .await
    }

    /// Revokes a token (see the unaudited variant for who may). Audited as `token.revoke`.
    pub async fn revoke_token_as(&self, who: &Principal, token_id: &str) -> Result<TokenInfo> {
        let record = AuditRecord::by(who, "token.revoke", self.now()).target(token_id);
        let result = self.revoke_token_as_unaudited(who, token_id).await;
        self.conclude(result, record, |info, r| {
            (r.detail(json!({"name": info.name})), None)
        })
        .await
    }
}
