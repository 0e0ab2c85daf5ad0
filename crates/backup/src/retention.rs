//! Which successful backups to delete: keep the last N, keep those younger than a duration,
//! keep grandfather-father-son buckets (the newest backup of each of the last N days, weeks,
//! months, years that have one), then cap the total size. A backup survives if any rule keeps
//! it; the size cap then removes the oldest survivors. The newest backup is never deleted.

use chrono::Datelike;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use statehouse_core::clock::Timestamp;
use statehouse_core::{Error, Result};

use crate::schedule::in_zone;

/// A database's retention policy. With no rule set, every backup is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Keep the newest N backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Keep backups younger than this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_days: Option<u32>,
    /// Grandfather-father-son counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// Total stored size the kept backups may take; the oldest go first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_bytes: Option<u64>,
}

/// A backup retention deletes, and why (for the log, the audit entry and the event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub id: String,
    /// `retention: kept by no rule (keep-last 3, keep-daily 14)` or
    /// `retention: max-total-size 50.0 GiB (…)`.
    pub reason: String,
}

/// Maps a local time to its calendar bucket (day, ISO week, month or year).
type BucketOf = fn(&chrono::DateTime<Tz>) -> (i32, u32);

/// A successful backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub id: String,
    pub finished_at: Timestamp,
    pub stored_bytes: u64,
}

impl RetentionPolicy {
    fn keeps_by_rule(&self) -> bool {
        self.keep_last.is_some()
            || self.keep_days.is_some()
            || self.keep_daily.is_some()
            || self.keep_weekly.is_some()
            || self.keep_monthly.is_some()
            || self.keep_yearly.is_some()
    }

    pub fn is_empty(&self) -> bool {
        !self.keeps_by_rule() && self.max_total_bytes.is_none()
    }

    pub fn validate(&self) -> Result<()> {
        if self.keep_last == Some(0) {
            return Err(Error::BadRequest(
                "keep_last must be at least 1 (the newest backup is always kept)".into(),
            ));
        }
        if self.max_total_bytes == Some(0) {
            return Err(Error::BadRequest(
                "max_total_bytes must be positive; leave it out for no size cap".into(),
            ));
        }
        Ok(())
    }

    /// The ids of `backups` to delete at `now`; calendar buckets are taken in `tz`.
    pub fn select_for_deletion(&self, backups: &[Kept], now: Timestamp, tz: Tz) -> Vec<String> {
        self.plan_deletions(backups, now, tz)
            .into_iter()
            .map(|d| d.id)
            .collect()
    }

