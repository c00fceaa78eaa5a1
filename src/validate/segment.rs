//! `segments.d/*.toml` → [`Segment`].

use super::SourceFile;
use super::reader::{Reader, Value, get, list, type_name};
use crate::diag::Diagnostic;
use crate::model::fields::{UNPAID_STATUSES, is_country};
use crate::model::parse_time;
use crate::model::{
    Condition, CustomDataKey, Field, Filter, FilterType, MatchMode, Name, Op, Scalar, Segment,
    ValueKind,
};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::ops::Range;
use toml::de::DeValue;

const ROOT_KEYS: &[&str] = &["segment", "filter"];
const SEGMENT_KEYS: &[&str] = &["name", "description", "match", "protect"];

/// Parses one segment file. Returns its name (when one could be read) and the
/// segment when the whole file is valid.
pub fn parse(
    file: &SourceFile,
    diags: &mut Vec<Diagnostic>,
) -> Option<(Name, Range<usize>, Option<Segment>)> {
    let mut r = Reader::new(&file.display, &file.text, diags);
    let root = r.parse()?;
    r.unknown_keys(&root, ROOT_KEYS, "a segment file");

    let (seg_v, seg, named) = r.header(&root, "segment", SEGMENT_KEYS)?;
    let description =
        get(seg, "description").and_then(|v| r.str(v, "`description`").map(str::to_string));
    let match_mode = match get(seg, "match") {
        None => Some(MatchMode::All),
        Some(v) => r.one_of(v, "match mode", &MatchMode::ALL).map(|s| {
            if s == "any" {
                MatchMode::Any
            } else {
                MatchMode::All
            }
        }),
    };
    let protect = get(seg, "protect").map_or(Some(false), |v| r.bool(v, "`protect`"));

    let mut filters = Vec::new();
    match get(&root, "filter") {
        None => r.warning(
            named
                .as_ref()
                .map_or(seg_v.span(), |(_, span)| span.clone()),
            match &named {
                Some((name, _)) => {
                    format!("segment `{name}` has no filter, so it matches every customer")
                }
                None => "this segment has no filter, so it matches every customer".to_string(),
            },
        ),
        Some(v) => match v.get_ref() {
            DeValue::Array(items) => {
                for item in items.iter() {
                    if let Some(f) = parse_filter(&mut r, item) {
                        filters.push(f);
                    }
                }
            }
            other => r.error_help(
                v.span(),
                format!(
                    "`filter` must be an array of tables, found {}",
                    type_name(other)
                ),
                "write each filter block under its own `[[filter]]` header",
            ),
        },
    }

    // The rest of the file was checked even without a valid name.
    let (name, name_span) = named?;
    let ok = r.clean();
    let def = match (ok, description, match_mode, protect) {
        (true, description, Some(match_mode), Some(protect)) => Some(Segment {
            name: name.clone(),
            description,
            match_mode,
            protect,
            filters,
        }),
        _ => None,
    };
    Some((name, name_span, def))
}

fn parse_filter(r: &mut Reader<'_>, item: &Value<'_>) -> Option<Filter> {
    let t = r.table(item, "a `[[filter]]` entry")?;
    let header = item.span();
    let Some(type_v) = get(t, "type") else {
        r.error_help(
            header,
            "a `[[filter]]` block needs a `type`",
            format!(
                "add `type = \"…\"`, one of: {}",
                list(&FilterType::ALL.map(FilterType::as_str))
            ),
        );
        return None;
    };
    let type_name_s = r.one_of(
        type_v,
        "filter type",
        &FilterType::ALL.map(FilterType::as_str),
    )?;
    let filter_type = FilterType::parse(type_name_s)?;

    let mut allowed: Vec<&str> = vec!["type", "negate"];
    allowed.extend(filter_type.fields().map(Field::key));
    if filter_type == FilterType::Customer {
        allowed.push("custom_data");
    }
    let article = if filter_type == FilterType::Invoice {
        "an"
    } else {
        "a"
    };
    r.unknown_keys(
        t,
        &allowed,
        &format!("{article} `{}` filter block", filter_type.as_str()),
    );

    let negate = get(t, "negate").map_or(Some(false), |v| r.bool(v, "`negate`"));
    let mut conditions = BTreeMap::new();
    let mut ok = negate.is_some();
    for field in filter_type.fields() {
        if let Some(v) = get(t, field.key()) {
            match condition(r, field, v) {
                Some(c) => {
                    conditions.insert(field, c);
                }
                None => ok = false,
            }
        }
    }
    let mut custom_data = BTreeMap::new();
    if let Some(v) = get(t, "custom_data") {
        match custom_data_conditions(r, v) {
            Some(c) => custom_data = c,
            None => ok = false,
        }
    }
    if conditions.is_empty() && custom_data.is_empty() && ok {
        r.warning(
            header,
            format!(
                "this `{}` filter has no condition, so it holds for {}",
                filter_type.as_str(),
                if filter_type == FilterType::Customer {
                    "every customer"
                } else {
                    "every customer with at least one such row"
                }
            ),
        );
    }
    ok.then_some(Filter {
        filter_type,
        negate: negate.unwrap_or(false),
        conditions,
        custom_data,
    })
}

