//! A workspace's backup encryption (managed key pair, user-held recipients, passphrase) and
//! its verification server.
//!
//! Trade-off: with the managed key (or a passphrase) the server can decrypt its backups, so it
//! can restore them in-app and verify them automatically; someone who steals both the store
//! and the master key file can too. With only user-held recipients the server cannot read the
//! backups it writes: restores need the identity supplied, and verification stops at the
//! checks that need no decryption.

use std::str::FromStr;

use age::secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::json;
use statehouse_core::access::{Principal, Role};
use statehouse_core::audit::AuditRecord;
use statehouse_core::backups::{SealedKind, WorkspaceBackupSettings};
use statehouse_core::model::Workspace;
use statehouse_core::{Error, Result};
use utoipa::ToSchema;

use super::BackupService;
use crate::settings::{ConnectionSettings, WorkspaceBackupConfig, WorkspaceBackupSecrets};

/// Shortest passphrase accepted.
const MIN_PASSPHRASE: usize = 12;

/// A workspace's backup encryption as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EncryptionView {
    /// Public key (`age1…`) of the key pair statehouse keeps.
    pub managed_recipient: Option<String>,
    /// Public keys whose identities only their owners hold.
    pub recipients: Vec<String>,
    /// Backups are encrypted with a passphrase (kept sealed by the server).
    pub passphrase: bool,
    /// Whether the server can decrypt new backups (in-app restore, full verification).
    pub server_can_decrypt: bool,
    #[schema(value_type = Option<Object>)]
    pub verification_server: Option<ConnectionSettings>,
}

/// Changes to a workspace's backup encryption; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct EncryptionChange {
    /// Generate a (new) managed key pair. Old backups stay readable only with the old
    /// identity, which is kept (see [`BackupService::managed_identities`]).
    pub generate_managed_key: bool,
    /// Stop encrypting to the managed key (the server then cannot read new backups).
    pub drop_managed_key: bool,
    pub recipients: Option<Vec<String>>,
    /// `Some(Some(p))` switches to passphrase encryption; `Some(None)` switches it off.
    pub passphrase: Option<Option<String>>,
    /// `Some(None)` removes the verification server.
    pub verification_server: Option<Option<(ConnectionSettings, Option<String>)>>,
}

/// The managed identity, exported for restores without statehouse.
#[derive(Serialize, ToSchema)]
pub struct GeneratedKey {
    pub recipient: String,
    /// `AGE-SECRET-KEY-1…`: save it as `key.txt` for `age -d -i key.txt`.
    pub identity: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GeneratedKey({}, ***)", self.recipient)
    }
}

/// How new backups of a workspace are encrypted.
pub(crate) enum Encryptor {
    Recipients(Vec<age::x25519::Recipient>),
    Passphrase(String),
}

fn parse_recipient(text: &str) -> Result<age::x25519::Recipient> {
    age::x25519::Recipient::from_str(text.trim()).map_err(|e| {
        Error::BadRequest(format!(
            "{text:?} is not an age X25519 recipient ({e}); it starts with age1 (age-keygen -y key.txt prints it)"
        ))
    })
}

impl BackupService {
    pub(crate) async fn backup_config(
        &self,
        workspace_id: &str,
    ) -> Result<(WorkspaceBackupConfig, WorkspaceBackupSecrets)> {
        let Some(row) = self
            .core
            .backup_store()
            .workspace_backup_settings(workspace_id)
            .await?
        else {
            return Ok(Default::default());
        };
        let config: WorkspaceBackupConfig = serde_json::from_value(row.settings.clone())
            .map_err(|e| Error::Internal(format!("stored backup settings do not parse: {e}")))?;
        let secrets = self.open_secrets(
            SealedKind::WorkspaceBackupSettings,
            workspace_id,
            workspace_id,
            row.secrets.as_ref(),
        )?;
        Ok((config, secrets))
    }

