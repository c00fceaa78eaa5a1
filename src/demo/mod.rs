//! Realistic, deterministic demo billing data for `segd demo-data` (SPEC §5): rows
//! for every SPEC §4 billing table as a pure function of a seed, a customer count
//! and the date the data is relative to. No IO and no clock.
//!
//! Customer `n` draws from its own ChaCha8 stream (the seed's key, stream `n`), so
//! it looks the same whatever the batch size and the customer count; the ids of
//! payment methods, invoices and monitors are numbered in order. Customers come in
//! batches ([`Generator::next_batch`]) so a million of them never sit in memory.
//!
//! Email addresses use reserved example domains (RFC 2606, RFC 6761): a communication
//! triggered on demo data must never reach a real mailbox.

use chrono::{DateTime, Datelike as _, NaiveDate, Timelike as _, Utc};
use std::fmt::Write as _;
use std::sync::Arc;

mod contacts;
mod dice;
mod generator;
mod tables;
#[cfg(test)]
mod tests;

pub use generator::Generator;
pub use tables::{CONNECTORS, MONITOR_NAMES};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSpec {
    pub seed: u64,
    pub customers: u64,
    /// The date the data is relative to: due dates, ages and "last updated" times
    /// fall around it, and every timestamp lies before its midnight (UTC).
    pub today: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemoError {
    #[error("the date {0} is out of range for demo data: use a year from 1900 to 9000")]
    TodayOutOfRange(NaiveDate),
}

/// A billing connector (payment provider account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connector {
    pub id: &'static str,
    pub name: &'static str,
    pub kind: &'static str,
    pub connection: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: Arc<str>,
    pub name: String,
    pub email: Option<String>,
    pub country: Option<&'static str>,
    /// A JSON object as text, or NULL.
    pub custom_data: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerConnector {
    pub customer_id: Arc<str>,
    pub connector_id: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMethod {
    pub id: String,
    pub customer_id: Arc<str>,
    /// The `type` column.
    pub kind: &'static str,
    pub status: &'static str,
    pub connector_id: Option<&'static str>,
    pub is_default: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: String,
    pub customer_id: Arc<str>,
    pub number: String,
    pub status: &'static str,
    pub amount_cents: i64,
    pub currency: &'static str,
    pub due_date: NaiveDate,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    pub id: String,
    pub customer_id: Arc<str>,
    pub name: &'static str,
    pub state: &'static str,
    pub updated_at: DateTime<Utc>,
}

/// The rows of a run of consecutive customers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub customers: Vec<Customer>,
    pub customer_connectors: Vec<CustomerConnector>,
    pub payment_methods: Vec<PaymentMethod>,
    pub invoices: Vec<Invoice>,
    pub monitors: Vec<Monitor>,
}

impl Batch {
    pub fn counts(&self) -> RowCounts {
        RowCounts {
            connectors: 0,
            customers: self.customers.len() as u64,
            customer_connectors: self.customer_connectors.len() as u64,
            payment_methods: self.payment_methods.len() as u64,
            invoices: self.invoices.len() as u64,
            monitors: self.monitors.len() as u64,
        }
    }
}

/// Rows per billing table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub connectors: u64,
    pub customers: u64,
    pub customer_connectors: u64,
    pub payment_methods: u64,
    pub invoices: u64,
    pub monitors: u64,
}

impl RowCounts {
    pub fn total(&self) -> u64 {
        self.connectors
            + self.customers
            + self.customer_connectors
            + self.payment_methods
            + self.invoices
            + self.monitors
    }
}

impl std::ops::AddAssign for RowCounts {
    fn add_assign(&mut self, o: Self) {
        self.connectors += o.connectors;
        self.customers += o.customers;
        self.customer_connectors += o.customer_connectors;
        self.payment_methods += o.payment_methods;
        self.invoices += o.invoices;
        self.monitors += o.monitors;
    }
}

impl std::fmt::Display for RowCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connectors, {} customers, {} customer_connectors, {} payment_methods, {} invoices, {} monitors",
            self.connectors,
            self.customers,
            self.customer_connectors,
            self.payment_methods,
            self.invoices,
            self.monitors
        )
    }
}

/// A timestamp in the SPEC §4 SQLite form: UTC text `YYYY-MM-DDTHH:MM:SSZ`.
pub fn timestamp_text(t: &DateTime<Utc>) -> String {
    let mut s = String::with_capacity(20);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    s
}

/// A date in the SPEC §4 SQLite form: `YYYY-MM-DD`.
pub fn date_text(d: NaiveDate) -> String {
    let mut s = String::with_capacity(10);
    let _ = write!(s, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
    s
}
