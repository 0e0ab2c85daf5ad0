//! The Terraform/OpenTofu http backend over real HTTP: protocol, bad input, roles, encryption.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, content_md5, lock_info, state_json};
use statehouse_core::access::Role;
use statehouse_core::model::StateFilter;

#[tokio::test]
async fn read_write_versions_and_identical_snapshots() {
    let s = TestServer::start().await;
    let t = s.token(Some("default"), Role::Editor).await;
    assert_eq!(
        s.send("GET", "default/app", Some(&t), None).await.0,
        204,
        "no state yet"
    );
    let v1 = state_json(1, "L", "one");
    assert_eq!(
        s.send("POST", "default/app", Some(&t), Some(&v1)).await.0,
        200
    );
    // Terraform re-sends identical snapshots: acknowledged, no new version.
    assert_eq!(
        s.send("POST", "default/app", Some(&t), Some(&v1)).await.0,
        200
    );
    assert_eq!(s.versions("default", "app").await, 1);
    let v2 = state_json(2, "L", "two");
    assert_eq!(
        s.send("PUT", "default/app", Some(&t), Some(&v2)).await.0,
        200,
        "PUT works as update method"
    );
    assert_eq!(s.versions("default", "app").await, 2);
    let (status, body) = s.send("GET", "default/app", Some(&t), None).await;
    assert_eq!((status, body.as_bytes()), (200, v2.as_slice()));
    // Nested names.
    assert_eq!(
        s.send("POST", "default/prod/network/core", Some(&t), Some(&v1))
            .await
            .0,
        200
    );
    assert_eq!(
        s.send("GET", "default/prod/network/core", Some(&t), None)
            .await
            .1
            .as_bytes(),
        v1.as_slice()
    );
}

