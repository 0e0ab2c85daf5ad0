//! `/ui/search`: resources across every state the viewer may read, with the same fields as
//! `GET /api/v1/search/resources`; each result links to its state.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::search::ResourceQuery;
use statehouse_core::store::search::MatchMode;

use super::links::{query_escape, state_page};
use super::page::{Chrome, OrPage, Section, UiError, Viewer, page};
use crate::AppState;

/// Results per page.
const PAGE: i64 = 50;

/// The form's fields; an empty field is no condition.
#[derive(Debug, Default, Deserialize)]
pub struct SearchForm {
    #[serde(default)]
    q: String,
    #[serde(default, rename = "type")]
    resource_type: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    module: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    arn: String,
    /// `prefix` for prefix matching, else exact.
    #[serde(default, rename = "match")]
    match_mode: String,
    cursor: Option<String>,
}

fn given(value: &str) -> Option<String> {
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

impl SearchForm {
    fn is_empty(&self) -> bool {
        [
            &self.q,
            &self.resource_type,
            &self.name,
            &self.module,
            &self.provider,
            &self.mode,
            &self.id,
            &self.arn,
        ]
        .iter()
        .all(|v| v.trim().is_empty())
    }

    fn query(&self) -> ResourceQuery {
        ResourceQuery {
            resource_type: given(&self.resource_type),
            name: given(&self.name),
            module: given(&self.module),
            provider: given(&self.provider),
            mode: given(&self.mode),
            id: given(&self.id),
            arn: given(&self.arn),
            name_attribute: None,
            self_link: None,
            q: given(&self.q),
            match_mode: if self.match_mode == "prefix" {
                MatchMode::Prefix
            } else {
                MatchMode::Exact
            },
            cursor: self.cursor.clone().filter(|c| !c.is_empty()),
            limit: Some(PAGE),
        }
    }

    /// The search's address without a cursor.
    fn address(&self) -> String {
        let fields = [
            ("q", &self.q),
            ("type", &self.resource_type),
            ("name", &self.name),
            ("module", &self.module),
            ("provider", &self.provider),
            ("mode", &self.mode),
            ("id", &self.id),
            ("arn", &self.arn),
            ("match", &self.match_mode),
        ];
        let query: Vec<String> = fields
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={}", query_escape(v.trim())))
            .collect();
        format!("/ui/search?{}", query.join("&"))
    }
}

pub struct HitRow {
    /// `pulumi` for a Pulumi resource (marked in the list), `terraform` otherwise.
    pub kind: &'static str,
    pub state: String,
    pub href: String,
    pub address: String,
    pub resource_type: String,
    pub mode: &'static str,
    pub provider: String,
    pub identifiers: Vec<(&'static str, String)>,
    pub version: i64,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    chrome: Chrome,
    form: SearchForm,
    prefix: bool,
    searched: bool,
    hits: Vec<HitRow>,
    next_page: String,
    not_indexed: i64,
    not_indexed_names: Vec<String>,
}

/// `GET /ui/search`: the form, and results once a field is given.
pub async fn search(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Query(form): Query<SearchForm>,
) -> Result<Response, UiError> {
    let mut hits = Vec::new();
    let mut next_page = String::new();
    let mut not_indexed = 0;
    let mut not_indexed_names = Vec::new();
    let searched = !form.is_empty();
    if searched {
        let found = app
            .services
            .search_resources(&viewer.who, &form.query())
            .await
            .or_page(&viewer)?;
        hits = found
            .results
            .iter()
            .map(|h| HitRow {
                kind: h.kind().as_str(),
                state: format!("{}/{}", h.workspace_name, h.state_name),
                href: state_page(&h.workspace_name, &h.state_name),
                address: h.address.clone(),
                resource_type: h.resource_type.clone(),
                mode: h.mode.as_str(),
                provider: h.provider.clone(),
                identifiers: h
                    .attributes
                    .iter()
                    .map(|(kind, value)| (kind, value.to_owned()))
                    .collect(),
                version: h.version_no,
            })
            .collect();
        if let Some(cursor) = found.next_cursor {
            next_page = format!("{}&cursor={}", form.address(), query_escape(&cursor));
        }
        not_indexed = found.not_indexed.count;
        not_indexed_names = found
            .not_indexed
            .states
            .iter()
            .map(|s| format!("{}/{}", s.workspace_name, s.state_name))
            .collect();
    }
    page(&SearchPage {
        chrome: Chrome::signed_in(&viewer, "Search resources", &uri, Section::Search),
        prefix: form.match_mode == "prefix",
        form,
        searched,
        hits,
        next_page,
        not_indexed,
        not_indexed_names,
    })
}
