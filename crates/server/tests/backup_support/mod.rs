//! Helpers of the backup API tests: the test PostgreSQL, source databases with data, a server
//! with a local-directory target and a registered database.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::{Value, json};
use statehouse_core::access::Role;

use crate::common::TestServer;

/// The test PostgreSQL's URL: required in CI, the tests are skipped with a note elsewhere.
pub fn pg_url() -> Option<String> {
    match std::env::var("STATEHOUSE_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok() => panic!("STATEHOUSE_TEST_PG_URL is not set"),
        _ => {
            eprintln!("SKIPPED: STATEHOUSE_TEST_PG_URL is not set");
            None
        }
    }
}

pub fn with_db(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_path(&format!("/{db}"));
    u.to_string()
}

pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtX", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A fresh database with two tables of data; returns its name.
pub fn source_db(url: &str, prefix: &str) -> String {
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    psql(url, &format!("CREATE DATABASE {name}"));
    psql(
        &with_db(url, &name),
        "CREATE TABLE customers (id int PRIMARY KEY, name text);
         INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 2000) g;
         CREATE TABLE orders (id bigserial PRIMARY KEY, customer int REFERENCES customers, total numeric);
         INSERT INTO orders (customer, total) SELECT 1 + g % 2000, g * 1.5 FROM generate_series(1, 5000) g;",
    );
    name
}

/// Every table's contents as one checksum (order-independent per table).
pub fn contents(url: &str) -> String {
    psql(
        url,
        "SELECT string_agg(t, ',' ORDER BY t) FROM (
           SELECT 'customers:' || count(*) || ':' || md5(string_agg(id || name, '' ORDER BY id)) AS t FROM customers
           UNION ALL
           SELECT 'orders:' || count(*) || ':' || md5(string_agg(id || '/' || customer || '/' || total, '' ORDER BY id)) FROM orders
         ) x",
    )
}

pub struct Setup {
    pub s: TestServer,
    pub admin: String,
    pub url: String,
    pub db: String,
    pub dir: tempfile::TempDir,
}

/// A server with a local-directory target `local` and database `shop` registered.
pub async fn setup(extra: Value) -> Option<Setup> {
    let url = pg_url()?;
    let s = TestServer::start().await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let dir = tempfile::tempdir().unwrap();
    let (status, body) = s
        .api(
            "POST",
            "/workspaces/default/targets",
            Some(&admin),
            Some(json!({"name": "local", "settings": {"kind": "local", "path": dir.path()}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let db = source_db(&url, "shop");
    let mut request = json!({"name": "shop", "target": "local", "url": with_db(&url, &db)});
    for (k, v) in extra.as_object().unwrap() {
        request[k] = v.clone();
    }
    let (status, body) = s
        .api(
            "POST",
            "/workspaces/default/databases",
            Some(&admin),
            Some(request),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    Some(Setup {
        s,
        admin,
        url,
        db,
        dir,
    })
}

impl Setup {
    pub async fn backup_now(&self) -> Value {
        let (status, body) = self
            .s
            .api(
                "POST",
                "/workspaces/default/databases/shop/backups",
                Some(&self.admin),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body[0].clone()
    }

    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for entry in walk(self.dir.path()) {
            out.push(
                entry
                    .strip_prefix(self.dir.path())
                    .unwrap()
                    .display()
                    .to_string(),
            );
        }
        out.sort();
        out
    }
}

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `POST …/backups/{id}/verify` in the default workspace.
pub async fn verify(s: &TestServer, token: &str, id: &str) -> (u16, Value) {
    s.api(
        "POST",
        &format!("/workspaces/default/backups/{id}/verify"),
        Some(token),
        None,
    )
    .await
}
