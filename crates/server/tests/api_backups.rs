//! PostgreSQL backups through the REST API against a real PostgreSQL 15 (`STATEHOUSE_TEST_PG_URL`)
//! with the real pg_dump/pg_restore: register a target and a database, back up, download,
//! verify, restore, delete, retention, schedules on a fake clock (two schedulers never
//! double-run, catch-up), health checks, notifications to a local receiver, and who may do what.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_support;
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backup_support::{contents, pg_url, psql, setup, source_db, verify, walk, with_db};
use common::TestServer;
use serde_json::{Value, json};
use statehouse_backup::service::{BackupOptions, BackupService};
use statehouse_core::access::Role;

#[tokio::test]
async fn backup_download_verify_restore_and_delete() {
    let Some(t) = setup(json!({})).await else {
        return;
    };
    let run = t.backup_now().await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"], "manual");
    assert_eq!(run["db_name"], t.db);
    let object = run["object"].as_str().unwrap().to_owned();
    assert!(
        object.starts_with(&format!("{0}/{0}-", t.db)) && object.ends_with(".dump.zst.age"),
        "{object}"
    );
    assert_eq!(t.files(), [object.clone(), format!("{object}.json")]);
    // Without a verification server nothing would compare row counts: none are taken.
    assert_eq!(run["detail"]["row_counts"], Value::Null, "{run}");
    let id = run["id"].as_str().unwrap().to_owned();

    // The sidecar names the object, its checksum and how to restore it without statehouse.
    let sidecar: Value = serde_json::from_slice(
        &std::fs::read(t.dir.path().join(format!("{object}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(sidecar["sha256"], run["sha256"]);
    assert!(
        sidecar["restore_command"]
            .as_str()
            .unwrap()
            .contains("pg_restore")
    );

    // Listing and download: the exact stored bytes, with their checksum.
    let (status, page) =
        t.s.api(
            "GET",
            "/workspaces/default/backups?database=shop",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"][0]["id"], id.as_str());
    let response =
        t.s.client
            .get(t.s.api_url(&format!("/workspaces/default/backups/{id}/object")))
            .bearer_auth(&t.admin)
            .send()
            .await
            .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-statehouse-sha256"].to_str().unwrap(),
        run["sha256"].as_str().unwrap()
    );
    let bytes = response.bytes().await.unwrap();
    assert_eq!(
        bytes.as_ref(),
        std::fs::read(t.dir.path().join(&object))
            .unwrap()
            .as_slice()
    );

    // Verification without a verification server: decrypt, checksum, table of contents.
    let (status, verification) = verify(&t.s, &t.admin, &id).await;
    assert_eq!(status, 200, "{verification}");
    assert_eq!(verification["level"], "list");
    assert_eq!(verification["ok"], true, "{verification}");

    // Restore into a new database (created), then the contents match the source.
    let target_db = format!("restored_{}", uuid::Uuid::new_v4().simple());
    let (status, restored) =
        t.s.api(
            "POST",
            &format!("/workspaces/default/backups/{id}/restore"),
            Some(&t.admin),
            Some(json!({"database": target_db})),
        )
        .await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["created_database"], true);
    assert_eq!(
        contents(&with_db(&t.url, &target_db)),
        contents(&with_db(&t.url, &t.db))
    );

    // A flipped byte in the stored object: verification reports failure, restore refuses.
    let path = t.dir.path().join(&object);
    let mut stored = std::fs::read(&path).unwrap();
    let middle = stored.len() / 2;
    stored[middle] ^= 0x55;
    std::fs::write(&path, &stored).unwrap();
    let (status, verification) = verify(&t.s, &t.admin, &id).await;
    assert_eq!(status, 200, "{verification}");
    assert_eq!(verification["ok"], false, "{verification}");
    let (status, body) =
        t.s.api(
            "POST",
            &format!("/workspaces/default/backups/{id}/restore"),
            Some(&t.admin),
            Some(json!({"database": format!("{target_db}_again")})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, shown) =
        t.s.api(
            "GET",
            &format!("/workspaces/default/backups/{id}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(
        shown["verification_ok"], false,
        "the latest verification is shown"
    );

    // Delete: object and sidecar go, then the record.
    let (status, _) =
        t.s.api(
            "DELETE",
            &format!("/workspaces/default/backups/{id}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(t.files().is_empty(), "{:?}", t.files());
    let (status, _) =
        t.s.api(
            "GET",
            &format!("/workspaces/default/backups/{id}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // With no backups left the database can be unregistered.
    let (status, body) =
        t.s.api(
            "DELETE",
            "/workspaces/default/databases/shop",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
}

#[tokio::test]
async fn secrets_are_sealed_and_never_returned() {
    let Some(t) = setup(json!({})).await else {
        return;
    };
    let (_, db) =
        t.s.api(
            "GET",
            "/workspaces/default/databases/shop",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(db["has_password"], false);
    let (status, body) =
        t.s.api(
            "PATCH",
            "/workspaces/default/databases/shop",
            Some(&t.admin),
            Some(json!({"password": "s3cret-pass-123"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["has_password"], true);
    assert!(!body.to_string().contains("s3cret-pass-123"));
    let raw = std::fs::read(t.s.db_path()).unwrap();
    assert!(
        !raw.windows(15).any(|w| w == b"s3cret-pass-123"),
        "the password is not stored in clear"
    );
    let (_, encryption) =
        t.s.api(
            "GET",
            "/workspaces/default/backup-encryption",
            Some(&t.admin),
            None,
        )
        .await;
    assert!(
        encryption["managed_recipient"]
            .as_str()
            .unwrap()
            .starts_with("age1"),
        "a managed key was generated with the first database: {encryption}"
    );
    assert_eq!(encryption["server_can_decrypt"], true);
    assert!(!encryption.to_string().contains("AGE-SECRET-KEY"));
}

#[tokio::test]
async fn retention_keeps_the_newest_backups_and_deletes_their_files() {
    let Some(t) = setup(json!({"retention": {"keep_last": 2}})).await else {
        return;
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        let run = t.backup_now().await;
        assert_eq!(run["status"], "succeeded", "{run}");
        ids.push(run["id"].as_str().unwrap().to_owned());
        t.s.clock.advance_millis((3_600) * 1_000);
    }
    let (_, page) =
        t.s.api("GET", "/workspaces/default/backups", Some(&t.admin), None)
            .await;
    let kept: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(kept, [ids[2].as_str(), ids[1].as_str()]);
    assert_eq!(
        t.files().len(),
        4,
        "two objects with their sidecars: {:?}",
        t.files()
    );
    assert!(!t.files().iter().any(|f| f.contains(&ids[0])));

    // A preview of a stricter policy names what each rule keeps and deletes nothing.
    let (status, verdicts) =
        t.s.api(
            "POST",
            "/workspaces/default/databases/shop/retention-preview",
            Some(&t.admin),
            Some(json!({"retention": {"keep_last": 1}, "timezone": "Europe/Berlin"})),
        )
        .await;
    assert_eq!(status, 200, "{verdicts}");
    let summary: Vec<(&str, Value, bool)> = verdicts
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["backup_id"].as_str().unwrap(),
                v["kept_by"].clone(),
                v["deleted_because"].is_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (ids[2].as_str(), json!(["keep-last"]), false),
            (ids[1].as_str(), json!([]), true),
        ]
    );
    let (_, page) =
        t.s.api("GET", "/workspaces/default/backups", Some(&t.admin), None)
            .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    for bad in [
        json!({"retention": {"keep_last": 0}}),
        json!({"retention": {"keep_lost": 1}}),
        json!({"retention": {}, "timezone": "Mars/Olympus"}),
    ] {
        let (status, body) =
            t.s.api(
                "POST",
                "/workspaces/default/databases/shop/retention-preview",
                Some(&t.admin),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn connections_are_tested_before_saving_without_recording_anything() {
    let Some(t) = setup(json!({})).await else {
        return;
    };
    let (_, before) =
        t.s.api("GET", "/workspaces/default/databases", Some(&t.admin), None)
            .await;
    let server_url = with_db(&t.url, "postgres");
    let (status, report) =
        t.s.api(
            "POST",
            "/workspaces/default/database-connection-test",
            Some(&t.admin),
            Some(json!({"url": server_url, "mode": {"kind": "server", "include": [t.db]}})),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["reachable"], true, "{report}");
    assert_eq!(report["databases"], json!([t.db]), "{report}");
    // The test superuser can write, and says so.
    assert_eq!(report["can_write"], true, "{report}");
    assert!(report["server_version"].is_string(), "{report}");

    // Nothing listens on port 9: not reachable is an answer, not an error.
    let (status, report) =
        t.s.api(
            "POST",
            "/workspaces/default/database-connection-test",
            Some(&t.admin),
            Some(json!({"url": "postgres://u@127.0.0.1:9/d"})),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["reachable"], false, "{report}");
    assert!(report["error"].is_string(), "{report}");

    for bad in [
        json!({}),
        json!({"url": "mysql://h/d"}),
        json!({"url": "postgres://h/d", "mode": {"kind": "some"}}),
    ] {
        let (status, body) =
            t.s.api(
                "POST",
                "/workspaces/default/database-connection-test",
                Some(&t.admin),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, after) =
        t.s.api("GET", "/workspaces/default/databases", Some(&t.admin), None)
            .await;
    assert_eq!(before, after, "a test records nothing");
    assert_eq!(
        after["items"][0]["last_check_at"],
        Value::Null,
        "no health check recorded"
    );
}

#[tokio::test]
async fn two_schedulers_run_each_due_backup_once_and_catch_up_after_downtime() {
    let Some(t) = setup(json!({"schedule": {"every": "hourly", "minute": 0}})).await else {
        return;
    };
    let (_, db) =
        t.s.api(
            "GET",
            "/workspaces/default/databases/shop",
            Some(&t.admin),
            None,
        )
        .await;
    let next =
        statehouse_core::clock::Timestamp::parse_rfc3339(db["next_backup_at"].as_str().unwrap())
            .unwrap();
    // A second replica on the same store.
    let replica = BackupService::new(
        t.s.services.clone(),
        BackupOptions {
            outbound: common::local_outbound(),
            ..BackupOptions::default()
        },
    )
    .unwrap();
    let one = t.s.backups.clone();

    // Not due yet: nothing happens.
    let (a, b) = tokio::join!(one.tick(), replica.tick());
    assert_eq!(a.unwrap().queued + b.unwrap().queued, 0);

    t.s.clock.set(next.plus_millis(1_000));
    let (a, b) = tokio::join!(one.tick(), replica.tick());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.queued + b.queued, 1, "exactly one replica queues the run");
    // Whoever did not start it in its own pass claims it in the next one.
    let (c, d) = tokio::join!(one.tick(), replica.tick());
    assert_eq!(
        a.started + b.started + c.unwrap().started + d.unwrap().started,
        1,
        "the run is claimed once"
    );
    one.wait_idle().await;
    replica.wait_idle().await;
    let (_, page) =
        t.s.api("GET", "/workspaces/default/backups", Some(&t.admin), None)
            .await;
    let runs = page["items"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{page}");
    assert_eq!(runs[0]["status"], "succeeded", "{page}");
    assert_eq!(runs[0]["trigger"], "schedule");

    // Five hours without any server: one catch-up run, not five.
    t.s.clock.advance_millis((5 * 3_600) * 1_000);
    let a = one.tick().await.unwrap();
    assert_eq!((a.queued, a.caught_up), (1, 1));
    one.tick().await.unwrap();
    one.wait_idle().await;
    let (_, page) =
        t.s.api("GET", "/workspaces/default/backups", Some(&t.admin), None)
            .await;
    let runs = page["items"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{page}");
    assert_eq!(runs[0]["trigger"], "catch_up");
    assert_eq!(runs[0]["status"], "succeeded", "{page}");
    let (_, db) =
        t.s.api(
            "GET",
            "/workspaces/default/databases/shop",
            Some(&t.admin),
            None,
        )
        .await;
    let next_after =
        statehouse_core::clock::Timestamp::parse_rfc3339(db["next_backup_at"].as_str().unwrap())
            .unwrap();
    assert!(
        next_after > statehouse_core::clock::Clock::now(t.s.clock.as_ref()),
        "the schedule moved past now: {db}"
    );
}

/// A local receiver of generic-webhook notifications: the JSON bodies it got.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |body: axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body.0);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

async fn wait_for(got: &Arc<Mutex<Vec<Value>>>, event: &str) -> Value {
    for _ in 0..100 {
        if let Some(found) = got
            .lock()
            .unwrap()
            .iter()
            .find(|v| v["event"] == event)
            .cloned()
        {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {event} notification arrived: {:?}", got.lock().unwrap());
}

#[tokio::test]
async fn failures_and_outages_are_notified_and_failed_backups_retried() {
    let Some(t) = setup(
        json!({"health": {"interval_secs": 10, "timeout_secs": 2, "down_after": 2}, "retries": 1}),
    )
    .await
    else {
        return;
    };
    let (hook, got) = receiver().await;
    let (status, body) =
        t.s.api(
            "POST",
            "/workspaces/default/notifiers",
            Some(&t.admin),
            Some(json!({
                "name": "ops",
                "settings": {"kind": "webhook", "url": hook},
                "events": ["backup.*", "database.*"],
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        !body.to_string().contains(&hook),
        "the URL is a secret: {body}"
    );
    let (status, test) =
        t.s.api(
            "POST",
            "/workspaces/default/notifiers/ops/test",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!((status, test["ok"].clone()), (200, json!(true)), "{test}");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(t.s.backups.clone().run_notifications(stopped));

    // The database becomes unreachable (a closed port).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (status, body) =
        t.s.api(
            "PATCH",
            "/workspaces/default/databases/shop",
            Some(&t.admin),
            Some(json!({"url": format!("postgres://postgres@127.0.0.1:{closed}/{}", t.db)})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let run = t.backup_now().await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"].as_str().unwrap().contains("127.0.0.1"),
        "{run}"
    );
    let failed = wait_for(&got, "backup.failed").await;
    assert!(
        failed["title"].as_str().unwrap().contains("shop"),
        "{failed}"
    );
    let (_, page) =
        t.s.api(
            "GET",
            "/workspaces/default/backups?status=queued",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(page["items"][0]["trigger"], "retry", "{page}");
    assert_eq!(page["items"][0]["attempt"], 2);

    // Health: the first failed check is not yet "down"; the second is.
    t.s.backups.tick().await.unwrap();
    t.s.backups.wait_idle().await;
    let (_, db) =
        t.s.api(
            "GET",
            "/workspaces/default/databases/shop",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(db["consecutive_failures"], 1, "{db}");
    assert_ne!(db["health"], "down");
    t.s.clock.advance_millis((10) * 1_000);
    t.s.backups.tick().await.unwrap();
    t.s.backups.wait_idle().await;
    let down = wait_for(&got, "database.down").await;
    assert!(down["title"].as_str().unwrap().contains("shop"), "{down}");
    let (_, health) =
        t.s.api(
            "GET",
            "/workspaces/default/databases/shop/health",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(
        health["checks"]["items"].as_array().unwrap().len(),
        2,
        "{health}"
    );
    assert_eq!(health["uptime"]["last_24h"], 0.0, "{health}");

    // Back up: reachable again → database.up.
    let (status, _) =
        t.s.api(
            "PATCH",
            "/workspaces/default/databases/shop",
            Some(&t.admin),
            Some(json!({"url": with_db(&t.url, &t.db)})),
        )
        .await;
    assert_eq!(status, 200);
    t.s.clock.advance_millis((10) * 1_000);
    t.s.backups.tick().await.unwrap();
    t.s.backups.wait_idle().await;
    wait_for(&got, "database.up").await;
    let _ = stop.send(true);
}

#[tokio::test]
async fn bad_input_is_refused_with_reasons_and_changes_nothing() {
    let Some(t) = setup(json!({})).await else {
        return;
    };
    let cases = [
        (
            "/workspaces/default/databases",
            json!({"name": "x", "target": "local", "url": "mysql://h/db"}),
            "postgres://",
        ),
        (
            "/workspaces/default/databases",
            json!({"name": "x", "target": "nowhere", "url": "postgres://h/db"}),
            "nowhere",
        ),
        (
            "/workspaces/default/databases",
            json!({"name": "y", "target": "local", "url": "postgres://h/db", "schedule": {"every": "daily", "at": "25:00"}}),
            "HH:MM",
        ),
        (
            "/workspaces/default/databases",
            json!({"name": "shop", "target": "local", "url": "postgres://h/db"}),
            "shop",
        ),
        (
            "/workspaces/default/targets",
            json!({"name": "t2", "settings": {"kind": "s3"}}),
            "bucket",
        ),
        (
            "/workspaces/default/notifiers",
            json!({"name": "n", "settings": {"kind": "slack"}, "events": ["backup.failed"]}),
            "webhook_url",
        ),
        (
            "/workspaces/default/notifiers",
            json!({"name": "n", "settings": {"kind": "webhook", "url": "http://127.0.0.1:9/x"}, "events": ["backups.*"]}),
            "unknown event",
        ),
    ];
    let (_, before) =
        t.s.api("GET", "/workspaces/default/databases", Some(&t.admin), None)
            .await;
    for (path, body, words) in cases {
        let (status, answer) =
            t.s.api("POST", path, Some(&t.admin), Some(body.clone()))
                .await;
        assert!(
            (400..500).contains(&status),
            "{path} {body}: {status} {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{path} {body}: {message}");
    }
    let (_, after) =
        t.s.api("GET", "/workspaces/default/databases", Some(&t.admin), None)
            .await;
    assert_eq!(before, after);
    let (_, targets) =
        t.s.api("GET", "/workspaces/default/targets", Some(&t.admin), None)
            .await;
    assert_eq!(targets["items"].as_array().unwrap().len(), 1);
    // The target in use cannot be deleted.
    let (status, body) =
        t.s.api(
            "DELETE",
            "/workspaces/default/targets/local",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
}

/// Every backup operation refuses callers below its role (401 without a token, 403 with a
/// weaker one or another workspace's) and changes nothing; the functional tests above show
/// the allowed callers succeed.
#[tokio::test]
async fn backup_operations_refuse_callers_below_their_role() {
    let s = TestServer::start().await;
    let viewer = s.token(Some("default"), Role::Viewer).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let outputs = s.token(Some("default"), Role::Outputs).await;
    let other = s.token(Some("other"), Role::Admin).await;
    // (method, path, weakest role allowed)
    let ops: &[(&str, &str, Role)] = &[
        ("GET", "/workspaces/default/databases", Role::Viewer),
        ("POST", "/workspaces/default/databases", Role::Admin),
        ("GET", "/workspaces/default/databases/x", Role::Viewer),
        (
            "POST",
            "/workspaces/default/database-connection-test",
            Role::Admin,
        ),
        (
            "POST",
            "/workspaces/default/databases/x/retention-preview",
            Role::Viewer,
        ),
        ("PATCH", "/workspaces/default/databases/x", Role::Admin),
        ("DELETE", "/workspaces/default/databases/x", Role::Admin),
        (
            "POST",
            "/workspaces/default/databases/x/check",
            Role::Viewer,
        ),
        (
            "GET",
            "/workspaces/default/databases/x/health",
            Role::Viewer,
        ),
        (
            "POST",
            "/workspaces/default/databases/x/readonly-role",
            Role::Admin,
        ),
        (
            "POST",
            "/workspaces/default/databases/x/backups",
            Role::Editor,
        ),
        ("GET", "/workspaces/default/backups", Role::Viewer),
        ("GET", "/workspaces/default/backups/x", Role::Viewer),
        ("DELETE", "/workspaces/default/backups/x", Role::Admin),
        ("GET", "/workspaces/default/backups/x/object", Role::Admin),
        ("POST", "/workspaces/default/backups/x/restore", Role::Admin),
        ("POST", "/workspaces/default/backups/x/verify", Role::Editor),
        (
            "GET",
            "/workspaces/default/backups/x/verifications",
            Role::Viewer,
        ),
        ("GET", "/workspaces/default/targets", Role::Viewer),
        ("POST", "/workspaces/default/targets", Role::Admin),
        ("GET", "/workspaces/default/targets/x", Role::Viewer),
        ("PATCH", "/workspaces/default/targets/x", Role::Admin),
        ("DELETE", "/workspaces/default/targets/x", Role::Admin),
        ("POST", "/workspaces/default/targets/x/test", Role::Admin),
        ("GET", "/workspaces/default/notifiers", Role::Viewer),
        ("POST", "/workspaces/default/notifiers", Role::Admin),
        ("GET", "/workspaces/default/notifiers/x", Role::Viewer),
        ("PATCH", "/workspaces/default/notifiers/x", Role::Admin),
        ("DELETE", "/workspaces/default/notifiers/x", Role::Admin),
        ("POST", "/workspaces/default/notifiers/x/test", Role::Admin),
        ("GET", "/workspaces/default/backup-encryption", Role::Viewer),
        (
            "PATCH",
            "/workspaces/default/backup-encryption",
            Role::Admin,
        ),
        (
            "POST",
            "/workspaces/default/backup-encryption/export",
            Role::Admin,
        ),
    ];
    let bodies = |method: &str, path: &str| -> Option<Value> {
        match (method, path.rsplit('/').next().unwrap()) {
            ("POST", "databases") => {
                Some(json!({"name": "x", "target": "t", "url": "postgres://h/d"}))
            }
            ("POST", "targets") => {
                Some(json!({"name": "x", "settings": {"kind": "local", "path": "/tmp/x"}}))
            }
            ("POST", "notifiers") => Some(
                json!({"name": "x", "settings": {"kind": "webhook", "url": "http://127.0.0.1:9/"}}),
            ),
            ("POST", "readonly-role") => Some(json!({"admin_url": "postgres://h/d", "role": "r"})),
            ("POST", "database-connection-test") => Some(json!({"url": "postgres://h/d"})),
            ("POST", "retention-preview") => Some(json!({"retention": {"keep_last": 1}})),
            ("POST", "restore") | ("PATCH", _) => Some(json!({})),
            _ => None,
        }
    };
    for (method, path, needs) in ops {
        let body = bodies(method, path);
        let callers = [
            (None, 401),
            // Without a role in the workspace it looks missing.
            (Some(&other), 404),
            (Some(&outputs), 403),
            (Some(&viewer), 403),
            (Some(&editor), 403),
        ];
        for (token, want) in callers {
            let refused = match token {
                None => true,
                Some(t) if *t == other || *t == outputs => true,
                Some(t) if *t == viewer => *needs > Role::Viewer,
                Some(_) => *needs > Role::Editor,
            };
            if !refused {
                continue;
            }
            let (status, answer) = s
                .api(method, path, token.map(String::as_str), body.clone())
                .await;
            assert_eq!(status, want, "{method} {path} (needs {needs}): {answer}");
        }
    }
}

#[tokio::test]
async fn the_self_backup_runs_on_its_schedule_once() {
    use statehouse_backup::schedule::{Schedule, ScheduleSpec};
    use statehouse_backup::self_backup::{SelfBackupPolicy, SelfSource};
    use statehouse_backup::service::SelfBackupSetup;
    use statehouse_backup::targets::{LocalSpec, TargetSpec};
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let setup = SelfBackupSetup {
        source: SelfSource::Sqlite { path: s.db_path() },
        target: TargetSpec::Local(LocalSpec {
            path: dir.path().display().to_string(),
        }),
        policy: SelfBackupPolicy {
            schedule: ScheduleSpec {
                schedule: Schedule::Daily { at: "03:15".into() },
                timezone: "UTC".into(),
            },
            keep_last: 2,
        },
    };
    let options = || BackupOptions {
        self_backup: Some(setup.clone()),
        outbound: common::local_outbound(),
        ..BackupOptions::default()
    };
    let one = BackupService::new(s.services.clone(), options()).unwrap();
    let two = BackupService::new(s.services.clone(), options()).unwrap();
    // The first pass plans the next run; nothing runs before it is due.
    assert_eq!(one.tick().await.unwrap().self_backups, 0);
    assert_eq!(two.tick().await.unwrap().self_backups, 0);
    let files = |dir: &std::path::Path| {
        walk(dir)
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".sqlite.zst.age"))
            .count()
    };
    for day in 1..=3 {
        s.clock.advance_millis(86_400_000);
        let (a, b) = tokio::join!(one.tick(), two.tick());
        assert_eq!(
            a.unwrap().self_backups + b.unwrap().self_backups,
            1,
            "day {day}: one replica backs up"
        );
        one.wait_idle().await;
        two.wait_idle().await;
        // Distinct names even within one second of real time.
        assert_eq!(
            files(dir.path()),
            day.min(2),
            "keep_last 2 prunes the oldest"
        );
    }
}

#[tokio::test]
async fn backups_only_their_owners_can_read_are_verified_by_checksum() {
    let Some(t) = setup(json!({})).await else {
        return;
    };
    let owner = age::x25519::Identity::generate();
    let (status, body) =
        t.s.api(
            "PATCH",
            "/workspaces/default/backup-encryption",
            Some(&t.admin),
            Some(json!({"drop_managed_key": true, "recipients": [owner.to_public().to_string()]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["server_can_decrypt"], false);
    let run = t.backup_now().await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let id = run["id"].as_str().unwrap();
    let (status, verification) = verify(&t.s, &t.admin, id).await;
    assert_eq!(status, 200, "{verification}");
    assert_eq!(verification["level"], "checksum", "{verification}");
    assert_eq!(verification["ok"], true, "{verification}");
    // A restore needs the owner's identity.
    let (status, body) =
        t.s.api(
            "POST",
            &format!("/workspaces/default/backups/{id}/restore"),
            Some(&t.admin),
            Some(json!({"database": format!("owned_{}", uuid::Uuid::new_v4().simple())})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("identity"), "{body}");
}

/// A whole-server run's backups: its globals, and its databases' in order.
fn split_globals(runs: &Value) -> (Value, Vec<Value>) {
    let runs = runs.as_array().unwrap();
    let globals: Vec<&Value> = runs.iter().filter(|r| r["kind"] == "globals").collect();
    assert_eq!(globals.len(), 1, "one globals backup per run: {runs:?}");
    let databases = runs
        .iter()
        .filter(|r| r["kind"] == "database")
        .cloned()
        .collect();
    (globals[0].clone(), databases)
}

#[tokio::test]
async fn whole_server_mode_backs_up_each_database_and_full_verification_counts_rows() {
    let Some(url) = pg_url() else {
        return;
    };
    let s = TestServer::start().await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let dir = tempfile::tempdir().unwrap();
    let (status, body) = s
        .api(
            "POST",
            "/workspaces/default/targets",
            Some(&admin),
            Some(json!({"name": "local", "settings": {"kind": "local", "path": dir.path()}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Two databases with a unique prefix: the include pattern picks exactly them.
    let prefix = format!("ws{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let a = source_db(&url, &format!("{prefix}_a"));
    let b = source_db(&url, &format!("{prefix}_b"));
    let (status, body) = s
        .api(
            "POST",
            "/workspaces/default/databases",
            Some(&admin),
            Some(json!({
                "name": "cluster", "target": "local", "url": url,
                "mode": {"kind": "server", "include": [format!("{prefix}_*")]},
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // The verification server's user: its own role, so this test sees only its scratch databases.
    let verifier = format!(
        "verifier_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    psql(&url, &format!("CREATE ROLE {verifier} LOGIN CREATEDB"));
    let verifier_url = {
        let mut u = url::Url::parse(&url).unwrap();
        u.set_username(&verifier).unwrap();
        u.to_string()
    };
    let scratch_databases = || {
        psql(
            &url,
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname LIKE 'statehouse_verify_%'
                 AND datdba = (SELECT oid FROM pg_roles WHERE rolname = '{verifier}')"
            ),
        )
    };
    // A backup before any verification server is set takes no row counts.
    let (status, early) = s
        .api(
            "POST",
            "/workspaces/default/databases/cluster/backups",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{early}");
    let (early_globals, early) = split_globals(&early);
    assert_eq!(early[0]["detail"]["row_counts"], Value::Null, "{early:?}");
    assert_eq!(early_globals["status"], "succeeded", "{early_globals}");
    // A verification server: backups from now on count their rows for full verification.
    let (status, body) = s
        .api(
            "PATCH",
            "/workspaces/default/backup-encryption",
            Some(&admin),
            Some(json!({"verification_server_url": verifier_url})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, runs) = s
        .api(
            "POST",
            "/workspaces/default/databases/cluster/backups",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{runs}");
    // The server's globals beside the databases, in the same whole-server run.
    let (globals, runs) = split_globals(&runs);
    assert_eq!(globals["status"], "succeeded", "{globals}");
    assert!(globals["db_name"].is_null(), "{globals}");
    assert!(
        globals["object"]
            .as_str()
            .unwrap()
            .starts_with("cluster-globals/cluster-globals-"),
        "{globals}"
    );
    assert_eq!(globals["detail"]["role_passwords"], true, "{globals}");
    for r in &runs {
        assert_eq!(r["server_run"], globals["server_run"], "{r}");
    }
    assert_ne!(
        early_globals["server_run"], globals["server_run"],
        "each run is a whole-server run of its own"
    );
    let (status, verification) = verify(&s, &admin, globals["id"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{verification}");
    assert_eq!(verification["ok"], true, "{verification}");
    assert!(
        verification["detail"]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("pg_dumpall globals"),
        "{verification}"
    );
    let mut names: Vec<&str> = runs
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "succeeded", "{r}");
            r["db_name"].as_str().unwrap()
        })
        .collect();
    names.sort();
    assert_eq!(names, [a.as_str(), b.as_str()]);
    let counts = &runs[0]["detail"]["row_counts"];
    assert_eq!(counts["public.customers"], 2000, "{runs:?}");
    assert_eq!(counts["public.orders"], 5000, "{runs:?}");

    // The early backup has nothing to compare a scratch restore with: checked the cheap way,
    // and the verification says why.
    let early_id = early[0]["id"].as_str().unwrap();
    let (status, verification) = verify(&s, &admin, early_id).await;
    assert_eq!(status, 200, "{verification}");
    assert_eq!(verification["level"], "list", "{verification}");
    assert_eq!(verification["ok"], true, "{verification}");
    assert!(
        verification["detail"]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("no row counts"),
        "{verification}"
    );

    // Full verification on the verification server: scratch restore, row counts compared.
    let id = runs[0]["id"].as_str().unwrap();
    let (status, verification) = verify(&s, &admin, id).await;
    assert_eq!(status, 200, "{verification}");
    assert_eq!(verification["level"], "restore", "{verification}");
    assert_eq!(verification["ok"], true, "{verification}");
    assert_eq!(
        verification["detail"]["tables_checked"], 2,
        "{verification}"
    );
    assert_eq!(scratch_databases(), "0", "the scratch database is dropped");

    // A caller that goes away mid-verification stops waiting, not the verification: it still
    // ends, drops its scratch database and is recorded.
    let verifications = || async {
        let (status, list) = s
            .api(
                "GET",
                &format!("/workspaces/default/backups/{id}/verifications"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, 200, "{list}");
        list["items"].as_array().unwrap().len()
    };
    let before = verifications().await;
    let request = verify(&s, &admin, id);
    let scratch_exists = async {
        while scratch_databases() == "0" {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        answer = request => panic!("the verification ended before the caller could leave: {answer:?}"),
        () = scratch_exists => {}
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while verifications().await == before || scratch_databases() != "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned verification was not recorded, or left its scratch database"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A run the workers take from the queue discovers the databases and adds the globals to
    // its whole-server run as well.
    let (status, queued) = s
        .api(
            "POST",
            "/workspaces/default/databases/cluster/backups?wait=false",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    let group = queued["server_run"].as_str().unwrap().to_owned();
    assert_eq!(group, queued["id"].as_str().unwrap(), "{queued}");
    for _ in 0..3 {
        s.backups.tick().await.unwrap();
        s.backups.wait_idle().await;
    }
    let (status, page) = s
        .api(
            "GET",
            &format!("/workspaces/default/backups?server_run={group}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let (globals, databases) = split_globals(&page["items"]);
    assert_eq!(globals["status"], "succeeded", "{page}");
    assert_eq!(databases.len(), 2, "{page}");
    assert!(
        databases.iter().all(|d| d["status"] == "succeeded"),
        "{page}"
    );
    psql(&url, &format!("DROP ROLE {verifier}"));
}
