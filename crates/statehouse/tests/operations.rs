//! Operating statehouse: crashes, key rotation, two processes on one database, encryption at
//! rest, key-file checks and the `pg` backend importer — the real binary on both stores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{PgDatabase, Server, Store, Terraform, pg_url_without_tls, skip_e2e};
use md5::{Digest, Md5};
use serde_json::Value;

on_both_stores!(
    kill9_under_concurrent_writes_loses_nothing_acknowledged,
    key_rotation_while_serving,
    two_processes_share_one_database,
    marker_is_absent_from_the_database,
    wrong_or_missing_master_key_stops_startup,
    import_tf_pg_copies_every_workspace,
    sigterm_drains_in_flight_requests,
    users_and_passwords_from_the_cli,
);

fn state_body(serial: i64, lineage: &str, payload: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": 4, "terraform_version": "1.0.3", "serial": serial, "lineage": lineage,
        "outputs": {"payload": {"value": payload, "type": "string"}, "serial_copy": {"value": serial, "type": "number"}},
        "resources": []
    }))
    .unwrap()
}

fn post(
    url: &str,
    token: &str,
    body: Vec<u8>,
    lock_id: Option<&str>,
) -> reqwest::Result<reqwest::blocking::Response> {
    let url = match lock_id {
        Some(id) => format!("{url}?ID={id}"),
        None => url.to_owned(),
    };
    let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
    common::http_client()
        .post(url)
        .basic_auth("t", Some(token))
        .header("Content-MD5", md5)
        .body(body)
        .send()
}

fn versions_json(server: &Server, name: &str) -> Vec<Value> {
    let out = server.cli(&[
        "state",
        "versions",
        "--workspace",
        "default",
        name,
        "--all",
        "--json",
    ]);
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(page["next_cursor"].is_null(), "--all follows every page");
    page["items"].as_array().unwrap().clone()
}

