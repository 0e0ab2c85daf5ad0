//! Pulumi's DIY backend against the S3 endpoint, on both stores: `tests/s3/pulumi_replay.py`
//! replays the S3 traffic of Pulumi's commands with boto3 (login, stack init, an update of 50
//! growing checkpoints up to 20 MB, history and backups, two concurrent updates, cancel,
//! export/import, stack ls over 200 stacks, rename, rm), once with boto3's default checksums
//! and once with `when_required`. Then the stack is a state: its versions, a diff of two
//! checkpoints, its outputs, a search hit, a rollback that the S3 endpoint then serves, and the
//! audit entries of its writes and locks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::process::Command;

use common::s3::{python, s3_key, script};
use common::{Server, Store, describe, http_client, skip_e2e};
use serde_json::Value;

on_both_stores!(pulumi_sequences_replayed_with_boto3);

fn api(server: &Server, path: &str) -> Value {
    let url = format!("{}/api/v1{path}", server.url);
    let response = http_client()
        .get(&url)
        .bearer_auth(&server.admin_token)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    let text = response.text().unwrap_or_default();
    assert_eq!(status, 200, "GET {url}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: {e}: {text}"))
}

fn replay(server: &Server, bucket: &str, checksums: &str) -> Value {
    let (id, secret) = s3_key(server, bucket, "editor", &format!("laptop-{checksums}"));
    let (other_id, other_secret) = s3_key(server, bucket, "editor", &format!("ci-{checksums}"));
    let out = Command::new(python())
        .arg(script("pulumi_replay.py"))
        .env("S3_ENDPOINT", &server.s3_url)
        .env("S3_BUCKET", bucket)
        .env("S3_CHECKSUMS", checksums)
        .env("S3_KEY_ID", &id)
        .env("S3_SECRET", &secret)
        .env("S3_OTHER_KEY_ID", &other_id)
        .env("S3_OTHER_SECRET", &other_secret)
        .output()
        .expect("running the replay");
    assert!(
        out.status.success(),
        "the Pulumi replay ({checksums}) failed: {}\n{}",
        describe(&out),
        server.log_text()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("the replay's facts")
}

fn pulumi_sequences_replayed_with_boto3(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    for (bucket, checksums) in [("platform", "when_supported"), ("legacy", "when_required")] {
        server.create_workspace(bucket);
        let facts = replay(&server, bucket, checksums);
        assert!(facts["last_checkpoint_bytes"].as_u64().unwrap_or(0) > 16 << 20);
    }

    // The stack is a state, with a version per distinct checkpoint: init, 50 saves (the
    // repeated last one added none), the import.
    let stack = "pulumi%2Fweb%2Fdev";
    let versions = api(
        &server,
        &format!("/workspaces/platform/states/{stack}/versions?limit=100"),
    );
    let list = versions["items"].as_array().expect("versions");
    assert_eq!(list.len(), 52, "init + 50 checkpoints + import: {versions}");
    assert_eq!(list[0]["version"], 52);
    assert_eq!(
        list[0]["serial"], 52,
        "a stack's serial is its version number"
    );

    // A diff of two checkpoints, by URN.
    let diff = api(
        &server,
        &format!("/workspaces/platform/states/{stack}/diff?from=2&to=3"),
    );
    assert_eq!(diff["diff"]["kind"], "pulumi", "{diff}");
    let added = diff["diff"]["added"].as_array().expect("added");
    assert_eq!(
        added.len(),
        100,
        "100 buckets were added between the two: {diff}"
    );

    // Outputs: the root stack resource's.
    let outputs = api(
        &server,
        &format!("/workspaces/platform/states/{stack}/outputs"),
    );
    let text = outputs.to_string();
    assert!(text.contains("https://imported.example.com"), "{outputs}");

    // Rollback to a checkpoint of the update; the S3 endpoint then serves it.
    let url = format!(
        "{}/api/v1/workspaces/platform/states/{stack}/rollback",
        server.url
    );
    let response = http_client()
        .post(&url)
        .bearer_auth(&server.admin_token)
        .json(&serde_json::json!({"version": 2}))
        .send()
        .expect("rollback");
    let status = response.status();
    let body: Value = response.json().unwrap_or_default();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 53);
    let current = api(
        &server,
        &format!("/workspaces/platform/states/{stack}/versions/53/body"),
    );
    let marker = &current["checkpoint"]["latest"]["resources"][0]["outputs"]["marker"];
    assert_eq!(
        marker, "step-1",
        "version 2 was the update's first checkpoint"
    );

    // The renamed stack's old name and the removed stack are restorable deleted states.
    let deleted = api(&server, "/workspaces/platform/deleted-states");
    let names: Vec<&str> = deleted["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(
        names.contains(&"pulumi/web/s001") && names.contains(&"pulumi/web/s002"),
        "{deleted}"
    );

    // Audited: the stack's writes, the locks, a plain object's write and copy, the removal.
    for action in [
        "state.write",
        "lock.acquire",
        "lock.release",
        "object.write",
        "object.copy",
        "state.delete",
    ] {
        let found = api(
            &server,
            &format!("/audit?workspace=platform&action={action}&limit=1"),
        );
        assert_eq!(
            found["items"].as_array().map(Vec::len),
            Some(1),
            "{action} is audited: {found}"
        );
    }
}
