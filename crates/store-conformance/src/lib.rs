//! The one conformance suite every [`Store`] implementation must pass.
//!
//! Each case is a plain `pub async fn case(store: Arc<dyn Store>)` that panics with a clear
//! message when the store breaks the contract. A store crate runs all of them with one line in
//! an integration test:
//!
//! ```ignore
//! // `fresh()` is an async fn returning a fresh, empty, migrated store, optionally paired with a
//! // handle on its database that lives until the test ends: `Arc<dyn Store>`,
//! // `(Arc<dyn Store>, Db)`, or `Option<…>` of either (`None` skips the test).
//! // `peer(&Db)` opens a second store on the same database, as a second statehouse process would.
//! statehouse_store_conformance::conformance_tests!(fresh(), peer);
//! ```
//!
//! which expands to one `#[tokio::test]` per case in a module named `conformance`
//! (`conformance::lock_is_idempotent_for_same_id`, …). Without a peer constructor the
//! `two_stores_*` cases are left out.
//!
//! Cases are registered by their signature, not by a list: `build.rs` finds every top-level
//! `pub async fn` in `src/` taking `(Arc<dyn Store>)`, `(Arc<dyn Store>, Arc<dyn Store>)` or
//! `(Arc<dyn Store>, impl RawSql)`, so a new case runs on every engine as soon as it is written.
//! Helpers that are not cases take `&dyn Store` or other parameters.
//!
//! Timestamps are fixed values (time is injected); sealed bodies are arbitrary bytes, since
//! stores never decrypt.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod audit;
pub use audit::*;
mod history;
mod journaled;
mod lock_ownership;
mod search;
pub use history::*;
pub use journaled::*;
pub use lock_ownership::*;
pub use search::*;

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use statehouse_core::access::{Role, Token};
use statehouse_core::clock::Timestamp;
use statehouse_core::crypto::SealedBody;
use statehouse_core::model::{
    DeletedState, HeldLock, LockOutcome, LockRequest, NewToken, StateFilter, StateRecord,
    UnlockOutcome, UnlockRequest, VersionMeta, VersionWrite, Workspace, WorkspaceSettings,
    WriteOutcome,
};
use statehouse_core::service::md5_hex;
use statehouse_core::store::Store;
use statehouse_core::store::search::VersionResources;
use statehouse_core::{Error, Result};

mod accounts;
pub use accounts::*;
mod backups;
pub use backups::*;
mod keys;
pub use keys::*;

// ---- harness ---------------------------------------------------------------------------------

/// What a store constructor may return: the store, optionally with a handle on its database
/// (kept alive until the test ends, then dropped; e.g. a temp dir or a schema guard), or
/// `None` to skip the test.
pub trait Fresh {
    type Db;
    fn into_parts(self) -> Option<(Arc<dyn Store>, Self::Db)>;
}

impl Fresh for Arc<dyn Store> {
    type Db = ();
    fn into_parts(self) -> Option<(Arc<dyn Store>, ())> {
        Some((self, ()))
    }
}

impl<D> Fresh for (Arc<dyn Store>, D) {
    type Db = D;
    fn into_parts(self) -> Option<(Arc<dyn Store>, D)> {
        Some(self)
    }
}

impl<T: Fresh> Fresh for Option<T> {
    type Db = T::Db;
    fn into_parts(self) -> Option<(Arc<dyn Store>, T::Db)> {
        self.and_then(Fresh::into_parts)
    }
}

/// Expands to one `#[tokio::test]` per conformance case, in a module named `conformance`.
///
/// - `$make`: an async expression (evaluated anew for every test) giving a fresh, empty,
///   migrated store; see [`Fresh`] for the accepted result types.
/// - `$make_peer` (optional): a callable taking `&Db` (the handle `$make` returned) and giving
///   a future of another `Arc<dyn Store>` opened on the same database — a second statehouse
///   process. With it, the `two_stores_*` cases run too.
///
/// The calling crate needs `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr $(,)?) => {
        $crate::__conformance_module!($make;);
    };
    ($make:expr, $make_peer:expr $(,)?) => {
        $crate::__conformance_module!($make; $make_peer);
    };
}

// `__conformance_module!` and `__audit_tamper_module!`, listing every case found in `src/`
// (see build.rs).
include!(concat!(env!("OUT_DIR"), "/cases.rs"));

#[doc(hidden)]
#[macro_export]
macro_rules! __single_store_cases {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some((store, db)) = $crate::Fresh::into_parts($make.await) else {
                    return;
                };
                $crate::$case(store).await;
                drop(db);
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __two_store_cases {
    ($make:expr, $make_peer:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some((store, db)) = $crate::Fresh::into_parts($make.await) else {
                    return;
                };
                let peer = ($make_peer)(&db).await;
                $crate::$case(store, peer).await;
                drop(db);
            }
        )*
    };
}

// ---- fixtures --------------------------------------------------------------------------------

/// A fixed point in time (2023-11-14T22:13:20Z); tests move from it, never from the wall clock.
pub const T0: Timestamp = Timestamp(1_700_000_000_000);

pub(crate) fn at(offset_millis: i64) -> Timestamp {
    T0.plus_millis(offset_millis)
}

fn workspace_value(name: &str) -> Workspace {
    Workspace {
        id: format!("ws-{name}"),
        name: name.to_owned(),
        serial_protection: true,
        created_at: T0,
        settings: WorkspaceSettings::DEFAULT,
    }
}

pub(crate) async fn workspace(store: &dyn Store, name: &str) -> Workspace {
    let ws = workspace_value(name);
    store
        .create_workspace(&ws)
        .await
        .unwrap_or_else(|e| panic!("create_workspace({name:?}) failed: {e}"));
    ws
}

/// Arbitrary bytes standing in for a sealed body: binary (NUL, 0xFF, invalid UTF-8), distinct per tag.
pub(crate) fn sealed(tag: &str) -> SealedBody {
    let mut ciphertext = vec![0u8, 0xff, 0xfe, b'\n', 0x80];
    ciphertext.extend_from_slice(tag.as_bytes());
    ciphertext.extend((0..=255u8).rev());
    SealedBody {
        key_id: "key-1".into(),
        wrapped_key: [&[0u8, 1, 2, 0xff][..], tag.as_bytes()].concat(),
        ciphertext,
    }
}

/// A write of body `tag` (its md5 is that of the sealed bytes, so equal tags mean identical content).
pub(crate) fn write_of(
    state_id: &str,
    version_id: &str,
    serial: i64,
    lineage: &str,
    tag: &str,
) -> VersionWrite {
    let sealed = sealed(tag);
    VersionWrite {
        state_id: state_id.to_owned(),
        version_id: version_id.to_owned(),
        serial,
        lineage: lineage.to_owned(),
        md5: md5_hex(&sealed.ciphertext),
        size: 100 + tag.len() as i64,
        client_version: Some("1.0.3".into()),
        client_encrypted: false,
        sealed,
        lock_id: None,
        token_id: "tok-a".into(),
        author: "ci-token".into(),
        at: at(1_000),
        resources: VersionResources::Indexed(Vec::new()),
    }
}

