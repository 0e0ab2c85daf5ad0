//! Objects of the S3 endpoint as the services serve them: authorized by bucket (a bucket is a
//! workspace), audited, sealed in chunks. Pulumi's stack and lock files are routed to their
//! state (see `stacks.rs`); listings are in `object_list.rs`, multipart uploads in
//! `multipart.rs`.

use bytes::Bytes;
use serde_json::json;

use super::Services;
use super::sealing::seal_whole;
use crate::access::{Principal, Role};
use crate::audit::AuditRecord;
use crate::digest::IncomingBody;
use crate::model::Workspace;
use crate::objects::{ObjectBody, ObjectMeta, ObjectRecord, ObjectWrite, PulumiKey, copy_of_stack};
use crate::sealed::SealedKind;
use crate::store::pending::JournalEntries;
use crate::{Error, Result};

/// The longest key S3 allows, in bytes.
const MAX_KEY_BYTES: usize = 1024;

/// An object's bytes as a GET hands them out.
pub enum ObjectBytes {
    /// A version or a lock file, whole.
    Whole(Bytes),
    /// A blob, read one chunk at a time.
    Chunks(ChunkReader),
}

/// Reads a blob's chunks in order, decrypting one at a time.
pub struct ChunkReader {
    services: Services,
    workspace_id: String,
    blob_id: String,
    next: i64,
}

impl ChunkReader {
    /// The next chunk's plaintext; `None` after the last.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        let Some(chunk) = self
            .services
            .store
            .blob_chunk(&self.blob_id, self.next)
            .await?
        else {
            return Ok(None);
        };
        self.next += 1;
        let binding = SealedKind::S3Chunk.binding(&self.workspace_id, &chunk.id);
        let size = usize::try_from(chunk.size).unwrap_or(0);
        let plain = self.services.cipher.open(&chunk.sealed, binding, size)?;
        Ok(Some(Bytes::from(plain)))
    }

    /// All remaining chunks as one buffer (a stack written by multipart upload, a copy
    /// across buckets).
    pub async fn read_all(mut self, size_hint: usize) -> Result<Bytes> {
        let mut all = Vec::with_capacity(size_hint);
        while let Some(chunk) = self.next_chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(all))
    }
}

/// An object read: what it is and its bytes.
pub struct ObjectRead {
    pub record: ObjectRecord,
    pub bytes: ObjectBytes,
}

/// A put's key and what it carries besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct PutRequest {
    pub key: String,
    pub content_type: Option<String>,
    pub meta: ObjectMeta,
}

/// Checks a key as S3 does (1 to 1024 bytes) and refuses control characters, which no client
/// sends in a real key and which would reach logs and pages.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Error::BadRequest(format!(
            "an object key is 1 to {MAX_KEY_BYTES} bytes long"
        )));
    }
    crate::printable::refuse_control("an object key", key)
}

/// [`check_key`], and refuses Pulumi's files below a path: `pulumi login s3://bucket/sub/dir`
/// puts every key under `sub/dir/`, where its stacks would be plain objects without versions,
/// lock or search. Said at the first write rather than found out later; such objects written
/// before stay readable and deletable.
pub fn check_writable_key(key: &str) -> Result<()> {
    check_key(key)?;
    if let Some(at) = key.find("/.pulumi/") {
        return Err(Error::BadRequest(format!(
            "statehouse keeps Pulumi's files at the bucket's root, where each stack is versioned and its lock shown: log in with s3://<bucket>?… without the path /{} (key {key:?})",
            &key[..at]
        )));
    }
    Ok(())
}

impl Services {
    /// The workspace a bucket names, if `who` has `needed` there.
    pub(crate) async fn bucket(
        &self,
        who: &Principal,
        bucket: &str,
        needed: Role,
        action: &str,
    ) -> Result<Workspace> {
        let (workspace, _) = self.authorize(who, bucket, needed, action).await?;
        Ok(workspace)
    }

    /// Whether `who` may read the bucket (HeadBucket).
    pub async fn head_bucket(&self, who: &Principal, bucket: &str) -> Result<()> {
        self.bucket(who, bucket, Role::Viewer, "reading a bucket")
            .await
            .map(drop)
    }

    /// Describes an object (HEAD). `NotFound` when absent.
    pub async fn object_head(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
    ) -> Result<ObjectRecord> {
        let workspace = self
            .bucket(who, bucket, Role::Viewer, "reading an object")
            .await?;
        self.find_object(&workspace, key).await
    }

