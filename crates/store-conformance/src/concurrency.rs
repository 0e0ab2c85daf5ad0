//! Races: concurrent locks, writes and `ensure_state` on one store, and on two stores on one
//! database (two statehouse processes).

use std::collections::HashSet;
use std::sync::Arc;

use statehouse_core::Error;
use statehouse_core::model::{
    LockOutcome, LockRequest, StateFilter, VersionMeta, VersionWrite, WriteOutcome,
};
use statehouse_core::store::Store;

use crate::{
    T0, at, ensure, expect_locked, live, lock_request, ok, unlock_request, versions, workspace,
    write, write_of,
};

const RACERS: usize = 16;

/// Runs `n` tasks at once (each on the runtime's worker threads) and collects their results.
pub(crate) async fn race<T, F, Fut>(n: usize, task: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let start = start.clone();
            let fut = task(i);
            tokio::spawn(async move {
                start.wait().await;
                fut.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for handle in handles {
        results.push(handle.await.expect("a racing task panicked"));
    }
    results
}

/// Store `i` of a race: alternates between the two stores (which may be the same one).
fn pick(stores: &[Arc<dyn Store>; 2], i: usize) -> Arc<dyn Store> {
    stores[i % 2].clone()
}

async fn lock_race(stores: [Arc<dyn Store>; 2]) {
    let ws = workspace(&*stores[0], "ws").await;
    // The state does not exist yet: the racers also race to create it.
    let results = race(RACERS, |i| {
        let store = pick(&stores, i);
        let ws_id = ws.id.clone();
        async move {
            let req = lock_request(&format!("L{i}"), &format!("tok-{i}"), at(i as i64));
            (req.clone(), store.lock_state(&ws_id, "raced", &req).await)
        }
    })
    .await;
    let winners: Vec<&LockRequest> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(LockOutcome::Acquired)))
        .map(|(req, _)| req)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of {RACERS} concurrent LOCKs must win, got {:?}",
        results.iter().map(|(_, r)| r).collect::<Vec<_>>()
    );
    let winner = winners[0];
    for (req, result) in &results {
        if req.id != winner.id {
            match result {
                Err(Error::Locked { holder_info }) => assert_eq!(
                    holder_info, &winner.info,
                    "losers see the winner's LockInfo"
                ),
                other => panic!(
                    "lock {:?} should have lost with Locked, got {other:?}",
                    req.id
                ),
            }
        }
    }
    for store in &stores {
        let record = live(&**store, &ws, "raced").await;
        assert_eq!(record.lock.map(|l| l.id), Some(winner.id.clone()));
        let states = ok(
            store.list_states(&ws.id, &StateFilter::default()).await,
            "list_states",
        );
        assert_eq!(states.len(), 1, "the race created exactly one state");
    }
}

async fn write_race(stores: [Arc<dyn Store>; 2]) {
    let ws = workspace(&*stores[0], "ws").await;
    let state = ensure(&*stores[0], &ws, "raced").await;
    write(
        &*stores[0],
        &ws,
        "raced",
        &write_of(&state.id, "v-base", 1, "lin", "base"),
    )
    .await;
    let results = race(RACERS, |i| {
        let store = pick(&stores, i);
        let ws_id = ws.id.clone();
        let w = write_of(&state.id, &format!("v-{i}"), 2, "lin", &format!("body-{i}"));
        async move {
            let result = store.write_version(&ws_id, "raced", w.clone()).await;
            (w, result)
        }
    })
    .await;
    let winners: Vec<(&VersionWrite, &VersionMeta)> = results
        .iter()
        .filter_map(|(w, r)| match r {
            Ok(WriteOutcome::Created(meta)) => Some((w, meta)),
            _ => None,
        })
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of {RACERS} writes of serial 2 on top of serial 1 must win, got {:?}",
        results.iter().map(|(_, r)| r).collect::<Vec<_>>()
    );
    let (winning_write, winning_meta) = winners[0];
    assert_eq!(winning_meta.version_no, 2);
    for (w, result) in &results {
        if w.version_id != winning_write.version_id {
            assert!(
                matches!(result, Err(Error::Conflict(_))),
                "write {:?} should have lost with Conflict, got {result:?}",
                w.version_id
            );
        }
    }
    for store in &stores {
        assert_eq!(
            versions(&**store, &state.id).await.len(),
            2,
            "exactly one version was added"
        );
        let (meta, body) = ok(store.current_body(&ws.id, "raced").await, "current_body").unwrap();
        assert_eq!(&meta, winning_meta);
        assert!(
            body == winning_write.sealed,
            "the winner's bytes are current"
        );
    }
}

