//! The one SQL store: every store trait of `statehouse-core` implemented once, for both
//! engines. An engine crate (`statehouse-store-sqlite`, `statehouse-store-postgres`) gives an
//! [`Engine`]: connections, transactions, running a statement, reading a row, mapping its
//! errors; and its migrations. Where the dialects really differ (row locks and claims, JSON
//! operators), the code here forks on [`Engine::DIALECT`].
//!
//! The contract every method keeps is [`statehouse_core::store`]'s.

pub mod engine;
pub mod error;
pub mod pool;
pub mod query;
pub mod rows;
pub mod sqlx_conn;

mod accounts;
mod audit;
mod backups;
mod keys;
mod lock_queue;
mod locks;
mod metrics;
mod objects;
mod pending;
mod seal;
pub mod search;
mod states;
mod tokens;
mod versions;
mod webhooks;
mod workspaces;

use async_trait::async_trait;

use statehouse_core::Result;
use statehouse_core::clock::Timestamp;
use statehouse_core::store::Store;
use statehouse_core::store::seal::JournalHead;

pub use engine::{Conn, Dialect, Engine, Row, Tx};
pub use error::{DbError, DbErrorKind};
pub use query::{Arg, Sql, ToArg, sql};

/// The store, over one engine.
pub struct SqlStore<E: Engine> {
    engine: E,
    /// The journal's head as this process last wrote it (appends check it in the database).
    journal_head: std::sync::Mutex<Option<JournalHead>>,
}

impl<E: Engine> SqlStore<E> {
    pub fn new(engine: E) -> Self {
        SqlStore {
            engine,
            journal_head: std::sync::Mutex::new(None),
        }
    }

    /// The engine, for what only it can do (closing its pool, its checkpointer).
    pub fn engine(&self) -> &E {
        &self.engine
    }

    fn dialect(&self) -> Dialect {
        E::DIALECT
    }

    /// ` FOR UPDATE` on PostgreSQL, where rows a transaction decides on must be locked;
    /// nothing on SQLite, whose write transaction already excludes every other writer.
    fn for_update(&self) -> &'static str {
        self.dialect().pick("", " FOR UPDATE")
    }

    /// Bytewise text order for an `ORDER BY` term: SQLite's default, `COLLATE "C"` on PostgreSQL.
    fn bytewise(&self) -> &'static str {
        self.dialect().pick("", " COLLATE \"C\"")
    }
}

#[async_trait]
impl<E: Engine> Store for SqlStore<E> {
    fn kind(&self) -> &'static str {
        self.engine.kind()
    }

    async fn ping(&self) -> Result<()> {
        sql("SELECT 1")
            .execute(&mut self.engine.read().await?)
            .await?;
        Ok(())
    }

    async fn claim_flag(&self, name: &str, at: Timestamp) -> Result<bool> {
        let done =
            sql("INSERT INTO instance_flags (name, set_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(name)
                .bind(at)
                .execute(&mut self.engine.writer().await?)
                .await?;
        Ok(done == 1)
    }
}
