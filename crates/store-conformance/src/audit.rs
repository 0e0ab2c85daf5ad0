//! Conformance cases of the journal: the audit chain, events, and webhook deliveries; plus the
//! tamper cases, which need raw SQL on the store's database (see [`crate::audit_tamper_tests`]).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use statehouse_core::audit::{
    self, AuditQuery, AuditRecord, GENESIS_HASH, Outcome, PRUNE_ACTION, ProblemKind, PruneProof,
    VerifyReport,
};
use statehouse_core::crypto::SealedBody;
use statehouse_core::events::NewEvent;
use statehouse_core::store::Store;
use statehouse_core::webhooks::{
    AttemptResult, Delivery, DeliveryAttempt, DeliveryStatus, Webhook,
};

use crate::{T0, at, workspace};

fn record(n: i64, actor: &str, action: &str) -> AuditRecord {
    AuditRecord::new(at(n * 1_000), actor, action)
        .token(Some(format!("tok-{actor}")), Some(actor.to_owned()))
        .source_ip(Some("192.0.2.7".into()))
        .workspace("default")
        .target(format!("state-{n}"))
        .detail(serde_json::json!({"n": n, "text": "ünïcode \"quoted\""}))
}

fn event(n: i64, kind: &str, workspace_id: &str) -> NewEvent {
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

async fn append(store: &dyn Store, records: &[AuditRecord]) {
    store
        .append_journal(records, &[])
        .await
        .unwrap_or_else(|e| panic!("append_journal failed: {e}"));
}

async fn verify(store: &dyn Store) -> VerifyReport {
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

// ---- webhooks ----------------------------------------------------------------------------------

fn secret(tag: &str) -> SealedBody {
    SealedBody {
        key_id: "key-1".into(),
        wrapped_key: [&[0u8, 0xff][..], tag.as_bytes()].concat(),
        ciphertext: [tag.as_bytes(), &[0u8, 1, 2]].concat(),
    }
}

pub(crate) fn webhook(id: &str, workspace_id: &str, events: &[&str], enabled: bool) -> Webhook {
    Webhook {
        id: id.to_owned(),
        workspace_id: workspace_id.to_owned(),
        url: format!("https://hooks.example.com/{id}"),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        enabled,
        description: format!("hook {id}"),
        created_at: T0,
        updated_at: T0,
        secret: secret(id),
    }
}

pub(crate) async fn create(store: &dyn Store, hook: &Webhook) {
    store
        .create_webhook(hook)
        .await
        .unwrap_or_else(|e| panic!("create_webhook({}) failed: {e}", hook.id));
}

async fn deliveries(store: &dyn Store, hook: &str) -> Vec<Delivery> {
    store
        .list_deliveries(hook, None, 1_000)
        .await
        .expect("list_deliveries")
}

pub async fn webhooks_are_created_listed_updated_deleted(store: Arc<dyn Store>) {
    let ws = workspace(store.as_ref(), "hooks").await;
    let other = workspace(store.as_ref(), "elsewhere").await;
    assert!(!store.any_enabled_webhook().await.expect("none yet"));
    let a = webhook("a", &ws.id, &["lock.*", "state.written"], true);
    let b = webhook("b", &ws.id, &["*"], false);
    create(store.as_ref(), &b).await;
    assert!(
        !store.any_enabled_webhook().await.expect("a disabled one"),
        "a disabled webhook delivers nothing"
    );
    create(store.as_ref(), &a).await;
    assert!(store.any_enabled_webhook().await.expect("an enabled one"));
    create(store.as_ref(), &webhook("c", &other.id, &["*"], true)).await;
    assert_eq!(
        store.list_webhooks(&ws.id).await.expect("list"),
        [a.clone(), b.clone()]
    );
    assert_eq!(
        store.webhook(&ws.id, "a").await.expect("get"),
        Some(a.clone())
    );
    assert_eq!(
        store.webhook(&other.id, "a").await.expect("get"),
        None,
        "scoped to its workspace"
    );
    let changed = Webhook {
        url: "http://127.0.0.1:9/x".into(),
        events: vec!["*".into()],
        enabled: false,
        description: String::new(),
        updated_at: at(5),
        secret: secret("rotated"),
        ..a.clone()
    };
    assert!(store.update_webhook(&changed).await.expect("update"));
    assert_eq!(
        store.webhook(&ws.id, "a").await.expect("get"),
        Some(changed)
    );
    assert!(
        !store
            .update_webhook(&webhook("zz", &ws.id, &["*"], true))
            .await
            .expect("missing")
    );
    store
        .insert_delivery(&Delivery::new("b", None, "ping", "{}".into(), T0))
        .await
        .expect("ping");
    assert!(store.delete_webhook(&ws.id, "b").await.expect("delete"));
    assert!(!store.delete_webhook(&ws.id, "b").await.expect("again"));
    assert!(
        deliveries(store.as_ref(), "b").await.is_empty(),
        "deliveries go with their webhook"
    );
    assert!(
        !store.delete_webhook(&ws.id, "c").await.expect("other ws"),
        "scoped to its workspace"
    );
    store
        .insert_delivery(&Delivery::new("c", None, "ping", "{}".into(), T0))
        .await
        .expect("ping");
    assert!(
        store
            .delete_workspace(&other.id)
            .await
            .expect("delete workspace"),
        "an empty workspace with a webhook can be deleted"
    );
    assert!(
        store
            .list_webhooks(&other.id)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        deliveries(store.as_ref(), "c").await.is_empty(),
        "its webhooks' deliveries go with it"
    );
}

pub async fn events_create_deliveries_for_matching_enabled_webhooks(store: Arc<dyn Store>) {
    let ws = workspace(store.as_ref(), "a").await;
    let other = workspace(store.as_ref(), "b").await;
    create(store.as_ref(), &webhook("locks", &ws.id, &["lock.*"], true)).await;
    create(store.as_ref(), &webhook("off", &ws.id, &["*"], false)).await;
    create(store.as_ref(), &webhook("all-b", &other.id, &["*"], true)).await;
    let stored = store
        .append_journal(
            &[],
            &[
                event(1, "lock.acquired", &ws.id),
                event(2, "state.written", &ws.id),
                event(3, "lock.released", &other.id),
            ],
        )
        .await
        .expect("append");
    let locks = deliveries(store.as_ref(), "locks").await;
    assert_eq!(locks.len(), 1);
    let d = &locks[0];
    assert_eq!(
        (d.event_seq, d.kind.as_str(), d.status),
        (
            Some(stored[0].seq),
            "lock.acquired",
            DeliveryStatus::Pending
        )
    );
    assert_eq!(
        (d.attempts, d.next_attempt_at),
        (0, Some(at(1_000))),
        "due at once"
    );
    let body: serde_json::Value = serde_json::from_str(&d.body).expect("body is JSON");
    assert_eq!(body["event"], "lock.acquired");
    assert_eq!(body["seq"], stored[0].seq);
    assert!(
        deliveries(store.as_ref(), "off").await.is_empty(),
        "disabled webhooks get nothing"
    );
    let b = deliveries(store.as_ref(), "all-b").await;
    assert_eq!(
        b.iter().map(|d| d.kind.as_str()).collect::<Vec<_>>(),
        ["lock.released"]
    );
    assert_eq!(
        store.delivery("locks", &d.id).await.expect("get"),
        Some(d.clone())
    );
    assert_eq!(store.delivery("all-b", &d.id).await.expect("get"), None);
}

pub async fn deliveries_are_claimed_with_a_lease_and_finished(store: Arc<dyn Store>) {
    let ws = workspace(store.as_ref(), "a").await;
    create(store.as_ref(), &webhook("h", &ws.id, &["*"], true)).await;
    create(store.as_ref(), &webhook("off", &ws.id, &["*"], false)).await;
    let due = Delivery::new("h", None, "ping", "{\"n\":1}".into(), T0);
    let later = Delivery {
        next_attempt_at: Some(at(60_000)),
        ..Delivery::new("h", None, "ping", "{}".into(), T0)
    };
    store.insert_delivery(&due).await.expect("insert");
    store.insert_delivery(&later).await.expect("insert");
    store
        .insert_delivery(&Delivery::new("off", None, "ping", "{}".into(), T0))
        .await
        .expect("insert");

    let claimed = store
        .claim_deliveries(at(1), at(1_000), "w1", 10)
        .await
        .expect("claim");
    assert_eq!(
        claimed.len(),
        1,
        "only due deliveries of enabled webhooks: {claimed:?}"
    );
    let c = &claimed[0];
    assert_eq!(
        (
            c.delivery.id.as_str(),
            c.url.as_str(),
            c.workspace_id.as_str()
        ),
        (
            due.id.as_str(),
            "https://hooks.example.com/h",
            ws.id.as_str()
        )
    );
    assert_eq!(c.secret, secret("h"));
    assert_eq!(c.delivery.body, "{\"n\":1}");
    assert!(
        store
            .claim_deliveries(at(2), at(1_000), "w2", 10)
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );
    // The lease expires: another worker takes it over; the first can no longer finish it.
    let taken = store
        .claim_deliveries(at(1_000), at(2_000), "w2", 10)
        .await
        .expect("claim");
    assert_eq!(taken.len(), 1);
    let failed = AttemptResult {
        delivery_id: due.id.clone(),
        lease_owner: "w1".into(),
        attempt: DeliveryAttempt {
            attempt: 1,
            at: at(1_000),
            status_code: Some(500),
            error: Some("receiver answered HTTP 500".into()),
            duration_ms: 12,
        },
        status: DeliveryStatus::Pending,
        next_attempt_at: Some(at(181_000)),
    };
    assert!(
        !store.finish_attempt(&failed).await.expect("finish"),
        "a lost claim cannot finish"
    );
    let failed = AttemptResult {
        lease_owner: "w2".into(),
        ..failed
    };
    assert!(store.finish_attempt(&failed).await.expect("finish"));
    let d = store
        .delivery("h", &due.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (d.status, d.attempts, d.next_attempt_at, d.last_status_code),
        (DeliveryStatus::Pending, 1, Some(at(181_000)), Some(500))
    );
    assert_eq!(d.last_error.as_deref(), Some("receiver answered HTTP 500"));
    let early = store
        .claim_deliveries(at(180_999), at(200_000), "w3", 10)
        .await
        .expect("claim");
    let ids: Vec<_> = early.iter().map(|c| c.delivery.id.clone()).collect();
    assert_eq!(
        ids,
        std::slice::from_ref(&later.id),
        "a retry is not due before its time"
    );
    let again = store
        .claim_deliveries(at(181_000), at(200_000), "w3", 10)
        .await
        .expect("claim");
    let ids: Vec<_> = again.iter().map(|c| c.delivery.id.clone()).collect();
    assert_eq!(ids, std::slice::from_ref(&due.id));
    let ok = AttemptResult {
        delivery_id: due.id.clone(),
        lease_owner: "w3".into(),
        attempt: DeliveryAttempt {
            attempt: 2,
            at: at(181_000),
            status_code: Some(204),
            error: None,
            duration_ms: 3,
        },
        status: DeliveryStatus::Delivered,
        next_attempt_at: None,
    };
    assert!(store.finish_attempt(&ok).await.expect("finish"));
    let d = store
        .delivery("h", &due.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (d.status, d.attempts, d.delivered_at, d.next_attempt_at),
        (DeliveryStatus::Delivered, 2, Some(at(181_000)), None)
    );
    let attempts = store.delivery_attempts(&due.id).await.expect("attempts");
    assert_eq!(attempts, vec![failed.attempt.clone(), ok.attempt.clone()]);
    assert!(
        store
            .claim_deliveries(at(10_000_000), at(10_000_001), "w4", 10)
            .await
            .expect("claim")
            .iter()
            .all(|c| c.delivery.id != due.id),
        "delivered ones are done"
    );
    // Retention removes finished deliveries only.
    assert_eq!(store.prune_deliveries(at(1)).await.expect("prune"), 1);
    assert!(store.delivery("h", &due.id).await.expect("get").is_none());
    assert!(
        store.delivery("h", &later.id).await.expect("get").is_some(),
        "pending ones stay"
    );
}

async fn claim_race(stores: [Arc<dyn Store>; 2]) {
    let ws = workspace(stores[0].as_ref(), "a").await;
    create(stores[0].as_ref(), &webhook("h", &ws.id, &["*"], true)).await;
    let mut all = HashSet::new();
    for _ in 0..40 {
        let d = Delivery::new("h", None, "ping", "{}".into(), T0);
        all.insert(d.id.clone());
        stores[0].insert_delivery(&d).await.expect("insert");
    }
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = store
                        .claim_deliveries(at(1), at(600_000), &format!("w{i}"), 3)
                        .await
                        .expect("claim");
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|c| c.delivery.id));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.expect("task") {
            assert!(seen.insert(id.clone()), "delivery {id} was claimed twice");
        }
    }
    assert_eq!(seen, all, "every delivery claimed exactly once");
}

