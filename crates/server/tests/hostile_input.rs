//! Hostile input at the edges over real HTTP, on both store engines: U+0000 and other control
//! characters in names, ids, lock info, query parameters, JSON bodies and state contents;
//! overlong names; deeply nested JSON. Every refusal is a 4xx naming the field (never a 5xx),
//! changes nothing, and leaves valid requests made at the same time unharmed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::engines::Engine;
use common::{PASSWORD, TestServer, lock_info, state_json};
use serde_json::{Value, json};
use statehouse_core::access::{Principal, Role};
use statehouse_core::audit::{AuditEntry, AuditQuery};
use statehouse_core::service::MAX_FAILURES_PER_IP;

crate::on_both_engines!(
    login_names_with_control_characters_are_refused_and_counted,
    urls_with_control_characters_are_refused_naming_the_parameter,
    lock_info_with_control_characters_is_refused,
    json_bodies_with_nul_strings_are_refused_naming_the_field,
    state_bodies_with_nul_are_stored_exactly_or_refused_by_header,
    overlong_names_and_deep_json_are_refused,
    outputs_nested_deeper_than_128_levels_are_shown_not_failed,
);

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

/// Every audit entry, oldest first, after the journal has been flushed.
async fn audit(s: &TestServer) -> Vec<AuditEntry> {
    s.services.flush_journal().await;
    s.services
        .audit_entries(
            &Principal::local_operator(),
            AuditQuery::all_after(0, 1_000),
        )
        .await
        .unwrap()
}

/// Valid writes running while hostile requests come in: each is acknowledged and stored.
struct ValidTraffic {
    task: tokio::task::JoinHandle<Vec<u16>>,
}

impl ValidTraffic {
    fn start(s: &TestServer, token: &str, state: &str, writes: i64) -> Self {
        let client = s.client.clone();
        let url = s.addr(&format!("default/{state}"));
        let token = token.to_owned();
        let task = tokio::spawn(async move {
            let mut statuses = Vec::new();
            for serial in 1..=writes {
                let body = state_json(serial, "valid-lineage", &format!("v{serial}"));
                let resp = client
                    .post(&url)
                    .basic_auth("terraform", Some(&token))
                    .header("Content-MD5", common::content_md5(&body))
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                statuses.push(resp.status().as_u16());
            }
            statuses
        });
        ValidTraffic { task }
    }

    async fn all_stored(self, s: &TestServer, state: &str, writes: i64) {
        let statuses = self.task.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        assert_eq!(s.versions("default", state).await, writes as usize);
    }
}

