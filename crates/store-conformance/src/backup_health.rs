//! Database health: checks drive the transitions between health states.

use std::sync::Arc;

use statehouse_core::backups::{DatabaseHealth, HealthCounts, HealthStatus};
use statehouse_core::store::Store;

use crate::backup_fixtures::{change, check, database, down_after, one_database};
use crate::{at, ok};

pub async fn health_checks_drive_transitions(store: Arc<dyn Store>) {
    let (ws, db) = one_database(&*store, "a").await;
    let health = |store: Arc<dyn Store>, ws: String, id: String| async move {
        store
            .database(&ws, &id)
            .await
            .expect("database")
            .expect("exists")
            .health
    };
    assert_eq!(
        health(store.clone(), ws.clone(), db.id.clone()).await,
        DatabaseHealth::default()
    );
    assert_eq!(
        ok(
            store
                .record_health_check(&check(&db.id, 1_000, true), &down_after(3))
                .await,
            "check"
        ),
        change(HealthStatus::Unknown, HealthStatus::Up)
    );
    assert_eq!(
        ok(
            store
                .record_health_check(&check(&db.id, 2_000, true), &down_after(3))
                .await,
            "check"
        ),
        None,
        "Up stays Up"
    );
    for n in 1..=2 {
        assert_eq!(
            ok(
                store
                    .record_health_check(&check(&db.id, 2_000 + n * 1_000, false), &down_after(3))
                    .await,
                "failed check"
            ),
            None,
            "failure {n} of 3 changes nothing"
        );
    }
    let before_down = health(store.clone(), ws.clone(), db.id.clone()).await;
    assert_eq!(
        before_down,
        DatabaseHealth {
            status: HealthStatus::Up,
            consecutive_failures: 2,
            changed_at: Some(at(1_000)),
            last_check_at: Some(at(4_000)),
            last_error: Some("connection refused at 4000".into()),
        }
    );
    assert_eq!(
        ok(
            store
                .record_health_check(&check(&db.id, 5_000, false), &down_after(3))
                .await,
            "third failure"
        ),
        change(HealthStatus::Up, HealthStatus::Down)
    );
    assert_eq!(
        ok(
            store
                .record_health_check(&check(&db.id, 6_000, false), &down_after(3))
                .await,
            "fourth failure"
        ),
        None,
        "Down stays Down"
    );
    assert_eq!(
        health(store.clone(), ws.clone(), db.id.clone()).await,
        DatabaseHealth {
            status: HealthStatus::Down,
            consecutive_failures: 4,
            changed_at: Some(at(5_000)),
            last_check_at: Some(at(6_000)),
            last_error: Some("connection refused at 6000".into()),
        }
    );
    assert_eq!(
        ok(
            store
                .record_health_check(&check(&db.id, 7_000, true), &down_after(3))
                .await,
            "recovery"
        ),
        change(HealthStatus::Down, HealthStatus::Up)
    );
    assert_eq!(
        health(store.clone(), ws.clone(), db.id.clone()).await,
        DatabaseHealth {
            status: HealthStatus::Up,
            consecutive_failures: 0,
            changed_at: Some(at(7_000)),
            last_check_at: Some(at(7_000)),
            last_error: None,
        }
    );
    assert_eq!(
        ok(
            store
                .record_health_check(&check("missing", 7_000, true), &down_after(3))
                .await,
            "check of a missing database"
        ),
        None
    );

    // A database never seen up goes from Unknown to Down at the down_after-th failure.
    let fresh = database(&*store, "db-2", &ws, "fresh", &db.target_id).await;
    assert_eq!(
        ok(
            store
                .record_health_check(&check(&fresh.id, 1, false), &down_after(2))
                .await,
            "first failure"
        ),
        None
    );
    assert_eq!(
        ok(
            store
                .record_health_check(&check(&fresh.id, 2, false), &down_after(2))
                .await,
            "second failure"
        ),
        change(HealthStatus::Unknown, HealthStatus::Down)
    );

    // Counts since (inclusive), listing newest first with paging, pruning.
    assert_eq!(
        ok(store.health_counts(&db.id, at(0)).await, "counts"),
        HealthCounts { total: 7, ok: 3 }
    );
    assert_eq!(
        ok(store.health_counts(&db.id, at(5_000)).await, "counts"),
        HealthCounts { total: 3, ok: 1 }
    );
    assert_eq!(
        ok(store.health_counts("missing", at(0)).await, "counts"),
        HealthCounts::default()
    );
    let checks = ok(store.list_health_checks(&db.id, None, 3).await, "list");
    assert_eq!(
        checks,
        vec![
            check(&db.id, 7_000, true),
            check(&db.id, 6_000, false),
            check(&db.id, 5_000, false)
        ]
    );
    let older = ok(
        store.list_health_checks(&db.id, Some(at(5_000)), 10).await,
        "list",
    );
    assert_eq!(
        older.iter().map(|c| c.at).collect::<Vec<_>>(),
        vec![at(4_000), at(3_000), at(2_000), at(1_000)]
    );
    assert_eq!(
        ok(store.prune_health_checks(at(3_000)).await, "prune"),
        2 + 2,
        "db's checks at 1000 and 2000, fresh's at 1 and 2"
    );
    assert_eq!(
        ok(store.health_counts(&db.id, at(0)).await, "counts"),
        HealthCounts { total: 5, ok: 1 }
    );
    assert_eq!(
        ok(store.prune_health_checks(at(3_000)).await, "prune again"),
        0
    );
}
