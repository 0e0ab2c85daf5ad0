//! The master key, as an operator meets it, with the real binary on both stores:
//! - `key rotate` re-wraps every kind of sealed secret (state versions, webhook secrets, S3
//!   key secrets, target, notifier and database secrets, the workspace's managed backup key and
//!   verification server), so after the old key is gone every backup feature still works —
//!   including `db restore` of a backup taken before the rotation and decrypting it with the
//!   exported managed key — and webhooks are still signed;
//! - a damaged key file (one base64 character changed) is refused at start, and a running server
//!   that sees its key file go bad keeps its keys: writes are sealed with the verified key and
//!   everything stays readable once the right file is back;
//! - a database made before check values existed gets them on its first start with a key that
//!   opens its data, and refuses a key that does not;
//! - a key file readable by others is warned about.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    PgDatabase, Server, Store, Via, describe, http_client, pg_execute, pg_url, pg_url_for_database,
    skip_e2e, unique_name,
};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

on_both_stores!(
    rotation_keeps_every_sealed_secret_working,
    a_damaged_key_file_is_refused_at_start,
    a_running_server_keeps_its_keys_when_the_file_goes_bad,
    databases_made_before_key_checks_get_them_on_first_start,
);

// ---- helpers -----------------------------------------------------------------------------------

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{}", describe(out)))
}

/// A request to the REST API with the admin token; the answer's JSON.
fn api(server: &Server, method: &str, path: &str, body: Option<Value>) -> Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http_client()
        .request(method.clone(), format!("{}/api/v1{path}", server.url))
        .bearer_auth(&server.admin_token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().unwrap();
    let status = response.status();
    let text = response.text().unwrap();
    assert!(
        status.is_success(),
        "{method} {path}: {status} {text}\n{}",
        server.log_text()
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn state_body(serial: i64, marker: &str) -> Vec<u8> {
    json!({
        "version": 4,
        "terraform_version": "1.0.3",
        "serial": serial,
        "lineage": "rotation-lineage",
        "outputs": {"marker": {"value": marker, "type": "string"}},
        "resources": []
    })
    .to_string()
    .into_bytes()
}

/// POSTs a state version over the Terraform backend; returns the status.
fn write_state(server: &Server, name: &str, serial: i64, marker: &str) -> u16 {
    let url = server.tf_address("default", name);
    server
        .request(
            "POST",
            &url,
            &server.admin_token,
            state_body(serial, marker),
        )
        .status()
        .as_u16()
}

/// The marker output of a state's current version, or the status when it cannot be read.
fn read_marker(server: &Server, name: &str) -> Result<String, u16> {
    let url = server.tf_address("default", name);
    let response = server.request("GET", &url, &server.admin_token, Vec::new());
    let status = response.status().as_u16();
    if status != 200 {
        return Err(status);
    }
    let body: Value = response.json().unwrap();
    Ok(body["outputs"]["marker"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// An HTTP receiver on 127.0.0.1 answering every request 200 and handing each over.
struct Receiver {
    base: String,
    rx: mpsc::Receiver<Received>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let tx = tx.clone();
                thread::spawn(move || {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned();
                    let mut headers = BTreeMap::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            headers
                                .insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
                        }
                    }
                    let length = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0usize);
                    let mut body = vec![0u8; length];
                    let _ = reader.read_exact(&mut body);
                    let mut stream = stream;
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    let _ = tx.send(Received {
                        path,
                        headers,
                        body,
                    });
                });
            }
        });
        Receiver { base, rx }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The next request to `path` whose body contains `needle`, within `timeout`.
    fn wait_for(&self, path: &str, needle: &str, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(r) if r.path == path && String::from_utf8_lossy(&r.body).contains(needle) => {
                    return r;
                }
                Ok(_) => {}
                Err(_) => panic!("no request to {path} containing {needle:?} within {timeout:?}"),
            }
        }
    }
}

fn key_file(server: &Server) -> PathBuf {
    server.data_dir().unwrap().join("master.key")
}

/// The ids of the `key` and `retired` lines of a key file.
fn key_lines(path: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let ids = |kind: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix(kind))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    (ids("key "), ids("retired "))
}

