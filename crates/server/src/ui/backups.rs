//! `/ui/backups?ws=`: a workspace's PostgreSQL databases with health and their last backup;
//! `/ui/database/{ws}/{db}`: one database — uptime, a strip of health checks, charts of backup
//! size and duration, the backup history (refreshing while a backup runs) — with "back up
//! now" and "verify". Through the same backup service as the REST API.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Deserialize;
use statehouse_backup::service::{BackupView, DatabaseView};
use statehouse_core::access::Role;
use statehouse_core::clock::Timestamp;

use super::chart::{self, Bar, Check};
use super::database_check::DEFAULT_BACKUP_ROLE;
use super::database_form::ReportView;
use super::format::{ago, duration, size};
use super::links::{database_page, new_database_form, query_escape};
use super::page::{Chrome, NoFields, OrPage, Section, UiError, UiForm, Viewer, page, see_other};
use super::states::Choice;
use crate::AppState;

/// Backups shown (and charted) on a database's page.
const HISTORY: i64 = 30;
/// Health checks in the strip.
const CHECKS: i64 = 60;

/// "3 min ago" for an RFC 3339 time from a view.
fn ago_text(now: Timestamp, rfc3339: Option<&str>) -> String {
    rfc3339
        .and_then(|t| Timestamp::parse_rfc3339(t).ok())
        .map_or_else(String::new, |t| ago(now, t))
}

pub struct DatabaseRow {
    pub name: String,
    pub href: String,
    pub health: String,
    pub checked: String,
    pub target: String,
    pub last_status: String,
    pub last_age: String,
    pub last_size: String,
    pub next: String,
}

#[derive(Template)]
#[template(path = "backups.html")]
struct BackupsPage {
    chrome: Chrome,
    workspaces: Vec<Choice>,
    workspace: String,
    rows: Vec<DatabaseRow>,
    /// The form to add a database (workspace admins), or empty.
    add_href: String,
}

#[derive(Debug, Deserialize)]
pub struct BackupsQuery {
    ws: Option<String>,
}

/// `GET /ui/backups`.
pub async fn list(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Query(q): Query<BackupsQuery>,
) -> Result<Response, UiError> {
    let workspaces = app
        .services
        .list_workspaces(&viewer.who)
        .await
        .or_page(&viewer)?;
    let ws =
        q.ws.or_else(|| workspaces.first().map(|(w, _)| w.name.clone()))
            .unwrap_or_default();
    let databases = app
        .backups
        .list_databases(&viewer.who, &ws)
        .await
        .or_page(&viewer)?;
    let now = app.services.now();
    let mut rows = Vec::new();
    for db in &databases {
        let last = app
            .backups
            .list_backups(&viewer.who, &ws, Some(&db.name), None, None, None, 1)
            .await
            .or_page(&viewer)?;
        let last = last.first();
        rows.push(DatabaseRow {
            name: db.name.clone(),
            href: database_page(&ws, &db.name),
            health: db.health.clone(),
            checked: ago_text(now, db.last_check_at.as_deref()),
            target: db.target.clone(),
            last_status: last.map_or_else(|| "never".into(), |b| b.status.clone()),
            last_age: last.map_or_else(String::new, |b| {
                ago_text(now, b.finished_at.as_deref().or(Some(&b.queued_at)))
            }),
            last_size: last
                .and_then(|b| b.stored_bytes)
                .map_or_else(String::new, size),
            next: db.next_backup_at.clone().unwrap_or_else(|| "—".into()),
        });
    }
    let is_admin = workspaces
        .iter()
        .any(|(w, role)| w.name == ws && *role == Role::Admin);
    page(&BackupsPage {
        chrome: Chrome::signed_in(&viewer, "Backups", &uri, Section::Backups),
        add_href: if is_admin {
            new_database_form(&ws)
        } else {
            String::new()
        },
        workspaces: workspaces
            .iter()
            .map(|(w, _)| Choice {
                value: w.name.clone(),
                label: w.name.clone(),
                selected: w.name == ws,
            })
            .collect(),
        workspace: ws,
        rows,
    })
}

pub struct RunRow {
    pub id: String,
    pub status: String,
    pub trigger: String,
    pub queued: String,
    pub took: String,
    pub size: String,
    pub verified: String,
    pub error: String,
    pub download: String,
    pub restore: String,
    pub done: bool,
    /// A running backup: bytes stored so far, and the share of the last backup's size
    /// (an estimate) when one exists.
    pub progress: String,
    pub percent: Option<u8>,
}

/// The backup history region (refreshed while something runs).
pub struct History {
    pub runs: Vec<RunRow>,
    pub active: bool,
    pub csrf: String,
    /// The database's name (the verify form returns to its page).
    pub database: String,
    pub verify_action: String,
    pub can_run: bool,
    pub can_download: bool,
    /// Changes settings, creates the read-only role.
    pub can_admin: bool,
}

