//! segd: a declarative GitOps reconciler for customer segments and the billing
//! communications sent to them.
//!
//! Pure core: [`model`], [`validate`], [`canonical`], [`schema`]; edges: [`source`]
//! (files) and [`cli`]. Time and randomness come from a [`clock::Clock`] the edge
//! hands in (the system's in production, a hand-moved one in tests).

pub mod canonical;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod daemon;
pub mod deliver;
pub mod demo;
pub mod diag;
pub mod error;
pub mod forecast;
mod memory;
pub mod model;
pub mod ops;
pub mod plan;
pub mod schedule;
pub mod schema;
pub mod segment;
pub mod source;
pub mod store;
pub mod trigger;
pub mod validate;
