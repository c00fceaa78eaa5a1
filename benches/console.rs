//! `cargo bench --bench console`: the web console of a daemon with 10,000
//! definitions applied and 1,000,000 demo customers — each page's time (the
//! median of N requests after one warm-up; target < 100 ms, the segment page's
//! first page of members included) and the daemon's extra RSS after serving
//! them, against its idle RSS once segment sizes were sampled (target
//! < 50 MB). Prints a table (with the RSS after each page, to tell which one
//! grows it); exits with 1 when a figure is over its target.
//!
//! Knobs: `SEGD_BENCH_CUSTOMERS` (1000000), `SEGD_BENCH_DEFINITIONS` (10000),
//! `SEGD_BENCH_REQUESTS` (20), `SEGD_BENCH_DB` (a database URL to reuse, with
//! its customers as they are: loading a million demo customers takes
//! minutes; default a fresh SQLite file), `SEGD_BENCH_SAMPLE_WAIT` (seconds to
//! wait for the size samples, 1800), `SEGD_BENCH_SAMPLE_ALL=1` (wait until
//! every segment has one, not only for the sampler's first pass).

// A benchmark reports on a terminal; the CLI's closed-pipe rule is not for it.
#![allow(clippy::disallowed_macros)]

mod common;

use common::{Daemon, env_or, get, load_demo, proc_kb, write_tree};
use segd::demo::DemoSpec;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A segment of the few demo customers named like the first one (about one in
/// 2,000) with something unpaid, and a webhook communication to it at a
/// closed loopback port: its run leaves deliveries for the delivery pages.
const PROBE_SEGMENT: &str = "[segment]\nname = \"bench-probe\"\ndescription = \"A handful of customers\"\n\n\
     [[filter]]\ntype = \"customer\"\nname = { starts_with = \"Vertex Travel\" }\n\n\
     [[filter]]\ntype = \"invoice\"\nstatus = { in = [\"open\", \"partially_paid\", \"overdue\"] }\n";
const PROBE_HOOK: &str = "[communication]\nname = \"bench-probe\"\nsegment = \"bench-probe\"\n\
     event = \"email_invoice\"\nchannel = \"webhook\"\n\n[trigger]\ntype = \"manual\"\n\n[webhook]\n\
     url = \"http://127.0.0.1:9/hook\"\nsecret_env = \"SEGD_WEBHOOK_SECRET\"\ntimeout = \"1s\"\n";
const SECRET: &str = "whsec_c2VnZC1iZW5jaC1jb25zb2xlLXNlY3JldC0xMjM0";

const TARGET_MS: f64 = 100.0;
const TARGET_EXTRA_MB: f64 = 50.0;

/// `segd ARGS --dir DIR --database-url URL`, quiet: whether it succeeded.
fn segd(dir: &Path, url: &str, args: &[&str]) -> bool {
    Command::new(env!("CARGO_BIN_EXE_segd"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .args(["--database-url", url])
        .env("SEGD_WEBHOOK_SECRET", SECRET)
        .env("SEGD_RETRY_SCHEDULE", "0s")
        .stdout(Stdio::null())
        .status()
        .expect("run segd")
        .success()
}

/// The first `href` in `html` starting with `prefix` (a page's first link
/// of a kind).
fn first_link(html: &str, prefix: &str) -> Option<String> {
    let at = html.find(&format!("href=\"{prefix}"))? + "href=\"".len();
    let end = html[at..].find('"')?;
    Some(html[at..at + end].to_string())
}

/// The median, the fastest and the slowest of `n` timed GETs of `path` after
/// one warm-up, in ms (on a shared machine the fastest is the least disturbed);
/// panics on a status other than 200.
fn time_page(port: u16, path: &str, n: usize) -> (f64, f64, f64) {
    let mut times = Vec::with_capacity(n);
    for i in 0..=n {
        let t = Instant::now();
        let (status, body) = get(port, path).unwrap_or_else(|| panic!("GET {path} failed"));
        let took = t.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(status, 200, "GET {path}: {body}");
        if i > 0 {
            times.push(took);
        }
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0], times[times.len() - 1])
}

fn main() {
    let customers: u64 = env_or("SEGD_BENCH_CUSTOMERS", 1_000_000);
    let total: usize = env_or("SEGD_BENCH_DEFINITIONS", 10_000);
    let requests: usize = env_or::<usize>("SEGD_BENCH_REQUESTS", 20).max(1);
    let sample_wait = Duration::from_secs(env_or("SEGD_BENCH_SAMPLE_WAIT", 1800));
    let dir = tempfile::tempdir().expect("a temporary folder");
    let root = dir.path();
    let url = std::env::var("SEGD_BENCH_DB")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("sqlite://{}", root.join("segd.db").display()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    // The tree: generated segments and communications, and the probe pair.
    let segments = (total * 4 / 5).max(2) - 1;
    let communications = total.saturating_sub(segments + 2);
    write_tree(root, segments, communications);
    std::fs::write(root.join("segments.d/bench-probe.toml"), PROBE_SEGMENT).expect("write");
    std::fs::write(root.join("communications.d/bench-probe.toml"), PROBE_HOOK).expect("write");

    if std::env::var_os("SEGD_BENCH_DB").is_none() {
        assert!(segd(root, &url, &["db", "migrate"]), "db migrate failed");
        let t = Instant::now();
        let spec = DemoSpec {
            seed: 1,
            customers,
            today: chrono::Utc::now().date_naive(),
        };
        let rows = rt
            .block_on(load_demo(&url, spec))
            .unwrap_or_else(|e| panic!("loading the demo data failed: {e}"));
        println!(
            "demo data ({customers} customers): {rows} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    assert!(
        segd(root, &url, &["apply", "--auto-approve", "-q"]),
        "apply failed"
    );
    println!(
        "apply of {total} definitions: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // Its deliveries fail (exit 1): the closed port is the point.
    let _ = segd(root, &url, &["trigger", "bench-probe", "-q"]);

    let log = root.join("daemon.log");
    let log_file = std::fs::File::create(&log).expect("a log file");
    let (daemon, ready) = Daemon::start(
        root,
        &url,
        &[],
        &[
            ("SEGD_WEBHOOK_SECRET", SECRET),
            ("SEGD_RETRY_SCHEDULE", "0s"),
            ("NO_COLOR", "1"),
        ],
        Stdio::from(log_file),
        Duration::from_secs(300),
    );
    let (pid, port) = (daemon.pid(), daemon.port);
    println!("daemon ready after {:.1} s", ready.as_secs_f64());
    // The pages show sizes from samples: wait for the sampler's first pass
    // (the first 200 segments by name: the first page of the list), or, with
    // SEGD_BENCH_SAMPLE_ALL=1, until every segment has one, which also
    // settles the daemon's memory before the idle figure (the sampler
    // measures a slice a pass, and goes on while the pages are timed).
    let all = std::env::var_os("SEGD_BENCH_SAMPLE_ALL").is_some_and(|v| v == "1");
    let t = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let passes: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("segment sizes sampled"))
            .collect();
        if let Some(last) = passes.last().filter(|l| !all || l.contains(" due=0 ")) {
            let took: u64 = passes
                .iter()
                .filter_map(|l| {
                    let ms = l.split(" took_ms=").nth(1)?.split_whitespace().next()?;
                    ms.parse::<u64>().ok()
                })
                .sum();
            println!(
                "size samples after {:.1} s: {} pass(es) measuring for {:.1} s in all; last: {last}",
                t.elapsed().as_secs_f64(),
                passes.len(),
                took as f64 / 1000.0
            );
            break;
        }
        assert!(
            t.elapsed() < sample_wait,
            "no size sample within {} s (SEGD_BENCH_SAMPLE_WAIT)",
            sample_wait.as_secs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));
    let idle = proc_kb(pid, "VmRSS").unwrap_or_default();

    // The pages, with the ids the lists link to.
    let page = |path: &str| -> String {
        get(port, path)
            .map(|(_, body)| body)
            .unwrap_or_else(|| panic!("GET {path} failed"))
    };
    let delivery = first_link(
        &page("/deliveries?communication=bench-probe"),
        "/deliveries/",
    );
    let apply = first_link(&page("/history"), "/history/").expect("an apply on /history");
    let segment_page = page("/segments/seg-00000");
    let next_members =
        first_link(&segment_page, "/segments/seg-00000?after=").map(|l| l.replace("&amp;", "&"));
    let mut paths = vec![
        "/".to_string(),
        "/segments".to_string(),
        "/segments?page=2".to_string(),
        "/segments?q=seg-0001".to_string(),
        "/segments/seg-00000".to_string(),
        "/segments/seg-00000?q=a".to_string(),
        "/segments/bench-probe".to_string(),
        "/communications".to_string(),
        "/communications/comm-00000".to_string(),
        "/communications/bench-probe?member=cus_000001".to_string(),
        "/deliveries".to_string(),
        "/deliveries?status=dead".to_string(),
        "/history".to_string(),
        apply,
    ];
    // A database without such customers has no delivery to show.
    paths.extend(delivery);
    paths.extend(next_members);

    println!();
    println!(
        "{:<48} {:>10} {:>10} {:>10} {:>13}",
        format!("page ({requests} requests)"),
        "median ms",
        "min ms",
        "max ms",
        "RSS after MB"
    );
    let mut over = Vec::new();
    for path in &paths {
        let (median, min, max) = time_page(port, path, requests);
        let rss = proc_kb(pid, "VmRSS").unwrap_or_default() as f64 / 1024.0;
        println!("{path:<48} {median:>10.1} {min:>10.1} {max:>10.1} {rss:>13.1}");
        if median >= TARGET_MS {
            over.push(format!("{path}: median {median:.1} ms"));
        }
    }
    let after = proc_kb(pid, "VmRSS").unwrap_or_default();
    let extra_mb = after.saturating_sub(idle) as f64 / 1024.0;
    println!();
    println!(
        "daemon RSS: idle {:.1} MB, after the pages {:.1} MB, extra {extra_mb:.1} MB (target < {TARGET_EXTRA_MB} MB)",
        idle as f64 / 1024.0,
        after as f64 / 1024.0
    );
    println!(
        "{total} definitions, {customers} customers{}; target < {TARGET_MS} ms median per page",
        if std::env::var_os("SEGD_BENCH_DB").is_some() {
            " (SEGD_BENCH_DB: as loaded)"
        } else {
            ""
        }
    );
    if extra_mb >= TARGET_EXTRA_MB {
        over.push(format!("extra RSS {extra_mb:.1} MB"));
    }
    // Stop the daemon and remove the folder: exit() runs no destructor.
    drop(daemon);
    drop(dir);
    if !over.is_empty() {
        println!("over target: {}", over.join("; "));
        std::process::exit(1);
    }
}
