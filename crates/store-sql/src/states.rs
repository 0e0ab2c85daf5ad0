//! States: live, soft-deleted, restored, purged; the one-shot overwrite window; and the state
//! row as every state transaction reads it.
//!
//! A change to one state runs in one transaction that first reads the state row for update:
//! on PostgreSQL it takes the row lock (`SELECT … FOR UPDATE`) and then reads the row afresh,
//! so writes, locks, unlocks and deletes on one state serialize across connections and
//! replicas and the rules decide on current rows; on SQLite the transaction is the one writer.
//! States are created with `INSERT … ON CONFLICT DO NOTHING` against the unique index on live
//! names, so racing creators end up on one row.

use async_trait::async_trait;

use statehouse_core::clock::Timestamp;
use statehouse_core::model::{DeletedState, HeldLock, StateFilter, StateRecord, VersionMeta};
use statehouse_core::store::pending::Journaling;
use statehouse_core::store::search::ResourceSearch;
use statehouse_core::store::states::StateStore;
use statehouse_core::{Error, Result};

use crate::SqlStore;
use crate::engine::{Conn, Dialect, Engine, Row, Tx};
use crate::pending::insert_pending;
use crate::query::{Sql, sql};

const STATE_SELECT: &str = "SELECT s.id, s.workspace_id, s.name, s.created_at, s.updated_at, s.overwrite_until, \
    s.lock_id, s.lock_info, s.lock_token_id, s.lock_holder, s.locked_at, \
    v.id AS v_id, v.version_no, v.serial, v.lineage, v.md5, v.size, v.created_at AS v_created_at, \
    v.created_by, v.client_version, v.forced, v.client_encrypted, v.kept, v.resource_count \
    FROM states s LEFT JOIN state_versions v ON v.id = s.current_version_id";

/// [`STATE_SELECT`] of the live state by workspace and name.
const LIVE_STATE: &str = "SELECT s.id, s.workspace_id, s.name, s.created_at, s.updated_at, s.overwrite_until, \
    s.lock_id, s.lock_info, s.lock_token_id, s.lock_holder, s.locked_at, \
    v.id AS v_id, v.version_no, v.serial, v.lineage, v.md5, v.size, v.created_at AS v_created_at, \
    v.created_by, v.client_version, v.forced, v.client_encrypted, v.kept, v.resource_count \
    FROM states s LEFT JOIN state_versions v ON v.id = s.current_version_id \
    WHERE s.workspace_id = $1 AND s.name = $2 AND s.deleted_at IS NULL";

/// [`STATE_SELECT`] by id.
const STATE_BY_ID: &str = "SELECT s.id, s.workspace_id, s.name, s.created_at, s.updated_at, s.overwrite_until, \
    s.lock_id, s.lock_info, s.lock_token_id, s.lock_holder, s.locked_at, \
    v.id AS v_id, v.version_no, v.serial, v.lineage, v.md5, v.size, v.created_at AS v_created_at, \
    v.created_by, v.client_version, v.forced, v.client_encrypted, v.kept, v.resource_count \
    FROM states s LEFT JOIN state_versions v ON v.id = s.current_version_id \
    WHERE s.id = $1";

/// How often a transaction retries finding a state row that a concurrent transaction created
/// and deleted again before it could lock it.
const ENSURE_ATTEMPTS: usize = 5;

/// A version's metadata from a row of `state_versions` (columns as [`STATE_SELECT`] names
/// them); `None` when the row has no version (a state without one).
pub(crate) fn version_from(row: &impl Row, state_id: Option<&str>) -> Result<Option<VersionMeta>> {
    let Some(id) = row.get::<Option<String>>("v_id")? else {
        return Ok(None);
    };
    let state_id = match state_id {
        Some(s) => s.to_owned(),
        None => row.get("state_id")?,
    };
    Ok(Some(VersionMeta {
        id,
        state_id,
        version_no: row.get("version_no")?,
        serial: row.get("serial")?,
        lineage: row.get("lineage")?,
        md5: row.get("md5")?,
        size: row.get("size")?,
        created_at: row.get("v_created_at")?,
        created_by: row.get("created_by")?,
        client_version: row.get("client_version")?,
        forced: row.get("forced")?,
        client_encrypted: row.get("client_encrypted")?,
        kept: row.get("kept")?,
        resource_count: row.get("resource_count")?,
    }))
}

pub(crate) fn state_from(row: &impl Row) -> Result<StateRecord> {
    let id: String = row.get("id")?;
    let lock = match row.get::<Option<String>>("lock_id")? {
        None => None,
        Some(lock_id) => Some(HeldLock {
            id: lock_id,
            info: row.get("lock_info")?,
            token_id: row.get("lock_token_id")?,
            holder: row.get("lock_holder")?,
            locked_at: row.get("locked_at")?,
        }),
    };
    Ok(StateRecord {
        current: version_from(row, Some(&id))?,
        workspace_id: row.get("workspace_id")?,
        name: row.get("name")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        overwrite_until: row.get("overwrite_until")?,
        lock,
        id,
    })
}

