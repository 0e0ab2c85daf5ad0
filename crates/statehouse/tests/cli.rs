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
    let body = state_body(serial, marker);
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
    write_state(server, "app/db", 1, "db-1");
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
    let team = list
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
    let entry = &deleted.as_array().unwrap()[0];
    assert_eq!(entry["name"], "app/db");
    let id = entry["id"].as_str().unwrap().to_owned();
    cli(&["state", "restore", &id]);
    assert_eq!(
        names(&json_of(&cli(&["state", "list", "--json"]))),
        vec!["app/db", "app/net"]
    );
    cli(&["state", "delete", "app/db"]);
    let id = json_of(&cli(&["state", "deleted", "--json"]))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cli(&["state", "purge", &id]);
    assert_eq!(json_of(&cli(&["state", "deleted", "--json"])), json!([]));
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