#[tokio::test]
async fn get_returns_content_md5() {
    let s = TestServer::start().await;
    let t = s.token(Some("default"), Role::Editor).await;
    let v1 = state_json(1, "L", "md5");
    s.send("POST", "default/app", Some(&t), Some(&v1)).await;
    let resp = s
        .client
        .get(s.addr("default/app"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-md5"].to_str().unwrap(),
        content_md5(&v1)
    );
    assert!(resp.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn serial_and_lineage_protection_with_override() {
    let s = TestServer::start().await;
    let t = s.token(Some("default"), Role::Editor).await;
    s.send(
        "POST",
        "default/app",
        Some(&t),
        Some(&state_json(5, "L", "a")),
    )
    .await;
    let (status, msg) = s
        .send(
            "POST",
            "default/app",
            Some(&t),
            Some(&state_json(5, "L", "b")),
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        msg.contains("serial 5 is not above the stored serial 5"),
        "{msg}"
    );
    let (status, msg) = s
        .send(
            "POST",
            "default/app",
            Some(&t),
            Some(&state_json(9, "OTHER", "c")),
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        msg.contains("lineage") && msg.contains("allow-overwrite"),
        "{msg}"
    );
    assert_eq!(s.versions("default", "app").await, 1);

    // An admin opens a one-shot window: the next offending write is accepted and flagged.
    let ws = s.services.workspace("default").await.unwrap();
    let until = s.services.now().plus_millis(60_000);
    assert!(
        s.store
            .set_overwrite_until(&ws.id, "app", Some(until))
            .await
            .unwrap()
    );
    assert_eq!(
        s.send(
            "POST",
            "default/app",
            Some(&t),
            Some(&state_json(0, "NEW", "forced"))
        )
        .await
        .0,
        200
    );
    let state = s.store.state(&ws.id, "app").await.unwrap().unwrap();
    assert!(state.current.as_ref().unwrap().forced);
    assert_eq!(state.overwrite_until, None, "window is consumed");
    assert_eq!(
        s.send(
            "POST",
            "default/app",
            Some(&t),
            Some(&state_json(0, "AGAIN", "x"))
        )
        .await
        .0,
        409
    );
    // The window also expires with time.
    s.store
        .set_overwrite_until(&ws.id, "app", Some(until))
        .await
        .unwrap();
    s.clock.advance_millis(61_000);
    assert_eq!(
        s.send(
            "POST",
            "default/app",
            Some(&t),
            Some(&state_json(0, "LATE", "x"))
        )
        .await
        .0,
        409
    );
}

#[tokio::test]
async fn locking_protocol_both_styles() {
    let s = TestServer::start().await;
    let a = s.token(Some("default"), Role::Editor).await;
    let b = s.token(Some("default"), Role::Editor).await;
    let info_a = lock_info("lock-a", "alice@ci");
    assert_eq!(
        s.send("LOCK", "default/app", Some(&a), Some(&info_a))
            .await
            .0,
        200
    );
    assert_eq!(
        s.send("LOCK", "default/app", Some(&a), Some(&info_a))
            .await
            .0,
        200,
        "retried LOCK succeeds"
    );
    let (status, holder) = s
        .send(
            "LOCK",
            "default/app",
            Some(&b),
            Some(&lock_info("lock-b", "bob")),
        )
        .await;
    assert_eq!(status, 423);
    assert_eq!(
        holder.as_bytes(),
        info_a.as_slice(),
        "conflict body is the holder's LockInfo"
    );
    // Writes need the holder's ID.
    let body = state_json(1, "L", "x");
    assert_eq!(
        s.send("POST", "default/app", Some(&b), Some(&body)).await.0,
        423
    );
    assert_eq!(
        s.send("POST", "default/app?ID=wrong", Some(&a), Some(&body))
            .await
            .0,
        423
    );
    assert_eq!(
        s.send("POST", "default/app?ID=lock-a", Some(&a), Some(&body))
            .await
            .0,
        200
    );
    // Someone else's lock cannot be released by an editor.
    assert_eq!(
        s.send("UNLOCK", "default/app", Some(&b), Some(&info_a))
            .await
            .0,
        403
    );
    assert_eq!(
        s.send("UNLOCK", "default/app", Some(&a), Some(&info_a))
            .await
            .0,
        200
    );
    assert_eq!(
        s.send("UNLOCK", "default/app", Some(&a), Some(&info_a))
            .await
            .0,
        200,
        "unlock is idempotent"
    );
    assert_eq!(
        s.send(
            "POST",
            "default/app?ID=lock-a",
            Some(&a),
            Some(&state_json(2, "L", "y"))
        )
        .await
        .0,
        409,
        "stale lock ID refused"
    );

    // GitLab style: POST <address>/lock, DELETE <address>/lock.
    assert_eq!(
        s.send(
            "POST",
            "default/app/lock",
            Some(&b),
            Some(&lock_info("lock-g", "gitlab"))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        s.send("POST", "default/app/lock", Some(&a), Some(&info_a))
            .await
            .0,
        423
    );
    assert_eq!(
        s.send(
            "DELETE",
            "default/app/lock",
            Some(&b),
            Some(&lock_info("lock-g", "gitlab"))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        s.send("LOCK", "default/app", Some(&a), Some(&info_a))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn force_unlock_terraform_and_opentofu_styles() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let info = lock_info("held", "someone");
    s.send("LOCK", "default/app", Some(&editor), Some(&info))
        .await;
    // Terraform force-unlock: empty body. Editors may not, admins may.
    assert_eq!(
        s.send("UNLOCK", "default/app", Some(&editor), Some(b""))
            .await
            .0,
        403
    );
    assert_eq!(
        s.send("UNLOCK", "default/app", Some(&admin), Some(b""))
            .await
            .0,
        200
    );
    // OpenTofu force-unlock: only the ID.
    s.send("LOCK", "default/app", Some(&editor), Some(&info))
        .await;
    assert_eq!(
        s.send(
            "UNLOCK",
            "default/app",
            Some(&admin),
            Some(br#"{"ID":"other"}"#)
        )
        .await
        .0,
        423
    );
    assert_eq!(
        s.send(
            "UNLOCK",
            "default/app",
            Some(&admin),
            Some(br#"{"ID":"held"}"#)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        s.send(
            "LOCK",
            "default/app",
            Some(&admin),
            Some(&lock_info("new", "admin"))
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn delete_is_soft_and_admin_only() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let admin = s.token(Some("default"), Role::Admin).await;
    s.send(
        "POST",
        "default/app",
        Some(&editor),
        Some(&state_json(1, "L", "keep-me")),
    )
    .await;
    assert_eq!(
        s.send("DELETE", "default/app", Some(&editor), None).await.0,
        403
    );
    s.send(
        "LOCK",
        "default/app",
        Some(&editor),
        Some(&lock_info("l", "e")),
    )
    .await;
    assert_eq!(
        s.send("DELETE", "default/app", Some(&admin), None).await.0,
        423,
        "locked states are not deleted"
    );
    s.send(
        "UNLOCK",
        "default/app",
        Some(&editor),
        Some(&lock_info("l", "e")),
    )
    .await;
    assert_eq!(
        s.send("DELETE", "default/app", Some(&admin), None).await.0,
        200
    );
    assert_eq!(
        s.send("GET", "default/app", Some(&editor), None).await.0,
        204
    );
    assert_eq!(
        s.send("DELETE", "default/app", Some(&admin), None).await.0,
        404
    );
    // Recoverable.
    let ws = s.services.workspace("default").await.unwrap();
    let deleted = s.store.list_deleted_states(&ws.id).await.unwrap();
    assert_eq!(deleted.len(), 1);
    let (_, body) = s
        .services
        .version_body(&deleted[0].id, 1)
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8(body).unwrap().contains("keep-me"));
    assert!(
        s.store
            .restore_state(&ws.id, &deleted[0].id, s.services.now())
            .await
            .unwrap()
    );
    assert!(
        s.send("GET", "default/app", Some(&editor), None)
            .await
            .1
            .contains("keep-me")
    );
}

/// Every bad request gets a 4xx with a one-line reason and changes nothing.
#[tokio::test]
async fn bad_input_table() {
    let s = TestServer::start().await;
    let t = s.token(None, Role::Admin).await;
    let good = state_json(1, "L", "original");
    assert_eq!(
        s.send("POST", "default/app", Some(&t), Some(&good)).await.0,
        200
    );
    let big = state_json(2, "L", &"x".repeat(common::MAX_BYTES));
    // (method, path, body, Content-MD5 override, expected status, expected reason)
    type Case<'a> = (&'a str, &'a str, Vec<u8>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "default/app",
            b"{not json".to_vec(),
            None,
            400,
            "not valid JSON",
        ),
        (
            "POST",
            "default/app",
            b"{\"hello\":\"world\"}".to_vec(),
            None,
            400,
            "not a Terraform state",
        ),
        (
            "POST",
            "default/app",
            b"[1,2,3]".to_vec(),
            None,
            400,
            "not a JSON object",
        ),
        (
            "POST",
            "default/app",
            b"{\"version\":4,\"serial\":2,\"lineage\":\"\xff\"}".to_vec(),
            None,
            400,
            "not UTF-8",
        ),
        (
            "POST",
            "default/app",
            state_json(2, "L", "x"),
            Some("AAAAAAAAAAAAAAAAAAAAAA=="),
            400,
            "Content-MD5 does not match",
        ),
        (
            "POST",
            "default/app",
            state_json(2, "L", "x"),
            Some("%%%"),
            400,
            "not base64",
        ),
        (
            "POST",
            "default/app",
            big,
            None,
            413,
            "larger than the configured maximum",
        ),
        (
            "POST",
            "nope/app",
            state_json(2, "L", "x"),
            None,
            404,
            "workspace \"nope\" does not exist",
        ),
        (
            "POST",
            "Bad_WS/app",
            state_json(2, "L", "x"),
            None,
            400,
            "invalid workspace name",
        ),
        (
            "POST",
            "default/a%20b",
            state_json(2, "L", "x"),
            None,
            400,
            "invalid state name",
        ),
        (
            "POST",
            "default/a%2F..%2Fapp",
            state_json(2, "L", "x"),
            None,
            400,
            "invalid state name",
        ),
        (
            "GET",
            "default/app/lock",
            Vec::new(),
            None,
            400,
            "not supported",
        ),
        (
            "PATCH",
            "default/app",
            state_json(2, "L", "x"),
            None,
            400,
            "not supported",
        ),
        (
            "LOCK",
            "default/app",
            b"not json".to_vec(),
            None,
            400,
            "lock info is not valid JSON",
        ),
        (
            "LOCK",
            "default/app",
            b"{\"Who\":\"x\"}".to_vec(),
            None,
            400,
            "no \"ID\"",
        ),
        (
            "POST",
            "default/app?ID=%ff",
            state_json(2, "L", "x"),
            None,
            409,
            "is not held",
        ),
    ];
    for (method, path, body, md5, want, why) in cases {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = s.client.request(m, s.addr(path)).bearer_auth(&t);
        if !body.is_empty() || method != "GET" {
            req = req
                .header(
                    "Content-MD5",
                    md5.map(str::to_owned).unwrap_or_else(|| content_md5(&body)),
                )
                .body(body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, want, "{method} {path}: {text}");
        assert!(
            text.contains(why),
            "{method} {path}: {text:?} should mention {why:?}"
        );
        assert!(
            text.trim_end().lines().count() <= 1,
            "{method} {path}: one-line reason, got {text:?}"
        );
    }
    // Path tricks, sent byte for byte (clients would normalise them).
    for path in [
        "/tf/default/a/../app",
        "/tf/default/%2e%2e/app",
        "/tf/default/./app",
        "/tf/default//app",
        "/tf/../tf/default/app",
    ] {
        let (status, text) = s.raw("POST", path, &t, &state_json(2, "L", "x")).await;
        assert!((400..500).contains(&status), "{path}: {status} {text}");
    }
    // Nothing changed.
    assert_eq!(s.versions("default", "app").await, 1);
    assert_eq!(
        s.send("GET", "default/app", Some(&t), None)
            .await
            .1
            .as_bytes(),
        good.as_slice()
    );
    let ws = s.services.workspace("default").await.unwrap();
    let states = s
        .store
        .list_states(&ws.id, &StateFilter::default())
        .await
        .unwrap();
    assert_eq!(
        states.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        vec!["app"]
    );
    assert!(states[0].lock.is_none());
}

/// Every role against every backend method.
#[tokio::test]
async fn rbac_matrix() {
    let s = TestServer::start().await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let revoked = s.token(Some("default"), Role::Admin).await;
    {
        let tokens = s.store.list_tokens(None).await.unwrap();
        let t = tokens
            .iter()
            .find(|t| t.secret_hash == statehouse_core::access::hash_secret(&revoked))
            .unwrap();
        s.store.revoke_token(&t.id, s.services.now()).await.unwrap();
    }
    let (_, expiring) = s
        .services
        .create_token(Some("default"), Role::Admin, "short", Some(1_000))
        .await
        .unwrap();
    s.clock.advance_millis(2_000);
    // Users: their tokens act with their roles in "default", narrowed or capped per token.
    s.user("uviewer", &[("default", Role::Viewer)]).await;
    s.user(
        "uadmin",
        &[("default", Role::Admin), ("other", Role::Admin)],
    )
    .await;
    s.user("unobody", &[("other", Role::Admin)]).await;
    s.user("udisabled", &[("default", Role::Admin)]).await;
    let op = statehouse_core::access::Principal::local_operator();
    s.services
        .create_user(&op, "uroot", None, true)
        .await
        .unwrap();
    let disabled_token = s.user_token("udisabled", None, None).await;
    s.services
        .update_user(
            &op,
            "udisabled",
            statehouse_core::service::UserChange {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let principals: Vec<(&str, Option<String>)> = vec![
        ("anonymous", None),
        ("garbage", Some("sht_not-a-token".into())),
        ("revoked", Some(revoked)),
        ("expired", Some(expiring.expose().to_owned())),
        (
            "other-ws-admin",
            Some(s.token(Some("other"), Role::Admin).await),
        ),
        (
            "outputs",
            Some(s.token(Some("default"), Role::Outputs).await),
        ),
        ("viewer", Some(s.token(Some("default"), Role::Viewer).await)),
        ("editor", Some(s.token(Some("default"), Role::Editor).await)),
        ("admin", Some(s.token(Some("default"), Role::Admin).await)),
        ("instance-admin", Some(s.token(None, Role::Admin).await)),
        (
            "user-viewer",
            Some(s.user_token("uviewer", None, None).await),
        ),
        (
            "user-admin-capped-editor",
            Some(
                s.user_token("uadmin", Some("default"), Some(Role::Editor))
                    .await,
            ),
        ),
        (
            "user-admin-narrowed-to-other",
            Some(s.user_token("uadmin", Some("other"), None).await),
        ),
        (
            "user-without-role",
            Some(s.user_token("unobody", None, None).await),
        ),
        ("user-disabled", Some(disabled_token)),
        (
            "user-instance-admin",
            Some(s.user_token("uroot", None, None).await),
        ),
        (
            "user-admin-capped-outputs",
            Some(s.user_token("uadmin", None, Some(Role::Outputs)).await),
        ),
    ];
    // Columns as in `principals`; a principal without any role in `default` gets 404, as for
    // a workspace that does not exist.
    // anon garbage revoked expired other-ws | outputs viewer editor admin instance |
    // u-viewer u-capped-editor u-narrowed-other u-no-role u-disabled u-instance-admin u-capped-outputs
    let expected: [(&str, [u16; 17]); 6] = [
        (
            "GET",
            [
                401, 401, 401, 401, 404, 200, 200, 200, 200, 200, 200, 200, 404, 404, 401, 200, 200,
            ],
        ),
        (
            "POST",
            [
                401, 401, 401, 401, 404, 403, 403, 200, 200, 200, 403, 200, 404, 404, 401, 200, 403,
            ],
        ),
        (
            "LOCK",
            [
                401, 401, 401, 401, 404, 403, 403, 200, 200, 200, 403, 200, 404, 404, 401, 200, 403,
            ],
        ),
        (
            "UNLOCK-OWN",
            [
                401, 401, 401, 401, 404, 403, 403, 200, 200, 200, 403, 200, 404, 404, 401, 200, 403,
            ],
        ),
        (
            "FORCE-UNLOCK",
            [
                401, 401, 401, 401, 404, 403, 403, 403, 200, 200, 403, 403, 404, 404, 401, 200, 403,
            ],
        ),
        (
            "DELETE",
            [
                401, 401, 401, 401, 404, 403, 403, 403, 200, 200, 403, 403, 404, 404, 401, 200, 403,
            ],
        ),
    ];
    let mut serial = 1;
    for (op, wants) in expected {
        for ((who, token), want) in principals.iter().zip(wants) {
            // Fresh fixture per cell: a state at `serial`, unlocked.
            serial += 1;
            let path = format!("default/m/{serial}");
            assert_eq!(
                s.send(
                    "POST",
                    &path,
                    Some(&admin),
                    Some(&state_json(serial, "L", "x"))
                )
                .await
                .0,
                200
            );
            let token = token.as_deref();
            let got = match op {
                "GET" => s.send("GET", &path, token, None).await,
                "POST" => {
                    s.send(
                        "POST",
                        &path,
                        token,
                        Some(&state_json(serial + 1, "L", "y")),
                    )
                    .await
                }
                "LOCK" => {
                    s.send("LOCK", &path, token, Some(&lock_info("k", who)))
                        .await
                }
                "UNLOCK-OWN" => {
                    // The principal's own lock, if it could take one.
                    let lock_token = if want == 200 {
                        token
                    } else {
                        Some(admin.as_str())
                    };
                    s.send("LOCK", &path, lock_token, Some(&lock_info("k", who)))
                        .await;
                    s.send("UNLOCK", &path, token, Some(&lock_info("k", who)))
                        .await
                }
                "FORCE-UNLOCK" => {
                    s.send("LOCK", &path, Some(&admin), Some(&lock_info("k", "holder")))
                        .await;
                    s.send("UNLOCK", &path, token, Some(b"")).await
                }
                "DELETE" => s.send("DELETE", &path, token, None).await,
                _ => unreachable!(),
            };
            assert_eq!(got.0, want, "{op} as {who}: {}", got.1);
            if op != "GET" && who.contains("outputs") {
                assert!(got.1.contains("role outputs"), "{op} as {who}: {}", got.1);
            }
        }
    }
    // 401s carry WWW-Authenticate so clients know to send credentials.
    let resp = s.client.get(s.addr("default/m/2")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
}

/// A marker written in a state never appears in the database files.
#[tokio::test]
async fn states_are_encrypted_at_rest() {
    let s = TestServer::start().await;
    let t = s.token(Some("default"), Role::Editor).await;
    let marker = "MARKER-4f1c2e-plaintext-must-not-leak";
    for serial in 1..=3 {
        let body = state_json(serial, "L", &format!("{marker}-{serial}"));
        assert_eq!(
            s.send("POST", "default/secret", Some(&t), Some(&body))
                .await
                .0,
            200
        );
    }
    assert!(
        s.send("GET", "default/secret", Some(&t), None)
            .await
            .1
            .contains(marker)
    );
    let mut scanned = 0;
    for entry in std::fs::read_dir(s.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("db.sqlite") {
            let bytes = std::fs::read(&path).unwrap();
            scanned += bytes.len();
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{name} leaks the marker"
            );
        }
    }
    assert!(scanned > 0);
}

/// Servers trust a token they looked up for one second: a revocation made elsewhere (the CLI,
/// another replica) applies within that second; expiry applies at once.
#[tokio::test]
async fn revocation_applies_within_a_second() {
    let s = TestServer::start().await;
    let (token, secret) = s
        .services
        .create_token(Some("default"), Role::Viewer, "soon-revoked", Some(10_000))
        .await
        .unwrap();
    let t = secret.expose().to_owned();
    assert_eq!(s.send("GET", "default/app", Some(&t), None).await.0, 204);
    // Revoked directly in the store, as another process would.
    s.store
        .revoke_token(&token.id, s.services.now())
        .await
        .unwrap();
    s.clock.advance_millis(999);
    assert_eq!(
        s.send("GET", "default/app", Some(&t), None).await.0,
        204,
        "still trusted within the second"
    );
    s.clock.advance_millis(1);
    assert_eq!(s.send("GET", "default/app", Some(&t), None).await.0, 401);

    let (_, secret) = s
        .services
        .create_token(Some("default"), Role::Viewer, "expiring", Some(1_500))
        .await
        .unwrap();
    let t = secret.expose().to_owned();
    assert_eq!(s.send("GET", "default/app", Some(&t), None).await.0, 204);
    s.clock.advance_millis(1_500);
    assert_eq!(
        s.send("GET", "default/app", Some(&t), None).await.0,
        401,
        "expiry is exact, cache or not"
    );
}

#[tokio::test]
async fn operator_secret_authenticates_only_where_registered() {
    use statehouse_core::access::{Principal, TokenSecret};
    let s = TestServer::start().await;
    let secret = TokenSecret::generate();
    // The running server never heard of it.
    assert_eq!(
        s.send("GET", "default/app", Some(secret.expose()), None)
            .await
            .0,
        401
    );
    let mut local = s.services.clone();
    local.trust_operator_secret(&secret);
    let copy = local.clone();
    for services in [&local, &copy] {
        assert_eq!(
            services.authenticate(secret.expose()).await.ok(),
            Some(Principal::local_operator())
        );
        let other = TokenSecret::generate();
        assert!(services.authenticate(other.expose()).await.is_err());
        assert!(services.authenticate("").await.is_err());
    }
    // Registering on a clone leaves the original (the server's) untouched, and nothing is stored.
    assert!(s.services.authenticate(secret.expose()).await.is_err());
    assert!(
        s.store
            .token_by_hash(&secret.hash())
            .await
            .unwrap()
            .is_none()
    );
}

/// A state with real resources, as Terraform 1.0.3 writes it (a `terraform_remote_state` data
/// source with a secret-looking attribute).
fn state_with_resources(serial: i64) -> Vec<u8> {
    format!(
        r#"{{
  "version": 4,
  "terraform_version": "1.0.3",
  "serial": {serial},
  "lineage": "L",
  "outputs": {{
    "vpc_id": {{ "value": "vpc-42", "type": "string" }},
    "db_password": {{ "value": "pw-in-output", "type": "string", "sensitive": true }}
  }},
  "resources": [
    {{
      "mode": "data",
      "type": "terraform_remote_state",
      "name": "net",
      "provider": "provider[\"terraform.io/builtin/terraform\"]",
      "instances": [{{ "schema_version": 0, "attributes": {{ "backend": "http", "config": {{ "value": {{ "password": "RESOURCE-SECRET" }}, "type": ["object", {{ "password": "string" }}] }} }} }}]
    }}
  ]
}}"#
    )
    .into_bytes()
}

/// The outputs role reads states reduced to their outputs, with a matching Content-MD5; every
/// other backend method is refused with a reason; encrypted states cannot be reduced.
#[tokio::test]
async fn outputs_role_reads_only_outputs() {
    let s = TestServer::start().await;
    let editor = s.token(Some("default"), Role::Editor).await;
    let outputs = s.token(Some("default"), Role::Outputs).await;
    let full = state_with_resources(3);
    assert_eq!(
        s.send("POST", "default/net", Some(&editor), Some(&full))
            .await
            .0,
        200
    );
    assert_eq!(
        s.send("GET", "default/net", Some(&editor), None)
            .await
            .1
            .as_bytes(),
        full.as_slice(),
        "editors read the state as stored"
    );
    let resp = s
        .client
        .get(s.addr("default/net"))
        .basic_auth("terraform", Some(&outputs))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let md5 = resp.headers()["content-md5"].to_str().unwrap().to_owned();
    let body = resp.bytes().await.unwrap();
    assert_eq!(
        md5,
        content_md5(&body),
        "Content-MD5 is of the reduced body"
    );
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(!text.contains("RESOURCE-SECRET"), "{text}");
    let reduced: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let original: serde_json::Value = serde_json::from_slice(&full).unwrap();
    for field in [
        "version",
        "terraform_version",
        "serial",
        "lineage",
        "outputs",
    ] {
        assert_eq!(reduced[field], original[field], "{field}");
    }
    assert_eq!(reduced["resources"], serde_json::json!([]));
    // Nothing was written by reading.
    assert_eq!(s.versions("default", "net").await, 1);
    // The other methods, with the reason.
    for (method, body) in [
        ("POST", Some(state_with_resources(4))),
        ("LOCK", Some(lock_info("x", "o"))),
        ("UNLOCK", Some(lock_info("x", "o"))),
        ("DELETE", None),
    ] {
        let (status, msg) = s
            .send(method, "default/net", Some(&outputs), body.as_deref())
            .await;
        assert_eq!(status, 403, "{method}");
        assert!(
            msg.contains("role outputs") && msg.contains("needs"),
            "{method}: {msg}"
        );
    }
    // No state yet: 204 as for everyone.
    assert_eq!(
        s.send("GET", "default/none", Some(&outputs), None).await.0,
        204
    );
    // OpenTofu client-side encrypted state: cannot be reduced.
    let encrypted = br#"{"serial":1,"lineage":"E","meta":{"key_provider.pbkdf2.k":"e30="},"encrypted_data":"c2VjcmV0","encryption_version":"v0"}"#;
    assert_eq!(
        s.send("POST", "default/enc", Some(&editor), Some(encrypted))
            .await
            .0,
        200
    );
    let (status, msg) = s.send("GET", "default/enc", Some(&outputs), None).await;
    assert_eq!(status, 403);
    assert!(msg.contains("encrypted by OpenTofu"), "{msg}");
}
