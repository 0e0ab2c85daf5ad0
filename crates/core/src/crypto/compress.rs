//! The compression half of sealing a body: the CPU-heavy half, which needs neither a key nor
//! the record it is bound to, so a write can run it while it still checks the body.

use std::io::Write;

use super::NONCE_LEN;
use crate::Error;

/// zstd level for state bodies: fast enough to keep pushes cheap, still ~10x on state JSON.
const ZSTD_LEVEL: i32 = 3;

/// A body compressed for [`super::Cipher::seal_compressed`], with room for the nonce in front
/// (so encryption happens in place, without another copy).
pub struct Compressed(pub(super) Vec<u8>);

/// zstd-compresses `plain`, streaming into the output buffer.
pub fn compress(plain: &[u8]) -> Result<Compressed, Error> {
    let failed = |e: std::io::Error| Error::Internal(format!("compression failed: {e}"));
    let mut out = Vec::with_capacity(NONCE_LEN + plain.len() / 8 + 64);
    out.resize(NONCE_LEN, 0);
    let mut encoder = zstd::stream::Encoder::new(out, ZSTD_LEVEL).map_err(failed)?;
    encoder.write_all(plain).map_err(failed)?;
    Ok(Compressed(encoder.finish().map_err(failed)?))
}
