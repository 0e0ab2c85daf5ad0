//! `statehouse db restore`: one backup into a database (or a globals backup onto a server), or
//! a whole server from a whole-server run. What holds data is replaced only when confirmed:
//! `--force`, or on a terminal by answering the prompt that names what would be overwritten.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use crate::args::WorkspaceArg;
use crate::client::{ApiFailure, Client, Query, path};
use crate::output::{Output, age, size, str_or};
use crate::progress::{Progress, long_operation, visible};
use crate::settings_input::read_stdin_secret;

/// What the server's refusal of an unconfirmed overwrite says to do.
const CONFIRMATION_ASKED: &str = "\"overwrite\": true";

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup's id (see `statehouse backup list`); with --whole-server, any backup of the
    /// whole-server run.
    backup_id: String,
    #[command(flatten)]
    workspace: WorkspaceArg,
    /// Restore into this database (created when missing) instead of the one dumped.
    #[arg(long, value_name = "DATABASE", conflicts_with = "whole_server")]
    into: Option<String>,
    /// Restore onto another server: postgres://USER:PASSWORD@HOST:PORT/DATABASE (--into then
    /// names the database; with --whole-server connect as a superuser, to any database).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Restore the whole server from the whole-server run the backup belongs to: its globals
    /// (roles, memberships, tablespaces) first, then every database of the run with owners and
    /// grants (missing databases are created with their owners).
    #[arg(long)]
    whole_server: bool,
    /// pg_restore jobs in parallel (default 1).
    #[arg(long, value_name = "N")]
    jobs: Option<u32>,
    /// Fail when the database does not exist instead of creating it.
    #[arg(long, conflicts_with = "whole_server")]
    no_create: bool,
    /// Do not drop existing objects first.
    #[arg(long)]
    no_clean: bool,
    /// Restore object ownership (pg_restore without --no-owner); the roles must exist. A
    /// whole-server restore always does.
    #[arg(long)]
    keep_owner: bool,
    /// An age identity file (AGE-SECRET-KEY-1…) for backups encrypted to your own key.
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_stdin")]
    identity: Option<PathBuf>,
    /// Read the backup passphrase from stdin.
    #[arg(long)]
    passphrase_stdin: bool,
    /// Overwrite without asking: a database that has objects, or roles on the server. Without
    /// it such a restore is refused (on a terminal: asked), naming what would be overwritten.
    #[arg(long, short = 'f', visible_alias = "yes", short_alias = 'y')]
    force: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    output: Output,
}

pub async fn run(client: &Client, args: RestoreArgs) -> Result<()> {
    let backup_id = args.backup_id.clone();
    let backup = client
        .get(
            &path(["workspaces", &args.workspace.name, "backups", &backup_id]),
            &Query::new(),
        )
        .await?;
    let globals = backup["kind"] == "globals";
    let brought_key = args.identity.is_some() || args.passphrase_stdin;
    let identity = args
        .identity
        .as_ref()
        .map(|file| {
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the identity file {}", file.display()))
        })
        .transpose()?;
    let passphrase = if args.passphrase_stdin {
        Some(read_stdin_secret("the backup passphrase")?)
    } else {
        None
    };
    let mut body = json!({
        "database": args.into,
        "url": args.url,
        "jobs": args.jobs,
        "identity": identity,
        "passphrase": passphrase,
        "overwrite": args.force,
    });
    body["clean"] = json!(!args.no_clean);
    if !args.whole_server {
        body["create"] = json!(!args.no_create);
        body["no_owner"] = json!(!args.keep_owner);
    }
    let (endpoint, what) = if args.whole_server {
        (
            "restore-server",
            format!(
                "the whole server of backup {backup_id}'s run onto {}",
                server_words(args.url.is_some())
            ),
        )
    } else if globals {
        (
            "restore",
            format!(
                "the globals of backup {backup_id} onto {}",
                server_words(args.url.is_some())
            ),
        )
    } else {
        (
            "restore",
            format!("backup {backup_id} into {}", destination(&args, &backup)),
        )
    };
    // What to type to confirm an overwrite on a terminal.
    let confirm_word = if args.whole_server || globals {
        "overwrite".to_owned()
    } else {
        args.into
            .clone()
            .or_else(|| {
                args.url.as_deref().and_then(|u| {
                    statehouse_backup::PgConnection::from_url(u)
                        .ok()
                        .map(|c| c.database)
                })
            })
            .unwrap_or_else(|| str_or(&backup["db_name"], "?"))
    };
    let at = path([
        "workspaces",
        &args.workspace.name,
        "backups",
        &backup_id,
        endpoint,
    ]);
    errln!("restoring {what}");
    let mut answer = send(client, &at, &body, &args).await;
    if let Err(refusal) = &answer
        && !args.force
        && std::io::stdin().is_terminal()
        && let Some(message) = overwrite_refusal(refusal)
    {
        errprint!("{message}\nType {confirm_word:?} to overwrite it, anything else to cancel: ");
        let mut typed = String::new();
        std::io::stdin().read_line(&mut typed)?;
        if typed.trim() != confirm_word {
            bail!("restore cancelled; nothing was changed");
        }
        body["overwrite"] = json!(true);
        answer = send(client, &at, &body, &args).await;
    }
    let restored = answer.map_err(|e| {
        let e = match e.downcast_ref::<ApiFailure>() {
            Some(ApiFailure::Refused(m)) if m.contains("decrypt") && !brought_key => {
                ApiFailure::Refused(format!(
                    "{m}; pass the age identity it was encrypted to (--identity key.txt) or its \
                     passphrase (--passphrase-stdin)"
                ))
                .into()
            }
            _ => e,
        };
        e.context(format!("restoring {what} failed"))
    })?;
    let summary = if args.whole_server {
        server_summary(&restored)
    } else {
        restore_summary(&backup_id, &restored)
    };
    args.output.done(&restored, &summary)
}

