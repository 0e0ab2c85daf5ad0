//! Records the stores keep.

use serde::Serialize;

use crate::access::Role;
use crate::clock::Timestamp;
use crate::crypto::SealedBody;
use crate::store::search::VersionResources;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    /// Refuse writes whose serial is not above the current one or whose lineage differs.
    pub serial_protection: bool,
    pub created_at: Timestamp,
    pub settings: WorkspaceSettings,
}

/// Per-workspace policies. `None` leaves a policy off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WorkspaceSettings {
    /// Version retention: a version is kept while it is among the newest this many of its state…
    pub keep_versions: Option<i64>,
    /// …or younger than this (milliseconds). With both set, a version goes once it is outside
    /// both; the current version and versions marked kept never go.
    pub keep_versions_for_millis: Option<i64>,
    /// Locks held longer than this (milliseconds) are flagged stale and raise `lock.stale`.
    pub stale_lock_after_millis: Option<i64>,
    /// How long a LOCK waits for a held lock when its address has no `lock_wait`
    /// (milliseconds; `None`: it does not wait).
    pub lock_wait_millis: Option<i64>,
}

impl WorkspaceSettings {
    /// What a new workspace starts with: every version kept, locks stale after two hours.
    pub const DEFAULT: WorkspaceSettings = WorkspaceSettings {
        keep_versions: None,
        keep_versions_for_millis: None,
        stale_lock_after_millis: Some(2 * 60 * 60 * 1000),
        lock_wait_millis: None,
    };

    /// Whether version retention is on at all.
    pub fn prunes_versions(&self) -> bool {
        self.keep_versions.is_some() || self.keep_versions_for_millis.is_some()
    }
}

/// Which live states a listing returns, in name order (or most recently changed first), a
/// page at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateFilter {
    pub name_prefix: Option<String>,
    /// `Some(true)`: only locked states; `Some(false)`: only unlocked ones.
    pub locked: Option<bool>,
    /// Only states updated at or after this time.
    pub changed_since: Option<Timestamp>,
    /// Most recently updated first (then by name) instead of by name.
    pub recently_changed_first: bool,
    /// Resume after this name (the cursor); with `recently_changed_first`, after the state
    /// updated at `after_changed` with this name.
    pub after_name: Option<String>,
    pub after_changed: Option<Timestamp>,
    pub limit: Option<i64>,
    /// The listing is shown to a person or script (not acted upon): it may come from a read
    /// replica within the configured staleness bound.
    pub tolerate_lag: bool,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    /// A user token's owner; see [`crate::access::Token`] for the kinds.
    pub user_id: Option<String>,
    pub workspace_id: Option<String>,
    pub role: Role,
    pub secret_hash: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

/// A lock on a state: the client's LockInfo as sent, plus who took it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldLock {
    pub id: String,
    /// The LockInfo JSON exactly as the client sent it; returned to other clients on conflict.
    pub info: String,
    pub token_id: String,
    pub holder: String,
    pub locked_at: Timestamp,
}

impl HeldLock {
    /// Whether `id` presented with the credential `token_id` is this lock: the ID alone is
    /// not enough, since other clients see it in the 423 answer.
    pub fn is_held_by(&self, id: &str, token_id: &str) -> bool {
        self.id == id && self.token_id == token_id
    }
}

/// Metadata of one immutable version of a state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionMeta {
    pub id: String,
    pub state_id: String,
    /// 1, 2, 3, … per state.
    pub version_no: i64,
    pub serial: i64,
    pub lineage: String,
    /// Hex MD5 of the body as sent.
    pub md5: String,
    /// Size of the body as sent, in bytes.
    pub size: i64,
    pub created_at: Timestamp,
    pub created_by: String,
    pub client_version: Option<String>,
    /// Written through an explicit override of serial/lineage protection.
    pub forced: bool,
    /// An OpenTofu client-side encrypted state, stored as sent.
    pub client_encrypted: bool,
    /// Marked by an admin to be spared by version retention.
    pub kept: bool,
    /// Resource instances in this version; `None` when unknown (client-side encrypted,
    /// unreadable, or written before statehouse counted them).
    pub resource_count: Option<i64>,
}

/// A live (not deleted) state with its lock and current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateRecord {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub lock: Option<HeldLock>,
    pub current: Option<VersionMeta>,
    /// Until then, one write that breaks serial/lineage protection is accepted (and flagged).
    pub overwrite_until: Option<Timestamp>,
}

/// A soft-deleted state, restorable until purged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletedState {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub deleted_at: Timestamp,
    pub deleted_by: String,
    pub versions: i64,
}

/// A new version as handed to the store: metadata, sealed body, and the write's context.
#[derive(Debug, Clone)]
pub struct VersionWrite {
    /// The id of the live state this write was sealed for (the seal is bound to it).
    pub state_id: String,
    pub version_id: String,
    pub serial: i64,
    pub lineage: String,
    pub md5: String,
    pub size: i64,
    pub client_version: Option<String>,
    pub client_encrypted: bool,
    pub sealed: SealedBody,
    /// The lock ID the client claims to hold (`?ID=`), if any.
    pub lock_id: Option<String>,
    /// The credential (token or session id) writing: a claimed lock must be its own.
    pub token_id: String,
    pub author: String,
    pub at: Timestamp,
    /// The version's resource instances for the search index (replaces the state's rows).
    pub resources: VersionResources,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Created(VersionMeta),
    /// Identical to the current version: nothing stored.
    Unchanged(VersionMeta),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    pub id: String,
    pub info: String,
    pub token_id: String,
    pub holder: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
    Acquired,
    /// The same lock ID was already held: a retried LOCK succeeds.
    AlreadyHeld,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlockRequest {
    /// `None`: a force-unlock without an ID (Terraform's empty body).
    pub id: Option<String>,
    pub token_id: String,
    pub is_admin: bool,
    /// When: a released lock goes to the oldest waiter seen since `at` − [`WAITER_TTL`].
    ///
    /// [`WAITER_TTL`]: crate::lock_queue::WAITER_TTL
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnlockOutcome {
    /// The holder released its own lock.
    Released,
    /// An admin released someone else's lock (a force-unlock).
    ForceReleased {
        previous: HeldLock,
    },
    NotLocked,
}
