//! Restoring a stored object: age → zstd → `pg_restore` into a database, from any `AsyncRead`
//! (the storage target's object), with the stored bytes hashed and checked on the way.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use sqlx::Connection;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::connection::{LibpqEnv, PgConnection, conninfo_value, query_error, quote_ident};
use crate::decode::{DecodeError, Decoded, decode_into};
use crate::keys::Decryption;
use crate::pipeline::{BackupError, Timer, clean_stderr, read_tail};

/// The database restored into when a connection names none of its own: every server has it.
pub const MAINTENANCE_DATABASE: &str = "postgres";

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The `pg_restore` binary (see [`crate::pg_tools::find_pg_tool`]).
    pub pg_restore: PathBuf,
    /// The database restored into.
    pub connection: PgConnection,
    pub decryption: Decryption,
    /// `--clean --if-exists`: drop the dump's objects before recreating them.
    pub clean: bool,
    /// `--no-owner`: objects belong to the restoring user instead of the dump's owners (who may
    /// not exist on this server).
    pub no_owner: bool,
    /// `--no-privileges`: skip the dump's GRANTs (their roles may not exist on this server).
    pub no_privileges: bool,
    /// `--exit-on-error`: stop at the first failing statement instead of carrying on.
    pub exit_on_error: bool,
    /// `--single-transaction`: all or nothing (not with `jobs > 1`).
    pub single_transaction: bool,
    /// Create the database first when it does not exist (through the `postgres` database).
    pub create_if_missing: bool,
    /// `pg_restore --create`: the archive's own `CREATE DATABASE` (with its owner, grants
    /// and settings) makes the database, connecting to the `postgres` database first; for a
    /// database that does not exist yet (not with `clean` or `create_if_missing`).
    pub create_from_archive: bool,
    /// `pg_restore --jobs`. Above 1 the archive is first decoded into a temporary file (parallel
    /// restore needs a seekable file): it needs that much free disk, no memory.
    pub jobs: u32,
    /// Where that temporary file goes; the system's temporary directory when `None`.
    pub spool_dir: Option<PathBuf>,
    /// The object's recorded SHA-256 (lowercase hex); a different object fails the restore.
    pub expected_sha256: Option<String>,
    /// Reading the object or feeding pg_restore moving no bytes for this long fails the restore.
    pub stall_timeout: Duration,
    /// The whole restore taking longer than this fails it.
    pub total_timeout: Duration,
}

impl RestoreOptions {
    /// The defaults: `--clean --if-exists --no-owner --exit-on-error`, streamed (one job), no
    /// database creation, 5 minutes without progress or 24 hours in total fail the restore.
    pub fn new(
        pg_restore: PathBuf,
        connection: PgConnection,
        decryption: Decryption,
    ) -> RestoreOptions {
        RestoreOptions {
            pg_restore,
            connection,
            decryption,
            clean: true,
            no_owner: true,
            no_privileges: false,
            exit_on_error: true,
            single_transaction: false,
            create_if_missing: false,
            create_from_archive: false,
            jobs: 1,
            spool_dir: None,
            expected_sha256: None,
            stall_timeout: Duration::from_secs(5 * 60),
            total_timeout: Duration::from_secs(24 * 60 * 60),
        }
    }

