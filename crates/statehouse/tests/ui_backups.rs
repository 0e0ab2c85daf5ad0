//! The backups pages in a real browser (Debian's Chromium) against the real binary on SQLite
//! and PostgreSQL, with a real PostgreSQL 15 database and `pg_dump`: a local storage target
//! and the database added through their forms (connection test, schedule preview in a time
//! zone, a bad cron refused), the first check flagging a role that can write; the database's
//! health and history, "back up now" followed until it succeeds, a verification by test
//! restore, the charts, a restore into a new database with equal table contents (and a second
//! one refused without "replace"); the read-only role helper, a backup as that role, and the
//! retention preview; a failing database and recent events on the overview; a viewer sees no
//! button to act with and its forged forms are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::browser::Browser;
use common::ui::{ADMIN_PASSWORD, post_form, session_of, set_password, sign_in};
use common::{PgDatabase, Server, Store, pg_execute, skip_e2e};
use serde_json::json;

on_both_stores!(back_up_now_and_verify_in_the_browser);

fn back_up_now_and_verify_in_the_browser(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    set_password(&server, "admin", ADMIN_PASSWORD);
    let source = PgDatabase::create("uibk_src");
    pg_execute(
        &source.url,
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO items SELECT g, 'item-' || g FROM generate_series(1, 5000) g;",
    )
    .unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let browser = Browser::start();
    sign_in(&browser, &server, "admin", ADMIN_PASSWORD);
    browser.click("nav a[href='/ui/backups']");
    browser.find("#no-databases");
    // A local target through its form, tested, then the database.
    browser.click("#nav-targets");
    browser.fill("#target-name", "nas");
    browser.fill("#setting-path", &target_dir.path().display().to_string());
    browser.click("#add-target");
    browser.wait_for_text("#notice", "The storage target was added.");
    browser.click("#test-target");
    browser.wait_for_text("#test-outcome", "The test worked");
    browser.click("nav a[href='/ui/backups']");
    add_database_in_the_form(&browser, &server, &source.url);
    browser.click("nav a[href='/ui/backups']");
    let listed = browser.find("#databases").text();
    assert!(
        listed.contains("shop") && listed.contains("up") && listed.contains("never"),
        "{listed}"
    );
    browser.click("#databases a[href='/ui/database/default/shop']");
    browser.wait_for_text("#database-name", "shop");
    browser.find("#no-backups");

    back_up_now_and_follow(&browser, &server);
    let size_chart = browser.find("section[aria-labelledby=size-heading] svg");
    assert_eq!(size_chart.find_all("rect.chart-bar").len(), 1);
    let uptime = browser.find("#db-uptime").text();
    assert!(uptime.starts_with("24 h 100.00 %"), "{uptime}");

    browser.click("#backup-runs button.verify");
    browser.wait_for_text("#notice", "Verification finished");
    let verified = browser.find("#backup-runs td.verified").text();
    assert!(verified.starts_with("ok"), "{verified}");

    // Restore into a new database on the same server: equal table contents.
    let restored = common::unique_name("uibk_restored");
    let restored_url = common::pg_url_for_database(&common::pg_url(), &restored);
    browser.click("#backup-runs a.restore-link");
    browser.fill("#restore-database", &restored);
    browser.click("#confirm-restore");
    browser.wait_for_text("#restore-result", &restored);
    let dropper = DropDatabase(restored.clone());
    assert_eq!(table_digest(&restored_url), table_digest(&source.url));
    // Again into the same database: refused without "replace", nothing changes.
    browser.back();
    browser.fill("#restore-database", &restored);
    browser.click("#confirm-restore");
    browser.wait_for_text("#restore-error", "");
    let refusal = browser.find("#restore-error").text();
    assert!(
        refusal.contains("overwrite") || refusal.contains("replace"),
        "{refusal}"
    );
    assert_eq!(table_digest(&restored_url), table_digest(&source.url));
    drop(dropper);

    read_only_role_then_retention_preview(&browser, &server, &source.url);

    // A database whose backups fail shows on the overview.
    let missing_db =
        common::pg_url_for_database(&common::pg_url(), &common::unique_name("uibk_missing"));
    server.cli(&[
        "db",
        "add",
        "broken",
        "--url",
        &missing_db,
        "--target",
        "nas",
        "--retries",
        "0",
    ]);
    let failed = server.cli_output(common::Via::Local, &["db", "backup", "broken"]);
    assert!(!failed.status.success(), "{}", common::describe(&failed));
    browser.goto(&format!("{}/", server.url));
    let failures = browser.find("#backup-failures").text();
    assert!(
        failures.contains("default/broken") && failures.contains("backup failed"),
        "{failures}"
    );
    assert!(!failures.contains("default/shop"), "{failures}");
    // Recent events, newest first: the failure, after the earlier successes.
    let events: Vec<String> = browser
        .find_all("#recent-events tbody tr")
        .iter()
        .map(|r| r.text())
        .collect();
    assert!(
        events[0].contains("backup.failed") && events[0].contains("default/broken"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("backup.succeeded") && e.contains("default/shop")),
        "{events:?}"
    );
    browser.click("#recent-events a[href='/ui/database/default/broken']");
    browser.wait_for_text("#database-name", "broken");

    // The object exists in the target, as the download link serves it.
    let files: Vec<_> = walk(target_dir.path());
    assert!(!files.is_empty(), "nothing stored in the target");

    // A viewer sees the history but no button.
    let response = common::http_client()
        .post(format!("{}/api/v1/users", server.url))
        .bearer_auth(&server.admin_token)
        .json(&json!({"name": "olga", "password": "viewer password 2"}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = common::http_client()
        .put(format!(
            "{}/api/v1/workspaces/default/members/olga",
            server.url
        ))
        .bearer_auth(&server.admin_token)
        .json(&json!({"role": "viewer"}))
        .send()
        .unwrap();
    assert!(response.status().is_success());
    let viewer = Browser::start();
    sign_in(&viewer, &server, "olga", "viewer password 2");
    viewer.goto(&format!("{}/ui/database/default/shop", server.url));
    viewer.find("#backup-runs");
    assert!(viewer.try_find("#backup-now").is_none());
    assert!(viewer.try_find("#backup-runs button.verify").is_none());
    assert!(viewer.try_find("#database-settings").is_none());
    assert!(viewer.try_find("#role-form").is_none());
    viewer.goto(&format!("{}/ui/backups", server.url));
    viewer.find("#databases");
    assert!(viewer.try_find("#add-database").is_none());
    // Forged forms are refused by the server and change nothing.
    viewer.goto(&format!("{}/ui/database/default/shop", server.url));
    let (cookie, csrf) = session_of(&viewer);
    let before = database_count(&server);
    let form = |name: &'static str| {
        vec![
            ("csrf_token", csrf.clone()),
            ("intent", "save".to_owned()),
            ("name", name.to_owned()),
            ("target", "nas".to_owned()),
            ("source", "url".to_owned()),
            ("url", source.url.clone()),
            ("every", "none".to_owned()),
        ]
    };
    for (path, fields) in [
        ("/ui/databases/default/new", form("forged")),
        ("/ui/database/default/shop/settings", form("renamed")),
        (
            "/ui/database/default/shop/readonly-role",
            vec![
                ("csrf_token", csrf.clone()),
                ("admin_url", source.url.clone()),
                ("role", "forged_role".to_owned()),
            ],
        ),
    ] {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, page) = post_form(&server, path, &cookie, &fields);
        assert_eq!(status, 403, "{path}: {page}");
    }
    assert_eq!(database_count(&server), before);
    viewer.goto(&format!("{}/ui/database/default/shop", server.url));
    viewer.wait_for_text("#database-name", "shop");
    // Without the CSRF token even an admin's form is refused.
    let (cookie, _) = session_of(&browser);
    let (status, _) = post_form(&server, "/ui/database/default/shop/check", &cookie, &[]);
    assert_eq!(status, 403);
}

