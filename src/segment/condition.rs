//! One field's test as SQL: text, enum and country comparisons, `is_default`,
//! the day counts of invoices as ranges of due dates, and the creation time.

use super::builder::{Builder, like_pattern};
use super::{Bind, Compiled, Dialect, Related, connector_ids};
use crate::model::{Condition, Field, Op, Scalar, ValueKind};
use chrono::{NaiveDate, TimeDelta};

/// The column (or expression) a field reads, and whether it compares case-insensitively.
fn column(field: Field) -> &'static str {
    use Field::*;
    match field {
        CustomerName => "c.name",
        CustomerEmail => "c.email",
        CustomerCountry => "c.country",
        CustomerConnectorName | ConnectorName | PaymentMethodConnector => "k.name",
        CustomerDefaultPaymentMethod | PaymentMethodPaymentType => "pm.type",
        CustomerDefaultPaymentMethodStatus | PaymentMethodStatus => "pm.status",
        InvoiceStatus => "i.status",
        InvoiceDueDateExceededByDays | InvoiceDueInDays => "i.due_date",
        InvoiceCreatedAfter => "i.created_at",
        PaymentMethodIsDefault => "pm.is_default",
        ConnectorConnection => "k.connection",
        MonitorName => "m.name",
        MonitorState => "m.state",
    }
}

