//! The web UI: server-rendered pages (askama templates compiled into the binary), one module
//! per page, `*_partial` templates for the regions a page refreshes, one stylesheet and one
//! small script embedded from `crates/server/assets/`. Pages call the same services as the
//! REST API, with the same session cookie and CSRF token, so every action is authorized and
//! audited exactly as its API twin.

mod assets;
mod audit;
mod backups;
mod chart;
mod config_form;
mod database_check;
mod database_form;
mod database_settings;
mod deleted;
mod diff;
mod encryption;
mod format;
mod links;
mod listing;
mod members;
mod notifier;
mod notifier_kinds;
mod notifiers;
mod oidc;
mod overview;
mod page;
mod pulumi;
mod resources;
mod restore;
mod s3_keys;
mod search;
mod sign_in;
mod state;
mod states;
mod target;
mod target_kinds;
mod targets;
mod tokens;
mod user;
mod users;
mod webhook;
mod webhooks;
mod workspace_settings;
mod workspaces;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};

use crate::AppState;

/// Pages load only from this site: no inline script or style, no frames around them.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(overview::show))
        .route("/ui", get(|| async { Redirect::permanent("/") }))
        .route("/ui/", get(|| async { Redirect::permanent("/") }))
        .route("/ui/partials/overview", get(overview::partial))
        .route("/ui/login", get(sign_in::login_page).post(sign_in::login))
        .route("/ui/logout", post(sign_in::logout))
        .route("/ui/setup", get(sign_in::setup_page).post(sign_in::setup))
        .route("/ui/oidc/start", get(oidc::start))
        .route("/ui/oidc/callback", get(oidc::callback))
        .route("/ui/theme", post(sign_in::choose_theme))
        .route("/ui/assets/{file}", get(assets::serve))
        .route("/ui/states", get(states::list))
        .route("/ui/search", get(search::search))
        .route("/ui/audit", get(audit::list))
        .route("/ui/backups", get(backups::list))
        .route("/ui/database/{ws}/{db}", get(backups::show))
        .route("/ui/partials/database/{ws}/{db}", get(backups::partial))
        .route(
            "/ui/databases/{ws}/new",
            get(database_form::new_form).post(database_form::create),
        )
        .route(
            "/ui/database/{ws}/{db}/settings",
            get(database_form::edit_form).post(database_form::save),
        )
        .route("/ui/database/{ws}/{db}/check", post(database_check::check))
        .route(
            "/ui/database/{ws}/{db}/readonly-role",
            post(database_check::create_role),
        )
        .route("/ui/backup-now/{ws}/{db}", post(backups::backup_now))
        .route("/ui/verify-backup/{ws}", post(backups::verify))
        .route(
            "/ui/restore/{ws}/{id}",
            get(restore::form).post(restore::restore),
        )
        .route("/ui/audit/verify", post(audit::verify))
        .route("/ui/state/{ws}/{*name}", get(state::show))
        .route(
            "/ui/unlock/{ws}/{*name}",
            get(state::confirm_unlock).post(state::unlock),
        )
        .route("/ui/keep/{ws}/{*name}", post(state::keep))
        .route(
            "/ui/delete/{ws}/{*name}",
            get(deleted::confirm_delete).post(deleted::delete),
        )
        .route("/ui/deleted", get(deleted::list))
        .route("/ui/deleted/restore", post(deleted::restore))
        .route("/ui/deleted/purge", post(deleted::purge))
        .route("/ui/diff/{ws}/{*name}", get(diff::show))
        .route(
            "/ui/rollback/{ws}/{*name}",
            get(diff::confirm_rollback).post(diff::rollback),
        )
        .route("/ui/users", get(users::list).post(users::create))
        .route("/ui/users/{name}", get(user::show).post(user::act))
        .route("/ui/tokens", get(tokens::list).post(tokens::create))
        .route(
            "/ui/tokens/{id}/revoke",
            get(tokens::confirm_revoke).post(tokens::revoke),
        )
        .route("/ui/s3-keys", get(s3_keys::list).post(s3_keys::create))
        .route(
            "/ui/s3-keys/{ws}/{access_key_id}/revoke",
            get(s3_keys::confirm_revoke).post(s3_keys::revoke),
        )
        .route(
            "/ui/workspaces",
            get(workspaces::list).post(workspaces::create),
        )
        .route(
            "/ui/workspaces/{ws}",
            get(workspace_settings::show).post(workspace_settings::save),
        )
        .route(
            "/ui/workspaces/{ws}/members",
            get(members::list).post(members::set),
        )
        .route(
            "/ui/workspaces/{ws}/members/{user}/remove",
            post(members::remove),
        )
        .route(
            "/ui/workspaces/{ws}/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/ui/workspaces/{ws}/webhooks/{id}",
            get(webhook::show).post(webhook::change),
        )
        .route(
            "/ui/workspaces/{ws}/webhooks/{id}/ping",
            post(webhook::ping),
        )
        .route(
            "/ui/workspaces/{ws}/webhooks/{id}/delete",
            get(webhook::confirm_delete).post(webhook::delete),
        )
        .route(
            "/ui/workspaces/{ws}/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(webhook::redeliver),
        )
        // A workspace's backup configuration: storage targets, notifiers, encryption.
        .route(
            "/ui/workspaces/{ws}/targets",
            get(targets::list).post(targets::create),
        )
        .route(
            "/ui/workspaces/{ws}/targets/{name}",
            get(target::show).post(target::change),
        )
        .route(
            "/ui/workspaces/{ws}/targets/{name}/test",
            post(target::test),
        )
        .route(
            "/ui/workspaces/{ws}/targets/{name}/delete",
            get(target::confirm_delete).post(target::delete),
        )
        .route(
            "/ui/workspaces/{ws}/notifiers",
            get(notifiers::list).post(notifiers::create),
        )
        .route(
            "/ui/workspaces/{ws}/notifiers/{name}",
            get(notifier::show).post(notifier::change),
        )
        .route(
            "/ui/workspaces/{ws}/notifiers/{name}/test",
            post(notifier::test),
        )
        .route(
            "/ui/workspaces/{ws}/notifiers/{name}/delete",
            get(notifier::confirm_delete).post(notifier::delete),
        )
        .route(
            "/ui/workspaces/{ws}/backup-encryption",
            get(encryption::show).post(encryption::change),
        )
        .route(
            "/ui/workspaces/{ws}/backup-encryption/export",
            post(encryption::export),
        )
        .layer(axum::middleware::map_response(protect))
}

/// Headers on every UI response: the CSP, no framing, no sniffing, no referrer to other sites;
/// pages (which carry the CSRF token) are never cached.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
