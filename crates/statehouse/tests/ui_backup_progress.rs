//! "Back up now" shows a running backup's progress in the browser: the bytes stored so far,
//! which the run records in its row every 2 seconds (so any replica's page shows them), then
//! the finished backup. On both stores, with a real PostgreSQL 15 and `pg_dump`; the backup is
//! made slow on purpose (incompressible rows through zstd's highest allowed level).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::ui::{ADMIN_PASSWORD, set_password, sign_in};
use common::{PgDatabase, Server, Store, pg_execute, skip_e2e};

on_both_stores!(a_running_backup_shows_its_bytes_so_far);

fn a_running_backup_shows_its_bytes_so_far(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    set_password(&server, "admin", ADMIN_PASSWORD);
    let source = PgDatabase::create("uiprog");
    pg_execute(
        &source.url,
        "CREATE TABLE blobs (id int PRIMARY KEY, data text NOT NULL);
         INSERT INTO blobs SELECT g, string_agg(md5(g::text || ':' || i), '')
           FROM generate_series(1, 25000) g, generate_series(1, 8) i GROUP BY g;",
    )
    .unwrap();
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
    server.cli(&[
        "db",
        "add",
        "slow",
        "--url",
        &source.url,
        "--target",
        "nas",
        "--zstd-level",
        "19",
    ]);

    let browser = Browser::start();
    sign_in(&browser, &server, "admin", ADMIN_PASSWORD);
    browser.goto(&format!("{}/ui/database/default/slow", server.url));
    browser.click("#backup-now");
    browser.wait_for_text("#notice", "Backup queued");
    // The history refreshes itself; read it in one script (the region is replaced under us).
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut progress_seen = Vec::new();
    let status = loop {
        let seen = browser.execute(
            "const s = document.querySelector('#backup-runs .run-status');
             const p = document.querySelector('#backup-runs .run-progress');
             return [s ? s.textContent.trim() : '', p ? p.textContent.trim() : ''];",
            vec![],
        );
        let status = seen[0].as_str().unwrap_or_default().to_owned();
        let progress = seen[1].as_str().unwrap_or_default().to_owned();
        if progress.contains("stored so far") && !progress_seen.contains(&progress) {
            progress_seen.push(progress);
        }
        if status == "succeeded" || status == "failed" {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the backup did not finish: {status:?}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        status,
        "succeeded",
        "{}",
        browser.find("#backup-runs").text()
    );
    assert!(
        !progress_seen.is_empty(),
        "no bytes shown while the backup ran"
    );
    // The bytes grew while it ran, and never showed as a finished size.
    let first = &progress_seen[0];
    assert!(
        !first.starts_with("0 B"),
        "progress shows stored bytes: {progress_seen:?}"
    );
    browser.refresh();
    assert!(browser.try_find("#backup-runs .run-progress").is_none());
}
