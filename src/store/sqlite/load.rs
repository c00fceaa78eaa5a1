//! Bulk loading of the billing tables into SQLite (see [`crate::store::billing`]):
//! multi-row `INSERT`s of up to 32766 bound parameters, one prepared statement
//! per table, in one transaction with a rollback journal instead of the WAL.

use crate::demo::{self, Batch, CONNECTORS, Generator, RowCounts};
use crate::store::billing::{
    BILLING_TABLES, Encoder, Existing, LoadError, OCCUPANCY, Prepared, Progress, encode_error,
    quote_ident, spawn_encoding,
};
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArguments, SqliteConnection};
use sqlx::{Arguments as _, AssertSqlSafe, Connection as _};
use std::sync::Arc;

/// Customers generated per batch handed from the generator thread.
const SQLITE_BATCH: usize = 1_000;

/// Fills the billing tables of a SQLite database (see [`crate::store::Store::load_demo`]).
pub(super) async fn load_into_sqlite(
    pool: &sqlx::SqlitePool,
    generator: Generator,
    existing: Existing,
    progress: impl FnMut(Progress),
) -> Result<RowCounts, LoadError> {
    let mut conn = pool.acquire().await?;
    // The load's pragmas must not outlive it in the pool.
    conn.close_on_drop();
    load_sqlite(pool, &mut conn, generator, existing, progress).await
}

/// SQLite's limit of bound parameters per statement.
const SQLITE_MAX_PARAMS: usize = 32_766;

/// `INSERT INTO … VALUES (?, …), …` for `rows` rows of `columns` columns.
fn values_sql(insert: &str, columns: usize, rows: usize) -> String {
    let mut sql = String::with_capacity(insert.len() + rows * (columns * 2 + 2));
    sql.push_str(insert);
    for r in 0..rows {
        sql.push_str(if r == 0 { " (" } else { ",(" });
        for c in 0..columns {
            sql.push_str(if c == 0 { "?" } else { ",?" });
        }
        sql.push(')');
    }
    sql
}

/// The rows of one table being gathered into multi-row statements.
struct SqliteTable {
    insert: &'static str,
    columns: usize,
    chunk: usize,
    full: Arc<str>,
    args: SqliteArguments,
    rows: usize,
}

impl SqliteTable {
    fn new(insert: &'static str, columns: usize) -> Self {
        let chunk = SQLITE_MAX_PARAMS / columns;
        Self {
            insert,
            columns,
            chunk,
            full: values_sql(insert, columns, chunk).into(),
            args: SqliteArguments::default(),
            rows: 0,
        }
    }

    /// Counts a row whose values were just added; emits a full statement.
    fn row_added(&mut self, out: &mut Vec<Prepared<SqliteArguments>>) {
        self.rows += 1;
        if self.rows == self.chunk {
            let args = std::mem::take(&mut self.args);
            out.push(Prepared {
                sql: self.full.clone(),
                keep: Some(args.clone()),
                args,
            });
            self.rows = 0;
        }
    }

    fn finish(&mut self, out: &mut Vec<Prepared<SqliteArguments>>) {
        if self.rows > 0 {
            let args = std::mem::take(&mut self.args);
            out.push(Prepared {
                sql: values_sql(self.insert, self.columns, self.rows).into(),
                keep: Some(args.clone()),
                args,
            });
            self.rows = 0;
        }
    }
}

struct SqliteEncoder {
    /// One shared value per distinct constant (status, type, …): binding a clone
    /// allocates nothing.
    constants: std::collections::HashMap<&'static str, Arc<str>>,
    customers: SqliteTable,
    links: SqliteTable,
    methods: SqliteTable,
    invoices: SqliteTable,
    monitors: SqliteTable,
}

