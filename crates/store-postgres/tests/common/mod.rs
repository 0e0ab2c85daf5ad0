//! Test databases: a fresh schema per test in the server named by `STATEHOUSE_TEST_PG_URL`,
//! dropped when the test ends.

#![allow(dead_code)]

use std::sync::Arc;

use sqlx::{AssertSqlSafe, ConnectOptions};
use statehouse_core::store::Store;
use statehouse_store_postgres::{PgSettings, PgStore, connect_options};

pub const URL_VAR: &str = "STATEHOUSE_TEST_PG_URL";
pub const SKIP_VAR: &str = "STATEHOUSE_SKIP_PG_TESTS";

/// The test server's URL; `None` (skip) only when the run opted out with `STATEHOUSE_SKIP_PG_TESTS=1`.
pub fn test_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var(SKIP_VAR).as_deref() == Ok("1") => {
            eprintln!("{URL_VAR} is not set and {SKIP_VAR}=1: skipping a PostgreSQL test");
            None
        }
        _ => panic!(
            "{URL_VAR} is not set, so the PostgreSQL store cannot be tested. Start a throwaway \
             server with\n    scripts/pg-cluster.sh start /tmp/pg 55432\nthen run\n    \
             {URL_VAR}=postgres://postgres@127.0.0.1:55432/postgres cargo test -p statehouse-store-postgres\n\
             (or set {SKIP_VAR}=1 to skip these tests)"
        ),
    }
}

/// A uniquely named schema, dropped (with everything in it) when this goes out of scope —
/// also when the test panicked.
pub struct TestSchema {
    pub url: String,
    pub name: String,
}

impl TestSchema {
    pub fn new(url: &str) -> Self {
        let id = statehouse_core::service::new_id().replace('-', "");
        TestSchema {
            url: url.to_owned(),
            name: format!("t_{id}"),
        }
    }

    pub fn settings(&self) -> PgSettings {
        PgSettings {
            url: self.url.clone(),
            schema: Some(self.name.clone()),
            ..PgSettings::default()
        }
    }

    pub async fn open(&self) -> PgStore {
        statehouse_store_postgres::connect(&self.settings())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "connecting to the test PostgreSQL (schema {}): {e}",
                    self.name
                )
            })
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let url = self.url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async cleanup on a thread of its own.
        let cleanup = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let options = connect_options(&url).map_err(|e| e.to_string())?;
                let mut conn = options.connect().await.map_err(|e| e.to_string())?;
                sqlx::query(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                )))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
                Ok(())
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test schema {}: {e}", self.name),
            Err(_) => eprintln!("could not drop test schema {}: cleanup panicked", self.name),
        }
    }
}

/// A fresh, migrated store in a schema of its own; `None` when PostgreSQL tests are skipped.
pub async fn fresh() -> Option<(Arc<dyn Store>, TestSchema)> {
    let url = test_url()?;
    let schema = TestSchema::new(&url);
    let store = schema.open().await;
    Some((Arc::new(store), schema))
}

/// A second store (its own pool, as a second statehouse process) on the same schema.
pub async fn peer(schema: &TestSchema) -> Arc<dyn Store> {
    Arc::new(schema.open().await)
}
