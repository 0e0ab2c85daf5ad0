//! The AWS SDK for Rust (`aws-sdk-s3`) against the S3 endpoint, on both stores, with its
//! default checksums (`when_supported`: CRC32 on every upload, checksum validation on GET) and
//! with `when_required`: put, ranged and checksum-validated get, head, copy with an encoded
//! source, paged listings, batch delete, a multipart upload over 16 MiB (list parts, abort),
//! a presigned GET, and the errors the SDK maps (`NotFound`, `NoSuchKey`,
//! `SignatureDoesNotMatch`, `AccessDenied`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumMode, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
};
use common::s3::s3_key;
use common::{Server, Store, http_client, skip_e2e};

on_both_stores!(the_rust_sdk_works_against_the_endpoint);

const MIB: usize = 1024 * 1024;

fn client(server: &Server, id: &str, secret: &str, required_only: bool) -> Client {
    let (request, response) = if required_only {
        (
            RequestChecksumCalculation::WhenRequired,
            ResponseChecksumValidation::WhenRequired,
        )
    } else {
        (
            RequestChecksumCalculation::WhenSupported,
            ResponseChecksumValidation::WhenSupported,
        )
    };
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&server.s3_url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(id, secret, None, None, "test"))
        .force_path_style(true)
        .request_checksum_calculation(request)
        .response_checksum_validation(response)
        .build();
    Client::from_conf(config)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[i % 4] ^ seed)
        .collect()
}

fn the_rust_sdk_works_against_the_endpoint(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    server.create_workspace("sdk");
    server.create_workspace("other");
    let (id, secret) = s3_key(&server, "sdk", "editor", "rust");
    let (viewer_id, viewer_secret) = s3_key(&server, "sdk", "viewer", "reader");
    let (other_id, other_secret) = s3_key(&server, "other", "editor", "theirs");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for required_only in [false, true] {
            let s3 = client(&server, &id, &secret, required_only);
            let prefix = if required_only {
                "required/"
            } else {
                "supported/"
            };
            objects(&s3, prefix).await;
            multipart(&s3, prefix).await;
        }
        let s3 = client(&server, &id, &secret, false);
        refusals(
            &server,
            &s3,
            (&viewer_id, &viewer_secret),
            (&other_id, &other_secret),
        )
        .await;
    });
    assert!(
        !server.log_text().contains(&secret),
        "an S3 key's secret never reaches the log"
    );
}

