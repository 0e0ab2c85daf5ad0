//! The settings of `statehouse db add|change`: the options, and how they become the API's
//! settings object (schedules, retention, sizes, exclusions).

use anyhow::{Result, bail};
use clap::Args;
use serde_json::{Map, Value, json};

use crate::settings_input::read_stdin_secret;
#[derive(Args, Debug, Default)]
pub struct DatabaseOptions {
    /// The connection as a URL: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=…]
    /// (the password is kept encrypted; other users of this machine can see command-line
    /// arguments: prefer --password-stdin).
    #[arg(long, value_name = "URL", conflicts_with_all = ["host", "port", "database", "user"])]
    pub url: Option<String>,
    /// Or the connection as fields: the server's host name or address.
    #[arg(long)]
    pub host: Option<String>,
    /// The server's port (default 5432).
    #[arg(long)]
    pub port: Option<u16>,
    /// The database to back up (the one to connect to with --whole-server, e.g. postgres).
    #[arg(long)]
    pub database: Option<String>,
    /// The role to connect as (a read-only role is enough: see `statehouse db readonly-role`).
    #[arg(long)]
    pub user: Option<String>,
    /// libpq sslmode: disable, allow, prefer, require, verify-ca, verify-full.
    #[arg(long)]
    pub sslmode: Option<String>,
    /// Read the database password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// When backups run: hourly[:MM], "daily HH:MM", "weekly DAY HH:MM", "monthly DAY|last HH:MM".
    #[arg(long, value_name = "SCHEDULE", conflicts_with = "cron")]
    pub schedule: Option<String>,
    /// When backups run, as a five-field cron expression: "m h dom mon dow".
    #[arg(long, value_name = "EXPRESSION")]
    pub cron: Option<String>,
    /// The schedule's time zone (IANA name, e.g. Europe/Berlin; default UTC).
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// Keep the newest N backups (`none`: no such rule).
    #[arg(long, value_name = "N|none")]
    pub keep_last: Option<String>,
    /// Keep backups younger than N days.
    #[arg(long, value_name = "N|none")]
    pub keep_days: Option<String>,
    /// Keep the newest backup of each of the last N days.
    #[arg(long, value_name = "N|none")]
    pub keep_daily: Option<String>,
    /// Keep the newest backup of each of the last N weeks.
    #[arg(long, value_name = "N|none")]
    pub keep_weekly: Option<String>,
    /// Keep the newest backup of each of the last N months.
    #[arg(long, value_name = "N|none")]
    pub keep_monthly: Option<String>,
    /// Keep the newest backup of each of the last N years.
    #[arg(long, value_name = "N|none")]
    pub keep_yearly: Option<String>,
    /// Cap on the total stored size of the kept backups, e.g. 50G, 800M (binary units).
    #[arg(long, value_name = "SIZE|none")]
    pub max_total_size: Option<String>,
    /// Verify each backup right after it succeeds.
    #[arg(long, conflicts_with = "no_verify_after_backup")]
    pub verify_after_backup: bool,
    /// Stop verifying each backup after it succeeds.
    #[arg(long)]
    pub no_verify_after_backup: bool,
    /// Also verify the newest backup on this schedule (same forms as --schedule; `none` to stop).
    #[arg(long, value_name = "SCHEDULE|none")]
    pub verify_schedule: Option<String>,
    /// Back up every database of the server (found at each run; new ones are picked up) and
    /// its globals (roles with their passwords when connecting as a superuser, memberships,
    /// tablespaces), connecting to --database (e.g. postgres).
    #[arg(long, conflicts_with = "single_database")]
    pub whole_server: bool,
    /// Back up only the one database (undoes --whole-server).
    #[arg(long)]
    pub single_database: bool,
    /// With --whole-server: only databases matching this pattern (`*` and `?` wildcards);
    /// repeat or separate with commas.
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// With --whole-server: skip databases matching this pattern; repeat or separate with
    /// commas.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Leave this schema and everything in it out of the backups (pg_dump --exclude-schema;
    /// `*` and `?` wildcards, "Quoted" for an exact name); repeat for several. Given to `db
    /// change`, replaces the list.
    #[arg(long, value_name = "PATTERN")]
    pub exclude_schema: Vec<String>,
    /// Leave these tables with their rows out (pg_dump --exclude-table: TABLE or SCHEMA.TABLE,
    /// wildcards allowed; a bare name means the table on the search path); repeat for several.
    #[arg(long, value_name = "PATTERN")]
    pub exclude_table: Vec<String>,
    /// Back up these tables' definitions but not their rows (pg_dump --exclude-table-data;
    /// restored empty); repeat for several.
    #[arg(long, value_name = "PATTERN")]
    pub exclude_table_data: Vec<String>,
    /// Leave nothing out any more (drops every --exclude-schema/-table/-table-data; those
    /// given with it are kept).
    #[arg(long)]
    pub no_exclusions: bool,
    /// zstd compression level, 1-19 (default 5).
    #[arg(long, value_name = "N")]
    pub zstd_level: Option<i32>,
    /// Further attempts after a failed backup, 0-10 (default 2).
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Do not check the database's health every minute (no uptime, no down/up events).
    #[arg(long, conflicts_with = "health_checks")]
    pub no_health_checks: bool,
    /// Check the database's health again.
    #[arg(long)]
    pub health_checks: bool,
}

