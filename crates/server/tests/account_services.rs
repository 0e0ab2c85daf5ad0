//! `Services` for accounts: effective roles of every kind of token, what changes apply when,
//! token use recording, and the first-start admin user.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use statehouse_core::Error;
use statehouse_core::access::{Credential, Principal, Role, TokenKind, hash_secret};
use statehouse_core::service::{BOOTSTRAP_USER, UserChange};

fn disabled(on: bool) -> UserChange {
    UserChange {
        disabled: Some(on),
        ..Default::default()
    }
}

#[tokio::test]
async fn effective_roles_are_user_roles_within_token_narrowing() {
    let s = TestServer::start().await;
    let default = s.services.workspace("default").await.unwrap().id;
    let other = s.services.workspace("other").await.unwrap().id;
    s.user(
        "alice",
        &[("default", Role::Editor), ("other", Role::Viewer)],
    )
    .await;
    let cases = [
        (None, None, Some(Role::Editor), Some(Role::Viewer)),
        (Some("default"), None, Some(Role::Editor), None),
        (
            None,
            Some(Role::Viewer),
            Some(Role::Viewer),
            Some(Role::Viewer),
        ),
        (
            None,
            Some(Role::Outputs),
            Some(Role::Outputs),
            Some(Role::Outputs),
        ),
        (Some("other"), Some(Role::Admin), None, Some(Role::Viewer)),
    ];
    for (narrow, cap, in_default, in_other) in cases {
        let secret = s.user_token("alice", narrow, cap).await;
        let who = s.services.authenticate(&secret).await.unwrap();
        assert_eq!(who.credential, Credential::Token(TokenKind::User));
        assert_eq!(who.actor(), "alice");
        assert_eq!(
            who.role_in(&default),
            in_default,
            "{narrow:?} {cap:?} in default"
        );
        assert_eq!(who.role_in(&other), in_other, "{narrow:?} {cap:?} in other");
        assert!(!who.instance_admin);
    }
    // Service and legacy instance tokens keep working as before.
    let service = s.token(Some("default"), Role::Editor).await;
    let who = s.services.authenticate(&service).await.unwrap();
    assert_eq!(
        (who.role_in(&default), who.role_in(&other)),
        (Some(Role::Editor), None)
    );
    assert_eq!(who.credential, Credential::Token(TokenKind::Service));
    assert!(who.user.is_none() && !who.instance_admin);
    let legacy = s.token(None, Role::Admin).await;
    let who = s.services.authenticate(&legacy).await.unwrap();
    assert_eq!(who.role_in(&other), Some(Role::Admin));
    assert!(
        who.instance_admin,
        "an instance admin token keeps its powers"
    );
    let legacy_viewer = s.token(None, Role::Viewer).await;
    let who = s.services.authenticate(&legacy_viewer).await.unwrap();
    assert_eq!(who.role_in(&default), Some(Role::Viewer));
    assert!(!who.instance_admin);
}

