//! `cargo bench --bench validate`: how long `segd validate` takes on a large tree.
//!
//! Generates 10,000 realistic definition files (8,000 segments with 1–4 filter
//! blocks of varied types, 2,000 communications reaching them, half email with an
//! inline body and half webhook) into a temporary folder, then times
//! `load_tree` + `validate` over several iterations, and the release binary end to
//! end when `target/release/segd` exists. Target: under 300 ms for 10,000 files.
//! Also times one segment with a 100,000-value `in` list (linear in its length).
//!
//! Knobs: `SEGD_BENCH_SEGMENTS` (8000), `SEGD_BENCH_COMMUNICATIONS` (2000),
//! `SEGD_BENCH_ITERS` (10), `SEGD_BENCH_DIR` (generate there and keep the tree,
//! e.g. to profile `segd validate` on it; default: a temporary folder).

// A benchmark reports on a terminal; the CLI's closed-pipe rule is not for it.
#![allow(clippy::disallowed_macros)]

mod common;

use common::env_or;
use segd::canonical;
use segd::model::fields::COUNTRIES;
use segd::model::{
    Body, Communication, Condition, CustomDataKey, Delivery, Duration, Email, Event, Field, Filter,
    FilterType, MatchMode, Name, Op, Scalar, Schedule, Segment, Trigger, Webhook,
};
use segd::source::{FsTemplates, load_tree};
use segd::validate::{SourceFile, Tree, validate};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration as StdDuration, Instant};

const TARGET_MS: f64 = 300.0;

/// splitmix64: a small deterministic generator, so every run times the same tree.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// 1 to `max` distinct items.
    fn some<T: Clone + PartialEq>(&mut self, items: &[T], max: usize) -> Vec<T> {
        let n = 1 + self.below(max.min(items.len()));
        let mut out: Vec<T> = Vec::with_capacity(n);
        while out.len() < n {
            let item = self.pick(items).clone();
            if !out.contains(&item) {
                out.push(item);
            }
        }
        out
    }
}

const WORDS: &[&str] = &[
    "overdue",
    "eu",
    "enterprise",
    "trial",
    "churn",
    "risk",
    "vip",
    "smb",
    "card",
    "sepa",
    "dunning",
    "renewal",
    "annual",
    "monthly",
    "usage",
    "alert",
    "stripe",
    "chargebee",
];
const CONNECTORS: &[&str] = &["Stripe", "Chargebee", "Recurly", "Paddle", "GoCardless"];
const MONITORS: &[&str] = &["api-calls", "storage", "seats", "bandwidth"];
const PLANS: &[&str] = &["free", "starter", "pro", "enterprise"];
const SCHEDULES: &[&str] = &["0 9 * * MON-FRI", "0 7 * * *", "30 8 1 * *", "0 */6 * * *"];
const ZONES: &[&str] = &["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"];

fn strs(values: &[&str]) -> Vec<Scalar> {
    values.iter().map(|s| Scalar::Str(s.to_string())).collect()
}

/// A realistic condition on `field`.
fn condition(rng: &mut Rng, field: Field) -> Condition {
    use segd::model::ValueKind as K;
    match field.kind() {
        K::Enum(values) => match rng.below(3) {
            0 => Condition::Compare(Op::Eq, Scalar::Str(rng.pick(values).to_string())),
            1 => Condition::Compare(Op::Ne, Scalar::Str(rng.pick(values).to_string())),
            _ => Condition::List(Op::In, rng.some(&strs(values), 3)),
        },
        K::Country => match rng.below(2) {
            0 => Condition::List(Op::In, rng.some(&strs(&COUNTRIES[..60]), 7)),
            _ => Condition::Compare(Op::Eq, Scalar::Str(rng.pick(COUNTRIES).to_string())),
        },
        K::Days => {
            let op = *rng.pick(&[Op::Gte, Op::Gt, Op::Lte, Op::Eq]);
            Condition::Compare(op, Scalar::Int(rng.below(90) as i64))
        }
        K::Time => Condition::Compare(
            Op::Eq,
            Scalar::Time(
                chrono::DateTime::from_timestamp(1_735_689_600 + rng.below(365) as i64 * 86_400, 0)
                    .unwrap_or_default(),
            ),
        ),
        K::Bool => Condition::Compare(Op::Eq, Scalar::Bool(rng.chance(50))),
        K::Text { .. } => {
            let pool = match field {
                Field::MonitorName => MONITORS,
                Field::CustomerName | Field::CustomerEmail => WORDS,
                _ => CONNECTORS,
            };
            let ops = field.ops();
            match *rng.pick(&ops) {
                Op::Exists => Condition::Exists(rng.chance(50)),
                op @ (Op::In | Op::NotIn) => Condition::List(op, rng.some(&strs(pool), 3)),
                Op::EndsWith if field == Field::CustomerEmail => {
                    Condition::Compare(Op::EndsWith, Scalar::Str("@example.com".into()))
                }
                op => Condition::Compare(op, Scalar::Str(rng.pick(pool).to_string())),
            }
        }
    }
}