/// `kill -9` while four clients write: every acknowledged write is there after restart, and
/// no partial version is ever visible.
fn kill9_under_concurrent_writes_loses_nothing_acknowledged(store: Store) {
    if skip_e2e() {
        return;
    }
    let mut server = Server::start(store);
    let token = server.admin_token.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Vec<Arc<AtomicI64>> = (0..4).map(|_| Arc::new(AtomicI64::new(0))).collect();
    let payload = "p".repeat(20_000);
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (stop, acked, payload, token) = (
                stop.clone(),
                acked[i].clone(),
                payload.clone(),
                token.clone(),
            );
            let url = server.tf_address("default", &format!("crash/w{i}"));
            let client = common::http_client();
            thread::spawn(move || {
                let mut serial = 1;
                while !stop.load(Ordering::SeqCst) {
                    let body = state_body(serial, "crash-lineage", &format!("{serial}-{payload}"));
                    let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
                    match client
                        .post(&url)
                        .basic_auth("t", Some(&token))
                        .header("Content-MD5", md5)
                        .body(body)
                        .send()
                    {
                        Ok(r) if r.status() == 200 => {
                            acked.store(serial, Ordering::SeqCst);
                            serial += 1;
                        }
                        Ok(r) => panic!("unexpected status {} before the crash", r.status()),
                        Err(_) => return, // the server died under us
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked
        .iter()
        .map(|a| a.load(Ordering::SeqCst))
        .min()
        .unwrap_or(0)
        < 20
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    server.restart();
    assert!(
        !server.log_text().contains("admin token"),
        "a restart must not mint another admin token"
    );
    for (i, acked) in acked.iter().enumerate() {
        let acked = acked.load(Ordering::SeqCst);
        assert!(
            acked >= 20,
            "worker {i} got only {acked} writes acknowledged"
        );
        let name = format!("crash/w{i}");
        let state = server.state_json("default", &name, &server.admin_token);
        let serial = state["serial"].as_i64().unwrap();
        assert!(
            serial >= acked,
            "{name}: acknowledged serial {acked} lost, found {serial}"
        );
        assert!(
            serial <= acked + 1,
            "{name}: serial {serial} was never sent"
        );
        assert_eq!(
            state["outputs"]["serial_copy"]["value"].as_i64(),
            Some(serial),
            "{name}: body and serial disagree"
        );
        assert!(
            state["outputs"]["payload"]["value"]
                .as_str()
                .unwrap()
                .ends_with(&payload),
            "{name}: truncated body"
        );
        // Versions are whole and contiguous: version n holds serial n.
        let versions = versions_json(&server, &name);
        assert_eq!(
            versions.len() as i64,
            serial,
            "{name}: one version per write"
        );
        for v in &versions {
            assert_eq!(v["version"], v["serial"], "{name}: {v}");
        }
        let old = server.cli(&[
            "state",
            "get",
            "--workspace",
            "default",
            &name,
            "--version",
            "1",
        ]);
        let first: Value = serde_json::from_slice(&old.stdout).unwrap();
        assert_eq!(first["serial"], 1);
    }
    // The restarted server takes writes again.
    let url = server.tf_address("default", "crash/w0");
    let next = server.state_json("default", "crash/w0", &server.admin_token)["serial"]
        .as_i64()
        .unwrap()
        + 1;
    assert_eq!(
        post(
            &url,
            &server.admin_token,
            state_body(next, "crash-lineage", "after"),
            None
        )
        .unwrap()
        .status(),
        200
    );
}

fn key_lines(server: &Server) -> Vec<String> {
    let path = server.data_dir().unwrap().join("master.key");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("key "))
        .map(str::to_owned)
        .collect()
}

/// `statehouse key rotate` while the server runs: every state stays readable, the old key is retired.
fn key_rotation_while_serving(store: Store) {
    if skip_e2e() {
        return;
    }
    let mut server = Server::start(store);
    let token = server.admin_token.clone();
    for (i, name) in ["rot/a", "rot/b", "rot/c"].iter().enumerate() {
        for serial in 1..=2 {
            let body = state_body(serial, "rot", &format!("{name}-{serial}-{i}"));
            assert_eq!(
                post(&server.tf_address("default", name), &token, body, None)
                    .unwrap()
                    .status(),
                200
            );
        }
    }
    let before = key_lines(&server);
    assert_eq!(before.len(), 1);
    let out = server.cli(&["key", "rotate"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("re-wrapped 6 sealed records"), "{said}");
    let after = key_lines(&server);
    assert_eq!(after.len(), 1, "old key retired: {after:?}");
    assert_ne!(after[0].split(' ').nth(1), before[0].split(' ').nth(1));
    for name in ["rot/a", "rot/b", "rot/c"] {
        let state = server.state_json("default", name, &token);
        assert!(
            state["outputs"]["payload"]["value"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{name}-2"))
        );
        let v1 = server.cli(&[
            "state",
            "get",
            "--workspace",
            "default",
            name,
            "--version",
            "1",
        ]);
        assert!(String::from_utf8_lossy(&v1.stdout).contains(&format!("{name}-1")));
    }
    // Writes after rotation use the new key, and a restart reads everything.
    assert_eq!(
        post(
            &server.tf_address("default", "rot/a"),
            &token,
            state_body(3, "rot", "rot/a-3"),
            None
        )
        .unwrap()
        .status(),
        200
    );
    server.restart();
    assert!(
        server.state_json("default", "rot/a", &token)["outputs"]["payload"]["value"]
            .as_str()
            .unwrap()
            .starts_with("rot/a-3")
    );
    assert!(
        server.state_json("default", "rot/c", &token)["outputs"]["payload"]["value"]
            .as_str()
            .unwrap()
            .starts_with("rot/c-2")
    );
}

/// Two `statehouse serve` processes on one database: a lock and a serial are won once.
fn two_processes_share_one_database(store: Store) {
    if skip_e2e() {
        return;
    }
    let a = Server::start(store);
    let b = a.peer();
    let token = a.create_token("default", "editor", "racer");
    let first = state_body(1, "shared", "base");
    assert_eq!(
        post(&a.tf_address("default", "shared"), &token, first, None)
            .unwrap()
            .status(),
        200
    );

    // 8 lockers across both processes, different lock IDs: exactly one wins.
    let lockers: Vec<_> = (0..8)
        .map(|i| {
            let url = if i % 2 == 0 { a.tf_address("default", "shared") } else { b.tf_address("default", "shared") };
            let token = token.clone();
            thread::spawn(move || {
                let info = format!(r#"{{"ID":"lock-{i}","Operation":"OperationTypeApply","Who":"racer-{i}","Version":"1.0.3","Created":"2026-01-01T00:00:00Z","Path":"","Info":""}}"#);
                let resp = common::http_client()
                    .request(reqwest::Method::from_bytes(b"LOCK").unwrap(), url)
                    .basic_auth("t", Some(&token))
                    .body(info)
                    .send()
                    .unwrap();
                (i, resp.status().as_u16(), resp.text().unwrap())
            })
        })
        .collect();
    let results: Vec<_> = lockers.into_iter().map(|t| t.join().unwrap()).collect();
    let winners: Vec<_> = results.iter().filter(|r| r.1 == 200).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = winners[0].0;
    for (_, status, body) in results.iter().filter(|r| r.1 != 200) {
        assert_eq!(*status, 423);
        assert!(
            body.contains(&format!("lock-{winner}")),
            "loser sees the holder: {body}"
        );
    }
    // The holder writes through the other process; then both processes see the lock gone.
    let other = if winner % 2 == 0 { &b } else { &a };
    let lock_id = format!("lock-{winner}");
    assert_eq!(
        post(
            &other.tf_address("default", "shared"),
            &token,
            state_body(2, "shared", "locked"),
            Some(&lock_id)
        )
        .unwrap()
        .status(),
        200
    );
    let info = format!(r#"{{"ID":"{lock_id}"}}"#);
    let unlock = common::http_client()
        .request(
            reqwest::Method::from_bytes(b"UNLOCK").unwrap(),
            other.tf_address("default", "shared"),
        )
        .basic_auth("t", Some(&token))
        .body(info)
        .send()
        .unwrap();
    assert_eq!(unlock.status(), 200);

    // 8 writers of serial 3 with different content across both processes: one version wins.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let server_url = if i % 2 == 0 {
                a.tf_address("default", "shared")
            } else {
                b.tf_address("default", "shared")
            };
            let token = token.clone();
            thread::spawn(move || {
                let body = state_body(3, "shared", &format!("writer-{i}"));
                let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
                common::http_client()
                    .post(server_url)
                    .basic_auth("t", Some(&token))
                    .header("Content-MD5", md5)
                    .body(body)
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let statuses: Vec<u16> = writers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(versions_json(&a, "shared").len(), 3);

    // A token revoked with the CLI stops working on both processes (servers trust a token
    // they looked up for at most one second).
    a.cli(&["token", "revoke", "racer"]);
    for server in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = server.tf_address("default", "shared");
            let status = server.request("GET", &url, &token, Vec::new()).status();
            if status == 401 {
                break;
            }
            assert_eq!(status, 200);
            assert!(
                Instant::now() < deadline,
                "revoked token still accepted after 10 s"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A marker written in a state appears nowhere in the stored database (files or dump).
fn marker_is_absent_from_the_database(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    // Not the admin token: that one is printed once on stdout by design.
    let token = server.create_token("default", "editor", "writer");
    let marker = "PLAINTEXT-MARKER-d41e9a7c-must-never-be-stored";
    for serial in 1..=3 {
        let body = state_body(serial, "enc", &format!("{marker}-{serial}"));
        assert_eq!(
            post(&server.tf_address("default", "enc"), &token, body, None)
                .unwrap()
                .status(),
            200
        );
    }
    assert!(
        server.state_json("default", "enc", &token)["outputs"]["payload"]["value"]
            .as_str()
            .unwrap()
            .contains(marker)
    );
    let haystacks = server.stored_bytes();
    assert!(!haystacks.is_empty());
    let log = server.log_text();
    assert!(log.contains("state written"), "writes are logged");
    assert!(!log.contains(marker), "the log shows a state body");
    assert!(!log.contains(&token), "the log shows a token");
    for (what, bytes) in haystacks {
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{what} contains the plaintext marker"
        );
        assert!(
            !bytes.windows(14).any(|w| w == b"\"serial_copy\":"),
            "{what} contains state JSON"
        );
    }
}

fn serve_should_fail(server: &Server, extra_env: &[(&str, &str)]) -> String {
    let mut child = server
        .command()
        .arg("serve")
        .envs(extra_env.iter().copied())
        .env("STATEHOUSE_LISTEN", "127.0.0.1:0")
        .env("STATEHOUSE_S3_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running although it should refuse to start");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A database with encrypted data never silently gets a fresh or foreign master key.
fn wrong_or_missing_master_key_stops_startup(store: Store) {
    if skip_e2e() {
        return;
    }
    let mut server = Server::start(store);
    let body = state_body(1, "k", "keyed");
    assert_eq!(
        post(
            &server.tf_address("default", "keyed"),
            &server.admin_token,
            body,
            None
        )
        .unwrap()
        .status(),
        200
    );
    server.kill9();
    let dir = server.data_dir().unwrap().to_owned();
    let missing = dir.join("nowhere.key");
    let err = serve_should_fail(
        &server,
        &[("STATEHOUSE_MASTER_KEY_FILE", missing.to_str().unwrap())],
    );
    assert!(
        err.contains("is missing") && err.contains("encrypted with master key"),
        "{err}"
    );
    assert!(
        !missing.exists(),
        "no key file may be invented for a database with data"
    );
    let foreign = dir.join("foreign.key");
    std::fs::write(
        &foreign,
        "key 0badc0de AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    )
    .unwrap();
    let err = serve_should_fail(
        &server,
        &[("STATEHOUSE_MASTER_KEY_FILE", foreign.to_str().unwrap())],
    );
    assert!(
        err.contains("encrypted with master key") && err.contains("not in the master key file"),
        "{err}"
    );
    server.restart();
    assert_eq!(
        server.state_json("default", "keyed", &server.admin_token)["serial"],
        1
    );
}

/// `statehouse import tf-pg` copies the rows real Terraform wrote with its `pg` backend.
fn import_tf_pg_copies_every_workspace(store: Store) {
    if skip_e2e() {
        return;
    }
    let db = PgDatabase::create("tfpg");
    let conn = pg_url_without_tls(&db.url);
    let dir = tempfile::tempdir().unwrap();
    let tf = Terraform::new(dir.path());
    tf.write_config(&format!(
        "terraform {{\n  backend \"pg\" {{\n    conn_str = \"{conn}\"\n    schema_name = \"legacy_states\"\n  }}\n}}\n\
         output \"ws\" {{ value = terraform.workspace }}\noutput \"n\" {{ value = 42 }}\n"
    ));
    tf.ok(&["init", "-input=false"]);
    tf.ok(&["apply", "-auto-approve", "-input=false"]);
    tf.ok(&["workspace", "new", "prod"]);
    tf.ok(&["apply", "-auto-approve", "-input=false"]);

    let server = Server::start(store);
    let out = server.cli(&[
        "import",
        "tf-pg",
        "--conn",
        &conn,
        "--schema",
        "legacy_states",
        "--workspace",
        "default",
        "--prefix",
        "legacy/",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "imported 2, unchanged 0, failed 0"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows: Vec<(String, String)> = rt.block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query_as("SELECT name, data FROM legacy_states.states ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap()
    });
    assert_eq!(
        rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        vec!["default", "prod"]
    );
    for (name, data) in &rows {
        let resp = server.request(
            "GET",
            &server.tf_address("default", &format!("legacy/{name}")),
            &server.admin_token,
            Vec::new(),
        );
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.text().unwrap(),
            *data,
            "legacy/{name} is byte-identical, lineage and serial kept"
        );
    }
    // Importing again changes nothing.
    let out = server.cli(&[
        "import",
        "tf-pg",
        "--conn",
        &conn,
        "--schema",
        "legacy_states",
        "--workspace",
        "default",
        "--prefix",
        "legacy/",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "imported 0, unchanged 2, failed 0"
    );

    // A row whose name cannot be a state name stops the whole import before anything is written.
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query("INSERT INTO legacy_states.states (name, data) VALUES ('bad name', $1)")
            .bind(&rows[0].1)
            .execute(&pool)
            .await
            .unwrap();
    });
    let out = server
        .command()
        .args([
            "import",
            "tf-pg",
            "--conn",
            &conn,
            "--schema",
            "legacy_states",
            "--workspace",
            "default",
            "--prefix",
            "again/",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing was imported") && err.contains("bad name"),
        "{err}"
    );
    let listed = server.cli(&["state", "list", "--workspace", "default", "--all", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let states = listed["items"].as_array().unwrap();
    assert!(
        states
            .iter()
            .all(|s| !s["name"].as_str().unwrap().starts_with("again/")),
        "{states:?}"
    );
}

/// SIGTERM lets a request that is already in flight finish, then the process exits cleanly.
fn sigterm_drains_in_flight_requests(store: Store) {
    use std::io::{Read, Write};
    if skip_e2e() {
        return;
    }
    let mut server = Server::start(store);
    let body = state_body(1, "drain", &"d".repeat(200_000));
    let (head, tail) = body.split_at(body.len() / 2);
    let host = server.url.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    write!(
        stream,
        "POST /tf/default/drain HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.admin_token,
        body.len()
    )
    .unwrap();
    stream.write_all(head).unwrap();
    stream.flush().unwrap();
    thread::sleep(Duration::from_millis(300));
    let pid = server.pid();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    thread::sleep(Duration::from_millis(300));
    stream.write_all(tail).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "in-flight write finished: {response}"
    );
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "clean exit after draining: {status}\n{}",
        server.log_text()
    );
    assert!(server.log_text().contains("draining in-flight requests"));
    server.restart();
    assert_eq!(
        server.state_json("default", "drain", &server.admin_token)["serial"],
        1
    );
}

/// Runs a CLI command with `input` on stdin; returns stdout.
fn cli_with_stdin(server: &Server, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = server
        .command()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "statehouse {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn login_status(server: &Server, name: &str, password: &str) -> u16 {
    common::http_client()
        .post(format!("{}/api/v1/auth/login", server.url))
        .json(&serde_json::json!({"name": name, "password": password}))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// An operator sets the first password and manages users with the CLI, without a server
/// call; the running server sees the changes (within its one-second trust window).
fn users_and_passwords_from_the_cli(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    // The bootstrap token belongs to the user "admin", who has no password yet.
    let me: Value = common::http_client()
        .get(format!("{}/api/v1/auth/me", server.url))
        .bearer_auth(&server.admin_token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["user"]["name"], "admin", "{me}");
    assert_eq!(me["user"]["has_password"], false);
    assert_eq!(me["instance_admin"], true);
    assert_eq!(login_status(&server, "admin", "first admin password"), 401);
    cli_with_stdin(
        &server,
        &["user", "passwd", "admin"],
        "first admin password\n",
    );
    assert_eq!(login_status(&server, "admin", "first admin password"), 200);

    cli_with_stdin(
        &server,
        &["user", "add", "alice", "--password-stdin"],
        "alice's password\n",
    );
    server.cli(&[
        "user",
        "grant",
        "alice",
        "--workspace",
        "default",
        "--role",
        "outputs",
    ]);
    let out = server.cli(&[
        "token",
        "create",
        "--user",
        "alice",
        "--name",
        "alice-laptop",
    ]);
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("sht_"), "{token}");
    let address = server.tf_address("default", "cli/users");
    let get = |t: &str| {
        server
            .request("GET", &address, t, Vec::new())
            .status()
            .as_u16()
    };
    assert_eq!(get(&token), 204, "an outputs member may read");
    let users: Value =
        serde_json::from_slice(&server.cli(&["user", "list", "--json"]).stdout).unwrap();
    let names: Vec<&str> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "alice"]);
    let tokens: Value = serde_json::from_slice(
        &server
            .cli(&["token", "list", "--user", "alice", "--json"])
            .stdout,
    )
    .unwrap();
    let listed = &tokens["items"][0];
    assert_eq!(listed["name"], "alice-laptop");
    assert_eq!(listed["kind"], "user");
    assert!(listed["last_used_at"].is_string(), "{tokens}");

    // Disabling in the CLI stops the token on the running server within a second.
    server.cli(&["user", "disable", "alice"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(&token) != 401 {
        assert!(
            Instant::now() < deadline,
            "a disabled user's token kept working"
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(login_status(&server, "alice", "alice's password"), 401);
    server.cli(&["user", "enable", "alice"]);
    server.cli(&["user", "revoke", "alice", "--workspace", "default"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    // Without a role the workspace answers as a missing one would.
    while get(&token) != 404 {
        assert!(Instant::now() < deadline, "revoking the role did not apply");
        thread::sleep(Duration::from_millis(100));
    }
}
