//! Bulk loading of the SPEC §4 billing tables, for `segd demo-data`.
//!
//! One transaction per load, so a failed or interrupted load changes nothing. The
//! generator and the encoding of the rows run on a blocking thread while the
//! database executes the previous statements: on SQLite multi-row `INSERT`s of up
//! to 32766 bound parameters (one prepared statement per table, reused), with a
//! rollback journal instead of the WAL for the load and `synchronous = OFF` on the
//! load's connection; on PostgreSQL one `COPY … FROM STDIN` per table and batch
//! (the rows travel as data, never as SQL). Secondary indexes on the billing
//! tables are dropped for the load and rebuilt from their own definitions before
//! the commit, and the tables analyzed for the query planner (SQLite: in the
//! transaction; PostgreSQL: after it). Values go in the SPEC §4 forms: on SQLite UTC text
//! `YYYY-MM-DDTHH:MM:SSZ`, `YYYY-MM-DD`, 0/1 and JSON text; on PostgreSQL
//! TIMESTAMPTZ, DATE, BOOLEAN and JSONB.
//!
//! Where the time goes (1M customers, 7M rows, 2 cores; 27 s on SQLite): about
//! 11 s in the inserts (bound by SQLite's thread: sqlx copies every bound value)
//! and 16 s in rebuilding the indexes, each a full scan and sort of its table;
//! the invoice indexes on `(status, <date>, customer_id)` hold only unpaid
//! invoices (migration 0003), which halved their share. ANALYZE adds about 3 s.
//! On PostgreSQL the server's COPY and index builds.

use super::StoreError;
use crate::demo::{self, Batch, CONNECTORS, Generator, RowCounts};
use sqlx::error::BoxDynError;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteArguments, SqliteConnection};
use sqlx::{Arguments as _, AssertSqlSafe, Connection as _};
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the billing tables are not empty ({customers} customers); nothing was changed")]
    NotEmpty { customers: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for LoadError {
    fn from(e: sqlx::Error) -> Self {
        LoadError::Store(StoreError::Db {
            what: "loading the demo data",
            source: super::DbError(e),
        })
    }
}

/// What a load does with rows already in the billing tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Fail with [`LoadError::NotEmpty`] when any billing table holds a row.
    Refuse,
    /// Delete every row of the billing tables first (in the same transaction).
    Replace,
}

/// How far a load is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// This many customers (with their rows) have been written.
    Customers(u64),
    /// All rows are written; indexes are being rebuilt, the tables analyzed
    /// (SQLite; PostgreSQL analyzes them after the commit) and the load committed.
    Finishing,
}

/// The billing tables of SPEC §4.
pub const BILLING_TABLES: [&str; 6] = [
    "connectors",
    "customers",
    "customer_connectors",
    "payment_methods",
    "invoices",
    "monitors",
];

/// How many customers there are, and whether any billing table holds a row.
const OCCUPANCY: &str = "SELECT (SELECT count(*) FROM customers), \
     (SELECT count(*) FROM (SELECT 1 FROM connectors LIMIT 1) a) \
     + (SELECT count(*) FROM (SELECT 1 FROM customer_connectors LIMIT 1) b) \
     + (SELECT count(*) FROM (SELECT 1 FROM payment_methods LIMIT 1) c) \
     + (SELECT count(*) FROM (SELECT 1 FROM invoices LIMIT 1) d) \
     + (SELECT count(*) FROM (SELECT 1 FROM monitors LIMIT 1) e)";

/// Customers generated per batch handed from the generator thread.
const SQLITE_BATCH: usize = 1_000;
const PG_BATCH: usize = 5_000;
/// Batches buffered between the generator thread and the database.
const IN_FLIGHT: usize = 4;

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

/// Fills the billing tables of a PostgreSQL database, then refreshes their statistics.
pub(super) async fn load_into_pg(
    pool: &sqlx::PgPool,
    generator: Generator,
    existing: Existing,
    progress: impl FnMut(Progress),
) -> Result<RowCounts, LoadError> {
    let mut conn = pool.acquire().await?;
    let rows = load_pg(&mut conn, generator, existing, progress).await?;
    // Fresh statistics for the planner of the segment queries; best effort,
    // as the load is committed already (autovacuum analyzes later anyway).
    if let Err(e) = sqlx::query(AssertSqlSafe(pg_analyze_billing()))
        .execute(pool)
        .await
    {
        tracing::warn!("analyzing the billing tables after the load: {e}");
    }
    Ok(rows)
}

