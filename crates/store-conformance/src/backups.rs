//! Backup targets, notifiers, databases, workspace backup settings, backup runs (queue, leases,
//! verifications), health checks, the job clock and backup secrets' key rotation.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use statehouse_core::Error;
use statehouse_core::backups::{
    BackupFilter, BackupKind, BackupRecord, BackupResult, BackupStatus, BackupTrigger,
    DatabaseHealth, DatabaseRecord, HealthCheck, HealthCounts, HealthStatus, HealthTransition,
    NotifierRecord, TargetRecord, VerificationRecord, VerificationSummary, WorkspaceBackupSettings,
};
use statehouse_core::crypto::SealedBody;
use statehouse_core::store::Store;

use crate::{at, expect_conflict, ok, sealed, workspace};

// ---- fixtures ------------------------------------------------------------------------------

/// The backup crate's health rule: `n` failed checks in a row make a database down.
fn down_after(
    n: i64,
) -> impl Fn(&DatabaseHealth, &HealthCheck) -> (DatabaseHealth, Option<HealthTransition>) + Send + Sync
{
    move |health, check| statehouse_backup::uptime::health_after(health, check, n)
}

fn target_value(id: &str, workspace_id: &str, name: &str) -> TargetRecord {
    TargetRecord {
        id: id.to_owned(),
        workspace_id: workspace_id.to_owned(),
        name: name.to_owned(),
        kind: "s3".into(),
        settings: json!({"bucket": "backups", "region": "eu-west-1", "prefix": name}),
        secrets: Some(sealed(&format!("target-{id}"))),
        created_at: at(0),
        updated_at: at(0),
    }
}

pub(crate) async fn target(
    store: &dyn Store,
    id: &str,
    workspace_id: &str,
    name: &str,
) -> TargetRecord {
    let t = target_value(id, workspace_id, name);
    ok(store.create_target(&t).await, "create_target");
    t
}

fn database_value(id: &str, workspace_id: &str, name: &str, target_id: &str) -> DatabaseRecord {
    DatabaseRecord {
        id: id.to_owned(),
        workspace_id: workspace_id.to_owned(),
        name: name.to_owned(),
        settings: json!({"host": "db.internal", "port": 5432, "database": name, "schedule": "0 3 * * *"}),
        secrets: Some(sealed(&format!("database-{id}"))),
        target_id: target_id.to_owned(),
        enabled: true,
        created_at: at(0),
        updated_at: at(0),
        health: DatabaseHealth::default(),
    }
}

pub(crate) async fn database(
    store: &dyn Store,
    id: &str,
    workspace_id: &str,
    name: &str,
    target_id: &str,
) -> DatabaseRecord {
    let d = database_value(id, workspace_id, name, target_id);
    ok(store.create_database(&d).await, "create_database");
    d
}

pub(crate) fn notifier_value(id: &str, workspace_id: &str, name: &str) -> NotifierRecord {
    NotifierRecord {
        id: id.to_owned(),
        workspace_id: workspace_id.to_owned(),
        name: name.to_owned(),
        kind: "slack".into(),
        settings: json!({"channel": "#ops"}),
        secrets: Some(sealed(&format!("notifier-{id}"))),
        events: vec!["backup.*".into(), "health.down".into()],
        database_ids: None,
        enabled: true,
        created_at: at(0),
        updated_at: at(0),
    }
}

/// A queued run of `database` (on its target), queued at `queued` and due at `not_before`.
fn run(id: &str, database: &DatabaseRecord, queued: i64, not_before: i64) -> BackupRecord {
    BackupRecord {
        id: id.to_owned(),
        workspace_id: database.workspace_id.clone(),
        database_id: database.id.clone(),
        db_name: None,
        kind: BackupKind::Database,
        server_run: None,
        target_id: database.target_id.clone(),
        object: None,
        status: BackupStatus::Queued,
        trigger: BackupTrigger::Schedule,
        attempt: 1,
        requested_by: "schedule".into(),
        queued_at: at(queued),
        not_before: at(not_before),
        started_at: None,
        finished_at: None,
        lease_owner: None,
        lease_until: None,
        stored_bytes: None,
        dump_bytes: None,
        sha256: None,
        server_version: None,
        error: None,
        detail: json!({}),
        verification: None,
    }
}

