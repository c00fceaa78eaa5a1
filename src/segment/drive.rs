//! SQLite, `match = "all"`: which related block's list drives the query,
//! or which index of the customers' own tests (or which set of the
//! customers a key's test passes), chosen by a sample of the customers
//! where several may.

use super::builder::{Builder, Driver, OwnTest};
use super::custom_data::custom_data_name;
use super::sample::least;
use super::{
    DRIVING_CLASS, Dialect, Query, Select, all_of, asked_of_one, block_class, block_order, classes,
    custom_sets, customers_drive, driving_tests, key_test, links_drive, listed, own_form,
    own_indexed, own_unranged, positive_customer, positive_customers, predicate, ranged,
    related_fields, related_tests, split_driving, status_of, unindexed_set,
};
use crate::model::{Condition, Filter, FilterType, MatchMode};
use chrono::NaiveDate;

/// The most lists a driver is chosen among (a customer block's links and
/// default method two), and the most own tests of the customers (an
/// index's, a key's set): each is a copy of the query (and so are the
/// customers scanned, where they are one more driver).
const MOST_DRIVERS: usize = 4;

/// A listing's choice of arm, as its arms' limits and guards read it: the
/// one row of the common table `chosen` ([`of_choice`]), materialized once.
/// Each arm asking the sample itself cost its time once per arm.
const CHOSEN: &str = "(SELECT arm FROM chosen)";

/// What building the list of a block not read from an index range costs
/// beyond its rows, in customers of the sample ([`super::sample`]): a scan
/// of its table, as a list of about a fifth of the customers.
pub(super) const SCANNED: u32 = 24;

