//! Conformance cases for users, memberships, user tokens, sessions and login throttling.

use std::sync::Arc;

use statehouse_core::Error;
use statehouse_core::access::Role;
use statehouse_core::accounts::{Session, User};
use statehouse_core::clock::Timestamp;
use statehouse_core::store::Store;
use statehouse_core::store::accounts::LoginFailures;

use crate::{T0, at, expect_conflict, new_token, ok, token_from, workspace};

fn user_value(name: &str) -> User {
    User {
        id: format!("u-{name}"),
        name: name.to_owned(),
        password_hash: Some(format!("$argon2id$v=19$m=19456,t=2,p=1$salt-{name}$hash")),
        instance_admin: false,
        created_at: T0,
        disabled_at: None,
        sso_subject: None,
    }
}

async fn user(store: &dyn Store, name: &str) -> User {
    let u = user_value(name);
    ok(store.create_user(&u).await, "create_user");
    u
}

fn session_value(id: &str, user_id: &str, last_seen: Timestamp, expires: Timestamp) -> Session {
    Session {
        id: id.to_owned(),
        user_id: user_id.to_owned(),
        secret_hash: format!("session-hash-{id}"),
        created_at: T0,
        last_seen_at: last_seen,
        expires_at: expires,
        source_ip: Some("192.0.2.7".into()),
    }
}

pub async fn user_create_lookup_and_duplicate_name(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let mut admin = user_value("root");
    admin.password_hash = None;
    admin.instance_admin = true;
    ok(
        store.create_user(&admin).await,
        "create_user without password",
    );
    assert_eq!(
        ok(store.user_by_id(&alice.id).await, "user_by_id"),
        Some(alice.clone()),
        "a user reads back exactly (hash, flags, times)"
    );
    assert_eq!(
        ok(store.user_by_name("root").await, "user_by_name"),
        Some(admin)
    );
    assert_eq!(ok(store.user_by_name("nobody").await, "user_by_name"), None);
    assert_eq!(ok(store.user_by_id("u-nobody").await, "user_by_id"), None);
    let mut same_name = user_value("alice");
    same_name.id = "u-other".into();
    let message = expect_conflict(store.create_user(&same_name).await, "a second user alice");
    assert!(message.contains("alice"), "{message}");
}

pub async fn users_single_sign_on_made_are_found_by_their_subject(store: Arc<dyn Store>) {
    let mut dana = user_value("dana");
    dana.password_hash = None;
    dana.sso_subject = Some("https://idp.example#4711".into());
    ok(store.create_user(&dana).await, "create_user with a subject");
    user(&*store, "erin").await;
    assert_eq!(
        ok(
            store.user_by_sso_subject("https://idp.example#4711").await,
            "user_by_sso_subject"
        ),
        Some(dana.clone()),
        "the subject reads back"
    );
    assert_eq!(
        ok(
            store
                .user_by_sso_subject("https://other.example#4711")
                .await,
            "user_by_sso_subject"
        ),
        None,
        "a subject is unique only with its issuer"
    );
    let mut twin = user_value("dana2");
    twin.sso_subject = dana.sso_subject.clone();
    expect_conflict(
        store.create_user(&twin).await,
        "a second user of one subject",
    );
    // Users without a subject (many) do not collide.
    user(&*store, "frank").await;
    assert_eq!(
        ok(store.user_by_name("frank").await, "user_by_name")
            .unwrap()
            .sso_subject,
        None
    );
}

pub async fn user_update_and_list_in_name_order(store: Arc<dyn Store>) {
    for name in ["carol", "alice", "bob"] {
        user(&*store, name).await;
    }
    let names: Vec<String> = ok(store.list_users().await, "list_users")
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    let mut bob = ok(store.user_by_name("bob").await, "user_by_name").unwrap();
    bob.password_hash = Some("$argon2id$new".into());
    bob.instance_admin = true;
    bob.disabled_at = Some(at(5));
    assert!(ok(store.update_user(&bob).await, "update_user"));
    assert_eq!(
        ok(store.user_by_id(&bob.id).await, "user_by_id"),
        Some(bob.clone())
    );
    bob.password_hash = None;
    bob.disabled_at = None;
    assert!(ok(store.update_user(&bob).await, "update_user"));
    assert_eq!(
        ok(store.user_by_id(&bob.id).await, "user_by_id"),
        Some(bob.clone())
    );
    let ghost = user_value("ghost");
    assert!(
        !ok(store.update_user(&ghost).await, "update_user"),
        "updating a missing user reports false"
    );
}

