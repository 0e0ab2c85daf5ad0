//! S3 keys and Pulumi stacks in a real browser (headless Chromium through chromedriver) against
//! the real binary, on SQLite and PostgreSQL; the stack is written over the S3 endpoint with
//! boto3 (`tests/s3/ui_stack.py`):
//!
//! - an S3 key created in the browser shows its secret once, as the `export AWS_…` lines, with
//!   the `pulumi login` line of this server; it writes checkpoints and a lock file, its row
//!   shows its last use, and once revoked in the browser (after a confirmation) it is refused;
//!   a hostile key name is shown as text;
//! - the stack is on the states list with the Pulumi badge; its page shows the badge, the
//!   resources by URN, the stack's outputs with the secret as "(secret)" (never its
//!   ciphertext), the lock holder as Pulumi wrote it, diff and rollback links, and the
//!   `pulumi login` line instead of Terraform's backend block;
//! - a viewer sees only its own keys, cannot make a service key (403, also by a forged form),
//!   and its own key cannot write.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::s3::{s3_key, ui_stack};
use common::ui::{ADMIN_PASSWORD, api, post_form, session_of, sign_in, signed_in, start_backups};
use common::{Server, Store};
use serde_json::json;

on_both_stores!(
    an_s3_key_made_in_the_browser_writes_a_stack_shown_as_pulumi,
    a_viewer_cannot_make_service_keys_and_its_own_key_cannot_write,
);

/// A name made to break out of the HTML it is shown in.
const HOSTILE: &str = "<img src=x onerror=alert(1)>&amp;\"laptop'";

/// The access key id and secret of the `export` lines on the created page.
fn exported(browser: &Browser) -> (String, String) {
    let text = browser.find("#secret").text();
    let value = |var: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("export {var}=")))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {var} line in {text:?}"))
    };
    (value("AWS_ACCESS_KEY_ID"), value("AWS_SECRET_ACCESS_KEY"))
}

fn endpoint(server: &Server) -> String {
    server.s3_url.trim_start_matches("http://").to_owned()
}

