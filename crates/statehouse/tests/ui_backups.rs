//! The backups pages in a real browser (Debian's Chromium) against the real binary on SQLite
//! and PostgreSQL, with a real PostgreSQL 15 database, `pg_dump` and a local storage target:
//! the database's health and history, "back up now" followed until it succeeds, a verification
//! by test restore, the charts, a restore into a new database with equal table contents (and a
//! second one refused without "replace"); a failing database on the overview; a viewer sees no
//! button to act with.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::browser::Browser;
use common::ui::{ADMIN_PASSWORD, set_password, sign_in};
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
    server.cli(&[
        "target",
        "add",
        "nas",
        "--kind",
        "local",
        "--set",
        &format!("path={}", target_dir.path().display()),
    ]);
    server.cli(&["db", "add", "shop", "--url", &source.url, "--target", "nas"]);
    server.cli(&["db", "check", "shop"]);

    let browser = Browser::start();
    sign_in(&browser, &server, "admin", ADMIN_PASSWORD);
    browser.click("nav a[href='/ui/backups']");
    let listed = browser.find("#databases").text();
    assert!(
        listed.contains("shop") && listed.contains("up") && listed.contains("never"),
        "{listed}"
    );
    browser.click("#databases a[href='/ui/database/default/shop']");
    browser.wait_for_text("#database-name", "shop");
    browser.find("#no-backups");

    browser.click("#backup-now");
    browser.wait_for_text("#notice", "Backup queued");
    // The history refreshes itself until the run has succeeded (no reload here).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let status = browser
            .try_find("#backup-runs .run-status")
            .map(|e| e.text())
            .unwrap_or_default();
        if status == "succeeded" {
            break;
        }
        assert!(
            status != "failed",
            "{}",
            browser.find("#backup-runs").text()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the backup did not finish: {status:?}\n{}",
            server.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    browser.refresh();
    let size_chart = browser.find("section[aria-labelledby=size-heading] svg");
    assert_eq!(size_chart.find_all("rect.chart-bar").len(), 1);
    assert!(browser.find("#db-uptime").text().contains("24 h"));

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
