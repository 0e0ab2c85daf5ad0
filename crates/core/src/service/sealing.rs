//! Sealing an object's bytes into a blob's chunks (compressed, then encrypted, each chunk
//! under its own data key): whole, for a PutObject whose body is already in memory, or as the
//! bytes arrive, for a multipart part, each chunk stored as soon as it is sealed, so that a
//! part is never whole in memory whatever its size or content.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use tokio::task::JoinHandle;

use super::new_id;
use crate::crypto::{Cipher, compress};
use crate::objects::{NewBlob, SealedChunk};
use crate::sealed::SealedKind;
use crate::{Error, Result};

/// Bytes per sealed chunk: what a GET holds of an object at a time, and what a part being
/// received holds (one chunk filling while the one before is sealed and stored).
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// Seals the chunks of one blob, in order.
pub(crate) struct BlobSealer {
    cipher: Arc<Cipher>,
    workspace_id: String,
    chunks: i64,
    size: i64,
}

impl BlobSealer {
    pub(crate) fn new(cipher: Arc<Cipher>, workspace_id: String) -> Self {
        BlobSealer {
            cipher,
            workspace_id,
            chunks: 0,
            size: 0,
        }
    }

    /// Seals the blob's next chunk (at most [`CHUNK_BYTES`]; CPU-heavy: call it off the
    /// async workers).
    pub(crate) fn seal(&mut self, piece: &[u8]) -> Result<SealedChunk> {
        let id = new_id();
        let binding = SealedKind::S3Chunk.binding(&self.workspace_id, &id);
        let sealed = self.cipher.seal_compressed(compress(piece)?, binding)?;
        let size = i64::try_from(piece.len()).unwrap_or(i64::MAX);
        let chunk = SealedChunk {
            id,
            seq: self.chunks,
            size,
            sealed,
        };
        self.chunks += 1;
        self.size = self.size.saturating_add(size);
        Ok(chunk)
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
        let chunks = body
            .chunks(CHUNK_BYTES)
            .map(|piece| sealer.seal(piece))
            .collect::<Result<Vec<_>>>()?;
        Ok(NewBlob {
            id: new_id(),
            size: sealer.size,
            chunks,
        })
    })
    .await
    .map_err(|e| Error::Internal(format!("sealing an object failed: {e}")))?
}

/// Where the chunks of a blob being streamed go as they are sealed.
#[async_trait]
pub(crate) trait ChunkSink: Send + Sync + 'static {
    async fn keep(&self, blob_id: &str, chunk: SealedChunk) -> Result<()>;
    /// Removes the chunks kept so far (the blob will not be used).
    async fn discard(&self, blob_id: &str) -> Result<()>;
}

/// A blob whose chunks are (being) kept but that nothing uses yet: discarded when dropped,
/// unless [`UnusedBlob::keep`] says its user is stored.
pub(crate) struct UnusedBlob {
    sink: Arc<dyn ChunkSink>,
    id: String,
    armed: bool,
    /// The last chunk's sealing and keeping, if it may still be under way.
    writing: Option<JoinHandle<Result<Progress>>>,
}

impl UnusedBlob {
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for UnusedBlob {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Without a runtime (shutting down) the store's sweep removes it later.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (sink, id, writing) = (self.sink.clone(), self.id.clone(), self.writing.take());
        runtime.spawn(async move {
            if let Some(writing) = writing {
                let _ = writing.await;
            }
            if let Err(e) = sink.discard(&id).await {
                tracing::debug!(blob = %id, error = %e, "an unused blob is left for the sweep");
            }
        });
    }
}

/// A blob streamed into its sink, with the MD5 of its bytes.
pub(crate) struct StreamedBlob {
    pub md5: [u8; 16],
    pub size: i64,
    pub chunks: i64,
    pub blob: UnusedBlob,
}

/// What the sealing side carries from one chunk to the next.
pub(crate) struct Progress {
    md5: Md5,
    sealer: BlobSealer,
}

