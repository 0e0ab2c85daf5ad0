//! `/ui/workspaces/{ws}/targets/{name}`: one storage target — its public settings, which
//! secrets are set, the databases backed up to it — and, for workspace admins, "Test
//! connection" (the outcome on the page), the change form (a secret left empty is kept; moving
//! where secrets go needs them again, as the service says) and deletion after a confirmation.
//! As `/api/v1/workspaces/{ws}/targets/{name}…`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::access::Role;

use super::config_form::{
    DeletePage, Fact, FieldView, Posted, Shown, Tested, facts, fields, kind_named, settings_of,
};
use super::links::{target_page, targets_of};
use super::page::{
    Chrome, NoFields, OrPage, Refusal, Section, UiError, UiForm, Viewer, page, render, see_other,
};
use super::target_kinds::TARGET_KINDS;
use super::targets::{databases_by_target, databases_of};
use crate::AppState;

#[derive(Template)]
#[template(path = "target.html")]
struct TargetPage {
    chrome: Chrome,
    workspace: String,
    list_href: String,
    name: String,
    kind: String,
    kind_label: &'static str,
    facts: Vec<Fact>,
    databases: String,
    created: String,
    updated: String,
    can_manage: bool,
    base: String,
    /// The change form's name field.
    new_name: String,
    fields: Vec<FieldView>,
    /// The kind has secret settings (changing where they go needs them again).
    has_secrets: bool,
    tested: Option<Tested>,
    notice: &'static str,
    error: String,
}

/// What the page shows besides the target.
#[derive(Default)]
struct Extras<'a> {
    notice: &'static str,
    tested: Option<Tested>,
    refusal: Option<Refusal>,
    typed: Option<&'a Posted>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TargetQuery {
    done: Option<String>,
}

/// `GET /ui/workspaces/{ws}/targets/{name}`.
pub async fn show(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path((ws, name)): Path<(String, String)>,
    Query(q): Query<TargetQuery>,
) -> Result<Response, UiError> {
    let notice = match q.done.as_deref() {
        Some("created") => {
            "The storage target was added. Nothing was contacted yet: try \"Test connection\"."
        }
        Some("saved") => "The storage target was saved.",
        _ => "",
    };
    let extras = Extras {
        notice,
        ..Extras::default()
    };
    render_page(&app, viewer, &uri, (&ws, &name), extras).await
}

async fn render_page(
    app: &AppState,
    viewer: Viewer,
    uri: &Uri,
    (ws, key): (&str, &str),
    extras: Extras<'_>,
) -> Result<Response, UiError> {
    let target = app
        .backups
        .target(&viewer.who, ws, key)
        .await
        .or_page(&viewer)?;
    let (_, role) = app
        .services
        .workspace_for(&viewer.who, ws)
        .await
        .or_page(&viewer)?;
    let by_target = databases_by_target(app, &viewer, ws).await?;
    let kind = kind_named(TARGET_KINDS, &target.kind);
    let (status, error) = match extras.refusal {
        Some(r) => (r.status, r.message),
        None => (StatusCode::OK, String::new()),
    };
    let shown = Shown {
        stored: Some((&target.settings, &target.secrets_set)),
        typed: extras.typed,
    };
    let data = TargetPage {
        chrome: Chrome::signed_in(
            &viewer,
            format!("Storage target {}", target.name),
            uri,
            Section::Backups,
        ),
        workspace: ws.to_owned(),
        list_href: targets_of(ws),
        kind_label: kind.map_or("", |k| k.label),
        facts: facts(kind, &target.settings, &target.secrets_set),
        databases: databases_of(&by_target, &target.name),
        created: target.created_at.clone(),
        updated: target.updated_at.clone(),
        can_manage: role >= Role::Admin,
        base: target_page(ws, &target.name),
        new_name: extras
            .typed
            .map_or_else(|| target.name.clone(), |t| t.get("name").to_owned()),
        fields: kind.map_or_else(Vec::new, |k| fields(k, &shown)),
        has_secrets: kind.is_some_and(|k| k.settings.iter().any(|s| s.input.is_secret())),
        tested: extras.tested,
        notice: extras.notice,
        error,
        kind: target.kind,
        name: target.name,
    };
    Ok(render(status, &data))
}

