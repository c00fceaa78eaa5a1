//! Segment membership (SPEC §2): an independent reference evaluator — plain Rust
//! over in-memory rows, written from SPEC §2 and the conformance oracle
//! (`shared/conformance/oracle.py`), not from the compiled SQL — checked against
//! the compiled queries on SQLite and PostgreSQL:
//!
//! - a property test over random small datasets and random segments;
//! - deterministic tests of every field and operator and the edge cases, with the
//!   expected members written down by hand;
//! - `segd segment members` end to end.
//!
//! PostgreSQL runs when `SEGD_TEST_POSTGRES_URL` is set (a fresh database per
//! test); otherwise the tests say that they skipped it.

use crate::cli_plan::TestDb;
use crate::segment_gen::{CustomPool, LONG_LIST, Pools, segment, uncovered};
use crate::support::{
    Db, Fixture, MemTemplates, PgTestDb, each_db, fresh_pg_db, segd_cmd, tree_of, validate_checked,
};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use proptest::prelude::*;
use proptest::sample::{Index, select, subsequence};
use proptest::test_runner::{Config, TestRunner};
use segd::model::fields::{
    CONNECTIONS, INVOICE_STATUSES, MONITOR_STATES, PAYMENT_STATUSES, PAYMENT_TYPES,
};
use segd::model::{
    Condition, Field, Filter, FilterType, MatchMode, Op, Scalar, Segment, ValueKind,
};
use segd::segment::{Dialect, Query, Select, compile, compile_impact, compile_page};
use segd::store::{PgStore, SqliteStore, Store};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

// ---------------------------------------------------------------------------
// Billing rows (SPEC §4), held in memory
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Connector {
    id: String,
    name: String,
    kind: String,
    connection: String,
}

#[derive(Debug, Clone)]
struct Customer {
    id: String,
    name: Option<String>,
    email: Option<String>,
    country: Option<String>,
    /// `None` is SQL NULL; `Some(Value::Null)` is the JSON value `null`.
    custom_data: Option<Value>,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Link {
    customer_id: String,
    connector_id: String,
}

#[derive(Debug, Clone)]
struct PaymentMethod {
    id: String,
    customer_id: String,
    /// The column `type`.
    payment_type: String,
    status: String,
    connector_id: Option<String>,
    is_default: Option<bool>,
}

#[derive(Debug, Clone)]
struct Invoice {
    id: String,
    customer_id: String,
    number: String,
    status: String,
    amount_cents: i64,
    currency: String,
    due_date: NaiveDate,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Monitor {
    id: String,
    customer_id: String,
    name: String,
    state: String,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
struct Dataset {
    connectors: Vec<Connector>,
    customers: Vec<Customer>,
    links: Vec<Link>,
    payment_methods: Vec<PaymentMethod>,
    invoices: Vec<Invoice>,
    monitors: Vec<Monitor>,
}

impl Dataset {
    fn connector(&self, id: &str) -> Option<&Connector> {
        self.connectors.iter().find(|k| k.id == id)
    }

    fn linked<'a>(&'a self, c: &'a Customer) -> impl Iterator<Item = &'a Connector> + 'a {
        self.links
            .iter()
            .filter(move |l| l.customer_id == c.id)
            .filter_map(|l| self.connector(&l.connector_id))
    }

    fn methods<'a>(&'a self, c: &'a Customer) -> impl Iterator<Item = &'a PaymentMethod> + 'a {
        self.payment_methods
            .iter()
            .filter(move |p| p.customer_id == c.id)
    }

    fn invoices_of<'a>(&'a self, c: &'a Customer) -> impl Iterator<Item = &'a Invoice> + 'a {
        self.invoices.iter().filter(move |i| i.customer_id == c.id)
    }

    fn monitors_of<'a>(&'a self, c: &'a Customer) -> impl Iterator<Item = &'a Monitor> + 'a {
        self.monitors.iter().filter(move |m| m.customer_id == c.id)
    }

    /// A customer with every row that refers to it, for mismatch reports.
    fn describe(&self, id: &str) -> String {
        let Some(c) = self.customers.iter().find(|c| c.id == id) else {
            return format!("  (no customer {id} in the dataset)\n");
        };
        let mut out = format!("  {c:?}\n");
        for k in self.linked(c) {
            out.push_str(&format!("    linked {k:?}\n"));
        }
        for p in self.methods(c) {
            out.push_str(&format!("    {p:?}\n"));
        }
        for i in self.invoices_of(c) {
            out.push_str(&format!("    {i:?}\n"));
        }
        for m in self.monitors_of(c) {
            out.push_str(&format!("    {m:?}\n"));
        }
        out
    }
}

// ---------------------------------------------------------------------------
// The reference evaluator
// ---------------------------------------------------------------------------

/// SPEC §2 read directly, over the rows of a [`Dataset`].
mod reference {
    use super::*;

    /// Unpaid invoices are the only ones with a value for the day fields.
    const UNPAID: [&str; 3] = ["open", "partially_paid", "overdue"];

    /// The members of `seg` at `at`, sorted by id.
    pub(super) fn members(ds: &Dataset, seg: &Segment, at: DateTime<Utc>) -> Vec<String> {
        let mut out: Vec<String> = ds
            .customers
            .iter()
            .filter(|c| member(ds, seg, c, at))
            .map(|c| c.id.clone())
            .collect();
        out.sort();
        out
    }

    fn member(ds: &Dataset, seg: &Segment, c: &Customer, at: DateTime<Utc>) -> bool {
        if seg.filters.is_empty() {
            return true;
        }
        let mut blocks = seg.filters.iter().map(|f| block(ds, f, c, at));
        match seg.match_mode {
            MatchMode::All => blocks.all(|b| b),
            MatchMode::Any => blocks.any(|b| b),
        }
    }

    /// One `[[filter]]`: for related types, one and the same row satisfies every
    /// condition; `negate` inverts the whole block.
    fn block(ds: &Dataset, f: &Filter, c: &Customer, at: DateTime<Utc>) -> bool {
        let holds = match f.filter_type {
            FilterType::Customer => {
                f.conditions
                    .iter()
                    .all(|(field, cond)| customer_field(ds, c, *field, cond))
                    && f.custom_data
                        .iter()
                        .all(|(key, cond)| json_matches(cond, custom_value(c, key.as_str())))
            }
            FilterType::Invoice => ds.invoices_of(c).any(|i| {
                f.conditions
                    .iter()
                    .all(|(field, cond)| invoice_field(i, *field, cond, at))
            }),
            FilterType::PaymentMethod => ds.methods(c).any(|p| {
                f.conditions
                    .iter()
                    .all(|(field, cond)| payment_method_field(ds, p, *field, cond))
            }),
            FilterType::Connector => ds.linked(c).any(|k| {
                f.conditions
                    .iter()
                    .all(|(field, cond)| connector_field(k, *field, cond))
            }),
            FilterType::Monitor => ds.monitors_of(c).any(|m| {
                f.conditions
                    .iter()
                    .all(|(field, cond)| monitor_field(m, *field, cond))
            }),
        };
        holds != f.negate
    }

    fn customer_field(ds: &Dataset, c: &Customer, field: Field, cond: &Condition) -> bool {
        match field {
            Field::CustomerName => text_matches(cond, c.name.as_deref(), true),
            Field::CustomerEmail => text_matches(cond, c.email.as_deref(), true),
            Field::CustomerCountry => text_matches(&upper(cond), c.country.as_deref(), false),
            // "linked to a connector of this name": some linked connector matches.
            Field::CustomerConnectorName => ds
                .linked(c)
                .any(|k| text_matches(cond, Some(&k.name), true)),
            // Through the default method; no default method = no value.
            Field::CustomerDefaultPaymentMethod | Field::CustomerDefaultPaymentMethodStatus => {
                let default = ds.methods(c).find(|p| p.is_default == Some(true));
                let value = default.map(|p| {
                    if field == Field::CustomerDefaultPaymentMethod {
                        p.payment_type.as_str()
                    } else {
                        p.status.as_str()
                    }
                });
                text_matches(cond, value, false)
            }
            other => panic!("{other:?} is not a customer field"),
        }
    }

    fn invoice_field(i: &Invoice, field: Field, cond: &Condition, at: DateTime<Utc>) -> bool {
        match field {
            Field::InvoiceStatus => text_matches(cond, Some(&i.status), false),
            Field::InvoiceDueDateExceededByDays => int_matches(cond, due_days(i, true, at)),
            Field::InvoiceDueInDays => int_matches(cond, due_days(i, false, at)),
            // Strictly after; only a plain value (eq) fits.
            Field::InvoiceCreatedAfter => match cond {
                Condition::Compare(Op::Eq, Scalar::Time(t)) => i.created_at > *t,
                other => panic!("created_after takes a plain time, not {other:?}"),
            },
            other => panic!("{other:?} is not an invoice field"),
        }
    }

    /// Days past due (`past`) or until due, for unpaid invoices on the right
    /// side of the evaluation date (UTC calendar dates; due today = 0).
    pub(super) fn due_days(i: &Invoice, past: bool, at: DateTime<Utc>) -> Option<i64> {
        if !UNPAID.contains(&i.status.as_str()) {
            return None;
        }
        let days = (at.date_naive() - i.due_date).num_days();
        let days = if past { days } else { -days };
        (days >= 0).then_some(days)
    }

    fn payment_method_field(
        ds: &Dataset,
        p: &PaymentMethod,
        field: Field,
        cond: &Condition,
    ) -> bool {
        match field {
            Field::PaymentMethodPaymentType => text_matches(cond, Some(&p.payment_type), false),
            Field::PaymentMethodStatus => text_matches(cond, Some(&p.status), false),
            Field::PaymentMethodConnector => {
                let name = p
                    .connector_id
                    .as_deref()
                    .and_then(|id| ds.connector(id))
                    .map(|k| k.name.as_str());
                text_matches(cond, name, true)
            }
            // NULL counts as false.
            Field::PaymentMethodIsDefault => bool_matches(cond, p.is_default == Some(true)),
            other => panic!("{other:?} is not a payment method field"),
        }
    }

    fn connector_field(k: &Connector, field: Field, cond: &Condition) -> bool {
        match field {
            Field::ConnectorName => text_matches(cond, Some(&k.name), true),
            Field::ConnectorConnection => text_matches(cond, Some(&k.connection), false),
            other => panic!("{other:?} is not a connector field"),
        }
    }

    fn monitor_field(m: &Monitor, field: Field, cond: &Condition) -> bool {
        match field {
            // Monitor names compare case-sensitively.
            Field::MonitorName => text_matches(cond, Some(&m.name), false),
            Field::MonitorState => text_matches(cond, Some(&m.state), false),
            other => panic!("{other:?} is not a monitor field"),
        }
    }

    /// Country codes are upper-cased on input.
    fn upper(cond: &Condition) -> Condition {
        let up = |v: &Scalar| match v {
            Scalar::Str(s) => Scalar::Str(s.to_ascii_uppercase()),
            other => other.clone(),
        };
        match cond {
            Condition::Compare(op, v) => Condition::Compare(*op, up(v)),
            Condition::List(op, vs) => Condition::List(*op, vs.iter().map(up).collect()),
            Condition::Exists(b) => Condition::Exists(*b),
        }
    }

