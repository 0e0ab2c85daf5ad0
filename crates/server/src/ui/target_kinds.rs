//! Every kind of storage target and its settings, as the forms show them (the settings are
//! those of `statehouse_backup::targets::TargetSpec`; the secrets, those it seals).

use super::config_form::{Input, Kind, Setting};

const fn setting(
    name: &'static str,
    label: &'static str,
    input: Input,
    required: bool,
    hint: &'static str,
) -> Setting {
    Setting {
        name,
        label,
        input,
        required,
        hint,
    }
}

const PREFIX_HINT: &str = "Folder inside the store that holds the backups (empty: its top).";

pub const TARGET_KINDS: &[Kind] = &[
    Kind {
        name: "local",
        label: "Local directory",
        about: "A directory on the statehouse server's own disk (or a mounted share).",
        settings: &[setting(
            "path",
            "Directory",
            Input::Text,
            true,
            "An absolute path the statehouse process may write to, e.g. /var/backups/statehouse. \
             It must lie under the instance's allowed local target roots.",
        )],
    },
    Kind {
        name: "s3",
        label: "Amazon S3 or S3-compatible",
        about: "A bucket on AWS S3, Cloudflare R2, MinIO, Backblaze B2, Wasabi…",
        settings: &[
            setting("bucket", "Bucket", Input::Text, true, ""),
            setting(
                "region",
                "Region",
                Input::Text,
                true,
                "e.g. us-east-1; R2 takes auto.",
            ),
            setting(
                "endpoint",
                "Endpoint",
                Input::Url,
                false,
                "For S3-compatible stores, e.g. https://ACCOUNT.r2.cloudflarestorage.com or \
                 http://minio:9000 (empty: AWS).",
            ),
            setting(
                "access_key_id",
                "Access key id",
                Input::Text,
                false,
                "Empty together with the secret key: the server's AWS environment provides \
                 credentials.",
            ),
            setting(
                "secret_access_key",
                "Secret access key",
                Input::Secret,
                false,
                "",
            ),
            setting(
                "session_token",
                "Session token",
                Input::Secret,
                false,
                "Only for temporary credentials.",
            ),
            setting(
                "path_style",
                "Path-style addresses",
                Input::Flag,
                false,
                "endpoint/bucket/key instead of bucket.endpoint/key: MinIO usually needs them.",
            ),
            setting("prefix", "Prefix", Input::Text, false, PREFIX_HINT),
        ],
    },
    Kind {
        name: "azblob",
        label: "Azure Blob Storage",
        about: "A container of an Azure storage account.",
        settings: &[
            setting("container", "Container", Input::Text, true, ""),
            setting("account_name", "Account name", Input::Text, true, ""),
            setting(
                "account_key",
                "Account key",
                Input::Secret,
                false,
                "The account key or a SAS token is needed.",
            ),
            setting("sas_token", "SAS token", Input::Secret, false, ""),
            setting(
                "endpoint",
                "Endpoint",
                Input::Url,
                false,
                "Empty: https://ACCOUNT.blob.core.windows.net.",
            ),
            setting("prefix", "Prefix", Input::Text, false, PREFIX_HINT),
        ],
    },
    Kind {
        name: "gcs",
        label: "Google Cloud Storage",
        about: "A Google Cloud Storage bucket.",
        settings: &[
            setting("bucket", "Bucket", Input::Text, true, ""),
            setting(
                "credential",
                "Service account key (the JSON file's content)",
                Input::SecretBlock,
                false,
                "Empty: the server's environment (GOOGLE_APPLICATION_CREDENTIALS, VM metadata) \
                 provides credentials.",
            ),
            setting(
                "endpoint",
                "Endpoint",
                Input::Url,
                false,
                "Empty: https://storage.googleapis.com.",
            ),
            setting("prefix", "Prefix", Input::Text, false, PREFIX_HINT),
        ],
    },
    Kind {
        name: "sftp",
        label: "SFTP (SSH)",
        about: "A directory on an SSH server, logged into with a key.",
        settings: &[
            setting("host", "Host", Input::Text, true, ""),
            setting("port", "Port", Input::Number, false, "Empty: 22."),
            setting("user", "User", Input::Text, true, ""),
            setting(
                "private_key",
                "Private key (OpenSSH, unencrypted)",
                Input::SecretBlock,
                false,
                "The key file's content, -----BEGIN OPENSSH PRIVATE KEY----- …",
            ),
            setting(
                "known_hosts_strategy",
                "Host key check",
                Input::Choice(&[
                    (
                        "",
                        "strict: the key must be in ~/.ssh/known_hosts (default)",
                    ),
                    ("strict", "strict"),
                    ("add", "add unknown keys, refuse changed ones"),
                    ("accept", "accept any key (tests and trusted networks only)"),
                ]),
                false,
                "",
            ),
            setting(
                "root",
                "Directory",
                Input::Text,
                true,
                "Created when missing; relative to the login directory unless it starts with /.",
            ),
        ],
    },
    Kind {
        name: "webdav",
        label: "WebDAV",
        about: "A WebDAV server: Nextcloud, ownCloud, Apache mod_dav…",
        settings: &[
            setting(
                "endpoint",
                "Endpoint",
                Input::Url,
                true,
                "e.g. https://cloud.example.com/remote.php/dav/files/alice",
            ),
            setting("username", "User name", Input::Text, false, ""),
            setting("password", "Password", Input::Secret, false, ""),
            setting("root", "Folder", Input::Text, false, ""),
        ],
    },
    Kind {
        name: "ftp",
        label: "FTP",
        about: "An FTP server; ftps:// for explicit TLS.",
        settings: &[
            setting(
                "endpoint",
                "Endpoint",
                Input::Text,
                true,
                "ftp://host:21 or ftps://host:21",
            ),
            setting("username", "User name", Input::Text, false, ""),
            setting("password", "Password", Input::Secret, false, ""),
            setting("root", "Folder", Input::Text, false, ""),
        ],
    },
    Kind {
        name: "gdrive",
        label: "Google Drive",
        about: "A folder in Google Drive, through an OAuth refresh token (preferred) or a \
                short-lived access token.",
        settings: &[
            setting("root", "Folder", Input::Text, true, "Created when missing."),
            setting(
                "refresh_token",
                "Refresh token",
                Input::Secret,
                false,
                "With the client id and secret: statehouse refreshes the access token itself.",
            ),
            setting("client_id", "Client id", Input::Text, false, ""),
            setting("client_secret", "Client secret", Input::Secret, false, ""),
            setting("access_token", "Access token", Input::Secret, false, ""),
            setting(
                "endpoint",
                "Endpoint",
                Input::Url,
                false,
                "Empty: https://www.googleapis.com.",
            ),
        ],
    },
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::Value;
    use statehouse_backup::targets::TargetSpec;

    use super::*;
    use crate::ui::config_form::{Posted, settings_of};

    /// A form of each kind with every field filled in parses as the service's `TargetSpec`,
    /// and the table names every field the spec has.
    #[test]
    fn every_kind_and_field_is_the_specs() {
        for kind in TARGET_KINDS {
            let mut pairs = Vec::new();
            for s in kind.settings {
                let value = match (kind.name, s.name, s.input) {
                    (_, _, Input::Number) => "2222",
                    (_, _, Input::Flag) => "on",
                    (_, _, Input::Choice(options)) => options[1].0,
                    ("ftp", "endpoint", _) => "ftp://ftp.example:21",
                    ("local", "path", _) => "/var/backups",
                    (_, _, Input::Url) => "https://store.example",
                    _ => "value",
                };
                pairs.push((format!("s.{}", s.name), value.to_owned()));
            }
            let text = serde_urlencoded::to_string(&pairs).unwrap();
            let posted: Posted = serde_urlencoded::from_str(&text).unwrap();
            let settings = settings_of(kind, &posted, &[]).unwrap();
            let spec: TargetSpec = serde_json::from_value(settings.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", kind.name));
            assert_eq!(spec.kind(), kind.name);
            let Value::Object(full) = serde_json::to_value(&spec).unwrap() else {
                panic!()
            };
            for field in full.keys().filter(|k| *k != "kind") {
                assert!(
                    kind.settings.iter().any(|s| s.name == field),
                    "{}: the form lacks {field}",
                    kind.name
                );
            }
        }
    }
}
