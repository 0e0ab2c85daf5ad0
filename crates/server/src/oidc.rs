//! The OpenID Connect relying party behind single sign-on: discovery of the provider (cached
//! for five minutes, so signing keys it rotates are picked up), the authorization URL with
//! PKCE (S256), `state` and `nonce`, the code exchange, and the ID token's verification
//! (signature by the provider's JWKS, issuer, audience, expiry, nonce, access token hash).
//! The user-name and groups claims are read from the ID token, else from the userinfo answer.
//!
//! The provider is the operator's choice (instance configuration), so its connections do not
//! go through the outbound policy that governs what workspaces name. Redirects are not
//! followed.

use std::sync::Arc;
use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardErrorResponse, StandardTokenResponse, TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use statehouse_core::clock::Clock;
use statehouse_core::sso::{ExternalIdentity, GroupMapping};
use statehouse_core::{Error, Result};
use zeroize::Zeroizing;

/// Single sign-on settings (configuration `[oidc]`), the client secret already opened.
pub struct OidcSettings {
    /// The provider's issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer_url: String,
    pub client_id: String,
    /// `None`: a public client (PKCE only).
    pub client_secret: Option<Zeroizing<String>>,
    /// Requested besides `openid`.
    pub scopes: Vec<String>,
    /// The claim whose value is the statehouse user name.
    pub username_claim: String,
    /// The claim listing the user's groups.
    pub groups_claim: String,
    pub mapping: GroupMapping,
    /// statehouse's external base URL, without a trailing slash; the redirect URI is
    /// `<public_url>/ui/oidc/callback`.
    pub public_url: String,
    /// "Sign in with <label>".
    pub button_label: String,
}

/// Never shows the client secret.
impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer_url", &self.issuer_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("scopes", &self.scopes)
            .field("username_claim", &self.username_claim)
            .field("groups_claim", &self.groups_claim)
            .field("mapping", &self.mapping)
            .field("public_url", &self.public_url)
            .field("button_label", &self.button_label)
            .finish()
    }
}

impl OidcSettings {
    pub fn redirect_uri(&self) -> String {
        format!("{}/ui/oidc/callback", self.public_url)
    }
}

/// Every claim the token or userinfo answer carries besides the standard ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl AdditionalClaims for OtherClaims {}

type IdFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenAnswer = StandardTokenResponse<IdFields, CoreTokenType>;
type OidcClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenAnswer,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The provider's metadata is fetched again after this long.
const DISCOVERY_MILLIS: i64 = 5 * 60_000;
/// Each request to the provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a sign-in must remember between its start and the provider's answer (kept in a
/// sealed cookie, never on the server). No `Debug`: it carries the PKCE verifier.
#[derive(Serialize, Deserialize)]
pub struct PendingSignIn {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Where to go once signed in (a local path).
    pub next: String,
    /// When the sign-in started (milliseconds since the epoch).
    pub started_at: i64,
}

/// Single sign-on with one OpenID Connect provider.
pub struct OidcLogin {
    pub settings: OidcSettings,
    http: openidconnect::reqwest::Client,
    clock: Arc<dyn Clock>,
    /// The client made from the last discovery, and when it was made.
    client: tokio::sync::Mutex<Option<(i64, Arc<OidcClient>)>>,
}

impl std::fmt::Debug for OidcLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcLogin")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OidcLogin {
    pub fn new(settings: OidcSettings, clock: Arc<dyn Clock>) -> Result<OidcLogin> {
        IssuerUrl::new(settings.issuer_url.clone())
            .map_err(|e| Error::Config(format!("oidc.issuer_url is not a URL: {e}")))?;
        RedirectUrl::new(settings.redirect_uri())
            .map_err(|e| Error::Config(format!("oidc.public_url is not a URL: {e}")))?;
        let http = openidconnect::reqwest::Client::builder()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the OIDC HTTP client: {e}")))?;
        Ok(OidcLogin {
            settings,
            http,
            clock,
            client: tokio::sync::Mutex::new(None),
        })
    }

    /// The client of the provider's current metadata (discovered at most every 5 minutes).
    async fn client(&self) -> Result<Arc<OidcClient>> {
        let now = self.clock.now().millis();
        let mut cached = self.client.lock().await;
        if let Some((at, client)) = cached.as_ref()
            && now - at < DISCOVERY_MILLIS
        {
            return Ok(client.clone());
        }
        let issuer = IssuerUrl::new(self.settings.issuer_url.clone())
            .map_err(|e| Error::Config(format!("oidc.issuer_url is not a URL: {e}")))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| {
                tracing::warn!(issuer = self.settings.issuer_url, error = %error_chain(&e), "OIDC discovery failed");
                Error::Unavailable(format!(
                    "the identity provider {} could not be reached or sent no usable discovery document; see the server log",
                    self.settings.issuer_url
                ))
            })?;
        let redirect = RedirectUrl::new(self.settings.redirect_uri())
            .map_err(|e| Error::Config(format!("oidc.public_url is not a URL: {e}")))?;
        let client = OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.settings
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.to_string())),
        )
        .set_redirect_uri(redirect);
        let client = Arc::new(client);
        *cached = Some((now, client.clone()));
        Ok(client)
    }

    /// Where to send the browser to sign in, and what to remember until it comes back.
    pub async fn start(&self, next: &str) -> Result<(String, PendingSignIn)> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok((
            url.to_string(),
            PendingSignIn {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                next: next.to_owned(),
                started_at: self.clock.now().millis(),
            },
        ))
    }

    /// Exchanges the code for tokens, verifies the ID token, and reads who it names.
    pub async fn finish(&self, code: &str, pending: &PendingSignIn) -> Result<ExternalIdentity> {
        let client = self.client().await?;
        let refused = |what: &str, e: &dyn std::error::Error| {
            tracing::warn!(issuer = self.settings.issuer_url, error = %error_chain(e), "OIDC sign-in failed: {what}");
            Error::Unauthorized(format!(
                "the identity provider's answer was not accepted ({what}); see the server log"
            ))
        };
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| refused("the provider has no token endpoint", &e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| refused("the code exchange failed", &e))?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| Error::Unauthorized("the identity provider sent no ID token".into()))?;
        let clock = self.clock.clone();
        let verifier = client.id_token_verifier().set_time_fn(move || {
            chrono::DateTime::from_timestamp_millis(clock.now().millis()).unwrap_or_default()
        });
        let nonce = Nonce::new(pending.nonce.clone());
        let claims = id_token
            .claims(&verifier, &nonce)
            .map_err(|e| refused("the ID token did not verify", &e))?;
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(|e| refused("the ID token's algorithm", &e))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| refused("the ID token's key", &e))?;
            let actual = AccessTokenHash::from_token(tokens.access_token(), alg, key)
                .map_err(|e| refused("the access token hash", &e))?;
            if actual != *expected {
                return Err(Error::Unauthorized(
                    "the access token does not match the ID token (at_hash)".into(),
                ));
            }
        }
        let subject = claims.subject().clone();
        let mut all = claims_object(claims);
        let wanted = [&self.settings.username_claim, &self.settings.groups_claim];
        if wanted.iter().any(|c| !all.contains_key(c.as_str()))
            && let Ok(request) =
                client.user_info(tokens.access_token().clone(), Some(subject.clone()))
        {
            let info: UserInfoClaims<OtherClaims, CoreGenderClaim> = request
                .request_async(&self.http)
                .await
                .map_err(|e| refused("the userinfo request failed", &e))?;
            for (key, value) in claims_object(&info) {
                all.entry(key).or_insert(value);
            }
        }
        identity_from_claims(&self.settings, &all, subject.as_str())
    }
}

