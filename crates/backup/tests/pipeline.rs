//! The backup pipeline against a real PostgreSQL (`STATEHOUSE_TEST_PG_URL`) and the real
//! `age`, `zstd` and `pg_restore` command-line tools: what statehouse writes must restore with
//! standard tools alone, and damaged files must never restore "successfully".

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use age::secrecy::SecretString;
use common::*;
use sha2::{Digest, Sha256};
use statehouse_backup::{
    BackupError, BackupMetadata, DEFAULT_ZSTD_LEVEL, DumpOptions, Encryption, LocalDirTarget,
    PgConnection, generate_key_pair, object_name, run_backup,
};
use statehouse_core::clock::{Clock, FakeClock, Timestamp};
use tokio::io::AsyncReadExt;

fn options(pg_dump: PathBuf, url: &str, recipient: age::x25519::Recipient) -> DumpOptions {
    DumpOptions {
        pg_dump,
        connection: PgConnection::from_url(url).unwrap(),
        zstd_level: DEFAULT_ZSTD_LEVEL,
        encryption: Encryption::Recipients(vec![recipient]),
        count_rows: false,
        stall_timeout: Duration::from_secs(30),
        total_timeout: Duration::from_secs(120),
        exclusions: Default::default(),
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

#[test]
fn zstd_levels_beyond_the_memory_budget_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let script = fake_pg_dump(tmp.path(), "echo never");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for level in [0, 20, 22] {
        let options = DumpOptions {
            zstd_level: level,
            ..fake_options(script.clone(), 1_000, 1_000)
        };
        let err = rt
            .block_on(statehouse_backup::dump_to(&options, &mut tokio::io::sink()))
            .unwrap_err();
        assert!(err.to_string().contains("outside 1..=19"), "{err}");
    }
}

#[tokio::test]
async fn the_ca_certificate_reaches_pg_dump_as_a_private_file_and_never_as_an_argument() {
    let tmp = tempfile::tempdir().unwrap();
    let seen = tmp.path().join("seen");
    let script = fake_pg_dump(
        tmp.path(),
        &format!(
            "{{ echo \"args=$*\"; echo \"mode=$(stat -c %a \"$PGSSLROOTCERT\")\"; \
             echo \"sslmode=$PGSSLMODE timeout=$PGCONNECT_TIMEOUT\"; cat \"$PGSSLROOTCERT\"; }} > {}\n\
             printf dump",
            seen.display()
        ),
    );
    let mut options = fake_options(script, 5_000, 60_000);
    options.connection.sslmode = Some("verify-full".to_owned());
    options.connection.ca_certificate =
        Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_owned());
    options.connection.connect_timeout = Duration::from_millis(2500);
    statehouse_backup::dump_to(&options, &mut tokio::io::sink())
        .await
        .unwrap();
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert!(
        seen.contains("args=--format=custom --compress=0 --no-password\n"),
        "{seen}"
    );
    assert!(seen.contains("mode=600\n"), "{seen}");
    assert!(seen.contains("sslmode=verify-full timeout=3\n"), "{seen}");
    assert!(
        seen.contains("-----BEGIN CERTIFICATE-----\nMIIB\n"),
        "{seen}"
    );
}

/// Decrypts an object with the Rust age crate and decompresses it: the pg_dump archive.
fn decrypt_with_passphrase(object: &[u8], passphrase: &str) -> Vec<u8> {
    let decryptor = age::Decryptor::new(object).unwrap();
    assert!(decryptor.is_scrypt());
    let identity = age::scrypt::Identity::new(SecretString::from(passphrase.to_owned()));
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .unwrap();
    let mut compressed = Vec::new();
    reader.read_to_end(&mut compressed).unwrap();
    zstd::decode_all(compressed.as_slice()).unwrap()
}