    /// Text, enum and country values; `ci` folds ASCII letters only. A missing
    /// value matches no operator but `exists = false`.
    fn text_matches(cond: &Condition, actual: Option<&str>, ci: bool) -> bool {
        if let Condition::Exists(want) = cond {
            return actual.is_some() == *want;
        }
        let Some(actual) = actual else {
            return false;
        };
        let fold = |s: &str| {
            if ci {
                s.to_ascii_lowercase()
            } else {
                s.to_string()
            }
        };
        let a = fold(actual);
        match cond {
            Condition::Compare(op, Scalar::Str(w)) => {
                let w = fold(w);
                match op {
                    Op::Eq => a == w,
                    Op::Ne => a != w,
                    Op::Contains => a.contains(&w),
                    Op::StartsWith => a.starts_with(&w),
                    Op::EndsWith => a.ends_with(&w),
                    other => panic!("{other:?} does not fit text"),
                }
            }
            Condition::List(op, ws) => {
                let hit = ws
                    .iter()
                    .any(|w| matches!(w, Scalar::Str(w) if fold(w) == a));
                match op {
                    Op::In => hit,
                    Op::NotIn => !hit,
                    other => panic!("{other:?} is not a list operator"),
                }
            }
            other => panic!("not a text condition: {other:?}"),
        }
    }

    fn int_matches(cond: &Condition, actual: Option<i64>) -> bool {
        let Some(a) = actual else {
            return false;
        };
        let int = |v: &Scalar| match v {
            Scalar::Int(i) => *i,
            other => panic!("not a whole number: {other:?}"),
        };
        match cond {
            Condition::Compare(op, v) => {
                let w = int(v);
                match op {
                    Op::Eq => a == w,
                    Op::Ne => a != w,
                    Op::Gt => a > w,
                    Op::Gte => a >= w,
                    Op::Lt => a < w,
                    Op::Lte => a <= w,
                    other => panic!("{other:?} does not fit days"),
                }
            }
            Condition::List(op, vs) => {
                let hit = vs.iter().any(|v| int(v) == a);
                if *op == Op::In { hit } else { !hit }
            }
            Condition::Exists(_) => panic!("days take no `exists`"),
        }
    }

    fn bool_matches(cond: &Condition, actual: bool) -> bool {
        let b = |v: &Scalar| match v {
            Scalar::Bool(b) => *b,
            other => panic!("not a boolean: {other:?}"),
        };
        match cond {
            Condition::Compare(Op::Eq, v) => actual == b(v),
            Condition::Compare(Op::Ne, v) => actual != b(v),
            Condition::List(op, vs) => {
                let hit = vs.iter().any(|v| b(v) == actual);
                if *op == Op::In { hit } else { !hit }
            }
            other => panic!("not a boolean condition: {other:?}"),
        }
    }