/// SQLite, `match = "all"` over all customers: where a related block's list
/// drives the query ([`super::predicate`]: one of a driving class, or the
/// related tests of a customer block that drive it, its links or its
/// default method, [`split_driving`]) and other positive related blocks
/// (invoice, payment-method, connector or monitor blocks) might, or the
/// customers scanned might ([`scanned_arm`]), the query once per such
/// list driving (its block moved first; the first [`MOST_DRIVERS`], the one
/// that drives as given first), then once scanned, and the one run the block
/// whose rows the fewest of a sample's customers have ([`least`]): its
/// list is the shortest to build and look up (the scanned arm counts
/// [`SCANNED_ARM`]). A block not read from an index range
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
/// monitors. Where the first related block is of no driving class (no
/// list drives as given, [`super::predicate`]; a customer block's related
/// tests of none are not: [`split_driving`]), each positive related block
/// drives an arm all the same (its [`Driver::List`]), and the customers
/// scanned are always one, but where one table's blocks are grouped
/// ([`one_table`]): seed `stop56a` shape-094, an `all` of the monitors of a
/// state other than `ok` and a name not in a list (12% of the customers)
/// and a negated customer block of a default method and custom data
/// (200,000 customers, CPU time, by hand), counted in 138-176 ms scanned
/// and 89-112 ms driven by the monitors' list.
///
/// Where a customer block drives as given by its links or its default
/// method, the other of the two drives an arm too, of any class
/// ([`related_tests`]): seed `stop54b` shape-186, an `any` whose
/// complement is an `all` of the Chargebee links (a substring of the
/// connectors' names, 9% of the customers) and active default methods
/// (61%, the list the classes choose) beside connector blocks (200,000
/// customers, CPU time, by hand), counted in 265 ms driven by the methods
/// and 73-76 ms by the links. Every other positive customer block's links
/// and default method, of a driving class ([`driving_tests`]), drive an arm
/// each too, after the related blocks: seed `stop54b` shape-078, an `all`
/// of the links to no connector (`ends_with "ardl"`) beside custom data and
/// three connector blocks (200,000 customers, CPU time, by hand), found
/// none in 187-201 ms driven by the connected connectors' links and in
/// 1.0-1.4 ms by its own (of the draws' 1,804 segments, 29 counts change,
/// 926 -> 574 ms with statistics and 1,099 -> 690 without; 23 listings,
/// 746 -> 495 and 980 -> 685 ms).
///
/// Each own test of a positive customer block that an index may serve
/// ([`indexed_tests`]) drives an arm too, after the lists: the customers
/// read through its index (the others hidden, [`Builder::kept_index`]),
/// each related block looked up (`Driver::Customers`), weighed at the
/// customers of the sample that pass it ([`index_weight`]): unlike another
/// list, it drives wherever it holds fewer than the first. A list's class
/// cannot tell how many customers it holds: seed `stop59a` shape-136, an
/// `any` whose merge selects the customers of a block of active or expired
/// default methods (68% of the customers) and `region < 2` (none), beside a
/// negated payment-method block (200,000 customers, CPU time, by hand),
/// counted in 217 ms driven by the methods' list without statistics (51
/// ms with them, the planner reading the region's index) and 45 ms so (of
/// the draws' 2,205 segments, 111 counts change, 3,528 -> 2,798 ms with
/// statistics and 5,381 -> 2,673 without; 72 listings, 1,312 -> 818 and
/// 2,285 -> 789). So does each key's test no index range serves whose
/// customers are a set ([`key_sets`]: a `contains`, an `ends_with`), the
/// set built from one scan of its key's index (weighed at [`SCANNED`]
/// more): seed `stop60a` shape-163, one customer block of active default
/// methods (61% of the customers), `seats > 2` (45%) and a `trial`
/// substring no customer has, counted in 178-181 ms driven by the methods'
/// list, 7.6 ms by the set (of the draws' 2,205 segments, 17 counts and 11
/// listings change, none faster or slower by more than noise).
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
/// driver 1,105 ms with the test in the WHERE clause, 612 ms with a limit).
/// The listing asks the sample once, for every list ([`of_choice`]); each
/// list asking it (0.3-1 ms on 200,000 customers, CPU time) took seed
/// `stop50` shape-173's ids, four lists, 11.6-13.2 ms, 4.1-5.5 asked once,
/// and the ids of the 523 segments of the draws' 1,804 with a choice 17.7 s
/// (18.3 s without statistics), 16.6 s (17.3 s) asked once.
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
    // a customer block's related tests (its links or its default method),
    // where a list drives (a class that may).
    let first_related = filters
        .iter()
        .position(|f| !f.negate && block_order(f) > 0)?;
    let given = filters.get(first_related)?;
    let customer_list = match given.filter_type {
        FilterType::Customer => Some(split_driving(given)?.0),
        _ => None,
    };
    // A block of no driving class drives no list as given: the customers
    // scanned, each asked every block, are an arm then, whatever their own
    // tests (where none is a set of custom data, [`scanned_arm`], weighed at
    // half the sample more, [`UNCLASSED`]).
    let unclassed = customer_list.is_none() && block_class(given) > DRIVING_CLASS;
    if unclassed && one_table(filters) {
        return None;
    }
    // A customer block's other related rows (its default method where its
    // links drive, else its links), of any class, drive another arm.
    let other_links = !links_drive(given);
    let other_list = customer_list
        .as_ref()
        .and_then(|_| related_tests(given, other_links));
    // Every other positive customer block's links and default method, of
    // a driving class, drive an arm each too (after the related blocks).
    let others: Vec<(usize, bool, Filter)> = filters
        .iter()
        .enumerate()
        .filter(|(i, f)| *i != first_related && positive_customer(f))
        .flat_map(|(i, f)| {
            [true, false].into_iter().filter_map(move |links| {
                driving_tests(f, links).map(|(tests, _)| (i, links, tests))
            })
        })
        .collect();
    // Then every other positive related block, of any class: a list of a
    // table's scan may hold fewer than an index range's. Each driver is a
    // block's index, for a customer block's whether its links drive
    // (`None`: as its classes say, [`links_drive`]), and the tests whose
    // list drives (a customer block's related tests of that kind).
    let drivers: Vec<(usize, Option<bool>, &Filter)> = customer_list
        .iter()
        .map(|list| (first_related, None, list))
        .chain(
            other_list
                .iter()
                .map(|other| (first_related, Some(other_links), other)),
        )
        .chain(
            filters
                .iter()
                .enumerate()
                .filter(|(_, f)| !f.negate && f.filter_type != FilterType::Customer)
                .map(|(i, f)| (i, None, *f)),
        )
        .chain(
            others
                .iter()
                .map(|(i, links, tests)| (*i, Some(*links), tests)),
        )
        .take(MOST_DRIVERS)
        .collect();
    let own: Vec<Filter> = scanned_arm(filters);
    let scanned = unclassed || !own.is_empty();
    // Each own test of the customers an index may serve drives an arm: the
    // customers read through its index (the others hidden), each related
    // block looked up.
    let mut indexed = indexed_tests(filters);
    // So does each key's set, but where the customers scanned are an arm
    // (their custom data sets, [`scanned_arm`]).
    let sets = match scanned {
        true => Vec::new(),
        false => key_sets(filters, &indexed),
    };
    indexed.extend(sets);
    // The first a choice among several, and the one that drives as given.
    if drivers.len() + indexed.len() + usize::from(scanned) < 2
        || drivers.first().map(|(i, ..)| *i) != Some(first_related)
    {
        return None;
    }
    let mut b = Builder::new(Dialect::Sqlite);
    // Each driver's rows as asked of one customer of the sample, and the
    // customers its list's build is worth where it is not an index range.
    let mut values: Vec<String> = drivers
        .iter()
        .enumerate()
        .map(|(arm, (_, _, driving))| {
            let passed = passed(&mut b, driving, today);
            // Links (a connector block's, a customer block's) are index
            // ranges, and so are a customer's default methods of listed
            // statuses.
            let indexed = match driving.filter_type {
                FilterType::Connector => true,
                FilterType::Customer => links_drive(driving) || listed(status_of(driving)),
                _ => ranged(driving),
            };
            let scan = if indexed { 0 } else { SCANNED };
            let value = format!("{passed} + {scan}");
            // Another list of an index range drives where it is half the
            // first, the block the class order chose (a customer block's
            // related tests were not chosen so; a scan is weighed above).
            if arm == 0 || customer_list.is_some() || scan > 0 {
                value
            } else {
                format!("2 * ({value})")
            }
        })
        .collect();
    for (test, one) in &indexed {
        let read = index_weight(&mut b, test, one, today);
        // A set is built from one scan of its key's index.
        values.push(match test {
            OwnTest::Set(..) => format!("{read} + {SCANNED}"),
            OwnTest::Field(_) | OwnTest::Key(_) => read,
        });
    }
    if scanned {
        // The customers the own tests pass are looked up in the other
        // blocks, each about two thirds of what a list's customer costs
        // (looked up by id, its JSON parsed); without such tests (no
        // custom data set, [`scanned_arm`]), every customer at half of
        // what a list's costs ([`UNCLASSED`]).
        let passed: Vec<String> = own.iter().map(|f| asked_of_one(&mut b, f, today)).collect();
        values.push(if passed.is_empty() {
            format!("{SCANNED_ARM} + COUNT(*) / {UNCLASSED}")
        } else {
            format!(
                "{SCANNED_ARM} + TOTAL(CASE WHEN ({}) THEN 2 ELSE 0 END) / 3",
                passed.join(") AND (")
            )
        });
    }
    let choice = least(&values);
    let mut arms: Vec<String> = Vec::new();
    for (arm, (i, links, _)) in drivers.iter().enumerate() {
        let mut order: Vec<&Filter> = filters.to_vec();
        let first = order.remove(*i);
        order.insert(0, first);
        // The driver's list reads rows only where it was chosen.
        b.guard = (select != Select::Count).then(|| format!("{CHOSEN} = {arm}"));
        // The first block's list drives, whatever its class (the customers
        // do not: [`customers_drive`] is of the blocks, not their order).
        // Which of a customer block's related rows drive, for its block only
        // (`all_of` takes it after the first block).
        b.driver = Driver::List;
        b.links_first = *links;
        let driven = all_of(&mut b, &order, today);
        if b.guard.take().is_some() {
            return None;
        }
        arms.push(driven);
    }
    b.driver = Driver::Customers;
    for (test, _) in indexed {
        b.kept_index = Some(test);
        arms.push(all_of(&mut b, filters, today));
    }
    b.kept_index = None;
    if scanned {
        // No list: the customers scanned, their custom data sets.
        b.driver = Driver::Unchosen;
        arms.push(all_of(&mut b, filters, today));
    }
    Some(Query {
        merge_joins: false,
        sql: of_choice(&choice, &arms, drivers.len(), select),
        binds: b.binds,
    })
}