/// Splits a condition into its operator and operand: a scalar is `eq`.
fn split_condition<'v, 'i>(
    r: &mut Reader<'_>,
    v: &'v Value<'i>,
    what: &str,
    ops: &[Op],
) -> Option<(Op, &'v Value<'i>)> {
    let DeValue::Table(t) = v.get_ref() else {
        return Some((Op::Eq, v));
    };
    let names: Vec<&str> = ops.iter().map(|o| o.as_str()).collect();
    let mut entries = t.iter();
    let Some((k, operand)) = entries.next() else {
        r.error_help(
            v.span(),
            format!("empty condition for {what}"),
            format!(
                "write a value, or a table with one operator: {}",
                list(&names)
            ),
        );
        return None;
    };
    if t.len() > 1 {
        let found: Vec<&str> = t.iter().map(|(k, _)| k.get_ref().as_ref()).collect();
        r.error_help(
            v.span(),
            format!(
                "a condition takes exactly one operator, {what} has {}: {}",
                t.len(),
                list(&found)
            ),
            "split it into two `[[filter]]` blocks (for related rows each block may match a different row), or list the values with `in`",
        );
        return None;
    }
    let key = k.get_ref().as_ref();
    let Some(op) = Op::parse(key) else {
        let msg = format!("unknown operator `{key}` for {what}");
        let all: Vec<&str> = Op::ALL.iter().map(|o| o.as_str()).collect();
        match super::did_you_mean(key, &all) {
            Some(m) => r.error_help(k.span(), msg, format!("did you mean `{m}`?")),
            None => r.error_help(k.span(), msg, format!("operators for it: {}", list(&names))),
        }
        return None;
    };
    if !ops.contains(&op) {
        let help = if op == Op::Ne || op == Op::NotIn {
            format!(
                "operators for it: {}; for \"not linked to\", use a `connector` block with `negate = true`",
                list(&names)
            )
        } else {
            format!("operators for it: {}", list(&names))
        };
        r.error_help(
            k.span(),
            format!("operator `{key}` does not fit {what}"),
            help,
        );
        return None;
    }
    Some((op, operand))
}

fn condition(r: &mut Reader<'_>, field: Field, v: &Value<'_>) -> Option<Condition> {
    let what = format!("`{}` ({})", field.key(), kind_name(field.kind()));
    if field.kind() == ValueKind::Time && matches!(v.get_ref(), DeValue::Table(_)) {
        r.error_help(
            v.span(),
            format!("{what} takes a plain value, not an operator"),
            "write `created_after = 2026-01-01` or an RFC 3339 time with its offset",
        );
        return None;
    }
    let (op, operand) = split_condition(r, v, &what, &field.ops())?;
    match op {
        Op::Exists => r
            .bool(operand, &format!("`exists` on `{}`", field.key()))
            .map(Condition::Exists),
        Op::In | Op::NotIn => {
            let items = list_operand(r, operand, op)?;
            let mut values = Vec::new();
            let mut ok = true;
            for item in items {
                match scalar(r, field, item) {
                    Some(s) => values.push(s),
                    None => ok = false,
                }
            }
            if !ok {
                return None;
            }
            distinct(r, operand, values).map(|vs| Condition::List(op, vs))
        }
        _ => scalar(r, field, operand).map(|s| Condition::Compare(op, s)),
    }
}

