//! The streaming backup pipeline: `pg_dump -Fc -Z0` → zstd → age → an `AsyncWrite` sink.
//!
//! Memory is bounded whatever the database size: pg_dump's stdout is read in fixed chunks, each
//! chunk is compressed and encrypted into a small staging buffer, and that buffer is written to
//! the sink before the next chunk is read (zstd's window at level ≤ 19 is a few MB at most).

use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Default zstd level of the pipeline (issue 4: "default level 5").
pub const DEFAULT_ZSTD_LEVEL: i32 = 5;

/// How much of pg_dump's stdout is read (and then compressed, encrypted, written) at a time.
const CHUNK_SIZE: usize = 256 * 1024;
/// The tail of pg_dump's stderr kept for the error message.
const STDERR_KEEP: usize = 16 * 1024;

/// Where pg_dump connects. The password only ever travels in `PGPASSWORD`.
#[derive(Clone, PartialEq, Eq)]
pub struct PgConnection {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Option<String>,
    /// libpq `sslmode` (`disable`, `require`, `verify-full`, …); libpq's default when `None`.
    pub sslmode: Option<String>,
}

impl std::fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("sslmode", &self.sslmode)
            .finish()
    }
}

impl PgConnection {
    /// Reads `postgres://user:password@host:port/database?sslmode=…`. Missing parts take libpq's
    /// usual defaults (localhost, 5432, user `postgres`, database named like the user).
    pub fn from_url(text: &str) -> Result<PgConnection, BackupError> {
        let url = url::Url::parse(text.trim()).map_err(|e| {
            BackupError::Config(format!(
                "the database URL is not a URL ({e}); write postgres://user:password@host:5432/database"
            ))
        })?;
        if url.scheme() != "postgres" && url.scheme() != "postgresql" {
            return Err(BackupError::Config(format!(
                "the database URL has scheme {:?}; write postgres://user:password@host:5432/database",
                url.scheme()
            )));
        }
        // Percent-decoding only: a `+` in a password is a plus, not a space.
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = match url.username() {
            "" => "postgres".to_owned(),
            u => decode(u),
        };
        let database = match url.path().trim_start_matches('/') {
            "" => user.clone(),
            d => decode(d),
        };
        let sslmode = url
            .query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.into_owned());
        Ok(PgConnection {
            host: url.host_str().unwrap_or("localhost").to_owned(),
            port: url.port().unwrap_or(5432),
            database,
            user,
            password: url.password().map(decode),
            sslmode,
        })
    }
}

/// What to dump and how to protect it.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// The `pg_dump` binary (see [`crate::pg_tools::find_pg_tool`]).
    pub pg_dump: PathBuf,
    pub connection: PgConnection,
    pub zstd_level: i32,
    /// At least one; anyone holding one matching identity can decrypt.
    pub recipients: Vec<age::x25519::Recipient>,
    /// pg_dump producing no bytes (or the sink accepting none) for this long fails the backup.
    pub stall_timeout: Duration,
    /// The whole dump taking longer than this fails the backup.
    pub total_timeout: Duration,
}

/// What the pipeline wrote to the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpOutcome {
    /// Bytes pg_dump produced (the uncompressed custom-format archive).
    pub dump_bytes: u64,
    /// Bytes written to the sink (the stored object).
    pub stored_bytes: u64,
    /// Lowercase hex SHA-256 of the bytes written to the sink.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Config(String),
    #[error(
        "could not start pg_dump at {path}: {source}; check the path or install postgresql-client"
    )]
    Spawn {
        path: String,
        source: std::io::Error,
    },
    #[error("pg_dump failed ({status}): {stderr}")]
    PgDump { status: String, stderr: String },
    #[error(
        "the backup stalled: no bytes moved for {0:?}; pg_dump was stopped (is the database or the storage target reachable?)"
    )]
    Stalled(Duration),
    #[error(
        "the backup took longer than its total timeout of {0:?}; pg_dump was stopped (raise the timeout for large databases)"
    )]
    TimedOut(Duration),
    #[error("compressing or encrypting the dump failed: {0}")]
    Encode(String),
    #[error("writing the backup to the storage target failed: {0}")]
    Storage(String),
    /// A backup object or its metadata is not in the storage target.
    #[error("{0}")]
    NotFound(String),
    /// Reading, deleting or testing a storage target failed (the message names the target and
    /// the step).
    #[error("{0}")]
    Target(String),
}

