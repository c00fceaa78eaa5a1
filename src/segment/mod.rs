//! The segment compiler: a segment's filters → one parameterised SQL query per
//! dialect. Pure: values only ever become bound parameters.
//!
//! A predicate is true for a member and false or NULL for any other customer
//! (a custom data test is NULL for a customer without the key): read where
//! NULL is false (WHERE, `CASE WHEN`, `EXISTS`), under `COALESCE(…, false)`
//! where it is negated or selected as a value, so `negate` and `match = "any"`
//! behave as SPEC §2 says: a missing value matches no operator but `exists = false`.

use crate::model::fields::UNPAID_STATUSES as UNPAID;
use crate::model::{
    Condition, CustomDataKey, Field, Filter, FilterType, MatchMode, Op, Scalar, Segment,
};
use chrono::{DateTime, NaiveDate, Utc};
use std::cmp::Reverse;
use std::collections::BTreeMap;

mod builder;
mod condition;
mod custom_data;
mod drive;
mod impact;
mod merge;
mod page;
mod run;
mod sample;
mod words;

use builder::{BareKey, Builder, Driver, OwnTest, Scope};
use condition::{condition, default_method, default_row};
use custom_data::{custom_data, one_index_range};
pub use custom_data::{custom_data_index_sql, custom_data_path, custom_data_statistics_sql};
pub use impact::{IMPACT_SAMPLES, ImpactQueries, compile_impact};
pub use page::{compile_page, compile_window_end, page_in_one_query};
pub use run::{RunQueries, RunSpec, UNREACHABLE_SAMPLE, compile_member_run, compile_run};
use sample::Term;
pub use words::describe;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to a query parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A UTC instant (SQLite: `YYYY-MM-DDTHH:MM:SSZ` text; PostgreSQL: TIMESTAMPTZ).
    Time(DateTime<Utc>),
    /// A calendar date (SQLite: `YYYY-MM-DD` text; PostgreSQL: DATE).
    Date(NaiveDate),
    /// An instant in segd's own tables (the store's timestamp encoding).
    Stamp(DateTime<Utc>),
    /// A list of texts (SQLite: a JSON array; PostgreSQL: TEXT[]).
    Texts(Vec<String>),
    /// A list of calendar dates (SQLite: a JSON array of `YYYY-MM-DD`;
    /// PostgreSQL: DATE[]).
    Dates(Vec<NaiveDate>),
    /// PostgreSQL: the ids of the connectors a query of their own selects
    /// (with placeholders of its own), looked up by the store when the
    /// query runs and bound as a TEXT[] ([`connector_ids`]).
    ConnectorIds(Box<Query>),
}

/// SQL text with `$N` placeholders and the values to bind, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub sql: String,
    pub binds: Vec<Bind>,
    /// PostgreSQL: plan it without hash tables (`enable_hashjoin` and
    /// `enable_hashagg` off for it alone) and without parallel workers: the
    /// sets of customers an `any` joins are read in the customers' order,
    /// each through its table's index by customer, and merged with them
    /// ([`any_of`]).
    pub merge_joins: bool,
}

/// What the query returns for each member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// `id`, ordered by id.
    Ids,
    /// `id, name, email`, ordered by id.
    Rows,
    /// One row: the number of members.
    Count,
}

impl Select {
    /// The columns a listing selects of each member (`customers c`).
    fn columns(self) -> &'static str {
        match self {
            Self::Ids => "c.id",
            Self::Rows => "c.id, c.name, c.email",
            Self::Count => "COUNT(*)",
        }
    }
}

/// "The invoice is unpaid", written exactly as the partial indexes on unpaid
/// invoices are (migrations 0003), so the planners of both backends use them.
/// Constants of segd, never user values.
const UNPAID_SQL: &str = "i.status IN ('open', 'partially_paid', 'overdue')";

/// Compiles a segment into one query over `customers c`, evaluated at `at`.
pub fn compile(segment: &Segment, dialect: Dialect, at: DateTime<Utc>, select: Select) -> Query {
    if select == Select::Count {
        if let Some(all) = one_own_block(segment, dialect) {
            return compile(&all, dialect, at, select);
        }
        if dialect == Dialect::Sqlite
            && let Some(query) = ranged_key_count(segment)
        {
            return query;
        }
        if let Some(query) = complement_count(segment, dialect, at) {
            return query;
        }
        if dialect == Dialect::Sqlite
            && let Some(query) = sampled_complement_count(segment, at)
        {
            return query;
        }
        if dialect == Dialect::Sqlite
            && let Some(query) = merged_all_count(segment, at)
        {
            return query;
        }
    }
    compiled(segment, dialect, at, select)
}

/// SQLite, the number of members of an `all` that a merge of sorted sets
/// may count ([`merge::merged_all`]): that merge, or, where a sample shows
/// a positive block leaves few customers, the count as compiled.
fn merged_all_count(segment: &Segment, at: DateTime<Utc>) -> Option<Query> {
    if segment.match_mode != MatchMode::All {
        return None;
    }
    let (few, merged, mut b) = merge::merged_all(&ordered(segment), at.date_naive())?;
    let driven = compiled(segment, Dialect::Sqlite, at, Select::Count);
    let driven_sql = shifted(&driven.sql, b.binds.len());
    b.binds.extend(driven.binds);
    Some(Query {
        merge_joins: false,
        sql: either_count(&few, &driven_sql, &merged),
        binds: b.binds,
    })
}

/// SQLite: an `any` of one positive customer block of its own tests as the
/// `all` of that block (the same members). Where no index range serves its
/// tests ([`own_unranged`]), the customers scanned are asked them in turn,
/// one AND: a custom_data set of it may drive there ([`bare_keyed`]), where
/// the `any` asks them in an order a sample chooses, a `CASE`; where one
/// does, its index may drive: a test of one key is read from the key's
/// index alone ([`custom_sets`]), where the `any` built the set of those
/// that pass and looked each one up (seed `stop54b` shape-029, `seats lt 5`,
/// 56% of 200,000 customers, CPU time, by hand: 106 ms so, 45 ms as the
/// `all`). Its count only: a listing of the `all` of one key's substring
/// (fixed-seed shape-006) scanned the customers in id order, each one's JSON
/// parsed (85-88 ms), where the `any` reads the key's set (10.5 ms).
fn one_own_block(segment: &Segment, dialect: Dialect) -> Option<Segment> {
    let f = lone_customer_block(segment)?;
    let scanned =
        dialect == Dialect::Sqlite && segment.match_mode == MatchMode::Any && !related_fields(f);
    scanned.then(|| Segment {
        match_mode: MatchMode::All,
        ..segment.clone()
    })
}

/// SQLite, the count of one positive customer block (under either match)
/// of custom data alone, two keys or more, one of them, and one only,
/// tested by one range of its key's index ([`one_index_range`]; of two, a
/// sample chooses which drives an `all`, [`drive::chosen_index`]): that
/// test in place, where its index drives and holds all the count reads of
/// a customer (no row looked up, but for the JSON type of a 0, a 1, a
/// boolean or a text that starts like an array), and each other key's test a set probed
/// per customer of the range (`+c.rowid IN`, [`Builder::probed_sets`]),
/// built when first asked. Seed `stop50` shape-185, an `any` of `region
/// ends_with "mer"` (83,000 customers) and `seats > 5` (200,000 customers,
/// CPU time, with / without statistics): each test a set, SQLite drove from
/// the region's, each of its customers looked up by row id, in 125-131 ms;
/// as an `all`, the range drove and each of its customers' JSON was parsed
/// for the region, 166 ms; so, 46-59 ms.
fn ranged_key_count(segment: &Segment) -> Option<Query> {
    let f = lone_customer_block(segment)?;
    if !f.conditions.is_empty() || f.custom_data.len() < 2 {
        return None;
    }
    let mut ranged = f.custom_data.iter().filter(|(_, c)| one_index_range(c));
    let (Some((key, c)), None) = (ranged.next(), ranged.next()) else {
        return None;
    };
    let mut b = Builder::new(Dialect::Sqlite);
    let mut tests = vec![custom_data(&mut b, key, c, false)];
    // `per_row` makes the other keys' tests sets ([`custom_data::as_set`]);
    // no set is written alone here (`bare_key` is unset).
    b.per_row = true;
    b.probed_sets = true;
    for (other, c) in f.custom_data.iter().filter(|(other, _)| *other != key) {
        tests.push(custom_data(&mut b, other, c, true));
    }
    let tests: Vec<String> = tests.iter().map(|t| format!("({t})")).collect();
    Some(Query {
        sql: count_of(&tests.join(" AND ")),
        binds: b.binds,
        merge_joins: false,
    })
}

/// The one block of `segment`, where it is a positive customer block.
fn lone_customer_block(segment: &Segment) -> Option<&Filter> {
    match segment.filters.as_slice() {
        [f] if positive_customer(f) => Some(f),
        _ => None,
    }
}

/// [`compile`]'s query, neither count of a complement.
fn compiled(segment: &Segment, dialect: Dialect, at: DateTime<Utc>, select: Select) -> Query {
    let filters = ordered(segment);
    if dialect == Dialect::Sqlite
        && segment.match_mode == MatchMode::All
        && let Some(query) = drive::chosen_driver(&filters, at.date_naive(), select)
            .or_else(|| drive::chosen_index(&filters, at.date_naive(), select))
    {
        return query;
    }
    if dialect == Dialect::Sqlite && segment.match_mode == MatchMode::Any {
        let today = at.date_naive();
        let chosen = match select {
            Select::Count => merge::count_any(&filters, today)
                .or_else(|| merge::merged_complement(&filters, today)),
            Select::Ids => merge::merged_any(&filters, today),
            Select::Rows => None,
        };
        if let Some((sql, b)) = chosen {
            return Query {
                merge_joins: false,
                sql,
                binds: b.binds,
            };
        }
    }
    let mut b = Builder::new(dialect);
    if dialect == Dialect::Sqlite && select == Select::Count {
        return bare_keyed(&mut b, segment.match_mode, &filters, at.date_naive());
    }
    let predicate = predicate(&mut b, segment.match_mode, filters, at.date_naive());
    let from = format!("customers c{}", b.join_clauses());
    let sql = match select {
        Select::Ids | Select::Rows => format!(
            "SELECT {} FROM {from} WHERE {predicate} ORDER BY c.id",
            select.columns()
        ),
        Select::Count => format!("SELECT COUNT(*) FROM {from} WHERE {predicate}"),
    };
    Query {
        sql,
        binds: b.binds,
        merge_joins: !b.joins.is_empty(),
    }
}

/// SQLite, the count of `filters` under `mode` where custom_data tests are
/// sets a sample chooses ([`custom_data`]: of the customers that pass where
/// at most half a sample have the key, one range of its index; else of
/// those that fail), terms of the query's top AND (under an OR or a
/// negated block's NOT no set drives: those are not written alone; fixed
/// seed shape-110, a negated block of four tests, counted in 103-117 ms
/// with such forms and 96-100 ms without): the count once with each of the first [`MOST_BARE`]
/// such tests the set of those that pass alone ([`Builder::bare_key`]),
/// and once as it is, the first whose key few have run, else the last.
/// Behind its sample's `CASE` the set is asked of every customer scanned,
/// where alone the planner may drive from it: seed `stop49` shape-151, a
/// customer block of a country, a `region` (96% of the customers have it)
/// and a `trial` (16%) not in a list, counted in 103-110 ms so and 33-35 ms
/// from the trial's set by hand (200,000 customers, CPU time). Where no
/// such set is written, the count as it is, compiled once. A listing keeps
/// one form: its forms, each in the customers' order, were one more sort
/// of the ids (fixed seed, the 7 changed listings, CPU time: 1,400 ->
/// 1,807 ms with statistics, 1,381 -> 1,681 without).
fn bare_keyed(b: &mut Builder, mode: MatchMode, filters: &[&Filter], today: NaiveDate) -> Query {
    b.bare_key = Some(BareKey::default());
    let as_is = predicate(b, mode, filters.to_vec(), today);
    let samples = b.bare_key.take().map(|k| k.samples).unwrap_or_default();
    let mut arms: Vec<String> = Vec::new();
    for at in 0..samples.len().min(MOST_BARE) {
        b.bare_key = Some(BareKey {
            at: Some(at),
            samples: Vec::new(),
        });
        arms.push(predicate(b, mode, filters.to_vec(), today));
        b.bare_key = None;
    }
    let sql = if arms.is_empty() {
        count_of(&as_is)
    } else {
        let whens: Vec<String> = samples
            .iter()
            .take(arms.len())
            .enumerate()
            .map(|(arm, few)| format!("WHEN {few} THEN {arm}"))
            .collect();
        let choice = format!("(SELECT CASE {} ELSE {} END)", whens.join(" "), arms.len());
        arms.push(as_is);
        drive::of_choice(&choice, &arms, 0, Select::Count)
    };
    Query {
        sql,
        binds: std::mem::take(&mut b.binds),
        merge_joins: false,
    }
}

/// The count of the customers that pass `predicate` (over `customers c`,
/// no join).
fn count_of(predicate: &str) -> String {
    format!("SELECT COUNT(*) FROM customers c WHERE {predicate}")
}

/// The count `then` where `test` (a sample's finding, computed once) holds,
/// else the count `otherwise` (each a query of one count): SQLite runs the
/// one chosen.
fn either_count(test: &str, then: &str, otherwise: &str) -> String {
    format!("SELECT CASE WHEN {test} THEN ({then}) ELSE ({otherwise}) END")
}

/// The most custom_data sets [`bare_keyed`] writes alone, a query each.
const MOST_BARE: usize = 2;