/// Runs SQL on the server's store (its SQLite file, or its PostgreSQL schema): each row's
/// columns as text joined by `|`.
fn store_rows(server: &Server, sql: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let text =
            |row: &dyn Fn(usize) -> String, n: usize| (0..n).map(row).collect::<Vec<_>>().join("|");
        match server.pg_schema() {
            None => {
                let path = server.data_dir().unwrap().join("statehouse.db");
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap();
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                let out = rows
                    .iter()
                    .map(|r| {
                        text(
                            &|i| {
                                r.try_get::<String, _>(i)
                                    .or_else(|_| r.try_get::<i64, _>(i).map(|v| v.to_string()))
                                    .unwrap_or_default()
                            },
                            r.columns().len(),
                        )
                    })
                    .collect();
                let _ = conn.close().await;
                out
            }
            Some(schema) => {
                let mut conn = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SET search_path TO \"{schema}\""
                )))
                .execute(&mut conn)
                .await
                .unwrap();
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                let out = rows
                    .iter()
                    .map(|r| {
                        text(
                            &|i| {
                                r.try_get::<String, _>(i)
                                    .or_else(|_| r.try_get::<i64, _>(i).map(|v| v.to_string()))
                                    .unwrap_or_default()
                            },
                            r.columns().len(),
                        )
                    })
                    .collect();
                let _ = conn.close().await;
                out
            }
        }
    })
}

/// Every table of the store with a `wrapped_key` column, found in the schema itself (so a
/// sealed kind added later is counted without changing this test).
fn sealed_tables(server: &Server) -> Vec<String> {
    let sql = match server.pg_schema() {
        None => "SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) c \
                 WHERE m.type = 'table' AND c.name = 'wrapped_key' ORDER BY m.name"
            .to_owned(),
        Some(schema) => format!(
            "SELECT table_name::text FROM information_schema.columns \
             WHERE table_schema = '{schema}' AND column_name = 'wrapped_key' ORDER BY 1"
        ),
    };
    store_rows(server, &sql)
}

/// `table|key_id|count` of every sealed row, over every sealed table.
fn sealed_rows_by_key(server: &Server) -> Vec<String> {
    sealed_tables(server)
        .iter()
        .flat_map(|table| {
            store_rows(
                server,
                &format!(
                    "SELECT '{table}', key_id, count(*) FROM {table} WHERE key_id IS NOT NULL \
                     GROUP BY key_id ORDER BY key_id"
                ),
            )
        })
        .collect()
}

/// The test PostgreSQL URL with a password in it (the server trusts local connections, so
/// any password works, but statehouse stores it sealed like a real one).
fn url_with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest.split_once('@').unwrap_or(("postgres", rest));
    let user = userinfo.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

fn pg_count(url: &str, table: &str) -> i64 {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let _ = conn.close().await;
        n
    })
}

fn verify_signature(secret: &str, delivery: &Received) {
    let timestamp = &delivery.headers["x-statehouse-timestamp"];
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&delivery.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        delivery.headers["x-statehouse-signature-256"], expected,
        "the delivery is signed with the webhook's secret"
    );
}

// ---- rotation ----------------------------------------------------------------------------------

