//! The CLI's API commands, run as the real binary: each one locally (in-process on the
//! server's database, no token) and remotely (`STATEHOUSE_SERVER` + `STATEHOUSE_TOKEN`),
//! on both stores; refusals, connection errors and exit statuses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::process::Output;

use common::{Server, Store, Via, skip_e2e};
use serde_json::{Value, json};

on_both_stores!(every_command_works_locally, every_command_works_remotely);

fn state_body(serial: i64, marker: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": 4, "terraform_version": "1.0.3", "serial": serial, "lineage": "cli-lineage",
        "outputs": {"marker": {"value": marker, "type": "string"}}, "resources": []
    }))
    .unwrap()
}

fn write_state(server: &Server, name: &str, serial: i64, marker: &str) -> Vec<u8> {
    write_body(server, name, state_body(serial, marker))
}

/// A state holding one `aws_instance.web` whose `id` is `instance_id`.
fn state_with_instance(instance_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": 4, "terraform_version": "1.0.3", "serial": 1, "lineage": "cli-db",
        "outputs": {},
        "resources": [{
            "mode": "managed", "type": "aws_instance", "name": "web",
            "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
            "instances": [{"schema_version": 1, "attributes": {"id": instance_id, "ami": "ami-1"}}]
        }]
    }))
    .unwrap()
}

fn write_body(server: &Server, name: &str, body: Vec<u8>) -> Vec<u8> {
    let url = server.tf_address("default", name);
    let response = server.request("POST", &url, &server.admin_token, body.clone());
    assert_eq!(response.status(), 200, "POST {url}");
    body
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{}", stdout(out)))
}

/// The names in a `state list --json` page.
fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

fn every_command_works_locally(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    exercise_every_command(&server, Via::Local);
    exercise_users_tokens_and_audit(&server, Via::Local);
}

fn every_command_works_remotely(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    let token = server.create_token("default", "admin", "remote-admin");
    // Workspace creation and deletion need an instance admin.
    let instance_admin = server.admin_token.clone();
    exercise_every_command(
        &server,
        Via::Remote {
            token: Some(&instance_admin),
        },
    );
    exercise_users_tokens_and_audit(
        &server,
        Via::Remote {
            token: Some(&instance_admin),
        },
    );
    // A workspace admin token works too for what it may do.
    let listed = server.cli_via(
        Via::Remote {
            token: Some(&token),
        },
        &["state", "list", "--json"],
    );
    assert_eq!(names(&json_of(&listed)), vec!["app/net"]);
    assert_eq!(
        std::fs::read_dir(server.remote_cli_dir()).unwrap().count(),
        0,
        "remote commands must not create a local data directory"
    );
}

