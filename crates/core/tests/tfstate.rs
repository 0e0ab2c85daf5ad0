//! State analysis on real Terraform 1.0.3 states and on hand-written v4 states (see
//! `fixtures/tfstate/README.md`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use statehouse_core::Error;
use statehouse_core::statefile;
use statehouse_core::tfstate::{self, AttributeChange, IndexKey, Mode, SENSITIVE_MASK, StateDiff};

const PRODUCER_V1: &[u8] = include_bytes!("fixtures/tfstate/producer-v1.tfstate");
const PRODUCER_V2: &[u8] = include_bytes!("fixtures/tfstate/producer-v2.tfstate");
const CONSUMER_V1: &[u8] = include_bytes!("fixtures/tfstate/consumer-v1.tfstate");
const CONSUMER_V2: &[u8] = include_bytes!("fixtures/tfstate/consumer-v2.tfstate");
const AWS_V1: &[u8] = include_bytes!("fixtures/tfstate/aws-v1.tfstate");
const AWS_V2: &[u8] = include_bytes!("fixtures/tfstate/aws-v2.tfstate");

const ENCRYPTED: &[u8] = br#"{"serial":3,"lineage":"l","meta":{"key_provider.pbkdf2.x":"e30="},"encrypted_data":"AAAA","encryption_version":"v0"}"#;

fn addresses(body: &[u8]) -> Vec<String> {
    tfstate::index_entries(body)
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|e| e.address)
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn strings(items: &[&str]) -> Vec<String> {
    sorted(items.iter().map(|s| s.to_string()).collect())
}

fn change<'d>(diff: &'d StateDiff, address: &str) -> &'d tfstate::InstanceChange {
    diff.changed
        .iter()
        .find(|c| c.instance.address == address)
        .unwrap_or_else(|| panic!("{address} not among changed: {diff:#?}"))
}

fn attribute<'c>(changes: &'c [AttributeChange], path: &str) -> &'c AttributeChange {
    changes
        .iter()
        .find(|c| c.path == path)
        .unwrap_or_else(|| panic!("{path} not among {changes:#?}"))
}

#[test]
fn addresses_are_what_terraform_state_list_prints() {
    // Expected lists: `terraform state list` (Terraform 1.0.3) on the same files.
    assert_eq!(
        sorted(addresses(CONSUMER_V1)),
        strings(&[
            "data.terraform_remote_state.copy[0]",
            "data.terraform_remote_state.copy[1]",
            "data.terraform_remote_state.network",
            "module.app[\"api\"].data.terraform_remote_state.network",
            "module.app[\"web\"].data.terraform_remote_state.network",
            "module.app[\"api\"].module.inner[0].data.terraform_remote_state.deep",
            "module.app[\"web\"].module.inner[0].data.terraform_remote_state.deep",
        ])
    );
    assert_eq!(
        sorted(addresses(AWS_V2)),
        strings(&[
            "data.aws_ami.ubuntu",
            "aws_db_instance.main",
            "aws_instance.web[0]",
            "aws_instance.web[1]",
            "aws_instance.web[2]",
            "aws_security_group.web",
            "module.app[\"api\"].aws_s3_bucket.logs[\"api\"]",
            "module.app[\"worker\"].aws_s3_bucket.logs[\"worker\"]",
            "module.app[\"api\"].module.compute[0].google_compute_instance.vm",
        ])
    );
}

