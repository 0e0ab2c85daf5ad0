//! The journal on PostgreSQL: audit chain, events, and the deliveries events create. Appends
//! lock the one chain-head row (`FOR UPDATE`), so replicas append one batch at a time and
//! sequence numbers follow commit order.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use statehouse_core::Result;
use statehouse_core::audit::{self, AuditEntry, AuditQuery, AuditRecord, ChainHead, Outcome};
use statehouse_core::clock::Timestamp;
use statehouse_core::events::{Event, NewEvent};
use statehouse_core::store::audit::AuditStore;
use statehouse_core::webhooks::{Delivery, event_body};

use crate::{PgStore, get};

/// Rows per multi-row INSERT (PostgreSQL allows 65,535 bound values per statement).
const INSERT_CHUNK: usize = 500;

const ENTRY_COLUMNS: &str = "SELECT seq, at, actor, token_id, token_name, source_ip, action, workspace, target, \
    outcome, reason, detail, prev_hash, hash FROM audit_entries";

fn entry_from(row: &PgRow) -> Result<AuditEntry> {
    let outcome: String = get(row, "outcome")?;
    Ok(AuditEntry {
        seq: get(row, "seq")?,
        record: AuditRecord {
            at: Timestamp(get(row, "at")?),
            actor: get(row, "actor")?,
            token_id: get(row, "token_id")?,
            token_name: get(row, "token_name")?,
            source_ip: get(row, "source_ip")?,
            action: get(row, "action")?,
            workspace: get(row, "workspace")?,
            target: get(row, "target")?,
            outcome: Outcome::parse(&outcome).map_err(|_| {
                statehouse_core::Error::Internal(format!(
                    "stored audit outcome {outcome:?} is unknown"
                ))
            })?,
            reason: get(row, "reason")?,
            detail: get(row, "detail")?,
        },
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}

fn event_from(row: &PgRow) -> Result<Event> {
    let payload: String = get(row, "payload")?;
    Ok(Event {
        seq: get(row, "seq")?,
        at: Timestamp(get(row, "at")?),
        kind: get(row, "kind")?,
        workspace_id: get(row, "workspace_id")?,
        workspace: get(row, "workspace")?,
        subject: get(row, "subject")?,
        actor: get(row, "actor")?,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
    })
}

/// The chain head and event counter as an append leaves them.
#[derive(Debug, Clone)]
pub(crate) struct JournalHead {
    last_seq: i64,
    last_hash: String,
    last_event_seq: i64,
}

/// `lock.acquired` → `lock.*`: the prefix filter that also matches an event kind.
fn prefix_filter(kind: &str) -> String {
    match kind.split_once('.') {
        Some((prefix, _)) => format!("{prefix}.*"),
        None => kind.to_owned(),
    }
}

/// One batch as one statement (one round trip, its own transaction). The head update runs
/// first — every insert reads from it — and fails (NOT NULL) when another process appended
/// since this one last looked; a concurrent appender waits for the head's row lock, then
/// fails the same way and retries on the new head.
fn batch_query<'q>(
    head: &'q JournalHead,
    entries: &'q [AuditEntry],
    events: &'q [(Event, String, String, String)],
    new_head: &'q JournalHead,
) -> QueryBuilder<Postgres> {
    let mut q = QueryBuilder::<Postgres>::new(
        "WITH head AS (UPDATE audit_chain SET last_seq = CASE WHEN last_seq = ",
    );
    q.push_bind(head.last_seq)
        .push(" AND last_event_seq = ")
        .push_bind(head.last_event_seq)
        .push(" THEN ")
        .push_bind(new_head.last_seq)
        .push(" END, last_hash = ")
        .push_bind(new_head.last_hash.as_str())
        .push(", last_event_seq = ")
        .push_bind(new_head.last_event_seq)
        .push(" WHERE id = 1 RETURNING last_seq)");
    for (i, chunk) in entries.chunks(INSERT_CHUNK).enumerate() {
        q.push(format!(
            ", entries{i} AS (INSERT INTO audit_entries (seq, at, actor, token_id, token_name, source_ip, \
             action, workspace, target, outcome, reason, detail, prev_hash, hash) \
             SELECT v.* FROM head, ("
        ));
        q.push_values(chunk, |mut b, e| {
            let r = &e.record;
            b.push_bind(e.seq)
                .push_bind(r.at.millis())
                .push_bind(r.actor.as_str())
                .push_bind(r.token_id.as_deref())
                .push_bind(r.token_name.as_deref())
                .push_bind(r.source_ip.as_deref())
                .push_bind(r.action.as_str())
                .push_bind(r.workspace.as_deref())
                .push_bind(r.target.as_deref())
                .push_bind(r.outcome.as_str())
                .push_bind(r.reason.as_deref())
                .push_bind(r.detail.as_deref())
                .push_bind(e.prev_hash.as_str())
                .push_bind(e.hash.as_str());
        });
        q.push(
            ") AS v(seq, at, actor, token_id, token_name, source_ip, action, workspace, target, outcome, \
             reason, detail, prev_hash, hash))",
        );
    }
    for (i, chunk) in events.chunks(INSERT_CHUNK).enumerate() {
        q.push(format!(
            ", events{i} AS (INSERT INTO events (seq, at, kind, workspace_id, workspace, subject, actor, payload) \
             SELECT v.* FROM head, ("
        ));
        q.push_values(chunk, |mut b, (e, payload, _, _)| {
            b.push_bind(e.seq)
                .push_bind(e.at.millis())
                .push_bind(e.kind.as_str())
                .push_bind(e.workspace_id.as_deref())
                .push_bind(e.workspace.as_deref())
                .push_bind(e.subject.as_deref())
                .push_bind(e.actor.as_str())
                .push_bind(payload.as_str());
        });
        q.push(") AS v(seq, at, kind, workspace_id, workspace, subject, actor, payload))");
        // One pending delivery per event for every enabled webhook of its workspace whose
        // filter names the kind, its prefix (`lock.*`) or `*`.
        q.push(format!(
            ", deliveries{i} AS (INSERT INTO webhook_deliveries (id, webhook_id, event_seq, kind, body, \
             created_at, status, attempts, next_attempt_at) \
             SELECT gen_random_uuid()::text, w.id, ev.seq, ev.kind, ev.body, ev.at, 'pending', 0, ev.at \
             FROM head, ("
        ));
        q.push_values(chunk, |mut b, (e, _, prefix, body)| {
            b.push_bind(e.seq)
                .push_bind(e.kind.as_str())
                .push_bind(e.workspace_id.as_deref())
                .push_bind(prefix.as_str())
                .push_bind(body.as_str())
                .push_bind(e.at.millis());
        });
        q.push(
            ") AS ev(seq, kind, workspace_id, prefix, body, at) \
             JOIN webhooks w ON w.workspace_id = ev.workspace_id AND w.enabled \
             AND w.events::jsonb ?| ARRAY['*', ev.kind, ev.prefix])",
        );
    }
    q.push(" SELECT last_seq FROM head");
    q
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

/// The events of a batch with their payload text, prefix filter and webhook body.
fn prepare_events(first_seq: i64, events: &[NewEvent]) -> Vec<(Event, String, String, String)> {
    events
        .iter()
        .zip(first_seq..)
        .map(|(e, seq)| {
            let event = Event::from_new(seq, e);
            let body = event_body(&event);
            (event, e.payload.to_string(), prefix_filter(&e.kind), body)
        })
        .collect()
}

impl PgStore {
    /// The slow path: a transaction that locks the head row first, so its batch cannot meet
    /// a moved head.
    async fn append_locked(
        &self,
        records: &[AuditRecord],
        events: &[NewEvent],
    ) -> Result<Vec<Event>> {
        let err = |e| self.db_err(e);
        let mut tx = self.begin().await?;
        let (last_seq, last_hash, last_event_seq): (i64, String, i64) = sqlx::query_as(
            "SELECT last_seq, last_hash, last_event_seq FROM audit_chain WHERE id = 1 FOR UPDATE",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        let head = JournalHead {
            last_seq,
            last_hash,
            last_event_seq,
        };
        let entries = audit::chain(head.last_seq, &head.last_hash, records);
        let stored = prepare_events(head.last_event_seq + 1, events);
        let new_head = JournalHead {
            last_seq: entries.last().map_or(head.last_seq, |e| e.seq),
            last_hash: entries
                .last()
                .map_or_else(|| head.last_hash.clone(), |e| e.hash.clone()),
            last_event_seq: head.last_event_seq + stored.len() as i64,
        };
        batch_query(&head, &entries, &stored, &new_head)
            .build()
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        if let Ok(mut cache) = self.journal_head.lock() {
            *cache = Some(new_head);
        }
        Ok(stored.into_iter().map(|(e, ..)| e).collect())
    }

    async fn read_journal_head(&self) -> Result<JournalHead> {
        let (last_seq, last_hash, last_event_seq): (i64, String, i64) = sqlx::query_as(
            "SELECT last_seq, last_hash, last_event_seq FROM audit_chain WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(JournalHead {
            last_seq,
            last_hash,
            last_event_seq,
        })
    }
}

#[async_trait]
impl AuditStore for PgStore {
    async fn append_journal(
        &self,
        records: &[AuditRecord],
        events: &[NewEvent],
    ) -> Result<Vec<Event>> {
        if records.is_empty() && events.is_empty() {
            return Ok(Vec::new());
        }
        let cached = self.journal_head.lock().ok().and_then(|h| h.clone());
        let head = match cached {
            Some(h) => h,
            None => self.read_journal_head().await?,
        };
        {
            let entries = audit::chain(head.last_seq, &head.last_hash, records);
            let stored = prepare_events(head.last_event_seq + 1, events);
            let new_head = JournalHead {
                last_seq: entries.last().map_or(head.last_seq, |e| e.seq),
                last_hash: entries
                    .last()
                    .map_or_else(|| head.last_hash.clone(), |e| e.hash.clone()),
                last_event_seq: head.last_event_seq + stored.len() as i64,
            };
            let result = batch_query(&head, &entries, &stored, &new_head)
                .build()
                .execute(&self.pool)
                .await;
            match result {
                Ok(_) => {
                    if let Ok(mut cache) = self.journal_head.lock() {
                        *cache = Some(new_head);
                    }
                    return Ok(stored.into_iter().map(|(e, ..)| e).collect());
                }
                Err(e) => {
                    if let Ok(mut cache) = self.journal_head.lock() {
                        *cache = None;
                    }
                    // not_null_violation: the head moved (another process appended). Append
                    // again holding the head's row lock, which cannot go stale.
                    let stale = matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23502"));
                    if !stale {
                        return Err(self.db_err(e));
                    }
                    return self.append_locked(records, events).await;
                }
            }
        }
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
            q.push(" AND actor = ").push_bind(actor.as_str());
        }
        if let Some(target) = &query.target {
            q.push(" AND target = ").push_bind(target.as_str());
        }
        if let Some((action, prefix)) = query.action_pattern() {
            if prefix {
                q.push(" AND left(action, ")
                    .push_bind(action.chars().count() as i32)
                    .push(") = ")
                    .push_bind(action);
            } else {
                q.push(" AND action = ").push_bind(action);
            }
        }
        if let Some(ws) = &query.workspace {
            q.push(" AND workspace = ").push_bind(ws.as_str());
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

    async fn prune_audit(&self, before: Timestamp, max: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let err = |e| self.db_err(e);
        let (pruned_seq, last_seq): (i64, i64) =
            sqlx::query_as("SELECT pruned_seq, last_seq FROM audit_chain WHERE id = 1 FOR UPDATE")
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
        let upto = first_kept.map_or(last_seq, |s| s - 1).min(pruned_seq + max);
        if upto <= pruned_seq {
            return Ok(0);
        }
        let hash: Option<String> =
            sqlx::query_scalar("SELECT hash FROM audit_entries WHERE seq = $1")
                .bind(upto)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
        let Some(hash) = hash else {
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
            .bind(hash)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(done.rows_affected())
    }

    async fn events_after(
        &self,
        after_seq: i64,
        workspace_ids: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<Event>> {
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT seq, at, kind, workspace_id, workspace, subject, actor, payload FROM events WHERE seq > ",
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
