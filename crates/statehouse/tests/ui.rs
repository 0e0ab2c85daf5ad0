//! The web UI in a real browser (Debian's Chromium, headless, through chromedriver) against the
//! real binary on SQLite and PostgreSQL, with real Terraform 1.0.3 writing the states:
//!
//! - first run: the admin sets a password with the one-time token, signs out and in again;
//!   pages carry the CSP and load nothing from elsewhere; the theme choice is remembered;
//! - a Terraform apply is shown (state, versions, outputs), two versions are compared, a
//!   rollback is confirmed in the browser, and `terraform plan` is clean afterwards;
//! - a lock held through the backend appears on the overview and is force-unlocked;
//! - a viewer sees no buttons it may not use and the server refuses its forged forms; a form
//!   without the CSRF token is refused;
//! - resources are found by search and listed on their state's page, states sort by change,
//!   the audit log filters, exports and verifies its chain;
//! - an admin deletes a state, restores it, deletes and purges it (the name typed again).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::browser::Browser;
use common::ui::{
    ADMIN_PASSWORD, api, post_form, session_of, sign_in, start, start_fresh, temp_dir,
};
use common::{Server, Store, Terraform, describe, unique_name};
use serde_json::{Value, json};

const APPLY: &[&str] = &["apply", "-input=false", "-no-color", "-auto-approve"];
const INIT: &[&str] = &["init", "-input=false", "-no-color"];

on_both_stores!(
    first_run_setup_then_sign_out_and_in,
    apply_then_versions_diff_and_rollback_in_the_browser,
    force_unlock_of_a_lock_held_through_the_backend,
    a_viewer_cannot_act_and_forms_need_the_csrf_token,
    search_resources_audit_log_and_sorting,
    delete_restore_and_purge_a_state,
);

/// Terraform with an `http` backend on `address` and one output, `greeting`.
fn terraform(dir: &std::path::Path, address: &str, token: &str) -> Terraform {
    let mut tf = Terraform::new(dir);
    tf.set_env("TF_HTTP_USERNAME", "ui");
    tf.set_env("TF_HTTP_PASSWORD", token);
    tf.write_config(&format!(
        r#"
terraform {{
  backend "http" {{
    address        = "{address}"
    lock_address   = "{address}"
    unlock_address = "{address}"
  }}
}}
variable "greeting" {{
  type    = string
  default = "hello"
}}
output "greeting" {{
  value = var.greeting
}}
output "secret" {{
  value     = "s3cr3t-${{var.greeting}}"
  sensitive = true
}}
"#
    ));
    tf
}

fn first_run_setup_then_sign_out_and_in(store: Store) {
    let Some(server) = start_fresh(store) else {
        return;
    };
    let browser = Browser::start();
    browser.goto(&format!("{}/", server.url));
    browser.wait_for_url(|u| u.contains("/ui/login"));

    // Every page carries the policy; none has inline script or style.
    let response = common::http_client()
        .get(format!("{}/ui/login", server.url))
        .send()
        .expect("login page");
    let csp = response
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self'")
            && csp.contains("style-src 'self'")
            && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(
        response
            .headers()
            .get("x-frame-options")
            .and_then(|v| v.to_str().ok()),
        Some("DENY")
    );

    browser.click("#setup-link");
    browser.fill("#token", &server.admin_token);
    browser.fill("#password", ADMIN_PASSWORD);
    browser.fill("#confirm", "something else entirely");
    browser.click("#set-password");
    browser.wait_for_text("#setup-error", "differ");
    browser.fill("#token", &server.admin_token);
    browser.fill("#password", ADMIN_PASSWORD);
    browser.fill("#confirm", ADMIN_PASSWORD);
    browser.click("#set-password");
    browser.wait_for_text("#signed-in-user", "admin");
    assert_eq!(browser.url(), format!("{}/", server.url));
    browser.find("#locks-held");
    assert_pages_are_self_contained(&browser, &server);

    // The token cannot set a password twice.
    browser.goto(&format!("{}/ui/setup", server.url));
    browser.fill("#token", &server.admin_token);
    browser.fill("#password", "another password 1");
    browser.fill("#confirm", "another password 1");
    browser.click("#set-password");
    browser.wait_for_text("#setup-error", "already has a password");

    // The theme is remembered across pages.
    browser.goto(&format!("{}/ui/states", server.url));
    browser.execute(
        "document.getElementById('theme-choice').value = 'dark'; return null;",
        vec![],
    );
    browser.click("header form[aria-label=Theme] button");
    browser.wait_for_url(|u| u.contains("/ui/states"));
    browser.goto(&format!("{}/", server.url));
    let theme = browser.execute("return document.documentElement.dataset.theme;", vec![]);
    assert_eq!(theme, json!("dark"));

    browser.click("#sign-out");
    browser.wait_for_url(|u| u.contains("signed_out"));
    browser.goto(&format!("{}/ui/states", server.url));
    browser.wait_for_url(|u| u.contains("/ui/login?next=%2Fui%2Fstates"));
    browser.fill("#name", "admin");
    browser.fill("#password", "not the password");
    browser.click("#sign-in");
    browser.wait_for_text("#login-error", "wrong user name or password");
    browser.fill("#password", ADMIN_PASSWORD);
    browser.click("#sign-in");
    browser.wait_for_text("#signed-in-user", "admin");
    // Back where the sign-in began.
    assert!(browser.url().ends_with("/ui/states"), "{}", browser.url());

    // Both logins are in the audit log, with the UI's client address.
    let (status, entries) = api(
        &server,
        "GET",
        "/audit?action=login.succeeded",
        &server.admin_token,
        None,
    );
    assert_eq!(status, 200, "{entries}");
    assert!(
        entries["items"].as_array().map_or(0, Vec::len) >= 2,
        "{entries}"
    );
}

