//! Section 1: the server alone, driven by a Rust client over keep-alive connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::{Client, Method, StatusCode};
use tokio::runtime::Runtime;

use crate::floor::Floor;
use crate::machine;
use crate::server::{self, Memory, Server, Store};
use crate::state::{Payload, StateTemplate, content_md5};
use crate::stats::Summary;

pub const MB: usize = 1024 * 1024;

/// How much each measurement does.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub warmup: usize,
    pub gets: usize,
    pub posts: usize,
    pub lock_workers: usize,
    pub lock_time: Duration,
    pub lock_warmup: Duration,
    pub big_write: usize,
    /// What the 1 MB states are made of (the big write is measured with every payload).
    pub payload: Payload,
}

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
}

/// What section 1 measured on one store.
pub struct Figures {
    pub store: &'static str,
    pub healthz: Summary,
    /// The same transfers against a bare axum server holding the body in memory.
    pub floor_get: Summary,
    pub floor_post: Summary,
    pub get: Summary,
    pub get_bytes: usize,
    pub post: Summary,
    pub post_bytes: usize,
    /// LOCK and UNLOCK one at a time on one connection.
    pub lock_one: Summary,
    pub unlock_one: Summary,
    pub lock: LockFigures,
    /// The same workers sending `GET /healthz` instead (two per pair).
    pub lock_floor: LockFigures,
    pub memory: Vec<MemoryFigures>,
}

pub struct LockFigures {
    pub workers: usize,
    pub pairs: u64,
    pub elapsed: Duration,
    /// Pairs completed by the slowest and the fastest worker.
    pub min_worker: u64,
    pub max_worker: u64,
    /// CPU time the server and this client used meanwhile.
    pub server_cpu: Duration,
    pub client_cpu: Duration,
    /// Share of all the machine's CPUs busy meanwhile (any process: PostgreSQL, others' builds).
    pub machine_busy: f64,
    /// Context switches of the server's threads meanwhile.
    pub server_switches: u64,
}

impl LockFigures {
    /// Server context switches per HTTP request (a pair is two requests).
    pub fn switches_per_request(&self) -> f64 {
        self.server_switches as f64 / (2 * self.pairs.max(1)) as f64
    }
}

impl LockFigures {
    pub fn per_second(&self) -> f64 {
        self.pairs as f64 / self.elapsed.as_secs_f64()
    }
}

pub struct MemoryFigures {
    pub payload: Payload,
    pub body: usize,
    /// Before the write: current and peak.
    pub before: Memory,
    pub after_post: Memory,
    pub post_time: Duration,
    pub after_get: Memory,
    pub get_time: Duration,
}

impl MemoryFigures {
    /// Peak growth caused by the write, per byte of body.
    pub fn post_factor(&self) -> f64 {
        self.after_post.hwm.saturating_sub(self.before.rss) as f64 / self.body as f64
    }