fn lock_request(id: &str, token_id: &str, when: Timestamp) -> LockRequest {
    LockRequest {
        id: id.to_owned(),
        info: format!(
            r#"{{"ID":"{id}","Operation":"OperationTypeApply","Info":"","Who":"{token_id}@host","Version":"1.0.3","Created":"2023-11-14T22:13:20Z","Path":""}}"#
        ),
        token_id: token_id.to_owned(),
        holder: format!("{token_id}-name"),
        at: when,
    }
}

fn unlock_request(id: Option<&str>, token_id: &str, is_admin: bool) -> UnlockRequest {
    UnlockRequest {
        id: id.map(str::to_owned),
        token_id: token_id.to_owned(),
        is_admin,
    }
}

async fn live(store: &dyn Store, ws: &Workspace, name: &str) -> StateRecord {
    store
        .state(&ws.id, name)
        .await
        .unwrap_or_else(|e| panic!("state({name:?}) failed: {e}"))
        .unwrap_or_else(|| panic!("state {name:?} should be live"))
}

pub(crate) async fn ensure(store: &dyn Store, ws: &Workspace, name: &str) -> StateRecord {
    store
        .ensure_state(&ws.id, name, T0)
        .await
        .unwrap_or_else(|e| panic!("ensure_state({name:?}) failed: {e}"))
}

#[track_caller]
fn created(outcome: Result<WriteOutcome>, what: &str) -> VersionMeta {
    match outcome {
        Ok(WriteOutcome::Created(meta)) => meta,
        other => panic!("{what}: expected Created, got {other:?}"),
    }
}

pub(crate) async fn write(
    store: &dyn Store,
    ws: &Workspace,
    name: &str,
    w: &VersionWrite,
) -> VersionMeta {
    created(
        store.write_version(&ws.id, name, w.clone()).await,
        &format!("write of version {:?} (serial {})", w.version_id, w.serial),
    )
}

#[track_caller]
pub(crate) fn expect_conflict<T: Debug>(result: Result<T>, what: &str) -> String {
    match result {
        Err(Error::Conflict(message)) => {
            assert!(
                !message.trim().is_empty(),
                "{what}: Conflict should explain itself"
            );
            message
        }
        other => panic!("{what}: expected Error::Conflict, got {other:?}"),
    }
}

#[track_caller]
fn expect_locked<T: Debug>(result: Result<T>, what: &str) -> String {
    match result {
        Err(Error::Locked { holder_info }) => holder_info,
        other => panic!("{what}: expected Error::Locked, got {other:?}"),
    }
}

#[track_caller]
fn expect_forbidden<T: Debug>(result: Result<T>, what: &str) {
    match result {
        Err(Error::Forbidden(_)) => {}
        other => panic!("{what}: expected Error::Forbidden, got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn ok<T>(result: Result<T>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e} ({e:?})"))
}

fn meta_of(w: &VersionWrite, version_no: i64, forced: bool) -> VersionMeta {
    VersionMeta {
        id: w.version_id.clone(),
        state_id: w.state_id.clone(),
        version_no,
        serial: w.serial,
        lineage: w.lineage.clone(),
        md5: w.md5.clone(),
        size: w.size,
        created_at: w.at,
        created_by: w.author.clone(),
        client_version: w.client_version.clone(),
        forced,
        client_encrypted: w.client_encrypted,
        kept: false,
        resource_count: w.resources.count(),
    }
}

async fn versions(store: &dyn Store, state_id: &str) -> Vec<VersionMeta> {
    ok(
        store.list_versions(state_id, None, i64::MAX).await,
        "list_versions",
    )
}

pub(crate) async fn body_of(
    store: &dyn Store,
    state_id: &str,
    version_no: i64,
) -> (VersionMeta, SealedBody) {
    ok(
        store.version_body(state_id, version_no).await,
        "version_body",
    )
    .unwrap_or_else(|| panic!("version {version_no} of state {state_id} should exist"))
}

// ---- basics and workspaces -------------------------------------------------------------------

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

// ---- tokens ----------------------------------------------------------------------------------

pub(crate) fn new_token(
    id: &str,
    workspace_id: Option<&str>,
    role: Role,
    created_at: Timestamp,
) -> NewToken {
    NewToken {
        id: id.to_owned(),
        name: format!("{id} name"),
        user_id: None,
        workspace_id: workspace_id.map(str::to_owned),
        role,
        secret_hash: format!("hash-of-{id}"),
        created_at,
        expires_at: None,
    }
}

pub(crate) fn token_from(t: &NewToken) -> Token {
    Token {
        id: t.id.clone(),
        name: t.name.clone(),
        user_id: t.user_id.clone(),
        workspace_id: t.workspace_id.clone(),
        role: t.role,
        secret_hash: t.secret_hash.clone(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        revoked_at: None,
        last_used_at: None,
    }
}

pub async fn token_create_and_lookup_by_hash(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let mut expiring = new_token("t-editor", Some(&ws.id), Role::Editor, at(5));
    expiring.expires_at = Some(at(86_400_000));
    let cases = [
        new_token("t-admin", None, Role::Admin, at(1)),
        new_token("t-viewer", Some(&ws.id), Role::Viewer, at(2)),
        expiring,
    ];
    for t in &cases {
        let returned = ok(store.create_token(t).await, "create_token");
        assert_eq!(
            returned,
            token_from(t),
            "create_token returns the stored token"
        );
    }
    for t in &cases {
        assert_eq!(
            ok(store.token_by_hash(&t.secret_hash).await, "token_by_hash"),
            Some(token_from(t)),
            "token {:?} reads back exactly (role, workspace, expiry)",
            t.id
        );
    }
    assert_eq!(
        ok(store.token_by_hash("no-such-hash").await, "token_by_hash"),
        None
    );
}

pub async fn token_duplicate_hash_conflicts(store: Arc<dyn Store>) {
    let t = new_token("t1", None, Role::Admin, T0);
    ok(store.create_token(&t).await, "create_token");
    let mut same_hash = new_token("t2", None, Role::Viewer, T0);
    same_hash.secret_hash = t.secret_hash.clone();
    expect_conflict(
        store.create_token(&same_hash).await,
        "a second token with the same secret hash",
    );
    assert_eq!(
        ok(store.token_by_hash(&t.secret_hash).await, "token_by_hash"),
        Some(token_from(&t))
    );
}

pub async fn tokens_list_all_and_per_workspace(store: Arc<dyn Store>) {
    let a = workspace(&*store, "a").await;
    let b = workspace(&*store, "b").await;
    assert!(ok(store.list_tokens(None).await, "list_tokens").is_empty());
    // Created out of order: the list is by creation time.
    let tokens = [
        new_token("t3", Some(&a.id), Role::Editor, at(30)),
        new_token("t1", None, Role::Admin, at(10)),
        new_token("t4", Some(&b.id), Role::Viewer, at(40)),
        new_token("t2", Some(&a.id), Role::Viewer, at(20)),
    ];
    for t in &tokens {
        ok(store.create_token(t).await, "create_token");
    }
    assert!(ok(store.revoke_token("t2", at(50)).await, "revoke_token"));
    let ids = |list: Vec<Token>| list.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(ok(store.list_tokens(None).await, "list_tokens(None)")),
        ["t1", "t2", "t3", "t4"],
        "all tokens (revoked ones too), oldest first"
    );
    assert_eq!(
        ids(ok(store.list_tokens(Some(&a.id)).await, "list_tokens(a)")),
        ["t2", "t3"],
        "only workspace a's tokens (not instance tokens), revoked ones too"
    );
    assert_eq!(
        ids(ok(store.list_tokens(Some(&b.id)).await, "list_tokens(b)")),
        ["t4"]
    );
    let listed = ok(store.list_tokens(None).await, "list_tokens");
    let t2 = listed.iter().find(|t| t.id == "t2").unwrap();
    assert_eq!(t2.revoked_at, Some(at(50)), "revocation shows in the list");
    assert_eq!(
        listed[0],
        token_from(&tokens[1]),
        "listed tokens carry all fields"
    );
}