/// What the page loaded came from the server itself, and its markup holds no inline script
/// or style (the CSP would block them anyway).
fn assert_pages_are_self_contained(browser: &Browser, server: &Server) {
    let loaded = browser.execute(
        "return performance.getEntriesByType('resource').map(e => e.name);",
        vec![],
    );
    let loaded = loaded.as_array().cloned().unwrap_or_default();
    assert!(
        !loaded.is_empty(),
        "the page loaded no stylesheet or script"
    );
    for url in &loaded {
        let url = url.as_str().unwrap_or("");
        assert!(url.starts_with(&server.url), "loaded from elsewhere: {url}");
    }
    let source = browser.source();
    assert!(!source.contains("<style"), "inline style element");
    assert!(!source.contains(" style="), "inline style attribute");
    for script in source.split("<script").skip(1) {
        assert!(
            script.trim_start().starts_with("src="),
            "inline script: <script{}",
            &script[..script.len().min(80)]
        );
    }
}

fn apply_then_versions_diff_and_rollback_in_the_browser(store: Store) {
    let Some(server) = start(store) else { return };
    let editor = server.create_token("default", "editor", "ci-ui");
    let address = server.tf_address("default", "web/app");
    let dir = temp_dir("apply");
    let tf = terraform(dir.path(), &address, &editor);
    tf.ok(INIT);
    tf.ok(APPLY); // version 1: hello
    tf.ok(&[APPLY, &["-var", "greeting=world"]].concat()); // version 2: world

    let browser = Browser::start();
    sign_in(&browser, &server, "admin", ADMIN_PASSWORD);
    browser.find("#recent-changes a[href='/ui/state/default/web/app']");
    browser.goto(&format!("{}/ui/states?ws=default&prefix=web/", server.url));
    browser.click("#states a[href='/ui/state/default/web/app']");
    browser.wait_for_text("#state-name", "web/app");
    assert_eq!(browser.find("#current-version-no").text(), "2");
    let outputs = browser.find("#outputs").text();
    assert!(outputs.contains("\"world\""), "{outputs}");
    // The admin sees sensitive outputs, as the API shows them to admins.
    assert!(outputs.contains("s3cr3t-world"), "{outputs}");
    let backend = browser.find("#backend-block").text();
    assert!(backend.contains(&address), "{backend}");
    assert_pages_are_self_contained(&browser, &server);

    // Version 2's changes: the outputs, side by side.
    browser.click("#version-2 a[href*='/ui/diff/']");
    browser.wait_for_text("h1", "version 1 → 2");
    let changes = browser.find("#diff-outputs").text();
    assert!(
        changes.contains("greeting")
            && changes.contains("\"hello\"")
            && changes.contains("\"world\""),
        "{changes}"
    );

    // Roll back to version 1: the confirmation says what will change.
    browser.goto(&format!("{}/ui/state/default/web/app", server.url));
    browser.click("#version-1 a.rollback-link");
    browser.wait_for_text(
        "#rollback-summary",
        "new version after the current version 2",
    );
    let changes = browser.find("#diff-outputs").text();
    assert!(changes.contains("\"world\""), "{changes}");
    browser.click("#confirm-rollback");
    browser.wait_for_text("#notice", "Rolled back");
    assert_eq!(browser.find("#current-version-no").text(), "3");
    assert!(browser.find("#outputs").text().contains("\"hello\""));

    // Terraform agrees: planning for "hello" changes nothing.
    let plan = tf.run(&["plan", "-input=false", "-no-color", "-detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));

    // Audited as the API's rollback, by the signed-in user.
    let (status, entries) = api(
        &server,
        "GET",
        "/audit?action=state.rollback",
        &server.admin_token,
        None,
    );
    assert_eq!(status, 200, "{entries}");
    let entry = &entries["items"][0];
    assert_eq!(entry["actor"], "admin", "{entries}");
    assert_eq!(entry["outcome"], "success", "{entries}");
}

fn lock_info(id: &str, who: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ID": id,
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": who,
        "Version": "1.0.3",
        "Created": "2026-12-03T10:00:00Z",
        "Path": ""
    }))
    .expect("lock info")
}

