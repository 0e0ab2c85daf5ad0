//! PostgreSQL backups (issue 4): `pg_dump -Fc -Z0` → zstd → age → a storage target, streamed
//! with bounded memory. Restorable with standard tools alone:
//! `age -d -i key.txt <object> | zstd -d | pg_restore -d <database>`.
//!
//! Internal for now: not yet reachable from the CLI or the API.

pub mod connection;
pub mod databases;
mod decode;
pub mod health;
pub mod keys;
pub mod pg_tools;
pub mod pipeline;
pub mod restore;
pub mod roles;
pub mod row_counts;
pub mod target;
pub mod verify;

use statehouse_core::clock::{Clock, Timestamp};

pub use connection::{DEFAULT_CONNECT_TIMEOUT, PgConnection, ServerVersion, server_version};
pub use databases::discover_databases;
pub use health::check_health;
pub use keys::{Decryption, Encryption, generate_key_pair};
pub use pipeline::{
    BackupError, DEFAULT_ZSTD_LEVEL, DumpOptions, DumpOutcome, ZSTD_LEVELS, dump_to,
};
pub use restore::{RestoreOptions, RestoreOutcome, create_database_if_missing, restore_from};
pub use roles::{PrivilegeWarning, check_privileges, create_readonly_role};
pub use row_counts::RowCounts;
pub use target::{BackupMetadata, BackupTarget, BackupUpload, LocalDirTarget};
pub use verify::{
    RowCountMismatch, VerificationLevel, VerificationReport, VerifyOptions, verify_cheap,
    verify_full,
};

/// The readable object name `<db>/<db>-<UTC time>-<id>.dump.zst.age`; characters other than
/// letters, digits, `_`, `-` and `.` in the database name become `_` (so it stays one path
/// segment on every target).
pub fn object_name(database: &str, started: Timestamp, id: &str) -> String {
    let mut db: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if db.is_empty() || db.starts_with('.') {
        db.insert(0, '_');
    }
    let time = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(started.millis())
        .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|| started.millis().to_string());
    format!("{db}/{db}-{time}-{id}.dump.zst.age")
}

/// Runs one backup end to end: dumps into a new object `name` of `target`, then commits it with
/// its sidecar metadata. On any failure the partial object is thrown away and the error returned.
pub async fn run_backup(
    options: &DumpOptions,
    server_version: Option<String>,
    target: &dyn BackupTarget,
    name: &str,
    clock: &dyn Clock,
) -> Result<BackupMetadata, BackupError> {
    let started = clock.now();
    let mut upload = target.begin(name).await?;
    let outcome = match dump_to(options, upload.writer()).await {
        Ok(outcome) => outcome,
        Err(e) => {
            upload.abort().await;
            return Err(e);
        }
    };
    let finished = clock.now();
    let file = name.rsplit('/').next().unwrap_or(name);
    let metadata = BackupMetadata {
        format_version: 1,
        object: name.to_owned(),
        database: options.connection.database.clone(),
        server_version,
        statehouse_version: env!("CARGO_PKG_VERSION").to_owned(),
        pipeline: "pg_dump --format=custom --compress=0 | zstd | age".to_owned(),
        zstd_level: options.zstd_level,
        recipients: options.encryption.recipients_text(),
        started_at: started.to_rfc3339(),
        finished_at: finished.to_rfc3339(),
        duration_ms: finished.millis().saturating_sub(started.millis()),
        dump_bytes: outcome.dump_bytes,
        stored_bytes: outcome.stored_bytes,
        sha256: outcome.sha256,
        restore_command: match options.encryption {
            // age asks for the passphrase on the terminal.
            Encryption::Passphrase(_) => {
                format!("age -d {file} | zstd -d | pg_restore --no-owner -d <database>")
            }
            Encryption::Recipients(_) => {
                format!("age -d -i key.txt {file} | zstd -d | pg_restore --no-owner -d <database>")
            }
        },
    };
    upload.commit(&metadata).await?;
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn object_names_are_readable_and_stay_one_segment() {
        let t = Timestamp(1_795_000_000_000);
        assert_eq!(
            object_name("shop", t, "abc"),
            "shop/shop-20261118T110640Z-abc.dump.zst.age"
        );
        assert_eq!(
            object_name("../a b", t, "x"),
            "_.._a_b/_.._a_b-20261118T110640Z-x.dump.zst.age"
        );
        assert!(object_name("", t, "x").starts_with("_/_-"));
    }
}
