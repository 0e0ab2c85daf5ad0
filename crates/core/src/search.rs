//! Resource search as callers see it: fields matched exactly or by prefix, across the states of
//! every workspace the caller may read, a page at a time, saying which states could not be
//! indexed (so a caller knows the results may be incomplete).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::access::{Principal, Role};
use crate::service::Services;
use crate::statefile::{self, StateMeta};
use crate::store::search::{
    FieldMatch, MatchMode, NotIndexedReason, ResourceHit, ResourceSearch, SearchField,
    SearchPosition, UnindexedState, VersionResources,
};
use crate::tfstate::{self, IndexedResource, MAX_INDEXED_TEXT};
use crate::{Error, Result};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;
/// How many not-indexed states a search names (it counts them all).
pub const NOT_INDEXED_LISTED: i64 = 20;

/// A search as a caller asks it. Every given field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ResourceQuery {
    /// Resource type, e.g. `aws_instance`.
    #[serde(rename = "type")]
    pub resource_type: Option<String>,
    /// Resource name in configuration, e.g. `web`.
    pub name: Option<String>,
    /// Module path, e.g. `module.app["web"]`; empty (exact match) for the root module.
    pub module: Option<String>,
    /// Provider as written in state, e.g. `provider["registry.terraform.io/hashicorp/aws"]`.
    pub provider: Option<String>,
    /// `managed` or `data`.
    pub mode: Option<String>,
    /// The `id` attribute.
    pub id: Option<String>,
    /// The `arn` attribute.
    pub arn: Option<String>,
    /// The `name` attribute.
    pub name_attribute: Option<String>,
    /// The `self_link` attribute.
    pub self_link: Option<String>,
    /// Any identifying attribute (`id`, `arn`, `name`, `self_link`).
    pub q: Option<String>,
    /// `exact` (default) or `prefix`; applies to every field but `mode`.
    #[serde(rename = "match", default)]
    pub match_mode: MatchMode,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Results per page (1–1000, default 100).
    pub limit: Option<i64>,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchPage {
    pub results: Vec<ResourceHit>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Readable states whose resources are not in the index: results may miss them.
    pub not_indexed: NotIndexedStates,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotIndexedStates {
    pub count: i64,
    /// The first few, by workspace and state name.
    pub states: Vec<UnindexedState>,
}

/// A body's facts ([`statefile::inspect`]) and what it puts in the index, from one parse of
/// the body when it is a readable state (the common case). A body that only `inspect` accepts
/// is stored all the same, not indexed.
pub(crate) fn read_for_write(body: &[u8]) -> crate::Result<(StateMeta, VersionResources)> {
    // Only a JSON object is a state (serde would read an array into the struct too).
    let object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let Some(state) = object.then(|| tfstate::parse_any(body).ok()).flatten() else {
        let meta = statefile::inspect(body)?;
        let resources = resources_of(body, meta.client_encrypted);
        return Ok((meta, resources));
    };
    let meta = statefile::meta_of(
        state.version,
        state.serial,
        state.lineage.as_deref().map(str::to_owned),
        state.terraform_version.as_deref().map(str::to_owned),
        state.is_client_encrypted(),
    )?;
    if meta.client_encrypted {
        return Ok((
            meta,
            VersionResources::NotIndexed(NotIndexedReason::ClientEncrypted),
        ));
    }
    let resources = indexed(tfstate::index_entries_of(&state));
    Ok((meta, resources))
}

/// What a new version puts in the index. A body whose resources cannot be read is stored all
/// the same (nothing is lost) and reported as not indexed.
pub(crate) fn resources_of(body: &[u8], client_encrypted: bool) -> VersionResources {
    if client_encrypted {
        return VersionResources::NotIndexed(NotIndexedReason::ClientEncrypted);
    }
    indexed(tfstate::index_entries(body))
}

fn indexed(entries: crate::Result<Option<Vec<IndexedResource>>>) -> VersionResources {
    match entries {
        Ok(Some(resources)) => VersionResources::Indexed(resources.into()),
        Ok(None) => VersionResources::NotIndexed(NotIndexedReason::ClientEncrypted),
        Err(e) => {
            tracing::warn!(reason = %e, "state stored but its resources cannot be indexed for search");
            VersionResources::NotIndexed(NotIndexedReason::Unreadable)
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    /// Which search this cursor belongs to.
    s: String,
    v: String,
    a: String,
    r: i64,
}

impl ResourceQuery {
    fn field_matches(&self) -> Result<Vec<FieldMatch>> {
        let fields = [
            (SearchField::Type, "type", &self.resource_type),
            (SearchField::Name, "name", &self.name),
            (SearchField::Module, "module", &self.module),
            (SearchField::Provider, "provider", &self.provider),
            (SearchField::Mode, "mode", &self.mode),
            (SearchField::Id, "id", &self.id),
            (SearchField::Arn, "arn", &self.arn),
            (
                SearchField::NameAttribute,
                "name_attribute",
                &self.name_attribute,
            ),
            (SearchField::SelfLink, "self_link", &self.self_link),
            (SearchField::Any, "q", &self.q),
        ];
        let mut matches = Vec::new();
        for (field, label, value) in fields {
            let Some(value) = value else { continue };
            let root_module = field == SearchField::Module && self.match_mode == MatchMode::Exact;
            if value.is_empty() && !root_module {
                return Err(Error::BadRequest(format!(
                    "{label} is empty: give a value (only an exact `module` may be empty, meaning the root module)"
                )));
            }
            if value.contains('\0') {
                return Err(Error::BadRequest(format!(
                    "{label} contains a NUL character (U+0000): no indexed value holds one"
                )));
            }
            if value.len() > MAX_INDEXED_TEXT {
                return Err(Error::BadRequest(format!(
                    "{label} is longer than {MAX_INDEXED_TEXT} bytes, the longest value the index keeps"
                )));
            }
            if field == SearchField::Mode && tfstate::Mode::parse(value).is_none() {
                return Err(Error::BadRequest(format!(
                    "mode {value:?} is unknown: use managed or data"
                )));
            }
            matches.push(FieldMatch {
                field,
                value: value.clone(),
            });
        }
        if matches.is_empty() {
            return Err(Error::BadRequest(
                "say what to search for: one or more of type, name, module, provider, mode, id, arn, name_attribute, self_link or q".into(),
            ));
        }
        Ok(matches)
    }

    fn limit(&self) -> Result<i64> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
            Some(l) => Err(Error::BadRequest(format!(
                "limit {l} is out of range: use 1 to {MAX_LIMIT}"
            ))),
        }
    }
}

/// Identifies a search (its fields and match mode) so a cursor is not replayed on another one.
fn search_signature(matches: &[FieldMatch], mode: MatchMode) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("{mode:?}"));
    for m in matches {
        hash.update([0u8]);
        hash.update(format!("{:?}", m.field));
        hash.update([0u8]);
        hash.update(&m.value);
    }
    hex::encode(&hash.finalize()[..8])
}