async fn ensure_race(stores: [Arc<dyn Store>; 2]) {
    let ws = workspace(&*stores[0], "ws").await;
    let results = race(RACERS, |i| {
        let store = pick(&stores, i);
        let ws_id = ws.id.clone();
        async move { store.ensure_state(&ws_id, "raced", at(i as i64)).await }
    })
    .await;
    let ids: HashSet<String> = results
        .into_iter()
        .map(|r| ok(r, "concurrent ensure_state").id)
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "all concurrent ensure_state calls see one state"
    );
    for store in &stores {
        assert_eq!(
            ok(
                store.list_states(&ws.id, &StateFilter::default()).await,
                "list_states"
            )
            .len(),
            1
        );
    }
}

pub async fn concurrent_locks_exactly_one_wins(store: Arc<dyn Store>) {
    lock_race([store.clone(), store]).await;
}

pub async fn concurrent_writes_exactly_one_wins(store: Arc<dyn Store>) {
    write_race([store.clone(), store]).await;
}

pub async fn concurrent_ensure_yields_one_state(store: Arc<dyn Store>) {
    ensure_race([store.clone(), store]).await;
}

// ---- two stores on one database (two statehouse processes) -----------------------------------

pub async fn two_stores_see_each_others_changes(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    assert_eq!(
        ok(peer.workspace_by_name("ws").await, "peer workspace_by_name"),
        Some(ws.clone()),
        "the peer sees the workspace"
    );
    let state = ensure(&*peer, &ws, "net").await;
    let w = write_of(&state.id, "v-1", 1, "lin", "a");
    write(&*store, &ws, "net", &w).await;
    let (_, body) = ok(peer.current_body(&ws.id, "net").await, "peer current_body")
        .expect("the peer sees the write");
    assert!(body == w.sealed);
    ok(
        peer.lock_state(&ws.id, "net", &lock_request("L1", "tok-a", at(1)))
            .await,
        "peer lock_state",
    );
    let mut blocked = write_of(&state.id, "v-2", 2, "lin", "b");
    expect_locked(
        store.write_version(&ws.id, "net", blocked.clone()).await,
        "writing through one store while the other holds the lock",
    );
    blocked.lock_id = Some("L1".into());
    write(&*store, &ws, "net", &blocked).await;
    ok(
        store
            .unlock_state(&ws.id, "net", &unlock_request(Some("L1"), "tok-a", false))
            .await,
        "unlock_state",
    );
    assert_eq!(live(&*peer, &ws, "net").await.lock, None);
    assert!(ok(peer.claim_flag("once", T0).await, "claim_flag"));
    assert!(!ok(store.claim_flag("once", T0).await, "claim_flag"));
}

pub async fn two_stores_concurrent_locks_exactly_one_wins(
    store: Arc<dyn Store>,
    peer: Arc<dyn Store>,
) {
    lock_race([store, peer]).await;
}

pub async fn two_stores_concurrent_writes_exactly_one_wins(
    store: Arc<dyn Store>,
    peer: Arc<dyn Store>,
) {
    write_race([store, peer]).await;
}

pub async fn two_stores_concurrent_ensure_yields_one_state(
    store: Arc<dyn Store>,
    peer: Arc<dyn Store>,
) {
    ensure_race([store, peer]).await;
}
