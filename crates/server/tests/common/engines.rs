//! The two store engines an in-process test server can run on: a fresh SQLite file, or a fresh
//! schema on the test PostgreSQL (`STATEHOUSE_TEST_PG_URL`), dropped when the server goes.

use std::path::Path;
use std::sync::Arc;

use sqlx::AssertSqlSafe;
use statehouse_core::store::Store;
use statehouse_store_postgres::{PgSettings, PgStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Generates `sqlite::NAME` and `postgres::NAME` tests calling `NAME(Engine)`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::common::engines::Engine::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if $crate::common::engines::skip_postgres() {
                        return;
                    }
                    super::$name($crate::common::engines::Engine::Postgres).await;
                }
            )*
        }
    };
}

const URL_VAR: &str = "STATEHOUSE_TEST_PG_URL";
const SKIP_VAR: &str = "STATEHOUSE_SKIP_PG_TESTS";

/// True (with a note) when PostgreSQL tests are switched off on purpose; a missing URL is a
/// failure otherwise.
pub fn skip_postgres() -> bool {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => false,
        _ if std::env::var(SKIP_VAR).as_deref() == Ok("1") => {
            eprintln!("{URL_VAR} is not set and {SKIP_VAR}=1: skipping a PostgreSQL test");
            true
        }
        _ => panic!(
            "{URL_VAR} is not set: start a throwaway server with `scripts/pg-cluster.sh start /tmp/pg 55432` \
             and set it (or set {SKIP_VAR}=1 to skip PostgreSQL tests)"
        ),
    }
}

/// What keeps a test database alive; a PostgreSQL schema is dropped with it.
pub enum Database {
    Sqlite,
    Postgres(Arc<PgStore>, String),
}

impl Drop for Database {
    fn drop(&mut self) {
        let Database::Postgres(store, schema) = self else {
            return;
        };
        let pool = store.engine().pool().clone();
        let name = schema.clone();
        // Drop runs inside the test's runtime: clean up on a thread and runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                sqlx::query(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                )))
                .execute(&pool)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
            })
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("could not drop test schema {schema}: {e}");
        }
    }
}

impl Engine {
    /// A fresh, migrated store of this engine.
    pub async fn open(self, dir: &Path) -> (Arc<dyn Store>, Database) {
        match self {
            Engine::Sqlite => {
                let store = statehouse_store_sqlite::open(&dir.join("db.sqlite"))
                    .await
                    .unwrap();
                (Arc::new(store), Database::Sqlite)
            }
            Engine::Postgres => {
                let url = std::env::var(URL_VAR).unwrap();
                let schema = format!("t_{}", statehouse_core::service::new_id().replace('-', ""));
                let store = statehouse_store_postgres::connect(&PgSettings {
                    url,
                    schema: Some(schema.clone()),
                    ..PgSettings::default()
                })
                .await
                .unwrap();
                let store = Arc::new(store);
                (store.clone(), Database::Postgres(store, schema))
            }
        }
    }
}
