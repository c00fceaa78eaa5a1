//! Property tests of `validate` and `canonical`: no input makes validation panic
//! or report an unlocated diagnostic, and every valid model survives
//! model → canonical TOML → validate unchanged.

use crate::support::{MemTemplates, VALID_TEMPLATE, source_file, tree_of, validate_checked};
use chrono::{DateTime, TimeZone as _, Utc};
use proptest::prelude::*;
use proptest::sample::select;
use segd::canonical;
use segd::model::fields::COUNTRIES;
use segd::model::{
    Body, Communication, Condition, CustomDataKey, Definitions, Delivery, Duration, Email, Event,
    Field, Filter, FilterType, MAX_DURATION_SECS, MatchMode, Name, Op, Scalar, Schedule, Segment,
    Sourced, Trigger, ValueKind, Webhook,
};
use segd::validate::{SourceFile, Tree};
use std::collections::BTreeMap;

/// `cases` by default, or `PROPTEST_CASES` from the environment for longer runs.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Valid models
// ---------------------------------------------------------------------------

/// Whether the validator would take a string for a secret (and reject it).
fn secret_like(s: &str) -> bool {
    let s = s.trim();
    ["whsec_", "sk_live_", "sk_test_"]
        .iter()
        .any(|p| s.starts_with(p))
}

/// Free text: plain words, any characters (control and non-ASCII included),
/// and runs of the characters TOML must escape.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 @._-]{0,16}",
        ".{0,16}",
        "(\"|'|\\\\|\n|\r\n|\t|é|ß|漢|😀|\u{7f}|\u{0}|\u{feff}| ){0,8}",
    ]
    .prop_filter("looks like a secret", |s| !secret_like(s))
}

fn name_base() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9_-]{0,40}"
}

fn name(base: &str, i: usize) -> Name {
    Name::parse(&format!("{base}-{i}")).expect("generated names are valid")
}

/// A whole second in UTC that a TOML offset date-time can hold (years 0–9999).
fn time() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        -62_167_219_200i64..253_402_300_800,
        1_700_000_000i64..1_900_000_000,
    ]
    .prop_map(|secs| {
        Utc.timestamp_opt(secs, 0)
            .single()
            .expect("in chrono's range")
    })
}

fn field_value(field: Field) -> BoxedStrategy<Scalar> {
    match field.kind() {
        ValueKind::Text { .. } => text().prop_map(Scalar::Str).boxed(),
        ValueKind::Enum(values) => select(values)
            .prop_map(|s| Scalar::Str(s.to_string()))
            .boxed(),
        ValueKind::Country => select(COUNTRIES)
            .prop_map(|s| Scalar::Str(s.to_string()))
            .boxed(),
        ValueKind::Days => prop_oneof![0i64..400, 0i64..=i64::MAX]
            .prop_map(Scalar::Int)
            .boxed(),
        ValueKind::Time => time().prop_map(Scalar::Time).boxed(),
        ValueKind::Bool => any::<bool>().prop_map(Scalar::Bool).boxed(),
    }
}

fn finite_float() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    prop_oneof![
        (NORMAL | SUBNORMAL | ZERO | POSITIVE | NEGATIVE).prop_filter("finite", |f| f.is_finite()),
        select(vec![0.5, 10.0, -2.25, 1e16, 1e-7, 99.99]),
    ]
}

fn number() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        any::<i64>().prop_map(Scalar::Int),
        finite_float().prop_map(Scalar::Float)
    ]
}

/// A value custom data compares with: a string, number or boolean.
fn custom_value() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        text().prop_map(Scalar::Str),
        number(),
        any::<bool>().prop_map(Scalar::Bool),
    ]
}

/// A non-empty list of distinct values.
fn distinct(value: impl Strategy<Value = Scalar>) -> impl Strategy<Value = Vec<Scalar>> {
    prop::collection::vec(value, 1..5).prop_map(|values| {
        let mut out: Vec<Scalar> = Vec::new();
        for v in values {
            if !out.contains(&v) {
                out.push(v);
            }
        }
        out
    })
}

/// A condition with operator `op` on values drawn from `value`.
fn with_op(op: Op, value: BoxedStrategy<Scalar>) -> BoxedStrategy<Condition> {
    match op {
        Op::Exists => any::<bool>().prop_map(Condition::Exists).boxed(),
        Op::In | Op::NotIn => distinct(value)
            .prop_map(move |vs| Condition::List(op, vs))
            .boxed(),
        _ => value.prop_map(move |v| Condition::Compare(op, v)).boxed(),
    }
}

