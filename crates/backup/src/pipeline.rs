//! The streaming backup pipeline: `pg_dump -Fc -Z0` → zstd → age → an `AsyncWrite` sink.
//!
//! Memory is bounded whatever the database size: pg_dump's stdout is read in fixed chunks, each
//! chunk is compressed and encrypted into a small staging buffer, and at most a few such buffers
//! wait for the sink (zstd's window at level ≤ 19 is a few MB at most).

use std::io::{PipeReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::connection::LibpqEnv;
pub use crate::connection::PgConnection;
use crate::exclusions::DumpExclusions;
use crate::keys::Encryption;
use crate::row_counts::{ExportedSnapshot, RowCounts};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Default zstd level of the pipeline (issue 4: "default level 5").
pub const DEFAULT_ZSTD_LEVEL: i32 = 5;

/// The zstd levels the pipeline accepts: higher ("ultra") levels need windows of 32 MB and more
/// to compress and to decompress, beyond the memory budget of a running operation.
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=19;

/// How much of pg_dump's stdout is read (and then compressed, encrypted, written) at a time.
pub(crate) const CHUNK_SIZE: usize = 256 * 1024;
/// Encrypted pieces waiting for the sink: at most a few chunks' worth of memory.
const ENCODED_QUEUE: usize = 4;
/// The tail of a tool's stderr kept for the error message.
const STDERR_KEEP: usize = 16 * 1024;

/// What to dump and how to protect it.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// The `pg_dump` binary (see [`crate::pg_tools::find_pg_tool`]).
    pub pg_dump: PathBuf,
    pub connection: PgConnection,
    /// One of [`ZSTD_LEVELS`].
    pub zstd_level: i32,
    /// Recipients (anyone holding one matching identity can decrypt) or a passphrase.
    pub encryption: Encryption,
    /// Count the rows of every user table in the very snapshot pg_dump dumps (a REPEATABLE READ
    /// transaction exporting its snapshot stays open for the whole dump), so a verification can
    /// compare a restore against exact numbers. Costs one extra scan of every table.
    pub count_rows: bool,
    /// pg_dump producing no bytes (or the sink accepting none) for this long fails the backup.
    pub stall_timeout: Duration,
    /// The whole dump taking longer than this fails the backup.
    pub total_timeout: Duration,
    /// Schemas, tables and table data left out (pg_dump's `--exclude-…` options).
    pub exclusions: DumpExclusions,
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
    /// Rows per user table (`schema.table`) in the dumped snapshot, when
    /// [`DumpOptions::count_rows`] asked for them.
    pub row_counts: Option<RowCounts>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Config(String),
    #[error("could not start {path}: {source}; check the path or install postgresql-client")]
    Spawn {
        path: String,
        source: std::io::Error,
    },
    /// pg_dump (or pg_dumpall, named in `tool`) failed.
    #[error("{tool} failed ({status}): {stderr}")]
    PgDump {
        tool: &'static str,
        status: String,
        stderr: String,
    },
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
    /// statehouse's own session with PostgreSQL failed (connecting or a query); the text says
    /// where and why.
    #[error("{0}")]
    Database(String),
    #[error("pg_restore failed ({status}): {stderr}")]
    PgRestore { status: String, stderr: String },
    /// The stored object does not decrypt or decompress: wrong key or passphrase, or damage.
    #[error("{0}")]
    Decode(String),
    #[error(
        "the backup object's SHA-256 is {actual} but {expected} was recorded when it was written: \
         the object was altered or replaced; do not trust it"
    )]
    ChecksumMismatch { expected: String, actual: String },
    #[error("reading the backup object from storage failed: {0}")]
    ObjectRead(String),
    /// A local file of the operation (the restore's spool file) failed.
    #[error("{0}")]
    LocalFile(String),
    /// The outbound policy refuses the destination (the message names the setting that would
    /// allow it).
    #[error("{0}")]
    Refused(String),
}

impl From<statehouse_outbound::Refusal> for BackupError {
    fn from(refusal: statehouse_outbound::Refusal) -> Self {
        BackupError::Refused(refusal.to_string())
    }
}

