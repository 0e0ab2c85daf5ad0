//! Single sign-on (OpenID Connect) in a real browser against a real provider: the npm package
//! `oidc-provider` (installed by `scripts/test.sh` into `.tools/npm`, run by
//! `scripts/oidc-provider.mjs`), with PKCE required and two accounts whose `groups` differ. On
//! SQLite and PostgreSQL:
//!
//! - signing in through the provider's own sign-in and consent pages creates the user, with
//!   instance admin from one group and a viewer role in `default` from another; the viewer sees
//!   no admin buttons; a group the user leaves takes its role away at the next sign-in; the
//!   audit log says the method; the client secret is never in the (debug-level) log, and a
//!   secret sealed by `statehouse oidc seal-secret` works after a restart;
//! - a callback whose `state` was altered, or that this browser did not start, is refused; a
//!   provider user name that cannot be a statehouse user name is refused with a clear message;
//! - with `oidc.local_login = false` the sign-in page has no password form, the login API
//!   answers 403 and tokens keep working.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::browser::Browser;
use common::{Server, Store, Via, pg_url, skip_e2e};
use serde_json::{Value, json};

const CLIENT_SECRET: &str = "oidc-client-secret-for-tests-7f3a9c";
const ADMIN_PASSWORD: &str = "correct horse battery";

on_both_stores!(
    users_sign_in_through_the_provider_with_roles_from_their_groups,
    refused_answers_and_password_login_turned_off,
);

/// The `oidc-provider` process, killed on drop.
struct Provider {
    child: Child,
    issuer: String,
    _dir: tempfile::TempDir,
    accounts: PathBuf,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Gives the provider's accounts these claims (read again at every sign-in).
    fn set_accounts(&self, accounts: Value) {
        std::fs::write(&self.accounts, accounts.to_string()).unwrap();
    }
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The npm prefix holding `oidc-provider`; `None` (the test is skipped) when it is missing and
/// the run does not require the test servers.
fn npm_prefix() -> Option<PathBuf> {
    let prefix = std::env::var_os("OIDC_PROVIDER_NPM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository_root().join(".tools/npm"));
    if prefix
        .join("node_modules/oidc-provider/package.json")
        .is_file()
    {
        return Some(prefix);
    }
    let required = ["CI", "STATEHOUSE_REQUIRE_SERVERS"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    assert!(
        !required,
        "oidc-provider is not installed in {}: run the suite through `bash scripts/test.sh`",
        prefix.display()
    );
    eprintln!(
        "oidc-provider is not installed in {}: skipping (scripts/test.sh installs it)",
        prefix.display()
    );
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

fn start_provider(npm: &Path, redirect_uri: &str, accounts: Value) -> Provider {
    let dir = tempfile::tempdir().unwrap();
    let accounts_file = dir.path().join("accounts.json");
    std::fs::write(&accounts_file, accounts.to_string()).unwrap();
    let mut child = Command::new("node")
        .arg(repository_root().join("scripts/oidc-provider.mjs"))
        .args(["--redirect-uri", redirect_uri])
        .args(["--client-secret", CLIENT_SECRET])
        .arg("--accounts")
        .arg(&accounts_file)
        .env("OIDC_PROVIDER_NPM", npm)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node (for oidc-provider)");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let issuer = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                if let Some(issuer) = line.strip_prefix("oidc provider listening on ") {
                    break issuer.trim().to_owned();
                }
            }
            Err(e) => {
                let _ = child.kill();
                panic!("oidc-provider did not start: {e}");
            }
        }
    };
    Provider {
        child,
        issuer,
        _dir: dir,
        accounts: accounts_file,
    }
}

fn accounts() -> Value {
    json!({
        "alice": {"groups": ["statehouse-admins", "everyone"]},
        "bob": {"groups": ["platform-viewers", "everyone"]},
        "bad name": {"preferred_username": "Bad Name!"},
    })
}

/// A provider and a server configured for it (by a configuration file the test may rewrite),
/// or `None` when end-to-end tests are off or the provider is not installed.
fn start(store: Store, oidc_extra: &str) -> Option<(Provider, Server, PathBuf, tempfile::TempDir)> {
    if skip_e2e() {
        return None;
    }
    let npm = npm_prefix()?;
    if store == Store::Postgres {
        pg_url();
    }
    let port = free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let provider = start_provider(&npm, &format!("{public_url}/ui/oidc/callback"), accounts());
    let config_dir = tempfile::tempdir().unwrap();
    let config_file = config_dir.path().join("statehouse.toml");
    write_config(
        &config_file,
        &provider,
        &public_url,
        CLIENT_SECRET,
        oidc_extra,
    );
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start_with(
        store,
        &[
            ("STATEHOUSE_CONFIG", config_file.to_str().unwrap()),
            ("STATEHOUSE_LISTEN", &listen),
            ("STATEHOUSE_LOG", "debug"),
        ],
    );
    Some((provider, server, config_file, config_dir))
}

