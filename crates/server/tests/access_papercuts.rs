//! Access papercuts over real HTTP, on both store engines: a lock belongs to the credential
//! that took it; an unlock that releases nothing is audited as failed; a caller without a role
//! in a workspace cannot tell it from a missing one; error texts read as written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::engines::Engine;
use common::{PASSWORD, TestServer, lock_info, state_json};
use serde_json::{Value, json};
use statehouse_core::access::{Principal, Role};
use statehouse_core::audit::{AuditEntry, AuditQuery};

crate::on_both_engines!(
    a_copied_lock_id_neither_locks_nor_writes_nor_unlocks,
    unlocking_an_unlocked_state_is_audited_as_failed,
    foreign_workspaces_answer_like_missing_ones,
    error_texts_name_things_plainly,
    every_login_costs_one_lookup_and_one_verification,
);

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

async fn audit(s: &TestServer) -> Vec<AuditEntry> {
    s.services.flush_journal().await;
    s.services
        .audit_entries(
            &Principal::local_operator(),
            AuditQuery::all_after(0, 1_000),
        )
        .await
        .unwrap()
}

async fn a_copied_lock_id_neither_locks_nor_writes_nor_unlocks(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    let holder = s.token(Some("default"), Role::Editor).await;
    let other = s.token(Some("default"), Role::Editor).await;
    let v1 = state_json(1, "L", "one");
    assert_eq!(
        s.send("POST", "default/app", Some(&holder), Some(&v1))
            .await
            .0,
        200
    );
    let info = lock_info("lock-1", "holder@host");
    assert_eq!(
        s.send("LOCK", "default/app", Some(&holder), Some(&info))
            .await
            .0,
        200
    );
    // The other client reads the ID from the 423 answer…
    let (status, body) = s
        .send(
            "LOCK",
            "default/app",
            Some(&other),
            Some(&lock_info("mine", "other@host")),
        )
        .await;
    assert_eq!(status, 423);
    let copied: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(copied["ID"], "lock-1");
    // …and cannot use it: not to lock (as a "retry"), not to write, not to unlock.
    let (status, body) = s
        .send(
            "LOCK",
            "default/app",
            Some(&other),
            Some(&lock_info("lock-1", "other@host")),
        )
        .await;
    assert_eq!(status, 423, "{body}");
    assert_eq!(body.as_bytes(), &info[..], "the conflict names the holder");
    let v2 = state_json(2, "L", "two");
    for path in ["default/app?ID=lock-1", "default/app"] {
        let (status, body) = s.send("POST", path, Some(&other), Some(&v2)).await;
        assert_eq!(status, 423, "{path}: {body}");
    }
    assert_eq!(
        s.send("UNLOCK", "default/app", Some(&other), Some(&info))
            .await
            .0,
        403
    );
    assert_eq!(s.versions("default", "app").await, 1, "nothing written");
    // The holder's retry, write and unlock work as before.
    assert_eq!(
        s.send("LOCK", "default/app", Some(&holder), Some(&info))
            .await
            .0,
        200
    );
    assert_eq!(
        s.send("POST", "default/app?ID=lock-1", Some(&holder), Some(&v2))
            .await
            .0,
        200
    );
    assert_eq!(
        s.send("UNLOCK", "default/app", Some(&holder), Some(&info))
            .await
            .0,
        200
    );
    assert_eq!(s.versions("default", "app").await, 2);
}

