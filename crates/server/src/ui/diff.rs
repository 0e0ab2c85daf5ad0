//! `/ui/diff/{ws}/{name}`: two versions side by side (resources added, removed and changed
//! with attribute paths and both values; outputs), and `/ui/rollback/{ws}/{name}`: the same
//! comparison as the confirmation of a rollback, which says exactly what will change.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::Error;
use statehouse_core::statefile::StateKind;
use statehouse_core::tfstate::StateDiff;

use super::format::json_value;
use super::links::{state_action, state_page};
use super::page::{Chrome, OrPage, Section, UiError, UiForm, Viewer, page, see_other};
use crate::AppState;

/// Values longer than this are cut on the page (the versions can be downloaded whole).
const VALUE_CHARS: usize = 300;

pub struct InstanceRow {
    pub address: String,
    pub provider: String,
}

pub struct AttributeRow {
    pub path: String,
    pub before: String,
    pub after: String,
    /// Terraform marked the value sensitive (shown only to workspace admins).
    pub sensitive: bool,
}

pub struct ChangedRow {
    pub address: String,
    pub status: String,
    pub attributes: Vec<AttributeRow>,
}

/// A [`StateDiff`] as the page shows it.
pub struct DiffView {
    /// Two Pulumi checkpoints: URNs, property paths, secrets.
    pub pulumi: bool,
    pub from_serial: i64,
    pub to_serial: i64,
    pub from_resources: u64,
    pub to_resources: u64,
    pub lineage_changed: bool,
    pub added: Vec<InstanceRow>,
    pub removed: Vec<InstanceRow>,
    pub changed: Vec<ChangedRow>,
    pub unchanged: u64,
    pub outputs: Vec<AttributeRow>,
}

/// A value as sent by the diff service (which masks sensitive values already unless the
/// viewer may see them).
fn shown(value: Option<&serde_json::Value>) -> String {
    value.map_or("(absent)".into(), |v| json_value(v, VALUE_CHARS))
}

impl DiffView {
    fn of(diff: &StateDiff) -> DiffView {
        let pulumi = diff.kind == StateKind::Pulumi;
        let instance = |i: &statehouse_core::tfstate::InstanceRef| InstanceRow {
            address: match &i.deposed {
                Some(_) if pulumi => format!("{} (replaced, awaiting deletion)", i.address),
                Some(key) => format!("{} (deposed {key})", i.address),
                None => i.address.clone(),
            },
            provider: i.provider.clone(),
        };
        let mut outputs = Vec::new();
        for o in &diff.outputs.added {
            outputs.push(AttributeRow {
                path: o.name.clone(),
                before: "(absent)".into(),
                after: shown(Some(&o.value)),
                sensitive: o.sensitive,
            });
        }
        for o in &diff.outputs.removed {
            outputs.push(AttributeRow {
                path: o.name.clone(),
                before: shown(Some(&o.value)),
                after: "(absent)".into(),
                sensitive: o.sensitive,
            });
        }
        for o in &diff.outputs.changed {
            outputs.push(AttributeRow {
                path: o.name.clone(),
                before: shown(Some(&o.before)),
                after: shown(Some(&o.after)),
                sensitive: o.sensitive,
            });
        }
        DiffView {
            pulumi,
            from_serial: diff.before.serial,
            to_serial: diff.after.serial,
            from_resources: diff.before.resource_instances,
            to_resources: diff.after.resource_instances,
            lineage_changed: diff.before.lineage != diff.after.lineage,
            added: diff.added.iter().map(instance).collect(),
            removed: diff.removed.iter().map(instance).collect(),
            changed: diff
                .changed
                .iter()
                .map(|c| ChangedRow {
                    address: instance(&c.instance).address,
                    status: c.status.as_ref().map_or(String::new(), |s| {
                        format!(
                            "status {} → {}",
                            s.before.as_deref().unwrap_or("ready"),
                            s.after.as_deref().unwrap_or("ready")
                        )
                    }),
                    attributes: c
                        .attributes
                        .iter()
                        .map(|a| AttributeRow {
                            path: a.path.clone(),
                            before: shown(a.before.as_ref()),
                            after: shown(a.after.as_ref()),
                            sensitive: a.sensitive,
                        })
                        .collect(),
                })
                .collect(),
            unchanged: diff.unchanged,
            outputs,
        }
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.outputs.is_empty()
    }
}

