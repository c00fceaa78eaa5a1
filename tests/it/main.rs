//! The integration tests of segd, built as one binary: one module per area,
//! with the fixture helpers they share in `support`.

mod browser;
mod cli_plan;
mod cli_validate;
mod daemon;
mod deliver;
mod demo_data;
mod docs;
mod files;
mod limits;
mod plans;
mod props;
mod quickstart;
mod segment_gen;
mod segments;
mod sizes;
mod statistics;
mod support;