impl From<BackupError> for statehouse_core::Error {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Config(_) | BackupError::Spawn { .. } => {
                statehouse_core::Error::Config(e.to_string())
            }
            BackupError::NotFound(message) => statehouse_core::Error::NotFound(message),
            BackupError::Refused(message) => statehouse_core::Error::BadRequest(message),
            // Failures of the database or storage statehouse was asked to use, not its own.
            BackupError::Database(_)
            | BackupError::Target(_)
            | BackupError::ObjectRead(_)
            | BackupError::Storage(_)
            | BackupError::Stalled(_)
            | BackupError::TimedOut(_)
            | BackupError::PgDump { .. }
            | BackupError::PgRestore { .. } => statehouse_core::Error::Unavailable(e.to_string()),
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
pub(crate) struct Timer {
    stall: Duration,
    total: Duration,
    deadline: Instant,
}

impl Timer {
    pub(crate) fn new(stall: Duration, total: Duration) -> Timer {
        Timer {
            stall,
            total,
            deadline: Instant::now() + total,
        }
    }

    /// Only the total deadline: for work that legitimately moves no bytes for a while (a tool
    /// building indexes, counting rows).
    pub(crate) async fn run_total<F: Future>(&self, fut: F) -> Result<F::Output, BackupError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, fut)
            .await
            .map_err(|_| BackupError::TimedOut(self.total))
    }

    /// The stall deadline, or the total one when it comes first.
    pub(crate) async fn run<F: Future>(&self, fut: F) -> Result<F::Output, BackupError> {
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
    if !ZSTD_LEVELS.contains(&options.zstd_level) {
        return Err(BackupError::Config(format!(
            "zstd level {} is outside {}..={}; higher levels need more memory than a backup may use",
            options.zstd_level,
            ZSTD_LEVELS.start(),
            ZSTD_LEVELS.end()
        )));
    }
    // Checked before anything runs: a bad key never starts a dump.
    let encryption = options.encryption.clone();
    let encryptor = tokio::task::spawn_blocking(move || encryption.encryptor())
        .await
        .map_err(|e| BackupError::Encode(format!("preparing the encryption failed: {e}")))??;
    let timer = Timer::new(options.stall_timeout, options.total_timeout);
    let env = LibpqEnv::new(&options.connection).await?;
    let dump = |extra_args: Vec<String>| {
        let timer = &timer;
        let env = &env;
        async move {
            run_pg_dump(
                &options.pg_dump,
                env,
                &extra_args,
                options.zstd_level,
                encryptor,
                sink,
                timer,
            )
            .await
        }
    };
    let exclusions = options.exclusions.pg_dump_args();
    if !options.count_rows {
        return dump(exclusions).await;
    }
    // The rows are counted in the exported snapshot while pg_dump dumps it (the counting keeps
    // the exporting transaction open, as pg_dump's import requires): the count's table scans
    // overlap the dump instead of delaying it.
    let mut snapshot = timer
        .run_total(ExportedSnapshot::begin(&options.connection))
        .await??;
    let mut args = vec![format!("--snapshot={}", snapshot.id())];
    args.extend(exclusions);
    let dumped = dump(args);
    let counted = async {
        timer
            .run_total(snapshot.count_rows(&options.exclusions))
            .await?
    };
    // The first failure ends both: the dump's future kills pg_dump when dropped.
    let (outcome, row_counts) = tokio::try_join!(dumped, counted)?;
    snapshot.finish().await;
    Ok(DumpOutcome {
        row_counts: Some(row_counts),
        ..outcome
    })
}

/// Runs `pg_dump --format=custom --compress=0` (plus `extra_args`) and streams its archive,
/// compressed and encrypted, into `sink`. On any failure pg_dump is killed and the error says
/// why; an archive pg_dump did not finish successfully never returns `Ok`.
pub(crate) async fn run_pg_dump<W: AsyncWrite + Unpin + ?Sized>(
    pg_dump: &Path,
    env: &LibpqEnv,
    extra_args: &[String],
    zstd_level: i32,
    encryptor: age::Encryptor,
    sink: &mut W,
    timer: &Timer,
) -> Result<DumpOutcome, BackupError> {
    let mut args: Vec<String> = ["--format=custom", "--compress=0", "--no-password"]
        .map(str::to_owned)
        .to_vec();
    args.extend_from_slice(extra_args);
    let tool = DumpTool {
        name: "pg_dump",
        path: pg_dump,
        args,
    };
    run_dump_tool(&tool, env, zstd_level, encryptor, sink, timer).await
}

