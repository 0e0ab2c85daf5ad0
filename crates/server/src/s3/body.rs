//! Request bodies: read up to a limit (whole, or passed on as they arrive), every checksum the
//! client gave verified (in a header or in an aws-chunked trailer), and response bodies
//! streamed a chunk at a time.

use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::HeaderMap;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::StreamingBlob;
use s3s::stream::ByteStream as _;
use s3s::{S3Error, S3ErrorCode, S3Result, TrailingHeaders, s3_error};
use statehouse_core::digest::{self, BodyMd5, IncomingBody, Md5Stream};
use statehouse_core::objects::ObjectMeta;
use statehouse_core::service::objects::ChunkReader;

/// The checksums a request may carry, by algorithm name (as stored) and header.
const ALGORITHMS: [(&str, &str); 5] = [
    ("crc32", "x-amz-checksum-crc32"),
    ("crc32c", "x-amz-checksum-crc32c"),
    ("crc64nvme", "x-amz-checksum-crc64nvme"),
    ("sha1", "x-amz-checksum-sha1"),
    ("sha256", "x-amz-checksum-sha256"),
];

/// What a client claims of a body: its checksums by algorithm, the algorithms its trailer
/// will carry, and `Content-MD5`.
#[derive(Debug, Default)]
pub struct Claims {
    given: Vec<(&'static str, String)>,
    trailed: Vec<&'static str>,
    md5: Option<String>,
}

impl Claims {
    pub fn from_headers(headers: &HeaderMap) -> Claims {
        let mut claims = Claims::default();
        for (name, header) in ALGORITHMS {
            if let Some(value) = headers.get(header).and_then(|v| v.to_str().ok()) {
                // Pulumi 3.256-3.257 sent this literal instead of a checksum: not a claim.
                if value != "UNSIGNED-PAYLOAD" {
                    claims.given.push((name, value.to_owned()));
                }
            }
        }
        if let Some(trailer) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
            for announced in trailer.split(',').map(str::trim) {
                if let Some((name, _)) = ALGORITHMS
                    .iter()
                    .find(|(_, h)| h.eq_ignore_ascii_case(announced))
                {
                    claims.trailed.push(name);
                }
            }
        }
        claims.md5 = headers
            .get("content-md5")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        claims
    }
}

/// The checksum fields of an answer, from `(algorithm, base64)` pairs as kept in
/// [`ObjectMeta::checksums`].
#[derive(Debug, Default)]
pub struct ChecksumFields {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

impl ChecksumFields {
    pub fn of(pairs: &[(String, String)]) -> Self {
        let find = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        ChecksumFields {
            crc32: find("crc32"),
            crc32c: find("crc32c"),
            crc64nvme: find("crc64nvme"),
            sha1: find("sha1"),
            sha256: find("sha256"),
        }
    }
}

/// Where a request body's pieces go as they arrive.
pub trait BodySink: Send {
    /// Before the first piece: the body's length, when the client announced it.
    fn expect(&mut self, _announced: Option<usize>) {}

    fn take(&mut self, piece: Bytes) -> impl Future<Output = S3Result<()>> + Send;
}

/// A body collected whole. A large body's MD5 is hashed on another thread while it arrives,
/// so that it is ready about when the body is (a checkpoint's then by the time its parse is).
#[derive(Default)]
struct Whole {
    all: BytesMut,
    md5: Option<Md5Stream>,
}

impl BodySink for Whole {
    fn expect(&mut self, announced: Option<usize>) {
        // One buffer of the announced size, each piece copied in and let go: holding the
        // pieces until the end would pin the connection's read buffers, about the body's
        // size again.
        self.all.reserve(announced.unwrap_or(0));
        if announced.is_none_or(|n| n >= digest::THREADED_FROM) {
            self.md5 = Some(Md5Stream::start());
        }
    }

    async fn take(&mut self, piece: Bytes) -> S3Result<()> {
        self.all.extend_from_slice(&piece);
        if let Some(md5) = &self.md5 {
            md5.feed(piece).map_err(internal)?;
        }
        Ok(())
    }
}

/// A body's verified claims.
pub struct Checked {
    /// The checksums verified, kept with the object.
    pub meta: ObjectMeta,
    /// The `Content-MD5` the client gave, checked by [`Checked::check_md5`] once the digest
    /// is known.
    content_md5: Option<String>,
}

impl Checked {
    pub fn claims_md5(&self) -> bool {
        self.content_md5.is_some()
    }