#[tokio::test]
async fn changes_apply_here_at_once_and_elsewhere_within_a_second() {
    let s = TestServer::start().await;
    let op = Principal::local_operator();
    let default = s.services.workspace("default").await.unwrap().id;
    let alice = s.user("alice", &[("default", Role::Viewer)]).await;
    let token = s.user_token("alice", None, None).await;
    assert_eq!(
        s.services
            .authenticate(&token)
            .await
            .unwrap()
            .role_in(&default),
        Some(Role::Viewer)
    );
    // Through the services: at once.
    s.services
        .set_member(&op, "default", "alice", Role::Admin)
        .await
        .unwrap();
    assert_eq!(
        s.services
            .authenticate(&token)
            .await
            .unwrap()
            .role_in(&default),
        Some(Role::Admin)
    );
    s.services
        .update_user(&op, "alice", disabled(true))
        .await
        .unwrap();
    match s.services.authenticate(&token).await {
        Err(Error::Unauthorized(m)) => assert!(m.contains("disabled"), "{m}"),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    s.services
        .update_user(&op, "alice", disabled(false))
        .await
        .unwrap();
    assert!(
        s.services.authenticate(&token).await.is_ok(),
        "enabled again"
    );
    // Directly in the store (another replica or the CLI): within the one-second trust window.
    s.store
        .set_membership(&alice.id, &default, Role::Outputs, s.services.now())
        .await
        .unwrap();
    s.clock.advance_millis(999);
    assert_eq!(
        s.services
            .authenticate(&token)
            .await
            .unwrap()
            .role_in(&default),
        Some(Role::Admin)
    );
    s.clock.advance_millis(1);
    assert_eq!(
        s.services
            .authenticate(&token)
            .await
            .unwrap()
            .role_in(&default),
        Some(Role::Outputs)
    );
    // Revoking through the services: at once.
    let listed = s.store.user_tokens(&alice.id).await.unwrap();
    let id = listed
        .iter()
        .find(|t| t.secret_hash == hash_secret(&token))
        .unwrap()
        .id
        .clone();
    s.services.revoke_token_as(&op, &id).await.unwrap();
    assert!(matches!(
        s.services.authenticate(&token).await,
        Err(Error::Unauthorized(_))
    ));
    // Deleting the user removes its tokens.
    let other_token = s.user_token("alice", None, None).await;
    s.services.delete_user(&op, "alice").await.unwrap();
    assert!(matches!(
        s.services.authenticate(&other_token).await,
        Err(Error::Unauthorized(_))
    ));
}

#[tokio::test]
async fn token_use_is_recorded_at_most_once_a_minute() {
    let s = TestServer::start().await;
    let (token, secret) = s
        .services
        .create_token(Some("default"), Role::Viewer, "ci", None)
        .await
        .unwrap();
    let last_used = || async {
        s.store
            .token_by_id(&token.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
    };
    assert_eq!(last_used().await, None);
    let first = s.services.now();
    s.services.authenticate(secret.expose()).await.unwrap();
    assert_eq!(last_used().await, Some(first));
    for _ in 0..59 {
        s.clock.advance_millis(1_000);
        s.services.authenticate(secret.expose()).await.unwrap();
    }
    assert_eq!(last_used().await, Some(first), "no write within the minute");
    s.clock.advance_millis(1_000);
    s.services.authenticate(secret.expose()).await.unwrap();
    assert_eq!(last_used().await, Some(s.services.now()));
}

#[tokio::test]
async fn first_start_admin_user_owns_the_bootstrap_token() {
    let s = TestServer::start().await;
    let secret = s.services.claim_bootstrap_token().await.unwrap().unwrap();
    assert!(
        s.services.claim_bootstrap_token().await.unwrap().is_none(),
        "once"
    );
    let admin = s.store.user_by_name(BOOTSTRAP_USER).await.unwrap().unwrap();
    assert!(admin.instance_admin);
    assert!(
        !admin.has_password(),
        "cannot log in until a password is set"
    );
    let who = s.services.authenticate(secret.expose()).await.unwrap();
    assert_eq!(who.user_id(), Some(admin.id.as_str()));
    assert_eq!(who.actor(), "admin");
    assert!(who.instance_admin);
    assert_eq!(who.role_in("any-workspace"), Some(Role::Admin));
    // The last enabled instance admin cannot be disabled, demoted or deleted.
    let op = Principal::local_operator();
    for change in [
        disabled(true),
        UserChange {
            instance_admin: Some(false),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            s.services.update_user(&op, "admin", change).await,
            Err(Error::Conflict(_))
        ));
    }
    assert!(matches!(
        s.services.delete_user(&op, "admin").await,
        Err(Error::Conflict(_))
    ));
    s.services
        .create_user(&op, "second", None, true)
        .await
        .unwrap();
    s.services
        .update_user(&op, "admin", disabled(true))
        .await
        .unwrap();
    assert!(matches!(
        s.services.authenticate(secret.expose()).await,
        Err(Error::Unauthorized(_))
    ));
}

#[tokio::test]
async fn narrowed_tokens_cannot_mint_tokens_or_act_as_instance_admin() {
    let s = TestServer::start().await;
    let op = Principal::local_operator();
    s.services
        .create_user(&op, "root", None, true)
        .await
        .unwrap();
    let narrowed = s.user_token("root", Some("default"), None).await;
    let who = s.services.authenticate(&narrowed).await.unwrap();
    assert!(who.narrowed && !who.instance_admin);
    let request = statehouse_core::service::TokenRequest {
        name: "escalate".into(),
        owner: statehouse_core::service::TokenOwner::Me,
        workspace: None,
        role: None,
        expires_in_millis: None,
    };
    match s.services.create_token_as(&who, request).await {
        Err(Error::Forbidden(m)) => assert!(m.contains("narrowed"), "{m}"),
        other => panic!("expected Forbidden, got {other:?}"),
    }
    assert!(matches!(
        s.services.list_users(&who).await,
        Err(Error::Forbidden(_))
    ));
}
