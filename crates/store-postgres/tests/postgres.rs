//! What only the PostgreSQL store has: schemas, concurrent migrations, per-connection settings,
//! connection errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use statehouse_core::store::prelude::*;
use std::time::Duration;

use common::{TestSchema, test_url};
use statehouse_core::Error;
use statehouse_core::clock::Timestamp;
use statehouse_core::model::{Workspace, WorkspaceSettings};
use statehouse_core::store::Store;
use statehouse_store_postgres::{PgSettings, PgStore};

fn workspace(id: &str, name: &str) -> Workspace {
    Workspace {
        id: id.into(),
        name: name.into(),
        serial_protection: true,
        created_at: Timestamp(1_700_000_000_000),
        settings: WorkspaceSettings::DEFAULT,
    }
}

async fn tables_in(store: &PgStore, schema: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(store.engine().pool())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemas_keep_instances_apart() {
    let Some(url) = test_url() else { return };
    let (a, b) = (TestSchema::new(&url), TestSchema::new(&url));
    let (store_a, store_b) = (a.open().await, b.open().await);
    store_a
        .create_workspace(&workspace("id-a", "team"))
        .await
        .unwrap();
    assert_eq!(
        store_b.workspace_by_name("team").await.unwrap(),
        None,
        "instance b must not see instance a's data"
    );
    store_b
        .create_workspace(&workspace("id-b", "team"))
        .await
        .expect("the same name is free in another schema");
    assert_eq!(
        store_a
            .workspace_by_name("team")
            .await
            .unwrap()
            .map(|w| w.id),
        Some("id-a".into())
    );
    assert!(store_a.claim_flag("bootstrap", Timestamp(0)).await.unwrap());
    assert!(
        store_b.claim_flag("bootstrap", Timestamp(0)).await.unwrap(),
        "flags are per instance"
    );
    let expected = [
        "_sqlx_migrations",
        "audit_chain",
        "audit_entries",
        "backup_databases",
        "backup_targets",
        "backup_verifications",
        "backups",
        "events",
        "health_checks",
        "instance_flags",
        "job_clock",
        "journal_pending",
        "lock_waiters",
        "login_failures",
        "master_key_checks",
        "memberships",
        "notifiers",
        "resource_index",
        "resource_index_missing",
        "s3_blobs",
        "s3_chunks",
        "s3_objects",
        "s3_upload_parts",
        "s3_uploads",
        "sessions",
        "state_versions",
        "states",
        "tokens",
        "users",
        "webhook_attempts",
        "webhook_deliveries",
        "webhooks",
        "workspace_backup_settings",
        "workspaces",
    ];
    assert_eq!(
        tables_in(&store_a, &a.name).await,
        expected,
        "all tables live in the schema"
    );
    assert_eq!(tables_in(&store_b, &b.name).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_starts_migrate_once() {
    let Some(url) = test_url() else { return };
    let schema = TestSchema::new(&url);
    let settings = schema.settings();
    // Eight processes starting at once on an empty schema: schema creation and migrations race.
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let settings = settings.clone();
            tokio::spawn(async move { statehouse_store_postgres::connect(&settings).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(
            start
                .await
                .unwrap()
                .expect("every concurrent start succeeds"),
        );
    }
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(stores[0].engine().pool())
        .await
        .unwrap();
    let migrations = sqlx::migrate!("./migrations").iter().count() as i64;
    assert_eq!(applied, migrations, "each migration is recorded once");
    stores[3]
        .create_workspace(&workspace("w", "ws"))
        .await
        .unwrap();
    assert!(stores[6].workspace_by_name("ws").await.unwrap().is_some());
    // And a restart on a migrated schema is a no-op.
    schema.open().await.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_get_timeouts_search_path_and_name() {
    let Some(url) = test_url() else { return };
    let schema = TestSchema::new(&url);
    let store = schema.open().await;
    // Several connections at once, so more than the first one is checked.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(store.engine().pool().acquire().await.unwrap());
    }
    for conn in &mut held {
        let row: (String, String, String, String, String) = sqlx::query_as(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), \
             current_setting('idle_in_transaction_session_timeout'), current_setting('search_path'), \
             current_setting('application_name')",
        )
        .fetch_one(&mut **conn)
        .await
        .unwrap();
        assert_eq!(
            row,
            (
                "1min".into(),
                "30s".into(),
                "1min".into(),
                format!("\"{}\"", schema.name).replace('"', ""),
                "statehouse".into()
            )
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn statement_timeout_is_enforced() {
    let Some(url) = test_url() else { return };
    let schema = TestSchema::new(&url);
    let store = statehouse_store_postgres::connect(&PgSettings {
        statement_timeout: Some(Duration::from_millis(200)),
        ..schema.settings()
    })
    .await
    .unwrap();
    let slow = sqlx::query("SELECT pg_sleep(2)")
        .execute(store.engine().pool())
        .await;
    let err = slow.expect_err("a 2 s statement must hit a 200 ms statement_timeout");
    assert!(err.to_string().contains("statement timeout"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_server_error_names_host_port_not_password() {
    // Port 1 on localhost: nothing listens there. No test server needed.
    let settings = PgSettings {
        url: "postgres://alice:topsecret@127.0.0.1:1/statehouse?sslmode=disable".into(),
        acquire_timeout: Duration::from_millis(500),
        ..PgSettings::default()
    };
    let err = statehouse_store_postgres::connect(&settings)
        .await
        .err()
        .expect("nothing listens on port 1");
    let message = err.to_string();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    assert!(
        message.contains("127.0.0.1:1"),
        "names host and port: {message}"
    );
    assert!(
        message.to_lowercase().contains("refused"),
        "says why: {message}"
    );
    assert!(
        !message.contains("topsecret"),
        "never the password: {message}"
    );
}

#[tokio::test]
async fn bad_settings_are_config_errors() {
    let bad_schema = PgSettings {
        url: "postgres://u:topsecret@127.0.0.1:1/db".into(),
        schema: Some("x; DROP TABLE y".into()),
        ..PgSettings::default()
    };
    assert!(matches!(
        statehouse_store_postgres::connect(&bad_schema).await,
        Err(Error::Config(_))
    ));
    let bad_url = PgSettings {
        url: "mysql://u:topsecret@h/db".into(),
        ..PgSettings::default()
    };
    let err = statehouse_store_postgres::connect(&bad_url)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(!err.to_string().contains("topsecret"), "{err}");
    let bad_pool = PgSettings {
        url: "postgres://h/db".into(),
        pool_min: 5,
        pool_max: 2,
        ..PgSettings::default()
    };
    assert!(matches!(
        statehouse_store_postgres::connect(&bad_pool).await,
        Err(Error::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn existing_schema_is_reused_and_names_sort_bytewise() {
    let Some(url) = test_url() else { return };
    let schema = TestSchema::new(&url);
    {
        let first = schema.open().await;
        first.create_workspace(&workspace("w1", "b")).await.unwrap();
        first.engine().close().await;
    }
    let again = schema.open().await;
    again.create_workspace(&workspace("w2", "B")).await.unwrap();
    again
        .create_workspace(&workspace("w3", "a-b"))
        .await
        .unwrap();
    again
        .create_workspace(&workspace("w4", "ab"))
        .await
        .unwrap();
    let names: Vec<String> = again
        .list_workspaces()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(
        names,
        ["B", "a-b", "ab", "b"],
        "data survives a restart; byte order"
    );
}

/// Every table that holds wrapped data keys is a sealed kind that master key rotation and the
/// key check cover: a new table with a `wrapped_key` column fails here until it is named in
/// `SealedKind` (and so re-wrapped by `statehouse key rotate`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_table_with_wrapped_keys_is_a_sealed_kind() {
    let Some(url) = test_url() else { return };
    let schema = TestSchema::new(&url);
    let store = schema.open().await;
    let with_keys: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.columns \
         WHERE table_schema = $1 AND column_name = 'wrapped_key' ORDER BY 1",
    )
    .bind(&schema.name)
    .fetch_all(store.engine().pool())
    .await
    .unwrap();
    let mut covered: Vec<String> = statehouse_core::sealed::SealedKind::ALL
        .iter()
        .map(|k| k.table().to_owned())
        .collect();
    covered.sort();
    assert_eq!(
        with_keys, covered,
        "tables with a wrapped_key column vs. the tables SealedKind names"
    );
}