#[derive(Template)]
#[template(path = "diff.html")]
struct DiffPage {
    chrome: Chrome,
    workspace: String,
    name: String,
    state_href: String,
    from: i64,
    to: i64,
    diff: DiffView,
    no_changes: bool,
    /// Set on the rollback confirmation: where the button posts.
    rollback_action: String,
    csrf: String,
    current: i64,
}

impl DiffPage {
    /// The comparison of versions `from` and `to`; with `rollback_from` (the current version),
    /// the confirmation of a rollback to `to`.
    fn new(
        viewer: &Viewer,
        uri: &Uri,
        ws: &str,
        name: &str,
        title: String,
        (from, to, diff): (i64, i64, &StateDiff),
        rollback_from: Option<i64>,
    ) -> DiffPage {
        let view = DiffView::of(diff);
        DiffPage {
            chrome: Chrome::signed_in(viewer, title, uri, Section::States),
            workspace: ws.to_owned(),
            name: name.to_owned(),
            state_href: state_page(ws, name),
            from,
            to,
            no_changes: view.is_empty(),
            diff: view,
            rollback_action: rollback_from
                .map_or_else(String::new, |_| state_action("rollback", ws, name)),
            csrf: viewer.csrf.clone(),
            current: rollback_from.unwrap_or(0),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct DiffQuery {
    from: Option<i64>,
    to: Option<i64>,
}

/// `GET /ui/diff/{ws}/{name}?from=&to=` (defaults: the current version and the one before).
pub async fn show(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path((ws, name)): Path<(String, String)>,
    Query(q): Query<DiffQuery>,
) -> Result<Response, UiError> {
    let (from, to, diff) = app
        .services
        .diff_versions(&viewer.who, &ws, &name, q.from, q.to)
        .await
        .or_page(&viewer)?;
    page(&DiffPage::new(
        &viewer,
        &uri,
        &ws,
        &name,
        format!("{name}: version {from} → {to}"),
        (from, to, &diff),
        None,
    ))
}

#[derive(Debug, Deserialize)]
pub struct RollbackQuery {
    version: i64,
}

/// `GET /ui/rollback/{ws}/{name}?version=N`: what rolling back to version N changes (the
/// current version compared with N), and the button that does it.
pub async fn confirm_rollback(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path((ws, name)): Path<(String, String)>,
    Query(q): Query<RollbackQuery>,
) -> Result<Response, UiError> {
    let (_, record) = app
        .services
        .state_detail(&viewer.who, &ws, &name)
        .await
        .or_page(&viewer)?;
    let current = record.current.as_ref().map_or(0, |c| c.version_no);
    if q.version == current {
        return Err(UiError::new(
            Error::BadRequest(format!(
                "version {} is already the current version",
                q.version
            )),
            viewer.theme,
        ));
    }
    let (from, to, diff) = app
        .services
        .diff_versions(&viewer.who, &ws, &name, Some(current), Some(q.version))
        .await
        .or_page(&viewer)?;
    page(&DiffPage::new(
        &viewer,
        &uri,
        &ws,
        &name,
        format!("Roll back {name} to version {to}?"),
        (from, to, &diff),
        Some(current),
    ))
}

#[derive(Deserialize)]
pub struct RollbackForm {
    version: i64,
    /// The current version the confirmation showed: if another write came since, the
    /// comparison the user agreed to is stale and is shown again instead.
    current: i64,
}

/// `POST /ui/rollback/{ws}/{name}`: as `POST /api/v1/…/rollback` (editors; audited).
pub async fn rollback(
    State(app): State<Arc<AppState>>,
    Path((ws, name)): Path<(String, String)>,
    UiForm(viewer, form): UiForm<RollbackForm>,
) -> Result<Response, UiError> {
    let (_, record) = app
        .services
        .state_detail(&viewer.who, &ws, &name)
        .await
        .or_page(&viewer)?;
    if record.current.as_ref().map(|c| c.version_no) != Some(form.current) {
        return see_other(&format!(
            "{}?version={}",
            state_action("rollback", &ws, &name),
            form.version
        ));
    }
    app.services
        .rollback(&viewer.who, &ws, &name, form.version)
        .await
        .or_page(&viewer)?;
    see_other(&format!("{}?done=rolled-back", state_page(&ws, &name)))
}
