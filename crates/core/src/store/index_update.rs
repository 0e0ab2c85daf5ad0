//! The index update both stores apply inside `write_version`: a new version's instances with
//! their fingerprints, compared with the state's stored rows so that a write touches only what
//! changed — and, through the digest of all fingerprints, nothing at all when nothing did.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::tfstate::IndexedResource;

/// A new version's index entries: one per address (a malformed state that names an address
/// twice is indexed by its first instance), each with its [`fingerprint`], and the digest of
/// them all. A state whose stored digest equals a new version's needs no index change:
/// Terraform re-sends every resource on each write, and most writes leave the identifying
/// fields of every instance as they were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexEntries {
    entries: Vec<Entry>,
    digest: i64,
}

/// One instance with what the index stores beside it, each computed once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    fingerprint: i64,
    /// The instance key as JSON text.
    index_key: Option<String>,
    resource: IndexedResource,
}

impl IndexEntries {
    pub fn new(resources: Vec<IndexedResource>) -> IndexEntries {
        let mut seen = HashSet::with_capacity(resources.len());
        let first: Vec<bool> = resources
            .iter()
            .map(|r| seen.insert(r.address.as_str()))
            .collect();
        drop(seen);
        let entries: Vec<Entry> = resources
            .into_iter()
            .zip(first)
            .filter(|(_, first)| *first)
            .map(|(resource, _)| {
                let index_key = index_key_text(&resource);
                Entry {
                    fingerprint: fingerprint_with(&resource, index_key.as_deref()),
                    index_key,
                    resource,
                }
            })
            .collect();
        let mut hash = Sha256::new();
        for entry in &entries {
            hash.update(entry.fingerprint.to_le_bytes());
        }
        IndexEntries {
            digest: first_i64(&hash.finalize()),
            entries,
        }
    }

    /// How many instances the index keeps for the version.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The digest of every entry's fingerprint, in order.
    pub fn digest(&self) -> i64 {
        self.digest
    }

    pub fn resources(&self) -> impl Iterator<Item = &IndexedResource> {
        self.entries.iter().map(|e| &e.resource)
    }
}

impl From<Vec<IndexedResource>> for IndexEntries {
    fn from(resources: Vec<IndexedResource>) -> Self {
        IndexEntries::new(resources)
    }
}

/// An index row as stored, as far as an update needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIndexRow {
    pub row: i64,
    pub address: String,
    pub fingerprint: i64,
    pub appeared_version_no: i64,
    pub appeared_at: Timestamp,
}

/// An index row to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIndexRow {
    pub resource: IndexedResource,
    pub index_key: Option<String>,
    pub fingerprint: i64,
    pub appeared_version_no: i64,
    pub appeared_at: Timestamp,
}

/// What to change in a state's index rows for a new version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexChanges {
    pub delete_rows: Vec<i64>,
    pub insert: Vec<NewIndexRow>,
}

/// Compares the state's stored rows with the new version's instances: unchanged instances are
/// left alone (writes of big states touch only what changed), changed ones are replaced but keep
/// when they appeared, new ones appear in `version_no` at `at`, gone ones are deleted — and so
/// are stored rows that repeat an address (left by a malformed state), so they cannot pile up.
pub fn plan_index_update(
    stored: Vec<StoredIndexRow>,
    new: IndexEntries,
    version_no: i64,
    at: Timestamp,
) -> IndexChanges {
    let mut changes = IndexChanges::default();
    let mut by_address: HashMap<String, StoredIndexRow> = HashMap::with_capacity(stored.len());
    for row in stored {
        if let Some(repeated) = by_address.insert(row.address.clone(), row) {
            changes.delete_rows.push(repeated.row);
        }
    }
    for Entry {
        fingerprint,
        index_key,
        resource,
    } in new.entries
    {
        let (appeared_version_no, appeared_at) = match by_address.remove(&resource.address) {
            Some(old) if old.fingerprint == fingerprint => continue,
            Some(old) => {
                changes.delete_rows.push(old.row);
                (old.appeared_version_no, old.appeared_at)
            }
            None => (version_no, at),
        };
        changes.insert.push(NewIndexRow {
            resource,
            index_key,
            fingerprint,
            appeared_version_no,
            appeared_at,
        });
    }
    changes
        .delete_rows
        .extend(by_address.into_values().map(|old| old.row));
    changes.delete_rows.sort_unstable();
    changes
}

/// A stable digest of everything an index row holds about an instance.
pub fn fingerprint(resource: &IndexedResource) -> i64 {
    fingerprint_with(resource, index_key_text(resource).as_deref())
}

