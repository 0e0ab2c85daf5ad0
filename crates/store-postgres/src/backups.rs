//! Backups on PostgreSQL: the statements, values and row decoding are shared with SQLite
//! (`statehouse_core::store::backups_sql`); this file keeps the flow. Several processes may share
//! the database: claims skip rows another transaction is claiming (`FOR UPDATE SKIP LOCKED`) and
//! re-check them once locked, the job clock moves by compare-and-set (`UPDATE … WHERE
//! next_run_at = expected`, `INSERT … ON CONFLICT DO NOTHING`), leases are checked in the
//! `UPDATE`'s `WHERE`, and deletions and health transitions read their row `FOR UPDATE` first.

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Postgres, SqlSafeStr, Transaction};

use statehouse_core::backups::{
    BackupFilter, BackupRecord, BackupResult, DatabaseRecord, HealthCheck, HealthCounts,
    HealthTransition, NotifierRecord, TargetRecord, VerificationRecord, WorkspaceBackupSettings,
};
use statehouse_core::clock::Timestamp;
use statehouse_core::store::backups::BackupStore;
use statehouse_core::store::backups_sql::{self as sql, Arg, Columns};
use statehouse_core::store::search_sql::Dialect;
use statehouse_core::{Error, Result};

use crate::{PgStore, get};

const DIALECT: Dialect = Dialect::Postgres;

struct Cols<'r>(&'r PgRow);

impl Columns for Cols<'_> {
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        get(self.0, column)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        get(self.0, column)
    }
    fn opt_flag(&self, column: &str) -> Result<Option<bool>> {
        get(self.0, column)
    }
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>> {
        get(self.0, column)
    }
}

/// `sql` with `args` bound in order.
fn statement(sql: impl SqlSafeStr, args: Vec<Arg>) -> Query<'static, Postgres, PgArguments> {
    let mut query = sqlx::query(sql);
    for arg in args {
        query = match arg {
            Arg::Text(v) => query.bind(v),
            Arg::Int(v) => query.bind(v),
            Arg::Bool(v) => query.bind(v),
            Arg::Bytes(v) => query.bind(v),
        };
    }
    query
}

fn decode<T>(rows: &[PgRow], from: impl Fn(&dyn Columns) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(|r| from(&Cols(r))).collect()
}

fn ids(workspace_id: &str, id: &str) -> Vec<Arg> {
    vec![
        Arg::Text(Some(workspace_id.to_owned())),
        Arg::Text(Some(id.to_owned())),
    ]
}

fn one(value: &str) -> Vec<Arg> {
    vec![Arg::Text(Some(value.to_owned()))]
}

fn locked(statement: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(sql::for_update(statement, DIALECT))
}

/// Refuses to delete a workspace that still has backup databases, targets or notifiers, and
/// removes its backup settings (inside `delete_workspace`'s transaction, which holds the
/// workspace's row lock: no backup row can be added to it meanwhile).
pub(crate) async fn delete_workspace_backups(
    store: &PgStore,
    tx: &mut Transaction<'static, Postgres>,
    workspace_id: &str,
) -> Result<()> {
    let row = statement(sql::WORKSPACE_BACKUP_ROWS, one(workspace_id))
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| store.err(e))?;
    if let Some(refusal) = sql::workspace_backups_in_use(&Cols(&row))? {
        return Err(refusal);
    }
    statement(sql::DELETE_WORKSPACE_SETTINGS, one(workspace_id))
        .execute(&mut **tx)
        .await
        .map_err(|e| store.err(e))?;
    Ok(())
}

impl PgStore {
    fn err(&self, e: sqlx::Error) -> Error {
        if let sqlx::Error::Database(d) = &e
            && d.is_foreign_key_violation()
        {
            return sql::reference_changed();
        }
        self.db_err(e)
    }

