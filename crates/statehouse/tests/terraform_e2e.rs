//! End-to-end tests: the real `statehouse` binary driven by the real Terraform 1.0.3 client
//! through its `http` backend, each test on SQLite and on PostgreSQL.
//!
//! Needs `STATEHOUSE_TERRAFORM` and `STATEHOUSE_TEST_PG_URL`, which `scripts/test.sh` provides.
//! Only what Terraform has built in is used (outputs, locals, variables,
//! `terraform_remote_state`): no provider can be downloaded here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use base64::Engine;
use common::{
    Server, Store, Terraform, describe, pg_url, pg_url_without_tls, skip_e2e, unique_name,
};
use md5::Digest;
use serde_json::{Value, json};

on_both_stores!(
    apply_reapply_and_clean_plan,
    remote_state_is_readable_with_a_viewer_token,
    outputs_role_reads_outputs_without_resources,
    lock_contention_and_force_unlock,
    state_push_pull_1mb,
    state_push_pull_50mb,
    migrate_from_the_pg_backend,
    gitlab_style_lock_addresses,
    lost_update_protection_and_allow_overwrite,
    diff_and_rollback_then_clean_plan,
);

const APPLY: &[&str] = &["apply", "-input=false", "-no-color", "-auto-approve"];
const INIT: &[&str] = &["init", "-input=false", "-no-color"];

/// Starts a server for `store`, or `None` when end-to-end tests are switched off. Fails with
/// a pointer to `scripts/test.sh` when Terraform or the test PostgreSQL is not provided.
fn start(store: Store) -> Option<Server> {
    if skip_e2e() {
        return None;
    }
    // Both are required whatever the store, so a run without them never passes half-done.
    common::terraform_bin();
    pg_url();
    Some(Server::start(store))
}

fn temp_dir(label: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("statehouse-e2e-{label}-"))
        .tempdir()
        .expect("temp dir")
}

/// A working dir whose backend is statehouse, authenticating with `token`.
fn workdir(dir: &std::path::Path, token: &str) -> Terraform {
    let mut tf = Terraform::new(dir);
    tf.set_env("TF_HTTP_USERNAME", "e2e");
    tf.set_env("TF_HTTP_PASSWORD", token);
    tf
}

/// The `http` backend block as Terraform's docs describe it: locking on the state address
/// with the default LOCK/UNLOCK methods.
fn http_backend(address: &str) -> String {
    format!(
        r#"
terraform {{
  backend "http" {{
    address        = "{address}"
    lock_address   = "{address}"
    unlock_address = "{address}"
  }}
}}
"#
    )
}

/// GitLab's style: POST `<address>/lock` locks, DELETE `<address>/lock` unlocks.
fn gitlab_backend(address: &str) -> String {
    format!(
        r#"
terraform {{
  backend "http" {{
    address        = "{address}"
    lock_address   = "{address}/lock"
    unlock_address = "{address}/lock"
    lock_method    = "POST"
    unlock_method  = "DELETE"
  }}
}}
"#
    )
}

/// Outputs built from a variable and locals only.
const OUTPUTS: &str = r#"
variable "greeting" {
  type    = string
  default = "hello"
}

locals {
  words = ["alpha", "beta", var.greeting]
}

output "greeting" {
  value = var.greeting
}

output "words" {
  value = local.words
}

output "settings" {
  value = {
    region   = "eu-1"
    replicas = 3
    tags     = { team = "infra" }
  }
}
"#;

/// `terraform output -json` reduced to name → value.
fn output_values(tf: &Terraform) -> Value {
    let text = tf.ok(&["output", "-json", "-no-color"]);
    let all: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("`terraform output -json` is not JSON ({e}):\n{text}"));
    let map = all
        .as_object()
        .unwrap_or_else(|| panic!("`terraform output -json` is not an object:\n{text}"));
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), v["value"].clone()))
            .collect(),
    )
}

/// The outputs of a state document reduced to name → value.
fn state_output_values(state: &Value) -> Value {
    let map = state["outputs"]
        .as_object()
        .unwrap_or_else(|| panic!("state has no outputs object: {state}"));
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), v["value"].clone()))
            .collect(),
    )
}

fn expected_outputs(greeting: &str) -> Value {
    json!({
        "greeting": greeting,
        "words": ["alpha", "beta", greeting],
        "settings": { "region": "eu-1", "replicas": 3, "tags": { "team": "infra" } },
    })
}

fn serial(state: &Value) -> i64 {
    state["serial"]
        .as_i64()
        .unwrap_or_else(|| panic!("state has no serial: {state}"))
}

/// A LockInfo body as Terraform sends it.
fn lock_info(id: &str, who: &str) -> Vec<u8> {
    json!({
        "ID": id,
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": who,
        "Version": "1.0.3",
        "Created": "2026-01-01T00:00:00Z",
        "Path": "",
    })
    .to_string()
    .into_bytes()
}

