//! The store's figures for `/metrics`: locks held, the oldest, stale ones, the held locks
//! listed; journal entries not yet sealed; each database's backup figures.

use std::sync::Arc;

use serde_json::json;
use statehouse_core::audit::AuditRecord;
use statehouse_core::backups::{BackupResult, BackupStatus, HealthStatus, VerificationRecord};
use statehouse_core::model::WorkspaceSettings;
use statehouse_core::store::Store;
use statehouse_core::store::metrics::HeldLockAge;
use statehouse_core::store::pending::JournalEntries;

use crate::backup_fixtures::{finished_run, one_database, run};
use crate::{at, lock_request, ok, unlock_request, workspace};

const TWO_HOURS: i64 = 2 * 60 * 60 * 1000;

pub async fn store_gauges_count_locks_stale_locks_and_pending_entries(store: Arc<dyn Store>) {
    assert_eq!(
        WorkspaceSettings::DEFAULT.stale_lock_after_millis,
        Some(TWO_HOURS)
    );
    let ws = workspace(&*store, "ws").await;
    let empty = ok(store.store_gauges(at(0), true).await, "store_gauges");
    assert_eq!(empty.locks_held, 0);
    assert_eq!(empty.oldest_lock_at, None);
    assert_eq!(empty.stale_locks, 0);
    assert_eq!(empty.audit_pending, 0);
    assert_eq!(empty.oldest_audit_pending_at, None);
    assert_eq!(empty.webhooks_pending, 0);
    assert!(empty.held_locks.is_empty());

    ok(
        store
            .lock_state(&ws.id, "a", &lock_request("LA", "tok", at(1_000)))
            .await,
        "lock a",
    );
    // Taken with its journal entries, which wait to be sealed.
    let entries =
        |_: &_| JournalEntries::of(AuditRecord::new(at(5_000), "ci", "lock.acquire"), None);
    ok(
        store
            .lock_state_journaled(&ws.id, "b", &lock_request("LB", "tok", at(5_000)), &entries)
            .await,
        "lock b",
    );
    let held = ok(store.store_gauges(at(10_000), true).await, "store_gauges");
    assert_eq!(held.locks_held, 2);
    assert_eq!(held.oldest_lock_at, Some(at(1_000)));
    assert_eq!(held.stale_locks, 0, "neither is two hours old");
    assert_eq!(held.audit_pending, 1);
    assert_eq!(held.oldest_audit_pending_at, Some(at(5_000)));
    assert_eq!(
        held.held_locks,
        vec![
            HeldLockAge {
                workspace: "ws".into(),
                state: "a".into(),
                locked_at: at(1_000)
            },
            HeldLockAge {
                workspace: "ws".into(),
                state: "b".into(),
                locked_at: at(5_000)
            },
        ],
        "oldest first"
    );
    let unlisted = ok(store.store_gauges(at(10_000), false).await, "store_gauges");
    assert!(unlisted.held_locks.is_empty(), "listed only when asked for");

    let later = ok(
        store.store_gauges(at(1_000 + TWO_HOURS + 1), false).await,
        "store_gauges",
    );
    assert_eq!(
        later.stale_locks, 1,
        "a is older than the workspace allows, b not yet"
    );
    ok(
        store
            .unlock_state(&ws.id, "a", &unlock_request(Some("LA"), "tok", false))
            .await,
        "unlock a",
    );
    let after = ok(
        store.store_gauges(at(1_000 + TWO_HOURS + 1), false).await,
        "store_gauges",
    );
    assert_eq!(after.locks_held, 1);
    assert_eq!(after.oldest_lock_at, Some(at(5_000)));
    assert_eq!(after.stale_locks, 0);
    ok(store.append_journal(&[], &[]).await, "sealing");
    let sealed = ok(store.store_gauges(at(20_000), false).await, "store_gauges");
    assert_eq!(
        sealed.audit_pending, 0,
        "sealed entries are no longer pending"
    );
    assert_eq!(sealed.oldest_audit_pending_at, None);

    let pool = store.pool_status();
    assert!(pool.max >= 1, "{pool:?}");
    assert_eq!(pool.waiters, 0, "{pool:?}");
}

pub async fn database_figures_follow_runs_and_verifications(store: Arc<dyn Store>) {
    assert!(ok(store.database_figures().await, "database_figures").is_empty());
    let (_, db) = one_database(&*store, "shop").await;
    let fresh = ok(store.database_figures().await, "database_figures");
    assert_eq!(fresh.len(), 1);
    let f = &fresh[0];
    assert_eq!((f.workspace.as_str(), f.database.as_str()), ("shop", "app"));
    assert_eq!(f.health, HealthStatus::Unknown);
    assert_eq!(f.last_success_at, None);
    assert_eq!(f.failures_since_success, 0);
    assert_eq!(f.last_verification_ok, None);

    // A success (claimed at 1 000, finished at 2 000, 1 234 bytes), verified; then two failures.
    finished_run(&*store, "ok1", &db, 1_000).await;
    ok(
        store
            .record_verification(&VerificationRecord {
                id: "v1".into(),
                backup_id: "ok1".into(),
                at: at(3_000),
                level: "restore".into(),
                ok: true,
                detail: json!({}),
            })
            .await,
        "record_verification",
    );
    for (id, when) in [("bad1", 10_000), ("bad2", 20_000)] {
        ok(
            store.insert_backup(&run(id, &db, when, when)).await,
            "insert_backup",
        );
        ok(
            store
                .claim_backups(at(when), "w", at(when + 60_000), 10)
                .await,
            "claim_backups",
        );
        let failed = BackupResult {
            status: BackupStatus::Failed,
            finished_at: at(when + 500),
            db_name: None,
            object: None,
            stored_bytes: None,
            dump_bytes: None,
            sha256: None,
            server_version: None,
            error: Some("pg_dump failed".into()),
            detail: json!({}),
        };
        assert!(ok(
            store.finish_backup(id, "w", &failed).await,
            "finish_backup"
        ));
    }
    let figures = ok(store.database_figures().await, "database_figures");
    let f = &figures[0];
    assert_eq!(f.last_success_at, Some(at(2_000)));
    assert_eq!(f.last_success_millis, Some(1_000));
    assert_eq!(f.last_success_bytes, Some(1_234));
    assert_eq!(f.failures_since_success, 2);
    assert_eq!(f.last_verification_at, Some(at(3_000)));
    assert_eq!(f.last_verification_ok, Some(true));

    // A later success resets the failures; a failed verification shows.
    finished_run(&*store, "ok2", &db, 30_000).await;
    ok(
        store
            .record_verification(&VerificationRecord {
                id: "v2".into(),
                backup_id: "ok2".into(),
                at: at(40_000),
                level: "restore".into(),
                ok: false,
                detail: json!({"error": "mismatch"}),
            })
            .await,
        "record_verification",
    );
    let figures = ok(store.database_figures().await, "database_figures");
    let f = &figures[0];
    assert_eq!(f.last_success_at, Some(at(31_000)));
    assert_eq!(f.failures_since_success, 0);
    assert_eq!(f.last_verification_at, Some(at(40_000)));
    assert_eq!(f.last_verification_ok, Some(false));
}