pub async fn token_revoke_once(store: Arc<dyn Store>) {
    let t = new_token("t1", None, Role::Admin, T0);
    ok(store.create_token(&t).await, "create_token");
    assert!(
        ok(store.revoke_token("t1", at(10)).await, "revoke_token"),
        "first revoke reports true"
    );
    assert!(
        !ok(store.revoke_token("t1", at(20)).await, "revoke_token"),
        "second revoke reports false"
    );
    assert!(
        !ok(store.revoke_token("nope", at(20)).await, "revoke_token"),
        "revoking an unknown token reports false"
    );
    let read = ok(store.token_by_hash(&t.secret_hash).await, "token_by_hash").unwrap();
    assert_eq!(
        read.revoked_at,
        Some(at(10)),
        "the first revocation time is kept"
    );
    assert!(!read.is_usable_at(at(11)));
}

// ---- states and versions ---------------------------------------------------------------------

pub async fn ensure_state_creates_empty_state_once(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    assert_eq!(ok(store.state(&ws.id, "net").await, "state"), None);
    let first = ok(
        store.ensure_state(&ws.id, "net", at(7)).await,
        "ensure_state",
    );
    assert_eq!(first.workspace_id, ws.id);
    assert_eq!(first.name, "net");
    assert_eq!(first.created_at, at(7));
    assert_eq!(first.updated_at, at(7));
    assert_eq!(first.current, None, "a new state has no version");
    assert_eq!(first.lock, None, "a new state is not locked");
    assert_eq!(first.overwrite_until, None);
    let again = ok(
        store.ensure_state(&ws.id, "net", at(99)).await,
        "ensure_state",
    );
    assert_eq!(
        again, first,
        "ensure_state on an existing state returns it unchanged"
    );
    assert_eq!(
        ok(store.state(&ws.id, "net").await, "state"),
        Some(first.clone())
    );
    assert_eq!(
        ok(
            store.list_states(&ws.id, &StateFilter::default()).await,
            "list_states"
        ),
        vec![first],
        "exactly one state"
    );
    assert_eq!(
        ok(store.current_body(&ws.id, "net").await, "current_body"),
        None,
        "an empty state has no current body"
    );
}

pub async fn list_states_in_name_order_per_workspace(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let other = workspace(&*store, "other").await;
    let names = [
        "prod/net", "b", "B", "a.b", "a-b", "a_b", "prod/app", "a/z", "a",
    ];
    for name in names {
        ensure(&*store, &ws, name).await;
    }
    ensure(&*store, &other, "elsewhere").await;
    let listed = ok(
        store.list_states(&ws.id, &StateFilter::default()).await,
        "list_states",
    );
    let mut expected: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(
        listed.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        expected,
        "states are listed by name, byte order, only this workspace's"
    );
    assert!(listed.iter().all(|s| s.workspace_id == ws.id));
    let ids: HashSet<_> = listed.iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids.len(), names.len(), "every state has its own id");
}

pub async fn first_write_creates_version_1(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let mut w = write_of(&state.id, "v-1", 7, "lin-a", "first");
    w.client_version = None;
    w.client_encrypted = true;
    w.at = at(5_000);
    let meta = write(&*store, &ws, "net", &w).await;
    assert_eq!(
        meta,
        meta_of(&w, 1, false),
        "the first version is number 1 and carries the write's metadata"
    );
    let record = live(&*store, &ws, "net").await;
    assert_eq!(
        record.current,
        Some(meta.clone()),
        "state().current is the new version"
    );
    assert_eq!(record.updated_at, at(5_000), "a write updates updated_at");
    assert_eq!(record.created_at, T0, "a write keeps created_at");
    let (current_meta, current_body) = ok(store.current_body(&ws.id, "net").await, "current_body")
        .expect("the state has a current body");
    assert_eq!(current_meta, meta);
    assert!(
        current_body == w.sealed,
        "current_body returns the exact sealed bytes stored"
    );
    let (v1_meta, v1_body) = body_of(&*store, &state.id, 1).await;
    assert_eq!(v1_meta, meta);
    assert!(
        v1_body == w.sealed,
        "version_body returns the exact sealed bytes stored"
    );
    assert_eq!(versions(&*store, &state.id).await, vec![meta]);
    assert_eq!(
        ok(store.version_body(&state.id, 2).await, "version_body").map(|(m, _)| m),
        None,
        "there is no version 2"
    );
}

pub async fn next_serials_create_versions_1_2_3(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let mut writes = Vec::new();
    for (n, serial) in [(1, 1), (2, 2), (3, 10)] {
        let mut w = write_of(
            &state.id,
            &format!("v-{n}"),
            serial,
            "lin",
            &format!("body-{n}"),
        );
        w.at = at(n * 1_000);
        let meta = write(&*store, &ws, "net", &w).await;
        assert_eq!(meta, meta_of(&w, n, false), "write {n} becomes version {n}");
        writes.push(w);
    }
    let listed = versions(&*store, &state.id).await;
    assert_eq!(
        listed.iter().map(|v| v.version_no).collect::<Vec<_>>(),
        [3, 2, 1],
        "list_versions is newest first"
    );
    for (i, w) in writes.iter().enumerate() {
        let n = i as i64 + 1;
        let (meta, body) = body_of(&*store, &state.id, n).await;
        assert_eq!(meta, meta_of(w, n, false));
        assert!(body == w.sealed, "version {n} keeps its own bytes");
        assert_eq!(listed[2 - i], meta);
    }
    let (current, body) = ok(store.current_body(&ws.id, "net").await, "current_body").unwrap();
    assert_eq!(current.version_no, 3);
    assert!(body == writes[2].sealed);
    assert_eq!(live(&*store, &ws, "net").await.current, Some(current));
}

