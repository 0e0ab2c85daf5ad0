//! Operations as users see them: authenticate, then read/write/lock states, manage tokens and
//! workspaces. Routes and CLI commands call these; these call the store and the cipher.

mod accounts;
mod journal;
mod keys;
mod lock_info;
mod locks;
mod sessions;
mod webhooks;

use std::sync::Arc;

use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub use self::accounts::{NewToken as TokenRequest, TokenInfo, TokenOwner, UserChange};
pub use self::journal::MAX_PAGE as MAX_AUDIT_PAGE;
pub use self::sessions::{
    LOGIN_WINDOW_MILLIS, LoggedIn, MAX_FAILURES_PER_ACCOUNT, MAX_FAILURES_PER_IP,
};
pub use self::webhooks::{WebhookChange, WebhookSpec};
use serde_json::json;

use crate::access::{Grants, Principal, Role, Token, TokenSecret, hash_secret};
use crate::accounts::{AuthSettings, UserAccess};
use crate::audit::AuditRecord;
use crate::cache::TtlCache;
use crate::clock::{Clock, Timestamp};
use crate::crypto::{Binding, Cipher, SealedBody};
use crate::events::{NewEvent, kind};
use crate::journal::Journal;
use crate::model::{
    NewToken, StateRecord, VersionMeta, VersionWrite, Workspace, WorkspaceSettings, WriteOutcome,
};
use crate::names::{StateName, WorkspaceName};
use crate::rules::{self, Incoming, WriteContext, WriteDecision};
use crate::sealed::SealedKind;
use crate::store::Store;
use crate::store::pending::JournalEntries;
use crate::{Error, Result, search, statefile};

