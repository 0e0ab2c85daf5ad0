//! `GET /metrics` on a real server, on both stores: Terraform-style traffic (LOCK, writes, a
//! conflict, reads, UNLOCK), an S3 request, a PostgreSQL backup with its verification and
//! health checks, a failing notifier and a broken target; then every metric the shipped alert
//! rules (`deploy/prometheus/alerts.yml`) and dashboard (`deploy/grafana/statehouse.json`)
//! name must be on the server, with real values: counters labelled by route template (never
//! the raw path), a lock held then not, backup figures. Also: the bearer token (401 without,
//! 200 with), its own listener, per-state labels only when asked for, and no secret or raw path
//! in what is served. `promtool` checks the rules (and the dashboard's queries) and runs the
//! rules' unit tests (`deploy/prometheus/alerts_test.yml`) when it is installed;
//! `STATEHOUSE_REQUIRE_SERVERS=1` requires it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_support;
#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use backup_support::{answer_request, json_of, source, with_target};
use common::prometheus::{scrape, scrape_at, scrape_until};
use common::{Server, Store, Via, http_client, skip_e2e, unique_name};

on_both_stores!(
    metrics_follow_real_traffic_and_cover_the_shipped_rules,
    metrics_token_own_listener_and_state_labels
);

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// Every metric name a rules file or dashboard names (`statehouse_…`, `process_…`).
fn referenced_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    for prefix in ["statehouse_", "process_"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(prefix) {
            let start = from + i;
            let before_ok = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let end = text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |n| start + n);
            if before_ok {
                names.insert(text[start..end].to_owned());
            }
            from = end;
        }
    }
    names
}

/// The dashboard's queries, with Grafana's variables replaced, as recording rules for promtool.
fn dashboard_queries_as_rules(dashboard: &serde_json::Value) -> String {
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut n = 0;
    let mut visit = vec![dashboard];
    while let Some(v) = visit.pop() {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(expr)) = map.get("expr") {
                    n += 1;
                    let expr = expr.replace("$__rate_interval", "5m").replace("$job", ".*");
                    rules.push_str(&format!(
                        "      - record: dashboard:query{n}\n        expr: {}\n",
                        serde_json::to_string(&expr).unwrap()
                    ));
                }
                visit.extend(map.values());
            }
            serde_json::Value::Array(items) => visit.extend(items),
            _ => {}
        }
    }
    assert!(n > 20, "the dashboard has only {n} queries");
    rules
}

/// `promtool check rules` on `files`; `false` when promtool is not installed (and not required).
fn promtool_checks(files: &[&Path]) -> bool {
    let out = match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .args(files)
        .output()
    {
        Ok(out) => out,
        Err(_) => {
            assert!(
                std::env::var("STATEHOUSE_REQUIRE_SERVERS").as_deref() != Ok("1"),
                "promtool is required (apt-get install prometheus)"
            );
            eprintln!("promtool is not installed: the rules' syntax is not checked");
            return false;
        }
    };
    assert!(
        out.status.success(),
        "promtool check rules {files:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

fn state_body(serial: i64, marker: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": 4, "terraform_version": "1.0.3", "serial": serial, "lineage": "metrics-e2e",
        "outputs": {"marker": {"value": marker, "type": "string"}}, "resources": []
    }))
    .unwrap()
}

fn lock_info(id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ID": id, "Operation": "OperationTypeApply", "Info": "", "Who": "metrics@test",
        "Version": "1.0.3", "Created": "2026-01-01T00:00:00Z", "Path": ""
    }))
    .unwrap()
}

fn send(server: &Server, method: &str, url: &str, body: Vec<u8>, md5: bool) -> u16 {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http_client()
        .request(method, url)
        .bearer_auth(&server.admin_token);
    if md5 {
        use base64::Engine;
        use md5::Digest;
        let digest = md5::Md5::digest(&body);
        request = request.header(
            "content-md5",
            base64::engine::general_purpose::STANDARD.encode(digest),
        );
    }
    request.body(body).send().unwrap().status().as_u16()
}

