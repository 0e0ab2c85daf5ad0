//! Multipart uploads (create, upload part, complete, abort, list parts). Each part is sealed
//! and stored chunk by chunk as it arrives (see [`StreamSealer`]), so an upload holds about
//! two chunks in memory, never a whole part or the object. Completing a stack file's upload
//! writes the whole checkpoint as the stack's next version.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::json;

use super::objects::{PutRequest, check_writable_key};
use super::sealing::{ChunkSink, StreamSealer, StreamedBlob};
use super::{Services, md5_hex, new_id};
use crate::access::{Principal, Role};
use crate::audit::AuditRecord;
use crate::clock::Clock;
use crate::objects::{ObjectBody, ObjectMeta, ObjectRecord, ObjectWrite, PulumiKey, SealedChunk};
use crate::store::Store;
use crate::store::objects::{Part, Upload};
use crate::store::pending::JournalEntries;
use crate::{Error, Result};

/// S3's smallest part, but for the last one.
pub const MIN_PART_BYTES: i64 = 5 * 1024 * 1024;
/// S3's part numbers.
pub const MAX_PART_NO: i64 = 10_000;

/// An upload not completed within this long is abandoned (S3's lifecycle rules usually say
/// a week too); its parts go.
const ABANDONED_AFTER_MILLIS: i64 = 7 * 24 * 60 * 60 * 1000;
/// A blob nobody uses is swept once this old (one whose row is being written is younger).
const UNUSED_BLOB_AFTER_MILLIS: i64 = 60 * 60 * 1000;
const CLEAN_BATCH: i64 = 500;

/// A part being received: its bytes are sealed and stored chunk by chunk as they come, so
/// the part is never whole in memory.
pub struct PartWriter {
    services: Services,
    upload_id: String,
    part_no: i64,
    sealer: StreamSealer,
}

impl PartWriter {
    /// Takes the part's next bytes.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.sealer.write(bytes).await
    }

    /// Every byte is in: seals and stores the rest. The part is not one of the upload's until
    /// [`SealedPart::store`], so the caller can still refuse it by its MD5 (its chunks then
    /// go).
    pub async fn finish(self) -> Result<SealedPart> {
        Ok(SealedPart {
            streamed: self.sealer.finish().await?,
            services: self.services,
            upload_id: self.upload_id,
            part_no: self.part_no,
        })
    }
}

/// A part's chunks stored, the part not yet one of its upload's.
pub struct SealedPart {
    services: Services,
    upload_id: String,
    part_no: i64,
    streamed: StreamedBlob,
}

impl SealedPart {
    /// The MD5 of the part's bytes.
    pub fn md5(&self) -> [u8; 16] {
        self.streamed.md5
    }

    /// Makes the part one of its upload's (replacing an earlier one of the same number);
    /// returns its ETag (hex MD5). `checksums` are the part's verified checksums, kept for the
    /// completed object.
    pub async fn store(self, checksums: ObjectMeta) -> Result<String> {
        let StreamedBlob {
            md5,
            size,
            chunks,
            blob,
        } = self.streamed;
        let etag = hex::encode(md5);
        let part = Part {
            part_no: self.part_no,
            blob_id: blob.id().to_owned(),
            size,
            etag: etag.clone(),
            meta: checksums.to_json(),
            at: self.services.now(),
        };
        if !self
            .services
            .store
            .put_part(&self.upload_id, &part, chunks)
            .await?
        {
            return Err(no_such_upload(&self.upload_id));
        }
        blob.keep();
        Ok(etag)
    }
}

/// A part's chunks go to the store as they are sealed.
struct PartChunks {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    workspace_id: String,
}

#[async_trait]
impl ChunkSink for PartChunks {
    async fn keep(&self, blob_id: &str, chunk: SealedChunk) -> Result<()> {
        self.store
            .put_blob_chunk(&self.workspace_id, blob_id, &chunk, self.clock.now())
            .await
    }

    async fn discard(&self, blob_id: &str) -> Result<()> {
        self.store.discard_blob(blob_id).await
    }
}

