//! `statehouse backup …`: stored backups (list, show, download, delete) and the workspace's
//! backup encryption, through the API.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::args::WorkspaceArg;
use crate::client::{Client, Paging, Query, path};
use crate::database_views::{RUN_HEADERS, dumped, run_row, verification_reason};
use crate::output::{Output, age, or_dash, print_json, size, str_or, write_out};
use crate::progress::{Progress, visible};
use crate::settings_input::read_stdin_secret;

#[derive(Subcommand)]
pub enum BackupCommand {
    /// List backups, newest first.
    List {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// Only this database's backups (its name in statehouse).
        #[arg(long)]
        database: Option<String>,
        /// Only backups in this state: queued, running, succeeded, failed.
        #[arg(long)]
        status: Option<String>,
        /// Only the backups of this whole-server run (its databases and the server's globals;
        /// `backup show` names a backup's run).
        #[arg(long, value_name = "RUN")]
        server_run: Option<String>,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// Show one backup: where it is stored, sizes, checksum, verification.
    Show {
        id: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        output: Output,
    },
    /// Download a backup's stored object exactly as stored (age-encrypted, zstd-compressed
    /// pg_dump custom format; workspace admins), checked against its recorded SHA-256. Restore
    /// it without statehouse: `age -d -i key.txt FILE | zstd -d | pg_restore -d DATABASE`.
    Download {
        id: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// Where to write it (default: the object's name in the current directory; `-` for
        /// stdout). Written to FILE.partial first, renamed once complete and checked.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// No progress bar.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Delete a backup: its stored object and metadata file, then its record (workspace
    /// admins).
    Delete {
        id: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
    },
    /// How the workspace's backups are encrypted (age): the managed key statehouse keeps, your
    /// own recipients, or a passphrase.
    #[command(subcommand)]
    Encryption(EncryptionCommand),
}

const ENCRYPTION_HELP: &str = "\
Backups are encrypted with age before they leave the server. The choices:
  managed key (default)   statehouse keeps the key pair: the server can restore and verify
                          backups itself; export the key (export-key) to restore without it.
  your recipients         age1… public keys whose secret keys only you hold: the server cannot
                          read its own backups (restores need --identity; verification checks
                          the checksum only). Add them beside the managed key, or drop it.
  passphrase              one passphrase (age allows no other recipient with it); the server
                          keeps it encrypted and can restore and verify.
Changing the encryption affects new backups only; the server keeps old managed keys so older
backups stay restorable.";

#[derive(Subcommand)]
pub enum EncryptionCommand {
    /// Show how new backups are encrypted and where full verifications restore to.
    #[command(after_help = ENCRYPTION_HELP)]
    Show {
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        output: Output,
    },
    /// Generate a new managed key pair for new backups (workspace admins); older backups stay
    /// restorable with the previous keys, which the server keeps. Switches a passphrase off.
    #[command(after_help = ENCRYPTION_HELP)]
    GenerateKey {
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        output: Output,
    },
    /// Export the managed secret key (workspace admins; audited) as an age identity file, for
    /// restores without statehouse: `age -d -i key.txt FILE | zstd -d | pg_restore -d DB`.
    ExportKey {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// Write the key to this file (created with owner-only permissions) instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Encrypt new backups to these age recipients (age1…) too, replacing the list; their
    /// secret keys stay with you. With --drop-managed-key the server can no longer read new
    /// backups (no in-app restore without --identity, checksum-only verification).
    #[command(after_help = ENCRYPTION_HELP)]
    SetRecipients {
        /// age1… public keys (`age-keygen -y key.txt` prints one); none to clear the list.
        #[arg(value_name = "RECIPIENT")]
        recipients: Vec<String>,
        /// Stop encrypting to the managed key.
        #[arg(long)]
        drop_managed_key: bool,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        output: Output,
    },
    /// Encrypt new backups with a passphrase read from stdin (at least 12 characters) instead
    /// of keys: the managed key and recipients are no longer used for new backups. With --off,
    /// switch back to a (new) managed key.
    #[command(after_help = ENCRYPTION_HELP)]
    SetPassphrase {
        /// Switch passphrase encryption off (a new managed key is generated).
        #[arg(long)]
        off: bool,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        output: Output,
    },
    /// Where full verifications restore to (a scratch database is created and dropped there):
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE. Without it, verification decrypts and
    /// lists the archive only.
    SetVerificationServer {
        /// The server's URL (prefer --url-stdin: it holds a password).
        #[arg(value_name = "URL", required_unless_present_any = ["url_stdin", "remove"])]
        url: Option<String>,
        /// Read the URL from stdin.
        #[arg(long, conflicts_with_all = ["url", "remove"])]
        url_stdin: bool,
        /// Remove the verification server.
        #[arg(long, conflicts_with = "url")]
        remove: bool,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        output: Output,
    },
}

fn backup_fields(b: &Value) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("id", str_or(&b["id"], "")),
        ("database", str_or(&b["database"], "")),
        ("db", dumped(b)),
        ("whole-server run", str_or(&b["server_run"], "-")),
        ("status", str_or(&b["status"], "")),
        ("trigger", str_or(&b["trigger"], "")),
        ("attempt", or_dash(b["attempt"].as_i64())),
        ("requested by", str_or(&b["requested_by"], "")),
        ("queued", str_or(&b["queued_at"], "")),
        ("started", str_or(&b["started_at"], "-")),
        ("finished", str_or(&b["finished_at"], "-")),
        (
            "duration",
            b["duration_ms"]
                .as_i64()
                .map(|ms| age((ms + 999) / 1000))
                .unwrap_or_else(|| "-".into()),
        ),
        ("target", str_or(&b["target"], "")),
        ("object", str_or(&b["object"], "-")),
        (
            "stored size",
            b["stored_bytes"]
                .as_i64()
                .map(size)
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "dump size",
            b["dump_bytes"]
                .as_i64()
                .map(size)
                .unwrap_or_else(|| "-".into()),
        ),
        ("sha256", str_or(&b["sha256"], "-")),
        ("server version", str_or(&b["server_version"], "-")),
    ];
    if let Some(error) = b["error"].as_str() {
        fields.push(("error", error.to_owned()));
    }
    fields.push((
        "verified",
        match (b["verification_ok"].as_bool(), b["verified_at"].as_str()) {
            (Some(ok), Some(at)) => format!(
                "{} ({}, {at})",
                if ok { "ok" } else { "FAILED" },
                str_or(&b["verification_level"], "?")
            ),
            _ => "never".into(),
        },
    ));
    fields
}

fn encryption_fields(e: &Value) -> Vec<(&'static str, String)> {
    let recipients: Vec<&str> = e["recipients"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let server = &e["verification_server"];
    vec![
        ("managed key", str_or(&e["managed_recipient"], "none")),
        (
            "recipients",
            if recipients.is_empty() {
                "none".into()
            } else {
                recipients.join(", ")
            },
        ),
        (
            "passphrase",
            if e["passphrase"] == true { "yes" } else { "no" }.into(),
        ),
        (
            "server can decrypt",
            if e["server_can_decrypt"] == true {
                "yes (in-app restore and full verification work)".into()
            } else {
                "no (restores need --identity; verification checks checksums only)".into()
            },
        ),
        (
            "verification server",
            if server.is_object() {
                format!(
                    "{}@{}:{}/{}",
                    str_or(&server["user"], "?"),
                    str_or(&server["host"], "?"),
                    server["port"].as_u64().unwrap_or(5432),
                    str_or(&server["database"], "?")
                )
            } else {
                "none (verification lists the archive only)".into()
            },
        ),
    ]
}

/// A file name from the server's `Content-Disposition` (only its last path component).
fn attachment_name(headers: &http::HeaderMap) -> Option<String> {
    let value = headers
        .get(http::header::CONTENT_DISPOSITION)?
        .to_str()
        .ok()?;
    let name = value.split("filename=").nth(1)?.trim().trim_matches('"');
    let name = name.rsplit(['/', '\\']).next()?.trim();
    (!name.is_empty() && name != "." && name != "..").then(|| name.to_owned())
}

/// Writes the identity file with owner-only permissions.
fn write_private(file: &Path, text: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(file)
        .with_context(|| format!("cannot create {}", file.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(())
}

async fn change_encryption(
    client: &Client,
    workspace: &str,
    body: Value,
    output: Output,
    confirmation: impl Fn(&Value) -> String,
) -> Result<()> {
    let changed = client
        .json(
            Method::PATCH,
            &path(["workspaces", workspace, "backup-encryption"]),
            &Query::new(),
            Some(&body),
        )
        .await?;
    output.done(&changed, &confirmation(&changed))
}

pub async fn run(client: &Client, cmd: BackupCommand) -> Result<()> {
    match cmd {
        BackupCommand::List {
            workspace: WorkspaceArg { name: workspace },
            database,
            status,
            server_run,
            paging,
            output,
        } => {
            let page = client
                .list(
                    &path(["workspaces", &workspace, "backups"]),
                    Query::new()
                        .with("database", database)
                        .with("status", status)
                        .with("server_run", server_run),
                    &paging,
                )
                .await?;
            output.page(page, "backups", &RUN_HEADERS, run_row)
        }
        BackupCommand::Show {
            id,
            workspace: WorkspaceArg { name: workspace },
            output,
        } => {
            let backup = client
                .get(
                    &path(["workspaces", &workspace, "backups", &id]),
                    &Query::new(),
                )
                .await?;
            if output.json {
                return print_json(&backup);
            }
            output.record(backup.clone(), backup_fields)?;
            if backup["verification_ok"] == false {
                let verifications = client
                    .get(
                        &path(["workspaces", &workspace, "backups", &id, "verifications"]),
                        &Query::new().with("limit", Some(1)),
                    )
                    .await?;
                if let Some(latest) = verifications["items"].as_array().and_then(|v| v.first()) {
                    outln!("verification failure: {}", verification_reason(latest))?;
                }
            }
            Ok(())
        }
        BackupCommand::Download {
            id,
            workspace: WorkspaceArg { name: workspace },
            output,
            quiet,
        } => download(client, &workspace, &id, output, quiet).await,
        BackupCommand::Delete {
            id,
            workspace: WorkspaceArg { name: workspace },
        } => {
            client
                .json(
                    Method::DELETE,
                    &path(["workspaces", &workspace, "backups", &id]),
                    &Query::new(),
                    None,
                )
                .await?;
            errln!("deleted backup {id} (its stored object and metadata file)");
            Ok(())
        }
        BackupCommand::Encryption(cmd) => encryption(client, cmd).await,
    }
}

async fn download(
    client: &Client,
    workspace: &str,
    id: &str,
    output: Option<PathBuf>,
    quiet: bool,
) -> Result<()> {
    let mut response = client
        .send(
            Method::GET,
            &path(["workspaces", workspace, "backups", id, "object"]),
            &Query::new(),
            None,
        )
        .await?;
    let expected_sha = response
        .headers
        .get("x-statehouse-sha256")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase());
    let expected_len = response
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let file = match output {
        Some(f) if f.as_os_str() == "-" => None,
        Some(f) => Some(f),
        None => Some(PathBuf::from(
            attachment_name(&response.headers)
                .unwrap_or_else(|| format!("backup-{id}.dump.zst.age")),
        )),
    };
    let mut progress = Progress::new(
        file.is_some() && visible(false, quiet),
        &format!("downloading {id}"),
    );
    if let Some(total) = expected_len {
        progress.set_total(total);
    }
    let written = write_out(file.as_deref(), async |sink| {
        let mut hasher = Sha256::new();
        let mut written: u64 = 0;
        while let Some(chunk) = response.chunk().await? {
            sink.write_all(&chunk).context("writing the download failed")?;
            hasher.update(&chunk);
            written += chunk.len() as u64;
            progress.advance(chunk.len() as u64);
        }
        sink.flush().context("writing the download failed")?;
        if let Some(len) = expected_len
            && len != written
        {
            bail!("the download ended after {written} of {len} bytes; try again");
        }
        let actual = hex::encode(hasher.finalize());
        match &expected_sha {
            Some(expected) if *expected != actual => bail!(
                "the downloaded bytes have SHA-256 {actual}, but the backup's recorded SHA-256 is {expected}: \
                 the stored object is damaged or was replaced (check it with `statehouse db verify {id}`)"
            ),
            Some(_) => Ok((written, true)),
            None => Ok((written, false)),
        }
    })
    .await;
    progress.finish();
    let (written, checked) = written?;
    let checked = if checked {
        "SHA-256 checked"
    } else {
        "warning: the server sent no checksum to check it against"
    };
    match &file {
        Some(f) => errln!(
            "downloaded backup {id} to {} ({}, {checked})",
            f.display(),
            size(i64::try_from(written).unwrap_or(i64::MAX))
        ),
        None => errln!("downloaded backup {id} ({checked})"),
    }
    Ok(())
}

async fn encryption(client: &Client, cmd: EncryptionCommand) -> Result<()> {
    match cmd {
        EncryptionCommand::Show {
            workspace: WorkspaceArg { name: workspace },
            output,
        } => {
            let view = client
                .get(
                    &path(["workspaces", &workspace, "backup-encryption"]),
                    &Query::new(),
                )
                .await?;
            output.record(view, encryption_fields)
        }
        EncryptionCommand::GenerateKey {
            workspace: WorkspaceArg { name: workspace },
            output,
        } => {
            let current = client
                .get(
                    &path(["workspaces", &workspace, "backup-encryption"]),
                    &Query::new(),
                )
                .await?;
            let mut body = Map::new();
            body.insert("generate_managed_key".into(), json!(true));
            if current["passphrase"] == true {
                body.insert("passphrase".into(), json!(""));
            }
            change_encryption(client, &workspace, Value::Object(body), output, |v| {
                format!(
                    "new backups are encrypted to the new managed key {}; older backups stay restorable \
                     (the server keeps the previous keys). Export it with `statehouse backup encryption export-key`",
                    str_or(&v["managed_recipient"], "?")
                )
            })
            .await
        }
        EncryptionCommand::ExportKey {
            workspace: WorkspaceArg { name: workspace },
            output,
        } => {
            let key = client
                .json(
                    Method::POST,
                    &path(["workspaces", &workspace, "backup-encryption", "export"]),
                    &Query::new(),
                    None,
                )
                .await?;
            let (Some(recipient), Some(identity)) =
                (key["recipient"].as_str(), key["identity"].as_str())
            else {
                bail!(
                    "the server's answer has no key (is the CLI much older or newer than the server?)"
                );
            };
            let text = format!(
                "# statehouse backup key of workspace {workspace}\n# public key: {recipient}\n{identity}\n"
            );
            match output {
                Some(file) => {
                    write_private(&file, &text)?;
                    errln!(
                        "wrote the managed backup key of workspace {workspace:?} to {} (keep it safe: it decrypts \
                         every backup encrypted to it); restore with `age -d -i {} FILE | zstd -d | pg_restore -d DB`",
                        file.display(),
                        file.display()
                    );
                }
                None => {
                    out!("{text}")?;
                    errln!(
                        "save this as key.txt and keep it safe; restore with `age -d -i key.txt FILE | zstd -d | pg_restore -d DB`"
                    );
                }
            }
            Ok(())
        }
        EncryptionCommand::SetRecipients {
            recipients,
            drop_managed_key,
            workspace: WorkspaceArg { name: workspace },
            output,
        } => {
            let body = json!({
                "recipients": recipients.iter().map(|r| r.trim()).collect::<Vec<_>>(),
                "drop_managed_key": drop_managed_key,
            });
            change_encryption(client, &workspace, body, output, |v| {
                let count = v["recipients"].as_array().map_or(0, Vec::len);
                if v["server_can_decrypt"] == true {
                    format!(
                        "new backups are encrypted to {count} recipient(s) and the managed key: the server can still restore and verify them"
                    )
                } else {
                    format!(
                        "new backups are encrypted to {count} recipient(s) only: the server cannot read them \
                         (restore with --identity; verification checks checksums only)"
                    )
                }
            })
            .await
        }
        EncryptionCommand::SetPassphrase {
            off,
            workspace: WorkspaceArg { name: workspace },
            output,
        } => {
            let body = if off {
                json!({"passphrase": "", "generate_managed_key": true})
            } else {
                let passphrase = read_stdin_secret("the backup passphrase")?;
                json!({"passphrase": passphrase, "drop_managed_key": true, "recipients": []})
            };
            change_encryption(client, &workspace, body, output, |v| {
                if off {
                    format!(
                        "passphrase encryption is off: new backups are encrypted to the new managed key {}",
                        str_or(&v["managed_recipient"], "?")
                    )
                } else {
                    "new backups are encrypted with the passphrase only (older backups stay restorable with their keys); \
                     keep the passphrase somewhere safe: `age -d FILE` asks for it"
                        .into()
                }
            })
            .await
        }
        EncryptionCommand::SetVerificationServer {
            url,
            url_stdin,
            remove,
            workspace: WorkspaceArg { name: workspace },
            output,
        } => {
            let url = if remove {
                String::new()
            } else if url_stdin {
                read_stdin_secret("the verification server URL")?
                    .trim()
                    .to_owned()
            } else {
                url.unwrap_or_default()
            };
            let body = json!({"verification_server_url": url});
            change_encryption(client, &workspace, body, output, |_| {
                if remove {
                    "removed the verification server: verification decrypts and lists archives only".into()
                } else {
                    "full verifications now restore into a scratch database on the verification server and compare row counts".into()
                }
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn attachment_names_are_plain_file_names() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(attachment_name(&headers), None);
        headers.insert(
            http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"shop-20261122T020000Z-abc.dump.zst.age\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            attachment_name(&headers).as_deref(),
            Some("shop-20261122T020000Z-abc.dump.zst.age")
        );
        headers.insert(
            http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"../../etc/passwd\"".parse().unwrap(),
        );
        assert_eq!(attachment_name(&headers).as_deref(), Some("passwd"));
        headers.insert(
            http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"..\"".parse().unwrap(),
        );
        assert_eq!(attachment_name(&headers), None);
    }
}
