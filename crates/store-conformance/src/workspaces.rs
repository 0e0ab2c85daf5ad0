//! The basics: the store answers, workspaces are created, looked up, listed and toggled, and
//! instance flags are claimed once.

use std::sync::Arc;

use statehouse_core::model::{Workspace, WorkspaceSettings};
use statehouse_core::store::Store;

use crate::{T0, at, expect_conflict, ok, race, workspace, workspace_value};

pub async fn ping_answers(store: Arc<dyn Store>) {
    ok(store.ping().await, "ping");
    assert!(
        matches!(store.kind(), "sqlite" | "postgres"),
        "kind() should name the backend, got {:?}",
        store.kind()
    );
}

pub async fn workspace_create_and_lookup_by_name(store: Arc<dyn Store>) {
    assert_eq!(
        ok(
            store.workspace_by_name("default").await,
            "workspace_by_name"
        ),
        None,
        "a fresh store has no workspaces"
    );
    let ws = Workspace {
        id: "8d6f2a3e-0000-4000-8000-000000000001".into(),
        name: "default".into(),
        serial_protection: true,
        created_at: at(123),
        settings: WorkspaceSettings::DEFAULT,
    };
    ok(store.create_workspace(&ws).await, "create_workspace");
    let mut off = workspace_value("loose");
    off.serial_protection = false;
    ok(store.create_workspace(&off).await, "create_workspace");
    assert_eq!(
        ok(
            store.workspace_by_name("default").await,
            "workspace_by_name"
        ),
        Some(ws),
        "a workspace reads back exactly as created"
    );
    assert_eq!(
        ok(store.workspace_by_name("loose").await, "workspace_by_name"),
        Some(off),
        "serial_protection=false reads back"
    );
    assert_eq!(
        ok(
            store.workspace_by_name("Default").await,
            "workspace_by_name"
        ),
        None,
        "names are matched exactly"
    );
}

pub async fn workspace_duplicate_name_conflicts(store: Arc<dyn Store>) {
    let first = workspace(&*store, "team").await;
    let mut again = workspace_value("team");
    again.id = "another-id".into();
    again.serial_protection = false;
    let message = expect_conflict(
        store.create_workspace(&again).await,
        "creating a second workspace named \"team\"",
    );
    assert!(
        message.contains("team"),
        "the conflict should name the workspace, got {message:?}"
    );
    assert_eq!(
        ok(store.workspace_by_name("team").await, "workspace_by_name"),
        Some(first),
        "the original workspace is untouched by the refused duplicate"
    );
    assert_eq!(
        ok(store.list_workspaces().await, "list_workspaces").len(),
        1
    );
}

pub async fn workspaces_list_in_name_order(store: Arc<dyn Store>) {
    assert!(ok(store.list_workspaces().await, "list_workspaces").is_empty());
    // Byte order, whatever the database's collation: '-' < '0' < '_' < 'a'.
    let names = ["prod", "a_b", "ab", "a-b", "a1", "b", "a"];
    for name in names {
        workspace(&*store, name).await;
    }
    let listed: Vec<String> = ok(store.list_workspaces().await, "list_workspaces")
        .into_iter()
        .map(|w| w.name)
        .collect();
    let mut expected: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(
        listed, expected,
        "workspaces are listed by name, byte order"
    );
}

pub async fn serial_protection_toggles(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let other = workspace(&*store, "other").await;
    ok(
        store
            .update_workspace(&Workspace {
                serial_protection: false,
                ..ws.clone()
            })
            .await,
        "set_serial_protection(false)",
    );
    let read = ok(store.workspace_by_name("ws").await, "workspace_by_name").unwrap();
    assert!(!read.serial_protection, "protection should be off");
    assert_eq!(
        ok(store.workspace_by_name("other").await, "workspace_by_name"),
        Some(other),
        "other workspaces are untouched"
    );
    ok(
        store
            .update_workspace(&Workspace {
                serial_protection: true,
                ..ws.clone()
            })
            .await,
        "set_serial_protection(true)",
    );
    assert_eq!(
        ok(store.workspace_by_name("ws").await, "workspace_by_name"),
        Some(ws),
        "protection is back on"
    );
}

// ---- instance flags --------------------------------------------------------------------------

pub async fn claim_flag_once(store: Arc<dyn Store>) {
    assert!(
        ok(store.claim_flag("bootstrap", T0).await, "claim_flag"),
        "first claim wins"
    );
    assert!(
        !ok(store.claim_flag("bootstrap", at(1)).await, "claim_flag"),
        "second claim loses"
    );
    assert!(
        ok(store.claim_flag("other-flag", at(2)).await, "claim_flag"),
        "flags are independent"
    );
    let results = race(16, |i| {
        let store = store.clone();
        async move { store.claim_flag("raced", at(i as i64)).await }
    })
    .await;
    let winners = results
        .into_iter()
        .filter(|r| matches!(r, Ok(true)))
        .count();
    assert_eq!(winners, 1, "exactly one of 16 concurrent claims wins");
}
