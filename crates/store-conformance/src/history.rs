//! Workspace settings, state listings, version paging, retention and stale locks.

use std::sync::Arc;

use statehouse_core::access::Role;
use statehouse_core::model::{NewToken, StateFilter, Workspace, WorkspaceSettings};
use statehouse_core::store::Store;

use crate::{
    at, ensure, expect_conflict, lock_request, ok, versions, workspace, workspace_value, write,
    write_of,
};

pub async fn workspace_update_renames_and_stores_settings(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "before").await;
    workspace(&*store, "taken").await;
    let renamed = Workspace {
        name: "after".into(),
        serial_protection: false,
        settings: WorkspaceSettings {
            keep_versions: Some(5),
            keep_versions_for_millis: Some(86_400_000),
            stale_lock_after_millis: None,
            lock_wait_millis: Some(600_000),
        },
        ..ws.clone()
    };
    assert!(ok(
        store.update_workspace(&renamed).await,
        "update_workspace"
    ));
    assert_eq!(ok(store.workspace_by_name("before").await, "lookup"), None);
    assert_eq!(
        ok(store.workspace_by_name("after").await, "lookup"),
        Some(renamed.clone())
    );
    let clash = Workspace {
        name: "taken".into(),
        ..renamed.clone()
    };
    expect_conflict(
        store.update_workspace(&clash).await,
        "rename onto a taken name",
    );
    let ghost = Workspace {
        id: "no-such-id".into(),
        ..workspace_value("ghost")
    };
    assert!(!ok(
        store.update_workspace(&ghost).await,
        "update of a missing workspace"
    ));
    assert_eq!(
        ok(store.workspace_by_name("after").await, "lookup"),
        Some(renamed),
        "failed updates change nothing"
    );
}

pub async fn workspace_delete_only_when_empty(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "doomed").await;
    ok(
        store
            .create_token(&NewToken {
                id: "tok-doomed".into(),
                name: "ci".into(),
                user_id: None,
                workspace_id: Some(ws.id.clone()),
                role: Role::Editor,
                secret_hash: "hash-doomed".into(),
                created_at: at(0),
                expires_at: None,
            })
            .await,
        "create_token",
    );
    let state = ensure(&*store, &ws, "s").await;
    let message = expect_conflict(store.delete_workspace(&ws.id).await, "delete with a state");
    assert!(message.contains("state"), "{message}");
    ok(
        store.delete_state(&ws.id, "s", "admin", at(1)).await,
        "delete_state",
    );
    expect_conflict(
        store.delete_workspace(&ws.id).await,
        "delete with a soft-deleted state",
    );
    assert!(ok(store.purge_state(&ws.id, &state.id).await, "purge"));
    assert!(ok(store.delete_workspace(&ws.id).await, "delete_workspace"));
    assert_eq!(ok(store.workspace_by_name("doomed").await, "lookup"), None);
    assert_eq!(
        ok(store.token_by_hash("hash-doomed").await, "token lookup"),
        None,
        "the workspace's tokens go with it"
    );
    assert!(!ok(store.delete_workspace(&ws.id).await, "second delete"));
}