/// PostgreSQL: fresh statistics for the billing tables, after segd changed their
/// rows or indexes (a demo load, a migration). It samples a bounded number of
/// rows per table and takes no lock that blocks reads or writes; between such
/// changes autovacuum keeps them fresh.
pub(super) fn pg_analyze_billing() -> String {
    format!("ANALYZE {}", BILLING_TABLES.join(", "))
}

/// A statement ready to run: SQL built from constants only, and its arguments.
struct Prepared<A> {
    sql: Arc<str>,
    args: A,
    /// A second reference to the arguments' values, so that they are freed here
    /// rather than on the database's thread (SQLite), which is the bottleneck.
    keep: Option<A>,
}

/// The statements for the next customers, and how many customers they complete.
struct Chunk<A> {
    statements: Vec<Prepared<A>>,
    customers: u64,
    rows: RowCounts,
}

/// Turns batches of rows into statements, on the generator thread.
trait Encoder: Send + 'static {
    type Args: Send + 'static;
    fn batch(&mut self, b: Batch, out: &mut Vec<Prepared<Self::Args>>) -> Result<(), BoxDynError>;
    fn finish(&mut self, out: &mut Vec<Prepared<Self::Args>>) -> Result<(), BoxDynError>;
}

/// Runs the generator and the encoder on a blocking thread; the receiver gets the
/// chunks in order, the last one carrying the encoder's remainder. Dropping the
/// receiver stops the thread.
fn spawn_encoding<E: Encoder>(
    mut generator: Generator,
    mut encoder: E,
    batch: usize,
) -> mpsc::Receiver<Result<Chunk<E::Args>, BoxDynError>> {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut statements = Vec::new();
            let (result, rows, last) = match generator.next_batch(batch) {
                Some(b) => {
                    let rows = b.counts();
                    (encoder.batch(b, &mut statements), rows, false)
                }
                None => (encoder.finish(&mut statements), RowCounts::default(), true),
            };
            let item = result.map(|()| Chunk {
                statements,
                customers: generator.generated(),
                rows,
            });
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed || last {
                break;
            }
        }
    });
    rx
}

fn encode_error(e: BoxDynError) -> LoadError {
    LoadError::from(sqlx::Error::Encode(e))
}

// ---------------------------------------------------------------------------
// SQLite

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

/// Quotes an identifier for SQL (both backends).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
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

// ---------------------------------------------------------------------------
// PostgreSQL

/// One `COPY … FROM STDIN` (text format) per table and batch.
const PG_COPY: [&str; 5] = [
    "COPY customers (id, name, email, country, custom_data, created_at) FROM STDIN",
    "COPY customer_connectors (customer_id, connector_id) FROM STDIN",
    "COPY payment_methods (id, customer_id, type, status, connector_id, is_default) FROM STDIN",
    "COPY invoices (id, customer_id, number, status, amount_cents, currency, due_date, created_at) FROM STDIN",
    "COPY monitors (id, customer_id, name, state, updated_at) FROM STDIN",
];

/// Rows in PostgreSQL's COPY text format: tab-separated fields, `\N` for NULL,
/// backslash escapes for backslash, tab, newline and carriage return.
#[derive(Default)]
struct CopyText(Vec<u8>);

impl CopyText {
    fn field(&mut self, first: bool) {
        if !first {
            self.0.push(b'\t');
        }
    }

    fn text(&mut self, first: bool, s: &str) -> &mut Self {
        self.field(first);
        for &b in s.as_bytes() {
            match b {
                b'\\' => self.0.extend_from_slice(b"\\\\"),
                b'\t' => self.0.extend_from_slice(b"\\t"),
                b'\n' => self.0.extend_from_slice(b"\\n"),
                b'\r' => self.0.extend_from_slice(b"\\r"),
                _ => self.0.push(b),
            }
        }
        self
    }

    fn opt(&mut self, first: bool, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.text(first, s),
            None => {
                self.field(first);
                self.0.extend_from_slice(b"\\N");
                self
            }
        }
    }

    /// A value whose text form needs no escaping (numbers, dates, times, booleans).
    fn plain(&mut self, first: bool, v: impl std::fmt::Display) -> &mut Self {
        use std::io::Write as _;
        self.field(first);
        let _ = write!(self.0, "{v}");
        self
    }

    fn end_row(&mut self) {
        self.0.push(b'\n');
    }
}

struct PgEncoder {
    sql: [Arc<str>; 5],
}

impl PgEncoder {
    fn new() -> Self {
        Self {
            sql: PG_COPY.map(Arc::from),
        }
    }
}

impl Encoder for PgEncoder {
    type Args = Vec<u8>;

