//! Webhooks and their deliveries: webhooks are created, listed, updated and deleted; events
//! create deliveries for matching enabled webhooks, which are claimed under a lease and finished,
//! never by two claimers at once.

use std::collections::HashSet;
use std::sync::Arc;

use statehouse_core::crypto::SealedBody;
use statehouse_core::store::Store;
use statehouse_core::webhooks::{
    AttemptResult, Delivery, DeliveryAttempt, DeliveryStatus, Webhook,
};

use crate::audit::event;
use crate::{T0, at, workspace};

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
