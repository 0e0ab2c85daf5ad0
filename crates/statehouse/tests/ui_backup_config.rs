//! A workspace's backup configuration in a real browser (headless Chromium through
//! chromedriver) against the real binary, on SQLite and PostgreSQL:
//!
//! - storage targets: a local one added through the form passes "Test connection", one whose
//!   directory cannot be created fails it clearly; an S3 one keeps its secret out of the page,
//!   keeps it when the field is left empty, and needs it again when the endpoint moves; bad
//!   input comes back as the form; deletion after a confirmation;
//! - notifiers: a webhook notifier sends its test to a local receiver (the page says so), keeps
//!   its secret URL through a change that does not repeat it, and shows a receiver's 500 as the
//!   failure; a Slack one with a bad URL is refused on the form;
//! - a viewer and an editor see the configuration (encryption too) but no form or button; the
//!   viewer's forged forms (its own session and CSRF token) are refused with 403 and change
//!   nothing, and a form without a CSRF token is refused too.
//!
//! The encryption page's own test is in `ui_backup_encryption.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::browser::Browser;
use common::ui::{
    ADMIN_PASSWORD, admin_get, api, post_form, session_of, sign_in, signed_in, start_backups,
};
use common::{Server, Store};
use serde_json::{Value, json};

on_both_stores!(
    targets_are_added_tested_changed_and_deleted_in_the_browser,
    notifiers_send_their_test_from_the_browser,
    viewers_and_editors_see_no_buttons_and_forged_forms_are_refused,
);

fn targets_are_added_tested_changed_and_deleted_in_the_browser(store: Store) {
    let Some(server) = start_backups(store) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let browser = signed_in(&server, "admin", ADMIN_PASSWORD);
    // From the backups page's sub-navigation.
    browser.goto(&format!("{}/ui/backups?ws=default", server.url));
    browser.click("#nav-targets");
    browser.wait_for_text("h1", "Storage targets of default");
    browser.find("#no-targets");
    assert_eq!(
        browser.find("#nav-targets").attr("aria-current").as_deref(),
        Some("page")
    );

    // A relative directory: the service's message on the form, what was typed kept.
    browser.fill("#target-name", "nas");
    browser.fill("#setting-path", "relative/backups");
    browser.click("#add-target");
    browser.wait_for_text("#form-error", "must be an absolute directory path");
    assert_eq!(
        browser.find("#target-name").attr("value").as_deref(),
        Some("nas")
    );
    // A local target that works.
    let good = dir.path().join("nas");
    browser.fill("#setting-path", &good.display().to_string());
    browser.click("#add-target");
    browser.wait_for_text("#notice", "The storage target was added.");
    assert_eq!(browser.find("#target-name-heading").text(), "nas");
    browser.click("#test-target");
    browser.wait_for_text("#test-outcome", "The test worked");
    assert!(
        browser
            .find("#test-outcome")
            .attr("class")
            .unwrap()
            .contains("ok")
    );
    let nas = admin_get(&server, "/workspaces/default/targets/nas");
    assert_eq!(nas["kind"], "local", "{nas}");
    assert_eq!(nas["settings"]["path"], good.display().to_string(), "{nas}");

    // A local target whose directory cannot be created (a file stands in its way).
    std::fs::write(dir.path().join("file"), b"not a directory").unwrap();
    let blocked = dir.path().join("file").join("backups");
    browser.click("#nav-targets");
    browser.wait_for_text("h1", "Storage targets of default");
    browser.fill("#target-name", "blocked");
    browser.fill("#setting-path", &blocked.display().to_string());
    browser.click("#add-target");
    browser.wait_for_text("#notice", "added");
    browser.click("#test-target");
    browser.wait_for_text("#test-outcome", "The test failed");
    let failure = browser.find("#test-outcome").text();
    assert!(
        failure.contains("creating a folder") && failure.contains("Not a directory"),
        "{failure}"
    );
    assert!(
        browser
            .find("#test-outcome")
            .attr("class")
            .unwrap()
            .contains("bad")
    );

    // An S3 target: a form of its own; its secret is never shown.
    browser.click("#nav-targets");
    browser.wait_for_text("h1", "Storage targets of default");
    browser.choose("#target-kind", "s3");
    browser.click("#choose-kind");
    browser.find("#setting-bucket");
    assert!(browser.try_find("#setting-path").is_none());
    browser.fill("#target-name", "r2");
    browser.fill("#setting-bucket", "backups");
    browser.fill("#setting-region", "auto");
    browser.fill("#setting-endpoint", "http://127.0.0.1:9");
    browser.fill("#setting-access-key-id", "AKID");
    browser.fill("#setting-secret-access-key", "s3-secret-value-1");
    browser.click("#add-target");
    browser.wait_for_text("#notice", "added");
    let facts = browser.find("#target-facts").text();
    assert!(facts.contains("set (never shown)"), "{facts}");
    assert!(!browser.source().contains("s3-secret-value-1"));
    browser.find(".secret-kept");
    // Left empty, the secret is kept through a change of the prefix.
    browser.fill("#setting-prefix", "pg");
    browser.click("#save-target");
    browser.wait_for_text("#notice", "The storage target was saved.");
    let r2 = admin_get(&server, "/workspaces/default/targets/r2");
    assert_eq!(r2["settings"]["prefix"], "pg", "{r2}");
    assert!(
        r2["secrets_set"]
            .as_array()
            .unwrap()
            .contains(&json!("secret_access_key")),
        "{r2}"
    );
    // Moving the endpoint without the secret: refused, as the service says.
    browser.fill("#setting-endpoint", "http://127.0.0.1:10");
    browser.click("#save-target");
    browser.wait_for_text("#form-error", "give secret_access_key");
    assert_eq!(
        admin_get(&server, "/workspaces/default/targets/r2")["settings"]["endpoint"],
        "http://127.0.0.1:9"
    );
    assert_eq!(
        browser.find("#setting-endpoint").attr("value").as_deref(),
        Some("http://127.0.0.1:10"),
        "what was typed is kept"
    );
    browser.fill("#setting-secret-access-key", "s3-secret-value-2");
    browser.click("#save-target");
    browser.wait_for_text("#notice", "saved");
    assert_eq!(
        admin_get(&server, "/workspaces/default/targets/r2")["settings"]["endpoint"],
        "http://127.0.0.1:10"
    );

    // The list shows each target's kind and public settings.
    browser.click("#nav-targets");
    browser.wait_for_text("h1", "Storage targets of default");
    let listed = browser.find("#targets").text();
    assert!(
        listed.contains("blocked") && listed.contains("bucket: backups"),
        "{listed}"
    );
    assert!(!listed.contains("s3-secret-value"), "{listed}");

    // Deleted after the confirmation.
    browser.click("#targets a.target-link[href$='/blocked']");
    browser.click("#delete-target");
    browser.wait_for_text("h1", "Delete the storage target blocked of default?");
    browser.click("#confirm-delete");
    browser.wait_for_text("#notice", "deleted");
    let (status, _) = api(
        &server,
        "GET",
        "/workspaces/default/targets/blocked",
        &server.admin_token,
        None,
    );
    assert_eq!(status, 404);

    // Audited as the API's actions, by the signed-in admin.
    let audit = admin_get(&server, "/audit?action=target.test");
    let tests = audit["items"].as_array().unwrap();
    assert_eq!(tests.len(), 2, "{audit}");
    assert!(tests.iter().all(|e| e["actor"] == "admin"), "{audit}");
}

