//! Behind a reverse proxy (`trusted_proxies`): forwarding headers decide the client's address
//! (audit log, failed-login limits) and scheme only when they come from a trusted proxy; and the
//! README's nginx and Caddy recipes, run as written by the real proxies, carry a real
//! Terraform's multi-megabyte state and the client's address.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::net::{IpAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::certs::{client_trusting, make_ca, make_server_cert};
use common::{Server, Store, Terraform, http_client, skip_e2e};
use serde_json::{Value, json};

const README: &str = include_str!("../../../README.md");

/// Failed logins from one address before the next is refused with 429 (the service's limit).
const MAX_FAILURES_PER_IP: usize = 20;

fn login(
    server: &Server,
    name: &str,
    forwarded_for: Option<&str>,
    proto: Option<&str>,
) -> reqwest::blocking::Response {
    let mut request = http_client()
        .post(format!("{}/api/v1/auth/login", server.url))
        .json(&json!({"name": name, "password": "wrong"}));
    if let Some(xff) = forwarded_for {
        request = request.header("x-forwarded-for", xff);
    }
    if let Some(proto) = proto {
        request = request.header("x-forwarded-proto", proto);
    }
    request.send().unwrap()
}

/// The source address of the newest `login.failed` entry for `name` (audit entries of failed
/// logins are written shortly after the answer).
fn failed_login_source(server: &Server, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page: Value = http_client()
            .get(format!(
                "{}/api/v1/audit?action=login.failed&target={name}",
                server.url
            ))
            .bearer_auth(&server.admin_token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if let Some(entry) = page["items"].as_array().and_then(|items| items.first()) {
            return entry["source_ip"].as_str().unwrap_or_default().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no login.failed entry for {name}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The Terraform backend address the UI's state page shows, with `headers` on the request.
fn shown_backend_address(server: &Server, state: &str, headers: &[(&str, &str)]) -> String {
    let session = common::ui::session_cookie(server, "admin", common::ui::ADMIN_PASSWORD);
    let mut request = http_client()
        .get(format!("{}/ui/state/default/{state}", server.url))
        .header("cookie", format!("statehouse_session={session}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let page = request.send().unwrap().text().unwrap();
    let marker = "address        = \"";
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no backend block:\n{page}"))
        + marker.len();
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

fn forwarded_addresses_are_believed_only_from_trusted_proxies(store: Store) {
    let Some(server) = common::ui::start_with(
        store,
        &[(
            "STATEHOUSE_TRUSTED_PROXIES",
            r#"["127.0.0.1", "10.0.0.0/8"]"#,
        )],
    ) else {
        return;
    };
    assert!(
        server.log_text().contains("trusting X-Forwarded-For"),
        "{}",
        server.log_text()
    );
    // The client is the rightmost address that is no trusted proxy; what it wrote further
    // left proves nothing.
    let status = login(
        &server,
        "fwd-one",
        Some("6.6.6.6, 203.0.113.7, 10.1.2.3"),
        None,
    )
    .status();
    assert_eq!(status, 401);
    assert_eq!(failed_login_source(&server, "fwd-one"), "203.0.113.7");

    // Failed-login limits count per forwarded address: 203.0.113.7 is locked out, another
    // client behind the same proxy is not.
    for i in 1..MAX_FAILURES_PER_IP {
        let r = login(&server, &format!("fwd-{i}"), Some("203.0.113.7"), None);
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    let refused = login(&server, "fwd-late", Some("203.0.113.7"), None);
    assert_eq!(refused.status(), 429);
    let spoofed = login(&server, "fwd-late", Some("198.51.100.1, 203.0.113.7"), None);
    assert_eq!(
        spoofed.status(),
        429,
        "a made-up hop on the left changes nothing"
    );
    let other = login(&server, "fwd-other", Some("198.51.100.8"), None);
    assert_eq!(other.status(), 401);
    assert_eq!(failed_login_source(&server, "fwd-other"), "198.51.100.8");

    // The scheme the proxy reports is the one the pages show.
    common::ui::write_state(&server, "default", "behind-proxy");
    assert!(
        shown_backend_address(&server, "behind-proxy", &[("x-forwarded-proto", "https")])
            .starts_with("https://"),
    );
    assert!(shown_backend_address(&server, "behind-proxy", &[]).starts_with("http://"));

    // A server that trusts no proxy believes none of it.
    let Some(direct) = common::ui::start_with(store, &[]) else {
        return;
    };
    login(&direct, "direct", Some("203.0.113.7"), Some("https"));
    assert_eq!(failed_login_source(&direct, "direct"), "127.0.0.1");
    common::ui::write_state(&direct, "default", "direct");
    assert!(
        shown_backend_address(&direct, "direct", &[("x-forwarded-proto", "https")])
            .starts_with("http://"),
        "X-Forwarded-Proto from an untrusted peer is ignored"
    );
}

on_both_stores!(forwarded_addresses_are_believed_only_from_trusted_proxies);

// ---- the README's recipes, run by the real proxies -----------------------------------------

/// The README's fenced block of `lang` that follows the paragraph starting with `marker`.
fn readme_block(marker: &str, lang: &str) -> String {
    let from = README
        .find(marker)
        .unwrap_or_else(|| panic!("README has no {marker:?}"));
    let fence = format!("```{lang}\n");
    let start = from + README[from..].find(&fence).unwrap() + fence.len();
    let end = start + README[start..].find("```").unwrap();
    README[start..end].to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A proxy process, stopped on drop.
struct Proxy {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `url` answers through the proxy.
    fn await_ready(&mut self, client: &reqwest::blocking::Client, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{url}/readyz")).send()
                && r.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the proxy exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the proxy never answered:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// What each recipe is checked for behind `proxy_url`: a real Terraform applies a state of
/// several megabytes through it (more than nginx's and Caddy's body defaults would let
/// through unchanged), and a client's address arrives in the audit log.
fn terraform_and_client_address_through(
    server: &Server,
    proxy_url: &str,
    ca_file: Option<&Path>,
    client: &reqwest::blocking::Client,
) {
    let work = tempfile::tempdir().unwrap();
    // 3 MB of text as an output: the state Terraform writes carries it.
    let line = "0123456789abcdef".repeat(64);
    let big: String = (0..3_000).map(|_| format!("{line}\n")).collect();
    std::fs::write(work.path().join("big.txt"), &big).unwrap();
    let token = server.create_token("default", "editor", "behind-proxy");
    let mut tf = Terraform::new(work.path());
    tf.set_env("TF_HTTP_USERNAME", "ci")
        .set_env("TF_HTTP_PASSWORD", &token);
    if let Some(ca) = ca_file {
        tf.set_env("SSL_CERT_FILE", &ca.display().to_string());
    }
    let address = format!("{proxy_url}/tf/default/through-proxy");
    tf.write_config(&format!(
        "terraform {{\n  backend \"http\" {{\n    address = \"{address}\"\n    lock_address = \"{address}\"\n    unlock_address = \"{address}\"\n  }}\n}}\noutput \"big\" {{ value = file(\"big.txt\") }}\n"
    ));
    tf.ok(&["init", "-input=false"]);
    tf.ok(&["apply", "-auto-approve", "-input=false"]);
    let state: Value = client
        .get(&address)
        .basic_auth("ci", Some(&token))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        state["outputs"]["big"]["value"].as_str(),
        Some(big.as_str())
    );

    // A client on 127.0.0.5 (its own source address): the proxy's X-Forwarded-For names it.
    let from_elsewhere = reqwest::blocking::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 5]))
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let name = format!("via-{}", proxy_url.len());
    let r = from_elsewhere
        .post(format!("{proxy_url}/api/v1/auth/login"))
        .json(&json!({"name": name, "password": "wrong"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(failed_login_source(server, &name), "127.0.0.5");
}

/// The statehouse these recipes proxy to: it trusts the proxy on 127.0.0.1.
fn proxied_server() -> Option<Server> {
    common::ui::start_with(
        Store::Sqlite,
        &[("STATEHOUSE_TRUSTED_PROXIES", r#"["127.0.0.1"]"#)],
    )
}

#[test]
fn readme_nginx_recipe_carries_terraform_and_the_client_address() {
    let Some(server) = proxied_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path(), "ca");
    let (cert, key) = make_server_cert(dir.path(), &ca, "nginx");
    let port = free_port();
    let upstream = server.url.trim_start_matches("http://");
    // The recipe as written, but for where this test's files and ports are.
    let site = readme_block("**nginx**", "nginx")
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace(
            "/etc/letsencrypt/live/statehouse.example.com/fullchain.pem",
            &cert.display().to_string(),
        )
        .replace(
            "/etc/letsencrypt/live/statehouse.example.com/privkey.pem",
            &key.display().to_string(),
        )
        .replace("127.0.0.1:8080", upstream);
    let d = dir.path().display();
    // One process as the current user (no workers switching to another), everything in `dir`.
    let config = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
         scgi_temp_path {d}/scgi;\n{site}}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
    let mut proxy = Proxy {
        child: Command::new("nginx")
            .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (installed by scripts/test.sh)"),
        log: dir.path().join("error.log"),
    };
    let url = format!("https://localhost:{port}");
    let client = client_trusting(&ca);
    proxy.await_ready(&client, &url);
    terraform_and_client_address_through(&server, &url, Some(&ca.cert), &client);
    // nginx said the scheme was https: the page shows the backend address as the client sees it.
    let session = common::ui::session_cookie(&server, "admin", common::ui::ADMIN_PASSWORD);
    let page = client
        .get(format!("{url}/ui/state/default/through-proxy"))
        .header("cookie", format!("statehouse_session={session}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains(&format!("{url}/tf/default/through-proxy")),
        "{}",
        proxy.log()
    );
}

#[test]
fn readme_caddy_recipe_carries_terraform_and_the_client_address() {
    let Some(server) = proxied_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let upstream = server.url.trim_start_matches("http://");
    // The recipe as written, served over plain HTTP on a test port (the test cannot get a
    // certificate from Let's Encrypt), without Caddy's admin endpoint.
    let site = readme_block("**Caddy**", "caddyfile")
        .replace(
            "statehouse.example.com {",
            &format!("http://127.0.0.1:{port} {{"),
        )
        .replace("127.0.0.1:8080", upstream);
    let caddyfile = dir.path().join("Caddyfile");
    std::fs::write(&caddyfile, format!("{{\n  admin off\n}}\n{site}")).unwrap();
    let log = dir.path().join("caddy.log");
    let mut proxy = Proxy {
        child: Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&caddyfile)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("caddy (installed by scripts/test.sh)"),
        log,
    };
    let url = format!("http://127.0.0.1:{port}");
    let client = http_client();
    proxy.await_ready(&client, &url);
    terraform_and_client_address_through(&server, &url, None, &client);
}

/// A `trusted_proxies` entry that is no address or block stops the start, naming it.
#[test]
fn a_bad_trusted_proxies_entry_stops_the_start() {
    if skip_e2e() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(common::BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STATEHOUSE_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .env("STATEHOUSE_DATA_DIR", data.path())
        .env("STATEHOUSE_LISTEN", "127.0.0.1:0")
        .env("STATEHOUSE_S3_LISTEN", "127.0.0.1:0")
        .env(
            "STATEHOUSE_TRUSTED_PROXIES",
            r#"["10.0.0.0/8", "proxy.example"]"#,
        )
        .arg("serve")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("\"proxy.example\" is neither an address nor a CIDR block")
            && stderr.contains("STATEHOUSE_TRUSTED_PROXIES"),
        "{stderr}"
    );
}
