//! Backups of PostgreSQL databases as the store keeps them: storage targets, notifiers,
//! registered databases, per-workspace backup settings, backup runs, verification outcomes,
//! health checks, and the job clock that lets several server processes share schedules.
//!
//! What a target, notifier or database *means* (its settings' shape, which fields are secret)
//! belongs to the backup and notify crates: the store keeps their public settings as JSON and
//! their secret fields as one sealed JSON object ([`crate::crypto::Cipher`], bound to the row).

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::crypto::SealedBody;

pub use crate::sealed::SealedKind;

/// A place backups are stored (local directory, S3, Azure, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRecord {
    pub id: String,
    pub workspace_id: String,
    /// Unique within the workspace.
    pub name: String,
    /// `local`, `s3`, `azblob`, … (the settings' tag).
    pub kind: String,
    /// Public settings (no secrets).
    pub settings: serde_json::Value,
    /// Secret settings, sealed JSON object; `None` when the target has none.
    pub secrets: Option<SealedBody>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Somewhere notifications go (email, Slack, …), with the events and databases it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierRecord {
    pub id: String,
    pub workspace_id: String,
    /// Unique within the workspace.
    pub name: String,
    pub kind: String,
    pub settings: serde_json::Value,
    pub secrets: Option<SealedBody>,
    /// Event kinds, prefixes (`backup.*`) or `*`.
    pub events: Vec<String>,
    /// Only these databases' events (by id); `None` = every database of the workspace (and
    /// events that concern no database, like state events).
    pub database_ids: Option<Vec<String>>,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Health as last observed by the health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Not checked yet (or checks disabled).
    Unknown,
    Up,
    Down,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Unknown => "unknown",
            HealthStatus::Up => "up",
            HealthStatus::Down => "down",
        }
    }

    pub fn parse(text: &str) -> Option<HealthStatus> {
        match text {
            "unknown" => Some(HealthStatus::Unknown),
            "up" => Some(HealthStatus::Up),
            "down" => Some(HealthStatus::Down),
            _ => None,
        }
    }
}

/// A database's health summary, kept on its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseHealth {
    pub status: HealthStatus,
    /// Failed checks in a row (0 after a good one).
    pub consecutive_failures: i64,
    /// When `status` last changed.
    pub changed_at: Option<Timestamp>,
    pub last_check_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

impl Default for DatabaseHealth {
    fn default() -> Self {
        DatabaseHealth {
            status: HealthStatus::Unknown,
            consecutive_failures: 0,
            changed_at: None,
            last_check_at: None,
            last_error: None,
        }
    }
}

/// A registered PostgreSQL database (or, in whole-server mode, a server whose databases are
/// discovered at each run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseRecord {
    pub id: String,
    pub workspace_id: String,
    /// Unique within the workspace.
    pub name: String,
    /// Public settings: connection without password, mode, schedule, retention, verification,
    /// timeouts, health-check settings (shape owned by the backup service).
    pub settings: serde_json::Value,
    /// Secret settings (the password), sealed JSON object.
    pub secrets: Option<SealedBody>,
    /// Where its backups go.
    pub target_id: String,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Kept by [`crate::store::backups::BackupStore::record_health_check`]; ignored by
    /// create/update.
    pub health: DatabaseHealth,
}

/// A workspace's backup settings: encryption recipients (the managed key pair's public half,
/// user-held recipients) and the verification server; secrets are the managed identity, a
/// passphrase and the verification server's password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceBackupSettings {
    pub workspace_id: String,
    pub settings: serde_json::Value,
    pub secrets: Option<SealedBody>,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupStatus {
    /// Waiting for a worker (not before `not_before`).
    Queued,
    /// A worker holds it under a lease.
    Running,
    Succeeded,
    Failed,
}

impl BackupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::Queued => "queued",
            BackupStatus::Running => "running",
            BackupStatus::Succeeded => "succeeded",
            BackupStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<BackupStatus> {
        match text {
            "queued" => Some(BackupStatus::Queued),
            "running" => Some(BackupStatus::Running),
            "succeeded" => Some(BackupStatus::Succeeded),
            "failed" => Some(BackupStatus::Failed),
            _ => None,
        }
    }
}

/// Why a backup run exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupTrigger {
    /// Its schedule came due.
    Schedule,
    /// Its schedule came due while no server ran; run once on start.
    CatchUp,
    /// Someone asked ("backup now").
    Manual,
    /// An earlier attempt failed.
    Retry,
}

impl BackupTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupTrigger::Schedule => "schedule",
            BackupTrigger::CatchUp => "catch_up",
            BackupTrigger::Manual => "manual",
            BackupTrigger::Retry => "retry",
        }
    }

    pub fn parse(text: &str) -> Option<BackupTrigger> {
        match text {
            "schedule" => Some(BackupTrigger::Schedule),
            "catch_up" => Some(BackupTrigger::CatchUp),
            "manual" => Some(BackupTrigger::Manual),
            "retry" => Some(BackupTrigger::Retry),
            _ => None,
        }
    }
}