    async fn put_backup_config(
        &self,
        workspace_id: &str,
        config: &WorkspaceBackupConfig,
        secrets: &WorkspaceBackupSecrets,
    ) -> Result<()> {
        let row = WorkspaceBackupSettings {
            workspace_id: workspace_id.to_owned(),
            settings: serde_json::to_value(config).map_err(|e| Error::Internal(e.to_string()))?,
            secrets: self.seal_secrets(
                SealedKind::WorkspaceBackupSettings,
                workspace_id,
                workspace_id,
                secrets,
            )?,
            updated_at: self.core.now(),
        };
        self.core
            .backup_store()
            .put_workspace_backup_settings(&row)
            .await
    }

    fn view_encryption(config: &WorkspaceBackupConfig) -> EncryptionView {
        EncryptionView {
            managed_recipient: config.managed_recipient.clone(),
            recipients: config.recipients.clone(),
            passphrase: config.passphrase,
            server_can_decrypt: config.passphrase || config.managed_recipient.is_some(),
            verification_server: config.verification_server.clone(),
        }
    }

    /// Gives a workspace without any backup encryption a managed key pair.
    pub(crate) async fn ensure_encryption(
        &self,
        who: &Principal,
        workspace: &Workspace,
    ) -> Result<()> {
        let (config, _) = self.backup_config(&workspace.id).await?;
        if config.managed_recipient.is_some() || !config.recipients.is_empty() || config.passphrase
        {
            return Ok(());
        }
        self.change_encryption(
            who,
            &workspace.name,
            EncryptionChange {
                generate_managed_key: true,
                ..Default::default()
            },
        )
        .await
        .map(|_| ())
    }

    pub async fn encryption(&self, who: &Principal, ws: &str) -> Result<EncryptionView> {
        let (workspace, _) = self
            .core
            .authorize(who, ws, Role::Viewer, "reading backup encryption")
            .await?;
        let (config, _) = self.backup_config(&workspace.id).await?;
        Ok(Self::view_encryption(&config))
    }

    /// Changes how new backups are encrypted (workspace admin).
    pub async fn change_encryption(
        &self,
        who: &Principal,
        ws: &str,
        change: EncryptionChange,
    ) -> Result<EncryptionView> {
        let record = AuditRecord::by(who, "backup.encryption.update", self.core.now())
            .workspace(ws)
            .detail(json!({
                "generate_managed_key": change.generate_managed_key,
                "drop_managed_key": change.drop_managed_key,
                "recipients": change.recipients,
                "passphrase": change.passphrase.as_ref().map(|p| p.is_some()),
                "verification_server": change.verification_server.as_ref()
                    .map(|v| v.as_ref().map(|(c, _)| c.display())),
            }));
        let result = async {
            let workspace = self.admin_of(who, ws, "changing backup encryption").await?;
            let (mut config, mut secrets) = self.backup_config(&workspace.id).await?;
            if change.generate_managed_key && change.drop_managed_key {
                return Err(Error::BadRequest(
                    "generate_managed_key and drop_managed_key contradict each other".into(),
                ));
            }
            if change.generate_managed_key {
                let identity = age::x25519::Identity::generate();
                let recipient = identity.to_public().to_string();
                // The previous identity stays in the secrets: older backups need it.
                if let Some(old) = secrets.managed_identity.take() {
                    secrets.previous_identities.push(old);
                }
                secrets.managed_identity = Some(identity.to_string().expose_secret().to_owned());
                config.managed_recipient = Some(recipient);
            }
            if change.drop_managed_key {
                config.managed_recipient = None;
            }
            if let Some(recipients) = change.recipients {
                let mut clean = Vec::new();
                for r in &recipients {
                    let parsed = parse_recipient(r)?.to_string();
                    if !clean.contains(&parsed) {
                        clean.push(parsed);
                    }
                }
                config.recipients = clean;
            }
            if let Some(passphrase) = change.passphrase {
                match passphrase {
                    Some(p) => {
                        if p.chars().count() < MIN_PASSPHRASE {
                            return Err(Error::BadRequest(format!(
                                "the passphrase must have at least {MIN_PASSPHRASE} characters"
                            )));
                        }
                        secrets.passphrase = Some(p);
                        config.passphrase = true;
                    }
                    None => {
                        secrets.passphrase = None;
                        config.passphrase = false;
                    }
                }
            }
            if let Some(server) = change.verification_server {
                match server {
                    Some((connection, password)) => {
                        connection.validate()?;
                        config.verification_server = Some(connection);
                        secrets.verification_password = password.filter(|p| !p.is_empty());
                    }
                    None => {
                        config.verification_server = None;
                        secrets.verification_password = None;
                    }
                }
            }
            if config.passphrase
                && (config.managed_recipient.is_some() || !config.recipients.is_empty())
            {
                return Err(Error::BadRequest(
                    "age encrypts to a passphrase only when it is the sole recipient: drop the managed key and the recipients first, or keep them and switch the passphrase off".into(),
                ));
            }
            if !config.passphrase
                && config.managed_recipient.is_none()
                && config.recipients.is_empty()
            {
                return Err(Error::BadRequest(
                    "backups need at least one way to decrypt them: keep the managed key, add a recipient (age1…) or set a passphrase".into(),
                ));
            }
            self.put_backup_config(&workspace.id, &config, &secrets)
                .await?;
            Ok(Self::view_encryption(&config))
        }
        .await;
        self.core.conclude(result, record, |_, r| (r, None)).await
    }