async fn unlocking_an_unlocked_state_is_audited_as_failed(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let v1 = state_json(1, "L", "one");
    s.send("POST", "default/app", Some(&admin), Some(&v1)).await;
    // The API's (and `statehouse state force-unlock`'s) DELETE …/lock.
    let (status, body) = s
        .api(
            "DELETE",
            "/workspaces/default/states/app/lock",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        message(&body),
        "state \"app\" in workspace \"default\" is not locked: nothing was released"
    );
    // Terraform's force-unlock (empty body) and a retried UNLOCK: still 200 for the client.
    assert_eq!(
        s.send("UNLOCK", "default/app", Some(&admin), Some(b""))
            .await
            .0,
        200
    );
    assert_eq!(
        s.send(
            "UNLOCK",
            "default/app",
            Some(&admin),
            Some(&lock_info("gone", "me"))
        )
        .await
        .0,
        200
    );
    let unlocks: Vec<(String, String, Option<String>)> = audit(&s)
        .await
        .into_iter()
        .filter(|e| e.record.action.starts_with("lock."))
        .map(|e| {
            (
                e.record.action,
                e.record.outcome.as_str().to_owned(),
                e.record.reason,
            )
        })
        .collect();
    let nothing = Some("the state is not locked: nothing was released".to_owned());
    assert_eq!(
        unlocks,
        [
            (
                "lock.force_release".into(),
                "failed".into(),
                nothing.clone()
            ),
            (
                "lock.force_release".into(),
                "failed".into(),
                nothing.clone()
            ),
            ("lock.release".into(), "failed".into(), nothing),
        ]
    );
    // A real force-unlock is still audited as a success.
    s.send(
        "LOCK",
        "default/app",
        Some(&admin),
        Some(&lock_info("L", "me")),
    )
    .await;
    let (status, _) = s
        .api(
            "DELETE",
            "/workspaces/default/states/app/lock",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let last = audit(&s).await.pop().unwrap();
    assert_eq!(
        (last.record.action.as_str(), last.record.outcome.as_str()),
        ("lock.force_release", "success")
    );
}

async fn foreign_workspaces_answer_like_missing_ones(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    // An editor of `default` only; `other` exists, `nowhere` does not.
    s.user("eve", &[("default", Role::Editor)]).await;
    let eve = s.user_token("eve", None, None).await;
    let service = s.token(Some("default"), Role::Admin).await;
    let root = s.token(None, Role::Admin).await;
    let v1 = state_json(1, "L", "one");
    s.send("POST", "other/app", Some(&root), Some(&v1)).await;
    for who in [&eve, &service] {
        let describe = if who == &eve {
            "token \"eve-None-None\" of user \"eve\"".to_owned()
        } else {
            "token \"Some(\\\"default\\\")-admin\"".to_owned()
        };
        let expected =
            |ws: &str| format!("workspace \"{ws}\" does not exist or {describe} has no role in it");
        for (method, path, body) in [
            ("GET", "/workspaces/{ws}", None),
            ("GET", "/workspaces/{ws}/states", None),
            ("GET", "/workspaces/{ws}/states/app", None),
            ("GET", "/workspaces/{ws}/states/app/outputs", None),
            ("DELETE", "/workspaces/{ws}/states/app/lock", None),
            ("GET", "/workspaces/{ws}/members", None),
            ("GET", "/workspaces/{ws}/webhooks", None),
            ("GET", "/workspaces/{ws}/databases", None),
            ("GET", "/workspaces/{ws}/targets", None),
            ("GET", "/workspaces/{ws}/backups", None),
            ("GET", "/workspaces/{ws}/notifiers", None),
            ("GET", "/workspaces/{ws}/backup-encryption", None),
            ("GET", "/workspaces/{ws}/backups/some-id/object", None),
            ("GET", "/tokens?workspace={ws}", None),
            (
                "POST",
                "/tokens",
                Some(
                    json!({"name": "probe", "kind": "service", "workspace": "{ws}", "role": "viewer"}),
                ),
            ),
        ] {
            let mut answers = Vec::new();
            for ws in ["other", "nowhere"] {
                let path = path.replace("{ws}", ws);
                let body = body
                    .clone()
                    .map(|b| serde_json::from_str(&b.to_string().replace("{ws}", ws)).unwrap());
                let (status, answer) = s.api(method, &path, Some(who), body).await;
                assert_eq!(status, 404, "{method} {path}: {answer}");
                assert_eq!(message(&answer), expected(ws), "{method} {path}");
                answers.push(message(&answer).replace(ws, "WS"));
            }
            assert_eq!(answers[0], answers[1], "{method} {path}");
        }
        for ws in ["other", "nowhere"] {
            let (status, text) = s.send("GET", &format!("{ws}/app"), Some(who), None).await;
            assert_eq!((status, text.trim()), (404, expected(ws).as_str()));
        }
    }
    // A member gets the precise answer; an instance admin learns what is missing.
    let (status, body) = s
        .api("DELETE", "/workspaces/default/states/x", Some(&eve), None)
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = s.api("GET", "/workspaces/nowhere", Some(&root), None).await;
    assert_eq!(status, 404);
    assert_eq!(
        message(&body),
        "workspace \"nowhere\" does not exist; create it with `statehouse workspace create nowhere`"
    );
    assert_eq!(
        s.api("GET", "/workspaces/other", Some(&root), None).await.0,
        200
    );
}

async fn error_texts_name_things_plainly(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let (status, body) = s
        .api(
            "DELETE",
            "/workspaces/default/states/prod%2Fold",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        message(&body),
        "state \"prod/old\" does not exist in workspace \"default\""
    );
    let (status, text) = s
        .send("DELETE", "default/prod/old", Some(&admin), None)
        .await;
    assert_eq!(
        (status, text.trim()),
        (
            404,
            "state \"prod/old\" does not exist in workspace \"default\""
        )
    );
    let (status, body) = s
        .api(
            "GET",
            "/workspaces/default/states/prod%2Fold/versions/3",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert!(!message(&body).contains("StateName"), "{body}");
}

async fn every_login_costs_one_lookup_and_one_verification(engine: Engine) {
    let s = TestServer::start_on(engine).await;
    let root = s.token(None, Role::Admin).await;
    s.user("alice", &[("default", Role::Viewer)]).await;
    s.user("bob", &[("default", Role::Viewer)]).await;
    let (status, _) = s
        .api(
            "PATCH",
            "/users/bob",
            Some(&root),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, 200);
    s.services
        .create_user(&Principal::local_operator(), "carol", None, false)
        .await
        .unwrap();
    let overlong = common::incompressible(20_000);
    for (name, password, expected) in [
        ("alice", "wrong password", 401),
        ("nobody", "wrong password", 401),
        ("Not A Name!", "wrong password", 401),
        ("bob", PASSWORD, 401),
        ("carol", "wrong password", 401),
        (overlong.as_str(), "wrong password", 401),
        ("alice", PASSWORD, 200),
    ] {
        let before = s.services.login_work();
        let (status, body) = s
            .api(
                "POST",
                "/auth/login",
                None,
                Some(json!({"name": name, "password": password})),
            )
            .await;
        let shown: String = name.chars().take(20).collect();
        assert_eq!(status, expected, "{shown}: {body}");
        if expected == 401 {
            assert_eq!(message(&body), "wrong user name or password", "{shown}");
        }
        let after = s.services.login_work();
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (1, 1),
            "{shown}: one look-up and one argon2 verification"
        );
    }
}
