//! The module's behaviour on realistic checkpoints (see [`super::fixtures`]) and hostile ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::fixtures::provider_urn;
use super::fixtures::*;
use super::*;
use crate::Error;
use crate::statefile::StateKind;
use crate::store::search::{NotIndexedReason, VersionResources};
use crate::tfstate::{IndexedResource, Mode, StateDiff, TOO_DEEP};

fn indexed(facts: &CheckpointFacts) -> Vec<IndexedResource> {
    match &facts.resources {
        VersionResources::Indexed(entries) => entries.resources().cloned().collect(),
        other => panic!("not indexed: {other:?}"),
    }
}

fn by_address<'r>(entries: &'r [IndexedResource], urn: &str) -> &'r IndexedResource {
    entries
        .iter()
        .find(|e| e.address == urn)
        .unwrap_or_else(|| panic!("{urn} not indexed"))
}

fn bad_request(result: crate::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::BadRequest(m)) => m,
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

#[test]
fn every_encoding_and_layout_reads_the_same() {
    for version in [3, 4] {
        let checkpoint = Checkpoint::typical(version);
        let bodies = [
            checkpoint.minified(),
            checkpoint.indented(),
            checkpoint.gzip(),
            checkpoint.zstd(),
        ];
        let first = inspect(&bodies[0]).unwrap();
        for body in &bodies {
            assert!(classify(body).unwrap().kind == StateKind::Pulumi);
            let facts = inspect(body).unwrap();
            assert_eq!(facts, first);
        }
        assert_eq!(first.stack, STACK);
        assert_eq!(first.format_version, version);
        assert_eq!(first.client_version.as_deref(), Some("v3.142.0"));
        assert_eq!(first.resource_count, 7);
        assert!(!first.pending_operations);
    }
    assert!(
        Checkpoint::typical(3)
            .indented()
            .starts_with(b"{\n    \"version\": 3,")
    );
}

#[test]
fn resources_are_indexed_by_urn() {
    let facts = inspect(&Checkpoint::typical(3).minified()).unwrap();
    let entries = indexed(&facts);
    assert_eq!(entries.len(), 7);

    let bucket = by_address(&entries, &urn("aws:s3/bucket:Bucket", "assets"));
    assert_eq!(bucket.resource_type, "aws:s3/bucket:Bucket");
    assert_eq!(bucket.name, "assets");
    assert_eq!(bucket.mode, Mode::Managed);
    assert_eq!(bucket.module, "", "directly under the stack: the root");
    assert_eq!(bucket.provider, provider_urn());
    assert_eq!(bucket.index_key, None);
    assert_eq!(bucket.ids.id.as_deref(), Some("assets-4f2a1b3"));
    assert_eq!(
        bucket.ids.arn.as_deref(),
        Some("arn:aws:s3:::assets-4f2a1b3")
    );
    assert_eq!(bucket.ids.name, None);

    let child = by_address(
        &entries,
        &urn("shop:index:Site$aws:s3/bucket:Bucket", "web-content"),
    );
    assert_eq!(child.resource_type, "aws:s3/bucket:Bucket");
    assert_eq!(child.name, "web-content");
    assert_eq!(child.module, urn("shop:index:Site", "web"));

    let site = by_address(&entries, &urn("shop:index:Site", "web"));
    assert_eq!((site.provider.as_str(), site.ids.id.as_deref()), ("", None));

    let vpc = by_address(&entries, &urn("aws:ec2/vpc:Vpc", "shared"));
    assert_eq!(vpc.mode, Mode::Data);

    // The stack's outputs are not identifiers; the secret password result is not indexed.
    let stack = by_address(&entries, &stack_urn());
    assert_eq!(stack.ids, Default::default());
    let password = by_address(
        &entries,
        &urn("random:index/randomPassword:RandomPassword", "db"),
    );
    assert_eq!(password.ids.id.as_deref(), Some("none"));
    let everything = format!("{entries:?}");
    assert!(!everything.contains("CIPHERTEXT"), "{everything}");
}