fn succeeded(finished: i64) -> BackupResult {
    BackupResult {
        status: BackupStatus::Succeeded,
        finished_at: at(finished),
        db_name: Some("app".into()),
        object: None,
        stored_bytes: Some(1_234),
        dump_bytes: Some(9_876),
        sha256: Some("ab".repeat(32)),
        server_version: Some("16.4".into()),
        error: None,
        detail: json!({"zstd_level": 3, "recipients": ["age1xyz"], "rows": {"public.users": 42}}),
    }
}

/// A workspace with one target and one database: (workspace id, database).
async fn one_database(store: &dyn Store, name: &str) -> (String, DatabaseRecord) {
    let ws = workspace(store, name).await;
    target(store, &format!("t-{name}"), &ws.id, "main").await;
    let db = database(
        store,
        &format!("db-{name}"),
        &ws.id,
        "app",
        &format!("t-{name}"),
    )
    .await;
    (ws.id, db)
}

/// A run of `database`, claimed by `owner` and finished as succeeded at `finished`.
async fn finished_run(store: &dyn Store, id: &str, database: &DatabaseRecord, queued: i64) {
    ok(
        store
            .insert_backup(&run(id, database, queued, queued))
            .await,
        "insert_backup",
    );
    let claimed = ok(
        store
            .claim_backups(at(queued), "finisher", at(queued + 60_000), 10)
            .await,
        "claim_backups",
    );
    assert_eq!(
        claimed.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
        vec![id]
    );
    assert!(ok(
        store
            .finish_backup(id, "finisher", &succeeded(queued + 1_000))
            .await,
        "finish_backup"
    ));
}

fn expect_bad_request<T: std::fmt::Debug>(result: statehouse_core::Result<T>, what: &str) {
    match result {
        Err(Error::BadRequest(message)) => assert!(!message.is_empty(), "{what}"),
        other => panic!("{what}: expected Error::BadRequest, got {other:?}"),
    }
}

fn check(database_id: &str, when: i64, good: bool) -> HealthCheck {
    HealthCheck {
        database_id: database_id.to_owned(),
        at: at(when),
        ok: good,
        latency_ms: good.then_some(7),
        error: (!good).then(|| format!("connection refused at {when}")),
    }
}

fn change(from: HealthStatus, to: HealthStatus) -> Option<HealthTransition> {
    Some(HealthTransition { from, to })
}

// ---- configuration -------------------------------------------------------------------------

pub async fn backup_targets_are_created_listed_updated_deleted(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "a").await;
    let other = workspace(&*store, "b").await;
    let t1 = target(&*store, "t1", &ws.id, "offsite").await;
    let t2 = target(&*store, "t2", &ws.id, "local").await;
    target(&*store, "t3", &other.id, "offsite").await; // same name, other workspace
    let message = expect_conflict(
        store
            .create_target(&target_value("t4", &ws.id, "offsite"))
            .await,
        "a taken name",
    );
    assert!(message.contains("offsite"), "{message}");

    assert_eq!(
        ok(store.list_targets(&ws.id).await, "list_targets"),
        vec![t2.clone(), t1.clone()],
        "the workspace's targets in name order"
    );
    assert_eq!(
        ok(store.target(&ws.id, "t1").await, "target"),
        Some(t1.clone())
    );
    assert_eq!(
        ok(store.target(&other.id, "t1").await, "another workspace's"),
        None
    );
    assert_eq!(
        ok(store.target_by_name(&ws.id, "local").await, "by name"),
        Some(t2.clone())
    );
    assert_eq!(
        ok(store.target_by_name(&ws.id, "nope").await, "by name"),
        None
    );

    let changed = TargetRecord {
        name: "offsite-eu".into(),
        kind: "azblob".into(),
        settings: json!({"container": "c", "nested": {"list": [1, 2.5, "x"], "empty": {}}}),
        secrets: None,
        updated_at: at(5_000),
        created_at: at(999), // not replaced
        ..t1.clone()
    };
    assert!(ok(store.update_target(&changed).await, "update_target"));
    assert_eq!(
        ok(store.target(&ws.id, "t1").await, "target"),
        Some(TargetRecord {
            created_at: t1.created_at,
            ..changed.clone()
        })
    );
    let renamed_onto_taken = TargetRecord {
        name: "local".into(),
        ..changed.clone()
    };
    let message = expect_conflict(
        store.update_target(&renamed_onto_taken).await,
        "renaming onto a taken name",
    );
    assert!(message.contains("local"), "{message}");
    assert!(!ok(
        store
            .update_target(&target_value("missing", &ws.id, "x"))
            .await,
        "update of a missing target"
    ));
    assert!(
        !ok(
            store
                .update_target(&TargetRecord {
                    workspace_id: other.id.clone(),
                    ..changed.clone()
                })
                .await,
            "update through another workspace"
        ),
        "a target is only reached through its workspace"
    );

    assert!(!ok(
        store.delete_target(&other.id, "t1").await,
        "delete through another workspace"
    ));
    assert!(ok(store.delete_target(&ws.id, "t1").await, "delete_target"));
    assert!(!ok(
        store.delete_target(&ws.id, "t1").await,
        "second delete"
    ));
    assert_eq!(
        ok(store.list_targets(&ws.id).await, "list_targets"),
        vec![t2]
    );
}

