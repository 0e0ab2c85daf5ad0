//! Is the database reachable? Connect and `SELECT 1` within a deadline.

use std::time::Duration;

use sqlx::Connection;
use tokio::time::Instant;

use crate::connection::{PgConnection, explain};

/// Connects to `connection` and runs `SELECT 1`, all within `timeout` (the connection's own
/// connect timeout does not apply). `Ok` is the round trip's latency; `Err` says in words why
/// the database is not healthy (the outbound policy's refusal, authentication, …; refused,
/// unreachable and silent servers alike).
pub async fn check_health(
    connection: &PgConnection,
    timeout: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    let probe = async {
        // The outer deadline decides (and says so); the inner one is only a backstop.
        let unbounded = PgConnection {
            connect_timeout: timeout.saturating_mul(2),
            ..connection.clone()
        };
        let mut session = unbounded.connect().await.map_err(|e| e.to_string())?;
        let answer: Result<(i32,), _> = sqlx::query_as("SELECT 1").fetch_one(&mut session).await;
        let _ = session.close().await;
        answer.map(|_| ()).map_err(|e| {
            format!(
                "SELECT 1 failed on {}: {}",
                connection.describe(),
                explain(connection, &e)
            )
        })
    };
    match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(reason)) => Err(reason),
        // Said as a refused connection is: a silent port must not read differently.
        Err(_) => Err(connection.unreachable().to_string()),
    }
}