pub async fn large_body_round_trips_exactly(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "big").await;
    let mut w = write_of(&state.id, "v-1", 1, "lin", "big");
    // 3 MiB of deterministic noise.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    w.sealed.ciphertext = (0..3 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    w.md5 = md5_hex(&w.sealed.ciphertext);
    w.size = w.sealed.ciphertext.len() as i64;
    write(&*store, &ws, "big", &w).await;
    let (_, body) = body_of(&*store, &state.id, 1).await;
    assert_eq!(body.ciphertext.len(), w.sealed.ciphertext.len());
    assert!(body == w.sealed, "a multi-MB body comes back byte for byte");
}

pub async fn identical_write_is_unchanged(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let w = write_of(&state.id, "v-1", 3, "lin", "same");
    let meta = write(&*store, &ws, "net", &w).await;
    let mut again = write_of(&state.id, "v-2", 3, "lin", "same");
    again.at = at(9_000);
    match ok(
        store.write_version(&ws.id, "net", again.clone()).await,
        "identical write",
    ) {
        WriteOutcome::Unchanged(current) => {
            assert_eq!(current, meta, "Unchanged carries the current version")
        }
        other => panic!("identical content should be Unchanged, got {other:?}"),
    }
    assert_eq!(
        versions(&*store, &state.id).await,
        vec![meta.clone()],
        "an identical write stores no new version"
    );
    assert_eq!(live(&*store, &ws, "net").await.current, Some(meta));
}

pub async fn serial_not_above_conflicts(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let meta = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-1", 5, "lin", "five"),
    )
    .await;
    for (serial, tag) in [(5, "other-five"), (4, "four"), (0, "zero")] {
        let w = write_of(&state.id, &format!("v-{tag}"), serial, "lin", tag);
        let message = expect_conflict(
            store.write_version(&ws.id, "net", w.clone()).await,
            &format!("writing serial {serial} over serial 5"),
        );
        assert!(
            message.contains("serial"),
            "the conflict should talk about the serial, got {message:?}"
        );
    }
    assert_eq!(
        versions(&*store, &state.id).await,
        vec![meta],
        "refused writes store nothing"
    );
}

pub async fn lineage_change_conflicts(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let meta = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-1", 5, "lin-a", "a"),
    )
    .await;
    let message = expect_conflict(
        store
            .write_version(&ws.id, "net", write_of(&state.id, "v-2", 6, "lin-b", "b"))
            .await,
        "writing another lineage",
    );
    assert!(
        message.contains("lineage"),
        "the conflict should talk about the lineage, got {message:?}"
    );
    assert_eq!(versions(&*store, &state.id).await, vec![meta]);
}

pub async fn overwrite_window_allows_exactly_one_forced_write(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-1", 5, "lin-a", "a"),
    )
    .await;
    assert!(
        !ok(
            store
                .set_overwrite_until(&ws.id, "missing", Some(at(60_000)))
                .await,
            "set_overwrite_until"
        ),
        "no window on a state that does not exist"
    );
    assert!(ok(
        store
            .set_overwrite_until(&ws.id, "net", Some(at(60_000)))
            .await,
        "set_overwrite_until"
    ));
    assert_eq!(
        live(&*store, &ws, "net").await.overwrite_until,
        Some(at(60_000))
    );
    // A normal write does not use the window up.
    let normal = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-2", 6, "lin-a", "b"),
    )
    .await;
    assert!(!normal.forced);
    assert_eq!(
        live(&*store, &ws, "net").await.overwrite_until,
        Some(at(60_000)),
        "a write within the rules keeps the window open"
    );
    let mut replace = write_of(&state.id, "v-3", 1, "lin-other", "replacement");
    replace.at = at(30_000);
    let forced = write(&*store, &ws, "net", &replace).await;
    assert_eq!(
        forced,
        meta_of(&replace, 3, true),
        "the override write is stored and flagged forced"
    );
    let record = live(&*store, &ws, "net").await;
    assert_eq!(record.overwrite_until, None, "the window is used up");
    assert_eq!(record.current, Some(forced));
    let mut second = write_of(&state.id, "v-4", 0, "lin-third", "second");
    second.at = at(31_000);
    expect_conflict(
        store.write_version(&ws.id, "net", second.clone()).await,
        "a second protection-breaking write after the window was used",
    );
    assert_eq!(versions(&*store, &state.id).await.len(), 3);
}

pub async fn expired_or_closed_overwrite_window_does_not_help(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-1", 5, "lin", "a"),
    )
    .await;
    assert!(ok(
        store
            .set_overwrite_until(&ws.id, "net", Some(at(2_000)))
            .await,
        "set_overwrite_until"
    ));
    let mut late = write_of(&state.id, "v-2", 1, "lin", "late");
    late.at = at(2_000);
    expect_conflict(
        store.write_version(&ws.id, "net", late.clone()).await,
        "a protection-breaking write at the window's end",
    );
    assert!(ok(
        store
            .set_overwrite_until(&ws.id, "net", Some(at(100_000)))
            .await,
        "set_overwrite_until"
    ));
    assert!(ok(
        store.set_overwrite_until(&ws.id, "net", None).await,
        "set_overwrite_until(None)"
    ));
    assert_eq!(live(&*store, &ws, "net").await.overwrite_until, None);
    expect_conflict(
        store.write_version(&ws.id, "net", late.clone()).await,
        "a protection-breaking write after the window was closed",
    );
    assert_eq!(versions(&*store, &state.id).await.len(), 1);
}

pub async fn unprotected_workspace_accepts_forced_versions(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    ok(
        store
            .update_workspace(&Workspace {
                serial_protection: false,
                ..ws.clone()
            })
            .await,
        "set_serial_protection",
    );
    let state = ensure(&*store, &ws, "net").await;
    let first = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-1", 5, "lin", "a"),
    )
    .await;
    assert!(!first.forced);
    let older = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-2", 3, "lin", "b"),
    )
    .await;
    assert!(
        older.forced,
        "a lower serial is accepted but flagged forced"
    );
    assert_eq!(older.version_no, 2);
    let other = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-3", 9, "lin-x", "c"),
    )
    .await;
    assert!(
        other.forced,
        "another lineage is accepted but flagged forced"
    );
    let normal = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-4", 10, "lin-x", "d"),
    )
    .await;
    assert!(!normal.forced, "a write within the rules is not flagged");
    assert_eq!(
        versions(&*store, &state.id)
            .await
            .iter()
            .map(|v| (v.version_no, v.forced))
            .collect::<Vec<_>>(),
        [(4, false), (3, true), (2, true), (1, false)]
    );
    assert_eq!(
        live(&*store, &ws, "net").await.overwrite_until,
        None,
        "nothing is consumed"
    );
}

