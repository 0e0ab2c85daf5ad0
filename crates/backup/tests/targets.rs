//! Storage targets against real local servers of their protocols, started by
//! `scripts/test-servers.sh` (moto for S3, Azurite, OpenSSH's sshd, pyftpdlib, wsgidav) and found
//! through `STATEHOUSE_TEST_*` variables. Local directories need no server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "targets_common/mod.rs"]
mod common;

use std::path::PathBuf;

use common::{
    ROUND_TRIP_BYTES, abort_leaves_nothing, files_under, probe_fails_with, round_trip, server_var,
    unique_name,
};
use statehouse_backup::targets::{
    AzblobSpec, FtpSpec, KnownHostsStrategy, LocalSpec, S3Spec, Secret, SftpSpec, TargetSpec,
    WebdavSpec, open_target,
};

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn servers_dir(sub: &str) -> PathBuf {
    PathBuf::from(server_var("STATEHOUSE_TEST_SERVERS_DIR").unwrap()).join(sub)
}

// ---- local directory ---------------------------------------------------------------------------

#[tokio::test]
async fn local_round_trip_abort_and_probe() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = TargetSpec::Local(LocalSpec {
        path: tmp.path().to_string_lossy().into_owned(),
    });
    let target = open_target(&spec, &common::policy()).unwrap();
    round_trip(target.as_ref(), &unique_name("local"), ROUND_TRIP_BYTES).await;
    abort_leaves_nothing(target.as_ref(), &unique_name("local-abort")).await;
    target.probe().await.unwrap();
    assert_eq!(files_under(tmp.path()), Vec::<PathBuf>::new());
}

// ---- S3 (moto) ---------------------------------------------------------------------------------

fn s3_spec() -> Option<S3Spec> {
    Some(S3Spec {
        bucket: server_var("STATEHOUSE_TEST_S3_BUCKET")?,
        region: "us-east-1".to_owned(),
        endpoint: Some(server_var("STATEHOUSE_TEST_S3_ENDPOINT")?),
        access_key_id: Some(server_var("STATEHOUSE_TEST_S3_ACCESS_KEY_ID")?),
        secret_access_key: Some(Secret::new(server_var(
            "STATEHOUSE_TEST_S3_SECRET_ACCESS_KEY",
        )?)),
        session_token: None,
        path_style: true,
        prefix: Some(format!("run-{}", uuid::Uuid::new_v4())),
    })
}

#[tokio::test]
async fn s3_round_trip_abort_and_probe() {
    let Some(spec) = s3_spec() else { return };
    let target = open_target(&TargetSpec::S3(spec), &common::policy()).unwrap();
    target.probe().await.unwrap();
    round_trip(target.as_ref(), &unique_name("s3"), ROUND_TRIP_BYTES).await;
    abort_leaves_nothing(target.as_ref(), &unique_name("s3-abort")).await;
}

