//! The README's examples, run as written against a real `statehouse serve`, on both stores.
//!
//! **What runs.** Every fenced `sh` block of `README.md`, in order. A command is a line plus the
//! lines its trailing `\` continues; blank lines and `#` comments are left out. Commands that
//! start with `statehouse`, `curl` or `export` run through `bash -o pipefail -c` in one working
//! directory and must exit 0; others (`terraform`, `cargo`, `age`, …) are not run here. Local
//! commands act on the test server's database (as on the server host); after
//! `export STATEHOUSE_SERVER=… STATEHOUSE_TOKEN=…` they go through HTTP like any remote client.
//!
//! **What is substituted** — in this one place, [`substitute`], and nothing else:
//! - `http://127.0.0.1:8080` and `https://statehouse.example.com` → the test server's URL;
//! - `sht_…` → the server's admin token;
//! - `<id>` → the id of a state the harness soft-deletes just before (for `state restore|purge`).
//!
//! **What the harness prepares** so the examples have something to act on ([`prepare`]):
//! - a state a `statehouse state …` command names that does not exist yet is written with five
//!   versions first (so `--version 3`, diffs and rollbacks work);
//! - the state of `state force-unlock` is locked first;
//! - a file a command reads with `< FILE` is created when missing (a password; a state for
//!   `*.tfstate`);
//! - `curl` runs with `--fail-with-body` (a shim first on `PATH`), so an HTTP error fails it;
//! - stdin carries a password, for commands that ask for one.
//!
//! Variables exported in a block stay set for the blocks after it (`$SH`, `$TOKEN`), except
//! `STATEHOUSE_SERVER` and `STATEHOUSE_TOKEN`, which apply to the rest of their own block only:
//! the README's other examples run on the server host.
//!
//! **Skipped**: examples that need what this machine cannot offer, in [`SKIPPED`] with the
//! reason. An entry that matches no README command fails the test, so the list stays current.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{BIN, Server, Store, skip_e2e};
use serde_json::json;

on_both_stores!(readme_examples_run_as_written);

/// Commands not run, by how they start (as written in the README, spaces collapsed), and why.
const SKIPPED: &[(&str, &str)] = &[
    // Outside services: a real S3 bucket, Slack, an SMTP server, database hosts.
    (
        "statehouse target add s3 ",
        "needs a real S3 bucket (tests/targets use moto)",
    ),
    ("statehouse target test s3", "contacts S3"),
    (
        "statehouse db add shop ",
        "registers a database on db.example.com with the S3 target",
    ),
    (
        "statehouse db add cluster ",
        "registers a database server on db.example.com",
    ),
    (
        "statehouse db change shop ",
        "needs the database registered above",
    ),
    (
        "statehouse db readonly-role shop ",
        "connects to db.example.com as an administrator",
    ),
    ("statehouse db check shop", "connects to db.example.com"),
    (
        "statehouse db backup shop",
        "runs pg_dump against db.example.com",
    ),
    (
        "statehouse backup list --database shop",
        "needs the database registered above",
    ),
    (
        "statehouse backup show BACKUP_ID",
        "needs a backup of db.example.com",
    ),
    (
        "statehouse db verify BACKUP_ID",
        "needs a backup of db.example.com",
    ),
    (
        "statehouse db restore BACKUP_ID ",
        "needs a backup and database servers",
    ),
    (
        "statehouse db restore GLOBALS_BACKUP_ID ",
        "needs a whole-server backup and a second server (tests/whole_server.rs restores one)",
    ),
    (
        "statehouse backup download BACKUP_ID ",
        "needs a backup of db.example.com",
    ),
    (
        "statehouse notifier add ops ",
        "a Slack webhook: later events would be sent to Slack",
    ),
    (
        "statehouse notifier add mail ",
        "an SMTP server at smtp.example.com: later events would be mailed",
    ),
    ("statehouse notifier test ops", "sends to Slack"),
    (
        "statehouse db health shop",
        "needs the database registered above",
    ),
    (
        "statehouse backup encryption export-key ",
        "the managed key is made with the workspace's first database (registered above)",
    ),
    (
        "curl -X POST -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' http://127.0.0.1:8080/api/v1/workspaces/default/webhooks",
        "a webhook at hooks.example.com: every later event would be sent there (tests/webhooks.rs uses a local receiver)",
    ),
    // Not examples to run against a running server.
    (
        "statehouse restore-self ",
        "for a new host with an empty data directory (tests/backups.rs restores self-backups)",
    ),
    (
        "statehouse serve",
        "the server itself: this test started one",
    ),
    (
        "statehouse doctor",
        "rightly fails here: the README's example target /srv/statehouse-backups is outside this \
         server's local_target_roots (tests/doctor.rs runs it on healthy and broken hosts)",
    ),
    (
        "statehouse import tf-pg ",
        "reads a Terraform pg backend at host db (tests/operations.rs imports from a real one)",
    ),
    (
        "statehouse import pulumi-pg ",
        "reads a Pulumi postgres backend at host db (tests/pulumi_import.rs imports from one)",
    ),
    (
        "statehouse import s3 ",
        "reads a bucket at minio.example.com (tests/pulumi_import.rs imports from moto)",
    ),
];

