//! The resource search index: replaced with each version, appearance kept, deleted states
//! hidden until restored, access, pages, and states that could not be indexed. Matches per field
//! are in `search_fields.rs`.

use std::collections::HashSet;
use std::sync::Arc;

use statehouse_core::clock::Timestamp;
use statehouse_core::model::{StateFilter, VersionWrite, Workspace};
use statehouse_core::store::Store;
use statehouse_core::store::search::{
    FieldMatch, MatchMode, NotIndexedReason, ResourceHit, ResourceSearch, SearchField,
    VersionResources,
};
use statehouse_core::tfstate::{IdentifyingAttributes, IndexKey, IndexedResource, Mode};

use crate::search_fields::seed_fields;
use crate::{at, ensure, ok, versions, workspace, write, write_of};

pub(crate) const AWS: &str = "provider[\"registry.terraform.io/hashicorp/aws\"]";
pub(crate) const GOOGLE: &str = "provider[\"registry.terraform.io/hashicorp/google\"]";

/// An instance `module.type.name[key]` with the given identifying attributes.
pub(crate) fn instance(
    module: &str,
    resource_type: &str,
    name: &str,
    key: Option<IndexKey>,
    ids: IdentifyingAttributes,
) -> IndexedResource {
    let mode = if resource_type.starts_with("data.") {
        Mode::Data
    } else {
        Mode::Managed
    };
    let resource_type = resource_type.trim_start_matches("data.");
    let address = statehouse_core::tfstate::instance_address(
        Some(module),
        mode,
        resource_type,
        name,
        key.as_ref(),
    );
    IndexedResource {
        address,
        mode,
        resource_type: resource_type.into(),
        name: name.into(),
        module: module.into(),
        provider: if resource_type.starts_with("google") {
            GOOGLE.into()
        } else {
            AWS.into()
        },
        index_key: key,
        ids,
    }
}

fn ids(id: &str) -> IdentifyingAttributes {
    IdentifyingAttributes {
        id: Some(id.into()),
        ..Default::default()
    }
}

pub(crate) fn indexed_write(
    state_id: &str,
    version_id: &str,
    serial: i64,
    when: Timestamp,
    resources: Vec<IndexedResource>,
) -> VersionWrite {
    VersionWrite {
        at: when,
        resources: VersionResources::Indexed(resources.into()),
        ..write_of(state_id, version_id, serial, "lin", version_id)
    }
}

pub(crate) fn search_in(
    workspaces: &[&Workspace],
    field: SearchField,
    value: &str,
    mode: MatchMode,
) -> ResourceSearch {
    ResourceSearch::new(
        workspaces.iter().map(|w| w.id.clone()).collect(),
        vec![FieldMatch {
            field,
            value: value.into(),
        }],
        mode,
        None,
        1000,
    )
}

pub(crate) async fn run(store: &dyn Store, search: &ResourceSearch) -> Vec<ResourceHit> {
    ok(store.search_resources(search).await, "search_resources")
}

pub(crate) async fn addresses(store: &dyn Store, search: &ResourceSearch) -> Vec<String> {
    let mut found: Vec<String> = run(store, search)
        .await
        .into_iter()
        .map(|h| format!("{}:{}", h.state_name, h.address))
        .collect();
    found.sort();
    found
}

