//! Conformance cases of the journal: the audit chain (appends, queries, pruning) and events.
//! Webhook deliveries are in `webhooks.rs`, the tamper cases in `audit_tamper.rs`.

use std::sync::Arc;

use statehouse_core::audit::{
    self, AuditQuery, AuditRecord, GENESIS_HASH, Outcome, PRUNE_ACTION, PruneProof, VerifyReport,
};
use statehouse_core::events::NewEvent;
use statehouse_core::store::Store;

use crate::at;

// Store crates name the tamper cases' database handle `audit::RawSql`.
pub use crate::audit_tamper::RawSql;

pub(crate) fn record(n: i64, actor: &str, action: &str) -> AuditRecord {
    AuditRecord::new(at(n * 1_000), actor, action)
        .token(Some(format!("tok-{actor}")), Some(actor.to_owned()))
        .source_ip(Some("192.0.2.7".into()))
        .workspace("default")
        .target(format!("state-{n}"))
        .detail(serde_json::json!({"n": n, "text": "ünïcode \"quoted\""}))
}

pub(crate) fn event(n: i64, kind: &str, workspace_id: &str) -> NewEvent {
    NewEvent {
        at: at(n * 1_000),
        kind: kind.to_owned(),
        workspace_id: Some(workspace_id.to_owned()),
        workspace: Some(workspace_id.trim_start_matches("ws-").to_owned()),
        subject: Some(format!("state-{n}")),
        actor: "ci".into(),
        payload: serde_json::json!({"n": n}),
    }
}

pub(crate) async fn append(store: &dyn Store, records: &[AuditRecord]) {
    store
        .append_journal(records, &[])
        .await
        .unwrap_or_else(|e| panic!("append_journal failed: {e}"));
}

pub(crate) async fn verify(store: &dyn Store) -> VerifyReport {
    audit::verify_chain(store)
        .await
        .unwrap_or_else(|e| panic!("verify_chain failed: {e}"))
}

async fn all_entries(store: &dyn Store) -> Vec<audit::AuditEntry> {
    store
        .audit_entries(&AuditQuery::all_after(0, 10_000))
        .await
        .expect("audit_entries")
}

pub async fn audit_appends_chain_entries_in_order(store: Arc<dyn Store>) {
    let empty = store.audit_head().await.expect("audit_head");
    assert_eq!(
        (empty.last_seq, empty.last_hash.as_str(), empty.pruned_seq),
        (0, GENESIS_HASH, 0)
    );
    assert!(
        verify(store.as_ref()).await.is_intact(),
        "an empty log verifies"
    );
    let first: Vec<_> = (1..=3).map(|n| record(n, "ci", "state.write")).collect();
    append(store.as_ref(), &first).await;
    let second = vec![
        record(4, "ops", "lock.acquire").failed("locked"),
        AuditRecord::new(at(5_000), "unknown", "token.authenticate").denied("unknown token"),
    ];
    append(store.as_ref(), &second).await;
    let expected = audit::chain(0, GENESIS_HASH, &[first, second].concat());
    assert_eq!(
        all_entries(store.as_ref()).await,
        expected,
        "stored exactly as chained"
    );
    let head = store.audit_head().await.expect("audit_head");
    assert_eq!(
        (head.last_seq, head.last_hash.as_str()),
        (5, expected[4].hash.as_str())
    );
    let report = verify(store.as_ref()).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.checked, 5);
    // An empty batch changes nothing.
    append(store.as_ref(), &[]).await;
    assert_eq!(store.audit_head().await.expect("head"), head);
}

