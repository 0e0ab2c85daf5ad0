//! What changed between two versions of a state: resource instances added, removed and changed
//! (down to the attribute paths), and outputs. Sensitive values are masked unless revealed.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::address::{IndexKey, Mode, instance_address};
use super::nesting::{TOO_DEEP, readable};
use super::outputs::{Output, masked_value, read_output};
use super::path::{SensitivePaths, Step, format_path};
use super::raw::{RawInstance, RawResource, RawState, parse_readable};
use crate::Error;
use crate::statefile::StateKind;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateDiff {
    /// `terraform`, or `pulumi` for two Pulumi checkpoints (then addresses are URNs, attribute
    /// paths start with `inputs.`/`outputs.`, and secrets read `(secret)`).
    pub kind: StateKind,
    pub before: StateHeader,
    pub after: StateHeader,
    /// Instances only in the newer state, by address.
    pub added: Vec<InstanceRef>,
    /// Instances only in the older state, by address.
    pub removed: Vec<InstanceRef>,
    /// Instances in both whose attributes (or tainted status) differ.
    pub changed: Vec<InstanceChange>,
    /// How many instances are in both and identical.
    pub unchanged: u64,
    pub outputs: OutputsDiff,
}

/// Identity of one side of a diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateHeader {
    pub serial: i64,
    pub lineage: String,
    pub terraform_version: Option<String>,
    /// Current (not deposed) resource instances.
    pub resource_instances: u64,
}

/// One resource instance object, as its address and the facts around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceRef {
    /// As Terraform prints it: `module.app["web"].aws_instance.this[0]`.
    pub address: String,
    pub mode: Mode,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    /// `module.app["web"]`; `None` for the root module.
    pub module: Option<String>,
    /// As written in the state: `provider["registry.terraform.io/hashicorp/aws"]`.
    pub provider: String,
    pub index_key: Option<IndexKey>,
    /// Set for an object left behind by create-before-destroy (its deposed key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deposed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceChange {
    #[serde(flatten)]
    pub instance: InstanceRef,
    /// Set when the instance's status changed (`"tainted"` or none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusChange>,
    pub attributes: Vec<AttributeChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusChange {
    pub before: Option<String>,
    pub after: Option<String>,
}