#[test]
fn index_entries_carry_identity() {
    let entries = tfstate::index_entries(AWS_V1).unwrap().unwrap();
    let by = |address: &str| entries.iter().find(|e| e.address == address).unwrap();

    let web1 = by("aws_instance.web[1]");
    assert_eq!(web1.mode, Mode::Managed);
    assert_eq!(web1.resource_type, "aws_instance");
    assert_eq!(web1.name, "web");
    assert_eq!(web1.module, "");
    assert_eq!(
        web1.provider,
        "provider[\"registry.terraform.io/hashicorp/aws\"]"
    );
    assert_eq!(web1.index_key, Some(IndexKey::Int(1)));
    assert_eq!(web1.ids.id.as_deref(), Some("i-0a1b2c3d4e5f60001"));
    assert_eq!(
        web1.ids.arn.as_deref(),
        Some("arn:aws:ec2:eu-west-1:123456789012:instance/i-0a1b2c3d4e5f60001")
    );
    assert_eq!(web1.ids.name, None);
    assert_eq!(web1.ids.self_link, None);

    let bucket = by("module.app[\"web\"].aws_s3_bucket.logs[\"web\"]");
    assert_eq!(bucket.module, "module.app[\"web\"]");
    assert_eq!(bucket.index_key, Some(IndexKey::Str("web".into())));
    assert_eq!(
        bucket.ids.arn.as_deref(),
        Some("arn:aws:s3:::acme-web-logs")
    );

    let vm = by("module.app[\"api\"].module.compute[0].google_compute_instance.vm");
    assert_eq!(vm.module, "module.app[\"api\"].module.compute[0]");
    assert_eq!(vm.ids.name.as_deref(), Some("api-vm"));
    assert!(
        vm.ids
            .self_link
            .as_deref()
            .unwrap()
            .starts_with("https://www.googleapis.com/")
    );
    assert_eq!(vm.ids.iter().count(), 3);

    let ami = by("data.aws_ami.ubuntu");
    assert_eq!(ami.mode, Mode::Data);
    assert_eq!(
        ami.ids.name.as_deref(),
        Some("ubuntu-focal-20.04-amd64-server")
    );

    // The real data source: mode data, builtin provider, no string identifiers.
    let real = tfstate::index_entries(CONSUMER_V1).unwrap().unwrap();
    let copy1 = real
        .iter()
        .find(|e| e.address == "data.terraform_remote_state.copy[1]")
        .unwrap();
    assert_eq!(copy1.mode, Mode::Data);
    assert_eq!(
        copy1.provider,
        "provider[\"terraform.io/builtin/terraform\"]"
    );
    assert_eq!(copy1.index_key, Some(IndexKey::Int(1)));
}

#[test]
fn index_leaves_out_deposed_objects_and_reads_nothing_of_encrypted_states() {
    // aws-v2 has aws_instance.web[0] twice: the current object and a deposed one.
    let entries = tfstate::index_entries(AWS_V2).unwrap().unwrap();
    let web0: Vec<_> = entries
        .iter()
        .filter(|e| e.address == "aws_instance.web[0]")
        .collect();
    assert_eq!(web0.len(), 1);
    assert_eq!(web0[0].ids.id.as_deref(), Some("i-0ffffffffffff0000"));
    assert_eq!(tfstate::index_entries(ENCRYPTED).unwrap(), None);
    assert_eq!(tfstate::index_entries(PRODUCER_V1).unwrap(), Some(vec![]));
}

#[test]
fn diff_of_real_terraform_states() {
    let diff = tfstate::diff(CONSUMER_V1, CONSUMER_V2, false).unwrap();
    let refs = |v: &[tfstate::InstanceRef]| sorted(v.iter().map(|r| r.address.clone()).collect());
    assert_eq!(
        refs(&diff.added),
        strings(&[
            "module.app[\"worker\"].data.terraform_remote_state.network",
            "module.app[\"worker\"].module.inner[0].data.terraform_remote_state.deep",
        ])
    );
    assert_eq!(
        refs(&diff.removed),
        strings(&[
            "data.terraform_remote_state.copy[1]",
            "module.app[\"web\"].data.terraform_remote_state.network",
            "module.app[\"web\"].module.inner[0].data.terraform_remote_state.deep",
        ])
    );
    // The producer's outputs changed under every remaining reader.
    assert_eq!(diff.changed.len(), 4);
    assert_eq!(diff.unchanged, 0);
    let network = change(&diff, "data.terraform_remote_state.network");
    assert_eq!(network.instance.mode, Mode::Data);
    let password = attribute(&network.attributes, "outputs.value.db_password");
    assert_eq!(password.before, Some(json!("hunter2-very-secret")));
    assert_eq!(password.after, Some(json!("correct-horse-battery")));
    let subnet = attribute(&network.attributes, "outputs.value.subnet_ids[2]");
    assert_eq!(subnet.before, None);
    assert_eq!(subnet.after, Some(json!("subnet-3")));
    let settings = attribute(&network.attributes, "outputs.value.settings");
    assert_eq!(
        settings.before,
        Some(json!({"region": "eu-west-1", "zones": 3}))
    );
    assert_eq!(settings.after, None);
    assert_eq!(diff.before.resource_instances, 7);
    assert_eq!(diff.after.resource_instances, 6);
    assert_eq!(diff.before.terraform_version.as_deref(), Some("1.0.3"));
}