/// A state as the http backend hands it out.
#[derive(Debug, Clone)]
pub struct BackendRead {
    /// The stored version it comes from.
    pub meta: VersionMeta,
    pub body: Vec<u8>,
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
    /// Token ids whose use was recorded within the last minute.
    recently_touched: Arc<TtlCache<()>>,
    /// Whether any webhook is enabled (see [`Services::webhooks_enabled`]).
    webhooks_enabled: Arc<TtlCache<bool>>,
    auth: AuthSettings,
    pub(crate) journal: Arc<Journal>,
    login_work: Arc<sessions::LoginWork>,
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
            recently_touched: Arc::new(TtlCache::new(TOKEN_TOUCH_MILLIS)),
            webhooks_enabled: Arc::new(TtlCache::new(webhooks::WEBHOOKS_ENABLED_MILLIS)),
            auth: AuthSettings::default(),
            login_work: Arc::default(),
        }
    }

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

    // ---- access ---------------------------------------------------------------------------

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
                let found = self.store.token_by_hash(&hash).await?;
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
    async fn user_access(&self, user_id: &str) -> Result<Option<UserAccess>> {
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
    async fn note_token_use(&self, token: &Token, now: Timestamp) {
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
    }

    /// Drops a token from this process's cache (after a revocation).
    pub fn forget_token(&self, token_id: &str) {
        self.tokens.forget_matching(|t| t.id == token_id);
        self.recently_touched.forget(token_id);
    }

    /// Creates the `default` workspace if it does not exist (safe to race with replicas).
    pub async fn ensure_default_workspace(&self) -> Result<()> {
        if self
            .store
            .workspace_by_name(DEFAULT_WORKSPACE)
            .await?
            .is_some()
        {
            return Ok(());
        }
        match self.create_workspace(DEFAULT_WORKSPACE).await {
            Ok(_) | Err(Error::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

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

    pub async fn create_workspace(&self, name: &str) -> Result<Workspace> {
        let name = WorkspaceName::parse(name)?;
        let ws = Workspace {
            id: new_id(),
            name: name.as_str().to_owned(),
            serial_protection: true,
            created_at: self.now(),
            settings: WorkspaceSettings::DEFAULT,
        };
        self.store.create_workspace(&ws).await?;
        Ok(ws)
    }

    pub async fn workspace(&self, name: &str) -> Result<Workspace> {
        let name = WorkspaceName::parse(name)?;
        let now = self.now();
        if let Some(ws) = self.workspaces.get(name.as_str(), now) {
            return Ok(ws);
        }
        let ws = self.store.workspace_by_name(name.as_str()).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "workspace {:?} does not exist; create it with `statehouse workspace create {name}`",
                name.as_str()
            ))
        })?;
        self.workspaces.put(ws.name.clone(), ws.clone(), now);
        Ok(ws)
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

    async fn mint_token(
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

    // ---- states ---------------------------------------------------------------------------

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

    /// The current version of a state with its body, `None` when it has no version yet.
    /// Audited as `state.read` without waiting for the entry to be stored.
    pub async fn read_state(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
    ) -> Result<Option<(VersionMeta, Vec<u8>)>> {
        let record = AuditRecord::by(who, "state.read", self.now())
            .workspace(ws)
            .target(name);
        let result = self.read_state_unaudited(who, ws, name).await;
        self.conclude_read(result, record, |found, r| {
            r.detail(json!({"version": found.as_ref().map(|(meta, _)| meta.version_no)}))
        })
        .await
    }

    async fn read_state_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
    ) -> Result<Option<(VersionMeta, Vec<u8>)>> {
        let name = StateName::parse(name)?;
        let (workspace, _) = self
            .authorize(who, ws, Role::Viewer, "reading a state")
            .await?;
        let found = self
            .store
            .current_body(&workspace.id, name.as_str())
            .await?;
        found
            .map(|(meta, sealed)| self.open_version(meta, &sealed))
            .transpose()
    }

    /// What the http backend's GET answers: the state as stored, or for a principal whose
    /// role in the workspace is exactly `outputs`, the state reduced to its outputs. Audited as
    /// `state.read` without waiting for the entry to be stored.
    pub async fn read_state_for_backend(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
    ) -> Result<Option<BackendRead>> {
        let record = AuditRecord::by(who, "state.read", self.now())
            .workspace(ws)
            .target(name);
        let result = self.read_state_for_backend_unaudited(who, ws, name).await;
        self.conclude_read(result, record, |found, r| match found {
            Some(read) => r.detail(
                json!({"version": read.meta.version_no, "outputs_only": read.outputs_only}),
            ),
            None => r.detail(json!({"version": null})),
        })
        .await
    }

    /// What the http backend's GET answers: the state as stored, or for a principal whose
    /// role in the workspace is exactly `outputs`, the state reduced to its outputs
    /// ([`statefile::outputs_only`]). `None` when the state has no version yet.
    async fn read_state_for_backend_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
    ) -> Result<Option<BackendRead>> {
        let name = StateName::parse(name)?;
        let (workspace, role) = self
            .authorize(who, ws, Role::Outputs, "reading a state")
            .await?;
        let Some((meta, sealed)) = self
            .store
            .current_body(&workspace.id, name.as_str())
            .await?
        else {
            return Ok(None);
        };
        let (meta, full) = self.open_version(meta, &sealed)?;
        if role > Role::Outputs {
            return Ok(Some(BackendRead {
                md5_hex: meta.md5.clone(),
                meta,
                body: full,
                outputs_only: false,
            }));
        }
        let body = statefile::outputs_only(&full)?;
        drop(full);
        let md5_hex = md5_hex(&body);
        Ok(Some(BackendRead {
            meta,
            body,
            md5_hex,
            outputs_only: true,
        }))
    }

    pub async fn state_record(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
    ) -> Result<Option<StateRecord>> {
        let name = StateName::parse(name)?;
        let (workspace, _) = self
            .authorize(who, ws, Role::Viewer, "reading a state")
            .await?;
        self.store.state(&workspace.id, name.as_str()).await
    }

    /// Stores `body` as the state's next version (or acknowledges an identical body).
    /// `claimed_md5` is the MD5 the client says it sent (`Content-MD5`); a mismatch means the
    /// body was damaged on the way and nothing is stored. Audited as `state.write`; a new
    /// version emits `state.written`.
    pub async fn write_state(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        body: Vec<u8>,
        claimed_md5: Option<&[u8]>,
        lock_id: Option<&str>,
    ) -> Result<WriteOutcome> {
        self.write_state_with(who, ws, name, body, claimed_md5, lock_id, &|_, _| {
            JournalEntries::default()
        })
        .await
    }

    /// [`Services::write_state`], storing also what `also` gives for the outcome in the
    /// write's transaction (a rollback's own entry and event).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_state_with(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        body: Vec<u8>,
        claimed_md5: Option<&[u8]>,
        lock_id: Option<&str>,
        also: &(dyn Fn(&Workspace, &WriteOutcome) -> JournalEntries + Send + Sync),
    ) -> Result<WriteOutcome> {
        let record = AuditRecord::by(who, "state.write", self.now())
            .workspace(ws)
            .target(name);
        let result = self
            .write_state_unaudited(who, ws, name, body, claimed_md5, lock_id, &record, also)
            .await;
        self.conclude_change(result, record).await
    }

    /// The entries of a write: `state.write`, and `state.written` for a new version.
    fn write_entries(
        &self,
        record: &AuditRecord,
        workspace: &Workspace,
        name: &str,
        who: &Principal,
        lock_id: Option<&str>,
        outcome: &WriteOutcome,
    ) -> JournalEntries {
        let r = record.clone();
        match outcome {
            WriteOutcome::Created(v) => {
                let facts = json!({
                    "version": v.version_no,
                    "serial": v.serial,
                    "lineage": v.lineage,
                    "md5": v.md5,
                    "size": v.size,
                    "forced": v.forced,
                    "lock_id": lock_id,
                });
                let event = self.event(kind::STATE_WRITTEN, workspace, name, who, facts.clone());
                JournalEntries::of(r.detail(facts), Some(event))
            }
            WriteOutcome::Unchanged(v) => JournalEntries::of(
                r.detail(json!({"version": v.version_no, "unchanged": true})),
                None,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_state_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        body: Vec<u8>,
        claimed_md5: Option<&[u8]>,
        lock_id: Option<&str>,
        audit: &AuditRecord,
        also: &(dyn Fn(&Workspace, &WriteOutcome) -> JournalEntries + Send + Sync),
    ) -> Result<WriteOutcome> {
        let name = StateName::parse(name)?;
        let (workspace, _) = self
            .authorize(who, ws, Role::Editor, "writing a state")
            .await?;
        let digest = Md5::digest(&body);
        if claimed_md5.is_some_and(|claimed| claimed != digest.as_slice()) {
            return Err(Error::BadRequest(
                "Content-MD5 does not match the body: it was damaged in transit; nothing was stored".into(),
            ));
        }
        // One parse: the state's facts and its resources for the index.
        let (meta, resources) = search::read_for_write(&body)?;
        let md5 = hex::encode(digest);
        let journal = |outcome: &WriteOutcome| {
            self.write_entries(audit, &workspace, name.as_str(), who, lock_id, outcome)
                .and(also(&workspace, outcome))
        };
        let record = self
            .store
            .ensure_state(&workspace.id, name.as_str(), self.now())
            .await?;
        // Terraform re-sends identical snapshots: when the rules already say "unchanged" on
        // what we just read, answer without compressing or encrypting. The store decides again
        // inside its transaction for everything else.
        if let Some(current) = record.current.as_ref().filter(|c| c.md5 == md5) {
            let context = WriteContext {
                current: Some(current),
                lock: record.lock.as_ref(),
                serial_protection: workspace.serial_protection,
                overwrite_until: record.overwrite_until,
                now: self.now(),
            };
            let incoming = Incoming {
                serial: meta.serial,
                lineage: &meta.lineage,
                md5: &md5,
                lock_id,
                token_id: &who.token_id,
            };
            if let Ok(WriteDecision::Unchanged) = rules::decide_write(context, incoming) {
                let outcome = WriteOutcome::Unchanged(current.clone());
                self.commit_entries(journal(&outcome)).await?;
                return Ok(outcome);
            }
        }
        let version_id = new_id();
        let sealed = self
            .cipher
            .seal(&body, binding_for(&record.id, &version_id))?;
        let size = body.len() as i64;
        // Only the sealed form is needed from here on; a large body is freed before the store
        // copies the sealed one into the database.
        drop(body);
        let write = VersionWrite {
            state_id: record.id.clone(),
            version_id,
            serial: meta.serial,
            lineage: meta.lineage,
            md5,
            size,
            client_version: meta.terraform_version,
            client_encrypted: meta.client_encrypted,
            sealed,
            lock_id: lock_id.map(str::to_owned),
            token_id: who.token_id.clone(),
            author: who.token_name.clone(),
            at: self.now(),
            resources,
        };
        self.store
            .write_version_journaled(&workspace.id, name.as_str(), write, &journal)
            .await
    }

    /// Soft-deletes a state (admin). Its versions stay restorable until purged. Audited as
    /// `state.delete`; emits `state.deleted`.
    pub async fn delete_state(&self, who: &Principal, ws: &str, name: &str) -> Result<()> {
        let record = AuditRecord::by(who, "state.delete", self.now())
            .workspace(ws)
            .target(name);
        let result = async {
            let name = StateName::parse(name)?;
            let (workspace, _) = self
                .authorize(who, ws, Role::Admin, "deleting a state")
                .await?;
            let journal = |deleted: &bool| {
                let event = self.event(
                    kind::STATE_DELETED,
                    &workspace,
                    name.as_str(),
                    who,
                    json!({}),
                );
                match deleted {
                    true => JournalEntries::of(record.clone(), Some(event)),
                    false => JournalEntries::default(),
                }
            };
            if self
                .store
                .delete_state_journaled(
                    &workspace.id,
                    name.as_str(),
                    &who.token_name,
                    self.now(),
                    &journal,
                )
                .await?
            {
                Ok(())
            } else {
                Err(crate::history::state_not_found(&workspace, name.as_str()))
            }
        }
        .await;
        self.conclude_change(result, record).await
    }

    /// An event about `subject` in `workspace`, caused by `who`, happening now.
    pub(crate) fn event(
        &self,
        kind: &str,
        workspace: &Workspace,
        subject: &str,
        who: &Principal,
        payload: serde_json::Value,
    ) -> NewEvent {
        NewEvent {
            at: self.now(),
            kind: kind.to_owned(),
            workspace_id: Some(workspace.id.clone()),
            workspace: Some(workspace.name.clone()),
            subject: Some(subject.to_owned()),
            actor: who.actor(),
            payload,
        }
    }

    /// Audits the end of an operation whose change did not store its entries itself (see
    /// [`Services::conclude_change`] for those). On success `describe` completes the record
    /// (and may add an event) and the answer waits until both are stored, so nothing is
    /// acknowledged unaudited; a refusal is recorded without waiting.
    pub async fn conclude<T>(
        &self,
        result: Result<T>,
        record: AuditRecord,
        describe: impl FnOnce(&T, AuditRecord) -> (AuditRecord, Option<NewEvent>),
    ) -> Result<T> {
        match result {
            Ok(value) => {
                let (record, event) = describe(&value, record);
                self.journal.commit(Some(record), event).await?;
                Ok(value)
            }
            Err(e) => {
                self.journal.enqueue(record.refused_by(&e)).await;
                Err(e)
            }
        }
    }

    /// Audits the end of a read without waiting for the entry to be stored: on success
    /// `describe` completes the record; a refusal is recorded as such.
    pub async fn conclude_read<T>(
        &self,
        result: Result<T>,
        record: AuditRecord,
        describe: impl FnOnce(&T, AuditRecord) -> AuditRecord,
    ) -> Result<T> {
        let record = match &result {
            Ok(value) => describe(value, record),
            Err(e) => record.refused_by(e),
        };
        self.journal.enqueue(record).await;
        result
    }

    /// A version's body, decrypted.
    pub async fn version_body(
        &self,
        state_id: &str,
        version_no: i64,
    ) -> Result<Option<(VersionMeta, Vec<u8>)>> {
        let found = self.store.version_body(state_id, version_no).await?;
        found
            .map(|(meta, sealed)| self.open_version(meta, &sealed))
            .transpose()
    }

    /// Decrypts a stored version's body (bound to its state and version).
    pub(crate) fn open_version(
        &self,
        meta: VersionMeta,
        sealed: &SealedBody,
    ) -> Result<(VersionMeta, Vec<u8>)> {
        let size = usize::try_from(meta.size).unwrap_or(0);
        let body = self
            .cipher
            .open(sealed, binding_for(&meta.state_id, &meta.id), size)?;
        Ok((meta, body))
    }
}

fn check_token_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(Error::BadRequest(
            "token name must be 1-100 printable characters".into(),
        ));
    }
    Ok(name)
}

fn check_token_expiry(expires_in_millis: Option<i64>) -> Result<()> {
    if expires_in_millis.is_some_and(|m| m <= 0) {
        return Err(Error::BadRequest(
            "token expiry must be in the future".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_is_hex() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
