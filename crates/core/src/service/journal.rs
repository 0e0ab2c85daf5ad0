//! Services of the audit log and the event stream: recording, querying, verifying, pruning.

use std::time::Duration;

use serde_json::json;
use tokio::sync::broadcast;

use super::Services;
use crate::access::{Grants, Principal, Role};
use crate::audit::{self, AuditEntry, AuditQuery, AuditRecord, VerifyReport};
use crate::events::{Event, NewEvent};
use crate::model::Workspace;
use crate::store::pending::JournalEntries;
use crate::{Error, Result};

/// Most audit entries or events one query returns.
pub const MAX_PAGE: i64 = 1_000;
/// Entries removed per prune transaction.
const PRUNE_BATCH: i64 = 10_000;

/// How far back [`Services::recent_events`] looks, in events.
pub const RECENT_EVENT_WINDOW: i64 = 500;

impl Services {
    /// Records an audit entry and waits until it is stored. For changes: acknowledge the
    /// change only after this returns. (Login and account changes call this.)
    pub async fn record(&self, record: AuditRecord) -> Result<()> {
        self.journal.commit(Some(record), None).await.map(|_| ())
    }

    /// Queues an audit entry without waiting for it to be stored (reads, refusals).
    pub async fn record_later(&self, record: AuditRecord) {
        self.journal.enqueue(record).await;
    }

    /// Emits an event (stored with its webhook deliveries, then broadcast to subscribers) and
    /// waits until it is stored. `state.rolled_back`, `lock.stale` and later kinds go here.
    pub async fn emit_event(&self, event: NewEvent) -> Result<Event> {
        self.journal
            .commit(None, Some(event))
            .await?
            .ok_or_else(|| Error::Internal("an emitted event was not returned".into()))
    }

    /// Records an audit entry and emits an event in one batch, waiting until both are stored.
    pub async fn record_with_event(&self, record: AuditRecord, event: NewEvent) -> Result<Event> {
        self.journal
            .commit(Some(record), Some(event))
            .await?
            .ok_or_else(|| Error::Internal("an emitted event was not returned".into()))
    }

    /// Counts an audited action's outcome for `/metrics` ([`crate::metrics::observe_action`]);
    /// with per-state labels on, a success is labelled with its workspace and state.
    pub(crate) fn observe(&self, record: &AuditRecord, outcome: Result<(), &crate::Error>) {
        let state = match (&record.workspace, &record.target) {
            (Some(ws), Some(state)) if self.state_metric_labels && outcome.is_ok() => {
                Some((ws.as_str(), state.as_str()))
            }
            _ => None,
        };
        crate::metrics::observe_action(&record.action, outcome, state);
    }

    /// Audits the end of a change that stored its entries in its own transaction (through a
    /// store's `*_journaled` method): on success the journal writer is asked to seal them, and
    /// the answer does not wait for that; a refusal is recorded without waiting.
    pub async fn conclude_change<T>(&self, result: Result<T>, record: AuditRecord) -> Result<T> {
        self.observe(&record, result.as_ref().map(|_| ()));
        match result {
            Ok(value) => {
                self.journal.seal_soon();
                Ok(value)
            }
            Err(e) => {
                self.journal.enqueue(record.refused_by(&e)).await;
                Err(e)
            }
        }
    }

    /// Stores a change's entries through the journal writer and waits until they are stored,
    /// for an outcome decided without a store transaction (an identical write answered from
    /// what was just read).
    pub(crate) async fn commit_entries(&self, entries: JournalEntries) -> Result<()> {
        let mut records = entries.records.into_iter();
        let mut events = entries.events.into_iter();
        loop {
            let (record, event) = (records.next(), events.next());
            if record.is_none() && event.is_none() {
                return Ok(());
            }
            self.journal.commit(record, event).await?;
        }
    }

    /// Events as this process stores or seals them. Events sealed by other replicas are not
    /// broadcast here; read them with [`Services::events_after`].
    pub fn subscribe_events(&self) -> broadcast::Receiver<Event> {
        self.journal.subscribe()
    }

    /// Returns once every audit entry and event queued so far, and every pending entry of a
    /// committed change, is stored (graceful shutdown, CLI commands before exiting, queries).
    pub async fn flush_journal(&self) {
        self.journal.flush().await;
    }

    /// Audit entries (instance admin: all; workspace admin: only their workspace's).
    pub async fn audit_entries(
        &self,
        who: &Principal,
        query: AuditQuery,
    ) -> Result<Vec<AuditEntry>> {
        let query = self.scope_audit_query(who, query).await?;
        // What was acknowledged before this query is listed (sealed) by it.
        self.flush_journal().await;
        self.store.audit_entries(&query).await
    }

    /// Restricts a query to what `who` may read: instance admins everything, workspace admins
    /// their workspaces' entries (naming the workspace when they administer several).
    async fn scope_audit_query(
        &self,
        who: &Principal,
        mut query: AuditQuery,
    ) -> Result<AuditQuery> {
        query.limit = query.limit.clamp(1, MAX_PAGE);
        let administered: Vec<String> = match &who.grants {
            _ if who.is_instance_admin() => return Ok(query),
            Grants::Everywhere(role) if *role >= Role::Admin => return Ok(query),
            Grants::Everywhere(_) => Vec::new(),
            Grants::Workspaces(map) => map
                .iter()
                .filter(|(_, role)| **role >= Role::Admin)
                .map(|(id, _)| id.clone())
                .collect(),
        };
        let names: Vec<String> = self
            .store
            .list_workspaces()
            .await?
            .into_iter()
            .filter(|w| administered.contains(&w.id))
            .map(|w| w.name)
            .collect();
        match (&query.workspace, names.as_slice()) {
            (_, []) => Err(Error::Forbidden(format!(
                "{} administers no workspace; reading the audit log needs an admin role",
                who.describe()
            ))),
            (Some(asked), _) if !names.contains(asked) => Err(Error::Forbidden(format!(
                "{} may read the audit log of the workspaces it administers only: {}",
                who.describe(),
                names.join(", ")
            ))),
            (Some(_), _) => Ok(query),
            (None, [only]) => {
                query.workspace = Some(only.clone());
                Ok(query)
            }
            (None, _) => Err(Error::BadRequest(format!(
                "pass workspace=<name>: you administer several workspaces ({})",
                names.join(", ")
            ))),
        }
    }

