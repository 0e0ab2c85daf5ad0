//! `statehouse s3-key create|list|revoke` as the real binary, locally and over `--server`, on
//! both stores: the secret is printed once as ready-to-paste `export` lines and never listed,
//! the key is no bearer token, revocation shows, refusals are clear.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::process::Output;

use common::{Server, Store, Via, skip_e2e};
use serde_json::Value;

on_both_stores!(s3_keys_locally, s3_keys_remotely);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{}", text(&out.stdout)))
}

fn s3_keys_locally(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    exercise(&server, Via::Local);
}

fn s3_keys_remotely(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    let admin = server.create_token("default", "admin", "ws-admin");
    exercise(
        &server,
        Via::Remote {
            token: Some(&admin),
        },
    );
    // A viewer is told why it cannot create one.
    let viewer = server.create_token("default", "viewer", "reader");
    let out = server.cli_output(
        Via::Remote {
            token: Some(&viewer),
        },
        &["s3-key", "create", "--role", "viewer", "--name", "nope"],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("needs admin"),
        "{err}"
    );
}

fn exercise(server: &Server, via: Via<'_>) {
    let cli = |args: &[&str]| server.cli_via(via, args);
    let help = text(&cli(&["s3-key", "create", "--help"]).stdout);
    assert!(
        help.contains("AWS_ACCESS_KEY_ID") && help.contains("--expires-in"),
        "{help}"
    );

    let created = cli(&[
        "s3-key",
        "create",
        "--workspace",
        "default",
        "--role",
        "editor",
        "--name",
        "laptop",
        "--expires-in",
        "90d",
    ]);
    let out = text(&created.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let id = lines[0]
        .strip_prefix("export AWS_ACCESS_KEY_ID=")
        .unwrap_or_else(|| panic!("{out}"));
    let secret = lines[1]
        .strip_prefix("export AWS_SECRET_ACCESS_KEY=")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(id.starts_with("SHK") && id.len() == 20, "{id}");
    assert_eq!(secret.len(), 40);
    let said = text(&created.stderr);
    assert!(
        said.contains(id) && said.contains("laptop") && said.contains("shown once"),
        "{said}"
    );
    assert!(!said.contains(secret), "the secret is printed once: {said}");

    let listed = cli(&["s3-key", "list", "--workspace", "default", "--json"]);
    let page = json_of(&listed);
    let item = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["access_key_id"] == id)
        .unwrap_or_else(|| panic!("{page}"))
        .clone();
    assert_eq!(item["name"], "laptop");
    assert_eq!(item["role"], "editor");
    assert!(item["expires_at"].is_string(), "{item}");
    assert!(!page.to_string().contains(secret), "never listed: {page}");
    let table = text(&cli(&["s3-key", "list"]).stdout);
    assert!(
        table.contains("ACCESS KEY ID") && table.contains(id) && table.contains("laptop"),
        "{table}"
    );

    // Neither half of the key is a bearer token.
    for presented in [id, secret] {
        let url = format!("{}/api/v1/workspaces/default", server.url);
        let status = server.request("GET", &url, presented, Vec::new()).status();
        assert_eq!(status, 401, "{presented}");
    }

    let revoked = cli(&["s3-key", "revoke", "--workspace", "default", id]);
    assert!(text(&revoked.stderr).contains("revoked S3 key \"laptop\""));
    let page = json_of(&cli(&["s3-key", "list", "--json"]));
    let item = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["access_key_id"] == id)
        .unwrap();
    assert_eq!(item["status"], "revoked", "{item}");
    let again = server.cli_output(via, &["s3-key", "revoke", id]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already revoked"),
        "{}",
        text(&again.stderr)
    );
}
