//! `statehouse workspace …`: through the API, locally or on a server.

use anyhow::{Result, bail};
use clap::{Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Map, Value, json};
use statehouse_core::clock::parse_duration;
use statehouse_server::api::views::WorkspaceView;

use crate::client::{Client, Paging, Query, path};
use crate::output::{Output, on_off, policy_age};

#[derive(Subcommand)]
pub enum WorkspaceCommand {
    /// List the workspaces you have a role in.
    List {
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// Show one workspace and its policies.
    Show {
        name: String,
        #[command(flatten)]
        output: Output,
    },
    /// Create a workspace (instance admins).
    Create {
        name: String,
        #[command(flatten)]
        output: Output,
    },
    /// Change a workspace's policies (workspace admins). Give at least one option.
    Set {
        name: String,
        /// Refuse writes whose serial is not above the stored one or whose lineage differs
        /// (default on). Off: such writes are accepted and flagged as forced.
        #[arg(long, value_name = "on|off")]
        serial_protection: Option<OnOff>,
        /// Version retention: keep the newest N versions of each state (`none`: no count rule).
        #[arg(long, value_name = "N|none")]
        keep_versions: Option<String>,
        /// Version retention: keep versions younger than this, e.g. 30d (`none`: no age rule).
        /// With both rules, a version goes once both allow it.
        #[arg(long, value_name = "DURATION|none")]
        keep_versions_for: Option<String>,
        /// Flag locks held longer than this as stale, e.g. 2h (`none`: never).
        #[arg(long, value_name = "DURATION|none")]
        stale_lock_after: Option<String>,
        /// A LOCK on a locked state waits in line this long, e.g. 10m, at most 1h (`none`: it
        /// fails at once). A backend address's `?lock_wait=` wins over it.
        #[arg(long, value_name = "DURATION|none")]
        lock_wait: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Rename a workspace (workspace admins). Backend addresses change with the name
    /// (`/tf/<workspace>/…`); tokens follow.
    Rename {
        name: String,
        new_name: String,
        #[command(flatten)]
        output: Output,
    },
    /// Delete a workspace that has no states (instance admins); its tokens go with it.
    Delete { name: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

const HEADERS: [&str; 7] = [
    "NAME",
    "ROLE",
    "SERIAL PROTECTION",
    "KEEP VERSIONS",
    "KEEP FOR",
    "STALE LOCK AFTER",
    "CREATED",
];

fn row(w: &WorkspaceView) -> Vec<String> {
    vec![
        w.name.clone(),
        w.your_role.clone(),
        on_off(w.serial_protection),
        w.keep_versions
            .map(|n| n.to_string())
            .unwrap_or_else(|| "all".into()),
        policy_age(w.keep_versions_for_seconds),
        policy_age(w.stale_lock_after_seconds),
        w.created_at.clone(),
    ]
}

fn details(w: &WorkspaceView) -> Vec<(&'static str, String)> {
    const LABELS: [&str; 7] = [
        "name",
        "your role",
        "serial protection",
        "keep versions",
        "keep versions for",
        "stale lock after",
        "created",
    ];
    let mut lines: Vec<_> = LABELS.into_iter().zip(row(w)).collect();
    let wait = w
        .lock_wait_seconds
        .map_or("no (fails at once)".into(), |s| policy_age(Some(s)));
    lines.push(("lock wait", wait));
    lines
}

pub async fn run(client: &Client, cmd: WorkspaceCommand) -> Result<()> {
    match cmd {
        WorkspaceCommand::List { paging, output } => {
            let page = client
                .list(&path(["workspaces"]), Query::new(), &paging)
                .await?;
            output.page(page, "workspaces", &HEADERS, row)
        }
        WorkspaceCommand::Show { name, output } => {
            let ws = client
                .get(&path(["workspaces", &name]), &Query::new())
                .await?;
            output.record(ws, details)
        }
        WorkspaceCommand::Create { name, output } => {
            let ws = client
                .json(
                    Method::POST,
                    &path(["workspaces"]),
                    &Query::new(),
                    Some(&json!({ "name": name })),
                )
                .await?;
            output.done(&ws, &format!("created workspace {name:?}"))
        }
        WorkspaceCommand::Set {
            name,
            serial_protection,
            keep_versions,
            keep_versions_for,
            stale_lock_after,
            lock_wait,
            output,
        } => {
            let mut patch = Map::new();
            if let Some(on) = serial_protection {
                patch.insert(
                    "serial_protection".into(),
                    Value::Bool(matches!(on, OnOff::On)),
                );
            }
            if let Some(n) = keep_versions {
                patch.insert("keep_versions".into(), count_or_none(&n)?);
            }
            if let Some(d) = keep_versions_for {
                patch.insert(
                    "keep_versions_for_seconds".into(),
                    seconds_or_none(&d, "--keep-versions-for")?,
                );
            }
            if let Some(d) = stale_lock_after {
                patch.insert(
                    "stale_lock_after_seconds".into(),
                    seconds_or_none(&d, "--stale-lock-after")?,
                );
            }
            if let Some(d) = lock_wait {
                patch.insert(
                    "lock_wait_seconds".into(),
                    seconds_or_none(&d, "--lock-wait")?,
                );
            }
            if patch.is_empty() {
                bail!(
                    "nothing to change: give --serial-protection, --keep-versions, --keep-versions-for, --stale-lock-after or --lock-wait"
                );
            }
            let ws = client
                .json(
                    Method::PATCH,
                    &path(["workspaces", &name]),
                    &Query::new(),
                    Some(&Value::Object(patch)),
                )
                .await?;
            if output.json {
                return output.done(&ws, &format!("workspace {name:?} changed"));
            }
            errln!("workspace {name:?} changed:");
            output.record(ws, details)
        }
        WorkspaceCommand::Rename {
            name,
            new_name,
            output,
        } => {
            let ws = client
                .json(
                    Method::PATCH,
                    &path(["workspaces", &name]),
                    &Query::new(),
                    Some(&json!({ "name": new_name })),
                )
                .await?;
            output.done(
                &ws,
                &format!(
                    "renamed workspace {name:?} to {new_name:?}; backend addresses are now /tf/{new_name}/…"
                ),
            )
        }
        WorkspaceCommand::Delete { name } => {
            client
                .json(
                    Method::DELETE,
                    &path(["workspaces", &name]),
                    &Query::new(),
                    None,
                )
                .await?;
            errln!("deleted workspace {name:?}");
            Ok(())
        }
    }
}

fn count_or_none(text: &str) -> Result<Value> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Value::Null);
    }
    match text.trim().parse::<i64>() {
        Ok(n) => Ok(json!(n)),
        Err(_) => bail!("--keep-versions {text:?}: give a number of versions, or none"),
    }
}

fn seconds_or_none(text: &str, option: &str) -> Result<Value> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Value::Null);
    }
    let duration = parse_duration(text).map_err(|e| anyhow::anyhow!("{option}: {e}, or none"))?;
    Ok(json!(duration.as_secs()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn policies_parse_or_turn_off() {
        assert_eq!(count_or_none("5").unwrap(), json!(5));
        assert_eq!(count_or_none("None").unwrap(), Value::Null);
        assert!(count_or_none("five").is_err());
        assert_eq!(seconds_or_none("30d", "x").unwrap(), json!(2_592_000));
        assert_eq!(seconds_or_none("none", "x").unwrap(), Value::Null);
        assert!(seconds_or_none("soon", "x").is_err());
    }
}
