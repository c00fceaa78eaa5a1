//! Leadership among daemons sharing a PostgreSQL database: an advisory lock on
//! a dedicated connection. When its holder dies the connection closes, the
//! server releases the lock and another daemon takes it.

use crate::store::{Election, StoreError};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

const LEADER_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('segd_leader'))";

pub(super) struct PgElection {
    options: PgConnectOptions,
    conn: Option<PgConnection>,
}

impl PgElection {
    pub(super) fn new(options: PgConnectOptions) -> Self {
        Self {
            options,
            conn: None,
        }
    }

    fn conn(&mut self) -> Result<&mut PgConnection, StoreError> {
        self.conn
            .as_mut()
            .ok_or(StoreError::from(sqlx::Error::PoolClosed))
    }
}

#[async_trait::async_trait]
impl Election for PgElection {
    async fn connect(&mut self) -> Result<(), StoreError> {
        self.conn = Some(PgConnection::connect_with(&self.options).await?);
        Ok(())
    }

    async fn try_lead(&mut self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(LEADER_LOCK)
            .fetch_one(self.conn()?)
            .await?)
    }

    async fn check(&mut self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.conn()?).await?;
        Ok(())
    }

    async fn step_down(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock_all()")
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }
}
