//! When backups run: hourly, daily at, weekly at, monthly at, or a cron expression, each in
//! a time zone. Pure functions of a given time (the caller's clock), so tests use fixed times.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};
use statehouse_core::clock::Timestamp;
use statehouse_core::{Error, Result};

/// A run whose due time passed more than this long ago was missed (no server was running):
/// it runs once as a catch-up, not once per missed period.
pub const CATCH_UP_AFTER_MILLIS: i64 = 5 * 60_000;

/// How often a backup runs. Times of day are `HH:MM` in the schedule's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "every", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Every hour at `minute` past.
    Hourly {
        #[serde(default)]
        minute: u8,
    },
    Daily {
        at: String,
    },
    /// `weekday`: `mon` … `sun` (or full English names).
    Weekly {
        weekday: String,
        at: String,
    },
    /// `day`: 1–28, or `last` for the month's last day.
    Monthly {
        day: String,
        at: String,
    },
    /// Five fields (minute hour day-of-month month day-of-week), or `@daily`-style aliases.
    Cron {
        expression: String,
    },
}

/// A schedule with its time zone (IANA name, default `UTC`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    #[serde(flatten)]
    pub schedule: Schedule,
    #[serde(default = "utc_name")]
    pub timezone: String,
}

fn utc_name() -> String {
    "UTC".to_owned()
}

impl ScheduleSpec {
    /// Checks the schedule and returns the next run strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Result<Timestamp> {
        let tz = parse_timezone(&self.timezone)?;
        let cron = self.schedule.cron()?;
        let start = DateTime::<Utc>::from_timestamp_millis(after.millis())
            .ok_or_else(|| Error::Internal(format!("time {} out of range", after.millis())))?
            .with_timezone(&tz);
        let next = cron.find_next_occurrence(&start, false).map_err(|e| {
            Error::BadRequest(format!(
                "schedule {} never runs after {} ({e})",
                self.describe(),
                after.to_rfc3339()
            ))
        })?;
        Ok(Timestamp(next.with_timezone(&Utc).timestamp_millis()))
    }

    /// The next `count` runs after `after`, each as a time and as the wall-clock text in the
    /// schedule's time zone (`Mon 2026-12-07 02:30 CET`): what a form shows before saving.
    pub fn next_runs(&self, after: Timestamp, count: usize) -> Result<Vec<(Timestamp, String)>> {
        let tz = parse_timezone(&self.timezone)?;
        let mut runs = Vec::with_capacity(count);
        let mut from = after;
        for _ in 0..count {
            let next = self.next_after(from)?;
            let local = in_zone(next, tz)
                .map(|t| t.format("%a %Y-%m-%d %H:%M %Z").to_string())
                .unwrap_or_else(|| next.to_rfc3339());
            runs.push((next, local));
            from = next;
        }
        Ok(runs)
    }

    /// Validates the schedule (the same check `next_after` makes).
    pub fn validate(&self) -> Result<()> {
        parse_timezone(&self.timezone)?;
        self.schedule.cron().map(|_| ())
    }

    /// Human words, e.g. `daily at 02:30 (Europe/Paris)`.
    pub fn describe(&self) -> String {
        let what = match &self.schedule {
            Schedule::Hourly { minute } => format!("hourly at minute {minute}"),
            Schedule::Daily { at } => format!("daily at {at}"),
            Schedule::Weekly { weekday, at } => format!("weekly on {weekday} at {at}"),
            Schedule::Monthly { day, at } => format!("monthly on day {day} at {at}"),
            Schedule::Cron { expression } => format!("cron {expression:?}"),
        };
        format!("{what} ({})", self.timezone)
    }
}

