//! What the Pulumi importers share: the objects of a DIY backend checked all together, then
//! written one by one through the S3 endpoint's PutObject path (`Services::object_put`), so
//! that a stack file becomes a version of `pulumi/<project>/<stack>` exactly as when Pulumi
//! PUTs it, and everything else (meta.yaml, history, backups, `.bak`, tags) an object read back
//! byte for byte.
//!
//! Decisions:
//! - Lock files (`.pulumi/locks/…`) are not imported. A DIY lock has no lease: one left in the
//!   old backend is almost always stale, and imported it would lock the stack here until
//!   someone force-unlocked it. The output names every lock file skipped.
//! - When a stack has several stack files (`.json`, `.json.gz`, `.json.zst`), only the one
//!   Pulumi reads is imported: the most recently modified, the last in key order on a tie (as
//!   `stackPath` in pkg/backend/diy/state.go picks it). The others are named as skipped.
//! - The legacy layout (no project folder, `meta.yaml` absent or at version 0) is refused with
//!   the command that upgrades it: statehouse keeps stacks as `pulumi/<project>/<stack>`.
//! - An object that is already there with the same bytes is left alone, so a re-run adds no
//!   version and no audit entry.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use bytes::Bytes;
use statehouse_core::Error;
use statehouse_core::access::Principal;
use statehouse_core::names::StateName;
use statehouse_core::objects::{ObjectBody, PulumiKey};
use statehouse_core::pulumi;
use statehouse_core::service::Services;
use statehouse_core::service::md5_hex;
use statehouse_core::service::objects::{PutRequest, check_key};

/// The folder of a DIY backend, below any prefix.
pub const PULUMI_DIR: &str = ".pulumi/";
const META_KEY: &str = ".pulumi/meta.yaml";
const STACKS_DIR: &str = ".pulumi/stacks/";
const LOCKS_DIR: &str = ".pulumi/locks/";

/// One object read from the old backend.
pub struct SourceObject {
    /// Where it was, for messages: the row's key, or the bucket key with its prefix.
    pub origin: String,
    /// Its key in the DIY layout: `.pulumi/…`.
    pub key: String,
    pub bytes: Vec<u8>,
    /// When it was last written (ms since the Unix epoch), if known.
    pub modified_ms: Option<i64>,
}

/// What will be written, and what is left out.
pub struct Plan {
    /// In writing order: `meta.yaml`, the stack files, the rest by key.
    writes: Vec<SourceObject>,
    /// `(origin, why)`.
    skipped: Vec<(String, String)>,
    locks_skipped: usize,
}

/// Why a key is not one to import, if it is not: S3's limits, control characters, and any
/// path trick (empty, `.` or `..` segments, backslashes).
pub fn key_problem(key: &str) -> Option<String> {
    if let Err(e) = check_key(key) {
        return Some(e.to_string());
    }
    if !key.starts_with(PULUMI_DIR) {
        return Some("not under .pulumi/, so not an object of Pulumi's DIY backend".into());
    }
    let odd = key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == ".." || s.contains('\\'));
    odd.then(|| "the key has an empty, '.' or '..' segment or a backslash".into())
}