    /// pg_restore's options, without input or database.
    fn tool_args(&self) -> Vec<String> {
        let mut args = vec!["--no-password".to_owned()];
        if self.clean {
            args.extend(["--clean".to_owned(), "--if-exists".to_owned()]);
        }
        if self.no_owner {
            args.push("--no-owner".to_owned());
        }
        if self.no_privileges {
            args.push("--no-privileges".to_owned());
        }
        if self.exit_on_error {
            args.push("--exit-on-error".to_owned());
        }
        if self.single_transaction {
            args.push("--single-transaction".to_owned());
        }
        if self.jobs > 1 {
            args.push(format!("--jobs={}", self.jobs));
        }
        // pg_restore connects here first; with --create it then creates the archive's database
        // and switches to it.
        let connect_to = if self.create_from_archive {
            args.push("--create".to_owned());
            MAINTENANCE_DATABASE
        } else {
            &self.connection.database
        };
        // A connection string naming only the database (quoted, so no database name can turn
        // into connection options); host, user and the rest come from the environment.
        args.push(format!("--dbname=dbname={}", conninfo_value(connect_to)));
        args
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOutcome {
    /// Bytes of the stored object read.
    pub stored_bytes: u64,
    /// Lowercase hex SHA-256 of the stored object.
    pub sha256: String,
    /// Size of the pg_dump archive restored.
    pub dump_bytes: u64,
    /// The database did not exist and was created.
    pub created_database: bool,
}

/// Restores `object` (a stored backup) into `options.connection`. `progress` is called with the
/// number of stored bytes read so far. Any failure (wrong key, damaged or truncated object,
/// checksum mismatch, pg_restore error, timeout) returns `Err`, with pg_restore's own message
/// when it was pg_restore that failed; pg_restore is stopped on every failure.
pub async fn restore_from<R: AsyncRead + Unpin + ?Sized>(
    options: &RestoreOptions,
    object: &mut R,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<RestoreOutcome, BackupError> {
    if options.jobs == 0 {
        return Err(BackupError::Config(
            "a restore needs at least 1 job".to_owned(),
        ));
    }
    if options.single_transaction && options.jobs > 1 {
        return Err(BackupError::Config(
            "pg_restore cannot restore in a single transaction with several jobs; set jobs to 1 \
             or turn single_transaction off"
                .to_owned(),
        ));
    }
    if options.create_from_archive && (options.clean || options.create_if_missing) {
        return Err(BackupError::Config(
            "creating the database from the archive restores into a new database: clean and \
             create_if_missing do not apply"
                .to_owned(),
        ));
    }
    let timer = Timer::new(options.stall_timeout, options.total_timeout);
    let created_database = if options.create_if_missing {
        timer
            .run_total(create_database_if_missing(&options.connection))
            .await??
    } else {
        false
    };
    let decoded = if options.jobs > 1 {
        restore_spooled(options, object, &timer, progress).await?
    } else {
        restore_streamed(options, object, &timer, progress).await?
    };
    Ok(RestoreOutcome {
        stored_bytes: decoded.stored_bytes,
        sha256: decoded.sha256,
        dump_bytes: decoded.dump_bytes,
        created_database: created_database || options.create_from_archive,
    })
}

/// One job: the archive streams through pg_restore's stdin. pg_restore only gets the end of
/// the archive once the whole object is authenticated and its checksum matches; on any failure
/// it is killed first (with `single_transaction`, nothing of it stays).
async fn restore_streamed<R: AsyncRead + Unpin + ?Sized>(
    options: &RestoreOptions,
    object: &mut R,
    timer: &Timer,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Decoded, BackupError> {
    let env = LibpqEnv::new(&options.connection).await?;
    let mut child = spawn_pg_restore(options, &env, None, Stdio::piped())?;
    let stderr_task = child.stderr.take().map(|s| tokio::spawn(read_tail(s)));
    let Some(mut stdin) = child.stdin.take() else {
        let _ = child.kill().await;
        return Err(BackupError::Decode(
            "pg_restore's input was not captured".to_owned(),
        ));
    };
    let decoded = decode_into(
        object,
        &options.decryption,
        options.expected_sha256.as_deref(),
        &mut stdin,
        false,
        timer,
        progress,
    )
    .await;
    match decoded {
        Ok(decoded) => {
            let _ = stdin.shutdown().await;
            drop(stdin);
            finish_tool(&mut child, stderr_task, timer).await?;
            Ok(decoded)
        }
        // pg_restore stopped reading: its exit status and message say why.
        Err(DecodeError::Sink(e)) => {
            drop(stdin);
            finish_tool(&mut child, stderr_task, timer).await?;
            Err(BackupError::PgRestore {
                status: "stopped reading its input".to_owned(),
                stderr: e.to_string(),
            })
        }
        Err(DecodeError::Backup(e)) => {
            // Killed before it sees the end of its input, so it never finishes "successfully".
            let _ = child.kill().await;
            Err(e)
        }
    }
}

/// Several jobs: the archive is decoded into a temporary file (mode 0600, deleted afterwards),
/// checked, then restored from it.
async fn restore_spooled<R: AsyncRead + Unpin + ?Sized>(
    options: &RestoreOptions,
    object: &mut R,
    timer: &Timer,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Decoded, BackupError> {
    let dir = options.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    let spool = tempfile::Builder::new()
        .prefix("statehouse-restore-")
        .suffix(".dump")
        .tempfile_in(&dir)
        .map_err(|e| {
            BackupError::LocalFile(format!(
                "cannot create the restore's temporary file in {}: {e}",
                dir.display()
            ))
        })?;
    let file = spool.reopen().map_err(|e| {
        BackupError::LocalFile(format!(
            "cannot open the restore's temporary file {}: {e}",
            spool.path().display()
        ))
    })?;
    let mut file = tokio::fs::File::from_std(file);
    let decoded = decode_into(
        object,
        &options.decryption,
        options.expected_sha256.as_deref(),
        &mut file,
        false,
        timer,
        progress,
    )
    .await
    .map_err(|e| match e {
        DecodeError::Backup(e) => e,
        DecodeError::Sink(e) => BackupError::LocalFile(format!(
            "writing the restore's temporary file {} failed: {e} (is there enough free disk \
             space in {}? the whole uncompressed dump goes there)",
            spool.path().display(),
            dir.display()
        )),
    })?;
    drop(file);
    let env = LibpqEnv::new(&options.connection).await?;
    let mut child = spawn_pg_restore(options, &env, Some(spool.path()), Stdio::null())?;
    let stderr_task = child.stderr.take().map(|s| tokio::spawn(read_tail(s)));
    finish_tool(&mut child, stderr_task, timer).await?;
    drop(spool);
    Ok(decoded)
}

fn spawn_pg_restore(
    options: &RestoreOptions,
    env: &LibpqEnv,
    file: Option<&std::path::Path>,
    stdin: Stdio,
) -> Result<Child, BackupError> {
    let mut command = Command::new(&options.pg_restore);
    command.args(options.tool_args());
    if let Some(file) = file {
        command.arg(file);
    }
    env.apply(&mut command);
    command
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command.spawn().map_err(|source| BackupError::Spawn {
        path: options.pg_restore.display().to_string(),
        source,
    })
}

/// Waits for pg_restore (only the total deadline: it may work silently for long, building
/// indexes); a failure carries its stderr.
async fn finish_tool(
    child: &mut Child,
    stderr_task: Option<tokio::task::JoinHandle<String>>,
    timer: &Timer,
) -> Result<(), BackupError> {
    let status = match timer.run_total(child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            let _ = child.kill().await;
            return Err(BackupError::PgRestore {
                status: "unknown".to_owned(),
                stderr: format!("waiting for pg_restore failed: {e}"),
            });
        }
        Err(e) => {
            let _ = child.kill().await;
            return Err(e);
        }
    };
    if status.success() {
        return Ok(());
    }
    let stderr = match stderr_task {
        Some(task) => task.await.unwrap_or_default(),
        None => String::new(),
    };
    Err(BackupError::PgRestore {
        status: status.to_string(),
        stderr: clean_stderr("pg_restore", &stderr),
    })
}

/// What a restore into a database would replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseContents {
    /// It does not exist (a restore creates it).
    Missing,
    /// It exists with nothing of its own (a new, empty database).
    Empty,
    /// It holds objects; in words: `12 tables, views or sequences, 1 schema`.
    Objects(String),
}

/// Objects of a database's own (outside the system schemas; `public` itself and the
/// `plpgsql` extension every new database has do not count).
const OWN_OBJECTS: &str = "
    SELECT
      (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'),
      (SELECT count(*) FROM pg_namespace
        WHERE nspname !~ '^pg_' AND nspname NOT IN ('information_schema', 'public')),
      (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'),
      (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE t.typtype IN ('e', 'd', 'r', 'm')
          AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'),
      (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql')";

/// Whether `connection.database` exists, and what it holds: a restore over a database with
/// objects replaces them and must be confirmed.
pub async fn database_contents(connection: &PgConnection) -> Result<DatabaseContents, BackupError> {
    // Asked through the maintenance database, so a missing database is not an error; when that
    // one cannot be reached, the database itself answers.
    let maintenance = connection.with_database(MAINTENANCE_DATABASE);
    if let Ok(mut session) = maintenance.connect().await {
        let exists: Result<(bool,), _> =
            sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&connection.database)
                .fetch_one(&mut session)
                .await;
        let _ = session.close().await;
        let (exists,) =
            exists.map_err(|e| query_error(&maintenance, "looking up the database", &e))?;
        if !exists {
            return Ok(DatabaseContents::Missing);
        }
    }
    let mut session = connection.connect().await?;
    let counted: Result<(i64, i64, i64, i64, i64), _> =
        sqlx::query_as(OWN_OBJECTS).fetch_one(&mut session).await;
    let _ = session.close().await;
    let (relations, schemas, functions, types, extensions) =
        counted.map_err(|e| query_error(connection, "looking at the database's objects", &e))?;
    let parts: Vec<String> = [
        (
            relations,
            "table, view or sequence",
            "tables, views or sequences",
        ),
        (schemas, "schema", "schemas"),
        (functions, "function", "functions"),
        (types, "type", "types"),
        (extensions, "extension", "extensions"),
    ]
    .into_iter()
    .filter(|(n, _, _)| *n > 0)
    .map(|(n, one, many)| format!("{n} {}", if n == 1 { one } else { many }))
    .collect();
    Ok(if parts.is_empty() {
        DatabaseContents::Empty
    } else {
        DatabaseContents::Objects(parts.join(", "))
    })
}

/// Creates `connection.database` unless it exists, connecting to the `postgres` database of the
/// same server as the same user. Returns whether it created it.
pub async fn create_database_if_missing(connection: &PgConnection) -> Result<bool, BackupError> {
    let maintenance = connection.with_database(MAINTENANCE_DATABASE);
    let mut session = maintenance.connect().await.map_err(|e| {
        BackupError::Database(format!(
            "{e} (creating a missing database needs a connection to the {MAINTENANCE_DATABASE:?} \
             database)"
        ))
    })?;
    let name = &connection.database;
    let result = async {
        let (exists,): (bool,) =
            sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(&mut session)
                .await
                .map_err(|e| query_error(&maintenance, "looking up the database", &e))?;
        if exists {
            return Ok(false);
        }
        match sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {}",
            quote_ident(name)
        )))
        .execute(&mut session)
        .await
        {
            Ok(_) => Ok(true),
            // Created meanwhile by someone else: it exists, which is what was asked.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => Ok(false),
            Err(e) => Err(query_error(
                &maintenance,
                &format!("creating the database {name:?}"),
                &e,
            )),
        }
    }
    .await;
    let _ = session.close().await;
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn pg_restore_arguments_follow_the_options() {
        let connection = PgConnection::from_url("postgres://u@h/host=evil' db").unwrap();
        let mut options = RestoreOptions::new(
            PathBuf::from("pg_restore"),
            connection,
            Decryption::Passphrase("p".to_owned().into()),
        );
        assert_eq!(
            options.tool_args(),
            [
                "--no-password",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--exit-on-error",
                "--dbname=dbname='host=evil\\' db'"
            ]
        );
        options.clean = false;
        options.no_owner = false;
        options.exit_on_error = false;
        options.no_privileges = true;
        options.jobs = 4;
        assert_eq!(
            options.tool_args(),
            [
                "--no-password",
                "--no-privileges",
                "--jobs=4",
                "--dbname=dbname='host=evil\\' db'"
            ]
        );
        options.create_from_archive = true;
        assert_eq!(
            options.tool_args(),
            [
                "--no-password",
                "--no-privileges",
                "--jobs=4",
                "--create",
                "--dbname=dbname='postgres'"
            ]
        );
    }
}
