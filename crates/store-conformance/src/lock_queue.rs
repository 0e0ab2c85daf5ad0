//! The lock queue (`lock_wait`): a LOCK on a held lock waits in line; each release hands the
//! lock to the oldest waiter still seen, so nobody jumps the queue; waiters not seen for
//! [`WAITER_TTL`] are passed over; a waiter can leave.

use std::sync::Arc;

use statehouse_core::clock::Timestamp;
use statehouse_core::lock_queue::{LockOrQueue, LockWaiter, WAITER_TTL, WaitStatus};
use statehouse_core::model::{LockOutcome, LockRequest, UnlockRequest};
use statehouse_core::store::Store;
use statehouse_core::store::pending::JournalEntries;

use crate::{at, expect_locked, live, lock_request, ok, workspace};

fn ttl_millis() -> i64 {
    i64::try_from(WAITER_TTL.as_millis()).unwrap_or(i64::MAX)
}

/// Waiters seen since this are alive at `now`.
fn live_since(now: Timestamp) -> Timestamp {
    now.plus_millis(-ttl_millis())
}

async fn join(
    store: &dyn Store,
    ws_id: &str,
    waiter_id: &str,
    request: &LockRequest,
) -> LockOrQueue {
    let none = JournalEntries::default();
    let waiter = LockWaiter {
        id: waiter_id,
        request,
        acquired: &none,
        already_held: &none,
    };
    ok(
        store
            .lock_or_enqueue(ws_id, "net", &waiter, live_since(request.at))
            .await,
        "lock_or_enqueue",
    )
}

fn release(id: &str, token: &str, when: Timestamp) -> UnlockRequest {
    UnlockRequest {
        id: Some(id.to_owned()),
        token_id: token.to_owned(),
        is_admin: false,
        at: when,
    }
}

async fn holder(store: &dyn Store, ws: &statehouse_core::model::Workspace) -> Option<String> {
    live(store, ws, "net").await.lock.map(|l| l.id)
}

async fn queue_ids(store: &dyn Store, ws_id: &str, now: Timestamp) -> Vec<String> {
    ok(
        store.lock_queue(ws_id, "net", live_since(now)).await,
        "lock_queue",
    )
    .into_iter()
    .map(|q| q.lock_id)
    .collect()
}

