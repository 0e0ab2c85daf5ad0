//! What both SQL stores share for [`super::backups::BackupStore`]: the statements (one text for
//! both dialects: `$n` placeholders, which SQLite reads as numbered parameters too), the values
//! to bind in placeholder order, decoding of rows, and the health-check decision. Each store
//! keeps only the flow: transactions, row locks (`FOR UPDATE` / `SKIP LOCKED` on PostgreSQL,
//! `BEGIN IMMEDIATE` on SQLite) and which statement runs when.
//!
//! Both schemas (migrations 0006 and 0008) have the same tables and columns; JSON is stored as text,
//! exactly as serialized; sealed secrets are three columns (`key_id`, `wrapped_key`, `secret`),
//! all set or all NULL.

use super::search_sql::Dialect;
use crate::backups::{
    BackupFilter, BackupKind, BackupRecord, BackupResult, BackupStatus, BackupTrigger,
    DatabaseHealth, DatabaseRecord, HealthCheck, HealthCounts, HealthStatus, HealthTransition,
    NotifierRecord, TargetRecord, VerificationRecord, VerificationSummary, WorkspaceBackupSettings,
};
use crate::clock::Timestamp;
use crate::crypto::SealedBody;
use crate::{Error, Result};

/// A value to bind, in placeholder order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
}

fn text_arg(value: &str) -> Arg {
    Arg::Text(Some(value.to_owned()))
}

fn opt_text_arg(value: Option<&str>) -> Arg {
    Arg::Text(value.map(str::to_owned))
}

fn int_arg(value: i64) -> Arg {
    Arg::Int(Some(value))
}

fn time_arg(value: Option<Timestamp>) -> Arg {
    Arg::Int(value.map(Timestamp::millis))
}

fn json_arg(value: &serde_json::Value) -> Arg {
    Arg::Text(Some(value.to_string()))
}

fn sealed_args(sealed: Option<&SealedBody>) -> [Arg; 3] {
    [
        opt_text_arg(sealed.map(|s| s.key_id.as_str())),
        Arg::Bytes(sealed.map(|s| s.wrapped_key.clone())),
        Arg::Bytes(sealed.map(|s| s.ciphertext.clone())),
    ]
}

/// Reading a column of a result row, whatever the backend (each store wraps its row type).
pub trait Columns {
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    fn opt_flag(&self, column: &str) -> Result<Option<bool>>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>>;
}

fn null(column: &str) -> Error {
    Error::Internal(format!("stored column {column} is unexpectedly NULL"))
}

fn text(row: &dyn Columns, column: &str) -> Result<String> {
    row.opt_text(column)?.ok_or_else(|| null(column))
}

/// A NOT NULL integer column (also counts and sums).
pub fn int(row: &dyn Columns, column: &str) -> Result<i64> {
    row.opt_int(column)?.ok_or_else(|| null(column))
}

fn time(row: &dyn Columns, column: &str) -> Result<Timestamp> {
    int(row, column).map(Timestamp)
}

fn opt_time(row: &dyn Columns, column: &str) -> Result<Option<Timestamp>> {
    Ok(row.opt_int(column)?.map(Timestamp))
}

fn flag(row: &dyn Columns, column: &str) -> Result<bool> {
    row.opt_flag(column)?.ok_or_else(|| null(column))
}

fn json(row: &dyn Columns, column: &str) -> Result<serde_json::Value> {
    let raw = text(row, column)?;
    serde_json::from_str(&raw)
        .map_err(|e| Error::Internal(format!("stored column {column} is not JSON: {e}")))
}

fn string_list(row: &dyn Columns, column: &str) -> Result<Option<Vec<String>>> {
    row.opt_text(column)?
        .map(|raw| {
            serde_json::from_str(&raw).map_err(|e| {
                Error::Internal(format!(
                    "stored column {column} is not a JSON list of strings: {e}"
                ))
            })
        })
        .transpose()
}

