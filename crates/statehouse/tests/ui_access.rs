//! The "people and access" pages in a real browser (headless Chromium through chromedriver)
//! against the real binary, on SQLite and PostgreSQL:
//!
//! - a token created in the browser shows its secret once, works on the Terraform backend and
//!   the REST API, and is refused once revoked in the browser (after a confirmation);
//! - a user created in the browser and given a viewer role signs in, sees no buttons it may not
//!   use, and its forged admin forms (with its own session and CSRF token) are refused with 403
//!   and change nothing;
//! - workspace settings saved in the browser are what the REST API shows; bad input comes
//!   back as the form with a message and a 4xx, changing nothing;
//! - a webhook created in the browser is pinged there, and the delivery to a local receiver
//!   shows in its delivery log; redelivery, disabling and deletion too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Store;
use common::browser::Browser;
use common::ui::{ADMIN_PASSWORD, api, post_form, session_of, signed_in, start};
use serde_json::{Value, json};

on_both_stores!(
    a_token_made_in_the_browser_works_until_revoked_there,
    a_viewer_made_in_the_browser_sees_no_admin_buttons_and_is_refused,
    workspace_settings_saved_in_the_browser_show_in_the_api,
    a_webhook_pinged_in_the_browser_shows_its_delivery,
);

fn a_token_made_in_the_browser_works_until_revoked_there(store: Store) {
    let Some(server) = start(store) else { return };
    let browser = signed_in(&server, "admin", ADMIN_PASSWORD);
    browser.click("header nav a[href='/ui/users']");
    browser.click("nav.subnav a[href='/ui/tokens']");
    browser.fill("#token-name", "made-in-ui");
    browser.choose("#token-kind", "service");
    browser.choose("#token-workspace", "default");
    browser.choose("#token-role", "editor");
    browser.fill("#token-expiry", "7");
    browser.click("#create-token-button");
    browser.wait_for_text("h1", "Token made-in-ui created");
    let secret = browser.find("#secret").text();
    assert!(secret.starts_with("sht_"), "{secret}");
    assert!(
        browser.find("button[data-copy=secret]").is_displayed(),
        "the copy button"
    );

    // The secret works on the Terraform backend and the REST API.
    let address = server.tf_address("default", "ui/made");
    let response = server.request("GET", &address, &secret, Vec::new());
    assert!(
        matches!(response.status().as_u16(), 200 | 204),
        "{}",
        response.status()
    );
    let (status, body) = api(&server, "GET", "/workspaces/default", &secret, None);
    assert_eq!(status, 200, "{body}");

    // Listed as the API lists it; its secret is never shown again.
    browser.click("#back");
    let row = browser
        .find_all("#tokens tbody tr")
        .into_iter()
        .find(|r| r.text().contains("made-in-ui"))
        .expect("the token's row");
    let text = row.text();
    assert!(
        text.contains("service") && text.contains("default") && text.contains("editor"),
        "{text}"
    );
    assert!(text.contains("active"), "{text}");
    assert!(!browser.source().contains(&secret), "the secret again");

    // Bad input comes back as the form with a message and a 400; nothing is created.
    let (cookie, csrf) = session_of(&browser);
    let (status, page) = post_form(
        &server,
        "/ui/tokens",
        &cookie,
        &[
            ("csrf_token", &csrf),
            ("name", "never-made"),
            ("kind", "user"),
            ("expires_in_days", "soon"),
        ],
    );
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("id=\"form-error\"") && page.contains("whole number of days"));
    assert!(
        page.contains("value=\"never-made\""),
        "the typed name is kept"
    );
    let (status, page) = post_form(
        &server,
        "/ui/tokens",
        &cookie,
        &[
            ("csrf_token", &csrf),
            ("name", "no-ws"),
            ("kind", "service"),
            ("role", "viewer"),
        ],
    );
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("a service token needs a workspace"),
        "the service's message"
    );
    let (_, tokens) = api(&server, "GET", "/tokens", &server.admin_token, None);
    let names: Vec<&str> = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        !names.contains(&"never-made") && !names.contains(&"no-ws"),
        "{names:?}"
    );

    // Revoked after the confirmation page, and refused from then on.
    row.find("a.revoke-link").click();
    browser.wait_for_text("h1", "Revoke token made-in-ui?");
    browser.click("#confirm-revoke");
    browser.wait_for_text("#notice", "revoked");
    let response = server.request("GET", &address, &secret, Vec::new());
    assert_eq!(response.status().as_u16(), 401);
    let (status, _) = api(&server, "GET", "/workspaces/default", &secret, None);
    assert_eq!(status, 401);

    // Audited as the API's revocation, by the signed-in admin.
    let (status, entries) = api(
        &server,
        "GET",
        "/audit?action=token.revoke",
        &server.admin_token,
        None,
    );
    assert_eq!(status, 200, "{entries}");
    assert_eq!(entries["items"][0]["actor"], "admin", "{entries}");
    assert_eq!(entries["items"][0]["outcome"], "success", "{entries}");
}

