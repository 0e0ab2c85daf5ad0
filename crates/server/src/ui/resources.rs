//! The resources panel of a state's page: the current version's resource instances from the
//! search index, filtered by a part of the address, a page at a time.

use statehouse_core::Result;
use statehouse_core::access::Principal;

use super::links::{query_escape, state_page};
use crate::AppState;

/// Instances per page of the panel.
const PAGE: i64 = 50;

pub struct ResourceRow {
    pub address: String,
    pub resource_type: String,
    pub data: bool,
    pub identifiers: Vec<(&'static str, String)>,
    pub appeared: i64,
}

pub struct ResourcesPanel {
    pub filter: String,
    pub rows: Vec<ResourceRow>,
    /// Empty on the last page.
    pub next_page: String,
    pub first_page: String,
    pub paged: bool,
    pub not_indexed: bool,
}

impl ResourcesPanel {
    pub async fn load(
        app: &AppState,
        who: &Principal,
        ws: &str,
        name: &str,
        filter: &str,
        cursor: Option<&str>,
    ) -> Result<ResourcesPanel> {
        let filter = filter.trim();
        let found = app
            .services
            .state_resources(
                who,
                ws,
                name,
                Some(filter).filter(|f| !f.is_empty()),
                cursor,
                Some(PAGE),
            )
            .await?;
        let here = format!(
            "{}?resources={}",
            state_page(ws, name),
            query_escape(filter)
        );
        Ok(ResourcesPanel {
            filter: filter.to_owned(),
            rows: found
                .results
                .iter()
                .map(|h| ResourceRow {
                    address: h.address.clone(),
                    resource_type: h.resource_type.clone(),
                    data: h.mode.as_str() == "data",
                    identifiers: h
                        .attributes
                        .iter()
                        .map(|(kind, value)| (kind, value.to_owned()))
                        .collect(),
                    appeared: h.appeared_version_no,
                })
                .collect(),
            next_page: found.next_cursor.map_or(String::new(), |c| {
                format!("{here}&rcursor={}#resources", query_escape(&c))
            }),
            first_page: format!("{here}#resources"),
            paged: cursor.is_some(),
            not_indexed: found.not_indexed,
        })
    }
}
