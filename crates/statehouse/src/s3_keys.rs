//! `statehouse s3-key …`: S3 access keys of a workspace, through the API — locally as the
//! operator or on a server (workspace admins manage the workspace's service keys, users their
//! own keys, instance admins all).

use anyhow::{Result, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};
use statehouse_core::access::Role;
use statehouse_core::clock::parse_duration;

use crate::admin::RoleArg;
use crate::args::WorkspaceArg;
use crate::client::{Client, Paging, Query, path};
use crate::output::{Output, print_json, str_or};

#[derive(Subcommand)]
pub enum S3KeyCommand {
    /// Create an S3 access key for S3 clients such as Pulumi's DIY backend (the workspace is
    /// the bucket). Prints `export AWS_ACCESS_KEY_ID=…` and `export AWS_SECRET_ACCESS_KEY=…`
    /// on stdout, ready to paste or `eval`; the secret is shown this once.
    ///
    /// Two kinds: `--role R` makes a workspace service key with role R (workspace admins);
    /// `--user U` a key of user U acting with U's roles in the workspace, capped by `--role`
    /// (U itself, or an instance admin).
    Create {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// outputs reads only states' outputs; viewer reads; editor also writes and locks;
        /// admin also deletes and force-unlocks. For a user key: the most it may do.
        #[arg(long, value_enum, required_unless_present = "user")]
        role: Option<RoleArg>,
        /// A user key of this user (acts with the user's current roles in the workspace;
        /// stops working while the user is disabled).
        #[arg(long)]
        user: Option<String>,
        /// A name to recognise the key by (shown as the author of writes and lock holder).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime such as 90d, 12h (default: no expiry).
        #[arg(long, alias = "expires", value_name = "DURATION")]
        expires_in: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// List the workspace's S3 keys you may see (never their secrets): access key id, name,
    /// kind, role, creation, expiry, last use and revocation.
    List {
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// Revoke an S3 key by its access key id; S3 requests signed with it are refused from then
    /// on (on other replicas within a second).
    Revoke {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// The key's access key id (SHK…, see `statehouse s3-key list`).
        #[arg(value_name = "ACCESS_KEY_ID")]
        access_key_id: String,
        #[command(flatten)]
        output: Output,
    },
}

const HEADERS: [&str; 10] = [
    "ACCESS KEY ID",
    "NAME",
    "KIND",
    "USER",
    "ROLE",
    "CREATED",
    "EXPIRES",
    "LAST USED",
    "REVOKED",
    "STATUS",
];

fn row(k: &Value) -> Vec<String> {
    vec![
        str_or(&k["access_key_id"], ""),
        str_or(&k["name"], ""),
        str_or(&k["kind"], ""),
        str_or(&k["user"], "-"),
        str_or(&k["role"], ""),
        str_or(&k["created_at"], ""),
        str_or(&k["expires_at"], "never"),
        str_or(&k["last_used_at"], "never"),
        str_or(&k["revoked_at"], "-"),
        str_or(&k["status"], ""),
    ]
}

pub async fn run(client: &Client, cmd: S3KeyCommand) -> Result<()> {
    match cmd {
        S3KeyCommand::Create {
            workspace,
            role,
            user,
            name,
            expires_in,
            output,
        } => {
            let expires_in_seconds = expires_in
                .as_deref()
                .map(parse_duration)
                .transpose()?
                .map(|d| d.as_secs());
            let role = role.map(Role::from);
            let name = name.unwrap_or_else(|| match (&user, role) {
                (Some(u), _) => format!("{u}-s3"),
                (None, r) => format!("{}-s3-{}", workspace.name, r.map_or("key", Role::as_str)),
            });
            let created = client
                .json(
                    Method::POST,
                    &path(["workspaces", &workspace.name, "s3-keys"]),
                    &Query::new(),
                    Some(&json!({
                        "name": name,
                        "kind": if user.is_some() { "user" } else { "service" },
                        "user": user,
                        "role": role.map(|r| r.as_str()),
                        "expires_in_seconds": expires_in_seconds,
                    })),
                )
                .await?;
            let (Some(id), Some(secret)) = (
                created["access_key_id"].as_str(),
                created["secret_access_key"].as_str(),
            ) else {
                bail!(
                    "the server's answer has no access key (is the CLI much older or newer than the server?)"
                );
            };
            let key = &created["key"];
            let acting = match &user {
                Some(u) => format!(
                    "acting as user {u:?} with at most role {}",
                    str_or(&key["role"], "")
                ),
                None => format!("with role {}", str_or(&key["role"], "")),
            };
            errln!(
                "created S3 key {:?} (access key id {id}) in workspace {:?} {acting}{}",
                str_or(&key["name"], ""),
                workspace.name,
                key["expires_at"]
                    .as_str()
                    .map(|e| format!(", expires {e}"))
                    .unwrap_or_default()
            );
            errln!("the secret access key is shown once; store it now");
            if output.json {
                return print_json(&created);
            }
            // Both alphabets are shell-safe ([A-Z0-9] and [A-Za-z0-9+/]): no quoting needed.
            outln!("export AWS_ACCESS_KEY_ID={id}")?;
            outln!("export AWS_SECRET_ACCESS_KEY={secret}")?;
            Ok(())
        }
        S3KeyCommand::List {
            workspace,
            paging,
            output,
        } => {
            let page = client
                .list(
                    &path(["workspaces", &workspace.name, "s3-keys"]),
                    Query::new(),
                    &paging,
                )
                .await?;
            output.page(page, "S3 keys", &HEADERS, row)
        }
        S3KeyCommand::Revoke {
            workspace,
            access_key_id,
            output,
        } => {
            let revoked = client
                .json(
                    Method::DELETE,
                    &path(["workspaces", &workspace.name, "s3-keys", &access_key_id]),
                    &Query::new(),
                    None,
                )
                .await?;
            output.done(
                &revoked,
                &format!(
                    "revoked S3 key {:?} ({access_key_id}) in workspace {:?}",
                    str_or(&revoked["name"], ""),
                    workspace.name
                ),
            )
        }
    }
}
