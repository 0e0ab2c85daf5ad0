//! The audit journal under stress, through the real binary on both stores:
//! - a change and its audit entry commit together: `statehouse serve` is killed (`kill -9`)
//!   while several clients write states and take and release locks; after a restart every
//!   stored version has exactly one `state.write` entry, every lock taken or released —
//!   acknowledged or not — has its entry, and `statehouse audit verify` says the chain is intact;
//! - one bad entry takes no other down: logins and reads with NUL bytes in the name, concurrent
//!   with writes, leave every write answered 200 and audited, and are audited themselves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, Store, http_client, skip_e2e};
use serde_json::Value;

on_both_stores!(
    kill_during_concurrent_changes_leaves_every_change_audited,
    nul_bytes_in_audited_names_take_no_entry_down,
);

/// Clients that lock, write under the lock and unlock, each on its own state.
const LOCKING_CLIENTS: usize = 4;
/// Clients that write without locking, each on its own state.
const WRITING_CLIENTS: usize = 3;
/// Kills (each followed by a restart), each with new states.
const ROUNDS: usize = 3;

/// The state client `i` of round `round` works on.
fn state_name(round: usize, i: usize) -> String {
    let kind = if i < LOCKING_CLIENTS {
        "locked"
    } else {
        "free"
    };
    format!("{kind}-{round}-{i}")
}

fn state_body(serial: i64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": 4, "terraform_version": "1.0.3", "serial": serial, "lineage": "crash",
        "outputs": {"n": {"value": serial, "type": "number"}}, "resources": []
    }))
    .unwrap()
}

fn lock_info(id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ID": id, "Operation": "OperationTypeApply", "Info": "", "Who": "crash@test",
        "Version": "1.0.3", "Created": "2026-01-01T00:00:00Z", "Path": ""
    }))
    .unwrap()
}

/// What the clients were told succeeded: (state, action, lock id).
type Acks = Arc<Mutex<Vec<(String, &'static str, Option<String>)>>>;

/// Sends `method` with `body`; `Some(status)`, or `None` once the server is gone.
fn send(
    client: &reqwest::blocking::Client,
    method: &str,
    url: &str,
    token: &str,
    body: Vec<u8>,
) -> Option<u16> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    client
        .request(method, url)
        .bearer_auth(token)
        .body(body)
        .send()
        .ok()
        .map(|r| r.status().as_u16())
}

/// Runs the clients until the server stops answering.
fn start_clients(
    server: &Server,
    round: usize,
    acks: &Acks,
    done: &Arc<AtomicUsize>,
) -> Vec<thread::JoinHandle<()>> {
    let mut clients = Vec::new();
    for i in 0..LOCKING_CLIENTS + WRITING_CLIENTS {
        let locking = i < LOCKING_CLIENTS;
        let name = state_name(round, i);
        let url = server.tf_address("default", &name);
        let token = server.admin_token.clone();
        let acks = acks.clone();
        let done = done.clone();
        clients.push(thread::spawn(move || {
            let client = http_client();
            let ack = |action, id: Option<&str>| {
                acks.lock()
                    .unwrap()
                    .push((name.clone(), action, id.map(str::to_owned)));
                done.fetch_add(1, Ordering::Relaxed);
            };
            for serial in 1.. {
                if !locking {
                    match send(&client, "POST", &url, &token, state_body(serial)) {
                        Some(200) => ack("state.write", None),
                        Some(_) => {}
                        None => return,
                    }
                    continue;
                }
                let id = format!("L-{round}-{i}-{serial}");
                match send(&client, "LOCK", &url, &token, lock_info(&id)) {
                    Some(200) => ack("lock.acquire", Some(&id)),
                    Some(_) => continue,
                    None => return,
                }
                let write = format!("{url}?ID={id}");
                match send(&client, "POST", &write, &token, state_body(serial)) {
                    Some(200) => ack("state.write", Some(&id)),
                    Some(_) => {}
                    None => return,
                }
                match send(&client, "UNLOCK", &url, &token, lock_info(&id)) {
                    Some(200) => ack("lock.release", Some(&id)),
                    Some(_) => {}
                    None => return,
                }
            }
        }));
    }
    clients
}

