//! Who a run can reach: members without an email address are unreachable for
//! an email communication (counted, not enqueued, not failures); a held run
//! released by `--allow-over-limit`; the report of a run that a daemon's
//! workers send part of.

use super::{Bench, Billing, Receiver, code, email_comm, start_smtp_taking, stderr, text};
use crate::daemon::{Daemon, TOKEN, http};
use crate::support::count;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// Billing::small plus c8, whose address is blank: c7 and c8 are unreachable
/// by email, and their invoices i10 and i11 are never enqueued.
fn billing() -> Billing {
    let mut b = Billing::small();
    b.customers.push((
        "c8".to_string(),
        "Hugo Blank".to_string(),
        Some("  ".to_string()),
        "DE".to_string(),
    ));
    b.invoices.push((
        "i11".to_string(),
        "c8".to_string(),
        "open".to_string(),
        "2099-06-01".to_string(),
    ));
    b
}

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `segd deliveries runs --format json [args]`.
fn runs(b: &Bench, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["deliveries", "runs", "--format", "json"];
    all.extend_from_slice(args);
    let o = b.segd(&all);
    assert_eq!(code(&o), 0, "{}", text(&o));
    match serde_json::from_slice(&o.stdout) {
        Ok(Value::Array(rows)) => rows,
        _ => panic!(
            "deliveries runs --format json is not a JSON array: {}",
            text(&o)
        ),
    }
}

fn eml_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |r| {
        r.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
        })
        .count()
    })
}

