//! Backup configuration: targets, notifiers, databases, workspace backup settings and secrets,
//! and what they keep from being deleted.

use std::sync::Arc;

use serde_json::json;
use statehouse_core::backups::{
    DatabaseHealth, DatabaseRecord, HealthStatus, NotifierRecord, TargetRecord,
    WorkspaceBackupSettings,
};
use statehouse_core::crypto::SealedBody;
use statehouse_core::store::Store;

use crate::backup_fixtures::{
    check, database, database_value, down_after, expect_bad_request, finished_run, notifier_value,
    one_database, target, target_value,
};
use crate::{at, expect_conflict, ok, sealed, workspace};

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
