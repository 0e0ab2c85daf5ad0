//! Workspace and state names: validated once at the edge so that nothing downstream has to
//! worry about path tricks, odd bytes or reserved words.

use std::fmt;

use crate::Error;

const MAX_WORKSPACE_NAME: usize = 63;
const MAX_STATE_NAME: usize = 512;
const MAX_STATE_SEGMENTS: usize = 16;

/// The URL segment reserved for GitLab-style lock endpoints (`POST/DELETE <address>/lock`).
pub const LOCK_SEGMENT: &str = "lock";

/// `[a-z0-9][a-z0-9_-]*`, at most 63 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceName(String);

impl WorkspaceName {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let ok_first = raw
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_rest = raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if raw.is_empty() || raw.len() > MAX_WORKSPACE_NAME || !ok_first || !ok_rest {
            return Err(Error::BadRequest(format!(
                "invalid workspace name {:?}: use 1-{MAX_WORKSPACE_NAME} characters a-z, 0-9, '-' or '_', starting with a letter or digit",
                truncate(raw)
            )));
        }
        Ok(WorkspaceName(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkspaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One or more `/`-separated segments of `[A-Za-z0-9._-]`, such as `prod/network`.
/// Segments `.` and `..` are refused, as is a last segment named `lock` (that URL is the
/// GitLab-style lock endpoint of the state before it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateName(String);

impl StateName {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let invalid =
            |why: &str| Error::BadRequest(format!("invalid state name {:?}: {why}", truncate(raw)));
        if raw.is_empty() {
            return Err(invalid("it is empty"));
        }
        if raw.len() > MAX_STATE_NAME {
            return Err(invalid(&format!("longer than {MAX_STATE_NAME} characters")));
        }
        let segments: Vec<&str> = raw.split('/').collect();
        if segments.len() > MAX_STATE_SEGMENTS {
            return Err(invalid(&format!(
                "more than {MAX_STATE_SEGMENTS} '/'-separated segments"
            )));
        }
        for segment in &segments {
            if segment.is_empty() {
                return Err(invalid("empty segment (leading, trailing or doubled '/')"));
            }
            if *segment == "." || *segment == ".." {
                return Err(invalid("'.' and '..' are not allowed as segments"));
            }
            if !segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                return Err(invalid(
                    "use only A-Z, a-z, 0-9, '.', '-', '_' and '/' between segments",
                ));
            }
        }
        if segments.last() == Some(&LOCK_SEGMENT) {
            return Err(invalid(
                "a last segment named 'lock' is reserved for the lock endpoint",
            ));
        }
        Ok(StateName(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn truncate(raw: &str) -> String {
    raw.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_names() {
        for good in ["default", "prod", "team-a_1", "0", &"a".repeat(63)] {
            assert!(WorkspaceName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Prod",
            "-x",
            "_x",
            "a/b",
            "a b",
            "é",
            &"a".repeat(64),
            "..",
        ] {
            assert!(WorkspaceName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn state_names() {
        for good in [
            "network",
            "prod/network",
            "a.b-c_d/E/f",
            "x/lock-table",
            "lock/x",
        ] {
            assert!(StateName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "../etc",
            "a/../b",
            "./a",
            "a b",
            "a%2Fb",
            "a\\b",
            "a\0b",
            "prod/lock",
            "lock",
            "é",
        ] {
            assert!(StateName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(StateName::parse(&"a".repeat(513)).is_err());
        assert!(StateName::parse(&vec!["a"; 17].join("/")).is_err());
    }
}