pub async fn notifiers_are_created_listed_updated_deleted(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "a").await;
    let other = workspace(&*store, "b").await;
    let n1 = notifier_value("n1", &ws.id, "slack-ops");
    ok(store.create_notifier(&n1).await, "create_notifier");
    let n2 = NotifierRecord {
        kind: "email".into(),
        secrets: None,
        events: vec!["*".into()],
        database_ids: Some(vec!["db-1".into(), "db-2".into()]),
        enabled: false,
        ..notifier_value("n2", &ws.id, "email-dba")
    };
    ok(store.create_notifier(&n2).await, "create_notifier");
    let message = expect_conflict(
        store
            .create_notifier(&notifier_value("n3", &ws.id, "slack-ops"))
            .await,
        "a taken name",
    );
    assert!(message.contains("slack-ops"), "{message}");
    ok(
        store
            .create_notifier(&notifier_value("n4", &other.id, "slack-ops"))
            .await,
        "same name in another workspace",
    );

    assert_eq!(
        ok(store.list_notifiers(&ws.id).await, "list_notifiers"),
        vec![n2.clone(), n1.clone()]
    );
    assert_eq!(
        ok(store.notifier(&ws.id, "n2").await, "notifier"),
        Some(n2.clone())
    );
    assert_eq!(ok(store.notifier(&other.id, "n2").await, "notifier"), None);
    assert_eq!(
        ok(store.notifier_by_name(&ws.id, "slack-ops").await, "by name"),
        Some(n1.clone())
    );

    let changed = NotifierRecord {
        name: "slack-dba".into(),
        settings: json!({"channel": "#dba", "mention": null}),
        secrets: Some(sealed("rotated-webhook-url")),
        events: vec![],
        database_ids: Some(vec![]),
        enabled: false,
        updated_at: at(7_000),
        ..n1.clone()
    };
    assert!(ok(store.update_notifier(&changed).await, "update_notifier"));
    assert_eq!(
        ok(store.notifier(&ws.id, "n1").await, "notifier"),
        Some(changed.clone()),
        "an empty filter stays empty, not \"every database\""
    );
    expect_conflict(
        store
            .update_notifier(&NotifierRecord {
                name: "email-dba".into(),
                ..changed.clone()
            })
            .await,
        "renaming onto a taken name",
    );
    assert!(!ok(
        store
            .update_notifier(&notifier_value("missing", &ws.id, "x"))
            .await,
        "update of a missing notifier"
    ));
    assert!(ok(
        store.delete_notifier(&ws.id, "n1").await,
        "delete_notifier"
    ));
    assert!(!ok(
        store.delete_notifier(&ws.id, "n1").await,
        "second delete"
    ));
    assert_eq!(
        ok(store.list_notifiers(&ws.id).await, "list_notifiers"),
        vec![n2]
    );
}

