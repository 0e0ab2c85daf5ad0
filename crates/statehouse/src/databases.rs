//! `statehouse db …`: PostgreSQL databases whose backups statehouse runs, through the API —
//! register, list, change, check, back up now, restore, verify, health.

use anyhow::{Result, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::args::WorkspaceArg;
use crate::client::{Client, Paging, Query, path};
use crate::database_options::DatabaseOptions;
use crate::database_views::{
    DB_HEADERS, RUN_HEADERS, db_fields, db_row, describe_connection, describe_mode,
    describe_schedule, run_row, uptime_text, verification_reason,
};
use crate::output::{Output, print_json, print_table, str_or};
use crate::progress::{Progress, long_operation, visible};
use crate::settings_input::read_stdin_secret;

const ADD_HELP: &str = "\
Schedules (times are HH:MM, 24-hour, in --timezone, default UTC):
  hourly | hourly:MM            every hour (at MM minutes past)
  daily HH:MM                   every day
  weekly DAY HH:MM              DAY: mon, tue, wed, thu, fri, sat, sun
  monthly DAY|last HH:MM        DAY: 1-28, or last for the month's last day
  --cron \"m h dom mon dow\"      anything else, e.g. --cron \"30 2 * * 1-5\"
Without a schedule, backups run only with `statehouse db backup`.

Retention: a backup is kept while any --keep-* rule keeps it; --max-total-size then deletes
the oldest until the rest fit. The newest successful backup is never deleted.

Examples:
  statehouse db add shop --url postgres://backup@db.example.com/shop --password-stdin \\
      --target s3 --schedule \"daily 02:30\" --timezone Europe/Berlin --keep-daily 14 --keep-monthly 12
  statehouse db add cluster --host db.example.com --user postgres --database postgres \\
      --whole-server --exclude 'scratch_*' --target nas --schedule hourly:15 --keep-last 48
  statehouse db check shop && statehouse db backup shop";

/// Connection and backup settings shared by `db add` and `db change`.
#[derive(Subcommand)]
pub enum DbCommand {
    /// Register a PostgreSQL database for backups (workspace admins): where it is, where
    /// backups go, when they run and how long they are kept.
    #[command(after_help = ADD_HELP)]
    Add {
        /// A name for it in statehouse (letters, digits, `-`, `_`, `.`).
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// The storage target backups go to (see `statehouse target add`).
        #[arg(long)]
        target: String,
        #[command(flatten)]
        options: DatabaseOptions,
        /// Register it switched off (no scheduled backups or health checks).
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        output: Output,
    },
    /// List the workspace's databases: schedule, next backup, health.
    List {
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// Show one database's settings and health (never its password).
    Show {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        output: Output,
    },
    /// Change a database (workspace admins): what is given replaces its value, the rest is
    /// kept; retention rules are changed one by one. A new host or port needs the password
    /// again (--password-stdin, or in --url) or --no-password.
    #[command(after_help = ADD_HELP)]
    Change {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// A new name.
        #[arg(long, value_name = "NEW_NAME")]
        rename: Option<String>,
        /// Another storage target for new backups (stored ones stay where they are).
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        options: DatabaseOptions,
        /// Remove the schedule: backups run only when asked.
        #[arg(long, conflicts_with_all = ["schedule", "cron"])]
        no_schedule: bool,
        /// Remove the stored password.
        #[arg(long, conflicts_with = "password_stdin")]
        no_password: bool,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Switch off scheduled backups and health checks (manual backups still work).
        #[arg(long)]
        disable: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Unregister a database (workspace admins); refused while it has backups (delete them
    /// with `statehouse backup delete` first).
    Delete {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
    },
    /// Check a database now: reachable, server version, the pg_dump to be used, the databases
    /// a whole-server backup would take, privilege warnings, uptime. Exits non-zero when it
    /// cannot be reached.
    Check {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        output: Output,
    },
    /// Back a database up now (workspace editors) and wait, with a progress bar; prints the
    /// finished backups (with --whole-server: the server's globals — roles, memberships,
    /// tablespaces — and one per database). Exits non-zero when a backup failed, with the
    /// reason.
    Backup {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// Queue the backup for the server's workers and return at once.
        #[arg(long)]
        no_wait: bool,
        /// No progress bar.
        #[arg(long, short = 'q')]
        quiet: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Restore a backup (workspace admins) into its database (default), another database of
    /// the same server (--into, created when missing) or another server (--url), with a
    /// progress bar; a globals backup onto its server; or a whole server (--whole-server).
    /// Exits non-zero when the restore fails.
    ///
    /// By default existing objects are dropped first (pg_restore --clean --if-exists) and
    /// ownership is not restored (--no-owner), except by --whole-server, which restores the
    /// roles first. A database that has objects, or a server that has roles, is overwritten
    /// only with --force (on a terminal you are asked, shown the database and server).
    /// Backups the server cannot decrypt need --identity or --passphrase-stdin.
    Restore(crate::restores::RestoreArgs),
    /// Verify a backup now (workspace editors): a scratch restore with row counts when a
    /// verification server is set, else decrypt + checksum + pg_restore --list (or the
    /// checksum only when the server cannot decrypt). Exits non-zero when it fails.
    Verify {
        /// The backup's id.
        backup_id: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        output: Output,
    },
    /// Create a read-only login role for backups on the database's server (workspace
    /// admins), and by default connect as it from now on. Its password is printed once, alone
    /// on the last line of stdout.
    ReadonlyRole {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// The new role's name.
        #[arg(long, value_name = "ROLE", default_value = "statehouse_backup")]
        role: String,
        /// A connection allowed to create roles and grant, used for this call only:
        /// postgres://ADMIN:PASSWORD@HOST/DATABASE. Prefer --admin-url-stdin.
        #[arg(long, value_name = "URL", required_unless_present = "admin_url_stdin")]
        admin_url: Option<String>,
        /// Read the admin connection URL from stdin.
        #[arg(long, conflicts_with = "admin_url")]
        admin_url_stdin: bool,
        /// Keep connecting as the current role (only create the new one).
        #[arg(long)]
        keep_connection: bool,
        #[command(flatten)]
        output: Output,
    },
    /// A database's uptime (last 24 h, 7 d, 30 d) and its recent health checks, newest first.
    Health {
        name: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// Checks to show (default 20).
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[command(flatten)]
        output: Output,
    },
}

pub async fn run(client: &Client, cmd: DbCommand) -> Result<()> {
    match cmd {
        DbCommand::Add {
            name,
            workspace: WorkspaceArg { name: workspace },
            target,
            options,
            disabled,
            output,
        } => {
            if options.url.is_none() && options.host.is_none() {
                bail!(
                    "give the connection: --url postgres://USER@HOST:PORT/DATABASE, or --host, --database and --user"
                );
            }
            let mut body = options.body(None)?;
            body.insert("name".into(), json!(name));
            body.insert("target".into(), json!(target));
            body.insert("enabled".into(), json!(!disabled));
            let created = client
                .json(
                    Method::POST,
                    &path(["workspaces", &workspace, "databases"]),
                    &Query::new(),
                    Some(&Value::Object(body)),
                )
                .await?;
            let s = &created["settings"];
            let next = match created["next_backup_at"].as_str() {
                Some(at) => format!(", next backup {at}"),
                None => String::new(),
            };
            output.done(
                &created,
                &format!(
                    "registered database {:?} ({}, {}) with target {:?}, schedule {}{next}; \
                     check it with `statehouse db check {}`",
                    str_or(&created["name"], &name),
                    describe_connection(&s["connection"]),
                    describe_mode(&s["mode"]),
                    str_or(&created["target"], &target),
                    describe_schedule(&s["schedule"]),
                    str_or(&created["name"], &name),
                ),
            )
        }
        DbCommand::List {
            workspace: WorkspaceArg { name: workspace },
            paging,
            output,
        } => {
            let page = client
                .list(
                    &path(["workspaces", &workspace, "databases"]),
                    Query::new(),
                    &paging,
                )
                .await?;
            output.page(page, "databases", &DB_HEADERS, db_row)
        }
        DbCommand::Show {
            name,
            workspace: WorkspaceArg { name: workspace },
            output,
        } => {
            let db = client
                .get(
                    &path(["workspaces", &workspace, "databases", &name]),
                    &Query::new(),
                )
                .await?;
            output.record(db, db_fields)
        }
        DbCommand::Change {
            name,
            workspace: WorkspaceArg { name: workspace },
            rename,
            target,
            options,
            no_schedule,
            no_password,
            enable,
            disable,
            output,
        } => {
            let at = path(["workspaces", &workspace, "databases", &name]);
            let current = client.get(&at, &Query::new()).await?;
            let mut body = options.body(Some(&current["settings"]))?;
            if let Some(new_name) = rename {
                body.insert("name".into(), json!(new_name));
            }
            if let Some(target) = target {
                body.insert("target".into(), json!(target));
            }
            if no_schedule {
                body.insert("clear_schedule".into(), json!(true));
            }
            if no_password {
                body.insert("password".into(), json!(""));
            }
            if enable || disable {
                body.insert("enabled".into(), json!(enable));
            }
            if body.is_empty() {
                bail!(
                    "nothing to change: give at least one option (see `statehouse db change --help`)"
                );
            }
            let changed = client
                .json(
                    Method::PATCH,
                    &at,
                    &Query::new(),
                    Some(&Value::Object(body)),
                )
                .await?;
            output.done(
                &changed,
                &format!(
                    "changed database {:?}; schedule {}{}",
                    str_or(&changed["name"], &name),
                    describe_schedule(&changed["settings"]["schedule"]),
                    changed["next_backup_at"]
                        .as_str()
                        .map(|at| format!(", next backup {at}"))
                        .unwrap_or_default()
                ),
            )
        }
        DbCommand::Delete {
            name,
            workspace: WorkspaceArg { name: workspace },
        } => {
            client
                .json(
                    Method::DELETE,
                    &path(["workspaces", &workspace, "databases", &name]),
                    &Query::new(),
                    None,
                )
                .await?;
            errln!("unregistered database {name:?}");
            Ok(())
        }
        DbCommand::Check {
            name,
            workspace: WorkspaceArg { name: workspace },
            output,
        } => {
            let report = client
                .json(
                    Method::POST,
                    &path(["workspaces", &workspace, "databases", &name, "check"]),
                    &Query::new(),
                    None,
                )
                .await?;
            let reachable = report["reachable"].as_bool() == Some(true);
            output.record(report.clone(), |r: &Value| {
                let list = |k: &str| {
                    r[k].as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                        .unwrap_or_default()
                };
                let mut fields = vec![
                    ("database", str_or(&r["database"], "")),
                    (
                        "reachable",
                        if r["reachable"] == true {
                            format!("yes ({} ms)", r["latency_ms"].as_u64().unwrap_or(0))
                        } else {
                            "NO".into()
                        },
                    ),
                    ("status", str_or(&r["status"], "-")),
                    ("server version", str_or(&r["server_version"], "-")),
                    ("pg_dump", str_or(&r["pg_dump"], "-")),
                    ("uptime", uptime_text(&r["uptime"])),
                ];
                if let Some(error) = r["error"].as_str() {
                    fields.insert(2, ("error", error.to_owned()));
                }
                let databases = list("databases");
                if !databases.is_empty() {
                    fields.push(("databases", databases.join(", ")));
                }
                let warnings = list("warnings");
                if warnings.is_empty() {
                    fields.push(("warnings", "none".into()));
                }
                for w in warnings {
                    fields.push(("warning", w.to_owned()));
                }
                fields
            })?;
            if !reachable {
                bail!(
                    "database {name:?} is not reachable: {}",
                    report["error"].as_str().unwrap_or("no reason given")
                );
            }
            Ok(())
        }
        DbCommand::Backup {
            name,
            workspace: WorkspaceArg { name: workspace },
            no_wait,
            quiet,
            output,
        } => {
            let at = path(["workspaces", &workspace, "databases", &name, "backups"]);
            if no_wait {
                let queued = client
                    .json(
                        Method::POST,
                        &at,
                        &Query::new().with("wait", Some(false)),
                        None,
                    )
                    .await?;
                return output.done(
                    &queued,
                    &format!(
                        "queued backup {} of {name:?}; follow it with `statehouse backup show {}`",
                        str_or(&queued["id"], "?"),
                        str_or(&queued["id"], "ID")
                    ),
                );
            }
            let mut progress =
                Progress::new(visible(output.json, quiet), &format!("backing up {name}"));
            let runs = long_operation(
                client,
                Method::POST,
                &at,
                &Query::new(),
                None,
                &mut progress,
            )
            .await?;
            progress.finish();
            let runs_list = runs.as_array().cloned().unwrap_or_default();
            if output.json {
                print_json(&runs)?;
            } else {
                print_table(&RUN_HEADERS, runs_list.iter().map(run_row).collect())?;
            }
            let failed: Vec<String> = runs_list
                .iter()
                .filter(|r| r["status"] != "succeeded")
                .map(|r| {
                    format!(
                        "backup {} of {} failed: {}",
                        str_or(&r["id"], "?"),
                        if r["kind"] == "globals" {
                            format!("the globals of {name:?}")
                        } else {
                            str_or(&r["db_name"], &name)
                        },
                        str_or(&r["error"], "no reason given")
                    )
                })
                .collect();
            if !failed.is_empty() {
                bail!("{}", failed.join("\n"));
            }
            for r in &runs_list {
                if r["verification_ok"] == false {
                    errln!(
                        "warning: backup {} succeeded but its verification failed; see `statehouse backup show {}`",
                        str_or(&r["id"], "?"),
                        str_or(&r["id"], "ID")
                    );
                }
            }
            errln!(
                "{} backup{} of {name:?} succeeded",
                runs_list.len(),
                if runs_list.len() == 1 { "" } else { "s" }
            );
            Ok(())
        }
        DbCommand::Restore(args) => crate::restores::run(client, args).await,
        DbCommand::Verify {
            backup_id,
            workspace: WorkspaceArg { name: workspace },
            output,
        } => {
            let verification = client
                .json(
                    Method::POST,
                    &path(["workspaces", &workspace, "backups", &backup_id, "verify"]),
                    &Query::new(),
                    None,
                )
                .await?;
            let ok = verification["ok"].as_bool() == Some(true);
            output.record(verification.clone(), |v: &Value| {
                vec![
                    ("backup", str_or(&v["backup_id"], "")),
                    ("level", str_or(&v["level"], "")),
                    ("ok", if ok { "yes" } else { "NO" }.into()),
                    ("at", str_or(&v["at"], "")),
                    ("detail", verification_reason(v)),
                ]
            })?;
            if !ok {
                bail!(
                    "backup {backup_id} failed verification: {}",
                    verification_reason(&verification)
                );
            }
            Ok(())
        }
        DbCommand::ReadonlyRole {
            name,
            workspace: WorkspaceArg { name: workspace },
            role,
            admin_url,
            admin_url_stdin,
            keep_connection,
            output,
        } => {
            let admin_url = match admin_url {
                Some(url) if !admin_url_stdin => url,
                _ => read_stdin_secret("the admin connection URL")?,
            };
            let created = client
                .json(
                    Method::POST,
                    &path([
                        "workspaces",
                        &workspace,
                        "databases",
                        &name,
                        "readonly-role",
                    ]),
                    &Query::new(),
                    Some(&json!({
                        "admin_url": admin_url.trim(),
                        "role": role,
                        "use_for_backups": !keep_connection,
                    })),
                )
                .await?;
            if output.json {
                return print_json(&created);
            }
            let Some(password) = created["password"].as_str() else {
                bail!(
                    "the server's answer has no password (is the CLI much older or newer than the server?)"
                );
            };
            errln!(
                "created read-only role {:?}{}; its password is shown once",
                str_or(&created["role"], &role),
                if created["used_for_backups"] == true {
                    format!(", and {name:?} now connects as it")
                } else {
                    String::new()
                }
            );
            outln!("{password}")?;
            Ok(())
        }
        DbCommand::Health {
            name,
            workspace: WorkspaceArg { name: workspace },
            limit,
            output,
        } => {
            let history = client
                .get(
                    &path(["workspaces", &workspace, "databases", &name, "health"]),
                    &Query::new().with("limit", Some(limit)),
                )
                .await?;
            if output.json {
                return print_json(&history);
            }
            outln!("uptime: {}", uptime_text(&history["uptime"]))?;
            let checks = history["checks"]["items"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if checks.is_empty() {
                errln!(
                    "no health checks recorded yet (they run every minute while the server runs)"
                );
                return Ok(());
            }
            print_table(
                &["AT", "OK", "LATENCY", "ERROR"],
                checks
                    .iter()
                    .map(|c| {
                        vec![
                            str_or(&c["at"], ""),
                            if c["ok"] == true { "yes" } else { "NO" }.into(),
                            c["latency_ms"]
                                .as_i64()
                                .map(|ms| format!("{ms} ms"))
                                .unwrap_or_else(|| "-".into()),
                            str_or(&c["error"], ""),
                        ]
                    })
                    .collect(),
            )?;
            Ok(())
        }
    }
}
