//! How `statehouse db …` and `backup …` show databases, schedules, health and backup runs.

use serde_json::Value;

use crate::output::{age, on_off, or_dash, size, str_or};

/// A schedule object in words: `daily 02:30 (Europe/Berlin)`.
pub fn describe_schedule(schedule: &Value) -> String {
    if !schedule.is_object() {
        return "manual".into();
    }
    let s = |k: &str| schedule[k].as_str().unwrap_or("?").to_owned();
    let what = match schedule["every"].as_str().unwrap_or("") {
        "hourly" => match schedule["minute"].as_u64().unwrap_or(0) {
            0 => "hourly".to_owned(),
            m => format!("hourly:{m:02}"),
        },
        "daily" => format!("daily {}", s("at")),
        "weekly" => format!("weekly {} {}", s("weekday"), s("at")),
        "monthly" => format!("monthly {} {}", s("day"), s("at")),
        "cron" => format!("cron {:?}", s("expression")),
        other => other.to_owned(),
    };
    match schedule["timezone"].as_str() {
        Some(tz) if tz != "UTC" => format!("{what} ({tz})"),
        _ => what,
    }
}

pub(crate) fn describe_connection(c: &Value) -> String {
    format!(
        "{}@{}:{}/{}",
        str_or(&c["user"], "?"),
        str_or(&c["host"], "?"),
        c["port"].as_u64().unwrap_or(5432),
        str_or(&c["database"], "?")
    )
}

