//! [`TargetSpec`]: the settings of every kind of storage target, validated, with the secret
//! fields separable so they can be stored encrypted apart from the rest.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::pipeline::BackupError;

/// A secret setting (key, password, token). Serialized as a plain string so it can be encrypted
/// as part of the secrets half of [`TargetSpec::split_secrets`]; never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for handing to the storage client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

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

/// The fields holding secrets, per kind: what [`TargetSpec::split_secrets`] moves out.
fn secret_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "s3" => &["secret_access_key", "session_token"],
        "azblob" => &["account_key", "sas_token"],
        "gcs" => &["credential"],
        "sftp" => &["private_key", "password"],
        "webdav" | "ftp" => &["password"],
        "gdrive" => &["access_token", "refresh_token", "client_secret"],
        _ => &[],
    }
}

/// The fields of each kind that say where its secrets are sent: changing one must come with the
/// secrets again, or a workspace admin could send the stored ones to a server of their own.
fn destination_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        // The bucket and path style make the host name (`<bucket>.<endpoint>`), the region
        // AWS's endpoint.
        "s3" => &["endpoint", "bucket", "region", "path_style"],
        "azblob" => &["endpoint", "account_name"],
        "gcs" => &["endpoint", "bucket"],
        "sftp" => &["host", "port"],
        "webdav" | "ftp" | "gdrive" => &["endpoint"],
        _ => &[],
    }
}

fn invalid(kind: &str, message: impl std::fmt::Display) -> BackupError {
    BackupError::Config(format!("{kind} target: {message}"))
}

fn require(kind: &str, field: &str, value: &str) -> Result<(), BackupError> {
    if value.trim().is_empty() {
        return Err(invalid(kind, format!("`{field}` is required")));
    }
    Ok(())
}

fn present(secret: &Option<Secret>) -> bool {
    secret
        .as_ref()
        .is_some_and(|s| !s.expose().trim().is_empty())
}