fn a_viewer_made_in_the_browser_sees_no_admin_buttons_and_is_refused(store: Store) {
    let Some(server) = start(store) else { return };
    let admin = signed_in(&server, "admin", ADMIN_PASSWORD);
    admin.goto(&format!("{}/ui/users", server.url));
    // Two different passwords: the form comes back with the message.
    admin.fill("#new-name", "vic");
    admin.fill("#new-password", "viewer password 1");
    admin.fill("#new-confirm", "viewer password 2");
    admin.click("#create-user-button");
    admin.wait_for_text("#form-error", "differ");
    assert_eq!(
        admin.find("#new-name").attr("value").as_deref(),
        Some("vic")
    );
    admin.fill("#new-password", "viewer password 1");
    admin.fill("#new-confirm", "viewer password 1");
    admin.click("#create-user-button");
    admin.wait_for_text("#notice", "The user was created.");
    assert_eq!(admin.find("#user-name").text(), "vic");
    admin.choose("#grant-workspace", "default");
    admin.choose("#grant-role", "viewer");
    admin.click("#grant-role-button");
    admin.wait_for_text("#notice", "The role was given.");
    let roles = admin.find("#memberships").text();
    assert!(
        roles.contains("default") && roles.contains("viewer"),
        "{roles}"
    );
    // The same name again: the service's conflict, shown on the form.
    admin.goto(&format!("{}/ui/users", server.url));
    admin.fill("#new-name", "vic");
    admin.click("#create-user-button");
    admin.wait_for_text("#form-error", "already exists");
    // The admin sees the member on the workspace's members page.
    admin.goto(&format!("{}/ui/workspaces/default/members", server.url));
    admin.wait_for_text("#member-vic .member-role", "viewer");

    let viewer = signed_in(&server, "vic", "viewer password 1");
    viewer.click("header nav a[href='/ui/users']");
    let rows = viewer.find_all("#users tbody tr");
    assert_eq!(rows.len(), 1, "the viewer sees only itself");
    assert!(rows[0].text().contains("vic"));
    for (page, buttons) in [
        ("/ui/users", vec!["#create-user"]),
        (
            "/ui/users/vic",
            vec!["#disable-user", "#make-admin", "#grant-form"],
        ),
        (
            "/ui/workspaces",
            vec!["#create-workspace", "a[href$='/members']"],
        ),
        (
            "/ui/workspaces/default",
            vec!["#settings-form", "#members-link", "#webhooks-link"],
        ),
        (
            "/ui/tokens",
            vec![
                "a.revoke-link",
                "option[value=service]",
                "option[value=instance]",
            ],
        ),
    ] {
        viewer.goto(&format!("{}{page}", server.url));
        viewer.find("h1");
        for css in buttons {
            assert!(
                viewer.try_find(css).is_none(),
                "{page}: the viewer sees {css}"
            );
        }
    }
    // The viewer may change its own password, and sees its role.
    viewer.goto(&format!("{}/ui/users/vic", server.url));
    viewer.find("#password-form");
    viewer.goto(&format!("{}/ui/workspaces/default", server.url));
    assert_eq!(viewer.find("#your-role").text(), "viewer");
    // Pages of admins only are refused outright.
    viewer.goto(&format!("{}/ui/workspaces/default/webhooks", server.url));
    viewer.wait_for_text("h1", "403");

    // Forged admin forms with the viewer's own session and CSRF token: 403, nothing changes.
    viewer.goto(&format!("{}/ui/tokens", server.url));
    let (cookie, csrf) = session_of(&viewer);
    let forged: [(&str, Vec<(&str, &str)>); 6] = [
        (
            "/ui/users",
            vec![
                ("name", "mallory"),
                ("password", "mallory password"),
                ("confirm", "mallory password"),
                ("instance_admin", "on"),
            ],
        ),
        ("/ui/users/vic", vec![("action", "make-admin")]),
        (
            "/ui/users/vic",
            vec![
                ("action", "grant"),
                ("workspace", "default"),
                ("role", "admin"),
            ],
        ),
        (
            "/ui/workspaces/default",
            vec![
                ("keep_versions", "1"),
                ("stale_after", ""),
                ("stale_after_unit", "hours"),
            ],
        ),
        ("/ui/workspaces", vec![("name", "evil")]),
        (
            "/ui/workspaces/default/webhooks",
            vec![
                ("url", "http://127.0.0.1:9/x"),
                ("events", "*"),
                ("enabled", "on"),
            ],
        ),
    ];
    for (path, fields) in forged {
        let mut all = vec![("csrf_token", csrf.as_str())];
        all.extend(fields);
        let (status, page) = post_form(&server, path, &cookie, &all);
        assert_eq!(status, 403, "{path}: {page}");
    }
    let token = &server.admin_token;
    assert_eq!(api(&server, "GET", "/users/mallory", token, None).0, 404);
    let (_, vic) = api(&server, "GET", "/users/vic", token, None);
    assert_eq!(vic["instance_admin"], false, "{vic}");
    assert_eq!(vic["memberships"][0]["role"], "viewer", "{vic}");
    let (_, ws) = api(&server, "GET", "/workspaces/default", token, None);
    assert_eq!(ws["serial_protection"], true, "{ws}");
    assert_eq!(ws["keep_versions"], Value::Null, "{ws}");
    assert_eq!(ws["stale_lock_after_seconds"], 7200, "{ws}");
    assert_eq!(api(&server, "GET", "/workspaces/evil", token, None).0, 404);
    let (_, hooks) = api(&server, "GET", "/workspaces/default/webhooks", token, None);
    assert_eq!(hooks["items"], json!([]), "{hooks}");

    // The admin disables the viewer in the browser: its session ends.
    admin.goto(&format!("{}/ui/users/vic", server.url));
    admin.click("#disable-user");
    admin.wait_for_text("#user-status", "disabled since");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        viewer.goto(&format!("{}/ui/tokens", server.url));
        if viewer.url().contains("/ui/login") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the disabled user's session still works"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn workspace_settings_saved_in_the_browser_show_in_the_api(store: Store) {
    let Some(server) = start(store) else { return };
    let browser = signed_in(&server, "admin", ADMIN_PASSWORD);
    browser.goto(&format!("{}/ui/workspaces", server.url));
    browser.fill("#new-workspace", "Not A Name");
    browser.click("#create-workspace-button");
    browser.find("#form-error");
    browser.fill("#new-workspace", "team-a");
    browser.click("#create-workspace-button");
    browser.wait_for_text("#notice", "The workspace was created.");

    browser.fill("#keep-versions", "5");
    browser.fill("#keep-for", "30");
    browser.choose("#keep-for-unit", "days");
    browser.fill("#stale-after", "45");
    browser.choose("#stale-after-unit", "minutes");
    browser.click("#serial-protection"); // on by default: now off
    browser.click("#save-settings");
    browser.wait_for_text("#notice", "The settings were saved.");
    assert_eq!(browser.find("#fact-stale").text(), "45 min");
    let (status, ws) = api(
        &server,
        "GET",
        "/workspaces/team-a",
        &server.admin_token,
        None,
    );
    assert_eq!(status, 200, "{ws}");
    assert_eq!(ws["keep_versions"], 5, "{ws}");
    assert_eq!(ws["keep_versions_for_seconds"], 30 * 86_400, "{ws}");
    assert_eq!(ws["stale_lock_after_seconds"], 45 * 60, "{ws}");
    assert_eq!(ws["serial_protection"], false, "{ws}");
    // The form shows what is stored.
    browser.goto(&format!("{}/ui/workspaces/team-a", server.url));
    assert_eq!(
        browser.find("#keep-for").attr("value").as_deref(),
        Some("30")
    );

    // The service's refusal, and input that is no number: the form again with the message
    // and a 400; nothing changes.
    browser.fill("#keep-versions", "0");
    browser.click("#save-settings");
    browser.wait_for_text("#form-error", "keep_versions must be at least 1");
    assert_eq!(
        browser.find("#keep-versions").attr("value").as_deref(),
        Some("0")
    );
    let (cookie, csrf) = session_of(&browser);
    for (field, value, says) in [
        ("stale_after", "soon", "not a whole number"),
        ("stale_after", "10", "at least one minute"),
        ("keep_versions", "0", "at least 1"),
    ] {
        let mut fields = vec![
            ("csrf_token", csrf.as_str()),
            ("keep_versions", "5"),
            ("stale_after", "120"),
            ("stale_after_unit", "seconds"),
        ];
        fields.retain(|(k, _)| *k != field);
        fields.push((field, value));
        let (status, page) = post_form(&server, "/ui/workspaces/team-a", &cookie, &fields);
        assert_eq!(status, 400, "{field}={value}: {page}");
        assert!(page.contains(says), "{field}={value}: {page}");
    }
    let (_, after) = api(
        &server,
        "GET",
        "/workspaces/team-a",
        &server.admin_token,
        None,
    );
    assert_eq!(after, ws, "nothing changed");

    // Audited as the API's change, by the signed-in admin.
    let (_, entries) = api(
        &server,
        "GET",
        "/audit?action=workspace.update",
        &server.admin_token,
        None,
    );
    let ok = entries["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "success")
        .count();
    assert_eq!(ok, 1, "{entries}");
}

/// One request a receiver got: its request line and headers (lower-case names).
#[derive(Debug, Clone)]
struct Received {
    line: String,
    headers: Vec<(String, String)>,
}

/// A local webhook receiver answering 200 to everything; returns its URL and what it got.
fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
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
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.trim().split_once(':') {
                    headers.push((k.trim().to_lowercase(), v.trim().to_owned()));
                }
            }
            let length = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            sink.lock().unwrap().push(Received {
                line: line.trim().to_owned(),
                headers,
            });
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, got)
}

