//! Pulumi stacks over S3: a stack file's put is its state's next version (serial = version
//! number, written only by whoever holds the stack's lock when it is locked), a lock file is
//! the state's lock, and a stack file's delete soft-deletes the state.

use bytes::Bytes;
use serde_json::json;

use super::lock_info::read_lock_info;
use super::objects::{PutRequest, no_such_key};
use super::{Services, state_body};
use crate::access::{Principal, Role};
use crate::audit::AuditRecord;
use crate::digest::{BodyMd5, IncomingBody};
use crate::events::kind;
use crate::model::{
    LockOutcome, LockRequest, UnlockOutcome, UnlockRequest, VersionMeta, Workspace, WriteOutcome,
};
use crate::objects::{ObjectBody, ObjectMeta, ObjectRecord, ObjectWrite, lock_dir};
use crate::store::pending::JournalEntries;
use crate::{Error, Result};

impl Services {
    /// A stack file's put: the checkpoint becomes the state's next version (an identical one
    /// adds none). While the stack is locked, only the lock's holder (the same key) writes.
    pub(crate) async fn put_stack(
        &self,
        who: &Principal,
        bucket: &str,
        state: &str,
        request: PutRequest,
        body: IncomingBody,
    ) -> Result<ObjectRecord> {
        let IncomingBody { bytes: body, md5 } = body;
        let audit = AuditRecord::by(who, "state.write", self.now())
            .workspace(bucket)
            .target(state);
        let result = async {
            let workspace = self
                .bucket(who, bucket, Role::Editor, "writing a stack")
                .await?;
            let record = self
                .store
                .ensure_state(&workspace.id, state, self.now())
                .await?;
            // Read once: its MD5 is the object's ETag and the version's.
            let prepared = state_body::prepare_checkpoint(&body, None, md5).await?;
            // The row first: should the version's write fail, the key still resolves to the
            // version before it.
            let row = ObjectWrite {
                key: request.key.clone(),
                body: ObjectBody::Version {
                    state_id: record.id.clone(),
                    version_no: None,
                },
                size: i64::try_from(body.len()).unwrap_or(i64::MAX),
                etag: prepared.md5.clone(),
                content_type: request.content_type.clone(),
                meta: ObjectMeta {
                    checksums: Vec::new(),
                    ..request.meta.clone()
                },
                at: self.now(),
                by: who.token_name.clone(),
            };
            self.store.put_object(&workspace.id, &row, None).await?;
            let no_more = |_: &Workspace, _: &WriteOutcome| JournalEntries::default();
            let version = self
                .store_prepared_checkpoint(
                    who, &workspace, &record, body, prepared, &audit, &no_more,
                )
                .await?;
            Ok(stack_record(&request, &record.id, &version))
        }
        .await;
        self.conclude_change(result, audit).await
    }

    /// Stores a Pulumi checkpoint (plain, gzip or zstd) as the next version of the state
    /// `name` (editors), as a stack file's put does but without the S3 object: for tools and
    /// tests below the S3 endpoint. `claimed_md5` as for [`Services::write_state`]. Audited as
    /// `state.write`; a new version emits `state.written`.
    pub async fn write_checkpoint(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        body: Vec<u8>,
        claimed_md5: Option<&[u8]>,
    ) -> Result<WriteOutcome> {
        let audit = AuditRecord::by(who, "state.write", self.now())
            .workspace(ws)
            .target(name);
        let result = async {
            let name = crate::names::StateName::parse(name)?;
            let (workspace, _) = self
                .authorize(who, ws, Role::Editor, "writing a state")
                .await?;
            let record = self
                .store
                .ensure_state(&workspace.id, name.as_str(), self.now())
                .await?;
            let current = record.current.clone();
            let no_more = |_: &Workspace, _: &WriteOutcome| JournalEntries::default();
            let version = self
                .store_checkpoint(
                    who,
                    &workspace,
                    &record,
                    Bytes::from(body),
                    claimed_md5,
                    &audit,
                    &no_more,
                )
                .await?;
            Ok(match current {
                Some(c) if c.id == version.id => WriteOutcome::Unchanged(version),
                _ => WriteOutcome::Created(version),
            })
        }
        .await;
        self.conclude_change(result, audit).await
    }

