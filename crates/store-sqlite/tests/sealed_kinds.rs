//! Every table that holds wrapped data keys is a sealed kind that master key rotation and the
//! key check cover: a new table with a `wrapped_key` column fails here until it is named in
//! `SealedKind` (and so re-wrapped by `statehouse key rotate`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sqlx::{Connection, SqliteConnection};
use statehouse_core::sealed::SealedKind;

#[tokio::test]
async fn every_table_with_wrapped_keys_is_a_sealed_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("statehouse.db");
    drop(statehouse_store_sqlite::open(&path).await.unwrap());
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mut with_keys: Vec<String> = sqlx::query_scalar(
        "SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) c \
         WHERE m.type = 'table' AND c.name = 'wrapped_key' ORDER BY m.name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    with_keys.sort();
    let mut covered: Vec<String> = SealedKind::ALL
        .iter()
        .map(|k| k.table().to_owned())
        .collect();
    covered.sort();
    assert_eq!(
        with_keys, covered,
        "tables with a wrapped_key column vs. the tables SealedKind names"
    );
    conn.close().await.unwrap();
}
