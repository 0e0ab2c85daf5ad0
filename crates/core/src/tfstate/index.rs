//! What the resource search index keeps of each resource instance, read from a state body at
//! write time.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::address::{IndexKey, Mode};
use super::diff::entries;
use super::identifier::Identifier;
use super::raw::{RawState, check_format_version, parse_any};
use crate::Error;

/// Longest text indexed for one field, in bytes. Longer module paths are indexed by their
/// first bytes (prefix searches still find them); longer identifying attributes (a policy
/// document in a `name`, say) are not identifiers and are left out. Keeps every index entry
/// well under PostgreSQL's B-tree row limit.
pub const MAX_INDEXED_TEXT: usize = 1024;

/// One resource instance as the search index keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexedResource {
    /// As Terraform prints it: `module.app["web"].aws_instance.this[0]`.
    pub address: String,
    pub mode: Mode,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    /// `module.app["web"]`; empty for the root module.
    pub module: String,
    /// As written in state: `provider["registry.terraform.io/hashicorp/aws"]`.
    pub provider: String,
    pub index_key: Option<IndexKey>,
    pub ids: IdentifyingAttributes,
}

/// The attributes people search for a resource by, when present as strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IdentifyingAttributes {
    pub id: Option<String>,
    pub arn: Option<String>,
    pub name: Option<String>,
    pub self_link: Option<String>,
}

impl IdentifyingAttributes {
    /// `(kind, value)` for each present attribute; kinds are `id`, `arn`, `name`, `self_link`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("id", self.id.as_deref()),
            ("arn", self.arn.as_deref()),
            ("name", self.name.as_deref()),
            ("self_link", self.self_link.as_deref()),
        ]
        .into_iter()
        .filter_map(|(kind, value)| value.map(|v| (kind, v)))
    }
}

#[derive(Deserialize)]
struct IdentifyingProbe<'a> {
    #[serde(default, borrow)]
    id: Option<Identifier<'a>>,
    #[serde(default, borrow)]
    arn: Option<Identifier<'a>>,
    #[serde(default, borrow)]
    name: Option<Identifier<'a>>,
    #[serde(default, borrow)]
    self_link: Option<Identifier<'a>>,
}

/// The index entries of a state: one per current resource instance (objects deposed by
/// create-before-destroy are left out). `None` when the state's resources cannot be read: an
/// OpenTofu client-side encrypted state. Other formats than version 4, and resources whose
/// type, name, module or provider hold U+0000, are a `BadRequest`.
pub fn index_entries(body: &[u8]) -> Result<Option<Vec<IndexedResource>>, Error> {
    index_entries_of(&parse_any(body)?)
}

/// [`index_entries`] of a state already parsed.
pub(crate) fn index_entries_of(
    state: &RawState<'_>,
) -> Result<Option<Vec<IndexedResource>>, Error> {
    if state.is_client_encrypted() {
        return Ok(None);
    }
    check_format_version(state.version)?;
    let mut out = Vec::new();
    for entry in entries(state) {
        if entry.instance.deposed.is_some() {
            continue;
        }
        let ids = match entry.instance.attributes_json() {
            Some(raw) => {
                let probe: IdentifyingProbe<'_> = serde_json::from_str(raw.get()).map_err(|e| {
                    Error::BadRequest(format!(
                        "attributes of {} are not a JSON object: {e}",
                        entry.address
                    ))
                })?;
                IdentifyingAttributes {
                    id: probe.id.and_then(Identifier::into_indexed),
                    arn: probe.arn.and_then(Identifier::into_indexed),
                    name: probe.name.and_then(Identifier::into_indexed),
                    self_link: probe.self_link.and_then(Identifier::into_indexed),
                }
            }
            None => IdentifyingAttributes::default(),
        };
        let resource = entry.resource;
        // The index stores these as text, which cannot hold U+0000 on PostgreSQL; escaping
        // would index names no configuration has. Such a state is stored all the same and
        // reported as not indexed.
        if [
            &resource.type_,
            &resource.name,
            &resource.provider,
            resource.module.as_ref().unwrap_or(&Cow::Borrowed("")),
        ]
        .iter()
        .any(|text| text.contains('\0'))
        {
            return Err(Error::BadRequest(format!(
                "resource {} has a NUL character (U+0000) in its type, name, module or provider",
                crate::printable::escaped(&entry.address)
            )));
        }
        out.push(IndexedResource {
            address: entry.address,
            mode: resource.mode,
            resource_type: truncated(&resource.type_),
            name: truncated(&resource.name),
            module: truncated(resource.module.as_deref().unwrap_or_default()),
            provider: truncated(&resource.provider),
            index_key: entry.instance.index_key.clone(),
            ids,
        });
    }
    Ok(Some(out))
}

/// At most [`MAX_INDEXED_TEXT`] bytes of `s`, cut at a character boundary.
pub fn truncated(s: &str) -> String {
    if s.len() <= MAX_INDEXED_TEXT {
        return s.to_owned();
    }
    let mut end = MAX_INDEXED_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