fn field_condition(field: Field) -> BoxedStrategy<Condition> {
    select(field.ops())
        .prop_flat_map(move |op| with_op(op, field_value(field)))
        .boxed()
}

fn custom_condition() -> BoxedStrategy<Condition> {
    select(Op::ALL.to_vec())
        .prop_flat_map(|op| {
            let value = match op {
                Op::Contains | Op::StartsWith | Op::EndsWith => {
                    text().prop_map(Scalar::Str).boxed()
                }
                Op::Gt | Op::Gte | Op::Lt | Op::Lte => number().boxed(),
                _ => custom_value().boxed(),
            };
            with_op(op, value)
        })
        .boxed()
}

/// A custom_data key: not empty, and without quotes, backslashes or control
/// characters (which segd refuses in keys).
fn custom_key() -> impl Strategy<Value = CustomDataKey> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,10}",
        ".{1,10}",
        "[a-z]{1,4}[. -][a-z]{1,4}"
    ]
    .prop_filter_map("a key segd refuses", |k| CustomDataKey::parse(&k).ok())
}

fn filter() -> impl Strategy<Value = Filter> {
    select(FilterType::ALL.to_vec()).prop_flat_map(|filter_type| {
        let conditions: Vec<_> = filter_type
            .fields()
            .map(|f| prop::option::weighted(0.4, field_condition(f).prop_map(move |c| (f, c))))
            .collect();
        let custom_data = if filter_type == FilterType::Customer {
            prop::collection::btree_map(custom_key(), custom_condition(), 0..3).boxed()
        } else {
            Just(BTreeMap::new()).boxed()
        };
        (any::<bool>(), conditions, custom_data).prop_map(move |(negate, cs, custom_data)| Filter {
            filter_type,
            negate,
            conditions: cs.into_iter().flatten().collect(),
            custom_data,
        })
    })
}

fn segment(i: usize) -> impl Strategy<Value = Segment> {
    (
        name_base(),
        prop::option::of(text()),
        select(vec![MatchMode::All, MatchMode::Any]),
        any::<bool>(),
        prop::collection::vec(filter(), 0..4),
    )
        .prop_map(
            move |(base, description, match_mode, protect, filters)| Segment {
                name: name(&base, i),
                description,
                match_mode,
                protect,
                filters,
            },
        )
}

const SCHEDULES: &[&str] = &[
    "0 9 * * MON-FRI",
    "*/15 * * * *",
    "30 0 9 * * *",
    "0 0 1 * *",
    "0 7 * * *",
    "5 4 * * SUN",
    "0 22 * * 1-5",
    "0 0 12 1 JAN *",
];

fn trigger() -> impl Strategy<Value = Trigger> {
    prop_oneof![
        Just(Trigger::Manual),
        (select(SCHEDULES), select(chrono_tz::TZ_VARIANTS.to_vec())).prop_map(
            |(pattern, timezone)| Trigger::Automatic {
                schedule: Schedule::parse(pattern).expect("the listed schedules are valid"),
                timezone,
            }
        ),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![1u64..1_000_000, 1u64..=MAX_DURATION_SECS].prop_map(Duration::from_secs)
}

/// A template using only the variables templates see, with literal text that
/// holds no template syntax.
fn template_text() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        "[^{}%#]{0,12}",
        Just("{{ customer.name }}".to_string()),
        Just("{{ invoices | length }}".to_string()),
        Just("{% for invoice in invoices %}{{ invoice.number }}\n{% endfor %}".to_string()),
        Just("{{ segment.name }} / {{ communication.event }}".to_string()),
    ];
    prop::collection::vec(part, 0..5)
        .prop_map(|parts| parts.concat())
        .prop_filter("looks like a secret", |s| !secret_like(s))
}

fn email() -> impl Strategy<Value = Email> {
    let from = prop_oneof![
        "[a-z0-9._+-]{1,10}@[a-z0-9-]{1,10}\\.test",
        "[A-Za-z][A-Za-z ]{0,10} <[a-z0-9.]{1,8}@acme\\.test>",
    ];
    let body = prop_oneof![
        template_text().prop_map(Body::Inline),
        "templates/([a-z0-9_-]{1,8}/)?[a-z0-9_-]{1,10}\\.(txt|j2)".prop_map(Body::Template),
    ];
    (from, template_text(), body).prop_map(|(from, subject, body)| Email {
        from,
        subject,
        body,
    })
}