fn filter(rng: &mut Rng) -> Filter {
    let filter_type = *rng.pick(&FilterType::ALL);
    let fields: Vec<Field> = filter_type.fields().collect();
    let mut conditions = BTreeMap::new();
    for field in rng.some(&fields, 3) {
        conditions.insert(field, condition(rng, field));
    }
    let mut custom_data = BTreeMap::new();
    if filter_type == FilterType::Customer && rng.chance(40) {
        let plans = strs(PLANS);
        custom_data.insert(
            CustomDataKey::parse("plan").expect("a valid key"),
            Condition::List(Op::In, rng.some(&plans, 2)),
        );
        custom_data.insert(
            CustomDataKey::parse("seats").expect("a valid key"),
            Condition::Compare(Op::Gte, Scalar::Int(rng.below(50) as i64)),
        );
    }
    Filter {
        filter_type,
        negate: rng.chance(15),
        conditions,
        custom_data,
    }
}

fn name(kind: &str, i: usize, rng: &mut Rng) -> Name {
    let text = format!("{kind}-{}-{}-{i:05}", rng.pick(WORDS), rng.pick(WORDS));
    Name::parse(&text).unwrap_or_else(|e| panic!("`{text}`: {e}"))
}

fn segment(rng: &mut Rng, i: usize) -> Segment {
    let n = 1 + rng.below(4);
    Segment {
        name: name("seg", i, rng),
        description: Some(format!(
            "Customers in the {} / {} cohort (generated #{i})",
            rng.pick(WORDS),
            rng.pick(WORDS)
        )),
        match_mode: if rng.chance(25) {
            MatchMode::Any
        } else {
            MatchMode::All
        },
        protect: rng.chance(10),
        filters: (0..n).map(|_| filter(rng)).collect(),
    }
}

