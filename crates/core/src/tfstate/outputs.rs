//! A state's root module outputs, sensitive ones masked unless revealed.

use serde::Serialize;
use serde_json::Value;

use super::nesting::shown;
use super::path::SENSITIVE_MASK;
use super::raw::{RawOutput, parse_readable};
use crate::Error;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    pub name: String,
    /// `"(sensitive)"` for a sensitive output unless revealed; [`super::TOO_DEEP`] for a value
    /// nested too deeply to be taken apart.
    pub value: Value,
    /// Terraform's type constraint as written in state (`"string"`, `["list","string"]`, …).
    #[serde(rename = "type")]
    pub value_type: Option<Value>,
    pub sensitive: bool,
}

/// The outputs of a state (format version 4), by name.
pub fn outputs(body: &[u8], reveal_sensitive: bool) -> Result<Vec<Output>, Error> {
    let state = parse_readable(body)?;
    let Some(outputs) = state.outputs.as_ref() else {
        return Ok(Vec::new());
    };
    outputs
        .iter()
        .map(|(name, raw)| read_output(name, raw, reveal_sensitive))
        .collect()
}

pub(crate) fn read_output(
    name: &str,
    raw: &RawOutput<'_>,
    reveal_sensitive: bool,
) -> Result<Output, Error> {
    let value = shown(raw.value);
    let value_type = raw.type_.map(shown);
    Ok(Output {
        name: name.to_owned(),
        value: masked_value(value, raw.sensitive, reveal_sensitive),
        value_type,
        sensitive: raw.sensitive,
    })
}

pub(crate) fn masked_value(value: Value, sensitive: bool, reveal_sensitive: bool) -> Value {
    if sensitive && !reveal_sensitive {
        Value::String(SENSITIVE_MASK.into())
    } else {
        value
    }
}
