//! What PostgreSQL backups owe a DBA, through the real binary against a real server and the
//! test PostgreSQL, on both stores: retention and deletes leave a trace (log line, audit
//! entry, event); a backup run by the CLI without a server notifies like a server run; a
//! restore over a database with objects needs `--force`; exclusions are stored, shown and
//! changed. (Whole-server restores: `whole_server.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_support;
#[macro_use]
mod common;

use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use backup_support::{
    answer_request, audit, events, fails, items, json_of, only_backup, source, with_target,
};
use common::{
    PgDatabase, Store, Via, describe, pg_execute, pg_url, pg_url_for_database, skip_e2e,
    unique_name,
};
use serde_json::Value;

on_both_stores!(
    retention_and_deletes_are_logged_audited_and_announced,
    local_backups_notify_like_server_runs,
    restores_over_databases_with_objects_need_force,
    exclusions_are_stored_shown_and_changed,
);

fn retention_and_deletes_are_logged_audited_and_announced(store: Store) {
    if skip_e2e() {
        return;
    }
    let (server, dir) = with_target(store);
    let remote = Via::Remote {
        token: Some(&server.admin_token),
    };
    let db = source("bksafe_ret", 100);
    server.cli(&[
        "db",
        "add",
        "shop",
        "--url",
        &db.url,
        "--target",
        "nas",
        "--keep-last",
        "1",
        "--no-health-checks",
    ]);
    let first = only_backup(&server.cli(&["db", "backup", "shop", "--json"]));
    let first_object = json_of(&server.cli(&["backup", "show", &first, "--json"]))["object"]
        .as_str()
        .unwrap()
        .to_owned();
    // The second runs in the server process: its retention deletes the first there.
    let second = only_backup(&server.cli_via(remote, &["db", "backup", "shop", "--json"]));
    assert!(!dir.path().join(&first_object).exists());

    let by_rule = "retention: kept by no rule (keep-last 1)";
    let entries = audit(&server, "backup.delete");
    let entry = entries
        .iter()
        .find(|e| e["target"] == first.as_str())
        .unwrap_or_else(|| panic!("no backup.delete entry for {first}: {entries:?}"));
    assert_eq!(entry["actor"], "statehouse", "{entry}");
    assert_eq!(entry["outcome"], "success", "{entry}");
    assert_eq!(entry["reason"], by_rule, "{entry}");
    assert_eq!(entry["workspace"], "default", "{entry}");
    let detail: Value = match &entry["detail"] {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    };
    assert_eq!(detail["object"], first_object.as_str(), "{entry}");
    let deleted = |id: &str| {
        events(&server)
            .into_iter()
            .find(|e| e["kind"] == "backup.deleted" && e["payload"]["backup_id"] == id)
            .unwrap_or_else(|| panic!("no backup.deleted event for {id}"))
    };
    let event = deleted(&first);
    assert_eq!(event["payload"]["reason"], by_rule, "{event}");
    assert_eq!(event["subject"], "shop", "{event}");
    assert_eq!(event["actor"], "statehouse", "{event}");
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("retention deleted a backup") && l.contains(&first)),
        "no log line for the deletion of {first}:\n{log}"
    );

    // The size cap, in the CLI process this time.
    server.cli(&[
        "db",
        "change",
        "shop",
        "--keep-last",
        "none",
        "--max-total-size",
        "1",
    ]);
    let third = only_backup(&server.cli(&["db", "backup", "shop", "--json"]));
    let entries = audit(&server, "backup.delete");
    let entry = entries
        .iter()
        .find(|e| e["target"] == second.as_str())
        .unwrap_or_else(|| panic!("no backup.delete entry for {second}: {entries:?}"));
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .starts_with("retention: max-total-size 1 B"),
        "{entry}"
    );
    assert!(
        deleted(&second)["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("max-total-size"),
    );

    // A delete by hand leaves the same trace, naming who asked.
    server.cli(&["backup", "delete", &third]);
    let entries = audit(&server, "backup.delete");
    let entry = entries
        .iter()
        .find(|e| e["target"] == third.as_str())
        .unwrap_or_else(|| panic!("no backup.delete entry for {third}: {entries:?}"));
    assert_eq!(entry["actor"], "local-cli", "{entry}");
    assert_eq!(entry["outcome"], "success", "{entry}");
    let event = deleted(&third);
    assert_eq!(
        event["payload"]["reason"], "deleted by local-cli",
        "{event}"
    );
    assert_eq!(event["actor"], "local-cli", "{event}");
}

