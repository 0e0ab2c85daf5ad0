//! Storage targets of a workspace: create, list, change, delete, test.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use statehouse_core::access::{Principal, Role};
use statehouse_core::audit::AuditRecord;
use statehouse_core::backups::{SealedKind, TargetRecord};
use statehouse_core::model::Workspace;
use statehouse_core::service::new_id;
use statehouse_core::{Error, Result};
use utoipa::ToSchema;

use super::{
    BackupService, TestOutcome, check_name, merge_secrets, not_found, require_secrets_if_moved,
};
use crate::targets::{BackupTarget, TargetSpec, open_target};

/// A target as given by the API or CLI: its name and full settings (secrets included).
#[derive(Debug, Clone)]
pub struct TargetInput {
    pub name: String,
    pub spec: TargetSpec,
}

/// A target as the API shows it: public settings only.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TargetView {
    pub id: String,
    pub name: String,
    /// `local`, `s3`, `azblob`, `gcs`, `sftp`, `webdav`, `ftp`, `gdrive`.
    pub kind: String,
    /// Settings without secrets.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// Names of the secret settings that are set (their values are never shown).
    pub secrets_set: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn secret_names(secrets: &serde_json::Value) -> Vec<String> {
    secrets
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

impl BackupService {
    pub(crate) async fn find_target(
        &self,
        workspace: &Workspace,
        key: &str,
    ) -> Result<TargetRecord> {
        let store = self.core.backup_store();
        if let Some(found) = store.target_by_name(&workspace.id, key).await? {
            return Ok(found);
        }
        store
            .target(&workspace.id, key)
            .await?
            .ok_or_else(|| not_found("storage target", key, &workspace.name))
    }

    fn target_secrets(&self, target: &TargetRecord) -> Result<serde_json::Value> {
        let secrets: Option<serde_json::Value> = self.open_secrets(
            SealedKind::Target,
            &target.workspace_id,
            &target.id,
            target.secrets.as_ref(),
        )?;
        Ok(secrets.unwrap_or_else(|| json!({})))
    }

    pub(crate) fn target_spec(&self, target: &TargetRecord) -> Result<TargetSpec> {
        let secrets = self.target_secrets(target)?;
        TargetSpec::from_parts(&target.settings, &secrets).map_err(|e| {
            Error::Internal(format!(
                "stored target {:?} does not parse: {e}",
                target.name
            ))
        })
    }

    /// Opens a stored target for reading and writing objects.
    pub(crate) fn open_stored_target(
        &self,
        target: &TargetRecord,
    ) -> Result<Arc<dyn BackupTarget>> {
        let spec = self.target_spec(target)?;
        let opened = open_target(&spec, self.outbound()).map_err(|e| match e {
            crate::BackupError::Refused(refusal) => {
                Error::BadRequest(format!("storage target {:?}: {refusal}", target.name))
            }
            e => Error::Config(format!(
                "storage target {:?} cannot be opened: {e}",
                target.name
            )),
        })?;
        Ok(super::target_errors::ObservedTarget::wrap(target, opened))
    }

    fn view_target(&self, target: &TargetRecord) -> Result<TargetView> {
        Ok(TargetView {
            id: target.id.clone(),
            name: target.name.clone(),
            kind: target.kind.clone(),
            settings: target.settings.clone(),
            secrets_set: secret_names(&self.target_secrets(target)?),
            created_at: target.created_at.to_rfc3339(),
            updated_at: target.updated_at.to_rfc3339(),
        })
    }

    fn seal_target_parts(
        &self,
        workspace_id: &str,
        id: &str,
        spec: &TargetSpec,
    ) -> Result<(
        String,
        serde_json::Value,
        Option<statehouse_core::crypto::SealedBody>,
    )> {
        spec.validate()
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        let (public, secrets) = spec.split_secrets();
        let kind = public
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_owned();
        let sealed = if secret_names(&secrets).is_empty() {
            None
        } else {
            self.seal_secrets(SealedKind::Target, workspace_id, id, &secrets)?
        };
        Ok((kind, public, sealed))
    }

    /// Adds a storage target (workspace admin). Its secrets are sealed; nothing is contacted
    /// (use [`BackupService::test_target`]).
    pub async fn create_target(
        &self,
        who: &Principal,
        ws: &str,
        input: TargetInput,
    ) -> Result<TargetView> {
        let record = AuditRecord::by(who, "target.create", self.core.now())
            .workspace(ws)
            .target(input.name.clone());
        let result = async {
            let workspace = self.admin_of(who, ws, "managing storage targets").await?;
            let name = check_name("target", &input.name)?;
            let id = new_id();
            let (kind, settings, secrets) =
                self.seal_target_parts(&workspace.id, &id, &input.spec)?;
            let now = self.core.now();
            let target = TargetRecord {
                id,
                workspace_id: workspace.id.clone(),
                name,
                kind,
                settings,
                secrets,
                created_at: now,
                updated_at: now,
            };
            self.core.backup_store().create_target(&target).await?;
            self.view_target(&target)
        }
        .await;
        self.core
            .conclude(result, record, |v, r| {
                (
                    r.detail(json!({"kind": v.kind, "settings": v.settings})),
                    None,
                )
            })
            .await
    }

    pub async fn list_targets(&self, who: &Principal, ws: &str) -> Result<Vec<TargetView>> {
        let (workspace, _) = self
            .core
            .authorize(who, ws, Role::Viewer, "listing storage targets")
            .await?;
        self.core
            .backup_store()
            .list_targets(&workspace.id)
            .await?
            .iter()
            .map(|t| self.view_target(t))
            .collect()
    }

    pub async fn target(&self, who: &Principal, ws: &str, key: &str) -> Result<TargetView> {
        let (workspace, _) = self
            .core
            .authorize(who, ws, Role::Viewer, "reading a storage target")
            .await?;
        let target = self.find_target(&workspace, key).await?;
        self.view_target(&target)
    }

    /// Changes a target (workspace admin). `settings` is the full public part plus any
    /// secrets to change; secrets left out are kept.
    pub async fn update_target(
        &self,
        who: &Principal,
        ws: &str,
        key: &str,
        name: Option<String>,
        settings: Option<serde_json::Value>,
    ) -> Result<TargetView> {
        let record = AuditRecord::by(who, "target.update", self.core.now())
            .workspace(ws)
            .target(key);
        let result = async {
            let workspace = self.admin_of(who, ws, "managing storage targets").await?;
            let mut target = self.find_target(&workspace, key).await?;
            if let Some(name) = name {
                target.name = check_name("target", &name)?;
            }
            if let Some(settings) = settings {
                let given: TargetSpec = serde_json::from_value(settings).map_err(|e| {
                    Error::BadRequest(format!("target settings are not valid: {e}"))
                })?;
                let (public, new_secrets) = given.split_secrets();
                let stored = self.target_secrets(&target)?;
                let current = self.target_spec(&target)?;
                let same_kind = current.kind() == given.kind();
                let secrets = if same_kind {
                    merge_secrets(stored.clone(), new_secrets.clone())
                } else {
                    // Another kind has other secrets: none of the old ones carry over.
                    new_secrets.clone()
                };
                let spec = TargetSpec::from_parts(&public, &secrets)
                    .map_err(|e| Error::BadRequest(e.to_string()))?;
                if same_kind {
                    require_secrets_if_moved(
                        &format!("storage target {:?}", target.name),
                        &current.moved_fields(&spec),
                        &stored,
                        &new_secrets,
                    )?;
                }
                let (kind, public, sealed) =
                    self.seal_target_parts(&workspace.id, &target.id, &spec)?;
                target.kind = kind;
                target.settings = public;
                target.secrets = sealed;
            }
            target.updated_at = self.core.now();
            if !self.core.backup_store().update_target(&target).await? {
                return Err(not_found("storage target", key, &workspace.name));
            }
            self.view_target(&target)
        }
        .await;
        self.core
            .conclude(result, record, |v, r| {
                (
                    r.detail(json!({"kind": v.kind, "settings": v.settings})),
                    None,
                )
            })
            .await
    }

    /// Removes a target (workspace admin); refused while databases or backups use it.
    pub async fn delete_target(&self, who: &Principal, ws: &str, key: &str) -> Result<()> {
        let record = AuditRecord::by(who, "target.delete", self.core.now())
            .workspace(ws)
            .target(key);
        let result = async {
            let workspace = self.admin_of(who, ws, "managing storage targets").await?;
            let target = self.find_target(&workspace, key).await?;
            match self.core.backup_store().delete_target(&workspace.id, &target.id).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(not_found("storage target", key, &workspace.name)),
                Err(Error::Conflict(_)) => Err(Error::Conflict(format!(
                    "storage target {:?} is still used by databases or holds backups; move or delete them first",
                    target.name
                ))),
                Err(e) => Err(e),
            }
        }
        .await;
        self.core.conclude(result, record, |_, r| (r, None)).await
    }

    /// "Test connection": writes, reads back and deletes a small probe object.
    pub async fn test_target(&self, who: &Principal, ws: &str, key: &str) -> Result<TestOutcome> {
        let record = AuditRecord::by(who, "target.test", self.core.now())
            .workspace(ws)
            .target(key);
        let result = async {
            let workspace = self.admin_of(who, ws, "testing storage targets").await?;
            let target = self.find_target(&workspace, key).await?;
            let started = std::time::Instant::now();
            let outcome = match self.open_stored_target(&target) {
                Ok(opened) => opened.probe().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            Ok(TestOutcome::from_result(outcome, started.elapsed()))
        }
        .await;
        self.core
            .conclude(result, record, |o, r| {
                (r.detail(json!({"ok": o.ok, "error": o.error})), None)
            })
            .await
    }
}
