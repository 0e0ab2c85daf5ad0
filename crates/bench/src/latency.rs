//! Latencies of single requests, one at a time: the static floor server and every binary take
//! turns request by request (the order rotating each round), so that load changes on the
//! machine hit them alike.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::{Client, Method, StatusCode};

use crate::floor::Floor;
use crate::http::{MB, Plan, get_timed, lock_info, post_state, summary, turns};
use crate::server::Server;
use crate::state::StateTemplate;
use crate::stats::Summary;

/// The latencies of one store's servers.
pub struct Latencies {
    /// `GET /healthz` of the first server: the HTTP floor.
    pub healthz: Summary,
    /// The static floor server: GET of the same bytes from memory, POST read and discarded.
    pub floor_get: Summary,
    pub floor_post: Summary,
    pub get_bytes: usize,
    pub post_bytes: usize,
    /// Per server, in the order given.
    pub bins: Vec<BinLatencies>,
}

/// One binary's latencies.
pub struct BinLatencies {
    pub get: Summary,
    pub post: Summary,
    /// LOCK and UNLOCK one at a time on one connection.
    pub lock_one: Summary,
    pub unlock_one: Summary,
}

/// Samples after the warm-up, per runner.
struct Samples {
    warmup: usize,
    runs: Vec<Vec<Duration>>,
}

impl Samples {
    fn new(warmup: usize, runners: usize) -> Samples {
        Samples {
            warmup,
            runs: vec![Vec::new(); runners],
        }
    }

    fn push(&mut self, round: usize, runner: usize, took: Duration) {
        if round >= self.warmup
            && let Some(run) = self.runs.get_mut(runner)
        {
            run.push(took);
        }
    }

    fn summaries(&self) -> Result<Vec<Summary>> {
        self.runs.iter().map(|r| summary(r)).collect()
    }
}

/// Measures every latency on `servers` (and the static floor), taking turns.
pub async fn measure(client: &Client, servers: &[Server], plan: &Plan) -> Result<Latencies> {
    let Some(first) = servers.first() else {
        bail!("no server to measure");
    };
    let rounds = plan.warmup + plan.gets;

    // The HTTP floor: the cheapest route, no auth, no store.
    let healthz_url = format!("{}/healthz", first.url);
    let mut samples = Samples::new(plan.warmup, 1);
    for round in 0..rounds {
        let started = Instant::now();
        let r = client.get(&healthz_url).send().await?;
        let status = r.status();
        let _ = r.bytes().await?;
        samples.push(round, 0, started.elapsed());
        if status != StatusCode::OK {
            bail!("GET /healthz answered {status}");
        }
    }
    let (healthz, _) = first_and_rest(samples.summaries()?)?;

    // GET of a 1 MB state: runner 0 is the static floor, runner 1 + k server k.
    let template = StateTemplate::new(plan.payload, MB, "get")?;
    let body = template.body(1);
    let get_bytes = body.len();
    let floor = Floor::start(body.clone())?;
    let get_url: Vec<String> = servers
        .iter()
        .map(|s| s.tf_address("bench/get-1mb"))
        .collect();
    for (s, url) in servers.iter().zip(&get_url) {
        post_state(client, url, &s.token, body.clone()).await?;
    }
    let mut samples = Samples::new(plan.warmup, servers.len() + 1);
    for round in 0..rounds {
        for runner in turns(round, servers.len() + 1) {
            let took = match runner.checked_sub(1) {
                None => get_timed(client, &floor.url, None, get_bytes).await?,
                Some(k) => {
                    get_timed(client, &get_url[k], Some(&servers[k].token), get_bytes).await?
                }
            };
            samples.push(round, runner, took);
        }
    }
    let (floor_get, gets) = first_and_rest(samples.summaries()?)?;

    // POSTs of 1 MB states with increasing serials; each body is built before the clock starts.
    let template = StateTemplate::new(plan.payload, MB, "post")?;
    let post_url: Vec<String> = servers
        .iter()
        .map(|s| s.tf_address("bench/post-1mb"))
        .collect();
    let mut post_bytes = 0;
    let rounds = plan.warmup + plan.posts;
    let mut samples = Samples::new(plan.warmup, servers.len() + 1);
    for round in 0..rounds {
        for runner in turns(round, servers.len() + 1) {
            let body = template.body(round as u64 + 1);
            post_bytes = body.len();
            let took = match runner.checked_sub(1) {
                None => post_state(client, &floor.url, "floor", body).await?,
                Some(k) => post_state(client, &post_url[k], &servers[k].token, body).await?,
            };
            samples.push(round, runner, took);
        }
    }
    drop(floor);
    let (floor_post, posts) = first_and_rest(samples.summaries()?)?;

    // LOCK then UNLOCK, one request at a time.
    let (lock, unlock) = (Method::from_bytes(b"LOCK")?, Method::from_bytes(b"UNLOCK")?);
    let lock_url: Vec<String> = servers
        .iter()
        .map(|s| s.tf_address("bench/lock-sequential"))
        .collect();
    let info = lock_info(&uuid::Uuid::new_v4().to_string());
    let rounds = plan.warmup + plan.gets;
    let mut locks = Samples::new(plan.warmup, servers.len());
    let mut unlocks = Samples::new(plan.warmup, servers.len());
    for round in 0..rounds {
        for k in turns(round, servers.len()) {
            for (method, samples) in [(&lock, &mut locks), (&unlock, &mut unlocks)] {
                let took =
                    lock_request(client, method, &lock_url[k], &servers[k].token, &info).await?;
                samples.push(round, k, took);
            }
        }
    }

    let bins = gets
        .into_iter()
        .zip(posts)
        .zip(locks.summaries()?.into_iter().zip(unlocks.summaries()?))
        .map(|((get, post), (lock_one, unlock_one))| BinLatencies {
            get,
            post,
            lock_one,
            unlock_one,
        })
        .collect();
    Ok(Latencies {
        healthz,
        floor_get,
        floor_post,
        get_bytes,
        post_bytes,
        bins,
    })
}

fn first_and_rest(summaries: Vec<Summary>) -> Result<(Summary, Vec<Summary>)> {
    let mut all = summaries.into_iter();
    let first = all.next().context("no samples")?;
    Ok((first, all.collect()))
}

/// One LOCK or UNLOCK with a LockInfo body that must answer 200; its time.
pub async fn lock_request(
    client: &Client,
    method: &Method,
    url: &str,
    token: &str,
    info: &str,
) -> Result<Duration> {
    let started = Instant::now();
    let r = client
        .request(method.clone(), url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(info.to_owned())
        .send()
        .await?;
    let status = r.status();
    let text = r.bytes().await?;
    let took = started.elapsed();
    if status != StatusCode::OK {
        bail!(
            "{method} {url} answered {status}: {}",
            String::from_utf8_lossy(&text)
        );
    }
    Ok(took)
}