/// A receiver on 127.0.0.1 answering every POST 200, handing each body over the channel.
fn receiver() -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/statehouse", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            thread::spawn(move || {
                let body = answer_request(stream);
                if let Ok(value) = serde_json::from_slice(&body) {
                    let _ = tx.send(value);
                }
            });
        }
    });
    (url, rx)
}

/// The next notification of `event` (others are skipped), within a few seconds.
fn next_notification(received: &mpsc::Receiver<Value>, event: &str) -> Value {
    loop {
        let got = received
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("no {event} notification arrived"));
        if got["event"] == event {
            return got;
        }
    }
}

fn local_backups_notify_like_server_runs(store: Store) {
    if skip_e2e() {
        return;
    }
    let (mut server, _dir) = with_target(store);
    let db = source("bksafe_note", 10);
    server.cli(&[
        "db",
        "add",
        "shop",
        "--url",
        &db.url,
        "--target",
        "nas",
        "--no-health-checks",
    ]);
    let missing = pg_url_for_database(&pg_url(), &unique_name("bksafe_missing"));
    server.cli(&[
        "db",
        "add",
        "ghost",
        "--url",
        &missing,
        "--target",
        "nas",
        "--retries",
        "0",
        "--no-health-checks",
    ]);
    let (hook, received) = receiver();
    server.cli(&[
        "notifier",
        "add",
        "hook",
        "--kind",
        "webhook",
        "--secret",
        &format!("url={hook}"),
        "--events",
        "backup.*",
    ]);
    // A notifier nobody listens to: the command says it could not deliver to it.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/nobody", closed.local_addr().unwrap());
    drop(closed);
    server.cli(&[
        "notifier",
        "add",
        "gone",
        "--kind",
        "webhook",
        "--secret",
        &format!("url={closed_url}"),
        "--events",
        "backup.failed",
    ]);
    // No server runs: only the CLI process can send these.
    server.kill9();
    let id = only_backup(&server.cli(&["db", "backup", "shop", "--json"]));
    let note = next_notification(&received, "backup.succeeded");
    assert_eq!(note["database"], "shop", "{note}");
    let stderr = fails(
        &server.cli_output(Via::Local, &["db", "backup", "ghost"]),
        1,
    );
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(
        stderr.contains("a notification was not delivered: notifier \"gone\": backup.failed"),
        "{stderr}"
    );
    let note = next_notification(&received, "backup.failed");
    assert_eq!(note["database"], "ghost", "{note}");
    assert!(
        note.to_string().contains("does not exist"),
        "the failure notification carries the error: {note}"
    );

    // The events were recorded too, as a server run records them.
    server.restart();
    let stored = events(&server);
    assert!(
        stored
            .iter()
            .any(|e| e["kind"] == "backup.succeeded" && e["payload"]["backup_id"] == id.as_str()),
        "{stored:?}"
    );
    assert!(
        stored
            .iter()
            .any(|e| e["kind"] == "backup.failed" && e["subject"] == "ghost"),
        "{stored:?}"
    );
}

