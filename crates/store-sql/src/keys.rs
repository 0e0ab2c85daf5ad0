//! Wrapped data keys (by [`SealedKind`], for rotation and the key check) and master key check
//! values. Statements name each kind's table and columns, built from [`SealedKind`]'s constants.

use async_trait::async_trait;

use statehouse_core::Result;
use statehouse_core::sealed::{KeyCheck, KeyFilter, SealedKind, WrappedKeyRef};
use statehouse_core::store::keys::KeyStore;

use crate::SqlStore;
use crate::engine::{Engine, Row};
use crate::query::{Sql, sql};

/// `$1` key id, `$2` limit.
fn wrapped_keys_sql(kind: SealedKind, filter: KeyFilter<'_>) -> Sql<'_> {
    let (condition, key_id) = match filter {
        KeyFilter::Under(key_id) => ("key_id = $1", key_id),
        KeyFilter::NotUnder(key_id) => ("key_id IS NOT NULL AND key_id <> $1", key_id),
    };
    Sql::built(format!(
        "SELECT {owner} AS owner_id, {row} AS row_id, key_id, wrapped_key FROM {table} \
         WHERE {condition} ORDER BY {row} LIMIT $2",
        owner = kind.owner_column(),
        row = kind.row_column(),
        table = kind.table(),
    ))
    .bind(key_id)
}

/// `$1` new key id, `$2` new wrapped key, `$3` row id, `$4` old key id, `$5` old wrapped key.
fn replace_wrapped_key_sql(kind: SealedKind) -> String {
    format!(
        "UPDATE {table} SET key_id = $1, wrapped_key = $2 \
         WHERE {row} = $3 AND key_id = $4 AND wrapped_key = $5",
        table = kind.table(),
        row = kind.row_column(),
    )
}

fn key_ids_in_use_sql() -> String {
    let parts: Vec<String> = SealedKind::ALL
        .iter()
        .map(|kind| {
            format!(
                "SELECT key_id FROM {} WHERE key_id IS NOT NULL",
                kind.table()
            )
        })
        .collect();
    format!(
        "SELECT key_id FROM ({}) AS used ORDER BY key_id",
        parts.join(" UNION ")
    )
}

fn key_check_from(row: &impl Row) -> Result<KeyCheck> {
    Ok(KeyCheck {
        key_id: row.get("key_id")?,
        check_value: row.get("check_value")?,
        recorded_at: row.get("recorded_at")?,
    })
}

#[async_trait]
impl<E: Engine> KeyStore for SqlStore<E> {
    async fn wrapped_keys(
        &self,
        kind: SealedKind,
        filter: KeyFilter<'_>,
        limit: i64,
    ) -> Result<Vec<WrappedKeyRef>> {
        let rows = wrapped_keys_sql(kind, filter)
            .bind(limit)
            .fetch_all(&mut self.engine.read().await?)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(WrappedKeyRef {
                    kind,
                    owner_id: row.get("owner_id")?,
                    row_id: row.get("row_id")?,
                    key_id: row.get("key_id")?,
                    wrapped_key: row.get("wrapped_key")?,
                })
            })
            .collect()
    }

    async fn replace_wrapped_key(
        &self,
        old: &WrappedKeyRef,
        new_key_id: &str,
        new_wrapped: &[u8],
    ) -> Result<bool> {
        let changed = Sql::built(replace_wrapped_key_sql(old.kind))
            .bind(new_key_id)
            .bind(new_wrapped)
            .bind(&old.row_id)
            .bind(&old.key_id)
            .bind(&old.wrapped_key)
            .execute(&mut self.engine.writer().await?)
            .await?;
        Ok(changed == 1)
    }

    async fn key_ids_in_use(&self) -> Result<Vec<String>> {
        let rows = Sql::built(key_ids_in_use_sql())
            .fetch_all(&mut self.engine.read().await?)
            .await?;
        rows.iter().map(|row| row.get("key_id")).collect()
    }

    async fn key_checks(&self) -> Result<Vec<KeyCheck>> {
        let rows =
            sql("SELECT key_id, check_value, recorded_at FROM master_key_checks ORDER BY key_id")
                .fetch_all(&mut self.engine.read().await?)
                .await?;
        rows.iter().map(key_check_from).collect()
    }

    async fn record_key_check(&self, check: &KeyCheck) -> Result<bool> {
        let inserted = sql(
            "INSERT INTO master_key_checks (key_id, check_value, recorded_at) \
             VALUES ($1, $2, $3) ON CONFLICT (key_id) DO NOTHING",
        )
        .bind(&check.key_id)
        .bind(&check.check_value)
        .bind(check.recorded_at)
        .execute(&mut self.engine.writer().await?)
        .await?;
        Ok(inserted == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_each_kind_s_table_and_columns() {
        let q = wrapped_keys_sql(SealedKind::State, KeyFilter::NotUnder("k"));
        assert!(q.text().contains("FROM state_versions"), "{}", q.text());
        assert!(q.text().contains("state_id AS owner_id"), "{}", q.text());
        let q = replace_wrapped_key_sql(SealedKind::WorkspaceBackupSettings);
        assert!(q.contains("WHERE workspace_id = $3"), "{q}");
        let used = key_ids_in_use_sql();
        for kind in SealedKind::ALL {
            assert!(used.contains(kind.table()), "{used}");
        }
    }
}
