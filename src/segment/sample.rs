//! SQLite: a sample of the customers, read where a query runs, so that the
//! query's form follows the shape of the data, not the compiler's guess:
//! the form of an `any`'s count ([`super::merge::count_any`]), the first
//! term of an OR or AND computed for every customer ([`first_chosen`]), and
//! the list that drives an `all` ([`least`], [`super::drive`]).

/// How many customers a sample holds at most: `SAMPLE` steps, even, from the
/// least row id of a customer to the greatest (by one where they span fewer:
/// then the first `SAMPLE` row ids); a step whose row is gone is missing from
/// the sample. A sample costs a lookup of a few pages per customer: 2-3 ms
/// (200,000 customers, CPU time, after a count).
const SAMPLE: u32 = 128;

/// The steps of a sample (`n`, read by [`rowids`]): the common table
/// expression that opens each sample's subquery of row ids.
fn steps() -> String {
    let last = SAMPLE - 1;
    format!("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})")
}

/// The row ids of a sample's customers, from its steps `n` ([`steps`]).
fn rowids() -> String {
    let (least, most) = (
        "(SELECT MIN(rowid) FROM customers)",
        "(SELECT MAX(rowid) FROM customers)",
    );
    format!("SELECT {least} + i * MAX(1, ({most} - {least}) / {SAMPLE}) FROM n")
}

/// Whether the share of a sample's customers that pass `test` is at least
/// (`at_least`) or at most `num` in `den`: a shape of the data, read where
/// the query runs, computed once. An empty sample (no customer, or none at
/// its steps) holds neither.
pub(super) fn share(test: &str, at_least: bool, num: u8, den: u8) -> String {
    shares(&[(test, at_least, num, den)])
}

/// Whether each of `shares` holds of one sample ([`share`]).
pub(super) fn shares(shares: &[(&str, bool, u8, u8)]) -> String {
    let holds: Vec<String> = shares
        .iter()
        .map(|(test, at_least, num, den)| holding(test, *at_least, *num, *den))
        .collect();
    holds_of_one(&holds)
}

/// Whether the share of a sample's customers that pass `test` is at least
/// (`at_least`) or at most `num` in `den`, said of the sample's customers
/// ([`holds_of_one`]).
pub(super) fn holding(test: &str, at_least: bool, num: u8, den: u8) -> String {
    let cmp = if at_least { ">=" } else { "<=" };
    format!("{den} * {} {cmp} {num} * COUNT(*)", passing(test))
}

/// How many of a sample's customers pass `test`, said of them
/// ([`holds_of_one`]).
pub(super) fn passing(test: &str) -> String {
    format!("TOTAL(CASE WHEN {test} THEN 1 ELSE 0 END)")
}

/// Whether each of `holds` (each said of a sample's customers: their
/// number, `COUNT(*)`, and [`passing`], [`holding`]) holds of one sample.
pub(super) fn holds_of_one(holds: &[String]) -> String {
    format!(
        "(SELECT COUNT(*) > 0 AND {} FROM customers c WHERE c.rowid IN ({} {}))",
        holds.join(" AND "),
        steps(),
        rowids()
    )
}

/// A term of an OR or AND that SQLite computes for every customer: its test, the
/// test as asked of one customer (`sample`: related rows looked up, custom
/// data read in place, nothing built for all customers), and what asking it
/// costs per customer, relative to the other terms' (`cost`).
pub(super) struct Term {
    pub(super) sql: String,
    pub(super) sample: String,
    pub(super) cost: u32,
}

/// The most terms an OR is reordered among ([`first_chosen`]): each order is
/// written out whole.
pub(super) const MOST_TERMS: usize = 5;

/// The most bytes of SQL the orders of one OR or AND may take
/// ([`first_chosen`]).
const MOST_TEXT: usize = 32_768;

