//! Multipart uploads: each part is a blob of its own; completing moves the chosen parts'
//! chunks, in order, into one blob (chunks are sealed to their own id, not their blob's, so
//! moving them costs no re-encryption).

use statehouse_core::clock::Timestamp;
use statehouse_core::objects::{ObjectRecord, ObjectWrite, SealedChunk};
use statehouse_core::store::objects::{Part, Upload};
use statehouse_core::store::pending::Journaling;
use statehouse_core::{Error, Result};

use super::{fetch_object, insert_chunk, upsert_object, written};
use crate::SqlStore;
use crate::engine::{Conn, Engine, Row, Tx};
use crate::pending::insert_pending;
use crate::query::{Sql, sql};

fn upload_from(row: &impl Row) -> Result<Upload> {
    Ok(Upload {
        id: row.get("id")?,
        workspace_id: row.get("workspace_id")?,
        key: row.get("key")?,
        content_type: row.get("content_type")?,
        meta: row.get("meta")?,
        created_at: Timestamp(row.get("created_at")?),
        created_by: row.get("created_by")?,
    })
}

fn part_from(row: &impl Row) -> Result<Part> {
    Ok(Part {
        part_no: row.get("part_no")?,
        blob_id: row.get("blob_id")?,
        size: row.get("size")?,
        etag: row.get("etag")?,
        meta: row.get("meta")?,
        at: Timestamp(row.get("at")?),
    })
}

pub(super) async fn create_upload<E: Engine>(store: &SqlStore<E>, u: &Upload) -> Result<()> {
    sql("INSERT INTO s3_uploads (id, workspace_id, key, content_type, meta, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)")
    .bind(&u.id)
    .bind(&u.workspace_id)
    .bind(&u.key)
    .bind(&u.content_type)
    .bind(&u.meta)
    .bind(u.created_at)
    .bind(&u.created_by)
    .execute(&mut store.engine.writer().await?)
    .await?;
    Ok(())
}

