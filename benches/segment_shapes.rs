//! Segment shapes against a linear bound: 200 random segments, made by the
//! property test's generator (`tests/it/segment_gen.rs`, fixed seed) with values
//! drawn from the demo data, each counted (`Select::Count`) and listed
//! (`Select::Ids` through `store.members`) on 200,000 demo customers (seed 7,
//! today 2026-11-30) in three setups: SQLite after ANALYZE, SQLite without
//! statistics, and PostgreSQL when configured.
//!
//!     cargo bench --bench segment_shapes
//!     SEGD_BENCH_CUSTOMERS=50000 cargo bench --bench segment_shapes
//!     SEGD_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench segment_shapes
//!
//! No setup is needed: the bench loads the demo data itself (the library's demo
//! loader) into SQLite files in a temporary folder and, with
//! `SEGD_BENCH_POSTGRES_URL`, into a fresh database `segd_shapes_<pid>` it creates
//! on that server and drops at the end. `SEGD_BENCH_TIMEOUT` (seconds, 5) stops
//! a query that runs longer (SQLite: a progress handler interrupts it;
//! PostgreSQL: `statement_timeout`), reported as a timeout.
//! `SEGD_BENCH_CLOCK=cpu` times the SQLite setups by the CPU time the process
//! spends (user and system; SQLite runs in it) instead of the wall clock, so
//! that a busy machine does not blur the ratios; PostgreSQL is always timed by
//! the wall clock. `SEGD_BENCH_REPORT=FILE` also writes every segment's figures, TOML and SQL (the count's, then the listing's) there,
//! one setup after the other; `SEGD_BENCH_SETUPS` (comma-separated among
//! `analyzed`, `plain`, `postgres`; all by default) runs only those setups,
//! and `SEGD_BENCH_ONLY=shape-012,shape-080` only those segments.
//! `SEGD_BENCH_SEED=TEXT` draws other segments than the fixed seed's (to try
//! shapes the figures in the docs were not measured on).
//!
//! A segment's count is held to a linear bound: the time one full scan of every
//! billing table it reads takes (customers always; invoices, payment_methods,
//! customer_connectors, connectors and monitors as its blocks and fields need
//! them), summed. A scan reads every row (a test on columns no index holds for
//! every row, never a `COUNT(*)` an index can answer). The scans are timed
//! beside the segment: before each run of its count, and again before each run
//! of its listing, so that both sides of a ratio see the machine at the same
//! speed. Its listing is held to the same scans plus handing its members over
//! at the rate `SELECT id FROM customers ORDER BY id` hands every customer over
//! (no plan lists rows faster than the client takes them). Times are the best
//! of 3; a query that has taken 1 s runs no more. The target is every segment
//! within 5× its bounds. Each table's scan is also timed once per setup, and
//! printed with the rate of listing.
//!
//! Prints per setup the median and largest ratios and how many segments are
//! over 5×, then the five worst with their times, members and TOML; exits with
//! 1 when any segment is over 5× (or timed out, failed, or disagreed on its
//! members), or when the segments leave a field, operator, `negate` or
//! `match = "any"` out.

// A benchmark reports on a terminal; the CLI's closed-pipe rule is not for it.
#![allow(clippy::disallowed_macros)]

mod common;
#[path = "../tests/it/segment_gen.rs"]
mod segment_gen;

use chrono::{DateTime, NaiveDate, Utc};
use common::{env_or, load_demo};
use proptest::strategy::{Strategy as _, ValueTree as _};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use segd::demo::DemoSpec;
use segd::model::{CustomDataKey, Field, FilterType, Name, Scalar, Segment, ValueKind};
use segd::segment::{Bind, Dialect, Query, Select, compile};
use segd::store::{SqliteStore, Store, connect};
use segment_gen::{CustomPool, Pools, segment, uncovered};
use sqlx::sqlite::SqlitePool;
use sqlx::{AssertSqlSafe, Connection as _};
use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn Error>>;

const SEGMENTS: usize = 200;
/// The seed of the segments (32 bytes for ChaCha).
const SEED: [u8; 32] = *b"segd segment shapes, issue #12!!";
/// The evaluation instant: noon of the demo data's today.
const AT: &str = "2026-11-30T12:00:00Z";
/// A segment slower than this many times its bound is a bad shape.
const LIMIT: f64 = 5.0;
const RUNS: usize = 3;
/// A query that has taken this long in total is not repeated.
const REPEAT_BUDGET: Duration = Duration::from_secs(1);
/// Customers sampled for the value pools.
const SAMPLE: u64 = 200;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------
// Value pools from the demo data

/// The stored rows of one column, as text.
async fn texts(pool: &SqlitePool, sql: &str) -> Res<Vec<String>> {
    Ok(sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
        .fetch_all(pool)
        .await?)
}

/// Variant `k` (of 5) of a sampled text, as a user would write it: whole, upper
/// case, lower case, `piece` of it, or a few characters from its middle.
fn variant(k: usize, s: &str, piece: &impl Fn(&str) -> String) -> Scalar {
    Scalar::Str(match k % 5 {
        0 => s.to_string(),
        1 => s.to_uppercase(),
        2 => s.to_lowercase(),
        3 => piece(s),
        _ => {
            let n = s.chars().count();
            s.chars().skip(n / 3).take(4).collect()
        }
    })
}