fn metrics_follow_real_traffic_and_cover_the_shipped_rules(store: Store) {
    if skip_e2e() {
        return;
    }
    // With the local target `nas` the backup below goes to.
    let (server, dir) = with_target(store);
    let metrics = format!("{}/metrics", server.url);
    assert!(
        server.wait_for_log(&format!("metrics: {metrics}")),
        "{}",
        server.log_text()
    );
    let before = scrape(&metrics, None);
    let tf_route = [("route", "/tf/{workspace}/{*name}")];
    let locks_before = before.sum(
        "statehouse_http_requests_total",
        &[tf_route[0], ("method", "LOCK")],
    );
    assert_eq!(before.value("statehouse_locks_held", &[]), 0.0);
    assert_eq!(before.value("statehouse_store_up", &[]), 1.0);

    // Terraform-style traffic on one state: LOCK, a write with the lock, a stale serial (409),
    // a write without the lock (423), a conflicting LOCK (423), reads, UNLOCK.
    let state = unique_name("metricsstate");
    let address = server.tf_address("default", &state);
    assert_eq!(send(&server, "LOCK", &address, lock_info("L1"), false), 200);
    let held = scrape_until(&metrics, "the lock held", |s| {
        s.value("statehouse_locks_held", &[]) == 1.0
    });
    assert!(held.value("statehouse_lock_oldest_age_seconds", &[]) >= 0.0);
    assert_eq!(
        held.value("statehouse_locks_stale", &[]),
        0.0,
        "two hours before a lock is stale"
    );
    let with_lock = format!("{address}?ID=L1");
    assert_eq!(
        send(&server, "POST", &with_lock, state_body(1, "one"), true),
        200
    );
    assert_eq!(
        send(&server, "POST", &with_lock, state_body(1, "other"), true),
        409
    );
    assert_eq!(
        send(&server, "POST", &address, state_body(2, "two"), true),
        423
    );
    assert_eq!(send(&server, "LOCK", &address, lock_info("L2"), false), 423);
    assert_eq!(send(&server, "GET", &address, Vec::new(), false), 200);
    assert_eq!(
        send(&server, "UNLOCK", &address, lock_info("L1"), false),
        200
    );
    let missing = format!("{}/no-such-page-{state}", server.url);
    assert_eq!(send(&server, "GET", &missing, Vec::new(), false), 404);
    // An unsigned S3 request: refused, counted under its operation.
    let s3 = http_client()
        .get(format!("{}/", server.s3_url))
        .send()
        .unwrap();
    assert_eq!(s3.status(), 403);

    let after = scrape_until(&metrics, "the lock released", |s| {
        s.value("statehouse_locks_held", &[]) == 0.0
    });
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    assert_eq!(
        after.sum(
            "statehouse_http_requests_total",
            &[tf_route[0], ("method", "LOCK")]
        ) - locks_before,
        2.0,
        "both LOCKs, counted by route template"
    );
    assert_eq!(
        delta(
            "statehouse_http_requests_total",
            &[tf_route[0], ("method", "POST"), ("status", "409")]
        ),
        1.0
    );
    assert!(
        after.value(
            "statehouse_http_request_duration_seconds_count",
            &[tf_route[0], ("method", "UNLOCK"), ("status", "200")]
        ) >= 1.0
    );
    assert!(
        delta(
            "statehouse_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    assert_eq!(delta("statehouse_state_writes_total", &[]), 1.0);
    assert_eq!(
        delta(
            "statehouse_state_writes_refused_total",
            &[("reason", "conflict")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "statehouse_state_writes_refused_total",
            &[("reason", "locked")]
        ),
        1.0
    );
    assert_eq!(delta("statehouse_lock_conflicts_total", &[]), 1.0);
    assert_eq!(delta("statehouse_locks_acquired_total", &[]), 1.0);
    assert_eq!(
        delta("statehouse_locks_released_total", &[("forced", "false")]),
        1.0
    );
    assert!(delta("statehouse_state_reads_total", &[]) >= 1.0);
    assert!(
        after.sum(
            "statehouse_s3_requests_total",
            &[("operation", "ListBuckets"), ("status", "403")]
        ) >= 1.0,
        "{}",
        after.text
    );
    assert!(after.sum("statehouse_store_query_duration_seconds_count", &[]) > 0.0);
    assert!(after.value("statehouse_store_pool_max_connections", &[]) >= 1.0);
    // No raw path, state name or secret in what is served.
    assert!(
        !after.text.contains(&state),
        "a raw path or state name leaked:\n{}",
        after.text
    );
    assert!(!after.text.contains(&server.admin_token));
    for sample in &after.samples {
        if let Some(route) = sample.labels.get("route") {
            assert!(route == "unmatched" || route.starts_with('/'), "{sample:?}");
            assert!(
                !route.contains("default/"),
                "a raw path as a route: {sample:?}"
            );
        }
    }

    // A PostgreSQL backup (run by the server), its verification, a notifier that cannot be
    // reached, a broken storage target, then the database's health checks.
    let remote = Via::Remote {
        token: Some(&server.admin_token),
    };
    let db = source("metrics_src", 200);
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    server.cli(&[
        "target",
        "add",
        "broken",
        "--kind",
        "local",
        "--set",
        &format!("path={}", blocker.join("sub").display()),
    ]);
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/nobody", closed.local_addr().unwrap());
    drop(closed);
    server.cli(&[
        "notifier",
        "add",
        "gone",
        "--kind",
        "webhook",
        "--secret",
        &format!("url={closed_url}"),
        "--events",
        "backup.*",
    ]);
    // And one that answers, for the sent notifications.
    let hook = TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_url = format!("http://{}/hook", hook.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in hook.incoming().take(4).flatten() {
            answer_request(stream);
        }
    });
    server.cli(&[
        "notifier",
        "add",
        "hook",
        "--kind",
        "webhook",
        "--secret",
        &format!("url={hook_url}"),
        "--events",
        "backup.*",
    ]);
    server.cli(&[
        "db",
        "add",
        "shop",
        "--url",
        &db.url,
        "--target",
        "nas",
        "--schedule",
        "daily 02:30",
    ]);
    let runs = json_of(&server.cli_via(remote, &["db", "backup", "shop", "--json"]));
    assert_eq!(runs[0]["status"], "succeeded", "{runs}");
    let id = runs[0]["id"].as_str().unwrap().to_owned();
    let verified = json_of(&server.cli_via(remote, &["db", "verify", &id, "--json"]));
    assert_eq!(verified["ok"], true, "{verified}");
    let tested = server.cli_output(remote, &["target", "test", "broken"]);
    assert!(
        !tested.status.success(),
        "the broken target passed its test"
    );

    let labels = [("workspace", "default"), ("database", "shop")];
    let done = scrape_until(&metrics, "health checks and a failed notification", |s| {
        s.sum("statehouse_database_up", &labels) == 1.0
            && s.sum(
                "statehouse_notification_failures_total",
                &[("kind", "webhook")],
            ) >= 1.0
            && s.sum(
                "statehouse_notifications_sent_total",
                &[("kind", "webhook")],
            ) >= 1.0
    });
    // The backup finished after this server started, within the test's time.
    let started = done.value("process_start_time_seconds", &[]);
    let last = done.value("statehouse_backup_last_success_timestamp_seconds", &labels);
    assert!(
        last >= started - 2.0 && last <= started + 600.0,
        "started {started}, backup {last}"
    );
    assert!(done.value("statehouse_backup_last_size_bytes", &labels) > 0.0);
    assert!(done.value("statehouse_backup_last_duration_seconds", &labels) >= 0.0);
    assert_eq!(
        done.value("statehouse_backup_consecutive_failures", &labels),
        0.0
    );
    assert_eq!(
        done.value("statehouse_backup_last_verification_success", &labels),
        1.0
    );
    assert!(
        done.value(
            "statehouse_backup_last_verification_timestamp_seconds",
            &labels
        ) >= last
    );
    assert_eq!(
        done.value("statehouse_backup_schedule_interval_seconds", &labels),
        86_400.0
    );
    assert_eq!(done.value("statehouse_backup_enabled", &labels), 1.0);
    assert_eq!(
        done.value("statehouse_database_health_consecutive_failures", &labels),
        0.0
    );
    assert!(
        done.sum(
            "statehouse_target_errors_total",
            &[("target", "broken"), ("operation", "probe")]
        ) >= 1.0,
        "{}",
        done.text
    );
    assert!(done.value("process_resident_memory_bytes", &[]) > 0.0);
    assert!(done.value("process_open_fds", &[]) >= 1.0);
    assert!(done.value("process_cpu_seconds_total", &[]) > 0.0);
    for secret in [
        closed_url.as_str(),
        hook_url.as_str(),
        db.url.as_str(),
        server.admin_token.as_str(),
    ] {
        assert!(
            !done.text.contains(secret),
            "{secret:?} leaked into /metrics"
        );
    }

    // Every metric the shipped rules and dashboard name is on the server.
    let alerts_path = repo_file("deploy/prometheus/alerts.yml");
    let dashboard_path = repo_file("deploy/grafana/statehouse.json");
    let alerts = std::fs::read_to_string(&alerts_path).unwrap();
    let dashboard_text = std::fs::read_to_string(&dashboard_path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard_text).unwrap();
    let served = done.names();
    for (file, text) in [
        ("alerts.yml", &alerts),
        ("statehouse.json", &dashboard_text),
    ] {
        let named = referenced_names(text);
        assert!(named.len() > 10, "{file} names only {named:?}");
        let missing: Vec<&String> = named
            .iter()
            .filter(|n| !served.contains(n.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics the server does not serve: {missing:?}\n{}",
            done.text
        );
    }
    let work = tempfile::tempdir().unwrap();
    let dashboard_rules = work.path().join("dashboard-rules.yml");
    std::fs::write(&dashboard_rules, dashboard_queries_as_rules(&dashboard)).unwrap();
    if promtool_checks(&[&alerts_path, &dashboard_rules]) {
        // The rules' unit tests: they fire when they should, once for several replicas.
        let tests = repo_file("deploy/prometheus/alerts_test.yml");
        let out = Command::new("promtool")
            .args(["test", "rules"])
            .arg(&tests)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool test rules {}:\n{}{}",
            tests.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn metrics_token_own_listener_and_state_labels(store: Store) {
    if skip_e2e() {
        return;
    }
    let secrets = tempfile::tempdir().unwrap();
    let token = format!("mt-{}", unique_name("token"));
    let token_file = secrets.path().join("metrics.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let token_path = token_file.display().to_string();
    let server = Server::start_allowing(
        store,
        &[
            ("STATEHOUSE_METRICS__LISTEN", "127.0.0.1:0"),
            ("STATEHOUSE_METRICS__TOKEN_FILE", token_path.as_str()),
            ("STATEHOUSE_METRICS__STATE_LABELS", "true"),
        ],
    );
    assert!(
        server.wait_for_log("metrics: http://"),
        "{}",
        server.log_text()
    );
    let log = server.log_text();
    let metrics = log
        .lines()
        .find_map(|l| l.split("metrics: ").nth(1))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        metrics.starts_with("http://127.0.0.1:") && metrics.ends_with("/metrics"),
        "{metrics}"
    );
    assert_ne!(
        metrics,
        format!("{}/metrics", server.url),
        "its own listener"
    );
    assert!(!log.contains(&token), "the token was logged");

    // The main listener does not serve it; the metrics listener wants the token.
    assert_eq!(
        scrape_at(&format!("{}/metrics", server.url), None).status(),
        404
    );
    let refused = scrape_at(&metrics, None);
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    assert_eq!(scrape_at(&metrics, Some("wrong")).status(), 401);
    assert_eq!(
        scrape_at(&metrics, Some(&format!("{token}x"))).status(),
        401
    );

    // Per-state labels, asked for: a state's writes and its held lock carry its name.
    let state = unique_name("labelled");
    let address = server.tf_address("default", &state);
    assert_eq!(send(&server, "LOCK", &address, lock_info("L9"), false), 200);
    assert_eq!(
        send(
            &server,
            "POST",
            &format!("{address}?ID=L9"),
            state_body(1, "x"),
            true
        ),
        200
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let labelled = loop {
        let s = scrape(&metrics, Some(&token));
        if s.samples.iter().any(|x| {
            x.name == "statehouse_lock_age_seconds" && x.labels.get("state") == Some(&state)
        }) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no per-state lock age:\n{}",
            s.text
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        labelled.value(
            "statehouse_state_writes_total",
            &[("workspace", "default"), ("state", &state)]
        ),
        1.0
    );
    assert!(!labelled.text.contains(&token));
    assert_eq!(
        send(&server, "UNLOCK", &address, lock_info("L9"), false),
        200
    );

    // Turned off: no /metrics anywhere.
    let off = Server::start_with(store, &[("STATEHOUSE_METRICS__ENABLED", "false")]);
    assert_eq!(
        scrape_at(&format!("{}/metrics", off.url), None).status(),
        404
    );
    assert!(
        !off.log_text().contains("metrics: http"),
        "{}",
        off.log_text()
    );
}
