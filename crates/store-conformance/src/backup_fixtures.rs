//! Fixtures shared by the backup cases: targets, databases and notifiers, queued and finished
//! runs, health checks.

use serde_json::json;
use statehouse_core::Error;
use statehouse_core::backups::{
    BackupKind, BackupRecord, BackupResult, BackupStatus, BackupTrigger, DatabaseHealth,
    DatabaseRecord, HealthCheck, HealthStatus, HealthTransition, NotifierRecord, TargetRecord,
};
use statehouse_core::store::Store;

use crate::{at, ok, sealed, workspace};

/// The backup crate's health rule: `n` failed checks in a row make a database down.
pub(crate) fn down_after(
    n: i64,
) -> impl Fn(&DatabaseHealth, &HealthCheck) -> (DatabaseHealth, Option<HealthTransition>) + Send + Sync
{
    move |health, check| statehouse_backup::uptime::health_after(health, check, n)
}

pub(crate) fn target_value(id: &str, workspace_id: &str, name: &str) -> TargetRecord {
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

pub(crate) fn database_value(
    id: &str,
    workspace_id: &str,
    name: &str,
    target_id: &str,
) -> DatabaseRecord {
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
pub(crate) fn run(
    id: &str,
    database: &DatabaseRecord,
    queued: i64,
    not_before: i64,
) -> BackupRecord {
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

pub(crate) fn succeeded(finished: i64) -> BackupResult {
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
pub(crate) async fn one_database(store: &dyn Store, name: &str) -> (String, DatabaseRecord) {
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
pub(crate) async fn finished_run(
    store: &dyn Store,
    id: &str,
    database: &DatabaseRecord,
    queued: i64,
) {
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

pub(crate) fn expect_bad_request<T: std::fmt::Debug>(
    result: statehouse_core::Result<T>,
    what: &str,
) {
    match result {
        Err(Error::BadRequest(message)) => assert!(!message.is_empty(), "{what}"),
        other => panic!("{what}: expected Error::BadRequest, got {other:?}"),
    }
}

pub(crate) fn check(database_id: &str, when: i64, good: bool) -> HealthCheck {
    HealthCheck {
        database_id: database_id.to_owned(),
        at: at(when),
        ok: good,
        latency_ms: good.then_some(7),
        error: (!good).then(|| format!("connection refused at {when}")),
    }
}

pub(crate) fn change(from: HealthStatus, to: HealthStatus) -> Option<HealthTransition> {
    Some(HealthTransition { from, to })
}
