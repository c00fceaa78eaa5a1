//! custom_data conditions: a key's value compared by its JSON type.

use super::{Bind, Builder, Dialect};
use crate::model::{Condition, CustomDataKey, Op, Scalar};

/// A custom_data key compared by JSON type (SPEC §2.3). A missing key or NULL
/// custom data may make the test NULL: that is false at the top and inside
/// `match = "any"`, and a negated block turns NULL into false before its NOT.
pub(super) fn custom_data(b: &mut Builder, key: &CustomDataKey, c: &Condition) -> String {
    match b.dialect {
        Dialect::Sqlite => custom_data_sqlite(b, key, c),
        Dialect::Postgres => custom_data_postgres(b, key, c),
    }
}

/// The JSON path of a top-level custom_data key, as SQL text. Validation only
/// admits keys without quotes, backslashes and control characters, so the key
/// is written into the path literal: that lets SQLite use the expression index
/// segd keeps for each key its segments use (`custom_data_index_sql`).
pub fn custom_data_path(key: &CustomDataKey) -> String {
    format!("'$.\"{}\"'", key.as_str())
}

/// The index that serves conditions on one custom_data key (SQLite).
pub fn custom_data_index_sql(key: &CustomDataKey) -> String {
    let name = format!("segd_cd_{}", &crate::plan::sha256_hex(key.as_str())[..16]);
    format!(
        "CREATE INDEX IF NOT EXISTS {name} ON customers (json_extract(custom_data, {}))",
        custom_data_path(key)
    )
}

/// SQLite: `json_extract` gives the SQL value (an index can serve it), and
/// `json_type` tells the JSON type where the value alone cannot (JSON `true` is
/// the integer 1; an array is JSON text).
fn custom_data_sqlite(b: &mut Builder, key: &CustomDataKey, c: &Condition) -> String {
    let path = custom_data_path(key);
    let ty = format!("json_type(c.custom_data, {path})");
    let val = format!("json_extract(c.custom_data, {path})");
    let present = format!("({ty} IS NOT NULL AND {ty} <> 'null')");
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
                    format!("({val} = {p} AND {ty} IN ('integer', 'real'))")
                } else {
                    format!("{val} = {p}")
                }
            }
            Scalar::Float(x) => {
                let p = b.bind(Bind::Float(*x));
                if *x == 0.0 || *x == 1.0 {
                    format!("({val} = {p} AND {ty} IN ('integer', 'real'))")
                } else {
                    format!("{val} = {p}")
                }
            }
            Scalar::Bool(true) => format!("{ty} = 'true'"),
            Scalar::Bool(false) => format!("{ty} = 'false'"),
            Scalar::Time(_) => "0".to_string(),
        }
    };
    // A list: its strings and its numbers each as one JSON array (SQL
    // values of the same storage class as `json_extract`'s); booleans as above.
    let list = |b: &mut Builder, values: &[Scalar]| -> String {
        let (mut strings, mut numbers, mut parts) = (Vec::new(), Vec::new(), Vec::new());
        for v in values {
            match v {
                Scalar::Str(s) => strings.push(serde_json::Value::from(s.as_str())),
                Scalar::Int(i) => numbers.push(serde_json::Value::from(*i)),
                Scalar::Float(x) if x.is_finite() => numbers.push(serde_json::Value::from(*x)),
                other => parts.push(eq(b, other)),
            }
        }
        for (json, types) in [(strings, "= 'text'"), (numbers, "IN ('integer', 'real')")] {
            if !json.is_empty() {
                let p = b.text(&serde_json::Value::from(json).to_string());
                parts.push(format!(
                    "({ty} {types} AND {val} IN (SELECT value FROM json_each({p})))"
                ));
            }
        }
        format!("({})", parts.join(" OR "))
    };
    custom_condition(
        b,
        c,
        &present,
        &ty,
        &val,
        eq,
        list,
        "'text'",
        "('integer', 'real')",
    )
}

