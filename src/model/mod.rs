//! The validated domain model of segd's definitions. No IO.
//!
//! Values of these types are only built by `validate` (or by tests), so holding
//! one means it passed every check of SPEC §2 and §3.

mod billing;
pub mod destination;
mod duration;
pub mod fields;

pub use billing::{Customer, Invoice};
pub use duration::{Duration, DurationError, MAX_SECS as MAX_DURATION_SECS};
pub use fields::{Field, FilterType, ValueKind};

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt;

/// A segment or communication name: `^[a-z0-9][a-z0-9_-]{0,62}$`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let mut chars = s.chars();
        match chars.next() {
            None => return Err("a name cannot be empty"),
            Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit()) => {
                return Err("a name starts with a lowercase letter or a digit");
            }
            _ => {}
        }
        if s.len() > 63 {
            return Err("a name has at most 63 characters");
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') {
            return Err("a name holds only lowercase letters, digits, `_` and `-`");
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = &'static str;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A top-level custom_data key: not empty, and without quotes, backslashes or
/// control characters, so that it may stand inside a JSON path literal in SQL
/// (the expression index segd keeps per key needs the path as text).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomDataKey(String);

impl CustomDataKey {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() {
            return Err("a `custom_data` key cannot be empty");
        }
        if s.chars()
            .any(|ch| ch == '"' || ch == '\'' || ch == '\\' || ch.is_control())
        {
            return Err("holds a quote, a backslash or a control character");
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchMode {
    #[default]
    All,
    Any,
}

impl MatchMode {
    pub const ALL: [&'static str; 2] = ["all", "any"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Any => "any",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub name: Name,
    pub description: Option<String>,
    pub match_mode: MatchMode,
    pub protect: bool,
    pub filters: Vec<Filter>,
}

/// One `[[filter]]` block: all its conditions hold together (on one related row
/// for the related types).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub filter_type: FilterType,
    pub negate: bool,
    /// Conditions on the type's fields, ordered by field.
    pub conditions: BTreeMap<Field, Condition>,
    /// Conditions on top-level keys of the customer's custom data (customer only).
    pub custom_data: BTreeMap<CustomDataKey, Condition>,
}

/// A value a condition compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Int(i64),
    /// Finite only.
    Float(f64),
    Bool(bool),
    Time(DateTime<Utc>),
}

/// The operators of SPEC §2.2, in canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Eq,
    Ne,
    In,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    Gt,
    Gte,
    Lt,
    Lte,
    Exists,
}

impl Op {
    pub const ALL: [Op; 12] = [
        Op::Eq,
        Op::Ne,
        Op::In,
        Op::NotIn,
        Op::Contains,
        Op::StartsWith,
        Op::EndsWith,
        Op::Gt,
        Op::Gte,
        Op::Lt,
        Op::Lte,
        Op::Exists,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::Contains => "contains",
            Op::StartsWith => "starts_with",
            Op::EndsWith => "ends_with",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Exists => "exists",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.as_str() == s)
    }
}

/// A condition: one operator and its operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `eq ne contains starts_with ends_with gt gte lt lte`.
    Compare(Op, Scalar),
    /// `in not_in`: a non-empty list of distinct values.
    List(Op, Vec<Scalar>),
    Exists(bool),
}

