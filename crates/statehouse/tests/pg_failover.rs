//! PostgreSQL high availability, on two real PostgreSQL clusters in streaming replication
//! (`pg_basebackup -R`):
//!
//! - a multi-host URL with `target_session_attrs=read-write` (standby listed first): two
//!   statehouse processes write to the primary (and a real Terraform applies again and again); the primary stops and the standby is promoted while Terraform-style
//!   clients write and lock; statehouse moves to the new primary without a restart; requests in
//!   the switch get 503 with `Retry-After` (never a 500); no acknowledged write is lost; every
//!   version and the audit chain are intact afterwards. The figures are printed (BENCHMARKS.md
//!   quotes them).
//! - `postgres.read_url`: listings go to the standby while it is within `read_max_lag`, a
//!   client reads its own writes, and a standby whose replay is paused is not read once it
//!   lags beyond the bound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::pg_cluster::Cluster;
use common::prometheus::scrape;
use common::ui::{admin_get, version_serials};
use common::{Server, Store, Terraform, skip_e2e};

/// Writers, each on a state of its own, like concurrent `terraform apply`s.
const WRITERS: usize = 4;

fn state_body(serial: i64, lineage: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": 4, "terraform_version": "1.0.3", "serial": serial, "lineage": lineage,
        "outputs": {"serial": {"value": serial, "type": "number"}}, "resources": []
    }))
    .unwrap()
}

/// What the writers saw.
#[derive(Default)]
struct Seen {
    /// Serials whose POST was answered 200, per state.
    acknowledged: BTreeMap<String, Vec<i64>>,
    /// When any request succeeded.
    successes: Vec<Instant>,
    /// Every answer other than 200, with the step, as `(step, status, Retry-After)`.
    refusals: Vec<(String, u16, Option<String>)>,
    /// Requests that got no answer at all (connection reset, timeout).
    no_answer: usize,
}

/// Sends one request the way Terraform's http backend does: retried on 5xx and on a lost
/// connection (here every 100 ms, up to 60 s). Returns the final status.
fn send(
    client: &reqwest::blocking::Client,
    method: &str,
    url: &str,
    token: &str,
    body: &[u8],
    step: &str,
    seen: &Mutex<Seen>,
) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let method_ = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let answer = client
            .request(method_, url)
            .basic_auth("terraform", Some(token))
            .body(body.to_vec())
            .send();
        match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                let mut seen = seen.lock().unwrap();
                if status == 200 {
                    seen.successes.push(Instant::now());
                    return status;
                }
                seen.refusals.push((step.to_owned(), status, retry_after));
                if status < 500 || Instant::now() > deadline {
                    return status;
                }
            }
            Err(_) => {
                seen.lock().unwrap().no_answer += 1;
                assert!(Instant::now() < deadline, "{step}: no answer for 60 s");
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// One writer: LOCK, POST serial n with the lock id, UNLOCK, until told to stop.
fn writer(
    server_url: String,
    token: String,
    state: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let address = format!("{server_url}/tf/default/{state}");
    let mut serial = 0;
    while !stop.load(Ordering::Relaxed) {
        serial += 1;
        let lock_id = format!("{state}-{serial}");
        let info = serde_json::to_vec(&serde_json::json!({
            "ID": lock_id, "Operation": "OperationTypeApply", "Info": "", "Who": "ci@runner",
            "Version": "1.0.3", "Created": "2026-12-04T00:00:00Z", "Path": ""
        }))
        .unwrap();
        let step = format!("{state} #{serial}");
        let locked = send(
            &client,
            "LOCK",
            &address,
            &token,
            &info,
            &format!("LOCK {step}"),
            &seen,
        );
        assert_eq!(locked, 200, "LOCK {step}");
        let url = format!("{address}?ID={lock_id}");
        let written = send(
            &client,
            "POST",
            &url,
            &token,
            &state_body(serial, &state),
            &format!("POST {step}"),
            &seen,
        );
        assert_eq!(written, 200, "POST {step}");
        seen.lock()
            .unwrap()
            .acknowledged
            .entry(state.clone())
            .or_default()
            .push(serial);
        let unlocked = send(
            &client,
            "UNLOCK",
            &address,
            &token,
            &info,
            &format!("UNLOCK {step}"),
            &seen,
        );
        assert_eq!(unlocked, 200, "UNLOCK {step}");
    }
}

/// The longest time in which no request succeeded, between `from` and `to`.
fn longest_gap(successes: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut times: Vec<Instant> = successes
        .iter()
        .copied()
        .filter(|t| *t >= from && *t <= to)
        .collect();
    times.sort();
    times.push(to);
    let mut last = from;
    let mut gap = Duration::ZERO;
    for t in times {
        gap = gap.max(t - last);
        last = t;
    }
    gap
}

/// How the primary goes away.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Loss {
    /// A switchover: `pg_ctl stop -m fast` (the standby receives all WAL), then promote.
    Stopped,
    /// A crash (`pg_ctl stop -m immediate`) of a primary with synchronous replication, then
    /// promote: commits were acknowledged only once the standby had them.
    CrashedWithSyncReplication,
}