pub async fn user_delete_cascades_to_memberships_tokens_and_sessions(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    ok(
        store
            .set_membership(&alice.id, &ws.id, Role::Editor, T0)
            .await,
        "set_membership",
    );
    ok(
        store
            .set_membership(&bob.id, &ws.id, Role::Viewer, T0)
            .await,
        "set_membership",
    );
    let mut t = new_token("t-alice", None, Role::Admin, T0);
    t.user_id = Some(alice.id.clone());
    ok(store.create_token(&t).await, "create_token");
    let service = new_token("t-service", Some(&ws.id), Role::Viewer, T0);
    ok(store.create_token(&service).await, "create_token");
    ok(
        store
            .create_session(&session_value("s1", &alice.id, T0, at(1_000_000)))
            .await,
        "create_session",
    );
    assert!(ok(store.delete_user(&alice.id).await, "delete_user"));
    assert!(
        !ok(store.delete_user(&alice.id).await, "delete_user"),
        "second delete reports false"
    );
    assert_eq!(ok(store.user_by_id(&alice.id).await, "user_by_id"), None);
    assert_eq!(
        ok(store.token_by_hash(&t.secret_hash).await, "token_by_hash"),
        None,
        "a deleted user's tokens are gone (never left ownerless)"
    );
    assert_eq!(
        ok(
            store.session_by_hash("session-hash-s1").await,
            "session_by_hash"
        ),
        None
    );
    let members = ok(store.workspace_members(&ws.id).await, "workspace_members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].user_name, "bob");
    assert!(
        ok(
            store.token_by_hash(&service.secret_hash).await,
            "token_by_hash"
        )
        .is_some(),
        "other tokens stay"
    );
}

pub async fn memberships_set_replace_remove_and_list(store: Arc<dyn Store>) {
    let a = workspace(&*store, "a").await;
    let b = workspace(&*store, "b").await;
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    ok(
        store
            .set_membership(&alice.id, &b.id, Role::Outputs, at(1))
            .await,
        "set_membership",
    );
    ok(
        store
            .set_membership(&alice.id, &a.id, Role::Viewer, at(2))
            .await,
        "set_membership",
    );
    ok(
        store
            .set_membership(&bob.id, &a.id, Role::Admin, at(3))
            .await,
        "set_membership",
    );
    // Replacing a role keeps one row, with the new role and time.
    ok(
        store
            .set_membership(&alice.id, &a.id, Role::Editor, at(4))
            .await,
        "set_membership again",
    );
    let of_alice = ok(store.user_memberships(&alice.id).await, "user_memberships");
    let summary: Vec<(&str, Role, Timestamp)> = of_alice
        .iter()
        .map(|m| (m.workspace_name.as_str(), m.role, m.granted_at))
        .collect();
    assert_eq!(
        summary,
        [("a", Role::Editor, at(4)), ("b", Role::Outputs, at(1))]
    );
    assert!(
        of_alice
            .iter()
            .all(|m| m.user_id == alice.id && m.user_name == "alice")
    );
    assert_eq!(of_alice[0].workspace_id, a.id);
    let of_a = ok(store.workspace_members(&a.id).await, "workspace_members");
    let summary: Vec<(&str, Role)> = of_a
        .iter()
        .map(|m| (m.user_name.as_str(), m.role))
        .collect();
    assert_eq!(
        summary,
        [("alice", Role::Editor), ("bob", Role::Admin)],
        "in user name order"
    );
    assert!(ok(
        store.remove_membership(&alice.id, &a.id).await,
        "remove_membership"
    ));
    assert!(
        !ok(
            store.remove_membership(&alice.id, &a.id).await,
            "remove_membership"
        ),
        "removing again reports false"
    );
    assert_eq!(
        ok(store.user_memberships(&alice.id).await, "user_memberships").len(),
        1
    );
    for role in Role::ALL {
        ok(
            store.set_membership(&bob.id, &b.id, role, at(9)).await,
            "set_membership",
        );
        let m = ok(store.user_memberships(&bob.id).await, "user_memberships");
        assert_eq!(
            m.iter().find(|m| m.workspace_id == b.id).map(|m| m.role),
            Some(role)
        );
    }
}

pub async fn memberships_and_narrowed_tokens_go_with_their_workspace(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "doomed").await;
    let alice = user(&*store, "alice").await;
    ok(
        store
            .set_membership(&alice.id, &ws.id, Role::Admin, T0)
            .await,
        "set_membership",
    );
    let mut narrowed = new_token("t-narrowed", Some(&ws.id), Role::Admin, T0);
    narrowed.user_id = Some(alice.id.clone());
    ok(store.create_token(&narrowed).await, "create_token");
    let mut everywhere = new_token("t-everywhere", None, Role::Admin, T0);
    everywhere.user_id = Some(alice.id.clone());
    ok(store.create_token(&everywhere).await, "create_token");
    assert!(ok(store.delete_workspace(&ws.id).await, "delete_workspace"));
    assert!(ok(store.user_memberships(&alice.id).await, "user_memberships").is_empty());
    let left: Vec<String> = ok(store.user_tokens(&alice.id).await, "user_tokens")
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(
        left,
        ["t-everywhere"],
        "a token narrowed to the workspace goes with it"
    );
    assert!(ok(store.user_by_id(&alice.id).await, "user_by_id").is_some());
}