/// SQLite, the number of members of an `all` of negated blocks only: every
/// customer but those of the `any` of the blocks' positive forms, counted
/// as such an `any` is ([`merge::count_any`], [`any_of`]). A customer is a
/// member when no block's positive form holds for it (a test of a missing
/// value is false: the positive form holds for no one lacking the value,
/// its negation for everyone), so the two counts add up to the customers.
/// The `all` asks each customer every block it passes, most of them
/// lookups of its related rows; the `any` may read the few customers its
/// blocks hold from their lists instead, or merge sorted sets. Over the 25
/// such segments of three draws of the shapes bench (200,000 customers,
/// CPU time, with / without statistics) the counts took 1,565 / 1,560 ms
/// so and 922 / 954 ms this way: seed `stop34` shape-037 (a negated
/// invoice, monitor and customer block) 54 -> 0.6 ms, shape-096 78 -> 9,
/// fixed-seed shape-139 64 -> 14, shape-149 126 -> 68-87; the dearest,
/// fixed-seed shape-013 and shape-183, 96 -> 95-104 and 80 -> 84-93. A
/// listing stays an `all`: each customer read in id order and probed in
/// the list of the others took longer (2.4 s -> 2.9 s over the same 25).
///
/// SQLite, likewise, the number of members of an `any` of negated blocks
/// only, each of related rows, one of them a customer block of a field of
/// them (without one, [`sampled_complement_count`] chooses): every
/// customer but the members of the `all` of their positive forms, which
/// their lists drive, where the `any` asks each customer its blocks in turn
/// (CPU time, with / without statistics): seed `stop46` shape-074, a
/// negated customer block of a connector's name and a `seats` range beside
/// a negated connector block, 5.2-9.3x its bound -> 1.5-2.0x, shape-185
/// 2.6-2.8x -> 1.0-1.2x, seed `stop45` shape-140 61-91 ms -> 2 ms. A
/// customer block of its own columns and custom data only is asked of every
/// customer in the `all` too: `stop46` shape-117 (a `contains` of a key and
/// a monitor block) took 40-48 ms as an `any` and 111-189 ms so; it is
/// [`sampled_complement_count`]'s (where few pass the positive forms), else
/// counted as [`merge::merged_complement`] counts (where most customers
/// pass the negated block's negation, as the `any`).
///
/// PostgreSQL, the number of members of an `any` of several blocks, one of
/// them of related rows (an `any` of the customers' own tests is one scan
/// as it is): every
/// customer but the members of the `all` of the blocks flipped (a customer
/// is a member of the `any` unless no block holds for it). The `any` reads
/// each block's customers in the customers' order and merges them with
/// every customer ([`any_of`]); the `all` leaves PostgreSQL its semi- and
/// anti-joins, each block's rows hashed once (by parallel workers), and a
/// negated customer block's positive form its own tests. The shapes bench
/// (200,000 customers, three draws, wall clock): with a negated block, seed
/// `stop46` shape-163 6.7x -> 2.9x its bound, shape-053 6.0 -> 2.4,
/// shape-049 5.8 -> 1.9, the draw's median 1.20x -> 0.88x; without one,
/// the 76 such `any`s' ratios summed 186 -> 153 (fixed-seed shape-081
/// 5.4 -> 3.0, `stop46` shape-094 5.7 -> 2.4; the most slowed, `stop45`
/// shape-188, an `any` of two customer blocks and two related ones,
/// 5.1 -> 6.2). A listing stays the `any`: it hands its members over in
/// the customers' order as it merges.
fn complement_count(segment: &Segment, dialect: Dialect, at: DateTime<Utc>) -> Option<Query> {
    let negated = segment.filters.iter().filter(|f| f.negate).count();
    let flip_to = match (dialect, segment.match_mode) {
        (Dialect::Sqlite, MatchMode::All) if negated > 0 && negated == segment.filters.len() => {
            MatchMode::Any
        }
        (Dialect::Sqlite, MatchMode::Any)
            if negated > 1
                && negated == segment.filters.len()
                && segment.filters.iter().all(reads_related)
                && segment
                    .filters
                    .iter()
                    .any(|f| f.filter_type == FilterType::Customer) =>
        {
            MatchMode::All
        }
        (Dialect::Postgres, MatchMode::Any)
            if segment.filters.len() > 1 && segment.filters.iter().any(reads_related) =>
        {
            MatchMode::All
        }
        _ => return None,
    };
    let held = compile(&flipped(segment, flip_to), dialect, at, Select::Count);
    Some(Query {
        // Passed on, though no such count merges today.
        merge_joins: held.merge_joins,
        sql: format!("SELECT {}", others(&held.sql)),
        binds: held.binds,
    })
}

/// Whether a block reads related rows: one of them, or a customer block with
/// a field of them ([`related_fields`]).
fn reads_related(f: &Filter) -> bool {
    f.filter_type != FilterType::Customer || related_fields(f)
}

/// Whether a block tests a field of related rows (`connector_name`, the
/// default payment method's).
fn related_fields(f: &Filter) -> bool {
    f.conditions.keys().any(|k| k.reaches_related())
}

/// `segment`'s blocks, each negated where it was not and not where it was,
/// under `match_mode`: the customers a complement count takes away.
fn flipped(segment: &Segment, match_mode: MatchMode) -> Segment {
    Segment {
        name: segment.name.clone(),
        description: None,
        match_mode,
        protect: segment.protect,
        filters: segment
            .filters
            .iter()
            .map(|f| Filter {
                negate: !f.negate,
                ..f.clone()
            })
            .collect(),
    }
}

/// The number of customers but those `count` (a count's SQL) counts.
fn others(count: &str) -> String {
    format!("(SELECT COUNT(*) FROM customers) - ({count})")
}

/// SQLite, the number of members of an `any` with negated blocks, one of
/// a class whose list or index drives an `all` ([`DRIVING_CLASS`]): where
/// a sample shows at most a
/// quarter of the customers pass every negated block's positive form,
/// every customer but the members of the `all` of those positive forms and
/// the other blocks negated (a customer is a member of the `any` unless
/// each negated block's positive form holds for it and no other block
/// does); else counted as the `any` is ([`compiled`]: a merge of sorted
/// sets, [`merge::merged_complement`], or the predicate form; the figures
/// below are of the predicate form). The `all` is driven by the
/// positive forms' lists, which hold few customers there; the `any` asks
/// each customer its terms in turn, most of them lookups of related rows.
/// Of 130 such segments of four draws of the shapes bench, whatever their
/// classes (200,000 customers, CPU time, without statistics), the 90 whose
/// share was at most a quarter counted in 6,319 ms as `any`s and 2,706 ms
/// as complements (80 faster, 4 slower: seed `stop37` shape-011, a
/// monitor name's substring no list drives, 109 -> 152 ms); the 40 above
/// it, 4,243 and 4,395 ms (11 faster, 13 slower: `stop37` shape-003
/// 157 -> 261). With the rule, 94 counts of the four draws change: 7,296
/// -> 3,718 ms with statistics, 7,279 -> 3,665 without (seed `stop39`
/// shape-078 110 -> 40 ms, `stop37` shape-055 100 -> 1); two are slower,
/// `stop37` shape-191 30 -> 55-57 ms and shape-036 14 -> 23 with
/// statistics. A negated customer block of related rows (a connector's
/// name, the default method) is one of them too: its positive form's links
/// or default method drive the `all` as a list may ([`drive::chosen_driver`])
/// where the `any` asks each customer its lookups (14 such counts of three
/// draws, CPU time, with / without statistics: 1,545 -> 756 ms / 1,613 ->
/// 696 ms; seed `stop48` shape-179, three monitor blocks
/// and a negated block of Adyen links and pending or expired default
/// methods, 191 -> 64 ms / 275 -> 64 ms; the most slowed, fixed-seed
/// shape-001, 55 -> 94 ms, 1.4x its bound). So is a negated customer block
/// of its own tests only (its class or another negated block's a driving
/// one): seed `stop54b` shape-017, its country's index driving the `all`,
/// an `any` of a block of Italian customers (3%), a name and a `seats`
/// range negated beside a payment-method block (200,000 customers, CPU
/// time, by hand, with / without statistics), counted as an `any` in
/// 149-154 / 150-158 ms and as the complement in 43-63 / 17-26 ms; the 9
/// counts of three draws this makes complements, 439 -> 91 ms / 425 -> 60
/// ms, none slower (an `any` of negated blocks only is
/// [`complement_count`]'s).
fn sampled_complement_count(segment: &Segment, at: DateTime<Utc>) -> Option<Query> {
    let negated = || segment.filters.iter().filter(|f| f.negate);
    if segment.match_mode != MatchMode::Any || !negated().any(|f| block_class(f) <= DRIVING_CLASS) {
        return None;
    }
    // The customers outside the `any`.
    let outsiders = flipped(segment, MatchMode::All);
    let mut b = Builder::new(Dialect::Sqlite);
    let today = at.date_naive();
    let held: Vec<String> = outsiders
        .filters
        .iter()
        .filter(|f| !f.negate)
        .map(|f| format!("({})", asked_of_one(&mut b, f, today)))
        .collect();
    let few = sample::share(&held.join(" AND "), false, 1, 4);
    let outside = compile(&outsiders, Dialect::Sqlite, at, Select::Count);
    let members = compiled(segment, Dialect::Sqlite, at, Select::Count);
    let outside_sql = shifted(&outside.sql, b.binds.len());
    b.binds.extend(outside.binds);
    let members_sql = shifted(&members.sql, b.binds.len());
    b.binds.extend(members.binds);
    Some(Query {
        merge_joins: false,
        sql: format!(
            "SELECT CASE WHEN {few} THEN {} ELSE ({members_sql}) END",
            others(&outside_sql)
        ),
        binds: b.binds,
    })
}

/// `sql` with each placeholder `$N` made `$(N + by)`, to be bound after
/// `by` values of another query. The compiler writes user values only as
/// placeholders; a `$` before a digit elsewhere is in a quoted literal (a
/// custom_data key's JSON path, `'$."tier$1"'`: a key holds no quote),
/// copied as it is.
fn shifted(sql: &str, by: usize) -> String {
    renumbered(sql, |n| n.checked_add(by))
}

/// `sql` with each placeholder `$N` made `$M`, `M = to(N)`; one that `to`
/// maps to `None` is copied as it is (as a `$` in a quoted literal is, see
/// [`shifted`]).
fn renumbered(sql: &str, mut to: impl FnMut(usize) -> Option<usize>) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(['$', '\'']) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        // `from` opens with a one-byte `$` or quote.
        let after = &from[1..];
        let end = if from.starts_with('\'') {
            // To the closing quote (`''`, a quote in a literal, is read as
            // two literals side by side), or the end.
            after.find('\'').map_or(from.len(), |i| i + 2)
        } else {
            let digits = after
                .find(|ch: char| !ch.is_ascii_digit())
                .unwrap_or(after.len());
            match after[..digits].parse::<usize>().ok().and_then(&mut to) {
                Some(n) => {
                    out.push_str(&format!("${n}"));
                    rest = &after[digits..];
                    continue;
                }
                None => digits + 1,
            }
        };
        out.push_str(&from[..end]);
        rest = &from[end..];
    }
    out.push_str(rest);
    out
}

/// A segment's blocks in the order of `block_order` (under `match = "all"`,
/// then of [`best_tests`]), never in the file's: two
/// orders of the same filters compile to the same SQL, hence the same plan.
/// Ties break on the block's shape, and only when that ties too on its whole
/// form (a 40,000-value list is formatted only then).
fn ordered<'a>(segment: &'a Segment) -> Vec<&'a Filter> {
    type Shape<'a> = (
        u8,
        Reverse<usize>,
        FilterType,
        bool,
        Vec<Field>,
        Vec<&'a CustomDataKey>,
    );
    let all = segment.match_mode == MatchMode::All;
    let shape = |f: &'a Filter| -> Shape<'a> {
        let fields = f.conditions.keys().copied().collect();
        let keys = f.custom_data.keys().collect();
        // Under `all`, the narrower of two positive blocks first (it drives).
        let narrowing = Reverse(if all && !f.negate { best_tests(f) } else { 0 });
        (
            block_order(f),
            narrowing,
            f.filter_type,
            f.negate,
            fields,
            keys,
        )
    };
    // Each block's key computed once, not per comparison.
    let mut keyed: Vec<(Shape<'a>, &'a Filter)> =
        segment.filters.iter().map(|f| (shape(f), f)).collect();
    keyed.sort_by(|(kx, x), (ky, y)| {
        kx.cmp(ky)
            .then_with(|| format!("{x:?}").cmp(&format!("{y:?}")))
    });
    keyed.into_iter().map(|(_, f)| f).collect()
}

fn segment_predicate(b: &mut Builder, segment: &Segment, today: NaiveDate) -> String {
    predicate(b, segment.match_mode, ordered(segment), today)
}

/// The predicate of a segment of `filters` (in [`ordered`] order) under `mode`.
fn predicate(b: &mut Builder, mode: MatchMode, filters: Vec<&Filter>, today: NaiveDate) -> String {
    if filters.is_empty() {
        return b.true_().to_string();
    }
    let any = mode == MatchMode::Any;
    if any && b.dialect == Dialect::Sqlite {
        return any_of(b, &filters, today, None);
    }
    if any && !b.per_row && filters.len() > 1 {
        b.any_join = true;
        let predicate = any_of(b, &filters, today, None);
        b.any_join = false;
        return predicate;
    }
    // SQLite, `match = "all"`: the customers drive when their own tests are
    // as selective as the related blocks'; else the first related block's
    // list (the most selective, or the one a sample chose:
    // [`drive::chosen_driver`]), unless every related block may hold most
    // rows (the customers are scanned then, but for an arm of that choice,
    // whose block drives all the same). Never where the predicate is
    // computed for every customer (`per_row`).
    if !any && !b.per_row && b.dialect == Dialect::Sqlite {
        b.driver = if customers_drive(&filters) {
            Driver::Customers
        } else if classes(&filters)
            .1
            .is_some_and(|class| class <= DRIVING_CLASS)
        {
            Driver::List
        } else {
            Driver::Unchosen
        };
    }
    if b.dialect == Dialect::Sqlite {
        return all_of(b, &filters, today);
    }
    // PostgreSQL, `all`: each table's negated blocks one `NOT EXISTS` of
    // the rows that pass any of them (a customer has none of those rows
    // for each block), one anti-join with the table, not one each: seed
    // `stop47` shape-065, an `any` of three payment-method blocks and a
    // customer block, counted as the complement of this `all`, in 228 ms
    // with an anti-join per block and 130 ms so (wall clock, by hand).
    let mut parts: Vec<String> = Vec::new();
    let mut excluded: Tables<Vec<String>> = Tables::default();
    for f in filters {
        match compile_block(b, f, today) {
            Compiled::Rows { table, conds, .. } if f.negate && mode == MatchMode::All => {
                excluded.add(table, |tests| tests.push(conds));
            }
            compiled => parts.push(format!("({})", compiled.into_test(b, f.negate))),
        }
    }
    for (table, tests) in &excluded.0 {
        let any = format!("({})", one_of(tests));
        parts.push(format!("({})", exists(b, *table, &any, true, b.per_row)));
    }
    let joiner = match mode {
        MatchMode::All => " AND ",
        MatchMode::Any => " OR ",
    };
    parts.join(joiner)
}