fn webhook() -> impl Strategy<Value = Webhook> {
    let url = (
        select(vec!["http", "https"]),
        prop_oneof![
            "[a-z][a-z0-9]{0,10}(\\.[a-z][a-z0-9]{0,8}){0,2}",
            Just("127.0.0.1".to_string())
        ],
        prop::option::of(1u16..),
        "(/[a-zA-Z0-9._~-]{0,8}){0,3}(\\?[a-z]=[a-z0-9]{1,4})?",
    )
        .prop_map(|(scheme, host, port, path)| match port {
            Some(p) => format!("{scheme}://{host}:{p}{path}"),
            None => format!("{scheme}://{host}{path}"),
        });
    (
        url,
        "[A-Za-z_][A-Za-z0-9_]{0,20}",
        prop::option::of(duration()),
    )
        .prop_map(|(url, secret_env, timeout)| Webhook {
            url,
            secret_env,
            timeout,
        })
}

fn communication(i: usize, segments: Vec<Name>) -> impl Strategy<Value = Communication> {
    let delivery = prop_oneof![
        email().prop_map(Delivery::Email),
        webhook().prop_map(Delivery::Webhook)
    ];
    let flags = (
        select(vec![Event::EmailInvoice, Event::PaymentReminder]),
        any::<bool>(),
        prop::option::of(duration()),
        prop::option::of(prop_oneof![1u64..10_000, 1u64..=i64::MAX as u64]),
        any::<bool>(),
    );
    (
        name_base(),
        prop::option::of(text()),
        select(segments),
        flags,
        trigger(),
        delivery,
    )
        .prop_map(
            move |(
                base,
                description,
                segment,
                (event, enabled, min_interval, max_recipients, protect),
                trigger,
                delivery,
            )| Communication {
                name: name(&base, i),
                description,
                segment,
                event,
                enabled,
                min_interval,
                max_recipients,
                protect,
                trigger,
                delivery,
            },
        )
}

/// 1–3 segments and 0–3 communications reaching them.
fn definitions() -> impl Strategy<Value = (Vec<Segment>, Vec<Communication>)> {
    (1usize..4, 0usize..4).prop_flat_map(|(n_seg, n_comm)| {
        let segments: Vec<_> = (0..n_seg).map(segment).collect();
        segments.prop_flat_map(move |segments| {
            let names: Vec<Name> = segments.iter().map(|s| s.name.clone()).collect();
            let comms: Vec<_> = (0..n_comm)
                .map(|i| communication(i, names.clone()))
                .collect();
            (Just(segments), comms)
        })
    })
}

fn segment_path(s: &Segment) -> String {
    format!("segments.d/{}.toml", s.name)
}

fn communication_path(c: &Communication) -> String {
    format!("communications.d/{}.toml", c.name)
}

/// Adds a definition's canonical file to `files` and the definition to `defs`.
fn add<T: Clone>(
    files: &mut Vec<SourceFile>,
    defs: &mut BTreeMap<Name, Sourced<T>>,
    (name, path, text): (&Name, String, String),
    def: &T,
) {
    files.push(source_file(&path, text));
    let sourced = Sourced {
        source: path,
        def: def.clone(),
    };
    defs.insert(name.clone(), sourced);
}

/// The canonical files of the models, and the definitions they must validate to.
fn render(segments: &[Segment], comms: &[Communication]) -> (Tree, Definitions) {
    let mut tree = Tree::default();
    let mut defs = Definitions::default();
    for s in segments {
        let file = (&s.name, segment_path(s), canonical::segment(s));
        add(&mut tree.segments, &mut defs.segments, file, s);
    }
    for c in comms {
        let file = (&c.name, communication_path(c), canonical::communication(c));
        add(&mut tree.communications, &mut defs.communications, file, c);
    }
    (tree, defs)
}

