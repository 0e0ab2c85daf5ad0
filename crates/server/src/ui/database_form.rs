//! `/ui/databases/{ws}/new` and `/ui/database/{ws}/{db}/settings`: the form that adds or
//! changes a database — connection (a URL or fields), one database or the whole server with
//! include/exclude, schedule (presets or cron, with the next five runs in its time zone),
//! retention (with what it would keep and delete among the existing backups), verification,
//! health checks. "Test connection" and "Preview" answer on the same page without saving;
//! "Save" goes through the same backup service as the REST API (workspace admins).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use statehouse_backup::schedule::timezone_names;
use statehouse_backup::service::{DatabaseChange, DatabaseSpec, HealthReport};
use statehouse_backup::settings::DatabaseSettings;

use super::database_settings::{DatabaseForm, preview_retention, schedule_runs};
use super::links::{database_page, new_database_form, query_escape};
use super::page::{Chrome, OrPage, Refusal, Section, UiError, UiForm, Viewer, render, see_other};
use super::states::Choice;
use crate::AppState;

/// The connection check shown on the form (and on the check page).
pub struct ReportView {
    pub reachable: bool,
    pub summary: String,
    pub error: String,
    pub server_version: String,
    pub pg_dump: String,
    pub databases: String,
    pub warnings: Vec<String>,
    pub can_write: bool,
}

impl ReportView {
    pub fn of(report: &HealthReport) -> ReportView {
        ReportView {
            reachable: report.reachable,
            summary: match (report.reachable, report.latency_ms) {
                (true, Some(ms)) => format!("reachable ({ms} ms)"),
                (true, None) => "reachable".into(),
                (false, _) => "not reachable".into(),
            },
            error: report.error.clone().unwrap_or_default(),
            server_version: report.server_version.clone().unwrap_or_default(),
            pg_dump: report.pg_dump.clone().unwrap_or_default(),
            databases: report.databases.join(", "),
            warnings: report.warnings.clone(),
            can_write: report.can_write,
        }
    }
}

/// One existing backup under the retention being edited.
pub struct VerdictRow {
    pub id: String,
    pub database: String,
    pub finished: String,
    pub size: String,
    pub kept_by: String,
    pub deleted_because: String,
}

#[derive(Template)]
#[template(path = "database_form.html")]
struct DatabaseFormPage {
    chrome: Chrome,
    heading: String,
    workspace: String,
    back: String,
    action: String,
    is_new: bool,
    has_password: bool,
    form: DatabaseForm,
    targets: Vec<Choice>,
    sslmodes: Vec<Choice>,
    schedules: Vec<Choice>,
    weekdays: Vec<Choice>,
    timezones: Vec<&'static str>,
    error: String,
    notice: String,
    runs: Vec<String>,
    runs_error: String,
    verdicts: Vec<VerdictRow>,
    retention_note: String,
    report: Option<ReportView>,
    role_helper: String,
}

fn form_of(ws: &str, db: &str) -> String {
    format!("{}/settings", database_page(ws, db))
}

/// What a render of the form shows besides the fields.
#[derive(Default)]
struct Outcome {
    status: Option<StatusCode>,
    error: String,
    notice: String,
    report: Option<ReportView>,
}

impl Outcome {
    fn refused(refusal: Refusal) -> Outcome {
        Outcome {
            status: Some(refusal.status),
            error: refusal.message,
            ..Outcome::default()
        }
    }
}

