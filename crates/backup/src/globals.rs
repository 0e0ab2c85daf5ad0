//! A whole server's globals: roles (attributes, password hashes, memberships, per-role
//! settings) and tablespaces, which no single database's dump holds. Without them a server
//! restored from its databases' dumps loses every owner and GRANT. Backed up with
//! `pg_dumpall --globals-only` through the same zstd → age pipeline (a plain SQL script),
//! restored with `psql`.
//!
//! By hand, without statehouse: `age -d -i key.txt X.sql.zst.age | zstd -d | psql -d postgres`
//! (errors about roles that already exist, such as `postgres`, are expected and harmless).
//!
//! Restoring onto a server that already has some of the roles (its bootstrap superuser at
//! least) is expected: "already exists" errors for roles and tablespaces are tolerated (the
//! script's `ALTER ROLE` that follows still applies the backed-up attributes and password);
//! any other error fails the restore. The role statehouse connects as keeps its password on
//! the target, so the databases' restores that follow can still log in.

use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::time::Instant;

use crate::connection::{LibpqEnv, PgConnection, conninfo_value, query_error};
use crate::decode::{DecodeError, decode_into};
use crate::keys::{Decryption, Encryption};
use crate::pipeline::{BackupError, DumpOutcome, DumpTool, Timer, clean_stderr, run_dump_tool};
use crate::targets::{BackupMetadata, BackupTarget};
use crate::verify::{VerificationLevel, VerificationReport};
use statehouse_core::clock::Clock;

/// A globals script larger than this is refused when read back (they are kilobytes; the
/// whole script is checked before any of it runs).
const MAX_SCRIPT_BYTES: usize = 64 * 1024 * 1024;
/// Error lines of psql kept for the message.
const ERRORS_KEPT: usize = 5;
/// The first line pg_dumpall writes after its header comment.
const SCRIPT_MARK: &str = "PostgreSQL database cluster dump";

/// What to back up and how.
#[derive(Debug, Clone)]
pub struct GlobalsDumpOptions {
    /// The `pg_dumpall` binary (of the server's major version or newer).
    pub pg_dumpall: PathBuf,
    /// The server; its `database` is the one pg_dumpall connects to.
    pub connection: PgConnection,
    pub zstd_level: i32,
    pub encryption: Encryption,
    /// Include role password hashes (needs a role that may read `pg_authid`, a superuser).
    pub role_passwords: bool,
    pub stall_timeout: Duration,
    pub total_timeout: Duration,
}

/// Whether the role of `connection` may read role password hashes (`pg_authid`): then the
/// globals include them.
pub async fn role_passwords_readable(connection: &PgConnection) -> Result<bool, BackupError> {
    let mut session = connection.connect().await?;
    let readable: Result<(bool,), _> =
        sqlx::query_as("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')")
            .fetch_one(&mut session)
            .await;
    let _ = session.close().await;
    readable
        .map(|(r,)| r)
        .map_err(|e| query_error(connection, "checking access to role passwords", &e))
}

/// Roles of the server behind `connection` that a globals restore would change: all but its
/// bootstrap superuser, the predefined `pg_*` roles and the role connecting (the first 20).
pub async fn existing_roles(connection: &PgConnection) -> Result<Vec<String>, BackupError> {
    let mut session = connection.connect().await?;
    let roles: Result<Vec<(String,)>, _> = sqlx::query_as(
        "SELECT rolname::text FROM pg_catalog.pg_roles
         WHERE rolname !~ '^pg_' AND oid <> 10 AND rolname <> current_user
         ORDER BY 1 LIMIT 20",
    )
    .fetch_all(&mut session)
    .await;
    let _ = session.close().await;
    roles
        .map(|rows| rows.into_iter().map(|(r,)| r).collect())
        .map_err(|e| query_error(connection, "listing the server's roles", &e))
}

/// Runs `pg_dumpall --globals-only` and streams its script, compressed and encrypted, into
/// `sink`.
pub async fn dump_globals_to<W: AsyncWrite + Unpin + ?Sized>(
    options: &GlobalsDumpOptions,
    sink: &mut W,
) -> Result<DumpOutcome, BackupError> {
    let encryption = options.encryption.clone();
    let encryptor = tokio::task::spawn_blocking(move || encryption.encryptor())
        .await
        .map_err(|e| BackupError::Encode(format!("preparing the encryption failed: {e}")))??;
    let timer = Timer::new(options.stall_timeout, options.total_timeout);
    let env = LibpqEnv::new(&options.connection).await?;
    let tool = DumpTool {
        name: "pg_dumpall",
        path: &options.pg_dumpall,
        args: dumpall_args(&options.connection.database, options.role_passwords),
    };
    run_dump_tool(&tool, &env, options.zstd_level, encryptor, sink, &timer).await
}

