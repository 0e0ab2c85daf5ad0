//! Verifying a stored run: on request or after a backup, as deep as this server can (a scratch
//! restore with row counts, `pg_restore --list`, or the checksum alone), recorded with its event.

use std::time::Duration;

use serde_json::json;
use statehouse_core::access::{Principal, Role};
use statehouse_core::audit::AuditRecord;
use statehouse_core::backups::{BackupKind, BackupRecord, DatabaseRecord, VerificationRecord};
use statehouse_core::events::kind;
use statehouse_core::service::new_id;
use statehouse_core::{Error, Result};

use super::VerificationView;
use super::keys::server_decryption_for;
use crate::pg_tools::{find_pg_tool, find_pg_tool_for_server};
use crate::service::BackupService;
use crate::settings::DatabaseSettings;
use crate::targets::ObjectReader;
use crate::verify::{VerificationReport, VerifyOptions, verify_cheap, verify_full};

/// The major version in a `server_version` text (`15.4 (Debian …)` → 15).
fn major_of(version: &str) -> Option<u32> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok())
}

impl BackupService {
    /// Verifies a backup now (workspace editor) and records the outcome.
    pub async fn verify_backup(
        &self,
        who: &Principal,
        ws: &str,
        id: &str,
    ) -> Result<VerificationView> {
        let record = AuditRecord::by(who, "backup.verify", self.core.now())
            .workspace(ws)
            .target(id);
        let result = async {
            let (workspace, _) = self
                .core
                .authorize(who, ws, Role::Editor, "verifying backups")
                .await?;
            let run = self.find_backup(&workspace, id).await?;
            self.stored_object(&run)?;
            let db = self
                .core
                .backup_store()
                .database(&workspace.id, &run.database_id)
                .await?
                .ok_or_else(|| {
                    Error::Conflict("the backup's database is no longer registered".into())
                })?;
            self.verify_run(&run, &db)
                .await
                .map(|v| VerificationView::from(&v))
        }
        .await;
        self.core
            .conclude(result, record, |v, r| {
                (r.detail(json!({"level": v.level, "ok": v.ok})), None)
            })
            .await
    }

    /// Verifies a stored backup as well as this server can: a scratch restore with row counts
    /// when a verification server is set, the backup has row counts (taken while it was set)
    /// and the server can decrypt; `pg_restore --list` after decrypting when it can decrypt;
    /// otherwise the stored object's checksum. Records the outcome and emits
    /// `verification.succeeded`/`verification.failed`.
    pub(crate) async fn verify_run(
        &self,
        run: &BackupRecord,
        db: &DatabaseRecord,
    ) -> Result<VerificationRecord> {
        let object = self.stored_object(run)?.to_owned();
        let (config, secrets) = self.backup_config(&db.workspace_id).await?;
        let (identities, passphrase) = self.managed_identities(&db.workspace_id).await?;
        let decryption = server_decryption_for(run, &identities, passphrase.as_ref())?;
        let (_, target) = self.target_of(run).await?;
        let mut reader = target
            .open(&object)
            .await
            .map_err(|e| Error::Unavailable(format!("reading {object} failed: {e}")))?;
        let settings = DatabaseSettings::from_json(&db.settings)?;
        let expected_counts: Option<crate::RowCounts> = run
            .detail
            .get("row_counts")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        let (level, ok, detail) = match decryption {
            None => {
                let (ok, detail) = checksum_only(&mut reader, run.sha256.as_deref()).await;
                ("checksum", ok, json!({"detail": detail}))
            }
            Some(decryption) if run.kind == BackupKind::Globals => {
                let options = crate::globals::GlobalsReadOptions {
                    decryption,
                    expected_sha256: run.sha256.clone(),
                    stall_timeout: Duration::from_secs(settings.stall_timeout_secs),
                    total_timeout: Duration::from_secs(settings.total_timeout_secs),
                };
                let report = crate::globals::verify_globals(&options, &mut reader).await?;
                (
                    "list",
                    report.ok,
                    serde_json::to_value(&report).unwrap_or_else(|_| json!({})),
                )
            }
            Some(decryption) => {
                let major = run
                    .server_version
                    .as_deref()
                    .and_then(major_of)
                    .unwrap_or(0);
                let mut options = VerifyOptions {
                    pg_restore: find_pg_tool("pg_restore", major, &self.options.pg_tools)
                        .await?
                        .path,
                    decryption,
                    expected_sha256: run.sha256.clone(),
                    jobs: 1,
                    spool_dir: None,
                    stall_timeout: Duration::from_secs(settings.stall_timeout_secs),
                    total_timeout: Duration::from_secs(settings.total_timeout_secs),
                };
                let report: VerificationReport =
                    match (&config.verification_server, &expected_counts) {
                        (Some(server), Some(counts)) => {
                            let conn = server.to_pg(
                                &server.database,
                                secrets.verification_password.clone(),
                                self.outbound().clone(),
                            );
                            let (tool, _) = find_pg_tool_for_server(
                                "pg_restore",
                                &conn,
                                &self.options.pg_tools,
                            )
                            .await?;
                            options.pg_restore = tool.path;
                            verify_full(&options, &conn, counts, &mut reader, &|_| {}).await?
                        }
                        (server, _) => {
                            let mut report = verify_cheap(&options, &mut reader, &|_| {}).await?;
                            if server.is_some() {
                                report.detail.push_str(
                                    "; checked without a scratch restore: this backup has no row \
                                     counts to compare (it was taken before the verification \
                                     server was set)",
                                );
                            }
                            report
                        }
                    };
                let level = match report.level {
                    crate::verify::VerificationLevel::Full => "restore",
                    crate::verify::VerificationLevel::Cheap => "list",
                };
                (
                    level,
                    report.ok,
                    serde_json::to_value(&report).unwrap_or_else(|_| json!({})),
                )
            }
        };
        let verification = VerificationRecord {
            id: new_id(),
            backup_id: run.id.clone(),
            at: self.core.now(),
            level: level.to_owned(),
            ok,
            detail: detail.clone(),
        };
        self.core
            .backup_store()
            .record_verification(&verification)
            .await?;
        let kind = if ok {
            kind::VERIFICATION_SUCCEEDED
        } else {
            kind::VERIFICATION_FAILED
        };
        let error = detail
            .get("detail")
            .and_then(|d| d.as_str())
            .map(str::to_owned);
        self.emit_backup_event(
            run,
            kind,
            json!({"level": level, "error": error, "detail": error}),
        )
        .await;
        Ok(verification)
    }
}

/// Reads a stored object to its end and compares its SHA-256 with the recorded one (what can
/// be checked without the key).
async fn checksum_only(reader: &mut ObjectReader, expected: Option<&str>) -> (bool, String) {
    use sha2::{Digest, Sha256};
    use tokio::io::AsyncReadExt;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) => return (false, format!("reading the stored object failed: {e}")),
        }
    }
    let actual = hex::encode(hasher.finalize());
    match expected {
        Some(expected) if expected == actual => (
            true,
            format!(
                "the server cannot decrypt this backup; its {total} stored bytes match the recorded SHA-256"
            ),
        ),
        Some(expected) => (
            false,
            format!(
                "the stored object's SHA-256 is {actual}, but {expected} was recorded: the object is damaged or was replaced"
            ),
        ),
        None => (false, "no checksum was recorded for this backup".into()),
    }
}