/// Renders the form for a new database (`existing` none) or a registered one.
async fn render_form(
    app: &AppState,
    viewer: &Viewer,
    uri: &Uri,
    ws: &str,
    existing: Option<&str>,
    form: DatabaseForm,
    outcome: Outcome,
) -> Result<Response, UiError> {
    let targets = app
        .backups
        .list_targets(&viewer.who, ws)
        .await
        .or_page(viewer)?;
    let current = match existing {
        Some(db) => Some(
            app.backups
                .database(&viewer.who, ws, db)
                .await
                .or_page(viewer)?,
        ),
        None => None,
    };
    let now = app.services.now();
    let (runs, runs_error) = schedule_runs(&form, now);
    let (verdicts, retention_note) = match &current {
        Some(db) => preview_retention(app, viewer, ws, &db.name, &form).await?,
        None => (
            Vec::new(),
            "Once backups exist, this shows which of them each rule keeps.".into(),
        ),
    };
    // Passwords typed (alone or in the URL) are never sent back in the page.
    let (url, url_had_password) = without_password(&form.url);
    let unsaved = !form.password.is_empty() || url_had_password;
    let data = DatabaseFormPage {
        chrome: Chrome::signed_in(
            viewer,
            match &current {
                Some(db) => format!("Settings of {}", db.name),
                None => "Add a database".into(),
            },
            uri,
            Section::Backups,
        ),
        heading: match &current {
            Some(db) => format!("Settings of {}", db.name),
            None => format!("Add a database to {ws}"),
        },
        workspace: ws.to_owned(),
        back: match &current {
            Some(db) => database_page(ws, &db.name),
            None => format!("/ui/backups?ws={}", query_escape(ws)),
        },
        action: match &current {
            Some(db) => form_of(ws, &db.name),
            None => new_database_form(ws),
        },
        is_new: current.is_none(),
        has_password: current.as_ref().is_some_and(|db| db.has_password),
        targets: targets
            .iter()
            .map(|t| Choice {
                value: t.name.clone(),
                label: format!("{} ({})", t.name, t.kind),
                selected: t.name == form.target,
            })
            .collect(),
        sslmodes: form.sslmode_choices(),
        schedules: form.schedule_choices(),
        weekdays: form.weekday_choices(),
        timezones: timezone_names().collect(),
        error: outcome.error,
        notice: if unsaved && outcome.notice.is_empty() {
            "Nothing is saved yet. The password is not kept between previews: type it again before saving.".into()
        } else {
            outcome.notice
        },
        runs,
        runs_error,
        verdicts,
        retention_note,
        report: outcome.report,
        role_helper: match &current {
            Some(db) => format!("{}#readonly-role", database_page(ws, &db.name)),
            None => String::new(),
        },
        form: DatabaseForm {
            password: String::new(),
            url,
            ..form
        },
    };
    Ok(render(outcome.status.unwrap_or(StatusCode::OK), &data))
}

/// `url` without the password of its user part (`postgres://user:secret@host` →
/// `postgres://user@host`), and whether it had one.
fn without_password(url: &str) -> (String, bool) {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return (url.to_owned(), false);
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (url.to_owned(), false);
    };
    match rest[..at].find(':') {
        Some(colon) => (
            format!("{}{}{}", &url[..scheme_end], &rest[..colon], &rest[at..]),
            true,
        ),
        None => (url.to_owned(), false),
    }
}

/// `GET /ui/databases/{ws}/new`.
pub async fn new_form(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path(ws): Path<String>,
) -> Result<Response, UiError> {
    app.backups
        .require_admin(&viewer.who, &ws, "adding databases")
        .await
        .or_page(&viewer)?;
    render_form(
        &app,
        &viewer,
        &uri,
        &ws,
        None,
        DatabaseForm::blank(),
        Outcome::default(),
    )
    .await
}

/// `GET /ui/database/{ws}/{db}/settings`.
pub async fn edit_form(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path((ws, db)): Path<(String, String)>,
) -> Result<Response, UiError> {
    app.backups
        .require_admin(&viewer.who, &ws, "changing databases")
        .await
        .or_page(&viewer)?;
    let current = app
        .backups
        .database(&viewer.who, &ws, &db)
        .await
        .or_page(&viewer)?;
    let form = DatabaseForm::of(&current);
    render_form(
        &app,
        &viewer,
        &uri,
        &ws,
        Some(&db),
        form,
        Outcome::default(),
    )
    .await
}