async fn login_names_with_control_characters_are_refused_and_counted(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    s.user("alice", &[("default", Role::Editor)]).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let traffic = ValidTraffic::start(&s, &editor, "busy", 10);
    for i in 0..MAX_FAILURES_PER_IP {
        let name = if i % 2 == 0 { "x\0y" } else { "x\u{1b}[2Jy" };
        let (status, body) = s
            .api(
                "POST",
                "/auth/login",
                None,
                Some(json!({"name": name, "password": "whatever\0else"})),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        let code = if i % 2 == 0 { "U+0000" } else { "U+001B" };
        assert_eq!(
            message(&body),
            format!(
                "field \"name\" contains the control character {code}, which statehouse does not accept there"
            )
        );
    }
    // The address used up its failures: even the right password is now refused.
    let (status, body) = s
        .api(
            "POST",
            "/auth/login",
            None,
            Some(json!({"name": "alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    traffic.all_stored(&s, "busy", 10).await;
    // Every refusal is in the audit log, with the name as sent.
    let failed: Vec<AuditEntry> = audit(&s)
        .await
        .into_iter()
        .filter(|e| e.record.action == "login.failed")
        .collect();
    assert_eq!(failed.len(), MAX_FAILURES_PER_IP as usize + 1);
    assert_eq!(failed[0].record.actor, "x\u{0}y");
    assert!(
        s.services
            .verify_audit(&Principal::local_operator())
            .await
            .unwrap()
            .problem
            .is_none()
    );
}

async fn urls_with_control_characters_are_refused_naming_the_parameter(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let admin = s.token(None, Role::Admin).await;
    let traffic = ValidTraffic::start(&s, &editor, "busy", 10);
    let v1 = state_json(1, "L", "one");
    for method in ["GET", "POST", "LOCK", "UNLOCK", "DELETE"] {
        let body = match method {
            "POST" => Some(&v1[..]),
            "LOCK" | "UNLOCK" => Some(&b"{\"ID\":\"x\"}"[..]),
            _ => None,
        };
        let (status, text) = s.send(method, "default/a%00b", Some(&editor), body).await;
        assert_eq!(status, 400, "{method}: {text}");
        assert_eq!(
            text.trim(),
            "URL path parameter \"name\" contains the control character U+0000, which statehouse does not accept there"
        );
    }
    let (status, text) = s
        .send("POST", "default/app?ID=a%00b", Some(&editor), Some(&v1))
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("query parameter \"ID\""), "{text}");
    let (status, text) = s.send("GET", "de%1Bfault/app", Some(&editor), None).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("\"workspace\" contains the control character U+001B"),
        "{text}"
    );
    for (path, field) in [
        (
            "/workspaces/default/states?prefix=a%00",
            "query parameter \"prefix\"",
        ),
        ("/workspaces/de%00fault/states", "URL path parameter \"ws\""),
        (
            "/workspaces/default/states/a%00b",
            "URL path parameter \"state\"",
        ),
        ("/audit?actor=x%00y", "query parameter \"actor\""),
        ("/audit?target=%1B%5B2J", "query parameter \"target\""),
        ("/search/resources?id=i-%00", "query parameter \"id\""),
        (
            "/search/resources?q=x&a%00=1",
            "query parameter \"a\\\\u{0}\"",
        ),
        ("/tokens/abc%00", "URL path parameter \"id\""),
        ("/users/al%00ice", "URL path parameter \"user\""),
        (
            "/workspaces/default/deleted-states/x%00/restore",
            "URL path parameter \"id\"",
        ),
        (
            "/workspaces/default/webhooks/x%00",
            "URL path parameter \"id\"",
        ),
        (
            "/workspaces/default/databases/x%00",
            "URL path parameter \"db\"",
        ),
        (
            "/workspaces/default/backups/x%00",
            "URL path parameter \"id\"",
        ),
    ] {
        let method = if path.ends_with("/restore") {
            "POST"
        } else {
            "GET"
        };
        let (status, body) = s.api(method, path, Some(&admin), None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{path}");
        assert!(message(&body).starts_with(field), "{path}: {body}");
    }
    // A cursor is base64 of a position: one decoding to U+0000 is forged.
    let forged = "YQBi"; // "a\0b"
    let (status, body) = s
        .api(
            "GET",
            &format!("/workspaces/default/states?cursor={forged}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).starts_with("invalid cursor"), "{body}");
    traffic.all_stored(&s, "busy", 10).await;
    // Nothing was created by the refused requests.
    let (_, states) = s
        .api("GET", "/workspaces/default/states", Some(&admin), None)
        .await;
    let names: Vec<&str> = states["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| st["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["busy"]);
}

async fn lock_info_with_control_characters_is_refused(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let traffic = ValidTraffic::start(&s, &editor, "busy", 10);
    let v1 = state_json(1, "L", "one");
    s.send("POST", "default/app", Some(&editor), Some(&v1))
        .await;
    for (info, field) in [
        (
            lock_info("a\\u0000b", "me"),
            "lock info \"ID\" contains the control character U+0000",
        ),
        (
            lock_info("ok", "x\\u0000y"),
            "lock info \"Who\" contains the control character U+0000",
        ),
        (
            lock_info("ok", "\\u001b]0;pwned\\u0007"),
            "lock info \"Who\" contains the control character U+001B",
        ),
        (
            br#"{"ID":"ok","Info":"a\u0000","Who":"me"}"#.to_vec(),
            "lock info \"Info\" contains the control character U+0000",
        ),
        (
            br#"{"ID":"ok","Path":"\u009b31m","Who":"me"}"#.to_vec(),
            "lock info \"Path\" contains the control character U+009B",
        ),
    ] {
        for style in ["LOCK default/app", "POST default/app/lock"] {
            let (method, path) = style.split_once(' ').unwrap();
            let (status, text) = s.send(method, path, Some(&editor), Some(&info)).await;
            assert_eq!(status, 400, "{style}: {text}");
            assert!(text.starts_with(field), "{style}: {text}");
        }
        let (status, text) = s
            .send("UNLOCK", "default/app", Some(&admin), Some(&info))
            .await;
        assert_eq!(status, 400, "UNLOCK: {text}");
    }
    // Nothing is locked: a write without a lock goes through.
    let (_, state) = s
        .api("GET", "/workspaces/default/states/app", Some(&admin), None)
        .await;
    assert!(state["lock"].is_null(), "{state}");
    let v2 = state_json(2, "L", "two");
    assert_eq!(
        s.send("POST", "default/app", Some(&editor), Some(&v2))
            .await
            .0,
        200
    );
    traffic.all_stored(&s, "busy", 10).await;
}

async fn json_bodies_with_nul_strings_are_refused_naming_the_field(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    let root = s.token(None, Role::Admin).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let traffic = ValidTraffic::start(&s, &editor, "busy", 10);
    for (method, path, body, field) in [
        ("POST", "/workspaces", json!({"name": "a\0b"}), "name"),
        (
            "PATCH",
            "/workspaces/default",
            json!({"name": "x\0"}),
            "name",
        ),
        (
            "POST",
            "/users",
            json!({"name": "bob\0", "password": "long enough pw"}),
            "name",
        ),
        (
            "POST",
            "/tokens",
            json!({"name": "t\0", "kind": "instance", "role": "viewer"}),
            "name",
        ),
        (
            "POST",
            "/workspaces/default/webhooks",
            json!({"url": "https://example.com/\0", "events": ["*"]}),
            "url",
        ),
        (
            "POST",
            "/workspaces/default/targets",
            json!({"name": "t", "kind": "local", "settings": {"path": "/tmp/\0x"}}),
            "settings.path",
        ),
        (
            "POST",
            "/workspaces/default/states/app/rollback",
            json!({"version": 1, "note": ["ok", "\0"]}),
            "note[1]",
        ),
    ] {
        let (status, answer) = s.api(method, path, Some(&root), Some(body)).await;
        assert_eq!(status, 400, "{method} {path}: {answer}");
        assert_eq!(
            message(&answer),
            format!(
                "field \"{field}\" contains a NUL character (U+0000), which statehouse cannot store"
            ),
            "{method} {path}"
        );
    }
    // Control characters in names are refused by the names' own rules.
    for (path, body) in [
        ("/workspaces", json!({"name": "a\u{1b}b"})),
        (
            "/tokens",
            json!({"name": "t\u{1b}[2J", "kind": "instance", "role": "viewer"}),
        ),
        (
            "/users",
            json!({"name": "bob\u{7}", "password": "long enough pw"}),
        ),
    ] {
        let (status, answer) = s.api("POST", path, Some(&root), Some(body)).await;
        assert_eq!(status, 400, "{path}: {answer}");
    }
    traffic.all_stored(&s, "busy", 10).await;
    let (_, workspaces) = s.api("GET", "/workspaces", Some(&root), None).await;
    assert_eq!(
        workspaces.to_string().matches("\"name\"").count(),
        2,
        "only default and other: {workspaces}"
    );
    let (_, users) = s.api("GET", "/users", Some(&root), None).await;
    assert!(!users.to_string().contains("bob"), "{users}");
}

async fn state_bodies_with_nul_are_stored_exactly_or_refused_by_header(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let traffic = ValidTraffic::start(&s, &editor, "busy", 10);
    // Lineage and terraform_version are stored in columns and shown: refused.
    for (body, field) in [
        (
            r#"{"version":4,"serial":1,"lineage":"a\u0000b","outputs":{},"resources":[]}"#,
            "state \"lineage\"",
        ),
        (
            r#"{"version":4,"terraform_version":"1.0\u0000","serial":1,"lineage":"l","outputs":{},"resources":[]}"#,
            "state \"terraform_version\"",
        ),
    ] {
        let (status, text) = s
            .send(
                "POST",
                "default/refused",
                Some(&editor),
                Some(body.as_bytes()),
            )
            .await;
        assert_eq!(status, 400, "{text}");
        assert!(text.starts_with(field), "{text}");
    }
    assert_eq!(s.versions("default", "refused").await, 0);
    // NUL inside resources: stored and served byte for byte; the identifiers holding one are
    // left out of the search index, the others are found.
    let with_nul_ids = br#"{"version":4,"terraform_version":"1.0.3","serial":1,"lineage":"l","outputs":{"o":{"value":"x\u0000y","type":"string"}},"resources":[
      {"mode":"managed","type":"aws_instance","name":"web","provider":"provider[\"registry.terraform.io/hashicorp/aws\"]",
       "instances":[{"index_key":"k\u0000","attributes":{"id":"i-\u0000bad","arn":"arn:aws:ok-1","tags":{"t":"\u0000"}}}]}]}"#;
    let (status, text) = s
        .send("POST", "default/nul-ids", Some(&editor), Some(with_nul_ids))
        .await;
    assert_eq!(status, 200, "{text}");
    let (status, served) = s.send("GET", "default/nul-ids", Some(&editor), None).await;
    assert_eq!((status, served.as_bytes()), (200, &with_nul_ids[..]));
    let (status, found) = s
        .api(
            "GET",
            "/search/resources?arn=arn:aws:ok-1",
            Some(&editor),
            None,
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
    assert!(found["items"][0]["attributes"]["id"].is_null(), "{found}");
    // NUL in a resource's type: stored, served, reported as not indexed.
    let with_nul_type = br#"{"version":4,"serial":1,"lineage":"l","outputs":{},"resources":[
      {"mode":"managed","type":"aws_\u0000x","name":"web","provider":"p","instances":[{"attributes":{"id":"i-typed"}}]}]}"#;
    let (status, text) = s
        .send(
            "POST",
            "default/nul-type",
            Some(&editor),
            Some(with_nul_type),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let (_, served) = s.send("GET", "default/nul-type", Some(&editor), None).await;
    assert_eq!(served.as_bytes(), &with_nul_type[..]);
    let (status, found) = s
        .api("GET", "/search/resources?id=i-typed", Some(&editor), None)
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["items"], json!([]));
    assert_eq!(found["not_indexed"]["count"], 1, "{found}");
    assert_eq!(
        found["not_indexed"]["states"][0]["state"], "nul-type",
        "{found}"
    );
    // Outputs and diffs of such states read fine.
    let (status, outputs) = s
        .api(
            "GET",
            "/workspaces/default/states/nul-ids/outputs",
            Some(&editor),
            None,
        )
        .await;
    assert_eq!(status, 200, "{outputs}");
    assert_eq!(outputs["outputs"][0]["value"], "x\u{0}y");
    traffic.all_stored(&s, "busy", 10).await;
}

async fn overlong_names_and_deep_json_are_refused(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    let root = s.token(None, Role::Admin).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let v1 = state_json(1, "L", "one");
    let long_state = "a".repeat(513);
    let (status, _) = s
        .send(
            "POST",
            &format!("default/{long_state}"),
            Some(&editor),
            Some(&v1),
        )
        .await;
    assert_eq!(status, 400);
    // Path parameters longer than any name: refused before they reach an index (PostgreSQL's
    // B-tree rows are limited) or the audit log.
    let traffic = ValidTraffic::start(&s, &editor, "busy", 10);
    let long = common::incompressible(5_000);
    for path in [format!("{long}/app"), format!("default/{long}/x")] {
        let (status, text) = s.send("GET", &path, Some(&editor), None).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("is longer than 1024 bytes"), "{text}");
    }
    let (status, body) = s
        .api(
            "GET",
            &format!("/workspaces/{long}/states"),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    traffic.all_stored(&s, "busy", 10).await;
    let long_ws = "w".repeat(64);
    let (status, body) = s
        .api(
            "POST",
            "/workspaces",
            Some(&root),
            Some(json!({"name": long_ws})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = s
        .api(
            "POST",
            "/tokens",
            Some(&root),
            Some(json!({"name": "t".repeat(101), "kind": "instance", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // A JSON body nested deeper than the parser goes: a 400, not a crash.
    let deep = format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000));
    let deep_object = format!("{{\"name\":{deep}}}");
    let resp = s
        .client
        .post(s.api_url("/workspaces"))
        .bearer_auth(&root)
        .header("content-type", "application/json")
        .body(deep_object)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let deep_lock = format!("{{\"ID\":\"x\",\"Info\":{deep}}}");
    let (status, text) = s
        .send(
            "LOCK",
            "default/app",
            Some(&editor),
            Some(deep_lock.as_bytes()),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("lock info is not valid JSON"), "{text}");
    // A state nested that deep is stored as sent.
    let deep_state = format!(
        r#"{{"version":4,"serial":1,"lineage":"l","outputs":{{}},"resources":[],"extra":{deep}}}"#
    );
    let (status, text) = s
        .send(
            "POST",
            "default/deep",
            Some(&editor),
            Some(deep_state.as_bytes()),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let (_, served) = s.send("GET", "default/deep", Some(&editor), None).await;
    assert_eq!(served, deep_state);
}

async fn outputs_nested_deeper_than_128_levels_are_shown_not_failed(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let outputs_only = s.token(Some("default"), Role::Outputs).await;
    let nested = |levels: usize| format!("{}\"x\"{}", "[".repeat(levels), "]".repeat(levels));
    let state = |serial: i64, levels: usize| {
        format!(
            r#"{{"version":4,"terraform_version":"1.0.3","serial":{serial},"lineage":"l",
  "outputs":{{"deep":{{"value":{v},"type":"string"}},"plain":{{"value":"p{serial}","type":"string"}}}},
  "resources":[{{"mode":"managed","type":"t","name":"n","provider":"p",
    "instances":[{{"attributes":{{"id":"i-deep","nested":{v}}}}}]}}]}}"#,
            v = nested(levels)
        )
        .into_bytes()
    };
    let v1 = state(1, 200);
    let v2 = state(2, 300);
    for body in [&v1, &v2] {
        let (status, text) = s
            .send("POST", "default/deep", Some(&editor), Some(body))
            .await;
        assert_eq!(status, 200, "{text}");
    }
    let base = "/workspaces/default/states/deep";
    let (status, outputs) = s
        .api("GET", &format!("{base}/outputs"), Some(&editor), None)
        .await;
    assert_eq!(status, 200, "{outputs}");
    assert_eq!(outputs["outputs"][0]["name"], "deep");
    assert_eq!(
        outputs["outputs"][0]["value"],
        statehouse_core::tfstate::TOO_DEEP
    );
    assert_eq!(outputs["outputs"][1]["value"], "p2");
    let (status, diff) = s
        .api(
            "GET",
            &format!("{base}/diff?from=1&to=2"),
            Some(&editor),
            None,
        )
        .await;
    assert_eq!(status, 200, "{diff}");
    let changed = &diff["diff"]["changed"][0];
    assert_eq!(changed["address"], "t.n");
    assert_eq!(
        changed["attributes"][0]["after"],
        statehouse_core::tfstate::TOO_DEEP
    );
    let names: Vec<&str> = diff["diff"]["outputs"]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["deep", "plain"], "{diff}");
    // The search index still has the instance.
    let (_, found) = s
        .api("GET", "/search/resources?id=i-deep", Some(&editor), None)
        .await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
    // The outputs-only reduction carries the deep output byte for byte.
    let (status, reduced) = s
        .send("GET", "default/deep", Some(&outputs_only), None)
        .await;
    assert_eq!(status, 200, "{reduced}");
    assert!(reduced.contains(&nested(300)));
    assert!(!reduced.contains("i-deep"));
}