    /// Writes a checkpoint as the next version of the live state `record` (an identical one
    /// adds none). Pulumi has no serial: the version number is one. While the stack is
    /// locked, only the lock's holder (the same key) writes; anyone else gets `Locked`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn store_checkpoint(
        &self,
        who: &Principal,
        workspace: &Workspace,
        record: &crate::model::StateRecord,
        body: Bytes,
        claimed_md5: Option<&[u8]>,
        audit: &AuditRecord,
        also: &(dyn Fn(&Workspace, &WriteOutcome) -> JournalEntries + Send + Sync),
    ) -> Result<VersionMeta> {
        let prepared =
            state_body::prepare_checkpoint(&body, claimed_md5, BodyMd5::FromBody).await?;
        self.store_prepared_checkpoint(who, workspace, record, body, prepared, audit, also)
            .await
    }

    /// [`Services::store_checkpoint`] of a body already prepared.
    #[allow(clippy::too_many_arguments)]
    async fn store_prepared_checkpoint(
        &self,
        who: &Principal,
        workspace: &Workspace,
        record: &crate::model::StateRecord,
        body: Bytes,
        mut prepared: state_body::StateBody,
        audit: &AuditRecord,
        also: &(dyn Fn(&Workspace, &WriteOutcome) -> JournalEntries + Send + Sync),
    ) -> Result<VersionMeta> {
        let lock_id = record
            .lock
            .as_ref()
            .filter(|l| l.token_id == who.token_id)
            .map(|l| l.id.clone());
        // An identical checkpoint keeps the current serial, so that it is recognised as
        // unchanged.
        prepared.meta.serial = match &record.current {
            Some(current) if current.md5 == prepared.md5 => current.serial,
            Some(current) => current.serial + 1,
            None => 1,
        };
        let outcome = self
            .store_prepared(
                who,
                workspace,
                record,
                body,
                prepared,
                lock_id.as_deref(),
                audit,
                also,
            )
            .await?;
        let (WriteOutcome::Created(version) | WriteOutcome::Unchanged(version)) = outcome;
        Ok(version)
    }

    /// A lock file's put: takes the stack's lock, with the file as the lock's info. Another
    /// holder's lock refuses it (`Locked`), which makes Pulumi's lock atomic.
    pub(crate) async fn put_lock_file(
        &self,
        who: &Principal,
        bucket: &str,
        state: &str,
        lock_id: &str,
        key: &str,
        body: &[u8],
    ) -> Result<ObjectRecord> {
        let audit = AuditRecord::by(who, "lock.acquire", self.now())
            .workspace(bucket)
            .target(state);
        let result = async {
            let workspace = self
                .bucket(who, bucket, Role::Editor, "locking a stack")
                .await?;
            let info = read_lock_info(body)?;
            let request = LockRequest {
                id: lock_id.to_owned(),
                info: info.text,
                token_id: who.token_id.clone(),
                holder: who.token_name.clone(),
                at: self.now(),
            };
            let journal = |outcome: &LockOutcome| {
                let facts = json!({
                    "lock_id": request.id,
                    "already_held": *outcome == LockOutcome::AlreadyHeld,
                });
                let event = (*outcome == LockOutcome::Acquired).then(|| {
                    self.event(
                        kind::LOCK_ACQUIRED,
                        &workspace,
                        state,
                        who,
                        json!({"lock_id": request.id, "info": info.value}),
                    )
                });
                JournalEntries::of(audit.clone().detail(facts), event)
            };
            self.store
                .lock_state_journaled(&workspace.id, state, &request, &journal)
                .await?;
            self.lock_file(&workspace, state, lock_id)
                .await?
                .ok_or_else(|| no_such_key(key))
        }
        .await;
        self.conclude_change(result, audit).await
    }

    /// The lock file `lock_id` of a stack, when it is the stack's lock.
    pub(crate) async fn lock_file(
        &self,
        workspace: &Workspace,
        state: &str,
        lock_id: &str,
    ) -> Result<Option<ObjectRecord>> {
        let lock = self
            .store
            .state(&workspace.id, state)
            .await?
            .and_then(|s| s.lock)
            .filter(|l| l.id == lock_id);
        Ok(lock.and_then(|lock| lock_record(state, &lock)))
    }

    /// A lock file's delete: the holder releases its lock; an admin may delete anyone's (a
    /// force-unlock). A file that is not the stack's lock is already gone.
    pub(crate) async fn delete_lock_file(
        &self,
        who: &Principal,
        bucket: &str,
        state: &str,
        lock_id: &str,
    ) -> Result<()> {
        let audit = AuditRecord::by(who, "lock.release", self.now())
            .workspace(bucket)
            .target(state);
        let result = async {
            let (workspace, role) = self
                .authorize(who, bucket, Role::Editor, "unlocking a stack")
                .await?;
            if self.lock_file(&workspace, state, lock_id).await?.is_none() {
                return Ok(());
            }
            let id = Some(lock_id.to_owned());
            let request = UnlockRequest {
                id: id.clone(),
                token_id: who.token_id.clone(),
                is_admin: role >= Role::Admin,
                at: self.now(),
            };
            let journal = |outcome: &UnlockOutcome| {
                self.unlock_entries(&audit, &workspace, state, who, &id, outcome)
            };
            match self
                .store
                .unlock_state_journaled(&workspace.id, state, &request, &journal)
                .await
            {
                // Released meanwhile by its holder or replaced by another lock: this file is
                // gone either way.
                Err(Error::Locked { .. }) => Ok(()),
                other => other.map(drop),
            }
        }
        .await;
        self.conclude_change(result, audit).await
    }

    /// A stack file's delete (`pulumi stack rm`): the state is soft-deleted, restorable by an
    /// admin, its versions kept. The caller's own lock on it is released first (Pulumi holds
    /// it while removing); another holder's lock refuses the delete.
    pub(crate) async fn delete_stack(
        &self,
        who: &Principal,
        bucket: &str,
        state: &str,
    ) -> Result<()> {
        let audit = AuditRecord::by(who, "state.delete", self.now())
            .workspace(bucket)
            .target(state);
        let result = async {
            let workspace = self
                .bucket(who, bucket, Role::Editor, "removing a stack")
                .await?;
            let Some(record) = self.store.state(&workspace.id, state).await? else {
                return Ok(());
            };
            if let Some(lock) = record.lock.filter(|l| l.token_id == who.token_id) {
                let request = UnlockRequest {
                    id: Some(lock.id.clone()),
                    token_id: who.token_id.clone(),
                    is_admin: false,
                    at: self.now(),
                };
                let id = Some(lock.id);
                let journal = |outcome: &UnlockOutcome| {
                    let entry = AuditRecord::by(who, "lock.release", self.now())
                        .workspace(bucket)
                        .target(state);
                    self.unlock_entries(&entry, &workspace, state, who, &id, outcome)
                };
                self.store
                    .unlock_state_journaled(&workspace.id, state, &request, &journal)
                    .await?;
            }
            let journal = |deleted: &bool| {
                let event = self.event(kind::STATE_DELETED, &workspace, state, who, json!({}));
                match deleted {
                    true => JournalEntries::of(audit.clone(), Some(event)),
                    false => JournalEntries::default(),
                }
            };
            self.store
                .delete_state_journaled(&workspace.id, state, &who.token_name, self.now(), &journal)
                .await
                .map(drop)
        }
        .await;
        self.conclude_change(result, audit).await
    }

    /// The version of a stack whose body is exactly `body` (of hex MD5 `md5`), looking at the
    /// current one (a backup or a history checkpoint is written right after the stack file).
    pub(crate) async fn version_matching(
        &self,
        workspace: &Workspace,
        state: &str,
        body: &[u8],
        md5: &str,
    ) -> Result<Option<(String, i64)>> {
        let Some(current) = self
            .store
            .state(&workspace.id, state)
            .await?
            .and_then(|s| s.current)
        else {
            return Ok(None);
        };
        if current.size != i64::try_from(body.len()).unwrap_or(-1) || current.md5 != md5 {
            return Ok(None);
        }
        let Some((meta, plain)) = self
            .version_plaintext(&current.state_id, current.version_no)
            .await?
        else {
            return Ok(None);
        };
        Ok((plain.as_ref() == body).then_some((meta.state_id, meta.version_no)))
    }

    /// A version's plaintext, from the body cache when it was read or written lately.
    pub(crate) async fn version_plaintext(
        &self,
        state_id: &str,
        version_no: i64,
    ) -> Result<Option<(VersionMeta, Bytes)>> {
        let Some((meta, sealed)) = self.store.version_body(state_id, version_no).await? else {
            return Ok(None);
        };
        if let Some(body) = self.bodies.get(&meta.id) {
            return Ok(Some((meta, body)));
        }
        let (meta, body) = self.open_version(meta, &sealed)?;
        let body = Bytes::from(body);
        self.bodies.put(&meta.id, body.clone());
        Ok(Some((meta, body)))
    }
}

fn stack_record(request: &PutRequest, state_id: &str, version: &VersionMeta) -> ObjectRecord {
    ObjectRecord {
        key: request.key.clone(),
        size: version.size,
        etag: version.md5.clone(),
        last_modified: version.created_at,
        content_type: request.content_type.clone(),
        meta: request.meta.clone(),
        body: ObjectBody::Version {
            state_id: state_id.to_owned(),
            version_no: Some(version.version_no),
        },
    }
}

/// A stack's lock as the lock file Pulumi wrote.
pub(crate) fn lock_record(state: &str, lock: &crate::model::HeldLock) -> Option<ObjectRecord> {
    Some(ObjectRecord {
        key: format!("{}{}.json", lock_dir(state)?, lock.id),
        size: i64::try_from(lock.info.len()).unwrap_or(i64::MAX),
        etag: super::md5_hex(lock.info.as_bytes()),
        last_modified: lock.locked_at,
        content_type: Some("application/json".into()),
        meta: ObjectMeta::default(),
        body: ObjectBody::Lock {
            state: state.to_owned(),
        },
    })
}
