//! Every listing answers one shape, `{"items": [...], "next_cursor": …}`, paged on the server
//! with `cursor` and `limit` — the ones that used to be bare arrays included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, state_json};
use serde_json::{Value, json};
use statehouse_core::access::Role;

/// Walks a listing one item per page; returns each item's `key` field, in order.
async fn walk(s: &TestServer, token: &str, path: &str, key: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=1&cursor={c}"),
            None => format!("{path}{sep}limit=1"),
        };
        let (status, page) = s.api("GET", &url, Some(token), None).await;
        assert_eq!(status, 200, "GET {url}: {page}");
        let items = page["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{url}: {page}"));
        assert_eq!(items.len(), 1, "GET {url}: one item per page: {page}");
        seen.push(items[0][key].as_str().unwrap().to_owned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return seen,
        }
        assert!(seen.len() < 100, "{path}: the cursor never ends");
    }
}

#[tokio::test]
async fn every_listing_is_a_page_walked_by_its_cursor() {
    let s = TestServer::start().await;
    let root = s.token(None, Role::Admin).await;
    s.user("bob", &[("default", Role::Viewer)]).await;
    s.user("carol", &[("default", Role::Editor)]).await;
    s.user_token("carol", None, None).await;
    for name in ["gone-a", "gone-b", "gone-c"] {
        let path = format!("default/{name}");
        let body = state_json(1, name, "x");
        assert_eq!(s.send("POST", &path, Some(&root), Some(&body)).await.0, 200);
        assert_eq!(s.send("DELETE", &path, Some(&root), None).await.0, 200);
        s.clock.advance_millis(1_000);
    }
    for hook in ["a", "b"] {
        let body = json!({"url": format!("https://hooks.example.com/{hook}"), "events": ["*"]});
        let (status, created) = s
            .api(
                "POST",
                "/workspaces/default/webhooks",
                Some(&root),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        s.clock.advance_millis(1_000);
    }

    for (path, key) in [
        ("/workspaces", "name"),
        ("/users", "name"),
        ("/tokens", "id"),
        ("/tokens?user=carol", "id"),
        ("/workspaces/default/members", "user"),
        ("/workspaces/default/deleted-states", "id"),
        ("/workspaces/default/webhooks", "id"),
    ] {
        let (status, whole) = s.api("GET", path, Some(&root), None).await;
        assert_eq!(status, 200, "GET {path}: {whole}");
        let items = whole["items"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {path} is not a page: {whole}"));
        assert!(whole["next_cursor"].is_null(), "GET {path}: {whole}");
        let expected: Vec<String> = items
            .iter()
            .map(|i| i[key].as_str().unwrap().to_owned())
            .collect();
        if path != "/tokens?user=carol" {
            assert!(expected.len() >= 2, "GET {path}: too few to page: {whole}");
        }
        assert_eq!(walk(&s, &root, path, key).await, expected, "GET {path}");
    }
    let (_, deleted) = s
        .api(
            "GET",
            "/workspaces/default/deleted-states",
            Some(&root),
            None,
        )
        .await;
    let names: Vec<&str> = deleted["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["gone-c", "gone-b", "gone-a"],
        "most recently deleted first"
    );

    for path in [
        "/workspaces/default/databases",
        "/workspaces/default/targets",
        "/workspaces/default/notifiers",
    ] {
        let (status, page) = s.api("GET", path, Some(&root), None).await;
        assert_eq!(status, 200, "GET {path}: {page}");
        assert_eq!(
            page,
            json!({"items": [], "next_cursor": null}),
            "GET {path}"
        );
    }
    for bad in [
        "/workspaces?limit=0",
        "/users?limit=1001",
        "/tokens?cursor=%21%21",
    ] {
        let (status, body) = s.api("GET", bad, Some(&root), None).await;
        assert_eq!(status, 400, "GET {bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
    }
}

#[tokio::test]
async fn a_token_listing_filters_by_user_on_the_server() {
    let s = TestServer::start().await;
    let root = s.token(None, Role::Admin).await;
    s.user("dora", &[("default", Role::Viewer)]).await;
    s.user_token("dora", None, None).await;
    s.user_token("dora", Some("default"), Some(Role::Viewer))
        .await;
    let (_, page) = s.api("GET", "/tokens?user=DORA", Some(&root), None).await;
    let owners: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["user"])
        .collect();
    assert_eq!(owners, [&json!("dora"), &json!("dora")], "{page}");
}