/// One example: where it is and what it says.
struct Example {
    line: usize,
    /// The command as written (continuation lines included).
    text: String,
    /// The block's index, to scope the CLI's server settings.
    block: usize,
}

const PASSWORD: &str = "readme-example-password";

fn readme_examples_run_as_written(store: Store) {
    if skip_e2e() {
        return;
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md at the repository's root");
    let examples = examples(&readme);
    let server = Server::start(store);
    let work = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    install_shims(bin.path());
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut used = vec![false; SKIPPED.len()];
    let mut exported: BTreeMap<String, String> = BTreeMap::new();
    let mut block_of_server_settings = None;
    let mut ran = 0;
    let mut not_run = Vec::new();
    for example in &examples {
        let written = collapse(&example.text);
        if let Some(i) = SKIPPED.iter().position(|(p, _)| written.starts_with(p)) {
            used[i] = true;
            continue;
        }
        let program = written.split_whitespace().next().unwrap_or("");
        if !["statehouse", "curl", "export"].contains(&program) {
            not_run.push(format!("README.md:{}: {written}", example.line));
            continue;
        }
        if block_of_server_settings.is_some_and(|b| b != example.block) {
            exported.remove("STATEHOUSE_SERVER");
            exported.remove("STATEHOUSE_TOKEN");
            block_of_server_settings = None;
        }
        let command = prepare(&server, work.path(), &substitute(&server, &example.text));
        let mut env: Vec<(String, String)> = server.env().to_vec();
        env.extend(exported.clone());
        env.push(("PATH".into(), path.clone()));
        if program == "export" {
            let after = exports(&command, &env, work.path());
            for (key, value) in after {
                if key.starts_with("STATEHOUSE_SERVER") || key.starts_with("STATEHOUSE_TOKEN") {
                    block_of_server_settings = Some(example.block);
                }
                exported.insert(key, value);
            }
            continue;
        }
        run(&server, example, &command, &env, work.path());
        ran += 1;
    }
    let stale: Vec<&str> = SKIPPED
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|((p, _), _)| *p)
        .collect();
    assert!(
        stale.is_empty(),
        "SKIPPED entries that match no README command (remove them): {stale:#?}"
    );
    eprintln!(
        "{ran} README commands ran; not run here (other programs):\n{}",
        not_run.join("\n")
    );
    assert!(
        ran >= 40,
        "only {ran} README commands ran: is the README parsed right?"
    );
}

/// The commands of every fenced `sh` block, in order.
fn examples(readme: &str) -> Vec<Example> {
    let mut examples = Vec::new();
    let mut fence: Option<(String, usize)> = None; // indentation, block index
    let mut blocks = 0;
    let mut pending: Option<Example> = None;
    for (i, raw) in readme.lines().enumerate() {
        let trimmed = raw.trim_start();
        let indent = &raw[..raw.len() - trimmed.len()];
        if let Some(info) = trimmed.strip_prefix("```") {
            fence = match fence {
                None if info.trim() == "sh" => {
                    blocks += 1;
                    Some((indent.to_owned(), blocks))
                }
                None => Some((String::from("\u{0}other"), 0)),
                Some(_) => None,
            };
            continue;
        }
        let Some((fence_indent, block)) = &fence else {
            continue;
        };
        if *block == 0 {
            continue;
        }
        let line = raw.strip_prefix(fence_indent.as_str()).unwrap_or(raw);
        match pending.as_mut() {
            Some(example) => {
                example.text.push('\n');
                example.text.push_str(line);
            }
            None => {
                if line.trim().is_empty() || line.trim_start().starts_with('#') {
                    continue;
                }
                pending = Some(Example {
                    line: i + 1,
                    text: line.to_owned(),
                    block: *block,
                });
            }
        }
        if !line.trim_end().ends_with('\\') {
            examples.extend(pending.take());
        }
    }
    examples
}

