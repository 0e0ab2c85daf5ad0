//! `statehouse notifier …`: where a workspace's backup and database events are sent, through
//! the API.

use anyhow::{Result, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::args::WorkspaceArg;
use crate::client::{Client, Paging, Query, path};
use crate::output::{Output, on_off, print_json, str_or};
use crate::settings_input::{SettingsArgs, comma_list};
use crate::targets::{print_with_settings, secrets_set, test_outcome};

const KINDS_HELP: &str = "\
Kinds and their settings (secrets in [brackets]):
  slack, discord, teams   [webhook_url]
  mattermost              [webhook_url], channel, username
  telegram                [bot_token], chat_id, message_thread_id, api_base
  ntfy                    [topic], server, [access_token] or username + [password], priority, tags
  email                   host, port, security (starttls|tls|none), username, [password], from, to
                          (a list: to=a@example.com,b@example.com), ca_certificate_pem
  webhook                 [url], method (POST|PUT|PATCH), [headers] (a JSON object), body_template

Events: backup.succeeded, backup.failed, verification.succeeded, verification.failed,
database.down, database.up, … ; a prefix with `*` (database.*) or `*` for all.
Default: backup.failed, verification.failed, database.*.

Examples:
  statehouse notifier add ops --kind slack --secret webhook_url=https://hooks.slack.com/services/…
  statehouse notifier add mail --kind email --set host=smtp.example.com --set username=statehouse \\
      --set from=statehouse@example.com --set to=ops@example.com,dba@example.com \\
      --secret-stdin password < smtp-password.txt
  statehouse notifier add hook --kind webhook --secret url=https://ops.example.com/hooks/statehouse \\
      --secret 'headers={\"Authorization\":\"Bearer …\"}' --events '*' --databases shop,billing
  statehouse notifier test ops";

/// Settings that take a list, per kind: `a,b` is `["a","b"]` for them.
fn list_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "email" => &["to"],
        "ntfy" => &["tags"],
        _ => &[],
    }
}