pub(crate) fn sorted(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

pub async fn search_index_follows_the_current_version(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let a = instance("", "aws_instance", "a", None, ids("i-a"));
    let b1 = instance("", "aws_instance", "b", None, ids("i-b-old"));
    let b2 = instance("", "aws_instance", "b", None, ids("i-b-new"));
    let c = instance("", "aws_instance", "c", None, ids("i-c"));
    let w1 = indexed_write(&state.id, "v-1", 1, at(100), vec![a.clone(), b1]);
    let v1 = write(&*store, &ws, "net", &w1).await;
    assert_eq!(v1.resource_count, Some(2));
    let by_type = search_in(&[&ws], SearchField::Type, "aws_instance", MatchMode::Exact);
    assert_eq!(
        addresses(&*store, &by_type).await,
        sorted(&["net:aws_instance.a", "net:aws_instance.b"])
    );

    let w2 = indexed_write(&state.id, "v-2", 2, at(200), vec![b2, c]);
    write(&*store, &ws, "net", &w2).await;
    let hits = run(&*store, &by_type).await;
    assert_eq!(hits.len(), 2, "a is gone, c came: {hits:#?}");
    let b = hits.iter().find(|h| h.address == "aws_instance.b").unwrap();
    assert_eq!(
        (b.appeared_version_no, b.appeared_at, b.version_no),
        (1, at(100), 2),
        "b keeps when it appeared, though its id changed"
    );
    assert_eq!(b.attributes.id.as_deref(), Some("i-b-new"));
    assert_eq!(b.state_id, state.id);
    assert_eq!(
        (b.workspace_id.as_str(), b.workspace_name.as_str()),
        (ws.id.as_str(), "ws")
    );
    let c = hits.iter().find(|h| h.address == "aws_instance.c").unwrap();
    assert_eq!((c.appeared_version_no, c.appeared_at), (2, at(200)));
    let old_id = search_in(&[&ws], SearchField::Id, "i-b-old", MatchMode::Exact);
    assert!(
        run(&*store, &old_id).await.is_empty(),
        "the old id is not indexed any more"
    );
    let new_id = search_in(&[&ws], SearchField::Id, "i-b-new", MatchMode::Exact);
    assert_eq!(run(&*store, &new_id).await.len(), 1);

    // An identical snapshot stores nothing, so it changes nothing in the index either.
    let same = VersionWrite {
        resources: VersionResources::Indexed(vec![a].into()),
        ..w2.clone()
    };
    ok(
        store.write_version(&ws.id, "net", same).await,
        "identical write",
    );
    assert_eq!(run(&*store, &by_type).await.len(), 2);

    // An address that leaves and comes back appears anew.
    let w3 = indexed_write(&state.id, "v-3", 3, at(300), vec![]);
    let v3 = write(&*store, &ws, "net", &w3).await;
    assert_eq!(v3.resource_count, Some(0));
    assert!(run(&*store, &by_type).await.is_empty());
    let again = instance("", "aws_instance", "c", None, ids("i-c"));
    write(
        &*store,
        &ws,
        "net",
        &indexed_write(&state.id, "v-4", 4, at(400), vec![again]),
    )
    .await;
    let hits = run(&*store, &by_type).await;
    assert_eq!(
        (hits[0].appeared_version_no, hits[0].appeared_at),
        (4, at(400))
    );

    // Versions carry their resource count.
    let counts: Vec<Option<i64>> = versions(&*store, &state.id)
        .await
        .iter()
        .map(|v| v.resource_count)
        .collect();
    assert_eq!(counts, vec![Some(1), Some(0), Some(2), Some(2)]);
    let listed = ok(
        store.list_states(&ws.id, &StateFilter::default()).await,
        "list_states",
    );
    assert_eq!(listed[0].current.as_ref().unwrap().resource_count, Some(1));
}

pub async fn search_sees_only_the_given_workspaces(store: Arc<dyn Store>) {
    let mine = workspace(&*store, "mine").await;
    let theirs = workspace(&*store, "theirs").await;
    seed_fields(&*store, &mine).await;
    seed_fields(&*store, &theirs).await;
    let both = search_in(
        &[&mine, &theirs],
        SearchField::Id,
        "i-101",
        MatchMode::Exact,
    );
    assert_eq!(run(&*store, &both).await.len(), 2);
    let only_mine = search_in(&[&mine], SearchField::Id, "i-101", MatchMode::Exact);
    let hits = run(&*store, &only_mine).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].workspace_name, "mine");
    let none = search_in(&[], SearchField::Id, "i-101", MatchMode::Exact);
    assert!(
        run(&*store, &none).await.is_empty(),
        "no readable workspace, no results"
    );
    let (count, _) = ok(store.unindexed_states(&[], 10).await, "unindexed_states");
    assert_eq!(count, 0);
}

