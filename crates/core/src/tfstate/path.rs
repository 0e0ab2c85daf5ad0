//! Paths into an instance's attributes (`tags.Name`, `ingress[0].cidr_blocks[1]`) and the
//! sensitive paths Terraform records per instance (`sensitive_attributes`, Terraform ≥ 0.15).

use std::fmt::Write;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::address::write_quoted;

/// What Terraform writes instead of a sensitive value in plans; statehouse answers the same.
pub const SENSITIVE_MASK: &str = "(sensitive)";

/// One step into a JSON value: an object attribute or map key, or a list/tuple/set position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(u64),
}

/// Prints a path as Terraform users read it: `.name` for identifier-like keys, `["key"]` for
/// other map keys, `[0]` for positions.
pub(crate) fn format_path(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        // Writing to a String cannot fail.
        let _ = match step {
            Step::Key(k) if is_identifier(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.write_str(k)
            }
            Step::Key(k) => {
                out.push('[');
                let _ = write_quoted(&mut out, k);
                out.write_char(']')
            }
            Step::Index(i) => write!(out, "[{i}]"),
        };
    }
    out
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The sensitive paths of one instance.
#[derive(Debug, Default)]
pub(crate) struct SensitivePaths(Vec<Vec<Step>>);

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawStep {
    GetAttr { value: String },
    Index { value: RawIndex },
}

#[derive(Deserialize)]
struct RawIndex {
    value: Value,
}

impl SensitivePaths {
    /// Reads `sensitive_attributes`. Steps statehouse cannot follow (for instance an index by a
    /// value that is neither a number nor a string) end the path there, so the value above them
    /// is treated as sensitive: unreadable markings hide more, never less.
    pub fn parse(raw: Option<&RawValue>) -> Self {
        let Some(raw) = raw else {
            return SensitivePaths::default();
        };
        let paths: Vec<Vec<Value>> = serde_json::from_str(raw.get()).unwrap_or_default();
        let mut parsed = Vec::with_capacity(paths.len());
        for path in paths {
            let mut steps = Vec::with_capacity(path.len());
            for step in path {
                match serde_json::from_value::<RawStep>(step) {
                    Ok(RawStep::GetAttr { value }) => steps.push(Step::Key(value)),
                    Ok(RawStep::Index { value }) => match value.value {
                        Value::String(s) => steps.push(Step::Key(s)),
                        Value::Number(n) => match n.as_u64() {
                            Some(i) => steps.push(Step::Index(i)),
                            None => break,
                        },
                        _ => break,
                    },
                    Err(_) => break,
                }
            }
            parsed.push(steps);
        }
        SensitivePaths(parsed)
    }

    pub fn extend(&mut self, other: SensitivePaths) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `path` is itself sensitive or lies inside a sensitive value.
    pub fn covers(&self, path: &[Step]) -> bool {
        self.0.iter().any(|s| path.starts_with(s))
    }

    /// A copy of `value` (found at `path`) with every sensitive part inside it replaced by the mask.
    pub fn mask_within(&self, path: &[Step], value: &Value) -> (Value, bool) {
        if self.covers(path) {
            return (Value::String(SENSITIVE_MASK.into()), true);
        }
        let mut masked = value.clone();
        let mut any = false;
        for sensitive in &self.0 {
            if let Some(rest) = sensitive.strip_prefix(path)
                && let Some(target) = navigate_mut(&mut masked, rest)
            {
                *target = Value::String(SENSITIVE_MASK.into());
                any = true;
            }
        }
        (masked, any)
    }
}

fn navigate_mut<'v>(value: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    let mut current = value;
    for step in path {
        current = match (step, current) {
            (Step::Key(k), Value::Object(map)) => map.get_mut(k)?,
            (Step::Index(i), Value::Array(items)) => items.get_mut(usize::try_from(*i).ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn formats_paths() {
        let path = [
            Step::Key("ingress".into()),
            Step::Index(0),
            Step::Key("cidr_blocks".into()),
            Step::Index(1),
        ];
        assert_eq!(format_path(&path), "ingress[0].cidr_blocks[1]");
        let path = [
            Step::Key("tags".into()),
            Step::Key("kubernetes.io/cluster".into()),
        ];
        assert_eq!(format_path(&path), "tags[\"kubernetes.io/cluster\"]");
        assert_eq!(
            format_path(&[Step::Key("tags".into()), Step::Key("Name".into())]),
            "tags.Name"
        );
    }

    #[test]
    fn reads_terraform_sensitive_attributes() {
        let paths = SensitivePaths::parse(Some(&raw(
            r#"[[{"type":"get_attr","value":"password"}],
                [{"type":"get_attr","value":"tags"},{"type":"index","value":{"value":"Secret","type":"string"}}],
                [{"type":"get_attr","value":"ebs"},{"type":"index","value":{"value":0,"type":"number"}},{"type":"get_attr","value":"key"}]]"#,
        )));
        assert!(paths.covers(&[Step::Key("password".into())]));
        assert!(paths.covers(&[Step::Key("tags".into()), Step::Key("Secret".into())]));
        assert!(!paths.covers(&[Step::Key("tags".into()), Step::Key("Name".into())]));
        assert!(!paths.covers(&[Step::Key("tags".into())]));
        let ebs = [Step::Key("ebs".into())];
        let value = serde_json::json!([{"key": "k1", "size": 8}, {"key": "k2"}]);
        let (masked, any) = paths.mask_within(&ebs, &value);
        assert!(any);
        assert_eq!(
            masked,
            serde_json::json!([{"key": SENSITIVE_MASK, "size": 8}, {"key": "k2"}])
        );
    }

    #[test]
    fn unreadable_markings_hide_more() {
        let paths = SensitivePaths::parse(Some(&raw(
            r#"[[{"type":"get_attr","value":"x"},{"type":"index","value":{"value":true,"type":"bool"}}]]"#,
        )));
        assert!(paths.covers(&[Step::Key("x".into())]));
    }
}