fn write_config(file: &Path, provider: &Provider, public_url: &str, secret: &str, extra: &str) {
    let toml = format!(
        r#"[oidc]
issuer_url = "{issuer}"
client_id = "statehouse"
client_secret = "{secret}"
public_url = "{public_url}"
button_label = "Test IdP"
admin_groups = ["statehouse-admins"]
{extra}

[oidc.workspace_roles.platform-viewers]
default = "viewer"
"#,
        issuer = provider.issuer,
    );
    std::fs::write(file, toml).unwrap();
}

fn api(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = common::http_client()
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

/// Clicks "Sign in with Test IdP" and goes through the provider's own pages as `login`. Ends
/// on the first statehouse page after the provider.
fn through_provider(browser: &Browser, server: &Server, login: &str) {
    browser.goto(&format!("{}/ui/login", server.url));
    let button = browser.find("#sso-sign-in");
    assert_eq!(button.text(), "Sign in with Test IdP");
    button.click();
    // The provider's sign-in page (any password), then its consent page.
    browser.wait_for_url(|u| !u.starts_with(&server.url));
    browser.fill("input[name=login]", login);
    browser.fill("input[name=password]", "whatever-the-provider-wants");
    browser.click("button[type=submit]");
    // Its consent page (once per browser and client), then back to statehouse.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !browser.url().starts_with(&server.url) {
        if browser
            .try_find("input[name=prompt][value=consent]")
            .is_some()
        {
            browser.click("button[type=submit]");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no consent page after signing in at the provider: {}",
            browser.source()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    browser.wait_for_url(|u| u.starts_with(&server.url));
}

fn sign_in_with_sso(server: &Server, login: &str, name: &str) -> Browser {
    let browser = Browser::start();
    through_provider(&browser, server, login);
    browser.wait_for_text("#signed-in-user", name);
    browser
}

fn user(server: &Server, name: &str) -> Value {
    let (status, body) = api(
        server,
        "GET",
        &format!("/users/{name}"),
        &server.admin_token,
        None,
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn role_in(user: &Value, workspace: &str) -> Option<String> {
    user["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["workspace"] == workspace)
        .map(|m| m["role"].as_str().unwrap().to_owned())
}

fn users_sign_in_through_the_provider_with_roles_from_their_groups(store: Store) {
    let Some((provider, mut server, config_file, _dir)) = start(store, "") else {
        return;
    };
    assert!(
        server.wait_for_log("oidc.client_secret is in the clear"),
        "a plain secret is warned about\n{}",
        server.log_text()
    );

    // alice: instance admin by her group, created on her first sign-in, without a password.
    let alice = sign_in_with_sso(&server, "alice", "alice");
    let record = user(&server, "alice");
    assert_eq!(record["instance_admin"], true, "{record}");
    assert_eq!(record["has_password"], false, "{record}");
    // The instance admin sees the users page with its buttons.
    alice.goto(&format!("{}/ui/users", server.url));
    alice.find("#create-user");

    // bob: a viewer of `default` by his group, no admin.
    let bob = sign_in_with_sso(&server, "bob", "bob");
    let record = user(&server, "bob");
    assert_eq!(record["instance_admin"], false, "{record}");
    assert_eq!(
        role_in(&record, "default").as_deref(),
        Some("viewer"),
        "{record}"
    );
    for (page, buttons) in [
        (
            "/ui/users/bob",
            vec!["#disable-user", "#make-admin", "#grant-form"],
        ),
        ("/ui/workspaces", vec!["#create-workspace"]),
        (
            "/ui/workspaces/default",
            vec!["#settings-form", "#members-link"],
        ),
    ] {
        bob.goto(&format!("{}{page}", server.url));
        for css in buttons {
            assert!(
                bob.try_find(css).is_none(),
                "{page} shows {css} to a viewer"
            );
        }
    }
    drop(bob);

    // bob leaves the group: the next sign-in takes the mapped role away (a role given by
    // hand in a workspace the mapping does not name stays).
    let (status, body) = api(
        &server,
        "POST",
        "/workspaces",
        &server.admin_token,
        Some(json!({"name": "manual"})),
    );
    assert!(status == 201 || status == 200, "{body}");
    let (status, body) = api(
        &server,
        "PUT",
        "/workspaces/manual/members/bob",
        &server.admin_token,
        Some(json!({"role": "editor"})),
    );
    assert_eq!(status, 200, "{body}");
    provider.set_accounts(json!({"bob": {"groups": ["everyone"]}}));
    let bob = sign_in_with_sso(&server, "bob", "bob");
    let record = user(&server, "bob");
    assert_eq!(role_in(&record, "default"), None, "{record}");
    assert_eq!(
        role_in(&record, "manual").as_deref(),
        Some("editor"),
        "{record}"
    );
    drop(bob);

    // The audit log says how they signed in.
    let (status, body) = api(
        &server,
        "GET",
        "/audit?action=login.succeeded",
        &server.admin_token,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let entries = body["items"].as_array().unwrap();
    let bobs: Vec<&Value> = entries.iter().filter(|e| e["target"] == "bob").collect();
    assert_eq!(bobs.len(), 2, "{body}");
    let detail = bobs[0]["detail"].as_str().unwrap_or_default().to_owned();
    assert!(
        detail.contains("oidc") && detail.contains(&provider.issuer),
        "{detail}"
    );

    // Never the client secret in the log, even at debug level.
    let log = server.log_text();
    assert!(
        log.contains("DEBUG") || log.contains("debug"),
        "the log is at debug level"
    );
    assert!(
        !log.contains(CLIENT_SECRET),
        "the client secret is in the log:\n{log}"
    );

    // The secret sealed under the master key works after a restart, and is not warned about.
    let out = server.cli_with_input(
        Via::Local,
        &["oidc", "seal-secret"],
        &format!("{CLIENT_SECRET}\n"),
    );
    assert!(out.status.success(), "{}", common::describe(&out));
    let sealed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(sealed.starts_with("sealed:"), "{sealed}");
    assert!(!sealed.contains(CLIENT_SECRET));
    let public_url = server.url.clone();
    write_config(&config_file, &provider, &public_url, &sealed, "");
    server.restart();
    provider.set_accounts(accounts());
    let again = sign_in_with_sso(&server, "alice", "alice");
    drop(again);
    let log = server.log_text();
    assert!(!log.contains("in the clear"), "{log}");
    assert!(!log.contains(CLIENT_SECRET), "{log}");

    // A sealed text altered by one character stops a start with a clear message.
    let mut altered = sealed.clone().into_bytes();
    let last = altered.len() - 2;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    write_config(
        &config_file,
        &provider,
        &public_url,
        &String::from_utf8(altered).unwrap(),
        "",
    );
    let mut second = server
        .command()
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while second.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            panic!("serve with an altered sealed secret did not stop");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = second.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("oidc.client_secret does not open"),
        "{stderr}"
    );

    // No secret on stdin: refused.
    let out = server.cli_output(Via::Local, &["oidc", "seal-secret"]);
    assert!(!out.status.success(), "no secret on stdin is refused");
}

fn refused_answers_and_password_login_turned_off(store: Store) {
    let Some((_provider, server, _config, _dir)) = start(store, "local_login = false") else {
        return;
    };
    // The sign-in page offers single sign-on only; the login API refuses passwords with 403.
    let browser = Browser::start();
    browser.goto(&format!("{}/ui/login", server.url));
    browser.find("#sso-sign-in");
    assert!(
        browser.try_find("#password").is_none(),
        "the password form is gone"
    );
    let (status, body) = api(
        &server,
        "PATCH",
        "/users/admin",
        &server.admin_token,
        Some(json!({"password": ADMIN_PASSWORD})),
    );
    assert_eq!(status, 200, "{body}");
    let response = common::http_client()
        .post(format!("{}/api/v1/auth/login", server.url))
        .json(&json!({"name": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let text = response.text().unwrap();
    assert!(text.contains("local_login"), "{text}");
    let response = common::http_client()
        .post(format!("{}/ui/login", server.url))
        .form(&[("name", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    // Tokens keep working.
    let (status, body) = api(&server, "GET", "/auth/me", &server.admin_token, None);
    assert_eq!(status, 200, "{body}");

    // A callback this browser did not start is refused.
    browser.goto(&format!(
        "{}/ui/oidc/callback?code=abc&state=xyz",
        server.url
    ));
    browser.wait_for_text("#login-error", "not started in this browser");

    // A state altered on the way back is refused, and nobody is signed in.
    browser.goto(&format!("{}/ui/oidc/start", server.url));
    browser.wait_for_url(|u| !u.starts_with(&server.url));
    browser.goto(&format!(
        "{}/ui/oidc/callback?code=abc&state=altered",
        server.url
    ));
    browser.wait_for_text("#login-error", "state differs");
    assert!(browser.try_find("#signed-in-user").is_none());
    assert!(
        !browser
            .cookies()
            .iter()
            .any(|c| c["name"] == "statehouse_session"),
        "no session after a refused answer"
    );

    // A provider user name that cannot be a statehouse user name: a clear refusal.
    let other = Browser::start();
    through_provider(&other, &server, "bad name");
    other.wait_for_text("#login-error", "cannot be a statehouse user name");
    let (status, _) = api(
        &server,
        "GET",
        "/users/bad%20name!",
        &server.admin_token,
        None,
    );
    assert_ne!(status, 200);

    // A real sign-in still works with password login off.
    let bob = Browser::start();
    through_provider(&bob, &server, "bob");
    bob.wait_for_text("#signed-in-user", "bob");
}