pub async fn membership_of_unknown_user_or_workspace_is_not_found(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let alice = user(&*store, "alice").await;
    for (user_id, ws_id) in [
        ("u-nobody", ws.id.as_str()),
        (alice.id.as_str(), "ws-nowhere"),
    ] {
        match store.set_membership(user_id, ws_id, Role::Viewer, T0).await {
            Err(Error::NotFound(_)) => {}
            other => panic!("membership of {user_id}/{ws_id}: expected NotFound, got {other:?}"),
        }
    }
    assert!(ok(store.workspace_members(&ws.id).await, "workspace_members").is_empty());
}

pub async fn user_tokens_carry_owner_and_last_use(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let alice = user(&*store, "alice").await;
    let mut narrowed = new_token("t2", Some(&ws.id), Role::Viewer, at(2));
    narrowed.user_id = Some(alice.id.clone());
    let mut full = new_token("t1", None, Role::Admin, at(1));
    full.user_id = Some(alice.id.clone());
    let service = new_token("t3", Some(&ws.id), Role::Editor, at(3));
    for t in [&narrowed, &full, &service] {
        assert_eq!(
            ok(store.create_token(t).await, "create_token"),
            token_from(t)
        );
    }
    assert_eq!(
        ok(
            store.token_by_hash(&narrowed.secret_hash).await,
            "token_by_hash"
        ),
        Some(token_from(&narrowed)),
        "owner and narrowing read back"
    );
    assert_eq!(
        ok(store.token_by_id("t1").await, "token_by_id"),
        Some(token_from(&full))
    );
    assert_eq!(ok(store.token_by_id("nope").await, "token_by_id"), None);
    let ids: Vec<String> = ok(store.user_tokens(&alice.id).await, "user_tokens")
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["t1", "t2"], "the user's tokens, oldest first");
    let mut orphan = new_token("t4", None, Role::Admin, T0);
    orphan.user_id = Some("u-nobody".into());
    assert!(
        store.create_token(&orphan).await.is_err(),
        "a token of a missing user is refused"
    );
}

pub async fn token_touch_moves_forward_only(store: Arc<dyn Store>) {
    let t = new_token("t1", None, Role::Viewer, T0);
    ok(store.create_token(&t).await, "create_token");
    ok(store.touch_token("t1", at(60_000)).await, "touch_token");
    let last = |store: Arc<dyn Store>| async move {
        ok(store.token_by_id("t1").await, "token_by_id")
            .unwrap()
            .last_used_at
    };
    assert_eq!(last(store.clone()).await, Some(at(60_000)));
    ok(
        store.touch_token("t1", at(30_000)).await,
        "touch_token (older)",
    );
    assert_eq!(
        last(store.clone()).await,
        Some(at(60_000)),
        "never moves back"
    );
    ok(store.touch_token("t1", at(120_000)).await, "touch_token");
    assert_eq!(last(store.clone()).await, Some(at(120_000)));
    ok(
        store.touch_token("nope", at(1)).await,
        "touch_token of a missing token is a no-op",
    );
    let listed = ok(store.list_tokens(None).await, "list_tokens");
    assert_eq!(
        listed[0].last_used_at,
        Some(at(120_000)),
        "listings show last use"
    );
}

