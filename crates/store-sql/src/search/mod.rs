//! The resource search index (see `statehouse_core::store::search` for the contract): the
//! search itself, the states without index rows, and the index update the write path runs.

pub(crate) mod index;
mod query;

use async_trait::async_trait;

use statehouse_core::store::search::{
    NotIndexedReason, ResourceHit, ResourceSearch, SearchPosition, SearchStore, UnindexedState,
};
use statehouse_core::tfstate::{IdentifyingAttributes, Mode};
use statehouse_core::{Error, Result};

use crate::SqlStore;
use crate::engine::{Engine, Row};
use crate::query::{Sql, json_list};

pub use query::search_query;

fn hit_from(row: &impl Row) -> Result<ResourceHit> {
    let mode: String = row.get("mode")?;
    Ok(ResourceHit {
        workspace_id: row.get("workspace_id")?,
        workspace_name: row.get("workspace_name")?,
        state_id: row.get("state_id")?,
        state_name: row.get("state_name")?,
        address: row.get("address")?,
        mode: Mode::parse(&mode)
            .ok_or_else(|| Error::Internal(format!("indexed mode {mode:?} is unknown")))?,
        resource_type: row.get("type")?,
        name: row.get("name")?,
        module: row.get("module")?,
        provider: row.get("provider")?,
        index_key: row.get("index_key")?,
        attributes: IdentifyingAttributes {
            id: row.get("attr_id")?,
            arn: row.get("attr_arn")?,
            name: row.get("attr_name")?,
            self_link: row.get("attr_self_link")?,
        },
        version_no: row.get("version_no")?,
        appeared_version_no: row.get("appeared_version_no")?,
        appeared_at: row.get("appeared_at")?,
        position: SearchPosition {
            value: row.get("pos_value")?,
            attribute: row.get("pos_attr")?,
            row: row.get("id")?,
        },
    })
}

fn unindexed_from(row: &impl Row) -> Result<UnindexedState> {
    let reason: String = row.get("reason")?;
    Ok(UnindexedState {
        workspace_id: row.get("workspace_id")?,
        workspace_name: row.get("workspace_name")?,
        state_id: row.get("id")?,
        state_name: row.get("name")?,
        reason: NotIndexedReason::parse(&reason)
            .ok_or_else(|| Error::Internal(format!("stored reason {reason:?} is unknown")))?,
    })
}

#[async_trait]
impl<E: Engine> SearchStore for SqlStore<E> {
    async fn search_resources(&self, search: &ResourceSearch) -> Result<Vec<ResourceHit>> {
        let rows = search_query(search, self.dialect())
            .fetch_all(&mut self.engine.read_lagging().await?)
            .await?;
        rows.iter().map(hit_from).collect()
    }

    async fn unindexed_states(
        &self,
        workspace_ids: &[String],
        limit: i64,
    ) -> Result<(i64, Vec<UnindexedState>)> {
        let workspaces = json_list(workspace_ids);
        let in_workspaces = query::in_workspaces(self.dialect(), 1);
        let mut conn = self.engine.read_lagging().await?;
        let count: i64 = Sql::built(format!(
            "SELECT COUNT(*) FROM resource_index_missing m JOIN states s ON s.id = m.state_id \
             WHERE s.deleted_at IS NULL AND {in_workspaces}"
        ))
        .bind(&workspaces)
        .scalar(&mut conn)
        .await?;
        if count == 0 {
            return Ok((0, Vec::new()));
        }
        // `states.name` sorts by bytes on both engines (PostgreSQL: its "C" collation).
        let rows = Sql::built(format!(
            "SELECT s.id, s.name, s.workspace_id, w.name AS workspace_name, m.reason \
             FROM resource_index_missing m JOIN states s ON s.id = m.state_id \
             JOIN workspaces w ON w.id = s.workspace_id \
             WHERE s.deleted_at IS NULL AND {in_workspaces} \
             ORDER BY w.name, s.name LIMIT $2"
        ))
        .bind(&workspaces)
        .bind(limit)
        .fetch_all(&mut conn)
        .await?;
        let states = rows
            .iter()
            .map(unindexed_from)
            .collect::<Result<Vec<_>>>()?;
        Ok((count, states))
    }

    async fn state_resources(
        &self,
        state_id: &str,
        contains: Option<&str>,
        after: Option<&SearchPosition>,
        limit: i64,
    ) -> Result<Vec<ResourceHit>> {
        let (after_address, after_row) = after.map_or(("", 0), |p| (p.value.as_str(), p.row));
        // `LIKE` with an escaped pattern on the lower-cased address reads the same on both
        // engines (PostgreSQL's `LIKE` is case-sensitive, SQLite's only for non-ASCII).
        let pattern = contains.map(|c| format!("%{}%", like_escape(&c.to_lowercase())));
        let rows = Sql::built(format!(
            "SELECT {}, r.address AS pos_value, '' AS pos_attr \
             FROM resource_index r JOIN states s ON s.id = r.state_id \
             JOIN workspaces w ON w.id = s.workspace_id \
             JOIN state_versions v ON v.id = s.current_version_id \
             WHERE r.state_id = $1 AND s.deleted_at IS NULL \
             AND (CAST($2 AS TEXT) IS NULL OR lower(r.address) LIKE $2 ESCAPE '\\') \
             AND (r.address > $3 OR (r.address = $3 AND r.id > $4)) \
             ORDER BY r.address, r.id LIMIT $5",
            query::HIT_COLUMNS
        ))
        .bind(state_id)
        .bind(pattern)
        .bind(after_address)
        .bind(after_row)
        .bind(limit)
        .fetch_all(&mut self.engine.read_lagging().await?)
        .await?;
        rows.iter().map(hit_from).collect()
    }
}

/// `text` with `LIKE`'s wildcards and the escape character escaped (by `\`).
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
