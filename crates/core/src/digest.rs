//! A body's MD5 (an S3 object's ETag, a state version's identity) computed beside the body's
//! arrival: an S3 request body is hashed on a blocking thread while it is still being
//! received, so that the hash of a multi-megabyte checkpoint (MD5 runs at ~600 MB/s) mostly
//! overlaps the transfer instead of following it.

use bytes::Bytes;
use md5::{Digest, Md5};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// Bodies from this size on are hashed on a blocking thread rather than on the async worker
/// (below it the hash takes less than ~0.1 ms).
pub const THREADED_FROM: usize = 64 * 1024;

/// A body's MD5: known, being computed, or still to compute from the body.
#[derive(Debug, Default)]
pub enum BodyMd5 {
    #[default]
    FromBody,
    Known([u8; 16]),
    Pending(JoinHandle<[u8; 16]>),
}

impl BodyMd5 {
    /// Starts hashing `body` on a blocking thread when it is large and no MD5 is on its way,
    /// so that the caller can do other work with the body meanwhile.
    pub fn start(self, body: &Bytes) -> BodyMd5 {
        match self {
            BodyMd5::FromBody if body.len() >= THREADED_FROM => {
                let body = body.clone();
                BodyMd5::Pending(tokio::task::spawn_blocking(move || {
                    Md5::digest(&body).into()
                }))
            }
            other => other,
        }
    }

    /// The MD5 of `body` (which must be the body this digest was fed or started with).
    pub async fn resolve(self, body: &Bytes) -> Result<[u8; 16]> {
        match self.start(body) {
            BodyMd5::FromBody => Ok(Md5::digest(body).into()),
            BodyMd5::Known(digest) => Ok(digest),
            BodyMd5::Pending(hashing) => hashing
                .await
                .map_err(|e| Error::Internal(format!("hashing a body failed: {e}"))),
        }
    }
}

/// A body and its MD5, as a request delivers them to the services.
#[derive(Debug, Default)]
pub struct IncomingBody {
    pub bytes: Bytes,
    pub md5: BodyMd5,
}

impl IncomingBody {
    /// The body's hex MD5.
    pub async fn md5_hex(self) -> Result<(Bytes, String)> {
        let digest = self.md5.resolve(&self.bytes).await?;
        Ok((self.bytes, hex::encode(digest)))
    }
}

impl From<Bytes> for IncomingBody {
    fn from(bytes: Bytes) -> Self {
        IncomingBody {
            bytes,
            md5: BodyMd5::FromBody,
        }
    }
}

/// Hashes the pieces of a body on a blocking thread as they are fed, in order. The queue is
/// not bounded: a receiver never waits for the hasher, and when the body arrives faster than
/// MD5 goes (on loopback, or faster than ~5 Gbit/s) the pieces not yet hashed stay in memory
/// beside the body's copy, at most about half the body. Over slower links the hasher keeps
/// up and the queue stays empty.
pub struct Md5Stream {
    pieces: mpsc::UnboundedSender<Bytes>,
    hashing: JoinHandle<[u8; 16]>,
}

impl Md5Stream {
    pub fn start() -> Md5Stream {
        let (pieces, mut queue) = mpsc::unbounded_channel::<Bytes>();
        let hashing = tokio::task::spawn_blocking(move || {
            let mut md5 = Md5::new();
            while let Some(piece) = queue.blocking_recv() {
                md5.update(&piece);
            }
            md5.finalize().into()
        });
        Md5Stream { pieces, hashing }
    }

    /// Queues the next piece.
    pub fn feed(&self, piece: Bytes) -> Result<()> {
        self.pieces
            .send(piece)
            .map_err(|_| Error::Internal("the body's hasher stopped".into()))
    }

    /// No more pieces: the MD5 of all that was fed, once the hasher has caught up.
    pub fn finish(self) -> BodyMd5 {
        drop(self.pieces);
        BodyMd5::Pending(self.hashing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(body: &[u8]) -> [u8; 16] {
        Md5::digest(body).into()
    }

    #[tokio::test]
    async fn a_streamed_md5_is_the_md5_of_the_pieces_joined() {
        let body: Vec<u8> = (0..300_000_u32).map(|i| (i % 251) as u8).collect();
        let stream = Md5Stream::start();
        for piece in body.chunks(7_001) {
            stream
                .feed(Bytes::copy_from_slice(piece))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let joined = Bytes::from(body.clone());
        let digest = stream.finish().resolve(&joined).await;
        assert_eq!(digest.ok(), Some(expected(&body)));
    }

    #[tokio::test]
    async fn every_kind_of_digest_resolves_to_the_body_md5() {
        for size in [0, 10, THREADED_FROM, THREADED_FROM * 3] {
            let body = Bytes::from(vec![b'x'; size]);
            let want = expected(&body);
            assert_eq!(BodyMd5::FromBody.resolve(&body).await.ok(), Some(want));
            assert_eq!(BodyMd5::Known(want).resolve(&body).await.ok(), Some(want));
            let started = BodyMd5::FromBody.start(&body);
            assert_eq!(
                matches!(started, BodyMd5::Pending(_)),
                size >= THREADED_FROM,
                "size {size}"
            );
            assert_eq!(started.resolve(&body).await.ok(), Some(want));
        }
    }

    #[tokio::test]
    async fn an_empty_stream_is_the_md5_of_nothing() {
        let digest = Md5Stream::start().finish().resolve(&Bytes::new()).await;
        assert_eq!(
            digest.ok().map(hex::encode).as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
    }
}