/// SQLite: the OR (AND, `and`) of `terms`, the first the one that passes
/// (fails) the most of a sample's customers for its cost, the others in the
/// order given. SQLite asks an OR's terms in the order written and stops at
/// the first that passes (an AND's, at the first that fails), so a term
/// that decides for most customers, asked first, spares every other term's
/// work for them; which term that is, the data says, not the compiler. An
/// `any` of a customer block, a monitor block and a negated payment-method
/// block that no customer's methods match (200,000 customers, CPU time)
/// counted in 178 ms with the negated block last and 85-100 ms with it
/// first.
///
/// The choice is a query of the sample; each order is written out (SQLite
/// builds the lists and sets of the chosen order alone), all in one `CASE`
/// of the choice, which SQLite asks once per customer. Behind a test each
/// (`choice = i AND (…)`, as ORs were), the choice was asked once per order
/// up to the chosen one, for every customer: 10-12 ms an order over 200,000
/// customers (an `any` of links, a negated payment-method block and a
/// customer block, its second order chosen: 171 ms so, 152-156 ms in a
/// `CASE`, 138 ms the order alone; an AND of a monitor block and a negated
/// customer block of four tests: 64 ms behind tests, 45 ms in a `CASE`).
/// Each order is asked as a condition (`CASE WHEN … THEN 1 ELSE 0 END`,
/// false where the OR or AND is NULL, which no place it goes tells apart:
/// a negated block's tests are under `COALESCE(…, 0)`, a positive block's
/// a term of an OR or AND in a WHERE clause or an impact count's
/// `COALESCE`, an `all`'s or an `any`'s at the top of its WHERE clause or
/// under an impact count's `COALESCE`),
/// which stops at the first test that decides: as a value, SQLite skips an
/// AND's right side only where it has a subquery. Asked as values, the 29
/// ANDs of shapes-bench segments (seed `stop34`, 200,000 customers, CPU
/// time) counted in 2,061 ms, 1,904 so (one of a custom_data test, a
/// negated customer block and a lookup 62 ms, 38 so); the 33 ORs of the
/// fixed seed's counted in 3,520 ms behind tests, 3,217 so. Of two sides of an
/// AND or OR, SQLite asks first one without a subquery when the other has
/// one: a test of the customer's row alone comes first in any order, where
/// it costs least. An empty sample keeps the
/// order given, and so does a list of one term, of more than
/// [`MOST_TERMS`], not `choose`n, or whose orders would take more than
/// [`MOST_TEXT`] bytes of SQL (an OR's order holds its negated blocks'
/// orders: the text is bounded at each level).
pub(super) fn first_chosen(terms: &[Term], choose: bool, and: bool) -> String {
    let k = terms.len();
    let order = |first: usize| {
        std::iter::once(first)
            .chain((0..k).filter(|j| *j != first))
            .filter_map(|j| terms.get(j).map(|t| t.sql.as_str()))
            .collect::<Vec<_>>()
            .join(if and { " AND " } else { " OR " })
    };
    let text: usize = terms.iter().map(|t| t.sql.len() + t.sample.len()).sum();
    if !choose || !(2..=MOST_TERMS).contains(&k) || k * text > MOST_TEXT {
        return order(0);
    }
    let choice = choice(terms, and);
    let asked = |i: usize| format!("CASE WHEN {} THEN 1 ELSE 0 END", order(i));
    let whens: Vec<String> = (0..k - 1)
        .map(|i| format!("WHEN {i} THEN ({})", asked(i)))
        .collect();
    format!(
        "CASE {choice} {} ELSE ({}) END",
        whens.join(" "),
        asked(k - 1)
    )
}

/// The index of the term of `terms` (at least two) that passes (fails,
/// `and`) the most of a sample's customers for its cost, the first of the
/// best: a query of the sample, computed once where it is asked. An empty
/// sample chooses the first.
fn choice(terms: &[Term], and: bool) -> String {
    let k = terms.len().max(1);
    let shares: Vec<String> = terms
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (pass, fail) = if and { (0, 1) } else { (1, 0) };
            format!(
                "TOTAL(CASE WHEN {} THEN {pass} ELSE {fail} END) AS s{i}",
                t.sample
            )
        })
        .collect();
    // Term i is first when its share per cost is at least each later term's
    // (the first of the best): s_i / cost_i >= s_j / cost_j.
    let whens: Vec<String> = terms
        .iter()
        .enumerate()
        .take(k - 1)
        .map(|(i, t)| {
            let beats: Vec<String> = terms
                .iter()
                .enumerate()
                .skip(i + 1)
                .map(|(j, u)| format!("s{i} * {} >= s{j} * {}", u.cost, t.cost))
                .collect();
            format!("WHEN {} THEN {i}", beats.join(" AND "))
        })
        .collect();
    of_sample(&whens, k - 1, &shares)
}

/// SQLite: the index of the least of `values` (at least two; each an
/// expression of `TOTAL`s over a sample's customers), the first of the
/// least: a query of the sample, computed once where it is asked.
pub(super) fn least(values: &[String]) -> String {
    let k = values.len().max(1);
    let columns: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{v} AS v{i}"))
        .collect();
    let whens: Vec<String> = (0..k - 1)
        .map(|i| {
            let beats: Vec<String> = (i + 1..k).map(|j| format!("v{i} <= v{j}")).collect();
            format!("WHEN {} THEN {i}", beats.join(" AND "))
        })
        .collect();
    of_sample(&whens, k - 1, &columns)
}