#[derive(Subcommand)]
pub enum NotifierCommand {
    /// Add a notifier (workspace admins); its secrets are kept encrypted and never shown
    /// again. Try it with `statehouse notifier test NAME`.
    #[command(after_help = KINDS_HELP)]
    Add {
        /// The notifier's name (letters, digits, `-`, `_`, `.`).
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// email, slack, discord, telegram, teams, mattermost, ntfy or webhook.
        #[arg(long)]
        kind: String,
        #[command(flatten)]
        settings: SettingsArgs,
        /// Events to send, comma-separated: kinds, prefixes with `*` (database.*) or `*`.
        #[arg(long, value_name = "EVENTS")]
        events: Option<String>,
        /// Only these databases' events, comma-separated names (default: all).
        #[arg(long, value_name = "NAMES")]
        databases: Option<String>,
        /// Add it switched off.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        output: Output,
    },
    /// List the workspace's notifiers (never their secrets).
    List {
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// Show one notifier: settings (secret URLs shortened), events, databases.
    Show {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        output: Output,
    },
    /// Change a notifier (workspace admins): what is given replaces its value, the rest
    /// (secrets included) is kept, except that a change of where the secrets are sent (URL,
    /// server, host, port, TLS settings, chat) needs them again (--secret, --secret-stdin).
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
        /// Events to send, comma-separated (replaces the list).
        #[arg(long, value_name = "EVENTS")]
        events: Option<String>,
        /// Only these databases' events, comma-separated; `all` for every database.
        #[arg(long, value_name = "NAMES|all")]
        databases: Option<String>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Remove a notifier (workspace admins).
    Delete {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
    },
    /// Send a test notification now. Exits non-zero when the receiver refuses it or cannot be
    /// reached, with its answer.
    Test {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        output: Output,
    },
}

const HEADERS: [&str; 6] = [
    "NAME",
    "KIND",
    "EVENTS",
    "DATABASES",
    "ENABLED",
    "SECRETS SET",
];

fn joined(list: &Value, empty: &str) -> String {
    let items: Vec<&str> = list
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if items.is_empty() {
        empty.to_owned()
    } else {
        items.join(",")
    }
}

fn row(n: &Value) -> Vec<String> {
    vec![
        str_or(&n["name"], ""),
        str_or(&n["kind"], ""),
        joined(&n["events"], "-"),
        joined(&n["databases"], "all"),
        on_off(n["enabled"].as_bool().unwrap_or(false)),
        secrets_set(&n["secrets_set"]),
    ]
}

pub async fn run(client: &Client, cmd: NotifierCommand) -> Result<()> {
    match cmd {
        NotifierCommand::Add {
            name,
            workspace: WorkspaceArg { name: workspace },
            kind,
            settings,
            events,
            databases,
            disabled,
            output,
        } => {
            let kind = kind.trim().to_lowercase();
            let mut fields = Map::new();
            fields.insert("kind".into(), json!(kind));
            let fields = settings.apply(fields, list_fields(&kind))?;
            let created = client
                .json(
                    Method::POST,
                    &path(["workspaces", &workspace, "notifiers"]),
                    &Query::new(),
                    Some(&json!({
                        "name": name,
                        "settings": fields,
                        "events": events.as_deref().map(comma_list),
                        "databases": databases.as_deref().map(comma_list),
                        "enabled": !disabled,
                    })),
                )
                .await?;
            output.done(
                &created,
                &format!(
                    "added notifier {:?} ({}) for {}; try it with `statehouse notifier test {}`",
                    str_or(&created["name"], &name),
                    str_or(&created["kind"], &kind),
                    joined(&created["events"], "no events"),
                    str_or(&created["name"], &name)
                ),
            )
        }
        NotifierCommand::List {
            workspace: WorkspaceArg { name: workspace },
            paging,
            output,
        } => {
            let page = client
                .list(
                    &path(["workspaces", &workspace, "notifiers"]),
                    Query::new(),
                    &paging,
                )
                .await?;
            output.page(page, "notifiers", &HEADERS, row)
        }
        NotifierCommand::Show {
            name,
            workspace: WorkspaceArg { name: workspace },
            output,
        } => {
            let n = client
                .get(
                    &path(["workspaces", &workspace, "notifiers", &name]),
                    &Query::new(),
                )
                .await?;
            if output.json {
                return print_json(&n);
            }
            print_with_settings(
                vec![
                    ("name", str_or(&n["name"], "")),
                    ("id", str_or(&n["id"], "")),
                    ("kind", str_or(&n["kind"], "")),
                    ("enabled", on_off(n["enabled"].as_bool().unwrap_or(false))),
                    ("events", joined(&n["events"], "-")),
                    ("databases", joined(&n["databases"], "all")),
                    ("secrets set", secrets_set(&n["secrets_set"])),
                    ("created", str_or(&n["created_at"], "")),
                    ("updated", str_or(&n["updated_at"], "")),
                    ("settings", String::new()),
                ],
                &n["settings"],
            )
        }
        NotifierCommand::Change {
            name,
            workspace: WorkspaceArg { name: workspace },
            rename,
            settings,
            events,
            databases,
            enable,
            disable,
            output,
        } => {
            if rename.is_none()
                && settings.is_empty()
                && events.is_none()
                && databases.is_none()
                && !enable
                && !disable
            {
                bail!(
                    "nothing to change: give --rename, --set, --secret, --secret-stdin, --from-file, \
                     --events, --databases, --enable or --disable"
                );
            }
            let at = path(["workspaces", &workspace, "notifiers", &name]);
            let mut body = Map::new();
            if let Some(new_name) = &rename {
                body.insert("name".into(), json!(new_name));
            }
            if !settings.is_empty() {
                let current = client.get(&at, &Query::new()).await?;
                let kind = str_or(&current["kind"], "");
                let base = current["settings"].as_object().cloned().unwrap_or_default();
                let mut fields = settings.apply(base, list_fields(&kind))?;
                fields.entry("kind").or_insert_with(|| json!(kind));
                body.insert("settings".into(), Value::Object(fields));
            }
            if let Some(events) = &events {
                body.insert("events".into(), json!(comma_list(events)));
            }
            if let Some(databases) = &databases {
                let names = if databases.trim().eq_ignore_ascii_case("all") {
                    Vec::new()
                } else {
                    comma_list(databases)
                };
                body.insert("databases".into(), json!(names));
            }
            if enable || disable {
                body.insert("enabled".into(), json!(enable));
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
                &format!("changed notifier {:?}", str_or(&changed["name"], &name)),
            )
        }
        NotifierCommand::Delete {
            name,
            workspace: WorkspaceArg { name: workspace },
        } => {
            client
                .json(
                    Method::DELETE,
                    &path(["workspaces", &workspace, "notifiers", &name]),
                    &Query::new(),
                    None,
                )
                .await?;
            errln!("removed notifier {name:?}");
            Ok(())
        }
        NotifierCommand::Test {
            name,
            workspace: WorkspaceArg { name: workspace },
            output,
        } => {
            let outcome = client
                .json(
                    Method::POST,
                    &path(["workspaces", &workspace, "notifiers", &name, "test"]),
                    &Query::new(),
                    None,
                )
                .await?;
            test_outcome(&outcome, output, &format!("notifier {name:?}"))
        }
    }
}
