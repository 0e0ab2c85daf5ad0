//! Resource instance addresses, printed as Terraform prints them:
//! `module.a["x"].module.b[0].aws_instance.web[1]`, `data.` before data sources.

use std::fmt::{self, Write};

use serde::{Deserialize, Serialize};

/// Whether an instance is a managed resource or a data source read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Managed,
    Data,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Managed => "managed",
            Mode::Data => "data",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "managed" => Some(Mode::Managed),
            "data" => Some(Mode::Data),
            _ => None,
        }
    }
}

/// The key of one instance of a resource with `count` (a number) or `for_each` (a string).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IndexKey {
    Int(i64),
    Str(String),
}

impl fmt::Display for IndexKey {
    /// `[1]` or `["name"]`, with the string quoted as Terraform quotes it (Go's `%q`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexKey::Int(i) => write!(f, "[{i}]"),
            IndexKey::Str(s) => {
                f.write_char('[')?;
                write_quoted(f, s)?;
                f.write_char(']')
            }
        }
    }
}

/// Writes `s` as a double-quoted string the way Go's `%q` does for the keys Terraform prints.
pub(crate) fn write_quoted(out: &mut impl Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if (c as u32) < 0x20 || c == '\u{7f}' => write!(out, "\\x{:02x}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// The full address of one resource instance. `module` is the state's `module` field
/// (already in Terraform's printed form), empty or absent for the root module.
pub fn instance_address(
    module: Option<&str>,
    mode: Mode,
    resource_type: &str,
    name: &str,
    key: Option<&IndexKey>,
) -> String {
    let module = module.unwrap_or_default();
    let mut address = String::with_capacity(module.len() + resource_type.len() + name.len() + 16);
    if !module.is_empty() {
        address.push_str(module);
        address.push('.');
    }
    if mode == Mode::Data {
        address.push_str("data.");
    }
    address.push_str(resource_type);
    address.push('.');
    address.push_str(name);
    if let Some(key) = key {
        // Writing to a String cannot fail.
        let _ = write!(address, "{key}");
    }
    address
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_addresses_like_terraform() {
        assert_eq!(
            instance_address(None, Mode::Managed, "aws_instance", "web", None),
            "aws_instance.web"
        );
        assert_eq!(
            instance_address(
                Some("module.a[\"x\"].module.b[0]"),
                Mode::Managed,
                "aws_instance",
                "web",
                Some(&IndexKey::Int(1))
            ),
            "module.a[\"x\"].module.b[0].aws_instance.web[1]"
        );
        assert_eq!(
            instance_address(
                Some(""),
                Mode::Data,
                "aws_ami",
                "ubuntu",
                Some(&IndexKey::Str("eu-west-1".into()))
            ),
            "data.aws_ami.ubuntu[\"eu-west-1\"]"
        );
        assert_eq!(
            instance_address(
                Some("module.net"),
                Mode::Data,
                "terraform_remote_state",
                "x",
                None
            ),
            "module.net.data.terraform_remote_state.x"
        );
    }

    #[test]
    fn quotes_string_keys_like_go() {
        let key = IndexKey::Str("a \"b\"\\c\n\u{1}é".into());
        assert_eq!(key.to_string(), "[\"a \\\"b\\\"\\\\c\\n\\x01é\"]");
        assert_eq!(IndexKey::Int(-3).to_string(), "[-3]");
    }

    #[test]
    fn keys_deserialize_from_state_json() -> Result<(), serde_json::Error> {
        let keys: Vec<IndexKey> = serde_json::from_str(r#"[0, "web", 12]"#)?;
        assert_eq!(
            keys,
            vec![
                IndexKey::Int(0),
                IndexKey::Str("web".into()),
                IndexKey::Int(12)
            ]
        );
        Ok(())
    }
}
