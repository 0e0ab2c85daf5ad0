//! What statehouse reads out of a state body: just enough to version and protect it.
//! The body itself is stored byte for byte as the client sent it.

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::Error;

/// Facts about one state snapshot, read without building the whole JSON tree in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMeta {
    pub serial: i64,
    pub lineage: String,
    pub terraform_version: Option<String>,
    /// An OpenTofu client-side encrypted state: only `serial`, `lineage` and `meta` are readable.
    pub client_encrypted: bool,
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
    if probe.version.is_none() && !client_encrypted {
        return Err(Error::BadRequest(
            "JSON is not a Terraform state: no \"version\" field (nor an OpenTofu encrypted envelope)".into(),
        ));
    }
    let serial = probe.serial.ok_or_else(|| {
        Error::BadRequest("JSON is not a Terraform state: no integer \"serial\" field".into())
    })?;
    if serial < 0 {
        return Err(Error::BadRequest(
            "state \"serial\" must not be negative".into(),
        ));
    }
    let lineage = probe.lineage.filter(|l| !l.is_empty()).ok_or_else(|| {
        Error::BadRequest("JSON is not a Terraform state: no \"lineage\" string".into())
    })?;
    Ok(StateMeta {
        serial,
        lineage,
        terraform_version: probe.terraform_version,
        client_encrypted,
    })
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
}
