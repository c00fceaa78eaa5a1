//! SQLite, `match = "any"`, a segment's count and its ids: one merge of sets
//! sorted by customer id, each table read once in that order, instead of a
//! test per customer of every table; and beside customer tests, a count
//! whose form a sample of the customers chooses.

use super::sample::{holding, holds_of_one, share, shares};
use super::{
    Builder, Compiled, Dialect, RANGE_CLASS, Related, Select, Tables, any_of, asked_of_one,
    block_class, compile_block, either_count, exists, merge_scans, methods_own_form, narrow,
    one_list, one_of, others, own_few, own_form, own_unranged, positive_customer,
};
use crate::model::{Field, Filter, FilterType, MatchMode};
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
/// (or, a table's blocks narrow ranges only, sorts the few rows their index
/// ranges give: [`customers_of`]) and merges them (`MERGE
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
    let mut b = Builder::new(Dialect::Sqlite);
    let any = AnyOf::compile(&mut b, filters, today)?;
    let sql = any.merged_by_rule(&b)?;
    Some((sql, b))
}

/// SQLite, `match = "any"`, the number of members of a segment with customer
/// tests beside positive related blocks (no negated one): of three forms,
/// the one a sample of the customers (see [`share`]) shows cheapest,
/// chosen by the query itself (`CASE`: SQLite runs only the chosen form's
/// subquery): one list when one in three of the sample or fewer are among
/// the related blocks' customers, else looked up when one in four or more
/// pass the customer tests, or the other tests of a customer block that
/// reads related rows while two in three or more are among the related
/// blocks' customers ([`some_own`]), else merged. Without customer tests, see
/// below. `None` where a block is negated ([`merged_complement`]) or none
/// reads related rows (counted as its members are listed).
///
/// Which form is cheapest depends on how many customers the customer tests
/// pass and how many the related blocks hold, which the compiler cannot
/// know. One list of the related blocks' customers probed per customer
/// (they hold few: the list is short to build, or `MULTI-INDEX OR` reads
/// the customers it holds); else the customer tests first and a lookup of
/// the customers they leave (a scan of the customers and a lookup of each
/// of 200,000 take about 75 ms, the merge's sort of the customers that pass
/// about as much); else, where few pass them, the merge of sorted sets ([`merged_any`]: each table read
/// once in customer order, the customers passing their tests sorted).
/// Counted on 200,000 customers (ms of CPU time, with and without
/// statistics; a scan of the tables read: links 17 ms, card methods 18,
/// paid invoices 35):
///
/// | customer tests / related block | lookups | one list | merged |
/// |---|---|---|---|
/// | 24 of 25 countries (99%) / the links to connected connectors (68%) | 28-29 | 75-99 | 95-181 |
/// | 6 countries (67%) / card methods (60%) | 40-41 | 60-61 | 73-102 |
/// | 3 countries (53%) / connected links | 48-49 | 86-89 | 77-91 |
/// | US (34%) / paid invoices (73%) | 60-61 | 82 | 76-79 |
/// | GB, DE (18%) / connected links | 63 | 78-99 | 62-65 |
/// | a name no customer has / connected links | 78-80 | 112-113 | 60-65 |
/// | 3 countries (53%) / failed methods (7%) | 47-48 | 14-36 | 51-64 |
/// | FR (6%) / failed methods | 59 | 6 | 17-18 |
///
/// A customer block that reads related rows (its default method, its
/// connectors) looks them up in the merge's select of the customers for
/// each customer that passes its other tests, where the lookups form asks
/// it only of the customers the other blocks leave: seed `stop45`
/// shape-188, an `any` of two custom_data ranges (few pass), a block of
/// emails (most pass) and a default method's type and status, the links to
/// connectors not disconnected and default methods with a connector
/// (together 85% of the customers), counted in 283-323 ms merged and
/// 166-170 ms looked up (with and without statistics; its four tables'
/// scans 40 ms). Where few pass those other tests, the merge looks few up:
/// fixed-seed shape-081, a block of two custom_data lists and ranges and a
/// default method's status beside connector and payment-method blocks,
/// counted in 283-378 ms looked up and 161-178 ms merged (by hand, CPU
/// time; the shapes bench, 9.7x / 7.8x its bound with / without
/// statistics -> 4.4x / 3.6x). Where many pass them but fewer than two in
/// three are among the related blocks' customers, the looked-up form asks
/// most customers every table too ([`some_own`]).
///
/// Without customer tests: merged, but where every block is an index range,
/// one list when the sample shows few among its customers, and, those of
/// one table, read whole when it shows most ([`customers_of`]). A list's cost
/// grows with the rows it holds, the merge's is about one scan of each
/// table: counted on 200,000 customers (ms of CPU time, with and without
/// statistics), the links to one connector of 27,000 took 12 as one list and
/// 17-26 merged, to Stripe (81,000, 40% of the customers) 35-43 and 34-37,
/// to the connected connectors (136,000) 94 and 45-54, to all but one
/// (192,000) 124-174 and 52-72.
pub(super) fn count_any(filters: &[&Filter], today: NaiveDate) -> Option<(String, Builder)> {
    let mut b = Builder::new(Dialect::Sqlite);
    let any = AnyOf::compile(&mut b, filters, today)?;
    if any.own.is_empty() {
        let merged = format!("SELECT COUNT(*) FROM ({})", any.merged(&b, false));
        if !any.all_ranged {
            return Some((merged, b));
        }
        // Index ranges only: one list where the sample shows it short; of
        // one table, read whole where it shows most customers among them
        // ([`customers_of`]).
        let held = held(&b, &any.tables);
        let listed = predicate_count(&mut b, filters, today, Some(true));
        let merged = if any.tables.0.len() == 1 {
            let whole = format!("SELECT COUNT(*) FROM ({})", any.merged(&b, true));
            either_count(&share(&held, true, 2, 3), &whole, &merged)
        } else {
            merged
        };
        return Some((either_count(&few_held(&held), &listed, &merged), b));
    }
    let Sampled {
        some_own,
        few_held,
        looked_up,
        listed,
        merged,
        b,
    } = sampled(b, &any, filters, today);
    let sql = format!(
        "SELECT {}",
        choice(
            &few_held,
            &some_own,
            [listed, looked_up, merged].map(|form| format!("({form})"))
        )
    );
    Some((sql, b))
}

/// Of the forms `[listed, looked_up, merged]`, the one the sample's findings
/// choose: one list when few are among the related blocks' customers, else
/// looked up when [`some_own`] holds, else merged.
fn choice(few_held: &str, some_own: &str, [listed, looked_up, merged]: [String; 3]) -> String {
    format!("CASE WHEN {few_held} THEN {listed} WHEN {some_own} THEN {looked_up} ELSE {merged} END")
}

