//! Roles, API tokens and the principal a request acts as.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::clock::Timestamp;

/// What a token may do in a workspace. Ordered: each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads states.
    Viewer,
    /// Also writes states, locks them and releases its own locks.
    Editor,
    /// Also deletes states, force-unlocks, and manages tokens and workspaces.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
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
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(Error::BadRequest(format!(
                "unknown role {other:?}: use viewer, editor or admin"
            ))),
        }
    }
}

/// A stored token. The secret itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub id: String,
    pub name: String,
    /// `None`: an instance token, valid in every workspace.
    pub workspace_id: Option<String>,
    pub role: Role,
    #[serde(skip)]
    pub secret_hash: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl Token {
    pub fn is_usable_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

const TOKEN_PREFIX: &str = "sht_";

/// A freshly minted secret: shown once, then only its hash exists.
pub struct TokenSecret(String);

impl TokenSecret {
    pub fn generate() -> Self {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        TokenSecret(format!("{TOKEN_PREFIX}{body}"))
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

/// Tokens are 256 random bits, so a plain SHA-256 is a sound lookup hash (no password stretching needed).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    pub token_name: String,
    pub workspace_id: Option<String>,
    pub role: Role,
    /// The client's address as the server saw it (`None` for local CLI commands); audited.
    pub source_ip: Option<String>,
}

impl Principal {
    pub fn from_token(token: &Token) -> Self {
        Principal {
            token_id: token.id.clone(),
            token_name: token.name.clone(),
            workspace_id: token.workspace_id.clone(),
            role: token.role,
            source_ip: None,
        }
    }

    /// The principal used by local CLI commands, which act with the operator's filesystem rights.
    pub fn local_operator() -> Self {
        Principal {
            token_id: "local".into(),
            token_name: "local-cli".into(),
            workspace_id: None,
            role: Role::Admin,
            source_ip: None,
        }
    }

    /// Whether this principal administers the whole instance (all workspaces, creating and
    /// deleting them).
    pub fn is_instance_admin(&self) -> bool {
        self.workspace_id.is_none() && self.role == Role::Admin
    }

    /// The role this principal has in a workspace, if any.
    pub fn role_in(&self, workspace_id: &str) -> Option<Role> {
        match &self.workspace_id {
            None => Some(self.role),
            Some(w) if w == workspace_id => Some(self.role),
            Some(_) => None,
        }
    }

    /// Succeeds when the principal has at least `needed` in the workspace.
    pub fn require(&self, workspace_id: &str, needed: Role, action: &str) -> Result<Role, Error> {
        match self.role_in(workspace_id) {
            Some(role) if role >= needed => Ok(role),
            Some(role) => Err(Error::Forbidden(format!(
                "token {:?} has role {role} here; {action} needs {needed}",
                self.token_name
            ))),
            None => Err(Error::Forbidden(format!(
                "token {:?} has no access to this workspace",
                self.token_name
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Admin);
        for r in [Role::Viewer, Role::Editor, Role::Admin] {
            assert_eq!(r.as_str().parse::<Role>().ok(), Some(r));
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

    #[test]
    fn principal_scopes() {
        let ws = Principal {
            token_id: "t".into(),
            token_name: "ci".into(),
            workspace_id: Some("w1".into()),
            role: Role::Editor,
            source_ip: None,
        };
        assert_eq!(ws.role_in("w1"), Some(Role::Editor));
        assert_eq!(ws.role_in("w2"), None);
        assert!(ws.require("w1", Role::Editor, "write").is_ok());
        assert!(matches!(
            ws.require("w1", Role::Admin, "delete"),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            ws.require("w2", Role::Viewer, "read"),
            Err(Error::Forbidden(_))
        ));
        let instance = Principal {
            workspace_id: None,
            role: Role::Admin,
            ..ws
        };
        assert_eq!(instance.role_in("anything"), Some(Role::Admin));
    }

    #[test]
    fn expiry_and_revocation() {
        let mut t = Token {
            id: "1".into(),
            name: "n".into(),
            workspace_id: None,
            role: Role::Viewer,
            secret_hash: String::new(),
            created_at: Timestamp(0),
            expires_at: Some(Timestamp(100)),
            revoked_at: None,
        };
        assert!(t.is_usable_at(Timestamp(99)));
        assert!(!t.is_usable_at(Timestamp(100)));
        t.expires_at = None;
        t.revoked_at = Some(Timestamp(5));
        assert!(!t.is_usable_at(Timestamp(1)));
    }
}
