//! The database form's fields as typed, and how they become [`DatabaseSettings`]: the
//! connection, the mode, the schedule preset or cron expression, retention, verification and
//! health. Settings the form does not show (dump exclusions, timeouts, a CA certificate, the
//! verification schedule) are kept as they are.

use serde::Deserialize;
use statehouse_backup::retention::{RetentionPolicy, parse_size};
use statehouse_backup::schedule::{Schedule, ScheduleSpec};
use statehouse_backup::service::DatabaseView;
use statehouse_backup::settings::{ConnectionSettings, DatabaseMode, DatabaseSettings};
use statehouse_core::clock::Timestamp;

use super::database_form::VerdictRow;
use super::format::size;
use super::page::{Refusal, UiError, Viewer};
use super::states::{Choice, choices};
use crate::AppState;

/// Runs shown under the schedule.
const NEXT_RUNS: usize = 5;

const SSL_MODES: [(&str, &str); 7] = [
    ("", "libpq default (prefer)"),
    ("disable", "disable"),
    ("allow", "allow"),
    ("prefer", "prefer"),
    ("require", "require"),
    ("verify-ca", "verify-ca"),
    ("verify-full", "verify-full"),
];

const SCHEDULES: [(&str, &str); 6] = [
    ("none", "No schedule: back up only when asked"),
    ("hourly", "Hourly"),
    ("daily", "Daily"),
    ("weekly", "Weekly"),
    ("monthly", "Monthly"),
    ("cron", "Cron expression"),
];

const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
];

/// The form's fields, as typed. Checkboxes are `Some` when ticked.
#[derive(Debug, Default, Deserialize)]
pub struct DatabaseForm {
    /// `test`, `preview` or `save`: which button was pressed.
    #[serde(default)]
    pub intent: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub target: String,
    /// `url` or `fields`.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: String,
    #[serde(default)]
    pub database: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub sslmode: String,
    #[serde(default)]
    pub password: String,
    pub remove_password: Option<String>,
    /// `single` or `server`.
    #[serde(default)]
    pub mode: String,
    /// Whole-server mode: database name patterns, one per line.
    #[serde(default)]
    pub include: String,
    #[serde(default)]
    pub exclude: String,
    /// `none`, `hourly`, `daily`, `weekly`, `monthly` or `cron`.
    #[serde(default)]
    pub every: String,
    #[serde(default)]
    pub minute: String,
    #[serde(default)]
    pub at: String,
    #[serde(default)]
    pub weekday: String,
    #[serde(default)]
    pub day: String,
    #[serde(default)]
    pub cron: String,
    #[serde(default)]
    pub timezone: String,
    #[serde(default)]
    pub keep_last: String,
    #[serde(default)]
    pub keep_days: String,
    #[serde(default)]
    pub keep_daily: String,
    #[serde(default)]
    pub keep_weekly: String,
    #[serde(default)]
    pub keep_monthly: String,
    #[serde(default)]
    pub keep_yearly: String,
    #[serde(default)]
    pub max_total: String,
    pub verify_after: Option<String>,
    pub health_enabled: Option<String>,
    #[serde(default)]
    pub health_interval: String,
    #[serde(default)]
    pub down_after: String,
    pub enabled: Option<String>,
}

