//! Bulk loading of the SPEC §4 billing tables, for `segd demo-data`.
//!
//! One transaction per load, so a failed or interrupted load changes nothing. The
//! generator and the encoding of the rows run on a blocking thread while the
//! database executes the previous statements: on SQLite multi-row `INSERT`s of up
//! to 32766 bound parameters (one prepared statement per table, reused), with a
//! rollback journal instead of the WAL for the load and `synchronous = OFF` on the
//! load's connection; on PostgreSQL one `COPY … FROM STDIN` per table and batch
//! (the rows travel as data, never as SQL). Secondary indexes on the billing
//! tables are dropped for the load and rebuilt from their own definitions before
//! the commit, and the tables analyzed for the query planner (SQLite: in the
//! transaction; PostgreSQL: after it). Values go in the SPEC §4 forms: on SQLite UTC text
//! `YYYY-MM-DDTHH:MM:SSZ`, `YYYY-MM-DD`, 0/1 and JSON text; on PostgreSQL
//! TIMESTAMPTZ, DATE, BOOLEAN and JSONB.
//!
//! Where the time goes (1M customers, 7M rows, 2 cores; 27 s on SQLite): about
//! 11 s in the inserts (bound by SQLite's thread: sqlx copies every bound value)
//! and 16 s in rebuilding the indexes, each a full scan and sort of its table;
//! the invoice indexes on `(status, <date>, customer_id)` hold only unpaid
//! invoices (migration 0003), which halved their share. ANALYZE adds about 3 s.
//! On PostgreSQL the server's COPY and index builds.

use super::StoreError;
use crate::demo::{Batch, Generator, RowCounts};
use sqlx::error::BoxDynError;
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the billing tables are not empty ({customers} customers); nothing was changed")]
    NotEmpty { customers: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for LoadError {
    fn from(e: sqlx::Error) -> Self {
        LoadError::Store(StoreError::Db {
            what: "loading the demo data",
            source: super::DbError(e),
        })
    }
}

/// What a load does with rows already in the billing tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Fail with [`LoadError::NotEmpty`] when any billing table holds a row.
    Refuse,
    /// Delete every row of the billing tables first (in the same transaction).
    Replace,
}

/// How far a load is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// This many customers (with their rows) have been written.
    Customers(u64),
    /// All rows are written; indexes are being rebuilt, the tables analyzed
    /// (SQLite; PostgreSQL analyzes them after the commit) and the load committed.
    Finishing,
}

/// The billing tables of SPEC §4.
pub const BILLING_TABLES: [&str; 6] = [
    "connectors",
    "customers",
    "customer_connectors",
    "payment_methods",
    "invoices",
    "monitors",
];

/// How many customers there are, and whether any billing table holds a row.
pub(super) const OCCUPANCY: &str = "SELECT (SELECT count(*) FROM customers), \
     (SELECT count(*) FROM (SELECT 1 FROM connectors LIMIT 1) a) \
     + (SELECT count(*) FROM (SELECT 1 FROM customer_connectors LIMIT 1) b) \
     + (SELECT count(*) FROM (SELECT 1 FROM payment_methods LIMIT 1) c) \
     + (SELECT count(*) FROM (SELECT 1 FROM invoices LIMIT 1) d) \
     + (SELECT count(*) FROM (SELECT 1 FROM monitors LIMIT 1) e)";

/// Batches buffered between the generator thread and the database.
const IN_FLIGHT: usize = 4;
/// A statement ready to run: SQL built from constants only, and its arguments.
pub(super) struct Prepared<A> {
    pub(super) sql: Arc<str>,
    pub(super) args: A,
    /// A second reference to the arguments' values, so that they are freed here
    /// rather than on the database's thread (SQLite), which is the bottleneck.
    pub(super) keep: Option<A>,
}

/// The statements for the next customers, and how many customers they complete.
pub(super) struct Chunk<A> {
    pub(super) statements: Vec<Prepared<A>>,
    pub(super) customers: u64,
    pub(super) rows: RowCounts,
}

/// Turns batches of rows into statements, on the generator thread.
pub(super) trait Encoder: Send + 'static {
    type Args: Send + 'static;
    fn batch(&mut self, b: Batch, out: &mut Vec<Prepared<Self::Args>>) -> Result<(), BoxDynError>;
    fn finish(&mut self, out: &mut Vec<Prepared<Self::Args>>) -> Result<(), BoxDynError>;
}

/// Runs the generator and the encoder on a blocking thread; the receiver gets the
/// chunks in order, the last one carrying the encoder's remainder. Dropping the
/// receiver stops the thread.
pub(super) fn spawn_encoding<E: Encoder>(
    mut generator: Generator,
    mut encoder: E,
    batch: usize,
) -> mpsc::Receiver<Result<Chunk<E::Args>, BoxDynError>> {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut statements = Vec::new();
            let (result, rows, last) = match generator.next_batch(batch) {
                Some(b) => {
                    let rows = b.counts();
                    (encoder.batch(b, &mut statements), rows, false)
                }
                None => (encoder.finish(&mut statements), RowCounts::default(), true),
            };
            let item = result.map(|()| Chunk {
                statements,
                customers: generator.generated(),
                rows,
            });
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed || last {
                break;
            }
        }
    });
    rx
}

pub(super) fn encode_error(e: BoxDynError) -> LoadError {
    LoadError::from(sqlx::Error::Encode(e))
}
/// Quotes an identifier for SQL (both backends).
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("invoices_customer"), "\"invoices_customer\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
