//! custom_data conditions: a key's value compared by its JSON type.

use super::builder::{Driver, OwnTest, Scope};
use super::sample::share;
use super::{Bind, Builder, Dialect, PREFIX_CHARS};
use crate::model::{Condition, CustomDataKey, Op, Scalar};

/// A custom_data key compared by JSON type (SPEC §2.3). A missing key or NULL
/// custom data may make the test NULL: that is false at the top and inside
/// `match = "any"`, a negated block turns NULL into false before its NOT,
/// and a plan's impact counts do before they compare two sides.
///
/// SQLite, where the test is computed for every customer ([`Builder::per_row`]:
/// a negated block's, an impact's, a block's under `match = "any"`; or a
/// positive block's at the top of an `all` whose customers are scanned,
/// [`Builder::everyone`]) over all of them ([`Scope::All`]), and neither the customers drive
/// ([`Driver::Customers`]) nor a test of the block's own columns leaves few
/// (`sets` false: an equality or a substring on its own columns): the
/// test is the set of the customers that pass it, read once from the key's
/// index (the row ids whose value passes), and probed per customer. In place
/// it parses each customer's JSON (0.35-0.45 µs a customer, 70 ms for
/// 200,000), where a scan of the key's index and a probe of the set cost a
/// few: an `any` of a negated `plan contains "arte"`, a monitor and a
/// connector block (200,000 customers, CPU time) counted in 185 ms so and
/// 139 ms this way; a negated block of `seats ends_with` and `trial ne`
/// beside invoice blocks 128 ms and 72 ms (76 segments with a negated
/// custom_data test, drawn by the shapes bench: 6% less time in all). Under
/// `any`, an OR of `region exists` with `trial contains`, and of `trial
/// starts_with` counted in 87 ms in place and 13 ms so; beside `country =
/// "FR"`, whose few customers parse their JSON in place (52 ms), the sets
/// took 104 ms. At the top of an `all`, a key's test in place is read
/// from its index only when the query reads nothing else of the customer:
/// fixed-seed shape-088, a customer block of `region contains` and `trial
/// exists` beside a negated monitor block, counted in 114 ms in place (each
/// customer's JSON parsed) and 96 ms so; the shapes bench's fixed seed, its
/// counts' ratios summed, 227.5 -> 211.2 with statistics and 230.5 -> 228.2
/// without (with the merged count of [`super::merge::count_any`]'s
/// customer blocks of related rows).
/// Where most customers may pass (`ne`, `not_in`, `exists`) the set is of
/// those that fail: whose value is missing or passes the positive test (an
/// equality, a list), which the key's index finds, an equality each; asked
/// as `NOT COALESCE(test, 0)`, the test read every value the index holds
/// (`seats not_in ["emea"]` on 200,000 customers: the set built in 19 ms
/// so, 0.35 ms this way; fixed-seed shape-055, an `any` of it and three
/// other blocks, counted in 127-129 ms and 108-111 ms). Where at most half
/// a sample of the customers have the key ([`share`]), most fail for want
/// of it, and the set is of those that pass: one range of the key's index,
/// every value (`trial not_in ["APAC", false]`, a key 16% of the demo
/// customers have: its failing set of 180,000 customers took 67 ms to build
/// and probe, its passing set of 20,000 21-30 ms; seed `stop37` shape-029
/// counted in 130-135 ms and 106-109). The set is built
/// when the test is first asked, so a query whose other tests leave no
/// customer builds none. Elsewhere the
/// value is tested in place, where the key's index may drive (a set drives
/// by looking each of its customers up: `exists` counted in 48 ms so, 6 ms
/// scanning the index), and where the query is about one customer or a
/// window of them. A key's `exists` that drives the query (a positive
/// block's test an index may serve, kept: [`Builder::kept_index`]) is
/// the range of every value of its index (`IS NOT NULL` is no range to
/// SQLite's planner):
/// seed `stop58a` shape-163, `trial exists` (16% of the customers) and
/// `seats lt 1604` (most of them) beside a negated customer block
/// (200,000 customers, CPU time, by hand), counted in 188-252 ms with
/// the customers scanned or the `seats` range read, 82-88 ms so (listed in
/// 180-246 ms and 94-98 ms).
pub(super) fn custom_data(
    b: &mut Builder,
    key: &CustomDataKey,
    c: &Condition,
    sets: bool,
) -> String {
    // Kept to drive, of the positive block's tests (not one computed for
    // every customer, a negated block's).
    let kept = matches!(&b.kept_index, Some(OwnTest::Key(k)) if k == key) && !b.per_row;
    match b.dialect {
        Dialect::Sqlite if kept && *c == Condition::Exists(true) => {
            every_value("c", &custom_data_path(key))
        }
        // Kept to drive, a test no index range serves: the set of the
        // customers that pass it ([`super::drive::chosen_driver`]).
        Dialect::Sqlite
            if !b.per_row
                && matches!(&b.kept_index, Some(OwnTest::Set(k, kc)) if k == key && kc == c) =>
        {
            passing_set(b, key, c)
        }
        Dialect::Sqlite if as_set(b, sets) => {
            // Most customers may pass a `ne`, a `not_in` or an `exists`: the
            // set is then of those that fail it, unless few have the key
            // (below).
            let positive = match c {
                Condition::Compare(Op::Ne, v) => Some(Condition::Compare(Op::Eq, v.clone())),
                Condition::List(Op::NotIn, values) => Some(Condition::List(Op::In, values.clone())),
                Condition::Exists(true) => None,
                _ => return passing_set(b, key, c),
            };
            // Where at most half a sample of the customers have the key, the
            // set of those that pass instead: the values the key's index
            // holds (one range: every number, then every text, sorts after
            // NULL and from minus infinity on) that pass the test.
            let passing = custom_data_sqlite(b, key, c, "cx");
            let present = custom_data_sqlite(b, key, &Condition::Exists(true), "c");
            let path = custom_data_path(key);
            let few = share(&present, false, 1, 2);
            let passing = set_of(b, &format!("{} AND {passing}", every_value("cx", &path)));
            // Of a term of a top AND alone (the query's, or a set's own
            // subquery), where a set may drive: not one under an `any`'s OR
            // or a negated block's NOT.
            if !b.per_row
                && let Some(bare) = &mut b.bare_key
            {
                let alone = bare.at == Some(bare.samples.len());
                bare.samples.push(few.clone());
                if alone {
                    return passing;
                }
            }
            let missing = custom_data_sqlite(b, key, &Condition::Exists(false), "cx");
            let failing = match positive {
                Some(positive) => format!(
                    "{missing} OR {}",
                    custom_data_sqlite(b, key, &positive, "cx")
                ),
                None => missing,
            };
            format!(
                "CASE WHEN {few} THEN {passing} ELSE c.rowid NOT IN (SELECT cx.rowid FROM customers cx WHERE {failing}) END"
            )
        }
        Dialect::Sqlite => custom_data_sqlite(b, key, c, "c"),
        Dialect::Postgres => custom_data_postgres(b, key, c),
    }
}

