//! What a write needs to know of a checkpoint — its stack, client version, resource count,
//! pending operations — and what it puts in the resource search index, from one read.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::decode::decode;
use super::probe::is_checkpoint;
use super::raw::{RawResource, Resource, parse};
use super::urn::{STACK_TYPE, name_of, provider_urn};
use crate::printable::{escaped, refuse_control};
use crate::store::search::{NotIndexedReason, VersionResources};
use crate::tfstate::{IdentifyingAttributes, IndexedResource, Mode, identifier, truncated};
use crate::{Error, Result};

/// What statehouse reads out of a checkpoint when it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFacts {
    /// `checkpoint.stack`: `organization/<project>/<stack>` (or `<stack>` in the legacy layout).
    pub stack: String,
    /// `version` of the document (3 or 4 from current CLIs; 0 from `pulumi stack init`).
    pub format_version: u64,
    /// The Pulumi CLI that wrote it (`manifest.version`, e.g. `v3.120.0`).
    pub client_version: Option<String>,
    /// How many resources `checkpoint.latest.resources` lists (0 without `latest`), stack and
    /// provider resources included, as `pulumi stack` counts them.
    pub resource_count: u64,
    /// An update was interrupted: `pending_operations` is not empty.
    pub pending_operations: bool,
    /// The resources for the search index; `NotIndexed(Unreadable)` when they cannot be read
    /// (the checkpoint is stored all the same).
    pub resources: VersionResources,
}

/// The facts of a checkpoint body as sent (plain, gzip or zstd; see [`super::decode`]).
/// `BadRequest` when it is not a checkpoint, has no stack name, or its stack name or client
/// version holds a control character (they are stored in columns and shown in listings). A
/// checkpoint whose resources cannot be read is not an error: its facts say it is not indexed.
pub fn inspect(body: &[u8]) -> Result<CheckpointFacts> {
    inspect_text(&decode(body)?)
}

pub(crate) fn inspect_text(text: &[u8]) -> Result<CheckpointFacts> {
    if !is_checkpoint(text) {
        return Err(not_a_checkpoint(text));
    }
    match parse(text) {
        Ok(doc) => {
            let stack = checked_stack(doc.stack())?;
            let client_version = checked_client_version(doc.client_version())?;
            let resources = match index_entries(doc.resources()) {
                Ok(entries) => VersionResources::Indexed(entries.into()),
                Err(e) => {
                    tracing::warn!(reason = %e, "checkpoint stored but its resources cannot be indexed for search");
                    VersionResources::NotIndexed(NotIndexedReason::Unreadable)
                }
            };
            Ok(CheckpointFacts {
                stack,
                format_version: doc.version,
                client_version,
                resource_count: doc.resources().len() as u64,
                pending_operations: !doc.pending_operations().is_empty(),
                resources,
            })
        }
        // Resources statehouse cannot read (a future format, a malformed resource): the
        // header alone says what the write needs.
        Err(e) => {
            let header: Header<'_> = serde_json::from_slice(text).map_err(|_| e)?;
            tracing::warn!("checkpoint stored but its resources cannot be read for search");
            let latest = header.checkpoint.latest.unwrap_or_default();
            Ok(CheckpointFacts {
                stack: checked_stack(header.checkpoint.stack.as_deref().unwrap_or_default())?,
                format_version: header.version,
                client_version: checked_client_version(
                    latest.manifest.and_then(|m| m.version).as_deref(),
                )?,
                resource_count: latest.resources.map_or(0, |r| r.len() as u64),
                pending_operations: latest.pending_operations.is_some_and(|p| !p.is_empty()),
                resources: VersionResources::NotIndexed(NotIndexedReason::Unreadable),
            })
        }
    }
}

fn not_a_checkpoint(text: &[u8]) -> Error {
    let object = text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if !object {
        return Error::BadRequest("checkpoint is not a JSON object".into());
    }
    Error::BadRequest(
        "JSON is not a Pulumi checkpoint: it needs an integer \"version\" and a \"checkpoint\" object, and no Terraform \"serial\" or \"lineage\"".into(),
    )
}

fn checked_stack(stack: &str) -> Result<String> {
    if stack.is_empty() {
        return Err(Error::BadRequest(
            "checkpoint has no \"checkpoint.stack\" name".into(),
        ));
    }
    refuse_control("checkpoint \"checkpoint.stack\"", stack)?;
    Ok(stack.to_owned())
}