/// Tries to take the lock with a fresh ID; expects 423 with the holder's LockInfo and returns it.
fn current_holder(server: &Server, lock_url: &str, method: &str) -> Value {
    let probe = lock_info(&unique_name("probe"), "probe@e2e");
    let response = server.request(method, lock_url, &server.admin_token, probe);
    let status = response.status();
    let body = response.text().expect("lock response body");
    assert_eq!(
        status, 423,
        "{method} {lock_url} on a held lock: expected 423 with the holder's LockInfo, got {status}: {body}"
    );
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("423 body is not the holder's LockInfo JSON ({e}): {body}"))
}

/// Asserts the state is not locked by taking and releasing a lock with an admin token.
fn assert_unlocked(server: &Server, address: &str) {
    let id = unique_name("check");
    let info = lock_info(&id, "check@e2e");
    let r = server.request("LOCK", address, &server.admin_token, info.clone());
    let status = r.status();
    let body = r.text().unwrap_or_default();
    assert_eq!(
        status, 200,
        "LOCK {address}: the state should be unlocked, got {status}: {body}"
    );
    let r = server.request("UNLOCK", address, &server.admin_token, info);
    let status = r.status();
    assert_eq!(
        status,
        200,
        "UNLOCK {address} of our own lock: got {status}: {}",
        r.text().unwrap_or_default()
    );
}

// ---- 1. init, apply, re-apply, clean plan -------------------------------------------------------