/// A schedule as written on the command line → the API's schedule object.
pub fn parse_schedule(text: &str, timezone: Option<&str>) -> Result<Value> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let usage = || {
        anyhow::anyhow!(
            "schedule {text:?} is not one of: hourly, hourly:MM, \"daily HH:MM\", \"weekly DAY HH:MM\", \
             \"monthly DAY|last HH:MM\" (e.g. --schedule \"daily 02:30\"), or use --cron"
        )
    };
    let first = words
        .first()
        .map(|w| w.to_ascii_lowercase())
        .unwrap_or_default();
    let rest = words.get(1..).unwrap_or_default();
    let mut schedule = match (first.as_str(), rest) {
        ("hourly", []) => json!({"every": "hourly", "minute": 0}),
        (hourly, []) if hourly.starts_with("hourly:") => {
            let minute: u8 = hourly["hourly:".len()..].parse().map_err(|_| {
                anyhow::anyhow!(
                    "in {text:?}, the minute after hourly: must be 0-59, e.g. hourly:15"
                )
            })?;
            json!({"every": "hourly", "minute": minute})
        }
        ("daily", [at]) => json!({"every": "daily", "at": at}),
        ("weekly", [day, at]) => json!({"every": "weekly", "weekday": day, "at": at}),
        ("monthly", [day, at]) => json!({"every": "monthly", "day": day, "at": at}),
        ("daily" | "weekly" | "monthly", _) => {
            return Err(usage().context(format!("{first} needs its time of day")));
        }
        _ => return Err(usage()),
    };
    if let (Some(tz), Some(fields)) = (timezone, schedule.as_object_mut()) {
        fields.insert("timezone".into(), json!(tz.trim()));
    }
    Ok(schedule)
}

pub(crate) fn cron_schedule(expression: &str, timezone: Option<&str>) -> Value {
    let mut schedule = json!({"every": "cron", "expression": expression.trim()});
    if let (Some(tz), Some(fields)) = (timezone, schedule.as_object_mut()) {
        fields.insert("timezone".into(), json!(tz.trim()));
    }
    schedule
}

/// `7` → `Some(7)`, `none` → `None`.
pub(crate) fn count_or_none(option: &str, text: &str) -> Result<Option<u32>> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    text.trim().parse::<u32>().map(Some).map_err(|_| {
        anyhow::anyhow!("--{option} {text:?} is not a whole number (or `none` to drop the rule)")
    })
}

/// `50G`, `800M`, `1.5T`, `1024` (bytes) → bytes; binary units (`G` = GiB).
pub fn parse_size(text: &str) -> Result<u64> {
    statehouse_backup::retention::parse_size(text).map_err(|e| anyhow::anyhow!(e))
}

