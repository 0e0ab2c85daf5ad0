//! What PostgreSQL backups owe a DBA, through the real binary against a real server and the
//! test PostgreSQL, on both stores: retention and deletes leave a trace (log line, audit
//! entry, event); a backup run by the CLI without a server notifies like a server run; a
//! restore over a database with objects needs `--force`; exclusions are stored, shown and
//! changed; a whole server restores onto a fresh, empty cluster with its roles, owners and
//! grants.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{
    PgDatabase, Server, Store, Via, describe, http_client, pg_execute, pg_url, pg_url_for_database,
    skip_e2e, unique_name,
};
use serde_json::Value;

on_both_stores!(
    retention_and_deletes_are_logged_audited_and_announced,
    local_backups_notify_like_server_runs,
    restores_over_databases_with_objects_need_force,
    exclusions_are_stored_shown_and_changed,
    whole_server_restores_onto_a_fresh_cluster_with_owners_and_grants,
);

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{}", describe(out)))
}

/// Asserts the command failed with `code`, and returns its stderr.
fn fails(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit status {code}\n{}",
        describe(out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One text value from a query on `url`.
fn pg_text(url: &str, sql: &str) -> String {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let value: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = conn.close().await;
        value.unwrap_or_default()
    })
}

/// A server with a local-directory target `nas` (the directory is returned).
fn with_target(store: Store) -> (Server, tempfile::TempDir) {
    let server = Server::start(store);
    let dir = tempfile::tempdir().unwrap();
    server.cli(&[
        "target",
        "add",
        "nas",
        "--kind",
        "local",
        "--set",
        &format!("path={}", dir.path().display()),
    ]);
    (server, dir)
}

/// A database with one table of `rows` rows.
fn source(prefix: &str, rows: u32) -> PgDatabase {
    let db = PgDatabase::create(prefix);
    pg_execute(
        &db.url,
        &format!(
            "CREATE TABLE items (id int PRIMARY KEY, name text);
             INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, {rows}) g;"
        ),
    )
    .unwrap();
    db
}

fn items(url: &str) -> String {
    pg_text(
        url,
        "SELECT count(*)::text || ':' || md5(string_agg(id || name, ',' ORDER BY id)) FROM items",
    )
}

/// The id of the only backup a `db backup --json` printed.
fn only_backup(out: &Output) -> String {
    let runs = json_of(out);
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs[0]["status"], "succeeded", "{runs}");
    runs[0]["id"].as_str().unwrap().to_owned()
}

/// The stored events, oldest first (as the instance admin sees them).
fn events(server: &Server) -> Vec<Value> {
    let response = http_client()
        .get(format!("{}/api/v1/events?limit=1000", server.url))
        .bearer_auth(&server.admin_token)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().unwrap();
    page["items"].as_array().unwrap().clone()
}

/// `audit list --action ACTION` entries, newest first.
fn audit(server: &Server, action: &str) -> Vec<Value> {
    let page = json_of(&server.cli(&["audit", "list", "--action", action, "--json"]));
    page["items"].as_array().unwrap().clone()
}

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
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let mut stream = stream;
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
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

/// Roles and databases this test makes on the test PostgreSQL, dropped at the end
/// (databases first).
struct SourceCluster {
    databases: Vec<String>,
    roles: Vec<String>,
}

impl Drop for SourceCluster {
    fn drop(&mut self) {
        for db in &self.databases {
            let sql = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
            if let Err(e) = pg_execute(&pg_url(), &sql) {
                eprintln!("cleanup: {e}");
            }
        }
        for role in &self.roles {
            if let Err(e) = pg_execute(&pg_url(), &format!("DROP ROLE IF EXISTS \"{role}\"")) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// A second, empty PostgreSQL cluster started with `scripts/pg-cluster.sh` (as the test
/// command starts the first one), stopped and removed at the end.
struct FreshCluster {
    dir: tempfile::TempDir,
    url: String,
}

impl FreshCluster {
    fn start() -> FreshCluster {
        let dir = tempfile::Builder::new()
            .prefix("statehouse-fresh-pg-")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir.path())
            .arg(port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "starting a second cluster failed\n{}",
            describe(&out)
        );
        FreshCluster {
            url: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            dir,
        }
    }
}

impl Drop for FreshCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-cluster.sh")
}

/// `url` connecting as `user` (no password: the test clusters trust local connections).
fn as_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{host}")
}

/// The port in a `postgres://…@host:port/…` URL.
fn port_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host.split(['/', '?']).next().unwrap();
    host.rsplit_once(':').map_or("5432", |(_, p)| p).to_owned()
}

