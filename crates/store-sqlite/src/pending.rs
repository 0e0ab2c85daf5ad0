//! Pending journal rows on SQLite: written in a change's transaction, read for sealing.

use sqlx::SqliteConnection;
use statehouse_core::Result;
use statehouse_core::store::pending::JournalEntries;

use crate::db_err;

/// Stores a change's journal entries in its transaction (nothing when there are none).
pub(crate) async fn insert_pending(
    tx: &mut SqliteConnection,
    entries: &JournalEntries,
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO journal_pending (at, entry) VALUES (?, ?)")
        .bind(entries.at().millis())
        .bind(entries.encode())
        .execute(tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// The oldest pending rows: (id, at, entry).
pub(crate) async fn read_pending(
    conn: &mut SqliteConnection,
    limit: usize,
) -> Result<Vec<(i64, i64, String)>> {
    sqlx::query_as("SELECT id, at, entry FROM journal_pending ORDER BY id LIMIT ?")
        .bind(limit as i64)
        .fetch_all(conn)
        .await
        .map_err(db_err)
}
