//! Secret settings: the [`Secret`] value that `Debug` never shows, which fields of each kind hold
//! one, splitting them off a [`TargetSpec`] and joining them back, and which changes would send
//! them elsewhere.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::TargetSpec;
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

impl TargetSpec {
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
    use crate::targets::spec::{
        AzblobSpec, FtpSpec, GcsSpec, GdriveSpec, KnownHostsStrategy, LocalSpec, S3Spec, SftpSpec,
        WebdavSpec,
    };
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
}