/// SQLite: whether the customer `alias` has a value of the key at `path`,
/// as the range of every value of its index (every number, then every
/// text, sorts after NULL and from minus infinity on), which `IS NOT NULL`
/// is not to the planner.
fn every_value(alias: &str, path: &str) -> String {
    format!("json_extract({alias}.custom_data, {path}) >= -{INFINITY}")
}

/// SQLite: the customers (aliased `cx`) that pass `test`, a set the
/// customer is in; one the planner may not drive from where the query
/// asks ([`Builder::probed_sets`]).
fn set_of(b: &Builder, test: &str) -> String {
    let probed = if b.probed_sets { "+" } else { "" };
    format!("{probed}c.rowid IN (SELECT cx.rowid FROM customers cx WHERE {test})")
}

/// SQLite: the customers (aliased `cx`) that pass the test `c` of `key`,
/// a set the customer is in ([`super::read_through_index`]), or one that
/// drives ([`super::drive::chosen_driver`]).
pub(super) fn passing_set(b: &mut Builder, key: &CustomDataKey, c: &Condition) -> String {
    let test = custom_data_sqlite(b, key, c, "cx");
    set_of(b, &test)
}

/// Whether [`custom_data`] tests a key as a set of the customers that pass
/// or of those that fail (SQLite, computed for every customer or asked of
/// every customer scanned, `sets`): see there.
pub(super) fn as_set(b: &Builder, sets: bool) -> bool {
    b.dialect == Dialect::Sqlite
        && sets
        && (b.per_row || b.everyone)
        && matches!(b.scope, Scope::All)
        && b.driver != Driver::Customers
}

