//! What changed between two checkpoints of a stack, by URN: resources added, removed and
//! changed (down to the property paths, `inputs.tags.env`, `outputs.arn`), and the stack's
//! outputs — in the shape of the Terraform diff ([`StateDiff`]), marked `kind: "pulumi"`.
//! Secrets read `"(secret)"` on either side; their ciphertext is never shown.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;
use serde_json::value::RawValue;

use super::decode::decode;
use super::facts::{mode_of, module_of};
use super::outputs::{additional_secrets, secret_names, shown_output, shown_value, stack_outputs};
use super::raw::{RawDocument, Resource, parse};
use super::secrets::{SECRET_MASK, is_secret, masked};
use super::urn::{STACK_TYPE, name_of, provider_urn};
use crate::Result;
use crate::statefile::StateKind;
use crate::tfstate::{
    AttributeChange, InstanceChange, InstanceRef, OutputChange, OutputsDiff, StateDiff,
    StateHeader, StatusChange, Step, TOO_DEEP, format_path, readable,
};

/// Shown as the "deposed" key of a replaced resource awaiting deletion (`delete: true`).
pub const PENDING_DELETE: &str = "pending-delete";

/// Resource fields that say when, not what: a resource whose other fields are the same is
/// unchanged. (`urn` is the key the resources are matched by.)
const NOT_COMPARED: [&str; 3] = ["urn", "created", "modified"];

/// Compares two checkpoint bodies as stored (plain, gzip or zstd). Only resources whose JSON
/// text differs are taken apart. Each header's `serial` is 0: a checkpoint has none, the
/// caller fills in the versions' own; `lineage` is the stack name.
pub fn diff(old: &[u8], new: &[u8]) -> Result<StateDiff> {
    let (old_text, new_text) = (decode(old)?, decode(new)?);
    let (old_doc, new_doc) = (parse(&old_text)?, parse(&new_text)?);
    let (old_entries, new_entries) = (Entries::of(&old_doc), Entries::of(&new_doc));

    let old_by_key: HashMap<(&str, bool, usize), usize> = old_entries
        .list
        .iter()
        .enumerate()
        .map(|(i, e)| (e.key(), i))
        .collect();
    let mut seen = vec![false; old_entries.list.len()];
    let (mut added, mut changed, mut unchanged) = (Vec::new(), Vec::new(), 0u64);
    for entry in &new_entries.list {
        let Some(&i) = old_by_key.get(&entry.key()) else {
            added.push(new_entries.to_ref(entry));
            continue;
        };
        seen[i] = true;
        match compare(&old_entries.list[i], &new_entries, entry) {
            Some(change) => changed.push(change),
            None => unchanged += 1,
        }
    }
    let mut removed: Vec<InstanceRef> = old_entries
        .list
        .iter()
        .zip(&seen)
        .filter(|(_, seen)| !**seen)
        .map(|(entry, _)| old_entries.to_ref(entry))
        .collect();
    let order =
        |a: &InstanceRef, b: &InstanceRef| (&a.address, &a.deposed).cmp(&(&b.address, &b.deposed));
    added.sort_by(order);
    removed.sort_by(order);
    changed.sort_by(|a: &InstanceChange, b: &InstanceChange| order(&a.instance, &b.instance));

    Ok(StateDiff {
        kind: StateKind::Pulumi,
        before: header(&old_doc, &old_entries),
        after: header(&new_doc, &new_entries),
        added,
        removed,
        changed,
        unchanged,
        outputs: diff_outputs(&old_doc, &new_doc)?,
    })
}

/// One resource of a checkpoint, with what the diff needs around it.
struct Entry<'d, 'a> {
    resource: &'d Resource<'a>,
    /// How many resources before it have the same URN and `delete` flag (0 nearly always).
    repeat: usize,
    /// `creating`, `updating`, … when an interrupted operation left it pending.
    pending: Option<&'d str>,
}

impl Entry<'_, '_> {
    fn key(&self) -> (&str, bool, usize) {
        let r = &self.resource.fields;
        (&r.urn, r.delete, self.repeat)
    }

    /// `updating` (an interrupted operation), `tainted`, or none.
    fn status(&self) -> Option<String> {
        match self.pending {
            Some(kind) => Some(format!("pending {kind}")),
            None if self.resource.fields.taint => Some("tainted".into()),
            None => None,
        }
    }
}

struct Entries<'d, 'a> {
    list: Vec<Entry<'d, 'a>>,
    stack_urns: HashSet<&'d str>,
}

impl<'d, 'a> Entries<'d, 'a> {
    fn of(doc: &'d RawDocument<'a>) -> Self {
        let pending: HashMap<&str, &str> = doc
            .pending_operations()
            .iter()
            .map(|op| (&*op.resource.urn, &*op.kind))
            .collect();
        let mut repeats: HashMap<(&str, bool), usize> = HashMap::new();
        let list = doc
            .resources()
            .iter()
            .map(|resource| {
                let r = &resource.fields;
                let count = repeats.entry((&r.urn, r.delete)).or_default();
                let repeat = *count;
                *count += 1;
                Entry {
                    resource,
                    repeat,
                    pending: (!r.delete).then(|| pending.get(&*r.urn).copied()).flatten(),
                }
            })
            .collect();
        let stack_urns = doc
            .resources()
            .iter()
            .filter(|r| r.fields.type_ == STACK_TYPE)
            .map(|r| &*r.fields.urn)
            .collect();
        Entries { list, stack_urns }
    }