/// The query of `arms` (predicates over `customers c`), the one `choice`
/// (an SQL expression of the arm's number) chooses run: a count is a `CASE`
/// of each arm's count (SQLite runs the chosen one alone); the ids and
/// rows a `UNION ALL` of each arm's, those from `guarded` on each limited
/// by the choice, asked once for all of them: the common table `chosen`,
/// which the arms' limits and guards read ([`CHOSEN`]).
pub(super) fn of_choice(choice: &str, arms: &[String], guarded: usize, select: Select) -> String {
    match select {
        Select::Count => {
            let whens: Vec<String> = arms
                .iter()
                .enumerate()
                .map(|(arm, p)| format!("WHEN {arm} THEN ({})", super::count_of(p)))
                .collect();
            format!("SELECT CASE {choice} {} END", whens.join(" "))
        }
        Select::Ids | Select::Rows => {
            let selects: Vec<String> = arms
                .iter()
                .enumerate()
                .map(|(arm, p)| {
                    let select = format!("SELECT {} FROM customers c WHERE {p}", select.columns());
                    // An arm of no list reads rows only where chosen: the
                    // limit, computed before the first row and before a
                    // set that drives is built (a test of the choice in
                    // the WHERE clause came after it: fixed-seed
                    // shape-157's ids, a region's set not chosen, 89 ms
                    // so and 49 ms without that arm).
                    if arm < guarded {
                        select
                    } else {
                        format!(
                            "SELECT * FROM ({select} LIMIT CASE WHEN {CHOSEN} = {arm} THEN -1 ELSE 0 END)"
                        )
                    }
                })
                .collect();
            format!(
                "WITH chosen(arm) AS MATERIALIZED (SELECT {choice}) {} ORDER BY 1",
                selects.join(" UNION ALL ")
            )
        }
    }
}