    /// Refuses the body if the client gave a `Content-MD5` other than `digest`.
    pub fn check_md5(&self, digest: [u8; 16]) -> S3Result<()> {
        let Some(claimed) = &self.content_md5 else {
            return Ok(());
        };
        if *claimed == STANDARD.encode(digest) {
            return Ok(());
        }
        let code = if STANDARD.decode(claimed).map(|d| d.len()) == Ok(16) {
            S3ErrorCode::BadDigest
        } else {
            S3ErrorCode::InvalidDigest
        };
        Err(S3Error::with_message(
            code,
            "the Content-MD5 you gave does not match the body: it was damaged on the way; nothing was stored",
        ))
    }
}

/// Reads a body whole (at most `limit` bytes) and verifies every claimed checksum; returns
/// the body with its MD5, and the verified checksums to keep with the object.
pub async fn read_verified(
    body: Option<StreamingBlob>,
    limit: usize,
    claims: Claims,
    trailers: Option<TrailingHeaders>,
) -> S3Result<(IncomingBody, ObjectMeta)> {
    let mut whole = Whole::default();
    let checked = read_checked(body, limit, claims, trailers, &mut whole).await?;
    let bytes = whole.all.freeze();
    let mut md5 = whole.md5.map_or(BodyMd5::FromBody, Md5Stream::finish);
    if checked.claims_md5() {
        let digest = md5.resolve(&bytes).await.map_err(internal)?;
        checked.check_md5(digest)?;
        md5 = BodyMd5::Known(digest);
    }
    Ok((IncomingBody { bytes, md5 }, checked.meta))
}

/// Passes a body (at most `limit` bytes) to `sink` as it arrives and verifies every claimed
/// checksum but `Content-MD5`, which the caller checks with [`Checked::check_md5`] before it
/// keeps anything.
pub async fn read_checked<S: BodySink>(
    body: Option<StreamingBlob>,
    limit: usize,
    claims: Claims,
    trailers: Option<TrailingHeaders>,
    sink: &mut S,
) -> S3Result<Checked> {
    let mut hasher = ChecksumHasher::default();
    for name in claims
        .given
        .iter()
        .map(|(n, _)| *n)
        .chain(claims.trailed.iter().copied())
    {
        match name {
            "crc32" => hasher.crc32 = Some(Crc32::new()),
            "crc32c" => hasher.crc32c = Some(Crc32c::new()),
            "crc64nvme" => hasher.crc64nvme = Some(Crc64Nvme::new()),
            "sha1" => hasher.sha1 = Some(Sha1::new()),
            _ => hasher.sha256 = Some(Sha256::new()),
        }
    }
    let too_large = || {
        S3Error::with_message(
            S3ErrorCode::EntityTooLarge,
            format!(
                "the body is larger than this server's limit of {limit} bytes (max_state_bytes); larger objects go as multipart uploads"
            ),
        )
    };
    if let Some(mut stream) = body {
        let announced = stream.remaining_length().exact();
        if announced.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        sink.expect(announced);
        let mut received = 0_usize;
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| {
                // A signed chunk whose signature does not match is a forged or damaged body.
                if e.to_string().contains("SignatureMismatch") {
                    return S3Error::with_message(
                        S3ErrorCode::SignatureDoesNotMatch,
                        "a chunk's signature does not match its bytes; nothing was stored",
                    );
                }
                S3Error::with_message(
                    S3ErrorCode::IncompleteBody,
                    format!("the request body could not be read: {e}"),
                )
            })?;
            received += piece.len();
            if received > limit {
                return Err(too_large());
            }
            hasher.update(&piece);
            sink.take(piece).await?;
        }
    }
    let computed = hasher.finalize();
    let mut claimed = claims.given;
    if !claims.trailed.is_empty() {
        let trailing = trailers.and_then(|t| t.take()).unwrap_or_default();
        for name in claims.trailed {
            let header = ALGORITHMS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, h)| *h);
            match trailing.get(header).and_then(|v| v.to_str().ok()) {
                Some(value) => claimed.push((name, value.to_owned())),
                None => {
                    return Err(s3_error!(
                        InvalidRequest,
                        "the trailer announced {header} but the body did not end with it"
                    ));
                }
            }
        }
    }
    let mut verified = ObjectMeta::default();
    for (name, value) in claimed {
        let actual = match name {
            "crc32" => computed.checksum_crc32.clone(),
            "crc32c" => computed.checksum_crc32c.clone(),
            "crc64nvme" => computed.checksum_crc64nvme.clone(),
            "sha1" => computed.checksum_sha1.clone(),
            _ => computed.checksum_sha256.clone(),
        };
        if actual.as_deref() != Some(value.as_str()) {
            return Err(S3Error::with_message(
                S3ErrorCode::BadDigest,
                format!(
                    "the x-amz-checksum-{name} you gave does not match the body: it was damaged on the way; nothing was stored"
                ),
            ));
        }
        verified.checksums.push((name.to_owned(), value));
    }
    Ok(Checked {
        meta: verified,
        content_md5: claims.md5,
    })
}

fn internal(e: statehouse_core::Error) -> S3Error {
    S3Error::with_message(S3ErrorCode::InternalError, e.to_string())
}

/// A blob's chunks as a response body, cut to `range` (byte offsets, end exclusive). A task
/// reads and decrypts one chunk ahead of the client.
pub fn chunk_stream(mut reader: ChunkReader, range: std::ops::Range<u64>) -> StreamingBlob {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        let mut offset = 0_u64;
        loop {
            let chunk = match reader.next_chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "reading an object's chunk failed");
                    let _ = tx
                        .send(Err(std::io::Error::other("reading the object failed")))
                        .await;
                    break;
                }
            };
            let len = chunk.len() as u64;
            let (start, end) = (offset, offset + len);
            offset = end;
            if end <= range.start {
                continue;
            }
            if start >= range.end {
                break;
            }
            let from = usize::try_from(range.start.saturating_sub(start)).unwrap_or(0);
            let to = usize::try_from(range.end.min(end) - start).unwrap_or(chunk.len());
            if tx.send(Ok(chunk.slice(from..to))).await.is_err() {
                break; // the client went away
            }
        }
    });
    StreamingBlob::wrap(Receiver(rx))
}

struct Receiver(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures::Stream for Receiver {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