/// A command on one line with single spaces, for matching [`SKIPPED`].
fn collapse(text: &str) -> String {
    text.replace("\\\n", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The README's stand-ins for the server's address and token, replaced by the test server's.
fn substitute(server: &Server, text: &str) -> String {
    text.replace("http://127.0.0.1:8080", &server.url)
        .replace("https://statehouse.example.com", &server.url)
        .replace("sht_…", &server.admin_token)
}

/// Makes what the command acts on exist (see the module comment); returns the command with
/// `<id>` filled in.
fn prepare(server: &Server, work: &Path, command: &str) -> String {
    let words: Vec<&str> = command
        .split('#')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .filter(|w| *w != "\\")
        .collect();
    for pair in words.windows(2) {
        if pair[0] == "<" && !work.join(pair[1]).exists() {
            let content = if pair[1].ends_with(".tfstate") {
                state_body("readme-input", 99)
            } else {
                format!("{PASSWORD}\n").into_bytes()
            };
            std::fs::write(work.join(pair[1]), content).unwrap();
        }
    }
    let mut command = command.to_owned();
    if let Some((workspace, sub, name)) = state_command(&words) {
        if sub == "restore" || sub == "purge" {
            let id = deleted_state_id(server, &workspace);
            command = command.replace("<id>", &id);
        } else if let Some(name) = name {
            if !state_exists(server, &workspace, &name) {
                for serial in 1..=5 {
                    write_state(server, &workspace, &name, serial);
                }
            }
            if sub == "force-unlock" {
                lock(server, &workspace, &name);
            }
        }
    }
    command
}

/// `statehouse state SUB …`: the workspace, the subcommand and the state it names, if any.
fn state_command(words: &[&str]) -> Option<(String, String, Option<String>)> {
    let [_, "state", sub, rest @ ..] = words else {
        return None;
    };
    if !words[0].ends_with("statehouse") {
        return None;
    }
    const WITH_VALUE: &[&str] = &[
        "--workspace",
        "--version",
        "--from",
        "--to",
        "--for",
        "-o",
        "--output",
        "--limit",
        "--cursor",
        "--prefix",
        "--changed-since",
    ];
    const NAMED: &[&str] = &[
        "show",
        "versions",
        "diff",
        "outputs",
        "get",
        "rollback",
        "keep",
        "force-unlock",
        "delete",
        "allow-overwrite",
    ];
    let mut workspace = "default".to_owned();
    let mut name = None;
    let mut words = rest.iter();
    while let Some(word) = words.next() {
        if *word == "--workspace" {
            workspace = words.next()?.to_string();
        } else if WITH_VALUE.contains(word) {
            words.next();
        } else if word.starts_with('-') {
        } else if ["|", ">", "<"].contains(word) {
            break;
        } else if name.is_none() {
            name = Some(word.to_string());
        }
    }
    let name = name.filter(|_| NAMED.contains(sub));
    Some((workspace, sub.to_string(), name))
}

fn state_body(lineage: &str, serial: i64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": 4, "terraform_version": "1.0.3", "serial": serial, "lineage": lineage,
        "outputs": {"vpc_id": {"value": format!("vpc-{serial}"), "type": "string"}},
        "resources": [{
            "mode": "managed", "type": "aws_instance", "name": "web",
            "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
            "instances": [{"schema_version": 1, "attributes": {
                "id": "i-0abc123", "arn": "arn:aws:ec2:eu-central-1:123456789012:instance/i-0abc123",
                "tags": {"Name": format!("web-{serial}")}
            }}]
        }]
    }))
    .unwrap()
}

