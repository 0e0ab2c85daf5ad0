//! PostgreSQL backups (issue 4): `pg_dump -Fc -Z0` → zstd → age → a storage target, streamed
//! with bounded memory (well under 64 MB per running dump, restore or verification, whatever the
//! database size).
//!
//! Reached through [`service::BackupService`] (REST API and CLI).
//!
//! # What the pieces do
//!
//! - [`dump_to`] / [`run_backup`]: dump one database into a stored object, optionally counting
//!   every table's rows in the dump's own snapshot ([`DumpOptions::count_rows`]).
//! - [`restore_from`]: stored object → age → zstd → `pg_restore`, streamed, or spooled to a
//!   temporary file for parallel jobs; checksum checked, damage always fails.
//! - [`verify_cheap`] (no server: decrypt, checksum, decompress, `pg_restore --list`) and
//!   [`verify_full`] (restore into a scratch database, compare row counts, drop it).
//! - [`create_readonly_role`] / [`check_privileges`]: least privilege for the backup role.
//! - [`discover_databases`] (whole-server mode), [`check_health`], [`server_version`] with
//!   [`pg_tools::find_pg_tool_for_server`].
//! - [`globals`]: a whole server's roles and tablespaces (`pg_dumpall --globals-only`), backed
//!   up beside its databases and restored first; [`exclusions`]: what a database's backups
//!   leave out (pg_dump's `--exclude-…` patterns).
//!
//! # Restoring without statehouse
//!
//! Every object is a plain age file holding a zstd stream holding a pg_dump custom-format
//! archive; its sidecar `<object>.json` records the SHA-256, sizes, recipients and the exact
//! command. With the standard tools only (`age`, `zstd`, `pg_restore` of the server's major
//! version or newer):
//!
//! ```text
//! sha256sum shop-20261118T110640Z-abc.dump.zst.age        # compare with "sha256" in the .json
//! createdb -h db.example -U postgres shop                  # if the database does not exist
//! age -d -i key.txt shop-20261118T110640Z-abc.dump.zst.age \
//!   | zstd -d \
//!   | pg_restore --clean --if-exists --no-owner --exit-on-error -h db.example -U postgres -d shop
//! ```
//!
//! With a passphrase instead of a key, leave out `-i key.txt`: age asks for the passphrase on
//! the terminal. For a parallel restore (`pg_restore -j 4`), decompress into a file first
//! (`age -d … | zstd -d -o shop.dump`) since pg_restore needs a seekable file for it. age
//! authenticates every 64 KiB chunk and the end of the file, so a damaged or truncated object
//! makes `age` fail (and the restore with it) instead of restoring partial data silently.
//!
//! # Who can decrypt: managed key, your own recipients, or a passphrase
//!
//! - **Managed key** (statehouse generates an identity with [`generate_key_pair`] and keeps it,
//!   encrypted at rest): the server can decrypt its backups, so it can restore from the UI/API
//!   and run full verifications automatically. Whoever takes over the server (and its master
//!   key) can read the backups too; export the identity and keep a copy offline, or the backups
//!   die with the server.
//! - **Your own recipients only** (`age1…` public keys whose identities statehouse never sees):
//!   the server cannot read its own backups, so a stolen server or storage bucket leaks nothing.
//!   The price: every restore and every full verification needs the identity supplied at that
//!   moment; automatic verification is limited to what needs no decryption (size, checksum of
//!   the stored bytes). Several recipients are allowed (e.g. two admins, or a managed key plus an
//!   offline escrow key: then the server can decrypt again, with the escrow as a fallback).
//! - **Passphrase** (age scrypt, the only recipient of the object): easy to keep in a password
//!   manager and restorable with `age -d` alone, but only as strong as the passphrase (scrypt
//!   work factor 2^15 to stay within the memory budget): use a long random one. If statehouse
//!   keeps it, the trade-offs of a managed key apply; if not, those of your own recipients.

pub mod connection;
pub mod databases;
mod decode;
pub mod exclusions;
pub mod globals;
pub mod health;
pub mod keys;
pub mod pg_tools;
pub mod pipeline;
pub mod restore;
pub mod retention;
pub mod roles;
pub mod row_counts;
pub mod schedule;
pub mod self_backup;
pub mod service;
pub mod settings;
pub mod targets;
pub mod uptime;
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
pub use targets::{
    BackupMetadata, BackupTarget, BackupUpload, LocalDirTarget, ObjectReader, TargetSpec,
    open_target,
};
pub use verify::{
    RowCountMismatch, VerificationLevel, VerificationReport, VerifyOptions, verify_cheap,
    verify_full,
};

/// The readable object name `<db>/<db>-<UTC time>-<id>.dump.zst.age`; characters other than
/// letters, digits, `_`, `-` and `.` in the database name become `_` (so it stays one path
/// segment on every target).
pub fn object_name(database: &str, started: Timestamp, id: &str) -> String {
    named_object(database, started, id, "dump.zst.age")
}

/// The object of a whole-server run's globals, beside its databases' objects:
/// `<name>-globals/<name>-globals-<UTC time>-<id>.sql.zst.age` (`name`: the registered
/// database's name in statehouse).
pub fn globals_object_name(registered: &str, started: Timestamp, id: &str) -> String {
    named_object(&format!("{registered}-globals"), started, id, "sql.zst.age")
}

fn named_object(database: &str, started: Timestamp, id: &str, extension: &str) -> String {
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
    format!("{db}/{db}-{time}-{id}.{extension}")
}

/// Runs one backup end to end: dumps into a new object `name` of `target`, then commits it with
/// its sidecar metadata. On any failure the partial object is thrown away and the error returned.
/// `expected_size` is a hint of the stored size (the previous backup's, say) that lets multipart
/// targets size their parts for very large databases (see [`targets::upload_plan`]).
pub async fn run_backup(
    options: &DumpOptions,
    server_version: Option<String>,
    target: &dyn BackupTarget,
    name: &str,
    expected_size: Option<u64>,
    clock: &dyn Clock,
) -> Result<BackupMetadata, BackupError> {
    let started = clock.now();
    let mut upload = target.begin(name, expected_size).await?;
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
        row_counts: outcome.row_counts,
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
        assert_eq!(
            globals_object_name("cluster", t, "abc"),
            "cluster-globals/cluster-globals-20261118T110640Z-abc.sql.zst.age"
        );
    }
}