    fn batch(&mut self, b: Batch, out: &mut Vec<Prepared<Vec<u8>>>) -> Result<(), BoxDynError> {
        let mut tables: [CopyText; 5] = Default::default();
        let [customers, links, methods, invoices, monitors] = &mut tables;
        for c in &b.customers {
            customers
                .text(true, &c.id)
                .text(false, &c.name)
                .opt(false, c.email.as_deref())
                .opt(false, c.country)
                .opt(false, c.custom_data.as_deref())
                .text(false, &demo::timestamp_text(&c.created_at))
                .end_row();
        }
        for l in &b.customer_connectors {
            links
                .text(true, &l.customer_id)
                .text(false, l.connector_id)
                .end_row();
        }
        for m in &b.payment_methods {
            methods
                .text(true, &m.id)
                .text(false, &m.customer_id)
                .text(false, m.kind)
                .text(false, m.status)
                .opt(false, m.connector_id)
                .plain(false, if m.is_default { 't' } else { 'f' })
                .end_row();
        }
        for i in &b.invoices {
            invoices
                .text(true, &i.id)
                .text(false, &i.customer_id)
                .text(false, &i.number)
                .text(false, i.status)
                .plain(false, i.amount_cents)
                .text(false, i.currency)
                .plain(false, demo::date_text(i.due_date))
                .plain(false, demo::timestamp_text(&i.created_at))
                .end_row();
        }
        for m in &b.monitors {
            monitors
                .text(true, &m.id)
                .text(false, &m.customer_id)
                .text(false, m.name)
                .text(false, m.state)
                .plain(false, demo::timestamp_text(&m.updated_at))
                .end_row();
        }
        for (sql, data) in self.sql.iter().zip(tables) {
            if !data.0.is_empty() {
                out.push(Prepared {
                    sql: sql.clone(),
                    args: data.0,
                    keep: None,
                });
            }
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Prepared<Vec<u8>>>) -> Result<(), BoxDynError> {
        Ok(())
    }
}

async fn load_pg(
    conn: &mut PgConnection,
    generator: Generator,
    existing: Existing,
    mut progress: impl FnMut(Progress),
) -> Result<RowCounts, LoadError> {
    let mut tx = conn.begin().await?;
    // Only this transaction: its commit need not wait for the WAL flush.
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;

    let (customers, others): (i64, i64) = sqlx::query_as(OCCUPANCY).fetch_one(&mut *tx).await?;
    if customers + others > 0 {
        match existing {
            Existing::Refuse => return Err(LoadError::NotEmpty { customers }),
            Existing::Replace => {
                sqlx::query(
                    "TRUNCATE connectors, customers, customer_connectors, payment_methods, invoices, monitors",
                )
                .execute(&mut *tx)
                .await?;
            }
        }
    }

    // Secondary indexes (not those behind constraints): dropped for the load,
    // rebuilt from their own definitions.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.relname::text, pg_get_indexdef(i.oid) FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema() AND t.relname::text = ANY($1) \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) \
         ORDER BY 1",
    )
    .bind(BILLING_TABLES.as_slice())
    .fetch_all(&mut *tx)
    .await?;
    for (name, _) in &indexes {
        // The name comes from the catalog itself, quoted.
        sqlx::query(AssertSqlSafe(format!("DROP INDEX {}", quote_ident(name))))
            .execute(&mut *tx)
            .await?;
    }

    let mut rows = RowCounts::default();
    let column = |f: fn(&demo::Connector) -> &'static str| -> Vec<&'static str> {
        CONNECTORS.iter().map(f).collect()
    };
    sqlx::query(
        "INSERT INTO connectors (id, name, kind, connection) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])",
    )
    .bind(column(|c| c.id))
    .bind(column(|c| c.name))
    .bind(column(|c| c.kind))
    .bind(column(|c| c.connection))
    .execute(&mut *tx)
    .await?;
    rows.connectors = CONNECTORS.len() as u64;

    let mut chunks = spawn_encoding(generator, PgEncoder::new(), PG_BATCH);
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk.map_err(encode_error)?;
        for s in chunk.statements {
            let mut copy = tx.copy_in_raw(&s.sql).await?;
            copy.send(s.args).await?;
            copy.finish().await?;
        }
        rows += chunk.rows;
        progress(Progress::Customers(chunk.customers));
    }

    progress(Progress::Finishing);
    for (_, sql) in indexes {
        // The definition PostgreSQL gives for the index.
        sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await?;
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

    #[test]
    fn copy_text_escapes_and_nulls() {
        let mut t = CopyText::default();
        t.text(true, "a\tb\\c\nd\re")
            .opt(false, None)
            .plain(false, 42)
            .end_row();
        assert_eq!(t.0, b"a\\tb\\\\c\\nd\\re\t\\N\t42\n");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("invoices_customer"), "\"invoices_customer\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
