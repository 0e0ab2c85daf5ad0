//! Checking a [`TargetSpec`] without contacting anything: each message names the kind and the
//! field, and says what to write instead.

use serde_json::Value;

use super::{Secret, TargetSpec};
use crate::pipeline::BackupError;

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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

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
