//! A PostgreSQL outage while `statehouse serve` runs: `/readyz` answers `503` within its own
//! short timeout, requests fail with `503` and `Retry-After` within `postgres.acquire_timeout`
//! (5 s by default) instead of hanging, and everything works again once the database is back.
//!
//! The test starts a PostgreSQL cluster of its own (`scripts/pg-cluster.sh`), so stopping it
//! disturbs no other test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::pg_cluster::Cluster;
use common::{Server, Store, http_client, skip_e2e};

/// Far above the answers' design bounds (2 s for `/readyz`, 5 s for a request) and far below
/// the 30 s a request used to hang: a guard against hanging, not a performance figure.
const PROMPT: Duration = Duration::from_secs(12);

fn state_body(serial: i64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": 4, "terraform_version": "1.0.3", "serial": serial, "lineage": "outage",
        "outputs": {}, "resources": []
    }))
    .unwrap()
}

/// GET `url` with the admin token; returns the status, `Retry-After` and how long it took.
fn timed_get(server: &Server, url: &str) -> (u16, Option<String>, Duration) {
    let started = Instant::now();
    let response = http_client()
        .get(url)
        .bearer_auth(&server.admin_token)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), retry_after, started.elapsed())
}

#[test]
fn a_database_outage_answers_503_promptly_and_recovers() {
    if skip_e2e() {
        return;
    }
    let cluster = Cluster::start();
    let server = Server::start_with(
        Store::Postgres,
        &[("STATEHOUSE_DATABASE_URL", cluster.url().as_str())],
    );
    let state = server.tf_address("default", "outage");
    let written = server.request("POST", &state, &server.admin_token, state_body(1));
    assert_eq!(written.status(), 200);
    let readyz = format!("{}/readyz", server.url);
    let api = format!("{}/api/v1/workspaces/default/states", server.url);

    cluster.down();

    let (status, _, took) = timed_get(&server, &readyz);
    assert_eq!(status, 503, "/readyz with the database down");
    assert!(
        took < PROMPT,
        "/readyz took {took:?}\n{}",
        server.log_text()
    );
    // Several times each: the first ones may meet pooled connections the outage broke (and
    // fail at once); once those are discarded, every request waits for a new connection.
    for url in [&state, &api, &state, &api, &state, &api, &readyz] {
        let (status, retry_after, took) = timed_get(&server, url);
        assert_eq!(status, 503, "GET {url} with the database down");
        if url != &readyz {
            assert_eq!(retry_after.as_deref(), Some("5"), "GET {url}: Retry-After");
        }
        assert!(
            took < PROMPT,
            "GET {url} took {took:?}\n{}",
            server.log_text()
        );
    }
    assert!(
        server.wait_for_log("readiness check failed"),
        "{}",
        server.log_text()
    );

    cluster.up();

    let deadline = Instant::now() + Duration::from_secs(60);
    while timed_get(&server, &readyz).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "/readyz did not recover within 60 s of the database's return\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        server.state_json("default", "outage", &server.admin_token)["serial"],
        1
    );
    let written = server.request("POST", &state, &server.admin_token, state_body(2));
    assert_eq!(written.status(), 200, "a write after the outage");
    assert_eq!(timed_get(&server, &api).0, 200);
}