fn apply_reapply_and_clean_plan(store: Store) {
    let Some(server) = start(store) else { return };
    let editor = server.create_token("default", "editor", "ci-apply");
    let address = server.tf_address("default", "team-a/network/prod");
    let dir = temp_dir("apply");
    let tf = workdir(dir.path(), &editor);
    tf.write_config(&format!("{}{OUTPUTS}", http_backend(&address)));

    tf.ok(INIT);
    tf.ok(APPLY);
    assert_eq!(output_values(&tf), expected_outputs("hello"));
    let first = server.state_json("default", "team-a/network/prod", &server.admin_token);
    assert_eq!(state_output_values(&first), expected_outputs("hello"));
    assert_eq!(first["version"], 4, "{first}");

    // A change: the serial grows, same lineage.
    tf.ok(&[APPLY, &["-var", "greeting=world"]].concat());
    let second = server.state_json("default", "team-a/network/prod", &server.admin_token);
    assert_eq!(state_output_values(&second), expected_outputs("world"));
    assert!(
        serial(&second) > serial(&first),
        "serial did not grow: {first} -> {second}"
    );
    assert_eq!(second["lineage"], first["lineage"]);

    // Re-apply without changes: nothing to do, state unchanged.
    let again = tf.ok(&[APPLY, &["-var", "greeting=world"]].concat());
    assert!(again.contains("Apply complete!"), "{again}");
    let third = server.state_json("default", "team-a/network/prod", &server.admin_token);
    assert_eq!(
        serial(&third),
        serial(&second),
        "a no-op apply changed the serial"
    );

    // Plan agrees: exit 0 = no changes; exit 2 = changes.
    let plan = tf.run(&[
        "plan",
        "-input=false",
        "-no-color",
        "-detailed-exitcode",
        "-var",
        "greeting=world",
    ]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "plan should report no changes\n{}",
        describe(&plan)
    );
    let plan = tf.run(&["plan", "-input=false", "-no-color", "-detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "plan should report output changes\n{}",
        describe(&plan)
    );

    // A fresh working dir sees the same state through the backend.
    let other = temp_dir("apply-2");
    let tf2 = workdir(other.path(), &editor);
    tf2.write_config(&format!("{}{OUTPUTS}", http_backend(&address)));
    tf2.ok(INIT);
    assert_eq!(output_values(&tf2), expected_outputs("world"));
    assert_unlocked(&server, &address);
}

// ---- 2. terraform_remote_state through statehouse ----------------------------------------------

fn remote_state_reader(address: &str, token: &str) -> String {
    format!(
        r#"
data "terraform_remote_state" "shared" {{
  backend = "http"
  config = {{
    address  = "{address}"
    username = "reader"
    password = "{token}"
  }}
}}

output "copied_greeting" {{
  value = data.terraform_remote_state.shared.outputs.greeting
}}

output "copied_settings" {{
  value = data.terraform_remote_state.shared.outputs.settings
}}
"#
    )
}

fn remote_state_is_readable_with_a_viewer_token(store: Store) {
    let Some(server) = start(store) else { return };
    let editor = server.create_token("default", "editor", "writer");
    let viewer = server.create_token("default", "viewer", "reader");
    server.create_workspace("elsewhere");
    let stranger = server.create_token("elsewhere", "viewer", "stranger");
    let address = server.tf_address("default", "shared/outputs");

    let writer_dir = temp_dir("writer");
    let writer = workdir(writer_dir.path(), &editor);
    writer.write_config(&format!("{}{OUTPUTS}", http_backend(&address)));
    writer.ok(INIT);
    writer.ok(&[APPLY, &["-var", "greeting=from-writer"]].concat());

    // The reader keeps its own state locally; it reads the writer's through the data source.
    for token in [
        server.admin_token.as_str(),
        editor.as_str(),
        viewer.as_str(),
    ] {
        let reader_dir = temp_dir("reader");
        let reader = Terraform::new(reader_dir.path());
        reader.write_config(&remote_state_reader(&address, token));
        reader.ok(INIT);
        reader.ok(APPLY);
        assert_eq!(
            output_values(&reader),
            json!({
                "copied_greeting": "from-writer",
                "copied_settings": { "region": "eu-1", "replicas": 3, "tags": { "team": "infra" } },
            })
        );
    }

    // A token of another workspace reads nothing: to it the workspace looks missing (404,
    // which Terraform reads as "no state").
    let reader_dir = temp_dir("stranger");
    let reader = Terraform::new(reader_dir.path());
    reader.write_config(&remote_state_reader(&address, &stranger));
    reader.ok(INIT);
    let refused = reader.fails(APPLY);
    assert!(
        refused.contains("Unable to find remote state"),
        "expected a 404 answer:\n{refused}"
    );

    // A viewer cannot write: the apply fails and the state stays as it was.
    let before = server.state_json("default", "shared/outputs", &server.admin_token);
    let viewer_dir = temp_dir("viewer-writes");
    let as_viewer = workdir(viewer_dir.path(), &viewer);
    as_viewer.write_config(&format!("{}{OUTPUTS}", http_backend(&address)));
    as_viewer.ok(INIT);
    let refused = as_viewer.fails(&[APPLY, &["-var", "greeting=from-viewer"]].concat());
    assert!(
        refused.contains("Error acquiring the state lock") && refused.contains("invalid auth"),
        "expected the viewer's LOCK to be refused with 403:\n{refused}"
    );
    let after = server.state_json("default", "shared/outputs", &server.admin_token);
    assert_eq!(before, after, "a viewer's apply changed the state");
    assert_unlocked(&server, &address);
}

/// A consumer given only the `outputs` role reads the producer's outputs through
/// `terraform_remote_state`; the state it can get has no resources (here: the producer's own
/// `terraform_remote_state` data source, whose attributes hold the producer's token).
fn outputs_role_reads_outputs_without_resources(store: Store) {
    let Some(server) = start(store) else { return };
    let editor = server.create_token("default", "editor", "producer");
    let viewer = server.create_token("default", "viewer", "auditor");
    let outputs = server.create_token("default", "outputs", "consumer");
    let base = server.tf_address("default", "outputs-role/base");
    let producer_address = server.tf_address("default", "outputs-role/producer");

    let base_dir = temp_dir("base");
    let base_tf = workdir(base_dir.path(), &editor);
    base_tf.write_config(&format!("{}{OUTPUTS}", http_backend(&base)));
    base_tf.ok(INIT);
    base_tf.ok(&[APPLY, &["-var", "greeting=from-base"]].concat());

    // The producer reads the base state (a real resource instance in its own state) and
    // publishes outputs.
    let producer_dir = temp_dir("producer");
    let producer = workdir(producer_dir.path(), &editor);
    producer.write_config(&format!(
        "{}{}",
        http_backend(&producer_address),
        remote_state_reader(&base, &editor)
    ));
    producer.ok(INIT);
    producer.ok(APPLY);
    let full = server.state_json("default", "outputs-role/producer", &viewer);
    assert!(
        full["resources"].as_array().is_some_and(|r| !r.is_empty()),
        "a viewer reads the resources: {full}"
    );
    assert!(
        full.to_string().contains(&editor),
        "the data source's config holds the token"
    );

    // The consumer, with the outputs role, reads the producer's outputs.
    let consumer_dir = temp_dir("consumer");
    let consumer = Terraform::new(consumer_dir.path());
    consumer.write_config(&format!(
        r#"
data "terraform_remote_state" "producer" {{
  backend = "http"
  config = {{
    address  = "{producer_address}"
    username = "consumer"
    password = "{outputs}"
  }}
}}

output "region" {{
  value = data.terraform_remote_state.producer.outputs.copied_settings.region
}}

output "greeting" {{
  value = data.terraform_remote_state.producer.outputs.copied_greeting
}}
"#
    ));
    consumer.ok(INIT);
    consumer.ok(APPLY);
    assert_eq!(
        output_values(&consumer),
        json!({ "region": "eu-1", "greeting": "from-base" })
    );

    // Read directly with the outputs token: outputs and identity, no resources, no secrets.
    let url = server.tf_address("default", "outputs-role/producer");
    let response = server.request("GET", &url, &outputs, Vec::new());
    assert_eq!(response.status(), 200);
    let md5 = response.headers()["content-md5"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.bytes().unwrap();
    assert_eq!(
        md5,
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body))
    );
    let reduced: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reduced["resources"], json!([]));
    for field in [
        "version",
        "terraform_version",
        "serial",
        "lineage",
        "outputs",
    ] {
        assert_eq!(reduced[field], full[field], "{field}");
    }
    assert!(
        !String::from_utf8_lossy(&body).contains(&editor),
        "no resource attributes leak"
    );

    // The outputs role cannot be a backend: Terraform's LOCK is refused.
    let as_consumer_dir = temp_dir("outputs-writes");
    let as_consumer = workdir(as_consumer_dir.path(), &outputs);
    as_consumer.write_config(&format!("{}{OUTPUTS}", http_backend(&producer_address)));
    as_consumer.ok(INIT);
    let refused = as_consumer.fails(APPLY);
    assert!(
        refused.contains("Error acquiring the state lock") && refused.contains("invalid auth"),
        "expected the outputs role's LOCK to be refused with 403:\n{refused}"
    );
    assert_eq!(
        server.state_json("default", "outputs-role/producer", &viewer),
        full,
        "nothing changed"
    );
}

