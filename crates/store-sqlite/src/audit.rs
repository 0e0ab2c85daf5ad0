//! The journal on SQLite: audit chain, events, and the deliveries events create.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, Transaction};

use statehouse_core::Result;
use statehouse_core::audit::{self, AuditEntry, AuditQuery, AuditRecord, ChainHead, Outcome};
use statehouse_core::clock::Timestamp;
use statehouse_core::events::{Event, NewEvent, filter_matches};
use statehouse_core::store::audit::AuditStore;
use statehouse_core::webhooks::{Delivery, event_body};

use crate::{SqliteStore, begin_write, commit, db_err, get};

/// Rows per multi-row INSERT (SQLite allows 32,766 bound values per statement).
const INSERT_CHUNK: usize = 500;

const ENTRY_COLUMNS: &str = "SELECT seq, at, actor, token_id, token_name, source_ip, action, workspace, target, \
    outcome, reason, detail, prev_hash, hash FROM audit_entries";

fn entry_from(row: &SqliteRow) -> Result<AuditEntry> {
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

fn event_from(row: &SqliteRow) -> Result<Event> {
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

async fn insert_entries(tx: &mut Transaction<'_, Sqlite>, entries: &[AuditEntry]) -> Result<()> {
    for chunk in entries.chunks(INSERT_CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO audit_entries (seq, at, actor, token_id, token_name, source_ip, action, workspace, \
             target, outcome, reason, detail, prev_hash, hash) ",
        );
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
        q.build().execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

async fn insert_events(tx: &mut Transaction<'_, Sqlite>, events: &[(Event, String)]) -> Result<()> {
    for chunk in events.chunks(INSERT_CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (seq, at, kind, workspace_id, workspace, subject, actor, payload) ",
        );
        q.push_values(chunk, |mut b, (e, payload)| {
            b.push_bind(e.seq)
                .push_bind(e.at.millis())
                .push_bind(e.kind.as_str())
                .push_bind(e.workspace_id.as_deref())
                .push_bind(e.workspace.as_deref())
                .push_bind(e.subject.as_deref())
                .push_bind(e.actor.as_str())
                .push_bind(payload.as_str());
        });
        q.build().execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

/// One pending delivery per event for every enabled webhook of its workspace that wants it.
async fn deliveries_for(
    tx: &mut Transaction<'_, Sqlite>,
    events: &[Event],
) -> Result<Vec<Delivery>> {
    let hooks: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, workspace_id, events FROM webhooks WHERE enabled = 1")
            .fetch_all(&mut **tx)
            .await
            .map_err(db_err)?;
    let hooks: Vec<(String, String, Vec<String>)> = hooks
        .into_iter()
        .map(|(id, ws, filter)| (id, ws, serde_json::from_str(&filter).unwrap_or_default()))
        .collect();
    let mut out = Vec::new();
    for event in events {
        for (id, ws, filter) in &hooks {
            if event.workspace_id.as_deref() == Some(ws.as_str())
                && filter_matches(filter, &event.kind)
            {
                out.push(Delivery::new(
                    id,
                    Some(event.seq),
                    &event.kind,
                    event_body(event),
                    event.at,
                ));
            }
        }
    }
    Ok(out)
}

pub(crate) async fn insert_deliveries(
    tx: &mut Transaction<'_, Sqlite>,
    deliveries: &[Delivery],
) -> Result<()> {
    for chunk in deliveries.chunks(INSERT_CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
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
        q.build().execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_journal(
        &self,
        records: &[AuditRecord],
        events: &[NewEvent],
    ) -> Result<Vec<Event>> {
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        let (last_seq, last_hash, last_event): (i64, String, i64) = sqlx::query_as(
            "SELECT last_seq, last_hash, last_event_seq FROM audit_chain WHERE id = 1",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let entries = audit::chain(last_seq, &last_hash, records);
        insert_entries(&mut tx, &entries).await?;
        let stored: Vec<(Event, String)> = events
            .iter()
            .zip(last_event + 1..)
            .map(|(e, seq)| (Event::from_new(seq, e), e.payload.to_string()))
            .collect();
        if !stored.is_empty() {
            insert_events(&mut tx, &stored).await?;
        }
        let stored: Vec<Event> = stored.into_iter().map(|(e, _)| e).collect();
        if !stored.is_empty() {
            let deliveries = deliveries_for(&mut tx, &stored).await?;
            insert_deliveries(&mut tx, &deliveries).await?;
        }
        let (new_seq, new_hash) = match entries.last() {
            Some(e) => (e.seq, e.hash.as_str()),
            None => (last_seq, last_hash.as_str()),
        };
        sqlx::query(
            "UPDATE audit_chain SET last_seq = ?, last_hash = ?, last_event_seq = ? WHERE id = 1",
        )
        .bind(new_seq)
        .bind(new_hash)
        .bind(last_event + stored.len() as i64)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        commit(tx).await?;
        Ok(stored)
    }

    async fn audit_head(&self) -> Result<ChainHead> {
        let (last_seq, last_hash, pruned_seq, pruned_hash): (i64, String, i64, String) =
            sqlx::query_as(
                "SELECT last_seq, last_hash, pruned_seq, pruned_hash FROM audit_chain WHERE id = 1",
            )
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        Ok(ChainHead {
            last_seq,
            last_hash,
            pruned_seq,
            pruned_hash,
        })
    }

    async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut q = QueryBuilder::<Sqlite>::new(ENTRY_COLUMNS);
        q.push(" WHERE 1 = 1");
        if let Some(actor) = &query.actor {
            q.push(" AND actor = ").push_bind(actor.as_str());
        }
        if let Some(target) = &query.target {
            q.push(" AND target = ").push_bind(target.as_str());
        }
        if let Some((action, prefix)) = query.action_pattern() {
            if prefix {
                q.push(" AND substr(action, 1, ")
                    .push_bind(action.len() as i64)
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
        let rows = q.build().fetch_all(&self.read).await.map_err(db_err)?;
        rows.iter().map(entry_from).collect()
    }

    async fn prune_audit(&self, before: Timestamp, max: i64) -> Result<u64> {
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        let (pruned_seq, last_seq): (i64, i64) =
            sqlx::query_as("SELECT pruned_seq, last_seq FROM audit_chain WHERE id = 1")
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        // The oldest end, up to (not including) the first entry that is young enough.
        let first_kept: Option<i64> =
            sqlx::query_scalar("SELECT MIN(seq) FROM audit_entries WHERE seq > ? AND at >= ?")
                .bind(pruned_seq)
                .bind(before.millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        let upto = first_kept.map_or(last_seq, |s| s - 1).min(pruned_seq + max);
        if upto <= pruned_seq {
            return Ok(0);
        }
        let hash: Option<String> =
            sqlx::query_scalar("SELECT hash FROM audit_entries WHERE seq = ?")
                .bind(upto)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let Some(hash) = hash else {
            return Err(statehouse_core::Error::Internal(format!(
                "audit entry {upto} is missing; run `statehouse audit verify`"
            )));
        };
        let done = sqlx::query("DELETE FROM audit_entries WHERE seq > ? AND seq <= ?")
            .bind(pruned_seq)
            .bind(upto)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("UPDATE audit_chain SET pruned_seq = ?, pruned_hash = ? WHERE id = 1")
            .bind(upto)
            .bind(hash)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        commit(tx).await?;
        Ok(done.rows_affected())
    }

    async fn events_after(
        &self,
        after_seq: i64,
        workspace_ids: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<Event>> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT seq, at, kind, workspace_id, workspace, subject, actor, payload FROM events WHERE seq > ",
        );
        q.push_bind(after_seq);
        if let Some(ids) = workspace_ids {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            q.push(" AND workspace_id IN (");
            let mut sep = q.separated(", ");
            for id in ids {
                sep.push_bind(id.as_str());
            }
            q.push(")");
        }
        q.push(" ORDER BY seq LIMIT ").push_bind(limit.max(1));
        let rows = q.build().fetch_all(&self.read).await.map_err(db_err)?;
        rows.iter().map(event_from).collect()
    }

    async fn last_event_seq(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT last_event_seq FROM audit_chain WHERE id = 1")
            .fetch_one(&self.read)
            .await
            .map_err(db_err)
    }

    async fn prune_events(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM events WHERE at < ?")
            .bind(before.millis())
            .execute(&mut *self.write.lock().await)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
