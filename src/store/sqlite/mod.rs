//! The embedded SQLite backend: one process's database.

mod load;

use super::billing::{Existing, LoadError, Progress};
use super::sql::{Backend, Session, VERSION};
use super::{Election, Held, PlanNode, StoreError, connect_error};
use crate::demo::{Generator, RowCounts};
use crate::model::CustomDataKey;
use crate::segment::{Bind, Dialect, Query};
use futures_util::stream::BoxStream;
use sqlx::query::Query as SqlQuery;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow,
};
use sqlx::{Arguments as _, AssertSqlSafe, Transaction};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Analyzes each table whose statistics are missing (an index has none:
/// a new index, a table never analyzed) or off tenfold in size; bit 0x10000 looks
/// at every table, not only those this connection queried, as pooled connections
/// come and go. Exact (no analysis limit, which would also drop the sqlite_stat4
/// samples the planner uses for skewed values such as invoice statuses), so a
/// table it analyzes holds the write lock for a scan: on 1M customers 0.2 s for
/// customers after a new custom_data index, 1.9 s for a never-analyzed
/// database. When nothing changed it only estimates each table's size: 8 ms.
const OPTIMIZE: &str = "PRAGMA optimize = 0x10002";

/// Rows a query may yield ahead of its reader (sqlx's default is 50), on
/// every query of the pool: what a paced stream (`ROW_PACE`) lists between
/// two reads, and more than SQLite lists in a millisecond; a stuck reader
/// (a pager) holds 1-2.5 MB of ids, names and emails so.
const ROW_BUFFER: usize = 4096;

pub struct SqliteStore {
    pub pool: SqlitePool,
    /// The apply lock's file, beside the database (none in memory).
    lock_file: Option<PathBuf>,
}

impl SqliteStore {
    /// Opens and migrates the database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| connect_error(e, url))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            // The lists a segment's blocks compile to are temporary indexes:
            // in memory, not spilled to a temporary file (a third faster on a
            // four-block segment over 200,000 customers).
            .pragma("temp_store", "memory")
            .foreign_keys(false)
            // Room for the rows a query yields between two reads of a
            // paced stream (see `ROW_PACE`), so that SQLite seldom waits.
            .row_buffer_size(ROW_BUFFER);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(options.clone())
            .await
            .map_err(|e| connect_error(e, url))?;
        let migrated = super::migrate(&super::migrations::sqlite(), &pool, url).await?;
        let lock_file = (!in_memory(url)).then(|| {
            let mut name = options.get_filename().as_os_str().to_owned();
            name.push("-apply-lock");
            PathBuf::from(name)
        });
        let store = Self { pool, lock_file };
        if migrated {
            super::refreshed_after_migrating(store.refresh_statistics().await);
        }
        Ok(store)
    }
}

