//! `statehouse audit …`: the tamper-evident audit log through the API — locally as the
//! operator or on a server (instance admins see everything, workspace admins their
//! workspaces' entries; only instance admins verify the chain).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use crate::client::{Client, Paging, Query, path};
use crate::output::{Output, print_json, str_or, write_out};
use crate::states::time_or_ago;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// List audit entries, newest first (--oldest-first to turn around), one page at a time.
    List {
        #[command(flatten)]
        filter: AuditFilter,
        /// Oldest entries first.
        #[arg(long)]
        oldest_first: bool,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// Print every matching audit entry as JSON lines, oldest first, streamed.
    Export {
        #[command(flatten)]
        filter: AuditFilter,
        /// Write to this file instead of stdout (replaced only once the export is complete).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check the audit log's hash chain (instance admins): exits 1 naming the first altered,
    /// removed, reordered or inserted entry, or entries removed without a prune's proof. Prints
    /// the chain head; keep it somewhere else to detect a rewrite of the whole chain later.
    Verify {
        #[command(flatten)]
        output: Output,
    },
}

/// Which entries; all optional.
#[derive(Args)]
pub struct AuditFilter {
    /// Who acted: a user, a token name, `unknown`.
    #[arg(long)]
    actor: Option<String>,
    /// An action (`state.write`) or a prefix (`lock.*`).
    #[arg(long)]
    action: Option<String>,
    #[arg(long)]
    workspace: Option<String>,
    /// What was acted on: a state name, a token id, a user name, …
    #[arg(long)]
    target: Option<String>,
    /// `success`, `denied` or `failed`.
    #[arg(long)]
    outcome: Option<String>,
    /// Only entries at or after this time (RFC 3339, e.g. 2026-01-31T00:00:00Z) or within
    /// a duration before now (e.g. 2h, 7d).
    #[arg(long, value_name = "TIME|DURATION")]
    since: Option<String>,
    /// Only entries before this time (RFC 3339) or this long ago.
    #[arg(long, value_name = "TIME|DURATION")]
    until: Option<String>,
}

impl AuditFilter {
    fn query(self) -> Result<Query> {
        Ok(Query::new()
            .with("actor", self.actor)
            .with("action", self.action)
            .with("workspace", self.workspace)
            .with("target", self.target)
            .with("outcome", self.outcome)
            .with(
                "since",
                self.since
                    .as_deref()
                    .map(|t| time_or_ago(t, "--since"))
                    .transpose()?,
            )
            .with(
                "until",
                self.until
                    .as_deref()
                    .map(|t| time_or_ago(t, "--until"))
                    .transpose()?,
            ))
    }
}

fn row(e: &Value) -> Vec<String> {
    let actor = match e["token_name"].as_str() {
        Some(token) if e["actor"].as_str() != Some(token) => {
            format!("{} ({token})", str_or(&e["actor"], "-"))
        }
        _ => str_or(&e["actor"], "-"),
    };
    vec![
        e["seq"].to_string(),
        str_or(&e["time"], "-"),
        actor,
        str_or(&e["action"], "-"),
        str_or(&e["workspace"], "-"),
        str_or(&e["target"], "-"),
        str_or(&e["outcome"], "-"),
        str_or(&e["source_ip"], "-"),
        str_or(&e["reason"], ""),
    ]
}

pub async fn run(client: &Client, cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::List {
            filter,
            oldest_first,
            paging,
            output,
        } => {
            let query = filter
                .query()?
                .with("order", oldest_first.then_some("oldest"));
            let page = client.list(&path(["audit"]), query, &paging).await?;
            output.page(
                page,
                "entries",
                &[
                    "SEQ",
                    "TIME",
                    "ACTOR",
                    "ACTION",
                    "WORKSPACE",
                    "TARGET",
                    "OUTCOME",
                    "FROM",
                    "REASON",
                ],
                row,
            )
        }
        AuditCommand::Export { filter, output } => {
            export(client, filter.query()?, output.as_deref()).await
        }
        AuditCommand::Verify { output } => {
            let report = client
                .json(
                    Method::POST,
                    &path(["audit", "verify"]),
                    &Query::new(),
                    None,
                )
                .await?;
            if output.json {
                print_json(&report)?;
            } else {
                let number = |v: &Value| v.as_i64().unwrap_or_default();
                let pruned = number(&report["pruned_seq"]);
                outln!(
                    "checked {} entries ({} to {}); chain head: entry {} hash {}",
                    number(&report["checked"]),
                    pruned + 1,
                    number(&report["last_seq"]),
                    number(&report["last_seq"]),
                    str_or(&report["last_hash"], "-")
                )?;
                if pruned > 0 {
                    outln!(
                        "entries up to {pruned} were pruned by retention (last pruned hash {}); the prune's audit.prune entry proves it",
                        str_or(&report["pruned_hash"], "-")
                    )?;
                }
                let unsealed = number(&report["unsealed"]);
                if unsealed > 0 {
                    outln!(
                        "{unsealed} entries of just-committed changes were not sealed into the chain yet and are not covered; run verify again to include them"
                    )?;
                }
            }
            if let Some(problem) = report["problem"].as_object() {
                bail!(
                    "the audit log was tampered with: {} — restore the database from a backup you trust and investigate",
                    problem
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("the chain is broken")
                );
            }
            if report["intact"] != true {
                bail!("the server did not report the audit log as intact: {report}");
            }
            errln!("the audit log is intact");
            Ok(())
        }
    }
}

/// Streams the export to stdout or to `file` (see [`write_out`]).
async fn export(client: &Client, query: Query, file: Option<&Path>) -> Result<()> {
    let mut response = client
        .send(Method::GET, &path(["audit", "export"]), &query, None)
        .await?;
    let lines = write_out(file, async |sink| {
        let mut lines: u64 = 0;
        let mut last = b'\n';
        while let Some(chunk) = response.chunk().await? {
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            if let Some(b) = chunk.last() {
                last = *b;
            }
            sink.write_all(&chunk).context("writing the export")?;
        }
        sink.flush().context("writing the export")?;
        // Every entry ends with a newline; a cut-off line means the server stopped early.
        if last != b'\n' {
            bail!(
                "the export ended in the middle of an entry (the server stopped early); try again"
            );
        }
        Ok(lines)
    })
    .await?;
    if let Some(f) = file {
        errln!("wrote {lines} audit entries to {}", f.display());
    }
    Ok(())
}