/// One changed attribute path. `before` is absent when the path did not exist in the older
/// state, `after` when it no longer exists. A change anywhere inside a sensitive value is
/// reported at the sensitive path itself, with both sides masked unless revealed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributeChange {
    /// `tags.Name`, `ingress[0].cidr_blocks[1]`, `tags["kubernetes.io/role"]`.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// The value at this path is (or contains) something Terraform marked sensitive.
    pub sensitive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct OutputsDiff {
    pub added: Vec<Output>,
    pub removed: Vec<Output>,
    pub changed: Vec<OutputChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputChange {
    pub name: String,
    pub before: Value,
    pub after: Value,
    /// Sensitive on either side; both values are masked unless revealed.
    pub sensitive: bool,
}

/// Compares two state bodies (format version 4). Only instances whose raw attribute JSON
/// differs are parsed into values, so memory stays proportional to the two bodies.
pub fn diff(old: &[u8], new: &[u8], reveal_sensitive: bool) -> Result<StateDiff, Error> {
    let old_state = parse_readable(old)?;
    let new_state = parse_readable(new)?;
    let old_entries = entries(&old_state);
    let new_entries = entries(&new_state);

    let mut old_by_key: HashMap<(&str, Option<&str>), usize> =
        HashMap::with_capacity(old_entries.len());
    for (i, entry) in old_entries.iter().enumerate() {
        old_by_key.insert(entry.key(), i);
    }
    let mut seen = vec![false; old_entries.len()];
    let mut added = Vec::new();
    let mut changed = Vec::new();
    let mut unchanged = 0u64;
    for entry in &new_entries {
        let Some(&i) = old_by_key.get(&entry.key()) else {
            added.push(entry.to_ref());
            continue;
        };
        seen[i] = true;
        match compare_instances(&old_entries[i], entry, reveal_sensitive)? {
            Some(change) => changed.push(change),
            None => unchanged += 1,
        }
    }
    let mut removed: Vec<InstanceRef> = old_entries
        .iter()
        .zip(&seen)
        .filter(|(_, seen)| !**seen)
        .map(|(entry, _)| entry.to_ref())
        .collect();
    let order =
        |a: &InstanceRef, b: &InstanceRef| (&a.address, &a.deposed).cmp(&(&b.address, &b.deposed));
    added.sort_by(order);
    removed.sort_by(order);
    changed.sort_by(|a: &InstanceChange, b: &InstanceChange| order(&a.instance, &b.instance));

    Ok(StateDiff {
        kind: StateKind::Terraform,
        before: header(&old_state, &old_entries),
        after: header(&new_state, &new_entries),
        added,
        removed,
        changed,
        unchanged,
        outputs: diff_outputs(&old_state, &new_state, reveal_sensitive)?,
    })
}

/// One instance object of a parsed state, with its address.
pub(crate) struct Entry<'s, 'a> {
    pub resource: &'s RawResource<'a>,
    pub instance: &'s RawInstance<'a>,
    pub address: String,
}

impl Entry<'_, '_> {
    fn key(&self) -> (&str, Option<&str>) {
        (&self.address, self.instance.deposed.as_deref())
    }

    pub fn to_ref(&self) -> InstanceRef {
        let module = self.resource.module.as_deref().filter(|m| !m.is_empty());
        InstanceRef {
            address: self.address.clone(),
            mode: self.resource.mode,
            resource_type: self.resource.type_.to_string(),
            name: self.resource.name.to_string(),
            module: module.map(str::to_owned),
            provider: self.resource.provider.to_string(),
            index_key: self.instance.index_key.clone(),
            deposed: self.instance.deposed.as_deref().map(str::to_owned),
        }
    }
}

/// Every instance object of a state, in state order.
pub(crate) fn entries<'s, 'a>(state: &'s RawState<'a>) -> Vec<Entry<'s, 'a>> {
    let resources = state.resources();
    let mut out = Vec::with_capacity(resources.iter().map(|r| r.instances.len()).sum());
    for resource in resources {
        for instance in &resource.instances {
            out.push(Entry {
                resource,
                instance,
                address: instance_address(
                    resource.module.as_deref(),
                    resource.mode,
                    &resource.type_,
                    &resource.name,
                    instance.index_key.as_ref(),
                ),
            });
        }
    }
    out
}

fn header(state: &RawState<'_>, entries: &[Entry<'_, '_>]) -> StateHeader {
    StateHeader {
        serial: state.serial.unwrap_or_default(),
        lineage: state.lineage.as_deref().unwrap_or_default().to_owned(),
        terraform_version: state.terraform_version.as_deref().map(str::to_owned),
        resource_instances: entries
            .iter()
            .filter(|e| e.instance.deposed.is_none())
            .count() as u64,
    }
}

fn compare_instances(
    old: &Entry<'_, '_>,
    new: &Entry<'_, '_>,
    reveal_sensitive: bool,
) -> Result<Option<InstanceChange>, Error> {
    let old_attrs = old.instance.attributes_json();
    let new_attrs = new.instance.attributes_json();
    let same_bytes = match (old_attrs, new_attrs) {
        (Some(a), Some(b)) => a.get() == b.get(),
        (None, None) => true,
        _ => false,
    };
    let status = (old.instance.status != new.instance.status).then(|| StatusChange {
        before: old.instance.status.as_deref().map(str::to_owned),
        after: new.instance.status.as_deref().map(str::to_owned),
    });
    let attributes = if same_bytes {
        Vec::new()
    } else {
        let mut sensitive = SensitivePaths::parse(old.instance.sensitive_attributes);
        sensitive.extend(SensitivePaths::parse(new.instance.sensitive_attributes));
        let context = AttributeDiff {
            sensitive,
            reveal: reveal_sensitive,
        };
        match (parse_attributes(old_attrs), parse_attributes(new_attrs)) {
            (Some(before), Some(after)) => {
                let mut changes = Vec::new();
                let mut path = Vec::new();
                context.walk(&mut path, before.as_ref(), after.as_ref(), &mut changes);
                changes
            }
            // Too deep to compare path by path: the whole attributes changed, values not shown.
            _ => vec![AttributeChange {
                path: String::new(),
                before: old_attrs.map(|_| Value::String(TOO_DEEP.into())),
                after: new_attrs.map(|_| Value::String(TOO_DEEP.into())),
                sensitive: false,
            }],
        }
    };
    if attributes.is_empty() && status.is_none() {
        return Ok(None);
    }
    Ok(Some(InstanceChange {
        instance: new.to_ref(),
        status,
        attributes,
    }))
}

/// The attributes as a value (`Some(None)` when absent); `None` when nested too deeply.
fn parse_attributes(raw: Option<&RawValue>) -> Option<Option<Value>> {
    match raw {
        None => Some(None),
        Some(r) => readable(r).map(Some),
    }
}

struct AttributeDiff {
    sensitive: SensitivePaths,
    reveal: bool,
}

impl AttributeDiff {
    fn walk(
        &self,
        path: &mut Vec<Step>,
        before: Option<&Value>,
        after: Option<&Value>,
        out: &mut Vec<AttributeChange>,
    ) {
        if before == after {
            return;
        }
        if !path.is_empty() && self.sensitive.covers(path) {
            out.push(AttributeChange {
                path: format_path(path),
                before: before.map(|v| self.show(path, v).0),
                after: after.map(|v| self.show(path, v).0),
                sensitive: true,
            });
            return;
        }
        match (before, after) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    path.push(Step::Key(key.clone()));
                    self.walk(path, a.get(key), b.get(key), out);
                    path.pop();
                }
            }
            (Some(Value::Array(a)), Some(Value::Array(b))) => {
                for i in 0..a.len().max(b.len()) {
                    path.push(Step::Index(i as u64));
                    self.walk(path, a.get(i), b.get(i), out);
                    path.pop();
                }
            }
            _ => {
                let before = before.map(|v| self.show(path, v));
                let after = after.map(|v| self.show(path, v));
                let sensitive =
                    before.as_ref().is_some_and(|b| b.1) || after.as_ref().is_some_and(|a| a.1);
                out.push(AttributeChange {
                    path: format_path(path),
                    before: before.map(|b| b.0),
                    after: after.map(|a| a.0),
                    sensitive,
                });
            }
        }
    }

    /// The value to show at `path`, masked where sensitive unless revealing; with whether
    /// anything in it is sensitive.
    fn show(&self, path: &[Step], value: &Value) -> (Value, bool) {
        if self.sensitive.is_empty() {
            return (value.clone(), false);
        }
        let (masked, any) = self.sensitive.mask_within(path, value);
        if self.reveal {
            (value.clone(), any)
        } else {
            (masked, any)
        }
    }
}

