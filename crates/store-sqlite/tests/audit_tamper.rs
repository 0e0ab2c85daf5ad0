//! Tampering with the audit log by SQL on SQLite is detected by verification.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::{AssertSqlSafe, Connection, SqliteConnection};
use statehouse_core::store::Store;
use statehouse_store_conformance::audit::RawSql;
use tempfile::TempDir;

struct TempDb {
    _dir: TempDir,
    path: PathBuf,
}

async fn fresh() -> (Arc<dyn Store>, TempDb) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("statehouse.sqlite");
    let store = statehouse_store_sqlite::open(&path)
        .await
        .expect("open SQLite store");
    (Arc::new(store), TempDb { _dir: dir, path })
}

/// Edits the database file directly, as someone with access to it would.
struct Attacker(PathBuf);

impl RawSql for Attacker {
    async fn execute(&self, sql: &str) {
        let url = format!("sqlite://{}", self.0.display());
        let mut conn = SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        conn.close().await.unwrap();
    }
}

async fn attacker(db: &TempDb) -> Attacker {
    Attacker(db.path.clone())
}

statehouse_store_conformance::audit_tamper_tests!(fresh(), attacker);