    fn to_ref(&self, entry: &Entry<'_, '_>) -> InstanceRef {
        let r = &entry.resource.fields;
        let module = module_of(r, &self.stack_urns);
        InstanceRef {
            address: r.urn.to_string(),
            mode: mode_of(r),
            resource_type: r.type_.to_string(),
            name: name_of(&r.urn).to_owned(),
            module: (!module.is_empty()).then(|| module.to_owned()),
            provider: r
                .provider
                .as_deref()
                .map(provider_urn)
                .unwrap_or_default()
                .to_owned(),
            index_key: None,
            deposed: r.delete.then(|| PENDING_DELETE.to_owned()),
        }
    }
}

fn header(doc: &RawDocument<'_>, entries: &Entries<'_, '_>) -> StateHeader {
    StateHeader {
        serial: 0,
        lineage: doc.stack().to_owned(),
        terraform_version: None,
        resource_instances: entries
            .list
            .iter()
            .filter(|e| !e.resource.fields.delete)
            .count() as u64,
    }
}

fn compare(
    old: &Entry<'_, '_>,
    new_entries: &Entries<'_, '_>,
    new: &Entry<'_, '_>,
) -> Option<InstanceChange> {
    let (old_status, new_status) = (old.status(), new.status());
    let status = (old_status != new_status).then_some(StatusChange {
        before: old_status,
        after: new_status,
    });
    let attributes = if old.resource.raw.get() == new.resource.raw.get() {
        Vec::new()
    } else {
        property_changes(old.resource, new.resource)
    };
    if attributes.is_empty() && status.is_none() {
        return None;
    }
    Some(InstanceChange {
        instance: new_entries.to_ref(new),
        status,
        attributes,
    })
}

/// The changed paths of one resource (its whole JSON but the fields in [`NOT_COMPARED`]; the
/// stack resource's `outputs` are reported as the diff's `outputs`). Fields are compared one
/// by one, so a value too deeply nested to take apart hides only its own field.
fn property_changes(old: &Resource<'_>, new: &Resource<'_>) -> Vec<AttributeChange> {
    let (old_fields, new_fields) = (fields_of(old), fields_of(new));
    let is_stack = new.fields.type_ == STACK_TYPE;
    let mut secret_outputs = additional_secrets(&old.fields);
    secret_outputs.extend(additional_secrets(&new.fields));
    let walker = Walker { secret_outputs };
    let mut keys: Vec<&String> = old_fields.keys().chain(new_fields.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut changes = Vec::new();
    for key in keys {
        if NOT_COMPARED.contains(&key.as_str()) || (is_stack && key == "outputs") {
            continue;
        }
        let (before, after) = (old_fields.get(key), new_fields.get(key));
        if let (Some(b), Some(a)) = (before, after)
            && a.get() == b.get()
        {
            continue;
        }
        let (before_value, after_value) = (before.map(|r| readable(r)), after.map(|r| readable(r)));
        let mut path = vec![Step::Key(key.clone())];
        if matches!(before_value, Some(None)) || matches!(after_value, Some(None)) {
            // Too deep to compare path by path: the field changed, values not shown.
            let note = |_: &&RawValue| Value::String(TOO_DEEP.into());
            changes.push(AttributeChange {
                path: format_path(&path),
                before: before.map(note),
                after: after.map(note),
                sensitive: false,
            });
            continue;
        }
        walker.walk(
            &mut path,
            before_value.flatten().as_ref(),
            after_value.flatten().as_ref(),
            &mut changes,
        );
    }
    changes
}

/// A resource's fields as raw JSON. It was read as an object, so this cannot fail.
fn fields_of<'a>(r: &Resource<'a>) -> BTreeMap<String, &'a RawValue> {
    serde_json::from_str(r.raw.get()).unwrap_or_default()
}

struct Walker<'s> {
    /// Outputs named in `additionalSecretOutputs` on either side: secret whatever they hold.
    secret_outputs: HashSet<&'s str>,
}

impl Walker<'_> {
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
        if self.is_secret_output(path)
            || before.is_some_and(is_secret)
            || after.is_some_and(is_secret)
        {
            let mask = |v: &Value| match is_secret(v) || self.is_secret_output(path) {
                true => Value::String(SECRET_MASK.into()),
                false => masked(v.clone()).0,
            };
            out.push(AttributeChange {
                path: format_path(path),
                before: before.map(mask),
                after: after.map(mask),
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
                // An object or list on one side only may hold secrets: shown masked.
                let before = before.map(|v| masked(v.clone()));
                let after = after.map(|v| masked(v.clone()));
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

    fn is_secret_output(&self, path: &[Step]) -> bool {
        matches!(path, [Step::Key(field), Step::Key(name)]
            if field == "outputs" && self.secret_outputs.contains(name.as_str()))
    }
}

fn diff_outputs(old: &RawDocument<'_>, new: &RawDocument<'_>) -> Result<OutputsDiff> {
    let (old_outputs, new_outputs) = (stack_outputs(old)?, stack_outputs(new)?);
    let mut secret = secret_names(old);
    secret.extend(secret_names(new));
    let mut diff = OutputsDiff::default();
    for (name, after) in &new_outputs {
        let Some(before) = old_outputs.get(name) else {
            diff.added.push(shown_output(name, after, &secret));
            continue;
        };
        if before.get() == after.get() {
            continue;
        }
        // Equal values written differently (spacing, key order) are no change.
        if let (Some(b), Some(a)) = (readable(before), readable(after))
            && a == b
        {
            continue;
        }
        let (before_value, before_secret) = shown_value(name, before, &secret);
        let (after_value, after_secret) = shown_value(name, after, &secret);
        diff.changed.push(OutputChange {
            name: name.clone(),
            before: before_value,
            after: after_value,
            sensitive: before_secret || after_secret,
        });
    }
    for (name, before) in &old_outputs {
        if !new_outputs.contains_key(name) {
            diff.removed.push(shown_output(name, before, &secret));
        }
    }
    Ok(diff)
}
