//! What each `statehouse db` command does: one function per command, against the REST API.

use anyhow::{Result, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::args::WorkspaceArg;
use crate::client::{Client, Query, path};
use crate::database_views::{
    DB_HEADERS, RUN_HEADERS, db_fields, db_row, describe_connection, describe_mode,
    describe_schedule, run_row, uptime_text, verification_reason,
};
use crate::output::{print_json, print_table, str_or};
use crate::progress::{Progress, long_operation, visible};
use crate::settings_input::read_stdin_secret;

use crate::databases::*;

pub(crate) async fn add(client: &Client, args: AddArgs) -> Result<()> {
    let AddArgs {
        name,
        workspace: WorkspaceArg { name: workspace },
        target,
        options,
        disabled,
        output,
    } = args;
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

pub(crate) async fn list(client: &Client, args: ListArgs) -> Result<()> {
    let ListArgs {
        workspace: WorkspaceArg { name: workspace },
        paging,
        output,
    } = args;
    let page = client
        .list(
            &path(["workspaces", &workspace, "databases"]),
            Query::new(),
            &paging,
        )
        .await?;
    output.page(page, "databases", &DB_HEADERS, db_row)
}

pub(crate) async fn show(client: &Client, args: ShowArgs) -> Result<()> {
    let ShowArgs {
        name,
        workspace: WorkspaceArg { name: workspace },
        output,
    } = args;
    let db = client
        .get(
            &path(["workspaces", &workspace, "databases", &name]),
            &Query::new(),
        )
        .await?;
    output.record(db, db_fields)
}

pub(crate) async fn change(client: &Client, args: ChangeArgs) -> Result<()> {
    let ChangeArgs {
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
    } = args;
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
        bail!("nothing to change: give at least one option (see `statehouse db change --help`)");
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

pub(crate) async fn delete(client: &Client, args: DeleteArgs) -> Result<()> {
    let DeleteArgs {
        name,
        workspace: WorkspaceArg { name: workspace },
    } = args;
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

pub(crate) async fn check(client: &Client, args: CheckArgs) -> Result<()> {
    let CheckArgs {
        name,
        workspace: WorkspaceArg { name: workspace },
        output,
    } = args;
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

pub(crate) async fn backup(client: &Client, args: BackupArgs) -> Result<()> {
    let BackupArgs {
        name,
        workspace: WorkspaceArg { name: workspace },
        no_wait,
        quiet,
        output,
    } = args;
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
    let mut progress = Progress::new(visible(output.json, quiet), &format!("backing up {name}"));
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

pub(crate) async fn verify(client: &Client, args: VerifyArgs) -> Result<()> {
    let VerifyArgs {
        backup_id,
        workspace: WorkspaceArg { name: workspace },
        output,
    } = args;
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

pub(crate) async fn readonly_role(client: &Client, args: ReadonlyRoleArgs) -> Result<()> {
    let ReadonlyRoleArgs {
        name,
        workspace: WorkspaceArg { name: workspace },
        role,
        admin_url,
        admin_url_stdin,
        keep_connection,
        output,
    } = args;
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

pub(crate) async fn health(client: &Client, args: HealthArgs) -> Result<()> {
    let HealthArgs {
        name,
        workspace: WorkspaceArg { name: workspace },
        limit,
        output,
    } = args;
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
        errln!("no health checks recorded yet (they run every minute while the server runs)");
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
