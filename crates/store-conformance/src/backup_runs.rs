//! Backup runs: queued and claimed under a lease, abandoned runs failed once, concurrent claims,
//! listing, whole-server runs and verifications.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use statehouse_core::backups::{
    BackupFilter, BackupKind, BackupRecord, BackupResult, BackupStatus, VerificationRecord,
    VerificationSummary,
};
use statehouse_core::store::Store;

use crate::backup_fixtures::{database, finished_run, one_database, run, succeeded};
use crate::{at, expect_conflict, ok};

pub async fn backup_runs_are_claimed_under_a_lease(store: Arc<dyn Store>) {
    let (ws, db) = one_database(&*store, "a").await;
    let later = run("later", &db, 0, 5_000);
    let early = run("early", &db, 10, 1_000);
    let earliest = run("earliest", &db, 20, 500);
    for r in [&later, &early, &earliest] {
        ok(store.insert_backup(r).await, "insert_backup");
    }
    assert!(
        ok(
            store.claim_backups(at(499), "w1", at(60_000), 10).await,
            "claim"
        )
        .is_empty(),
        "nothing is due before its not_before"
    );
    let claimed = ok(
        store.claim_backups(at(1_000), "w1", at(61_000), 1).await,
        "claim",
    );
    assert_eq!(
        claimed,
        vec![BackupRecord {
            status: BackupStatus::Running,
            started_at: Some(at(1_000)),
            lease_owner: Some("w1".into()),
            lease_until: Some(at(61_000)),
            ..earliest.clone()
        }],
        "the oldest due run first, up to the limit"
    );
    let claimed = ok(
        store.claim_backups(at(1_000), "w2", at(61_000), 10).await,
        "claim",
    );
    assert_eq!(
        claimed.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
        vec!["early"],
        "a claimed run is not claimed again; a later one is not due yet"
    );

    // Renewing: only the lease owner, only while running.
    assert!(!ok(
        store
            .renew_backup("earliest", "w2", at(90_000), Some("x"), None)
            .await,
        "renew by another worker"
    ));
    assert!(ok(
        store
            .renew_backup(
                "earliest",
                "w1",
                at(90_000),
                Some("app/2023.dump.zst.age"),
                None
            )
            .await,
        "renew"
    ));
    assert!(ok(
        store
            .renew_backup("earliest", "w1", at(95_000), None, Some("app"))
            .await,
        "renew keeps the object"
    ));
    let now = ok(store.backup(&ws, "earliest").await, "backup").expect("exists");
    assert_eq!(
        (
            now.lease_until,
            now.object.as_deref(),
            now.db_name.as_deref()
        ),
        (Some(at(95_000)), Some("app/2023.dump.zst.age"), Some("app"))
    );
    assert!(!ok(
        store
            .renew_backup("later", "w1", at(95_000), None, None)
            .await,
        "renew a queued run"
    ));

    // Progress: the bytes so far, only by the lease owner, only while running.
    assert!(ok(
        store.report_backup_progress("earliest", "w1", 4_096).await,
        "progress"
    ));
    assert!(!ok(
        store.report_backup_progress("earliest", "w2", 9_999).await,
        "progress by another worker"
    ));
    assert!(!ok(
        store.report_backup_progress("later", "w1", 9_999).await,
        "progress of a queued run"
    ));
    let now = ok(store.backup(&ws, "earliest").await, "backup").expect("exists");
    assert_eq!(now.stored_bytes, Some(4_096), "the bytes so far");

    // Finishing: only the lease owner, once.
    assert!(!ok(
        store
            .finish_backup("earliest", "w2", &succeeded(2_000))
            .await,
        "finish by another worker"
    ));
    let result = succeeded(2_000);
    assert!(ok(
        store.finish_backup("earliest", "w1", &result).await,
        "finish"
    ));
    assert!(!ok(
        store.finish_backup("earliest", "w1", &result).await,
        "finish twice"
    ));
    assert_eq!(
        ok(store.backup(&ws, "earliest").await, "backup"),
        Some(BackupRecord {
            status: BackupStatus::Succeeded,
            started_at: Some(at(1_000)),
            finished_at: Some(at(2_000)),
            lease_owner: None,
            lease_until: None,
            db_name: Some("app".into()),
            object: Some("app/2023.dump.zst.age".into()),
            stored_bytes: result.stored_bytes,
            dump_bytes: result.dump_bytes,
            sha256: result.sha256.clone(),
            server_version: result.server_version.clone(),
            detail: result.detail.clone(),
            ..earliest
        })
    );
    let failed = BackupResult {
        status: BackupStatus::Failed,
        error: Some("pg_dump: connection refused".into()),
        db_name: None,
        object: Some("app/partial".into()),
        stored_bytes: None,
        dump_bytes: None,
        sha256: None,
        server_version: None,
        detail: json!({}),
        finished_at: at(3_000),
    };
    assert!(ok(
        store.finish_backup("early", "w2", &failed).await,
        "fail"
    ));
    let now = ok(store.backup(&ws, "early").await, "backup").expect("exists");
    assert_eq!(
        (now.status, now.error.as_deref(), now.object.as_deref()),
        (
            BackupStatus::Failed,
            Some("pg_dump: connection refused"),
            Some("app/partial")
        )
    );
    assert!(
        store
            .finish_backup(
                "later",
                "w1",
                &BackupResult {
                    status: BackupStatus::Running,
                    ..succeeded(1)
                }
            )
            .await
            .is_err(),
        "a run cannot finish as running"
    );
    assert!(ok(store.backup(&ws, "missing").await, "backup").is_none());
}