fn sealed(row: &dyn Columns) -> Result<Option<SealedBody>> {
    match (
        row.opt_text("key_id")?,
        row.opt_bytes("wrapped_key")?,
        row.opt_bytes("secret")?,
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

/// The refusal of a name the unique index on (workspace, name) found taken.
pub fn name_taken(what: &str, name: &str) -> Error {
    Error::Conflict(format!(
        "a {what} named {name:?} already exists in this workspace; choose another name or update that one"
    ))
}

/// A row this one refers to went away (or one still refers to it) in a concurrent change.
pub fn reference_changed() -> Error {
    Error::Conflict(
        "a backup target, database or run this change refers to was changed at the same time; \
         reload and retry"
            .into(),
    )
}

// ---- targets ------------------------------------------------------------------------------

pub const LIST_TARGETS: &str = "SELECT id, workspace_id, name, kind, settings, created_at, updated_at, \
    key_id, wrapped_key, secret FROM backup_targets WHERE workspace_id = $1 ORDER BY name";
pub const TARGET_BY_ID: &str = "SELECT id, workspace_id, name, kind, settings, created_at, updated_at, \
    key_id, wrapped_key, secret FROM backup_targets WHERE workspace_id = $1 AND id = $2";
pub const TARGET_BY_NAME: &str = "SELECT id, workspace_id, name, kind, settings, created_at, updated_at, \
    key_id, wrapped_key, secret FROM backup_targets WHERE workspace_id = $1 AND name = $2";
pub const INSERT_TARGET: &str = "INSERT INTO backup_targets (id, workspace_id, name, kind, settings, \
    created_at, updated_at, key_id, wrapped_key, secret) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
pub const UPDATE_TARGET: &str = "UPDATE backup_targets SET name = $3, kind = $4, settings = $5, \
    updated_at = $6, key_id = $7, wrapped_key = $8, secret = $9 WHERE workspace_id = $1 AND id = $2";
/// The target's row (to lock it on PostgreSQL before counting what refers to it).
pub const TARGET_EXISTS: &str = "SELECT id FROM backup_targets WHERE workspace_id = $1 AND id = $2";
/// `databases` and `backups` referring to target `$1`.
pub const TARGET_REFERENCES: &str = "SELECT \
    (SELECT COUNT(*) FROM backup_databases WHERE target_id = $1) AS databases, \
    (SELECT COUNT(*) FROM backups WHERE target_id = $1) AS backups";
pub const DELETE_TARGET: &str = "DELETE FROM backup_targets WHERE workspace_id = $1 AND id = $2";

pub fn insert_target_args(t: &TargetRecord) -> Vec<Arg> {
    let mut args = vec![
        text_arg(&t.id),
        text_arg(&t.workspace_id),
        text_arg(&t.name),
        text_arg(&t.kind),
        json_arg(&t.settings),
        int_arg(t.created_at.millis()),
        int_arg(t.updated_at.millis()),
    ];
    args.extend(sealed_args(t.secrets.as_ref()));
    args
}

pub fn update_target_args(t: &TargetRecord) -> Vec<Arg> {
    let mut args = vec![
        text_arg(&t.workspace_id),
        text_arg(&t.id),
        text_arg(&t.name),
        text_arg(&t.kind),
        json_arg(&t.settings),
        int_arg(t.updated_at.millis()),
    ];
    args.extend(sealed_args(t.secrets.as_ref()));
    args
}

pub fn target_from(row: &dyn Columns) -> Result<TargetRecord> {
    Ok(TargetRecord {
        id: text(row, "id")?,
        workspace_id: text(row, "workspace_id")?,
        name: text(row, "name")?,
        kind: text(row, "kind")?,
        settings: json(row, "settings")?,
        secrets: sealed(row)?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// `None` when nothing refers to the target; the refusal otherwise.
pub fn target_in_use(row: &dyn Columns) -> Result<Option<Error>> {
    let (databases, backups) = (int(row, "databases")?, int(row, "backups")?);
    if databases == 0 && backups == 0 {
        return Ok(None);
    }
    Ok(Some(Error::Conflict(format!(
        "the backup target is still used by {databases} database(s) and {backups} backup(s); \
         move those databases to another target and delete those backups first"
    ))))
}

// ---- notifiers ----------------------------------------------------------------------------

pub const LIST_NOTIFIERS: &str = "SELECT id, workspace_id, name, kind, settings, events, database_ids, \
    enabled, created_at, updated_at, key_id, wrapped_key, secret FROM notifiers \
    WHERE workspace_id = $1 ORDER BY name";
pub const NOTIFIER_BY_ID: &str = "SELECT id, workspace_id, name, kind, settings, events, database_ids, \
    enabled, created_at, updated_at, key_id, wrapped_key, secret FROM notifiers \
    WHERE workspace_id = $1 AND id = $2";
pub const NOTIFIER_BY_NAME: &str = "SELECT id, workspace_id, name, kind, settings, events, database_ids, \
    enabled, created_at, updated_at, key_id, wrapped_key, secret FROM notifiers \
    WHERE workspace_id = $1 AND name = $2";
pub const INSERT_NOTIFIER: &str = "INSERT INTO notifiers (id, workspace_id, name, kind, settings, events, \
    database_ids, enabled, created_at, updated_at, key_id, wrapped_key, secret) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
pub const UPDATE_NOTIFIER: &str = "UPDATE notifiers SET name = $3, kind = $4, settings = $5, events = $6, \
    database_ids = $7, enabled = $8, updated_at = $9, key_id = $10, wrapped_key = $11, secret = $12 \
    WHERE workspace_id = $1 AND id = $2";
pub const DELETE_NOTIFIER: &str = "DELETE FROM notifiers WHERE workspace_id = $1 AND id = $2";

fn list_arg(list: &[String]) -> Arg {
    Arg::Text(Some(serde_json::Value::from(list.to_vec()).to_string()))
}

pub fn insert_notifier_args(n: &NotifierRecord) -> Vec<Arg> {
    let mut args = vec![
        text_arg(&n.id),
        text_arg(&n.workspace_id),
        text_arg(&n.name),
        text_arg(&n.kind),
        json_arg(&n.settings),
        list_arg(&n.events),
        n.database_ids.as_deref().map_or(Arg::Text(None), list_arg),
        Arg::Bool(Some(n.enabled)),
        int_arg(n.created_at.millis()),
        int_arg(n.updated_at.millis()),
    ];
    args.extend(sealed_args(n.secrets.as_ref()));
    args
}

pub fn update_notifier_args(n: &NotifierRecord) -> Vec<Arg> {
    let mut args = vec![
        text_arg(&n.workspace_id),
        text_arg(&n.id),
        text_arg(&n.name),
        text_arg(&n.kind),
        json_arg(&n.settings),
        list_arg(&n.events),
        n.database_ids.as_deref().map_or(Arg::Text(None), list_arg),
        Arg::Bool(Some(n.enabled)),
        int_arg(n.updated_at.millis()),
    ];
    args.extend(sealed_args(n.secrets.as_ref()));
    args
}

pub fn notifier_from(row: &dyn Columns) -> Result<NotifierRecord> {
    Ok(NotifierRecord {
        id: text(row, "id")?,
        workspace_id: text(row, "workspace_id")?,
        name: text(row, "name")?,
        kind: text(row, "kind")?,
        settings: json(row, "settings")?,
        secrets: sealed(row)?,
        events: string_list(row, "events")?.ok_or_else(|| null("events"))?,
        database_ids: string_list(row, "database_ids")?,
        enabled: flag(row, "enabled")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

// ---- databases ----------------------------------------------------------------------------

pub const LIST_DATABASES: &str = "SELECT id, workspace_id, name, settings, target_id, enabled, created_at, \
    updated_at, key_id, wrapped_key, secret, health_status, health_failures, health_changed_at, \
    health_last_check_at, health_last_error FROM backup_databases WHERE workspace_id = $1 ORDER BY name";
pub const ALL_DATABASES: &str = "SELECT id, workspace_id, name, settings, target_id, enabled, created_at, \
    updated_at, key_id, wrapped_key, secret, health_status, health_failures, health_changed_at, \
    health_last_check_at, health_last_error FROM backup_databases ORDER BY workspace_id, name";
pub const DATABASE_BY_ID: &str = "SELECT id, workspace_id, name, settings, target_id, enabled, created_at, \
    updated_at, key_id, wrapped_key, secret, health_status, health_failures, health_changed_at, \
    health_last_check_at, health_last_error FROM backup_databases WHERE workspace_id = $1 AND id = $2";
pub const DATABASE_BY_NAME: &str = "SELECT id, workspace_id, name, settings, target_id, enabled, created_at, \
    updated_at, key_id, wrapped_key, secret, health_status, health_failures, health_changed_at, \
    health_last_check_at, health_last_error FROM backup_databases WHERE workspace_id = $1 AND name = $2";
pub const INSERT_DATABASE: &str = "INSERT INTO backup_databases (id, workspace_id, name, settings, \
    target_id, enabled, created_at, updated_at, key_id, wrapped_key, secret) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub const UPDATE_DATABASE: &str = "UPDATE backup_databases SET name = $3, settings = $4, target_id = $5, \
    enabled = $6, updated_at = $7, key_id = $8, wrapped_key = $9, secret = $10 \
    WHERE workspace_id = $1 AND id = $2";
/// The database's row (to lock it on PostgreSQL before counting its backups).
pub const DATABASE_EXISTS: &str =
    "SELECT id FROM backup_databases WHERE workspace_id = $1 AND id = $2";
pub const DATABASE_BACKUPS: &str = "SELECT COUNT(*) AS n FROM backups WHERE database_id = $1";
/// Job names that may belong to database `$1` (a superset: [`database_job`] decides).
pub const DATABASE_JOB_CANDIDATES: &str =
    "SELECT name FROM job_clock WHERE name LIKE '%' || $1 || '%'";
pub const DELETE_DATABASE: &str =
    "DELETE FROM backup_databases WHERE workspace_id = $1 AND id = $2";

pub fn insert_database_args(d: &DatabaseRecord) -> Vec<Arg> {
    let mut args = vec![
        text_arg(&d.id),
        text_arg(&d.workspace_id),
        text_arg(&d.name),
        json_arg(&d.settings),
        text_arg(&d.target_id),
        Arg::Bool(Some(d.enabled)),
        int_arg(d.created_at.millis()),
        int_arg(d.updated_at.millis()),
    ];
    args.extend(sealed_args(d.secrets.as_ref()));
    args
}

pub fn update_database_args(d: &DatabaseRecord) -> Vec<Arg> {
    let mut args = vec![
        text_arg(&d.workspace_id),
        text_arg(&d.id),
        text_arg(&d.name),
        json_arg(&d.settings),
        text_arg(&d.target_id),
        Arg::Bool(Some(d.enabled)),
        int_arg(d.updated_at.millis()),
    ];
    args.extend(sealed_args(d.secrets.as_ref()));
    args
}

/// Refusal of a database whose target is not one of its workspace's.
pub fn foreign_target(target_id: &str) -> Error {
    Error::BadRequest(format!(
        "backup target {target_id:?} does not exist in this workspace; create it first or pick one of the workspace's targets"
    ))
}

fn health_status(row: &dyn Columns, column: &str) -> Result<HealthStatus> {
    let raw = text(row, column)?;
    HealthStatus::parse(&raw)
        .ok_or_else(|| Error::Internal(format!("stored health status {raw:?} is unknown")))
}

pub fn database_health_from(row: &dyn Columns) -> Result<DatabaseHealth> {
    Ok(DatabaseHealth {
        status: health_status(row, "health_status")?,
        consecutive_failures: int(row, "health_failures")?,
        changed_at: opt_time(row, "health_changed_at")?,
        last_check_at: opt_time(row, "health_last_check_at")?,
        last_error: row.opt_text("health_last_error")?,
    })
}

pub fn database_from(row: &dyn Columns) -> Result<DatabaseRecord> {
    Ok(DatabaseRecord {
        id: text(row, "id")?,
        workspace_id: text(row, "workspace_id")?,
        name: text(row, "name")?,
        settings: json(row, "settings")?,
        secrets: sealed(row)?,
        target_id: text(row, "target_id")?,
        enabled: flag(row, "enabled")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        health: database_health_from(row)?,
    })
}

/// Whether job `name` belongs to the database: `<kind>:<database id>` or
/// `<kind>:<database id>:<anything>`.
pub fn database_job(name: &str, database_id: &str) -> bool {
    name.split_once(':').is_some_and(|(_, rest)| {
        rest.strip_prefix(database_id)
            .is_some_and(|tail| tail.is_empty() || tail.starts_with(':'))
    })
}

pub fn database_in_use(backups: i64) -> Error {
    Error::Conflict(format!(
        "the database still has {backups} backup(s); delete them first (nothing is dropped silently)"
    ))
}

// ---- workspace backup settings ------------------------------------------------------------

pub const WORKSPACE_SETTINGS: &str = "SELECT workspace_id, settings, updated_at, key_id, wrapped_key, secret \
    FROM workspace_backup_settings WHERE workspace_id = $1";
pub const PUT_WORKSPACE_SETTINGS: &str = "INSERT INTO workspace_backup_settings (workspace_id, settings, \
    updated_at, key_id, wrapped_key, secret) VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (workspace_id) DO UPDATE SET settings = excluded.settings, \
    updated_at = excluded.updated_at, key_id = excluded.key_id, \
    wrapped_key = excluded.wrapped_key, secret = excluded.secret";

pub fn workspace_settings_args(s: &WorkspaceBackupSettings) -> Vec<Arg> {
    let mut args = vec![
        text_arg(&s.workspace_id),
        json_arg(&s.settings),
        int_arg(s.updated_at.millis()),
    ];
    args.extend(sealed_args(s.secrets.as_ref()));
    args
}

pub fn workspace_settings_from(row: &dyn Columns) -> Result<WorkspaceBackupSettings> {
    Ok(WorkspaceBackupSettings {
        workspace_id: text(row, "workspace_id")?,
        settings: json(row, "settings")?,
        secrets: sealed(row)?,
        updated_at: time(row, "updated_at")?,
    })
}

// ---- workspace deletion -------------------------------------------------------------------

/// What of a workspace's backup configuration would be lost with it.
pub const WORKSPACE_BACKUP_ROWS: &str = "SELECT \
    (SELECT COUNT(*) FROM backup_databases WHERE workspace_id = $1) AS databases, \
    (SELECT COUNT(*) FROM backup_targets WHERE workspace_id = $1) AS targets, \
    (SELECT COUNT(*) FROM notifiers WHERE workspace_id = $1) AS notifiers";
/// The workspace's own backup settings go with it (like its tokens).
pub const DELETE_WORKSPACE_SETTINGS: &str =
    "DELETE FROM workspace_backup_settings WHERE workspace_id = $1";

/// `None` when the workspace has no backup databases, targets or notifiers; the refusal
/// otherwise.
pub fn workspace_backups_in_use(row: &dyn Columns) -> Result<Option<Error>> {
    let databases = int(row, "databases")?;
    let targets = int(row, "targets")?;
    let notifiers = int(row, "notifiers")?;
    if databases + targets + notifiers == 0 {
        return Ok(None);
    }
    Ok(Some(Error::Conflict(format!(
        "the workspace still has {databases} backup database(s), {targets} backup target(s) and \
         {notifiers} notifier(s); delete them (and their backups) first"
    ))))
}

// ---- job clock ----------------------------------------------------------------------------

pub const JOB_NEXT_RUN: &str = "SELECT next_run_at FROM job_clock WHERE name = $1";
/// Prefix match by `substr` (exact and case-sensitive on both backends, unlike `LIKE`).
pub const DUE_JOBS: &str = "SELECT name, next_run_at FROM job_clock \
    WHERE substr(name, 1, length($1)) = $1 AND next_run_at <= $2 \
    ORDER BY next_run_at, name LIMIT $3";
pub const ADVANCE_JOB: &str =
    "UPDATE job_clock SET next_run_at = $2 WHERE name = $1 AND next_run_at = $3";
pub const CREATE_JOB: &str = "INSERT INTO job_clock (name, next_run_at) VALUES ($1, $2) \
    ON CONFLICT (name) DO NOTHING";
pub const DELETE_JOB: &str = "DELETE FROM job_clock WHERE name = $1";

pub fn due_job_from(row: &dyn Columns) -> Result<(String, Timestamp)> {
    Ok((text(row, "name")?, time(row, "next_run_at")?))
}

// ---- backup runs --------------------------------------------------------------------------

/// Every column of a run, for `SELECT` and `RETURNING`.
const BACKUP_COLUMNS: &str = "id, workspace_id, database_id, db_name, kind, server_run, target_id, \
    object, status, run_trigger, attempt, requested_by, queued_at, not_before, started_at, \
    finished_at, lease_owner, lease_until, stored_bytes, dump_bytes, sha256, server_version, error, \
    detail, verified_at, verify_level, verify_ok";
pub const BACKUP_BY_ID: &str = "SELECT id, workspace_id, database_id, db_name, kind, server_run, \
    target_id, object, status, run_trigger, attempt, requested_by, queued_at, not_before, started_at, \
    finished_at, lease_owner, lease_until, stored_bytes, dump_bytes, sha256, server_version, error, \
    detail, verified_at, verify_level, verify_ok FROM backups WHERE workspace_id = $1 AND id = $2";
pub const INSERT_BACKUP: &str = "INSERT INTO backups (id, workspace_id, database_id, db_name, target_id, \
    object, status, run_trigger, attempt, requested_by, queued_at, not_before, started_at, finished_at, \
    lease_owner, lease_until, stored_bytes, dump_bytes, sha256, server_version, error, detail, kind, \
    server_run) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
    $20, $21, $22, $23, $24)";
pub const RENEW_BACKUP: &str = "UPDATE backups SET lease_until = $3, object = COALESCE($4, object), \
    db_name = COALESCE($5, db_name) WHERE id = $1 AND lease_owner = $2 AND status = 'running'";
pub const FINISH_BACKUP: &str = "UPDATE backups SET status = $3, finished_at = $4, \
    db_name = COALESCE($5, db_name), object = COALESCE($6, object), stored_bytes = $7, \
    dump_bytes = $8, sha256 = $9, server_version = $10, error = $11, detail = $12, \
    lease_owner = NULL, lease_until = NULL \
    WHERE id = $1 AND lease_owner = $2 AND status = 'running'";
pub const BACKUP_STATUS: &str = "SELECT status FROM backups WHERE workspace_id = $1 AND id = $2";
pub const DELETE_BACKUP: &str = "DELETE FROM backups WHERE workspace_id = $1 AND id = $2";

/// On PostgreSQL, rows another process is claiming right now are skipped, not waited for (and
/// the outer `WHERE` re-checks the status on the row as it is once locked). The selection is a
/// `MATERIALIZED` CTE so it runs once: as a sub-select of the `UPDATE` PostgreSQL may rescan
/// it, and each rescan skips the rows the statement already changed and returns the next ones
/// (a `LIMIT 1` claim then took every due run).
fn skip_locked(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
    }
}

/// `$1` now, `$2` lease owner, `$3` lease until, `$4` limit. Returns the claimed runs.
pub fn claim_backups_sql(dialect: Dialect) -> String {
    format!(
        "WITH due AS MATERIALIZED (SELECT id FROM backups WHERE status = 'queued' \
         AND not_before <= $1 ORDER BY not_before, queued_at, id LIMIT $4{}) \
         UPDATE backups SET status = 'running', started_at = $1, lease_owner = $2, lease_until = $3 \
         WHERE id IN (SELECT id FROM due) AND status = 'queued' AND not_before <= $1 \
         RETURNING {BACKUP_COLUMNS}",
        skip_locked(dialect)
    )
}

/// `$1` now, `$2` error. Returns the runs it failed.
pub fn fail_abandoned_sql(dialect: Dialect) -> String {
    format!(
        "WITH abandoned AS MATERIALIZED (SELECT id FROM backups WHERE status = 'running' \
         AND lease_until < $1{}) \
         UPDATE backups SET status = 'failed', finished_at = $1, error = $2, lease_owner = NULL, \
         lease_until = NULL WHERE id IN (SELECT id FROM abandoned) AND status = 'running' \
         AND lease_until < $1 RETURNING {BACKUP_COLUMNS}",
        skip_locked(dialect)
    )
}

/// Claimed or failed runs in queue order (`RETURNING` gives no order).
pub fn sort_runs(runs: &mut [BackupRecord]) {
    runs.sort_by(|a, b| {
        (a.not_before, a.queued_at, &a.id).cmp(&(b.not_before, b.queued_at, &b.id))
    });
}

pub fn insert_backup_args(b: &BackupRecord) -> Vec<Arg> {
    vec![
        text_arg(&b.id),
        text_arg(&b.workspace_id),
        text_arg(&b.database_id),
        opt_text_arg(b.db_name.as_deref()),
        text_arg(&b.target_id),
        opt_text_arg(b.object.as_deref()),
        text_arg(b.status.as_str()),
        text_arg(b.trigger.as_str()),
        int_arg(b.attempt),
        text_arg(&b.requested_by),
        int_arg(b.queued_at.millis()),
        int_arg(b.not_before.millis()),
        time_arg(b.started_at),
        time_arg(b.finished_at),
        opt_text_arg(b.lease_owner.as_deref()),
        time_arg(b.lease_until),
        Arg::Int(b.stored_bytes),
        Arg::Int(b.dump_bytes),
        opt_text_arg(b.sha256.as_deref()),
        opt_text_arg(b.server_version.as_deref()),
        opt_text_arg(b.error.as_deref()),
        json_arg(&b.detail),
        text_arg(b.kind.as_str()),
        opt_text_arg(b.server_run.as_deref()),
    ]
}

pub fn renew_backup_args(
    id: &str,
    lease_owner: &str,
    lease_until: Timestamp,
    object: Option<&str>,
    db_name: Option<&str>,
) -> Vec<Arg> {
    vec![
        text_arg(id),
        text_arg(lease_owner),
        int_arg(lease_until.millis()),
        opt_text_arg(object),
        opt_text_arg(db_name),
    ]
}

/// `Internal` when `result` does not end the run (only `Succeeded` and `Failed` do).
pub fn finish_backup_args(id: &str, lease_owner: &str, r: &BackupResult) -> Result<Vec<Arg>> {
    if !matches!(r.status, BackupStatus::Succeeded | BackupStatus::Failed) {
        return Err(Error::Internal(format!(
            "a backup run cannot finish as {:?}: only succeeded or failed end a run",
            r.status.as_str()
        )));
    }
    Ok(vec![
        text_arg(id),
        text_arg(lease_owner),
        text_arg(r.status.as_str()),
        int_arg(r.finished_at.millis()),
        opt_text_arg(r.db_name.as_deref()),
        opt_text_arg(r.object.as_deref()),
        Arg::Int(r.stored_bytes),
        Arg::Int(r.dump_bytes),
        opt_text_arg(r.sha256.as_deref()),
        opt_text_arg(r.server_version.as_deref()),
        opt_text_arg(r.error.as_deref()),
        json_arg(&r.detail),
    ])
}

/// The listing: the workspace's runs, newest first, filtered and paged.
pub fn list_backups_query(workspace_id: &str, filter: &BackupFilter) -> (String, Vec<Arg>) {
    let mut sql = format!("SELECT {BACKUP_COLUMNS} FROM backups WHERE workspace_id = $1");
    let mut args = vec![text_arg(workspace_id)];
    if let Some(database_id) = &filter.database_id {
        args.push(text_arg(database_id));
        sql.push_str(&format!(" AND database_id = ${}", args.len()));
    }
    if let Some(status) = filter.status {
        args.push(text_arg(status.as_str()));
        sql.push_str(&format!(" AND status = ${}", args.len()));
    }
    if let Some(server_run) = &filter.server_run {
        args.push(text_arg(server_run));
        sql.push_str(&format!(" AND server_run = ${}", args.len()));
    }
    if let Some((queued_at, id)) = &filter.before {
        args.push(int_arg(queued_at.millis()));
        let t = args.len();
        args.push(text_arg(id));
        let i = args.len();
        sql.push_str(&format!(
            " AND (queued_at < ${t} OR (queued_at = ${t} AND id < ${i}))"
        ));
    }
    args.push(int_arg(filter.limit));
    sql.push_str(&format!(
        " ORDER BY queued_at DESC, id DESC LIMIT ${}",
        args.len()
    ));
    (sql, args)
}

pub fn backup_from(row: &dyn Columns) -> Result<BackupRecord> {
    let status = text(row, "status")?;
    let trigger = text(row, "run_trigger")?;
    let kind = text(row, "kind")?;
    let verification = match (
        opt_time(row, "verified_at")?,
        row.opt_text("verify_level")?,
        row.opt_flag("verify_ok")?,
    ) {
        (Some(at), Some(level), Some(ok)) => Some(VerificationSummary { at, level, ok }),
        _ => None,
    };
    Ok(BackupRecord {
        id: text(row, "id")?,
        workspace_id: text(row, "workspace_id")?,
        database_id: text(row, "database_id")?,
        db_name: row.opt_text("db_name")?,
        kind: BackupKind::parse(&kind)
            .ok_or_else(|| Error::Internal(format!("stored backup kind {kind:?} is unknown")))?,
        server_run: row.opt_text("server_run")?,
        target_id: text(row, "target_id")?,
        object: row.opt_text("object")?,
        status: BackupStatus::parse(&status).ok_or_else(|| {
            Error::Internal(format!("stored backup status {status:?} is unknown"))
        })?,
        trigger: BackupTrigger::parse(&trigger).ok_or_else(|| {
            Error::Internal(format!("stored backup trigger {trigger:?} is unknown"))
        })?,
        attempt: int(row, "attempt")?,
        requested_by: text(row, "requested_by")?,
        queued_at: time(row, "queued_at")?,
        not_before: time(row, "not_before")?,
        started_at: opt_time(row, "started_at")?,
        finished_at: opt_time(row, "finished_at")?,
        lease_owner: row.opt_text("lease_owner")?,
        lease_until: opt_time(row, "lease_until")?,
        stored_bytes: row.opt_int("stored_bytes")?,
        dump_bytes: row.opt_int("dump_bytes")?,
        sha256: row.opt_text("sha256")?,
        server_version: row.opt_text("server_version")?,
        error: row.opt_text("error")?,
        detail: json(row, "detail")?,
        verification,
    })
}

/// `None` when the run may be deleted (it has ended); the refusal otherwise.
pub fn backup_not_deletable(row: &dyn Columns) -> Result<Option<Error>> {
    let status = text(row, "status")?;
    Ok(match BackupStatus::parse(&status) {
        Some(BackupStatus::Queued | BackupStatus::Running) => Some(Error::Conflict(format!(
            "the backup is still {status}; wait for it to finish before deleting it"
        ))),
        _ => None,
    })
}

// ---- verifications ------------------------------------------------------------------------

/// Makes a verification the run's latest: `$1` backup id, `$2` at, `$3` level, `$4` ok.
pub const SET_LATEST_VERIFICATION: &str =
    "UPDATE backups SET verified_at = $2, verify_level = $3, verify_ok = $4 WHERE id = $1";
pub const INSERT_VERIFICATION: &str = "INSERT INTO backup_verifications (id, backup_id, at, level, ok, \
    detail) VALUES ($1, $2, $3, $4, $5, $6)";
pub const LIST_VERIFICATIONS: &str = "SELECT id, backup_id, at, level, ok, detail FROM backup_verifications \
    WHERE backup_id = $1 ORDER BY at DESC, id DESC";

pub fn latest_verification_args(v: &VerificationRecord) -> Vec<Arg> {
    vec![
        text_arg(&v.backup_id),
        int_arg(v.at.millis()),
        text_arg(&v.level),
        Arg::Bool(Some(v.ok)),
    ]
}

pub fn insert_verification_args(v: &VerificationRecord) -> Vec<Arg> {
    vec![
        text_arg(&v.id),
        text_arg(&v.backup_id),
        int_arg(v.at.millis()),
        text_arg(&v.level),
        Arg::Bool(Some(v.ok)),
        json_arg(&v.detail),
    ]
}

pub fn verification_from(row: &dyn Columns) -> Result<VerificationRecord> {
    Ok(VerificationRecord {
        id: text(row, "id")?,
        backup_id: text(row, "backup_id")?,
        at: time(row, "at")?,
        level: text(row, "level")?,
        ok: flag(row, "ok")?,
        detail: json(row, "detail")?,
    })
}

// ---- health checks ------------------------------------------------------------------------

/// A database's health columns; on PostgreSQL read `FOR UPDATE` (see [`for_update`]).
pub const DATABASE_HEALTH: &str = "SELECT health_status, health_failures, health_changed_at, \
    health_last_check_at, health_last_error FROM backup_databases WHERE id = $1";
pub const SET_DATABASE_HEALTH: &str = "UPDATE backup_databases SET health_status = $2, health_failures = $3, \
    health_changed_at = $4, health_last_check_at = $5, health_last_error = $6 WHERE id = $1";
pub const INSERT_HEALTH_CHECK: &str = "INSERT INTO health_checks (database_id, at, ok, latency_ms, error) \
    VALUES ($1, $2, $3, $4, $5)";
pub const HEALTH_COUNTS: &str = "SELECT COUNT(*) AS total, \
    COALESCE(SUM(CASE WHEN ok THEN 1 ELSE 0 END), 0) AS good \
    FROM health_checks WHERE database_id = $1 AND at >= $2";
pub const LIST_HEALTH_CHECKS: &str = "SELECT database_id, at, ok, latency_ms, error FROM health_checks \
    WHERE database_id = $1 AND at < $2 ORDER BY at DESC, id DESC LIMIT $3";
pub const PRUNE_HEALTH_CHECKS: &str = "DELETE FROM health_checks WHERE at < $1";

/// `statement` locking the rows it reads until the transaction ends (PostgreSQL); SQLite's
/// write transaction already excludes every other writer.
pub fn for_update(statement: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => statement.to_owned(),
        Dialect::Postgres => format!("{statement} FOR UPDATE"),
    }
}

/// A database's health after `check`: a good check makes it `Up` and resets the failure count;
/// a failed one counts, and the `down_after`-th failure in a row (at least the first) makes it
/// `Down`. The last error is the failed check's, cleared by a good one. Returns the status
/// change, if any.
pub fn health_after(
    current: &DatabaseHealth,
    check: &HealthCheck,
    down_after: i64,
) -> (DatabaseHealth, Option<HealthTransition>) {
    let (status, consecutive_failures, last_error) = if check.ok {
        (HealthStatus::Up, 0, None)
    } else {
        let failures = current.consecutive_failures.saturating_add(1);
        let status = if failures >= down_after.max(1) {
            HealthStatus::Down
        } else {
            current.status
        };
        (status, failures, check.error.clone())
    };
    let transition = (status != current.status).then_some(HealthTransition {
        from: current.status,
        to: status,
    });
    let health = DatabaseHealth {
        status,
        consecutive_failures,
        changed_at: if transition.is_some() {
            Some(check.at)
        } else {
            current.changed_at
        },
        last_check_at: Some(check.at),
        last_error,
    };
    (health, transition)
}

pub fn set_health_args(database_id: &str, h: &DatabaseHealth) -> Vec<Arg> {
    vec![
        text_arg(database_id),
        text_arg(h.status.as_str()),
        int_arg(h.consecutive_failures),
        time_arg(h.changed_at),
        time_arg(h.last_check_at),
        opt_text_arg(h.last_error.as_deref()),
    ]
}

pub fn insert_health_check_args(c: &HealthCheck) -> Vec<Arg> {
    vec![
        text_arg(&c.database_id),
        int_arg(c.at.millis()),
        Arg::Bool(Some(c.ok)),
        Arg::Int(c.latency_ms),
        opt_text_arg(c.error.as_deref()),
    ]
}

pub fn health_counts_from(row: &dyn Columns) -> Result<HealthCounts> {
    Ok(HealthCounts {
        total: int(row, "total")?,
        ok: int(row, "good")?,
    })
}

pub fn health_check_from(row: &dyn Columns) -> Result<HealthCheck> {
    Ok(HealthCheck {
        database_id: text(row, "database_id")?,
        at: time(row, "at")?,
        ok: flag(row, "ok")?,
        latency_ms: row.opt_int("latency_ms")?,
        error: row.opt_text("error")?,
    })
}

// ---- master key rotation ------------------------------------------------------------------

/// `$1` the current key id, `$2` limit.
#[cfg(test)]
mod tests {
    use super::*;

    fn check(ok: bool) -> HealthCheck {
        HealthCheck {
            database_id: "db".into(),
            at: Timestamp(10),
            ok,
            latency_ms: None,
            error: (!ok).then(|| "refused".to_owned()),
        }
    }

    #[test]
    fn jobs_belong_to_a_database_by_exact_id() {
        assert!(database_job("backup:db-1", "db-1"));
        assert!(database_job("verify:db-1:weekly", "db-1"));
        assert!(!database_job("backup:db-10", "db-1"));
        assert!(!database_job("self-backup", "db-1"));
        assert!(!database_job("db-1", "db-1"));
    }

    #[test]
    fn the_down_after_th_failure_turns_a_database_down() {
        let mut health = DatabaseHealth::default();
        let (next, change) = health_after(&health, &check(true), 3);
        assert_eq!(
            change,
            Some(HealthTransition {
                from: HealthStatus::Unknown,
                to: HealthStatus::Up
            })
        );
        health = next;
        for n in 1..3 {
            let (next, change) = health_after(&health, &check(false), 3);
            assert_eq!((change, next.consecutive_failures), (None, n));
            assert_eq!(next.last_error.as_deref(), Some("refused"));
            health = next;
        }
        let (next, change) = health_after(&health, &check(false), 3);
        assert_eq!(change.map(|c| c.to), Some(HealthStatus::Down));
        assert_eq!(next.changed_at, Some(Timestamp(10)));
        let (next, change) = health_after(&next, &check(true), 3);
        assert_eq!(change.map(|c| c.to), Some(HealthStatus::Up));
        assert_eq!((next.consecutive_failures, next.last_error), (0, None));
    }

    #[test]
    fn listing_placeholders_follow_the_filters() {
        let filter = BackupFilter {
            status: Some(BackupStatus::Failed),
            before: Some((Timestamp(5), "b".into())),
            limit: 10,
            ..BackupFilter::default()
        };
        let (sql, args) = list_backups_query("ws", &filter);
        assert!(sql.contains("status = $2"), "{sql}");
        assert!(sql.contains("queued_at < $3 OR (queued_at = $3 AND id < $4)"));
        assert!(sql.ends_with("LIMIT $5"));
        assert_eq!(args.len(), 5);
    }
}
