//! Each registered database's backup figures for `/metrics`: read from the store (so every
//! replica reports the same), with the schedule's interval worked out from its settings, and
//! reused for a few seconds however often `/metrics` is scraped.

use std::sync::Arc;

use statehouse_core::Result;
use statehouse_core::backups::DatabaseFigures;
use statehouse_core::clock::Timestamp;

use super::BackupService;
use crate::settings::DatabaseSettings;

/// How long the figures are reused between scrapes.
pub(super) const FIGURES_TTL_MILLIS: i64 = 5_000;

/// One database's figures, with what its settings say about its schedule.
#[derive(Debug, Clone)]
pub struct DatabaseMetrics {
    pub figures: DatabaseFigures,
    /// Time between two scheduled backups (the next two runs from now); `None` without a
    /// schedule (backups only when asked) or with settings that no longer parse.
    pub schedule_interval_millis: Option<i64>,
}

impl BackupService {
    /// Every registered database's figures, at most [`FIGURES_TTL_MILLIS`] old.
    pub async fn database_metrics(&self) -> Result<Arc<Vec<DatabaseMetrics>>> {
        let now = self.core.now();
        if let Some(cached) = self.figures.get("all", now) {
            return Ok(cached);
        }
        let figures = self.core.backup_store().database_figures().await?;
        let metrics: Vec<DatabaseMetrics> = figures
            .into_iter()
            .map(|figures| DatabaseMetrics {
                schedule_interval_millis: schedule_interval(&figures.settings, now),
                figures,
            })
            .collect();
        let metrics = Arc::new(metrics);
        self.figures.put("all".to_owned(), metrics.clone(), now);
        Ok(metrics)
    }
}

/// The gap between the next two runs of the database's schedule after `now`.
fn schedule_interval(settings: &serde_json::Value, now: Timestamp) -> Option<i64> {
    let schedule = DatabaseSettings::from_json(settings).ok()?.schedule?;
    let first = schedule.next_after(now).ok()?;
    let second = schedule.next_after(first).ok()?;
    Some(second.millis() - first.millis())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::settings::ConnectionSettings;

    #[test]
    fn the_interval_is_the_gap_between_the_next_two_runs() {
        let (connection, _) = ConnectionSettings::from_url("postgres://u@db.example/app").unwrap();
        let mut settings = DatabaseSettings::new(connection);
        let now = Timestamp::parse_rfc3339("2026-03-10T12:00:00Z").unwrap();
        assert_eq!(
            schedule_interval(&settings.to_json().unwrap(), now),
            None,
            "no schedule, no interval"
        );
        settings.schedule = Some(
            serde_json::from_value(serde_json::json!({"every": "daily", "at": "03:15"})).unwrap(),
        );
        assert_eq!(
            schedule_interval(&settings.to_json().unwrap(), now),
            Some(86_400_000)
        );
        settings.schedule =
            Some(serde_json::from_value(serde_json::json!({"every": "hourly"})).unwrap());
        assert_eq!(
            schedule_interval(&settings.to_json().unwrap(), now),
            Some(3_600_000)
        );
    }
}