fn checked_client_version(version: Option<&str>) -> Result<Option<String>> {
    if let Some(v) = version {
        refuse_control("checkpoint \"manifest.version\"", v)?;
    }
    Ok(version.map(str::to_owned))
}

/// The header of a checkpoint whose resources cannot be read one by one.
#[derive(Deserialize)]
struct Header<'a> {
    version: u64,
    #[serde(borrow)]
    checkpoint: HeaderCheckpoint<'a>,
}

#[derive(Deserialize)]
struct HeaderCheckpoint<'a> {
    #[serde(default, borrow)]
    stack: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    latest: Option<HeaderLatest<'a>>,
}

#[derive(Deserialize, Default)]
struct HeaderLatest<'a> {
    #[serde(default, borrow)]
    manifest: Option<HeaderManifest<'a>>,
    #[serde(default)]
    resources: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    pending_operations: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct HeaderManifest<'a> {
    #[serde(default, borrow)]
    version: Option<Cow<'a, str>>,
}

/// The outputs people search a resource by, when they are plain strings (a secret is an
/// object, so it is never picked up).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentifyingOutputs<'a> {
    #[serde(default, borrow)]
    id: Option<identifier::Identifier<'a>>,
    #[serde(default, borrow)]
    arn: Option<identifier::Identifier<'a>>,
    #[serde(default, borrow)]
    name: Option<identifier::Identifier<'a>>,
    #[serde(default, borrow)]
    self_link: Option<identifier::Identifier<'a>>,
}

/// One index entry per resource, by URN; resources awaiting deletion (replaced, `delete:
/// true`) are left out as Terraform's deposed objects are. A URN, type or provider holding
/// U+0000 (which PostgreSQL text cannot store) makes the whole checkpoint unindexed, as for
/// Terraform states.
pub(crate) fn index_entries(resources: &[Resource<'_>]) -> Result<Vec<IndexedResource>> {
    let stack_urns: HashSet<&str> = resources
        .iter()
        .filter(|r| r.fields.type_ == STACK_TYPE)
        .map(|r| &*r.fields.urn)
        .collect();
    let mut out = Vec::with_capacity(resources.len());
    for resource in resources {
        let r = &resource.fields;
        if r.delete {
            continue;
        }
        let provider = r.provider.as_deref().map(provider_urn).unwrap_or_default();
        if [&*r.urn, &*r.type_, provider]
            .iter()
            .any(|t| t.contains('\0'))
        {
            return Err(Error::BadRequest(format!(
                "resource {} has a NUL character (U+0000) in its URN, type or provider",
                escaped(&r.urn)
            )));
        }
        out.push(IndexedResource {
            address: r.urn.to_string(),
            mode: mode_of(r),
            resource_type: truncated(&r.type_),
            name: truncated(name_of(&r.urn)),
            module: truncated(module_of(r, &stack_urns)),
            provider: truncated(provider),
            index_key: None,
            ids: identifying(r),
        });
    }
    Ok(out)
}

/// Resources read with a `get` function are not managed by the stack, like data sources.
pub(crate) fn mode_of(r: &RawResource<'_>) -> Mode {
    if r.external {
        Mode::Data
    } else {
        Mode::Managed
    }
}

/// What stands for Terraform's module path: the parent resource's URN, empty for resources
/// directly under the stack (the "root module"), the stack itself and parentless resources.
pub(crate) fn module_of<'r>(r: &'r RawResource<'_>, stack_urns: &HashSet<&str>) -> &'r str {
    match r.parent.as_deref() {
        Some(parent) if !stack_urns.contains(parent) => parent,
        _ => "",
    }
}

fn identifying(r: &RawResource<'_>) -> IdentifyingAttributes {
    // The stack's outputs are the program's own values, not identifiers of anything.
    let outputs = match r.outputs {
        Some(raw) if !r.is_stack() => {
            serde_json::from_str::<IdentifyingOutputs<'_>>(raw.get()).ok()
        }
        _ => None,
    };
    let (id, arn, name, self_link) = match outputs {
        Some(o) => (o.id, o.arn, o.name, o.self_link),
        None => (None, None, None, None),
    };
    let id =
        r.id.as_deref()
            .and_then(|id| identifier::Identifier::text(id).into_indexed())
            .or_else(|| id.and_then(identifier::Identifier::into_indexed));
    IdentifyingAttributes {
        id,
        arn: arn.and_then(identifier::Identifier::into_indexed),
        name: name.and_then(identifier::Identifier::into_indexed),
        self_link: self_link.and_then(identifier::Identifier::into_indexed),
    }
}