fn list_operand<'v, 'i>(r: &mut Reader<'_>, v: &'v Value<'i>, op: Op) -> Option<&'v [Value<'i>]> {
    match v.get_ref() {
        DeValue::Array(a) if a.is_empty() => {
            r.error(
                v.span(),
                format!("`{}` needs a non-empty array", op.as_str()),
            );
            None
        }
        DeValue::Array(a) => Some(a),
        other => {
            r.error_help(
                v.span(),
                format!(
                    "`{}` needs an array, found {}",
                    op.as_str(),
                    type_name(other)
                ),
                format!("write `{} = [\"a\", \"b\"]`", op.as_str()),
            );
            None
        }
    }
}

/// A value as `Scalar`'s equality sees it, for finding repeats in one pass
/// (`0.0` and `-0.0` are equal; NaN equals nothing).
#[derive(PartialEq, Eq, Hash)]
enum Seen<'a> {
    Str(&'a str),
    Int(i64),
    Float(u64),
    Bool(bool),
    Time(chrono::DateTime<chrono::Utc>),
}

fn distinct(r: &mut Reader<'_>, v: &Value<'_>, values: Vec<Scalar>) -> Option<Vec<Scalar>> {
    let mut seen = std::collections::HashSet::with_capacity(values.len());
    for a in &values {
        let key = match a {
            Scalar::Str(s) => Seen::Str(s),
            Scalar::Int(i) => Seen::Int(*i),
            Scalar::Float(x) if x.is_nan() => continue,
            Scalar::Float(x) => Seen::Float((x + 0.0).to_bits()),
            Scalar::Bool(b) => Seen::Bool(*b),
            Scalar::Time(t) => Seen::Time(*t),
        };
        if !seen.insert(key) {
            r.error(
                v.span(),
                format!(
                    "`in` and `not_in` need distinct values; {} appears twice",
                    show(a)
                ),
            );
            return None;
        }
    }
    Some(values)
}

fn show(s: &Scalar) -> String {
    match s {
        Scalar::Str(s) => format!("{s:?}"),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(f) => f.to_string(),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Time(t) => t.to_rfc3339(),
    }
}

fn kind_name(k: ValueKind) -> &'static str {
    match k {
        ValueKind::Text { .. } => "text",
        ValueKind::Enum(_) => "enum",
        ValueKind::Country => "country code",
        ValueKind::Days => "whole days",
        ValueKind::Time => "date or time",
        ValueKind::Bool => "boolean",
    }
}

/// Words people use for a value the field spells otherwise, and the values
/// they mean (spelling is [`super::did_you_mean`]'s job: `unpaid` is two
/// letters from `paid`, its opposite).
fn meaning(field: Field, word: &str) -> Option<&'static [&'static str]> {
    let meant: &'static [&'static str] = match (field, word.to_ascii_lowercase().as_str()) {
        (Field::InvoiceStatus, "unpaid" | "outstanding" | "due") => &UNPAID_STATUSES,
        (Field::InvoiceStatus, "late" | "past_due" | "pastdue") => &["overdue"],
        (Field::InvoiceStatus, "canceled" | "cancelled" | "voided") => &["void"],
        _ => return None,
    };
    Some(meant)
}

fn scalar(r: &mut Reader<'_>, field: Field, v: &Value<'_>) -> Option<Scalar> {
    let key = field.key();
    match field.kind() {
        ValueKind::Text { .. } => r
            .str(v, &format!("`{key}`"))
            .map(|s| Scalar::Str(s.to_string())),
        ValueKind::Enum(values) => {
            let what = format!("{} `{key}` value", field.filter_type().as_str());
            let text = match v.get_ref() {
                DeValue::String(s) => Some(s.as_ref()),
                _ => None,
            };
            if let Some((word, meant)) = text.and_then(|s| Some((s, meaning(field, s)?))) {
                let quoted: Vec<String> = meant.iter().map(|m| format!("\"{m}\"")).collect();
                let help = match meant {
                    [one] => format!("write `{key} = \"{one}\"`"),
                    [init @ .., last] => {
                        let init: Vec<String> = init.iter().map(|m| format!("`{m}`")).collect();
                        format!(
                            "`{word}` means {} or `{last}`: write `{key} = {{ in = [{}] }}`",
                            init.join(", "),
                            quoted.join(", ")
                        )
                    }
                    [] => format!("expected one of: {}", list(values)),
                };
                r.error_help(v.span(), format!("unknown {what} `{word}`"), help);
                return None;
            }
            r.one_of(v, &what, values)
                .map(|s| Scalar::Str(s.to_string()))
        }
        ValueKind::Country => {
            let s = r.str(v, "`country`")?;
            let up = s.to_ascii_uppercase();
            if up.len() == 2 && is_country(&up) {
                Some(Scalar::Str(up))
            } else {
                r.error_help(
                    v.span(),
                    format!("unknown country code `{s}`"),
                    "use an ISO 3166-1 alpha-2 code such as `DE`, `FR` or `US`",
                );
                None
            }
        }
        ValueKind::Days => {
            let n = match v.get_ref() {
                DeValue::Integer(_) => r.int(v, &format!("`{key}`"))?,
                other => {
                    let help = match other {
                        DeValue::String(s) if s.trim().parse::<i64>().is_ok() => {
                            format!("write the number without quotes: {}", s.trim())
                        }
                        _ => "write a whole number of days, like 30".to_string(),
                    };
                    r.error_help(
                        v.span(),
                        format!(
                            "`{key}` must be a whole number of days, found {}",
                            type_name(other)
                        ),
                        help,
                    );
                    return None;
                }
            };
            if n < 0 {
                r.error_help(
                    v.span(),
                    format!("`{key}` must be 0 or more, found {n}"),
                    if key == "due_in_days" {
                        "for invoices past due, use `due_date_exceeded_by_days`"
                    } else {
                        "for invoices not yet due, use `due_in_days`"
                    },
                );
                return None;
            }
            Some(Scalar::Int(n))
        }
        ValueKind::Time => time(r, v).map(Scalar::Time),
        ValueKind::Bool => r.bool(v, &format!("`{key}`")).map(Scalar::Bool),
    }
}

