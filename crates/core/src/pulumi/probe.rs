//! Telling a Pulumi checkpoint from a Terraform state without reading all of it, and the
//! split every reader of stored bodies makes: a body is read by the Pulumi code when it is a
//! checkpoint (plain or compressed), by the Terraform code otherwise.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::decode::decode;
use crate::Result;
use crate::statefile::StateKind;

/// Whether `decoded` (JSON text, see [`super::decode`]) is a Pulumi checkpoint: a top-level
/// object with an integer `version`, a `checkpoint` object, and no `serial` or `lineage` (which
/// only Terraform states have).
///
/// Cheap on large bodies: Pulumi writes `version` (and `features`) before `checkpoint`, so
/// reading stops at the `checkpoint` object's first brace; keys after it are not looked at.
/// Only when `checkpoint` comes before `version` (a checkpoint rewritten by another tool) is
/// the `checkpoint` value skipped through. Whitespace and indentation do not matter.
pub fn is_checkpoint(decoded: &[u8]) -> bool {
    let mut seen = Seen::default();
    let mut reader = serde_json::Deserializer::from_slice(decoded);
    // The scan ends with an error on purpose once it knows enough; `seen` holds the answer.
    let _ = reader.deserialize_map(TopLevel { seen: &mut seen });
    seen.integer_version && seen.checkpoint_object && !seen.terraform_field
}

/// A stored body, decoded, with which reader it belongs to.
pub struct Classified<'a> {
    pub kind: StateKind,
    /// The JSON text: the body itself, or its decompressed form.
    pub text: Cow<'a, [u8]>,
}

/// Decodes `body` ([`super::decode`]) and says whether it is a Pulumi checkpoint or (anything
/// else) a Terraform state. Only a compressed body that cannot be expanded is an error.
pub fn classify(body: &[u8]) -> Result<Classified<'_>> {
    let text = decode(body)?;
    let kind = if is_checkpoint(&text) {
        StateKind::Pulumi
    } else {
        StateKind::Terraform
    };
    Ok(Classified { kind, text })
}

#[derive(Default)]
struct Seen {
    integer_version: bool,
    checkpoint_object: bool,
    terraform_field: bool,
}

/// Ends the scan early; never shown to anyone.
fn stop<E: de::Error>() -> E {
    E::custom("scan ends here")
}

struct TopLevel<'s> {
    seen: &'s mut Seen,
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "version" => self.seen.integer_version = map.next_value::<IsInteger>()?.0,
                "serial" | "lineage" => {
                    self.seen.terraform_field = true;
                    return Err(stop());
                }
                "checkpoint" if self.seen.integer_version => {
                    // Answers and stops at the value's first token.
                    map.next_value_seed(ObjectStart {
                        seen: &mut *self.seen,
                    })?;
                    return Err(stop());
                }
                "checkpoint" => {
                    self.seen.checkpoint_object = map.next_value::<IsObject>()?.0;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Whether a value is an integer (≥ 0), skipping anything else without building it.
struct IsInteger(bool);

impl<'de> de::Deserialize<'de> for IsInteger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor(Shape::Integer))
            .map(IsInteger)
    }
}

/// Whether a value is an object, skipping it whole.
struct IsObject(bool);

impl<'de> de::Deserialize<'de> for IsObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor(Shape::Object)).map(IsObject)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Integer,
    Object,
}

struct ShapeVisitor(Shape);

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(self.0 == Shape::Integer)
    }

    fn visit_i64<E>(self, v: i64) -> Result<bool, E> {
        Ok(self.0 == Shape::Integer && v >= 0)
    }

    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.0 == Shape::Object)
    }
}

/// Records whether the value starts an object, and stops there.
struct ObjectStart<'s> {
    seen: &'s mut Seen,
}

impl<'de> DeserializeSeed<'de> for ObjectStart<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjectStart<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.seen.checkpoint_object = true;
        Err(stop())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(stop())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(stop())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(stop())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(stop())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(stop())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(stop())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(stop())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn checkpoints_are_told_from_terraform_states() {
        let yes: &[&str] = &[
            r#"{"version":3,"checkpoint":{"stack":"organization/p/s","latest":{"resources":[]}}}"#,
            r#"{"version":4,"features":["refreshBeforeUpdate"],"checkpoint":{"stack":"o/p/s"}}"#,
            "{\n    \"version\": 3,\n    \"checkpoint\": {\n        \"stack\": \"organization/p/s\"\n    }\n}\n",
            r#"{"version":0,"checkpoint":{"stack":"organization/p/s"}}"#,
            // Reordered by another tool: still found, by skipping the checkpoint value.
            r#"{"checkpoint":{"stack":"o/p/s","latest":{"resources":[{"urn":"u"}]}},"version":3}"#,
        ];
        for body in yes {
            assert!(is_checkpoint(body.as_bytes()), "{body}");
        }
        let no: &[&str] = &[
            r#"{"version":4,"terraform_version":"1.0.3","serial":3,"lineage":"l","outputs":{},"resources":[]}"#,
            r#"{"version":3,"serial":1,"checkpoint":{}}"#,
            r#"{"version":3,"lineage":"x","checkpoint":{}}"#,
            r#"{"checkpoint":{},"version":3,"serial":1}"#,
            r#"{"version":"3","checkpoint":{}}"#,
            r#"{"version":3.5,"checkpoint":{}}"#,
            r#"{"version":-1,"checkpoint":{}}"#,
            r#"{"version":3,"checkpoint":[]}"#,
            r#"{"version":3,"checkpoint":null}"#,
            r#"{"version":3}"#,
            r#"{"checkpoint":{}}"#,
            r#"[{"version":3,"checkpoint":{}}]"#,
            "",
            "not json",
            r#"{"serial":3,"lineage":"l","meta":{},"encrypted_data":"AAAA","encryption_version":"v0"}"#,
        ];
        for body in no {
            assert!(!is_checkpoint(body.as_bytes()), "{body}");
        }
        // Cut after the checkpoint's first brace: the scan never reads that far.
        assert!(is_checkpoint(br#"{"version":3,"checkpoint":{"stack":"#));
    }

    #[test]
    fn deep_nesting_is_skipped_without_recursion() {
        // Skipped values are not built, so depth costs no stack.
        let deep = |levels: usize| {
            format!(
                r#"{{"x":{}1{},"version":3,"checkpoint":{{}}}}"#,
                "[".repeat(levels),
                "]".repeat(levels)
            )
        };
        assert!(is_checkpoint(deep(200).as_bytes()));
        assert!(is_checkpoint(deep(1_000_000).as_bytes()));
        let unclosed = format!(r#"{{"version":3,"x":{}"#, "[".repeat(1_000_000));
        assert!(!is_checkpoint(unclosed.as_bytes()));
    }

    #[test]
    fn classify_decodes_first() {
        let text = br#"{"version":3,"checkpoint":{"stack":"organization/p/s"}}"#;
        let zst = zstd::encode_all(&text[..], 3).unwrap();
        let found = classify(&zst).unwrap();
        assert_eq!(found.kind, StateKind::Pulumi);
        assert_eq!(&*found.text, text);
        let tf = br#"{"version":4,"serial":1,"lineage":"l"}"#;
        let found = classify(tf).unwrap();
        assert_eq!(found.kind, StateKind::Terraform);
        assert!(matches!(found.text, Cow::Borrowed(_)));
    }
}
