//! The audit log through the real binary on both stores: entries queued by reads survive a
//! graceful shutdown, `statehouse audit export` prints them, and `statehouse audit verify`
//! exits non-zero naming the entry after someone edits the database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::{Server, Store, Via, skip_e2e};
use serde_json::Value;

on_both_stores!(
    shutdown_keeps_every_entry_and_verify_catches_tampering,
    verify_names_an_entry_inserted_past_the_head,
);

fn state_body(serial: i64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": 4, "terraform_version": "1.0.3", "serial": serial, "lineage": "audit-e2e",
        "outputs": {}, "resources": []
    }))
    .unwrap()
}

fn shutdown_keeps_every_entry_and_verify_catches_tampering(store: Store) {
    if skip_e2e() {
        return;
    }
    let mut server = Server::start(store);
    let address = server.tf_address("default", "audited");
    let token = server.admin_token.clone();
    let written = server.request("POST", &address, &token, state_body(1));
    assert_eq!(written.status(), 200);
    for _ in 0..20 {
        assert_eq!(
            server.request("GET", &address, &token, Vec::new()).status(),
            200
        );
    }
    assert_eq!(
        server
            .request("GET", &address, "sht_wrong", Vec::new())
            .status(),
        401
    );
    // Reads are audited without waiting: the graceful stop must store them.
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(
        server.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        server.log_text()
    );

    let export = server.cli(&["audit", "export"]);
    let entries: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |action: &str, outcome: &str| {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == outcome)
            .count()
    };
    assert_eq!(count("state.write", "success"), 1);
    assert_eq!(
        count("state.read", "success"),
        20,
        "every read survived the shutdown"
    );
    assert_eq!(count("token.authenticate", "denied"), 1);
    let failed = entries
        .iter()
        .find(|e| e["action"] == "token.authenticate")
        .unwrap();
    assert_eq!(failed["source_ip"], "127.0.0.1");
    let only_reads = server.cli(&[
        "audit", "export", "--action", "state.*", "--target", "audited",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&only_reads.stdout).lines().count(),
        21
    );

    let ok = server.cli(&["audit", "verify"]);
    assert!(String::from_utf8_lossy(&ok.stderr).contains("intact"));

    let victim = entries
        .iter()
        .find(|e| e["action"] == "state.write")
        .unwrap()["seq"]
        .as_i64()
        .unwrap();
    server.execute_sql(&format!(
        "UPDATE audit_entries SET actor = 'someone-else' WHERE seq = {victim}"
    ));
    let caught = server.cli_output(Via::Local, &["audit", "verify"]);
    let stderr = String::from_utf8_lossy(&caught.stderr);
    assert!(
        !caught.status.success(),
        "tampering must fail verification: {stderr}"
    );
    assert!(
        stderr.contains("tampered") && stderr.contains(&format!("entry {victim} was altered")),
        "{stderr}"
    );
}

/// An entry inserted past the chain head blocks sealing until it is removed: verify must still
/// answer, exit 1 and name it (not fail as if the server were unavailable), changes must still
/// be answered, their entries waiting (pending) with them, the server log must say why the log
/// cannot grow, and once the entry is removed nothing is missing.
fn verify_names_an_entry_inserted_past_the_head(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    let address = server.tf_address("default", "beyond");
    let token = server.admin_token.clone();
    assert_eq!(
        server
            .request("POST", &address, &token, state_body(1))
            .status(),
        200
    );
    // Right after the head, where the next entry would go (the local CLI stores its own entries
    // before exiting, so the head is the newest entry now).
    server.cli(&["audit", "verify"]);
    server.execute_sql(
        "INSERT INTO audit_entries (seq, at, actor, action, outcome, prev_hash, hash) \
         SELECT seq + 1, at, 'mallory', 'state.read', 'success', hash, hash FROM audit_entries \
         WHERE seq = (SELECT MAX(seq) FROM audit_entries)",
    );
    let mallory = server.cli(&["audit", "export", "--actor", "mallory"]);
    let inserted: Value = serde_json::from_slice(&mallory.stdout).unwrap();
    let inserted = inserted["seq"].as_i64().unwrap();
    assert_eq!(
        server
            .request("POST", &address, &token, state_body(2))
            .status(),
        200,
        "a change does not wait for the chain: {}",
        server.log_text()
    );
    for via in [
        Via::Local,
        Via::Remote {
            token: Some(&token),
        },
    ] {
        let caught = server.cli_output(via, &["audit", "verify"]);
        let stderr = String::from_utf8_lossy(&caught.stderr);
        assert_eq!(caught.status.code(), Some(1), "{via:?}: {stderr}");
        assert!(
            stderr.contains("tampered")
                && stderr.contains(&format!("entry {inserted} lies beyond the chain head")),
            "{via:?}: {stderr}"
        );
    }
    let report = server.cli_output(
        Via::Remote {
            token: Some(&token),
        },
        &["audit", "verify", "--json"],
    );
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["problem"]["kind"], "inserted", "{report}");
    assert_eq!(report["problem"]["seq"], inserted, "{report}");
    assert!(
        report["unsealed"].as_i64() >= Some(1),
        "the write waits: {report}"
    );
    // The writer tried to seal the write's entry after the head and says what stops it.
    let blocked = format!("audit entry {inserted} already exists beyond the chain head");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.log_text().contains(&blocked) {
        assert!(
            std::time::Instant::now() < deadline,
            "the log should say {blocked:?}: {}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    server.execute_sql("DELETE FROM audit_entries WHERE actor = 'mallory'");
    server.cli(&["audit", "verify"]);
    let writes = server.cli(&[
        "audit",
        "export",
        "--action",
        "state.write",
        "--target",
        "beyond",
    ]);
    let writes = String::from_utf8_lossy(&writes.stdout);
    assert_eq!(
        writes.lines().count(),
        2,
        "both writes are audited: {writes}"
    );
}
