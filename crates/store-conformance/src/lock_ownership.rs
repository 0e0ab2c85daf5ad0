//! A lock belongs to the credential that took it: its ID, which every other client sees in a
//! 423 answer, is not a key to it.

use std::sync::Arc;

use statehouse_core::model::{LockOutcome, WriteOutcome};
use statehouse_core::store::Store;

use crate::{
    at, ensure, expect_forbidden, expect_locked, live, lock_request, ok, unlock_request, versions,
    workspace, write, write_of,
};

pub async fn a_lock_id_works_only_with_the_credential_that_took_it(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let base = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-1", 1, "lin", "a"),
    )
    .await;
    let taken = lock_request("L1", "tok-a", at(1));
    ok(store.lock_state(&ws.id, "net", &taken).await, "lock_state");
    let held = live(&*store, &ws, "net").await.lock;

    // Another credential presenting the holder's ID: a conflict naming the holder.
    let copied = lock_request("L1", "tok-b", at(2));
    let holder = expect_locked(
        store.lock_state(&ws.id, "net", &copied).await,
        "another token locking with the holder's lock ID",
    );
    assert_eq!(
        holder, taken.info,
        "the conflict carries the holder's LockInfo"
    );
    let mut through = write_of(&state.id, "v-2", 2, "lin", "b");
    through.lock_id = Some("L1".into());
    through.token_id = "tok-b".into();
    expect_locked(
        store.write_version(&ws.id, "net", through.clone()).await,
        "another token writing with the holder's lock ID",
    );
    let mut same = write_of(&state.id, "v-x", 1, "lin", "a");
    same.lock_id = Some("L1".into());
    same.token_id = "tok-b".into();
    expect_locked(
        store.write_version(&ws.id, "net", same).await,
        "another token's identical write with the holder's lock ID",
    );
    expect_forbidden(
        store
            .unlock_state(&ws.id, "net", &unlock_request(Some("L1"), "tok-b", false))
            .await,
        "another non-admin token unlocking with the holder's lock ID",
    );
    assert_eq!(
        live(&*store, &ws, "net").await.lock,
        held,
        "the lock is as its holder took it"
    );
    assert_eq!(
        versions(&*store, &state.id).await,
        vec![base],
        "nothing written"
    );

    // The holder's retry and write still work.
    assert_eq!(
        ok(
            store
                .lock_state(&ws.id, "net", &lock_request("L1", "tok-a", at(3)))
                .await,
            "the holder's retried LOCK"
        ),
        LockOutcome::AlreadyHeld
    );
    through.token_id = "tok-a".into();
    assert!(matches!(
        ok(
            store.write_version(&ws.id, "net", through).await,
            "the holder's write"
        ),
        WriteOutcome::Created(_)
    ));
}
