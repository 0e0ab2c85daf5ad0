//! `statehouse import pulumi-pg` and `statehouse import s3`, the real binary on both stores: a
//! Pulumi DIY backend written as Pulumi's `postgres://` backend stores it (the table of
//! pkg/backend/diy/postgres/schema.sql, keys under the login URL's database name, bytes as
//! `{"data":"<base64>"}`) and as a bucket holds it (put into moto with boto3). After the import
//! the stacks are states with a version each, every other object reads back byte for byte over
//! the S3 endpoint, the lock file is left out, a re-run changes nothing, and one bad object
//! stops the whole import.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output};

use base64::Engine;
use common::s3::{python, s3_key, script, test_server_var};
use common::{PgDatabase, Server, Store, describe, http_client, skip_e2e, unique_name};
use serde_json::{Value, json};

on_both_stores!(
    import_pulumi_pg_copies_every_object,
    import_s3_copies_a_bucket
);

const LOCK_KEY: &str =
    ".pulumi/locks/organization/web/dev/0b9a4d6e-1f7e-4a0e-9b55-2f8a8d0f3c11.json";
const BROKEN_KEY: &str = ".pulumi/stacks/web/broken.json";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn checkpoint(stack: &str, marker: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": 3,
        "checkpoint": {
            "stack": format!("organization/web/{stack}"),
            "latest": {
                "manifest": {"time": "2026-01-01T00:00:00Z", "magic": "m", "version": "v3.200.0"},
                "resources": [{
                    "urn": format!("urn:pulumi:{stack}::web::pulumi:pulumi:Stack::web-{stack}"),
                    "custom": false,
                    "type": "pulumi:pulumi:Stack",
                    "outputs": {"marker": marker}
                }]
            }
        }
    }))
    .unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A backend after two `pulumi up` of web/dev (plain JSON: `.bak`, history, a backup, tags) and