async fn send(client: &Client, at: &str, body: &Value, args: &RestoreArgs) -> Result<Value> {
    let mut progress = Progress::new(
        visible(args.output.json, args.quiet),
        &format!("restoring {}", args.backup_id),
    );
    let answer = long_operation(
        client,
        Method::POST,
        at,
        &Query::new(),
        Some(body),
        &mut progress,
    )
    .await;
    progress.finish();
    answer
}

/// The server's message when it refused to overwrite without confirmation.
fn overwrite_refusal(error: &anyhow::Error) -> Option<&str> {
    match error.downcast_ref::<ApiFailure>() {
        Some(ApiFailure::Refused(m)) if m.contains(CONFIRMATION_ASKED) => Some(m),
        _ => None,
    }
}

fn server_words(other: bool) -> &'static str {
    if other {
        "the server given by --url"
    } else {
        "the backup's server"
    }
}

fn destination(args: &RestoreArgs, backup: &Value) -> String {
    match (&args.into, &args.url) {
        (Some(db), None) => format!("database {db:?} on the backup's server"),
        (None, None) => format!(
            "its own database {:?} on the backup's server",
            str_or(&backup["db_name"], "?")
        ),
        (db, Some(_)) => format!(
            "database {:?} on the server given by --url",
            db.as_deref().unwrap_or("named in the URL")
        ),
    }
}

/// One restore in words.
fn restore_summary(backup_id: &str, r: &Value) -> String {
    let took = age((r["duration_ms"].as_i64().unwrap_or(0) + 999) / 1000);
    if r["kind"] == "globals" {
        let g = &r["globals"];
        let existed: Vec<&str> = g["already_existed"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut text = format!(
            "restored the globals of backup {backup_id}: {} roles in {took}",
            g["roles"].as_u64().unwrap_or(0)
        );
        if !existed.is_empty() {
            text.push_str(&format!(
                "; already there (updated from the backup): {}",
                existed.join(", ")
            ));
        }
        if let Some(role) = g["kept_password_of"].as_str() {
            text.push_str(&format!("; role {role:?} kept its password on this server"));
        }
        return text;
    }
    format!(
        "restored backup {} into database {:?}{} ({} read, {} restored, in {took})",
        str_or(&r["backup_id"], backup_id),
        str_or(&r["database"], "?"),
        if r["created_database"] == true {
            " (created)"
        } else {
            ""
        },
        size(r["stored_bytes"].as_i64().unwrap_or(0)),
        size(r["dump_bytes"].as_i64().unwrap_or(0)),
    )
}

/// A whole-server restore in words, one line per part.
fn server_summary(r: &Value) -> String {
    let mut lines = vec![format!(
        "restored whole-server run {} onto {} in {}:",
        str_or(&r["server_run"], "?"),
        str_or(&r["server"], "?"),
        age((r["duration_ms"].as_i64().unwrap_or(0) + 999) / 1000)
    )];
    lines.push(format!(
        "  {}",
        restore_summary(
            str_or(&r["globals"]["backup_id"], "?").as_str(),
            &r["globals"]
        )
    ));
    for d in r["databases"].as_array().into_iter().flatten() {
        lines.push(format!(
            "  {}",
            restore_summary(str_or(&d["backup_id"], "?").as_str(), d)
        ));
    }
    lines.join("\n")
}
