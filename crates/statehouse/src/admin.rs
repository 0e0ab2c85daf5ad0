//! Operator commands that act directly on the configured database (they work while a server
//! runs: SQLite in WAL mode and PostgreSQL both allow it).

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use statehouse_core::access::{Principal, Role};
use statehouse_core::clock::{Timestamp, parse_duration};
use statehouse_core::crypto::MasterKey;
use statehouse_core::model::{StateFilter, StateRecord, UnlockOutcome};
use statehouse_core::service::{Services, TokenOwner, TokenRequest};

use crate::config::Config;
use crate::instance;

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Outputs,
    Viewer,
    Editor,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Outputs => Role::Outputs,
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Editor => Role::Editor,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Args)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; the secret is printed alone on the last line of stdout (shown once).
    ///
    /// Three kinds: `--user U` makes a user token acting with U's roles (optionally narrowed
    /// with `--workspace` and capped with `--role`); `--workspace W --role R` a workspace
    /// service token; `--instance --role R` an instance token valid in every workspace.
    Create {
        /// A user token of this user (acts with the user's current roles; stops working while
        /// the user is disabled).
        #[arg(long)]
        user: Option<String>,
        /// The service token's workspace, or the one workspace a user token is narrowed to.
        #[arg(long, required_unless_present_any = ["instance", "user"])]
        workspace: Option<String>,
        /// Make an instance-wide token, valid in every workspace.
        #[arg(long, conflicts_with_all = ["workspace", "user"])]
        instance: bool,
        /// outputs reads only states' outputs (through the http backend); viewer reads;
        /// editor also writes, locks and releases its own locks; admin also deletes,
        /// force-unlocks and manages members and tokens. For a user token: the most it may do.
        #[arg(long, value_enum, required_unless_present = "user")]
        role: Option<RoleArg>,
        /// A name to recognise the token by (shown as the author of writes and lock holder).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime such as 90d, 12h (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (never their secrets), with kind, owner and last use.
    List {
        #[arg(long)]
        workspace: Option<String>,
        /// Only this user's tokens.
        #[arg(long, conflicts_with = "workspace")]
        user: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Revoke a token by id, or by name when the name is unique among live tokens.
    Revoke { token: String },
}

#[derive(Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace.
    Create { name: String },
    /// List workspaces.
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Change a workspace's settings.
    Set {
        name: String,
        /// Refuse writes whose serial is not above the stored one or whose lineage differs
        /// (default on). Off: such writes are accepted and flagged as forced.
        #[arg(long, value_name = "on|off")]
        serial_protection: OnOff,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Args)]
pub struct StateRef {
    #[arg(long, default_value = "default")]
    workspace: String,
    /// State name, e.g. `prod/network`.
    name: String,
}