/// The JSON path of a top-level custom_data key, as SQL text. Validation only
/// admits keys without quotes, backslashes and control characters, so the key
/// is written into the path literal: that lets SQLite use the expression index
/// segd keeps for each key its segments use (`custom_data_index_sql`).
pub fn custom_data_path(key: &CustomDataKey) -> String {
    format!("'$.\"{}\"'", key.as_str())
}

/// The name of what segd keeps for one custom_data key: its SQLite index,
/// the stem of its PostgreSQL statistics.
pub(super) fn custom_data_name(key: &CustomDataKey) -> String {
    format!("segd_cd_{}", &crate::plan::sha256_hex(key.as_str())[..16])
}

/// The index that serves conditions on one custom_data key (SQLite).
pub fn custom_data_index_sql(key: &CustomDataKey) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS {} ON customers (json_extract(custom_data, {}))",
        custom_data_name(key),
        custom_data_path(key)
    )
}

/// PostgreSQL: statistics of the expressions [`custom_data_postgres`] tests
/// one custom_data key with (its value, its text and its JSON type), each
/// with its name, so that the planner estimates a test from the data. Without
/// them it guessed each: `seats > 3` (`jsonb_typeof(…) = 'number'` at 0.5%
/// and the comparison at a third) kept 314 of 200,000 customers where 92,000
/// passed, and it looked each one's default payment method up in turn. The
/// key is written into the text (validation admits no quote in it). The
/// queries bind it, and meet these expressions because segd's statements
/// are unnamed, planned with their values (`persistent(false)`): the key is
/// a constant there.
pub fn custom_data_statistics_sql(key: &CustomDataKey) -> [(String, String); 3] {
    let stem = custom_data_name(key);
    let value = format!("custom_data -> '{}'", key.as_str());
    [
        ("value", value.clone()),
        ("text", format!("custom_data ->> '{}'", key.as_str())),
        ("type", format!("jsonb_typeof({value})")),
    ]
    .map(|(what, expr)| {
        let name = format!("{stem}_{what}");
        let sql = format!("CREATE STATISTICS IF NOT EXISTS {name} ON ({expr}) FROM customers");
        (name, sql)
    })
}

