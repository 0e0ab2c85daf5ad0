//! A look at the SQLite file a configuration names, for `statehouse doctor`: opened read-only,
//! nothing created or migrated.

use std::path::Path;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};
use statehouse_core::store_probe::StoreProbe;
use statehouse_core::{Error, Result};

use crate::MIGRATOR;

/// Reads what [`StoreProbe`] holds from the file at `path`; a missing file is an error saying
/// so (the doctor never creates one).
pub async fn probe(path: &Path) -> Result<StoreProbe> {
    let place = format!("SQLite file {}", path.display());
    if !path.exists() {
        return Err(Error::NotFound(format!("{place} does not exist")));
    }
    let failed = |e: sqlx::Error| Error::store(format!("{place}: {e}"));
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(failed)?;
    let row = sqlx::query(
        "SELECT sqlite_version(), \
                EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'workspaces'), \
                EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(failed)?;
    let (version, holds_store, has_migrations): (String, bool, bool) =
        (row.get(0), row.get(1), row.get(2));
    let applied: Vec<i64> = if has_migrations {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .map_err(failed)?
    } else {
        Vec::new()
    };
    let _ = conn.close().await;
    // Opening for writing writes nothing; it tells whether this user may.
    let read_only = std::fs::OpenOptions::new().write(true).open(path).is_err();
    Ok(StoreProbe {
        place,
        version: format!("SQLite {version}"),
        holds_store,
        applied,
        known: MIGRATOR.iter().map(|m| m.version).collect(),
        read_only,
        server_now_millis: None,
    })
}