#[tokio::test]
async fn a_passphrase_backup_decrypts_with_the_age_crate_and_restores_with_pg_restore() {
    let Some(admin) = test_url() else { return };
    let source = TestDb::create(&admin, "bk_pass");
    fill(&source);
    let passphrase = "a long and random passphrase: 7f3c9e";
    let (object, outcome) = dump_in_memory(
        &source,
        Encryption::from_config(&[], Some(SecretString::from(passphrase.to_owned()))).unwrap(),
    )
    .await;
    assert_eq!(outcome.stored_bytes, object.len() as u64);
    let archive = decrypt_with_passphrase(&object, passphrase);
    assert_eq!(archive.len() as u64, outcome.dump_bytes);
    assert!(archive.starts_with(b"PGDMP"));
    let tmp = tempfile::tempdir().unwrap();
    let archive_file = tmp.path().join("archive.dump");
    std::fs::write(&archive_file, &archive).unwrap();
    let restored = TestDb::create(&admin, "bk_pass_dst");
    let out = Command::new(pg_restore_for(&admin).await)
        .args(["--no-owner", "--exit-on-error", "-d", &restored.url])
        .arg(&archive_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for table in TABLES {
        assert_eq!(
            table_digest(&restored.url, table),
            table_digest(&source.url, table)
        );
    }
}

#[tokio::test]
async fn every_recipient_can_decrypt_with_the_age_cli() {
    let Some(admin) = test_url() else { return };
    let source = TestDb::create(&admin, "bk_multi");
    psql(
        &source.url,
        "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 42)",
    );
    let (first, first_public) = generate_key_pair();
    let (second, second_public) = generate_key_pair();
    let encryption = Encryption::from_config(&[first_public, second_public], None).unwrap();
    let (object, outcome) = dump_in_memory(&source, encryption).await;
    assert_eq!(
        outcome.row_counts,
        Some([("public.t".to_owned(), 42)].into_iter().collect())
    );
    let tmp = tempfile::tempdir().unwrap();
    let object_file = tmp.path().join("object.age");
    std::fs::write(&object_file, &object).unwrap();
    for (name, identity) in [("first.txt", &first), ("second.txt", &second)] {
        let key = write_identity_file(tmp.path(), name, identity);
        let restored = TestDb::create(&admin, "bk_multi_dst");
        let out = restore_with_standard_tools(&key, &object_file, &restored.url);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(psql(&restored.url, "SELECT count(*) FROM t"), "42");
    }
}

#[tokio::test]
async fn row_counts_are_those_of_the_dumped_snapshot_not_of_later_writes() {
    let Some(admin) = test_url() else { return };
    let source = TestDb::create(&admin, "bk_snap");
    fill(&source);
    let before = current_counts(&source.url, &TABLES);
    let (pg_dump, _) = pg_dump_for(&admin).await;
    let (identity, recipient) = generate_key_pair();
    let options = dump_options(
        pg_dump,
        &source.url,
        Encryption::from_config(&[recipient], None).unwrap(),
    );
    // A small pipe: pg_dump blocks until the test reads, so the writes below happen while the
    // dump is under way (after the snapshot was exported and counted).
    let (mut writer, mut reader) = tokio::io::duplex(16 * 1024);
    let dump = async move {
        let outcome = statehouse_backup::dump_to(&options, &mut writer).await;
        drop(writer);
        outcome
    };
    let read = async {
        let mut first = [0u8; 1];
        reader.read_exact(&mut first).await.unwrap();
        psql(
            &source.url,
            "INSERT INTO customers (name) SELECT 'late ' || i FROM generate_series(1, 7) i;
             DELETE FROM orders WHERE id <= 100;
             CREATE TABLE created_later (id int); INSERT INTO created_later VALUES (1);",
        );
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        let mut object = first.to_vec();
        object.extend(rest);
        object
    };
    let (outcome, object) = tokio::join!(dump, read);
    let outcome = outcome.unwrap();
    let counts = outcome.row_counts.unwrap();
    assert_eq!(counts, before);
    assert_ne!(current_counts(&source.url, &TABLES), before);

    // The restored database has exactly the counted rows.
    let tmp = tempfile::tempdir().unwrap();
    let key = write_identity_file(tmp.path(), "key.txt", &identity);
    let object_file = tmp.path().join("object.age");
    std::fs::write(&object_file, &object).unwrap();
    let restored = TestDb::create(&admin, "bk_snap_dst");
    let out = restore_with_standard_tools(&key, &object_file, &restored.url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(current_counts(&restored.url, &TABLES), counts);
    assert_eq!(
        psql(
            &restored.url,
            "SELECT count(*) FROM pg_class WHERE relname = 'created_later'"
        ),
        "0"
    );
}

#[tokio::test]
async fn counting_rows_passes_the_exported_snapshot_to_pg_dump() {
    let Some(admin) = test_url() else { return };
    let source = TestDb::create(&admin, "bk_snaparg");
    let tmp = tempfile::tempdir().unwrap();
    let args = tmp.path().join("args");
    let script = fake_pg_dump(
        tmp.path(),
        &format!("echo \"$@\" > {}\nprintf x", args.display()),
    );
    let options = DumpOptions {
        count_rows: true,
        ..options(
            script,
            &source.url,
            age::x25519::Identity::generate().to_public(),
        )
    };
    let outcome = statehouse_backup::dump_to(&options, &mut tokio::io::sink())
        .await
        .unwrap();
    assert_eq!(outcome.row_counts, Some(Default::default()));
    let argv = std::fs::read_to_string(&args).unwrap();
    let snapshot = argv
        .trim()
        .strip_prefix("--format=custom --compress=0 --no-password --snapshot=")
        .unwrap_or_else(|| panic!("{argv}"));
    assert!(!snapshot.is_empty() && !snapshot.contains(' '), "{argv}");
}
