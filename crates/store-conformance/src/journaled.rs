//! Conformance cases of changes that store their journal entries in their own transaction
//! (`*_journaled`), of sealing those entries into the chain, and of journal text holding NULs.

use std::sync::Arc;

use serde_json::json;
use statehouse_core::audit::{self, AuditQuery, AuditRecord, Outcome};
use statehouse_core::events::NewEvent;
use statehouse_core::model::{LockOutcome, UnlockOutcome, WriteOutcome};
use statehouse_core::store::Store;
use statehouse_core::store::pending::JournalEntries;

use crate::{at, ensure, expect_conflict, lock_request, ok, unlock_request, workspace, write_of};

/// The entries a change named `action` stores: one record and one event.
fn entries_of(action: &str, subject: &str) -> JournalEntries {
    JournalEntries::of(
        AuditRecord::new(at(5), "ci", action)
            .workspace("ws")
            .target(subject),
        Some(NewEvent {
            at: at(5),
            kind: action.replace('.', "_"),
            workspace_id: Some("ws-ws".into()),
            workspace: Some("ws".into()),
            subject: Some(subject.to_owned()),
            actor: "ci".into(),
            payload: json!({"action": action}),
        }),
    )
}

/// A [`statehouse_core::store::pending::Journaling`] storing [`entries_of`] `action`.
fn log<T>(action: &'static str) -> impl Fn(&T) -> JournalEntries + Send + Sync {
    move |_| entries_of(action, "net")
}

async fn unsealed(store: &dyn Store) -> u64 {
    ok(store.unsealed_count().await, "unsealed_count")
}

/// Seals what is pending; returns the actions of every entry in the chain, oldest first.
async fn sealed_actions(store: &dyn Store) -> Vec<String> {
    ok(store.append_journal(&[], &[]).await, "sealing");
    assert_eq!(unsealed(store).await, 0, "sealing leaves nothing pending");
    ok(
        store.audit_entries(&AuditQuery::all_after(0, 1_000)).await,
        "audit_entries",
    )
    .into_iter()
    .map(|e| e.record.action)
    .collect()
}

