//! Users, workspace memberships, browser sessions, token use and login throttling.

use async_trait::async_trait;

use crate::Result;
use crate::access::{Role, Token};
use crate::accounts::{Membership, Session, User};
use crate::clock::Timestamp;

/// Failed logins recorded under one key (an account name or a source address) since a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    pub count: i64,
    /// The oldest of them: the window frees up one attempt when it ages out.
    pub oldest: Option<Timestamp>,
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    // Users

    /// `Conflict` when the name (or the single sign-on subject) is taken.
    async fn create_user(&self, user: &User) -> Result<()>;
    async fn user_by_id(&self, id: &str) -> Result<Option<User>>;
    async fn user_by_name(&self, name: &str) -> Result<Option<User>>;
    /// The user single sign-on created for this provider account (`issuer#sub`).
    async fn user_by_sso_subject(&self, subject: &str) -> Result<Option<User>>;
    /// In name order.
    async fn list_users(&self) -> Result<Vec<User>>;
    /// Stores the user's password hash, instance admin flag and disabled time; false when
    /// there is no such user.
    async fn update_user(&self, user: &User) -> Result<bool>;
    /// Removes the user with its memberships, tokens and sessions; false when there is none.
    async fn delete_user(&self, id: &str) -> Result<bool>;

    // Memberships

    /// Gives the user `role` in the workspace (replacing any role it had there).
    async fn set_membership(
        &self,
        user_id: &str,
        workspace_id: &str,
        role: Role,
        at: Timestamp,
    ) -> Result<()>;
    /// False when the user had no role there.
    async fn remove_membership(&self, user_id: &str, workspace_id: &str) -> Result<bool>;
    /// In workspace name order.
    async fn user_memberships(&self, user_id: &str) -> Result<Vec<Membership>>;
    /// In user name order.
    async fn workspace_members(&self, workspace_id: &str) -> Result<Vec<Membership>>;

    // Tokens (creation, lookup by hash and revocation are on `Store`)

    async fn token_by_id(&self, id: &str) -> Result<Option<Token>>;
    /// A user's tokens (revoked ones too), oldest first.
    async fn user_tokens(&self, user_id: &str) -> Result<Vec<Token>>;
    /// Records a use: `last_used_at` moves forward to `at` (never back).
    async fn touch_token(&self, id: &str, at: Timestamp) -> Result<()>;

    // Sessions

    async fn create_session(&self, session: &Session) -> Result<()>;
    async fn session_by_hash(&self, secret_hash: &str) -> Result<Option<Session>>;
    /// Moves `last_seen_at` forward to `at` (never back).
    async fn touch_session(&self, id: &str, at: Timestamp) -> Result<()>;
    /// False when there was no such session.
    async fn delete_session(&self, id: &str) -> Result<bool>;
    /// Ends every session of a user; how many there were.
    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64>;
    /// Removes sessions whose absolute end or idle limit has passed; how many.
    async fn delete_expired_sessions(&self, now: Timestamp, idle_since: Timestamp) -> Result<u64>;

    // Login throttling

    /// Records one failed login under each key, and forgets failures older than `forget_before`.
    async fn record_login_failure(
        &self,
        keys: &[String],
        at: Timestamp,
        forget_before: Timestamp,
    ) -> Result<()>;
    async fn login_failures(&self, key: &str, since: Timestamp) -> Result<LoginFailures>;
    /// Forgets a key's failures (after a successful login).
    async fn clear_login_failures(&self, key: &str) -> Result<()>;
}
