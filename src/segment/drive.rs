//! SQLite, `match = "all"`: which related block's list drives the query,
//! chosen by a sample of the customers where several may.

use super::builder::Builder;
use super::sample::least;
use super::{
    DRIVING_CLASS, Dialect, Query, Select, asked_of_one, block_class, block_order, customers_drive,
    field_class, predicate, ranged,
};
use crate::model::{Field, Filter, FilterType, MatchMode};
use chrono::NaiveDate;

/// The most blocks a driver is chosen among: each is a copy of the query.
const MOST_DRIVERS: usize = 4;

/// What building the list of a block not read from an index range costs
/// beyond its rows, in customers of the sample ([`super::sample`]): a scan
/// of its table, as a list of about a fifth of the customers.
const SCANNED: u32 = 24;

/// SQLite, `match = "all"` over all customers: where a related block's list
/// drives the query ([`super::predicate`]: one of a driving class, or the
/// links of a customer block whose only related test is `connector_name`,
/// [`links_of`]) and other positive related blocks (invoice,
/// payment-method, connector or monitor blocks) might, the query once per
/// such block driving (moved first; the first [`MOST_DRIVERS`], the one
/// that drives as given first), and the one run the block whose rows the
/// fewest of a sample's customers have ([`least`]): its list is the
/// shortest to build and look up. A block not read from an index range
/// counts [`SCANNED`] more, its list a scan of its table, which may still
/// hold fewer: an `all` of a range of open invoices (64% of the
/// customers), a monitor block of a name suffix no monitor has and a
/// negated invoice block (200,000 customers, CPU time) counted in 217 ms
/// driven by the invoices and 11-13 ms by the monitors' scan (the 19
/// changed counts of the fixed seed's draw 1,205 ms so, 742 ms with this
/// choice). The first stays unless another index range holds fewer than
/// half as many, or a scan fewer. A customer block's links, ordered by its
/// best test, its own tests' too, not by the links' rows, are not favoured
/// (shape-157's, half the customers', counted in 157-163 ms, the payment
/// methods' or the connections' in 101-121 ms), nor is the first against
/// a scan, which [`SCANNED`] weighs already (the connected links, 68%, and
/// the monitors of a name, 19%, counted in 96 ms driven by the links, 37-39
/// ms by the monitors). The class of a test cannot tell the connected
/// connectors' links (68% of the customers) from the monitors with no data
/// (10%): an `all` of both, with two custom_data tests (200,000 customers,
/// CPU time), counted in 213-219 ms driven by the links and 35-37 ms by the
/// monitors.
///
/// The count is a `CASE` of each driver's count (SQLite runs the chosen
/// one alone, the sample once); the ids and rows are a `UNION ALL` of each
/// driver's, each list's limit the choice (`Builder::guard`: `LIMIT CASE
/// WHEN choice = arm THEN -1 ELSE 0 END`), which SQLite computes once,
/// before the list's first row, so that a list not chosen reads no row
/// (a test of the choice beside the list was asked after the list was
/// built, and one in the list's WHERE clause of each row it read: the ids
/// of an `all` of a customer block's links and the unpaid invoices, read
/// whole, took 112 ms so, 43 ms as one list and 45-47 ms with a limit; the
/// ids of the 28 segments of two shapes benches' draws with a choice of
/// driver 1,105 ms with the test in the WHERE clause, 612 ms with a limit):
/// there each list asks the sample (0.3-1 ms on 200,000 customers).
/// `None` where there is no choice to make, or where a driver's list did
/// not take its guard.
pub(super) fn chosen_driver(
    filters: &[&Filter],
    today: NaiveDate,
    select: Select,
) -> Option<Query> {
    if customers_drive(filters) {
        return None;
    }
    // The one that drives as given: the first positive related block, or
    // a customer block's links, where a list drives (a class that may).
    let first_related = filters
        .iter()
        .position(|f| !f.negate && block_order(f) > 0)?;
    let given = filters.get(first_related)?;
    let links = links_of(given);
    if links.is_none() && block_class(given) > DRIVING_CLASS {
        return None;
    }
    // Then every other positive related block, of any class: a list of a
    // table's scan may hold fewer than an index range's.
    let drivers: Vec<usize> = links
        .as_ref()
        .map(|_| first_related)
        .into_iter()
        .chain(
            filters
                .iter()
                .enumerate()
                .filter(|(_, f)| !f.negate && f.filter_type != FilterType::Customer)
                .map(|(i, _)| i),
        )
        .take(MOST_DRIVERS)
        .collect();
    // The first a choice among several, and the one that drives as given.
    if drivers.len() < 2 || drivers.first() != Some(&first_related) {
        return None;
    }
    let mut b = Builder::new(Dialect::Sqlite);
    // Each driver's rows as asked of one customer of the sample, and the
    // customers its list's build is worth where it is not an index range.
    let values: Vec<String> = drivers
        .iter()
        .enumerate()
        .filter_map(|(arm, i)| Some((arm, filters.get(*i)?)))
        .map(|(arm, f)| {
            let driving = match (&links, arm) {
                (Some(links), 0) => links,
                _ => *f,
            };
            let sample = asked_of_one(&mut b, driving, today);
            // Links (a connector block's, a customer block's) are index
            // ranges.
            let indexed = matches!(f.filter_type, FilterType::Connector | FilterType::Customer);
            let scan = if ranged(f) || indexed { 0 } else { SCANNED };
            let value = format!("TOTAL(CASE WHEN {sample} THEN 1 ELSE 0 END) + {scan}");
            // Another list of an index range drives where it is half the
            // first, the block the class order chose (a customer block's
            // links were not chosen so; a scan is weighed above).
            if arm == 0 || links.is_some() || scan > 0 {
                value
            } else {
                format!("2 * ({value})")
            }
        })
        .collect();
    let choice = least(&values);
    let mut arms: Vec<String> = Vec::new();
    for (arm, i) in drivers.iter().enumerate() {
        let mut order: Vec<&Filter> = filters.to_vec();
        let first = order.remove(*i);
        order.insert(0, first);
        // The driver's list reads rows only where it was chosen.
        b.guard = (select != Select::Count).then(|| format!("{choice} = {arm}"));
        let predicate = predicate(&mut b, MatchMode::All, order, today);
        if b.guard.take().is_some() {
            return None;
        }
        arms.push(predicate);
    }
    let sql = match select {
        Select::Count => {
            let whens: Vec<String> = arms
                .iter()
                .enumerate()
                .map(|(arm, p)| {
                    format!("WHEN {arm} THEN (SELECT COUNT(*) FROM customers c WHERE {p})")
                })
                .collect();
            format!("SELECT CASE {choice} {} END", whens.join(" "))
        }
        Select::Ids | Select::Rows => {
            let selects: Vec<String> = arms
                .iter()
                .map(|p| format!("SELECT {} FROM customers c WHERE {p}", select.columns()))
                .collect();
            format!("{} ORDER BY 1", selects.join(" UNION ALL "))
        }
    };
    Some(Query {
        merge_joins: false,
        sql,
        binds: b.binds,
    })
}

/// A customer block whose tests of related rows are of its links alone
/// (`connector_name`), of a class that may drive: those tests, the list
/// that drives where the block comes first ([`super::related`]).
fn links_of(f: &Filter) -> Option<Filter> {
    let links = f.conditions.get(&Field::CustomerConnectorName)?;
    let only = f.filter_type == FilterType::Customer
        && !f.negate
        && f.conditions.keys().filter(|k| k.reaches_related()).count() == 1
        && field_class(Field::CustomerConnectorName, links) <= DRIVING_CLASS;
    only.then(|| Filter {
        filter_type: FilterType::Customer,
        negate: false,
        conditions: [(Field::CustomerConnectorName, links.clone())].into(),
        custom_data: Default::default(),
    })
}