fn encode_cursor(signature: &str, position: &SearchPosition) -> String {
    let cursor = Cursor {
        s: signature.to_owned(),
        v: position.value.clone(),
        a: position.attribute.clone(),
        r: position.row,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
}

fn decode_cursor(signature: &str, text: &str) -> Result<SearchPosition> {
    let invalid = || {
        Error::BadRequest(
            "cursor is not valid: pass the next_cursor of the previous page unchanged".into(),
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    // Indexed values never hold U+0000 (PostgreSQL cannot compare with one): a forged cursor.
    if cursor.v.contains('\0') || cursor.a.contains('\0') {
        return Err(invalid());
    }
    if cursor.s != signature {
        return Err(Error::BadRequest(
            "cursor belongs to a different search: repeat the same fields and match mode, or start without a cursor".into(),
        ));
    }
    Ok(SearchPosition {
        value: cursor.v,
        attribute: cursor.a,
        row: cursor.r,
    })
}

impl Services {
    /// Searches the resource instances of live states in every workspace `who` may read
    /// (viewer and above).
    pub async fn search_resources(
        &self,
        who: &Principal,
        query: &ResourceQuery,
    ) -> Result<SearchPage> {
        let matches = query.field_matches()?;
        let limit = query.limit()?;
        let signature = search_signature(&matches, query.match_mode);
        let after = query
            .cursor
            .as_deref()
            .map(|c| decode_cursor(&signature, c))
            .transpose()?;
        let workspace_ids: Vec<String> = self
            .store
            .list_workspaces()
            .await?
            .into_iter()
            .filter(|ws| who.role_in(&ws.id).is_some_and(|r| r >= Role::Viewer))
            .map(|ws| ws.id)
            .collect();
        if workspace_ids.is_empty() {
            return Ok(SearchPage {
                results: Vec::new(),
                next_cursor: None,
                not_indexed: NotIndexedStates {
                    count: 0,
                    states: Vec::new(),
                },
            });
        }
        // One row more than asked tells whether another page exists.
        let search =
            ResourceSearch::new(workspace_ids, matches, query.match_mode, after, limit + 1);
        let mut results = self.store.search_resources(&search).await?;
        let next_cursor = if results.len() as i64 > limit {
            results.truncate(limit as usize);
            results
                .last()
                .map(|hit| encode_cursor(&signature, &hit.position))
        } else {
            None
        };
        let (count, states) = self
            .store
            .unindexed_states(&search.workspace_ids, NOT_INDEXED_LISTED)
            .await?;
        Ok(SearchPage {
            results,
            next_cursor,
            not_indexed: NotIndexedStates { count, states },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// One parse gives what `inspect` and a second parse for the index gave, for every kind
    /// of body a write may carry.
    #[test]
    fn one_parse_reads_what_two_did() {
        let bodies: [&[u8]; 7] = [
            br#"{"version":4,"serial":3,"lineage":"l-1","terraform_version":"1.0.3","outputs":{},
                "resources":[{"mode":"managed","type":"null_resource","name":"a","provider":"p",
                "instances":[{"attributes":{"id":"i-1"}}]}]}"#,
            br#"{"version":4,"serial":1,"lineage":"l","resources":[{"mode":"managed"}]}"#,
            br#"{"serial":2,"lineage":"l","meta":{},"encrypted_data":"x","encryption_version":"v0"}"#,
            br#"{"version":3,"serial":1,"lineage":"l","modules":[]}"#,
            br#"{"version":4,"lineage":"l"}"#,
            br#"[1,2]"#,
            b"\xff",
        ];
        for body in bodies {
            let two = statefile::inspect(body).map(|meta| {
                let resources = resources_of(body, meta.client_encrypted);
                (meta, resources)
            });
            let one = read_for_write(body);
            match (one, two) {
                (Ok(one), Ok(two)) => assert_eq!(one, two, "{}", String::from_utf8_lossy(body)),
                (Err(one), Err(two)) => assert_eq!(one.to_string(), two.to_string()),
                (one, two) => panic!("{}: {one:?} vs {two:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    #[test]
    fn queries_are_validated() {
        let bad = |q: ResourceQuery| match q.field_matches() {
            Err(Error::BadRequest(m)) => m,
            other => panic!("expected BadRequest, got {other:?}"),
        };
        assert!(bad(ResourceQuery::default()).contains("say what to search for"));
        assert!(
            bad(ResourceQuery {
                mode: Some("resource".into()),
                ..Default::default()
            })
            .contains("managed or data")
        );
        assert!(
            bad(ResourceQuery {
                id: Some(String::new()),
                ..Default::default()
            })
            .contains("id is empty")
        );
        assert!(
            bad(ResourceQuery {
                module: Some(String::new()),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            })
            .contains("module is empty")
        );
        assert!(
            bad(ResourceQuery {
                q: Some("x".repeat(MAX_INDEXED_TEXT + 1)),
                ..Default::default()
            })
            .contains("longer than")
        );
        let root = ResourceQuery {
            module: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(root.field_matches().unwrap().len(), 1);
        assert!(matches!(
            ResourceQuery {
                limit: Some(0),
                ..Default::default()
            }
            .limit(),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn cursors_round_trip_and_stay_with_their_search() {
        let position = SearchPosition {
            value: "i-123".into(),
            attribute: "id".into(),
            row: 42,
        };
        let text = encode_cursor("abc", &position);
        assert_eq!(decode_cursor("abc", &text).unwrap(), position);
        assert!(
            matches!(decode_cursor("other", &text), Err(Error::BadRequest(m)) if m.contains("different search"))
        );
        assert!(matches!(
            decode_cursor("abc", "%%%"),
            Err(Error::BadRequest(_))
        ));
        let forged = encode_cursor(
            "abc",
            &SearchPosition {
                value: "i-\0".into(),
                ..position
            },
        );
        assert!(matches!(
            decode_cursor("abc", &forged),
            Err(Error::BadRequest(m)) if m.contains("not valid")
        ));
        let a = search_signature(
            &[FieldMatch {
                field: SearchField::Type,
                value: "x".into(),
            }],
            MatchMode::Exact,
        );
        let b = search_signature(
            &[FieldMatch {
                field: SearchField::Type,
                value: "x".into(),
            }],
            MatchMode::Prefix,
        );
        assert_ne!(a, b);
    }
}

/// One page of a state's resources ([`Services::state_resources`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateResourcesPage {
    pub results: Vec<ResourceHit>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// The state's current version is not in the index (client-side encrypted, not a readable
    /// state, or written before the index existed): its resources cannot be listed.
    pub not_indexed: bool,
}

impl Services {
    /// The resource instances of a state's current version (viewers and above), in address
    /// order, those whose address contains `contains` (case-insensitive) when given.
    pub async fn state_resources(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        contains: Option<&str>,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<StateResourcesPage> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(l) if (1..=MAX_LIMIT).contains(&l) => l,
            Some(l) => {
                return Err(Error::BadRequest(format!(
                    "limit {l} is out of range: use 1 to {MAX_LIMIT}"
                )));
            }
        };
        let contains = contains.map(str::trim).filter(|c| !c.is_empty());
        if contains.is_some_and(|c| c.contains('\0')) {
            return Err(Error::BadRequest(
                "the address filter holds a NUL character".into(),
            ));
        }
        let (workspace, record) = self.state_detail(who, ws, name).await?;
        let signature = {
            let mut hash = Sha256::new();
            hash.update(record.id.as_bytes());
            hash.update([0u8]);
            hash.update(contains.unwrap_or("").as_bytes());
            hex::encode(&hash.finalize()[..8])
        };
        let after = cursor.map(|c| decode_cursor(&signature, c)).transpose()?;
        let mut results = self
            .store
            .state_resources(&record.id, contains, after.as_ref(), limit + 1)
            .await?;
        let next_cursor = if results.len() as i64 > limit {
            results.truncate(limit as usize);
            results
                .last()
                .map(|hit| encode_cursor(&signature, &hit.position))
        } else {
            None
        };
        let not_indexed = results.is_empty()
            && record.current.is_some()
            && self
                .store
                .unindexed_states(std::slice::from_ref(&workspace.id), i64::MAX)
                .await?
                .1
                .iter()
                .any(|s| s.state_id == record.id);
        Ok(StateResourcesPage {
            results,
            next_cursor,
            not_indexed,
        })
    }
}
