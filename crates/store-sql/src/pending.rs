//! Pending journal rows: written in a change's own transaction, read later for sealing.

use statehouse_core::Result;
use statehouse_core::store::pending::JournalEntries;

use crate::engine::{Conn, Row};
use crate::query::sql;

/// Stores a change's journal entries in its transaction (nothing when there are none).
pub(crate) async fn insert_pending<C: Conn>(tx: &mut C, entries: &JournalEntries) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    sql("INSERT INTO journal_pending (at, entry) VALUES ($1, $2)")
        .bind(entries.at())
        .bind(entries.encode())
        .execute(tx)
        .await?;
    Ok(())
}

/// The oldest pending rows: (id, at, entry). On PostgreSQL, rows committed while this runs
/// may be missed (ids are not handed out in commit order); the next round seals them.
pub(crate) async fn read_pending<C: Conn>(
    conn: &mut C,
    limit: usize,
) -> Result<Vec<(i64, i64, String)>> {
    let rows = sql("SELECT id, at, entry FROM journal_pending ORDER BY id LIMIT $1")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.get("id")?, r.get("at")?, r.get("entry")?)))
        .collect()
}
