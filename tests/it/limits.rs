//! Ranges of durations, counts, dates and schedules: out-of-range values are
//! refused at validate (file:line) or at argument parsing (naming the flag), and
//! the longest accepted values run without a panic, on each backend.

use crate::cli_plan::TestDb;
use crate::support::{Db, Fixture, each_db, segd_cmd};
use std::process::Output;

fn run(f: &Fixture, db: Option<&TestDb>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = segd_cmd();
    cmd.arg("--dir").arg(f.path());
    if let Some(db) = db {
        cmd.args(["--database-url", &db.url]);
    }
    let o: Output = cmd.args(args).output().expect("run segd");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    (o.status.code().unwrap_or(-1), out, err)
}

/// A communication of `overdue-eu` with an inline body; `min_interval` on line 6,
/// `schedule` (when automatic) on line 10.
fn communication(min_interval: &str, schedule: Option<&str>) -> String {
    let trigger = match schedule {
        Some(s) => format!("type = \"automatic\"\nschedule = \"{s}\""),
        None => "type = \"manual\"".to_string(),
    };
    format!(
        "[communication]\nname = \"limits\"\nsegment = \"overdue-eu\"\nevent = \"payment_reminder\"\n\
         channel = \"email\"\nmin_interval = \"{min_interval}\"\n\n[trigger]\n{trigger}\n\n\
         [email]\nfrom = \"billing@acme.test\"\nsubject = \"Reminder\"\nbody = \"Hello {{{{ customer.name }}}}\"\n"
    )
}

const FILE: &str = "communications.d/limits.toml";

