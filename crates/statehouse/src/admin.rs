//! Operator commands that act directly on the configured database (they work while a server
//! runs: SQLite in WAL mode and PostgreSQL both allow it).

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use statehouse_core::access::{Principal, Role};
use statehouse_core::clock::{Timestamp, parse_duration};
use statehouse_core::crypto::MasterKey;
use statehouse_core::model::{StateFilter, StateRecord, UnlockOutcome};
use statehouse_core::service::Services;

use crate::config::Config;
use crate::instance;

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Editor,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
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
    json: bool,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; the secret is printed alone on the last line of stdout (shown once).
    Create {
        /// Workspace the token acts in.
        #[arg(long, required_unless_present = "instance")]
        workspace: Option<String>,
        /// Make an instance-wide token, valid in every workspace.
        #[arg(long, conflicts_with = "workspace")]
        instance: bool,
        /// viewer reads; editor also writes, locks and releases its own locks; admin also
        /// deletes, force-unlocks and manages tokens and workspaces.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A name to recognise the token by (shown as the author of writes and lock holder).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime such as 90d, 12h (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        workspace: Option<String>,
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
pub enum AuditCommand {
    /// Check the audit log's hash chain: exits non-zero naming the first altered, removed,
    /// reordered or inserted entry. Prints the chain head; keep it somewhere else to detect a
    /// rewrite of the whole chain later.
    Verify {
        #[command(flatten)]
        output: Output,
    },
    /// Print audit entries as JSON lines, oldest first.
    Export {
        /// Only entries at or after this time (RFC 3339, e.g. 2026-01-31T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Only entries before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        /// An action (`state.write`) or a prefix (`lock.*`).
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        workspace: Option<String>,
        #[arg(long)]
        target: Option<String>,
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
    let result = token_command(&instance.services, cmd).await;
    // Refusals are audited without waiting; store them before the process exits.
    instance.services.flush_journal().await;
    result
}

async fn token_command(services: &Services, cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Create {
            workspace,
            instance: _,
            role,
            name,
            expires,
        } => {
            let expires = expires.as_deref().map(parse_duration).transpose()?;
            let role = Role::from(role);
            let name = name.unwrap_or_else(|| {
                format!("{}-{role}", workspace.as_deref().unwrap_or("instance"))
            });
            let (token, secret) = services
                .create_token(
                    &Principal::local_operator(),
                    workspace.as_deref(),
                    role,
                    &name,
                    expires.map(|d| d.as_millis() as i64),
                )
                .await?;
            eprintln!(
                "created token {:?} (id {}) with role {} in {}{}",
                token.name,
                token.id,
                token.role,
                workspace
                    .map(|w| format!("workspace {w:?}"))
                    .unwrap_or_else(|| "every workspace".into()),
                token
                    .expires_at
                    .map(|e| format!(", expires {}", e.to_rfc3339()))
                    .unwrap_or_default()
            );
            eprintln!("the secret is shown once; store it now");
            println!("{}", secret.expose());
        }
        TokenCommand::List { workspace, output } => {
            let ws_id = match &workspace {
                Some(w) => Some(services.workspace(w).await?.id),
                None => None,
            };
            let names = workspace_names(services).await?;
            let tokens = services.store.list_tokens(ws_id.as_deref()).await?;
            let now = services.now();
            if output.json {
                return print_json(&tokens);
            }
            let rows = tokens
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.name.clone(),
                        t.workspace_id
                            .as_ref()
                            .map(|w| lookup(&names, w))
                            .unwrap_or_else(|| "*".into()),
                        t.role.to_string(),
                        t.created_at.to_rfc3339(),
                        t.expires_at
                            .map(|e| e.to_rfc3339())
                            .unwrap_or_else(|| "never".into()),
                        if t.revoked_at.is_some() {
                            "revoked".into()
                        } else if t.is_usable_at(now) {
                            "active".into()
                        } else {
                            "expired".into()
                        },
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "NAME",
                    "WORKSPACE",
                    "ROLE",
                    "CREATED",
                    "EXPIRES",
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
                .revoke_token(&Principal::local_operator(), &target.id)
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
    let result = workspace_command(&instance.services, cmd).await;
    // Refusals are audited without waiting; store them before the process exits.
    instance.services.flush_journal().await;
    result
}

async fn workspace_command(services: &Services, cmd: WorkspaceCommand) -> Result<()> {
    match cmd {
        WorkspaceCommand::Create { name } => {
            let ws = services
                .create_workspace_as(&Principal::local_operator(), &name)
                .await?;
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
    let result = state_command(&instance.services, cmd).await;
    // Refusals are audited without waiting; store them before the process exits.
    instance.services.flush_journal().await;
    result
}

async fn state_command(services: &Services, cmd: StateCommand) -> Result<()> {
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
            services.restore_state(&operator, &workspace, &id).await?;
            eprintln!("restored state {id}");
        }
        StateCommand::Purge { workspace, id } => {
            services.purge_state(&operator, &workspace, &id).await?;
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

pub async fn audit(config: &Config, cmd: AuditCommand) -> Result<()> {
    let instance = instance::open(config).await?;
    let services = &instance.services;
    let operator = Principal::local_operator();
    match cmd {
        AuditCommand::Verify { output } => {
            let report = services.verify_audit(&operator).await?;
            if output.json {
                print_json(&report)?;
            } else {
                let head = &report.head;
                println!(
                    "checked {} entries ({} to {}); chain head: entry {} hash {}",
                    report.checked,
                    head.pruned_seq + 1,
                    head.last_seq,
                    head.last_seq,
                    head.last_hash
                );
                if head.pruned_seq > 0 {
                    println!(
                        "entries up to {} were pruned by retention (last pruned hash {})",
                        head.pruned_seq, head.pruned_hash
                    );
                }
            }
            if let Some(problem) = report.problem {
                bail!(
                    "the audit log was tampered with: {} — restore the database from a backup you trust and investigate",
                    problem.message
                );
            }
            eprintln!("the audit log is intact");
        }
        AuditCommand::Export {
            since,
            until,
            actor,
            action,
            workspace,
            target,
        } => {
            let mut query = statehouse_core::audit::AuditQuery {
                actor,
                action,
                workspace,
                target,
                since: since.as_deref().map(parse_time).transpose()?,
                until: until.as_deref().map(parse_time).transpose()?,
                cursor: Some(0),
                newest_first: false,
                limit: statehouse_core::service::MAX_AUDIT_PAGE,
                ..Default::default()
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            loop {
                let page = services.audit_entries(&operator, query.clone()).await?;
                let Some(last) = page.last() else { break };
                query.cursor = Some(last.seq);
                for entry in &page {
                    serde_json::to_writer(&mut out, entry)?;
                    out.write_all(b"\n")?;
                }
            }
            out.flush()?;
        }
    }
    services.flush_journal().await;
    Ok(())
}

/// RFC 3339 text to a timestamp.
fn parse_time(text: &str) -> Result<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| Timestamp(t.timestamp_millis()))
        .with_context(|| format!("invalid time {text:?}: use RFC 3339, e.g. 2026-01-31T00:00:00Z"))
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

async fn workspace_names(services: &Services) -> Result<Vec<(String, String)>> {
    Ok(services
        .store
        .list_workspaces()
        .await?
        .into_iter()
        .map(|w| (w.id, w.name))
        .collect())
}

fn lookup(names: &[(String, String)], id: &str) -> String {
    names
        .iter()
        .find(|(i, _)| i == id)
        .map(|(_, n)| n.clone())
        .unwrap_or_else(|| id.to_owned())
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

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
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