pub async fn audit_queries_filter_and_page(store: Arc<dyn Store>) {
    let records = vec![
        record(1, "ci", "state.write"),
        record(2, "ops", "lock.acquire"),
        record(3, "ci", "lock.release").workspace("other"),
        record(4, "ci", "state.read").failed("nope"),
        record(5, "ops", "lock.force_release"),
    ];
    append(store.as_ref(), &records).await;
    let seqs = |q: AuditQuery| {
        let store = store.clone();
        async move {
            store
                .audit_entries(&AuditQuery { limit: 100, ..q })
                .await
                .expect("audit_entries")
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        seqs(AuditQuery {
            actor: Some("ops".into()),
            ..Default::default()
        })
        .await,
        [2, 5]
    );
    assert_eq!(
        seqs(AuditQuery {
            action: Some("lock.*".into()),
            ..Default::default()
        })
        .await,
        [2, 3, 5]
    );
    assert_eq!(
        seqs(AuditQuery {
            action: Some("lock.acquire".into()),
            ..Default::default()
        })
        .await,
        [2]
    );
    assert_eq!(
        seqs(AuditQuery {
            target: Some("state-3".into()),
            ..Default::default()
        })
        .await,
        [3]
    );
    assert_eq!(
        seqs(AuditQuery {
            workspace: Some("other".into()),
            ..Default::default()
        })
        .await,
        [3]
    );
    assert_eq!(
        seqs(AuditQuery {
            outcome: Some(Outcome::Failed),
            ..Default::default()
        })
        .await,
        [4]
    );
    assert_eq!(
        seqs(AuditQuery {
            since: Some(at(2_000)),
            until: Some(at(4_000)),
            ..Default::default()
        })
        .await,
        [2, 3],
        "since is inclusive, until exclusive"
    );
    assert_eq!(
        seqs(AuditQuery {
            newest_first: true,
            ..Default::default()
        })
        .await,
        [5, 4, 3, 2, 1]
    );
    assert_eq!(
        seqs(AuditQuery {
            newest_first: true,
            cursor: Some(4),
            ..Default::default()
        })
        .await,
        [3, 2, 1]
    );
    assert_eq!(
        seqs(AuditQuery {
            cursor: Some(3),
            ..Default::default()
        })
        .await,
        [4, 5]
    );
    let page = store
        .audit_entries(&AuditQuery {
            limit: 2,
            ..Default::default()
        })
        .await
        .expect("page");
    assert_eq!(page.len(), 2);
    // LIKE wildcards in a prefix are literal.
    assert!(
        seqs(AuditQuery {
            action: Some("lock_*".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
}

pub async fn audit_prune_keeps_the_chain_verifiable(store: Arc<dyn Store>) {
    let records: Vec<_> = (1..=10).map(|n| record(n, "ci", "state.write")).collect();
    append(store.as_ref(), &records).await;
    let chained = audit::chain(0, GENESIS_HASH, &records);
    // Entries 1..=4 are older than 5 s after T0.
    let pruned = store
        .prune_audit(at(5_000), 100, at(20_000))
        .await
        .expect("prune");
    assert_eq!(pruned, 4);
    let head = store.audit_head().await.expect("head");
    assert_eq!(
        (head.pruned_seq, head.pruned_hash.as_str()),
        (4, chained[3].hash.as_str())
    );
    // The prune proved itself in the chain, in the same transaction.
    let entries = all_entries(store.as_ref()).await;
    let proof = entries.last().expect("the prune's entry");
    assert_eq!(
        (proof.seq, proof.record.action.as_str(), proof.record.at),
        (11, PRUNE_ACTION, at(20_000))
    );
    assert_eq!(
        PruneProof::from_entry(proof),
        Some(PruneProof {
            from_seq: 1,
            through_seq: 4,
            last_hash: chained[3].hash.clone(),
            newest_at: at(4_000),
            before: at(5_000),
        })
    );
    let report = verify(store.as_ref()).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.checked, 7);
    assert_eq!(
        store
            .prune_audit(at(5_000), 100, at(20_000))
            .await
            .expect("again"),
        0,
        "idempotent"
    );
    assert_eq!(
        all_entries(store.as_ref()).await.len(),
        7,
        "no proof of nothing"
    );
    // Batches: at most `max` per call, always from the oldest end.
    assert_eq!(
        store
            .prune_audit(at(100_000), 2, at(100_000))
            .await
            .expect("batch"),
        2
    );
    assert_eq!(store.audit_head().await.expect("head").pruned_seq, 6);
    assert!(verify(store.as_ref()).await.is_intact());
    append(store.as_ref(), &[record(11, "ci", "state.read")]).await;
    assert!(
        verify(store.as_ref()).await.is_intact(),
        "appends continue the pruned chain"
    );
    // Everything old, earlier proofs included: all go; the new proof anchors the chain.
    assert_eq!(
        store
            .prune_audit(at(1_000_000), 100, at(1_000_000))
            .await
            .expect("all"),
        7
    );
    let head = store.audit_head().await.expect("head");
    assert_eq!((head.pruned_seq, head.last_seq), (13, 14));
    let report = verify(store.as_ref()).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.checked, 1);
}

pub async fn events_are_numbered_in_order_and_filtered(store: Arc<dyn Store>) {
    assert_eq!(store.last_event_seq().await.expect("last"), 0);
    let stored = store
        .append_journal(
            &[record(1, "ci", "state.write")],
            &[
                event(1, "state.written", "ws-a"),
                event(2, "lock.acquired", "ws-b"),
            ],
        )
        .await
        .expect("append");
    assert_eq!(stored.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(stored[0].payload, serde_json::json!({"n": 1}));
    let more = store
        .append_journal(&[], &[event(3, "lock.released", "ws-a")])
        .await
        .expect("append");
    assert_eq!(more[0].seq, 3);
    assert_eq!(
        store.audit_head().await.expect("head").last_seq,
        1,
        "no audit entry added"
    );
    let all = store.events_after(0, None, 100).await.expect("events");
    assert_eq!(all.len(), 3);
    assert_eq!(all[..2], stored[..]);
    let a: Vec<i64> = store
        .events_after(0, Some(&["ws-a".to_owned()]), 100)
        .await
        .expect("events")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(a, [1, 3]);
    assert_eq!(
        store.events_after(1, None, 1).await.expect("page")[0].seq,
        2
    );
    assert!(
        store
            .events_after(0, Some(&[]), 10)
            .await
            .expect("none")
            .is_empty()
    );
    assert_eq!(store.last_event_seq().await.expect("last"), 3);
    assert_eq!(store.prune_events(at(2_500)).await.expect("prune"), 2);
    assert_eq!(
        store.events_after(0, None, 10).await.expect("left").len(),
        1
    );
}

async fn journal_race(stores: [Arc<dyn Store>; 2]) {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                for round in 0..10 {
                    let n = (i * 100 + round) as i64;
                    store
                        .append_journal(
                            &[
                                record(n, "racer", "lock.acquire"),
                                record(n, "racer", "lock.release"),
                            ],
                            &[event(n, "lock.acquired", "ws-a")],
                        )
                        .await
                        .expect("concurrent append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let report = verify(stores[0].as_ref()).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.checked, 320);
    let seqs: Vec<i64> = stores[1]
        .events_after(0, None, 1_000)
        .await
        .expect("events")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        seqs,
        (1..=160).collect::<Vec<_>>(),
        "event numbers have no gaps or repeats"
    );
}

pub async fn concurrent_journal_appends_keep_one_chain(store: Arc<dyn Store>) {
    journal_race([store.clone(), store]).await;
}

pub async fn two_stores_journal_appends_keep_one_chain(
    store: Arc<dyn Store>,
    peer: Arc<dyn Store>,
) {
    journal_race([store, peer]).await;
}
