//! `/ui/workspaces/{ws}`: a workspace's policies — version retention, the stale-lock
//! threshold, serial protection — editable by its admins, read-only for everyone else. As
//! `GET`/`PATCH /api/v1/workspaces/{ws}`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::access::Role;
use statehouse_core::model::Workspace;
use statehouse_core::workspaces::WorkspaceChange;

use super::format::{duration, utc};
use super::links::{members_of, states_of, webhooks_of, workspace_page};
use super::page::{Chrome, OrPage, Refusal, Section, UiError, UiForm, Viewer, render, see_other};
use super::states::Choice;
use super::workspaces::retention_text;
use crate::AppState;

/// Units a duration may be typed in, largest first.
const UNITS: [(&str, i64); 4] = [
    ("days", 86_400_000),
    ("hours", 3_600_000),
    ("minutes", 60_000),
    ("seconds", 1_000),
];

/// The settings form's fields, as typed (empty: the policy is off).
#[derive(Debug, Default, Deserialize)]
pub struct SettingsForm {
    serial_protection: Option<String>,
    #[serde(default)]
    keep_versions: String,
    #[serde(default)]
    keep_for: String,
    #[serde(default)]
    keep_for_unit: String,
    #[serde(default)]
    stale_after: String,
    #[serde(default)]
    stale_after_unit: String,
    #[serde(default)]
    lock_wait: String,
    #[serde(default)]
    lock_wait_unit: String,
}

impl SettingsForm {
    fn of(ws: &Workspace) -> SettingsForm {
        let (keep_for, keep_for_unit) = split(ws.settings.keep_versions_for_millis);
        let (stale_after, stale_after_unit) = split(ws.settings.stale_lock_after_millis);
        let (lock_wait, lock_wait_unit) = split(ws.settings.lock_wait_millis);
        SettingsForm {
            serial_protection: ws.serial_protection.then(|| "on".into()),
            keep_versions: ws
                .settings
                .keep_versions
                .map_or(String::new(), |n| n.to_string()),
            keep_for,
            keep_for_unit,
            stale_after,
            stale_after_unit,
            lock_wait,
            lock_wait_unit,
        }
    }

    /// The change the form asks for: every policy set to what the form says.
    fn change(&self) -> Result<WorkspaceChange, Refusal> {
        let keep_versions = match self.keep_versions.trim() {
            "" => None,
            n => Some(n.parse::<i64>().map_err(|_| {
                Refusal::bad_input(format!(
                    "keep versions: {n:?} is not a whole number (leave it empty to keep every version)"
                ))
            })?),
        };
        Ok(WorkspaceChange {
            name: None,
            serial_protection: Some(self.serial_protection.is_some()),
            keep_versions: Some(keep_versions),
            keep_versions_for_millis: Some(millis(
                &self.keep_for,
                &self.keep_for_unit,
                "keep versions for",
            )?),
            stale_lock_after_millis: Some(millis(
                &self.stale_after,
                &self.stale_after_unit,
                "stale lock after",
            )?),
            lock_wait_millis: Some(millis(
                &self.lock_wait,
                &self.lock_wait_unit,
                "LOCK waits for",
            )?),
        })
    }
}

/// A duration in milliseconds as a number in its largest whole unit.
fn split(millis: Option<i64>) -> (String, String) {
    match millis {
        None => (String::new(), "hours".into()),
        Some(ms) => {
            let (unit, size) = UNITS
                .iter()
                .find(|(_, size)| ms % size == 0)
                .copied()
                .unwrap_or(("seconds", 1_000));
            ((ms / size).to_string(), unit.into())
        }
    }
}

fn millis(value: &str, unit: &str, what: &str) -> Result<Option<i64>, Refusal> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let size = UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .map(|(_, size)| *size)
        .ok_or_else(|| Refusal::bad_input(format!("{what}: unknown unit {unit:?}")))?;
    match value.parse::<i64>() {
        Ok(n) => Ok(Some(n.saturating_mul(size))),
        Err(_) => Err(Refusal::bad_input(format!(
            "{what}: {value:?} is not a whole number (leave it empty to turn the policy off)"
        ))),
    }
}