/// A dumping tool to run: its name for messages, its binary, its arguments.
pub(crate) struct DumpTool<'a> {
    pub name: &'static str,
    pub path: &'a Path,
    pub args: Vec<String>,
}

/// Runs `tool` (pg_dump, pg_dumpall) and streams its standard output, compressed and
/// encrypted, into `sink`. On any failure the tool is killed and the error says why; output of
/// a tool that did not finish successfully never returns `Ok`.
pub(crate) async fn run_dump_tool<W: AsyncWrite + Unpin + ?Sized>(
    tool: &DumpTool<'_>,
    env: &LibpqEnv,
    zstd_level: i32,
    encryptor: age::Encryptor,
    sink: &mut W,
    timer: &Timer,
) -> Result<DumpOutcome, BackupError> {
    let (mut child, stdout) = spawn_dump_tool(tool, env)?;
    let stderr_task = child.stderr.take().map(|s| tokio::spawn(read_tail(s)));
    let what = format!("{}'s output", tool.name);
    let encoded = encode(stdout, zstd_level, encryptor, sink, timer, &what).await;
    let result = match encoded {
        Ok(outcome) => timer
            .run(child.wait())
            .await
            .and_then(|waited| {
                waited.map_err(|e| BackupError::Encode(format!("waiting for {}: {e}", tool.name)))
            })
            .map(|status| (outcome, status)),
        Err(e) => Err(e),
    };
    match result {
        Ok((outcome, status)) if status.success() => Ok(outcome),
        Ok((_, status)) => {
            let stderr = match stderr_task {
                Some(task) => task.await.unwrap_or_default(),
                None => String::new(),
            };
            Err(BackupError::PgDump {
                tool: tool.name,
                status: status.to_string(),
                stderr: clean_stderr(tool.name, &stderr),
            })
        }
        Err(e) => {
            // Killed so the stall/total timeouts really stop the work (and the encoding thread,
            // blocked on the pipe, sees its end); kill_on_drop is the backstop.
            let _ = child.kill().await;
            Err(e)
        }
    }
}

/// Starts the tool with its stdout on a plain (blocking) pipe: the encoding thread reads it
/// directly, with no async wake-up per pipe buffer.
fn spawn_dump_tool(
    tool: &DumpTool<'_>,
    env: &LibpqEnv,
) -> Result<(Child, PipeReader), BackupError> {
    let spawn_error = |source| BackupError::Spawn {
        path: tool.path.display().to_string(),
        source,
    };
    let (reader, writer) = std::io::pipe().map_err(spawn_error)?;
    let mut command = Command::new(tool.path);
    command.args(&tool.args);
    env.apply(&mut command);
    command
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(spawn_error)?;
    // `command` (holding our copy of the pipe's write end) is dropped here: only the tool keeps
    // it open, so its exit is the reader's end of file.
    Ok((child, reader))
}

/// Compresses and encrypts everything `source` yields into `sink` with bounded memory, hashing
/// what is written; `what` names the source in errors.
///
/// Reading, compressing and encrypting run on one blocking thread (CPU work never stalls the
/// async workers, and a blocking pipe read costs no wake-ups); only finished encrypted bytes
/// cross to the async side, through a short queue, to be written to the sink. The stall timeout
/// watches that queue: the thread reports after every chunk it reads, even when zstd or age are
/// still buffering its output.
pub(crate) async fn encode<R, W>(
    source: R,
    zstd_level: i32,
    encryptor: age::Encryptor,
    sink: &mut W,
    timer: &Timer,
    what: &str,
) -> Result<DumpOutcome, BackupError>
where
    R: Read + Send + 'static,
    W: AsyncWrite + Unpin + ?Sized,
{
    let (sender, mut encoded) = tokio::sync::mpsc::channel(ENCODED_QUEUE);
    let what_owned = what.to_owned();
    let worker = tokio::task::spawn_blocking(move || {
        encode_blocking(source, zstd_level, encryptor, &sender, &what_owned)
    });
    let mut out = HashingSink {
        sink,
        hasher: Sha256::new(),
        written: 0,
    };
    // On an early return `encoded` is dropped: the thread's next send fails and it stops (the
    // caller kills a producer that is still writing, which ends the thread's blocked read).
    while let Some(bytes) = timer.run(encoded.recv()).await? {
        out.write(&bytes, timer).await?;
    }
    let dump_bytes = worker
        .await
        .map_err(|e| BackupError::Encode(format!("the compression task failed: {e}")))??;
    timer
        .run(out.sink.flush())
        .await?
        .map_err(|e| BackupError::Storage(e.to_string()))?;
    Ok(DumpOutcome {
        dump_bytes,
        stored_bytes: out.written,
        sha256: hex::encode(out.hasher.finalize()),
        row_counts: None,
    })
}

