//! Restoring stored objects into a real PostgreSQL: streamed and spooled (parallel), with
//! database creation, checksums, progress, and every kind of damage failing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Mutex;
use std::time::Duration;

use age::secrecy::SecretString;
use common::*;
use statehouse_backup::{
    BackupError, Decryption, Encryption, PgConnection, RestoreOptions, generate_key_pair,
    restore_from,
};

/// A database name needing quotes everywhere: spaces, a double quote, a single quote, `=`.
fn awkward_name() -> String {
    format!("rst \"q\" it's=x {}", &unique("n")[2..])
}

/// Drops a database by any name when this goes out of scope (also on panic).
struct DropDatabase<'a> {
    admin: &'a str,
    name: &'a str,
}

impl Drop for DropDatabase<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                self.admin,
                "-X",
                "-q",
                "-c",
                &format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name.replace('"', "\"\"")
                ),
            ])
            .output();
    }
}

struct Fixture {
    admin: String,
    source: TestDb,
    object: Vec<u8>,
    sha256: String,
    decryption: Decryption,
}

async fn fixture(prefix: &str) -> Option<Fixture> {
    let admin = test_url()?;
    let source = TestDb::create(&admin, prefix);
    fill(&source);
    let (identity, recipient) = generate_key_pair();
    let (object, outcome) = dump_in_memory(
        &source,
        Encryption::from_config(&[recipient], None).unwrap(),
    )
    .await;
    Some(Fixture {
        admin,
        source,
        sha256: outcome.sha256,
        object,
        decryption: Decryption::from_identity_file_text(&identity).unwrap(),
    })
}

async fn options_for(f: &Fixture, database: &str) -> RestoreOptions {
    let mut connection = PgConnection::from_url(&f.admin).unwrap();
    connection.database = database.to_owned();
    let mut options = RestoreOptions::new(
        pg_restore_for(&f.admin).await,
        connection,
        f.decryption.clone(),
    );
    options.expected_sha256 = Some(f.sha256.clone());
    options.stall_timeout = Duration::from_secs(30);
    options.total_timeout = Duration::from_secs(120);
    options
}

fn assert_same_tables(f: &Fixture, url: &str) {
    for table in TABLES {
        assert_eq!(
            table_digest(url, table),
            table_digest(&f.source.url, table),
            "{table}"
        );
    }
}

#[tokio::test]
async fn a_streamed_restore_creates_the_database_reports_progress_and_can_run_again() {
    let Some(f) = fixture("rs_stream").await else {
        return;
    };
    let name = awkward_name();
    let mut options = options_for(&f, &name).await;
    options.create_if_missing = true;
    let _cleanup = DropDatabase {
        admin: &f.admin,
        name: &name,
    };
    let seen = Mutex::new(Vec::new());
    let progress = |n: u64| seen.lock().unwrap().push(n);
    let outcome = restore_from(&options, &mut f.object.as_slice(), &progress)
        .await
        .unwrap();
    let url = url_for(&f.admin, &name);
    assert!(outcome.created_database);
    assert_eq!(outcome.sha256, f.sha256);
    assert_eq!(outcome.stored_bytes, f.object.len() as u64);
    assert_same_tables(&f, &url);
    let seen = seen.into_inner().unwrap();
    assert!(seen.len() > 1, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen.last().copied(), Some(f.object.len() as u64));

    // Again into the same, now populated, database: --clean --if-exists replaces everything.
    psql(
        &url,
        "INSERT INTO customers (name) VALUES ('extra'); CREATE TABLE stray (x int)",
    );
    let again = restore_from(&options, &mut f.object.as_slice(), &|_| {})
        .await
        .unwrap();
    assert!(!again.created_database);
    assert_same_tables(&f, &url);
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) FROM pg_class WHERE relname = 'stray'"
        ),
        "1",
        "--clean drops only the dump's own objects"
    );
}

#[tokio::test]
async fn a_parallel_restore_spools_to_disk_and_leaves_no_file_behind() {
    let Some(f) = fixture("rs_jobs").await else {
        return;
    };
    let target = TestDb::create(&f.admin, "rs_jobs_dst");
    let spool = tempfile::tempdir().unwrap();
    let mut options = options_for(&f, &target.name).await;
    options.jobs = 3;
    options.spool_dir = Some(spool.path().to_path_buf());
    let outcome = restore_from(&options, &mut f.object.as_slice(), &|_| {})
        .await
        .unwrap();
    assert!(!outcome.created_database);
    assert!(outcome.dump_bytes > outcome.stored_bytes / 2);
    assert_same_tables(&f, &target.url);
    assert!(files_under(spool.path()).is_empty());

    options.single_transaction = true;
    let err = restore_from(&options, &mut f.object.as_slice(), &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("single transaction"), "{err}");
}

