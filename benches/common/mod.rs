//! Helpers the bench binaries share (each includes this as `mod common;`).

use segd::demo::{DemoSpec, Generator, RowCounts};
use segd::store::billing::Existing;
use std::str::FromStr;

/// The number in environment variable `name` (a bench's knob), or `default`.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A memory figure of process `pid` in KiB from `/proc/PID/status`: `VmRSS` (now)
/// or `VmHWM` (peak).
#[allow(dead_code)] // not every bench measures memory
pub fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Fills the billing tables of the database at `url` with demo data, replacing
/// what they hold, as `segd demo-data` does; returns the rows written.
#[allow(dead_code)] // not every bench loads demo data
pub async fn load_demo(url: &str, spec: DemoSpec) -> Result<RowCounts, Box<dyn std::error::Error>> {
    let store = segd::store::connect(url).await?;
    let rows = store
        .load_demo(Generator::new(spec)?, Existing::Replace, &mut |_| {})
        .await;
    store.close().await;
    Ok(rows?)
}
