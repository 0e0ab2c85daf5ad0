//! Operations as users see them: authenticate, then read/write/lock states, manage tokens and
//! workspaces. Routes and CLI commands call these; these call the store and the cipher.

mod access;
mod accounts;
mod journal;
mod keys;
mod lock_info;
mod lock_queue;
mod locks;
mod metrics;
pub mod multipart;
pub mod object_list;
pub mod objects;
mod s3_keys;
pub mod sealing;
mod sessions;
mod sso;
mod stacks;
mod state_body;
mod states;
mod tokens;
mod webhooks;

use std::sync::Arc;

use md5::{Digest, Md5};

pub use self::accounts::{NewToken as TokenRequest, TokenInfo, TokenOwner, UserChange};
pub use self::journal::MAX_PAGE as MAX_AUDIT_PAGE;
pub use self::s3_keys::{S3KeyOwner, S3KeyRequest};
pub use self::sessions::{
    LOGIN_WINDOW_MILLIS, LoggedIn, MAX_FAILURES_PER_ACCOUNT, MAX_FAILURES_PER_IP,
    PASSWORD_LOGIN_OFF,
};
pub use self::webhooks::{WebhookChange, WebhookSpec};

use crate::Result;
use crate::access::Token;
use crate::accounts::{AuthSettings, UserAccess};
use crate::bodies::BodyCache;
use crate::cache::TtlCache;
use crate::clock::{Clock, Timestamp};
use crate::crypto::{Binding, Cipher};
use crate::journal::Journal;
use crate::model::{VersionMeta, Workspace};
use crate::s3_keys::StoredS3Key;
use crate::sealed::SealedKind;
use crate::store::Store;

/// A state as the http backend hands it out.
#[derive(Debug, Clone)]
pub struct BackendRead {
    /// The stored version it comes from.
    pub meta: VersionMeta,
    pub body: bytes::Bytes,
    /// Hex MD5 of `body` as sent (differs from `meta.md5` when reduced).
    pub md5_hex: String,
    /// Reduced to its outputs (the reader has the `outputs` role).
    pub outputs_only: bool,
}

/// Everything the services need, cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// Private: the other crates reach storage only through the services (authorized and
    /// audited), and the backup crate through [`Services::backup_store`].
    pub(crate) store: Arc<dyn Store>,
    pub cipher: Arc<Cipher>,
    pub clock: Arc<dyn Clock>,
    pub(crate) workspaces: Arc<TtlCache<Workspace>>,
    pub(crate) tokens: Arc<TtlCache<Token>>,
    /// SHA-256 of a secret that authenticates as the local operator, registered by a CLI
    /// process for its own in-process requests; only ever in this process's memory.
    operator_secret: Option<Arc<[u8; 32]>>,
    /// Users with their memberships, by user id (same trust window as tokens).
    users: Arc<TtlCache<UserAccess>>,
    /// S3 keys (sealed) by access key id, trusted as long as tokens.
    s3_keys: Arc<TtlCache<StoredS3Key>>,
    /// Token ids whose use was recorded within the last minute.
    recently_touched: Arc<TtlCache<()>>,
    /// Plaintext bodies of recently read or written versions (see [`crate::bodies`]).
    pub(crate) bodies: Arc<BodyCache>,
    /// Whether any webhook is enabled (see [`Services::webhooks_enabled`]).
    webhooks_enabled: Arc<TtlCache<bool>>,
    auth: AuthSettings,
    pub(crate) journal: Arc<Journal>,
    login_work: Arc<sessions::LoginWork>,
    /// Label state metrics with workspace and state (`metrics.state_labels`; off: bounded).
    state_metric_labels: bool,
    /// The store's figures as last read for `/metrics` (see [`Services::store_gauges`]).
    store_gauges: Arc<TtlCache<Arc<crate::store::metrics::StoreGauges>>>,
    /// What LOCKs waiting in line listen to (see [`lock_queue::LockSignals`]).
    pub(crate) lock_signals: Arc<lock_queue::LockSignals>,
}

/// Every request resolves a workspace name. Workspaces are never renamed or deleted (yet), so
/// a found one is remembered briefly; the TTL bounds how long another replica could act on a
/// stale entry once renames and deletes exist (they must also forget this process's entry).
const WORKSPACE_CACHE_MILLIS: i64 = 5_000;

/// Every request authenticates a token. A found token is remembered for one second, so a
/// revocation made elsewhere (CLI, another replica) takes effect everywhere within a second;
/// expiry is checked on every request. A user's roles and disabled flag are trusted as long.
const TOKEN_CACHE_MILLIS: i64 = 1_000;

/// A token's `last_used_at` is written at most this often (not a database write per request).
const TOKEN_TOUCH_MILLIS: i64 = 60_000;

/// The workspace created on first start.
pub const DEFAULT_WORKSPACE: &str = "default";
const BOOTSTRAP_FLAG: &str = "bootstrap-admin-token";
/// The instance admin user created on first start; it owns the bootstrap token.
pub const BOOTSTRAP_USER: &str = "admin";

pub fn binding_for<'a>(state_id: &'a str, version_id: &'a str) -> Binding<'a> {
    SealedKind::State.binding(state_id, version_id)
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn md5_hex(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

impl Services {
    /// Backup persistence, for the backup crate's services (which authorize and audit through
    /// these services).
    pub fn backup_store(&self) -> &dyn crate::store::backups::BackupStore {
        self.store.as_ref()
    }

    /// Which store this is (`sqlite` or `postgres`), for logs.
    pub fn store_kind(&self) -> &'static str {
        self.store.kind()
    }

    /// A cheap round trip to the store (readiness).
    pub async fn ping_store(&self) -> Result<()> {
        self.store.ping().await
    }

    pub fn new(store: Arc<dyn Store>, cipher: Arc<Cipher>, clock: Arc<dyn Clock>) -> Self {
        Services {
            journal: Arc::new(Journal::new(store.clone())),
            store,
            cipher,
            clock,
            workspaces: Arc::new(TtlCache::new(WORKSPACE_CACHE_MILLIS)),
            tokens: Arc::new(TtlCache::new(TOKEN_CACHE_MILLIS)),
            operator_secret: None,
            users: Arc::new(TtlCache::new(TOKEN_CACHE_MILLIS)),
            s3_keys: Arc::new(TtlCache::new(TOKEN_CACHE_MILLIS)),
            recently_touched: Arc::new(TtlCache::new(TOKEN_TOUCH_MILLIS)),
            webhooks_enabled: Arc::new(TtlCache::new(webhooks::WEBHOOKS_ENABLED_MILLIS)),
            bodies: Arc::default(),
            auth: AuthSettings::default(),
            login_work: Arc::default(),
            state_metric_labels: false,
            store_gauges: Arc::new(TtlCache::new(metrics::STORE_GAUGES_MILLIS)),
            lock_signals: Arc::default(),
        }
    }

    /// Session lifetimes and cookie settings (default: [`AuthSettings::default`]).
    pub fn with_auth_settings(mut self, auth: AuthSettings) -> Self {
        self.auth = auth;
        self
    }

    pub fn auth_settings(&self) -> AuthSettings {
        self.auth
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_is_hex() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