/// SQLite: every test is first a test of `json_extract` (the key's value as
/// an SQL value: NULL when missing or JSON null, text for a string, an array
/// or an object, an integer or a real for a number, 1 or 0 for `true` or
/// `false`), which the expression index segd keeps for each key holds: an
/// index range serves an equality, a list or a range, and a count of tests
/// of one key scans that index, not the customers' rows. `json_type` is
/// asked only where the value cannot tell the JSON type apart (a 0 or 1 may
/// be a boolean; a text starting with `[` or `{` an array or object), and
/// of the customer's row looked up by its row id, so that the tests keep to
/// what the index holds. Asked of every row, `json_type` made a substring
/// test read every row: a count of `region contains "amer"` took 70 ms on
/// 200,000 customers, 15 ms so (CPU time; a full scan of the customers
/// 11 ms); `json_type … IS NOT NULL` took 72 ms, `json_extract … IS NOT
/// NULL` 6.9 ms.
fn custom_data_sqlite(b: &mut Builder, key: &CustomDataKey, c: &Condition, alias: &str) -> String {
    let path = custom_data_path(key);
    let val = format!("json_extract({alias}.custom_data, {path})");
    let ty = format!(
        "(SELECT json_type(cj.custom_data, {path}) FROM customers cj WHERE cj.rowid = {alias}.rowid)"
    );
    let typed_number = format!("{ty} IN ('integer', 'real')");
    // A number: of the SQL type of one (not text: a string, an array or an
    // object), and only a 0 or 1 may be a boolean.
    let number =
        format!("typeof({val}) IN ('integer', 'real') AND ({val} NOT IN (0, 1) OR {typed_number})");
    let eq = |b: &mut Builder, v: &Scalar| -> String {
        match v {
            Scalar::Str(s) => {
                let p = b.text(s);
                if s.starts_with(['[', '{']) {
                    format!("({val} = {p} AND {ty} = 'text')")
                } else {
                    format!("{val} = {p}")
                }
            }
            Scalar::Int(i) => {
                let p = b.bind(Bind::Int(*i));
                if *i == 0 || *i == 1 {
                    format!("({val} = {p} AND {typed_number})")
                } else {
                    format!("{val} = {p}")
                }
            }
            Scalar::Float(x) => {
                let p = b.bind(Bind::Float(*x));
                if *x == 0.0 || *x == 1.0 {
                    format!("({val} = {p} AND {typed_number})")
                } else {
                    format!("{val} = {p}")
                }
            }
            Scalar::Bool(true) => format!("({val} = 1 AND {ty} = 'true')"),
            Scalar::Bool(false) => format!("({val} = 0 AND {ty} = 'false')"),
            Scalar::Time(_) => b.false_().to_string(),
        }
    };
    // A list: its plain strings and finite numbers as one JSON array, read as
    // a set of SQL values of the classes `json_extract` gives (a JSON string is
    // text, never equal to a number); the values `eq` must ask `json_type`
    // about (a 0 or 1, a text starting with `[` or `{`, a boolean) one by one.
    let list = |b: &mut Builder, values: &[Scalar]| -> String {
        let (mut plain, mut parts) = (Vec::new(), Vec::new());
        for v in values {
            match plain_json(v) {
                Some(json) => plain.push(json),
                None => parts.push(eq(b, v)),
            }
        }
        if !plain.is_empty() {
            let p = b.text(&serde_json::Value::from(plain).to_string());
            parts.insert(0, format!("{val} IN (SELECT value FROM json_each({p}))"));
        }
        format!("({})", parts.join(" OR "))
    };
    // "Present and not": a comparison of the value alone (no `json_type`,
    // which is false, not NULL, for a JSON null) is NULL when the value is
    // missing, and NOT keeps it NULL, which no test passes (see
    // [`custom_data`]), so it needs no `IS NOT NULL`, a second read of the
    // value per customer. An `any` of a `not_in` most customers pass and
    // three other tests (200,000 customers, CPU time) took 123-150 ms with
    // it, 106 ms so. (A test of an instant reads nothing: it is false.)
    let not = |test: String| {
        if test.contains(&val) && !test.contains(&ty) {
            format!("NOT {test}")
        } else {
            format!("{val} IS NOT NULL AND NOT {test}")
        }
    };
    match c {
        Condition::Exists(true) => format!("{val} IS NOT NULL"),
        Condition::Exists(false) => format!("{val} IS NULL"),
        Condition::Compare(Op::Eq, v) => eq(b, v),
        Condition::Compare(Op::Ne, v) => not(eq(b, v)),
        Condition::List(op, values) => {
            let any = list(b, values);
            if *op == Op::NotIn { not(any) } else { any }
        }
        // A string: text, unless it starts like an array or an object. The
        // test first: the type is asked of the values it passes (listing
        // the members of `region contains "amer"`, 200,000 customers, took
        // 113 ms so, 122 ms with the type first).
        //
        // A prefix of [`PREFIX_CHARS`] characters or more (ending in an
        // ASCII character) is first a range of texts that holds those it
        // starts (see [`prefix_range`]), which the key's index serves: the
        // customers of `region starts_with "apac"` (20,000 of 200,000) took
        // 140 ms as a scan of every customer's custom data, 22 ms so (CPU
        // time). A shorter one may start most values: an index range would
        // look most customers up one by one.
        Condition::Compare(op @ (Op::Contains | Op::StartsWith | Op::EndsWith), Scalar::Str(s)) => {
            let upper = (*op == Op::StartsWith).then(|| prefix_upper(s)).flatten();
            let range = match upper {
                Some(upper) => {
                    let (low, high) = (b.text(s), b.text(&upper));
                    format!("{val} >= {low} AND {val} < {high} AND ")
                }
                None => String::new(),
            };
            let test = b.string_op(&val, *op, s);
            format!(
                "{range}{test} AND typeof({val}) = 'text' AND (substr({val}, 1, 1) NOT IN ('[', '{{') OR {ty} = 'text')"
            )
        }
        // The range first (an index range may serve it), then the number
        // check (the JSON type asked of a 0 or 1 alone). The
        // range is bounded on both sides, by the other infinity: it holds
        // the numbers alone (text sorts after them), and SQLite without
        // statistics takes a range with two bounds for a sixteenth of the
        // customers, one with a single bound for a quarter. For a quarter
        // it listed the members of a custom_data range that holds none by
        // scanning every customer in id order, to spare a sort (85 ms on
        // 200,000 customers, through the key's index 0.1 ms). An inclusive
        // range is a BETWEEN, which reads the value once before the check;
        // a strict one reads its second bound last, only for the rows the
        // rest admits.
        Condition::Compare(op @ (Op::Gt | Op::Gte | Op::Lt | Op::Lte), v) => {
            let p = match v {
                Scalar::Int(i) => b.bind(Bind::Int(*i)),
                Scalar::Float(x) => b.bind(Bind::Float(*x)),
                _ => return b.false_().to_string(),
            };
            match op {
                Op::Gte => format!("{val} BETWEEN {p} AND {INFINITY} AND {number}"),
                Op::Lte => format!("{val} BETWEEN -{INFINITY} AND {p} AND {number}"),
                Op::Gt => format!("{val} > {p} AND {number} AND {val} <= {INFINITY}"),
                _ => format!("{val} < {p} AND {number} AND {val} >= -{INFINITY}"),
            }
        }
        Condition::Compare(..) => b.false_().to_string(),
    }
}

