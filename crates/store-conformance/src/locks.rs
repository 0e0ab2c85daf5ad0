//! Locks: taken, retried with the same ID, refused to others with the holder's LockInfo,
//! respected by writes, released by the holder or forced by an admin.

use std::sync::Arc;

use statehouse_core::model::{HeldLock, LockOutcome, StateFilter, UnlockOutcome, WriteOutcome};
use statehouse_core::store::Store;

use crate::{
    at, ensure, expect_conflict, expect_forbidden, expect_locked, live, lock_request, ok,
    unlock_request, versions, workspace, write, write_of,
};

pub async fn lock_acquire_records_holder(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let req = lock_request("L1", "tok-a", at(42));
    assert_eq!(
        ok(store.lock_state(&ws.id, "net", &req).await, "lock_state"),
        LockOutcome::Acquired
    );
    let record = live(&*store, &ws, "net").await;
    assert_eq!(record.id, state.id);
    assert_eq!(
        record.lock,
        Some(HeldLock {
            id: "L1".into(),
            info: req.info.clone(),
            token_id: "tok-a".into(),
            holder: "tok-a-name".into(),
            locked_at: at(42),
        }),
        "the lock keeps the LockInfo exactly as sent, the token and the time"
    );
    let listed = ok(
        store.list_states(&ws.id, &StateFilter::default()).await,
        "list_states",
    );
    assert_eq!(listed, vec![record], "list_states shows the lock too");
}

pub async fn lock_is_idempotent_for_same_id(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let req = lock_request("L1", "tok-a", at(1));
    assert_eq!(
        ok(store.lock_state(&ws.id, "net", &req).await, "lock_state"),
        LockOutcome::Acquired
    );
    let held = live(&*store, &ws, "net").await.lock;
    let retry = lock_request("L1", "tok-a", at(2));
    for _ in 0..2 {
        assert_eq!(
            ok(
                store.lock_state(&ws.id, "net", &retry).await,
                "lock_state again"
            ),
            LockOutcome::AlreadyHeld,
            "a retried LOCK with the same ID succeeds"
        );
    }
    assert_eq!(
        live(&*store, &ws, "net").await.lock,
        held,
        "a retried LOCK leaves the lock as it was"
    );
}

pub async fn lock_by_other_id_reports_holder(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let first = lock_request("L1", "tok-a", at(1));
    ok(store.lock_state(&ws.id, "net", &first).await, "lock_state");
    for other in [
        lock_request("L2", "tok-b", at(2)),
        lock_request("L2", "tok-a", at(2)),
    ] {
        let holder = expect_locked(
            store.lock_state(&ws.id, "net", &other).await,
            "locking a locked state with another ID",
        );
        assert_eq!(
            holder, first.info,
            "the conflict carries the holder's LockInfo as sent"
        );
    }
    assert_eq!(
        live(&*store, &ws, "net").await.lock.map(|l| l.id),
        Some("L1".into())
    );
}

pub async fn lock_creates_missing_state(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    assert_eq!(ok(store.state(&ws.id, "new/one").await, "state"), None);
    let req = lock_request("L1", "tok-a", at(3));
    assert_eq!(
        ok(
            store.lock_state(&ws.id, "new/one", &req).await,
            "lock_state"
        ),
        LockOutcome::Acquired
    );
    let record = live(&*store, &ws, "new/one").await;
    assert_eq!(record.current, None, "the state has no version yet");
    assert_eq!(record.lock.map(|l| l.id), Some("L1".into()));
    let again = ensure(&*store, &ws, "new/one").await;
    assert_eq!(
        again.id, record.id,
        "ensure_state finds the state the lock created"
    );
    // The first write under that lock lands on it.
    let mut w = write_of(&record.id, "v-1", 1, "lin", "a");
    w.lock_id = Some("L1".into());
    assert_eq!(write(&*store, &ws, "new/one", &w).await.version_no, 1);
}