// ---- 3. lock contention, force-unlock ----------------------------------------------------------

fn lock_contention_and_force_unlock(store: Store) {
    let Some(server) = start(store) else { return };
    let holder_token = server.create_token("default", "editor", "holder");
    let other_editor = server.create_token("default", "editor", "other-editor");
    let address = server.tf_address("default", "locks/contended");
    let config = format!("{}{OUTPUTS}", http_backend(&address));

    let holder_dir = temp_dir("holder");
    let holder = workdir(holder_dir.path(), &holder_token);
    holder.write_config(&config);
    holder.ok(INIT);
    holder.ok(APPLY);

    // An apply without -auto-approve takes the lock, then waits at the approval prompt.
    let mut waiting = holder.spawn_interactive(&["apply", "-no-color", "-var", "greeting=held"]);
    waiting.wait_for("Enter a value:", Duration::from_secs(120));

    // The server names the holder: its LockInfo as Terraform sent it.
    let held = current_holder(&server, &address, "LOCK");
    let lock_id = held["ID"]
        .as_str()
        .unwrap_or_else(|| panic!("holder LockInfo without ID: {held}"))
        .to_owned();
    assert_eq!(held["Operation"], "OperationTypeApply", "{held}");
    assert!(
        held["Who"].as_str().is_some_and(|w| !w.is_empty()),
        "{held}"
    );

    // A second apply fails on the lock and shows the holder's lock ID.
    let second_dir = temp_dir("second");
    let mut second = workdir(second_dir.path(), &other_editor);
    second.write_config(&config);
    second.ok(INIT);
    let failed = second.fails(&[APPLY, &["-var", "greeting=second"]].concat());
    assert!(
        failed.contains("Error acquiring the state lock"),
        "{failed}"
    );
    assert!(
        failed.contains(&lock_id),
        "the lock error does not show the holder's lock ID {lock_id}:\n{failed}"
    );
    // Terraform 1.0.3 prints only the ID for the http backend; newer clients print the whole
    // LockInfo, Who included.
    if failed.contains("Who:") {
        let who = held["Who"].as_str().unwrap_or_default();
        assert!(
            failed.contains(who),
            "lock error does not show Who {who}:\n{failed}"
        );
    }

    // An editor who does not hold the lock cannot force-unlock it.
    let refused = second.fails(&["force-unlock", "-force", "-no-color", &lock_id]);
    assert!(
        refused.contains("403") && !refused.contains("successfully unlocked"),
        "expected the editor's force-unlock to be refused with 403:\n{refused}"
    );
    let still = current_holder(&server, &address, "LOCK");
    assert_eq!(
        still["ID"],
        lock_id.as_str(),
        "the lock changed after a refused force-unlock"
    );

    // An admin can.
    second.set_env("TF_HTTP_PASSWORD", &server.admin_token);
    let unlocked = second.ok(&["force-unlock", "-force", "-no-color", &lock_id]);
    assert!(unlocked.contains("successfully unlocked"), "{unlocked}");

    // Now the other editor's apply goes through.
    second.set_env("TF_HTTP_PASSWORD", &other_editor);
    second.ok(&[APPLY, &["-var", "greeting=second"]].concat());
    let state = server.state_json("default", "locks/contended", &server.admin_token);
    assert_eq!(state_output_values(&state), expected_outputs("second"));

    // The old holder, approving now, must not overwrite what was written after its lock was
    // broken: its write carries a lock ID that is no longer held.
    waiting.send_line("yes");
    let (status, output) = waiting.finish();
    assert!(
        !status.success() && output.contains("Failed to save state") && output.contains("409"),
        "the force-unlocked apply should fail to save its state with 409:\n{output}"
    );
    let state = server.state_json("default", "locks/contended", &server.admin_token);
    assert_eq!(
        state_output_values(&state),
        expected_outputs("second"),
        "the force-unlocked holder overwrote the newer state"
    );
    assert_unlocked(&server, &address);
}

