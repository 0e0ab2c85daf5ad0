//! The `[oidc]` section: single sign-on with an OpenID Connect provider.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use statehouse_core::access::Role;

/// Single sign-on with an OpenID Connect provider (authorization code with PKCE). On when
/// `issuer_url` is set.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OidcConfig {
    /// The provider's issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer_url: Option<String>,
    pub client_id: Option<String>,
    /// `sealed:…` (from `statehouse oidc seal-secret`), or the plain secret (warned about);
    /// none for a public client.
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    /// The claim whose value is the statehouse user name.
    pub username_claim: String,
    /// The claim listing the user's groups.
    pub groups_claim: String,
    /// Members of any of these groups are instance admins (empty: the flag is managed by hand).
    pub admin_groups: Vec<String>,
    /// Group → workspace → role.
    pub workspace_roles: BTreeMap<String, BTreeMap<String, Role>>,
    /// statehouse's external base URL (the redirect URI is `<public_url>/ui/oidc/callback`).
    pub public_url: Option<String>,
    /// The sign-in button reads "Sign in with <button_label>".
    pub button_label: String,
    /// Password sign-in stays available (false: single sign-on and tokens only).
    pub local_login: bool,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            issuer_url: None,
            client_id: None,
            client_secret: None,
            scopes: ["openid", "profile", "email", "groups"]
                .map(str::to_owned)
                .to_vec(),
            username_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
            admin_groups: Vec::new(),
            workspace_roles: BTreeMap::new(),
            public_url: None,
            button_label: "single sign-on".into(),
            local_login: true,
        }
    }
}

impl OidcConfig {
    /// Whether single sign-on is configured.
    pub fn enabled(&self) -> bool {
        self.issuer_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty())
    }
}

/// Never shows the client secret.
impl fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer_url", &self.issuer_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("scopes", &self.scopes)
            .field("username_claim", &self.username_claim)
            .field("groups_claim", &self.groups_claim)
            .field("admin_groups", &self.admin_groups)
            .field("workspace_roles", &self.workspace_roles)
            .field("public_url", &self.public_url)
            .field("button_label", &self.button_label)
            .field("local_login", &self.local_login)
            .finish()
    }
}
