//! The OpenAPI document at `/api/v1/openapi.json`: valid by a real validator
//! (`openapi-spec-validator`, which `scripts/test.sh` installs into `.tools/venv`), unique
//! operation ids, path parameters that match their templates, statehouse's own info block, and
//! the health endpoints and Terraform backend described beside the REST API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use common::TestServer;
use serde_json::Value;

async fn served_document() -> Value {
    let s = TestServer::start().await;
    let response = s
        .client
        .get(s.api_url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Every operation: (path, method, operation).
fn operations(doc: &Value) -> Vec<(&str, &str, &Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                all.push((path.as_str(), method.as_str(), op));
            }
        }
    }
    all
}

/// `openapi-spec-validator` from `STATEHOUSE_OPENAPI_VALIDATOR`, or `.tools/venv`.
fn validator() -> PathBuf {
    if let Some(path) = std::env::var_os("STATEHOUSE_OPENAPI_VALIDATOR") {
        return PathBuf::from(path);
    }
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.tools/venv/bin/openapi-spec-validator"
    ));
    assert!(
        path.exists(),
        "{} is missing: run the suite through `bash scripts/test.sh` (it installs \
         openapi-spec-validator into .tools/venv), or point STATEHOUSE_OPENAPI_VALIDATOR at one",
        path.display()
    );
    path
}

#[tokio::test]
async fn the_document_passes_a_real_openapi_validator() {
    let doc = served_document().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = std::process::Command::new(validator())
        .args(["--validation-errors", "all"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn operation_ids_are_unique() {
    let doc = served_document().await;
    let mut seen: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (path, method, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        seen.entry(id).or_default().push(format!("{method} {path}"));
    }
    let duplicates: BTreeMap<_, _> = seen.into_iter().filter(|(_, ops)| ops.len() > 1).collect();
    assert!(
        duplicates.is_empty(),
        "duplicate operationIds: {duplicates:#?}"
    );
}

#[tokio::test]
async fn path_parameters_match_their_templates() {
    let doc = served_document().await;
    for (path, method, op) in operations(&doc) {
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            declared, templated,
            "{method} {path}: path parameters declared vs. in the template"
        );
    }
}

#[tokio::test]
async fn the_info_block_is_statehouses() {
    let doc = served_document().await;
    let info = &doc["info"];
    assert_eq!(info["title"], "statehouse API");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["license"]["name"], "Apache-2.0");
    assert!(info.get("contact").is_none(), "no contact: {info}");
    let text = info.to_string();
    assert!(!text.contains("utoipa"), "{text}");
}

#[tokio::test]
async fn health_and_the_terraform_backend_are_described() {
    let doc = served_document().await;
    let paths = &doc["paths"];
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/tf/{workspace}/{name}", "get"),
        ("/tf/{workspace}/{name}", "post"),
        ("/tf/{workspace}/{name}", "put"),
        ("/tf/{workspace}/{name}", "delete"),
        ("/tf/{workspace}/{name}/lock", "post"),
        ("/tf/{workspace}/{name}/lock", "delete"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is not described"
        );
    }
    assert_eq!(
        paths["/healthz"]["get"]["security"],
        serde_json::json!([{}]),
        "health needs no credentials"
    );
}

#[tokio::test]
async fn every_listing_is_a_page() {
    let doc = served_document().await;
    for (path, method, op) in operations(&doc) {
        if method != "get" {
            continue;
        }
        let schema = &op["responses"]["200"]["content"]["application/json"]["schema"];
        assert_ne!(
            schema["type"], "array",
            "GET {path} answers a bare array; listings are pages ({{items, next_cursor}})"
        );
    }
}

/// The errors any REST operation may answer are declared on every one (once, in the document
/// builder): 400 and 503 everywhere, 401 and 403 unless public, 404 where the path names
/// something, 415 where a body is read — each with the error body.
#[tokio::test]
async fn every_operation_declares_the_errors_it_may_answer() {
    let doc = served_document().await;
    let mut checked = 0;
    for (path, method, op) in operations(&doc) {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let public = op["security"].as_array().is_some_and(|s| {
            s.iter()
                .all(|r| r.as_object().is_some_and(|r| r.is_empty()))
        });
        let mut expected = vec!["400", "503"];
        if !public {
            expected.extend(["401", "403"]);
        }
        if path.contains('{') {
            expected.push("404");
        }
        if !op["requestBody"].is_null() {
            expected.push("415");
        }
        for code in expected {
            let response = &op["responses"][code];
            assert!(
                !response.is_null(),
                "{method} {path} does not declare {code}"
            );
            assert_eq!(
                response["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path} {code}"
            );
        }
        checked += 1;
    }
    assert!(checked > 80, "only {checked} operations checked");
}
