//! The backup pipeline against a real PostgreSQL (`STATEHOUSE_TEST_PG_URL`) and the real
//! `age`, `zstd` and `pg_restore` command-line tools: what statehouse writes must restore with
//! standard tools alone, and damaged files must never restore "successfully".

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use age::secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use statehouse_backup::pg_tools::{PgToolSearch, find_pg_tool, major_from_version_num};
use statehouse_backup::{
    BackupError, BackupMetadata, DEFAULT_ZSTD_LEVEL, DumpOptions, LocalDirTarget, PgConnection,
    object_name, run_backup,
};
use statehouse_core::clock::{Clock, FakeClock, Timestamp};

const URL_VAR: &str = "STATEHOUSE_TEST_PG_URL";
const SKIP_VAR: &str = "STATEHOUSE_SKIP_PG_TESTS";

/// The test server's URL; `None` (skip) only when the run opted out with `STATEHOUSE_SKIP_PG_TESTS=1`.
fn test_url() -> Option<String> {
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

fn url_for(base: &str, database: &str) -> String {
    let mut url = url::Url::parse(base).unwrap();
    url.set_path(database);
    url.to_string()
}

fn psql(url: &str, sql: &str) -> String {
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
struct TestDb {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDb {
    fn create(admin_url: &str, prefix: &str) -> TestDb {
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

const TABLES: [&str; 3] = ["customers", "orders", "blobs"];

fn fill(db: &TestDb) {
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

fn table_digest(url: &str, table: &str) -> String {
    psql(
        url,
        &format!(
            "SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"
        ),
    )
}

async fn pg_dump_for(url: &str) -> (PathBuf, String) {
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

fn options(pg_dump: PathBuf, url: &str, recipient: age::x25519::Recipient) -> DumpOptions {
    DumpOptions {
        pg_dump,
        connection: PgConnection::from_url(url).unwrap(),
        zstd_level: DEFAULT_ZSTD_LEVEL,
        recipients: vec![recipient],
        stall_timeout: Duration::from_secs(30),
        total_timeout: Duration::from_secs(120),
    }
}

/// `age -d -i key | zstd -d | pg_restore -d <url>` through `sh -c`: its status is pg_restore's.
fn restore_with_standard_tools(key: &Path, object: &Path, url: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(r#"age -d -i "$1" "$2" | zstd -d | pg_restore --no-owner --exit-on-error -d "$3""#)
        .args(["sh", key.to_str().unwrap(), object.to_str().unwrap(), url])
        .output()
        .unwrap()
}

fn write_key(dir: &Path, identity: &age::x25519::Identity) -> PathBuf {
    let key = dir.join("key.txt");
    std::fs::write(&key, format!("{}\n", identity.to_string().expose_secret())).unwrap();
    key
}

fn files_under(dir: &Path) -> Vec<String> {
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

#[tokio::test]
async fn a_backup_restores_with_age_zstd_and_pg_restore_alone_and_damage_is_detected() {
    let Some(admin) = test_url() else { return };
    let source = TestDb::create(&admin, "bk_src");
    fill(&source);
    let (pg_dump, server_version) = pg_dump_for(&admin).await;
    let identity = age::x25519::Identity::generate();
    let tmp = tempfile::tempdir().unwrap();
    let key = write_key(tmp.path(), &identity);
    let store = tmp.path().join("store");
    let target = LocalDirTarget::new(&store);
    let clock = FakeClock::new(Timestamp(1_795_000_000_000));
    let name = object_name(&source.name, clock.now(), "b1");

    let meta = run_backup(
        &options(pg_dump, &source.url, identity.to_public()),
        Some(server_version.clone()),
        &target,
        &name,
        None,
        &clock,
    )
    .await
    .unwrap();

    // The object and its sidecar, nothing partial.
    let object = store.join(&name);
    let sidecar = store.join(format!("{name}.json"));
    assert_eq!(
        files_under(&store),
        vec![object.display().to_string(), sidecar.display().to_string()]
    );
    let bytes = std::fs::read(&object).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    assert_eq!(meta.sha256, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(meta.stored_bytes, bytes.len() as u64);
    assert!(meta.dump_bytes > meta.stored_bytes / 2 && meta.stored_bytes > 3 * 64 * 1024);
    let on_disk: BackupMetadata =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    assert_eq!(on_disk, meta);
    assert_eq!(meta.database, source.name);
    assert_eq!(
        meta.server_version.as_deref(),
        Some(server_version.as_str())
    );
    assert_eq!(meta.recipients, vec![identity.to_public().to_string()]);
    assert_eq!(meta.zstd_level, 5);

    // Restore with the standard tools only, then compare every table.
    let restored = TestDb::create(&admin, "bk_dst");
    let out = restore_with_standard_tools(&key, &object, &restored.url);
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for table in TABLES {
        assert_eq!(
            table_digest(&restored.url, table),
            table_digest(&source.url, table),
            "{table}"
        );
    }
    // The serial sequence came along too.
    assert_eq!(
        psql(&restored.url, "SELECT last_value FROM customers_id_seq"),
        "500"
    );

    // One flipped byte in the middle: age's authentication fails, so does the restore.
    let corrupted = tmp.path().join("corrupted.dump.zst.age");
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    std::fs::write(&corrupted, &flipped).unwrap();
    let target_db = TestDb::create(&admin, "bk_bad");
    let out = restore_with_standard_tools(&key, &corrupted, &target_db.url);
    assert!(!out.status.success(), "a corrupted backup restored");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed to decrypt and authenticate"),
        "{stderr}"
    );
    let age_alone = Command::new("age")
        .args([
            "-d",
            "-i",
            key.to_str().unwrap(),
            "-o",
            "/dev/null",
            corrupted.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!age_alone.status.success(), "age accepted a corrupted file");

    // Cut in half: the restore fails as well.
    let truncated = tmp.path().join("truncated.dump.zst.age");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let target_db2 = TestDb::create(&admin, "bk_cut");
    let out = restore_with_standard_tools(&key, &truncated, &target_db2.url);
    assert!(!out.status.success(), "a truncated backup restored");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("age: error") && stderr.contains("pg_restore: error"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_failing_pg_dump_fails_the_backup_with_its_message_and_stores_nothing() {
    let Some(admin) = test_url() else { return };
    let (pg_dump, _) = pg_dump_for(&admin).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let clock = FakeClock::new(Timestamp(1_795_000_000_000));
    let url = url_for(&admin, "no_such_database_for_backup");
    let err = run_backup(
        &options(pg_dump, &url, age::x25519::Identity::generate().to_public()),
        None,
        &LocalDirTarget::new(&store),
        "x/x.dump.zst.age",
        None,
        &clock,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::PgDump { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("no_such_database_for_backup") && text.contains("does not exist"),
        "{text}"
    );
    assert!(files_under(&store).is_empty(), "{:?}", files_under(&store));
}

/// A stand-in pg_dump script (timeouts and exit codes without a real server).
fn fake_pg_dump(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("pg_dump");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn fake_options(pg_dump: PathBuf, stall_ms: u64, total_ms: u64) -> DumpOptions {
    DumpOptions {
        stall_timeout: Duration::from_millis(stall_ms),
        total_timeout: Duration::from_millis(total_ms),
        ..options(
            pg_dump,
            "postgres://u:secret-password@127.0.0.1:1/db",
            age::x25519::Identity::generate().to_public(),
        )
    }
}

fn assert_killed(pid_file: &Path) {
    let pid = std::fs::read_to_string(pid_file).unwrap();
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "pg_dump (pid {pid}) still runs"
    );
}

#[tokio::test]
async fn a_silent_pg_dump_is_stalled_out_and_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let pid = tmp.path().join("pid");
    let script = fake_pg_dump(
        tmp.path(),
        &format!("echo $$ > {}\nprintf start\nexec sleep 60", pid.display()),
    );
    let store = tmp.path().join("store");
    let clock = FakeClock::new(Timestamp(0));
    let err = run_backup(
        &fake_options(script, 300, 60_000),
        None,
        &LocalDirTarget::new(&store),
        "a/b",
        None,
        &clock,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::Stalled(_)), "{err:?}");
    assert!(err.to_string().contains("stalled"), "{err}");
    assert_killed(&pid);
    assert!(files_under(&store).is_empty());
}

#[tokio::test]
async fn a_slow_but_steady_pg_dump_hits_the_total_timeout_and_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let pid = tmp.path().join("pid");
    let script = fake_pg_dump(
        tmp.path(),
        &format!(
            "echo $$ > {}\nwhile true; do echo data; sleep 0.05; done",
            pid.display()
        ),
    );
    let err = run_backup(
        &fake_options(script, 5_000, 700),
        None,
        &LocalDirTarget::new(tmp.path().join("store")),
        "a/b",
        None,
        &FakeClock::new(Timestamp(0)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::TimedOut(_)), "{err:?}");
    assert_killed(&pid);
}

#[tokio::test]
async fn a_pg_dump_exiting_nonzero_after_output_never_succeeds_and_never_sees_the_password_in_argv()
{
    let tmp = tempfile::tempdir().unwrap();
    let args = tmp.path().join("args");
    let script = fake_pg_dump(
        tmp.path(),
        &format!(
            "echo \"$@\" > {}\nhead -c 300000 /dev/urandom\necho \"pg_dump: error: connection lost (password ${{PGPASSWORD:+set}})\" >&2\nexit 1",
            args.display()
        ),
    );
    let store = tmp.path().join("store");
    let err = run_backup(
        &fake_options(script, 5_000, 60_000),
        None,
        &LocalDirTarget::new(&store),
        "a/b",
        None,
        &FakeClock::new(Timestamp(0)),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BackupError::PgDump { .. }), "{err:?}");
    assert!(text.contains("connection lost (password set)"), "{text}");
    assert!(!text.contains("secret-password"), "{text}");
    let argv = std::fs::read_to_string(&args).unwrap();
    assert_eq!(argv.trim(), "--format=custom --compress=0 --no-password");
    assert!(files_under(&store).is_empty());
}

/// Peak resident memory of this process (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test]
async fn memory_stays_bounded_whatever_the_dump_size() {
    const DUMP: u64 = 200_000_000;
    let tmp = tempfile::tempdir().unwrap();
    // Incompressible bytes, so every layer really has to move all of them.
    let script = fake_pg_dump(tmp.path(), &format!("head -c {DUMP} /dev/urandom"));
    let before = peak_rss();
    let mut sink = tokio::io::sink();
    let outcome = statehouse_backup::dump_to(&fake_options(script, 10_000, 120_000), &mut sink)
        .await
        .unwrap();
    assert_eq!(outcome.dump_bytes, DUMP);
    assert!(outcome.stored_bytes > DUMP, "{outcome:?}");
    let grew = peak_rss().saturating_sub(before);
    assert!(
        grew < 64 * 1024 * 1024,
        "peak memory grew by {grew} bytes for a {DUMP}-byte dump"
    );
}
