//! The resource search index on PostgreSQL (see `statehouse_core::store::search` for the contract).

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection};

use statehouse_core::clock::Timestamp;
use statehouse_core::store::search::{
    NewIndexRow, NotIndexedReason, ResourceHit, ResourceSearch, SearchPosition, SearchStore,
    StoredIndexRow, UnindexedState, VersionResources, plan_index_update,
};
use statehouse_core::store::search_sql::{Dialect, SqlValue, search_query};
use statehouse_core::tfstate::{IdentifyingAttributes, Mode};
use statehouse_core::{Error, Result};

use crate::{PgStore, get};

/// Rows per INSERT … SELECT FROM UNNEST (bounds the arrays built for one statement).
const INSERT_BATCH: usize = 10_000;

impl PgStore {
    /// Replaces the state's index rows with a new version's resources (inside `write_version`'s
    /// transaction, which holds the state's row lock).
    pub(crate) async fn replace_index(
        &self,
        tx: &mut PgConnection,
        state_id: &str,
        version_no: i64,
        at: Timestamp,
        resources: VersionResources,
    ) -> Result<()> {
        let resources = match resources {
            VersionResources::NotIndexed(reason) => {
                sqlx::query("DELETE FROM resource_index WHERE state_id = $1")
                    .bind(state_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.db_err(e))?;
                sqlx::query(
                    "INSERT INTO resource_index_missing (state_id, reason) VALUES ($1, $2) \
                     ON CONFLICT (state_id) DO UPDATE SET reason = EXCLUDED.reason",
                )
                .bind(state_id)
                .bind(reason.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db_err(e))?;
                return Ok(());
            }
            VersionResources::Indexed(resources) => resources,
        };
        sqlx::query("DELETE FROM resource_index_missing WHERE state_id = $1")
            .bind(state_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_err(e))?;
        let stored = sqlx::query_as::<_, (i64, String, i64, i64, i64)>(
            "SELECT id, address, fingerprint, appeared_version_no, appeared_at FROM resource_index WHERE state_id = $1",
        )
        .bind(state_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.db_err(e))?
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
        if !changes.delete_rows.is_empty() {
            sqlx::query("DELETE FROM resource_index WHERE id = ANY($1::int8[])")
                .bind(&changes.delete_rows)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db_err(e))?;
        }
        for batch in changes.insert.chunks(INSERT_BATCH) {
            self.insert_rows(tx, state_id, batch).await?;
        }
        Ok(())
    }

    async fn insert_rows(
        &self,
        tx: &mut PgConnection,
        state_id: &str,
        rows: &[NewIndexRow],
    ) -> Result<()> {
        let text = |f: &dyn Fn(&NewIndexRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
        let optional = |f: &dyn Fn(&NewIndexRow) -> Option<&str>| {
            rows.iter().map(f).collect::<Vec<Option<&str>>>()
        };
        let number = |f: &dyn Fn(&NewIndexRow) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
        sqlx::query(
            "INSERT INTO resource_index (state_id, address, mode, type, name, module, provider, index_key, \
             attr_id, attr_arn, attr_name, attr_self_link, fingerprint, appeared_version_no, appeared_at) \
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
             $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int8[], $14::int8[], $15::int8[])",
        )
        .bind(state_id)
        .bind(text(&|r| r.resource.address.as_str()))
        .bind(text(&|r| r.resource.mode.as_str()))
        .bind(text(&|r| r.resource.resource_type.as_str()))
        .bind(text(&|r| r.resource.name.as_str()))
        .bind(text(&|r| r.resource.module.as_str()))
        .bind(text(&|r| r.resource.provider.as_str()))
        .bind(optional(&|r| r.index_key.as_deref()))
        .bind(optional(&|r| r.resource.ids.id.as_deref()))
        .bind(optional(&|r| r.resource.ids.arn.as_deref()))
        .bind(optional(&|r| r.resource.ids.name.as_deref()))
        .bind(optional(&|r| r.resource.ids.self_link.as_deref()))
        .bind(number(&|r| r.fingerprint))
        .bind(number(&|r| r.appeared_version_no))
        .bind(number(&|r| r.appeared_at.0))
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }
}

fn hit_from(row: &PgRow) -> Result<ResourceHit> {
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

#[async_trait]
impl SearchStore for PgStore {
    async fn search_resources(&self, search: &ResourceSearch) -> Result<Vec<ResourceHit>> {
        let (sql, binds) = search_query(search, Dialect::Postgres);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for value in binds {
            query = match value {
                SqlValue::Text(t) => query.bind(t),
                SqlValue::Int(i) => query.bind(i),
                SqlValue::TextList(list) => query.bind(list),
            };
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        rows.iter().map(hit_from).collect()
    }

    async fn unindexed_states(
        &self,
        workspace_ids: &[String],
        limit: i64,
    ) -> Result<(i64, Vec<UnindexedState>)> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM resource_index_missing m JOIN states s ON s.id = m.state_id \
             WHERE s.deleted_at IS NULL AND s.workspace_id = ANY($1::text[])",
        )
        .bind(workspace_ids)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.db_err(e))?;
        if count == 0 {
            return Ok((0, Vec::new()));
        }
        let rows = sqlx::query(
            "SELECT s.id, s.name, s.workspace_id, w.name AS workspace_name, m.reason \
             FROM resource_index_missing m JOIN states s ON s.id = m.state_id \
             JOIN workspaces w ON w.id = s.workspace_id \
             WHERE s.deleted_at IS NULL AND s.workspace_id = ANY($1::text[]) \
             ORDER BY w.name, s.name COLLATE \"C\" LIMIT $2",
        )
        .bind(workspace_ids)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.db_err(e))?;
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