    async fn find_object(&self, workspace: &Workspace, key: &str) -> Result<ObjectRecord> {
        check_key(key)?;
        let found = match PulumiKey::parse(key) {
            Some(PulumiKey::Lock { state, lock_id }) => {
                self.lock_file(workspace, &state, &lock_id).await?
            }
            _ => self.store.object(&workspace.id, key).await?,
        };
        found.ok_or_else(|| no_such_key(key))
    }

    /// An object with its bytes (GET). A stack file's read is audited as `state.read`.
    pub async fn object_get(&self, who: &Principal, bucket: &str, key: &str) -> Result<ObjectRead> {
        let workspace = self
            .bucket(who, bucket, Role::Viewer, "reading an object")
            .await?;
        let record = self.find_object(&workspace, key).await?;
        let bytes = self.object_bytes(&workspace, &record).await?;
        if let Some(PulumiKey::Stack { state }) = PulumiKey::parse(key) {
            let version = match &record.body {
                ObjectBody::Version { version_no, .. } => *version_no,
                _ => None,
            };
            let entry = AuditRecord::by(who, "state.read", self.now())
                .workspace(bucket)
                .target(&state)
                .detail(json!({"version": version, "key": key}));
            self.observe(&entry, Ok(()));
            self.journal.enqueue(entry).await;
        }
        Ok(ObjectRead { record, bytes })
    }

    pub(crate) async fn object_bytes(
        &self,
        workspace: &Workspace,
        record: &ObjectRecord,
    ) -> Result<ObjectBytes> {
        match &record.body {
            ObjectBody::Blob { blob_id } => Ok(ObjectBytes::Chunks(ChunkReader {
                services: self.clone(),
                workspace_id: workspace.id.clone(),
                blob_id: blob_id.clone(),
                next: 0,
            })),
            ObjectBody::Version {
                state_id,
                version_no: Some(version_no),
            } => {
                let (_, body) = self
                    .version_plaintext(state_id, *version_no)
                    .await?
                    .ok_or_else(|| no_such_key(&record.key))?;
                Ok(ObjectBytes::Whole(body))
            }
            ObjectBody::Version {
                version_no: None, ..
            } => Err(no_such_key(&record.key)),
            ObjectBody::Lock { state } => {
                let lock = self
                    .store
                    .state(&workspace.id, state)
                    .await?
                    .and_then(|s| s.lock);
                match lock {
                    Some(lock) => Ok(ObjectBytes::Whole(Bytes::from(lock.info))),
                    None => Err(no_such_key(&record.key)),
                }
            }
        }
    }

    /// Stores an object (PutObject). A stack file becomes its state's next version, a lock
    /// file its state's lock; a backup or history checkpoint identical to a version of its
    /// stack pins that version; anything else is sealed in chunks. Audited as
    /// `object.write` (stack files as `state.write`, lock files as `lock.acquire`).
    pub async fn object_put(
        &self,
        who: &Principal,
        bucket: &str,
        request: PutRequest,
        body: impl Into<IncomingBody>,
    ) -> Result<ObjectRecord> {
        let body = body.into();
        check_writable_key(&request.key)?;
        match PulumiKey::parse(&request.key) {
            Some(PulumiKey::Stack { state }) => {
                return self.put_stack(who, bucket, &state, request, body).await;
            }
            Some(PulumiKey::Lock { state, lock_id }) => {
                return self
                    .put_lock_file(who, bucket, &state, &lock_id, &request.key, &body.bytes)
                    .await;
            }
            None => {}
        }
        let record = AuditRecord::by(who, "object.write", self.now())
            .workspace(bucket)
            .target(&request.key);
        let result = async {
            let workspace = self
                .bucket(who, bucket, Role::Editor, "writing an object")
                .await?;
            let (body, etag) = body.md5_hex().await?;
            let size = i64::try_from(body.len()).unwrap_or(i64::MAX);
            let pinned = match copy_of_stack(&request.key) {
                Some(state) => {
                    self.version_matching(&workspace, &state, &body, &etag)
                        .await?
                }
                None => None,
            };
            let (body_ref, blob) = match pinned {
                Some((state_id, version_no)) => (
                    ObjectBody::Version {
                        state_id,
                        version_no: Some(version_no),
                    },
                    None,
                ),
                None => {
                    let blob = seal_whole(self.cipher.clone(), workspace.id.clone(), body).await?;
                    (
                        ObjectBody::Blob {
                            blob_id: blob.id.clone(),
                        },
                        Some(blob),
                    )
                }
            };
            let write = ObjectWrite {
                key: request.key.clone(),
                body: body_ref,
                size,
                etag,
                content_type: request.content_type,
                meta: request.meta,
                at: self.now(),
                by: who.token_name.clone(),
            };
            let journal = |stored: &ObjectRecord| {
                JournalEntries::of(record.clone().detail(object_facts(stored)), None)
            };
            self.store
                .put_object_journaled(&workspace.id, &write, blob, &journal)
                .await
        }
        .await;
        self.conclude_change(result, record).await
    }