enum Stage {
    /// No chunk under way.
    Idle(Progress),
    /// A task seals a chunk on a blocking thread, keeps it, then hands the progress back.
    Busy(JoinHandle<Result<Progress>>),
    /// A chunk's sealing or keeping failed (its error was returned).
    Failed,
}

/// Seals bytes as they are written and hands each sealed chunk to its sink: whole chunks are
/// sealed on a blocking thread and kept, one at a time, while the next fills, so at most two
/// chunks are held (and no thread waits on a slow sender between chunks). Dropped before
/// [`StreamSealer::finish`], it discards what it kept.
pub(crate) struct StreamSealer {
    filling: BytesMut,
    stage: Stage,
    blob: Option<UnusedBlob>,
}

impl StreamSealer {
    pub(crate) fn new(cipher: Arc<Cipher>, workspace_id: String, sink: Arc<dyn ChunkSink>) -> Self {
        StreamSealer {
            filling: BytesMut::with_capacity(CHUNK_BYTES),
            stage: Stage::Idle(Progress {
                md5: Md5::new(),
                sealer: BlobSealer::new(cipher, workspace_id),
            }),
            blob: Some(UnusedBlob {
                sink,
                id: new_id(),
                armed: true,
                writing: None,
            }),
        }
    }

    /// Takes the next bytes; waits only when a full chunk is ready and the one before is
    /// still being sealed or kept.
    pub(crate) async fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
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

    /// Seals and keeps what is left; returns the blob (still unused) and the MD5 of every
    /// byte written.
    pub(crate) async fn finish(mut self) -> Result<StreamedBlob> {
        let rest = std::mem::take(&mut self.filling).freeze();
        if !rest.is_empty() {
            self.seal_next(rest).await?;
        }
        let progress = self.progress().await?;
        let blob = self
            .blob
            .take()
            .ok_or_else(|| Error::Internal("a streamed blob was finished twice".into()))?;
        Ok(StreamedBlob {
            md5: progress.md5.finalize().into(),
            size: progress.sealer.size,
            chunks: progress.sealer.chunks,
            blob,
        })
    }

    async fn seal_next(&mut self, chunk: Bytes) -> Result<()> {
        let mut progress = self.progress().await?;
        let Some(blob) = &self.blob else {
            return Err(Error::Internal("a streamed blob was finished".into()));
        };
        let (sink, blob_id) = (blob.sink.clone(), blob.id.clone());
        self.stage = Stage::Busy(tokio::spawn(async move {
            let (progress, sealed) = tokio::task::spawn_blocking(move || {
                progress.md5.update(&chunk);
                let sealed = progress.sealer.seal(&chunk)?;
                Ok::<_, Error>((progress, sealed))
            })
            .await
            .map_err(|e| Error::Internal(format!("sealing a chunk failed: {e}")))??;
            sink.keep(&blob_id, sealed).await?;
            Ok(progress)
        }));
        Ok(())
    }