/// Runs a restore that must fail, in both modes, into empty databases; returns the errors.
async fn failing_restores(
    f: &Fixture,
    object: &[u8],
    tweak: impl Fn(&mut RestoreOptions),
) -> Vec<BackupError> {
    let mut errors = Vec::new();
    for jobs in [1, 2] {
        let target = TestDb::create(&f.admin, "rs_fail");
        let spool = tempfile::tempdir().unwrap();
        let mut options = options_for(f, &target.name).await;
        options.jobs = jobs;
        options.spool_dir = Some(spool.path().to_path_buf());
        tweak(&mut options);
        let err = restore_from(&options, &mut &object[..], &|_| {})
            .await
            .expect_err("a bad restore succeeded");
        assert!(files_under(spool.path()).is_empty());
        errors.push(err);
    }
    errors
}

#[tokio::test]
async fn damaged_truncated_or_foreign_objects_never_restore() {
    let Some(f) = fixture("rs_bad").await else {
        return;
    };
    let mut flipped = f.object.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    for err in failing_restores(&f, &flipped, |o| o.expected_sha256 = None).await {
        assert!(matches!(err, BackupError::Decode(_)), "{err:?}");
        assert!(err.to_string().contains("damaged"), "{err}");
    }
    // With the checksum known, the same damage is a decode error too (found first).
    for err in failing_restores(&f, &flipped, |_| {}).await {
        assert!(matches!(err, BackupError::Decode(_)), "{err:?}");
    }
    for cut in [f.object.len() / 2, f.object.len() - 1, 64 * 1024 + 16 + 200] {
        for err in failing_restores(&f, &f.object[..cut], |o| o.expected_sha256 = None).await {
            assert!(
                matches!(err, BackupError::Decode(_)),
                "cut at {cut}: {err:?}"
            );
        }
    }
    let mut extended = f.object.clone();
    extended.extend_from_slice(b"trailing garbage");
    for err in failing_restores(&f, &extended, |o| o.expected_sha256 = None).await {
        assert!(matches!(err, BackupError::Decode(_)), "{err:?}");
    }
    let (stranger, _) = generate_key_pair();
    for err in failing_restores(&f, &f.object, |o| {
        o.decryption = Decryption::from_identity_file_text(&stranger).unwrap()
    })
    .await
    {
        assert!(err.to_string().contains("other recipients"), "{err}");
    }
    for err in failing_restores(&f, &f.object, |o| {
        o.decryption = Decryption::Passphrase(SecretString::from("x".to_owned()))
    })
    .await
    {
        assert!(err.to_string().contains("not with a passphrase"), "{err}");
    }
    for err in failing_restores(&f, &f.object, |o| {
        o.expected_sha256 = Some("00".repeat(32));
    })
    .await
    {
        assert!(
            matches!(err, BackupError::ChecksumMismatch { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&f.sha256), "{err}");
    }
    for err in failing_restores(&f, b"not an age file at all", |o| o.expected_sha256 = None).await {
        assert!(
            err.to_string().contains("not an age-encrypted backup"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_failing_pg_restore_reports_its_own_message() {
    let Some(f) = fixture("rs_sql").await else {
        return;
    };
    // Without --clean, restoring over existing tables fails on the first CREATE TABLE.
    for jobs in [1, 2] {
        let target = TestDb::create(&f.admin, "rs_sql_dst");
        psql(&target.url, "CREATE TABLE blobs (x int)");
        let mut options = options_for(&f, &target.name).await;
        options.clean = false;
        options.jobs = jobs;
        let err = restore_from(&options, &mut f.object.as_slice(), &|_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, BackupError::PgRestore { .. }), "{err:?}");
        assert!(err.to_string().contains("already exists"), "{err}");
    }
}

#[tokio::test]
async fn a_passphrase_backup_restores_with_the_passphrase() {
    let Some(admin) = test_url() else { return };
    let source = TestDb::create(&admin, "rs_pass");
    fill(&source);
    let passphrase = SecretString::from("correct horse battery staple 91".to_owned());
    let (object, outcome) = dump_in_memory(
        &source,
        Encryption::from_config(&[], Some(passphrase.clone())).unwrap(),
    )
    .await;
    let target = TestDb::create(&admin, "rs_pass_dst");
    let f = Fixture {
        admin: admin.clone(),
        source,
        object,
        sha256: outcome.sha256,
        decryption: Decryption::Passphrase(passphrase),
    };
    let options = options_for(&f, &target.name).await;
    restore_from(&options, &mut f.object.as_slice(), &|_| {})
        .await
        .unwrap();
    assert_same_tables(&f, &target.url);
    let wrong = RestoreOptions {
        decryption: Decryption::Passphrase(SecretString::from("wrong".to_owned())),
        ..options
    };
    let err = restore_from(&wrong, &mut f.object.as_slice(), &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("passphrase is wrong"), "{err}");
}

#[tokio::test]
async fn a_stalled_object_read_fails_the_restore_and_stops_pg_restore() {
    let Some(f) = fixture("rs_stall").await else {
        return;
    };
    let target = TestDb::create(&f.admin, "rs_stall_dst");
    let mut options = options_for(&f, &target.name).await;
    options.stall_timeout = Duration::from_millis(300);
    // Half the object, then the storage goes silent.
    let (mut writer, mut reader) = tokio::io::duplex(64 * 1024);
    let half = f.object[..f.object.len() / 2].to_vec();
    let feed = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        writer.write_all(&half).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(writer);
    });
    let started = std::time::Instant::now();
    let err = restore_from(&options, &mut reader, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::Stalled(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
    feed.abort();
    // pg_restore was killed; its session goes away with it.
    let sessions = || {
        psql(
            &f.admin,
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'",
                target.name
            ),
        )
    };
    let mut left = sessions();
    for _ in 0..50 {
        if left == "0" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        left = sessions();
    }
    assert_eq!(left, "0");
}

/// Peak resident memory of this process (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn script(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn memory_stays_bounded_while_dumping_straight_into_a_restore() {
    const DUMP: u64 = 200_000_000;
    let tmp = tempfile::tempdir().unwrap();
    let received = tmp.path().join("received");
    // Incompressible bytes, so every layer really has to move all of them.
    let pg_dump = script(
        tmp.path(),
        "pg_dump",
        &format!("head -c {DUMP} /dev/urandom"),
    );
    let pg_restore = script(
        tmp.path(),
        "pg_restore",
        &format!("wc -c > {}", received.display()),
    );
    let (identity, recipient) = generate_key_pair();
    let connection = PgConnection::from_url("postgres://u@127.0.0.1:1/db").unwrap();
    let dump = statehouse_backup::DumpOptions {
        pg_dump,
        connection: connection.clone(),
        zstd_level: statehouse_backup::DEFAULT_ZSTD_LEVEL,
        encryption: Encryption::from_config(&[recipient], None).unwrap(),
        count_rows: false,
        stall_timeout: Duration::from_secs(10),
        total_timeout: Duration::from_secs(120),
        exclusions: Default::default(),
    };
    let mut restore = RestoreOptions::new(
        pg_restore,
        connection,
        Decryption::from_identity_file_text(&identity).unwrap(),
    );
    restore.stall_timeout = Duration::from_secs(10);
    let before = peak_rss();
    let (mut writer, mut reader) = tokio::io::duplex(256 * 1024);
    let dumping = async move {
        let outcome = statehouse_backup::dump_to(&dump, &mut writer).await;
        drop(writer);
        outcome
    };
    let (dumped, restored) = tokio::join!(dumping, restore_from(&restore, &mut reader, &|_| {}));
    let (dumped, restored) = (dumped.unwrap(), restored.unwrap());
    assert_eq!(restored.dump_bytes, DUMP);
    assert_eq!(restored.sha256, dumped.sha256);
    assert_eq!(restored.stored_bytes, dumped.stored_bytes);
    assert_eq!(
        std::fs::read_to_string(&received).unwrap().trim(),
        DUMP.to_string()
    );
    let grew = peak_rss().saturating_sub(before);
    assert!(
        grew < 64 * 1024 * 1024,
        "peak memory grew by {grew} bytes dumping and restoring {DUMP} bytes"
    );
}

#[tokio::test]
async fn pg_restore_never_sees_the_whole_archive_of_an_object_with_the_wrong_checksum() {
    const DUMP: u64 = 1_000_000;
    let tmp = tempfile::tempdir().unwrap();
    let received = tmp.path().join("received");
    let pg_dump = script(
        tmp.path(),
        "pg_dump",
        &format!("head -c {DUMP} /dev/urandom"),
    );
    // Records what it was given, then waits for its input to end like pg_restore does.
    let pg_restore = script(
        tmp.path(),
        "pg_restore",
        &format!("cat > {}", received.display()),
    );
    let (identity, recipient) = generate_key_pair();
    let connection = PgConnection::from_url("postgres://u@127.0.0.1:1/db").unwrap();
    let dump = statehouse_backup::DumpOptions {
        pg_dump,
        connection: connection.clone(),
        zstd_level: statehouse_backup::DEFAULT_ZSTD_LEVEL,
        encryption: Encryption::from_config(&[recipient], None).unwrap(),
        count_rows: false,
        stall_timeout: Duration::from_secs(10),
        total_timeout: Duration::from_secs(60),
        exclusions: Default::default(),
    };
    let mut object = Vec::new();
    let dumped = statehouse_backup::dump_to(&dump, &mut object)
        .await
        .unwrap();
    let mut restore = RestoreOptions::new(
        pg_restore,
        connection,
        Decryption::from_identity_file_text(&identity).unwrap(),
    );

    restore.expected_sha256 = Some("0".repeat(64));
    let err = restore_from(&restore, &mut object.as_slice(), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackupError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    let got = std::fs::metadata(&received).map(|m| m.len()).unwrap_or(0);
    assert!(got < DUMP, "pg_restore received all {got} bytes");

    // The control: with the right checksum it gets every byte.
    restore.expected_sha256 = Some(dumped.sha256.to_uppercase());
    restore_from(&restore, &mut object.as_slice(), &|_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::metadata(&received).unwrap().len(), DUMP);
}