fn communication(rng: &mut Rng, i: usize, segments: &[Name]) -> Communication {
    let trigger = if rng.chance(70) {
        Trigger::Automatic {
            schedule: Schedule::parse(rng.pick::<&str>(SCHEDULES))
                .unwrap_or_else(|e| panic!("{e}")),
            timezone: rng.pick(ZONES).parse().unwrap_or(chrono_tz::UTC),
        }
    } else {
        Trigger::Manual
    };
    let delivery = if i % 2 == 0 {
        Delivery::Email(Email {
            from: "Acme Billing <billing@acme.test>".into(),
            subject: "Reminder: {{ invoices | length }} overdue invoice(s)".into(),
            body: Body::Inline(
                "Hello {{ customer.name }},\n\n{% for invoice in invoices %}  - {{ invoice.number }}: \
                 {{ invoice.amount_cents }} {{ invoice.currency }}, due {{ invoice.due_date }}\n\
                 {% endfor %}\nAcme Billing ({{ communication.name }} / {{ segment.name }})\n"
                    .into(),
            ),
        })
    } else {
        Delivery::Webhook(Webhook {
            url: format!("https://hooks.acme.test/segd/{i}"),
            secret_env: "SEGD_WEBHOOK_SECRET".into(),
            timeout: rng.chance(50).then(|| Duration::from_secs(10)),
        })
    };
    Communication {
        name: name("comm", i, rng),
        description: Some(format!("Generated communication #{i}")),
        segment: rng.pick(segments).clone(),
        event: if rng.chance(50) {
            Event::PaymentReminder
        } else {
            Event::EmailInvoice
        },
        enabled: rng.chance(90),
        min_interval: rng.chance(50).then(|| Duration::from_secs(7 * 86_400)),
        max_recipients: rng.chance(30).then_some(5000),
        protect: rng.chance(10),
        trigger,
        delivery,
    }
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Writes the tree below `dir` (segments in 40 team subfolders); returns the counts.
fn generate(dir: &Path, n_seg: usize, n_comm: usize) -> (usize, usize) {
    let mut rng = Rng(0x5e6d);
    let mut names = Vec::with_capacity(n_seg);
    for i in 0..n_seg {
        let s = segment(&mut rng, i);
        let text = format!("# Owned by team {}\n{}", i % 40, canonical::segment(&s));
        write(
            &dir.join(format!("segments.d/team-{:02}/{}.toml", i % 40, s.name)),
            &text,
        );
        names.push(s.name);
    }
    for i in 0..n_comm {
        let c = communication(&mut rng, i, &names);
        write(
            &dir.join(format!("communications.d/{}.toml", c.name)),
            &canonical::communication(&c),
        );
    }
    (n_seg, n_comm)
}

fn ms(d: StdDuration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Min and median of the samples, in ms.
fn stats(samples: &mut [StdDuration]) -> (f64, f64) {
    samples.sort();
    (ms(samples[0]), ms(samples[samples.len() / 2]))
}

fn row(label: &str, samples: &mut [StdDuration], files: usize) -> f64 {
    let (min, median) = stats(samples);
    let rate = files as f64 / (median / 1000.0);
    println!("  {label:<28} min {min:>8.1} ms   median {median:>8.1} ms   {rate:>9.0} files/s");
    median
}

/// Median time of `validate` on the first `n` segments of the tree.
fn segments_only(tree: &Tree, n: usize, templates: &FsTemplates, iters: usize) -> StdDuration {
    let part = Tree {
        segments: tree.segments[..n].to_vec(),
        ..Tree::default()
    };
    let mut samples: Vec<StdDuration> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(validate(&part, templates));
            t.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

/// Time per segment file at a quarter of the tree and at all of it: about 1 when
/// validation is linear in the number of files, about 4 when it is quadratic.
fn scaling(dir: &Path, templates: &FsTemplates, iters: usize) {
    let tree = load_tree(dir).unwrap_or_else(|e| panic!("load_tree: {e}"));
    let all = tree.segments.len();
    let quarter = all / 4;
    if quarter == 0 {
        return;
    }
    let small = segments_only(&tree, quarter, templates, iters).as_secs_f64() / quarter as f64;
    let large = segments_only(&tree, all, templates, iters).as_secs_f64() / all as f64;
    println!(
        "  scaling (segments only)      {:.1} µs/file at {quarter}, {:.1} µs/file at {all}: ratio {:.2} (1 = linear)",
        small * 1e6,
        large * 1e6,
        large / small
    );
}

/// Median time of `validate` on one segment whose `in` list holds `n` values.
fn long_list(n: usize, templates: &FsTemplates, iters: usize) -> StdDuration {
    let values: Vec<String> = (0..n).map(|i| format!("\"user{i}@example.com\"")).collect();
    let text = format!(
        "[segment]\nname = \"long-list\"\n\n[[filter]]\ntype = \"customer\"\nemail = {{ in = [{}] }}\n",
        values.join(", ")
    );
    let tree = Tree {
        segments: vec![SourceFile {
            path: "segments.d/long-list.toml".into(),
            display: "segments.d/long-list.toml".into(),
            text,
        }],
        ..Tree::default()
    };
    let mut samples: Vec<StdDuration> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            let outcome = validate(&tree, templates);
            let took = t.elapsed();
            assert_eq!(outcome.errors(), 0, "the long list must be valid");
            took
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

/// Time per value of one `in` list at 25,000 and 100,000 values: about 1 when
/// the check for repeated values is linear, about 4 when it is quadratic.
fn list_scaling(templates: &FsTemplates, iters: usize, values: usize) {
    let quarter = values / 4;
    let small = long_list(quarter, templates, iters);
    let large = long_list(values, templates, iters);
    let per = |d: StdDuration, n: usize| d.as_secs_f64() * 1e9 / n as f64;
    println!(
        "  one {values}-value in list     median {:>8.1} ms; {:.0} ns/value at {quarter}, {:.0} ns/value at {values}: ratio {:.2} (1 = linear)",
        ms(large),
        per(small, quarter),
        per(large, values),
        per(large, values) / per(small, quarter)
    );
}

/// The release binary, if built.
fn release_binary() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let bin = target.join("release/segd");
    bin.is_file().then_some(bin)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this once, small.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (n_seg, n_comm) = if smoke {
        (80, 20)
    } else {
        (
            env_or("SEGD_BENCH_SEGMENTS", 8000),
            env_or("SEGD_BENCH_COMMUNICATIONS", 2000),
        )
    };
    let iters = if smoke {
        1
    } else {
        env_or("SEGD_BENCH_ITERS", 10).max(1)
    };
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary folder: {e}"));
    let kept = std::env::var_os("SEGD_BENCH_DIR").map(PathBuf::from);
    let dir = kept.as_deref().unwrap_or(tmp.path());

    let t = Instant::now();
    let (n_seg, n_comm) = generate(dir, n_seg, n_comm);
    let files = n_seg + n_comm;
    println!(
        "segd validate benchmark: {files} files ({n_seg} segments, {n_comm} communications), \
         generated in {:.0} ms; {iters} iteration(s)",
        ms(t.elapsed())
    );

    let templates = FsTemplates {
        dir: dir.to_path_buf(),
        max_file_bytes: segd::config::DEFAULT_MAX_FILE_BYTES,
    };
    let (mut load, mut check, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..iters {
        let t0 = Instant::now();
        let tree = load_tree(dir).unwrap_or_else(|e| panic!("load_tree: {e}"));
        let t1 = Instant::now();
        let outcome = validate(&tree, &templates);
        let t2 = Instant::now();
        assert_eq!(outcome.errors(), 0, "the generated tree must be valid");
        assert_eq!(outcome.definitions.segments.len(), n_seg);
        assert_eq!(outcome.definitions.communications.len(), n_comm);
        std::hint::black_box(&outcome);
        load.push(t1 - t0);
        check.push(t2 - t1);
        total.push(t2 - t0);
    }
    if smoke {
        println!("smoke run (not under `cargo bench`): figures are not measurements");
    }
    println!("library:");
    row("load_tree", &mut load, files);
    row("validate", &mut check, files);
    let median = row("load_tree + validate", &mut total, files);
    scaling(dir, &templates, iters);
    list_scaling(&templates, iters, if smoke { 400 } else { 100_000 });

    match release_binary() {
        Some(bin) if !smoke => {
            let mut runs = Vec::new();
            for _ in 0..iters {
                let t = Instant::now();
                let out = Command::new(&bin)
                    .arg("--dir")
                    .arg(dir)
                    .args(["validate", "--format", "json"])
                    .output()
                    .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
                runs.push(t.elapsed());
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
            println!("release binary end to end ({}):", bin.display());
            row("segd validate --format json", &mut runs, files);
        }
        Some(_) => {}
        None => {
            println!("(no target/release/segd: `cargo build --release` to time the binary too)")
        }
    }

    if smoke {
        return;
    }
    let per_10k = median * 10_000.0 / files as f64;
    println!(
        "summary: {per_10k:.1} ms per 10,000 files (median, library) against a target of {TARGET_MS:.0} ms: {}",
        if per_10k < TARGET_MS {
            "within target"
        } else {
            "OVER TARGET"
        }
    );
}