/// one of web/prod (gzip), with dev still locked by a CLI that crashed.
fn backend() -> BTreeMap<String, Vec<u8>> {
    let dev = checkpoint("dev", "second");
    let history = json!({"kind": "update", "result": "succeeded", "message": "second"});
    [
        (".pulumi/meta.yaml", b"version: 1\n".to_vec()),
        (".pulumi/stacks/web/dev.json", dev.clone()),
        (".pulumi/stacks/web/dev.json.bak", checkpoint("dev", "first")),
        (
            ".pulumi/stacks/web/dev.pulumi-tags",
            br#"{"version":1,"tags":{"team":"web"}}"#.to_vec(),
        ),
        (
            ".pulumi/history/web/dev/dev-1767225600000000000.history.json",
            serde_json::to_vec(&history).unwrap(),
        ),
        (
            ".pulumi/history/web/dev/dev-1767225600000000000.checkpoint.json",
            dev.clone(),
        ),
        (".pulumi/backups/web/dev/dev.1767225600000000000.json", dev),
        (
            ".pulumi/stacks/web/prod.json.gz",
            gzip(&checkpoint("prod", "only")),
        ),
        (
            LOCK_KEY,
            br#"{"pid":4242,"username":"ci","hostname":"runner","timestamp":"2026-01-01T00:00:00Z"}"#
                .to_vec(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

const FIRST_RUN: &str = "objects: 8 written, 0 unchanged, 0 failed; stacks: 2 (2 new versions)";
const SECOND_RUN: &str = "objects: 0 written, 8 unchanged, 0 failed; stacks: 2 (0 new versions)";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn api(server: &Server, path: &str) -> Value {
    let url = format!("{}/api/v1{path}", server.url);
    let response = http_client()
        .get(&url)
        .bearer_auth(&server.admin_token)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    let text = response.text().unwrap_or_default();
    assert_eq!(status, 200, "GET {url}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn version_count(server: &Server, workspace: &str, state: &str) -> usize {
    let state = state.replace('/', "%2F");
    let page = api(
        server,
        &format!("/workspaces/{workspace}/states/{state}/versions?limit=100"),
    );
    page["items"].as_array().unwrap().len()
}

fn state_names(server: &Server, workspace: &str) -> Vec<String> {
    let page = api(server, &format!("/workspaces/{workspace}/states?limit=100"));
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `tests/s3/objects.py`: puts (`{key: bytes}`) or gets (`[key]`) objects with boto3.
fn objects_py(
    endpoint: &str,
    bucket: &str,
    (id, secret): (&str, &str),
    verb: &str,
    input: &Value,
) -> Value {
    let mut child = Command::new(python())
        .arg(script("objects.py"))
        .arg(verb)
        .env("S3_ENDPOINT", endpoint)
        .env("S3_BUCKET", bucket)
        .env("S3_KEY_ID", id)
        .env("S3_SECRET", secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running objects.py");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "objects.py {verb}: {}",
        describe(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What the workspace's bucket holds under `keys` (`None`: absent), read over the S3 endpoint.
fn read_back(
    server: &Server,
    workspace: &str,
    keys: &[&String],
) -> BTreeMap<String, Option<Vec<u8>>> {
    let (id, secret) = s3_key(server, workspace, "viewer", &unique_name("check"));
    let found = objects_py(
        &server.s3_url,
        workspace,
        (&id, &secret),
        "get",
        &json!(keys),
    );
    found
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let bytes = v
                .as_str()
                .map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap());
            (k.clone(), bytes)
        })
        .collect()
}

/// The import's outcome in `workspace`: the stacks are states with one version each, every
/// object but the lock file reads back byte for byte, the lock file is absent.
fn assert_imported(server: &Server, workspace: &str, out: &Output) {
    assert!(stdout(out).starts_with(FIRST_RUN), "{}", describe(out));
    let err = stderr(out);
    assert!(
        err.contains(LOCK_KEY) && err.contains("lock file, not imported"),
        "{err}"
    );
    let mut names = state_names(server, workspace);
    names.sort();
    assert_eq!(names, ["pulumi/web/dev", "pulumi/web/prod"]);
    for stack in ["pulumi/web/dev", "pulumi/web/prod"] {
        assert_eq!(version_count(server, workspace, stack), 1, "{stack}");
    }
    let backend = backend();
    let keys: Vec<&String> = backend.keys().collect();
    let read = read_back(server, workspace, &keys);
    for (key, bytes) in &backend {
        let got = read.get(key).cloned().flatten();
        if key == LOCK_KEY {
            assert_eq!(got, None, "the lock file is not imported");
        } else {
            assert_eq!(got.as_ref(), Some(bytes), "{key} reads back byte for byte");
        }
    }
    let outputs = api(
        server,
        &format!("/workspaces/{workspace}/states/pulumi%2Fweb%2Fprod/outputs"),
    );
    assert!(
        outputs.to_string().contains("only"),
        "the gzip'd checkpoint is read: {outputs}"
    );
}

/// Nothing of an import that was refused is in `workspace`.
fn assert_nothing_imported(server: &Server, workspace: &str, out: &Output, named: &[&str]) {
    assert!(!out.status.success(), "{}", describe(out));
    let err = stderr(out);
    assert!(err.contains("nothing was imported"), "{err}");
    for name in named {
        assert!(err.contains(name), "the message names {name}: {err}");
    }
    assert!(state_names(server, workspace).is_empty());
    let meta = ".pulumi/meta.yaml".to_owned();
    assert_eq!(read_back(server, workspace, &[&meta])[&meta], None);
}

fn pg_execute(url: &str, statements: &[(&str, Vec<String>)]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        for (sql, binds) in statements {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
            for bind in binds {
                query = query.bind(bind.clone());
            }
            query.execute(&pool).await.unwrap();
        }
        pool.close().await;
    });
}

/// A row as Pulumi's writer stores it: the key under the URL's database name, the bytes as
/// `{"data":"<base64>"}` (encoding/json of its blobData).
fn pulumi_row(db: &PgDatabase, key: &str, data: &str) -> (&'static str, Vec<String>) {
    (
        "INSERT INTO pulumi_state (key, data) VALUES ($1, $2::json) \
         ON CONFLICT (key) DO UPDATE SET data = $2::json, updated_at = now()",
        vec![
            format!("{}/{key}", db.name),
            json!({"data": data}).to_string(),
        ],
    )
}

fn import_pulumi_pg_copies_every_object(store: Store) {
    if skip_e2e() {
        return;
    }
    let db = PgDatabase::create("pulumipg");
    // The table exactly as Pulumi's backend creates it (schema.sql, table `pulumi_state`).
    let mut statements = vec![
        (
            "CREATE TABLE IF NOT EXISTS pulumi_state (key TEXT PRIMARY KEY, data JSON NOT NULL, \
             updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now())",
            Vec::new(),
        ),
        (
            "CREATE INDEX IF NOT EXISTS pulumi_state_key_prefix_idx ON pulumi_state (key text_pattern_ops)",
            Vec::new(),
        ),
    ];
    for (key, bytes) in backend() {
        statements.push(pulumi_row(&db, &key, &b64(&bytes)));
    }
    pg_execute(&db.url, &statements);

    let server = Server::start(store);
    server.create_workspace("platform");
    // The URL as `pulumi login` takes it, `table=` and a password included (the test cluster
    // trusts local connections, so any password logs in; it must never be printed).
    let password = "pw-never-printed";
    let url = db
        .url
        .replacen("://postgres@", &format!("://postgres:{password}@"), 1);
    assert!(
        url.contains(password),
        "the test URL names the postgres user: {}",
        db.url
    );
    let sep = if url.contains('?') { '&' } else { '?' };
    let login_url = format!("{url}{sep}table=pulumi_state");
    let import = |workspace: &str| {
        server
            .command()
            .args([
                "import",
                "pulumi-pg",
                "--conn",
                &login_url,
                "--workspace",
                workspace,
            ])
            .output()
            .unwrap()
    };
    let out = import("platform");
    assert_imported(&server, "platform", &out);
    assert!(
        !stdout(&out).contains(password) && !stderr(&out).contains(password),
        "{}",
        describe(&out)
    );
    assert!(
        stderr(&out).contains(&format!("importing the keys under \"{}/\"", db.name)),
        "{}",
        describe(&out)
    );

    // Again: identical objects are left alone, no version is added.
    let out = import("platform");
    assert!(stdout(&out).starts_with(SECOND_RUN), "{}", describe(&out));
    assert_eq!(version_count(&server, "platform", "pulumi/web/dev"), 1);

    // One row that is not a checkpoint stops everything, and is named.
    server.create_workspace("again");
    pg_execute(
        &db.url,
        &[pulumi_row(
            &db,
            BROKEN_KEY,
            &b64(b"{\"not\":\"a checkpoint\"}"),
        )],
    );
    let out = import("again");
    assert_nothing_imported(
        &server,
        "again",
        &out,
        &[&format!("{}/{BROKEN_KEY}", db.name)],
    );

    // As do a hostile key and data that is not base64.
    let hostile = ".pulumi/stacks/../../escape.json";
    pg_execute(
        &db.url,
        &[
            (
                "DELETE FROM pulumi_state WHERE key LIKE '%broken.json'",
                Vec::new(),
            ),
            pulumi_row(&db, hostile, &b64(&checkpoint("dev", "x"))),
            pulumi_row(&db, ".pulumi/history/web/dev/x.history.json", "%%%"),
        ],
    );
    let out = import("again");
    assert_nothing_imported(
        &server,
        "again",
        &out,
        &[
            hostile,
            "'..' segment",
            "x.history.json: `data` is not valid base64",
        ],
    );
}

fn import_s3_copies_a_bucket(store: Store) {
    if skip_e2e() {
        return;
    }
    let (Some(endpoint), Some(bucket), Some(id), Some(secret)) = (
        test_server_var("STATEHOUSE_TEST_S3_ENDPOINT"),
        test_server_var("STATEHOUSE_TEST_S3_BUCKET"),
        test_server_var("STATEHOUSE_TEST_S3_ACCESS_KEY_ID"),
        test_server_var("STATEHOUSE_TEST_S3_SECRET_ACCESS_KEY"),
    ) else {
        return;
    };
    // Under a prefix of the test bucket of its own (`s3://BUCKET/PREFIX` in Pulumi's URL).
    let prefix = unique_name("pulumi");
    let put = |prefix: &str, objects: &BTreeMap<String, Vec<u8>>| {
        let input: BTreeMap<String, String> = objects
            .iter()
            .map(|(k, v)| (format!("{prefix}/{k}"), b64(v)))
            .collect();
        objects_py(&endpoint, &bucket, (&id, &secret), "put", &json!(input));
    };
    put(&prefix, &backend());

    let server = Server::start(store);
    server.create_workspace("platform");
    let import = |workspace: &str, prefix: &str| {
        let mut command = server.command();
        command
            .args(["import", "s3", "--endpoint", &endpoint, "--bucket", &bucket])
            .args(["--prefix", prefix, "--region", "us-east-1", "--path-style"])
            .args(["--workspace", workspace])
            .env("AWS_ACCESS_KEY_ID", &id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env_remove("AWS_SESSION_TOKEN");
        command
    };
    let out = import("platform", &prefix).output().unwrap();
    assert_imported(&server, "platform", &out);
    assert!(
        stderr(&out).contains(&format!("{prefix}/{LOCK_KEY}")),
        "{}",
        describe(&out)
    );

    let out = import("platform", &prefix).output().unwrap();
    assert!(stdout(&out).starts_with(SECOND_RUN), "{}", describe(&out));
    assert_eq!(version_count(&server, "platform", "pulumi/web/dev"), 1);

    // One object that is not a checkpoint stops everything, and is named.
    server.create_workspace("again");
    let other = unique_name("pulumi");
    let mut broken = backend();
    broken.insert(
        BROKEN_KEY.to_owned(),
        b"{\"not\":\"a checkpoint\"}".to_vec(),
    );
    put(&other, &broken);
    let out = import("again", &other).output().unwrap();
    assert_nothing_imported(&server, "again", &out, &[&format!("{other}/{BROKEN_KEY}")]);

    // The endpoint is on this host: without the loopback allowance the policy refuses it and
    // says which setting allows it; the secret never shows.
    let out = import("again", &prefix)
        .env("STATEHOUSE_OUTBOUND__ALLOW_LOOPBACK", "false")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("STATEHOUSE_OUTBOUND__ALLOW_LOOPBACK=targets"),
        "{err}"
    );
    assert!(!err.contains(&secret) && !stdout(&out).contains(&secret));

    // Without credentials it says which variables to set.
    let out = import("again", &prefix)
        .env_remove("AWS_ACCESS_KEY_ID")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{}",
        describe(&out)
    );

    // A prefix with nothing under it says where it looked.
    let out = import("again", "no-such-prefix").output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("found no objects under no-such-prefix/.pulumi/"),
        "{}",
        describe(&out)
    );
    assert!(state_names(&server, "again").is_empty());
}
