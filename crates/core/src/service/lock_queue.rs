//! LOCK with `lock_wait`: a request that finds the state locked joins the state's queue and
//! waits until a release hands it the lock, its wait runs out, or its client goes away (the
//! request's future is dropped, which takes it out of the queue). See [`crate::lock_queue`].

use std::time::Duration;

use super::Services;
use super::locks::LockAsk;
use crate::access::{Principal, Role};
use crate::audit::AuditRecord;
use crate::clock::Timestamp;
use crate::lock_queue::{
    LockOrQueue, LockWaiter, QueuedLock, WAITER_HEARTBEAT, WAITER_POLL, WAITER_TTL, WaitStatus,
};
use crate::model::{LockOutcome, LockRequest, UnlockOutcome, UnlockRequest};
use crate::names::StateName;
use crate::store::pending::JournalEntries;
use crate::{Error, Result};

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Waiters seen since this are alive at `now`.
fn live_since(now: Timestamp) -> Timestamp {
    now.plus_millis(-millis(WAITER_TTL))
}

/// What LOCKs waiting in line listen to, shared by every clone of the services.
#[derive(Default)]
pub(crate) struct LockSignals {
    /// Woken when this process releases a lock, so its waiters look at once (waiters of other
    /// replicas find out by polling).
    pub(crate) released: tokio::sync::Notify,
    /// Turns `true` when the server begins to shut down: waiting LOCKs leave the line then.
    shutdown: std::sync::OnceLock<tokio::sync::watch::Receiver<bool>>,
}

/// Resolves once `shutdown` turns `true`; never without a shutdown signal (CLI processes) or
/// once its sender is gone.
async fn stopping(shutdown: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    if let Some(rx) = shutdown
        && rx.wait_for(|stop| *stop).await.is_ok()
    {
        return;
    }
    std::future::pending::<()>().await;
}

impl Services {
    /// The signal that the server is shutting down: LOCKs waiting in line then leave it and
    /// are answered 503 (clients retry on 5xx, on a replica that stays).
    pub fn with_shutdown(self, shutdown: tokio::sync::watch::Receiver<bool>) -> Self {
        let _ = self.lock_signals.shutdown.set(shutdown);
        self
    }

    /// Takes the state's lock, waiting up to `wait` (`None`: the workspace's `lock_wait`) for
    /// a held one, first come first served with the other waiters on every replica. Without a
    /// wait it is [`Services::lock_state`]. Audited as `lock.acquire` once the lock is taken,
    /// or once the wait is given up (refused with the holder's LockInfo, as a LOCK that does
    /// not wait).
    pub async fn lock_state_waiting(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        info: &[u8],
        wait: Option<Duration>,
    ) -> Result<LockOutcome> {
        let record = AuditRecord::by(who, "lock.acquire", self.now())
            .workspace(ws)
            .target(name);
        let result = async {
            // Checked and authorized once, whether it waits or not (LOCK is a hot path).
            let ask = self.lock_ask(who, ws, name, info).await?;
            let wait = wait.unwrap_or_else(|| {
                ask.workspace
                    .settings
                    .lock_wait_millis
                    .and_then(|ms| u64::try_from(ms).ok())
                    .map_or(Duration::ZERO, Duration::from_millis)
            });
            if wait.is_zero() {
                self.take_lock(who, &ask, &record).await
            } else {
                self.wait_for_lock(who, ws, ask, wait, &record).await
            }
        }
        .await;
        self.conclude_change(result, record).await
    }

