//! The journal writer: one task per process that appends audit records and events to the store
//! in batches (group commit), seals what changes left pending, then broadcasts the stored
//! events to in-process subscribers.
//!
//! Changes (state writes, lock changes, …) store their entries in their own transaction as
//! pending rows (see [`crate::store::pending`]) and only nudge the writer ([`Journal::seal_soon`]);
//! every batch the writer appends first seals the pending rows, in the order they became
//! visible, so the chain follows commit order across processes. The writer also seals on a
//! timer, which picks up what other processes — or a process killed before its writer ran —
//! left pending.
//!
//! Everything else puts an item on a bounded queue: refusals and reads only wait for room in
//! the queue ([`Journal::enqueue`]), the few changes still audited outside their transaction
//! wait until their item is committed ([`Journal::commit`]). While one batch is being written
//! the next one gathers, so under load each transaction carries many entries and costs a single
//! commit; a batch of items nobody waits for also waits a few milliseconds for company. One
//! entry the store refuses does not take its batch down: the batch is retried in halves until
//! the entry is alone, which is dropped and its loss recorded.
//! [`Journal::flush`] returns once everything queued — and everything pending — before it is
//! stored (graceful shutdown, CLI commands before they exit, audit queries).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::audit::AuditRecord;
use crate::events::{Event, NewEvent};
use crate::store::Store;
use crate::{Error, Result};

/// Items waiting to be written; a full queue makes callers wait (back-pressure), never drops.
const QUEUE_CAPACITY: usize = 16_384;
/// Most items in one transaction.
const MAX_BATCH: usize = 1_000;
/// Events kept for in-process subscribers that fall behind.
const BROADCAST_CAPACITY: usize = 4_096;
/// How often the writer seals pending rows without being nudged (those of other processes,
/// or of one that died before its writer sealed them).
const SEAL_EVERY: Duration = Duration::from_secs(1);
/// How long items nobody waits for (a nudge to seal, a read's or a refusal's entry) wait for
/// more to join their round. Under load one round then carries the entries of many requests (a
/// round costs two statements and a commit: paid per change, it doubled the database work of
/// a LOCK, and paid per read it was most of what a `GET` cost the database); a lone request's
/// entry is stored this much later. Anything waited for (an entry to commit, a flush) ends the
/// wait at once.
const GATHER: Duration = Duration::from_millis(10);

type Reply = oneshot::Sender<Result<Option<Event>>>;

// Entries are the common case and move through the queue once; boxing them would cost an
// allocation per entry to save memory only in the rare flush marker.
#[allow(clippy::large_enum_variant)]
enum Item {
    Entry(Entry),
    Flush(oneshot::Sender<()>),
    /// A change left pending rows: seal them.
    Seal,
}

struct Entry {
    record: Option<AuditRecord>,
    event: Option<NewEvent>,
    reply: Option<Reply>,
}

pub struct Journal {
    store: Arc<dyn Store>,
    /// Started on first use, so that building services needs no async runtime.
    queue: OnceLock<mpsc::Sender<Item>>,
    events: broadcast::Sender<Event>,
    /// A [`Item::Seal`] is queued and not yet taken: more nudges add nothing.
    seal_queued: Arc<AtomicBool>,
}

