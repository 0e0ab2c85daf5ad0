//! Lock queueing (`?lock_wait=` on the lock address, or the workspace's `lock_wait`): eight real
//! Terraform 1.0.3 applies on one state, started together, all succeed one after another with
//! strictly increasing serials while the API and the UI show who waits; a waiter whose client
//! goes away leaves the line; a wait that runs out is refused with the holder's LockInfo.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{Server, Store, Terraform, http_client, skip_e2e};
use serde_json::{Value, json};

const APPLIES: usize = 8;

fn queue(server: &Server, state: &str) -> Vec<Value> {
    let (status, body) = common::ui::api(
        server,
        "GET",
        &format!("/workspaces/default/states/{state}/lock/queue"),
        &server.admin_token,
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

fn eight_terraform_applies_take_turns(store: Store) {
    let Some(server) = common::ui::start(store) else {
        return;
    };
    let token = server.create_token("default", "editor", "ci-queue");
    let address = server.tf_address("default", "queued");
    let dirs: Vec<tempfile::TempDir> = (0..APPLIES).map(|_| tempfile::tempdir().unwrap()).collect();
    let runs: Vec<Terraform> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let mut tf = Terraform::new(dir.path());
            tf.set_env("TF_HTTP_USERNAME", "ci")
                .set_env("TF_HTTP_PASSWORD", &token);
            // Each run changes an output, so each apply writes a new state.
            tf.write_config(&format!(
                "terraform {{\n  backend \"http\" {{\n    address = \"{address}\"\n    lock_address = \"{address}?lock_wait=10m\"\n    unlock_address = \"{address}\"\n  }}\n}}\noutput \"run\" {{ value = \"run-{i}\" }}\n"
            ));
            tf.ok(&["init", "-input=false"]);
            tf
        })
        .collect();

    // The test holds the lock while the applies start, so that all of them meet a held lock
    // and wait in line (the queue API must show every one), then lets them go.
    let lock_as_test = |method: &str| {
        http_client()
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                &address,
            )
            .basic_auth("admin", Some(&server.admin_token))
            .body(lock_body("test-holder", "the test"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(lock_as_test("LOCK"), 200);
    let most_waiting = std::thread::scope(|scope| {
        let applies: Vec<_> = runs
            .iter()
            .map(|tf| scope.spawn(move || tf.run(&["apply", "-auto-approve", "-input=false"])))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut most = 0;
        while most < APPLIES && Instant::now() < deadline {
            most = most.max(queue(&server, "queued").len());
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(lock_as_test("UNLOCK"), 200);
        for (i, apply) in applies.into_iter().enumerate() {
            let out = apply.join().unwrap();
            assert!(
                out.status.success(),
                "apply {i} failed:\n{}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                server.log_text()
            );
        }
        most
    });
    assert_eq!(
        most_waiting, APPLIES,
        "the queue API showed at most {most_waiting} waiters while {APPLIES} applies waited"
    );

    // Eight versions, serials one above the other (the first apply into an empty state writes
    // serial 0): every apply saw the one before it.
    let serials = common::ui::version_serials(&server, "default", "queued");
    assert_eq!(serials, (0..APPLIES as i64).collect::<Vec<_>>());
    assert!(queue(&server, "queued").is_empty());
    let state: Value = http_client()
        .get(&address)
        .basic_auth("ci", Some(&token))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(state["serial"], APPLIES as i64 - 1);
}

fn lock_body(id: &str, who: &str) -> String {
    json!({"ID": id, "Operation": "OperationTypeApply", "Info": "", "Who": who,
           "Version": "1.0.3", "Created": "2026-12-04T10:00:00Z", "Path": ""})
    .to_string()
}

fn lock(
    server: &Server,
    query: &str,
    id: &str,
    who: &str,
    timeout: Duration,
) -> reqwest::Result<reqwest::blocking::Response> {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap()
        .request(
            reqwest::Method::from_bytes(b"LOCK").unwrap(),
            format!("{}{query}", server.tf_address("default", "held")),
        )
        .basic_auth("admin", Some(&server.admin_token))
        .body(lock_body(id, who))
        .send()
}

fn unlock(server: &Server, id: &str) -> u16 {
    http_client()
        .request(
            reqwest::Method::from_bytes(b"UNLOCK").unwrap(),
            server.tf_address("default", "held"),
        )
        .basic_auth("admin", Some(&server.admin_token))
        .body(lock_body(id, "x"))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn waiters_leave_when_their_client_goes_or_their_wait_ends(store: Store) {
    if skip_e2e() {
        return;
    }
    let Some(server) = common::ui::start(store) else {
        return;
    };
    let held = lock(&server, "", "L1", "alice@ci", Duration::from_secs(10)).unwrap();
    assert_eq!(held.status(), 200);

    // A wait that runs out: 423 with the holder's LockInfo, as without waiting.
    let started = Instant::now();
    let refused = lock(
        &server,
        "?lock_wait=1s",
        "L2",
        "bob@ci",
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(refused.status(), 423);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let holder: Value = refused.json().unwrap();
    assert_eq!(holder["ID"], "L1");
    assert_eq!(holder["Who"], "alice@ci");

    // A client that gives up after 1 s while it waits (10 min allowed) leaves the line.
    let waiting = std::thread::spawn({
        let url = server.url.clone();
        let token = server.admin_token.clone();
        move || {
            let s = (url, token);
            reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap()
                .request(
                    reqwest::Method::from_bytes(b"LOCK").unwrap(),
                    format!("{}/tf/default/held?lock_wait=10m", s.0),
                )
                .basic_auth("admin", Some(&s.1))
                .body(lock_body("L3", "carol@ci"))
                .send()
                .is_err()
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let q = queue(&server, "held");
        if q.len() == 1 {
            assert_eq!(q[0]["id"], "L3");
            assert_eq!(q[0]["who"], "carol@ci");
            assert_eq!(q[0]["position"], 1);
            break;
        }
        assert!(Instant::now() < deadline, "the waiter never showed: {q:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The state page lists it too.
    let session = common::ui::session_cookie(&server, "admin", common::ui::ADMIN_PASSWORD);
    let page = http_client()
        .get(format!("{}/ui/state/default/held", server.url))
        .header("cookie", format!("statehouse_session={session}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("Waiting in line") && page.contains("carol@ci"),
        "{page}"
    );
    assert!(waiting.join().unwrap(), "the client timed out");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !queue(&server, "held").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the gone waiter is still in line"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Released, the lock goes to nobody: the one who waited is gone.
    assert_eq!(unlock(&server, "L1"), 200);
    let (status, body) = common::ui::api(
        &server,
        "GET",
        "/workspaces/default/states/held/lock",
        &server.admin_token,
        None,
    );
    assert_eq!(status, 404, "{body}");

    // A bad lock_wait is refused before anything happens.
    let bad = lock(
        &server,
        "?lock_wait=forever",
        "L4",
        "dave@ci",
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().unwrap().contains("lock_wait"));
}

/// The workspace's `lock_wait` applies to addresses without one.
fn the_workspace_default_makes_locks_wait(store: Store) {
    let Some(server) = common::ui::start(store) else {
        return;
    };
    let out = server.cli(&["workspace", "set", "default", "--lock-wait", "30s"]);
    assert!(out.status.success());
    let shown = server.cli(&["workspace", "show", "default"]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("30s"),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );
    assert_eq!(
        lock(&server, "", "L1", "alice@ci", Duration::from_secs(10))
            .unwrap()
            .status(),
        200
    );
    let waiter = std::thread::spawn({
        let url = server.url.clone();
        let token = server.admin_token.clone();
        move || {
            reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap()
                .request(
                    reqwest::Method::from_bytes(b"LOCK").unwrap(),
                    format!("{url}/tf/default/held"),
                )
                .basic_auth("admin", Some(&token))
                .body(lock_body("L2", "bob@ci"))
                .send()
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while queue(&server, "held").is_empty() {
        assert!(Instant::now() < deadline, "the LOCK did not wait");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(unlock(&server, "L1"), 200);
    assert_eq!(waiter.join().unwrap(), 200, "the waiter got the lock");
    let (_, lock) = common::ui::api(
        &server,
        "GET",
        "/workspaces/default/states/held/lock",
        &server.admin_token,
        None,
    );
    assert_eq!(lock["id"], "L2");
}

/// A server shutting down answers its waiting LOCKs 503 with Retry-After at once (Terraform
/// retries on 5xx) instead of holding its drain up, and stops.
#[test]
fn a_stopping_server_sends_its_waiters_away() {
    let Some(mut server) = common::ui::start(Store::Sqlite) else {
        return;
    };
    assert_eq!(
        lock(&server, "", "L1", "alice@ci", Duration::from_secs(10))
            .unwrap()
            .status(),
        200
    );
    let waiter = std::thread::spawn({
        let url = server.url.clone();
        let token = server.admin_token.clone();
        move || {
            let response = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap()
                .request(
                    reqwest::Method::from_bytes(b"LOCK").unwrap(),
                    format!("{url}/tf/default/held?lock_wait=10m"),
                )
                .basic_auth("admin", Some(&token))
                .body(lock_body("L2", "bob@ci"))
                .send()
                .unwrap();
            let retry = response.headers().get("retry-after").is_some();
            (response.status().as_u16(), retry, response.text().unwrap())
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while queue(&server, "held").is_empty() {
        assert!(Instant::now() < deadline, "the LOCK did not wait");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopping = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (status, retry_after, body) = waiter.join().unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(retry_after && body.contains("shutting down"), "{body}");
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "the drain was held up by the waiter: {:?}",
        stopping.elapsed()
    );
}

on_both_stores!(
    eight_terraform_applies_take_turns,
    waiters_leave_when_their_client_goes_or_their_wait_ends,
    the_workspace_default_makes_locks_wait,
);
