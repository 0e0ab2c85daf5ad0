//! States and versions: a state is created once; writes make numbered versions, guarded by
//! serial and lineage, with a one-write overwrite window and unprotected workspaces.

use std::collections::HashSet;
use std::sync::Arc;

use statehouse_core::model::{StateFilter, Workspace, WriteOutcome};
use statehouse_core::service::md5_hex;
use statehouse_core::store::Store;

use crate::{
    T0, at, body_of, ensure, expect_conflict, live, meta_of, ok, versions, workspace, write,
    write_of,
};

pub async fn ensure_state_creates_empty_state_once(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    assert_eq!(ok(store.state(&ws.id, "net").await, "state"), None);
    let first = ok(
        store.ensure_state(&ws.id, "net", at(7)).await,
        "ensure_state",
    );
    assert_eq!(first.workspace_id, ws.id);
    assert_eq!(first.name, "net");
    assert_eq!(first.created_at, at(7));
    assert_eq!(first.updated_at, at(7));
    assert_eq!(first.current, None, "a new state has no version");
    assert_eq!(first.lock, None, "a new state is not locked");
    assert_eq!(first.overwrite_until, None);
    let again = ok(
        store.ensure_state(&ws.id, "net", at(99)).await,
        "ensure_state",
    );
    assert_eq!(
        again, first,
        "ensure_state on an existing state returns it unchanged"
    );
    assert_eq!(
        ok(store.state(&ws.id, "net").await, "state"),
        Some(first.clone())
    );
    assert_eq!(
        ok(
            store.list_states(&ws.id, &StateFilter::default()).await,
            "list_states"
        ),
        vec![first],
        "exactly one state"
    );
    assert_eq!(
        ok(store.current_body(&ws.id, "net").await, "current_body"),
        None,
        "an empty state has no current body"
    );
}

pub async fn list_states_in_name_order_per_workspace(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let other = workspace(&*store, "other").await;
    let names = [
        "prod/net", "b", "B", "a.b", "a-b", "a_b", "prod/app", "a/z", "a",
    ];
    for name in names {
        ensure(&*store, &ws, name).await;
    }
    ensure(&*store, &other, "elsewhere").await;
    let listed = ok(
        store.list_states(&ws.id, &StateFilter::default()).await,
        "list_states",
    );
    let mut expected: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(
        listed.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        expected,
        "states are listed by name, byte order, only this workspace's"
    );
    assert!(listed.iter().all(|s| s.workspace_id == ws.id));
    let ids: HashSet<_> = listed.iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids.len(), names.len(), "every state has its own id");
}

pub async fn first_write_creates_version_1(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let mut w = write_of(&state.id, "v-1", 7, "lin-a", "first");
    w.client_version = None;
    w.client_encrypted = true;
    w.at = at(5_000);
    let meta = write(&*store, &ws, "net", &w).await;
    assert_eq!(
        meta,
        meta_of(&w, 1, false),
        "the first version is number 1 and carries the write's metadata"
    );
    let record = live(&*store, &ws, "net").await;
    assert_eq!(
        record.current,
        Some(meta.clone()),
        "state().current is the new version"
    );
    assert_eq!(record.updated_at, at(5_000), "a write updates updated_at");
    assert_eq!(record.created_at, T0, "a write keeps created_at");
    let (current_meta, current_body) = ok(store.current_body(&ws.id, "net").await, "current_body")
        .expect("the state has a current body");
    assert_eq!(current_meta, meta);
    assert!(
        current_body == w.sealed,
        "current_body returns the exact sealed bytes stored"
    );
    let (v1_meta, v1_body) = body_of(&*store, &state.id, 1).await;
    assert_eq!(v1_meta, meta);
    assert!(
        v1_body == w.sealed,
        "version_body returns the exact sealed bytes stored"
    );
    assert_eq!(versions(&*store, &state.id).await, vec![meta]);
    assert_eq!(
        ok(store.version_body(&state.id, 2).await, "version_body").map(|(m, _)| m),
        None,
        "there is no version 2"
    );
}

pub async fn next_serials_create_versions_1_2_3(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let mut writes = Vec::new();
    for (n, serial) in [(1, 1), (2, 2), (3, 10)] {
        let mut w = write_of(
            &state.id,
            &format!("v-{n}"),
            serial,
            "lin",
            &format!("body-{n}"),
        );
        w.at = at(n * 1_000);
        let meta = write(&*store, &ws, "net", &w).await;
        assert_eq!(meta, meta_of(&w, n, false), "write {n} becomes version {n}");
        writes.push(w);
    }
    let listed = versions(&*store, &state.id).await;
    assert_eq!(
        listed.iter().map(|v| v.version_no).collect::<Vec<_>>(),
        [3, 2, 1],
        "list_versions is newest first"
    );
    for (i, w) in writes.iter().enumerate() {
        let n = i as i64 + 1;
        let (meta, body) = body_of(&*store, &state.id, n).await;
        assert_eq!(meta, meta_of(w, n, false));
        assert!(body == w.sealed, "version {n} keeps its own bytes");
        assert_eq!(listed[2 - i], meta);
    }
    let (current, body) = ok(store.current_body(&ws.id, "net").await, "current_body").unwrap();
    assert_eq!(current.version_no, 3);
    assert!(body == writes[2].sealed);
    assert_eq!(live(&*store, &ws, "net").await.current, Some(current));
}

