//! A state's history as users act on it: listings, versions, kept versions, force-unlock,
//! deleted states, and the maintenance pass (version retention, stale locks).

use serde_json::json;

use crate::access::{Principal, Role};
use crate::audit::AuditRecord;
use crate::clock::Timestamp;
use crate::events::{NewEvent, kind};
use crate::model::{DeletedState, StateFilter, StateRecord, UnlockOutcome, VersionMeta, Workspace};
use crate::names::StateName;
use crate::pulumi;
use crate::service::Services;
use crate::statefile::StateKind;
use crate::store::pending::JournalEntries;
use crate::tfstate::{self, Output, StateDiff};
use crate::{Error, Result};

mod rollback;

/// Largest page a listing returns.
pub const MAX_PAGE: i64 = 1_000;
/// Versions deleted per retention statement (keeps each write transaction short).
const PRUNE_BATCH: i64 = 500;

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub versions_pruned: u64,
    /// Multipart uploads abandoned for a week, and blobs nothing uses any more.
    pub uploads_aborted: u64,
    pub blobs_swept: u64,
    /// Locks that became stale in this pass (each reported once across replicas), with the
    /// workspace they are in.
    pub stale_locks: Vec<(Workspace, StateRecord)>,
}

impl Services {
    /// Live states of a workspace, filtered and paged (viewers).
    pub async fn list_states(
        &self,
        who: &Principal,
        ws: &str,
        filter: &StateFilter,
    ) -> Result<(Workspace, Vec<StateRecord>)> {
        let (workspace, _) = self
            .authorize(who, ws, Role::Viewer, "listing states")
            .await?;
        if filter.limit.is_some_and(|l| !(1..=MAX_PAGE).contains(&l)) {
            return Err(Error::BadRequest(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        let states = self.store.list_states(&workspace.id, filter).await?;
        Ok((workspace, states))
    }

    /// One live state with its lock and current version (viewers); `NotFound` when missing.
    pub async fn state_detail(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
    ) -> Result<(Workspace, StateRecord)> {
        self.live_state_for(who, ws, name, Role::Viewer, "reading a state")
            .await
    }

    /// A live state, once the principal is known to have `needed` in its workspace.
    async fn live_state_for(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        needed: Role,
        action: &str,
    ) -> Result<(Workspace, StateRecord)> {
        let name = StateName::parse(name)?;
        let (workspace, _) = self.authorize(who, ws, needed, action).await?;
        let record = self
            .store
            .state(&workspace.id, name.as_str())
            .await?
            .ok_or_else(|| state_not_found(&workspace, name.as_str()))?;
        Ok((workspace, record))
    }

    /// Versions of a state, newest first, below `before` (viewers).
    pub async fn list_versions(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<VersionMeta>> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::BadRequest(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        let (_, record) = self.state_detail(who, ws, name).await?;
        self.store.list_versions(&record.id, before, limit).await
    }

    /// One version's metadata and decrypted body (viewers). Audited as `state.read`.
    pub async fn read_version(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        version_no: i64,
    ) -> Result<(VersionMeta, Vec<u8>)> {
        let record = AuditRecord::by(who, "state.read", self.now())
            .workspace(ws)
            .target(name)
            .detail(json!({"version": version_no}));
        let result = self.read_version_unaudited(who, ws, name, version_no).await;
        self.conclude_read(result, record, |_, r| r).await
    }

    async fn read_version_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        version_no: i64,
    ) -> Result<(VersionMeta, Vec<u8>)> {
        let (workspace, record) = self.state_detail(who, ws, name).await?;
        self.version_of(&workspace, &record, version_no).await
    }

    /// One version of a state the caller was already allowed to read, opened.
    async fn version_of(
        &self,
        workspace: &Workspace,
        record: &StateRecord,
        version_no: i64,
    ) -> Result<(VersionMeta, Vec<u8>)> {
        let found = self.store.version_body(&record.id, version_no).await?;
        let (meta, sealed) = found.ok_or_else(|| {
            Error::NotFound(format!(
                "state {:?} in workspace {:?} has no version {version_no} (it may have been pruned by retention)",
                record.name, workspace.name
            ))
        })?;
        self.open_version(meta, &sealed)
    }

    /// What changed from version `from` to version `to` (default: the current version) of a
    /// state (viewers). Sensitive values are masked unless the caller is a workspace admin.
    /// Returns the version numbers compared and the difference. Audited once, as `state.diff`.
    pub async fn diff_versions(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<(i64, i64, StateDiff)> {
        let record = AuditRecord::by(who, "state.diff", self.now())
            .workspace(ws)
            .target(name);
        let result = self.diff_versions_unaudited(who, ws, name, from, to).await;
        self.conclude_read(result, record, |(from, to, _), r| {
            r.detail(json!({"from": from, "to": to}))
        })
        .await
    }

    /// Authorizes once and reads the state row once for both versions.
    async fn diff_versions_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<(i64, i64, StateDiff)> {
        let (workspace, record) = self.state_detail(who, ws, name).await?;
        let reveal = who.role_in(&workspace.id).is_some_and(|r| r >= Role::Admin);
        let to = match to {
            Some(n) => n,
            None => record
                .current
                .as_ref()
                .map(|c| c.version_no)
                .ok_or_else(|| {
                    Error::NotFound(format!("state {:?} has no versions yet", record.name))
                })?,
        };
        let from = from.unwrap_or(to - 1);
        if from < 1 {
            return Err(Error::BadRequest(format!(
                "version {to} is the first version: give `from` explicitly to compare with a later one"
            )));
        }
        let old = self.version_of(&workspace, &record, from).await?;
        let new = self.version_of(&workspace, &record, to).await?;
        let diff = compare_versions((from, &old.0, &old.1), (to, &new.0, &new.1), reveal)?;
        Ok((from, to, diff))
    }

    /// The current outputs of a state (the `outputs` role and above), sensitive ones masked
    /// unless the caller is a workspace admin; with the version they come from. Audited as
    /// `state.read_outputs`.
    pub async fn current_outputs(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
    ) -> Result<(VersionMeta, Vec<Output>)> {
        let record = AuditRecord::by(who, "state.read_outputs", self.now())
            .workspace(ws)
            .target(name);
        let result = self.current_outputs_unaudited(who, ws, name).await;
        self.conclude_read(result, record, |(meta, _), r| {
            r.detail(json!({"version": meta.version_no}))
        })
        .await
    }

    async fn current_outputs_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
    ) -> Result<(VersionMeta, Vec<Output>)> {
        let state_name = StateName::parse(name)?;
        let (workspace, role) = self
            .authorize(who, ws, Role::Outputs, "reading outputs")
            .await?;
        let found = self
            .store
            .current_body(&workspace.id, state_name.as_str())
            .await?;
        let (meta, sealed) = found.ok_or_else(|| {
            Error::NotFound(format!(
                "state {name:?} in workspace {:?} does not exist or has no versions yet",
                workspace.name
            ))
        })?;
        let (meta, body) = self.open_version(meta, &sealed)?;
        let classified = pulumi::classify(&body)?;
        let outputs = match classified.kind {
            // Already decoded: not expanded twice.
            StateKind::Pulumi => pulumi::outputs(&classified.text)?,
            StateKind::Terraform => tfstate::outputs(&body, role >= Role::Admin)?,
        };
        Ok((meta, outputs))
    }

    /// Spares a version from retention, or releases it again (workspace admins). Audited as
    /// `state.keep_version`.
    pub async fn keep_version(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        version_no: i64,
        kept: bool,
    ) -> Result<()> {
        let record = AuditRecord::by(who, "state.keep_version", self.now())
            .workspace(ws)
            .target(name)
            .detail(json!({"version": version_no, "kept": kept}));
        let result = self
            .keep_version_unaudited(who, ws, name, version_no, kept, &record)
            .await;
        self.conclude_change(result, record).await
    }

    async fn keep_version_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        version_no: i64,
        kept: bool,
        audit: &AuditRecord,
    ) -> Result<()> {
        let (_, record) = self
            .live_state_for(who, ws, name, Role::Admin, "marking versions kept")
            .await?;
        if !self
            .store
            .set_version_kept_journaled(&record.id, version_no, kept, &|found| {
                recorded_if(*found, audit)
            })
            .await?
        {
            return Err(Error::NotFound(format!(
                "state {:?} has no version {version_no}",
                record.name
            )));
        }
        Ok(())
    }

    /// Releases whoever holds the state's lock (workspace admins). The previous holder is
    /// returned; `NotFound` when the state is not locked.
    pub async fn force_unlock(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
    ) -> Result<crate::model::HeldLock> {
        self.authorize(who, ws, Role::Admin, "force-unlocking a state")
            .await?;
        match self.unlock_state(who, ws, name, b"").await? {
            UnlockOutcome::ForceReleased { previous } => Ok(previous),
            UnlockOutcome::Released => Err(Error::Internal(
                "an unlock without an ID released as the holder".into(),
            )),
            UnlockOutcome::NotLocked => Err(Error::NotFound(format!(
                "state {name:?} in workspace {ws:?} is not locked: nothing was released"
            ))),
        }
    }

    /// Soft-deleted states of a workspace, restorable until purged (workspace admins).
    pub async fn list_deleted_states(
        &self,
        who: &Principal,
        ws: &str,
    ) -> Result<Vec<DeletedState>> {
        let (workspace, _) = self
            .authorize(who, ws, Role::Admin, "listing deleted states")
            .await?;
        self.store.list_deleted_states(&workspace.id).await
    }

    /// Makes a soft-deleted state live again (workspace admins). Audited as `state.restore`;
    /// emits `state.restored`.
    pub async fn restore_state(&self, who: &Principal, ws: &str, state_id: &str) -> Result<()> {
        let record = AuditRecord::by(who, "state.restore", self.now())
            .workspace(ws)
            .target(state_id);
        let result = self
            .restore_state_unaudited(who, ws, state_id, &record)
            .await;
        self.conclude_change(result, record).await
    }

    async fn restore_state_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        state_id: &str,
        audit: &AuditRecord,
    ) -> Result<()> {
        let (workspace, _) = self
            .authorize(who, ws, Role::Admin, "restoring a state")
            .await?;
        let name = self
            .store
            .list_deleted_states(&workspace.id)
            .await?
            .into_iter()
            .find(|d| d.id == state_id)
            .map(|d| d.name);
        let restored = match &name {
            Some(name) => {
                let journal = |restored: &bool| {
                    let event = self.event(
                        kind::STATE_RESTORED,
                        &workspace,
                        name,
                        who,
                        json!({"state_id": state_id}),
                    );
                    let record = audit.clone().detail(json!({"name": name}));
                    match restored {
                        true => JournalEntries::of(record, Some(event)),
                        false => JournalEntries::default(),
                    }
                };
                self.store
                    .restore_state_journaled(&workspace.id, state_id, self.now(), &journal)
                    .await?
            }
            None => false,
        };
        if restored {
            Ok(())
        } else {
            Err(Error::NotFound(format!(
                "no deleted state with id {state_id:?} in workspace {:?}",
                workspace.name
            )))
        }
    }

    /// Removes a soft-deleted state and all its versions for good (workspace admins).
    /// Audited as `state.purge`.
    pub async fn purge_state(&self, who: &Principal, ws: &str, state_id: &str) -> Result<()> {
        let record = AuditRecord::by(who, "state.purge", self.now())
            .workspace(ws)
            .target(state_id);
        let result = self.purge_state_unaudited(who, ws, state_id, &record).await;
        self.conclude_change(result, record).await
    }

    async fn purge_state_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        state_id: &str,
        audit: &AuditRecord,
    ) -> Result<()> {
        let (workspace, _) = self
            .authorize(who, ws, Role::Admin, "purging a state")
            .await?;
        if self
            .store
            .purge_state_journaled(&workspace.id, state_id, &|purged| {
                recorded_if(*purged, audit)
            })
            .await?
        {
            Ok(())
        } else {
            Err(Error::NotFound(format!(
                "no deleted state with id {state_id:?} in workspace {:?}; only deleted states can be purged",
                workspace.name
            )))
        }
    }