/// What a backup run stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// One database: a pg_dump archive.
    Database,
    /// What belongs to a whole server rather than to one database (roles with their
    /// memberships and settings, tablespaces): `pg_dumpall --globals-only`, one per
    /// whole-server run.
    Globals,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Database => "database",
            BackupKind::Globals => "globals",
        }
    }

    pub fn parse(text: &str) -> Option<BackupKind> {
        match text {
            "database" => Some(BackupKind::Database),
            "globals" => Some(BackupKind::Globals),
            _ => None,
        }
    }
}

/// The latest verification of a backup, kept on its row for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationSummary {
    pub at: Timestamp,
    /// `restore` (scratch restore + row counts) or `list` (decrypt, checksum, TOC).
    pub level: String,
    pub ok: bool,
}

/// One backup run of one database (in whole-server mode: one per discovered database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRecord {
    pub id: String,
    pub workspace_id: String,
    /// The registered database (or server) it belongs to.
    pub database_id: String,
    /// The PostgreSQL database name dumped; `None` until a whole-server run picks it, and for
    /// a globals run.
    pub db_name: Option<String>,
    /// A database's dump, or a whole server's globals.
    pub kind: BackupKind,
    /// Shared by every run of one whole-server run (each database's and the globals'), so the
    /// whole server can be restored from them; `None` for single-database runs.
    pub server_run: Option<String>,
    pub target_id: String,
    /// The object's name in the target, once the run started writing it.
    pub object: Option<String>,
    pub status: BackupStatus,
    pub trigger: BackupTrigger,
    /// 1 for the first attempt; retries count up.
    pub attempt: i64,
    /// Who asked (user name, `schedule`, …).
    pub requested_by: String,
    pub queued_at: Timestamp,
    /// A queued run is not claimed before this time (retry backoff).
    pub not_before: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
    /// Size of the stored object.
    pub stored_bytes: Option<i64>,
    /// Size of pg_dump's archive before compression.
    pub dump_bytes: Option<i64>,
    /// Lowercase hex SHA-256 of the stored object.
    pub sha256: Option<String>,
    pub server_version: Option<String>,
    /// Why it failed (`Failed` only).
    pub error: Option<String>,
    /// Everything else worth keeping (recipients, zstd level, dump-time row counts, …).
    pub detail: serde_json::Value,
    pub verification: Option<VerificationSummary>,
}

/// How a claimed run ended, recorded by [`crate::store::backups::BackupStore::finish_backup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupResult {
    pub status: BackupStatus,
    pub finished_at: Timestamp,
    pub db_name: Option<String>,
    pub object: Option<String>,
    pub stored_bytes: Option<i64>,
    pub dump_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub server_version: Option<String>,
    pub error: Option<String>,
    pub detail: serde_json::Value,
}

/// Filters of a backup listing; newest first (by `queued_at`, then id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupFilter {
    pub database_id: Option<String>,
    pub status: Option<BackupStatus>,
    /// Only the runs of this whole-server run.
    pub server_run: Option<String>,
    /// Only runs queued strictly before this (`queued_at`, `id`) position (cursor paging).
    pub before: Option<(Timestamp, String)>,
    pub limit: i64,
}

/// One verification of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationRecord {
    pub id: String,
    pub backup_id: String,
    pub at: Timestamp,
    pub level: String,
    pub ok: bool,
    /// The report (tables checked, mismatches, duration, error).
    pub detail: serde_json::Value,
}

/// One health check of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub database_id: String,
    pub at: Timestamp,
    pub ok: bool,
    pub latency_ms: Option<i64>,
    pub error: Option<String>,
}

/// A change of a database's health status caused by a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthTransition {
    pub from: HealthStatus,
    pub to: HealthStatus,
}

/// Checks and good checks over a period (uptime = ok / total).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    pub total: i64,
    pub ok: i64,
}

/// A registered database's backup figures for `/metrics`, read from the store at scrape time
/// (every replica reports the same).
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseFigures {
    pub workspace: String,
    pub database: String,
    pub enabled: bool,
    /// Public settings (the schedule is read from them).
    pub settings: serde_json::Value,
    pub created_at: Timestamp,
    pub health: HealthStatus,
    /// Failed health checks in a row.
    pub health_failures: i64,
    pub health_last_check_at: Option<Timestamp>,
    /// The newest successful run: when it finished, how long it took, its stored size.
    pub last_success_at: Option<Timestamp>,
    pub last_success_millis: Option<i64>,
    pub last_success_bytes: Option<i64>,
    /// Runs that failed since the newest successful one.
    pub failures_since_success: i64,
    /// The newest verification of any of its backups.
    pub last_verification_at: Option<Timestamp>,
    pub last_verification_ok: Option<bool>,
}
