//! S3 objects: blob rows and their chunks, stack files that follow their state's current
//! version, pinned copies spared by retention, listings in bytewise order, deletes that free
//! unused blobs, multipart uploads completed by moving chunks.

use std::sync::Arc;

use statehouse_core::clock::Timestamp;
use statehouse_core::objects::{NewBlob, ObjectBody, ObjectMeta, ObjectWrite, SealedChunk};
use statehouse_core::store::Store;
use statehouse_core::store::objects::{Part, Upload};

use crate::{at, ensure, ok, sealed, workspace, write, write_of};

fn blob(id: &str, chunks: &[&str]) -> NewBlob {
    NewBlob {
        id: id.into(),
        size: 10 * chunks.len() as i64,
        chunks: chunks
            .iter()
            .enumerate()
            .map(|(i, tag)| SealedChunk {
                id: format!("{id}-c{i}"),
                seq: i as i64,
                size: 10,
                sealed: sealed(tag),
            })
            .collect(),
    }
}

/// An upload of the key `big`, started at `at(1)`.
fn upload(id: &str, workspace_id: &str) -> Upload {
    Upload {
        id: id.into(),
        workspace_id: workspace_id.into(),
        key: "big".into(),
        content_type: None,
        meta: "{}".into(),
        created_at: at(1),
        created_by: "laptop".into(),
    }
}

/// Stores a part as the S3 endpoint does: its blob's chunks one by one as they are sealed,
/// then the part.
async fn put_part(
    store: &dyn Store,
    workspace_id: &str,
    upload_id: &str,
    part: &Part,
    tags: &[&str],
) -> statehouse_core::Result<bool> {
    let blob = blob(&part.blob_id, tags);
    for chunk in &blob.chunks {
        store
            .put_blob_chunk(workspace_id, &blob.id, chunk, part.at)
            .await?;
    }
    store
        .put_part(upload_id, part, blob.chunks.len() as i64)
        .await
}

fn row(key: &str, body: ObjectBody, when: Timestamp) -> ObjectWrite {
    ObjectWrite {
        key: key.into(),
        body,
        size: 20,
        etag: format!("etag-{key}"),
        content_type: Some("text/plain".into()),
        meta: ObjectMeta {
            user: vec![("owner".into(), "ops".into())],
            ..ObjectMeta::default()
        },
        at: when,
        by: "laptop".into(),
    }
}

fn blob_body(id: &str) -> ObjectBody {
    ObjectBody::Blob { blob_id: id.into() }
}

pub async fn objects_keep_blobs_and_free_them(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let put = row("a/one", blob_body("b1"), at(5));
    let stored = ok(
        store
            .put_object(&ws.id, &put, Some(blob("b1", &["x", "y"])))
            .await,
        "put_object",
    );
    assert_eq!(stored.key, "a/one");
    assert_eq!(stored.etag, "etag-a/one");
    assert_eq!(stored.meta.user, vec![("owner".into(), "ops".into())]);
    let first = ok(store.blob_chunk("b1", 0).await, "blob_chunk").expect("chunk 0");
    assert_eq!(
        first.sealed,
        sealed("x"),
        "a chunk's sealed bytes come back as stored"
    );
    assert!(ok(store.blob_chunk("b1", 1).await, "blob_chunk").is_some());
    assert!(ok(store.blob_chunk("b1", 2).await, "blob_chunk").is_none());

    // A copy shares the blob: deleting the original keeps the bytes for the copy.
    let copy = row("a/two", blob_body("ignored"), at(6));
    let copied = ok(
        store
            .copy_object_journaled(&ws.id, "a/one", &copy, &|_| Default::default())
            .await,
        "copy",
    )
    .expect("source exists");
    assert_eq!(copied.body, blob_body("b1"));
    assert_eq!(copied.etag, "etag-a/one", "a copy keeps the source's etag");
    assert!(ok(store.delete_object(&ws.id, "a/one").await, "delete").is_some());
    assert!(ok(store.blob_chunk("b1", 0).await, "blob_chunk").is_some());
    assert!(ok(store.delete_object(&ws.id, "a/two").await, "delete").is_some());
    assert!(
        ok(store.blob_chunk("b1", 0).await, "blob_chunk").is_none(),
        "the last reference gone, the blob goes"
    );
    assert!(ok(store.delete_object(&ws.id, "a/two").await, "delete again").is_none());
    assert!(
        ok(
            store
                .copy_object_journaled(&ws.id, "missing", &copy, &|_| Default::default())
                .await,
            "copy"
        )
        .is_none()
    );

    // Replacing a key frees its old blob.
    ok(
        store
            .put_object(
                &ws.id,
                &row("k", blob_body("b2"), at(7)),
                Some(blob("b2", &["p"])),
            )
            .await,
        "put",
    );
    ok(
        store
            .put_object(
                &ws.id,
                &row("k", blob_body("b3"), at(8)),
                Some(blob("b3", &["q"])),
            )
            .await,
        "put again",
    );
    assert!(ok(store.blob_chunk("b2", 0).await, "old").is_none());
    assert_eq!(
        ok(store.object(&ws.id, "k").await, "object").map(|o| o.body),
        Some(blob_body("b3"))
    );
    let other = workspace(&*store, "other").await;
    assert!(
        ok(store.object(&other.id, "k").await, "object").is_none(),
        "a bucket sees only its own keys"
    );
}

