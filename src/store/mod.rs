//! Storage: the [`Store`] trait, every operation segd performs on its
//! database. [`connect`] picks the backend once, from the URL, and hands back a
//! `Box<dyn Store>`: callers never know which one it is.
//!
//! - `sql`: the operations, written once over [`sql::Backend`], with the SQL
//!   text both backends share;
//! - `sqlite/`, `postgres/`: what differs — connecting, the apply lock,
//!   transactions, bound id lists, `EXPLAIN`, statistics, bulk loading and (on
//!   PostgreSQL) leader election; each with its own `migrations/` folder;
//! - `outbox`, `members`, `sizes`: the types those operations take and return;
//! - `billing`: the bulk loader behind `segd demo-data`.

pub mod billing;
mod members;
mod migrations;
pub mod outbox;
mod postgres;
pub mod sizes;
mod sql;
mod sqlite;

pub use members::{Member, PlanNode};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::config::redact_url;
use crate::demo::{Generator, RowCounts};
use crate::model::{CustomDataKey, Customer, Invoice};
use crate::plan::{Applied, AppliedState, Kind, Plan, Undecodable};
use crate::segment::{Dialect, Query};
use billing::{Existing, LoadError, Progress};
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use outbox::{
    Claimed, Delivery, DeliveryFilter, Enqueue, Mark, Retried, Run, RunFilter, RunResult,
    RunSummary,
};
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL `{0}`: use sqlite://FILE or postgres://HOST/DB")]
    Scheme(String),
    #[error("cannot open the database {url}")]
    Connect {
        url: String,
        #[source]
        source: DbError,
    },
    #[error("connection refused at {at}: is PostgreSQL running there, and listening on that port?")]
    Refused { at: String },
    #[error(
        "no answer from {at} within {secs} s: is the host right, and does a firewall let the connection through?"
    )]
    NoAnswer { at: String, secs: u64 },
    #[error(
        "the database `{name}` does not exist on {at}; create it with `createdb{flags} {name}`, or name another database in the URL"
    )]
    NoDatabase {
        name: String,
        at: String,
        /// `createdb`'s flags for the server and user (` -h HOST -p PORT -U USER`).
        flags: String,
    },
    #[error("cannot open the database {url}: invalid URL")]
    BadUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error(
        "cannot open the database {url}: unknown connection parameter `{key}`; known: {}, options[NAME]",
        postgres::KNOWN_PARAMS.join(", ")
    )]
    UnknownParameter { url: String, key: String },
    #[error(
        "the database {} does not exist; `segd apply` or `segd db migrate` creates it (or point --database-url at another)",
        .path.display()
    )]
    NoFile { path: std::path::PathBuf },
    #[error("cannot open the database {}: the folder {} does not exist", .path.display(), .folder.display())]
    NoFolder {
        path: std::path::PathBuf,
        folder: std::path::PathBuf,
    },
    #[error("the database {url} is read-only: segd needs to write its schema and state")]
    ReadOnly { url: String },
    #[error(
        "the database was migrated by a newer segd (it has migration {version}, which segd {} does not know); upgrade segd",
        env!("CARGO_PKG_VERSION")
    )]
    NewerSchema { version: i64 },
    #[error("migrating the database failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A migration's statement failed (its error in the user's terms).
    #[error("migrating the database failed")]
    MigrationFailed(#[source] DbError),
    #[error("another apply holds the lock: {holder}, since {since}")]
    Locked { holder: String, since: String },
    #[error("cannot take the apply lock {path}")]
    LockFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the database changed since the plan was made; run `segd plan` again")]
    StalePlan,
    #[error("segd_definitions holds a row of unknown kind `{0}`")]
    UnknownKind(String),
    /// A query failed; `what` says what segd was doing.
    #[error("database error while {what}")]
    Db {
        what: &'static str,
        #[source]
        source: DbError,
    },
    #[error(transparent)]
    Undecodable(#[from] Undecodable),
}

impl StoreError {
    /// An environment problem (exit 2) rather than a problem the command found (exit 1).
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            StoreError::Scheme(_)
                | StoreError::Connect { .. }
                | StoreError::Refused { .. }
                | StoreError::NoAnswer { .. }
                | StoreError::NoDatabase { .. }
                | StoreError::NoFile { .. }
                | StoreError::NoFolder { .. }
                | StoreError::BadUrl { .. }
                | StoreError::UnknownParameter { .. }
                | StoreError::ReadOnly { .. }
                | StoreError::NewerSchema { .. }
                | StoreError::Migrate(_)
                | StoreError::MigrationFailed(_)
                | StoreError::LockFile { .. }
        )
    }

    /// A query broke a unique constraint (by the database's error code).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            StoreError::Db { source: DbError(sqlx::Error::Database(db)), .. }
                if db.kind() == sqlx::error::ErrorKind::UniqueViolation
        )
    }
}

