//! Rollback: an earlier version made current again, as a new version.

use serde_json::json;

use crate::access::{Principal, Role};
use crate::audit::AuditRecord;
use crate::events::kind;
use crate::model::{VersionMeta, Workspace, WriteOutcome};
use crate::service::Services;
use crate::store::pending::JournalEntries;
use crate::{Error, Result, tfstate};

impl Services {
    /// Makes version `version_no` current again (editors): its content is written as a new
    /// version whose serial is one above the current one, so the next `terraform plan` accepts
    /// it. Refused while another client holds the lock, and (by the write rules) when the old
    /// version's lineage is not the current one, unless an admin opened an overwrite window.
    ///
    /// Audited as `state.rollback` (the write itself also as `state.write`); emits
    /// `state.rolled_back` with the version brought back and the new version.
    pub async fn rollback(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        version_no: i64,
    ) -> Result<VersionMeta> {
        let record = AuditRecord::by(who, "state.rollback", self.now())
            .workspace(ws)
            .target(name)
            .detail(json!({"to_version": version_no}));
        let result = self
            .rollback_unaudited(who, ws, name, version_no, &record)
            .await;
        self.conclude_change(result, record).await
    }

    async fn rollback_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        version_no: i64,
        audit: &AuditRecord,
    ) -> Result<VersionMeta> {
        let (workspace, record) = self.state_detail(who, ws, name).await?;
        who.require(&workspace.id, Role::Editor, "rolling back a state")?;
        let current = record.current.as_ref().ok_or_else(|| {
            Error::NotFound(format!("state {:?} has no versions yet", record.name))
        })?;
        // A lock held with the caller's own token (e.g. the CI token rolling back between
        // runs) does not stand in the way; anyone else's does.
        let lock_id = match &record.lock {
            Some(lock) if lock.token_id == who.token_id => Some(lock.id.clone()),
            Some(lock) => {
                return Err(Error::Locked {
                    holder_info: lock.info.clone(),
                });
            }
            None => None,
        };
        if version_no == current.version_no {
            return Err(Error::BadRequest(format!(
                "version {version_no} is already the current version"
            )));
        }
        let (_, body) = self.read_version(who, ws, name, version_no).await?;
        // The rollback's entry and event commit with the write (which records its own).
        let also = |workspace: &Workspace, outcome: &WriteOutcome| {
            let (WriteOutcome::Created(meta) | WriteOutcome::Unchanged(meta)) = outcome;
            let payload = json!({
                "rolled_back_to": version_no,
                "version": meta.version_no,
                "serial": meta.serial,
            });
            let event = self.event(
                kind::STATE_ROLLED_BACK,
                workspace,
                name,
                who,
                payload.clone(),
            );
            JournalEntries::of(audit.clone().detail(payload), Some(event))
        };
        if crate::pulumi::classify(&body)?.kind == crate::statefile::StateKind::Pulumi {
            // A checkpoint has no serial to raise: it becomes the next version as it was,
            // and the stack file (which follows the current version) serves it.
            let write_audit = AuditRecord::by(who, "state.write", self.now())
                .workspace(ws)
                .target(name);
            return self
                .store_checkpoint(
                    who,
                    &workspace,
                    &record,
                    body.into(),
                    None,
                    &write_audit,
                    &also,
                )
                .await;
        }
        // A different lineage is refused by the write rules unless an admin opened an
        // overwrite window (then the version is recorded as forced).
        let body = tfstate::with_serial(&body, current.serial + 1)?;
        match self
            .write_state_with(who, ws, name, body, None, lock_id.as_deref(), &also)
            .await?
        {
            WriteOutcome::Created(meta) | WriteOutcome::Unchanged(meta) => Ok(meta),
        }
    }
}
