//! What differs between the backends: [`Backend`], implemented by `sqlite/`
//! and `postgres/`, and the [`Session`] a claim runs in.

use crate::demo::{Generator, RowCounts};
use crate::model::CustomDataKey;
use crate::segment::{Bind, Dialect, Query};
use crate::store::billing::{Existing, LoadError, Progress};
use crate::store::{Election, Held, PlanNode, StoreError};
use futures_util::stream::BoxStream;
use sqlx::{Database, Transaction};
use std::collections::BTreeSet;

/// What differs between the backends.
pub(in crate::store) trait Backend: Send + Sync + 'static {
    type Db: Database;

    const DIALECT: Dialect;

    /// Taken first in an apply's transaction: serialises applies (PostgreSQL).
    const APPLY_XACT_LOCK: Option<&'static str>;

    /// The version of the applied definitions, locked until the transaction
    /// ends where the backend can lock one row.
    const VERSION_FOR_UPDATE: &'static str;

    /// Taken first in a run's transaction, with the communication bound:
    /// serialises one communication's runs (PostgreSQL).
    const TRIGGER_XACT_LOCK: Option<&'static str>;

    /// A delivery's invoice ids as the JSON array text of `invoice_ids`: of one
    /// candidate row `x`, and of a customer's rows grouped (readers sort them,
    /// see [`crate::store::outbox`]).
    const INVOICE_LIST_ONE: &'static str;
    const INVOICE_LIST_AGG: &'static str;

    /// Bounds the ids of the outbox rows a transaction writes: read before and
    /// after its insert, every row it wrote lies between.
    const OUTBOX_BOUND: &'static str;

    /// Appended to a claim's row selection: skip rows another claim has locked.
    const CLAIM_LOCKING: &'static str;

    /// `segd deliveries`: `$1` communication, `$2` status, `$3` run id, `$5`
    /// id (each NULL for any), `$6` an id the rows are below, `$7` and `$8`
    /// the times their runs started from and before (NULL: none); the order
    /// and `LIMIT $4` follow.
    const DELIVERIES: &'static str;

    /// Customers, then invoices, selected by id (see [`Backend::in_ids`]).
    const CUSTOMERS: &'static str;
    const INVOICES: &'static str;

    /// Inserts the members of a sample: `$1` segment, `$2` sampled_at, `$3`
    /// a JSON array of customer ids.
    const INSERT_MEMBERS: &'static str;

    /// How many ids one statement binds at the most.
    const IDS_PER_STATEMENT: usize;

    /// How often a stream of members is read while its rows flow, rather
    /// than being woken for each (see [`super::paced`]); `None`: woken for
    /// each.
    const ROW_PACE: Option<std::time::Duration>;

    fn pool(&self) -> &sqlx::Pool<Self::Db>;

    /// A transaction that writes; SQLite takes the write lock at once.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, StoreError>> + Send;

    /// A transaction that plans `q` as it asks ([`Query::merge_joins`]), or
    /// none where nothing need be set (`q` then runs on the pool).
    fn planned(
        &self,
        q: &Query,
    ) -> impl Future<Output = Result<Option<Transaction<'static, Self::Db>>, StoreError>> + Send;

    /// The rows of a listing `q` planned as it asks, in a transaction of its
    /// own ([`Self::planned`]), or whose connectors are looked up first
    /// ([`Self::resolved`]); none where `q` may run as it is.
    #[allow(clippy::type_complexity)]
    fn planned_rows(
        &self,
        q: &Query,
    ) -> Option<BoxStream<'static, Result<<Self::Db as Database>::Row, StoreError>>>;

    /// `q` with each connector lookup it holds ([`Bind::ConnectorIds`]) made
    /// the ids it finds now, or none where it holds none (SQLite's never do).
    fn resolved(&self, q: &Query)
    -> impl Future<Output = Result<Option<Query>, StoreError>> + Send;

    /// The apply lock, if no one holds it.
    fn try_lock(&self) -> impl Future<Output = Result<Option<Held>, StoreError>> + Send;

    fn release_lock(&self, held: Held) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn rows_affected(result: &<Self::Db as Database>::QueryResult) -> u64;

    /// A segment query's bound values.
    fn args(binds: &[Bind]) -> Result<<Self::Db as Database>::Arguments, StoreError>;

    /// ` IN ($first, …)` or ` = ANY($first)`: a condition on `n` ids bound
    /// from parameter `first` on.
    fn in_ids(first: usize, n: usize) -> String;

    fn bind_ids<'q>(
        q: sqlx::query::Query<'q, Self::Db, <Self::Db as Database>::Arguments>,
        ids: &'q [i64],
    ) -> sqlx::query::Query<'q, Self::Db, <Self::Db as Database>::Arguments>;

    fn bind_keys<'q>(
        q: sqlx::query::Query<'q, Self::Db, <Self::Db as Database>::Arguments>,
        ids: &'q [String],
    ) -> sqlx::query::Query<'q, Self::Db, <Self::Db as Database>::Arguments>;

    /// Where a claim runs: one transaction holding the write lock (SQLite), or
    /// a connection whose statements each commit (PostgreSQL).
    fn claim_session(&self) -> impl Future<Output = Result<Session<Self::Db>, StoreError>> + Send;

    fn explain_query(
        &self,
        q: &Query,
    ) -> impl Future<Output = Result<Vec<PlanNode>, StoreError>> + Send;

    fn keep_custom_data_of(
        &self,
        keys: &BTreeSet<CustomDataKey>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn refresh_statistics(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether segd refreshes the statistics itself.
    const KEEPS_STATISTICS: bool;

    fn load(
        &self,
        generator: Generator,
        existing: Existing,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> impl Future<Output = Result<RowCounts, LoadError>> + Send;

    fn elect(&self) -> Option<Box<dyn Election>>;
}

/// A connection in a transaction, or one whose statements each commit.
pub(in crate::store) enum Session<DB: Database> {
    Transaction(Transaction<'static, DB>),
    Autocommit(sqlx::pool::PoolConnection<DB>),
}

impl<DB: Database> Session<DB> {
    pub(super) fn conn(&mut self) -> &mut DB::Connection {
        match self {
            Session::Transaction(tx) => tx,
            Session::Autocommit(conn) => conn,
        }
    }

    pub(super) async fn finish(self) -> Result<(), StoreError> {
        if let Session::Transaction(tx) = self {
            tx.commit().await?;
        }
        Ok(())
    }
}
