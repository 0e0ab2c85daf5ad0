//! `/`: what needs attention now — locks held (stale and oldest first), databases that are
//! down, backups and verifications that failed this week, states changed in the last 24
//! hours — across every workspace the viewer can read.
//! The region refreshes itself from `/ui/partials/overview`.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use statehouse_backup::service::BackupView;
use statehouse_core::access::Role;
use statehouse_core::clock::Timestamp;
use statehouse_core::events::{Event, kind};
use statehouse_core::history::lock_is_stale;
use statehouse_core::model::{StateFilter, Workspace};

use super::format::{ago, utc};
use super::links::{database_page, state_page};
use super::page::{Chrome, OrPage, Section, UiError, Viewer, page};
use crate::AppState;

/// Most rows a section lists (the states page has them all).
const SECTION_ROWS: usize = 20;
/// States read per workspace and section.
const PER_WORKSPACE: i64 = 100;
const DAY_MILLIS: i64 = 86_400_000;

pub struct LockRow {
    pub workspace: String,
    pub state: String,
    pub href: String,
    pub holder: String,
    pub operation: String,
    pub age: String,
    pub stale: bool,
    age_millis: i64,
}

pub struct ChangeRow {
    pub workspace: String,
    pub state: String,
    pub href: String,
    pub version: i64,
    pub writer: String,
    pub when: String,
    at: i64,
}

/// A backup that failed, or whose latest verification failed, in the last week.
pub struct FailureRow {
    pub workspace: String,
    pub database: String,
    pub href: String,
    pub what: &'static str,
    pub when: String,
    pub error: String,
    at: i64,
}

pub struct DatabaseRow {
    pub workspace: String,
    pub name: String,
    pub failures: i64,
    pub since: String,
    pub error: String,
}

/// One recent event (the same events webhooks and `GET /api/v1/events` carry).
pub struct EventRow {
    pub kind: String,
    /// `ok`, `bad` or `warn`, for the badge.
    pub tone: &'static str,
    pub subject: String,
    pub href: String,
    pub actor: String,
    pub when: String,
}

/// Events shown.
const RECENT_EVENTS: usize = 12;

fn event_row(e: &Event, now: Timestamp) -> EventRow {
    let tone = match e.kind.as_str() {
        kind::BACKUP_FAILED
        | kind::VERIFICATION_FAILED
        | kind::DATABASE_DOWN
        | kind::LOCK_STALE
        | kind::LOCK_FORCE_UNLOCKED => "bad",
        kind::BACKUP_SUCCEEDED | kind::VERIFICATION_SUCCEEDED | kind::DATABASE_UP => "ok",
        _ => "warn",
    };
    let href = match (&e.workspace, &e.subject) {
        (Some(ws), Some(subject))
            if e.kind.starts_with("state.") || e.kind.starts_with("lock.") =>
        {
            state_page(ws, subject)
        }
        (Some(ws), Some(subject))
            if ["backup.", "verification.", "database."]
                .iter()
                .any(|p| e.kind.starts_with(p)) =>
        {
            database_page(ws, subject)
        }
        _ => String::new(),
    };
    EventRow {
        kind: e.kind.clone(),
        tone,
        subject: match (&e.workspace, &e.subject) {
            (Some(ws), Some(subject)) => format!("{ws}/{subject}"),
            (Some(ws), None) => ws.clone(),
            (None, subject) => subject.clone().unwrap_or_default(),
        },
        href,
        actor: e.actor.clone(),
        when: ago(now, e.at),
    }
}

/// The refreshing region.
pub struct OverviewBody {
    pub locks: Vec<LockRow>,
    pub more_locks: usize,
    pub changes: Vec<ChangeRow>,
    pub databases_down: Vec<DatabaseRow>,
    pub failures: Vec<FailureRow>,
    pub events: Vec<EventRow>,
    pub workspaces: usize,
    pub as_of: String,
}

/// A workspace's locks, changes, databases down and backup failures.
type News = (
    Vec<LockRow>,
    Vec<ChangeRow>,
    Vec<DatabaseRow>,
    Vec<FailureRow>,
);

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    body: OverviewBody,
}

#[derive(Template)]
#[template(path = "overview_partial.html")]
struct OverviewPartial {
    body: OverviewBody,
}

