//! The audit log through the real binary on both stores: entries queued by reads survive a
//! graceful shutdown, `statehouse audit export` prints them, and `statehouse audit verify`
//! exits non-zero naming the entry after someone edits the database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::{Server, Store, Via, skip_e2e};
use serde_json::Value;

on_both_stores!(shutdown_keeps_every_entry_and_verify_catches_tampering);

fn state_body(serial: i64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": 4, "terraform_version": "1.0.3", "serial": serial, "lineage": "audit-e2e",
        "outputs": {}, "resources": []
    }))
    .unwrap()
}

fn tamper(server: &Server, sql: &str) {
    server.execute_sql(sql);
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
    tamper(
        &server,
        &format!("UPDATE audit_entries SET actor = 'someone-else' WHERE seq = {victim}"),
    );
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
