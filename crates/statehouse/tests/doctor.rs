//! `statehouse doctor` and the reasons `statehouse serve` gives when it cannot start: a healthy
//! instance passes on both stores (database, migrations, master key verified against the store,
//! a storage target probed); a broken configuration gets one finding per problem with the fix,
//! and a non-zero exit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

mod backup_support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{BIN, Store, Via, skip_e2e};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `statehouse <args>` with exactly `env` as its `STATEHOUSE_*` environment.
fn statehouse(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STATEHOUSE_") {
            cmd.env_remove(key);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).stdin(Stdio::null()).output().unwrap()
}

fn a_healthy_instance_passes(store: Store) {
    if skip_e2e() {
        return;
    }
    let (server, _nas) = backup_support::with_target(store);
    let out = server.cli_output(Via::Local, &["doctor"]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    for expected in [
        "ok    settings: every STATEHOUSE_* variable names a setting",
        "statehouse store, migrations current",
        "ok    master key: verified against the store",
        "ok    target: default/nas (local): probe written, read and deleted",
        "0 problems, 0 warnings",
    ] {
        assert!(report.contains(expected), "{expected:?} in:\n{report}");
    }
    if store == Store::Postgres {
        assert!(
            report.contains("ok    clock: PostgreSQL's clock"),
            "{report}"
        );
    }
    // It changed nothing a server would notice: the server still serves.
    let ready = common::http_client()
        .get(format!("{}/readyz", server.url))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 200);
}

on_both_stores!(a_healthy_instance_passes);

#[test]
fn a_broken_configuration_gets_each_problem_and_its_fix() {
    if skip_e2e() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().display().to_string();
    // A SQLite store made by `migrate`, then a key file others may read.
    let base = [("STATEHOUSE_DATA_DIR", dir.as_str())];
    let out = statehouse(&base, &["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    let key = data.path().join("master.key");
    chmod(&key, 0o644);
    // A port held by a program that is no statehouse.
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().to_string();
    let missing = data.path().join("missing.pem").display().to_string();
    let out = statehouse(
        &[
            ("STATEHOUSE_DATA_DIR", dir.as_str()),
            ("STATEHOUSE_LISTEN", taken.as_str()),
            ("STATEHOUSE_S3_LISTEN", "off"),
            ("STATEHOUSE_TLS__CERT_FILE", missing.as_str()),
            ("STATEHOUSE_TLS__KEY_FILE", missing.as_str()),
            ("STATEHOUSE_LISTN", "0.0.0.0:1"),
        ],
        &["doctor"],
    );
    let report = text(&out);
    assert!(!out.status.success(), "{report}");
    for expected in [
        "warn  settings: STATEHOUSE_LISTN is not a statehouse setting",
        &format!("FAIL  listen: listen {taken} is in use by another program"),
        "FAIL  tls: cannot read the TLS certificate",
        "warn  master key:",
        "fix: chmod 600",
        "statehouse store, migrations current",
        "the checks above found problems",
    ] {
        assert!(report.contains(expected), "{expected:?} in:\n{report}");
    }
    drop(squatter);

    // A key file of another instance: refused against the store, once the store holds data
    // sealed under its own key (an S3 key's secret).
    let out = statehouse(
        &base,
        &[
            "s3-key",
            "create",
            "--workspace",
            "default",
            "--role",
            "viewer",
            "--name",
            "sealed",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let other = tempfile::tempdir().unwrap();
    let other_key = other.path().join("other.key");
    let out = statehouse(
        &[],
        &["key", "generate", "--out", &other_key.display().to_string()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = statehouse(
        &[
            ("STATEHOUSE_DATA_DIR", dir.as_str()),
            ("STATEHOUSE_LISTEN", "127.0.0.1:0"),
            ("STATEHOUSE_S3_LISTEN", "off"),
            (
                "STATEHOUSE_MASTER_KEY_FILE",
                other_key.display().to_string().as_str(),
            ),
        ],
        &["doctor"],
    );
    let report = text(&out);
    assert!(!out.status.success(), "{report}");
    assert!(report.contains("FAIL  master key:"), "{report}");
    // `key generate` never overwrites.
    let again = statehouse(
        &[],
        &["key", "generate", "--out", &other_key.display().to_string()],
    );
    assert!(!again.status.success());
    assert!(
        text(&again).contains("is never overwritten"),
        "{}",
        text(&again)
    );
}

#[test]
fn an_unreachable_database_is_named_with_the_fix() {
    if skip_e2e() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://statehouse:secret-pw@127.0.0.1:{closed}/statehouse");
    let env = [
        ("STATEHOUSE_DATA_DIR", data.path().to_str().unwrap()),
        ("STATEHOUSE_DATABASE_URL", url.as_str()),
        ("STATEHOUSE_LISTEN", "127.0.0.1:0"),
        ("STATEHOUSE_S3_LISTEN", "127.0.0.1:0"),
    ];
    let out = statehouse(&env, &["doctor"]);
    let report = text(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains(&format!(
            "FAIL  database: cannot connect to PostgreSQL at 127.0.0.1:{closed}"
        )) && report.contains("fix: check database_url"),
        "{report}"
    );
    assert!(!report.contains("secret-pw"), "{report}");

    // `serve` says the same and stops, before showing an admin token.
    let out = statehouse(&env, &["serve"]);
    let said = text(&out);
    assert!(!out.status.success());
    assert!(
        said.contains(&format!("127.0.0.1:{closed}")) && !said.contains("admin token"),
        "{said}"
    );
    assert!(!said.contains("secret-pw"), "{said}");
    // The reason is said once (a store error's source repeats its message).
    assert_eq!(
        said.matches("cannot connect to PostgreSQL at").count(),
        1,
        "{said}"
    );
}

/// `serve` cannot start: each reason is said with the place and the setting, and the exit is
/// non-zero.
#[test]
fn serve_says_why_it_cannot_start() {
    if skip_e2e() {
        return;
    }
    // The port is taken.
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().display().to_string();
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().to_string();
    let out = statehouse(
        &[
            ("STATEHOUSE_DATA_DIR", dir.as_str()),
            ("STATEHOUSE_LISTEN", taken.as_str()),
            ("STATEHOUSE_S3_LISTEN", "off"),
        ],
        &["serve"],
    );
    let said = text(&out);
    assert!(!out.status.success());
    assert!(
        said.contains(&format!("cannot listen on {taken} (STATEHOUSE_LISTEN)"))
            && said.contains("in use"),
        "{said}"
    );
    drop(squatter);

    // The master key file cannot be used (not a key file; as root, unreadable modes are no
    // obstacle, so a damaged file stands for every unusable one).
    let key = data.path().join("bad.key");
    std::fs::write(&key, "this is not a key\n").unwrap();
    let out = statehouse(
        &[
            ("STATEHOUSE_DATA_DIR", dir.as_str()),
            ("STATEHOUSE_LISTEN", "127.0.0.1:0"),
            ("STATEHOUSE_S3_LISTEN", "off"),
            (
                "STATEHOUSE_MASTER_KEY_FILE",
                key.display().to_string().as_str(),
            ),
        ],
        &["serve"],
    );
    let said = text(&out);
    assert!(!out.status.success());
    assert!(
        said.contains(&key.display().to_string()) && !said.contains("admin token"),
        "{said}"
    );
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