// ---- 4. state push / pull of big states --------------------------------------------------------

/// A valid version 4 state of about `size` bytes: outputs of every kind plus managed resources,
/// in the canonical form Terraform 1.0.3 writes (so a round trip compares equal).
fn big_state(size: usize, salt: &str) -> Value {
    let mut outputs = serde_json::Map::new();
    outputs.insert("salt".into(), json!({"value": salt, "type": "string"}));
    outputs.insert(
        "list".into(),
        json!({"value": [1, 2, 3], "type": ["tuple", ["number", "number", "number"]]}),
    );
    outputs.insert(
        "secret".into(),
        json!({"value": "s3cr3t", "type": "string", "sensitive": true}),
    );
    // Text that does not compress to nothing.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ salt.len() as u64;
    let mut chunk = |len: usize| -> String {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect()
    };
    let piece = 64 * 1024;
    let mut resources = Vec::new();
    let mut total = 0;
    let mut i = 0;
    while total < size {
        if i % 2 == 0 {
            outputs.insert(
                format!("blob_{i:05}"),
                json!({"value": chunk(piece), "type": "string"}),
            );
        } else {
            resources.push(json!({
                "mode": "managed",
                "type": "null_resource",
                "name": format!("r{i:05}"),
                "provider": "provider[\"registry.terraform.io/hashicorp/null\"]",
                "instances": [{
                    "schema_version": 0,
                    "attributes": { "id": format!("{i}"), "triggers": { "data": chunk(piece) } },
                    "sensitive_attributes": [],
                    "private": "bnVsbA==",
                }],
            }));
        }
        total += piece;
        i += 1;
    }
    json!({
        "version": 4,
        "terraform_version": "1.0.3",
        "serial": 1,
        "lineage": "5e1f7e6a-0000-4000-8000-000000000001",
        "outputs": outputs,
        "resources": resources,
    })
}

/// Everything but serial and lineage, which Terraform's remote state manager assigns itself.
fn content(state: &Value) -> Value {
    let mut v = state.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("serial");
        o.remove("lineage");
    }
    v
}

fn pull(tf: &Terraform) -> Value {
    let text = tf.ok(&["state", "pull"]);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "`terraform state pull` is not JSON ({e}): {}",
            &text[..text.len().min(500)]
        )
    })
}

fn push(tf: &Terraform, state: &Value, file: &str) {
    let path = tf.dir.join(file);
    std::fs::write(&path, serde_json::to_vec(state).expect("serialize state"))
        .expect("write state file");
    tf.ok(&[
        "state",
        "push",
        "-no-color",
        path.to_str().expect("utf-8 path"),
    ]);
}

fn push_pull_roundtrip(store: Store, size: usize) {
    let Some(server) = start(store) else { return };
    let editor = server.create_token("default", "editor", "pusher");
    let name = format!("big/{}mb", size / (1024 * 1024));
    let address = server.tf_address("default", &name);
    let dir = temp_dir("push");
    let tf = workdir(dir.path(), &editor);
    tf.write_config(&http_backend(&address));
    tf.ok(INIT);

    // Into an empty state. Terraform 1.0.3 gives a state pushed to an empty remote a fresh
    // lineage and serial, so those are compared with what the server holds, not with the file.
    let first = big_state(size, "first");
    let first_len = serde_json::to_vec(&first).expect("serialize").len();
    assert!(
        first_len >= size,
        "generated state is only {first_len} bytes"
    );
    push(&tf, &first, "first.tfstate");
    let pulled = pull(&tf);
    assert!(
        content(&pulled) == content(&first),
        "pulled state differs from the pushed one"
    );
    let stored = server.state_json("default", &name, &server.admin_token);
    assert!(
        stored == pulled,
        "the server's state differs from what terraform pulled"
    );

    // Same lineage, higher serial, different content.
    let mut next = big_state(size, "second");
    next["lineage"] = pulled["lineage"].clone();
    next["serial"] = json!(serial(&pulled) + 1);
    push(&tf, &next, "second.tfstate");
    let pulled2 = pull(&tf);
    assert!(
        content(&pulled2) == content(&next),
        "pulled state differs from the second push"
    );
    assert_eq!(pulled2["lineage"], pulled["lineage"]);
    assert!(serial(&pulled2) > serial(&pulled), "serial did not grow");
    let stored = server.state_json("default", &name, &server.admin_token);
    assert!(
        stored == pulled2,
        "the server's state differs from what terraform pulled"
    );
    assert_unlocked(&server, &address);
}

