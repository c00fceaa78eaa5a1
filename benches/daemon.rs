//! `cargo bench --bench daemon`: the daemon with 10,000 definitions loaded —
//! latency from a file save to the change being in the database (median and
//! p90 over 20 edits; target < 500 ms median) and idle RSS (target < 60 MB).
//!
//! Knobs: `SEGD_BENCH_DEFINITIONS` (10000), `SEGD_BENCH_EDITS` (20).

// A benchmark reports on a terminal; the CLI's closed-pipe rule is not for it.
#![allow(clippy::disallowed_macros)]

mod common;

use common::{env_or, proc_kb};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn segment(i: usize, description: &str) -> String {
    let countries = ["DE", "FR", "US", "GB", "NL", "ES", "IT", "SE"];
    format!(
        "[segment]\nname = \"seg-{i:05}\"\ndescription = \"{description}\"\n\n[[filter]]\ntype = \"customer\"\ncountry = \"{}\"\n\n[[filter]]\ntype = \"invoice\"\nstatus = {{ in = [\"open\", \"overdue\"] }}\ndue_date_exceeded_by_days = {{ gte = {} }}\n",
        countries[i % countries.len()],
        i % 90
    )
}

fn communication(i: usize, segments: usize) -> String {
    format!(
        "[communication]\nname = \"comm-{i:05}\"\nsegment = \"seg-{:05}\"\nevent = \"payment_reminder\"\nchannel = \"webhook\"\n\n[trigger]\ntype = \"manual\"\n\n[webhook]\nurl = \"https://hooks.example/{i}\"\nsecret_env = \"SEGD_WEBHOOK_SECRET\"\n",
        i % segments
    )
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_segd");
    let total = env_or("SEGD_BENCH_DEFINITIONS", 10_000);
    let edits = env_or("SEGD_BENCH_EDITS", 20);
    let segments = total * 4 / 5;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let root = dir.path();
    std::fs::create_dir_all(root.join("segments.d")).expect("mkdir");
    std::fs::create_dir_all(root.join("communications.d")).expect("mkdir");
    for i in 0..segments {
        std::fs::write(
            root.join(format!("segments.d/seg-{i:05}.toml")),
            segment(i, "generated"),
        )
        .expect("write");
    }
    for i in 0..total - segments {
        std::fs::write(
            root.join(format!("communications.d/comm-{i:05}.toml")),
            communication(i, segments),
        )
        .expect("write");
    }
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

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let child = Command::new(bin)
        .args([
            "daemon",
            "-q",
            "--resync",
            "1h",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--dir",
        ])
        .arg(root)
        .args(["--database-url", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let pid = child.id();
    let _daemon = Daemon(child);
    let t = Instant::now();
    while get(port, "/readyz") != Some(200) {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the daemon did not become ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("ready after {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
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
