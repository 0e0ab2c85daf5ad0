//! Objects of the S3 endpoint: what a key holds, how Pulumi's keys map onto states, and how a
//! listing folds keys into common prefixes.
//!
//! A bucket is a workspace. Most keys hold a blob (sealed chunks). Two kinds of Pulumi key are
//! states instead: `.pulumi/stacks/<project>/<stack>.json[.gz|.zst]` is the current version of
//! the state `pulumi/<project>/<stack>`, and `.pulumi/locks/organization/<project>/<stack>/
//! <uuid>.json` is that state's lock. A copy of a stack file pins the version it copied.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// The prefix of every state a Pulumi stack is kept as.
pub const PULUMI_STATE_PREFIX: &str = "pulumi/";
const STACKS_DIR: &str = ".pulumi/stacks/";
const LOCKS_DIR: &str = ".pulumi/locks/organization/";
/// The stack file's extensions Pulumi writes: plain, gzip and zstd JSON.
const STACK_EXTENSIONS: [&str; 3] = [".json", ".json.gz", ".json.zst"];

/// Where an object's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectBody {
    /// Sealed chunks, shared by the objects copied from one another.
    Blob { blob_id: String },
    /// A state's version. Written with `None` for a stack file, which follows its state's
    /// current version; read back, it is the version the key resolves to.
    Version {
        state_id: String,
        version_no: Option<i64>,
    },
    /// A lock file: the lock info of the state with this name, as the holder wrote it.
    Lock { state: String },
}

/// What an object carries besides its bytes: returned as it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// `x-amz-meta-*` headers, lower-cased names without the prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// Checksums the client gave and statehouse verified (`crc32`, `crc32c`, `crc64nvme`,
    /// `sha1`, `sha256`; base64), answered when a client asks for checksums.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checksums: Vec<(String, String)>,
}

impl ObjectMeta {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Lenient: a row written by a later release with fields this one does not know still
    /// reads.
    pub fn from_json(text: &str) -> ObjectMeta {
        serde_json::from_str(text).unwrap_or_default()
    }
}

/// One object as listed and as HEAD describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    pub key: String,
    pub size: i64,
    /// Hex MD5 (single part), or `<hex>-<parts>` for a multipart upload; without quotes.
    pub etag: String,
    pub last_modified: Timestamp,
    pub content_type: Option<String>,
    pub meta: ObjectMeta,
    pub body: ObjectBody,
}

/// One chunk of a blob, sealed.
#[derive(Debug, Clone)]
pub struct SealedChunk {
    pub id: String,
    pub seq: i64,
    /// Plaintext bytes in the chunk.
    pub size: i64,
    pub sealed: crate::crypto::SealedBody,
}

/// A blob about to be stored.
#[derive(Debug, Clone)]
pub struct NewBlob {
    pub id: String,
    pub size: i64,
    pub chunks: Vec<SealedChunk>,
}

/// An object row about to be written.
#[derive(Debug, Clone)]
pub struct ObjectWrite {
    pub key: String,
    pub body: ObjectBody,
    pub size: i64,
    pub etag: String,
    pub content_type: Option<String>,
    pub meta: ObjectMeta,
    pub at: Timestamp,
    pub by: String,
}

/// A Pulumi key that statehouse keeps as a state rather than as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PulumiKey {
    /// A stack's checkpoint file.
    Stack { state: String },
    /// A lock file of a stack: `lock_id` is the file's uuid.
    Lock { state: String, lock_id: String },
}

impl PulumiKey {
    /// Which state a key is, if it is one of Pulumi's stack or lock files (project layout).
    pub fn parse(key: &str) -> Option<PulumiKey> {
        if let Some(rest) = key.strip_prefix(STACKS_DIR) {
            let (project, file) = rest.split_once('/')?;
            let stack = STACK_EXTENSIONS
                .iter()
                .find_map(|ext| file.strip_suffix(ext))?;
            return (plain_segments(&[project, stack]) && !stack.contains('/')).then(|| {
                PulumiKey::Stack {
                    state: stack_state(project, stack),
                }
            });
        }
        let rest = key.strip_prefix(LOCKS_DIR)?;
        let mut parts = rest.split('/');
        let (project, stack, file) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let lock_id = file.strip_suffix(".json")?;
        (plain_segments(&[project, stack, lock_id]) && is_uuid(lock_id)).then(|| PulumiKey::Lock {
            state: stack_state(project, stack),
            lock_id: lock_id.to_owned(),
        })
    }