pub(crate) fn describe_mode(mode: &Value) -> String {
    if mode["kind"] != "server" {
        return "one database".into();
    }
    let list = |k: &str| {
        mode[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let mut text = "whole server".to_owned();
    if !list("include").is_empty() {
        text.push_str(&format!(", include {}", list("include")));
    }
    if !list("exclude").is_empty() {
        text.push_str(&format!(", exclude {}", list("exclude")));
    }
    text
}

pub(crate) fn describe_retention(r: &Value) -> String {
    let mut rules = Vec::new();
    for (key, label) in [
        ("keep_last", "last"),
        ("keep_days", "days"),
        ("keep_daily", "daily"),
        ("keep_weekly", "weekly"),
        ("keep_monthly", "monthly"),
        ("keep_yearly", "yearly"),
    ] {
        if let Some(n) = r[key].as_u64() {
            rules.push(format!("{label} {n}"));
        }
    }
    if let Some(max) = r["max_total_bytes"].as_i64() {
        rules.push(format!("at most {}", size(max)));
    }
    if rules.is_empty() {
        "keep everything".into()
    } else {
        format!("keep {}", rules.join(", "))
    }
}

pub(crate) fn health_cell(d: &Value) -> String {
    let health = str_or(&d["health"], "unknown");
    match d["consecutive_failures"].as_i64() {
        Some(n) if n > 0 => format!("{health} ({n} failed)"),
        _ => health,
    }
}

pub(crate) const DB_HEADERS: [&str; 8] = [
    "NAME",
    "CONNECTION",
    "MODE",
    "TARGET",
    "SCHEDULE",
    "NEXT BACKUP",
    "HEALTH",
    "ENABLED",
];

pub(crate) fn db_row(d: &Value) -> Vec<String> {
    let s = &d["settings"];
    vec![
        str_or(&d["name"], ""),
        describe_connection(&s["connection"]),
        describe_mode(&s["mode"]),
        str_or(&d["target"], ""),
        describe_schedule(&s["schedule"]),
        str_or(&d["next_backup_at"], "-"),
        health_cell(d),
        on_off(d["enabled"].as_bool().unwrap_or(false)),
    ]
}

pub(crate) fn db_fields(d: &Value) -> Vec<(&'static str, String)> {
    let s = &d["settings"];
    let verify = &s["verify"];
    let health = &s["health"];
    vec![
        ("name", str_or(&d["name"], "")),
        ("id", str_or(&d["id"], "")),
        ("connection", describe_connection(&s["connection"])),
        ("sslmode", str_or(&s["connection"]["sslmode"], "default")),
        (
            "password",
            if d["has_password"] == true {
                "set"
            } else {
                "none"
            }
            .into(),
        ),
        ("mode", describe_mode(&s["mode"])),
        ("target", str_or(&d["target"], "")),
        ("schedule", describe_schedule(&s["schedule"])),
        ("next backup", str_or(&d["next_backup_at"], "-")),
        ("retention", describe_retention(&s["retention"])),
        ("leaves out", describe_exclusions(&s["exclude"])),
        (
            "verify",
            format!(
                "after each backup {}, scheduled {}",
                on_off(verify["after_backup"] == true),
                if verify["schedule"].is_object() {
                    describe_schedule(&verify["schedule"])
                } else {
                    "off".into()
                }
            ),
        ),
        ("zstd level", or_dash(s["zstd_level"].as_i64())),
        ("retries", or_dash(s["retries"].as_u64())),
        (
            "health checks",
            if health["enabled"] == false {
                "off".into()
            } else {
                format!(
                    "every {}, down after {} failures",
                    age(health["interval_secs"].as_i64().unwrap_or(60)),
                    health["down_after"].as_u64().unwrap_or(3)
                )
            },
        ),
        ("health", health_cell(d)),
        ("last check", str_or(&d["last_check_at"], "-")),
        ("last check error", str_or(&d["last_check_error"], "-")),
        ("enabled", on_off(d["enabled"].as_bool().unwrap_or(false))),
        ("created", str_or(&d["created_at"], "")),
        ("updated", str_or(&d["updated_at"], "")),
    ]
}

/// What backups leave out: `schemas scratch; tables public.cache_*; rows of audit_log`.
pub(crate) fn describe_exclusions(exclude: &Value) -> String {
    let list = |key: &str| {
        exclude[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let parts: Vec<String> = [
        ("schemas", list("schemas")),
        ("tables", list("tables")),
        ("rows of", list("table_data")),
    ]
    .into_iter()
    .filter(|(_, patterns)| !patterns.is_empty())
    .map(|(what, patterns)| format!("{what} {}", patterns.join(", ")))
    .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join("; ")
    }
}

pub(crate) fn percent(v: &Value) -> String {
    v.as_f64()
        .map(|p| format!("{p}%"))
        .unwrap_or_else(|| "-".into())
}

pub(crate) fn uptime_text(u: &Value) -> String {
    format!(
        "24h {}, 7d {}, 30d {}",
        percent(&u["last_24h"]),
        percent(&u["last_7d"]),
        percent(&u["last_30d"])
    )
}

/// The table of backup runs `db backup` and `backup list` print.
pub const RUN_HEADERS: [&str; 9] = [
    "ID", "DATABASE", "DB", "STATUS", "TRIGGER", "QUEUED", "DURATION", "SIZE", "VERIFIED",
];

/// What a backup holds: the database dumped, or `(globals)` for a whole server's roles and
/// tablespaces.
pub fn dumped(b: &Value) -> String {
    if b["kind"] == "globals" {
        "(globals)".into()
    } else {
        str_or(&b["db_name"], "-")
    }
}

pub fn run_row(b: &Value) -> Vec<String> {
    vec![
        str_or(&b["id"], ""),
        str_or(&b["database"], ""),
        dumped(b),
        str_or(&b["status"], ""),
        str_or(&b["trigger"], ""),
        str_or(&b["queued_at"], ""),
        b["duration_ms"]
            .as_i64()
            .map(|ms| age((ms + 999) / 1000))
            .unwrap_or_else(|| "-".into()),
        b["stored_bytes"]
            .as_i64()
            .map(size)
            .unwrap_or_else(|| "-".into()),
        match (
            b["verification_ok"].as_bool(),
            b["verification_level"].as_str(),
        ) {
            (Some(true), Some(level)) => format!("ok ({level})"),
            (Some(false), Some(level)) => format!("FAILED ({level})"),
            _ => "-".into(),
        },
    ]
}

/// Why a verification failed, from its detail.
pub fn verification_reason(v: &Value) -> String {
    let detail = &v["detail"];
    let mut reason = detail["detail"]
        .as_str()
        .or_else(|| detail["error"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| detail.to_string());
    if let Some(mismatches) = detail["mismatches"].as_array().filter(|m| !m.is_empty()) {
        reason.push_str(&format!(
            " ({} tables' row counts differ)",
            mismatches.len()
        ));
    }
    reason
}