/// Pages through `search` `page` hits at a time; every hit exactly once, in one order.
async fn all_pages(store: &dyn Store, mut search: ResourceSearch, page: i64) -> Vec<ResourceHit> {
    let everything = run(store, &search).await;
    search.limit = page;
    let mut seen = Vec::new();
    loop {
        let hits = run(store, &search).await;
        assert!(hits.len() as i64 <= page);
        let Some(last) = hits.last() else { break };
        search.after = Some(last.position.clone());
        seen.extend(hits);
    }
    let ids = |hits: &[ResourceHit]| {
        hits.iter()
            .map(|h| (h.state_id.clone(), h.address.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&seen),
        ids(&everything),
        "pages put together are the one-shot result, in order"
    );
    let distinct: HashSet<_> = ids(&seen).into_iter().collect();
    assert_eq!(distinct.len(), seen.len(), "no hit twice");
    seen
}

pub async fn search_pages_resume_exactly(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let mut resources = Vec::new();
    for i in 0..23 {
        // Equal types and names across many rows: the row number breaks ties.
        let ids = IdentifyingAttributes {
            id: Some(format!("i-{:03}", i % 7)),
            arn: Some(format!("i-{:03}", (i * 5) % 11)),
            name: (i % 3 == 0).then(|| format!("i-{:03}", i)),
            self_link: None,
        };
        resources.push(instance(
            "",
            "aws_instance",
            "n",
            Some(IndexKey::Int(i)),
            ids,
        ));
    }
    for name in ["s1", "s2"] {
        let state = ensure(&*store, &ws, name).await;
        write(
            &*store,
            &ws,
            name,
            &indexed_write(&state.id, &format!("{name}-1"), 1, at(1), resources.clone()),
        )
        .await;
    }
    for page in [1, 4, 10] {
        let hits = all_pages(
            &*store,
            search_in(&[&ws], SearchField::Type, "aws_instance", MatchMode::Exact),
            page,
        )
        .await;
        assert_eq!(hits.len(), 46);
        let hits = all_pages(
            &*store,
            search_in(&[&ws], SearchField::Mode, "managed", MatchMode::Exact),
            page,
        )
        .await;
        assert_eq!(hits.len(), 46);
        let hits = all_pages(
            &*store,
            search_in(&[&ws], SearchField::Id, "i-00", MatchMode::Prefix),
            page,
        )
        .await;
        assert_eq!(hits.len(), 46);
        // Any attribute: every instance matches through several attributes, listed once.
        let hits = all_pages(
            &*store,
            search_in(&[&ws], SearchField::Any, "i-0", MatchMode::Prefix),
            page,
        )
        .await;
        assert_eq!(hits.len(), 46);
        let hits = all_pages(
            &*store,
            search_in(&[&ws], SearchField::Any, "i-003", MatchMode::Exact),
            page,
        )
        .await;
        // id i-003: i ∈ {3,10,17}; arn i-003: 5i ≡ 3 (mod 11) → i ∈ {5,16}; name i-003: i = 3.
        assert_eq!(hits.len(), 10);
    }
}

pub async fn search_hides_deleted_states_until_restored(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "net").await;
    let w = indexed_write(
        &state.id,
        "v-1",
        1,
        at(1),
        vec![instance("", "aws_vpc", "main", None, ids("vpc-1"))],
    );
    write(&*store, &ws, "net", &w).await;
    let by_id = search_in(&[&ws], SearchField::Id, "vpc-1", MatchMode::Exact);
    assert_eq!(run(&*store, &by_id).await.len(), 1);
    assert!(ok(
        store.delete_state(&ws.id, "net", "admin", at(2)).await,
        "delete"
    ));
    assert!(
        run(&*store, &by_id).await.is_empty(),
        "deleted states are not searched"
    );
    assert!(ok(
        store.restore_state(&ws.id, &state.id, at(3)).await,
        "restore"
    ));
    let hits = run(&*store, &by_id).await;
    assert_eq!(hits.len(), 1, "restore brings the state's resources back");
    assert_eq!(
        (hits[0].appeared_version_no, hits[0].appeared_at),
        (1, at(1))
    );

    // A new state under the same name while the old one is deleted: only the live one matches.
    assert!(ok(
        store.delete_state(&ws.id, "net", "admin", at(4)).await,
        "delete"
    ));
    let fresh = ensure(&*store, &ws, "net").await;
    let w = indexed_write(
        &fresh.id,
        "v-new",
        1,
        at(5),
        vec![instance("", "aws_vpc", "main", None, ids("vpc-1"))],
    );
    write(&*store, &ws, "net", &w).await;
    let hits = run(&*store, &by_id).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].state_id, fresh.id);

    assert!(ok(store.purge_state(&ws.id, &state.id).await, "purge"));
    let hits = run(&*store, &by_id).await;
    assert_eq!(
        hits.len(),
        1,
        "purging the old state leaves the live one's rows"
    );
    assert_eq!(hits[0].state_id, fresh.id);
    assert!(ok(
        store.delete_state(&ws.id, "net", "admin", at(6)).await,
        "delete"
    ));
    assert!(ok(store.purge_state(&ws.id, &fresh.id).await, "purge"));
    assert!(run(&*store, &by_id).await.is_empty());
    // With its states purged the workspace is empty; deleting it proves no index row holds on.
    assert!(ok(store.delete_workspace(&ws.id).await, "delete_workspace"));
}

