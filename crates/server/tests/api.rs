//! The REST API over HTTP: workspaces, states, versions, locks, deleted states, errors,
//! pagination and the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, lock_info, state_json};
use serde_json::{Value, json};
use statehouse_core::access::Role;

const MINUTE: i64 = 60_000;

async fn put_state(s: &TestServer, token: &str, name: &str, serial: i64, marker: &str) {
    let (status, body) = s
        .send(
            "POST",
            &format!("default/{name}"),
            Some(token),
            Some(&state_json(serial, "lin-1", marker)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[tokio::test]
async fn openapi_document_describes_every_route() {
    let s = TestServer::start().await;
    let resp = s
        .client
        .get(format!("{}/api/v1/openapi.json", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/workspaces",
        "/api/v1/workspaces/{ws}",
        "/api/v1/workspaces/{ws}/states",
        "/api/v1/workspaces/{ws}/states/{state}",
        "/api/v1/workspaces/{ws}/states/{state}/versions",
        "/api/v1/workspaces/{ws}/states/{state}/versions/{version}",
        "/api/v1/workspaces/{ws}/states/{state}/versions/{version}/body",
        "/api/v1/workspaces/{ws}/states/{state}/versions/{version}/keep",
        "/api/v1/workspaces/{ws}/states/{state}/lock",
        "/api/v1/workspaces/{ws}/deleted-states",
        "/api/v1/workspaces/{ws}/deleted-states/{id}/restore",
        "/api/v1/workspaces/{ws}/deleted-states/{id}",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the document");
    }
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} documents no responses"
            );
        }
    }
    assert!(doc["components"]["securitySchemes"]["token"].is_object());
}

#[tokio::test]
async fn errors_are_json_with_a_code() {
    let s = TestServer::start().await;
    let (status, body) = s.api("GET", "/workspaces", None, None).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    let (status, body) = s.api("GET", "/workspaces", Some("sht_nope"), None).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    let admin = s.token(None, Role::Admin).await;
    let (status, body) = s.api("GET", "/no/such/thing", Some(&admin), None).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("openapi")
    );
    let (status, body) = s
        .api("GET", "/workspaces/missing", Some(&admin), None)
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let resp = s
        .client
        .post(format!("{}/api/v1/workspaces", s.url))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "bad_request");
}

