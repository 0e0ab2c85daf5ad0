//! Outgoing webhooks against a local receiver: signatures, filters, disabled webhooks, retries
//! on the backoff schedule (driven by a fake clock), give-up, redelivery and ping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{TestServer, lock_info, state_json};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use statehouse_core::access::Role;
use statehouse_server::webhook_sender::HttpTransport;

const MINUTE: i64 = 60_000;

#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: String,
}

/// A receiver on 127.0.0.1 that records every POST and answers with the next scripted status
/// (200 once the script is used up).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        let r = receiver.clone();
        let app = Router::new().route(
            "/{hook}",
            post(
                move |axum::extract::Path(hook): axum::extract::Path<String>,
                      headers: HeaderMap,
                      body: String| {
                    let r = r.clone();
                    async move {
                        r.got.lock().unwrap().push(Received {
                            path: hook,
                            headers,
                            body,
                        });
                        let mut script = r.script.lock().unwrap();
                        let code = if script.is_empty() {
                            200
                        } else {
                            script.remove(0)
                        };
                        StatusCode::from_u16(code).unwrap()
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }

    fn answer(&self, codes: &[u16]) {
        *self.script.lock().unwrap() = codes.to_vec();
    }
}

/// What a receiver does: recompute the HMAC of "<timestamp>.<body>" with the secret.
fn signature_ok(secret: &str, r: &Received) -> bool {
    let timestamp = r.headers["x-statehouse-timestamp"].to_str().unwrap();
    let given = r.headers["x-statehouse-signature-256"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{}", r.body).as_bytes());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    expected == given
}

async fn create_hook(s: &TestServer, token: &str, body: Value) -> (String, String) {
    let (status, created) = s
        .api(
            "POST",
            "/workspaces/default/webhooks",
            Some(token),
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    (
        created["webhook"]["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

async fn deliver(s: &TestServer) -> usize {
    s.services.flush_journal().await;
    s.services
        .deliver_due_webhooks(&HttpTransport::new(common::local_outbound()).unwrap(), 100)
        .await
        .unwrap()
}

#[tokio::test]
async fn events_are_delivered_signed_to_matching_enabled_webhooks() {
    let s = TestServer::start().await;
    let (receiver, url) = Receiver::start().await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let (locks, locks_secret) = create_hook(
        &s,
        &admin,
        json!({"url": format!("{url}/locks"), "events": ["lock.*"], "description": "lock watcher"}),
    )
    .await;
    let (writes, writes_secret) = create_hook(
        &s,
        &admin,
        json!({"url": format!("{url}/writes"), "events": ["state.written"]}),
    )
    .await;
    create_hook(
        &s,
        &admin,
        json!({"url": format!("{url}/off"), "events": ["*"], "enabled": false}),
    )
    .await;
    assert_ne!(locks_secret, writes_secret);
    assert!(locks_secret.starts_with("whsec_"));

    s.send(
        "POST",
        "default/app",
        Some(&editor),
        Some(&state_json(1, "lin", "a")),
    )
    .await;
    s.send(
        "LOCK",
        "default/app",
        Some(&editor),
        Some(&lock_info("L1", "me")),
    )
    .await;
    assert_eq!(deliver(&s).await, 2);
    let mut got = receiver.take();
    got.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(
        got.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["locks", "writes"],
        "filters apply; disabled gets nothing"
    );
    let lock = &got[0];
    assert!(
        signature_ok(&locks_secret, lock),
        "signature verifies with the webhook's secret"
    );
    assert!(!signature_ok(&writes_secret, lock), "and only with it");
    assert_eq!(lock.headers["x-statehouse-event"], "lock.acquired");
    assert_eq!(lock.headers["content-type"], "application/json");
    let now_secs = s.services.now().millis() / 1_000;
    assert_eq!(
        lock.headers["x-statehouse-timestamp"],
        now_secs.to_string().as_str()
    );
    let body: Value = serde_json::from_str(&lock.body).unwrap();
    assert_eq!(body["event"], "lock.acquired");
    assert_eq!(body["workspace"], "default");
    assert_eq!(body["subject"], "app");
    assert_eq!(body["payload"]["lock_id"], "L1");
    assert_eq!(body["payload"]["info"]["Who"], "me");
    let delivery_id = lock.headers["x-statehouse-delivery"]
        .to_str()
        .unwrap()
        .to_owned();
    let write: Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(
        (write["event"].as_str(), write["payload"]["serial"].as_i64()),
        (Some("state.written"), Some(1))
    );
    assert!(signature_ok(&writes_secret, &got[1]));

    assert_eq!(deliver(&s).await, 0, "delivered once");
    let (status, log) = s
        .api(
            "GET",
            &format!("/workspaces/default/webhooks/{locks}/deliveries"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["items"][0]["id"], delivery_id.as_str());
    assert_eq!(log["items"][0]["status"], "delivered");
    let (_, detail) = s
        .api(
            "GET",
            &format!("/workspaces/default/webhooks/{locks}/deliveries/{delivery_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(detail["attempts"][0]["status_code"], 200);
    assert_eq!(detail["body"].as_str(), Some(lock.body.as_str()));

    // Redelivery sends the same body again under a new delivery id.
    let (status, again) = s
        .api(
            "POST",
            &format!("/workspaces/default/webhooks/{locks}/deliveries/{delivery_id}/redeliver"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["redelivery_of"], delivery_id.as_str());
    assert_eq!(deliver(&s).await, 1);
    let re = receiver.take();
    assert_eq!(re[0].body, lock.body);
    assert_ne!(re[0].headers["x-statehouse-delivery"], delivery_id.as_str());

    // Ping reaches that webhook only; disabling stops deliveries.
    let (status, _) = s
        .api(
            "POST",
            &format!("/workspaces/default/webhooks/{writes}/ping"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(deliver(&s).await, 1);
    let ping = receiver.take();
    assert_eq!(
        (
            ping[0].path.as_str(),
            ping[0].headers["x-statehouse-event"].to_str().unwrap()
        ),
        ("writes", "ping")
    );
    assert!(signature_ok(&writes_secret, &ping[0]));
    let (status, _) = s
        .api(
            "PATCH",
            &format!("/workspaces/default/webhooks/{locks}"),
            Some(&admin),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200);
    s.send(
        "UNLOCK",
        "default/app",
        Some(&editor),
        Some(&lock_info("L1", "me")),
    )
    .await;
    assert_eq!(deliver(&s).await, 0, "a disabled webhook gets nothing");
    assert!(receiver.take().is_empty());
}

#[tokio::test]
async fn failed_deliveries_retry_on_the_backoff_schedule_then_give_up() {
    let s = TestServer::start().await;
    let (receiver, url) = Receiver::start().await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let (hook, _) = create_hook(
        &s,
        &admin,
        json!({"url": format!("{url}/h"), "events": ["*"]}),
    )
    .await;
    receiver.answer(&[500, 503]);
    s.send(
        "LOCK",
        "default/app",
        Some(&editor),
        Some(&lock_info("L1", "me")),
    )
    .await;
    assert_eq!(deliver(&s).await, 1);
    assert_eq!(deliver(&s).await, 0, "not retried before its time");
    s.clock.advance_millis(3 * MINUTE - 1);
    assert_eq!(deliver(&s).await, 0);
    s.clock.advance_millis(1);
    assert_eq!(deliver(&s).await, 1, "second attempt 3 minutes later");
    s.clock.advance_millis(6 * MINUTE - 1);
    assert_eq!(deliver(&s).await, 0);
    s.clock.advance_millis(1);
    assert_eq!(
        deliver(&s).await,
        1,
        "third attempt 6 minutes after the second"
    );
    let got = receiver.take();
    assert_eq!(got.len(), 3);
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.headers["x-statehouse-delivery"].clone())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one delivery, retried");
    let (_, log) = s
        .api(
            "GET",
            &format!("/workspaces/default/webhooks/{hook}/deliveries"),
            Some(&admin),
            None,
        )
        .await;
    let d = &log["items"][0];
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("delivered"), Some(3))
    );
    let id = d["id"].as_str().unwrap();
    let (_, detail) = s
        .api(
            "GET",
            &format!("/workspaces/default/webhooks/{hook}/deliveries/{id}"),
            Some(&admin),
            None,
        )
        .await;
    let codes: Vec<_> = detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 503, 200]);
    assert_eq!(detail["attempts"][0]["error"], "receiver answered HTTP 500");

    // A receiver that never answers 2xx: ten attempts, then the delivery is given up.
    receiver.answer(&[500; 20]);
    s.send(
        "UNLOCK",
        "default/app",
        Some(&editor),
        Some(&lock_info("L1", "me")),
    )
    .await;
    let mut attempts = 0;
    for _ in 0..40 {
        attempts += deliver(&s).await;
        s.clock.advance_millis(12 * 60 * MINUTE);
    }
    assert_eq!(attempts, 10);
    let (_, log) = s
        .api(
            "GET",
            &format!("/workspaces/default/webhooks/{hook}/deliveries"),
            Some(&admin),
            None,
        )
        .await;
    let d = &log["items"][0];
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("failed"), Some(10))
    );
    assert!(d["next_attempt_at"].is_null());
}

#[tokio::test]
async fn unreachable_receivers_are_logged_and_bad_webhooks_refused() {
    let s = TestServer::start().await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let viewer = s.token(Some("default"), Role::Viewer).await;
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/gone", closed.local_addr().unwrap());
    drop(closed);
    let (hook, _) = create_hook(
        &s,
        &admin,
        json!({"url": dead, "events": ["lock.acquired"]}),
    )
    .await;
    s.send(
        "LOCK",
        "default/app",
        Some(&editor),
        Some(&lock_info("L1", "me")),
    )
    .await;
    assert_eq!(deliver(&s).await, 1);
    let (_, log) = s
        .api(
            "GET",
            &format!("/workspaces/default/webhooks/{hook}/deliveries"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(log["items"][0]["status"], "pending");
    assert!(
        log["items"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{log}"
    );

    for (body, why) in [
        (
            json!({"url": "ftp://x.example/", "events": ["*"]}),
            "scheme",
        ),
        (
            json!({"url": "https://u:p@x.example/", "events": ["*"]}),
            "credentials",
        ),
        (
            json!({"url": "https://x.example/", "events": ["state.exploded"]}),
            "kind",
        ),
        (
            json!({"url": "https://x.example/", "events": []}),
            "empty filter",
        ),
        (
            json!({"url": "https://x.example/", "events": ["*"], "secret": "mine"}),
            "unknown field",
        ),
    ] {
        let (status, answer) = s
            .api(
                "POST",
                "/workspaces/default/webhooks",
                Some(&admin),
                Some(body),
            )
            .await;
        assert_eq!(status, 400, "{why}: {answer}");
    }
    let (status, _) = s
        .api(
            "POST",
            "/workspaces/default/webhooks",
            Some(&viewer),
            Some(json!({"url": "https://x.example/", "events": ["*"]})),
        )
        .await;
    assert_eq!(status, 403);
    let (_, listed) = s
        .api("GET", "/workspaces/default/webhooks", Some(&admin), None)
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(
        listed["items"][0].get("secret").is_none(),
        "secrets are never listed"
    );
    let (status, rotated) = s
        .api(
            "PATCH",
            &format!("/workspaces/default/webhooks/{hook}"),
            Some(&admin),
            Some(json!({"rotate_secret": true})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(rotated["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(
        s.api(
            "DELETE",
            &format!("/workspaces/default/webhooks/{hook}"),
            Some(&admin),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        s.api(
            "GET",
            &format!("/workspaces/default/webhooks/{hook}"),
            Some(&admin),
            None
        )
        .await
        .0,
        404
    );
}