fn force_unlock_of_a_lock_held_through_the_backend(store: Store) {
    let Some(server) = start(store) else { return };
    let editor = server.create_token("default", "editor", "runner-7");
    let address = server.tf_address("default", "net/core");
    let dir = temp_dir("lock");
    let tf = terraform(dir.path(), &address, &editor);
    tf.ok(INIT);
    tf.ok(APPLY);
    let lock_id = unique_name("held");
    let response = server.request(
        "LOCK",
        &address,
        &editor,
        lock_info(&lock_id, "ci@runner-7"),
    );
    assert_eq!(response.status(), 200);

    let browser = Browser::start();
    sign_in(&browser, &server, "admin", ADMIN_PASSWORD);
    let locks = browser.find("#locks-held").text();
    assert!(
        locks.contains("default/net/core")
            && locks.contains("runner-7")
            && locks.contains("OperationTypeApply"),
        "{locks}"
    );
    browser.click("#locks-held a[href='/ui/state/default/net/core']");
    assert_eq!(browser.find("#lock-holder").text(), "runner-7");
    browser.click("#force-unlock");
    browser.wait_for_text("h1", "Force-unlock default/net/core?");
    browser.click("#confirm-unlock");
    browser.wait_for_text("#notice", "The lock was released.");
    assert_eq!(browser.find("#lock-state").text(), "unlocked");
    let (status, _) = api(
        &server,
        "GET",
        "/workspaces/default/states/net%2Fcore/lock",
        &server.admin_token,
        None,
    );
    assert_eq!(status, 404, "the lock is gone");
    // Terraform can take the lock again.
    tf.ok(&[APPLY, &["-var", "greeting=after-unlock"]].concat());
}

