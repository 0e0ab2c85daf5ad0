//! What statehouse reads out of a state body: just enough to version and protect it.
//! The body itself is stored byte for byte as the client sent it.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::Error;
use crate::printable::refuse_control;

/// Facts about one state snapshot, read without building the whole JSON tree in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMeta {
    pub serial: i64,
    pub lineage: String,
    pub terraform_version: Option<String>,
    /// An OpenTofu client-side encrypted state: only `serial`, `lineage` and `meta` are readable.
    pub client_encrypted: bool,
}

/// Which tool's state a body holds, and so which code reads it: a Terraform/OpenTofu state
/// ([`crate::tfstate`]) or a Pulumi checkpoint ([`crate::pulumi`]). Shown to API callers as
/// `"terraform"` or `"pulumi"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StateKind {
    Terraform,
    Pulumi,
}

impl StateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Terraform => "terraform",
            StateKind::Pulumi => "pulumi",
        }
    }

    /// The kind of a resource from its indexed address: Pulumi resources are indexed by URN
    /// (`urn:pulumi:…`), which no Terraform address can start with.
    pub fn of_address(address: &str) -> StateKind {
        if address.starts_with(crate::pulumi::URN_PREFIX) {
            StateKind::Pulumi
        } else {
            StateKind::Terraform
        }
    }
}

#[derive(Deserialize)]
struct Probe {
    version: Option<u64>,
    serial: Option<i64>,
    lineage: Option<String>,
    terraform_version: Option<String>,
    encrypted_data: Option<IgnoredAny>,
    encryption_version: Option<IgnoredAny>,
}

/// Checks that `body` is a Terraform/OpenTofu state and reads its serial and lineage.
pub fn inspect(body: &[u8]) -> Result<StateMeta, Error> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Error::BadRequest(format!(
            "state body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    if !text.trim_start().starts_with('{') {
        return Err(Error::BadRequest("state body is not a JSON object".into()));
    }
    let probe: Probe = serde_json::from_str(text)
        .map_err(|e| Error::BadRequest(format!("state body is not valid JSON: {e}")))?;
    let client_encrypted = probe.encrypted_data.is_some() && probe.encryption_version.is_some();
    meta_of(
        probe.version,
        probe.serial,
        probe.lineage,
        probe.terraform_version,
        client_encrypted,
    )
}

/// The checks [`inspect`] makes, on fields already read (by it, or by a full parse).
pub(crate) fn meta_of(
    version: Option<u64>,
    serial: Option<i64>,
    lineage: Option<String>,
    terraform_version: Option<String>,
    client_encrypted: bool,
) -> Result<StateMeta, Error> {
    if version.is_none() && !client_encrypted {
        return Err(Error::BadRequest(
            "JSON is not a Terraform state: no \"version\" field (nor an OpenTofu encrypted envelope)".into(),
        ));
    }
    let serial = serial.ok_or_else(|| {
        Error::BadRequest("JSON is not a Terraform state: no integer \"serial\" field".into())
    })?;
    if serial < 0 {
        return Err(Error::BadRequest(
            "state \"serial\" must not be negative".into(),
        ));
    }
    let lineage = lineage.filter(|l| !l.is_empty()).ok_or_else(|| {
        Error::BadRequest("JSON is not a Terraform state: no \"lineage\" string".into())
    })?;
    // Both are stored in columns and shown in listings; real ones are a UUID and a version
    // number. (The body itself is stored as sent, whatever its strings hold.)
    refuse_control("state \"lineage\"", &lineage)?;
    if let Some(version) = &terraform_version {
        refuse_control("state \"terraform_version\"", version)?;
    }
    Ok(StateMeta {
        serial,
        lineage,
        terraform_version,
        client_encrypted,
    })
}

#[derive(Deserialize)]
struct OutputsSource<'a> {
    version: Option<u64>,
    #[serde(borrow)]
    terraform_version: Option<Cow<'a, str>>,
    serial: Option<i64>,
    #[serde(borrow)]
    lineage: Option<Cow<'a, str>>,
    #[serde(borrow)]
    outputs: Option<&'a RawValue>,
    encrypted_data: Option<IgnoredAny>,
}

