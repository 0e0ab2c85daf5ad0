//! Every operation of the S3 endpoint with boto3 and hand-signed requests
//! (`tests/s3/s3_clients.py`), on both stores: objects with metadata and ranges, every
//! checksum algorithm and `Content-MD5` verified, aws-chunked bodies (unsigned with trailers,
//! signed chunks), every copy-source encoding, listings (v2 and v1, delimiters, pages,
//! url encoding), single and batch deletes, multipart uploads over 16 MiB, presigned GETs,
//! virtual-host addressing, and the refusals: a wrong secret, an unknown or revoked key, a
//! viewer writing, a key of another workspace, clock skew, unsigned requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::process::Command;

use common::s3::{python, s3_key, script};
use common::{Server, Store, describe, skip_e2e};

on_both_stores!(every_operation_with_boto3_and_raw_requests);

fn every_operation_with_boto3_and_raw_requests(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start_allowing(store, &[("STATEHOUSE_S3_DOMAINS", "[\"s3.local\"]")]);
    server.create_workspace("clients");
    server.create_workspace("elsewhere");
    let (id, secret) = s3_key(&server, "clients", "editor", "laptop");
    let (viewer_id, viewer_secret) = s3_key(&server, "clients", "viewer", "dashboard");
    let (revoked_id, revoked_secret) = s3_key(&server, "clients", "editor", "old-laptop");
    server.cli(&["s3-key", "revoke", "--workspace", "clients", &revoked_id]);
    let out = Command::new(python())
        .arg(script("s3_clients.py"))
        .env("S3_ENDPOINT", &server.s3_url)
        .env("S3_BUCKET", "clients")
        .env("S3_OTHER_BUCKET", "elsewhere")
        .env("S3_DOMAIN", "s3.local")
        .env("S3_KEY_ID", &id)
        .env("S3_SECRET", &secret)
        .env("S3_VIEWER_KEY_ID", &viewer_id)
        .env("S3_VIEWER_SECRET", &viewer_secret)
        .env("S3_REVOKED_KEY_ID", &revoked_id)
        .env("S3_REVOKED_SECRET", &revoked_secret)
        .output()
        .expect("running the client script");
    assert!(
        out.status.success(),
        "the S3 client checks failed: {}\n{}",
        describe(&out),
        server.log_text()
    );
    assert!(
        !server.log_text().contains(&secret),
        "an S3 key's secret never reaches the log"
    );
}
