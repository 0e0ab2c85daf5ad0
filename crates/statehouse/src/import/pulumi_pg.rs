//! `statehouse import pulumi-pg`: copy every object of Pulumi's `postgres://` DIY backend into a
//! workspace, as if Pulumi had PUT each one to the S3 endpoint.
//!
//! The backend (pkg/backend/diy/postgres in pulumi/pulumi) keeps one row per object in
//! `<table>(key TEXT PRIMARY KEY, data JSON NOT NULL, updated_at TIMESTAMPTZ)`, the bytes as
//! `{"data":"<base64>"}`. Pulumi opens it as a go-cloud bucket prefixed with the URL's path
//! (`blob.PrefixedBucket` in pkg/backend/diy/backend.go), so `pulumi login
//! postgres://…/pulumidb` writes keys `pulumidb/.pulumi/…`, and a URL without a database name
//! (credentials and database from `PG*` variables) writes `.pulumi/…`. The importer finds the
//! prefix itself (or takes `--key-prefix`) and drops it: the objects land at the workspace's
//! root, where `pulumi login s3://<workspace>?endpoint=…` finds them.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use clap::Args;
use sqlx::Row;
use sqlx::postgres::PgPoolOptions;
use statehouse_core::access::Principal;

use super::pulumi_objects::{self, PULUMI_DIR, SourceObject};
use crate::config::{Config, redact_url};
use crate::instance;

const DEFAULT_TABLE: &str = "pulumi_state";

#[derive(Args)]
pub struct PulumiPgArgs {
    /// Connection URL of the database Pulumi logged in to (the `pulumi login postgres://…`
    /// URL works as it is; its `table=` parameter is read as --table).
    #[arg(long)]
    conn: String,
    /// The backend's table (Pulumi's `?table=`) [default: pulumi_state]; `schema.table` for a
    /// table outside the search path.
    #[arg(long)]
    table: Option<String>,
    /// statehouse workspace to import into: the bucket Pulumi logs in to afterwards.
    #[arg(long)]
    workspace: String,
    /// Import only the keys under this prefix, taken off every key. Pulumi prefixes keys with
    /// the login URL's database name (`mydb/.pulumi/…`); without this option the one prefix
    /// found in the table is used, and several are refused.
    #[arg(long, value_name = "PREFIX")]
    key_prefix: Option<String>,
}

pub async fn pulumi_pg(config: &Config, args: PulumiPgArgs) -> Result<()> {
    let (conn, table_in_url) = without_table_param(&args.conn);
    let table = args
        .table
        .or(table_in_url)
        .unwrap_or_else(|| DEFAULT_TABLE.to_owned());
    check_table(&table)?;
    let instance = instance::open(config, instance::Access::Existing).await?;
    let services = &instance.services;
    services.workspace(&args.workspace).await?;

    let shown = redact_url(&conn);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&conn)
        .await
        .with_context(|| format!("connecting to Pulumi's state database {shown}"))?;
    // `table` is checked to be a plain (optionally schema-qualified) identifier; unquoted, as
    // Pulumi writes it, so that PostgreSQL folds its case the same way.
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT key, data->>'data' AS data, \
         (EXTRACT(EPOCH FROM updated_at) * 1000)::bigint AS modified_ms \
         FROM {table} ORDER BY key"
    ));
    let rows = sqlx::query(sql)
        .fetch_all(&pool)
        .await
        .with_context(|| format!("reading the table {table} of {shown} (is --table right?)"))?;
    pool.close().await;

    let mut listed = Vec::with_capacity(rows.len());
    for row in &rows {
        let key: String = row.try_get("key")?;
        let data: Option<String> = row.try_get("data")?;
        let modified_ms: Option<i64> = row.try_get("modified_ms")?;
        listed.push((key, data, modified_ms));
    }
    let prefix = match args.key_prefix {
        Some(p) => folder(&p),
        None => only_prefix(listed.iter().map(|(k, _, _)| k.as_str()), &table)?,
    };
    errln!(
        "read {} rows of {table} in {shown}; importing the keys under {}",
        listed.len(),
        if prefix.is_empty() {
            "the table's root".to_owned()
        } else {
            format!("{prefix:?}")
        }
    );

    let mut objects = Vec::new();
    let mut problems = Vec::new();
    let mut outside = 0;
    for (origin, data, modified_ms) in listed {
        let Some(key) = origin.strip_prefix(&prefix).map(str::to_owned) else {
            outside += 1;
            continue;
        };
        let Some(data) = data else {
            problems.push(format!(
                "{origin}: `data` holds no \"data\" field (Pulumi writes {{\"data\":\"<base64>\"}})"
            ));
            continue;
        };
        match base64::engine::general_purpose::STANDARD.decode(data.trim()) {
            Ok(bytes) => objects.push(SourceObject {
                origin,
                key,
                bytes,
                modified_ms,
            }),
            Err(e) => problems.push(format!("{origin}: `data` is not valid base64 ({e})")),
        }
    }
    if outside > 0 {
        errln!("left alone: {outside} rows outside the key prefix {prefix:?}");
    }
    let plan = pulumi_objects::check(objects, problems)?;
    let operator = Principal {
        token_name: "import-pulumi-pg".into(),
        ..Principal::local_operator()
    };
    pulumi_objects::write(services, &operator, &args.workspace, plan).await
}

