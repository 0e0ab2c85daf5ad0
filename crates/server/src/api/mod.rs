//! The REST API under `/api/v1`: JSON in and out, the same tokens as the state backend, errors
//! as `{"error": {"code", "message"}}`, cursor pagination, and an OpenAPI document describing
//! every route at `/api/v1/openapi.json`.

mod audit;
mod auth;
mod backups;
mod databases;
mod doc;
mod encryption;
mod error;
mod extract;
mod json_text;
pub(crate) mod lock_queue;
mod notifiers;
mod progress;
mod s3_keys;
mod search;
mod states;
mod targets;
mod tokens;
mod users;
pub mod views;
mod webhooks;
mod workspaces;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody};
pub use extract::{ApiJson, ApiQuery, Caller, Order, Page, PageParams, time_key};

use crate::AppState;

/// Every API route, and the OpenAPI document describing them.
fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(workspaces::list, workspaces::create))
        .routes(routes!(
            workspaces::show,
            workspaces::change,
            workspaces::delete
        ))
        .routes(routes!(states::list))
        .routes(routes!(states::show, states::delete))
        .routes(routes!(states::versions))
        .routes(routes!(states::version))
        .routes(routes!(states::version_body))
        .routes(routes!(states::keep_version))
        .routes(routes!(states::lock, states::force_unlock))
        .routes(routes!(lock_queue::queue))
        .routes(routes!(states::deleted))
        .routes(routes!(states::restore))
        .routes(routes!(states::purge))
        .routes(routes!(states::diff))
        .routes(routes!(states::rollback))
        .routes(routes!(states::outputs))
        .routes(routes!(search::resources))
        .routes(routes!(search::state_resources))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::show, users::change, users::delete))
        .routes(routes!(users::members))
        .routes(routes!(
            users::member,
            users::set_member,
            users::remove_member
        ))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(s3_keys::list, s3_keys::create))
        .routes(routes!(s3_keys::revoke))
        .routes(routes!(audit::list))
        .routes(routes!(audit::export))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::events))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::show, webhooks::change, webhooks::delete))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::delivery))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(webhooks::ping))
        .routes(routes!(
            databases::list_databases,
            databases::create_database
        ))
        .routes(routes!(
            databases::show_database,
            databases::change_database,
            databases::delete_database
        ))
        .routes(routes!(databases::check_database))
        .routes(routes!(databases::test_connection))
        .routes(routes!(databases::retention_preview))
        .routes(routes!(databases::health))
        .routes(routes!(databases::readonly_role))
        .routes(routes!(databases::backup_now))
        .routes(routes!(backups::list_backups))
        .routes(routes!(backups::show_backup, backups::delete_backup))
        .routes(routes!(backups::download_backup))
        .routes(routes!(backups::restore_backup))
        .routes(routes!(backups::restore_server))
        .routes(routes!(backups::verify_backup))
        .routes(routes!(backups::verifications))
        .routes(routes!(targets::list_targets, targets::create_target))
        .routes(routes!(
            targets::show_target,
            targets::change_target,
            targets::delete_target
        ))
        .routes(routes!(targets::test_target))
        .routes(routes!(
            notifiers::list_notifiers,
            notifiers::create_notifier
        ))
        .routes(routes!(
            notifiers::show_notifier,
            notifiers::change_notifier,
            notifiers::delete_notifier
        ))
        .routes(routes!(notifiers::test_notifier))
        .routes(routes!(
            encryption::encryption,
            encryption::change_encryption
        ))
        .routes(routes!(encryption::export_key))
}

pub fn routes() -> Router<Arc<AppState>> {
    let (router, doc) = router_and_document();
    // Rendered once: the document never changes while the server runs.
    let doc = bytes::Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    router
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], doc) }
            }),
        )
        .route("/api/v1", axum::routing::any(error::not_found))
        .route("/api/v1/{*rest}", axum::routing::any(error::not_found))
}

/// The OpenAPI document, for tests and tooling.
pub fn openapi() -> utoipa::openapi::OpenApi {
    router_and_document().1
}

fn router_and_document() -> (Router<Arc<AppState>>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .nest("/api/v1", api())
        .split_for_parts();
    doc::add_common_errors(&mut doc);
    (router, doc)
}