fn state_push_pull_1mb(store: Store) {
    push_pull_roundtrip(store, 1024 * 1024);
}

fn state_push_pull_50mb(store: Store) {
    push_pull_roundtrip(store, 50 * 1024 * 1024);
}

// ---- 5. migrating from Terraform's pg backend ---------------------------------------------------

fn migrate_from_the_pg_backend(store: Store) {
    let Some(server) = start(store) else { return };
    // Terraform's pg backend in a database of its own: its locks are advisory locks on row ids,
    // which would meet those of the other variant running at the same time in one database.
    let database = common::PgDatabase::create("tfpg");
    let conn_str = pg_url_without_tls(&database.url);
    let schema = unique_name("tfpg");
    let editor = server.create_token("default", "editor", "migrator");
    let name = "migrated/from-pg";
    let address = server.tf_address("default", name);

    let dir = temp_dir("migrate");
    let tf = workdir(dir.path(), &editor);
    tf.write_config(&format!(
        r#"
terraform {{
  backend "pg" {{
    conn_str    = "{conn_str}"
    schema_name = "{schema}"
  }}
}}
{OUTPUTS}"#
    ));
    tf.ok(INIT);
    tf.ok(&[APPLY, &["-var", "greeting=from-pg"]].concat());
    tf.ok(&[APPLY, &["-var", "greeting=from-pg-2"]].concat());
    let in_pg = pull(&tf);
    assert_eq!(state_output_values(&in_pg), expected_outputs("from-pg-2"));

    tf.write_config(&format!("{}{OUTPUTS}", http_backend(&address)));
    tf.ok(&[
        "init",
        "-input=false",
        "-no-color",
        "-migrate-state",
        "-force-copy",
    ]);

    let stored = server.state_json("default", name, &server.admin_token);
    assert_eq!(state_output_values(&stored), expected_outputs("from-pg-2"));
    assert_eq!(content(&stored)["resources"], in_pg["resources"]);
    assert_eq!(content(&stored)["outputs"], in_pg["outputs"]);
    assert_eq!(output_values(&tf), expected_outputs("from-pg-2"));
    let plan = tf.run(&[
        "plan",
        "-input=false",
        "-no-color",
        "-detailed-exitcode",
        "-var",
        "greeting=from-pg-2",
    ]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "plan after migration\n{}",
        describe(&plan)
    );

    // And work goes on in statehouse.
    tf.ok(&[APPLY, &["-var", "greeting=in-statehouse"]].concat());
    let stored2 = server.state_json("default", name, &server.admin_token);
    assert_eq!(
        state_output_values(&stored2),
        expected_outputs("in-statehouse")
    );
    assert!(serial(&stored2) > serial(&stored));
    assert_eq!(stored2["lineage"], stored["lineage"]);
    assert_unlocked(&server, &address);
}

// ---- 6. GitLab-style lock addresses --------------------------------------------------------------

fn gitlab_style_lock_addresses(store: Store) {
    let Some(server) = start(store) else { return };
    let editor = server.create_token("default", "editor", "gitlab-style");
    let name = "gitlab/style";
    let address = server.tf_address("default", name);
    let lock_url = format!("{address}/lock");
    let dir = temp_dir("gitlab");
    let tf = workdir(dir.path(), &editor);
    tf.write_config(&format!("{}{OUTPUTS}", gitlab_backend(&address)));
    tf.ok(INIT);
    tf.ok(APPLY);
    tf.ok(&[APPLY, &["-var", "greeting=again"]].concat());
    let state = server.state_json("default", name, &server.admin_token);
    assert_eq!(state_output_values(&state), expected_outputs("again"));
    assert_unlocked(&server, &address);

    // While an apply holds the lock taken with POST <address>/lock, the lock is visible on both
    // styles of address.
    let mut waiting = tf.spawn_interactive(&["apply", "-no-color", "-var", "greeting=held"]);
    waiting.wait_for("Enter a value:", Duration::from_secs(120));
    let held = current_holder(&server, &lock_url, "POST");
    assert_eq!(held["Operation"], "OperationTypeApply", "{held}");
    let held_plain = current_holder(&server, &address, "LOCK");
    assert_eq!(held_plain["ID"], held["ID"]);

    // Approving: the write carries the lock ID, then DELETE <address>/lock releases it.
    waiting.send_line("yes");
    let (status, output) = waiting.finish();
    assert!(
        status.success(),
        "apply holding a GitLab-style lock failed:\n{output}"
    );
    let state = server.state_json("default", name, &server.admin_token);
    assert_eq!(state_output_values(&state), expected_outputs("held"));
    assert_unlocked(&server, &address);
}

// ---- 7. serial/lineage protection and the admin override -------------------------------------

