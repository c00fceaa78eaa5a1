//! Bulk loading of the billing tables into PostgreSQL (see [`crate::store::billing`]):
//! one `COPY … FROM STDIN` per table and batch, in one transaction.

use crate::demo::{self, Batch, CONNECTORS, Generator, RowCounts};
use crate::store::billing::{
    BILLING_TABLES, Encoder, Existing, LoadError, OCCUPANCY, Prepared, Progress, encode_error,
    quote_ident, spawn_encoding,
};
use sqlx::error::BoxDynError;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection as _};
use std::sync::Arc;

/// Customers generated per batch handed from the generator thread.
const PG_BATCH: usize = 5_000;

/// Fills the billing tables of a PostgreSQL database, then refreshes their statistics.
pub(super) async fn load_into_pg(
    pool: &sqlx::PgPool,
    generator: Generator,
    existing: Existing,
    progress: impl FnMut(Progress),
) -> Result<RowCounts, LoadError> {
    let mut conn = pool.acquire().await?;
    let rows = load_pg(&mut conn, generator, existing, progress).await?;
    // Fresh statistics for the planner of the segment queries, and the
    // visibility map an index-only scan reads (empty after a load until a
    // vacuum runs, so each index entry fetched its row: 219,898 fetches of
    // the links made an `any` of 24 countries and a connector block count in
    // 338 ms, 190 ms vacuumed; 200,000 customers). Best effort, as the load
    // is committed already (autovacuum vacuums and analyzes later anyway).
    let vacuum = format!("VACUUM (ANALYZE) {}", BILLING_TABLES.join(", "));
    if let Err(e) = sqlx::raw_sql(AssertSqlSafe(vacuum)).execute(pool).await {
        tracing::warn!("vacuuming the billing tables after the load: {e}");
    }
    Ok(rows)
}

/// PostgreSQL: fresh statistics for the billing tables, after segd changed their
/// indexes (a migration; a demo load vacuums them too). It samples a bounded number of
/// rows per table and takes no lock that blocks reads or writes; between such
/// changes autovacuum keeps them fresh.
pub(super) fn pg_analyze_billing() -> String {
    format!("ANALYZE {}", BILLING_TABLES.join(", "))
}

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
    fn copy_text_escapes_and_nulls() {
        let mut t = CopyText::default();
        t.text(true, "a\tb\\c\nd\re")
            .opt(false, None)
            .plain(false, 42)
            .end_row();
        assert_eq!(t.0, b"a\\tb\\\\c\\nd\\re\t\\N\t42\n");
    }
}
