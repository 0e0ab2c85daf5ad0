//! The journal on PostgreSQL: audit chain, events, and the deliveries events create (appending
//! and sealing are in [`crate::seal`]).

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use statehouse_core::Result;
use statehouse_core::audit::{AuditEntry, AuditQuery, AuditRecord, ChainHead, Outcome, PruneProof};
use statehouse_core::clock::Timestamp;
use statehouse_core::events::{Event, NewEvent};
use statehouse_core::store::audit::AuditStore;
use statehouse_core::store::nul::{self, Match};
use statehouse_core::store::seal::Round;
use statehouse_core::webhooks::Delivery;

use crate::seal::{lock_head, round_query};
use crate::{PgStore, get};

/// Rows per multi-row INSERT (PostgreSQL allows 65,535 bound values per statement).
const INSERT_CHUNK: usize = 500;

const ENTRY_COLUMNS: &str = "SELECT seq, at, actor, token_id, token_name, source_ip, action, workspace, target, \
    outcome, reason, detail, prev_hash, hash, nul_escaped FROM audit_entries";

fn entry_from(row: &PgRow) -> Result<AuditEntry> {
    let outcome: String = get(row, "outcome")?;
    let esc: bool = get(row, "nul_escaped")?;
    let text = |col: &str| get::<String>(row, col).and_then(|t| nul::original(t, esc));
    let opt = |col: &str| get::<Option<String>>(row, col).and_then(|t| nul::original_opt(t, esc));
    Ok(AuditEntry {
        seq: get(row, "seq")?,
        record: AuditRecord {
            at: Timestamp(get(row, "at")?),
            actor: text("actor")?,
            token_id: opt("token_id")?,
            token_name: opt("token_name")?,
            source_ip: opt("source_ip")?,
            action: text("action")?,
            workspace: opt("workspace")?,
            target: opt("target")?,
            outcome: Outcome::parse(&outcome).map_err(|_| {
                statehouse_core::Error::Internal(format!(
                    "stored audit outcome {outcome:?} is unknown"
                ))
            })?,
            reason: opt("reason")?,
            detail: opt("detail")?,
        },
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}

fn event_from(row: &PgRow) -> Result<Event> {
    let payload: String = get(row, "payload")?;
    let esc: bool = get(row, "nul_escaped")?;
    let text = |col: &str| get::<String>(row, col).and_then(|t| nul::original(t, esc));
    let opt = |col: &str| get::<Option<String>>(row, col).and_then(|t| nul::original_opt(t, esc));
    Ok(Event {
        seq: get(row, "seq")?,
        at: Timestamp(get(row, "at")?),
        kind: text("kind")?,
        workspace_id: opt("workspace_id")?,
        workspace: opt("workspace")?,
        subject: opt("subject")?,
        actor: text("actor")?,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
    })
}

/// `AND column = value`, for rows stored escaped or not (see [`nul::matching`]); PostgreSQL
/// never sees a NUL.
fn push_equals(q: &mut QueryBuilder<Postgres>, column: &str, value: &str) {
    match nul::matching(value) {
        Match::Same(v) => {
            q.push(format!(" AND {column} = ")).push_bind(v);
        }
        Match::EscapedOnly(v) => {
            q.push(format!(" AND nul_escaped AND {column} = "))
                .push_bind(v);
        }
        Match::Either { plain, escaped } => {
            q.push(format!(" AND {column} = CASE WHEN nul_escaped THEN "))
                .push_bind(escaped)
                .push(" ELSE ")
                .push_bind(plain)
                .push(" END");
        }
    }
}

/// `AND column` starts with `prefix`, for rows stored escaped or not.
fn push_starts_with(q: &mut QueryBuilder<Postgres>, column: &str, prefix: &str) {
    let escaped = nul::escape(prefix).into_owned();
    // Rows stored as they are hold no NUL: a prefix with one matches escaped rows only.
    let plain = (!prefix.contains('\0')).then(|| prefix.to_owned());
    q.push(format!(" AND CASE WHEN nul_escaped THEN left({column}, "))
        .push_bind(escaped.chars().count() as i32)
        .push(") = ")
        .push_bind(escaped)
        .push(format!(" ELSE left({column}, "))
        .push_bind(prefix.chars().count() as i32)
        .push(") = ")
        .push_bind(plain)
        .push(" END");
}

pub(crate) async fn insert_deliveries(
    tx: &mut PgConnection,
    deliveries: &[Delivery],
) -> sqlx::Result<()> {
    for chunk in deliveries.chunks(INSERT_CHUNK) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_seq, kind, body, created_at, status, attempts, \
             next_attempt_at, redelivery_of) ",
        );
        q.push_values(chunk, |mut b, d| {
            b.push_bind(d.id.as_str())
                .push_bind(d.webhook_id.as_str())
                .push_bind(d.event_seq)
                .push_bind(d.kind.as_str())
                .push_bind(d.body.as_str())
                .push_bind(d.created_at.millis())
                .push_bind(d.status.as_str())
                .push_bind(d.attempts)
                .push_bind(d.next_attempt_at.map(Timestamp::millis))
                .push_bind(d.redelivery_of.as_deref());
        });
        q.build().execute(&mut *tx).await?;
    }
    Ok(())
}