pub async fn concurrent_claims_never_overlap(store: Arc<dyn Store>) {
    claim_race([store.clone(), store]).await;
}

pub async fn two_stores_claims_never_overlap(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    claim_race([store, peer]).await;
}

// ---- tampering ---------------------------------------------------------------------------------

/// Runs one SQL statement directly on the store's database, as an attacker with database
/// access would.
pub trait RawSql: Send + Sync {
    fn execute(&self, sql: &str) -> impl Future<Output = ()> + Send;
}

/// Six entries, verified intact.
async fn six_entries(store: &dyn Store) {
    let records: Vec<_> = (1..=6).map(|n| record(n, "ci", "state.write")).collect();
    append(store, &records[..3]).await;
    append(store, &records[3..]).await;
    assert!(verify(store).await.is_intact());
}

#[track_caller]
fn expect_problem(report: &VerifyReport, seq: i64, kind: ProblemKind) {
    match &report.problem {
        Some(p) => {
            assert_eq!((p.seq, p.kind), (seq, kind), "{}", p.message);
            assert!(!p.message.is_empty());
        }
        None => panic!("tampering went unnoticed: {report:?}"),
    }
}

pub async fn tamper_altered_field_is_detected(store: Arc<dyn Store>, sql: impl RawSql) {
    six_entries(store.as_ref()).await;
    sql.execute("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3")
        .await;
    expect_problem(&verify(store.as_ref()).await, 3, ProblemKind::Altered);
}