/// pg_dumpall's arguments; the database to connect to is quoted as a connection-string value
/// (pg_dumpall would read a bare `host=…` as connection options).
fn dumpall_args(database: &str, role_passwords: bool) -> Vec<String> {
    let mut args = vec!["--globals-only".to_owned(), "--no-password".to_owned()];
    if !role_passwords {
        args.push("--no-role-passwords".to_owned());
    }
    args.push(format!("--database=dbname={}", conninfo_value(database)));
    args
}

/// Backs the globals up into a new object `name` of `target` and commits it with its sidecar.
pub async fn run_globals_backup(
    options: &GlobalsDumpOptions,
    server_version: Option<String>,
    target: &dyn BackupTarget,
    name: &str,
    clock: &dyn Clock,
) -> Result<BackupMetadata, BackupError> {
    let started = clock.now();
    let mut upload = target.begin(name, None).await?;
    let outcome = match dump_globals_to(options, upload.writer()).await {
        Ok(outcome) => outcome,
        Err(e) => {
            upload.abort().await;
            return Err(e);
        }
    };
    let finished = clock.now();
    let file = name.rsplit('/').next().unwrap_or(name);
    let key = match options.encryption {
        Encryption::Passphrase(_) => "",
        Encryption::Recipients(_) => "-i key.txt ",
    };
    let metadata = BackupMetadata {
        format_version: 1,
        object: name.to_owned(),
        database: format!("globals of {}", options.connection.describe()),
        server_version,
        statehouse_version: env!("CARGO_PKG_VERSION").to_owned(),
        pipeline: if options.role_passwords {
            "pg_dumpall --globals-only | zstd | age"
        } else {
            "pg_dumpall --globals-only --no-role-passwords | zstd | age"
        }
        .to_owned(),
        zstd_level: options.zstd_level,
        recipients: options.encryption.recipients_text(),
        started_at: started.to_rfc3339(),
        finished_at: finished.to_rfc3339(),
        duration_ms: finished.millis().saturating_sub(started.millis()),
        dump_bytes: outcome.dump_bytes,
        stored_bytes: outcome.stored_bytes,
        sha256: outcome.sha256,
        // Roles first, then each database: `--no-owner` off keeps owners and grants.
        restore_command: format!("age -d {key}{file} | zstd -d | psql -d postgres"),
        row_counts: None,
    };
    upload.commit(&metadata).await?;
    Ok(metadata)
}

/// How to read a globals object back.
#[derive(Debug, Clone)]
pub struct GlobalsReadOptions {
    pub decryption: Decryption,
    /// The object's recorded SHA-256; a different object is refused.
    pub expected_sha256: Option<String>,
    pub stall_timeout: Duration,
    pub total_timeout: Duration,
}

/// A globals script read back whole, checked (authentic, checksum matches, pg_dumpall's).
struct Script {
    text: Vec<u8>,
    stored_bytes: u64,
}

impl Script {
    fn count(&self, statement: &str) -> usize {
        String::from_utf8_lossy(&self.text)
            .lines()
            .filter(|l| l.starts_with(statement))
            .count()
    }
}