impl Journal {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Journal {
            store,
            queue: OnceLock::new(),
            events: broadcast::channel(BROADCAST_CAPACITY).0,
            seal_queued: Arc::new(AtomicBool::new(false)),
        }
    }

    fn queue(&self) -> &mpsc::Sender<Item> {
        self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            tokio::spawn(write_loop(
                self.store.clone(),
                rx,
                self.events.clone(),
                self.seal_queued.clone(),
            ));
            tx
        })
    }

    /// Queues a record and/or event and waits until it is committed; returns the stored event.
    pub async fn commit(
        &self,
        record: Option<AuditRecord>,
        event: Option<NewEvent>,
    ) -> Result<Option<Event>> {
        let (reply, done) = oneshot::channel();
        self.queue()
            .send(Item::Entry(Entry {
                record,
                event,
                reply: Some(reply),
            }))
            .await
            .map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }

    /// Queues a record without waiting for it to be stored (reads, refusals).
    pub async fn enqueue(&self, record: AuditRecord) {
        let item = Item::Entry(Entry {
            record: Some(record),
            event: None,
            reply: None,
        });
        if self.queue().send(item).await.is_err() {
            tracing::error!("audit journal writer is gone; an audit record was lost");
        }
    }

    /// Asks the writer to seal pending rows soon, without waiting (after a change committed
    /// its entries). A full queue is fine: the writer is busy and seals with its next batch.
    pub fn seal_soon(&self) {
        if !self.seal_queued.swap(true, Ordering::AcqRel)
            && self.queue().try_send(Item::Seal).is_err()
        {
            self.seal_queued.store(false, Ordering::Release);
        }
    }

    /// Returns once everything queued before this call, and every pending row committed
    /// before it, is stored (or failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue().send(Item::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Events as they are stored (or sealed) by this process, for in-process subscribers.
    /// Items (entries, events, flushes, seal nudges) queued in this process and not yet taken
    /// by the writer, for `/metrics`.
    pub fn queued(&self) -> usize {
        self.queue
            .get()
            .map_or(0, |q| q.max_capacity().saturating_sub(q.capacity()))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

fn stopped() -> Error {
    Error::Internal("the audit journal writer stopped".into())
}

async fn write_loop(
    store: Arc<dyn Store>,
    mut queue: mpsc::Receiver<Item>,
    events: broadcast::Sender<Event>,
    seal_queued: Arc<AtomicBool>,
) {
    let mut ticks = tokio::time::interval(SEAL_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = Vec::with_capacity(MAX_BATCH);
    let mut closed = false;
    while !closed {
        tokio::select! {
            received = queue.recv_many(&mut first, MAX_BATCH) => if received == 0 { return },
            // Nothing queued: seal what others left pending.
            _ = ticks.tick() => {}
        }
        if !first.is_empty() && first.iter().all(Item::can_wait) {
            closed = gather(&mut queue, &mut first).await;
        }
        // The batch is what is queued when the store is ready to write: requests that were
        // writing (and queued their entries meanwhile) join it.
        let mut entries: Vec<Entry> = Vec::new();
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        let mut take = || {
            let mut items = std::mem::take(&mut first);
            while items.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(item) => items.push(item),
                    Err(_) => break,
                }
            }
            for item in items {
                match item {
                    Item::Entry(entry) => entries.push(entry),
                    Item::Flush(done) => flushes.push(done),
                    Item::Seal => seal_queued.store(false, Ordering::Release),
                }
            }
            batch_of(&entries)
        };
        let result = store.append_queued(&mut take).await;
        let outcomes = match result {
            Ok(stored) => deliver(&entries, stored, &events),
            Err(e) => retry_apart(store.as_ref(), &entries, e, &events).await,
        };
        for (entry, outcome) in entries.into_iter().zip(outcomes) {
            if let Some(reply) = entry.reply {
                let _ = reply.send(outcome);
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

impl Item {
    /// Nobody waits for this item to be stored.
    fn can_wait(&self) -> bool {
        match self {
            Item::Entry(entry) => entry.reply.is_none(),
            Item::Flush(_) => false,
            Item::Seal => true,
        }
    }
}

/// Adds to `items` what arrives within [`GATHER`], until an item somebody waits for arrives or
/// the batch is full. True when the queue closed meanwhile (what was gathered is still written).
async fn gather(queue: &mut mpsc::Receiver<Item>, items: &mut Vec<Item>) -> bool {
    let until = tokio::time::Instant::now() + GATHER;
    while items.len() < MAX_BATCH {
        let seen = items.len();
        match tokio::time::timeout_at(until, queue.recv_many(items, MAX_BATCH - seen)).await {
            Err(_) => return false,
            Ok(0) => return true,
            Ok(_) if !items[seen..].iter().all(Item::can_wait) => return false,
            Ok(_) => {}
        }
    }
    false
}

/// The records and events of `entries`, in order.
fn batch_of(entries: &[Entry]) -> (Vec<AuditRecord>, Vec<NewEvent>) {
    let records = entries.iter().filter_map(|e| e.record.clone()).collect();
    let events = entries.iter().filter_map(|e| e.event.clone()).collect();
    (records, events)
}

/// Broadcasts what an append stored and says what each entry's event became: `stored` ends
/// with the events of `entries`, in order (sealed pending events come before).
fn deliver(
    entries: &[Entry],
    stored: Vec<Event>,
    events: &broadcast::Sender<Event>,
) -> Vec<Result<Option<Event>>> {
    let own = entries.iter().filter(|e| e.event.is_some()).count();
    let mut mine = stored[stored.len().saturating_sub(own)..].iter();
    let outcomes = entries
        .iter()
        .map(|e| Ok(e.event.as_ref().and_then(|_| mine.next().cloned())))
        .collect();
    for event in stored {
        // No subscribers is fine.
        let _ = events.send(event);
    }
    outcomes
}

/// After a batch failed: when the store answers at all, the batch is retried in halves until
/// every entry that fails is alone; those are dropped (their waiters get the error) and their
/// loss is recorded. An unreachable store fails the whole batch at once.
async fn retry_apart(
    store: &dyn Store,
    entries: &[Entry],
    error: Error,
    events: &broadcast::Sender<Event>,
) -> Vec<Result<Option<Event>>> {
    let failed = |e: &Error| {
        Err(Error::store(format!(
            "the audit log could not record this operation: {e}"
        )))
    };
    if entries.len() <= 1 || store.ping().await.is_err() {
        tracing::error!(
            error = %error,
            entries = entries.len(),
            "could not store audit records and events"
        );
        if entries.len() == 1 {
            record_loss(store, &entries[0], &error, events).await;
        }
        return entries.iter().map(|_| failed(&error)).collect();
    }
    let mut outcomes: Vec<Option<Result<Option<Event>>>> = entries.iter().map(|_| None).collect();
    let mut ranges = vec![(0, entries.len() / 2), (entries.len() / 2, entries.len())];
    while let Some((start, end)) = ranges.pop() {
        let part = &entries[start..end];
        let (records, new_events) = batch_of(part);
        match store.append_journal(&records, &new_events).await {
            Ok(stored) => {
                for (slot, outcome) in outcomes[start..end]
                    .iter_mut()
                    .zip(deliver(part, stored, events))
                {
                    *slot = Some(outcome);
                }
            }
            Err(e) if part.len() == 1 => {
                tracing::error!(error = %e, action = part[0].record.as_ref().map(|r| r.action.as_str()), "an audit entry could not be stored; the rest of its batch was");
                record_loss(store, &part[0], &e, events).await;
                outcomes[start] = Some(failed(&e));
            }
            Err(_) => {
                let middle = start + part.len() / 2;
                ranges.push((middle, end));
                ranges.push((start, middle));
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| failed(&error)))
        .collect()
}

/// Records that an entry could not be stored: what it was (its action and outcome, not its
/// content, which may be what the store refused) and why.
async fn record_loss(
    store: &dyn Store,
    entry: &Entry,
    error: &Error,
    events: &broadcast::Sender<Event>,
) {
    let Some(at) = entry
        .record
        .as_ref()
        .map(|r| r.at)
        .or(entry.event.as_ref().map(|e| e.at))
    else {
        return;
    };
    let loss = AuditRecord::new(at, "statehouse", "audit.lost")
        .failed(error.to_string())
        .detail(json!({
            "action": entry.record.as_ref().map(|r| r.action.as_str()),
            "outcome": entry.record.as_ref().map(|r| r.outcome.as_str()),
            "event": entry.event.as_ref().map(|e| e.kind.as_str()),
        }));
    match store.append_journal(&[loss], &[]).await {
        Ok(stored) => {
            for event in stored {
                let _ = events.send(event);
            }
        }
        Err(e) => tracing::error!(error = %e, "could not record the loss of an audit entry"),
    }
}