#[test]
fn gcp_style_outputs_give_name_and_self_link() {
    let network = json!({
        "urn": urn("gcp:compute/network:Network", "vpc"),
        "custom": true,
        "id": "projects/p/global/networks/vpc-1",
        "type": "gcp:compute/network:Network",
        "outputs": {"name": "vpc-1", "selfLink": "https://www.googleapis.com/compute/v1/projects/p/global/networks/vpc-1",
                    "arn": secret("x")},
        "parent": stack_urn()
    });
    let facts = inspect(&Checkpoint::new(3).with(network).minified()).unwrap();
    let entry = &indexed(&facts)[0];
    assert_eq!(entry.ids.name.as_deref(), Some("vpc-1"));
    assert!(
        entry
            .ids
            .self_link
            .as_deref()
            .unwrap()
            .ends_with("/networks/vpc-1")
    );
    assert_eq!(entry.ids.arn, None, "a secret is never indexed");
}

#[test]
fn a_new_stack_has_no_resources() {
    let expected = format!(r#"{{"version":0,"checkpoint":{{"stack":"{STACK}"}}}}"#);
    assert_eq!(Checkpoint::initialized().minified(), expected.as_bytes());
    let body = br#"{"version":0,"checkpoint":{"stack":"organization/p/s"}}"#;
    let facts = inspect(body).unwrap();
    assert_eq!(facts.stack, "organization/p/s");
    assert_eq!(facts.resource_count, 0);
    assert_eq!(facts.client_version, None);
    assert_eq!(
        facts.resources,
        VersionResources::Indexed(Vec::new().into())
    );
    assert!(outputs(body).unwrap().is_empty());
}

#[test]
fn pending_operations_and_pending_deletes() {
    let replaced = bucket(
        "aws:s3/bucket:Bucket",
        "assets",
        None,
        json!({"env": "old"}),
    );
    let mut pending_delete = replaced.clone();
    pending_delete["delete"] = json!(true);
    let body = Checkpoint::typical(3)
        .with(pending_delete)
        .pending(
            bucket("aws:s3/bucket:Bucket", "logs", None, json!({})),
            "creating",
        )
        .minified();
    let facts = inspect(&body).unwrap();
    assert!(facts.pending_operations);
    assert_eq!(facts.resource_count, 8);
    // The resource awaiting deletion is not indexed beside its replacement.
    let entries = indexed(&facts);
    assert_eq!(entries.len(), 7);
    assert_eq!(
        by_address(&entries, &urn("aws:s3/bucket:Bucket", "assets"))
            .ids
            .id
            .as_deref(),
        Some("assets-4f2a1b3")
    );
}

#[test]
fn what_is_not_a_checkpoint_is_refused() {
    assert!(bad_request(inspect(b"{not json")).contains("not a Pulumi checkpoint"));
    assert!(bad_request(inspect(b"[1]")).contains("not a JSON object"));
    assert!(bad_request(inspect(b"")).contains("not a JSON object"));
    let terraform = br#"{"version":4,"serial":1,"lineage":"l","resources":[]}"#;
    assert!(bad_request(inspect(terraform)).contains("no Terraform \"serial\""));
    assert!(
        bad_request(inspect(br#"{"version":3,"checkpoint":{}}"#))
            .contains("no \"checkpoint.stack\"")
    );
    assert!(bad_request(inspect(&gzip(b"\xff\xfe"))).contains("not a JSON object"));
    assert!(
        bad_request(inspect(
            b"{\"version\":3,\"checkpoint\":{\"stack\":\"\xff\"}}"
        ))
        .contains("UTF-8")
    );
}

#[test]
fn control_characters_in_names_are_refused() {
    let body = br#"{"version":3,"checkpoint":{"stack":"organization/p/s\u0000x"}}"#;
    assert!(
        bad_request(inspect(body))
            .contains("\"checkpoint.stack\" contains the control character U+0000")
    );
    let body = br#"{"version":3,"checkpoint":{"stack":"o/p/s","latest":{"manifest":{"version":"v3\u001b[2J"}}}}"#;
    assert!(bad_request(inspect(body)).contains("U+001B"));
}

#[test]
fn nul_in_a_urn_leaves_the_checkpoint_unindexed() {
    let mut evil = bucket("aws:s3/bucket:Bucket", "assets", None, json!({}));
    evil["urn"] = json!("urn:pulumi:dev::shop::aws:s3/bucket:Bucket::a\u{0}b");
    let facts = inspect(&Checkpoint::typical(3).with(evil).minified()).unwrap();
    assert_eq!(
        facts.resources,
        VersionResources::NotIndexed(NotIndexedReason::Unreadable)
    );
    assert_eq!(facts.resource_count, 8);
    let mut evil = bucket("aws:s3/bucket:Bucket", "assets", None, json!({}));
    evil["provider"] = json!("urn:pulumi:dev::shop::pulumi:providers:aws::x\u{0}::id");
    let facts = inspect(&Checkpoint::new(3).with(evil).minified()).unwrap();
    assert!(matches!(facts.resources, VersionResources::NotIndexed(_)));
}

#[test]
fn malformed_resources_are_stored_unindexed() {
    // A resource without a URN: the header is still read.
    let body = br#"{"version":3,"checkpoint":{"stack":"o/p/s","latest":{"manifest":{"version":"v3.1.0"},"resources":[{"type":"x"},{}]}}}"#;
    let facts = inspect(body).unwrap();
    assert_eq!(facts.stack, "o/p/s");
    assert_eq!(facts.resource_count, 2);
    assert_eq!(facts.client_version.as_deref(), Some("v3.1.0"));
    assert_eq!(
        facts.resources,
        VersionResources::NotIndexed(NotIndexedReason::Unreadable)
    );
}

#[test]
fn deep_nesting_is_stored_and_shown_as_a_note() {
    // Built as text: serde_json cannot build a Value this deep.
    let deep = format!("{}\"x\"{}", "[".repeat(300), "]".repeat(300));
    let template = Checkpoint::new(3)
        .with(stack(json!({"deep": "DEEP", "plain": 1})))
        .with(bucket(
            "aws:s3/bucket:Bucket",
            "assets",
            None,
            json!({"k": "DEEP"}),
        ));
    let text = String::from_utf8(template.minified())
        .unwrap()
        .replace("\"DEEP\"", &deep);
    let facts = inspect(text.as_bytes()).unwrap();
    assert_eq!(facts.resource_count, 2);
    assert!(matches!(facts.resources, VersionResources::Indexed(_)));
    let shown = outputs(text.as_bytes()).unwrap();
    assert_eq!(shown[0].name, "deep");
    assert_eq!(shown[0].value, json!(TOO_DEEP));
    assert_eq!(shown[1].value, json!(1));

    let old = template.minified();
    let diff = diff(&old, text.as_bytes()).unwrap();
    assert_eq!(diff.changed.len(), 1);
    assert_eq!(diff.changed[0].attributes[0].after, Some(json!(TOO_DEEP)));
    assert_eq!(diff.outputs.changed[0].after, json!(TOO_DEEP));
}

#[test]
fn deep_nesting_elsewhere_costs_no_stack() {
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    // Where statehouse reads nothing (config), it is skipped: the checkpoint is read.
    let body = format!(r#"{{"version":3,"checkpoint":{{"stack":"o/p/s","config":{deep}}}}}"#);
    assert_eq!(inspect(body.as_bytes()).unwrap().stack, "o/p/s");
    // Where it reads a name (a resource's parent), the resources cannot be read: stored,
    // not indexed.
    let body = format!(
        r#"{{"version":3,"checkpoint":{{"stack":"o/p/s","latest":{{"resources":[{{"urn":"urn:pulumi:s::p::t:m:T::n","type":"t:m:T","parent":{deep}}}]}}}}}}"#
    );
    let facts = inspect(body.as_bytes()).unwrap();
    assert_eq!(facts.resource_count, 1);
    assert_eq!(
        facts.resources,
        VersionResources::NotIndexed(NotIndexedReason::Unreadable)
    );
    // Never a checkpoint when the nesting never ends.
    let unclosed = format!(
        r#"{{"version":3,"checkpoint":{{"stack":{}"#,
        "[".repeat(100_000)
    );
    assert!(bad_request(inspect(unclosed.as_bytes())).contains("not a readable Pulumi checkpoint"));
}

#[test]
fn outputs_are_the_stack_resource_outputs_with_secrets_masked() {
    let body = Checkpoint::typical(4).indented();
    let shown = outputs(&body).unwrap();
    let names: Vec<&str> = shown.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["bucketName", "dbPassword", "endpoints"]);
    assert_eq!(shown[0].value, json!("assets-4f2a1b3"));
    assert!(!shown[0].sensitive);
    assert_eq!(shown[0].value_type, None);
    assert_eq!(shown[1].value, json!("(secret)"));
    assert!(shown[1].sensitive);
    assert_eq!(
        shown[2].value,
        json!({"web": "https://web.example.com", "apiKey": "(secret)"})
    );
    assert!(shown[2].sensitive);
    let text = serde_json::to_string(&shown).unwrap();
    assert!(!text.contains("CIPHERTEXT"), "{text}");
}

fn changed_paths(diff: &StateDiff, urn: &str) -> Vec<String> {
    diff.changed
        .iter()
        .find(|c| c.instance.address == urn)
        .map(|c| c.attributes.iter().map(|a| a.path.clone()).collect())
        .unwrap_or_default()
}

#[test]
fn diff_by_urn_with_property_paths() {
    let old = Checkpoint::typical(3);
    let mut new = Checkpoint::typical(3);
    // Bucket tags changed; the password removed; a queue added; the VPC's modified time
    // alone changed (not a change).
    let assets = urn("aws:s3/bucket:Bucket", "assets");
    let position = |c: &Checkpoint, urn: &str| c.resources.iter().position(|r| r["urn"] == urn);
    let i = position(&new, &assets).unwrap();
    new.resources[i] = bucket(
        "aws:s3/bucket:Bucket",
        "assets",
        None,
        json!({"env": "prod", "team": "web"}),
    );
    new.resources[i]["modified"] = json!("2024-06-01T00:00:00Z");
    let i = position(
        &new,
        &urn("random:index/randomPassword:RandomPassword", "db"),
    )
    .unwrap();
    new.resources.remove(i);
    let i = position(&new, &urn("aws:ec2/vpc:Vpc", "shared")).unwrap();
    new.resources[i]["modified"] = json!("2024-06-01T00:00:00Z");
    let queue = json!({"urn": urn("aws:sqs/queue:Queue", "jobs"), "custom": true, "id": "https://sqs/jobs",
        "type": "aws:sqs/queue:Queue", "parent": stack_urn(), "provider": provider_ref()});
    let mut new = new.with(queue);
    new.resources[0]["outputs"]["bucketName"] = json!("assets-prod");

    let diff = diff(&old.gzip(), &new.indented()).unwrap();
    assert_eq!(diff.kind, StateKind::Pulumi);
    assert_eq!(diff.before.lineage, STACK);
    assert_eq!(
        (
            diff.before.resource_instances,
            diff.after.resource_instances
        ),
        (7, 7)
    );
    assert_eq!(diff.added.len(), 1);
    assert_eq!(diff.added[0].address, urn("aws:sqs/queue:Queue", "jobs"));
    assert_eq!(diff.added[0].resource_type, "aws:sqs/queue:Queue");
    assert_eq!(diff.added[0].name, "jobs");
    assert_eq!(diff.added[0].provider, provider_urn());
    assert_eq!(diff.removed.len(), 1);
    assert_eq!(diff.removed[0].name, "db");
    assert_eq!(diff.changed.len(), 1, "{:#?}", diff.changed);
    assert_eq!(
        changed_paths(&diff, &assets),
        [
            "inputs.tags.env",
            "inputs.tags.team",
            "outputs.tags.env",
            "outputs.tags.team",
            "outputs.tagsAll.env",
            "outputs.tagsAll.team"
        ]
    );
    let env = &diff.changed[0].attributes[0];
    assert_eq!(
        (env.before.clone(), env.after.clone()),
        (Some(json!("dev")), Some(json!("prod")))
    );
    assert!(!env.sensitive);
    let team = &diff.changed[0].attributes[1];
    assert_eq!(
        (team.before.clone(), team.after.clone()),
        (None, Some(json!("web")))
    );
    assert_eq!(diff.unchanged, 5);
    // The stack's output change is reported once, as an output.
    assert_eq!(diff.outputs.changed.len(), 1);
    assert_eq!(diff.outputs.changed[0].name, "bucketName");
    assert_eq!(diff.outputs.changed[0].after, json!("assets-prod"));
    // The same shape as a Terraform diff, plus the marker.
    let value = serde_json::to_value(&diff).unwrap();
    assert_eq!(value["kind"], "pulumi");
    assert_eq!(value["changed"][0]["address"], json!(assets));
    assert_eq!(value["changed"][0]["mode"], "managed");
}

#[test]
fn changed_secrets_show_as_secret_and_never_their_ciphertext() {
    let old = Checkpoint::typical(3);
    let mut new = Checkpoint::typical(3).with(json!({
        "urn": urn("aws:iam/accessKey:AccessKey", "ci"), "custom": true, "id": "AKIA1",
        "type": "aws:iam/accessKey:AccessKey", "parent": stack_urn(),
        "outputs": {"secret": secret("NEW-CIPHERTEXT-1"), "id": "AKIA1"}
    }));
    let rotated = "v1:bmV3:ROTATED-CIPHERTEXT";
    new.resources[0]["outputs"]["dbPassword"] = secret(rotated);
    new.resources[0]["outputs"]["endpoints"]["apiKey"] = json!("now-plain");
    let i = new
        .resources
        .iter()
        .position(|r| r["type"] == "random:index/randomPassword:RandomPassword")
        .unwrap();
    new.resources[i] = password(rotated);
    new.resources[i]["outputs"]["bcryptHash"] = json!("$2a$10$hash-marked-secret");
    new.resources[i]["inputs"]["length"] = json!(32);

    let diff = diff(&old.minified(), &new.minified()).unwrap();
    let text = serde_json::to_string(&diff).unwrap();
    for hidden in ["CIPHERTEXT", "hash-marked-secret", SIG_KEY] {
        assert!(!text.contains(hidden), "{hidden} in {text}");
    }
    let password_urn = urn("random:index/randomPassword:RandomPassword", "db");
    assert_eq!(
        changed_paths(&diff, &password_urn),
        ["inputs.length", "outputs.bcryptHash", "outputs.result"]
    );
    let change = diff
        .changed
        .iter()
        .find(|c| c.instance.address == password_urn)
        .unwrap();
    let hash = &change.attributes[1];
    assert_eq!(
        (hash.before.clone(), hash.after.clone(), hash.sensitive),
        (None, Some(json!("(secret)")), true)
    );
    let result = &change.attributes[2];
    assert_eq!(result.before, Some(json!("(secret)")));
    assert_eq!(result.after, Some(json!("(secret)")));
    assert!(result.sensitive);
    let db = diff
        .outputs
        .changed
        .iter()
        .find(|o| o.name == "dbPassword")
        .unwrap();
    assert_eq!(
        (&db.before, &db.after, db.sensitive),
        (&json!("(secret)"), &json!("(secret)"), true)
    );
    let endpoints = diff
        .outputs
        .changed
        .iter()
        .find(|o| o.name == "endpoints")
        .unwrap();
    assert_eq!(endpoints.before["apiKey"], "(secret)");
    assert_eq!(endpoints.after["apiKey"], "now-plain");
    assert!(endpoints.sensitive);
    let key = diff.added.iter().find(|a| a.name == "ci").unwrap();
    assert_eq!(key.resource_type, "aws:iam/accessKey:AccessKey");
}

#[test]
fn unchanged_checkpoints_have_no_changes_whatever_the_encoding() {
    let checkpoint = Checkpoint::typical(4);
    let diff = diff(&checkpoint.zstd(), &checkpoint.indented()).unwrap();
    assert!(diff.added.is_empty() && diff.removed.is_empty() && diff.changed.is_empty());
    assert_eq!(diff.unchanged, 7);
    assert_eq!(diff.outputs, Default::default());
}

#[test]
fn pending_operations_and_replacements_show_in_the_diff() {
    let old = Checkpoint::typical(3);
    let assets = bucket(
        "aws:s3/bucket:Bucket",
        "assets",
        None,
        json!({"env": "dev"}),
    );
    let mut awaiting = assets.clone();
    awaiting["delete"] = json!(true);
    let new = Checkpoint::typical(3)
        .with(awaiting)
        .pending(assets, "updating");
    let diff = diff(&old.minified(), &new.minified()).unwrap();
    assert_eq!(diff.added.len(), 1);
    assert_eq!(diff.added[0].deposed.as_deref(), Some(PENDING_DELETE));
    assert_eq!(diff.changed.len(), 1);
    let status = diff.changed[0].status.clone().unwrap();
    assert_eq!(
        (status.before, status.after.as_deref()),
        (None, Some("pending updating"))
    );
    assert!(diff.changed[0].attributes.is_empty());
    assert_eq!(diff.after.resource_instances, 7);
}

#[test]
fn stack_init_then_first_update() {
    let diff = diff(
        &Checkpoint::initialized().minified(),
        &Checkpoint::typical(3).minified(),
    )
    .unwrap();
    assert_eq!(diff.added.len(), 7);
    assert_eq!(diff.outputs.added.len(), 3);
    assert_eq!(diff.before.resource_instances, 0);
}
