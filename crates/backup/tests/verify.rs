//! Verifying stored backups, cheap (no server) and full (restore into a scratch database and
//! compare row counts), against a real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use statehouse_backup::verify::SCRATCH_DATABASE_PREFIX;
use statehouse_backup::{
    Decryption, Encryption, PgConnection, RowCountMismatch, RowCounts, VerificationLevel,
    VerifyOptions, generate_key_pair, verify_cheap, verify_full,
};

async fn verify_options(admin: &str, decryption: Decryption, sha256: &str) -> VerifyOptions {
    VerifyOptions {
        pg_restore: pg_restore_for(admin).await,
        decryption,
        expected_sha256: Some(sha256.to_owned()),
        jobs: 1,
        spool_dir: None,
        stall_timeout: Duration::from_secs(30),
        total_timeout: Duration::from_secs(120),
    }
}

/// Scratch databases owned by the test's user (other tests verify as their own users).
fn scratch_databases(admin: &str) -> String {
    psql(
        admin,
        &format!(
            "SELECT count(*) FROM pg_database WHERE starts_with(datname, '{}')
             AND pg_get_userbyid(datdba) = current_user",
            SCRATCH_DATABASE_PREFIX
        ),
    )
}

// One test for every full verification, so no other test's scratch database is ever in the
// way of checking that they are all dropped.
#[tokio::test]
async fn good_backups_verify_at_both_levels_and_damage_or_wrong_counts_never_do() {
    let Some(admin) = test_url() else { return };
    let source = TestDb::create(&admin, "vf_src");
    fill(&source);
    let (identity, recipient) = generate_key_pair();
    let (object, outcome) = dump_in_memory(
        &source,
        Encryption::from_config(&[recipient], None).unwrap(),
    )
    .await;
    let counts = outcome.row_counts.clone().unwrap();
    assert_eq!(counts, current_counts(&source.url, &TABLES));
    let decryption = Decryption::from_identity_file_text(&identity).unwrap();
    let mut options = verify_options(&admin, decryption, &outcome.sha256).await;
    let server = PgConnection::from_url(&admin).unwrap();
    assert_eq!(scratch_databases(&admin), "0");

    // Good: cheap.
    let report = verify_cheap(&options, &mut object.as_slice(), &|_| {})
        .await
        .unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.level, VerificationLevel::Cheap);
    assert_eq!(report.tables_checked, 3, "{report:?}");
    assert!(report.detail.contains("checksum matches"), "{report:?}");

    // Good: full, streamed and parallel.
    for jobs in [1, 2] {
        options.jobs = jobs;
        let report = verify_full(&options, &server, &counts, &mut object.as_slice(), &|_| {})
            .await
            .unwrap();
        assert!(report.ok, "jobs {jobs}: {report:?}");
        assert_eq!(report.level, VerificationLevel::Full);
        assert_eq!(report.tables_checked, 3);
        assert!(report.mismatches.is_empty());
        assert_eq!(scratch_databases(&admin), "0");
    }
    options.jobs = 1;

    // Row counts that differ from the restore's are mismatches.
    let mut altered: RowCounts = counts.clone();
    *altered.get_mut("public.orders").unwrap() += 1;
    altered.insert("public.vanished".to_owned(), 5);
    let report = verify_full(&options, &server, &altered, &mut object.as_slice(), &|_| {})
        .await
        .unwrap();
    assert!(!report.ok, "{report:?}");
    assert_eq!(
        report.mismatches,
        vec![
            RowCountMismatch {
                table: "public.orders".to_owned(),
                expected: Some(5001),
                restored: Some(5000),
            },
            RowCountMismatch {
                table: "public.vanished".to_owned(),
                expected: Some(5),
                restored: None,
            },
        ]
    );
    assert!(report.detail.contains("2 of 4 tables differ"), "{report:?}");
    assert_eq!(scratch_databases(&admin), "0");

    // Damaged: one flipped byte, truncated, or not the recorded object.
    let mut flipped = object.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let truncated = object[..object.len() * 2 / 3].to_vec();
    let header_only = object[..200].to_vec();
    let cases: [(&str, &[u8], &str); 3] = [
        ("flipped", &flipped, "damaged"),
        ("truncated", &truncated, "damaged"),
        ("header only", &header_only, "damaged"),
    ];
    for (what, bytes, expected) in cases {
        let cheap = verify_cheap(&options, &mut &bytes[..], &|_| {})
            .await
            .unwrap();
        assert!(!cheap.ok, "{what}: {cheap:?}");
        assert!(cheap.detail.contains(expected), "{what}: {cheap:?}");
        let full = verify_full(&options, &server, &counts, &mut &bytes[..], &|_| {})
            .await
            .unwrap();
        assert!(!full.ok, "{what}: {full:?}");
        assert!(full.detail.contains(expected), "{what}: {full:?}");
        assert_eq!(scratch_databases(&admin), "0", "{what}");
    }
    let mut other_checksum = options.clone();
    other_checksum.expected_sha256 = Some("ab".repeat(32));
    let cheap = verify_cheap(&other_checksum, &mut object.as_slice(), &|_| {})
        .await
        .unwrap();
    assert!(!cheap.ok && cheap.detail.contains("SHA-256"), "{cheap:?}");
    let full = verify_full(
        &other_checksum,
        &server,
        &counts,
        &mut object.as_slice(),
        &|_| {},
    )
    .await
    .unwrap();
    assert!(!full.ok && full.detail.contains("SHA-256"), "{full:?}");
    assert_eq!(scratch_databases(&admin), "0");

    // Scratch databases a dead process left behind (named in 2001) are dropped by the next full
    // verification; a recent one (another replica's, running) is not.
    let abandoned = format!("{SCRATCH_DATABASE_PREFIX}1000000000_0123456789abcdef");
    let now: i64 = psql(&admin, "SELECT extract(epoch FROM now())::bigint")
        .parse()
        .unwrap();
    let recent = format!("{SCRATCH_DATABASE_PREFIX}{now}_fedcba9876543210");
    psql(&admin, &format!("CREATE DATABASE {abandoned}"));
    psql(&admin, &format!("CREATE DATABASE {recent}"));
    let report = verify_full(&options, &server, &counts, &mut object.as_slice(), &|_| {})
        .await
        .unwrap();
    assert!(report.ok, "{report:?}");
    assert!(
        report
            .detail
            .contains(&format!("left by interrupted verifications: {abandoned}")),
        "{report:?}"
    );
    let left = psql(
        &admin,
        &format!(
            "SELECT string_agg(datname, ',') FROM pg_database WHERE starts_with(datname, '{SCRATCH_DATABASE_PREFIX}') AND pg_get_userbyid(datdba) = current_user"
        ),
    );
    assert_eq!(left, recent);
    psql(&admin, &format!("DROP DATABASE {recent}"));

    // A server the verification cannot use is an error, not a verdict on the backup.
    let unreachable = PgConnection::from_url("postgres://postgres@127.0.0.1:1/postgres").unwrap();
    let err = verify_full(
        &options,
        &unreachable,
        &counts,
        &mut object.as_slice(),
        &|_| {},
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("could not connect to 127.0.0.1:1 "),
        "{err}"
    );
}

#[tokio::test]
async fn a_cheap_verification_rejects_a_valid_age_file_that_holds_no_dump() {
    let Some(admin) = test_url() else { return };
    let (identity, recipient) = generate_key_pair();
    let recipient: age::x25519::Recipient = recipient.parse().unwrap();
    // Properly encrypted and compressed, but not a pg_dump archive.
    let compressed = zstd::encode_all(&b"just some text, no archive"[..], 3).unwrap();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .unwrap();
    let mut object = Vec::new();
    let mut writer = encryptor.wrap_output(&mut object).unwrap();
    std::io::Write::write_all(&mut writer, &compressed).unwrap();
    writer.finish().unwrap();
    let mut options = verify_options(
        &admin,
        Decryption::from_identity_file_text(&identity).unwrap(),
        "",
    )
    .await;
    options.expected_sha256 = None;
    let report = verify_cheap(&options, &mut object.as_slice(), &|_| {})
        .await
        .unwrap();
    assert!(!report.ok, "{report:?}");
    assert!(
        report.detail.contains("pg_restore --list failed"),
        "{report:?}"
    );
}
