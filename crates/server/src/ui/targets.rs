//! `/ui/workspaces/{ws}/targets`: a workspace's storage targets — kind, public settings and the
//! databases backed up to each — and, for its admins, the form that adds one: a form per kind
//! (`?kind=` picks it), secrets as password inputs never filled in. As `GET`/`POST
//! /api/v1/workspaces/{ws}/targets`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_backup::service::{TargetInput, TargetView};
use statehouse_backup::targets::TargetSpec;
use statehouse_core::Error;
use statehouse_core::access::Role;

use super::config_form::{
    FieldView, Kind, Posted, Shown, fields, kind_choices, kind_named, settings_of, summary,
};
use super::links::{target_page, targets_of};
use super::page::{Chrome, OrPage, Refusal, Section, UiError, UiForm, Viewer, render, see_other};
use super::states::Choice;
use super::target_kinds::TARGET_KINDS;
use crate::AppState;

pub struct TargetRow {
    pub name: String,
    pub href: String,
    pub kind: String,
    pub summary: String,
    /// Names of the databases backed up to it, comma-separated.
    pub databases: String,
}

impl TargetRow {
    pub fn of(ws: &str, t: &TargetView, databases: String) -> TargetRow {
        TargetRow {
            name: t.name.clone(),
            href: target_page(ws, &t.name),
            kind: t.kind.clone(),
            summary: summary(kind_named(TARGET_KINDS, &t.kind), &t.settings),
            databases,
        }
    }
}

/// The databases of `ws` backed up to each target, by target name.
pub async fn databases_by_target(
    app: &AppState,
    viewer: &Viewer,
    ws: &str,
) -> Result<Vec<(String, String)>, UiError> {
    let databases = app
        .backups
        .list_databases(&viewer.who, ws)
        .await
        .or_page(viewer)?;
    Ok(databases.into_iter().map(|d| (d.target, d.name)).collect())
}

/// The names of the databases backed up to `target`.
pub fn databases_of(by_target: &[(String, String)], target: &str) -> String {
    by_target
        .iter()
        .filter(|(t, _)| t == target)
        .map(|(_, db)| db.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Template)]
#[template(path = "targets.html")]
struct TargetsPage {
    chrome: Chrome,
    workspace: String,
    rows: Vec<TargetRow>,
    can_manage: bool,
    action: String,
    kinds: Vec<Choice>,
    kind: &'static Kind,
    fields: Vec<FieldView>,
    name: String,
    notice: &'static str,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    kind: Option<String>,
    done: Option<String>,
}

/// What the add form shows besides the list.
struct Draft<'a> {
    kind: &'a str,
    notice: &'static str,
    refusal: Option<Refusal>,
    typed: Option<&'a Posted>,
}

/// `GET /ui/workspaces/{ws}/targets`.
pub async fn list(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path(ws): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    let notice = match q.done.as_deref() {
        Some("deleted") => "The storage target was deleted.",
        _ => "",
    };
    let draft = Draft {
        kind: q.kind.as_deref().unwrap_or("local"),
        notice,
        refusal: None,
        typed: None,
    };
    show(&app, viewer, &uri, &ws, draft).await
}

async fn show(
    app: &AppState,
    viewer: Viewer,
    uri: &Uri,
    ws: &str,
    draft: Draft<'_>,
) -> Result<Response, UiError> {
    let targets = app
        .backups
        .list_targets(&viewer.who, ws)
        .await
        .or_page(&viewer)?;
    let (_, role) = app
        .services
        .workspace_for(&viewer.who, ws)
        .await
        .or_page(&viewer)?;
    let by_target = databases_by_target(app, &viewer, ws).await?;
    let kind = kind_named(TARGET_KINDS, draft.kind).unwrap_or(&TARGET_KINDS[0]);
    let (status, error) = match draft.refusal {
        Some(r) => (r.status, r.message),
        None => (StatusCode::OK, String::new()),
    };
    let data = TargetsPage {
        chrome: Chrome::signed_in(
            &viewer,
            format!("Storage targets of {ws}"),
            uri,
            Section::Backups,
        ),
        workspace: ws.to_owned(),
        rows: targets
            .iter()
            .map(|t| TargetRow::of(ws, t, databases_of(&by_target, &t.name)))
            .collect(),
        can_manage: role >= Role::Admin,
        action: targets_of(ws),
        kinds: kind_choices(TARGET_KINDS, kind.name),
        kind,
        fields: fields(
            kind,
            &Shown {
                stored: None,
                typed: draft.typed,
            },
        ),
        name: draft
            .typed
            .map_or_else(String::new, |t| t.get("name").to_owned()),
        notice: draft.notice,
        error,
    };
    Ok(render(status, &data))
}

/// The target the add form describes.
fn input_of(posted: &Posted, kind: &Kind) -> Result<TargetInput, Error> {
    let settings = settings_of(kind, posted, &[])?;
    let spec: TargetSpec = serde_json::from_value(settings).map_err(|e| {
        Error::BadRequest(format!("the {} settings are not valid: {e}", kind.label))
    })?;
    Ok(TargetInput {
        name: posted.get("name").trim().to_owned(),
        spec,
    })
}

/// `POST /ui/workspaces/{ws}/targets`: adds a target (workspace admins), as `POST
/// …/targets`; nothing is contacted until "Test connection".
pub async fn create(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path(ws): Path<String>,
    UiForm(viewer, posted): UiForm<Posted>,
) -> Result<Response, UiError> {
    let kind_name = posted.get("kind").to_owned();
    let made = match kind_named(TARGET_KINDS, &kind_name) {
        Some(kind) => match input_of(&posted, kind) {
            Ok(input) => app.backups.create_target(&viewer.who, &ws, input).await,
            Err(e) => Err(e),
        },
        None => Err(Error::BadRequest(format!(
            "unknown kind of storage target {kind_name:?}"
        ))),
    };
    match made {
        Ok(target) => {
            tracing::info!(
                workspace = ws,
                target = target.name,
                by = viewer.who.actor(),
                "storage target added (UI)"
            );
            see_other(&format!("{}?done=created", target_page(&ws, &target.name)))
        }
        Err(e) => {
            let refusal = Refusal::of(e, &viewer)?;
            let draft = Draft {
                kind: &kind_name,
                notice: "",
                refusal: Some(refusal),
                typed: Some(&posted),
            };
            show(&app, viewer, &uri, &ws, draft).await
        }
    }
}
