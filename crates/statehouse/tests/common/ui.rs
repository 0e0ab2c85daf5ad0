//! What the browser tests share: a server whose admin has a password, the REST API by token,
//! signing in, and forms posted as a browser would (to check the server's own refusals).

use serde_json::{Value, json};

use super::browser::Browser;
use super::{Server, Store, http_client, pg_url, skip_e2e, terraform_bin};

pub const ADMIN_PASSWORD: &str = "correct horse battery";

/// A server with the admin's password set, or `None` when end-to-end tests are switched off.
/// Terraform and the test PostgreSQL are required whatever the store, so a run without them
/// never passes half-done.
pub fn start(store: Store) -> Option<Server> {
    let server = start_fresh(store)?;
    set_password(&server, "admin", ADMIN_PASSWORD);
    Some(server)
}

/// A server as its first start leaves it: the admin has no password yet.
pub fn start_fresh(store: Store) -> Option<Server> {
    if skip_e2e() {
        return None;
    }
    terraform_bin();
    pg_url();
    Some(Server::start(store))
}

/// A REST API call with a bearer token: the status and the JSON body (`null` if none).
pub fn api(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = http_client()
        .request(method, format!("{}/api/v1{path}", server.url))
        .bearer_auth(token);
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().expect("API request");
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Sets a user's password through the API, as the admin.
pub fn set_password(server: &Server, user: &str, password: &str) {
    let (status, body) = api(
        server,
        "PATCH",
        &format!("/users/{user}"),
        &server.admin_token,
        Some(json!({"password": password})),
    );
    assert_eq!(status, 200, "{body}");
}

/// Signs `browser` in on the sign-in page.
pub fn sign_in(browser: &Browser, server: &Server, name: &str, password: &str) {
    browser.goto(&format!("{}/ui/login", server.url));
    browser.fill("#name", name);
    browser.fill("#password", password);
    browser.click("#sign-in");
    browser.wait_for_text("#signed-in-user", name);
}

/// A new browser, signed in.
pub fn signed_in(server: &Server, name: &str, password: &str) -> Browser {
    let browser = Browser::start();
    sign_in(&browser, server, name, password);
    browser
}

/// The browser's session cookie and the CSRF token of its current page.
pub fn session_of(browser: &Browser) -> (String, String) {
    let cookie = browser
        .cookies()
        .iter()
        .find(|c| c["name"] == "statehouse_session")
        .and_then(|c| c["value"].as_str().map(str::to_owned))
        .expect("session cookie");
    let csrf = browser
        .execute(
            "return document.querySelector('input[name=csrf_token]').value;",
            vec![],
        )
        .as_str()
        .unwrap_or("")
        .to_owned();
    (cookie, csrf)
}

/// Posts a form as a browser would (its session cookie, the fields given): the status and the
/// page.
pub fn post_form(
    server: &Server,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let response = http_client()
        .post(format!("{}{path}", server.url))
        .header("cookie", format!("statehouse_session={cookie}"))
        .form(fields)
        .send()
        .expect("form post");
    let status = response.status().as_u16();
    (status, response.text().unwrap_or_default())
}

/// Temporary directory for a test's Terraform working directory.
pub fn temp_dir(label: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("statehouse-ui-{label}-"))
        .tempdir()
        .expect("temp dir")
}

/// A server with the admin's password set, for pages that need no Terraform (the backup
/// configuration), or `None` when end-to-end tests are switched off. PostgreSQL is required for
/// that store only.
pub fn start_backups(store: Store) -> Option<Server> {
    if skip_e2e() {
        return None;
    }
    let server = Server::start(store);
    set_password(&server, "admin", ADMIN_PASSWORD);
    Some(server)
}

/// A REST API read as the instance admin; fails unless it answers `200`.
pub fn admin_get(server: &Server, path: &str) -> Value {
    let (status, body) = api(server, "GET", path, &server.admin_token, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The serial of every version of a state (up to 1,000), oldest first.
pub fn version_serials(server: &Server, workspace: &str, state: &str) -> Vec<i64> {
    let page = admin_get(
        server,
        &format!("/workspaces/{workspace}/states/{state}/versions?limit=1000"),
    );
    let mut serials: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["serial"].as_i64().unwrap())
        .collect();
    serials.reverse();
    serials
}

/// [`start`] with more settings (`STATEHOUSE_…` variables).
pub fn start_with(store: Store, env: &[(&str, &str)]) -> Option<Server> {
    if skip_e2e() {
        return None;
    }
    terraform_bin();
    pg_url();
    let server = Server::start_allowing(store, env);
    set_password(&server, "admin", ADMIN_PASSWORD);
    Some(server)
}

/// A session of `name` signed in through the REST API: the session cookie's value.
pub fn session_cookie(server: &Server, name: &str, password: &str) -> String {
    let response = http_client()
        .post(format!("{}/api/v1/auth/login", server.url))
        .json(&json!({"name": name, "password": password}))
        .send()
        .expect("login request");
    assert_eq!(response.status(), 200, "login of {name}");
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("statehouse_session="))
        .expect("session cookie");
    cookie.split(';').next().unwrap_or_default().to_owned()
}

/// Writes a small Terraform state to `workspace/name` through the http backend, as the admin.
pub fn write_state(server: &Server, workspace: &str, name: &str) {
    let state = json!({
        "version": 4, "terraform_version": "1.0.3", "serial": 1,
        "lineage": format!("lineage-{name}"), "outputs": {}, "resources": []
    });
    let response = http_client()
        .post(server.tf_address(workspace, name))
        .basic_auth("admin", Some(&server.admin_token))
        .json(&state)
        .send()
        .expect("state write");
    assert_eq!(response.status(), 200, "writing {workspace}/{name}");
}
