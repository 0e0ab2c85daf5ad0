//! `statehouse db …`: PostgreSQL databases whose backups statehouse runs, through the API —
//! register, list, change, check, back up now, restore, verify, health.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::{Client, Paging, Query, path};
use crate::output::{Output, age, on_off, or_dash, print_json, print_table, size, str_or};
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
    /// zstd compression level, 1-22 (default 5).
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

#[derive(Subcommand)]
pub enum DbCommand {
    /// Register a PostgreSQL database for backups (workspace admins): where it is, where
    /// backups go, when they run and how long they are kept.
    #[command(after_help = ADD_HELP)]
    Add {
        /// A name for it in statehouse (letters, digits, `-`, `_`, `.`).
        name: String,
        #[arg(long, default_value = "default")]
        workspace: String,
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
        #[arg(long, default_value = "default")]
        workspace: String,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// Show one database's settings and health (never its password).
    Show {
        name: String,
        #[arg(long, default_value = "default")]
        workspace: String,
        #[command(flatten)]
        output: Output,
    },
    /// Change a database (workspace admins): what is given replaces its value, the rest is
    /// kept; retention rules are changed one by one. A new host or port needs the password
    /// again (--password-stdin, or in --url) or --no-password.
    #[command(after_help = ADD_HELP)]
    Change {
        name: String,
        #[arg(long, default_value = "default")]
        workspace: String,
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
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Check a database now: reachable, server version, the pg_dump to be used, the databases
    /// a whole-server backup would take, privilege warnings, uptime. Exits non-zero when it
    /// cannot be reached.
    Check {
        name: String,
        #[arg(long, default_value = "default")]
        workspace: String,
        #[command(flatten)]
        output: Output,
    },
    /// Back a database up now (workspace editors) and wait, with a progress bar; prints the
    /// finished backups (with --whole-server: the server's globals — roles, memberships,
    /// tablespaces — and one per database). Exits non-zero when a backup failed, with the
    /// reason.
    Backup {
        name: String,
        #[arg(long, default_value = "default")]
        workspace: String,
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
        #[arg(long, default_value = "default")]
        workspace: String,
        #[command(flatten)]
        output: Output,
    },
    /// Create a read-only login role for backups on the database's server (workspace
    /// admins), and by default connect as it from now on. Its password is printed once, alone
    /// on the last line of stdout.
    ReadonlyRole {
        name: String,
        #[arg(long, default_value = "default")]
        workspace: String,
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
        #[arg(long, default_value = "default")]
        workspace: String,
        /// Checks to show (default 20).
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[command(flatten)]
        output: Output,
    },
}

// ---- parsing ---------------------------------------------------------------------------------

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

fn cron_schedule(expression: &str, timezone: Option<&str>) -> Value {
    let mut schedule = json!({"every": "cron", "expression": expression.trim()});
    if let (Some(tz), Some(fields)) = (timezone, schedule.as_object_mut()) {
        fields.insert("timezone".into(), json!(tz.trim()));
    }
    schedule
}

/// `7` → `Some(7)`, `none` → `None`.
fn count_or_none(option: &str, text: &str) -> Result<Option<u32>> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    text.trim().parse::<u32>().map(Some).map_err(|_| {
        anyhow::anyhow!("--{option} {text:?} is not a whole number (or `none` to drop the rule)")
    })
}

/// `50G`, `800M`, `1.5T`, `1024` (bytes) → bytes; binary units (`G` = GiB).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let bad =
        || anyhow::anyhow!("size {text:?} is not a size such as 50G, 800M or 1.5T (binary units)");
    let number: f64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(bad()),
    };
    let bytes = number * (1u64 << shift) as f64;
    if bytes.is_nan() || bytes < 1.0 || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// `a,b` and repeated options → one list.
fn patterns(values: &[String]) -> Vec<String> {
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
    fn body(&self, current: Option<&Value>) -> Result<Map<String, Value>> {
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

// ---- display ---------------------------------------------------------------------------------

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

fn describe_connection(c: &Value) -> String {
    format!(
        "{}@{}:{}/{}",
        str_or(&c["user"], "?"),
        str_or(&c["host"], "?"),
        c["port"].as_u64().unwrap_or(5432),
        str_or(&c["database"], "?")
    )
}

fn describe_mode(mode: &Value) -> String {
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

fn describe_retention(r: &Value) -> String {
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

fn health_cell(d: &Value) -> String {
    let health = str_or(&d["health"], "unknown");
    match d["consecutive_failures"].as_i64() {
        Some(n) if n > 0 => format!("{health} ({n} failed)"),
        _ => health,
    }
}

const DB_HEADERS: [&str; 8] = [
    "NAME",
    "CONNECTION",
    "MODE",
    "TARGET",
    "SCHEDULE",
    "NEXT BACKUP",
    "HEALTH",
    "ENABLED",
];

fn db_row(d: &Value) -> Vec<String> {
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

fn db_fields(d: &Value) -> Vec<(&'static str, String)> {
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
fn describe_exclusions(exclude: &Value) -> String {
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

fn percent(v: &Value) -> String {
    v.as_f64()
        .map(|p| format!("{p}%"))
        .unwrap_or_else(|| "-".into())
}

fn uptime_text(u: &Value) -> String {
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

// ---- commands ----------------------------------------------------------------------------------

pub async fn run(client: &Client, cmd: DbCommand) -> Result<()> {
    match cmd {
        DbCommand::Add {
            name,
            workspace,
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
            workspace,
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
            workspace,
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
            workspace,
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
        DbCommand::Delete { name, workspace } => {
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
            workspace,
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
            workspace,
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
            workspace,
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
            workspace,
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
            workspace,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