/// A claims set as one JSON object (standard and other claims alike).
fn claims_object(claims: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(claims) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// The user name and groups the claims give, under the configured claim names.
fn identity_from_claims(
    settings: &OidcSettings,
    claims: &Map<String, Value>,
    subject: &str,
) -> Result<ExternalIdentity> {
    let name_claim = settings.username_claim.as_str();
    let name = match claims.get(name_claim) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => {
            return Err(Error::Forbidden(format!(
                "the identity provider's {name_claim:?} claim is not a text: choose another with oidc.username_claim"
            )));
        }
        None => {
            return Err(Error::Forbidden(format!(
                "the identity provider sent no {name_claim:?} claim (neither in the ID token nor from userinfo): \
                 request a scope that includes it (oidc.scopes) or choose another claim with oidc.username_claim"
            )));
        }
    };
    if name_claim == "email" && claims.get("email_verified") == Some(&Value::Bool(false)) {
        return Err(Error::Forbidden(
            "the identity provider says this e-mail address is not verified".into(),
        ));
    }
    let groups = match claims.get(settings.groups_claim.as_str()) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    Ok(ExternalIdentity {
        name,
        groups,
        provider: settings.issuer_url.clone(),
        subject: subject.to_owned(),
    })
}

/// An error with its sources, for the log (the provider's answers may be in it; never the
/// client secret, which is only ever sent, not echoed by these errors).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings(username_claim: &str) -> OidcSettings {
        OidcSettings {
            issuer_url: "https://idp.example".into(),
            client_id: "statehouse".into(),
            client_secret: Some(Zeroizing::new("very-secret-value".into())),
            scopes: vec!["openid".into(), "groups".into()],
            username_claim: username_claim.into(),
            groups_claim: "groups".into(),
            mapping: GroupMapping::default(),
            public_url: "https://sh.example".into(),
            button_label: "Example".into(),
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn claims_give_the_name_and_groups() {
        let s = settings("preferred_username");
        let id = identity_from_claims(
            &s,
            &claims(serde_json::json!({"preferred_username": "Alice", "groups": ["a", "b", 3]})),
            "sub-1",
        )
        .unwrap();
        assert_eq!(id.name, "Alice");
        assert_eq!(id.groups, vec!["a", "b"]);
        let one = identity_from_claims(
            &s,
            &claims(serde_json::json!({"preferred_username": "bob", "groups": "only"})),
            "sub-2",
        )
        .unwrap();
        assert_eq!(one.groups, vec!["only"]);
        let none = identity_from_claims(&s, &claims(serde_json::json!({"sub": "x"})), "x");
        assert!(matches!(none, Err(Error::Forbidden(m)) if m.contains("preferred_username")));
        let not_text = identity_from_claims(
            &s,
            &claims(serde_json::json!({"preferred_username": 5})),
            "x",
        );
        assert!(not_text.is_err());
    }

    #[test]
    fn an_unverified_email_is_refused_as_the_name() {
        let s = settings("email");
        let unverified = serde_json::json!({"email": "a@example.com", "email_verified": false});
        assert!(identity_from_claims(&s, &claims(unverified), "x").is_err());
        let verified = serde_json::json!({"email": "a@example.com", "email_verified": true});
        assert_eq!(
            identity_from_claims(&s, &claims(verified), "x")
                .unwrap()
                .name,
            "a@example.com"
        );
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        let s = settings("preferred_username");
        let text = format!("{s:?}");
        assert!(!text.contains("very-secret-value"), "{text}");
        assert!(text.contains("***"));
    }
}
