//! `statehouse user …`: users and their workspace roles, through the API — locally as the
//! operator (so an operator can set the first password without a server) or on a server with
//! an instance admin's token (a user may also set its own password).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};
use statehouse_core::access::Role;

use crate::admin::RoleArg;
use crate::args::WorkspaceArg;
use crate::client::{Client, Paging, Query, path};
use crate::output::{Output, print_json, str_or};
use crate::workspaces::OnOff;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user (instance admins). With --password-stdin, the password is read from the
    /// first line of stdin; without it the user cannot log in until `user passwd` sets one.
    Add {
        name: String,
        /// Read the password from stdin (the first line).
        #[arg(long)]
        password_stdin: bool,
        /// Make the user an instance admin (manages users; admin in every workspace).
        #[arg(long)]
        instance_admin: bool,
        #[command(flatten)]
        output: Output,
    },
    /// List users with their workspace roles (instance admins).
    List {
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// Show one user with its workspace roles (instance admins, or the user itself).
    Show {
        name: String,
        #[command(flatten)]
        output: Output,
    },
    /// Set a user's password (instance admins, or the user itself): typed without echo on a
    /// terminal, else the first line of stdin; sent in the request body, never as an
    /// argument. Ends the user's browser sessions.
    Passwd {
        name: String,
        #[command(flatten)]
        output: Output,
    },
    /// Make a user an instance admin, or no longer one (instance admins).
    SetAdmin {
        name: String,
        #[arg(value_name = "on|off")]
        on: OnOff,
        #[command(flatten)]
        output: Output,
    },
    /// Disable a user: it cannot log in, and its tokens and sessions stop working (instance
    /// admins).
    Disable {
        name: String,
        #[command(flatten)]
        output: Output,
    },
    /// Enable a disabled user again (instance admins).
    Enable {
        name: String,
        #[command(flatten)]
        output: Output,
    },
    /// Give a user a role in a workspace, replacing the one it had (workspace admins).
    Grant {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[command(flatten)]
        output: Output,
    },
    /// Take a user's role in a workspace away (workspace admins).
    Revoke {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
    },
}

pub async fn run(client: &Client, cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Add {
            name,
            password_stdin,
            instance_admin,
            output,
        } => {
            let password = if password_stdin {
                Some(read_password(false)?)
            } else {
                None
            };
            let user = client
                .json(
                    Method::POST,
                    &path(["users"]),
                    &Query::new(),
                    Some(&json!({
                        "name": name,
                        "password": password,
                        "instance_admin": instance_admin,
                    })),
                )
                .await?;
            let confirmation = format!(
                "created user {}{}{}",
                quoted(&user["name"]),
                if user["instance_admin"] == true {
                    " (instance admin)"
                } else {
                    ""
                },
                if user["has_password"] == true {
                    ""
                } else {
                    "; it has no password: set one with `statehouse user passwd`"
                }
            );
            output.done(&user, &confirmation)
        }
        UserCommand::List { paging, output } => {
            let mut page = client.list(&path(["users"]), Query::new(), &paging).await?;
            if output.json {
                return print_json(&page);
            }
            // The list has no roles; each user's answer does.
            let mut detailed = Vec::new();
            for user in page["items"].as_array().into_iter().flatten() {
                let name = user["name"].as_str().unwrap_or_default();
                detailed.push(client.get(&path(["users", name]), &Query::new()).await?);
            }
            page["items"] = Value::Array(detailed);
            output.page(
                page,
                "users",
                &[
                    "NAME",
                    "INSTANCE ADMIN",
                    "PASSWORD",
                    "STATUS",
                    "ROLES",
                    "CREATED",
                ],
                user_row,
            )
        }
        UserCommand::Show { name, output } => {
            let user = client.get(&path(["users", &name]), &Query::new()).await?;
            output.record(user, |u: &Value| {
                const LABELS: [&str; 6] = [
                    "name",
                    "instance admin",
                    "password",
                    "status",
                    "roles",
                    "created",
                ];
                LABELS.into_iter().zip(user_row(u)).collect()
            })
        }
        UserCommand::Passwd { name, output } => {
            let password = read_password(true)?;
            let user = change(client, &name, json!({ "password": password })).await?;
            output.done(
                &user,
                &format!(
                    "password of {} set; its sessions were ended",
                    quoted(&user["name"])
                ),
            )
        }
        UserCommand::SetAdmin { name, on, output } => {
            let on = matches!(on, OnOff::On);
            let user = change(client, &name, json!({ "instance_admin": on })).await?;
            output.done(
                &user,
                &format!(
                    "{} is {}an instance admin",
                    quoted(&user["name"]),
                    if on { "" } else { "no longer " }
                ),
            )
        }
        UserCommand::Disable { name, output } => {
            let user = change(client, &name, json!({ "disabled": true })).await?;
            output.done(
                &user,
                &format!(
                    "disabled {}: it cannot log in and its tokens stop working (within a second on running servers)",
                    quoted(&user["name"])
                ),
            )
        }
        UserCommand::Enable { name, output } => {
            let user = change(client, &name, json!({ "disabled": false })).await?;
            output.done(&user, &format!("enabled {}", quoted(&user["name"])))
        }
        UserCommand::Grant {
            name,
            workspace: WorkspaceArg { name: workspace },
            role,
            output,
        } => {
            let role = Role::from(role);
            let member = client
                .json(
                    Method::PUT,
                    &path(["workspaces", &workspace, "members", &name]),
                    &Query::new(),
                    Some(&json!({ "role": role.as_str() })),
                )
                .await?;
            output.done(
                &member,
                &format!(
                    "{} has role {} in workspace {}",
                    quoted(&member["user"]),
                    member["role"].as_str().unwrap_or(role.as_str()),
                    quoted(&member["workspace"])
                ),
            )
        }
        UserCommand::Revoke {
            name,
            workspace: WorkspaceArg { name: workspace },
        } => {
            client
                .json(
                    Method::DELETE,
                    &path(["workspaces", &workspace, "members", &name]),
                    &Query::new(),
                    None,
                )
                .await?;
            errln!("{name:?} no longer has a role in workspace {workspace:?}");
            Ok(())
        }
    }
}

