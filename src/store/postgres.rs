//! The PostgreSQL backend, for teams and for several daemons on one database.

use super::{StoreError, connect_error, migrate_error};
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

super::common_store!(
    PgStore,
    sqlx::Postgres,
    "BEGIN",
    Some(APPLY_XACT_LOCK),
    concat!(super::version_sql!(), " FOR UPDATE")
);