#[test]
fn a_promoted_standby_takes_over_after_a_switchover() {
    failover(Loss::Stopped);
}

#[test]
fn a_promoted_standby_takes_over_after_a_crash_with_synchronous_replication() {
    failover(Loss::CrashedWithSyncReplication);
}

fn failover(loss: Loss) {
    if skip_e2e() {
        return;
    }
    let primary = Cluster::start();
    let standby = Cluster::standby_of(&primary);
    if loss == Loss::CrashedWithSyncReplication {
        primary.psql("ALTER SYSTEM SET synchronous_standby_names = '*'");
        primary.psql("SELECT pg_reload_conf()");
        let deadline = Instant::now() + Duration::from_secs(30);
        while primary.psql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")
            != "1"
        {
            assert!(
                Instant::now() < deadline,
                "the standby did not become synchronous"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
    // The standby first: statehouse must skip it for the host that accepts writes.
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        standby.port, primary.port
    );
    let server = Server::start_with(
        Store::Postgres,
        &[("STATEHOUSE_DATABASE_URL", url.as_str())],
    );
    assert_ne!(
        primary.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'statehouse'"),
        "0",
        "statehouse should be connected to the primary"
    );

    // A second statehouse process on the same cluster: each must find the new primary itself.
    let peer = server.peer();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let via = if i % 2 == 0 { &server } else { &peer };
            let (url, token) = (via.url.clone(), server.admin_token.clone());
            let (stop, seen) = (stop.clone(), seen.clone());
            thread::spawn(move || writer(url, token, format!("ha-{i}"), stop, seen))
        })
        .collect();

    // A real Terraform 1.0.3 applies again and again across the switch (its http backend
    // retries a 5xx twice, the first time after 1 s).
    let terraform_dir = tempfile::tempdir().unwrap();
    let terraform = {
        let address = server.tf_address("default", "terraform-ha");
        let token = server.admin_token.clone();
        let stop = stop.clone();
        let dir = terraform_dir.path().to_owned();
        thread::spawn(move || {
            let mut tf = Terraform::new(&dir);
            tf.set_env("TF_HTTP_USERNAME", "admin")
                .set_env("TF_HTTP_PASSWORD", &token);
            let mut runs = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let n = runs.len() + 1;
                tf.write_config(&format!(
                    "terraform {{\n  backend \"http\" {{\n    address = \"{address}\"\n    lock_address = \"{address}\"\n    unlock_address = \"{address}\"\n  }}\n}}\noutput \"run\" {{ value = {n} }}\n"
                ));
                if n == 1 {
                    tf.ok(&["init", "-input=false"]);
                }
                let started = Instant::now();
                let out = tf.run(&["apply", "-auto-approve", "-input=false"]);
                runs.push((started, Instant::now(), out));
            }
            runs
        })
    };

    thread::sleep(Duration::from_secs(2));
    // As Patroni does it: the old primary is gone (stopped, or crashed), then the standby is
    // promoted.
    let switch_started = Instant::now();
    match loss {
        Loss::Stopped => primary.down(),
        Loss::CrashedWithSyncReplication => primary.crash(),
    }
    standby.promote();
    let promoted_after = switch_started.elapsed();
    thread::sleep(Duration::from_secs(6));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let ended = Instant::now();
    let applies = terraform.join().unwrap();
    for (i, (_, _, out)) in applies.iter().enumerate() {
        assert!(
            out.status.success(),
            "terraform apply {} failed:\n{}\n{}\n{}",
            i + 1,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            server.log_text()
        );
    }
    assert!(
        applies
            .iter()
            .any(|(started, finished, _)| *started <= switch_started && *finished >= switch_started)
            || applies
                .iter()
                .any(|(started, _, _)| *started >= switch_started),
        "no terraform apply ran across or after the switch"
    );
    let applied = server.state_json("default", "terraform-ha", &server.admin_token);
    assert_eq!(
        applied["outputs"]["run"]["value"].as_u64(),
        Some(applies.len() as u64),
        "the last apply's output is the current state"
    );
    println!(
        "failover figures ({loss:?}): {} real terraform applies across the switch, all succeeded",
        applies.len()
    );

    let seen = seen.lock().unwrap();
    let unavailable = longest_gap(&seen.successes, switch_started, ended);
    let acknowledged: usize = seen.acknowledged.values().map(Vec::len).sum();
    println!(
        "failover figures ({loss:?}): promote took {:.2} s; longest time without a successful request {:.2} s; \
         {} acknowledged writes; {} non-200 answers ({} of them 503); {} requests without answer",
        promoted_after.as_secs_f64(),
        unavailable.as_secs_f64(),
        acknowledged,
        seen.refusals.len(),
        seen.refusals.iter().filter(|r| r.1 == 503).count(),
        seen.no_answer
    );
    for (step, status, retry_after) in &seen.refusals {
        assert_eq!(
            *status,
            503,
            "{step}: only 503 is a right answer in a failover\n{}",
            server.log_text()
        );
        assert!(retry_after.is_some(), "{step}: 503 without Retry-After");
    }
    assert!(
        unavailable < Duration::from_secs(20),
        "no request succeeded for {unavailable:?}\n{}",
        server.log_text()
    );
    // Each process found the new primary by itself, once.
    for process in [&server, &peer] {
        assert!(
            process.wait_for_log("switched to another host"),
            "{}",
            process.log_text()
        );
        let switches = scrape(&format!("{}/metrics", process.url), None).value(
            "statehouse_store_host_switches_total",
            &[("pool", "primary")],
        );
        assert_eq!(switches, 1.0);
    }

    // No acknowledged write lost: each one is a version, in order; the current state is the
    // last one acknowledged (a write answered 503 may have landed too: a retry of the same
    // body adds no version).
    let mut lost = 0;
    for (state, serials) in &seen.acknowledged {
        let versions = version_serials(&server, "default", state);
        for serial in serials {
            if !versions.contains(serial) {
                lost += 1;
                eprintln!("{state}: acknowledged serial {serial} is not a version ({versions:?})");
            }
        }
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "{state}: {versions:?}"
        );
        let current = server.state_json("default", state, &server.admin_token);
        assert_eq!(
            current["serial"].as_i64(),
            serials.last().copied(),
            "{state}"
        );
    }
    println!("failover figures ({loss:?}): acknowledged writes lost: {lost}");
    assert_eq!(lost, 0, "acknowledged writes lost");
    assert!(
        seen.acknowledged.values().all(|s| s.len() >= 3),
        "every writer should have written before and after the switch: {:?}",
        seen.acknowledged
    );

    // The audit chain is whole on the new primary.
    let verified = server.cli(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&verified.stderr);
    assert!(text.contains("intact"), "audit verify: {text}");
    // And the old primary is gone for good: statehouse is on the promoted standby.
    assert_ne!(
        standby.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'statehouse'"),
        "0"
    );
}

