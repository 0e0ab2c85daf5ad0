//! Everything PostgreSQL backups keep: targets, notifiers, databases, workspace backup
//! settings, the job clock, backup runs (a queue claimed under leases), verifications and
//! health checks. One file per concept; this one holds what they share and the one
//! [`BackupStore`] implementation, which hands each method to its concept's file.
//!
//! Several processes may share the database. On PostgreSQL claims skip rows another
//! transaction is claiming (`FOR UPDATE SKIP LOCKED`) and re-check them once locked, and
//! deletions and health transitions read their row `FOR UPDATE` first; on SQLite every
//! multi-step change runs in one `BEGIN IMMEDIATE` transaction, which excludes every other
//! writer. On both the job clock moves by compare-and-set and leases are checked in the
//! `UPDATE`'s `WHERE`.
//!
//! Both schemas have the same tables and columns; JSON is stored as text, exactly as
//! serialized; sealed secrets are three columns (`key_id`, `wrapped_key`, `secret`), all set
//! or all NULL.

mod databases;
mod figures;
mod health;
mod jobs;
mod notifiers;
mod runs;
mod settings;
mod targets;
mod verifications;

use async_trait::async_trait;

use statehouse_core::backups::{
    BackupFilter, BackupRecord, BackupResult, DatabaseFigures, DatabaseRecord, HealthCheck,
    HealthCounts, HealthTransition, NotifierRecord, TargetRecord, VerificationRecord,
    WorkspaceBackupSettings,
};
use statehouse_core::clock::Timestamp;
use statehouse_core::crypto::SealedBody;
use statehouse_core::store::backups::{BackupStore, HealthRule};
use statehouse_core::{Error, Result};

use crate::SqlStore;
use crate::engine::{Dialect, Engine, Row};
use crate::error::DbError;
use crate::query::{Sql, sql};

// `delete_workspace` runs `delete_workspace_backups` in its transaction.
pub(crate) use settings::delete_workspace_backups;

/// A failed statement as backups' callers see it: a row this one refers to went away (or one
/// still refers to it) in a concurrent change; anything else as the store says it. Writes map
/// their errors with it; reads just use `?` (a SELECT breaks no foreign key).
pub(crate) fn err(e: DbError) -> Error {
    if e.is_foreign_key() {
        return Error::Conflict(
            "a backup target, database or run this change refers to was changed at the same time; \
             reload and retry"
                .into(),
        );
    }
    e.into()
}

/// [`err`], with a name the unique index on (workspace, name) found taken said in words.
fn named<'a>(what: &'a str, name: &'a str) -> impl FnOnce(DbError) -> Error + 'a {
    move |e| {
        if e.is_unique() {
            Error::Conflict(format!(
                "a {what} named {name:?} already exists in this workspace; choose another name or update that one"
            ))
        } else {
            err(e)
        }
    }
}

/// `statement` locking the rows it reads until the transaction ends (PostgreSQL, READ
/// COMMITTED); SQLite's write transaction already excludes every other writer.
fn locked<'a>(dialect: Dialect, statement: &str) -> Sql<'a> {
    Sql::built(format!("{statement}{}", dialect.pick("", " FOR UPDATE")))
}

/// A statement taking (workspace id, id) as `$1`, `$2`.
fn by_ids<'a>(statement: &'static str, workspace_id: &'a str, id: &'a str) -> Sql<'a> {
    sql(statement).bind(workspace_id).bind(id)
}

/// Binds a sealed secret's three columns (all NULL without one).
fn bind_sealed<'a>(q: Sql<'a>, sealed: Option<&'a SealedBody>) -> Sql<'a> {
    q.bind(sealed.map(|s| s.key_id.as_str()))
        .bind(sealed.map(|s| s.wrapped_key.as_slice()))
        .bind(sealed.map(|s| s.ciphertext.as_slice()))
}

fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

