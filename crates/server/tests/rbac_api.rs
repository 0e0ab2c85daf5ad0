//! The RBAC matrix of the REST API: every operation in the OpenAPI document against every kind
//! of caller. Callers below an operation's role are refused (401 without credentials, 403
//! otherwise) and change nothing; the weakest caller allowed succeeds; every stronger caller
//! may read. The account API (`/auth`, `/users`, `/members`, `/tokens`) has its own matrix in
//! `accounts.rs`; this file checks that the two together cover the whole document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, lock_info, state_json};
use serde_json::{Value, json};
use statehouse_core::access::Role;

/// The weakest caller an operation accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Needs {
    /// Any valid credential (results are filtered to what the caller may see).
    Anyone,
    Outputs,
    Viewer,
    Editor,
    Admin,
    /// An admin of any workspace (results are filtered to their workspaces).
    SomeAdmin,
    InstanceAdmin,
}

/// Callers, weakest first. `Other` is an admin of another workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Other,
    Outputs,
    Viewer,
    Editor,
    Admin,
    Instance,
}

const CALLERS: [Caller; 7] = [
    Caller::Anonymous,
    Caller::Other,
    Caller::Outputs,
    Caller::Viewer,
    Caller::Editor,
    Caller::Admin,
    Caller::Instance,
];

impl Caller {
    fn allowed(self, needs: Needs) -> bool {
        if needs == Needs::SomeAdmin {
            return matches!(self, Caller::Other | Caller::Admin | Caller::Instance);
        }
        match self {
            Caller::Anonymous => false,
            Caller::Other => needs == Needs::Anyone,
            Caller::Outputs => needs <= Needs::Outputs,
            Caller::Viewer => needs <= Needs::Viewer,
            Caller::Editor => needs <= Needs::Editor,
            Caller::Admin => needs <= Needs::Admin,
            Caller::Instance => true,
        }
    }
}

/// One operation as the matrix calls it. `{gone}`, `{hook}`, `{delivery}` and `{s3key}` are
/// filled in from the fixture.
struct Op {
    method: &'static str,
    /// The OpenAPI path template it exercises.
    template: &'static str,
    path: &'static str,
    body: Option<fn() -> Value>,
    needs: Needs,
}

const fn op(method: &'static str, template: &'static str, path: &'static str, needs: Needs) -> Op {
    Op {
        method,
        template,
        path,
        body: None,
        needs,
    }
}

const fn with_body(
    method: &'static str,
    template: &'static str,
    path: &'static str,
    body: fn() -> Value,
    needs: Needs,
) -> Op {
    Op {
        method,
        template,
        path,
        body: Some(body),
        needs,
    }
}

const STATE: &str = "/workspaces/{ws}/states/{state}";