/// SQLite, `match = "all"`: the blocks joined by AND, each table's blocks
/// that are looked up per customer one test of the customer's rows
/// ([`Lookups`]), in the place of the first of them.
///
/// Over all customers, scanned (no list drives, and their own tests, if
/// any, are no index range),
/// the tests asked of each customer in turn (each table's lookup, a negated
/// customer block) are one AND whose first test a sample of the customers
/// chooses: the one that fails the most of them for its cost
/// ([`sample::first_chosen`]).
/// SQLite asks a WHERE clause's tests with subqueries in the order written,
/// and a test most customers fail, asked first, spares the others' lookups:
/// an `all` of a negated payment-method block that few methods match and a
/// negated connector block of most links (200,000 customers, CPU time)
/// counted in 191-196 ms with the methods first and 110-130 ms with the
/// links first. The other blocks stay tests of their own: a customer's own
/// tests (SQLite asks those without a subquery first), and a list probed
/// per customer (its Bloom filter serves a test of the WHERE clause, not
/// one inside a `CASE`).
fn all_of(b: &mut Builder, filters: &[&Filter], today: NaiveDate) -> String {
    // Own tests an index may serve (a range or narrower) read few customers.
    let scanned = b.driver == Driver::Unchosen && own_unranged(filters);
    let everyone = std::mem::replace(&mut b.everyone, scanned);
    let one_block = std::mem::replace(&mut b.one_block, filters.len() == 1);
    // A block's test, or the index of its table's lookups.
    let mut parts: Vec<Result<String, usize>> = Vec::new();
    // Per part, where it is asked of each customer in turn (see above):
    // its cost, and the negated customer block it is.
    let mut asked: Vec<Option<(u32, Option<&Filter>)>> = Vec::new();
    let mut lookups = Lookups::default();
    for f in filters {
        let choosing = b.driver == Driver::List;
        let mut narrow_rows = false;
        match compile_block(b, f, today) {
            Compiled::Rows {
                table,
                conds,
                ranged,
            } => {
                narrow_rows = narrow(f, ranged);
                match listed_rows(b, table, &conds, f.negate, ranged) {
                    Some(list) => {
                        parts.push(Ok(list));
                        asked.push(None);
                    }
                    None => {
                        if let Some(i) = lookups.add(table, conds, f.negate) {
                            parts.push(Err(i));
                            asked.push(Some((lookup_cost(table), None)));
                        }
                    }
                }
            }
            Compiled::Test(test) => {
                parts.push(Ok(test));
                let negated = f.negate && f.filter_type == FilterType::Customer;
                asked.push(negated.then_some((NEGATED_CUSTOMER_COST, Some(*f))));
            }
        }
        // A narrow range drove ([`narrow`]): the few customers it holds look
        // every other block up, even unpaid invoices, no list built. Driven
        // from the expired default methods (1,000,000 customers, 66,000 rows,
        // CPU time), probing the list of overdue invoices since a date
        // (243,000 rows) took 229 ms, their lookups 136 ms; the hand-written
        // join 124 ms.
        if choosing && narrow_rows && b.driver == Driver::Unchosen {
            b.driver = Driver::Customers;
        }
        // Which of a customer block's related rows come first (its links or
        // its default method, [`Builder::links_first`]) is the first block's
        // choice alone: the blocks after it are as their classes say.
        b.links_first = None;
    }
    b.everyone = everyone;
    b.one_block = one_block;
    // One table's lookup, beside no other table's nor a negated customer
    // block (the customers' tests and lists probed stay), over all
    // customers: its customers grouped.
    let alone = scanned
        && !b.per_row
        && matches!(b.scope, Scope::All)
        && asked.iter().flatten().count() == 1
        && parts.iter().filter(|p| p.is_err()).count() == 1;
    let looked_up = match alone.then(|| lookups.grouped(b)).flatten() {
        Some(grouped) => vec![grouped],
        None => lookups.tests(b, true),
    };
    let tests: Vec<String> = parts
        .into_iter()
        .map(|p| format!("({})", p.unwrap_or_else(|i| looked_up[i].clone())))
        .collect();
    let sampling =
        b.dialect == Dialect::Sqlite && scanned && !b.per_row && matches!(b.scope, Scope::All);
    let choices = asked.iter().flatten().count();
    if !sampling || !(2..=sample::MOST_TERMS).contains(&choices) {
        return tests.join(" AND ");
    }
    let mut own: Vec<String> = Vec::new();
    let mut terms: Vec<Term> = Vec::new();
    for (sql, asked) in tests.into_iter().zip(asked) {
        let (sample, cost) = match asked {
            None => {
                own.push(sql);
                continue;
            }
            // A lookup is asked of one customer as it is.
            Some((cost, None)) => (sql.clone(), cost),
            Some((cost, Some(f))) => (asked_of_one(b, f, today), cost),
        };
        terms.push(Term { sql, sample, cost });
    }
    own.push(format!("({})", sample::first_chosen(&terms, true, true)));
    own.join(" AND ")
}

/// What asking a negated customer block of one customer costs, relative to
/// a test of the customer's row (1): its tests, some of them lookups or
/// custom data, asked until one fails.
const NEGATED_CUSTOMER_COST: u32 = 3;

/// What looking a customer's rows of `table` up costs, relative to a test
/// of the customer's row (1): a customer has several invoices, about one
/// link, payment method or monitor.
fn lookup_cost(table: Related) -> u32 {
    match table {
        Related::Invoices => 8,
        _ => 4,
    }
}

/// Per related table, in order of first appearance, what blocks of it hold.
struct Tables<T>(Vec<(Related, T)>);

impl<T> Default for Tables<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T: Default> Tables<T> {
    /// Adds to `table`'s entry with `add` (the entry made empty first when
    /// it is the first of that table); the entry's index when it is.
    fn add(&mut self, table: Related, add: impl FnOnce(&mut T)) -> Option<usize> {
        let first = !self.0.iter().any(|(t, _)| *t == table);
        let index = self.0.len();
        if first {
            self.0.push((table, T::default()));
        }
        if let Some((_, entry)) = self.0.iter_mut().find(|(t, _)| *t == table) {
            add(entry);
        }
        first.then_some(index)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// SQLite: the related blocks of one AND (`match = "all"`) or one OR
/// (`match = "any"`) that are looked up per customer ([`exists`]), by table
/// in order of first appearance: the positive blocks' tests (some row
/// passes), and the negated blocks' (no row passes).
#[derive(Default)]
struct Lookups(Tables<(Vec<String>, Vec<String>)>);

impl Lookups {
    /// Adds a block's test of `table`'s rows; its table's index when it is
    /// the first of that table.
    fn add(&mut self, table: Related, conds: String, negate: bool) -> Option<usize> {
        self.0.add(table, |(some, none)| {
            if negate { none } else { some }.push(conds)
        })
    }

    /// Each table's tests joined by AND (`and`) or OR, as one test of the
    /// customer's rows. One block is an `EXISTS` ([`exists`]). Several are
    /// one pass over the customer's rows through the customer index, each
    /// block's test an aggregate of it (`MAX(CASE WHEN … THEN 1 ELSE 0 END)`,
    /// "some row passes"), not a lookup each: a lookup of every customer
    /// costs several scans of the table (0.27 µs a customer; 200,000
    /// customers' links 55 ms, their scan 10.5 ms), and a positive and a negated block of the
    /// links in an `any` with a monitor block took 242 ms as two lookups and
    /// 123 ms so (CPU time). A customer without rows passes where every
    /// aggregate is "no row".
    fn tests(self, b: &Builder, and: bool) -> Vec<String> {
        self.0
            .0
            .into_iter()
            .map(|(table, (some, none))| match (&some[..], &none[..]) {
                ([test], []) => exists(b, table, test, false, true),
                ([], [test]) => exists(b, table, test, true, true),
                _ => {
                    let empty = if and {
                        some.is_empty()
                    } else {
                        !none.is_empty()
                    };
                    let (alias, from) = (table.alias(), table.from(b.dialect, false));
                    format!(
                        "COALESCE((SELECT {} FROM {from} WHERE {alias}.customer_id = c.id), {})",
                        aggregate(b, and, &some, &none),
                        if empty { b.true_() } else { b.false_() }
                    )
                }
            })
            .collect()
    }

    /// SQLite, an `all` whose lookup of related rows is one table's, of
    /// several blocks, some positive (a customer without rows fails), beside
    /// positive customer blocks and lists probed at most: the customers
    /// of the rows grouped by customer whose aggregate passes ([`aggregate`]),
    /// one pass over the table in the order of its customer index, each
    /// customer then probed in that list (or looked up from it), not looked
    /// up. An `all` of three
    /// monitor blocks (a name holding `a`, a state other than `ok`, none
    /// with no data; 200,000 customers, CPU time) counted in 68 ms looked
    /// up, 32 ms so; of two payment-method blocks (a type not in a list, a
    /// status other than `active`) 85 ms and 55; of a negated and a positive
    /// one 65 ms and 32; of two connector name lists not in and a negated
    /// connection (seed `stop34` shape-042) 110-131 ms and 92-101; beside
    /// a `region not_in` most customers pass (seed `stop48` shape-018, a
    /// connector name not in a list and a negated connection) 104-115 ms
    /// looked up and 47-59 ms so. Where the other tests pass few, the pass
    /// costs about a scan of the table more than their lookups (which the
    /// bound holds).
    fn grouped(&self, b: &Builder) -> Option<String> {
        let [(table, (some, none))] = &self.0.0[..] else {
            return None;
        };
        if some.is_empty() || some.len() + none.len() < 2 {
            return None;
        }
        let (alias, from) = (table.alias(), table.from(b.dialect, false));
        Some(format!(
            "c.id IN (SELECT {alias}.customer_id FROM {from} GROUP BY {alias}.customer_id HAVING {})",
            aggregate(b, true, some, none)
        ))
    }
}

/// One table's blocks `some` (some row passes) and `none` (no row does), of
/// an AND (`and`) or OR, as one test of the aggregate of a customer's rows:
/// each block's test `MAX(CASE WHEN … THEN 1 ELSE 0 END)`; of one positive
/// and one negated block, one `MAX` whose row that decides ranks first,
/// compared with 1 (`= 1` under AND, `<> 1` under OR).
fn aggregate(b: &Builder, and: bool, some: &[String], none: &[String]) -> String {
    if let ([some], [none]) = (some, none) {
        let (first, second, passes) = if and {
            (none, some, "= 1")
        } else {
            (some, none, "<> 1")
        };
        return format!("MAX(CASE WHEN {first} THEN 2 WHEN {second} THEN 1 ELSE 0 END) {passes}");
    }
    let (yes, no) = (b.true_(), b.false_());
    let any_row = |t: &String| format!("MAX(CASE WHEN {t} THEN {yes} ELSE {no} END)");
    let tests: Vec<String> = some
        .iter()
        .map(any_row)
        .chain(none.iter().map(|t| format!("NOT {}", any_row(t))))
        .collect();
    tests.join(if and { " AND " } else { " OR " })
}

/// `match = "any"` (SQLite; PostgreSQL at the top, see [`joined`]): the
/// positive related blocks are one set, the union of their customers (the
/// blocks of one table in one pass over it, their tests joined by OR; on
/// PostgreSQL, one join per table), in the place of the first of them; the
/// other blocks are tested as under `all`, but SQLite's negated lookups,
/// which join their table's pass in the set.
/// A customer is looked up once in one set, not once per block.
///
/// SQLite: when every block of the set is read from an index range
/// ([`ranged`]) and either the set is the whole segment or each range is
/// narrow ([`narrow`]), the set is one list, built in one pass over each
/// table, which SQLite either reads, looking its ids up in the customers
/// (`MULTI-INDEX OR`), or probes once per customer. Otherwise the
/// customers are scanned anyway: the blocks of unpaid invoices are one list
/// ([`probed_as_list`]) and each other table's blocks, with its negated
/// blocks looked up per customer, one pass over the customer's rows
/// ([`Lookups`]). An `any` of a payment-method, two monitor and an
/// invoice block that most customers pass (200,000 customers, CPU time)
/// took 426-501 ms as one list and 119-227 ms as probes.
///
/// SQLite, over all customers: the OR's terms (each block not in the set,
/// the set's list and each table's lookup) are asked in the order given,
/// but for the first, which a sample of the customers chooses: the term
/// that passes most of them for its cost ([`sampled_or`]).
///
/// The ids of some are one merge of sorted sets instead
/// ([`merge::merged_any`]); the count of an `any` of customer tests beside
/// related blocks, none negated, is looked up, one list or merged, as a
/// sample of the customers shows cheapest ([`merge::count_any`]).
///
/// PostgreSQL: each table's blocks are one left join (one pass over the
/// table, each customer once), listed without hash tables (the count of
/// an `any` of several blocks is a complement, [`complement_count`])
/// ([`Query::merge_joins`]): each table's set is read in the customers'
/// order through its index by customer and merged with them. One join of
/// the union of the tables' sets sorted (or hashed) the union whole:
/// fixed-seed shape-116, an `any` of a monitor and a connector block and
/// customer tests (200,000 customers), counted (before counts were
/// complements) in 226 ms so and 149-177 ms
/// as a join per table. (Hashed, one join of the union was the faster: an
/// `any` of a payment-method block and two monitor blocks took 701 ms as
/// three joins and 363 ms as one.)
///
/// `list` (SQLite): `Some(true)` makes the positive related blocks one list,
/// `Some(false)` looks each table up but unpaid invoices, as the forms a
/// sampled count chooses from have it; `None` chooses as above. The OR's
/// first term is chosen by the sample under `None` and `Some(false)`
/// (where [`sampled_or`] chooses: a term asked of every customer, a lookup
/// or a test of related rows, among at most [`sample::MOST_TERMS`]): the
/// looked-up form asked its lookups in the blocks' order, the narrowest
/// first, so that a customer most blocks reject but one that holds most
/// customers was looked up in each (seed `stop49` shape-129, a connector
/// block of disconnected Braintree links, a monitor block and the payment
/// methods not expired nor pending, 77% of the customers, beside a
/// customer block; 200,000 customers, CPU time, with / without
/// statistics: 224 / 228 ms so, 162 / 163 ms the methods asked first; the
/// 17 counts of that draw whose SQL this changes, 1,359 / 1,337 ms so and
/// 1,294 / 1,292 ms chosen, the most slowed shape-158, 56 -> 64 ms with
/// statistics). One list's form (`Some(true)`) keeps the order given: SQLite
/// may read its terms from their indexes alone (`MULTI-INDEX OR`), which a
/// `CASE` of orders stops (shape-168, 2 -> 31 ms).
fn any_of(b: &mut Builder, filters: &[&Filter], today: NaiveDate, list: Option<bool>) -> String {
    // SQLite tests every customer against the OR (see [`Builder::per_row`]).
    let outer = b.per_row;
    b.per_row = outer || b.dialect == Dialect::Sqlite;
    let everyone = std::mem::replace(&mut b.everyone, true);
    let mut parts: Vec<Option<String>> = Vec::new();
    // Per table: its blocks' tests, and whether one of them reads no index
    // range.
    let mut tables: Tables<(Vec<String>, bool)> = Tables::default();
    // SQLite: the negated blocks looked up per customer, in the set too.
    let mut negated: Vec<(Related, String)> = Vec::new();
    // Whether every positive related block is a narrow range ([`narrow`]).
    let mut all_narrow = true;
    // PostgreSQL: the parts that test a join's column (see below).
    let mut joins: Vec<usize> = Vec::new();
    // SQLite, the predicate of every customer: each block's term and its
    // test as asked of one customer, for the sample that chooses the OR's
    // first term ([`sample::first_chosen`]); not in one list's form (see
    // the doc comment's last paragraph).
    let sampling =
        b.dialect == Dialect::Sqlite && list != Some(true) && matches!(b.scope, Scope::All);
    let mut samples: Vec<(Place, String)> = Vec::new();
    for f in filters {
        // The set takes the place of its first block.
        let first = tables.is_empty() && negated.is_empty();
        let compiled = match default_row_test(b, f, filters, today, list) {
            Some(conds) => Compiled::Rows {
                table: Related::PaymentMethods,
                conds,
                ranged: false,
            },
            None => compile_block(b, f, today),
        };
        let place = match compiled {
            Compiled::Rows {
                table,
                conds,
                ranged,
            } if !f.negate => {
                all_narrow &= narrow(f, ranged);
                if first {
                    if b.dialect == Dialect::Postgres {
                        joins.push(parts.len());
                    }
                    parts.push(None);
                }
                tables.add(table, |(tests, unranged)| {
                    tests.push(conds);
                    *unranged |= !ranged;
                });
                Place::Rows(table)
            }
            Compiled::Rows {
                table,
                conds,
                ranged,
            } if b.dialect == Dialect::Sqlite => {
                match listed_rows(b, table, &conds, true, ranged) {
                    Some(list) => {
                        parts.push(Some(list));
                        Place::Part(parts.len() - 1)
                    }
                    None => {
                        if first {
                            parts.push(None);
                        }
                        negated.push((table, conds));
                        Place::NoRows(table)
                    }
                }
            }
            compiled => {
                // PostgreSQL: a negated related block is a join's NULL test.
                if b.dialect == Dialect::Postgres && matches!(compiled, Compiled::Rows { .. }) {
                    joins.push(parts.len());
                }
                let test = compiled.into_test(b, f.negate);
                parts.push(Some(if b.dialect == Dialect::Sqlite && few_unserved(f) {
                    in_place(&test)
                } else if b.dialect == Dialect::Sqlite
                    && list == Some(true)
                    && matches!(b.scope, Scope::All)
                    && few_scanned(f)
                {
                    customers_passing("", &format!("CASE WHEN {test} THEN 1 ELSE 0 END"))
                } else {
                    test
                }));
                Place::Part(parts.len() - 1)
            }
        };
        if sampling {
            samples.push((place, asked_of_one(b, f, today)));
        }
    }
    b.per_row = outer;
    b.everyone = everyone;
    // SQLite: one list when each of its tables' blocks read index ranges and
    // either it is the whole segment (SQLite may then read it and look its ids
    // up, no customer scanned) or each range is narrow (the customers are
    // scanned anyway, and each probes a short list); otherwise only a table
    // whose list is probed as cheaply as its rows ([`probed_as_list`]) is a
    // list. An `any` of a connector block of one connection, a monitor block
    // of one state and a country (1,000,000 customers, CPU time) took 556 ms
    // as lookups per customer, 205 ms merged ([`merge::merged_any`]) and
    // 105 ms as one list. A form of a sampled count says instead (`list`).
    let alone = list.unwrap_or_else(|| {
        negated.is_empty()
            && one_list(
                tables.0.iter().all(|(_, (_, unranged))| !unranged),
                all_narrow,
                parts.iter().all(Option::is_none),
            )
    });
    let in_list = |table: Related, ranged: bool| {
        b.dialect == Dialect::Postgres || alone || probed_as_list(table, ranged)
    };
    // PostgreSQL: each customer once in each table's joined set.
    let distinct = if b.dialect == Dialect::Postgres {
        "DISTINCT "
    } else {
        ""
    };
    let selects: Vec<String> = tables
        .0
        .iter()
        .filter(|(table, (_, unranged))| in_list(*table, !unranged))
        .map(|(table, (tests, _))| {
            let alias = table.alias();
            let tests = b.scoped(alias, &one_of(tests));
            format!(
                "SELECT {distinct}{alias}.customer_id FROM {} WHERE {tests}",
                table.from(b.dialect, true)
            )
        })
        .collect();
    let mut set: Vec<String> = Vec::new();
    match b.dialect {
        Dialect::Sqlite if !selects.is_empty() => {
            set.push(format!("c.id IN ({})", selects.join(" UNION ALL ")));
        }
        Dialect::Sqlite => {}
        Dialect::Postgres => {
            for select in selects {
                let j = format!("j{}", b.joins.len() + 1);
                b.joins.push(format!(
                    "LEFT JOIN ({select}) {j} ON {j}.customer_id = c.id"
                ));
                set.push(format!("{j}.customer_id IS NOT NULL"));
            }
        }
    }
    // Each other table's blocks, negated or not, one lookup (SQLite only:
    // PostgreSQL lists every table).
    let mut lookups = Lookups::default();
    for (table, (tests, unranged)) in &tables.0 {
        if !in_list(*table, !unranged) {
            lookups.add(*table, one_of(tests), false);
        }
    }
    for (table, conds) in negated {
        lookups.add(table, conds, true);
    }
    if sampling {
        return sampled_or(b, parts, filters, &samples, set, lookups, |table| {
            tables
                .0
                .iter()
                .any(|(t, (_, unranged))| *t == table && in_list(table, !unranged))
        });
    }
    set.extend(lookups.tests(b, false));
    let set = set.join(" OR ");
    // PostgreSQL evaluates an OR's terms in the order written: the tests of
    // a joined column (`jN.customer_id IS NULL`), which cost nothing, first,
    // so that the customers they hold are never tested further.
    let mut terms: Vec<(bool, String)> = parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let term = format!("({})", p.unwrap_or_else(|| set.clone()));
            (!joins.contains(&i), term)
        })
        .collect();
    terms.sort_by_key(|(other, _)| *other);
    terms
        .into_iter()
        .map(|(_, term)| term)
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// SQLite, an `any`'s positive customer block of its default method's
/// tests and its own, beside a payment-method block ([`methods_own_form`]),
/// in the looked-up form of its count (`list` `Some(false)`, where every
/// table but unpaid invoices is looked up per customer; the other forms,
/// one list or as [`compiled`], keep the block as it is): one test of a
/// method's row, the default method passing the block's tests of it and
/// its customer (`c`) the others, asked in the customer's one lookup of its
/// methods with the table's other blocks ([`Lookups`]), not a lookup of its
/// own. A correlated test, it is never part of a list. Seed
/// `stop55a` shape-011, an `any` of a block of expired or active default
/// methods and `seats lt 5`, one of a name prefix and default methods not
/// pending, and a payment-method block (200,000 customers, CPU time, by
/// hand): the customers looked up so in 107 ms, each block its lookup in
/// 168 ms (its count, with the sample's choice below, 240-250 ms merged and
/// 143-154 ms so: [`merge::Asked`]). The customer's tests are asked as of
/// one customer ([`asked_of_one`]), its custom data in place, where its
/// default method passes: shape-011's `seats` range, a set built for every
/// customer, counted in 159-163 ms, 150-153 ms so.
fn default_row_test(
    b: &mut Builder,
    f: &Filter,
    filters: &[&Filter],
    today: NaiveDate,
    list: Option<bool>,
) -> Option<String> {
    let own = methods_own_form(f, filters)?;
    if b.dialect != Dialect::Sqlite || list != Some(false) || !matches!(b.scope, Scope::All) {
        return None;
    }
    let tests = default_tests(b, f, today);
    let own = asked_of_one(b, &own, today);
    Some(format!("{} AND ({own})", default_row(b, &tests)))
}

/// A customer block's tests of its default payment method, each on the
/// method's row (`pm`, [`default_row`]).
fn default_tests(b: &mut Builder, f: &Filter, today: NaiveDate) -> Vec<String> {
    f.conditions
        .iter()
        .filter(|(field, _)| default_field(field))
        .map(|(field, c)| condition::test(b, *field, c, today))
        .collect()
}

/// Whether `field` is one of a customer's default payment method.
fn default_field(field: &Field) -> bool {
    matches!(
        field,
        Field::CustomerDefaultPaymentMethod | Field::CustomerDefaultPaymentMethodStatus
    )
}

/// Whether a payment-method block admits a method without a connector
/// (`connector = { exists = false }`): on SQLite it joins the connectors
/// ([`Related::PaymentMethodsWithConnectors`]).
fn without_connector(f: &Filter) -> bool {
    matches!(
        f.conditions.get(&Field::PaymentMethodConnector),
        Some(Condition::Exists(false))
    )
}

/// The tests of its own row and custom data of a positive customer block
/// of those and its default method's (no links), beside a positive
/// payment-method block of its `any` (`filters`; not one that joins the
/// connectors, [`without_connector`]), whose lookup of each customer's
/// methods it joins ([`default_row_test`]). Without one, the
/// block's own tests, asked first, spare the customers they reject the
/// lookup: seed `stop55a` shape-005, an `any` of a block of `plan in
/// ["ree"]` and a default method's type and status and a block of links,
/// counted in 25 ms so and 90 ms with every customer's methods looked up.
fn methods_own_form(f: &Filter, filters: &[&Filter]) -> Option<Filter> {
    let default_only = f.conditions.keys().any(|k| k.reaches_related())
        && !f.conditions.contains_key(&Field::CustomerConnectorName);
    let looked_up = filters
        .iter()
        .any(|g| !g.negate && g.filter_type == FilterType::PaymentMethod && !without_connector(g));
    (positive_customer(f) && default_only && looked_up)
        .then(|| own_form(f))
        .flatten()
}

/// Where a block of an `any` is tested (SQLite): its own term of the OR,
/// or its table's positive (`Rows`) or negated (`NoRows`) blocks', in the set.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Part(usize),
    Rows(Related),
    NoRows(Related),
}

