//! The PostgreSQL backend, for teams and for several daemons on one database.

use super::{Held, StoreError, connect_error, migrate_error};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Serialises applies across processes for the length of a transaction.
const APPLY_XACT_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('segd_apply'))";

pub struct PgStore {
    pub pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| connect_error(e, url))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| migrate_error(e, url))?;
        Ok(Self { pool })
    }
}

/// The apply lock: session-level, so the server releases it when the holder's
/// connection drops (its process died). Not the key of `APPLY_XACT_LOCK`,
/// which an apply takes on another connection while holding this.
const APPLY_LOCK: &str = "SELECT pg_try_advisory_lock(hashtextextended('segd:apply', 0))";
const APPLY_UNLOCK: &str = "SELECT pg_advisory_unlock(hashtextextended('segd:apply', 0))";

impl PgStore {
    /// The apply lock on a connection of its own, if no one holds it.
    async fn try_lock(&self) -> Result<Option<Held>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let taken: bool = sqlx::query_scalar(APPLY_LOCK).fetch_one(&mut *conn).await?;
        if !taken {
            return Ok(None);
        }
        // Never back to the pool holding the lock, whatever happens next.
        conn.close_on_drop();
        Ok(Some(Held::Postgres(conn)))
    }

    async fn release(&self, held: Held) -> Result<(), StoreError> {
        if let Held::Postgres(mut conn) = held {
            sqlx::query(APPLY_UNLOCK).execute(&mut *conn).await?;
        }
        Ok(())
    }
}

super::common_store!(
    PgStore,
    sqlx::Postgres,
    "BEGIN",
    Some(APPLY_XACT_LOCK),
    concat!(super::version_sql!(), " FOR UPDATE")
);
