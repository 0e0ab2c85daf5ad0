//! The resource search index: every resource instance of every live state's current version,
//! kept at write time (inside the version's transaction) so searches never read state bodies.
//!
//! Contract every store keeps:
//! - `write_version` replaces the state's index rows with [`VersionWrite::resources`] in the
//!   same transaction as the version insert (an identical snapshot stores nothing and changes
//!   nothing); an instance whose address was already indexed for the state keeps the version
//!   and time it first appeared at;
//! - a state whose current version could not be indexed (client-side encrypted, unreadable
//!   format, or written before the index existed) has no rows and is listed by
//!   [`SearchStore::unindexed_states`];
//! - soft-deleted states keep their rows but never match (restore brings them back); purge
//!   removes them;
//! - results are ordered by the driving field's value, then a unique row number, so a
//!   [`SearchPosition`] resumes exactly after the last row of a page.
//!
//! [`VersionWrite::resources`]: crate::model::VersionWrite::resources

use async_trait::async_trait;
use serde::Serialize;

pub use super::index_update::{
    IndexChanges, IndexEntries, NewIndexRow, StoredIndexRow, fingerprint, plan_index_update,
};
use crate::Result;
use crate::clock::Timestamp;
use crate::statefile::StateKind;
use crate::tfstate::{IdentifyingAttributes, Mode};

/// What a new version contributes to the search index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionResources {
    /// The version's resource instances (possibly none).
    Indexed(IndexEntries),
    /// The version's resources cannot be read; the state is listed as not indexed.
    NotIndexed(NotIndexedReason),
}

impl VersionResources {
    /// How many resource instances the version has, when known.
    pub fn count(&self) -> Option<i64> {
        match self {
            VersionResources::Indexed(r) => Some(r.len() as i64),
            VersionResources::NotIndexed(_) => None,
        }
    }
}

/// Why a state's current version has no index rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotIndexedReason {
    /// An OpenTofu client-side encrypted state: only its envelope is readable.
    ClientEncrypted,
    /// Not a state format statehouse reads (format version other than 4, malformed resources).
    Unreadable,
    /// Written before the index existed; its next write indexes it.
    WrittenBeforeIndex,
}

impl NotIndexedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            NotIndexedReason::ClientEncrypted => "client-encrypted",
            NotIndexedReason::Unreadable => "unreadable",
            NotIndexedReason::WrittenBeforeIndex => "written-before-index",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client-encrypted" => Some(NotIndexedReason::ClientEncrypted),
            "unreadable" => Some(NotIndexedReason::Unreadable),
            "written-before-index" => Some(NotIndexedReason::WrittenBeforeIndex),
            _ => None,
        }
    }
}

/// A field a search can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchField {
    /// Resource type (`aws_instance`).
    Type,
    /// Resource name in configuration (`web`).
    Name,
    /// Module path (`module.app["web"]`; empty for the root module).
    Module,
    /// Provider as written in state (`provider["registry.terraform.io/hashicorp/aws"]`).
    Provider,
    /// `managed` or `data` (always an exact match).
    Mode,
    /// The `id` attribute.
    Id,
    /// The `arn` attribute.
    Arn,
    /// The `name` attribute.
    NameAttribute,
    /// The `self_link` attribute.
    SelfLink,
    /// Any identifying attribute (`id`, `arn`, `name`, `self_link`).
    Any,
}

impl SearchField {
    /// The identifying attribute this field matches (`id`, `arn`, `name`, `self_link`).
    pub fn attribute(self) -> Option<&'static str> {
        match self {
            SearchField::Id => Some("id"),
            SearchField::Arn => Some("arn"),
            SearchField::NameAttribute => Some("name"),
            SearchField::SelfLink => Some("self_link"),
            _ => None,
        }
    }

    /// Which of several given fields drives a search (is matched through its index and orders
    /// the results): the one likely to match fewest rows.
    fn selectivity_rank(self) -> u8 {
        match self {
            SearchField::Id => 0,
            SearchField::Arn => 1,
            SearchField::SelfLink => 2,
            SearchField::Any => 3,
            SearchField::NameAttribute => 4,
            SearchField::Name => 5,
            SearchField::Module => 6,
            SearchField::Type => 7,
            SearchField::Provider => 8,
            SearchField::Mode => 9,
        }
    }
}

/// The identifying attributes in the order [`SearchField::Any`] breaks ties between them.
pub const IDENTIFYING_ATTRIBUTES: [&str; 4] = ["id", "arn", "name", "self_link"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    #[default]
    Exact,
    Prefix,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMatch {
    pub field: SearchField,
    pub value: String,
}

/// One search as the store runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSearch {
    /// Only states in these workspaces (the ones the caller may read); empty: no results.
    pub workspace_ids: Vec<String>,
    /// Every one must match. The first drives the search (see [`ResourceSearch::new`]).
    pub matches: Vec<FieldMatch>,
    pub mode: MatchMode,
    /// Resume after this position (from the previous page's last hit).
    pub after: Option<SearchPosition>,
    pub limit: i64,
}

