//! The journal: audit chain, events, and the deliveries events create (appending and sealing
//! are in [`crate::seal`]).

use async_trait::async_trait;

use statehouse_core::audit::{AuditEntry, AuditQuery, AuditRecord, ChainHead, Outcome, PruneProof};
use statehouse_core::clock::Timestamp;
use statehouse_core::events::{Event, NewEvent};
use statehouse_core::store::audit::{AuditStore, TakeBatch};
use statehouse_core::store::nul::{self, Match};
use statehouse_core::store::seal::Round;
use statehouse_core::{Error, Result};

use crate::SqlStore;
use crate::engine::{Engine, Row, Tx};
use crate::query::{Sql, json_elements, json_list, sql};
use crate::seal::{lock_head, round_sql};

const ENTRY_COLUMNS: &str = "SELECT seq, at, actor, token_id, token_name, source_ip, action, workspace, target, \
    outcome, reason, detail, prev_hash, hash, nul_escaped FROM audit_entries";

fn entry_from(row: &impl Row) -> Result<AuditEntry> {
    let outcome: String = row.get("outcome")?;
    let esc: bool = row.get("nul_escaped")?;
    let text = |col: &str| row.get::<String>(col).and_then(|t| nul::original(t, esc));
    let opt = |col: &str| {
        row.get::<Option<String>>(col)
            .and_then(|t| nul::original_opt(t, esc))
    };
    Ok(AuditEntry {
        seq: row.get("seq")?,
        record: AuditRecord {
            at: row.get("at")?,
            actor: text("actor")?,
            token_id: opt("token_id")?,
            token_name: opt("token_name")?,
            source_ip: opt("source_ip")?,
            action: text("action")?,
            workspace: opt("workspace")?,
            target: opt("target")?,
            outcome: Outcome::parse(&outcome).map_err(|_| {
                Error::Internal(format!("stored audit outcome {outcome:?} is unknown"))
            })?,
            reason: opt("reason")?,
            detail: opt("detail")?,
        },
        prev_hash: row.get("prev_hash")?,
        hash: row.get("hash")?,
    })
}

fn event_from(row: &impl Row) -> Result<Event> {
    let payload: String = row.get("payload")?;
    let esc: bool = row.get("nul_escaped")?;
    let text = |col: &str| row.get::<String>(col).and_then(|t| nul::original(t, esc));
    let opt = |col: &str| {
        row.get::<Option<String>>(col)
            .and_then(|t| nul::original_opt(t, esc))
    };
    Ok(Event {
        seq: row.get("seq")?,
        at: row.get("at")?,
        kind: text("kind")?,
        workspace_id: opt("workspace_id")?,
        workspace: opt("workspace")?,
        subject: opt("subject")?,
        actor: text("actor")?,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
    })
}

/// `AND column = value`, for rows stored escaped or not (see [`nul::matching`]).
fn push_equals(q: &mut Sql<'_>, column: &str, value: &str) {
    match nul::matching(value) {
        Match::Same(v) => {
            q.push(&format!(" AND {column} = ")).push_bind(v);
        }
        Match::EscapedOnly(v) => {
            q.push(&format!(" AND nul_escaped AND {column} = "))
                .push_bind(v);
        }
        Match::Either { plain, escaped } => {
            q.push(&format!(" AND {column} = CASE WHEN nul_escaped THEN "))
                .push_bind(escaped)
                .push(" ELSE ")
                .push_bind(plain)
                .push(" END");
        }
    }
}

/// `AND column` starts with `prefix`, for rows stored escaped or not. Lengths are counted in
/// characters, as `substr` counts them on both engines.
fn push_starts_with(q: &mut Sql<'_>, column: &str, prefix: &str) {
    let escaped = nul::escape(prefix).into_owned();
    // Rows stored as they are hold no NUL: a prefix with one matches escaped rows only.
    let plain = (!prefix.contains('\0')).then(|| prefix.to_owned());
    q.push(&format!(
        " AND CASE WHEN nul_escaped THEN substr({column}, 1, length("
    ))
    .push_bind(escaped);
    let escaped_at = q.bound();
    q.push(&format!(
        ")) = ${escaped_at} ELSE substr({column}, 1, length("
    ))
    .push_bind(plain);
    let plain_at = q.bound();
    q.push(&format!(")) = ${plain_at} END"));
}

#[async_trait]
impl<E: Engine> AuditStore for SqlStore<E> {
    async fn append_journal(
        &self,
        records: &[AuditRecord],
        events: &[NewEvent],
    ) -> Result<Vec<Event>> {
        self.append_rounds(None, records, events).await
    }

    async fn append_queued(&self, take: TakeBatch<'_>) -> Result<Vec<Event>> {
        // Taken once a write connection is ours: on SQLite (one write connection) entries
        // queued by the writes that held it meanwhile join this batch.
        let writer = self.engine.writer().await?;
        let (records, events) = take();
        self.append_rounds(Some(writer), &records, &events).await
    }