pub async fn tamper_altered_detail_is_detected(store: Arc<dyn Store>, sql: impl RawSql) {
    six_entries(store.as_ref()).await;
    sql.execute("UPDATE audit_entries SET detail = '{\"n\":5}' WHERE seq = 5")
        .await;
    expect_problem(&verify(store.as_ref()).await, 5, ProblemKind::Altered);
}

pub async fn tamper_removed_middle_row_is_detected(store: Arc<dyn Store>, sql: impl RawSql) {
    six_entries(store.as_ref()).await;
    sql.execute("DELETE FROM audit_entries WHERE seq = 3").await;
    expect_problem(&verify(store.as_ref()).await, 3, ProblemKind::Removed);
}

pub async fn tamper_removed_newest_rows_are_detected(store: Arc<dyn Store>, sql: impl RawSql) {
    six_entries(store.as_ref()).await;
    sql.execute("DELETE FROM audit_entries WHERE seq >= 5")
        .await;
    expect_problem(&verify(store.as_ref()).await, 5, ProblemKind::Truncated);
}

pub async fn tamper_reordered_rows_are_detected(store: Arc<dyn Store>, sql: impl RawSql) {
    six_entries(store.as_ref()).await;
    sql.execute("UPDATE audit_entries SET seq = -3 WHERE seq = 3")
        .await;
    sql.execute("UPDATE audit_entries SET seq = 3 WHERE seq = 4")
        .await;
    sql.execute("UPDATE audit_entries SET seq = 4 WHERE seq = -3")
        .await;
    expect_problem(&verify(store.as_ref()).await, 3, ProblemKind::Broken);
}