/// SQLite, [`any_of`]'s OR computed for every customer, its set split into
/// its terms (the list, then each table's lookup), the first term the one a
/// sample shows passes most customers for its cost
/// ([`sample::first_chosen`]). `samples` holds each block's place and test
/// as asked of one customer; `listed` tells the tables in the list. Costs,
/// per customer: a customer block 1 where an equality or a substring on its
/// own columns decides for most customers ([`own_few`]), else 1, 2 more with custom
/// data (a set's probe), 3 more where it reads related rows; a negated
/// block's list 2; the list 2; a lookup of a customer's rows 4. Where every
/// term is the list or a positive customer block of the customer's own row,
/// SQLite may read only the customers their indexes give (`MULTI-INDEX
/// OR`): no order is chosen there.
fn sampled_or(
    b: &Builder,
    parts: Vec<Option<String>>,
    filters: &[&Filter],
    samples: &[(Place, String)],
    list: Vec<String>,
    lookups: Lookups,
    listed: impl Fn(Related) -> bool,
) -> String {
    let sample = |keep: &dyn Fn(Place) -> bool| {
        let tests: Vec<String> = samples
            .iter()
            .filter(|(place, _)| keep(*place))
            .map(|(_, test)| test.clone())
            .collect();
        one_of(&tests)
    };
    let lookup_tables: Vec<Related> = lookups.0.0.iter().map(|(t, _)| *t).collect();
    let mut set: Vec<Term> = Vec::new();
    set.extend(list.into_iter().map(|sql| Term {
        sql: format!("({sql})"),
        sample: sample(&|p| matches!(p, Place::Rows(t) if listed(t))),
        cost: 2,
    }));
    for (table, sql) in lookup_tables.into_iter().zip(lookups.tests(b, false)) {
        set.push(Term {
            sql: format!("({sql})"),
            sample: sample(&|p| {
                p == Place::NoRows(table) || (p == Place::Rows(table) && !listed(table))
            }),
            cost: 4,
        });
    }
    // Whether some term is asked of every customer whatever the others
    // (a lookup, a negated block, a test of related rows): else SQLite may
    // read the customers the terms' indexes give (`MULTI-INDEX OR`), which
    // a choice of order would stop, and the order stays as given.
    let mut scans = set.iter().any(|t| t.cost > 2);
    let mut set = Some(set);
    let mut terms: Vec<Term> = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        match part {
            Some(sql) => {
                let own = samples
                    .iter()
                    .zip(filters)
                    .find(|((p, _), _)| *p == Place::Part(i));
                let (cost, drivable) = own.map_or((2, false), |(_, f)| match f.filter_type {
                    FilterType::Customer => {
                        let related = related_fields(f);
                        let cost = if own_few(f) {
                            1
                        } else {
                            1 + 2 * u32::from(!f.custom_data.is_empty()) + 3 * u32::from(related)
                        };
                        (cost, !f.negate && !related)
                    }
                    _ => (2, false),
                });
                scans |= !drivable;
                terms.push(Term {
                    sql: format!("({sql})"),
                    sample: sample(&|p| p == Place::Part(i)),
                    cost,
                });
            }
            None => terms.extend(set.take().into_iter().flatten()),
        }
    }
    sample::first_chosen(&terms, scans, false)
}

/// Tests joined by OR, each in parentheses.
fn one_of(tests: &[String]) -> String {
    tests
        .iter()
        .map(|t| format!("({t})"))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The selectivity class of a range of values.
const RANGE_CLASS: u8 = 2;

/// SQLite, `match = "all"`: the least selective class of a related block whose
/// list drives the query as given (see [`segment_predicate`]; where one does,
/// a sample may choose another's, of any class: [`drive::chosen_driver`]).
const DRIVING_CLASS: u8 = RANGE_CLASS;

/// Where a block goes in the compiled predicate, from what the compiler knows
/// of it (no statistics): tests on the customer row itself first (cheap, and
/// an index on customers may serve them), then related blocks from the most
/// to the least selective kind of test, then negated blocks. Under
/// `match = "all"` on SQLite the first related block is the list the query is
/// driven from as given, when one drives (see [`segment_predicate`]; a sample
/// may choose another: [`drive::chosen_driver`]).
fn block_order(f: &Filter) -> u8 {
    let related = related_fields(f);
    match (f.negate, f.filter_type) {
        (true, _) => 10,
        (false, FilterType::Customer) if !related => 0,
        (false, _) => 1 + block_class(f),
    }
}

/// The selectivity class of a block's most selective test (3 when it has none).
fn block_class(f: &Filter) -> u8 {
    test_classes(f).min().unwrap_or(3)
}

/// How many of a block's tests are of its best class: under `match = "all"`,
/// of two positive blocks of one class, the one with more such tests comes
/// first ([`ordered`]) and drives (under `any`, the order of an OR's terms,
/// it would put the block fewer customers pass first). Two equalities select
/// fewer rows than one beside a range: a payment-method block of the expired
/// default methods and an invoice block of overdue invoices since a date
/// (1,000,000 customers, CPU time) took 245 ms driven from the invoices
/// (243,000 rows) and 142 ms from the methods (66,000); the hand-written
/// join 134 ms.
fn best_tests(f: &Filter) -> usize {
    let best = block_class(f);
    test_classes(f).filter(|c| *c == best).count()
}

/// The selectivity class of each of a block's tests.
fn test_classes(f: &Filter) -> impl Iterator<Item = u8> + '_ {
    f.conditions
        .iter()
        .map(|(field, c)| field_class(*field, c))
        .chain(f.custom_data.values().map(|c| selectivity(c, true)))
}

/// SQLite, `match = "all"`: whether the customers' own tests (a positive
/// customer block's tests on the customer row or its custom_data) are at
/// least as selective a class as the best related block's, and of a range's
/// class or narrower ([`RANGE_CLASS`]) or a substring of the customer's own
/// columns, which as a rule few customers pass ([`own_few`]). Then the
/// customers drive the query and each related block is only probed per
/// customer that passes them ([`related`]), never read whole when none
/// does. Driven from the invoice list instead, an email prefix that no
/// customer has with three related blocks (200,000 customers) took 408 ms,
/// 29 ms so (CPU time). A related block of a more selective class still
/// drives, through its list.
/// Broader own tests (`ne`, `not_in`, `exists`) may pass most customers,
/// read every one: the customers are scanned then, as where nothing
/// drives ([`all_of`]: each customer's lookups one AND whose first test a
/// sample chooses, a negated block's custom data a set). Fixed-seed
/// shape-121, an `all` of an email `ne` and a country `not_in` beside an
/// invoice, a connector and a negated customer block (each of class 3),
/// counted in 272-287 ms driven by the customers and 181-187 ms so.
fn customers_drive(filters: &[&Filter]) -> bool {
    let few = positive_customers(filters).any(own_few);
    matches!(classes(filters), (Some(own), Some(related)) if own <= related && (own <= RANGE_CLASS || few))
}

/// Whether `f` is a positive customer block.
fn positive_customer(f: &Filter) -> bool {
    !f.negate && f.filter_type == FilterType::Customer
}

