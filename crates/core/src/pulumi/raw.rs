//! A checkpoint read without building a JSON tree: strings are borrowed from the text where
//! possible, and each resource's `inputs` and `outputs` stay raw JSON, so a checkpoint of
//! thousands of resources costs little more than its text. Values are built only for what a
//! caller looks at (a changed resource, the stack's outputs).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::urn::STACK_TYPE;
use crate::Error;

/// `{"version": N, "features": […], "checkpoint": {…}}`.
#[derive(Deserialize)]
pub(crate) struct RawDocument<'a> {
    pub version: u64,
    #[serde(borrow)]
    pub checkpoint: RawCheckpoint<'a>,
}

#[derive(Deserialize)]
pub(crate) struct RawCheckpoint<'a> {
    /// `organization/<project>/<stack>` (project mode) or `<stack>` (legacy layout).
    #[serde(default, borrow)]
    pub stack: Option<Cow<'a, str>>,
    /// Absent in the checkpoint `pulumi stack init` writes.
    #[serde(default, borrow)]
    pub latest: Option<RawDeployment<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct RawDeployment<'a> {
    #[serde(default, borrow)]
    pub manifest: Option<RawManifest<'a>>,
    #[serde(default, borrow)]
    pub resources: Option<Vec<Resource<'a>>>,
    #[serde(default, borrow)]
    pub pending_operations: Option<Vec<RawPendingOperation<'a>>>,
}

#[derive(Deserialize)]
pub(crate) struct RawManifest<'a> {
    /// The Pulumi CLI that wrote the checkpoint (`v3.120.0`).
    #[serde(default, borrow)]
    pub version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct RawPendingOperation<'a> {
    #[serde(borrow)]
    pub resource: PendingResource<'a>,
    /// `creating`, `updating`, `deleting`, `reading`, `importing`.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
}

#[derive(Deserialize)]
pub(crate) struct PendingResource<'a> {
    #[serde(borrow)]
    pub urn: Cow<'a, str>,
}

/// One resource: its whole JSON text (what a diff compares) and the fields statehouse reads.
pub(crate) struct Resource<'a> {
    pub raw: &'a RawValue,
    pub fields: RawResource<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Resource<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: &'a RawValue = Deserialize::deserialize(d)?;
        // A second, borrowed read of this resource's text only: the fields point into it.
        let fields = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
        Ok(Resource { raw, fields })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawResource<'a> {
    #[serde(borrow)]
    pub urn: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    pub type_: Cow<'a, str>,
    /// Replaced and awaiting deletion (create-before-delete): its replacement has the same URN.
    #[serde(default)]
    pub delete: bool,
    /// Read with a `get` function rather than managed: like a Terraform data source.
    #[serde(default)]
    pub external: bool,
    /// Marked to be replaced on the next update (`pulumi state taint`).
    #[serde(default)]
    pub taint: bool,
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub outputs: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub parent: Option<Cow<'a, str>>,
    /// `<provider URN>::<provider id>`.
    #[serde(default, borrow)]
    pub provider: Option<Cow<'a, str>>,
    /// Output names the program marked secret; their values are hidden like secrets.
    #[serde(default, borrow)]
    pub additional_secret_outputs: Option<Vec<Cow<'a, str>>>,
}

impl RawResource<'_> {
    pub fn is_stack(&self) -> bool {
        self.type_ == STACK_TYPE
    }
}

impl<'a> RawDocument<'a> {
    pub fn resources(&self) -> &[Resource<'a>] {
        self.checkpoint
            .latest
            .as_ref()
            .and_then(|l| l.resources.as_deref())
            .unwrap_or_default()
    }

    pub fn pending_operations(&self) -> &[RawPendingOperation<'a>] {
        self.checkpoint
            .latest
            .as_ref()
            .and_then(|l| l.pending_operations.as_deref())
            .unwrap_or_default()
    }

    pub fn stack(&self) -> &str {
        self.checkpoint.stack.as_deref().unwrap_or_default()
    }

    pub fn client_version(&self) -> Option<&str> {
        self.checkpoint
            .latest
            .as_ref()
            .and_then(|l| l.manifest.as_ref())
            .and_then(|m| m.version.as_deref())
    }

    /// The root stack resource, when the checkpoint has one.
    pub fn stack_resource(&self) -> Option<&Resource<'a>> {
        self.resources()
            .iter()
            .find(|r| r.fields.is_stack() && !r.fields.delete)
    }
}

/// Reads decoded checkpoint text (see [`super::decode`]).
pub(crate) fn parse(text: &[u8]) -> Result<RawDocument<'_>, Error> {
    let text = std::str::from_utf8(text).map_err(|e| {
        Error::BadRequest(format!(
            "checkpoint is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    serde_json::from_str(text)
        .map_err(|e| Error::BadRequest(format!("not a readable Pulumi checkpoint: {e}")))
}