pub async fn objects_list_in_bytewise_order(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let keys = ["p/b", "p/a", "p/B", "p/é", "p/a/x", "q", "p0"];
    for (i, key) in keys.iter().enumerate() {
        let id = format!("blob{i}");
        ok(
            store
                .put_object(
                    &ws.id,
                    &row(key, blob_body(&id), at(1)),
                    Some(blob(&id, &["z"])),
                )
                .await,
            "put",
        );
    }
    let listed = |from: &'static str, after: Option<&'static str>, to: Option<&'static str>| {
        let store = store.clone();
        let ws = ws.id.clone();
        async move {
            ok(store.list_objects(&ws, from, after, to, 100).await, "list")
                .into_iter()
                .map(|o| o.key)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed("p/", None, Some("p0")).await,
        vec!["p/B", "p/a", "p/a/x", "p/b", "p/é"],
        "bytewise: upper case first, multi-byte last"
    );
    assert_eq!(
        listed("p/", Some("p/a/x"), Some("p0")).await,
        vec!["p/b", "p/é"]
    );
    assert_eq!(
        ok(store.list_objects(&ws.id, "", None, None, 2).await, "limit").len(),
        2
    );
}

pub async fn stack_files_follow_their_state_and_pin_copies(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "pulumi/web/dev").await;
    let stack = ObjectBody::Version {
        state_id: state.id.clone(),
        version_no: None,
    };
    let key = ".pulumi/stacks/web/dev.json";
    ok(
        store
            .put_object(&ws.id, &row(key, stack, at(1)), None)
            .await,
        "put stack row",
    );
    assert!(
        ok(store.object(&ws.id, key).await, "object").is_none(),
        "a stack without a version is absent"
    );
    let first = write_of(&state.id, "v1", 1, "l", "one");
    write(&*store, &ws, "pulumi/web/dev", &first).await;
    let found = ok(store.object(&ws.id, key).await, "object").expect("stack file");
    assert_eq!(
        found.body,
        ObjectBody::Version {
            state_id: state.id.clone(),
            version_no: Some(1)
        }
    );
    assert_eq!(found.etag, first.md5, "the etag is the version's MD5");
    assert_eq!(found.size, first.size);

    let bak = ok(
        store
            .copy_object_journaled(
                &ws.id,
                key,
                &row(".pulumi/stacks/web/dev.json.bak", blob_body("x"), at(3)),
                &|_| Default::default(),
            )
            .await,
        "copy to .bak",
    )
    .expect("copied");
    assert_eq!(
        bak.body,
        ObjectBody::Version {
            state_id: state.id.clone(),
            version_no: Some(1)
        },
        "the copy pins the version the stack file was"
    );
    let mut second = write_of(&state.id, "v2", 2, "l", "two");
    second.at = at(2_000);
    write(&*store, &ws, "pulumi/web/dev", &second).await;
    let mut third = write_of(&state.id, "v3", 3, "l", "three");
    third.at = at(3_000);
    write(&*store, &ws, "pulumi/web/dev", &third).await;
    assert_eq!(
        ok(store.object(&ws.id, key).await, "object").map(|o| o.body),
        Some(ObjectBody::Version {
            state_id: state.id.clone(),
            version_no: Some(3)
        })
    );
    let pruned = ok(
        store.prune_versions(&ws.id, Some(1), None, 100).await,
        "prune",
    );
    assert_eq!(
        pruned, 1,
        "version 2 goes; version 1 is pinned by the .bak copy"
    );
    let bak = ok(
        store
            .object(&ws.id, ".pulumi/stacks/web/dev.json.bak")
            .await,
        "bak",
    );
    assert_eq!(
        bak.map(|o| o.body),
        Some(ObjectBody::Version {
            state_id: state.id.clone(),
            version_no: Some(1)
        })
    );
    assert!(ok(store.version_body(&state.id, 1).await, "v1").is_some());

    ok(
        store
            .delete_state(&ws.id, "pulumi/web/dev", "admin", at(4_000))
            .await,
        "soft delete",
    );
    assert!(
        ok(store.object(&ws.id, key).await, "object").is_none(),
        "a deleted state's stack file is absent"
    );
    assert!(
        ok(
            store
                .object(&ws.id, ".pulumi/stacks/web/dev.json.bak")
                .await,
            "bak"
        )
        .is_some(),
        "a pinned copy outlives the stack's removal"
    );
    ok(
        store.restore_state(&ws.id, &state.id, at(5_000)).await,
        "restore",
    );
    assert!(ok(store.object(&ws.id, key).await, "object").is_some());
}