/// What [`count_any`] chooses from: whether few of the sample are among
/// the related blocks' customers, whether the looked-up form is the one
/// where not ([`some_own`]), the
/// count of each form, and their binds (each block compiled three times:
/// for the merge, and for each form of [`any_of`]; a customer block's
/// tests once more for the sample, and a set of one, [`super::driven_set`],
/// with its own compile and sample in each; each block once more as asked
/// of one customer, for the sample that orders the looked-up form's OR;
/// the one-list form twice where a customer block is such a set,
/// [`listed_count`]).
struct Sampled {
    some_own: String,
    few_held: String,
    looked_up: String,
    listed: String,
    merged: String,
    b: Builder,
}

/// The forms of `any` (its blocks compiled into `b`, some of them customer
/// tests) of `filters`.
fn sampled(mut b: Builder, any: &AnyOf, filters: &[&Filter], today: NaiveDate) -> Sampled {
    let merged = format!("SELECT COUNT(*) FROM ({})", any.merged(&b, false));
    let held = held(&b, &any.tables);
    let some_own = some_own(&mut b, any, today, &held);
    let few_held = few_held(&held);
    let looked_up = predicate_count(&mut b, filters, today, Some(false));
    let listed = listed_count(&mut b, filters, today);
    Sampled {
        some_own,
        few_held,
        looked_up,
        listed,
        merged,
        b,
    }
}

/// Whether one in three of the sample or fewer are among the customers of
/// an `any`'s related blocks ([`held`], [`share`]).
fn few_held(held: &str) -> String {
    share(held, false, 1, 3)
}

/// Whether a customer is among the customers of an `any`'s positive related
/// blocks (`tables`), each table looked up.
fn held(b: &Builder, tables: &Tables<Blocks>) -> String {
    let held: Vec<String> = tables
        .0
        .iter()
        .map(|(table, blocks)| exists(b, *table, &one_of(&blocks.tests), false, true))
        .collect();
    one_of(&held)
}

/// Whether the looked-up form is the one to count where more than one in
/// three of the sample are among the related blocks' customers (else the
/// one list is, [`choice`]): one in four or more of the sample pass a
/// customer block that reads no related rows (the looked-up form asks them
/// nothing more; nor does it a block of the default method's tests beside
/// payment-method blocks alone, [`Asked::Joined`]); or pass the tests of
/// their own row and custom data of one that does ([`asked`]), while two in
/// three or more are among the related blocks' customers, asked first where
/// a sample shows them to pass most ([`super::any_of`]). Where fewer are,
/// the looked-up form asks most customers a lookup per table, and the merge
/// reads each table once: seed `stop50` shape-043, an `any` of a monitor
/// block, two payment-method blocks (together 59% of the customers) and a
/// block of a name `not_in` and the GoCardless links (200,000 customers,
/// CPU time, by hand), counted in 187 ms looked up and 132 ms merged; seed
/// `stop49` shape-083 (54%) in 140 and 105 ms; seed `stop49` shape-129
/// (75%) in 162 ms looked up, 266 ms merged.
fn some_own(b: &mut Builder, any: &AnyOf, today: NaiveDate, held: &str) -> String {
    let (itself, reading) = asked(b, any, today);
    let mut some: Vec<String> = Vec::new();
    if !itself.is_empty() {
        some.push(share(&one_of(&itself), true, 1, 4));
    }
    if !reading.is_empty() {
        some.push(shares(&[
            (&one_of(&reading), true, 1, 4),
            (held, true, 2, 3),
        ]));
    }
    if some.is_empty() {
        return b.false_().to_string();
    }
    one_of(&some)
}

/// The count of the predicate form of an `any` of `filters` ([`any_of`]),
/// the positive related blocks one list (`Some(true)`), looked up
/// (`Some(false)`) or as its rule says (`None`).
fn predicate_count(
    b: &mut Builder,
    filters: &[&Filter],
    today: NaiveDate,
    list: Option<bool>,
) -> String {
    super::count_of(&any_of(b, filters, today, list))
}

/// The count of the one-list form of an `any` of `filters` with customer
/// tests ([`predicate_count`]). Where a positive customer block is a set
/// driven by its related rows when a sample finds few pass them
/// ([`super::driven_set`]), a `CASE` of that test and its form per
/// customer, SQLite scans every customer to ask it: the count is then that
/// form where a sample finds many, and where every such sample finds few,
/// the same with each set alone, which SQLite may read, as it reads the
/// list and the customers an index of their own tests gives, looking
/// their ids up (`MULTI-INDEX OR`), no customer scanned: seed `stop49`
/// shape-055, an `any` of two payment-method blocks, a customer block of
/// an email substring and custom data, and one of an email `ne` and an
/// expired default method (7% of the customers; 200,000 customers, CPU
/// time), counted in 116 ms so and 51 ms with its set alone by hand (the
/// shapes bench: 148 -> 75 ms with statistics, 143 -> 64 ms without).
/// Where another term is no index range, SQLite scans the customers in
/// either form, and probes the same set.
fn listed_count(b: &mut Builder, filters: &[&Filter], today: NaiveDate) -> String {
    b.bare_sets = Some(Vec::new());
    let bare = predicate_count(b, filters, today, Some(true));
    let few = b.bare_sets.take().unwrap_or_default();
    if few.is_empty() {
        // No set: the form as it is.
        return bare;
    }
    let listed = predicate_count(b, filters, today, Some(true));
    either_count(&few.join(" AND "), &bare, &listed)
}

/// Per customer block of `any`, the customers the merge's select of the
/// customers asks more than their own row and custom data, or finds: of a
/// block that reads related rows (a default method, the connectors:
/// [`crate::model::Field::reaches_related`]), those that pass its tests of
/// the customer's own row and custom data (every customer where it has
/// none), each of whom it looks up; of another, those that pass it.
/// Those of blocks that read no related rows, or whose tests of related
/// rows the looked-up form asks in a lookup every customer has anyway
/// ([`Asked::Joined`]), first, then the others'. Each test as asked of one
/// customer of the sample ([`asked_of_one`]): no set of custom data built
/// for it, nor an order of the tests chosen by a sample of its own (of the
/// draws' 1,804 segments, 5 counts change, none slower: 4 of them 408 ->
/// 403 ms with statistics, 293 -> 274 without; the fifth, seed `stop58b`
/// shape-027, alike before and after: 100-102 ms with, 106-110 without).
fn asked(b: &mut Builder, any: &AnyOf, today: NaiveDate) -> (Vec<String>, Vec<String>) {
    let mut itself = Vec::new();
    let mut reading = Vec::new();
    for asked in &any.asked {
        match asked {
            Asked::Joined(f) | Asked::Itself(f) => itself.push(asked_of_one(b, f, today)),
            Asked::Own(own) => reading.push(asked_of_one(b, own, today)),
            Asked::Everyone => reading.push(b.true_().to_string()),
        }
    }
    (itself, reading)
}