/// SQLite, `match = "all"` driven by the customers' own tests
/// ([`customers_drive`], or no positive block reads related rows), of
/// which several an index may serve
/// ([`own_indexed`]: the first [`MOST_DRIVERS`]): the query once per such
/// test, the others hidden from the planner ([`Builder::kept_index`]),
/// and the one run whose test the fewest of a sample's customers pass
/// ([`least`]; in the ids and rows, each arm's limit the choice), a key
/// without its index ([`custom_data_name`]: its segments never applied)
/// weighed as passed by more than the sample ([`NO_INDEX`]). The
/// planner cannot tell how many customers a list holds (it is read from a
/// JSON array, `json_each`), nor, without statistics, a range's: with
/// statistics it read a `seats > 3` range of a custom_data key's index
/// (47% of the customers) where `country in ["US"]` (34%) was the index to
/// read (seed `stop48` shape-087, the `all` its count takes away, 200,000
/// customers, CPU time: 150 ms so, 100 ms chosen). The 19 such counts of
/// two draws took 33 ms so and 49 ms chosen with statistics (the sample,
/// about 1 ms each), 136 ms and 46 ms without (fixed-seed shape-162 34 ms
/// -> 1); the most slowed, seed `stop46` shape-146, 9 -> 24 ms without
/// statistics: its `trial <= 1604`, which no customer of the sample passes,
/// reads a range of 32,000 booleans in the key's index (their type fails
/// the test), where its two countries hold 7,000 customers.
pub(super) fn chosen_index(filters: &[&Filter], today: NaiveDate, select: Select) -> Option<Query> {
    // Or no list might: no positive block reads related rows.
    let alone = classes(filters).1.is_none() && !own_unranged(filters);
    if !customers_drive(filters) && !alone {
        return None;
    }
    let tests = indexed_tests(filters);
    if tests.len() < 2 {
        return None;
    }
    let mut b = Builder::new(Dialect::Sqlite);
    let values: Vec<String> = tests
        .iter()
        .map(|(own, one)| index_weight(&mut b, own, one, today))
        .collect();
    let choice = least(&values);
    let mut arms: Vec<String> = Vec::new();
    for (own, _) in tests {
        b.kept_index = Some(own);
        arms.push(predicate(&mut b, MatchMode::All, filters.to_vec(), today));
    }
    Some(Query {
        merge_joins: false,
        sql: of_choice(&choice, &arms, 0, select),
        binds: b.binds,
    })
}