pub async fn list_states_filters_and_pages(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "listing").await;
    let other = workspace(&*store, "other").await;
    ensure(&*store, &other, "net/a").await;
    for (i, name) in ["app/one", "app/two", "net/a", "net/b", "network"]
        .iter()
        .enumerate()
    {
        ok(
            store.ensure_state(&ws.id, name, at(i as i64 * 10)).await,
            "ensure_state",
        );
    }
    ok(
        store
            .lock_state(&ws.id, "net/b", &lock_request("L1", "tok", at(100)))
            .await,
        "lock",
    );
    let names = |states: Vec<statehouse_core::model::StateRecord>| {
        states.into_iter().map(|s| s.name).collect::<Vec<_>>()
    };
    let list = |filter: StateFilter| {
        let store = store.clone();
        let ws = ws.id.clone();
        async move { ok(store.list_states(&ws, &filter).await, "list_states") }
    };
    assert_eq!(
        names(
            list(StateFilter {
                name_prefix: Some("net/".into()),
                ..Default::default()
            })
            .await
        ),
        ["net/a", "net/b"],
        "prefix is a prefix, per workspace"
    );
    assert_eq!(
        names(
            list(StateFilter {
                name_prefix: Some("net".into()),
                ..Default::default()
            })
            .await
        ),
        ["net/a", "net/b", "network"]
    );
    assert_eq!(
        names(
            list(StateFilter {
                locked: Some(true),
                ..Default::default()
            })
            .await
        ),
        ["net/b"]
    );
    assert_eq!(
        names(
            list(StateFilter {
                locked: Some(false),
                ..Default::default()
            })
            .await
        )
        .len(),
        4
    );
    assert_eq!(
        names(
            list(StateFilter {
                changed_since: Some(at(30)),
                ..Default::default()
            })
            .await
        ),
        ["net/b", "network"],
        "changed since is inclusive"
    );
    let first = list(StateFilter {
        limit: Some(2),
        ..Default::default()
    })
    .await;
    assert_eq!(names(first.clone()), ["app/one", "app/two"]);
    let second = list(StateFilter {
        limit: Some(2),
        after_name: first.last().map(|s| s.name.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(names(second), ["net/a", "net/b"]);
    let locked = list(StateFilter {
        name_prefix: Some("net/b".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        locked[0].lock.as_ref().map(|l| l.id.as_str()),
        Some("L1"),
        "listings carry the lock"
    );
}

pub async fn list_versions_pages_newest_first(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "paging").await;
    let state = ensure(&*store, &ws, "s").await;
    for serial in 1..=5 {
        write(
            &*store,
            &ws,
            "s",
            &write_of(
                &state.id,
                &format!("v{serial}"),
                serial,
                "lin",
                &format!("b{serial}"),
            ),
        )
        .await;
    }
    let page = ok(store.list_versions(&state.id, None, 2).await, "page 1");
    assert_eq!(
        page.iter().map(|v| v.version_no).collect::<Vec<_>>(),
        [5, 4]
    );
    let page = ok(store.list_versions(&state.id, Some(4), 2).await, "page 2");
    assert_eq!(
        page.iter().map(|v| v.version_no).collect::<Vec<_>>(),
        [3, 2]
    );
    let page = ok(store.list_versions(&state.id, Some(2), 2).await, "page 3");
    assert_eq!(page.iter().map(|v| v.version_no).collect::<Vec<_>>(), [1]);
}

pub async fn retention_prunes_by_count_and_age_sparing_current_and_kept(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "retention").await;
    let state = ensure(&*store, &ws, "s").await;
    // Versions 1..=6 written at t = 1000, 2000, … 6000.
    for serial in 1..=6 {
        let mut w = write_of(
            &state.id,
            &format!("r{serial}"),
            serial,
            "lin",
            &format!("b{serial}"),
        );
        w.at = at(serial * 1_000);
        write(&*store, &ws, "s", &w).await;
    }
    let numbers = |store: Arc<dyn Store>, id: String| async move {
        versions(&*store, &id)
            .await
            .iter()
            .map(|v| v.version_no)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ok(
            store.prune_versions(&ws.id, None, None, 100).await,
            "no policy"
        ),
        0
    );
    assert!(ok(
        store.set_version_kept(&state.id, 2, true).await,
        "keep v2"
    ));
    assert!(!ok(
        store.set_version_kept(&state.id, 99, true).await,
        "keep missing"
    ));
    // Keep the newest 4 (3..=6) or anything written at/after t=2500: v1 goes, v2 is kept.
    let pruned = ok(
        store
            .prune_versions(&ws.id, Some(4), Some(at(2_500)), 100)
            .await,
        "prune",
    );
    assert_eq!(pruned, 1);
    assert_eq!(
        numbers(store.clone(), state.id.clone()).await,
        [6, 5, 4, 3, 2]
    );
    let kept = versions(&*store, &state.id).await;
    assert!(
        kept.iter()
            .find(|v| v.version_no == 2)
            .is_some_and(|v| v.kept)
    );
    // Keep only the newest 1, no age rule, in pages of 2: v3, v4, v5 go; v6 is current, v2 kept.
    let mut total = 0;
    loop {
        let n = ok(
            store.prune_versions(&ws.id, Some(1), None, 2).await,
            "prune page",
        );
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, 3);
    assert_eq!(numbers(store.clone(), state.id.clone()).await, [6, 2]);
    // Age only: everything before t=10000 except current and kept.
    assert_eq!(
        ok(
            store
                .prune_versions(&ws.id, None, Some(at(10_000)), 100)
                .await,
            "prune by age"
        ),
        0
    );
    assert!(ok(
        store.set_version_kept(&state.id, 2, false).await,
        "unkeep v2"
    ));
    assert_eq!(
        ok(
            store
                .prune_versions(&ws.id, None, Some(at(10_000)), 100)
                .await,
            "prune by age"
        ),
        1
    );
    assert_eq!(numbers(store.clone(), state.id.clone()).await, [6]);
    let current = ok(store.state(&ws.id, "s").await, "state").and_then(|s| s.current);
    assert_eq!(
        current.map(|c| c.version_no),
        Some(6),
        "the current version stays"
    );
    // Another workspace's versions are untouched by this one's policy.
    let other = workspace(&*store, "untouched").await;
    let o = ensure(&*store, &other, "s").await;
    write(&*store, &other, "s", &write_of(&o.id, "o1", 1, "lin", "x1")).await;
    write(&*store, &other, "s", &write_of(&o.id, "o2", 2, "lin", "x2")).await;
    ok(
        store.prune_versions(&ws.id, Some(1), None, 100).await,
        "prune",
    );
    assert_eq!(versions(&*store, &o.id).await.len(), 2);
}

pub async fn stale_locks_are_flagged_once_per_lock(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "stale").await;
    ok(
        store
            .lock_state(&ws.id, "old", &lock_request("L-old", "t", at(0)))
            .await,
        "lock old",
    );
    ok(
        store
            .lock_state(&ws.id, "young", &lock_request("L-young", "t", at(5_000)))
            .await,
        "lock young",
    );
    let flagged = ok(store.flag_stale_locks(&ws.id, at(1_000)).await, "flag");
    assert_eq!(
        flagged.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["old"]
    );
    assert_eq!(
        flagged[0].lock.as_ref().map(|l| l.id.as_str()),
        Some("L-old")
    );
    assert!(
        ok(store.flag_stale_locks(&ws.id, at(1_000)).await, "again").is_empty(),
        "a lock is flagged once"
    );
    // Released and taken again (new lock id): flagged again once stale.
    ok(
        store
            .unlock_state(
                &ws.id,
                "old",
                &statehouse_core::model::UnlockRequest {
                    id: Some("L-old".into()),
                    token_id: "t".into(),
                    is_admin: false,
                    at: at(1_500),
                },
            )
            .await,
        "unlock",
    );
    ok(
        store
            .lock_state(&ws.id, "old", &lock_request("L-old-2", "t", at(2_000)))
            .await,
        "relock",
    );
    let names = ok(
        store.flag_stale_locks(&ws.id, at(10_000)).await,
        "flag later",
    )
    .into_iter()
    .map(|s| s.name)
    .collect::<Vec<_>>();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"old".to_owned()) && names.contains(&"young".to_owned()));
    let other = workspace(&*store, "elsewhere").await;
    assert!(
        ok(
            store.flag_stale_locks(&other.id, at(10_000)).await,
            "other ws"
        )
        .is_empty()
    );
}

pub async fn two_stores_flag_each_stale_lock_once(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let ws = workspace(&*a, "stale-two").await;
    for i in 0..20 {
        ok(
            a.lock_state(
                &ws.id,
                &format!("s{i}"),
                &lock_request(&format!("L{i}"), "t", at(0)),
            )
            .await,
            "lock",
        );
    }
    let (x, y) = tokio::join!(
        a.flag_stale_locks(&ws.id, at(1_000)),
        b.flag_stale_locks(&ws.id, at(1_000))
    );
    let (x, y) = (ok(x, "flag a"), ok(y, "flag b"));
    assert_eq!(
        x.len() + y.len(),
        20,
        "every stale lock flagged exactly once"
    );
    let mut names: Vec<_> = x.iter().chain(y.iter()).map(|s| s.name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 20);
}