async fn read_script<R: AsyncRead + Unpin + ?Sized>(
    options: &GlobalsReadOptions,
    object: &mut R,
    timer: &Timer,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Script, BackupError> {
    let mut buffer = CappedBuffer::default();
    let decoded = decode_into(
        object,
        &options.decryption,
        options.expected_sha256.as_deref(),
        &mut buffer,
        false,
        timer,
        progress,
    )
    .await
    .map_err(|e| match e {
        DecodeError::Backup(e) => e,
        DecodeError::Sink(e) => BackupError::Decode(e.to_string()),
    })?;
    if !String::from_utf8_lossy(&buffer.bytes[..buffer.bytes.len().min(4096)]).contains(SCRIPT_MARK)
    {
        return Err(BackupError::Decode(
            "the object decrypts, but is not a pg_dumpall globals script".to_owned(),
        ));
    }
    Ok(Script {
        text: buffer.bytes,
        stored_bytes: decoded.stored_bytes,
    })
}

/// Checks a globals object without a server: it decrypts, matches its checksum, decompresses
/// whole and is a pg_dumpall script; says how many roles and tablespaces it holds.
pub async fn verify_globals<R: AsyncRead + Unpin + ?Sized>(
    options: &GlobalsReadOptions,
    object: &mut R,
) -> Result<VerificationReport, BackupError> {
    let started = Instant::now();
    let timer = Timer::new(options.stall_timeout, options.total_timeout);
    let report = |ok: bool, detail: String| VerificationReport {
        level: VerificationLevel::Cheap,
        ok,
        tables_checked: 0,
        mismatches: Vec::new(),
        duration: started.elapsed(),
        detail,
    };
    match read_script(options, object, &timer, &|_| {}).await {
        Ok(script) => Ok(report(
            true,
            format!(
                "decrypted, checksum matches, {} bytes of pg_dumpall globals: {} roles, {} \
                 tablespaces",
                script.text.len(),
                script.count("CREATE ROLE "),
                script.count("CREATE TABLESPACE ")
            ),
        )),
        Err(
            e @ (BackupError::Decode(_)
            | BackupError::ChecksumMismatch { .. }
            | BackupError::ObjectRead(_)),
        ) => Ok(report(false, e.to_string())),
        Err(e) => Err(e),
    }
}

/// How to restore globals.
#[derive(Debug, Clone)]
pub struct GlobalsRestoreOptions {
    /// The `psql` binary.
    pub psql: PathBuf,
    /// The server; its `database` is the one psql connects to (any existing one).
    pub connection: PgConnection,
    pub read: GlobalsReadOptions,
}

/// What a globals restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GlobalsRestoreOutcome {
    pub stored_bytes: u64,
    pub script_bytes: u64,
    /// Roles the script creates (those that existed were updated instead).
    pub roles: usize,
    /// Roles and tablespaces that already existed (`role "postgres"`, …).
    pub already_existed: Vec<String>,
    /// The role statehouse connected as got its password back after the script changed it.
    pub kept_password_of: Option<String>,
}

/// Restores a globals object onto the server of `options.connection` (see the module notes).
pub async fn restore_globals_from<R: AsyncRead + Unpin + ?Sized>(
    options: &GlobalsRestoreOptions,
    object: &mut R,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<GlobalsRestoreOutcome, BackupError> {
    let timer = Timer::new(options.read.stall_timeout, options.read.total_timeout);
    let script = read_script(&options.read, object, &timer, progress).await?;
    let connection = &options.connection;
    // The connecting role's password as it is now, to put back if the script changes it.
    let mut session = connection.connect().await?;
    let before = own_password(connection, &mut session).await;
    let _ = session.close().await;

    let env = LibpqEnv::new(connection).await?;
    let mut command = Command::new(&options.psql);
    command
        .args([
            "--no-psqlrc",
            "--quiet",
            "--no-password",
            "--set=ON_ERROR_STOP=0",
            "--set=VERBOSITY=verbose",
        ])
        .arg(format!(
            "--dbname=dbname={}",
            conninfo_value(&connection.database)
        ));
    env.apply(&mut command);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| BackupError::Spawn {
            path: options.psql.display().to_string(),
            source,
        })?;
    let errors_task = child.stderr.take().map(|s| tokio::spawn(psql_errors(s)));
    let Some(mut stdin) = child.stdin.take() else {
        let _ = child.kill().await;
        return Err(BackupError::Decode(
            "psql's input was not captured".to_owned(),
        ));
    };
    let fed = match timer
        .run(async {
            stdin.write_all(&script.text).await?;
            stdin.shutdown().await
        })
        .await
    {
        Ok(fed) => fed,
        Err(e) => {
            let _ = child.kill().await;
            return Err(e);
        }
    };
    drop(stdin);
    let status = match timer.run_total(child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            return Err(psql_failed(
                "unknown",
                format!("waiting for psql failed: {e}"),
            ));
        }
        Err(e) => {
            let _ = child.kill().await;
            return Err(e);
        }
    };
    let errors = match errors_task {
        Some(task) => task.await.unwrap_or_default(),
        None => PsqlErrors::default(),
    };
    if !status.success() || !errors.fatal.is_empty() {
        let detail = if errors.fatal.is_empty() {
            match fed {
                Err(e) => format!("psql stopped reading its input: {e}"),
                Ok(()) => "psql printed no error message".to_owned(),
            }
        } else {
            errors.fatal.join(" | ")
        };
        return Err(psql_failed(&status.to_string(), detail));
    }
    let kept_password_of = match before {
        Some(before) => restore_own_password(connection, &before).await?,
        None => None,
    };
    Ok(GlobalsRestoreOutcome {
        stored_bytes: script.stored_bytes,
        script_bytes: script.text.len() as u64,
        roles: script.count("CREATE ROLE "),
        already_existed: errors.already_existed,
        kept_password_of,
    })
}

fn psql_failed(status: &str, stderr: String) -> BackupError {
    BackupError::PgRestore {
        status: format!("psql {status}"),
        stderr,
    }
}