/// A state by id, in the caller's transaction.
pub(crate) async fn state_by_id<C: Conn>(conn: &mut C, id: &str) -> Result<StateRecord> {
    state_from(&sql(STATE_BY_ID).bind(id).fetch_one(conn).await?)
}

impl<E: Engine> SqlStore<E> {
    /// The live state, read for update inside `tx` (see the module's comment); `None` when
    /// there is no live state of that name.
    pub(crate) async fn live_state_for_update(
        &self,
        tx: &mut E::Tx<'_>,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<StateRecord>> {
        match E::DIALECT {
            Dialect::Sqlite => {
                let row = sql(LIVE_STATE)
                    .bind(workspace_id)
                    .bind(name)
                    .fetch_optional(tx)
                    .await?;
                row.as_ref().map(state_from).transpose()
            }
            // Locked first, read after: the read sees every change committed before the lock
            // was granted (a join read under FOR UPDATE could return the old version row).
            Dialect::Postgres => {
                let id: Option<String> = sql(
                    "SELECT id FROM states WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL FOR UPDATE",
                )
                .bind(workspace_id)
                .bind(name)
                .optional_scalar(tx)
                .await?;
                match id {
                    Some(id) => state_by_id(tx, &id).await.map(Some),
                    None => Ok(None),
                }
            }
        }
    }

    /// The live state read for update, created first when missing.
    pub(crate) async fn state_for_update_or_create(
        &self,
        tx: &mut E::Tx<'_>,
        workspace_id: &str,
        name: &str,
        at: Timestamp,
    ) -> Result<StateRecord> {
        for _ in 0..ENSURE_ATTEMPTS {
            if let Some(state) = self.live_state_for_update(tx, workspace_id, name).await? {
                return Ok(state);
            }
            // Waits for a concurrent creator of the same name, then does nothing if it committed.
            insert_empty_state(tx, workspace_id, name, at).await?;
        }
        Err(Error::Conflict(format!(
            "state {name:?} was created and deleted concurrently; retry"
        )))
    }
}

