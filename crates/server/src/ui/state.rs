//! `/ui/state/{ws}/{name}`: one state — its current version, outputs, lock, version timeline
//! and the backend block to use it (`pulumi login` for a Pulumi stack) — and the lock and
//! retention actions taken from there.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::access::Role;
use statehouse_core::model::{StateRecord, VersionMeta, Workspace};
use statehouse_core::objects::stack_of;

use super::format::{ago, json_value, size, utc};
use super::links::{query_escape, s3_keys_of, state_action, state_page, version_download};
use super::page::{Chrome, OrPage, Section, UiError, UiForm, Viewer, page, see_other};
use super::pulumi::{PulumiLogin, browser_host};
use super::resources::ResourcesPanel;
use crate::AppState;
use crate::api::lock_queue::QueuedLockView;
use crate::api::views::LockView;
use crate::auth::ClientHttps;

/// Versions per page of the timeline.
const VERSIONS_PAGE: i64 = 20;

pub struct Facts {
    pub version: i64,
    pub serial: i64,
    pub lineage: String,
    pub size: String,
    pub resources: String,
    pub writer: String,
    pub client_version: String,
    pub written: String,
    pub written_ago: String,
    pub md5: String,
    pub client_encrypted: bool,
}

impl Facts {
    fn of(v: &VersionMeta, now: statehouse_core::clock::Timestamp) -> Facts {
        Facts {
            version: v.version_no,
            serial: v.serial,
            lineage: v.lineage.clone(),
            size: size(v.size),
            resources: v.resource_count.map_or("unknown".into(), |n| n.to_string()),
            writer: v.created_by.clone(),
            client_version: v.client_version.clone().unwrap_or_else(|| "—".into()),
            written: utc(v.created_at),
            written_ago: ago(now, v.created_at),
            md5: v.md5.clone(),
            client_encrypted: v.client_encrypted,
        }
    }
}

pub struct OutputRow {
    pub name: String,
    pub value: String,
    pub sensitive: bool,
}

/// A Pulumi stack's page: Pulumi's words, and `pulumi login` in place of the backend block.
pub struct StackView {
    pub project: String,
    pub stack: String,
    pub login: PulumiLogin,
    /// The S3 keys page, showing the workspace's keys.
    pub s3_keys: String,
}

pub struct VersionRow {
    pub version: i64,
    pub serial: i64,
    pub writer: String,
    pub written: String,
    pub written_ago: String,
    pub size: String,
    pub resources: String,
    pub forced: bool,
    pub kept: bool,
    pub current: bool,
    pub download: String,
    pub rollback: String,
    pub diff_previous: String,
}

#[derive(Template)]
#[template(path = "state.html")]
struct StatePage {
    chrome: Chrome,
    /// LOCK requests waiting in line for the lock.
    queue: Vec<QueuedLockView>,
    workspace: String,
    name: String,
    notice: &'static str,
    facts: Option<Facts>,
    outputs: Vec<OutputRow>,
    outputs_note: String,
    resources: ResourcesPanel,
    lock: Option<LockView>,
    lock_since: String,
    can_unlock: bool,
    can_roll_back: bool,
    can_keep: bool,
    can_delete: bool,
    delete_page: String,
    deleted_href: String,
    versions: Vec<VersionRow>,
    older_versions: String,
    newest_versions: String,
    diff_action: String,
    keep_action: String,
    unlock_page: String,
    states_href: String,
    here: String,
    address: String,
    /// Set for a Pulumi stack.
    stack: Option<StackView>,
}

#[derive(Debug, Deserialize)]
pub struct StateQuery {
    /// Show versions older than this one.
    before: Option<i64>,
    /// What was just done (a fixed message is shown).
    done: Option<String>,
    /// Only resources whose address contains this.
    #[serde(default)]
    resources: String,
    /// The resources panel's page.
    rcursor: Option<String>,
}