fn strings(values: &[Scalar]) -> Vec<String> {
    values
        .iter()
        .filter_map(|v| match v {
            Scalar::Str(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// A field's test: on the block's row, or (a customer's connector name) the
/// related rows that pass it. A customer's default payment method fields are
/// not tested here: a block's tests of them are one [`default_method`].
pub(super) fn condition(
    b: &mut Builder,
    field: Field,
    c: &Condition,
    today: NaiveDate,
) -> Compiled {
    let expr = test(b, field, c, today);
    match field {
        // Reached through the customer's links.
        Field::CustomerConnectorName => Compiled::Rows {
            table: Related::Links,
            conds: connector_ids(b, "cc.connector_id", &expr),
            ranged: true,
        },
        // A method's connector among those that pass, but for `exists = false`,
        // which a method without one passes (on SQLite its block joins the
        // connectors).
        Field::PaymentMethodConnector if !matches!(c, Condition::Exists(false)) => {
            Compiled::Test(connector_ids(b, "pm.connector_id", &expr))
        }
        // PostgreSQL: a method without a named connector (none, or one no
        // connector with a name has), with the named ones looked up: it
        // estimates `k.name IS NULL` over the join from the connectors' names,
        // none of them missing, so at one method where 98,000 of 248,000 have
        // none, and drove an `all` from their customers (fixed seed `stop42`
        // shape-062, 643 ms; 6 ms so).
        Field::PaymentMethodConnector if b.dialect == Dialect::Postgres => {
            let named = connector_ids(b, "pm.connector_id", "k.name IS NOT NULL");
            Compiled::Test(format!("(pm.connector_id IS NULL OR NOT ({named}))"))
        }
        _ => Compiled::Test(expr),
    }
}

/// The customer's default payment method passes every one of `tests` (on
/// `pm`): the default methods that do. A customer has at most one default
/// method, so a block's tests of its type and its status are one list, one
/// pass over the methods, not a list each; `ranged` when the status test
/// reads a range of the methods' index by status.
pub(super) fn default_method(b: &Builder, tests: &[String], ranged: bool) -> Compiled {
    Compiled::Rows {
        table: Related::PaymentMethods,
        conds: default_row(b, tests),
        ranged,
    }
}

/// A payment method's row (`pm`) is its customer's default method and
/// passes every one of `tests`.
pub(super) fn default_row(b: &Builder, tests: &[String]) -> String {
    let mut conds = vec![format!("pm.is_default = {}", b.true_())];
    conds.extend(tests.iter().map(|t| format!("({t})")));
    conds.join(" AND ")
}

/// A field's test on the column it reads (for a customer's connector name or
/// default payment method, on the related row's).
pub(super) fn test(b: &mut Builder, field: Field, c: &Condition, today: NaiveDate) -> String {
    let col = column(field);
    let text = match field.kind() {
        ValueKind::Text { ci } => Some(ci),
        ValueKind::Enum(_) | ValueKind::Country => Some(false),
        _ => None,
    };
    match text {
        Some(ci) => string_condition(b, col, ci, c),
        None => match field.kind() {
            ValueKind::Days => days_condition(b, field, c, today),
            ValueKind::Time => match c {
                Condition::Compare(_, Scalar::Time(t)) => {
                    let p = b.bind(Bind::Time(*t));
                    format!("{col} > {p}")
                }
                _ => b.false_().to_string(),
            },
            _ => bool_condition(b, c),
        },
    }
}

/// A text, enum or country condition; NULL never matches (but `exists = false`).
fn string_condition(b: &mut Builder, col: &str, ci: bool, c: &Condition) -> String {
    let fold = |s: &str| {
        if ci {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        }
    };
    let expr = if ci {
        b.case_folded(col)
    } else {
        col.to_string()
    };
    let test = match c {
        Condition::Exists(true) => return format!("{col} IS NOT NULL"),
        Condition::Exists(false) => return format!("{col} IS NULL"),
        // SQLite's LIKE folds ASCII case only, exactly the SPEC's rule, and needs
        // no lower() per row; the value is bound with its wildcards escaped.
        Condition::Compare(
            op @ (Op::Contains | Op::StartsWith | Op::EndsWith),
            Scalar::Str(want),
        ) if ci && b.dialect == Dialect::Sqlite => {
            let p = b.text(&like_pattern(*op, want));
            format!("{col} LIKE {p} ESCAPE '\\'")
        }
        Condition::Compare(op, Scalar::Str(want)) => b.string_op(&expr, *op, &fold(want)),
        Condition::List(op, values) => {
            let folded: Vec<String> = strings(values).iter().map(|s| fold(s)).collect();
            b.in_list(&expr, *op == Op::NotIn, Bind::Texts(folded))
        }
        Condition::Compare(..) => b.false_().to_string(),
    };
    // Columns of related rows are filtered inside a subquery, where NULL is false.
    if col.starts_with("c.") {
        format!("{col} IS NOT NULL AND {test}")
    } else {
        test
    }
}

/// `is_default`: a NULL counts as false.
fn bool_condition(b: &mut Builder, c: &Condition) -> String {
    let (op, values): (Op, Vec<bool>) = match c {
        Condition::Compare(op, Scalar::Bool(v)) => (*op, vec![*v]),
        Condition::List(op, vs) => (
            *op,
            vs.iter()
                .filter_map(|v| match v {
                    Scalar::Bool(x) => Some(*x),
                    _ => None,
                })
                .collect(),
        ),
        _ => return b.false_().to_string(),
    };
    let positive = matches!(op, Op::Eq | Op::In);
    let accepts = |x: bool| values.contains(&x) == positive;
    let t = b.true_();
    match (accepts(true), accepts(false)) {
        (true, true) => b.true_().to_string(),
        (false, false) => b.false_().to_string(),
        (true, false) => format!("pm.is_default = {t}"),
        (false, true) => format!("(pm.is_default IS NULL OR pm.is_default <> {t})"),
    }
}

/// The due date `n` days from today in a day field's direction, or which side of
/// every storable due date it lies on when it is beyond them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DueBound {
    Date(NaiveDate),
    /// Earlier than every due date SPEC §4 can store (`YYYY-MM-DD`, year 0000
    /// on; PostgreSQL's DATE reads none before year 1 in that form).
    BeforeAll,
    /// Later than every due date SPEC §4 can store (up to 9999-12-31).
    AfterAll,
}

impl DueBound {
    fn new(today: NaiveDate, n: i64, past: bool, dialect: Dialect) -> Self {
        // Past: today − n; future: today + n. Negative n never passes
        // validation, but its side is still the right one.
        let earlier = past == (n >= 0);
        let shifted = TimeDelta::try_days(n).and_then(|delta| {
            if past {
                today.checked_sub_signed(delta)
            } else {
                today.checked_add_signed(delta)
            }
        });
        let first_year = match dialect {
            Dialect::Sqlite => 0,
            Dialect::Postgres => 1,
        };
        let first = NaiveDate::from_ymd_opt(first_year, 1, 1);
        let last = NaiveDate::from_ymd_opt(9999, 12, 31);
        match (shifted, first, last) {
            (Some(d), Some(first), Some(last)) if (first..=last).contains(&d) => Self::Date(d),
            _ if earlier => Self::BeforeAll,
            _ => Self::AfterAll,
        }
    }

    /// `i.due_date {op} bound` for a comparison `op` of SQL.
    fn compare(self, b: &mut Builder, op: &str) -> String {
        let holds = match self {
            Self::Date(d) => {
                let p = b.bind(Bind::Date(d));
                return format!("i.due_date {op} {p}");
            }
            // Every stored due date is later than the bound...
            Self::BeforeAll => matches!(op, ">" | ">=" | "<>"),
            // ...or earlier.
            Self::AfterAll => matches!(op, "<" | "<=" | "<>"),
        };
        if holds {
            b.true_().to_string()
        } else {
            b.false_().to_string()
        }
    }
}

/// `due_date_exceeded_by_days` / `due_in_days` as ranges of due dates, so an
/// index on the due date can serve them; only unpaid invoices have a value.
/// A day count whose due date lies beyond the dates a DATE column holds in SPEC
/// §4's form is decided here (no stored due date equals it, all lie on one side
/// of it) instead of being clamped onto a date some invoice could have.
fn days_condition(b: &mut Builder, field: Field, c: &Condition, today: NaiveDate) -> String {
    let past = field == Field::InvoiceDueDateExceededByDays;
    // More days = further from today: earlier dates when past, later when not.
    let (further, nearer) = if past { ("<", ">") } else { (">", "<") };
    let ints = |vs: &[Scalar]| -> Vec<i64> {
        vs.iter()
            .filter_map(|v| match v {
                Scalar::Int(i) => Some(*i),
                _ => None,
            })
            .collect()
    };
    // Whether the test alone keeps the due date on the counted side of today
    // (a day count of 0 or more, at or beyond it).
    let mut on_side = false;
    let test = match c {
        Condition::Compare(op, Scalar::Int(n)) => {
            let bound = DueBound::new(today, *n, past, b.dialect);
            on_side = *n >= 0
                && matches!(bound, DueBound::Date(_))
                && matches!(op, Op::Eq | Op::Gt | Op::Gte);
            match op {
                Op::Eq => bound.compare(b, "="),
                Op::Ne => bound.compare(b, "<>"),
                Op::Gt => bound.compare(b, further),
                Op::Gte => bound.compare(b, &format!("{further}=")),
                Op::Lt => bound.compare(b, nearer),
                Op::Lte => bound.compare(b, &format!("{nearer}=")),
                _ => b.false_().to_string(),
            }
        }
        Condition::List(op, values) => {
            let ns = ints(values);
            on_side = *op == Op::In && ns.iter().all(|n| *n >= 0);
            // Dates beyond the storable ones equal no due date: leave them out.
            let dates: Vec<NaiveDate> = ns
                .into_iter()
                .filter_map(|n| match DueBound::new(today, n, past, b.dialect) {
                    DueBound::Date(d) => Some(d),
                    DueBound::BeforeAll | DueBound::AfterAll => None,
                })
                .collect();
            match (*op == Op::NotIn, dates.is_empty()) {
                (false, true) => b.false_().to_string(),
                (true, true) => b.true_().to_string(),
                (not, false) => b.in_list("i.due_date", not, Bind::Dates(dates)),
            }
        }
        _ => b.false_().to_string(),
    };
    if on_side {
        return test;
    }
    // "Has a value" (unpaid, which the block states once): on the counted side
    // of today (due today = 0).
    let today_p = b.bind(Bind::Date(today));
    let side = if past {
        format!("i.due_date <= {today_p}")
    } else {
        format!("i.due_date >= {today_p}")
    };
    format!("{side} AND {test}")
}