/// model → canonical → validate → model is the identity, and canonical text is
/// a fixed point of that trip.
fn assert_round_trip(segments: &[Segment], comms: &[Communication]) -> Result<(), TestCaseError> {
    let (tree, expected) = render(segments, comms);
    let outcome =
        validate_checked(&tree, &MemTemplates::any(VALID_TEMPLATE)).map_err(TestCaseError::fail)?;
    let files: Vec<&str> = tree
        .segments
        .iter()
        .chain(&tree.communications)
        .map(|f| f.text.as_str())
        .collect();
    prop_assert!(
        outcome.is_valid(),
        "canonical files rejected:\n{}\n--- files ---\n{}",
        segd::diag::render_text(&outcome.diagnostics, false),
        files.join("\n---\n")
    );
    prop_assert_eq!(
        &outcome.definitions,
        &expected,
        "files:\n{}",
        files.join("\n---\n")
    );
    for (s, file) in segments.iter().zip(&tree.segments) {
        let again = &outcome.definitions.segments[&s.name].def;
        prop_assert_eq!(&canonical::segment(again), &file.text);
    }
    for (c, file) in comms.iter().zip(&tree.communications) {
        let again = &outcome.definitions.communications[&c.name].def;
        prop_assert_eq!(&canonical::communication(again), &file.text);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn valid_definitions_round_trip((segments, comms) in definitions()) {
        assert_round_trip(&segments, &comms)?;
    }
}

/// One value of each kind, for the exhaustive field × operator walk below.
fn sample(field: Field, i: usize) -> Scalar {
    match field.kind() {
        ValueKind::Text { .. } => Scalar::Str(format!("Ab \"c\" {i} é")),
        ValueKind::Enum(values) => Scalar::Str(values[i % values.len()].to_string()),
        ValueKind::Country => Scalar::Str(COUNTRIES[i * 7 % COUNTRIES.len()].to_string()),
        ValueKind::Days => Scalar::Int(i as i64 * 5),
        ValueKind::Time => Scalar::Time(
            Utc.with_ymd_and_hms(2026, 1, 1 + i as u32, 8, 30, 0)
                .single()
                .expect("a valid date"),
        ),
        ValueKind::Bool => Scalar::Bool(i % 2 == 0),
    }
}

fn sample_condition(op: Op, values: [Scalar; 2]) -> Condition {
    match op {
        Op::Exists => Condition::Exists(false),
        Op::In | Op::NotIn => Condition::List(op, values.to_vec()),
        _ => Condition::Compare(op, values[0].clone()),
    }
}

/// Every field with every operator that fits it, and every operator on custom
/// data with each value type, each in a block of its own, negated or not.
#[test]
fn every_field_and_operator_round_trips() -> Result<(), TestCaseError> {
    let mut filters = Vec::new();
    for field in Field::ALL {
        for (i, op) in field.ops().into_iter().enumerate() {
            let values = [sample(field, i), sample(field, i + 1)];
            filters.push(Filter {
                filter_type: field.filter_type(),
                negate: i % 2 == 1,
                conditions: BTreeMap::from([(field, sample_condition(op, values))]),
                custom_data: BTreeMap::new(),
            });
        }
    }
    let customs = [
        [Scalar::Str("enterprise".into()), Scalar::Str("pro".into())],
        [Scalar::Int(10), Scalar::Int(-3)],
        [Scalar::Float(2.5), Scalar::Float(-0.125)],
        [Scalar::Bool(true), Scalar::Bool(false)],
    ];
    let mut custom_data = BTreeMap::new();
    for op in Op::ALL {
        for (j, values) in customs.iter().enumerate() {
            let fits = match op {
                Op::Contains | Op::StartsWith | Op::EndsWith => j == 0,
                Op::Gt | Op::Gte | Op::Lt | Op::Lte => j == 1 || j == 2,
                _ => true,
            };
            if fits {
                let key = format!("{} key {j}", op.as_str());
                custom_data.insert(
                    CustomDataKey::parse(&key).expect("a valid key"),
                    sample_condition(op, values.clone()),
                );
            }
        }
    }
    filters.push(Filter {
        filter_type: FilterType::Customer,
        negate: false,
        conditions: BTreeMap::new(),
        custom_data,
    });
    let segment = Segment {
        name: name("every-field", 0),
        description: Some("quotes \" ' \\ and\nnewlines, unicode: ünïcødé 😀".into()),
        match_mode: MatchMode::Any,
        protect: true,
        filters,
    };
    assert_round_trip(&[segment], &[])
}

fn cron_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        "[0-9]{1,3}",
        "[0-9]{1,2}-[0-9]{1,3}",
        "(\\*|[0-9]{1,2})/[0-9]{1,11}",
        "[0-9]{1,2}(,[0-9]{1,2}){1,3}",
        select(vec![
            "MON-FRI", "SUN", "sun", "JAN", "L", "5L", "5#3", "MON#6", "15W", "LW", "?"
        ])
        .prop_map(str::to_string),
        "@[a-z]{0,8}",
        "[^ ]{1,4}",
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Any cron-like text is accepted or refused without a panic, and what is
    /// accepted parses again to the same schedule (what the canonical form needs).
    #[test]
    fn schedules_parse_without_panic(fields in prop::collection::vec(cron_field(), 0..8)) {
        let pattern = fields.join(" ");
        if let Ok(s) = Schedule::parse(&pattern) {
            prop_assert_eq!(Schedule::parse(s.as_str()), Ok(s));
        }
    }
}

