//! Verifications of backup runs; a run keeps its latest one's summary on its row.

use statehouse_core::Result;
use statehouse_core::backups::VerificationRecord;

use super::{decode, err, json_text};
use crate::SqlStore;
use crate::engine::{Engine, Row, Tx};
use crate::query::sql;

/// Makes a verification the run's latest: `$1` backup id, `$2` at, `$3` level, `$4` ok.
const SET_LATEST: &str =
    "UPDATE backups SET verified_at = $2, verify_level = $3, verify_ok = $4 WHERE id = $1";
const INSERT: &str = "INSERT INTO backup_verifications (id, backup_id, at, level, ok, \
    detail) VALUES ($1, $2, $3, $4, $5, $6)";
const LIST: &str = "SELECT id, backup_id, at, level, ok, detail FROM backup_verifications \
    WHERE backup_id = $1 ORDER BY at DESC, id DESC";

fn verification_from(row: &impl Row) -> Result<VerificationRecord> {
    Ok(VerificationRecord {
        id: row.get("id")?,
        backup_id: row.get("backup_id")?,
        at: row.get("at")?,
        level: row.get("level")?,
        ok: row.get("ok")?,
        detail: row.get("detail")?,
    })
}

pub(super) async fn record<E: Engine>(store: &SqlStore<E>, v: &VerificationRecord) -> Result<bool> {
    let mut tx = store.engine.begin().await?;
    let done = sql(SET_LATEST)
        .bind(&v.backup_id)
        .bind(v.at)
        .bind(&v.level)
        .bind(v.ok)
        .execute(&mut tx)
        .await
        .map_err(err)?;
    if done != 1 {
        return Ok(false);
    }
    sql(INSERT)
        .bind(&v.id)
        .bind(&v.backup_id)
        .bind(v.at)
        .bind(&v.level)
        .bind(v.ok)
        .bind(json_text(&v.detail))
        .execute(&mut tx)
        .await
        .map_err(err)?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn list<E: Engine>(
    store: &SqlStore<E>,
    backup_id: &str,
) -> Result<Vec<VerificationRecord>> {
    let rows = sql(LIST)
        .bind(backup_id)
        .fetch_all(&mut store.engine.read().await?)
        .await?;
    decode(&rows, verification_from)
}