/// The positive customer blocks' own tests an index may serve
/// ([`own_indexed`]), the first [`MOST_DRIVERS`] of them, each once: every
/// block's ranges first, then the keys' `exists` (a key of both is a
/// candidate by its range).
fn indexed_tests(filters: &[&Filter]) -> Vec<(OwnTest, Filter)> {
    let mut found: Vec<(OwnTest, Filter)> =
        positive_customers(filters).flat_map(own_indexed).collect();
    found.sort_by_key(|(_, one)| {
        one.custom_data
            .values()
            .any(|c| *c == Condition::Exists(true))
    });
    let mut tests: Vec<(OwnTest, Filter)> = Vec::new();
    for (own, one) in found {
        if tests.len() < MOST_DRIVERS && !tests.iter().any(|(kept, _)| *kept == own) {
            tests.push((own, one));
        }
    }
    tests
}

/// The positive customer blocks' custom data tests no index range serves
/// whose customers are a set ([`unindexed_set`]: a `contains`, an
/// `ends_with`), of keys `indexed` has none of:
/// each set drives an arm of [`chosen_driver`], one scan of its key's index
/// ([`super::custom_data::custom_data`], the test kept); with `indexed`,
/// at most [`MOST_DRIVERS`].
fn key_sets(filters: &[&Filter], indexed: &[(OwnTest, Filter)]) -> Vec<(OwnTest, Filter)> {
    let mut sets: Vec<(OwnTest, Filter)> = Vec::new();
    for f in positive_customers(filters) {
        for (key, c) in f.custom_data.iter().filter(|(_, c)| unindexed_set(c)) {
            let read = |(kept, _): &(OwnTest, Filter)| match kept {
                OwnTest::Key(k) | OwnTest::Set(k, _) => k == key,
                OwnTest::Field(_) => false,
            };
            if indexed.len() + sets.len() < MOST_DRIVERS && !indexed.iter().chain(&sets).any(read) {
                sets.push((OwnTest::Set(key.clone(), c.clone()), key_test(key, c)));
            }
        }
    }
    sets
}

/// What reading the customers through the index of `own` (the block `one`
/// of that test alone) costs, in customers of the sample: those that pass
/// it. A key's index is made where its segments are applied: a segment
/// read from files only may have none, and its arm would scan the
/// customers ([`NO_INDEX`]).
fn index_weight(b: &mut Builder, own: &OwnTest, one: &Filter, today: NaiveDate) -> String {
    let passed = passed(b, one, today);
    let unindexed = match own {
        OwnTest::Key(key) | OwnTest::Set(key, _) => format!(
            " + CASE WHEN EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' \
             AND name = '{}') THEN 0 ELSE {NO_INDEX} END",
            custom_data_name(key)
        ),
        OwnTest::Field(_) => String::new(),
    };
    format!("{passed}{unindexed}")
}

