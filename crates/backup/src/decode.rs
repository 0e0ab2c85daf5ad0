//! Reading a stored object back: age → zstd → the pg_dump archive, streamed into an
//! `AsyncWrite` with bounded memory, hashing every stored byte on the way.
//!
//! Three parts run at once, linked by small bounded channels: a feeder reads the object (hashes
//! it, reports progress), a blocking worker decrypts and decompresses, a drainer writes the
//! archive to the sink. Memory: a few 256 KiB chunks in flight plus zstd's window (capped).
//!
//! The drainer holds the archive's last chunk back until the whole object has been decoded and
//! its checksum matched: whatever reads the sink (pg_restore) never sees a complete archive
//! from a damaged, truncated or substituted object.

use std::io::Read;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::keys::Decryption;
use crate::pipeline::{BackupError, CHUNK_SIZE, Timer};

/// Chunks queued between two parts of the pipeline.
const QUEUE: usize = 4;
/// zstd window accepted when decompressing (2^24 = 16 MiB; the pipeline's levels 1–19 use at
/// most 8 MiB): a crafted frame cannot make a restore allocate more.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// What reading an object back found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Bytes of the stored object read.
    pub stored_bytes: u64,
    /// Lowercase hex SHA-256 of the stored object.
    pub sha256: String,
    /// Bytes of the pg_dump archive recovered.
    pub dump_bytes: u64,
    /// The sink stopped accepting bytes before the end (only with `sink_may_stop`): the rest was
    /// still decrypted and decompressed, so the object was checked whole.
    pub sink_stopped: bool,
}

/// Why the sink failed, apart from the pipeline's own errors: the caller knows whether a closed
/// sink means its tool died (then the tool's status says why).
pub(crate) enum DecodeError {
    Backup(BackupError),
    /// Writing to the sink failed (e.g. the tool reading it exited).
    Sink(std::io::Error),
}

impl From<BackupError> for DecodeError {
    fn from(e: BackupError) -> Self {
        DecodeError::Backup(e)
    }
}

/// What the worker sends the drainer.
enum Message {
    Chunk(Vec<u8>),
    /// The object ended where it should and every byte of it authenticated.
    End,
}

