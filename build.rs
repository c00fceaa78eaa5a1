//! Marks a build made without PostgreSQL for the tests: with neither
//! `SEGD_TEST_POSTGRES_URL` nor `CI` set, `cfg(no_pg)` is on and the tests
//! that need PostgreSQL show as ignored in `cargo test`'s summary instead of
//! passing without running. (In CI they run, and fail without the URL.)

// A build script speaks to cargo on stdout.
#![allow(clippy::disallowed_macros)]

fn main() {
    println!("cargo::rustc-check-cfg=cfg(no_pg)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=SEGD_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=CI");
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if !set("SEGD_TEST_POSTGRES_URL") && std::env::var_os("CI").is_none() {
        println!("cargo::rustc-cfg=no_pg");
    }
}