    /// Checks the whole chain (instance admin); the check itself is audited (without waiting:
    /// a chain broken by an inserted entry may refuse the record, and the report must still
    /// reach the caller).
    pub async fn verify_audit(&self, who: &Principal) -> Result<VerifyReport> {
        let record = AuditRecord::by(who, "audit.verify", self.now());
        if let Err(e) = who.require_instance_admin("verifying the audit log") {
            self.record_later(record.refused_by(&e)).await;
            return Err(e);
        }
        // Entries queued before the check are part of what it checks.
        self.flush_journal().await;
        let report = audit::verify_chain(self.store.as_ref()).await?;
        let record = match &report.problem {
            None => record.detail(json!({"checked": report.checked, "intact": true})),
            Some(p) => record
                .failed(p.message.clone())
                .detail(json!({"checked": report.checked, "intact": false, "seq": p.seq})),
        };
        self.record_later(record).await;
        Ok(report)
    }

    /// Removes audit entries older than `retention` from the oldest end (the chain stays
    /// verifiable); each prune transaction appends its `audit.prune` proof. Returns how many
    /// went.
    pub async fn prune_audit(&self, retention: Duration) -> Result<u64> {
        let before = self.now().plus_millis(-millis(retention));
        let mut pruned = 0;
        loop {
            let n = self
                .store
                .prune_audit(before, PRUNE_BATCH, self.now())
                .await?;
            pruned += n;
            if n < PRUNE_BATCH as u64 {
                break;
            }
        }
        Ok(pruned)
    }

    /// Events after `after_seq`, oldest first, of the workspaces `who` can read.
    pub async fn events_after(
        &self,
        who: &Principal,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<Event>> {
        let limit = limit.clamp(1, MAX_PAGE);
        // Events of changes acknowledged before this poll are numbered (sealed) by it.
        self.flush_journal().await;
        match &who.grants {
            Grants::Everywhere(_) => self.store.events_after(after_seq, None, limit).await,
            Grants::Workspaces(map) => {
                let readable: Vec<String> = map
                    .iter()
                    .filter(|(_, role)| **role >= Role::Viewer)
                    .map(|(id, _)| id.clone())
                    .collect();
                self.store
                    .events_after(after_seq, Some(&readable), limit)
                    .await
            }
        }
    }

    /// The newest `count` events `who` may read, newest first, looked for among the last
    /// [`RECENT_EVENT_WINDOW`] events (what an overview shows as recent).
    pub async fn recent_events(&self, who: &Principal, count: usize) -> Result<Vec<Event>> {
        self.flush_journal().await;
        let last = self.store.last_event_seq().await?;
        let from = (last - RECENT_EVENT_WINDOW).max(0);
        let mut events = self.events_after(who, from, RECENT_EVENT_WINDOW).await?;
        events.reverse();
        events.truncate(count);
        Ok(events)
    }

    /// Removes events, and finished webhook deliveries, older than `retention`.
    pub async fn prune_events(&self, retention: Duration) -> Result<u64> {
        let before = self.now().plus_millis(-millis(retention));
        let events = self.store.prune_events(before).await?;
        self.store.prune_deliveries(before).await?;
        Ok(events)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Services {
    /// An event about `subject` in `workspace`, caused by `who`, happening now.
    pub(crate) fn event(
        &self,
        kind: &str,
        workspace: &Workspace,
        subject: &str,
        who: &Principal,
        payload: serde_json::Value,
    ) -> NewEvent {
        NewEvent {
            at: self.now(),
            kind: kind.to_owned(),
            workspace_id: Some(workspace.id.clone()),
            workspace: Some(workspace.name.clone()),
            subject: Some(subject.to_owned()),
            actor: who.actor(),
            payload,
        }
    }

    /// Audits the end of an operation whose change did not store its entries itself (see
    /// [`Services::conclude_change`] for those). On success `describe` completes the record
    /// (and may add an event) and the answer waits until both are stored, so nothing is
    /// acknowledged unaudited; a refusal is recorded without waiting.
    pub async fn conclude<T>(
        &self,
        result: Result<T>,
        record: AuditRecord,
        describe: impl FnOnce(&T, AuditRecord) -> (AuditRecord, Option<NewEvent>),
    ) -> Result<T> {
        self.observe(&record, result.as_ref().map(|_| ()));
        match result {
            Ok(value) => {
                let (record, event) = describe(&value, record);
                self.journal.commit(Some(record), event).await?;
                Ok(value)
            }
            Err(e) => {
                self.journal.enqueue(record.refused_by(&e)).await;
                Err(e)
            }
        }
    }

    /// Audits the end of a read without waiting for the entry to be stored: on success
    /// `describe` completes the record; a refusal is recorded as such.
    pub async fn conclude_read<T>(
        &self,
        result: Result<T>,
        record: AuditRecord,
        describe: impl FnOnce(&T, AuditRecord) -> AuditRecord,
    ) -> Result<T> {
        self.observe(&record, result.as_ref().map(|_| ()));
        let record = match &result {
            Ok(value) => describe(value, record),
            Err(e) => record.refused_by(e),
        };
        self.journal.enqueue(record).await;
        result
    }
}
