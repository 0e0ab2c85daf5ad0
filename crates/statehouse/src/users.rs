//! `statehouse user …`: local users, acting directly on the configured database (so an
//! operator can set the first password without a server).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use statehouse_core::access::Principal;
use statehouse_core::service::UserChange;

use crate::admin::RoleArg;
use crate::config::Config;
use crate::instance;
use crate::output::{Output, print_json, print_table};
use crate::workspaces::OnOff;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user. With --password-stdin, the password is read from the first line of
    /// stdin; without it the user cannot log in until `user passwd` sets one.
    Add {
        name: String,
        /// Read the password from stdin (the first line).
        #[arg(long)]
        password_stdin: bool,
        /// Make the user an instance admin (manages users; admin in every workspace).
        #[arg(long)]
        instance_admin: bool,
    },
    /// List users.
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Set a user's password: typed without echo on a terminal, else the first line of stdin.
    /// Ends the user's browser sessions.
    Passwd { name: String },
    /// Make a user an instance admin, or no longer one.
    SetAdmin {
        name: String,
        #[arg(value_name = "on|off")]
        on: OnOff,
    },
    /// Disable a user: it cannot log in, and its tokens and sessions stop working.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
    /// Give a user a role in a workspace (replacing the one it had).
    Grant {
        name: String,
        #[arg(long, default_value = "default")]
        workspace: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Take a user's role in a workspace away.
    Revoke {
        name: String,
        #[arg(long, default_value = "default")]
        workspace: String,
    },
}

pub async fn run(config: &Config, cmd: UserCommand) -> Result<()> {
    let instance = instance::open(config).await?;
    let result = run_command(&instance.services, cmd).await;
    // Refusals are audited without waiting; store them before the process exits.
    instance.services.flush_journal().await;
    result
}

async fn run_command(
    services: &statehouse_core::service::Services,
    cmd: UserCommand,
) -> Result<()> {
    let operator = Principal::local_operator();
    match cmd {
        UserCommand::Add {
            name,
            password_stdin,
            instance_admin,
        } => {
            let password = if password_stdin {
                Some(read_password(false)?)
            } else {
                None
            };
            let user = services
                .create_user(&operator, &name, password.as_deref(), instance_admin)
                .await?;
            eprintln!(
                "created user {:?}{}{}",
                user.name,
                if user.instance_admin {
                    " (instance admin)"
                } else {
                    ""
                },
                if user.has_password() {
                    ""
                } else {
                    "; it has no password: set one with `statehouse user passwd`"
                }
            );
        }
        UserCommand::List { output } => {
            let users = services.list_users(&operator).await?;
            if output.json {
                return print_json(&users);
            }
            let mut rows = Vec::new();
            for u in &users {
                let roles = services
                    .store
                    .user_memberships(&u.id)
                    .await?
                    .iter()
                    .map(|m| format!("{}:{}", m.workspace_name, m.role))
                    .collect::<Vec<_>>()
                    .join(",");
                rows.push(vec![
                    u.name.clone(),
                    if u.instance_admin { "yes" } else { "no" }.into(),
                    if u.has_password() { "set" } else { "none" }.into(),
                    if u.is_disabled() {
                        "disabled"
                    } else {
                        "active"
                    }
                    .into(),
                    if roles.is_empty() { "-".into() } else { roles },
                    u.created_at.to_rfc3339(),
                ]);
            }
            print_table(
                &[
                    "NAME",
                    "INSTANCE ADMIN",
                    "PASSWORD",
                    "STATUS",
                    "ROLES",
                    "CREATED",
                ],
                rows,
            );
        }
        UserCommand::Passwd { name } => {
            let password = read_password(true)?;
            let change = UserChange {
                password: Some(password),
                ..UserChange::default()
            };
            let user = services.update_user(&operator, &name, change).await?;
            eprintln!("password of {:?} set; its sessions were ended", user.name);
        }
        UserCommand::SetAdmin { name, on } => {
            let on = matches!(on, OnOff::On);
            let change = UserChange {
                instance_admin: Some(on),
                ..UserChange::default()
            };
            let user = services.update_user(&operator, &name, change).await?;
            eprintln!(
                "{:?} is {}an instance admin",
                user.name,
                if on { "" } else { "no longer " }
            );
        }
        UserCommand::Disable { name } => {
            let change = UserChange {
                disabled: Some(true),
                ..UserChange::default()
            };
            let user = services.update_user(&operator, &name, change).await?;
            eprintln!(
                "disabled {:?}: it cannot log in and its tokens stop working (within a second on running servers)",
                user.name
            );
        }
        UserCommand::Enable { name } => {
            let change = UserChange {
                disabled: Some(false),
                ..UserChange::default()
            };
            let user = services.update_user(&operator, &name, change).await?;
            eprintln!("enabled {:?}", user.name);
        }
        UserCommand::Grant {
            name,
            workspace,
            role,
        } => {
            let m = services
                .set_member(&operator, &workspace, &name, role.into())
                .await?;
            eprintln!(
                "{:?} has role {} in workspace {:?}",
                m.user_name, m.role, m.workspace_name
            );
        }
        UserCommand::Revoke { name, workspace } => {
            services.remove_member(&operator, &workspace, &name).await?;
            eprintln!("{name:?} no longer has a role in workspace {workspace:?}");
        }
    }
    Ok(())
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
fn read_hidden(prompt: &str) -> Result<String> {
    eprint!("{prompt}");
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
    eprintln!();
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
