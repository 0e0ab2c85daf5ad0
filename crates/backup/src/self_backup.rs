//! statehouse protects itself: a built-in schedule backs up its own store through the same
//! zstd → age pipeline — SQLite as a consistent snapshot (`VACUUM INTO`), PostgreSQL as a
//! `pg_dump` of its schema — into a storage target (a directory beside the data by default).
//!
//! The objects are encrypted with a passphrase derived from the master key (HMAC, purpose
//! `self-backup`): a backup plus the master key file is all `statehouse restore-self` needs,
//! and neither alone reveals anything. (The states inside are sealed by the master key anyway.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use age::secrecy::SecretString;
use serde::{Deserialize, Serialize};
use statehouse_core::clock::Clock;
use statehouse_core::crypto::{Cipher, Keyring};

use crate::connection::{LibpqEnv, PgConnection};
use crate::decode::{DecodeError, decode_into};
use crate::keys::{Decryption, Encryption};
use crate::pg_tools::{PgToolSearch, find_pg_tool_for_server};
use crate::pipeline::{BackupError, DEFAULT_ZSTD_LEVEL, Timer, encode, run_pg_dump};
use crate::schedule::{Schedule, ScheduleSpec};
use crate::targets::{BackupMetadata, BackupTarget};

/// Purpose of the passphrase derived from the master key.
pub const PURPOSE: &str = "self-backup";
/// Folder of statehouse's own backups in their target.
pub const FOLDER: &str = "statehouse";
/// Stall and total limits of one self-backup or restore.
const STALL: Duration = Duration::from_secs(300);
const TOTAL: Duration = Duration::from_secs(6 * 3_600);

/// Which store is backed up.
#[derive(Debug, Clone)]
pub enum SelfSource {
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        connection: PgConnection,
        /// The other hosts of a multi-host store URL (PostgreSQL HA), in order: each backup
        /// reads from the first of `connection` and these that is not a standby.
        other_hosts: Vec<PgConnection>,
        /// Only this schema (the store's), when it has its own.
        schema: Option<String>,
    },
}

/// What one self-backup reads.
enum Dump<'a> {
    Sqlite(&'a std::path::Path),
    /// The host to dump and the store's schema.
    Postgres(&'a PgConnection, Option<&'a str>),
}

/// The first of `first` and `others` that is not a standby (in recovery); `first` itself when
/// there are no others.
pub async fn primary_host<'a>(
    first: &'a PgConnection,
    others: &'a [PgConnection],
) -> Result<&'a PgConnection, BackupError> {
    if others.is_empty() {
        return Ok(first);
    }
    let mut seen = Vec::new();
    for host in std::iter::once(first).chain(others) {
        let standby = async {
            let mut session = host.connect().await?;
            let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                .fetch_one(&mut session)
                .await
                .map_err(|e| BackupError::Config(e.to_string()))?;
            Ok::<_, BackupError>(standby)
        };
        match standby.await {
            Ok(false) => return Ok(host),
            Ok(true) => seen.push(format!("{}: a standby", host.describe())),
            Err(e) => seen.push(format!("{}: {e}", host.describe())),
        }
    }
    Err(BackupError::Config(format!(
        "no host of the store's database is a primary ({})",
        seen.join("; ")
    )))
}

/// When and how many self-backups are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfBackupPolicy {
    pub schedule: ScheduleSpec,
    /// Newest self-backups kept; older ones are deleted after each new one.
    pub keep_last: usize,
}

impl Default for SelfBackupPolicy {
    fn default() -> Self {
        SelfBackupPolicy {
            schedule: ScheduleSpec {
                schedule: Schedule::Daily { at: "03:15".into() },
                timezone: "UTC".into(),
            },
            keep_last: 14,
        }
    }
}

fn passphrase(cipher: &Cipher) -> Result<(String, Encryption), BackupError> {
    let (key_id, secret) = cipher
        .derived_secret(PURPOSE)
        .map_err(|e| BackupError::Config(e.to_string()))?;
    Ok((
        key_id,
        Encryption::Passphrase(SecretString::from(secret.to_string())),
    ))
}