impl SqliteEncoder {
    fn new() -> Self {
        Self {
            constants: Default::default(),
            customers: SqliteTable::new(
                "INSERT INTO customers (id, name, email, country, custom_data, created_at) VALUES",
                6,
            ),
            links: SqliteTable::new(
                "INSERT INTO customer_connectors (customer_id, connector_id) VALUES",
                2,
            ),
            methods: SqliteTable::new(
                "INSERT INTO payment_methods (id, customer_id, type, status, connector_id, is_default) VALUES",
                6,
            ),
            invoices: SqliteTable::new(
                "INSERT INTO invoices (id, customer_id, number, status, amount_cents, currency, due_date, created_at) VALUES",
                8,
            ),
            monitors: SqliteTable::new(
                "INSERT INTO monitors (id, customer_id, name, state, updated_at) VALUES",
                5,
            ),
        }
    }
}

impl SqliteEncoder {
    fn constant(&mut self, s: &'static str) -> Arc<str> {
        self.constants
            .entry(s)
            .or_insert_with(|| Arc::from(s))
            .clone()
    }

    fn optional(&mut self, s: Option<&'static str>) -> Option<Arc<str>> {
        s.map(|s| self.constant(s))
    }
}

impl Encoder for SqliteEncoder {
    type Args = SqliteArguments;