#[test]
fn durations_past_ten_years_are_refused_at_their_line() {
    let f = Fixture::example();
    for d in ["106751991167d", "99999999999999d", "3650d1s"] {
        f.write(FILE, &communication(d, None));
        let (code, out, _) = run(&f, None, &["validate"]);
        assert_eq!(code, 1, "{d}:\n{out}");
        assert!(
            out.contains(&format!("{FILE}:6:16: error: invalid `min_interval` `{d}`"))
                && out.contains("a duration is at most 3650d (about 10 years)"),
            "{d}:\n{out}"
        );
    }
    f.write(
        "segd.toml",
        "[delivery]\nretry_schedule = [\"0s\", \"3651d\"]\nlease = \"99999999999d\"\n",
    );
    let (code, out, _) = run(&f, None, &["validate"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("segd.toml:2:25: error: invalid retry step `3651d`"),
        "{out}"
    );
    assert!(out.contains("segd.toml:3:9: error"), "{out}");
}

/// A file with 40,000 problems on one line of 400 kB: validate reports the
/// first 100, each line cut to a window around its place, and counts the
/// rest in one more. Before, each problem showed the whole line: 40,000
/// unknown values took 7 GB in 20 s (the kernel killed segd at 24 GB), on
/// their way to 18 GB of output.
#[test]
fn a_file_of_many_problems_shows_the_first_hundred_and_counts_the_rest() {
    let f = Fixture::example();
    let values: Vec<String> = (0..40_000).map(|i| format!("\"p{i}\"")).collect();
    let file = "segments.d/many.toml";
    let write = |values: &[String]| {
        f.write(
            file,
            &format!(
                "[segment]\nname = \"many\"\n\n[[filter]]\ntype = \"payment_method\"\npayment_type = {{ in = [{}] }}\n",
                values.join(",")
            ),
        );
    };
    write(&values);
    let (code, out, _) = run(&f, None, &["validate"]);
    assert_eq!(code, 1);
    assert!(out.len() < 64 * 1024, "{} bytes of output", out.len());
    assert!(
        out.contains(&format!(
            "{file}:6:24: error: unknown payment_method `payment_type` value `p0`"
        )),
        "{}",
        &out[..2000]
    );
    assert_eq!(out.matches("error: unknown payment_method").count(), 100);
    assert!(
        out.contains(
            "error: 39900 more problems in this file (39900 of them errors) are not shown"
        ),
        "{}",
        &out[out.len() - 2000..]
    );
    // Every line shown is cut: at most 120 characters of the file's, with
    // the gutter and the marks of the cuts.
    let longest = out.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(longest < 140, "a line of {longest} characters");
    // A secret among the problems: neither a problem's line nor the count's
    // shows it, shown or hidden.
    let mut secret = values.clone();
    secret[100] = "\"sk_live_4eC39HqLyjWDarjtT1zdp7dc\"".to_string();
    write(&secret);
    let (code, out, _) = run(&f, None, &["validate"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("error: 39900 more problems"),
        "{}",
        &out[out.len() - 2000..]
    );
    assert!(
        !out.contains("4eC39HqLyjWDarjtT1zdp7dc"),
        "a secret is shown"
    );
    write(&values);
    // The JSON form counts the same.
    let (code, json, _) = run(&f, None, &["validate", "--format", "json"]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(doc["errors"], 101, "{}", &json[..500]);
}

#[test]
fn flags_out_of_range_name_the_flag() {
    let f = Fixture::example();
    let db = TestDb::sqlite(&f);
    for (args, flag) in [
        (vec!["forecast", "--days", "100000000"], "'--days <DAYS>'"),
        (vec!["forecast", "--days", "0"], "'--days <DAYS>'"),
        (
            vec!["forecast", "--at", "+262000-01-01T00:00:00Z"],
            "'--at <TIME>'",
        ),
        (vec!["plan", "--at", "1969-12-31"], "'--at <TIME>'"),
        (
            vec!["segment", "members", "overdue-eu", "--at", "10000-01-01"],
            "'--at <TIME>'",
        ),
        (vec!["plan", "--max-change", "NaN"], "'--max-change <PCT>'"),
        (vec!["apply", "--max-change=-1"], "'--max-change <PCT>'"),
        (
            vec!["apply", "--lock-timeout", "106751991167d"],
            "'--lock-timeout <DURATION>'",
        ),
        (
            vec!["daemon", "--resync", "3651d"],
            "'--resync <DURATION>': a duration is at most 3650d",
        ),
        (vec!["deliveries", "--limit=-1"], "'--limit <LIMIT>'"),
        (vec!["deliveries", "--limit", "0"], "'--limit <LIMIT>'"),
        (
            vec!["deliveries", "--limit", "1000001"],
            "'--limit <LIMIT>'",
        ),
        (
            vec!["demo-data", "--today", "0900-01-01"],
            "--today: the date 0900-01-01 is out of range",
        ),
        (
            vec!["demo-data", "--customers", "100000001"],
            "'--customers <N>'",
        ),
    ] {
        let (code, _, err) = run(&f, Some(&db), &args);
        assert_eq!(code, 2, "{args:?}:\n{err}");
        assert!(err.contains(flag), "{args:?}:\n{err}");
    }
    // The environment variable says why too.
    let o = segd_cmd()
        .arg("--dir")
        .arg(f.path())
        .args(["--database-url", &db.url, "daemon", "--once"])
        .env("SEGD_RESYNC", "3651d")
        .output()
        .expect("run segd");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("SEGD_RESYNC: invalid value `3651d`: a duration is at most 3650d"),
        "{err}"
    );
}

fn the_longest_values_run(which: Db) {
    let f = Fixture::example();
    f.write(FILE, &communication("3650d", None));
    let dbs: Vec<TestDb> = match which {
        Db::Sqlite => vec![TestDb::sqlite(&f)],
        Db::Postgres => TestDb::postgres("limits::the_longest_values_run")
            .into_iter()
            .collect(),
    };
    for db in &dbs {
        let (code, _, err) = run(
            &f,
            Some(db),
            &["demo-data", "--customers", "40", "--today", "2026-06-01"],
        );
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = run(&f, Some(db), &["apply", "--auto-approve"]);
        assert_eq!(code, 0, "{err}");
        for _ in 0..2 {
            let (code, out, err) = run(&f, Some(db), &["trigger", "limits"]);
            assert_eq!(code, 0, "{out}{err}");
        }
        let (code, out, err) = run(
            &f,
            Some(db),
            &["forecast", "--days", "3650", "--at", "9999-12-31T23:59:59Z"],
        );
        assert_eq!(code, 0, "{out}{err}");
        let (code, out, err) = run(&f, Some(db), &["plan", "--at", "9999-12-31"]);
        assert_eq!(code, 0, "{out}{err}");
    }
}

each_db!(the_longest_values_run);

#[test]
fn a_schedule_that_never_fires_is_an_error() {
    let f = Fixture::example();
    for s in ["0 9 30 2 *", "0 0 31 4 *"] {
        f.write(FILE, &communication("7d", Some(s)));
        let (code, out, _) = run(&f, None, &["validate"]);
        assert_eq!(code, 1, "{s}:\n{out}");
        assert!(
            out.contains(&format!(
                "{FILE}:10:12: error: schedule `{s}` never fires in the next 5 years"
            )),
            "{s}:\n{out}"
        );
    }
}

#[test]
fn a_schedule_firing_more_than_once_a_minute_is_a_warning_in_validate_and_plan() {
    let f = Fixture::example();
    let db = TestDb::sqlite(&f);
    let warning = format!(
        "{FILE}:10:12: warning: schedule `* * * * * *` fires more often than once a minute (1s apart)"
    );
    f.write(FILE, &communication("7d", Some("* * * * * *")));
    let (code, out, _) = run(&f, None, &["validate"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&warning), "{out}");
    let (code, _, err) = run(&f, Some(&db), &["plan"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&warning), "{err}");
    // The daemon logs it when it applies the communication.
    let (code, out, err) = run(&f, Some(&db), &["daemon", "--once", "--log-format", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let logged = format!("{out}{err}");
    let short = warning.replace(": warning: ", ": ");
    assert!(logged.contains(&short), "{logged}");
    // Once a minute is fine.
    f.write(FILE, &communication("7d", Some("0 * * * * *")));
    let (code, out, _) = run(&f, None, &["validate"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning:"), "{out}");
}