/// PostgreSQL: `jsonb_typeof` tells the JSON type; values compare as jsonb, so
/// nothing is ever cast from text.
fn custom_data_postgres(b: &mut Builder, key: &CustomDataKey, c: &Condition) -> String {
    let k = b.text(key.as_str());
    let ty = format!("jsonb_typeof(c.custom_data -> {k})");
    let val = format!("(c.custom_data ->> {k})");
    let present = format!("({ty} IS NOT NULL AND {ty} <> 'null')");
    let eq = |b: &mut Builder, v: &Scalar| -> String {
        let Some(json) = scalar_json(v) else {
            return "FALSE".to_string();
        };
        let p = b.text(&json.to_string());
        // Containment can use the GIN index on custom_data. Below the top level
        // it also compares JSON types (an array holding the value does not
        // contain it), so it is exactly typed equality.
        format!("c.custom_data @> jsonb_build_object(CAST({k} AS text), CAST({p} AS jsonb))")
    };
    let num_val = format!("(c.custom_data -> {k})");
    // A list: one JSON array; jsonb equality is typed, like containment.
    let list = |b: &mut Builder, values: &[Scalar]| -> String {
        let json: Vec<serde_json::Value> = values.iter().filter_map(scalar_json).collect();
        let p = b.text(&serde_json::Value::from(json).to_string());
        format!("{num_val} IN (SELECT jsonb_array_elements(CAST({p} AS jsonb)))")
    };
    custom_condition_pg(b, c, &present, &ty, &val, &num_val, eq, list)
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

#[allow(clippy::too_many_arguments)]
fn custom_condition(
    b: &mut Builder,
    c: &Condition,
    present: &str,
    ty: &str,
    val: &str,
    eq: impl Fn(&mut Builder, &Scalar) -> String,
    list: impl Fn(&mut Builder, &[Scalar]) -> String,
    text_ty: &str,
    num_tys: &str,
) -> String {
    match c {
        Condition::Exists(true) => present.to_string(),
        Condition::Exists(false) => format!("NOT {present}"),
        Condition::Compare(Op::Eq, v) => eq(b, v),
        Condition::Compare(Op::Ne, v) => format!("{present} AND NOT {}", eq(b, v)),
        Condition::List(op, values) => {
            let any = list(b, values);
            if *op == Op::NotIn {
                format!("{present} AND NOT {any}")
            } else {
                any
            }
        }
        Condition::Compare(op @ (Op::Contains | Op::StartsWith | Op::EndsWith), Scalar::Str(s)) => {
            let test = b.string_op(val, *op, s);
            format!("{ty} = {text_ty} AND {test}")
        }
        Condition::Compare(op @ (Op::Gt | Op::Gte | Op::Lt | Op::Lte), v) => {
            let p = match v {
                Scalar::Int(i) => b.bind(Bind::Int(*i)),
                Scalar::Float(x) => b.bind(Bind::Float(*x)),
                _ => return b.false_().to_string(),
            };
            format!("{ty} IN {num_tys} AND {val} {} {p}", cmp(*op))
        }
        Condition::Compare(..) => b.false_().to_string(),
    }
}

#[allow(clippy::too_many_arguments)]
fn custom_condition_pg(
    b: &mut Builder,
    c: &Condition,
    present: &str,
    ty: &str,
    val: &str,
    num_val: &str,
    eq: impl Fn(&mut Builder, &Scalar) -> String,
    list: impl Fn(&mut Builder, &[Scalar]) -> String,
) -> String {
    match c {
        Condition::Compare(op @ (Op::Gt | Op::Gte | Op::Lt | Op::Lte), v) => {
            let json = match v {
                Scalar::Int(i) => serde_json::Value::from(*i),
                Scalar::Float(x) => serde_json::Value::from(*x),
                _ => return b.false_().to_string(),
            };
            let p = b.text(&json.to_string());
            format!(
                "{ty} = 'number' AND {num_val} {} CAST({p} AS jsonb)",
                cmp(*op)
            )
        }
        _ => custom_condition(b, c, present, ty, val, eq, list, "'string'", "('number')"),
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
