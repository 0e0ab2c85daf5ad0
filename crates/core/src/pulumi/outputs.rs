//! A stack's outputs: the `outputs` of its root resource (type `pulumi:pulumi:Stack`), in the
//! shape Terraform outputs are served, secrets as `"(secret)"`.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;
use serde_json::value::RawValue;

use super::decode::decode;
use super::raw::{RawDocument, RawResource, parse};
use super::secrets::{SECRET_MASK, masked};
use crate::tfstate::{Output, TOO_DEEP, readable};
use crate::{Error, Result};

/// The stack outputs of a checkpoint body as stored (plain, gzip or zstd), by name. A secret
/// reads `"(secret)"` (anywhere inside a value too) with `sensitive: true`, for every caller:
/// statehouse cannot decrypt it and never shows its ciphertext. `type` is always absent
/// (Pulumi records none). No stack resource (a new stack): no outputs.
pub fn outputs(body: &[u8]) -> Result<Vec<Output>> {
    let text = decode(body)?;
    let doc = parse(&text)?;
    let secret = secret_names(&doc);
    Ok(stack_outputs(&doc)?
        .iter()
        .map(|(name, raw)| shown_output(name, raw, &secret))
        .collect())
}

/// The raw stack outputs by name.
pub(crate) fn stack_outputs<'a>(doc: &RawDocument<'a>) -> Result<BTreeMap<String, &'a RawValue>> {
    let Some(raw) = doc.stack_resource().and_then(|r| r.fields.outputs) else {
        return Ok(BTreeMap::new());
    };
    serde_json::from_str(raw.get()).map_err(|e| {
        Error::BadRequest(format!(
            "the stack resource's outputs are not a JSON object: {e}"
        ))
    })
}

/// Output names the program marked secret on the stack resource.
pub(crate) fn secret_names<'d>(doc: &'d RawDocument<'_>) -> HashSet<&'d str> {
    doc.stack_resource()
        .map(|r| additional_secrets(&r.fields))
        .unwrap_or_default()
}

pub(crate) fn additional_secrets<'r>(r: &'r RawResource<'_>) -> HashSet<&'r str> {
    r.additional_secret_outputs
        .iter()
        .flatten()
        .map(|name| &**name)
        .collect()
}

/// One output as shown: secrets masked, too-deep values replaced by the note.
pub(crate) fn shown_output(name: &str, raw: &RawValue, secret_names: &HashSet<&str>) -> Output {
    let (value, sensitive) = shown_value(name, raw, secret_names);
    Output {
        name: name.to_owned(),
        value,
        value_type: None,
        sensitive,
    }
}

/// The value of output `name` as shown, and whether it is (or holds) a secret.
pub(crate) fn shown_value(
    name: &str,
    raw: &RawValue,
    secret_names: &HashSet<&str>,
) -> (Value, bool) {
    if secret_names.contains(name) {
        return (Value::String(SECRET_MASK.into()), true);
    }
    match readable(raw) {
        Some(value) => masked(value),
        // Not taken apart, so nothing inside it is shown either.
        None => (Value::String(TOO_DEEP.into()), false),
    }
}
