//! Roles, API tokens and the principal a request acts as.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::accounts::UserAccess;
use crate::clock::Timestamp;
pub use crate::s3_keys::S3KeyCredentials;

/// What a principal may do in a workspace. Ordered: each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads only the outputs of states, through the http backend address (the state it gets
    /// has its resources stripped): least privilege for `terraform_remote_state` consumers.
    Outputs,
    /// Reads states.
    Viewer,
    /// Also writes states, locks them and releases its own locks.
    Editor,
    /// Also deletes states, force-unlocks, and manages the workspace's members and tokens.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Outputs, Role::Viewer, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Outputs => "outputs",
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "outputs" => Ok(Role::Outputs),
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(Error::BadRequest(format!(
                "unknown role {other:?}: use outputs, viewer, editor or admin"
            ))),
        }
    }
}

/// A stored token. The secret itself is never stored, only its SHA-256.
///
/// Three kinds (see [`TokenKind`]): a user token (`user_id` set) acts with its user's current
/// roles, narrowed to `workspace_id` when set and capped at `role`; a workspace service token
/// (no user, a workspace) has `role` in that workspace; an instance token (no user, no
/// workspace) has `role` in every workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub id: String,
    pub name: String,
    /// The user whose roles this token acts with; `None` for service and instance tokens.
    pub user_id: Option<String>,
    /// Service token: its workspace. User token: the one workspace it is narrowed to.
    /// `None` on an instance token, or a user token valid wherever its user is.
    pub workspace_id: Option<String>,
    /// Service and instance tokens: their role. User tokens: the most they may do
    /// (`admin`: no cap beyond the user's own roles).
    pub role: Role,
    #[serde(skip)]
    pub secret_hash: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// Updated at most about once a minute (see `Services::authenticate`).
    pub last_used_at: Option<Timestamp>,
    /// Set on an S3 access key ([`crate::s3_keys`]): it signs S3 requests with its sealed
    /// secret and is never accepted as a bearer token.
    pub s3_access_key_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Belongs to a user and acts with that user's roles (optionally narrowed).
    User,
    /// Belongs to one workspace, with a fixed role there.
    Service,
    /// No user, no workspace: its role applies in every workspace.
    Instance,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::User => "user",
            TokenKind::Service => "service",
            TokenKind::Instance => "instance",
        }
    }
}

impl Token {
    pub fn is_usable_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }

    pub fn kind(&self) -> TokenKind {
        match (&self.user_id, &self.workspace_id) {
            (Some(_), _) => TokenKind::User,
            (None, Some(_)) => TokenKind::Service,
            (None, None) => TokenKind::Instance,
        }
    }

    pub fn is_s3_key(&self) -> bool {
        self.s3_access_key_id.is_some()
    }

    /// A user token restricted beyond its user's own roles (to a workspace or below admin).
    pub fn is_narrowed(&self) -> bool {
        self.workspace_id.is_some() || self.role < Role::Admin
    }
}

const TOKEN_PREFIX: &str = "sht_";

/// A freshly minted secret: shown once, then only its hash exists.
pub struct TokenSecret(String);

impl TokenSecret {
    pub fn generate() -> Self {
        TokenSecret(random_secret(TOKEN_PREFIX))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> String {
        hash_secret(&self.0)
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(***)")
    }
}

/// `prefix` followed by 256 random bits, URL-safe base64.
pub(crate) fn random_secret(prefix: &str) -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    format!("{prefix}{body}")
}

/// Tokens are 256 random bits, so a plain SHA-256 is a sound lookup hash (no password stretching needed).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Where a principal's roles apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grants {
    /// The same role in every workspace (instance tokens, instance admins).
    Everywhere(Role),
    /// A role per workspace id; absent workspaces: no access.
    Workspaces(BTreeMap<String, Role>),
}

impl Grants {
    pub fn role_in(&self, workspace_id: &str) -> Option<Role> {
        match self {
            Grants::Everywhere(role) => Some(*role),
            Grants::Workspaces(map) => map.get(workspace_id).copied(),
        }
    }