/// Whether `filters`' related blocks are several of one table beside no
/// customer block but of the customer's own row and custom data: scanned,
/// the customers are probed in one pass over that table's rows grouped by
/// customer ([`super::all_of`]), which a list of them does not beat.
fn one_table(filters: &[&Filter]) -> bool {
    let related: Vec<FilterType> = filters
        .iter()
        .map(|f| f.filter_type)
        .filter(|t| *t != FilterType::Customer)
        .collect();
    related.len() > 1
        && related.iter().all(|t| *t == related[0])
        && filters
            .iter()
            .filter(|f| f.filter_type == FilterType::Customer)
            .all(|f| !f.negate && !related_fields(f))
}

/// How many customers of the sample pass the block `f` ([`asked_of_one`]).
fn passed(b: &mut Builder, f: &Filter, today: NaiveDate) -> String {
    super::sample::passing(&asked_of_one(b, f, today))
}

/// What an own test no index serves is weighed at in [`chosen_index`]: more
/// than a sample's customers, so that it keeps no arm where another may.
const NO_INDEX: u32 = 1000;

/// Where the first related block is of no driving class and no own test
/// of the customers is a set of custom data ([`chosen_driver`],
/// [`scanned_arm`]), what each customer scanned costs against one a list
/// holds: a `1 /` this. Of the 62 counts of six draws
/// of the shapes bench that such a choice changed (200,000 customers, CPU
/// time, by hand), those whose list a sample found to hold about half the
/// customers were as fast driven by it as scanned (the monitors of a name
/// other than `bandwidth` and a state other than `alerting`, beside a
/// negated monitor block: 99 ms driven, 74 ms scanned; those of a name not
/// in a list and a state other than `alerting` alone: 72 and 89 ms), and
/// those whose list held two thirds or more slower (the connected
/// connectors' links alone, 68%: 128 ms driven and 86 ms scanned). With
/// this weight (and none where one table's blocks are grouped,
/// [`one_table`]), 58 counts change: 7,331 ms scanned, 4,394 ms with the
/// choice (6,947 and 4,133 without statistics); their listings 7,585 and
/// 5,383 (7,257 and 5,268), though a listing whose choice is the customers
/// scanned sorts them once more (the union of the arms): those links' 92
/// -> 125 ms.
const UNCLASSED: u32 = 2;

/// What scanning the customers and building their custom data's sets costs
/// where that is a driver ([`scanned_arm`]), in customers of the sample a
/// list holds (each looked up by id and its JSON parsed): about a tenth.
const SCANNED_ARM: u32 = 12;

/// The positive customer blocks' own tests ([`own_form`]), which the
/// customers scanned pass before anything is looked up, where the customers
/// scanned are one arm of the choice (none where not): where a positive
/// customer block's custom data is a set when they are and tested in place
/// when a list drives ([`super::custom_data::custom_data`]), and their own
/// tests are of no index range (else they would not be scanned:
/// [`super::all_of`]). Not beside an equality or a substring of a customer
/// block's own columns ([`super::own_few`]), whose few customers read their
/// custom data in place. Each customer a list holds then parses its JSON
/// (about 0.4 µs), where a set is one read of the key's index (200,000
/// customers, CPU time): seed `stop46` shape-135, an active default method
/// (61% of the customers) and a region's suffix (44%), counted in
/// 108-118 ms driven by the methods' list and 70 ms scanned, the suffix's
/// set driving, each of its customers' default method looked up; so for a
/// block of one key's test alone beside another block's list (the suffix
/// beside the active payment methods: 118 ms driven by their list); and
/// where the own tests pass few, their set drives whatever the list holds
/// (fixed-seed shape-067, a `seats` suffix no customer has beside Stripe's
/// active methods, 55 ms driven by their list, 9 ms scanned).
fn scanned_arm(filters: &[&Filter]) -> Vec<Filter> {
    let sets =
        positive_customers(filters).any(|f| !f.custom_data.is_empty() && custom_sets(f, false));
    if !sets || !own_unranged(filters) {
        return Vec::new();
    }
    positive_customers(filters).filter_map(own_form).collect()
}
