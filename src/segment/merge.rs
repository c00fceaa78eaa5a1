//! SQLite, `match = "any"`, a segment's count and its ids: one merge of sets
//! sorted by customer id, each table read once in that order, instead of a
//! test per customer of every table.

use super::{
    Builder, Compiled, Dialect, RANGE_CLASS, Related, block_class, compile_block, narrow, one_list,
    one_of,
};
use crate::model::Filter;
use chrono::NaiveDate;

/// The members of an `any` of `filters` (in [`super::ordered`] order) as one
/// compound query of their ids, by id: each table's blocks one select of its
/// rows' customer ids, the customer blocks one select of the customers, their
/// union kept to the ids of customers (`INTERSECT`: a row may outlive its
/// customer; a NULL key is no customer's). `None`, for the predicate form
/// ([`super::any_of`]), when no block compiles to rows of a related table;
/// when every block does, each from an index range, or every related block
/// is a narrow range ([`super::narrow`]): one list, which SQLite looks up in
/// the customers or probes per customer, reads only the ranges where this
/// merge reads a table whole in customer order and every customer's id
/// for the `INTERSECT`; when a block is negated; or when a customer block has
/// no test of class 0 or 1 (an equality, a list, a name or email prefix of
/// three characters or more, see [`super::selectivity`]).
///
/// Sorted by customer id (`ORDER BY 1`), SQLite runs each select as a
/// coroutine that reads its table in the order of its index by customer
/// (or sorts the few rows an index range gives) and merges them (`MERGE
/// (UNION)`, no temporary table): about one scan of each table the segment
/// reads, whatever its blocks select and whatever the statistics. Tested per
/// customer instead (an `EXISTS` per table, [`super::Lookups`]), every
/// customer is looked up in every table, at about six times a table's scan:
/// an `any` of a connector, a payment-method and a customer block with its
/// default method's status and two custom_data tests (shape-081, 200,000
/// customers, CPU time, shapes bench) took 292 ms so and 220 ms merged with
/// statistics, 285 and 137 ms without; the four tables' scans take 31-40 ms.
///
/// The customers' select hands its ids over sorted (`+c.id`: no index by id
/// gives their order), so that SQLite reads the customers through the index
/// their best test may use, or whole, never every customer in id order, one
/// lookup of its row each: with statistics, it read shape-081's 200,000
/// customers so to find none (72 ms), where the index of a custom_data key
/// and a sort of nothing took 25 ms. Each id the customers' select yields,
/// the merge handles, where the predicate form stops at the first block a
/// customer passes and looks nothing up for it: with a customer block most
/// customers pass (`country ne`, a range, a negated block's `NOT`), merged
/// took up to twice as long.
pub(super) fn merged_any(filters: &[&Filter], today: NaiveDate) -> Option<(String, Builder)> {
    if filters.iter().any(|f| f.negate) {
        return None;
    }
    let mut b = Builder::new(Dialect::Sqlite);
    // Per table, in order of first appearance: its blocks' tests.
    let mut tables: Vec<(Related, Vec<String>)> = Vec::new();
    let (mut all_ranged, mut all_narrow) = (true, true);
    let mut own: Vec<String> = Vec::new();
    for f in filters {
        match compile_block(&mut b, f, today) {
            Compiled::Rows {
                table,
                conds,
                ranged,
            } => {
                all_ranged &= ranged;
                all_narrow &= narrow(f, ranged);
                match tables.iter_mut().find(|(t, _)| *t == table) {
                    Some((_, tests)) => tests.push(conds),
                    None => tables.push((table, vec![conds])),
                }
            }
            Compiled::Test(_) if block_class(f) >= RANGE_CLASS => return None,
            Compiled::Test(test) => own.push(test),
        }
    }
    if tables.is_empty() || one_list(all_ranged, all_narrow, own.is_empty()) {
        return None;
    }
    let own =
        (!own.is_empty()).then(|| format!("SELECT +c.id FROM customers c WHERE {}", one_of(&own)));
    let selects: Vec<String> = own
        .into_iter()
        .chain(tables.iter().map(|(table, tests)| {
            let alias = table.alias();
            format!(
                "SELECT {alias}.customer_id FROM {} WHERE {alias}.customer_id IS NOT NULL AND ({})",
                table.from(b.dialect, false),
                b.scoped(alias, &one_of(tests))
            )
        }))
        .collect();
    let sql = format!(
        "{} INTERSECT SELECT c.id FROM customers c ORDER BY 1",
        selects.join(" UNION ")
    );
    Some((sql, b))
}
