//! Wrapped data keys and master key check values on SQLite (statements shared with
//! PostgreSQL in `statehouse_core::store::keys_sql`).

use async_trait::async_trait;
use sqlx::AssertSqlSafe;
use statehouse_core::Result;
use statehouse_core::sealed::{KeyCheck, KeyFilter, SealedKind, WrappedKeyRef};
use statehouse_core::store::keys::KeyStore;
use statehouse_core::store::keys_sql as sql;

use crate::SqliteStore;
use crate::backups::err;

#[async_trait]
impl KeyStore for SqliteStore {
    async fn wrapped_keys(
        &self,
        kind: SealedKind,
        filter: KeyFilter<'_>,
        limit: i64,
    ) -> Result<Vec<WrappedKeyRef>> {
        self.read_all(
            AssertSqlSafe(sql::wrapped_keys_sql(kind, filter)),
            sql::wrapped_keys_args(filter, limit),
            sql::wrapped_key_from(kind),
        )
        .await
    }

    async fn replace_wrapped_key(
        &self,
        old: &WrappedKeyRef,
        new_key_id: &str,
        new_wrapped: &[u8],
    ) -> Result<bool> {
        let changed = self
            .write_one(
                AssertSqlSafe(sql::replace_wrapped_key_sql(old.kind)),
                sql::replace_wrapped_key_args(old, new_key_id, new_wrapped),
            )
            .await
            .map_err(err)?;
        Ok(changed == 1)
    }

    async fn key_ids_in_use(&self) -> Result<Vec<String>> {
        self.read_all(
            AssertSqlSafe(sql::key_ids_in_use_sql()),
            Vec::new(),
            sql::key_id_from,
        )
        .await
    }

    async fn key_checks(&self) -> Result<Vec<KeyCheck>> {
        self.read_all(sql::KEY_CHECKS, Vec::new(), sql::key_check_from)
            .await
    }

    async fn record_key_check(&self, check: &KeyCheck) -> Result<bool> {
        let inserted = self
            .write_one(sql::INSERT_KEY_CHECK, sql::insert_key_check_args(check))
            .await
            .map_err(err)?;
        Ok(inserted == 1)
    }
}