fn ops() -> Vec<Op> {
    use Needs::*;
    vec![
        op("GET", "/workspaces", "/workspaces", Anyone),
        with_body(
            "POST",
            "/workspaces",
            "/workspaces",
            || json!({"name": "fresh"}),
            InstanceAdmin,
        ),
        op("GET", "/workspaces/{ws}", "/workspaces/default", Outputs),
        with_body(
            "PATCH",
            "/workspaces/{ws}",
            "/workspaces/default",
            || json!({"keep_versions": 9}),
            Admin,
        ),
        op(
            "DELETE",
            "/workspaces/{ws}",
            "/workspaces/empty",
            InstanceAdmin,
        ),
        op(
            "GET",
            "/workspaces/{ws}/states",
            "/workspaces/default/states",
            Viewer,
        ),
        op("GET", STATE, "/workspaces/default/states/app", Viewer),
        op("DELETE", STATE, "/workspaces/default/states/app", Admin),
        op(
            "GET",
            "/workspaces/{ws}/states/{state}/versions",
            "/workspaces/default/states/app/versions",
            Viewer,
        ),
        op(
            "GET",
            "/workspaces/{ws}/states/{state}/versions/{version}",
            "/workspaces/default/states/app/versions/1",
            Viewer,
        ),
        op(
            "GET",
            "/workspaces/{ws}/states/{state}/versions/{version}/body",
            "/workspaces/default/states/app/versions/1/body",
            Viewer,
        ),
        with_body(
            "PUT",
            "/workspaces/{ws}/states/{state}/versions/{version}/keep",
            "/workspaces/default/states/app/versions/1/keep",
            || json!({"kept": true}),
            Admin,
        ),
        op(
            "GET",
            "/workspaces/{ws}/states/{state}/diff",
            "/workspaces/default/states/app/diff",
            Viewer,
        ),
        with_body(
            "POST",
            "/workspaces/{ws}/states/{state}/rollback",
            "/workspaces/default/states/app/rollback",
            || json!({"version": 1}),
            Editor,
        ),
        op(
            "GET",
            "/workspaces/{ws}/states/{state}/resources",
            "/workspaces/default/states/app/resources",
            Viewer,
        ),
        op(
            "GET",
            "/workspaces/{ws}/states/{state}/outputs",
            "/workspaces/default/states/app/outputs",
            Outputs,
        ),
        op(
            "GET",
            "/workspaces/{ws}/states/{state}/lock",
            "/workspaces/default/states/locked/lock",
            Viewer,
        ),
        op(
            "GET",
            "/workspaces/{ws}/states/{state}/lock/queue",
            "/workspaces/default/states/locked/lock/queue",
            Viewer,
        ),
        op(
            "DELETE",
            "/workspaces/{ws}/states/{state}/lock",
            "/workspaces/default/states/locked/lock",
            Admin,
        ),
        op(
            "GET",
            "/workspaces/{ws}/deleted-states",
            "/workspaces/default/deleted-states",
            Admin,
        ),
        op(
            "POST",
            "/workspaces/{ws}/deleted-states/{id}/restore",
            "/workspaces/default/deleted-states/{gone}/restore",
            Admin,
        ),
        op(
            "DELETE",
            "/workspaces/{ws}/deleted-states/{id}",
            "/workspaces/default/deleted-states/{gone}",
            Admin,
        ),
        op(
            "GET",
            "/search/resources",
            "/search/resources?type=terraform_remote_state",
            Anyone,
        ),
        op("GET", "/events", "/events", Anyone),
        op("GET", "/audit", "/audit", SomeAdmin),
        op("GET", "/audit/export", "/audit/export", SomeAdmin),
        op("POST", "/audit/verify", "/audit/verify", InstanceAdmin),
        op(
            "GET",
            "/workspaces/{ws}/webhooks",
            "/workspaces/default/webhooks",
            Admin,
        ),
        with_body(
            "POST",
            "/workspaces/{ws}/webhooks",
            "/workspaces/default/webhooks",
            || json!({"url": "http://127.0.0.1:9/other", "events": ["lock.*"]}),
            Admin,
        ),
        op(
            "GET",
            "/workspaces/{ws}/webhooks/{id}",
            "/workspaces/default/webhooks/{hook}",
            Admin,
        ),
        with_body(
            "PATCH",
            "/workspaces/{ws}/webhooks/{id}",
            "/workspaces/default/webhooks/{hook}",
            || json!({"enabled": false}),
            Admin,
        ),
        op(
            "DELETE",
            "/workspaces/{ws}/webhooks/{id}",
            "/workspaces/default/webhooks/{hook}",
            Admin,
        ),
        op(
            "GET",
            "/workspaces/{ws}/webhooks/{id}/deliveries",
            "/workspaces/default/webhooks/{hook}/deliveries",
            Admin,
        ),
        op(
            "GET",
            "/workspaces/{ws}/webhooks/{id}/deliveries/{delivery}",
            "/workspaces/default/webhooks/{hook}/deliveries/{delivery}",
            Admin,
        ),
        op(
            "POST",
            "/workspaces/{ws}/webhooks/{id}/deliveries/{delivery}/redeliver",
            "/workspaces/default/webhooks/{hook}/deliveries/{delivery}/redeliver",
            Admin,
        ),
        op(
            "POST",
            "/workspaces/{ws}/webhooks/{id}/ping",
            "/workspaces/default/webhooks/{hook}/ping",
            Admin,
        ),
        // Listed for anyone with a role there: each sees the keys it manages.
        op(
            "GET",
            "/workspaces/{ws}/s3-keys",
            "/workspaces/default/s3-keys",
            Outputs,
        ),
        with_body(
            "POST",
            "/workspaces/{ws}/s3-keys",
            "/workspaces/default/s3-keys",
            || json!({"name": "matrix", "role": "editor"}),
            Admin,
        ),
        op(
            "DELETE",
            "/workspaces/{ws}/s3-keys/{access_key_id}",
            "/workspaces/default/s3-keys/{s3key}",
            Admin,
        ),
    ]
}