/// `GET /ui/state/{ws}/{name}`.
pub async fn show(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    headers: HeaderMap,
    ClientHttps(https): ClientHttps,
    Path((ws, name)): Path<(String, String)>,
    Query(q): Query<StateQuery>,
) -> Result<Response, UiError> {
    let services = &app.services;
    let now = services.now();
    let (workspace, record) = services
        .state_detail(&viewer.who, &ws, &name)
        .await
        .or_page(&viewer)?;
    let versions = services
        .list_versions(&viewer.who, &ws, &name, q.before, VERSIONS_PAGE)
        .await
        .or_page(&viewer)?;
    let (outputs, outputs_note) = outputs_of(&app, &viewer, &workspace, &record).await;
    let resources = ResourcesPanel::load(
        &app,
        &viewer.who,
        &workspace.name,
        &record.name,
        &q.resources,
        q.rcursor.as_deref(),
    )
    .await
    .or_page(&viewer)?;
    let current_no = record.current.as_ref().map(|c| c.version_no);
    let can_roll_back = viewer.can(&workspace.id, Role::Editor);
    let rows = versions
        .iter()
        .map(|v| VersionRow {
            version: v.version_no,
            serial: v.serial,
            writer: v.created_by.clone(),
            written: utc(v.created_at),
            written_ago: ago(now, v.created_at),
            size: size(v.size),
            resources: v.resource_count.map_or("—".into(), |n| n.to_string()),
            forced: v.forced,
            kept: v.kept,
            current: Some(v.version_no) == current_no,
            download: version_download(&workspace.name, &record.name, v.version_no),
            rollback: format!(
                "{}?version={}",
                state_action("rollback", &workspace.name, &record.name),
                v.version_no
            ),
            diff_previous: if v.version_no > 1 {
                format!(
                    "{}?from={}&to={}",
                    state_action("diff", &workspace.name, &record.name),
                    v.version_no - 1,
                    v.version_no
                )
            } else {
                String::new()
            },
        })
        .collect::<Vec<_>>();
    let older_versions = match versions.last() {
        Some(last) if versions.len() as i64 == VERSIONS_PAGE && last.version_no > 1 => format!(
            "{}?before={}#versions",
            state_page(&workspace.name, &record.name),
            last.version_no
        ),
        _ => String::new(),
    };
    let newest_versions = if q.before.is_some() {
        format!("{}#versions", state_page(&workspace.name, &record.name))
    } else {
        String::new()
    };
    let lock = record
        .lock
        .as_ref()
        .map(|l| LockView::new(l, &workspace, now));
    let queue = match &lock {
        Some(_) => services
            .lock_queue(&viewer.who, &workspace.name, &record.name)
            .await
            .or_page(&viewer)?
            .iter()
            .enumerate()
            .map(|(i, q)| QueuedLockView::new(i + 1, q, now.millis()))
            .collect(),
        None => Vec::new(),
    };
    let page_data = StatePage {
        chrome: Chrome::signed_in(&viewer, record.name.clone(), &uri, Section::States),
        workspace: workspace.name.clone(),
        name: record.name.clone(),
        notice: notice(q.done.as_deref()),
        facts: record.current.as_ref().map(|c| Facts::of(c, now)),
        outputs,
        outputs_note,
        resources,
        lock_since: record
            .lock
            .as_ref()
            .map_or(String::new(), |l| utc(l.locked_at)),
        lock,
        can_unlock: viewer.can(&workspace.id, Role::Admin),
        can_roll_back,
        can_keep: viewer.can(&workspace.id, Role::Admin),
        can_delete: viewer.can(&workspace.id, Role::Admin),
        delete_page: state_action("delete", &workspace.name, &record.name),
        deleted_href: format!("/ui/deleted?ws={}", query_escape(&workspace.name)),
        versions: rows,
        older_versions,
        newest_versions,
        diff_action: state_action("diff", &workspace.name, &record.name),
        keep_action: state_action("keep", &workspace.name, &record.name),
        unlock_page: state_action("unlock", &workspace.name, &record.name),
        states_href: super::links::states_of(&workspace.name),
        here: state_page(&workspace.name, &record.name),
        address: backend_address(&headers, https, &workspace.name, &record.name),
        queue,
        stack: stack_of(&record.name).map(|(project, stack)| StackView {
            project: project.to_owned(),
            stack: stack.to_owned(),
            login: PulumiLogin::new(app.s3_endpoint, app.s3_tls, &headers, &workspace.name),
            s3_keys: s3_keys_of(&workspace.name),
        }),
    };
    page(&page_data)
}