#[derive(Template)]
#[template(path = "database.html")]
struct DatabasePage {
    chrome: Chrome,
    workspace: String,
    db: DatabaseView,
    connection: String,
    schedule: String,
    notice: &'static str,
    uptime: [String; 3],
    checks_svg: String,
    size_svg: String,
    duration_svg: String,
    history: History,
    partial: String,
    backup_action: String,
    back: String,
    can_admin: bool,
    settings_href: String,
    check_action: String,
    role_action: String,
    role_helper: String,
    default_role: &'static str,
    /// The check run right after the database was added (its privileges, above all).
    report: Option<ReportView>,
}

#[derive(Template)]
#[template(path = "database_partial.html")]
struct DatabasePartial {
    history: History,
}

#[derive(Debug, Deserialize)]
pub struct DatabaseQuery {
    done: Option<String>,
}

async fn history(
    app: &AppState,
    viewer: &Viewer,
    ws: &str,
    db: &str,
) -> Result<(History, Vec<BackupView>), UiError> {
    let (workspace, _) = app
        .services
        .workspace_for(&viewer.who, ws)
        .await
        .or_page(viewer)?;
    let runs = app
        .backups
        .list_backups(&viewer.who, ws, Some(db), None, None, None, HISTORY)
        .await
        .or_page(viewer)?;
    let now = app.services.now();
    // A running backup is measured against the last one of the same database.
    let last_size = |db_name: &Option<String>| {
        runs.iter()
            .find(|r| r.status == "succeeded" && &r.db_name == db_name)
            .and_then(|r| r.stored_bytes)
            .filter(|n| *n > 0)
    };
    let rows = runs
        .iter()
        .map(|b| RunRow {
            progress: match (b.status.as_str(), b.stored_bytes) {
                ("running", Some(n)) => format!("{} stored so far", size(n)),
                ("running", None) => "starting".into(),
                _ => String::new(),
            },
            percent: match (b.status.as_str(), b.stored_bytes, last_size(&b.db_name)) {
                ("running", Some(n), Some(last)) => {
                    Some(u8::try_from((n.saturating_mul(100) / last).min(99)).unwrap_or(99))
                }
                _ => None,
            },
            id: b.id.clone(),
            status: b.status.clone(),
            trigger: b.trigger.clone(),
            queued: ago_text(now, Some(&b.queued_at)),
            took: match (b.duration_ms, b.started_at.as_deref()) {
                (Some(ms), _) => duration(ms / 1_000).replace("0 s", "<1 s"),
                (None, Some(started)) => format!("running for {}", {
                    let text = ago_text(now, Some(started));
                    text.trim_end_matches(" ago").to_owned()
                }),
                _ => String::new(),
            },
            size: if b.status == "running" {
                String::new()
            } else {
                b.stored_bytes.map_or_else(String::new, size)
            },
            verified: match (b.verification_ok, &b.verification_level) {
                (Some(true), Some(level)) => format!("ok ({level})"),
                (Some(false), _) => "failed".into(),
                _ => String::new(),
            },
            error: b.error.clone().unwrap_or_default(),
            download: format!(
                "/api/v1/workspaces/{}/backups/{}/object",
                query_escape(ws),
                query_escape(&b.id)
            ),
            restore: format!("/ui/restore/{}/{}", query_escape(ws), query_escape(&b.id)),
            done: b.status == "succeeded",
        })
        .collect();
    Ok((
        History {
            active: runs
                .iter()
                .any(|b| b.status == "queued" || b.status == "running"),
            runs: rows,
            csrf: viewer.csrf.clone(),
            database: db.to_owned(),
            verify_action: format!("/ui/verify-backup/{}", query_escape(ws)),
            can_run: viewer.can(&workspace.id, Role::Editor),
            can_download: viewer.can(&workspace.id, Role::Admin),
            can_admin: viewer.can(&workspace.id, Role::Admin),
        },
        runs,
    ))
}

/// Uptime as the service gives it: a percentage already.
fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "—".into(), |v| format!("{v:.2} %"))
}