fn a_viewer_cannot_act_and_forms_need_the_csrf_token(store: Store) {
    let Some(server) = start(store) else { return };
    let editor = server.create_token("default", "editor", "ci-viewer");
    let address = server.tf_address("default", "app/db");
    let dir = temp_dir("viewer");
    let tf = terraform(dir.path(), &address, &editor);
    tf.ok(INIT);
    tf.ok(APPLY);
    tf.ok(&[APPLY, &["-var", "greeting=two"]].concat());
    let response = server.request("LOCK", &address, &editor, lock_info("viewer-test", "ci@x"));
    assert_eq!(response.status(), 200);
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
    browser.goto(&format!("{}/ui/state/default/app/db", server.url));
    browser.find("#lock-holder");
    assert!(
        browser.try_find("#force-unlock").is_none(),
        "viewer sees force-unlock"
    );
    assert!(
        browser.try_find("a.rollback-link").is_none(),
        "viewer sees rollback"
    );
    assert!(
        browser.try_find("form[action*='/ui/keep/']").is_none(),
        "viewer sees keep"
    );
    // Sensitive outputs are masked for a viewer.
    let outputs = browser.find("#outputs").text();
    assert!(!outputs.contains("s3cr3t"), "{outputs}");

    // Forged forms with the viewer's own session and CSRF token are refused by the server.
    let (cookie, csrf) = session_of(&browser);
    let (status, _) = post_form(
        &server,
        "/ui/rollback/default/app/db",
        &cookie,
        &[("csrf_token", &csrf), ("version", "1"), ("current", "2")],
    );
    assert_eq!(status, 403, "a viewer's rollback");
    let (status, _) = post_form(
        &server,
        "/ui/unlock/default/app/db",
        &cookie,
        &[("csrf_token", &csrf), ("lock_id", "viewer-test")],
    );
    assert_eq!(status, 403, "a viewer's force-unlock");
    let state = server.state_json("default", "app/db", &editor);
    assert_eq!(
        state["outputs"]["greeting"]["value"], "two",
        "nothing changed"
    );

    // An admin's form without (or with a wrong) CSRF token is refused too, and changes nothing.
    let admin = Browser::start();
    sign_in(&admin, &server, "admin", ADMIN_PASSWORD);
    admin.goto(&format!("{}/ui/state/default/app/db", server.url));
    let (admin_cookie, admin_csrf) = session_of(&admin);
    for fields in [
        vec![("version", "1"), ("current", "2")],
        vec![("csrf_token", "forged"), ("version", "1"), ("current", "2")],
        vec![
            ("csrf_token", csrf.as_str()),
            ("version", "1"),
            ("current", "2"),
        ],
    ] {
        let (status, _) = post_form(
            &server,
            "/ui/rollback/default/app/db",
            &admin_cookie,
            &fields,
        );
        assert_eq!(status, 403, "{fields:?}");
    }
    let state = server.state_json("default", "app/db", &editor);
    assert_eq!(
        state["outputs"]["greeting"]["value"], "two",
        "nothing changed"
    );
    // With its token the same form works (the rollback waits for nobody's lock but its own:
    // the editor's lock is in the way, so the answer is the lock conflict page).
    let (status, _) = post_form(
        &server,
        "/ui/rollback/default/app/db",
        &admin_cookie,
        &[
            ("csrf_token", &admin_csrf),
            ("version", "1"),
            ("current", "2"),
        ],
    );
    assert_eq!(status, 423);
}

/// A state whose configuration reads `base` through a data source: one resource instance,
/// `data.terraform_remote_state.base` (no provider can be downloaded here).
fn reader(dir: &std::path::Path, address: &str, base: &str, token: &str) -> Terraform {
    let tf = terraform(dir, address, token);
    let config = std::fs::read_to_string(dir.join("main.tf")).expect("main.tf");
    std::fs::write(
        dir.join("main.tf"),
        format!(
            r#"{config}
data "terraform_remote_state" "base" {{
  backend = "http"
  config = {{
    address  = "{base}"
    username = "ui"
    password = "{token}"
  }}
}}
"#
        ),
    )
    .expect("main.tf");
    tf
}