impl ResourceSearch {
    /// Orders `matches` so the most selective field drives the search.
    pub fn new(
        workspace_ids: Vec<String>,
        mut matches: Vec<FieldMatch>,
        mode: MatchMode,
        after: Option<SearchPosition>,
        limit: i64,
    ) -> Self {
        matches.sort_by_key(|m| m.field.selectivity_rank());
        ResourceSearch {
            workspace_ids,
            matches,
            mode,
            after,
            limit,
        }
    }

    /// The field whose index is scanned; `None` when only `mode` is given (rows in index order).
    pub fn driver(&self) -> Option<&FieldMatch> {
        self.matches
            .first()
            .filter(|m| m.field != SearchField::Mode)
    }

    /// `[lower, upper)` covering every string that starts with `prefix`, in code point order
    /// (= UTF-8 byte order, SQLite's `BINARY` and PostgreSQL's `"C"` collation). `None` for
    /// the upper bound when there is none (an empty prefix, or only U+10FFFF characters).
    pub fn prefix_range(prefix: &str) -> (String, Option<String>) {
        let mut upper: Vec<char> = prefix.chars().collect();
        while let Some(last) = upper.pop() {
            let next = (last as u32 + 1..=0x10FFFF).find_map(char::from_u32);
            if let Some(next) = next {
                upper.push(next);
                return (prefix.to_owned(), Some(upper.into_iter().collect()));
            }
        }
        (prefix.to_owned(), None)
    }
}

/// Where a hit sits in the result order: the driving field's value (for [`SearchField::Any`],
/// the attribute that matched and its value), then the row number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SearchPosition {
    pub value: String,
    /// The identifying attribute that matched for [`SearchField::Any`]; empty otherwise.
    pub attribute: String,
    pub row: i64,
}

/// One matching resource instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceHit {
    pub workspace_id: String,
    pub workspace_name: String,
    pub state_id: String,
    pub state_name: String,
    pub address: String,
    pub mode: Mode,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    pub module: String,
    pub provider: String,
    /// The instance key as JSON (`0`, `"web"`), when the resource has `count` or `for_each`.
    pub index_key: Option<String>,
    pub attributes: IdentifyingAttributes,
    /// The state's current version (the one the index reflects).
    pub version_no: i64,
    /// The version in which this address first appeared (in the state's indexed history).
    pub appeared_version_no: i64,
    pub appeared_at: Timestamp,
    #[serde(skip)]
    pub position: SearchPosition,
}

impl ResourceHit {
    /// Whether the hit is a Terraform resource instance or a Pulumi resource (indexed by its
    /// URN): told from the address, so the index needs no column for it.
    pub fn kind(&self) -> StateKind {
        StateKind::of_address(&self.address)
    }
}

/// A live state whose current version has no index rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnindexedState {
    pub workspace_id: String,
    pub workspace_name: String,
    pub state_id: String,
    pub state_name: String,
    pub reason: NotIndexedReason,
}

#[async_trait]
pub trait SearchStore: Send + Sync {
    /// One page of hits, in [`SearchPosition`] order, after `search.after`.
    async fn search_resources(&self, search: &ResourceSearch) -> Result<Vec<ResourceHit>>;

    /// How many live states in these workspaces are not indexed, and the first `limit` of
    /// them (by workspace and state name).
    async fn unindexed_states(
        &self,
        workspace_ids: &[String],
        limit: i64,
    ) -> Result<(i64, Vec<UnindexedState>)>;

    /// One page of a live state's indexed resource instances in address order (then row),
    /// after `after` (the previous page's last hit's position), those whose address contains
    /// `contains` (ASCII case-insensitive) when given. Positions carry the address as
    /// `value`.
    async fn state_resources(
        &self,
        state_id: &str,
        contains: Option<&str>,
        after: Option<&SearchPosition>,
        limit: i64,
    ) -> Result<Vec<ResourceHit>>;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn prefix_ranges_cover_exactly_the_prefix() {
        assert_eq!(
            ResourceSearch::prefix_range("aws_"),
            ("aws_".into(), Some("aws`".into()))
        );
        assert_eq!(ResourceSearch::prefix_range(""), (String::new(), None));
        assert_eq!(
            ResourceSearch::prefix_range("a\u{10FFFF}"),
            ("a\u{10FFFF}".into(), Some("b".into()))
        );
        // The successor skips the surrogate gap.
        assert_eq!(
            ResourceSearch::prefix_range("\u{D7FF}").1,
            Some("\u{E000}".into())
        );
    }

    #[test]
    fn the_most_selective_field_drives() {
        let search = ResourceSearch::new(
            vec![],
            vec![
                FieldMatch {
                    field: SearchField::Type,
                    value: "aws_instance".into(),
                },
                FieldMatch {
                    field: SearchField::Id,
                    value: "i-1".into(),
                },
            ],
            MatchMode::Exact,
            None,
            10,
        );
        assert_eq!(search.driver().map(|m| m.field), Some(SearchField::Id));
        let mode_only = ResourceSearch::new(
            vec![],
            vec![FieldMatch {
                field: SearchField::Mode,
                value: "data".into(),
            }],
            MatchMode::Exact,
            None,
            10,
        );
        assert_eq!(mode_only.driver(), None);
    }
}