/// Adds `shop` through the form: a connection test first (the superuser is flagged as able to
/// write), a schedule previewed in its time zone, a bad cron refused without saving, then
/// saved; the database's page checks it at once.
fn add_database_in_the_form(browser: &Browser, server: &Server, url: &str) {
    browser.click("#add-database");
    browser.fill("#db-name", "shop");
    // The test cluster trusts local connections: the password only shows it is never echoed.
    let with_password = url.replacen("://postgres@", "://postgres:typed-secret-1@", 1);
    assert_ne!(with_password, url);
    browser.fill("#db-url", &with_password);
    browser.click("#test-connection");
    browser.wait_for_text("#report-summary", "reachable");
    assert!(!browser.source().contains("typed-secret-1"));
    assert_eq!(browser.find("#db-url").attr("value").as_deref(), Some(url));
    assert!(
        !browser.find("#report-summary").text().contains("not"),
        "{}",
        browser.find("#connection-report").text()
    );
    browser.find("#role-can-write");
    let version = browser.find("#report-version").text();
    assert!(version.starts_with("PostgreSQL 1"), "{version}");
    // Nothing is saved by a test.
    assert_eq!(database_count(server), 0);

    // The schedule: weekly on Wednesday, Berlin time; five runs shown in that zone.
    browser.click("#db-every option[value=weekly]");
    browser.click("#db-weekday option[value=wed]");
    browser.fill("#db-at", "23:15");
    browser.fill("#db-timezone", "Europe/Berlin");
    browser.click("#preview");
    browser.find("#next-runs");
    let runs: Vec<String> = browser
        .find_all("#next-runs li")
        .iter()
        .map(|li| li.text())
        .collect();
    assert_eq!(runs.len(), 5, "{runs:?}");
    for run in &runs {
        assert!(
            run.starts_with("Wed ") && run.contains(" 23:15 C"),
            "{runs:?}"
        );
    }

    // A bad cron expression is refused and saves nothing.
    browser.click("#db-every option[value=cron]");
    browser.fill("#db-cron", "0 3 * *");
    browser.click("#save-database");
    browser.wait_for_text("#form-error", "five");
    assert_eq!(database_count(server), 0);

    browser.click("#db-every option[value=daily]");
    browser.fill("#db-at", "02:30");
    browser.click("#save-database");
    browser.wait_for_text("#database-name", "shop");
    browser.wait_for_text("#notice", "added");
    browser.wait_for_text("#report-summary", "reachable");
    browser.find("#role-can-write");
    assert_eq!(database_count(server), 1);
    assert_eq!(
        browser.find("#db-schedule").text(),
        "daily at 02:30 (Europe/Berlin)"
    );
}

