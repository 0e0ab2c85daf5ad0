//! The journal writer: one task per process that appends audit records and events to the store
//! in batches (group commit), then broadcasts the stored events to in-process subscribers.
//!
//! Callers put an item on a bounded queue. Mutations wait until their item is committed
//! ([`Journal::commit`]); reads only wait for room in the queue ([`Journal::enqueue`]). While
//! one batch is being written the next one gathers, so under load each transaction carries
//! many entries and costs a single commit. [`Journal::flush`] returns once everything queued
//! before it is stored (graceful shutdown, CLI commands before they exit).

use std::sync::{Arc, OnceLock};

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

type Reply = oneshot::Sender<Result<Option<Event>>>;

// Entries are the common case and move through the queue once; boxing them would cost an
// allocation per entry to save memory only in the rare flush marker.
#[allow(clippy::large_enum_variant)]
enum Item {
    Entry {
        record: Option<AuditRecord>,
        event: Option<NewEvent>,
        reply: Option<Reply>,
    },
    Flush(oneshot::Sender<()>),
}

pub struct Journal {
    store: Arc<dyn Store>,
    /// Started on first use, so that building services needs no async runtime.
    queue: OnceLock<mpsc::Sender<Item>>,
    events: broadcast::Sender<Event>,
}

impl Journal {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Journal {
            store,
            queue: OnceLock::new(),
            events: broadcast::channel(BROADCAST_CAPACITY).0,
        }
    }

    fn queue(&self) -> &mpsc::Sender<Item> {
        self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            tokio::spawn(write_loop(self.store.clone(), rx, self.events.clone()));
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
            .send(Item::Entry {
                record,
                event,
                reply: Some(reply),
            })
            .await
            .map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }

    /// Queues a record without waiting for it to be stored (reads, refusals).
    pub async fn enqueue(&self, record: AuditRecord) {
        let item = Item::Entry {
            record: Some(record),
            event: None,
            reply: None,
        };
        if self.queue().send(item).await.is_err() {
            tracing::error!("audit journal writer is gone; an audit record was lost");
        }
    }

    /// Returns once everything queued before this call is stored (or failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue().send(Item::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Events as they are stored by this process, for in-process subscribers.
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
) {
    let mut first = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut first, 1).await > 0 {
        // The batch is what is queued when the store is ready to write: requests that were
        // writing (and queued their entries meanwhile) join it.
        let mut replies: Vec<(Reply, Option<usize>)> = Vec::new();
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        let mut counts = (0usize, 0usize);
        let mut take = || {
            let mut items = std::mem::take(&mut first);
            while items.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(item) => items.push(item),
                    Err(_) => break,
                }
            }
            let mut records = Vec::new();
            let mut new_events = Vec::new();
            for item in items {
                match item {
                    Item::Entry {
                        record,
                        event,
                        reply,
                    } => {
                        records.extend(record);
                        let event_index = event.map(|e| {
                            new_events.push(e);
                            new_events.len() - 1
                        });
                        if let Some(reply) = reply {
                            replies.push((reply, event_index));
                        }
                    }
                    Item::Flush(done) => flushes.push(done),
                }
            }
            counts = (records.len(), new_events.len());
            (records, new_events)
        };
        let result = store.append_queued(&mut take).await;
        match result {
            Ok(stored) => {
                for (reply, index) in replies {
                    let _ = reply.send(Ok(index.and_then(|i| stored.get(i).cloned())));
                }
                for event in stored {
                    // No subscribers is fine.
                    let _ = events.send(event);
                }
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    records = counts.0,
                    events = counts.1,
                    "could not store audit records and events"
                );
                for (reply, _) in replies {
                    let _ = reply.send(Err(Error::Store(format!(
                        "the audit log could not record this operation: {e}"
                    ))));
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}