/// Reloads the page until every delivery in the log is `delivered` and there are `rows`.
fn wait_for_deliveries(browser: &Browser, rows: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let statuses: Vec<String> = browser
            .find_all("#delivery-log .delivery-status")
            .iter()
            .map(|e| e.text())
            .collect();
        if statuses.len() == rows && statuses.iter().all(|s| s == "delivered") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries not delivered: {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
        browser.refresh();
    }
}

fn a_webhook_pinged_in_the_browser_shows_its_delivery(store: Store) {
    let Some(server) = start(store) else { return };
    let (url, got) = receiver();
    let browser = signed_in(&server, "admin", ADMIN_PASSWORD);
    browser.goto(&format!("{}/ui/workspaces/default", server.url));
    browser.click("#webhooks-link");
    // An unknown event kind: the service's message, on the form.
    browser.fill("#webhook-url", &url);
    browser.fill("#webhook-events", "lock.*, nothing.happened");
    browser.click("#create-webhook-button");
    browser.wait_for_text("#form-error", "unknown event kind \"nothing.happened\"");
    browser.fill("#webhook-events", "lock.*, state.written");
    browser.fill("#webhook-description", "made in the UI");
    browser.click("#create-webhook-button");
    browser.wait_for_text("h1", "Webhook created");
    let secret = browser.find("#secret").text();
    assert!(!secret.is_empty());
    browser.click("#back");
    browser.wait_for_text("#webhook-events-fact", "lock.*, state.written");
    assert!(!browser.source().contains(&secret), "the secret again");

    browser.click("#ping");
    browser.wait_for_text("#notice", "A ping was queued");
    wait_for_deliveries(&browser, 1);
    let log = browser.find("#delivery-log").text();
    assert!(log.contains("ping") && log.contains("200"), "{log}");
    let received = got.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].line, "POST /hook HTTP/1.1");
    assert!(
        received[0]
            .headers
            .iter()
            .any(|(k, v)| k == "x-statehouse-event" && v == "ping"),
        "{received:?}"
    );

    // Redelivered: a second delivery of the same body.
    browser.click("#delivery-log button.redeliver");
    browser.wait_for_text("#notice", "queued again");
    wait_for_deliveries(&browser, 2);
    assert!(browser.find("#delivery-log").text().contains("redelivery"));
    assert_eq!(got.lock().unwrap().len(), 2);

    // Disabled in the browser, as the API shows.
    browser.click("#webhook-enabled");
    browser.click("#save-webhook");
    browser.wait_for_text("#notice", "The webhook was saved.");
    assert_eq!(browser.find("#webhook-status").text(), "disabled");
    let (_, hooks) = api(
        &server,
        "GET",
        "/workspaces/default/webhooks",
        &server.admin_token,
        None,
    );
    assert_eq!(hooks["items"][0]["enabled"], false, "{hooks}");
    assert_eq!(
        hooks["items"][0]["description"], "made in the UI",
        "{hooks}"
    );

    // Deleted after the confirmation.
    browser.click("#delete-webhook");
    browser.wait_for_text("h1", "Delete this webhook of default?");
    browser.click("#confirm-delete");
    browser.wait_for_text("#notice", "deleted");
    browser.find("#no-webhooks");
    let (_, hooks) = api(
        &server,
        "GET",
        "/workspaces/default/webhooks",
        &server.admin_token,
        None,
    );
    assert_eq!(hooks["items"], json!([]), "{hooks}");
}
