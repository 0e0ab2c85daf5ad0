//! Appending to the journal on PostgreSQL: pending rows of committed changes sealed into the
//! chain and the event stream, then the writer's batch, in one transaction per round. Rounds
//! lock the one chain-head row, so replicas append one round at a time and sequence numbers
//! follow commit order.

use sqlx::{PgConnection, Postgres, QueryBuilder};

use statehouse_core::audit::AuditRecord;
use statehouse_core::events::{Event, NewEvent};
use statehouse_core::store::audit::SEAL_BATCH;
use statehouse_core::store::nul;
use statehouse_core::store::pending;
use statehouse_core::store::seal::{BEYOND_HEAD_SQL, Beyond, JournalHead, Round};
use statehouse_core::{Error, Result};

use crate::PgStore;
use crate::pending::read_pending;

/// Rows per multi-row INSERT (PostgreSQL allows 65,535 bound values per statement).
const INSERT_CHUNK: usize = 500;

/// One round as one statement (one round trip). The head update runs first — every insert
/// reads from it — and fails (NOT NULL) when another process appended since this one last
/// looked; a concurrent appender waits for the head's row lock, then fails the same way and
/// retries on the new head. `sealed`: the pending rows it seals (deleted).
pub(crate) fn round_query(
    head: &JournalHead,
    round: &Round,
    sealed: &[i64],
) -> QueryBuilder<Postgres> {
    let new_head = &round.new_head;
    let mut q = QueryBuilder::<Postgres>::new(
        "WITH head AS (UPDATE audit_chain SET last_seq = CASE WHEN last_seq = ",
    );
    q.push_bind(head.last_seq)
        .push(" AND last_event_seq = ")
        .push_bind(head.last_event_seq)
        .push(" THEN ")
        .push_bind(new_head.last_seq)
        .push(" END, last_hash = ")
        .push_bind(new_head.last_hash.clone())
        .push(", last_event_seq = ")
        .push_bind(new_head.last_event_seq)
        .push(" WHERE id = 1 RETURNING last_seq)");
    if !sealed.is_empty() {
        q.push(", sealed AS (DELETE FROM journal_pending WHERE id = ANY(")
            .push_bind(sealed.to_vec())
            .push(") AND EXISTS (SELECT 1 FROM head))");
    }
    for (i, chunk) in round.entries.chunks(INSERT_CHUNK).enumerate() {
        q.push(format!(
            ", entries{i} AS (INSERT INTO audit_entries (seq, at, actor, token_id, token_name, source_ip, \
             action, workspace, target, outcome, reason, detail, prev_hash, hash, nul_escaped) \
             SELECT v.* FROM head, ("
        ));
        q.push_values(chunk, |mut b, e| {
            let r = &e.record;
            let esc = nul::record_needs_escape(r);
            let text = |t: &str| nul::stored(t, esc).into_owned();
            let opt = |t: &Option<String>| t.as_deref().map(text);
            b.push_bind(e.seq)
                .push_bind(r.at.millis())
                .push_bind(text(&r.actor))
                .push_bind(opt(&r.token_id))
                .push_bind(opt(&r.token_name))
                .push_bind(opt(&r.source_ip))
                .push_bind(text(&r.action))
                .push_bind(opt(&r.workspace))
                .push_bind(opt(&r.target))
                .push_bind(r.outcome.as_str())
                .push_bind(opt(&r.reason))
                .push_bind(opt(&r.detail))
                .push_bind(e.prev_hash.clone())
                .push_bind(e.hash.clone())
                .push_bind(esc);
        });
        q.push(
            ") AS v(seq, at, actor, token_id, token_name, source_ip, action, workspace, target, outcome, \
             reason, detail, prev_hash, hash, nul_escaped))",
        );
    }
    for (i, chunk) in round.events.chunks(INSERT_CHUNK).enumerate() {
        q.push(format!(
            ", events{i} AS (INSERT INTO events (seq, at, kind, workspace_id, workspace, subject, actor, \
             payload, nul_escaped) SELECT v.* FROM head, ("
        ));
        q.push_values(chunk, |mut b, p| {
            let e = &p.event;
            let esc = nul::event_needs_escape(e);
            let text = |t: &str| nul::stored(t, esc).into_owned();
            let opt = |t: &Option<String>| t.as_deref().map(text);
            b.push_bind(e.seq)
                .push_bind(e.at.millis())
                .push_bind(text(&e.kind))
                .push_bind(opt(&e.workspace_id))
                .push_bind(opt(&e.workspace))
                .push_bind(opt(&e.subject))
                .push_bind(text(&e.actor))
                .push_bind(p.payload.clone())
                .push_bind(esc);
        });
        q.push(
            ") AS v(seq, at, kind, workspace_id, workspace, subject, actor, payload, nul_escaped))",
        );
        // One pending delivery per event for every enabled webhook of its workspace whose
        // filter names the kind, its prefix (`lock.*`) or `*`. (Kinds and workspace ids never
        // hold NUL; they are made by statehouse.)
        q.push(format!(
            ", deliveries{i} AS (INSERT INTO webhook_deliveries (id, webhook_id, event_seq, kind, body, \
             created_at, status, attempts, next_attempt_at) \
             SELECT gen_random_uuid()::text, w.id, ev.seq, ev.kind, ev.body, ev.at, 'pending', 0, ev.at \
             FROM head, ("
        ));
        q.push_values(chunk, |mut b, p| {
            let e = &p.event;
            let esc = nul::event_needs_escape(e);
            b.push_bind(e.seq)
                .push_bind(nul::stored(&e.kind, esc).into_owned())
                .push_bind(
                    e.workspace_id
                        .as_deref()
                        .map(|w| nul::stored(w, esc).into_owned()),
                )
                .push_bind(nul::stored(&p.prefix, esc).into_owned())
                .push_bind(p.body.clone())
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

/// Up to [`SEAL_BATCH`] pending rows as records and events, with their ids; and whether more
/// are waiting.
async fn take_pending(
    conn: &mut PgConnection,
) -> sqlx::Result<(Vec<AuditRecord>, Vec<NewEvent>, Vec<i64>, bool)> {
    let rows = pending::decode_rows(read_pending(conn, SEAL_BATCH).await?);
    let more = rows.len() == SEAL_BATCH;
    let (records, events) = pending::split(&rows);
    let ids = rows.iter().map(|(id, _)| *id).collect();
    Ok((records, events, ids, more))
}

/// Records and events of a round: up to [`SEAL_BATCH`] pending rows, then the batch when no
/// more wait.
type Taken = (Vec<AuditRecord>, Vec<NewEvent>, Vec<i64>, bool);

fn with_batch(mut taken: Taken, records: &[AuditRecord], events: &[NewEvent]) -> Taken {
    if !taken.3 {
        taken.0.extend_from_slice(records);
        taken.1.extend_from_slice(events);
    }
    taken
}

impl PgStore {
    /// Seals pending rows, then appends the batch after the last of them (see
    /// [`statehouse_core::store::audit::AuditStore::append_journal`]).
    pub(crate) async fn append_rounds(
        &self,
        records: &[AuditRecord],
        events: &[NewEvent],
    ) -> Result<Vec<Event>> {
        let mut stored = Vec::new();
        loop {
            let (round, more) = self.append_round(records, events).await?;
            stored.extend(round);
            if !more {
                return Ok(stored);
            }
        }
    }

    /// Fast path: pending rows read without a lock and the head this process wrote last, both
    /// checked by the round's one statement (a process that sealed or appended since has moved
    /// the head). When the head moved, the round runs again holding the head's row lock.
    async fn append_round(
        &self,
        records: &[AuditRecord],
        events: &[NewEvent],
    ) -> Result<(Vec<Event>, bool)> {
        let err = |e| self.db_err(e);
        let cached = self.journal_head.lock().ok().and_then(|h| h.clone());
        let Some(head) = cached else {
            return self.append_round_locked(records, events).await;
        };
        let mut conn = self.pool.acquire().await.map_err(err)?;
        let (all_records, all_events, sealed, more) =
            with_batch(take_pending(&mut conn).await.map_err(err)?, records, events);
        if all_records.is_empty() && all_events.is_empty() {
            return Ok((Vec::new(), false));
        }
        let round = Round::after(&head, &all_records, &all_events);
        let result = round_query(&head, &round, &sealed)
            .build()
            .execute(&mut *conn)
            .await;
        drop(conn);
        match result {
            Ok(_) => {
                if let Ok(mut cache) = self.journal_head.lock() {
                    *cache = Some(round.new_head.clone());
                }
                Ok((round.into_events(), more))
            }
            Err(e) => {
                if let Ok(mut cache) = self.journal_head.lock() {
                    *cache = None;
                }
                // not_null_violation: the head moved (another process appended).
                let stale =
                    matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23502"));
                if !stale {
                    return Err(self.blocked_or(e).await);
                }
                self.append_round_locked(records, events).await
            }
        }
    }

    /// The slow path: a transaction that locks the head row first, so its round cannot meet a
    /// moved head, and reads the pending rows after the lock (seeing every row committed
    /// before it, none another round is sealing).
    async fn append_round_locked(
        &self,
        records: &[AuditRecord],
        events: &[NewEvent],
    ) -> Result<(Vec<Event>, bool)> {
        let err = |e| self.db_err(e);
        let mut tx = self.begin().await?;
        let head = lock_head(&mut tx).await.map_err(err)?;
        let (all_records, all_events, sealed, more) =
            with_batch(take_pending(&mut tx).await.map_err(err)?, records, events);
        let round = Round::after(&head, &all_records, &all_events);
        if !round.is_empty()
            && let Err(e) = round_query(&head, &round, &sealed)
                .build()
                .execute(&mut *tx)
                .await
        {
            drop(tx);
            return Err(self.blocked_or(e).await);
        }
        tx.commit().await.map_err(err)?;
        if let Ok(mut cache) = self.journal_head.lock() {
            *cache = Some(round.new_head.clone());
        }
        Ok((round.into_events(), more))
    }

    /// The error of a failed round: when a number it appends was taken, the row inserted
    /// beyond the head, named (see [`Beyond::blocked`]); otherwise the database's error.
    async fn blocked_or(&self, failure: sqlx::Error) -> Error {
        if matches!(&failure, sqlx::Error::Database(d) if d.is_unique_violation()) {
            let beyond = sqlx::query_as(BEYOND_HEAD_SQL)
                .fetch_one(&self.pool)
                .await
                .map(|(last_seq, entry, last_event_seq, event)| Beyond {
                    last_seq,
                    entry,
                    last_event_seq,
                    event,
                });
            if let Some(blocked) = beyond.ok().as_ref().and_then(Beyond::blocked) {
                return blocked;
            }
        }
        self.db_err(failure)
    }
}

/// The chain head, row-locked for the transaction.
pub(crate) async fn lock_head(tx: &mut PgConnection) -> sqlx::Result<JournalHead> {
    let (last_seq, last_hash, last_event_seq): (i64, String, i64) = sqlx::query_as(
        "SELECT last_seq, last_hash, last_event_seq FROM audit_chain WHERE id = 1 FOR UPDATE",
    )
    .fetch_one(tx)
    .await?;
    Ok(JournalHead {
        last_seq,
        last_hash,
        last_event_seq,
    })
}