pub(super) async fn upload<C: Conn>(
    conn: &mut C,
    workspace_id: &str,
    upload_id: &str,
) -> Result<Option<Upload>> {
    let row = sql("SELECT * FROM s3_uploads WHERE workspace_id = $1 AND id = $2")
        .bind(workspace_id)
        .bind(upload_id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(upload_from).transpose()
}

pub(super) async fn parts<C: Conn>(conn: &mut C, upload_id: &str) -> Result<Vec<Part>> {
    let rows = sql("SELECT * FROM s3_upload_parts WHERE upload_id = $1 ORDER BY part_no")
        .bind(upload_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(part_from).collect()
}

pub(super) async fn put_blob_chunk<E: Engine>(
    store: &SqlStore<E>,
    workspace_id: &str,
    blob_id: &str,
    chunk: &SealedChunk,
    at: Timestamp,
) -> Result<()> {
    let mut tx = store.engine.begin().await?;
    // The blob's row with its first chunk; each later chunk moves its age (see sweep_blobs).
    sql(
        "INSERT INTO s3_blobs (id, workspace_id, size, created_at) VALUES ($1, $2, 0, $3) \
         ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at",
    )
    .bind(blob_id)
    .bind(workspace_id)
    .bind(at)
    .execute(&mut tx)
    .await?;
    insert_chunk(&mut tx, workspace_id, blob_id, chunk).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn put_part<E: Engine>(
    store: &SqlStore<E>,
    upload_id: &str,
    part: &Part,
    chunks: i64,
) -> Result<bool> {
    let mut tx = store.engine.begin().await?;
    // Locked on PostgreSQL: a part never lands in an upload being completed or aborted.
    let workspace = Sql::built(format!(
        "SELECT workspace_id FROM s3_uploads WHERE id = $1{}",
        store.for_update()
    ))
    .bind(upload_id)
    .optional_scalar::<String, _>(&mut tx)
    .await?;
    let Some(workspace_id) = workspace else {
        return Ok(false);
    };
    // An empty part has no chunk, hence no row yet; the update locks the blob against the
    // sweep until the part refers to it.
    sql(
        "INSERT INTO s3_blobs (id, workspace_id, size, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET size = excluded.size, created_at = excluded.created_at",
    )
    .bind(&part.blob_id)
    .bind(&workspace_id)
    .bind(part.size)
    .bind(part.at)
    .execute(&mut tx)
    .await?;
    let row = sql(
        "SELECT COUNT(*) AS chunks, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM s3_chunks \
         WHERE blob_id = $1",
    )
    .bind(&part.blob_id)
    .fetch_one(&mut tx)
    .await?;
    let (count, size): (i64, i64) = (row.get("chunks")?, row.get("bytes")?);
    if (count, size) != (chunks, part.size) {
        return Err(Error::Conflict(format!(
            "part {} lost {} of its {chunks} chunks while it arrived (its bytes stopped coming for too long); send it again",
            part.part_no,
            chunks - count
        )));
    }
    let replaced = sql("SELECT blob_id FROM s3_upload_parts WHERE upload_id = $1 AND part_no = $2")
        .bind(upload_id)
        .bind(part.part_no)
        .optional_scalar::<String, _>(&mut tx)
        .await?;
    sql(
        "INSERT INTO s3_upload_parts (upload_id, part_no, blob_id, size, etag, meta, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (upload_id, part_no) DO UPDATE SET blob_id = excluded.blob_id, \
            size = excluded.size, etag = excluded.etag, meta = excluded.meta, at = excluded.at",
    )
    .bind(upload_id)
    .bind(part.part_no)
    .bind(&part.blob_id)
    .bind(part.size)
    .bind(&part.etag)
    .bind(&part.meta)
    .bind(part.at)
    .execute(&mut tx)
    .await?;
    tx.commit().await?;
    store
        .drop_unused_blobs(&replaced.into_iter().collect::<Vec<_>>())
        .await;
    Ok(true)
}

pub(super) async fn complete<E: Engine>(
    store: &SqlStore<E>,
    workspace_id: &str,
    upload_id: &str,
    chosen: &[Part],
    write: &ObjectWrite,
    journal: Journaling<'_, ObjectRecord>,
) -> Result<Option<ObjectRecord>> {
    let statehouse_core::objects::ObjectBody::Blob { blob_id } = &write.body else {
        return Err(Error::Internal("a completed upload becomes a blob".into()));
    };
    let mut tx = store.engine.begin().await?;
    let lock = Sql::built(format!(
        "SELECT id FROM s3_uploads WHERE workspace_id = $1 AND id = $2{}",
        store.for_update()
    ))
    .bind(workspace_id)
    .bind(upload_id)
    .optional_scalar::<String, _>(&mut tx)
    .await?;
    if lock.is_none() {
        return Ok(None);
    }
    let stored = parts(&mut tx, upload_id).await?;
    sql("INSERT INTO s3_blobs (id, workspace_id, size, created_at) VALUES ($1, $2, $3, $4)")
        .bind(blob_id.as_str())
        .bind(workspace_id)
        .bind(write.size)
        .bind(write.at)
        .execute(&mut tx)
        .await?;
    let mut next_seq = 0_i64;
    for part in chosen {
        let current = stored.iter().find(|p| p.part_no == part.part_no);
        let Some(current) = current.filter(|p| p.etag == part.etag && p.blob_id == part.blob_id)
        else {
            return Err(Error::Conflict(format!(
                "part {} changed or went while the upload was being completed; nothing was written",
                part.part_no
            )));
        };
        let moved = sql("UPDATE s3_chunks SET blob_id = $1, seq = seq + $2 WHERE blob_id = $3")
            .bind(blob_id.as_str())
            .bind(next_seq)
            .bind(current.blob_id.as_str())
            .execute(&mut tx)
            .await?;
        next_seq += i64::try_from(moved).unwrap_or(i64::MAX);
    }
    let replaced = sql("SELECT blob_id FROM s3_objects WHERE workspace_id = $1 AND key = $2")
        .bind(workspace_id)
        .bind(&write.key)
        .optional_scalar::<Option<String>, _>(&mut tx)
        .await?
        .flatten();
    upsert_object(&mut tx, workspace_id, write).await?;
    sql("DELETE FROM s3_uploads WHERE id = $1")
        .bind(upload_id)
        .execute(&mut tx)
        .await?;
    let record = fetch_object(&mut tx, workspace_id, &write.key)
        .await?
        .unwrap_or_else(|| written(write));
    insert_pending(&mut tx, &journal(&record)).await?;
    tx.commit().await?;
    let mut unused: Vec<String> = stored.into_iter().map(|p| p.blob_id).collect();
    unused.extend(replaced);
    store.drop_unused_blobs(&unused).await;
    Ok(Some(record))
}

pub(super) async fn abort<E: Engine>(
    store: &SqlStore<E>,
    workspace_id: &str,
    upload_id: &str,
) -> Result<bool> {
    let mut tx = store.engine.begin().await?;
    let blobs: Vec<String> = parts(&mut tx, upload_id)
        .await?
        .into_iter()
        .map(|p| p.blob_id)
        .collect();
    let done = sql("DELETE FROM s3_uploads WHERE workspace_id = $1 AND id = $2")
        .bind(workspace_id)
        .bind(upload_id)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    store.drop_unused_blobs(&blobs).await;
    Ok(done == 1)
}

pub(super) async fn stale<C: Conn>(
    conn: &mut C,
    created_before: Timestamp,
    limit: i64,
) -> Result<Vec<Upload>> {
    let rows = sql("SELECT * FROM s3_uploads WHERE created_at < $1 ORDER BY created_at LIMIT $2")
        .bind(created_before)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(upload_from).collect()
}