// ---------------------------------------------------------------------------
// Arbitrary input
// ---------------------------------------------------------------------------

/// Keys that the definition and settings files use, and a few secret-like ones.
const KEYS: &[&str] = &[
    "type",
    "status",
    "custom_data",
    "in",
    "not_in",
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "contains",
    "starts_with",
    "ends_with",
    "name",
    "description",
    "match",
    "protect",
    "negate",
    "segment",
    "event",
    "channel",
    "enabled",
    "min_interval",
    "max_recipients",
    "schedule",
    "timezone",
    "from",
    "subject",
    "template",
    "body",
    "url",
    "secret_env",
    "timeout",
    "database_url",
    "listen",
    "resync",
    "outbox_dir",
    "smtp_url",
    "concurrency",
    "retry_schedule",
    "lease",
    "max_file_bytes",
    "delivery",
    "console",
    "size_retention",
    "filter",
    "trigger",
    "email",
    "webhook",
    "communication",
    "country",
    "due_date_exceeded_by_days",
    "due_in_days",
    "created_after",
    "payment_type",
    "connector",
    "is_default",
    "connection",
    "state",
    "connector_name",
    "default_payment_method",
    "default_payment_method_status",
    "secret",
    "token",
    "plan",
    "seats",
];

const TABLES: &[&str] = &[
    "segment",
    "communication",
    "trigger",
    "email",
    "webhook",
    "delivery",
    "console",
    "filter",
    "custom_data",
    "segment.filter",
    "filter.custom_data",
    "trigger.schedule",
];

/// String values the validator gives meaning to, valid and not.
const WORDS: &[&str] = &[
    "customer",
    "invoice",
    "payment_method",
    "connector",
    "monitor",
    "open",
    "overdue",
    "paid",
    "card",
    "sepa_debit",
    "active",
    "expired",
    "connected",
    "alerting",
    "all",
    "any",
    "email",
    "webhook",
    "automatic",
    "manual",
    "payment_reminder",
    "email_invoice",
    "0 9 * * MON-FRI",
    "30 0 9 * * *",
    "61 * * * *",
    "@daily",
    "",
    " ",
    "Europe/Berlin",
    "europe/berlin",
    "Mars/Base",
    "7d",
    "0s",
    "10s",
    "1h30m",
    "-5s",
    "99999999999999999999d",
    "https://hooks.acme.test/x",
    "https://u:p@hooks.acme.test/",
    "ftp://x",
    "http://",
    "whsec_c2VjcmV0",
    "sk_live_1",
    "SEGD_WEBHOOK_SECRET",
    "1BAD",
    "billing@acme.test",
    "Billing <billing@acme.test>",
    "Hi {{ customer.name }}",
    "{{ nope }}",
    "{{ customer.nme }}",
    "{% for %}",
    "{{",
    "templates/x.txt",
    "../etc/passwd",
    "/abs.txt",
    "./templates/y.txt",
    "DE",
    "de",
    "XX",
    "2026-01-01",
    "2025-06-01T08:30:00",
    "2025-06-01T08:30:00+02:00",
    "2025-02-30",
    "127.0.0.1:8080",
    "sqlite://x.db",
    "postgres://u:pw@h/db",
    "a",
    "b",
    "overdue-eu",
    "Overdue",
    "é",
    "\u{0}",
    "a\nb",
    "3650d",
    "3650d1s",
    "106751991167d",
    "99999999999999d",
    "* * * * * *",
    "0 9 30 2 *",
    "0 0 29 2 *",
];

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn key_text() -> impl Strategy<Value = String> {
    let one = prop_oneof![
        6 => select(KEYS).prop_map(str::to_string),
        1 => "[a-z_]{1,8}",
        1 => "[^\n]{0,6}".prop_map(|s| toml_string(&s)),
    ];
    prop::collection::vec(one, 1..3).prop_map(|parts| parts.join("."))
}