    /// Peak growth over the start, after a GET of the same state, per byte of body.
    pub fn get_factor(&self) -> f64 {
        self.after_get.hwm.saturating_sub(self.before.rss) as f64 / self.body as f64
    }
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

/// Runs every server measurement on one store: a server for the latency and lock figures, a
/// fresh one for the memory figure.
pub fn run(rt: &Runtime, bin: &std::path::Path, store: &Store, plan: &Plan) -> Result<Figures> {
    let server = Server::start(rt, bin, store)?;
    let client = client()?;
    let latency = rt
        .block_on(latencies(&client, &server, plan))
        .with_context(|| server.log_text())?;
    eprintln!(
        "  [{}] latencies measured; LOCK+UNLOCK for {:?}",
        store.label(),
        plan.lock_time
    );
    rt.block_on(lock_pairs(
        &client,
        &server,
        plan.lock_workers,
        plan.lock_warmup,
        Load::LockUnlock,
    ))
    .with_context(|| server.log_text())?;
    let lock = rt
        .block_on(lock_pairs(
            &client,
            &server,
            plan.lock_workers,
            plan.lock_time,
            Load::LockUnlock,
        ))
        .with_context(|| server.log_text())?;
    let lock_floor = rt
        .block_on(lock_pairs(
            &client,
            &server,
            plan.lock_workers,
            plan.lock_time.min(Duration::from_secs(2)),
            Load::Healthz,
        ))
        .with_context(|| server.log_text())?;
    drop(server);

    let mut memory = Vec::new();
    for payload in [Payload::Resources, Payload::Random] {
        eprintln!(
            "  [{}] peak memory of one {} MB write of {payload:?} (fresh server)",
            store.label(),
            plan.big_write / MB
        );
        let fresh = Server::start(rt, bin, store)?;
        memory.push(
            rt.block_on(big_write(&fresh, payload, plan.big_write))
                .with_context(|| fresh.log_text())?,
        );
    }
    Ok(Figures {
        store: store.label(),
        healthz: latency.healthz,
        floor_get: latency.floor_get,
        floor_post: latency.floor_post,
        get: latency.get,
        get_bytes: latency.get_bytes,
        post: latency.post,
        post_bytes: latency.post_bytes,
        lock_one: latency.lock_one,
        unlock_one: latency.unlock_one,
        lock,
        lock_floor,
        memory,
    })
}

struct Latencies {
    healthz: Summary,
    floor_get: Summary,
    floor_post: Summary,
    get: Summary,
    get_bytes: usize,
    post: Summary,
    post_bytes: usize,
    lock_one: Summary,
    unlock_one: Summary,
}

async fn latencies(client: &Client, server: &Server, plan: &Plan) -> Result<Latencies> {
    let token = &server.token;

    // The HTTP floor: the cheapest route, no auth, no store.
    let healthz_url = format!("{}/healthz", server.url);
    let mut samples = Vec::with_capacity(plan.gets);
    for i in 0..plan.warmup + plan.gets {
        let started = Instant::now();
        let r = client.get(&healthz_url).send().await?;
        let status = r.status();
        let _ = r.bytes().await?;
        let took = started.elapsed();
        if status != StatusCode::OK {
            bail!("GET /healthz answered {status}");
        }
        if i >= plan.warmup {
            samples.push(took);
        }
    }
    let healthz = summary(&samples)?;

    // GET of a 1 MB state.
    let template = StateTemplate::new(plan.payload, MB, "get")?;
    let body = template.body(1);
    let get_bytes = body.len();

    // The floor: the same body from a bare axum server's memory, and POSTs it discards.
    let floor = Floor::start(body.clone())?;
    let mut samples = Vec::with_capacity(plan.gets);
    for i in 0..plan.warmup + plan.gets {
        let started = Instant::now();
        let r = client.get(&floor.url).send().await?;
        let got = r.bytes().await?;
        let took = started.elapsed();
        if got.len() != get_bytes {
            bail!("the floor server sent {} bytes", got.len());
        }
        if i >= plan.warmup {
            samples.push(took);
        }
    }
    let floor_get = summary(&samples)?;
    let mut samples = Vec::with_capacity(plan.posts);
    for i in 0..plan.warmup + plan.posts {
        let took = post_state(client, &floor.url, "floor", body.clone()).await?;
        if i >= plan.warmup {
            samples.push(took);
        }
    }
    let floor_post = summary(&samples)?;
    drop(floor);

    let get_url = server.tf_address("bench/get-1mb");
    post_state(client, &get_url, token, body).await?;
    let mut samples = Vec::with_capacity(plan.gets);
    for i in 0..plan.warmup + plan.gets {
        let started = Instant::now();
        let r = client.get(&get_url).bearer_auth(token).send().await?;
        let status = r.status();
        let got = r.bytes().await?;
        let took = started.elapsed();
        if status != StatusCode::OK || got.len() != get_bytes {
            bail!(
                "GET {get_url} answered {status} with {} bytes, expected 200 with {get_bytes}",
                got.len()
            );
        }
        if i >= plan.warmup {
            samples.push(took);
        }
    }
    let get = summary(&samples)?;

    // POSTs of 1 MB states with increasing serials; each body is built before the clock starts.
    let template = StateTemplate::new(plan.payload, MB, "post")?;
    let post_url = server.tf_address("bench/post-1mb");
    let mut samples = Vec::with_capacity(plan.posts);
    let mut post_bytes = 0;
    for i in 0..plan.warmup + plan.posts {
        let body = template.body(i as u64 + 1);
        post_bytes = body.len();
        let took = post_state(client, &post_url, token, body).await?;
        if i >= plan.warmup {
            samples.push(took);
        }
    }
    let post = summary(&samples)?;

    // LOCK then UNLOCK, one request at a time.
    let (lock, unlock) = (Method::from_bytes(b"LOCK")?, Method::from_bytes(b"UNLOCK")?);
    let lock_url = server.tf_address("bench/lock-sequential");
    let info = lock_info(&uuid::Uuid::new_v4().to_string());
    let (mut locks, mut unlocks) = (Vec::new(), Vec::new());
    for i in 0..plan.warmup + plan.gets {
        for (method, samples) in [(&lock, &mut locks), (&unlock, &mut unlocks)] {
            let started = Instant::now();
            let r = client
                .request(method.clone(), &lock_url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(info.clone())
                .send()
                .await?;
            let status = r.status();
            let text = r.bytes().await?;
            let took = started.elapsed();
            if status != StatusCode::OK {
                bail!(
                    "{method} {lock_url} answered {status}: {}",
                    String::from_utf8_lossy(&text)
                );
            }
            if i >= plan.warmup {
                samples.push(took);
            }
        }
    }
    let lock_one = summary(&locks)?;
    let unlock_one = summary(&unlocks)?;
    Ok(Latencies {
        lock_one,
        unlock_one,
        healthz,
        floor_get,
        floor_post,
        get,
        get_bytes,
        post,
        post_bytes,
    })
}

fn summary(samples: &[Duration]) -> Result<Summary> {
    Summary::of(samples).context("no samples")
}

/// POSTs a state as Terraform does (Content-MD5, JSON); the time from sending to the end of
/// the response. The MD5 is computed before the clock starts.
async fn post_state(client: &Client, url: &str, token: &str, body: Vec<u8>) -> Result<Duration> {
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

/// What the concurrent workers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// LOCK then UNLOCK of the worker's own state.
    LockUnlock,
    /// Two `GET /healthz`: the HTTP floor for the same number of requests.
    Healthz,
}

/// `workers` clients, each on its own state, doing LOCK then UNLOCK (both must answer 200)
/// until `time` is up; or, with [`Load::Healthz`], two `GET /healthz` per pair.
async fn lock_pairs(
    client: &Client,
    server: &Server,
    workers: usize,
    time: Duration,
    load: Load,
) -> Result<LockFigures> {
    let (lock, unlock) = match load {
        Load::LockUnlock => (Method::from_bytes(b"LOCK")?, Method::from_bytes(b"UNLOCK")?),
        Load::Healthz => (Method::GET, Method::GET),
    };
    let token: Arc<str> = server.token.as_str().into();
    let server_pid = server.pid().to_string();
    let server_cpu = server::cpu_time(&server_pid)?;
    let client_cpu = server::cpu_time("self")?;
    let machine = machine::cpu_counters()?;
    let switches = server::context_switches(server.pid())?;
    let started = Instant::now();
    let deadline = started + time;
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let url = match load {
            Load::LockUnlock => server.tf_address(&format!("bench/lock-{w}")),
            Load::Healthz => format!("{}/healthz", server.url),
        };
        let info = lock_info(&uuid::Uuid::new_v4().to_string());
        let (client, token, lock, unlock) =
            (client.clone(), token.clone(), lock.clone(), unlock.clone());
        tasks.push(tokio::spawn(async move {
            let mut pairs = 0u64;
            while Instant::now() < deadline {
                for method in [&lock, &unlock] {
                    let r = client
                        .request(method.clone(), &url)
                        .bearer_auth(&*token)
                        .header("content-type", "application/json")
                        .body(info.clone())
                        .send()
                        .await?;
                    let status = r.status();
                    let text = r.bytes().await?;
                    if status != StatusCode::OK {
                        bail!(
                            "{method} {url} answered {status}: {}",
                            String::from_utf8_lossy(&text)
                        );
                    }
                }
                pairs += 1;
            }
            Ok(pairs)
        }));
    }
    let per_worker: Vec<u64> = futures::future::try_join_all(tasks)
        .await?
        .into_iter()
        .collect::<Result<_>>()?;
    let elapsed = started.elapsed();
    let server_cpu = server::cpu_time(&server_pid)?.saturating_sub(server_cpu);
    let client_cpu = server::cpu_time("self")?.saturating_sub(client_cpu);
    let machine_busy = machine::busy_since(machine)?;
    let server_switches = server::context_switches(server.pid())?.saturating_sub(switches);
    Ok(LockFigures {
        server_switches,
        machine_busy,
        workers,
        server_cpu,
        client_cpu,
        pairs: per_worker.iter().sum(),
        elapsed,
        min_worker: per_worker.iter().copied().min().unwrap_or(0),
        max_worker: per_worker.iter().copied().max().unwrap_or(0),
    })
}

/// The LockInfo body Terraform 1.0.3 sends.
fn lock_info(id: &str) -> String {
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

/// One big POST on a fresh server, with the process's memory before and after; then a GET.
async fn big_write(server: &Server, payload: Payload, size: usize) -> Result<MemoryFigures> {
    let client = client()?;
    let template = StateTemplate::new(payload, size, "big")?;
    let body = template.body(1);
    let body_len = body.len();
    drop(template);
    let url = server.tf_address("bench/big");
    let before = server::memory(server.pid())?;
    let post_time = post_state(&client, &url, &server.token, body).await?;
    let after_post = server::memory(server.pid())?;

    let started = Instant::now();
    let r = client.get(&url).bearer_auth(&server.token).send().await?;
    let status = r.status();
    let got = r.bytes().await?;
    let get_time = started.elapsed();
    if status != StatusCode::OK || got.len() != body_len {
        bail!(
            "GET {url} answered {status} with {} bytes, expected {body_len}",
            got.len()
        );
    }
    drop(got);
    let after_get = server::memory(server.pid())?;
    Ok(MemoryFigures {
        payload,
        body: body_len,
        before,
        after_post,
        post_time,
        after_get,
        get_time,
    })
}