fn diff_outputs(
    old: &RawState<'_>,
    new: &RawState<'_>,
    reveal_sensitive: bool,
) -> Result<OutputsDiff, Error> {
    let empty = Default::default();
    let old_outputs = old.outputs.as_ref().unwrap_or(&empty);
    let new_outputs = new.outputs.as_ref().unwrap_or(&empty);
    let mut diff = OutputsDiff::default();
    for (name, after) in new_outputs {
        let Some(before) = old_outputs.get(name) else {
            diff.added.push(read_output(name, after, reveal_sensitive)?);
            continue;
        };
        let sensitive = before.sensitive || after.sensitive;
        if before.value.get() == after.value.get() && before.sensitive == after.sensitive {
            continue;
        }
        let (before_value, after_value) = match (readable(before.value), readable(after.value)) {
            (Some(b), Some(a)) if a == b && before.sensitive == after.sensitive => continue,
            (b, a) => (
                b.unwrap_or_else(|| Value::String(TOO_DEEP.into())),
                a.unwrap_or_else(|| Value::String(TOO_DEEP.into())),
            ),
        };
        diff.changed.push(OutputChange {
            name: name.clone(),
            before: masked_value(before_value, sensitive, reveal_sensitive),
            after: masked_value(after_value, sensitive, reveal_sensitive),
            sensitive,
        });
    }
    for (name, before) in old_outputs {
        if !new_outputs.contains_key(name) {
            diff.removed
                .push(read_output(name, before, reveal_sensitive)?);
        }
    }
    Ok(diff)
}
