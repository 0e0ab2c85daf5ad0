//! Backup runs: a queue. Queued runs are claimed under a lease (never by two workers at once),
//! renewed and finished only by their lease's owner, and failed once their lease expires.

use statehouse_core::backups::{
    BackupFilter, BackupKind, BackupRecord, BackupResult, BackupStatus, BackupTrigger,
    VerificationSummary,
};
use statehouse_core::clock::Timestamp;
use statehouse_core::{Error, Result};

use super::{by_ids, decode, err, json_text, locked};
use crate::SqlStore;
use crate::engine::{Conn, Engine, Row, Tx};
use crate::query::{Sql, sql};

/// Every column of a run, for `SELECT` and `RETURNING`.
const COLUMNS: &str = "id, workspace_id, database_id, db_name, kind, server_run, target_id, \
    object, status, run_trigger, attempt, requested_by, queued_at, not_before, started_at, \
    finished_at, lease_owner, lease_until, stored_bytes, dump_bytes, sha256, server_version, error, \
    detail, verified_at, verify_level, verify_ok";
const BY_ID: &str = "SELECT id, workspace_id, database_id, db_name, kind, server_run, \
    target_id, object, status, run_trigger, attempt, requested_by, queued_at, not_before, started_at, \
    finished_at, lease_owner, lease_until, stored_bytes, dump_bytes, sha256, server_version, error, \
    detail, verified_at, verify_level, verify_ok FROM backups WHERE workspace_id = $1 AND id = $2";
const INSERT: &str = "INSERT INTO backups (id, workspace_id, database_id, db_name, target_id, \
    object, status, run_trigger, attempt, requested_by, queued_at, not_before, started_at, finished_at, \
    lease_owner, lease_until, stored_bytes, dump_bytes, sha256, server_version, error, detail, kind, \
    server_run) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
    $20, $21, $22, $23, $24)";
const RENEW: &str = "UPDATE backups SET lease_until = $3, object = COALESCE($4, object), \
    db_name = COALESCE($5, db_name) WHERE id = $1 AND lease_owner = $2 AND status = 'running'";
const PROGRESS: &str = "UPDATE backups SET stored_bytes = $3 \
    WHERE id = $1 AND lease_owner = $2 AND status = 'running'";
const FINISH: &str = "UPDATE backups SET status = $3, finished_at = $4, \
    db_name = COALESCE($5, db_name), object = COALESCE($6, object), stored_bytes = $7, \
    dump_bytes = $8, sha256 = $9, server_version = $10, error = $11, detail = $12, \
    lease_owner = NULL, lease_until = NULL \
    WHERE id = $1 AND lease_owner = $2 AND status = 'running'";
const STATUS: &str = "SELECT status FROM backups WHERE workspace_id = $1 AND id = $2";
const DELETE: &str = "DELETE FROM backups WHERE workspace_id = $1 AND id = $2";

/// Dialect fork: on PostgreSQL, rows another process is claiming right now are skipped, not
/// waited for (and the outer `WHERE` re-checks the status on the row as it is once locked);
/// SQLite's one writer makes the claim exclusive. The selection is a `MATERIALIZED` CTE so it
/// runs once: as a sub-select of the `UPDATE` PostgreSQL may rescan it, and each rescan skips
/// the rows the statement already changed and returns the next ones (a `LIMIT 1` claim then
/// took every due run).
fn skip_locked(store: &SqlStore<impl Engine>) -> &'static str {
    store.dialect().pick("", " FOR UPDATE SKIP LOCKED")
}

fn backup_from(row: &impl Row) -> Result<BackupRecord> {
    let status: String = row.get("status")?;
    let trigger: String = row.get("run_trigger")?;
    let kind: String = row.get("kind")?;
    let verification = match (
        row.get::<Option<Timestamp>>("verified_at")?,
        row.get::<Option<String>>("verify_level")?,
        row.get::<Option<bool>>("verify_ok")?,
    ) {
        (Some(at), Some(level), Some(ok)) => Some(VerificationSummary { at, level, ok }),
        _ => None,
    };
    Ok(BackupRecord {
        id: row.get("id")?,
        workspace_id: row.get("workspace_id")?,
        database_id: row.get("database_id")?,
        db_name: row.get("db_name")?,
        kind: BackupKind::parse(&kind)
            .ok_or_else(|| Error::Internal(format!("stored backup kind {kind:?} is unknown")))?,
        server_run: row.get("server_run")?,
        target_id: row.get("target_id")?,
        object: row.get("object")?,
        status: BackupStatus::parse(&status).ok_or_else(|| {
            Error::Internal(format!("stored backup status {status:?} is unknown"))
        })?,
        trigger: BackupTrigger::parse(&trigger).ok_or_else(|| {
            Error::Internal(format!("stored backup trigger {trigger:?} is unknown"))
        })?,
        attempt: row.get("attempt")?,
        requested_by: row.get("requested_by")?,
        queued_at: row.get("queued_at")?,
        not_before: row.get("not_before")?,
        started_at: row.get("started_at")?,
        finished_at: row.get("finished_at")?,
        lease_owner: row.get("lease_owner")?,
        lease_until: row.get("lease_until")?,
        stored_bytes: row.get("stored_bytes")?,
        dump_bytes: row.get("dump_bytes")?,
        sha256: row.get("sha256")?,
        server_version: row.get("server_version")?,
        error: row.get("error")?,
        detail: row.get("detail")?,
        verification,
    })
}

