//! Section 1: the server alone, driven by a Rust client over keep-alive connections.
//!
//! With a baseline binary (`--baseline`), every measurement runs with both binaries, each on
//! its own fresh store of the same kind, taking turns (request by request for latencies, slice
//! by slice for throughput) so that load changes on the machine hit them alike.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::{Client, StatusCode};
use tokio::runtime::Runtime;

use crate::dbfloor::DbFloor;
use crate::latency::{self, BinLatencies};
use crate::locks::{self, LockFigures, LockRun};
use crate::memory::{self, MemoryFigures};
use crate::server::{Server, Store};
use crate::state::{Payload, content_md5};
use crate::stats::Summary;

pub const MB: usize = 1024 * 1024;

/// How much each measurement does.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub warmup: usize,
    pub gets: usize,
    pub posts: usize,
    /// Concurrent clients of the main LOCK+UNLOCK measurement (also measured with
    /// [`PAIR_WORKERS`]).
    pub lock_workers: usize,
    /// Measured time per runner and worker count, in [`locks::SLICE`]s taken in turns.
    pub lock_time: Duration,
    pub lock_warmup: Duration,
    pub big_write: usize,
    /// What the 1 MB states are made of (the big write is measured with every payload).
    pub payload: Payload,
}

/// The small LOCK+UNLOCK measurement: two concurrent connections.
pub const PAIR_WORKERS: usize = 2;

impl Plan {
    pub fn new(quick: bool) -> Plan {
        Plan {
            warmup: if quick { 20 } else { 50 },
            gets: if quick { 150 } else { 500 },
            posts: if quick { 80 } else { 300 },
            lock_workers: 8,
            lock_time: Duration::from_secs(if quick { 2 } else { 5 }),
            lock_warmup: Duration::from_millis(if quick { 300 } else { 1000 }),
            big_write: 50 * MB,
            payload: Payload::Resources,
        }
    }

    /// The LOCK+UNLOCK worker counts, smallest first.
    pub fn worker_counts(&self) -> Vec<usize> {
        let mut counts = vec![PAIR_WORKERS, self.lock_workers];
        counts.sort_unstable();
        counts.dedup();
        counts
    }
}

/// A statehouse binary measured: the one under test first, then the baseline.
#[derive(Debug, Clone)]
pub struct Binary {
    /// `statehouse` or `baseline`, as the report's columns say.
    pub role: &'static str,
    pub path: PathBuf,
}

/// What section 1 measured on one store.
pub struct Figures {
    pub store: &'static str,
    /// `GET /healthz` of the binary under test: the HTTP floor.
    pub healthz: Summary,
    /// The same transfers against the static floor server holding the body in memory.
    pub floor_get: Summary,
    pub floor_post: Summary,
    pub get_bytes: usize,
    pub post_bytes: usize,
    /// Per binary, in the order given (the one under test first).
    pub bins: Vec<BinFigures>,
    /// LOCK+UNLOCK per worker count, smallest first.
    pub locks: Vec<LockRun>,
    /// The binary under test's workers sending `GET /healthz` instead (two per pair).
    pub lock_floor: LockFigures,
    /// How the database floor was measured (or why it was not).
    pub db_method: String,
}

/// One binary's figures on one store.
pub struct BinFigures {
    pub binary: Binary,
    pub latency: BinLatencies,
    pub memory: Vec<MemoryFigures>,
}

/// A client with keep-alive connections, no proxy, no timeouts short enough to matter.
pub fn client() -> Result<Client> {
    Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(300))
        .build()
        .context("building the HTTP client")
}

