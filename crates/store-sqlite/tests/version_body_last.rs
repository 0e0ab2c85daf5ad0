//! `state_versions.body` is the last column of its rows (a large body spills onto overflow
//! pages, which SQLite walks to reach any column after it), and migration 0011, which restores
//! that order on stores migrated through 0004/0005, keeps every version as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;

use sqlx::{Connection, SqliteConnection};
use statehouse_core::store::prelude::*;

async fn columns(conn: &mut SqliteConnection) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM pragma_table_info('state_versions') ORDER BY cid")
        .fetch_all(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn versions_written_before_the_reorder_keep_every_field_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("statehouse.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    // The schema as it was before migration 0011.
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = Cow::Owned(
        before
            .migrations
            .iter()
            .filter(|m| m.version < 11)
            .cloned()
            .collect(),
    );
    before.run(&mut conn).await.unwrap();
    assert_eq!(
        columns(&mut conn).await.last().map(String::as_str),
        Some("kept"),
        "before 0011 the body sat in the middle of the row"
    );
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for statement in [
        "INSERT INTO workspaces (id, name, created_at) VALUES ('ws-1', 'old', 1)",
        "INSERT INTO states (id, workspace_id, name, created_at, updated_at, current_version_id) \
         VALUES ('st-1', 'ws-1', 'net', 1, 2, 'v-2')",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    for (id, no, kept, count) in [("v-1", 1, 1, Some(3)), ("v-2", 2, 0, None)] {
        sqlx::query(
            "INSERT INTO state_versions (id, state_id, version_no, serial, lineage, md5, size, \
             created_at, created_by, client_version, forced, client_encrypted, key_id, wrapped_key, \
             body, resource_count, kept) \
             VALUES (?, 'st-1', ?, ?, 'lin', 'md5', 200000, ?, 'ci', '1.0.3', 1, 0, 'k1', x'0102', ?, ?, ?)",
        )
        .bind(id)
        .bind(no)
        .bind(no * 10)
        .bind(no * 100)
        .bind(&body)
        .bind(count)
        .bind(kept)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    conn.close().await.unwrap();

    let store = statehouse_store_sqlite::open(&path).await.unwrap();
    for (no, kept, count) in [(1, true, Some(3)), (2, false, None)] {
        let (meta, sealed) = store.version_body("st-1", no).await.unwrap().unwrap();
        assert_eq!(
            (
                meta.serial,
                meta.created_at.0,
                meta.forced,
                meta.kept,
                meta.resource_count
            ),
            (no * 10, no * 100, true, kept, count),
            "version {no}"
        );
        assert_eq!(sealed.ciphertext, body, "version {no}'s body");
        assert_eq!(
            (sealed.key_id.as_str(), sealed.wrapped_key.as_slice()),
            ("k1", &[1u8, 2][..])
        );
    }
    let record = store.state("ws-1", "net").await.unwrap().unwrap();
    assert_eq!(record.current.map(|v| v.version_no), Some(2));
    drop(store);

    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    assert_eq!(
        columns(&mut conn).await.last().map(String::as_str),
        Some("body")
    );
    conn.close().await.unwrap();
}