/// Claimed or failed runs, decoded, in queue order (`RETURNING` gives no order).
fn in_queue_order(rows: &[impl Row]) -> Result<Vec<BackupRecord>> {
    let mut runs = decode(rows, backup_from)?;
    runs.sort_by(|a, b| {
        (a.not_before, a.queued_at, &a.id).cmp(&(b.not_before, b.queued_at, &b.id))
    });
    Ok(runs)
}

/// Adds a run in the caller's transaction (the job clock enqueues with it).
pub(super) async fn insert_in<C: Conn>(conn: &mut C, b: &BackupRecord) -> Result<()> {
    sql(INSERT)
        .bind(&b.id)
        .bind(&b.workspace_id)
        .bind(&b.database_id)
        .bind(&b.db_name)
        .bind(&b.target_id)
        .bind(&b.object)
        .bind(b.status.as_str())
        .bind(b.trigger.as_str())
        .bind(b.attempt)
        .bind(&b.requested_by)
        .bind(b.queued_at)
        .bind(b.not_before)
        .bind(b.started_at)
        .bind(b.finished_at)
        .bind(&b.lease_owner)
        .bind(b.lease_until)
        .bind(b.stored_bytes)
        .bind(b.dump_bytes)
        .bind(&b.sha256)
        .bind(&b.server_version)
        .bind(&b.error)
        .bind(json_text(&b.detail))
        .bind(b.kind.as_str())
        .bind(&b.server_run)
        .execute(conn)
        .await
        .map_err(err)?;
    Ok(())
}

pub(super) async fn insert<E: Engine>(store: &SqlStore<E>, b: &BackupRecord) -> Result<()> {
    insert_in(&mut store.engine.writer().await?, b).await
}

pub(super) async fn claim<E: Engine>(
    store: &SqlStore<E>,
    now: Timestamp,
    lease_owner: &str,
    lease_until: Timestamp,
    limit: i64,
) -> Result<Vec<BackupRecord>> {
    let claim = Sql::built(format!(
        "WITH due AS MATERIALIZED (SELECT id FROM backups WHERE status = 'queued' \
         AND not_before <= $1 ORDER BY not_before, queued_at, id LIMIT $4{}) \
         UPDATE backups SET status = 'running', started_at = $1, lease_owner = $2, lease_until = $3 \
         WHERE id IN (SELECT id FROM due) AND status = 'queued' AND not_before <= $1 \
         RETURNING {COLUMNS}",
        skip_locked(store)
    ))
    .bind(now)
    .bind(lease_owner)
    .bind(lease_until)
    .bind(limit);
    let mut tx = store.engine.begin().await?;
    let rows = claim.fetch_all(&mut tx).await.map_err(err)?;
    tx.commit().await?;
    in_queue_order(&rows)
}

pub(super) async fn renew<E: Engine>(
    store: &SqlStore<E>,
    id: &str,
    lease_owner: &str,
    lease_until: Timestamp,
    object: Option<&str>,
    db_name: Option<&str>,
) -> Result<bool> {
    let done = sql(RENEW)
        .bind(id)
        .bind(lease_owner)
        .bind(lease_until)
        .bind(object)
        .bind(db_name)
        .execute(&mut store.engine.writer().await?)
        .await
        .map_err(err)?;
    Ok(done == 1)
}

pub(super) async fn progress<E: Engine>(
    store: &SqlStore<E>,
    id: &str,
    lease_owner: &str,
    stored_bytes: i64,
) -> Result<bool> {
    let done = sql(PROGRESS)
        .bind(id)
        .bind(lease_owner)
        .bind(stored_bytes)
        .execute(&mut store.engine.writer().await?)
        .await
        .map_err(err)?;
    Ok(done == 1)
}