/// `GET /ui/database/{ws}/{db}`.
pub async fn show(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path((ws, key)): Path<(String, String)>,
    Query(q): Query<DatabaseQuery>,
) -> Result<Response, UiError> {
    let db = app
        .backups
        .database(&viewer.who, &ws, &key)
        .await
        .or_page(&viewer)?;
    let (uptime, checks) = app
        .backups
        .health_history(&viewer.who, &ws, &db.name, None, CHECKS)
        .await
        .or_page(&viewer)?;
    let (history, runs) = history(&app, &viewer, &ws, &db.name).await?;
    // Right after adding a database: check it at once, so a role that can write is seen.
    let report = match q.done.as_deref() {
        Some("created") => Some(ReportView::of(
            &app.backups
                .check_database(&viewer.who, &ws, &db.name)
                .await
                .or_page(&viewer)?,
        )),
        _ => None,
    };
    let here = database_page(&ws, &db.name);
    let can_admin = history.can_admin;
    let succeeded: Vec<&BackupView> = runs
        .iter()
        .rev()
        .filter(|b| b.status == "succeeded")
        .collect();
    let size_bars: Vec<Bar> = succeeded
        .iter()
        .map(|b| Bar {
            value: b.stored_bytes.unwrap_or(0) as f64,
            label: format!(
                "{}: {}",
                b.finished_at.as_deref().unwrap_or(""),
                size(b.stored_bytes.unwrap_or(0))
            ),
        })
        .collect();
    let duration_bars: Vec<Bar> = succeeded
        .iter()
        .map(|b| Bar {
            value: b.duration_ms.unwrap_or(0) as f64,
            label: format!(
                "{}: {} ms",
                b.finished_at.as_deref().unwrap_or(""),
                b.duration_ms.unwrap_or(0)
            ),
        })
        .collect();
    let strip: Vec<Check> = checks
        .iter()
        .rev()
        .map(|c| Check {
            ok: c.ok,
            label: match &c.error {
                Some(e) => format!("{}: down — {e}", c.at),
                None => format!("{}: up", c.at),
            },
        })
        .collect();
    let c = &db.settings.connection;
    let page_data = DatabasePage {
        chrome: Chrome::signed_in(&viewer, db.name.clone(), &uri, Section::Backups),
        workspace: ws.clone(),
        connection: format!("{}@{}:{}/{}", c.user, c.host, c.port, c.database),
        schedule: db.settings.schedule.as_ref().map_or_else(
            || "none: backups run only when asked".into(),
            |s| s.describe(),
        ),
        notice: match q.done.as_deref() {
            Some("queued") => {
                "Backup queued: it starts as soon as a worker is free; this page follows it."
            }
            Some("verified") => "Verification finished: see the backup's row.",
            Some("created") => "The database was added. Its first check is below.",
            Some("saved") => "The settings were saved.",
            _ => "",
        },
        uptime: [
            percent(uptime.last_24h),
            percent(uptime.last_7d),
            percent(uptime.last_30d),
        ],
        checks_svg: chart::checks("health checks, oldest first", &strip),
        size_svg: chart::bars("backup size, oldest first", &size_bars, |v| size(v as i64)),
        duration_svg: chart::bars("backup duration, oldest first", &duration_bars, |v| {
            format!("{:.1} s", v / 1_000.0)
        }),
        history,
        partial: format!(
            "/ui/partials/database/{}/{}",
            query_escape(&ws),
            query_escape(&db.name)
        ),
        backup_action: format!(
            "/ui/backup-now/{}/{}",
            query_escape(&ws),
            query_escape(&db.name)
        ),
        back: format!("/ui/backups?ws={}", query_escape(&ws)),
        can_admin,
        settings_href: format!("{here}/settings"),
        check_action: format!("{here}/check"),
        role_action: format!("{here}/readonly-role"),
        role_helper: "#readonly-role".into(),
        default_role: DEFAULT_BACKUP_ROLE,
        report,
        db,
    };
    page(&page_data)
}

/// `GET /ui/partials/database/{ws}/{db}`: the history region alone.
pub async fn partial(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    Path((ws, db)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let (history, _) = history(&app, &viewer, &ws, &db).await?;
    page(&DatabasePartial { history })
}

/// `POST /ui/backup-now/{ws}/{db}`: queues a backup (editors), as `POST …/backups?wait=false`;
/// the database's page follows its progress.
pub async fn backup_now(
    State(app): State<Arc<AppState>>,
    Path((ws, db)): Path<(String, String)>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    app.backups
        .queue_backup(&viewer.who, &ws, &db)
        .await
        .or_page(&viewer)?;
    see_other(&format!("{}?done=queued", database_page(&ws, &db)))
}

#[derive(Deserialize)]
pub struct VerifyForm {
    id: String,
    database: String,
}

/// `POST /ui/verify-backup/{ws}`: verifies a backup now (editors), as `POST …/verify`.
pub async fn verify(
    State(app): State<Arc<AppState>>,
    Path(ws): Path<String>,
    UiForm(viewer, form): UiForm<VerifyForm>,
) -> Result<Response, UiError> {
    let backups = app.backups.clone();
    let (who, ws_name, id) = (viewer.who.clone(), ws.clone(), form.id.clone());
    app.backups
        .detached(async move { backups.verify_backup(&who, &ws_name, &id).await })
        .await
        .or_page(&viewer)?;
    see_other(&format!(
        "{}?done=verified",
        database_page(&ws, &form.database)
    ))
}