fn restores_over_databases_with_objects_need_force(store: Store) {
    if skip_e2e() {
        return;
    }
    let (server, _dir) = with_target(store);
    let remote = Via::Remote {
        token: Some(&server.admin_token),
    };
    let db = source("bksafe_force", 500);
    server.cli(&[
        "db",
        "add",
        "shop",
        "--url",
        &db.url,
        "--target",
        "nas",
        "--no-health-checks",
    ]);
    let id = only_backup(&server.cli(&["db", "backup", "shop", "--json"]));
    let backed_up = items(&db.url);
    pg_execute(&db.url, "UPDATE items SET name = 'later' WHERE id < 5").unwrap();
    let live = items(&db.url);
    let port = port_of(&pg_url());

    // Without --force (and no terminal to ask on): refused, naming the database and server.
    let stderr = fails(&server.cli_output(Via::Local, &["db", "restore", &id]), 1);
    for expected in [
        format!("database \"{}\"", db.name),
        format!(":{port}"),
        "is not empty".to_owned(),
        "--force".to_owned(),
    ] {
        assert!(stderr.contains(&expected), "{expected:?} missing: {stderr}");
    }
    // Over HTTP, into the same database given by URL: the same.
    let stderr = fails(
        &server.cli_output(remote, &["db", "restore", &id, "--url", &db.url]),
        1,
    );
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(items(&db.url), live, "a refused restore changes nothing");

    // Into a new database: nothing to overwrite, no question.
    let fresh = unique_name("bksafe_fresh");
    let _fresh = DroppedDatabase(fresh.clone());
    server.cli(&["db", "restore", &id, "--into", &fresh]);
    // Confirmed: the live database gets the backup's contents.
    let out = server.cli_via(remote, &["db", "restore", &id, "--force"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("restored backup"),
        "{}",
        describe(&out)
    );
    assert_eq!(items(&db.url), backed_up);
}

fn exclusions_are_stored_shown_and_changed(store: Store) {
    if skip_e2e() {
        return;
    }
    let (server, _dir) = with_target(store);
    let db = PgDatabase::create("bksafe_excl");
    let added = json_of(&server.cli(&[
        "db",
        "add",
        "shop",
        "--url",
        &db.url,
        "--target",
        "nas",
        "--exclude-schema",
        "scratch",
        "--exclude-table",
        "cache_*",
        "--exclude-table",
        "\"Big Log\"",
        "--exclude-table-data",
        "audit_log",
        "--json",
    ]));
    assert_eq!(
        added["settings"]["exclude"],
        serde_json::json!({
            "schemas": ["scratch"],
            "tables": ["cache_*", "\"Big Log\""],
            "table_data": ["audit_log"],
        }),
        "{added}"
    );
    let shown = String::from_utf8_lossy(&server.cli(&["db", "show", "shop"]).stdout).into_owned();
    assert!(
        shown.contains("schemas scratch; tables cache_*, \"Big Log\"; rows of audit_log"),
        "{shown}"
    );
    // A list given to `db change` replaces that list only.
    let changed = json_of(&server.cli(&[
        "db",
        "change",
        "shop",
        "--exclude-table-data",
        "public.audit_*",
        "--json",
    ]));
    assert_eq!(
        changed["settings"]["exclude"]["table_data"],
        serde_json::json!(["public.audit_*"])
    );
    assert_eq!(
        changed["settings"]["exclude"]["schemas"],
        serde_json::json!(["scratch"])
    );
    // Hostile patterns are refused, and nothing changes.
    let stderr = fails(
        &server.cli_output(
            Via::Local,
            &["db", "change", "shop", "--exclude-table", "a\nb"],
        ),
        1,
    );
    assert!(stderr.contains("control character"), "{stderr}");
    let now = json_of(&server.cli(&["db", "show", "shop", "--json"]));
    assert_eq!(now["settings"]["exclude"], changed["settings"]["exclude"]);
    let cleared = json_of(&server.cli(&["db", "change", "shop", "--no-exclusions", "--json"]));
    assert!(cleared["settings"]["exclude"].is_null(), "{cleared}");
}

/// A database on the test PostgreSQL dropped at the end.
struct DroppedDatabase(String);

impl Drop for DroppedDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.0);
        if let Err(e) = pg_execute(&pg_url(), &sql) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// The port in a `postgres://…@host:port/…` URL.
fn port_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host.split(['/', '?']).next().unwrap();
    host.rsplit_once(':').map_or("5432", |(_, p)| p).to_owned()
}