/// The `CASE` of `whens` (else `last`) over the `columns` of a sample's
/// customers.
fn of_sample(whens: &[String], last: usize, columns: &[String]) -> String {
    format!(
        "(SELECT CASE {} ELSE {last} END FROM (SELECT {} FROM customers c WHERE c.rowid IN ({} {})))",
        whens.join(" "),
        columns.join(", "),
        steps(),
        rowids()
    )
}

#[cfg(test)]
mod tests {
    use super::{Term, first_chosen};

    /// The term the sample shows passes (of an AND: fails) most for its
    /// cost is asked first, and the others only of the customers it fails
    /// (passes): a term that fails
    /// when asked (`json(c.id)` is malformed JSON) is never asked where a term
    /// every customer passes comes first. The count is the OR's whatever
    /// the order. Too long, the orders are not written.
    #[tokio::test]
    async fn the_term_most_customers_pass_for_its_cost_is_asked_first() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:")
            .await
            .expect("a database");
        let run = |sql: String| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&pool)
                    .await
            }
        };
        sqlx::query("CREATE TABLE customers (id TEXT, flag INTEGER)")
            .execute(&pool)
            .await
            .expect("a table");
        let term = |sql: &str, sample: &str, cost: u32| Term {
            sql: format!("({sql})"),
            sample: sample.to_string(),
            cost,
        };
        let failing = || term("json(c.id) IS NOT NULL", "0", 1);
        let count = |terms: &[Term], choose: bool| {
            format!(
                "SELECT COUNT(*) FROM customers c WHERE {}",
                first_chosen(terms, choose, false)
            )
        };
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
             INSERT INTO customers SELECT 'cus_' || i, 1 FROM n",
        )
        .execute(&pool)
        .await
        .expect("customers");
        let passing = || term("c.flag = 1", "c.flag = 1", 4);
        // Every customer passes the second term, which comes first: the
        // first is never asked, even at four times its cost.
        for terms in [
            vec![failing(), passing()],
            vec![failing(), term("c.flag = 2", "c.flag = 2", 1), passing()],
        ] {
            assert_eq!(run(count(&terms, true)).await.ok(), Some(1000));
            // Not chosen, the order is as given, and the failing term asked.
            assert!(run(count(&terms, false)).await.is_err());
        }
        // Orders too long to write out: the order given.
        let long = format!("c.flag = 1 /* {} */", "x".repeat(super::MOST_TEXT / 2));
        let terms = [failing(), term(&long, "c.flag = 1", 4)];
        assert!(run(count(&terms, true)).await.is_err());
        // A term few pass, cheap, beside one most pass, dear: the dear one
        // first (1 of the sample per 1 against 127 per 4), and the cheap one
        // asked of the one customer it fails alone (it fails when asked of
        // any other).
        sqlx::query("UPDATE customers SET flag = 2 WHERE id = 'cus_1'")
            .execute(&pool)
            .await
            .expect("one customer");
        let few = || {
            term(
                "c.flag = 2 OR json(CASE WHEN c.flag = 2 THEN '1' ELSE c.id END) IS NOT NULL",
                "c.flag = 2",
                1,
            )
        };
        assert_eq!(run(count(&[few(), passing()], true)).await.ok(), Some(1000));
        assert!(run(count(&[few(), passing()], false)).await.is_err());
        // An AND: the term that fails most customers for its cost first
        // (every one but cus_1 fails `flag = 2`), the others asked of
        // those it passes alone.
        // Asked as a value, as a negated block's tests are (`NOT
        // COALESCE(…)`): a WHERE clause's AND may be asked in another order.
        let and = |terms: &[Term], choose: bool| {
            format!(
                "SELECT COUNT(*) FROM customers c WHERE COALESCE({}, 0)",
                first_chosen(terms, choose, true)
            )
        };
        // Whether or not its sides have a subquery (as a block's tests of
        // lists, sets and related rows do): each order is asked as a
        // condition, which stops at the first test that fails (as a value,
        // SQLite skips an AND's right side only where that side has one).
        for (fails, asked_of_cus_1) in [
            (
                "c.flag = 2 AND (SELECT 1)",
                "json((SELECT CASE WHEN c.flag = 2 THEN '1' ELSE c.id END)) IS NOT NULL",
            ),
            (
                "c.flag = 2",
                "json(CASE WHEN c.flag = 2 THEN '1' ELSE c.id END) IS NOT NULL",
            ),
        ] {
            let terms = [term(asked_of_cus_1, "1", 1), term(fails, "c.flag = 2", 4)];
            assert_eq!(run(and(&terms, true)).await.ok(), Some(1));
            assert!(run(and(&terms, false)).await.is_err());
        }
    }
}