/// A small valid state with the given lineage and serial.
fn small_state(lineage: &str, serial: i64, greeting: &str) -> Value {
    json!({
        "version": 4,
        "terraform_version": "1.0.3",
        "serial": serial,
        "lineage": lineage,
        "outputs": { "greeting": { "value": greeting, "type": "string" } },
        "resources": [],
    })
}

fn lost_update_protection_and_allow_overwrite(store: Store) {
    let Some(server) = start(store) else { return };
    let editor = server.create_token("default", "editor", "pusher");
    let name = "protected/state";
    let address = server.tf_address("default", name);
    let dir = temp_dir("protect");
    let tf = workdir(dir.path(), &editor);
    tf.write_config(&format!("{}{OUTPUTS}", http_backend(&address)));
    tf.ok(INIT);
    tf.ok(APPLY);
    tf.ok(&[APPLY, &["-var", "greeting=second"]].concat());
    let current = server.state_json("default", name, &server.admin_token);
    let lineage = current["lineage"].as_str().expect("lineage").to_owned();

    // `state push -force` skips Terraform's own checks; the server still refuses a stale serial
    // and a foreign lineage.
    let force_push = |state: &Value, file: &str| {
        let path = tf.dir.join(file);
        std::fs::write(&path, serde_json::to_vec(state).expect("serialize")).expect("write state");
        tf.run(&[
            "state",
            "push",
            "-force",
            "-no-color",
            path.to_str().expect("utf-8 path"),
        ])
    };
    for (state, what) in [
        (small_state(&lineage, 0, "stale"), "a stale serial"),
        (
            small_state("0a0a0a0a-0000-4000-8000-00000000000a", 50, "foreign"),
            "a foreign lineage",
        ),
    ] {
        let out = force_push(&state, "refused.tfstate");
        let text = describe(&out);
        assert!(
            !out.status.success() && text.contains("409"),
            "a push with {what} should be refused with 409\n{text}"
        );
        let after = server.state_json("default", name, &server.admin_token);
        assert_eq!(
            after, current,
            "a refused push with {what} changed the state"
        );
    }
    assert_unlocked(&server, &address);

    // An admin allows one overwrite: the foreign state goes in, once.
    server.cli(&[
        "state",
        "allow-overwrite",
        "--workspace",
        "default",
        name,
        "--for",
        "10m",
    ]);
    let replacement = small_state("0b0b0b0b-0000-4000-8000-00000000000b", 1, "replacement");
    let out = force_push(&replacement, "replacement.tfstate");
    assert!(
        out.status.success(),
        "the allowed overwrite failed\n{}",
        describe(&out)
    );
    let replaced = server.state_json("default", name, &server.admin_token);
    assert_eq!(replaced["lineage"], replacement["lineage"]);
    assert_eq!(
        state_output_values(&replaced),
        json!({ "greeting": "replacement" })
    );

    let again = small_state("0c0c0c0c-0000-4000-8000-00000000000c", 1, "again");
    let out = force_push(&again, "again.tfstate");
    assert!(
        !out.status.success() && describe(&out).contains("409"),
        "the overwrite permission should have been used up\n{}",
        describe(&out)
    );
    assert_eq!(
        server.state_json("default", name, &server.admin_token),
        replaced
    );
    assert_unlocked(&server, &address);
}

// ---- history: diff between real versions, rollback, then a clean plan --------------------------

/// Calls the REST API with a bearer token; returns status and JSON body.
fn api(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = common::http_client()
        .request(method, format!("{}/api/v1{path}", server.url))
        .bearer_auth(token);
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().expect("API request");
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, value)
}