/// Names what a failed query was doing: `query.await.db("reading the runs")?`.
/// A query whose call site names no operation (the backends' shared code).
impl From<sqlx::Error> for StoreError {
    fn from(source: sqlx::Error) -> Self {
        StoreError::Db {
            what: "querying the database",
            source: DbError(source),
        }
    }
}

/// A driver error in the user's terms: the server's own message (never the
/// line of the server's source it came from), the network error, or what
/// timed out. It shows no source, so no driver text follows it.
#[derive(Debug)]
pub struct DbError(pub sqlx::Error);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            sqlx::Error::Database(db) => f.write_str(db.message()),
            sqlx::Error::Io(e) => write!(f, "{e}"),
            sqlx::Error::Tls(e) => write!(f, "TLS: {e}"),
            sqlx::Error::PoolTimedOut => f.write_str("timed out waiting for a database connection"),
            sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
                f.write_str("the database connection closed")
            }
            other => write!(f, "{other}"),
        }
    }
}

impl std::error::Error for DbError {}

/// Who applied, from which commit, and the plan, for the apply history.
#[derive(Debug, Clone)]
pub struct ApplyRecord {
    pub user: String,
    pub git_commit: Option<String>,
    /// When it was applied: the definitions' `applied_at`.
    pub at: DateTime<Utc>,
    pub summary: String,
    /// The plan's JSON document.
    pub plan: String,
}

/// One apply of the history, newest first in lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyEntry {
    pub id: i64,
    pub applied_at: DateTime<Utc>,
    pub user: String,
    pub git_commit: Option<String>,
    pub summary: String,
}

/// What holds the apply lock; the lock is released when it is dropped, and
/// when its process dies.
pub enum Held {
    /// PostgreSQL: a session-level advisory lock on this connection (closed
    /// when dropped), which the server releases when the connection drops.
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
    /// SQLite: an exclusive lock on a file beside the database, which the
    /// operating system releases when its process exits; none for an
    /// in-memory database, which no other process can open.
    Sqlite(Option<std::fs::File>),
}

/// The apply lock, held. `segd_locks` only tells who holds it and since when.
pub struct ApplyLock {
    held: Held,
    holder: String,
}