/// A list of strings as the JSON text stored for it.
fn list_text(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

fn string_list(row: &impl Row, column: &str) -> Result<Option<Vec<String>>> {
    row.get::<Option<String>>(column)?
        .map(|raw| {
            serde_json::from_str(&raw).map_err(|e| {
                Error::Internal(format!(
                    "stored column {column} is not a JSON list of strings: {e}"
                ))
            })
        })
        .transpose()
}

fn sealed_from(row: &impl Row) -> Result<Option<SealedBody>> {
    match (
        row.get::<Option<String>>("key_id")?,
        row.get::<Option<Vec<u8>>>("wrapped_key")?,
        row.get::<Option<Vec<u8>>>("secret")?,
    ) {
        (Some(key_id), Some(wrapped_key), Some(ciphertext)) => Ok(Some(SealedBody {
            key_id,
            wrapped_key,
            ciphertext,
        })),
        (None, None, None) => Ok(None),
        _ => Err(Error::Internal(
            "stored sealed secret is incomplete (key id, wrapped key and ciphertext go together)"
                .into(),
        )),
    }
}

/// Decodes every row.
fn decode<R: Row, T>(rows: &[R], from: impl Fn(&R) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(from).collect()
}

#[async_trait]
impl<E: Engine> BackupStore for SqlStore<E> {
    async fn create_target(&self, target: &TargetRecord) -> Result<()> {
        targets::create(self, target).await
    }

    async fn list_targets(&self, workspace_id: &str) -> Result<Vec<TargetRecord>> {
        targets::list(self, workspace_id).await
    }

    async fn target(&self, workspace_id: &str, id: &str) -> Result<Option<TargetRecord>> {
        targets::by(self, targets::BY_ID, workspace_id, id).await
    }

    async fn target_by_name(&self, workspace_id: &str, name: &str) -> Result<Option<TargetRecord>> {
        targets::by(self, targets::BY_NAME, workspace_id, name).await
    }

    async fn update_target(&self, target: &TargetRecord) -> Result<bool> {
        targets::update(self, target).await
    }

    async fn delete_target(&self, workspace_id: &str, id: &str) -> Result<bool> {
        targets::delete(self, workspace_id, id).await
    }

    async fn create_notifier(&self, notifier: &NotifierRecord) -> Result<()> {
        notifiers::create(self, notifier).await
    }

    async fn list_notifiers(&self, workspace_id: &str) -> Result<Vec<NotifierRecord>> {
        notifiers::list(self, workspace_id).await
    }

    async fn notifier(&self, workspace_id: &str, id: &str) -> Result<Option<NotifierRecord>> {
        notifiers::by(self, notifiers::BY_ID, workspace_id, id).await
    }

    async fn notifier_by_name(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<NotifierRecord>> {
        notifiers::by(self, notifiers::BY_NAME, workspace_id, name).await
    }

    async fn update_notifier(&self, notifier: &NotifierRecord) -> Result<bool> {
        notifiers::update(self, notifier).await
    }

    async fn delete_notifier(&self, workspace_id: &str, id: &str) -> Result<bool> {
        notifiers::delete(self, workspace_id, id).await
    }

    async fn create_database(&self, database: &DatabaseRecord) -> Result<()> {
        databases::create(self, database).await
    }

    async fn list_databases(&self, workspace_id: &str) -> Result<Vec<DatabaseRecord>> {
        databases::list(self, workspace_id).await
    }

    async fn all_databases(&self) -> Result<Vec<DatabaseRecord>> {
        databases::all(self).await
    }

    async fn database(&self, workspace_id: &str, id: &str) -> Result<Option<DatabaseRecord>> {
        databases::by(self, databases::BY_ID, workspace_id, id).await
    }

    async fn database_by_name(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<DatabaseRecord>> {
        databases::by(self, databases::BY_NAME, workspace_id, name).await
    }

    async fn update_database(&self, database: &DatabaseRecord) -> Result<bool> {
        databases::update(self, database).await
    }

    async fn delete_database(&self, workspace_id: &str, id: &str) -> Result<bool> {
        databases::delete(self, workspace_id, id).await
    }

    async fn workspace_backup_settings(
        &self,
        workspace_id: &str,
    ) -> Result<Option<WorkspaceBackupSettings>> {
        settings::get(self, workspace_id).await
    }

    async fn put_workspace_backup_settings(
        &self,
        settings: &WorkspaceBackupSettings,
    ) -> Result<()> {
        settings::put(self, settings).await
    }

    async fn job_next_run(&self, name: &str) -> Result<Option<Timestamp>> {
        jobs::next_run(self, name).await
    }

    async fn due_jobs(
        &self,
        prefix: &str,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<(String, Timestamp)>> {
        jobs::due(self, prefix, now, limit).await
    }

    async fn advance_job(
        &self,
        name: &str,
        expected: Option<Timestamp>,
        next: Timestamp,
        enqueue: Option<&BackupRecord>,
    ) -> Result<bool> {
        jobs::advance(self, name, expected, next, enqueue).await
    }

    async fn delete_job(&self, name: &str) -> Result<bool> {
        jobs::delete(self, name).await
    }

    async fn insert_backup(&self, backup: &BackupRecord) -> Result<()> {
        runs::insert(self, backup).await
    }

    async fn claim_backups(
        &self,
        now: Timestamp,
        lease_owner: &str,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<BackupRecord>> {
        runs::claim(self, now, lease_owner, lease_until, limit).await
    }

    async fn renew_backup(
        &self,
        id: &str,
        lease_owner: &str,
        lease_until: Timestamp,
        object: Option<&str>,
        db_name: Option<&str>,
    ) -> Result<bool> {
        runs::renew(self, id, lease_owner, lease_until, object, db_name).await
    }

    async fn report_backup_progress(
        &self,
        id: &str,
        lease_owner: &str,
        stored_bytes: i64,
    ) -> Result<bool> {
        runs::progress(self, id, lease_owner, stored_bytes).await
    }

    async fn finish_backup(
        &self,
        id: &str,
        lease_owner: &str,
        result: &BackupResult,
    ) -> Result<bool> {
        runs::finish(self, id, lease_owner, result).await
    }

    async fn fail_abandoned_backups(
        &self,
        now: Timestamp,
        error: &str,
    ) -> Result<Vec<BackupRecord>> {
        runs::fail_abandoned(self, now, error).await
    }

    async fn list_backups(
        &self,
        workspace_id: &str,
        filter: &BackupFilter,
    ) -> Result<Vec<BackupRecord>> {
        runs::list(self, workspace_id, filter).await
    }

    async fn backup(&self, workspace_id: &str, id: &str) -> Result<Option<BackupRecord>> {
        runs::get(self, workspace_id, id).await
    }

    async fn delete_backup(&self, workspace_id: &str, id: &str) -> Result<bool> {
        runs::delete(self, workspace_id, id).await
    }

    async fn record_verification(&self, verification: &VerificationRecord) -> Result<bool> {
        verifications::record(self, verification).await
    }

    async fn list_verifications(&self, backup_id: &str) -> Result<Vec<VerificationRecord>> {
        verifications::list(self, backup_id).await
    }

    async fn record_health_check(
        &self,
        check: &HealthCheck,
        rule: HealthRule<'_>,
    ) -> Result<Option<HealthTransition>> {
        health::record(self, check, rule).await
    }

    async fn health_counts(&self, database_id: &str, since: Timestamp) -> Result<HealthCounts> {
        health::counts(self, database_id, since).await
    }

    async fn list_health_checks(
        &self,
        database_id: &str,
        before: Option<Timestamp>,
        limit: i64,
    ) -> Result<Vec<HealthCheck>> {
        health::list(self, database_id, before, limit).await
    }

    async fn prune_health_checks(&self, before: Timestamp) -> Result<u64> {
        health::prune(self, before).await
    }

    async fn database_figures(&self) -> Result<Vec<DatabaseFigures>> {
        figures::all(self).await
    }
}