    async fn audit_head(&self) -> Result<ChainHead> {
        let row = sql(
            "SELECT last_seq, last_hash, pruned_seq, pruned_hash FROM audit_chain WHERE id = 1",
        )
        .fetch_one(&mut self.engine.read().await?)
        .await?;
        Ok(ChainHead {
            last_seq: row.get("last_seq")?,
            last_hash: row.get("last_hash")?,
            pruned_seq: row.get("pruned_seq")?,
            pruned_hash: row.get("pruned_hash")?,
        })
    }

    async fn unsealed_count(&self) -> Result<u64> {
        let n: i64 = sql("SELECT COUNT(*) FROM journal_pending")
            .scalar(&mut self.engine.read().await?)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut q = Sql::built(format!("{ENTRY_COLUMNS} WHERE TRUE"));
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
            q.push(" AND at >= ").push_bind(since);
        }
        if let Some(until) = query.until {
            q.push(" AND at < ").push_bind(until);
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
        let rows = q.fetch_all(&mut self.engine.read().await?).await?;
        rows.iter().map(entry_from).collect()
    }

    async fn prune_audit(&self, before: Timestamp, max: i64, at: Timestamp) -> Result<u64> {
        let mut tx = self.engine.begin().await?;
        let head = lock_head(&mut tx, self.dialect()).await?;
        let pruned_seq: i64 = sql("SELECT pruned_seq FROM audit_chain WHERE id = 1")
            .scalar(&mut tx)
            .await?;
        // The oldest end, up to (not including) the first entry that is young enough.
        let first_kept: Option<i64> =
            sql("SELECT MIN(seq) FROM audit_entries WHERE seq > $1 AND at >= $2")
                .bind(pruned_seq)
                .bind(before)
                .scalar(&mut tx)
                .await?;
        let upto = first_kept
            .map_or(head.last_seq, |s| s - 1)
            .min(pruned_seq + max);
        if upto <= pruned_seq {
            return Ok(0);
        }
        let missing = || {
            Error::Internal(format!(
                "audit entry {upto} is missing; run `statehouse audit verify`"
            ))
        };
        let last = sql(
            "SELECT hash, (SELECT MAX(at) FROM audit_entries WHERE seq > $1 AND seq <= $2) \
             FROM audit_entries WHERE seq = $2",
        )
        .bind(pruned_seq)
        .bind(upto)
        .fetch_optional(&mut tx)
        .await?
        .ok_or_else(missing)?;
        let hash: String = last.get(0)?;
        let newest_at: Timestamp = last.get::<Option<Timestamp>>(1)?.ok_or_else(missing)?;
        let done = sql("DELETE FROM audit_entries WHERE seq > $1 AND seq <= $2")
            .bind(pruned_seq)
            .bind(upto)
            .execute(&mut tx)
            .await?;
        sql("UPDATE audit_chain SET pruned_seq = $1, pruned_hash = $2 WHERE id = 1")
            .bind(upto)
            .bind(&hash)
            .execute(&mut tx)
            .await?;
        // The proof goes into the chain with the removal.
        let proof = PruneProof {
            from_seq: pruned_seq + 1,
            through_seq: upto,
            last_hash: hash,
            newest_at,
            before,
        };
        let round = Round::after(&head, &[proof.record(at)], &[]);
        round_sql(self.dialect(), false, &head, &round, &[])?
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        self.cache_head(Some(round.new_head));
        Ok(done)
    }

    async fn events_after(
        &self,
        after_seq: i64,
        workspace_ids: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<Event>> {
        let mut q = sql(
            "SELECT seq, at, kind, workspace_id, workspace, subject, actor, payload, nul_escaped \
             FROM events WHERE seq > $1",
        )
        .bind(after_seq);
        if let Some(ids) = workspace_ids {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let n = q.bound() + 1;
            q.push(&format!(
                " AND workspace_id IN {}",
                json_elements(self.dialect(), n)
            ));
            q = q.bind(json_list(ids));
        }
        q.push(" ORDER BY seq LIMIT ").push_bind(limit.max(1));
        let rows = q.fetch_all(&mut self.engine.read().await?).await?;
        rows.iter().map(event_from).collect()
    }

    async fn last_event_seq(&self) -> Result<i64> {
        sql("SELECT last_event_seq FROM audit_chain WHERE id = 1")
            .scalar(&mut self.engine.read().await?)
            .await
    }

    async fn prune_events(&self, before: Timestamp) -> Result<u64> {
        let done = sql("DELETE FROM events WHERE at < $1")
            .bind(before)
            .execute(&mut self.engine.writer().await?)
            .await?;
        Ok(done)
    }
}
