//! The search query, built once: its text for the engine's dialect and its values in
//! placeholder order. Both schemas have the same `resource_index` table (text compared
//! byte-wise: SQLite's `BINARY`, PostgreSQL's `"C"` collation) with one index per searchable
//! column ending in the row number, so every search is a range scan of one index in result
//! order that stops after one page.

use statehouse_core::store::search::{
    FieldMatch, IDENTIFYING_ATTRIBUTES, MatchMode, ResourceSearch, SearchField,
};

use crate::engine::Dialect;
use crate::query::{Arg, Sql, arg, json_list};

/// Columns every hit row has, whichever query produced it.
pub(super) const HIT_COLUMNS: &str = "r.id, r.address, r.mode, r.type, r.name, r.module, r.provider, \
    r.index_key, r.attr_id, r.attr_arn, r.attr_name, r.attr_self_link, r.appeared_version_no, \
    r.appeared_at, s.id AS state_id, s.name AS state_name, s.workspace_id, w.name AS workspace_name, \
    v.version_no";

/// `s.workspace_id` is one of the JSON list of ids bound to `$n`. On PostgreSQL the list is
/// turned into an array once (an uncorrelated subquery, run once before the scan) and tested with
/// `= ANY`, a plain filter on the state row: as a semi-join (`IN (SELECT …)`) the planner
/// could start from the workspaces instead of scanning the driving index in result order.
pub(super) fn in_workspaces(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("s.workspace_id IN (SELECT value FROM json_each(${n}))"),
        Dialect::Postgres => {
            format!("s.workspace_id = ANY(ARRAY(SELECT jsonb_array_elements_text(${n}::jsonb)))")
        }
    }
}

struct Builder {
    dialect: Dialect,
    sql: String,
    binds: Vec<Arg<'static>>,
}

impl Builder {
    /// Binds the next value; its placeholder.
    fn bind(&mut self, value: Arg<'static>) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    fn text(&mut self, value: &str) -> String {
        self.bind(arg(value.to_owned()))
    }

    fn int(&mut self, value: i64) -> String {
        self.bind(arg(value))
    }
}

fn column(field: SearchField) -> &'static str {
    match field {
        SearchField::Type => "r.type",
        SearchField::Name => "r.name",
        SearchField::Module => "r.module",
        SearchField::Provider => "r.provider",
        SearchField::Mode => "r.mode",
        SearchField::Id => "r.attr_id",
        SearchField::Arn => "r.attr_arn",
        SearchField::NameAttribute => "r.attr_name",
        SearchField::SelfLink => "r.attr_self_link",
        SearchField::Any => "",
    }
}

fn attribute_column(attribute: &str) -> &'static str {
    match attribute {
        "id" => "r.attr_id",
        "arn" => "r.attr_arn",
        "name" => "r.attr_name",
        _ => "r.attr_self_link",
    }
}

/// `column` matches `value` exactly or by prefix (a range, so an index serves it).
fn matches(b: &mut Builder, column: &str, value: &str, mode: MatchMode) -> String {
    match mode {
        MatchMode::Exact => {
            let p = b.text(value);
            format!("{column} = {p}")
        }
        MatchMode::Prefix => {
            let (lower, upper) = ResourceSearch::prefix_range(value);
            let lo = b.text(&lower);
            match upper {
                Some(upper) => {
                    let hi = b.text(&upper);
                    format!("{column} >= {lo} AND {column} < {hi}")
                }
                None => format!("{column} >= {lo}"),
            }
        }
    }
}

fn filter(b: &mut Builder, m: &FieldMatch, mode: MatchMode) -> String {
    match m.field {
        // `managed`/`data`: a prefix makes no sense.
        SearchField::Mode => matches(b, "r.mode", &m.value, MatchMode::Exact),
        SearchField::Any => {
            let parts: Vec<String> = IDENTIFYING_ATTRIBUTES
                .iter()
                .map(|a| format!("({})", matches(b, attribute_column(a), &m.value, mode)))
                .collect();
            format!("({})", parts.join(" OR "))
        }
        field => matches(b, column(field), &m.value, mode),
    }
}

/// The index serving a driving column (same names in both schemas).
fn index_of(column: &str) -> Option<&'static str> {
    match column {
        "r.type" => Some("resource_index_type"),
        "r.name" => Some("resource_index_name"),
        "r.module" => Some("resource_index_module"),
        "r.provider" => Some("resource_index_provider"),
        "r.attr_id" => Some("resource_index_attr_id"),
        "r.attr_arn" => Some("resource_index_attr_arn"),
        "r.attr_name" => Some("resource_index_attr_name"),
        "r.attr_self_link" => Some("resource_index_attr_self_link"),
        _ => None,
    }
}

/// The part every variant shares: joins, liveness, access, and the non-driving filters.
/// `driving` is the column whose index is scanned in result order.
fn from_and_filters(
    b: &mut Builder,
    search: &ResourceSearch,
    skip_first: bool,
    driving: Option<&str>,
) -> String {
    let (join, indexed_by) = match b.dialect {
        // Without statistics SQLite would rather use an equality on another column than the
        // driving range and then sort every match: name the index, and keep `resource_index`
        // the outer loop (result order) with CROSS JOIN. PostgreSQL plans by its statistics.
        Dialect::Sqlite => (
            "CROSS JOIN",
            driving
                .and_then(index_of)
                .map(|i| format!(" INDEXED BY {i}"))
                .unwrap_or_default(),
        ),
        Dialect::Postgres => ("JOIN", String::new()),
    };
    b.bind(arg(json_list(&search.workspace_ids)));
    let access = in_workspaces(b.dialect, b.binds.len());
    let mut sql = format!(
        " FROM resource_index r{indexed_by} {join} states s ON s.id = r.state_id \
         JOIN workspaces w ON w.id = s.workspace_id \
         JOIN state_versions v ON v.id = s.current_version_id \
         WHERE s.deleted_at IS NULL AND {access}"
    );
    let rest = if skip_first {
        &search.matches[1..]
    } else {
        &search.matches[..]
    };
    for m in rest {
        let condition = filter(b, m, search.mode);
        sql.push_str(" AND ");
        sql.push_str(&condition);
    }
    sql
}

