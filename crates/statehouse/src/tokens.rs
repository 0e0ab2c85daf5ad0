//! `statehouse token …`: API tokens, through the API — locally as the operator or on a server
//! (instance admins manage all tokens, workspace admins their workspace's service tokens,
//! users their own).

use anyhow::{Result, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};
use statehouse_core::access::Role;
use statehouse_core::clock::parse_duration;

use crate::admin::RoleArg;
use crate::client::{Client, Paging, Query, path};
use crate::output::{Output, print_json, str_or};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; the secret is printed alone on the last line of stdout (shown once).
    ///
    /// Three kinds: `--user U` makes a user token acting with U's roles (optionally narrowed
    /// with `--workspace` and capped with `--role`); `--workspace W --role R` a workspace
    /// service token (workspace admins); `--instance --role R` an instance token valid in
    /// every workspace (instance admins). Tokens of other users need an instance admin.
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
    /// List the tokens you may see (never their secrets), with kind, owner, last use and status.
    List {
        /// Only tokens acting in this workspace (its service tokens, user tokens narrowed to it).
        #[arg(long)]
        workspace: Option<String>,
        /// Only this user's tokens.
        #[arg(long, conflicts_with = "workspace")]
        user: Option<String>,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// Revoke a token by id, or by name when the name is unique among live tokens.
    Revoke {
        // Not named `token`: that is the global --token option's id.
        /// The token's id, or its name when unique among live tokens.
        #[arg(value_name = "ID|NAME")]
        which: String,
        #[command(flatten)]
        output: Output,
    },
}

const HEADERS: [&str; 10] = [
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
];

fn row(t: &Value) -> Vec<String> {
    vec![
        str_or(&t["id"], ""),
        str_or(&t["name"], ""),
        str_or(&t["kind"], ""),
        str_or(&t["user"], "-"),
        str_or(&t["workspace"], "*"),
        str_or(&t["role"], ""),
        str_or(&t["created_at"], ""),
        str_or(&t["expires_at"], "never"),
        str_or(&t["last_used_at"], "never"),
        str_or(&t["status"], ""),
    ]
}

pub async fn run(client: &Client, cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Create {
            user,
            workspace,
            instance: _,
            role,
            name,
            expires,
        } => {
            let expires_in_seconds = expires
                .as_deref()
                .map(parse_duration)
                .transpose()?
                .map(|d| d.as_secs());
            let role = role.map(Role::from);
            let name = name.unwrap_or_else(|| match (&user, &workspace, role) {
                (Some(u), _, _) => format!("{u}-token"),
                (None, w, r) => format!(
                    "{}-{}",
                    w.as_deref().unwrap_or("instance"),
                    r.map(|r| r.as_str()).unwrap_or("token")
                ),
            });
            let kind = match (&user, &workspace) {
                (Some(_), _) => "user",
                (None, Some(_)) => "service",
                (None, None) => "instance",
            };
            let created = client
                .json(
                    Method::POST,
                    &path(["tokens"]),
                    &Query::new(),
                    Some(&json!({
                        "name": name,
                        "kind": kind,
                        "user": user,
                        "workspace": workspace,
                        "role": role.map(|r| r.as_str()),
                        "expires_in_seconds": expires_in_seconds,
                    })),
                )
                .await?;
            let token = &created["token"];
            let Some(secret) = created["secret"].as_str() else {
                bail!(
                    "the server's answer has no token secret (is the CLI much older or newer than the server?)"
                );
            };
            let scope = match (&user, &workspace) {
                (Some(u), Some(w)) => format!("for user {u:?}, narrowed to workspace {w:?}"),
                (Some(u), None) => format!("for user {u:?}, wherever the user has a role"),
                (None, Some(w)) => format!("in workspace {w:?}"),
                (None, None) => "in every workspace".into(),
            };
            let role_text = if user.is_some() {
                format!("at most role {}", str_or(&token["role"], ""))
            } else {
                format!("role {}", str_or(&token["role"], ""))
            };
            errln!(
                "created token {:?} (id {}) with {role_text} {scope}{}",
                str_or(&token["name"], ""),
                str_or(&token["id"], ""),
                token["expires_at"]
                    .as_str()
                    .map(|e| format!(", expires {e}"))
                    .unwrap_or_default()
            );
            errln!("the secret is shown once; store it now");
            outln!("{secret}")?;
            Ok(())
        }
        TokenCommand::List {
            workspace,
            user,
            paging,
            output,
        } => {
            let query = Query::new().with("workspace", workspace).with("user", user);
            let page = client.list(&path(["tokens"]), query, &paging).await?;
            output.page(page, "tokens", &HEADERS, row)
        }
        TokenCommand::Revoke { which, output } => {
            let all = client.list_all(&path(["tokens"]), Query::new()).await?;
            let by_id: Vec<&Value> = all.iter().filter(|t| t["id"] == which.as_str()).collect();
            let by_name: Vec<&Value> = all
                .iter()
                .filter(|t| t["name"] == which.as_str() && t["revoked_at"].is_null())
                .collect();
            let target = match (by_id.as_slice(), by_name.as_slice()) {
                ([t], _) | ([], [t]) => *t,
                ([], []) => bail!(
                    "no token you may see has the id or live name {which:?}; see `statehouse token list`"
                ),
                _ => bail!(
                    "several live tokens are named {which:?}; revoke by id (see `statehouse token list`)"
                ),
            };
            let name = str_or(&target["name"], "");
            let id = str_or(&target["id"], "");
            if !target["revoked_at"].is_null() {
                errln!("token {name:?} (id {id}) was already revoked");
                if output.json {
                    print_json(target)?;
                }
                return Ok(());
            }
            let revoked = client
                .json(Method::DELETE, &path(["tokens", &id]), &Query::new(), None)
                .await?;
            output.done(&revoked, &format!("revoked token {name:?} (id {id})"))
        }
    }
}