/// SQLite: a value of an `in` list of a custom_data key as the JSON of one
/// array the key's value is looked up in (`json_each`), where its value is
/// all it needs to match: not 0 or 1 (`true` and `false` read as such), a
/// boolean, or a text that starts like an array or an object, each tested
/// with its JSON type beside (an OR of the list's terms).
fn plain_json(v: &Scalar) -> Option<serde_json::Value> {
    match v {
        Scalar::Str(s) if !s.starts_with(['[', '{']) => Some(serde_json::Value::from(s.as_str())),
        Scalar::Int(i) if *i != 0 && *i != 1 => Some(serde_json::Value::from(*i)),
        Scalar::Float(x) if x.is_finite() && *x != 0.0 && *x != 1.0 => {
            Some(serde_json::Value::from(*x))
        }
        _ => None,
    }
}

/// SQLite: whether a test `c` of a custom_data key reads one range of the
/// key's index: an equality, a range, a prefix that is a range
/// ([`prefix_upper`]), an `in` list of one value or of [`plain_json`]
/// values only (with others it is an OR of several terms, which the
/// planner read as a scan of the customers).
pub(super) fn one_index_range(c: &Condition) -> bool {
    match c {
        Condition::List(Op::In, values) => {
            values.len() <= 1 || values.iter().all(|v| plain_json(v).is_some())
        }
        Condition::Compare(Op::StartsWith, Scalar::Str(p)) => prefix_upper(p).is_some(),
        Condition::Compare(Op::Eq | Op::Gt | Op::Gte | Op::Lt | Op::Lte, _) => true,
        _ => false,
    }
}

/// The upper bound of the range of texts a custom_data prefix reads from
/// its key's index: of one of [`PREFIX_CHARS`] characters or more, ending
/// in an ASCII character ([`prefix_range`]); `None` where the prefix is
/// tested alone.
fn prefix_upper(prefix: &str) -> Option<String> {
    (prefix.chars().count() >= PREFIX_CHARS)
        .then(|| prefix_range(prefix))
        .flatten()
}

/// A text above every text that starts with `prefix` (which sort from
/// `prefix` on): `prefix` with its last character made the next one, when
/// that is an ASCII character below DEL; none otherwise. SQLite compares
/// texts by their bytes (BINARY collation) in the database's encoding: two
/// ASCII characters one apart differ by one in their one byte (UTF-8) or
/// their low byte (UTF-16), so the order holds in every encoding, where
/// the next of another character may carry into a higher byte.
fn prefix_range(prefix: &str) -> Option<String> {
    let last = prefix.chars().last().filter(|c| *c < '\x7F')?;
    let next = char::from(u8::try_from(last).ok()? + 1);
    Some(format!("{}{next}", &prefix[..prefix.len() - 1]))
}

/// SQLite reads a number too large for a double as infinity.
const INFINITY: &str = "9e999";

