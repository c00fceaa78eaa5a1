//! A page of a segment's members, as the console lists them: read window by
//! window of customer ids, each window's lists holding its rows only.

use super::builder::Scope;
use super::{
    Bind, Builder, Dialect, Query, customers_drive, name_prefix, positive_customer,
    segment_predicate,
};
use crate::model::{Filter, MatchMode, Op, Segment};
use chrono::{DateTime, Utc};

/// Whether a page of `segment`'s members is read in one query from its first
/// id on, not window by window: on SQLite, under `match = "all"`, when a
/// prefix of the customers' names or emails drives the query (through its
/// index, migration 0011) and each related block is looked up per customer
/// that passes it. A window's id range would be read instead of that index
/// once the window is narrow enough (an 80,000-customer window of a segment
/// of 500 members on 1,000,000 customers: 110 ms through the ids, 4 ms
/// through the name index).
pub fn page_in_one_query(segment: &Segment, dialect: Dialect) -> bool {
    let filters: Vec<&Filter> = segment.filters.iter().collect();
    let prefix = |f: &&Filter| {
        positive_customer(f) && f.conditions.iter().any(|(field, c)| name_prefix(*field, c))
    };
    dialect == Dialect::Sqlite
        && segment.match_mode == MatchMode::All
        && filters.iter().any(prefix)
        && customers_drive(&filters)
}

/// One page of a segment's members (`id, name, email`, by id): those after
/// id `after` and at most id `until` (each when given) and, with `search`,
/// those whose id, name or email contains it (ASCII case-insensitive); at
/// most `limit`. On SQLite a list of related blocks' customers (one that
/// drives, or the set of `match = "any"`) holds the rows of that window of
/// ids only (see [`compile_window_end`]); a page read in one query
/// ([`page_in_one_query`]) has no list, every related block is looked up per
/// customer.
pub fn compile_page(
    segment: &Segment,
    dialect: Dialect,
    at: DateTime<Utc>,
    window: (Option<&str>, Option<&str>),
    search: Option<&str>,
    limit: u32,
) -> Query {
    let mut b = Builder::new(dialect);
    let (after, until) = (window.0.map(|a| b.text(a)), window.1.map(|u| b.text(u)));
    let one_query = page_in_one_query(segment, dialect);
    if dialect == Dialect::Sqlite && !one_query {
        b.scope = Scope::Window(after.clone(), until.clone());
    }
    // Read in one query, the customers come through the name or email index:
    // the unary plus keeps SQLite (without statistics) from reading every
    // customer after `after` by id instead.
    let id = if one_query { "+c.id" } else { "c.id" };
    let predicate = segment_predicate(&mut b, segment, at.date_naive());
    let from = format!("customers c{}", b.join_clauses());
    let mut and = String::new();
    if let Some(p) = after {
        and.push_str(&format!(" AND {id} > {p}"));
    }
    if let Some(p) = until {
        and.push_str(&format!(" AND {id} <= {p}"));
    }
    if let Some(search) = search {
        let want = search.to_ascii_lowercase();
        let columns: Vec<String> = ["c.id", "COALESCE(c.name, '')", "COALESCE(c.email, '')"]
            .iter()
            .map(|col| {
                let folded = b.lower(col);
                b.string_op(&folded, Op::Contains, &want)
            })
            .collect();
        and.push_str(&format!(" AND ({})", columns.join(" OR ")));
    }
    let limit = b.bind(Bind::Int(i64::from(limit)));
    Query {
        merge_joins: false,
        sql: format!(
            "SELECT c.id, c.name, c.email FROM {from} WHERE ({predicate}){and} ORDER BY c.id LIMIT {limit}"
        ),
        binds: b.binds,
    }
}

/// The id that ends a window of `span` customers after id `after` (from the
/// first customer when `None`): one row, none when fewer customers follow.
/// A page of members is read window by window ([`compile_page`]), so that a
/// segment's first page reads a window's related rows, not every customer's:
/// on SQLite a list of a related block's customers is built whole before the
/// first member is known.
pub fn compile_window_end(after: Option<&str>, span: u64) -> Query {
    let offset = Bind::Int(i64::try_from(span.saturating_sub(1)).unwrap_or(i64::MAX));
    match after {
        Some(after) => Query {
            merge_joins: false,
            sql: "SELECT c.id FROM customers c WHERE c.id > $1 ORDER BY c.id LIMIT 1 OFFSET $2"
                .to_string(),
            binds: vec![Bind::Text(after.to_string()), offset],
        },
        None => Query {
            merge_joins: false,
            sql: "SELECT c.id FROM customers c ORDER BY c.id LIMIT 1 OFFSET $1".to_string(),
            binds: vec![offset],
        },
    }
}
