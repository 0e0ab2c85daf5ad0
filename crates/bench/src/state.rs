//! Valid Terraform v4 state documents of a chosen size, in the shape Terraform 1.0.3 accepts
//! for `terraform state push`: string outputs and `null_resource` instances carrying
//! pseudo-random text (so compression has real work to do, as with real attribute values).

use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{Value, json};

pub const LINEAGE: &str = "5e1f7e6a-0000-4000-8000-00000000beef";

/// A state body without its serial, so a sequence of writes with increasing serials can be
/// produced cheaply.
pub struct StateTemplate {
    /// Everything after `"serial":N,` up to and including the closing brace.
    rest: String,
}

impl StateTemplate {
    /// A state of about `size` bytes (never less).
    pub fn new(size: usize, salt: &str) -> anyhow::Result<StateTemplate> {
        let mut outputs = serde_json::Map::new();
        outputs.insert("salt".into(), json!({"value": salt, "type": "string"}));
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (salt.len() as u64).wrapping_mul(0x2545_f491);
        let mut chunk = |len: usize| -> String {
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b'a' + (x % 26) as u8)
                })
                .collect()
        };
        let piece = 64 * 1024;
        let mut resources: Vec<Value> = Vec::new();
        let mut total = 0;
        let mut i = 0;
        while total < size {
            let len = piece.min(size - total).max(16);
            if i % 2 == 0 {
                outputs.insert(
                    format!("blob_{i:05}"),
                    json!({"value": chunk(len), "type": "string"}),
                );
            } else {
                resources.push(json!({
                    "mode": "managed",
                    "type": "null_resource",
                    "name": format!("r{i:05}"),
                    "provider": "provider[\"registry.terraform.io/hashicorp/null\"]",
                    "instances": [{
                        "schema_version": 0,
                        "attributes": { "id": format!("{i}"), "triggers": { "data": chunk(len) } },
                        "sensitive_attributes": [],
                        "private": "bnVsbA==",
                    }],
                }));
            }
            total += len;
            i += 1;
        }
        let rest = format!(
            "\"lineage\":\"{LINEAGE}\",\"outputs\":{},\"resources\":{}}}",
            serde_json::to_string(&outputs)?,
            serde_json::to_string(&resources)?
        );
        Ok(StateTemplate { rest })
    }

    /// The full state document with this serial.
    pub fn body(&self, serial: u64) -> Vec<u8> {
        let head = format!("{{\"version\":4,\"terraform_version\":\"1.0.3\",\"serial\":{serial},");
        let mut out = Vec::with_capacity(head.len() + self.rest.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(self.rest.as_bytes());
        out
    }
}

/// The `Content-MD5` header value Terraform sends: base64 of the body's MD5.
pub fn content_md5(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bodies_are_valid_state_json_of_the_asked_size() {
        let t = StateTemplate::new(300_000, "x").unwrap();
        let body = t.body(7);
        assert!(
            body.len() >= 300_000 && body.len() < 310_000,
            "{}",
            body.len()
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["version"], 4);
        assert_eq!(v["serial"], 7);
        assert_eq!(v["lineage"], LINEAGE);
        assert!(v["outputs"]["blob_00000"]["value"].is_string());
        assert_eq!(v["resources"][0]["type"], "null_resource");
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }
}