pub async fn write_to_replaced_or_missing_state_conflicts(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    expect_conflict(
        store
            .write_version(
                &ws.id,
                "never",
                write_of("no-such-id", "v-0", 1, "lin", "x"),
            )
            .await,
        "writing to a state that was never created",
    );
    let old = ensure(&*store, &ws, "net").await;
    write(
        &*store,
        &ws,
        "net",
        &write_of(&old.id, "v-1", 1, "lin", "a"),
    )
    .await;
    assert!(ok(
        store.delete_state(&ws.id, "net", "admin", at(10)).await,
        "delete_state"
    ));
    let stale = write_of(&old.id, "v-2", 2, "lin", "b");
    expect_conflict(
        store.write_version(&ws.id, "net", stale.clone()).await,
        "writing to a deleted state",
    );
    let new = ensure(&*store, &ws, "net").await;
    assert_ne!(new.id, old.id, "the recreated state has a new id");
    expect_conflict(
        store.write_version(&ws.id, "net", stale.clone()).await,
        "writing with the id of the state that was deleted and recreated",
    );
    assert!(
        versions(&*store, &new.id).await.is_empty(),
        "nothing landed on the new state"
    );
    assert_eq!(
        versions(&*store, &old.id).await.len(),
        1,
        "nor on the old one"
    );
    write(
        &*store,
        &ws,
        "net",
        &write_of(&new.id, "v-3", 1, "lin", "c"),
    )
    .await;
}

// ---- locks -----------------------------------------------------------------------------------

pub async fn lock_acquire_records_holder(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let req = lock_request("L1", "tok-a", at(42));
    assert_eq!(
        ok(store.lock_state(&ws.id, "net", &req).await, "lock_state"),
        LockOutcome::Acquired
    );
    let record = live(&*store, &ws, "net").await;
    assert_eq!(record.id, state.id);
    assert_eq!(
        record.lock,
        Some(HeldLock {
            id: "L1".into(),
            info: req.info.clone(),
            token_id: "tok-a".into(),
            holder: "tok-a-name".into(),
            locked_at: at(42),
        }),
        "the lock keeps the LockInfo exactly as sent, the token and the time"
    );
    let listed = ok(
        store.list_states(&ws.id, &StateFilter::default()).await,
        "list_states",
    );
    assert_eq!(listed, vec![record], "list_states shows the lock too");
}

pub async fn lock_is_idempotent_for_same_id(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let req = lock_request("L1", "tok-a", at(1));
    assert_eq!(
        ok(store.lock_state(&ws.id, "net", &req).await, "lock_state"),
        LockOutcome::Acquired
    );
    let held = live(&*store, &ws, "net").await.lock;
    let retry = lock_request("L1", "tok-a", at(2));
    for _ in 0..2 {
        assert_eq!(
            ok(
                store.lock_state(&ws.id, "net", &retry).await,
                "lock_state again"
            ),
            LockOutcome::AlreadyHeld,
            "a retried LOCK with the same ID succeeds"
        );
    }
    assert_eq!(
        live(&*store, &ws, "net").await.lock,
        held,
        "a retried LOCK leaves the lock as it was"
    );
}

pub async fn lock_by_other_id_reports_holder(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let first = lock_request("L1", "tok-a", at(1));
    ok(store.lock_state(&ws.id, "net", &first).await, "lock_state");
    for other in [
        lock_request("L2", "tok-b", at(2)),
        lock_request("L2", "tok-a", at(2)),
    ] {
        let holder = expect_locked(
            store.lock_state(&ws.id, "net", &other).await,
            "locking a locked state with another ID",
        );
        assert_eq!(
            holder, first.info,
            "the conflict carries the holder's LockInfo as sent"
        );
    }
    assert_eq!(
        live(&*store, &ws, "net").await.lock.map(|l| l.id),
        Some("L1".into())
    );
}

pub async fn lock_creates_missing_state(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    assert_eq!(ok(store.state(&ws.id, "new/one").await, "state"), None);
    let req = lock_request("L1", "tok-a", at(3));
    assert_eq!(
        ok(
            store.lock_state(&ws.id, "new/one", &req).await,
            "lock_state"
        ),
        LockOutcome::Acquired
    );
    let record = live(&*store, &ws, "new/one").await;
    assert_eq!(record.current, None, "the state has no version yet");
    assert_eq!(record.lock.map(|l| l.id), Some("L1".into()));
    let again = ensure(&*store, &ws, "new/one").await;
    assert_eq!(
        again.id, record.id,
        "ensure_state finds the state the lock created"
    );
    // The first write under that lock lands on it.
    let mut w = write_of(&record.id, "v-1", 1, "lin", "a");
    w.lock_id = Some("L1".into());
    assert_eq!(write(&*store, &ws, "new/one", &w).await.version_no, 1);
}

pub async fn write_respects_lock(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let base = write(
        &*store,
        &ws,
        "net",
        &write_of(&state.id, "v-1", 1, "lin", "a"),
    )
    .await;
    let req = lock_request("L1", "tok-a", at(1));
    ok(store.lock_state(&ws.id, "net", &req).await, "lock_state");

    let mut w = write_of(&state.id, "v-2", 2, "lin", "b");
    for claimed in [None, Some("L2")] {
        w.lock_id = claimed.map(str::to_owned);
        let holder = expect_locked(
            store.write_version(&ws.id, "net", w.clone()).await,
            &format!("writing a locked state claiming lock {claimed:?}"),
        );
        assert_eq!(holder, req.info);
    }
    // Identical content does not slip past the lock either.
    let mut same = write_of(&state.id, "v-x", 1, "lin", "a");
    expect_locked(
        store.write_version(&ws.id, "net", same.clone()).await,
        "an identical write without the lock ID",
    );
    same.lock_id = Some("L1".into());
    assert_eq!(
        ok(
            store.write_version(&ws.id, "net", same.clone()).await,
            "identical write with lock"
        ),
        WriteOutcome::Unchanged(base)
    );
    assert_eq!(
        versions(&*store, &state.id).await.len(),
        1,
        "refused writes store nothing"
    );

    w.lock_id = Some("L1".into());
    let meta = write(&*store, &ws, "net", &w).await;
    assert_eq!(meta.version_no, 2, "the holder's write goes through");
    assert!(
        live(&*store, &ws, "net").await.lock.is_some(),
        "a write does not release the lock"
    );

    ok(
        store
            .unlock_state(&ws.id, "net", &unlock_request(Some("L1"), "tok-a", false))
            .await,
        "unlock_state",
    );
    let mut after = write_of(&state.id, "v-3", 3, "lin", "c");
    after.lock_id = Some("L1".into());
    expect_conflict(
        store.write_version(&ws.id, "net", after.clone()).await,
        "writing with a lock ID that is no longer held",
    );
    after.lock_id = None;
    assert_eq!(write(&*store, &ws, "net", &after).await.version_no, 3);
}

