//! The audit log, the event stream and webhooks over real HTTP: what operations record, who
//! may read it, export and verification, events as subscribers and pollers see them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, lock_info, state_json};
use serde_json::Value;
use statehouse_core::access::{Principal, Role};
use statehouse_core::audit::{AuditQuery, AuditRecord};

/// Every audit entry, oldest first, after the journal has been flushed.
async fn entries(s: &TestServer) -> Vec<statehouse_core::audit::AuditEntry> {
    s.services.flush_journal().await;
    let mut all: Vec<statehouse_core::audit::AuditEntry> = Vec::new();
    loop {
        let after = all.last().map_or(0, |e| e.seq);
        let page = s
            .services
            .audit_entries(
                &Principal::local_operator(),
                AuditQuery::all_after(after, 1_000),
            )
            .await
            .unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

fn find<'a>(
    all: &'a [statehouse_core::audit::AuditEntry],
    action: &str,
    outcome: &str,
) -> Vec<&'a statehouse_core::audit::AuditEntry> {
    all.iter()
        .filter(|e| e.record.action == action && e.record.outcome.as_str() == outcome)
        .collect()
}

#[tokio::test]
async fn backend_operations_are_audited_with_actor_token_and_address() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let viewer = s.token(Some("default"), Role::Viewer).await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let body = state_json(1, "lin", "a");
    assert_eq!(
        s.send("POST", "default/app", Some(&editor), Some(&body))
            .await
            .0,
        200
    );
    assert_eq!(
        s.send("POST", "default/app", Some(&editor), Some(&body))
            .await
            .0,
        200
    );
    assert_eq!(
        s.send("GET", "default/app", Some(&viewer), None).await.0,
        200
    );
    assert_eq!(
        s.send("POST", "default/app", Some(&viewer), Some(&body))
            .await
            .0,
        403
    );
    assert_eq!(
        s.send("GET", "default/app", Some("sht_not-a-token"), None)
            .await
            .0,
        401
    );
    let info = lock_info("L1", "me");
    assert_eq!(
        s.send("LOCK", "default/app", Some(&editor), Some(&info))
            .await
            .0,
        200
    );
    let other = lock_info("L2", "them");
    assert_eq!(
        s.send("LOCK", "default/app", Some(&admin), Some(&other))
            .await
            .0,
        423
    );
    assert_eq!(
        s.send("UNLOCK", "default/app", Some(&admin), Some(b""))
            .await
            .0,
        200
    );
    assert_eq!(
        s.send("DELETE", "default/app", Some(&admin), None).await.0,
        200
    );

    let all = entries(&s).await;
    let writes = find(&all, "state.write", "success");
    assert_eq!(writes.len(), 2, "{all:#?}");
    let w = &writes[0].record;
    assert_eq!(w.actor, "Some(\"default\")-editor");
    assert_eq!(w.token_name.as_deref(), Some("Some(\"default\")-editor"));
    assert!(w.token_id.is_some());
    assert_eq!(w.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        (w.workspace.as_deref(), w.target.as_deref()),
        (Some("default"), Some("app"))
    );
    let detail: Value = serde_json::from_str(w.detail.as_deref().unwrap()).unwrap();
    assert_eq!(
        (detail["version"].as_i64(), detail["serial"].as_i64()),
        (Some(1), Some(1))
    );
    let again: Value = serde_json::from_str(writes[1].record.detail.as_deref().unwrap()).unwrap();
    assert_eq!(
        again["unchanged"], true,
        "identical snapshots are audited as unchanged"
    );
    assert_eq!(find(&all, "state.read", "success").len(), 1);
    let denied = find(&all, "state.write", "denied");
    assert_eq!(denied.len(), 1);
    assert!(
        denied[0]
            .record
            .reason
            .as_deref()
            .unwrap()
            .contains("needs editor")
    );
    let unknown = find(&all, "token.authenticate", "denied");
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].record.actor, "unknown");
    assert_eq!(unknown[0].record.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(find(&all, "lock.acquire", "success").len(), 1);
    let conflict = find(&all, "lock.acquire", "failed");
    assert_eq!(conflict.len(), 1);
    assert!(
        conflict[0].record.reason.as_deref().unwrap().contains("L1"),
        "names the holder"
    );
    let forced = find(&all, "lock.force_release", "success");
    assert_eq!(forced.len(), 1);
    assert!(forced[0].record.detail.as_deref().unwrap().contains("L1"));
    assert_eq!(find(&all, "state.delete", "success").len(), 1);
    let report = s
        .services
        .verify_audit(&Principal::local_operator())
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
}