pub async fn unindexed_states_are_listed_until_indexed(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let other = workspace(&*store, "other").await;
    let sealed = ensure(&*store, &ws, "sealed").await;
    let plain = ensure(&*store, &ws, "plain").await;
    let elsewhere = ensure(&*store, &other, "elsewhere").await;
    write(
        &*store,
        &ws,
        "plain",
        &indexed_write(
            &plain.id,
            "p-1",
            1,
            at(1),
            vec![instance("", "aws_vpc", "main", None, ids("vpc-1"))],
        ),
    )
    .await;
    let encrypted = VersionWrite {
        client_encrypted: true,
        resources: VersionResources::NotIndexed(NotIndexedReason::ClientEncrypted),
        ..indexed_write(&sealed.id, "s-1", 1, at(2), vec![])
    };
    let v = write(&*store, &ws, "sealed", &encrypted).await;
    assert_eq!(v.resource_count, None);
    let unreadable = VersionWrite {
        resources: VersionResources::NotIndexed(NotIndexedReason::Unreadable),
        ..indexed_write(&elsewhere.id, "e-1", 1, at(3), vec![])
    };
    write(&*store, &other, "elsewhere", &unreadable).await;

    let (count, states) = ok(
        store
            .unindexed_states(std::slice::from_ref(&ws.id), 10)
            .await,
        "unindexed",
    );
    assert_eq!(count, 1);
    assert_eq!(states[0].state_name, "sealed");
    assert_eq!(states[0].state_id, sealed.id);
    assert_eq!(states[0].workspace_name, "ws");
    assert_eq!(states[0].reason, NotIndexedReason::ClientEncrypted);
    let (count, states) = ok(
        store
            .unindexed_states(&[ws.id.clone(), other.id.clone()], 1)
            .await,
        "unindexed",
    );
    assert_eq!(count, 2, "the count covers every readable workspace");
    assert_eq!(states.len(), 1, "the list stops at the limit");
    assert_eq!(states[0].workspace_name, "other");
    assert_eq!(states[0].reason, NotIndexedReason::Unreadable);

    // A state going from indexed to encrypted loses its rows.
    let encrypted_now = VersionWrite {
        client_encrypted: true,
        resources: VersionResources::NotIndexed(NotIndexedReason::ClientEncrypted),
        ..indexed_write(&plain.id, "p-2", 2, at(4), vec![])
    };
    write(&*store, &ws, "plain", &encrypted_now).await;
    let by_id = search_in(&[&ws], SearchField::Id, "vpc-1", MatchMode::Exact);
    assert!(run(&*store, &by_id).await.is_empty());
    let (count, _) = ok(
        store
            .unindexed_states(std::slice::from_ref(&ws.id), 10)
            .await,
        "unindexed",
    );
    assert_eq!(count, 2);

    // Readable again: indexed, no longer listed.
    write(
        &*store,
        &ws,
        "sealed",
        &indexed_write(
            &sealed.id,
            "s-2",
            2,
            at(5),
            vec![instance("", "aws_vpc", "other", None, ids("vpc-2"))],
        ),
    )
    .await;
    let (count, states) = ok(
        store
            .unindexed_states(std::slice::from_ref(&ws.id), 10)
            .await,
        "unindexed",
    );
    assert_eq!(count, 1);
    assert_eq!(states[0].state_name, "plain");
    // Deleted states are not listed.
    assert!(ok(
        store.delete_state(&ws.id, "plain", "admin", at(6)).await,
        "delete"
    ));
    let (count, states) = ok(
        store
            .unindexed_states(std::slice::from_ref(&ws.id), 10)
            .await,
        "unindexed",
    );
    assert_eq!((count, states.len()), (0, 0));
}