    fn batch(
        &mut self,
        b: Batch,
        out: &mut Vec<Prepared<SqliteArguments>>,
    ) -> Result<(), BoxDynError> {
        for c in b.customers {
            let country = self.optional(c.country);
            let a = &mut self.customers.args;
            a.add(c.id)?;
            a.add(c.name)?;
            a.add(c.email)?;
            a.add(country)?;
            a.add(c.custom_data)?;
            a.add(demo::timestamp_text(&c.created_at))?;
            self.customers.row_added(out);
        }
        for l in b.customer_connectors {
            let connector = self.constant(l.connector_id);
            let a = &mut self.links.args;
            a.add(l.customer_id)?;
            a.add(connector)?;
            self.links.row_added(out);
        }
        for m in b.payment_methods {
            let (kind, status) = (self.constant(m.kind), self.constant(m.status));
            let connector = self.optional(m.connector_id);
            let a = &mut self.methods.args;
            a.add(m.id)?;
            a.add(m.customer_id)?;
            a.add(kind)?;
            a.add(status)?;
            a.add(connector)?;
            a.add(i64::from(m.is_default))?;
            self.methods.row_added(out);
        }
        for i in b.invoices {
            let (status, currency) = (self.constant(i.status), self.constant(i.currency));
            let a = &mut self.invoices.args;
            a.add(i.id)?;
            a.add(i.customer_id)?;
            a.add(i.number)?;
            a.add(status)?;
            a.add(i.amount_cents)?;
            a.add(currency)?;
            a.add(demo::date_text(i.due_date))?;
            a.add(demo::timestamp_text(&i.created_at))?;
            self.invoices.row_added(out);
        }
        for m in b.monitors {
            let (name, state) = (self.constant(m.name), self.constant(m.state));
            let a = &mut self.monitors.args;
            a.add(m.id)?;
            a.add(m.customer_id)?;
            a.add(name)?;
            a.add(state)?;
            a.add(demo::timestamp_text(&m.updated_at))?;
            self.monitors.row_added(out);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Prepared<SqliteArguments>>) -> Result<(), BoxDynError> {
        self.customers.finish(out);
        self.links.finish(out);
        self.methods.finish(out);
        self.invoices.finish(out);
        self.monitors.finish(out);
        Ok(())
    }
}

async fn load_sqlite(
    pool: &sqlx::SqlitePool,
    conn: &mut SqliteConnection,
    generator: Generator,
    existing: Existing,
    mut progress: impl FnMut(Progress),
) -> Result<RowCounts, LoadError> {
    // Only this connection's durability: the load is one transaction, and a
    // crash before its commit leaves the database as it was.
    for pragma in ["PRAGMA synchronous = OFF", "PRAGMA cache_size = -262144"] {
        sqlx::query(pragma).execute(&mut *conn).await?;
    }
    let from_wal = rollback_journal(pool, conn).await;
    let rows = sqlite_fill(conn, generator, existing, &mut progress).await;
    if from_wal {
        // Best effort: the load is committed (or rolled back) already, and segd
        // sets the WAL again on every connection it opens.
        let _ = sqlx::query_as::<_, (String,)>("PRAGMA journal_mode = WAL")
            .fetch_all(&mut *conn)
            .await;
    }
    rows
}

/// Switches the load's connection from the WAL to a rollback journal, so that new
/// pages go to the database file once (not to the WAL and again at the checkpoint).
/// SQLite refuses ("database is locked") while another connection has the
/// database open: the pool's idle ones are closed (one may still be on its way
/// back from the migrations); when another process has it open, the load runs in
/// the WAL. Returns whether it switched.
async fn rollback_journal(pool: &sqlx::SqlitePool, conn: &mut SqliteConnection) -> bool {
    for _ in 0..10 {
        while let Some(idle) = pool.try_acquire() {
            let _ = idle.close().await;
        }
        let mode = sqlx::query_as::<_, (String,)>("PRAGMA journal_mode = DELETE")
            .fetch_all(&mut *conn)
            .await;
        match mode {
            Ok(rows) => {
                return rows
                    .first()
                    .is_some_and(|(m,)| m.eq_ignore_ascii_case("delete"));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    false
}

async fn sqlite_fill(
    conn: &mut SqliteConnection,
    generator: Generator,
    existing: Existing,
    progress: &mut impl FnMut(Progress),
) -> Result<RowCounts, LoadError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;

    let (customers, others): (i64, i64) = sqlx::query_as(OCCUPANCY).fetch_one(&mut *tx).await?;
    if customers + others > 0 {
        match existing {
            Existing::Refuse => return Err(LoadError::NotEmpty { customers }),
            Existing::Replace => {
                for sql in [
                    "DELETE FROM connectors",
                    "DELETE FROM customers",
                    "DELETE FROM customer_connectors",
                    "DELETE FROM payment_methods",
                    "DELETE FROM invoices",
                    "DELETE FROM monitors",
                ] {
                    sqlx::query(sql).execute(&mut *tx).await?;
                }
            }
        }
    }

    // Secondary indexes: dropped for the load, rebuilt from their own definitions.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
         AND tbl_name IN ('connectors', 'customers', 'customer_connectors', \
         'payment_methods', 'invoices', 'monitors') ORDER BY name",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (name, _) in &indexes {
        // The name comes from the schema itself, quoted.
        sqlx::query(AssertSqlSafe(format!("DROP INDEX {}", quote_ident(name))))
            .execute(&mut *tx)
            .await?;
    }

    let mut rows = RowCounts::default();
    for c in CONNECTORS {
        sqlx::query("INSERT INTO connectors (id, name, kind, connection) VALUES ($1, $2, $3, $4)")
            .bind(c.id)
            .bind(c.name)
            .bind(c.kind)
            .bind(c.connection)
            .execute(&mut *tx)
            .await?;
        rows.connectors += 1;
    }

    let mut chunks = spawn_encoding(generator, SqliteEncoder::new(), SQLITE_BATCH);
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk.map_err(encode_error)?;
        for s in chunk.statements {
            sqlx::query_with(AssertSqlSafe(s.sql), s.args)
                .execute(&mut *tx)
                .await?;
            if let Some(keep) = s.keep {
                tokio::task::spawn_blocking(move || drop(keep));
            }
        }
        rows += chunk.rows;
        progress(Progress::Customers(chunk.customers));
    }

    progress(Progress::Finishing);
    for (_, sql) in indexes {
        // The definition SQLite stored for the index.
        sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await?;
    }
    // Exact statistics for the planner, committed with the rows they describe:
    // every table changed size. It adds 0.1 s of CPU to a load of 200k customers
    // (their pages are still in the load's cache) and about 3 s to one of 1M.
    for table in BILLING_TABLES {
        sqlx::query(AssertSqlSafe(format!("ANALYZE {}", quote_ident(table))))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_sql_has_one_placeholder_per_value() {
        assert_eq!(
            values_sql("INSERT INTO t (a, b) VALUES", 2, 3),
            "INSERT INTO t (a, b) VALUES (?,?),(?,?),(?,?)"
        );
        let t = SqliteTable::new("INSERT INTO t (a, b, c) VALUES", 3);
        assert!(t.chunk * 3 <= SQLITE_MAX_PARAMS);
        assert_eq!(t.full.matches('?').count(), t.chunk * 3);
    }
}