fn value_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => select(WORDS).prop_map(toml_string),
        2 => (select(WORDS), ".{0,4}").prop_map(|(w, tail)| toml_string(&format!("{w}{tail}"))),
        1 => ".{0,10}".prop_map(|s| toml_string(&s)),
        2 => any::<i64>().prop_map(|i| i.to_string()),
        2 => select(vec![
            "0", "-1", "1", "30", "-0", "+7", "9223372036854775808", "-9223372036854775809",
            "0x1F", "0o7", "0b1", "1_000", "1.5", "-0.0", "nan", "inf", "-inf", "1e400", "10.0",
            "true", "false", "2026-01-01", "2025-06-01T08:30:00Z", "2025-06-01T08:30:00",
            "08:30:00", "1979-05-27T07:32:00-08:00", "'lit'", "'''multi\nline'''",
            "\"\"\"multi\nline\"\"\"",
        ])
        .prop_map(str::to_string),
        1 => "[^\n]{0,8}",
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|vs| format!("[{}]", vs.join(", "))),
            prop::collection::vec((key_text(), inner), 0..4).prop_map(|kvs| {
                let items: Vec<String> = kvs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", items.join(", "))
            }),
        ]
    })
}

fn line_text() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => (key_text(), value_text()).prop_map(|(k, v)| format!("{k} = {v}")),
        2 => select(TABLES).prop_map(|t| format!("[{t}]")),
        2 => select(TABLES).prop_map(|t| format!("[[{t}]]")),
        1 => "[a-z_.]{0,10}".prop_map(|t| format!("[{t}]")),
        1 => "#[^\n]{0,10}",
        1 => Just(String::new()),
        1 => "[^\n]{0,20}",
    ]
}

/// Text shaped like TOML: tables, arrays of tables, key/value lines with real
/// key names and values, and some garbage.
fn tomlish() -> impl Strategy<Value = String> {
    prop::collection::vec(line_text(), 0..24).prop_map(|lines| lines.join("\n"))
}

fn lossy() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..400)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Runs `validate` on the texts as segment, communication and settings files,
/// and with the first as every template; fails on an unlocated diagnostic.
fn survives(texts: &[String]) -> Result<(), TestCaseError> {
    let settings = texts.last().map(String::as_str);
    let tree = tree_of(texts, texts, settings);
    let templates = MemTemplates::any(texts.first().map_or("", String::as_str));
    validate_checked(&tree, &templates).map_err(TestCaseError::fail)?;
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn arbitrary_bytes_never_panic(texts in prop::collection::vec(lossy(), 1..4)) {
        survives(&texts)?;
    }

    #[test]
    fn tomlish_text_never_panics(texts in prop::collection::vec(tomlish(), 1..4)) {
        survives(&texts)?;
    }

    /// Valid canonical files with lines dropped, repeated, swapped for other
    /// lines, or cut short: deep in the validator's paths, not at the parser.
    #[test]
    fn mutated_canonical_files_never_panic(
        (segments, comms) in definitions(),
        edits in prop::collection::vec(edit(), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let (tree, _) = render(&segments, &comms);
        let texts: Vec<String> = tree
            .segments
            .iter()
            .chain(&tree.communications)
            .map(|f| mutate(&f.text, &edits, cut))
            .collect();
        survives(&texts)?;
    }
}

/// Found by `mutated_canonical_files_never_panic` (at a few thousand cases): a
/// `created_after` string with a date-time and no offset, whose 6th-last byte
/// falls inside a multi-byte character, made the offset check slice inside it.
#[test]
fn created_after_with_non_ascii_tail_does_not_panic() -> Result<(), TestCaseError> {
    let text = "[segment]\nname = \"a\"\n\n[[filter]]\ntype = \"invoice\"\n\
                created_after = \"2025-06-01T08:30:00 \u{1F600}\u{1F600}\"\n";
    survives(&[text.to_string()])
}

/// One change to a file's lines.
#[derive(Debug, Clone)]
enum Edit {
    Remove(prop::sample::Index),
    Repeat(prop::sample::Index),
    Replace(prop::sample::Index, String),
    Insert(prop::sample::Index, String),
    /// Keeps the key of a `key = value` line and writes another value.
    Revalue(prop::sample::Index, String),
    /// Writes the value of a `key = value` line as a string with `chars`
    /// inserted at a position.
    Perturb(prop::sample::Index, prop::sample::Index, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<prop::sample::Index>;
    prop_oneof![
        1 => at().prop_map(Edit::Remove),
        1 => at().prop_map(Edit::Repeat),
        1 => (at(), line_text()).prop_map(|(i, l)| Edit::Replace(i, l)),
        1 => (at(), line_text()).prop_map(|(i, l)| Edit::Insert(i, l)),
        3 => (at(), value_text()).prop_map(|(i, v)| Edit::Revalue(i, v)),
        3 => (at(), at(), ".{1,3}").prop_map(|(i, pos, chars)| Edit::Perturb(i, pos, chars)),
    ]
}

fn mutate(text: &str, edits: &[Edit], cut: prop::sample::Index) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for edit in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match edit {
            Edit::Remove(at) => {
                lines.remove(at.index(n));
            }
            Edit::Repeat(at) => lines.insert(at.index(n), lines[at.index(n)].clone()),
            Edit::Replace(at, line) => lines[at.index(n)] = line.clone(),
            Edit::Insert(at, line) => lines.insert(at.index(n), line.clone()),
            Edit::Revalue(at, value) => {
                let line = &mut lines[at.index(n)];
                if let Some((key, _)) = line.split_once(" = ") {
                    *line = format!("{key} = {value}");
                }
            }
            Edit::Perturb(at, pos, chars) => {
                let line = &mut lines[at.index(n)];
                if let Some((key, value)) = line.split_once(" = ") {
                    let mut inner: Vec<char> = value.trim_matches('"').chars().collect();
                    let p = pos.index(inner.len() + 1);
                    inner.splice(p..p, chars.chars());
                    let inner: String = inner.into_iter().collect();
                    *line = format!("{key} = {}", toml_string(&inner));
                }
            }
        }
    }
    let joined = lines.join("\n");
    // Now and then, cut the text short at a character boundary.
    if cut.index(4) == 0 {
        let chars: Vec<char> = joined.chars().collect();
        let keep = cut.index(chars.len() + 1);
        return chars[..keep].iter().collect();
    }
    joined
}