/// Whom the merge's select of the customers asks a customer block's tests
/// of related rows, or finds by it: those that pass its tests of their own
/// row and custom data (`Own`, [`own_form`]), every customer where it has
/// none, or, where it reads no related rows, those that pass it.
enum Asked {
    Itself(Filter),
    Own(Filter),
    /// Those that pass its own tests (`Own`), where every block of related
    /// rows is one of payment methods and the looked-up form asks its tests
    /// of the default method in the lookup of the customer's methods that
    /// every customer has anyway ([`super::default_row_test`]): the
    /// looked-up form asks them nothing more, as a block that reads no
    /// related rows.
    Joined(Filter),
    Everyone,
}

/// An `any` of positive blocks, compiled once per block: the customers'
/// own tests, and per related table (in order of first appearance) its
/// blocks' tests.
struct AnyOf {
    own: Vec<String>,
    tables: Tables<Blocks>,
    /// Every related block read from an index range ([`super::ranged`]).
    all_ranged: bool,
    /// Every related block a narrow range ([`narrow`]).
    all_narrow: bool,
    /// Every customer block with a test of class 0 or 1.
    classed: bool,
    /// Per customer block (of `own`'s tests), whom the merge's select of
    /// the customers asks more than its own row and custom data ([`asked`]).
    asked: Vec<Asked>,
}

impl AnyOf {
    /// `None` when a block is negated or none reads related rows.
    fn compile(b: &mut Builder, filters: &[&Filter], today: NaiveDate) -> Option<Self> {
        if filters.iter().any(|f| f.negate) {
            return None;
        }
        let mut any = AnyOf {
            own: Vec::new(),
            tables: Tables::default(),
            all_ranged: true,
            all_narrow: true,
            classed: true,
            asked: Vec::new(),
        };
        let everyone = merge_scans(filters);
        // Every block of related rows reads the payment methods alone: the
        // looked-up form asks a block of the default method and its own tests
        // in the customer's one lookup of them ([`Asked::Joined`]).
        let methods_only = filters.iter().all(|f| match f.filter_type {
            FilterType::Customer => !f.conditions.contains_key(&Field::CustomerConnectorName),
            FilterType::PaymentMethod => !super::without_connector(f),
            _ => false,
        });
        for f in filters {
            match b.scanned(true, everyone, |b| compile_block(b, f, today)) {
                Compiled::Rows {
                    table,
                    conds,
                    ranged,
                } => {
                    any.all_ranged &= ranged;
                    any.all_narrow &= narrow(f, ranged);
                    any.tables.add(table, |blocks| blocks.add(conds, f, ranged));
                }
                Compiled::Test(test) => {
                    any.classed &= block_class(f) < RANGE_CLASS;
                    any.asked
                        .push(match (super::related_fields(f), own_form(f)) {
                            (false, _) => Asked::Itself((*f).clone()),
                            (true, Some(own))
                                if methods_only && methods_own_form(f, filters).is_some() =>
                            {
                                Asked::Joined(own)
                            }
                            (true, Some(own)) => Asked::Own(own),
                            (true, None) => Asked::Everyone,
                        });
                    any.own.push(test);
                }
            }
        }
        (!any.tables.is_empty()).then_some(any)
    }

    /// The members' ids merged where [`merged_any`]'s rule merges them:
    /// every customer block with a test of class 0 or 1, and the related
    /// blocks not one list ([`one_list`]).
    fn merged_by_rule(&self, b: &Builder) -> Option<String> {
        (self.classed && !one_list(self.all_ranged, self.all_narrow, self.own.is_empty()))
            .then(|| self.merged(b, false))
    }

    /// The members' ids, merged: see [`merged_any`]; each table's blocks,
    /// one or several, hidden from the planner where `held` (a sample found
    /// most of the customers among them, [`customers_of`]).
    fn merged(&self, b: &Builder, held: bool) -> String {
        let own = (!self.own.is_empty())
            .then(|| format!("SELECT +c.id FROM customers c WHERE {}", one_of(&self.own)));
        let selects: Vec<String> = own
            .into_iter()
            .chain(
                self.tables
                    .0
                    .iter()
                    .map(|(table, blocks)| customers_of(b, *table, blocks, held)),
            )
            .collect();
        format!(
            "{} INTERSECT SELECT c.id FROM customers c ORDER BY 1",
            selects.join(" UNION ")
        )
    }
}

/// The tests of a merge's blocks of one table (each block's), and whether
/// one of them may hold many rows (no narrow range, [`narrow`]).
#[derive(Default)]
struct Blocks {
    tests: Vec<String>,
    broad: bool,
}

impl Blocks {
    /// One block's test (broad or not: alone, it is never hidden).
    fn one(test: String) -> Self {
        Self {
            tests: vec![test],
            broad: false,
        }
    }

    fn add(&mut self, test: String, f: &Filter, ranged: bool) {
        self.tests.push(test);
        self.broad |= !narrow(f, ranged);
    }
}

/// The ids of the customers of `table`'s rows that pass one of `blocks`'
/// tests, as a select of a merge: in the order of the table's index by
/// customer, no row of no customer. Several blocks, one of them broad, are
/// hidden from the planner (`CASE`), which reads them so whatever the
/// statistics: without them, SQLite read an OR of two blocks' lists of
/// connectors (seed `stop47` shape-140) as a `MULTI-INDEX OR` of their
/// links, 160,000 rows sorted, and counted in 130 ms, 69 ms so (with
/// statistics, the links in customer order, 65 ms and 68). Narrow ranges
/// only, it may read them and sort their few rows; but not where a sample
/// found most customers among them (`held`, two in three or more; one
/// block too), which
/// their classes cannot tell: seed `stop57a` shape-102, an `any` of two
/// blocks of payment methods of listed statuses, `active` among them (81%
/// of the customers), counted in 148-196 ms without statistics, their index
/// by status read and sorted, and 51-70 ms so.
fn customers_of(b: &Builder, table: Related, blocks: &Blocks, held: bool) -> String {
    let alias = table.alias();
    let hidden = held || (blocks.broad && blocks.tests.len() > 1);
    let test = match &blocks.tests[..] {
        tests if hidden => format!("CASE WHEN {} THEN 1 ELSE 0 END", one_of(tests)),
        [one] => one.clone(),
        tests => one_of(tests),
    };
    format!(
        "SELECT {alias}.customer_id FROM {} WHERE {alias}.customer_id IS NOT NULL AND ({})",
        table.from(b.dialect, false),
        b.scoped(alias, &test)
    )
}