/// The connecting role's password hash and the statement that sets it back (built by the
/// server, so quoting is its own); `None` when it cannot be read (not a superuser: then the
/// script cannot change it either).
struct OwnPassword {
    role: String,
    hash: Option<String>,
    set_back: String,
}

async fn own_password(
    connection: &PgConnection,
    session: &mut sqlx::PgConnection,
) -> Option<OwnPassword> {
    sqlx::query_as::<_, (String, Option<String>, String)>(
        "SELECT rolname::text, rolpassword, format('ALTER ROLE %I PASSWORD %L', rolname, rolpassword)
         FROM pg_catalog.pg_authid WHERE rolname = current_user",
    )
    .fetch_one(&mut *session)
    .await
    .map_err(|e| {
        tracing::debug!(error = %query_error(connection, "reading the role's password", &e),
            "the connecting role's password is not read; it cannot be put back")
    })
    .ok()
    .map(|(role, hash, set_back)| OwnPassword {
        role,
        hash,
        set_back,
    })
}

/// Puts the connecting role's password back if the script changed it; returns the role then.
async fn restore_own_password(
    connection: &PgConnection,
    before: &OwnPassword,
) -> Result<Option<String>, BackupError> {
    let mut session = connection.connect().await?;
    let result = async {
        let now = own_password(connection, &mut session).await;
        if now.as_ref().is_none_or(|now| now.hash == before.hash) {
            return Ok(None);
        }
        sqlx::query(sqlx::AssertSqlSafe(before.set_back.clone()))
            .execute(&mut session)
            .await
            .map_err(|e| {
                query_error(
                    connection,
                    &format!("putting back the password of role {:?}", before.role),
                    &e,
                )
            })?;
        Ok(Some(before.role.clone()))
    }
    .await;
    let _ = session.close().await;
    result
}

/// psql's errors, sorted: objects that already existed (tolerated) and everything else.
#[derive(Debug, Default)]
struct PsqlErrors {
    already_existed: Vec<String>,
    fatal: Vec<String>,
}

/// Reads psql's stderr (`VERBOSITY=verbose`: `psql:<stdin>:12: ERROR:  42710: role "postgres"
/// already exists`) to its end.
async fn psql_errors<R: AsyncRead + Unpin>(stderr: R) -> PsqlErrors {
    let mut errors = PsqlErrors::default();
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Some((_, message)) = line
            .split_once("ERROR:  ")
            .or_else(|| line.split_once("FATAL:  "))
        else {
            continue;
        };
        let (code, text) = match message.split_once(": ") {
            Some((code, text)) if code.len() == 5 => (code, text),
            _ => ("", message),
        };
        // 42710 duplicate_object: `role "x" already exists`, `tablespace "x" already exists`.
        if code == "42710" && text.ends_with(" already exists") {
            if errors.already_existed.len() < 1_000 {
                errors
                    .already_existed
                    .push(text.trim_end_matches(" already exists").to_owned());
            }
        } else if errors.fatal.len() < ERRORS_KEPT {
            errors.fatal.push(clean_stderr("psql", text));
        }
    }
    errors
}

/// An in-memory sink refusing more than [`MAX_SCRIPT_BYTES`].
#[derive(Default)]
struct CappedBuffer {
    bytes: Vec<u8>,
}

impl AsyncWrite for CappedBuffer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.bytes.len() + data.len() > MAX_SCRIPT_BYTES {
            return Poll::Ready(Err(std::io::Error::other(format!(
                "the globals script is larger than {} MiB; restore it by hand with psql",
                MAX_SCRIPT_BYTES >> 20
            ))));
        }
        self.bytes.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn pg_dumpall_arguments() {
        assert_eq!(
            dumpall_args("postgres", true),
            [
                "--globals-only",
                "--no-password",
                "--database=dbname='postgres'"
            ]
        );
        assert_eq!(
            dumpall_args("host=evil", false),
            [
                "--globals-only",
                "--no-password",
                "--no-role-passwords",
                "--database=dbname='host=evil'"
            ]
        );
    }

    #[tokio::test]
    async fn existing_roles_are_tolerated_other_errors_are_not() {
        let stderr = "psql:<stdin>:14: ERROR:  42710: role \"postgres\" already exists\n\
                      LOCATION:  CreateRole, user.c:334\n\
                      psql:<stdin>:30: ERROR:  42710: tablespace \"fast\" already exists\n\
                      psql:<stdin>:31: ERROR:  58P01: directory \"/srv/ts\" does not exist\n";
        let errors = psql_errors(stderr.as_bytes()).await;
        assert_eq!(
            errors.already_existed,
            ["role \"postgres\"", "tablespace \"fast\""]
        );
        assert_eq!(errors.fatal, ["directory \"/srv/ts\" does not exist"]);
    }
}