pub async fn abandoned_backups_are_failed_once(store: Arc<dyn Store>) {
    let (ws, db) = one_database(&*store, "a").await;
    // Claimed in id order (same not_before and queued_at): a-long, then b-short.
    for id in ["a-long", "b-short", "c-queued"] {
        ok(store.insert_backup(&run(id, &db, 0, 0)).await, "insert");
    }
    assert_eq!(
        ok(
            store.claim_backups(at(0), "w1", at(1_000), 1).await,
            "claim"
        )
        .iter()
        .map(|b| b.id.as_str())
        .collect::<Vec<_>>(),
        vec!["a-long"]
    );
    ok(
        store.claim_backups(at(0), "w2", at(10_000), 1).await,
        "claim",
    );
    assert!(
        ok(
            store.fail_abandoned_backups(at(1_000), "lost").await,
            "fail"
        )
        .is_empty(),
        "a lease that ends now has not expired yet"
    );
    let failed = ok(
        store
            .fail_abandoned_backups(at(1_001), "the worker stopped renewing its lease")
            .await,
        "fail",
    );
    assert_eq!(failed.len(), 1);
    let f = &failed[0];
    assert_eq!(
        (
            f.id.as_str(),
            f.status,
            f.finished_at,
            f.error.as_deref(),
            f.lease_owner.as_deref()
        ),
        (
            "a-long",
            BackupStatus::Failed,
            Some(at(1_001)),
            Some("the worker stopped renewing its lease"),
            None
        )
    );
    assert_eq!(
        ok(store.backup(&ws, "a-long").await, "backup").as_ref(),
        Some(f)
    );
    assert!(
        ok(
            store.fail_abandoned_backups(at(5_000), "again").await,
            "fail"
        )
        .is_empty(),
        "each abandoned run is failed once"
    );
    assert!(!ok(
        store.finish_backup("a-long", "w1", &succeeded(5_000)).await,
        "the old worker comes back"
    ));
    assert!(!ok(
        store
            .renew_backup("a-long", "w1", at(9_000), None, None)
            .await,
        "the old worker renews"
    ));
    let queued = ok(store.backup(&ws, "c-queued").await, "backup").expect("exists");
    assert_eq!(
        queued.status,
        BackupStatus::Queued,
        "queued runs are left alone"
    );
}

async fn run_claim_race(stores: [Arc<dyn Store>; 2]) {
    let (_, db) = one_database(stores[0].as_ref(), "a").await;
    let mut all = HashSet::new();
    for i in 0..40 {
        let id = format!("r{i:02}");
        all.insert(id.clone());
        stores[0]
            .insert_backup(&run(&id, &db, i, i))
            .await
            .expect("insert_backup");
    }
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = store
                        .claim_backups(at(100), &format!("w{i}"), at(600_000), 3)
                        .await
                        .expect("claim_backups");
                    if got.is_empty() {
                        return mine;
                    }
                    for b in got {
                        assert_eq!(b.lease_owner.as_deref(), Some(format!("w{i}").as_str()));
                        mine.push(b.id);
                    }
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.expect("task") {
            assert!(seen.insert(id.clone()), "run {id} was claimed twice");
        }
    }
    assert_eq!(seen, all, "every run claimed exactly once");
}

