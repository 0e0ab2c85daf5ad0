//! The job clock: each job's next run, created once and advanced by compare and set, listed
//! when due; exactly one of concurrent advances wins, on one store or two.

use std::sync::Arc;

use statehouse_core::backups::BackupFilter;
use statehouse_core::store::Store;

use crate::backup_fixtures::{one_database, run};
use crate::{at, ok};

pub async fn job_clock_advances_by_compare_and_set(store: Arc<dyn Store>) {
    let (_, db) = one_database(&*store, "a").await;
    let name = format!("backup:{}", db.id);
    assert_eq!(ok(store.job_next_run(&name).await, "job_next_run"), None);
    assert!(ok(
        store.advance_job(&name, None, at(100), None).await,
        "create"
    ));
    assert!(
        !ok(
            store.advance_job(&name, None, at(999), None).await,
            "create again"
        ),
        "None creates only once"
    );
    assert_eq!(
        ok(store.job_next_run(&name).await, "job_next_run"),
        Some(at(100))
    );

    let due = run("r1", &db, 100, 100);
    assert!(
        !ok(
            store
                .advance_job(&name, Some(at(99)), at(200), Some(&due))
                .await,
            "stale expectation"
        ),
        "a stale expectation loses"
    );
    assert_eq!(
        ok(store.backup(&db.workspace_id, "r1").await, "backup"),
        None,
        "the loser enqueues nothing"
    );
    assert!(ok(
        store
            .advance_job(&name, Some(at(100)), at(200), Some(&due))
            .await,
        "advance"
    ));
    assert_eq!(
        ok(store.job_next_run(&name).await, "job_next_run"),
        Some(at(200))
    );
    assert_eq!(
        ok(store.backup(&db.workspace_id, "r1").await, "backup"),
        Some(due.clone()),
        "the winner's run is queued"
    );
    assert!(
        !ok(
            store
                .advance_job("backup:missing", Some(at(100)), at(200), None)
                .await,
            "advance a missing job"
        ),
        "a missing job does not match an expectation"
    );
    assert_eq!(
        ok(store.job_next_run("backup:missing").await, "job_next_run"),
        None
    );

    // Due jobs: by prefix (exactly, case included), at or before now, oldest first, limited.
    for (job, next) in [
        ("health:one", 50),
        ("health:two", 40),
        ("health:three", 300),
        ("Health:four", 10),
        ("healthy:five", 5),
    ] {
        assert!(ok(
            store.advance_job(job, None, at(next), None).await,
            "create"
        ));
    }
    assert_eq!(
        ok(store.due_jobs("health:", at(200), 10).await, "due_jobs"),
        vec![
            ("health:two".to_owned(), at(40)),
            ("health:one".to_owned(), at(50))
        ]
    );
    assert_eq!(
        ok(store.due_jobs("health:", at(50), 1).await, "due_jobs"),
        vec![("health:two".to_owned(), at(40))]
    );
    assert_eq!(
        ok(store.due_jobs("", at(10), 10).await, "due_jobs")
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        vec!["healthy:five".to_owned(), "Health:four".to_owned()],
        "an empty prefix matches every job"
    );
    assert!(ok(store.delete_job("health:one").await, "delete_job"));
    assert!(!ok(store.delete_job("health:one").await, "second delete"));
    assert_eq!(
        ok(store.job_next_run("health:one").await, "job_next_run"),
        None
    );

    // A failed enqueue (an existing run id) undoes the advance.
    let result = store
        .advance_job(&name, Some(at(200)), at(300), Some(&due))
        .await;
    assert!(
        result.is_err(),
        "enqueueing a duplicate run fails: {result:?}"
    );
    assert_eq!(
        ok(store.job_next_run(&name).await, "job_next_run"),
        Some(at(200)),
        "the job did not move without its run"
    );
}

async fn job_race(stores: [Arc<dyn Store>; 2]) {
    let (ws, db) = one_database(stores[0].as_ref(), "a").await;
    let name = format!("backup:{}", db.id);
    for round in 0..2 {
        // Round 0 creates the job (expected None), round 1 advances it (expected Some).
        let expected = (round == 1).then(|| at(1_000));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = stores[i % 2].clone();
                let (name, due) = (name.clone(), run(&format!("r{round}-{i}"), &db, 0, 0));
                tokio::spawn(async move {
                    let won = store
                        .advance_job(&name, expected, at(1_000 * (round + 1)), Some(&due))
                        .await
                        .expect("advance_job");
                    (i, won)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (i, won) = t.await.expect("task");
            if won {
                winners.push(i);
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one winner, got {winners:?}"
        );
        let queued = stores[0]
            .list_backups(
                &ws,
                &BackupFilter {
                    limit: 100,
                    ..BackupFilter::default()
                },
            )
            .await
            .expect("list_backups");
        let mine: Vec<_> = queued
            .iter()
            .filter(|b| b.id.starts_with(&format!("r{round}-")))
            .map(|b| b.id.clone())
            .collect();
        assert_eq!(
            mine,
            vec![format!("r{round}-{}", winners[0])],
            "round {round}: only the winner enqueued"
        );
    }
    assert_eq!(
        stores[1].job_next_run(&name).await.expect("job_next_run"),
        Some(at(2_000))
    );
}

pub async fn concurrent_job_advances_exactly_one_wins(store: Arc<dyn Store>) {
    job_race([store.clone(), store]).await;
}

pub async fn two_stores_job_advances_exactly_one_wins(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    job_race([store, peer]).await;
}