pub async fn queued_locks_are_handed_over_first_come_first_served(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    // A free lock is taken at once; the same request again is answered as held.
    let first = lock_request("L1", "tok-a", at(1));
    assert_eq!(
        join(&*store, &ws.id, "w1", &first).await,
        LockOrQueue::Locked(LockOutcome::Acquired)
    );
    assert_eq!(
        join(
            &*store,
            &ws.id,
            "w1-again",
            &lock_request("L1", "tok-a", at(2))
        )
        .await,
        LockOrQueue::Locked(LockOutcome::AlreadyHeld)
    );
    let (second, third) = (
        lock_request("L2", "tok-b", at(3)),
        lock_request("L3", "tok-c", at(4)),
    );
    assert_eq!(
        join(&*store, &ws.id, "w2", &second).await,
        LockOrQueue::Queued
    );
    assert_eq!(
        join(&*store, &ws.id, "w3", &third).await,
        LockOrQueue::Queued
    );
    assert_eq!(queue_ids(&*store, &ws.id, at(5)).await, ["L2", "L3"]);
    let status = |waiter: &'static str, req: LockRequest| {
        let store = store.clone();
        let ws_id = ws.id.clone();
        async move {
            ok(
                store
                    .lock_wait_status(&ws_id, "net", waiter, &req, Some(at(5)))
                    .await,
                "lock_wait_status",
            )
        }
    };
    assert_eq!(status("w2", second.clone()).await, WaitStatus::Waiting);

    // A plain LOCK does not jump the line: the lock is held, and a release hands it on.
    expect_locked(
        store
            .lock_state(&ws.id, "net", &lock_request("L9", "tok-z", at(6)))
            .await,
        "a LOCK that does not wait",
    );
    ok(
        store
            .unlock_state(&ws.id, "net", &release("L1", "tok-a", at(7)))
            .await,
        "release L1",
    );
    assert_eq!(holder(&*store, &ws).await.as_deref(), Some("L2"));
    let record = live(&*store, &ws, "net").await;
    let lock = record.lock.unwrap();
    assert_eq!(
        (lock.token_id.as_str(), lock.holder.as_str(), lock.locked_at),
        ("tok-b", "tok-b-name", at(7)),
        "the lock is the waiter's, taken when it was handed over"
    );
    assert_eq!(status("w2", second.clone()).await, WaitStatus::Granted);
    assert_eq!(status("w3", third.clone()).await, WaitStatus::Waiting);
    assert_eq!(queue_ids(&*store, &ws.id, at(8)).await, ["L3"]);

    ok(
        store
            .unlock_state(&ws.id, "net", &release("L2", "tok-b", at(9)))
            .await,
        "release L2",
    );
    assert_eq!(holder(&*store, &ws).await.as_deref(), Some("L3"));
    ok(
        store
            .unlock_state(&ws.id, "net", &release("L3", "tok-c", at(10)))
            .await,
        "release L3",
    );
    assert_eq!(holder(&*store, &ws).await, None, "nobody left in line");
    assert!(queue_ids(&*store, &ws.id, at(11)).await.is_empty());
    // With the queue empty, locking and releasing work as before.
    ok(
        store
            .lock_state(&ws.id, "net", &lock_request("L4", "tok-a", at(12)))
            .await,
        "lock",
    );
    ok(
        store
            .unlock_state(&ws.id, "net", &release("L4", "tok-a", at(13)))
            .await,
        "unlock",
    );
    assert_eq!(holder(&*store, &ws).await, None);
}

pub async fn waiters_not_seen_are_passed_over_and_a_waiter_can_leave(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    join(&*store, &ws.id, "w1", &lock_request("L1", "tok-a", at(1))).await;
    let silent = lock_request("L2", "tok-b", at(2));
    let alive = lock_request("L3", "tok-c", at(3));
    let leaving = lock_request("L4", "tok-d", at(4));
    for (id, req) in [("w2", &silent), ("w3", &alive), ("w4", &leaving)] {
        assert_eq!(join(&*store, &ws.id, id, req).await, LockOrQueue::Queued);
    }
    // w4 leaves; leaving twice finds it gone.
    assert!(ok(store.leave_lock_queue("w4").await, "leave"));
    assert!(!ok(store.leave_lock_queue("w4").await, "leave again"));
    // Much later only w3 is still seen.
    let later = at(3 + 3 * ttl_millis());
    ok(
        store
            .lock_wait_status(&ws.id, "net", "w3", &alive, Some(later))
            .await,
        "heartbeat",
    );
    assert_eq!(queue_ids(&*store, &ws.id, later).await, ["L3"]);
    ok(
        store
            .unlock_state(&ws.id, "net", &release("L1", "tok-a", later))
            .await,
        "release",
    );
    assert_eq!(
        holder(&*store, &ws).await.as_deref(),
        Some("L3"),
        "the waiter not seen for longer than the TTL is passed over"
    );
    assert_eq!(
        ok(
            store
                .lock_wait_status(&ws.id, "net", "w2", &silent, None)
                .await,
            "status of the passed-over waiter",
        ),
        WaitStatus::Gone
    );
    // A force-unlock by an admin hands on too; with nobody waiting the lock is free.
    ok(
        store
            .unlock_state(
                &ws.id,
                "net",
                &UnlockRequest {
                    id: None,
                    token_id: "admin".into(),
                    is_admin: true,
                    at: later,
                },
            )
            .await,
        "force-unlock",
    );
    assert_eq!(holder(&*store, &ws).await, None);
}