#[derive(Subcommand)]
pub enum StateCommand {
    /// List live states of a workspace.
    List {
        #[arg(long, default_value = "default")]
        workspace: String,
        #[command(flatten)]
        output: Output,
    },
    /// List the versions of a state, newest first.
    Versions {
        #[command(flatten)]
        state: StateRef,
        #[command(flatten)]
        output: Output,
    },
    /// Print a state's current body, or a given version's, to stdout.
    Get {
        #[command(flatten)]
        state: StateRef,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Allow the next write that breaks serial/lineage protection (e.g. `terraform state push -force`)
    /// within a time window; the write is accepted once and recorded as forced.
    AllowOverwrite {
        #[command(flatten)]
        state: StateRef,
        /// How long the permission lasts.
        #[arg(long = "for", default_value = "10m")]
        duration: String,
    },
    /// Release a lock whoever holds it.
    ForceUnlock {
        #[command(flatten)]
        state: StateRef,
    },
    /// List soft-deleted states (restorable until purged).
    Deleted {
        #[arg(long, default_value = "default")]
        workspace: String,
        #[command(flatten)]
        output: Output,
    },
    /// Make a deleted state live again (by the id shown by `state deleted`).
    Restore {
        #[arg(long, default_value = "default")]
        workspace: String,
        id: String,
    },
    /// Remove a deleted state and all its versions for good.
    Purge {
        #[arg(long, default_value = "default")]
        workspace: String,
        id: String,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Generate a new master key and re-wrap every data key with it. Servers that share the
    /// key file pick the new key up by themselves; replicas with their own copy of the file
    /// need the new file.
    Rotate,
}

pub async fn token(config: &Config, cmd: TokenCommand) -> Result<()> {
    let instance = instance::open(config).await?;
    let services = &instance.services;
    let operator = Principal::local_operator();
    match cmd {
        TokenCommand::Create {
            user,
            workspace,
            instance: _,
            role,
            name,
            expires,
        } => {
            let expires = expires.as_deref().map(parse_duration).transpose()?;
            let role = role.map(Role::from);
            let name = name.unwrap_or_else(|| match (&user, &workspace, role) {
                (Some(u), _, _) => format!("{u}-token"),
                (None, w, r) => format!(
                    "{}-{}",
                    w.as_deref().unwrap_or("instance"),
                    r.map(|r| r.as_str()).unwrap_or("token")
                ),
            });
            let owner = match (&user, &workspace) {
                (Some(u), _) => TokenOwner::User(u.clone()),
                (None, Some(_)) => TokenOwner::Service,
                (None, None) => TokenOwner::Instance,
            };
            let (token, secret) = services
                .create_token_as(
                    &operator,
                    TokenRequest {
                        name,
                        owner,
                        workspace: workspace.clone(),
                        role,
                        expires_in_millis: expires.map(|d| d.as_millis() as i64),
                    },
                )
                .await?;
            let scope = match (&user, &workspace) {
                (Some(u), Some(w)) => format!("for user {u:?}, narrowed to workspace {w:?}"),
                (Some(u), None) => format!("for user {u:?}, wherever the user has a role"),
                (None, Some(w)) => format!("in workspace {w:?}"),
                (None, None) => "in every workspace".into(),
            };
            let role_text = if user.is_some() {
                format!("at most role {}", token.role)
            } else {
                format!("role {}", token.role)
            };
            eprintln!(
                "created token {:?} (id {}) with {role_text} {scope}{}",
                token.name,
                token.id,
                token
                    .expires_at
                    .map(|e| format!(", expires {}", e.to_rfc3339()))
                    .unwrap_or_default()
            );
            eprintln!("the secret is shown once; store it now");
            println!("{}", secret.expose());
        }
        TokenCommand::List {
            workspace,
            user,
            output,
        } => {
            let tokens = match &user {
                Some(u) => {
                    let user = services.user(&operator, u).await?;
                    services.store.user_tokens(&user.id).await?
                }
                None => {
                    let ws_id = match &workspace {
                        Some(w) => Some(services.workspace(w).await?.id),
                        None => None,
                    };
                    services.store.list_tokens(ws_id.as_deref()).await?
                }
            };
            let tokens = services.describe_tokens(tokens).await?;
            if output.json {
                return print_json(&tokens);
            }
            let now = services.now();
            let rows = tokens
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.name.clone(),
                        t.kind.as_str().to_owned(),
                        t.user.clone().unwrap_or_else(|| "-".into()),
                        t.workspace.clone().unwrap_or_else(|| "*".into()),
                        t.role.to_string(),
                        t.created_at.to_rfc3339(),
                        t.expires_at
                            .map(|e| e.to_rfc3339())
                            .unwrap_or_else(|| "never".into()),
                        t.last_used_at
                            .map(|e| e.to_rfc3339())
                            .unwrap_or_else(|| "never".into()),
                        if t.revoked_at.is_some() {
                            "revoked".into()
                        } else if t.expires_at.is_some_and(|e| now >= e) {
                            "expired".into()
                        } else {
                            "active".into()
                        },
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "NAME",
                    "KIND",
                    "USER",
                    "WORKSPACE",
                    "ROLE",
                    "CREATED",
                    "EXPIRES",
                    "LAST USED",
                    "STATUS",
                ],
                rows,
            );
        }
        TokenCommand::Revoke { token } => {
            let all = services.store.list_tokens(None).await?;
            let by_id: Vec<_> = all.iter().filter(|t| t.id == token).collect();
            let by_name: Vec<_> = all
                .iter()
                .filter(|t| t.name == token && t.revoked_at.is_none())
                .collect();
            let target = match (by_id.as_slice(), by_name.as_slice()) {
                ([t], _) | ([], [t]) => *t,
                ([], []) => {
                    bail!("no token with id or live name {token:?}; see `statehouse token list`")
                }
                _ => bail!(
                    "several live tokens are named {token:?}; revoke by id (see `statehouse token list`)"
                ),
            };
            if services
                .store
                .revoke_token(&target.id, services.now())
                .await?
            {
                eprintln!("revoked token {:?} (id {})", target.name, target.id);
            } else {
                eprintln!(
                    "token {:?} (id {}) was already revoked",
                    target.name, target.id
                );
            }
        }
    }
    Ok(())
}

