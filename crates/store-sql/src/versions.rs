//! A state's versions: bodies, history, kept marks, retention, and appending a write.

use async_trait::async_trait;

use statehouse_core::clock::Timestamp;
use statehouse_core::crypto::SealedBody;
use statehouse_core::model::{VersionMeta, VersionWrite, WriteOutcome};
use statehouse_core::rules::{self, Incoming, WriteContext, WriteDecision};
use statehouse_core::store::pending::Journaling;
use statehouse_core::store::versions::VersionStore;
use statehouse_core::{Error, Result};

use crate::SqlStore;
use crate::engine::{Conn, Engine, Row, Tx};
use crate::pending::insert_pending;
use crate::query::{Sql, sql};
use crate::states::version_from;

/// A version with its sealed body.
const VERSION_WITH_BODY: &str = "SELECT id AS v_id, state_id, version_no, serial, lineage, md5, size, \
    created_at AS v_created_at, created_by, client_version, forced, client_encrypted, kept, resource_count, \
    key_id, wrapped_key, body FROM state_versions";

const VERSION_COLUMNS: &str = "SELECT id AS v_id, state_id, version_no, serial, lineage, md5, size, \
    created_at AS v_created_at, created_by, client_version, forced, client_encrypted, kept, resource_count \
    FROM state_versions";

fn version_with_body(row: &impl Row) -> Result<Option<(VersionMeta, SealedBody)>> {
    let Some(meta) = version_from(row, None)? else {
        return Ok(None);
    };
    let sealed = SealedBody {
        key_id: row.get("key_id")?,
        wrapped_key: row.get("wrapped_key")?,
        ciphertext: row.get("body")?,
    };
    Ok(Some((meta, sealed)))
}