async fn objects(s3: &Client, prefix: &str) {
    let key = |name: &str| format!("{prefix}{name}");
    let body = pattern(300_000, 3);
    let put = s3
        .put_object()
        .bucket("sdk")
        .key(key("stacks/app/dev.json"))
        .content_type("application/json")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    assert!(put.e_tag().is_some());

    // A GET that validates the answer's checksum, where the SDK asks for one.
    let got = s3
        .get_object()
        .bucket("sdk")
        .key(key("stacks/app/dev.json"))
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("application/json"));
    assert!(got.body.collect().await.unwrap().into_bytes() == body.as_slice());

    let ranged = s3
        .get_object()
        .bucket("sdk")
        .key(key("stacks/app/dev.json"))
        .range("bytes=-1000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ranged.content_range(),
        Some(
            format!(
                "bytes {}-{}/{}",
                body.len() - 1000,
                body.len() - 1,
                body.len()
            )
            .as_str()
        )
    );
    assert!(ranged.body.collect().await.unwrap().into_bytes() == body[body.len() - 1000..]);

    let head = s3
        .head_object()
        .bucket("sdk")
        .key(key("stacks/app/dev.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(body.len() as i64));

    // Copy with a source whose key needs escaping, as the SDK leaves it to the caller.
    let odd = key("stacks/app/dev+1 copy.json");
    let source = format!("sdk/{}", escape(&key("stacks/app/dev.json")));
    s3.copy_object()
        .bucket("sdk")
        .key(&odd)
        .copy_source(source)
        .send()
        .await
        .unwrap();
    let copied = s3
        .get_object()
        .bucket("sdk")
        .key(&odd)
        .send()
        .await
        .unwrap();
    assert!(copied.body.collect().await.unwrap().into_bytes() == body.as_slice());

    // Missing keys: HEAD is NotFound, GET is NoSuchKey.
    let head_missing = s3
        .head_object()
        .bucket("sdk")
        .key(key("nothing"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(head_missing.is_not_found(), "{head_missing:?}");
    let get_missing = s3
        .get_object()
        .bucket("sdk")
        .key(key("nothing"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(get_missing.is_no_such_key(), "{get_missing:?}");

    // Pages of two keys, and a delimited listing.
    for i in 0..5 {
        s3.put_object()
            .bucket("sdk")
            .key(key(&format!("many/{i}.json")))
            .body(ByteStream::from(format!("{{\"n\":{i}}}").into_bytes()))
            .send()
            .await
            .unwrap();
    }
    let mut pages = s3
        .list_objects_v2()
        .bucket("sdk")
        .prefix(key("many/"))
        .max_keys(2)
        .into_paginator()
        .send();
    let mut listed = Vec::new();
    let mut page_count = 0;
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        page_count += 1;
        for object in page.contents() {
            assert!(
                object.last_modified().is_some(),
                "every entry has LastModified"
            );
            listed.push(object.key().unwrap().to_owned());
        }
    }
    assert_eq!(page_count, 3);
    assert_eq!(
        listed,
        (0..5)
            .map(|i| key(&format!("many/{i}.json")))
            .collect::<Vec<_>>()
    );
    let folders = s3
        .list_objects_v2()
        .bucket("sdk")
        .prefix(prefix)
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let common: Vec<&str> = folders
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(common, [key("many/"), key("stacks/")]);

    // One batch delete, every key reported.
    let objects: Vec<ObjectIdentifier> = listed
        .iter()
        .map(|k| ObjectIdentifier::builder().key(k).build().unwrap())
        .collect();
    let deleted = s3
        .delete_objects()
        .bucket("sdk")
        .delete(
            Delete::builder()
                .set_objects(Some(objects))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.deleted().len(), 5);
    assert!(deleted.errors().is_empty());
    s3.delete_object()
        .bucket("sdk")
        .key(&odd)
        .send()
        .await
        .unwrap();
}

/// The SDK wants `x-amz-copy-source` encoded by the caller: each segment escaped, `/` kept.
fn escape(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn multipart(s3: &Client, prefix: &str) {
    let key = format!("{prefix}big.bin");
    let body = pattern(17 * MIB + 5, 4);
    let upload = s3
        .create_multipart_upload()
        .bucket("sdk")
        .key(&key)
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    for (i, chunk) in body.chunks(8 * MIB).enumerate() {
        let number = i as i32 + 1;
        let part = s3
            .upload_part()
            .bucket("sdk")
            .key(&key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().unwrap())
                .set_checksum_crc32(part.checksum_crc32().map(str::to_owned))
                .build(),
        );
    }
    let listed = s3
        .list_parts()
        .bucket("sdk")
        .key(&key)
        .upload_id(upload_id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.parts().len(), 3);
    assert_eq!(
        listed.parts()[2].size(),
        Some((body.len() - 16 * MIB) as i64)
    );
    s3.complete_multipart_upload()
        .bucket("sdk")
        .key(&key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket("sdk")
        .key(&key)
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes() == body.as_slice());

    // An aborted upload leaves nothing behind.
    let aborted = s3
        .create_multipart_upload()
        .bucket("sdk")
        .key(format!("{prefix}aborted.bin"))
        .send()
        .await
        .unwrap();
    s3.abort_multipart_upload()
        .bucket("sdk")
        .key(format!("{prefix}aborted.bin"))
        .upload_id(aborted.upload_id().unwrap())
        .send()
        .await
        .unwrap();
    let missing = s3
        .list_parts()
        .bucket("sdk")
        .key(format!("{prefix}aborted.bin"))
        .upload_id(aborted.upload_id().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("NoSuchUpload"), "{missing:?}");
    s3.delete_object()
        .bucket("sdk")
        .key(&key)
        .send()
        .await
        .unwrap();
}

async fn refusals(server: &Server, s3: &Client, viewer: (&str, &str), other: (&str, &str)) {
    s3.put_object()
        .bucket("sdk")
        .key("shared.json")
        .body(ByteStream::from_static(b"{}"))
        .send()
        .await
        .unwrap();
    let presigned = s3
        .get_object()
        .bucket("sdk")
        .key("shared.json")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    // The blocking test client, off the runtime's worker.
    let (status, text) = tokio::task::block_in_place(|| {
        let response = http_client().get(presigned.uri()).send().unwrap();
        (response.status(), response.text().unwrap())
    });
    assert_eq!(status, 200);
    assert_eq!(text, "{}");

    let wrong = client(server, viewer.0, "not-the-secret-not-the-secret-00", false);
    let err = wrong
        .get_object()
        .bucket("sdk")
        .key("shared.json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"), "{err:?}");

    let viewer = client(server, viewer.0, viewer.1, false);
    viewer
        .head_object()
        .bucket("sdk")
        .key("shared.json")
        .send()
        .await
        .unwrap();
    let err = viewer
        .put_object()
        .bucket("sdk")
        .key("shared.json")
        .body(ByteStream::from_static(b"{\"viewer\":true}"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");

    let other = client(server, other.0, other.1, false);
    // Another workspace's bucket is not there for this key, as in the REST API.
    let err = other
        .get_object()
        .bucket("sdk")
        .key("shared.json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchBucket"), "{err:?}");
    let buckets = other.list_buckets().send().await.unwrap();
    let names: Vec<&str> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["other"]);
}
