//! Storage of everything PostgreSQL backups need: targets, notifiers, databases, workspace
//! backup settings, backup runs (a queue claimed with leases), verifications, health checks,
//! and the job clock.
//!
//! Two server processes may share one store: schedules advance by compare-and-set on the job
//! clock (exactly one process wins a due run), queued runs are claimed under a lease (never by
//! two workers at once), health transitions are decided on the row inside one transaction.

use async_trait::async_trait;

use crate::Result;
use crate::backups::{
    BackupFilter, BackupRecord, BackupResult, DatabaseFigures, DatabaseHealth, DatabaseRecord,
    HealthCheck, HealthCounts, HealthTransition, NotifierRecord, TargetRecord, VerificationRecord,
    WorkspaceBackupSettings,
};
use crate::clock::Timestamp;

/// How a check changes a database's health: the new health, and the status change if any.
pub type HealthRule<'a> = &'a (
        dyn Fn(&DatabaseHealth, &HealthCheck) -> (DatabaseHealth, Option<HealthTransition>)
            + Send
            + Sync
    );

#[async_trait]
pub trait BackupStore: Send + Sync {
    // Targets

    /// `Conflict` when the name is taken in the workspace.
    async fn create_target(&self, target: &TargetRecord) -> Result<()>;
    async fn list_targets(&self, workspace_id: &str) -> Result<Vec<TargetRecord>>;
    async fn target(&self, workspace_id: &str, id: &str) -> Result<Option<TargetRecord>>;
    async fn target_by_name(&self, workspace_id: &str, name: &str) -> Result<Option<TargetRecord>>;
    /// Replaces name, kind, settings, secrets and updated_at; false when missing; `Conflict`
    /// when the new name is taken.
    async fn update_target(&self, target: &TargetRecord) -> Result<bool>;
    /// False when missing; `Conflict` while a database or a backup refers to it.
    async fn delete_target(&self, workspace_id: &str, id: &str) -> Result<bool>;

    // Notifiers

