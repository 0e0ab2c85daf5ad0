//! Whole-server mode: which databases of a server to back up.

use sqlx::Connection;

use crate::connection::{PgConnection, query_error};
use crate::pipeline::BackupError;

/// The databases of the server behind `connection` (any of its databases) that can be backed
/// up — not templates, not those refusing connections (`datallowconn = false`), not
/// statehouse's own store when the outbound policy refuses it — matching at least one `include`
/// glob (all of them when `include` is empty) and no `exclude` glob. Globs: `*` any run of
/// characters, `?` one character, the rest literal. Sorted by name.
pub async fn discover_databases(
    connection: &PgConnection,
    include: &[String],
    exclude: &[String],
) -> Result<Vec<String>, BackupError> {
    let mut session = connection.connect().await?;
    let rows: Result<Vec<(String,)>, _> = sqlx::query_as(
        "SELECT datname::text FROM pg_database
         WHERE NOT datistemplate AND datallowconn ORDER BY 1",
    )
    .fetch_all(&mut session)
    .await;
    let _ = session.close().await;
    let rows = rows.map_err(|e| query_error(connection, "listing the databases", &e))?;
    let mut databases = Vec::new();
    for (name,) in rows {
        let wanted = (include.is_empty() || include.iter().any(|g| glob_matches(g, &name)))
            && !exclude.iter().any(|g| glob_matches(g, &name));
        if wanted && !connection.with_database(&name).is_refused_own_store().await {
            databases.push(name);
        }
    }
    Ok(databases)
}

/// Whether `name` matches `pattern` (`*` any run of characters, `?` exactly one).
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // Iterative matching with backtracking to the last `*`: linear-ish, no recursion.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_stars_and_question_marks() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("shop", "shop"));
        assert!(!glob_matches("shop", "shops"));
        assert!(glob_matches("shop_*", "shop_eu"));
        assert!(!glob_matches("shop_*", "shop"));
        assert!(glob_matches("a?c", "abc"));
        assert!(!glob_matches("a?c", "ac"));
        assert!(glob_matches("*_test_*", "x_test_y"));
        assert!(glob_matches("a*b*c", "aXbYbZc"));
        assert!(!glob_matches("a*b*c", "aXbYbZ"));
        assert!(glob_matches("ü?", "üß"));
    }
}
