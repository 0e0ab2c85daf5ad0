//! Reading, writing and deleting states: the http backend's and the API's state operations.

use bytes::Bytes;

use serde_json::json;

use crate::access::{Principal, Role};
use crate::audit::AuditRecord;
use crate::crypto::SealedBody;
use crate::events::kind;
use crate::model::{StateRecord, VersionMeta, VersionWrite, Workspace, WriteOutcome};
use crate::names::StateName;
use crate::rules::{self, Incoming, WriteContext, WriteDecision};
use crate::statefile::StateKind;
use crate::store::pending::JournalEntries;
use crate::{Result, statefile};

use super::state_body;
use super::*;

impl Services {
    /// The current version of a state with its body, `None` when it has no version yet.
    /// Audited as `state.read` without waiting for the entry to be stored.
    pub async fn read_state(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
    ) -> Result<Option<(VersionMeta, Bytes)>> {
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
    ) -> Result<Option<(VersionMeta, Bytes)>> {
        let name = StateName::parse(name)?;
        let (workspace, _) = self
            .authorize(who, ws, Role::Viewer, "reading a state")
            .await?;
        self.current_plaintext(&workspace.id, name.as_str()).await
    }

    /// The current version of a live state and its body in plaintext: from the body cache
    /// when this version was read or written lately, else read, decrypted and kept.
    async fn current_plaintext(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<(VersionMeta, Bytes)>> {
        let Some(meta) = self
            .store
            .state(workspace_id, name)
            .await?
            .and_then(|state| state.current)
        else {
            return Ok(None);
        };
        if let Some(body) = self.bodies.get(&meta.id) {
            return Ok(Some((meta, body)));
        }
        // The version just seen (not whatever is current by now): meta and body agree.
        let Some((meta, sealed)) = self
            .store
            .version_body(&meta.state_id, meta.version_no)
            .await?
        else {
            return Ok(None); // purged meanwhile
        };
        let (meta, body) = self.open_version(meta, &sealed)?;
        let body = Bytes::from(body);
        self.bodies.put(&meta.id, body.clone());
        Ok(Some((meta, body)))
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
        let Some((meta, full)) = self.current_plaintext(&workspace.id, name.as_str()).await? else {
            return Ok(None);
        };
        if role > Role::Outputs {
            return Ok(Some(BackendRead {
                md5_hex: meta.md5.clone(),
                meta,
                body: full,
                outputs_only: false,
            }));
        }
        let body = Bytes::from(statefile::outputs_only(&full)?);
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
    /// body was damaged on the way and nothing is stored (see [`state_body::prepare`]).
    /// Audited as `state.write`; a new version emits `state.written`.
    pub async fn write_state(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        body: Vec<u8>,
        claimed_md5: Option<&[u8]>,
        lock_id: Option<&str>,
    ) -> Result<WriteOutcome> {
        self.write_state_with(
            who,
            ws,
            name,
            (StateKind::Terraform, body),
            claimed_md5,
            lock_id,
            &|_, _| JournalEntries::default(),
        )
        .await
    }

    /// Stores a Pulumi checkpoint `body` as sent (plain, gzip or zstd) as the state's next
    /// version, or acknowledges an identical body: what a PutObject of
    /// `.pulumi/stacks/<project>/<stack>.json[.gz|.zst]` does to the state
    /// `pulumi/<project>/<stack>` (editors). The version's serial is its version number (the
    /// current version's number + 1) and its lineage the checkpoint's stack name, so the
    /// write rules accept each new checkpoint of the same stack; a state that holds a
    /// Terraform state (another lineage) is refused with 409 like any lineage change. The
    /// version's resources are indexed for search (`pulumi::inspect`); a body that is not a
    /// checkpoint is a `BadRequest` and nothing is stored. `claimed_md5` as for
    /// [`Services::write_state`]. Audited as `state.write`; a new version emits
    /// `state.written`.
    pub async fn write_checkpoint(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        body: Vec<u8>,
        claimed_md5: Option<&[u8]>,
    ) -> Result<WriteOutcome> {
        self.write_state_with(
            who,
            ws,
            name,
            (StateKind::Pulumi, body),
            claimed_md5,
            None,
            &|_, _| JournalEntries::default(),
        )
        .await
    }

    /// [`Services::write_state`] (or [`Services::write_checkpoint`], by the body's kind),
    /// storing also what `also` gives for the outcome in the write's transaction (a
    /// rollback's own entry and event).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_state_with(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        body: (StateKind, Vec<u8>),
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
        (kind, body): (StateKind, Vec<u8>),
        claimed_md5: Option<&[u8]>,
        lock_id: Option<&str>,
        audit: &AuditRecord,
        also: &(dyn Fn(&Workspace, &WriteOutcome) -> JournalEntries + Send + Sync),
    ) -> Result<WriteOutcome> {
        let name = StateName::parse(name)?;
        let (workspace, _) = self
            .authorize(who, ws, Role::Editor, "writing a state")
            .await?;
        let body = Bytes::from(body);
        let state_body::StateBody {
            md5,
            mut meta,
            resources,
            compressed,
        } = match kind {
            StateKind::Terraform => state_body::prepare(&body, claimed_md5).await?,
            StateKind::Pulumi => state_body::prepare_checkpoint(&body, claimed_md5).await?,
        };
        let journal = |outcome: &WriteOutcome| {
            self.write_entries(audit, &workspace, name.as_str(), who, lock_id, outcome)
                .and(also(&workspace, outcome))
        };
        let record = self
            .store
            .ensure_state(&workspace.id, name.as_str(), self.now())
            .await?;
        if kind == StateKind::Pulumi {
            // A checkpoint has no serial: each version's is its number. (A concurrent write
            // that took this number first makes this one a serial conflict, as for Terraform.)
            meta.serial = record.current.as_ref().map_or(1, |c| c.version_no + 1);
        }
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
            .seal_compressed(compressed, binding_for(&record.id, &version_id))?;
        let size = body.len() as i64;
        // Kept for the next read when small enough; a large body is freed before the store
        // copies the sealed one into the database.
        let keep = (body.len() <= crate::bodies::MAX_ENTRY).then_some(body);
        let version_id_kept = version_id.clone();
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
        let outcome = self
            .store
            .write_version_journaled(&workspace.id, name.as_str(), write, &journal)
            .await?;
        if let (WriteOutcome::Created(_), Some(body)) = (&outcome, keep) {
            self.bodies.put(&version_id_kept, body);
        }
        Ok(outcome)
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