/// The encoding thread of [`encode`]: returns how many bytes it read from `source`.
fn encode_blocking<R: Read>(
    mut source: R,
    zstd_level: i32,
    encryptor: age::Encryptor,
    encoded: &tokio::sync::mpsc::Sender<Vec<u8>>,
    what: &str,
) -> Result<u64, BackupError> {
    let staging = Staging::default();
    let encrypted = encryptor
        .wrap_output(staging.clone())
        .map_err(|e| BackupError::Encode(e.to_string()))?;
    let mut compressor = zstd::stream::write::Encoder::new(encrypted, zstd_level)
        .map_err(|e| BackupError::Encode(e.to_string()))?;
    let hand_over = |bytes: Vec<u8>| {
        encoded
            .blocking_send(bytes)
            .map_err(|_| BackupError::Encode("the backup was stopped".to_owned()))
    };
    let mut chunk = vec![0u8; CHUNK_SIZE];
    let mut dump_bytes = 0u64;
    loop {
        let n = fill(&mut source, &mut chunk)
            .map_err(|e| BackupError::Encode(format!("reading {what}: {e}")))?;
        if n == 0 {
            break;
        }
        dump_bytes += n as u64;
        compressor
            .write_all(&chunk[..n])
            .map_err(|e| BackupError::Encode(e.to_string()))?;
        // Sent even when empty: it tells the stall timer that input is still moving.
        hand_over(staging.take())?;
    }
    let encrypted = compressor
        .finish()
        .map_err(|e| BackupError::Encode(e.to_string()))?;
    encrypted
        .finish()
        .map_err(|e| BackupError::Encode(e.to_string()))?;
    hand_over(staging.take())?;
    Ok(dump_bytes)
}

/// Reads until `buf` is full or the source ends (a pipe read returns only what the producer has
/// written so far): each compressor call then gets a whole chunk.
fn fill<R: Read>(source: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match source.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(got) => n += got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads a child's stderr to the end, keeping only its last `STDERR_KEEP` bytes.
pub(crate) async fn read_tail<R: AsyncRead + Unpin>(mut reader: R) -> String {
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

pub(crate) fn clean_stderr(tool: &str, stderr: &str) -> String {
    let text = stderr.trim();
    if text.is_empty() {
        format!("{tool} printed no error message")
    } else {
        text.lines().collect::<Vec<_>>().join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_of_what_statehouse_was_asked_to_use_are_unavailable_not_internal() {
        let unreachable = [
            BackupError::Database(
                "cannot connect to PostgreSQL at db:5432: connection refused by db:5432 \
                 (is PostgreSQL running and listening there?)"
                    .into(),
            ),
            BackupError::Target("cannot read x on the S3 target \"s3\": timed out".into()),
            BackupError::ObjectRead("connection reset".into()),
            BackupError::Storage("timed out".into()),
            BackupError::Stalled(Duration::from_secs(30)),
            BackupError::PgDump {
                tool: "pg_dump",
                status: "exit status: 1".into(),
                stderr: "connection refused".into(),
            },
        ];
        for e in unreachable {
            let text = e.to_string();
            match statehouse_core::Error::from(e) {
                statehouse_core::Error::Unavailable(message) => assert_eq!(message, text),
                other => panic!("{text}: expected Unavailable, got {other:?}"),
            }
        }
        let message = statehouse_core::Error::from(BackupError::Database(
            "cannot connect to PostgreSQL at db:5432: no answer within 5s".into(),
        ))
        .to_string();
        assert_eq!(
            message,
            "cannot connect to PostgreSQL at db:5432: no answer within 5s"
        );
        assert!(matches!(
            statehouse_core::Error::from(BackupError::Encode("zstd".into())),
            statehouse_core::Error::Internal(_)
        ));
    }
}