/// The customers a customer block of related fields passes, as a select of
/// a merge (sorted there): compiled as an `all` of it alone, so that its list
/// of links or default methods may drive where it holds few ([`super::all_of`]),
/// or listed as a sample chooses its driver where it has a choice
/// ([`super::drive::chosen_driver`]: another list, an index of its own
/// tests, the set of a key's test, or the customers scanned).
/// Tested in one select of the customers, each one scanned or read through
/// its custom data's index asks the block's lookups: seed `stop55a` shape-014,
/// an `any` of a negated payment-method block and a block of Intercom links,
/// failed default methods and custom data (134 of 200,000 customers, CPU
/// time, by hand), counted in 208 ms so and 66 ms driven.
fn passing_customers(b: &mut Builder, f: &Filter, today: NaiveDate) -> String {
    if let Some(chosen) = super::drive::chosen_driver(&[f], today, Select::Ids) {
        let sql = super::shifted(&chosen.sql, b.binds.len());
        b.binds.extend(chosen.binds);
        return format!("SELECT * FROM ({sql})");
    }
    let driver = b.driver;
    let passing = super::predicate(b, MatchMode::All, vec![f], today);
    b.driver = driver;
    format!("SELECT +c.id FROM customers c WHERE {passing}")
}

/// The number of `customers` (a select of their ids) that every select of
/// `intersected` holds and none of `excepted` does: one merge of sorted
/// sets, each select read once in its order.
fn merge_count(customers: String, intersected: Vec<String>, excepted: &[String]) -> String {
    let mut sql = std::iter::once(customers)
        .chain(intersected)
        .collect::<Vec<_>>()
        .join(" INTERSECT ");
    for select in excepted {
        sql.push_str(" EXCEPT ");
        sql.push_str(select);
    }
    format!("SELECT COUNT(*) FROM ({sql} ORDER BY 1)")
}

/// The most blocks [`merged_complement`] and [`merged_all`] merge (each
/// block of related rows a term of one compound select).
const MOST_BLOCKS: usize = 64;

/// SQLite, `match = "any"` of several blocks, one of them negated and one
/// of related rows: the number of members,
/// every customer but those outside, counted as one merge of sorted sets:
/// the customers whom each negated block's positive form holds
/// (`INTERSECT`) but no positive block does (`EXCEPT`), each table read
/// once in the order of its index by customer. A customer outside passes
/// no block: each negated block's positive form holds for it (a block is
/// two-valued, a missing value false), no positive block does. The
/// negated customer blocks' positive forms are one select of the
/// customers, sorted (their custom data sets, and where they test custom
/// data alone, read in the order of the customers' index by id: seed
/// `stop54a` shape-120's, `plan ne "arte"`, 121 ms in place and sorted,
/// 43 ms so), and so are the positive ones (`EXCEPT`), but those of
/// related fields and tests of their own, none of which leaves few as a
/// rule ([`own_few`]), each a select of its own ([`passing_customers`]). The
/// predicate form ([`any_of`]) asks each customer its blocks in turn, most
/// of them lookups of its rows: seed `stop46` shape-045, a payment-method
/// block, a negated one and a connector block (200,000 customers, CPU
/// time), counted in 377 ms so and 122 ms merged (the shapes bench, 6.6x /
/// 7.1x its bound with / without statistics -> 2.4x-2.6x / 2.4x-3.0x).
/// Where most customers pass a customer block (a positive one, or a
/// negated one's negation), the predicate form asks few of them more:
/// where one in four of a sample or more do ([`share`]), it counts
/// (`stop46` shape-200, `email exists` beside a negated `seats` range and
/// an invoice block, 1.6x-1.7x its bound so, 4.0x-6.8x merged: the
/// customers' select read most of them through the `seats` index, and each
/// one's row; `stop46` shape-117, a negated block of `plan exists` and
/// `seats contains` beside a negated monitor block, 3.8x-7.3x merged);
/// its related blocks one list or looked up as another sample finds
/// ([`predicate_forms`]).
pub(super) fn merged_complement(
    filters: &[&Filter],
    today: NaiveDate,
) -> Option<(String, Builder)> {
    // SQLite allows 500 terms in a compound select: each negated block of
    // related rows is one.
    if !(2..=MOST_BLOCKS).contains(&filters.len())
        || !filters.iter().any(|f| f.negate)
        || !filters.iter().any(|f| super::reads_related(f))
    {
        return None;
    }
    let mut b = Builder::new(Dialect::Sqlite);
    // The positive customer blocks of related rows and tests of their own:
    // each the select of the customers it passes, as an `all` of it alone
    // compiles it; but where a test of its own row leaves few as a rule
    // ([`own_few`]), that test, asked first of each customer, spares most
    // of them the lookups (seed `stop54b` shape-123, an email suffix and
    // the Adyen links, counted in 51 ms so and 81 ms driven by the links
    // without statistics). A block of related rows alone is their rows, or
    // asked in the customers' select.
    let driven = |f: &Filter| {
        positive_customer(f) && super::related_fields(f) && own_form(f).is_some() && !own_few(f)
    };
    let rest: Vec<&Filter> = filters.iter().copied().filter(|f| !driven(f)).collect();
    let scans = merge_scans(&rest);
    let mut held: Vec<String> = Vec::new();
    let mut own_held: Vec<String> = Vec::new();
    let mut own: Vec<String> = Vec::new();
    // The customer blocks as asked of one customer, for the sample.
    let mut sampled: Vec<&Filter> = Vec::new();
    let mut tables: Tables<Blocks> = Tables::default();
    // Whether the negated customer blocks test custom data alone.
    let mut sets_only = true;
    let mut own_driven: Vec<&Filter> = Vec::new();
    for f in filters {
        if driven(f) {
            sampled.push(f);
            own_driven.push(f);
            continue;
        }
        let positive = Filter {
            negate: false,
            ..(*f).clone()
        };
        // A negated block's positive form is one select of the customers
        // that passes most of them as a rule: its custom data are sets.
        let compiled = b.scanned(true, scans || f.negate, |b| {
            compile_block(b, &positive, today)
        });
        if matches!(compiled, Compiled::Test(_)) {
            sampled.push(f);
        }
        match (compiled, f.negate) {
            (Compiled::Rows { table, conds, .. }, true) => {
                held.push(customers_of(&b, table, &Blocks::one(conds), false));
            }
            (
                Compiled::Rows {
                    table,
                    conds,
                    ranged,
                },
                false,
            ) => {
                tables.add(table, |blocks| blocks.add(conds, &positive, ranged));
            }
            (Compiled::Test(test), true) => {
                own_held.push(format!("({test})"));
                sets_only &= f.conditions.is_empty();
            }
            (Compiled::Test(test), false) => {
                own.push(test);
            }
        }
    }
    // Each customer block's term of the `any`, asked of one customer: no
    // set built for the sample.
    let terms: Vec<String> = sampled
        .into_iter()
        .map(|f| asked_of_one(&mut b, f, today))
        .collect();
    let some_own = (!terms.is_empty()).then(|| share(&one_of(&terms), true, 1, 4));
    // The customers: in the order of their index by id, or those their
    // tests leave, sorted; where those tests are custom data sets alone,
    // probed by row id, which that index holds, in its order.
    let customers = if own_held.is_empty() {
        "SELECT c.id FROM customers c".to_string()
    } else {
        let id = if sets_only { "c.id" } else { "+c.id" };
        format!(
            "SELECT {id} FROM customers c WHERE {}",
            own_held.join(" AND ")
        )
    };
    // The customers the positive customer blocks pass: few, where merged
    // (below), a short sort.
    let mut excepted: Vec<String> = Vec::new();
    if !own.is_empty() {
        excepted.push(format!(
            "SELECT +c.id FROM customers c WHERE {}",
            one_of(&own)
        ));
    }
    for f in own_driven {
        excepted.push(passing_customers(&mut b, f, today));
    }
    for (table, blocks) in &tables.0 {
        excepted.push(customers_of(&b, *table, blocks, false));
    }
    let merged = others(&merge_count(customers, held, &excepted));
    let Some(some_own) = some_own else {
        return Some((format!("SELECT {merged}"), b));
    };
    // Where one in four of a sample or more pass a customer block (a
    // positive one, or a negated one's negation), the predicate form asks
    // few customers more.
    let predicate = predicate_forms(&mut b, filters, today, &tables);
    let sql = format!("SELECT CASE WHEN {some_own} THEN ({predicate}) ELSE {merged} END");
    Some((sql, b))
}