fn diff_and_rollback_then_clean_plan(store: Store) {
    let Some(server) = start(store) else { return };
    let editor = server.create_token("default", "editor", "ci-history");
    // A producer state the consumer reads with a real data source instance.
    let producer_address = server.tf_address("default", "history/producer");
    let producer_dir = temp_dir("history-producer");
    let producer = workdir(producer_dir.path(), &editor);
    producer.write_config(&format!("{}{OUTPUTS}", http_backend(&producer_address)));
    producer.ok(INIT);
    producer.ok(APPLY);

    let address = server.tf_address("default", "history/consumer");
    let dir = temp_dir("history");
    let tf = workdir(dir.path(), &editor);
    let data_source = format!(
        r#"
data "terraform_remote_state" "producer" {{
  backend = "http"
  config = {{
    address  = "{producer_address}"
    username = "reader"
    password = "{editor}"
  }}
}}
"#
    );
    tf.write_config(&format!("{}{OUTPUTS}{data_source}", http_backend(&address)));
    tf.ok(INIT);
    tf.ok(APPLY); // version 1: greeting = hello, producer says hello
    producer.ok(&[APPLY, &["-var", "greeting=world"]].concat());
    tf.ok(&[APPLY, &["-var", "greeting=world"]].concat()); // version 2

    let state = "history%2Fconsumer";
    let admin = &server.admin_token;
    let (status, diff) = api(
        &server,
        "GET",
        &format!("/workspaces/default/states/{state}/diff"),
        admin,
        None,
    );
    assert_eq!(status, 200, "{diff}");
    assert_eq!(
        (diff["from"].as_i64(), diff["to"].as_i64()),
        (Some(1), Some(2))
    );
    let changed_greeting = diff["diff"]["outputs"]["changed"]
        .as_array()
        .expect("output changes")
        .iter()
        .find(|c| c["name"] == "greeting")
        .cloned()
        .unwrap_or_else(|| panic!("greeting not among changed outputs: {diff}"));
    assert_eq!(
        (&changed_greeting["before"], &changed_greeting["after"]),
        (&json!("hello"), &json!("world"))
    );
    let changed = diff["diff"]["changed"]
        .as_array()
        .expect("changed instances");
    let data = changed
        .iter()
        .find(|c| c["address"] == "data.terraform_remote_state.producer")
        .unwrap_or_else(|| panic!("the data source instance did not change: {diff}"));
    assert!(
        data["attributes"].as_array().is_some_and(|a| a
            .iter()
            .any(|c| c["path"].as_str().is_some_and(|p| p.contains("greeting")))),
        "the data source's outputs.greeting should have changed: {data}"
    );

    // Before the rollback, planning for "hello" sees changes.
    let plan = tf.run(&[
        "plan",
        "-input=false",
        "-no-color",
        "-detailed-exitcode",
        "-var",
        "greeting=hello",
    ]);
    assert_eq!(plan.status.code(), Some(2), "{}", describe(&plan));

    // Rollback is refused while another client holds the lock.
    let lock = lock_info(&unique_name("held"), "someone@else");
    let response = server.request("LOCK", &address, admin, lock.clone());
    assert_eq!(response.status(), 200);
    let (status, refused) = api(
        &server,
        "POST",
        &format!("/workspaces/default/states/{state}/rollback"),
        &editor,
        Some(json!({"version": 1})),
    );
    assert_eq!(status, 423, "{refused}");
    assert_eq!(refused["error"]["lock"]["Who"], "someone@else");
    let response = server.request("UNLOCK", &address, admin, lock);
    assert_eq!(response.status(), 200);

    let before = server.state_json("default", "history/consumer", admin);
    let (status, rolled) = api(
        &server,
        "POST",
        &format!("/workspaces/default/states/{state}/rollback"),
        &editor,
        Some(json!({"version": 1})),
    );
    assert_eq!(status, 201, "{rolled}");
    assert_eq!(rolled["version"], 3);
    assert_eq!(
        rolled["serial"].as_i64(),
        Some(serial(&before) + 1),
        "serial bumped above the current one"
    );
    let after = server.state_json("default", "history/consumer", admin);
    assert_eq!(after["lineage"], before["lineage"]);
    assert_eq!(state_output_values(&after), expected_outputs("hello"));

    // The real client accepts the rolled-back state: planning for "hello" is clean now.
    let plan = tf.run(&[
        "plan",
        "-input=false",
        "-no-color",
        "-detailed-exitcode",
        "-var",
        "greeting=hello",
    ]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "plan after rollback should be clean\n{}",
        describe(&plan)
    );
    // And the next apply writes above the rolled-back serial.
    tf.ok(&[APPLY, &["-var", "greeting=again"]].concat());
    let next = server.state_json("default", "history/consumer", admin);
    assert!(serial(&next) > serial(&after), "{next}");

    // The versions list tells the story, and the diff of the rollback shows world -> hello.
    let (_, versions) = api(
        &server,
        "GET",
        &format!("/workspaces/default/states/{state}/versions"),
        admin,
        None,
    );
    let numbers: Vec<i64> = versions["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|v| v["version"].as_i64())
        .collect();
    assert_eq!(numbers, [4, 3, 2, 1]);
    let (_, back) = api(
        &server,
        "GET",
        &format!("/workspaces/default/states/{state}/diff?from=2&to=3"),
        admin,
        None,
    );
    let greeting = back["diff"]["outputs"]["changed"]
        .as_array()
        .and_then(|c| c.iter().find(|o| o["name"] == "greeting").cloned());
    assert_eq!(
        greeting.map(|g| g["after"].clone()),
        Some(json!("hello")),
        "{back}"
    );
    let (status, outputs) = api(
        &server,
        "GET",
        &format!("/workspaces/default/states/{state}/outputs"),
        &editor,
        None,
    );
    assert_eq!(status, 200, "{outputs}");
    assert_eq!(outputs["version"], 4);
    assert!(
        outputs["outputs"].as_array().is_some_and(|o| o
            .iter()
            .any(|x| x["name"] == "greeting" && x["value"] == "again")),
        "{outputs}"
    );
}
