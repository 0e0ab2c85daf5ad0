//! PostgreSQL backups through the CLI, as the real binary against a real server and the test
//! PostgreSQL: a local-directory target, a registered database with data, backups (in-process
//! and over HTTP with NDJSON progress), listing, download with checksum, a restore without
//! statehouse (`age | zstd | pg_restore`), `db restore`, verification, a damaged object, target
//! and notifier tests, and the exit statuses of failures; the read-only role helper; two server
//! processes sharing one store, each queued or scheduled backup run by exactly one of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_support;
#[macro_use]
mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use backup_support::{answer_request, fails, json_of, pg_text};
use common::{
    PgDatabase, Server, Store, Via, describe, pg_execute, pg_url, pg_url_for_database, skip_e2e,
    unique_name,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

on_both_stores!(
    backup_download_restore_and_verify,
    readonly_role_through_the_cli,
    two_server_processes_run_each_backup_once
);

/// What the test tables hold, as one comparable text.
fn contents(url: &str) -> String {
    let items = pg_text(
        url,
        "SELECT count(*)::text || ':' || md5(string_agg(id::text || '=' || name, ',' ORDER BY id)) FROM items",
    );
    let notes = pg_text(
        url,
        "SELECT count(*)::text || ':' || md5(string_agg(body, ',' ORDER BY id)) FROM notes",
    );
    format!("items {items}; notes {notes}")
}

/// A database the test expects statehouse (or the test) to create; dropped at the end.
struct Dropped(String);

impl Dropped {
    fn url(&self) -> String {
        pg_url_for_database(&pg_url(), &self.0)
    }
}

impl Drop for Dropped {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.0);
        if let Err(e) = pg_execute(&pg_url(), &sql) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// A one-shot HTTP receiver on 127.0.0.1: answers the first request 200 and hands its body
/// over the channel.
fn receiver() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/statehouse", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let body = answer_request(stream);
        let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
    });
    (url, rx)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn backup_and_restore_tools_present() -> bool {
    for tool in ["age", "age-keygen", "zstd", "pg_restore"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            found,
            "`{tool}` is needed for restores without statehouse: apt-get install age zstd postgresql-client"
        );
    }
    true
}