fn write_state(server: &Server, workspace: &str, name: &str, serial: i64) {
    let url = server.tf_address(workspace, name);
    let body = state_body(&format!("readme-{workspace}-{name}"), serial);
    let response = server.request("POST", &url, &server.admin_token, body);
    assert_eq!(
        response.status(),
        200,
        "writing {url}: {:?}",
        response.text()
    );
}

fn state_exists(server: &Server, workspace: &str, name: &str) -> bool {
    let url = format!(
        "{}/api/v1/workspaces/{workspace}/states/{}",
        server.url,
        name.replace('/', "%2F")
    );
    server
        .request("GET", &url, &server.admin_token, Vec::new())
        .status()
        == 200
}

fn lock(server: &Server, workspace: &str, name: &str) {
    let info = json!({
        "ID": "readme-lock", "Operation": "OperationTypeApply", "Info": "",
        "Who": "someone@ci", "Version": "1.0.3", "Created": "2026-01-01T00:00:00Z", "Path": ""
    });
    let url = server.tf_address(workspace, name);
    let response = server.request("LOCK", &url, &server.admin_token, info.to_string().into());
    assert_eq!(response.status(), 200, "LOCK {url}: {:?}", response.text());
}

/// Soft-deletes a fresh state in `workspace` and returns its id.
fn deleted_state_id(server: &Server, workspace: &str) -> String {
    let name = common::unique_name("readme-deleted");
    write_state(server, workspace, &name, 1);
    let url = server.tf_address(workspace, &name);
    let response = server.request("DELETE", &url, &server.admin_token, Vec::new());
    assert_eq!(
        response.status(),
        200,
        "DELETE {url}: {:?}",
        response.text()
    );
    let list = format!(
        "{}/api/v1/workspaces/{workspace}/deleted-states?limit=1000",
        server.url
    );
    let page: serde_json::Value = server
        .request("GET", &list, &server.admin_token, Vec::new())
        .json()
        .unwrap();
    page["items"]
        .as_array()
        .and_then(|items| items.iter().find(|d| d["name"] == name.as_str()))
        .and_then(|d| d["id"].as_str())
        .unwrap_or_else(|| panic!("{name} is not among the deleted states: {page}"))
        .to_owned()
}

/// `statehouse` and a `curl` that fails on HTTP errors, first on `PATH`.
fn install_shims(bin: &Path) {
    std::os::unix::fs::symlink(BIN, bin.join("statehouse")).unwrap();
    let real_curl = which("curl");
    let shim = format!("#!/bin/sh\nexec {real_curl} --fail-with-body \"$@\"\n");
    std::fs::write(bin.join("curl"), shim).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("curl"), std::fs::Permissions::from_mode(0o755)).unwrap();
    which("jq");
}

fn which(program: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !path.is_empty(),
        "the README's examples need {program}; scripts/test.sh installs it"
    );
    path
}

/// A clean environment (no inherited `STATEHOUSE_*`) with `env` set.
fn bash(command: &str, env: &[(String, String)], work: &Path) -> Command {
    let mut bash = Command::new("bash");
    bash.args(["-o", "pipefail", "-c", command])
        .current_dir(work);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STATEHOUSE_") {
            bash.env_remove(key);
        }
    }
    bash.envs(env.iter().map(|(k, v)| (k, v)));
    bash
}

/// The variables an `export` line sets.
fn exports(command: &str, env: &[(String, String)], work: &Path) -> Vec<(String, String)> {
    let out = bash(&format!("{command}\nenv -0"), env, work)
        .output()
        .unwrap();
    assert!(out.status.success(), "{command}: {out:?}");
    let before: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    out.stdout
        .split(|b| *b == 0)
        .filter_map(|pair| {
            let pair = String::from_utf8_lossy(pair);
            let (key, value) = pair.split_once('=')?;
            (before.get(key) != Some(&value)).then(|| (key.to_owned(), value.to_owned()))
        })
        .filter(|(key, _)| !["_", "SHLVL", "PWD", "OLDPWD"].contains(&key.as_str()))
        .collect()
}

fn run(server: &Server, example: &Example, command: &str, env: &[(String, String)], work: &Path) {
    let mut child = bash(command, env, work)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = writeln!(stdin, "{PASSWORD}");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "README.md:{} failed ({}):\n{}\nstdout:\n{}\nstderr:\n{}\n{}",
        example.line,
        out.status,
        command,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
}
