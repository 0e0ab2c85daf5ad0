//! Relative paths in the configuration are resolved once, at start, against the working
//! directory: everything after that (the self-backup target, which wants an absolute directory;
//! messages that say where statehouse looked) sees absolute paths.

use std::path::{Component, Path, PathBuf};

/// `path` made absolute against `cwd`, without `.` components (`..` is kept: it cannot be
/// resolved without looking at the file system).
pub fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        cwd.join(path)
    };
    joined
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

/// The file of a `sqlite:` URL (`sqlite:PATH`, `sqlite://PATH`, `sqlite:///ABS`, optional
/// `?params`); `None` for an in-memory database or another scheme.
pub fn sqlite_url_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let database = rest.split('?').next().unwrap_or_default();
    if database.is_empty() || database == ":memory:" {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(database)
        .decode_utf8()
        .ok()?;
    Some(PathBuf::from(decoded.as_ref()))
}

/// A `sqlite:` URL with its file made absolute against `cwd` (others are returned as given).
pub fn absolute_sqlite_url(url: &str, cwd: &Path) -> String {
    let Some(file) = sqlite_url_file(url) else {
        return url.to_owned();
    };
    let params = url.split_once('?').map(|(_, p)| format!("?{p}"));
    let encoded = absolute(&file, cwd)
        .display()
        .to_string()
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    format!("sqlite://{encoded}{}", params.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_become_absolute() {
        let cwd = Path::new("/srv/app");
        assert_eq!(
            absolute(Path::new("./statehouse-data"), cwd),
            Path::new("/srv/app/statehouse-data")
        );
        assert_eq!(
            absolute(Path::new("/var/lib/s"), cwd),
            Path::new("/var/lib/s")
        );
        assert_eq!(
            absolute(Path::new("../keys/k"), cwd),
            Path::new("/srv/app/../keys/k")
        );
    }

    #[test]
    fn sqlite_urls_name_absolute_files() {
        let cwd = Path::new("/srv/app");
        assert_eq!(
            absolute_sqlite_url("sqlite:db/s.db", cwd),
            "sqlite:///srv/app/db/s.db"
        );
        assert_eq!(
            absolute_sqlite_url("sqlite://./s.db?mode=rwc", cwd),
            "sqlite:///srv/app/s.db?mode=rwc"
        );
        assert_eq!(
            absolute_sqlite_url("sqlite:///var/s.db", cwd),
            "sqlite:///var/s.db"
        );
        assert_eq!(
            absolute_sqlite_url("sqlite::memory:", cwd),
            "sqlite::memory:"
        );
        assert_eq!(
            absolute_sqlite_url("postgres://h/db", cwd),
            "postgres://h/db"
        );
        assert_eq!(
            absolute_sqlite_url("sqlite:a%3Fb.db", cwd),
            "sqlite:///srv/app/a%3Fb.db"
        );
        assert_eq!(
            sqlite_url_file("sqlite:///srv/app/a%3Fb.db"),
            Some(PathBuf::from("/srv/app/a?b.db"))
        );
    }
}