    pub fn state(&self) -> &str {
        match self {
            PulumiKey::Stack { state } | PulumiKey::Lock { state, .. } => state,
        }
    }
}

/// The state a stack is kept as: `pulumi/<project>/<stack>`.
pub fn stack_state(project: &str, stack: &str) -> String {
    format!("{PULUMI_STATE_PREFIX}{project}/{stack}")
}

/// The project and stack of a state named `pulumi/<project>/<stack>` (a Pulumi stack: the
/// Terraform backend refuses such names); `None` for every other state.
pub fn stack_of(state: &str) -> Option<(&str, &str)> {
    state.strip_prefix(PULUMI_STATE_PREFIX)?.split_once('/')
}

/// The directory of a stack's lock files, for a state named `pulumi/<project>/<stack>`.
pub fn lock_dir(state: &str) -> Option<String> {
    let (project, stack) = stack_of(state)?;
    Some(format!("{LOCKS_DIR}{project}/{stack}/"))
}

/// Whether a key is one of the stack's copies whose bytes are likely a version of it: a
/// backup or a history checkpoint. Such a put is compared with the stack's versions so that
/// it pins one instead of storing the bytes again.
pub fn copy_of_stack(key: &str) -> Option<String> {
    let (dir, rest) = if let Some(r) = key.strip_prefix(".pulumi/backups/") {
        ("backups", r)
    } else if let Some(r) = key.strip_prefix(".pulumi/history/") {
        ("history", r)
    } else {
        return None;
    };
    let mut parts = rest.split('/');
    let (project, stack, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !plain_segments(&[project, stack]) {
        return None;
    }
    let is_copy = match dir {
        "history" => file.ends_with(".checkpoint.json"),
        _ => STACK_EXTENSIONS.iter().any(|ext| file.ends_with(ext)),
    };
    is_copy.then(|| stack_state(project, stack))
}

/// A segment that names a project, stack or lock: not empty, not `.`/`..`, no control
/// characters (states' names refuse them too).
fn plain_segments(segments: &[&str]) -> bool {
    segments
        .iter()
        .all(|s| !s.is_empty() && *s != "." && *s != ".." && !s.chars().any(char::is_control))
}

fn is_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}

/// What a listing asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Only keys (and common prefixes) after this one: a continuation token or start-after.
    pub after: Option<String>,
    pub max_keys: usize,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ObjectRecord>,
    pub common_prefixes: Vec<String>,
    /// Where the next page starts (exclusive), when there is one.
    pub next_after: Option<String>,
}

/// The smallest string above every string that starts with `prefix` (`None`: no bound), so
/// that a listing reads one key range.
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = char::from_u32(u32::from(last) + 1) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Folds keys in order into a page: keys whose rest after the prefix holds the delimiter
/// become one common prefix. Returns the page so far and, when a common prefix was just
/// opened, the key after which the next read must resume to skip the rest of it.
#[derive(Debug, Default)]
pub struct Folder {
    page: ListPage,
    max: usize,
    /// The last key or common prefix put on the page.
    last: Option<String>,
}

/// What the folder says after one key.
#[derive(Debug, PartialEq, Eq)]
pub enum Fold {
    /// Go on with the next key.
    Next,
    /// Skip every key that starts with this common prefix: resume from its end.
    SkipPrefix(String),
    /// The page is full.
    Full,
}

impl Folder {
    pub fn new(max_keys: usize) -> Self {
        Folder {
            max: max_keys,
            ..Folder::default()
        }
    }

    pub fn is_full(&self) -> bool {
        self.page.objects.len() + self.page.common_prefixes.len() >= self.max
    }

