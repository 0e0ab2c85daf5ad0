//! Pending journal rows on PostgreSQL: written in a change's transaction, read for sealing.

use sqlx::PgConnection;
use statehouse_core::store::pending::JournalEntries;

/// Stores a change's journal entries in its transaction (nothing when there are none).
pub(crate) async fn insert_pending(
    tx: &mut PgConnection,
    entries: &JournalEntries,
) -> sqlx::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO journal_pending (at, entry) VALUES ($1, $2)")
        .bind(entries.at().millis())
        .bind(entries.encode())
        .execute(tx)
        .await?;
    Ok(())
}

/// The oldest pending rows: (id, at, entry). Rows committed while this runs may be missed
/// (ids are not handed out in commit order); they are sealed by the next round.
pub(crate) async fn read_pending(
    conn: &mut PgConnection,
    limit: usize,
) -> sqlx::Result<Vec<(i64, i64, String)>> {
    sqlx::query_as("SELECT id, at, entry FROM journal_pending ORDER BY id LIMIT $1")
        .bind(limit as i64)
        .fetch_all(conn)
        .await
}