pub async fn unlock_by_holder_releases(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let req = lock_request("L1", "tok-a", at(1));
    ok(store.lock_state(&ws.id, "net", &req).await, "lock_state");
    let held = live(&*store, &ws, "net").await.lock.unwrap();
    assert_eq!(held.id, "L1");
    assert_eq!(
        ok(
            store
                .unlock_state(&ws.id, "net", &unlock_request(Some("L1"), "tok-a", false))
                .await,
            "unlock_state"
        ),
        UnlockOutcome::Released,
        "the holder releases its own lock, not forced"
    );
    assert_eq!(live(&*store, &ws, "net").await.lock, None);
    let next = lock_request("L2", "tok-b", at(2));
    assert_eq!(
        ok(store.lock_state(&ws.id, "net", &next).await, "lock_state"),
        LockOutcome::Acquired,
        "a released lock can be taken by someone else"
    );
}

pub async fn unlock_by_other_token_needs_admin(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    ok(
        store
            .lock_state(&ws.id, "net", &lock_request("L1", "tok-a", at(1)))
            .await,
        "lock_state",
    );
    let held = live(&*store, &ws, "net").await.lock.unwrap();
    expect_forbidden(
        store
            .unlock_state(&ws.id, "net", &unlock_request(Some("L1"), "tok-b", false))
            .await,
        "another non-admin token unlocking with the right ID",
    );
    expect_forbidden(
        store
            .unlock_state(&ws.id, "net", &unlock_request(None, "tok-a", false))
            .await,
        "a non-admin force-unlock without ID (even by the holder's token)",
    );
    let holder = expect_locked(
        store
            .unlock_state(&ws.id, "net", &unlock_request(Some("L9"), "tok-a", true))
            .await,
        "unlocking with a wrong lock ID (even as admin)",
    );
    assert_eq!(holder, held.info);
    assert_eq!(
        live(&*store, &ws, "net").await.lock,
        Some(held.clone()),
        "refused unlocks leave the lock in place"
    );
    assert_eq!(
        ok(
            store
                .unlock_state(&ws.id, "net", &unlock_request(Some("L1"), "tok-b", true))
                .await,
            "admin unlock"
        ),
        UnlockOutcome::ForceReleased { previous: held },
        "an admin releasing another token's lock is a forced unlock"
    );
    assert_eq!(live(&*store, &ws, "net").await.lock, None);
}

pub async fn admin_force_unlock_without_id(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    ok(
        store
            .lock_state(&ws.id, "net", &lock_request("L1", "tok-a", at(1)))
            .await,
        "lock_state",
    );
    let held = live(&*store, &ws, "net").await.lock.unwrap();
    assert_eq!(
        ok(
            store
                .unlock_state(&ws.id, "net", &unlock_request(None, "tok-admin", true))
                .await,
            "force-unlock"
        ),
        UnlockOutcome::ForceReleased { previous: held }
    );
    assert_eq!(live(&*store, &ws, "net").await.lock, None);
}

pub async fn unlock_when_not_locked(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    ensure(&*store, &ws, "net").await;
    for (name, why) in [("net", "an unlocked state"), ("missing", "a missing state")] {
        for req in [
            unlock_request(Some("L1"), "tok-a", false),
            unlock_request(None, "tok-a", true),
        ] {
            assert_eq!(
                ok(store.unlock_state(&ws.id, name, &req).await, "unlock_state"),
                UnlockOutcome::NotLocked,
                "unlocking {why}"
            );
        }
    }
    assert_eq!(
        ok(store.state(&ws.id, "missing").await, "state"),
        None,
        "unlock does not create states"
    );
}

// ---- delete, restore, purge ------------------------------------------------------------------

pub async fn delete_hides_state_keeps_versions(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let keep = ensure(&*store, &ws, "keep").await;
    let w1 = write_of(&state.id, "v-1", 1, "lin", "a");
    let w2 = write_of(&state.id, "v-2", 2, "lin", "b");
    write(&*store, &ws, "net", &w1).await;
    write(&*store, &ws, "net", &w2).await;
    assert!(ok(
        store
            .delete_state(&ws.id, "net", "admin-token", at(500))
            .await,
        "delete_state"
    ));
    assert_eq!(
        ok(store.state(&ws.id, "net").await, "state"),
        None,
        "a deleted state is not live"
    );
    assert_eq!(
        ok(
            store.list_states(&ws.id, &StateFilter::default()).await,
            "list_states"
        ),
        vec![keep],
        "list_states leaves deleted states out"
    );
    assert_eq!(
        ok(store.current_body(&ws.id, "net").await, "current_body").map(|(m, _)| m),
        None,
        "a deleted state has no current body"
    );
    let (meta, body) = body_of(&*store, &state.id, 2).await;
    assert_eq!(meta, meta_of(&w2, 2, false));
    assert!(
        body == w2.sealed,
        "versions of deleted states stay readable"
    );
    assert_eq!(versions(&*store, &state.id).await.len(), 2);
    assert_eq!(
        ok(
            store.list_deleted_states(&ws.id).await,
            "list_deleted_states"
        ),
        vec![DeletedState {
            id: state.id.clone(),
            workspace_id: ws.id.clone(),
            name: "net".into(),
            deleted_at: at(500),
            deleted_by: "admin-token".into(),
            versions: 2,
        }]
    );
    assert!(
        !ok(
            store.delete_state(&ws.id, "net", "admin", at(600)).await,
            "delete_state"
        ),
        "deleting again reports false"
    );
    assert!(
        !ok(
            store
                .delete_state(&ws.id, "missing", "admin", at(600))
                .await,
            "delete_state"
        ),
        "deleting a missing state reports false"
    );
    assert!(
        !ok(
            store
                .set_overwrite_until(&ws.id, "net", Some(at(9_000)))
                .await,
            "set_overwrite_until"
        ),
        "no overwrite window on a deleted state"
    );
    let other = workspace(&*store, "other").await;
    assert!(
        ok(
            store.list_deleted_states(&other.id).await,
            "list_deleted_states"
        )
        .is_empty(),
        "deleted states are listed per workspace"
    );
}

pub async fn delete_while_locked_is_refused(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let req = lock_request("L1", "tok-a", at(1));
    ok(store.lock_state(&ws.id, "net", &req).await, "lock_state");
    let holder = expect_locked(
        store.delete_state(&ws.id, "net", "admin", at(2)).await,
        "deleting a locked state",
    );
    assert_eq!(holder, req.info);
    assert!(
        live(&*store, &ws, "net").await.lock.is_some(),
        "the state is still live and locked"
    );
    assert!(
        ok(
            store.list_deleted_states(&ws.id).await,
            "list_deleted_states"
        )
        .is_empty()
    );
    ok(
        store
            .unlock_state(&ws.id, "net", &unlock_request(Some("L1"), "tok-a", false))
            .await,
        "unlock_state",
    );
    assert!(ok(
        store.delete_state(&ws.id, "net", "admin", at(3)).await,
        "delete_state"
    ));
}