impl Condition {
    pub fn op(&self) -> Op {
        match self {
            Condition::Compare(op, _) | Condition::List(op, _) => *op,
            Condition::Exists(_) => Op::Exists,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    EmailInvoice,
    PaymentReminder,
}

impl Event {
    pub const ALL: [&'static str; 2] = ["email_invoice", "payment_reminder"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmailInvoice => "email_invoice",
            Self::PaymentReminder => "payment_reminder",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email_invoice" => Some(Self::EmailInvoice),
            "payment_reminder" => Some(Self::PaymentReminder),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    pub const ALL: [&'static str; 2] = ["email", "webhook"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Self::Email),
            "webhook" => Some(Self::Webhook),
            _ => None,
        }
    }
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// What is wrong with a cron pattern's fields, said in the pattern's own terms
/// (`MONDAY` is a day-of-week name of three letters too many, hour `25` is out
/// of range), before croner reports the same as `illegal character 'D' in
/// part '1DAY'`. `None` leaves the rest to croner.
fn cron_field_problem(pattern: &str) -> Option<String> {
    if pattern.starts_with('@') {
        return None;
    }
    let fields: Vec<&str> = pattern.split(' ').collect();
    // (name, lowest, highest, names it takes, letters it takes alone)
    type Kind = (
        &'static str,
        u32,
        u32,
        &'static [&'static str],
        &'static [&'static str],
    );
    let mut kinds: Vec<Kind> = vec![
        ("minute", 0, 59, &[], &[]),
        ("hour", 0, 23, &[], &[]),
        ("day-of-month", 1, 31, &[], &["L", "W", "LW"]),
        ("month", 1, 12, &MONTHS, &[]),
        ("day-of-week", 0, 7, &WEEKDAYS, &["L"]),
    ];
    if fields.len() == 6 {
        kinds.insert(0, ("second", 0, 59, &[], &[]));
    }
    for (field, (name, low, high, names, letters)) in fields.iter().zip(kinds) {
        // ASCII upper case keeps every byte where it was: tokens are found in
        // `upper` and shown as written in `field`.
        let upper = field.to_ascii_uppercase();
        let mut at = 0;
        while let Some(start) = upper[at..].find(|c: char| c.is_ascii_alphanumeric()) {
            let after = upper[..at + start].chars().next_back().unwrap_or(' ');
            at += start;
            let alpha = upper[at..].starts_with(|c: char| c.is_ascii_alphabetic());
            let len = upper[at..]
                .find(|c: char| c.is_ascii_alphabetic() != alpha || !c.is_ascii_alphanumeric())
                .unwrap_or(upper.len() - at);
            let (token, written) = (&upper[at..at + len], &field[at..at + len]);
            at += len;
            if alpha {
                if names.contains(&token) || letters.contains(&token) {
                    continue;
                }
                let listed = if names.is_empty() {
                    format!(
                        "the {name} field takes numbers ({low}-{high}), `*`, ranges (`1-5`), lists (`1,15`) and steps (`*/5`)"
                    )
                } else {
                    format!("{name} names are three letters: {}", names.join(", "))
                };
                return Some(match names.iter().find(|n| token.starts_with(**n)) {
                    Some(short) => format!("{listed}; write `{short}`, not `{written}`"),
                    None => format!("`{written}` in the {name} field: {listed}"),
                });
            }
            // A step (`*/90`) or an nth weekday (`MON#2`) is not a value of the field.
            if after == '/' || after == '#' {
                continue;
            }
            match token.parse::<u32>() {
                Ok(n) if (low..=high).contains(&n) => {}
                _ => {
                    return Some(format!(
                        "{name} `{written}` is out of range: the {name} field takes {low} to {high}"
                    ));
                }
            }
        }
    }
    None
}

/// A cron pattern (5 fields, or 6 with seconds first) that croner accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pattern: String,
    cron: Box<croner::Cron>,
}

impl Schedule {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let trimmed = pattern.split_whitespace().collect::<Vec<_>>().join(" ");
        if !trimmed.starts_with('@') {
            let n = trimmed.split(' ').count();
            if !(5..=6).contains(&n) {
                return Err(format!(
                    "a cron schedule has 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; this one has {n}"
                ));
            }
        }
        if let Some(problem) = cron_field_problem(&trimmed) {
            return Err(problem);
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(&trimmed)
            .map_err(|e| format!("invalid cron schedule: {e}"))?;
        Ok(Self {
            pattern: trimmed,
            cron: Box::new(cron),
        })
    }