    /// The rules that keep backups, as the CLI spells them (`keep-last 3, keep-daily 14`).
    pub fn describe_rules(&self) -> String {
        [
            ("keep-last", self.keep_last),
            ("keep-days", self.keep_days),
            ("keep-daily", self.keep_daily),
            ("keep-weekly", self.keep_weekly),
            ("keep-monthly", self.keep_monthly),
            ("keep-yearly", self.keep_yearly),
        ]
        .iter()
        .filter_map(|(rule, n)| n.map(|n| format!("{rule} {n}")))
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// What to delete at `now` and why, newest first; calendar buckets are taken in `tz`.
    pub fn plan_deletions(&self, backups: &[Kept], now: Timestamp, tz: Tz) -> Vec<Deletion> {
        self.verdicts(backups, now, tz)
            .into_iter()
            .filter_map(|v| {
                v.deleted_because
                    .map(|reason| Deletion { id: v.id, reason })
            })
            .collect()
    }

    /// Every backup with the rules that keep it, or why it would go, newest first: what a
    /// policy would do to the backups that exist (the preview before saving it).
    pub fn verdicts(&self, backups: &[Kept], now: Timestamp, tz: Tz) -> Vec<Verdict> {
        let mut newest_first: Vec<&Kept> = backups.iter().collect();
        newest_first.sort_by(|a, b| {
            b.finished_at
                .cmp(&a.finished_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        let mut kept_by: Vec<Vec<&'static str>> = vec![Vec::new(); newest_first.len()];
        if self.keeps_by_rule() {
            if let Some(n) = self.keep_last {
                for rules in kept_by.iter_mut().take(n as usize) {
                    rules.push("keep-last");
                }
            }
            if let Some(days) = self.keep_days {
                let cutoff = now.plus_millis(-i64::from(days) * 86_400_000);
                for (b, rules) in newest_first.iter().zip(kept_by.iter_mut()) {
                    if b.finished_at >= cutoff {
                        rules.push("keep-days");
                    }
                }
            }
            let buckets: [(&'static str, Option<u32>, BucketOf); 4] = [
                ("keep-daily", self.keep_daily, |t| (t.year(), t.ordinal())),
                ("keep-weekly", self.keep_weekly, |t| {
                    let w = t.iso_week();
                    (w.year(), w.week())
                }),
                ("keep-monthly", self.keep_monthly, |t| (t.year(), t.month())),
                ("keep-yearly", self.keep_yearly, |t| (t.year(), 0)),
            ];
            for (rule, count, bucket_of) in buckets {
                let Some(count) = count else { continue };
                let mut seen = Vec::new();
                for (b, rules) in newest_first.iter().zip(kept_by.iter_mut()) {
                    if seen.len() >= count as usize {
                        break;
                    }
                    let Some(local) = in_zone(b.finished_at, tz) else {
                        continue;
                    };
                    let bucket = bucket_of(&local);
                    if !seen.contains(&bucket) {
                        seen.push(bucket);
                        rules.push(rule);
                    }
                }
            }
        } else {
            for rules in &mut kept_by {
                rules.push("no rule deletes");
            }
        }
        if let Some(rules) = kept_by.first_mut()
            && rules.is_empty()
        {
            rules.push("newest");
        }

        let not_kept = format!("retention: kept by no rule ({})", self.describe_rules());
        let cap_reason = self.max_total_bytes.map(|cap| {
            format!(
                "retention: max-total-size {} (the newer backups kept take it up)",
                crate::service::human_bytes(cap)
            )
        });
        let mut total: u64 = 0;
        newest_first
            .iter()
            .zip(kept_by)
            .enumerate()
            .map(|(i, (b, rules))| {
                let deleted_because = if rules.is_empty() {
                    Some(not_kept.clone())
                } else {
                    total = total.saturating_add(b.stored_bytes);
                    match (&cap_reason, self.max_total_bytes) {
                        (Some(reason), Some(cap)) if total > cap && i > 0 => Some(reason.clone()),
                        _ => None,
                    }
                };
                Verdict {
                    id: b.id.clone(),
                    kept_by: if deleted_because.is_some() {
                        Vec::new()
                    } else {
                        rules
                    },
                    deleted_because,
                }
            })
            .collect()
    }
}

/// What a retention policy does to one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub id: String,
    /// The rules that keep it (`keep-last`, `keep-daily`, …; `newest` for the newest backup
    /// no rule keeps); empty when it goes.
    pub kept_by: Vec<&'static str>,
    /// Why it goes, when it does.
    pub deleted_because: Option<String>,
}

/// `50G`, `800M`, `1.5T`, `1024` (bytes) → bytes; binary units (`G` = GiB). The CLI's
/// `--max-total-size` and the UI's retention form read sizes this way.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let bad = || {
        Error::BadRequest(format!(
            "size {text:?} is not a size such as 50G, 800M or 1.5T (binary units)"
        ))
    };
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::HashSet;

    const DAY: i64 = 86_400_000;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    /// One backup a day at 02:00 UTC for `days` days ending on 2026-11-22, 100 bytes each;
    /// ids are the dates.
    fn daily_backups(days: i64) -> Vec<Kept> {
        let last = at("2026-11-22T02:00:00Z");
        (0..days)
            .map(|i| {
                let t = last.plus_millis(-i * DAY);
                Kept {
                    id: t.to_rfc3339()[..10].to_owned(),
                    finished_at: t,
                    stored_bytes: 100,
                }
            })
            .collect()
    }

    fn kept_after(policy: &RetentionPolicy, backups: &[Kept]) -> Vec<String> {
        let gone: HashSet<String> = policy
            .select_for_deletion(backups, at("2026-11-22T12:00:00Z"), Tz::UTC)
            .into_iter()
            .collect();
        let mut kept: Vec<String> = backups
            .iter()
            .filter(|b| !gone.contains(&b.id))
            .map(|b| b.id.clone())
            .collect();
        kept.sort();
        kept
    }

    #[test]
    fn no_rules_keep_everything() {
        let backups = daily_backups(10);
        assert_eq!(kept_after(&RetentionPolicy::default(), &backups).len(), 10);
    }

    #[test]
    fn keep_last_and_keep_days() {
        let backups = daily_backups(10);
        let last3 = RetentionPolicy {
            keep_last: Some(3),
            ..Default::default()
        };
        assert_eq!(
            kept_after(&last3, &backups),
            ["2026-11-20", "2026-11-21", "2026-11-22"]
        );
        let days = RetentionPolicy {
            keep_days: Some(2),
            ..Default::default()
        };
        // Younger than 2 days at 2026-11-22T12:00: the 21st and 22nd (the 20th is 2.4 days old).
        assert_eq!(kept_after(&days, &backups), ["2026-11-21", "2026-11-22"]);
    }

    #[test]
    fn rules_are_a_union() {
        let backups = daily_backups(10);
        let policy = RetentionPolicy {
            keep_last: Some(1),
            keep_days: Some(3),
            ..Default::default()
        };
        assert_eq!(
            kept_after(&policy, &backups),
            ["2026-11-20", "2026-11-21", "2026-11-22"]
        );
    }

    #[test]
    fn gfs_keeps_the_newest_of_each_bucket() {
        let backups = daily_backups(400);
        let policy = RetentionPolicy {
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(6),
            keep_yearly: Some(2),
            ..Default::default()
        };
        let kept = kept_after(&policy, &backups);
        // 7 days (16th–22nd); weekly: newest of ISO weeks 47 (22nd, a Sunday), 46 (15th),
        // 45 (8th), 44 (1st); monthly: 22 Nov, 31 Oct, 30 Sep, 31 Aug, 31 Jul, 30 Jun;
        // yearly: 2026 (22 Nov), 2025 (31 Dec).
        let expected = [
            "2025-12-31",
            "2026-06-30",
            "2026-07-31",
            "2026-08-31",
            "2026-09-30",
            "2026-10-31",
            "2026-11-01",
            "2026-11-08",
            "2026-11-15",
            "2026-11-16",
            "2026-11-17",
            "2026-11-18",
            "2026-11-19",
            "2026-11-20",
            "2026-11-21",
            "2026-11-22",
        ];
        assert_eq!(kept, expected);
    }

    #[test]
    fn several_backups_a_day_keep_the_newest_of_the_day() {
        let mut backups = daily_backups(3);
        backups.push(Kept {
            id: "late-22".into(),
            finished_at: at("2026-11-22T11:00:00Z"),
            stored_bytes: 100,
        });
        let policy = RetentionPolicy {
            keep_daily: Some(2),
            ..Default::default()
        };
        assert_eq!(kept_after(&policy, &backups), ["2026-11-21", "late-22"]);
    }

    #[test]
    fn gfs_buckets_follow_the_time_zone() {
        // 23:30 UTC on the 21st is already the 22nd in Tokyo: same day as the 22nd's backup.
        let backups = vec![
            Kept {
                id: "a".into(),
                finished_at: at("2026-11-21T23:30:00Z"),
                stored_bytes: 1,
            },
            Kept {
                id: "b".into(),
                finished_at: at("2026-11-22T02:00:00Z"),
                stored_bytes: 1,
            },
        ];
        let policy = RetentionPolicy {
            keep_daily: Some(5),
            ..Default::default()
        };
        let now = at("2026-11-22T12:00:00Z");
        assert!(
            policy
                .select_for_deletion(&backups, now, Tz::UTC)
                .is_empty()
        );
        assert_eq!(
            policy.select_for_deletion(&backups, now, Tz::Asia__Tokyo),
            ["a"]
        );
    }

    #[test]
    fn size_cap_drops_the_oldest_but_never_the_newest() {
        let backups = daily_backups(10);
        let policy = RetentionPolicy {
            max_total_bytes: Some(350),
            ..Default::default()
        };
        assert_eq!(
            kept_after(&policy, &backups),
            ["2026-11-20", "2026-11-21", "2026-11-22"]
        );
        let tiny = RetentionPolicy {
            keep_last: Some(5),
            max_total_bytes: Some(10),
            ..Default::default()
        };
        assert_eq!(kept_after(&tiny, &backups), ["2026-11-22"]);
    }

    #[test]
    fn each_deletion_says_which_rule_let_it_go() {
        let backups = daily_backups(5);
        let policy = RetentionPolicy {
            keep_last: Some(3),
            keep_daily: Some(2),
            max_total_bytes: Some(250),
            ..Default::default()
        };
        let plan = policy.plan_deletions(&backups, at("2026-11-22T12:00:00Z"), Tz::UTC);
        let reasons: Vec<(&str, &str)> = plan
            .iter()
            .map(|d| (d.id.as_str(), d.reason.as_str()))
            .collect();
        let cap = "retention: max-total-size 250 B (the newer backups kept take it up)";
        let no_rule = "retention: kept by no rule (keep-last 3, keep-daily 2)";
        assert_eq!(
            reasons,
            [
                ("2026-11-20", cap),
                ("2026-11-19", no_rule),
                ("2026-11-18", no_rule)
            ]
        );
    }

    #[test]
    fn the_newest_backup_survives_every_rule() {
        let old = vec![Kept {
            id: "only".into(),
            finished_at: at("2020-01-01T00:00:00Z"),
            stored_bytes: 1,
        }];
        let policy = RetentionPolicy {
            keep_days: Some(1),
            ..Default::default()
        };
        assert!(
            policy
                .select_for_deletion(&old, at("2026-11-22T00:00:00Z"), Tz::UTC)
                .is_empty()
        );
    }

    #[test]
    fn pointless_policies_are_refused() {
        let zero = RetentionPolicy {
            keep_last: Some(0),
            ..Default::default()
        };
        assert!(zero.validate().is_err());
        assert!(RetentionPolicy::default().validate().is_ok());
    }

    #[test]
    fn verdicts_name_the_rules_that_keep_each_backup() {
        let backups = daily_backups(5);
        let policy = RetentionPolicy {
            keep_last: Some(2),
            keep_weekly: Some(2),
            max_total_bytes: Some(250),
            ..Default::default()
        };
        let verdicts = policy.verdicts(&backups, at("2026-11-22T12:00:00Z"), Tz::UTC);
        let summary: Vec<(String, Vec<&str>, bool)> = verdicts
            .iter()
            .map(|v| (v.id.clone(), v.kept_by.clone(), v.deleted_because.is_some()))
            .collect();
        // Newest first. The 22nd (a Sunday) ends ISO week 47; the 21st–18th are week 47 too,
        // so keep-weekly's second week is not reached; the size cap (250 of 100-byte
        // backups) then drops everything kept after the second.
        assert_eq!(
            summary,
            vec![
                ("2026-11-22".into(), vec!["keep-last", "keep-weekly"], false),
                ("2026-11-21".into(), vec!["keep-last"], false),
                ("2026-11-20".into(), vec![], true),
                ("2026-11-19".into(), vec![], true),
                ("2026-11-18".into(), vec![], true),
            ]
        );
        assert!(
            verdicts[2]
                .deleted_because
                .as_deref()
                .unwrap()
                .contains("kept by no rule")
        );
        let deletions = policy.plan_deletions(&backups, at("2026-11-22T12:00:00Z"), Tz::UTC);
        assert_eq!(deletions.len(), 3, "plan_deletions agrees with verdicts");
        let capped = RetentionPolicy {
            max_total_bytes: Some(250),
            ..Default::default()
        };
        let verdicts = capped.verdicts(&backups, at("2026-11-22T12:00:00Z"), Tz::UTC);
        assert_eq!(verdicts[0].kept_by, vec!["no rule deletes"]);
        assert!(
            verdicts[2]
                .deleted_because
                .as_deref()
                .unwrap()
                .contains("max-total-size")
        );
    }
}