/// The count of the predicate form of an `any` of `filters` beside its
/// merge ([`merged_complement`], the positive related blocks in `tables`):
/// as [`any_of`]'s rule compiles it where it has no such block, or where
/// that rule takes no list and folds no block into a lookup
/// ([`super::default_row_test`]); else the form a sample chooses, as
/// [`count_any`] does: where one in three of the sample or fewer are among
/// the related blocks' customers ([`few_held`]), the rule's form (one list
/// where [`one_list`] says so), else looked up. Where the two differ by the
/// fold alone (no list), the sample keeps the rule's form, unfolded, where
/// few are held, as before the choice was made. The rule's list holds a narrow
/// range's customers, by the class of its tests; a connector block of a
/// list of connections is one, whatever the links it holds: seed `stop56a`
/// shape-150, an `any` of a connector block of two of the three
/// connections (96% of the customers), a payment-method block and a
/// negated customer block of an email `not_in` and its default method
/// (200,000 customers, CPU time, by hand), counted in 285-350 ms as one
/// list and 173-222 ms looked up.
fn predicate_forms(
    b: &mut Builder,
    filters: &[&Filter],
    today: NaiveDate,
    tables: &Tables<Blocks>,
) -> String {
    let looked_up = any_of(&mut b.clone(), filters, today, Some(false));
    let by_rule = predicate_count(b, filters, today, None);
    if tables.is_empty() || by_rule == super::count_of(&looked_up) {
        return by_rule;
    }
    let looked_up = predicate_count(b, filters, today, Some(false));
    either_count(&few_held(&held(b, tables)), &by_rule, &looked_up)
}

/// SQLite, `match = "all"` of blocks of related rows, one of them
/// positive and one negated, and customer blocks of their own row
/// and custom data: the number of members as one merge of sorted sets,
/// where a sample shows no positive block leaves few customers (each
/// holds more than a third of them), with that sample (`few`, where the
/// query as compiled is counted instead). The customers their own tests
/// pass (`INTERSECT`: a row may outlive its customer), each positive
/// related block's customers (`INTERSECT`), but for each negated block's
/// positive form's (`EXCEPT`), each block's rows read once in the order of
/// its table's index by customer ([`customers_of`]). Driven by the list of a block
/// most customers pass, each of its customers is looked up in the other
/// tables: seed `stop54a` shape-097, an `all` of the customers with a
/// payment method (most of them) but none of a status other than active
/// and no monitor named `BANDWIDTH` (200,000 customers, CPU time, by hand),
/// counted in 263-275 ms driven and 104-110 ms merged. `None` where a customer
/// block tests related rows, no related block is positive or none is
/// negated (an `all` of positive blocks keeps its forms: a list drives), or
/// they are of one table (one pass over its rows grouped by customer).
pub(super) fn merged_all(
    filters: &[&Filter],
    today: NaiveDate,
) -> Option<(String, String, Builder)> {
    let tables: std::collections::BTreeSet<FilterType> = filters
        .iter()
        .filter(|f| f.filter_type != FilterType::Customer)
        .map(|f| f.filter_type)
        .collect();
    if tables.len() < 2
        || filters.len() > MOST_BLOCKS
        || filters
            .iter()
            .any(|f| f.filter_type == FilterType::Customer && super::related_fields(f))
        || !filters
            .iter()
            .any(|f| !f.negate && f.filter_type != FilterType::Customer)
        || !filters
            .iter()
            .any(|f| f.negate && f.filter_type != FilterType::Customer)
    {
        return None;
    }
    let mut b = Builder::new(Dialect::Sqlite);
    let mut own: Vec<String> = Vec::new();
    let mut held: Vec<String> = Vec::new();
    let mut outside: Vec<String> = Vec::new();
    for f in filters {
        let positive = Filter {
            negate: false,
            ..(*f).clone()
        };
        // A customer block that no index range serves scans the customers:
        // its custom data are sets then, each read from its key's index, not
        // each customer's JSON parsed ([`Builder::everyone`]): seed `stop54b`
        // shape-131, a negated block of a name `ne` and a `region` substring
        // beside a connector and a negated payment-method block (200,000
        // customers, CPU time, by hand), counted in 198-206 ms so and
        // 165-193 ms with the set.
        let scans = f.filter_type == FilterType::Customer && own_unranged(&[&positive]);
        let compiled = b.scanned(scans, scans, |b| compile_block(b, &positive, today));
        match (compiled, f.negate) {
            (Compiled::Test(test), false) => own.push(format!("({test})")),
            (Compiled::Test(test), true) => {
                outside.push(format!("SELECT +c.id FROM customers c WHERE {test}"));
            }
            (Compiled::Rows { table, conds, .. }, negated) => {
                let rows = customers_of(&b, table, &Blocks::one(conds), false);
                if negated {
                    outside.push(rows);
                } else {
                    held.push(rows);
                }
            }
        }
    }
    let customers = if own.is_empty() {
        "SELECT c.id FROM customers c".to_string()
    } else {
        format!("SELECT +c.id FROM customers c WHERE {}", own.join(" AND "))
    };
    let merged = merge_count(customers, held, &outside);
    // Where a positive block leaves few, its list (or the customers' own
    // index) drives the query as compiled.
    let few: Vec<String> = filters
        .iter()
        .filter(|f| !f.negate)
        .map(|f| holding(&asked_of_one(&mut b, f, today), false, 1, 3))
        .collect();
    Some((
        holds_of_one(&[format!("({})", few.join(" OR "))]),
        merged,
        b,
    ))
}