/// An endpoint must be an absolute URL with one of `schemes` and a host.
fn check_url(kind: &str, field: &str, value: &str, schemes: &[&str]) -> Result<(), BackupError> {
    let example = format!("{}://host:port", schemes[0]);
    let url = url::Url::parse(value).map_err(|e| {
        invalid(
            kind,
            format!("`{field}` {value:?} is not a URL ({e}); write it like {example}"),
        )
    })?;
    if !schemes.contains(&url.scheme()) {
        return Err(invalid(
            kind,
            format!(
                "`{field}` {value:?} must start with {}",
                schemes
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(kind, format!("`{field}` {value:?} has no host")));
    }
    Ok(())
}

/// A folder inside the store: `/`-separated, no `..`.
fn check_folder(kind: &str, field: &str, value: &str) -> Result<(), BackupError> {
    if value.split('/').any(|segment| segment == "..") {
        return Err(invalid(kind, format!("`{field}` must not contain `..`")));
    }
    if value.contains('\\') || value.chars().any(char::is_control) {
        return Err(invalid(
            kind,
            format!("`{field}` must be a `/`-separated path without backslashes"),
        ));
    }
    Ok(())
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

    /// Checks the settings without contacting anything; the message names the field and says
    /// what to write instead. Whether the credentials work is for
    /// [`crate::targets::BackupTarget::probe`] to find out.
    pub fn validate(&self) -> Result<(), BackupError> {
        let kind = self.kind();
        match self {
            TargetSpec::Local(s) => {
                require(kind, "path", &s.path)?;
                if !std::path::Path::new(&s.path).is_absolute() {
                    return Err(invalid(
                        kind,
                        format!("`path` {:?} must be an absolute directory path", s.path),
                    ));
                }
            }
            TargetSpec::S3(s) => {
                require(kind, "bucket", &s.bucket)?;
                let bucket_ok = s.bucket.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.')
                }) && (3..=63).contains(&s.bucket.len());
                if !bucket_ok {
                    return Err(invalid(
                        kind,
                        format!(
                            "`bucket` {:?} is not a bucket name (3 to 63 lowercase letters, digits, `-` or `.`)",
                            s.bucket
                        ),
                    ));
                }
                require(kind, "region", &s.region)?;
                if let Some(endpoint) = &s.endpoint {
                    check_url(kind, "endpoint", endpoint, &["https", "http"])?;
                }
                let has_id = s
                    .access_key_id
                    .as_ref()
                    .is_some_and(|k| !k.trim().is_empty());
                if has_id != present(&s.secret_access_key) {
                    return Err(invalid(
                        kind,
                        "set both `access_key_id` and `secret_access_key`, or neither to use the server's AWS environment",
                    ));
                }
                if present(&s.session_token) && !has_id {
                    return Err(invalid(
                        kind,
                        "`session_token` needs `access_key_id` and `secret_access_key`",
                    ));
                }
                if let Some(prefix) = &s.prefix {
                    check_folder(kind, "prefix", prefix)?;
                }
            }
            TargetSpec::Azblob(s) => {
                require(kind, "container", &s.container)?;
                require(kind, "account_name", &s.account_name)?;
                if !present(&s.account_key) && !present(&s.sas_token) {
                    return Err(invalid(
                        kind,
                        "set `account_key` (the storage account's access key) or `sas_token`",
                    ));
                }
                if let Some(endpoint) = &s.endpoint {
                    check_url(kind, "endpoint", endpoint, &["https", "http"])?;
                }
                if let Some(prefix) = &s.prefix {
                    check_folder(kind, "prefix", prefix)?;
                }
            }
            TargetSpec::Gcs(s) => {
                require(kind, "bucket", &s.bucket)?;
                if let Some(credential) = &s.credential {
                    let json: Value = serde_json::from_str(credential.expose()).map_err(|_| {
                        invalid(
                            kind,
                            "`credential` must be the content of a service account JSON key file",
                        )
                    })?;
                    for field in ["type", "client_email", "private_key"] {
                        if json.get(field).and_then(Value::as_str).is_none() {
                            return Err(invalid(
                                kind,
                                format!(
                                    "`credential` has no `{field}`: paste the whole service account JSON key file"
                                ),
                            ));
                        }
                    }
                }
                if let Some(endpoint) = &s.endpoint {
                    check_url(kind, "endpoint", endpoint, &["https", "http"])?;
                }
                if let Some(prefix) = &s.prefix {
                    check_folder(kind, "prefix", prefix)?;
                }
            }
            TargetSpec::Sftp(s) => {
                require(kind, "host", &s.host)?;
                if s.host.contains(['/', ' ', '@']) {
                    return Err(invalid(
                        kind,
                        format!("`host` {:?} must be a host name or IP address only", s.host),
                    ));
                }
                if s.port == 0 {
                    return Err(invalid(kind, "`port` must be between 1 and 65535"));
                }
                require(kind, "user", &s.user)?;
                if s.user.starts_with('-') || s.user.contains(['@', ' ']) {
                    return Err(invalid(
                        kind,
                        format!("`user` {:?} is not a user name", s.user),
                    ));
                }
                if present(&s.password) {
                    return Err(invalid(
                        kind,
                        "password login is not supported (the SSH client runs without a terminal); \
                         set `private_key` and add its public key to the server's ~/.ssh/authorized_keys",
                    ));
                }
                match &s.private_key {
                    Some(key) if key.expose().contains("PRIVATE KEY-----") => {}
                    Some(_) => {
                        return Err(invalid(
                            kind,
                            "`private_key` must be an OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----…)",
                        ));
                    }
                    None => {
                        return Err(invalid(
                            kind,
                            "`private_key` is required: an unencrypted OpenSSH private key whose public key is in the server's ~/.ssh/authorized_keys",
                        ));
                    }
                }
                require(kind, "root", &s.root)?;
                check_folder(kind, "root", &s.root)?;
            }
            TargetSpec::Webdav(s) => {
                check_url(kind, "endpoint", &s.endpoint, &["https", "http"])?;
                if s.username.is_some() != s.password.is_some() {
                    return Err(invalid(
                        kind,
                        "set both `username` and `password`, or neither",
                    ));
                }
                if let Some(root) = &s.root {
                    check_folder(kind, "root", root)?;
                }
            }
            TargetSpec::Ftp(s) => {
                check_url(kind, "endpoint", &s.endpoint, &["ftp", "ftps"])?;
                if s.password.is_some() && s.username.is_none() {
                    return Err(invalid(kind, "`password` needs `username`"));
                }
                if let Some(root) = &s.root {
                    check_folder(kind, "root", root)?;
                }
            }
            TargetSpec::Gdrive(s) => {
                require(kind, "root", &s.root)?;
                check_folder(kind, "root", &s.root)?;
                let refresh = present(&s.refresh_token);
                let client = s.client_id.as_ref().is_some_and(|c| !c.trim().is_empty())
                    && present(&s.client_secret);
                if refresh && !client {
                    return Err(invalid(
                        kind,
                        "`refresh_token` needs `client_id` and `client_secret` of the OAuth client that issued it",
                    ));
                }
                if !refresh && !present(&s.access_token) {
                    return Err(invalid(
                        kind,
                        "set `refresh_token` with `client_id` and `client_secret` (or a short-lived `access_token`)",
                    ));
                }
                if let Some(endpoint) = &s.endpoint {
                    check_url(kind, "endpoint", endpoint, &["https", "http"])?;
                }
            }
        }
        Ok(())
    }

    /// The fields saying where secrets go that differ between `self` and `changed` (all of them
    /// when the kind differs).
    pub fn moved_fields(&self, changed: &TargetSpec) -> Vec<&'static str> {
        let fields = destination_fields(self.kind());
        if self.kind() != changed.kind() {
            return fields.to_vec();
        }
        let (old, new) = (
            serde_json::to_value(self).unwrap_or_default(),
            serde_json::to_value(changed).unwrap_or_default(),
        );
        fields
            .iter()
            .copied()
            .filter(|field| old.get(field) != new.get(field))
            .collect()
    }

    /// Splits the spec into its public settings (with `kind`, safe to show and store in clear)
    /// and an object holding only the secret fields that are set (to encrypt).
    pub fn split_secrets(&self) -> (Value, Value) {
        let mut public = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // A struct-variant enum always serializes to an object.
            _ => Map::new(),
        };
        let mut secrets = Map::new();
        for field in secret_fields(self.kind()) {
            if let Some(value) = public.remove(*field) {
                secrets.insert((*field).to_owned(), value);
            }
        }
        (Value::Object(public), Value::Object(secrets))
    }

    /// Puts [`TargetSpec::split_secrets`]'s halves back together. `secrets` may hold only
    /// secret fields of the public half's kind; the result is not validated (call
    /// [`TargetSpec::validate`]).
    pub fn from_parts(public: &Value, secrets: &Value) -> Result<TargetSpec, BackupError> {
        let Value::Object(public) = public else {
            return Err(BackupError::Config(
                "target settings must be a JSON object with a `kind`".to_owned(),
            ));
        };
        let kind = public.get("kind").and_then(Value::as_str).ok_or_else(|| {
            BackupError::Config(
                "target settings need a `kind`: local, s3, azblob, gcs, sftp, webdav, ftp or gdrive"
                    .to_owned(),
            )
        })?;
        let allowed = secret_fields(kind);
        let mut merged = public.clone();
        match secrets {
            Value::Null => {}
            Value::Object(secrets) => {
                for (field, value) in secrets {
                    if !allowed.contains(&field.as_str()) {
                        return Err(BackupError::Config(format!(
                            "{kind} target: `{field}` is not a secret setting of this kind"
                        )));
                    }
                    merged.insert(field.clone(), value.clone());
                }
            }
            _ => {
                return Err(BackupError::Config(
                    "target secrets must be a JSON object".to_owned(),
                ));
            }
        }
        serde_json::from_value(Value::Object(merged))
            .map_err(|e| BackupError::Config(format!("invalid {kind} target settings: {e}")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn samples() -> Vec<TargetSpec> {
        vec![
            TargetSpec::Local(LocalSpec {
                path: "/var/backups".into(),
            }),
            TargetSpec::S3(S3Spec {
                bucket: "backups".into(),
                region: "auto".into(),
                endpoint: Some("https://acct.r2.cloudflarestorage.com".into()),
                access_key_id: Some("AKID".into()),
                secret_access_key: Some(Secret::new("s3-secret")),
                session_token: Some(Secret::new("s3-session")),
                path_style: true,
                prefix: Some("pg".into()),
            }),
            TargetSpec::Azblob(AzblobSpec {
                container: "c".into(),
                account_name: "acct".into(),
                account_key: Some(Secret::new("az-key")),
                sas_token: None,
                endpoint: None,
                prefix: None,
            }),
            TargetSpec::Gcs(GcsSpec {
                bucket: "b".into(),
                credential: Some(Secret::new(
                    r#"{"type":"service_account","client_email":"a@b","private_key":"gcs-pk"}"#,
                )),
                endpoint: None,
                prefix: Some("x/y".into()),
            }),
            TargetSpec::Sftp(SftpSpec {
                host: "backup.example".into(),
                port: 2222,
                user: "pg".into(),
                private_key: Some(Secret::new(
                    "-----BEGIN OPENSSH PRIVATE KEY-----\nsftp-key\n-----END OPENSSH PRIVATE KEY-----\n",
                )),
                password: None,
                known_hosts_strategy: Some(KnownHostsStrategy::Add),
                root: "/srv/backups".into(),
            }),
            TargetSpec::Webdav(WebdavSpec {
                endpoint: "https://dav.example/remote.php/dav".into(),
                username: Some("al".into()),
                password: Some(Secret::new("dav-pass")),
                root: Some("pg".into()),
            }),
            TargetSpec::Ftp(FtpSpec {
                endpoint: "ftps://ftp.example:21".into(),
                username: Some("al".into()),
                password: Some(Secret::new("ftp-pass")),
                root: None,
            }),
            TargetSpec::Gdrive(GdriveSpec {
                root: "statehouse".into(),
                access_token: None,
                refresh_token: Some(Secret::new("gd-refresh")),
                client_id: Some("client".into()),
                client_secret: Some(Secret::new("gd-client-secret")),
                endpoint: None,
            }),
        ]
    }

    const SECRET_WORDS: [&str; 11] = [
        "s3-secret",
        "s3-session",
        "az-key",
        "gcs-pk",
        "sftp-key",
        "dav-pass",
        "ftp-pass",
        "gd-refresh",
        "gd-client-secret",
        "secret_access_key\":",
        "\"password\":",
    ];

    #[test]
    fn samples_are_valid_and_round_trip_through_split_secrets() {
        for spec in samples() {
            spec.validate().unwrap();
            let (public, secrets) = spec.split_secrets();
            assert_eq!(public["kind"], spec.kind());
            let public_text = public.to_string();
            for word in SECRET_WORDS {
                assert!(!public_text.contains(word), "{word} in {public_text}");
            }
            assert!(secrets.is_object());
            for field in secrets.as_object().unwrap().keys() {
                assert!(secret_fields(spec.kind()).contains(&field.as_str()));
            }
            assert_eq!(TargetSpec::from_parts(&public, &secrets).unwrap(), spec);
            // Also through text, the way a store keeps them.
            let public: Value = serde_json::from_str(&public.to_string()).unwrap();
            let secrets: Value = serde_json::from_str(&secrets.to_string()).unwrap();
            assert_eq!(TargetSpec::from_parts(&public, &secrets).unwrap(), spec);
        }
    }

    #[test]
    fn moved_fields_are_those_saying_where_secrets_go() {
        let samples = samples();
        for spec in &samples {
            assert!(spec.moved_fields(spec).is_empty(), "{}", spec.kind());
        }
        let TargetSpec::S3(s3) = &samples[1] else {
            panic!()
        };
        let elsewhere = TargetSpec::S3(S3Spec {
            endpoint: Some("https://attacker.example".into()),
            prefix: Some("other".into()),
            ..s3.clone()
        });
        assert_eq!(samples[1].moved_fields(&elsewhere), vec!["endpoint"]);
        let TargetSpec::Sftp(sftp) = &samples[4] else {
            panic!()
        };
        let other_port = TargetSpec::Sftp(SftpSpec {
            port: 22,
            root: "/elsewhere".into(),
            ..sftp.clone()
        });
        assert_eq!(samples[4].moved_fields(&other_port), vec!["port"]);
        assert_eq!(samples[5].moved_fields(&samples[6]), vec!["endpoint"]);
    }

    #[test]
    fn debug_redacts_every_secret() {
        for spec in samples() {
            let text = format!("{spec:?}");
            for word in &SECRET_WORDS[..9] {
                assert!(!text.contains(word), "{word} in {text}");
            }
            assert!(
                spec.kind() == "local" || text.contains("<redacted>"),
                "{text}"
            );
        }
    }

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

    #[test]
    fn from_parts_refuses_non_secret_fields_in_the_secrets_half() {
        let (public, _) = samples()[1].split_secrets();
        let err = TargetSpec::from_parts(&public, &json!({"bucket": "other"})).unwrap_err();
        assert!(
            err.to_string().contains("`bucket` is not a secret"),
            "{err}"
        );
        let err = TargetSpec::from_parts(&json!({"bucket": "x"}), &json!({})).unwrap_err();
        assert!(err.to_string().contains("`kind`"), "{err}");
        let err = TargetSpec::from_parts(&json!({"kind": "tape"}), &json!({})).unwrap_err();
        assert!(err.to_string().contains("tape"), "{err}");
    }

    fn invalid_message(value: Value) -> String {
        let spec: TargetSpec = serde_json::from_value(value).unwrap();
        spec.validate().unwrap_err().to_string()
    }

    #[test]
    fn validation_messages_name_the_field_and_the_fix() {
        let cases = [
            (json!({"kind": "local", "path": "backups"}), "absolute"),
            (
                json!({"kind": "s3", "bucket": "", "region": "r"}),
                "`bucket` is required",
            ),
            (
                json!({"kind": "s3", "bucket": "My_Bucket", "region": "r"}),
                "not a bucket name",
            ),
            (
                json!({"kind": "s3", "bucket": "bkt", "region": "r", "access_key_id": "a"}),
                "set both `access_key_id` and `secret_access_key`",
            ),
            (
                json!({"kind": "s3", "bucket": "bkt", "region": "r", "endpoint": "minio:9000"}),
                "`endpoint`",
            ),
            (
                json!({"kind": "s3", "bucket": "bkt", "region": "r", "prefix": "a/../b"}),
                "`..`",
            ),
            (
                json!({"kind": "azblob", "container": "c", "account_name": "a"}),
                "`account_key`",
            ),
            (
                json!({"kind": "gcs", "bucket": "b", "credential": "{\"type\":\"x\"}"}),
                "no `client_email`",
            ),
            (
                json!({"kind": "sftp", "host": "h", "user": "u", "root": "r", "password": "p"}),
                "password login is not supported",
            ),
            (
                json!({"kind": "sftp", "host": "h", "user": "u", "root": "r"}),
                "`private_key` is required",
            ),
            (
                json!({"kind": "webdav", "endpoint": "ftp://x"}),
                "must start with https:// or http://",
            ),
            (json!({"kind": "ftp", "endpoint": "http://x"}), "ftp://"),
            (json!({"kind": "gdrive", "root": "r"}), "`refresh_token`"),
            (
                json!({"kind": "gdrive", "root": "r", "refresh_token": "t"}),
                "`client_id` and `client_secret`",
            ),
        ];
        for (value, expected) in cases {
            let message = invalid_message(value.clone());
            assert!(message.contains(expected), "{value}: {message}");
            assert!(
                message.starts_with(value["kind"].as_str().unwrap()),
                "{message}"
            );
        }
    }
}
