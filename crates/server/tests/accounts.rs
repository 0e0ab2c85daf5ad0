//! Users, login sessions, CSRF, login throttling, and the RBAC matrix of the account API
//! endpoints (users, members, tokens, auth), over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{PASSWORD, TestServer, state_json};
use serde_json::{Value, json};
use statehouse_core::access::{Principal, Role};

/// A login: status, body, and the session cookie (`name=value`) if one was set.
async fn login(
    s: &TestServer,
    name: &str,
    password: &str,
) -> (u16, Value, Option<String>, reqwest::header::HeaderMap) {
    let resp = s
        .client
        .post(s.api_url("/auth/login"))
        .json(&json!({"name": name, "password": password}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let cookie = headers
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body, cookie, headers)
}

/// An API request authenticated by a session cookie, with an optional CSRF header.
async fn with_cookie(
    s: &TestServer,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = s
        .client
        .request(method, s.api_url(path))
        .header("cookie", cookie);
    if let Some(t) = csrf {
        req = req.header("x-csrf-token", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn message(body: &Value) -> String {
    body["error"]["message"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn login_session_cookie_csrf_and_logout() {
    let s = TestServer::start().await;
    s.user("alice", &[("default", Role::Viewer)]).await;
    let (status, body, cookie, headers) = login(&s, "Alice", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let set_cookie = headers["set-cookie"].to_str().unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/",
        "Max-Age=604800",
    ] {
        assert!(
            set_cookie.contains(attribute),
            "{set_cookie} lacks {attribute}"
        );
    }
    let cookie = cookie.unwrap();
    assert!(cookie.starts_with("statehouse_session=shs_"), "{cookie}");
    assert_eq!(body["user"]["name"], "alice");
    assert_eq!(body["user"]["instance_admin"], false);
    assert!(
        body["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("2023-11-21"),
        "{body}"
    );
    assert_eq!(body["idle_timeout_seconds"], 8 * 3600);
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    assert!(!cookie.contains(&csrf), "the CSRF token is not the cookie");

    // Who am I, by cookie: the user, its roles, the same CSRF token.
    let (status, me) = with_cookie(&s, "GET", "/auth/me", &cookie, None, None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["credential"], "session");
    assert_eq!(me["user"]["name"], "alice");
    assert_eq!(me["csrf_token"], csrf.as_str());
    assert_eq!(
        me["workspaces"],
        json!([{"workspace": "default", "role": "viewer"}])
    );
    // Safe methods need no CSRF token.
    let (status, _) = with_cookie(&s, "GET", "/workspaces", &cookie, None, None).await;
    assert_eq!(status, 200);

    // Unsafe methods by cookie need the CSRF token.
    let new_token = json!({"name": "laptop"});
    let (status, body) = with_cookie(
        &s,
        "POST",
        "/tokens",
        &cookie,
        None,
        Some(new_token.clone()),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("X-CSRF-Token"), "{body}");
    let (status, _) = with_cookie(
        &s,
        "POST",
        "/tokens",
        &cookie,
        Some("wrong"),
        Some(new_token.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, created) =
        with_cookie(&s, "POST", "/tokens", &cookie, Some(&csrf), Some(new_token)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["token"]["kind"], "user");
    assert_eq!(created["token"]["user"], "alice");
    let secret = created["secret"].as_str().unwrap().to_owned();
    // The user token acts with alice's role (viewer) on the backend.
    assert_eq!(
        s.send("GET", "default/app", Some(&secret), None).await.0,
        204
    );
    assert_eq!(
        s.send(
            "POST",
            "default/app",
            Some(&secret),
            Some(&state_json(1, "L", "x"))
        )
        .await
        .0,
        403
    );

    // The http backend takes tokens only, never the cookie.
    let resp = s
        .client
        .get(s.addr("default/app"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // A bearer token wins over a cookie (and needs no CSRF token).
    let (status, me) = s.api("GET", "/auth/me", Some(&secret), None).await;
    assert_eq!((status, me["credential"].as_str()), (200, Some("user")));

    // Logout needs the CSRF token, ends the session and removes the cookie.
    let resp = s
        .client
        .post(s.api_url("/auth/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let resp = s
        .client
        .post(s.api_url("/auth/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert!(
        resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, body) = with_cookie(&s, "GET", "/auth/me", &cookie, None, None).await;
    assert_eq!(status, 401, "{body}");
    // Logging out without a session is harmless.
    let resp = s
        .client
        .post(s.api_url("/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
}

#[tokio::test]
async fn failed_logins_look_alike() {
    let s = TestServer::start().await;
    s.user("alice", &[]).await;
    let op = Principal::local_operator();
    s.services
        .create_user(&op, "nopass", None, false)
        .await
        .unwrap();
    s.user("gone", &[]).await;
    s.services
        .update_user(
            &op,
            "gone",
            statehouse_core::service::UserChange {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut messages = Vec::new();
    for (name, password) in [
        ("alice", "wrong password!"),
        ("nobody", PASSWORD),
        ("nopass", ""),
        ("gone", PASSWORD),
        ("not a valid name", PASSWORD),
    ] {
        let (status, body, cookie, _) = login(&s, name, password).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert!(cookie.is_none(), "{name}: no cookie on failure");
        messages.push(message(&body));
    }
    assert!(
        messages.iter().all(|m| m == "wrong user name or password"),
        "{messages:?}"
    );
    // Malformed requests are 400s.
    let resp = s
        .client
        .post(s.api_url("/auth/login"))
        .json(&json!({"name": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test]
async fn failed_logins_are_limited_per_account_and_per_address() {
    let s = TestServer::start().await;
    s.user("alice", &[]).await;
    s.user("bob", &[]).await;
    for _ in 0..5 {
        assert_eq!(login(&s, "alice", "guess guess guess").await.0, 401);
    }
    // The sixth attempt is refused before the password is looked at, even the right one.
    let (status, body, cookie, headers) = login(&s, "alice", PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    assert!(cookie.is_none());
    assert_eq!(body["error"]["code"], "too_many_requests");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(retry, 15 * 60, "all five failures are from this instant");
    // Another account from the same address is not blocked yet.
    assert_eq!(login(&s, "bob", PASSWORD).await.0, 200);
    // The window moves on the server's clock.
    s.clock.advance_millis(15 * 60_000 - 1_000);
    assert_eq!(login(&s, "alice", PASSWORD).await.0, 429);
    s.clock.advance_millis(1_000);
    assert_eq!(login(&s, "alice", PASSWORD).await.0, 200);
    // A success clears the account's count.
    for _ in 0..4 {
        assert_eq!(login(&s, "alice", "guess guess guess").await.0, 401);
    }
    assert_eq!(login(&s, "alice", PASSWORD).await.0, 200);

    // Per address: 20 failures in the window (4 above + 16 on names that do not exist) …
    s.clock.advance_millis(15 * 60_000);
    for i in 0..20 {
        assert_eq!(login(&s, &format!("ghost{i}"), "x").await.0, 401);
    }
    // … block every account from this address, also existing ones with the right password.
    let (status, body, _, _) = login(&s, "bob", PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    assert!(message(&body).contains("this address"), "{body}");
}

#[tokio::test]
async fn sessions_end_when_idle_expired_disabled_or_password_changes() {
    let s = TestServer::start().await;
    s.user("alice", &[("default", Role::Editor)]).await;
    let me = |cookie: String| {
        let s = &s;
        async move {
            with_cookie(s, "GET", "/auth/me", &cookie, None, None)
                .await
                .0
        }
    };
    // Idle: 8 hours without use.
    let (_, _, cookie, _) = login(&s, "alice", PASSWORD).await;
    let cookie = cookie.unwrap();
    s.clock.advance_millis(8 * 3_600_000 - 61_000);
    assert_eq!(me(cookie.clone()).await, 200, "used within the idle time");
    s.clock.advance_millis(8 * 3_600_000 - 1_000);
    assert_eq!(
        me(cookie.clone()).await,
        200,
        "the idle time counts from the last use"
    );
    s.clock.advance_millis(8 * 3_600_000);
    assert_eq!(me(cookie.clone()).await, 401, "idle too long");

    // Absolute: 7 days, however much it is used.
    let (_, _, cookie, _) = login(&s, "alice", PASSWORD).await;
    let cookie = cookie.unwrap();
    for _ in 0..(7 * 24 / 6 - 1) {
        s.clock.advance_millis(6 * 3_600_000);
        assert_eq!(me(cookie.clone()).await, 200);
    }
    s.clock.advance_millis(6 * 3_600_000);
    assert_eq!(me(cookie.clone()).await, 401, "past the absolute lifetime");

    // A new password ends sessions; so does disabling.
    let op = Principal::local_operator();
    let (_, _, cookie, _) = login(&s, "alice", PASSWORD).await;
    let cookie = cookie.unwrap();
    let change =
        |password: Option<&str>, disabled: Option<bool>| statehouse_core::service::UserChange {
            password: password.map(str::to_owned),
            disabled,
            ..Default::default()
        };
    s.services
        .update_user(&op, "alice", change(Some("another long password"), None))
        .await
        .unwrap();
    assert_eq!(me(cookie).await, 401);
    assert_eq!(
        login(&s, "alice", PASSWORD).await.0,
        401,
        "the old password is gone"
    );
    let (status, _, cookie, _) = login(&s, "alice", "another long password").await;
    assert_eq!(status, 200);
    s.services
        .update_user(&op, "alice", change(None, Some(true)))
        .await
        .unwrap();
    assert_eq!(me(cookie.unwrap()).await, 401);
    assert_eq!(login(&s, "alice", "another long password").await.0, 401);
}

#[tokio::test]
async fn users_set_their_own_password_only() {
    let s = TestServer::start().await;
    s.user("alice", &[]).await;
    s.user("bob", &[]).await;
    let (_, body, cookie, _) = login(&s, "alice", PASSWORD).await;
    let (cookie, csrf) = (
        cookie.unwrap(),
        body["csrf_token"].as_str().unwrap().to_owned(),
    );
    let (status, body) = with_cookie(
        &s,
        "PATCH",
        "/users/alice",
        &cookie,
        Some(&csrf),
        Some(json!({"password": "my own new password"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (path, patch) in [
        ("/users/bob", json!({"password": "taking over bob"})),
        ("/users/alice", json!({"instance_admin": true})),
        ("/users/alice", json!({"disabled": false})),
    ] {
        let (_, _, cookie, _) = login(&s, "alice", "my own new password").await;
        let (status, body) = with_cookie(
            &s,
            "PATCH",
            path,
            &cookie.unwrap(),
            None,
            Some(patch.clone()),
        )
        .await;
        assert_eq!(status, 403, "{path} {patch}: {body}");
    }
    let short = json!({"password": "short"});
    let token = s.user_token("alice", None, None).await;
    let (status, body) = s
        .api("PATCH", "/users/alice", Some(&token), Some(short))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("at least 10"), "{body}");
}

/// Every account endpoint against every kind of caller.
#[tokio::test]
async fn account_api_rbac_matrix() {
    let s = TestServer::start().await;
    let op = Principal::local_operator();
    s.services
        .create_user(&op, "root", Some(PASSWORD), true)
        .await
        .unwrap();
    s.user("wsadmin", &[("default", Role::Admin)]).await;
    s.user("viewer", &[("default", Role::Viewer)]).await;
    s.user("carol", &[]).await;
    let callers: Vec<(&str, Option<String>)> = vec![
        ("anonymous", None),
        (
            "instance-admin",
            Some(s.user_token("root", None, None).await),
        ),
        (
            "workspace-admin",
            Some(s.user_token("wsadmin", None, None).await),
        ),
        ("viewer", Some(s.user_token("viewer", None, None).await)),
        (
            "service-admin",
            Some(s.token(Some("default"), Role::Admin).await),
        ),
        (
            "service-outputs",
            Some(s.token(Some("default"), Role::Outputs).await),
        ),
        (
            "instance-admin-narrowed",
            Some(s.user_token("root", Some("default"), None).await),
        ),
        (
            "legacy-instance-admin",
            Some(s.token(None, Role::Admin).await),
        ),
    ];
    // (method, path, body, [anonymous, instance-admin, ws-admin, viewer, service-admin,
    //  service-outputs, instance-admin-narrowed, legacy-instance-admin])
    type Row = (&'static str, &'static str, Option<Value>, [u16; 8]);
    let rows: Vec<Row> = vec![
        (
            "GET",
            "/auth/me",
            None,
            [401, 200, 200, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/users",
            None,
            [401, 200, 403, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/users",
            Some(json!({"name": "NEW"})),
            [401, 201, 403, 403, 403, 403, 403, 201],
        ),
        (
            "GET",
            "/users/carol",
            None,
            [401, 200, 403, 403, 403, 403, 403, 200],
        ),
        (
            "PATCH",
            "/users/carol",
            Some(json!({"disabled": false})),
            [401, 200, 403, 403, 403, 403, 403, 200],
        ),
        (
            "DELETE",
            "/users/DOOMED",
            None,
            [401, 204, 403, 403, 403, 403, 403, 204],
        ),
        (
            "GET",
            "/workspaces/default/members",
            None,
            [401, 200, 200, 403, 200, 403, 200, 200],
        ),
        (
            "GET",
            "/workspaces/default/members/carol",
            None,
            [401, 200, 200, 403, 200, 403, 200, 200],
        ),
        (
            "PUT",
            "/workspaces/default/members/carol",
            Some(json!({"role": "outputs"})),
            [401, 200, 200, 403, 200, 403, 200, 200],
        ),
        (
            "DELETE",
            "/workspaces/default/members/carol",
            None,
            [401, 204, 204, 403, 204, 403, 204, 204],
        ),
        (
            "GET",
            "/tokens",
            None,
            [401, 200, 200, 200, 200, 200, 200, 200],
        ),
        (
            "POST",
            "/tokens",
            Some(json!({"name": "mine"})),
            [401, 201, 201, 201, 400, 400, 403, 400],
        ),
        (
            "POST",
            "/tokens",
            Some(
                json!({"name": "svc", "kind": "service", "workspace": "default", "role": "viewer"}),
            ),
            [401, 201, 201, 403, 201, 403, 201, 201],
        ),
        (
            "POST",
            "/tokens",
            Some(json!({"name": "inst", "kind": "instance", "role": "viewer"})),
            [401, 201, 403, 403, 403, 403, 403, 201],
        ),
        (
            "POST",
            "/tokens",
            Some(json!({"name": "for-carol", "user": "carol"})),
            [401, 201, 403, 403, 403, 403, 403, 201],
        ),
        (
            "DELETE",
            "/tokens/SERVICE",
            None,
            [401, 200, 200, 403, 200, 403, 200, 200],
        ),
        (
            "DELETE",
            "/tokens/INSTANCE",
            None,
            [401, 200, 404, 404, 404, 404, 404, 200],
        ),
    ];
    let mut n = 0;
    for (method, path, body, wants) in rows {
        for ((who, token), want) in callers.iter().zip(wants) {
            n += 1;
            // Fresh fixtures per cell.
            let doomed = format!("doomed{n}");
            s.services
                .create_user(&op, &doomed, None, false)
                .await
                .unwrap();
            s.services
                .set_member(&op, "default", "carol", Role::Viewer)
                .await
                .unwrap();
            let (service, _) = s
                .services
                .create_token(Some("default"), Role::Viewer, "svc", None)
                .await
                .unwrap();
            let (instance, _) = s
                .services
                .create_token(None, Role::Viewer, "inst", None)
                .await
                .unwrap();
            let path = path
                .replace("DOOMED", &doomed)
                .replace("SERVICE", &service.id)
                .replace("INSTANCE", &instance.id);
            let body = body.clone().map(|b| {
                let text = b.to_string().replace("NEW", &format!("new{n}"));
                serde_json::from_str::<Value>(&text).unwrap()
            });
            let (status, answer) = s.api(method, &path, token.as_deref(), body).await;
            assert_eq!(status, want, "{method} {path} as {who}: {answer}");
            if status >= 400 {
                assert!(
                    !message(&answer).is_empty(),
                    "{method} {path} as {who}: no reason"
                );
            }
            if method == "POST" && path == "/tokens" && status == 201 {
                assert!(answer["secret"].as_str().unwrap().starts_with("sht_"));
            }
        }
    }
}

#[tokio::test]
async fn token_listings_show_what_the_caller_may_see() {
    let s = TestServer::start().await;
    let op = Principal::local_operator();
    s.services
        .create_user(&op, "root", None, true)
        .await
        .unwrap();
    s.user("wsadmin", &[("default", Role::Admin)]).await;
    s.user(
        "viewer",
        &[("default", Role::Viewer), ("other", Role::Admin)],
    )
    .await;
    let root = s.user_token("root", None, None).await;
    let wsadmin = s.user_token("wsadmin", None, None).await;
    let viewer = s
        .user_token("viewer", Some("default"), Some(Role::Viewer))
        .await;
    s.services
        .create_token(Some("default"), Role::Editor, "ci-default", Some(3_600_000))
        .await
        .unwrap();
    s.services
        .create_token(Some("other"), Role::Editor, "ci-other", None)
        .await
        .unwrap();
    s.services
        .create_token(None, Role::Admin, "legacy", None)
        .await
        .unwrap();
    let names = |list: &Value| {
        let mut n: Vec<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    let (_, all) = s.api("GET", "/tokens", Some(&root), None).await;
    assert_eq!(names(&all).len(), 6, "{all}");
    let (_, mine) = s.api("GET", "/tokens", Some(&wsadmin), None).await;
    assert_eq!(names(&mine), ["ci-default", "wsadmin-None-None"], "{mine}");
    // A narrowed token sees its user's own tokens, but no service tokens beyond its reach.
    let (_, narrowed) = s.api("GET", "/tokens", Some(&viewer), None).await;
    assert_eq!(
        names(&narrowed),
        ["viewer-Some(\"default\")-Some(Viewer)"],
        "{narrowed}"
    );
    let (_, filtered) = s
        .api("GET", "/tokens?workspace=other", Some(&root), None)
        .await;
    assert_eq!(names(&filtered), ["ci-other"]);
    // Listings carry kind, owner, expiry and last use; never a secret or hash.
    let (_, all) = s.api("GET", "/tokens", Some(&root), None).await;
    let ci = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci-default")
        .unwrap();
    assert_eq!(ci["kind"], "service");
    assert_eq!(ci["workspace"], "default");
    assert_eq!(ci["status"], "active");
    assert!(ci["expires_at"].is_string());
    assert!(ci.get("secret").is_none() && ci.get("secret_hash").is_none());
    let own = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user"] == "wsadmin")
        .unwrap();
    assert_eq!(own["kind"], "user");
    assert!(
        own["last_used_at"].is_string(),
        "wsadmin's token was used above: {own}"
    );
    // Revoking works at once on this server.
    let id = own["id"].as_str().unwrap();
    let (status, revoked) = s
        .api("DELETE", &format!("/tokens/{id}"), Some(&wsadmin), None)
        .await;
    assert_eq!(
        (status, revoked["status"].as_str()),
        (200, Some("revoked")),
        "{revoked}"
    );
    assert_eq!(s.api("GET", "/tokens", Some(&wsadmin), None).await.0, 401);
    let (status, body) = s
        .api("DELETE", &format!("/tokens/{id}"), Some(&root), None)
        .await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn membership_api_round_trip() {
    let s = TestServer::start().await;
    s.user("carol", &[]).await;
    let admin = s.token(Some("default"), Role::Admin).await;
    let carol = s.user_token("carol", None, None).await;
    assert_eq!(
        s.send("GET", "default/app", Some(&carol), None).await.0,
        404,
        "without a role, the workspace looks missing"
    );
    let (status, body) = s
        .api(
            "PUT",
            "/workspaces/default/members/Carol",
            Some(&admin),
            Some(json!({"role": "editor"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"user": "carol", "workspace": "default", "role": "editor", "granted_at": body["granted_at"]})
    );
    // Applies at once on this server: carol's token now writes.
    assert_eq!(
        s.send(
            "POST",
            "default/app",
            Some(&carol),
            Some(&state_json(1, "L", "c"))
        )
        .await
        .0,
        200
    );
    let (_, members) = s
        .api("GET", "/workspaces/default/members", Some(&admin), None)
        .await;
    assert_eq!(members["items"].as_array().unwrap().len(), 1);
    let (status, body) = s
        .api(
            "PUT",
            "/workspaces/default/members/carol",
            Some(&admin),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        message(&body).contains("outputs, viewer, editor or admin"),
        "{body}"
    );
    let (status, _) = s
        .api(
            "PUT",
            "/workspaces/default/members/nobody",
            Some(&admin),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        s.api(
            "DELETE",
            "/workspaces/default/members/carol",
            Some(&admin),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        s.api(
            "DELETE",
            "/workspaces/default/members/carol",
            Some(&admin),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        s.send("GET", "default/app", Some(&carol), None).await.0,
        404,
        "removed from the workspace, carol cannot tell it exists"
    );
}

#[tokio::test]
async fn openapi_documents_the_account_routes() {
    let s = TestServer::start().await;
    let doc: Value = s
        .client
        .get(s.api_url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/auth/me",
        "/api/v1/users",
        "/api/v1/users/{user}",
        "/api/v1/workspaces/{ws}/members",
        "/api/v1/workspaces/{ws}/members/{user}",
        "/api/v1/tokens",
        "/api/v1/tokens/{id}",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the document");
    }
}
