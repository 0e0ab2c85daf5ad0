//! `/api/v1/workspaces/{ws}/s3-keys` on both stores: the secret is in the create answer only,
//! listings never have it, a revoked key stops being usable, a viewer cannot create keys,
//! hostile or wrong input is refused with a reason and stores nothing, and neither an S3 key
//! nor its secret works as a bearer token on the API or the state backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use common::engines::Engine;
use serde_json::{Value, json};
use statehouse_core::access::Role;

crate::on_both_engines!(
    the_secret_is_shown_once_and_a_revoked_key_stops_working,
    viewers_cannot_create_and_user_keys_are_their_own,
    bad_input_is_refused_with_a_reason_and_stores_nothing,
    s3_keys_are_no_bearer_tokens,
);

const KEYS: &str = "/workspaces/default/s3-keys";

fn message(body: &Value) -> String {
    body["error"]["message"].as_str().unwrap_or("").to_owned()
}

async fn listed(s: &TestServer, token: &str) -> Value {
    let (status, page) = s.api("GET", KEYS, Some(token), None).await;
    assert_eq!(status, 200, "{page}");
    page
}

async fn the_secret_is_shown_once_and_a_revoked_key_stops_working(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let (status, created) = s
        .api(
            "POST",
            KEYS,
            Some(&admin),
            Some(json!({"name": "pulumi", "role": "editor", "expires_in_seconds": 3600})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["access_key_id"].as_str().unwrap().to_owned();
    let secret = created["secret_access_key"].as_str().unwrap().to_owned();
    assert!(id.starts_with("SHK") && id.len() == 20, "{id}");
    assert_eq!(secret.len(), 40);
    let key = &created["key"];
    assert_eq!(key["access_key_id"], id.as_str());
    assert_eq!(key["name"], "pulumi");
    assert_eq!(key["kind"], "service");
    assert_eq!(key["role"], "editor");
    assert_eq!(key["workspace"], "default");
    assert_eq!(key["status"], "active");
    assert!(key["expires_at"].is_string(), "{key}");

    let page = listed(&s, &admin).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["items"][0]["access_key_id"], id.as_str());
    assert!(
        !page.to_string().contains(&secret),
        "the list never has the secret"
    );
    let creds = s.services.s3_key_credentials(&id, None).await.unwrap();
    assert_eq!(creds.map(|c| c.secret.to_string()), Some(secret.clone()));

    let (status, revoked) = s
        .api("DELETE", &format!("{KEYS}/{id}"), Some(&admin), None)
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    assert!(!revoked.to_string().contains(&secret));
    assert!(s.services.s3_key_credentials(&id, None).await.is_err());
    let (status, again) = s
        .api("DELETE", &format!("{KEYS}/{id}"), Some(&admin), None)
        .await;
    assert_eq!(status, 409, "{again}");
    let page = listed(&s, &admin).await;
    assert_eq!(page["items"][0]["status"], "revoked", "{page}");
    assert!(page["items"][0]["revoked_at"].is_string());

    // Nothing in the audit log (export) or the token list shows the secret.
    let instance = s.token(None, Role::Admin).await;
    let (_, audit) = s.api("GET", "/audit", Some(&instance), None).await;
    assert!(audit.to_string().contains("s3_key.create"), "{audit}");
    assert!(!audit.to_string().contains(&secret));
    let (_, tokens) = s.api("GET", "/tokens", Some(&instance), None).await;
    assert!(
        !tokens.to_string().contains(&id),
        "S3 keys are not API tokens: {tokens}"
    );
}

async fn viewers_cannot_create_and_user_keys_are_their_own(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    let viewer = s.token(Some("default"), Role::Viewer).await;
    let (status, body) = s
        .api(
            "POST",
            KEYS,
            Some(&viewer),
            Some(json!({"name": "x", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("admin"), "{body}");

    // A user with an unrestricted token makes keys of its own, capped below its role.
    s.user("alice", &[("default", Role::Editor)]).await;
    let alice = s.user_token("alice", None, None).await;
    let (status, created) = s
        .api(
            "POST",
            KEYS,
            Some(&alice),
            Some(json!({"name": "laptop", "kind": "user", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["key"]["kind"], "user");
    assert_eq!(created["key"]["user"], "alice");
    let (status, body) = s
        .api(
            "POST",
            KEYS,
            Some(&alice),
            Some(json!({"name": "svc", "role": "editor"})),
        )
        .await;
    assert_eq!(status, 403, "an editor makes no service keys: {body}");
    assert_eq!(
        listed(&s, &viewer).await["items"],
        json!([]),
        "not the viewer's"
    );
    let mine = listed(&s, &alice).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1, "{mine}");
}

async fn bad_input_is_refused_with_a_reason_and_stores_nothing(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let long = "n".repeat(101);
    let cases = [
        (json!({"name": "nul\u{0}byte", "role": "editor"}), "name"),
        (json!({"name": "k", "role": "owner"}), "unknown role"),
        (json!({"name": long, "role": "editor"}), "1-100"),
        (json!({"name": "", "role": "editor"}), "1-100"),
        (json!({"name": "k"}), "needs a role"),
        (
            json!({"name": "k", "role": "editor", "kind": "instance"}),
            "kind",
        ),
        (
            json!({"name": "k", "role": "editor", "kind": "service", "user": "bob"}),
            "user",
        ),
        (
            json!({"name": "k", "role": "editor", "expires_in_seconds": 0}),
            "future",
        ),
        (
            json!({"name": "k", "role": "editor", "secret": "mine"}),
            "secret",
        ),
    ];
    for (body, reason) in cases {
        let (status, answer) = s.api("POST", KEYS, Some(&admin), Some(body.clone())).await;
        assert!((400..500).contains(&status), "{body}: {status} {answer}");
        assert!(message(&answer).contains(reason), "{body}: {answer}");
    }
    let (status, answer) = s
        .api(
            "POST",
            "/workspaces/nope/s3-keys",
            Some(&admin),
            Some(json!({"name": "k", "role": "editor"})),
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    for (bad, want) in [
        ("SHK00000000000000000", 404),
        ("not-a-key", 404),
        ("SHK%00", 400),
    ] {
        let (status, answer) = s
            .api("DELETE", &format!("{KEYS}/{bad}"), Some(&admin), None)
            .await;
        assert_eq!(status, want, "{bad}: {answer}");
        assert!(!message(&answer).is_empty(), "{answer}");
    }
    let op = statehouse_core::access::Principal::local_operator();
    assert!(
        s.services
            .list_s3_keys(&op, "default")
            .await
            .unwrap()
            .is_empty(),
        "nothing was stored"
    );
}

async fn s3_keys_are_no_bearer_tokens(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let (_, created) = s
        .api(
            "POST",
            KEYS,
            Some(&admin),
            Some(json!({"name": "k", "role": "admin"})),
        )
        .await;
    let id = created["access_key_id"].as_str().unwrap();
    let secret = created["secret_access_key"].as_str().unwrap();
    for presented in [id, secret] {
        let (status, _) = s
            .api("GET", "/workspaces/default", Some(presented), None)
            .await;
        assert_eq!(status, 401, "{presented} on the API");
        let (status, _) = s.send("GET", "default/net", Some(presented), None).await;
        assert_eq!(status, 401, "{presented} on /tf");
    }
}