impl From<BackupError> for statehouse_core::Error {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Config(_) | BackupError::Spawn { .. } => {
                statehouse_core::Error::Config(e.to_string())
            }
            BackupError::NotFound(message) => statehouse_core::Error::NotFound(message),
            _ => statehouse_core::Error::Internal(e.to_string()),
        }
    }
}

/// A `Write` into a buffer shared with the pipeline, which drains it after every chunk.
#[derive(Clone, Default)]
struct Staging(Arc<Mutex<Vec<u8>>>);

impl Staging {
    fn take(&self) -> Vec<u8> {
        match self.0.lock() {
            Ok(mut buf) => std::mem::take(&mut *buf),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

impl Write for Staging {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut buf) => buf.extend_from_slice(data),
            Err(poisoned) => poisoned.into_inner().extend_from_slice(data),
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The sink side: counts and hashes what it writes; every write bounded by the timeouts.
struct HashingSink<'a, W: ?Sized> {
    sink: &'a mut W,
    hasher: Sha256,
    written: u64,
}

impl<W: AsyncWrite + Unpin + ?Sized> HashingSink<'_, W> {
    async fn write(&mut self, data: &[u8], timer: &Timer) -> Result<(), BackupError> {
        if data.is_empty() {
            return Ok(());
        }
        timer
            .run(self.sink.write_all(data))
            .await?
            .map_err(|e| BackupError::Storage(e.to_string()))?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        Ok(())
    }
}

/// Stall and total deadlines around every await that moves bytes.
struct Timer {
    stall: Duration,
    total: Duration,
    deadline: Instant,
}

impl Timer {
    async fn run<F: Future>(&self, fut: F) -> Result<F::Output, BackupError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let (limit, error) = if left <= self.stall {
            (left, BackupError::TimedOut(self.total))
        } else {
            (self.stall, BackupError::Stalled(self.stall))
        };
        tokio::time::timeout(limit, fut).await.map_err(|_| error)
    }
}

/// Runs pg_dump and streams its archive, compressed and encrypted, into `sink` (which is flushed
/// but not shut down or synced: committing it is the storage target's job). On any failure
/// pg_dump is killed and the error says why; a dump that pg_dump did not finish successfully
/// never returns `Ok`.
pub async fn dump_to<W: AsyncWrite + Unpin + ?Sized>(
    options: &DumpOptions,
    sink: &mut W,
) -> Result<DumpOutcome, BackupError> {
    if options.recipients.is_empty() {
        return Err(BackupError::Config(
            "a backup needs at least one age recipient (age1…) to encrypt to".to_owned(),
        ));
    }
    let timer = Timer {
        stall: options.stall_timeout,
        total: options.total_timeout,
        deadline: Instant::now() + options.total_timeout,
    };
    let mut child = spawn_pg_dump(options)?;
    let stderr_task = child.stderr.take().map(|s| tokio::spawn(read_tail(s)));
    let result = stream(options, &mut child, sink, &timer).await;
    let stderr = async {
        match stderr_task {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        }
    };
    match result {
        Ok((outcome, status)) if status.success() => Ok(outcome),
        Ok((_, status)) => Err(BackupError::PgDump {
            status: status.to_string(),
            stderr: clean_stderr(&stderr.await),
        }),
        Err(e) => {
            // Killed so the stall/total timeouts really stop the work; kill_on_drop is the backstop.
            let _ = child.kill().await;
            Err(e)
        }
    }
}

fn spawn_pg_dump(options: &DumpOptions) -> Result<Child, BackupError> {
    let c = &options.connection;
    let mut command = Command::new(&options.pg_dump);
    command
        .args(["--format=custom", "--compress=0", "--no-password"])
        // Everything about the connection goes through the environment, so nothing secret (nor
        // a connection string that could hold one) is visible in `ps`.
        .env("PGHOST", &c.host)
        .env("PGPORT", c.port.to_string())
        .env("PGDATABASE", &c.database)
        .env("PGUSER", &c.user)
        .env_remove("PGSERVICE")
        .env_remove("PGPASSWORD")
        .env_remove("PGSSLMODE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(password) = &c.password {
        command.env("PGPASSWORD", password);
    }
    if let Some(sslmode) = &c.sslmode {
        command.env("PGSSLMODE", sslmode);
    }
    command.spawn().map_err(|source| BackupError::Spawn {
        path: options.pg_dump.display().to_string(),
        source,
    })
}