/// The positive customer blocks of `filters`.
fn positive_customers<'a>(filters: &'a [&'a Filter]) -> impl Iterator<Item = &'a Filter> {
    filters.iter().copied().filter(|f| positive_customer(f))
}

/// Whether no positive customer block's own test of `filters` is of a range
/// or narrower class ([`classes`]), one an index may serve: the customers
/// are then scanned where no list drives ([`all_of`]).
fn own_unranged(filters: &[&Filter]) -> bool {
    classes(filters).0.is_none_or(|own| own > RANGE_CLASS)
}

/// The best selectivity class of the customers' own tests and of the related
/// blocks' tests, among the positive blocks of `filters`.
fn classes(filters: &[&Filter]) -> (Option<u8>, Option<u8>) {
    let positive = || filters.iter().filter(|f| !f.negate);
    let own = positive_customers(filters)
        .flat_map(|f| {
            let fields = f
                .conditions
                .iter()
                .filter(|(field, _)| !field.reaches_related())
                .map(|(field, c)| field_class(*field, c));
            fields.chain(f.custom_data.values().map(|c| selectivity(c, true)))
        })
        .min();
    let related = positive()
        .filter_map(|f| match f.filter_type {
            FilterType::Customer => f
                .conditions
                .iter()
                .filter(|(field, _)| field.reaches_related())
                .map(|(field, c)| field_class(*field, c))
                .min(),
            _ => Some(block_order(f) - 1),
        })
        .min();
    (own, related)
}

/// The selectivity class of `field`'s test `c` (see [`selectivity`]; a
/// `created_after` and a customer's connector name by a substring are a
/// range's).
fn field_class(field: Field, c: &Condition) -> u8 {
    match (field, c) {
        // `created_after = T` reads as a range, whatever its operator.
        (Field::InvoiceCreatedAfter, _) => RANGE_CLASS,
        // A customer's connector name, by any operator, is the links of a
        // list of the few connectors' ids, an index range each
        // ([`connector_ids`]): a substring of it (`contains`, `ends_with`)
        // is of a range's class, as its prefix is, where a substring of a
        // column is of the broadest. So a negated block of Adyen links
        // (`ends_with = "dyen"`) and `plan exists` beside three positive
        // blocks (seed `stop50` shape-125, 91% of the customers are
        // members) is counted as every customer but the `all` its links
        // drive ([`sampled_complement_count`]): in 107-108 ms, where each
        // customer was asked its lookups in 412-417 ms (200,000 customers,
        // CPU time, with and without statistics). A connector block's
        // name (`type = "connector"`), the same links, keeps a
        // substring's class: its place among an `any`'s or an `all`'s
        // blocks is unmeasured.
        (Field::CustomerConnectorName, Condition::Compare(Op::Contains | Op::EndsWith, _)) => {
            RANGE_CLASS
        }
        _ if name_prefix(field, c) => 1,
        _ => selectivity(
            c,
            matches!(field, Field::CustomerName | Field::CustomerEmail),
        ),
    }
}

/// Whether `c` on `field` is a prefix of a customer's name or email of at
/// least [`PREFIX_CHARS`] characters: a range of their case-insensitive index
/// on SQLite (migration 0011), as narrow as a list of few values. A shorter
/// prefix (`""`, `"a"`) may hold most customers, and stays a range (class 2).
pub(super) fn name_prefix(field: Field, c: &Condition) -> bool {
    matches!(field, Field::CustomerName | Field::CustomerEmail)
        && matches!(c, Condition::Compare(Op::StartsWith, Scalar::Str(p)) if p.chars().count() >= PREFIX_CHARS)
}

/// The shortest name or email prefix taken as selective (see [`name_prefix`]),
/// and the shortest custom_data prefix read as a range of its key's index on
/// SQLite (see `custom_data_sqlite`).
pub(super) const PREFIX_CHARS: usize = 3;

/// A test's selectivity class, 0 (few rows pass) to 3 (most may): equality
/// on a customer's name or email (`free_text`) or a custom_data key, then
/// equality or a list on a value of few kinds, then ranges and prefixes, then
/// the rest (`ne`, `not_in`, `exists`, substrings).
fn selectivity(c: &Condition, free_text: bool) -> u8 {
    match c {
        Condition::Compare(Op::Eq, _) if free_text => 0,
        Condition::Compare(Op::Eq, _) | Condition::List(Op::In, _) => 1,
        Condition::Compare(Op::Gt | Op::Gte | Op::Lt | Op::Lte | Op::StartsWith, _) => RANGE_CLASS,
        _ => 3,
    }
}

fn block(b: &mut Builder, f: &Filter, today: NaiveDate) -> String {
    compile_block(b, f, today).into_test(b, f.negate)
}

/// A block's test as asked of one customer (of a sample): its related rows
/// looked up, its custom data read in place, no list or set built.
fn asked_of_one(b: &mut Builder, f: &Filter, today: NaiveDate) -> String {
    of_one(b, |b| block(b, f, today))
}

/// `ask` compiled as of one customer (`Driver::Customers`), the builder's
/// driver kept.
fn of_one<T>(b: &mut Builder, ask: impl FnOnce(&mut Builder) -> T) -> T {
    let driver = std::mem::replace(&mut b.driver, Driver::Customers);
    let asked = ask(b);
    b.driver = driver;
    asked
}

/// What a block compiles to.
enum Compiled {
    /// A test on the customer row (which may read related rows).
    Test(String),
    /// The related rows whose customers the block selects (or, negated,
    /// excludes): the rows of `table` satisfying `conds`; `ranged` when SQLite
    /// reads them from an index range (see [`ranged`]).
    Rows {
        table: Related,
        conds: String,
        ranged: bool,
    },
}

impl Compiled {
    fn into_test(self, b: &mut Builder, negate: bool) -> String {
        match self {
            Self::Test(test) => test,
            Self::Rows {
                table,
                conds,
                ranged,
            } => related(b, table, &conds, negate, ranged),
        }
    }
}

/// A table of rows that belong to a customer (by `customer_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Related {
    Invoices,
    PaymentMethods,
    /// The payment methods, each with its connector (SQLite, a test of a
    /// method without one).
    PaymentMethodsWithConnectors,
    /// The customers' links to connectors.
    Links,
    Monitors,
}

impl Related {
    fn alias(self) -> &'static str {
        match self {
            Self::Invoices => "i",
            Self::PaymentMethods | Self::PaymentMethodsWithConnectors => "pm",
            Self::Links => "cc",
            Self::Monitors => "m",
        }
    }

    /// The table aliased, as read for a list of customers (`list`) or per
    /// customer by its key.
    ///
    /// SQLite reads a list of links through the index by connector that also
    /// holds the customer (migration 0010), named: the links of the few
    /// connectors a block selects are then index ranges read from the index
    /// alone, whatever the statistics. Left to choose, SQLite with `ANALYZE`
    /// scanned every link instead (an `any` of a connector, a monitor and a
    /// country block on 1,000,000 customers: 166 ms, 103 ms so; the
    /// hand-written join 100 ms). Per customer, only the primary key
    /// `(customer_id, connector_id)` finds a customer's links.
    fn from(self, dialect: Dialect, list: bool) -> &'static str {
        match self {
            Self::Invoices => "invoices i",
            Self::PaymentMethods => "payment_methods pm",
            Self::PaymentMethodsWithConnectors => {
                "payment_methods pm LEFT JOIN connectors k ON k.id = pm.connector_id"
            }
            Self::Links if list && dialect == Dialect::Sqlite => {
                "customer_connectors cc INDEXED BY customer_connectors_connector_customer"
            }
            Self::Links => "customer_connectors cc",
            Self::Monitors => "monitors m",
        }
    }
}

fn compile_block(b: &mut Builder, f: &Filter, today: NaiveDate) -> Compiled {
    let outer = b.per_row;
    let negated_customer = f.negate && f.filter_type == FilterType::Customer;
    // PostgreSQL: a negated customer block that reads related rows, at the
    // top, is an anti-join with the customers its positive form selects, so
    // its related tests are joins too, not a subplan per customer.
    let anti = negated_customer && !outer && b.dialect == Dialect::Postgres && related_fields(f);
    b.per_row = outer || (negated_customer && !anti);
    // Only the block itself may become a join, never a test inside it.
    let join = std::mem::take(&mut b.any_join);
    let mut tests = match block_tests(b, f, today) {
        Ok(tests) => tests,
        Err(rows) => {
            b.per_row = outer;
            b.any_join = join;
            return rows;
        }
    };
    // SQLite, a customer block asked of every customer: the test asked
    // first is the one a sample shows fails most customers for its cost
    // ([`sample::first_chosen`]); asked of one customer, each test reads
    // that customer's rows and custom data (`Driver::Customers`). A
    // negated block is computed for every customer. A positive one is
    // where its `any` is (`per_row`, as are an impact's sides, or the
    // customers' select of a merge, which holds no negated block), unless
    // an equality or a substring of its own columns leaves few
    // ([`own_few`]); the tests an index may serve stay tests of their own
    // (a `CASE` hides a test from the planner), those of the customer's
    // row and probes of a set before the others, the rest after. At the
    // top of an `all`, SQLite asks first the terms of its WHERE clause
    // without a correlated subquery (a list of invoices), which one `CASE`
    // of the block would follow: an `all` of a negated invoice block and a
    // customer block of a name list and two custom data substrings
    // (200,000 customers, CPU time) counted in 104-130 ms so, 130-138 ms
    // in a `CASE`.
    let customer = f.filter_type == FilterType::Customer;
    let choosable = |t: &BlockTest| f.negate || !t.indexed;
    let sampled = customer
        && (b.per_row || b.own_scanned)
        && (f.negate || !own_few(f))
        && b.dialect == Dialect::Sqlite
        && matches!(b.scope, Scope::All)
        && b.driver != Driver::Customers
        && tests.iter().filter(|t| choosable(t)).count() > 1;
    let chosen = sampled.then(|| {
        let samples = of_one(b, |b| block_tests(b, f, today)).unwrap_or_default();
        // The same tests in the same order (`condition` does not read the
        // driver); were they not, the order given.
        let same = samples.len() == tests.len();
        let (mut terms, mut before, mut after) = (Vec::new(), Vec::new(), Vec::new());
        let samples = samples
            .into_iter()
            .map(|s| Some(s.sql))
            .chain(std::iter::repeat_with(|| None));
        for (test, sample) in std::mem::take(&mut tests).into_iter().zip(samples) {
            if choosable(&test) {
                terms.push(Term {
                    sql: format!("({})", test.sql),
                    sample: sample.unwrap_or_default(),
                    cost: test.cost,
                });
            } else if test.cost <= 2 {
                before.push(format!("({})", test.sql));
            } else {
                after.push(format!("({})", test.sql));
            }
        }
        before.push(format!("({})", sample::first_chosen(&terms, same, true)));
        before.extend(after);
        before.join(" AND ")
    });
    b.per_row = outer;
    b.any_join = join;
    if f.filter_type == FilterType::Invoice && implies_unpaid(f) {
        tests.push(BlockTest {
            sql: UNPAID_SQL.to_string(),
            cost: 1,
            indexed: true,
        });
    }
    let all = match chosen {
        Some(all) => all,
        None if tests.is_empty() => b.true_().to_string(),
        None => tests
            .iter()
            .map(|t| format!("({})", t.sql))
            .collect::<Vec<_>>()
            .join(" AND "),
    };
    let joins_connectors = b.dialect == Dialect::Sqlite && without_connector(f);
    let table = match f.filter_type {
        FilterType::Customer => {
            // A NULL (a missing value) is false, also under NOT: the anti-join
            // removes only the customers whose tests all hold.
            return Compiled::Test(if anti {
                format!(
                    "NOT EXISTS (SELECT 1 FROM (SELECT c.id FROM customers c WHERE {all}) n WHERE n.id = c.id)"
                )
            } else if f.negate {
                let per_row = format!("NOT COALESCE(({all}), {})", b.false_());
                driven_set(b, f, today, per_row)
            } else {
                driven_set(b, f, today, all)
            });
        }
        FilterType::Invoice => Related::Invoices,
        FilterType::PaymentMethod if joins_connectors => Related::PaymentMethodsWithConnectors,
        FilterType::PaymentMethod => Related::PaymentMethods,
        FilterType::Connector => {
            let conds = connector_ids(b, "cc.connector_id", &all);
            return Compiled::Rows {
                table: Related::Links,
                conds,
                ranged: true,
            };
        }
        FilterType::Monitor => Related::Monitors,
    };
    Compiled::Rows {
        table,
        conds: all,
        ranged: ranged(f),
    }
}

/// How many times the customers of a set's list ([`driven_set`]) those of
/// its block's custom data sets must hold, summed, for the set to be
/// chosen where its own tests pass few: a customer of the list costs about
/// six of a key's set to look up (its id, its JSON parsed, its other
/// related rows), a set's customer about one to read from the key's index
/// and probe, and the customers the sets leave each cost lookups too. Seed
/// `stop54a` shape-016, an `any` of a customer block of the GoCardless
/// links (14% of the customers), a default method of three statuses and
/// `region starts_with "amer"` (42%) and `seats lt 4` (49%) beside a
/// payment-method block (200,000 customers, CPU time, by hand): counted in
/// 294 ms per customer (the two keys' sets built in 104 ms) and 101 ms
/// as the set of the links.
const KEYS_TO_LIST: u8 = 4;