pub async fn backup_databases_refer_to_their_workspace_targets(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "a").await;
    let other = workspace(&*store, "b").await;
    target(&*store, "t1", &ws.id, "main").await;
    target(&*store, "t2", &ws.id, "second").await;
    target(&*store, "t-other", &other.id, "main").await;

    expect_bad_request(
        store
            .create_database(&database_value("db-x", &ws.id, "x", "t-other"))
            .await,
        "another workspace's target",
    );
    expect_bad_request(
        store
            .create_database(&database_value("db-x", &ws.id, "x", "t-missing"))
            .await,
        "a missing target",
    );
    let d1 = database(&*store, "db-1", &ws.id, "orders", "t1").await;
    let d2 = database(&*store, "db-2", &ws.id, "billing", "t1").await;
    let d3 = database(&*store, "db-3", &other.id, "orders", "t-other").await;
    let message = expect_conflict(
        store
            .create_database(&database_value("db-4", &ws.id, "orders", "t1"))
            .await,
        "a taken name",
    );
    assert!(message.contains("orders"), "{message}");

    assert_eq!(
        ok(store.list_databases(&ws.id).await, "list_databases"),
        vec![d2.clone(), d1.clone()]
    );
    let all = ok(store.all_databases().await, "all_databases");
    assert_eq!(all.len(), 3);
    for d in [&d1, &d2, &d3] {
        assert!(all.contains(d), "all_databases holds {}", d.id);
    }
    assert_eq!(
        ok(store.database(&ws.id, "db-1").await, "database"),
        Some(d1.clone())
    );
    assert_eq!(
        ok(store.database(&other.id, "db-1").await, "database"),
        None
    );
    assert_eq!(
        ok(store.database_by_name(&other.id, "orders").await, "by name"),
        Some(d3)
    );

    let changed = DatabaseRecord {
        name: "orders-eu".into(),
        settings: json!({"host": "db2", "port": 6432, "mode": "server", "retention": {"keep_last": 7}}),
        secrets: None,
        target_id: "t2".into(),
        enabled: false,
        updated_at: at(3_000),
        health: DatabaseHealth {
            status: HealthStatus::Down,
            consecutive_failures: 9,
            changed_at: Some(at(1)),
            last_check_at: Some(at(1)),
            last_error: Some("ignored".into()),
        },
        ..d1.clone()
    };
    assert!(ok(store.update_database(&changed).await, "update_database"));
    assert_eq!(
        ok(store.database(&ws.id, "db-1").await, "database"),
        Some(DatabaseRecord {
            health: DatabaseHealth::default(),
            ..changed.clone()
        }),
        "update replaces everything but the health"
    );
    expect_bad_request(
        store
            .update_database(&DatabaseRecord {
                target_id: "t-other".into(),
                ..changed.clone()
            })
            .await,
        "moving to another workspace's target",
    );
    expect_conflict(
        store
            .update_database(&DatabaseRecord {
                name: "billing".into(),
                ..changed.clone()
            })
            .await,
        "renaming onto a taken name",
    );
    assert!(!ok(
        store
            .update_database(&database_value("missing", &ws.id, "x", "t1"))
            .await,
        "update of a missing database"
    ));

    let message = expect_conflict(
        store.delete_target(&ws.id, "t1").await,
        "deleting a target a database uses",
    );
    assert!(message.contains("database"), "{message}");
    assert!(ok(
        store.delete_database(&ws.id, "db-2").await,
        "delete_database"
    ));
    assert!(ok(store.delete_target(&ws.id, "t1").await, "delete_target"));
    assert!(!ok(
        store.delete_database(&ws.id, "db-2").await,
        "second delete"
    ));
    assert!(!ok(
        store.delete_database(&other.id, "db-1").await,
        "delete through another workspace"
    ));
}

pub async fn backups_keep_their_database_and_target_from_being_deleted(store: Arc<dyn Store>) {
    let (ws, db) = one_database(&*store, "a").await;
    let other = database(&*store, "db-other", &ws, "other", &db.target_id).await;
    finished_run(&*store, "b1", &db, 0).await;
    for (name, next) in [
        (format!("backup:{}", db.id), 10),
        (format!("health:{}", db.id), 11),
        (format!("verify:{}:weekly", db.id), 12),
        (format!("backup:{}", other.id), 13),
        ("self-backup".to_owned(), 14),
    ] {
        assert!(ok(
            store.advance_job(&name, None, at(next), None).await,
            "create job"
        ));
    }
    ok(
        store
            .record_health_check(&check(&db.id, 1, true), &down_after(3))
            .await,
        "record_health_check",
    );

    let message = expect_conflict(
        store.delete_database(&ws, &db.id).await,
        "deleting a database with backups",
    );
    assert!(message.contains("backup"), "{message}");
    assert!(ok(
        store.delete_database(&ws, &other.id).await,
        "delete other"
    ));
    // The database is still there; only its target's other user went.
    let message = expect_conflict(
        store.delete_target(&ws, &db.target_id).await,
        "deleting a target with backups",
    );
    assert!(message.contains("backup"), "{message}");

    assert!(ok(store.delete_backup(&ws, "b1").await, "delete_backup"));
    assert!(ok(
        store.delete_database(&ws, &db.id).await,
        "delete_database"
    ));
    assert_eq!(ok(store.database(&ws, &db.id).await, "database"), None);
    assert!(
        ok(store.list_health_checks(&db.id, None, 10).await, "checks").is_empty(),
        "the database's health checks went with it"
    );
    for (name, kept) in [
        (format!("backup:{}", db.id), false),
        (format!("health:{}", db.id), false),
        (format!("verify:{}:weekly", db.id), false),
        (format!("backup:{}", other.id), false), // deleted with `other` above
        ("self-backup".to_owned(), true),
    ] {
        assert_eq!(
            ok(store.job_next_run(&name).await, "job_next_run").is_some(),
            kept,
            "job {name}"
        );
    }
    assert!(ok(
        store.delete_target(&ws, &db.target_id).await,
        "delete the unused target"
    ));
}