#[test]
fn diff_of_outputs_masks_sensitive_ones() {
    let diff = tfstate::diff(PRODUCER_V1, PRODUCER_V2, false).unwrap();
    assert!(diff.added.is_empty() && diff.removed.is_empty() && diff.changed.is_empty());
    let names = |v: &[tfstate::Output]| v.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&diff.outputs.added), ["vpc_cidr"]);
    assert_eq!(names(&diff.outputs.removed), ["settings"]);
    let changed: Vec<_> = diff
        .outputs
        .changed
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(changed, ["db_password", "subnet_ids"]);
    let password = &diff.outputs.changed[0];
    assert!(password.sensitive);
    assert_eq!(password.before, json!(SENSITIVE_MASK));
    assert_eq!(password.after, json!(SENSITIVE_MASK));
    let json = serde_json::to_string(&diff).unwrap();
    assert!(
        !json.contains("hunter2") && !json.contains("correct-horse"),
        "{json}"
    );

    let revealed = tfstate::diff(PRODUCER_V1, PRODUCER_V2, true).unwrap();
    assert_eq!(
        revealed.outputs.changed[0].before,
        json!("hunter2-very-secret")
    );
    assert_eq!(
        revealed.outputs.changed[0].after,
        json!("correct-horse-battery")
    );
}

#[test]
fn diff_of_managed_resources_down_to_attribute_paths() {
    let diff = tfstate::diff(AWS_V1, AWS_V2, false).unwrap();
    let added: Vec<_> = diff
        .added
        .iter()
        .map(|r| (r.address.as_str(), r.deposed.as_deref()))
        .collect();
    assert_eq!(
        added,
        [
            ("aws_instance.web[0]", Some("00000001")),
            ("aws_instance.web[2]", None),
            (
                "module.app[\"worker\"].aws_s3_bucket.logs[\"worker\"]",
                None
            ),
        ]
    );
    let removed: Vec<_> = diff.removed.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(removed, ["module.app[\"web\"].aws_s3_bucket.logs[\"web\"]"]);

    let web1 = change(&diff, "aws_instance.web[1]");
    let paths: Vec<_> = web1.attributes.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(paths, ["tags.Name", "tags_all.Name"]);
    assert_eq!(web1.attributes[0].before, Some(json!("web-1")));
    assert_eq!(web1.attributes[0].after, Some(json!("web-1-renamed")));
    assert!(!web1.attributes[0].sensitive);

    let web0 = change(&diff, "aws_instance.web[0]");
    assert_eq!(web0.instance.deposed, None);
    assert_eq!(
        attribute(&web0.attributes, "id").after,
        Some(json!("i-0ffffffffffff0000"))
    );

    let sg = change(&diff, "aws_security_group.web");
    let cidr = attribute(&sg.attributes, "ingress[0].cidr_blocks[1]");
    assert_eq!(cidr.before, Some(json!("10.1.0.0/16")));
    assert_eq!(cidr.after, Some(json!("10.2.0.0/16")));
    attribute(&sg.attributes, "tags[\"kubernetes.io/cluster/main\"]");

    let db = change(&diff, "aws_db_instance.main");
    let password = attribute(&db.attributes, "password");
    assert!(password.sensitive);
    assert_eq!(password.before, Some(json!(SENSITIVE_MASK)));
    assert_eq!(password.after, Some(json!(SENSITIVE_MASK)));
    let secret_tag = attribute(&db.attributes, "tags.Secret");
    assert!(secret_tag.sensitive);
    assert_eq!(secret_tag.after, Some(json!(SENSITIVE_MASK)));
    let storage = attribute(&db.attributes, "allocated_storage");
    assert_eq!(
        (storage.before.clone(), storage.after.clone()),
        (Some(json!(20)), Some(json!(50)))
    );
    assert!(!storage.sensitive);

    let tainted = change(&diff, "module.app[\"api\"].aws_s3_bucket.logs[\"api\"]");
    let status = tainted.status.as_ref().unwrap();
    assert_eq!(
        (status.before.as_deref(), status.after.as_deref()),
        (None, Some("tainted"))
    );
    assert!(tainted.attributes.is_empty());

    // Unchanged: data.aws_ami.ubuntu and the google instance.
    assert_eq!(diff.unchanged, 2);
    let json = serde_json::to_string(&diff).unwrap();
    assert!(
        !json.contains("s3cr3t") && !json.contains("tag-secret"),
        "{json}"
    );

    let revealed = tfstate::diff(AWS_V1, AWS_V2, true).unwrap();
    let db = change(&revealed, "aws_db_instance.main");
    assert_eq!(
        attribute(&db.attributes, "password").after,
        Some(json!("s3cr3t-v2"))
    );
    assert!(attribute(&db.attributes, "password").sensitive);
}

