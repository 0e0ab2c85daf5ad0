//! The WAL checkpointer: checkpoints run in a background task, not inside whichever commit
//! crosses SQLite's automatic threshold (their fsyncs were the POST tail latency).

use std::time::Duration;

use sqlx::sqlite::SqliteConnection;

/// How often the background checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// A WAL seen above this many frames (≈16 MB with 4 KiB pages) is truncated once writes pause.
const TRUNCATE_ABOVE_FRAMES: i64 = 4096;
/// The checkpointer's busy timeout: a `TRUNCATE` checkpoint gives up (and is retried at a later
/// pause) rather than wait longer for the write lock, or hold it longer waiting for readers.
pub(crate) const CHECKPOINTER_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 50";

/// The WAL checkpointer, on its own connection, until the store is dropped (which aborts it).
///
/// Every second a `PASSIVE` checkpoint copies what it can without waiting for (or blocking)
/// readers or writers; once all frames are copied, the next writer restarts the WAL from its
/// beginning, so the file does not grow without bound. Several processes on one file each run
/// one: a `PASSIVE` checkpoint that finds another in progress just reports busy.
///
/// `PASSIVE` never shrinks the file, so after the WAL has been seen above
/// [`TRUNCATE_ABOVE_FRAMES`] a `TRUNCATE` checkpoint resets it to zero bytes — but only at a
/// pause in writing (a tick that finds the WAL fully checkpointed and unchanged since the last
/// tick), because `TRUNCATE` takes the write lock and waits for readers (bounded here to 50 ms by
/// [`CHECKPOINTER_BUSY_TIMEOUT`]) and fsyncs: under sustained writes it would bring back the
/// request-path stalls this task exists to remove.
pub(crate) async fn checkpoint_loop(mut conn: SqliteConnection) {
    let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate
    let mut last_log = -1;
    let mut grew_large = false;
    loop {
        ticks.tick().await;
        let (busy, log, checkpointed) = match checkpoint(&mut conn, PASSIVE).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "SQLite WAL checkpoint (PASSIVE) failed");
                continue;
            }
        };
        grew_large |= log > TRUNCATE_ABOVE_FRAMES;
        let paused = busy == 0 && log == checkpointed && log == last_log;
        last_log = log;
        if grew_large && paused {
            match checkpoint(&mut conn, TRUNCATE).await {
                Ok((0, _, _)) => {
                    grew_large = false;
                    last_log = 0;
                }
                Ok(_) => {
                    tracing::debug!("SQLite WAL checkpoint (TRUNCATE) was busy; retrying later")
                }
                Err(e) => tracing::debug!(error = %e, "SQLite WAL checkpoint (TRUNCATE) failed"),
            }
        }
    }
}

const PASSIVE: &str = "PRAGMA wal_checkpoint(PASSIVE)";
const TRUNCATE: &str = "PRAGMA wal_checkpoint(TRUNCATE)";

/// Runs one `PRAGMA wal_checkpoint(…)`: (busy, frames in the WAL, frames checkpointed).
async fn checkpoint(
    conn: &mut SqliteConnection,
    pragma: &'static str,
) -> sqlx::Result<(i64, i64, i64)> {
    sqlx::query_as(pragma).fetch_one(conn).await
}