/// One variant of each sample, in turn.
fn text_pool(samples: &[String], piece: impl Fn(&str) -> String) -> Vec<Scalar> {
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| variant(i, s, &piece))
        .collect()
}

/// Every variant of each sample, for short lists.
fn all_variants(samples: &[String], piece: impl Fn(&str) -> String) -> Vec<Scalar> {
    samples
        .iter()
        .flat_map(|s| (0..5).map(|k| variant(k, s, &piece)).collect::<Vec<_>>())
        .collect()
}

fn first_word(s: &str) -> String {
    s.split([' ', '-']).next().unwrap_or(s).to_string()
}

fn email_domain(s: &str) -> String {
    s.find('@')
        .map_or_else(|| s.to_string(), |at| s[at..].to_string())
}

/// The 0th, 10th, …, 100th percentiles of `values` (sorted here).
fn deciles<T: Ord + Copy>(mut values: Vec<T>) -> Vec<T> {
    values.sort_unstable();
    if values.is_empty() {
        return values;
    }
    (0..=10)
        .map(|k| values[(values.len() - 1) * k / 10])
        .collect()
}

fn or_else(values: Vec<Scalar>, fallback: &[Scalar]) -> Vec<Scalar> {
    if values.is_empty() {
        fallback.to_vec()
    } else {
        values
    }
}

/// Values present in the database: sampled names, emails, countries, connector
/// and monitor names (with case variants and pieces), day counts and creation
/// instants at the deciles of the unpaid invoices' due dates and of all
/// invoices' creation times, and the custom_data keys with their values.
async fn demo_pools(pool: &SqlitePool, customers: u64) -> Res<Pools> {
    let step = (customers / SAMPLE).max(1);
    let sampled = |col: &str| {
        format!(
            "SELECT {col} FROM customers WHERE rowid % {step} = 0 AND {col} IS NOT NULL LIMIT 40"
        )
    };
    let names = texts(pool, &sampled("name")).await?;
    let emails = texts(pool, &sampled("email")).await?;
    let countries = texts(
        pool,
        "SELECT DISTINCT country FROM customers WHERE country IS NOT NULL ORDER BY 1",
    )
    .await?;
    let connectors = texts(pool, "SELECT name FROM connectors ORDER BY id").await?;
    let monitors = texts(pool, "SELECT DISTINCT name FROM monitors ORDER BY 1").await?;

    let invoices: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM invoices")
        .fetch_one(pool)
        .await?;
    let invoice_step = (invoices / 400).max(1);
    let due = texts(
        pool,
        &format!(
            "SELECT due_date FROM invoices WHERE rowid % {invoice_step} = 0 \
             AND status IN ('open', 'partially_paid', 'overdue')"
        ),
    )
    .await?;
    let (mut past, mut ahead) = (Vec::new(), Vec::new());
    for d in due {
        let days = (today() - NaiveDate::parse_from_str(&d, "%Y-%m-%d")?).num_days();
        if days >= 0 {
            past.push(days);
        }
        if days <= 0 {
            ahead.push(-days);
        }
    }
    let created = texts(
        pool,
        &format!("SELECT created_at FROM invoices WHERE rowid % {invoice_step} = 0"),
    )
    .await?;
    let created: Vec<DateTime<Utc>> = created
        .iter()
        .filter_map(|t| segd::model::parse_time(t).ok())
        .collect();

    let mut fields = BTreeMap::new();
    for field in Field::ALL {
        let pool = match field {
            Field::CustomerName => text_pool(&names, first_word),
            Field::CustomerEmail => text_pool(&emails, email_domain),
            Field::CustomerConnectorName | Field::ConnectorName | Field::PaymentMethodConnector => {
                all_variants(&connectors, first_word)
            }
            Field::MonitorName => all_variants(&monitors, first_word),
            Field::InvoiceDueDateExceededByDays => {
                deciles(past.clone()).into_iter().map(Scalar::Int).collect()
            }
            Field::InvoiceDueInDays => deciles(ahead.clone())
                .into_iter()
                .map(Scalar::Int)
                .collect(),
            Field::InvoiceCreatedAfter => deciles(created.clone())
                .into_iter()
                .map(Scalar::Time)
                .collect(),
            _ => match field.kind() {
                ValueKind::Enum(values) => {
                    values.iter().map(|v| Scalar::Str(v.to_string())).collect()
                }
                ValueKind::Country => countries.iter().cloned().map(Scalar::Str).collect(),
                ValueKind::Bool => vec![Scalar::Bool(true), Scalar::Bool(false)],
                _ => Vec::new(),
            },
        };
        // A pool left empty by a tiny database: a value that matches nothing.
        let pool = or_else(pool, &[Scalar::Str("none".into())]);
        fields.insert(field, pool);
    }
    Ok(Pools {
        fields,
        custom_data: custom_pools(pool, step).await?,
        // Kept short, so that the figures compare with earlier runs.
        long_lists: false,
    })
}

