//! A look at the PostgreSQL database a configuration names, for `statehouse doctor`: one
//! connection, read-only queries, nothing created or migrated.

use std::time::Duration;

use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};
use statehouse_core::store_probe::StoreProbe;
use statehouse_core::{Error, Result};

use crate::conninfo::{self, place};
use crate::failover::Failover;
use crate::{MIGRATOR, PgSettings, quoted_schema};

/// Connects once (within `settings.acquire_timeout`, at least 5 s) and reads what
/// [`StoreProbe`] holds. With several hosts, the one statehouse would use is probed (the
/// first that fits `target_session_attrs`).
pub async fn probe(settings: &PgSettings) -> Result<StoreProbe> {
    let mut info = conninfo::parse(&settings.url)?;
    let wait = settings.acquire_timeout.max(Duration::from_secs(5));
    let all = conninfo::describe(&info);
    let index = if info.hosts.len() > 1 {
        let failover = Failover::new(info.clone(), "doctor", wait);
        failover
            .find()
            .await
            .map_err(|why| Error::Unavailable(format!("PostgreSQL at {all}: {why}")))?
    } else {
        0
    };
    let options = info
        .hosts
        .swap_remove(index)
        .application_name("statehouse doctor");
    let target = if info.hosts.is_empty() {
        all
    } else {
        format!("{} (chosen of {all})", place(&options))
    };
    let schema = settings.schema.as_deref().map(quoted_schema).transpose()?;
    let failed = |e: sqlx::Error| Error::store(format!("PostgreSQL at {target}: {e}"));
    let mut conn = match tokio::time::timeout(wait, options.connect()).await {
        Ok(conn) => conn.map_err(|e| {
            Error::Unavailable(format!("cannot connect to PostgreSQL at {target}: {e}"))
        })?,
        Err(_) => {
            return Err(Error::Unavailable(format!(
                "PostgreSQL at {target}: no answer within {} s",
                wait.as_secs()
            )));
        }
    };
    if let Some(schema) = &schema {
        sqlx::raw_sql(AssertSqlSafe(format!("SET search_path TO {schema}")))
            .execute(&mut conn)
            .await
            .map_err(failed)?;
    }
    let row = sqlx::query(
        "SELECT current_setting('server_version'), pg_is_in_recovery(), \
                (extract(epoch FROM clock_timestamp()) * 1000)::bigint, \
                to_regclass('workspaces') IS NOT NULL, \
                to_regclass('_sqlx_migrations') IS NOT NULL",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(failed)?;
    let (version, in_recovery, now, holds_store, has_migrations): (String, bool, i64, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let applied: Vec<i64> = if has_migrations {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .map_err(failed)?
    } else {
        Vec::new()
    };
    let _ = conn.close().await;
    let place = match &settings.schema {
        Some(schema) => format!("PostgreSQL at {target}, schema {schema:?}"),
        None => format!("PostgreSQL at {target}"),
    };
    Ok(StoreProbe {
        place,
        version: format!("PostgreSQL {version}"),
        holds_store,
        applied,
        known: MIGRATOR.iter().map(|m| m.version).collect(),
        read_only: in_recovery,
        server_now_millis: Some(now),
    })
}
