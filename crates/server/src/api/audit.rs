//! `/api/v1/audit` (query, JSON-lines export, chain verification) and `/api/v1/events`
//! (polling the event stream).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use statehouse_core::Error;
use statehouse_core::audit::{AuditEntry, AuditQuery, Outcome, VerifyReport};
use statehouse_core::clock::Timestamp;
use statehouse_core::events::Event;
use utoipa::{IntoParams, ToSchema};

use super::extract::{checked_limit, numeric_position};
use super::{ApiError, ApiQuery, Caller, Page};
use crate::AppState;

/// One audit log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    /// Position in the chain (increases by one per entry).
    pub seq: i64,
    /// RFC 3339, UTC.
    pub time: String,
    /// Unix milliseconds (what the hash covers).
    pub at_ms: i64,
    pub actor: String,
    pub token_id: Option<String>,
    pub token_name: Option<String>,
    pub source_ip: Option<String>,
    /// Dotted action name, e.g. `state.write`, `lock.force_release`, `token.create`.
    pub action: String,
    pub workspace: Option<String>,
    pub target: Option<String>,
    /// `success`, `denied` or `failed`.
    #[schema(value_type = String)]
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// Extra facts (JSON), exactly the text the hash covers.
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&AuditEntry> for AuditEntryView {
    fn from(e: &AuditEntry) -> Self {
        let r = &e.record;
        AuditEntryView {
            seq: e.seq,
            time: r.at.to_rfc3339(),
            at_ms: r.at.millis(),
            actor: r.actor.clone(),
            token_id: r.token_id.clone(),
            token_name: r.token_name.clone(),
            source_ip: r.source_ip.clone(),
            action: r.action.clone(),
            workspace: r.workspace.clone(),
            target: r.target.clone(),
            outcome: r.outcome,
            reason: r.reason.clone(),
            detail: r.detail.clone(),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
        }
    }
}

/// Filters of an audit query; all optional.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Who acted (token name, user, `unknown`).
    pub actor: Option<String>,
    /// What was acted on (state name, token id, …).
    pub target: Option<String>,
    /// An action (`state.write`) or a prefix (`lock.*`).
    pub action: Option<String>,
    pub workspace: Option<String>,
    /// `success`, `denied` or `failed`.
    pub outcome: Option<String>,
    /// Entries at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Entries before this time (RFC 3339).
    pub until: Option<String>,
    /// `newest` (default) or `oldest` first.
    pub order: Option<String>,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Items per page, 1–1000 (default 100).
    pub limit: Option<i64>,
}

fn parse_time(text: &str, what: &str) -> Result<Timestamp, Error> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| Timestamp(t.timestamp_millis()))
        .map_err(|_| {
            Error::BadRequest(format!(
                "invalid {what} {text:?}: use RFC 3339, e.g. 2026-01-31T00:00:00Z"
            ))
        })
}

impl AuditParams {
    fn query(&self) -> Result<AuditQuery, ApiError> {
        let limit = checked_limit(self.limit)?;
        let newest_first = match self.order.as_deref() {
            None | Some("newest") => true,
            Some("oldest") => false,
            Some(other) => {
                return Err(Error::BadRequest(format!(
                    "invalid order {other:?}: use newest or oldest"
                ))
                .into());
            }
        };
        let cursor = numeric_position(self.cursor.as_deref())?;
        Ok(AuditQuery {
            actor: self.actor.clone(),
            target: self.target.clone(),
            action: self.action.clone(),
            workspace: self.workspace.clone(),
            outcome: self.outcome.as_deref().map(Outcome::parse).transpose()?,
            since: self
                .since
                .as_deref()
                .map(|t| parse_time(t, "since"))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|t| parse_time(t, "until"))
                .transpose()?,
            cursor,
            newest_first,
            limit,
        })
    }
}

/// Audit log entries, newest first unless `order=oldest` (instance admins; workspace admins
/// see their workspace's).
#[utoipa::path(get, path = "/audit", tag = "audit", operation_id = "list_audit_entries", params(AuditParams),
    responses((status = 200, body = Page<AuditEntryView>)))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<Page<AuditEntryView>>, ApiError> {
    let query = params.query()?;
    let limit = query.limit;
    let entries = app.services.audit_entries(&who, query).await?;
    let views = entries.iter().map(AuditEntryView::from).collect();
    Ok(Json(Page::of(views, limit, |v: &AuditEntryView| {
        v.seq.to_string()
    })))
}

/// Every matching entry as JSON lines (`application/x-ndjson`), oldest first, streamed
/// (same access as the query). `order`, `cursor` and `limit` are ignored.
#[utoipa::path(get, path = "/audit/export", tag = "audit", params(AuditParams),
    responses((status = 200, description = "one AuditEntryView JSON object per line",
        content_type = "application/x-ndjson")))]
