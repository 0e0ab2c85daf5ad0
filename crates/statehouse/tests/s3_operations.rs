//! Operating the S3 endpoint, on both stores with the real binary: `kill -9` while four Pulumi
//! clients checkpoint (COPY to `.bak`, then PUT) loses no acknowledged checkpoint and leaves no
//! partial version; and nothing written over S3 — checkpoints, other objects, multipart parts
//! — is stored in plaintext.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use common::s3::s3_key;
use common::{Server, Store, skip_e2e};
use serde_json::Value;

on_both_stores!(
    kill9_under_concurrent_checkpoints_loses_nothing_acknowledged,
    nothing_written_over_s3_is_stored_in_plaintext,
);

/// No retries: a request the dying server did not answer must count as not acknowledged.
fn client(server: &Server, id: &str, secret: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&server.s3_url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(id, secret, None, None, "test"))
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// A Pulumi checkpoint of `resources` resources whose stack output carries `counter`.
fn checkpoint(stack: &str, counter: i64, payload: &str) -> Vec<u8> {
    let resources: Vec<Value> = (0..40)
        .map(|i| {
            serde_json::json!({
                "urn": format!("urn:pulumi:{stack}::app::aws:s3/bucket:Bucket::b{i}"),
                "custom": true, "id": format!("b{i}-{counter}"), "type": "aws:s3/bucket:Bucket",
                "outputs": {"arn": format!("arn:aws:s3:::b{i}"), "note": payload},
            })
        })
        .chain([serde_json::json!({
            "urn": format!("urn:pulumi:{stack}::app::pulumi:pulumi:Stack::app-{stack}"),
            "custom": false, "type": "pulumi:pulumi:Stack",
            "outputs": {"counter": counter, "payload": payload},
        })])
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "version": 3,
        "checkpoint": {"stack": format!("organization/app/{stack}"), "latest": {
            "manifest": {"time": "2026-12-03T00:00:00Z", "magic": "m", "version": "v3.259.0"},
            "resources": resources,
        }},
    }))
    .unwrap()
}

fn counter_of(body: &[u8]) -> i64 {
    let doc: Value = serde_json::from_slice(body).expect("a whole checkpoint");
    let resources = doc["checkpoint"]["latest"]["resources"].as_array().unwrap();
    resources.last().unwrap()["outputs"]["counter"]
        .as_i64()
        .unwrap()
}

