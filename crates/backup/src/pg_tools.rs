//! Finding a `pg_dump`/`pg_restore` able to handle the server: its major version must be at
//! least the server's (an older pg_dump refuses newer servers).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::connection::{PgConnection, ServerVersion, server_version};
use crate::pipeline::BackupError;

/// Debian's home of versioned PostgreSQL client binaries (`/usr/lib/postgresql/<major>/bin`).
pub const DEFAULT_VERSIONED_ROOT: &str = "/usr/lib/postgresql";

/// Where to look: `<versioned_root>/<major>/bin` first, then the directories of `path`.
#[derive(Debug, Clone)]
pub struct PgToolSearch {
    pub versioned_root: PathBuf,
    /// A `PATH`-style list; `None` searches no further.
    pub path: Option<OsString>,
}

impl PgToolSearch {
    /// Debian's directory, then the process's `PATH`.
    pub fn system() -> PgToolSearch {
        PgToolSearch {
            versioned_root: PathBuf::from(DEFAULT_VERSIONED_ROOT),
            path: std::env::var_os("PATH"),
        }
    }
}

/// A client binary and the PostgreSQL major version it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTool {
    pub path: PathBuf,
    pub major: u32,
}

/// The server's major version from `server_version_num` (`150004` → 15, `90624` → 9).
pub fn major_from_version_num(version_num: u32) -> u32 {
    version_num / 10_000
}

/// Finds `tool` (`pg_dump` or `pg_restore`) of major version `server_major` or newer: the newest
/// one under the versioned root, else the first on `PATH` (its version read from `--version`).
pub async fn find_pg_tool(
    tool: &str,
    server_major: u32,
    search: &PgToolSearch,
) -> Result<PgTool, BackupError> {
    let mut seen: Vec<PgTool> = Vec::new();
    let mut best: Option<PgTool> = None;
    if let Ok(mut entries) = tokio::fs::read_dir(&search.versioned_root).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let Some(major) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let path = entry.path().join("bin").join(tool);
            if !is_file(&path).await {
                continue;
            }
            let found = PgTool { path, major };
            seen.push(found.clone());
            if major >= server_major && best.as_ref().is_none_or(|b| major > b.major) {
                best = Some(found);
            }
        }
    }
    if let Some(best) = best {
        return Ok(best);
    }
    if let Some(path_list) = &search.path {
        for dir in std::env::split_paths(path_list) {
            let path = dir.join(tool);
            if !is_file(&path).await {
                continue;
            }
            if let Some(major) = version_of(&path).await {
                let found = PgTool { path, major };
                if major >= server_major {
                    return Ok(found);
                }
                seen.push(found);
            }
        }
    }
    let seen_text = if seen.is_empty() {
        "none found".to_owned()
    } else {
        seen.iter()
            .map(|t| format!("{} ({})", t.path.display(), t.major))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(BackupError::Config(format!(
        "no {tool} of PostgreSQL {server_major} or newer was found under {}/<version>/bin or on PATH \
         ({seen_text}); install the Debian package postgresql-client-{server_major} (from \
         apt.postgresql.org if your distribution does not ship it)",
        search.versioned_root.display()
    )))
}

/// Asks the server behind `connection` for its version, then finds `tool` able to handle it.
pub async fn find_pg_tool_for_server(
    tool: &str,
    connection: &PgConnection,
    search: &PgToolSearch,
) -> Result<(PgTool, ServerVersion), BackupError> {
    let version = server_version(connection).await?;
    let found = find_pg_tool(tool, version.major, search).await?;
    Ok((found, version))
}

async fn is_file(path: &Path) -> bool {
    tokio::fs::metadata(path)
        .await
        .map(|m| m.is_file())
        .unwrap_or(false)
}

/// Major version from `pg_dump --version` (`pg_dump (PostgreSQL) 15.4 (Debian 15.4-1)`).
async fn version_of(path: &Path) -> Option<u32> {
    let output = tokio::process::Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    if !output.status.success() {
        return None;
    }
    parse_version_major(&String::from_utf8_lossy(&output.stdout))
}

fn parse_version_major(text: &str) -> Option<u32> {
    let after = text.split(')').nth(1)?.trim_start();
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fake_tool(dir: &Path, tool: &str, version: &str) {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(tool);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho '{tool} (PostgreSQL) {version} (Debian)'\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn versions_are_read_from_version_output_and_version_num() {
        assert_eq!(
            parse_version_major("pg_dump (PostgreSQL) 15.4 (Debian 15.4-1)\n"),
            Some(15)
        );
        assert_eq!(
            parse_version_major("pg_dump (PostgreSQL) 9.6.24\n"),
            Some(9)
        );
        assert_eq!(parse_version_major("garbage"), None);
        assert_eq!(major_from_version_num(150004), 15);
        assert_eq!(major_from_version_num(90624), 9);
    }

    #[tokio::test]
    async fn the_newest_versioned_client_wins_then_path_then_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("lib");
        fake_tool(&root.join("13/bin"), "pg_dump", "13.1");
        fake_tool(&root.join("16/bin"), "pg_dump", "16.2");
        fake_tool(&root.join("15/bin"), "pg_dump", "15.4");
        fake_tool(&root.join("17/bin"), "pg_restore", "17.0"); // another tool: ignored
        let path_dir = tmp.path().join("bin");
        fake_tool(&path_dir, "pg_dump", "18.1");
        let search = PgToolSearch {
            versioned_root: root.clone(),
            path: Some(path_dir.clone().into_os_string()),
        };

        let found = find_pg_tool("pg_dump", 14, &search).await.unwrap();
        assert_eq!(
            found,
            PgTool {
                path: root.join("16/bin/pg_dump"),
                major: 16
            }
        );

        let found = find_pg_tool("pg_dump", 17, &search).await.unwrap();
        assert_eq!(
            found,
            PgTool {
                path: path_dir.join("pg_dump"),
                major: 18
            }
        );

        let err = find_pg_tool("pg_dump", 19, &search)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no pg_dump of PostgreSQL 19 or newer"),
            "{err}"
        );
        assert!(err.contains("postgresql-client-19"), "{err}");
        assert!(err.contains("16/bin/pg_dump (16)"), "{err}");
        assert!(err.contains("(18)"), "{err}");

        let empty = PgToolSearch {
            versioned_root: tmp.path().join("missing"),
            path: None,
        };
        let err = find_pg_tool("pg_restore", 15, &empty)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("none found") && err.contains("postgresql-client-15"),
            "{err}"
        );
    }
}