/// SQLite, a customer block asked of every customer, its positive form's
/// tests asked of each: a negated one where the customers are scanned
/// (`per_row`, [`Builder::everyone`]); a positive one where every customer
/// is asked it (`per_row`: its `any`, a plan's impact), or where the
/// customers' select of a merge is unless a test of its own an index may
/// serve ([`RANGE_CLASS`]) finds the customers there (a `CASE` hides it
/// from the planner). Where its related
/// tests would drive its positive form ([`split_driving`]) and a sample
/// shows they pass few customers (at most a quarter) while its own tests
/// ([`sampled_own`]) pass many (negated, at least half, so that its
/// per-customer form asks the related rows of most; positive, a quarter,
/// as it asks the related rows of those its own tests pass) or, where its
/// custom data are sets, those hold [`KEYS_TO_LIST`] times its related
/// tests' customers, the customers of its positive form,
/// an `all` of its own ([`predicate`], [`on_its_own`]) driven by their
/// list, are one set the others are not in (negated) or are in. Where its
/// links and its default method's tests may each drive ([`driving_tests`]),
/// each list is a set of its own, the sample asking for each whether it is
/// worth it, and picking the list that holds fewer of its customers (a
/// list of default methods not of listed statuses, a scan of the payment
/// methods, weighed as [`drive::SCANNED`] more); each list reads rows only
/// where picked (its limit the choice, [`Builder::guard`]): by its classes
/// alone, the default method of three statuses (most customers) drove
/// seed `stop54a` shape-016's set, where the GoCardless links (14%) do
/// now (see [`KEYS_TO_LIST`]). An `any`
/// of a negated customer block of a default method's status and a `seats`
/// range (65%) (200,000 customers, CPU time) counted in 94 ms computed for
/// every customer; as a set, 37 ms for the pending methods (4% of the
/// customers), 43 for the expired (7%), and 150 for the active (61%), had
/// it been built (it is not: over a quarter). Of the links to a connector
/// and the expired default methods beside a monitor block, 72-76 ms per
/// customer; as a set driven by the links, 40 ms for Adyen's (14%), 43 for
/// PayPal's (16%), and 71 for Stripe's (41%, not built). Where the own
/// tests reject most customers, the form per customer asks few of them for
/// related rows already: the set of the default ACH methods beside a
/// `region` range that no customer passes counted in 29 ms without
/// statistics (SQLite drove it by the methods), 8 ms per customer.
/// Positive, seed `stop47` shape-134, an `any` of a customer block of an
/// email `ne`, a `region` suffix (44%), the links to PayPal (16%) and a
/// failed default method (3%) beside three blocks of related rows, counted
/// in 240 ms per customer and 169 ms so (CPU time, by hand). Where few
/// customers reach the block (another block of the `any` passes most of
/// them first), its set costs its list for nothing: the fixed seed's
/// shape-109, beside a negated `email exists false`, counted in 42 ms per
/// customer and 103 ms so (0.5x and 1.4x its bound). A positive block's
/// set is written alone, its sample collected, where [`Builder::bare_sets`]
/// asks (the one-list form of a sampled count, [`merge::count_any`]).
fn driven_set(b: &mut Builder, f: &Filter, today: NaiveDate, per_row: String) -> String {
    let asked = if f.negate {
        b.everyone && !b.own_scanned
    } else {
        b.per_row || (b.own_scanned && own_unranged(&[f]))
    };
    let chosen = b.dialect == Dialect::Sqlite
        && asked
        && matches!(b.scope, Scope::All)
        && b.driver != Driver::Customers;
    if !chosen {
        return per_row;
    }
    let positive = Filter {
        negate: false,
        ..f.clone()
    };
    let first = links_drive(&positive);
    let Some((related, own)) = split_driving(&positive) else {
        return per_row;
    };
    // The binds of `per_row` (compiled before) and none of this set's.
    let mark = b.binds.len();
    // Where its custom data is asked in place, each customer's JSON is read
    // whatever its other tests leave: the sample asks those alone.
    let sets = custom_data::as_set(b, block_sets(b, f));
    let own = own
        .and_then(|own| sampled_own(own, sets))
        .map(|own| asked_of_one(b, &own, today));
    let many = if f.negate { 2 } else { 4 };
    // Each list that may drive it: the one its classes choose, and its
    // other related tests' (its links, or its default method's) where they
    // may too ([`driving_tests`]), whichever a sample finds fewer pass.
    let lists: Vec<(bool, String)> = std::iter::once((first, related))
        .chain(driving_tests(&positive, !first).map(|(other, _)| (!first, other)))
        .map(|(links, related)| (links, asked_of_one(b, &related, today)))
        .collect();
    // Where its custom data are sets, each built whole from its key's
    // index where first asked: the customers they hold, summed.
    let keys: Vec<String> = if sets {
        positive
            .custom_data
            .iter()
            .map(|(key, c)| sample::passing(&asked_of_one(b, &key_test(key, c), today)))
            .collect()
    } else {
        Vec::new()
    };
    // Whether a sample finds the set worth it, said of its customers.
    let few_of = |related: &str| {
        let mut holds = vec![sample::holding(related, false, 1, 4)];
        if let Some(own) = &own {
            let many = sample::holding(own, true, 1, many);
            holds.push(if keys.is_empty() {
                many
            } else {
                let listed = sample::passing(related);
                format!(
                    "({many} OR {} >= {KEYS_TO_LIST} * {listed})",
                    keys.join(" + ")
                )
            });
        }
        holds.join(" AND ")
    };
    // A list of default methods not of listed statuses is a scan of the
    // payment methods (links are an index range): weighed as
    // [`drive::chosen_driver`] weighs one.
    let scanned = if listed(status_of(&positive)) {
        0
    } else {
        drive::SCANNED
    };
    let passed: Vec<String> = lists
        .iter()
        .map(|(links, related)| {
            let scan = if *links { 0 } else { scanned };
            format!("{} + {scan}", sample::passing(related))
        })
        .collect();
    let choice = (lists.len() > 1).then(|| sample::least(&passed));
    // Each list a set of its own, reading rows only where chosen (its
    // limit the choice, [`Builder::guard`]).
    let mut arms: Vec<(String, String)> = Vec::new();
    for (arm, (links, related)) in lists.iter().enumerate() {
        let guard = choice.as_ref().map(|choice| format!("{choice} = {arm}"));
        let kept = b.links_first.replace(*links);
        let (members, guarded) = on_its_own(b, |b| {
            b.guard = guard;
            let members = predicate(b, MatchMode::All, vec![&positive], today);
            (members, b.guard.take().is_none())
        });
        b.links_first = kept;
        if guarded {
            arms.push((few_of(related), members));
        }
    }
    let (few, members) = match (lists.len(), &mut arms[..]) {
        (1, [(few, members)]) => (
            sample::holds_of_one(&[std::mem::take(few)]),
            std::mem::take(members),
        ),
        (2, [(few0, members0), (few1, members1)]) => {
            // Of one sample, the chosen list's (as `choice` chooses).
            let few = format!(
                "CASE WHEN {} <= {} THEN {few0} ELSE {few1} END",
                passed[0], passed[1]
            );
            (
                sample::holds_of_one(&[few]),
                format!("{members0} UNION ALL SELECT c.rowid FROM customers c WHERE {members1}"),
            )
        }
        // A list that did not take its guard (its rows read whatever the
        // choice): the block asked of each customer, none of the sets' binds.
        _ => {
            b.binds.truncate(mark);
            return per_row;
        }
    };
    let set = |not: &str| customers_passing(not, &members);
    if !f.negate
        && let Some(samples) = &mut b.bare_sets
    {
        samples.push(few);
        return set("");
    }
    let (not, per_row) = if f.negate {
        ("NOT ", per_row)
    } else {
        ("", format!("({per_row})"))
    };
    format!("CASE WHEN {few} THEN {} ELSE {per_row} END", set(not))
}

/// Of a block's own tests `own`, those whose passing share tells whether
/// the customers scanned are asked few of its related rows
/// ([`driven_set`]): all of them where its custom data are sets (`sets`);
/// else (in place: a merge's select of the customers, of an `any` or of
/// a complement, or a block few customers pass, [`custom_sets`]) its
/// tests of the customer's row alone (`None` where it has none), as its
/// custom data, in place, read each customer's JSON whatever the others
/// leave. Seed `stop49` shape-065, an `any` of monitor and connector
/// blocks and a customer block of the Stripe Legacy links (7% of the
/// customers), `country not_in ["SG"]` and custom_data substrings no
/// customer passes (200,000 customers, CPU time, by hand, with / without
/// statistics): counted merged in 188 / 167 ms, the merge's select of the
/// customers parsing every customer's JSON (90 ms with statistics); with
/// the set, 136 / 105 ms (that select 46 ms).
fn sampled_own(mut own: Filter, sets: bool) -> Option<Filter> {
    if sets {
        return Some(own);
    }
    own.custom_data.clear();
    (!own.conditions.is_empty()).then_some(own)
}

/// A positive customer block `f`'s tests as two positive blocks, where its
/// related tests drive it as an `all` of its own ([`predicate`]): the
/// related tests whose list drives it (the links of its `connector_name`
/// or its default method's tests, one list, whichever [`links_drive`]
/// chooses, which take the list first, [`block_tests`]), of a range or
/// narrower class ([`RANGE_CLASS`]) more selective than its own tests'
/// ([`classes`]; else the customers drive, [`customers_drive`]); and its
/// own tests (none when it has none).
fn split_driving(f: &Filter) -> Option<(Filter, Option<Filter>)> {
    let (driving, best) = driving_tests(f, links_drive(f))?;
    if classes(&[f]).0.is_some_and(|own| own <= best) {
        return None;
    }
    Some((driving, own_form(f)))
}

/// A customer block `f`'s related tests of its links (`links`) or of its
/// default method, as a positive block, where one of them is of a range
/// or narrower class ([`RANGE_CLASS`]), a list that may drive it; with
/// that best class.
fn driving_tests(f: &Filter, links: bool) -> Option<(Filter, u8)> {
    let driving = related_tests(f, links)?;
    let best = driving
        .conditions
        .iter()
        .map(|(field, c)| field_class(*field, c))
        .min()
        .filter(|best| *best <= RANGE_CLASS)?;
    Some((driving, best))
}

/// A customer block `f`'s related tests of its links (`links`) or of its
/// default method, of any class, as a positive block; `None` where it has
/// none.
fn related_tests(f: &Filter, links: bool) -> Option<Filter> {
    let tests: BTreeMap<Field, Condition> = f
        .conditions
        .iter()
        .filter(|(field, _)| {
            field.reaches_related() && (**field == Field::CustomerConnectorName) == links
        })
        .map(|(field, c)| (*field, c.clone()))
        .collect();
    (!tests.is_empty()).then(|| Filter {
        filter_type: f.filter_type,
        negate: false,
        conditions: tests,
        custom_data: BTreeMap::new(),
    })
}

/// Whether a customer block's links (its `connector_name` test) drive it
/// where its related tests do, ahead of its default method's tests: where
/// it has them, unless a test of its default method is of a narrower class
/// ([`field_class`]). Before, the links drove wherever the block had them:
/// the links to PayPal (`ends_with`, 16% of the customers) ahead of a
/// failed default method (3%), which now drives its set (seed `stop47`
/// shape-134, see [`driven_set`]).
fn links_drive(f: &Filter) -> bool {
    let class = |field: &Field| f.conditions.get(field).map(|c| field_class(*field, c));
    let default = [
        Field::CustomerDefaultPaymentMethod,
        Field::CustomerDefaultPaymentMethodStatus,
    ]
    .iter()
    .filter_map(class)
    .min();
    match class(&Field::CustomerConnectorName) {
        Some(links) => default.is_none_or(|default| links <= default),
        None => false,
    }
}

/// Whether a customer block's only tests are of one kind of related rows:
/// its links, or its default method (its type, its status or both), no
/// test of its own row or custom data. Positive
/// (or on PostgreSQL), it is those rows ([`block_tests`]).
fn related_alone(f: &Filter) -> bool {
    let links = f.conditions.contains_key(&Field::CustomerConnectorName);
    let default = f.conditions.keys().any(default_field);
    links != default && own_form(f).is_none()
}

/// Whether the merge's select of the customers of `filters`' positive
/// customer blocks ([`merge`]) scans them all: one of its blocks (asked
/// there, not its related rows alone, [`related_alone`]) has no test an
/// index may serve ([`own_unranged`]), so its OR is no `MULTI-INDEX OR`.
/// Their custom data are then sets ([`Builder::everyone`]), each read from
/// its key's index, where in place each customer's JSON is parsed: seed
/// `stop54a` shape-116, an `any` of a `seats` equality no customer passes,
/// a customer block of the PayPal links and default method, a connector
/// block and a negated customer block (200,000 customers, CPU time, by
/// hand), counted in 330 ms with the `seats` test in place and 241 ms so
/// (199 ms with the sample asking each block of one customer,
/// [`merge::merged_complement`]).
fn merge_scans(filters: &[&Filter]) -> bool {
    positive_customers(filters).any(|f| !related_alone(f) && own_unranged(&[f]))
}

/// A customer block's tests of its own row and custom data (none of related
/// rows: [`Field::reaches_related`]) as a positive block; `None` where it
/// has none.
fn own_form(f: &Filter) -> Option<Filter> {
    let own = Filter {
        filter_type: f.filter_type,
        negate: false,
        conditions: f
            .conditions
            .iter()
            .filter(|(field, _)| !field.reaches_related())
            .map(|(field, c)| (*field, c.clone()))
            .collect(),
        custom_data: f.custom_data.clone(),
    };
    (!own.conditions.is_empty() || !own.custom_data.is_empty()).then_some(own)
}

/// `ask` compiled as a query over all customers of its own (no list or
/// driver of the query's taken, not per customer, not a merge's select of
/// the customers), the builder's state kept. Its caller's scope is all
/// customers ([`driven_set`]): that it keeps as it is.
fn on_its_own<T>(b: &mut Builder, ask: impl FnOnce(&mut Builder) -> T) -> T {
    let kept = (
        std::mem::replace(&mut b.per_row, false),
        std::mem::replace(&mut b.any_join, false),
        std::mem::replace(&mut b.driver, Driver::Unchosen),
        b.guard.take(),
        std::mem::replace(&mut b.everyone, false),
        std::mem::replace(&mut b.own_scanned, false),
        b.kept_index.take(),
        b.bare_sets.take(),
    );
    let asked = ask(b);
    (
        b.per_row,
        b.any_join,
        b.driver,
        b.guard,
        b.everyone,
        b.own_scanned,
        b.kept_index,
        b.bare_sets,
    ) = kept;
    asked
}

/// A block's tests, each with its cost per row relative to the others' (a
/// test of the row's columns 1, a probe of a custom_data set 2, custom
/// data parsed in place 3, a lookup of the customer's links or default
/// method 4): the row's own tests first, then custom data, then those that
/// read related rows. They run in that order, unless a sample chooses the
/// first ([`compile_block`]): a customer its own tests reject is then
/// never looked up in a list.
/// `Err` where a customer block's only test is on related rows (positive,
/// or on PostgreSQL): the block is those rows (under `match = "any"`, part
/// of the set, see [`any_of`]).
fn block_tests(b: &mut Builder, f: &Filter, today: NaiveDate) -> Result<Vec<BlockTest>, Compiled> {
    let mut tests: Vec<BlockTest> = Vec::new();
    // The tests on related rows: the links, and the default payment method's
    // tests on one row (see [`default_method`]).
    let mut related: Vec<Compiled> = Vec::new();
    let mut default_tests: Vec<String> = Vec::new();
    for (field, c) in &f.conditions {
        match field {
            field if default_field(field) => {
                default_tests.push(condition::test(b, *field, c, today));
            }
            _ => match condition(b, *field, c, today) {
                rows @ Compiled::Rows { .. } => related.push(rows),
                Compiled::Test(sql) => {
                    let indexed = field_class(*field, c) <= RANGE_CLASS;
                    // `IS NULL` may read an index too.
                    let kept = matches!(&b.kept_index, Some(OwnTest::Field(k)) if k == field);
                    let hidden = indexed || matches!(c, Condition::Exists(_));
                    tests.push(BlockTest {
                        sql: hidden_unless_kept(b, f, hidden && !kept, sql),
                        cost: 1,
                        indexed,
                    });
                }
            },
        }
    }
    if !default_tests.is_empty() {
        let method = default_method(b, &default_tests, listed(status_of(f)));
        // The narrower list first: where a list drives, the first does.
        let links = b.links_first.unwrap_or_else(|| links_drive(f));
        let at = if links { related.len() } else { 0 };
        related.insert(at, method);
    }
    // Negated on PostgreSQL too: those rows' `NOT EXISTS`, an anti-join
    // with them, not with the customers of their semi-join (seed `stop47`
    // shape-140, four negated blocks counted as the complement of an
    // `any`, 240 ms and 204 ms so, wall clock by hand). SQLite asks a
    // negated customer block of every customer (see [`driven_set`]).
    if f.filter_type == FilterType::Customer
        && (!f.negate || b.dialect == Dialect::Postgres)
        && related_alone(f)
        && let Some(rows) = related.pop()
    {
        return Err(rows);
    }
    // A customer's links and default method: a lookup.
    let related_tests: Vec<BlockTest> = related
        .into_iter()
        .map(|rows| BlockTest {
            sql: rows.into_test(b, false),
            cost: 4,
            // Where the tests are ordered, a lookup (nothing drives there).
            indexed: false,
        })
        .collect();
    // Where few customers pass the block's own tests, their custom data is
    // read in place, no set built (see [`custom_data`]); so is a block of
    // one key's test alone that is the whole query ([`custom_sets`]).
    let sets = block_sets(b, f);
    let many = read_through_index(b, f, sets, today);
    for (key, c) in &f.custom_data {
        let cost = if custom_data::as_set(b, sets) { 2 } else { 3 };
        let test = custom_data(b, key, c, sets);
        let indexed = selectivity(c, true) <= RANGE_CLASS || matches!(c, Condition::Exists(_));
        let sql = match (b.dialect, &many) {
            (Dialect::Sqlite, Some(many)) if unindexed_set(c) => format!(
                "CASE WHEN {many} THEN {} ELSE ({}) END",
                custom_data::passing_set(b, key, c),
                in_place(&test)
            ),
            (Dialect::Sqlite, _) => in_place(&test),
            (Dialect::Postgres, _) => test,
        };
        let kept = matches!(&b.kept_index, Some(OwnTest::Key(k)) if k == key);
        tests.push(BlockTest {
            sql: hidden_unless_kept(b, f, indexed && !kept, sql),
            cost,
            indexed,
        });
    }
    tests.extend(related_tests);
    Ok(tests)
}