pub async fn name_is_reusable_after_delete(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let old = ensure(&*store, &ws, "net").await;
    write(
        &*store,
        &ws,
        "net",
        &write_of(&old.id, "v-1", 9, "lin-old", "old"),
    )
    .await;
    assert!(ok(
        store.delete_state(&ws.id, "net", "admin", at(1)).await,
        "delete_state"
    ));
    let new = ok(
        store.ensure_state(&ws.id, "net", at(2)).await,
        "ensure_state",
    );
    assert_ne!(new.id, old.id);
    assert_eq!(new.current, None, "the new state starts empty");
    // Serial/lineage of the deleted state do not apply to the new one.
    let meta = write(
        &*store,
        &ws,
        "net",
        &write_of(&new.id, "v-2", 1, "lin-new", "new"),
    )
    .await;
    assert_eq!(meta.version_no, 1, "version numbers are per state");
    assert_eq!(
        ok(
            store.list_states(&ws.id, &StateFilter::default()).await,
            "list_states"
        )
        .into_iter()
        .map(|s| s.id)
        .collect::<Vec<_>>(),
        vec![new.id.clone()]
    );
    assert_eq!(
        ok(
            store.list_deleted_states(&ws.id).await,
            "list_deleted_states"
        )
        .into_iter()
        .map(|d| d.id)
        .collect::<Vec<_>>(),
        vec![old.id]
    );
    // A lock on the name goes to the new state.
    ok(
        store
            .lock_state(&ws.id, "net", &lock_request("L1", "tok-a", at(3)))
            .await,
        "lock_state",
    );
    assert_eq!(live(&*store, &ws, "net").await.id, new.id);
}

pub async fn restore_conflicts_with_live_name_then_works(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let first = ensure(&*store, &ws, "net").await;
    let w = write_of(&first.id, "v-1", 1, "lin", "first");
    let first_meta = write(&*store, &ws, "net", &w).await;
    assert!(ok(
        store.delete_state(&ws.id, "net", "admin", at(10)).await,
        "delete_state"
    ));
    let second = ensure(&*store, &ws, "net").await;
    let message = expect_conflict(
        store.restore_state(&ws.id, &first.id, at(20)).await,
        "restoring while a live state has the name",
    );
    assert!(
        message.contains("net"),
        "the conflict should name the state, got {message:?}"
    );
    assert_eq!(
        live(&*store, &ws, "net").await.id,
        second.id,
        "the live state is untouched"
    );
    assert!(
        !ok(
            store.restore_state(&ws.id, &second.id, at(20)).await,
            "restore_state"
        ),
        "restoring a live state reports false"
    );
    assert!(
        !ok(
            store.restore_state(&ws.id, "no-such-id", at(20)).await,
            "restore_state"
        ),
        "restoring an unknown state reports false"
    );
    let other = workspace(&*store, "other").await;
    assert!(
        !ok(
            store.restore_state(&other.id, &first.id, at(20)).await,
            "restore_state"
        ),
        "a state is restored only in its own workspace"
    );

    assert!(ok(
        store.delete_state(&ws.id, "net", "admin", at(30)).await,
        "delete_state"
    ));
    assert!(ok(
        store.restore_state(&ws.id, &first.id, at(40)).await,
        "restore_state"
    ));
    let restored = live(&*store, &ws, "net").await;
    assert_eq!(
        restored.id, first.id,
        "the restored state is live again under its name"
    );
    assert_eq!(
        restored.current,
        Some(first_meta),
        "with its current version"
    );
    assert_eq!(restored.lock, None);
    let (_, body) = ok(store.current_body(&ws.id, "net").await, "current_body").unwrap();
    assert!(body == w.sealed);
    assert_eq!(
        ok(
            store.list_deleted_states(&ws.id).await,
            "list_deleted_states"
        )
        .into_iter()
        .map(|d| d.id)
        .collect::<Vec<_>>(),
        vec![second.id],
        "only the other state is still deleted"
    );
    // Writes continue on top of the restored history.
    let next = write(
        &*store,
        &ws,
        "net",
        &write_of(&first.id, "v-2", 2, "lin", "next"),
    )
    .await;
    assert_eq!(next.version_no, 2);
}