pub async fn workspace(config: &Config, cmd: WorkspaceCommand) -> Result<()> {
    let instance = instance::open(config).await?;
    let services = &instance.services;
    match cmd {
        WorkspaceCommand::Create { name } => {
            let ws = services.create_workspace(&name).await?;
            eprintln!("created workspace {:?}", ws.name);
        }
        WorkspaceCommand::List { output } => {
            let list = services.store.list_workspaces().await?;
            if output.json {
                return print_json(&list);
            }
            let rows = list
                .iter()
                .map(|w| {
                    vec![
                        w.name.clone(),
                        if w.serial_protection {
                            "on".into()
                        } else {
                            "off".into()
                        },
                        w.created_at.to_rfc3339(),
                    ]
                })
                .collect();
            print_table(&["NAME", "SERIAL PROTECTION", "CREATED"], rows);
        }
        WorkspaceCommand::Set {
            name,
            serial_protection,
        } => {
            let mut ws = services.workspace(&name).await?;
            let on = matches!(serial_protection, OnOff::On);
            ws.serial_protection = on;
            services.store.update_workspace(&ws).await?;
            eprintln!(
                "workspace {:?}: serial protection {}",
                ws.name,
                if on { "on" } else { "off" }
            );
        }
    }
    Ok(())
}

pub async fn state(config: &Config, cmd: StateCommand) -> Result<()> {
    let instance = instance::open(config).await?;
    let services = &instance.services;
    let operator = Principal::local_operator();
    match cmd {
        StateCommand::List { workspace, output } => {
            let ws = services.workspace(&workspace).await?;
            let states = services
                .store
                .list_states(&ws.id, &StateFilter::default())
                .await?;
            if output.json {
                return print_json(&states);
            }
            let now = services.now();
            print_table(
                &["NAME", "VERSION", "SERIAL", "SIZE", "UPDATED", "LOCKED BY"],
                states.iter().map(|s| state_row(s, now)).collect(),
            );
        }
        StateCommand::Versions { state, output } => {
            let record = live_state(services, &operator, &state).await?;
            let versions = services
                .store
                .list_versions(&record.id, None, i64::MAX)
                .await?;
            if output.json {
                return print_json(&versions);
            }
            let rows = versions
                .iter()
                .map(|v| {
                    vec![
                        v.version_no.to_string(),
                        v.serial.to_string(),
                        v.lineage.clone(),
                        v.size.to_string(),
                        v.md5.clone(),
                        v.created_at.to_rfc3339(),
                        v.created_by.clone(),
                        v.client_version.clone().unwrap_or_default(),
                        [
                            v.forced.then_some("forced"),
                            v.client_encrypted.then_some("client-encrypted"),
                        ]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(","),
                    ]
                })
                .collect();
            print_table(
                &[
                    "VERSION", "SERIAL", "LINEAGE", "SIZE", "MD5", "WRITTEN", "BY", "CLIENT",
                    "FLAGS",
                ],
                rows,
            );
        }
        StateCommand::Get { state, version } => {
            let record = live_state(services, &operator, &state).await?;
            let number = match version.or(record.current.as_ref().map(|c| c.version_no)) {
                Some(n) => n,
                None => bail!("state {:?} has no version yet", state.name),
            };
            let Some((_, body)) = services.version_body(&record.id, number).await? else {
                bail!("state {:?} has no version {number}", state.name);
            };
            std::io::stdout()
                .write_all(&body)
                .context("writing to stdout")?;
        }
        StateCommand::AllowOverwrite { state, duration } => {
            let window = parse_duration(&duration)?;
            let ws = services.workspace(&state.workspace).await?;
            let until = services.now().plus_millis(window.as_millis() as i64);
            if !services
                .store
                .set_overwrite_until(&ws.id, &state.name, Some(until))
                .await?
            {
                bail!(
                    "state {:?} does not exist in workspace {:?}",
                    state.name,
                    ws.name
                );
            }
            eprintln!(
                "the next write to {:?} that breaks serial/lineage protection is accepted until {} (once, recorded as forced)",
                state.name,
                until.to_rfc3339()
            );
        }
        StateCommand::ForceUnlock { state } => {
            match services
                .unlock_state(&operator, &state.workspace, &state.name, b"")
                .await?
            {
                UnlockOutcome::ForceReleased { previous } => eprintln!(
                    "released lock {} held by {:?} since {}",
                    previous.id,
                    previous.holder,
                    previous.locked_at.to_rfc3339()
                ),
                UnlockOutcome::Released | UnlockOutcome::NotLocked => {
                    eprintln!("state {:?} was not locked", state.name)
                }
            }
        }
        StateCommand::Deleted { workspace, output } => {
            let ws = services.workspace(&workspace).await?;
            let deleted = services.store.list_deleted_states(&ws.id).await?;
            if output.json {
                return print_json(&deleted);
            }
            let rows = deleted
                .iter()
                .map(|d| {
                    vec![
                        d.id.clone(),
                        d.name.clone(),
                        d.versions.to_string(),
                        d.deleted_at.to_rfc3339(),
                        d.deleted_by.clone(),
                    ]
                })
                .collect();
            print_table(&["ID", "NAME", "VERSIONS", "DELETED", "BY"], rows);
        }
        StateCommand::Restore { workspace, id } => {
            let ws = services.workspace(&workspace).await?;
            if !services
                .store
                .restore_state(&ws.id, &id, services.now())
                .await?
            {
                bail!(
                    "no deleted state with id {id:?} in workspace {:?}; see `statehouse state deleted`",
                    ws.name
                );
            }
            eprintln!("restored state {id}");
        }
        StateCommand::Purge { workspace, id } => {
            let ws = services.workspace(&workspace).await?;
            if !services.store.purge_state(&ws.id, &id).await? {
                bail!(
                    "no deleted state with id {id:?} in workspace {:?}; only deleted states can be purged",
                    ws.name
                );
            }
            eprintln!("purged state {id} and all its versions");
        }
    }
    Ok(())
}