pub async fn changes_store_their_entries_in_their_own_transaction(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;

    let lock = lock_request("L1", "tok-a", at(1));
    let taken = store
        .lock_state_journaled(&ws.id, "net", &lock, &log("lock.acquire"))
        .await;
    assert_eq!(ok(taken, "lock (fast path)"), LockOutcome::Acquired);
    assert_eq!(
        unsealed(&*store).await,
        1,
        "the entry waits in the change's transaction"
    );
    assert_eq!(
        ok(store.audit_head().await, "head").last_seq,
        0,
        "not in the chain before sealing"
    );
    let again = store
        .lock_state_journaled(&ws.id, "net", &lock, &log("lock.again"))
        .await;
    assert_eq!(ok(again, "lock again"), LockOutcome::AlreadyHeld);
    let mut w = write_of(&state.id, "v-1", 1, "lin", "a");
    w.lock_id = Some("L1".into());
    let written = store
        .write_version_journaled(&ws.id, "net", w.clone(), &log("state.write"))
        .await;
    assert!(
        matches!(written, Ok(WriteOutcome::Created(_))),
        "{written:?}"
    );
    let same = store
        .write_version_journaled(&ws.id, "net", w.clone(), &log("state.same"))
        .await;
    assert!(matches!(same, Ok(WriteOutcome::Unchanged(_))), "{same:?}");
    // A refused change stores nothing.
    let mut stale = write_of(&state.id, "v-x", 1, "lin", "b");
    stale.lock_id = Some("L1".into());
    expect_conflict(
        store
            .write_version_journaled(&ws.id, "net", stale, &log("state.refused"))
            .await,
        "stale serial",
    );
    let released = store
        .unlock_state_journaled(
            &ws.id,
            "net",
            &unlock_request(Some("L1"), "tok-a", false),
            &log("lock.release"),
        )
        .await;
    assert_eq!(ok(released, "unlock (fast path)"), UnlockOutcome::Released);
    let not_locked = store
        .unlock_state_journaled(
            &ws.id,
            "net",
            &unlock_request(Some("L1"), "tok-a", false),
            &log("lock.not_locked"),
        )
        .await;
    assert_eq!(ok(not_locked, "unlock again"), UnlockOutcome::NotLocked);
    // The slow paths: a lock on a state that does not exist yet, a force-unlock.
    let created = store
        .lock_state_journaled(
            &ws.id,
            "new",
            &lock_request("L2", "tok-a", at(2)),
            &log("lock.create"),
        )
        .await;
    assert_eq!(
        ok(created, "lock creating the state"),
        LockOutcome::Acquired
    );
    let forced = store
        .unlock_state_journaled(
            &ws.id,
            "new",
            &unlock_request(None, "tok-admin", true),
            &log("lock.force_release"),
        )
        .await;
    assert!(
        matches!(forced, Ok(UnlockOutcome::ForceReleased { .. })),
        "{forced:?}"
    );
    let kept = store
        .set_version_kept_journaled(&state.id, 1, true, &log("state.keep_version"))
        .await;
    assert!(ok(kept, "keep"));
    let window = store
        .set_overwrite_until_journaled(
            &ws.id,
            "net",
            Some(at(60_000)),
            &log("state.allow_overwrite"),
        )
        .await;
    assert!(ok(window, "overwrite window"));
    let deleted = store
        .delete_state_journaled(&ws.id, "net", "admin", at(10), &log("state.delete"))
        .await;
    assert!(ok(deleted, "delete"));
    let restored = store
        .restore_state_journaled(&ws.id, &state.id, at(11), &log("state.restore"))
        .await;
    assert!(ok(restored, "restore"));
    ok(
        store
            .delete_state_journaled(&ws.id, "net", "admin", at(12), &log("state.delete"))
            .await,
        "delete again",
    );
    let purged = store
        .purge_state_journaled(&ws.id, &state.id, &log("state.purge"))
        .await;
    assert!(ok(purged, "purge"));
    assert_eq!(unsealed(&*store).await, 14);

    let expected = [
        "lock.acquire",
        "lock.again",
        "state.write",
        "state.same",
        "lock.release",
        "lock.not_locked",
        "lock.create",
        "lock.force_release",
        "state.keep_version",
        "state.allow_overwrite",
        "state.delete",
        "state.restore",
        "state.delete",
        "state.purge",
    ];
    assert_eq!(
        sealed_actions(&*store).await,
        expected,
        "sealed in commit order"
    );
    let events = ok(store.events_after(0, None, 100).await, "events");
    assert_eq!(
        events.iter().map(|e| e.kind.clone()).collect::<Vec<_>>(),
        expected.map(|a| a.replace('.', "_")),
        "events numbered in commit order"
    );
    let report = ok(audit::verify_chain(&*store).await, "verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.checked, report.unsealed), (14, 0));
}

pub async fn pending_entries_are_sealed_before_the_batch(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let log = |_: &_| entries_of("lock.acquire", "a");
    ok(
        store
            .lock_state_journaled(&ws.id, "a", &lock_request("L1", "t", at(1)), &log)
            .await,
        "lock",
    );
    let batch_event = NewEvent {
        at: at(9),
        kind: "batch".into(),
        workspace_id: None,
        workspace: None,
        subject: None,
        actor: "x".into(),
        payload: json!({}),
    };
    let stored = ok(
        store
            .append_journal(
                &[AuditRecord::new(at(9), "reader", "state.read")],
                std::slice::from_ref(&batch_event),
            )
            .await,
        "append",
    );
    assert_eq!(
        stored
            .iter()
            .map(|e| (e.seq, e.kind.as_str()))
            .collect::<Vec<_>>(),
        [(1, "lock_acquire"), (2, "batch")],
        "the sealed event, then the batch's last"
    );
    assert_eq!(
        sealed_actions(&*store).await,
        ["lock.acquire", "state.read"]
    );
    // Nothing pending and nothing to append: nothing changes.
    let head = ok(store.audit_head().await, "head");
    assert!(ok(store.append_journal(&[], &[]).await, "empty").is_empty());
    assert_eq!(ok(store.audit_head().await, "head"), head);
}

pub async fn journal_text_with_nul_round_trips(store: Arc<dyn Store>) {
    let nul_name = "x\0y";
    let records = vec![
        AuditRecord::new(at(1), nul_name, "auth.login")
            .target("a\0b/c")
            .source_ip(Some("192.0.2.1".into()))
            .denied("unknown user \"x\0y\"")
            .detail(json!({"name": nul_name})),
        // A literal backslash-zero is not a NUL; backslashes survive in escaped rows too.
        AuditRecord::new(at(2), "x\\0y", "auth.login").target("c:\\dir\\0"),
        AuditRecord::new(at(3), "plain", "state.read").workspace("w\0s"),
        AuditRecord {
            detail: Some("raw \0 detail".into()),
            ..AuditRecord::new(at(4), "ci", "lock.acquire").workspace("w\\s")
        },
    ];
    let event = NewEvent {
        at: at(5),
        kind: "lock.acquired".into(),
        workspace_id: Some("ws-1".into()),
        workspace: Some("w\\s".into()),
        subject: Some("s\0t".into()),
        actor: nul_name.into(),
        payload: json!({"info": {"ID": "L\0"}}),
    };
    // And through a change's own transaction.
    let ws = workspace(&*store, "ws").await;
    let pending = JournalEntries::of(
        AuditRecord::new(at(6), "ci", "lock.acquire").target("n\0ame"),
        Some(NewEvent {
            subject: Some("n\0ame".into()),
            ..event.clone()
        }),
    );
    ok(
        store
            .lock_state_journaled(&ws.id, "n", &lock_request("L9", "t", at(6)), &|_: &_| {
                pending.clone()
            })
            .await,
        "lock with NULs",
    );
    let stored = ok(
        store
            .append_journal(&records, std::slice::from_ref(&event))
            .await,
        "append with NULs",
    );
    let entries = ok(
        store.audit_entries(&AuditQuery::all_after(0, 100)).await,
        "audit_entries",
    );
    let mut expected = pending.records.clone();
    expected.extend(records.iter().cloned());
    assert_eq!(
        entries.iter().map(|e| e.record.clone()).collect::<Vec<_>>(),
        expected,
        "every field reads back as written"
    );
    assert_eq!(entries, audit::chain(0, audit::GENESIS_HASH, &expected));
    let report = ok(audit::verify_chain(&*store).await, "verify");
    assert!(report.is_intact(), "{report:?}");
    let events = ok(store.events_after(0, None, 10).await, "events");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].subject.as_deref(), Some("n\0ame"));
    assert_eq!(events[1], stored[1]);
    assert_eq!(
        (
            events[1].actor.as_str(),
            events[1].subject.as_deref(),
            events[1].workspace.as_deref()
        ),
        (nul_name, Some("s\0t"), Some("w\\s"))
    );
    assert_eq!(events[1].payload, json!({"info": {"ID": "L\0"}}));
    // Filters find rows by their original text, escaped or not.
    let seqs = |query: AuditQuery| {
        let store = store.clone();
        async move {
            ok(
                store
                    .audit_entries(&AuditQuery {
                        limit: 100,
                        ..query
                    })
                    .await,
                "filtered audit_entries",
            )
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
        }
    };
    let by_actor = |actor: &str| AuditQuery {
        actor: Some(actor.into()),
        ..AuditQuery::default()
    };
    assert_eq!(seqs(by_actor(nul_name)).await, [2]);
    assert_eq!(seqs(by_actor("x\\0y")).await, [3]);
    assert_eq!(
        seqs(AuditQuery {
            workspace: Some("w\\s".into()),
            ..AuditQuery::default()
        })
        .await,
        [5]
    );
    assert_eq!(
        seqs(AuditQuery {
            target: Some("a\0b/c".into()),
            ..AuditQuery::default()
        })
        .await,
        [2]
    );
    assert_eq!(
        seqs(AuditQuery {
            action: Some("auth.*".into()),
            ..AuditQuery::default()
        })
        .await,
        [2, 3]
    );
    assert!(
        seqs(AuditQuery {
            action: Some("auth\0.*".into()),
            ..AuditQuery::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        seqs(AuditQuery {
            outcome: Some(Outcome::Denied),
            ..AuditQuery::default()
        })
        .await,
        [2]
    );
}