#[test]
fn whole_value_replacements_mask_the_sensitive_parts_inside() {
    let old = br#"{"version":4,"serial":1,"lineage":"l","outputs":{},"resources":[
      {"mode":"managed","type":"x_thing","name":"a","provider":"provider[\"registry.terraform.io/x/x\"]",
       "instances":[{"schema_version":0,"attributes":{"id":"1","conf":{"user":"u","pass":"p1"}},
       "sensitive_attributes":[[{"type":"get_attr","value":"conf"},{"type":"get_attr","value":"pass"}]]}]}]}"#;
    let new = br#"{"version":4,"serial":2,"lineage":"l","outputs":{},"resources":[
      {"mode":"managed","type":"x_thing","name":"a","provider":"provider[\"registry.terraform.io/x/x\"]",
       "instances":[{"schema_version":0,"attributes":{"id":"1","conf":null},"sensitive_attributes":[]}]}]}"#;
    let diff = tfstate::diff(old, new, false).unwrap();
    let conf = attribute(&change(&diff, "x_thing.a").attributes, "conf");
    assert_eq!(
        conf.before,
        Some(json!({"user": "u", "pass": SENSITIVE_MASK}))
    );
    assert_eq!(conf.after, Some(json!(null)));
    assert!(conf.sensitive);
}

#[test]
fn identical_states_have_an_empty_diff() {
    let diff = tfstate::diff(AWS_V1, AWS_V1, false).unwrap();
    assert!(diff.added.is_empty() && diff.removed.is_empty() && diff.changed.is_empty());
    assert_eq!(diff.unchanged, 8);
    assert_eq!(diff.outputs, Default::default());
    // Formatting alone is not a change.
    let compact: serde_json::Value = serde_json::from_slice(AWS_V1).unwrap();
    let compact = serde_json::to_vec(&compact).unwrap();
    let diff = tfstate::diff(AWS_V1, &compact, false).unwrap();
    assert!(diff.changed.is_empty());
    assert_eq!(diff.unchanged, 8);
}

#[test]
fn outputs_are_listed_and_masked() {
    let outputs = tfstate::outputs(PRODUCER_V1, false).unwrap();
    let names: Vec<_> = outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["db_password", "settings", "subnet_ids", "vpc_id"]);
    assert!(outputs[0].sensitive);
    assert_eq!(outputs[0].value, json!(SENSITIVE_MASK));
    assert_eq!(outputs[0].value_type, Some(json!("string")));
    assert_eq!(outputs[1].value, json!({"region": "eu-west-1", "zones": 3}));
    assert_eq!(
        outputs[1].value_type,
        Some(json!(["object", {"region": "string", "zones": "number"}]))
    );
    assert!(!outputs[3].sensitive);
    let revealed = tfstate::outputs(PRODUCER_V1, true).unwrap();
    assert_eq!(revealed[0].value, json!("hunter2-very-secret"));
    assert!(tfstate::outputs(CONSUMER_V2, false).unwrap().len() == 2);
}

#[test]
fn with_serial_keeps_everything_else() {
    for body in [PRODUCER_V1, CONSUMER_V1, AWS_V2] {
        let old = statefile::inspect(body).unwrap();
        let bumped = tfstate::with_serial(body, old.serial + 100).unwrap();
        let new = statefile::inspect(&bumped).unwrap();
        assert_eq!(new.serial, old.serial + 100);
        assert_eq!(new.lineage, old.lineage);
        let diff = tfstate::diff(body, &bumped, true).unwrap();
        assert!(diff.added.is_empty() && diff.removed.is_empty() && diff.changed.is_empty());
        assert_eq!(diff.outputs, Default::default());
        // Byte for byte, only the serial's digits moved.
        let text = String::from_utf8(bumped).unwrap();
        let expected = String::from_utf8_lossy(body).replacen(
            &format!("\"serial\": {},", old.serial),
            &format!("\"serial\": {},", old.serial + 100),
            1,
        );
        assert_eq!(text, expected);
    }
}