    /// Copies an object (CopyObject). Within a bucket the copy shares the source's bytes (a
    /// stack file's copy pins its current version); across buckets, or into a stack or lock
    /// file, the bytes are read and put. `meta` replaces the source's content type and
    /// metadata when given. Audited as `object.copy`.
    pub async fn object_copy(
        &self,
        who: &Principal,
        bucket: &str,
        source_bucket: &str,
        source_key: &str,
        dest_key: &str,
        replace: Option<(Option<String>, ObjectMeta)>,
    ) -> Result<ObjectRecord> {
        check_writable_key(dest_key)?;
        let source_workspace = self
            .bucket(who, source_bucket, Role::Viewer, "reading an object")
            .await?;
        let source = self.find_object(&source_workspace, source_key).await?;
        let (content_type, meta) =
            replace.unwrap_or_else(|| (source.content_type.clone(), source.meta.clone()));
        let shares = source_bucket == bucket
            && PulumiKey::parse(dest_key).is_none()
            && !matches!(source.body, ObjectBody::Lock { .. });
        if !shares {
            let bytes = match self.object_bytes(&source_workspace, &source).await? {
                ObjectBytes::Whole(b) => b,
                ObjectBytes::Chunks(reader) => {
                    reader
                        .read_all(usize::try_from(source.size).unwrap_or(0))
                        .await?
                }
            };
            let request = PutRequest {
                key: dest_key.to_owned(),
                content_type,
                meta,
            };
            return self.object_put(who, bucket, request, bytes).await;
        }
        let record = AuditRecord::by(who, "object.copy", self.now())
            .workspace(bucket)
            .target(dest_key);
        let result = async {
            let workspace = self
                .bucket(who, bucket, Role::Editor, "writing an object")
                .await?;
            let dest = ObjectWrite {
                key: dest_key.to_owned(),
                body: source.body.clone(),
                size: source.size,
                etag: source.etag.clone(),
                content_type,
                meta,
                at: self.now(),
                by: who.token_name.clone(),
            };
            let journal = |stored: &ObjectRecord| {
                let facts = json!({"from": source_key, "object": object_facts(stored)});
                JournalEntries::of(record.clone().detail(facts), None)
            };
            self.store
                .copy_object_journaled(&workspace.id, source_key, &dest, &journal)
                .await?
                .ok_or_else(|| no_such_key(source_key))
        }
        .await;
        self.conclude_change(result, record).await
    }

    /// Deletes an object (DeleteObject): absent keys succeed, as in S3. A stack file's delete
    /// soft-deletes its state (restorable); a lock file's releases the lock. Audited as
    /// `object.delete`.
    pub async fn object_delete(&self, who: &Principal, bucket: &str, key: &str) -> Result<()> {
        check_key(key)?;
        match PulumiKey::parse(key) {
            Some(PulumiKey::Stack { state }) => {
                return self.delete_stack(who, bucket, &state).await;
            }
            Some(PulumiKey::Lock { state, lock_id }) => {
                return self.delete_lock_file(who, bucket, &state, &lock_id).await;
            }
            None => {}
        }
        let record = AuditRecord::by(who, "object.delete", self.now())
            .workspace(bucket)
            .target(key);
        let result = async {
            let workspace = self
                .bucket(who, bucket, Role::Editor, "deleting an object")
                .await?;
            let journal = |gone: &Option<ObjectRecord>| match gone {
                Some(gone) => JournalEntries::of(record.clone().detail(object_facts(gone)), None),
                None => JournalEntries::default(),
            };
            self.store
                .delete_object_journaled(&workspace.id, key, &journal)
                .await
                .map(drop)
        }
        .await;
        self.conclude_change(result, record).await
    }
}

/// What an object entry in the audit log says of it.
pub(crate) fn object_facts(object: &ObjectRecord) -> serde_json::Value {
    let version = match &object.body {
        ObjectBody::Version { version_no, .. } => *version_no,
        _ => None,
    };
    json!({"key": object.key, "size": object.size, "etag": object.etag, "version": version})
}

pub(crate) fn no_such_key(key: &str) -> Error {
    Error::NotFound(format!("NoSuchKey: no object with the key {key:?}"))
}