pub async fn concurrent_backup_claims_never_overlap(store: Arc<dyn Store>) {
    run_claim_race([store.clone(), store]).await;
}

pub async fn two_stores_backup_claims_never_overlap(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    run_claim_race([store, peer]).await;
}

pub async fn backup_listing_filters_and_pages(store: Arc<dyn Store>) {
    let (ws, db) = one_database(&*store, "a").await;
    let other_db = database(&*store, "db-2", &ws, "other", &db.target_id).await;
    let (other_ws, foreign) = one_database(&*store, "b").await;
    // Same queued_at for r2 and r3: the id breaks the tie.
    for (id, d, queued) in [
        ("r1", &db, 10),
        ("r2", &db, 20),
        ("r3", &db, 20),
        ("r4", &other_db, 30),
        ("r5", &db, 40),
    ] {
        ok(
            store.insert_backup(&run(id, d, queued, 1_000_000)).await,
            "insert",
        );
    }
    ok(
        store
            .insert_backup(&run("x1", &foreign, 25, 1_000_000))
            .await,
        "insert",
    );
    finished_run(&*store, "r6", &db, 50).await;

    let ids = |runs: Vec<BackupRecord>| runs.into_iter().map(|b| b.id).collect::<Vec<_>>();
    let all = BackupFilter {
        limit: 100,
        ..BackupFilter::default()
    };
    assert_eq!(
        ids(ok(store.list_backups(&ws, &all).await, "list")),
        ["r6", "r5", "r4", "r3", "r2", "r1"],
        "newest first, only the workspace's"
    );
    assert_eq!(
        ids(ok(store.list_backups(&other_ws, &all).await, "list")),
        ["x1"]
    );
    let of_db = BackupFilter {
        database_id: Some(db.id.clone()),
        ..all.clone()
    };
    assert_eq!(
        ids(ok(store.list_backups(&ws, &of_db).await, "list")),
        ["r6", "r5", "r3", "r2", "r1"]
    );
    let succeeded_only = BackupFilter {
        status: Some(BackupStatus::Succeeded),
        ..all.clone()
    };
    assert_eq!(
        ids(ok(store.list_backups(&ws, &succeeded_only).await, "list")),
        ["r6"]
    );
    let queued_of_db = BackupFilter {
        status: Some(BackupStatus::Queued),
        ..of_db.clone()
    };
    assert_eq!(
        ids(ok(store.list_backups(&ws, &queued_of_db).await, "list")),
        ["r5", "r3", "r2", "r1"]
    );

    // Cursor paging: each page resumes strictly after the last row of the previous one.
    let mut pages = Vec::new();
    let mut filter = BackupFilter {
        limit: 2,
        ..of_db.clone()
    };
    loop {
        let page = ok(store.list_backups(&ws, &filter).await, "page");
        if page.is_empty() {
            break;
        }
        let last = page.last().expect("non-empty");
        filter.before = Some((last.queued_at, last.id.clone()));
        pages.push(ids(page));
    }
    assert_eq!(
        pages,
        vec![vec!["r6", "r5"], vec!["r3", "r2"], vec!["r1"]],
        "pages split between equal timestamps resume by id"
    );
    let after_tie = BackupFilter {
        before: Some((at(20), "r3".into())),
        ..all
    };
    assert_eq!(
        ids(ok(store.list_backups(&ws, &after_tie).await, "list")),
        ["r2", "r1"]
    );
}

