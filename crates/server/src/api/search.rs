//! Resource search across every state the caller may read, and the resources of one state.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use statehouse_core::search::{ResourceQuery, SearchPage};
use statehouse_core::store::search::{MatchMode, NotIndexedReason, ResourceHit, UnindexedState};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiQuery, Caller};
use crate::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ResourceSearchQuery {
    /// Resource type, e.g. `aws_instance`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub resource_type: Option<String>,
    /// Resource name in configuration, e.g. `web`.
    pub name: Option<String>,
    /// Module path as Terraform prints it, e.g. `module.app["web"]`; empty with
    /// `match=exact` for the root module.
    pub module: Option<String>,
    /// Provider as written in state, e.g. `provider["registry.terraform.io/hashicorp/aws"]`.
    pub provider: Option<String>,
    /// `managed` or `data` (always matched exactly).
    pub mode: Option<String>,
    /// The `id` attribute.
    pub id: Option<String>,
    /// The `arn` attribute.
    pub arn: Option<String>,
    /// The `name` attribute.
    pub name_attribute: Option<String>,
    /// The `self_link` attribute.
    pub self_link: Option<String>,
    /// Any identifying attribute: `id`, `arn`, `name` or `self_link`.
    pub q: Option<String>,
    /// `exact` (default) or `prefix`, for every field given.
    #[serde(rename = "match")]
    #[param(rename = "match", value_type = Option<String>)]
    pub match_mode: Option<MatchMode>,
    /// Opaque cursor from a previous page's `next_cursor` (same fields and `match`).
    pub cursor: Option<String>,
    /// Results per page, 1–1000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentifyingAttributesView {
    pub id: Option<String>,
    pub arn: Option<String>,
    pub name: Option<String>,
    pub self_link: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceHitView {
    pub workspace: String,
    pub state: String,
    /// `terraform` (a resource instance of a Terraform/OpenTofu state) or `pulumi` (a
    /// resource of a Pulumi stack's checkpoint).
    pub kind: String,
    /// As Terraform prints it: `module.app["web"].aws_instance.this[0]`; for Pulumi, the URN
    /// (`urn:pulumi:dev::shop::aws:s3/bucket:Bucket::assets`).
    pub address: String,
    /// `managed` or `data` (Pulumi: `data` for resources read with `get`).
    pub mode: String,
    /// Terraform's resource type (`aws_instance`), or Pulumi's type token
    /// (`aws:s3/bucket:Bucket`).
    #[serde(rename = "type")]
    pub resource_type: String,
    /// The name in configuration; for Pulumi the URN's name part.
    pub name: String,
    /// Empty for the root module. For Pulumi, the parent resource's URN (empty directly under
    /// the stack).
    pub module: String,
    /// As written in state; for Pulumi, the provider resource's URN (empty for components).
    pub provider: String,
    /// The `count` index (a number) or `for_each` key (a string).
    #[schema(value_type = Option<Object>)]
    pub index_key: Option<serde_json::Value>,
    /// Identifying attributes present (as strings) on the instance.
    pub attributes: IdentifyingAttributesView,
    /// The state's current version, which the index reflects.
    pub version: i64,
    /// The version in which this address first appeared in the state.
    pub appeared_in_version: i64,
    /// When that version was written (RFC 3339).
    pub appeared_at: String,
}

impl From<ResourceHit> for ResourceHitView {
    fn from(hit: ResourceHit) -> Self {
        ResourceHitView {
            kind: hit.kind().as_str().to_owned(),
            workspace: hit.workspace_name,
            state: hit.state_name,
            address: hit.address,
            mode: hit.mode.as_str().to_owned(),
            resource_type: hit.resource_type,
            name: hit.name,
            module: hit.module,
            provider: hit.provider,
            index_key: hit
                .index_key
                .as_deref()
                .and_then(|k| serde_json::from_str(k).ok()),
            attributes: IdentifyingAttributesView {
                id: hit.attributes.id,
                arn: hit.attributes.arn,
                name: hit.attributes.name,
                self_link: hit.attributes.self_link,
            },
            version: hit.version_no,
            appeared_in_version: hit.appeared_version_no,
            appeared_at: hit.appeared_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotIndexedStateView {
    pub workspace: String,
    pub state: String,
    /// `client-encrypted` (OpenTofu state encryption: only the envelope is readable),
    /// `unreadable` (not a format statehouse reads), or `written-before-index` (indexed by its
    /// next write).
    pub reason: String,
}

impl From<UnindexedState> for NotIndexedStateView {
    fn from(s: UnindexedState) -> Self {
        NotIndexedStateView {
            workspace: s.workspace_name,
            state: s.state_name,
            reason: NotIndexedReason::as_str(s.reason).to_owned(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotIndexedView {
    /// Readable states whose resources are not in the index: results may miss them.
    pub count: i64,
    /// The first of them, by workspace and state name.
    pub states: Vec<NotIndexedStateView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceSearchView {
    pub items: Vec<ResourceHitView>,
    /// Present when more results follow: pass it as `cursor` with the same query.
    pub next_cursor: Option<String>,
    pub not_indexed: NotIndexedView,
}

impl From<SearchPage> for ResourceSearchView {
    fn from(page: SearchPage) -> Self {
        ResourceSearchView {
            items: page.results.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
            not_indexed: NotIndexedView {
                count: page.not_indexed.count,
                states: page
                    .not_indexed
                    .states
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            },
        }
    }
}

/// Resource instances of the current version of every live state the caller may read
/// (viewer and above), matched by type, name, module, provider, mode or identifying
/// attributes, exactly or by prefix; every given field must match. Results are ordered by the
/// most selective field given. `not_indexed` names readable states whose resources are not
/// indexed (OpenTofu client-side encrypted states, for instance), which results may miss.
#[utoipa::path(get, path = "/search/resources", tag = "search",
    params(ResourceSearchQuery),
    responses((status = 200, body = ResourceSearchView)))]
pub async fn resources(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ResourceSearchQuery>,
) -> Result<Json<ResourceSearchView>, ApiError> {
    let query = ResourceQuery {
        resource_type: q.resource_type,
        name: q.name,
        module: q.module,
        provider: q.provider,
        mode: q.mode,
        id: q.id,
        arn: q.arn,
        name_attribute: q.name_attribute,
        self_link: q.self_link,
        q: q.q,
        match_mode: q.match_mode.unwrap_or_default(),
        cursor: q.cursor,
        limit: q.limit,
    };
    let page = app.services.search_resources(&who, &query).await?;
    Ok(Json(page.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StateResourcesQuery {
    /// Only instances whose address contains this (case-insensitive).
    pub contains: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1–1000, default 100.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StateResourcesView {
    pub items: Vec<ResourceHitView>,
    /// Present when more results follow: pass it as `cursor` with the same query.
    pub next_cursor: Option<String>,
    /// The current version is not indexed (OpenTofu client-side encrypted, not a readable
    /// state, or written before the index existed), so no resources can be listed.
    pub not_indexed: bool,
}

/// The resource instances of a state's current version, in address order (viewer and above).
#[utoipa::path(get, path = "/workspaces/{ws}/states/{state}/resources", tag = "search",
    params(("ws" = String, Path, description = "workspace name"),
        ("state" = String, Path, description = "state name, URL-encoded"), StateResourcesQuery),
    responses((status = 200, body = StateResourcesView)))]
pub async fn state_resources(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, state)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<StateResourcesQuery>,
) -> Result<Json<StateResourcesView>, ApiError> {
    let page = app
        .services
        .state_resources(
            &who,
            &ws,
            &state,
            q.contains.as_deref(),
            q.cursor.as_deref(),
            q.limit,
        )
        .await?;
    Ok(Json(StateResourcesView {
        items: page.results.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
        not_indexed: page.not_indexed,
    }))
}