#[async_trait]
impl<E: Engine> VersionStore for SqlStore<E> {
    async fn current_body(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<(VersionMeta, SealedBody)>> {
        let row = Sql::built(format!(
            "{VERSION_WITH_BODY} WHERE id = (SELECT current_version_id FROM states \
             WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL)"
        ))
        .bind(workspace_id)
        .bind(name)
        .fetch_optional(&mut self.engine.read().await?)
        .await?;
        row.as_ref()
            .map(version_with_body)
            .transpose()
            .map(Option::flatten)
    }

    async fn version_body(
        &self,
        state_id: &str,
        version_no: i64,
    ) -> Result<Option<(VersionMeta, SealedBody)>> {
        let query = || {
            Sql::built(format!(
                "{VERSION_WITH_BODY} WHERE state_id = $1 AND version_no = $2"
            ))
            .bind(state_id)
            .bind(version_no)
        };
        // A version never changes once written: a read replica's copy, when it has one, is
        // the primary's (diffs and version downloads read there); one it does not have yet
        // is read from the primary.
        let mut conn = self.engine.read_lagging().await?;
        let mut row = query().fetch_optional(&mut conn).await?;
        if row.is_none() && conn.lags() {
            drop(conn);
            row = query()
                .fetch_optional(&mut self.engine.read().await?)
                .await?;
        }
        row.as_ref()
            .map(version_with_body)
            .transpose()
            .map(Option::flatten)
    }

    async fn list_versions(
        &self,
        state_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<VersionMeta>> {
        let rows = Sql::built(format!(
            "{VERSION_COLUMNS} WHERE state_id = $1 \
             AND (CAST($2 AS BIGINT) IS NULL OR version_no < $2) ORDER BY version_no DESC LIMIT $3"
        ))
        .bind(state_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&mut self.engine.read_lagging().await?)
        .await?;
        rows.iter()
            .filter_map(|r| version_from(r, None).transpose())
            .collect()
    }

    async fn set_version_kept_journaled(
        &self,
        state_id: &str,
        version_no: i64,
        kept: bool,
        journal: Journaling<'_, bool>,
    ) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        let done =
            sql("UPDATE state_versions SET kept = $1 WHERE state_id = $2 AND version_no = $3")
                .bind(kept)
                .bind(state_id)
                .bind(version_no)
                .execute(&mut tx)
                .await?;
        let found = done == 1;
        insert_pending(&mut tx, &journal(&found)).await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn prune_versions(
        &self,
        workspace_id: &str,
        keep_last: Option<i64>,
        created_before: Option<Timestamp>,
        limit: i64,
    ) -> Result<u64> {
        if keep_last.is_none() && created_before.is_none() {
            return Ok(0);
        }
        // PostgreSQL: SKIP LOCKED, so two replicas pruning at once split the work instead of
        // queueing.
        let done = Sql::built(format!(
            "DELETE FROM state_versions WHERE id IN ( \
               SELECT v.id FROM state_versions v JOIN states s ON s.id = v.state_id \
               WHERE s.workspace_id = $1 AND v.id IS DISTINCT FROM s.current_version_id AND v.kept = FALSE \
               AND NOT EXISTS (SELECT 1 FROM s3_objects o \
                 WHERE o.state_id = v.state_id AND o.version_no = v.version_no) \
               AND (CAST($2 AS BIGINT) IS NULL OR v.version_no <= \
                    (SELECT MAX(m.version_no) FROM state_versions m WHERE m.state_id = v.state_id) - $2) \
               AND (CAST($3 AS BIGINT) IS NULL OR v.created_at < $3) \
               LIMIT $4{})",
            self.dialect().pick("", " FOR UPDATE OF v SKIP LOCKED")
        ))
        .bind(workspace_id)
        .bind(keep_last)
        .bind(created_before)
        .bind(limit)
        .execute(&mut self.engine.writer().await?)
        .await?;
        Ok(done)
    }

    async fn write_version_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        w: VersionWrite,
        journal: Journaling<'_, WriteOutcome>,
    ) -> Result<WriteOutcome> {
        let mut tx = self.engine.begin().await?;
        let state = match self
            .live_state_for_update(&mut tx, workspace_id, name)
            .await?
        {
            Some(s) if s.id == w.state_id => s,
            _ => {
                return Err(Error::Conflict(
                    "the state was deleted or replaced while this write was in flight; nothing was written, retry".into(),
                ));
            }
        };
        let protection: bool = sql("SELECT serial_protection FROM workspaces WHERE id = $1")
            .bind(workspace_id)
            .scalar(&mut tx)
            .await?;
        let decision = rules::decide_write(
            WriteContext {
                current: state.current.as_ref(),
                lock: state.lock.as_ref(),
                serial_protection: protection,
                overwrite_until: state.overwrite_until,
                now: w.at,
            },
            Incoming {
                serial: w.serial,
                lineage: &w.lineage,
                md5: &w.md5,
                lock_id: w.lock_id.as_deref(),
                token_id: &w.token_id,
            },
        )?;
        let (forced, consumes_override) = match decision {
            WriteDecision::Unchanged => {
                let current = state
                    .current
                    .ok_or_else(|| Error::Internal("unchanged without a current version".into()))?;
                let outcome = WriteOutcome::Unchanged(current);
                insert_pending(&mut tx, &journal(&outcome)).await?;
                tx.commit().await?;
                return Ok(outcome);
            }
            WriteDecision::Append {
                forced,
                consumes_override,
            } => (forced, consumes_override),
        };
        let resource_count = w.resources.count();
        // Safe without a sequence: every writer of this state holds its row for update.
        let version_no: i64 =
            sql("SELECT COALESCE(MAX(version_no), 0) + 1 FROM state_versions WHERE state_id = $1")
                .bind(&state.id)
                .scalar(&mut tx)
                .await?;
        sql("INSERT INTO state_versions (id, state_id, version_no, serial, lineage, md5, size, created_at, created_by, \
             client_version, forced, client_encrypted, resource_count, key_id, wrapped_key, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)")
        .bind(&w.version_id)
        .bind(&state.id)
        .bind(version_no)
        .bind(w.serial)
        .bind(&w.lineage)
        .bind(&w.md5)
        .bind(w.size)
        .bind(w.at)
        .bind(&w.author)
        .bind(&w.client_version)
        .bind(forced)
        .bind(w.client_encrypted)
        .bind(resource_count)
        .bind(&w.sealed.key_id)
        .bind(&w.sealed.wrapped_key)
        // Moved, not copied: for a large body this buffer is the biggest thing in memory.
        .bind(w.sealed.ciphertext)
        .execute(&mut tx)
        .await?;
        sql(
            "UPDATE states SET current_version_id = $1, updated_at = $2, \
             overwrite_until = CASE WHEN $3 THEN NULL ELSE overwrite_until END WHERE id = $4",
        )
        .bind(&w.version_id)
        .bind(w.at)
        .bind(consumes_override)
        .bind(&state.id)
        .execute(&mut tx)
        .await?;
        crate::search::index::replace_index(
            &mut tx,
            self.dialect(),
            &state.id,
            version_no,
            w.at,
            w.resources,
        )
        .await?;
        let outcome = WriteOutcome::Created(VersionMeta {
            id: w.version_id.clone(),
            state_id: state.id,
            version_no,
            serial: w.serial,
            lineage: w.lineage.clone(),
            md5: w.md5.clone(),
            size: w.size,
            created_at: w.at,
            created_by: w.author.clone(),
            client_version: w.client_version.clone(),
            forced,
            client_encrypted: w.client_encrypted,
            kept: false,
            resource_count,
        });
        insert_pending(&mut tx, &journal(&outcome)).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}