    /// The progress once the chunk under way (if any) is sealed and kept.
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

impl Drop for StreamSealer {
    fn drop(&mut self) {
        // A chunk still under way is awaited before the blob is discarded (else it could be
        // kept after the discard).
        if let (Some(blob), Stage::Busy(writing)) = (
            self.blob.as_mut(),
            std::mem::replace(&mut self.stage, Stage::Failed),
        ) {
            blob.writing = Some(writing);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use super::*;
    use crate::crypto::{Keyring, MasterKey};

    fn cipher() -> Arc<Cipher> {
        Arc::new(Cipher::fixed(Keyring::new(MasterKey::generate())))
    }

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Keeps chunks in memory, remembering what was discarded.
    #[derive(Default)]
    struct Kept {
        chunks: Mutex<Vec<(String, SealedChunk)>>,
        discarded: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl ChunkSink for Kept {
        async fn keep(&self, blob_id: &str, chunk: SealedChunk) -> Result<()> {
            self.chunks
                .lock()
                .unwrap()
                .push((blob_id.to_owned(), chunk));
            Ok(())
        }
        async fn discard(&self, blob_id: &str) -> Result<()> {
            self.chunks.lock().unwrap().retain(|(id, _)| id != blob_id);
            self.discarded.lock().unwrap().push(blob_id.to_owned());
            Ok(())
        }
    }

    #[tokio::test]
    async fn written_in_any_pieces_a_body_is_kept_as_the_chunks_a_whole_body_gets() {
        let cipher = cipher();
        for len in [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, 2 * CHUNK_BYTES + 12_345] {
            let plain = body(len);
            for piece in [1_000, 65_536, CHUNK_BYTES + 3] {
                let kept = Arc::new(Kept::default());
                let mut sealer = StreamSealer::new(cipher.clone(), "ws".into(), kept.clone());
                for part in plain.chunks(piece) {
                    sealer.write(part).await.unwrap();
                }
                let streamed = sealer.finish().await.unwrap();
                let whole = seal_whole(cipher.clone(), "ws".into(), Bytes::from(plain.clone()))
                    .await
                    .unwrap();
                assert_eq!(streamed.md5, <[u8; 16]>::from(Md5::digest(&plain)));
                assert_eq!(
                    (streamed.size, streamed.chunks),
                    (whole.size, whole.chunks.len() as i64)
                );
                let chunks = std::mem::take(&mut *kept.chunks.lock().unwrap());
                let sizes: Vec<_> = chunks.iter().map(|(_, c)| c.size).collect();
                let whole_sizes: Vec<_> = whole.chunks.iter().map(|c| c.size).collect();
                assert_eq!(sizes, whole_sizes, "len {len}, piece {piece}");
                let mut opened = Vec::new();
                for (seq, (blob_id, chunk)) in chunks.iter().enumerate() {
                    assert_eq!(
                        (blob_id.as_str(), chunk.seq),
                        (streamed.blob.id(), seq as i64)
                    );
                    let binding = SealedKind::S3Chunk.binding("ws", &chunk.id);
                    let size = usize::try_from(chunk.size).unwrap_or(0);
                    opened.extend_from_slice(&cipher.open(&chunk.sealed, binding, size).unwrap());
                }
                assert!(opened == plain, "len {len}, piece {piece}: bytes differ");
                streamed.blob.keep();
            }
        }
    }

    /// Waits until the spawned discard has run.
    async fn discarded(kept: &Kept) -> Vec<String> {
        for _ in 0..200 {
            let found = kept.discarded.lock().unwrap().clone();
            if !found.is_empty() {
                return found;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        Vec::new()
    }

    #[tokio::test]
    async fn a_blob_nothing_took_is_discarded_whole() {
        // Dropped while receiving: the chunk under way is kept first, then all of it goes.
        let kept = Arc::new(Kept::default());
        let mut sealer = StreamSealer::new(cipher(), "ws".into(), kept.clone());
        sealer.write(&body(3 * CHUNK_BYTES)).await.unwrap();
        drop(sealer);
        assert_eq!(discarded(&kept).await.len(), 1);
        assert!(kept.chunks.lock().unwrap().is_empty(), "every chunk went");

        // Finished but not kept by its user (a refused part): discarded too.
        let kept = Arc::new(Kept::default());
        let mut sealer = StreamSealer::new(cipher(), "ws".into(), kept.clone());
        sealer.write(&body(CHUNK_BYTES + 1)).await.unwrap();
        let streamed = sealer.finish().await.unwrap();
        let id = streamed.blob.id().to_owned();
        drop(streamed);
        assert_eq!(discarded(&kept).await, vec![id]);

        // Kept: nothing is discarded.
        let kept = Arc::new(Kept::default());
        let mut sealer = StreamSealer::new(cipher(), "ws".into(), kept.clone());
        sealer.write(&body(10)).await.unwrap();
        sealer.finish().await.unwrap().blob.keep();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(kept.discarded.lock().unwrap().is_empty());
        assert_eq!(kept.chunks.lock().unwrap().len(), 1);
    }
}
