//! Backups as users and the scheduler see them: registering databases, targets, notifiers and
//! encryption, running backups (scheduled, caught up, retried, on demand), retention, restore,
//! verification, health checks, notifications.
//!
//! Request path: route or CLI → [`BackupService`] → `Store` (+ the pipeline, targets, notifiers).
//! Authorization and audit go through the core [`Services`].

mod databases;
mod deletions;
mod encryption;
mod figures;
mod health;
mod notifiers;
mod restores;
mod runs;
mod scheduler;
mod server_runs;
mod target_errors;
mod targets;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_core::backups::{NotifierRecord, SealedKind};
use statehouse_core::cache::TtlCache;
use statehouse_core::crypto::SealedBody;
use statehouse_core::service::{Services, new_id};
use statehouse_core::{Error, Result};
use tokio::sync::Notify;

use statehouse_outbound::{HttpClient, OutboundPolicy, Purpose};

use crate::connection::PgConnection;
use crate::pg_tools::PgToolSearch;

pub use self::databases::{DatabaseChange, DatabaseSpec, DatabaseView, ReadonlyRoleRequest};
pub use self::deletions::RetentionVerdictView;
pub use self::encryption::{EncryptionChange, EncryptionView, GeneratedKey};
pub use self::figures::DatabaseMetrics;
pub use self::health::{HealthCheckView, HealthReport, ReadonlyRole, Uptime};
pub use self::notifiers::{NotifierInput, NotifierView};
pub use self::restores::{RestoreRequest, RestoreView, ServerRestoreView};
pub use self::runs::{BackupView, ProgressFn, VerificationView};
pub use self::scheduler::TickReport;
pub use self::targets::{TargetInput, TargetView};

pub(crate) use self::notifiers::human_bytes;

/// How this process runs backups.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Backups this process runs at once (others wait queued).
    pub concurrency: usize,
    /// Where PostgreSQL client binaries are looked for (`/usr/lib/postgresql/*/bin`, then
    /// `PATH`, by default).
    pub pg_tools: PgToolSearch,
    /// How long a claimed run stays with this process without renewal.
    pub lease: Duration,
    /// statehouse's own store, backed up on a schedule (none: not backed up).
    pub self_backup: Option<SelfBackupSetup>,
    /// Where databases, storage targets and notifiers a workspace names may connect (and
    /// where `local` targets may write): the instance configuration's `[outbound]`.
    pub outbound: Arc<OutboundPolicy>,
    /// Pauses before each retry of a notification that failed (a CLI command waits for them
    /// before it exits, so it uses shorter ones).
    pub notification_retries: Vec<Duration>,
}

/// What the built-in self-backup schedule backs up, where, when and how many it keeps.
#[derive(Debug, Clone)]
pub struct SelfBackupSetup {
    pub source: crate::self_backup::SelfSource,
    pub target: crate::targets::TargetSpec,
    pub policy: crate::self_backup::SelfBackupPolicy,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            concurrency: 2,
            pg_tools: PgToolSearch::system(),
            lease: Duration::from_secs(120),
            self_backup: None,
            outbound: Arc::new(OutboundPolicy::default()),
            notification_retries: vec![Duration::from_secs(5), Duration::from_secs(30)],
        }
    }
}

/// The backup services; cheap to clone.
#[derive(Clone)]
pub struct BackupService {
    pub core: Services,
    /// Notifiers' HTTP client (email resolves through its policy too).
    http: HttpClient,
    /// Names this process in run leases.
    worker_id: String,
    options: Arc<BackupOptions>,
    /// Runs (backups, verifications, health checks) in flight in this process.
    in_flight: Arc<AtomicUsize>,
    /// Backups among them (bounded by [`BackupOptions::concurrency`]).
    running_backups: Arc<AtomicUsize>,
    idle: Arc<Notify>,
    /// Notifications given up on, in words (for a CLI command to report before it exits).
    undelivered: Arc<std::sync::Mutex<Vec<String>>>,
    /// Each workspace's notifiers as last read, so that an event (a LOCK, an UNLOCK) costs no
    /// query: changes made through this process are seen at once, other replicas' within
    /// [`NOTIFIERS_TTL_MILLIS`].
    notifiers: Arc<TtlCache<Arc<Vec<NotifierRecord>>>>,
    /// Every database's figures for `/metrics` as last read ([`figures::FIGURES_TTL_MILLIS`]).
    figures: Arc<TtlCache<Arc<Vec<DatabaseMetrics>>>>,
}

/// How long a workspace's notifier list is trusted (another replica's change is seen within it).
const NOTIFIERS_TTL_MILLIS: i64 = 2_000;

impl BackupService {
    pub fn new(core: Services, options: BackupOptions) -> Result<BackupService> {
        let http = HttpClient::new(
            options.outbound.clone(),
            Purpose::Notifiers,
            reqwest::Client::builder().timeout(Duration::from_secs(30)),
        )
        .map_err(|e| Error::Internal(format!("HTTP client: {e}")))?;
        Ok(BackupService {
            core,
            http,
            worker_id: format!("worker-{}", new_id()),
            options: Arc::new(options),
            in_flight: Arc::new(AtomicUsize::new(0)),
            running_backups: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(Notify::new()),
            undelivered: Arc::default(),
            notifiers: Arc::new(TtlCache::new(NOTIFIERS_TTL_MILLIS)),
            figures: Arc::new(TtlCache::new(figures::FIGURES_TTL_MILLIS)),
        })
    }

