//! Deleting states (hidden, versions kept), reusing their names, restoring and purging them.

use std::sync::Arc;

use statehouse_core::model::{DeletedState, StateFilter};
use statehouse_core::store::Store;

use crate::{
    at, body_of, ensure, expect_conflict, expect_locked, live, lock_request, meta_of, ok,
    unlock_request, versions, workspace, write, write_of,
};

pub async fn delete_hides_state_keeps_versions(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let keep = ensure(&*store, &ws, "keep").await;
    let w1 = write_of(&state.id, "v-1", 1, "lin", "a");
    let w2 = write_of(&state.id, "v-2", 2, "lin", "b");
    write(&*store, &ws, "net", &w1).await;
    write(&*store, &ws, "net", &w2).await;
    assert!(ok(
        store
            .delete_state(&ws.id, "net", "admin-token", at(500))
            .await,
        "delete_state"
    ));
    assert_eq!(
        ok(store.state(&ws.id, "net").await, "state"),
        None,
        "a deleted state is not live"
    );
    assert_eq!(
        ok(
            store.list_states(&ws.id, &StateFilter::default()).await,
            "list_states"
        ),
        vec![keep],
        "list_states leaves deleted states out"
    );
    assert_eq!(
        ok(store.current_body(&ws.id, "net").await, "current_body").map(|(m, _)| m),
        None,
        "a deleted state has no current body"
    );
    let (meta, body) = body_of(&*store, &state.id, 2).await;
    assert_eq!(meta, meta_of(&w2, 2, false));
    assert!(
        body == w2.sealed,
        "versions of deleted states stay readable"
    );
    assert_eq!(versions(&*store, &state.id).await.len(), 2);
    assert_eq!(
        ok(
            store.list_deleted_states(&ws.id).await,
            "list_deleted_states"
        ),
        vec![DeletedState {
            id: state.id.clone(),
            workspace_id: ws.id.clone(),
            name: "net".into(),
            deleted_at: at(500),
            deleted_by: "admin-token".into(),
            versions: 2,
        }]
    );
    assert!(
        !ok(
            store.delete_state(&ws.id, "net", "admin", at(600)).await,
            "delete_state"
        ),
        "deleting again reports false"
    );
    assert!(
        !ok(
            store
                .delete_state(&ws.id, "missing", "admin", at(600))
                .await,
            "delete_state"
        ),
        "deleting a missing state reports false"
    );
    assert!(
        !ok(
            store
                .set_overwrite_until(&ws.id, "net", Some(at(9_000)))
                .await,
            "set_overwrite_until"
        ),
        "no overwrite window on a deleted state"
    );
    let other = workspace(&*store, "other").await;
    assert!(
        ok(
            store.list_deleted_states(&other.id).await,
            "list_deleted_states"
        )
        .is_empty(),
        "deleted states are listed per workspace"
    );
}

pub async fn delete_while_locked_is_refused(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let req = lock_request("L1", "tok-a", at(1));
    ok(store.lock_state(&ws.id, "net", &req).await, "lock_state");
    let holder = expect_locked(
        store.delete_state(&ws.id, "net", "admin", at(2)).await,
        "deleting a locked state",
    );
    assert_eq!(holder, req.info);
    assert!(
        live(&*store, &ws, "net").await.lock.is_some(),
        "the state is still live and locked"
    );
    assert!(
        ok(
            store.list_deleted_states(&ws.id).await,
            "list_deleted_states"
        )
        .is_empty()
    );
    ok(
        store
            .unlock_state(&ws.id, "net", &unlock_request(Some("L1"), "tok-a", false))
            .await,
        "unlock_state",
    );
    assert!(ok(
        store.delete_state(&ws.id, "net", "admin", at(3)).await,
        "delete_state"
    ));
}

pub async fn name_is_reusable_after_delete(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let old = ensure(&*store, &ws, "net").await;
    write(
        &*store,
        &ws,
        "net",
        &write_of(&old.id, "v-1", 9, "lin-old", "old"),
    )
    .await;
    assert!(ok(
        store.delete_state(&ws.id, "net", "admin", at(1)).await,
        "delete_state"
    ));
    let new = ok(
        store.ensure_state(&ws.id, "net", at(2)).await,
        "ensure_state",
    );
    assert_ne!(new.id, old.id);
    assert_eq!(new.current, None, "the new state starts empty");
    // Serial/lineage of the deleted state do not apply to the new one.
    let meta = write(
        &*store,
        &ws,
        "net",
        &write_of(&new.id, "v-2", 1, "lin-new", "new"),
    )
    .await;
    assert_eq!(meta.version_no, 1, "version numbers are per state");
    assert_eq!(
        ok(
            store.list_states(&ws.id, &StateFilter::default()).await,
            "list_states"
        )
        .into_iter()
        .map(|s| s.id)
        .collect::<Vec<_>>(),
        vec![new.id.clone()]
    );
    assert_eq!(
        ok(
            store.list_deleted_states(&ws.id).await,
            "list_deleted_states"
        )
        .into_iter()
        .map(|d| d.id)
        .collect::<Vec<_>>(),
        vec![old.id]
    );
    // A lock on the name goes to the new state.
    ok(
        store
            .lock_state(&ws.id, "net", &lock_request("L1", "tok-a", at(3)))
            .await,
        "lock_state",
    );
    assert_eq!(live(&*store, &ws, "net").await.id, new.id);
}

