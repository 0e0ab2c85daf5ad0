//! `/ui/audit`: the audit log with filters (actor, action, workspace, outcome, time), paged
//! newest first; an export of the same selection; and "verify chain" with its result.
//! Readable by whom the service lets read it (instance admins everything, workspace admins
//! their workspaces), exactly as `GET /api/v1/audit`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::Error;
use statehouse_core::audit::{AuditQuery, Outcome};
use statehouse_core::clock::Timestamp;

use super::format::utc;
use super::links::query_escape;
use super::page::{Chrome, NoFields, OrPage, Section, UiError, UiForm, Viewer, page};
use crate::AppState;

/// Entries per page.
const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct AuditForm {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    workspace: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    outcome: String,
    /// `2026-12-03T10:00` (UTC, as a date-time field sends it) or RFC 3339.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    /// Continue before this sequence number.
    cursor: Option<i64>,
}

/// A time from the form: a date-time field's value read as UTC, or RFC 3339.
fn form_time(text: &str, what: &str) -> Result<Option<Timestamp>, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = Timestamp::parse_rfc3339(text) {
        return Ok(Some(t));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(Some(Timestamp(t.and_utc().timestamp_millis())));
        }
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let start = day
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis());
        return Ok(start.map(Timestamp));
    }
    Err(Error::BadRequest(format!(
        "invalid {what} time {text:?}: use 2026-12-03T10:00 (UTC) or RFC 3339"
    )))
}

fn given(value: &str) -> Option<String> {
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

impl AuditForm {
    fn query(&self) -> Result<AuditQuery, Error> {
        Ok(AuditQuery {
            actor: given(&self.actor),
            target: given(&self.target),
            action: given(&self.action),
            workspace: given(&self.workspace),
            outcome: given(&self.outcome)
                .as_deref()
                .map(Outcome::parse)
                .transpose()?,
            since: form_time(&self.since, "since")?,
            until: form_time(&self.until, "until")?,
            cursor: self.cursor,
            newest_first: true,
            limit: PAGE,
        })
    }

    /// The filters as query parameters, times in RFC 3339 (what the API's export reads).
    fn parameters(&self, query: &AuditQuery) -> String {
        let mut fields: Vec<(&str, String)> = [
            ("actor", &self.actor),
            ("action", &self.action),
            ("workspace", &self.workspace),
            ("target", &self.target),
            ("outcome", &self.outcome),
        ]
        .iter()
        .filter_map(|(k, v)| given(v).map(|v| (*k, v)))
        .collect();
        if let Some(t) = query.since {
            fields.push(("since", t.to_rfc3339()));
        }
        if let Some(t) = query.until {
            fields.push(("until", t.to_rfc3339()));
        }
        fields
            .iter()
            .map(|(k, v)| format!("{k}={}", query_escape(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

pub struct EntryRow {
    pub seq: i64,
    pub time: String,
    pub actor: String,
    pub source_ip: String,
    pub action: String,
    pub workspace: String,
    pub target: String,
    pub outcome: &'static str,
    pub reason: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    form: AuditForm,
    rows: Vec<EntryRow>,
    next_page: String,
    export: String,
    can_verify: bool,
}

fn outcome_text(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::Denied => "denied",
        Outcome::Failed => "failed",
    }
}

/// `GET /ui/audit`.
pub async fn list(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Query(form): Query<AuditForm>,
) -> Result<Response, UiError> {
    let query = form.query().or_page(&viewer)?;
    let parameters = form.parameters(&query);
    let entries = app
        .services
        .audit_entries(&viewer.who, query)
        .await
        .or_page(&viewer)?;
    let next_page = match entries.last() {
        Some(last) if entries.len() as i64 == PAGE => {
            format!("/ui/audit?{parameters}&cursor={}", last.seq)
        }
        _ => String::new(),
    };
    let rows = entries
        .iter()
        .map(|e| {
            let r = &e.record;
            EntryRow {
                seq: e.seq,
                time: utc(r.at),
                actor: r.actor.clone(),
                source_ip: r.source_ip.clone().unwrap_or_default(),
                action: r.action.clone(),
                workspace: r.workspace.clone().unwrap_or_default(),
                target: r.target.clone().unwrap_or_default(),
                outcome: outcome_text(r.outcome),
                reason: r.reason.clone().unwrap_or_default(),
                detail: r.detail.clone().unwrap_or_default(),
            }
        })
        .collect();
    page(&AuditPage {
        chrome: Chrome::signed_in(&viewer, "Audit log", &uri, Section::Audit),
        form,
        rows,
        next_page,
        export: format!("/api/v1/audit/export?{parameters}"),
        can_verify: viewer.who.is_instance_admin(),
    })
}

pub struct ProblemRow {
    pub seq: i64,
    pub message: String,
}

#[derive(Template)]
#[template(path = "audit_verify.html")]
struct VerifyPage {
    chrome: Chrome,
    intact: bool,
    checked: u64,
    last_seq: i64,
    last_hash: String,
    pruned_seq: i64,
    unsealed: u64,
    problem: Option<ProblemRow>,
}

/// `POST /ui/audit/verify`: checks the whole chain (instance admins), as
/// `POST /api/v1/audit/verify`.
pub async fn verify(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    let report = app
        .services
        .verify_audit(&viewer.who)
        .await
        .or_page(&viewer)?;
    page(&VerifyPage {
        chrome: Chrome::signed_in(&viewer, "Audit chain", &uri, Section::Audit),
        intact: report.problem.is_none(),
        checked: report.checked,
        last_seq: report.head.last_seq,
        last_hash: report.head.last_hash,
        pruned_seq: report.head.pruned_seq,
        unsealed: report.unsealed,
        problem: report.problem.map(|p| ProblemRow {
            seq: p.seq,
            message: p.message,
        }),
    })
}