impl Schedule {
    /// The schedule as a cron pattern (seconds field included, always 0).
    fn cron(&self) -> Result<Cron> {
        let pattern = match self {
            Schedule::Hourly { minute } => {
                if *minute > 59 {
                    return Err(Error::BadRequest(format!(
                        "hourly minute {minute} is out of range; use 0-59"
                    )));
                }
                format!("0 {minute} * * * *")
            }
            Schedule::Daily { at } => {
                let (h, m) = parse_time_of_day(at)?;
                format!("0 {m} {h} * * *")
            }
            Schedule::Weekly { weekday, at } => {
                let (h, m) = parse_time_of_day(at)?;
                let day = parse_weekday(weekday)?;
                format!("0 {m} {h} * * {day}")
            }
            Schedule::Monthly { day, at } => {
                let (h, m) = parse_time_of_day(at)?;
                let day = parse_month_day(day)?;
                format!("0 {m} {h} {day} * *")
            }
            Schedule::Cron { expression } => {
                let fields = expression.split_whitespace().count();
                let trimmed = expression.trim();
                if trimmed.starts_with('@') {
                    trimmed.to_owned()
                } else if fields == 5 {
                    format!("0 {trimmed}")
                } else {
                    return Err(Error::BadRequest(format!(
                        "cron expression {expression:?} has {fields} fields; write five \
                         (minute hour day-of-month month day-of-week), e.g. \"30 2 * * *\""
                    )));
                }
            }
        };
        Cron::from_str(&pattern).map_err(|e| {
            Error::BadRequest(format!(
                "schedule is not valid ({e}); pattern was {pattern:?}"
            ))
        })
    }
}

/// Whether a run due at `due` and found at `now` was missed during downtime.
pub fn is_catch_up(due: Timestamp, now: Timestamp) -> bool {
    now.millis().saturating_sub(due.millis()) > CATCH_UP_AFTER_MILLIS
}

pub fn parse_timezone(name: &str) -> Result<Tz> {
    Tz::from_str(name.trim()).map_err(|_| {
        Error::BadRequest(format!(
            "unknown time zone {name:?}; use an IANA name such as UTC, Europe/Berlin or America/New_York"
        ))
    })
}

fn parse_time_of_day(text: &str) -> Result<(u32, u32)> {
    let bad = || {
        Error::BadRequest(format!(
            "time of day {text:?} is not HH:MM (24-hour), e.g. 02:30"
        ))
    };
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok((h, m))
}

fn parse_weekday(text: &str) -> Result<&'static str> {
    let lower = text.trim().to_ascii_lowercase();
    let days = [
        ("mon", "monday", "MON"),
        ("tue", "tuesday", "TUE"),
        ("wed", "wednesday", "WED"),
        ("thu", "thursday", "THU"),
        ("fri", "friday", "FRI"),
        ("sat", "saturday", "SAT"),
        ("sun", "sunday", "SUN"),
    ];
    days.iter()
        .find(|(short, long, _)| lower == *short || lower == *long)
        .map(|(_, _, cron)| *cron)
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "weekday {text:?} is not one of mon, tue, wed, thu, fri, sat, sun"
            ))
        })
}

fn parse_month_day(text: &str) -> Result<String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("last") {
        return Ok("L".to_owned());
    }
    match text.parse::<u32>() {
        Ok(day @ 1..=28) => Ok(day.to_string()),
        _ => Err(Error::BadRequest(format!(
            "day of month {text:?} must be 1-28 or \"last\" (days 29-31 do not exist in every month)"
        ))),
    }
}

/// Local calendar helpers for retention buckets.
/// Every IANA time zone name a schedule may use (for a form's suggestions).
pub fn timezone_names() -> impl Iterator<Item = &'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())
}