/// The custom_data keys of sampled customers, each with its values: strings
/// (with variants and pieces), numbers at their deciles, booleans. A key
/// without values of a kind borrows every key's.
async fn custom_pools(pool: &SqlitePool, step: u64) -> Res<Vec<(String, CustomPool)>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT j.key, j.type, CAST(j.atom AS TEXT) FROM customers c, json_each(c.custom_data) j \
         WHERE c.rowid % {step} = 0 AND json_valid(c.custom_data) AND j.atom IS NOT NULL"
    )))
    .fetch_all(pool)
    .await?;
    #[derive(Default)]
    struct Seen {
        strings: BTreeSet<String>,
        numbers: Vec<i64>,
        floats: Vec<Scalar>,
        bools: BTreeSet<bool>,
    }
    let mut keys: BTreeMap<String, Seen> = BTreeMap::new();
    for (key, ty, atom) in rows {
        let seen = keys.entry(key).or_default();
        match ty.as_str() {
            "text" => {
                seen.strings.insert(atom);
            }
            "integer" => seen.numbers.extend(atom.parse::<i64>().ok()),
            "real" => seen
                .floats
                .extend(atom.parse::<f64>().ok().map(Scalar::Float)),
            "true" | "false" => {
                seen.bools.insert(ty == "true");
            }
            _ => {}
        }
    }
    let pools: Vec<(String, CustomPool)> = keys
        .into_iter()
        .map(|(key, seen)| {
            let strings: Vec<String> = seen.strings.into_iter().collect();
            let mut numbers: Vec<Scalar> =
                deciles(seen.numbers).into_iter().map(Scalar::Int).collect();
            numbers.extend(seen.floats.into_iter().take(11));
            let pool = CustomPool {
                texts: all_variants(&strings, first_word),
                numbers,
                others: seen.bools.into_iter().map(Scalar::Bool).collect(),
            };
            (key, pool)
        })
        .collect();
    let every = |kind: fn(&CustomPool) -> &Vec<Scalar>, fallback: Scalar| {
        let all: Vec<Scalar> = pools.iter().flat_map(|(_, p)| kind(p).clone()).collect();
        or_else(all, &[fallback])
    };
    let texts = every(|p| &p.texts, Scalar::Str("none".into()));
    let numbers = every(|p| &p.numbers, Scalar::Int(0));
    let others = every(|p| &p.others, Scalar::Bool(true));
    let mut pools: Vec<(String, CustomPool)> = pools
        .into_iter()
        .map(|(key, p)| {
            let pool = CustomPool {
                texts: or_else(p.texts, &texts),
                numbers: or_else(p.numbers, &numbers),
                others: or_else(p.others, &others),
            };
            (key, pool)
        })
        .collect();
    if pools.is_empty() {
        let pool = CustomPool {
            texts,
            numbers,
            others,
        };
        pools.push(("plan".to_string(), pool));
    }
    Ok(pools)
}

/// Draws beyond [`SEGMENTS`] at most, looking for what they leave out.
const MORE_DRAWS: usize = 10_000;

/// The seed of the segments: [`SEED`], or to draw other segments the text of
/// `SEGD_BENCH_SEED` (its first 32 bytes, padded with zeros).
fn seed() -> [u8; 32] {
    let Ok(text) = std::env::var("SEGD_BENCH_SEED") else {
        return SEED;
    };
    let mut seed = [0u8; 32];
    for (s, b) in seed.iter_mut().zip(text.bytes()) {
        *s = b;
    }
    seed
}

/// The benchmark's segments: the generator's first [`SEGMENTS`] from [`seed`],
/// then those of its next draws that hold a field, operator, `negate` or
/// `match = "any"` the others leave out, until none is left out. Returns them
/// and what is still left out.
fn segments(pools: Pools) -> Res<(Vec<Segment>, Vec<String>)> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed()),
    );
    let strategy = segment(Arc::new(pools));
    let mut out: Vec<Segment> = Vec::with_capacity(SEGMENTS);
    let mut missing = Vec::new();
    for draw in 0..SEGMENTS + MORE_DRAWS {
        if draw == SEGMENTS {
            missing = uncovered(&out);
        }
        if draw >= SEGMENTS && missing.is_empty() {
            break;
        }
        let mut seg = strategy
            .new_tree(&mut runner)
            .map_err(|e| e.to_string())?
            .current();
        if draw >= SEGMENTS {
            let lacks = uncovered(std::slice::from_ref(&seg));
            if missing.iter().all(|m| lacks.contains(m)) {
                continue;
            }
            missing.retain(|m| lacks.contains(m));
        }
        seg.name = Name::parse(&format!("shape-{:03}", out.len() + 1))?;
        out.push(seg);
    }
    Ok((out, missing))
}

// ---------------------------------------------------------------------------
// The linear bound

/// The billing tables a segment may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Table {
    Customers,
    Invoices,
    PaymentMethods,
    CustomerConnectors,
    Connectors,
    Monitors,
}

impl Table {
    const ALL: [Table; 6] = [
        Table::Customers,
        Table::Invoices,
        Table::PaymentMethods,
        Table::CustomerConnectors,
        Table::Connectors,
        Table::Monitors,
    ];