/// The instance key as the index stores it: JSON text.
fn index_key_text(resource: &IndexedResource) -> Option<String> {
    resource
        .index_key
        .as_ref()
        .and_then(|k| serde_json::to_string(k).ok())
}

/// [`fingerprint`] with the instance key already as [`index_key_text`].
fn fingerprint_with(resource: &IndexedResource, index_key: Option<&str>) -> i64 {
    let mut hash = Sha256::new();
    let ids = &resource.ids;
    for part in [
        Some(resource.address.as_str()),
        Some(resource.mode.as_str()),
        Some(resource.resource_type.as_str()),
        Some(resource.name.as_str()),
        Some(resource.module.as_str()),
        Some(resource.provider.as_str()),
        index_key,
        ids.id.as_deref(),
        ids.arn.as_deref(),
        ids.name.as_deref(),
        ids.self_link.as_deref(),
    ] {
        match part {
            Some(text) => {
                hash.update([1u8]);
                hash.update((text.len() as u64).to_le_bytes());
                hash.update(text.as_bytes());
            }
            None => hash.update([0u8]),
        }
    }
    first_i64(&hash.finalize())
}

fn first_i64(digest: &[u8]) -> i64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::tfstate::{IdentifyingAttributes, Mode};

    fn resource(address: &str, id: &str) -> IndexedResource {
        IndexedResource {
            address: address.into(),
            mode: Mode::Managed,
            resource_type: "aws_instance".into(),
            name: "web".into(),
            module: String::new(),
            provider: "provider[\"registry.terraform.io/hashicorp/aws\"]".into(),
            index_key: None,
            ids: IdentifyingAttributes {
                id: Some(id.into()),
                ..Default::default()
            },
        }
    }

    fn stored(row: i64, r: &IndexedResource, appeared: i64) -> StoredIndexRow {
        StoredIndexRow {
            row,
            address: r.address.clone(),
            fingerprint: fingerprint(r),
            appeared_version_no: appeared,
            appeared_at: Timestamp(appeared * 10),
        }
    }

    #[test]
    fn update_touches_only_what_changed_and_keeps_appearance() {
        let same = resource("a.same", "1");
        let before = resource("a.changed", "2");
        let after = resource("a.changed", "3");
        let gone = resource("a.gone", "4");
        let new = resource("a.new", "5");
        let changes = plan_index_update(
            vec![
                stored(10, &same, 1),
                stored(11, &before, 2),
                stored(12, &gone, 1),
            ],
            IndexEntries::new(vec![same, after.clone(), new.clone()]),
            7,
            Timestamp(70),
        );
        assert_eq!(changes.delete_rows, vec![11, 12]);
        assert_eq!(changes.insert.len(), 2);
        assert_eq!(changes.insert[0].resource, after);
        assert_eq!(
            (
                changes.insert[0].appeared_version_no,
                changes.insert[0].appeared_at
            ),
            (2, Timestamp(20))
        );
        assert_eq!(changes.insert[1].resource, new);
        assert_eq!(
            (
                changes.insert[1].appeared_version_no,
                changes.insert[1].appeared_at
            ),
            (7, Timestamp(70))
        );
    }

    #[test]
    fn fingerprints_tell_fields_apart() {
        let a = resource("x.a", "1");
        let mut b = a.clone();
        b.ids.id = None;
        b.ids.arn = Some("1".into());
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
    }

    #[test]
    fn repeated_addresses_are_indexed_once_and_stored_repeats_removed() {
        let first = resource("a.twice", "1");
        let second = resource("a.twice", "2");
        let entries = IndexEntries::new(vec![first.clone(), second]);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries.resources().next(), Some(&first));
        let changes = plan_index_update(
            vec![stored(10, &first, 1), stored(11, &first, 1)],
            entries,
            2,
            Timestamp(20),
        );
        assert_eq!(changes.delete_rows.len(), 1, "{changes:?}");
        assert!(changes.insert.is_empty(), "{changes:?}");
    }

    #[test]
    fn digest_follows_every_fingerprint() {
        let a = resource("x.a", "1");
        let b = resource("x.b", "2");
        let mut b_changed = b.clone();
        b_changed.ids.id = Some("3".into());
        let digest = |r: Vec<IndexedResource>| IndexEntries::new(r).digest();
        assert_eq!(
            digest(vec![a.clone(), b.clone()]),
            digest(vec![a.clone(), b.clone()])
        );
        assert_ne!(
            digest(vec![a.clone(), b.clone()]),
            digest(vec![a.clone(), b_changed])
        );
        assert_ne!(digest(vec![a.clone(), b.clone()]), digest(vec![a.clone()]));
        assert_ne!(digest(vec![a]), digest(vec![]));
    }
}
