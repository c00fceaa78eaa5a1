//! Benchmark of `segd demo-data`: the pure generator alone, then a full load into a
//! fresh SQLite file and, when `SEGD_BENCH_POSTGRES_URL` names a database that may
//! be emptied, into PostgreSQL (its billing tables are replaced).
//!
//!     cargo bench --bench demo_data
//!     SEGD_BENCH_CUSTOMERS=1000000 cargo bench --bench demo_data
//!     SEGD_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/segd_bench cargo bench --bench demo_data
//!
//! The end-to-end figure for the binary itself:
//!
//!     cargo build --release
//!     rm -f /tmp/demo-bench.db*
//!     time target/release/segd demo-data --customers 1000000 --seed 1 \
//!         --database-url sqlite:///tmp/demo-bench.db

// A benchmark reports on a terminal; the CLI's closed-pipe rule is not for it.
#![allow(clippy::disallowed_macros)]

mod common;

use common::{env_or, load_demo};
use segd::demo::{DemoSpec, Generator, RowCounts};
use std::time::Instant;

fn spec(customers: u64) -> DemoSpec {
    DemoSpec {
        seed: 1,
        customers,
        today: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_default(),
    }
}

fn report(what: &str, rows: RowCounts, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{what:<22} {secs:>7.2} s  {:>10.0} rows/s  ({rows})",
        rows.total() as f64 / secs
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let customers: u64 = env_or("SEGD_BENCH_CUSTOMERS", 200_000);
    println!("demo-data benchmark, {customers} customers, seed 1");

    let started = Instant::now();
    let mut rows = RowCounts::default();
    for batch in Generator::new(spec(customers))?.batches(1_000) {
        rows += batch.counts();
    }
    report("generate only", rows, started);

    let runtime = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let started = Instant::now();
    let rows = runtime.block_on(load_demo(&url, spec(customers)))?;
    report("load SQLite", rows, started);

    if let Ok(url) = std::env::var("SEGD_BENCH_POSTGRES_URL") {
        let started = Instant::now();
        let rows = runtime.block_on(load_demo(&url, spec(customers)))?;
        report("load PostgreSQL", rows, started);
    } else {
        println!("load PostgreSQL         skipped: SEGD_BENCH_POSTGRES_URL is not set");
    }
    Ok(())
}