async fn stream<W: AsyncWrite + Unpin + ?Sized>(
    options: &DumpOptions,
    child: &mut Child,
    sink: &mut W,
    timer: &Timer,
) -> Result<(DumpOutcome, ExitStatus), BackupError> {
    let Some(mut stdout) = child.stdout.take() else {
        return Err(BackupError::Encode(
            "pg_dump's output was not captured".to_owned(),
        ));
    };
    let staging = Staging::default();
    let recipients = options.recipients.iter().map(|r| r as &dyn age::Recipient);
    let encryptor = age::Encryptor::with_recipients(recipients)
        .map_err(|e| BackupError::Config(format!("cannot encrypt to these recipients: {e}")))?;
    let encrypted = encryptor
        .wrap_output(staging.clone())
        .map_err(|e| BackupError::Encode(e.to_string()))?;
    let mut compressor = zstd::stream::write::Encoder::new(encrypted, options.zstd_level)
        .map_err(|e| BackupError::Encode(e.to_string()))?;
    let mut out = HashingSink {
        sink,
        hasher: Sha256::new(),
        written: 0,
    };
    let mut chunk = vec![0u8; CHUNK_SIZE];
    let mut dump_bytes = 0u64;
    loop {
        let n = timer
            .run(stdout.read(&mut chunk))
            .await?
            .map_err(|e| BackupError::Encode(format!("reading pg_dump's output: {e}")))?;
        if n == 0 {
            break;
        }
        dump_bytes += n as u64;
        // Compression and encryption are CPU work (milliseconds per chunk, more at high zstd
        // levels): off the async workers so a running backup never stalls request handling.
        let (back, returned, written) = tokio::task::spawn_blocking(move || {
            let written = compressor.write_all(&chunk[..n]);
            (compressor, chunk, written)
        })
        .await
        .map_err(|e| BackupError::Encode(format!("the compression task failed: {e}")))?;
        compressor = back;
        chunk = returned;
        written.map_err(|e| BackupError::Encode(e.to_string()))?;
        out.write(&staging.take(), timer).await?;
    }
    let encrypted = compressor
        .finish()
        .map_err(|e| BackupError::Encode(e.to_string()))?;
    encrypted
        .finish()
        .map_err(|e| BackupError::Encode(e.to_string()))?;
    out.write(&staging.take(), timer).await?;
    timer
        .run(out.sink.flush())
        .await?
        .map_err(|e| BackupError::Storage(e.to_string()))?;
    let status = timer
        .run(child.wait())
        .await?
        .map_err(|e| BackupError::Encode(format!("waiting for pg_dump: {e}")))?;
    let outcome = DumpOutcome {
        dump_bytes,
        stored_bytes: out.written,
        sha256: hex::encode(out.hasher.finalize()),
    };
    Ok((outcome, status))
}

/// Reads a child's stderr to the end, keeping only its last `STDERR_KEEP` bytes.
async fn read_tail<R: AsyncRead + Unpin>(mut reader: R) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > STDERR_KEEP {
            kept.drain(..kept.len() - STDERR_KEEP);
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

fn clean_stderr(stderr: &str) -> String {
    let text = stderr.trim();
    if text.is_empty() {
        "pg_dump printed no error message".to_owned()
    } else {
        text.lines().collect::<Vec<_>>().join(" | ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn url_is_split_into_fields_and_the_password_is_redacted_in_debug() {
        let c = PgConnection::from_url(
            "postgres://al%40ice:p%2Fs+s@db.example:6543/my%20db?sslmode=require",
        )
        .unwrap();
        assert_eq!(c.host, "db.example");
        assert_eq!(c.port, 6543);
        assert_eq!(c.user, "al@ice");
        assert_eq!(c.password.as_deref(), Some("p/s+s"));
        assert_eq!(c.database, "my db");
        assert_eq!(c.sslmode.as_deref(), Some("require"));
        assert!(!format!("{c:?}").contains("p/s+s"));
        let d = PgConnection::from_url("postgres://bob@localhost").unwrap();
        assert_eq!(
            (d.port, d.database.as_str(), d.password),
            (5432, "bob", None)
        );
        assert!(PgConnection::from_url("mysql://x@y/z").is_err());
    }
}