pub async fn write_respects_lock(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let base = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-1", 1, "lin", "a"),
    )
    .await;
    let req = lock_request("L1", "tok-a", at(1));
    ok(store.lock_state(&ws.id, "net", &req).await, "lock_state");

    let mut w = write_of(&state.id, "v-2", 2, "lin", "b");
    for claimed in [None, Some("L2")] {
        w.lock_id = claimed.map(str::to_owned);
        let holder = expect_locked(
            store.write_version(&ws.id, "net", w.clone()).await,
            &format!("writing a locked state claiming lock {claimed:?}"),
        );
        assert_eq!(holder, req.info);
    }
    // Identical content does not slip past the lock either.
    let mut same = write_of(&state.id, "v-x", 1, "lin", "a");
    expect_locked(
        store.write_version(&ws.id, "net", same.clone()).await,
        "an identical write without the lock ID",
    );
    same.lock_id = Some("L1".into());
    assert_eq!(
        ok(
            store.write_version(&ws.id, "net", same.clone()).await,
            "identical write with lock"
        ),
        WriteOutcome::Unchanged(base)
    );
    assert_eq!(
        versions(&*store, &state.id).await.len(),
        1,
        "refused writes store nothing"
    );

    w.lock_id = Some("L1".into());
    let meta = write(&*store, &ws, "net", &w).await;
    assert_eq!(meta.version_no, 2, "the holder's write goes through");
    assert!(
        live(&*store, &ws, "net").await.lock.is_some(),
        "a write does not release the lock"
    );

    ok(
        store
            .unlock_state(&ws.id, "net", &unlock_request(Some("L1"), "tok-a", false))
            .await,
        "unlock_state",
    );
    let mut after = write_of(&state.id, "v-3", 3, "lin", "c");
    after.lock_id = Some("L1".into());
    expect_conflict(
        store.write_version(&ws.id, "net", after.clone()).await,
        "writing with a lock ID that is no longer held",
    );
    after.lock_id = None;
    assert_eq!(write(&*store, &ws, "net", &after).await.version_no, 3);
}

pub async fn unlock_by_holder_releases(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let req = lock_request("L1", "tok-a", at(1));
    ok(store.lock_state(&ws.id, "net", &req).await, "lock_state");
    let held = live(&*store, &ws, "net").await.lock.unwrap();
    assert_eq!(held.id, "L1");
    assert_eq!(
        ok(
            store
                .unlock_state(&ws.id, "net", &unlock_request(Some("L1"), "tok-a", false))
                .await,
            "unlock_state"
        ),
        UnlockOutcome::Released,
        "the holder releases its own lock, not forced"
    );
    assert_eq!(live(&*store, &ws, "net").await.lock, None);
    let next = lock_request("L2", "tok-b", at(2));
    assert_eq!(
        ok(store.lock_state(&ws.id, "net", &next).await, "lock_state"),
        LockOutcome::Acquired,
        "a released lock can be taken by someone else"
    );
}

pub async fn unlock_by_other_token_needs_admin(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    ok(
        store
            .lock_state(&ws.id, "net", &lock_request("L1", "tok-a", at(1)))
            .await,
        "lock_state",
    );
    let held = live(&*store, &ws, "net").await.lock.unwrap();
    expect_forbidden(
        store
            .unlock_state(&ws.id, "net", &unlock_request(Some("L1"), "tok-b", false))
            .await,
        "another non-admin token unlocking with the right ID",
    );
    expect_forbidden(
        store
            .unlock_state(&ws.id, "net", &unlock_request(None, "tok-a", false))
            .await,
        "a non-admin force-unlock without ID (even by the holder's token)",
    );
    let holder = expect_locked(
        store
            .unlock_state(&ws.id, "net", &unlock_request(Some("L9"), "tok-a", true))
            .await,
        "unlocking with a wrong lock ID (even as admin)",
    );
    assert_eq!(holder, held.info);
    assert_eq!(
        live(&*store, &ws, "net").await.lock,
        Some(held.clone()),
        "refused unlocks leave the lock in place"
    );
    assert_eq!(
        ok(
            store
                .unlock_state(&ws.id, "net", &unlock_request(Some("L1"), "tok-b", true))
                .await,
            "admin unlock"
        ),
        UnlockOutcome::ForceReleased { previous: held },
        "an admin releasing another token's lock is a forced unlock"
    );
    assert_eq!(live(&*store, &ws, "net").await.lock, None);
}

pub async fn admin_force_unlock_without_id(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    ok(
        store
            .lock_state(&ws.id, "net", &lock_request("L1", "tok-a", at(1)))
            .await,
        "lock_state",
    );
    let held = live(&*store, &ws, "net").await.lock.unwrap();
    assert_eq!(
        ok(
            store
                .unlock_state(&ws.id, "net", &unlock_request(None, "tok-admin", true))
                .await,
            "force-unlock"
        ),
        UnlockOutcome::ForceReleased { previous: held }
    );
    assert_eq!(live(&*store, &ws, "net").await.lock, None);
}

pub async fn unlock_when_not_locked(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    ensure(&*store, &ws, "net").await;
    for (name, why) in [("net", "an unlocked state"), ("missing", "a missing state")] {
        for req in [
            unlock_request(Some("L1"), "tok-a", false),
            unlock_request(None, "tok-a", true),
        ] {
            assert_eq!(
                ok(store.unlock_state(&ws.id, name, &req).await, "unlock_state"),
                UnlockOutcome::NotLocked,
                "unlocking {why}"
            );
        }
    }
    assert_eq!(
        ok(store.state(&ws.id, "missing").await, "state"),
        None,
        "unlock does not create states"
    );
}