fn rotation_keeps_every_sealed_secret_working(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    let cli = |args: &[&str]| server.cli(args);
    let remote = Via::Remote {
        token: Some(&server.admin_token),
    };
    let work = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();

    // Every kind of sealed secret, before the rotation.
    assert_eq!(write_state(&server, "net", 1, "v1"), 200);
    let hook = api(
        &server,
        "POST",
        "/workspaces/default/webhooks",
        Some(json!({"url": receiver.url("/hooks"), "events": ["state.*"]})),
    );
    let webhook_secret = hook["secret"].as_str().unwrap().to_owned();
    // An S3 key's secret (that it opens after the rotation is checked in the server crate's
    // s3_key_services.rs, through the lookup the S3 listener makes).
    let (key_id, key_secret) = common::s3::s3_key(&server, "default", "editor", "rotation");
    // An S3 object's sealed chunk, put through the S3 endpoint.
    let put = Command::new(common::s3::python())
        .args([
            "-c",
            "import boto3, os; boto3.client('s3', endpoint_url=os.environ['E'], region_name='us-east-1', \
             aws_access_key_id=os.environ['K'], aws_secret_access_key=os.environ['S']).put_object(\
             Bucket='default', Key='.pulumi/meta.yaml', Body=b'version: 1\\n')",
        ])
        .env("E", &server.s3_url)
        .env("K", &key_id)
        .env("S", &key_secret)
        .output()
        .unwrap();
    assert!(put.status.success(), "{}", common::describe(&put));
    let nas = work.path().join("nas");
    cli(&[
        "target",
        "add",
        "nas",
        "--kind",
        "local",
        "--set",
        &format!("path={}", nas.display()),
    ]);
    cli(&[
        "target",
        "add",
        "offsite",
        "--kind",
        "s3",
        "--set",
        "bucket=rotation",
        "--set",
        "region=eu-central-1",
        "--set",
        "access_key_id=AKIAROTATION",
        "--secret",
        "secret_access_key=rotation-s3-secret",
    ]);
    let source = PgDatabase::create("rot_src");
    pg_execute(
        &source.url,
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO items SELECT g, 'item-' || g FROM generate_series(1, 500) g;",
    )
    .unwrap();
    let source_url = url_with_password(&source.url, "rotation-db-password");
    cli(&[
        "db",
        "add",
        "shop",
        "--url",
        &source_url,
        "--target",
        "nas",
        "--no-health-checks",
    ]);
    cli(&[
        "notifier",
        "add",
        "ops",
        "--kind",
        "webhook",
        "--secret",
        &format!("url={}", receiver.url("/notify")),
        "--secret",
        r#"headers={"X-Token":"rotation-header-secret"}"#,
    ]);
    let verification_url = url_with_password(&pg_url(), "rotation-verify-password");
    server.cli_with_input(
        Via::Local,
        &[
            "backup",
            "encryption",
            "set-verification-server",
            "--url-stdin",
        ],
        &verification_url,
    );
    let before = json_of(&cli(&["db", "backup", "shop", "--json"]));
    assert_eq!(before[0]["status"], "succeeded", "{before}");
    let backup_before = before[0]["id"].as_str().unwrap().to_owned();
    let object_before = nas.join(before[0]["object"].as_str().unwrap());
    assert!(object_before.is_file());

    let (active, retired) = key_lines(&key_file(&server));
    assert_eq!(retired.len(), 0);
    let old_key = active[0].clone();
    let tables = sealed_tables(&server);
    let by_key = sealed_rows_by_key(&server);
    for table in &tables {
        assert!(
            by_key
                .iter()
                .any(|r| r.starts_with(&format!("{table}|{old_key}|"))),
            "the test made no {table} row sealed under the old key: {by_key:?}"
        );
    }

    // Rotate while the server runs, then forget the old key.
    let rotated = cli(&["key", "rotate"]);
    let said = String::from_utf8_lossy(&rotated.stderr);
    assert!(
        said.contains("retired") && said.contains(&old_key),
        "{said}"
    );
    let (active, retired) = key_lines(&key_file(&server));
    assert_eq!(
        retired,
        std::slice::from_ref(&old_key),
        "the old key is kept as retired"
    );
    let new_key = active[0].clone();
    assert_ne!(new_key, old_key);
    let by_key = sealed_rows_by_key(&server);
    assert!(
        by_key.iter().all(|r| !r.contains(&format!("|{old_key}|"))),
        "sealed rows left under the old key: {by_key:?}"
    );
    cli(&["key", "forget-retired"]);
    let (active, retired) = key_lines(&key_file(&server));
    assert_eq!(
        (active, retired),
        (vec![new_key.clone()], Vec::<String>::new())
    );

    // Every backup feature works with the new key alone, in-process and on the server.
    let after = json_of(&cli(&["db", "backup", "shop", "--json"]));
    assert_eq!(after[0]["status"], "succeeded", "{after}");
    let remote_after = json_of(&server.cli_via(remote, &["db", "backup", "shop", "--json"]));
    assert_eq!(remote_after[0]["status"], "succeeded", "{remote_after}");
    let check = json_of(&cli(&["db", "check", "shop", "--json"]));
    assert_eq!(check["reachable"], true, "{check}");
    let restored = PgDatabase::create("rot_restored");
    pg_execute(&restored.url, "SELECT 1").unwrap();
    let into = unique_name("rot_into");
    let out = json_of(&cli(&[
        "db",
        "restore",
        &backup_before,
        "--into",
        &into,
        "--json",
    ]));
    assert_eq!(out["created_database"], true, "{out}");
    let into_url = pg_url_for_database(&pg_url(), &into);
    assert_eq!(pg_count(&into_url, "items"), 500);
    pg_execute(&pg_url(), &format!("DROP DATABASE \"{into}\" WITH (FORCE)")).unwrap();
    for via in [Via::Local, remote] {
        let tested = json_of(&server.cli_via(via, &["notifier", "test", "ops", "--json"]));
        assert_eq!(tested["ok"], true, "{tested}");
        let got = receiver.wait_for("/notify", "", Duration::from_secs(10));
        assert_eq!(got.headers["x-token"], "rotation-header-secret");
    }
    let targets = json_of(&cli(&["target", "list", "--json"]));
    let offsite = targets["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "offsite")
        .unwrap();
    assert_eq!(
        offsite["secrets_set"],
        json!(["secret_access_key"]),
        "{targets}"
    );
    let shown = json_of(&cli(&["backup", "encryption", "show", "--json"]));
    assert_eq!(shown["server_can_decrypt"], true, "{shown}");
    let shown_text = shown.to_string();
    assert!(
        !shown_text.contains("rotation-verify-password"),
        "no secret is shown: {shown_text}"
    );

    // The managed key, exported now, decrypts the backup taken before the rotation.
    let key = work.path().join("key.txt");
    cli(&[
        "backup",
        "encryption",
        "export-key",
        "-o",
        &key.display().to_string(),
    ]);
    let pipeline = format!(
        "set -o pipefail; age -d -i '{}' '{}' | zstd -d | pg_restore --list > /dev/null",
        key.display(),
        object_before.display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&pipeline)
        .output()
        .unwrap();
    assert!(out.status.success(), "{pipeline}\n{}", describe(&out));

    // Webhook deliveries are signed by the server with the re-wrapped secret.
    assert_eq!(write_state(&server, "net", 2, "v2"), 200);
    let delivery = receiver.wait_for("/hooks", "\"serial\":2", Duration::from_secs(60));
    verify_signature(&webhook_secret, &delivery);
    assert_eq!(read_marker(&server, "net"), Ok("v2".to_owned()));
    let v1 = cli(&[
        "state",
        "get",
        "--workspace",
        "default",
        "net",
        "--version",
        "1",
    ]);
    assert!(
        String::from_utf8_lossy(&v1.stdout).contains("\"v1\""),
        "{}",
        describe(&v1)
    );

    // Changing the encryption works too (each opens and re-seals the workspace's secrets).
    cli(&["backup", "encryption", "generate-key"]);
    let mine = work.path().join("mine.txt");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&mine)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(&mine)
        .output()
        .unwrap();
    let recipient = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    cli(&["backup", "encryption", "set-recipients", &recipient]);
    server.cli_with_input(
        Via::Local,
        &["backup", "encryption", "set-passphrase"],
        "a long rotation passphrase",
    );
    cli(&["backup", "encryption", "set-passphrase", "--off"]);
    let final_backup = json_of(&cli(&["db", "backup", "shop", "--json"]));
    assert_eq!(final_backup[0]["status"], "succeeded", "{final_backup}");

    // A restart verifies the new key against the store and starts.
    let mut server = server;
    server.restart();
    assert_eq!(read_marker(&server, "net"), Ok("v2".to_owned()));
}