fn unreachable_body(mut b: Bench) {
    let billing = billing();
    let rec = Receiver::ok(b.secret());
    let outbox = b.f.path().join("mail-out");
    b.set("SEGD_OUTBOX_DIR", outbox.to_str().expect("utf-8 path"));
    b.f.write("communications.d/mail.toml", &email_comm("mail-invoices"));
    b.f.write(
        "communications.d/hook.toml",
        &super::webhook_comm("hook-invoices", "email_invoice", &rec.url, ""),
    );
    b.setup(&billing);

    // The dry run lists who it reaches and names who it cannot.
    let o = b.segd(&["trigger", "mail-invoices", "--dry-run"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let listed: BTreeSet<String> = out(&o)
        .lines()
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from(["c1", "c2", "c4"].map(String::from)),
        "{}",
        text(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains(
            "dry run: `mail-invoices` would reach 3 customer(s) about 5 invoice(s); nothing was written or sent\n\
             2 unreachable (no email address), not counted: c7, c8\n"
        ),
        "{err}"
    );

    // The run enqueues only the reachable members and exits 0.
    let o = b.segd(&["trigger", "mail-invoices"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        out(&o).starts_with(
            "mail-invoices: 3 recipient(s), 5 enqueued, 2 unreachable (no email address), \
             5 sent, 0 failed, 0 retrying, 0 dead (run mail-invoices:manual-"
        ),
        "{}",
        text(&o)
    );
    assert_eq!(eml_files(&outbox), 5);
    assert_eq!(
        count(
            &b.db.url,
            "SELECT COUNT(*) FROM segd_outbox WHERE customer_id IN ('c7', 'c8')"
        ),
        0
    );

    // The runs listing shows the count, as recorded on the run.
    let listed = runs(&b, &[]);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let r = &listed[0];
    assert_eq!(r["communication"], "mail-invoices");
    assert_eq!(r["status"], "enqueued");
    assert_eq!(r["recipients"], 3);
    assert_eq!(r["enqueued"], 5);
    assert_eq!(r["unreachable"], 2);
    assert_eq!(r["rows"]["sent"], 5);
    assert_eq!(r["rows"]["failed"], 0);
    assert_eq!(r["released_by"], Value::Null);
    let o = b.segd(&["deliveries", "runs"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let table = out(&o);
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "RUN",
            "STATUS",
            "RECIPIENTS",
            "ENQUEUED",
            "PENDING",
            "SENT",
            "FAILED",
            "RETRYING",
            "DEAD",
            "UNREACHABLE"
        ]
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row[1..],
        ["enqueued", "3", "5", "0", "5", "0", "0", "0", "2"],
        "{table}"
    );

    // A webhook needs no address: it reaches every member.
    let o = b.segd(&["trigger", "hook-invoices"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        out(&o).starts_with("hook-invoices: 5 recipient(s), 7 enqueued, 7 sent, 0 failed"),
        "{}",
        text(&o)
    );
    assert!(!out(&o).contains("unreachable"), "{}", text(&o));
    let hook = runs(&b, &["--communication", "hook-invoices"]);
    assert_eq!(hook.len(), 1, "{hook:#?}");
    assert_eq!(hook[0]["unreachable"], 0);

    // The HTTP API's answer counts them too: the invoices of c7 and c8 were
    // never sent, so they are still unreachable.
    let outbox_s = outbox.display().to_string();
    let d = Daemon::start(
        b.f.path(),
        &b.db.url,
        &[],
        &[("SEGD_API_TOKEN", TOKEN), ("SEGD_OUTBOX_DIR", &outbox_s)],
    );
    let auth = format!("Bearer {TOKEN}");
    let (status, body) = http(
        "POST",
        &d.url("/v1/communications/mail-invoices/trigger"),
        &[("Authorization", &auth)],
        "",
    )
    .expect("POST trigger");
    assert_eq!(status, 202, "{body}\n{}", d.logs());
    let answer: Value = serde_json::from_str(&body).expect("a JSON answer");
    assert_eq!(answer["unreachable"], 2, "{body}");
    assert_eq!(answer["recipients"], 0, "{body}");
}

#[test]
fn members_without_an_email_address_are_unreachable_not_failures_on_sqlite() {
    unreachable_body(Bench::sqlite());
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn members_without_an_email_address_are_unreachable_not_failures_on_postgres() {
    if let Some(b) = Bench::postgres("unreachable_members") {
        unreachable_body(b);
    }
}

/// `email_comm` with `max_recipients`.
fn capped(name: &str, max: u64) -> String {
    email_comm(name).replace(
        "channel = \"email\"\n",
        &format!("channel = \"email\"\nmax_recipients = {max}\n"),
    )
}

fn held_body(mut b: Bench) {
    let outbox = b.f.path().join("mail-out");
    b.set("SEGD_OUTBOX_DIR", outbox.to_str().expect("utf-8 path"));
    // Three reachable customers and two unreachable: the limit counts three.
    b.f.write("communications.d/three.toml", &capped("three", 3));
    b.f.write("communications.d/two.toml", &capped("two", 2));
    b.setup(&billing());

    let o = b.segd(&["trigger", "three", "--dry-run"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(!stderr(&o).contains("held"), "{}", text(&o));
    let o = b.segd(&["trigger", "three"]);
    assert_eq!(
        code(&o),
        0,
        "unreachable members do not count: {}",
        text(&o)
    );

    // The dry run says the run would be held.
    let o = b.segd(&["trigger", "two", "--dry-run"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        stderr(&o).contains(
            "warning: the run would be held: 3 customers is more than max_recipients = 2; \
             send it anyway with `segd trigger two --allow-over-limit`\n"
        ),
        "{}",
        text(&o)
    );
    let o = b.segd(&["trigger", "two", "--dry-run", "--allow-over-limit"]);
    assert!(!stderr(&o).contains("held"), "{}", text(&o));

    let o = b.segd(&["trigger", "two"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(stderr(&o).starts_with("held: `two` would reach 3 customers"));
    let o = b.segd(&["trigger", "two", "--allow-over-limit"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        stderr(&o).contains(
            "released 1 held run(s) of `two`: this run sends them (`segd deliveries runs` shows them as released)"
        ),
        "{}",
        text(&o)
    );

    let two = runs(&b, &["--communication", "two"]);
    assert_eq!(two.len(), 2, "{two:#?}");
    assert_eq!(two[0]["status"], "held");
    assert_eq!(two[0]["released_by"], two[1]["id"], "{two:#?}");
    assert_eq!(two[1]["status"], "enqueued");
    assert_eq!(two[1]["released_by"], Value::Null);
    let o = b.segd(&["deliveries", "runs", "--communication", "two"]);
    let table = out(&o);
    let held_line = table.lines().nth(1).unwrap_or_default();
    let release = two[1]["id"].as_str().unwrap_or_default();
    assert!(
        held_line.contains(" released ")
            && held_line.ends_with(&format!("  (released by {release})")),
        "{table}"
    );
    // Releasing happens once.
    let o = b.segd(&["trigger", "two", "--allow-over-limit"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(!stderr(&o).contains("released"), "{}", text(&o));
}

#[test]
fn a_held_run_is_released_by_allow_over_limit_on_sqlite() {
    held_body(Bench::sqlite());
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn a_held_run_is_released_by_allow_over_limit_on_postgres() {
    if let Some(b) = Bench::postgres("held_released") {
        held_body(b);
    }
}

/// Customers of [`Billing::many`] in the runs a daemon sends part of.
const ALONGSIDE: usize = 300;

/// An SMTP server that accepts connections and never answers.
fn silent_smtp() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.extend(conn.ok());
        }
    });
    port
}

/// `segd trigger` with SMTP that takes 20 ms a message and one connection,
/// while a daemon sends by `daemon_env`; returns the trigger's output, the
/// daemon, and how many messages the trigger sent.
fn trigger_alongside(
    b: &Bench,
    daemon_env: &[(&str, &str)],
) -> (std::process::Output, Daemon, usize) {
    b.f.write("communications.d/mail.toml", &email_comm("bulk-mail"));
    b.setup(&Billing::many(ALONGSIDE));
    let d = Daemon::start(b.f.path(), &b.db.url, &[], daemon_env);
    let (port, mails) = start_smtp_taking(Duration::from_millis(20));
    let o = b
        .command(&["trigger", "bulk-mail"])
        .env("SEGD_SMTP_URL", format!("smtp://127.0.0.1:{port}"))
        .env("SEGD_DELIVERY_CONCURRENCY", "1")
        .env("SEGD_DELIVERY_LEASE", "2s")
        .output()
        .expect("run segd trigger");
    let by_trigger = super::lock(&mails).len();
    (o, d, by_trigger)
}

fn alongside_body(b: Bench) {
    let daemon_out = b.f.path().join("daemon-out");
    let daemon_s = daemon_out.display().to_string();
    let (o, d, by_trigger) = trigger_alongside(&b, &[("SEGD_OUTBOX_DIR", &daemon_s)]);
    assert_eq!(code(&o), 0, "{}\n{}", text(&o), d.logs());
    assert!(
        out(&o).starts_with(&format!(
            "bulk-mail: {ALONGSIDE} recipient(s), {ALONGSIDE} enqueued, 0 unreachable (no email address), \
             {ALONGSIDE} sent, 0 failed, 0 retrying, 0 dead"
        )),
        "{}",
        text(&o)
    );
    // The daemon's workers took part (its files), the trigger did the rest (SMTP).
    let by_daemon = eml_files(&daemon_out);
    assert!(
        by_daemon > 0 && by_daemon + by_trigger == ALONGSIDE,
        "the daemon sent {by_daemon}, the trigger {by_trigger}, of {ALONGSIDE}\n{}",
        d.logs()
    );
}

#[test]
fn the_trigger_report_counts_what_a_running_daemon_sent_on_sqlite() {
    alongside_body(Bench::sqlite());
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn the_trigger_report_counts_what_a_running_daemon_sent_on_postgres() {
    if let Some(b) = Bench::postgres("trigger_alongside") {
        alongside_body(b);
    }
}

fn still_sending_body(b: Bench) {
    let smtp = format!("smtp://127.0.0.1:{}", silent_smtp());
    let (o, d, _) = trigger_alongside(&b, &[("SEGD_SMTP_URL", &smtp)]);
    assert_eq!(code(&o), 1, "{}\n{}", text(&o), d.logs());
    let sending = count(
        &b.db.url,
        "SELECT COUNT(*) FROM segd_outbox WHERE status = 'sending'",
    );
    assert!(sending > 0, "{}\n{}", text(&o), d.logs());
    assert!(
        stderr(&o).ends_with(&format!(
            "{sending} still being sent by another sender; see `segd deliveries runs --communication bulk-mail`\n"
        )),
        "{}",
        text(&o)
    );
    let sent = usize::try_from(ALONGSIDE as i64 - sending).unwrap_or_default();
    assert!(
        out(&o).contains(&format!(
            "{ALONGSIDE} enqueued, 0 unreachable (no email address), {sent} sent, 0 failed"
        )),
        "{}",
        text(&o)
    );
}

#[test]
fn a_run_a_stuck_daemon_is_sending_is_reported_unsettled_on_sqlite() {
    still_sending_body(Bench::sqlite());
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn a_run_a_stuck_daemon_is_sending_is_reported_unsettled_on_postgres() {
    if let Some(b) = Bench::postgres("trigger_unsettled") {
        still_sending_body(b);
    }
}

/// A communication's TOML with a daily 07:00 UTC trigger instead of a manual one.
fn daily(toml: &str) -> String {
    toml.replace(
        "[trigger]\ntype = \"manual\"",
        "[trigger]\ntype = \"automatic\"\nschedule = \"0 7 * * *\"\ntimezone = \"UTC\"",
    )
}

fn forecast_body(b: Bench) {
    b.f.write(
        "communications.d/mail.toml",
        &daily(&email_comm("mail-invoices")),
    );
    b.f.write(
        "communications.d/capped.toml",
        &daily(&capped("capped-invoices", 2)),
    );
    b.f.write(
        "communications.d/remind.toml",
        &daily(&super::webhook_comm(
            "remind",
            "payment_reminder",
            "https://hooks.example.test/segd",
            "min_interval = \"2d\"",
        )),
    );
    b.setup(&Billing::small());
    let args = ["forecast", "--at", "2026-12-01T00:00:00Z", "--days", "3"];
    let o = b.segd(&[&args[..], &["--format", "json"]].concat());
    assert_eq!(code(&o), 0, "{}", text(&o));
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).expect("a JSON array");
    let of = |name: &str| -> Vec<(u64, u64, u64, bool)> {
        rows.iter()
            .filter(|r| r["communication"] == name)
            .map(|r| {
                (
                    r["messages"].as_u64().unwrap_or(u64::MAX),
                    r["recipients"].as_u64().unwrap_or(u64::MAX),
                    r["unreachable"].as_u64().unwrap_or(u64::MAX),
                    r["held"].as_bool().unwrap_or_default(),
                )
            })
            .collect()
    };
    // Each invoice is emailed once: by the first occurrence; c7 has no address.
    assert_eq!(
        of("mail-invoices"),
        [(5, 3, 1, false), (0, 0, 1, false), (0, 0, 1, false)],
        "{rows:#?}"
    );
    // Held occurrences send nothing, so each next one would reach them again.
    assert_eq!(
        of("capped-invoices"),
        [(5, 3, 1, true), (5, 3, 1, true), (5, 3, 1, true)],
        "{rows:#?}"
    );
    // min_interval = 2d: reminded on the 1st, not on the 2nd, again on the 3rd.
    assert_eq!(
        of("remind"),
        [(2, 2, 0, false), (0, 0, 0, false), (2, 2, 0, false)],
        "{rows:#?}"
    );

    let o = b.segd(&args);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let lines: Vec<String> = out(&o)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for want in [
        "2026-12-01T07:00:00Z mail-invoices 2026-12-01 07:00 UTC 5 message(s) to 3 customer(s), 1 unreachable (no email address)",
        "2026-12-02T07:00:00Z mail-invoices 2026-12-02 07:00 UTC 0 message(s) to 0 customer(s), 1 unreachable (no email address)",
        "2026-12-01T07:00:00Z capped-invoices 2026-12-01 07:00 UTC 5 message(s) to 3 customer(s), 1 unreachable (no email address) — held: more than max_recipients = 2",
        "2026-12-02T07:00:00Z remind 2026-12-02 07:00 UTC 0 message(s) to 0 customer(s)",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want}\n{}", out(&o));
    }
}

#[test]
fn forecast_carries_each_occurrences_sends_forward_on_sqlite() {
    forecast_body(Bench::sqlite());
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn forecast_carries_each_occurrences_sends_forward_on_postgres() {
    if let Some(b) = Bench::postgres("forecast_forward") {
        forecast_body(b);
    }
}

/// A disabled communication runs on demand no more than on its schedule: the
/// real run and the dry run are refused alike, and nothing is recorded.
#[test]
fn a_disabled_communication_is_refused_on_demand() {
    let b = Bench::sqlite();
    b.f.write(
        "communications.d/paused.toml",
        &email_comm("paused").replace(
            "channel = \"email\"\n",
            "channel = \"email\"\nenabled = false\n",
        ),
    );
    b.setup(&billing());
    for args in [
        &["trigger", "paused"][..],
        &["trigger", "paused", "--dry-run"],
    ] {
        let o = b.segd(args);
        assert_eq!(code(&o), 1, "{args:?}: {}", text(&o));
        assert!(
            stderr(&o).contains("communication `paused` is disabled (enabled = false)"),
            "{args:?}: {}",
            text(&o)
        );
        assert!(out(&o).is_empty(), "{args:?}: {}", text(&o));
    }
    assert!(runs(&b, &[]).is_empty());
}
