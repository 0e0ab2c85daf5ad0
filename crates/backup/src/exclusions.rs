//! What a database's backups leave out, as pg_dump takes it: whole schemas
//! (`--exclude-schema`), whole tables (`--exclude-table`), or only tables' rows
//! (`--exclude-table-data`: the table is restored empty).
//!
//! Patterns follow pg_dump (psql's pattern rules): `*` any run of characters, `?` one character,
//! `schema.table` to name a table of a given schema (a bare name matches tables visible on the
//! role's search path), letters outside double quotes match either case, `"Exact Name"` matches
//! exactly. Each pattern is handed to pg_dump as one argument of its own (`--exclude-table=…`),
//! never through a shell.
//!
//! Row counts taken for full verification leave out what pg_dump leaves out, and count the
//! tables whose data is excluded as empty: [`DumpExclusions::excluded_tables`] resolves the
//! patterns the way pg_dump does (the same regular expressions, evaluated by the server, in the
//! snapshot pg_dump dumps).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::connection::{PgConnection, query_error};
use crate::pipeline::BackupError;

/// Patterns per list, and characters per pattern, at most.
const MAX_PATTERNS: usize = 100;
const MAX_PATTERN_CHARS: usize = 500;

/// Schemas, tables and table data a backup leaves out (pg_dump patterns).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpExclusions {
    /// `--exclude-schema`: the schemas and everything in them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// `--exclude-table`: the tables (and views, sequences, …) with their data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// `--exclude-table-data`: only the tables' rows (their definitions are kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub table_data: Vec<String>,
}

/// Which user tables pg_dump leaves out, or dumps without rows (`schema.table`, unquoted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcludedTables {
    pub left_out: BTreeSet<String>,
    pub without_rows: BTreeSet<String>,
}

impl DumpExclusions {
    pub fn is_empty(&self) -> bool {
        self.schemas.is_empty() && self.tables.is_empty() && self.table_data.is_empty()
    }

    fn lists(&self) -> [(&'static str, &[String]); 3] {
        [
            ("exclude-schema", &self.schemas),
            ("exclude-table", &self.tables),
            ("exclude-table-data", &self.table_data),
        ]
    }

    /// Refuses what pg_dump could misread or would refuse: empty patterns, control characters
    /// (NUL, newlines), unbalanced double quotes, qualified schema patterns, more than
    /// `schema.table` for tables. The message names the option and the pattern.
    pub fn validate(&self) -> Result<(), String> {
        for (option, patterns) in self.lists() {
            if patterns.len() > MAX_PATTERNS {
                return Err(format!(
                    "--{option} takes at most {MAX_PATTERNS} patterns, {} were given",
                    patterns.len()
                ));
            }
            for pattern in patterns {
                let parts = check_pattern(pattern).map_err(|why| {
                    format!(
                        "--{option} pattern {:?} is not valid: {why}",
                        printable(pattern)
                    )
                })?;
                let allowed = if option == "exclude-schema" { 1 } else { 2 };
                if parts.len() > allowed {
                    return Err(format!(
                        "--{option} pattern {:?} has too many dotted parts: give {} (quote a \
                         name that contains a dot: \"my.name\")",
                        printable(pattern),
                        if allowed == 1 {
                            "a schema name"
                        } else {
                            "a table name or schema.table"
                        }
                    ));
                }
            }
        }
        Ok(())
    }

    /// pg_dump's arguments, one per pattern (`--exclude-schema=PATTERN`: the `=` form, so a
    /// pattern starting with `-` is never read as an option).
    pub fn pg_dump_args(&self) -> Vec<String> {
        self.lists()
            .iter()
            .flat_map(|(option, patterns)| patterns.iter().map(move |p| format!("--{option}={p}")))
            .collect()
    }

    /// The user tables (ordinary tables, as row counting sees them) these patterns leave out
    /// or empty, resolved by the server in `session`'s snapshot as pg_dump resolves them.
    pub(crate) async fn excluded_tables(
        &self,
        connection: &PgConnection,
        session: &mut sqlx::PgConnection,
    ) -> Result<ExcludedTables, BackupError> {
        let mut excluded = ExcludedTables::default();
        if self.is_empty() {
            return Ok(excluded);
        }
        for pattern in &self.schemas {
            let schema = anchored(&pattern_regexes(pattern)[0]);
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind = 'r' AND n.nspname::text ~ $1",
            )
            .bind(schema)
            .fetch_all(&mut *session)
            .await
            .map_err(|e| query_error(connection, "resolving --exclude-schema patterns", &e))?;
            excluded.left_out.extend(rows.into_iter().map(qualified));
        }
        for (patterns, into) in [
            (&self.tables, &mut excluded.left_out),
            (&self.table_data, &mut excluded.without_rows),
        ] {
            for pattern in patterns {
                let rows = matching_tables(connection, session, pattern).await?;
                into.extend(rows.into_iter().map(qualified));
            }
        }
        let left_out = excluded.left_out.clone();
        excluded.without_rows.retain(|t| !left_out.contains(t));
        Ok(excluded)
    }
}

