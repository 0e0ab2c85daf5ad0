//! Sealing an object's bytes into a blob's chunks (compressed, then encrypted, each chunk
//! under its own data key): whole, for a PutObject whose body is already in memory, or as the
//! bytes arrive, for a multipart part, so that a part never sits whole in memory.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use tokio::task::JoinHandle;

use super::new_id;
use crate::crypto::{Cipher, compress};
use crate::objects::{NewBlob, SealedChunk};
use crate::sealed::SealedKind;
use crate::{Error, Result};

/// Bytes per sealed chunk: what a GET holds of an object at a time, and what a part being
/// received holds (one chunk filling while the one before is sealed).
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// Seals chunks of one blob, in order.
pub(crate) struct BlobSealer {
    cipher: Arc<Cipher>,
    workspace_id: String,
    chunks: Vec<SealedChunk>,
    size: i64,
}

impl BlobSealer {
    pub(crate) fn new(cipher: Arc<Cipher>, workspace_id: String) -> Self {
        BlobSealer {
            cipher,
            workspace_id,
            chunks: Vec::new(),
            size: 0,
        }
    }

    /// Seals the blob's next chunk (at most [`CHUNK_BYTES`]; CPU-heavy: call it off the
    /// async workers).
    pub(crate) fn seal(&mut self, piece: &[u8]) -> Result<()> {
        let id = new_id();
        let binding = SealedKind::S3Chunk.binding(&self.workspace_id, &id);
        let sealed = self.cipher.seal_compressed(compress(piece)?, binding)?;
        let size = i64::try_from(piece.len()).unwrap_or(i64::MAX);
        self.size = self.size.saturating_add(size);
        self.chunks.push(SealedChunk {
            id,
            seq: i64::try_from(self.chunks.len()).unwrap_or(i64::MAX),
            size,
            sealed,
        });
        Ok(())
    }

    pub(crate) fn finish(self) -> NewBlob {
        NewBlob {
            id: new_id(),
            size: self.size,
            chunks: self.chunks,
        }
    }
}

/// Seals `body` into a new blob on a blocking thread.
pub(crate) async fn seal_whole(
    cipher: Arc<Cipher>,
    workspace_id: String,
    body: Bytes,
) -> Result<NewBlob> {
    tokio::task::spawn_blocking(move || -> Result<NewBlob> {
        let mut sealer = BlobSealer::new(cipher, workspace_id);
        for piece in body.chunks(CHUNK_BYTES) {
            sealer.seal(piece)?;
        }
        Ok(sealer.finish())
    })
    .await
    .map_err(|e| Error::Internal(format!("sealing an object failed: {e}")))?
}

/// A blob sealed as its bytes arrived, with their MD5.
pub struct StreamedBlob {
    pub md5: [u8; 16],
    pub blob: NewBlob,
}

/// What the blocking side carries from one chunk to the next.
struct Progress {
    md5: Md5,
    sealer: BlobSealer,
}

enum Stage {
    /// No chunk being sealed.
    Idle(Progress),
    /// A blocking task seals a chunk (and then hands the progress back).
    Busy(JoinHandle<Result<Progress>>),
    /// A chunk's sealing failed (its error was returned).
    Failed,
}

/// Seals bytes as they are written: whole chunks are sealed on a blocking thread, one at a
/// time, while the next fills, so at most two chunks are held (and no thread waits on a slow
/// sender between chunks). The MD5 of all bytes comes with the blob.
pub struct StreamSealer {
    filling: BytesMut,
    stage: Stage,
}

impl StreamSealer {
    pub(crate) fn new(cipher: Arc<Cipher>, workspace_id: String) -> Self {
        StreamSealer {
            filling: BytesMut::with_capacity(CHUNK_BYTES),
            stage: Stage::Idle(Progress {
                md5: Md5::new(),
                sealer: BlobSealer::new(cipher, workspace_id),
            }),
        }
    }

    /// Takes the next bytes; waits only when a full chunk is ready and the one before is
    /// still being sealed.
    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let room = CHUNK_BYTES - self.filling.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.filling.extend_from_slice(now);
            bytes = later;
            if self.filling.len() == CHUNK_BYTES {
                let chunk = std::mem::replace(&mut self.filling, BytesMut::new()).freeze();
                self.seal_next(chunk).await?;
                self.filling.reserve(CHUNK_BYTES);
            }
        }
        Ok(())
    }

    /// Seals what is left; returns the blob and the MD5 of every byte written.
    pub async fn finish(mut self) -> Result<StreamedBlob> {
        let rest = std::mem::take(&mut self.filling).freeze();
        if !rest.is_empty() {
            self.seal_next(rest).await?;
        }
        let progress = self.progress().await?;
        Ok(StreamedBlob {
            md5: progress.md5.finalize().into(),
            blob: progress.sealer.finish(),
        })
    }

    async fn seal_next(&mut self, chunk: Bytes) -> Result<()> {
        let mut progress = self.progress().await?;
        self.stage = Stage::Busy(tokio::task::spawn_blocking(move || {
            progress.md5.update(&chunk);
            progress.sealer.seal(&chunk)?;
            Ok(progress)
        }));
        Ok(())
    }

    /// The progress once the chunk being sealed (if any) is done.
    async fn progress(&mut self) -> Result<Progress> {
        match std::mem::replace(&mut self.stage, Stage::Failed) {
            Stage::Idle(progress) => Ok(progress),
            Stage::Busy(sealing) => sealing
                .await
                .map_err(|e| Error::Internal(format!("sealing a chunk failed: {e}")))?,
            Stage::Failed => Err(Error::Internal(
                "an earlier chunk of this body could not be sealed".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Keyring, MasterKey};

    fn cipher() -> Arc<Cipher> {
        Arc::new(Cipher::fixed(Keyring::new(MasterKey::generate())))
    }

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn written_in_any_pieces_a_body_is_sealed_into_the_chunks_a_whole_body_gets() {
        let cipher = cipher();
        for len in [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, 2 * CHUNK_BYTES + 12_345] {
            let plain = body(len);
            for piece in [1_000, 65_536, CHUNK_BYTES + 3] {
                let mut sealer = StreamSealer::new(cipher.clone(), "ws".into());
                for part in plain.chunks(piece) {
                    sealer.write(part).await.unwrap_or_else(|e| panic!("{e}"));
                }
                let streamed = sealer.finish().await.unwrap_or_else(|e| panic!("{e}"));
                let whole = seal_whole(cipher.clone(), "ws".into(), Bytes::from(plain.clone()))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(streamed.md5, <[u8; 16]>::from(Md5::digest(&plain)));
                assert_eq!(streamed.blob.size, len as i64);
                let sizes = |b: &NewBlob| b.chunks.iter().map(|c| c.size).collect::<Vec<_>>();
                assert_eq!(
                    sizes(&streamed.blob),
                    sizes(&whole),
                    "len {len}, piece {piece}"
                );
                let mut opened = Vec::new();
                for (seq, chunk) in streamed.blob.chunks.iter().enumerate() {
                    assert_eq!(chunk.seq, seq as i64);
                    let binding = SealedKind::S3Chunk.binding("ws", &chunk.id);
                    let size = usize::try_from(chunk.size).unwrap_or(0);
                    let plain = cipher
                        .open(&chunk.sealed, binding, size)
                        .unwrap_or_else(|e| panic!("{e}"));
                    opened.extend_from_slice(&plain);
                }
                assert!(opened == plain, "len {len}, piece {piece}: bytes differ");
            }
        }
    }
}