/// SQLite: where a positive customer block's custom data are tested in
/// place ([`custom_data`]) in a merge's select of the customers
/// ([`Builder::own_scanned`], read through the index of its best own
/// test, [`own_indexed`]), the test of a sample of the customers that many
/// pass all the tests an index may serve (one in eight or more): each key's
/// test no index serves ([`unindexed_set`]) is then the set of the
/// customers that pass it, one read of its key's index, not each
/// customer's JSON parsed where the index reads it (about 1.2 µs a
/// customer). Seed `stop54b` shape-175, an `any` of a customer block of
/// `plan ends_with "starter"` and `seats gt 4` (79,000 customers) beside
/// two payment-method blocks (200,000 customers, CPU time, by hand): its
/// customers' select took 117-159 ms with the `plan` test in place and
/// 41-44 ms as its set, the count 204-215 ms and 142-147. Not where a
/// sample asks the block of one customer, nor where a list drives: asked
/// so, in place (of the draws' 1,804 segments, the rule where every
/// customer block's custom data were in place changed 36 counts, 1,380 ->
/// 1,416 ms, fixed-seed shape-192 79 -> 121 ms, the set built for the
/// sample; in the merges' selects only, 7 counts, 767 -> 676 ms with
/// statistics, 631 -> 561 without). `None` where no key's test is such, or
/// the block's customers are read otherwise.
fn read_through_index(b: &mut Builder, f: &Filter, sets: bool, today: NaiveDate) -> Option<String> {
    // Not sets already ([`custom_data::as_set`]), nor asked of one customer.
    let tested_in_place = b.dialect == Dialect::Sqlite
        && sets
        && !b.per_row
        && !b.everyone
        && matches!(b.scope, Scope::All)
        && b.own_scanned
        && b.driver == Driver::Unchosen
        && positive_customer(f);
    if !tested_in_place || !f.custom_data.values().any(unindexed_set) {
        return None;
    }
    let ranged = own_indexed(f);
    if ranged.is_empty() {
        return None;
    }
    let mut all = Filter {
        filter_type: FilterType::Customer,
        negate: false,
        conditions: BTreeMap::new(),
        custom_data: BTreeMap::new(),
    };
    for (_, one) in ranged {
        all.conditions.extend(one.conditions);
        all.custom_data.extend(one.custom_data);
    }
    let asked = asked_of_one(b, &all, today);
    Some(sample::share(&asked, true, 1, 8))
}

/// A custom_data test no index range serves whose customers are a set of
/// those that pass it ([`read_through_index`]): not one most may pass
/// (`ne`, `not_in`, `exists`), whose set is of those that fail.
fn unindexed_set(c: &Condition) -> bool {
    selectivity(c, true) > RANGE_CLASS
        && !matches!(
            c,
            Condition::Compare(Op::Ne, _) | Condition::List(Op::NotIn, _) | Condition::Exists(_)
        )
}

/// A positive customer block's `test` of its own, one an index may serve
/// but not the one that keeps it (`hidden`), hidden from the planner in a
/// `CASE` where one does ([`Builder::kept_index`]); else as it is.
fn hidden_unless_kept(b: &Builder, f: &Filter, hidden: bool, test: String) -> String {
    if hidden && b.kept_index.is_some() && positive_customer(f) {
        format!("CASE WHEN {test} THEN 1 ELSE 0 END")
    } else {
        test
    }
}

/// The tests of a positive customer block's own row and custom data that
/// an index may serve and that may pass few customers (of a range's class
/// or narrower, [`RANGE_CLASS`]; a custom_data key's, one range of its
/// index, [`one_index_range`], then a key's `exists`, the range of every
/// value, which few customers may have), each with a customer block of
/// that test alone.
fn own_indexed(f: &Filter) -> Vec<(OwnTest, Filter)> {
    let fields = f
        .conditions
        .iter()
        .filter(|(field, c)| !field.reaches_related() && field_class(**field, c) <= RANGE_CLASS)
        .map(|(field, c)| {
            let test = Filter {
                filter_type: FilterType::Customer,
                negate: false,
                conditions: BTreeMap::from([(*field, c.clone())]),
                custom_data: BTreeMap::new(),
            };
            (OwnTest::Field(*field), test)
        });
    let keys = f
        .custom_data
        .iter()
        .filter(|(_, c)| one_index_range(c))
        .chain(
            f.custom_data
                .iter()
                .filter(|(_, c)| **c == Condition::Exists(true)),
        )
        .map(|(key, c)| (OwnTest::Key(key.clone()), key_test(key, c)));
    fields.chain(keys).collect()
}

/// A positive customer block of `key`'s test `c` alone.
fn key_test(key: &CustomDataKey, c: &Condition) -> Filter {
    Filter {
        filter_type: FilterType::Customer,
        negate: false,
        conditions: BTreeMap::new(),
        custom_data: BTreeMap::from([(key.clone(), c.clone())]),
    }
}

/// Whether a customer block's custom data may be sets ([`custom_data`]),
/// where asked of every customer: not where few customers pass its own
/// tests ([`own_few`]), nor where the block is one key's test alone and
/// `read_alone`, the whole query, which SQLite then reads from the key's
/// index alone (a count of `region contains "amer"` on 200,000 customers:
/// 15 ms). Beside another block, which reads the customers' rows, a set
/// is one read of the key's index, where a test in place parses each
/// customer's JSON: an `all` of a region's suffix and the active payment
/// methods (200,000 customers, CPU time) counted in 118 ms driven by the
/// methods' list, the JSON parsed for each of their customers.
fn custom_sets(f: &Filter, read_alone: bool) -> bool {
    !own_few(f) && (!read_alone || f.custom_data.len() + f.conditions.len() > 1)
}

/// [`custom_sets`] of the block `f` where `b` compiles it: read alone
/// where it is the query's one block, asked of no other customer.
fn block_sets(b: &Builder, f: &Filter) -> bool {
    custom_sets(f, b.one_block && !b.per_row)
}

/// A test of a block ([`block_tests`]).
struct BlockTest {
    sql: String,
    /// What asking it costs per row, relative to the block's other tests.
    cost: u32,
    /// Whether an index may serve it: a test of the customer's row or
    /// custom data of a range or narrower class, or of a key's presence.
    indexed: bool,
}

/// Whether a block tests the customer's own columns with an equality, a
/// substring (`contains`, `starts_with`, `ends_with`) or a list of names or
/// emails (a search of their index), which as a rule few customers pass
/// (`ne`, `not_in`, `exists` and a list of countries may pass most): the
/// block's other tests are then asked of few customers, and it costs about
/// what that test does. An `any` of a customer block of an email suffix
/// and two custom_data substrings beside connector and payment-method
/// blocks (200,000 customers, CPU time) counted in 203 ms with the custom
/// data as sets, built for the few customers the suffix passed, and about
/// 150 ms in place; seed `stop37` shape-201, an email list, a default
/// method, a country and a `seats` range beside two payment-method blocks,
/// 183-188 ms with its tests sampled and `seats` a set, 127-136 so.
fn own_few(f: &Filter) -> bool {
    f.conditions.iter().any(|(field, c)| {
        !field.reaches_related()
            && (matches!(
                c,
                Condition::Compare(Op::Eq | Op::Contains | Op::StartsWith | Op::EndsWith, _)
            ) || matches!(field, Field::CustomerName | Field::CustomerEmail)
                && matches!(c, Condition::List(Op::In, _)))
    })
}

/// Whether `f` is a positive customer block of its own row's columns alone
/// that few customers pass ([`own_few`]: an email suffix) and no index
/// range serves ([`own_unranged`]): under `match = "any"` its term is asked
/// where it is written ([`in_place`]), in the order written or a sample
/// chose, where SQLite asked it first of every customer, it having no
/// subquery (the mark leaves its tests to any index that may read them).
/// Fixed-seed shape-055, an `any` of `seats not_in ["emea"]` (96% of the
/// customers), a `trial` range, such an email suffix and a payment-method
/// block (200,000 customers, CPU time, by hand, with / without
/// statistics): its count, in the one-list form its sample chose, 118 /
/// 122 ms so and 101 / 103 ms in place; its listing 134 / 136 and 112 / 114.
fn few_unserved(f: &Filter) -> bool {
    positive_customer(f)
        && f.custom_data.is_empty()
        && !related_fields(f)
        && own_few(f)
        && own_unranged(&[f])
}

/// Whether `f` is a positive customer block of its own row and custom data
/// alone with a test few customers pass that no index serves (a name's or
/// an email's substring or suffix, [`own_few`]) beside tests an index may
/// serve (not [`own_unranged`]), none of them a name's or an email's
/// equality, list or prefix (a range of few customers, names and emails
/// being nearly each one's own). Where SQLite may read an `any`'s OR from
/// indexes (one list's form of a count: `MULTI-INDEX OR`), such a block's
/// term is the set of the customers that pass it ([`customers_passing`]),
/// found in one scan of the customers, its tests hidden from the planner
/// (a `CASE`) and asked in the block's order, each customer of the set then
/// read by row id; else SQLite reads the block through the range of one of
/// its indexes, each customer of the range looked up, most of them for the
/// rare test to reject. Seed `stop49` shape-146, an `any` of such a block
/// of an email suffix (2 customers), a `region` list (44%) and a `seats`
/// range (40%) beside two payment-method blocks (200,000 customers, CPU
/// time, by hand, with / without statistics): 144-155 / 70 ms through the
/// `seats` range (with statistics) or the `region` list; 107 / 99 ms with
/// the block's tests hidden where they are written, every customer then
/// asked the whole OR; 73 / 71-73 ms so. Where one of its index ranges is
/// narrow, the set costs a scan of the customers that range would spare.
fn few_scanned(f: &Filter) -> bool {
    let narrow = |(field, c): (&Field, &Condition)| {
        matches!(field, Field::CustomerName | Field::CustomerEmail) && field_class(*field, c) <= 1
    };
    positive_customer(f)
        && !related_fields(f)
        && !own_unranged(&[f])
        && f.conditions
            .values()
            .any(|c| matches!(c, Condition::Compare(Op::Contains | Op::EndsWith, _)))
        && !f.conditions.iter().any(narrow)
}

/// SQLite: the customers that pass `test` (over `customers c`), as a set
/// a customer is in (or, `not` being `"NOT "`, is not in).
fn customers_passing(not: &str, test: &str) -> String {
    format!("c.rowid {not}IN (SELECT c.rowid FROM customers c WHERE {test})")
}

/// SQLite: a test evaluated where it is written (a custom_data test, a
/// block of [`few_unserved`]). Of the two sides
/// of an AND or OR, SQLite evaluates first one without a subquery when the
/// other has one (an `in` list, a list of connectors, a lookup): it held a
/// test of JSON, the dearest per customer (about 0.3 µs), for the cheapest.
/// `(SELECT 1)`, a constant computed once, marks the test as having a
/// subquery too. An `any` of a customer block whose country list came
/// before a custom_data test, and two blocks of links (200,000 customers,
/// CPU time): 199 ms as written, the JSON read for every customer, 120 ms so,
/// read for those of the country. Split from its test where an AND of the
/// WHERE clause is, it leaves the test whole for the key's index.
fn in_place(test: &str) -> String {
    format!("({test}) AND (SELECT 1)")
}

/// SQLite, `match = "any"`: whether the positive related blocks are one list
/// ([`any_of`]), not merged ([`merge::merged_any`]) nor looked up: every
/// block of it an index range (`all_ranged`), and either each range narrow
/// (`all_narrow`) or the set the whole segment (`whole`).
fn one_list(all_ranged: bool, all_narrow: bool, whole: bool) -> bool {
    all_ranged && (all_narrow || whole)
}

/// SQLite: whether a related block `f` is a narrow index range: `ranged`
/// ([`ranged`]) and of selectivity class 0 or 1 (an equality or a list, see
/// [`block_class`]), so that its list holds few customers. A connector block
/// of most connections is a range too, of most links: as a list it cost more
/// to build than a lookup of every customer's links.
fn narrow(f: &Filter, ranged: bool) -> bool {
    ranged && block_class(f) < RANGE_CLASS
}

/// SQLite: whether an invoice, payment-method or monitor block's rows are read
/// from an index range, not from its whole table: an invoice block that
/// admits only unpaid invoices (migration 0003), a payment-method block of
/// listed statuses, a monitor block of listed states (their indexes by status
/// and state). A connector block's links are always ranges (by connector,
/// migration 0010), and a customer block's related rows are ranged field by
/// field ([`condition()`]): [`compile_block`] says so for those itself. Such
/// a list is built from the rows it selects; where it does not drive, only
/// unpaid invoices stay a list ([`probed_as_list`]), and an `any` of ranged
/// blocks, whole or of narrow ranges beside other tests, is one ([`any_of`]).
fn ranged(f: &Filter) -> bool {
    match f.filter_type {
        FilterType::Invoice => implies_unpaid(f),
        FilterType::PaymentMethod => listed(f.conditions.get(&Field::PaymentMethodStatus)),
        FilterType::Monitor => listed(f.conditions.get(&Field::MonitorState)),
        FilterType::Customer | FilterType::Connector => false,
    }
}

/// A customer block's test of its default method's status, if any.
fn status_of(f: &Filter) -> Option<&Condition> {
    f.conditions.get(&Field::CustomerDefaultPaymentMethodStatus)
}

/// Whether a test is an equality or a list: a few ranges of an index on its field.
fn listed(c: Option<&Condition>) -> bool {
    matches!(
        c,
        Some(Condition::Compare(Op::Eq, _) | Condition::List(Op::In, _))
    )
}

/// "`key` is the id of a connector `k` that satisfies `conds`": the ids of the
/// few connectors that do, as a list each link or payment method is looked up
/// in, so that the links are read in one pass (a join read them through the
/// connector index, a table lookup per link: one connector block on 200,000
/// SQLite customers took 0.25 s as a join, 0.155 s so).
///
/// PostgreSQL: the ids are looked up when the query runs, before it is
/// planned, and bound as one array ([`Bind::ConnectorIds`]), so the planner
/// reads them as constants and estimates from the links' statistics how many
/// links each connector has. Never a join PostgreSQL may turn into a
/// connector lookup per link (an `any` of a monitor and a connector block on
/// 200,000 customers took 546 ms with `IN (SELECT …)`, 163 ms as an array
/// computed by the query); computed by the query (an init plan), the array
/// was a value unknown when planning, guessed to keep nearly half the links
/// whichever connectors it held: a connector of 14,000 links of 220,000,
/// taken for 102,000, drove an `all` of it and negated customer and payment
/// method blocks to hash every customer (fixed-seed shape-042, 273 ms; 112
/// ms with the ids bound). Over the 97 fixed-seed counts with connector
/// tests: 9.4 s -> 8.2 s in all, the worst 5.1x -> 4.5x its scans.
fn connector_ids(b: &mut Builder, key: &str, conds: &str) -> String {
    let ids = format!("SELECT k.id FROM connectors k WHERE {conds}");
    match b.dialect {
        Dialect::Sqlite => format!("{key} IN ({ids})"),
        Dialect::Postgres => {
            // The lookup binds its own copies of the values `conds` reads.
            let mut binds = Vec::new();
            let sql = renumbered(&ids, |n| {
                binds.push(b.binds.get(n.checked_sub(1)?)?.clone());
                Some(binds.len())
            });
            let p = b.bind(Bind::ConnectorIds(Box::new(Query {
                sql,
                binds,
                merge_joins: false,
            })));
            format!("{key} = ANY({p})")
        }
    }
}

/// Whether an invoice block only admits unpaid invoices: a day count (which only
/// unpaid invoices have) or a status among the unpaid ones. Such a block says
/// so in `UNPAID_SQL` too, which changes no result and lets the index serve it.
fn implies_unpaid(f: &Filter) -> bool {
    let unpaid = |v: &Scalar| matches!(v, Scalar::Str(s) if UNPAID.contains(&s.as_str()));
    let by_status = match f.conditions.get(&Field::InvoiceStatus) {
        Some(Condition::Compare(Op::Eq, v)) => unpaid(v),
        Some(Condition::List(Op::In, vs)) => !vs.is_empty() && vs.iter().all(unpaid),
        _ => false,
    };
    by_status
        || f.conditions
            .contains_key(&Field::InvoiceDueDateExceededByDays)
        || f.conditions.contains_key(&Field::InvoiceDueInDays)
}