pub async fn purge_removes_deleted_state_for_good(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let doomed = ensure(&*store, &ws, "doomed").await;
    let kept = ensure(&*store, &ws, "kept").await;
    write(
        &*store,
        &ws,
        "doomed",
        &write_of(&doomed.id, "v-1", 1, "lin", "a"),
    )
    .await;
    write(
        &*store,
        &ws,
        "doomed",
        &write_of(&doomed.id, "v-2", 2, "lin", "b"),
    )
    .await;
    let kept_meta = write(
        &*store,
        &ws,
        "kept",
        &write_of(&kept.id, "v-3", 1, "lin", "c"),
    )
    .await;
    assert!(
        !ok(store.purge_state(&ws.id, &doomed.id).await, "purge_state"),
        "a live state cannot be purged"
    );
    assert_eq!(
        versions(&*store, &doomed.id).await.len(),
        2,
        "refused purge keeps versions"
    );
    assert!(ok(
        store.delete_state(&ws.id, "doomed", "admin", at(1)).await,
        "delete_state"
    ));
    let other = workspace(&*store, "other").await;
    assert!(
        !ok(
            store.purge_state(&other.id, &doomed.id).await,
            "purge_state"
        ),
        "a state is purged only from its own workspace"
    );
    assert!(ok(
        store.purge_state(&ws.id, &doomed.id).await,
        "purge_state"
    ));
    assert!(
        versions(&*store, &doomed.id).await.is_empty(),
        "versions are gone"
    );
    for n in [1, 2] {
        assert_eq!(
            ok(store.version_body(&doomed.id, n).await, "version_body").map(|(m, _)| m),
            None,
            "version {n} is gone for good"
        );
    }
    assert!(
        ok(
            store.list_deleted_states(&ws.id).await,
            "list_deleted_states"
        )
        .is_empty()
    );
    assert!(
        !ok(
            store.restore_state(&ws.id, &doomed.id, at(2)).await,
            "restore_state"
        ),
        "a purged state cannot be restored"
    );
    assert!(
        !ok(store.purge_state(&ws.id, &doomed.id).await, "purge_state"),
        "purging again reports false"
    );
    assert_eq!(
        versions(&*store, &kept.id).await,
        vec![kept_meta],
        "other states are untouched"
    );
    assert_eq!(
        ok(
            store
                .wrapped_keys(
                    statehouse_core::sealed::SealedKind::State,
                    statehouse_core::sealed::KeyFilter::NotUnder("no-such-key"),
                    100
                )
                .await,
            "wrapped_keys"
        )
        .into_iter()
        .map(|r| r.row_id)
        .collect::<Vec<_>>(),
        ["v-3"],
        "purged versions' keys are gone too"
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

// ---- concurrency -----------------------------------------------------------------------------

const RACERS: usize = 16;

/// Runs `n` tasks at once (each on the runtime's worker threads) and collects their results.
pub(crate) async fn race<T, F, Fut>(n: usize, task: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let start = start.clone();
            let fut = task(i);
            tokio::spawn(async move {
                start.wait().await;
                fut.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for handle in handles {
        results.push(handle.await.expect("a racing task panicked"));
    }
    results
}

/// Store `i` of a race: alternates between the two stores (which may be the same one).
fn pick(stores: &[Arc<dyn Store>; 2], i: usize) -> Arc<dyn Store> {
    stores[i % 2].clone()
}

async fn lock_race(stores: [Arc<dyn Store>; 2]) {
    let ws = workspace(&*stores[0], "ws").await;
    // The state does not exist yet: the racers also race to create it.
    let results = race(RACERS, |i| {
        let store = pick(&stores, i);
        let ws_id = ws.id.clone();
        async move {
            let req = lock_request(&format!("L{i}"), &format!("tok-{i}"), at(i as i64));
            (req.clone(), store.lock_state(&ws_id, "raced", &req).await)
        }
    })
    .await;
    let winners: Vec<&LockRequest> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(LockOutcome::Acquired)))
        .map(|(req, _)| req)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of {RACERS} concurrent LOCKs must win, got {:?}",
        results.iter().map(|(_, r)| r).collect::<Vec<_>>()
    );
    let winner = winners[0];
    for (req, result) in &results {
        if req.id != winner.id {
            match result {
                Err(Error::Locked { holder_info }) => assert_eq!(
                    holder_info, &winner.info,
                    "losers see the winner's LockInfo"
                ),
                other => panic!(
                    "lock {:?} should have lost with Locked, got {other:?}",
                    req.id
                ),
            }
        }
    }
    for store in &stores {
        let record = live(&**store, &ws, "raced").await;
        assert_eq!(record.lock.map(|l| l.id), Some(winner.id.clone()));
        let states = ok(
            store.list_states(&ws.id, &StateFilter::default()).await,
            "list_states",
        );
        assert_eq!(states.len(), 1, "the race created exactly one state");
    }
}

async fn write_race(stores: [Arc<dyn Store>; 2]) {
    let ws = workspace(&*stores[0], "ws").await;
    let state = ensure(&*stores[0], &ws, "raced").await;
    write(
        &*stores[0],
        &ws,
        "raced",
        &write_of(&state.id, "v-base", 1, "lin", "base"),
    )
    .await;
    let results = race(RACERS, |i| {
        let store = pick(&stores, i);
        let ws_id = ws.id.clone();
        let w = write_of(&state.id, &format!("v-{i}"), 2, "lin", &format!("body-{i}"));
        async move {
            let result = store.write_version(&ws_id, "raced", w.clone()).await;
            (w, result)
        }
    })
    .await;
    let winners: Vec<(&VersionWrite, &VersionMeta)> = results
        .iter()
        .filter_map(|(w, r)| match r {
            Ok(WriteOutcome::Created(meta)) => Some((w, meta)),
            _ => None,
        })
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of {RACERS} writes of serial 2 on top of serial 1 must win, got {:?}",
        results.iter().map(|(_, r)| r).collect::<Vec<_>>()
    );
    let (winning_write, winning_meta) = winners[0];
    assert_eq!(winning_meta.version_no, 2);
    for (w, result) in &results {
        if w.version_id != winning_write.version_id {
            assert!(
                matches!(result, Err(Error::Conflict(_))),
                "write {:?} should have lost with Conflict, got {result:?}",
                w.version_id
            );
        }
    }
    for store in &stores {
        assert_eq!(
            versions(&**store, &state.id).await.len(),
            2,
            "exactly one version was added"
        );
        let (meta, body) = ok(store.current_body(&ws.id, "raced").await, "current_body").unwrap();
        assert_eq!(&meta, winning_meta);
        assert!(
            body == winning_write.sealed,
            "the winner's bytes are current"
        );
    }
}

async fn ensure_race(stores: [Arc<dyn Store>; 2]) {
    let ws = workspace(&*stores[0], "ws").await;
    let results = race(RACERS, |i| {
        let store = pick(&stores, i);
        let ws_id = ws.id.clone();
        async move { store.ensure_state(&ws_id, "raced", at(i as i64)).await }
    })
    .await;
    let ids: HashSet<String> = results
        .into_iter()
        .map(|r| ok(r, "concurrent ensure_state").id)
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "all concurrent ensure_state calls see one state"
    );
    for store in &stores {
        assert_eq!(
            ok(
                store.list_states(&ws.id, &StateFilter::default()).await,
                "list_states"
            )
            .len(),
            1
        );
    }
}

pub async fn concurrent_locks_exactly_one_wins(store: Arc<dyn Store>) {
    lock_race([store.clone(), store]).await;
}

pub async fn concurrent_writes_exactly_one_wins(store: Arc<dyn Store>) {
    write_race([store.clone(), store]).await;
}

pub async fn concurrent_ensure_yields_one_state(store: Arc<dyn Store>) {
    ensure_race([store.clone(), store]).await;
}

// ---- two stores on one database (two statehouse processes) -----------------------------------

pub async fn two_stores_see_each_others_changes(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    assert_eq!(
        ok(peer.workspace_by_name("ws").await, "peer workspace_by_name"),
        Some(ws.clone()),
        "the peer sees the workspace"
    );
    let state = ensure(&*peer, &ws, "net").await;
    let w = write_of(&state.id, "v-1", 1, "lin", "a");
    write(&*store, &ws, "net", &w).await;
    let (_, body) = ok(peer.current_body(&ws.id, "net").await, "peer current_body")
        .expect("the peer sees the write");
    assert!(body == w.sealed);
    ok(
        peer.lock_state(&ws.id, "net", &lock_request("L1", "tok-a", at(1)))
            .await,
        "peer lock_state",
    );
    let mut blocked = write_of(&state.id, "v-2", 2, "lin", "b");
    expect_locked(
        store.write_version(&ws.id, "net", blocked.clone()).await,
        "writing through one store while the other holds the lock",
    );
    blocked.lock_id = Some("L1".into());
    write(&*store, &ws, "net", &blocked).await;
    ok(
        store
            .unlock_state(&ws.id, "net", &unlock_request(Some("L1"), "tok-a", false))
            .await,
        "unlock_state",
    );
    assert_eq!(live(&*peer, &ws, "net").await.lock, None);
    assert!(ok(peer.claim_flag("once", T0).await, "claim_flag"));
    assert!(!ok(store.claim_flag("once", T0).await, "claim_flag"));
}

pub async fn two_stores_concurrent_locks_exactly_one_wins(
    store: Arc<dyn Store>,
    peer: Arc<dyn Store>,
) {
    lock_race([store, peer]).await;
}

pub async fn two_stores_concurrent_writes_exactly_one_wins(
    store: Arc<dyn Store>,
    peer: Arc<dyn Store>,
) {
    write_race([store, peer]).await;
}

pub async fn two_stores_concurrent_ensure_yields_one_state(
    store: Arc<dyn Store>,
    peer: Arc<dyn Store>,
) {
    ensure_race([store, peer]).await;
}
