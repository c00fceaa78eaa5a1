//! The queries behind a plan's membership impact.

use super::run::HAS_ADDRESS_SQL;
use super::{Builder, Dialect, Query, segment_predicate};
use crate::model::Segment;
use chrono::{DateTime, Utc};

/// The queries that measure how a segment change moves membership: one row of
/// counts (before, after, entering, leaving, and members after the change
/// without an email address) and samples of who enters and leaves.
pub struct ImpactQueries {
    pub counts: Query,
    pub entering: Query,
    pub leaving: Query,
}

/// How many samples of entering and leaving customers a plan shows.
pub const IMPACT_SAMPLES: usize = 5;

pub fn compile_impact(
    before: Option<&Segment>,
    after: &Segment,
    dialect: Dialect,
    at: DateTime<Utc>,
) -> ImpactQueries {
    let today = at.date_naive();
    let one = |side: &dyn Fn(&mut Builder, &str, &str) -> String| -> Query {
        let mut b = Builder::new(dialect);
        // Both sides are computed for every customer (see below).
        b.per_row = true;
        let old = match before {
            Some(s) => segment_predicate(&mut b, s, today),
            None => b.false_().to_string(),
        };
        let new = segment_predicate(&mut b, after, today);
        // Selected as values, each side is true or false: a custom data test
        // may be NULL for a customer without the key (see `custom_data`),
        // and `NOT NULL` would hide that customer from those who enter or
        // leave.
        let (old, new) = (
            format!("COALESCE(({old}), {})", b.false_()),
            format!("COALESCE(({new}), {})", b.false_()),
        );
        let sql = side(&mut b, &old, &new);
        Query {
            merge_joins: false,
            sql,
            binds: b.binds,
        }
    };
    // Each side is computed once per customer: left in the WHERE clause,
    // PostgreSQL would plan the two as joins and, hoping the LIMIT of the
    // samples stops it early, may rescan one side whole for each customer
    // (quadratic when few or none enter); and a subquery it flattens has each
    // side computed for every place that names it. `OFFSET 0` keeps the
    // subquery apart.
    let fence = match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " OFFSET 0",
    };
    let counts = one(&|_, old, new| {
        let sum = |e: &str| format!("COALESCE(SUM(CASE WHEN {e} THEN 1 ELSE 0 END), 0)");
        format!(
            "SELECT {}, {}, {}, {}, {} FROM (SELECT ({old}) AS b, ({new}) AS a, \
             ({HAS_ADDRESS_SQL}) AS m FROM customers c{fence}) t",
            sum("t.b"),
            sum("t.a"),
            sum("t.a AND NOT t.b"),
            sum("t.b AND NOT t.a"),
            sum("t.a AND NOT t.m"),
        )
    });
    let sample = |enter: bool| {
        one(&move |_, old, new| {
            let (yes, no) = if enter { ("a", "b") } else { ("b", "a") };
            format!(
                "SELECT t.id FROM (SELECT c.id, ({old}) AS b, ({new}) AS a FROM customers c{fence}) t \
                 WHERE t.{yes} AND NOT t.{no} ORDER BY t.id LIMIT {IMPACT_SAMPLES}"
            )
        })
    };
    ImpactQueries {
        counts,
        entering: sample(true),
        leaving: sample(false),
    }
}