#[cfg(test)]
mod tests {
    use super::{AnyOf, Sampled, choice, few_held, held, predicate_count, sampled};
    use crate::demo::{DemoSpec, Generator};
    use crate::model::Segment;
    use crate::segment::Builder;
    use crate::segment::{Dialect, Query, Select, compile, ordered};
    use crate::store::billing::Existing;
    use crate::store::{SqliteStore, Store};
    use crate::validate::stored_segment;
    use chrono::{DateTime, NaiveDate, Utc};

    async fn exec(store: &dyn Store, sql: &str) {
        let Some(s) = store.as_any().downcast_ref::<SqliteStore>() else {
            panic!("a SQLite store")
        };
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&s.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The demo's first 2,000 customers in a fresh SQLite store, and the
    /// day they are of.
    async fn demo_store() -> (tempfile::TempDir, Box<dyn Store>, NaiveDate) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite:{}", dir.path().join("segd.db").display());
        let store = crate::store::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_else(|| panic!("a date"));
        let generator = Generator::new(DemoSpec {
            seed: 7,
            customers: 2_000,
            today,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        store
            .load_demo(generator, Existing::Refuse, &mut |_| {})
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (dir, store, today)
    }

    /// How many rows `Select::Rows` lists of `segment` at `at`.
    async fn rows(store: &dyn Store, segment: &Segment, at: DateTime<Utc>) -> u64 {
        store
            .members(&compile(segment, Dialect::Sqlite, at, Select::Rows), |_| {
                Ok(())
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Of an `any` of index ranges alone, the count is one list where the
    /// sample finds one in three or fewer among their customers (the links
    /// to the connector in error: 14%), merged where more (the connected
    /// ones: 68%); either counts what `Select::Rows` lists. Of blocks not
    /// all ranges (card methods), merged, no sample.
    #[tokio::test]
    async fn a_count_of_ranges_alone_is_one_list_where_the_sample_finds_few() {
        let (_dir, store, today) = demo_store().await;
        let at = today
            .and_hms_opt(12, 0, 0)
            .unwrap_or_else(|| panic!("a time"))
            .and_utc();
        let cases = [
            ("type = \"connector\"\nconnection = \"error\"", Some(1)),
            ("type = \"connector\"\nconnection = \"connected\"", Some(0)),
            ("type = \"payment_method\"\npayment_type = \"card\"", None),
        ];
        for (block, few) in cases {
            let toml = format!(
                "[segment]\nname = \"s\"\nmatch = \"any\"\n[[filter]]\n{block}\n\
                 [[filter]]\ntype = \"monitor\"\nstate = \"alerting\"\n"
            );
            let segment = stored_segment(&toml).unwrap_or_else(|e| panic!("{e}"));
            let filters = ordered(&segment);
            let mut b = Builder::new(Dialect::Sqlite);
            let Some(any) = AnyOf::compile(&mut b, &filters, today) else {
                panic!("{toml}: no forms")
            };
            let count = compile(&segment, Dialect::Sqlite, at, Select::Count);
            match few {
                Some(few) => {
                    let q = Query {
                        merge_joins: false,
                        sql: format!("SELECT {}", few_held(&held(&b, &any.tables))),
                        binds: b.binds,
                    };
                    let row = store.counts(&q).await.unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(row, [few], "{toml}");
                    assert!(
                        count
                            .sql
                            .contains(" THEN (SELECT COUNT(*) FROM customers c WHERE ")
                    );
                    assert!(
                        count
                            .sql
                            .contains(" INTERSECT SELECT c.id FROM customers c")
                    );
                }
                None => assert!(count.sql.starts_with("SELECT COUNT(*) FROM (SELECT ")),
            }
            let counted = store.count(&count).await.unwrap_or_else(|e| panic!("{e}"));
            let rows = rows(&*store, &segment, at).await;
            assert_eq!(counted, rows, "{toml}");
            assert!(0 < rows && rows < 2_000, "{toml}");
        }
    }

    /// Each form counts the members `Select::Rows` lists (rows of customers
    /// gone and of none beside them), also of five blocks over four tables,
    /// and the sample picks the one the shares of the demo data call for:
    /// most customers pass 24 countries, half pass 3 (looked up); a country
    /// of 6% and the alerting monitors (8%) hold few (one list); a name no
    /// one has beside the links to connected connectors (68%) neither
    /// (merged); a customer block that reads a default method's status
    /// beside payment methods most customers have is looked up where most
    /// customers pass its other tests (a name no one has: merged), and
    /// merged beside Stripe's links (40%, fewer than two in three). So they
    /// do when the row
    /// ids have gaps, and when no customer is left (an empty sample:
    /// merged).
    #[tokio::test]
    async fn the_sample_picks_a_form_and_every_form_counts_alike() {
        let (_dir, store, today) = demo_store().await;
        exec(
            &*store,
            "INSERT INTO monitors (id, customer_id, name, state, updated_at) VALUES \
             ('m_gone', 'cus_gone', 'storage', 'alerting', '2026-11-01T00:00:00Z'), \
             ('m_none', NULL, 'storage', 'alerting', '2026-11-01T00:00:00Z')",
        )
        .await;
        exec(
            &*store,
            "INSERT INTO customer_connectors (customer_id, connector_id) SELECT 'cus_gone', id FROM connectors",
        )
        .await;
        let countries = r#"["US","GB","DE","FR","CA","AU","NL","ES","IN","IT","JP","SE","BR","CH","IE","PL","MX","SG","BE","AT","DK","NO","PT","NZ"]"#;
        let pair = |own: &str, related: &str| {
            format!("[[filter]]\ntype = \"customer\"\n{own}\n[[filter]]\n{related}\n")
        };
        let connected = "type = \"connector\"\nconnection = \"connected\"";
        // The blocks, and what the sample finds: whether the looked-up form
        // is the one ([`some_own`]: one in four or more pass the customer
        // tests, those of a block reading related rows where two in three
        // or more are among the related blocks' customers), and whether
        // one in three or fewer are among them.
        let cases = [
            (
                pair(&format!("country = {{ in = {countries} }}"), connected),
                Some([1, 0]),
            ),
            (
                pair("country = { in = [\"US\", \"GB\", \"DE\"] }", connected),
                Some([1, 0]),
            ),
            (
                pair("country = \"FR\"", "type = \"monitor\"\nstate = \"alerting\""),
                Some([0, 1]),
            ),
            (pair("name = \"nobody at all\"", connected), Some([0, 0])),
            // A customer block that reads related rows is looked up where
            // most pass its other tests, each of whom the merge would look
            // up, and most have a method not failed (the related blocks'
            // customers); merged where few pass its other tests.
            (
                pair(
                    "name = { ne = \"nobody at all\" }\ndefault_payment_method_status = \"failed\"",
                    "type = \"payment_method\"\nstatus = { ne = \"failed\" }",
                ),
                Some([1, 0]),
            ),
            (
                pair(
                    "name = \"nobody at all\"\ndefault_payment_method_status = \"failed\"",
                    connected,
                ),
                Some([0, 0]),
            ),
            // Merged where fewer than two in three are among the related
            // blocks' customers (Stripe's, 40%): the looked-up form would
            // look most customers up in every table.
            (
                pair(
                    "name = { ne = \"nobody at all\" }\ndefault_payment_method_status = \"failed\"",
                    "type = \"connector\"\nname = \"Stripe\"",
                ),
                Some([0, 0]),
            ),
            // Both hold: few among the failed methods' customers comes first.
            (
                pair(
                    "country = { in = [\"US\", \"GB\", \"DE\"] }",
                    "type = \"payment_method\"\nstatus = \"failed\"",
                ),
                Some([1, 1]),
            ),
            // One list: a customer block's set driven by its failed default
            // methods, alone (below). Its own tests pass most, but few are
            // among the monitors' customers: not looked up.
            (SET_ALONE.to_string(), Some([0, 1])),
            // A lookup most pass beside one few do (the looked-up form's
            // order, below).
            (
                ORDERED_BY_SAMPLE.to_string(),
                Some([1, 0]),
            ),
            // Looked up where most pass the own tests of a block of the
            // default method beside a payment-method block, though fewer
            // than two in three are among that block's customers: the
            // looked-up form asks the default method in its lookup of every
            // customer's methods (seed `stop55a` shape-011).
            (
                pair(
                    "default_payment_method_status = { in = [\"expired\", \"active\"] }\n\
                     custom_data = { seats = { lt = 5 } }",
                    "type = \"payment_method\"\npayment_type = \"card\"",
                ),
                Some([1, 0]),
            ),
            // Several tables, unpaid invoices, lookups in the customer block.
            (
                "[[filter]]\ntype = \"invoice\"\ndue_in_days = { not_in = [12] }\n\
                 [[filter]]\ntype = \"monitor\"\nname = { ends_with = \"storage\" }\nstate = { not_in = [\"alerting\"] }\n\
                 [[filter]]\ntype = \"customer\"\ndefault_payment_method = \"ach\"\n\
                 custom_data = { region = { not_in = [\"emea\", 5] }, plan = { in = [\"free\", \"pro\"] } }\n\
                 [[filter]]\ntype = \"payment_method\"\npayment_type = \"card\"\n\
                 [[filter]]\ntype = \"connector\"\nname = \"Stripe\"\n"
                    .to_string(),
                None,
            ),
        ];
        let at = today
            .and_hms_opt(12, 0, 0)
            .unwrap_or_else(|| panic!("a time"))
            .and_utc();
        // The demo customers; every seventh (gaps in the row ids); none.
        for (left, thinned) in [(2_000, None), (285, Some("rowid % 7 <> 0")), (0, Some("1"))] {
            if let Some(gone) = thinned {
                exec(&*store, &format!("DELETE FROM customers WHERE {gone}")).await;
            }
            for (blocks, want) in &cases {
                let toml = format!("[segment]\nname = \"s\"\nmatch = \"any\"\n{blocks}");
                let (segment, forms) = forms(&toml, today);
                let Sampled {
                    some_own,
                    few_held,
                    looked_up,
                    listed,
                    merged,
                    b,
                } = forms;
                // The form chosen: 0 listed, 1 looked up, 2 merged.
                let form = choice(&few_held, &some_own, ["0", "1", "2"].map(String::from));
                let q = Query {
                    merge_joins: false,
                    sql: format!(
                        "SELECT {some_own}, {few_held}, {form}, ({looked_up}), ({listed}), ({merged})"
                    ),
                    binds: b.binds,
                };
                let row = store.counts(&q).await.unwrap_or_else(|e| panic!("{e}"));
                let chosen = store
                    .count(&compile(&segment, Dialect::Sqlite, at, Select::Count))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let rows = rows(&*store, &segment, at).await;
                match (left, want) {
                    (2_000, Some(want)) => {
                        assert_eq!(row[..2], *want, "{toml}");
                        let form = match want {
                            [_, 1] => 0,
                            [1, _] => 1,
                            _ => 2,
                        };
                        assert_eq!(row[2], form, "{toml}");
                    }
                    (0, _) => assert_eq!(row[..3], [0, 0, 2], "{toml}"),
                    _ => {}
                }
                assert_eq!(row[3..], [rows, rows, rows], "{left}: {toml}");
                assert_eq!(chosen, rows, "{left}: {toml}");
                assert!(left == 0 || 0 < rows && rows < left, "{left}: {toml}");
            }
        }
    }

    /// An `any` of customer tests many pass, a connector block few do and
    /// a payment-method block most do.
    const ORDERED_BY_SAMPLE: &str = "[[filter]]\ntype = \"customer\"\ncountry = { in = [\"US\", \"GB\", \"DE\"] }\n\
        [[filter]]\ntype = \"connector\"\nconnection = \"disconnected\"\n\
        [[filter]]\ntype = \"payment_method\"\nstatus = { not_in = [\"expired\", \"pending\"] }\n";

    /// The segment of `toml` and its forms ([`sampled`]).
    fn forms(toml: &str, today: NaiveDate) -> (Segment, Sampled) {
        let segment = stored_segment(toml).unwrap_or_else(|e| panic!("{e}"));
        let filters = ordered(&segment);
        let mut b = Builder::new(Dialect::Sqlite);
        let Some(any) = AnyOf::compile(&mut b, &filters, today) else {
            panic!("{toml}: no forms")
        };
        let forms = sampled(b, &any, &filters, today);
        (segment, forms)
    }

    /// The looked-up form asks its OR's terms in the order a sample chooses
    /// (a lookup most customers pass may come before one few do); one
    /// list's form keeps the order given, which SQLite may read from the
    /// terms' indexes alone (`MULTI-INDEX OR`), even beside a customer
    /// block of an email list and a connector's name, which is asked of
    /// each customer (seed `stop49` shape-168). The forms count alike
    /// ([`the_sample_picks_a_form_and_every_form_counts_alike`]).
    #[test]
    fn the_looked_up_form_asks_first_the_term_the_sample_chooses() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_else(|| panic!("a date"));
        let any = |blocks: &str| format!("[segment]\nname = \"s\"\nmatch = \"any\"\n{blocks}");
        let chosen_order = "CASE (SELECT CASE WHEN s0";
        let (_, ordered) = forms(&any(ORDERED_BY_SAMPLE), today);
        assert!(
            ordered.looked_up.contains(chosen_order),
            "{}",
            ordered.looked_up
        );
        let (_, beside) = forms(
            &any("[[filter]]\ntype = \"invoice\"\ndue_in_days = { lt = 0 }\n\
                  [[filter]]\ntype = \"customer\"\nemail = { in = [\"ACCOUNTS@VERTEXLABS.EXAMPLE\"] }\n\
                  connector_name = { starts_with = \"BRAINTREE\" }\n"),
            today,
        );
        assert!(
            beside.looked_up.contains(chosen_order),
            "{}",
            beside.looked_up
        );
        assert!(!beside.listed.contains(chosen_order), "{}", beside.listed);
    }

    /// The looked-up form asks a customer block of its default method and
    /// its own tests beside a payment-method block in one lookup of each
    /// customer's methods, the default method's row and the customer's own
    /// tests one term of it, not a lookup of its own (its custom data read
    /// in place): seed `stop55a` shape-011 (200,000 customers, CPU time, by
    /// hand) counted in 168 ms with a lookup per block and 107 ms so.
    /// Without a payment-method block, its own tests come first, a lookup
    /// of its own (a customer they reject is never looked up). The forms
    /// count alike ([`the_sample_picks_a_form_and_every_form_counts_alike`]).
    #[test]
    fn the_looked_up_form_asks_a_default_method_in_the_methods_lookup() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_else(|| panic!("a date"));
        let block = "[[filter]]\ntype = \"customer\"\n\
                     default_payment_method_status = { in = [\"expired\", \"active\"] }\n\
                     custom_data = { seats = { lt = 5 } }\n";
        let lookup = "FROM payment_methods pm WHERE pm.customer_id = c.id";
        for (other, joined) in [
            (
                "type = \"payment_method\"\npayment_type = { ne = \"ach\" }",
                true,
            ),
            ("type = \"monitor\"\nstate = \"alerting\"", false),
        ] {
            let toml =
                format!("[segment]\nname = \"s\"\nmatch = \"any\"\n{block}[[filter]]\n{other}\n");
            let (_, forms) = forms(&toml, today);
            let looked_up = &forms.looked_up;
            // The block comes first ([`ordered`]): the lookup's first term.
            let folded = "CASE WHEN (pm.is_default = 1 AND ";
            assert_eq!(looked_up.contains(folded), joined, "{other}: {looked_up}");
            if joined {
                assert_eq!(looked_up.matches(lookup).count(), 1, "{looked_up}");
            }
            // Asked of the one customer whose default method passes, its
            // custom data are read in place; else a set of every customer.
            let set = "c.rowid IN (SELECT cx.rowid FROM customers cx";
            assert_eq!(looked_up.contains(set), !joined, "{other}: {looked_up}");
            // A correlated term: never in a list, nor in the merge.
            for form in [&forms.listed, &forms.merged] {
                assert!(!form.contains(folded), "{form}");
            }
        }
    }

    /// An `any` of a monitor block few pass and a customer block most pass
    /// but for its failed default methods (a few).
    const SET_ALONE: &str = "[[filter]]\ntype = \"monitor\"\nstate = \"alerting\"\n\
        [[filter]]\ntype = \"customer\"\nemail = { exists = true }\n\
        default_payment_method_status = \"failed\"\n";

    /// The one-list form reads a customer block's set driven by its related
    /// rows alone where its sample finds few (every other term an index
    /// range too): SQLite reads each term's customers from an index and
    /// looks their ids up (`MULTI-INDEX OR`), where behind its sample's
    /// `CASE` it scans every customer. Both count alike
    /// ([`the_sample_picks_a_form_and_every_form_counts_alike`]).
    #[tokio::test]
    async fn the_listed_form_reads_a_customer_blocks_set_alone_where_few_pass() {
        let (_dir, store, today) = demo_store().await;
        let toml = format!("[segment]\nname = \"s\"\nmatch = \"any\"\n{SET_ALONE}");
        let segment = stored_segment(&toml).unwrap_or_else(|e| panic!("{e}"));
        let filters = ordered(&segment);
        let at = today
            .and_hms_opt(12, 0, 0)
            .unwrap_or_else(|| panic!("a time"))
            .and_utc();
        let rows = rows(&*store, &segment, at).await;
        let mut plans = Vec::new();
        for alone in [true, false] {
            let mut b = Builder::new(Dialect::Sqlite);
            b.bare_sets = alone.then(Vec::new);
            let count = predicate_count(&mut b, &filters, today, Some(true));
            let few = b.bare_sets.take().unwrap_or_default();
            assert_eq!(few.len(), usize::from(alone), "{count}");
            // The set's sample finds few: each form counts the members, and
            // `listed_count` holds them alone.
            let columns: Vec<String> = std::iter::once(format!("({count})")).chain(few).collect();
            let q = Query {
                merge_joins: false,
                sql: format!("SELECT {}", columns.join(", ")),
                binds: b.binds.clone(),
            };
            let found = store.counts(&q).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(found[0], rows, "{alone}");
            assert!(found[1..].iter().all(|f| *f == 1), "{alone}: {found:?}");
            let q = Query {
                merge_joins: false,
                sql: count,
                binds: b.binds,
            };
            let plan = store.explain(&q).await.unwrap_or_else(|e| panic!("{e}"));
            plans.push(plan.iter().map(ToString::to_string).collect::<String>());
        }
        assert!(plans[0].contains("MULTI-INDEX OR"), "{}", plans[0]);
        assert!(!plans[1].contains("MULTI-INDEX OR"), "{}", plans[1]);
        // The sets alone where their samples find few, else behind them.
        let (_, forms) = forms(&toml, today);
        let behind = "THEN c.rowid IN (SELECT c.rowid FROM customers c WHERE";
        let (alone, behind_samples) = forms
            .listed
            .split_once(" ELSE (SELECT COUNT(*) FROM customers c WHERE ")
            .unwrap_or_else(|| panic!("two forms: {}", forms.listed));
        assert!(alone.starts_with("SELECT CASE WHEN "), "{alone}");
        assert!(!alone.contains(behind), "{alone}");
        assert!(behind_samples.contains(behind), "{behind_samples}");
    }
}
