//! Helpers of the CLI backup tests: JSON output, failures, queries on the test PostgreSQL, a
//! server with a local-directory target, a source database, backups, events and audit entries,
//! a second throwaway PostgreSQL cluster.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::common::{PgDatabase, Server, Store, describe, http_client, pg_execute};

pub fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{}", describe(out)))
}

/// Asserts the command failed with `code`, and returns its stderr.
pub fn fails(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit status {code}\n{}",
        describe(out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One text value from a query on `url`.
pub fn pg_text(url: &str, sql: &str) -> String {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let value: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = conn.close().await;
        value.unwrap_or_default()
    })
}

/// A server with a local-directory target `nas` (the directory is returned).
pub fn with_target(store: Store) -> (Server, tempfile::TempDir) {
    with_target_allowing(store, &[])
}

/// [`with_target`] with more server settings.
pub fn with_target_allowing(
    store: Store,
    more_env: &[(&str, &str)],
) -> (Server, tempfile::TempDir) {
    let server = Server::start_allowing(store, more_env);
    let dir = tempfile::tempdir().unwrap();
    server.cli(&[
        "target",
        "add",
        "nas",
        "--kind",
        "local",
        "--set",
        &format!("path={}", dir.path().display()),
    ]);
    (server, dir)
}

/// A database with one table of `rows` rows.
pub fn source(prefix: &str, rows: u32) -> PgDatabase {
    let db = PgDatabase::create(prefix);
    pg_execute(
        &db.url,
        &format!(
            "CREATE TABLE items (id int PRIMARY KEY, name text);
             INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, {rows}) g;"
        ),
    )
    .unwrap();
    db
}

pub fn items(url: &str) -> String {
    pg_text(
        url,
        "SELECT count(*)::text || ':' || md5(string_agg(id || name, ',' ORDER BY id)) FROM items",
    )
}

/// The id of the only backup a `db backup --json` printed.
pub fn only_backup(out: &Output) -> String {
    let runs = json_of(out);
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs[0]["status"], "succeeded", "{runs}");
    runs[0]["id"].as_str().unwrap().to_owned()
}

/// The stored events, oldest first (as the instance admin sees them).
pub fn events(server: &Server) -> Vec<Value> {
    let response = http_client()
        .get(format!("{}/api/v1/events?limit=1000", server.url))
        .bearer_auth(&server.admin_token)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().unwrap();
    page["items"].as_array().unwrap().clone()
}

/// `audit list --action ACTION` entries, newest first.
pub fn audit(server: &Server, action: &str) -> Vec<Value> {
    let page = json_of(&server.cli(&["audit", "list", "--action", action, "--json"]));
    page["items"].as_array().unwrap().clone()
}

/// Reads one HTTP request from `stream`, answers it 200 and returns its body (a stand-in for
/// a notifier's or webhook's receiver).
pub fn answer_request(stream: TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    let mut stream = stream;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    body
}

/// A second, empty PostgreSQL cluster started with `scripts/pg-cluster.sh` (as the test
/// command starts the first one), stopped and removed at the end.
pub struct FreshCluster {
    dir: tempfile::TempDir,
    pub url: String,
}

impl FreshCluster {
    pub fn start() -> FreshCluster {
        let dir = tempfile::Builder::new()
            .prefix("statehouse-fresh-pg-")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir.path())
            .arg(port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "starting a second cluster failed\n{}",
            describe(&out)
        );
        FreshCluster {
            url: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            dir,
        }
    }
}

impl Drop for FreshCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-cluster.sh")
}