/// `POST /ui/workspaces/{ws}/targets/{name}`: saves the change form, as `PATCH
/// …/targets/{name}` with the full settings (secrets left empty are kept).
pub async fn change(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path((ws, key)): Path<(String, String)>,
    UiForm(viewer, posted): UiForm<Posted>,
) -> Result<Response, UiError> {
    let current = app
        .backups
        .target(&viewer.who, &ws, &key)
        .await
        .or_page(&viewer)?;
    let new_name = posted.get("name").trim();
    let rename = (!new_name.is_empty() && new_name != current.name).then(|| new_name.to_owned());
    let saved = match kind_named(TARGET_KINDS, &current.kind) {
        Some(kind) => match settings_of(kind, &posted, &current.secrets_set) {
            Ok(settings) => {
                app.backups
                    .update_target(&viewer.who, &ws, &key, rename, Some(settings))
                    .await
            }
            Err(e) => Err(e),
        },
        None => {
            app.backups
                .update_target(&viewer.who, &ws, &key, rename, None)
                .await
        }
    };
    match saved {
        Ok(target) => see_other(&format!("{}?done=saved", target_page(&ws, &target.name))),
        Err(e) => {
            let refusal = Refusal::of(e, &viewer)?;
            let extras = Extras {
                refusal: Some(refusal),
                typed: Some(&posted),
                ..Extras::default()
            };
            render_page(&app, viewer, &uri, (&ws, &key), extras).await
        }
    }
}

/// `POST /ui/workspaces/{ws}/targets/{name}/test`: writes, reads back and deletes a probe
/// object (workspace admins), as `POST …/test`; the outcome is shown on the target's page.
pub async fn test(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path((ws, key)): Path<(String, String)>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    let outcome = app
        .backups
        .test_target(&viewer.who, &ws, &key)
        .await
        .or_page(&viewer)?;
    let extras = Extras {
        tested: Some(Tested::of(
            &outcome,
            "statehouse wrote, read back and deleted a test file",
        )),
        ..Extras::default()
    };
    render_page(&app, viewer, &uri, (&ws, &key), extras).await
}

/// `GET /ui/workspaces/{ws}/targets/{name}/delete`: what will be deleted, and the button
/// (workspace admins).
pub async fn confirm_delete(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path((ws, key)): Path<(String, String)>,
) -> Result<Response, UiError> {
    app.backups
        .require_admin(&viewer.who, &ws, "deleting a storage target")
        .await
        .or_page(&viewer)?;
    let target = app
        .backups
        .target(&viewer.who, &ws, &key)
        .await
        .or_page(&viewer)?;
    let by_target = databases_by_target(&app, &viewer, &ws).await?;
    let databases = databases_of(&by_target, &target.name);
    let warning = if databases.is_empty() {
        "statehouse forgets the target and its secrets; backups already stored there stay where \
         they are. It is refused while the target holds backups statehouse knows of."
            .to_owned()
    } else {
        format!(
            "Databases are still backed up to it ({databases}): move them to another target \
             first, or the deletion is refused."
        )
    };
    let base = target_page(&ws, &target.name);
    page(&DeletePage {
        chrome: Chrome::signed_in(&viewer, "Delete a storage target", &uri, Section::Backups),
        what: "storage target",
        facts: facts(
            kind_named(TARGET_KINDS, &target.kind),
            &target.settings,
            &target.secrets_set,
        ),
        name: target.name,
        workspace: ws,
        warning,
        action: format!("{base}/delete"),
        back: base,
    })
}

/// `POST /ui/workspaces/{ws}/targets/{name}/delete`: as `DELETE …/targets/{name}`; refused
/// (on the target's page) while databases or backups use it.
pub async fn delete(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path((ws, key)): Path<(String, String)>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    match app.backups.delete_target(&viewer.who, &ws, &key).await {
        Ok(()) => see_other(&format!("{}?done=deleted", targets_of(&ws))),
        Err(e) => {
            let extras = Extras {
                refusal: Some(Refusal::of(e, &viewer)?),
                ..Extras::default()
            };
            render_page(&app, viewer, &uri, (&ws, &key), extras).await
        }
    }
}
