//! A whole-server run restored from the browser (Debian's Chromium) onto a second, freshly
//! initialised PostgreSQL cluster — the server's roles, then every database of the run with its
//! owner — after a restore onto its own server is refused without "replace"; on both stores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_support;
#[macro_use]
mod common;

use backup_support::{FreshCluster, items, pg_text, with_target_allowing};
use common::browser::Browser;
use common::ui::{ADMIN_PASSWORD, set_password, sign_in};
use common::{Store, pg_execute, pg_url, pg_url_for_database, skip_e2e, unique_name};

on_both_stores!(a_whole_server_run_is_restored_from_the_browser);

/// Databases and the role this test makes on the test PostgreSQL, dropped at the end.
struct Made {
    databases: Vec<String>,
    role: String,
}

impl Drop for Made {
    fn drop(&mut self) {
        for db in &self.databases {
            let sql = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
            if let Err(e) = pg_execute(&pg_url(), &sql) {
                eprintln!("cleanup: {e}");
            }
        }
        let _ = pg_execute(&pg_url(), &format!("DROP ROLE IF EXISTS \"{}\"", self.role));
    }
}

fn a_whole_server_run_is_restored_from_the_browser(store: Store) {
    if skip_e2e() {
        return;
    }
    // On PostgreSQL the store lives in the cluster backed up whole: allowed explicitly.
    let (server, _dir) =
        with_target_allowing(store, &[("STATEHOUSE_OUTBOUND__ALLOW_OWN_STORE", "true")]);
    set_password(&server, "admin", ADMIN_PASSWORD);
    let u = unique_name("uiws");
    let (db_a, db_b, owner) = (format!("{u}_a"), format!("{u}_b"), format!("{u}_owner"));
    let _made = Made {
        databases: vec![db_a.clone(), db_b.clone()],
        role: owner.clone(),
    };
    let source = pg_url();
    pg_execute(&source, &format!("CREATE ROLE {owner} LOGIN")).unwrap();
    pg_execute(&source, &format!("CREATE DATABASE {db_a} OWNER {owner}")).unwrap();
    pg_execute(&source, &format!("CREATE DATABASE {db_b}")).unwrap();
    for (db, rows) in [(&db_a, 300), (&db_b, 20)] {
        pg_execute(
            &pg_url_for_database(&source, db),
            &format!(
                "CREATE TABLE items (id int PRIMARY KEY, name text);
                 INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, {rows}) g;"
            ),
        )
        .unwrap();
    }
    server.cli(&[
        "db",
        "add",
        "cluster",
        "--url",
        &source,
        "--whole-server",
        "--include",
        &format!("{u}_*"),
        "--target",
        "nas",
        "--no-health-checks",
    ]);
    server.cli(&["db", "backup", "cluster"]);

    let browser = Browser::start();
    sign_in(&browser, &server, "admin", ADMIN_PASSWORD);
    browser.goto(&format!("{}/ui/database/default/cluster", server.url));
    browser.click("#backup-runs a.restore-link");
    browser.find("#into-server");

    // Onto its own server, whose databases exist: refused without "replace"; nothing changes.
    browser.click("#into-server");
    browser.click("#confirm-restore");
    browser.wait_for_text("#restore-error", "");
    let refusal = browser.find("#restore-error").text();
    assert!(
        refusal.contains("replace") || refusal.contains("overwrite"),
        "{refusal}"
    );
    let before = items(&pg_url_for_database(&source, &db_b));
    assert!(before.starts_with("20:"), "{before}");

    // Onto a fresh cluster: the role, both databases with their owner and rows.
    let fresh = FreshCluster::start();
    browser.fill("#restore-url", &fresh.url);
    browser.click("#into-server-url");
    browser.click("#confirm-restore");
    browser.wait_for_text("#restore-result", "whole server run");
    let result = browser.find("#restore-result").text();
    assert!(result.contains(&db_a) && result.contains(&db_b), "{result}");
    for db in [&db_a, &db_b] {
        assert_eq!(
            items(&pg_url_for_database(&fresh.url, db)),
            items(&pg_url_for_database(&source, db)),
            "{db}"
        );
    }
    assert_eq!(items(&pg_url_for_database(&source, &db_b)), before);
    assert_eq!(
        pg_text(
            &fresh.url,
            &format!("SELECT datdba::regrole::text FROM pg_database WHERE datname = '{db_a}'")
        ),
        owner
    );
}