fn an_s3_key_made_in_the_browser_writes_a_stack_shown_as_pulumi(store: Store) {
    let Some(server) = start_backups(store) else {
        return;
    };
    let browser = signed_in(&server, "admin", ADMIN_PASSWORD);
    browser.click("header nav a[href='/ui/users']");
    browser.click("nav.subnav a[href='/ui/s3-keys']");
    browser.wait_for_text("h1", "S3 keys");
    assert_eq!(browser.find("#s3-endpoint").text(), server.s3_url);
    browser.fill("#key-name", HOSTILE);
    browser.choose("#key-workspace", "default");
    browser.choose("#key-kind", "service");
    browser.choose("#key-role", "editor");
    browser.fill("#key-expiry", "30");
    browser.click("#create-key-button");
    browser.wait_for_text("h1", "created");
    assert_eq!(
        browser.find("h1").text(),
        format!("S3 key {HOSTILE} created")
    );
    assert!(
        browser.try_find("main img").is_none(),
        "the name became markup"
    );
    let (id, secret) = exported(&browser);
    assert!(id.starts_with("SHK") && secret.len() == 40, "{id} {secret}");
    assert_eq!(
        browser.find("#pulumi-login").text(),
        format!(
            "pulumi login 's3://default?endpoint={}&disableSSL=true&s3ForcePathStyle=true&region=us-east-1'",
            endpoint(&server)
        )
    );
    assert!(browser.find("button[data-copy=secret]").is_displayed());

    // The key works: two checkpoints of the stack and Pulumi's lock file.
    let key = (id.as_str(), secret.as_str());
    ui_stack(&server, "default", key, &["checkpoint", "1"]).unwrap();
    ui_stack(&server, "default", key, &["checkpoint", "2"]).unwrap();
    ui_stack(&server, "default", key, &["lock"]).unwrap();

    // Listed with its last use; its secret is never shown again, reloaded or not.
    browser.click("#back");
    let row = format!("#key-{id}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while browser.find(&format!("{row} .key-last-used")).text() == "never" {
        assert!(Instant::now() < deadline, "the key's last use is not shown");
        std::thread::sleep(Duration::from_millis(200));
        browser.refresh();
    }
    browser.refresh();
    assert!(!browser.source().contains(&secret), "the secret again");
    let text = browser.find(&row).text();
    for part in ["service", "default", "editor", "active", HOSTILE] {
        assert!(text.contains(part), "{part:?} missing from {text:?}");
    }
    assert_eq!(browser.find(&format!("{row} .key-name")).text(), HOSTILE);
    assert!(browser.try_find("main img").is_none());

    // Bad input comes back as the form with a message and a 400; nothing is created.
    let (cookie, csrf) = session_of(&browser);
    let (status, page) = post_form(
        &server,
        "/ui/s3-keys",
        &cookie,
        &[
            ("csrf_token", &csrf),
            ("name", "never-made"),
            ("workspace", "default"),
            ("kind", "service"),
            ("role", "editor"),
            ("expires_in_days", "soon"),
        ],
    );
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("id=\"form-error\"") && page.contains("whole number of days"));
    assert!(
        page.contains("value=\"never-made\""),
        "the typed name is kept"
    );

    // The stack on the states list, badged.
    browser.goto(&format!("{}/ui/states?ws=default", server.url));
    let stack_row = browser
        .find_all("#states tbody tr")
        .into_iter()
        .find(|r| r.text().contains("pulumi/shop/dev"))
        .expect("the stack's row");
    assert_eq!(stack_row.find(".kind-pulumi").text(), "Pulumi");
    assert!(
        stack_row.text().contains("locked by"),
        "{}",
        stack_row.text()
    );

    // Its page, in Pulumi's words.
    stack_row.find("a").click();
    browser.wait_for_text("#state-name", "pulumi/shop/dev");
    assert_eq!(browser.find("#state-kind").text(), "Pulumi stack");
    assert_eq!(browser.find("#current-version-no").text(), "2");
    let resources = browser.find("#resource-table").text();
    for urn in [
        "urn:pulumi:dev::shop::pulumi:pulumi:Stack::shop-dev",
        "urn:pulumi:dev::shop::aws:s3/bucket:Bucket::assets-1",
    ] {
        assert!(resources.contains(urn), "{urn} missing: {resources}");
    }
    assert!(resources.starts_with("URN"), "{resources}");
    let password = browser.find("#output-dbPassword").text();
    assert!(
        password.contains("(secret)") && password.contains("secret"),
        "{password}"
    );
    assert!(
        browser
            .find("#output-url")
            .text()
            .contains("https://shop.example.com/v2"),
        "the current checkpoint's outputs"
    );
    assert!(
        browser
            .find("#output-note")
            .text()
            .contains("<b>not bold</b>"),
        "an output's markup is text"
    );
    assert!(browser.try_find("#outputs b").is_none());
    assert!(!browser.source().contains("CIPHERTEXT-MUST-NOT-SHOW"));
    assert_eq!(browser.find("#lock-state").text(), "locked");
    assert_eq!(browser.find("#lock-holder").text(), HOSTILE);
    assert_eq!(browser.find("#lock-who").text(), "alice@laptop");
    assert_eq!(browser.find("#lock-info").text(), "pid 4242");
    let block = browser.find("#pulumi-block").text();
    assert!(
        block.contains(&format!("endpoint={}&disableSSL=true", endpoint(&server)))
            && block.contains("pulumi stack select dev"),
        "{block}"
    );
    assert!(browser.try_find("#backend-block").is_none());
    let rollback = browser.find("#version-1 a.rollback-link").attr("href");
    assert!(
        rollback.is_some_and(|h| h.ends_with("/ui/rollback/default/pulumi/shop/dev?version=1")),
        "the rollback link"
    );
    browser.find("#version-2 a[href*='/ui/diff/']").click();
    browser.wait_for_text("#diff-kind", "Pulumi stack");

    // Revoked after the confirmation page, and refused from then on.
    browser.goto(&format!("{}/ui/s3-keys", server.url));
    browser.find(&format!("{row} a.revoke-link")).click();
    browser.wait_for_text("h1", "Revoke S3 key");
    assert!(browser.find("#key-facts").text().contains(&id));
    browser.click("#confirm-revoke");
    browser.wait_for_text("#notice", "revoked");
    assert_eq!(
        browser.find(&format!("{row} .key-status")).text(),
        "revoked"
    );
    assert_eq!(
        ui_stack(&server, "default", key, &["checkpoint", "3"]),
        Err("InvalidAccessKeyId 403".to_owned())
    );
    let (status, entries) = api(
        &server,
        "GET",
        "/audit?action=s3_key.revoke",
        &server.admin_token,
        None,
    );
    assert_eq!(status, 200, "{entries}");
    assert_eq!(entries["items"][0]["actor"], "admin", "{entries}");
    assert_eq!(entries["items"][0]["target"], id.as_str(), "{entries}");
}

