//! A run's stored object: the target it is in, its name, and downloading it.

use std::sync::Arc;

use statehouse_core::access::Principal;
use statehouse_core::audit::AuditRecord;
use statehouse_core::backups::{BackupRecord, BackupStatus, TargetRecord};
use statehouse_core::{Error, Result};

use super::BackupView;
use crate::service::BackupService;
use crate::targets::{BackupTarget, ObjectReader};

impl BackupService {
    pub(in crate::service) async fn target_of(
        &self,
        run: &BackupRecord,
    ) -> Result<(TargetRecord, Arc<dyn BackupTarget>)> {
        let record = self
            .core
            .backup_store()
            .target(&run.workspace_id, &run.target_id)
            .await?
            .ok_or_else(|| Error::Config("the backup's storage target is gone".into()))?;
        let opened = self.open_stored_target(&record)?;
        Ok((record, opened))
    }

    pub(in crate::service) fn stored_object<'a>(&self, run: &'a BackupRecord) -> Result<&'a str> {
        match (&run.status, &run.object) {
            (BackupStatus::Succeeded, Some(object)) => Ok(object),
            _ => Err(Error::Conflict(format!(
                "backup {} has no stored object (it is {})",
                run.id,
                run.status.as_str()
            ))),
        }
    }

    /// Opens a backup's stored object for download (workspace admin): the run, the object's
    /// size and a streaming reader of its exact bytes.
    pub async fn open_backup(
        &self,
        who: &Principal,
        ws: &str,
        id: &str,
    ) -> Result<(BackupView, Option<u64>, ObjectReader)> {
        let record = AuditRecord::by(who, "backup.download", self.core.now())
            .workspace(ws)
            .target(id);
        let result = async {
            let workspace = self.admin_of(who, ws, "downloading backups").await?;
            let run = self.find_backup(&workspace, id).await?;
            let object = self.stored_object(&run)?.to_owned();
            let (_, target) = self.target_of(&run).await?;
            let size = target
                .size(&object)
                .await
                .map_err(|e| Error::Unavailable(format!("reading {object} failed: {e}")))?;
            let reader = target
                .open(&object)
                .await
                .map_err(|e| Error::Unavailable(format!("reading {object} failed: {e}")))?;
            let view = self.view_backups(&[run]).await?.remove(0);
            Ok((view, size, reader))
        }
        .await;
        self.core.conclude(result, record, |_, r| (r, None)).await
    }
}
