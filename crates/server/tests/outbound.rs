//! The outbound policy through the API, as a workspace admin would attack it: every kind of
//! connection a workspace names (webhooks, each notifier kind, each storage target kind,
//! databases with their checks, backups and read-only-role admin connections) pointed at this
//! host in every spelling, at a name resolving here, at a Unix socket, at link-local and cloud
//! metadata addresses. Each is refused with the policy's message naming the setting that would
//! allow it, and the listeners on this host never see a connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::TestServer;
use serde_json::{Value, json};
use statehouse_core::access::Role;
use statehouse_outbound::OutboundPolicy;
use statehouse_server::webhook_sender::HttpTransport;

/// Counts the connections a listener accepts.
#[derive(Clone, Default)]
struct Witness(Arc<AtomicUsize>);

impl Witness {
    fn seen(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn watch_tcp(&self, listener: tokio::net::TcpListener) {
        let count = self.0.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
    }

    fn watch_unix(&self, listener: tokio::net::UnixListener) {
        let count = self.0.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
    }
}

/// A destination to try: how a URL writes its host, how a host field does, the port.
struct Spelling {
    url_host: String,
    bare_host: String,
    port: u16,
}

/// This host in every spelling, at the listeners' ports, then link-local and metadata
/// addresses (nothing listens there; the message says they were refused before connecting).
fn spellings(v4_port: u16, v6_port: Option<u16>) -> Vec<Spelling> {
    let mut out: Vec<Spelling> = [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "0.0.0.0",
        "localhost",
    ]
    .into_iter()
    .map(|h| Spelling {
        url_host: h.to_owned(),
        bare_host: h.to_owned(),
        port: v4_port,
    })
    .collect();
    out.push(Spelling {
        url_host: "[::ffff:127.0.0.1]".to_owned(),
        bare_host: "::ffff:127.0.0.1".to_owned(),
        port: v4_port,
    });
    if let Some(port) = v6_port {
        for h in ["::1", "::"] {
            out.push(Spelling {
                url_host: format!("[{h}]"),
                bare_host: h.to_owned(),
                port,
            });
        }
    }
    for (url_host, bare_host) in [
        ("169.254.169.254", "169.254.169.254"),
        ("[fd00:ec2::254]", "fd00:ec2::254"),
        ("100.100.100.200", "100.100.100.200"),
    ] {
        out.push(Spelling {
            url_host: url_host.to_owned(),
            bare_host: bare_host.to_owned(),
            port: 80,
        });
    }
    out
}

fn assert_refused(what: &str, purpose: &str, body: &Value) {
    let text = body.to_string();
    let verb = if text.contains("use the directory") {
        "use the directory"
    } else {
        "connect to"
    };
    assert!(
        text.contains(&format!(
            "refused by the outbound policy: {purpose} may not {verb}"
        )),
        "{what}: {text}"
    );
    assert!(
        text.contains("outbound.allow_")
            || text.contains("outbound.local_target_roots")
            || text.contains("statehouse never connects there"),
        "{what}: the refusal names the setting: {text}"
    );
}

struct Attack {
    s: TestServer,
    admin: String,
    witness: Witness,
    v4_port: u16,
    v6_port: Option<u16>,
    n: usize,
}

impl Attack {
    /// A server with the default policy (plus a root for local targets) and listeners on this
    /// host that count connections.
    async fn start() -> Attack {
        let roots = tempfile::tempdir().unwrap().keep();
        let s = TestServer::start_with_outbound(Arc::new(
            OutboundPolicy::default().with_local_roots(vec![roots.clone()]),
        ))
        .await;
        let admin = s.token(Some("default"), Role::Admin).await;
        let witness = Witness::default();
        let v4 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let v4_port = v4.local_addr().unwrap().port();
        witness.watch_tcp(v4);
        let v6_port = match tokio::net::TcpListener::bind("[::1]:0").await {
            Ok(v6) => {
                let port = v6.local_addr().unwrap().port();
                witness.watch_tcp(v6);
                Some(port)
            }
            Err(_) => None,
        };
        let (status, body) = s
            .api(
                "POST",
                "/workspaces/default/targets",
                Some(&admin),
                Some(json!({"name": "inside", "settings": {"kind": "local", "path": roots}})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        Attack {
            s,
            admin,
            witness,
            v4_port,
            v6_port,
            n: 0,
        }
    }

    fn name(&mut self, prefix: &str) -> String {
        self.n += 1;
        format!("{prefix}-{}", self.n)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.s.api(method, path, Some(&self.admin), body).await
    }

    /// Creates a notifier and tests it: the test answer carries the refusal.
    async fn notifier(&mut self, what: &str, settings: Value) {
        self.create_and_test("notifiers", "n", "notifiers", what, settings)
            .await;
    }

    /// Creates a storage target and tests it: the test answer carries the refusal.
    async fn target(&mut self, what: &str, settings: Value) {
        self.create_and_test("targets", "t", "storage targets", what, settings)
            .await;
    }

    /// Creates a notifier or target under `/workspaces/default/{collection}` and runs its test,
    /// whose answer must carry the refusal for `purpose`.
    async fn create_and_test(
        &mut self,
        collection: &str,
        prefix: &str,
        purpose: &str,
        what: &str,
        settings: Value,
    ) {
        let name = self.name(prefix);
        let (status, body) = self
            .call(
                "POST",
                &format!("/workspaces/default/{collection}"),
                Some(json!({"name": name, "settings": settings})),
            )
            .await;
        assert_eq!(status, 201, "{what}: {body}");
        let (status, body) = self
            .call(
                "POST",
                &format!("/workspaces/default/{collection}/{name}/test"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(body["ok"], false, "{what}: {body}");
        assert_refused(what, purpose, &body);
    }

    /// Registers a database, then checks it, backs it up and asks for a read-only role through
    /// an admin connection to the same place: each is refused.
    async fn database(&mut self, what: &str, connection: Value, admin_url: Option<String>) {
        let name = self.name("db");
        let (status, body) = self
            .call(
                "POST",
                "/workspaces/default/databases",
                Some(json!({
                    "name": name, "target": "inside", "connection": connection,
                    "password": "db-pa55word",
                })),
            )
            .await;
        assert_eq!(status, 201, "{what}: {body}");
        let (_, body) = self
            .call(
                "POST",
                &format!("/workspaces/default/databases/{name}/check"),
                None,
            )
            .await;
        assert_refused(&format!("{what} check"), "databases", &body);
        let (_, body) = self
            .call(
                "POST",
                &format!("/workspaces/default/databases/{name}/backups"),
                None,
            )
            .await;
        assert_refused(&format!("{what} backup"), "databases", &body);
        if let Some(admin_url) = admin_url {
            let (status, body) = self
                .call(
                    "POST",
                    &format!("/workspaces/default/databases/{name}/readonly-role"),
                    Some(json!({"admin_url": admin_url, "role": "reader"})),
                )
                .await;
            assert_eq!(status, 400, "{what} readonly role: {body}");
            assert_refused(&format!("{what} readonly role"), "databases", &body);
        }
    }
}

#[tokio::test]
async fn every_notifier_kind_is_refused_this_host_and_metadata_in_every_spelling() {
    let mut a = Attack::start().await;
    for Spelling {
        url_host,
        bare_host,
        port,
    } in spellings(a.v4_port, a.v6_port)
    {
        let base = format!("http://{url_host}:{port}");
        for kind in ["slack", "discord", "teams", "mattermost"] {
            a.notifier(
                &format!("{kind} {base}"),
                json!({"kind": kind, "webhook_url": format!("{base}/hooks/x")}),
            )
            .await;
        }
        a.notifier(
            &format!("telegram {base}"),
            json!({"kind": "telegram", "bot_token": "123456:ABC-def", "chat_id": 42, "api_base": base}),
        )
        .await;
        a.notifier(
            &format!("ntfy {base}"),
            json!({"kind": "ntfy", "server": base, "topic": "alerts", "access_token": "tk_x"}),
        )
        .await;
        a.notifier(
            &format!("webhook {base}"),
            json!({"kind": "webhook", "url": format!("{base}/in"),
                   "headers": {"Authorization": "Bearer hdr-secret"}}),
        )
        .await;
        a.notifier(
            &format!("email {bare_host}:{port}"),
            json!({"kind": "email", "host": bare_host, "port": port, "security": "none",
                   "from": "statehouse@example.com", "to": ["ops@example.com"]}),
        )
        .await;
    }
    // Private addresses too, by default (nothing listens there; refused before connecting).
    a.notifier(
        "slack to a private address",
        json!({"kind": "slack", "webhook_url": "http://10.20.30.40/hooks/x"}),
    )
    .await;
    assert_eq!(a.witness.seen(), 0, "a listener on this host was contacted");
}

#[tokio::test]
async fn every_target_kind_is_refused_this_host_and_metadata_in_every_spelling() {
    let mut a = Attack::start().await;
    let credential = {
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        json!({
            "type": "service_account",
            "client_email": "backup@statehouse-test.iam.gserviceaccount.com",
            "private_key": key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string()
    };
    for Spelling {
        url_host,
        bare_host,
        port,
    } in spellings(a.v4_port, a.v6_port)
    {
        let base = format!("http://{url_host}:{port}");
        a.target(
            &format!("s3 {base}"),
            json!({"kind": "s3", "bucket": "bkt", "region": "us-east-1", "endpoint": base,
                   "path_style": true, "access_key_id": "AKID", "secret_access_key": "s3-secret"}),
        )
        .await;
        a.target(
            &format!("azblob {base}"),
            json!({"kind": "azblob", "container": "c", "account_name": "acct", "endpoint": base,
                   "account_key": "a2V5LWtleS1rZXk="}),
        )
        .await;
        a.target(
            &format!("gcs {base}"),
            json!({"kind": "gcs", "bucket": "bkt", "endpoint": base, "credential": credential}),
        )
        .await;
        a.target(
            &format!("gdrive {base}"),
            json!({"kind": "gdrive", "root": "backups", "endpoint": base, "access_token": "ya29.x"}),
        )
        .await;
        a.target(
            &format!("webdav {base}"),
            json!({"kind": "webdav", "endpoint": base, "username": "u", "password": "dav-pass"}),
        )
        .await;
        a.target(
            &format!("ftp {url_host}:{port}"),
            json!({"kind": "ftp", "endpoint": format!("ftp://{url_host}:{port}"),
                   "username": "u", "password": "ftp-pass"}),
        )
        .await;
        a.target(
            &format!("sftp {bare_host}:{port}"),
            json!({"kind": "sftp", "host": bare_host, "port": port, "user": "backup",
                   "root": "backups", "known_hosts_strategy": "accept",
                   "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"}),
        )
        .await;
    }
    // Local directories outside the roots, by any path.
    let outside = tempfile::tempdir().unwrap();
    for path in [
        outside.path().display().to_string(),
        "/etc".to_owned(),
        format!("{}/../../etc", outside.path().display()),
    ] {
        a.target(
            &format!("local {path}"),
            json!({"kind": "local", "path": path}),
        )
        .await;
    }
    assert_eq!(a.witness.seen(), 0, "a listener on this host was contacted");
    assert!(
        std::fs::read_dir(outside.path()).unwrap().next().is_none(),
        "nothing may be written outside the roots"
    );
}

#[tokio::test]
async fn databases_are_refused_this_host_metadata_and_unix_sockets() {
    let mut a = Attack::start().await;
    for Spelling {
        url_host,
        bare_host,
        port,
    } in spellings(a.v4_port, a.v6_port)
    {
        a.database(
            &format!("database {bare_host}:{port}"),
            json!({"host": bare_host, "port": port, "database": "shop", "user": "postgres"}),
            Some(format!("postgres://postgres:pw@{url_host}:{port}/shop")),
        )
        .await;
    }
    // A Unix socket directory, as libpq names one (`host=/dir`), with a server listening.
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = tokio::net::UnixListener::bind(socket_dir.path().join(".s.PGSQL.5432")).unwrap();
    a.witness.watch_unix(socket);
    let dir = socket_dir.path().display().to_string();
    a.database(
        "a Unix socket",
        json!({"host": dir, "port": 5432, "database": "shop", "user": "postgres"}),
        None,
    )
    .await;
    assert_eq!(a.witness.seen(), 0, "a listener on this host was contacted");
}

#[tokio::test]
async fn webhooks_are_refused_this_host_and_metadata_in_every_spelling() {
    let a = Attack::start().await;
    let transport = HttpTransport::new(a.s.backups.outbound().clone()).unwrap();
    let mut webhooks = Vec::new();
    for Spelling { url_host, port, .. } in spellings(a.v4_port, a.v6_port) {
        let url = format!("http://{url_host}:{port}/hook");
        let (status, body) = a
            .call(
                "POST",
                "/workspaces/default/webhooks",
                Some(json!({"url": url, "events": ["*"]})),
            )
            .await;
        assert_eq!(status, 201, "{url}: {body}");
        let id = body["webhook"]["id"].as_str().unwrap().to_owned();
        let (status, body) = a
            .call(
                "POST",
                &format!("/workspaces/default/webhooks/{id}/ping"),
                None,
            )
            .await;
        assert_eq!(status, 202, "{url}: {body}");
        webhooks.push((url, id));
    }
    a.s.services
        .deliver_due_webhooks(&transport, 100)
        .await
        .unwrap();
    for (url, id) in webhooks {
        let (status, body) = a
            .call(
                "GET",
                &format!("/workspaces/default/webhooks/{id}/deliveries"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{url}: {body}");
        assert_refused(&url, "webhooks", &body);
    }
    assert_eq!(a.witness.seen(), 0, "a listener on this host was contacted");
}

/// The same destinations work once the configuration allows them: the refusals above are the
/// policy's, not a broken client.
#[tokio::test]
async fn allowing_loopback_in_the_configuration_lets_the_same_requests_through() {
    let s =
        TestServer::start_with_outbound(Arc::new(OutboundPolicy::default().allowing_loopback()))
            .await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let witness = Witness::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    witness.watch_tcp(listener);
    let (status, body) = s
        .api(
            "POST",
            "/workspaces/default/notifiers",
            Some(&admin),
            Some(json!({"name": "local", "settings":
                {"kind": "slack", "webhook_url": format!("http://127.1:{port}/hooks/x")}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, body) = s
        .api(
            "POST",
            "/workspaces/default/notifiers/local/test",
            Some(&admin),
            None,
        )
        .await;
    // The listener closes at once: the one "could not connect" message, after a connection.
    assert_eq!(body["ok"], false, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("could not connect to 127.0.0.1:{port}")),
        "{body}"
    );
    assert_eq!(witness.seen(), 1);
    // Private addresses stay refused to notifiers: allowing loopback allows only loopback.
    let (_, body) = s
        .api(
            "PATCH",
            "/workspaces/default/notifiers/local",
            Some(&admin),
            Some(json!({"settings":
                {"kind": "slack", "webhook_url": "http://192.168.7.7/hooks/x"}})),
        )
        .await;
    assert_eq!(body["name"], "local", "{body}");
    let (_, body) = s
        .api(
            "POST",
            "/workspaces/default/notifiers/local/test",
            Some(&admin),
            None,
        )
        .await;
    assert_refused("private address", "notifiers", &body);
}