#[tokio::test]
async fn workspaces_create_list_change_delete() {
    let s = TestServer::start().await;
    let admin = s.token(None, Role::Admin).await;
    let ws_admin = s.token(Some("default"), Role::Admin).await;
    let viewer = s.token(Some("default"), Role::Viewer).await;

    let (status, body) = s
        .api(
            "POST",
            "/workspaces",
            Some(&admin),
            Some(json!({"name": "prod"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "prod");
    assert_eq!(body["stale_lock_after_seconds"], 7200);
    assert_eq!(body["keep_versions"], Value::Null);
    for (token, payload, want) in [
        (&admin, json!({"name": "prod"}), 409),
        (&admin, json!({"name": "Bad Name"}), 400),
        (&admin, json!({"name": "x", "extra": 1}), 400),
        (&ws_admin, json!({"name": "mine"}), 403),
    ] {
        let (status, body) = s
            .api("POST", "/workspaces", Some(token), Some(payload.clone()))
            .await;
        assert_eq!(status, want, "{payload}: {body}");
    }

    let (_, all) = s.api("GET", "/workspaces", Some(&admin), None).await;
    let names: Vec<_> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["default", "other", "prod"]);
    let (_, mine) = s.api("GET", "/workspaces", Some(&viewer), None).await;
    assert_eq!(
        mine["items"].as_array().unwrap().len(),
        1,
        "only workspaces with a role"
    );
    assert_eq!(mine["items"][0]["your_role"], "viewer");

    // Settings: set, then turn one off with null; absent fields stay.
    let (status, body) = s
        .api(
            "PATCH",
            "/workspaces/prod",
            Some(&admin),
            Some(json!({"keep_versions": 10, "keep_versions_for_seconds": 86400})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keep_versions"], 10);
    let (_, body) = s
        .api(
            "PATCH",
            "/workspaces/prod",
            Some(&admin),
            Some(json!({"keep_versions": null, "serial_protection": false})),
        )
        .await;
    assert_eq!(body["keep_versions"], Value::Null);
    assert_eq!(body["keep_versions_for_seconds"], 86400);
    assert_eq!(body["serial_protection"], false);
    for (payload, want) in [
        (json!({"keep_versions": 0}), 400),
        (json!({"stale_lock_after_seconds": 5}), 400),
        (json!({"name": "other"}), 409),
        (json!({"colour": "red"}), 400),
    ] {
        let (status, body) = s
            .api(
                "PATCH",
                "/workspaces/prod",
                Some(&admin),
                Some(payload.clone()),
            )
            .await;
        assert_eq!(status, want, "{payload}: {body}");
    }
    let (status, _) = s
        .api(
            "PATCH",
            "/workspaces/default",
            Some(&viewer),
            Some(json!({"keep_versions": 3})),
        )
        .await;
    assert_eq!(status, 403, "viewers change nothing");

    // Rename: the old name stops resolving at once, the backend address follows.
    let (status, body) = s
        .api(
            "PATCH",
            "/workspaces/prod",
            Some(&admin),
            Some(json!({"name": "production"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = s.api("GET", "/workspaces/prod", Some(&admin), None).await;
    assert_eq!(status, 404);
    let (status, _) = s
        .send(
            "POST",
            "production/app",
            Some(&admin),
            Some(&state_json(1, "l", "a")),
        )
        .await;
    assert_eq!(status, 200);

    // Delete: refused while states exist, then works once they are deleted and purged.
    let (status, body) = s
        .api("DELETE", "/workspaces/production", Some(&admin), None)
        .await;
    assert_eq!((status, code(&body)), (409, "conflict"), "{body}");
    let (status, _) = s
        .api(
            "DELETE",
            "/workspaces/production/states/app",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, deleted) = s
        .api(
            "GET",
            "/workspaces/production/deleted-states",
            Some(&admin),
            None,
        )
        .await;
    let id = deleted["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = s
        .api(
            "DELETE",
            &format!("/workspaces/production/deleted-states/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = s
        .api("DELETE", "/workspaces/production", Some(&ws_admin), None)
        .await;
    assert_eq!(status, 403, "only instance admins delete workspaces");
    let (status, _) = s
        .api("DELETE", "/workspaces/production", Some(&admin), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = s
        .api("DELETE", "/workspaces/default", Some(&admin), None)
        .await;
    assert_eq!(status, 400, "the default workspace stays");
}

#[tokio::test]
async fn states_list_filters_pages_and_shows_locks() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let viewer = s.token(Some("default"), Role::Viewer).await;
    for name in ["app/api", "app/web", "net/core", "net/edge", "solo"] {
        put_state(&s, &editor, name, 1, name).await;
    }
    s.clock.advance_millis(10 * MINUTE);
    put_state(&s, &editor, "solo", 2, "solo-2").await;
    let (status, _) = s
        .send(
            "LOCK",
            "default/net/edge",
            Some(&editor),
            Some(&lock_info("L-1", "alice@laptop")),
        )
        .await;
    assert_eq!(status, 200);

    let list = |query: &'static str| {
        let s = &s;
        let viewer = viewer.clone();
        async move {
            let (status, body) = s
                .api(
                    "GET",
                    &format!("/workspaces/default/states{query}"),
                    Some(&viewer),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{query}: {body}");
            body
        }
    };
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&list("?prefix=net/").await), ["net/core", "net/edge"]);
    assert_eq!(names(&list("?locked=true").await), ["net/edge"]);
    let since =
        (statehouse_core::clock::Timestamp(1_700_000_000_000).plus_millis(5 * MINUTE)).to_rfc3339();
    let page = list(Box::leak(
        format!("?changed_since={since}").into_boxed_str(),
    ))
    .await;
    assert_eq!(names(&page), ["solo"]);
    assert_eq!(page["items"][0]["current"]["serial"], 2);
    assert_eq!(page["items"][0]["current"]["version"], 2);

    let first = list("?limit=2").await;
    assert_eq!(names(&first), ["app/api", "app/web"]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = list(Box::leak(
        format!("?limit=2&cursor={cursor}").into_boxed_str(),
    ))
    .await;
    assert_eq!(names(&second), ["net/core", "net/edge"]);
    let cursor = second["next_cursor"].as_str().unwrap().to_owned();
    let third = list(Box::leak(
        format!("?limit=2&cursor={cursor}").into_boxed_str(),
    ))
    .await;
    assert_eq!(names(&third), ["solo"]);
    assert_eq!(third["next_cursor"], Value::Null);

    for bad in [
        "?limit=0",
        "?limit=5000",
        "?cursor=%21%21",
        "?changed_since=yesterday",
        "?locked=maybe",
        "?colour=red",
    ] {
        let (status, body) = s
            .api(
                "GET",
                &format!("/workspaces/default/states{bad}"),
                Some(&viewer),
                None,
            )
            .await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{bad}: {body}");
    }

    // Detail (URL-encoded name) shows the holder, age and staleness on the injected clock.
    let (status, detail) = s
        .api(
            "GET",
            "/workspaces/default/states/net%2Fedge",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["name"], "net/edge");
    assert_eq!(detail["current"]["created_by"], "Some(\"default\")-editor");
    let lock = &detail["lock"];
    assert_eq!(lock["id"], "L-1");
    assert_eq!(lock["who"], "alice@laptop");
    assert_eq!(lock["operation"], "OperationTypeApply");
    assert_eq!(lock["stale"], false);
    s.clock.advance_millis(121 * MINUTE);
    let (_, lock) = s
        .api(
            "GET",
            "/workspaces/default/states/net%2Fedge/lock",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(lock["age_seconds"], 121 * 60);
    assert_eq!(lock["stale"], true, "older than the default two hours");
    let (status, body) = s
        .api(
            "GET",
            "/workspaces/default/states/solo/lock",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, _) = s
        .api(
            "GET",
            "/workspaces/default/states/nope",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Force-unlock: admins only; the released lock comes back.
    let (status, _) = s
        .api(
            "DELETE",
            "/workspaces/default/states/net%2Fedge/lock",
            Some(&editor),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let admin = s.token(Some("default"), Role::Admin).await;
    let (status, released) = s
        .api(
            "DELETE",
            "/workspaces/default/states/net%2Fedge/lock",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{released}");
    assert_eq!(released["id"], "L-1");
    let (status, _) = s
        .api(
            "DELETE",
            "/workspaces/default/states/net%2Fedge/lock",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 404, "nothing left to unlock");
}

#[tokio::test]
async fn versions_page_download_and_keep() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let viewer = s.token(Some("default"), Role::Viewer).await;
    let admin = s.token(Some("default"), Role::Admin).await;
    for serial in 1..=5 {
        put_state(&s, &editor, "env/prod", serial, &format!("m{serial}")).await;
    }
    let base = "/workspaces/default/states/env%2Fprod/versions";
    let (_, page) = s
        .api("GET", &format!("{base}?limit=3"), Some(&viewer), None)
        .await;
    let numbers: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [5, 4, 3]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = s
        .api(
            "GET",
            &format!("{base}?limit=3&cursor={cursor}"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_cursor"], Value::Null);

    let (status, meta) = s
        .api("GET", &format!("{base}/2"), Some(&viewer), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(meta["serial"], 2);
    assert_eq!(meta["lineage"], "lin-1");
    assert_eq!(meta["client_version"], "1.0.3");
    let resp = s
        .client
        .get(format!("{}/api/v1{base}/2/body", s.url))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("env_prod-v2.tfstate")
    );
    assert_eq!(
        resp.bytes().await.unwrap().to_vec(),
        state_json(2, "lin-1", "m2"),
        "the download is the state exactly as written"
    );
    let (status, _) = s
        .api("GET", &format!("{base}/99"), Some(&viewer), None)
        .await;
    assert_eq!(status, 404);

    let (status, _) = s
        .api(
            "PUT",
            &format!("{base}/2/keep"),
            Some(&viewer),
            Some(json!({"kept": true})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = s
        .api(
            "PUT",
            &format!("{base}/2/keep"),
            Some(&admin),
            Some(json!({"kept": true})),
        )
        .await;
    assert_eq!(status, 204);
    let (_, meta) = s
        .api("GET", &format!("{base}/2"), Some(&viewer), None)
        .await;
    assert_eq!(meta["kept"], true);
}

#[tokio::test]
async fn maintenance_prunes_versions_and_reports_stale_locks_once() {
    let s = TestServer::start().await;
    let admin = s.token(None, Role::Admin).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    for serial in 1..=6 {
        put_state(&s, &editor, "app", serial, &format!("m{serial}")).await;
        s.clock.advance_millis(MINUTE);
    }
    let base = "/workspaces/default/states/app/versions";
    s.api(
        "PUT",
        &format!("{base}/1/keep"),
        Some(&admin),
        Some(json!({"kept": true})),
    )
    .await;
    let (status, _) = s
        .api(
            "PATCH",
            "/workspaces/default",
            Some(&admin),
            Some(json!({"keep_versions": 2, "stale_lock_after_seconds": 600})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .send(
            "LOCK",
            "default/app",
            Some(&editor),
            Some(&lock_info("L-9", "bob@ci")),
        )
        .await;
    assert_eq!(status, 200);

    let report = s.services.run_maintenance().await.unwrap();
    assert_eq!(
        report.versions_pruned, 3,
        "v2, v3, v4 go; v1 is kept, v5 and v6 are the newest two"
    );
    assert!(report.stale_locks.is_empty(), "the lock is fresh");
    let (_, page) = s.api("GET", base, Some(&admin), None).await;
    let numbers: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [6, 5, 1]);

    s.clock.advance_millis(11 * MINUTE);
    let report = s.services.run_maintenance().await.unwrap();
    assert_eq!(report.versions_pruned, 0);
    assert_eq!(report.stale_locks.len(), 1);
    assert_eq!(report.stale_locks[0].1.name, "app");
    let report = s.services.run_maintenance().await.unwrap();
    assert!(
        report.stale_locks.is_empty(),
        "each stale lock is reported once"
    );
}

#[tokio::test]
async fn deleted_states_restore() {
    let s = TestServer::start().await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    put_state(&s, &editor, "gone", 1, "x").await;
    let (status, _) = s
        .api(
            "DELETE",
            "/workspaces/default/states/gone",
            Some(&editor),
            None,
        )
        .await;
    assert_eq!(status, 403, "editors do not delete states");
    let (status, _) = s
        .api(
            "DELETE",
            "/workspaces/default/states/gone",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = s
        .api(
            "GET",
            "/workspaces/default/deleted-states",
            Some(&editor),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (_, deleted) = s
        .api(
            "GET",
            "/workspaces/default/deleted-states",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted["items"][0]["name"], "gone");
    assert_eq!(deleted["items"][0]["versions"], 1);
    let id = deleted["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = s
        .api(
            "POST",
            &format!("/workspaces/default/deleted-states/{id}/restore"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = s.send("GET", "default/gone", Some(&editor), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"x\""));
    let (status, _) = s
        .api(
            "POST",
            &format!("/workspaces/default/deleted-states/{id}/restore"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 404, "no longer deleted");
}

const AWS_V1: &[u8] = include_bytes!("../../core/tests/fixtures/tfstate/aws-v1.tfstate");
const AWS_V2: &[u8] = include_bytes!("../../core/tests/fixtures/tfstate/aws-v2.tfstate");

#[tokio::test]
async fn diff_and_outputs_mask_sensitive_values_for_non_admins() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let viewer = s.token(Some("default"), Role::Viewer).await;
    let admin = s.token(Some("default"), Role::Admin).await;
    for body in [AWS_V1, AWS_V2] {
        let (status, text) = s
            .send("POST", "default/aws", Some(&editor), Some(body))
            .await;
        assert_eq!(status, 200, "{text}");
    }
    let (status, as_viewer) = s
        .api(
            "GET",
            "/workspaces/default/states/aws/diff",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, 200, "{as_viewer}");
    let (_, as_admin) = s
        .api(
            "GET",
            "/workspaces/default/states/aws/diff?from=1&to=2",
            Some(&admin),
            None,
        )
        .await;
    let text_viewer = as_viewer.to_string();
    let text_admin = as_admin.to_string();
    assert!(
        text_admin.contains("s3cr3t-v2"),
        "admins see sensitive values"
    );
    assert!(
        !text_viewer.contains("s3cr3t"),
        "viewers never do: {text_viewer}"
    );
    assert!(text_viewer.contains("(sensitive)"));
    assert_eq!(as_viewer["diff"]["before"]["serial"], 12);
    assert_eq!(as_viewer["diff"]["after"]["serial"], 13);

    let (_, outputs) = s
        .api(
            "GET",
            "/workspaces/default/states/aws/outputs",
            Some(&viewer),
            None,
        )
        .await;
    let password = outputs["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "db_password")
        .cloned()
        .unwrap();
    assert_eq!(password["value"], "(sensitive)");
    assert_eq!(password["sensitive"], true);
    let (_, outputs) = s
        .api(
            "GET",
            "/workspaces/default/states/aws/outputs",
            Some(&admin),
            None,
        )
        .await;
    assert!(outputs.to_string().contains("s3cr3t-v2"));

    for (query, want) in [("?from=0", 400), ("?from=1&to=9", 404), ("?from=x", 400)] {
        let (status, body) = s
            .api(
                "GET",
                &format!("/workspaces/default/states/aws/diff{query}"),
                Some(&viewer),
                None,
            )
            .await;
        assert_eq!(status, want, "{query}: {body}");
    }
    let (status, _) = s
        .api(
            "GET",
            "/workspaces/default/states/aws/diff",
            Some(&s.token(Some("other"), Role::Admin).await),
            None,
        )
        .await;
    assert_eq!(status, 404, "another workspace's admin sees nothing here");
}

#[tokio::test]
async fn rollback_rules() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let viewer = s.token(Some("default"), Role::Viewer).await;
    for serial in 1..=3 {
        put_state(&s, &editor, "app", serial, &format!("m{serial}")).await;
    }
    let url = "/workspaces/default/states/app/rollback";
    let (status, _) = s
        .api("POST", url, Some(&viewer), Some(json!({"version": 1})))
        .await;
    assert_eq!(status, 403, "viewers cannot roll back");
    let (status, _) = s
        .api("POST", url, Some(&editor), Some(json!({"version": 3})))
        .await;
    assert_eq!(status, 400, "already current");
    let (status, _) = s
        .api("POST", url, Some(&editor), Some(json!({"version": 42})))
        .await;
    assert_eq!(status, 404);
    let (status, _) = s
        .api("POST", url, Some(&editor), Some(json!({"v": 1})))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        s.versions("default", "app").await,
        3,
        "refusals change nothing"
    );

    // The caller's own lock does not block it; the rollback writes v1's content at serial 4.
    let (status, _) = s
        .send(
            "LOCK",
            "default/app",
            Some(&editor),
            Some(&lock_info("mine", "me@ci")),
        )
        .await;
    assert_eq!(status, 200);
    let (status, v4) = s
        .api("POST", url, Some(&editor), Some(json!({"version": 1})))
        .await;
    assert_eq!(status, 201, "{v4}");
    assert_eq!(
        (v4["version"].as_i64(), v4["serial"].as_i64()),
        (Some(4), Some(4))
    );
    let (_, body) = s.send("GET", "default/app", Some(&viewer), None).await;
    let state: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["serial"], 4);
    assert_eq!(state["outputs"]["m"]["value"], "m1");

    // Someone else's lock does.
    let other = s.token(Some("default"), Role::Editor).await;
    let (status, body) = s
        .api("POST", url, Some(&other), Some(json!({"version": 2})))
        .await;
    assert_eq!((status, code(&body)), (423, "locked"), "{body}");
    assert_eq!(body["error"]["lock"]["ID"], "mine");
    assert_eq!(s.versions("default", "app").await, 4);
}

/// Kinds of the events visible to `token`, oldest first.
async fn event_kinds(s: &TestServer, token: &str) -> Vec<(String, Value)> {
    s.services.flush_journal().await;
    let (status, page) = s.api("GET", "/events?limit=1000", Some(token), None).await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap().to_owned(), e["payload"].clone()))
        .collect()
}

#[tokio::test]
async fn rollback_and_stale_locks_raise_events_and_audit_entries() {
    let s = TestServer::start().await;
    let admin = s.token(None, Role::Admin).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    put_state(&s, &editor, "app", 1, "one").await;
    put_state(&s, &editor, "app", 2, "two").await;
    let (status, _) = s
        .api(
            "POST",
            "/workspaces/default/states/app/rollback",
            Some(&editor),
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(status, 201);
    let events = event_kinds(&s, &admin).await;
    let rolled = events
        .iter()
        .find(|(k, _)| k == "state.rolled_back")
        .unwrap_or_else(|| panic!("no state.rolled_back in {events:?}"));
    assert_eq!(rolled.1["rolled_back_to"], 1);
    assert_eq!(rolled.1["version"], 3);
    let (_, audit) = s
        .api("GET", "/audit?action=state.rollback", Some(&admin), None)
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");

    let (status, _) = s
        .send(
            "LOCK",
            "default/app",
            Some(&editor),
            Some(&lock_info("L-s", "ci@runner")),
        )
        .await;
    assert_eq!(status, 200);
    s.clock.advance_millis(3 * 60 * MINUTE);
    s.services.run_maintenance().await.unwrap();
    s.services.run_maintenance().await.unwrap();
    let stale: Vec<_> = event_kinds(&s, &admin)
        .await
        .into_iter()
        .filter(|(k, _)| k == "lock.stale")
        .collect();
    assert_eq!(stale.len(), 1, "one lock.stale per lock: {stale:?}");
    assert_eq!(stale[0].1["lock_id"], "L-s");
}

#[tokio::test]
async fn outputs_role_reads_outputs_and_nothing_else_through_the_api() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let outputs = s.token(Some("default"), Role::Outputs).await;
    let (status, _) = s
        .send("POST", "default/aws", Some(&editor), Some(AWS_V2))
        .await;
    assert_eq!(status, 200);
    let (status, body) = s
        .api(
            "GET",
            "/workspaces/default/states/aws/outputs",
            Some(&outputs),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.to_string().contains("s3cr3t"),
        "sensitive outputs are masked"
    );
    let (status, ws) = s
        .api("GET", "/workspaces/default", Some(&outputs), None)
        .await;
    assert_eq!((status, ws["your_role"].as_str()), (200, Some("outputs")));
    for path in [
        "/workspaces/default/states",
        "/workspaces/default/states/aws",
        "/workspaces/default/states/aws/versions",
        "/workspaces/default/states/aws/versions/1/body",
        "/workspaces/default/states/aws/diff?from=1&to=1",
        "/search/resources?type=aws_instance",
    ] {
        let (status, body) = s.api("GET", path, Some(&outputs), None).await;
        assert!(
            status == 403 || (path.starts_with("/search") && body["items"] == json!([])),
            "{path}: {status} {body}"
        );
    }
}