pub(crate) fn in_zone(t: Timestamp, tz: Tz) -> Option<DateTime<Tz>> {
    tz.timestamp_millis_opt(t.millis()).single()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn spec(schedule: Schedule, tz: &str) -> ScheduleSpec {
        ScheduleSpec {
            schedule,
            timezone: tz.to_owned(),
        }
    }

    #[test]
    fn each_kind_finds_its_next_run() {
        let now = at("2026-11-22T10:15:00Z"); // a Sunday
        let hourly = spec(Schedule::Hourly { minute: 5 }, "UTC");
        assert_eq!(hourly.next_after(now).unwrap(), at("2026-11-22T11:05:00Z"));
        let daily = spec(Schedule::Daily { at: "02:30".into() }, "UTC");
        assert_eq!(daily.next_after(now).unwrap(), at("2026-11-23T02:30:00Z"));
        let weekly = spec(
            Schedule::Weekly {
                weekday: "wed".into(),
                at: "23:00".into(),
            },
            "UTC",
        );
        assert_eq!(weekly.next_after(now).unwrap(), at("2026-11-25T23:00:00Z"));
        let monthly = spec(
            Schedule::Monthly {
                day: "1".into(),
                at: "04:00".into(),
            },
            "UTC",
        );
        assert_eq!(monthly.next_after(now).unwrap(), at("2026-12-01T04:00:00Z"));
        let last = spec(
            Schedule::Monthly {
                day: "last".into(),
                at: "04:00".into(),
            },
            "UTC",
        );
        assert_eq!(last.next_after(now).unwrap(), at("2026-11-30T04:00:00Z"));
        let cron = spec(
            Schedule::Cron {
                expression: "*/20 * * * *".into(),
            },
            "UTC",
        );
        assert_eq!(cron.next_after(now).unwrap(), at("2026-11-22T10:20:00Z"));
    }

    #[test]
    fn the_next_five_runs_read_in_the_schedules_zone() {
        let daily = spec(Schedule::Daily { at: "02:30".into() }, "Europe/Berlin");
        // Summer time ends on Sunday 2026-10-25, when 02:30 happens twice: the run takes the
        // first (still summer time); the runs stay at 02:30 local.
        let runs = daily.next_runs(at("2026-10-23T12:00:00Z"), 5).unwrap();
        let texts: Vec<&str> = runs.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Sat 2026-10-24 02:30 CEST",
                "Sun 2026-10-25 02:30 CEST",
                "Mon 2026-10-26 02:30 CET",
                "Tue 2026-10-27 02:30 CET",
                "Wed 2026-10-28 02:30 CET",
            ]
        );
        assert_eq!(runs[0].0, at("2026-10-24T00:30:00Z"));
        assert_eq!(runs[1].0, at("2026-10-25T00:30:00Z"));
        assert_eq!(runs[2].0, at("2026-10-26T01:30:00Z"));
    }

    #[test]
    fn next_run_is_strictly_after_the_given_time() {
        let daily = spec(Schedule::Daily { at: "10:15".into() }, "UTC");
        let now = at("2026-11-22T10:15:00Z");
        assert_eq!(daily.next_after(now).unwrap(), at("2026-11-23T10:15:00Z"));
    }

    #[test]
    fn time_zones_shift_the_run_and_follow_daylight_saving() {
        let daily = spec(Schedule::Daily { at: "02:30".into() }, "Europe/Berlin");
        // Winter: UTC+1.
        assert_eq!(
            daily.next_after(at("2026-11-22T10:00:00Z")).unwrap(),
            at("2026-11-23T01:30:00Z")
        );
        // Summer: UTC+2.
        assert_eq!(
            daily.next_after(at("2026-07-01T10:00:00Z")).unwrap(),
            at("2026-07-02T00:30:00Z")
        );
    }

    #[test]
    fn bad_schedules_are_refused_with_reasons() {
        let cases = [
            (Schedule::Hourly { minute: 60 }, "0-59"),
            (Schedule::Daily { at: "25:00".into() }, "HH:MM"),
            (Schedule::Daily { at: "noon".into() }, "HH:MM"),
            (
                Schedule::Weekly {
                    weekday: "funday".into(),
                    at: "01:00".into(),
                },
                "weekday",
            ),
            (
                Schedule::Monthly {
                    day: "31".into(),
                    at: "01:00".into(),
                },
                "last",
            ),
            (
                Schedule::Cron {
                    expression: "* * *".into(),
                },
                "five",
            ),
            (
                Schedule::Cron {
                    expression: "99 * * * *".into(),
                },
                "not valid",
            ),
        ];
        for (schedule, words) in cases {
            let err = spec(schedule.clone(), "UTC").validate().unwrap_err();
            assert!(
                matches!(&err, Error::BadRequest(m) if m.contains(words)),
                "{schedule:?}: {err}"
            );
        }
        let err = spec(Schedule::Hourly { minute: 0 }, "Mars/Olympus")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("IANA"), "{err}");
    }

    #[test]
    fn schedules_read_and_write_as_json() {
        let text = r#"{"every":"weekly","weekday":"mon","at":"03:00","timezone":"Asia/Tokyo"}"#;
        let spec: ScheduleSpec = serde_json::from_str(text).unwrap();
        assert_eq!(spec.timezone, "Asia/Tokyo");
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        let utc: ScheduleSpec = serde_json::from_str(r#"{"every":"hourly"}"#).unwrap();
        assert_eq!(utc.timezone, "UTC");
        assert_eq!(utc.schedule, Schedule::Hourly { minute: 0 });
    }

    #[test]
    fn lateness_beyond_a_few_minutes_is_a_catch_up() {
        let due = at("2026-11-22T02:00:00Z");
        assert!(!is_catch_up(due, at("2026-11-22T02:01:00Z")));
        assert!(is_catch_up(due, at("2026-11-22T09:00:00Z")));
    }
}
