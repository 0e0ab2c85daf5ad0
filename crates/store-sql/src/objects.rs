//! Objects of the S3 endpoint: rows, sealed chunks, copies, deletes, the sweep of unused
//! blobs. Multipart uploads are in `objects/multipart.rs`.

mod multipart;

use async_trait::async_trait;

use statehouse_core::Result;
use statehouse_core::clock::Timestamp;
use statehouse_core::crypto::SealedBody;
use statehouse_core::objects::{
    NewBlob, ObjectBody, ObjectMeta, ObjectRecord, ObjectWrite, SealedChunk,
};
use statehouse_core::store::objects::{ObjectStore, Part, Upload};
use statehouse_core::store::pending::Journaling;

use crate::SqlStore;
use crate::engine::{Conn, Engine, Row, Tx};
use crate::pending::insert_pending;
use crate::query::{Sql, sql};

/// An object row resolved: a stack file (a state's row without a version) takes its version,
/// size, etag and time from the state's current version and is absent while the state is
/// deleted or empty. A pinned copy keeps what it was copied with (its version is spared by
/// retention).
const OBJECT_SELECT: &str = "SELECT o.key, o.blob_id, o.state_id, \
    COALESCE(o.version_no, vc.version_no) AS version_no, o.content_type, o.meta, \
    COALESCE(vc.size, o.size) AS size, COALESCE(vc.md5, o.etag) AS etag, \
    COALESCE(vc.created_at, o.last_modified) AS last_modified \
    FROM s3_objects o \
    LEFT JOIN states s ON o.version_no IS NULL AND s.id = o.state_id AND s.deleted_at IS NULL \
    LEFT JOIN state_versions vc ON vc.id = s.current_version_id \
    WHERE o.workspace_id = $1 AND (o.state_id IS NULL OR o.version_no IS NOT NULL OR vc.id IS NOT NULL)";

pub(crate) fn object_from(row: &impl Row) -> Result<ObjectRecord> {
    let blob_id: Option<String> = row.get("blob_id")?;
    let body = match blob_id {
        Some(blob_id) => ObjectBody::Blob { blob_id },
        None => ObjectBody::Version {
            state_id: row.get("state_id")?,
            version_no: row.get("version_no")?,
        },
    };
    let meta: String = row.get("meta")?;
    Ok(ObjectRecord {
        key: row.get("key")?,
        size: row.get("size")?,
        etag: row.get("etag")?,
        last_modified: Timestamp(row.get("last_modified")?),
        content_type: row.get("content_type")?,
        meta: ObjectMeta::from_json(&meta),
        body,
    })
}

/// The columns of an object row for `body`.
fn body_columns(body: &ObjectBody) -> (Option<&str>, Option<&str>, Option<i64>) {
    match body {
        ObjectBody::Blob { blob_id } => (Some(blob_id.as_str()), None, None),
        ObjectBody::Version {
            state_id,
            version_no,
        } => (None, Some(state_id.as_str()), *version_no),
        // Never stored (a lock file is its state's lock): kept out by the service.
        ObjectBody::Lock { .. } => (None, None, None),
    }
}

async fn fetch_object<C: Conn>(
    conn: &mut C,
    workspace_id: &str,
    key: &str,
) -> Result<Option<ObjectRecord>> {
    let row = Sql::built(format!("{OBJECT_SELECT} AND o.key = $2"))
        .bind(workspace_id)
        .bind(key)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(object_from).transpose()
}

/// The blob a key's row holds now, if any (before it is replaced or deleted).
async fn blob_of<C: Conn>(conn: &mut C, workspace_id: &str, key: &str) -> Result<Option<String>> {
    let found = sql("SELECT blob_id FROM s3_objects WHERE workspace_id = $1 AND key = $2")
        .bind(workspace_id)
        .bind(key)
        .optional_scalar::<Option<String>, _>(conn)
        .await?;
    Ok(found.flatten())
}

