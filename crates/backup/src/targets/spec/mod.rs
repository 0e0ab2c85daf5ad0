//! [`TargetSpec`]: the settings of every kind of storage target. How they are checked is in
//! `validation`; the secret fields, separable so they can be stored encrypted apart from the
//! rest, in `secrets`.

mod secrets;
mod validation;

use serde::{Deserialize, Serialize};

pub use secrets::Secret;

/// Where backups go. JSON-tagged by `kind`: `{"kind": "s3", "bucket": "…", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetSpec {
    Local(LocalSpec),
    S3(S3Spec),
    Azblob(AzblobSpec),
    Gcs(GcsSpec),
    Sftp(SftpSpec),
    Webdav(WebdavSpec),
    Ftp(FtpSpec),
    Gdrive(GdriveSpec),
}

/// A directory on the server's own disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSpec {
    pub path: String,
}

/// Amazon S3 or an S3-compatible store (Cloudflare R2, MinIO, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Spec {
    pub bucket: String,
    /// `us-east-1`, …; R2 takes `auto`.
    pub region: String,
    /// For S3-compatible stores: `https://<account>.r2.cloudflarestorage.com`,
    /// `http://minio:9000`, …; AWS's regional endpoint when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// With `secret_access_key`; both absent means the server's environment (AWS_* variables,
    /// instance profile) provides credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
    /// Path-style URLs (`endpoint/bucket/key`), which MinIO usually needs.
    #[serde(default)]
    pub path_style: bool,
    /// Folder inside the bucket that holds the backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Azure Blob Storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzblobSpec {
    pub container: String,
    pub account_name: String,
    /// One of `account_key` and `sas_token` is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas_token: Option<Secret>,
    /// `https://<account_name>.blob.core.windows.net` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Google Cloud Storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsSpec {
    pub bucket: String,
    /// A service account key (the JSON file's content); absent means the server's environment
    /// (GOOGLE_APPLICATION_CREDENTIALS, VM metadata) provides credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<Secret>,
    /// `https://storage.googleapis.com` when absent. Google's OAuth token requests go to this
    /// endpoint too when it is set (an emulator or proxy that serves both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// How an SFTP target checks the server's host key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnownHostsStrategy {
    /// The key must already be in the server user's `~/.ssh/known_hosts` (the default).
    Strict,
    /// Unknown keys are added to `~/.ssh/known_hosts`, changed keys refused.
    Add,
    /// Any key is accepted: only for tests and trusted networks.
    Accept,
}

/// A directory on an SSH server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpSpec {
    pub host: String,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    pub user: String,
    /// An OpenSSH private key (the file's content), unencrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<Secret>,
    /// Not supported (see [`TargetSpec::validate`]); kept so a configuration that sets it gets a
    /// clear message instead of "unknown field".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts_strategy: Option<KnownHostsStrategy>,
    /// Directory that holds the backups (created when missing); relative to the login
    /// directory unless it starts with `/`.
    pub root: String,
}

fn default_ssh_port() -> u16 {
    22
}

/// A WebDAV server (Nextcloud, ownCloud, Apache mod_dav, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebdavSpec {
    /// `https://cloud.example.com/remote.php/dav/files/alice`.
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

/// An FTP server; `ftps://` for explicit TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtpSpec {
    /// `ftp://host:21` or `ftps://host:21`.
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

/// A folder in Google Drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GdriveSpec {
    /// Folder path in the drive, created when missing.
    pub root: String,
    /// A short-lived OAuth access token, or the refresh token + client pair below (preferred:
    /// statehouse refreshes the access token itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// Google's API base (`https://www.googleapis.com`) when absent; a proxy or test server
    /// otherwise, which then also receives the OAuth token requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl TargetSpec {
    /// The `kind` tag: `local`, `s3`, …
    pub fn kind(&self) -> &'static str {
        match self {
            TargetSpec::Local(_) => "local",
            TargetSpec::S3(_) => "s3",
            TargetSpec::Azblob(_) => "azblob",
            TargetSpec::Gcs(_) => "gcs",
            TargetSpec::Sftp(_) => "sftp",
            TargetSpec::Webdav(_) => "webdav",
            TargetSpec::Ftp(_) => "ftp",
            TargetSpec::Gdrive(_) => "gdrive",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_tagged_by_kind_and_rejects_unknown_fields() {
        let spec: TargetSpec = serde_json::from_value(json!({
            "kind": "s3", "bucket": "bkt", "region": "us-east-1"
        }))
        .unwrap();
        assert!(matches!(&spec, TargetSpec::S3(s) if !s.path_style && s.endpoint.is_none()));
        let err = serde_json::from_value::<TargetSpec>(json!({
            "kind": "s3", "bucket": "bkt", "region": "us-east-1", "bucket_name": "x"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("bucket_name"), "{err}");
        let sftp: TargetSpec = serde_json::from_value(json!({
            "kind": "sftp", "host": "h", "user": "u", "root": "r"
        }))
        .unwrap();
        assert!(matches!(sftp, TargetSpec::Sftp(s) if s.port == 22));
    }
}