fn whole_server_restores_onto_a_fresh_cluster_with_owners_and_grants(store: Store) {
    if skip_e2e() {
        return;
    }
    let (server, _dir) = with_target(store);
    let u = unique_name("ws");
    let (owner, reader, admin) = (
        format!("{u}_owner"),
        format!("{u}_reader"),
        format!("{u}_admin"),
    );
    let (db_a, db_b) = (format!("{u}_a"), format!("{u}_b"));
    let _source = SourceCluster {
        databases: vec![db_a.clone(), db_b.clone()],
        roles: vec![owner.clone(), reader.clone(), admin.clone()],
    };
    let source_url = pg_url();
    // Roles with a membership and passwords; a database owned by a non-superuser role whose
    // table is granted to another role; a superuser whose password differs on the target.
    for sql in [
        format!(
            "CREATE ROLE {reader} NOLOGIN;
             CREATE ROLE {owner} LOGIN PASSWORD 'owner-secret' IN ROLE {reader};
             CREATE ROLE {admin} SUPERUSER LOGIN PASSWORD 'old-admin-secret';"
        ),
        format!("CREATE DATABASE {db_a} OWNER {owner}"),
        format!("CREATE DATABASE {db_b}"),
    ] {
        pg_execute(&source_url, &sql).unwrap();
    }
    let url_a = pg_url_for_database(&source_url, &db_a);
    pg_execute(
        &url_a,
        &format!(
            "SET ROLE {owner};
             CREATE TABLE items (id int PRIMARY KEY, name text);
             INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 300) g;
             GRANT SELECT ON items TO {reader};
             RESET ROLE;"
        ),
    )
    .unwrap();
    pg_execute(
        &pg_url_for_database(&source_url, &db_b),
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'b ' || g FROM generate_series(1, 20) g;",
    )
    .unwrap();
    server.cli(&[
        "db",
        "add",
        "cluster",
        "--url",
        &source_url,
        "--whole-server",
        "--include",
        &format!("{u}_*"),
        "--target",
        "nas",
        "--no-health-checks",
    ]);
    let runs = json_of(&server.cli(&["db", "backup", "cluster", "--json"]));
    let runs = runs.as_array().unwrap().clone();
    assert_eq!(runs.len(), 3, "the globals and two databases: {runs:?}");
    let globals = runs.iter().find(|r| r["kind"] == "globals").unwrap();
    assert_eq!(globals["status"], "succeeded", "{globals}");
    assert_eq!(globals["detail"]["role_passwords"], true, "{globals}");
    let server_run = globals["server_run"].as_str().unwrap().to_owned();
    let listed = json_of(&server.cli(&["backup", "list", "--server-run", &server_run, "--json"]));
    assert_eq!(listed["items"].as_array().unwrap().len(), 3, "{listed}");
    let table = String::from_utf8_lossy(&server.cli(&["backup", "list"]).stdout).into_owned();
    assert!(table.contains("(globals)"), "{table}");
    let some_database = runs.iter().find(|r| r["db_name"] == db_a.as_str()).unwrap();
    let id = some_database["id"].as_str().unwrap().to_owned();

    // An empty, freshly initialised cluster, with a superuser of the same name as one of the
    // backup's but another password: statehouse connects as it.
    let fresh = FreshCluster::start();
    pg_execute(
        &fresh.url,
        &format!("CREATE ROLE {admin} SUPERUSER LOGIN PASSWORD 'new-admin-secret'"),
    )
    .unwrap();
    let admin_password = |url: &str| {
        pg_text(
            url,
            &format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{admin}'"),
        )
    };
    let target_admin_password = admin_password(&fresh.url);
    let target = as_user(&fresh.url, &admin);
    let out = server.cli(&[
        "db",
        "restore",
        &id,
        "--whole-server",
        "--url",
        &target,
        "--json",
    ]);
    let restored = json_of(&out);
    assert_eq!(restored["server_run"], server_run.as_str(), "{restored}");
    assert_eq!(
        restored["databases"].as_array().unwrap().len(),
        2,
        "{restored}"
    );
    let existed = restored["globals"]["globals"]["already_existed"].to_string();
    assert!(existed.contains("role \\\"postgres\\\""), "{restored}");
    assert_eq!(
        restored["globals"]["globals"]["kept_password_of"],
        admin.as_str(),
        "{restored}"
    );

    // Owners, grants, memberships and password hashes came back; so did the data.
    let fresh_a = pg_url_for_database(&fresh.url, &db_a);
    assert_eq!(
        pg_text(
            &fresh.url,
            &format!("SELECT datdba::regrole::text FROM pg_database WHERE datname = '{db_a}'")
        ),
        owner
    );
    assert_eq!(
        pg_text(
            &fresh_a,
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'items'"
        ),
        owner
    );
    assert_eq!(
        pg_text(
            &fresh_a,
            &format!("SELECT has_table_privilege('{reader}', 'public.items', 'SELECT')::text")
        ),
        "true"
    );
    assert_eq!(
        pg_text(
            &fresh.url,
            &format!("SELECT pg_has_role('{owner}', '{reader}', 'MEMBER')::text")
        ),
        "true"
    );
    let owner_password = format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{owner}'");
    let source_hash = pg_text(&source_url, &owner_password);
    assert!(source_hash.starts_with("SCRAM-SHA-256$"), "{source_hash}");
    assert_eq!(pg_text(&fresh.url, &owner_password), source_hash);
    assert_eq!(
        admin_password(&fresh.url),
        target_admin_password,
        "the role statehouse connects as keeps its password on the target"
    );
    assert_eq!(items(&fresh_a), items(&url_a));
    assert_eq!(
        items(&pg_url_for_database(&fresh.url, &db_b)),
        items(&pg_url_for_database(&source_url, &db_b))
    );

    // Again: the databases have objects and the server has the roles now.
    let stderr = fails(
        &server.cli_output(
            Via::Local,
            &["db", "restore", &id, "--whole-server", "--url", &target],
        ),
        1,
    );
    assert!(
        stderr.contains("already has roles of its own")
            && stderr.contains(&format!("database \"{db_a}\""))
            && stderr.contains("--force"),
        "{stderr}"
    );
    server.cli(&[
        "db",
        "restore",
        &id,
        "--whole-server",
        "--url",
        &target,
        "--force",
    ]);
    assert_eq!(items(&fresh_a), items(&url_a));

    // Retention keeps whole runs: the globals go with their databases.
    server.cli(&["db", "change", "cluster", "--keep-last", "1"]);
    let newer = json_of(&server.cli(&["db", "backup", "cluster", "--json"]));
    let newer_run = newer[0]["server_run"].as_str().unwrap().to_owned();
    let left = json_of(&server.cli(&["backup", "list", "--database", "cluster", "--json"]));
    let left = left["items"].as_array().unwrap();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        left.iter().all(|b| b["server_run"] == newer_run.as_str()),
        "{left:?}"
    );
}
