//! A Terraform state (format version 4) read without building a JSON tree: strings are
//! borrowed from the body where possible and every instance's `attributes` stays raw JSON
//! text, so a 50 MB state costs little more than the body itself. Values are parsed only for
//! what a caller actually looks at (one instance's changed attributes, an output).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::address::{IndexKey, Mode};
use crate::Error;

/// The state format statehouse can read (Terraform 0.12 and later, OpenTofu).
pub const SUPPORTED_FORMAT_VERSION: u64 = 4;

#[derive(Deserialize)]
pub(crate) struct RawState<'a> {
    #[serde(default)]
    pub version: Option<u64>,
    #[serde(default)]
    pub serial: Option<i64>,
    #[serde(default, borrow)]
    pub lineage: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub terraform_version: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub outputs: Option<BTreeMap<String, RawOutput<'a>>>,
    #[serde(default, borrow)]
    pub resources: Option<Vec<RawResource<'a>>>,
    #[serde(default)]
    encrypted_data: Option<IgnoredAny>,
    #[serde(default)]
    encryption_version: Option<IgnoredAny>,
}

#[derive(Deserialize)]
pub(crate) struct RawOutput<'a> {
    #[serde(borrow)]
    pub value: &'a RawValue,
    #[serde(rename = "type", default, borrow)]
    pub type_: Option<&'a RawValue>,
    #[serde(default)]
    pub sensitive: bool,
}

#[derive(Deserialize)]
pub(crate) struct RawResource<'a> {
    /// `module.a["x"].module.b[0]`, absent for the root module.
    #[serde(default, borrow)]
    pub module: Option<Cow<'a, str>>,
    pub mode: Mode,
    #[serde(rename = "type", borrow)]
    pub type_: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub provider: Cow<'a, str>,
    #[serde(default, borrow)]
    pub instances: Vec<RawInstance<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct RawInstance<'a> {
    #[serde(default)]
    pub index_key: Option<IndexKey>,
    /// Set on an object left behind by create-before-destroy, awaiting destruction.
    #[serde(default, borrow)]
    pub deposed: Option<Cow<'a, str>>,
    /// `tainted` when set.
    #[serde(default, borrow)]
    pub status: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub attributes: Option<&'a RawValue>,
    /// States upgraded from Terraform 0.11 keep flat `"a.b.0"` keys until the next refresh.
    #[serde(default, borrow)]
    pub attributes_flat: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub sensitive_attributes: Option<&'a RawValue>,
}

impl<'a> RawState<'a> {
    pub fn is_client_encrypted(&self) -> bool {
        self.encrypted_data.is_some() && self.encryption_version.is_some()
    }

    pub fn resources(&self) -> &[RawResource<'a>] {
        self.resources.as_deref().unwrap_or_default()
    }
}

impl RawInstance<'_> {
    /// The attributes as written (`attributes`, else the legacy flat map), `None` when neither.
    pub fn attributes_json(&self) -> Option<&RawValue> {
        self.attributes.or(self.attributes_flat)
    }
}

/// Reads a body as a state, without checking its format version.
pub(crate) fn parse_any(body: &[u8]) -> Result<RawState<'_>, Error> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Error::BadRequest(format!(
            "state body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    serde_json::from_str(text).map_err(|e| {
        Error::BadRequest(format!(
            "not a readable Terraform state (format version {SUPPORTED_FORMAT_VERSION}): {e}"
        ))
    })
}

/// Reads a body as a state whose resources and outputs statehouse can read: format version 4,
/// not client-side encrypted. Anything else is a `BadRequest` that says why.
pub(crate) fn parse_readable(body: &[u8]) -> Result<RawState<'_>, Error> {
    let state = parse_any(body)?;
    if state.is_client_encrypted() {
        return Err(Error::BadRequest(
            "this state is client-side encrypted (OpenTofu state encryption): statehouse cannot read its resources or outputs; decrypt it with `tofu` to inspect it".into(),
        ));
    }
    check_format_version(state.version)?;
    Ok(state)
}

pub(crate) fn check_format_version(version: Option<u64>) -> Result<(), Error> {
    match version {
        Some(SUPPORTED_FORMAT_VERSION) => Ok(()),
        Some(v) if v < SUPPORTED_FORMAT_VERSION => Err(Error::BadRequest(format!(
            "state format version {v} (Terraform 0.11 or older) cannot be read; run `terraform apply` or `terraform state push` with Terraform 0.12 or later to upgrade it to version {SUPPORTED_FORMAT_VERSION}"
        ))),
        Some(v) => Err(Error::BadRequest(format!(
            "state format version {v} is newer than statehouse understands (version {SUPPORTED_FORMAT_VERSION})"
        ))),
        None => Err(Error::BadRequest(
            "JSON is not a Terraform state: no \"version\" field".into(),
        )),
    }
}