pub async fn tamper_inserted_row_is_detected(store: Arc<dyn Store>, sql: impl RawSql) {
    six_entries(store.as_ref()).await;
    sql.execute(
        "INSERT INTO audit_entries (seq, at, actor, action, outcome, prev_hash, hash) \
         SELECT 7, at, 'mallory', 'state.read', 'success', hash, hash FROM audit_entries WHERE seq = 6",
    )
    .await;
    expect_problem(&verify(store.as_ref()).await, 7, ProblemKind::Inserted);
    // The chain cannot grow past it: appending names it, and works again once it is gone.
    let refused = store
        .append_journal(&[record(7, "ci", "state.write")], &[])
        .await
        .expect_err("appended past an inserted entry");
    assert!(
        refused
            .to_string()
            .contains("audit entry 7 already exists beyond the chain head (entry 6)"),
        "{refused}"
    );
    sql.execute("DELETE FROM audit_entries WHERE seq = 7").await;
    append(store.as_ref(), &[record(7, "ci", "state.write")]).await;
    assert!(verify(store.as_ref()).await.is_intact());
}

pub async fn tamper_after_pruning_is_detected_and_pruning_stays_green(
    store: Arc<dyn Store>,
    sql: impl RawSql,
) {
    six_entries(store.as_ref()).await;
    assert_eq!(
        store
            .prune_audit(at(3_500), 100, at(10_000))
            .await
            .expect("prune"),
        3
    );
    let report = verify(store.as_ref()).await;
    assert!(
        report.is_intact(),
        "pruning keeps the chain verifiable: {report:?}"
    );
    sql.execute("DELETE FROM audit_entries WHERE seq = 4").await;
    expect_problem(&verify(store.as_ref()).await, 4, ProblemKind::Removed);
}