/// Every ported command, with the given transport, checked through its `--json` output.
fn exercise_every_command(server: &Server, via: Via<'_>) {
    let cli = |args: &[&str]| server.cli_via(via, args);
    let v1 = write_state(server, "app/net", 1, "net-1");
    write_state(server, "app/net", 2, "net-2");
    let v3 = write_state(server, "app/net", 3, "net-3");
    write_body(server, "app/db", state_with_instance("i-0cli123"));
    let lock = r#"{"ID":"cli-lock","Operation":"OperationTypeApply","Who":"alice@laptop","Version":"1.0.3"}"#;
    let url = server.tf_address("default", "app/net");
    assert_eq!(
        server
            .request("LOCK", &url, &server.admin_token, lock.as_bytes().to_vec())
            .status(),
        200
    );

    // ---- workspaces ----
    let out = cli(&["workspace", "create", "team", "--json"]);
    assert!(stderr(&out).contains("created workspace \"team\""));
    assert_eq!(json_of(&out)["name"], "team");
    let list = json_of(&cli(&["workspace", "list", "--json"]));
    let team = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "team")
        .unwrap();
    assert_eq!(team["your_role"], "admin");
    assert_eq!(team["serial_protection"], true);
    cli(&[
        "workspace",
        "set",
        "team",
        "--serial-protection",
        "off",
        "--keep-versions",
        "5",
        "--keep-versions-for",
        "30d",
        "--stale-lock-after",
        "2h",
    ]);
    let team = json_of(&cli(&["workspace", "show", "team", "--json"]));
    assert_eq!(team["serial_protection"], false);
    assert_eq!(team["keep_versions"], 5);
    assert_eq!(team["keep_versions_for_seconds"], 30 * 86_400);
    assert_eq!(team["stale_lock_after_seconds"], 7_200);
    let out = cli(&[
        "workspace",
        "set",
        "team",
        "--keep-versions",
        "none",
        "--stale-lock-after",
        "none",
    ]);
    assert!(
        stdout(&out).contains("keep versions:     all"),
        "{}",
        stdout(&out)
    );
    let team = json_of(&cli(&["workspace", "show", "team", "--json"]));
    assert!(team["keep_versions"].is_null());
    assert!(team["stale_lock_after_seconds"].is_null());
    assert_eq!(team["keep_versions_for_seconds"], 30 * 86_400);
    cli(&["workspace", "rename", "team", "team2"]);
    let table = stdout(&cli(&["workspace", "list"]));
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("SERIAL PROTECTION"),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("team2 ")), "{table}");
    assert!(!table.lines().any(|l| l.starts_with("team ")), "{table}");
    cli(&["workspace", "delete", "team2"]);
    let table = stdout(&cli(&["workspace", "list"]));
    assert!(!table.contains("team2"), "{table}");

    // ---- listing states ----
    let all = json_of(&cli(&["state", "list", "--json"]));
    assert_eq!(names(&all), vec!["app/db", "app/net"]);
    assert!(all["next_cursor"].is_null());
    let net = &all["items"][1];
    assert_eq!(net["current"]["version"], 3);
    assert_eq!(net["lock"]["id"], "cli-lock");
    let filtered = |args: &[&str]| {
        let mut full = vec!["state", "list", "--workspace", "default", "--json"];
        full.extend_from_slice(args);
        names(&json_of(&cli(&full)))
    };
    assert_eq!(filtered(&["--prefix", "app/n"]), vec!["app/net"]);
    assert_eq!(filtered(&["--locked"]), vec!["app/net"]);
    assert_eq!(filtered(&["--unlocked"]), vec!["app/db"]);
    assert_eq!(filtered(&["--changed-since", "1h"]).len(), 2);
    assert!(filtered(&["--changed-since", "2099-01-01T00:00:00Z"]).is_empty());
    let first = json_of(&cli(&["state", "list", "--limit", "1", "--json"]));
    assert_eq!(names(&first), vec!["app/db"]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        filtered(&["--limit", "1", "--cursor", &cursor]),
        vec!["app/net"]
    );
    let every = json_of(&cli(&["state", "list", "--limit", "1", "--all", "--json"]));
    assert_eq!(names(&every), vec!["app/db", "app/net"]);
    assert!(every["next_cursor"].is_null());
    let out = cli(&["state", "list", "--limit", "1"]);
    assert!(
        stderr(&out).contains("more states follow: add --all"),
        "{}",
        stderr(&out)
    );
    let table = stdout(&cli(&["state", "list"]));
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header.iter().map(|h| h.trim()).collect::<Vec<_>>(),
        vec![
            "NAME",
            "VERSION",
            "SERIAL",
            "SIZE",
            "UPDATED",
            "LAST WRITER",
            "LOCKED BY",
            "STALE"
        ]
    );
    let net_row = lines.find(|l| l.starts_with("app/net ")).unwrap();
    assert!(net_row.contains("bootstrap-admin ("), "{net_row}");

    // ---- search ----
    let found = json_of(&cli(&["search", "i-0cli123", "--json"]));
    assert_eq!(found["items"][0]["address"], "aws_instance.web");
    assert_eq!(found["items"][0]["state"], "app/db");
    assert_eq!(found["not_indexed"]["count"], 0);
    let table = stdout(&cli(&["search", "--type", "aws_inst", "--match", "prefix"]));
    assert!(
        table.lines().any(|l| l.starts_with("default ")
            && l.contains("aws_instance.web")
            && l.contains("i-0cli123")),
        "{table}"
    );
    let none = json_of(&cli(&[
        "search",
        "--type",
        "aws_instance",
        "--name",
        "db",
        "--json",
    ]));
    assert_eq!(none["items"], json!([]));
    let err = fails(&server.cli_output(via, &["search"]), 1);
    assert!(err.contains("nothing to search for"), "{err}");

    // ---- one state, versions, downloads ----
    let shown = json_of(&cli(&["state", "show", "app/net", "--json"]));
    assert_eq!(shown["current"]["serial"], 3);
    assert_eq!(shown["lock"]["who"], "alice@laptop");
    let text = stdout(&cli(&["state", "show", "app/net"]));
    assert!(
        text.contains("lock id:") && text.contains("cli-lock"),
        "{text}"
    );
    let versions = json_of(&cli(&["state", "versions", "app/net", "--all", "--json"]));
    let numbers: Vec<i64> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, vec![3, 2, 1]);
    assert_eq!(cli(&["state", "get", "app/net"]).stdout, v3);
    assert_eq!(
        cli(&["state", "get", "app/net", "--version", "1"]).stdout,
        v1
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("net-v1.tfstate");
    let out = cli(&[
        "state",
        "get",
        "app/net",
        "--version",
        "1",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("wrote version 1"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), v1);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no partial file left"
    );

    // ---- keep ----
    let kept = |n: usize| {
        json_of(&cli(&["state", "versions", "app/net", "--json"]))["items"][n]["kept"].clone()
    };
    cli(&["state", "keep", "app/net", "--version", "1"]);
    assert_eq!(kept(2), true);
    assert_eq!(kept(0), false);
    cli(&["state", "keep", "app/net", "--version", "1", "--release"]);
    assert_eq!(kept(2), false);

    // ---- force-unlock ----
    let out = cli(&["state", "force-unlock", "app/net", "--json"]);
    assert!(
        stderr(&out).contains("released lock cli-lock"),
        "{}",
        stderr(&out)
    );
    assert_eq!(json_of(&out)["holder"], "bootstrap-admin");
    assert!(json_of(&cli(&["state", "show", "app/net", "--json"]))["lock"].is_null());

    // ---- outputs, diff, rollback ----
    let outputs = json_of(&cli(&["state", "outputs", "app/net", "--json"]));
    assert_eq!(outputs["version"], 3);
    assert_eq!(outputs["outputs"][0]["name"], "marker");
    assert_eq!(outputs["outputs"][0]["value"], "net-3");
    let table = stdout(&cli(&["state", "outputs", "app/net"]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("marker ") && l.ends_with("net-3")),
        "{table}"
    );
    let diff = json_of(&cli(&[
        "state", "diff", "app/net", "--from", "1", "--to", "3", "--json",
    ]));
    assert_eq!(diff["diff"]["outputs"]["changed"][0]["before"], "net-1");
    let text = stdout(&cli(&["state", "diff", "app/net", "--from", "1"]));
    assert!(
        text.starts_with("version 1 (serial 1, 0 instances) → version 3")
            && text.contains("~ output marker: \"net-1\" → \"net-3\""),
        "{text}"
    );
    let out = cli(&["state", "rollback", "app/net", "--version", "1", "--json"]);
    assert_eq!(json_of(&out)["version"], 4);
    assert!(
        stderr(&out).contains("it is now version 4 with serial 4"),
        "{}",
        stderr(&out)
    );
    let current: Value = serde_json::from_slice(&cli(&["state", "get", "app/net"]).stdout).unwrap();
    assert_eq!(current["serial"], 4);
    assert_eq!(current["outputs"]["marker"]["value"], "net-1");

    // ---- delete, deleted, restore, purge ----
    cli(&["state", "delete", "app/db"]);
    assert_eq!(
        names(&json_of(&cli(&["state", "list", "--json"]))),
        vec!["app/net"]
    );
    let deleted = json_of(&cli(&["state", "deleted", "--json"]));
    let entry = &deleted["items"][0];
    assert_eq!(entry["name"], "app/db");
    let id = entry["id"].as_str().unwrap().to_owned();
    cli(&["state", "restore", &id]);
    assert_eq!(
        names(&json_of(&cli(&["state", "list", "--json"]))),
        vec!["app/db", "app/net"]
    );
    cli(&["state", "delete", "app/db"]);
    let id = json_of(&cli(&["state", "deleted", "--json"]))["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cli(&["state", "purge", &id]);
    assert_eq!(
        json_of(&cli(&["state", "deleted", "--json"])),
        json!({"items": [], "next_cursor": null})
    );
}

/// `user`, `token` and `audit` commands with the given transport, as an instance admin.
fn exercise_users_tokens_and_audit(server: &Server, via: Via<'_>) {
    let cli = |args: &[&str]| server.cli_via(via, args);
    let with_input = |args: &[&str], input: &str| {
        let out = server.cli_with_input(via, args, input);
        assert!(
            out.status.success(),
            "statehouse {args:?} ({via:?}) failed:\n{}",
            stderr(&out)
        );
        out
    };
    let login = |name: &str, password: &str| {
        common::http_client()
            .post(format!("{}/api/v1/auth/login", server.url))
            .json(&json!({"name": name, "password": password}))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };

    // ---- users ----
    let out = with_input(
        &["user", "add", "carol", "--password-stdin", "--json"],
        "carol's password\n",
    );
    assert!(
        stderr(&out).contains("created user \"carol\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(json_of(&out)["has_password"], true);
    assert!(!stdout(&out).contains("carol's password"));
    assert_eq!(login("carol", "carol's password"), 200);
    let out = cli(&["user", "add", "dave"]);
    assert!(stderr(&out).contains("no password"), "{}", stderr(&out));
    let out = cli(&["user", "grant", "carol", "--role", "editor", "--json"]);
    assert!(
        stderr(&out).contains("\"carol\" has role editor in workspace \"default\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(json_of(&out)["role"], "editor");
    let users = json_of(&cli(&["user", "list", "--json"]));
    let names: Vec<&str> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "carol", "dave"]);
    let table = stdout(&cli(&["user", "list"]));
    assert!(table.starts_with("NAME"), "{table}");
    let carol_line = table.lines().find(|l| l.starts_with("carol")).unwrap();
    assert!(
        carol_line.contains("set") && carol_line.contains("default:editor"),
        "{table}"
    );
    let carol = json_of(&cli(&["user", "show", "carol", "--json"]));
    assert_eq!(carol["memberships"][0]["workspace"], "default");
    assert!(stdout(&cli(&["user", "show", "dave"])).contains("password:"));

    let out = with_input(&["user", "passwd", "dave"], "dave's new password\n");
    assert!(stderr(&out).contains("password of \"dave\" set"));
    assert_eq!(login("dave", "dave's new password"), 200);
    let dave = json_of(&cli(&["user", "set-admin", "dave", "on", "--json"]));
    assert_eq!(dave["instance_admin"], true);
    let out = cli(&["user", "set-admin", "dave", "off"]);
    assert!(stderr(&out).contains("\"dave\" is no longer an instance admin"));
    let dave = json_of(&cli(&["user", "disable", "dave", "--json"]));
    assert_eq!(dave["disabled"], true);
    assert_eq!(login("dave", "dave's new password"), 401);
    cli(&["user", "enable", "dave"]);
    assert_eq!(login("dave", "dave's new password"), 200);
    let out = cli(&["user", "revoke", "carol", "--workspace", "default"]);
    assert!(stderr(&out).contains("no longer has a role"));
    let carol = json_of(&cli(&["user", "show", "carol", "--json"]));
    assert_eq!(carol["memberships"], json!([]));

    // ---- tokens ----
    let out = cli(&[
        "token",
        "create",
        "--user",
        "carol",
        "--name",
        "carol-ci",
        "--expires",
        "1d",
    ]);
    let secret = stdout(&out).trim().to_owned();
    assert!(
        secret.starts_with("sht_") && !secret.contains('\n'),
        "{secret}"
    );
    assert!(
        stderr(&out).contains("for user \"carol\"") && stderr(&out).contains("expires"),
        "{}",
        stderr(&out)
    );
    let viewer = cli(&[
        "token",
        "create",
        "--workspace",
        "default",
        "--role",
        "viewer",
        "--name",
        "svc-viewer",
    ]);
    assert!(stdout(&viewer).trim().starts_with("sht_"));
    let tokens = json_of(&cli(&["token", "list", "--json"]));
    let find = |name: &str| {
        tokens["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no token {name} in {tokens}"))
            .clone()
    };
    let carol_ci = find("carol-ci");
    assert_eq!(carol_ci["kind"], "user");
    assert_eq!(carol_ci["user"], "carol");
    assert_eq!(carol_ci["status"], "active");
    assert!(carol_ci["expires_at"].is_string());
    assert_eq!(find("svc-viewer")["kind"], "service");
    let carols = json_of(&cli(&["token", "list", "--user", "carol", "--json"]));
    assert_eq!(carols["items"].as_array().unwrap().len(), 1, "{carols}");
    let in_default = json_of(&cli(&["token", "list", "--workspace", "default", "--json"]));
    assert!(
        in_default["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"] != "carol-ci"),
        "{in_default}"
    );
    let table = stdout(&cli(&["token", "list"]));
    assert!(
        table.starts_with("ID") && table.contains("LAST USED") && table.contains("svc-viewer"),
        "{table}"
    );
    let out = cli(&["token", "revoke", "svc-viewer"]);
    assert!(
        stderr(&out).contains("revoked token \"svc-viewer\""),
        "{}",
        stderr(&out)
    );
    let revoked_id = find("svc-viewer")["id"].as_str().unwrap().to_owned();
    let out = cli(&["token", "revoke", &revoked_id]);
    assert!(
        stderr(&out).contains("was already revoked"),
        "{}",
        stderr(&out)
    );
    let err = fails(
        &server.cli_output(via, &["token", "revoke", "svc-viewer"]),
        1,
    );
    assert!(err.contains("no token you may see"), "{err}");

    // ---- audit ----
    let out = cli(&["audit", "verify"]);
    assert!(stdout(&out).starts_with("checked "), "{}", stdout(&out));
    assert!(stderr(&out).contains("intact"));
    let report = json_of(&cli(&["audit", "verify", "--json"]));
    assert_eq!(report["intact"], true);
    assert!(report["problem"].is_null());

    let page = json_of(&cli(&[
        "audit", "list", "--action", "user.*", "--target", "dave", "--limit", "2", "--json",
    ]));
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
    assert!(page["next_cursor"].is_string(), "{page}");
    // dave: created, password, admin on, admin off, disabled, enabled.
    let all = json_of(&cli(&[
        "audit", "list", "--action", "user.*", "--target", "dave", "--all", "--json",
    ]));
    let actions: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.len(), 6, "{all}");
    assert_eq!(actions.last(), Some(&"user.create"), "newest first: {all}");
    assert!(all["next_cursor"].is_null());
    let since_future = json_of(&cli(&[
        "audit",
        "list",
        "--since",
        "2999-01-01T00:00:00Z",
        "--json",
    ]));
    assert_eq!(since_future["items"], json!([]));
    let table = stdout(&cli(&[
        "audit",
        "list",
        "--action",
        "member.*",
        "--workspace",
        "default",
    ]));
    assert!(
        table.starts_with("SEQ") && table.contains("member.set") && table.contains("member.remove"),
        "{table}"
    );

    let export = stdout(&cli(&[
        "audit", "export", "--action", "token.*", "--since", "1h",
    ]));
    let exported: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(exported.len() >= 3, "{export}");
    assert!(
        exported
            .iter()
            .all(|e| e["action"].as_str().unwrap().starts_with("token.")),
        "{export}"
    );
    let seqs: Vec<i64> = exported
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {seqs:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let out = cli(&["audit", "export", "-o", file.to_str().unwrap()]);
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("audit entries to"),
        "{}",
        stderr(&out)
    );
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.lines().count() > exported.len());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no .partial left"
    );
}

