//! statehouse core: domain types, the `Store` trait, the rules every store applies, encryption
//! at rest, and the services that routes and CLI commands call.

pub mod access;
pub mod accounts;
pub mod audit;
pub mod backups;
pub mod bodies;
pub mod cache;
pub mod clock;
pub mod crypto;
pub mod digest;
mod error;
pub mod events;
pub mod history;
pub mod journal;
pub mod lock_queue;
pub mod metrics;
pub mod model;
pub mod names;
pub mod objects;
pub mod printable;
pub mod pulumi;
pub mod rules;
pub mod s3_keys;
pub mod sealed;
pub mod search;
pub mod service;
pub mod sso;
pub mod statefile;
pub mod store;
pub mod store_probe;
pub mod tfstate;
pub mod webhooks;
pub mod workspaces;

pub use error::{Error, Result, StoreError};