pub async fn large_body_round_trips_exactly(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "big").await;
    let mut w = write_of(&state.id, "v-1", 1, "lin", "big");
    // 3 MiB of deterministic noise.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    w.sealed.ciphertext = (0..3 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    w.md5 = md5_hex(&w.sealed.ciphertext);
    w.size = w.sealed.ciphertext.len() as i64;
    write(&*store, &ws, "big", &w).await;
    let (_, body) = body_of(&*store, &state.id, 1).await;
    assert_eq!(body.ciphertext.len(), w.sealed.ciphertext.len());
    assert!(body == w.sealed, "a multi-MB body comes back byte for byte");
}

pub async fn identical_write_is_unchanged(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let w = write_of(&state.id, "v-1", 3, "lin", "same");
    let meta = write(&*store, &ws, "net", &w).await;
    let mut again = write_of(&state.id, "v-2", 3, "lin", "same");
    again.at = at(9_000);
    match ok(
        store.write_version(&ws.id, "net", again.clone()).await,
        "identical write",
    ) {
        WriteOutcome::Unchanged(current) => {
            assert_eq!(current, meta, "Unchanged carries the current version")
        }
        other => panic!("identical content should be Unchanged, got {other:?}"),
    }
    assert_eq!(
        versions(&*store, &state.id).await,
        vec![meta.clone()],
        "an identical write stores no new version"
    );
    assert_eq!(live(&*store, &ws, "net").await.current, Some(meta));
}

pub async fn serial_not_above_conflicts(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let meta = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-1", 5, "lin", "five"),
    )
    .await;
    for (serial, tag) in [(5, "other-five"), (4, "four"), (0, "zero")] {
        let w = write_of(&state.id, &format!("v-{tag}"), serial, "lin", tag);
        let message = expect_conflict(
            store.write_version(&ws.id, "net", w.clone()).await,
            &format!("writing serial {serial} over serial 5"),
        );
        assert!(
            message.contains("serial"),
            "the conflict should talk about the serial, got {message:?}"
        );
    }
    assert_eq!(
        versions(&*store, &state.id).await,
        vec![meta],
        "refused writes store nothing"
    );
}

pub async fn lineage_change_conflicts(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let meta = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-1", 5, "lin-a", "a"),
    )
    .await;
    let message = expect_conflict(
        store
            .write_version(&ws.id, "net", write_of(&state.id, "v-2", 6, "lin-b", "b"))
            .await,
        "writing another lineage",
    );
    assert!(
        message.contains("lineage"),
        "the conflict should talk about the lineage, got {message:?}"
    );
    assert_eq!(versions(&*store, &state.id).await, vec![meta]);
}

pub async fn overwrite_window_allows_exactly_one_forced_write(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-1", 5, "lin-a", "a"),
    )
    .await;
    assert!(
        !ok(
            store
                .set_overwrite_until(&ws.id, "missing", Some(at(60_000)))
                .await,
            "set_overwrite_until"
        ),
        "no window on a state that does not exist"
    );
    assert!(ok(
        store
            .set_overwrite_until(&ws.id, "net", Some(at(60_000)))
            .await,
        "set_overwrite_until"
    ));
    assert_eq!(
        live(&*store, &ws, "net").await.overwrite_until,
        Some(at(60_000))
    );
    // A normal write does not use the window up.
    let normal = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-2", 6, "lin-a", "b"),
    )
    .await;
    assert!(!normal.forced);
    assert_eq!(
        live(&*store, &ws, "net").await.overwrite_until,
        Some(at(60_000)),
        "a write within the rules keeps the window open"
    );
    let mut replace = write_of(&state.id, "v-3", 1, "lin-other", "replacement");
    replace.at = at(30_000);
    let forced = write(&*store, &ws, "net", &replace).await;
    assert_eq!(
        forced,
        meta_of(&replace, 3, true),
        "the override write is stored and flagged forced"
    );
    let record = live(&*store, &ws, "net").await;
    assert_eq!(record.overwrite_until, None, "the window is used up");
    assert_eq!(record.current, Some(forced));
    let mut second = write_of(&state.id, "v-4", 0, "lin-third", "second");
    second.at = at(31_000);
    expect_conflict(
        store.write_version(&ws.id, "net", second.clone()).await,
        "a second protection-breaking write after the window was used",
    );
    assert_eq!(versions(&*store, &state.id).await.len(), 3);
}

