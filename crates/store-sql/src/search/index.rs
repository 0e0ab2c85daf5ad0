//! Keeping a state's index rows in step with its current version, inside the transaction
//! that writes the version (see `statehouse_core::store::search` for the contract).

use statehouse_core::clock::Timestamp;
use statehouse_core::store::search::{
    NewIndexRow, StoredIndexRow, VersionResources, plan_index_update,
};
use statehouse_core::{Error, Result};

use crate::engine::{Conn, Dialect, Row};
use crate::query::{Sql, sql};

/// Row ids per DELETE (bounds the JSON list bound to one statement).
const DELETE_CHUNK: usize = 5_000;

/// Rows per INSERT: one JSON document a statement, bounded in size.
const INSERT_CHUNK: usize = 10_000;

const INSERT_COLUMNS: &str = "INSERT INTO resource_index (state_id, address, mode, type, name, module, provider, \
    index_key, attr_id, attr_arn, attr_name, attr_self_link, fingerprint, appeared_version_no, appeared_at)";

/// Replaces the state's index rows with a new version's resources, in the caller's write
/// transaction (which on PostgreSQL holds the state's row lock).
pub(crate) async fn replace_index<C: Conn>(
    tx: &mut C,
    dialect: Dialect,
    state_id: &str,
    version_no: i64,
    at: Timestamp,
    resources: VersionResources,
) -> Result<()> {
    let entries = match resources {
        VersionResources::NotIndexed(reason) => {
            sql("DELETE FROM resource_index WHERE state_id = $1")
                .bind(state_id)
                .execute(tx)
                .await?;
            sql("UPDATE states SET index_digest = NULL WHERE id = $1")
                .bind(state_id)
                .execute(tx)
                .await?;
            sql(
                "INSERT INTO resource_index_missing (state_id, reason) VALUES ($1, $2) \
                 ON CONFLICT (state_id) DO UPDATE SET reason = excluded.reason",
            )
            .bind(state_id)
            .bind(reason.as_str())
            .execute(tx)
            .await?;
            return Ok(());
        }
        VersionResources::Indexed(entries) => entries,
    };
    // The stored digest is that of the entries the rows were last made from: when it is the
    // new version's, the rows already are what the comparison below would leave (most writes).
    let digest_changed = !sql(
        "UPDATE states SET index_digest = $1 WHERE id = $2 AND index_digest IS DISTINCT FROM $1 \
         RETURNING 1",
    )
    .bind(entries.digest())
    .bind(state_id)
    .fetch_all(tx)
    .await?
    .is_empty();
    if !digest_changed {
        return Ok(());
    }
    sql("DELETE FROM resource_index_missing WHERE state_id = $1")
        .bind(state_id)
        .execute(tx)
        .await?;
    let stored = sql(
        "SELECT id, address, fingerprint, appeared_version_no, appeared_at FROM resource_index WHERE state_id = $1",
    )
    .bind(state_id)
    .fetch_all(tx)
    .await?
    .iter()
    .map(|r| {
        Ok(StoredIndexRow {
            row: r.get("id")?,
            address: r.get("address")?,
            fingerprint: r.get("fingerprint")?,
            appeared_version_no: r.get("appeared_version_no")?,
            appeared_at: r.get("appeared_at")?,
        })
    })
    .collect::<Result<Vec<_>>>()?;
    let changes = plan_index_update(stored, entries, version_no, at);
    // Row ids as a JSON list. PostgreSQL: turned into an array once, so the delete is an index
    // scan of the primary key for `= ANY` (as with a bound array).
    let delete = match dialect {
        Dialect::Sqlite => {
            "DELETE FROM resource_index WHERE id IN (SELECT value FROM json_each($1))"
        }
        Dialect::Postgres => {
            "DELETE FROM resource_index WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::int8))"
        }
    };
    for ids in changes.delete_rows.chunks(DELETE_CHUNK) {
        let ids = serde_json::to_string(ids).map_err(|e| Error::Internal(e.to_string()))?;
        sql(delete).bind(ids).execute(tx).await?;
    }
    for batch in changes.insert.chunks(INSERT_CHUNK) {
        insert_rows(tx, dialect, state_id, batch).await?;
    }
    Ok(())
}

/// The rows as one JSON array of objects, expanded by the database: one statement text and two
/// values whatever the row count. (A multi-row `VALUES` would be a new statement for each
/// count, stop at 65,535 parameters on PostgreSQL, and on SQLite cost time quadratic in its
/// parameters: sqlx asks each one's name, which SQLite finds by a linear search.)
async fn insert_rows<C: Conn>(
    tx: &mut C,
    dialect: Dialect,
    state_id: &str,
    rows: &[NewIndexRow],
) -> Result<()> {
    let records: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let r = &row.resource;
            serde_json::json!({
                "address": r.address,
                "mode": r.mode.as_str(),
                "type": r.resource_type,
                "name": r.name,
                "module": r.module,
                "provider": r.provider,
                "index_key": row.index_key,
                "attr_id": r.ids.id,
                "attr_arn": r.ids.arn,
                "attr_name": r.ids.name,
                "attr_self_link": r.ids.self_link,
                "fingerprint": row.fingerprint,
                "appeared_version_no": row.appeared_version_no,
                "appeared_at": row.appeared_at.0,
            })
        })
        .collect();
    let records = serde_json::Value::Array(records).to_string();
    let select = match dialect {
        Dialect::Sqlite => {
            "SELECT $1, json_extract(r.value, '$.address'), json_extract(r.value, '$.mode'), \
             json_extract(r.value, '$.type'), json_extract(r.value, '$.name'), \
             json_extract(r.value, '$.module'), json_extract(r.value, '$.provider'), \
             json_extract(r.value, '$.index_key'), json_extract(r.value, '$.attr_id'), \
             json_extract(r.value, '$.attr_arn'), json_extract(r.value, '$.attr_name'), \
             json_extract(r.value, '$.attr_self_link'), json_extract(r.value, '$.fingerprint'), \
             json_extract(r.value, '$.appeared_version_no'), json_extract(r.value, '$.appeared_at') \
             FROM jsonb_each($2) AS r ORDER BY r.key"
        }
        Dialect::Postgres => {
            "SELECT $1, r.address, r.mode, r.type, r.name, r.module, r.provider, \
             r.index_key, r.attr_id, r.attr_arn, r.attr_name, r.attr_self_link, r.fingerprint, \
             r.appeared_version_no, r.appeared_at \
             FROM json_to_recordset($2::json) AS r(address text, mode text, type text, name text, \
             module text, provider text, index_key text, attr_id text, attr_arn text, attr_name text, \
             attr_self_link text, fingerprint int8, appeared_version_no int8, appeared_at int8)"
        }
    };
    Sql::built(format!("{INSERT_COLUMNS} {select}"))
        .bind(state_id)
        .bind(records)
        .execute(tx)
        .await?;
    Ok(())
}