pub async fn whole_server_runs_keep_their_kind_and_group(store: Arc<dyn Store>) {
    let (ws, db) = one_database(&*store, "a").await;
    let grouped = |id: &str, kind: BackupKind, db_name: Option<&str>, queued: i64| BackupRecord {
        kind,
        db_name: db_name.map(str::to_owned),
        server_run: Some("run-1".into()),
        ..run(id, &db, queued, 0)
    };
    let globals = grouped("g1", BackupKind::Globals, None, 10);
    let shop = grouped("d1", BackupKind::Database, Some("shop"), 11);
    let other_run = BackupRecord {
        server_run: Some("run-2".into()),
        ..run("d2", &db, 12, 0)
    };
    let single = run("s1", &db, 13, 0);
    for r in [&globals, &shop, &other_run, &single] {
        ok(store.insert_backup(r).await, "insert_backup");
    }
    assert_eq!(
        ok(store.backup(&ws, "g1").await, "backup"),
        Some(globals.clone()),
        "kind and server run round-trip"
    );
    assert_eq!(
        ok(store.backup(&ws, "s1").await, "backup").map(|b| (b.kind, b.server_run)),
        Some((BackupKind::Database, None))
    );
    let of_run = BackupFilter {
        server_run: Some("run-1".into()),
        limit: 100,
        ..BackupFilter::default()
    };
    let listed = ok(store.list_backups(&ws, &of_run).await, "list");
    assert_eq!(
        listed
            .iter()
            .map(|b| (b.id.as_str(), b.kind))
            .collect::<Vec<_>>(),
        [("d1", BackupKind::Database), ("g1", BackupKind::Globals)],
        "only the whole-server run's runs, newest first"
    );
    // Claiming and failing return the same columns.
    let claimed = ok(
        store.claim_backups(at(100), "w", at(200), 10).await,
        "claim",
    );
    let claimed_globals = claimed.iter().find(|b| b.id == "g1").expect("claimed");
    assert_eq!(
        (claimed_globals.kind, claimed_globals.server_run.as_deref()),
        (BackupKind::Globals, Some("run-1"))
    );
    let failed = ok(
        store.fail_abandoned_backups(at(300), "gone").await,
        "fail_abandoned",
    );
    let failed_globals = failed.iter().find(|b| b.id == "g1").expect("failed");
    assert_eq!(
        (failed_globals.kind, failed_globals.server_run.as_deref()),
        (BackupKind::Globals, Some("run-1"))
    );
}

pub async fn verifications_update_the_latest_summary(store: Arc<dyn Store>) {
    let (ws, db) = one_database(&*store, "a").await;
    finished_run(&*store, "b1", &db, 0).await;
    let first = VerificationRecord {
        id: "v1".into(),
        backup_id: "b1".into(),
        at: at(10_000),
        level: "list".into(),
        ok: true,
        detail: json!({"entries": 120, "sha256": "ok"}),
    };
    let second = VerificationRecord {
        id: "v2".into(),
        backup_id: "b1".into(),
        at: at(20_000),
        level: "restore".into(),
        ok: false,
        detail: json!({"mismatches": [{"table": "public.users", "dump": 42, "restored": 41}]}),
    };
    assert!(ok(store.record_verification(&first).await, "record"));
    assert_eq!(
        ok(store.backup(&ws, "b1").await, "backup")
            .expect("exists")
            .verification,
        Some(VerificationSummary {
            at: at(10_000),
            level: "list".into(),
            ok: true
        })
    );
    assert!(ok(store.record_verification(&second).await, "record"));
    assert_eq!(
        ok(store.backup(&ws, "b1").await, "backup")
            .expect("exists")
            .verification,
        Some(VerificationSummary {
            at: at(20_000),
            level: "restore".into(),
            ok: false
        })
    );
    assert_eq!(
        ok(store.list_verifications("b1").await, "list_verifications"),
        vec![second, first.clone()],
        "newest first"
    );
    assert!(
        !ok(
            store
                .record_verification(&VerificationRecord {
                    id: "v3".into(),
                    backup_id: "missing".into(),
                    ..first
                })
                .await,
            "verification of a missing run"
        ),
        "a missing run is reported, not created"
    );
    assert!(ok(store.list_verifications("missing").await, "list").is_empty());

    // Deleting: refused while queued or running; verifications go with the run.
    ok(store.insert_backup(&run("b2", &db, 5, 5)).await, "insert");
    let message = expect_conflict(store.delete_backup(&ws, "b2").await, "delete a queued run");
    assert!(message.contains("queued"), "{message}");
    ok(store.claim_backups(at(5), "w", at(9_000), 1).await, "claim");
    expect_conflict(store.delete_backup(&ws, "b2").await, "delete a running run");
    assert!(!ok(
        store.delete_backup("ws-other", "b1").await,
        "delete through another workspace"
    ));
    assert!(ok(store.delete_backup(&ws, "b1").await, "delete_backup"));
    assert!(!ok(store.delete_backup(&ws, "b1").await, "second delete"));
    assert!(
        ok(store.list_verifications("b1").await, "list").is_empty(),
        "verifications go with their run"
    );
}