pub(super) async fn finish<E: Engine>(
    store: &SqlStore<E>,
    id: &str,
    lease_owner: &str,
    r: &BackupResult,
) -> Result<bool> {
    if !matches!(r.status, BackupStatus::Succeeded | BackupStatus::Failed) {
        return Err(Error::Internal(format!(
            "a backup run cannot finish as {:?}: only succeeded or failed end a run",
            r.status.as_str()
        )));
    }
    let done = sql(FINISH)
        .bind(id)
        .bind(lease_owner)
        .bind(r.status.as_str())
        .bind(r.finished_at)
        .bind(&r.db_name)
        .bind(&r.object)
        .bind(r.stored_bytes)
        .bind(r.dump_bytes)
        .bind(&r.sha256)
        .bind(&r.server_version)
        .bind(&r.error)
        .bind(json_text(&r.detail))
        .execute(&mut store.engine.writer().await?)
        .await
        .map_err(err)?;
    Ok(done == 1)
}

pub(super) async fn fail_abandoned<E: Engine>(
    store: &SqlStore<E>,
    now: Timestamp,
    error: &str,
) -> Result<Vec<BackupRecord>> {
    let fail = Sql::built(format!(
        "WITH abandoned AS MATERIALIZED (SELECT id FROM backups WHERE status = 'running' \
         AND lease_until < $1{}) \
         UPDATE backups SET status = 'failed', finished_at = $1, error = $2, lease_owner = NULL, \
         lease_until = NULL WHERE id IN (SELECT id FROM abandoned) AND status = 'running' \
         AND lease_until < $1 RETURNING {COLUMNS}",
        skip_locked(store)
    ))
    .bind(now)
    .bind(error);
    let mut tx = store.engine.begin().await?;
    let rows = fail.fetch_all(&mut tx).await.map_err(err)?;
    tx.commit().await?;
    in_queue_order(&rows)
}

/// The listing: the workspace's runs, newest first, filtered and paged.
fn list_query<'a>(workspace_id: &'a str, filter: &'a BackupFilter) -> Sql<'a> {
    let mut q = Sql::built(format!(
        "SELECT {COLUMNS} FROM backups WHERE workspace_id = $1"
    ))
    .bind(workspace_id);
    if let Some(database_id) = &filter.database_id {
        q.push(" AND database_id = ").push_bind(database_id);
    }
    if let Some(status) = filter.status {
        q.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(server_run) = &filter.server_run {
        q.push(" AND server_run = ").push_bind(server_run);
    }
    if let Some((queued_at, id)) = &filter.before {
        // `queued_at` is compared twice: one placeholder, used twice.
        q = q.bind(*queued_at);
        let t = q.bound();
        q = q.bind(id);
        let i = q.bound();
        q.push(&format!(
            " AND (queued_at < ${t} OR (queued_at = ${t} AND id < ${i}))"
        ));
    }
    q.push(" ORDER BY queued_at DESC, id DESC LIMIT ")
        .push_bind(filter.limit);
    q
}

pub(super) async fn list<E: Engine>(
    store: &SqlStore<E>,
    workspace_id: &str,
    filter: &BackupFilter,
) -> Result<Vec<BackupRecord>> {
    let rows = list_query(workspace_id, filter)
        .fetch_all(&mut store.engine.read().await?)
        .await?;
    decode(&rows, backup_from)
}

pub(super) async fn get<E: Engine>(
    store: &SqlStore<E>,
    workspace_id: &str,
    id: &str,
) -> Result<Option<BackupRecord>> {
    let row = by_ids(BY_ID, workspace_id, id)
        .fetch_optional(&mut store.engine.read().await?)
        .await?;
    row.as_ref().map(backup_from).transpose()
}

pub(super) async fn delete<E: Engine>(
    store: &SqlStore<E>,
    workspace_id: &str,
    id: &str,
) -> Result<bool> {
    let mut tx = store.engine.begin().await?;
    let status: Option<String> = locked(store.dialect(), STATUS)
        .bind(workspace_id)
        .bind(id)
        .optional_scalar(&mut tx)
        .await?;
    let Some(status) = status else {
        return Ok(false);
    };
    if let Some(BackupStatus::Queued | BackupStatus::Running) = BackupStatus::parse(&status) {
        return Err(Error::Conflict(format!(
            "the backup is still {status}; wait for it to finish before deleting it"
        )));
    }
    let done = by_ids(DELETE, workspace_id, id)
        .execute(&mut tx)
        .await
        .map_err(err)?;
    tx.commit().await?;
    Ok(done == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_placeholders_follow_the_filters() {
        let filter = BackupFilter {
            status: Some(BackupStatus::Failed),
            before: Some((Timestamp(5), "b".into())),
            limit: 10,
            ..BackupFilter::default()
        };
        let q = list_query("ws", &filter);
        let text = q.text();
        assert!(text.contains("status = $2"), "{text}");
        assert!(text.contains("queued_at < $3 OR (queued_at = $3 AND id < $4)"));
        assert!(text.ends_with("LIMIT $5"));
        assert_eq!(q.bound(), 5);
    }
}
