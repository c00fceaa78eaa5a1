//! Benchmark of `segd demo-data` (filled in below).
fn main() {}
