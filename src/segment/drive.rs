//! SQLite, `match = "all"`: which related block's list drives the query,
//! chosen by a sample of the customers where several may.

use super::builder::Builder;
use super::sample::least;
use super::{
    DRIVING_CLASS, Dialect, Query, Select, asked_of_one, block_class, block_order, customers_drive,
    predicate, ranged,
};
use crate::model::{Filter, FilterType, MatchMode};
use chrono::NaiveDate;

/// The most blocks a driver is chosen among: each is a copy of the query.
const MOST_DRIVERS: usize = 4;

/// What building the list of a block not read from an index range costs
/// beyond its rows, in customers of the sample ([`super::sample`]): a scan
/// of its table, as a list of about a fifth of the customers.
const SCANNED: u32 = 24;

/// SQLite, `match = "all"` over all customers: where a related block's list
/// drives the query ([`super::predicate`]) and two or more positive
/// invoice, payment-method, connector or monitor blocks of a driving class
/// may, the first of them the one that drives as given, the query once per
/// such block driving (moved first; the first [`MOST_DRIVERS`]), and the one run the
/// block whose rows the fewest of a sample's customers have ([`least`]):
/// its list is the shortest to build and look up. The first stays unless
/// another holds fewer than half as many; a block not read from an index range counts
/// [`SCANNED`] more. The class of a test cannot tell the connected
/// connectors' links (68% of the customers) from the monitors with no data
/// (10%): an `all` of both, with two custom_data tests (200,000 customers,
/// CPU time), counted in 213-219 ms driven by the links and 35-37 ms by the
/// monitors.
///
/// The count is a `CASE` of each driver's count (SQLite runs the chosen
/// one alone, the sample once); the ids and rows are a `UNION ALL` of each
/// driver's, each list holding the choice in its own test
/// (`Builder::guard`), so that only the chosen one holds rows (a test of
/// the choice beside the list would be asked after the list was built):
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
    let drivers: Vec<usize> = filters
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            !f.negate && f.filter_type != FilterType::Customer && block_class(f) <= DRIVING_CLASS
        })
        .map(|(i, _)| i)
        .take(MOST_DRIVERS)
        .collect();
    // The first a choice among several, and the one that drives as given.
    let first_related = filters.iter().position(|f| !f.negate && block_order(f) > 0);
    if drivers.len() < 2 || first_related != drivers.first().copied() {
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
            let sample = asked_of_one(&mut b, f, today);
            let scan = if ranged(f) || f.filter_type == FilterType::Connector {
                0
            } else {
                SCANNED
            };
            let value = format!("TOTAL(CASE WHEN {sample} THEN 1 ELSE 0 END) + {scan}");
            // Another than the first drives where it is half the first.
            if arm == 0 {
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
        // The driver's list holds rows only where it was chosen.
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
        sql,
        binds: b.binds,
    })
}