    /// [`PgStore::err`], with a taken name said in words.
    fn named<'a>(&'a self, what: &'a str, name: &'a str) -> impl FnOnce(sqlx::Error) -> Error + 'a {
        move |e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => sql::name_taken(what, name),
            _ => self.err(e),
        }
    }

    pub(crate) async fn read_all<T>(
        &self,
        sql: impl SqlSafeStr,
        args: Vec<Arg>,
        from: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Vec<T>> {
        let rows = statement(sql, args)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        decode(&rows, from)
    }

    async fn read_one<T>(
        &self,
        sql: impl SqlSafeStr,
        args: Vec<Arg>,
        from: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Option<T>> {
        let row = statement(sql, args)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.as_ref().map(|r| from(&Cols(r))).transpose()
    }

    /// One statement (its own transaction); rows affected.
    pub(crate) async fn write_one(
        &self,
        sql: impl SqlSafeStr,
        args: Vec<Arg>,
    ) -> std::result::Result<u64, sqlx::Error> {
        let done = statement(sql, args).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl BackupStore for PgStore {
    async fn create_target(&self, target: &TargetRecord) -> Result<()> {
        self.write_one(sql::INSERT_TARGET, sql::insert_target_args(target))
            .await
            .map_err(self.named("backup target", &target.name))?;
        Ok(())
    }

    async fn list_targets(&self, workspace_id: &str) -> Result<Vec<TargetRecord>> {
        self.read_all(sql::LIST_TARGETS, one(workspace_id), sql::target_from)
            .await
    }

    async fn target(&self, workspace_id: &str, id: &str) -> Result<Option<TargetRecord>> {
        self.read_one(sql::TARGET_BY_ID, ids(workspace_id, id), sql::target_from)
            .await
    }

    async fn target_by_name(&self, workspace_id: &str, name: &str) -> Result<Option<TargetRecord>> {
        self.read_one(
            sql::TARGET_BY_NAME,
            ids(workspace_id, name),
            sql::target_from,
        )
        .await
    }

    async fn update_target(&self, target: &TargetRecord) -> Result<bool> {
        let n = self
            .write_one(sql::UPDATE_TARGET, sql::update_target_args(target))
            .await
            .map_err(self.named("backup target", &target.name))?;
        Ok(n == 1)
    }

    async fn delete_target(&self, workspace_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let found = statement(locked(sql::TARGET_EXISTS), ids(workspace_id, id))
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        if found.is_none() {
            return Ok(false);
        }
        let row = statement(sql::TARGET_REFERENCES, one(id))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        if let Some(refusal) = sql::target_in_use(&Cols(&row))? {
            return Err(refusal);
        }
        let done = statement(sql::DELETE_TARGET, ids(workspace_id, id))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_notifier(&self, notifier: &NotifierRecord) -> Result<()> {
        self.write_one(sql::INSERT_NOTIFIER, sql::insert_notifier_args(notifier))
            .await
            .map_err(self.named("notifier", &notifier.name))?;
        Ok(())
    }

    async fn list_notifiers(&self, workspace_id: &str) -> Result<Vec<NotifierRecord>> {
        self.read_all(sql::LIST_NOTIFIERS, one(workspace_id), sql::notifier_from)
            .await
    }

    async fn notifier(&self, workspace_id: &str, id: &str) -> Result<Option<NotifierRecord>> {
        self.read_one(
            sql::NOTIFIER_BY_ID,
            ids(workspace_id, id),
            sql::notifier_from,
        )
        .await
    }

    async fn notifier_by_name(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<NotifierRecord>> {
        self.read_one(
            sql::NOTIFIER_BY_NAME,
            ids(workspace_id, name),
            sql::notifier_from,
        )
        .await
    }

    async fn update_notifier(&self, notifier: &NotifierRecord) -> Result<bool> {
        let n = self
            .write_one(sql::UPDATE_NOTIFIER, sql::update_notifier_args(notifier))
            .await
            .map_err(self.named("notifier", &notifier.name))?;
        Ok(n == 1)
    }

    async fn delete_notifier(&self, workspace_id: &str, id: &str) -> Result<bool> {
        Ok(self
            .write_one(sql::DELETE_NOTIFIER, ids(workspace_id, id))
            .await
            .map_err(|e| self.err(e))?
            == 1)
    }

    async fn create_database(&self, database: &DatabaseRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        let target = statement(
            sql::TARGET_EXISTS,
            ids(&database.workspace_id, &database.target_id),
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        if target.is_none() {
            return Err(sql::foreign_target(&database.target_id));
        }
        statement(sql::INSERT_DATABASE, sql::insert_database_args(database))
            .execute(&mut *tx)
            .await
            .map_err(self.named("database", &database.name))?;
        tx.commit().await.map_err(|e| self.db_err(e))
    }

    async fn list_databases(&self, workspace_id: &str) -> Result<Vec<DatabaseRecord>> {
        self.read_all(sql::LIST_DATABASES, one(workspace_id), sql::database_from)
            .await
    }

    async fn all_databases(&self) -> Result<Vec<DatabaseRecord>> {
        self.read_all(sql::ALL_DATABASES, Vec::new(), sql::database_from)
            .await
    }

    async fn database(&self, workspace_id: &str, id: &str) -> Result<Option<DatabaseRecord>> {
        self.read_one(
            sql::DATABASE_BY_ID,
            ids(workspace_id, id),
            sql::database_from,
        )
        .await
    }

    async fn database_by_name(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<DatabaseRecord>> {
        self.read_one(
            sql::DATABASE_BY_NAME,
            ids(workspace_id, name),
            sql::database_from,
        )
        .await
    }

    async fn update_database(&self, database: &DatabaseRecord) -> Result<bool> {
        let mut tx = self.begin().await?;
        let target = statement(
            sql::TARGET_EXISTS,
            ids(&database.workspace_id, &database.target_id),
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        if target.is_none() {
            return Err(sql::foreign_target(&database.target_id));
        }
        let done = statement(sql::UPDATE_DATABASE, sql::update_database_args(database))
            .execute(&mut *tx)
            .await
            .map_err(self.named("database", &database.name))?;
        tx.commit().await.map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_database(&self, workspace_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let found = statement(locked(sql::DATABASE_EXISTS), ids(workspace_id, id))
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        if found.is_none() {
            return Ok(false);
        }
        let backups: i64 = statement(sql::DATABASE_BACKUPS, one(id))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.err(e))
            .and_then(|row| sql::int(&Cols(&row), "n"))?;
        if backups > 0 {
            return Err(sql::database_in_use(backups));
        }
        let jobs = statement(sql::DATABASE_JOB_CANDIDATES, one(id))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        for job in jobs {
            let name: String = get(&job, "name")?;
            if sql::database_job(&name, id) {
                statement(sql::DELETE_JOB, one(&name))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
            }
        }
        let done = statement(sql::DELETE_DATABASE, ids(workspace_id, id))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn workspace_backup_settings(
        &self,
        workspace_id: &str,
    ) -> Result<Option<WorkspaceBackupSettings>> {
        self.read_one(
            sql::WORKSPACE_SETTINGS,
            one(workspace_id),
            sql::workspace_settings_from,
        )
        .await
    }

    async fn put_workspace_backup_settings(
        &self,
        settings: &WorkspaceBackupSettings,
    ) -> Result<()> {
        self.write_one(
            sql::PUT_WORKSPACE_SETTINGS,
            sql::workspace_settings_args(settings),
        )
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn job_next_run(&self, name: &str) -> Result<Option<Timestamp>> {
        self.read_one(sql::JOB_NEXT_RUN, one(name), |row| {
            sql::int(row, "next_run_at").map(Timestamp)
        })
        .await
    }

    async fn due_jobs(
        &self,
        prefix: &str,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<(String, Timestamp)>> {
        let args = vec![
            Arg::Text(Some(prefix.to_owned())),
            Arg::Int(Some(now.millis())),
            Arg::Int(Some(limit)),
        ];
        self.read_all(sql::DUE_JOBS, args, sql::due_job_from).await
    }

    async fn advance_job(
        &self,
        name: &str,
        expected: Option<Timestamp>,
        next: Timestamp,
        enqueue: Option<&BackupRecord>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let moved = match expected {
            Some(expected) => statement(
                sql::ADVANCE_JOB,
                vec![
                    Arg::Text(Some(name.to_owned())),
                    Arg::Int(Some(next.millis())),
                    Arg::Int(Some(expected.millis())),
                ],
            ),
            None => statement(
                sql::CREATE_JOB,
                vec![
                    Arg::Text(Some(name.to_owned())),
                    Arg::Int(Some(next.millis())),
                ],
            ),
        }
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(backup) = enqueue {
            statement(sql::INSERT_BACKUP, sql::insert_backup_args(backup))
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.db_err(e))?;
        Ok(true)
    }

    async fn delete_job(&self, name: &str) -> Result<bool> {
        Ok(self
            .write_one(sql::DELETE_JOB, one(name))
            .await
            .map_err(|e| self.err(e))?
            == 1)
    }

    async fn insert_backup(&self, backup: &BackupRecord) -> Result<()> {
        self.write_one(sql::INSERT_BACKUP, sql::insert_backup_args(backup))
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn claim_backups(
        &self,
        now: Timestamp,
        lease_owner: &str,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<BackupRecord>> {
        let args = vec![
            Arg::Int(Some(now.millis())),
            Arg::Text(Some(lease_owner.to_owned())),
            Arg::Int(Some(lease_until.millis())),
            Arg::Int(Some(limit)),
        ];
        let mut tx = self.begin().await?;
        let rows = statement(AssertSqlSafe(sql::claim_backups_sql(DIALECT)), args)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.db_err(e))?;
        let mut claimed = decode(&rows, sql::backup_from)?;
        sql::sort_runs(&mut claimed);
        Ok(claimed)
    }

    async fn renew_backup(
        &self,
        id: &str,
        lease_owner: &str,
        lease_until: Timestamp,
        object: Option<&str>,
        db_name: Option<&str>,
    ) -> Result<bool> {
        let args = sql::renew_backup_args(id, lease_owner, lease_until, object, db_name);
        Ok(self
            .write_one(sql::RENEW_BACKUP, args)
            .await
            .map_err(|e| self.err(e))?
            == 1)
    }

    async fn finish_backup(
        &self,
        id: &str,
        lease_owner: &str,
        result: &BackupResult,
    ) -> Result<bool> {
        let args = sql::finish_backup_args(id, lease_owner, result)?;
        Ok(self
            .write_one(sql::FINISH_BACKUP, args)
            .await
            .map_err(|e| self.err(e))?
            == 1)
    }

    async fn fail_abandoned_backups(
        &self,
        now: Timestamp,
        error: &str,
    ) -> Result<Vec<BackupRecord>> {
        let args = vec![
            Arg::Int(Some(now.millis())),
            Arg::Text(Some(error.to_owned())),
        ];
        let mut tx = self.begin().await?;
        let rows = statement(AssertSqlSafe(sql::fail_abandoned_sql(DIALECT)), args)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.db_err(e))?;
        let mut failed = decode(&rows, sql::backup_from)?;
        sql::sort_runs(&mut failed);
        Ok(failed)
    }

    async fn list_backups(
        &self,
        workspace_id: &str,
        filter: &BackupFilter,
    ) -> Result<Vec<BackupRecord>> {
        let (text, args) = sql::list_backups_query(workspace_id, filter);
        self.read_all(AssertSqlSafe(text), args, sql::backup_from)
            .await
    }

    async fn backup(&self, workspace_id: &str, id: &str) -> Result<Option<BackupRecord>> {
        self.read_one(sql::BACKUP_BY_ID, ids(workspace_id, id), sql::backup_from)
            .await
    }

    async fn delete_backup(&self, workspace_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let Some(row) = statement(locked(sql::BACKUP_STATUS), ids(workspace_id, id))
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?
        else {
            return Ok(false);
        };
        if let Some(refusal) = sql::backup_not_deletable(&Cols(&row))? {
            return Err(refusal);
        }
        let done = statement(sql::DELETE_BACKUP, ids(workspace_id, id))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_verification(&self, verification: &VerificationRecord) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = statement(
            sql::SET_LATEST_VERIFICATION,
            sql::latest_verification_args(verification),
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        statement(
            sql::INSERT_VERIFICATION,
            sql::insert_verification_args(verification),
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.db_err(e))?;
        Ok(true)
    }

    async fn list_verifications(&self, backup_id: &str) -> Result<Vec<VerificationRecord>> {
        self.read_all(
            sql::LIST_VERIFICATIONS,
            one(backup_id),
            sql::verification_from,
        )
        .await
    }

    async fn record_health_check(
        &self,
        check: &HealthCheck,
        down_after: i64,
    ) -> Result<Option<HealthTransition>> {
        let mut tx = self.begin().await?;
        let Some(row) = statement(locked(sql::DATABASE_HEALTH), one(&check.database_id))
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?
        else {
            return Ok(None);
        };
        let current = sql::database_health_from(&Cols(&row))?;
        let (health, transition) = sql::health_after(&current, check, down_after);
        statement(
            sql::SET_DATABASE_HEALTH,
            sql::set_health_args(&check.database_id, &health),
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        statement(
            sql::INSERT_HEALTH_CHECK,
            sql::insert_health_check_args(check),
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.db_err(e))?;
        Ok(transition)
    }

    async fn health_counts(&self, database_id: &str, since: Timestamp) -> Result<HealthCounts> {
        let args = vec![
            Arg::Text(Some(database_id.to_owned())),
            Arg::Int(Some(since.millis())),
        ];
        let counts = self
            .read_one(sql::HEALTH_COUNTS, args, sql::health_counts_from)
            .await?;
        Ok(counts.unwrap_or_default())
    }

    async fn list_health_checks(
        &self,
        database_id: &str,
        before: Option<Timestamp>,
        limit: i64,
    ) -> Result<Vec<HealthCheck>> {
        let args = vec![
            Arg::Text(Some(database_id.to_owned())),
            Arg::Int(Some(before.map_or(i64::MAX, Timestamp::millis))),
            Arg::Int(Some(limit)),
        ];
        self.read_all(sql::LIST_HEALTH_CHECKS, args, sql::health_check_from)
            .await
    }

    async fn prune_health_checks(&self, before: Timestamp) -> Result<u64> {
        self.write_one(
            sql::PRUNE_HEALTH_CHECKS,
            vec![Arg::Int(Some(before.millis()))],
        )
        .await
        .map_err(|e| self.err(e))
    }
}