pub async fn export(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Response, ApiError> {
    let mut query = params.query()?;
    query.newest_first = false;
    query.cursor = Some(0);
    query.limit = 1_000;
    // The first page is read before answering, so access errors are a proper status.
    let first = app.services.audit_entries(&who, query.clone()).await?;
    let services = app.services.clone();
    let pages = futures::stream::unfold(
        (Some(first), query, services, who),
        |(page, mut query, services, who)| async move {
            let page = match page {
                Some(p) => p,
                None => match services.audit_entries(&who, query.clone()).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = %e, "audit export stopped early");
                        return Some((
                            Err(std::io::Error::other(e.to_string())),
                            (Some(Vec::new()), query, services, who),
                        ));
                    }
                },
            };
            let last = page.last()?.seq;
            query.cursor = Some(last);
            let mut chunk = Vec::with_capacity(page.len() * 400);
            for entry in &page {
                if serde_json::to_writer(&mut chunk, &AuditEntryView::from(entry)).is_ok() {
                    chunk.push(b'\n');
                }
            }
            Some((Ok(bytes::Bytes::from(chunk)), (None, query, services, who)))
        },
    );
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(pages),
    )
        .into_response())
}

/// The result of checking the audit chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyView {
    /// True when no entry was altered, removed, reordered or inserted.
    pub intact: bool,
    /// Entries whose hashes were checked.
    pub checked: u64,
    /// The newest entry and its hash: keep them elsewhere to detect a rewrite of the whole chain.
    pub last_seq: i64,
    pub last_hash: String,
    /// Entries up to this one were pruned by retention; the chain starts after it.
    pub pruned_seq: i64,
    pub pruned_hash: String,
    /// Where the chain breaks first.
    pub problem: Option<ProblemView>,
    /// Entries of committed changes the journal has not sealed into the chain yet (it does
    /// moments after each change); not covered by this check.
    pub unsealed: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemView {
    pub seq: i64,
    /// `altered`, `removed`, `broken`, `inserted` or `truncated`.
    pub kind: String,
    pub message: String,
}

impl From<VerifyReport> for VerifyView {
    fn from(r: VerifyReport) -> Self {
        VerifyView {
            intact: r.problem.is_none(),
            checked: r.checked,
            last_seq: r.head.last_seq,
            last_hash: r.head.last_hash,
            pruned_seq: r.head.pruned_seq,
            pruned_hash: r.head.pruned_hash,
            problem: r.problem.map(|p| ProblemView {
                seq: p.seq,
                kind: serde_json::to_value(p.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                message: p.message,
            }),
            unsealed: r.unsealed,
        }
    }
}

/// Checks the whole audit chain (instance admins). Answers 200 either way; `intact` says.
#[utoipa::path(post, path = "/audit/verify", tag = "audit",
    responses((status = 200, body = VerifyView)))]
pub async fn verify(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
) -> Result<Json<VerifyView>, ApiError> {
    Ok(Json(app.services.verify_audit(&who).await?.into()))
}

/// One event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Increases in commit order across all servers: poll with `after=<last seq seen>`.
    pub seq: i64,
    /// `state.written`, `state.deleted`, `state.restored`, `state.rolled_back`,
    /// `lock.acquired`, `lock.released`, `lock.force_unlocked`, `lock.stale`,
    /// `backup.succeeded`, `backup.failed`, `verification.succeeded`, `verification.failed`,
    /// `database.down`, `database.up`.
    pub kind: String,
    pub time: String,
    pub workspace: Option<String>,
    /// Usually the state name.
    pub subject: Option<String>,
    pub actor: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        EventView {
            seq: e.seq,
            kind: e.kind.clone(),
            time: e.at.to_rfc3339(),
            workspace: e.workspace.clone(),
            subject: e.subject.clone(),
            actor: e.actor.clone(),
            payload: e.payload.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Events after this `seq` (default 0: from the oldest kept).
    pub after: Option<i64>,
    /// At most this many, 1–1000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventView>,
    /// Pass as `after` next time (the last `seq` returned, or the `after` given).
    pub next_after: i64,
}

/// Events of the workspaces the caller can read, oldest first, after `after`.
#[utoipa::path(get, path = "/events", tag = "events", params(EventParams),
    responses((status = 200, body = EventPage)))]
pub async fn events(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    ApiQuery(params): ApiQuery<EventParams>,
) -> Result<Json<EventPage>, ApiError> {
    let after = params.after.unwrap_or(0);
    let limit = checked_limit(params.limit)?;
    let found = app.services.events_after(&who, after, limit).await?;
    Ok(Json(EventPage {
        next_after: found.last().map_or(after, |e| e.seq),
        items: found.iter().map(EventView::from).collect(),
    }))
}