pub async fn tamper_entries_numbered_zero_or_below_are_detected(
    store: Arc<dyn Store>,
    sql: impl RawSql,
) {
    six_entries(store.as_ref()).await;
    for seq in [0, -5] {
        sql.execute(&format!(
            "INSERT INTO audit_entries (seq, at, actor, action, outcome, prev_hash, hash) \
             SELECT {seq}, at, 'mallory', 'state.read', 'success', prev_hash, hash FROM audit_entries WHERE seq = 1"
        ))
        .await;
    }
    assert_eq!(
        store
            .audit_entries(&AuditQuery {
                limit: 100,
                ..AuditQuery::default()
            })
            .await
            .expect("list")
            .len(),
        8,
        "listed"
    );
    expect_problem(&verify(store.as_ref()).await, -5, ProblemKind::Inserted);
}

/// Moves the pruned point up to entry `seq` and deletes the entries up to it, as an attacker
/// hiding recent entries would.
async fn fake_prune(sql: &impl RawSql, seq: i64) {
    sql.execute(&format!(
        "UPDATE audit_chain SET pruned_seq = {seq}, \
         pruned_hash = (SELECT hash FROM audit_entries WHERE seq = {seq}) WHERE id = 1"
    ))
    .await;
    sql.execute(&format!("DELETE FROM audit_entries WHERE seq <= {seq}"))
        .await;
}

pub async fn tamper_moved_pruned_point_is_detected(store: Arc<dyn Store>, sql: impl RawSql) {
    six_entries(store.as_ref()).await;
    fake_prune(&sql, 4).await;
    expect_problem(&verify(store.as_ref()).await, 4, ProblemKind::Removed);
}

pub async fn tamper_moved_pruned_point_after_pruning_is_detected(
    store: Arc<dyn Store>,
    sql: impl RawSql,
) {
    six_entries(store.as_ref()).await;
    assert_eq!(
        store
            .prune_audit(at(2_500), 100, at(10_000))
            .await
            .expect("prune"),
        2
    );
    assert!(verify(store.as_ref()).await.is_intact());
    fake_prune(&sql, 4).await;
    expect_problem(&verify(store.as_ref()).await, 4, ProblemKind::Removed);
    // Changing the proof itself breaks the chain at the proof.
    sql.execute(&format!(
        "UPDATE audit_entries SET detail = replace(detail, '\"through_seq\":2', '\"through_seq\":4') \
         WHERE action = '{PRUNE_ACTION}'"
    ))
    .await;
    expect_problem(&verify(store.as_ref()).await, 7, ProblemKind::Altered);
}

/// Expands to one test per tamper case, in a module named `audit_tamper`.
///
/// - `$make`: as for [`crate::conformance_tests`];
/// - `$raw`: a callable taking `&Db` and giving a future of a [`RawSql`] on that database.
#[macro_export]
macro_rules! audit_tamper_tests {
    ($make:expr, $raw:expr $(,)?) => {
        $crate::__audit_tamper_module!($make, $raw);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __audit_tamper_cases {
    ($make:expr, $raw:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some((store, db)) = $crate::Fresh::into_parts($make.await) else {
                    return;
                };
                let sql = ($raw)(&db).await;
                $crate::audit::$case(store, sql).await;
                drop(db);
            }
        )*
    };
}