async fn read(s3: &Client, key: &str) -> Option<Vec<u8>> {
    match s3.get_object().bucket("default").key(key).send().await {
        Ok(got) => Some(got.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
        Err(e) => panic!("GET {key}: {e:?}"),
    }
}

fn kill9_under_concurrent_checkpoints_loses_nothing_acknowledged(store: Store) {
    if skip_e2e() {
        return;
    }
    let mut server = Server::start(store);
    let (id, secret) = s3_key(&server, "default", "editor", "pulumi");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let acked: Vec<Arc<AtomicI64>> = (0..4).map(|_| Arc::new(AtomicI64::new(0))).collect();
    let payload = "p".repeat(2_000);
    let s3 = client(&server, &id, &secret);
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (s3, acked, payload) = (s3.clone(), acked[i].clone(), payload.clone());
            runtime.spawn(async move {
                let key = format!(".pulumi/stacks/app/s{i}.json");
                for counter in 1.. {
                    if counter > 1 {
                        let copied = s3
                            .copy_object()
                            .bucket("default")
                            .key(format!("{key}.bak"))
                            .copy_source(format!("default/{key}"))
                            .send()
                            .await;
                        if copied.is_err() {
                            return;
                        }
                    }
                    let body = checkpoint(&format!("s{i}"), counter, &payload);
                    let put = s3
                        .put_object()
                        .bucket("default")
                        .key(&key)
                        .body(ByteStream::from(body))
                        .send()
                        .await;
                    match put {
                        Ok(_) => acked.store(counter, Ordering::SeqCst),
                        Err(_) => return, // the server died under us
                    }
                }
            })
        })
        .collect();
    let wait_for = |least: i64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while acked
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .min()
            .unwrap()
            < least
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(10);
    server.kill9();
    for w in workers {
        runtime.block_on(w).unwrap();
    }
    server.restart();

    let s3 = client(&server, &id, &secret);
    for (i, acked) in acked.iter().enumerate() {
        let acked = acked.load(Ordering::SeqCst);
        assert!(
            acked >= 10,
            "worker {i} got only {acked} checkpoints acknowledged"
        );
        let key = format!(".pulumi/stacks/app/s{i}.json");
        let current = counter_of(&runtime.block_on(read(&s3, &key)).unwrap());
        assert!(
            (acked..=acked + 1).contains(&current),
            "{key}: acknowledged checkpoint {acked} lost, found {current}"
        );
        let bak = counter_of(&runtime.block_on(read(&s3, &format!("{key}.bak"))).unwrap());
        assert!(
            (current - 1..=current).contains(&bak),
            "{key}.bak holds checkpoint {bak}, the current one is {current}"
        );
        // One version per checkpoint, whole: version n is checkpoint n.
        let name = format!("pulumi/app/s{i}");
        let out = server.cli(&[
            "state",
            "versions",
            "--workspace",
            "default",
            &name,
            "--all",
            "--json",
        ]);
        let page: Value = serde_json::from_slice(&out.stdout).unwrap();
        let versions = page["items"].as_array().unwrap();
        assert_eq!(versions.len() as i64, current, "{name}: {page}");
        let first = server.cli(&[
            "state",
            "get",
            "--workspace",
            "default",
            &name,
            "--version",
            "1",
        ]);
        assert_eq!(counter_of(&first.stdout), 1, "{name}: version 1");
    }
    // The restarted server takes checkpoints again.
    runtime
        .block_on(
            s3.put_object()
                .bucket("default")
                .key(".pulumi/stacks/app/s0.json")
                .body(ByteStream::from(checkpoint("s0", 10_000, "after")))
                .send(),
        )
        .unwrap();
}

fn nothing_written_over_s3_is_stored_in_plaintext(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    let (id, secret) = s3_key(&server, "default", "editor", "pulumi");
    let s3 = client(&server, &id, &secret);
    let marker = "PLAINTEXT-MARKER-5be0c1d2-never-stored-over-s3";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let put = |key: &'static str, body: Vec<u8>| {
            s3.put_object()
                .bucket("default")
                .key(key)
                .body(ByteStream::from(body))
                .send()
        };
        for counter in 1..=3 {
            put(
                ".pulumi/stacks/app/dev.json",
                checkpoint("dev", counter, &format!("{marker}-{counter}")),
            )
            .await
            .unwrap();
        }
        let history = format!("{{\"kind\":\"update\",\"message\":\"{marker}-history\"}}");
        put(
            ".pulumi/history/app/dev/dev-1.history.json",
            history.into_bytes(),
        )
        .await
        .unwrap();
        // A part of an upload that is never completed is stored too.
        let upload = s3
            .create_multipart_upload()
            .bucket("default")
            .key(".pulumi/stacks/app/big.json")
            .send()
            .await
            .unwrap();
        s3.upload_part()
            .bucket("default")
            .key(".pulumi/stacks/app/big.json")
            .upload_id(upload.upload_id().unwrap())
            .part_number(1)
            .body(ByteStream::from(
                format!("{marker}-part").repeat(1000).into_bytes(),
            ))
            .send()
            .await
            .unwrap();
        let back = s3
            .get_object()
            .bucket("default")
            .key(".pulumi/stacks/app/dev.json")
            .send()
            .await
            .unwrap();
        let back = back.body.collect().await.unwrap().into_bytes();
        assert!(String::from_utf8_lossy(&back).contains(&format!("{marker}-3")));
    });

    let log = server.log_text();
    assert!(!log.contains(marker), "the log shows an object's body");
    assert!(!log.contains(&secret), "the log shows an S3 secret");
    let stored = server.stored_bytes();
    assert!(!stored.is_empty());
    for (what, bytes) in stored {
        for needle in [marker.as_bytes(), b"\"manifest\":{", secret.as_bytes()] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{what} contains {:?} in plaintext",
                String::from_utf8_lossy(needle)
            );
        }
    }
}