async fn insert_empty_state<C: Conn>(
    conn: &mut C,
    workspace_id: &str,
    name: &str,
    at: Timestamp,
) -> Result<()> {
    sql("INSERT INTO states (id, workspace_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT DO NOTHING")
    .bind(statehouse_core::service::new_id())
    .bind(workspace_id)
    .bind(name)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl<E: Engine> StateStore for SqlStore<E> {
    async fn state(&self, workspace_id: &str, name: &str) -> Result<Option<StateRecord>> {
        let row = sql(LIVE_STATE)
            .bind(workspace_id)
            .bind(name)
            .fetch_optional(&mut self.engine.read().await?)
            .await?;
        row.as_ref().map(state_from).transpose()
    }

    async fn ensure_state(
        &self,
        workspace_id: &str,
        name: &str,
        at: Timestamp,
    ) -> Result<StateRecord> {
        for _ in 0..ENSURE_ATTEMPTS {
            if let Some(state) = self.state(workspace_id, name).await? {
                return Ok(state);
            }
            insert_empty_state(&mut self.engine.writer().await?, workspace_id, name, at).await?;
        }
        Err(Error::Conflict(format!(
            "state {name:?} was created and deleted concurrently; retry"
        )))
    }

    async fn list_states(
        &self,
        workspace_id: &str,
        filter: &StateFilter,
    ) -> Result<Vec<StateRecord>> {
        // Prefix as a range on the bytewise-ordered name (an index range scan, no LIKE escaping).
        let prefix_end = filter
            .name_prefix
            .as_deref()
            .and_then(|p| ResourceSearch::prefix_range(p).1);
        // Two orders, two statement texts: each keyset condition matches its ORDER BY.
        let (after, order) = if filter.recently_changed_first {
            (
                "(CAST($6 AS TEXT) IS NULL OR CAST($8 AS BIGINT) IS NULL \
                 OR s.updated_at < $8 OR (s.updated_at = $8 AND s.name > $6))",
                "s.updated_at DESC, s.name",
            )
        } else {
            (
                "(CAST($6 AS TEXT) IS NULL OR s.name > $6) AND (CAST($8 AS BIGINT) IS NULL OR 1 = 1)",
                "s.name",
            )
        };
        let query = Sql::built(format!(
            "{STATE_SELECT} WHERE s.workspace_id = $1 AND s.deleted_at IS NULL \
             AND (CAST($2 AS TEXT) IS NULL OR s.name >= $2) AND (CAST($3 AS TEXT) IS NULL OR s.name < $3) \
             AND (CAST($4 AS BOOLEAN) IS NULL OR (s.lock_id IS NOT NULL) = $4) \
             AND (CAST($5 AS BIGINT) IS NULL OR s.updated_at >= $5) \
             AND {after} ORDER BY {order} LIMIT $7"
        ))
        .bind(workspace_id)
        .bind(&filter.name_prefix)
        .bind(prefix_end)
        .bind(filter.locked)
        .bind(filter.changed_since)
        .bind(&filter.after_name)
        .bind(filter.limit.unwrap_or(i64::MAX))
        .bind(filter.after_changed);
        let rows = if filter.tolerate_lag {
            query
                .fetch_all(&mut self.engine.read_lagging().await?)
                .await?
        } else {
            query.fetch_all(&mut self.engine.read().await?).await?
        };
        rows.iter().map(state_from).collect()
    }

    async fn delete_state_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        by: &str,
        at: Timestamp,
        journal: Journaling<'_, bool>,
    ) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        let Some(state) = self
            .live_state_for_update(&mut tx, workspace_id, name)
            .await?
        else {
            return Ok(false);
        };
        if let Some(lock) = state.lock {
            return Err(Error::Locked {
                holder_info: lock.info,
            });
        }
        sql("UPDATE states SET deleted_at = $1, deleted_by = $2 WHERE id = $3")
            .bind(at)
            .bind(by)
            .bind(&state.id)
            .execute(&mut tx)
            .await?;
        insert_pending(&mut tx, &journal(&true)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_deleted_states(&self, workspace_id: &str) -> Result<Vec<DeletedState>> {
        let rows = Sql::built(format!(
            "SELECT s.id, s.workspace_id, s.name, s.deleted_at, s.deleted_by, \
             (SELECT COUNT(*) FROM state_versions v WHERE v.state_id = s.id) AS versions \
             FROM states s WHERE s.workspace_id = $1 AND s.deleted_at IS NOT NULL \
             ORDER BY s.deleted_at DESC, s.id{}",
            self.bytewise()
        ))
        .bind(workspace_id)
        .fetch_all(&mut self.engine.read().await?)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeletedState {
                    id: r.get("id")?,
                    workspace_id: r.get("workspace_id")?,
                    name: r.get("name")?,
                    deleted_at: r.get("deleted_at")?,
                    deleted_by: r.get::<Option<String>>("deleted_by")?.unwrap_or_default(),
                    versions: r.get("versions")?,
                })
            })
            .collect()
    }

    async fn restore_state_journaled(
        &self,
        workspace_id: &str,
        state_id: &str,
        at: Timestamp,
        journal: Journaling<'_, bool>,
    ) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        let name: Option<String> = Sql::built(format!(
            "SELECT name FROM states WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NOT NULL{}",
            self.for_update()
        ))
        .bind(state_id)
        .bind(workspace_id)
        .optional_scalar(&mut tx)
        .await?;
        let Some(name) = name else { return Ok(false) };
        let live_name_taken = || {
            Error::Conflict(format!(
                "a live state named {name:?} exists; delete or rename it before restoring this one"
            ))
        };
        let live: Option<String> = sql(
            "SELECT id FROM states WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL",
        )
        .bind(workspace_id)
        .bind(&name)
        .optional_scalar(&mut tx)
        .await?;
        if live.is_some() {
            return Err(live_name_taken());
        }
        // A state created under that name meanwhile trips the live-name index: same answer.
        sql(
            "UPDATE states SET deleted_at = NULL, deleted_by = NULL, updated_at = $1 WHERE id = $2",
        )
        .bind(at)
        .bind(state_id)
        .execute(&mut tx)
        .await
        .map_err(|e| {
            if e.is_unique() {
                live_name_taken()
            } else {
                e.into()
            }
        })?;
        insert_pending(&mut tx, &journal(&true)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn purge_state_journaled(
        &self,
        workspace_id: &str,
        state_id: &str,
        journal: Journaling<'_, bool>,
    ) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        let found: Option<String> = Sql::built(format!(
            "SELECT id FROM states WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NOT NULL{}",
            self.for_update()
        ))
        .bind(state_id)
        .bind(workspace_id)
        .optional_scalar(&mut tx)
        .await?;
        if found.is_none() {
            return Ok(false);
        }
        for statement in [
            "DELETE FROM state_versions WHERE state_id = $1",
            "DELETE FROM states WHERE id = $1",
        ] {
            sql(statement).bind(state_id).execute(&mut tx).await?;
        }
        insert_pending(&mut tx, &journal(&true)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_overwrite_until_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        until: Option<Timestamp>,
        journal: Journaling<'_, bool>,
    ) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        let done = sql(
            "UPDATE states SET overwrite_until = $1 WHERE workspace_id = $2 AND name = $3 AND deleted_at IS NULL",
        )
        .bind(until)
        .bind(workspace_id)
        .bind(name)
        .execute(&mut tx)
        .await?;
        let found = done == 1;
        insert_pending(&mut tx, &journal(&found)).await?;
        tx.commit().await?;
        Ok(found)
    }
}
