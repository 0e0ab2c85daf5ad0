//! Master key bookkeeping: wrapped data keys of every sealed kind (listed by key, replaced by
//! compare and set, the ciphertext untouched) and key check values.

use std::sync::Arc;

use statehouse_core::objects::{NewBlob, ObjectBody, ObjectMeta, ObjectWrite, SealedChunk};

use serde_json::json;
use statehouse_core::access::Role;
use statehouse_core::backups::WorkspaceBackupSettings;
use statehouse_core::sealed::{KeyCheck, KeyFilter, SealedKind, WrappedKeyRef};
use statehouse_core::store::Store;

use crate::backup_fixtures::{database, notifier_value, target};
use crate::s3_keys::{create_s3_key, new_s3_key};
use crate::webhooks::{create, webhook};
use crate::{at, body_of, ensure, ok, sealed, workspace, write, write_of};

/// Creates one record of `kind` sealed under `key_id` (with wrapped bytes naming `tag`) and
/// returns where its wrapped key is. The match is exhaustive: a new kind does not compile
/// until this suite creates records of it.
async fn sealed_record(
    store: &dyn Store,
    kind: SealedKind,
    tag: &str,
    key_id: &str,
) -> WrappedKeyRef {
    let ws = workspace(store, &format!("ws-{tag}")).await;
    let mut secret = sealed(tag);
    secret.key_id = key_id.to_owned();
    let (owner_id, row_id) = match kind {
        SealedKind::State => {
            let state = ensure(store, &ws, "net").await;
            let mut w = write_of(&state.id, &format!("v-{tag}"), 1, "lin", tag);
            w.sealed = secret.clone();
            write(store, &ws, "net", &w).await;
            (state.id, w.version_id)
        }
        SealedKind::Webhook => {
            let mut hook = webhook(&format!("h-{tag}"), &ws.id, &["*"], true);
            hook.secret = secret.clone();
            create(store, &hook).await;
            (ws.id.clone(), hook.id)
        }
        SealedKind::Target => {
            let mut t = target(store, &format!("t-{tag}"), &ws.id, "main").await;
            t.secrets = Some(secret.clone());
            assert!(ok(store.update_target(&t).await, "update_target"));
            (ws.id.clone(), t.id)
        }
        SealedKind::Notifier => {
            let mut n = notifier_value(&format!("n-{tag}"), &ws.id, "ops");
            n.secrets = Some(secret.clone());
            ok(store.create_notifier(&n).await, "create_notifier");
            (ws.id.clone(), n.id)
        }
        SealedKind::Database => {
            // Its target has no secret: only the database's counts.
            let mut t = target(store, &format!("dt-{tag}"), &ws.id, "main").await;
            t.secrets = None;
            assert!(ok(store.update_target(&t).await, "update_target"));
            let mut d = database(store, &format!("d-{tag}"), &ws.id, "app", &t.id).await;
            d.secrets = Some(secret.clone());
            assert!(ok(store.update_database(&d).await, "update_database"));
            (ws.id.clone(), d.id)
        }
        SealedKind::WorkspaceBackupSettings => {
            let settings = WorkspaceBackupSettings {
                workspace_id: ws.id.clone(),
                settings: json!({}),
                secrets: Some(secret.clone()),
                updated_at: at(0),
            };
            ok(store.put_workspace_backup_settings(&settings).await, "put");
            (ws.id.clone(), ws.id.clone())
        }
        SealedKind::S3Chunk => {
            let blob_id = format!("b-{tag}");
            let chunk = SealedChunk {
                id: format!("{blob_id}-c0"),
                seq: 0,
                size: 10,
                sealed: secret.clone(),
            };
            let blob = NewBlob {
                id: blob_id.clone(),
                size: 10,
                chunks: vec![chunk.clone()],
            };
            let write = ObjectWrite {
                key: format!("k-{tag}"),
                body: ObjectBody::Blob { blob_id },
                size: 10,
                etag: "e".into(),
                content_type: None,
                meta: ObjectMeta::default(),
                at: at(0),
                by: "laptop".into(),
            };
            ok(
                store.put_object(&ws.id, &write, Some(blob)).await,
                "put_object",
            );
            (ws.id.clone(), chunk.id)
        }
        SealedKind::S3Key => {
            let mut key = new_s3_key(&format!("k-{tag}"), &ws.id, Role::Editor, 0);
            key.secret = secret.clone();
            let token = create_s3_key(store, &key).await;
            (token.id.clone(), token.id)
        }
    };
    WrappedKeyRef {
        kind,
        owner_id,
        row_id,
        key_id: key_id.to_owned(),
        wrapped_key: secret.wrapped_key,
    }
}

