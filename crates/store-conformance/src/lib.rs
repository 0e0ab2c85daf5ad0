//! The one conformance suite every [`Store`] implementation must pass.
//!
//! Each case is a plain `pub async fn case(store: Arc<dyn Store>)` that panics with a clear
//! message when the store breaks the contract. A store crate runs all of them with one line in
//! an integration test:
//!
//! ```ignore
//! // `fresh()` is an async fn returning a fresh, empty, migrated store, optionally paired with a
//! // handle on its database that lives until the test ends: `Arc<dyn Store>`,
//! // `(Arc<dyn Store>, Db)`, or `Option<…>` of either (`None` skips the test).
//! // `peer(&Db)` opens a second store on the same database, as a second statehouse process would.
//! statehouse_store_conformance::conformance_tests!(fresh(), peer);
//! ```
//!
//! which expands to one `#[tokio::test]` per case in a module named `conformance`
//! (`conformance::lock_is_idempotent_for_same_id`, …). Without a peer constructor the
//! `two_stores_*` cases are left out.
//!
//! Cases are registered by their signature, not by a list: `build.rs` finds every top-level
//! `pub async fn` in the files directly in `src/` (not in subfolders) taking `(Arc<dyn Store>)`,
//! `(Arc<dyn Store>, Arc<dyn Store>)` or `(Arc<dyn Store>, impl RawSql)`, so a new case runs on
//! every engine as soon as it is written. Helpers that are not cases are `pub(crate)` or private
//! and take `&dyn Store` or other parameters. Each file holds one concept's cases; this file
//! re-exports them (the generated tests call each case at the crate root, `$crate::case`) and
//! holds only the harness.
//!
//! Timestamps are fixed values (time is injected); sealed bodies are arbitrary bytes, since
//! stores never decrypt.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
pub mod audit;
mod audit_tamper;
mod backup_config;
mod backup_fixtures;
mod backup_health;
mod backup_jobs;
mod backup_runs;
mod concurrency;
mod deletion;
mod fixtures;
mod history;
mod journaled;
mod keys;
mod lock_ownership;
mod lock_queue;
mod locks;
mod metrics;
mod objects;
mod s3_keys;
mod search;
mod search_fields;
mod states;
mod tokens;
mod webhooks;
mod workspaces;
pub use accounts::*;
pub use audit::*;
pub use audit_tamper::*;
pub use backup_config::*;
pub use backup_health::*;
pub use backup_jobs::*;
pub use backup_runs::*;
pub use concurrency::*;
pub use deletion::*;
pub use fixtures::*;
pub use history::*;
pub use journaled::*;
pub use keys::*;
pub use lock_ownership::*;
pub use lock_queue::*;
pub use locks::*;
pub use metrics::*;
pub use objects::*;
pub use s3_keys::*;
pub use search::*;
pub use search_fields::*;
pub use states::*;
pub use tokens::*;
pub use webhooks::*;
pub use workspaces::*;

use std::sync::Arc;

use statehouse_core::store::Store;

// ---- harness ---------------------------------------------------------------------------------

/// What a store constructor may return: the store, optionally with a handle on its database
/// (kept alive until the test ends, then dropped; e.g. a temp dir or a schema guard), or
/// `None` to skip the test.
pub trait Fresh {
    type Db;
    fn into_parts(self) -> Option<(Arc<dyn Store>, Self::Db)>;
}

impl Fresh for Arc<dyn Store> {
    type Db = ();
    fn into_parts(self) -> Option<(Arc<dyn Store>, ())> {
        Some((self, ()))
    }
}

impl<D> Fresh for (Arc<dyn Store>, D) {
    type Db = D;
    fn into_parts(self) -> Option<(Arc<dyn Store>, D)> {
        Some(self)
    }
}

impl<T: Fresh> Fresh for Option<T> {
    type Db = T::Db;
    fn into_parts(self) -> Option<(Arc<dyn Store>, T::Db)> {
        self.and_then(Fresh::into_parts)
    }
}

/// Expands to one `#[tokio::test]` per conformance case, in a module named `conformance`.
///
/// - `$make`: an async expression (evaluated anew for every test) giving a fresh, empty,
///   migrated store; see [`Fresh`] for the accepted result types.
/// - `$make_peer` (optional): a callable taking `&Db` (the handle `$make` returned) and giving
///   a future of another `Arc<dyn Store>` opened on the same database — a second statehouse
///   process. With it, the `two_stores_*` cases run too.
///
/// The calling crate needs `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr $(,)?) => {
        $crate::__conformance_module!($make;);
    };
    ($make:expr, $make_peer:expr $(,)?) => {
        $crate::__conformance_module!($make; $make_peer);
    };
}

// `__conformance_module!` and `__audit_tamper_module!`, listing every case found in `src/`
// (see build.rs).
include!(concat!(env!("OUT_DIR"), "/cases.rs"));

#[doc(hidden)]
#[macro_export]
macro_rules! __single_store_cases {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some((store, db)) = $crate::Fresh::into_parts($make.await) else {
                    return;
                };
                $crate::$case(store).await;
                drop(db);
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __two_store_cases {
    ($make:expr, $make_peer:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some((store, db)) = $crate::Fresh::into_parts($make.await) else {
                    return;
                };
                let peer = ($make_peer)(&db).await;
                $crate::$case(store, peer).await;
                drop(db);
            }
        )*
    };
}