fn backup_download_restore_and_verify(store: Store) {
    if skip_e2e() {
        return;
    }
    assert!(backup_and_restore_tools_present());
    let server = Server::start(store);
    let remote = Via::Remote {
        token: Some(&server.admin_token),
    };
    let cli = |args: &[&str]| server.cli(args);
    let cli_fails = |args: &[&str]| server.cli_output(Via::Local, args);

    // A source database with data worth comparing.
    let source = PgDatabase::create("clibk_src");
    pg_execute(
        &source.url,
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO items SELECT g, 'item-' || g || repeat('x', g % 50) FROM generate_series(1, 20000) g;
         CREATE TABLE notes (id serial PRIMARY KEY, body text);
         INSERT INTO notes (body) VALUES ('first'), ('zweite ünïcödé'), (NULL), ('it''s quoted');",
    )
    .unwrap();
    let expected = contents(&source.url);

    // Storage targets: a working directory and one whose path cannot be a directory.
    let store_dir = tempfile::tempdir().unwrap();
    let store_path = store_dir.path().display().to_string();
    cli(&[
        "target",
        "add",
        "nas",
        "--kind",
        "local",
        "--set",
        &format!("path={store_path}"),
    ]);
    let tested = json_of(&cli(&["target", "test", "nas", "--json"]));
    assert_eq!(tested["ok"], true, "{tested}");
    let blocker = store_dir.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    cli(&[
        "target",
        "add",
        "broken",
        "--kind",
        "local",
        "--set",
        &format!("path={}", blocker.join("sub").display()),
    ]);
    let stderr = fails(&cli_fails(&["target", "test", "broken"]), 1);
    assert!(
        stderr.contains("storage target \"broken\" failed the test")
            && stderr.contains("creating a folder"),
        "{stderr}"
    );
    let targets = json_of(&cli(&["target", "list", "--json"]));
    assert_eq!(targets["items"].as_array().unwrap().len(), 2, "{targets}");
    cli(&["target", "delete", "broken"]);

    // The database, then a check.
    let added = json_of(&cli(&[
        "db",
        "add",
        "shop",
        "--url",
        &source.url,
        "--target",
        "nas",
        "--schedule",
        "daily 02:30",
        "--timezone",
        "Europe/Berlin",
        "--keep-last",
        "10",
        "--max-total-size",
        "5G",
        "--json",
    ]));
    assert_eq!(added["settings"]["schedule"]["every"], "daily", "{added}");
    assert_eq!(added["settings"]["retention"]["keep_last"], 10, "{added}");
    assert!(added["next_backup_at"].is_string(), "{added}");
    let check = json_of(&cli(&["db", "check", "shop", "--json"]));
    assert_eq!(check["reachable"], true, "{check}");
    assert!(check["server_version"].is_string(), "{check}");
    let shown = String::from_utf8_lossy(&cli(&["db", "show", "shop"]).stdout).into_owned();
    assert!(shown.contains("daily 02:30 (Europe/Berlin)"), "{shown}");

    // A backup in-process, then one over HTTP (NDJSON progress lines, then the result).
    let runs = json_of(&cli(&["db", "backup", "shop", "--json"]));
    let run = &runs.as_array().unwrap()[0];
    assert_eq!(run["status"], "succeeded", "{runs}");
    let id = run["id"].as_str().unwrap().to_owned();
    let object = run["object"].as_str().unwrap().to_owned();
    let db = &source.name;
    assert!(
        object.starts_with(&format!("{db}/{db}-"))
            && object.ends_with(&format!("-{id}.dump.zst.age")),
        "object name {object:?}"
    );
    let stored = store_dir.path().join(&object);
    assert!(stored.is_file(), "{} is missing", stored.display());
    assert!(
        store_dir.path().join(format!("{object}.json")).is_file(),
        "the metadata file beside {object} is missing"
    );
    let remote_runs = server.cli_via(remote, &["db", "backup", "shop", "--json"]);
    let remote_runs = json_of(&remote_runs);
    assert_eq!(remote_runs[0]["status"], "succeeded", "{remote_runs}");
    let queued = json_of(&cli(&["db", "backup", "shop", "--no-wait", "--json"]));
    assert_eq!(queued["status"], "queued", "{queued}");

    // Listing.
    let page = json_of(&cli(&[
        "backup",
        "list",
        "--database",
        "shop",
        "--status",
        "succeeded",
        "--json",
    ]));
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    // Two, or three once the server's workers ran the queued one.
    assert!(ids.len() >= 2, "{page}");
    assert!(ids.contains(&id.as_str()), "{page}");
    let listed = String::from_utf8_lossy(&cli(&["backup", "list"]).stdout).into_owned();
    assert!(listed.contains(&id), "{listed}");

    // Download: the exact stored bytes, checked against the recorded SHA-256.
    let stored_bytes = std::fs::read(&stored).unwrap();
    let work = tempfile::tempdir().unwrap();
    let downloaded = work.path().join("copy.age");
    let out = cli(&[
        "backup",
        "download",
        &id,
        "-o",
        &downloaded.display().to_string(),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SHA-256 checked"),
        "{}",
        describe(&out)
    );
    assert_eq!(std::fs::read(&downloaded).unwrap(), stored_bytes);
    assert_eq!(sha256_hex(&stored_bytes), run["sha256"].as_str().unwrap());
    server.cli_via(remote, &["backup", "download", &id]);
    let default_name = server
        .remote_cli_dir()
        .join(Path::new(&object).file_name().unwrap());
    assert_eq!(
        std::fs::read(&default_name).unwrap_or_else(|e| panic!("{}: {e}", default_name.display())),
        stored_bytes
    );

    // Restore without statehouse: the exported key, age, zstd and pg_restore.
    let key = work.path().join("key.txt");
    cli(&[
        "backup",
        "encryption",
        "export-key",
        "-o",
        &key.display().to_string(),
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key file must be private");
    }
    let by_hand = PgDatabase::create("clibk_hand");
    let pipeline = format!(
        "set -o pipefail; age -d -i '{}' '{}' | zstd -d | pg_restore --no-owner -d '{}'",
        key.display(),
        downloaded.display(),
        by_hand.url
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&pipeline)
        .output()
        .unwrap();
    assert!(out.status.success(), "{pipeline}\n{}", describe(&out));
    assert_eq!(contents(&by_hand.url), expected);

    // `db restore` into a new database of the same server (created).
    let restored = Dropped(unique_name("clibk_restored"));
    let out = json_of(&cli(&[
        "db",
        "restore",
        &id,
        "--into",
        &restored.0,
        "--json",
    ]));
    assert_eq!(out["created_database"], true, "{out}");
    assert_eq!(contents(&restored.url()), expected);
    // Over HTTP, into the existing one again: it has objects now, so only with --force.
    let stderr = fails(
        &server.cli_output(remote, &["db", "restore", &id, "--into", &restored.0]),
        1,
    );
    assert!(
        stderr.contains("is not empty") && stderr.contains("--force"),
        "{stderr}"
    );
    server.cli_via(
        remote,
        &["db", "restore", &id, "--into", &restored.0, "--force"],
    );
    assert_eq!(contents(&restored.url()), expected);

    // Verification passes; a damaged object fails verification and restore, non-zero.
    let verified = json_of(&cli(&["db", "verify", &id, "--json"]));
    assert_eq!(verified["ok"], true, "{verified}");
    let mut damaged = stored_bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    std::fs::write(&stored, &damaged).unwrap();
    let stderr = fails(&cli_fails(&["db", "verify", &id]), 1);
    assert!(
        stderr.contains(&format!("backup {id} failed verification")),
        "{stderr}"
    );
    let shown = json_of(&cli(&["backup", "show", &id, "--json"]));
    assert_eq!(shown["verification_ok"], false, "{shown}");
    let broken_restore = Dropped(unique_name("clibk_broken"));
    let stderr = fails(
        &cli_fails(&["db", "restore", &id, "--into", &broken_restore.0]),
        1,
    );
    assert!(stderr.contains("restore"), "{stderr}");
    // A download of the damaged object is refused and leaves no file behind.
    let refused = work.path().join("damaged.age");
    let stderr = fails(
        &cli_fails(&[
            "backup",
            "download",
            &id,
            "-o",
            &refused.display().to_string(),
        ]),
        1,
    );
    assert!(stderr.contains("SHA-256"), "{stderr}");
    assert!(!refused.exists() && !work.path().join("damaged.age.partial").exists());

    // Notifiers: a test reaches a local receiver; an unreachable one fails non-zero.
    let (hook, received) = receiver();
    cli(&[
        "notifier",
        "add",
        "hook",
        "--kind",
        "webhook",
        "--secret",
        &format!("url={hook}"),
        "--events",
        "backup.failed,database.*",
        "--databases",
        "shop",
    ]);
    let shown = json_of(&cli(&["notifier", "show", "hook", "--json"]));
    assert_eq!(shown["databases"], serde_json::json!(["shop"]), "{shown}");
    assert!(
        !shown.to_string().contains(&hook),
        "the secret URL must not be shown: {shown}"
    );
    let tested = json_of(&cli(&["notifier", "test", "hook", "--json"]));
    assert_eq!(tested["ok"], true, "{tested}");
    let body = received.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(body.contains("test"), "the receiver got {body:?}");
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/nobody", closed.local_addr().unwrap());
    drop(closed);
    cli(&[
        "notifier",
        "add",
        "gone",
        "--kind",
        "webhook",
        "--secret",
        &format!("url={closed_url}"),
    ]);
    let stderr = fails(&cli_fails(&["notifier", "test", "gone"]), 1);
    assert!(
        stderr.contains("notifier \"gone\" failed the test"),
        "{stderr}"
    );

    // A backup that fails is an answer with status failed: exit 1 with the reason.
    let missing = pg_url_for_database(&pg_url(), &unique_name("clibk_missing"));
    cli(&[
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
    let stderr = fails(&cli_fails(&["db", "backup", "ghost"]), 1);
    assert!(
        stderr.contains("of \"ghost\" failed") || stderr.contains("failed:"),
        "{stderr}"
    );
    assert!(stderr.contains("does not exist"), "{stderr}");

    // Settings change one by one.
    let changed = json_of(&cli(&[
        "db",
        "change",
        "shop",
        "--keep-last",
        "none",
        "--keep-daily",
        "7",
        "--no-schedule",
        "--json",
    ]));
    assert_eq!(
        changed["settings"]["retention"],
        serde_json::json!({"keep_daily": 7, "max_total_bytes": 5u64 << 30}),
        "{changed}"
    );
    assert!(changed["settings"]["schedule"].is_null(), "{changed}");

    // Your own recipient only: the server cannot read new backups; restores need the identity.
    let mine = work.path().join("mine.txt");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&mine)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(&mine)
        .output()
        .unwrap();
    let recipient = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    cli(&[
        "backup",
        "encryption",
        "set-recipients",
        &recipient,
        "--drop-managed-key",
    ]);
    let encryption = json_of(&cli(&["backup", "encryption", "show", "--json"]));
    assert_eq!(encryption["server_can_decrypt"], false, "{encryption}");
    let runs = json_of(&cli(&["db", "backup", "shop", "--json"]));
    let sealed_id = runs[0]["id"].as_str().unwrap().to_owned();
    let private = Dropped(unique_name("clibk_private"));
    let stderr = fails(
        &cli_fails(&["db", "restore", &sealed_id, "--into", &private.0]),
        1,
    );
    assert!(stderr.contains("--identity"), "{stderr}");
    cli(&[
        "db",
        "restore",
        &sealed_id,
        "--into",
        &private.0,
        "--identity",
        &mine.display().to_string(),
    ]);
    assert_eq!(contents(&private.url()), expected);
}

/// `url` with its user and password replaced.
fn pg_url_as(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host_start = rest[..rest.find('/').unwrap_or(rest.len())]
        .rfind('@')
        .map_or(0, |at| at + 1);
    format!("{scheme}://{user}:{password}@{}", &rest[host_start..])
}

/// A role the test expects statehouse to create; dropped at the end (after the databases it
/// was granted on, which are declared later and so dropped first).
struct DroppedRole(String);

impl Drop for DroppedRole {
    fn drop(&mut self) {
        if let Err(e) = pg_execute(&pg_url(), &format!("DROP ROLE IF EXISTS {}", self.0)) {
            eprintln!("cleanup: {e}");
        }
    }
}

fn readonly_role_through_the_cli(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    let cli = |args: &[&str]| server.cli(args);
    let role = unique_name("clibk_reader");
    let _role = DroppedRole(role.clone());
    let source = PgDatabase::create("clibk_ro");
    pg_execute(
        &source.url,
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO items SELECT g, 'item-' || g FROM generate_series(1, 500) g;
         CREATE SCHEMA app;
         CREATE TABLE app.notes (id serial PRIMARY KEY, body text);
         INSERT INTO app.notes (body) VALUES ('one'), ('two');",
    )
    .unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    cli(&[
        "target",
        "add",
        "nas",
        "--kind",
        "local",
        "--set",
        &format!("path={}", store_dir.path().display()),
    ]);
    cli(&["db", "add", "shop", "--url", &source.url, "--target", "nas"]);
    let check = json_of(&cli(&["db", "check", "shop", "--json"]));
    assert!(
        check["warnings"].to_string().contains("is a superuser"),
        "the test connects as a superuser, which the check must point out: {check}"
    );

    // Bad input is refused with the reason, and changes nothing.
    let stderr = fails(
        &server.cli_output(
            Via::Local,
            &[
                "db",
                "readonly-role",
                "shop",
                "--role",
                "Bad\"Name",
                "--admin-url",
                &pg_url(),
            ],
        ),
        1,
    );
    assert!(stderr.contains("lowercase letters"), "{stderr}");
    let stderr = fails(
        &server.cli_output(
            Via::Local,
            &[
                "db",
                "readonly-role",
                "shop",
                "--role",
                &role,
                "--admin-url",
                "postgres://postgres@127.0.0.1:1/postgres",
            ],
        ),
        1,
    );
    assert!(
        stderr.contains(&format!("creating role \"{role}\" failed")),
        "{stderr}"
    );
    let shown = json_of(&cli(&["db", "show", "shop", "--json"]));
    assert_eq!(
        shown["settings"]["connection"]["user"], "postgres",
        "{shown}"
    );

    // The role, with the admin URL on stdin (kept out of the process list); the password is
    // printed once and the database now connects as the role.
    let out = server.cli_with_input(
        Via::Local,
        &[
            "db",
            "readonly-role",
            "shop",
            "--role",
            &role,
            "--admin-url-stdin",
        ],
        &format!("{}\n", pg_url()),
    );
    assert!(out.status.success(), "{}", describe(&out));
    let password = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(password.len(), 32, "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("now connects as it"),
        "{}",
        describe(&out)
    );
    let shown = json_of(&cli(&["db", "show", "shop", "--json"]));
    assert_eq!(
        shown["settings"]["connection"]["user"],
        role.as_str(),
        "{shown}"
    );
    assert!(
        !shown.to_string().contains(&password),
        "the password must never come back: {shown}"
    );

    // Make the test cluster demand the role's password (scram), so the backup below proves the
    // stored password is the one PostgreSQL knows.
    pg_execute(
        &pg_url(),
        &format!(
            "DO $$ BEGIN CREATE ROLE statehouse_password_auth NOLOGIN;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             GRANT statehouse_password_auth TO {role}"
        ),
    )
    .unwrap();
    let wrong = pg_execute(&pg_url_as(&source.url, &role, "not-the-password"), "SELECT 1")
        .expect_err("the test cluster must ask this role for its password (scripts/pg-cluster.sh adds the rule)");
    assert!(wrong.contains("password authentication failed"), "{wrong}");
    let as_role = pg_url_as(&source.url, &role, &password);
    let refused = pg_execute(&as_role, "INSERT INTO items VALUES (1000, 'x')")
        .expect_err("the read-only role must not write");
    assert!(refused.contains("permission denied"), "{refused}");
    assert!(pg_execute(&as_role, "CREATE TABLE app.mine (id int)").is_err());
    assert_eq!(
        pg_text(&as_role, "SELECT count(*)::text FROM app.notes"),
        "2"
    );

    // The check has nothing left to warn about, and a backup as the role succeeds.
    let check = json_of(&cli(&["db", "check", "shop", "--json"]));
    assert_eq!(check["reachable"], true, "{check}");
    assert_eq!(check["warnings"], serde_json::json!([]), "{check}");
    let runs = json_of(&cli(&["db", "backup", "shop", "--json"]));
    assert_eq!(runs[0]["status"], "succeeded", "{runs}");
    assert!(runs[0]["dump_bytes"].as_i64().unwrap() > 0, "{runs}");

    // The same name again is refused.
    let stderr = fails(
        &server.cli_output(
            Via::Local,
            &[
                "db",
                "readonly-role",
                "shop",
                "--role",
                &role,
                "--admin-url",
                &pg_url(),
                "--keep-connection",
            ],
        ),
        1,
    );
    assert!(stderr.contains("already exists"), "{stderr}");
}

/// Every event after `seq` 0, through the events API.
fn all_events(server: &Server) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = server
            .request(
                "GET",
                &format!("{}/api/v1/events?after={after}&limit=1000", server.url),
                &server.admin_token,
                Vec::new(),
            )
            .json()
            .unwrap();
        let items = page["items"].as_array().unwrap();
        if items.is_empty() {
            return events;
        }
        events.extend(items.iter().cloned());
        after = page["next_after"].as_i64().unwrap();
    }
}

fn backups_of(server: &Server) -> Vec<Value> {
    let page = json_of(&server.cli(&["backup", "list", "--limit", "200", "--json"]));
    page["items"].as_array().unwrap().clone()
}

fn two_server_processes_run_each_backup_once(store: Store) {
    if skip_e2e() {
        return;
    }
    let a = Server::start(store);
    let b = a.peer();
    let source = PgDatabase::create("clibk_two");
    pg_execute(
        &source.url,
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO items SELECT g, 'item-' || g FROM generate_series(1, 2000) g;",
    )
    .unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    a.cli(&[
        "target",
        "add",
        "nas",
        "--kind",
        "local",
        "--set",
        &format!("path={}", store_dir.path().display()),
    ]);
    // Due every minute: both processes' schedulers see each due time.
    a.cli(&[
        "db",
        "add",
        "shop",
        "--url",
        &source.url,
        "--target",
        "nas",
        "--cron",
        "* * * * *",
    ]);

    // Queued runs, half through each process; both processes' workers claim from one queue.
    let queued = 6;
    for i in 0..queued {
        let server = if i % 2 == 0 { &a } else { &b };
        let out = server.cli_via(
            Via::Remote {
                token: Some(&a.admin_token),
            },
            &["db", "backup", "shop", "--no-wait", "--json"],
        );
        assert_eq!(json_of(&out)["status"], "queued", "{}", describe(&out));
    }

    // Wait for the queued runs and the first scheduled one (at the next minute) to finish.
    let deadline = std::time::Instant::now() + Duration::from_secs(100);
    let runs = loop {
        let runs = backups_of(&a);
        let finished = |trigger: &str| {
            runs.iter()
                .filter(|r| r["trigger"] == trigger && r["status"] == "succeeded")
                .count()
        };
        if finished("manual") == queued && finished("schedule") >= 1 {
            break runs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the runs did not all finish: {runs:#?}\n--- a:\n{}\n--- b:\n{}",
            a.log_text(),
            b.log_text()
        );
        thread::sleep(Duration::from_millis(500));
    };
    // No more scheduled runs from here on.
    a.cli(&["db", "change", "shop", "--no-schedule"]);
    thread::sleep(Duration::from_secs(1));

    // Each run ran once: one attempt, its own object, and exactly one `backup.succeeded` event
    // (stored by the process that ran it). Each due minute queued one scheduled run.
    let runs = backups_of(&a)
        .into_iter()
        .filter(|r| runs.iter().any(|s| s["id"] == r["id"]));
    let runs: Vec<Value> = runs.collect();
    let mut objects = std::collections::BTreeSet::new();
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["attempt"], 1, "{run}");
        assert!(
            objects.insert(run["object"].as_str().unwrap().to_owned()),
            "{run}"
        );
    }
    let mut minutes: Vec<String> = runs
        .iter()
        .filter(|r| r["trigger"] == "schedule")
        .map(|r| r["queued_at"].as_str().unwrap()[..16].to_owned())
        .collect();
    let scheduled = minutes.len();
    minutes.dedup();
    assert_eq!(
        minutes.len(),
        scheduled,
        "a due time was queued twice: {runs:#?}"
    );
    let events = all_events(&a);
    for run in &runs {
        let succeeded = events
            .iter()
            .filter(|e| e["kind"] == "backup.succeeded" && e["payload"]["backup_id"] == run["id"])
            .count();
        assert_eq!(
            succeeded, 1,
            "run {} finished {succeeded} times: {events:#?}",
            run["id"]
        );
    }
    let on_disk = std::fs::read_dir(store_dir.path().join(&source.name))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".dump.zst.age")
        })
        .count();
    assert_eq!(on_disk, runs.len(), "one object per run");
    // Each process logs the runs it ran: every run appears in exactly one log, and with this
    // many runs both processes took some (else the test would not show them sharing a queue).
    let (log_a, log_b) = (a.log_text(), b.log_text());
    let ran_by = |log: &str| {
        runs.iter()
            .filter(|r| log.contains(&format!("backup={}", r["id"].as_str().unwrap())))
            .count()
    };
    let (by_a, by_b) = (ran_by(&log_a), ran_by(&log_b));
    assert_eq!(
        by_a + by_b,
        runs.len(),
        "a ran {by_a}, b ran {by_b}\n--- a:\n{log_a}\n--- b:\n{log_b}"
    );
    assert!(by_a > 0 && by_b > 0, "a ran {by_a}, b ran {by_b}");
}
