//! What the API returns: records as clients see them (times in RFC 3339, durations in
//! seconds), built from the domain records, never exposing secrets or internal ids they do
//! not need. Also deserializable: the CLI reads responses into these same types.

use serde::{Deserialize, Serialize};
use statehouse_core::access::Role;
use statehouse_core::clock::Timestamp;
use statehouse_core::history::lock_is_stale;
use statehouse_core::model::{DeletedState, HeldLock, StateRecord, VersionMeta, Workspace};
use utoipa::ToSchema;

fn seconds(millis: Option<i64>) -> Option<i64> {
    millis.map(|m| m / 1_000)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceView {
    pub name: String,
    /// Writes must raise the serial and keep the lineage.
    pub serial_protection: bool,
    /// Version retention: keep the newest N versions of each state (null: no count rule).
    pub keep_versions: Option<i64>,
    /// Version retention: keep versions younger than this many seconds (null: no age rule).
    pub keep_versions_for_seconds: Option<i64>,
    /// Locks held longer than this many seconds are flagged stale (null: never).
    pub stale_lock_after_seconds: Option<i64>,
    /// A LOCK whose address has no `lock_wait` waits this many seconds for a held lock (null:
    /// it does not wait).
    pub lock_wait_seconds: Option<i64>,
    pub created_at: String,
    /// The caller's role in this workspace.
    pub your_role: String,
}

impl WorkspaceView {
    pub fn new(ws: &Workspace, role: Role) -> Self {
        WorkspaceView {
            name: ws.name.clone(),
            serial_protection: ws.serial_protection,
            keep_versions: ws.settings.keep_versions,
            keep_versions_for_seconds: seconds(ws.settings.keep_versions_for_millis),
            stale_lock_after_seconds: seconds(ws.settings.stale_lock_after_millis),
            lock_wait_seconds: seconds(ws.settings.lock_wait_millis),
            created_at: ws.created_at.to_rfc3339(),
            your_role: role.to_string(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LockView {
    /// The lock ID the client chose.
    pub id: String,
    /// The statehouse user or token that took the lock.
    pub holder: String,
    /// From the client's lock info, when given: operation (e.g. `OperationTypeApply`), who
    /// (`user@host`), client version and free-form info. For a Pulumi lock file: who is its
    /// `username@hostname`, info its `pid`.
    pub operation: Option<String>,
    pub who: Option<String>,
    pub client_version: Option<String>,
    pub info: Option<String>,
    pub locked_at: String,
    pub age_seconds: i64,
    /// Held longer than the workspace's stale-lock threshold.
    pub stale: bool,
}

impl LockView {
    pub fn new(lock: &HeldLock, ws: &Workspace, now: Timestamp) -> Self {
        let info: serde_json::Value = serde_json::from_str(&lock.info).unwrap_or_default();
        let field = |name: &str| {
            info.get(name)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        // Pulumi's lock file says who in its own words: user, host and process.
        let pulumi_who = field("username").map(|user| match field("hostname") {
            Some(host) => format!("{user}@{host}"),
            None => user,
        });
        let pulumi_pid = info
            .get("pid")
            .and_then(|p| p.as_i64())
            .map(|pid| format!("pid {pid}"));
        LockView {
            id: lock.id.clone(),
            holder: lock.holder.clone(),
            operation: field("Operation"),
            who: field("Who").or(pulumi_who),
            client_version: field("Version"),
            info: field("Info").or(pulumi_pid),
            locked_at: lock.locked_at.to_rfc3339(),
            age_seconds: (now.millis() - lock.locked_at.millis()).max(0) / 1_000,
            stale: lock_is_stale(ws, lock.locked_at, now),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    /// 1, 2, 3, … per state.
    pub version: i64,
    pub serial: i64,
    pub lineage: String,
    /// Hex MD5 of the state as written.
    pub md5: String,
    pub size: i64,
    pub created_at: String,
    /// The user or token that wrote it.
    pub created_by: String,
    /// Terraform/OpenTofu version that wrote it, when the state says.
    pub client_version: Option<String>,
    /// Written through an explicit override of serial/lineage protection.
    pub forced: bool,
    /// OpenTofu client-side encrypted: stored as sent, contents not readable by statehouse.
    pub client_encrypted: bool,
    /// Spared by version retention.
    pub kept: bool,
    /// Resource instances in this version; null when unknown (client-side encrypted, not a
    /// readable state format, or written before statehouse counted them).
    pub resource_count: Option<i64>,
}

impl From<&VersionMeta> for VersionView {
    fn from(v: &VersionMeta) -> Self {
        VersionView {
            version: v.version_no,
            serial: v.serial,
            lineage: v.lineage.clone(),
            md5: v.md5.clone(),
            size: v.size,
            created_at: v.created_at.to_rfc3339(),
            created_by: v.created_by.clone(),
            client_version: v.client_version.clone(),
            forced: v.forced,
            client_encrypted: v.client_encrypted,
            kept: v.kept,
            resource_count: v.resource_count,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StateView {
    pub workspace: String,
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
    /// The current version (null before the first write).
    pub current: Option<VersionView>,
    /// Who holds the lock (null when unlocked).
    pub lock: Option<LockView>,
}

impl StateView {
    pub fn new(ws: &Workspace, state: &StateRecord, now: Timestamp) -> Self {
        StateView {
            workspace: ws.name.clone(),
            name: state.name.clone(),
            created_at: state.created_at.to_rfc3339(),
            updated_at: state.updated_at.to_rfc3339(),
            current: state.current.as_ref().map(VersionView::from),
            lock: state.lock.as_ref().map(|l| LockView::new(l, ws, now)),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeletedStateView {
    /// Use this id to restore or purge.
    pub id: String,
    pub name: String,
    pub deleted_at: String,
    pub deleted_by: String,
    pub versions: i64,
}

impl From<&DeletedState> for DeletedStateView {
    fn from(d: &DeletedState) -> Self {
        DeletedStateView {
            id: d.id.clone(),
            name: d.name.clone(),
            deleted_at: d.deleted_at.to_rfc3339(),
            deleted_by: d.deleted_by.clone(),
            versions: d.versions,
        }
    }
}
