//! Which keys a run uses: how a new backup is encrypted, and what the server can decrypt a
//! stored one with.

use age::secrecy::SecretString;
use statehouse_core::backups::BackupRecord;
use statehouse_core::{Error, Result};

use crate::keys::{Decryption, Encryption};
use crate::pipeline::BackupError;
use crate::service::BackupService;
use crate::service::encryption::Encryptor;

/// How a stored backup can be decrypted by the server, when it can.
fn decryption_from(
    identities: &[String],
    passphrase: Option<&String>,
) -> std::result::Result<Option<Decryption>, BackupError> {
    if let Some(p) = passphrase {
        return Ok(Some(Decryption::Passphrase(SecretString::from(p.clone()))));
    }
    if identities.is_empty() {
        return Ok(None);
    }
    Decryption::from_identity_file_text(&SecretString::from(identities.join("\n"))).map(Some)
}

/// What the server can decrypt `run` with: only identities among the backup's recipients, or
/// the passphrase for a passphrase backup (no recipients recorded). `None`: the backup was made
/// for keys only their owners hold.
pub(in crate::service) fn server_decryption_for(
    run: &BackupRecord,
    identities: &[String],
    passphrase: Option<&String>,
) -> Result<Option<Decryption>> {
    let recipients: Vec<String> = run
        .detail
        .get("recipients")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or_default();
    if recipients.is_empty() {
        return decryption_from(&[], passphrase).map_err(|e| Error::Internal(e.to_string()));
    }
    let usable: Vec<String> = identities
        .iter()
        .filter(|text| {
            text.parse::<age::x25519::Identity>()
                .is_ok_and(|id| recipients.contains(&id.to_public().to_string()))
        })
        .cloned()
        .collect();
    decryption_from(&usable, None).map_err(|e| Error::Internal(e.to_string()))
}

impl BackupService {
    /// How new backups of the workspace are encrypted.
    pub(in crate::service) async fn encryption_for(
        &self,
        workspace_id: &str,
    ) -> Result<Encryption> {
        Ok(match self.encryptor(workspace_id).await? {
            Encryptor::Recipients(r) => Encryption::Recipients(r),
            Encryptor::Passphrase(p) => Encryption::Passphrase(SecretString::from(p)),
        })
    }
}
