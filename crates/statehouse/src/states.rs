//! `statehouse state …`: through the API, locally or on a server — except `allow-overwrite`,
//! an operator action on the local database (see `admin`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use md5::{Digest, Md5};
use reqwest::Method;
use serde_json::json;
use statehouse_core::clock::{Clock, SystemClock, Timestamp, parse_duration};
use statehouse_server::api::views::{DeletedStateView, LockView, StateView, VersionView};

use crate::args::WorkspaceArg;
use crate::client::{Client, Paging, Query, path, typed};
use crate::output::{Output, age, or_dash, print_json, size, write_out};

#[derive(Args)]
pub struct StateRef {
    #[command(flatten)]
    pub workspace: WorkspaceArg,
    /// State name, e.g. `prod/network`.
    pub name: String,
}

impl StateRef {
    fn path(&self, rest: &[&str]) -> String {
        let mut segments = vec!["workspaces", &self.workspace.name, "states", &self.name];
        segments.extend_from_slice(rest);
        path(segments)
    }
}

#[derive(Subcommand)]
pub enum StateCommand {
    /// List live states of a workspace, in name order.
    List {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// Only states whose name starts with this, e.g. `prod/`.
        #[arg(long)]
        prefix: Option<String>,
        /// Only locked states.
        #[arg(long, conflicts_with = "unlocked")]
        locked: bool,
        /// Only unlocked states.
        #[arg(long)]
        unlocked: bool,
        /// Only states written since a time (RFC 3339, e.g. 2026-11-22T10:00:00Z) or within
        /// a duration before now (e.g. 2h, 7d).
        #[arg(long, value_name = "TIME|DURATION")]
        changed_since: Option<String>,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// Show a state: current version and lock.
    Show {
        #[command(flatten)]
        state: StateRef,
        #[command(flatten)]
        output: Output,
    },
    /// List the versions of a state, newest first.
    Versions {
        #[command(flatten)]
        state: StateRef,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// Download a state's current body, or a given version's, exactly as written (checked
    /// against its MD5).
    Get {
        #[command(flatten)]
        state: StateRef,
        /// Version number (default: the current version).
        #[arg(long)]
        version: Option<i64>,
        /// Write to this file instead of stdout (replaced only once the download is complete).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// What changed between two versions: resource instances added, removed and changed
    /// (with attribute paths) and outputs. Sensitive values are masked unless you are a
    /// workspace admin.
    Diff {
        #[command(flatten)]
        state: StateRef,
        /// The older version (default: the one before --to).
        #[arg(long)]
        from: Option<i64>,
        /// The newer version (default: the current one).
        #[arg(long)]
        to: Option<i64>,
        #[command(flatten)]
        output: Output,
    },
    /// Make an earlier version current again (editors): written as a new version with the
    /// serial bumped, so the next plan accepts it. Refused while someone else holds the lock.
    Rollback {
        #[command(flatten)]
        state: StateRef,
        /// The version to make current again.
        #[arg(long)]
        version: i64,
        #[command(flatten)]
        output: Output,
    },
    /// The current outputs of a state (sensitive values masked unless you are a workspace
    /// admin).
    Outputs {
        #[command(flatten)]
        state: StateRef,
        #[command(flatten)]
        output: Output,
    },
    /// Spare a version from version retention (workspace admins), or with --release let
    /// retention delete it again.
    Keep {
        #[command(flatten)]
        state: StateRef,
        #[arg(long)]
        version: i64,
        #[arg(long)]
        release: bool,
    },
    /// Release a lock whoever holds it (workspace admins).
    ForceUnlock {
        #[command(flatten)]
        state: StateRef,
        #[command(flatten)]
        output: Output,
    },
    /// Soft-delete a state (workspace admins): it leaves the backend and listings; its
    /// versions stay restorable until purged. Refused while locked.
    Delete {
        #[command(flatten)]
        state: StateRef,
    },
    /// List soft-deleted states (workspace admins; restorable until purged).
    Deleted {
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// Make a deleted state live again, by the id `state deleted` shows (workspace admins).
    Restore {
        #[command(flatten)]
        workspace: WorkspaceArg,
        id: String,
    },
    /// Remove a deleted state and all its versions for good (workspace admins).
    Purge {
        #[command(flatten)]
        workspace: WorkspaceArg,
        id: String,
    },
    /// [local only] Allow the next write that breaks serial/lineage protection (e.g.
    /// `terraform state push -force`) within a time window; the write is accepted once and
    /// recorded as forced. Acts on the local database; run it on the server host.
    AllowOverwrite {
        #[command(flatten)]
        state: StateRef,
        /// How long the permission lasts.
        #[arg(long = "for", default_value = "10m")]
        duration: String,
    },
}

pub async fn run(client: &Client, cmd: StateCommand) -> Result<()> {
    match cmd {
        StateCommand::List {
            workspace: WorkspaceArg { name: workspace },
            prefix,
            locked,
            unlocked,
            changed_since,
            paging,
            output,
        } => {
            let query = Query::new()
                .with("prefix", prefix)
                .with("locked", (locked || unlocked).then_some(locked))
                .with(
                    "changed_since",
                    changed_since.as_deref().map(since).transpose()?,
                );
            let page = client
                .list(&path(["workspaces", &workspace, "states"]), query, &paging)
                .await?;
            output.page(
                page,
                "states",
                &[
                    "NAME",
                    "VERSION",
                    "SERIAL",
                    "SIZE",
                    "UPDATED",
                    "LAST WRITER",
                    "LOCKED BY",
                    "STALE",
                ],
                state_row,
            )
        }
        StateCommand::Show { state, output } => {
            let found = client.get(&state.path(&[]), &Query::new()).await?;
            output.record(found, state_details)
        }
        StateCommand::Versions {
            state,
            paging,
            output,
        } => {
            let page = client
                .list(&state.path(&["versions"]), Query::new(), &paging)
                .await?;
            output.page(
                page,
                "versions",
                &[
                    "VERSION", "SERIAL", "SIZE", "WRITTEN", "BY", "CLIENT", "MD5", "FLAGS",
                ],
                version_row,
            )
        }
        StateCommand::Get {
            state,
            version,
            output,
        } => download(client, &state, version, output.as_deref()).await,
        StateCommand::Diff {
            state,
            from,
            to,
            output,
        } => {
            let query = Query::new().with("from", from).with("to", to);
            let diff = client.get(&state.path(&["diff"]), &query).await?;
            if output.json {
                return print_json(&diff);
            }
            print_diff(&diff)?;
            Ok(())
        }
        StateCommand::Rollback {
            state,
            version,
            output,
        } => {
            let created = client
                .json(
                    Method::POST,
                    &state.path(&["rollback"]),
                    &Query::new(),
                    Some(&json!({ "version": version })),
                )
                .await?;
            let new: VersionView = typed(created.clone())?;
            output.done(
                &created,
                &format!(
                    "rolled {:?} back to version {version}: it is now version {} with serial {}",
                    state.name, new.version, new.serial
                ),
            )
        }
        StateCommand::Outputs { state, output } => {
            let found = client.get(&state.path(&["outputs"]), &Query::new()).await?;
            if output.json {
                return print_json(&found);
            }
            output.list(
                found["outputs"].clone(),
                &["NAME", "TYPE", "SENSITIVE", "VALUE"],
                |o: &serde_json::Value| {
                    vec![
                        text(&o["name"]),
                        if o["type"].is_null() {
                            "-".into()
                        } else {
                            text(&o["type"])
                        },
                        if o["sensitive"] == true { "yes" } else { "" }.into(),
                        text(&o["value"]),
                    ]
                },
            )
        }
        StateCommand::Keep {
            state,
            version,
            release,
        } => {
            let number = version.to_string();
            client
                .json(
                    Method::PUT,
                    &state.path(&["versions", &number, "keep"]),
                    &Query::new(),
                    Some(&json!({ "kept": !release })),
                )
                .await?;
            if release {
                errln!(
                    "version {version} of {:?} is subject to version retention again",
                    state.name
                );
            } else {
                errln!(
                    "version {version} of {:?} is kept: version retention will not delete it",
                    state.name
                );
            }
            Ok(())
        }
        StateCommand::ForceUnlock { state, output } => {
            let released = client
                .json(Method::DELETE, &state.path(&["lock"]), &Query::new(), None)
                .await?;
            let lock: LockView = typed(released.clone())?;
            output.done(
                &released,
                &format!(
                    "released lock {} on {:?} held by {:?}{} since {} ({})",
                    lock.id,
                    state.name,
                    lock.holder,
                    lock.who.map(|w| format!(" ({w})")).unwrap_or_default(),
                    lock.locked_at,
                    age(lock.age_seconds)
                ),
            )
        }
        StateCommand::Delete { state } => {
            client
                .json(Method::DELETE, &state.path(&[]), &Query::new(), None)
                .await?;
            errln!(
                "deleted state {:?} from workspace {:?}; `statehouse state deleted --workspace {}` shows its id to restore or purge it",
                state.name,
                state.workspace.name,
                state.workspace.name
            );
            Ok(())
        }
        StateCommand::Deleted {
            workspace: WorkspaceArg { name: workspace },
            paging,
            output,
        } => {
            let page = client
                .list(
                    &path(["workspaces", &workspace, "deleted-states"]),
                    Query::new(),
                    &paging,
                )
                .await?;
            output.page(
                page,
                "deleted states",
                &["ID", "NAME", "VERSIONS", "DELETED", "BY"],
                |d: &DeletedStateView| {
                    vec![
                        d.id.clone(),
                        d.name.clone(),
                        d.versions.to_string(),
                        d.deleted_at.clone(),
                        d.deleted_by.clone(),
                    ]
                },
            )
        }
        StateCommand::Restore {
            workspace: WorkspaceArg { name: workspace },
            id,
        } => {
            client
                .json(
                    Method::POST,
                    &path(["workspaces", &workspace, "deleted-states", &id, "restore"]),
                    &Query::new(),
                    None,
                )
                .await?;
            errln!("restored state {id}");
            Ok(())
        }
        StateCommand::Purge {
            workspace: WorkspaceArg { name: workspace },
            id,
        } => {
            client
                .json(
                    Method::DELETE,
                    &path(["workspaces", &workspace, "deleted-states", &id]),
                    &Query::new(),
                    None,
                )
                .await?;
            errln!("purged state {id} and all its versions");
            Ok(())
        }
        StateCommand::AllowOverwrite { .. } => {
            bail!("`state allow-overwrite` acts on the local database; it has no API")
        }
    }
}

/// A JSON value for a table cell or a diff line: strings bare, everything else as JSON.
fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A diff as people read `terraform plan`: `+` added, `-` removed, `~` changed.
fn print_diff(diff: &serde_json::Value) -> Result<()> {
    let d = &diff["diff"];
    let side = |h: &serde_json::Value| {
        format!(
            "serial {}, {} instances",
            h["serial"], h["resource_instances"]
        )
    };
    outln!(
        "version {} ({}) → version {} ({})",
        diff["from"],
        side(&d["before"]),
        diff["to"],
        side(&d["after"])
    )?;
    if d["before"]["lineage"] != d["after"]["lineage"] {
        outln!(
            "lineage changed: {} → {}",
            text(&d["before"]["lineage"]),
            text(&d["after"]["lineage"])
        )?;
    }
    let items = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
    for added in items(&d["added"]) {
        outln!("+ {}", text(&added["address"]))?;
    }
    for removed in items(&d["removed"]) {
        outln!("- {}", text(&removed["address"]))?;
    }
    for changed in items(&d["changed"]) {
        outln!("~ {}", text(&changed["address"]))?;
        if !changed["status"].is_null() {
            outln!(
                "    status: {} → {}",
                or_dash(changed["status"]["before"].as_str()),
                or_dash(changed["status"]["after"].as_str())
            )?;
        }
        for attr in items(&changed["attributes"]) {
            let value = |key: &str| {
                attr.get(key)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "(absent)".into())
            };
            outln!(
                "    {}: {} → {}",
                text(&attr["path"]),
                value("before"),
                value("after")
            )?;
        }
    }
    let resources_changed = ["added", "removed", "changed"]
        .iter()
        .any(|k| !items(&d[*k]).is_empty());
    if resources_changed {
        outln!("{} instances unchanged", d["unchanged"])?;
    } else {
        outln!(
            "no resource instance changed ({} unchanged)",
            d["unchanged"]
        )?;
    }
    let outputs = &d["outputs"];
    for added in items(&outputs["added"]) {
        outln!("+ output {} = {}", text(&added["name"]), added["value"])?;
    }
    for removed in items(&outputs["removed"]) {
        outln!("- output {}", text(&removed["name"]))?;
    }
    for changed in items(&outputs["changed"]) {
        outln!(
            "~ output {}: {} → {}",
            text(&changed["name"]),
            changed["before"],
            changed["after"]
        )?;
    }
    Ok(())
}

/// `--changed-since` as the API takes it: RFC 3339, from a time or a duration before now.
fn since(text: &str) -> Result<String> {
    time_or_ago(text, "--changed-since")
}

/// A time option: RFC 3339 as given, or a duration before now (`2h`, `7d`), as RFC 3339.
pub fn time_or_ago(text: &str, option: &str) -> Result<String> {
    if let Ok(ago) = parse_duration(text) {
        let millis = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
        return Ok(Timestamp(SystemClock.now().millis().saturating_sub(millis)).to_rfc3339());
    }
    match Timestamp::parse_rfc3339(text) {
        Ok(t) => Ok(t.to_rfc3339()),
        Err(_) => bail!(
            "{option} {text:?}: give a time (2026-11-22T10:00:00Z) or a duration before now (2h, 7d)"
        ),
    }
}

fn lock_cell(lock: &Option<LockView>) -> String {
    lock.as_ref()
        .map(|l| format!("{} ({})", l.holder, age(l.age_seconds)))
        .unwrap_or_default()
}

fn state_row(s: &StateView) -> Vec<String> {
    let current = s.current.as_ref();
    vec![
        s.name.clone(),
        or_dash(current.map(|v| v.version)),
        or_dash(current.map(|v| v.serial)),
        or_dash(current.map(|v| size(v.size))),
        s.updated_at.clone(),
        or_dash(current.map(|v| v.created_by.clone())),
        lock_cell(&s.lock),
        if s.lock.as_ref().is_some_and(|l| l.stale) {
            "stale".into()
        } else {
            String::new()
        },
    ]
}

fn state_details(s: &StateView) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("workspace", s.workspace.clone()),
        ("name", s.name.clone()),
        ("created", s.created_at.clone()),
        ("updated", s.updated_at.clone()),
    ];
    match &s.current {
        Some(v) => fields.extend([
            ("version", v.version.to_string()),
            ("serial", v.serial.to_string()),
            ("lineage", v.lineage.clone()),
            ("size", format!("{} ({} bytes)", size(v.size), v.size)),
            ("md5", v.md5.clone()),
            ("written by", v.created_by.clone()),
            ("written at", v.created_at.clone()),
            ("client", or_dash(v.client_version.clone())),
            (
                "flags",
                Some(flags(v))
                    .filter(|f| !f.is_empty())
                    .unwrap_or_else(|| "-".into()),
            ),
        ]),
        None => fields.push(("version", "none yet".into())),
    }
    match &s.lock {
        Some(l) => fields.extend([
            ("locked by", l.holder.clone()),
            ("lock id", l.id.clone()),
            ("operation", or_dash(l.operation.clone())),
            ("who", or_dash(l.who.clone())),
            (
                "locked since",
                format!("{} ({})", l.locked_at, age(l.age_seconds)),
            ),
            ("stale", if l.stale { "yes" } else { "no" }.into()),
        ]),
        None => fields.push(("locked by", "nobody".into())),
    }
    fields
}

fn flags(v: &VersionView) -> String {
    [
        v.forced.then_some("forced"),
        v.client_encrypted.then_some("client-encrypted"),
        v.kept.then_some("kept"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(",")
}

fn version_row(v: &VersionView) -> Vec<String> {
    vec![
        v.version.to_string(),
        v.serial.to_string(),
        size(v.size),
        v.created_at.clone(),
        v.created_by.clone(),
        v.client_version.clone().unwrap_or_default(),
        v.md5.clone(),
        flags(v),
    ]
}

/// Streams a version's body to stdout or a file, checking size and MD5 against its metadata.
async fn download(
    client: &Client,
    state: &StateRef,
    version: Option<i64>,
    file: Option<&Path>,
) -> Result<()> {
    let meta: VersionView = match version {
        Some(n) => typed(
            client
                .get(&state.path(&["versions", &n.to_string()]), &Query::new())
                .await?,
        )?,
        None => {
            let found: StateView = typed(client.get(&state.path(&[]), &Query::new()).await?)?;
            match found.current {
                Some(current) => current,
                None => bail!(
                    "state {:?} has no version yet: nothing to download",
                    state.name
                ),
            }
        }
    };
    let number = meta.version.to_string();
    let mut response = client
        .send(
            Method::GET,
            &state.path(&["versions", &number, "body"]),
            &Query::new(),
            None,
        )
        .await?;
    write_out(file, async |sink| {
        let mut md5 = Md5::new();
        let mut written: i64 = 0;
        while let Some(chunk) = response.chunk().await? {
            md5.update(&chunk);
            written += i64::try_from(chunk.len()).unwrap_or(i64::MAX);
            sink.write_all(&chunk).context("writing the state")?;
        }
        sink.flush().context("writing the state")?;
        let got = hex::encode(md5.finalize());
        if written != meta.size || got != meta.md5 {
            bail!(
                "the download of version {} of {:?} is damaged ({written} bytes with MD5 {got}, expected {} bytes with MD5 {}); try again",
                meta.version,
                state.name,
                meta.size,
                meta.md5
            );
        }
        Ok(())
    })
    .await?;
    if let Some(f) = file {
        errln!(
            "wrote version {} of {:?} ({}) to {}",
            meta.version,
            state.name,
            size(meta.size),
            f.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn changed_since_takes_times_and_durations() {
        assert_eq!(
            since("2026-11-22T11:00:00+01:00").unwrap(),
            "2026-11-22T10:00:00Z"
        );
        let two_hours_ago = Timestamp::parse_rfc3339(&since("2h").unwrap()).unwrap();
        let expected = SystemClock.now().millis() - 7_200_000;
        assert!((two_hours_ago.millis() - expected).abs() < 5_000);
        assert!(since("yesterday").is_err());
    }
}