/// `statehouse_store_lag_tolerant_reads_total` of `process` served by `by` (0 before any).
fn lag_tolerant_reads(process: &Server, by: &str) -> f64 {
    scrape(&format!("{}/metrics", process.url), None).sum(
        "statehouse_store_lag_tolerant_reads_total",
        &[("served_by", by)],
    )
}

/// Scans of statehouse's `states` table run on `cluster` so far.
fn state_scans(cluster: &Cluster) -> i64 {
    cluster
        .psql(
            "SELECT coalesce(sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0)), 0) \
             FROM pg_stat_user_tables WHERE relname = 'states'",
        )
        .parse()
        .unwrap()
}

fn listed(server: &Server) -> Vec<String> {
    let page = admin_get(server, "/workspaces/default/states");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Lists states until the standby's scan count rises (the replica served a listing).
fn replica_serves(server: &Server, standby: &Cluster, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let before = state_scans(standby);
        listed(server);
        // Cumulative statistics are flushed by the backend at the end of a transaction,
        // at most once a second when busy.
        thread::sleep(Duration::from_millis(300));
        if state_scans(standby) > before {
            return true;
        }
    }
    false
}

#[test]
fn a_read_replica_serves_listings_within_the_lag_bound() {
    if skip_e2e() {
        return;
    }
    let primary = Cluster::start();
    let standby = Cluster::standby_of(&primary);
    let server = Server::start_with(
        Store::Postgres,
        &[
            ("STATEHOUSE_DATABASE_URL", primary.url().as_str()),
            ("STATEHOUSE_POSTGRES__READ_URL", standby.url().as_str()),
            ("STATEHOUSE_POSTGRES__READ_MAX_LAG", "1s"),
        ],
    );
    let write = |server: &Server, name: &str| {
        let response = server.request(
            "POST",
            &server.tf_address("default", name),
            &server.admin_token,
            state_body(1, name),
        );
        assert_eq!(response.status(), 200, "{}", server.log_text());
    };

    // `statehouse doctor` looks at the replica too.
    let doctor = server.cli_output(common::Via::Local, &["doctor"]);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&doctor.stdout),
        String::from_utf8_lossy(&doctor.stderr)
    );
    assert!(
        report.contains("ok    read replica: ") && report.contains("a standby holding the store"),
        "{report}"
    );

    write(&server, "first");
    // Read-your-writes: the listing right after the write has it, wherever it was read.
    assert!(listed(&server).contains(&"first".to_owned()));
    assert!(
        replica_serves(&server, &standby, Duration::from_secs(20)),
        "listings never went to the read replica\n{}",
        server.log_text()
    );

    // The standby stops replaying: what is written now is not there.
    standby.psql("SELECT pg_wal_replay_pause()");
    write(&server, "second");
    assert_eq!(
        standby.psql("SELECT count(*) FROM states WHERE name = 'second'"),
        "0"
    );
    assert!(
        listed(&server).contains(&"second".to_owned()),
        "own write not read back"
    );
    // A second statehouse process (which did not write) honours the staleness bound: the
    // standby lags more than 1 s behind, so its listings come from the primary.
    let peer = server.peer();
    thread::sleep(Duration::from_millis(1500));
    for _ in 0..5 {
        assert!(
            listed(&peer).contains(&"second".to_owned()),
            "a listing beyond the lag bound came from the paused standby\n{}",
            peer.log_text()
        );
    }

    standby.psql("SELECT pg_wal_replay_resume()");
    assert!(
        replica_serves(&peer, &standby, Duration::from_secs(20)),
        "the replica was not used again after it caught up\n{}",
        peer.log_text()
    );
    assert!(listed(&peer).contains(&"second".to_owned()));
    // A diff of two versions reads their bodies from the replica while it is fresh.
    let response = server.request(
        "POST",
        &server.tf_address("default", "second"),
        &server.admin_token,
        state_body(2, "second"),
    );
    assert_eq!(response.status(), 200);
    let before = lag_tolerant_reads(&peer, "replica");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let diff = admin_get(&peer, "/workspaces/default/states/second/diff");
        assert_eq!(diff["to"], 2, "{diff}");
        if lag_tolerant_reads(&peer, "replica") >= before + 2.0 {
            break;
        }
        assert!(Instant::now() < deadline, "diffs never read the replica");
        thread::sleep(Duration::from_millis(200));
    }
    let (replica, primary) = (
        lag_tolerant_reads(&peer, "replica"),
        lag_tolerant_reads(&peer, "primary"),
    );
    assert!(
        replica >= 1.0 && primary >= 5.0,
        "replica {replica} primary {primary}\n{}",
        peer.log_text()
    );
}
