//! Notifiers of a workspace (email, Slack, Discord, Telegram, Teams, Mattermost, ntfy,
//! webhook): management, "test", and sending notifications for events.
//!
//! Every event stored by this process is offered to the notifiers of its workspace that want
//! its kind (and its database, when they name databases). Each replica sends the events it
//! stored itself, so an event is sent once; a process that dies between storing an event and
//! sending it loses that notification (events stay queryable, and webhooks are durable).

use statehouse_core::metrics::names;
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use statehouse_core::access::{Principal, Role};
use statehouse_core::audit::AuditRecord;
use statehouse_core::backups::{NotifierRecord, SealedKind};
use statehouse_core::events::{self, Event, kind};
use statehouse_core::model::Workspace;
use statehouse_core::service::new_id;
use statehouse_core::{Error, Result};
use statehouse_notify::{Notification, NotifierSpec, Severity};
use tokio::sync::{broadcast, watch};
use utoipa::ToSchema;

use super::{
    BackupService, TestOutcome, check_name, merge_secrets, not_found, require_secrets_if_moved,
};

/// A notifier as given by the API or CLI.
#[derive(Debug, Clone)]
pub struct NotifierInput {
    pub name: String,
    /// Full settings (secrets included) for create; for a change, only what changes (secrets
    /// left out are kept).
    pub settings: Option<serde_json::Value>,
    /// Event kinds, prefixes (`backup.*`) or `*`.
    pub events: Option<Vec<String>>,
    /// Database names (or ids) whose events it wants; empty = all.
    pub databases: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// A notifier as the API shows it (no secrets).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotifierView {
    pub id: String,
    pub name: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    pub secrets_set: Vec<String>,
    pub events: Vec<String>,
    /// Database names; empty = every database (and the workspace's state events).
    pub databases: Vec<String>,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl BackupService {
    async fn find_notifier(&self, workspace: &Workspace, key: &str) -> Result<NotifierRecord> {
        let store = self.core.backup_store();
        if let Some(found) = store.notifier_by_name(&workspace.id, key).await? {
            return Ok(found);
        }
        store
            .notifier(&workspace.id, key)
            .await?
            .ok_or_else(|| not_found("notifier", key, &workspace.name))
    }

    fn notifier_secrets(&self, n: &NotifierRecord) -> Result<serde_json::Value> {
        let secrets: Option<serde_json::Value> = self.open_secrets(
            SealedKind::Notifier,
            &n.workspace_id,
            &n.id,
            n.secrets.as_ref(),
        )?;
        Ok(secrets.unwrap_or_else(|| json!({})))
    }

    fn notifier_spec(&self, n: &NotifierRecord) -> Result<NotifierSpec> {
        NotifierSpec::from_parts(&n.settings, &self.notifier_secrets(n)?).map_err(|e| {
            Error::Internal(format!("stored notifier {:?} does not parse: {e}", n.name))
        })
    }

    async fn view_notifier(&self, n: &NotifierRecord) -> Result<NotifierView> {
        let mut databases = Vec::new();
        for id in n.database_ids.iter().flatten() {
            let name = self
                .core
                .backup_store()
                .database(&n.workspace_id, id)
                .await?
                .map(|d| d.name)
                .unwrap_or_else(|| id.clone());
            databases.push(name);
        }
        Ok(NotifierView {
            id: n.id.clone(),
            name: n.name.clone(),
            kind: n.kind.clone(),
            settings: n.settings.clone(),
            secrets_set: self
                .notifier_secrets(n)?
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default(),
            events: n.events.clone(),
            databases,
            enabled: n.enabled,
            created_at: n.created_at.to_rfc3339(),
            updated_at: n.updated_at.to_rfc3339(),
        })
    }

    /// Resolves database names/ids to ids (`None` for an empty list: all databases).
    async fn database_ids(
        &self,
        workspace: &Workspace,
        names: &[String],
    ) -> Result<Option<Vec<String>>> {
        if names.is_empty() {
            return Ok(None);
        }
        let mut ids = Vec::new();
        for name in names {
            ids.push(self.find_database(workspace, name).await?.id);
        }
        Ok(Some(ids))
    }

    /// Seals a spec given as JSON: `(kind, public settings, sealed secrets)`.
    fn seal_notifier_parts(
        &self,
        workspace_id: &str,
        id: &str,
        public: &serde_json::Value,
        secrets: &serde_json::Value,
    ) -> Result<(
        String,
        serde_json::Value,
        Option<statehouse_core::crypto::SealedBody>,
    )> {
        let spec = NotifierSpec::from_parts(public, secrets)
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        spec.validate()
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        let (public, secrets) = spec.split_secrets();
        let kind = public
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_owned();
        let has_secrets = secrets.as_object().is_some_and(|o| !o.is_empty());
        let sealed = if has_secrets {
            self.seal_secrets(SealedKind::Notifier, workspace_id, id, &secrets)?
        } else {
            None
        };
        Ok((kind, public, sealed))
    }

    fn split_given(settings: serde_json::Value) -> Result<(serde_json::Value, serde_json::Value)> {
        let spec: NotifierSpec = serde_json::from_value(settings)
            .map_err(|e| Error::BadRequest(format!("notifier settings are not valid: {e}")))?;
        Ok(spec.split_secrets())
    }

    /// Adds a notifier (workspace admin).
    pub async fn create_notifier(
        &self,
        who: &Principal,
        ws: &str,
        input: NotifierInput,
    ) -> Result<NotifierView> {
        let record = AuditRecord::by(who, "notifier.create", self.core.now())
            .workspace(ws)
            .target(input.name.clone());
        let result = async {
            let workspace = self.admin_of(who, ws, "managing notifiers").await?;
            let name = check_name("notifier", &input.name)?;
            let settings = input.settings.ok_or_else(|| {
                Error::BadRequest("a notifier needs its settings (kind and fields)".into())
            })?;
            let (public, secrets) = Self::split_given(settings)?;
            let id = new_id();
            let (kind, settings, sealed) =
                self.seal_notifier_parts(&workspace.id, &id, &public, &secrets)?;
            let events = events::parse_filter(&input.events.unwrap_or_else(|| {
                vec![
                    "backup.failed".into(),
                    "verification.failed".into(),
                    "database.*".into(),
                ]
            }))?;
            let database_ids = self
                .database_ids(&workspace, &input.databases.unwrap_or_default())
                .await?;
            let now = self.core.now();
            let notifier = NotifierRecord {
                id,
                workspace_id: workspace.id.clone(),
                name,
                kind,
                settings,
                secrets: sealed,
                events,
                database_ids,
                enabled: input.enabled.unwrap_or(true),
                created_at: now,
                updated_at: now,
            };
            self.core.backup_store().create_notifier(&notifier).await?;
            self.notifiers.forget(&workspace.id);
            self.view_notifier(&notifier).await
        }
        .await;
        self.core
            .conclude(result, record, |v, r| {
                (r.detail(json!({"kind": v.kind, "events": v.events})), None)
            })
            .await
    }

    pub async fn list_notifiers(&self, who: &Principal, ws: &str) -> Result<Vec<NotifierView>> {
        let (workspace, _) = self
            .core
            .authorize(who, ws, Role::Viewer, "listing notifiers")
            .await?;
        let mut out = Vec::new();
        for n in self
            .core
            .backup_store()
            .list_notifiers(&workspace.id)
            .await?
        {
            out.push(self.view_notifier(&n).await?);
        }
        Ok(out)
    }

    pub async fn notifier(&self, who: &Principal, ws: &str, key: &str) -> Result<NotifierView> {
        let (workspace, _) = self
            .core
            .authorize(who, ws, Role::Viewer, "reading a notifier")
            .await?;
        let n = self.find_notifier(&workspace, key).await?;
        self.view_notifier(&n).await
    }

    /// Changes a notifier (workspace admin); `input.name` is the new name when not empty.
    pub async fn update_notifier(
        &self,
        who: &Principal,
        ws: &str,
        key: &str,
        input: NotifierInput,
    ) -> Result<NotifierView> {
        let record = AuditRecord::by(who, "notifier.update", self.core.now())
            .workspace(ws)
            .target(key);
        let result = async {
            let workspace = self.admin_of(who, ws, "managing notifiers").await?;
            let mut n = self.find_notifier(&workspace, key).await?;
            if !input.name.trim().is_empty() {
                n.name = check_name("notifier", &input.name)?;
            }
            if let Some(mut settings) = input.settings {
                let stored = self.notifier_secrets(&n)?;
                let current = self.notifier_spec(&n)?;
                let same_kind =
                    settings.get("kind").and_then(|k| k.as_str()) == Some(current.kind());
                // Secrets left out are kept, required ones too (a Slack URL, an ntfy topic):
                // the stored ones fill the gaps so the settings parse, but only those given
                // count as given below.
                let mut kept = Vec::new();
                if same_kind
                    && let (Some(given), Some(stored)) =
                        (settings.as_object_mut(), stored.as_object())
                {
                    for (field, value) in stored {
                        if given.get(field).is_none_or(serde_json::Value::is_null) {
                            given.insert(field.clone(), value.clone());
                            kept.push(field.clone());
                        }
                    }
                }
                let (public, mut new_secrets) = Self::split_given(settings)?;
                if let Some(given) = new_secrets.as_object_mut() {
                    given.retain(|field, _| !kept.contains(field));
                }
                let secrets = if same_kind {
                    merge_secrets(stored.clone(), new_secrets.clone())
                } else {
                    // Another kind has other secrets: none of the old ones carry over.
                    new_secrets.clone()
                };
                let changed = NotifierSpec::from_parts(&public, &secrets)
                    .map_err(|e| Error::BadRequest(e.to_string()))?;
                if same_kind {
                    require_secrets_if_moved(
                        &format!("notifier {:?}", n.name),
                        &current.moved_fields(&changed),
                        &stored,
                        &new_secrets,
                    )?;
                }
                let (kind, public, sealed) =
                    self.seal_notifier_parts(&workspace.id, &n.id, &public, &secrets)?;
                n.kind = kind;
                n.settings = public;
                n.secrets = sealed;
            }
            if let Some(events) = &input.events {
                n.events = events::parse_filter(events)?;
            }
            if let Some(databases) = &input.databases {
                n.database_ids = self.database_ids(&workspace, databases).await?;
            }
            if let Some(enabled) = input.enabled {
                n.enabled = enabled;
            }
            n.updated_at = self.core.now();
            let updated = self.core.backup_store().update_notifier(&n).await?;
            // After the write: an event meanwhile must not cache the old list again.
            self.notifiers.forget(&workspace.id);
            if !updated {
                return Err(not_found("notifier", key, &workspace.name));
            }
            self.view_notifier(&n).await
        }
        .await;
        self.core.conclude(result, record, |_, r| (r, None)).await
    }

    pub async fn delete_notifier(&self, who: &Principal, ws: &str, key: &str) -> Result<()> {
        let record = AuditRecord::by(who, "notifier.delete", self.core.now())
            .workspace(ws)
            .target(key);
        let result = async {
            let workspace = self.admin_of(who, ws, "managing notifiers").await?;
            let n = self.find_notifier(&workspace, key).await?;
            let deleted = self
                .core
                .backup_store()
                .delete_notifier(&workspace.id, &n.id)
                .await?;
            self.notifiers.forget(&workspace.id);
            if deleted {
                Ok(())
            } else {
                Err(not_found("notifier", key, &workspace.name))
            }
        }
        .await;
        self.core.conclude(result, record, |_, r| (r, None)).await
    }

    /// Sends a test notification now (workspace admin); the receiver's answer comes back.
    pub async fn test_notifier(&self, who: &Principal, ws: &str, key: &str) -> Result<TestOutcome> {
        let record = AuditRecord::by(who, "notifier.test", self.core.now())
            .workspace(ws)
            .target(key);
        let result = async {
            let workspace = self.admin_of(who, ws, "testing notifiers").await?;
            let n = self.find_notifier(&workspace, key).await?;
            let spec = self.notifier_spec(&n)?;
            let message = statehouse_notify::test_notification(&workspace.name, self.core.now());
            let started = std::time::Instant::now();
            let sent = statehouse_notify::send(&spec, &message, &self.http)
                .await
                .map_err(|e| e.to_string());
            Ok(TestOutcome::from_result(sent, started.elapsed()))
        }
        .await;
        self.core
            .conclude(result, record, |o, r| {
                (r.detail(json!({"ok": o.ok, "error": o.error})), None)
            })
            .await
    }

    /// A workspace's notifiers, from the cache while it is fresh.
    async fn workspace_notifiers(&self, workspace_id: &str) -> Result<Arc<Vec<NotifierRecord>>> {
        let now = self.core.now();
        if let Some(cached) = self.notifiers.get(workspace_id, now) {
            return Ok(cached);
        }
        let list = Arc::new(
            self.core
                .backup_store()
                .list_notifiers(workspace_id)
                .await?,
        );
        self.notifiers
            .put(workspace_id.to_owned(), list.clone(), now);
        Ok(list)
    }

    /// Sends `event` to every notifier of its workspace that wants it; failures are retried
    /// twice, then logged.
    pub async fn notify_event(&self, event: &Event) -> Result<()> {
        let Some(workspace_id) = &event.workspace_id else {
            return Ok(());
        };
        let database_id = event.payload.get("database_id").and_then(|v| v.as_str());
        let notifiers = self.workspace_notifiers(workspace_id).await?;
        let wanted: Vec<NotifierRecord> = notifiers
            .iter()
            .filter(|n| n.enabled && events::filter_matches(&n.events, &event.kind))
            .filter(|n| match (&n.database_ids, database_id) {
                (None, _) => true,
                (Some(ids), Some(db)) => ids.iter().any(|id| id == db),
                (Some(_), None) => false,
            })
            .cloned()
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let message = notification_for(event);
        for n in wanted {
            let spec = match self.notifier_spec(&n) {
                Ok(spec) => spec,
                Err(e) => {
                    tracing::warn!(notifier = %n.name, error = %e, "notifier cannot be used");
                    continue;
                }
            };
            let http = self.http.clone();
            let message = message.clone();
            let pauses = self.options.notification_retries.clone();
            let undelivered = self.undelivered.clone();
            let queued = QueuedNotification::new(&n.kind);
            self.spawn_counted(async move {
                let mut pauses = pauses.iter();
                loop {
                    match statehouse_notify::send(&spec, &message, &http).await {
                        Ok(()) => {
                            queued.sent();
                            return;
                        }
                        Err(e) => match pauses.next() {
                            Some(pause) => {
                                queued.failed();
                                tracing::info!(notifier = %n.name, error = %e, "notification failed; retrying");
                                tokio::time::sleep(*pause).await;
                            }
                            None => {
                                queued.failed();
                                queued.undelivered();
                                tracing::warn!(notifier = %n.name, event = %message.event, error = %e, "notification failed; giving up");
                                if let Ok(mut list) = undelivered.lock()
                                    && list.len() < 20
                                {
                                    list.push(format!("notifier {:?}: {}: {e}", n.name, message.event));
                                }
                                return;
                            }
                        },
                    }
                }
            });
        }
        Ok(())
    }

    /// Sends notifications for the events this process stores until `stop` turns true (the
    /// server's loop).
    pub async fn run_notifications(self, stop: watch::Receiver<bool>) {
        let events = self.core.subscribe_events();
        self.notify_until(events, stop).await;
    }

    /// Starts sending notifications for the events this process stores, as a server does:
    /// subscribed before it returns, so no event stored afterwards is missed (a CLI command
    /// working on the local store notifies like a server run). After `stop` turns true the
    /// events already stored are still offered; [`BackupService::wait_idle`] then waits for
    /// their sending.
    pub fn start_notifications(&self, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let events = self.core.subscribe_events();
        tokio::spawn(self.clone().notify_until(events, stop))
    }

    async fn notify_until(
        self,
        mut events: broadcast::Receiver<Event>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let event = tokio::select! {
                // Events first: those stored before the stop are still sent.
                biased;
                received = events.recv() => received,
                _ = stop.changed() => break,
            };
            match event {
                Ok(event) => self.offer(&event).await,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "notifications fell behind; some events were not notified"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
        loop {
            match events.try_recv() {
                Ok(event) => self.offer(&event).await,
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    }

    async fn offer(&self, event: &Event) {
        if let Err(e) = self.notify_event(event).await {
            tracing::warn!(event = %event.kind, error = %e, "notifying failed");
        }
    }
}

/// Words for an event.
fn notification_for(event: &Event) -> Notification {
    let p = &event.payload;
    let text = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let database = text("database");
    let subject = event.subject.clone().unwrap_or_default();
    let workspace = event.workspace.clone().unwrap_or_default();
    let (severity, title, message) = match event.kind.as_str() {
        kind::BACKUP_FAILED => (
            Severity::Critical,
            format!("Backup of {subject} failed"),
            text("error").unwrap_or_else(|| "the backup failed".into()),
        ),
        kind::BACKUP_SUCCEEDED => (
            Severity::Info,
            format!("Backup of {subject} succeeded"),
            format!(
                "{} stored in {}",
                p.get("stored_bytes")
                    .and_then(|v| v.as_u64())
                    .map(human_bytes)
                    .unwrap_or_default(),
                text("object").unwrap_or_default()
            ),
        ),
        kind::BACKUP_DELETED => (
            Severity::Info,
            format!("Backup of {subject} deleted"),
            format!(
                "{} ({})",
                text("object").unwrap_or_default(),
                text("reason").unwrap_or_else(|| "deleted".into())
            ),
        ),
        kind::VERIFICATION_FAILED => (
            Severity::Critical,
            format!("Verification of a backup of {subject} failed"),
            text("error").unwrap_or_else(|| "the backup did not verify".into()),
        ),
        kind::VERIFICATION_SUCCEEDED => (
            Severity::Info,
            format!("Backup of {subject} verified"),
            text("detail").unwrap_or_else(|| "the backup restored and matched".into()),
        ),
        kind::DATABASE_DOWN => (
            Severity::Critical,
            format!("Database {subject} is down"),
            text("error").unwrap_or_else(|| "health checks fail".into()),
        ),
        kind::DATABASE_UP => (
            Severity::Info,
            format!("Database {subject} is up again"),
            "health checks pass again".into(),
        ),
        kind::LOCK_STALE => (
            Severity::Warning,
            format!("Lock on state {subject} is stale"),
            format!(
                "held by {} since {}",
                text("holder").or_else(|| text("who")).unwrap_or_default(),
                text("locked_at").unwrap_or_default()
            ),
        ),
        other => (Severity::Info, format!("{other}: {subject}"), String::new()),
    };
    let fields = [
        ("workspace", Some(workspace.clone())),
        ("database", database.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
    .collect();
    Notification {
        event: event.kind.clone(),
        severity,
        title,
        message,
        workspace,
        database,
        at: event.at,
        link: None,
        fields,
    }
}

pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A notification waiting to be sent or retried, for `/metrics`: counted in
/// `statehouse_notifications_queued` while it lives, its attempts by notifier kind.
struct QueuedNotification {
    kind: String,
}

impl QueuedNotification {
    fn new(kind: &str) -> Self {
        ::metrics::gauge!(names::NOTIFICATIONS_QUEUED).increment(1.0);
        QueuedNotification {
            kind: kind.to_owned(),
        }
    }

    fn sent(&self) {
        ::metrics::counter!(names::NOTIFICATIONS_SENT, "kind" => self.kind.clone()).increment(1);
    }

    fn failed(&self) {
        ::metrics::counter!(names::NOTIFICATION_FAILURES, "kind" => self.kind.clone()).increment(1);
    }

    fn undelivered(&self) {
        ::metrics::counter!(names::NOTIFICATIONS_UNDELIVERED, "kind" => self.kind.clone())
            .increment(1);
    }
}

impl Drop for QueuedNotification {
    fn drop(&mut self) {
        ::metrics::gauge!(names::NOTIFICATIONS_QUEUED).decrement(1.0);
    }
}
