//! Helpers shared by the PostgreSQL tests of statehouse-backup.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use age::secrecy::ExposeSecret;
use statehouse_backup::pg_tools::{PgToolSearch, find_pg_tool, major_from_version_num};
use statehouse_backup::{DEFAULT_ZSTD_LEVEL, DumpOptions, Encryption, PgConnection, RowCounts};

pub const URL_VAR: &str = "STATEHOUSE_TEST_PG_URL";
pub const SKIP_VAR: &str = "STATEHOUSE_SKIP_PG_TESTS";

/// The test server's URL; `None` (skip) only when the run opted out with `STATEHOUSE_SKIP_PG_TESTS=1`.
pub fn test_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var(SKIP_VAR).as_deref() == Ok("1") => {
            eprintln!("{URL_VAR} is not set and {SKIP_VAR}=1: skipping a PostgreSQL test");
            None
        }
        _ => panic!(
            "{URL_VAR} is not set, so backups cannot be tested. Start a throwaway server with\n    \
             scripts/pg-cluster.sh start /tmp/pg 55432\nthen run\n    \
             {URL_VAR}=postgres://postgres@127.0.0.1:55432/postgres cargo test -p statehouse-backup\n\
             (or set {SKIP_VAR}=1 to skip these tests)"
        ),
    }
}

pub fn url_for(base: &str, database: &str) -> String {
    let mut url = url::Url::parse(base).unwrap();
    url.set_path(database);
    url.to_string()
}

pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql failed on {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A uniquely named database, dropped when this goes out of scope (also on panic).
pub struct TestDb {
    pub admin_url: String,
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn create(admin_url: &str, prefix: &str) -> TestDb {
        let name = format!(
            "{prefix}_{}",
            statehouse_core::service::new_id().replace('-', "")
        );
        psql(admin_url, &format!("CREATE DATABASE {name}"));
        TestDb {
            admin_url: admin_url.to_owned(),
            url: url_for(admin_url, &name),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.admin_url.as_str(),
                "-X",
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

pub const TABLES: [&str; 3] = ["customers", "orders", "blobs"];

pub fn fill(db: &TestDb) {
    psql(
        &db.url,
        "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, meta jsonb);
         CREATE TABLE orders (id bigint PRIMARY KEY, customer int REFERENCES customers(id),
                              total numeric(12,2), at timestamptz);
         CREATE TABLE blobs (id int PRIMARY KEY, payload bytea, note text);
         INSERT INTO customers (name, meta)
           SELECT 'customer ' || i || ' «ü»', jsonb_build_object('i', i, 'tags', ARRAY['a', 'b'])
           FROM generate_series(1, 500) i;
         INSERT INTO orders
           SELECT i, 1 + i % 500, i * 1.25, timestamptz '2026-01-01 00:00+00' + i * interval '1 minute'
           FROM generate_series(1, 5000) i;
         -- Enough poorly compressible bytes that the object spans many age chunks (64 KiB each).
         INSERT INTO blobs
           SELECT i, decode(md5(i::text) || md5((i * 7)::text), 'hex'), md5((i * 3)::text)
           FROM generate_series(1, 40000) i;",
    );
}

pub fn table_digest(url: &str, table: &str) -> String {
    psql(
        url,
        &format!(
            "SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"
        ),
    )
}

pub async fn pg_dump_for(url: &str) -> (PathBuf, String) {
    let version_num: u32 = psql(url, "SHOW server_version_num").parse().unwrap();
    let tool = find_pg_tool(
        "pg_dump",
        major_from_version_num(version_num),
        &PgToolSearch::system(),
    )
    .await
    .unwrap();
    (tool.path, psql(url, "SHOW server_version"))
}

pub fn write_key(dir: &Path, identity: &age::x25519::Identity) -> PathBuf {
    let key = dir.join("key.txt");
    std::fs::write(&key, format!("{}\n", identity.to_string().expose_secret())).unwrap();
    key
}

pub fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found.sort();
    found
}

/// A uniquely suffixed name (lowercase, valid as an unquoted identifier).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &statehouse_core::service::new_id().replace('-', "")[..16]
    )
}

/// pg_restore able to handle the test server.
pub async fn pg_restore_for(url: &str) -> PathBuf {
    let version_num: u32 = psql(url, "SHOW server_version_num").parse().unwrap();
    find_pg_tool(
        "pg_restore",
        major_from_version_num(version_num),
        &PgToolSearch::system(),
    )
    .await
    .unwrap()
    .path
}

/// Dump options for a real database, encrypted to `recipient`.
pub fn dump_options(pg_dump: PathBuf, url: &str, encryption: Encryption) -> DumpOptions {
    DumpOptions {
        pg_dump,
        connection: PgConnection::from_url(url).unwrap(),
        zstd_level: DEFAULT_ZSTD_LEVEL,
        encryption,
        count_rows: true,
        stall_timeout: Duration::from_secs(30),
        total_timeout: Duration::from_secs(120),
        exclusions: Default::default(),
    }
}

/// Dumps `db` (with row counts) into memory: the stored object and the outcome.
pub async fn dump_in_memory(
    db: &TestDb,
    encryption: Encryption,
) -> (Vec<u8>, statehouse_backup::DumpOutcome) {
    let (pg_dump, _) = pg_dump_for(&db.url).await;
    let mut object = Vec::new();
    let outcome =
        statehouse_backup::dump_to(&dump_options(pg_dump, &db.url, encryption), &mut object)
            .await
            .unwrap();
    (object, outcome)
}

/// Row counts of the user tables as psql sees them now.
pub fn current_counts(url: &str, tables: &[&str]) -> RowCounts {
    tables
        .iter()
        .map(|t| {
            (
                format!("public.{t}"),
                psql(url, &format!("SELECT count(*) FROM {t}"))
                    .parse()
                    .unwrap(),
            )
        })
        .collect()
}

/// The group whose members must log in with a password (scripts/pg-cluster.sh puts it first in
/// pg_hba.conf); created here when missing. Panics with instructions when the cluster was
/// started without that rule, since wrong passwords cannot be tested on a trust-only cluster.
pub const PASSWORD_GROUP: &str = "statehouse_password_auth";

pub fn require_password_group(admin_url: &str) {
    psql(
        admin_url,
        &format!(
            "DO $$ BEGIN CREATE ROLE {PASSWORD_GROUP} NOLOGIN;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ),
    );
    let rules = psql(
        admin_url,
        &format!(
            "SELECT count(*) FROM pg_hba_file_rules
             WHERE '+{PASSWORD_GROUP}' = ANY(user_name) AND auth_method = 'scram-sha-256'"
        ),
    );
    assert_eq!(
        rules, "1",
        "the test cluster's pg_hba.conf lacks the password rule for +{PASSWORD_GROUP}: restart \
         it with scripts/pg-cluster.sh (stop, then start), which adds the rule"
    );
}

/// Creates a login role that must authenticate with `password`; dropped (with what it owns
/// and was granted in `databases`) by the returned guard.
pub fn password_role(admin_url: &str, prefix: &str, password: &str) -> TestRole {
    require_password_group(admin_url);
    let name = unique(prefix);
    psql(
        admin_url,
        &format!("CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {PASSWORD_GROUP}"),
    );
    TestRole {
        admin_url: admin_url.to_owned(),
        name,
        databases: Vec::new(),
    }
}

/// A role dropped when this goes out of scope: `DROP OWNED` in each of `databases`, then
/// `DROP ROLE`.
pub struct TestRole {
    pub admin_url: String,
    pub name: String,
    pub databases: Vec<String>,
}

impl Drop for TestRole {
    fn drop(&mut self) {
        for db in &self.databases {
            let _ = Command::new("psql")
                .args([
                    url_for(&self.admin_url, db).as_str(),
                    "-X",
                    "-q",
                    "-c",
                    &format!("DROP OWNED BY {}", self.name),
                ])
                .output();
        }
        let _ = Command::new("psql")
            .args([
                self.admin_url.as_str(),
                "-X",
                "-q",
                "-c",
                &format!("DROP ROLE IF EXISTS {}", self.name),
            ])
            .output();
    }
}

/// `url` with another user and password.
pub fn url_as(url: &str, user: &str, password: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_username(user).unwrap();
    url.set_password(Some(password)).unwrap();
    url.to_string()
}

pub fn write_identity_file(
    dir: &Path,
    name: &str,
    identity: &age::secrecy::SecretString,
) -> PathBuf {
    let key = dir.join(name);
    std::fs::write(&key, format!("{}\n", identity.expose_secret())).unwrap();
    key
}
