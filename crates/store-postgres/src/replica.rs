//! The optional read replica (`postgres.read_url`): reads that tolerate a little lag (state
//! and version listings, search, metrics, version bodies) go there while it is fresh enough,
//! everything else stays on the primary.
//!
//! Freshness is measured, not assumed: at most every [`SAMPLE_EVERY`] (while such reads come)
//! the primary's WAL position is read at a known moment and compared with what the replica has
//! replayed; once the replica has replayed it, everything committed before that moment is
//! visible there ("fresh as of"). A read uses the replica only if it is fresh as of
//! - at most `read_max_lag` ago (the staleness bound), and
//! - after this process's last committed write (so a client reads its own writes: the
//!   request that wrote has returned before the next one is read).
//!
//! Otherwise, or when the replica does not answer quickly, the read goes to the primary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row};

use statehouse_store_sql::DbError;

use crate::engine::{Side, db_error};

/// How often the replica's freshness is measured while lag-tolerant reads come.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// A replica that does not hand out a connection within this time is skipped for the read.
const REPLICA_ACQUIRE: Duration = Duration::from_millis(500);

pub(crate) struct Replica {
    pub(crate) side: Side,
    max_lag: Duration,
    base: Instant,
    /// Everything the primary committed before this moment (µs after `base`, +1 so that 0
    /// means "never measured") is visible on the replica.
    fresh_as_of: AtomicU64,
    /// When this process's last write committed (µs after `base`, +1).
    last_write: AtomicU64,
    sampled_at: AtomicU64,
    sampling: AtomicBool,
}

impl Replica {
    pub(crate) fn new(side: Side, max_lag: Duration) -> Replica {
        Replica {
            side,
            max_lag,
            base: Instant::now(),
            fresh_as_of: AtomicU64::new(0),
            last_write: AtomicU64::new(0),
            sampled_at: AtomicU64::new(0),
            sampling: AtomicBool::new(false),
        }
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// A write of this process committed just now.
    pub(crate) fn note_write(&self) {
        self.last_write.fetch_max(self.micros(), Ordering::AcqRel);
    }

    /// Whether a lag-tolerant read may go to the replica now.
    pub(crate) fn usable(&self) -> bool {
        let fresh = self.fresh_as_of.load(Ordering::Acquire);
        let bound = u64::try_from(self.max_lag.as_micros()).unwrap_or(u64::MAX);
        fresh != 0
            && fresh >= self.last_write.load(Ordering::Acquire)
            && self.micros().saturating_sub(fresh) <= bound
    }

    pub(crate) async fn acquire(&self) -> Result<PoolConnection<Postgres>, DbError> {
        match tokio::time::timeout(REPLICA_ACQUIRE, self.side.pool.acquire()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(db_error(&self.side.target, e)),
            Err(_) => Err(db_error(&self.side.target, sqlx::Error::PoolTimedOut)),
        }
    }

    /// Measures freshness in the background unless that was done within [`SAMPLE_EVERY`].
    pub(crate) fn sample_soon(self: &Arc<Self>, primary: &PgPool) {
        let due = self
            .micros()
            .saturating_sub(self.sampled_at.load(Ordering::Acquire))
            >= u64::try_from(SAMPLE_EVERY.as_micros()).unwrap_or(u64::MAX);
        if !due || self.sampling.swap(true, Ordering::AcqRel) {
            return;
        }
        self.sampled_at.store(self.micros(), Ordering::Release);
        let this = self.clone();
        let primary = primary.clone();
        tokio::spawn(async move {
            if let Err(e) = this.sample(&primary).await {
                tracing::debug!("read replica freshness not measured: {e}");
            }
            this.sampling.store(false, Ordering::Release);
        });
    }

    async fn sample(&self, primary: &PgPool) -> Result<(), sqlx::Error> {
        let asked_at = self.micros();
        let written: i64 =
            sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
                .fetch_one(primary)
                .await?;
        let mut conn = self
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        let row = sqlx::query(
            "SELECT pg_is_in_recovery(), \
             pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint",
        )
        .fetch_one(&mut *conn)
        .await?;
        let in_recovery: bool = row.try_get(0)?;
        let replayed: Option<i64> = row.try_get(1)?;
        // A replica that is not in recovery (promoted, or not a standby at all) is not fed
        // by the primary any more: never read from it.
        match replayed {
            Some(replayed) if in_recovery && replayed >= written => {
                self.fresh_as_of.fetch_max(asked_at, Ordering::AcqRel);
            }
            _ if !in_recovery => self.fresh_as_of.store(0, Ordering::Release),
            _ => {}
        }
        Ok(())
    }
}