/// The connection check of "Test connection".
async fn test(
    app: &AppState,
    viewer: &Viewer,
    ws: &str,
    existing: Option<&str>,
    settings: &DatabaseSettings,
    password: Option<String>,
) -> Result<Outcome, UiError> {
    match app
        .backups
        .test_connection(&viewer.who, ws, settings, password, existing)
        .await
    {
        Ok(report) => Ok(Outcome {
            notice: if report.reachable {
                "Connection tested; nothing is saved yet.".into()
            } else {
                String::new()
            },
            report: Some(ReportView::of(&report)),
            ..Outcome::default()
        }),
        Err(e) => Ok(Outcome::refused(Refusal::of(e, viewer)?)),
    }
}

/// `POST /ui/databases/{ws}/new`: test, preview or save a new database.
pub async fn create(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path(ws): Path<String>,
    UiForm(viewer, form): UiForm<DatabaseForm>,
) -> Result<Response, UiError> {
    let parsed = form.settings(None);
    let outcome = match (form.intent.as_str(), parsed) {
        (_, Err(refusal)) => Outcome::refused(refusal),
        ("test", Ok((settings, password))) => {
            test(&app, &viewer, &ws, None, &settings, password).await?
        }
        ("save", Ok((settings, password))) => {
            let spec = DatabaseSpec {
                name: form.name.trim().to_owned(),
                target: form.target.clone(),
                settings,
                password,
                enabled: form.enabled.is_some(),
            };
            match app.backups.create_database(&viewer.who, &ws, spec).await {
                Ok(created) => {
                    return see_other(&format!(
                        "{}?done=created",
                        database_page(&ws, &created.name)
                    ));
                }
                Err(e) => Outcome::refused(Refusal::of(e, &viewer)?),
            }
        }
        (_, Ok(_)) => Outcome::default(),
    };
    render_form(&app, &viewer, &uri, &ws, None, form, outcome).await
}

/// `POST /ui/database/{ws}/{db}/settings`: test, preview or save a registered database.
pub async fn save(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path((ws, db)): Path<(String, String)>,
    UiForm(viewer, form): UiForm<DatabaseForm>,
) -> Result<Response, UiError> {
    let current = app
        .backups
        .database(&viewer.who, &ws, &db)
        .await
        .or_page(&viewer)?;
    let parsed = form.settings(Some(&current.settings));
    let outcome = match (form.intent.as_str(), parsed) {
        (_, Err(refusal)) => Outcome::refused(refusal),
        ("test", Ok((settings, password))) => {
            test(&app, &viewer, &ws, Some(&db), &settings, password).await?
        }
        ("save", Ok((settings, password))) => {
            let change = DatabaseChange {
                name: Some(form.name.trim().to_owned()).filter(|n| *n != current.name),
                target: Some(form.target.clone()).filter(|t| *t != current.target),
                settings: (settings != current.settings).then_some(settings),
                password: if form.remove_password.is_some() {
                    Some(None)
                } else {
                    password.map(Some)
                },
                enabled: Some(form.enabled.is_some()),
            };
            match app
                .backups
                .update_database(&viewer.who, &ws, &db, change)
                .await
            {
                Ok(updated) => {
                    return see_other(&format!("{}?done=saved", database_page(&ws, &updated.name)));
                }
                Err(e) => Outcome::refused(Refusal::of(e, &viewer)?),
            }
        }
        (_, Ok(_)) => Outcome::default(),
    };
    render_form(&app, &viewer, &uri, &ws, Some(&db), form, outcome).await
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn typed_passwords_are_not_sent_back() {
        assert_eq!(
            without_password("postgres://app:s3cr%40t@db:5432/shop?sslmode=require"),
            ("postgres://app@db:5432/shop?sslmode=require".into(), true)
        );
        assert_eq!(
            without_password("postgres://app@db/shop"),
            ("postgres://app@db/shop".into(), false)
        );
        assert_eq!(
            without_password("postgres://db/shop?options=a@b"),
            ("postgres://db/shop?options=a@b".into(), false)
        );
        assert_eq!(without_password("not a url"), ("not a url".into(), false));
    }
}