// ---------------------------------------------------------------------------
// Durations, schedules and command-line arguments
// ---------------------------------------------------------------------------

/// Duration-like text: numbers (huge ones too) with units, sums, and noise.
fn duration_text() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        "[0-9]{1,22}[smhd]",
        "[0-9]{0,3}[a-z]{0,2}",
        select(vec![
            "3650d",
            "3649d23h59m60s",
            "106751991167d",
            "0s",
            " ",
            "-1s",
            "1.5h"
        ])
        .prop_map(str::to_string),
    ];
    prop::collection::vec(part, 0..5).prop_map(|parts| parts.concat())
}

/// Any instant chrono can hold, the ends of its range more often.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let (lo, hi) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    prop_oneof![
        3 => 0i64..4_102_444_800,
        1 => lo..=hi,
        // The ends of chrono's range, and of the years croner searches (1 to 4999).
        2 => select(vec![lo, lo + 1, hi - 86_400, hi, -62_135_596_800, 95_617_584_000 - 1]),
    ]
    .prop_map(|t| Utc.timestamp_opt(t, 0).single().unwrap_or_default())
}

/// Words the command line knows, hostile values for its flags, and noise.
fn arg() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(vec![
            "validate", "plan", "apply", "forecast", "trigger", "segment", "members", "daemon",
            "deliveries", "retry", "export", "db", "migrate", "schema", "demo-data",
            "--days", "--at", "--max-change", "--lock-timeout", "--resync", "--customers",
            "--seed", "--today", "--format", "--dir", "--out", "--detailed-exitcode",
            "--auto-approve", "--dry-run", "--once", "--count", "--from", "-q", "-v", "--",
        ])
        .prop_map(str::to_string),
        4 => select(vec![
            "0", "-1", "7", "3650", "3651", "100000000", "4294967296", "18446744073709551616",
            "NaN", "inf", "-inf", "1e308", "-0", "1970-01-01", "1969-12-31", "9999-12-31",
            "10000-01-01", "+262143-12-31T23:59:59Z", "-262144-01-01T00:00:00Z",
            "2026-06-01T10:00:00", "2026-02-30", "106751991167d", "99999999999999d", "0s",
            "3650d", "json", "text",
        ])
        .prop_map(str::to_string),
        1 => duration_text(),
        1 => ".{0,12}",
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Any text is a duration of at most 3650 days or an error; an accepted one
    /// prints in a form that parses back to it.
    #[test]
    fn durations_parse_without_panic(text in duration_text()) {
        if let Ok(d) = Duration::parse_allow_zero(&text) {
            prop_assert!(d.as_secs() <= MAX_DURATION_SECS, "{text}");
            prop_assert_eq!(Duration::parse_allow_zero(&d.to_string()), Ok(d));
        }
    }

    /// Any argument list is parsed or refused (with a usage error) without a panic.
    #[test]
    fn command_lines_parse_without_panic(args in prop::collection::vec(arg(), 0..6)) {
        use clap::Parser as _;
        let argv = std::iter::once("segd".to_string()).chain(args);
        let _ = segd::cli::Cli::try_parse_from(argv);
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Any accepted schedule, in any time zone, from any instant chrono can hold:
    /// the next occurrence, what is due, and how often it fires, without a panic.
    #[test]
    fn schedules_evaluate_without_panic(
        fields in prop::collection::vec(cron_field(), 5..7),
        tz in select(chrono_tz::TZ_VARIANTS.to_vec()),
        from in instant(),
        now in instant(),
    ) {
        if let Ok(s) = Schedule::parse(&fields.join(" ")) {
            let _ = segd::schedule::cadence(&s, tz, from);
            if let Some(next) = segd::schedule::next_after(&s, tz, from) {
                prop_assert!(next > from);
            }
            let _ = segd::schedule::due(&s, tz, from, now);
        }
    }
}