/// PostgreSQL: values compare as jsonb (typed: a string is never equal to
/// a number), so a customer's value is never cast from text. Each test
/// reads the key's value as few times as it can, and compares it with
/// constants: the
/// statement is planned with its values, so a value or a list bound as text
/// is cast to jsonb once, when it is planned, not per customer. A key is
/// present when it holds a value other than JSON null: its text (`->>`),
/// NULL for a JSON null and where the key is missing, is not NULL. The
/// text is read from the stored value; the value (`->`) is a copy of it,
/// compared as jsonb: on 200,000 customers (best of 5, one process, a
/// scan of the customers 17 ms), `value <> 'null'` took 67 ms, `text IS
/// NOT NULL` 43; seed `stop45` shape-126, an `any` whose customer block
/// of two keys, each present and not something, most customers pass,
/// 209 -> 160 ms. On 200,000 customers (best of 5): `plan not_in` a list
/// of three counted in 110 ms as `jsonb_typeof(…) IS NOT NULL AND
/// jsonb_typeof(…) <> 'null' AND NOT … IN (SELECT jsonb_array_elements(…))`,
/// 60 ms so; an equality's object built per customer
/// (`jsonb_build_object`) cost 20 ms more than one constant; fixed-seed
/// shape-117's customer tests 321 and 271 ms.
fn custom_data_postgres(b: &mut Builder, key: &CustomDataKey, c: &Condition) -> String {
    let k = b.text(key.as_str());
    let val = format!("(c.custom_data ->> {k})");
    let json_val = format!("(c.custom_data -> {k})");
    let present = format!("{val} IS NOT NULL");
    // Containment can use the GIN index on custom_data. Below the top level
    // it also compares JSON types (an array holding the value does not
    // contain it), so it is exactly typed equality.
    let contains = |b: &mut Builder, v: &Scalar| -> String {
        let Some(json) = scalar_json(v) else {
            return b.false_().to_string();
        };
        let object = serde_json::json!({ key.as_str(): json });
        let p = b.text(&object.to_string());
        format!("c.custom_data @> CAST({p} AS jsonb)")
    };
    // A list: an array of jsonb, each value bound as its JSON text; jsonb
    // equality is typed, like containment, and the values may mix types.
    let list = |b: &mut Builder, values: &[Scalar], not: bool| -> String {
        let json: Vec<String> = values
            .iter()
            .filter_map(scalar_json)
            .map(|v| v.to_string())
            .collect();
        let p = b.bind(Bind::Texts(json));
        let (op, all) = if not { ("<>", "ALL") } else { ("=", "ANY") };
        format!("{json_val} {op} {all}(CAST({p} AS jsonb[]))")
    };
    match c {
        Condition::Exists(true) => present,
        Condition::Exists(false) => format!("{val} IS NULL"),
        Condition::Compare(Op::Eq, v) => contains(b, v),
        Condition::Compare(Op::Ne, v) => format!("{present} AND NOT {}", contains(b, v)),
        Condition::List(op, values) if *op == Op::NotIn => {
            format!("{present} AND {}", list(b, values, true))
        }
        Condition::List(_, values) => list(b, values, false),
        Condition::Compare(op @ (Op::Contains | Op::StartsWith | Op::EndsWith), Scalar::Str(s)) => {
            let test = b.string_op(&val, *op, s);
            format!("jsonb_typeof({json_val}) = 'string' AND {test}")
        }
        Condition::Compare(op @ (Op::Gt | Op::Gte | Op::Lt | Op::Lte), v) => {
            let json = match v {
                Scalar::Int(i) => serde_json::Value::from(*i),
                Scalar::Float(x) => serde_json::Value::from(*x),
                _ => return b.false_().to_string(),
            };
            let p = b.text(&json.to_string());
            format!(
                "jsonb_typeof({json_val}) = 'number' AND {json_val} {} CAST({p} AS jsonb)",
                cmp(*op)
            )
        }
        Condition::Compare(..) => b.false_().to_string(),
    }
}

