//! Fixtures shared by the cases: a fixed time, workspaces, states, sealed bodies, version
//! writes, lock requests, and checks on the outcomes.

use std::fmt::Debug;

use statehouse_core::clock::Timestamp;
use statehouse_core::crypto::SealedBody;
use statehouse_core::model::{
    LockRequest, StateRecord, UnlockRequest, VersionMeta, VersionWrite, Workspace,
    WorkspaceSettings, WriteOutcome,
};
use statehouse_core::service::md5_hex;
use statehouse_core::store::Store;
use statehouse_core::store::search::VersionResources;
use statehouse_core::{Error, Result};

/// A fixed point in time (2023-11-14T22:13:20Z); tests move from it, never from the wall clock.
pub const T0: Timestamp = Timestamp(1_700_000_000_000);

pub(crate) fn at(offset_millis: i64) -> Timestamp {
    T0.plus_millis(offset_millis)
}

pub(crate) fn workspace_value(name: &str) -> Workspace {
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
        resources: VersionResources::Indexed(Default::default()),
    }
}

pub(crate) fn lock_request(id: &str, token_id: &str, when: Timestamp) -> LockRequest {
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

pub(crate) fn unlock_request(id: Option<&str>, token_id: &str, is_admin: bool) -> UnlockRequest {
    UnlockRequest {
        id: id.map(str::to_owned),
        token_id: token_id.to_owned(),
        is_admin,
        at: T0,
    }
}

pub(crate) async fn live(store: &dyn Store, ws: &Workspace, name: &str) -> StateRecord {
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
pub(crate) fn expect_locked<T: Debug>(result: Result<T>, what: &str) -> String {
    match result {
        Err(Error::Locked { holder_info }) => holder_info,
        other => panic!("{what}: expected Error::Locked, got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn expect_forbidden<T: Debug>(result: Result<T>, what: &str) {
    match result {
        Err(Error::Forbidden(_)) => {}
        other => panic!("{what}: expected Error::Forbidden, got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn ok<T>(result: Result<T>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e} ({e:?})"))
}

pub(crate) fn meta_of(w: &VersionWrite, version_no: i64, forced: bool) -> VersionMeta {
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

pub(crate) async fn versions(store: &dyn Store, state_id: &str) -> Vec<VersionMeta> {
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