    /// Only `workspace_id` (when given), each role at most `cap`.
    pub fn narrowed(self, workspace_id: Option<&str>, cap: Role) -> Grants {
        let grants = match workspace_id {
            None => self,
            Some(w) => Grants::Workspaces(
                self.role_in(w)
                    .map(|role| (w.to_owned(), role))
                    .into_iter()
                    .collect(),
            ),
        };
        match grants {
            Grants::Everywhere(role) => Grants::Everywhere(role.min(cap)),
            Grants::Workspaces(map) => Grants::Workspaces(
                map.into_iter()
                    .map(|(w, role)| (w, role.min(cap)))
                    .collect(),
            ),
        }
    }
}

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Credential {
    Token(TokenKind),
    /// A browser session (cookie) after a password login.
    Session,
    /// A local CLI command, acting with the operator's filesystem rights.
    Local,
}

/// The user a principal acts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrincipalUser {
    pub id: String,
    pub name: String,
}

impl PrincipalUser {
    fn of(access: &UserAccess) -> Self {
        PrincipalUser {
            id: access.user.id.clone(),
            name: access.user.name.clone(),
        }
    }
}

impl UserAccess {
    /// The user's own roles: admin everywhere for an instance admin, else its memberships.
    pub fn grants(&self) -> Grants {
        if self.user.instance_admin {
            Grants::Everywhere(Role::Admin)
        } else {
            Grants::Workspaces(self.memberships.clone())
        }
    }
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's id, or the session's for a browser session; lock ownership goes by it.
    pub token_id: String,
    /// The token's name (the user's name for a browser session); shown as writer and lock holder.
    pub token_name: String,
    pub credential: Credential,
    /// The user behind a user token or a session.
    pub user: Option<PrincipalUser>,
    /// May manage users and instance tokens: an instance admin user (through a session or an
    /// unrestricted user token), an instance token with role admin, or a local CLI command.
    pub instance_admin: bool,
    pub grants: Grants,
    /// A user token restricted to a workspace or below admin: it cannot create tokens or
    /// use instance admin powers.
    pub narrowed: bool,
    /// The client's address as the server saw it (`None` for local CLI commands); audited.
    pub source_ip: Option<String>,
}

impl Principal {
    /// A service or instance token's principal. (A user token needs its user: [`Principal::for_user`].)
    pub fn from_token(token: &Token) -> Self {
        let grants = match &token.workspace_id {
            None => Grants::Everywhere(token.role),
            Some(w) => Grants::Workspaces(BTreeMap::from([(w.clone(), token.role)])),
        };
        Principal {
            token_id: token.id.clone(),
            token_name: token.name.clone(),
            credential: Credential::Token(token.kind()),
            user: None,
            instance_admin: token.kind() == TokenKind::Instance && token.role == Role::Admin,
            grants,
            narrowed: false,
            source_ip: None,
        }
    }

    /// A user acting through one of its tokens: the user's roles within the token's narrowing.
    pub fn for_user_token(user: &UserAccess, token: &Token) -> Self {
        Principal {
            token_id: token.id.clone(),
            token_name: token.name.clone(),
            credential: Credential::Token(TokenKind::User),
            user: Some(PrincipalUser::of(user)),
            instance_admin: user.user.instance_admin && !token.is_narrowed(),
            grants: user
                .grants()
                .narrowed(token.workspace_id.as_deref(), token.role),
            narrowed: token.is_narrowed(),
            source_ip: None,
        }
    }

    /// A user acting through a browser session: all of the user's roles.
    pub fn for_session(user: &UserAccess, session_id: &str) -> Self {
        Principal {
            token_id: session_id.to_owned(),
            token_name: user.user.name.clone(),
            credential: Credential::Session,
            user: Some(PrincipalUser::of(user)),
            instance_admin: user.user.instance_admin,
            grants: user.grants(),
            narrowed: false,
            source_ip: None,
        }
    }

    /// The principal used by local CLI commands, which act with the operator's filesystem rights.
    pub fn local_operator() -> Self {
        Principal {
            token_id: "local".into(),
            token_name: "local-cli".into(),
            credential: Credential::Local,
            user: None,
            instance_admin: true,
            grants: Grants::Everywhere(Role::Admin),
            narrowed: false,
            source_ip: None,
        }
    }

    /// Who did it, for the audit log: the user's name if there is a user, else the token's name.
    pub fn actor(&self) -> String {
        match &self.user {
            Some(u) => u.name.clone(),
            None => self.token_name.clone(),
        }
    }