    /// Exports the managed identity (workspace admin; audited): what `age -d -i key.txt` needs
    /// to restore without statehouse.
    pub async fn export_managed_key(&self, who: &Principal, ws: &str) -> Result<GeneratedKey> {
        let record = AuditRecord::by(who, "backup.key.export", self.core.now()).workspace(ws);
        let result = async {
            let workspace = self.admin_of(who, ws, "exporting the backup key").await?;
            let (config, secrets) = self.backup_config(&workspace.id).await?;
            match (config.managed_recipient, secrets.managed_identity) {
                (Some(recipient), Some(identity)) => Ok(GeneratedKey {
                    recipient,
                    identity,
                }),
                _ => Err(Error::NotFound(format!(
                    "workspace {:?} has no managed backup key",
                    workspace.name
                ))),
            }
        }
        .await;
        self.core.conclude(result, record, |_, r| (r, None)).await
    }

    /// How new backups of the workspace are encrypted.
    pub(crate) async fn encryptor(&self, workspace_id: &str) -> Result<Encryptor> {
        let (config, secrets) = self.backup_config(workspace_id).await?;
        if config.passphrase {
            let passphrase = secrets.passphrase.ok_or_else(|| {
                Error::Config("the workspace's backup passphrase is missing; set it again".into())
            })?;
            return Ok(Encryptor::Passphrase(passphrase));
        }
        let mut recipients = Vec::new();
        for r in config.managed_recipient.iter().chain(&config.recipients) {
            recipients.push(parse_recipient(r)?);
        }
        if recipients.is_empty() {
            return Err(Error::Config(
                "the workspace has no backup encryption configured; generate a managed key or add a recipient".into(),
            ));
        }
        Ok(Encryptor::Recipients(recipients))
    }

    /// Every identity the server holds for the workspace (current managed key first), and its
    /// passphrase: what in-app restores and verifications try.
    pub(crate) async fn managed_identities(
        &self,
        workspace_id: &str,
    ) -> Result<(Vec<String>, Option<String>)> {
        let (_, secrets) = self.backup_config(workspace_id).await?;
        let mut identities: Vec<String> = secrets.managed_identity.into_iter().collect();
        identities.extend(secrets.previous_identities.into_iter().rev());
        Ok((identities, secrets.passphrase))
    }
}
