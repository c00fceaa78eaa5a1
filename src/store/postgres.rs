//! The PostgreSQL backend, for teams and for several daemons on one database.

use super::{DbContext as _, Held, StoreError, connect_error, pg_analyze_billing};
use crate::config::redact_url;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions as _};
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Serialises applies across processes for the length of a transaction.
const APPLY_XACT_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('segd_apply'))";

pub struct PgStore {
    pub pool: PgPool,
}

impl PgStore {
    /// Opens and migrates the database; also tells whether a migration ran.
    pub async fn connect(url: &str) -> Result<(Self, bool), StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect_options(url)?)
            .await
            .map_err(|e| connect_error(e, url))?;
        let migrated = super::migrate(&MIGRATOR, &pool, url).await?;
        Ok((Self { pool }, migrated))
    }

    /// Analyzes the billing tables (see [`pg_analyze_billing`]).
    pub(super) async fn analyze_billing(&self) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(pg_analyze_billing()))
            .execute(&self.pool)
            .await
            .db("analyzing the billing tables")?;
        Ok(())
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
        let mut conn = self.pool.acquire().await.db("taking the apply lock")?;
        let taken: bool = sqlx::query_scalar(APPLY_LOCK)
            .fetch_one(&mut *conn)
            .await
            .db("taking the apply lock")?;
        if !taken {
            return Ok(None);
        }
        // Never back to the pool holding the lock, whatever happens next.
        conn.close_on_drop();
        Ok(Some(Held::Postgres(conn)))
    }

    async fn release(&self, held: Held) -> Result<(), StoreError> {
        if let Held::Postgres(mut conn) = held {
            sqlx::query(APPLY_UNLOCK)
                .execute(&mut *conn)
                .await
                .db("releasing the apply lock")?;
        }
        Ok(())
    }
}

/// The query parameters sqlx reads from a `postgres://` URL (besides
/// `options[NAME]`); sqlx logs the value of any other at WARN.
pub(super) const KNOWN_PARAMS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// The connection options a `postgres://` URL names. A query parameter sqlx
/// does not know is refused by its name, never its value (sqlx would log the
/// value, which may be a secret such as `sslpassword`). Every PostgreSQL
/// connection segd makes starts here.
fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    let parsed = url::Url::parse(url).map_err(|source| StoreError::BadUrl {
        url: redact_url(url),
        source,
    })?;
    let known =
        |k: &str| KNOWN_PARAMS.contains(&k) || k.starts_with("options[") && k.ends_with(']');
    if let Some((key, _)) = parsed.query_pairs().find(|(k, _)| !known(k)) {
        return Err(StoreError::UnknownParameter {
            url: redact_url(url),
            key: key.into_owned(),
        });
    }
    PgConnectOptions::from_url(&parsed).map_err(|e| connect_error(e, url))
}

super::common_store!(
    PgStore,
    sqlx::Postgres,
    "BEGIN",
    Some(APPLY_XACT_LOCK),
    concat!(super::version_sql!(), " FOR UPDATE")
);