fn search_resources_audit_log_and_sorting(store: Store) {
    let Some(server) = start(store) else { return };
    let editor = server.create_token("default", "editor", "ci-search");
    let base = server.tf_address("default", "shared/base");
    let base_dir = temp_dir("base");
    let tf = terraform(base_dir.path(), &base, &editor);
    tf.ok(INIT);
    tf.ok(APPLY);
    let dirs: Vec<tempfile::TempDir> = ["app/web", "app/api"]
        .iter()
        .map(|name| {
            let dir = temp_dir("reader");
            let tf = reader(
                dir.path(),
                &server.tf_address("default", name),
                &base,
                &editor,
            );
            tf.ok(INIT);
            tf.ok(APPLY);
            dir
        })
        .collect();

    let browser = Browser::start();
    sign_in(&browser, &server, "admin", ADMIN_PASSWORD);
    browser.click("nav a[href='/ui/search']");
    browser.fill("#search-type", "terraform_remote_state");
    browser.click("#search-submit");
    browser.wait_for_url(|u| u.contains("type=terraform_remote_state"));
    let results = browser.find("#search-results").text();
    assert!(
        results.contains("default/app/web")
            && results.contains("default/app/api")
            && results.contains("data.terraform_remote_state.base"),
        "{results}"
    );
    assert!(!results.contains("shared/base"), "{results}");
    browser.click("#search-results a[href='/ui/state/default/app/web']");
    browser.wait_for_text("#state-name", "app/web");
    let resources = browser.find("#resource-table").text();
    assert!(
        resources.contains("data.terraform_remote_state.base"),
        "{resources}"
    );
    browser.fill("#resources-filter", "no-such-address");
    browser.click("#filter-resources");
    browser.wait_for_text("#resources-note", "No resource instances match");

    // Most recently changed first: app/api was written last.
    browser.goto(&format!("{}/ui/states?ws=default&sort=changed", server.url));
    let first = browser.find("#states tbody tr td a").text();
    assert_eq!(first, "app/api");
    browser.goto(&format!("{}/ui/states?ws=default", server.url));
    let first = browser.find("#states tbody tr td a").text();
    assert_eq!(first, "app/api", "by name, app/api sorts first as well");
    let names: Vec<String> = browser
        .find_all("#states tbody tr td:first-child a")
        .iter()
        .map(|a| a.text())
        .collect();
    assert_eq!(names, ["app/api", "app/web", "shared/base"]);

    // The audit log, filtered; its export holds the same entries; the chain is intact.
    browser.click("nav a[href='/ui/audit']");
    browser.fill("#audit-action", "state.write");
    browser.click("#audit-filter");
    browser.wait_for_url(|u| u.contains("action=state.write"));
    let entries = browser.find("#audit-entries").text();
    assert!(
        entries.contains("state.write") && entries.contains("ci-search"),
        "{entries}"
    );
    assert!(!entries.contains("login.succeeded"), "{entries}");
    let export = browser
        .find("#audit-export")
        .attr("href")
        .expect("export link");
    let (cookie, _) = session_of(&browser);
    let lines = common::http_client()
        .get(format!("{}{export}", server.url))
        .header("cookie", format!("statehouse_session={cookie}"))
        .send()
        .expect("export")
        .text()
        .expect("export text");
    let exported: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(exported.len() >= 3, "{lines}");
    assert!(
        exported.iter().all(|e| e["action"] == "state.write"),
        "{lines}"
    );
    browser.click("#verify-chain");
    browser.wait_for_text("#verify-result", "Intact");
    drop(dirs);
}

fn delete_restore_and_purge_a_state(store: Store) {
    let Some(server) = start(store) else { return };
    let editor = server.create_token("default", "editor", "ci-delete");
    let address = server.tf_address("default", "old/stack");
    let dir = temp_dir("delete");
    let tf = terraform(dir.path(), &address, &editor);
    tf.ok(INIT);
    tf.ok(APPLY);

    let browser = Browser::start();
    sign_in(&browser, &server, "admin", ADMIN_PASSWORD);
    browser.goto(&format!("{}/ui/state/default/old/stack", server.url));
    browser.click("#delete-state");
    browser.wait_for_text("h1", "Delete default/old/stack?");
    browser.click("#confirm-delete");
    browser.wait_for_text("#notice", "was deleted");
    let (status, _) = api(
        &server,
        "GET",
        "/workspaces/default/states/old%2Fstack",
        &server.admin_token,
        None,
    );
    assert_eq!(status, 404, "deleted");
    browser.click("#deleted-states button.restore");
    browser.wait_for_text("#notice", "was restored");
    let state = server.state_json("default", "old/stack", &editor);
    assert_eq!(
        state["outputs"]["greeting"]["value"], "hello",
        "restored whole"
    );

    browser.goto(&format!("{}/ui/state/default/old/stack", server.url));
    browser.click("#delete-state");
    browser.click("#confirm-delete");
    browser.wait_for_text("#notice", "was deleted");
    // A purge needs the name typed again.
    browser.fill("#deleted-states input.purge-name", "old/wrong");
    browser.click("#deleted-states button.purge");
    browser.wait_for_text("#error-message", "type the state's name");
    browser.back();
    browser.fill("#deleted-states input.purge-name", "old/stack");
    browser.click("#deleted-states button.purge");
    browser.wait_for_text("#notice", "removed for good");
    assert!(browser.try_find("#deleted-states").is_none());
    let (status, entries) = api(
        &server,
        "GET",
        "/audit?action=state.purge",
        &server.admin_token,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(entries["items"][0]["outcome"], "success", "{entries}");
}
