//! A state body checked and prepared for storing, before the write's transaction: its MD5
//! checked against what the client claims, what it says of itself and its resources (one
//! parse), and its compressed form. A Terraform/OpenTofu state ([`prepare`]) and a Pulumi
//! checkpoint ([`prepare_checkpoint`]) are prepared alike; only the parse differs.

use bytes::Bytes;

use crate::crypto::{Compressed, compress};
use crate::digest::BodyMd5;
use crate::statefile::StateMeta;
use crate::store::search::VersionResources;
use crate::{Error, Result, pulumi, search};

/// Bodies from this size on are prepared on blocking threads side by side: the parse, the
/// compression and the MD5 (see [`BodyMd5::start`]). A 1 MiB state costs ~10 ms of CPU, which would
/// otherwise stall an async worker (and every request waiting on it) and add up in the
/// write's latency.
const SIDE_BY_SIDE_FROM: usize = 64 * 1024;

pub(crate) struct StateBody {
    /// Hex MD5 of the body.
    pub md5: String,
    pub meta: StateMeta,
    pub resources: VersionResources,
    /// Unused when the write turns out to store nothing (an identical snapshot).
    pub compressed: Compressed,
}

/// Checks and prepares `body`. `claimed_md5` is the MD5 the client says it sent
/// (`Content-MD5`): a mismatch is reported before anything the parse found, since a damaged
/// body's parse error would mislead.
pub(crate) async fn prepare(body: &Bytes, claimed_md5: Option<&[u8]>) -> Result<StateBody> {
    prepare_with(body, claimed_md5, BodyMd5::FromBody, search::read_for_write).await
}

/// [`prepare`] for a Pulumi checkpoint as sent (plain, gzip or zstd: [`pulumi::inspect`]),
/// whose MD5 may already be on its way (`md5`). The body is stored as sent; what is read
/// from it is the decoded text's. `meta.lineage` is the stack name (`checkpoint.stack`), `meta.terraform_version` the Pulumi CLI's version
/// (`manifest.version`), `meta.serial` 0: the caller sets the serial (the version number).
/// `BadRequest` for a body that is not a checkpoint (see [`pulumi::inspect`]); a checkpoint
/// whose resources cannot be read is prepared as not indexed.
pub(crate) async fn prepare_checkpoint(
    body: &Bytes,
    claimed_md5: Option<&[u8]>,
    md5: BodyMd5,
) -> Result<StateBody> {
    prepare_with(body, claimed_md5, md5, read_checkpoint).await
}

fn read_checkpoint(body: &[u8]) -> Result<(StateMeta, VersionResources)> {
    let facts = pulumi::inspect(body)?;
    let meta = StateMeta {
        serial: 0,
        lineage: facts.stack,
        terraform_version: facts.client_version,
        client_encrypted: false,
    };
    Ok((meta, facts.resources))
}

async fn prepare_with(
    body: &Bytes,
    claimed_md5: Option<&[u8]>,
    md5: BodyMd5,
    parse: fn(&[u8]) -> Result<(StateMeta, VersionResources)>,
) -> Result<StateBody> {
    let (md5, compressed, parsed) = if body.len() < SIDE_BY_SIDE_FROM {
        (md5.resolve(body).await?, compress(body), parse(body))
    } else {
        // The MD5 (still under way when the body's arrival started it, else started here)
        // beside the compression and the parse.
        let md5 = md5.start(body);
        let (for_compression, for_parse) = (body.clone(), body.clone());
        let compressing = tokio::task::spawn_blocking(move || compress(&for_compression));
        let parsing = tokio::task::spawn_blocking(move || parse(&for_parse));
        let (md5, compressed, parsed) = tokio::join!(md5.resolve(body), compressing, parsing);
        let lost = |e: tokio::task::JoinError| {
            Error::Internal(format!("preparing the state body failed: {e}"))
        };
        (md5?, compressed.map_err(lost)?, parsed.map_err(lost)?)
    };
    if claimed_md5.is_some_and(|claimed| claimed != md5.as_slice()) {
        return Err(Error::BadRequest(
            "Content-MD5 does not match the body: it was damaged in transit; nothing was stored"
                .into(),
        ));
    }
    let (meta, resources) = parsed?;
    Ok(StateBody {
        md5: hex::encode(md5),
        meta,
        resources,
        compressed: compressed?,
    })
}