    /// Opens (or with `None` closes) the one-shot window in which a write that breaks serial or
    /// lineage protection is accepted (workspace admins; the CLI's `state allow-overwrite`).
    /// Audited as `state.allow_overwrite`.
    pub async fn allow_overwrite(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        until: Option<Timestamp>,
    ) -> Result<()> {
        let record = AuditRecord::by(who, "state.allow_overwrite", self.now())
            .workspace(ws)
            .target(name)
            .detail(json!({"until": until}));
        let result = async {
            let state_name = StateName::parse(name)?;
            let (workspace, _) = self
                .authorize(who, ws, Role::Admin, "allowing an overwrite")
                .await?;
            let found = self
                .store
                .set_overwrite_until_journaled(
                    &workspace.id,
                    state_name.as_str(),
                    until,
                    &|found| recorded_if(*found, &record),
                )
                .await?;
            if found {
                Ok(())
            } else {
                Err(state_not_found(&workspace, state_name.as_str()))
            }
        }
        .await;
        self.conclude_change(result, record).await
    }

    /// One pass of background upkeep over every workspace: version retention, stale-lock
    /// detection, abandoned uploads and unused blobs. Safe to run on several replicas at once.
    pub async fn run_maintenance(&self) -> Result<MaintenanceReport> {
        let now = self.now();
        let mut report = MaintenanceReport::default();
        (report.uploads_aborted, report.blobs_swept) = self.clean_objects(now).await?;
        for ws in self.store.list_workspaces().await? {
            let settings = ws.settings;
            if settings.prunes_versions() {
                let created_before = settings
                    .keep_versions_for_millis
                    .map(|age| now.plus_millis(-age));
                loop {
                    let pruned = self
                        .store
                        .prune_versions(&ws.id, settings.keep_versions, created_before, PRUNE_BATCH)
                        .await?;
                    report.versions_pruned += pruned;
                    if pruned < PRUNE_BATCH as u64 {
                        break;
                    }
                }
            }
            if let Some(after) = settings.stale_lock_after_millis {
                for state in self
                    .store
                    .flag_stale_locks(&ws.id, now.plus_millis(-after))
                    .await?
                {
                    if let Some(lock) = &state.lock {
                        self.emit_event(NewEvent {
                            at: now,
                            kind: kind::LOCK_STALE.to_owned(),
                            workspace_id: Some(ws.id.clone()),
                            workspace: Some(ws.name.clone()),
                            subject: Some(state.name.clone()),
                            actor: "statehouse".to_owned(),
                            payload: json!({
                                "lock_id": lock.id,
                                "holder": lock.holder,
                                "locked_at": lock.locked_at.to_rfc3339(),
                                "stale_after_seconds": after / 1_000,
                            }),
                        })
                        .await?;
                    }
                    report.stale_locks.push((ws.clone(), state));
                }
            }
        }
        Ok(report)
    }
}

