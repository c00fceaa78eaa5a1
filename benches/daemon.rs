//! `cargo bench --bench daemon`: the daemon with 10,000 definitions loaded —
//! latency from a file save to the change being in the database (median and
//! p90 over 20 edits; target < 500 ms median) and idle RSS (target < 60 MB).
//!
//! Knobs: `SEGD_BENCH_DEFINITIONS` (10000), `SEGD_BENCH_EDITS` (20).

// A benchmark reports on a terminal; the CLI's closed-pipe rule is not for it.
#![allow(clippy::disallowed_macros)]

mod common;

use common::{Daemon, env_or, proc_kb, segment, write_tree};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let bin = env!("CARGO_BIN_EXE_segd");
    let total = env_or("SEGD_BENCH_DEFINITIONS", 10_000);
    let edits = env_or("SEGD_BENCH_EDITS", 20);
    let segments = total * 4 / 5;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let root = dir.path();
    write_tree(root, segments, total - segments);
    let db = root.join("segd.db");
    let url = format!("sqlite://{}", db.display());
    let t = Instant::now();
    let applied = Command::new(bin)
        .args(["apply", "--auto-approve", "-q", "--dir"])
        .arg(root)
        .args(["--database-url", &url])
        .stdout(Stdio::null())
        .status()
        .expect("run segd apply");
    assert!(applied.success(), "initial apply failed");
    println!(
        "initial apply of {total} definitions: {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );

    let (daemon, ready) = Daemon::start(
        root,
        &url,
        &["-q"],
        &[],
        Stdio::null(),
        Duration::from_secs(120),
    );
    let pid = daemon.pid();
    println!("ready after {:.0} ms", ready.as_secs_f64() * 1000.0);
    std::thread::sleep(Duration::from_secs(3));
    let idle = proc_kb(pid, "VmRSS").unwrap_or_default();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let pool = rt
        .block_on(sqlx::SqlitePool::connect(&url))
        .expect("open the database");
    let mut latencies = Vec::new();
    for n in 0..edits {
        let i = (n * 397) % segments;
        let mark = format!("edit {n}");
        std::fs::write(
            root.join(format!("segments.d/seg-{i:05}.toml")),
            segment(i, &mark),
        )
        .expect("write");
        let t = Instant::now();
        loop {
            let spec: Option<String> = rt
                .block_on(
                    sqlx::query_scalar(
                        "SELECT spec FROM segd_definitions WHERE kind = 'segment' AND name = $1",
                    )
                    .bind(format!("seg-{i:05}"))
                    .fetch_optional(&pool),
                )
                .ok()
                .flatten();
            if spec.is_some_and(|s| s.contains(&mark)) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "edit {n} was not applied within 30 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        latencies.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = latencies[latencies.len() / 2];
    let p90 = latencies[(latencies.len() * 9 / 10).min(latencies.len() - 1)];
    let after = proc_kb(pid, "VmRSS").unwrap_or_default();
    println!(
        "file save → database, {edits} edits with {total} definitions: median {:.0} ms, p90 {:.0} ms, max {:.0} ms (target < 500 ms median)",
        ms(median),
        ms(p90),
        ms(latencies[latencies.len() - 1])
    );
    println!(
        "daemon RSS with {total} definitions: idle {:.1} MB, after the edits {:.1} MB (target < 60 MB idle)",
        idle as f64 / 1024.0,
        after as f64 / 1024.0
    );
}
