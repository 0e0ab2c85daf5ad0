//! WAL checkpoints run in the store's background task, off the request path: writes alone never
//! checkpoint (`wal_autocheckpoint=0` on the writer), yet the database file catches up and a WAL
//! that grew large is truncated once writing pauses. The store's task ends when it is dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use statehouse_core::clock::Timestamp;
use statehouse_core::crypto::SealedBody;
use statehouse_core::model::{VersionWrite, Workspace, WorkspaceSettings, WriteOutcome};
use statehouse_core::service::new_id;
use statehouse_core::store::prelude::*;
use statehouse_core::store::search::VersionResources;

const WRITES: i64 = 2_000;
const BODY: usize = 2_048;

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Polls `done` every 50 ms for up to 60 s (generous: only the outcome is asserted, not timing).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_checkpointer_copies_and_then_truncates_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("statehouse.sqlite");
    let store = statehouse_store_sqlite::open(&path).await.unwrap();
    let ws = Workspace {
        id: new_id(),
        name: "ws".into(),
        serial_protection: false,
        created_at: Timestamp(1),
        settings: WorkspaceSettings::DEFAULT,
    };
    store.create_workspace(&ws).await.unwrap();
    let state = store.ensure_state(&ws.id, "s", Timestamp(1)).await.unwrap();

    // A reader holding a snapshot from before the writes: no checkpoint can copy past it, so
    // the WAL must grow well beyond the truncation threshold while it is held.
    let mut reader = SqliteConnectOptions::new()
        .filename(&path)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let mut snapshot = reader.begin().await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM states")
        .fetch_one(&mut *snapshot)
        .await
        .unwrap();

    for serial in 1..=WRITES {
        let write = VersionWrite {
            state_id: state.id.clone(),
            version_id: new_id(),
            serial,
            lineage: "lineage".into(),
            md5: format!("{serial:032x}"),
            size: BODY as i64,
            client_version: None,
            client_encrypted: false,
            sealed: SealedBody {
                key_id: "k".into(),
                wrapped_key: vec![1; 60],
                ciphertext: vec![(serial % 251) as u8; BODY],
            },
            lock_id: None,
            token_id: "test".into(),
            author: "test".into(),
            at: Timestamp(serial),
            resources: VersionResources::Indexed(Default::default()),
        };
        let outcome = store.write_version(&ws.id, "s", write).await.unwrap();
        assert!(matches!(outcome, WriteOutcome::Created(_)));
    }
    let written = WRITES as u64 * BODY as u64;
    assert!(
        file_len(&wal_path(&path)) >= written,
        "every write is still in the WAL while the old snapshot is held"
    );
    // Let the checkpointer see the large WAL (it ticks every second) before releasing it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    snapshot.rollback().await.unwrap();
    reader.close().await.unwrap();

    // Nothing in this process but the background task checkpoints while the store is open.
    eventually("the database file holds the written versions", || {
        file_len(&path) >= written
    })
    .await;
    eventually("the WAL is truncated once writing pauses", || {
        file_len(&wal_path(&path)) == 0
    })
    .await;

    // And the data is all there, read back through the store.
    assert_eq!(
        store
            .list_versions(&state.id, None, i64::MAX)
            .await
            .unwrap()
            .len(),
        WRITES as usize
    );
}

#[tokio::test(flavor = "current_thread")]
async fn checkpointer_task_ends_when_the_store_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("statehouse.sqlite");
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let store = statehouse_store_sqlite::open(&path).await.unwrap();
    let with_store = metrics.num_alive_tasks();
    assert!(with_store > before, "the store runs a background task");
    drop(store);
    eventually("the checkpointer task ends", || {
        metrics.num_alive_tasks() < with_store
    })
    .await;
}