/// Backs the store up into `target` now; returns the stored object's metadata. Keeps the
/// newest `keep_last` self-backups of the target and deletes older ones.
pub async fn run_self_backup(
    source: &SelfSource,
    target: &dyn BackupTarget,
    keep_last: usize,
    cipher: &Cipher,
    clock: &dyn Clock,
    tools: &PgToolSearch,
) -> Result<BackupMetadata, BackupError> {
    let started = clock.now();
    let (key_id, encryption) = passphrase(cipher)?;
    let encryption_for_task = encryption.clone();
    let encryptor = tokio::task::spawn_blocking(move || encryption_for_task.encryptor())
        .await
        .map_err(|e| BackupError::Encode(format!("preparing the encryption failed: {e}")))??;
    let stamp = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(started.millis())
        .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|| started.millis().to_string());
    let id = &statehouse_core::service::new_id()[..8];
    let timer = Timer::new(STALL, TOTAL);
    // What is dumped; on PostgreSQL the primary of a multi-host store, found once.
    let dump = match source {
        SelfSource::Sqlite { path } => Dump::Sqlite(path),
        SelfSource::Postgres {
            connection,
            other_hosts,
            schema,
        } => Dump::Postgres(
            primary_host(connection, other_hosts).await?,
            schema.as_deref(),
        ),
    };
    let (name, kind, server_version) = match dump {
        Dump::Sqlite(_) => (
            format!("{FOLDER}/statehouse-{stamp}-{id}.sqlite.zst.age"),
            "sqlite",
            None,
        ),
        Dump::Postgres(connection, _) => {
            let (_, version) = find_pg_tool_for_server("pg_dump", connection, tools).await?;
            (
                format!("{FOLDER}/statehouse-{stamp}-{id}.dump.zst.age"),
                "postgres",
                Some(version.text),
            )
        }
    };
    let mut upload = target.begin(&name, None).await?;
    let written = match dump {
        Dump::Sqlite(path) => {
            let snapshot = sqlite_snapshot(path).await?;
            let file = tokio::fs::File::open(&*snapshot)
                .await
                .map_err(|e| BackupError::LocalFile(format!("reading the snapshot: {e}")))?
                .into_std()
                .await;
            encode(
                file,
                DEFAULT_ZSTD_LEVEL,
                encryptor,
                upload.writer(),
                &timer,
                "the SQLite snapshot",
            )
            .await
        }
        Dump::Postgres(connection, schema) => {
            dump_schema(
                connection,
                schema,
                tools,
                encryptor,
                upload.writer(),
                &timer,
            )
            .await
        }
    };
    let outcome = match written {
        Ok(outcome) => outcome,
        Err(e) => {
            upload.abort().await;
            return Err(e);
        }
    };
    let finished = clock.now();
    let file = name.rsplit('/').next().unwrap_or(&name).to_owned();
    let metadata = BackupMetadata {
        format_version: 1,
        object: name.clone(),
        database: format!("statehouse ({kind} store, master key {key_id})"),
        server_version,
        statehouse_version: env!("CARGO_PKG_VERSION").to_owned(),
        pipeline: match kind {
            "sqlite" => "sqlite VACUUM INTO | zstd | age (passphrase derived from the master key)",
            _ => "pg_dump --format=custom --compress=0 | zstd | age (passphrase derived from the master key)",
        }
        .to_owned(),
        zstd_level: DEFAULT_ZSTD_LEVEL,
        recipients: Vec::new(),
        started_at: started.to_rfc3339(),
        finished_at: finished.to_rfc3339(),
        duration_ms: finished.millis().saturating_sub(started.millis()),
        dump_bytes: outcome.dump_bytes,
        stored_bytes: outcome.stored_bytes,
        sha256: outcome.sha256,
        restore_command: format!("statehouse restore-self --from {file} (needs the master key file)"),
        row_counts: None,
    };
    upload.commit(&metadata).await?;
    prune(target, keep_last).await?;
    Ok(metadata)
}

/// A consistent copy of the SQLite database, taken while it is in use.
async fn sqlite_snapshot(path: &Path) -> Result<tempfile::TempPath, BackupError> {
    use sqlx::Connection;
    let dir = path.parent().unwrap_or(Path::new("."));
    let snapshot = tempfile::Builder::new()
        .prefix(".self-backup-")
        .tempfile_in(dir)
        .map_err(|e| {
            BackupError::LocalFile(format!(
                "creating a snapshot file in {}: {e}",
                dir.display()
            ))
        })?
        .into_temp_path();
    // VACUUM INTO refuses an existing file.
    let _ = std::fs::remove_file(&snapshot);
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| BackupError::Database(format!("opening {}: {e}", path.display())))?;
    sqlx::query("VACUUM INTO ?")
        .bind(snapshot.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await
        .map_err(|e| BackupError::Database(format!("snapshotting {}: {e}", path.display())))?;
    let _ = conn.close().await;
    Ok(snapshot)
}

async fn dump_schema<W: tokio::io::AsyncWrite + Unpin + ?Sized>(
    connection: &PgConnection,
    schema: Option<&str>,
    tools: &PgToolSearch,
    encryptor: age::Encryptor,
    sink: &mut W,
    timer: &Timer,
) -> Result<crate::DumpOutcome, BackupError> {
    let (tool, _) = find_pg_tool_for_server("pg_dump", connection, tools).await?;
    let env = LibpqEnv::new(connection).await?;
    let schema_arg: Vec<String> = schema
        .map(|schema| format!("--schema={schema}"))
        .into_iter()
        .collect();
    run_pg_dump(
        &tool.path,
        &env,
        &schema_arg,
        DEFAULT_ZSTD_LEVEL,
        encryptor,
        sink,
        timer,
    )
    .await
}

