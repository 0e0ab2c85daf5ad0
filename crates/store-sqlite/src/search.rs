//! The resource search index on SQLite (see `statehouse_core::store::search` for the contract).

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Sqlite, Transaction};

use statehouse_core::clock::Timestamp;
use statehouse_core::store::search::{
    NewIndexRow, NotIndexedReason, ResourceHit, ResourceSearch, SearchPosition, SearchStore,
    StoredIndexRow, UnindexedState, VersionResources, plan_index_update,
};
use statehouse_core::store::search_sql::{Dialect, SqlValue, search_query};
use statehouse_core::tfstate::{IdentifyingAttributes, Mode};
use statehouse_core::{Error, Result};

use crate::{SqliteStore, db_err, get};

/// Rows per multi-row INSERT: 15 values each, well under SQLite's 32,766 variables.
const INSERT_BATCH: usize = 500;

/// Replaces the state's index rows with a new version's resources (inside `write_version`'s
/// transaction).
pub(crate) async fn replace_index(
    tx: &mut Transaction<'_, Sqlite>,
    state_id: &str,
    version_no: i64,
    at: Timestamp,
    resources: VersionResources,
) -> Result<()> {
    let resources = match resources {
        VersionResources::NotIndexed(reason) => {
            sqlx::query("DELETE FROM resource_index WHERE state_id = ?")
                .bind(state_id)
                .execute(&mut **tx)
                .await
                .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO resource_index_missing (state_id, reason) VALUES (?, ?) \
                 ON CONFLICT (state_id) DO UPDATE SET reason = excluded.reason",
            )
            .bind(state_id)
            .bind(reason.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
            return Ok(());
        }
        VersionResources::Indexed(resources) => resources,
    };
    sqlx::query("DELETE FROM resource_index_missing WHERE state_id = ?")
        .bind(state_id)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    let stored = sqlx::query_as::<_, (i64, String, i64, i64, i64)>(
        "SELECT id, address, fingerprint, appeared_version_no, appeared_at FROM resource_index WHERE state_id = ?",
    )
    .bind(state_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?
    .into_iter()
    .map(|(row, address, fingerprint, appeared_version_no, appeared_at)| StoredIndexRow {
        row,
        address,
        fingerprint,
        appeared_version_no,
        appeared_at: Timestamp(appeared_at),
    })
    .collect();
    let changes = plan_index_update(stored, resources, version_no, at);
    for ids in changes.delete_rows.chunks(INSERT_BATCH * 10) {
        let ids = serde_json::to_string(ids).map_err(|e| Error::Internal(e.to_string()))?;
        sqlx::query("DELETE FROM resource_index WHERE id IN (SELECT value FROM json_each(?))")
            .bind(ids)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    for batch in changes.insert.chunks(INSERT_BATCH) {
        insert_rows(tx, state_id, batch).await?;
    }
    Ok(())
}

async fn insert_rows(
    tx: &mut Transaction<'_, Sqlite>,
    state_id: &str,
    rows: &[NewIndexRow],
) -> Result<()> {
    let mut sql = String::from(
        "INSERT INTO resource_index (state_id, address, mode, type, name, module, provider, index_key, \
         attr_id, attr_arn, attr_name, attr_self_link, fingerprint, appeared_version_no, appeared_at) VALUES ",
    );
    for i in 0..rows.len() {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    }
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for row in rows {
        let r = &row.resource;
        query = query
            .bind(state_id)
            .bind(&r.address)
            .bind(r.mode.as_str())
            .bind(&r.resource_type)
            .bind(&r.name)
            .bind(&r.module)
            .bind(&r.provider)
            .bind(&row.index_key)
            .bind(&r.ids.id)
            .bind(&r.ids.arn)
            .bind(&r.ids.name)
            .bind(&r.ids.self_link)
            .bind(row.fingerprint)
            .bind(row.appeared_version_no)
            .bind(row.appeared_at.0);
    }
    query.execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}

fn hit_from(row: &SqliteRow) -> Result<ResourceHit> {
    let mode: String = get(row, "mode")?;
    Ok(ResourceHit {
        workspace_id: get(row, "workspace_id")?,
        workspace_name: get(row, "workspace_name")?,
        state_id: get(row, "state_id")?,
        state_name: get(row, "state_name")?,
        address: get(row, "address")?,
        mode: Mode::parse(&mode)
            .ok_or_else(|| Error::Internal(format!("indexed mode {mode:?} is unknown")))?,
        resource_type: get(row, "type")?,
        name: get(row, "name")?,
        module: get(row, "module")?,
        provider: get(row, "provider")?,
        index_key: get(row, "index_key")?,
        attributes: IdentifyingAttributes {
            id: get(row, "attr_id")?,
            arn: get(row, "attr_arn")?,
            name: get(row, "attr_name")?,
            self_link: get(row, "attr_self_link")?,
        },
        version_no: get(row, "version_no")?,
        appeared_version_no: get(row, "appeared_version_no")?,
        appeared_at: Timestamp(get(row, "appeared_at")?),
        position: SearchPosition {
            value: get(row, "pos_value")?,
            attribute: get(row, "pos_attr")?,
            row: get(row, "id")?,
        },
    })
}

fn workspace_list(ids: &[String]) -> Result<String> {
    serde_json::to_string(ids).map_err(|e| Error::Internal(e.to_string()))
}

#[async_trait]
impl SearchStore for SqliteStore {
    async fn search_resources(&self, search: &ResourceSearch) -> Result<Vec<ResourceHit>> {
        let (sql, binds) = search_query(search, Dialect::Sqlite);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in binds {
            query = match value {
                SqlValue::Text(t) => query.bind(t),
                SqlValue::Int(i) => query.bind(i),
                SqlValue::TextList(list) => query.bind(workspace_list(&list)?),
            };
        }
        let rows = query.fetch_all(&self.read).await.map_err(db_err)?;
        rows.iter().map(hit_from).collect()
    }

    async fn unindexed_states(
        &self,
        workspace_ids: &[String],
        limit: i64,
    ) -> Result<(i64, Vec<UnindexedState>)> {
        let workspaces = workspace_list(workspace_ids)?;
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM resource_index_missing m JOIN states s ON s.id = m.state_id \
             WHERE s.deleted_at IS NULL AND s.workspace_id IN (SELECT value FROM json_each(?))",
        )
        .bind(&workspaces)
        .fetch_one(&self.read)
        .await
        .map_err(db_err)?;
        if count == 0 {
            return Ok((0, Vec::new()));
        }
        let rows = sqlx::query(
            "SELECT s.id, s.name, s.workspace_id, w.name AS workspace_name, m.reason \
             FROM resource_index_missing m JOIN states s ON s.id = m.state_id \
             JOIN workspaces w ON w.id = s.workspace_id \
             WHERE s.deleted_at IS NULL AND s.workspace_id IN (SELECT value FROM json_each(?)) \
             ORDER BY w.name, s.name LIMIT ?",
        )
        .bind(&workspaces)
        .bind(limit)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        let states = rows
            .iter()
            .map(|r| {
                let reason: String = get(r, "reason")?;
                Ok(UnindexedState {
                    workspace_id: get(r, "workspace_id")?,
                    workspace_name: get(r, "workspace_name")?,
                    state_id: get(r, "id")?,
                    state_name: get(r, "name")?,
                    reason: NotIndexedReason::parse(&reason).ok_or_else(|| {
                        Error::Internal(format!("stored reason {reason:?} is unknown"))
                    })?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((count, states))
    }
}