fn api_get(server: &Server, path: &str) -> (u16, Value) {
    let response = http_client()
        .get(format!("{}/api/v1{path}", server.url))
        .bearer_auth(&server.admin_token)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn detail(entry: &Value) -> Value {
    entry["detail"]
        .as_str()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null)
}

fn kill_during_concurrent_changes_leaves_every_change_audited(store: Store) {
    if skip_e2e() {
        return;
    }
    let mut server = Server::start(store);
    let acks: Acks = Arc::default();
    for round in 0..ROUNDS {
        let done = Arc::new(AtomicUsize::new(0));
        let clients = start_clients(&server, round, &acks, &done);
        // Kill once the clients are in full swing, with changes in flight.
        let started = Instant::now();
        while done.load(Ordering::Relaxed) < 300 && started.elapsed() < Duration::from_secs(60) {
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(Duration::from_millis(100 + 50 * round as u64));
        server.kill9();
        for client in clients {
            client.join().unwrap();
        }
        assert!(
            done.load(Ordering::Relaxed) >= 300,
            "the clients barely ran in round {round}"
        );
        server.restart();
    }
    let acks = acks.lock().unwrap().clone();
    let export = server.cli(&["audit", "export"]);
    let entries: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    eprintln!(
        "{} changes acknowledged before the kills; {} audit entries after the restarts",
        acks.len(),
        entries.len()
    );
    let successes = |action: &str, state: &str| -> Vec<Value> {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == "success" && e["target"] == state)
            .map(detail)
            .collect()
    };
    let mut checked_locks = 0;
    for (round, i) in
        (0..ROUNDS).flat_map(|r| (0..LOCKING_CLIENTS + WRITING_CLIENTS).map(move |i| (r, i)))
    {
        let locking = i < LOCKING_CLIENTS;
        let name = state_name(round, i);
        // Every stored version has exactly one state.write entry, and no entry names a
        // version that was not stored.
        let (status, versions) = api_get(
            &server,
            &format!("/workspaces/default/states/{name}/versions?limit=1000"),
        );
        assert_eq!(status, 200, "{versions}");
        let stored: Vec<i64> = versions["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect();
        let mut audited: BTreeMap<i64, usize> = BTreeMap::new();
        for d in successes("state.write", &name) {
            if d["unchanged"] != true {
                *audited.entry(d["version"].as_i64().unwrap()).or_default() += 1;
            }
        }
        let missing: Vec<i64> = stored
            .iter()
            .filter(|v| !audited.contains_key(v))
            .copied()
            .collect();
        assert!(
            missing.is_empty(),
            "{name}: versions without a state.write entry: {missing:?}"
        );
        for (version, count) in &audited {
            assert_eq!(
                *count, 1,
                "{name}: version {version} has {count} state.write entries"
            );
            assert!(
                stored.contains(version),
                "{name}: an entry for version {version}, which was never stored"
            );
        }
        if !locking {
            continue;
        }
        // Every lock taken or released has its entry: what the entries say matches the lock.
        let acquired: Vec<String> = successes("lock.acquire", &name)
            .iter()
            .filter(|d| d["already_held"] != true)
            .map(|d| d["lock_id"].as_str().unwrap().to_owned())
            .collect();
        let released: Vec<String> = successes("lock.release", &name)
            .iter()
            .filter(|d| d["not_locked"] != true)
            .map(|d| d["lock_id"].as_str().unwrap().to_owned())
            .collect();
        let (status, lock) = api_get(&server, &format!("/workspaces/default/states/{name}/lock"));
        let held = (status == 200).then(|| lock["id"].as_str().unwrap().to_owned());
        let mut open: HashMap<&str, i32> = HashMap::new();
        for id in &acquired {
            *open.entry(id).or_default() += 1;
        }
        for id in &released {
            *open.entry(id).or_default() -= 1;
        }
        let still_open: Vec<&str> = open
            .iter()
            .filter(|(_, n)| **n != 0)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(
            still_open,
            held.iter().map(String::as_str).collect::<Vec<_>>(),
            "{name}: the lock entries do not add up to the lock held now (acquired {acquired:?}, released {released:?})"
        );
        checked_locks += 1;
    }
    assert_eq!(checked_locks, LOCKING_CLIENTS * ROUNDS);
    // Every acknowledged change has its entry.
    for (state, action, id) in &acks {
        let found = entries.iter().any(|e| {
            e["action"] == *action
                && e["outcome"] == "success"
                && e["target"] == state.as_str()
                && id.as_deref().is_none_or(|id| detail(e)["lock_id"] == id)
        });
        assert!(
            found,
            "acknowledged {action} of {state} ({id:?}) has no audit entry"
        );
    }
    let verified = server.cli(&["audit", "verify"]);
    assert!(
        String::from_utf8_lossy(&verified.stderr).contains("intact"),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

/// Every audit entry, exported by the CLI on the server's database.
fn export(server: &Server) -> Vec<Value> {
    let export = server.cli(&["audit", "export"]);
    String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn nul_bytes_in_audited_names_take_no_entry_down(store: Store) {
    if skip_e2e() {
        return;
    }
    const WRITERS: usize = 4;
    const WRITES: i64 = 25;
    const BAD: usize = 30;
    let server = Server::start(store);
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let url = server.tf_address("default", &format!("nul-{i}"));
            let token = server.admin_token.clone();
            thread::spawn(move || {
                let client = http_client();
                (1..=WRITES)
                    .map(|serial| send(&client, "POST", &url, &token, state_body(serial)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    // Meanwhile: logins (refused, and audited with the name as sent) and a read whose names
    // carry a NUL.
    let client = http_client();
    for n in 0..BAD {
        let body = serde_json::to_vec(
            &serde_json::json!({"name": format!("x\u{0}y{n}"), "password": "pw"}),
        )
        .unwrap();
        let status = client
            .post(format!("{}/api/v1/auth/login", server.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
            .status();
        assert!(
            !status.is_success(),
            "a login with a NUL in its name succeeded"
        );
    }
    let read = send(
        &client,
        "GET",
        &format!("{}/tf/default/a%00b", server.url),
        &server.admin_token,
        Vec::new(),
    );
    // Refused at the edge, before any name reaches the service: nothing to audit.
    assert_eq!(read, Some(400), "a NUL in a path is refused");
    for (i, writer) in writers.into_iter().enumerate() {
        let answers = writer.join().unwrap();
        assert!(
            answers.iter().all(|a| *a == Some(200)),
            "writes to nul-{i} next to bad entries were not all answered 200: {answers:?}\n{}",
            server.log_text()
        );
    }
    let entries = export(&server);
    for i in 0..WRITERS {
        let state = format!("nul-{i}");
        let written = entries
            .iter()
            .filter(|e| {
                e["action"] == "state.write"
                    && e["outcome"] == "success"
                    && e["target"] == state.as_str()
            })
            .count();
        assert_eq!(written, WRITES as usize, "{state}: every write is audited");
    }
    let failed_logins: Vec<&str> = entries
        .iter()
        .filter(|e| e["action"] == "login.failed")
        .filter_map(|e| e["target"].as_str())
        .collect();
    assert_eq!(failed_logins.len(), BAD, "every refused login is audited");
    assert!(
        failed_logins.iter().all(|t| t.starts_with("x\u{0}y")),
        "audited with the name as sent: {failed_logins:?}"
    );
    let verified = server.cli(&["audit", "verify"]);
    assert!(String::from_utf8_lossy(&verified.stderr).contains("intact"));
}
