//! Where a request's time goes: the CPU cost of each step statehouse runs on a state body,
//! measured in this process with statehouse's own code (`statehouse-core`), on a 1 MiB body of
//! each payload. Add them up per request kind to read the latency tables.

use std::time::{Duration, Instant};

use anyhow::Result;
use md5::{Digest, Md5};
use statehouse_core::crypto::{Cipher, Keyring, MasterKey};
use statehouse_core::statefile;

use crate::http::MB;
use crate::state::{Payload, StateTemplate};
use crate::stats;

/// The cost of each step on one payload.
pub struct Costs {
    pub payload: Payload,
    pub body: usize,
    pub sealed: usize,
    /// (step, median time per call)
    pub steps: Vec<(&'static str, Duration)>,
}

/// Runs `f` for about `budget` (at least 5 times, at most 200) and returns the median call.
fn time<R>(budget: Duration, mut f: impl FnMut() -> Result<R>) -> Result<Duration> {
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < 5 || (started.elapsed() < budget && samples.len() < 200) {
        let t = Instant::now();
        std::hint::black_box(f()?);
        samples.push(t.elapsed());
    }
    Ok(stats::median(&samples).unwrap_or_default())
}

pub fn measure(payload: Payload, quick: bool) -> Result<Costs> {
    let budget = Duration::from_millis(if quick { 100 } else { 400 });
    let body = StateTemplate::new(payload, MB, "components")?.body(1);
    let cipher = Cipher::fixed(Keyring::new(MasterKey::generate()));
    let binding =
        statehouse_core::sealed::SealedKind::State.binding("bench-state", "bench-version");
    let sealed = cipher.seal(&body, binding)?;
    let steps = vec![
        (
            "copy of the body (memcpy, reference)",
            time(budget, || Ok(body.to_vec()))?,
        ),
        ("MD5 of the body", time(budget, || Ok(Md5::digest(&body)))?),
        (
            "`statefile::inspect` (JSON check, serial, lineage)",
            time(budget, || Ok(statefile::inspect(&body)?))?,
        ),
        (
            "`Cipher::seal` (zstd level 3 + AES-256-GCM)",
            time(budget, || Ok(cipher.seal(&body, binding)?))?,
        ),
        (
            "`Cipher::open` (AES-256-GCM + zstd decompression)",
            time(budget, || Ok(cipher.open(&sealed, binding, body.len())?))?,
        ),
    ];
    Ok(Costs {
        payload,
        body: body.len(),
        sealed: sealed.ciphertext.len(),
        steps,
    })
}