/// The difference between two versions' bodies, each `(number, metadata, body)`: by the
/// Pulumi code when both are checkpoints (their headers' serials are the versions' own), by
/// the Terraform code when both are states; two versions of different kinds cannot be compared.
fn compare_versions(
    (from, old_meta, old): (i64, &VersionMeta, &[u8]),
    (to, new_meta, new): (i64, &VersionMeta, &[u8]),
    reveal_sensitive: bool,
) -> Result<StateDiff> {
    let (old, new) = (pulumi::classify(old)?, pulumi::classify(new)?);
    let (old_kind, new_kind) = (old.kind, new.kind);
    match (old_kind, new_kind) {
        (StateKind::Terraform, StateKind::Terraform) => {
            tfstate::diff(&old.text, &new.text, reveal_sensitive)
        }
        (StateKind::Pulumi, StateKind::Pulumi) => {
            // Already decoded: not expanded twice.
            let mut diff = pulumi::diff(&old.text, &new.text)?;
            diff.before.serial = old_meta.serial;
            diff.after.serial = new_meta.serial;
            Ok(diff)
        }
        _ => Err(Error::BadRequest(format!(
            "version {from} is a {} state and version {to} a {} state: only versions of the same kind can be compared",
            old_kind.as_str(),
            new_kind.as_str()
        ))),
    }
}