/// A diff reads two versions under one authorization and is recorded once, as `state.diff`
/// with the versions compared — not as two reads.
#[tokio::test]
async fn a_diff_is_one_audit_entry() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let viewer = s.token(Some("default"), Role::Viewer).await;
    for serial in 1..=2 {
        let body = state_json(serial, "lin", &format!("r{serial}"));
        assert_eq!(
            s.send("POST", "default/app", Some(&editor), Some(&body))
                .await
                .0,
            200
        );
    }
    let before = entries(&s).await.len();
    let (status, diff) = s
        .api(
            "GET",
            "/workspaces/default/states/app/diff",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, 200, "{diff}");
    assert_eq!(
        (diff["from"].as_i64(), diff["to"].as_i64()),
        (Some(1), Some(2))
    );
    let (status, _) = s
        .api(
            "GET",
            "/workspaces/default/states/app/diff?from=1&to=9",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let all = entries(&s).await;
    let new: Vec<_> = all[before..].iter().map(|e| &e.record).collect();
    assert_eq!(
        new.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["state.diff", "state.diff"],
        "{new:#?}"
    );
    assert_eq!(new[0].outcome.as_str(), "success");
    let detail: Value = serde_json::from_str(new[0].detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail, serde_json::json!({"from": 1, "to": 2}));
    assert_eq!(new[1].outcome.as_str(), "failed");
}