/// Deletes all but the newest `keep_last` self-backups (names sort by time).
async fn prune(target: &dyn BackupTarget, keep_last: usize) -> Result<(), BackupError> {
    let mut names: Vec<String> = target
        .list(&format!("{FOLDER}/"))
        .await?
        .into_iter()
        .filter(|n| n.ends_with(".zst.age"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep_last.max(1));
    for name in names.into_iter().take(excess) {
        target.delete(&name).await?;
    }
    Ok(())
}

/// Where `restore-self` puts the store back.
#[derive(Debug, Clone)]
pub enum RestoreDestination {
    /// Writes the SQLite database file (which must not exist yet).
    Sqlite { path: PathBuf },
    /// `pg_restore --clean --if-exists --no-owner` into this database.
    Postgres { connection: PgConnection },
}

/// Decrypts `object` with the passphrase derived from each key of `ring` in turn and puts the
/// store back at `destination`. A damaged object, a foreign key file, or an object of the
/// other kind of store fails with a clear error and leaves nothing half written.
pub async fn restore_self(
    object: &Path,
    ring: &Keyring,
    destination: &RestoreDestination,
    tools: &PgToolSearch,
) -> Result<u64, BackupError> {
    let name = object.display().to_string();
    let is_sqlite = name.ends_with(".sqlite.zst.age");
    match (destination, is_sqlite) {
        (RestoreDestination::Sqlite { .. }, false) => {
            return Err(BackupError::Config(format!(
                "{name} is a backup of a PostgreSQL store; restore it with STATEHOUSE_DATABASE_URL set"
            )));
        }
        (RestoreDestination::Postgres { .. }, true) => {
            return Err(BackupError::Config(format!(
                "{name} is a backup of a SQLite store; restore it without STATEHOUSE_DATABASE_URL"
            )));
        }
        _ => {}
    }
    let mut last_error = None;
    for key in ring.all() {
        let secret = key
            .derived_secret(PURPOSE)
            .map_err(|e| BackupError::Config(e.to_string()))?;
        let decryption = Decryption::Passphrase(SecretString::from(secret.to_string()));
        match restore_with(object, &decryption, destination, tools).await {
            Ok(bytes) => return Ok(bytes),
            // Another key may have made it: try the next one.
            Err(e @ BackupError::Decode(_)) => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error
        .unwrap_or_else(|| BackupError::Config("the master key file holds no key".into())))
}

async fn restore_with(
    object: &Path,
    decryption: &Decryption,
    destination: &RestoreDestination,
    tools: &PgToolSearch,
) -> Result<u64, BackupError> {
    let open = || async {
        tokio::fs::File::open(object)
            .await
            .map_err(|e| BackupError::LocalFile(format!("opening {}: {e}", object.display())))
    };
    match destination {
        RestoreDestination::Sqlite { path } => {
            if path.exists() {
                return Err(BackupError::Config(format!(
                    "{} exists; move it away first (restore-self never overwrites a store)",
                    path.display()
                )));
            }
            let dir = path.parent().unwrap_or(Path::new("."));
            let partial = tempfile::Builder::new()
                .prefix(".restore-self-")
                .tempfile_in(dir)
                .map(|f| f.into_temp_path())
                .map_err(|e| {
                    BackupError::LocalFile(format!("writing into {}: {e}", dir.display()))
                })?;
            let mut out = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| BackupError::LocalFile(e.to_string()))?;
            let timer = Timer::new(STALL, TOTAL);
            let decoded = decode_into(
                &mut open().await?,
                decryption,
                None,
                &mut out,
                false,
                &timer,
                &|_| {},
            )
            .await
            .map_err(|e| match e {
                DecodeError::Backup(e) => e,
                DecodeError::Sink(e) => BackupError::LocalFile(e.to_string()),
            })?;
            out.sync_all()
                .await
                .map_err(|e| BackupError::LocalFile(e.to_string()))?;
            drop(out);
            partial
                .persist(path)
                .map_err(|e| BackupError::LocalFile(format!("placing {}: {e}", path.display())))?;
            Ok(decoded.dump_bytes)
        }
        RestoreDestination::Postgres { connection } => {
            let (tool, _) = find_pg_tool_for_server("pg_restore", connection, tools).await?;
            let mut options =
                crate::RestoreOptions::new(tool.path, connection.clone(), decryption.clone());
            options.single_transaction = true;
            let outcome = crate::restore_from(&options, &mut open().await?, &|_| {}).await?;
            Ok(outcome.dump_bytes)
        }
    }
}

/// The newest self-backup in a local directory (its `statehouse/` folder or the directory
/// itself), for `restore-self --latest`.
pub fn latest_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = [dir.join(FOLDER), dir.to_path_buf()]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("statehouse-") && n.ends_with(".zst.age"))
        })
        .collect();
    found.sort_by_key(|p| p.file_name().map(|n| n.to_os_string()));
    found.pop()
}
