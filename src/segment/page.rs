//! A page of a segment's members, as the console lists them: read window by
//! window of customer ids, each window's lists holding its rows only.

use super::builder::Scope;
use super::{Bind, Builder, Dialect, Query, segment_predicate};
use crate::model::{Op, Segment};
use chrono::{DateTime, Utc};

/// One page of a segment's members (`id, name, email`, by id): those after
/// id `after` and at most id `until` (each when given) and, with `search`,
/// those whose id, name or email contains it (ASCII case-insensitive); at
/// most `limit`. On SQLite the lists of related blocks' customers hold the
/// rows of that window of ids only (see [`compile_window_end`]).
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
    if dialect == Dialect::Sqlite {
        b.scope = Scope::Window(after.clone(), until.clone());
    }
    let predicate = segment_predicate(&mut b, segment, at.date_naive());
    let from = format!("customers c{}", b.join_clauses());
    let mut and = String::new();
    if let Some(p) = after {
        and.push_str(&format!(" AND c.id > {p}"));
    }
    if let Some(p) = until {
        and.push_str(&format!(" AND c.id <= {p}"));
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
            sql: "SELECT c.id FROM customers c WHERE c.id > $1 ORDER BY c.id LIMIT 1 OFFSET $2"
                .to_string(),
            binds: vec![Bind::Text(after.to_string()), offset],
        },
        None => Query {
            sql: "SELECT c.id FROM customers c ORDER BY c.id LIMIT 1 OFFSET $1".to_string(),
            binds: vec![offset],
        },
    }
}
