//! `statehouse target …`: where a workspace's backups are stored, through the API.

use anyhow::{Result, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::args::WorkspaceArg;
use crate::client::{Client, Paging, Query, path};
use crate::output::{Output, print_json, str_or, visible};
use crate::settings_input::SettingsArgs;

const KINDS_HELP: &str = "\
Kinds and their settings (secrets in [brackets]):
  local   path (an absolute directory on the statehouse server, inside the configuration's
          outbound.local_target_roots: <data_dir>/backups by default)
  s3      bucket, region, endpoint, access_key_id, [secret_access_key], [session_token],
          path_style, prefix  (AWS, Cloudflare R2, MinIO, …; no keys = the server's AWS
          environment variables and files; never the VM's metadata service)
  azblob  container, account_name, [account_key] or [sas_token], endpoint, prefix
  gcs     bucket, [credential] (service account JSON), endpoint, prefix
  sftp    host, port, user, root, [private_key], known_hosts_strategy (strict|add|accept)
  webdav  endpoint, username, [password], root
  ftp     endpoint (ftp:// or ftps://), username, [password], root
  gdrive  root, [refresh_token], client_id, [client_secret] (or [access_token]), endpoint

Where targets may connect (this host, private networks) is the configuration's [outbound]
policy; SFTP connects to the address it resolved, so known_hosts needs that address.

Examples:
  statehouse target add nas --kind local --set path=/srv/backups
  statehouse target add s3 --kind s3 --set bucket=acme-db --set region=eu-central-1 \\
      --set access_key_id=AKIA… --secret-stdin secret_access_key < secret.txt
  statehouse target add r2 --kind s3 --set bucket=acme --set region=auto \\
      --set endpoint=https://ACCOUNT.r2.cloudflarestorage.com --set access_key_id=… --secret secret_access_key=…
  statehouse target add box --kind sftp --set host=backup.example.com --set user=pg \\
      --set root=/backups --secret-stdin private_key < ~/.ssh/backup_key
  statehouse target add gcs --kind gcs --set bucket=acme --secret-stdin credential < key.json
  statehouse target test s3";

#[derive(Subcommand)]
pub enum TargetCommand {
    /// Add a storage target (workspace admins); its secrets are kept encrypted and never
    /// shown again. Test it with `statehouse target test NAME`.
    #[command(after_help = KINDS_HELP)]
    Add {
        /// The target's name (letters, digits, `-`, `_`, `.`).
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// local, s3, azblob, gcs, sftp, webdav, ftp or gdrive.
        #[arg(long)]
        kind: String,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        output: Output,
    },
    /// List the workspace's storage targets (never their secrets).
    List {
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// Show one storage target: its settings and which secrets are set.
    Show {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        output: Output,
    },
    /// Change a storage target (workspace admins): settings given replace theirs, others
    /// (secrets included) are kept, except that a change of where the secrets are sent
    /// (endpoint, host, port, bucket, region, account) needs them again (--secret,
    /// --secret-stdin). Backups already stored stay where they are.
    #[command(after_help = KINDS_HELP)]
    Change {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// A new name.
        #[arg(long, value_name = "NEW_NAME")]
        rename: Option<String>,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        output: Output,
    },
    /// Remove a storage target (workspace admins); refused while databases use it or it holds
    /// backups.
    Delete {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
    },
    /// Test a storage target: write, read back and delete a probe object. Exits non-zero
    /// when the test fails, with the reason.
    Test {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        output: Output,
    },
}

const HEADERS: [&str; 5] = ["NAME", "KIND", "WHERE", "SECRETS SET", "CREATED"];

fn row(t: &Value) -> Vec<String> {
    vec![
        str_or(&t["name"], ""),
        str_or(&t["kind"], ""),
        location(&t["kind"], &t["settings"]),
        secrets_set(&t["secrets_set"]),
        str_or(&t["created_at"], ""),
    ]
}

/// Where a target puts backups, in one cell.
fn location(kind: &Value, s: &Value) -> String {
    let field = |k: &str| s[k].as_str().unwrap_or("").to_owned();
    let with_prefix = |base: String| match s["prefix"].as_str() {
        Some(p) if !p.is_empty() => format!("{base}/{}", p.trim_matches('/')),
        _ => base,
    };
    match kind.as_str().unwrap_or("") {
        "local" => field("path"),
        "s3" => with_prefix(format!("s3://{}", field("bucket"))),
        "gcs" => with_prefix(format!("gs://{}", field("bucket"))),
        "azblob" => with_prefix(format!("{}/{}", field("account_name"), field("container"))),
        "sftp" => format!("{}@{}:{}", field("user"), field("host"), field("root")),
        "webdav" | "ftp" => format!("{}{}", field("endpoint"), field("root")),
        "gdrive" => format!("drive:{}", field("root")),
        _ => String::new(),
    }
}

pub fn secrets_set(names: &Value) -> String {
    let names: Vec<&str> = names
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

/// Settings as `key: value` lines after the other fields of a record.
pub fn settings_fields(settings: &Value) -> Vec<(String, String)> {
    settings
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.as_str() != "kind")
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Prints a record of fixed fields then its settings, aligned.
pub fn print_with_settings(fields: Vec<(&str, String)>, settings: &Value) -> Result<()> {
    let extra = settings_fields(settings);
    let width = fields
        .iter()
        .map(|(k, _)| k.len())
        .chain(extra.iter().map(|(k, _)| k.len() + 2))
        .max()
        .unwrap_or(0)
        + 1;
    for (key, value) in fields {
        let key = format!("{key}:");
        outln!(
            "{}",
            format!("{key:<width$} {}", visible(&value)).trim_end()
        )?;
    }
    for (key, value) in extra {
        let key = format!("  {key}:");
        outln!("{key:<width$} {}", visible(&value))?;
    }
    Ok(())
}

/// The answer of a test action (`{"ok","error","duration_ms"}`): a failure exits non-zero with
/// the reason.
pub fn test_outcome(outcome: &Value, output: Output, what: &str) -> Result<()> {
    if output.json {
        print_json(outcome)?;
    }
    let took = outcome["duration_ms"].as_u64().unwrap_or(0);
    if outcome["ok"].as_bool() == Some(true) {
        errln!("{what} works ({took} ms)");
        Ok(())
    } else {
        bail!(
            "{what} failed the test: {}",
            outcome["error"].as_str().unwrap_or("no reason given")
        )
    }
}

pub async fn run(client: &Client, cmd: TargetCommand) -> Result<()> {
    match cmd {
        TargetCommand::Add {
            name,
            workspace: WorkspaceArg { name: workspace },
            kind,
            settings,
            output,
        } => {
            let mut fields = Map::new();
            fields.insert("kind".into(), json!(kind.trim().to_lowercase()));
            let fields = settings.apply(fields, &[])?;
            let created = client
                .json(
                    Method::POST,
                    &path(["workspaces", &workspace, "targets"]),
                    &Query::new(),
                    Some(&json!({"name": name, "settings": fields})),
                )
                .await?;
            output.done(
                &created,
                &format!(
                    "added storage target {:?} ({}); check it with `statehouse target test {}`",
                    str_or(&created["name"], &name),
                    str_or(&created["kind"], &kind),
                    str_or(&created["name"], &name)
                ),
            )
        }
        TargetCommand::List {
            workspace: WorkspaceArg { name: workspace },
            paging,
            output,
        } => {
            let page = client
                .list(
                    &path(["workspaces", &workspace, "targets"]),
                    Query::new(),
                    &paging,
                )
                .await?;
            output.page(page, "targets", &HEADERS, row)
        }
        TargetCommand::Show {
            name,
            workspace: WorkspaceArg { name: workspace },
            output,
        } => {
            let target = client
                .get(
                    &path(["workspaces", &workspace, "targets", &name]),
                    &Query::new(),
                )
                .await?;
            if output.json {
                return print_json(&target);
            }
            print_with_settings(
                vec![
                    ("name", str_or(&target["name"], "")),
                    ("id", str_or(&target["id"], "")),
                    ("kind", str_or(&target["kind"], "")),
                    ("where", location(&target["kind"], &target["settings"])),
                    ("secrets set", secrets_set(&target["secrets_set"])),
                    ("created", str_or(&target["created_at"], "")),
                    ("updated", str_or(&target["updated_at"], "")),
                    ("settings", String::new()),
                ],
                &target["settings"],
            )
        }
        TargetCommand::Change {
            name,
            workspace: WorkspaceArg { name: workspace },
            rename,
            settings,
            output,
        } => {
            if rename.is_none() && settings.is_empty() {
                bail!(
                    "nothing to change: give --rename, --set, --secret, --secret-stdin or --from-file"
                );
            }
            let at = path(["workspaces", &workspace, "targets", &name]);
            let mut body = Map::new();
            if let Some(new_name) = &rename {
                body.insert("name".into(), json!(new_name));
            }
            if !settings.is_empty() {
                let current = client.get(&at, &Query::new()).await?;
                let base = current["settings"].as_object().cloned().unwrap_or_default();
                let mut fields = settings.apply(base, &[])?;
                fields
                    .entry("kind")
                    .or_insert_with(|| current["kind"].clone());
                body.insert("settings".into(), Value::Object(fields));
            }
            let changed = client
                .json(
                    Method::PATCH,
                    &at,
                    &Query::new(),
                    Some(&Value::Object(body)),
                )
                .await?;
            output.done(
                &changed,
                &format!(
                    "changed storage target {:?}",
                    str_or(&changed["name"], &name)
                ),
            )
        }
        TargetCommand::Delete {
            name,
            workspace: WorkspaceArg { name: workspace },
        } => {
            client
                .json(
                    Method::DELETE,
                    &path(["workspaces", &workspace, "targets", &name]),
                    &Query::new(),
                    None,
                )
                .await?;
            errln!("removed storage target {name:?}");
            Ok(())
        }
        TargetCommand::Test {
            name,
            workspace: WorkspaceArg { name: workspace },
            output,
        } => {
            let outcome = client
                .json(
                    Method::POST,
                    &path(["workspaces", &workspace, "targets", &name, "test"]),
                    &Query::new(),
                    None,
                )
                .await?;
            test_outcome(&outcome, output, &format!("storage target {name:?}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_read_like_addresses() {
        assert_eq!(
            location(&json!("s3"), &json!({"bucket": "b", "prefix": "/db/"})),
            "s3://b/db"
        );
        assert_eq!(
            location(&json!("local"), &json!({"path": "/srv/b"})),
            "/srv/b"
        );
        assert_eq!(
            location(
                &json!("sftp"),
                &json!({"user": "u", "host": "h", "root": "/r"})
            ),
            "u@h:/r"
        );
    }
}