#[test]
fn unreadable_states_are_refused_clearly() {
    let bad = |r: Result<StateDiff, Error>| match r {
        Err(Error::BadRequest(m)) => m,
        other => panic!("expected BadRequest, got {other:?}"),
    };
    let m = bad(tfstate::diff(ENCRYPTED, AWS_V1, false));
    assert!(m.contains("client-side encrypted"), "{m}");
    let v3 = br#"{"version":3,"serial":1,"lineage":"l","modules":[]}"#;
    let m = bad(tfstate::diff(AWS_V1, v3, false));
    assert!(m.contains("format version 3") && m.contains("0.12"), "{m}");
    let v5 = br#"{"version":5,"serial":1,"lineage":"l"}"#;
    assert!(bad(tfstate::diff(v5, v5, false)).contains("newer"));
    assert!(matches!(
        tfstate::outputs(ENCRYPTED, false),
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        tfstate::index_entries(v3),
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        tfstate::diff(b"{", AWS_V1, false),
        Err(Error::BadRequest(_))
    ));
}

/// `levels` nested arrays around a string: deeper than serde_json builds values (128).
fn nested(levels: usize) -> String {
    format!("{}\"x\"{}", "[".repeat(levels), "]".repeat(levels))
}

fn one_instance(resource_type: &str, attributes: &str) -> Vec<u8> {
    format!(
        r#"{{"version":4,"serial":1,"lineage":"l","outputs":{{}},"resources":[
  {{"mode":"managed","type":"{resource_type}","name":"n","provider":"p","instances":[{{"attributes":{attributes}}}]}}]}}"#
    )
    .into_bytes()
}

#[test]
fn index_skips_what_it_cannot_keep_and_reads_any_depth() {
    // An identifier nested deeper than 128 levels is not a string: skipped, the rest indexed.
    let deep = one_instance(
        "t",
        &format!(r#"{{"id":{d},"arn":"arn:1","tags":{d}}}"#, d = nested(300)),
    );
    let entries = tfstate::index_entries(&deep).unwrap().unwrap();
    assert_eq!(entries[0].ids.id, None);
    assert_eq!(entries[0].ids.arn.as_deref(), Some("arn:1"));
    // U+0000 cannot be stored in PostgreSQL text: such an identifier is left out…
    let nul_id = one_instance("t", r#"{"id":"i-\u0000","name":"ok"}"#);
    let entries = tfstate::index_entries(&nul_id).unwrap().unwrap();
    assert_eq!(entries[0].ids.id, None);
    assert_eq!(entries[0].ids.name.as_deref(), Some("ok"));
    // …and a resource whose type holds it makes the state unindexable (stored all the same).
    let nul_type = one_instance("t\\u0000x", r#"{"id":"i-1"}"#);
    assert!(matches!(
        tfstate::index_entries(&nul_type),
        Err(Error::BadRequest(m)) if m.contains("NUL character")
    ));
}

#[test]
fn outputs_and_diffs_show_a_note_for_values_nested_too_deep() {
    let state = |serial: i64, levels: usize| {
        format!(
            r#"{{"version":4,"serial":{serial},"lineage":"l","outputs":{{"deep":{{"value":{v},"type":"string"}},"flat":{{"value":"f{serial}"}}}},
  "resources":[{{"mode":"managed","type":"t","name":"n","provider":"p","instances":[{{"attributes":{{"id":"i","v":{v}}}}}]}}]}}"#,
            v = nested(levels)
        )
        .into_bytes()
    };
    let (old, new) = (state(1, 200), state(2, 201));
    let outputs = tfstate::outputs(&new, false).unwrap();
    assert_eq!(outputs[0].value, json!(tfstate::TOO_DEEP));
    assert_eq!(outputs[1].value, json!("f2"));
    let diff = tfstate::diff(&old, &new, false).unwrap();
    let changed = change(&diff, "t.n");
    assert_eq!(changed.attributes.len(), 1);
    assert_eq!(changed.attributes[0].after, Some(json!(tfstate::TOO_DEEP)));
    let names: Vec<&str> = diff
        .outputs
        .changed
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["deep", "flat"],
        "deep values that differ are reported changed"
    );
    // Identical deep values are no change.
    let same = tfstate::diff(&new, &new, false).unwrap();
    assert!(same.changed.is_empty() && same.outputs.changed.is_empty());
    // The outputs-only reduction keeps the deep value byte for byte.
    let reduced = String::from_utf8(statefile::outputs_only(&new).unwrap()).unwrap();
    assert!(reduced.contains(&nested(201)));
}
