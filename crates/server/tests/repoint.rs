//! Stored secrets cannot be re-pointed: a change of where a target's, notifier's or database's
//! secrets are sent must give those secrets again in the same request (400 naming the fields
//! otherwise, with nothing changed), so that a workspace admin cannot send secrets someone
//! else stored to a server of their own by changing an endpoint and pressing "test".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use common::TestServer;
use serde_json::{Value, json};
use statehouse_core::access::Role;

/// An HTTP receiver on 127.0.0.1 that records each request's `Authorization` header.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<String>>>,
    url: String,
}

impl Receiver {
    async fn start() -> Receiver {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let record = seen.clone();
        let app = Router::new().fallback(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                record.lock().unwrap().push(auth);
                StatusCode::OK
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { seen, url }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

async fn server() -> (TestServer, String) {
    let s = TestServer::start().await;
    let admin = s.token(Some("default"), Role::Admin).await;
    (s, admin)
}

fn refused_for(body: &Value, moved: &str, missing: &str) {
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("changing {moved} of"))
            && message.contains(&format!("give {missing} again in the same change")),
        "{body}"
    );
}

#[tokio::test]
async fn a_notifier_url_cannot_take_the_stored_headers_elsewhere() {
    let (s, admin) = server().await;
    let (owner, attacker) = (Receiver::start().await, Receiver::start().await);
    let (status, body) = s
        .api(
            "POST",
            "/workspaces/default/notifiers",
            Some(&admin),
            Some(json!({"name": "hook", "settings": {
                "kind": "webhook", "url": format!("{}/in", owner.url),
                "headers": {"Authorization": "Bearer owner-token"}}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // Another URL without the headers: refused, and nothing changes.
    let (status, body) = s
        .api(
            "PATCH",
            "/workspaces/default/notifiers/hook",
            Some(&admin),
            Some(json!({"settings": {"kind": "webhook", "url": format!("{}/in", attacker.url)}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    refused_for(&body, "url", "headers");
    let (_, tested) = s
        .api(
            "POST",
            "/workspaces/default/notifiers/hook/test",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(tested["ok"], true, "{tested}");
    assert_eq!(owner.seen(), vec!["Bearer owner-token"]);
    assert!(attacker.seen().is_empty(), "{:?}", attacker.seen());

    // With the headers given again, the change goes through and sends what was given.
    let (status, body) = s
        .api(
            "PATCH",
            "/workspaces/default/notifiers/hook",
            Some(&admin),
            Some(
                json!({"settings": {"kind": "webhook", "url": format!("{}/in", attacker.url),
                "headers": {"Authorization": "Bearer their-own"}}}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    s.api(
        "POST",
        "/workspaces/default/notifiers/hook/test",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(attacker.seen(), vec!["Bearer their-own"]);

    // A change that keeps the URL keeps the headers.
    let (status, body) = s
        .api(
            "PATCH",
            "/workspaces/default/notifiers/hook",
            Some(&admin),
            Some(
                json!({"settings": {"kind": "webhook", "url": format!("{}/in", attacker.url),
                "method": "PUT"}}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    s.api(
        "POST",
        "/workspaces/default/notifiers/hook/test",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        attacker.seen(),
        vec!["Bearer their-own", "Bearer their-own"]
    );
}

#[tokio::test]
async fn notifier_hosts_servers_and_chats_need_their_secrets_again() {
    let (s, admin) = server().await;
    let create = |name: &str, settings: Value| {
        let s = &s;
        let admin = admin.clone();
        let name = name.to_owned();
        async move {
            let (status, body) = s
                .api(
                    "POST",
                    "/workspaces/default/notifiers",
                    Some(&admin),
                    Some(json!({"name": name, "settings": settings})),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
    };
    let email = json!({"kind": "email", "host": "smtp.example.com", "port": 587,
        "username": "alice", "password": "mail-pa55word",
        "from": "statehouse@example.com", "to": ["ops@example.com"]});
    create("mail", email.clone()).await;
    create(
        "push",
        json!({"kind": "ntfy", "server": "https://ntfy.example.com", "topic": "alerts",
               "access_token": "tk_secret"}),
    )
    .await;
    let cases = [
        (
            "mail",
            json!({"kind": "email", "host": "mail.attacker.example", "port": 587,
                   "username": "alice", "from": "statehouse@example.com",
                   "to": ["ops@example.com"]}),
            "host",
            "password",
        ),
        (
            "mail",
            json!({"kind": "email", "host": "smtp.example.com", "port": 2525,
                   "username": "alice", "from": "statehouse@example.com",
                   "to": ["ops@example.com"]}),
            "port",
            "password",
        ),
        (
            "push",
            json!({"kind": "ntfy", "server": "https://ntfy.attacker.example", "topic": "alerts"}),
            "server",
            "access_token",
        ),
    ];
    for (name, settings, moved, missing) in cases {
        let (status, body) = s
            .api(
                "PATCH",
                &format!("/workspaces/default/notifiers/{name}"),
                Some(&admin),
                Some(json!({"settings": settings})),
            )
            .await;
        assert_eq!(status, 400, "{name}: {body}");
        refused_for(&body, moved, missing);
    }
    // Nothing changed; other fields change freely; with the secret the host changes.
    let (_, shown) = s
        .api(
            "GET",
            "/workspaces/default/notifiers/mail",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(shown["settings"]["host"], "smtp.example.com", "{shown}");
    let mut recipients = email.clone();
    recipients["to"] = json!(["dba@example.com"]);
    recipients.as_object_mut().unwrap().remove("password");
    let (status, body) = s
        .api(
            "PATCH",
            "/workspaces/default/notifiers/mail",
            Some(&admin),
            Some(json!({"settings": recipients})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["secrets_set"], json!(["password"]), "{body}");
    let mut moved = email;
    moved["host"] = json!("smtp2.example.com");
    moved["password"] = json!("new-pa55word");
    let (status, body) = s
        .api(
            "PATCH",
            "/workspaces/default/notifiers/mail",
            Some(&admin),
            Some(json!({"settings": moved})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_target_endpoint_cannot_take_the_stored_password_elsewhere() {
    let (s, admin) = server().await;
    let (owner, attacker) = (Receiver::start().await, Receiver::start().await);
    let (status, body) = s
        .api(
            "POST",
            "/workspaces/default/targets",
            Some(&admin),
            Some(
                json!({"name": "dav", "settings": {"kind": "webdav", "endpoint": owner.url,
                "username": "backup", "password": "dav-pa55word"}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s
        .api(
            "PATCH",
            "/workspaces/default/targets/dav",
            Some(&admin),
            Some(
                json!({"settings": {"kind": "webdav", "endpoint": attacker.url,
                "username": "backup"}}),
            ),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    refused_for(&body, "endpoint", "password");
    s.api(
        "POST",
        "/workspaces/default/targets/dav/test",
        Some(&admin),
        None,
    )
    .await;
    assert!(attacker.seen().is_empty(), "{:?}", attacker.seen());
    assert!(
        !owner.seen().is_empty(),
        "the test still goes to the stored endpoint"
    );

    for (settings, moved, missing) in [
        (
            json!({"kind": "s3", "bucket": "other-bucket", "region": "us-east-1",
                   "access_key_id": "AKID"}),
            "bucket",
            "secret_access_key",
        ),
        (
            json!({"kind": "s3", "bucket": "backups", "region": "us-east-1",
                   "endpoint": "https://s3.attacker.example", "access_key_id": "AKID"}),
            "endpoint",
            "secret_access_key",
        ),
    ] {
        let (status, body) = s
            .api(
                "POST",
                "/workspaces/default/targets",
                Some(&admin),
                Some(
                    json!({"name": "s3", "settings": {"kind": "s3", "bucket": "backups",
                    "region": "us-east-1", "access_key_id": "AKID",
                    "secret_access_key": "s3-secret"}}),
                ),
            )
            .await;
        assert!(status == 201 || status == 409, "{body}");
        let (status, body) = s
            .api(
                "PATCH",
                "/workspaces/default/targets/s3",
                Some(&admin),
                Some(json!({"settings": settings})),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        refused_for(&body, moved, missing);
    }
    // The prefix says nothing about where the keys go: it changes without them.
    let (status, body) = s
        .api(
            "PATCH",
            "/workspaces/default/targets/s3",
            Some(&admin),
            Some(
                json!({"settings": {"kind": "s3", "bucket": "backups", "region": "us-east-1",
                "access_key_id": "AKID", "prefix": "pg"}}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["secrets_set"], json!(["secret_access_key"]), "{body}");
    // Another kind starts without the old kind's secrets.
    let (status, body) = s
        .api(
            "PATCH",
            "/workspaces/default/targets/dav",
            Some(&admin),
            Some(json!({"settings": {"kind": "ftp", "endpoint": "ftp://ftp.example.com"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["secrets_set"], json!([]), "{body}");
}

#[tokio::test]
async fn a_database_host_or_port_change_needs_the_password_again() {
    let (s, admin) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let (status, body) = s
        .api(
            "POST",
            "/workspaces/default/targets",
            Some(&admin),
            Some(json!({"name": "local", "settings": {"kind": "local", "path": dir.path()}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s
        .api(
            "POST",
            "/workspaces/default/databases",
            Some(&admin),
            Some(json!({"name": "shop", "target": "local",
                "url": "postgres://backup:db-pa55word@db.example.com:5432/shop"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for change in [
        json!({"url": "postgres://backup@db.attacker.example:5432/shop"}),
        json!({"connection": {"host": "db.example.com", "port": 6543, "database": "shop",
                              "user": "backup"}}),
    ] {
        let (status, body) = s
            .api(
                "PATCH",
                "/workspaces/default/databases/shop",
                Some(&admin),
                Some(change.clone()),
            )
            .await;
        assert_eq!(status, 400, "{change}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("would send its stored password elsewhere"),
            "{body}"
        );
    }
    let (_, shown) = s
        .api(
            "GET",
            "/workspaces/default/databases/shop",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(shown["settings"]["connection"]["host"], "db.example.com");
    // The user or database change without it; host and port with it, or dropping it.
    for (change, has_password) in [
        (
            json!({"url": "postgres://reader@db.example.com:5432/shop"}),
            true,
        ),
        (
            json!({"url": "postgres://reader:new-pa55word@db2.example.com:5432/shop"}),
            true,
        ),
        (
            json!({"url": "postgres://reader@db3.example.com:5432/shop", "password": ""}),
            false,
        ),
    ] {
        let (status, body) = s
            .api(
                "PATCH",
                "/workspaces/default/databases/shop",
                Some(&admin),
                Some(change.clone()),
            )
            .await;
        assert_eq!(status, 200, "{change}: {body}");
        assert_eq!(body["has_password"], has_password, "{change}: {body}");
    }
}
