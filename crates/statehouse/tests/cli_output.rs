//! What the CLI prints, as the real binary: a closed stdout (`statehouse … | head`) ends every
//! command quietly with status 0 instead of a panic; text from the server (a lock's `Who`,
//! state names, messages) cannot send terminal escape sequences to the reader's terminal in
//! human output, while `--json` stays exact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::process::Stdio;

use common::{Server, Store, Via, describe, skip_e2e};
use serde_json::json;

on_both_stores!(
    a_closed_stdout_ends_commands_quietly,
    server_text_cannot_drive_the_terminal
);

const LOCK_ID: &str = "11111111-2222-3333-4444-555555555555";
const ESCAPES: &str = "mallory\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m";

/// Locks `state` and then gives the lock a holder and operation full of escape sequences.
/// The server refuses control characters in a new LockInfo, so the text is planted in the
/// database, as a lock taken by an older statehouse version would still hold it.
fn lock_with_escapes(server: &Server, state: &str) {
    let mut info = json!({
        "ID": LOCK_ID,
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": "mallory",
        "Version": "1.0.3",
        "Created": "2024-01-01T00:00:00Z",
        "Path": ""
    });
    let url = format!("{}/lock", server.tf_address("default", state));
    let response = server.request(
        "POST",
        &url,
        &server.admin_token,
        info.to_string().into_bytes(),
    );
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().unwrap_or_default()
    );
    info["Who"] = json!(ESCAPES);
    info["Operation"] = json!("OperationTypeApply\u{1b}[1A");
    server.execute_sql(&format!(
        "UPDATE states SET lock_info = '{info}' WHERE lock_id = '{LOCK_ID}'"
    ));
}

fn a_closed_stdout_ends_commands_quietly(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    let body = json!({"version": 4, "terraform_version": "1.0.3", "serial": 1,
        "lineage": "pipe", "outputs": {}, "resources": []});
    for n in 0..30 {
        let url = server.tf_address("default", &format!("pipe/state-{n:02}"));
        let response = server.request(
            "POST",
            &url,
            &server.admin_token,
            body.to_string().into_bytes(),
        );
        assert_eq!(response.status(), 200);
    }
    let commands: &[&[&str]] = &[
        &["state", "list"],
        &["state", "list", "--json"],
        &["state", "list", "--all"],
        &["state", "show", "--workspace", "default", "pipe/state-00"],
        &["state", "get", "--workspace", "default", "pipe/state-00"],
        &["workspace", "list"],
        &["workspace", "list", "--json"],
        &["audit", "list"],
        &["audit", "list", "--json"],
        &["token", "list"],
        &["user", "list"],
        &["search", "--type", "x", "--match", "prefix"],
    ];
    for via in [
        Via::Local,
        Via::Remote {
            token: Some(&server.admin_token),
        },
    ] {
        for args in commands {
            let mut command = server.command();
            if let Via::Remote { token } = via {
                command
                    .env("STATEHOUSE_SERVER", &server.url)
                    .env("STATEHOUSE_TOKEN", token.unwrap())
                    .current_dir(server.remote_cli_dir());
            }
            let mut child = command
                .args(*args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // The reader is gone before anything is written: the first write fails.
            drop(child.stdout.take());
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success()
                    && !stderr.contains("panicked")
                    && !stderr.contains("Broken pipe"),
                "statehouse {args:?} ({via:?}) with a closed stdout: {}\n{}",
                out.status,
                describe(&out)
            );
        }
    }
}

fn server_text_cannot_drive_the_terminal(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    lock_with_escapes(&server, "net");
    for via in [
        Via::Local,
        Via::Remote {
            token: Some(&server.admin_token),
        },
    ] {
        for args in [
            &["state", "list"][..],
            &["state", "show", "--workspace", "default", "net"],
            &["state", "force-unlock", "--workspace", "default", "net"],
        ] {
            let out = server.cli_via(via, args);
            let printed = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
            assert!(
                !printed.iter().any(|b| *b == 0x1b || *b == 0x07)
                    && !String::from_utf8_lossy(&printed).contains('\u{9b}'),
                "statehouse {args:?} ({via:?}) printed raw control characters:\n{}",
                describe(&out)
            );
            let text = String::from_utf8_lossy(&printed);
            if args[1] != "list" {
                assert!(
                    text.contains(r"mallory\x1b]0;owned\x07\x1b[2J\u{9b}31m"),
                    "statehouse {args:?} shows the holder with its escapes visible:\n{text}"
                );
            }
            lock_with_escapes(&server, "net");
        }
        // --json stays exact.
        let out = server.cli_via(
            via,
            &["state", "show", "--workspace", "default", "net", "--json"],
        );
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(shown["lock"]["who"], ESCAPES, "{}", describe(&out));
    }
}
