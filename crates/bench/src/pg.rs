//! The little the benchmark needs from PostgreSQL directly, through `psql`: the server's
//! version and durability settings for the report, and dropping the throwaway schemas.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// A schema name unique to this run: lowercase letters, digits and `_`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs one SQL statement with `psql`; the trimmed output, or `None` if psql is missing or fails.
pub fn psql(url: &str, sql: &str) -> Option<String> {
    let out = Command::new("psql")
        .args(["-X", "-A", "-t", "-q", "-d", url, "-c", sql])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Best effort: the schemas hold hundreds of MB of benchmark states.
pub fn drop_schema(url: &str, schema: &str) {
    if psql(url, &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).is_none() {
        eprintln!("note: could not drop PostgreSQL schema {schema} (is psql installed?)");
    }
}

/// `PostgreSQL 15.x; fsync=…, synchronous_commit=…` for the report.
pub fn describe(url: &str) -> String {
    let version = psql(url, "SHOW server_version").unwrap_or_else(|| "unknown".into());
    let fsync = psql(url, "SHOW fsync").unwrap_or_else(|| "?".into());
    let sync = psql(url, "SHOW synchronous_commit").unwrap_or_else(|| "?".into());
    format!("PostgreSQL {version} (fsync={fsync}, synchronous_commit={sync})")
}

/// Appends `sslmode=disable` for lib/pq clients (Terraform's `pg` backend requires TLS by
/// default) unless the URL already says.
pub fn without_tls(url: &str) -> String {
    if url.contains("sslmode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}
