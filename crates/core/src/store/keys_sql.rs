//! What both SQL stores share for [`super::keys::KeyStore`]: statements built from
//! [`SealedKind`] (one text for both dialects, `$n` placeholders) and row decoding.

use super::backups_sql::{Arg, Columns};
use crate::clock::Timestamp;
use crate::sealed::{KeyCheck, KeyFilter, SealedKind, WrappedKeyRef};
use crate::{Error, Result};

/// `$1` key id, `$2` limit.
pub fn wrapped_keys_sql(kind: SealedKind, filter: KeyFilter<'_>) -> String {
    let condition = match filter {
        KeyFilter::Under(_) => "key_id = $1",
        KeyFilter::NotUnder(_) => "key_id IS NOT NULL AND key_id <> $1",
    };
    format!(
        "SELECT {owner} AS owner_id, {row} AS row_id, key_id, wrapped_key FROM {table} \
         WHERE {condition} ORDER BY {row} LIMIT $2",
        owner = kind.owner_column(),
        row = kind.row_column(),
        table = kind.table(),
    )
}

pub fn wrapped_keys_args(filter: KeyFilter<'_>, limit: i64) -> Vec<Arg> {
    let (KeyFilter::Under(key_id) | KeyFilter::NotUnder(key_id)) = filter;
    vec![Arg::Text(Some(key_id.to_owned())), Arg::Int(Some(limit))]
}

pub fn wrapped_key_from(kind: SealedKind) -> impl Fn(&dyn Columns) -> Result<WrappedKeyRef> {
    move |row| {
        Ok(WrappedKeyRef {
            kind,
            owner_id: text(row, "owner_id")?,
            row_id: text(row, "row_id")?,
            key_id: text(row, "key_id")?,
            wrapped_key: row
                .opt_bytes("wrapped_key")?
                .ok_or_else(|| null("wrapped_key"))?,
        })
    }
}

/// `$1` new key id, `$2` new wrapped key, `$3` row id, `$4` old key id, `$5` old wrapped key.
pub fn replace_wrapped_key_sql(kind: SealedKind) -> String {
    format!(
        "UPDATE {table} SET key_id = $1, wrapped_key = $2 \
         WHERE {row} = $3 AND key_id = $4 AND wrapped_key = $5",
        table = kind.table(),
        row = kind.row_column(),
    )
}

pub fn replace_wrapped_key_args(
    old: &WrappedKeyRef,
    new_key_id: &str,
    new_wrapped: &[u8],
) -> Vec<Arg> {
    vec![
        Arg::Text(Some(new_key_id.to_owned())),
        Arg::Bytes(Some(new_wrapped.to_vec())),
        Arg::Text(Some(old.row_id.clone())),
        Arg::Text(Some(old.key_id.clone())),
        Arg::Bytes(Some(old.wrapped_key.clone())),
    ]
}

pub fn key_ids_in_use_sql() -> String {
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

pub fn key_id_from(row: &dyn Columns) -> Result<String> {
    text(row, "key_id")
}

pub const KEY_CHECKS: &str =
    "SELECT key_id, check_value, recorded_at FROM master_key_checks ORDER BY key_id";

pub const INSERT_KEY_CHECK: &str = "INSERT INTO master_key_checks (key_id, check_value, recorded_at) \
     VALUES ($1, $2, $3) ON CONFLICT (key_id) DO NOTHING";

pub fn insert_key_check_args(check: &KeyCheck) -> Vec<Arg> {
    vec![
        Arg::Text(Some(check.key_id.clone())),
        Arg::Bytes(Some(check.check_value.clone())),
        Arg::Int(Some(check.recorded_at.millis())),
    ]
}

pub fn key_check_from(row: &dyn Columns) -> Result<KeyCheck> {
    Ok(KeyCheck {
        key_id: text(row, "key_id")?,
        check_value: row
            .opt_bytes("check_value")?
            .ok_or_else(|| null("check_value"))?,
        recorded_at: Timestamp(
            row.opt_int("recorded_at")?
                .ok_or_else(|| null("recorded_at"))?,
        ),
    })
}

fn null(column: &str) -> Error {
    Error::Internal(format!("stored column {column} is unexpectedly NULL"))
}

fn text(row: &dyn Columns, column: &str) -> Result<String> {
    row.opt_text(column)?.ok_or_else(|| null(column))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_each_kind_s_table_and_columns() {
        let sql = wrapped_keys_sql(SealedKind::State, KeyFilter::NotUnder("k"));
        assert!(sql.contains("FROM state_versions"), "{sql}");
        assert!(sql.contains("state_id AS owner_id"), "{sql}");
        let sql = replace_wrapped_key_sql(SealedKind::WorkspaceBackupSettings);
        assert!(sql.contains("WHERE workspace_id = $3"), "{sql}");
        let used = key_ids_in_use_sql();
        for kind in SealedKind::ALL {
            assert!(used.contains(kind.table()), "{used}");
        }
    }
}
