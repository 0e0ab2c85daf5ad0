//! Operator commands that act directly on the configured database and key file, on the
//! server host (they work while a server runs: SQLite in WAL mode and PostgreSQL both allow
//! it): tokens, master key rotation, overwrite permission.

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use statehouse_core::access::{Principal, Role};
use statehouse_core::clock::{Timestamp, parse_duration};
use statehouse_core::crypto::MasterKey;
use statehouse_core::service::{TokenOwner, TokenRequest};

use crate::config::Config;
use crate::instance;
use crate::output::{Output, print_json, print_table};
use crate::states::StateRef;

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

async fn token_command(
    services: &statehouse_core::service::Services,
    cmd: TokenCommand,
) -> Result<()> {
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

/// `state allow-overwrite`: opens the one-shot window in the database directly (the API has
/// no such operation; it is an operator's decision on the server host).
pub async fn allow_overwrite(config: &Config, state: &StateRef, duration: &str) -> Result<()> {
    let window = parse_duration(duration)?;
    let instance = instance::open(config).await?;
    let services = &instance.services;
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
