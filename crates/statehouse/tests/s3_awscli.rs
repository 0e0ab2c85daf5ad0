//! The AWS CLI (v1, from PyPI) against the S3 endpoint, on both stores: `aws s3` copies (one
//! PUT and a multipart upload over 16 MiB), `ls`, `sync`, `presign`, and `aws s3api` for the
//! operations Pulumi relies on (head, ranged get, copy, v1 and v2 listings, batch delete,
//! bucket location), with the CLI's default checksums on SQLite and `when_required` on
//! PostgreSQL;
//! then the refusals: a wrong secret, a revoked key, a viewer writing, another workspace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::s3::{python, s3_key};
use common::{Server, Store, describe, http_client, skip_e2e};

on_both_stores!(the_aws_cli_works_against_the_endpoint);

const MIB: usize = 1024 * 1024;

/// One `aws` invocation: a key, the endpoint, and the checksum mode to test.
struct Aws<'a> {
    server: &'a Server,
    key_id: String,
    secret: String,
    checksums: &'a str,
    home: &'a Path,
}

impl Aws<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let bin = python().with_file_name("aws");
        Command::new(&bin)
            .args([
                "--endpoint-url",
                &self.server.s3_url,
                "--region",
                "us-east-1",
            ])
            .args(args)
            // Nothing from the machine's own AWS configuration takes part.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home)
            .env("AWS_CONFIG_FILE", self.home.join("no-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.home.join("no-credentials"),
            )
            .env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_REQUEST_CHECKSUM_CALCULATION", self.checksums)
            .env("AWS_RESPONSE_CHECKSUM_VALIDATION", self.checksums)
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "aws {args:?} ({} checksums) failed ({}): {}\n{}",
            self.checksums,
            out.status,
            describe(&out),
            self.server.log_text()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let text = self.ok(&[args, &["--output", "json"]].concat());
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("aws {args:?} printed {text}: {e}"))
    }

    /// The S3 error code a refused command prints (`An error occurred (Code) …`).
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "aws {args:?} should be refused");
        let stderr = String::from_utf8_lossy(&out.stderr);
        stderr
            .split_once("An error occurred (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(code, _)| code.to_owned())
            .unwrap_or_else(|| stderr.trim().to_owned())
    }
}

/// Bytes that do not compress to nothing, so that sizes and ranges mean something.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[i % 4] ^ seed)
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn the_aws_cli_works_against_the_endpoint(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    server.create_workspace("cli");
    server.create_workspace("other");
    let (id, secret) = s3_key(&server, "cli", "editor", "ci");
    let home = tempfile::tempdir().unwrap();
    // Each CLI call costs a second of Python start-up, so each store takes one checksum mode:
    // the wire forms differ by mode, not by store.
    let checksums = match store {
        Store::Sqlite => "when_supported",
        Store::Postgres => "when_required",
    };
    let aws = Aws {
        server: &server,
        key_id: id.clone(),
        secret: secret.clone(),
        checksums,
        home: home.path(),
    };
    round_trip(&aws, &format!("{checksums}/"));
    refusals(&server, home.path(), &id);
    assert!(
        !server.log_text().contains(&secret),
        "an S3 key's secret never reaches the log"
    );
}

