//! Listings of a bucket (ListObjectsV2 and v1): stored rows and the lock files of locked
//! stacks, merged in key order and folded by the delimiter.

use std::collections::VecDeque;

use super::Services;
use super::stacks::lock_record;
use crate::Result;
use crate::access::{Principal, Role};
use crate::model::StateFilter;
use crate::objects::{
    Fold, Folder, ListPage, ListQuery, ObjectRecord, PULUMI_STATE_PREFIX, prefix_end,
};

/// Most keys in one page, as S3.
pub const MAX_KEYS: usize = 1000;
const LOCKS_ROOT: &str = ".pulumi/locks/";

impl Services {
    /// One page of the bucket's keys under `query.prefix` after `query.after`.
    pub async fn object_list(
        &self,
        who: &Principal,
        bucket: &str,
        query: &ListQuery,
    ) -> Result<ListPage> {
        let workspace = self
            .bucket(who, bucket, Role::Viewer, "listing a bucket")
            .await?;
        let to = prefix_end(&query.prefix);
        // Resuming after a common prefix skips every key under it.
        let (mut from, mut after) = match query.after.as_deref() {
            Some(a) if resumes_after_prefix(query, a) => (prefix_end(a).unwrap_or_default(), None),
            Some(a) if a >= query.prefix.as_str() => (query.prefix.clone(), Some(a.to_owned())),
            Some(_) => (query.prefix.clone(), None),
            None => (query.prefix.clone(), None),
        };
        let mut locks = self.lock_files(&workspace.id, query).await?;
        let mut folder = Folder::new(query.max_keys.clamp(1, MAX_KEYS));
        let batch = i64::try_from(query.max_keys.clamp(1, MAX_KEYS) + 1).unwrap_or(1001);
        'pages: loop {
            let rows = self
                .store
                .list_objects(&workspace.id, &from, after.as_deref(), to.as_deref(), batch)
                .await?;
            let exhausted = rows.len() < usize::try_from(batch).unwrap_or(usize::MAX);
            let last_row = rows.last().map(|r| r.key.clone());
            let mut rows: VecDeque<ObjectRecord> = rows.into();
            loop {
                let take_lock = match (locks.front(), rows.front()) {
                    (Some(l), Some(r)) => l.key < r.key,
                    (Some(l), None) => exhausted || last_row.as_ref().is_some_and(|k| l.key < *k),
                    (None, _) => false,
                };
                let next = if take_lock {
                    locks.pop_front()
                } else {
                    rows.pop_front()
                };
                let Some(next) = next else { break };
                if next.key < from || after.as_ref().is_some_and(|a| next.key <= *a) {
                    continue;
                }
                match folder.push(query, next) {
                    Fold::Next => {}
                    Fold::Full => break 'pages,
                    Fold::SkipPrefix(prefix) => {
                        from = prefix_end(&prefix).unwrap_or_default();
                        after = None;
                        continue 'pages;
                    }
                }
            }
            match (exhausted, last_row) {
                (false, Some(last)) => after = Some(last),
                _ => break,
            }
        }
        Ok(folder.finish())
    }

    /// The lock files of the workspace's locked stacks that the listing's range holds, in
    /// key order (few: one per locked stack).
    async fn lock_files(
        &self,
        workspace_id: &str,
        query: &ListQuery,
    ) -> Result<VecDeque<ObjectRecord>> {
        let overlaps =
            query.prefix.starts_with(LOCKS_ROOT) || LOCKS_ROOT.starts_with(&query.prefix);
        if !overlaps {
            return Ok(VecDeque::new());
        }
        let filter = StateFilter {
            name_prefix: Some(PULUMI_STATE_PREFIX.into()),
            locked: Some(true),
            ..StateFilter::default()
        };
        let states = self.store.list_states(workspace_id, &filter).await?;
        let mut files: Vec<ObjectRecord> = states
            .iter()
            .filter_map(|s| lock_record(&s.name, s.lock.as_ref()?))
            .filter(|r| r.key.starts_with(&query.prefix))
            .collect();
        files.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(files.into())
    }

    /// The buckets `who` may read: its workspaces.
    pub async fn buckets(&self, who: &Principal) -> Result<Vec<crate::model::Workspace>> {
        Ok(self
            .list_workspaces(who)
            .await?
            .into_iter()
            .filter(|(_, role)| *role >= Role::Viewer)
            .map(|(ws, _)| ws)
            .collect())
    }
}

/// Whether `after` is a common prefix of this listing (a page that ended on one).
fn resumes_after_prefix(query: &ListQuery, after: &str) -> bool {
    let Some(delimiter) = query.delimiter.as_deref().filter(|d| !d.is_empty()) else {
        return false;
    };
    after
        .strip_prefix(query.prefix.as_str())
        .is_some_and(|rest| {
            rest.ends_with(delimiter) && rest.find(delimiter) == Some(rest.len() - delimiter.len())
        })
}
