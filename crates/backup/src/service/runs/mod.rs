//! Backup runs: starting them (queued, scheduled, "backup now", retries), executing a claimed
//! run, the events they emit, reading them, their stored objects (download) and verifying them.
//! Deleting runs and retention live in `deletions`, restores in `restores`, whole-server groups
//! in `server_runs`.

mod events;
mod execution;
mod keys;
mod progress;
mod starting;
mod stored_objects;
mod verification;
mod views;

pub(super) use self::keys::server_decryption_for;
pub use self::progress::ProgressFn;
pub use self::views::{BackupView, VerificationView};