/// A failed command: exit status and the one-line `error: …` it printed.
fn fails(out: &Output, code: i32) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}\nstdout:\n{}\nstderr:\n{err}",
        stdout(out)
    );
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[test]
fn remote_refusals_are_clear_and_change_nothing() {
    if skip_e2e() {
        return;
    }
    let server = Server::start(Store::Sqlite);
    write_state(&server, "kept/state", 1, "x");
    let viewer = server.create_token("default", "viewer", "reader");
    let as_viewer = Via::Remote {
        token: Some(&viewer),
    };
    // Reading works with a viewer token.
    let listed = server.cli_via(as_viewer, &["state", "list", "--json"]);
    assert_eq!(names(&json_of(&listed)), vec!["kept/state"]);
    for (args, says) in [
        (
            &["state", "delete", "kept/state"][..],
            "deleting a state needs admin",
        ),
        (
            &["state", "force-unlock", "kept/state"][..],
            "force-unlocking a state needs admin",
        ),
        (&["state", "deleted"][..], "needs admin"),
        (
            &["state", "keep", "kept/state", "--version", "1"][..],
            "needs admin",
        ),
        (
            &["workspace", "set", "default", "--keep-versions", "3"][..],
            "needs admin",
        ),
        (&["workspace", "create", "mine"][..], "instance admin"),
        (&["user", "list"][..], "instance admin"),
        (&["user", "add", "eve"][..], "instance admin"),
        (&["user", "set-admin", "admin", "off"][..], "instance admin"),
        (
            &["token", "create", "--user", "admin", "--role", "viewer"][..],
            "instance admin",
        ),
        (
            &["token", "create", "--instance", "--role", "viewer"][..],
            "instance admin",
        ),
        (&["audit", "verify"][..], "instance admin"),
        (&["audit", "list"][..], "needs an admin role"),
        (&["audit", "export"][..], "needs an admin role"),
    ] {
        let out = server.cli_output(as_viewer, args);
        let err = fails(&out, 1);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(err.contains("\"reader\""), "names the token: {err}");
    }
    let listed = server.cli(&["state", "list", "--json"]);
    assert_eq!(names(&json_of(&listed)), vec!["kept/state"]);
    let ws = json_of(&server.cli(&["workspace", "show", "default", "--json"]));
    assert!(ws["keep_versions"].is_null());
    let users = json_of(&server.cli(&["user", "list", "--json"]));
    assert_eq!(users["items"].as_array().unwrap().len(), 1, "{users}");
    assert_eq!(users["items"][0]["instance_admin"], true);
    // A viewer sees no tokens but its own kind's, and revokes none.
    let seen = json_of(&server.cli_via(as_viewer, &["token", "list", "--json"]));
    assert_eq!(seen, json!({"items": [], "next_cursor": null}));

    // A workspace admin reads its workspace's audit entries, but may not verify the chain.
    let ws_admin = server.create_token("default", "admin", "ws-admin");
    let as_ws_admin = Via::Remote {
        token: Some(&ws_admin),
    };
    let page = json_of(&server.cli_via(as_ws_admin, &["audit", "list", "--all", "--json"]));
    let entries = page["items"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries.iter().all(|e| e["workspace"] == "default"),
        "{page}"
    );
    let err = fails(&server.cli_output(as_ws_admin, &["audit", "verify"]), 1);
    assert!(
        err.contains("instance admin") && err.contains("\"ws-admin\""),
        "{err}"
    );

    // No token, a wrong token.
    let err = fails(
        &server.cli_output(Via::Remote { token: None }, &["state", "list"]),
        1,
    );
    assert!(
        err.contains("no token") && err.contains("STATEHOUSE_TOKEN"),
        "{err}"
    );
    let err = fails(
        &server.cli_output(
            Via::Remote {
                token: Some("sht_not-a-real-token"),
            },
            &["state", "list"],
        ),
        1,
    );
    assert!(err.contains("refused the token: unknown token"), "{err}");

    // Missing things are 4xx refusals with the server's reason.
    let admin = Via::Remote {
        token: Some(&server.admin_token),
    };
    let err = fails(&server.cli_output(admin, &["state", "show", "no/such"]), 1);
    assert!(err.contains("does not exist"), "{err}");
    let err = fails(
        &server.cli_output(admin, &["state", "get", "kept/state", "--version", "9"]),
        1,
    );
    assert!(err.contains("no version 9"), "{err}");
    let err = fails(
        &server.cli_output(admin, &["workspace", "set", "default"]),
        1,
    );
    assert!(err.contains("nothing to change"), "{err}");
}