pub async fn key(config: &Config, cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Rotate => {
            let instance = instance::open(config).await?;
            let services = &instance.services;
            let file = &instance.key_file;
            let old = file.load()?;
            let rotated = old.with_new_primary(MasterKey::generate());
            file.save(&rotated)?;
            eprintln!(
                "new master key {} written to {} (old key kept until every data key is re-wrapped)",
                rotated.primary().id(),
                file.path().display()
            );
            let mut moved = services.rewrap_all_keys().await?;
            // Servers re-read the key file before sealing; let writes sealed just before the
            // switch land, then sweep again before dropping the old key.
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            moved += services.rewrap_all_keys().await?;
            file.save(&rotated.only_primary())?;
            let straggler = services
                .store
                .keys_not_under(rotated.primary().id(), 1)
                .await?;
            if !straggler.is_empty() {
                file.save(&rotated)?;
                bail!(
                    "a write with the old key landed during rotation; the old key was kept. Run `statehouse key rotate` again"
                );
            }
            eprintln!(
                "re-wrapped {moved} data keys; the old master key is retired. Back up {} now \
                 (older database backups still need the old key file)",
                file.path().display()
            );
        }
    }
    Ok(())
}

async fn live_state(services: &Services, who: &Principal, state: &StateRef) -> Result<StateRecord> {
    services
        .state_record(who, &state.workspace, &state.name)
        .await?
        .with_context(|| {
            format!(
                "state {:?} does not exist in workspace {:?}",
                state.name, state.workspace
            )
        })
}

fn state_row(s: &StateRecord, now: Timestamp) -> Vec<String> {
    let lock = s
        .lock
        .as_ref()
        .map(|l| {
            format!(
                "{} ({}s)",
                l.holder,
                (now.millis() - l.locked_at.millis()).max(0) / 1000
            )
        })
        .unwrap_or_default();
    match &s.current {
        Some(v) => vec![
            s.name.clone(),
            v.version_no.to_string(),
            v.serial.to_string(),
            v.size.to_string(),
            s.updated_at.to_rfc3339(),
            lock,
        ],
        None => vec![
            s.name.clone(),
            "-".into(),
            "-".into(),
            "-".into(),
            s.updated_at.to_rfc3339(),
            lock,
        ],
    }
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}
