//! Objects of the S3 endpoint: rows, their sealed chunks, copies, multipart uploads.

use async_trait::async_trait;

use super::pending::{Journaling, no_journal};
use crate::Result;
use crate::clock::Timestamp;
use crate::objects::{NewBlob, ObjectRecord, ObjectWrite, SealedChunk};

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: String,
    pub workspace_id: String,
    pub key: String,
    pub content_type: Option<String>,
    /// [`crate::objects::ObjectMeta`] as JSON.
    pub meta: String,
    pub created_at: Timestamp,
    pub created_by: String,
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub part_no: i64,
    pub blob_id: String,
    pub size: i64,
    /// Hex MD5 of the part, without quotes.
    pub etag: String,
    /// The part's verified checksums, as [`crate::objects::ObjectMeta`] JSON.
    pub meta: String,
    pub at: Timestamp,
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// The object at `key`. A stack file resolves to its state's current version and is absent
    /// while that state is deleted or has no version yet; a pinned copy resolves to its
    /// version.
    async fn object(&self, workspace_id: &str, key: &str) -> Result<Option<ObjectRecord>>;

    /// Up to `limit` objects in bytewise key order with `from <= key`, `key > after` (when
    /// given) and `key < to` (when given), resolved as [`ObjectStore::object`] does (absent
    /// ones skipped).
    async fn list_objects(
        &self,
        workspace_id: &str,
        from: &str,
        after: Option<&str>,
        to: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ObjectRecord>>;

    /// One sealed chunk of a blob, by its place (0, 1, …); `None` after the last.
    async fn blob_chunk(&self, blob_id: &str, seq: i64) -> Result<Option<SealedChunk>>;

    /// Writes the row `write` (replacing the key's row), storing `blob` first when given.
    async fn put_object_journaled(
        &self,
        workspace_id: &str,
        write: &ObjectWrite,
        blob: Option<NewBlob>,
        journal: Journaling<'_, ObjectRecord>,
    ) -> Result<ObjectRecord>;
    async fn put_object(
        &self,
        workspace_id: &str,
        write: &ObjectWrite,
        blob: Option<NewBlob>,
    ) -> Result<ObjectRecord> {
        self.put_object_journaled(workspace_id, write, blob, &no_journal::<ObjectRecord>)
            .await
    }

    /// Makes `dest.key` share the bytes of `source_key`: the same blob, or the version of the
    /// state the source holds now (a stack file's copy pins its current version). `dest`'s
    /// body, size and etag are taken from the source. `None` when the source is absent.
    async fn copy_object_journaled(
        &self,
        workspace_id: &str,
        source_key: &str,
        dest: &ObjectWrite,
        journal: Journaling<'_, ObjectRecord>,
    ) -> Result<Option<ObjectRecord>>;

    /// Deletes the row at `key`; returns it (`None`: there was none).
    async fn delete_object_journaled(
        &self,
        workspace_id: &str,
        key: &str,
        journal: Journaling<'_, Option<ObjectRecord>>,
    ) -> Result<Option<ObjectRecord>>;
    async fn delete_object(&self, workspace_id: &str, key: &str) -> Result<Option<ObjectRecord>> {
        self.delete_object_journaled(workspace_id, key, &no_journal::<Option<ObjectRecord>>)
            .await
    }

    /// Deletes up to `limit` blobs of the workspace that no object and no part uses, created
    /// (or, for a part being received, last given a chunk) before `created_before`: the age
    /// spares a part's blob while its chunks arrive, and a row's blob between a failed cleanup
    /// and its retry; returns how many.
    async fn sweep_blobs(&self, created_before: Timestamp, limit: i64) -> Result<u64>;

    /// Stores the next sealed chunk of a blob being received (a part, chunk by chunk). The
    /// blob's row comes with its first chunk and its `created_at` moves to `at` with each, so
    /// [`ObjectStore::sweep_blobs`] spares it while chunks keep coming.
    async fn put_blob_chunk(
        &self,
        workspace_id: &str,
        blob_id: &str,
        chunk: &SealedChunk,
        at: Timestamp,
    ) -> Result<()>;

    /// Deletes a blob, with its chunks, that no object or part uses (a part refused or
    /// abandoned while it arrived); nothing when it is used or absent.
    async fn discard_blob(&self, blob_id: &str) -> Result<()>;

    async fn create_upload(&self, upload: &Upload) -> Result<()>;
    async fn upload(&self, workspace_id: &str, upload_id: &str) -> Result<Option<Upload>>;
    /// Stores a part (replacing one with its number) whose blob `part.blob_id` was stored
    /// chunk by chunk ([`ObjectStore::put_blob_chunk`]): `part.size` bytes in `chunks` chunks.
    /// False when there is no such upload; `Err(Conflict)` when the blob is not whole (swept
    /// because its chunks stopped coming for too long).
    async fn put_part(&self, upload_id: &str, part: &Part, chunks: i64) -> Result<bool>;
    async fn parts(&self, upload_id: &str) -> Result<Vec<Part>>;
    /// Completes an upload into the object `write`: the chosen parts' chunks, in order, become
    /// one blob; the upload and its other parts go. `Err(Conflict)` when a chosen part changed
    /// meanwhile (its etag differs); false when there is no such upload.
    async fn complete_upload_journaled(
        &self,
        workspace_id: &str,
        upload_id: &str,
        parts: &[Part],
        write: &ObjectWrite,
        journal: Journaling<'_, ObjectRecord>,
    ) -> Result<Option<ObjectRecord>>;
    /// Removes an upload and its parts; false when there was none.
    async fn abort_upload(&self, workspace_id: &str, upload_id: &str) -> Result<bool>;
    /// Uploads of the workspace started before `created_before`, for the clean-up of abandoned
    /// ones.
    async fn stale_uploads(&self, created_before: Timestamp, limit: i64) -> Result<Vec<Upload>>;
}