    async fn wait_for_lock(
        &self,
        who: &Principal,
        ws: &str,
        ask: LockAsk,
        wait: Duration,
        record: &AuditRecord,
    ) -> Result<LockOutcome> {
        let LockAsk {
            name,
            workspace,
            request,
            value,
        } = ask;
        let entries = |outcome| {
            let waited = record
                .clone()
                .detail(serde_json::json!({"lock_wait_ms": millis(wait)}));
            self.lock_entries(
                &waited,
                &workspace,
                name.as_str(),
                who,
                &request.id,
                &value,
                &outcome,
            )
        };
        let (acquired, already_held) = (
            entries(LockOutcome::Acquired),
            entries(LockOutcome::AlreadyHeld),
        );
        let waiter_id = super::new_id();
        let waiter = LockWaiter {
            id: &waiter_id,
            request: &request,
            acquired: &acquired,
            already_held: &already_held,
        };
        let joined = self
            .store
            .lock_or_enqueue(
                &workspace.id,
                name.as_str(),
                &waiter,
                live_since(request.at),
            )
            .await?;
        if let LockOrQueue::Locked(outcome) = joined {
            return Ok(outcome);
        }
        tracing::debug!(workspace = ws, state = name.as_str(), lock_id = %request.id, "LOCK waits in the queue");
        let mut queued = Queued {
            services: self.clone(),
            waiter_id: waiter_id.clone(),
            workspace_id: workspace.id.clone(),
            workspace: workspace.name.clone(),
            name: name.as_str().to_owned(),
            request: request.clone(),
            who: who.clone(),
            armed: true,
        };
        let deadline = request.at.plus_millis(millis(wait));
        let mut touched = request.at;
        let mut shutdown = self.lock_signals.shutdown.get().cloned();
        loop {
            let released = self.lock_signals.released.notified();
            let mut stop = false;
            tokio::select! {
                () = released => {}
                () = tokio::time::sleep(WAITER_POLL) => {}
                () = stopping(&mut shutdown) => stop = true,
            }
            if stop {
                queued.armed = false;
                let left = self.store.leave_lock_queue(&waiter_id).await?;
                // Not in the line any more: maybe handed the lock as the server stopped.
                if !left
                    && self
                        .store
                        .lock_wait_status(&workspace.id, name.as_str(), &waiter_id, &request, None)
                        .await?
                        == WaitStatus::Granted
                {
                    return Ok(LockOutcome::Acquired);
                }
                return Err(Error::Unavailable(
                    "this server is shutting down: the LOCK left the line; retry it (another replica, or this one once restarted)".into(),
                ));
            }
            let now = self.now();
            let touch =
                (now.millis() - touched.millis() >= millis(WAITER_HEARTBEAT)).then_some(now);
            if let Some(at) = touch {
                touched = at;
            }
            let status = self
                .store
                .lock_wait_status(&workspace.id, name.as_str(), &waiter_id, &request, touch)
                .await?;
            match status {
                WaitStatus::Granted => {
                    queued.armed = false;
                    return Ok(LockOutcome::Acquired);
                }
                WaitStatus::Gone => {
                    queued.armed = false;
                    return Err(Error::Conflict(
                        "the state was deleted while this LOCK waited for it, or the wait was given up".into(),
                    ));
                }
                WaitStatus::Waiting if now >= deadline => {
                    queued.armed = false;
                    if !self.store.leave_lock_queue(&waiter_id).await? {
                        // Handed the lock just now.
                        let status = self
                            .store
                            .lock_wait_status(
                                &workspace.id,
                                name.as_str(),
                                &waiter_id,
                                &request,
                                None,
                            )
                            .await?;
                        if status == WaitStatus::Granted {
                            return Ok(LockOutcome::Acquired);
                        }
                    }
                    // As a LOCK that does not wait: refused with the holder's LockInfo, unless
                    // the lock has just become free.
                    let journal = |outcome: &LockOutcome| entries(*outcome);
                    return self
                        .store
                        .lock_state_journaled(&workspace.id, name.as_str(), &request, &journal)
                        .await;
                }
                WaitStatus::Waiting => {}
            }
        }
    }

    /// The LOCK requests waiting for a state's lock, first in line first.
    pub async fn lock_queue(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
    ) -> Result<Vec<QueuedLock>> {
        let name = StateName::parse(name)?;
        let workspace = self.visible_workspace(who, ws).await?;
        who.require(&workspace.id, Role::Viewer, "viewing a state's lock queue")?;
        self.store
            .lock_queue(&workspace.id, name.as_str(), live_since(self.now()))
            .await
    }

    /// A waiter whose request went away: out of the queue; if a release handed it the lock in
    /// the meantime, the lock is released again (audited), so the next waiter gets it.
    async fn abandon_wait(self, q: QueuedFacts) {
        match self.store.leave_lock_queue(&q.waiter_id).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot take an abandoned LOCK out of the queue; it is passed over once unseen for 10 s");
                return;
            }
        }
        let granted = self
            .store
            .lock_wait_status(&q.workspace_id, &q.name, &q.waiter_id, &q.request, None)
            .await;
        if granted.ok() != Some(WaitStatus::Granted) {
            return;
        }
        let request = UnlockRequest {
            id: Some(q.request.id.clone()),
            token_id: q.request.token_id.clone(),
            is_admin: false,
            at: self.now(),
        };
        let record = AuditRecord::by(&q.who, "lock.release", self.now())
            .workspace(&q.workspace)
            .target(&q.name)
            .detail(serde_json::json!({
                "lock_id": q.request.id,
                "reason": "the client that waited for this lock went away before it was handed over",
            }));
        let journal = |outcome: &UnlockOutcome| match outcome {
            UnlockOutcome::NotLocked => JournalEntries::default(),
            _ => JournalEntries::of(record.clone(), None),
        };
        match self
            .store
            .unlock_state_journaled(&q.workspace_id, &q.name, &request, &journal)
            .await
        {
            Ok(_) => self.lock_signals.released.notify_waiters(),
            Err(e) => {
                tracing::warn!(error = %e, state = %q.name, "cannot release a lock whose waiting client went away")
            }
        }
    }
}

/// What an abandoned waiter needs to leave the queue.
struct QueuedFacts {
    waiter_id: String,
    workspace_id: String,
    workspace: String,
    name: String,
    request: LockRequest,
    who: Principal,
}

/// A request in the queue; dropped while still `armed` (its client went away), it leaves.
struct Queued {
    services: Services,
    waiter_id: String,
    workspace_id: String,
    workspace: String,
    name: String,
    request: LockRequest,
    who: Principal,
    armed: bool,
}

impl Drop for Queued {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let facts = QueuedFacts {
            waiter_id: std::mem::take(&mut self.waiter_id),
            workspace_id: std::mem::take(&mut self.workspace_id),
            workspace: std::mem::take(&mut self.workspace),
            name: std::mem::take(&mut self.name),
            request: self.request.clone(),
            who: self.who.clone(),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(self.services.clone().abandon_wait(facts));
        }
    }
}
