//! Settings given on the command line for storage targets and notifiers: `--set key=value`
//! (JSON scalars, arrays and objects are read as such, anything else as text), `--secret
//! key=value` (text unless it is a JSON object or array), `--secret-stdin KEY` and
//! `--from-file settings.json`, merged into one JSON object.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Map, Value};

/// The options shared by `target add|change` and `notifier add|change`.
#[derive(Args, Debug, Default)]
pub struct SettingsArgs {
    /// A setting, `KEY=VALUE`; repeat for more. Numbers, true/false, JSON arrays
    /// (`'to=["a@example.com","b@example.com"]'`) and objects are read as JSON, anything else
    /// as text (quote it as JSON to force text: `'bucket="2024"'`). `KEY=null` removes a
    /// setting (with `change`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A secret setting, `KEY=VALUE` (kept encrypted, never shown again). Other users of this
    /// machine can see command-line arguments: prefer --secret-stdin.
    #[arg(long = "secret", value_name = "KEY=VALUE")]
    pub secret: Vec<String>,
    /// Read the value of the secret setting KEY from stdin (e.g. a private key file).
    #[arg(long, value_name = "KEY")]
    pub secret_stdin: Option<String>,
    /// Start from the settings in this JSON file (an object); --set and --secret apply on top.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
}

impl SettingsArgs {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.secret.is_empty()
            && self.secret_stdin.is_none()
            && self.from_file.is_none()
    }

    /// Applies these options on `base` (the current public settings for a change, empty for a
    /// new one). `list_fields` are settings that take a list: for them `a,b` means
    /// `["a","b"]`.
    pub fn apply(
        &self,
        mut base: Map<String, Value>,
        list_fields: &[&str],
    ) -> Result<Map<String, Value>> {
        if let Some(file) = &self.from_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let value: Value = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not JSON; write the settings as one JSON object",
                    file.display()
                )
            })?;
            let Value::Object(fields) = value else {
                bail!("{} must hold one JSON object of settings", file.display());
            };
            base.extend(fields);
        }
        for item in &self.set {
            let (key, text) = split_pair("--set", item)?;
            match setting_value(text, list_fields.contains(&key)) {
                Value::Null => {
                    base.remove(key);
                }
                value => {
                    base.insert(key.to_owned(), value);
                }
            }
        }
        for item in &self.secret {
            let (key, text) = split_pair("--secret", item)?;
            base.insert(key.to_owned(), secret_value(key, text));
        }
        if let Some(key) = &self.secret_stdin {
            let key = key.trim();
            if key.is_empty() {
                bail!(
                    "--secret-stdin needs the secret's setting name, e.g. --secret-stdin private_key"
                );
            }
            let value = read_stdin_secret(&format!("the value of {key}"))?;
            base.insert(key.to_owned(), secret_value(key, &value));
        }
        Ok(base)
    }
}

/// `KEY=VALUE` → (`KEY`, `VALUE`).
fn split_pair<'a>(option: &str, item: &'a str) -> Result<(&'a str, &'a str)> {
    match item.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim(), value)),
        _ => bail!("{option} {item:?} is not KEY=VALUE, e.g. {option} region=eu-central-1"),
    }
}

/// A `--set` value: JSON when it reads as a JSON value other than a bare word, else text; for a
/// list setting, `a,b` is the list `["a","b"]`.
pub fn setting_value(text: &str, is_list: bool) -> Value {
    let trimmed = text.trim();
    if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
        let value = match value {
            Value::String(s) if is_list => Value::Array(vec![Value::String(s)]),
            other => other,
        };
        if !(is_list && !value.is_array() && !value.is_null()) {
            return value;
        }
    }
    if is_list {
        return Value::Array(
            trimmed
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        );
    }
    Value::String(text.to_owned())
}

/// Secret settings whose value is a JSON object (a webhook notifier's `headers`); every other
/// secret is text, JSON-looking or not (a GCS `credential` is a JSON key file's text).
const OBJECT_SECRETS: &[&str] = &["headers"];

/// A `--secret` value: text, unless the setting holds an object and the text is one.
fn secret_value(key: &str, text: &str) -> Value {
    let trimmed = text.trim_start();
    if OBJECT_SECRETS.contains(&key)
        && (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(value) = serde_json::from_str::<Value>(text)
    {
        return value;
    }
    Value::String(text.to_owned())
}

/// A secret read from stdin: the whole input, with the line break after a one-line value
/// dropped (multi-line values such as key files are kept as they are).
pub fn read_stdin_secret(what: &str) -> Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {what} from stdin"))?;
    let one_line = text.trim_end_matches(['\r', '\n']);
    if !one_line.contains('\n') {
        text = one_line.to_owned();
    }
    if text.trim().is_empty() {
        bail!("stdin is empty: pipe {what} in, e.g. `cat file | statehouse …`");
    }
    Ok(text)
}

/// `a,b , c` → `["a","b","c"]`.
pub fn comma_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn set_values_are_json_scalars_or_text() {
        assert_eq!(setting_value("9000", false), json!(9000));
        assert_eq!(setting_value("true", false), json!(true));
        assert_eq!(setting_value("eu-central-1", false), json!("eu-central-1"));
        assert_eq!(setting_value("\"2024\"", false), json!("2024"));
        assert_eq!(
            setting_value("https://x/y?a=1", false),
            json!("https://x/y?a=1")
        );
        assert_eq!(setting_value("null", false), Value::Null);
        assert_eq!(setting_value(r#"["a@x"]"#, false), json!(["a@x"]));
        assert_eq!(setting_value(r#"{"k":"v"}"#, false), json!({"k": "v"}));
    }

    #[test]
    fn list_settings_take_commas_or_json() {
        assert_eq!(setting_value("a@x,b@y", true), json!(["a@x", "b@y"]));
        assert_eq!(setting_value("a@x", true), json!(["a@x"]));
        assert_eq!(
            setting_value(r#"["a@x","b@y"]"#, true),
            json!(["a@x", "b@y"])
        );
        assert_eq!(setting_value("\"a@x\"", true), json!(["a@x"]));
        assert_eq!(setting_value("7", true), json!(["7"]));
    }

    #[test]
    fn settings_merge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.json");
        std::fs::write(&file, r#"{"bucket":"from-file","region":"us-east-1"}"#).unwrap();
        let args = SettingsArgs {
            set: vec![
                "bucket=backups".into(),
                "path_style=true".into(),
                "prefix=null".into(),
            ],
            secret: vec![
                "secret_access_key=abc=def".into(),
                r#"headers={"Authorization":"Bearer x"}"#.into(),
                r#"credential={"type":"service_account"}"#.into(),
            ],
            secret_stdin: None,
            from_file: Some(file),
        };
        let mut base = Map::new();
        base.insert("prefix".into(), json!("old/"));
        let merged = args.apply(base, &[]).unwrap();
        assert_eq!(
            Value::Object(merged),
            json!({
                "bucket": "backups", "region": "us-east-1", "path_style": true,
                "secret_access_key": "abc=def",
                "headers": {"Authorization": "Bearer x"},
                // A JSON key file is the text of one, as GCS wants it.
                "credential": r#"{"type":"service_account"}"#,
            })
        );
        let bad = SettingsArgs {
            set: vec!["novalue".into()],
            ..Default::default()
        };
        assert!(
            bad.apply(Map::new(), &[])
                .unwrap_err()
                .to_string()
                .contains("KEY=VALUE")
        );
    }
}
