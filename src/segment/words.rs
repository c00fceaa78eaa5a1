//! A segment's filters in plain words, for people reading the console:
//! "customers in DE or FR whose email ends with @acme.com, with an open
//! invoice 30+ days past due". Pure.

use crate::model::{Condition, Field, Filter, FilterType, MatchMode, Op, Scalar, Segment};

/// The whole segment as one phrase.
pub fn describe(segment: &Segment) -> String {
    if segment.filters.is_empty() {
        return "every customer".into();
    }
    let blocks: Vec<String> = segment.filters.iter().map(block).collect();
    match segment.match_mode {
        MatchMode::All => format!("customers {}", blocks.join(", ")),
        MatchMode::Any if blocks.len() == 1 => format!("customers {}", blocks[0]),
        MatchMode::Any => format!("customers matching any of: {}", blocks.join("; or ")),
    }
}

/// One `[[filter]]` block.
fn block(f: &Filter) -> String {
    match f.filter_type {
        FilterType::Customer => {
            // "in DE or FR whose email …": the country first, without "and".
            let country = f
                .conditions
                .get(&Field::CustomerCountry)
                .map(|c| customer_clause(Field::CustomerCountry, c));
            let mut parts: Vec<String> = f
                .conditions
                .iter()
                .filter(|(field, _)| **field != Field::CustomerCountry)
                .map(|(field, c)| customer_clause(*field, c))
                .collect();
            parts.extend(
                f.custom_data
                    .iter()
                    .map(|(k, c)| format!("whose custom data `{k}` {}", compare(c))),
            );
            let text = match country {
                Some(country) if parts.is_empty() => country,
                Some(country) => format!("{country} {}", and_list(&parts)),
                None => and_list(&parts),
            };
            if f.negate {
                format!("except those {text}")
            } else {
                text
            }
        }
        FilterType::Invoice => related(f, "invoice", invoice_clause),
        FilterType::PaymentMethod => related(f, "payment method", payment_clause),
        FilterType::Connector => related(f, "connector", named_clause),
        FilterType::Monitor => related(f, "monitor", named_clause),
    }
}

/// A block on related rows: "with an open invoice 30+ days past due", or
/// "without …" when negated. Equality on the status (or state) reads as an
/// adjective before the noun.
fn related(f: &Filter, noun: &str, clause: fn(Field, &Condition) -> String) -> String {
    let mut adjectives = Vec::new();
    let mut rest = Vec::new();
    for (field, c) in &f.conditions {
        let adjective = matches!(
            field,
            Field::InvoiceStatus | Field::PaymentMethodStatus | Field::ConnectorConnection
        );
        match c {
            Condition::Compare(Op::Eq, v) if adjective => adjectives.push(scalar(v)),
            Condition::List(Op::In, vs) if adjective => {
                adjectives.push(or_list(&vs.iter().map(scalar).collect::<Vec<_>>()));
            }
            _ => rest.push(clause(*field, c)),
        }
    }
    let head = if adjectives.is_empty() {
        noun.to_string()
    } else {
        format!("{} {noun}", adjectives.join(" "))
    };
    let article = if head.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let with = if f.negate { "without" } else { "with" };
    if rest.is_empty() {
        format!("{with} {article} {head}")
    } else {
        format!("{with} {article} {head} {}", and_list(&rest))
    }
}

fn customer_clause(field: Field, c: &Condition) -> String {
    match (field, c) {
        (Field::CustomerCountry, Condition::Exists(true)) => "with a country".into(),
        (Field::CustomerCountry, Condition::Exists(false)) => "without a country".into(),
        (Field::CustomerCountry, Condition::Compare(Op::Eq, v)) => format!("in {}", scalar(v)),
        (Field::CustomerCountry, Condition::Compare(Op::Ne, v)) => {
            format!("not in {}", scalar(v))
        }
        (Field::CustomerCountry, Condition::List(Op::In, vs)) => {
            format!("in {}", or_list(&vs.iter().map(scalar).collect::<Vec<_>>()))
        }
        (Field::CustomerCountry, Condition::List(_, vs)) => {
            format!("in neither {}", nor_list(vs))
        }
        (Field::CustomerEmail, Condition::Exists(true)) => "with an email address".into(),
        (Field::CustomerEmail, Condition::Exists(false)) => "without an email address".into(),
        (Field::CustomerConnectorName, c) => {
            format!("linked to a connector whose name {}", compare(c))
        }
        (field, c) => format!("whose {} {}", field_words(field), compare(c)),
    }
}

fn invoice_clause(field: Field, c: &Condition) -> String {
    match field {
        Field::InvoiceDueDateExceededByDays => days(c, "past due"),
        Field::InvoiceDueInDays => format!("due in {}", days(c, "")).trim_end().to_string(),
        Field::InvoiceCreatedAfter => format!("created after {}", compare_value(c)),
        _ => format!("whose {} {}", field_words(field), compare(c)),
    }
}

fn payment_clause(field: Field, c: &Condition) -> String {
    match (field, c) {
        (Field::PaymentMethodIsDefault, Condition::Compare(Op::Eq, Scalar::Bool(b)))
        | (Field::PaymentMethodIsDefault, Condition::Compare(Op::Ne, Scalar::Bool(b)))
            if (c.op() == Op::Eq) == *b =>
        {
            "that is the default".into()
        }
        (Field::PaymentMethodIsDefault, _) => "that is not the default".into(),
        (Field::PaymentMethodConnector, Condition::Exists(true)) => "with a connector".into(),
        (Field::PaymentMethodConnector, Condition::Exists(false)) => "without a connector".into(),
        _ => format!("whose {} {}", field_words(field), compare(c)),
    }
}