/// One request a receiver got: its request line and body.
#[derive(Debug, Clone)]
struct Received {
    line: String,
    body: String,
}

/// A local HTTP receiver answering `status` to everything; returns its URL and what it got.
fn receiver(status: u16) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.trim().split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            sink.lock().unwrap().push(Received {
                line: line.trim().to_owned(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let answer = format!(
                "HTTP/1.1 {status} Answer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, got)
}

fn notifiers_send_their_test_from_the_browser(store: Store) {
    let Some(server) = start_backups(store) else {
        return;
    };
    let (url, got) = receiver(200);
    let (failing_url, failing_got) = receiver(500);
    let browser = signed_in(&server, "admin", ADMIN_PASSWORD);
    browser.goto(&format!("{}/ui/backups?ws=default", server.url));
    browser.click("#nav-notifiers");
    browser.wait_for_text("h1", "Notifiers of default");
    browser.find("#no-notifiers");

    // A Slack notifier with a URL that is none: the service's message, never the URL.
    browser.choose("#notifier-kind", "slack");
    browser.click("#choose-kind");
    browser.find("#setting-webhook-url");
    browser.fill("#notifier-name", "chat");
    browser.fill(
        "#setting-webhook-url",
        "hooks.slack.com/services/T0/B0/chat-secret",
    );
    browser.click("#add-notifier");
    browser.wait_for_text("#form-error", "webhook_url is not a valid URL");
    assert!(!browser.source().contains("chat-secret"));

    // A webhook notifier at the local receiver.
    browser.choose("#notifier-kind", "webhook");
    browser.click("#choose-kind");
    browser.find("#setting-body-template");
    browser.fill("#notifier-name", "hook");
    browser.fill("#setting-url", &url);
    browser.fill("#notifier-events", "backup.*, database.down");
    browser.click("#add-notifier");
    browser.wait_for_text("#notice", "The notifier was added.");
    browser.wait_for_text("#notifier-events-fact", "backup.*, database.down");
    assert!(!browser.source().contains(&url), "the secret URL is shown");

    browser.click("#test-notifier");
    browser.wait_for_text("#test-outcome", "The test worked");
    {
        let received = got.lock().unwrap();
        assert_eq!(received.len(), 1, "{received:?}");
        assert_eq!(received[0].line, "POST /hook HTTP/1.1");
        let body: Value = serde_json::from_str(&received[0].body).unwrap();
        assert_eq!(body["event"], "notifier.test", "{body}");
        assert_eq!(body["workspace"], "default", "{body}");
    }

    // A change that does not repeat the secret URL keeps it.
    browser.choose("#setting-method", "PUT");
    browser.click("#save-notifier");
    browser.wait_for_text("#notice", "The notifier was saved.");
    assert!(browser.find("#notifier-facts").text().contains("PUT"));
    browser.click("#test-notifier");
    browser.wait_for_text("#test-outcome", "The test worked");
    assert_eq!(got.lock().unwrap()[1].line, "PUT /hook HTTP/1.1");

    // An unknown event: the service's message on the form, nothing changes.
    browser.fill("#notifier-events", "nothing.happened");
    browser.click("#save-notifier");
    browser.wait_for_text("#form-error", "unknown event kind \"nothing.happened\"");
    let hook = admin_get(&server, "/workspaces/default/notifiers/hook");
    assert_eq!(
        hook["events"],
        json!(["backup.*", "database.down"]),
        "{hook}"
    );
    assert_eq!(hook["settings"]["method"], "PUT", "{hook}");

    // A receiver answering 500: the failure, on the page.
    browser.fill("#notifier-events", "backup.*, database.down");
    browser.fill("#setting-url", &failing_url);
    browser.click("#save-notifier");
    browser.wait_for_text("#notice", "saved");
    browser.click("#test-notifier");
    browser.wait_for_text("#test-outcome", "The test failed");
    let failure = browser.find("#test-outcome").text();
    assert!(failure.contains("500"), "{failure}");
    assert_eq!(failing_got.lock().unwrap().len(), 1);
    assert_eq!(got.lock().unwrap().len(), 2);

    // Disabled, then deleted after the confirmation.
    browser.click("#notifier-enabled");
    browser.click("#save-notifier");
    browser.wait_for_text("#notifier-status", "disabled");
    browser.click("#delete-notifier");
    browser.wait_for_text("h1", "Delete the notifier hook of default?");
    browser.click("#confirm-delete");
    browser.wait_for_text("#notice", "deleted");
    browser.find("#no-notifiers");
    let list = admin_get(&server, "/workspaces/default/notifiers");
    assert_eq!(list["items"], json!([]), "{list}");
}

/// Creates `name` with `role` in the default workspace, through the API.
fn member(server: &Server, name: &str, role: &str) -> String {
    let password = format!("{name} password 1");
    let (status, body) = api(
        server,
        "POST",
        "/users",
        &server.admin_token,
        Some(json!({"name": name, "password": password})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = api(
        server,
        "PUT",
        &format!("/workspaces/default/members/{name}"),
        &server.admin_token,
        Some(json!({"role": role})),
    );
    assert!((200..300).contains(&status), "{body}");
    password
}

fn viewers_and_editors_see_no_buttons_and_forged_forms_are_refused(store: Store) {
    let Some(server) = start_backups(store) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nas").display().to_string();
    let token = server.admin_token.clone();
    for (path, body) in [
        (
            "/workspaces/default/targets",
            json!({"name": "nas", "settings": {"kind": "local", "path": path}}),
        ),
        (
            "/workspaces/default/notifiers",
            json!({"name": "hook", "settings": {"kind": "webhook", "url": "http://127.0.0.1:9/x"}}),
        ),
    ] {
        let (status, answer) = api(&server, "POST", path, &token, Some(body));
        assert_eq!(status, 201, "{answer}");
    }
    let (status, _) = api(
        &server,
        "PATCH",
        "/workspaces/default/backup-encryption",
        &token,
        Some(json!({"generate_managed_key": true})),
    );
    assert_eq!(status, 200);
    let before = [
        admin_get(&server, "/workspaces/default/targets"),
        admin_get(&server, "/workspaces/default/notifiers"),
        admin_get(&server, "/workspaces/default/backup-encryption"),
    ];

    let viewer_password = member(&server, "olga", "viewer");
    let editor_password = member(&server, "eddie", "editor");
    let pages = [
        (
            "/ui/workspaces/default/targets",
            "#targets",
            vec!["#create-target", "#add-target-section"],
        ),
        (
            "/ui/workspaces/default/targets/nas",
            "#target-facts",
            vec!["#test-target", "#change-target", "#delete-target"],
        ),
        (
            "/ui/workspaces/default/notifiers",
            "#notifiers",
            vec!["#create-notifier", "#add-notifier-section"],
        ),
        (
            "/ui/workspaces/default/notifiers/hook",
            "#notifier-facts",
            vec!["#test-notifier", "#change-notifier", "#delete-notifier"],
        ),
        (
            "/ui/workspaces/default/backup-encryption",
            "#encryption-facts",
            vec![
                "#generate-key",
                "#export-key",
                "#recipients-form",
                "#passphrase-form",
                "#verification-form",
            ],
        ),
    ];
    let viewer = Browser::start();
    sign_in(&viewer, &server, "olga", &viewer_password);
    let editor = Browser::start();
    sign_in(&editor, &server, "eddie", &editor_password);
    for browser in [&viewer, &editor] {
        for (page, shown, buttons) in &pages {
            browser.goto(&format!("{}{page}", server.url));
            browser.find(shown);
            browser.find("#admins-only");
            assert!(
                browser.find_all("main form[method=post]").is_empty(),
                "{page}: a form to post"
            );
            for css in buttons {
                assert!(browser.try_find(css).is_none(), "{page}: {css} is shown");
            }
        }
        // The confirmation page of a deletion is for admins only.
        browser.goto(&format!(
            "{}/ui/workspaces/default/targets/nas/delete",
            server.url
        ));
        browser.wait_for_text("h1", "403");
    }

    // Forged forms with the viewer's own session and CSRF token: 403, nothing changes.
    viewer.goto(&format!("{}/ui/workspaces/default/targets", server.url));
    let (cookie, csrf) = session_of(&viewer);
    let elsewhere = dir.path().join("elsewhere").display().to_string();
    let forged: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "/ui/workspaces/default/targets",
            vec![("kind", "local"), ("name", "evil"), ("s.path", &elsewhere)],
        ),
        (
            "/ui/workspaces/default/targets/nas",
            vec![("name", "nas"), ("s.path", &elsewhere)],
        ),
        ("/ui/workspaces/default/targets/nas/test", vec![]),
        ("/ui/workspaces/default/targets/nas/delete", vec![]),
        (
            "/ui/workspaces/default/notifiers",
            vec![
                ("kind", "slack"),
                ("name", "evil"),
                ("s.webhook_url", "https://hooks.slack.com/services/x"),
            ],
        ),
        (
            "/ui/workspaces/default/notifiers/hook",
            vec![("name", "hook"), ("s.url", "http://127.0.0.1:10/y")],
        ),
        ("/ui/workspaces/default/notifiers/hook/test", vec![]),
        ("/ui/workspaces/default/notifiers/hook/delete", vec![]),
        (
            "/ui/workspaces/default/backup-encryption",
            vec![("action", "generate")],
        ),
        (
            "/ui/workspaces/default/backup-encryption",
            vec![
                ("action", "passphrase"),
                ("passphrase", "mallory's passphrase"),
                ("confirm", "mallory's passphrase"),
            ],
        ),
        ("/ui/workspaces/default/backup-encryption/export", vec![]),
    ];
    for (path, fields) in &forged {
        let mut all = vec![("csrf_token", csrf.as_str())];
        all.extend(fields.iter().copied());
        let (status, page) = post_form(&server, path, &cookie, &all);
        assert_eq!(status, 403, "{path}: {page}");
        assert!(!page.contains("AGE-SECRET-KEY"), "{path}: {page}");
    }

    // The admin's own session, without the CSRF token: refused before anything is read.
    let admin = signed_in(&server, "admin", ADMIN_PASSWORD);
    admin.goto(&format!("{}/ui/workspaces/default/targets", server.url));
    let (admin_cookie, _) = session_of(&admin);
    for (path, fields) in &forged {
        let (status, page) = post_form(&server, path, &admin_cookie, fields);
        assert_eq!(status, 403, "{path}: {page}");
        assert!(page.contains("CSRF"), "{path}: {page}");
    }

    let after = [
        admin_get(&server, "/workspaces/default/targets"),
        admin_get(&server, "/workspaces/default/notifiers"),
        admin_get(&server, "/workspaces/default/backup-encryption"),
    ];
    assert_eq!(before, after, "nothing changed");
    let audit = admin_get(&server, "/audit?action=target.test");
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["outcome"] != "success"),
        "{audit}"
    );
}
