//! The embedded SQLite backend.

use super::{DbContext as _, Held, SQLITE_OPTIMIZE, StoreError, connect_error};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

pub struct SqliteStore {
    pub pool: SqlitePool,
    /// The apply lock's file, beside the database (none in memory).
    lock_file: Option<PathBuf>,
}

impl SqliteStore {
    /// Opens and migrates the database; also tells whether a migration ran.
    pub async fn connect(url: &str) -> Result<(Self, bool), StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| connect_error(e, url))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            // The lists a segment's blocks compile to are temporary indexes:
            // in memory, not spilled to a temporary file (a third faster on a
            // four-block segment over 200,000 customers).
            .pragma("temp_store", "memory")
            .foreign_keys(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(options.clone())
            .await
            .map_err(|e| connect_error(e, url))?;
        let migrated = super::migrate(&MIGRATOR, &pool, url).await?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let lock_file = (!in_memory).then(|| {
            let mut name = options.get_filename().as_os_str().to_owned();
            name.push("-apply-lock");
            PathBuf::from(name)
        });
        Ok((Self { pool, lock_file }, migrated))
    }

    /// Analyzes the tables whose statistics are missing or stale (see [`SQLITE_OPTIMIZE`]).
    pub(super) async fn optimize(&self) -> Result<(), StoreError> {
        sqlx::query(SQLITE_OPTIMIZE)
            .execute(&self.pool)
            .await
            .db("refreshing the planner statistics")?;
        Ok(())
    }

    /// The apply lock, if no one holds it: an exclusive lock on the lock file,
    /// which the operating system releases when the holder's process exits
    /// however it ends (unlike a row, which would outlive it).
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

    async fn release(&self, held: Held) -> Result<(), StoreError> {
        // Closing the file releases its lock.
        drop(held);
        Ok(())
    }
}

super::common_store!(
    SqliteStore,
    sqlx::Sqlite,
    "BEGIN IMMEDIATE",
    None::<&'static str>,
    super::VERSION_SQL
);