fn unit_choices(current: &str) -> Vec<Choice> {
    UNITS
        .iter()
        .map(|(u, _)| Choice {
            value: (*u).into(),
            label: (*u).into(),
            selected: *u == current,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "workspace.html")]
struct WorkspacePage {
    chrome: Chrome,
    access_at: &'static str,
    name: String,
    role: String,
    created: String,
    serial_protection: bool,
    retention: String,
    stale_after: String,
    lock_wait: String,
    can_edit: bool,
    action: String,
    form: SettingsForm,
    keep_for_units: Vec<Choice>,
    stale_after_units: Vec<Choice>,
    lock_wait_units: Vec<Choice>,
    states: String,
    members: String,
    webhooks: String,
    notice: &'static str,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct SettingsQuery {
    done: Option<String>,
}

/// `GET /ui/workspaces/{ws}`.
pub async fn show(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path(ws): Path<String>,
    Query(q): Query<SettingsQuery>,
) -> Result<Response, UiError> {
    let notice = match q.done.as_deref() {
        Some("created") => "The workspace was created.",
        Some("saved") => "The settings were saved.",
        _ => "",
    };
    render_page(&app, viewer, &uri, &ws, notice, None, None).await
}

async fn render_page(
    app: &AppState,
    viewer: Viewer,
    uri: &Uri,
    ws: &str,
    notice: &'static str,
    refusal: Option<Refusal>,
    typed: Option<SettingsForm>,
) -> Result<Response, UiError> {
    let (workspace, role) = app
        .services
        .workspace_for(&viewer.who, ws)
        .await
        .or_page(&viewer)?;
    let admin = role == Role::Admin;
    let form = typed.unwrap_or_else(|| SettingsForm::of(&workspace));
    let (status, error) = match refusal {
        Some(r) => (r.status, r.message),
        None => (StatusCode::OK, String::new()),
    };
    let settings = &workspace.settings;
    let data = WorkspacePage {
        chrome: Chrome::signed_in(
            &viewer,
            format!("Workspace {}", workspace.name),
            uri,
            Section::Access,
        ),
        access_at: "workspaces",
        role: role.to_string(),
        created: utc(workspace.created_at),
        serial_protection: workspace.serial_protection,
        retention: retention_text(settings.keep_versions, settings.keep_versions_for_millis),
        stale_after: settings
            .stale_lock_after_millis
            .map_or("never".into(), |ms| duration(ms / 1_000)),
        lock_wait: settings.lock_wait_millis.map_or(
            "no: a LOCK on a locked state fails at once (unless its address has lock_wait)".into(),
            |ms| duration(ms / 1_000),
        ),
        can_edit: admin,
        action: workspace_page(&workspace.name),
        keep_for_units: unit_choices(&form.keep_for_unit),
        stale_after_units: unit_choices(&form.stale_after_unit),
        lock_wait_units: unit_choices(&form.lock_wait_unit),
        form,
        states: states_of(&workspace.name),
        members: if admin {
            members_of(&workspace.name)
        } else {
            String::new()
        },
        webhooks: if admin {
            webhooks_of(&workspace.name)
        } else {
            String::new()
        },
        notice,
        error,
        name: workspace.name,
    };
    Ok(render(status, &data))
}

/// `POST /ui/workspaces/{ws}`: saves the policies (workspace admins), as `PATCH
/// /api/v1/workspaces/{ws}` with every policy given.
pub async fn save(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path(ws): Path<String>,
    UiForm(viewer, form): UiForm<SettingsForm>,
) -> Result<Response, UiError> {
    let change = match form.change() {
        Ok(change) => change,
        Err(refusal) => {
            return render_page(&app, viewer, &uri, &ws, "", Some(refusal), Some(form)).await;
        }
    };
    match app
        .services
        .change_workspace(&viewer.who, &ws, &change)
        .await
    {
        Ok(updated) => {
            tracing::info!(
                workspace = updated.name,
                by = viewer.who.actor(),
                "workspace settings changed (UI)"
            );
            see_other(&format!("{}?done=saved", workspace_page(&updated.name)))
        }
        Err(e) => {
            let refusal = Refusal::of(e, &viewer)?;
            render_page(&app, viewer, &uri, &ws, "", Some(refusal), Some(form)).await
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_show_in_their_largest_whole_unit_and_read_back() {
        assert_eq!(split(Some(7_200_000)), ("2".into(), "hours".into()));
        assert_eq!(split(Some(90_000)), ("90".into(), "seconds".into()));
        assert_eq!(split(Some(3 * 86_400_000)), ("3".into(), "days".into()));
        assert_eq!(split(None), (String::new(), "hours".into()));
        assert_eq!(millis("2", "hours", "x").ok().unwrap(), Some(7_200_000));
        assert_eq!(millis(" ", "hours", "x").ok().unwrap(), None);
        assert!(millis("2h", "hours", "x").is_err());
        assert!(millis("2", "weeks", "x").is_err());
    }
}