/// Ordinary tables a table pattern matches, as pg_dump matches them: `schema.table` by both
/// names, a bare name among the tables visible on the search path.
async fn matching_tables(
    connection: &PgConnection,
    session: &mut sqlx::PgConnection,
    pattern: &str,
) -> Result<Vec<(String, String)>, BackupError> {
    let parts = pattern_regexes(pattern);
    let query = match parts.as_slice() {
        [table] => sqlx::query_as(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND c.relname::text ~ $1 AND pg_table_is_visible(c.oid)",
        )
        .bind(anchored(table)),
        [schema, table, ..] => sqlx::query_as(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND n.nspname::text ~ $1 AND c.relname::text ~ $2",
        )
        .bind(anchored(schema))
        .bind(anchored(table)),
        [] => return Ok(Vec::new()),
    };
    query
        .fetch_all(&mut *session)
        .await
        .map_err(|e| query_error(connection, "resolving --exclude-table patterns", &e))
}

fn qualified((schema, table): (String, String)) -> String {
    format!("{schema}.{table}")
}

fn anchored(regex: &str) -> String {
    format!("^({regex})$")
}

/// A pattern for messages: control characters escaped.
fn printable(pattern: &str) -> String {
    pattern.escape_debug().to_string()
}

/// Checks one pattern; returns its dot-separated parts as regular expressions.
fn check_pattern(pattern: &str) -> Result<Vec<String>, &'static str> {
    if pattern.trim().is_empty() {
        return Err("it is empty");
    }
    if pattern.chars().count() > MAX_PATTERN_CHARS {
        return Err("it is longer than 500 characters");
    }
    if pattern.chars().any(char::is_control) {
        return Err("it contains a control character (NUL, newline, tab, …)");
    }
    if pattern.chars().filter(|&c| c == '"').count() % 2 == 1 {
        return Err("a double quote is not closed (write \"\" for a quote inside a quoted name)");
    }
    Ok(pattern_regexes(pattern))
}

/// Each dot-separated part of a pattern as a PostgreSQL regular expression, by pg_dump's rules
/// (`patternToSQLRegex`): outside double quotes letters are lowercased, `*` is `.*`, `?` is
/// `.`, other characters pass (so regular-expression syntax works), `[]` is literal; inside
/// them everything is literal and `""` is one quote; `$` is always literal.
pub fn pattern_regexes(pattern: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        let Some(current) = parts.last_mut() else {
            break;
        };
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' => quoted = !quoted,
            '*' if !quoted => current.push_str(".*"),
            '?' if !quoted => current.push('.'),
            '.' if !quoted => parts.push(String::new()),
            '$' => current.push_str("\\$"),
            c if quoted && "|*+?()[]{}.^\\".contains(c) => {
                current.push('\\');
                current.push(c);
            }
            '[' if chars.peek() == Some(&']') => current.push_str("\\["),
            c if !quoted => current.extend(c.to_lowercase()),
            c => current.push(c),
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn patterns_become_pg_dump_regexes() {
        assert_eq!(pattern_regexes("audit_*"), ["audit_.*"]);
        assert_eq!(pattern_regexes("Logs.Big?"), ["logs", "big."]);
        assert_eq!(
            pattern_regexes("\"My.Schema\".\"T*\""),
            ["My\\.Schema", "T\\*"]
        );
        assert_eq!(pattern_regexes("\"a\"\"b\""), ["a\"b"]);
        assert_eq!(pattern_regexes("price$"), ["price\\$"]);
        assert_eq!(pattern_regexes("(a|b)_log"), ["(a|b)_log"]);
    }

    #[test]
    fn arguments_are_one_per_pattern() {
        let exclusions = DumpExclusions {
            schemas: vec!["scratch".into()],
            tables: vec!["-tmp".into(), "public.cache_*".into()],
            table_data: vec!["audit log".into()],
        };
        assert_eq!(
            exclusions.pg_dump_args(),
            [
                "--exclude-schema=scratch",
                "--exclude-table=-tmp",
                "--exclude-table=public.cache_*",
                "--exclude-table-data=audit log",
            ]
        );
        exclusions.validate().unwrap();
    }

    #[test]
    fn hostile_or_misread_patterns_are_refused() {
        let refused = |e: DumpExclusions| e.validate().unwrap_err();
        let with_table = |p: &str| DumpExclusions {
            tables: vec![p.to_owned()],
            ..Default::default()
        };
        assert!(refused(with_table("a\0b")).contains("control character"));
        assert!(refused(with_table("a\nb")).contains("control character"));
        assert!(refused(with_table("  ")).contains("empty"));
        assert!(refused(with_table("\"open")).contains("double quote"));
        assert!(refused(with_table("db.s.t")).contains("too many dotted parts"));
        assert!(with_table("\"db.s\".t").validate().is_ok());
        let schema = DumpExclusions {
            schemas: vec!["s.t".into()],
            ..Default::default()
        };
        assert!(refused(schema).contains("--exclude-schema"));
        let many = DumpExclusions {
            table_data: vec!["t".into(); 101],
            ..Default::default()
        };
        assert!(refused(many).contains("at most 100"));
    }
}
