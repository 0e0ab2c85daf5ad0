//! A checkpoint body as Pulumi stored it: plain JSON, gzip (`.json.gz`) or zstd (`.json.zst`).
//! The format is told by the magic bytes, never by the object's name, and what a compressed
//! body expands to is capped so that a small upload cannot make the server allocate gigabytes.

use std::borrow::Cow;
use std::io::Read;

use crate::{Error, Result};

/// Largest checkpoint statehouse expands a compressed body to. Real checkpoints of thousands
/// of resources are tens of MB; a body that expands beyond this is refused.
pub const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How a body is encoded, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Gzip,
    Zstd,
}

impl Encoding {
    pub fn of(body: &[u8]) -> Encoding {
        if body.starts_with(&GZIP_MAGIC) {
            Encoding::Gzip
        } else if body.starts_with(&ZSTD_MAGIC) {
            Encoding::Zstd
        } else {
            Encoding::Plain
        }
    }
}

/// The body's JSON text: gunzipped or un-zstd'd when its magic bytes say so, else the body
/// itself (borrowed). A body that does not decompress, or expands beyond
/// [`MAX_DECODED_BYTES`], is a `BadRequest`.
pub fn decode(body: &[u8]) -> Result<Cow<'_, [u8]>> {
    decode_capped(body, MAX_DECODED_BYTES)
}

pub(crate) fn decode_capped(body: &[u8], cap: u64) -> Result<Cow<'_, [u8]>> {
    match Encoding::of(body) {
        Encoding::Plain => Ok(Cow::Borrowed(body)),
        // Go's gzip writer makes one member; several (concatenated files) are read as one.
        Encoding::Gzip => read_capped(flate2::read::MultiGzDecoder::new(body), "gzip", cap),
        Encoding::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(body)
                .map_err(|e| Error::BadRequest(format!("checkpoint is not valid zstd: {e}")))?;
            read_capped(decoder, "zstd", cap)
        }
    }
}

fn read_capped(reader: impl Read, format: &str, cap: u64) -> Result<Cow<'static, [u8]>> {
    let mut out = Vec::new();
    // One byte past the cap tells "exactly at the cap" from "beyond it".
    reader
        .take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Error::BadRequest(format!("checkpoint is not valid {format}: {e}")))?;
    if out.len() as u64 > cap {
        return Err(Error::BadRequest(format!(
            "checkpoint expands beyond {} MiB when {format}-decompressed: statehouse does not read it",
            cap / (1024 * 1024)
        )));
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io::Write;

    use super::*;

    pub(crate) fn gzip(text: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn plain_bodies_are_borrowed() {
        let body = br#"{"version":3}"#;
        assert!(matches!(decode(body).unwrap(), Cow::Borrowed(b) if b == body));
        assert_eq!(Encoding::of(b""), Encoding::Plain);
    }

    #[test]
    fn gzip_and_zstd_are_told_by_magic_bytes() {
        let text = br#"{"version":3,"checkpoint":{"stack":"organization/p/s"}}"#;
        let gz = gzip(text);
        assert_eq!(Encoding::of(&gz), Encoding::Gzip);
        assert_eq!(&*decode(&gz).unwrap(), text);
        let zst = zstd::encode_all(&text[..], 3).unwrap();
        assert_eq!(Encoding::of(&zst), Encoding::Zstd);
        assert_eq!(&*decode(&zst).unwrap(), text);
    }

    #[test]
    fn bombs_and_damaged_streams_are_refused() {
        // 64 MiB of zeros gzips to ~64 KiB; with a 1 MiB cap it is a bomb.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..64 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 1024 * 1024);
        match decode_capped(&bomb, 1024 * 1024) {
            Err(Error::BadRequest(m)) => assert!(m.contains("expands beyond 1 MiB"), "{m}"),
            other => panic!("expected BadRequest, got {other:?}"),
        }
        let zst = zstd::encode_all(&zeros[..], 3).unwrap();
        assert!(matches!(
            decode_capped(&zst, 1024),
            Err(Error::BadRequest(m)) if m.contains("zstd")
        ));
        // Exactly at the cap is accepted.
        assert_eq!(
            decode_capped(&zst, zeros.len() as u64).unwrap().len(),
            zeros.len()
        );
        let mut truncated = gzip(b"{\"version\":3}");
        truncated.truncate(12);
        assert!(matches!(
            decode(&truncated),
            Err(Error::BadRequest(m)) if m.contains("not valid gzip")
        ));
        assert!(matches!(
            decode(&[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff]),
            Err(Error::BadRequest(m)) if m.contains("not valid zstd")
        ));
    }
}