/// A value as JSON, as custom data holds it; none for an instant or a
/// number JSON cannot hold (validation admits neither in custom data).
fn scalar_json(v: &Scalar) -> Option<serde_json::Value> {
    match v {
        Scalar::Str(s) => Some(serde_json::Value::from(s.as_str())),
        Scalar::Int(i) => Some(serde_json::Value::from(*i)),
        Scalar::Float(x) if x.is_finite() => Some(serde_json::Value::from(*x)),
        Scalar::Bool(x) => Some(serde_json::Value::Bool(*x)),
        Scalar::Float(_) | Scalar::Time(_) => None,
    }
}

fn cmp(op: Op) -> &'static str {
    match op {
        Op::Gt => ">",
        Op::Gte => ">=",
        Op::Lt => "<",
        _ => "<=",
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_range;
    use crate::segment::{Dialect, Select, compile};
    use proptest::prelude::*;

    /// PostgreSQL reads whether a key is present from its text (`->>`,
    /// NULL for a JSON null and a missing key), not from a copy of its
    /// value compared as jsonb (`-> … <> 'null'`, half again as slow): for
    /// `exists`, either way, and beside `ne` and `not_in`.
    #[test]
    fn postgres_reads_presence_from_the_keys_text() {
        for test in [
            "{ exists = true }",
            "{ exists = false }",
            "{ ne = \"pro\" }",
            "{ not_in = [\"pro\", 3] }",
        ] {
            let seg = crate::validate::stored_segment(&format!(
                "[segment]\nname = \"s\"\n[[filter]]\ntype = \"customer\"\ncustom_data = {{ plan = {test} }}\n"
            ))
            .unwrap_or_else(|e| panic!("{e}"));
            let sql = compile(
                &seg,
                Dialect::Postgres,
                chrono::DateTime::UNIX_EPOCH,
                Select::Count,
            )
            .sql;
            assert!(!sql.contains("'null'"), "{test}: {sql}");
            assert!(
                sql.contains("(c.custom_data ->> $1) IS NOT NULL")
                    || sql.contains("(c.custom_data ->> $1) IS NULL"),
                "{test}: {sql}"
            );
        }
    }

    #[test]
    fn a_prefix_range_ends_at_the_next_of_its_last_character_if_ascii() {
        assert_eq!(prefix_range("apac").as_deref(), Some("apad"));
        assert_eq!(prefix_range("ümea").as_deref(), Some("ümeb"));
        assert_eq!(prefix_range("a~").as_deref(), Some("a\x7F"));
        assert_eq!(prefix_range("a\x7F"), None);
        assert_eq!(prefix_range("caÿ"), None);
        assert_eq!(prefix_range(""), None);
    }

    /// The bytes of `s` in UTF-16, little- and big-endian.
    fn utf16(s: &str) -> [Vec<u8>; 2] {
        let units: Vec<u16> = s.encode_utf16().collect();
        [
            units.iter().flat_map(|u| u.to_le_bytes()).collect(),
            units.iter().flat_map(|u| u.to_be_bytes()).collect(),
        ]
    }

    proptest! {
        /// A text that starts with a prefix sorts from the prefix on and
        /// below its range's end, by its bytes in UTF-8 and in UTF-16 (both
        /// byte orders): every encoding SQLite may store text in.
        #[test]
        fn texts_that_start_with_a_prefix_sort_within_its_range(
            prefix in "[a~\x7F\\x{FF}\\x{1FF}\\x{10FFFF}]{0,4}|\\PC{0,4}",
            rest in "[a\\x{FF}\\x{10FFFF}]{0,3}|\\PC{0,3}",
        ) {
            let text = format!("{prefix}{rest}");
            let Some(end) = prefix_range(&prefix) else {
                prop_assert!(!prefix.ends_with(|c: char| c < '\x7F'), "{prefix:?}");
                return Ok(());
            };
            prop_assert!(prefix.as_bytes() <= text.as_bytes());
            prop_assert!(text.as_bytes() < end.as_bytes());
            let [(p, t, e), (pb, tb, eb)] = {
                let [p, pb] = utf16(&prefix);
                let [t, tb] = utf16(&text);
                let [e, eb] = utf16(&end);
                [(p, t, e), (pb, tb, eb)]
            };
            prop_assert!(p <= t && t < e, "UTF-16LE {prefix:?} {text:?}");
            prop_assert!(pb <= tb && tb < eb, "UTF-16BE {prefix:?} {text:?}");
        }
    }
}