/// The statement for one page of `search` (at most `search.limit` rows). Public for the
/// benchmark, which runs the same text against an unindexed copy of the table.
pub fn search_query(search: &ResourceSearch, dialect: Dialect) -> Sql<'static> {
    let mut b = Builder {
        dialect,
        sql: String::new(),
        binds: Vec::new(),
    };
    match search.driver().map(|m| m.field) {
        Some(SearchField::Any) => any_query(&mut b, search),
        Some(field) => field_query(&mut b, search, column(field)),
        None => row_order_query(&mut b, search),
    }
    let mut query = Sql::built(b.sql);
    for value in b.binds {
        query = query.bind(value);
    }
    query
}

/// Driven by one column's index: `(column, id)` order.
fn field_query(b: &mut Builder, search: &ResourceSearch, column: &str) {
    let Some(driver) = search.matches.first() else {
        return;
    };
    let mut sql = format!("SELECT {HIT_COLUMNS}, {column} AS pos_value, '' AS pos_attr");
    sql.push_str(&from_and_filters(b, search, true, Some(column)));
    let condition = matches(b, column, &driver.value, search.mode);
    sql.push_str(&format!(" AND {condition}"));
    if let Some(after) = &search.after {
        let value = b.text(&after.value);
        let row = b.int(after.row);
        sql.push_str(&format!(" AND ({column}, r.id) > ({value}, {row})"));
    }
    let limit = b.int(search.limit);
    sql.push_str(&format!(" ORDER BY {column}, r.id LIMIT {limit}"));
    b.sql = sql;
}

/// Only `mode` given: rows in row order.
fn row_order_query(b: &mut Builder, search: &ResourceSearch) {
    let mut sql = format!("SELECT {HIT_COLUMNS}, '' AS pos_value, '' AS pos_attr");
    sql.push_str(&from_and_filters(b, search, false, None));
    if let Some(after) = &search.after {
        let row = b.int(after.row);
        sql.push_str(&format!(" AND r.id > {row}"));
    }
    let limit = b.int(search.limit);
    sql.push_str(&format!(" ORDER BY r.id LIMIT {limit}"));
    b.sql = sql;
}

/// `q`: any identifying attribute. One index scan per attribute, merged in
/// `(value, attribute, id)` order. A row appears once, under the smallest of its matching
/// `(value, attribute)` pairs: each branch keeps a row only when no other attribute of the same
/// row matches with a smaller pair (a test on the row itself, no extra lookup).
fn any_query(b: &mut Builder, search: &ResourceSearch) {
    let Some(driver) = search.matches.first() else {
        return;
    };
    let cursor_rank = search.after.as_ref().map(|a| {
        IDENTIFYING_ATTRIBUTES
            .iter()
            .position(|x| *x == a.attribute)
            .unwrap_or(0)
    });
    let mut branches = Vec::new();
    for (rank, attribute) in IDENTIFYING_ATTRIBUTES.iter().enumerate() {
        let column = attribute_column(attribute);
        let mut sql =
            format!("SELECT {HIT_COLUMNS}, {column} AS pos_value, '{attribute}' AS pos_attr");
        sql.push_str(&from_and_filters(b, search, true, Some(column)));
        let condition = matches(b, column, &driver.value, search.mode);
        sql.push_str(&format!(" AND {condition}"));
        for (other_rank, other) in IDENTIFYING_ATTRIBUTES.iter().enumerate() {
            if other_rank == rank {
                continue;
            }
            let other_column = attribute_column(other);
            let other_matches = matches(b, other_column, &driver.value, search.mode);
            let smaller = if other_rank < rank { "<=" } else { "<" };
            sql.push_str(&format!(
                " AND ({other_column} IS NULL OR NOT ({other_matches} AND {other_column} {smaller} {column}))"
            ));
        }
        if let (Some(after), Some(cursor_rank)) = (&search.after, cursor_rank) {
            let value = b.text(&after.value);
            if rank > cursor_rank {
                sql.push_str(&format!(" AND {column} >= {value}"));
            } else if rank < cursor_rank {
                sql.push_str(&format!(" AND {column} > {value}"));
            } else {
                let row = b.int(after.row);
                sql.push_str(&format!(" AND ({column}, r.id) > ({value}, {row})"));
            }
        }
        let limit = b.int(search.limit);
        sql.push_str(&format!(" ORDER BY {column}, r.id LIMIT {limit}"));
        branches.push(sql);
    }
    // SQLite takes a compound's branches with their own ORDER BY/LIMIT only as subqueries;
    // PostgreSQL takes them parenthesized.
    let merged: Vec<String> = branches
        .into_iter()
        .map(|branch| match b.dialect {
            Dialect::Sqlite => format!("SELECT * FROM ({branch})"),
            Dialect::Postgres => format!("({branch})"),
        })
        .collect();
    let limit = b.int(search.limit);
    // Ties between attributes sort by their fixed order (id, arn, name, self_link).
    let attribute_order =
        "CASE pos_attr WHEN 'id' THEN 0 WHEN 'arn' THEN 1 WHEN 'name' THEN 2 ELSE 3 END";
    b.sql = format!(
        "SELECT * FROM ({}) hits ORDER BY pos_value, {attribute_order}, id LIMIT {limit}",
        merged.join(" UNION ALL ")
    );
}