/// `a,b` and repeated options → one list.
pub(crate) fn patterns(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl DatabaseOptions {
    /// The request fields these options set, over `current` (the database's settings, for a
    /// change) — retention, verification and health objects are merged field by field.
    pub(crate) fn body(&self, current: Option<&Value>) -> Result<Map<String, Value>> {
        let mut body = Map::new();
        // Connection.
        if let Some(url) = &self.url {
            body.insert("url".into(), json!(url.trim()));
        } else if self.host.is_some()
            || self.port.is_some()
            || self.database.is_some()
            || self.user.is_some()
            || self.sslmode.is_some()
        {
            let mut connection = current
                .and_then(|c| c["connection"].as_object().cloned())
                .unwrap_or_default();
            let mut set = |key: &str, value: Option<Value>| {
                if let Some(v) = value {
                    connection.insert(key.into(), v);
                }
            };
            set("host", self.host.as_deref().map(|h| json!(h.trim())));
            set("port", self.port.map(|p| json!(p)));
            set(
                "database",
                self.database.as_deref().map(|d| json!(d.trim())),
            );
            set("user", self.user.as_deref().map(|u| json!(u.trim())));
            set("sslmode", self.sslmode.as_deref().map(|s| json!(s.trim())));
            for required in ["host", "database", "user"] {
                if !connection.contains_key(required) {
                    bail!(
                        "the connection needs --{required} (or give it all as --url postgres://USER@HOST:PORT/DATABASE)"
                    );
                }
            }
            body.insert("connection".into(), Value::Object(connection));
        }
        if self.password_stdin {
            body.insert(
                "password".into(),
                json!(read_stdin_secret("the database password")?),
            );
        }
        // Schedule.
        let current_schedule = current.map(|c| &c["schedule"]).filter(|s| s.is_object());
        if let Some(text) = &self.schedule {
            body.insert(
                "schedule".into(),
                parse_schedule(text, self.timezone.as_deref())?,
            );
        } else if let Some(expression) = &self.cron {
            body.insert(
                "schedule".into(),
                cron_schedule(expression, self.timezone.as_deref()),
            );
        } else if let Some(tz) = &self.timezone {
            let Some(mut schedule) = current_schedule.cloned() else {
                bail!("--timezone applies to a schedule: give --schedule or --cron with it");
            };
            schedule["timezone"] = json!(tz.trim());
            body.insert("schedule".into(), schedule);
        }
        // Retention.
        let mut retention = current
            .and_then(|c| c["retention"].as_object().cloned())
            .unwrap_or_default();
        let mut retention_changed = false;
        for (option, key, value) in [
            ("keep-last", "keep_last", &self.keep_last),
            ("keep-days", "keep_days", &self.keep_days),
            ("keep-daily", "keep_daily", &self.keep_daily),
            ("keep-weekly", "keep_weekly", &self.keep_weekly),
            ("keep-monthly", "keep_monthly", &self.keep_monthly),
            ("keep-yearly", "keep_yearly", &self.keep_yearly),
        ] {
            if let Some(text) = value {
                retention_changed = true;
                match count_or_none(option, text)? {
                    Some(n) => retention.insert(key.into(), json!(n)),
                    None => retention.remove(key),
                };
            }
        }
        if let Some(text) = &self.max_total_size {
            retention_changed = true;
            if text.trim().eq_ignore_ascii_case("none") {
                retention.remove("max_total_bytes");
            } else {
                retention.insert("max_total_bytes".into(), json!(parse_size(text)?));
            }
        }
        if retention_changed {
            body.insert("retention".into(), Value::Object(retention));
        }
        // Verification.
        if self.verify_after_backup || self.no_verify_after_backup || self.verify_schedule.is_some()
        {
            let mut verify = current
                .and_then(|c| c["verify"].as_object().cloned())
                .unwrap_or_default();
            if self.verify_after_backup || self.no_verify_after_backup {
                verify.insert("after_backup".into(), json!(self.verify_after_backup));
            }
            match self.verify_schedule.as_deref().map(str::trim) {
                Some(none) if none.eq_ignore_ascii_case("none") => {
                    verify.remove("schedule");
                }
                Some(text) => {
                    let tz = self
                        .timezone
                        .as_deref()
                        .or_else(|| current_schedule.and_then(|s| s["timezone"].as_str()));
                    verify.insert("schedule".into(), parse_schedule(text, tz)?);
                }
                None => {}
            }
            body.insert("verify".into(), Value::Object(verify));
        }
        // Whole server or one database.
        let include = patterns(&self.include);
        let exclude = patterns(&self.exclude);
        let current_mode = current.map(|c| &c["mode"]);
        let server_now = current_mode.is_some_and(|m| m["kind"] == "server");
        if self.single_database {
            body.insert("mode".into(), json!({"kind": "single"}));
        } else if self.whole_server || (server_now && (!include.is_empty() || !exclude.is_empty()))
        {
            let keep = |key: &str, given: Vec<String>| {
                if given.is_empty() {
                    current_mode
                        .filter(|_| server_now)
                        .map(|m| m[key].clone())
                        .unwrap_or_else(|| json!([]))
                } else {
                    json!(given)
                }
            };
            body.insert(
                "mode".into(),
                json!({"kind": "server", "include": keep("include", include), "exclude": keep("exclude", exclude)}),
            );
        } else if !include.is_empty() || !exclude.is_empty() {
            bail!("--include and --exclude choose databases of a whole server: add --whole-server");
        }
        // What backups leave out: each list given replaces the current one.
        let lists = [
            ("schemas", &self.exclude_schema),
            ("tables", &self.exclude_table),
            ("table_data", &self.exclude_table_data),
        ];
        if self.no_exclusions || lists.iter().any(|(_, given)| !given.is_empty()) {
            let mut exclude = match current.and_then(|c| c["exclude"].as_object()) {
                Some(current) if !self.no_exclusions => current.clone(),
                _ => Map::new(),
            };
            for (key, given) in lists {
                if !given.is_empty() {
                    exclude.insert(key.into(), json!(given));
                }
            }
            body.insert("exclude".into(), Value::Object(exclude));
        }
        // Health checks.
        if self.no_health_checks || self.health_checks {
            let mut health = current
                .and_then(|c| c["health"].as_object().cloned())
                .unwrap_or_default();
            health.insert("enabled".into(), json!(self.health_checks));
            body.insert("health".into(), Value::Object(health));
        }
        if let Some(level) = self.zstd_level {
            body.insert("zstd_level".into(), json!(level));
        }
        if let Some(retries) = self.retries {
            body.insert("retries".into(), json!(retries));
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::database_views::describe_schedule;

    #[test]
    fn schedules_read_like_people_write_them() {
        assert_eq!(
            parse_schedule("hourly", None).unwrap(),
            json!({"every": "hourly", "minute": 0})
        );
        assert_eq!(
            parse_schedule("hourly:15", Some("UTC")).unwrap(),
            json!({"every": "hourly", "minute": 15, "timezone": "UTC"})
        );
        assert_eq!(
            parse_schedule("daily 02:30", Some("Europe/Berlin")).unwrap(),
            json!({"every": "daily", "at": "02:30", "timezone": "Europe/Berlin"})
        );
        assert_eq!(
            parse_schedule("weekly sun 03:00", None).unwrap(),
            json!({"every": "weekly", "weekday": "sun", "at": "03:00"})
        );
        assert_eq!(
            parse_schedule("Monthly last 04:00", None).unwrap(),
            json!({"every": "monthly", "day": "last", "at": "04:00"})
        );
        for bad in ["", "daily", "hourly:xx", "yearly 01:00", "weekly 03:00"] {
            assert!(parse_schedule(bad, None).is_err(), "{bad}");
        }
        let schedule = parse_schedule("weekly sun 03:00", Some("Europe/Paris")).unwrap();
        assert_eq!(
            describe_schedule(&schedule),
            "weekly sun 03:00 (Europe/Paris)"
        );
        assert_eq!(
            describe_schedule(&cron_schedule("30 2 * * *", None)),
            "cron \"30 2 * * *\""
        );
        assert_eq!(describe_schedule(&Value::Null), "manual");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_size("50G").unwrap(), 50 << 30);
        assert_eq!(parse_size("800M").unwrap(), 800 << 20);
        assert_eq!(parse_size("1.5T").unwrap(), 3 << 39);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("2 GiB").unwrap(), 2 << 30);
        for bad in ["", "G", "5X", "-1G", "0"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_build_the_request_over_current_settings() {
        let current = json!({
            "connection": {"host": "db", "port": 5432, "database": "shop", "user": "app"},
            "mode": {"kind": "server", "include": ["a*"], "exclude": []},
            "schedule": {"every": "daily", "at": "02:00", "timezone": "UTC"},
            "retention": {"keep_last": 7, "keep_daily": 14},
            "verify": {"after_backup": false},
            "health": {"enabled": true, "interval_secs": 60, "timeout_secs": 5, "down_after": 3}
        });
        let options = DatabaseOptions {
            port: Some(6432),
            timezone: Some("Europe/Berlin".into()),
            keep_last: Some("none".into()),
            keep_weekly: Some("4".into()),
            max_total_size: Some("10G".into()),
            verify_after_backup: true,
            exclude: vec!["tmp,scratch".into()],
            no_health_checks: true,
            ..Default::default()
        };
        let body = Value::Object(options.body(Some(&current)).unwrap());
        assert_eq!(
            body,
            json!({
                "connection": {"host": "db", "port": 6432, "database": "shop", "user": "app"},
                "schedule": {"every": "daily", "at": "02:00", "timezone": "Europe/Berlin"},
                "retention": {"keep_daily": 14, "keep_weekly": 4, "max_total_bytes": 10u64 << 30},
                "verify": {"after_backup": true},
                "mode": {"kind": "server", "include": ["a*"], "exclude": ["tmp", "scratch"]},
                "health": {"enabled": false, "interval_secs": 60, "timeout_secs": 5, "down_after": 3}
            })
        );
        let lonely = DatabaseOptions {
            include: vec!["x".into()],
            ..Default::default()
        };
        assert!(
            lonely.body(None).is_err(),
            "--include without --whole-server"
        );
        let partial = DatabaseOptions {
            host: Some("db".into()),
            ..Default::default()
        };
        assert!(
            partial
                .body(None)
                .unwrap_err()
                .to_string()
                .contains("--database"),
            "a new connection needs all its fields"
        );
        let tz_only = DatabaseOptions {
            timezone: Some("UTC".into()),
            ..Default::default()
        };
        assert!(
            tz_only.body(None).is_err(),
            "--timezone alone has no schedule to apply to"
        );
    }
}