    /// The notifications this process gave up on since the last call (`notifier "ops":
    /// backup.failed: …`).
    pub fn take_undelivered(&self) -> Vec<String> {
        self.undelivered
            .lock()
            .map(|mut list| std::mem::take(&mut *list))
            .unwrap_or_default()
    }

    /// Seals a secrets object for a row; `None` when it has no secret field.
    fn seal_secrets<T: Serialize>(
        &self,
        kind: SealedKind,
        workspace_id: &str,
        row_id: &str,
        secrets: &T,
    ) -> Result<Option<SealedBody>> {
        let value = serde_json::to_value(secrets).map_err(|e| Error::Internal(e.to_string()))?;
        if value.as_object().is_some_and(|o| o.is_empty()) || value.is_null() {
            return Ok(None);
        }
        let text = serde_json::to_vec(&value).map_err(|e| Error::Internal(e.to_string()))?;
        self.core
            .cipher
            .seal(&text, kind.binding(workspace_id, row_id))
            .map(Some)
    }

    /// Opens a row's sealed secrets; the type's default when it has none.
    fn open_secrets<T: DeserializeOwned + Default>(
        &self,
        kind: SealedKind,
        workspace_id: &str,
        row_id: &str,
        sealed: Option<&SealedBody>,
    ) -> Result<T> {
        let Some(sealed) = sealed else {
            return Ok(T::default());
        };
        let plain = self
            .core
            .cipher
            .open(sealed, kind.binding(workspace_id, row_id), 256)?;
        serde_json::from_slice(&plain).map_err(|e| {
            Error::Internal(format!(
                "stored {} secrets do not parse: {e}",
                kind.as_str()
            ))
        })
    }

    /// Runs `work` in the background, counted until it ends ([`BackupService::wait_idle`]).
    fn spawn_counted<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let in_flight = self.in_flight.clone();
        let idle = self.idle.clone();
        tokio::spawn(async move {
            work.await;
            if in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                idle.notify_waiters();
            }
        });
    }

    /// Starts a long operation a caller asked for (a backup, restore or verification) in its own
    /// task, counted like scheduled work: a caller that goes away (Ctrl-C, a dropped
    /// connection) stops waiting, not the operation, which runs to its end, cleans up (a
    /// verification's scratch database) and is recorded and audited; a graceful shutdown waits
    /// for it. The returned future is the operation's result.
    pub fn detached<T, F>(&self, work: F) -> impl Future<Output = Result<T>> + Send + 'static
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let (result_tx, result_rx) = tokio::sync::oneshot::channel();
        self.spawn_counted(async move {
            let _ = result_tx.send(work.await);
        });
        async move {
            result_rx.await.map_err(|_| {
                Error::Internal("the operation's task ended before it answered".into())
            })?
        }
    }

    /// The outbound policy this service checks destinations against.
    pub fn outbound(&self) -> &Arc<OutboundPolicy> {
        &self.options.outbound
    }

    /// `connection` (named by a workspace), checked against the outbound policy whenever it
    /// connects.
    pub(crate) fn checked(&self, connection: PgConnection) -> PgConnection {
        connection.checked_by(self.options.outbound.clone())
    }

    /// Runs in flight in this process.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Returns once nothing started by this process is running (tests, graceful shutdown).
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// The answer of a "test" action (target, notifier): a failure is an answer, not an error.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TestOutcome {
    pub ok: bool,
    /// What went wrong, in words to act on.
    pub error: Option<String>,
    pub duration_ms: u64,
}

impl TestOutcome {
    fn from_result(result: std::result::Result<(), String>, took: Duration) -> TestOutcome {
        TestOutcome {
            ok: result.is_ok(),
            error: result.err(),
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// Overlays `new` secret fields on `old` ones: a change that does not repeat a secret keeps it.
fn merge_secrets(old: serde_json::Value, new: serde_json::Value) -> serde_json::Value {
    match (old, new) {
        (serde_json::Value::Object(mut old), serde_json::Value::Object(new)) => {
            for (k, v) in new {
                if !v.is_null() {
                    old.insert(k, v);
                }
            }
            serde_json::Value::Object(old)
        }
        (old, serde_json::Value::Null) => old,
        (_, new) => new,
    }
}

/// Refuses a change that moves where stored secrets go (`moved`: the fields saying where)
/// without giving those secrets again: `stored` and `given` are the secret fields before and
/// in the change. Said the same way for targets and notifiers.
fn require_secrets_if_moved(
    what: &str,
    moved: &[&str],
    stored: &serde_json::Value,
    given: &serde_json::Value,
) -> Result<()> {
    if moved.is_empty() {
        return Ok(());
    }
    let is_given = |field: &str| given.get(field).is_some_and(|v| !v.is_null());
    let missing: Vec<&str> = stored
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, _)| k.as_str())
                .filter(|k| !is_given(k))
                .collect()
        })
        .unwrap_or_default();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::BadRequest(format!(
        "changing {} of {what} would send its stored {} elsewhere: give {} again in the same \
         change (--secret or --secret-stdin on the command line), or leave {} as {}",
        moved.join(", "),
        missing.join(", "),
        missing.join(", "),
        moved.join(", "),
        if moved.len() == 1 {
            "it is"
        } else {
            "they are"
        },
    )))
}

/// Names a row by id or name for "not found" messages.
fn not_found(what: &str, key: &str, workspace: &str) -> Error {
    Error::NotFound(format!("no {what} {key:?} in workspace {workspace:?}"))
}

/// Names of rows: 1–64 letters, digits, `-`, `_`, `.`, starting with a letter or digit.
fn check_name(what: &str, name: &str) -> Result<String> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(Error::BadRequest(format!(
            "{what} name {name:?} must be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )))
    }
}
