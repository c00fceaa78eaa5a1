//! Storage: one [`Store`] trait, a SQLite module and a PostgreSQL module, each
//! with its own migrations, chosen at run time from the database URL.

pub mod billing;
mod members;
pub mod outbox;
mod postgres;
mod sqlite;

pub use members::{Member, PlanNode};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::config::redact_url;
use crate::plan::{Applied, AppliedState, Plan, Undecodable};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL `{0}`: use sqlite://FILE or postgres://HOST/DB")]
    Scheme(String),
    #[error("cannot open the database {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("the database {url} is read-only: segd needs to write its schema and state")]
    ReadOnly { url: String },
    #[error(
        "the database was migrated by a newer segd (it has migration {version}, which segd {} does not know); upgrade segd",
        env!("CARGO_PKG_VERSION")
    )]
    NewerSchema { version: i64 },
    #[error("migrating the database failed: {0}")]
    Migrate(String),
    #[error("another apply holds the lock: {holder}, since {since}")]
    Locked { holder: String, since: String },
    #[error("cannot take the apply lock {path}: {reason}")]
    LockFile { path: String, reason: String },
    #[error("the database changed since the plan was made; run `segd plan` again")]
    StalePlan,
    #[error("segd_definitions holds a row of unknown kind `{0}`")]
    UnknownKind(String),
    #[error(transparent)]
    Undecodable(#[from] Undecodable),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    /// An environment problem (exit 2) rather than a problem the command found (exit 1).
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            StoreError::Scheme(_)
                | StoreError::Connect { .. }
                | StoreError::ReadOnly { .. }
                | StoreError::NewerSchema { .. }
                | StoreError::Migrate(_)
                | StoreError::LockFile { .. }
        )
    }
}

/// Who applied, from which commit, and the plan, for the apply history.
#[derive(Debug, Clone)]
pub struct ApplyRecord {
    pub user: String,
    pub git_commit: Option<String>,
    pub summary: String,
    /// The plan's JSON document.
    pub plan: String,
}

/// segd's state in a database.
pub trait Store {
    /// The applied definitions and their version.
    fn applied(&self) -> impl Future<Output = Result<AppliedState, StoreError>> + Send;

    /// The version of the applied definitions (cheap: one row).
    fn version(&self) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Takes the apply lock for `holder`, waiting up to `wait` for another holder.
    /// The lock dies with its holder's process (see [`Held`]).
    fn lock(
        &self,
        holder: &str,
        wait: Duration,
    ) -> impl Future<Output = Result<ApplyLock, StoreError>> + Send;

    /// Releases the lock; a failure is logged (the lock died with its
    /// connection or file, and what was applied stays applied).
    fn unlock(&self, lock: ApplyLock) -> impl Future<Output = ()> + Send;

    /// Applies the plan in one transaction, refusing it when the applied state is
    /// no longer the version the plan was made against.
    fn apply(
        &self,
        plan: &Plan,
        record: &ApplyRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
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

/// Records who holds the apply lock, over whatever a holder that died left.
/// `expires` is no longer read.
const LOCK_INFO_SQL: &str = "INSERT INTO segd_locks (name, holder, since, expires) VALUES ('apply', $1, $2, $2) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, since = excluded.since, expires = excluded.expires";

/// A connected store of either backend.
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Opens the database named by `url` and migrates it.
pub async fn connect(url: &str) -> Result<AnyStore, StoreError> {
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    let (store, migrated) = match scheme {
        "sqlite" => {
            let (s, migrated) = SqliteStore::connect(url).await?;
            (AnyStore::Sqlite(s), migrated)
        }
        "postgres" | "postgresql" => {
            let (s, migrated) = PgStore::connect(url).await?;
            (AnyStore::Postgres(s), migrated)
        }
        _ => return Err(StoreError::Scheme(redact_url(url))),
    };
    if migrated {
        // New indexes, on tables that may hold rows already (a billing database
        // segd meets for the first time may never have been analyzed). Best
        // effort: the schema is migrated, and statistics only make queries faster.
        let refreshed = match &store {
            AnyStore::Sqlite(s) => s.optimize().await,
            AnyStore::Postgres(s) => s.analyze_billing().await,
        };
        if let Err(e) = refreshed {
            tracing::warn!(error = %e, "refreshing the planner statistics after migrating failed");
        }
    }
    Ok(store)
}

/// Runs the migrations; returns whether any ran, so that the caller refreshes
/// the planner statistics their new indexes lack (see [`SQLITE_OPTIMIZE`],
/// [`pg_analyze_billing`]).
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
    for<'q> DB::Arguments: sqlx::IntoArguments<DB>,
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

/// SQLite: analyzes each table whose statistics are missing (an index has none:
/// a new index, a table never analyzed) or off tenfold in size; bit 0x10000 looks
/// at every table, not only those this connection queried, as pooled connections
/// come and go. Exact (no analysis limit, which would also drop the sqlite_stat4
/// samples the planner uses for skewed values such as invoice statuses), so a
/// table it analyzes holds the write lock for a scan: on 1M customers 0.2 s for
/// customers after a new custom_data index, 1.9 s for a never-analyzed
/// database. When nothing changed it only estimates each table's size: 8 ms.
const SQLITE_OPTIMIZE: &str = "PRAGMA optimize = 0x10002";

/// PostgreSQL: fresh statistics for the billing tables, after segd changed their
/// rows or indexes (a demo load, a migration). It samples a bounded number of
/// rows per table and takes no lock that blocks reads or writes; between such
/// changes autovacuum keeps them fresh.
fn pg_analyze_billing() -> String {
    format!("ANALYZE {}", billing::BILLING_TABLES.join(", "))
}

fn migrate_error(e: sqlx::migrate::MigrateError, url: &str) -> StoreError {
    use sqlx::migrate::MigrateError;
    match e {
        MigrateError::VersionMissing(version) => StoreError::NewerSchema { version },
        MigrateError::Execute(e) if is_read_only(&e) => StoreError::ReadOnly {
            url: redact_url(url),
        },
        other => StoreError::Migrate(other.to_string()),
    }
}

fn is_read_only(e: &sqlx::Error) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("readonly") || text.contains("read-only") || text.contains("read only")
}

fn connect_error(e: sqlx::Error, url: &str) -> StoreError {
    if is_read_only(&e) {
        return StoreError::ReadOnly {
            url: redact_url(url),
        };
    }
    StoreError::Connect {
        url: redact_url(url),
        reason: e.to_string(),
    }
}

impl AnyStore {
    /// Refreshes the planner statistics that are missing or stale (SQLite: see
    /// `SQLITE_OPTIMIZE`); nothing on PostgreSQL, whose autovacuum does it.
    /// Statistics only make queries faster: no result depends on them.
    pub async fn optimize(&self) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.optimize().await,
            AnyStore::Postgres(_) => Ok(()),
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            AnyStore::Sqlite(s) => s.pool.close().await,
            AnyStore::Postgres(s) => s.pool.close().await,
        }
    }
}