/// The URL without its `table=` parameter (which PostgreSQL does not know), and that table.
fn without_table_param(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut table = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("table=") {
            Some(t) => {
                table = Some(t.to_owned());
                false
            }
            None => !pair.is_empty(),
        })
        .collect();
    let url = match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    };
    (url, table)
}

/// A table name goes into the SQL text: letters, digits and `_`, with one optional `schema.`.
fn check_table(table: &str) -> Result<()> {
    let parts: Vec<&str> = table.split('.').collect();
    let plain = parts.len() <= 2
        && parts.iter().all(|p| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !plain {
        bail!(
            "--table {table:?} must be a plain table name (letters, digits, '_'), optionally schema.table"
        );
    }
    Ok(())
}

/// `p` as a folder: empty, or ending in one `/`.
fn folder(prefix: &str) -> String {
    let inner = prefix.trim_matches('/');
    match inner.is_empty() {
        true => String::new(),
        false => format!("{inner}/"),
    }
}

/// The prefix in front of `.pulumi/` that every key shares. Keys outside `.pulumi/` are left
/// for the checks to name; several prefixes (two backends in one table) are refused.
fn only_prefix<'k>(keys: impl Iterator<Item = &'k str>, table: &str) -> Result<String> {
    let mut found: std::collections::BTreeMap<&str, usize> = Default::default();
    for key in keys {
        let at = if key.starts_with(PULUMI_DIR) {
            Some(0)
        } else {
            key.find(&format!("/{PULUMI_DIR}")).map(|i| i + 1)
        };
        if let Some(at) = at {
            *found.entry(&key[..at]).or_default() += 1;
        }
    }
    match found.len() {
        0 => bail!(
            "the table {table} holds no objects of Pulumi's DIY backend (no key contains .pulumi/); nothing was imported"
        ),
        1 => Ok(found.into_keys().next().unwrap_or_default().to_owned()),
        _ => {
            let list: Vec<String> = found
                .iter()
                .map(|(p, n)| format!("{:?} ({n} keys)", p.trim_end_matches('/')))
                .collect();
            bail!(
                "the table {table} holds more than one Pulumi backend, under the key prefixes {}; \
                 choose one with --key-prefix (Pulumi uses the login URL's database name); nothing was imported",
                list.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_table_parameter_is_taken_out_of_the_url() {
        assert_eq!(
            without_table_param("postgres://u:p@h/db?sslmode=disable&table=states"),
            (
                "postgres://u:p@h/db?sslmode=disable".to_owned(),
                Some("states".to_owned())
            )
        );
        assert_eq!(
            without_table_param("postgres://h/db?table=t"),
            ("postgres://h/db".to_owned(), Some("t".to_owned()))
        );
        assert_eq!(without_table_param("postgres://h/db").1, None);
    }

    #[test]
    fn table_names_are_plain_identifiers() {
        for good in ["pulumi_state", "pulumi.state", "_t1"] {
            check_table(good).unwrap();
        }
        for bad in ["", "a.b.c", "x; DROP TABLE y", "\"q\"", "1abc", "a."] {
            assert!(check_table(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_prefix_is_found_or_must_be_chosen() {
        let keys = ["db/.pulumi/meta.yaml", "db/.pulumi/stacks/p/s.json", "junk"];
        assert_eq!(only_prefix(keys.into_iter(), "t").unwrap(), "db/");
        assert_eq!(
            only_prefix([".pulumi/meta.yaml"].into_iter(), "t").unwrap(),
            ""
        );
        let err = only_prefix(
            ["a/.pulumi/meta.yaml", ".pulumi/meta.yaml"].into_iter(),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--key-prefix") && err.contains("\"a\""),
            "{err}"
        );
        assert!(only_prefix(["x"].into_iter(), "t").is_err());
        assert_eq!(folder("/db/"), "db/");
        assert_eq!(folder(""), "");
    }
}