/// Decrypts and decompresses `object` into `sink` (flushed, not shut down), checking the
/// object's SHA-256 against `expected_sha256` when given. With `sink_may_stop`, a sink that
/// stops accepting bytes (a tool that read all it needed, like `pg_restore --list`) is not an
/// error: the rest is decoded and discarded. Only a whole, authentic object returns `Ok`.
pub(crate) async fn decode_into<R, W>(
    object: &mut R,
    decryption: &Decryption,
    expected_sha256: Option<&str>,
    sink: &mut W,
    sink_may_stop: bool,
    timer: &Timer,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Decoded, DecodeError>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(QUEUE);
    let (hash_tx, hash_rx) = tokio::sync::oneshot::channel::<String>();
    let decryption = decryption.clone();
    let worker = tokio::task::spawn_blocking(move || {
        decode_blocking(&decryption, ChannelReader::new(in_rx), &out_tx)
    });

    let feeder = async move {
        let mut hasher = Sha256::new();
        let mut stored = 0u64;
        let mut buf = vec![0u8; CHUNK_SIZE];
        loop {
            let n = timer
                .run(object.read(&mut buf))
                .await?
                .map_err(|e| BackupError::ObjectRead(e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            stored += n as u64;
            progress(stored);
            if timer.run(in_tx.send(buf[..n].to_vec())).await?.is_err() {
                // The worker stopped early: it failed, and says why.
                break;
            }
        }
        let sha256 = hex::encode(hasher.finalize());
        let _ = hash_tx.send(sha256.clone());
        Ok::<_, BackupError>((stored, sha256))
    };

    let drainer = async move {
        let mut dump_bytes = 0u64;
        let mut stopped = false;
        let mut held: Option<Vec<u8>> = None;
        let mut ended = false;
        let mut write = async |chunk: &[u8], stopped: &mut bool| {
            if *stopped {
                return Ok(());
            }
            match timer.run(sink.write_all(chunk)).await? {
                Ok(()) => Ok(()),
                Err(e) if sink_may_stop && e.kind() == std::io::ErrorKind::BrokenPipe => {
                    *stopped = true;
                    Ok(())
                }
                Err(e) => Err(DecodeError::Sink(e)),
            }
        };
        while let Some(message) = timer.run(out_rx.recv()).await? {
            match message {
                Message::Chunk(chunk) => {
                    dump_bytes += chunk.len() as u64;
                    if let Some(previous) = held.replace(chunk) {
                        write(&previous, &mut stopped).await?;
                    }
                }
                Message::End => ended = true,
            }
        }
        if !ended {
            // The worker failed: it says why. The held chunk is never delivered.
            return Ok((dump_bytes, stopped));
        }
        // The worker read the object to its end, so the feeder has hashed all of it.
        let Ok(sha256) = hash_rx.await else {
            return Ok((dump_bytes, stopped));
        };
        check_sha256(expected_sha256, &sha256)?;
        if let Some(last) = held {
            write(&last, &mut stopped).await?;
        }
        if !stopped {
            match timer.run(sink.flush()).await? {
                Ok(()) => {}
                Err(e) if sink_may_stop && e.kind() == std::io::ErrorKind::BrokenPipe => {
                    stopped = true;
                }
                Err(e) => return Err(DecodeError::Sink(e)),
            }
        }
        Ok((dump_bytes, stopped))
    };

    let (fed, drained) = tokio::join!(feeder, drainer);
    // Both channel ends of the worker are gone now, so it ends promptly.
    let worked = worker
        .await
        .map_err(|e| BackupError::Decode(format!("the decompression task failed: {e}")))?;
    // The first cause wins: the object could not be read, the sink failed, the object is bad.
    let (stored_bytes, sha256) = fed?;
    let (dump_bytes, sink_stopped) = drained?;
    match worked {
        Ok(()) => Ok(Decoded {
            stored_bytes,
            sha256,
            dump_bytes,
            sink_stopped,
        }),
        Err(WorkerError::Backup(e)) => Err(e.into()),
        // Only when the drainer stopped early, which returned its own error above.
        Err(WorkerError::OutputClosed) => {
            Err(BackupError::Decode("the decoded archive could not be delivered".to_owned()).into())
        }
    }
}

enum WorkerError {
    Backup(BackupError),
    OutputClosed,
}

fn decode_blocking(
    decryption: &Decryption,
    input: ChannelReader,
    out: &mpsc::Sender<Message>,
) -> Result<(), WorkerError> {
    let decrypted = decryption.decrypt(input).map_err(WorkerError::Backup)?;
    let mut decoder = zstd::stream::read::Decoder::new(decrypted)
        .and_then(|mut d| d.window_log_max(ZSTD_WINDOW_LOG_MAX).map(|()| d))
        .map_err(|e| WorkerError::Backup(damaged(&e)))?;
    loop {
        let mut chunk = vec![0u8; CHUNK_SIZE];
        let n =
            read_full(&mut decoder, &mut chunk).map_err(|e| WorkerError::Backup(damaged(&e)))?;
        if n == 0 {
            return out
                .blocking_send(Message::End)
                .map_err(|_| WorkerError::OutputClosed);
        }
        chunk.truncate(n);
        out.blocking_send(Message::Chunk(chunk))
            .map_err(|_| WorkerError::OutputClosed)?;
    }
}

/// Reads until `buf` is full or the stream ends, so chunks stay large.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn damaged(e: &std::io::Error) -> BackupError {
    BackupError::Decode(format!(
        "the backup object is damaged or incomplete ({e}); it cannot be restored"
    ))
}

/// A blocking `Read` over the chunks the feeder sends; the end of the channel is the end of
/// the object.
struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<Vec<u8>>) -> ChannelReader {
        ChannelReader {
            rx,
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Fails unless `actual` is the `expected` checksum (when one is known).
fn check_sha256(expected: Option<&str>, actual: &str) -> Result<(), BackupError> {
    match expected {
        Some(expected) if !expected.trim().eq_ignore_ascii_case(actual) => {
            Err(BackupError::ChecksumMismatch {
                expected: expected.trim().to_ascii_lowercase(),
                actual: actual.to_owned(),
            })
        }
        _ => Ok(()),
    }
}