#[test]
fn unreachable_or_wrong_servers_are_clear_connection_errors() {
    if skip_e2e() {
        return;
    }
    let server = Server::start(Store::Sqlite);
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let run = |server_url: &str| {
        server
            .command()
            .args(["--server", server_url, "--token", "sht_x", "state", "list"])
            .current_dir(server.remote_cli_dir())
            .output()
            .unwrap()
    };
    let refused = format!("http://127.0.0.1:{closed_port}");
    let err = fails(&run(&refused), 3);
    assert!(
        err.contains(&format!("cannot reach the statehouse server at {refused}"))
            && err.contains("Connection refused")
            && err.contains("is the server running"),
        "{err}"
    );
    // HTTPS against a plain-HTTP server: the TLS handshake fails.
    let https = server.url.replace("http://", "https://");
    let err = fails(&run(&https), 3);
    assert!(err.contains("TLS failed"), "{err}");
    // A URL that is not statehouse's.
    let err = fails(&run(&format!("{}/elsewhere", server.url)), 1);
    assert!(
        err.contains("without a statehouse error") && err.contains("--server"),
        "{err}"
    );
    let err = fails(&run("statehouse.example.com"), 1);
    assert!(err.contains("is not a URL"), "{err}");
}

#[test]
fn local_only_commands_refuse_a_server() {
    if skip_e2e() {
        return;
    }
    let server = Server::start(Store::Sqlite);
    write_state(&server, "guarded", 1, "x");
    let out = server
        .command()
        .env("STATEHOUSE_SERVER", &server.url)
        .args(["key", "rotate"])
        .output()
        .unwrap();
    let err = fails(&out, 1);
    assert!(
        err.contains("acts on the local database") && err.contains("STATEHOUSE_SERVER is set"),
        "{err}"
    );
    let out = server
        .command()
        .args([
            "--server",
            &server.url,
            "state",
            "allow-overwrite",
            "guarded",
        ])
        .output()
        .unwrap();
    let err = fails(&out, 1);
    assert!(err.contains("--server is given"), "{err}");
    let out = server
        .command()
        .args(["--token", &server.admin_token, "state", "list"])
        .output()
        .unwrap();
    let err = fails(&out, 1);
    assert!(err.contains("--token needs --server"), "{err}");
    // Without a server, the local operator needs no token.
    let listed = server.cli(&["state", "list", "--json"]);
    assert_eq!(names(&json_of(&listed)), vec!["guarded"]);
}
