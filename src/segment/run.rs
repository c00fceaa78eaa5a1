//! The queries of a trigger run.

use super::builder::Scope;
use super::{Bind, Builder, Dialect, Query, UNPAID_SQL, segment_predicate};
use crate::model::Segment;
use chrono::{DateTime, Utc};

/// What a trigger run asks of the database.
pub struct RunSpec<'a> {
    pub communication: &'a str,
    pub payment_reminder: bool,
    /// The run's instant.
    pub at: DateTime<Utc>,
    /// Customers reached since this instant are skipped (`min_interval`).
    pub reached_since: Option<DateTime<Utc>>,
    /// The channel needs the customer's email address (email): members
    /// without one are unreachable, neither enqueued nor counted as recipients.
    pub needs_address: bool,
}

/// A customer with an email address (not NULL, not blank), among `customers c`.
pub(super) const HAS_ADDRESS_SQL: &str = "NULLIF(TRIM(c.email), '') IS NOT NULL";

/// How many unreachable members a dry run names.
pub const UNREACHABLE_SAMPLE: u64 = 5;

/// Which of a run's candidates a query takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Those the channel can reach.
    Reachable,
    /// Those it cannot (no email address).
    Unreachable,
}

/// The queries of one trigger run.
pub struct RunQueries {
    /// The `customer_id, invoice_id` pairs the run would send about (`forecast`).
    pub candidates: Query,
    /// Who would be reached and with which invoices: `id, name, email, invoice_id`.
    pub preview: Query,
    /// One row: how many members the channel cannot reach (none for a channel
    /// that needs no address).
    pub unreachable: Option<Query>,
}

/// Compiles a trigger run: `email_invoice` is one delivery per unpaid invoice of
/// a member that this communication has not sent before; `payment_reminder` one
/// per member with unpaid invoices due before the run's UTC date, listing them.
pub fn compile_run(segment: &Segment, spec: &RunSpec<'_>, dialect: Dialect) -> RunQueries {
    let build_of = |reach: Reach, f: &dyn Fn(&mut Builder, &str) -> String| -> Query {
        let mut b = Builder::new(dialect);
        let candidates = candidates(&mut b, segment, spec, reach);
        let sql = f(&mut b, &candidates);
        Query {
            merge_joins: false,
            sql,
            binds: b.binds,
        }
    };
    let build = |f: &dyn Fn(&mut Builder, &str) -> String| build_of(Reach::Reachable, f);
    let unreachable = spec.needs_address.then(|| {
        build_of(Reach::Unreachable, &|_, cand| {
            format!("SELECT COUNT(DISTINCT x.customer_id) FROM ({cand}) x")
        })
    });
    let candidates =
        build(&|_, cand| format!("SELECT x.customer_id, x.invoice_id FROM ({cand}) x"));
    let preview = build(&|_, cand| {
        format!(
            "SELECT c.id, c.name, c.email, x.invoice_id FROM ({cand}) x JOIN customers c ON c.id = x.customer_id \
             ORDER BY c.id, x.invoice_id"
        )
    });
    RunQueries {
        candidates,
        preview,
        unreachable,
    }
}

/// The `customer_id, invoice_id` pairs a run would send `customer` about
/// (none when it would not reach them), at most `limit`, by invoice id.
pub fn compile_member_run(
    segment: &Segment,
    spec: &RunSpec<'_>,
    dialect: Dialect,
    customer: &str,
    limit: u32,
) -> Query {
    let mut b = Builder::new(dialect);
    // SQLite: the lists of related blocks hold this customer's rows only,
    // never every customer's (a segment of an unpaid invoice listed a million
    // invoices to preview one customer's message: 820 ms).
    let who = b.text(customer);
    if dialect == Dialect::Sqlite {
        b.scope = Scope::One(who.clone());
    }
    let cand = candidates(&mut b, segment, spec, Reach::Reachable);
    let limit = b.bind(Bind::Int(i64::from(limit)));
    Query {
        merge_joins: false,
        sql: format!(
            "SELECT x.customer_id, x.invoice_id FROM ({cand}) x WHERE x.customer_id = {who} \
             ORDER BY x.invoice_id LIMIT {limit}"
        ),
        binds: b.binds,
    }
}

/// `customer_id, invoice_id` of every intended delivery's invoices.
/// Of those the channel can reach, or of those it cannot (`reach`).
fn candidates(b: &mut Builder, segment: &Segment, spec: &RunSpec<'_>, reach: Reach) -> String {
    let today = spec.at.date_naive();
    let predicate = segment_predicate(b, segment, today);
    let comm = b.text(spec.communication);
    let event_rule = if spec.payment_reminder {
        let t = b.bind(Bind::Date(today));
        format!("i.due_date < {t}")
    } else {
        // A run's rows lie in its id range (migration 0007), the one way from a
        // run to its rows that an index serves.
        format!(
            "NOT EXISTS (SELECT 1 FROM segd_outbox o JOIN segd_trigger_runs u \
             ON o.id BETWEEN u.first_id AND u.last_id AND u.seq = o.run \
             WHERE o.invoice_id = i.id AND u.communication = {comm})"
        )
    };
    // Customers reached since: the rows of the communication's recent runs,
    // found through each run's id range (migration 0007), read once for the
    // whole run rather than probed per customer (the outbox has no index on
    // customers): PostgreSQL anti-joins them (hashed, spilling to disk when
    // large; a hashed `NOT IN` would fall back to a scan per customer beyond
    // work_mem), SQLite builds an index of the `NOT IN` list once.
    let interval = match spec.reached_since {
        Some(since) => {
            let s = b.bind(Bind::Stamp(since));
            let reached = format!(
                "FROM segd_trigger_runs u JOIN segd_outbox r ON r.id BETWEEN u.first_id AND u.last_id \
                 AND r.run = u.seq WHERE u.communication = {comm} AND u.started_at > {s} AND r.status <> 'dead'"
            );
            match b.dialect {
                Dialect::Sqlite => {
                    let one = match &b.scope {
                        Scope::One(p) => Some(format!(" AND r.customer_id = {p}")),
                        _ => None,
                    };
                    let one = one.unwrap_or_default();
                    format!(" AND c.id NOT IN (SELECT r.customer_id {reached}{one})")
                }
                Dialect::Postgres => {
                    format!(" AND NOT EXISTS (SELECT 1 {reached} AND r.customer_id = c.id)")
                }
            }
        }
        None => String::new(),
    };
    let address = match (spec.needs_address, reach) {
        (false, _) => String::new(),
        (true, Reach::Reachable) => format!(" AND {HAS_ADDRESS_SQL}"),
        (true, Reach::Unreachable) => format!(" AND NOT {HAS_ADDRESS_SQL}"),
    };
    let joins = b.join_clauses();
    format!(
        "SELECT c.id AS customer_id, i.id AS invoice_id FROM customers c{joins} JOIN invoices i ON i.customer_id = c.id \
         WHERE ({predicate}) AND {UNPAID_SQL} AND {event_rule}{interval}{address}"
    )
}
