//! Paging of the access pages' lists: the same cursors as the REST API (`Page::select` over
//! a listing the service returns whole, ordered by a unique key), a fixed page size, and the
//! links to the next and first pages.

use statehouse_core::Error;

use super::links::query_escape;
use crate::api::{Order, Page, PageParams};

/// Rows per page of an access list.
pub const ROWS: i64 = 50;

/// One page of `all` after `cursor` (an API cursor), ordered by `key`.
pub fn select<T>(
    all: Vec<T>,
    cursor: Option<&str>,
    order: Order,
    key: impl Fn(&T) -> String,
) -> Result<Page<T>, Error> {
    let params = PageParams {
        cursor: cursor.filter(|c| !c.is_empty()).map(str::to_owned),
        limit: Some(ROWS),
    };
    Page::select(all, &params, order, key).map_err(|e| e.0)
}

/// Links of a paged list at `base` (which may carry a query already).
pub struct Pager {
    /// Empty on the last page.
    pub next: String,
    /// Empty on the first page.
    pub first: String,
}

impl Pager {
    pub fn new(base: &str, cursor: Option<&str>, next_cursor: Option<&str>) -> Pager {
        let join = if base.contains('?') { '&' } else { '?' };
        Pager {
            next: next_cursor.map_or(String::new(), |c| {
                format!("{base}{join}cursor={}", query_escape(c))
            }),
            first: if cursor.is_some_and(|c| !c.is_empty()) {
                base.to_owned()
            } else {
                String::new()
            },
        }
    }
}