/// segd's state in a database: definitions, the apply lock, segment queries,
/// trigger runs and the delivery outbox, and the billing rows deliveries read.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// The SQL dialect segment queries are compiled to for this database.
    fn dialect(&self) -> Dialect;

    // ---- definitions

    /// The applied definitions and their version.
    async fn applied(&self) -> Result<AppliedState, StoreError>;

    /// The name and hash of each applied definition of `kind`, by name (no spec).
    async fn applied_hashes(&self, kind: Kind) -> Result<Vec<(String, String)>, StoreError>;

    /// The applied definitions of `kind` among `names` (those applied), by name.
    async fn applied_named(&self, kind: Kind, names: &[String])
    -> Result<Vec<Applied>, StoreError>;

    /// The version of the applied definitions (cheap: one row).
    async fn version(&self) -> Result<crate::plan::Version, StoreError>;

    /// When a definition was last applied.
    async fn applied_at(&self, kind: &str, name: &str)
    -> Result<Option<DateTime<Utc>>, StoreError>;

    /// The apply history, newest first: at most `limit` applies older than
    /// `before` (an id), when given.
    async fn applies(&self, before: Option<i64>, limit: i64)
    -> Result<Vec<ApplyEntry>, StoreError>;

    /// One apply and its plan's JSON document.
    async fn apply_plan(&self, id: i64) -> Result<Option<(ApplyEntry, String)>, StoreError>;

    // ---- applying

    /// Takes the apply lock for `holder`, waiting up to `wait` for another holder.
    /// The lock dies with its holder's process (see [`Held`]).
    async fn lock(&self, holder: &str, wait: Duration) -> Result<ApplyLock, StoreError>;

    /// Releases the lock; a failure is logged (the lock died with its
    /// connection or file, and what was applied stays applied).
    async fn unlock(&self, lock: ApplyLock);

    /// Applies the plan in one transaction, refusing it when the applied state is
    /// no longer the version the plan was made against.
    async fn apply(&self, plan: &Plan, record: &ApplyRecord) -> Result<(), StoreError>;

    /// Keeps what the planner needs for tests of each of the custom_data
    /// `keys` (those the applied segments compare, see
    /// `ops::apply::keep_custom_data`): SQLite
    /// an expression index per key, PostgreSQL statistics of the key's
    /// expressions (14 or newer; a GIN index of all of custom_data serves its
    /// equalities); `customers` is analyzed when one is new. What a key no
    /// segment uses any more had is kept.
    async fn keep_custom_data(&self, keys: &BTreeSet<CustomDataKey>) -> Result<(), StoreError>;

    // ---- segment queries

    /// Runs a `Select::Count` query.
    async fn count(&self, q: &Query) -> Result<u64, StoreError>;

    /// Runs a query returning one row of integer columns.
    async fn counts(&self, q: &Query) -> Result<Vec<u64>, StoreError>;

    /// Runs a query returning rows of two text columns (a run's
    /// `customer_id, invoice_id` candidates).
    async fn pairs(&self, q: &Query) -> Result<Vec<(String, String)>, StoreError>;

    /// The members a `Select::Ids` or `Select::Rows` query selects, as they
    /// arrive (see `members`, which hands each to a closure).
    fn member_stream<'a>(&'a self, q: &'a Query) -> BoxStream<'a, Result<Member, StoreError>>;

    /// The plan the database would run `q` with (nothing is run but, on
    /// PostgreSQL, its connector lookups): the top-level steps, in order.
    async fn explain(&self, q: &Query) -> Result<Vec<PlanNode>, StoreError>;

    // ---- trigger runs and the outbox

    /// Records the run and, unless it is over `max_recipients`, writes every
    /// intended delivery and counts the unreachable members; when it releases
    /// held runs, marks them — all in one transaction.
    async fn enqueue_run(&self, run: &Run, e: &Enqueue<'_>) -> Result<RunResult, StoreError>;

    /// Records a run that failed before enqueueing anything (e.g. a missing secret).
    async fn record_failed_run(
        &self,
        run: &Run,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The latest scheduled occurrence that ran (or was held or failed) for a communication.
    async fn last_occurrence(
        &self,
        communication: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Claims up to `limit` due rows for `me` until `lease_until` (only the
    /// fresh rows of run `run_id`, when given).
    async fn claim(
        &self,
        me: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
        run_id: Option<&str>,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Extends the lease of every row `me` is sending.
    async fn renew(&self, me: &str, until: DateTime<Utc>) -> Result<(), StoreError>;

    /// Hands rows `me` claimed and never started back to pending (a fresh one
    /// due at `now`).
    async fn release(&self, me: &str, ids: &[i64], now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Writes the outcomes of a batch in one transaction (a sent one sent at `now`).
    async fn mark(
        &self,
        me: &str,
        marks: &[(i64, Mark)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Outbox rows, newest last.
    async fn deliveries(&self, f: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError>;

    /// Runs, newest last, with their deliveries counted by status.
    async fn runs(&self, f: &RunFilter) -> Result<Vec<RunSummary>, StoreError>;

    /// Re-queues dead or failed deliveries (by id or idempotency key); what
    /// became of each, in order.
    async fn retry_deliveries(&self, ids: &[String]) -> Result<Vec<Retried>, StoreError>;

    /// Outbox rows by status, for status and metrics.
    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;

    // ---- segment size samples

    /// Records the samples taken `at` (to the second) in one transaction.
    async fn record_sizes(
        &self,
        at: DateTime<Utc>,
        samples: &[sizes::SizeSample],
    ) -> Result<(), StoreError>;

    /// A segment's sizes since `since`, oldest first.
    async fn size_history(
        &self,
        segment: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<sizes::Size>, StoreError>;

    /// Every segment's latest sample (each segment is sampled at its own
    /// times), by name.
    async fn latest_sizes(&self) -> Result<Vec<(String, sizes::Size)>, StoreError>;

    /// Forgets the samples taken before `before`; returns how many sizes went.
    async fn prune_sizes(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Who entered and left a segment between its two latest samples (at
    /// most `limit` ids of each); `None` when that is not known (fewer than
    /// two samples, or a segment too large to track).
    async fn membership_changes(
        &self,
        segment: &str,
        limit: usize,
    ) -> Result<Option<sizes::Changes>, StoreError>;

    // ---- billing rows

    /// The customers with these ids, in the shapes deliveries use.
    async fn customers(&self, ids: &[String]) -> Result<Vec<Customer>, StoreError>;

    /// The invoices with these ids.
    async fn invoices(&self, ids: &[String]) -> Result<Vec<Invoice>, StoreError>;

    /// Fills the billing tables with the generator's data in one transaction,
    /// reporting progress; returns the rows written per table.
    async fn load_demo(
        &self,
        generator: Generator,
        existing: Existing,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<RowCounts, LoadError>;

    // ---- upkeep

    /// Refreshes the planner statistics that are missing or stale (SQLite);
    /// nothing on PostgreSQL, whose autovacuum does it. Statistics only make
    /// queries faster: no result depends on them.
    async fn optimize(&self) -> Result<(), StoreError>;

    /// Whether segd refreshes the planner statistics itself ([`Store::optimize`]).
    fn keeps_statistics(&self) -> bool;

    /// Leader election among the daemons sharing this database; `None` where
    /// only one process uses it (SQLite), which then always leads.
    fn election(&self) -> Option<Box<dyn Election>>;

    /// Closes every connection.
    async fn close(&self);

    /// The backend's own type, for tests and benchmarks that reach its pool.
    fn as_any(&self) -> &dyn std::any::Any;
}

impl dyn Store + '_ {
    /// Runs a `Select::Ids` or `Select::Rows` query, handing each member to `each`
    /// as it arrives (never holding them all); returns how many there were.
    pub async fn members(
        &self,
        q: &Query,
        mut each: impl FnMut(Member) -> std::io::Result<()>,
    ) -> Result<u64, StoreError> {
        use futures_util::TryStreamExt as _;
        let mut rows = self.member_stream(q);
        let mut n = 0u64;
        while let Some(member) = rows.try_next().await? {
            n += 1;
            if each(member).is_err() {
                // The reader went away (a closed pipe): stop quietly.
                break;
            }
        }
        Ok(n)
    }

    /// The ids a `Select::Ids` or `Select::Rows` query lists, in its order.
    pub async fn member_ids(&self, q: &Query) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        self.members(q, |m| {
            ids.push(m.id);
            Ok(())
        })
        .await?;
        Ok(ids)
    }
}

/// Leadership held through the database: a lock on a session of its own,
/// released by the server when that session ends (its process died).
#[async_trait::async_trait]
pub trait Election: Send {
    /// Opens the session.
    async fn connect(&mut self) -> Result<(), StoreError>;

    /// Tries to take the lead; true once it is held.
    async fn try_lead(&mut self) -> Result<bool, StoreError>;

    /// Checks the session holding the lead is still alive.
    async fn check(&mut self) -> Result<(), StoreError>;

    /// Gives the lead up and closes the session.
    async fn step_down(&mut self);
}

/// Opens the database named by `url` and migrates it.
pub async fn connect(url: &str) -> Result<Box<dyn Store>, StoreError> {
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    Ok(match scheme {
        "sqlite" => Box::new(SqliteStore::connect(url).await?),
        "postgres" | "postgresql" => Box::new(PgStore::connect(url).await?),
        _ => return Err(StoreError::Scheme(redact_url(url))),
    })
}

/// Opens the database named by `url`, which must exist already (a command
/// that reads it never creates one): a SQLite file that is not there is
/// [`StoreError::NoFile`].
pub async fn connect_existing(url: &str) -> Result<Box<dyn Store>, StoreError> {
    if let Some(path) = missing_file(url)? {
        return Err(StoreError::NoFile { path });
    }
    connect(url).await
}

/// The file of a SQLite URL when it does not exist yet; `None` for a file
/// that exists, an in-memory database or another backend. A file whose folder
/// does not exist is [`StoreError::NoFolder`]: nothing could create it.
pub fn missing_file(url: &str) -> Result<Option<std::path::PathBuf>, StoreError> {
    let Some(path) = sqlite::file_of(url) else {
        return Ok(None);
    };
    if path.exists() {
        return Ok(None);
    }
    let folder = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => std::path::Path::new("."),
        Some(p) => p,
        None => std::path::Path::new("/"),
    };
    if !folder.is_dir() {
        return Err(StoreError::NoFolder {
            folder: folder.to_path_buf(),
            path,
        });
    }
    Ok(Some(path))
}

/// After a migration: new indexes, on tables that may hold rows already (a
/// billing database segd meets for the first time may never have been
/// analyzed). Best effort: the schema is migrated, and statistics only make
/// queries faster.
fn refreshed_after_migrating(result: Result<(), StoreError>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "refreshing the planner statistics after migrating failed");
    }
}

/// Runs the migrations; returns whether any ran, so that the caller refreshes
/// the planner statistics their new indexes lack.
async fn migrate<DB>(
    migrator: &sqlx::migrate::Migrator,
    pool: &sqlx::Pool<DB>,
    url: &str,
) -> Result<bool, StoreError>
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'r> (i64,): sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    // sqlx's table of applied migrations; before the first migration it does not
    // exist, which counts as none.
    let applied = async || {
        sqlx::query_as::<DB, (i64,)>("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(pool)
            .await
            .map_or(0, |(n,)| n)
    };
    let before = applied().await;
    migrator
        .run(pool)
        .await
        .map_err(|e| migrate_error(e, url))?;
    Ok(applied().await > before)
}

fn migrate_error(e: sqlx::migrate::MigrateError, url: &str) -> StoreError {
    use sqlx::migrate::MigrateError;
    match e {
        MigrateError::VersionMissing(version) => StoreError::NewerSchema { version },
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) if is_read_only(&e) => {
            StoreError::ReadOnly {
                url: redact_url(url),
            }
        }
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => {
            StoreError::MigrationFailed(DbError(e))
        }
        other => StoreError::Migrate(other),
    }
}

/// A write refused because the database is read-only, by its error code:
/// SQLite's SQLITE_READONLY (8) and its extended codes, PostgreSQL's SQLSTATE
/// 25006 (read_only_sql_transaction).
fn is_read_only(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    let Some(code) = db.code() else {
        return false;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        code.parse::<i32>()
            .is_ok_and(|c| c & 0xff == SQLITE_READONLY)
    } else {
        code == PG_READ_ONLY_SQL_TRANSACTION
    }
}

/// A connector lookup ([`crate::segment::Bind::ConnectorIds`]) reached the
/// database unresolved: a bug of segd's, reported as a failed statement.
const UNRESOLVED: &str = "a connector lookup was bound before it was resolved";

const SQLITE_READONLY: i32 = 8;
const PG_READ_ONLY_SQL_TRANSACTION: &str = "25006";

fn connect_error(e: sqlx::Error, url: &str) -> StoreError {
    if is_read_only(&e) {
        return StoreError::ReadOnly {
            url: redact_url(url),
        };
    }
    StoreError::Connect {
        url: redact_url(url),
        source: DbError(e),
    }
}