// ---- damaged keys ------------------------------------------------------------------------------

/// The key file with one base64 character of its key line changed (the id kept).
fn damaged(text: &str) -> String {
    let line = text.lines().find(|l| l.starts_with("key ")).unwrap();
    let b64 = line.rsplit(' ').next().unwrap();
    let first = b64.chars().next().unwrap();
    let other = if first == 'A' { 'B' } else { 'A' };
    let changed = line.replacen(b64, &format!("{other}{}", &b64[1..]), 1);
    text.replace(line, &changed)
}

fn serve_output(server: &Server) -> Output {
    let mut command = server.command();
    command.arg("serve");
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("statehouse serve with a damaged key file did not stop");
        }
        thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

fn a_damaged_key_file_is_refused_at_start(store: Store) {
    if skip_e2e() {
        return;
    }
    let mut server = Server::start(store);
    assert_eq!(write_state(&server, "net", 1, "v1"), 200);
    let path = key_file(&server);
    let good = std::fs::read_to_string(&path).unwrap();
    let (active, _) = key_lines(&path);
    server.kill9();

    std::fs::write(&path, damaged(&good)).unwrap();
    let out = serve_output(&server);
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&active[0])
            && stderr.contains(&path.display().to_string())
            && stderr.contains("does not match"),
        "the refusal names the key and the file: {stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    // CLI commands refuse it too.
    let listed = server.cli_output(Via::Local, &["state", "list"]);
    assert!(!listed.status.success(), "{}", describe(&listed));

    std::fs::write(&path, &good).unwrap();
    server.restart();
    assert_eq!(read_marker(&server, "net"), Ok("v1".to_owned()));
}