#[async_trait]
impl AuditStore for PgStore {
    async fn append_journal(
        &self,
        records: &[AuditRecord],
        events: &[NewEvent],
    ) -> Result<Vec<Event>> {
        self.append_rounds(records, events).await
    }

    async fn unsealed_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM journal_pending")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(n as u64)
    }

    async fn audit_head(&self) -> Result<ChainHead> {
        let (last_seq, last_hash, pruned_seq, pruned_hash): (i64, String, i64, String) =
            sqlx::query_as(
                "SELECT last_seq, last_hash, pruned_seq, pruned_hash FROM audit_chain WHERE id = 1",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(ChainHead {
            last_seq,
            last_hash,
            pruned_seq,
            pruned_hash,
        })
    }

    async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut q = QueryBuilder::<Postgres>::new(ENTRY_COLUMNS);
        q.push(" WHERE TRUE");
        if let Some(actor) = &query.actor {
            push_equals(&mut q, "actor", actor);
        }
        if let Some(target) = &query.target {
            push_equals(&mut q, "target", target);
        }
        if let Some((action, prefix)) = query.action_pattern() {
            if prefix {
                push_starts_with(&mut q, "action", &action);
            } else {
                push_equals(&mut q, "action", &action);
            }
        }
        if let Some(ws) = &query.workspace {
            push_equals(&mut q, "workspace", ws);
        }
        if let Some(outcome) = query.outcome {
            q.push(" AND outcome = ").push_bind(outcome.as_str());
        }
        if let Some(since) = query.since {
            q.push(" AND at >= ").push_bind(since.millis());
        }
        if let Some(until) = query.until {
            q.push(" AND at < ").push_bind(until.millis());
        }
        match (query.cursor, query.newest_first) {
            (Some(c), false) => {
                q.push(" AND seq > ").push_bind(c);
            }
            (Some(c), true) => {
                q.push(" AND seq < ").push_bind(c);
            }
            (None, _) => {}
        }
        q.push(if query.newest_first {
            " ORDER BY seq DESC"
        } else {
            " ORDER BY seq"
        });
        q.push(" LIMIT ").push_bind(query.limit.max(1));
        let rows = q
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        rows.iter().map(entry_from).collect()
    }

    async fn prune_audit(&self, before: Timestamp, max: i64, at: Timestamp) -> Result<u64> {
        let mut tx = self.begin().await?;
        let err = |e| self.db_err(e);
        let head = lock_head(&mut tx).await.map_err(err)?;
        let pruned_seq: i64 = sqlx::query_scalar("SELECT pruned_seq FROM audit_chain WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
        // The oldest end, up to (not including) the first entry that is young enough.
        let first_kept: Option<i64> =
            sqlx::query_scalar("SELECT MIN(seq) FROM audit_entries WHERE seq > $1 AND at >= $2")
                .bind(pruned_seq)
                .bind(before.millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
        let upto = first_kept
            .map_or(head.last_seq, |s| s - 1)
            .min(pruned_seq + max);
        if upto <= pruned_seq {
            return Ok(0);
        }
        let last: Option<(String, Option<i64>)> = sqlx::query_as(
            "SELECT hash, (SELECT MAX(at) FROM audit_entries WHERE seq > $1 AND seq <= $2) \
             FROM audit_entries WHERE seq = $2",
        )
        .bind(pruned_seq)
        .bind(upto)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?;
        let Some((hash, Some(newest_at))) = last else {
            return Err(statehouse_core::Error::Internal(format!(
                "audit entry {upto} is missing; run `statehouse audit verify`"
            )));
        };
        let done = sqlx::query("DELETE FROM audit_entries WHERE seq > $1 AND seq <= $2")
            .bind(pruned_seq)
            .bind(upto)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        sqlx::query("UPDATE audit_chain SET pruned_seq = $1, pruned_hash = $2 WHERE id = 1")
            .bind(upto)
            .bind(&hash)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        // The proof goes into the chain with the removal.
        let proof = PruneProof {
            from_seq: pruned_seq + 1,
            through_seq: upto,
            last_hash: hash,
            newest_at: Timestamp(newest_at),
            before,
        };
        let round = Round::after(&head, &[proof.record(at)], &[]);
        round_query(&head, &round, &[])
            .build()
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        if let Ok(mut cache) = self.journal_head.lock() {
            *cache = Some(round.new_head);
        }
        Ok(done.rows_affected())
    }

    async fn events_after(
        &self,
        after_seq: i64,
        workspace_ids: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<Event>> {
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT seq, at, kind, workspace_id, workspace, subject, actor, payload, nul_escaped \
             FROM events WHERE seq > ",
        );
        q.push_bind(after_seq);
        if let Some(ids) = workspace_ids {
            q.push(" AND workspace_id = ANY(")
                .push_bind(ids.to_vec())
                .push(")");
        }
        q.push(" ORDER BY seq LIMIT ").push_bind(limit.max(1));
        let rows = q
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        rows.iter().map(event_from).collect()
    }

    async fn last_event_seq(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT last_event_seq FROM audit_chain WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.db_err(e))
    }

    async fn prune_events(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM events WHERE at < $1")
            .bind(before.millis())
            .execute(&self.pool)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(done.rows_affected())
    }
}