/// Operations whose matrix is `account_api_rbac_matrix` in `accounts.rs`, or
/// `backup_operations_refuse_callers_below_their_role` in `api_backups.rs`.
const ACCOUNT_PREFIXES: [&str; 10] = [
    "/auth/",
    "/users",
    "/tokens",
    "/workspaces/{ws}/members",
    "/workspaces/{ws}/databases",
    "/workspaces/{ws}/database-connection-test",
    "/workspaces/{ws}/backups",
    "/workspaces/{ws}/targets",
    "/workspaces/{ws}/notifiers",
    "/workspaces/{ws}/backup-encryption",
];

struct Fixture {
    s: TestServer,
    tokens: Vec<(Caller, Option<String>)>,
    gone: String,
    hook: String,
    delivery: String,
    s3key: String,
}

impl Fixture {
    async fn new() -> Fixture {
        let s = TestServer::start().await;
        let instance = s.token(None, Role::Admin).await;
        let tokens = vec![
            (Caller::Anonymous, None),
            (
                Caller::Other,
                Some(s.token(Some("other"), Role::Admin).await),
            ),
            (
                Caller::Outputs,
                Some(s.token(Some("default"), Role::Outputs).await),
            ),
            (
                Caller::Viewer,
                Some(s.token(Some("default"), Role::Viewer).await),
            ),
            (
                Caller::Editor,
                Some(s.token(Some("default"), Role::Editor).await),
            ),
            (
                Caller::Admin,
                Some(s.token(Some("default"), Role::Admin).await),
            ),
            (Caller::Instance, Some(instance.clone())),
        ];
        let editor = tokens[4].1.clone().unwrap();
        s.services.create_workspace("empty").await.unwrap();
        let (status, hook) = s
            .api(
                "POST",
                "/workspaces/default/webhooks",
                Some(&instance),
                Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]})),
            )
            .await;
        assert_eq!(status, 201, "{hook}");
        let hook = hook["webhook"]["id"].as_str().unwrap().to_owned();
        for (name, serial) in [("app", 1), ("app", 2), ("locked", 1), ("gone", 1)] {
            let (status, body) = s
                .send(
                    "POST",
                    &format!("default/{name}"),
                    Some(&editor),
                    Some(&state_json(serial, "lin", &format!("{name}{serial}"))),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
        let (status, _) = s
            .send(
                "LOCK",
                "default/locked",
                Some(&editor),
                Some(&lock_info("L", "ci@host")),
            )
            .await;
        assert_eq!(status, 200);
        s.services
            .delete_state(
                &statehouse_core::access::Principal::local_operator(),
                "default",
                "gone",
            )
            .await
            .unwrap();
        s.services.flush_journal().await;
        let (_, deleted) = s
            .api(
                "GET",
                "/workspaces/default/deleted-states",
                Some(&instance),
                None,
            )
            .await;
        let gone = deleted["items"][0]["id"].as_str().unwrap().to_owned();
        let (_, deliveries) = s
            .api(
                "GET",
                &format!("/workspaces/default/webhooks/{hook}/deliveries"),
                Some(&instance),
                None,
            )
            .await;
        let delivery = deliveries["items"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no delivery yet: {deliveries}"))
            .to_owned();
        let (s3key, _) = s
            .services
            .create_s3_key(
                &statehouse_core::access::Principal::local_operator(),
                statehouse_core::service::S3KeyRequest {
                    workspace: "default".into(),
                    name: "fixture".into(),
                    owner: statehouse_core::service::S3KeyOwner::Service,
                    role: Some(Role::Editor),
                    expires_in_millis: None,
                },
            )
            .await
            .unwrap();
        Fixture {
            s,
            tokens,
            gone,
            hook,
            delivery,
            s3key: s3key.access_key_id,
        }
    }

    fn path(&self, op: &Op) -> String {
        op.path
            .replace("{gone}", &self.gone)
            .replace("{hook}", &self.hook)
            .replace("{delivery}", &self.delivery)
            .replace("{s3key}", &self.s3key)
    }

    async fn call(&self, op: &Op, caller: Caller) -> (u16, String) {
        let token = self
            .tokens
            .iter()
            .find(|(c, _)| *c == caller)
            .and_then(|(_, t)| t.clone());
        let method = reqwest::Method::from_bytes(op.method.as_bytes()).unwrap();
        let mut request = self
            .s
            .client
            .request(method, format!("{}/api/v1{}", self.s.url, self.path(op)));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(body) = op.body {
            request = request.json(&body());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// What an instance admin sees of everything the operations could change.
    async fn snapshot(&self) -> Value {
        let admin = self.tokens[6].1.clone();
        let mut all = Vec::new();
        for path in [
            "/workspaces",
            "/workspaces/default/states",
            "/workspaces/default/deleted-states",
            "/workspaces/default/states/app/versions",
            "/workspaces/default/webhooks",
            "/workspaces/default/s3-keys",
        ] {
            all.push(self.s.api("GET", path, admin.as_deref(), None).await.1);
        }
        Value::Array(all)
    }
}

#[tokio::test]
async fn every_api_operation_against_every_caller() {
    for op in ops() {
        let f = Fixture::new().await;
        let before = f.snapshot().await;
        let allowed: Vec<Caller> = CALLERS
            .iter()
            .copied()
            .filter(|c| c.allowed(op.needs))
            .collect();
        for caller in CALLERS.iter().copied().filter(|c| !c.allowed(op.needs)) {
            let (status, body) = f.call(&op, caller).await;
            // Without any role in the workspace, it answers as if there were no such workspace.
            let foreign = caller == Caller::Other
                && op.template.starts_with("/workspaces/{ws}")
                && op.needs != Needs::InstanceAdmin;
            let want = match caller {
                Caller::Anonymous => 401,
                _ if foreign => 404,
                _ => 403,
            };
            assert_eq!(
                status, want,
                "{} {} as {caller:?} (needs {:?}): {body}",
                op.method, op.template, op.needs
            );
        }
        assert_eq!(
            f.snapshot().await,
            before,
            "{} {}: refused calls changed something",
            op.method,
            op.template
        );
        // The weakest allowed caller succeeds; reads succeed for every allowed caller.
        let callers = if op.method == "GET" {
            allowed.clone()
        } else {
            allowed[..1].to_vec()
        };
        for caller in callers {
            let (status, body) = f.call(&op, caller).await;
            assert!(
                (200..300).contains(&status),
                "{} {} as {caller:?} (needs {:?}) should succeed: {status} {body}",
                op.method,
                op.template,
                op.needs
            );
        }
    }
}

#[tokio::test]
async fn the_matrices_cover_the_whole_openapi_document() {
    let doc = statehouse_server::api::openapi();
    let doc = serde_json::to_value(&doc).unwrap();
    let listed: Vec<(String, String)> = ops()
        .iter()
        .map(|o| (o.method.to_lowercase(), format!("/api/v1{}", o.template)))
        .collect();
    let mut missing = Vec::new();
    // The document also describes /healthz, /readyz and the Terraform backend (tested in
    // http_backend.rs); the matrices are about the REST API.
    let api_paths = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| path.starts_with("/api/v1/"));
    for (path, item) in api_paths {
        for method in item.as_object().unwrap().keys() {
            let inner = path.trim_start_matches("/api/v1");
            let account = ACCOUNT_PREFIXES.iter().any(|p| inner.starts_with(p));
            if !account && !listed.contains(&(method.clone(), path.clone())) {
                missing.push(format!("{method} {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "operations without an RBAC row: {missing:?}"
    );
}
