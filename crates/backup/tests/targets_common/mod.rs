//! Shared checks of the storage target tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};

use std::sync::Arc;

use sha2::{Digest, Sha256};
use statehouse_backup::BackupError;
use statehouse_backup::targets::{BackupMetadata, BackupTarget};
use statehouse_outbound::OutboundPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The outbound policy these tests run under, allowed explicitly: the test servers listen on
/// this host, and local targets live in temporary directories.
pub fn policy() -> Arc<OutboundPolicy> {
    Arc::new(
        OutboundPolicy::default()
            .allowing_loopback()
            .with_local_roots(vec![std::env::temp_dir()]),
    )
}

/// The size of the round-trip objects: above two 8 MiB parts, so multipart targets use three.
pub const ROUND_TRIP_BYTES: usize = 20 * 1000 * 1000;

/// An environment variable naming a test server. Missing: the test fails when `CI` or
/// `STATEHOUSE_REQUIRE_SERVERS` is set (the servers are part of the suite there), and is
/// skipped with a note otherwise.
pub fn server_var(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            let required = ["CI", "STATEHOUSE_REQUIRE_SERVERS"]
                .iter()
                .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false"));
            let how = "start the test servers with `eval \"$(bash scripts/test-servers.sh start)\"` (scripts/test.sh does)";
            if required {
                panic!("{name} is not set: {how}");
            }
            eprintln!("SKIPPED: {name} is not set; {how}");
            None
        }
    }
}

/// Deterministic, incompressible-looking bytes.
pub fn test_bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size);
    out
}

pub fn sample_metadata(name: &str, bytes: &[u8]) -> BackupMetadata {
    BackupMetadata {
        format_version: 1,
        object: name.to_owned(),
        database: "shop".to_owned(),
        server_version: Some("15.8".to_owned()),
        statehouse_version: "test".to_owned(),
        pipeline: "pg_dump --format=custom --compress=0 | zstd | age".to_owned(),
        zstd_level: 5,
        recipients: vec!["age1example".to_owned()],
        started_at: "2026-11-22T00:00:00Z".to_owned(),
        finished_at: "2026-11-22T00:01:00Z".to_owned(),
        duration_ms: 60_000,
        dump_bytes: bytes.len() as u64 * 3,
        stored_bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
        restore_command: "age -d -i key.txt x | zstd -d | pg_restore -d db".to_owned(),
        row_counts: None,
    }
}

/// A unique object name per test run, in a database folder like real backups.
pub fn unique_name(label: &str) -> String {
    format!("shop/shop-{label}-{}.dump.zst.age", uuid::Uuid::new_v4())
}

/// begin → write `size` bytes in uneven chunks → (not visible yet) → commit → size, streamed
/// read back equal, metadata → delete → gone (and deleting again is fine).
pub async fn round_trip(target: &dyn BackupTarget, name: &str, size: usize) {
    let bytes = test_bytes(size, 7);
    let metadata = sample_metadata(name, &bytes);
    let mut upload = target.begin(name, Some(size as u64)).await.unwrap();
    for chunk in bytes.chunks(300 * 1024 + 17) {
        upload.writer().write_all(chunk).await.unwrap();
    }
    upload.writer().flush().await.unwrap();
    assert_eq!(
        target.size(name).await.unwrap(),
        None,
        "the object must not be visible before commit"
    );
    upload.commit(&metadata).await.unwrap();

    assert_eq!(target.size(name).await.unwrap(), Some(size as u64));
    let mut reader = target.open(name).await.unwrap();
    let mut hasher = Sha256::new();
    let mut total = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let mut first = Vec::new();
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        if first.len() < 4096 {
            first.extend_from_slice(&buf[..n.min(4096 - first.len())]);
        }
        hasher.update(&buf[..n]);
        total += n;
    }
    assert_eq!(total, size);
    assert_eq!(first[..], bytes[..first.len()]);
    assert_eq!(hex::encode(hasher.finalize()), metadata.sha256);
    assert_eq!(target.read_metadata(name).await.unwrap(), metadata);

    target.delete(name).await.unwrap();
    assert_eq!(target.size(name).await.unwrap(), None);
    assert!(matches!(
        target.read_metadata(name).await.unwrap_err(),
        BackupError::NotFound(_)
    ));
    assert!(matches!(
        target.open(name).await.err().unwrap(),
        BackupError::NotFound(_)
    ));
    target.delete(name).await.unwrap();
}

/// An upload that is aborted half-way leaves no object and no sidecar.
pub async fn abort_leaves_nothing(target: &dyn BackupTarget, name: &str) {
    let bytes = test_bytes(3 * 1024 * 1024 + 5, 11);
    let mut upload = target.begin(name, None).await.unwrap();
    upload.writer().write_all(&bytes).await.unwrap();
    upload.writer().flush().await.unwrap();
    upload.abort().await;
    assert_eq!(target.size(name).await.unwrap(), None);
    assert!(matches!(
        target.read_metadata(name).await.unwrap_err(),
        BackupError::NotFound(_)
    ));
}

/// The probe fails and its message contains every one of `words`.
pub async fn probe_fails_with(target: &dyn BackupTarget, words: &[&str]) -> String {
    let message = target.probe().await.unwrap_err().to_string();
    eprintln!("probe error: {message}");
    for word in words {
        assert!(message.contains(word), "{word:?} not in: {message}");
    }
    message
}

/// Every regular file under `dir`, for checking a server's data directory.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
