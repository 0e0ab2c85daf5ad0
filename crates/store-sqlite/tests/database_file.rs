//! A new database file and its `-wal` / `-shm` files are readable by their owner only, whatever
//! the umask: they hold every state (sealed) and every token hash.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use statehouse_core::store::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use statehouse_core::clock::Timestamp;
use statehouse_core::model::{Workspace, WorkspaceSettings};
use statehouse_store_sqlite::SqliteStore;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

async fn write_something(store: &SqliteStore) {
    store
        .create_workspace(&Workspace {
            id: "w1".into(),
            name: "default".into(),
            serial_protection: true,
            created_at: Timestamp(1),
            settings: WorkspaceSettings::DEFAULT,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn new_database_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("statehouse.db");
    let store = statehouse_store_sqlite::open(&path).await.unwrap();
    write_something(&store).await;
    for file in ["statehouse.db", "statehouse.db-wal", "statehouse.db-shm"] {
        assert_eq!(mode(&dir.path().join(file)), 0o600, "{file}");
    }

    // The same through a `sqlite:` URL.
    let path = dir.path().join("other.db");
    let store = statehouse_store_sqlite::open_url(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    write_something(&store).await;
    for file in ["other.db", "other.db-wal", "other.db-shm"] {
        assert_eq!(mode(&dir.path().join(file)), 0o600, "{file}");
    }
}