/// The current outputs (sensitive ones masked unless the viewer is a workspace admin, as the
/// API does), or why there are none to show.
async fn outputs_of(
    app: &AppState,
    viewer: &Viewer,
    workspace: &Workspace,
    record: &StateRecord,
) -> (Vec<OutputRow>, String) {
    let Some(current) = &record.current else {
        return (Vec::new(), "The state has no versions yet.".into());
    };
    if current.client_encrypted {
        return (
            Vec::new(),
            "This state is encrypted by the client (OpenTofu): statehouse cannot read its outputs."
                .into(),
        );
    }
    match app
        .services
        .current_outputs(&viewer.who, &workspace.name, &record.name)
        .await
    {
        Ok((_, outputs)) if outputs.is_empty() => (Vec::new(), "No outputs.".into()),
        Ok((_, outputs)) => (
            outputs
                .into_iter()
                .map(|o| OutputRow {
                    name: o.name,
                    value: json_value(&o.value, 400),
                    sensitive: o.sensitive,
                })
                .collect(),
            String::new(),
        ),
        Err(e) => (Vec::new(), format!("Outputs cannot be shown: {e}")),
    }
}

fn notice(done: Option<&str>) -> &'static str {
    match done {
        Some("unlocked") => "The lock was released.",
        Some("rolled-back") => {
            "Rolled back: the chosen version is now the current one, as a new version."
        }
        Some("kept") => "The version is now kept by retention.",
        Some("released") => "The version may be removed by retention again.",
        _ => "",
    }
}

/// The state's backend address as this browser reached statehouse (over HTTPS when it did,
/// directly or through a trusted proxy).
fn backend_address(headers: &HeaderMap, https: bool, ws: &str, name: &str) -> String {
    let host = browser_host(headers).unwrap_or("statehouse.example.com");
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{host}/tf/{ws}/{name}")
}

#[derive(Template)]
#[template(path = "unlock.html")]
struct UnlockPage {
    chrome: Chrome,
    workspace: String,
    name: String,
    lock: LockView,
    lock_since: String,
    action: String,
    back: String,
}

/// `GET /ui/unlock/{ws}/{name}`: who holds the lock, and a button to force it open.
pub async fn confirm_unlock(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path((ws, name)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let (workspace, record) = app
        .services
        .state_detail(&viewer.who, &ws, &name)
        .await
        .or_page(&viewer)?;
    let back = state_page(&workspace.name, &record.name);
    let Some(held) = &record.lock else {
        return see_other(&back);
    };
    let page_data = UnlockPage {
        chrome: Chrome::signed_in(&viewer, "Force-unlock", &uri, Section::States),
        workspace: workspace.name.clone(),
        name: record.name.clone(),
        lock: LockView::new(held, &workspace, app.services.now()),
        lock_since: utc(held.locked_at),
        action: state_action("unlock", &workspace.name, &record.name),
        back,
    };
    page(&page_data)
}

#[derive(Deserialize)]
pub struct UnlockForm {
    /// The lock ID the page showed: a lock taken again since is not released blindly.
    lock_id: String,
}

/// `POST /ui/unlock/{ws}/{name}`: force-unlock (workspace admins), as
/// `DELETE /api/v1/workspaces/{ws}/states/{name}/lock`.
pub async fn unlock(
    State(app): State<Arc<AppState>>,
    Path((ws, name)): Path<(String, String)>,
    UiForm(viewer, form): UiForm<UnlockForm>,
) -> Result<Response, UiError> {
    let (_, record) = app
        .services
        .state_detail(&viewer.who, &ws, &name)
        .await
        .or_page(&viewer)?;
    match &record.lock {
        Some(held) if held.id == form.lock_id => {
            app.services
                .force_unlock(&viewer.who, &ws, &name)
                .await
                .or_page(&viewer)?;
            see_other(&format!("{}?done=unlocked", state_page(&ws, &name)))
        }
        // Released or taken again meanwhile: show the state as it is now.
        _ => see_other(&state_page(&ws, &name)),
    }
}

#[derive(Deserialize)]
pub struct KeepForm {
    version: i64,
    /// `true` to keep, `false` to release.
    kept: bool,
}

/// `POST /ui/keep/{ws}/{name}`: marks a version as kept by retention or releases it
/// (workspace admins), as `PUT …/versions/{n}/keep`.
pub async fn keep(
    State(app): State<Arc<AppState>>,
    Path((ws, name)): Path<(String, String)>,
    UiForm(viewer, form): UiForm<KeepForm>,
) -> Result<Response, UiError> {
    app.services
        .keep_version(&viewer.who, &ws, &name, form.version, form.kept)
        .await
        .or_page(&viewer)?;
    let done = if form.kept { "kept" } else { "released" };
    see_other(&format!("{}?done={done}#versions", state_page(&ws, &name)))
}