/// Every operation once, under `prefix` in the workspace's bucket.
fn round_trip(aws: &Aws<'_>, prefix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let small = pattern(200_000, 1);
    let large = pattern(17 * MIB + 123, 2);
    let small_file = write(dir.path(), "small.json", &small);
    let large_file = write(dir.path(), "large.bin", &large);
    let key = |name: &str| format!("{prefix}{name}");
    let url = |name: &str| format!("s3://cli/{prefix}{name}");

    // One PutObject, and a multipart upload (the CLI splits above 8 MiB).
    aws.ok(&[
        "s3",
        "cp",
        small_file.to_str().unwrap(),
        &url("a/small.json"),
    ]);
    aws.ok(&[
        "s3",
        "cp",
        large_file.to_str().unwrap(),
        &url("a/large.bin"),
    ]);
    let back = dir.path().join("large.back");
    aws.ok(&["s3", "cp", &url("a/large.bin"), back.to_str().unwrap()]);
    assert!(
        std::fs::read(&back).unwrap() == large,
        "the multipart object reads back byte for byte ({prefix})"
    );
    let head = aws.json(&[
        "s3api",
        "head-object",
        "--bucket",
        "cli",
        "--key",
        &key("a/large.bin"),
    ]);
    assert_eq!(head["ContentLength"], large.len(), "{head}");
    assert!(
        head["ETag"].as_str().unwrap().ends_with("-3\""),
        "a three-part upload has a multipart ETag: {head}"
    );

    // A ranged GET.
    let part = dir.path().join("range.out");
    let got = aws.json(&[
        "s3api",
        "get-object",
        "--bucket",
        "cli",
        "--key",
        &key("a/small.json"),
        "--range",
        "bytes=100-199",
        part.to_str().unwrap(),
    ]);
    assert_eq!(
        got["ContentRange"],
        format!("bytes 100-199/{}", small.len())
    );
    assert_eq!(std::fs::read(&part).unwrap(), small[100..200]);

    // CopyObject, as Pulumi keeps its `.bak`.
    aws.ok(&[
        "s3api",
        "copy-object",
        "--bucket",
        "cli",
        "--key",
        &key("a/small.json.bak"),
        "--copy-source",
        &format!("cli/{}", key("a/small.json")),
    ]);
    let copy = dir.path().join("copy.out");
    aws.ok(&["s3", "cp", &url("a/small.json.bak"), copy.to_str().unwrap()]);
    assert_eq!(std::fs::read(&copy).unwrap(), small);

    // Listings: `aws s3 ls` (v2 with a delimiter), v1, and v2 in pages of one key.
    let ls = aws.ok(&["s3", "ls", &url("a/")]);
    for name in ["small.json", "small.json.bak", "large.bin"] {
        assert!(ls.contains(name), "`aws s3 ls` lists {name}:\n{ls}");
    }
    let top = aws.ok(&["s3", "ls", &format!("s3://cli/{prefix}")]);
    assert!(
        top.contains("PRE a/"),
        "the delimited listing shows the folder:\n{top}"
    );
    let v1 = aws.json(&[
        "s3api",
        "list-objects",
        "--bucket",
        "cli",
        "--prefix",
        &key("a/"),
    ]);
    assert_eq!(v1["Contents"].as_array().unwrap().len(), 3, "{v1}");
    let paged = aws.json(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "cli",
        "--prefix",
        &key("a/"),
        "--page-size",
        "1",
    ]);
    let keys: Vec<&str> = paged["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            key("a/large.bin"),
            key("a/small.json"),
            key("a/small.json.bak")
        ],
        "three pages of one key, in key order"
    );

    // `sync` uploads only what changed.
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    write(&tree, "one.txt", b"one");
    write(&tree.join("sub"), "two.txt", b"two");
    let first = aws.ok(&["s3", "sync", tree.to_str().unwrap(), &url("tree/")]);
    assert_eq!(first.matches("upload:").count(), 2, "{first}");
    let again = aws.ok(&["s3", "sync", tree.to_str().unwrap(), &url("tree/")]);
    assert_eq!(
        again.matches("upload:").count(),
        0,
        "nothing changed: {again}"
    );

    // A presigned GET works without any header of the CLI's.
    let presigned = aws.ok(&["s3", "presign", &url("a/small.json"), "--expires-in", "300"]);
    let response = http_client().get(presigned.trim()).send().unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().unwrap().as_ref() == small.as_slice());

    // The bucket's own calls.
    aws.ok(&["s3api", "head-bucket", "--bucket", "cli"]);
    let location = aws.json(&["s3api", "get-bucket-location", "--bucket", "cli"]);
    assert!(location.get("LocationConstraint").is_some(), "{location}");

    // Deletes: one, then the rest in one batch.
    aws.ok(&["s3", "rm", &url("a/small.json.bak")]);
    assert_eq!(
        aws.refused(&[
            "s3api",
            "head-object",
            "--bucket",
            "cli",
            "--key",
            &key("a/small.json.bak")
        ]),
        "404",
        "HEAD of a deleted key is a 404"
    );
    let batch = serde_json::json!({
        "Objects": [{"Key": key("a/small.json")}, {"Key": key("a/large.bin")}, {"Key": key("never-there")}],
    });
    let deleted = aws.json(&[
        "s3api",
        "delete-objects",
        "--bucket",
        "cli",
        "--delete",
        &batch.to_string(),
    ]);
    assert_eq!(deleted["Deleted"].as_array().unwrap().len(), 3, "{deleted}");
    // `aws s3 ls` exits 1 when nothing matches.
    let left = aws.run(&["s3", "ls", &url("a/")]);
    assert_eq!(
        left.status.code(),
        Some(1),
        "nothing left under a/: {}",
        describe(&left)
    );
    assert!(left.stdout.is_empty());
}

fn refusals(server: &Server, home: &Path, id: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "x.json", b"{}");
    let file = file.to_str().unwrap();
    let as_key = |key_id: &str, secret: &str| Aws {
        server,
        key_id: key_id.to_owned(),
        secret: secret.to_owned(),
        checksums: "when_supported",
        home,
    };

    let wrong = as_key(id, "not-the-secret-not-the-secret-00");
    assert_eq!(
        wrong.refused(&["s3", "cp", file, "s3://cli/x.json"]),
        "SignatureDoesNotMatch"
    );
    let (revoked, revoked_secret) = s3_key(server, "cli", "editor", "gone");
    server.cli(&["s3-key", "revoke", "--workspace", "cli", &revoked]);
    assert_eq!(
        as_key(&revoked, &revoked_secret).refused(&["s3", "cp", file, "s3://cli/x.json"]),
        "InvalidAccessKeyId"
    );
    let (viewer, viewer_secret) = s3_key(server, "cli", "viewer", "reader");
    let viewer = as_key(&viewer, &viewer_secret);
    assert_eq!(
        viewer.refused(&["s3", "cp", file, "s3://cli/x.json"]),
        "AccessDenied"
    );
    viewer.ok(&["s3", "ls", "s3://cli/"]);
    let (other, other_secret) = s3_key(server, "other", "editor", "theirs");
    let other = as_key(&other, &other_secret);
    // Another workspace's bucket is not there for this key, as in the REST API.
    assert_eq!(other.refused(&["s3", "ls", "s3://cli/"]), "NoSuchBucket");
    let buckets = other.ok(&["s3", "ls"]);
    assert!(
        buckets.contains("other") && !buckets.contains(" cli"),
        "ListBuckets names only the key's workspace:\n{buckets}"
    );
}
