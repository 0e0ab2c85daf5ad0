//! Pulumi checkpoints through the same API as Terraform states: two checkpoint versions
//! written through the service (as the S3 endpoint will), then their diff, the stack's
//! outputs, a search hit marked `kind: "pulumi"` beside Terraform's, and a rollback. Secrets
//! read `(secret)` and no ciphertext ever leaves the server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;

use common::TestServer;
use serde_json::{Value, json};
use statehouse_core::Error;
use statehouse_core::access::{Principal, Role};
use statehouse_core::model::WriteOutcome;

const AWS_V1: &[u8] = include_bytes!("../../core/tests/fixtures/tfstate/aws-v1.tfstate");
const STATE: &str = "pulumi/shop/dev";
const PATH: &str = "/workspaces/default/states/pulumi%2Fshop%2Fdev";
const SIG: &str = "4dabf18193072939515e22adb298388d";

fn urn(qualified_type: &str, name: &str) -> String {
    format!("urn:pulumi:dev::shop::{qualified_type}::{name}")
}

fn secret(ciphertext: &str) -> Value {
    json!({SIG: "1b47061264138c4ac30d75fd1eb44270", "ciphertext": ciphertext})
}

/// A checkpoint as the CLI writes it (keys `version`, then `checkpoint`): the stack with
/// outputs (one secret), the AWS provider, a bucket with these tags, and a password whose
/// result is a secret.
fn checkpoint(tags: Value, password_ciphertext: &str, bucket_name_output: &str) -> Vec<u8> {
    let stack = urn("pulumi:pulumi:Stack", "shop-dev");
    let provider = urn("pulumi:providers:aws", "default_6_66_2");
    let resources = json!([
        {"urn": stack, "custom": false, "type": "pulumi:pulumi:Stack",
         "outputs": {"bucketName": bucket_name_output, "dbPassword": secret(password_ciphertext)}},
        {"urn": provider, "custom": true, "id": "04da6b54", "type": "pulumi:providers:aws",
         "inputs": {"region": "eu-west-1"}, "outputs": {"region": "eu-west-1"}},
        {"urn": urn("aws:s3/bucket:Bucket", "assets"), "custom": true, "id": "assets-4f2a1b3",
         "type": "aws:s3/bucket:Bucket", "parent": stack, "provider": format!("{provider}::04da6b54"),
         "inputs": {"bucket": "assets-4f2a1b3", "tags": tags},
         "outputs": {"arn": "arn:aws:s3:::assets-4f2a1b3", "bucket": "assets-4f2a1b3", "id": "assets-4f2a1b3", "tags": tags}},
        {"urn": urn("random:index/randomPassword:RandomPassword", "db"), "custom": true, "id": "none",
         "type": "random:index/randomPassword:RandomPassword", "parent": stack,
         "inputs": {"length": 24}, "outputs": {"length": 24, "result": secret(password_ciphertext)}}
    ]);
    let checkpoint = json!({
        "stack": "organization/shop/dev",
        "latest": {"manifest": {"time": "2024-05-02T09:12:51Z", "magic": "x", "version": "v3.142.0"},
                   "resources": resources}
    });
    format!(r#"{{"version":3,"checkpoint":{checkpoint}}}"#).into_bytes()
}

/// As a CLI with `PULUMI_DIY_BACKEND_GZIP` sends it.
fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

async fn write(s: &TestServer, body: Vec<u8>) -> statehouse_core::model::VersionMeta {
    match s
        .services
        .write_checkpoint(&Principal::local_operator(), "default", STATE, body, None)
        .await
        .unwrap()
    {
        WriteOutcome::Created(meta) => meta,
        WriteOutcome::Unchanged(meta) => panic!("unchanged at version {}", meta.version_no),
    }
}

async fn get(s: &TestServer, token: &str, path: &str) -> Value {
    let (status, body) = s.api("GET", path, Some(token), None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test]
async fn checkpoints_have_versions_diff_outputs_and_search() {
    let s = TestServer::start().await;
    let viewer = s.token(Some("default"), Role::Viewer).await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let editor = s.token(Some("default"), Role::Editor).await;

    let v1 = write(
        &s,
        checkpoint(json!({"env": "dev"}), "v1:OLD-CIPHERTEXT", "assets"),
    )
    .await;
    s.clock.advance_millis(60_000);
    let v2_body = checkpoint(json!({"env": "prod"}), "v1:NEW-CIPHERTEXT", "assets-prod");
    let v2 = write(&s, gzip(&v2_body)).await;
    assert_eq!((v1.version_no, v1.serial), (1, 1));
    assert_eq!((v2.version_no, v2.serial), (2, 2));
    assert_eq!(v2.lineage, "organization/shop/dev");
    assert_eq!(v2.client_version.as_deref(), Some("v3.142.0"));
    assert_eq!(v2.resource_count, Some(4));
    // The same checkpoint again stores nothing; the version keeps the gzip body as sent.
    let again = s
        .services
        .write_checkpoint(
            &Principal::local_operator(),
            "default",
            STATE,
            gzip(&v2_body),
            None,
        )
        .await
        .unwrap();
    assert!(matches!(again, WriteOutcome::Unchanged(ref m) if m.version_no == 2));
    let version = get(&s, &viewer, &format!("{PATH}/versions/2")).await;
    assert_eq!(version["resource_count"], 4);
    assert_eq!(version["serial"], 2);

    // The diff: the same endpoint and shape as Terraform's, marked pulumi.
    let (status, text) = {
        let resp = s
            .client
            .get(s.api_url(&format!("{PATH}/diff")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("CIPHERTEXT"), "{text}");
    assert!(!text.contains(SIG), "{text}");
    let diff: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (diff["from"].clone(), diff["to"].clone()),
        (json!(1), json!(2))
    );
    let d = &diff["diff"];
    assert_eq!(d["kind"], "pulumi");
    assert_eq!(d["before"]["serial"], 1);
    assert_eq!(d["after"]["serial"], 2);
    assert_eq!(d["after"]["lineage"], "organization/shop/dev");
    assert_eq!(d["added"], json!([]));
    assert_eq!(d["removed"], json!([]));
    let changed = d["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 2, "{d:#}");
    let bucket = &changed[0];
    assert_eq!(bucket["address"], urn("aws:s3/bucket:Bucket", "assets"));
    assert_eq!(bucket["type"], "aws:s3/bucket:Bucket");
    let paths: Vec<&str> = bucket["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["inputs.tags.env", "outputs.tags.env"]);
    assert_eq!(bucket["attributes"][0]["before"], "dev");
    assert_eq!(bucket["attributes"][0]["after"], "prod");
    let password = &changed[1];
    assert_eq!(password["name"], "db");
    assert_eq!(
        password["attributes"],
        json!([{"path": "outputs.result", "before": "(secret)", "after": "(secret)", "sensitive": true}])
    );
    assert_eq!(d["unchanged"], 2);
    let outputs_changed = d["outputs"]["changed"].as_array().unwrap();
    assert_eq!(outputs_changed.len(), 2);
    assert_eq!(outputs_changed[0]["name"], "bucketName");
    assert_eq!(outputs_changed[0]["after"], "assets-prod");
    assert_eq!(outputs_changed[1]["name"], "dbPassword");
    assert_eq!(outputs_changed[1]["after"], "(secret)");

    // The stack's outputs, in the shape of Terraform's, secrets masked even for admins.
    for token in [&viewer, &admin] {
        let (status, text) = {
            let resp = s
                .client
                .get(s.api_url(&format!("{PATH}/outputs")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        };
        assert_eq!(status, 200, "{text}");
        assert!(!text.contains("CIPHERTEXT"), "{text}");
        let outputs: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(outputs["version"], 2);
        assert_eq!(
            outputs["outputs"],
            json!([
                {"name": "bucketName", "value": "assets-prod", "type": null, "sensitive": false},
                {"name": "dbPassword", "value": "(secret)", "type": null, "sensitive": true}
            ])
        );
    }

    // Search: Pulumi resources beside Terraform's, each hit saying which it is.
    let (status, _) = s
        .send("POST", "default/prod/app", Some(&editor), Some(AWS_V1))
        .await;
    assert_eq!(status, 200);
    let page = get(&s, &viewer, "/search/resources?type=aws:s3/bucket:Bucket").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page:#}");
    let hit = &items[0];
    assert_eq!(hit["kind"], "pulumi");
    assert_eq!(hit["state"], STATE);
    assert_eq!(hit["address"], urn("aws:s3/bucket:Bucket", "assets"));
    assert_eq!(hit["name"], "assets");
    assert_eq!(hit["module"], "");
    assert_eq!(
        hit["provider"],
        urn("pulumi:providers:aws", "default_6_66_2")
    );
    assert_eq!(hit["attributes"]["arn"], "arn:aws:s3:::assets-4f2a1b3");
    assert_eq!(hit["version"], 2);
    assert_eq!(hit["appeared_in_version"], 1);
    let by_id = get(&s, &viewer, "/search/resources?q=assets-4f2a1b3").await;
    assert_eq!(by_id["items"][0]["kind"], "pulumi");
    let terraform = get(&s, &viewer, "/search/resources?type=aws_instance&limit=1").await;
    assert_eq!(terraform["items"][0]["kind"], "terraform");
    let prefix = get(&s, &viewer, "/search/resources?type=random:&match=prefix").await;
    assert_eq!(prefix["items"][0]["name"], "db");
    assert_eq!(prefix["items"][0]["attributes"]["id"], "none");
    let resources = get(&s, &viewer, &format!("{PATH}/resources")).await;
    assert_eq!(resources["items"].as_array().unwrap().len(), 4);

    // Rollback writes the old checkpoint back, byte for byte, as version 3.
    let (status, rolled) = s
        .api(
            "POST",
            &format!("{PATH}/rollback"),
            Some(&editor),
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(status, 201, "{rolled}");
    assert_eq!(
        (rolled["version"].clone(), rolled["serial"].clone()),
        (json!(3), json!(3))
    );
    let back = get(&s, &viewer, &format!("{PATH}/diff?from=1&to=3")).await;
    assert_eq!(back["diff"]["changed"], json!([]));
    assert_eq!(back["diff"]["outputs"]["changed"], json!([]));
}

#[tokio::test]
async fn checkpoints_and_terraform_states_do_not_mix() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let op = Principal::local_operator();
    // A Terraform state's name: a checkpoint there is another lineage.
    let (status, _) = s
        .send("POST", "default/prod/app", Some(&editor), Some(AWS_V1))
        .await;
    assert_eq!(status, 200);
    let conflict = s
        .services
        .write_checkpoint(
            &op,
            "default",
            "prod/app",
            checkpoint(json!({}), "c", "b"),
            None,
        )
        .await;
    assert!(
        matches!(conflict, Err(Error::Conflict(ref m)) if m.contains("lineage")),
        "{conflict:?}"
    );
    // Not a checkpoint: refused, nothing stored.
    let refused = s
        .services
        .write_checkpoint(&op, "default", STATE, AWS_V1.to_vec(), None)
        .await;
    assert!(
        matches!(refused, Err(Error::BadRequest(ref m)) if m.contains("not a Pulumi checkpoint")),
        "{refused:?}"
    );
    assert_eq!(s.versions("default", STATE).await, 0);
    // The Terraform backend does not take a checkpoint either.
    let (status, text) = s
        .send(
            "POST",
            "default/other",
            Some(&editor),
            Some(&checkpoint(json!({}), "c", "b")),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    // A damaged Content-MD5 is caught as for Terraform writes.
    let body = checkpoint(json!({}), "c", "b");
    let wrong = s
        .services
        .write_checkpoint(&op, "default", STATE, body, Some(&[0u8; 16]))
        .await;
    assert!(matches!(wrong, Err(Error::BadRequest(ref m)) if m.contains("Content-MD5")));
    // The outputs role reads a stack's outputs through the API: the Terraform backend keeps
    // away from pulumi/ names.
    write(&s, checkpoint(json!({}), "c", "b")).await;
    let outputs_token = s.token(Some("default"), Role::Outputs).await;
    let (status, text) = s
        .send(
            "GET",
            &format!("default/{STATE}"),
            Some(&outputs_token),
            None,
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("Pulumi stacks"), "{text}");
    let outputs = get(&s, &outputs_token, &format!("{PATH}/outputs")).await;
    assert_eq!(outputs["outputs"][0]["value"], "b");
}