/// `GET /`.
pub async fn show(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Response, UiError> {
    let body = gather(&app, &viewer).await?;
    page(&OverviewPage {
        chrome: Chrome::signed_in(&viewer, "Overview", &uri, Section::Overview),
        body,
    })
}

/// `GET /ui/partials/overview`: the region alone, for the page's refresh.
pub async fn partial(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
) -> Result<Response, UiError> {
    let body = gather(&app, &viewer).await?;
    page(&OverviewPartial { body })
}

/// Backups looked at per workspace for failures (the newest ones).
const RECENT_BACKUPS: i64 = 50;
const WEEK_MILLIS: i64 = 7 * DAY_MILLIS;

/// One workspace's news: what is failing, locked or changed (four reads at once).
async fn workspace_news(
    app: &AppState,
    viewer: &Viewer,
    ws: &Workspace,
    now: Timestamp,
) -> Result<News, UiError> {
    let services = &app.services;
    let locked = StateFilter {
        locked: Some(true),
        limit: Some(PER_WORKSPACE),
        tolerate_lag: true,
        ..StateFilter::default()
    };
    let recent = StateFilter {
        changed_since: Some(now.plus_millis(-DAY_MILLIS)),
        recently_changed_first: true,
        limit: Some(SECTION_ROWS as i64),
        tolerate_lag: true,
        ..StateFilter::default()
    };
    let (held, changed, databases, backups) = futures::join!(
        services.list_states(&viewer.who, &ws.name, &locked),
        services.list_states(&viewer.who, &ws.name, &recent),
        app.backups.list_databases(&viewer.who, &ws.name),
        app.backups.list_backups(
            &viewer.who,
            &ws.name,
            None,
            None,
            None,
            None,
            RECENT_BACKUPS
        ),
    );
    let (_, held) = held.or_page(viewer)?;
    let (_, changed) = changed.or_page(viewer)?;
    let mut locks = Vec::new();
    for state in &held {
        let Some(lock) = &state.lock else { continue };
        let info: serde_json::Value = serde_json::from_str(&lock.info).unwrap_or_default();
        locks.push(LockRow {
            workspace: ws.name.clone(),
            state: state.name.clone(),
            href: state_page(&ws.name, &state.name),
            holder: lock.holder.clone(),
            operation: info
                .get("Operation")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned(),
            age: ago(now, lock.locked_at),
            stale: lock_is_stale(ws, lock.locked_at, now),
            age_millis: now.millis() - lock.locked_at.millis(),
        });
    }
    let changes = changed
        .iter()
        .filter_map(|state| {
            let current = state.current.as_ref()?;
            Some(ChangeRow {
                workspace: ws.name.clone(),
                state: state.name.clone(),
                href: state_page(&ws.name, &state.name),
                version: current.version_no,
                writer: current.created_by.clone(),
                when: ago(now, current.created_at),
                at: current.created_at.millis(),
            })
        })
        .collect();
    // A failure to list databases (a backup store problem) must not hide the states' news.
    let down = databases
        .map(|all| {
            all.into_iter()
                .filter(|d| d.health == "down")
                .map(|d| DatabaseRow {
                    workspace: ws.name.clone(),
                    name: d.name,
                    failures: d.consecutive_failures,
                    since: d.health_changed_at.unwrap_or_default(),
                    error: d.last_check_error.unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let failures = backups
        .map(|all| failures_of(&ws.name, &all, now))
        .unwrap_or_default();
    Ok((locks, changes, down, failures))
}

/// Failed backups and failed verifications of the last week, from the newest backups.
fn failures_of(ws: &str, backups: &[BackupView], now: Timestamp) -> Vec<FailureRow> {
    let since = now.millis() - WEEK_MILLIS;
    let mut out = Vec::new();
    for b in backups {
        let time = |t: Option<&str>| t.and_then(|t| Timestamp::parse_rfc3339(t).ok());
        let (what, at, error) = if b.status == "failed" {
            let at = time(b.finished_at.as_deref()).or(time(Some(&b.queued_at)));
            ("backup failed", at, b.error.clone().unwrap_or_default())
        } else if b.verification_ok == Some(false) {
            (
                "verification failed",
                time(b.verified_at.as_deref()),
                String::new(),
            )
        } else {
            continue;
        };
        let Some(at) = at.filter(|t| t.millis() >= since) else {
            continue;
        };
        out.push(FailureRow {
            workspace: ws.to_owned(),
            href: database_page(ws, &b.database),
            database: b.database.clone(),
            what,
            when: ago(now, at),
            error,
            at: at.millis(),
        });
    }
    out
}

async fn gather(app: &AppState, viewer: &Viewer) -> Result<OverviewBody, UiError> {
    let services = &app.services;
    let now = services.now();
    let workspaces = services
        .list_workspaces(&viewer.who)
        .await
        .or_page(viewer)?;
    // Every workspace at once: the page's time is the slowest workspace's, not their sum.
    let news = futures::future::try_join_all(
        workspaces
            .iter()
            .filter(|(_, role)| *role >= Role::Viewer)
            .map(|(ws, _)| workspace_news(app, viewer, ws, now)),
    )
    .await?;
    let mut locks = Vec::new();
    let mut changes = Vec::new();
    let mut databases_down = Vec::new();
    let mut failures = Vec::new();
    for (l, c, d, f) in news {
        locks.extend(l);
        changes.extend(c);
        databases_down.extend(d);
        failures.extend(f);
    }
    failures.sort_by_key(|f| std::cmp::Reverse(f.at));
    failures.truncate(SECTION_ROWS);
    // Stale first, then the oldest: those are the ones someone must look at.
    locks.sort_by(|a, b| b.stale.cmp(&a.stale).then(b.age_millis.cmp(&a.age_millis)));
    let more_locks = locks.len().saturating_sub(SECTION_ROWS);
    locks.truncate(SECTION_ROWS);
    changes.sort_by_key(|c| std::cmp::Reverse(c.at));
    changes.truncate(SECTION_ROWS);
    let events = services
        .recent_events(&viewer.who, RECENT_EVENTS)
        .await
        .or_page(viewer)?
        .iter()
        .map(|e| event_row(e, now))
        .collect();
    Ok(OverviewBody {
        events,
        locks,
        more_locks,
        changes,
        databases_down,
        failures,
        workspaces: workspaces.len(),
        as_of: utc(now),
    })
}
