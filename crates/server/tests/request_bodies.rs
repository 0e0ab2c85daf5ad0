//! JSON request bodies as clients really send them: with `application/json`, without a
//! `Content-Type`, or with the `application/x-www-form-urlencoded` that `curl -d` sends by
//! default — all read as JSON. Other declared types are a `415` with a reason; non-JSON a `400`.
//! Refused bodies change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use serde_json::Value;
use statehouse_core::access::Role;

async fn create_workspace(
    s: &TestServer,
    token: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut request = s
        .client
        .post(s.api_url("/workspaces"))
        .bearer_auth(token)
        .body(body.to_owned());
    if let Some(t) = content_type {
        request = request.header("content-type", t);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn json_bodies_are_read_with_json_none_or_curls_form_type() {
    let s = TestServer::start().await;
    let root = s.token(None, Role::Admin).await;
    for (content_type, name) in [
        (Some("application/json"), "typed"),
        (None, "untyped"),
        (Some("application/x-www-form-urlencoded"), "curl-default"),
        (Some("application/json; charset=utf-8"), "with-charset"),
    ] {
        let body = format!(r#"{{"name": "{name}"}}"#);
        let (status, answer) = create_workspace(&s, &root, content_type, &body).await;
        assert_eq!(status, 201, "{content_type:?}: {answer}");
        assert_eq!(answer["name"], name);
    }
}

#[tokio::test]
async fn other_types_and_non_json_are_refused_with_reasons() {
    let s = TestServer::start().await;
    let root = s.token(None, Role::Admin).await;
    let (status, answer) =
        create_workspace(&s, &root, Some("text/plain"), r#"{"name": "plain"}"#).await;
    assert_eq!(status, 415, "{answer}");
    assert_eq!(answer["error"]["code"], "unsupported_media_type");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("text/plain") && message.contains("application/json"),
        "{message}"
    );

    let (status, answer) = create_workspace(
        &s,
        &root,
        Some("application/x-www-form-urlencoded"),
        "name=form",
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "bad_request");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body"),
        "{answer}"
    );
    for name in ["plain", "form"] {
        let (status, _) = s
            .api("GET", &format!("/workspaces/{name}"), Some(&root), None)
            .await;
        assert_eq!(status, 404, "{name} was not created");
    }
}