    /// The user's id, if a user stands behind this principal.
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.id.as_str())
    }

    /// Whether this principal administers the whole instance (all workspaces, creating and
    /// deleting them, users, instance tokens).
    pub fn is_instance_admin(&self) -> bool {
        self.instance_admin
    }

    /// The role this principal has in a workspace, if any.
    pub fn role_in(&self, workspace_id: &str) -> Option<Role> {
        self.grants.role_in(workspace_id)
    }

    /// Succeeds when the principal has at least `needed` in the workspace.
    pub fn require(&self, workspace_id: &str, needed: Role, action: &str) -> Result<Role, Error> {
        match self.role_in(workspace_id) {
            Some(role) if role >= needed => Ok(role),
            Some(Role::Outputs) => Err(Error::Forbidden(format!(
                "{} has role outputs here, which only reads a state's outputs through the http backend \
                 address; {action} needs {needed}",
                self.describe()
            ))),
            Some(role) => Err(Error::Forbidden(format!(
                "{} has role {role} here; {action} needs {needed}",
                self.describe()
            ))),
            None => Err(Error::Forbidden(format!(
                "{} has no access to this workspace",
                self.describe()
            ))),
        }
    }

    /// Succeeds for instance admins.
    pub fn require_instance_admin(&self, action: &str) -> Result<(), Error> {
        if self.instance_admin {
            return Ok(());
        }
        let why = if self.narrowed {
            " (a user token narrowed to a workspace or a role never is, even an instance admin's)"
        } else {
            ""
        };
        Err(Error::Forbidden(format!(
            "{action} needs an instance admin; {} is not one{why}",
            self.describe()
        )))
    }

    /// "token \"ci\"", "user \"alice\"" or "token \"laptop\" of user \"alice\"", for messages.
    pub fn describe(&self) -> String {
        match (&self.user, self.credential) {
            (Some(u), Credential::Session) => format!("user {:?}", u.name),
            (Some(u), _) => format!("token {:?} of user {:?}", self.token_name, u.name),
            (None, _) => format!("token {:?}", self.token_name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::User;

    #[test]
    fn roles_are_ordered_and_parse() {
        assert!(
            Role::Outputs < Role::Viewer
                && Role::Viewer < Role::Editor
                && Role::Editor < Role::Admin
        );
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().ok(), Some(r));
            assert_eq!(serde_json::to_string(&r).ok(), Some(format!("\"{r}\"")));
        }
        assert!("owner".parse::<Role>().is_err());
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let a = TokenSecret::generate();
        let b = TokenSecret::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("sht_"));
        assert_eq!(a.hash(), hash_secret(a.expose()));
        assert_eq!(a.hash().len(), 64);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    fn token(user: Option<&str>, ws: Option<&str>, role: Role) -> Token {
        Token {
            id: "t".into(),
            name: "ci".into(),
            user_id: user.map(str::to_owned),
            workspace_id: ws.map(str::to_owned),
            role,
            secret_hash: String::new(),
            created_at: Timestamp(0),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            s3_access_key_id: None,
        }
    }

    fn user(instance_admin: bool, memberships: &[(&str, Role)]) -> UserAccess {
        UserAccess {
            user: User {
                id: "u1".into(),
                name: "alice".into(),
                password_hash: None,
                instance_admin,
                created_at: Timestamp(0),
                disabled_at: None,
                sso_subject: None,
            },
            memberships: memberships
                .iter()
                .map(|(w, r)| ((*w).to_owned(), *r))
                .collect(),
        }
    }

    #[test]
    fn service_and_instance_tokens() {
        let ws = Principal::from_token(&token(None, Some("w1"), Role::Editor));
        assert_eq!(ws.credential, Credential::Token(TokenKind::Service));
        assert_eq!(ws.role_in("w1"), Some(Role::Editor));
        assert_eq!(ws.role_in("w2"), None);
        assert!(!ws.instance_admin);
        assert!(ws.require("w1", Role::Editor, "write").is_ok());
        assert!(matches!(
            ws.require("w1", Role::Admin, "delete"),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            ws.require("w2", Role::Viewer, "read"),
            Err(Error::Forbidden(_))
        ));
        assert_eq!(ws.actor(), "ci");
        let instance = Principal::from_token(&token(None, None, Role::Admin));
        assert_eq!(instance.role_in("anything"), Some(Role::Admin));
        assert!(instance.instance_admin);
        let instance_viewer = Principal::from_token(&token(None, None, Role::Viewer));
        assert!(!instance_viewer.instance_admin);
        assert!(instance_viewer.require_instance_admin("x").is_err());
    }

    #[test]
    fn user_tokens_act_with_the_users_roles_narrowed() {
        let alice = user(false, &[("w1", Role::Editor), ("w2", Role::Viewer)]);
        let full = Principal::for_user_token(&alice, &token(Some("u1"), None, Role::Admin));
        assert_eq!(full.role_in("w1"), Some(Role::Editor));
        assert_eq!(full.role_in("w2"), Some(Role::Viewer));
        assert_eq!(full.role_in("w3"), None);
        assert!(!full.narrowed && !full.instance_admin);
        assert_eq!(full.actor(), "alice");
        assert_eq!(full.token_name, "ci");

        let to_w1 = Principal::for_user_token(&alice, &token(Some("u1"), Some("w1"), Role::Admin));
        assert_eq!(to_w1.role_in("w1"), Some(Role::Editor));
        assert_eq!(to_w1.role_in("w2"), None, "narrowed to w1");
        assert!(to_w1.narrowed);

        let capped = Principal::for_user_token(&alice, &token(Some("u1"), None, Role::Viewer));
        assert_eq!(capped.role_in("w1"), Some(Role::Viewer), "capped at viewer");
        assert_eq!(capped.role_in("w2"), Some(Role::Viewer));

        let to_w3 = Principal::for_user_token(&alice, &token(Some("u1"), Some("w3"), Role::Admin));
        assert_eq!(to_w3.role_in("w3"), None, "narrowing never grants");
        assert_eq!(to_w3.grants, Grants::Workspaces(BTreeMap::new()));

        let outputs =
            Principal::for_user_token(&alice, &token(Some("u1"), Some("w1"), Role::Outputs));
        assert_eq!(outputs.role_in("w1"), Some(Role::Outputs));
        let err = outputs
            .require("w1", Role::Viewer, "reading a state")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("role outputs") && err.contains("http backend"),
            "{err}"
        );
    }

    #[test]
    fn instance_admin_users() {
        let root = user(true, &[]);
        let full = Principal::for_user_token(&root, &token(Some("u1"), None, Role::Admin));
        assert!(full.instance_admin);
        assert_eq!(full.role_in("any"), Some(Role::Admin));
        let narrowed =
            Principal::for_user_token(&root, &token(Some("u1"), Some("w1"), Role::Admin));
        assert!(
            !narrowed.instance_admin,
            "a narrowed token never is an instance admin"
        );
        assert_eq!(narrowed.role_in("w1"), Some(Role::Admin));
        assert_eq!(narrowed.role_in("w2"), None);
        let err = narrowed
            .require_instance_admin("creating users")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("narrowed"), "{err}");
        let session = Principal::for_session(&root, "s1");
        assert_eq!(session.credential, Credential::Session);
        assert_eq!(session.token_id, "s1");
        assert_eq!(session.token_name, "alice");
        assert!(session.instance_admin);
        assert_eq!(session.describe(), "user \"alice\"");
    }

    #[test]
    fn local_operator_is_an_instance_admin() {
        let op = Principal::local_operator();
        assert!(op.instance_admin);
        assert_eq!(op.role_in("x"), Some(Role::Admin));
        assert_eq!(op.actor(), "local-cli");
    }

    #[test]
    fn token_kinds() {
        assert_eq!(token(Some("u"), None, Role::Admin).kind(), TokenKind::User);
        assert_eq!(
            token(None, Some("w"), Role::Admin).kind(),
            TokenKind::Service
        );
        assert_eq!(token(None, None, Role::Admin).kind(), TokenKind::Instance);
        assert!(!token(Some("u"), None, Role::Admin).is_narrowed());
        assert!(token(Some("u"), None, Role::Editor).is_narrowed());
        assert!(token(Some("u"), Some("w"), Role::Admin).is_narrowed());
    }

    #[test]
    fn expiry_and_revocation() {
        let mut t = token(None, None, Role::Viewer);
        t.expires_at = Some(Timestamp(100));
        assert!(t.is_usable_at(Timestamp(99)));
        assert!(!t.is_usable_at(Timestamp(100)));
        t.expires_at = None;
        t.revoked_at = Some(Timestamp(5));
        assert!(!t.is_usable_at(Timestamp(1)));
    }
}