#[tokio::test]
async fn audit_api_scopes_filters_exports_and_verifies() {
    let s = TestServer::start().await;
    let root = s.token(None, Role::Admin).await;
    let ws_admin = s.token(Some("other"), Role::Admin).await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let other_editor = s.token(Some("other"), Role::Editor).await;
    for i in 1..=3 {
        let body = state_json(i, "lin", &format!("v{i}"));
        assert_eq!(
            s.send("POST", "default/a", Some(&editor), Some(&body))
                .await
                .0,
            200
        );
    }
    let body = state_json(1, "lin", "o");
    assert_eq!(
        s.send("POST", "other/b", Some(&other_editor), Some(&body))
            .await
            .0,
        200
    );
    s.services.flush_journal().await;

    let (status, page) = s
        .api(
            "GET",
            "/audit?action=state.write&limit=2",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["target"], "b", "newest first");
    assert!(items[0]["seq"].as_i64() > items[1]["seq"].as_i64());
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = s
        .api(
            "GET",
            &format!("/audit?action=state.write&limit=2&cursor={cursor}"),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(next["items"].as_array().unwrap().len(), 2);
    let (_, oldest) = s
        .api("GET", "/audit?order=oldest&limit=1", Some(&root), None)
        .await;
    assert_eq!(oldest["items"][0]["seq"], 1);

    // A workspace admin sees only its workspace, whatever it asks for.
    let (status, own) = s.api("GET", "/audit", Some(&ws_admin), None).await;
    assert_eq!(status, 200);
    let own = own["items"].as_array().unwrap();
    assert!(!own.is_empty());
    assert!(own.iter().all(|e| e["workspace"] == "other"), "{own:?}");
    let (status, body) = s
        .api("GET", "/audit?workspace=default", Some(&ws_admin), None)
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(s.api("GET", "/audit", Some(&editor), None).await.0, 403);
    assert_eq!(
        s.api("GET", "/audit?since=yesterday", Some(&root), None)
            .await
            .0,
        400
    );
    assert_eq!(
        s.api("GET", "/audit?outcome=meh", Some(&root), None)
            .await
            .0,
        400
    );

    let resp = s
        .client
        .get(format!("{}/api/v1/audit/export?workspace=default", s.url))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 3);
    assert!(lines.iter().all(|e| e["workspace"] == "default"));
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()),
        "oldest first"
    );

    let (status, report) = s.api("POST", "/audit/verify", Some(&root), None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["intact"], true);
    assert!(report["checked"].as_u64().unwrap() >= 4);
    assert_eq!(
        s.api("POST", "/audit/verify", Some(&ws_admin), None)
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn queued_entries_are_all_stored_by_a_flush() {
    let s = TestServer::start().await;
    let before = entries(&s).await.len();
    for i in 0..2_000 {
        s.services
            .record_later(
                AuditRecord::new(s.services.now(), "bulk", "test.bulk").target(format!("{i}")),
            )
            .await;
    }
    s.services.flush_journal().await;
    let after = entries(&s).await;
    assert_eq!(after.len() - before, 2_000);
    let targets: Vec<_> = after
        .iter()
        .filter(|e| e.record.actor == "bulk")
        .map(|e| e.record.target.clone().unwrap())
        .collect();
    assert_eq!(
        targets,
        (0..2_000).map(|i| i.to_string()).collect::<Vec<_>>(),
        "in order"
    );
}

#[tokio::test]
async fn changes_emit_events_to_subscribers_and_pollers() {
    let s = TestServer::start().await;
    let mut events = s.services.subscribe_events();
    let editor = s.token(Some("default"), Role::Editor).await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let other = s.token(Some("other"), Role::Admin).await;
    let body = state_json(1, "lin", "a");
    s.send("POST", "default/app", Some(&editor), Some(&body))
        .await;
    s.send("POST", "default/app", Some(&editor), Some(&body))
        .await; // identical: no event
    s.send(
        "LOCK",
        "default/app",
        Some(&editor),
        Some(&lock_info("L1", "me")),
    )
    .await;
    s.send(
        "LOCK",
        "default/app",
        Some(&editor),
        Some(&lock_info("L1", "me")),
    )
    .await; // retry: no event
    s.send(
        "UNLOCK",
        "default/app",
        Some(&editor),
        Some(&lock_info("L1", "me")),
    )
    .await;
    s.send(
        "LOCK",
        "default/app",
        Some(&editor),
        Some(&lock_info("L2", "me")),
    )
    .await;
    s.send("UNLOCK", "default/app", Some(&admin), Some(b""))
        .await;
    assert_eq!(
        s.send("DELETE", "default/app", Some(&admin), None).await.0,
        200
    );
    let (_, deleted) = s
        .api(
            "GET",
            "/workspaces/default/deleted-states",
            Some(&admin),
            None,
        )
        .await;
    let id = deleted["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = s
        .api(
            "POST",
            &format!("/workspaces/default/deleted-states/{id}/restore"),
            Some(&admin),
            None,
        )
        .await;
    assert!(status < 300, "{body}");
    s.send("POST", "other/x", Some(&other), Some(&body_of(1)))
        .await;

    let expected = [
        "state.written",
        "lock.acquired",
        "lock.released",
        "lock.acquired",
        "lock.force_unlocked",
        "state.deleted",
        "state.restored",
        "state.written",
    ];
    let mut kinds = Vec::new();
    for _ in 0..expected.len() {
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
            .await
            .expect("event broadcast")
            .unwrap();
        kinds.push(e.kind.clone());
    }
    assert_eq!(kinds, expected);

    let (status, page) = s.api("GET", "/events?after=0", Some(&admin), None).await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 7, "only the caller's workspace: {items:?}");
    assert_eq!(items[0]["kind"], "state.written");
    assert_eq!(items[0]["subject"], "app");
    assert_eq!(items[0]["payload"]["serial"], 1);
    assert_eq!(items[4]["payload"]["lock_id"], "L2");
    let last = page["next_after"].as_i64().unwrap();
    let (_, rest) = s
        .api("GET", &format!("/events?after={last}"), Some(&admin), None)
        .await;
    assert!(rest["items"].as_array().unwrap().is_empty());
    assert_eq!(rest["next_after"], last);
    let root = s.token(None, Role::Admin).await;
    let (_, all) = s.api("GET", "/events?limit=1000", Some(&root), None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 8);
}

fn body_of(serial: i64) -> Vec<u8> {
    state_json(serial, "lin-o", "o")
}

#[tokio::test]
async fn logins_and_account_changes_are_audited() {
    let s = TestServer::start().await;
    let operator = Principal::local_operator();
    s.services
        .create_user(&operator, "alice", Some("correct horse battery"), false)
        .await
        .unwrap();
    s.services
        .set_member(&operator, "default", "alice", Role::Editor)
        .await
        .unwrap();
    let (status, _) = s
        .api(
            "POST",
            "/auth/login",
            None,
            Some(serde_json::json!({"name": "alice", "password": "wrong password here"})),
        )
        .await;
    assert_eq!(status, 401);
    let (status, body) = s
        .api(
            "POST",
            "/auth/login",
            None,
            Some(serde_json::json!({"name": "alice", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let all = entries(&s).await;
    let created = find(&all, "user.create", "success");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].record.target.as_deref(), Some("alice"));
    assert!(
        !created[0]
            .record
            .detail
            .as_deref()
            .unwrap()
            .contains("horse"),
        "no password in the log"
    );
    assert_eq!(find(&all, "member.set", "success").len(), 1);
    let failed = find(&all, "login.failed", "denied");
    assert_eq!(failed.len(), 1, "{all:#?}");
    assert_eq!(failed[0].record.actor, "alice");
    assert_eq!(failed[0].record.source_ip.as_deref(), Some("127.0.0.1"));
    let ok = find(&all, "login.succeeded", "success");
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].record.source_ip.as_deref(), Some("127.0.0.1"));
    assert!(
        all.iter()
            .all(|e| !format!("{e:?}").contains("correct horse"))
    );
}