pub async fn expired_or_closed_overwrite_window_does_not_help(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-1", 5, "lin", "a"),
    )
    .await;
    assert!(ok(
        store
            .set_overwrite_until(&ws.id, "net", Some(at(2_000)))
            .await,
        "set_overwrite_until"
    ));
    let mut late = write_of(&state.id, "v-2", 1, "lin", "late");
    late.at = at(2_000);
    expect_conflict(
        store.write_version(&ws.id, "net", late.clone()).await,
        "a protection-breaking write at the window's end",
    );
    assert!(ok(
        store
            .set_overwrite_until(&ws.id, "net", Some(at(100_000)))
            .await,
        "set_overwrite_until"
    ));
    assert!(ok(
        store.set_overwrite_until(&ws.id, "net", None).await,
        "set_overwrite_until(None)"
    ));
    assert_eq!(live(&*store, &ws, "net").await.overwrite_until, None);
    expect_conflict(
        store.write_version(&ws.id, "net", late.clone()).await,
        "a protection-breaking write after the window was closed",
    );
    assert_eq!(versions(&*store, &state.id).await.len(), 1);
}

pub async fn unprotected_workspace_accepts_forced_versions(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    ok(
        store
            .update_workspace(&Workspace {
                serial_protection: false,
                ..ws.clone()
            })
            .await,
        "set_serial_protection",
    );
    let state = ensure(&*store, &ws, "net").await;
    let first = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-1", 5, "lin", "a"),
    )
    .await;
    assert!(!first.forced);
    let older = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-2", 3, "lin", "b"),
    )
    .await;
    assert!(
        older.forced,
        "a lower serial is accepted but flagged forced"
    );
    assert_eq!(older.version_no, 2);
    let other = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-3", 9, "lin-x", "c"),
    )
    .await;
    assert!(
        other.forced,
        "another lineage is accepted but flagged forced"
    );
    let normal = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-4", 10, "lin-x", "d"),
    )
    .await;
    assert!(!normal.forced, "a write within the rules is not flagged");
    assert_eq!(
        versions(&*store, &state.id)
            .await
            .iter()
            .map(|v| (v.version_no, v.forced))
            .collect::<Vec<_>>(),
        [(4, false), (3, true), (2, true), (1, false)]
    );
    assert_eq!(
        live(&*store, &ws, "net").await.overwrite_until,
        None,
        "nothing is consumed"
    );
}

pub async fn write_to_replaced_or_missing_state_conflicts(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    expect_conflict(
        store
            .write_version(
                &ws.id,
                "never",
                write_of("no-such-id", "v-0", 1, "lin", "x"),
            )
            .await,
        "writing to a state that was never created",
    );
    let old = ensure(&*store, &ws, "net").await;
    write(
        &*store,
        &ws,
        "net",
        &write_of(&old.id, "v-1", 1, "lin", "a"),
    )
    .await;
    assert!(ok(
        store.delete_state(&ws.id, "net", "admin", at(10)).await,
        "delete_state"
    ));
    let stale = write_of(&old.id, "v-2", 2, "lin", "b");
    expect_conflict(
        store.write_version(&ws.id, "net", stale.clone()).await,
        "writing to a deleted state",
    );
    let new = ensure(&*store, &ws, "net").await;
    assert_ne!(new.id, old.id, "the recreated state has a new id");
    expect_conflict(
        store.write_version(&ws.id, "net", stale.clone()).await,
        "writing with the id of the state that was deleted and recreated",
    );
    assert!(
        versions(&*store, &new.id).await.is_empty(),
        "nothing landed on the new state"
    );
    assert_eq!(
        versions(&*store, &old.id).await.len(),
        1,
        "nor on the old one"
    );
    write(
        &*store,
        &ws,
        "net",
        &write_of(&new.id, "v-3", 1, "lin", "c"),
    )
    .await;
}

pub async fn list_states_most_recently_changed_first(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    for (name, when) in [("a", 30), ("b", 10), ("c", 30), ("d", 20)] {
        ok(
            store.ensure_state(&ws.id, name, at(when)).await,
            "ensure_state",
        );
    }
    let names = |states: Vec<statehouse_core::model::StateRecord>| {
        states.into_iter().map(|s| s.name).collect::<Vec<_>>()
    };
    let by_change = StateFilter {
        recently_changed_first: true,
        limit: Some(2),
        ..StateFilter::default()
    };
    let first = ok(store.list_states(&ws.id, &by_change).await, "list_states");
    assert_eq!(names(first), ["a", "c"], "newest first, ties by name");
    let next = StateFilter {
        after_changed: Some(at(30)),
        after_name: Some("c".into()),
        ..by_change.clone()
    };
    let second = ok(store.list_states(&ws.id, &next).await, "list_states");
    assert_eq!(names(second), ["d", "b"], "the page after (30, c)");
    let tie = StateFilter {
        after_changed: Some(at(30)),
        after_name: Some("a".into()),
        limit: None,
        ..by_change.clone()
    };
    let rest = ok(store.list_states(&ws.id, &tie).await, "list_states");
    assert_eq!(names(rest), ["c", "d", "b"], "a tie resumes by name");
    let recent = StateFilter {
        changed_since: Some(at(20)),
        limit: None,
        ..by_change
    };
    let recent = ok(store.list_states(&ws.id, &recent).await, "list_states");
    assert_eq!(names(recent), ["a", "c", "d"]);
}