    pub fn push(&mut self, query: &ListQuery, object: ObjectRecord) -> Fold {
        if self.is_full() {
            // One more entry exists: the page ends at the last one taken.
            self.page.next_after = self.last.clone();
            return Fold::Full;
        }
        let common = query
            .delimiter
            .as_deref()
            .filter(|d| !d.is_empty())
            .and_then(|d| {
                let rest = object.key.get(query.prefix.len()..)?;
                rest.find(d)
                    .map(|at| object.key[..query.prefix.len() + at + d.len()].to_owned())
            });
        match common {
            Some(prefix) => {
                self.last = Some(prefix.clone());
                self.page.common_prefixes.push(prefix.clone());
                Fold::SkipPrefix(prefix)
            }
            None => {
                self.last = Some(object.key.clone());
                self.page.objects.push(object);
                Fold::Next
            }
        }
    }

    pub fn finish(self) -> ListPage {
        self.page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str) -> ObjectRecord {
        ObjectRecord {
            key: key.into(),
            size: 1,
            etag: "x".into(),
            last_modified: Timestamp(0),
            content_type: None,
            meta: ObjectMeta::default(),
            body: ObjectBody::Blob {
                blob_id: "b".into(),
            },
        }
    }

    #[test]
    fn stack_and_lock_keys_are_states() {
        assert_eq!(
            PulumiKey::parse(".pulumi/stacks/web/dev.json"),
            Some(PulumiKey::Stack {
                state: "pulumi/web/dev".into()
            })
        );
        assert_eq!(
            PulumiKey::parse(".pulumi/stacks/web/dev.json.gz").map(|k| k.state().to_owned()),
            Some("pulumi/web/dev".into())
        );
        assert_eq!(
            PulumiKey::parse(
                ".pulumi/locks/organization/web/dev/0b9a4d6e-1f7e-4a0e-9b55-2f8a8d0f3c11.json"
            ),
            Some(PulumiKey::Lock {
                state: "pulumi/web/dev".into(),
                lock_id: "0b9a4d6e-1f7e-4a0e-9b55-2f8a8d0f3c11".into()
            })
        );
        for other in [
            ".pulumi/stacks/web/dev.json.bak",
            ".pulumi/stacks/web/dev.pulumi-tags",
            ".pulumi/stacks/dev.json",
            ".pulumi/stacks/web/sub/dev.json",
            ".pulumi/stacks/../dev.json",
            ".pulumi/stacks/web/\u{7}.json",
            ".pulumi/locks/organization/web/dev/not-a-uuid.json",
            ".pulumi/meta.yaml",
        ] {
            assert_eq!(PulumiKey::parse(other), None, "{other}");
        }
        assert_eq!(
            lock_dir("pulumi/web/dev").as_deref(),
            Some(".pulumi/locks/organization/web/dev/")
        );
        assert_eq!(stack_of("pulumi/web/dev"), Some(("web", "dev")));
        assert_eq!(stack_of("prod/network"), None);
        assert_eq!(stack_of("pulumi"), None);
    }

    #[test]
    fn backups_and_history_checkpoints_are_copies_of_their_stack() {
        assert_eq!(
            copy_of_stack(".pulumi/backups/web/dev/dev.1700000000000000000.json").as_deref(),
            Some("pulumi/web/dev")
        );
        assert_eq!(
            copy_of_stack(".pulumi/history/web/dev/dev-1700000000000000000.checkpoint.json")
                .as_deref(),
            Some("pulumi/web/dev")
        );
        assert_eq!(
            copy_of_stack(".pulumi/history/web/dev/dev-1700000000000000000.history.json"),
            None
        );
    }

    #[test]
    fn prefix_end_bounds_the_range() {
        assert_eq!(prefix_end("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_end(""), None);
        assert!(prefix_end("ab").is_some_and(|end| "abzzz" < end.as_str()));
    }

    #[test]
    fn a_delimiter_folds_keys_into_common_prefixes() {
        let query = ListQuery {
            prefix: "p/".into(),
            delimiter: Some("/".into()),
            after: None,
            max_keys: 2,
        };
        let mut folder = Folder::new(query.max_keys);
        assert_eq!(folder.push(&query, object("p/a")), Fold::Next);
        assert_eq!(
            folder.push(&query, object("p/d/x")),
            Fold::SkipPrefix("p/d/".into())
        );
        assert_eq!(folder.push(&query, object("p/z")), Fold::Full);
        let page = folder.finish();
        assert_eq!(page.objects.len(), 1);
        assert_eq!(page.common_prefixes, vec!["p/d/".to_owned()]);
        assert_eq!(page.next_after.as_deref(), Some("p/d/"));
    }
}