pub async fn multipart_uploads_complete_by_moving_chunks(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let upload = upload("up1", &ws.id);
    ok(store.create_upload(&upload).await, "create_upload");
    assert_eq!(
        ok(store.upload(&ws.id, "up1").await, "upload"),
        Some(upload.clone())
    );
    let part = |no: i64, blob_id: &str, chunks: i64| Part {
        part_no: no,
        blob_id: blob_id.into(),
        size: 10 * chunks,
        etag: format!("e{no}"),
        meta: "{}".into(),
        at: at(2),
    };
    let s = &*store;
    assert!(ok(
        put_part(s, &ws.id, "up1", &part(1, "p1", 2), &["a", "b"]).await,
        "part 1"
    ));
    assert!(ok(
        put_part(s, &ws.id, "up1", &part(2, "p2", 1), &["c"]).await,
        "part 2"
    ));
    // Part 2 again: the new one replaces it and its blob goes.
    assert!(ok(
        put_part(s, &ws.id, "up1", &part(2, "p2b", 1), &["d"]).await,
        "part 2 again"
    ));
    assert!(ok(store.blob_chunk("p2", 0).await, "replaced part").is_none());
    assert!(!ok(
        put_part(s, &ws.id, "nope", &part(1, "px", 1), &["e"]).await,
        "no upload"
    ));
    // The chunks of a part that found no upload are discarded by whoever sent them.
    ok(store.discard_blob("px").await, "discard");
    assert!(ok(store.blob_chunk("px", 0).await, "discarded").is_none());
    let parts = ok(store.parts("up1").await, "parts");
    assert_eq!(
        parts.iter().map(|p| p.part_no).collect::<Vec<_>>(),
        vec![1, 2]
    );

    let write = ObjectWrite {
        size: 30,
        ..row("big", blob_body("whole"), at(3))
    };
    let stale = vec![part(1, "p1", 2), part(2, "p2", 1)];
    let refused = store
        .complete_upload_journaled(&ws.id, "up1", &stale, &write, &|_| Default::default())
        .await;
    assert!(
        refused.is_err(),
        "a part that changed meanwhile refuses the completion"
    );
    let done = ok(
        store
            .complete_upload_journaled(&ws.id, "up1", &parts, &write, &|_| Default::default())
            .await,
        "complete",
    )
    .expect("upload exists");
    assert_eq!(done.body, blob_body("whole"));
    let chunks: Vec<_> = [0, 1, 2, 3]
        .iter()
        .map(|seq| {
            let store = store.clone();
            async move { store.blob_chunk("whole", *seq).await }
        })
        .collect();
    let mut found = Vec::new();
    for c in chunks {
        found.push(ok(c.await, "chunk").map(|c| c.sealed));
    }
    assert_eq!(
        found,
        vec![
            Some(sealed("a")),
            Some(sealed("b")),
            Some(sealed("d")),
            None
        ],
        "the parts' chunks, in order, are the object's"
    );
    assert!(ok(store.upload(&ws.id, "up1").await, "upload").is_none());
    assert!(ok(store.blob_chunk("p1", 0).await, "part blob").is_none());

    let abandoned = Upload {
        id: "up2".into(),
        created_at: at(10),
        ..upload
    };
    ok(store.create_upload(&abandoned).await, "create");
    ok(
        put_part(s, &ws.id, "up2", &part(1, "q1", 1), &["f"]).await,
        "part",
    );
    assert_eq!(ok(store.stale_uploads(at(11), 10).await, "stale").len(), 1);
    assert!(ok(store.abort_upload(&ws.id, "up2").await, "abort"));
    assert!(!ok(store.abort_upload(&ws.id, "up2").await, "abort again"));
    assert!(ok(store.blob_chunk("q1", 0).await, "aborted part").is_none());
    assert_eq!(ok(store.sweep_blobs(at(1_000_000), 100).await, "sweep"), 0);
}