pub async fn sessions_create_lookup_touch_and_delete(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let s1 = session_value("s1", &alice.id, T0, at(1_000_000));
    let mut s2 = session_value("s2", &alice.id, T0, at(1_000_000));
    s2.source_ip = None;
    ok(store.create_session(&s1).await, "create_session");
    ok(store.create_session(&s2).await, "create_session");
    assert_eq!(
        ok(
            store.session_by_hash(&s1.secret_hash).await,
            "session_by_hash"
        ),
        Some(s1.clone())
    );
    assert_eq!(
        ok(store.session_by_hash("nope").await, "session_by_hash"),
        None
    );
    let mut dup = session_value("s3", &alice.id, T0, at(1));
    dup.secret_hash = s1.secret_hash.clone();
    expect_conflict(
        store.create_session(&dup).await,
        "a session with the same secret hash",
    );
    match store
        .create_session(&session_value("s4", "u-nobody", T0, at(1)))
        .await
    {
        Err(Error::NotFound(_)) => {}
        other => panic!("session of a missing user: expected NotFound, got {other:?}"),
    }
    ok(store.touch_session("s1", at(90_000)).await, "touch_session");
    ok(
        store.touch_session("s1", at(10_000)).await,
        "touch_session (older)",
    );
    let read = ok(
        store.session_by_hash(&s1.secret_hash).await,
        "session_by_hash",
    )
    .unwrap();
    assert_eq!(read.last_seen_at, at(90_000), "touch moves forward only");
    assert!(ok(store.delete_session("s1").await, "delete_session"));
    assert!(!ok(store.delete_session("s1").await, "delete_session"));
    assert_eq!(
        ok(
            store.session_by_hash(&s1.secret_hash).await,
            "session_by_hash"
        ),
        None
    );
    ok(
        store
            .create_session(&session_value("s5", &alice.id, T0, at(1_000_000)))
            .await,
        "create_session",
    );
    assert_eq!(
        ok(
            store.delete_user_sessions(&alice.id).await,
            "delete_user_sessions"
        ),
        2
    );
    assert_eq!(
        ok(
            store.session_by_hash(&s2.secret_hash).await,
            "session_by_hash"
        ),
        None
    );
}

pub async fn expired_sessions_are_removed(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let sessions = [
        session_value("ended", &alice.id, at(900), at(1_000)),
        session_value("idle", &alice.id, at(100), at(1_000_000)),
        session_value("fresh", &alice.id, at(900), at(1_000_000)),
    ];
    for s in &sessions {
        ok(store.create_session(s).await, "create_session");
    }
    // Now is 1_000: "ended" reached its end; "idle" was last seen at or before 500.
    assert_eq!(
        ok(
            store.delete_expired_sessions(at(1_000), at(500)).await,
            "delete_expired_sessions"
        ),
        2
    );
    for s in &sessions {
        let found = ok(
            store.session_by_hash(&s.secret_hash).await,
            "session_by_hash",
        );
        assert_eq!(found.is_some(), s.id == "fresh", "{}", s.id);
    }
}

pub async fn login_failures_count_per_key_within_window(store: Arc<dyn Store>) {
    let none = LoginFailures {
        count: 0,
        oldest: None,
    };
    assert_eq!(
        ok(
            store.login_failures("account:alice", T0).await,
            "login_failures"
        ),
        none
    );
    let keys = ["account:alice".to_owned(), "ip:192.0.2.7".to_owned()];
    for i in 0..3 {
        ok(
            store.record_login_failure(&keys, at(i * 1_000), T0).await,
            "record_login_failure",
        );
    }
    ok(
        store
            .record_login_failure(&["ip:192.0.2.7".to_owned()], at(5_000), T0)
            .await,
        "record_login_failure",
    );
    assert_eq!(
        ok(
            store.login_failures("account:alice", T0).await,
            "login_failures"
        ),
        LoginFailures {
            count: 3,
            oldest: Some(T0)
        }
    );
    assert_eq!(
        ok(
            store.login_failures("ip:192.0.2.7", T0).await,
            "login_failures"
        ),
        LoginFailures {
            count: 4,
            oldest: Some(T0)
        }
    );
    assert_eq!(
        ok(
            store.login_failures("account:alice", at(1_000)).await,
            "login_failures"
        ),
        LoginFailures {
            count: 2,
            oldest: Some(at(1_000))
        },
        "only failures since the window start count"
    );
    ok(
        store.clear_login_failures("account:alice").await,
        "clear_login_failures",
    );
    assert_eq!(
        ok(
            store.login_failures("account:alice", T0).await,
            "login_failures"
        ),
        none
    );
    assert_eq!(
        ok(
            store.login_failures("ip:192.0.2.7", T0).await,
            "login_failures"
        )
        .count,
        4,
        "clearing one key leaves the others"
    );
    // Recording forgets failures older than the given time.
    ok(
        store
            .record_login_failure(&["account:bob".to_owned()], at(10_000), at(4_000))
            .await,
        "record_login_failure",
    );
    assert_eq!(
        ok(
            store.login_failures("ip:192.0.2.7", T0).await,
            "login_failures"
        ),
        LoginFailures {
            count: 1,
            oldest: Some(at(5_000))
        }
    );
}
