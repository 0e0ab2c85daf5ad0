//! `/ui/restore/{ws}/{id}`: restoring a database backup into a new database on the same server
//! or into another server's database (workspace admins), as
//! `POST /api/v1/workspaces/{ws}/backups/{id}/restore`; a backup of a whole-server run can also
//! restore the whole run — the server's roles, then every database with its owners and grants —
//! onto its own server or another one, as `POST …/backups/{id}/restore-server`. The form is the
//! confirmation: it says what happens, and a destination that already holds objects is refused
//! unless the user asks to overwrite.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Deserialize;
use statehouse_backup::service::{BackupView, RestoreRequest, RestoreView, ServerRestoreView};
use statehouse_core::Error;

use super::format::{duration, size};
use super::links::{database_page, query_escape};
use super::page::{Chrome, OrPage, Section, UiError, UiForm, Viewer, page};
use crate::AppState;

#[derive(Template)]
#[template(path = "restore.html")]
struct RestorePage {
    chrome: Chrome,
    workspace: String,
    backup: BackupView,
    size: String,
    action: String,
    back: String,
    suggested: String,
    error: String,
    /// After a restore: what happened.
    done: Option<RestoreView>,
    /// After a whole-server restore: the databases restored, by name.
    server_done: Option<ServerRestoreView>,
    server_databases: String,
    took: String,
}

async fn restore_page(
    app: &AppState,
    viewer: &Viewer,
    uri: &Uri,
    ws: &str,
    id: &str,
) -> Result<RestorePage, UiError> {
    let backup = app
        .backups
        .backup(&viewer.who, ws, id)
        .await
        .or_page(viewer)?;
    let suggested = format!(
        "{}_restored",
        backup.db_name.clone().unwrap_or_else(|| "database".into())
    );
    Ok(RestorePage {
        chrome: Chrome::signed_in(viewer, "Restore a backup", uri, Section::Backups),
        workspace: ws.to_owned(),
        size: backup.stored_bytes.map_or_else(String::new, size),
        action: format!("/ui/restore/{}/{}", query_escape(ws), query_escape(id)),
        back: database_page(ws, &backup.database),
        suggested,
        backup,
        error: String::new(),
        done: None,
        server_done: None,
        server_databases: String::new(),
        took: String::new(),
    })
}

/// `GET /ui/restore/{ws}/{id}`.
pub async fn form(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, UiError> {
    page(&restore_page(&app, &viewer, &uri, &ws, &id).await?)
}

/// What a restore did: one database, or a whole server.
enum Restored {
    Database(RestoreView),
    Server(ServerRestoreView),
}

/// The restore form. (No `Debug`: another server's URL may carry a password.)
#[derive(Deserialize)]
pub struct RestoreForm {
    /// `database` (a database on the backup's server), `url` (another server's database),
    /// `server` (the whole run onto its own server) or `server_url` (onto another server).
    into: String,
    #[serde(default)]
    database: String,
    #[serde(default)]
    url: String,
    /// Present when the user agrees to replace what the destination holds.
    overwrite: Option<String>,
}

/// `POST /ui/restore/{ws}/{id}`: runs the restore and shows its outcome (or the form again
/// with the reason it was refused).
pub async fn restore(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path((ws, id)): Path<(String, String)>,
    UiForm(viewer, form): UiForm<RestoreForm>,
) -> Result<Response, UiError> {
    let mut page_data = restore_page(&app, &viewer, &uri, &ws, &id).await?;
    let whole_server = form.into.starts_with("server");
    let (into_database, into_url) = match form.into.as_str() {
        "database" if !form.database.trim().is_empty() => {
            (Some(form.database.trim().to_owned()), None)
        }
        "url" | "server_url" if !form.url.trim().is_empty() => {
            (None, Some(form.url.trim().to_owned()))
        }
        "server" => (None, None),
        _ => {
            return Err(UiError::new(
                Error::BadRequest(
                    "choose where to restore: a database name on the same server, or another server's URL"
                        .into(),
                ),
                viewer.theme,
            ));
        }
    };
    let request = RestoreRequest {
        into_database,
        into_url,
        create: Some(true),
        clean: None,
        no_owner: None,
        jobs: None,
        identity: None,
        passphrase: None,
        overwrite: form.overwrite.is_some(),
    };
    let backups = app.backups.clone();
    let (who, ws_name, backup_id) = (viewer.who.clone(), ws.clone(), id.clone());
    let outcome = app
        .backups
        .detached(async move {
            if whole_server {
                backups
                    .restore_server(&who, &ws_name, &backup_id, request, None)
                    .await
                    .map(Restored::Server)
            } else {
                backups
                    .restore_backup(&who, &ws_name, &backup_id, request, None)
                    .await
                    .map(Restored::Database)
            }
        })
        .await;
    match outcome {
        Ok(Restored::Database(done)) => {
            page_data.took = duration((done.duration_ms / 1_000) as i64);
            page_data.done = Some(done);
        }
        Ok(Restored::Server(done)) => {
            page_data.took = duration((done.duration_ms / 1_000) as i64);
            page_data.server_databases = done
                .databases
                .iter()
                .map(|d| d.database.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            page_data.server_done = Some(done);
        }
        Err(e @ (Error::BadRequest(_) | Error::Conflict(_) | Error::Unavailable(_))) => {
            page_data.error = e.to_string();
        }
        Err(e) => return Err(UiError::new(e, viewer.theme)),
    }
    page(&page_data)
}