/// A part as the client names it when completing.
#[derive(Debug, Clone)]
pub struct ChosenPart {
    pub part_no: i64,
    /// The part's ETag as the client got it (quotes allowed).
    pub etag: String,
}

impl Services {
    async fn open_upload(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(crate::model::Workspace, Upload)> {
        let workspace = self
            .bucket(who, bucket, Role::Editor, "writing an object")
            .await?;
        let upload = self
            .store
            .upload(&workspace.id, upload_id)
            .await?
            .filter(|u| u.key == key)
            .ok_or_else(|| no_such_upload(upload_id))?;
        Ok((workspace, upload))
    }

    /// Starts a multipart upload; returns its id.
    pub async fn upload_create(
        &self,
        who: &Principal,
        bucket: &str,
        request: PutRequest,
    ) -> Result<String> {
        check_writable_key(&request.key)?;
        if matches!(PulumiKey::parse(&request.key), Some(PulumiKey::Lock { .. })) {
            return Err(Error::BadRequest(
                "a lock file is written in one request, not as a multipart upload".into(),
            ));
        }
        let workspace = self
            .bucket(who, bucket, Role::Editor, "writing an object")
            .await?;
        let upload = Upload {
            id: new_id(),
            workspace_id: workspace.id,
            key: request.key,
            content_type: request.content_type,
            meta: request.meta.to_json(),
            created_at: self.now(),
            created_by: who.token_name.clone(),
        };
        self.store.create_upload(&upload).await?;
        Ok(upload.id)
    }

    /// Opens part `part_no` of an upload for its bytes (authorized before any is read).
    pub async fn upload_part_start(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_no: i64,
    ) -> Result<PartWriter> {
        if !(1..=MAX_PART_NO).contains(&part_no) {
            return Err(Error::BadRequest(format!(
                "part numbers go from 1 to {MAX_PART_NO}"
            )));
        }
        let (workspace, _) = self.open_upload(who, bucket, key, upload_id).await?;
        let chunks = PartChunks {
            store: self.store.clone(),
            clock: self.clock.clone(),
            workspace_id: workspace.id.clone(),
        };
        Ok(PartWriter {
            sealer: StreamSealer::new(self.cipher.clone(), workspace.id, Arc::new(chunks)),
            services: self.clone(),
            upload_id: upload_id.to_owned(),
            part_no,
        })
    }

    /// The parts uploaded so far, in order.
    pub async fn upload_parts(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(Upload, Vec<Part>)> {
        let (_, upload) = self.open_upload(who, bucket, key, upload_id).await?;
        let parts = self.store.parts(upload_id).await?;
        Ok((upload, parts))
    }

    /// Completes an upload from the parts the client lists (ascending, each but the last at
    /// least 5 MiB, ETags matching). Audited as `object.write` (a stack file's as
    /// `state.write`).
    pub async fn upload_complete(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        upload_id: &str,
        chosen: &[ChosenPart],
    ) -> Result<ObjectRecord> {
        let (workspace, upload) = self.open_upload(who, bucket, key, upload_id).await?;
        let stored = self.store.parts(upload_id).await?;
        let parts = pick_parts(&stored, chosen)?;
        let size: i64 = parts.iter().map(|p| p.size).sum();
        let etag = multipart_etag(&parts)?;
        let request = PutRequest {
            key: key.to_owned(),
            content_type: upload.content_type.clone(),
            meta: ObjectMeta::from_json(&upload.meta),
        };
        if PulumiKey::parse(key).is_some() {
            // A checkpoint is parsed and versioned whole.
            let mut body = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            for part in &parts {
                let object = ObjectRecord {
                    key: key.to_owned(),
                    size: part.size,
                    etag: part.etag.clone(),
                    last_modified: part.at,
                    content_type: None,
                    meta: ObjectMeta::default(),
                    body: ObjectBody::Blob {
                        blob_id: part.blob_id.clone(),
                    },
                };
                if let super::objects::ObjectBytes::Chunks(reader) =
                    self.object_bytes(&workspace, &object).await?
                {
                    body.extend_from_slice(&reader.read_all(0).await?);
                }
            }
            let written = self
                .object_put(who, bucket, request, Bytes::from(body))
                .await?;
            self.store.abort_upload(&workspace.id, upload_id).await?;
            return Ok(written);
        }
        let audit = AuditRecord::by(who, "object.write", self.now())
            .workspace(bucket)
            .target(key);
        let result = async {
            let write = ObjectWrite {
                key: key.to_owned(),
                body: ObjectBody::Blob { blob_id: new_id() },
                size,
                etag,
                content_type: request.content_type,
                meta: request.meta,
                at: self.now(),
                by: who.token_name.clone(),
            };
            let journal = |stored: &ObjectRecord| {
                let facts =
                    json!({"object": super::objects::object_facts(stored), "parts": parts.len()});
                JournalEntries::of(audit.clone().detail(facts), None)
            };
            self.store
                .complete_upload_journaled(&workspace.id, upload_id, &parts, &write, &journal)
                .await?
                .ok_or_else(|| no_such_upload(upload_id))
        }
        .await;
        self.conclude_change(result, audit).await
    }

    /// Abandons an upload and its parts.
    pub async fn upload_abort(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<()> {
        let (workspace, _) = self.open_upload(who, bucket, key, upload_id).await?;
        if self.store.abort_upload(&workspace.id, upload_id).await? {
            Ok(())
        } else {
            Err(no_such_upload(upload_id))
        }
    }
}

impl Services {
    /// Aborts abandoned uploads and sweeps unused blobs (maintenance); returns how many of
    /// each went.
    pub(crate) async fn clean_objects(&self, now: crate::clock::Timestamp) -> Result<(u64, u64)> {
        let mut aborted = 0;
        let stale = self
            .store
            .stale_uploads(now.plus_millis(-ABANDONED_AFTER_MILLIS), CLEAN_BATCH)
            .await?;
        for upload in stale {
            if self
                .store
                .abort_upload(&upload.workspace_id, &upload.id)
                .await?
            {
                aborted += 1;
            }
        }
        let swept = self
            .store
            .sweep_blobs(now.plus_millis(-UNUSED_BLOB_AFTER_MILLIS), CLEAN_BATCH)
            .await?;
        Ok((aborted, swept))
    }
}

/// The stored parts the client chose, checked as S3 checks them.
fn pick_parts(stored: &[Part], chosen: &[ChosenPart]) -> Result<Vec<Part>> {
    if chosen.is_empty() {
        return Err(Error::BadRequest(
            "InvalidRequest: a completed upload lists at least one part".into(),
        ));
    }
    let mut parts = Vec::with_capacity(chosen.len());
    for (i, choice) in chosen.iter().enumerate() {
        if i > 0 && choice.part_no <= chosen[i - 1].part_no {
            return Err(Error::BadRequest(
                "InvalidPartOrder: parts must be listed in ascending order".into(),
            ));
        }
        let etag = choice.etag.trim_matches('"');
        let part = stored
            .iter()
            .find(|p| p.part_no == choice.part_no && p.etag == etag)
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "InvalidPart: part {} with ETag {etag:?} was not uploaded",
                    choice.part_no
                ))
            })?;
        parts.push(part.clone());
    }
    if let Some(small) = parts[..parts.len() - 1]
        .iter()
        .find(|p| p.size < MIN_PART_BYTES)
    {
        return Err(Error::BadRequest(format!(
            "EntityTooSmall: part {} is {} bytes; every part but the last needs at least {MIN_PART_BYTES}",
            small.part_no, small.size
        )));
    }
    Ok(parts)
}

/// S3's multipart ETag: the MD5 of the parts' MD5s, then `-<count>`.
fn multipart_etag(parts: &[Part]) -> Result<String> {
    let mut digests = Vec::with_capacity(parts.len() * 16);
    for part in parts {
        let digest = hex::decode(&part.etag)
            .map_err(|_| Error::Internal(format!("part {} has a bad ETag", part.part_no)))?;
        digests.extend_from_slice(&digest);
    }
    Ok(format!("{}-{}", md5_hex(&digests), parts.len()))
}

fn no_such_upload(upload_id: &str) -> Error {
    Error::NotFound(format!(
        "NoSuchUpload: no multipart upload {upload_id:?} for this key (completed, aborted or never started)"
    ))
}