    /// A top-level key of the customer's custom data; JSON `null` counts as missing.
    fn custom_value<'a>(c: &'a Customer, key: &str) -> Option<&'a Value> {
        c.custom_data
            .as_ref()
            .and_then(Value::as_object)
            .and_then(|o| o.get(key))
            .filter(|v| !v.is_null())
    }

    /// Equal by JSON type: numbers by value (10 == 10.0), strings exactly,
    /// booleans with booleans only.
    fn same(a: &Value, w: &Scalar) -> bool {
        match (a, w) {
            (Value::Number(n), Scalar::Int(i)) => match n.as_i64() {
                Some(x) => x == *i,
                None => n.as_f64() == Some(*i as f64),
            },
            (Value::Number(n), Scalar::Float(x)) => n.as_f64() == Some(*x),
            (Value::String(s), Scalar::Str(w)) => s == w,
            (Value::Bool(b), Scalar::Bool(w)) => b == w,
            _ => false,
        }
    }

    fn number(v: &Scalar) -> f64 {
        match v {
            Scalar::Int(i) => *i as f64,
            Scalar::Float(x) => *x,
            other => panic!("not a number: {other:?}"),
        }
    }

    /// A custom_data condition: a value of another type than the condition's
    /// matches only `ne` and `not_in`.
    fn json_matches(cond: &Condition, actual: Option<&Value>) -> bool {
        if let Condition::Exists(want) = cond {
            return actual.is_some() == *want;
        }
        let Some(a) = actual else {
            return false;
        };
        match cond {
            Condition::Compare(Op::Eq, w) => same(a, w),
            Condition::Compare(Op::Ne, w) => !same(a, w),
            Condition::List(Op::In, ws) => ws.iter().any(|w| same(a, w)),
            Condition::List(Op::NotIn, ws) => !ws.iter().any(|w| same(a, w)),
            Condition::Compare(op @ (Op::Contains | Op::StartsWith | Op::EndsWith), w) => {
                let (Value::String(s), Scalar::Str(w)) = (a, w) else {
                    return false;
                };
                match op {
                    Op::Contains => s.contains(w.as_str()),
                    Op::StartsWith => s.starts_with(w.as_str()),
                    _ => s.ends_with(w.as_str()),
                }
            }
            Condition::Compare(op @ (Op::Gt | Op::Gte | Op::Lt | Op::Lte), w) => {
                let Value::Number(n) = a else {
                    return false;
                };
                let (x, w) = (n.as_f64().unwrap_or(f64::NAN), number(w));
                match op {
                    Op::Gt => x > w,
                    Op::Gte => x >= w,
                    Op::Lt => x < w,
                    _ => x <= w,
                }
            }
            other => panic!("not a custom_data condition: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// The databases
// ---------------------------------------------------------------------------

/// The billing tables, children first (the order rows are deleted in).
const DELETES: [&str; 6] = [
    "DELETE FROM monitors",
    "DELETE FROM invoices",
    "DELETE FROM payment_methods",
    "DELETE FROM customer_connectors",
    "DELETE FROM customers",
    "DELETE FROM connectors",
];

/// SPEC §4 on SQLite: UTC text with whole seconds.
fn sqlite_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn sqlite_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Replaces the billing rows with `ds` in one transaction, binding every value in
/// the backend's storage forms (`ts`, `date`, `flag`, `json` convert them).
macro_rules! load_rows {
    ($pool:expr, $ds:expr, ts: $ts:expr, date: $date:expr, flag: $flag:expr, json: $json:expr) => {{
        let ds: &Dataset = $ds;
        let mut tx = $pool.begin().await?;
        for sql in DELETES {
            sqlx::query(sql).execute(&mut *tx).await?;
        }
        for k in &ds.connectors {
            sqlx::query("INSERT INTO connectors (id, name, kind, connection) VALUES ($1, $2, $3, $4)")
                .bind(&k.id)
                .bind(&k.name)
                .bind(&k.kind)
                .bind(&k.connection)
                .execute(&mut *tx)
                .await?;
        }
        for c in &ds.customers {
            sqlx::query(
                "INSERT INTO customers (id, name, email, country, custom_data, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&c.id)
            .bind(&c.name)
            .bind(&c.email)
            .bind(&c.country)
            .bind(c.custom_data.as_ref().map($json))
            .bind(($ts)(c.created_at))
            .execute(&mut *tx)
            .await?;
        }
        for l in &ds.links {
            sqlx::query("INSERT INTO customer_connectors (customer_id, connector_id) VALUES ($1, $2)")
                .bind(&l.customer_id)
                .bind(&l.connector_id)
                .execute(&mut *tx)
                .await?;
        }
        for p in &ds.payment_methods {
            sqlx::query(
                "INSERT INTO payment_methods (id, customer_id, type, status, connector_id, is_default) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&p.id)
            .bind(&p.customer_id)
            .bind(&p.payment_type)
            .bind(&p.status)
            .bind(&p.connector_id)
            .bind(p.is_default.map($flag))
            .execute(&mut *tx)
            .await?;
        }
        for i in &ds.invoices {
            sqlx::query(
                "INSERT INTO invoices (id, customer_id, number, status, amount_cents, currency, due_date, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&i.id)
            .bind(&i.customer_id)
            .bind(&i.number)
            .bind(&i.status)
            .bind(i.amount_cents)
            .bind(&i.currency)
            .bind(($date)(i.due_date))
            .bind(($ts)(i.created_at))
            .execute(&mut *tx)
            .await?;
        }
        for m in &ds.monitors {
            sqlx::query(
                "INSERT INTO monitors (id, customer_id, name, state, updated_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&m.id)
            .bind(&m.customer_id)
            .bind(&m.name)
            .bind(&m.state)
            .bind(($ts)(m.updated_at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }};
}

/// One migrated database of one backend.
struct Backend {
    label: &'static str,
    store: Box<dyn Store>,
    dialect: Dialect,
    keep: Keep,
}

/// What keeps a backend's database alive until the test is done with it.
enum Keep {
    Nothing,
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Pg(PgTestDb),
}

impl Backend {
    async fn sqlite() -> Backend {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let url = format!("sqlite://{}", dir.path().join("segments.db").display());
        let store = segd::store::connect(&url)
            .await
            .expect("open a SQLite database");
        Backend {
            label: "SQLite",
            store,
            dialect: Dialect::Sqlite,
            keep: Keep::Dir(dir),
        }
    }

    /// A fresh PostgreSQL database, or `None` (the helper says that `test`
    /// skipped it) without `SEGD_TEST_POSTGRES_URL`.
    async fn postgres(test: &str) -> Option<Backend> {
        let db = fresh_pg_db(test).await?;
        let store = segd::store::connect(&db.url)
            .await
            .expect("open the PostgreSQL test database");
        Some(Backend {
            label: "PostgreSQL",
            store,
            dialect: Dialect::Postgres,
            keep: Keep::Pg(db),
        })
    }

    /// The backend `db` for `test`: none when PostgreSQL is not configured.
    async fn of(db: Db, test: &str) -> Vec<Backend> {
        match db {
            Db::Sqlite => vec![Backend::sqlite().await],
            Db::Postgres => Backend::postgres(test).await.into_iter().collect(),
        }
    }

    /// Closes the connections and drops a PostgreSQL test database.
    async fn close(self) {
        self.store.close().await;
        if let Keep::Pg(db) = self.keep {
            db.cleanup().await;
        }
    }

    async fn load(&self, ds: &Dataset) -> Result<(), sqlx::Error> {
        let any = self.store.as_any();
        if let Some(s) = any.downcast_ref::<SqliteStore>() {
            load_rows!(
                s.pool,
                ds,
                ts: sqlite_ts,
                date: sqlite_date,
                flag: i64::from,
                json: Value::to_string
            )
        } else {
            let p = any
                .downcast_ref::<PgStore>()
                .expect("a SQLite or PostgreSQL store");
            load_rows!(
                p.pool,
                ds,
                ts: |t: DateTime<Utc>| t,
                date: |d: NaiveDate| d,
                flag: |b: bool| b,
                json: Value::clone
            )
        }
    }

    async fn ids(&self, seg: &Segment, at: DateTime<Utc>) -> Result<Vec<String>, String> {
        self.listed(&compile(seg, self.dialect, at, Select::Ids))
            .await
    }

    /// The ids a member query lists, in order.
    async fn listed(&self, q: &Query) -> Result<Vec<String>, String> {
        self.store
            .member_ids(q)
            .await
            .map_err(|e| format!("{}: {e}\nSQL: {}\nbinds: {:?}", self.label, q.sql, q.binds))
    }

    /// The members after id `window.0` and at most id `window.1`, by the
    /// console's page query (read window by window).
    async fn page(
        &self,
        seg: &Segment,
        at: DateTime<Utc>,
        window: (Option<&str>, Option<&str>),
    ) -> Result<Vec<String>, String> {
        self.listed(&compile_page(seg, self.dialect, at, window, None, u32::MAX))
            .await
    }

    async fn count(&self, seg: &Segment, at: DateTime<Utc>) -> Result<u64, String> {
        let q = compile(seg, self.dialect, at, Select::Count);
        self.store
            .count(&q)
            .await
            .map_err(|e| format!("{}: {e}\nSQL: {}", self.label, q.sql))
    }

    async fn rows_in(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let q = sqlx::AssertSqlSafe(sql);
        let any = self.store.as_any();
        if let Some(s) = any.downcast_ref::<SqliteStore>() {
            sqlx::query_scalar(q).fetch_one(&s.pool).await
        } else {
            let p = any
                .downcast_ref::<PgStore>()
                .expect("a SQLite or PostgreSQL store");
            sqlx::query_scalar(q).fetch_one(&p.pool).await
        }
        .expect("count rows")
    }
}

/// Compares one backend's members (and count) with the reference's; the error
/// names the segment, the instant and each customer they disagree on.
async fn check_segment(
    b: &Backend,
    ds: &Dataset,
    seg: &Segment,
    at: DateTime<Utc>,
    want: &[String],
) -> Result<(), String> {
    let got = b.ids(seg, at).await?;
    let count = b.count(seg, at).await?;
    // A window of the customers' ids (its lists restricted to that window),
    // as the console pages members: the members within it, no others.
    let mut ids: Vec<&str> = ds.customers.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    let (after, until) = (
        ids.get(ids.len() / 3).copied(),
        ids.get(ids.len() * 2 / 3).copied(),
    );
    let within = |id: &str| after.is_none_or(|a| id > a) && until.is_none_or(|u| id <= u);
    let in_window: Vec<String> = want.iter().filter(|id| within(id)).cloned().collect();
    let paged = b.page(seg, at, (after, until)).await?;
    if paged != in_window {
        return Err(format!(
            "{}: the page of the window ({after:?}, {until:?}] holds {paged:?}, the reference {in_window:?}\n--- segment ---\n{}",
            b.label,
            segd::canonical::segment(seg),
        ));
    }
    // A plan's impact counts between this segment and every customer, both
    // ways: who enters and who leaves are the customers outside it (a test
    // that is NULL for a customer must not hide them).
    let everyone = Segment {
        filters: Vec::new(),
        ..seg.clone()
    };
    let (members, outside) = (want.len() as u64, (ds.customers.len() - want.len()) as u64);
    let total = members + outside;
    for (before, after, expected) in [
        (seg, &everyone, [members, total, outside, 0]),
        (&everyone, seg, [total, members, 0, outside]),
    ] {
        let q = compile_impact(Some(before), after, b.dialect, at).counts;
        let counts = b
            .store
            .counts(&q)
            .await
            .map_err(|e| format!("{}: {e}\nSQL: {}", b.label, q.sql))?;
        if counts.get(..4) != Some(&expected[..]) {
            return Err(format!(
                "{}: impact counts (before, after, entering, leaving) {counts:?}, the reference {expected:?}\n--- segment ---\n{}",
                b.label,
                segd::canonical::segment(seg),
            ));
        }
    }
    if got == want && count == want.len() as u64 {
        return Ok(());
    }
    let (w, g): (BTreeSet<&String>, BTreeSet<&String>) =
        (want.iter().collect(), got.iter().collect());
    let mut report = format!(
        "{} disagrees with the reference evaluator at {}\n--- segment ---\n{}---\n\
         reference: {} members; {}: {} ids (count query: {count})\n",
        b.label,
        at.to_rfc3339(),
        segd::canonical::segment(seg),
        want.len(),
        b.label,
        got.len(),
    );
    if w == g {
        report.push_str("the same set: order or count differs\n");
    }
    for id in w.symmetric_difference(&g).take(5) {
        report.push_str(&format!(
            "customer {id}: reference says {}, {} says {}\n{}",
            if w.contains(id) {
                "member"
            } else {
                "not a member"
            },
            b.label,
            if g.contains(id) {
                "member"
            } else {
                "not a member"
            },
            ds.describe(id),
        ));
    }
    Err(report)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

// ---------------------------------------------------------------------------
// Random datasets
// ---------------------------------------------------------------------------

/// The date random data is laid around; evaluation happens within a day of it.
fn base_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 30).expect("a valid date")
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

/// Names that only match literally: `_` and `%` are no wildcards, `'` and `\`
/// no quotes or escapes, and non-ASCII letters do not fold.
const CONNECTOR_NAMES: [&str; 7] = [
    "Stripe",
    "my_stripe",
    "myXstripe",
    "Legacy%Pay",
    "LegacyXPay",
    "O'Brien\\Pay",
    "ÄPay",
];
const FIRST_NAMES: &[&str] = &[
    "Anna",
    "ben",
    "CARLA",
    "Ärger",
    "émile",
    "ÉMILE",
    "Max_Power",
    "MaxXPower",
    "50%",
    "50x",
    "O'Brien",
    "Back\\slash",
    "Zoë",
];
const LAST_NAMES: &[&str] = &[
    "Schmidt", "MILLER", "dupont", "Smith_Jr", "SmithXJr", "de Vries", "Lee",
];
const EMAIL_LOCALS: &[&str] = &[
    "anna",
    "Anna",
    "ANNA",
    "ben.x",
    "max_power",
    "maxXpower",
    "pct%off",
    "pctXoff",
    "o'brien",
    "back\\slash",
    "zoë",
    "ZOË",
];
const EMAIL_DOMAINS: &[&str] = &[
    "example.com",
    "Example.COM",
    "EXAMPLE.com",
    "acme.test",
    "corp_x.io",
    "corpXx.io",
    "mail.de",
];
const COUNTRY_POOL: &[&str] = &["DE", "FR", "NL", "US", "AT"];
const MONITOR_NAMES: &[&str] = &[
    "api-calls",
    "storage",
    "Storage",
    "error_rate",
    "errorXrate",
    "error%rate",
];
const CUSTOM_KEYS: &[&str] = &["plan", "seats", "trial", "region", "a.b", "nope"];

fn plan_values() -> Vec<Value> {
    vec![
        json!("pro"),
        json!("Pro"),
        json!("enterprise"),
        json!("free"),
        json!("pro_max"),
        json!("proXmax"),
        json!(10),
        Value::Null,
    ]
}

fn seats_values() -> Vec<Value> {
    vec![
        json!(1),
        json!(9),
        json!(10),
        json!(10.0),
        // Reals a boolean reads like.
        json!(0.0),
        json!(1.0),
        json!(9.5),
        json!(10.5),
        json!(11),
        json!(-3),
        json!("10"),
        json!(true),
        Value::Null,
    ]
}

fn trial_values() -> Vec<Value> {
    vec![
        json!(true),
        json!(false),
        json!("true"),
        json!(1),
        json!(0),
        Value::Null,
    ]
}

fn region_values() -> Vec<Value> {
    vec![
        json!("emea"),
        json!("EMEA"),
        json!("e%a"),
        json!("e_a"),
        json!("exa"),
        json!("o'ne"),
        json!("back\\slash"),
        json!("ümea"),
        // Arrays, objects and strings that read like them: SQLite gives all
        // three as text, only `json_type` tells them apart.
        json!(["emea"]),
        json!({"x": "emea"}),
        json!("[\"emea\"]"),
        json!("{emea}"),
    ]
}

#[derive(Debug, Clone)]
struct MethodGen {
    payment_type: &'static str,
    status: &'static str,
    connector: Option<usize>,
    /// Whether a method that is not the default says false or NULL.
    non_default: Option<bool>,
}

#[derive(Debug, Clone)]
struct InvoiceGen {
    status: &'static str,
    due: NaiveDate,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct CustomerGen {
    name: Option<String>,
    email: Option<String>,
    country: Option<&'static str>,
    custom_data: Option<Value>,
    created_at: DateTime<Utc>,
    links: Vec<usize>,
    methods: Vec<MethodGen>,
    default: Option<Index>,
    invoices: Vec<InvoiceGen>,
    monitors: Vec<(usize, &'static str)>,
}

fn custom_object() -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(0.7, select(plan_values())),
        prop::option::weighted(0.7, select(seats_values())),
        prop::option::weighted(0.6, select(trial_values())),
        prop::option::weighted(0.6, select(region_values())),
        prop::option::weighted(0.2, select(vec![json!("dot"), json!(1)])),
    )
        .prop_map(|(plan, seats, trial, region, dotted)| {
            let mut o = serde_json::Map::new();
            for (k, v) in [
                ("plan", plan),
                ("seats", seats),
                ("trial", trial),
                ("region", region),
                ("a.b", dotted),
            ] {
                if let Some(v) = v {
                    o.insert(k.to_string(), v);
                }
            }
            Value::Object(o)
        })
}

/// Due dates around the base date, with the boundaries of common day values,
/// and now and then a far-away sentinel date.
fn due_date() -> impl Strategy<Value = NaiveDate> {
    let base = base_date();
    prop_oneof![
        6 => select(vec![
            -91i64, -61, -60, -31, -30, -29, -15, -14, -8, -7, -6, -2, -1, 0, 0, 0, 1, 2, 6,
            7, 8, 13, 14, 15, 29, 30, 31,
        ])
        .prop_map(move |n| base + days(n)),
        6 => (-45i64..45).prop_map(move |n| base + days(n)),
        2 => select(vec![
            NaiveDate::from_ymd_opt(1, 1, 1).expect("a date"),
            NaiveDate::from_ymd_opt(9999, 12, 31).expect("a date"),
        ]),
    ]
}

/// Days (before the base date) and seconds into the day that creation times
/// take: a coarse grid, so `created_after` values drawn from it hit creation
/// times exactly and one second either side.
const CREATED_DAYS: [i64; 7] = [-60, -30, -14, -7, -2, -1, 0];
const CREATED_SECS: [i64; 3] = [0, 1, 86_399];

fn created_at() -> impl Strategy<Value = DateTime<Utc>> {
    let base = midnight(base_date());
    (select(CREATED_DAYS.to_vec()), select(CREATED_SECS.to_vec()))
        .prop_map(move |(d, s)| base + days(d) + secs(s))
}

fn invoice_gen() -> impl Strategy<Value = InvoiceGen> {
    (select(INVOICE_STATUSES.to_vec()), due_date(), created_at()).prop_map(
        |(status, due, created_at)| InvoiceGen {
            status,
            due,
            created_at,
        },
    )
}

fn method_gen() -> impl Strategy<Value = MethodGen> {
    (
        select(PAYMENT_TYPES.to_vec()),
        select(PAYMENT_STATUSES.to_vec()),
        prop::option::weighted(0.7, 0..CONNECTOR_NAMES.len()),
        prop::option::of(Just(false)),
    )
        .prop_map(|(payment_type, status, connector, non_default)| MethodGen {
            payment_type,
            status,
            connector,
            non_default,
        })
}

fn customer_gen() -> impl Strategy<Value = CustomerGen> {
    let name = prop::option::weighted(
        0.95,
        (select(FIRST_NAMES), select(LAST_NAMES)).prop_map(|(f, l)| format!("{f} {l}")),
    );
    let email = prop::option::weighted(
        0.85,
        (select(EMAIL_LOCALS), select(EMAIL_DOMAINS)).prop_map(|(l, d)| format!("{l}@{d}")),
    );
    let custom_data = prop_oneof![
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        8 => custom_object().prop_map(Some),
    ];
    let monitors = (
        subsequence((0..MONITOR_NAMES.len()).collect::<Vec<_>>(), 0..=3),
        prop::collection::vec(select(MONITOR_STATES), 3),
    )
        .prop_map(|(names, states)| names.into_iter().zip(states).collect::<Vec<_>>());
    (
        (
            name,
            email,
            prop::option::weighted(0.85, select(COUNTRY_POOL)),
            custom_data,
            created_at(),
        ),
        subsequence((0..CONNECTOR_NAMES.len()).collect::<Vec<_>>(), 0..=3),
        prop::collection::vec(method_gen(), 0..=3),
        prop::option::weighted(0.7, any::<Index>()),
        prop::collection::vec(invoice_gen(), 0..=4),
        monitors,
    )
        .prop_map(
            |(
                (name, email, country, custom_data, created_at),
                links,
                methods,
                default,
                invoices,
                monitors,
            )| {
                CustomerGen {
                    name,
                    email,
                    country,
                    custom_data,
                    created_at,
                    links,
                    methods,
                    default,
                    invoices,
                    monitors,
                }
            },
        )
}

fn dataset() -> impl Strategy<Value = Dataset> {
    (
        prop::collection::vec(select(CONNECTIONS), CONNECTOR_NAMES.len()),
        prop::collection::vec(customer_gen(), 20..=60),
    )
        .prop_map(|(connections, customers)| build_dataset(&connections, customers))
}

fn build_dataset(connections: &[&str], customers: Vec<CustomerGen>) -> Dataset {
    let mut ds = Dataset::default();
    let base = midnight(base_date());
    for (i, (name, connection)) in CONNECTOR_NAMES.iter().zip(connections).enumerate() {
        ds.connectors.push(Connector {
            id: format!("con_{i}"),
            name: name.to_string(),
            kind: "psp".into(),
            connection: connection.to_string(),
        });
    }
    for (n, g) in customers.into_iter().enumerate() {
        let id = format!("cus_{n:03}");
        for k in &g.links {
            ds.links.push(Link {
                customer_id: id.clone(),
                connector_id: format!("con_{k}"),
            });
        }
        let default = g
            .default
            .filter(|_| !g.methods.is_empty())
            .map(|ix| ix.index(g.methods.len()));
        for (j, m) in g.methods.iter().enumerate() {
            ds.payment_methods.push(PaymentMethod {
                id: format!("pm_{n:03}_{j}"),
                customer_id: id.clone(),
                payment_type: m.payment_type.into(),
                status: m.status.into(),
                connector_id: m.connector.map(|k| format!("con_{k}")),
                is_default: if default == Some(j) {
                    Some(true)
                } else {
                    m.non_default
                },
            });
        }
        for (j, inv) in g.invoices.iter().enumerate() {
            ds.invoices.push(Invoice {
                id: format!("inv_{n:03}_{j}"),
                customer_id: id.clone(),
                number: format!("INV-{n:03}-{j}"),
                status: inv.status.into(),
                amount_cents: 1000 + 37 * (n as i64) + j as i64,
                currency: "EUR".into(),
                due_date: inv.due,
                created_at: inv.created_at,
            });
        }
        for (j, (name, state)) in g.monitors.iter().enumerate() {
            ds.monitors.push(Monitor {
                id: format!("mon_{n:03}_{j}"),
                customer_id: id.clone(),
                name: MONITOR_NAMES[*name].into(),
                state: (*state).into(),
                updated_at: base - secs(3600 * (j as i64 + 1)),
            });
        }
        // The first customer's rows outlive it (a sync that deleted only the
        // customer): no query may take their customer id for a member.
        if n == 0 {
            continue;
        }
        ds.customers.push(Customer {
            id,
            name: g.name,
            email: g.email,
            country: g.country.map(str::to_string),
            custom_data: g.custom_data,
            created_at: g.created_at,
        });
    }
    ds
}

// ---------------------------------------------------------------------------
// Random segments
// ---------------------------------------------------------------------------

fn strs(values: &[&str]) -> Vec<Scalar> {
    values.iter().map(|s| Scalar::Str(s.to_string())).collect()
}

/// Values that hit the data above (whole names, case variants, substrings) and
/// the characters a LIKE or a quoted literal would misread.
fn field_values(field: Field) -> Vec<Scalar> {
    match field {
        Field::CustomerName => strs(&[
            "Anna Schmidt",
            "anna SCHMIDT",
            "ben MILLER",
            "Ärger Lee",
            "ärger lee",
            "ÉMILE dupont",
            "émile DUPONT",
            "Max_Power Smith_Jr",
            "ann",
            "_",
            "%",
            "x_p",
            "50%",
            "'",
            "\\",
            "É",
            "é",
            "_jr",
            "xjr",
            "o'brien",
            "back\\",
            "r l",
        ]),
        Field::CustomerEmail => strs(&[
            "anna@example.com",
            "ANNA@EXAMPLE.COM",
            "max_power@corp_x.io",
            "zoë@mail.de",
            "ZOË@MAIL.DE",
            "@example.com",
            "@EXAMPLE.COM",
            "corp_x",
            "x_p",
            "pct%",
            "%",
            "_",
            ".de",
            "'",
            "\\",
            "zoë",
            "ZOË",
            "anna",
        ]),
        Field::CustomerConnectorName | Field::ConnectorName | Field::PaymentMethodConnector => {
            strs(&[
                "Stripe",
                "STRIPE",
                "my_stripe",
                "MY_STRIPE",
                "y_s",
                "%",
                "_",
                "legacy%pay",
                "y%p",
                "pay",
                "äpay",
                "ÄPAY",
                "o'b",
                "\\",
                "'brien\\pay",
            ])
        }
        Field::MonitorName => strs(&[
            "api-calls",
            "API-CALLS",
            "storage",
            "Storage",
            "error_rate",
            "error%rate",
            "r_r",
            "r%r",
            "_",
            "%",
            "rate",
            "Stor",
            "stor",
        ]),
        _ => match field.kind() {
            ValueKind::Enum(values) => strs(values),
            ValueKind::Country => strs(&["DE", "FR", "NL", "US", "AT", "GB"]),
            ValueKind::Bool => vec![Scalar::Bool(true), Scalar::Bool(false)],
            // As often each: five in six near today, one in six beyond every
            // storable due date (see day_values_beyond_the_calendar).
            ValueKind::Days => [0i64, 0, 1, 2, 6, 7, 8, 13, 14, 15, 29, 30, 31, 60, 90]
                .into_iter()
                .chain([1_000_000, 3_000_000, i64::MAX])
                .map(Scalar::Int)
                .collect(),
            // The creation times' grid, and one second either side (twice as
            // often on it).
            ValueKind::Time => {
                let base = midnight(base_date());
                let mut day_pool = CREATED_DAYS.to_vec();
                day_pool.extend([-61, 1]);
                let mut times = Vec::new();
                for d in day_pool {
                    for s in CREATED_SECS {
                        for e in [-1i64, 0, 0, 1] {
                            times.push(Scalar::Time(base + days(d) + secs(s + e)));
                        }
                    }
                }
                times
            }
            ValueKind::Text { .. } => unreachable!("every text field has a pool above"),
        },
    }
}

/// The same values for every key (the data above gives the keys values of
/// every JSON type).
fn custom_pool() -> CustomPool {
    CustomPool {
        texts: strs(&[
            "pro",
            "Pro",
            "o",
            "_",
            "%",
            "e%a",
            "e_a",
            "x",
            "'",
            "\\",
            "ent",
            "max",
            "EM",
            "a",
            "10",
            "true",
            "emea",
            "free",
            "enterprise",
            "dot",
            "ümea",
            "Ü",
            "[\"emea\"]",
            "{emea}",
            "[",
        ]),
        numbers: vec![
            Scalar::Int(0),
            Scalar::Int(1),
            Scalar::Int(9),
            Scalar::Int(10),
            Scalar::Int(11),
            Scalar::Int(-3),
            Scalar::Float(9.5),
            Scalar::Float(10.0),
            Scalar::Float(10.5),
        ],
        others: vec![Scalar::Bool(true), Scalar::Bool(false)],
    }
}

fn has_long_list(seg: &Segment) -> bool {
    seg.filters.iter().any(|f| {
        f.conditions
            .values()
            .chain(f.custom_data.values())
            .any(|c| matches!(c, Condition::List(_, vs) if vs.len() > LONG_LIST))
    })
}

/// The property test's values for the shared segment generator.
fn pools() -> Arc<Pools> {
    Arc::new(Pools {
        fields: Field::ALL
            .into_iter()
            .map(|f| (f, field_values(f)))
            .collect(),
        custom_data: CUSTOM_KEYS
            .iter()
            .map(|k| (k.to_string(), custom_pool()))
            .collect(),
        long_lists: true,
    })
}

/// An instant within a day of the base date, at the edges of its days too.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let base = midnight(base_date());
    (-1i64..=1, select(vec![0i64, 1, 43_200, 86_399]))
        .prop_map(move |(d, s)| base + days(d) + secs(s))
}

/// `cases` by default, or `PROPTEST_CASES` from the environment for longer runs.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 300,
        ..Config::default()
    }
}

/// Random datasets and segments: the reference evaluator, SQLite and (when
/// configured) PostgreSQL find the same members. One database per backend,
/// refilled for each case; several segments per dataset.
fn sql_agrees_with_the_reference_evaluator(db: Db) {
    let rt = runtime();
    let backends = rt.block_on(Backend::of(db, "sql_agrees_with_the_reference_evaluator"));
    let mut runner = TestRunner::new(config(40));
    let strategy = (
        dataset(),
        prop::collection::vec(segment(pools()), 8),
        instant(),
    );
    // Segments checked, and those with some but not all customers as members.
    let checked = std::cell::Cell::new((0usize, 0usize));
    // Segments with a list longer than `LONG_LIST`.
    let long = std::cell::Cell::new(0usize);
    let result = runner.run(&strategy, |(ds, segments, at)| {
        rt.block_on(async {
            for b in &backends {
                b.load(&ds)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{}: loading rows: {e}", b.label)))?;
            }
            for seg in &segments {
                let want = reference::members(&ds, seg, at);
                for b in &backends {
                    check_segment(b, &ds, seg, at, &want)
                        .await
                        .map_err(TestCaseError::fail)?;
                }
                let (n, mixed) = checked.get();
                let is_mixed = !want.is_empty() && want.len() < ds.customers.len();
                checked.set((n + 1, mixed + usize::from(is_mixed)));
                if has_long_list(seg) {
                    long.set(long.get() + 1);
                }
            }
            Ok(())
        })
    });
    let labels: Vec<&str> = backends.iter().map(|b| b.label).collect();
    rt.block_on(async {
        for b in backends {
            b.close().await;
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (n, mixed) = checked.get();
    eprintln!(
        "checked {n} random segments ({mixed} with some but not all customers) on {}",
        labels.join(" and ")
    );
    // Guards the generators: most segments must split the customers.
    assert!(
        long.get() > 0,
        "no random segment had a list of over {LONG_LIST} values"
    );
    assert!(
        mixed * 3 >= n,
        "only {mixed} of {n} random segments split the customers"
    );
}

each_db!(sql_agrees_with_the_reference_evaluator);

// ---------------------------------------------------------------------------
// Deterministic cases: every field and operator, and the edge cases
// ---------------------------------------------------------------------------

/// The evaluation instant of the hand-written cases; its UTC date is `D`.
const AT: &str = "2026-11-30T12:00:00Z";

fn at(s: &str) -> DateTime<Utc> {
    segd::model::parse_time(s).expect("a valid instant")
}

fn d(offset: i64) -> NaiveDate {
    base_date() + days(offset)
}

fn utc(s: &str) -> DateTime<Utc> {
    at(s)
}

/// Ten customers whose rows hit each case below; `D` = 2026-11-30.
fn fixture() -> Dataset {
    let mut ds = Dataset::default();
    for (id, name, connection) in [
        ("k_stripe", "Stripe", "connected"),
        ("k_my", "my_stripe", "connected"),
        ("k_myx", "myXstripe", "error"),
        ("k_legacy", "Legacy%Pay", "disconnected"),
        ("k_legx", "LegacyXPay", "connected"),
        ("k_quote", "O'Brien\\Pay", "error"),
        ("k_umlaut", "ÄPay", "connected"),
    ] {
        ds.connectors.push(Connector {
            id: id.into(),
            name: name.into(),
            kind: "psp".into(),
            connection: connection.into(),
        });
    }
    // id, name, email, country, custom_data
    type Row = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<Value>,
    );
    let customers: [Row; 10] = [
        (
            "c01",
            "Anna Schmidt",
            Some("Anna.Schmidt@Example.COM"),
            Some("DE"),
            Some(json!({"plan": "enterprise", "seats": 10, "trial": false, "region": "emea"})),
        ),
        (
            "c02",
            "ben miller",
            Some("ben@example.com"),
            Some("FR"),
            Some(json!({"plan": "pro", "seats": 10.0})),
        ),
        ("c03", "CARLA Dupont", None, None, None),
        (
            "c04",
            "Max_Power",
            Some("max_power@corp_x.io"),
            Some("US"),
            Some(json!({"plan": "Pro", "seats": 9.5})),
        ),
        (
            "c05",
            "MaxXPower",
            Some("maxXpower@corpXx.io"),
            Some("US"),
            Some(json!({"seats": "10", "trial": true})),
        ),
        (
            "c06",
            "50% Off",
            Some("pct%off@shop.fr"),
            Some("NL"),
            Some(json!({
                "region": "e%a",
                "a.b": "dot",
                "a": {"b": "nested"},
                "a b": 1,
                "$.x": "dollar",
                "a[0]": "bracket",
                "ü": true,
            })),
        ),
        (
            "c07",
            "O'Brien",
            Some("o'brien@mail.de"),
            Some("DE"),
            Some(json!({"region": "back\\slash", "tags": {"vip": true}})),
        ),
        (
            "c08",
            "Ärger Émile",
            Some("ärger@mail.de"),
            Some("AT"),
            Some(json!({"trial": null, "tags": ["vip"]})),
        ),
        (
            "c09",
            "Robert'); DROP TABLE customers; --",
            Some("bobby@tables.test"),
            Some("GB"),
            Some(Value::Null),
        ),
        (
            "c10",
            "Zed",
            Some("ZED@EXAMPLE.COM"),
            Some("DE"),
            Some(json!({"tags": "[\"vip\"]"})),
        ),
    ];
    for (id, name, email, country, custom_data) in customers {
        ds.customers.push(Customer {
            id: id.into(),
            name: Some(name.into()),
            email: email.map(str::to_string),
            country: country.map(str::to_string),
            custom_data,
            created_at: utc("2025-01-02T03:04:05Z"),
        });
    }
    for (customer, connector) in [
        ("c01", "k_stripe"),
        ("c02", "k_my"),
        ("c04", "k_legacy"),
        ("c04", "k_stripe"),
        ("c05", "k_myx"),
        ("c05", "k_quote"),
        ("c06", "k_legx"),
        ("c07", "k_umlaut"),
        ("c08", "k_umlaut"),
    ] {
        ds.links.push(Link {
            customer_id: customer.into(),
            connector_id: connector.into(),
        });
    }
    for (id, customer, ty, status, connector, is_default) in [
        ("pm1", "c01", "card", "active", Some("k_stripe"), Some(true)),
        ("pm2", "c01", "sepa_debit", "expired", None, Some(false)),
        ("pm3", "c02", "ach", "failed", Some("k_my"), None),
        (
            "pm4",
            "c04",
            "paypal",
            "pending",
            Some("k_legacy"),
            Some(true),
        ),
        ("pm5", "c05", "card", "expired", Some("k_myx"), Some(false)),
        (
            "pm6",
            "c05",
            "bank_transfer",
            "active",
            Some("k_quote"),
            Some(true),
        ),
        ("pm7", "c07", "sepa_debit", "active", None, Some(true)),
        (
            "pm8",
            "c08",
            "card",
            "active",
            Some("k_umlaut"),
            Some(false),
        ),
    ] {
        ds.payment_methods.push(PaymentMethod {
            id: id.into(),
            customer_id: customer.into(),
            payment_type: ty.into(),
            status: status.into(),
            connector_id: connector.map(str::to_string),
            is_default,
        });
    }
    for (id, customer, status, due, created) in [
        ("i01", "c01", "open", d(-30), "2026-05-15T10:00:00Z"),
        ("i02", "c01", "paid", d(-40), "2026-05-01T00:00:00Z"),
        ("i03", "c02", "overdue", d(-29), "2026-07-01T08:00:00Z"),
        ("i04", "c02", "draft", d(-60), "2026-04-01T08:00:00Z"),
        ("i05", "c04", "partially_paid", d(0), "2026-06-01T00:00:00Z"),
        ("i06", "c05", "open", d(7), "2026-06-01T00:00:01Z"),
        ("i07", "c05", "void", d(-100), "2026-01-10T00:00:00Z"),
        ("i08", "c06", "paid", d(3), "2026-11-01T12:00:00Z"),
        ("i09", "c07", "overdue", d(-31), "2026-03-03T03:03:03Z"),
        ("i10", "c07", "open", d(1), "2026-10-31T23:59:59Z"),
        ("i11", "c08", "draft", d(7), "2026-11-20T00:00:00Z"),
        ("i12", "c10", "open", d(-1), "2026-10-01T00:00:00Z"),
    ] {
        ds.invoices.push(Invoice {
            id: id.into(),
            customer_id: customer.into(),
            number: format!("INV-{id}"),
            status: status.into(),
            amount_cents: 12_345,
            currency: "EUR".into(),
            due_date: due,
            created_at: utc(created),
        });
    }
    for (id, customer, name, state) in [
        ("m1", "c01", "api-calls", "ok"),
        ("m2", "c01", "storage", "alerting"),
        ("m3", "c02", "Storage", "no_data"),
        ("m4", "c04", "error_rate", "alerting"),
        ("m5", "c05", "errorXrate", "ok"),
        ("m6", "c06", "error%rate", "ok"),
        ("m7", "c10", "storage", "ok"),
    ] {
        ds.monitors.push(Monitor {
            id: id.into(),
            customer_id: customer.into(),
            name: name.into(),
            state: state.into(),
            updated_at: utc("2026-11-29T00:00:00Z"),
        });
    }
    ds
}

/// One hand-written case: filter blocks in TOML, the instant, the members.
struct Case {
    body: String,
    at: &'static str,
    want: Vec<&'static str>,
}

/// `[[filter]]` blocks of `type` with the given condition lines.
fn block(filter_type: &str, lines: &str) -> String {
    format!("[[filter]]\ntype = \"{filter_type}\"\n{lines}\n")
}

fn case(filter_type: &str, lines: &str, want: &[&'static str]) -> Case {
    Case {
        body: block(filter_type, lines),
        at: AT,
        want: want.to_vec(),
    }
}

/// A segment from its TOML body, through the validator as a user would write it.
fn parse_segment(body: &str) -> Segment {
    let text = format!("[segment]\nname = \"case\"\n{body}");
    let outcome = validate_checked(
        &tree_of(std::slice::from_ref(&text), &[], None),
        &MemTemplates::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        outcome.errors(),
        0,
        "invalid case:\n{text}\n{}",
        segd::diag::render_text(&outcome.diagnostics, false)
    );
    outcome
        .definitions
        .segments
        .into_values()
        .next()
        .expect("the case's segment")
        .def
}

/// Runs every case on the reference evaluator and on each backend, and fails
/// with every disagreement (not just the first). Returns the segments run.
fn run_cases(db: Db, test: &str, ds: &Dataset, cases: &[Case]) -> Vec<Segment> {
    let rt = runtime();
    let backends = rt.block_on(Backend::of(db, test));
    let mut failures = Vec::new();
    let mut segments = Vec::new();
    rt.block_on(async {
        for b in &backends {
            b.load(ds).await.expect("load the fixture rows");
        }
        for c in cases {
            let seg = parse_segment(&c.body);
            let at = at(c.at);
            let want: Vec<String> = c.want.iter().map(|s| s.to_string()).collect();
            let reference = reference::members(ds, &seg, at);
            if reference != want {
                failures.push(format!(
                    "reference evaluator at {}: {reference:?}, expected {want:?}\n{}",
                    c.at, c.body
                ));
            }
            for b in &backends {
                if let Err(e) = check_segment(b, ds, &seg, at, &want).await {
                    failures.push(e.replace("the reference evaluator", "the expected members"));
                }
            }
            segments.push(seg);
        }
        // Nothing a case did changed the rows.
        let tables = [
            ("connectors", ds.connectors.len()),
            ("customers", ds.customers.len()),
            ("customer_connectors", ds.links.len()),
            ("payment_methods", ds.payment_methods.len()),
            ("invoices", ds.invoices.len()),
            ("monitors", ds.monitors.len()),
        ];
        for b in backends {
            for (table, n) in tables {
                let rows = b.rows_in(table).await;
                if rows != n as i64 {
                    failures.push(format!("{}: {table} holds {rows} rows, not {n}", b.label));
                }
            }
            b.close().await;
        }
    });
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    segments
}

const ALL: [&str; 10] = [
    "c01", "c02", "c03", "c04", "c05", "c06", "c07", "c08", "c09", "c10",
];

fn customer_cases() -> Vec<Case> {
    let c = |lines: &str, want: &[&'static str]| case("customer", lines, want);
    vec![
        // name: ASCII case-insensitive; non-ASCII letters do not fold.
        c(r#"name = "anna schmidt""#, &["c01"]),
        c(r#"name = { ne = "ZED" }"#, &ALL[..9]),
        c(
            r#"name = { in = ["BEN MILLER", "zed", "nobody"] }"#,
            &["c02", "c10"],
        ),
        c(
            r#"name = { not_in = ["Anna Schmidt", "Ben Miller"] }"#,
            &ALL[2..],
        ),
        c(r#"name = { contains = "_" }"#, &["c04"]),
        c(r#"name = { contains = "%" }"#, &["c06"]),
        c(r#"name = { starts_with = "max_" }"#, &["c04"]),
        c(r#"name = { ends_with = "_power" }"#, &["c04"]),
        c(r#"name = { contains = "'" }"#, &["c07", "c09"]),
        c(r#"name = "ärger émile""#, &[]),
        c(r#"name = "ÄRGER ÉMILE""#, &["c08"]),
        // email: nullable; NULL matches no operator but exists = false.
        c(r#"email = "anna.schmidt@example.com""#, &["c01"]),
        c(
            r#"email = { ends_with = "@example.com" }"#,
            &["c01", "c02", "c10"],
        ),
        c(
            r#"email = { ne = "BEN@example.com" }"#,
            &["c01", "c04", "c05", "c06", "c07", "c08", "c09", "c10"],
        ),
        c(
            r#"email = { in = ["zed@example.com", "nobody@x.y"] }"#,
            &["c10"],
        ),
        c(
            r#"email = { not_in = ["ben@example.com"] }"#,
            &["c01", "c04", "c05", "c06", "c07", "c08", "c09", "c10"],
        ),
        c(r#"email = { contains = "_" }"#, &["c04"]),
        c(r#"email = { starts_with = "pct%" }"#, &["c06"]),
        c(r#"email = { contains = "'" }"#, &["c07"]),
        c(r#"email = { exists = false }"#, &["c03"]),
        c(
            r#"email = { exists = true }"#,
            &[
                "c01", "c02", "c04", "c05", "c06", "c07", "c08", "c09", "c10",
            ],
        ),
        c(
            "negate = true\nemail = { ends_with = \"@example.com\" }",
            &["c03", "c04", "c05", "c06", "c07", "c08", "c09"],
        ),
        // connector_name: some linked connector has this name.
        c(r#"connector_name = "STRIPE""#, &["c01", "c04"]),
        c(
            r#"connector_name = { in = ["my_stripe", "äpay"] }"#,
            &["c02"],
        ),
        c(r#"connector_name = { contains = "y_s" }"#, &["c02"]),
        c(r#"connector_name = { starts_with = "legacy%" }"#, &["c04"]),
        c(r#"connector_name = { ends_with = "\\pay" }"#, &["c05"]),
        // Through the default payment method (is_default NULL is not default).
        c(r#"default_payment_method = "card""#, &["c01"]),
        c(
            r#"default_payment_method = { ne = "card" }"#,
            &["c04", "c05", "c07"],
        ),
        c(
            r#"default_payment_method = { in = ["paypal", "sepa_debit"] }"#,
            &["c04", "c07"],
        ),
        c(
            r#"default_payment_method = { not_in = ["paypal"] }"#,
            &["c01", "c05", "c07"],
        ),
        c(
            r#"default_payment_method_status = "active""#,
            &["c01", "c05", "c07"],
        ),
        c(
            r#"default_payment_method_status = { ne = "active" }"#,
            &["c04"],
        ),
        c(
            r#"default_payment_method_status = { in = ["pending", "expired"] }"#,
            &["c04"],
        ),
        c(
            r#"default_payment_method_status = { not_in = ["active"] }"#,
            &["c04"],
        ),
        // Both tests on the one default method: c05's card is expired, but
        // its default method is an active bank transfer; c01's default card
        // is active.
        c(
            "default_payment_method = \"card\"\ndefault_payment_method_status = \"expired\"",
            &[],
        ),
        c(
            "default_payment_method = { in = [\"card\", \"sepa_debit\"] }\n\
             default_payment_method_status = \"active\"",
            &["c01", "c07"],
        ),
        case(
            "customer",
            "negate = true\ndefault_payment_method = \"paypal\"\ndefault_payment_method_status = \"pending\"",
            &[
                "c01", "c02", "c03", "c05", "c06", "c07", "c08", "c09", "c10",
            ],
        ),
        // country: upper-cased on input; nullable.
        c(r#"country = "de""#, &["c01", "c07", "c10"]),
        c(
            r#"country = { ne = "DE" }"#,
            &["c02", "c04", "c05", "c06", "c08", "c09"],
        ),
        c(r#"country = { in = ["FR", "nl"] }"#, &["c02", "c06"]),
        c(
            r#"country = { not_in = ["DE", "US"] }"#,
            &["c02", "c06", "c08", "c09"],
        ),
        c(r#"country = { exists = false }"#, &["c03"]),
        c(
            r#"country = { exists = true }"#,
            &[
                "c01", "c02", "c04", "c05", "c06", "c07", "c08", "c09", "c10",
            ],
        ),
    ]
}

fn custom_data_cases() -> Vec<Case> {
    let c = |cd: &str, want: &[&'static str]| {
        case("customer", &format!("custom_data = {{ {cd} }}"), want)
    };
    vec![
        // Numbers by value: 10 == 10.0; a string "10" is not a number.
        c("seats = 10", &["c01", "c02"]),
        c("seats = 10.0", &["c01", "c02"]),
        c("seats = { ne = 10 }", &["c04", "c05"]),
        c("seats = { in = [9.5, 11] }", &["c04"]),
        c("seats = { not_in = [10] }", &["c04", "c05"]),
        c("seats = { gt = 9 }", &["c01", "c02", "c04"]),
        c("seats = { gte = 10 }", &["c01", "c02"]),
        c("seats = { lt = 10 }", &["c04"]),
        c("seats = { lte = 9.5 }", &["c04"]),
        c(r#"seats = "10""#, &["c05"]),
        c(
            "seats = { exists = false }",
            &["c03", "c06", "c07", "c08", "c09", "c10"],
        ),
        // Strings compare case-sensitively.
        c(r#"plan = "pro""#, &["c02"]),
        c(r#"plan = { ne = "pro" }"#, &["c01", "c04"]),
        c(r#"plan = { contains = "r" }"#, &["c01", "c02", "c04"]),
        c(r#"plan = { starts_with = "P" }"#, &["c04"]),
        c(r#"plan = { ends_with = "prise" }"#, &["c01"]),
        c(r#"plan = { ne = 10 }"#, &["c01", "c02", "c04"]),
        c("plan = { gt = 1 }", &[]),
        // Booleans only with booleans; JSON null counts as missing.
        c("trial = true", &["c05"]),
        c("trial = false", &["c01"]),
        c("trial = { ne = true }", &["c01"]),
        c(r#"trial = { in = [true, "yes"] }"#, &["c05"]),
        c(
            "trial = { exists = false }",
            &["c02", "c03", "c04", "c06", "c07", "c08", "c09", "c10"],
        ),
        c("trial = { exists = true }", &["c01", "c05"]),
        // `%`, `_` and `\` are plain characters.
        c(r#"region = { contains = "%" }"#, &["c06"]),
        c(r#"region = { contains = "_" }"#, &[]),
        c(r#"region = { contains = "\\" }"#, &["c07"]),
        c(r#"region = "EMEA""#, &[]),
        c(r#"region = { starts_with = "e" }"#, &["c01", "c06"]),
        c(r#"region = { not_in = ["emea"] }"#, &["c06", "c07"]),
        // A key is one key, whatever its characters, never a path.
        c(r#""a.b" = "dot""#, &["c06"]),
        c(r#""a.b" = "nested""#, &[]),
        c(r#""a b" = 1"#, &["c06"]),
        c(r#""$.x" = "dollar""#, &["c06"]),
        c(r#""a[0]" = "bracket""#, &["c06"]),
        c(r#""ü" = true"#, &["c06"]),
        // A missing key matches no operator but exists = false.
        // An array, an object and a string that reads like an array: only
        // the string is a string.
        c(r#"tags = "[\"vip\"]""#, &["c10"]),
        c(r#"tags = { contains = "vip" }"#, &["c10"]),
        c(r#"tags = { starts_with = "[" }"#, &["c10"]),
        c(r#"tags = { in = ["[\"vip\"]", "x", 2] }"#, &["c10"]),
        c(r#"tags = { not_in = ["[\"vip\"]"] }"#, &["c07", "c08"]),
        c(r#"tags = { ne = "x" }"#, &["c07", "c08", "c10"]),
        c("tags = { exists = true }", &["c07", "c08", "c10"]),
        // A boolean is no number, though SQLite reads it as 1 or 0.
        c("trial = { lt = 1 }", &[]),
        c("trial = { gte = 0 }", &[]),
        c("trial = { in = [0, 1, 2] }", &[]),
        c("trial = 0", &[]),
        // Nor is a 1 or 0 a boolean where a test most customers pass is
        // the set of those that fail it.
        c("trial = { ne = 1 }", &["c01", "c05"]),
        c("trial = { not_in = [true, 0] }", &["c01"]),
        c(r#"seats = { not_in = [1, "10"] }"#, &["c01", "c02", "c04"]),
        c(r#""ü" = { gt = 0.5 }"#, &[]),
        c("nope = { exists = false }", &ALL),
        c("nope = { ne = 1 }", &[]),
        c(r#"nope = { not_in = ["x"] }"#, &[]),
        c("plan = \"enterprise\", seats = { gte = 10 }", &["c01"]),
    ]
}

fn invoice_cases() -> Vec<Case> {
    let c = |lines: &str, want: &[&'static str]| case("invoice", lines, want);
    vec![
        c(r#"status = "open""#, &["c01", "c05", "c07", "c10"]),
        c(
            r#"status = { ne = "paid" }"#,
            &["c01", "c02", "c04", "c05", "c07", "c08", "c10"],
        ),
        c(
            r#"status = { in = ["draft", "void"] }"#,
            &["c02", "c05", "c08"],
        ),
        c(
            r#"status = { not_in = ["open", "paid"] }"#,
            &["c02", "c04", "c05", "c07", "c08"],
        ),
        // Days past due: unpaid only; exactly 30; due today = 0.
        c("due_date_exceeded_by_days = 30", &["c01"]),
        c(
            "due_date_exceeded_by_days = { ne = 30 }",
            &["c02", "c04", "c07", "c10"],
        ),
        c(
            "due_date_exceeded_by_days = { in = [0, 31] }",
            &["c04", "c07"],
        ),
        c(
            "due_date_exceeded_by_days = { not_in = [0, 1, 29] }",
            &["c01", "c07"],
        ),
        c("due_date_exceeded_by_days = { gt = 29 }", &["c01", "c07"]),
        c("due_date_exceeded_by_days = { gte = 30 }", &["c01", "c07"]),
        c("due_date_exceeded_by_days = { lt = 1 }", &["c04"]),
        c("due_date_exceeded_by_days = { lte = 1 }", &["c04", "c10"]),
        c("due_date_exceeded_by_days = 0", &["c04"]),
        // A paid (or draft, void) invoice past its due date has no value.
        c(
            "status = \"paid\"\ndue_date_exceeded_by_days = { gte = 0 }",
            &[],
        ),
        c("due_date_exceeded_by_days = { gte = 40 }", &[]),
        // Days until due.
        c("due_in_days = 7", &["c05"]),
        c("due_in_days = { ne = 7 }", &["c04", "c07"]),
        c("due_in_days = { in = [0, 1] }", &["c04", "c07"]),
        c("due_in_days = { not_in = [0] }", &["c05", "c07"]),
        c("due_in_days = { gt = 1 }", &["c05"]),
        c("due_in_days = { gte = 1 }", &["c05", "c07"]),
        c("due_in_days = { lt = 1 }", &["c04"]),
        c("due_in_days = { lte = 7 }", &["c04", "c05", "c07"]),
        // Created strictly after; a date is 00:00:00 UTC of that day.
        c(
            "created_after = 2026-06-01",
            &["c02", "c05", "c06", "c07", "c08", "c10"],
        ),
        c(
            r#"created_after = "2026-06-01T02:00:00+02:00""#,
            &["c02", "c05", "c06", "c07", "c08", "c10"],
        ),
        c("created_after = 2026-10-31T23:59:59Z", &["c06", "c08"]),
        // One and the same invoice satisfies the whole block...
        c(
            "status = \"open\"\ndue_date_exceeded_by_days = { gte = 29 }",
            &["c01"],
        ),
        // ...two blocks are independent.
        Case {
            body: block("invoice", "status = \"open\"")
                + &block("invoice", "due_date_exceeded_by_days = { gte = 29 }"),
            at: AT,
            want: vec!["c01", "c07"],
        },
        // No unpaid invoice, including no invoice at all.
        c(
            "negate = true\nstatus = { in = [\"open\", \"overdue\", \"partially_paid\"] }",
            &["c03", "c06", "c08", "c09"],
        ),
    ]
}

fn payment_method_cases() -> Vec<Case> {
    let c = |lines: &str, want: &[&'static str]| case("payment_method", lines, want);
    vec![
        c(r#"payment_type = "card""#, &["c01", "c05", "c08"]),
        c(
            r#"payment_type = { ne = "card" }"#,
            &["c01", "c02", "c04", "c05", "c07"],
        ),
        c(
            r#"payment_type = { in = ["ach", "paypal"] }"#,
            &["c02", "c04"],
        ),
        c(
            r#"payment_type = { not_in = ["card", "sepa_debit"] }"#,
            &["c02", "c04", "c05"],
        ),
        c(r#"status = "expired""#, &["c01", "c05"]),
        c(
            r#"status = { ne = "active" }"#,
            &["c01", "c02", "c04", "c05"],
        ),
        c(
            r#"status = { in = ["failed", "pending"] }"#,
            &["c02", "c04"],
        ),
        c(
            r#"status = { not_in = ["active", "expired"] }"#,
            &["c02", "c04"],
        ),
        // connector: the method's connector name; nullable.
        c(r#"connector = "STRIPE""#, &["c01"]),
        c(
            r#"connector = { ne = "stripe" }"#,
            &["c02", "c04", "c05", "c08"],
        ),
        c(r#"connector = { in = ["legacy%pay"] }"#, &["c04"]),
        c(
            r#"connector = { not_in = ["my_stripe", "myxstripe"] }"#,
            &["c01", "c04", "c05", "c08"],
        ),
        c(r#"connector = { contains = "_" }"#, &["c02"]),
        c(r#"connector = { starts_with = "o'brien\\" }"#, &["c05"]),
        c(r#"connector = { ends_with = "%pay" }"#, &["c04"]),
        c(r#"connector = { exists = false }"#, &["c01", "c07"]),
        c(
            r#"connector = { exists = true }"#,
            &["c01", "c02", "c04", "c05", "c08"],
        ),
        c(
            "payment_type = \"sepa_debit\"\nconnector = { exists = true }",
            &[],
        ),
        // is_default: NULL counts as false.
        c("is_default = true", &["c01", "c04", "c05", "c07"]),
        c("is_default = false", &["c01", "c02", "c05", "c08"]),
        c("is_default = { ne = true }", &["c01", "c02", "c05", "c08"]),
        c(
            "is_default = { in = [false] }",
            &["c01", "c02", "c05", "c08"],
        ),
        c(
            "is_default = { not_in = [true] }",
            &["c01", "c02", "c05", "c08"],
        ),
        c(
            "is_default = { in = [true, false] }",
            &["c01", "c02", "c04", "c05", "c07", "c08"],
        ),
        c(
            "negate = true\nis_default = true",
            &["c02", "c03", "c06", "c08", "c09", "c10"],
        ),
    ]
}

fn connector_and_monitor_cases() -> Vec<Case> {
    let k = |lines: &str, want: &[&'static str]| case("connector", lines, want);
    let m = |lines: &str, want: &[&'static str]| case("monitor", lines, want);
    vec![
        k(r#"name = "legacy%pay""#, &["c04"]),
        k(
            r#"name = { ne = "ÄPay" }"#,
            &["c01", "c02", "c04", "c05", "c06"],
        ),
        k(r#"name = { in = ["stripe", "mystripe"] }"#, &["c01", "c04"]),
        k(
            r#"name = { not_in = ["stripe"] }"#,
            &["c02", "c04", "c05", "c06", "c07", "c08"],
        ),
        k(r#"name = { contains = "%" }"#, &["c04"]),
        k(r#"name = { starts_with = "my_" }"#, &["c02"]),
        k(r#"name = { ends_with = "xpay" }"#, &["c06"]),
        k(r#"connection = "error""#, &["c05"]),
        k(r#"connection = { ne = "connected" }"#, &["c04", "c05"]),
        k(
            r#"connection = { in = ["disconnected", "error"] }"#,
            &["c04", "c05"],
        ),
        k(
            r#"connection = { not_in = ["connected"] }"#,
            &["c04", "c05"],
        ),
        k("name = \"Stripe\"\nconnection = \"error\"", &[]),
        k(
            "negate = true\nconnection = \"connected\"",
            &["c03", "c05", "c09", "c10"],
        ),
        // Monitor names compare case-sensitively.
        m(r#"name = "storage""#, &["c01", "c10"]),
        m(
            r#"name = { ne = "storage" }"#,
            &["c01", "c02", "c04", "c05", "c06"],
        ),
        m(
            r#"name = { in = ["Storage", "error_rate"] }"#,
            &["c02", "c04"],
        ),
        m(
            r#"name = { not_in = ["storage", "api-calls"] }"#,
            &["c02", "c04", "c05", "c06"],
        ),
        m(r#"name = { contains = "_" }"#, &["c04"]),
        m(r#"name = { starts_with = "Stor" }"#, &["c02"]),
        m(r#"name = { ends_with = "%rate" }"#, &["c06"]),
        m(r#"state = "ok""#, &["c01", "c05", "c06", "c10"]),
        m(r#"state = { ne = "ok" }"#, &["c01", "c02", "c04"]),
        m(r#"state = { in = ["no_data"] }"#, &["c02"]),
        m(r#"state = { not_in = ["ok", "alerting"] }"#, &["c02"]),
        m("name = \"storage\"\nstate = \"ok\"", &["c10"]),
        m(
            "negate = true\nname = \"storage\"\nstate = \"ok\"",
            &ALL[..9],
        ),
    ]
}

fn segment_cases() -> Vec<Case> {
    vec![
        Case {
            body: String::new(),
            at: AT,
            want: ALL.to_vec(),
        },
        Case {
            body: "match = \"any\"\n".to_string()
                + &block("customer", "country = \"NL\"")
                + &block("monitor", "state = \"alerting\""),
            at: AT,
            want: vec!["c01", "c04", "c06"],
        },
        Case {
            body: block("customer", "country = \"NL\"") + &block("monitor", "state = \"alerting\""),
            at: AT,
            want: vec![],
        },
        Case {
            body: "match = \"any\"\n".to_string()
                + &block("invoice", "negate = true\nstatus = \"open\"")
                + &block("customer", "email = { exists = false }"),
            at: AT,
            want: vec!["c02", "c03", "c04", "c06", "c08", "c09"],
        },
        // A name prefix drives on SQLite (its index, each related block looked
        // up per customer on a member page): the page's window holds c05.
        Case {
            body: block("customer", r#"name = { starts_with = "max" }"#)
                + &block(
                    "invoice",
                    r#"status = { in = ["open", "partially_paid", "overdue"] }"#,
                )
                + &block("monitor", "negate = true\nstate = \"alerting\""),
            at: AT,
            want: vec!["c05"],
        },
    ]
}

/// `--at` moves the day fields: before, on and after a due date (c05's open
/// invoice is due on 2026-12-07), at the edges of UTC days and in another offset.
fn at_cases() -> Vec<Case> {
    let c = |at: &'static str, lines: &str, want: &[&'static str]| Case {
        body: block("invoice", &format!("status = \"open\"\n{lines}")),
        at,
        want: want.to_vec(),
    };
    vec![
        c("2026-11-30T00:00:00Z", "due_in_days = 7", &["c05"]),
        c("2026-11-30T23:59:59Z", "due_in_days = 7", &["c05"]),
        c("2026-12-01T01:00:00+02:00", "due_in_days = 7", &["c05"]),
        c("2026-12-01T00:00:00Z", "due_in_days = 7", &[]),
        c("2026-12-06T23:59:59Z", "due_in_days = 0", &[]),
        c("2026-12-06T23:59:59Z", "due_date_exceeded_by_days = 0", &[]),
        c("2026-12-07T00:00:00Z", "due_in_days = 0", &["c05"]),
        c(
            "2026-12-07T23:59:59Z",
            "due_date_exceeded_by_days = 0",
            &["c05"],
        ),
        c("2026-12-08T00:00:00Z", "due_date_exceeded_by_days = 0", &[]),
        c(
            "2026-12-08T00:00:00Z",
            "due_date_exceeded_by_days = 1",
            &["c05"],
        ),
        c("2026-12-08T00:00:00Z", "due_in_days = { gte = 0 }", &[]),
    ]
}

/// Every field with every operator that fits it appears in the cases, every
/// operator on custom data, `negate` on every filter type and `match = "any"`.
fn assert_covered(segments: &[Segment]) {
    let missing = uncovered(segments);
    assert!(missing.is_empty(), "no deterministic case for: {missing:?}");
}

fn every_field_and_operator(db: Db) {
    let ds = fixture();
    let cases: Vec<Case> = [
        customer_cases(),
        custom_data_cases(),
        invoice_cases(),
        payment_method_cases(),
        connector_and_monitor_cases(),
        segment_cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let segments = run_cases(db, "every_field_and_operator", &ds, &cases);
    assert_covered(&segments);
}

each_db!(every_field_and_operator);

fn evaluation_instant_moves_the_day_fields(db: Db) {
    run_cases(
        db,
        "evaluation_instant_moves_the_day_fields",
        &fixture(),
        &at_cases(),
    );
}

each_db!(evaluation_instant_moves_the_day_fields);

/// Values that would break a query built by splicing strings find nothing (or
/// exactly what holds them literally) and change nothing.
fn injection_attempts_match_literally_and_break_nothing(db: Db) {
    let attack = "'; DROP TABLE customers; --";
    let cases: Vec<Case> = [
        ("customer", format!("name = {attack:?}"), vec![]),
        (
            "customer",
            format!("name = {{ contains = {attack:?} }}"),
            vec![],
        ),
        (
            "customer",
            r#"name = { contains = "'); DROP TABLE customers; --" }"#.to_string(),
            vec!["c09"],
        ),
        (
            "customer",
            format!("email = {{ in = [{attack:?}, \"x' OR '1'='1\"] }}"),
            vec![],
        ),
        // Keys hold no quotes (a validation error), but a key is still data.
        (
            "customer",
            r#"custom_data = { "x; DROP TABLE customers; --" = { exists = false } }"#.to_string(),
            ALL.to_vec(),
        ),
        (
            "customer",
            format!("custom_data = {{ plan = {attack:?} }}"),
            vec![],
        ),
        (
            "customer",
            r#"connector_name = "x' OR 1=1 --""#.to_string(),
            vec![],
        ),
        (
            "monitor",
            r#"name = { starts_with = "\\'; DROP TABLE monitors; --" }"#.to_string(),
            vec![],
        ),
        (
            "connector",
            format!("name = {{ ends_with = {attack:?} }}"),
            vec![],
        ),
    ]
    .into_iter()
    .map(|(ty, lines, want)| Case {
        body: block(ty, &lines),
        at: AT,
        want,
    })
    .collect();
    run_cases(
        db,
        "injection_attempts_match_literally_and_break_nothing",
        &fixture(),
        &cases,
    );
    // run_cases also checked that every table still holds its rows.
}

each_db!(injection_attempts_match_literally_and_break_nothing);

/// Day values far beyond any stored date, against invoices due on the first
/// and last day a DATE column of either backend holds in SPEC §4's form.
fn day_values_beyond_the_calendar(db: Db) {
    let mut ds = Dataset::default();
    let first = NaiveDate::from_ymd_opt(1, 1, 1).expect("a date");
    let last = NaiveDate::from_ymd_opt(9999, 12, 31).expect("a date");
    for (id, due) in [("s1", last), ("s2", first)] {
        ds.customers.push(Customer {
            id: id.into(),
            name: Some(id.into()),
            email: None,
            country: None,
            custom_data: None,
            created_at: utc("2025-01-01T00:00:00Z"),
        });
        ds.invoices.push(Invoice {
            id: format!("inv_{id}"),
            customer_id: id.into(),
            number: id.into(),
            status: "open".into(),
            amount_cents: 1,
            currency: "EUR".into(),
            due_date: due,
            created_at: utc("2025-01-01T00:00:00Z"),
        });
    }
    let until_last = (last - base_date()).num_days();
    let since_first = (base_date() - first).num_days();
    let max = i64::MAX;
    let c = |lines: String, want: &[&'static str]| case("invoice", &lines, want);
    let cases = vec![
        c(format!("due_in_days = {until_last}"), &["s1"]),
        c(format!("due_in_days = {}", until_last + 1), &[]),
        c(format!("due_in_days = {{ gt = {until_last} }}"), &[]),
        c(format!("due_in_days = {{ gte = {until_last} }}"), &["s1"]),
        c("due_in_days = 3000000".into(), &[]),
        c("due_in_days = { gte = 3000000 }".into(), &[]),
        c("due_in_days = { lt = 3000000 }".into(), &["s1"]),
        c("due_in_days = { in = [3000000, 7] }".into(), &[]),
        c("due_in_days = { not_in = [3000000] }".into(), &["s1"]),
        c(format!("due_in_days = {max}"), &[]),
        c(format!("due_in_days = {{ lte = {max} }}"), &["s1"]),
        c(
            format!("due_date_exceeded_by_days = {since_first}"),
            &["s2"],
        ),
        c(
            format!("due_date_exceeded_by_days = {}", since_first + 1),
            &[],
        ),
        c(
            format!("due_date_exceeded_by_days = {{ gt = {since_first} }}"),
            &[],
        ),
        c("due_date_exceeded_by_days = 1000000".into(), &[]),
        c("due_date_exceeded_by_days = { gt = 1000000 }".into(), &[]),
        c(
            "due_date_exceeded_by_days = { lt = 1000000 }".into(),
            &["s2"],
        ),
        c(
            "due_date_exceeded_by_days = { ne = 1000000 }".into(),
            &["s2"],
        ),
        c(
            format!("due_date_exceeded_by_days = {{ gte = {max} }}"),
            &[],
        ),
        c(
            format!("due_date_exceeded_by_days = {{ not_in = [{max}, 1] }}"),
            &["s2"],
        ),
    ];
    run_cases(db, "day_values_beyond_the_calendar", &ds, &cases);
}

each_db!(day_values_beyond_the_calendar);

// ---------------------------------------------------------------------------
// End to end
// ---------------------------------------------------------------------------

/// `segd segment members` on a small tree and database: CSV, `--count`, and
/// `--from db` after `segd apply --auto-approve`; on SQLite, and on PostgreSQL
/// when configured.
/// Fields whose lists a user may make long: open text, custom_data and day counts.
const LONG_LIST_FIELDS: [&str; 7] = [
    "name",
    "email",
    "connector_name",
    "connector",
    "custom_data",
    "due_date_exceeded_by_days",
    "due_in_days",
];

/// A case's `in`/`not_in` list of a [`LONG_LIST_FIELDS`] field, padded with 150
/// values that match nothing (more than the compiler binds one by one), or
/// `None` for any other case.
fn padded(c: &Case) -> Option<Case> {
    let field = c.body.lines().nth(2)?.split(' ').next()?;
    let at = c.body.find("in = [")? + "in = [".len();
    if !LONG_LIST_FIELDS.contains(&field) {
        return None;
    }
    let pad: Vec<String> = match c.body[at..].chars().next()? {
        '"' => (0..150).map(|i| format!("\"zz-pad-{i}\"")).collect(),
        '0'..='9' => (0..150).map(|i| (20_000 + i).to_string()).collect(),
        _ => return None,
    };
    let body = format!("{}{}, {}", &c.body[..at], pad.join(", "), &c.body[at..]);
    Some(Case {
        body,
        at: c.at,
        want: c.want.clone(),
    })
}

/// Long lists bind differently (one array value) and select exactly what the
/// same lists without the padding do.
fn long_lists_select_what_short_ones_do(db: Db) {
    let cases: Vec<Case> = [
        customer_cases(),
        custom_data_cases(),
        invoice_cases(),
        connector_and_monitor_cases(),
        payment_method_cases(),
    ]
    .iter()
    .flatten()
    .filter_map(padded)
    .collect();
    assert!(cases.len() >= 15, "{} padded cases", cases.len());
    run_cases(
        db,
        "long_lists_select_what_short_ones_do",
        &fixture(),
        &cases,
    );
}

each_db!(long_lists_select_what_short_ones_do);

/// A 100,000-value list validates (linearly), plans and lists its members on
/// both backends (beyond SQLite's and PostgreSQL's limits on parameters).
fn a_hundred_thousand_value_list_validates_plans_and_lists_members(db: Db) {
    const N: usize = 100_000;
    let f = Fixture::empty();
    let emails: Vec<String> = (0..N).map(|i| format!("\"user{i}@example.com\"")).collect();
    let names: Vec<String> = (0..N).map(|i| format!("\"Customer {i}\"")).collect();
    // Two 100,000-value lists take about 4 MB, past the 1 MiB default cap.
    f.write("segd.toml", "max_file_bytes = 8388608\n");
    f.write(
        "segments.d/big.toml",
        &format!(
            "[segment]\nname = \"big\"\n\n[[filter]]\ntype = \"customer\"\nemail = {{ in = [{}] }}\n\
             name = {{ not_in = [{}] }}\n",
            emails.join(", "),
            names.join(", ")
        ),
    );
    f.validate("text").success();
    // Customer k has the address of user 7k (upper case: addresses compare
    // ASCII case-insensitively) and, for even k, a name on the `not_in` list.
    let rows: Vec<String> = (0..20_000)
        .map(|k| {
            let name = if k % 2 == 0 {
                format!("Customer {k}")
            } else {
                format!("Other {k}")
            };
            format!(
                "('k{k:05}', '{name}', 'USER{}@example.com', 'DE', '{{}}', '2026-01-01T00:00:00Z')",
                7 * k
            )
        })
        .collect();
    let insert = format!(
        "INSERT INTO customers (id, name, email, country, custom_data, created_at) VALUES {}",
        rows.join(", ")
    );
    // Odd k with 7k < N.
    let want: Vec<String> = (0..20_000)
        .filter(|k| k % 2 == 1 && 7 * k < N)
        .map(|k| format!("k{k:05}"))
        .collect();
    let check = |db: &TestDb| {
        let url = db.url.as_str();
        let segd = |args: &[&str]| {
            segd_cmd()
                .arg("--dir")
                .arg(f.path())
                .args(["--database-url", url])
                .args(args)
                .output()
                .expect("run segd")
        };
        let o = segd(&["db", "migrate"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        db.exec(&insert);
        let o = segd(&["plan", "--format", "json"]);
        assert!(
            o.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let o = segd(&["segment", "members", "big"]);
        assert!(
            o.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(got.len(), want.len(), "{url}");
        assert!(got == want, "{url}: the members differ");
    };
    match db {
        Db::Sqlite => check(&TestDb::sqlite(&f)),
        Db::Postgres => {
            if let Some(pg) = TestDb::postgres("a_hundred_thousand_value_list") {
                check(&pg);
            }
        }
    }
}

each_db!(a_hundred_thousand_value_list_validates_plans_and_lists_members);

fn members_command_end_to_end(db: Db) {
    let f = Fixture::empty();
    f.write(
        "segments.d/overdue.toml",
        "[segment]\nname = \"overdue\"\ndescription = \"Unpaid invoices 29+ days past due\"\n\n\
         [[filter]]\ntype = \"invoice\"\nstatus = { in = [\"open\", \"overdue\"] }\n\
         due_date_exceeded_by_days = { gte = 29 }\n",
    );
    let rt = runtime();
    match db {
        Db::Sqlite => {
            let sqlite = format!("sqlite://{}", f.path().join("segd.db").display());
            members_end_to_end(&rt, &f, &sqlite);
        }
        Db::Postgres => {
            if let Some(pg) = rt.block_on(fresh_pg_db("members_command_end_to_end")) {
                members_end_to_end(&rt, &f, &pg.url);
                rt.block_on(pg.cleanup());
            }
        }
    }
}

each_db!(members_command_end_to_end);

fn members_end_to_end(rt: &tokio::runtime::Runtime, f: &Fixture, url: &str) {
    rt.block_on(async {
        let store = segd::store::connect(url)
            .await
            .expect("create the database");
        let dialect = store.dialect();
        let b = Backend {
            label: "end to end",
            dialect,
            store,
            keep: Keep::Nothing,
        };
        b.load(&fixture()).await.expect("load the fixture rows");
        b.close().await;
    });
    let segd = |args: &[&str]| {
        let out = segd_cmd()
            .arg("--dir")
            .arg(f.path())
            .args(["--database-url", url])
            .args(args)
            .output()
            .expect("run segd");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "segd {args:?} on {url} failed ({:?})\nstdout:\n{stdout}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut args = vec!["segment", "members", "overdue", "--at", AT];
        args.extend_from_slice(extra);
        args
    };
    assert_eq!(
        segd(&with(&["--format", "csv"])),
        "id,name,email\n\
         c01,Anna Schmidt,Anna.Schmidt@Example.COM\n\
         c02,ben miller,ben@example.com\n\
         c07,O'Brien,o'brien@mail.de\n",
        "{url}"
    );
    assert_eq!(segd(&with(&["--count"])), "3\n", "{url}");
    // A month later c10's open invoice (due 2026-11-29) is 32 days past due too.
    assert_eq!(
        segd(&[
            "segment",
            "members",
            "overdue",
            "--at",
            "2026-12-31",
            "--count"
        ]),
        "4\n",
        "{url}"
    );
    segd(&["apply", "--auto-approve"]);
    assert_eq!(segd(&with(&["--from", "db"])), "c01\nc02\nc07\n", "{url}");
    assert_eq!(segd(&with(&["--from", "db", "--count"])), "3\n", "{url}");
}