/// `PATCH /users/{name}` with these fields; the user as it is now.
async fn change(client: &Client, name: &str, patch: Value) -> Result<Value> {
    client
        .json(
            Method::PATCH,
            &path(["users", name]),
            &Query::new(),
            Some(&patch),
        )
        .await
}

/// A JSON string as Rust's `{:?}` shows it (`"alice"`), for confirmations.
fn quoted(value: &Value) -> String {
    format!("{:?}", value.as_str().unwrap_or_default())
}

fn user_row(u: &Value) -> Vec<String> {
    let roles = u["memberships"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            format!(
                "{}:{}",
                m["workspace"].as_str().unwrap_or_default(),
                m["role"].as_str().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    let yes_no = |on: bool, yes: &str, no: &str| if on { yes } else { no }.to_owned();
    vec![
        str_or(&u["name"], ""),
        yes_no(u["instance_admin"] == true, "yes", "no"),
        yes_no(u["has_password"] == true, "set", "none"),
        yes_no(u["disabled"] == true, "disabled", "active"),
        if roles.is_empty() { "-".into() } else { roles },
        str_or(&u["created_at"], ""),
    ]
}

/// A password from stdin: on a terminal (when `prompt`), asked for twice without echo;
/// otherwise the first line.
fn read_password(prompt: bool) -> Result<String> {
    let stdin = std::io::stdin();
    if prompt && stdin.is_terminal() {
        let first = read_hidden("new password: ")?;
        let second = read_hidden("again: ")?;
        if first != second {
            bail!("the two passwords differ; nothing was changed");
        }
        return Ok(first);
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!(
            "no password on stdin (pipe it in, e.g. `printf '%s\\n' \"$PW\" | statehouse user passwd NAME`)"
        );
    }
    Ok(password)
}

/// Reads a line from the terminal with echo off (`stty -echo`), restoring it afterwards.
pub(crate) fn read_hidden(prompt: &str) -> Result<String> {
    errprint!("{prompt}");
    std::io::stderr().flush().ok();
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
    };
    let hidden = stty("-echo").is_ok_and(|s| s.success());
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if hidden {
        let _ = stty("echo");
    }
    errln!();
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