fn in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The file a `sqlite:` URL names; `None` in memory, or when the URL does
/// not parse (connecting says why).
pub(super) fn file_of(url: &str) -> Option<PathBuf> {
    if !url.starts_with("sqlite:") || in_memory(url) {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

impl Backend for SqliteStore {
    type Db = Sqlite;

    const DIALECT: Dialect = Dialect::Sqlite;
    const APPLY_XACT_LOCK: Option<&'static str> = None;
    const VERSION_FOR_UPDATE: &'static str = VERSION;
    const TRIGGER_XACT_LOCK: Option<&'static str> = None;
    const INVOICE_LIST_ONE: &'static str = "json_array(x.invoice_id)";
    const INVOICE_LIST_AGG: &'static str = "json_group_array(x.invoice_id)";
    /// SQLite writes one transaction at a time, and gives a new row an id
    /// above every other.
    const OUTBOX_BOUND: &'static str = "SELECT COALESCE(MAX(id), 0) FROM segd_outbox";
    /// A claim holds the write lock: no other claim runs meanwhile.
    const CLAIM_LOCKING: &'static str = "";
    /// A row due since it was enqueued shows its run's start as its next attempt.
    const DELIVERIES: &'static str = "SELECT o.id, u.id || ':' || o.customer_id || COALESCE(':' || o.invoice_id, ''), \
         u.communication, u.channel, o.customer_id, o.invoice_ids, o.status, CAST(o.attempts AS BIGINT), \
         COALESCE(o.next_attempt_at, u.started_at), o.last_error, u.started_at, o.sent_at \
         FROM segd_outbox o JOIN segd_trigger_runs u ON u.seq = o.run \
         WHERE ($1 IS NULL OR u.communication = $1) AND ($2 IS NULL OR o.status = $2) \
         AND ($3 IS NULL OR (u.id = $3 AND o.id BETWEEN u.first_id AND u.last_id AND o.run = u.seq)) \
         AND ($5 IS NULL OR o.id = $5) AND ($6 IS NULL OR o.id < $6) \
         AND ($7 IS NULL OR u.started_at >= $7) AND ($8 IS NULL OR u.started_at < $8)";
    const CUSTOMERS: &'static str = "SELECT id, name, email, country, custom_data, CAST(created_at AS TEXT) FROM customers WHERE id";
    const INVOICES: &'static str = "SELECT id, number, status, amount_cents, currency, CAST(due_date AS TEXT), \
         CAST(created_at AS TEXT) FROM invoices WHERE id";
    const INSERT_MEMBERS: &'static str = "INSERT INTO segd_segment_members (segment, sampled_at, customer_id) \
         SELECT $1, $2, value FROM json_each($3)";
    /// Well below SQLite's limit of bound parameters.
    const IDS_PER_STATEMENT: usize = 500;
    /// Rows come from the connection's own thread: read every millisecond
    /// while they flow.
    const ROW_PACE: Option<Duration> = Some(Duration::from_millis(1));
    const KEEPS_STATISTICS: bool = true;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// SQLite has no planner settings to set.
    async fn planned(
        &self,
        _q: &Query,
    ) -> Result<Option<Transaction<'static, Sqlite>>, StoreError> {
        Ok(None)
    }

    fn planned_rows(
        &self,
        _q: &Query,
    ) -> Option<BoxStream<'static, Result<SqliteRow, StoreError>>> {
        None
    }

    async fn resolved(&self, _q: &Query) -> Result<Option<Query>, StoreError> {
        Ok(None)
    }

    /// An exclusive lock on the lock file, which the operating system releases
    /// when the holder's process exits however it ends (unlike a row, which
    /// would outlive it).
    async fn try_lock(&self) -> Result<Option<Held>, StoreError> {
        let Some(path) = &self.lock_file else {
            return Ok(Some(Held::Sqlite(None)));
        };
        let error = |e: std::io::Error| StoreError::LockFile {
            path: path.display().to_string(),
            source: e,
        };
        // Read-only when it exists: flock needs no write access, so another
        // user who may write the database may take the lock too.
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .map_err(error)?,
            Err(e) => return Err(error(e)),
        };
        // flock(2) (LockFileEx on Windows) through fs4: std's own is newer than segd's MSRV.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => Ok(Some(Held::Sqlite(Some(file)))),
            Err(fs4::TryLockError::WouldBlock) => Ok(None),
            Err(fs4::TryLockError::Error(e)) => Err(error(e)),
        }
    }

    async fn release_lock(&self, held: Held) -> Result<(), StoreError> {
        // Closing the file releases its lock.
        drop(held);
        Ok(())
    }

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn args(binds: &[Bind]) -> Result<SqliteArguments, StoreError> {
        let day = |d: &chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
        let mut args = SqliteArguments::default();
        for b in binds {
            match b {
                Bind::Text(s) => args.add(s.clone()),
                Bind::Int(i) => args.add(*i),
                Bind::Float(x) => args.add(*x),
                Bind::Bool(v) => args.add(i64::from(*v)),
                Bind::Time(t) => args.add(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                Bind::Date(d) => args.add(day(d)),
                Bind::Stamp(t) => args.add(*t),
                Bind::Texts(v) => serde_json::to_string(v)
                    .map_err(Into::into)
                    .and_then(|json| args.add(json)),
                Bind::Dates(v) => {
                    let days: Vec<String> = v.iter().map(day).collect();
                    serde_json::to_string(&days)
                        .map_err(Into::into)
                        .and_then(|json| args.add(json))
                }
                // SQLite's queries select their connectors themselves.
                Bind::ConnectorIds(_) => Err(super::UNRESOLVED.into()),
            }
            .map_err(|e| StoreError::from(sqlx::Error::Encode(e)))?;
        }
        Ok(args)
    }

    fn in_ids(first: usize, n: usize) -> String {
        let marks: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
        format!(" IN ({})", marks.join(", "))
    }

    fn bind_ids<'q>(
        mut q: SqlQuery<'q, Sqlite, SqliteArguments>,
        ids: &'q [i64],
    ) -> SqlQuery<'q, Sqlite, SqliteArguments> {
        for id in ids {
            q = q.bind(*id);
        }
        q
    }

    fn bind_keys<'q>(
        mut q: SqlQuery<'q, Sqlite, SqliteArguments>,
        ids: &'q [String],
    ) -> SqlQuery<'q, Sqlite, SqliteArguments> {
        for id in ids {
            q = q.bind(id.as_str());
        }
        q
    }

    async fn claim_session(&self) -> Result<Session<Sqlite>, StoreError> {
        Ok(Session::Transaction(self.begin_write().await?))
    }

    async fn explain_query(&self, q: &Query) -> Result<Vec<PlanNode>, StoreError> {
        let sql = format!("EXPLAIN QUERY PLAN {}", q.sql);
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as_with(AssertSqlSafe(sql), Self::args(&q.binds)?)
                .fetch_all(&self.pool)
                .await?;
        Ok(plan_tree(&rows, 0))
    }

    /// An expression index for each of `keys`; a new index gets its
    /// statistics at once, so the planner knows how selective it is.
    async fn keep_custom_data_of(&self, keys: &BTreeSet<CustomDataKey>) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        for key in keys {
            sqlx::query(AssertSqlSafe(crate::segment::custom_data_index_sql(key)))
                .execute(&self.pool)
                .await?;
        }
        // Analyzes customers when one of them is new (it has no statistics yet);
        // otherwise only sizes are checked.
        self.refresh_statistics().await
    }

    /// Analyzes the tables whose statistics are missing or stale (see [`OPTIMIZE`]).
    async fn refresh_statistics(&self) -> Result<(), StoreError> {
        sqlx::query(OPTIMIZE).execute(&self.pool).await?;
        Ok(())
    }

    async fn load(
        &self,
        generator: Generator,
        existing: Existing,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<RowCounts, LoadError> {
        load::load_into_sqlite(&self.pool, generator, existing, progress).await
    }

    fn elect(&self) -> Option<Box<dyn Election>> {
        None
    }
}

/// SQLite's plan rows `(id, parent, _, detail)` under `parent`, as a tree.
fn plan_tree(rows: &[(i64, i64, i64, String)], parent: i64) -> Vec<PlanNode> {
    rows.iter()
        .filter(|r| r.1 == parent && r.0 != parent)
        .map(|r| PlanNode {
            label: r.3.clone(),
            children: plan_tree(rows, r.0),
        })
        .collect()
}