pub async fn search_index_skips_unchanged_resources_yet_never_goes_stale(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "app").await;
    let a = instance("", "aws_instance", "a", None, ids("i-a"));
    let b = instance("", "aws_instance", "b", None, ids("i-b"));
    let by_type = search_in(&[&ws], SearchField::Type, "aws_instance", MatchMode::Exact);
    let store = &*store;
    let put = |no: i64, resources: VersionResources| {
        let w = VersionWrite {
            resources,
            ..indexed_write(&state.id, &format!("v-{no}"), no, at(no), vec![])
        };
        let ws = &ws;
        async move { write(store, ws, "app", &w).await }
    };
    // (address, appeared in version, found at version) of every hit, by address.
    let hits = || async {
        let mut v: Vec<(String, i64, i64)> = run(store, &by_type)
            .await
            .into_iter()
            .map(|h| (h.address, h.appeared_version_no, h.version_no))
            .collect();
        v.sort();
        v
    };
    let both = |appeared: i64, at_version: i64| {
        vec![
            ("aws_instance.a".to_owned(), appeared, at_version),
            ("aws_instance.b".to_owned(), appeared, at_version),
        ]
    };
    let indexed = |r: Vec<IndexedResource>| VersionResources::Indexed(r.into());

    put(1, indexed(vec![a.clone(), b.clone()])).await;
    // Same resources in a new version: the rows stay as they are, found at the new version.
    put(2, indexed(vec![a.clone(), b.clone()])).await;
    assert_eq!(hits().await, both(1, 2));
    // Unreadable in between, then the very same resources again: indexed anew.
    put(
        3,
        VersionResources::NotIndexed(NotIndexedReason::Unreadable),
    )
    .await;
    assert!(hits().await.is_empty());
    put(4, indexed(vec![a.clone(), b.clone()])).await;
    assert_eq!(hits().await, both(4, 4));
    // A malformed state naming one address twice is indexed once, write after write.
    let a_again = instance("", "aws_instance", "a", None, ids("i-a-2"));
    for no in [5, 6] {
        put(no, indexed(vec![a.clone(), a_again.clone(), b.clone()])).await;
        assert_eq!(hits().await, both(4, no));
    }
}

/// A state's resources, a page at a time in address order, filtered by a part of the address
/// (case-insensitive, `%` and `_` taken literally); other states' resources never show.
pub async fn state_resources_page_in_address_order(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let state = ensure(&*store, &ws, "app").await;
    let other = ensure(&*store, &ws, "other").await;
    let names = ["web_b", "web_a", "db", "cache_1", "web%x"];
    let resources = names
        .iter()
        .map(|n| instance("", "aws_instance", n, None, ids(&format!("i-{n}"))))
        .collect();
    write(
        &*store,
        &ws,
        "app",
        &indexed_write(&state.id, "v-1", 1, at(100), resources),
    )
    .await;
    let elsewhere = vec![instance("", "aws_instance", "web_z", None, ids("i-z"))];
    write(
        &*store,
        &ws,
        "other",
        &indexed_write(&other.id, "v-o", 1, at(100), elsewhere),
    )
    .await;

    let page = |contains: Option<&'static str>,
                after: Option<statehouse_core::store::search::SearchPosition>,
                limit| {
        let store = store.clone();
        let state_id = state.id.clone();
        async move {
            ok(
                store
                    .state_resources(&state_id, contains, after.as_ref(), limit)
                    .await,
                "state_resources",
            )
        }
    };
    let first = page(None, None, 3).await;
    let addresses: Vec<&str> = first.iter().map(|h| h.address.as_str()).collect();
    assert_eq!(
        addresses,
        [
            "aws_instance.cache_1",
            "aws_instance.db",
            "aws_instance.web%x"
        ]
    );
    assert_eq!(first[0].state_name, "app");
    assert_eq!(first[0].version_no, 1);
    let rest = page(None, Some(first[2].position.clone()), 3).await;
    let addresses: Vec<&str> = rest.iter().map(|h| h.address.as_str()).collect();
    assert_eq!(addresses, ["aws_instance.web_a", "aws_instance.web_b"]);

    let web = page(Some("WEB_"), None, 10).await;
    let addresses: Vec<&str> = web.iter().map(|h| h.address.as_str()).collect();
    assert_eq!(
        addresses,
        ["aws_instance.web_a", "aws_instance.web_b"],
        "`_` is literal"
    );
    let percent = page(Some("%"), None, 10).await;
    assert_eq!(percent.len(), 1, "`%` is literal: {percent:#?}");
    assert!(page(Some("nothing"), None, 10).await.is_empty());

    // A deleted state shows nothing.
    ok(
        store.delete_state(&ws.id, "app", "admin", at(200)).await,
        "delete_state",
    );
    assert!(page(None, None, 10).await.is_empty());
}