#[tokio::test]
async fn s3_large_uploads_use_several_parts() {
    let Some(spec) = s3_spec() else { return };
    let target = open_target(&TargetSpec::S3(spec.clone()), &common::policy()).unwrap();
    let name = unique_name("s3-parts");
    let bytes = common::test_bytes(ROUND_TRIP_BYTES, 3);
    let mut upload = target.begin(&name, Some(bytes.len() as u64)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(upload.writer(), &bytes)
        .await
        .unwrap();
    upload
        .commit(&common::sample_metadata(&name, &bytes))
        .await
        .unwrap();
    // A multipart object's ETag is `<md5 of the part md5s>-<number of parts>`: 20 MB in 8 MiB
    // parts is three.
    let op = opendal::Operator::new(
        opendal::services::S3::default()
            .bucket(&spec.bucket)
            .region(&spec.region)
            .endpoint(spec.endpoint.as_deref().unwrap())
            .access_key_id(spec.access_key_id.as_deref().unwrap())
            .secret_access_key(spec.secret_access_key.as_ref().unwrap().expose())
            .disable_config_load()
            .root(&format!("/{}/", spec.prefix.as_deref().unwrap())),
    )
    .unwrap();
    let etag = op.stat(&name).await.unwrap().etag().unwrap().to_owned();
    assert!(etag.trim_matches('"').ends_with("-3"), "{etag}");
    target.delete(&name).await.unwrap();
}

#[tokio::test]
async fn s3_probe_says_what_is_wrong() {
    let Some(spec) = s3_spec() else { return };
    let wrong_secret = S3Spec {
        secret_access_key: Some(Secret::new("not-the-secret")),
        ..spec.clone()
    };
    let message = probe_fails_with(
        open_target(&TargetSpec::S3(wrong_secret), &common::policy())
            .unwrap()
            .as_ref(),
        &["while writing a test object", "access was refused"],
    )
    .await;
    assert!(!message.contains("not-the-secret"), "{message}");
    let no_bucket = S3Spec {
        bucket: "no-such-bucket".to_owned(),
        ..spec.clone()
    };
    probe_fails_with(
        open_target(&TargetSpec::S3(no_bucket), &common::policy())
            .unwrap()
            .as_ref(),
        &["bucket or container does not exist"],
    )
    .await;
    let unreachable = S3Spec {
        endpoint: Some(format!("http://127.0.0.1:{}", closed_port())),
        ..spec
    };
    probe_fails_with(
        open_target(&TargetSpec::S3(unreachable), &common::policy())
            .unwrap()
            .as_ref(),
        &["could not connect to 127.0.0.1:"],
    )
    .await;
}

// ---- Azure Blob (Azurite) ------------------------------------------------------------------------

fn azblob_spec() -> Option<AzblobSpec> {
    Some(AzblobSpec {
        container: server_var("STATEHOUSE_TEST_AZBLOB_CONTAINER")?,
        account_name: server_var("STATEHOUSE_TEST_AZBLOB_ACCOUNT_NAME")?,
        account_key: Some(Secret::new(server_var(
            "STATEHOUSE_TEST_AZBLOB_ACCOUNT_KEY",
        )?)),
        sas_token: None,
        endpoint: Some(server_var("STATEHOUSE_TEST_AZBLOB_ENDPOINT")?),
        prefix: Some(format!("run-{}", uuid::Uuid::new_v4())),
    })
}

#[tokio::test]
async fn azblob_round_trip_abort_and_probe() {
    let Some(spec) = azblob_spec() else { return };
    let target = open_target(&TargetSpec::Azblob(spec), &common::policy()).unwrap();
    target.probe().await.unwrap();
    round_trip(target.as_ref(), &unique_name("az"), ROUND_TRIP_BYTES).await;
    abort_leaves_nothing(target.as_ref(), &unique_name("az-abort")).await;
}

#[tokio::test]
async fn azblob_probe_says_what_is_wrong() {
    let Some(spec) = azblob_spec() else { return };
    // A well-formed key that is not the account's.
    let wrong_key = AzblobSpec {
        account_key: Some(Secret::new(
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        )),
        ..spec.clone()
    };
    probe_fails_with(
        open_target(&TargetSpec::Azblob(wrong_key), &common::policy())
            .unwrap()
            .as_ref(),
        &["while writing a test object", "access was refused"],
    )
    .await;
    let no_container = AzblobSpec {
        container: "no-such-container".to_owned(),
        ..spec.clone()
    };
    probe_fails_with(
        open_target(&TargetSpec::Azblob(no_container), &common::policy())
            .unwrap()
            .as_ref(),
        &["does not exist"],
    )
    .await;
    let unreachable = AzblobSpec {
        endpoint: Some(format!(
            "http://127.0.0.1:{}/devstoreaccount1",
            closed_port()
        )),
        ..spec
    };
    probe_fails_with(
        open_target(&TargetSpec::Azblob(unreachable), &common::policy())
            .unwrap()
            .as_ref(),
        &["could not connect to 127.0.0.1:"],
    )
    .await;
}

// ---- SFTP (sshd) -------------------------------------------------------------------------------

fn sftp_spec() -> Option<SftpSpec> {
    let key_file = server_var("STATEHOUSE_TEST_SFTP_KEY_FILE")?;
    Some(SftpSpec {
        host: server_var("STATEHOUSE_TEST_SFTP_HOST")?,
        port: server_var("STATEHOUSE_TEST_SFTP_PORT")?.parse().unwrap(),
        user: server_var("STATEHOUSE_TEST_SFTP_USER")?,
        private_key: Some(Secret::new(std::fs::read_to_string(key_file).unwrap())),
        password: None,
        known_hosts_strategy: Some(KnownHostsStrategy::Accept),
        root: format!(
            "{}/run-{}",
            server_var("STATEHOUSE_TEST_SFTP_ROOT")?,
            uuid::Uuid::new_v4()
        ),
    })
}

#[tokio::test]
async fn sftp_round_trip_abort_and_probe() {
    let Some(spec) = sftp_spec() else { return };
    let root = PathBuf::from(&spec.root);
    let target = open_target(&TargetSpec::Sftp(spec), &common::policy()).unwrap();
    target.probe().await.unwrap();
    round_trip(target.as_ref(), &unique_name("sftp"), ROUND_TRIP_BYTES).await;
    abort_leaves_nothing(target.as_ref(), &unique_name("sftp-abort")).await;
    assert_eq!(files_under(&root), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn sftp_probe_says_what_is_wrong() {
    let Some(spec) = sftp_spec() else { return };
    // A key the server does not know.
    let other_key = servers_dir("ssh/host_key");
    let wrong_key = SftpSpec {
        private_key: Some(Secret::new(std::fs::read_to_string(other_key).unwrap())),
        ..spec.clone()
    };
    probe_fails_with(
        open_target(&TargetSpec::Sftp(wrong_key), &common::policy())
            .unwrap()
            .as_ref(),
        &["while writing a test object", "access was refused"],
    )
    .await;
    let unreachable = SftpSpec {
        port: closed_port(),
        ..spec
    };
    probe_fails_with(
        open_target(&TargetSpec::Sftp(unreachable), &common::policy())
            .unwrap()
            .as_ref(),
        &["could not connect to 127.0.0.1:"],
    )
    .await;
}

// ---- FTP (pyftpdlib) -----------------------------------------------------------------------------

fn ftp_spec() -> Option<FtpSpec> {
    Some(FtpSpec {
        endpoint: server_var("STATEHOUSE_TEST_FTP_ENDPOINT")?,
        username: Some(server_var("STATEHOUSE_TEST_FTP_USER")?),
        password: Some(Secret::new(server_var("STATEHOUSE_TEST_FTP_PASSWORD")?)),
        root: Some(format!("run-{}", uuid::Uuid::new_v4())),
    })
}

#[tokio::test]
async fn ftp_round_trip_abort_and_probe() {
    let Some(spec) = ftp_spec() else { return };
    let root = servers_dir("ftp-root").join(spec.root.as_deref().unwrap());
    let target = open_target(&TargetSpec::Ftp(spec), &common::policy()).unwrap();
    target.probe().await.unwrap();
    round_trip(target.as_ref(), &unique_name("ftp"), ROUND_TRIP_BYTES).await;
    abort_leaves_nothing(target.as_ref(), &unique_name("ftp-abort")).await;
    assert_eq!(files_under(&root), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn ftp_probe_says_what_is_wrong() {
    let Some(spec) = ftp_spec() else { return };
    let wrong_password = FtpSpec {
        password: Some(Secret::new("not-the-password")),
        ..spec.clone()
    };
    probe_fails_with(
        open_target(&TargetSpec::Ftp(wrong_password), &common::policy())
            .unwrap()
            .as_ref(),
        &["while writing a test object", "access was refused"],
    )
    .await;
    let unreachable = FtpSpec {
        endpoint: format!("ftp://127.0.0.1:{}", closed_port()),
        ..spec
    };
    probe_fails_with(
        open_target(&TargetSpec::Ftp(unreachable), &common::policy())
            .unwrap()
            .as_ref(),
        &["could not connect to 127.0.0.1:"],
    )
    .await;
}

// ---- WebDAV (wsgidav) ----------------------------------------------------------------------------

fn webdav_spec() -> Option<WebdavSpec> {
    Some(WebdavSpec {
        endpoint: server_var("STATEHOUSE_TEST_WEBDAV_ENDPOINT")?,
        username: Some(server_var("STATEHOUSE_TEST_WEBDAV_USER")?),
        password: Some(Secret::new(server_var("STATEHOUSE_TEST_WEBDAV_PASSWORD")?)),
        root: Some(format!("run-{}", uuid::Uuid::new_v4())),
    })
}

#[tokio::test]
async fn webdav_round_trip_abort_and_probe() {
    let Some(spec) = webdav_spec() else { return };
    let root = servers_dir("webdav-root").join(spec.root.as_deref().unwrap());
    let target = open_target(&TargetSpec::Webdav(spec), &common::policy()).unwrap();
    target.probe().await.unwrap();
    round_trip(target.as_ref(), &unique_name("dav"), ROUND_TRIP_BYTES).await;
    abort_leaves_nothing(target.as_ref(), &unique_name("dav-abort")).await;
    assert_eq!(files_under(&root), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn webdav_probe_says_what_is_wrong() {
    let Some(spec) = webdav_spec() else { return };
    let wrong_password = WebdavSpec {
        password: Some(Secret::new("not-the-password")),
        ..spec.clone()
    };
    probe_fails_with(
        open_target(&TargetSpec::Webdav(wrong_password), &common::policy())
            .unwrap()
            .as_ref(),
        &["while writing a test object", "access was refused"],
    )
    .await;
    let unreachable = WebdavSpec {
        endpoint: format!("http://127.0.0.1:{}", closed_port()),
        ..spec
    };
    probe_fails_with(
        open_target(&TargetSpec::Webdav(unreachable), &common::policy())
            .unwrap()
            .as_ref(),
        &["could not connect to 127.0.0.1:"],
    )
    .await;
}