fn named_clause(field: Field, c: &Condition) -> String {
    format!("whose {} {}", field_words(field), compare(c))
}

/// A field as words: `default_payment_method` → "default payment method".
fn field_words(field: Field) -> String {
    match field {
        Field::ConnectorConnection => "connection".into(),
        Field::PaymentMethodPaymentType => "type".into(),
        f => f.key().replace('_', " "),
    }
}

/// A number of days: "30+ days past due", "fewer than 7 days past due".
fn days(c: &Condition, after: &str) -> String {
    let n = |v: &Scalar| scalar(v);
    let text = match c {
        Condition::Compare(Op::Gte, v) => format!("{}+ days", n(v)),
        Condition::Compare(Op::Gt, v) => format!("more than {} days", n(v)),
        Condition::Compare(Op::Lt, v) => format!("fewer than {} days", n(v)),
        Condition::Compare(Op::Lte, v) => format!("at most {} days", n(v)),
        Condition::Compare(Op::Eq, v) => format!("exactly {} days", n(v)),
        Condition::Compare(_, v) => format!("other than {} days", n(v)),
        Condition::List(Op::In, vs) => {
            format!("{} days", or_list(&vs.iter().map(n).collect::<Vec<_>>()))
        }
        Condition::List(_, vs) => format!("neither {} days", nor_list(vs)),
        Condition::Exists(_) => "any number of days".into(),
    };
    format!("{text} {after}").trim_end().to_string()
}

/// What a condition asks of a value: "ends with @acme.com", "is card or ach".
fn compare(c: &Condition) -> String {
    match c {
        Condition::Compare(op, v) => {
            let v = scalar(v);
            match op {
                Op::Eq => format!("is {v}"),
                Op::Ne => format!("is not {v}"),
                Op::Contains => format!("contains {v}"),
                Op::StartsWith => format!("starts with {v}"),
                Op::EndsWith => format!("ends with {v}"),
                Op::Gt => format!("is more than {v}"),
                Op::Gte => format!("is at least {v}"),
                Op::Lt => format!("is less than {v}"),
                Op::Lte => format!("is at most {v}"),
                Op::In | Op::NotIn | Op::Exists => format!("is {v}"),
            }
        }
        Condition::List(Op::In, vs) => {
            format!("is {}", or_list(&vs.iter().map(scalar).collect::<Vec<_>>()))
        }
        Condition::List(_, vs) => format!("is neither {}", nor_list(vs)),
        Condition::Exists(true) => "is set".into(),
        Condition::Exists(false) => "is not set".into(),
    }
}

/// The value of an `eq` condition (the only operator of time fields).
fn compare_value(c: &Condition) -> String {
    match c {
        Condition::Compare(_, v) => scalar(v),
        other => compare(other),
    }
}

fn scalar(v: &Scalar) -> String {
    match v {
        Scalar::Str(s) => s.clone(),
        Scalar::Int(n) => n.to_string(),
        Scalar::Float(x) => x.to_string(),
        Scalar::Bool(true) => "true".into(),
        Scalar::Bool(false) => "false".into(),
        Scalar::Time(t) => {
            if t.time() == chrono::NaiveTime::MIN {
                t.format("%Y-%m-%d").to_string()
            } else {
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            }
        }
    }
}

/// "a", "a or b", "a, b or c".
fn or_list(items: &[String]) -> String {
    joined(items, "or")
}

/// "a, b and c".
fn and_list(items: &[String]) -> String {
    joined(items, "and")
}

/// "a nor b", "a, b nor c".
fn nor_list(values: &[Scalar]) -> String {
    joined(&values.iter().map(scalar).collect::<Vec<_>>(), "nor")
}

fn joined(items: &[String], word: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {word} {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::stored_segment;

    fn words(filters: &str) -> String {
        let text = format!("[segment]\nname = \"s\"\ndescription = \"d\"\n{filters}");
        let s = stored_segment(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        describe(&s)
    }

    #[test]
    fn the_issue_example_reads_as_one_sentence() {
        assert_eq!(
            words(
                "\n[[filter]]\ntype = \"customer\"\ncountry = { in = [\"DE\", \"FR\"] }\nemail = { ends_with = \"@acme.com\" }\n\n\
                 [[filter]]\ntype = \"invoice\"\nstatus = \"open\"\ndue_date_exceeded_by_days = { gte = 30 }\n"
            ),
            "customers in DE or FR whose email ends with @acme.com, with an open invoice 30+ days past due"
        );
    }

    #[test]
    fn no_filter_is_every_customer() {
        assert_eq!(words(""), "every customer");
    }

    #[test]
    fn negated_and_any_blocks() {
        assert_eq!(
            words(
                "match = \"any\"\n\n[[filter]]\ntype = \"customer\"\ncountry = { not_in = [\"DE\", \"FR\"] }\n\n\
                 [[filter]]\ntype = \"payment_method\"\nnegate = true\nstatus = { in = [\"expired\", \"failed\"] }\n"
            ),
            "customers matching any of: in neither DE nor FR; or without an expired or failed payment method"
        );
        assert_eq!(
            words("\n[[filter]]\ntype = \"customer\"\nnegate = true\nemail = { exists = false }\n"),
            "customers except those without an email address"
        );
        assert_eq!(
            words("\n[[filter]]\ntype = \"invoice\"\ndue_in_days = { lt = 7 }\n"),
            "customers with an invoice due in fewer than 7 days"
        );
        assert_eq!(
            words("\n[[filter]]\ntype = \"customer\"\ncustom_data = { plan = \"enterprise\" }\n"),
            "customers whose custom data `plan` is enterprise"
        );
    }
}
