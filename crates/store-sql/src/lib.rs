//! The one SQL store: every store trait of `statehouse-core` implemented once, for both
//! engines. An engine crate (`statehouse-store-sqlite`, `statehouse-store-postgres`) gives an
//! [`Engine`]: connections, transactions, running a statement, reading a row, mapping its
//! errors; and its migrations. Where the dialects really differ (row locks and claims, JSON
//! operators), the code here forks on [`Engine::DIALECT`].
//!
//! The contract every method keeps is [`statehouse_core::store`]'s.

pub mod engine;
pub mod error;
pub mod query;
pub mod rows;

mod accounts;
mod keys;
mod pending;
pub mod search;
mod webhooks;

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
}