pub(crate) async fn insert_blob<C: Conn>(
    conn: &mut C,
    workspace_id: &str,
    blob: &NewBlob,
    at: Timestamp,
) -> Result<()> {
    sql("INSERT INTO s3_blobs (id, workspace_id, size, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&blob.id)
        .bind(workspace_id)
        .bind(blob.size)
        .bind(at)
        .execute(conn)
        .await?;
    for chunk in &blob.chunks {
        insert_chunk(conn, workspace_id, &blob.id, chunk).await?;
    }
    Ok(())
}

pub(crate) async fn insert_chunk<C: Conn>(
    conn: &mut C,
    workspace_id: &str,
    blob_id: &str,
    chunk: &SealedChunk,
) -> Result<()> {
    sql(
        "INSERT INTO s3_chunks (id, blob_id, workspace_id, seq, size, key_id, wrapped_key, body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&chunk.id)
    .bind(blob_id)
    .bind(workspace_id)
    .bind(chunk.seq)
    .bind(chunk.size)
    .bind(&chunk.sealed.key_id)
    .bind(&chunk.sealed.wrapped_key)
    .bind(&chunk.sealed.ciphertext)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn upsert_object<C: Conn>(
    conn: &mut C,
    workspace_id: &str,
    write: &ObjectWrite,
) -> Result<()> {
    let (blob_id, state_id, version_no) = body_columns(&write.body);
    sql(
        "INSERT INTO s3_objects (workspace_id, key, blob_id, state_id, version_no, size, etag, \
            content_type, meta, last_modified, written_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (workspace_id, key) DO UPDATE SET blob_id = excluded.blob_id, \
            state_id = excluded.state_id, version_no = excluded.version_no, size = excluded.size, \
            etag = excluded.etag, content_type = excluded.content_type, meta = excluded.meta, \
            last_modified = excluded.last_modified, written_by = excluded.written_by",
    )
    .bind(workspace_id)
    .bind(&write.key)
    .bind(blob_id)
    .bind(state_id)
    .bind(version_no)
    .bind(write.size)
    .bind(&write.etag)
    .bind(&write.content_type)
    .bind(write.meta.to_json())
    .bind(write.at)
    .bind(&write.by)
    .execute(conn)
    .await?;
    Ok(())
}

impl<E: Engine> SqlStore<E> {
    /// Drops blobs no object or part uses any more, after the change that let go of them
    /// committed. Best effort: on PostgreSQL a concurrent copy may have just taken one (its
    /// reference makes the delete fail), and the sweep gets whatever is left over.
    pub(crate) async fn drop_unused_blobs(&self, blob_ids: &[String]) {
        for blob_id in blob_ids {
            if let Err(e) = self.discard_blob(blob_id).await {
                tracing::debug!(blob = %blob_id, error = %e, "unused blob left for the sweep");
            }
        }
    }
}

#[async_trait]
impl<E: Engine> ObjectStore for SqlStore<E> {
    async fn object(&self, workspace_id: &str, key: &str) -> Result<Option<ObjectRecord>> {
        fetch_object(&mut self.engine.read().await?, workspace_id, key).await
    }

    async fn list_objects(
        &self,
        workspace_id: &str,
        from: &str,
        after: Option<&str>,
        to: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ObjectRecord>> {
        let mut query = Sql::built(format!("{OBJECT_SELECT} AND o.key >= $2"))
            .bind(workspace_id)
            .bind(from);
        if let Some(after) = after {
            query.push(" AND o.key > ").push_bind(after);
        }
        if let Some(to) = to {
            query.push(" AND o.key < ").push_bind(to);
        }
        query
            .push(&format!(" ORDER BY o.key{} LIMIT ", self.bytewise()))
            .push_bind(limit);
        let rows = query.fetch_all(&mut self.engine.read().await?).await?;
        rows.iter().map(object_from).collect()
    }

    async fn blob_chunk(&self, blob_id: &str, seq: i64) -> Result<Option<SealedChunk>> {
        let row = sql(
            "SELECT id, seq, size, key_id, wrapped_key, body FROM s3_chunks \
                       WHERE blob_id = $1 AND seq = $2",
        )
        .bind(blob_id)
        .bind(seq)
        .fetch_optional(&mut self.engine.read().await?)
        .await?;
        row.map(|row| {
            Ok(SealedChunk {
                id: row.get("id")?,
                seq: row.get("seq")?,
                size: row.get("size")?,
                sealed: SealedBody {
                    key_id: row.get("key_id")?,
                    wrapped_key: row.get("wrapped_key")?,
                    ciphertext: row.get("body")?,
                },
            })
        })
        .transpose()
    }

    async fn put_object_journaled(
        &self,
        workspace_id: &str,
        write: &ObjectWrite,
        blob: Option<NewBlob>,
        journal: Journaling<'_, ObjectRecord>,
    ) -> Result<ObjectRecord> {
        let mut tx = self.engine.begin().await?;
        let replaced = blob_of(&mut tx, workspace_id, &write.key).await?;
        if let Some(blob) = &blob {
            insert_blob(&mut tx, workspace_id, blob, write.at).await?;
        }
        upsert_object(&mut tx, workspace_id, write).await?;
        let record = fetch_object(&mut tx, workspace_id, &write.key)
            .await?
            .unwrap_or_else(|| written(write));
        insert_pending(&mut tx, &journal(&record)).await?;
        tx.commit().await?;
        self.drop_unused_blobs(&replaced.into_iter().collect::<Vec<_>>())
            .await;
        Ok(record)
    }

    async fn copy_object_journaled(
        &self,
        workspace_id: &str,
        source_key: &str,
        dest: &ObjectWrite,
        journal: Journaling<'_, ObjectRecord>,
    ) -> Result<Option<ObjectRecord>> {
        let mut tx = self.engine.begin().await?;
        let Some(source) = fetch_object(&mut tx, workspace_id, source_key).await? else {
            return Ok(None);
        };
        // A stack file resolves to its current version: the copy keeps that one.
        let body = source.body;
        let write = ObjectWrite {
            body,
            size: source.size,
            etag: source.etag,
            ..dest.clone()
        };
        let replaced = blob_of(&mut tx, workspace_id, &write.key).await?;
        upsert_object(&mut tx, workspace_id, &write).await?;
        let record = fetch_object(&mut tx, workspace_id, &write.key)
            .await?
            .unwrap_or_else(|| written(&write));
        insert_pending(&mut tx, &journal(&record)).await?;
        tx.commit().await?;
        self.drop_unused_blobs(&replaced.into_iter().collect::<Vec<_>>())
            .await;
        Ok(Some(record))
    }

    async fn delete_object_journaled(
        &self,
        workspace_id: &str,
        key: &str,
        journal: Journaling<'_, Option<ObjectRecord>>,
    ) -> Result<Option<ObjectRecord>> {
        let mut tx = self.engine.begin().await?;
        let found = fetch_object(&mut tx, workspace_id, key).await?;
        let replaced = blob_of(&mut tx, workspace_id, key).await?;
        sql("DELETE FROM s3_objects WHERE workspace_id = $1 AND key = $2")
            .bind(workspace_id)
            .bind(key)
            .execute(&mut tx)
            .await?;
        insert_pending(&mut tx, &journal(&found)).await?;
        tx.commit().await?;
        self.drop_unused_blobs(&replaced.into_iter().collect::<Vec<_>>())
            .await;
        Ok(found)
    }

    async fn sweep_blobs(&self, created_before: Timestamp, limit: i64) -> Result<u64> {
        let done = sql(
            "DELETE FROM s3_blobs WHERE id IN (SELECT b.id FROM s3_blobs b \
                        WHERE b.created_at < $1 \
                        AND NOT EXISTS (SELECT 1 FROM s3_objects o WHERE o.blob_id = b.id) \
                        AND NOT EXISTS (SELECT 1 FROM s3_upload_parts p WHERE p.blob_id = b.id) \
                        LIMIT $2)",
        )
        .bind(created_before)
        .bind(limit)
        .execute(&mut self.engine.writer().await?)
        .await?;
        Ok(done)
    }

    async fn create_upload(&self, upload: &Upload) -> Result<()> {
        multipart::create_upload(self, upload).await
    }

    async fn upload(&self, workspace_id: &str, upload_id: &str) -> Result<Option<Upload>> {
        multipart::upload(&mut self.engine.read().await?, workspace_id, upload_id).await
    }

    async fn put_blob_chunk(
        &self,
        workspace_id: &str,
        blob_id: &str,
        chunk: &SealedChunk,
        at: Timestamp,
    ) -> Result<()> {
        multipart::put_blob_chunk(self, workspace_id, blob_id, chunk, at).await
    }

    async fn discard_blob(&self, blob_id: &str) -> Result<()> {
        // The chunks go with the blob's row (ON DELETE CASCADE).
        sql("DELETE FROM s3_blobs WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM s3_objects WHERE blob_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM s3_upload_parts WHERE blob_id = $1)")
        .bind(blob_id)
        .execute(&mut self.engine.writer().await?)
        .await?;
        Ok(())
    }

    async fn put_part(&self, upload_id: &str, part: &Part, chunks: i64) -> Result<bool> {
        multipart::put_part(self, upload_id, part, chunks).await
    }

    async fn parts(&self, upload_id: &str) -> Result<Vec<Part>> {
        multipart::parts(&mut self.engine.read().await?, upload_id).await
    }

    async fn complete_upload_journaled(
        &self,
        workspace_id: &str,
        upload_id: &str,
        parts: &[Part],
        write: &ObjectWrite,
        journal: Journaling<'_, ObjectRecord>,
    ) -> Result<Option<ObjectRecord>> {
        multipart::complete(self, workspace_id, upload_id, parts, write, journal).await
    }

    async fn abort_upload(&self, workspace_id: &str, upload_id: &str) -> Result<bool> {
        multipart::abort(self, workspace_id, upload_id).await
    }

    async fn stale_uploads(&self, created_before: Timestamp, limit: i64) -> Result<Vec<Upload>> {
        multipart::stale(&mut self.engine.read().await?, created_before, limit).await
    }
}

/// The record of a row just written, for the rare case it does not resolve (a stack file
/// whose state has no version yet).
fn written(write: &ObjectWrite) -> ObjectRecord {
    ObjectRecord {
        key: write.key.clone(),
        size: write.size,
        etag: write.etag.clone(),
        last_modified: write.at,
        content_type: write.content_type.clone(),
        meta: write.meta.clone(),
        body: write.body.clone(),
    }
}