fn number_text<T: ToString>(n: Option<T>) -> String {
    n.map_or_else(String::new, |n| n.to_string())
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An optional whole number typed into `field`.
fn optional<T: std::str::FromStr>(text: &str, field: &str) -> Result<Option<T>, Refusal> {
    match text.trim() {
        "" => Ok(None),
        t => t.parse().map(Some).map_err(|_| {
            Refusal::bad_input(format!(
                "{field}: {t:?} is not a whole number (leave it empty for none)"
            ))
        }),
    }
}

impl DatabaseForm {
    /// A new database: daily at 02:00 UTC; keep every backup of the last 7 days, then one a
    /// week for 4 weeks and one a month for 6 months; health checks on.
    pub fn blank() -> DatabaseForm {
        DatabaseForm {
            source: "url".into(),
            port: "5432".into(),
            mode: "single".into(),
            every: "daily".into(),
            minute: "0".into(),
            at: "02:00".into(),
            weekday: "sun".into(),
            day: "1".into(),
            timezone: "UTC".into(),
            keep_days: "7".into(),
            keep_weekly: "4".into(),
            keep_monthly: "6".into(),
            health_enabled: Some("on".into()),
            health_interval: "60".into(),
            down_after: "3".into(),
            enabled: Some("on".into()),
            ..DatabaseForm::default()
        }
    }

    /// The form of a registered database (its password is never shown).
    pub fn of(db: &DatabaseView) -> DatabaseForm {
        let s = &db.settings;
        let c = &s.connection;
        let mut form = DatabaseForm {
            name: db.name.clone(),
            target: db.target.clone(),
            source: "fields".into(),
            host: c.host.clone(),
            port: c.port.to_string(),
            database: c.database.clone(),
            user: c.user.clone(),
            sslmode: c.sslmode.clone().unwrap_or_default(),
            keep_last: number_text(s.retention.keep_last),
            keep_days: number_text(s.retention.keep_days),
            keep_daily: number_text(s.retention.keep_daily),
            keep_weekly: number_text(s.retention.keep_weekly),
            keep_monthly: number_text(s.retention.keep_monthly),
            keep_yearly: number_text(s.retention.keep_yearly),
            max_total: s
                .retention
                .max_total_bytes
                .map_or_else(String::new, exact_size),
            verify_after: s.verify.after_backup.then(|| "on".into()),
            health_enabled: s.health.enabled.then(|| "on".into()),
            health_interval: s.health.interval_secs.to_string(),
            down_after: s.health.down_after.to_string(),
            enabled: db.enabled.then(|| "on".into()),
            ..DatabaseForm::blank()
        };
        match &s.mode {
            DatabaseMode::Single => form.mode = "single".into(),
            DatabaseMode::Server { include, exclude } => {
                form.mode = "server".into();
                form.include = include.join("\n");
                form.exclude = exclude.join("\n");
            }
        }
        match &s.schedule {
            None => form.every = "none".into(),
            Some(spec) => {
                form.timezone = spec.timezone.clone();
                match &spec.schedule {
                    Schedule::Hourly { minute } => {
                        form.every = "hourly".into();
                        form.minute = minute.to_string();
                    }
                    Schedule::Daily { at } => {
                        form.every = "daily".into();
                        form.at = at.clone();
                    }
                    Schedule::Weekly { weekday, at } => {
                        form.every = "weekly".into();
                        form.weekday = weekday.clone();
                        form.at = at.clone();
                    }
                    Schedule::Monthly { day, at } => {
                        form.every = "monthly".into();
                        form.day = day.clone();
                        form.at = at.clone();
                    }
                    Schedule::Cron { expression } => {
                        form.every = "cron".into();
                        form.cron = expression.clone();
                    }
                }
            }
        }
        form
    }

    pub fn sslmode_choices(&self) -> Vec<Choice> {
        choices(&SSL_MODES, &self.sslmode)
    }

    pub fn schedule_choices(&self) -> Vec<Choice> {
        choices(&SCHEDULES, &self.every)
    }

    pub fn weekday_choices(&self) -> Vec<Choice> {
        choices(&WEEKDAYS, &self.weekday)
    }

    /// The schedule the form asks for (`None`: manual backups only).
    pub fn schedule(&self) -> Result<Option<ScheduleSpec>, Refusal> {
        let at = || self.at.trim().to_owned();
        let schedule = match self.every.as_str() {
            "none" | "" => return Ok(None),
            "hourly" => Schedule::Hourly {
                minute: optional::<u8>(&self.minute, "minute past the hour")?.unwrap_or(0),
            },
            "daily" => Schedule::Daily { at: at() },
            "weekly" => Schedule::Weekly {
                weekday: self.weekday.trim().to_owned(),
                at: at(),
            },
            "monthly" => Schedule::Monthly {
                day: self.day.trim().to_owned(),
                at: at(),
            },
            "cron" => Schedule::Cron {
                expression: self.cron.trim().to_owned(),
            },
            other => {
                return Err(Refusal::bad_input(format!(
                    "schedule {other:?} is not one of none, hourly, daily, weekly, monthly, cron"
                )));
            }
        };
        let timezone = match self.timezone.trim() {
            "" => "UTC".to_owned(),
            tz => tz.to_owned(),
        };
        let spec = ScheduleSpec { schedule, timezone };
        spec.validate()
            .map_err(|e| Refusal::bad_input(e.to_string()))?;
        Ok(Some(spec))
    }

    pub fn retention(&self) -> Result<RetentionPolicy, Refusal> {
        let policy = RetentionPolicy {
            keep_last: optional(&self.keep_last, "keep the last")?,
            keep_days: optional(&self.keep_days, "keep days")?,
            keep_daily: optional(&self.keep_daily, "keep daily")?,
            keep_weekly: optional(&self.keep_weekly, "keep weekly")?,
            keep_monthly: optional(&self.keep_monthly, "keep monthly")?,
            keep_yearly: optional(&self.keep_yearly, "keep yearly")?,
            max_total_bytes: match self.max_total.trim() {
                "" => None,
                text => Some(parse_size(text).map_err(|e| Refusal::bad_input(e.to_string()))?),
            },
        };
        policy
            .validate()
            .map_err(|e| Refusal::bad_input(e.to_string()))?;
        Ok(policy)
    }

    fn connection(
        &self,
        base: Option<&DatabaseSettings>,
    ) -> Result<(ConnectionSettings, Option<String>), Refusal> {
        let typed = Some(self.password.clone()).filter(|p| !p.is_empty());
        let refuse = |e: statehouse_core::Error| Refusal::bad_input(e.to_string());
        let (mut connection, password) = if self.source == "url" {
            if self.url.trim().is_empty() {
                return Err(Refusal::bad_input(
                    "connection URL: give postgres://user@host:5432/database, or choose \"fields\"",
                ));
            }
            let (c, from_url) = ConnectionSettings::from_url(self.url.trim()).map_err(refuse)?;
            (c, typed.or(from_url))
        } else {
            let connection = ConnectionSettings {
                host: self.host.trim().to_owned(),
                port: optional::<u16>(&self.port, "port")?.unwrap_or(5432),
                database: self.database.trim().to_owned(),
                user: self.user.trim().to_owned(),
                sslmode: Some(self.sslmode.trim().to_owned()).filter(|m| !m.is_empty()),
                ca_cert: None,
            };
            connection.validate().map_err(refuse)?;
            (connection, typed)
        };
        // A CA certificate is set through the API or CLI; the form keeps it for the same server.
        if let Some(base) = base
            && base.connection.same_server(&connection)
        {
            connection.ca_cert = base.connection.ca_cert.clone();
        }
        Ok((connection, password))
    }

    /// The settings the form asks for, on top of `base` (a registered database's settings,
    /// whose fields the form does not show are kept), and the password typed (or in the URL).
    pub fn settings(
        &self,
        base: Option<&DatabaseSettings>,
    ) -> Result<(DatabaseSettings, Option<String>), Refusal> {
        let (connection, password) = self.connection(base)?;
        let mut settings = match base {
            Some(base) => DatabaseSettings {
                connection,
                ..base.clone()
            },
            None => DatabaseSettings::new(connection),
        };
        settings.mode = match self.mode.as_str() {
            "server" => DatabaseMode::Server {
                include: lines(&self.include),
                exclude: lines(&self.exclude),
            },
            _ => DatabaseMode::Single,
        };
        settings.schedule = self.schedule()?;
        settings.retention = self.retention()?;
        settings.verify.after_backup = self.verify_after.is_some();
        settings.health.enabled = self.health_enabled.is_some();
        if let Some(secs) = optional(&self.health_interval, "health check every (seconds)")? {
            settings.health.interval_secs = secs;
        }
        if let Some(n) = optional(&self.down_after, "down after failed checks")? {
            settings.health.down_after = n;
        }
        settings
            .validate()
            .map_err(|e| Refusal::bad_input(e.to_string()))?;
        Ok((settings, password))
    }
}

/// The next runs of the schedule typed, in its time zone, or why there are none.
pub fn schedule_runs(form: &DatabaseForm, now: Timestamp) -> (Vec<String>, String) {
    match form.schedule() {
        Ok(None) => (
            Vec::new(),
            "No schedule: backups run only when asked.".into(),
        ),
        Ok(Some(spec)) => match spec.next_runs(now, NEXT_RUNS) {
            Ok(runs) => (
                runs.into_iter().map(|(_, text)| text).collect(),
                String::new(),
            ),
            Err(e) => (Vec::new(), e.to_string()),
        },
        Err(refusal) => (Vec::new(), refusal.message),
    }
}

/// What the retention typed would do to the database's existing backups.
pub async fn preview_retention(
    app: &AppState,
    viewer: &Viewer,
    ws: &str,
    db: &str,
    form: &DatabaseForm,
) -> Result<(Vec<VerdictRow>, String), UiError> {
    let policy = match form.retention() {
        Ok(policy) => policy,
        Err(refusal) => return Ok((Vec::new(), refusal.message)),
    };
    let timezone = form
        .schedule()
        .ok()
        .flatten()
        .map(|s| s.timezone)
        .unwrap_or_else(|| "UTC".into());
    let verdicts = match app
        .backups
        .retention_preview(&viewer.who, ws, db, &policy, Some(&timezone))
        .await
    {
        Ok(verdicts) => verdicts,
        Err(e) => return Ok((Vec::new(), Refusal::of(e, viewer)?.message)),
    };
    let going = verdicts
        .iter()
        .filter(|v| v.deleted_because.is_some())
        .count();
    let note = if verdicts.is_empty() {
        "No successful backups yet: nothing to keep or delete.".into()
    } else {
        format!(
            "With these rules, {} of {} existing backups would be kept and {going} deleted after the next backup.",
            verdicts.len() - going,
            verdicts.len()
        )
    };
    let rows = verdicts
        .into_iter()
        .map(|v| VerdictRow {
            id: v.backup_id,
            database: v.db_name.unwrap_or_else(|| "(globals)".into()),
            finished: v.finished_at,
            size: v.stored_bytes.map_or_else(String::new, size),
            kept_by: v.kept_by.join(", "),
            deleted_because: v.deleted_because.unwrap_or_default(),
        })
        .collect();
    Ok((rows, note))
}

/// A size in the largest binary unit that writes it exactly (`50G`, `800M`, `1234`), so a
/// form saved unchanged keeps the same number of bytes.
fn exact_size(bytes: u64) -> String {
    [("T", 40), ("G", 30), ("M", 20), ("K", 10)]
        .iter()
        .find(|(_, shift)| bytes >= 1 << shift && bytes.is_multiple_of(1 << shift))
        .map_or_else(
            || bytes.to_string(),
            |(unit, shift)| format!("{}{unit}", bytes >> shift),
        )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_show_exactly_and_read_back() {
        for bytes in [50u64 << 30, 800 << 20, 1_234_567, 3 << 39, 1] {
            assert_eq!(parse_size(&exact_size(bytes)).unwrap(), bytes);
        }
        assert_eq!(exact_size(50 << 30), "50G");
    }

    #[test]
    fn presets_become_schedules_and_bad_ones_say_why() {
        let mut form = DatabaseForm::blank();
        form.every = "weekly".into();
        form.weekday = "wed".into();
        form.at = "23:15".into();
        form.timezone = "Europe/Berlin".into();
        let spec = form.schedule().unwrap().unwrap();
        assert_eq!(spec.describe(), "weekly on wed at 23:15 (Europe/Berlin)");
        form.timezone = "Mars/Olympus".into();
        assert!(form.schedule().is_err());
        form.timezone = "UTC".into();
        form.every = "cron".into();
        form.cron = "0 3 * *".into();
        let refused = form.schedule().err().unwrap();
        assert!(refused.message.contains("five"), "{}", refused.message);
        form.every = "none".into();
        assert!(form.schedule().unwrap().is_none());
    }

    #[test]
    fn the_form_keeps_what_it_does_not_show() {
        let mut form = DatabaseForm::blank();
        form.url = "postgres://app:pw@db.example:5432/shop".into();
        let (mut base, password) = form.settings(None).unwrap();
        assert_eq!(password.as_deref(), Some("pw"));
        base.zstd_level = 9;
        base.retries = 5;
        form.keep_last = "x".into();
        assert!(form.settings(Some(&base)).is_err(), "not a number");
        form.keep_last = "3".into();
        form.mode = "server".into();
        form.include = "shop\n  \napp_*\n".into();
        let (changed, _) = form.settings(Some(&base)).unwrap();
        assert_eq!(changed.zstd_level, 9);
        assert_eq!(changed.retries, 5);
        assert_eq!(changed.retention.keep_last, Some(3));
        assert_eq!(
            changed.mode,
            DatabaseMode::Server {
                include: vec!["shop".into(), "app_*".into()],
                exclude: vec![]
            }
        );
    }
}