    pub fn cron(&self) -> &croner::Cron {
        &self.cron
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    Manual,
    Automatic {
        schedule: Schedule,
        timezone: chrono_tz::Tz,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Inline(String),
    /// A path relative to `--dir`.
    Template(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub from: String,
    pub subject: String,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    /// The name of the environment variable holding the `whsec_…` secret.
    pub secret_env: String,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Email(Email),
    Webhook(Webhook),
}

impl Delivery {
    pub fn channel(&self) -> Channel {
        match self {
            Delivery::Email(_) => Channel::Email,
            Delivery::Webhook(_) => Channel::Webhook,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Communication {
    pub name: Name,
    pub description: Option<String>,
    pub segment: Name,
    pub event: Event,
    pub enabled: bool,
    pub min_interval: Option<Duration>,
    pub max_recipients: Option<u64>,
    pub protect: bool,
    pub trigger: Trigger,
    pub delivery: Delivery,
}

/// Where a definition came from: its path below `--dir`, with `/` separators.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub source: String,
    pub def: T,
}

/// Every valid definition of a tree, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Definitions {
    pub segments: BTreeMap<Name, Sourced<Segment>>,
    pub communications: BTreeMap<Name, Sourced<Communication>>,
}

/// A date (00:00:00 UTC of that day) or an RFC 3339 time with its offset.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, &'static str> {
    let s = s.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .ok_or("not a valid date");
    }
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => Ok(t.with_timezone(&Utc)),
        Err(_) if s.len() >= 19 && s.contains(['T', 't', ' ']) && !has_offset(s) => {
            Err("a date-time must carry its offset (`Z` or `±hh:mm`)")
        }
        Err(_) => Err("not a date or RFC 3339 time"),
    }
}

fn has_offset(s: &str) -> bool {
    let tail = s.get(s.len().saturating_sub(6)..).unwrap_or_default();
    s.ends_with(['Z', 'z']) || tail.starts_with(['+', '-'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_errors_speak_of_the_field() {
        let err = |p: &str| Schedule::parse(p).err().unwrap_or_default();
        assert_eq!(
            err("0 7 * * MONDAY"),
            "day-of-week names are three letters: SUN, MON, TUE, WED, THU, FRI, SAT; write `MON`, not `MONDAY`"
        );
        assert_eq!(
            err("0 7 * SEPTEMBER *"),
            "month names are three letters: JAN, FEB, MAR, APR, MAY, JUN, JUL, AUG, SEP, OCT, NOV, DEC; write `SEP`, not `SEPTEMBER`"
        );
        assert!(err("0 7 * * monday").ends_with("write `MON`, not `monday`"));
        assert!(err("0 7 * * FOO").starts_with("`FOO` in the day-of-week field"));
        assert_eq!(
            err("0 25 * * *"),
            "hour `25` is out of range: the hour field takes 0 to 23"
        );
        assert_eq!(
            err("0 7 0 * *"),
            "day-of-month `0` is out of range: the day-of-month field takes 1 to 31"
        );
        assert!(
            err("0 H * * *")
                .starts_with("`H` in the hour field: the hour field takes numbers (0-23)")
        );
        assert!(err("61 0 9 * * *").starts_with("second `61`"));
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_time("2026-01-01").map(|t| t.to_rfc3339()),
            Ok("2026-01-01T00:00:00+00:00".into())
        );
        assert_eq!(
            parse_time("2025-06-01T08:30:00+02:00").map(|t| t.to_rfc3339()),
            Ok("2025-06-01T06:30:00+00:00".into())
        );
        assert!(parse_time("2025-06-01T08:30:00").is_err());
        assert!(parse_time("2025-02-30").is_err());
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("ééééééé").is_err());
    }

    #[test]
    fn names() {
        assert!(Name::parse("overdue-eu").is_ok());
        assert!(Name::parse("0_a-b").is_ok());
        assert!(Name::parse(&format!("a{}", "b".repeat(62))).is_ok());
        assert!(Name::parse(&format!("a{}", "b".repeat(63))).is_err());
        assert!(Name::parse("-x").is_err());
        assert!(Name::parse("Overdue").is_err());
        assert!(Name::parse("a b").is_err());
        assert!(Name::parse("").is_err());
    }

    #[test]
    fn schedules() {
        assert!(Schedule::parse("0 9 * * MON-FRI").is_ok());
        assert!(Schedule::parse("30 0 9 * * *").is_ok());
        assert!(Schedule::parse("61 9 * * *").is_err());
        assert!(Schedule::parse("* * * *").is_err());
        assert!(Schedule::parse("0 0 0 1 1 * 2030").is_err());
        assert!(Schedule::parse("0 9 L * *").is_ok());
        assert!(Schedule::parse("0 9 15W * *").is_ok());
        assert!(Schedule::parse("0 9 * * 5L").is_ok());
        assert!(Schedule::parse("0 9 * 2 SUN#5").is_ok());
        assert!(Schedule::parse("0 9 * jan-mar mon-fri").is_ok());
        assert_eq!(
            Schedule::parse("  0  9 * *   *").map(|s| s.as_str().to_string()),
            Ok("0 9 * * *".to_string())
        );
    }
}