/// Whether a lock taken at `locked_at` counts as stale under the workspace's threshold.
pub fn lock_is_stale(
    ws: &Workspace,
    locked_at: crate::clock::Timestamp,
    now: crate::clock::Timestamp,
) -> bool {
    ws.settings
        .stale_lock_after_millis
        .is_some_and(|after| now.millis() - locked_at.millis() > after)
}

/// `record` when the change was made (a `false` outcome is refused and recorded as such).
fn recorded_if(made: bool, record: &AuditRecord) -> JournalEntries {
    match made {
        true => JournalEntries::of(record.clone(), None),
        false => JournalEntries::default(),
    }
}

/// `state "prod/old" does not exist in workspace "default"`.
pub(crate) fn state_not_found(ws: &Workspace, name: &str) -> Error {
    Error::NotFound(format!(
        "state {name:?} does not exist in workspace {:?}",
        ws.name
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::clock::Timestamp;

    fn meta(version_no: i64) -> VersionMeta {
        VersionMeta {
            id: format!("v{version_no}"),
            state_id: "s".into(),
            version_no,
            serial: version_no,
            lineage: "l".into(),
            md5: String::new(),
            size: 0,
            created_at: Timestamp(0),
            created_by: "t".into(),
            client_version: None,
            forced: false,
            client_encrypted: false,
            kept: false,
            resource_count: None,
        }
    }

    #[test]
    fn versions_are_compared_by_the_code_of_their_kind() {
        let terraform = br#"{"version":4,"serial":3,"lineage":"l","outputs":{},"resources":[]}"#;
        let checkpoint = br#"{"version":3,"checkpoint":{"stack":"organization/p/s"}}"#;
        let (m1, m2) = (meta(1), meta(2));
        let diff = compare_versions((1, &m1, terraform), (2, &m2, terraform), false).unwrap();
        assert_eq!(diff.kind, StateKind::Terraform);
        let gzipped = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(checkpoint).unwrap();
            e.finish().unwrap()
        };
        let diff = compare_versions((1, &m1, checkpoint), (2, &m2, &gzipped), false).unwrap();
        assert_eq!(diff.kind, StateKind::Pulumi);
        assert_eq!((diff.before.serial, diff.after.serial), (1, 2));
        assert_eq!(diff.after.lineage, "organization/p/s");
        match compare_versions((1, &m1, terraform), (2, &m2, checkpoint), false) {
            Err(Error::BadRequest(m)) => assert!(
                m.contains("version 1 is a terraform state and version 2 a pulumi state"),
                "{m}"
            ),
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }
}