fn database_count(server: &Server) -> usize {
    let body: serde_json::Value = common::http_client()
        .get(format!(
            "{}/api/v1/workspaces/default/databases",
            server.url
        ))
        .bearer_auth(&server.admin_token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    body["items"].as_array().map_or(0, Vec::len)
}

/// Clicks "Back up now" and follows the history, which refreshes itself, until a new run
/// has succeeded; then reloads the page.
fn back_up_now_and_follow(browser: &Browser, server: &Server) {
    let before = browser.find_all("#backup-runs tbody tr").len();
    browser.click("#backup-now");
    browser.wait_for_text("#notice", "Backup queued");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        // Read in one script: the refreshing region replaces these elements under us.
        let seen = browser.execute(
            "const s = document.querySelector('#backup-runs .run-status');
             return [document.querySelectorAll('#backup-runs tbody tr').length,
                     s ? s.textContent.trim() : ''];",
            vec![],
        );
        let rows = seen[0].as_u64().unwrap_or(0) as usize;
        let status = seen[1].as_str().unwrap_or_default().to_owned();
        if status == "succeeded" && rows > before {
            break;
        }
        assert!(
            status != "failed",
            "{}",
            browser.find("#backup-runs").text()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the backup did not finish: {status:?}, {rows} rows (before: {before})\n{}\n{}",
            browser.find("#history").text(),
            server.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    browser.refresh();
}

/// The read-only role helper switches the database to a role that cannot write (a check no
/// longer flags it) and backups still succeed with it; then the settings form previews what a
/// "keep the last 1" retention would do to the two backups, without deleting anything.
fn read_only_role_then_retention_preview(browser: &Browser, server: &Server, url: &str) {
    let role = common::unique_name("uibk_reader");
    let _drop_role = DropRole(role.clone(), url.to_owned());
    browser.goto(&format!("{}/ui/database/default/shop", server.url));
    browser.fill("#role-admin-url", url);
    browser.fill("#role-name", &role);
    browser.click("#create-role");
    browser.wait_for_text("h1", &role);
    assert!(browser.find("#secret").text().len() >= 20);
    browser.click("#back");
    browser.click("#check-now");
    browser.wait_for_text("#report-summary", "reachable");
    assert!(
        browser.try_find("#role-can-write").is_none(),
        "{}",
        browser.find("#connection-report").text()
    );
    browser.click("#back");
    back_up_now_and_follow(browser, server);
    assert_eq!(browser.find_all("#backup-runs tbody tr").len(), 2);

    browser.click("#database-settings");
    assert_eq!(
        browser.find("#db-user").attr("value").as_deref(),
        Some(role.as_str()),
        "the form shows the role now used"
    );
    browser.fill("#keep-last", "1");
    for rule in ["#keep-days", "#keep-weekly", "#keep-monthly"] {
        browser.fill(rule, "");
    }
    browser.click("#preview");
    browser.wait_for_text("#retention-note", "1 of 2 existing backups would be kept");
    let rows: Vec<String> = browser
        .find_all("#retention-preview tbody tr")
        .iter()
        .map(|r| r.text())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].contains("kept by keep-last"), "{rows:?}");
    assert!(rows[1].contains("deleted"), "{rows:?}");
    // A preview deletes nothing; saving without the rule keeps both.
    browser.fill("#keep-last", "");
    browser.click("#save-database");
    browser.wait_for_text("#notice", "saved");
    assert_eq!(browser.find_all("#backup-runs tbody tr").len(), 2);
}

/// Drops the role the read-only role helper created (roles are cluster-wide), after its
/// grants in the database at the URL.
struct DropRole(String, String);

impl Drop for DropRole {
    fn drop(&mut self) {
        let sql = format!("DROP OWNED BY \"{0}\"; DROP ROLE IF EXISTS \"{0}\"", self.0);
        if let Err(e) = pg_execute(&self.1, &sql) {
            eprintln!("cleanup: {e}");
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Row count and a digest of `items`, as psql prints them.
fn table_digest(url: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([
            url,
            "-tAc",
            "SELECT count(*), sum(id), md5(string_agg(name, ',' ORDER BY id)) FROM items",
        ])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Drops the restored database when the test ends (also on failure).
struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.0);
        if let Err(e) = pg_execute(&common::pg_url(), &sql) {
            eprintln!("cleanup: {e}");
        }
    }
}