impl Store for AnyStore {
    async fn applied(&self) -> Result<AppliedState, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.applied().await,
            AnyStore::Postgres(s) => s.applied().await,
        }
    }

    async fn version(&self) -> Result<String, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.version().await,
            AnyStore::Postgres(s) => s.version().await,
        }
    }

    async fn lock(&self, holder: &str, wait: Duration) -> Result<ApplyLock, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.lock(holder, wait).await,
            AnyStore::Postgres(s) => s.lock(holder, wait).await,
        }
    }

    async fn unlock(&self, lock: ApplyLock) {
        match self {
            AnyStore::Sqlite(s) => s.unlock(lock).await,
            AnyStore::Postgres(s) => s.unlock(lock).await,
        }
    }

    async fn apply(&self, plan: &Plan, record: &ApplyRecord) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.apply(plan, record).await,
            AnyStore::Postgres(s) => s.apply(plan, record).await,
        }
    }
}

/// `Store` methods whose SQL is the same on both backends (both accept `$N`
/// placeholders); each backend module instantiates them for its own types.
macro_rules! common_store {
    ($store:ty, $db:ty, $begin:expr, $tx_lock:expr, $version_for_update:expr) => {
        impl $crate::store::Store for $store {
            async fn applied(&self) -> Result<$crate::plan::AppliedState, $crate::store::StoreError> {
                // The version first: a change between the two reads makes the
                // plan stale, never a newer state under an older version.
                let mut conn = self.pool.acquire().await?;
                let version: String = sqlx::query_scalar($crate::store::VERSION_SQL)
                    .fetch_one(&mut *conn)
                    .await?;
                let rows = $crate::store::read_applied::<$db>(&mut *conn).await?;
                Ok($crate::plan::AppliedState { rows, version })
            }

            async fn version(&self) -> Result<String, $crate::store::StoreError> {
                Ok(sqlx::query_scalar($crate::store::VERSION_SQL)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn lock(
                &self,
                holder: &str,
                wait: std::time::Duration,
            ) -> Result<$crate::store::ApplyLock, $crate::store::StoreError> {
                let deadline = std::time::Instant::now() + wait;
                loop {
                    if let Some(held) = self.try_lock().await? {
                        sqlx::query($crate::store::LOCK_INFO_SQL)
                            .bind(holder)
                            .bind(chrono::Utc::now())
                            .execute(&self.pool)
                            .await?;
                        return Ok($crate::store::ApplyLock {
                            held,
                            holder: holder.to_string(),
                        });
                    }
                    if std::time::Instant::now() >= deadline {
                        let row: Option<(String, chrono::DateTime<chrono::Utc>)> =
                            sqlx::query_as("SELECT holder, since FROM segd_locks WHERE name = 'apply'")
                                .fetch_optional(&self.pool)
                                .await?;
                        let (holder, since) = row.unwrap_or_else(|| ("unknown".into(), chrono::Utc::now()));
                        return Err($crate::store::StoreError::Locked {
                            holder,
                            since: since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        });
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }

            async fn unlock(&self, lock: $crate::store::ApplyLock) {
                // The record goes first, so it never removes the next holder's.
                // Neither step can undo an apply that committed, and a lock whose
                // release failed died with its connection or file: warnings only.
                if let Err(e) = sqlx::query("DELETE FROM segd_locks WHERE name = 'apply' AND holder = $1")
                    .bind(&lock.holder)
                    .execute(&self.pool)
                    .await
                {
                    tracing::warn!(error = %e, "forgetting the apply lock's holder failed");
                }
                if let Err(e) = self.release(lock.held).await {
                    tracing::warn!(error = %e, "releasing the apply lock failed");
                }
            }

            async fn apply(
                &self,
                plan: &$crate::plan::Plan,
                record: &$crate::store::ApplyRecord,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::plan::Action;
                let mut tx = self.pool.begin_with($begin).await?;
                if let Some(lock) = $tx_lock {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
                // Locks the version row (PostgreSQL), so no change of the
                // definitions can commit between this check and the commit.
                let version: String = sqlx::query_scalar($version_for_update)
                    .fetch_one(&mut *tx)
                    .await?;
                if version != plan.fingerprint {
                    return Err($crate::store::StoreError::StalePlan);
                }
                let now = chrono::Utc::now();
                for c in &plan.changes {
                    match (c.action, &c.after) {
                        (Action::Create, Some(d)) => {
                            sqlx::query(
                                "INSERT INTO segd_definitions (kind, name, spec, hash, source, protect, applied_at, templates) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                            )
                            .bind(d.kind.as_str())
                            .bind(d.name.as_str())
                            .bind(&d.spec)
                            .bind(d.digest())
                            .bind(&d.source)
                            .bind(d.protect)
                            .bind(now)
                            .bind($crate::store::templates_json(d))
                            .execute(&mut *tx)
                            .await?;
                        }
                        (Action::Update, Some(d)) => {
                            let n = sqlx::query(
                                "UPDATE segd_definitions SET spec = $3, hash = $4, source = $5, protect = $6, \
                                 applied_at = $7, templates = $8 WHERE kind = $1 AND name = $2",
                            )
                            .bind(d.kind.as_str())
                            .bind(d.name.as_str())
                            .bind(&d.spec)
                            .bind(d.digest())
                            .bind(&d.source)
                            .bind(d.protect)
                            .bind(now)
                            .bind($crate::store::templates_json(d))
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                            if n != 1 {
                                return Err($crate::store::StoreError::StalePlan);
                            }
                        }
                        (Action::Delete, _) => {
                            sqlx::query("DELETE FROM segd_definitions WHERE kind = $1 AND name = $2")
                                .bind(c.kind.as_str())
                                .bind(&c.name)
                                .execute(&mut *tx)
                                .await?;
                        }
                        (Action::Create | Action::Update, None) => {
                            return Err($crate::store::StoreError::StalePlan);
                        }
                    }
                }
                sqlx::query(
                    "INSERT INTO segd_apply_history (applied_at, applied_by, git_commit, summary, plan) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(now)
                .bind(&record.user)
                .bind(&record.git_commit)
                .bind(&record.summary)
                .bind(&record.plan)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(crate) use common_store;

/// The version of the applied definitions (migration 0004); each backend's
/// apply reads it, locked where the backend can lock one row.
macro_rules! version_sql {
    () => {
        "SELECT lineage || ':' || CAST(revision AS TEXT) FROM segd_revision WHERE id = 1"
    };
}
pub(crate) use version_sql;

pub(crate) const VERSION_SQL: &str = version_sql!();

/// Reads `segd_definitions` on any connection of either backend.
async fn read_applied<'c, DB>(
    conn: impl sqlx::Executor<'c, Database = DB>,
) -> Result<Vec<Applied>, StoreError>
where
    DB: sqlx::Database,
    for<'r> (String, String, String, String, String, bool, String): sqlx::FromRow<'r, DB::Row>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    let rows: Vec<(String, String, String, String, String, bool, String)> = sqlx::query_as(
        "SELECT kind, name, spec, hash, source, protect, templates FROM segd_definitions ORDER BY kind, name",
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(kind, name, spec, hash, source, protect, templates)| {
            let kind = crate::plan::Kind::parse(&kind).ok_or(StoreError::UnknownKind(kind))?;
            let name = crate::model::Name::parse(&name).map_err(|e| Undecodable {
                kind,
                name: name.clone(),
                error: e.to_string(),
            })?;
            // An unreadable templates column is drift: it reads as no templates.
            let templates = serde_json::from_str(&templates).unwrap_or_default();
            let def = crate::plan::Definition {
                kind,
                name,
                spec,
                source,
                protect,
                templates,
            };
            Ok(Applied::new(def, hash))
        })
        .collect()
}

/// The templates column: a JSON object of path → text.
pub fn templates_json(d: &crate::plan::Definition) -> String {
    serde_json::to_string(&d.templates).unwrap_or_else(|_| "{}".into())
}