pub async fn parts_arrive_chunk_by_chunk_and_the_sweep_spares_them_while_they_do(
    store: Arc<dyn Store>,
) {
    let ws = workspace(&*store, "ws").await;
    ok(
        store.create_upload(&upload("up3", &ws.id)).await,
        "create_upload",
    );
    let chunks = blob("slow", &["a", "b", "c"]).chunks;
    let keep = |seq: usize, when: i64| {
        let store = store.clone();
        let (ws, chunk) = (ws.id.clone(), chunks[seq].clone());
        async move { store.put_blob_chunk(&ws, "slow", &chunk, at(when)).await }
    };
    ok(keep(0, 10).await, "chunk 0");
    ok(keep(1, 20).await, "chunk 1");
    // The sweep goes by the last chunk's time: a part still arriving is spared.
    assert_eq!(ok(store.sweep_blobs(at(15), 100).await, "sweep"), 0);
    assert!(ok(store.blob_chunk("slow", 0).await, "spared").is_some());
    // Its chunks stopped coming for longer than the sweep waits: they go, and a part that
    // then arrives whole is refused instead of stored with a hole.
    assert_eq!(ok(store.sweep_blobs(at(25), 100).await, "sweep"), 1);
    ok(keep(2, 30).await, "chunk 2");
    let part = Part {
        part_no: 1,
        blob_id: "slow".into(),
        size: 30,
        etag: "e1".into(),
        meta: "{}".into(),
        at: at(31),
    };
    let refused = store.put_part("up3", &part, 3).await;
    assert!(
        matches!(refused, Err(statehouse_core::Error::Conflict(_))),
        "a part that lost chunks is refused: {refused:?}"
    );
    assert!(ok(store.parts("up3").await, "parts").is_empty());
    ok(store.discard_blob("slow").await, "discard");
    assert!(ok(store.blob_chunk("slow", 2).await, "discarded").is_none());

    // An empty part has no chunk; its blob row comes with the part.
    let empty = Part {
        part_no: 2,
        blob_id: "empty".into(),
        size: 0,
        ..part.clone()
    };
    assert!(ok(store.put_part("up3", &empty, 0).await, "empty part"));
    // A blob a part uses is never discarded.
    ok(store.discard_blob("empty").await, "discard a used blob");
    let whole = ok(
        put_part(&*store, &ws.id, "up3", &part, &["x", "y", "z"]).await,
        "part",
    );
    assert!(whole);
    ok(store.discard_blob("slow").await, "discard a used blob");
    assert!(ok(store.blob_chunk("slow", 2).await, "kept").is_some());
    let parts = ok(store.parts("up3").await, "parts");
    assert_eq!(
        parts
            .iter()
            .map(|p| (p.part_no, p.size))
            .collect::<Vec<_>>(),
        vec![(1, 30), (2, 0)]
    );
    assert_eq!(ok(store.sweep_blobs(at(1_000_000), 100).await, "sweep"), 0);
    assert!(ok(store.abort_upload(&ws.id, "up3").await, "abort"));
}