/// "One and the same related row satisfies `conds`" (or, negated, no such row).
///
/// SQLite: the list that drives the query, when this block is the one chosen
/// to (`Driver::List`, see [`segment_predicate`]): the customer ids of the
/// matching rows, `c.id IN (SELECT customer_id …)`, built once by one pass
/// over the block's rows or an index range, whose customers are then looked
/// up by id. A block of unpaid invoices read from a range of their index
/// ([`probed_as_list`]) is such a list too, only probed per customer
/// (`+c.id`: never the one SQLite drives from); any other is a lookup per
/// customer of the customer's own rows ([`exists`]). When the customers drive
/// (`Driver::Customers`: their own tests, or a narrow list that drove) every
/// block is a probe: a list would be built whole for the few customers they
/// select. An `any` of two invoice blocks of unpaid invoices due in some days
/// (200,000 customers, CPU time) took 78 ms as a list of the index's range
/// and 249 ms as a probe of every customer's invoices; a payment-method
/// block of statuses not listed, 165 ms as a list and 54 ms as probes. The
/// cost is linear in the tables whatever the data and statistics: a list
/// does not depend on the customer, and a probe finds the customer's rows
/// through the index on their customer only.
///
/// PostgreSQL: EXISTS. Where it can become a join (under AND at the top),
/// PostgreSQL plans a semi-join (anti-join under NOT) and chooses between
/// hashing the block's rows and probing per customer by cost. Elsewhere
/// (`per_row`) it is a subplan, hashed or run once per customer; there the
/// block's test is opaque too, so that a per-customer run can only find its
/// rows by the customer key: with no statistics, a partial index on unpaid
/// invoices looks tiny and was read whole per customer.
fn related(b: &mut Builder, table: Related, conds: &str, negate: bool, ranged: bool) -> String {
    match b.dialect {
        Dialect::Sqlite => listed_rows(b, table, conds, negate, ranged)
            .unwrap_or_else(|| exists(b, table, conds, negate, true)),
        Dialect::Postgres if b.any_join => joined(b, table, conds, negate),
        Dialect::Postgres => exists(b, table, conds, negate, b.per_row),
    }
}

/// SQLite: a related block as a list of its customers, when it is one (see
/// [`related`]); `None` when it is looked up per customer instead.
fn listed_rows(
    b: &mut Builder,
    table: Related,
    conds: &str,
    negate: bool,
    ranged: bool,
) -> Option<String> {
    // Never under NOT (`per_row` on SQLite), where no list drives.
    let drives = !negate && !b.per_row && b.driver == Driver::List;
    let listed = drives || probed_as_list(table, ranged);
    if b.driver == Driver::Customers || !listed {
        return None;
    }
    let alias = table.alias();
    let from = table.from(b.dialect, true);
    let conds = b.scoped(alias, conds);
    if negate {
        return Some(format!(
            "c.id NOT IN (SELECT {alias}.customer_id FROM {from} WHERE {alias}.customer_id IS NOT NULL AND {conds})"
        ));
    }
    let (probe, limit) = if drives {
        b.driver = Driver::Unchosen;
        // The guard a limit, which SQLite computes once, before the first
        // row: a list not chosen reads none.
        let limit = b.guard.take().map_or(String::new(), |guard| {
            format!(" LIMIT CASE WHEN {guard} THEN -1 ELSE 0 END")
        });
        ("", limit)
    } else {
        ("+", String::new())
    };
    Some(format!(
        "{probe}c.id IN (SELECT {alias}.customer_id FROM {from} WHERE {conds}{limit})"
    ))
}

/// SQLite: whether a block that does not drive is probed per customer as its
/// list rather than looked up among the customer's own rows ([`exists`]):
/// only a block of unpaid invoices, read from a range of their index. A
/// customer has several invoices, each tested by a lookup: an `any` of two
/// such blocks (200,000 customers, CPU time) took 78 ms as a list and 249 ms
/// as lookups. A customer's links, methods and monitors are about one each,
/// and a lookup costs what a probe of a list does: a list of 3,300 customers'
/// payment methods and a lookup of every customer's both took 64 ms, and a
/// list of most links or methods costs more to build than all lookups (an
/// `any` of two connector blocks of most links, a country and a custom_data
/// test: 315-325 ms as lists, 187-231 ms as lookups).
fn probed_as_list(table: Related, ranged: bool) -> bool {
    ranged && table == Related::Invoices
}

/// "Some row of `table` of this customer satisfies `conds`" (or, negated,
/// none does), looked up per customer. `opaque` (SQLite always, PostgreSQL
/// where it runs per customer): the test is hidden from the planner in a
/// `CASE`, so the customer key is the one index condition left: the rows are
/// found through the index on `customer_id` (which holds the columns a block
/// tests, migration 0012), never through an index of the test's columns
/// ranged per customer: without statistics SQLite probed the unpaid-invoice
/// index (`status = ? AND due_date < ?`) per customer, quadratic.
///
/// SQLite probes in the customers' order, so consecutive probes read the
/// same index pages. Per customer this is about as fast as looking the
/// customer up in a list of few customers (a list of 3,300 of 200,000
/// customers' methods: 64 ms either way), slower than an empty list (a
/// monitor name no monitor has: 69 ms, as a list 21 ms), and much faster
/// than a list of most (over all payment methods: 54 ms, as a list 165 ms,
/// CPU time).
fn exists(b: &Builder, table: Related, conds: &str, negate: bool, opaque: bool) -> String {
    let not = if negate { "NOT " } else { "" };
    let (alias, from) = (table.alias(), table.from(b.dialect, false));
    let test = if opaque {
        let (yes, no) = (b.true_(), b.false_());
        format!("CASE WHEN {conds} THEN {yes} ELSE {no} END")
    } else {
        conds.to_string()
    };
    format!("{not}EXISTS (SELECT 1 FROM {from} WHERE {alias}.customer_id = c.id AND {test})")
}

/// PostgreSQL, a negated block of `match = "any"` at the top (the positive
/// ones are one such join per table, see [`any_of`]): the block's distinct customers,
/// left-joined to the customers, and the test whether this one is not among
/// them. An OR of EXISTS is a hashed subplan per block, probed once per
/// customer at about 1 µs a probe; joins let PostgreSQL hash (or merge) each
/// block's customers with all customers at once: an `any` of a connector and
/// a payment-method block on 200,000 customers took 1.87 s with EXISTS and
/// 0.90 s as two joins. (`c.id IN (…)` over a union of the blocks' customers
/// was slower still: PostgreSQL looked each id up in the customers.)
fn joined(b: &mut Builder, table: Related, conds: &str, negate: bool) -> String {
    let j = format!("j{}", b.joins.len() + 1);
    let (alias, from) = (table.alias(), table.from(b.dialect, true));
    b.joins.push(format!(
        "LEFT JOIN (SELECT DISTINCT {alias}.customer_id FROM {from} WHERE {conds}) {j} ON {j}.customer_id = c.id"
    ));
    let test = if negate { "IS NULL" } else { "IS NOT NULL" };
    format!("{j}.customer_id {test}")
}

#[cfg(test)]
mod tests {
    use super::{Bind, Dialect, OwnTest, Query, Select, UNPAID, UNPAID_SQL, own_indexed, shifted};
    use crate::model::fields::INVOICE_STATUSES;
    use crate::model::{Condition, CustomDataKey, Field, Filter, FilterType, Op, Scalar};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The own tests an index may serve, each one range of it: a country
    /// list and a key's range, not a key's list of 1 beside 5 (an OR of two
    /// terms), a key's prefix of two characters (no range), a `ne`; then a
    /// key's `exists` (every value), not its `exists = false`.
    #[test]
    fn own_tests_an_index_serves_are_one_range_each() {
        let key = |k: &str| CustomDataKey::parse(k).expect("a key");
        let f = Filter {
            filter_type: FilterType::Customer,
            negate: false,
            conditions: BTreeMap::from([
                (
                    Field::CustomerCountry,
                    Condition::List(Op::In, vec![Scalar::Str("US".into())]),
                ),
                (
                    Field::CustomerEmail,
                    Condition::Compare(Op::Ne, Scalar::Str("a@b.c".into())),
                ),
            ]),
            custom_data: BTreeMap::from([
                (
                    key("region"),
                    Condition::List(Op::In, vec![Scalar::Int(5), Scalar::Int(1)]),
                ),
                (key("plan"), Condition::List(Op::In, vec![Scalar::Int(1)])),
                (key("seats"), Condition::Compare(Op::Gt, Scalar::Int(3))),
                (
                    key("tier"),
                    Condition::Compare(Op::StartsWith, Scalar::Str("go".into())),
                ),
                (key("addon"), Condition::Exists(true)),
                (key("trial"), Condition::Exists(false)),
            ]),
        };
        let found: Vec<OwnTest> = own_indexed(&f).into_iter().map(|(t, _)| t).collect();
        assert_eq!(
            found,
            [
                OwnTest::Field(Field::CustomerCountry),
                OwnTest::Key(key("plan")),
                OwnTest::Key(key("seats")),
                OwnTest::Key(key("addon")),
            ]
        );
    }

    /// Each placeholder moves on by the offset, whatever its digits; a `$`
    /// of a JSON path, one at the end and one before a letter stay.
    #[test]
    fn placeholders_move_on_and_nothing_else_does() {
        let sql = "SELECT $1, $9, $10, '$.\"k\"', $123x FROM t WHERE a = $2$";
        assert_eq!(
            shifted(sql, 7),
            "SELECT $8, $16, $17, '$.\"k\"', $130x FROM t WHERE a = $9$"
        );
        // A key's path of `$` and digits, an escaped quote, an unclosed
        // literal: copied.
        let sql = "json_extract(c.custom_data, '$.\"tier$1\"') = $3 AND 'it''s $2' = $4 OR '$5";
        assert_eq!(
            shifted(sql, 10),
            "json_extract(c.custom_data, '$.\"tier$1\"') = $13 AND 'it''s $2' = $14 OR '$5"
        );
        assert_eq!(shifted(sql, 0), sql);
        assert_eq!(shifted("", 3), "");
    }

    /// PostgreSQL counts an `any` of several blocks, one of related rows, as
    /// every customer but the `all` of its blocks flipped; not an `any` of
    /// one block or of the customers' own tests, nor its listing.
    #[test]
    fn postgres_counts_an_any_of_related_rows_as_a_complement() {
        let any = |blocks: &str| {
            crate::validate::stored_segment(&format!(
                "[segment]\nname = \"s\"\nmatch = \"any\"\n\n{blocks}"
            ))
            .expect("a segment")
        };
        let country = "[[filter]]\ntype = \"customer\"\ncountry = \"DE\"\n";
        let email =
            "[[filter]]\ntype = \"customer\"\nnegate = true\nemail = { contains = \"x\" }\n";
        let monitor = "[[filter]]\ntype = \"monitor\"\nstate = \"ok\"\n";
        let at = chrono::DateTime::UNIX_EPOCH;
        for (blocks, complement) in [
            (format!("{country}{monitor}"), true),
            (format!("{email}{monitor}"), true),
            (monitor.to_string(), false),
            (format!("{country}{email}"), false),
        ] {
            let seg = any(&blocks);
            let count = super::compile(&seg, Dialect::Postgres, at, Select::Count).sql;
            assert_eq!(
                count.starts_with("SELECT (SELECT COUNT(*) FROM customers) - ("),
                complement,
                "{count}"
            );
            let listing = super::compile(&seg, Dialect::Postgres, at, Select::Ids).sql;
            assert!(
                listing.starts_with("SELECT c.id FROM customers c"),
                "{listing}"
            );
        }
    }

    /// PostgreSQL: a connector test is a lookup of its own, numbered from
    /// `$1` and binding copies of the values it reads, bound as one value of
    /// the segment's query; SQLite selects the connectors in the query.
    #[test]
    fn postgres_looks_connectors_up_in_a_query_of_their_own() {
        let seg = crate::validate::stored_segment(
            "[segment]\nname = \"s\"\n\n[[filter]]\ntype = \"customer\"\ncountry = \"DE\"\n\n\
             [[filter]]\ntype = \"connector\"\nname = { ne = \"PayPal\" }\n\
             connection = { in = [\"error\", \"disconnected\"] }\n",
        )
        .expect("a segment");
        let at = chrono::DateTime::UNIX_EPOCH;
        let q = super::compile(&seg, Dialect::Postgres, at, Select::Count);
        let lookups: Vec<(usize, &Query)> = q
            .binds
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match b {
                Bind::ConnectorIds(lookup) => Some((i + 1, &**lookup)),
                _ => None,
            })
            .collect();
        let [(n, lookup)] = lookups[..] else {
            panic!("one lookup: {q:?}");
        };
        assert!(
            q.sql.contains(&format!("cc.connector_id = ANY(${n})")),
            "{}",
            q.sql
        );
        assert!(!q.sql.contains("connectors k"), "{}", q.sql);
        assert!(
            lookup
                .sql
                .starts_with("SELECT k.id FROM connectors k WHERE ")
        );
        assert!(lookup.sql.contains("$1") && lookup.sql.contains("$2"));
        assert!(!lookup.sql.contains("$3"), "{}", lookup.sql);
        assert_eq!(
            lookup.binds,
            [
                Bind::Text("paypal".into()),
                Bind::Texts(vec!["error".into(), "disconnected".into()])
            ]
        );
        let q = super::compile(&seg, Dialect::Sqlite, at, Select::Count);
        assert!(
            q.sql.contains("IN (SELECT k.id FROM connectors k"),
            "{}",
            q.sql
        );
        assert!(!q.binds.iter().any(|b| matches!(b, Bind::ConnectorIds(_))));
    }

    proptest! {
        /// Placeholders among any other text (a `$` before no digit,
        /// letters, quotes, multi-byte characters) each move on by the
        /// offset; any text at all shifts without a panic.
        #[test]
        fn shifting_moves_each_placeholder(
            parts in proptest::collection::vec(("[a-zé .\"$]{0,6}", 1usize..100_000), 0..8),
            by in 0usize..100_000,
            any in "[$0-9a-zé']{0,40}",
        ) {
            // A `$` right before the next placeholder's `$` or at a
            // part's end stays a `$`.
            let sql: String = parts.iter().map(|(text, n)| format!("{text} ${n}")).collect();
            let want: String = parts.iter().map(|(text, n)| format!("{text} ${}", n + by)).collect();
            prop_assert_eq!(shifted(&sql, by), want);
            let _ = shifted(&any, usize::MAX);
            // Within quotes nothing moves.
            let quoted = format!("'{sql}'");
            prop_assert_eq!(shifted(&quoted, by), quoted);
        }
    }

    /// The unpaid statuses are written out three times (the list, the SQL the
    /// compiler adds and the partial indexes' predicate); they must agree.
    #[test]
    fn the_unpaid_predicate_is_the_one_the_partial_indexes_hold() {
        assert!(UNPAID.iter().all(|s| INVOICE_STATUSES.contains(s)));
        let listed = UNPAID.map(|s| format!("'{s}'")).join(", ");
        assert_eq!(UNPAID_SQL, format!("i.status IN ({listed})"));
        for migration in [
            include_str!("../../migrations/sqlite/0003_unpaid_invoice_indexes.sql"),
            include_str!("../../migrations/postgres/0003_unpaid_invoice_indexes.sql"),
            include_str!("../../migrations/sqlite/0010_covering_indexes.sql"),
        ] {
            assert_eq!(
                migration
                    .matches(&format!("WHERE status IN ({listed});"))
                    .count(),
                2
            );
        }
    }
}