fn a_viewer_cannot_make_service_keys_and_its_own_key_cannot_write(store: Store) {
    let Some(server) = start_backups(store) else {
        return;
    };
    let (ci_id, _) = s3_key(&server, "default", "editor", "ci");
    let (status, body) = api(
        &server,
        "POST",
        "/users",
        &server.admin_token,
        Some(json!({"name": "vera", "password": "viewer password 1"})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = api(
        &server,
        "PUT",
        "/workspaces/default/members/vera",
        &server.admin_token,
        Some(json!({"role": "viewer"})),
    );
    assert!(status == 200 || status == 201, "{status} {body}");

    let browser = Browser::start();
    sign_in(&browser, &server, "vera", "viewer password 1");
    browser.goto(&format!("{}/ui/s3-keys", server.url));
    browser.wait_for_text("h1", "S3 keys");
    assert!(
        browser.find("#no-keys").is_displayed(),
        "the service key is not the viewer's"
    );
    assert!(
        browser
            .try_find("#key-kind option[value=service]")
            .is_none()
    );

    // A forged service-key form with the viewer's own session and CSRF token: 403, no key.
    let (cookie, csrf) = session_of(&browser);
    let (status, page) = post_form(
        &server,
        "/ui/s3-keys",
        &cookie,
        &[
            ("csrf_token", &csrf),
            ("name", "forged"),
            ("workspace", "default"),
            ("kind", "service"),
            ("role", "admin"),
        ],
    );
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("403"), "the error page: {page}");

    // Its own key acts as the viewer: it reads, but writes nothing.
    browser.fill("#key-name", "vera-laptop");
    browser.click("#create-key-button");
    browser.wait_for_text("h1", "S3 key vera-laptop created");
    let (id, secret) = exported(&browser);
    assert_eq!(
        ui_stack(&server, "default", (&id, &secret), &["checkpoint", "1"]),
        Err("AccessDenied 403".to_owned())
    );
    browser.click("#back");
    let rows = browser.find_all("#s3-keys tbody tr");
    assert_eq!(rows.len(), 1, "the viewer sees only its own key");
    assert!(rows[0].text().contains("vera-laptop") && rows[0].text().contains("vera"));

    // The admin's list has both keys and no forged one.
    let (status, keys) = api(
        &server,
        "GET",
        "/workspaces/default/s3-keys",
        &server.admin_token,
        None,
    );
    assert_eq!(status, 200, "{keys}");
    let names: Vec<&str> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(names, ["ci", "vera-laptop"], "{keys}");
    let admin = signed_in(&server, "admin", ADMIN_PASSWORD);
    admin.goto(&format!("{}/ui/s3-keys", server.url));
    admin.find(&format!("#key-{ci_id}"));
    assert_eq!(admin.find_all("#s3-keys tbody tr").len(), 2);
}
