//! Whole-server runs: every run of a database in whole-server mode belongs to one group
//! (`server_run`) holding each database's dump and one backup of the server's globals (roles,
//! memberships, tablespaces), so the whole server can be restored from it with its owners and
//! grants.

use std::time::Duration;

use serde_json::json;
use statehouse_core::backups::{BackupRecord, BackupResult, BackupStatus, DatabaseRecord};
use statehouse_core::{Error, Result};

use super::BackupService;
use crate::globals::{GlobalsDumpOptions, role_passwords_readable, run_globals_backup};
use crate::pg_tools::find_pg_tool_for_server;
use crate::settings::{DatabaseMode, DatabaseSettings};

/// Whether the database's runs are whole-server runs.
pub(super) fn is_whole_server(settings: &DatabaseSettings) -> bool {
    matches!(settings.mode, DatabaseMode::Server { .. })
}

/// A run of `db` as queued: in whole-server mode it starts a whole-server run of its own.
pub(super) fn grouped(db: &DatabaseRecord, mut run: BackupRecord) -> BackupRecord {
    let whole_server = DatabaseSettings::from_json(&db.settings)
        .map(|s| is_whole_server(&s))
        .unwrap_or(false);
    if whole_server {
        run.server_run = Some(run.id.clone());
    }
    run
}

impl BackupService {
    /// Backs up the server's globals with `pg_dumpall --globals-only`, role passwords
    /// included when the backup role may read them (a superuser); the run's detail says
    /// whether they are.
    pub(super) async fn perform_globals(
        &self,
        run: &mut BackupRecord,
        db: &DatabaseRecord,
    ) -> Result<BackupResult> {
        let settings = DatabaseSettings::from_json(&db.settings)?;
        let connection = self.connection_for(db, &settings, &settings.connection.database)?;
        let (pg_dumpall, version) =
            find_pg_tool_for_server("pg_dumpall", &connection, &self.options.pg_tools).await?;
        run.server_version = Some(version.text.clone());
        let target_record = self
            .core
            .backup_store()
            .target(&db.workspace_id, &db.target_id)
            .await?
            .ok_or_else(|| Error::Config("the database's storage target is gone".into()))?;
        let target = self.open_stored_target(&target_record)?;
        let name = crate::globals_object_name(&db.name, self.core.now(), &run.id);
        self.core
            .backup_store()
            .renew_backup(
                &run.id,
                &self.worker_id,
                self.lease_until(),
                Some(&name),
                None,
            )
            .await?;
        run.object = Some(name.clone());
        let role_passwords = role_passwords_readable(&connection).await?;
        if !role_passwords {
            tracing::warn!(database = %db.name, role = %connection.user,
                "the backup role cannot read role passwords (pg_authid): the server's globals are \
                 backed up without them; connect as a superuser to include them");
        }
        let options = GlobalsDumpOptions {
            pg_dumpall: pg_dumpall.path,
            connection,
            zstd_level: settings.zstd_level,
            encryption: self.encryption_for(&db.workspace_id).await?,
            role_passwords,
            stall_timeout: Duration::from_secs(settings.stall_timeout_secs),
            total_timeout: Duration::from_secs(settings.total_timeout_secs),
        };
        let metadata = run_globals_backup(
            &options,
            Some(version.text.clone()),
            target.as_ref(),
            &name,
            self.core.clock.as_ref(),
        )
        .await?;
        Ok(BackupResult {
            status: BackupStatus::Succeeded,
            finished_at: self.core.now(),
            db_name: None,
            object: Some(name),
            stored_bytes: i64::try_from(metadata.stored_bytes).ok(),
            dump_bytes: i64::try_from(metadata.dump_bytes).ok(),
            sha256: Some(metadata.sha256.clone()),
            server_version: Some(version.text),
            error: None,
            detail: json!({
                "recipients": metadata.recipients,
                "zstd_level": metadata.zstd_level,
                "role_passwords": role_passwords,
                "pg_dumpall_version": pg_dumpall.major,
            }),
        })
    }
}
