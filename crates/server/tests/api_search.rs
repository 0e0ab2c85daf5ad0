//! Resource search over HTTP: states written through the Terraform backend are indexed, found
//! by field with exact and prefix matches, paged, limited to what the caller may read, and
//! client-encrypted states are reported as not indexed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use serde_json::{Value, json};
use statehouse_core::access::Role;

const AWS_V1: &[u8] = include_bytes!("../../core/tests/fixtures/tfstate/aws-v1.tfstate");
const AWS_V2: &[u8] = include_bytes!("../../core/tests/fixtures/tfstate/aws-v2.tfstate");
const ENCRYPTED: &[u8] = br#"{"serial":3,"lineage":"l","meta":{"key_provider.pbkdf2.x":"e30="},"encrypted_data":"AAAA","encryption_version":"v0"}"#;

async fn post(s: &TestServer, token: &str, path: &str, body: &[u8]) {
    let (status, text) = s.send("POST", path, Some(token), Some(body)).await;
    assert_eq!(status, 200, "{text}");
}

async fn search(s: &TestServer, token: &str, query: &str) -> Value {
    let (status, body) = s
        .api(
            "GET",
            &format!("/search/resources?{query}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

fn addresses(page: &Value) -> Vec<String> {
    let mut found: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap().to_owned())
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn states_written_by_terraform_are_searchable() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    post(&s, &editor, "default/prod/app", AWS_V1).await;
    s.clock.advance_millis(60_000);
    post(&s, &editor, "default/prod/app", AWS_V2).await;

    let page = search(&s, &editor, "type=aws_instance").await;
    assert_eq!(
        addresses(&page),
        [
            "aws_instance.web[0]",
            "aws_instance.web[1]",
            "aws_instance.web[2]"
        ]
    );
    let items = page["items"].as_array().unwrap();
    let web2 = items
        .iter()
        .find(|i| i["address"] == "aws_instance.web[2]")
        .unwrap();
    assert_eq!(web2["workspace"], "default");
    assert_eq!(web2["state"], "prod/app");
    assert_eq!(web2["mode"], "managed");
    assert_eq!(web2["type"], "aws_instance");
    assert_eq!(web2["name"], "web");
    assert_eq!(web2["module"], "");
    assert_eq!(
        web2["provider"],
        "provider[\"registry.terraform.io/hashicorp/aws\"]"
    );
    assert_eq!(web2["index_key"], json!(2));
    assert_eq!(web2["attributes"]["id"], "i-0a1b2c3d4e5f60002");
    assert_eq!(web2["version"], 2);
    assert_eq!(web2["appeared_in_version"], 2);
    let web1 = items
        .iter()
        .find(|i| i["address"] == "aws_instance.web[1]")
        .unwrap();
    assert_eq!(web1["appeared_in_version"], 1, "{web1}");
    assert!(web1["appeared_at"].as_str().unwrap() < web2["appeared_at"].as_str().unwrap());

    // The replaced instance is found by its new id, the old one is gone.
    let page = search(&s, &editor, "q=i-0ffffffffffff0000").await;
    assert_eq!(addresses(&page), ["aws_instance.web[0]"]);
    assert!(addresses(&search(&s, &editor, "id=i-0a1b2c3d4e5f60000").await).is_empty());
    let page = search(&s, &editor, "module=module.app&match=prefix").await;
    assert_eq!(
        addresses(&page),
        [
            "module.app[\"api\"].aws_s3_bucket.logs[\"api\"]",
            "module.app[\"api\"].module.compute[0].google_compute_instance.vm",
            "module.app[\"worker\"].aws_s3_bucket.logs[\"worker\"]",
        ]
    );
    assert_eq!(page["items"][0]["index_key"], json!("api"));
    let page = search(&s, &editor, "mode=data").await;
    assert_eq!(addresses(&page), ["data.aws_ami.ubuntu"]);
    let page = search(
        &s,
        &editor,
        "self_link=https://www.googleapis.com/&match=prefix",
    )
    .await;
    assert_eq!(page["items"][0]["attributes"]["name"], "api-vm");
    assert_eq!(page["not_indexed"]["count"], 0);

    // The version listing counts resource instances (the deposed object is not one).
    let (status, versions) = s
        .api(
            "GET",
            "/workspaces/default/states/prod%2Fapp/versions",
            Some(&editor),
            None,
        )
        .await;
    assert_eq!(status, 200, "{versions}");
    assert_eq!(versions["items"][0]["resource_count"], 9);
    assert_eq!(versions["items"][1]["resource_count"], 8);
}

#[tokio::test]
async fn search_pages_and_respects_access() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let other_viewer = s.token(Some("other"), Role::Viewer).await;
    let admin = s.token(None, Role::Admin).await;
    post(&s, &editor, "default/app", AWS_V2).await;

    let mut seen = Vec::new();
    let mut query = "type=aws_&match=prefix&limit=2".to_owned();
    loop {
        let page = search(&s, &editor, &query).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|i| i["address"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("type=aws_&match=prefix&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 8);

    // A cursor belongs to its search.
    let page = search(&s, &editor, "type=aws_&match=prefix&limit=2").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (status, body) = s
        .api(
            "GET",
            &format!("/search/resources?type=aws_&limit=2&cursor={cursor}"),
            Some(&editor),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("different search")
    );

    // Another workspace's viewer sees nothing of default; an instance admin sees it all.
    assert!(addresses(&search(&s, &other_viewer, "type=aws_instance").await).is_empty());
    assert_eq!(
        addresses(&search(&s, &admin, "type=aws_instance").await).len(),
        3
    );
}

#[tokio::test]
async fn encrypted_states_are_reported_not_indexed() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let other_viewer = s.token(Some("other"), Role::Viewer).await;
    post(&s, &editor, "default/sealed", ENCRYPTED).await;
    post(&s, &editor, "default/plain", AWS_V1).await;
    let page = search(&s, &editor, "q=main").await;
    assert_eq!(addresses(&page), ["aws_db_instance.main"]);
    assert_eq!(page["not_indexed"]["count"], 1);
    assert_eq!(
        page["not_indexed"]["states"],
        json!([{"workspace": "default", "state": "sealed", "reason": "client-encrypted"}])
    );
    let page = search(&s, &other_viewer, "q=main").await;
    assert_eq!(
        page["not_indexed"]["count"], 0,
        "only readable states are named"
    );
    let (status, versions) = s
        .api(
            "GET",
            "/workspaces/default/states/sealed/versions",
            Some(&editor),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(versions["items"][0]["resource_count"], Value::Null);
}

#[tokio::test]
async fn bad_searches_are_refused_with_a_reason() {
    let s = TestServer::start().await;
    let viewer = s.token(Some("default"), Role::Viewer).await;
    for (query, expected) in [
        ("", "say what to search for"),
        ("mode=resource", "managed or data"),
        ("id=", "id is empty"),
        ("type=x&match=fuzzy", "invalid query"),
        ("type=x&limit=0", "limit"),
        ("type=x&colour=red", "invalid query"),
        ("type=x&cursor=%25%25", "cursor"),
    ] {
        let (status, body) = s
            .api(
                "GET",
                &format!("/search/resources?{query}"),
                Some(&viewer),
                None,
            )
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{query}: {message}");
    }
    let (status, _) = s.api("GET", "/search/resources?type=x", None, None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn search_is_in_the_openapi_document() {
    let doc = serde_json::to_value(statehouse_server::api::openapi()).unwrap();
    let op = &doc["paths"]["/api/v1/search/resources"]["get"];
    assert!(op["responses"]["200"].is_object(), "{op}");
    let params: Vec<&str> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "type",
        "name",
        "module",
        "provider",
        "mode",
        "id",
        "arn",
        "name_attribute",
        "self_link",
        "q",
        "match",
        "cursor",
        "limit",
    ] {
        assert!(params.contains(&name), "{name} not documented: {params:?}");
    }
}

#[tokio::test]
async fn a_states_resources_page_in_address_order() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let outsider = s.token(Some("other"), Role::Viewer).await;
    post(&s, &editor, "default/prod/app", AWS_V1).await;
    post(&s, &editor, "default/sealed", ENCRYPTED).await;
    let path = "/workspaces/default/states/prod%2Fapp/resources";
    let (status, all) = s.api("GET", path, Some(&editor), None).await;
    assert_eq!(status, 200, "{all}");
    let listed: Vec<String> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "address order");
    assert!(listed.len() >= 3, "{all}");
    assert_eq!(all["not_indexed"], false);

    // Page by page, the same instances.
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = s
            .api(
                "GET",
                &format!("{path}?limit=2{cursor}"),
                Some(&editor),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            paged.push(item["address"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(paged, listed);

    let (_, web) = s
        .api(
            "GET",
            &format!("{path}?contains=WEB%5B"),
            Some(&editor),
            None,
        )
        .await;
    let expected: Vec<String> = listed
        .iter()
        .filter(|a| a.contains("web["))
        .cloned()
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(addresses(&web), expected, "case-insensitive, `[` literal");

    let (_, sealed) = s
        .api(
            "GET",
            "/workspaces/default/states/sealed/resources",
            Some(&editor),
            None,
        )
        .await;
    assert_eq!(sealed["not_indexed"], true, "{sealed}");

    for (query, expected) in [
        ("limit=0", "limit"),
        ("cursor=%25%25", "cursor"),
        ("contains=a%00b", "control character"),
    ] {
        let (status, body) = s
            .api("GET", &format!("{path}?{query}"), Some(&editor), None)
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{query}: {message}");
    }
    let (status, _) = s.api("GET", path, Some(&outsider), None).await;
    assert_eq!(
        status, 404,
        "a workspace the caller has no role in is not shown"
    );
}