pub async fn backup_settings_and_secrets_round_trip_exactly(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "a").await;
    assert_eq!(
        ok(store.workspace_backup_settings(&ws.id).await, "settings"),
        None
    );
    let odd = json!({
        "unicode": "zoë ✓ 日本",
        "quotes": "it's \"quoted\" \\ back",
        "big": 9_007_199_254_740_993_i64,
        "negative": -17,
        "float": 0.1,
        "nested": [{"a": null, "b": [true, false]}, [], {}],
    });
    let first = WorkspaceBackupSettings {
        workspace_id: ws.id.clone(),
        settings: odd.clone(),
        secrets: Some(SealedBody {
            key_id: "key-1".into(),
            wrapped_key: vec![0, 0xff, 0, 1],
            ciphertext: (0..=255u8).chain(0..=255u8).collect(),
        }),
        updated_at: at(1),
    };
    ok(store.put_workspace_backup_settings(&first).await, "put");
    assert_eq!(
        ok(store.workspace_backup_settings(&ws.id).await, "settings"),
        Some(first.clone())
    );
    let second = WorkspaceBackupSettings {
        settings: json!({"recipients": ["age1abc", "age1def"]}),
        secrets: None,
        updated_at: at(2),
        ..first
    };
    ok(
        store.put_workspace_backup_settings(&second).await,
        "replace",
    );
    assert_eq!(
        ok(store.workspace_backup_settings(&ws.id).await, "settings"),
        Some(second),
        "put replaces the settings and drops the secrets"
    );

    let t = TargetRecord {
        settings: odd.clone(),
        ..target_value("t1", &ws.id, "odd")
    };
    ok(store.create_target(&t).await, "create_target");
    assert_eq!(ok(store.target(&ws.id, "t1").await, "target"), Some(t));
    let plain = TargetRecord {
        secrets: None,
        ..target_value("t2", &ws.id, "plain")
    };
    ok(store.create_target(&plain).await, "create_target");
    assert_eq!(ok(store.target(&ws.id, "t2").await, "target"), Some(plain));
    let d = DatabaseRecord {
        settings: odd,
        ..database_value("db-1", &ws.id, "odd", "t1")
    };
    ok(store.create_database(&d).await, "create_database");
    assert_eq!(
        ok(store.database(&ws.id, "db-1").await, "database"),
        Some(d)
    );
}

pub async fn workspace_delete_is_refused_while_backup_configuration_exists(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "doomed").await;
    ok(
        store
            .put_workspace_backup_settings(&WorkspaceBackupSettings {
                workspace_id: ws.id.clone(),
                settings: json!({"recipients": []}),
                secrets: Some(sealed("identity")),
                updated_at: at(0),
            })
            .await,
        "put settings",
    );
    target(&*store, "t1", &ws.id, "main").await;
    database(&*store, "db-1", &ws.id, "app", "t1").await;
    ok(
        store
            .create_notifier(&notifier_value("n1", &ws.id, "ops"))
            .await,
        "create_notifier",
    );
    let message = expect_conflict(
        store.delete_workspace(&ws.id).await,
        "delete with backup configuration",
    );
    assert!(message.contains("database"), "{message}");
    assert!(ok(store.delete_database(&ws.id, "db-1").await, "delete db"));
    expect_conflict(store.delete_workspace(&ws.id).await, "delete with a target");
    assert!(ok(store.delete_target(&ws.id, "t1").await, "delete target"));
    let message = expect_conflict(
        store.delete_workspace(&ws.id).await,
        "delete with a notifier",
    );
    assert!(message.contains("notifier"), "{message}");
    assert!(ok(
        store.delete_notifier(&ws.id, "n1").await,
        "delete notifier"
    ));
    assert!(ok(store.delete_workspace(&ws.id).await, "delete_workspace"));
    assert_eq!(
        ok(store.workspace_backup_settings(&ws.id).await, "settings"),
        None,
        "the workspace's backup settings go with it"
    );
}

// ---- job clock -----------------------------------------------------------------------------

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

// ---- runs ----------------------------------------------------------------------------------

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

// ---- health --------------------------------------------------------------------------------

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
