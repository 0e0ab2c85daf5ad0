//! The store conformance suite on SQLite: a fresh database file per test; the peer store opens
//! the same file, as a second statehouse process would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use statehouse_core::store::Store;
use tempfile::TempDir;

/// A database file in a temp dir, removed when the test ends.
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

async fn peer(db: &TempDb) -> Arc<dyn Store> {
    Arc::new(
        statehouse_store_sqlite::open(&db.path)
            .await
            .expect("open a second SQLite store on the same file"),
    )
}

statehouse_store_conformance::conformance_tests!(fresh(), peer);