/// `created_after`: a TOML date or offset date-time, or a string holding one.
fn time(r: &mut Reader<'_>, v: &Value<'_>) -> Option<DateTime<Utc>> {
    let text = match v.get_ref() {
        DeValue::Datetime(d) => d.to_string(),
        DeValue::String(s) => s.trim().to_string(),
        other => {
            r.error_help(
                v.span(),
                format!(
                    "`created_after` must be a date or time, found {}",
                    type_name(other)
                ),
                "write `created_after = 2026-01-01` or `\"2025-06-01T08:30:00+02:00\"`",
            );
            return None;
        }
    };
    match parse_time(&text) {
        Ok(t) => Some(t),
        Err(msg) => {
            r.error_help(
                v.span(),
                format!("invalid `created_after` value `{text}`: {msg}"),
                "write a date (`2026-01-01`) or an RFC 3339 time with its offset (`2026-01-01T08:30:00Z`)",
            );
            None
        }
    }
}

fn custom_data_conditions(
    r: &mut Reader<'_>,
    v: &Value<'_>,
) -> Option<BTreeMap<CustomDataKey, Condition>> {
    let t = r.table(v, "`custom_data`")?;
    if t.is_empty() {
        r.error_help(
            v.span(),
            "`custom_data` needs at least one key",
            "write `custom_data = { plan = \"enterprise\" }`",
        );
        return None;
    }
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, cv) in t.iter() {
        let key = k.get_ref().as_ref();
        let parsed = match CustomDataKey::parse(key) {
            Ok(parsed) => parsed,
            Err(why) if key.is_empty() => {
                r.error(k.span(), why);
                ok = false;
                continue;
            }
            Err(why) => {
                r.error_help(
                    k.span(),
                    format!("the `custom_data` key {key:?} {why}"),
                    "custom_data keys name top-level JSON keys; segd supports keys without those characters",
                );
                ok = false;
                continue;
            }
        };
        match custom_condition(r, key, cv) {
            Some(c) => {
                out.insert(parsed, c);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn custom_condition(r: &mut Reader<'_>, key: &str, v: &Value<'_>) -> Option<Condition> {
    let what = format!("custom_data key `{key}`");
    let (op, operand) = split_condition(r, v, &what, &Op::ALL)?;
    match op {
        Op::Exists => r
            .bool(operand, &format!("`exists` on {what}"))
            .map(Condition::Exists),
        Op::In | Op::NotIn => {
            let items = list_operand(r, operand, op)?;
            let mut values = Vec::new();
            for item in items {
                values.push(custom_scalar(r, item, &what)?);
            }
            distinct(r, operand, values).map(|vs| Condition::List(op, vs))
        }
        Op::Contains | Op::StartsWith | Op::EndsWith => r
            .str(operand, &format!("`{}` on {what}", op.as_str()))
            .map(|s| Condition::Compare(op, Scalar::Str(s.to_string()))),
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => match custom_scalar(r, operand, &what)? {
            s @ (Scalar::Int(_) | Scalar::Float(_)) => Some(Condition::Compare(op, s)),
            _ => {
                r.error(
                    operand.span(),
                    format!("`{}` on {what} needs a number", op.as_str()),
                );
                None
            }
        },
        Op::Eq | Op::Ne => custom_scalar(r, operand, &what).map(|s| Condition::Compare(op, s)),
    }
}

fn custom_scalar(r: &mut Reader<'_>, v: &Value<'_>, what: &str) -> Option<Scalar> {
    if !r.no_secret(v) {
        return None;
    }
    match v.get_ref() {
        DeValue::String(s) => Some(Scalar::Str(s.to_string())),
        DeValue::Integer(_) => r.int(v, what).map(Scalar::Int),
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(x) if x.is_finite() => Some(Scalar::Float(x)),
            _ => {
                r.error(
                    v.span(),
                    format!("{what} compares with a finite number only"),
                );
                None
            }
        },
        DeValue::Boolean(b) => Some(Scalar::Bool(*b)),
        other => {
            r.error(
                v.span(),
                format!(
                    "{what} compares with a string, number or boolean, found {}",
                    type_name(other)
                ),
            );
            None
        }
    }
}