pub async fn restore_conflicts_with_live_name_then_works(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let first = ensure(&*store, &ws, "net").await;
    let w = write_of(&first.id, "v-1", 1, "lin", "first");
    let first_meta = write(&*store, &ws, "net", &w).await;
    assert!(ok(
        store.delete_state(&ws.id, "net", "admin", at(10)).await,
        "delete_state"
    ));
    let second = ensure(&*store, &ws, "net").await;
    let message = expect_conflict(
        store.restore_state(&ws.id, &first.id, at(20)).await,
        "restoring while a live state has the name",
    );
    assert!(
        message.contains("net"),
        "the conflict should name the state, got {message:?}"
    );
    assert_eq!(
        live(&*store, &ws, "net").await.id,
        second.id,
        "the live state is untouched"
    );
    assert!(
        !ok(
            store.restore_state(&ws.id, &second.id, at(20)).await,
            "restore_state"
        ),
        "restoring a live state reports false"
    );
    assert!(
        !ok(
            store.restore_state(&ws.id, "no-such-id", at(20)).await,
            "restore_state"
        ),
        "restoring an unknown state reports false"
    );
    let other = workspace(&*store, "other").await;
    assert!(
        !ok(
            store.restore_state(&other.id, &first.id, at(20)).await,
            "restore_state"
        ),
        "a state is restored only in its own workspace"
    );

    assert!(ok(
        store.delete_state(&ws.id, "net", "admin", at(30)).await,
        "delete_state"
    ));
    assert!(ok(
        store.restore_state(&ws.id, &first.id, at(40)).await,
        "restore_state"
    ));
    let restored = live(&*store, &ws, "net").await;
    assert_eq!(
        restored.id, first.id,
        "the restored state is live again under its name"
    );
    assert_eq!(
        restored.current,
        Some(first_meta),
        "with its current version"
    );
    assert_eq!(restored.lock, None);
    let (_, body) = ok(store.current_body(&ws.id, "net").await, "current_body").unwrap();
    assert!(body == w.sealed);
    assert_eq!(
        ok(
            store.list_deleted_states(&ws.id).await,
            "list_deleted_states"
        )
        .into_iter()
        .map(|d| d.id)
        .collect::<Vec<_>>(),
        vec![second.id],
        "only the other state is still deleted"
    );
    // Writes continue on top of the restored history.
    let next = write(
        &*store,
        &ws,
        "net",
        &write_of(&first.id, "v-2", 2, "lin", "next"),
    )
    .await;
    assert_eq!(next.version_no, 2);
}

pub async fn purge_removes_deleted_state_for_good(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let doomed = ensure(&*store, &ws, "doomed").await;
    let kept = ensure(&*store, &ws, "kept").await;
    write(
        &*store,
        &ws,
        "doomed",
        &write_of(&doomed.id, "v-1", 1, "lin", "a"),
    )
    .await;
    write(
        &*store,
        &ws,
        "doomed",
        &write_of(&doomed.id, "v-2", 2, "lin", "b"),
    )
    .await;
    let kept_meta = write(
        &*store,
        &ws,
        "kept",
        &write_of(&kept.id, "v-3", 1, "lin", "c"),
    )
    .await;
    assert!(
        !ok(store.purge_state(&ws.id, &doomed.id).await, "purge_state"),
        "a live state cannot be purged"
    );
    assert_eq!(
        versions(&*store, &doomed.id).await.len(),
        2,
        "refused purge keeps versions"
    );
    assert!(ok(
        store.delete_state(&ws.id, "doomed", "admin", at(1)).await,
        "delete_state"
    ));
    let other = workspace(&*store, "other").await;
    assert!(
        !ok(
            store.purge_state(&other.id, &doomed.id).await,
            "purge_state"
        ),
        "a state is purged only from its own workspace"
    );
    assert!(ok(
        store.purge_state(&ws.id, &doomed.id).await,
        "purge_state"
    ));
    assert!(
        versions(&*store, &doomed.id).await.is_empty(),
        "versions are gone"
    );
    for n in [1, 2] {
        assert_eq!(
            ok(store.version_body(&doomed.id, n).await, "version_body").map(|(m, _)| m),
            None,
            "version {n} is gone for good"
        );
    }
    assert!(
        ok(
            store.list_deleted_states(&ws.id).await,
            "list_deleted_states"
        )
        .is_empty()
    );
    assert!(
        !ok(
            store.restore_state(&ws.id, &doomed.id, at(2)).await,
            "restore_state"
        ),
        "a purged state cannot be restored"
    );
    assert!(
        !ok(store.purge_state(&ws.id, &doomed.id).await, "purge_state"),
        "purging again reports false"
    );
    assert_eq!(
        versions(&*store, &kept.id).await,
        vec![kept_meta],
        "other states are untouched"
    );
    assert_eq!(
        ok(
            store
                .wrapped_keys(
                    statehouse_core::sealed::SealedKind::State,
                    statehouse_core::sealed::KeyFilter::NotUnder("no-such-key"),
                    100
                )
                .await,
            "wrapped_keys"
        )
        .into_iter()
        .map(|r| r.row_id)
        .collect::<Vec<_>>(),
        ["v-3"],
        "purged versions' keys are gone too"
    );
}