    fn name(self) -> &'static str {
        match self {
            Table::Customers => "customers",
            Table::Invoices => "invoices",
            Table::PaymentMethods => "payment_methods",
            Table::CustomerConnectors => "customer_connectors",
            Table::Connectors => "connectors",
            Table::Monitors => "monitors",
        }
    }

    /// A count that reads every row: its test is on columns no index holds for
    /// every row, so neither engine can answer it from an index alone.
    fn scan(self) -> Query {
        let test = match self {
            Table::Customers => "created_at IS NOT NULL OR name IS NULL",
            Table::Invoices => "created_at IS NOT NULL OR number IS NULL",
            Table::PaymentMethods => "is_default IS NOT NULL OR type IS NULL",
            // Its primary key holds both columns: the key's index is all rows.
            Table::CustomerConnectors => "connector_id IS NOT NULL OR customer_id IS NULL",
            Table::Connectors => "connection IS NOT NULL OR name IS NULL",
            Table::Monitors => "updated_at IS NOT NULL OR name IS NULL",
        };
        Query {
            merge_joins: false,
            sql: format!("SELECT COUNT(*) FROM {} WHERE {test}", self.name()),
            binds: Vec::new(),
        }
    }
}

/// The tables `seg` reads: customers, and those its blocks and fields reach.
fn tables(seg: &Segment) -> BTreeSet<Table> {
    let mut out = BTreeSet::from([Table::Customers]);
    let links = [Table::CustomerConnectors, Table::Connectors];
    for f in &seg.filters {
        match f.filter_type {
            FilterType::Customer => {
                for field in f.conditions.keys() {
                    match field {
                        Field::CustomerConnectorName => out.extend(links),
                        Field::CustomerDefaultPaymentMethod
                        | Field::CustomerDefaultPaymentMethodStatus => {
                            out.insert(Table::PaymentMethods);
                        }
                        _ => {}
                    }
                }
            }
            FilterType::Invoice => {
                out.insert(Table::Invoices);
            }
            FilterType::PaymentMethod => {
                out.insert(Table::PaymentMethods);
                if f.conditions.contains_key(&Field::PaymentMethodConnector) {
                    out.insert(Table::Connectors);
                }
            }
            FilterType::Connector => out.extend(links),
            FilterType::Monitor => {
                out.insert(Table::Monitors);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Timing, with a deadline per query

/// The deadline of the running query, shared with SQLite's progress handlers.
#[derive(Clone)]
struct Deadline {
    start: Instant,
    /// Nanoseconds after `start`; `u64::MAX` when no query runs.
    at: Arc<AtomicU64>,
}

impl Deadline {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            at: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    fn nanos(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn set(&self, limit: Option<Duration>) {
        let at = limit.map_or(u64::MAX, |l| {
            self.nanos()
                .saturating_add(u64::try_from(l.as_nanos()).unwrap_or(u64::MAX))
        });
        self.at.store(at, Ordering::Relaxed);
    }

    fn open(&self) -> bool {
        self.nanos() <= self.at.load(Ordering::Relaxed)
    }
}

/// Gives every connection of the pool a progress handler that interrupts its
/// query once the deadline has passed. Repeated before each segment, as the
/// pool may have opened new connections.
async fn arm(pool: &SqlitePool, deadline: &Deadline) -> Res<()> {
    let mut held = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        held.push(pool.acquire().await?);
    }
    for conn in &mut held {
        let deadline = deadline.clone();
        conn.lock_handle()
            .await?
            .set_progress_handler(10_000, move || deadline.open());
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Timing {
    /// The best time, and the number the query gave.
    Done(Duration, u64),
    Timeout,
    Failed(String),
}

impl Timing {
    fn time(&self) -> Option<Duration> {
        match self {
            Timing::Done(t, _) => Some(*t),
            _ => None,
        }
    }

    fn show(&self) -> String {
        match self {
            Timing::Done(t, _) => format!("{:.1} ms", ms(*t)),
            Timing::Timeout => "timeout".to_string(),
            Timing::Failed(_) => "failed".to_string(),
        }
    }
}

struct Setup {
    label: String,
    store: Box<dyn Store>,
    dialect: Dialect,
    deadline: Deadline,
    timeout: Duration,
    /// Times by the process's CPU time, not the wall clock.
    cpu: bool,
}

/// The CPU time this process has spent so far, user and system (SQLite runs
/// in it, on the connections' threads).
#[allow(unsafe_code)] // getrusage has no safe wrapper in std or the crates the bench uses
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage only writes the struct it is given, which is zeroed
    // (a valid rusage) whether or not the call succeeds.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let of = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    of(usage.ru_utime) + of(usage.ru_stime)
}

/// One run of a query: the time it took by the setup's clock and by the wall
/// clock, and the number it gave (or its error).
struct Run {
    timed: Duration,
    took: Duration,
    out: Result<u64, String>,
}

impl Setup {
    /// Runs `q` once (counted or listed), stopped at the timeout.
    async fn once(&self, q: &Query, list: bool) -> Run {
        self.deadline.set(Some(self.timeout));
        let started = Instant::now();
        let cpu_started = cpu_time();
        let run = async {
            if list {
                self.store.members(q, |_| Ok(())).await
            } else {
                self.store.count(q).await
            }
        };
        // The engines stop the query at the timeout; this is the backstop.
        let out = tokio::time::timeout(self.timeout + Duration::from_secs(5), run).await;
        let took = started.elapsed();
        let timed = if self.cpu {
            cpu_time().saturating_sub(cpu_started)
        } else {
            took
        };
        self.deadline.set(None);
        let out = match out {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("stopped by the backstop".to_string()),
        };
        Run { timed, took, out }
    }

    /// The best of [`RUNS`] runs of `q` (counted or listed), each stopped at the
    /// timeout; fewer once they have taken [`REPEAT_BUDGET`].
    async fn time(&self, q: &Query, list: bool) -> Timing {
        self.time_beside(q, list, &[]).await.0
    }

    /// As [`Setup::time`], with the `scans` run once each before each run of
    /// `q`: also returns the best of their summed times, the bound timed beside
    /// the query. (The same scan's time drifted by half within minutes on the
    /// 2-core machine the bench was written on; a bound timed once per setup
    /// left a segment's ratio to the minute it ran in.)
    async fn time_beside(&self, q: &Query, list: bool, scans: &[Query]) -> (Timing, Duration) {
        let mut best: Option<(Duration, u64)> = None;
        let mut bound = Duration::MAX;
        let mut spent = Duration::ZERO;
        for _ in 0..RUNS {
            let mut sum = Duration::ZERO;
            for scan in scans {
                let run = self.once(scan, false).await;
                if let Err(e) = run.out {
                    return (Timing::Failed(format!("its bound's scan: {e}")), bound);
                }
                sum += run.timed;
            }
            bound = bound.min(sum);
            let run = self.once(q, list).await;
            match run.out {
                Ok(n) => {
                    if best.is_none_or(|(t, _)| run.timed < t) {
                        best = Some((run.timed, n));
                    }
                }
                Err(_) if run.took >= self.timeout => return (Timing::Timeout, bound),
                Err(e) => return (Timing::Failed(e), bound),
            }
            spent += run.took;
            if spent >= REPEAT_BUDGET {
                break;
            }
        }
        let timing = best.map_or(Timing::Timeout, |(t, n)| Timing::Done(t, n));
        (timing, bound)
    }
}

/// One segment's figures in one setup.
struct Shape {
    index: usize,
    count: Timing,
    list: Timing,
    /// The full scans of its tables, timed beside the count: its bound.
    scan: Duration,
    /// The same, timed beside the listing.
    list_scan: Duration,
    /// Handing its members to the caller, at the rate of listing every
    /// customer: the listing's bound is `list_scan + emit`.
    emit: Duration,
}

impl Shape {
    /// A timing against a bound; a timeout counts at the timeout (a lower
    /// bound on its ratio).
    fn of(t: &Timing, bound: Duration, timeout: Duration) -> f64 {
        t.time().unwrap_or(timeout).as_secs_f64() / bound.as_secs_f64()
    }

    fn count_ratio(&self, timeout: Duration) -> f64 {
        Self::of(&self.count, self.scan, timeout)
    }

    fn list_ratio(&self, timeout: Duration) -> f64 {
        Self::of(&self.list, self.list_scan + self.emit, timeout)
    }

    /// The worse of count and listing.
    fn ratio(&self, timeout: Duration) -> f64 {
        self.count_ratio(timeout).max(self.list_ratio(timeout))
    }

    fn timed_out(&self) -> bool {
        matches!(self.count, Timing::Timeout) || matches!(self.list, Timing::Timeout)
    }

    fn members(&self) -> Option<u64> {
        match (&self.count, &self.list) {
            (Timing::Done(_, n), _) | (_, Timing::Done(_, n)) => Some(*n),
            _ => None,
        }
    }

    /// Its figures and its TOML.
    fn describe(&self, seg: &Segment, timeout: Duration) -> String {
        let at_least = if self.timed_out() { "≥ " } else { "" };
        let tables: Vec<&str> = tables(seg).iter().map(|t| t.name()).collect();
        let members = self
            .members()
            .map_or_else(|| "?".to_string(), |n| n.to_string());
        format!(
            "{}: {at_least}{:.1}× — count {} ({at_least}{:.1}×), listing {} ({at_least}{:.1}×); \
             scans {:.1} ms ({}), {members} members ({:.1} ms to hand over)\n{}",
            seg.name,
            self.ratio(timeout),
            self.count.show(),
            self.count_ratio(timeout),
            self.list.show(),
            self.list_ratio(timeout),
            ms(self.scan),
            tables.join(" + "),
            ms(self.emit),
            segd::canonical::segment(seg),
        )
    }

    /// Count and listing finished and agree on the number of members.
    fn agrees(&self) -> bool {
        match (&self.count, &self.list) {
            (Timing::Done(_, a), Timing::Done(_, b)) => a == b,
            _ => true,
        }
    }
}

/// `q` with its connector lookups made the ids they find, as the store makes
/// them before it runs `q` (each id read as a member's would be).
async fn with_connectors(store: &dyn Store, mut q: Query) -> Res<Query> {
    for b in &mut q.binds {
        if let Bind::ConnectorIds(lookup) = b {
            *b = Bind::Texts(store.member_ids(lookup).await?);
        }
    }
    Ok(q)
}

/// A query with its values written in (for the report's reader to run it by
/// hand: `EXPLAIN QUERY PLAN`, `EXPLAIN ANALYZE`); never run by the bench.
fn literal(q: &Query, dialect: Dialect) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    // A list: SQLite's JSON array, PostgreSQL's array of that type.
    let list = |items: Vec<String>, pg_type: &str| match dialect {
        Dialect::Sqlite => quote(&serde_json::Value::from(items).to_string()),
        Dialect::Postgres => {
            let items: Vec<String> = items.iter().map(|s| quote(s)).collect();
            format!("CAST(ARRAY[{}] AS {pg_type}[])", items.join(", "))
        }
    };
    let mut sql = q.sql.clone();
    // From the last placeholder down, so that `$1` never matches in `$10`.
    for (i, b) in q.binds.iter().enumerate().rev() {
        let value = match b {
            Bind::Text(s) => quote(s),
            Bind::Int(n) => n.to_string(),
            Bind::Float(x) => x.to_string(),
            Bind::Bool(v) => v.to_string(),
            Bind::Time(t) | Bind::Stamp(t) => quote(&t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            Bind::Date(d) => quote(&d.to_string()),
            Bind::Texts(v) => list(v.clone(), "text"),
            Bind::Dates(v) => list(v.iter().map(ToString::to_string).collect(), "date"),
            // Looked up before ([`with_connectors`]).
            Bind::ConnectorIds(_) => "NULL".to_string(),
        };
        sql = sql.replace(&format!("${}", i + 1), &value);
    }
    format!("{sql};\n")
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

/// The time listing hands one member to the caller, in one setup (each
/// table's full scan is timed then too, for the header; a segment's bound is
/// timed beside it).
struct Bounds {
    per_member: f64,
}

impl Bounds {
    async fn measure(setup: &Setup) -> Res<Self> {
        let mut listed = Vec::new();
        for table in Table::ALL {
            match setup.time(&table.scan(), false).await {
                Timing::Done(t, _) => listed.push(format!("{} {:.1} ms", table.name(), ms(t))),
                other => return Err(format!("scanning {}: {}", table.name(), other.show()).into()),
            }
        }
        let all = Query {
            merge_joins: false,
            sql: "SELECT id FROM customers ORDER BY id".to_string(),
            binds: Vec::new(),
        };
        let per_member = match setup.time(&all, true).await {
            Timing::Done(t, n) => t.as_secs_f64() / n.max(1) as f64,
            other => return Err(format!("listing every customer: {}", other.show()).into()),
        };
        println!(
            "full scans (best of {RUNS}): {}; listing: {:.2} µs a member",
            listed.join(", "),
            per_member * 1e6
        );
        Ok(Self { per_member })
    }

    fn emit(&self, members: Option<u64>) -> Duration {
        Duration::from_secs_f64(self.per_member * members.unwrap_or(0) as f64)
    }
}

/// Runs every segment in one setup and prints its summary; returns whether
/// every segment is within bounds, and the member counts it found.
async fn run(
    setup: &Setup,
    segments: &[Segment],
    expected: &[Option<u64>],
) -> Res<(bool, Vec<Option<u64>>)> {
    let clock = if setup.cpu { "CPU time" } else { "wall clock" };
    println!("\n== {} ({clock}) ==", setup.label);
    let at = segd::model::parse_time(AT)?;
    // The bounds run as the segments do: on every connection, each armed.
    if let Some(s) = setup.store.as_any().downcast_ref::<SqliteStore>() {
        arm(&s.pool, &setup.deadline).await?;
    }
    let bounds = Bounds::measure(setup).await?;
    let progress = std::io::stderr().is_terminal();
    let mut shapes = Vec::with_capacity(segments.len());
    for (index, seg) in segments.iter().enumerate() {
        if progress {
            eprint!("\r{} {}/{}", setup.label, index + 1, segments.len());
        }
        if let Some(s) = setup.store.as_any().downcast_ref::<SqliteStore>() {
            arm(&s.pool, &setup.deadline).await?;
        }
        let scans: Vec<Query> = tables(seg).iter().map(|t| t.scan()).collect();
        let (count, scan) = setup
            .time_beside(
                &compile(seg, setup.dialect, at, Select::Count),
                false,
                &scans,
            )
            .await;
        let (list, list_scan) = setup
            .time_beside(&compile(seg, setup.dialect, at, Select::Ids), true, &scans)
            .await;
        let mut shape = Shape {
            index,
            count,
            list,
            scan,
            list_scan,
            emit: Duration::ZERO,
        };
        shape.emit = bounds.emit(shape.members());
        shapes.push(shape);
    }
    if progress {
        eprintln!();
    }

    let timeout = setup.timeout;
    let counts: Vec<f64> = shapes.iter().map(|s| s.count_ratio(timeout)).collect();
    let lists: Vec<f64> = shapes.iter().map(|s| s.list_ratio(timeout)).collect();
    let timeouts = shapes.iter().filter(|s| s.timed_out()).count();
    let over = shapes.iter().filter(|s| s.ratio(timeout) > LIMIT).count();
    let max = |xs: &[f64]| xs.iter().copied().fold(0.0, f64::max);
    println!(
        "{} segments: count median {:.2}×, max {:.1}×; listing median {:.2}×, max {:.1}×; \
         over {LIMIT}×: {over} ({timeouts} of them timed out at {} s)",
        shapes.len(),
        median(counts.clone()),
        max(&counts),
        median(lists.clone()),
        max(&lists),
        timeout.as_secs()
    );

    let mut ok = over == 0;
    for s in &shapes {
        let name = segments[s.index].name.as_str();
        for (what, t) in [("count", &s.count), ("listing", &s.list)] {
            if let Timing::Failed(e) = t {
                println!("{name}: {what} failed: {e}");
                ok = false;
            }
        }
        let first = expected.get(s.index).copied().flatten();
        let differs = first.zip(s.members()).is_some_and(|(a, b)| a != b);
        if !s.agrees() || differs {
            println!(
                "{name}: MISMATCH: count {}, listing {}, first setup {first:?}",
                s.count.show(),
                s.list.show(),
            );
            ok = false;
        }
    }

    let mut worst: Vec<&Shape> = shapes.iter().collect();
    worst.sort_by(|a, b| b.ratio(timeout).total_cmp(&a.ratio(timeout)));
    println!("worst five:");
    for s in worst.iter().take(5) {
        print!("\n{}", s.describe(&segments[s.index], timeout));
    }
    if let Ok(path) = std::env::var("SEGD_BENCH_REPORT") {
        let mut out = format!("== {} ==\n", setup.label);
        for s in &worst {
            let seg = &segments[s.index];
            out.push('\n');
            out.push_str(&s.describe(seg, timeout));
            for select in [Select::Count, Select::Ids] {
                let q =
                    with_connectors(&*setup.store, compile(seg, setup.dialect, at, select)).await?;
                out.push_str(&literal(&q, setup.dialect));
            }
            out.push('\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        std::io::Write::write_all(&mut file, out.as_bytes())?;
    }
    Ok((ok, shapes.iter().map(Shape::members).collect()))
}

// ---------------------------------------------------------------------------
// The databases

/// Gives the loaded database at `plain` the custom_data indexes `segd apply`
/// keeps for these segments' keys, and copies it to `analyzed`, which is then
/// analyzed; `plain`'s statistics are then dropped. Returns the copy's URL.
async fn sqlite_setups(
    plain: &str,
    analyzed: &std::path::Path,
    keys: &BTreeSet<CustomDataKey>,
) -> Res<String> {
    let store = connect(plain).await?;
    store.keep_custom_data(keys).await?;
    if let Some(s) = store.as_any().downcast_ref::<SqliteStore>() {
        sqlx::query("VACUUM INTO $1")
            .bind(analyzed.display().to_string())
            .execute(&s.pool)
            .await?;
        // `demo-data` analyzes its load: the plain setup drops what it made.
        for table in ["sqlite_stat1", "sqlite_stat4"] {
            sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
                .execute(&s.pool)
                .await?;
        }
    }
    store.close().await;
    let analyzed_url = format!("sqlite://{}", analyzed.display());
    let store = connect(&analyzed_url).await?;
    if let Some(s) = store.as_any().downcast_ref::<SqliteStore>() {
        sqlx::query("ANALYZE").execute(&s.pool).await?;
    }
    store.close().await;
    Ok(analyzed_url)
}

/// Whether the SQLite database holds planner statistics.
async fn has_statistics(store: &dyn Store) -> Res<bool> {
    let Some(s) = store.as_any().downcast_ref::<SqliteStore>() else {
        return Ok(true);
    };
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('sqlite_stat1', 'sqlite_stat4')",
    )
    .fetch_one(&s.pool)
    .await?;
    Ok(n > 0)
}

/// A fresh PostgreSQL database beside the one `admin_url` names.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: url::Url,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> Res<Self> {
        let name = format!("segd_shapes_{}", std::process::id());
        let mut url = url::Url::parse(admin_url)?;
        url.set_path(&format!("/{name}"));
        let db = Self {
            admin_url: admin_url.to_string(),
            name,
            url,
        };
        db.admin(&format!("CREATE DATABASE {}", db.name)).await?;
        Ok(db)
    }

    /// The URL whose connections stop a statement after `timeout`.
    fn with_timeout(&self, timeout: Duration) -> String {
        let mut url = self.url.clone();
        url.query_pairs_mut().append_pair(
            "options[statement_timeout]",
            &timeout.as_millis().to_string(),
        );
        url.to_string()
    }

    /// Runs one statement made of generated identifiers on the admin database.
    async fn admin(&self, sql: &str) -> Res<()> {
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await?;
        sqlx::query(AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(())
    }

    async fn drop_database(self) -> Res<()> {
        self.admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .await
    }
}

async fn bench() -> Res<bool> {
    let customers: u64 = env_or("SEGD_BENCH_CUSTOMERS", 200_000);
    let timeout = Duration::from_secs(env_or("SEGD_BENCH_TIMEOUT", 5));
    let cpu = match std::env::var("SEGD_BENCH_CLOCK").as_deref() {
        Ok("cpu") => true,
        Ok("wall") | Err(_) => false,
        Ok(other) => {
            return Err(format!("SEGD_BENCH_CLOCK: {other:?} is neither cpu nor wall").into());
        }
    };
    let spec = DemoSpec {
        seed: 7,
        customers,
        today: today(),
    };
    let drawn = std::env::var("SEGD_BENCH_SEED").map_or("the fixed seed".to_string(), |s| {
        format!("SEGD_BENCH_SEED={s}")
    });
    println!(
        "segment shapes: {SEGMENTS} segments ({drawn}), {customers} demo customers (seed 7, today {}), at {AT}",
        today()
    );
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let plain_url = format!("sqlite://{}", dir.path().join("plain.db").display());
    load_demo(&plain_url, spec).await?;
    let pools = {
        let store = connect(&plain_url).await?;
        let Some(s) = store.as_any().downcast_ref::<SqliteStore>() else {
            return Err("the plain database is SQLite".into());
        };
        let pools = demo_pools(&s.pool, customers).await?;
        store.close().await;
        pools
    };
    let keys: BTreeSet<CustomDataKey> = pools
        .custom_data
        .iter()
        .filter_map(|(k, _)| CustomDataKey::parse(k).ok())
        .collect();
    let analyzed_url = sqlite_setups(&plain_url, &dir.path().join("analyzed.db"), &keys).await?;
    let named: Vec<&str> = keys.iter().map(CustomDataKey::as_str).collect();
    println!(
        "SQLite databases built in {:.1} s (custom_data keys {})",
        started.elapsed().as_secs_f64(),
        named.join(", ")
    );
    let (mut segments, missing) = segments(pools)?;
    let only = std::env::var("SEGD_BENCH_ONLY").unwrap_or_default();
    if !only.is_empty() {
        segments.retain(|s| only.split(',').any(|o| o.trim() == s.name.as_str()));
        println!("only {} of the segments: {only}", segments.len());
    }
    if missing.is_empty() {
        println!(
            "{} segments ({SEGMENTS} and {} drawn after them to hold what they leave out): every filter type, \
             field and operator, negate on every type, and match = \"any\"",
            segments.len(),
            segments.len() - SEGMENTS
        );
    } else {
        println!("the segments leave out: {}", missing.join(", "));
    }

    let setups = std::env::var("SEGD_BENCH_SETUPS").unwrap_or_default();
    let chosen = |name: &str| setups.is_empty() || setups.split(',').any(|s| s.trim() == name);
    let mut ok = missing.is_empty();
    let mut expected: Vec<Option<u64>> = Vec::new();
    for (name, label, url, stats) in [
        ("analyzed", "SQLite, after ANALYZE", &analyzed_url, true),
        ("plain", "SQLite, no statistics", &plain_url, false),
    ] {
        if !chosen(name) {
            continue;
        }
        let store = connect(url).await?;
        if has_statistics(&*store).await? != stats {
            return Err(format!("{label}: sqlite_stat1 is not as the setup says").into());
        }
        let setup = Setup {
            label: label.to_string(),
            store,
            dialect: Dialect::Sqlite,
            deadline: Deadline::new(),
            timeout,
            cpu,
        };
        let (good, members) = run(&setup, &segments, &expected).await?;
        ok &= good;
        if expected.is_empty() {
            expected = members;
        }
        setup.store.close().await;
    }

    match std::env::var("SEGD_BENCH_POSTGRES_URL") {
        Ok(admin_url) if !admin_url.is_empty() && chosen("postgres") => {
            let db = PgDatabase::create(&admin_url).await?;
            let result = async {
                let started = Instant::now();
                load_demo(db.url.as_str(), spec).await?;
                // As `segd apply` would: statistics of each key's expressions.
                let store = connect(db.url.as_str()).await?;
                store.keep_custom_data(&keys).await?;
                store.close().await;
                println!(
                    "\nPostgreSQL database {} loaded in {:.1} s",
                    db.name,
                    started.elapsed().as_secs_f64()
                );
                let setup = Setup {
                    label: "PostgreSQL".to_string(),
                    store: connect(&db.with_timeout(timeout)).await?,
                    dialect: Dialect::Postgres,
                    deadline: Deadline::new(),
                    timeout,
                    cpu: false,
                };
                let (good, _) = run(&setup, &segments, &expected).await?;
                setup.store.close().await;
                Res::Ok(good)
            }
            .await;
            db.drop_database().await?;
            ok &= result?;
        }
        Ok(admin_url) if !admin_url.is_empty() => {
            println!("\nPostgreSQL skipped: not in SEGD_BENCH_SETUPS")
        }
        _ => println!("\nPostgreSQL skipped: SEGD_BENCH_POSTGRES_URL is not set"),
    }
    Ok(ok)
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("segment_shapes: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(bench()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!(
                "\nsome segments are over {LIMIT}× their bound (or timed out, failed or disagreed)"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("segment_shapes: {e}");
            ExitCode::from(2)
        }
    }
}