#[test]
fn the_command_line_is_well_formed() {
    use clap::CommandFactory as _;
    segd::cli::Cli::command().debug_assert();
}

/// Pieces of template text: loops, conditions, macros, the variables a template
/// sees, operators and filters that grow output or work, captured text, and
/// broken syntax.
fn template_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "{% for a in range(10) %}",
            "{% for i in invoices %}",
            "{% endfor %}",
            "{% if customer.email %}",
            "{% else %}",
            "{% endif %}",
            "{{ customer.name }}",
            "{{ customer.custom_data.plan }}",
            "{{ invoices | length }}",
            "{{ invoices[0].amount_cents / 100 }}",
            "{{ 'ab' * 1000 }}",
            "{{ range(100000) | length }}",
            "{{ range(-5, 9999999999, 0) }}",
            "{% set s = 'x' * 100 %}{% set s = s ~ s %}{{ s }}",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "{{ ([0] * 10**15) | sum }}",
            "{{ (['x' * 10000] * 1000) | join }}",
            "{{ ([1] * 20000) | sort | unique | list }}",
            "{{ invoices | map(attribute='amount_cents') | sum }}",
            "{% set s %}{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}{% endset %}{{ s }}",
            "{% filter upper %}{{ [[0] * 5000] * 5000 }}{% endfilter %}",
            "{{ 1 / 0 }}",
            "{{ nothing.here }}",
            "{# note #}",
            "{{",
            "}}",
            "{%",
            "%}",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,12}",
    ]
}

/// Template text: loose pieces (mostly broken syntax), or loops nested up to
/// twelve deep around a piece (mostly valid, often past the work bound).
fn template_text_any() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(template_piece(), 0..12).prop_map(|p| p.concat()),
        (0usize..12, 0u32..30, template_piece()).prop_map(|(depth, n, body)| {
            format!(
                "{}{body}{}",
                format!("{{% for a in range({n}) %}}").repeat(depth),
                "{% endfor %}".repeat(depth)
            )
        }),
    ]
}

proptest! {
    #![proptest_config(config(32))]

    /// Any template text renders or fails within the bounds, without a panic:
    /// through `validate`'s sample render and through the delivery renderer.
    #[test]
    fn templates_render_within_bounds(source in template_text_any()) {
        use segd::validate::template::{RENDER_MAX_OUTPUT, check_file, render};
        let mut diags = Vec::new();
        let _ = check_file("templates/t.txt", &source, &mut diags);
        let ctx = minijinja::context! {
            customer => minijinja::context! { name => "A", email => "a@example.com" },
            invoices => vec![minijinja::context! { amount_cents => 100 }],
        };
        if let Ok(text) = render(&source, &ctx) {
            prop_assert!(text.len() <= RENDER_MAX_OUTPUT, "{} bytes", text.len());
        }
    }
}
