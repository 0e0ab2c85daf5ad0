//! Two processes starting on a brand-new database file at the same moment both come up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use statehouse_core::store::Store;
use statehouse_core::store::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_opens_all_succeed() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { statehouse_store_sqlite::open(&path).await })
            })
            .collect();
        for open in opens {
            let store = open
                .await
                .unwrap()
                .expect("every concurrent first open succeeds");
            store.ping().await.unwrap();
            assert!(store.list_workspaces().await.unwrap().is_empty());
        }
    }
}