#[derive(Serialize)]
struct OutputsOnly<'a> {
    version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    terraform_version: Option<Cow<'a, str>>,
    serial: i64,
    lineage: Cow<'a, str>,
    outputs: &'a RawValue,
    resources: [(); 0],
}

/// The state reduced to its outputs: the same `version`, `terraform_version`, `serial`,
/// `lineage` and `outputs` (byte for byte), `resources: []`, and nothing else. What the
/// `outputs` role reads, so `terraform_remote_state` consumers see no resource attributes.
///
/// `Forbidden` for states that cannot be reduced: OpenTofu client-side encrypted ones (the
/// outputs are inside the ciphertext) and formats before version 4 (Terraform < 0.12).
pub fn outputs_only(body: &[u8]) -> Result<Vec<u8>, Error> {
    // A Pulumi checkpoint (plain or compressed) has no Terraform outputs to reduce it to.
    if crate::pulumi::Encoding::of(body) != crate::pulumi::Encoding::Plain
        || crate::pulumi::is_checkpoint(body)
    {
        return Err(Error::Forbidden(
            "this state is a Pulumi checkpoint, which the Terraform backend does not serve to the outputs role; \
             read its stack outputs through the API (GET /api/v1/workspaces/{ws}/states/{state}/outputs) instead"
                .into(),
        ));
    }
    let source: OutputsSource<'_> = serde_json::from_slice(body)
        .map_err(|e| Error::Internal(format!("stored state is not readable JSON: {e}")))?;
    if source.encrypted_data.is_some() {
        return Err(Error::Forbidden(
            "this state is encrypted by OpenTofu on the client, so statehouse cannot take its outputs out \
             of it; the outputs role cannot read it: use a viewer token (and the encryption key) instead"
                .into(),
        ));
    }
    let version = source.version.unwrap_or(0);
    if version < 4 {
        return Err(Error::Forbidden(format!(
            "this state has format version {version} (Terraform before 0.12), whose outputs statehouse \
             cannot take out; the outputs role cannot read it: use a viewer token, or write it with a newer client"
        )));
    }
    let empty: &RawValue =
        serde_json::from_str("{}").map_err(|e| Error::Internal(format!("empty outputs: {e}")))?;
    let reduced = OutputsOnly {
        version,
        terraform_version: source.terraform_version,
        serial: source.serial.unwrap_or(0),
        lineage: source.lineage.unwrap_or_default(),
        outputs: source.outputs.unwrap_or(empty),
        resources: [],
    };
    serde_json::to_vec_pretty(&reduced)
        .map_err(|e| Error::Internal(format!("cannot write the reduced state: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_terraform_state() -> Result<(), Error> {
        let body = br#"{"version":4,"terraform_version":"1.0.3","serial":7,"lineage":"abc","outputs":{},"resources":[{"x":[1,2,{"y":null}]}]}"#;
        let meta = inspect(body)?;
        assert_eq!(meta.serial, 7);
        assert_eq!(meta.lineage, "abc");
        assert_eq!(meta.terraform_version.as_deref(), Some("1.0.3"));
        assert!(!meta.client_encrypted);
        Ok(())
    }

    #[test]
    fn reads_opentofu_encrypted_envelope() -> Result<(), Error> {
        let body = br#"{"serial":3,"lineage":"l","meta":{"key_provider.pbkdf2.x":"e30="},"encrypted_data":"AAAA","encryption_version":"v0"}"#;
        let meta = inspect(body)?;
        assert!(meta.client_encrypted);
        assert_eq!(meta.serial, 3);
        Ok(())
    }

    #[test]
    fn refuses_what_is_not_a_state() {
        let cases: &[(&[u8], &str)] = &[
            (b"{not json", "not valid JSON"),
            (b"[4,1,\"x\"]", "not a JSON object"),
            (b"\"str\"", "not a JSON object"),
            (b"{\"hello\":1}", "no \"version\""),
            (
                b"{\"version\":4,\"lineage\":\"x\"}",
                "no integer \"serial\"",
            ),
            (
                b"{\"version\":4,\"serial\":\"1\",\"lineage\":\"x\"}",
                "not valid JSON",
            ),
            (b"{\"version\":4,\"serial\":1}", "no \"lineage\""),
            (
                b"{\"version\":4,\"serial\":-1,\"lineage\":\"x\"}",
                "negative",
            ),
            (
                b"{\"version\":4,\"serial\":1,\"lineage\":\"\xff\"}",
                "not UTF-8",
            ),
            (b"", "not a JSON object"),
            (
                br#"{"version":4,"serial":1,"lineage":"a\u0000b"}"#,
                "state \"lineage\" contains the control character U+0000",
            ),
            (
                br#"{"version":4,"serial":1,"lineage":"l","terraform_version":"1.0\u001b[2J"}"#,
                "state \"terraform_version\" contains the control character U+001B",
            ),
        ];
        for (body, why) in cases {
            let err = inspect(body)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains(why),
                "{:?}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn outputs_only_keeps_outputs_and_strips_resources() -> Result<(), Error> {
        let body = br#"{
  "version": 4, "terraform_version": "1.0.3", "serial": 12, "lineage": "lin-1",
  "outputs": {"vpc_id": {"value": "vpc-123", "type": "string"},
              "db_password": {"value": "s3cret", "type": "string", "sensitive": true}},
  "resources": [{"mode": "managed", "type": "aws_instance", "name": "web",
                 "instances": [{"attributes": {"private_key": "RESOURCE-SECRET"}}]}],
  "check_results": [{"object_kind": "resource", "config_addr": "RESOURCE-SECRET"}]
}"#;
        let reduced = outputs_only(body)?;
        let text = String::from_utf8(reduced.clone()).unwrap_or_default();
        assert!(!text.contains("RESOURCE-SECRET"), "{text}");
        assert!(!text.contains("check_results"), "{text}");
        let value: serde_json::Value =
            serde_json::from_slice(&reduced).map_err(|e| Error::Internal(e.to_string()))?;
        let original: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| Error::Internal(e.to_string()))?;
        assert_eq!(value["version"], 4);
        assert_eq!(value["terraform_version"], "1.0.3");
        assert_eq!(value["serial"], 12);
        assert_eq!(value["lineage"], "lin-1");
        assert_eq!(value["outputs"], original["outputs"]);
        assert_eq!(value["resources"], serde_json::json!([]));
        assert_eq!(value.as_object().map(|o| o.len()), Some(6));
        // Still a state the service accepts and reads the same facts from.
        let meta = inspect(&reduced)?;
        assert_eq!((meta.serial, meta.lineage.as_str()), (12, "lin-1"));
        Ok(())
    }

    #[test]
    fn outputs_only_without_outputs_gives_an_empty_object() -> Result<(), Error> {
        let reduced = outputs_only(br#"{"version":4,"serial":1,"lineage":"l","resources":[]}"#)?;
        let value: serde_json::Value =
            serde_json::from_slice(&reduced).map_err(|e| Error::Internal(e.to_string()))?;
        assert_eq!(value["outputs"], serde_json::json!({}));
        assert!(value.get("terraform_version").is_none());
        Ok(())
    }

    #[test]
    fn outputs_only_refuses_what_it_cannot_reduce() {
        let encrypted = br#"{"serial":3,"lineage":"l","meta":{},"encrypted_data":"AAAA","encryption_version":"v0"}"#;
        match outputs_only(encrypted) {
            Err(Error::Forbidden(m)) => assert!(m.contains("encrypted by OpenTofu"), "{m}"),
            other => panic!("expected Forbidden, got {other:?}"),
        }
        match outputs_only(br#"{"version":3,"serial":1,"lineage":"l","modules":[]}"#) {
            Err(Error::Forbidden(m)) => assert!(m.contains("format version 3"), "{m}"),
            other => panic!("expected Forbidden, got {other:?}"),
        }
        for checkpoint in [
            &br#"{"version":4,"checkpoint":{"stack":"o/p/s"}}"#[..],
            &[0x1f, 0x8b, 0x08, 0x00][..],
        ] {
            match outputs_only(checkpoint) {
                Err(Error::Forbidden(m)) => assert!(m.contains("Pulumi checkpoint"), "{m}"),
                other => panic!("expected Forbidden, got {other:?}"),
            }
        }
    }
}