/// Runs every server measurement on one store with every binary: one server each for the
/// latency and lock figures, the database floor on a store the first binary created, and a
/// fresh server each for the memory figure.
pub fn run(rt: &Runtime, bins: &[Binary], store: &Store, plan: &Plan) -> Result<Figures> {
    let label = store.label();
    let Some(under_test) = bins.first() else {
        bail!("no statehouse binary to measure");
    };
    let client = client()?;
    let mut servers = Vec::with_capacity(bins.len());
    for b in bins {
        servers.push(Server::start(rt, &b.path, store)?);
    }
    let lat = rt
        .block_on(latency::measure(&client, &servers, plan))
        .with_context(|| logs(&servers))?;

    eprintln!("  [{label}] latencies measured; preparing the database floor");
    let max_workers = plan.worker_counts().into_iter().max().unwrap_or(1);
    let mut db = match DbFloor::prepare(rt, &under_test.path, store, max_workers) {
        Ok(db) => Ok(db),
        Err(e) => {
            eprintln!("  [{label}] no database floor: {e:#}");
            Err(format!("{e:#}"))
        }
    };
    let db_method = match &db {
        Ok(db) => db.method(),
        Err(e) => format!("not measured: {e}"),
    };

    let mut lock_runs = Vec::new();
    for workers in plan.worker_counts() {
        eprintln!(
            "  [{label}] LOCK+UNLOCK, {workers} workers, {:?} per runner",
            plan.lock_time
        );
        let run = locks::throughput(rt, &client, &servers, db.as_mut().ok(), workers, plan)
            .with_context(|| logs(&servers))?;
        lock_runs.push(run);
    }
    drop(db);
    let first = servers.first().context("no server")?;
    let lock_floor = rt
        .block_on(locks::lock_pairs(
            &client,
            first,
            plan.lock_workers,
            plan.lock_time.min(Duration::from_secs(2)),
            locks::Load::Healthz,
        ))
        .with_context(|| first.log_text())?;
    drop(servers);

    let mut memory: Vec<Vec<MemoryFigures>> = bins.iter().map(|_| Vec::new()).collect();
    for (round, payload) in [Payload::Resources, Payload::Random]
        .into_iter()
        .enumerate()
    {
        for b in turns(round, bins.len()) {
            eprintln!(
                "  [{label}] peak memory of one {} MB write of {payload:?}, {} (fresh server)",
                plan.big_write / MB,
                bins[b].role
            );
            let fresh = Server::start(rt, &bins[b].path, store)?;
            memory[b].push(
                rt.block_on(memory::big_write(&fresh, payload, plan.big_write))
                    .with_context(|| fresh.log_text())?,
            );
        }
    }

    let bins = bins
        .iter()
        .zip(lat.bins)
        .zip(memory)
        .map(|((binary, latency), memory)| BinFigures {
            binary: binary.clone(),
            latency,
            memory,
        })
        .collect();
    Ok(Figures {
        store: label,
        healthz: lat.healthz,
        floor_get: lat.floor_get,
        floor_post: lat.floor_post,
        get_bytes: lat.get_bytes,
        post_bytes: lat.post_bytes,
        bins,
        locks: lock_runs,
        lock_floor,
        db_method,
    })
}

/// The order in which `n` runners take their turn in round `round`: rotated by one each round,
/// so that none is always first.
pub fn turns(round: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |k| (round + k) % n)
}

fn logs(servers: &[Server]) -> String {
    servers
        .iter()
        .map(Server::log_text)
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn summary(samples: &[Duration]) -> Result<Summary> {
    Summary::of(samples).context("no samples")
}

/// POSTs a state as Terraform does (Content-MD5, JSON); the time from sending to the end of
/// the response. The MD5 is computed before the clock starts.
pub async fn post_state(
    client: &Client,
    url: &str,
    token: &str,
    body: Vec<u8>,
) -> Result<Duration> {
    let md5 = content_md5(&body);
    let started = Instant::now();
    let r = client
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("content-md5", md5)
        .body(body)
        .send()
        .await?;
    let status = r.status();
    let text = r.bytes().await?;
    let took = started.elapsed();
    if !status.is_success() {
        bail!(
            "POST {url} answered {status}: {}",
            String::from_utf8_lossy(&text)
        );
    }
    Ok(took)
}

/// A GET of `expected` bytes; the time from sending to the end of the body.
pub async fn get_timed(
    client: &Client,
    url: &str,
    token: Option<&str>,
    expected: usize,
) -> Result<Duration> {
    let started = Instant::now();
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await?;
    let status = r.status();
    let got = r.bytes().await?;
    let took = started.elapsed();
    if status != StatusCode::OK || got.len() != expected {
        bail!(
            "GET {url} answered {status} with {} bytes, expected 200 with {expected}",
            got.len()
        );
    }
    Ok(took)
}

/// The LockInfo body Terraform 1.0.3 sends.
pub fn lock_info(id: &str) -> String {
    serde_json::json!({
        "ID": id,
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": "bench",
        "Version": "1.0.3",
        "Created": "2024-01-01T00:00:00.000000000Z",
        "Path": "",
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runner_goes_first_in_turn() {
        let rounds: Vec<Vec<usize>> = (0..3).map(|r| turns(r, 3).collect()).collect();
        assert_eq!(rounds, [[0, 1, 2], [1, 2, 0], [2, 0, 1]]);
        assert_eq!(Plan::new(true).worker_counts(), [2, 8]);
        let one = Plan {
            lock_workers: 2,
            ..Plan::new(true)
        };
        assert_eq!(one.worker_counts(), [2]);
    }
}
