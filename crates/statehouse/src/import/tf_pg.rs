//! `statehouse import tf-pg`: copy every workspace of Terraform's `pg` backend into statehouse.
//!
//! The `pg` backend keeps one row per Terraform workspace in `<schema>.states(name, data)`.
//! Everything is read and checked first; nothing is written unless every row is importable.

use anyhow::{Context, Result, bail};
use clap::Args;
use sqlx::Row;
use sqlx::postgres::PgPoolOptions;
use statehouse_core::access::Principal;
use statehouse_core::model::WriteOutcome;
use statehouse_core::names::StateName;
use statehouse_core::statefile;

use crate::config::{Config, redact_url};
use crate::instance;

#[derive(Args)]
pub struct TfPgArgs {
    /// Connection URL of the database the `pg` backend uses (its `conn_str`).
    #[arg(long)]
    conn: String,
    /// The backend's `schema_name`.
    #[arg(long, default_value = "terraform_remote_state")]
    schema: String,
    /// statehouse workspace to import into.
    #[arg(long)]
    workspace: String,
    /// Prepended to every state name, e.g. `legacy/` (Terraform workspace `prod` → `legacy/prod`).
    #[arg(long, default_value = "")]
    prefix: String,
}

pub async fn tf_pg(config: &Config, args: TfPgArgs) -> Result<()> {
    if args.schema.is_empty()
        || !args
            .schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        bail!("--schema must be a plain identifier (letters, digits, '_')");
    }
    let instance = instance::open(config, instance::Access::Existing).await?;
    let services = &instance.services;
    services.workspace(&args.workspace).await?;

    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&args.conn)
        .await
        .with_context(|| {
            format!(
                "connecting to the pg backend database {}",
                redact_url(&args.conn)
            )
        })?;
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT name, data FROM \"{}\".states ORDER BY name",
        args.schema
    ));
    let rows = sqlx::query(sql)
        .fetch_all(&pool)
        .await
        .with_context(|| format!("reading {}.states (is --schema right?)", args.schema))?;

    let mut plan = Vec::new();
    let mut problems = Vec::new();
    for row in &rows {
        let name: String = row.try_get("name")?;
        let data: Option<String> = row.try_get("data")?;
        let target = format!("{}{}", args.prefix, name);
        let data = match data.filter(|d| !d.trim().is_empty()) {
            Some(d) => d,
            None => {
                errln!("skip  {name}: no state stored");
                continue;
            }
        };
        if let Err(e) = StateName::parse(&target) {
            problems.push(format!("{name}: {e}"));
            continue;
        }
        if let Err(e) = statefile::inspect(data.as_bytes()) {
            problems.push(format!("{name}: {e}"));
            continue;
        }
        plan.push((name, target, data));
    }
    if !problems.is_empty() {
        bail!(
            "nothing was imported; fix these rows first (or use --prefix):\n  {}",
            problems.join("\n  ")
        );
    }

    let operator = Principal {
        token_name: "import-tf-pg".into(),
        ..Principal::local_operator()
    };
    let (mut imported, mut unchanged, mut failed) = (0, 0, 0);
    for (name, target, data) in plan {
        match services
            .write_state(
                &operator,
                &args.workspace,
                &target,
                data.into_bytes(),
                None,
                None,
            )
            .await
        {
            Ok(WriteOutcome::Created(v)) => {
                imported += 1;
                errln!(
                    "ok    {name} -> {}/{target} (version {}, serial {})",
                    args.workspace,
                    v.version_no,
                    v.serial
                );
            }
            Ok(WriteOutcome::Unchanged(_)) => {
                unchanged += 1;
                errln!(
                    "same  {name} -> {}/{target} (already identical)",
                    args.workspace
                );
            }
            Err(e) => {
                failed += 1;
                errln!("FAIL  {name} -> {}/{target}: {e}", args.workspace);
            }
        }
    }
    outln!("imported {imported}, unchanged {unchanged}, failed {failed}")?;
    if failed > 0 {
        bail!("{failed} states were not imported (see above)");
    }
    Ok(())
}