/// Checks every object; an error lists every problem found (nothing is written then).
/// `problems` are those the caller found while reading.
pub fn check(objects: Vec<SourceObject>, mut problems: Vec<String>) -> Result<Plan> {
    if objects.is_empty() && problems.is_empty() {
        bail!(
            "found no objects of Pulumi's DIY backend (nothing under .pulumi/); nothing was imported"
        );
    }
    let mut meta = None;
    let mut stacks: BTreeMap<String, Vec<SourceObject>> = BTreeMap::new();
    let mut rest = Vec::new();
    let mut skipped = Vec::new();
    let mut locks_skipped = 0;
    for object in objects {
        if let Some(why) = key_problem(&object.key) {
            problems.push(format!("{}: {why}", object.origin));
            continue;
        }
        if object.key.starts_with(LOCKS_DIR) {
            locks_skipped += 1;
            skipped.push((
                object.origin,
                "lock file, not imported (a DIY lock has no lease; a stale one would lock the stack here)".into(),
            ));
            continue;
        }
        if object.key == META_KEY {
            if let Some(why) = meta_problem(&object.bytes) {
                problems.push(format!("{}: {why}", object.origin));
            }
            meta = Some(object);
            continue;
        }
        match PulumiKey::parse(&object.key) {
            Some(PulumiKey::Stack { state }) => {
                if let Err(e) = StateName::parse(&state) {
                    problems.push(format!("{}: {e}", object.origin));
                } else if let Err(e) = pulumi::inspect(&object.bytes) {
                    problems.push(format!("{}: not a readable checkpoint: {e}", object.origin));
                } else {
                    stacks.entry(state).or_default().push(object);
                }
            }
            // Lock keys are all under `.pulumi/locks/`, skipped above.
            Some(PulumiKey::Lock { .. }) | None => {
                let legacy = object
                    .key
                    .strip_prefix(STACKS_DIR)
                    .is_some_and(|file| !file.contains('/'));
                if legacy {
                    problems.push(format!(
                        "{}: a stack of the legacy layout (no project folder); statehouse keeps stacks \
                         per project: run `pulumi state upgrade` against the old backend first",
                        object.origin
                    ));
                } else {
                    rest.push(object);
                }
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "nothing was imported; fix these objects first:\n  {}",
            problems.join("\n  ")
        );
    }
    let mut writes: Vec<SourceObject> = meta.into_iter().collect();
    for (_, mut files) in stacks {
        // The one Pulumi reads: newest, then last by key.
        files.sort_by(|a, b| (a.modified_ms, &a.key).cmp(&(b.modified_ms, &b.key)));
        let newest = files.pop();
        for older in files {
            let read = newest.as_ref().map_or("", |n| n.key.as_str());
            skipped.push((
                older.origin,
                format!("an older stack file of the stack; Pulumi reads {read}"),
            ));
        }
        writes.extend(newest);
    }
    rest.sort_by(|a, b| a.key.cmp(&b.key));
    writes.extend(rest);
    Ok(Plan {
        writes,
        skipped,
        locks_skipped,
    })
}

/// `meta.yaml` must say `version: 1` (the project layout).
fn meta_problem(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let version = text.lines().find_map(|line| {
        let value = line.trim().strip_prefix("version:")?;
        Some(
            value
                .trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .to_owned(),
        )
    });
    match version.as_deref() {
        Some("1") => None,
        Some("0") => Some(
            "the legacy layout (meta.yaml version 0); statehouse keeps stacks per project: run \
             `pulumi state upgrade` against the old backend first"
                .into(),
        ),
        Some(other) => Some(format!(
            "meta.yaml says version {other:?}; this statehouse reads version 1 (the project layout)"
        )),
        None => Some("meta.yaml has no `version:` line (Pulumi calls this a corrupt store)".into()),
    }
}

/// Writes the plan as the S3 endpoint's PutObject does, then prints the summary.
pub async fn write(
    services: &Services,
    who: &Principal,
    workspace: &str,
    plan: Plan,
) -> Result<()> {
    for (origin, why) in &plan.skipped {
        errln!("skip  {origin}: {why}");
    }
    let (mut written, mut unchanged, mut failed, mut bytes) = (0_u64, 0_u64, 0_u64, 0_u64);
    let (mut stacks, mut versions) = (0_u64, 0_u64);
    for object in plan.writes {
        let size = object.bytes.len() as u64;
        let stack = match PulumiKey::parse(&object.key) {
            Some(PulumiKey::Stack { state }) => Some(state),
            _ => None,
        };
        stacks += u64::from(stack.is_some());
        match put_unless_same(services, who, workspace, &object).await {
            Ok(Put::Same) => {
                unchanged += 1;
                if let Some(state) = &stack {
                    errln!(
                        "same  {} -> {workspace}/{state} (already identical)",
                        object.origin
                    );
                }
            }
            Ok(Put::Written(version)) => {
                written += 1;
                bytes += size;
                if let Some(state) = &stack {
                    versions += 1;
                    let version = version.map_or_else(String::new, |v| format!(" (version {v})"));
                    errln!("ok    {} -> {workspace}/{state}{version}", object.origin);
                }
            }
            Err(e) => {
                failed += 1;
                errln!("FAIL  {}: {e}", object.origin);
            }
        }
    }
    outln!(
        "objects: {written} written, {unchanged} unchanged, {failed} failed; stacks: {stacks} ({versions} new versions); bytes written: {bytes}; lock files not imported: {}",
        plan.locks_skipped
    )?;
    if failed > 0 {
        bail!(
            "{failed} objects were not imported (see above); running the import again retries them"
        );
    }
    Ok(())
}

enum Put {
    Same,
    /// The version a stack file became.
    Written(Option<i64>),
}

async fn put_unless_same(
    services: &Services,
    who: &Principal,
    workspace: &str,
    object: &SourceObject,
) -> Result<Put, Error> {
    match services.object_head(who, workspace, &object.key).await {
        Ok(found)
            if found.etag == md5_hex(&object.bytes)
                && u64::try_from(found.size).ok() == Some(object.bytes.len() as u64) =>
        {
            return Ok(Put::Same);
        }
        Ok(_) | Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let request = PutRequest {
        key: object.key.clone(),
        ..PutRequest::default()
    };
    let record = services
        .object_put(who, workspace, request, Bytes::from(object.bytes.clone()))
        .await?;
    Ok(Put::Written(match record.body {
        ObjectBody::Version { version_no, .. } => version_no,
        _ => None,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn object(key: &str, bytes: &[u8], modified_ms: Option<i64>) -> SourceObject {
        SourceObject {
            origin: format!("db/{key}"),
            key: key.into(),
            bytes: bytes.to_vec(),
            modified_ms,
        }
    }

    const CHECKPOINT: &[u8] =
        br#"{"version":3,"checkpoint":{"stack":"organization/web/dev","latest":{"resources":[]}}}"#;

    #[test]
    fn hostile_keys_are_named() {
        for key in [
            "",
            "x/.pulumi/meta.yaml",
            ".pulumi/../etc/passwd",
            ".pulumi//a",
            ".pulumi/a\\b",
            ".pulumi/\u{7}",
            ".pulumi/./a",
        ] {
            assert!(key_problem(key).is_some(), "{key:?}");
        }
        assert_eq!(key_problem(".pulumi/stacks/web/dev.json.bak"), None);
    }

    #[test]
    fn locks_are_skipped_and_the_newest_stack_file_wins() {
        let plan = check(
            vec![
                object(".pulumi/stacks/web/dev.json", CHECKPOINT, Some(2)),
                object(".pulumi/stacks/web/dev.json.gz", CHECKPOINT, Some(1)),
                object(
                    ".pulumi/locks/organization/web/dev/0b9a4d6e-1f7e-4a0e-9b55-2f8a8d0f3c11.json",
                    b"{}",
                    None,
                ),
                object(".pulumi/meta.yaml", b"version: 1\n", None),
            ],
            Vec::new(),
        )
        .unwrap();
        let keys: Vec<&str> = plan.writes.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, [".pulumi/meta.yaml", ".pulumi/stacks/web/dev.json"]);
        assert_eq!(plan.locks_skipped, 1);
        assert_eq!(plan.skipped.len(), 2);
    }

    #[test]
    fn legacy_layouts_and_bad_checkpoints_refuse_everything() {
        let err = check(
            vec![
                object(".pulumi/meta.yaml", b"version: 0\n", None),
                object(".pulumi/stacks/dev.json", CHECKPOINT, None),
                object(".pulumi/stacks/web/prod.json", b"not json", None),
                object(".pulumi/history/web/prod/x.history.json", b"{}", None),
            ],
            Vec::new(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.starts_with("nothing was imported"), "{err}");
        for part in [
            "db/.pulumi/meta.yaml: the legacy layout",
            "db/.pulumi/stacks/dev.json: a stack of the legacy layout",
            "db/.pulumi/stacks/web/prod.json: not a readable checkpoint",
            "pulumi state upgrade",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
        let empty = check(Vec::new(), Vec::new()).err().unwrap().to_string();
        assert!(empty.contains("nothing under .pulumi/"), "{empty}");
    }
}