/// The sealed bytes a record of `kind` has now, wrapped key and ciphertext.
async fn stored(store: &dyn Store, r: &WrappedKeyRef) -> (String, Vec<u8>, Vec<u8>) {
    let sealed = match r.kind {
        // Each record's state was made for it: its version is the first.
        SealedKind::State => Some(body_of(store, &r.owner_id, 1).await.1),
        SealedKind::Webhook => {
            ok(store.webhook(&r.owner_id, &r.row_id).await, "webhook").map(|h| h.secret)
        }
        SealedKind::Target => {
            ok(store.target(&r.owner_id, &r.row_id).await, "target").and_then(|t| t.secrets)
        }
        SealedKind::Notifier => {
            ok(store.notifier(&r.owner_id, &r.row_id).await, "notifier").and_then(|n| n.secrets)
        }
        SealedKind::Database => {
            ok(store.database(&r.owner_id, &r.row_id).await, "database").and_then(|d| d.secrets)
        }
        SealedKind::WorkspaceBackupSettings => ok(
            store.workspace_backup_settings(&r.owner_id).await,
            "workspace_backup_settings",
        )
        .and_then(|s| s.secrets),
        SealedKind::S3Chunk => {
            let blob_id = r.row_id.trim_end_matches("-c0");
            ok(store.blob_chunk(blob_id, 0).await, "blob_chunk").map(|c| c.sealed)
        }
        SealedKind::S3Key => {
            let token = ok(store.token_by_id(&r.row_id).await, "token_by_id");
            let access_key_id = token.and_then(|t| t.s3_access_key_id).unwrap_or_default();
            ok(store.s3_key(&access_key_id).await, "s3_key").map(|k| k.secret)
        }
    };
    let sealed = sealed.unwrap_or_else(|| panic!("{:?} {} has no sealed data", r.kind, r.row_id));
    (sealed.key_id, sealed.wrapped_key, sealed.ciphertext)
}

pub async fn wrapped_keys_of_every_sealed_kind_are_listed_and_replaced(store: Arc<dyn Store>) {
    let mut old = Vec::new();
    let mut current = Vec::new();
    for kind in SealedKind::ALL {
        old.push(sealed_record(&*store, kind, &format!("{}-old", kind.as_str()), "key-1").await);
        current
            .push(sealed_record(&*store, kind, &format!("{}-new", kind.as_str()), "key-2").await);
    }
    assert_eq!(
        ok(store.key_ids_in_use().await, "key_ids_in_use"),
        ["key-1", "key-2"],
        "every kind's key ids, once each, sorted"
    );

    for (old, current) in old.iter().zip(&current) {
        let kind = old.kind;
        let not_under = ok(
            store
                .wrapped_keys(kind, KeyFilter::NotUnder("key-2"), 10)
                .await,
            "wrapped_keys",
        );
        assert_eq!(
            not_under,
            std::slice::from_ref(old),
            "{kind:?}: only the record under key-1"
        );
        let under = ok(
            store
                .wrapped_keys(kind, KeyFilter::Under("key-2"), 10)
                .await,
            "wrapped_keys",
        );
        assert_eq!(
            under,
            std::slice::from_ref(current),
            "{kind:?}: only the record under key-2"
        );

        let (_, _, ciphertext) = stored(&*store, old).await;
        let rewrapped = format!("rewrapped-{}", old.row_id).into_bytes();
        assert!(
            ok(
                store.replace_wrapped_key(old, "key-2", &rewrapped).await,
                "replace_wrapped_key"
            ),
            "{kind:?}: a record as described is replaced"
        );
        assert!(
            !ok(
                store.replace_wrapped_key(old, "key-3", b"newer").await,
                "replace_wrapped_key"
            ),
            "{kind:?}: a stale description (compare and set) changes nothing"
        );
        let mut other_bytes = current.clone();
        other_bytes.wrapped_key.push(0);
        assert!(
            !ok(
                store.replace_wrapped_key(&other_bytes, "key-3", b"x").await,
                "replace_wrapped_key"
            ),
            "{kind:?}: same key id, other wrapped bytes: not replaced"
        );
        assert_eq!(
            stored(&*store, old).await,
            ("key-2".to_owned(), rewrapped, ciphertext),
            "{kind:?}: only the wrapped key and its id change"
        );
        assert_eq!(
            stored(&*store, current).await.0,
            "key-2",
            "{kind:?}: other records are untouched"
        );
    }
    for kind in SealedKind::ALL {
        assert!(
            ok(
                store
                    .wrapped_keys(kind, KeyFilter::NotUnder("key-2"), 10)
                    .await,
                "wrapped_keys"
            )
            .is_empty(),
            "{kind:?}: every record moved to key-2"
        );
    }
    assert_eq!(
        ok(store.key_ids_in_use().await, "key_ids_in_use"),
        ["key-2"]
    );
    assert_eq!(
        ok(
            store
                .wrapped_keys(SealedKind::State, KeyFilter::Under("key-2"), 1)
                .await,
            "wrapped_keys"
        )
        .len(),
        1,
        "the limit holds"
    );
}

pub async fn key_checks_are_recorded_once_per_key(store: Arc<dyn Store>) {
    assert!(ok(store.key_checks().await, "key_checks").is_empty());
    let check = |id: &str, value: &[u8], when| KeyCheck {
        key_id: id.to_owned(),
        check_value: value.to_vec(),
        recorded_at: at(when),
    };
    let first = check("k1", &[0, 0xff, 1, 2], 1);
    assert!(ok(store.record_key_check(&first).await, "record"));
    assert!(
        !ok(
            store.record_key_check(&check("k1", b"other", 2)).await,
            "record again"
        ),
        "the first check value of an id stays"
    );
    let second = check("k0", b"zero", 3);
    assert!(ok(store.record_key_check(&second).await, "record"));
    assert_eq!(
        ok(store.key_checks().await, "key_checks"),
        [second, first],
        "by key id, exactly as recorded"
    );
}