fn a_running_server_keeps_its_keys_when_the_file_goes_bad(store: Store) {
    if skip_e2e() {
        return;
    }
    let mut server = Server::start(store);
    assert_eq!(write_state(&server, "net", 1, "before"), 200);
    let path = key_file(&server);
    let good = std::fs::read_to_string(&path).unwrap();
    let (active, _) = key_lines(&path);

    // One character of the key changes while the server runs.
    thread::sleep(Duration::from_millis(20));
    std::fs::write(&path, damaged(&good)).unwrap();
    assert_eq!(read_marker(&server, "net"), Ok("before".to_owned()));
    assert_eq!(write_state(&server, "net", 2, "during damage"), 200);
    assert_eq!(read_marker(&server, "net"), Ok("during damage".to_owned()));
    // The file is replaced by another installation's key file.
    let stranger = tempfile::tempdir().unwrap();
    let out = Command::new(common::BIN)
        .env("STATEHOUSE_DATA_DIR", stranger.path())
        .env_remove("STATEHOUSE_DATABASE_URL")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    thread::sleep(Duration::from_millis(20));
    std::fs::copy(stranger.path().join("master.key"), &path).unwrap();
    assert_eq!(write_state(&server, "net", 3, "during swap"), 200);
    assert_eq!(read_marker(&server, "net"), Ok("during swap".to_owned()));
    let log = server.log_text();
    assert!(
        log.contains("refused") && log.contains(&active[0]),
        "the server says it refused the changed file:\n{log}"
    );
    let by_key = sealed_rows_by_key(&server);
    assert!(
        by_key
            .iter()
            .all(|r| r.contains(&format!("|{}|", active[0]))),
        "everything is sealed under the verified key: {by_key:?}"
    );

    // The right file back, and a fresh start: every version opens.
    thread::sleep(Duration::from_millis(20));
    std::fs::write(&path, &good).unwrap();
    server.restart();
    for (version, marker) in [
        ("1", "before"),
        ("2", "during damage"),
        ("3", "during swap"),
    ] {
        let out = server.cli(&[
            "state",
            "get",
            "--workspace",
            "default",
            "net",
            "--version",
            version,
        ]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(marker),
            "version {version}: {}",
            describe(&out)
        );
    }
}

fn databases_made_before_key_checks_get_them_on_first_start(store: Store) {
    if skip_e2e() {
        return;
    }
    let mut server = Server::start(store);
    assert_eq!(write_state(&server, "net", 1, "old data"), 200);
    let path = key_file(&server);
    let good = std::fs::read_to_string(&path).unwrap();
    server.kill9();
    // As a database made before check values existed: none recorded.
    let forget = || {
        store_rows(&server, "DELETE FROM master_key_checks");
        assert!(store_rows(&server, "SELECT key_id FROM master_key_checks").is_empty());
    };
    forget();

    // A damaged key does not open the existing data: refused, nothing recorded.
    std::fs::write(&path, damaged(&good)).unwrap();
    let out = serve_output(&server);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not open the data"),
        "{}",
        describe(&out)
    );
    assert!(store_rows(&server, "SELECT key_id FROM master_key_checks").is_empty());

    // The right key opens it: its check value is recorded, and it starts.
    std::fs::write(&path, &good).unwrap();
    server.restart();
    let (active, _) = key_lines(&path);
    assert_eq!(
        store_rows(&server, "SELECT key_id FROM master_key_checks"),
        [active[0].clone()]
    );
    assert_eq!(read_marker(&server, "net"), Ok("old data".to_owned()));

    // A key file readable by others is warned about.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = server.cli_output(Via::Local, &["workspace", "list"]);
        assert!(out.status.success(), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("warning") && stderr.contains("0644") && stderr.contains("chmod 600"),
            "{stderr}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = server.cli_output(Via::Local, &["workspace", "list"]);
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("warning"),
            "{}",
            describe(&out)
        );
    }
}
