//! LOCK+UNLOCK throughput: concurrent workers, each on its own state, doing LOCK then UNLOCK
//! as fast as the server answers. Every binary and the database floor run in slices of
//! [`SLICE`], taking turns, so that load changes on the machine hit them alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use reqwest::{Client, Method};
use tokio::runtime::Runtime;

use crate::dbfloor::{DbFloor, DbRate};
use crate::http::{Plan, lock_info, turns};
use crate::latency::lock_request;
use crate::machine;
use crate::server::{self, Server};

/// One turn of a runner.
pub const SLICE: Duration = Duration::from_secs(1);

/// What some workers did against one server (summed over slices).
#[derive(Debug, Clone, Default)]
pub struct LockFigures {
    pub workers: usize,
    pub pairs: u64,
    pub elapsed: Duration,
    /// Pairs completed by each worker.
    pub per_worker: Vec<u64>,
    /// CPU time the server and this client used meanwhile.
    pub server_cpu: Duration,
    pub client_cpu: Duration,
    /// CPU-seconds of all the machine's CPUs busy meanwhile ÷ number of CPUs (any process:
    /// PostgreSQL, others' builds).
    pub machine_busy_secs: f64,
    /// Context switches of the server's threads meanwhile.
    pub server_switches: u64,
}

impl LockFigures {
    pub fn per_second(&self) -> f64 {
        self.pairs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Server context switches per HTTP request (a pair is two requests).
    pub fn switches_per_request(&self) -> f64 {
        self.server_switches as f64 / (2 * self.pairs.max(1)) as f64
    }

    /// Share of all CPUs busy meanwhile (0.0 to 1.0).
    pub fn machine_busy(&self) -> f64 {
        self.machine_busy_secs / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Pairs of the slowest and the fastest worker.
    pub fn min_max_worker(&self) -> (u64, u64) {
        let min = self.per_worker.iter().copied().min().unwrap_or(0);
        let max = self.per_worker.iter().copied().max().unwrap_or(0);
        (min, max)
    }

    /// Adds another slice's figures to these.
    fn absorb(&mut self, other: LockFigures) {
        self.workers = other.workers;
        self.pairs += other.pairs;
        self.elapsed += other.elapsed;
        if self.per_worker.len() < other.per_worker.len() {
            self.per_worker.resize(other.per_worker.len(), 0);
        }
        for (sum, n) in self.per_worker.iter_mut().zip(other.per_worker) {
            *sum += n;
        }
        self.server_cpu += other.server_cpu;
        self.client_cpu += other.client_cpu;
        self.machine_busy_secs += other.machine_busy_secs;
        self.server_switches += other.server_switches;
    }
}

/// LOCK+UNLOCK with one number of workers on every binary, and the database floor.
pub struct LockRun {
    pub workers: usize,
    /// Per binary, in the order given.
    pub bins: Vec<LockFigures>,
    /// The same statements from the database's own client, or why not.
    pub db: Result<DbRate, String>,
}

/// Warms every runner up, then gives each [`Plan::lock_time`] in slices, in turns.
pub fn throughput(
    rt: &Runtime,
    client: &Client,
    servers: &[Server],
    mut db: Option<&mut DbFloor>,
    workers: usize,
    plan: &Plan,
) -> Result<LockRun> {
    for s in servers {
        rt.block_on(lock_pairs(
            client,
            s,
            workers,
            plan.lock_warmup,
            Load::LockUnlock,
        ))?;
    }
    let mut db_total = match db.as_deref_mut() {
        Some(floor) => floor
            .warm_up(workers)
            .map(|()| DbRate::default())
            .map_err(|e| format!("{e:#}")),
        None => Err("no database floor".to_owned()),
    };
    let slices = (plan.lock_time.as_secs_f64() / SLICE.as_secs_f64())
        .round()
        .max(1.0) as usize;
    let runners = servers.len() + usize::from(db_total.is_ok());
    let mut bins = vec![LockFigures::default(); servers.len()];
    for slice in 0..slices {
        for runner in turns(slice, runners) {
            if let (Some(server), Some(sum)) = (servers.get(runner), bins.get_mut(runner)) {
                let figures =
                    rt.block_on(lock_pairs(client, server, workers, SLICE, Load::LockUnlock))?;
                sum.absorb(figures);
            } else if let (Some(floor), Ok(total)) = (db.as_deref_mut(), &mut db_total) {
                match floor.slice(workers, SLICE) {
                    Ok(rate) => total.absorb(rate),
                    Err(e) => {
                        eprintln!("  database floor failed: {e:#}");
                        db_total = Err(format!("{e:#}"));
                    }
                }
            }
        }
    }
    Ok(LockRun {
        workers,
        bins,
        db: db_total,
    })
}

/// What the concurrent workers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// LOCK then UNLOCK of the worker's own state.
    LockUnlock,
    /// Two `GET /healthz`: the HTTP floor for the same number of requests.
    Healthz,
}

/// `workers` clients, each on its own state, doing LOCK then UNLOCK (both must answer 200)
/// until `time` is up; or, with [`Load::Healthz`], two `GET /healthz` per pair.
pub async fn lock_pairs(
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
                    lock_request(&client, method, &url, &token, &info).await?;
                }
                pairs += 1;
            }
            anyhow::Ok(pairs)
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
        workers,
        pairs: per_worker.iter().sum(),
        elapsed,
        per_worker,
        server_cpu,
        client_cpu,
        machine_busy_secs: machine_busy * elapsed.as_secs_f64(),
        server_switches,
    })
}