    async fn create_notifier(&self, notifier: &NotifierRecord) -> Result<()>;
    async fn list_notifiers(&self, workspace_id: &str) -> Result<Vec<NotifierRecord>>;
    async fn notifier(&self, workspace_id: &str, id: &str) -> Result<Option<NotifierRecord>>;
    async fn notifier_by_name(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<NotifierRecord>>;
    /// Replaces everything but id, workspace and created_at; false when missing.
    async fn update_notifier(&self, notifier: &NotifierRecord) -> Result<bool>;
    async fn delete_notifier(&self, workspace_id: &str, id: &str) -> Result<bool>;

    // Databases

    /// `Conflict` when the name is taken; `BadRequest` when the target is not the workspace's.
    async fn create_database(&self, database: &DatabaseRecord) -> Result<()>;
    async fn list_databases(&self, workspace_id: &str) -> Result<Vec<DatabaseRecord>>;
    /// Every database of every workspace (schedulers and health checks).
    async fn all_databases(&self) -> Result<Vec<DatabaseRecord>>;
    async fn database(&self, workspace_id: &str, id: &str) -> Result<Option<DatabaseRecord>>;
    async fn database_by_name(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<DatabaseRecord>>;
    /// Replaces name, settings, secrets, target, enabled and updated_at (not health); false
    /// when missing.
    async fn update_database(&self, database: &DatabaseRecord) -> Result<bool>;
    /// Removes the database with its health checks and its job-clock entries (named
    /// `"<kind>:<database id>"` or `"<kind>:<database id>:<anything>"`, for any kind).
    /// `Conflict` while backups of it exist (they must be deleted first: nothing is dropped
    /// silently); false when missing.
    async fn delete_database(&self, workspace_id: &str, id: &str) -> Result<bool>;

    // Workspace backup settings

    async fn workspace_backup_settings(
        &self,
        workspace_id: &str,
    ) -> Result<Option<WorkspaceBackupSettings>>;
    /// Creates or replaces them.
    async fn put_workspace_backup_settings(&self, settings: &WorkspaceBackupSettings)
    -> Result<()>;

    // Job clock: one row per recurring job (`backup:<database id>`, `health:<database id>`,
    // `verify:<database id>`, `self-backup`, …) holding when it next runs.

    async fn job_next_run(&self, name: &str) -> Result<Option<Timestamp>>;
    /// Jobs whose name starts with `prefix` and whose next run is at or before `now`, oldest
    /// first, at most `limit`.
    async fn due_jobs(
        &self,
        prefix: &str,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<(String, Timestamp)>>;
    /// Compare and set: moves the job's next run from `expected` to `next` (with `expected`
    /// `None`: creates the job, only if it does not exist) and, in the same transaction,
    /// inserts `enqueue` when given. True for the one caller whose `expected` matched; false
    /// (and nothing changed) otherwise.
    async fn advance_job(
        &self,
        name: &str,
        expected: Option<Timestamp>,
        next: Timestamp,
        enqueue: Option<&BackupRecord>,
    ) -> Result<bool>;
    /// Removes a job (its database was deleted or its schedule switched off).
    async fn delete_job(&self, name: &str) -> Result<bool>;

    // Backup runs

    /// Adds a run (normally `Queued`: "backup now", retries).
    async fn insert_backup(&self, backup: &BackupRecord) -> Result<()>;
    /// Moves up to `limit` queued runs whose `not_before` is at or before `now` to `Running`
    /// with `started_at = now` and a lease for `lease_owner` until `lease_until`, oldest first.
    /// Concurrent claims (also from other processes) never return the same run.
    async fn claim_backups(
        &self,
        now: Timestamp,
        lease_owner: &str,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<BackupRecord>>;
    /// Extends a running run's lease and records its object name (and database name), if
    /// the lease is still `lease_owner`'s; false otherwise.
    async fn renew_backup(
        &self,
        id: &str,
        lease_owner: &str,
        lease_until: Timestamp,
        object: Option<&str>,
        db_name: Option<&str>,
    ) -> Result<bool>;
    /// Records the bytes a running run has stored so far (in `stored_bytes`, which its end
    /// replaces), if the lease is still `lease_owner`'s: the progress every replica can show.
    async fn report_backup_progress(
        &self,
        id: &str,
        lease_owner: &str,
        stored_bytes: i64,
    ) -> Result<bool>;
    /// Records how a running run ended and clears its lease, if the lease is still
    /// `lease_owner`'s; false otherwise (it was given up and taken over). A result without
    /// `object` / `db_name` keeps what [`BackupStore::renew_backup`] recorded. `Internal` when
    /// the result's status is not `Succeeded` or `Failed`.
    async fn finish_backup(
        &self,
        id: &str,
        lease_owner: &str,
        result: &BackupResult,
    ) -> Result<bool>;
    /// Running runs whose lease expired before `now` (their worker died): each is marked
    /// `Failed` with `error` and `finished_at = now`, its lease cleared, and returned (once,
    /// across processes), so retries can follow.
    async fn fail_abandoned_backups(
        &self,
        now: Timestamp,
        error: &str,
    ) -> Result<Vec<BackupRecord>>;
    async fn list_backups(
        &self,
        workspace_id: &str,
        filter: &BackupFilter,
    ) -> Result<Vec<BackupRecord>>;
    async fn backup(&self, workspace_id: &str, id: &str) -> Result<Option<BackupRecord>>;
    /// Removes a finished run's row with its verifications (its object is deleted by the
    /// caller first); `Conflict` while it is queued or running; false when missing.
    async fn delete_backup(&self, workspace_id: &str, id: &str) -> Result<bool>;
    /// Adds a verification and makes it the run's latest, in one transaction; false when the
    /// run does not exist.
    async fn record_verification(&self, verification: &VerificationRecord) -> Result<bool>;
    /// A run's verifications, newest first.
    async fn list_verifications(&self, backup_id: &str) -> Result<Vec<VerificationRecord>>;

    // Health checks

    /// Records a check and updates the database's health in one transaction, as `rule` says
    /// for the health stored when the check is recorded (the backup crate's rule: a run of
    /// failures makes a database down). Returns the status change, if any; `None` when the
    /// database does not exist (nothing is recorded) or nothing changed.
    async fn record_health_check(
        &self,
        check: &HealthCheck,
        rule: HealthRule<'_>,
    ) -> Result<Option<HealthTransition>>;
    /// Checks of a database since `since` (inclusive), counted.
    async fn health_counts(&self, database_id: &str, since: Timestamp) -> Result<HealthCounts>;
    /// A database's checks newest first, taken before `before` when given.
    async fn list_health_checks(
        &self,
        database_id: &str,
        before: Option<Timestamp>,
        limit: i64,
    ) -> Result<Vec<HealthCheck>>;
    /// Removes checks taken before `before`; returns how many went.
    async fn prune_health_checks(&self, before: Timestamp) -> Result<u64>;

    // Metrics

    /// Every registered database's backup figures (last success, failures since, last
    /// verification, health), in one read.
    async fn database_figures(&self) -> Result<Vec<DatabaseFigures>>;
}
