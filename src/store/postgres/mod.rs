//! The PostgreSQL backend, for teams and for several daemons on one database.

mod election;
mod load;

use super::billing::{Existing, LoadError, Progress};
use super::sql::{Backend, Session};
use super::{Election, Held, PlanNode, StoreError, connect_error};
use crate::config::redact_url;
use crate::demo::{Generator, RowCounts};
use crate::model::CustomDataKey;
use crate::segment::{Bind, Dialect, Query, custom_data_statistics_sql};
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use sqlx::postgres::{
    PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow, Postgres,
};
use sqlx::query::Query as SqlQuery;
use sqlx::{Arguments as _, AssertSqlSafe, ConnectOptions as _, Transaction};
use std::collections::BTreeSet;
use std::time::Duration;

/// The apply lock: session-level, so the server releases it when the holder's
/// connection drops (its process died). Not the key of
/// [`PgStore::APPLY_XACT_LOCK`], which an apply takes on another connection
/// while holding this.
const APPLY_LOCK: &str = "SELECT pg_try_advisory_lock(hashtextextended('segd:apply', 0))";
const APPLY_UNLOCK: &str = "SELECT pg_advisory_unlock(hashtextextended('segd:apply', 0))";

pub struct PgStore {
    pub pool: PgPool,
}

impl PgStore {
    /// Opens and migrates the database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = connect_options(url)?;
        first_connection(&options, url).await?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| connect_error(e, url))?;
        if super::migrate(&super::migrations::postgres(), &pool, url).await? {
            let analyzed = sqlx::query(AssertSqlSafe(load::pg_analyze_billing()))
                .execute(&pool)
                .await;
            super::refreshed_after_migrating(analyzed.map(drop).map_err(StoreError::from));
        }
        Ok(Self { pool })
    }
}

impl Backend for PgStore {
    type Db = Postgres;

    const DIALECT: Dialect = Dialect::Postgres;
    /// Serialises applies across processes for the length of a transaction.
    const APPLY_XACT_LOCK: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(hashtext('segd_apply'))");
    const VERSION_FOR_UPDATE: &'static str = "SELECT lineage || ':' || CAST(revision AS TEXT) \
         FROM segd_revision WHERE id = 1 FOR UPDATE";
    const TRIGGER_XACT_LOCK: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(hashtextextended('segd:trigger:' || $1, 0))");
    const INVOICE_LIST_ONE: &'static str = "json_build_array(x.invoice_id)::text";
    const INVOICE_LIST_AGG: &'static str = "json_agg(x.invoice_id)::text";
    /// A session's ids come from the sequence in increasing order (even with a
    /// CACHE), so two values it draws around the insert bound the rows between.
    const OUTBOX_BOUND: &'static str =
        "SELECT nextval(pg_get_serial_sequence('segd_outbox', 'id'))";
    const CLAIM_LOCKING: &'static str = " FOR UPDATE SKIP LOCKED";
    /// As SQLite's, with the type of each parameter that is only tested for
    /// NULL told. A row due since it was enqueued shows its run's start as its
    /// next attempt.
    const DELIVERIES: &'static str = "SELECT o.id, u.id || ':' || o.customer_id || COALESCE(':' || o.invoice_id, ''), \
         u.communication, u.channel, o.customer_id, o.invoice_ids, o.status, CAST(o.attempts AS BIGINT), \
         COALESCE(o.next_attempt_at, u.started_at), o.last_error, u.started_at, o.sent_at \
         FROM segd_outbox o JOIN segd_trigger_runs u ON u.seq = o.run \
         WHERE ($1::text IS NULL OR u.communication = $1) AND ($2::text IS NULL OR o.status = $2) \
         AND ($3::text IS NULL OR (u.id = $3 AND o.id BETWEEN u.first_id AND u.last_id AND o.run = u.seq)) \
         AND ($5::bigint IS NULL OR o.id = $5) AND ($6::bigint IS NULL OR o.id < $6) \
         AND ($7::timestamptz IS NULL OR u.started_at >= $7) AND ($8::timestamptz IS NULL OR u.started_at < $8)";
    const CUSTOMERS: &'static str = "SELECT id, name, email, country, custom_data::text, \
         to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM customers WHERE id";
    const INVOICES: &'static str = "SELECT id, number, status, amount_cents, currency, due_date::text, \
         to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM invoices WHERE id";
    const INSERT_MEMBERS: &'static str = "INSERT INTO segd_segment_members (segment, sampled_at, customer_id) \
         SELECT $1, $2, v FROM jsonb_array_elements_text(CAST($3 AS jsonb)) v";
    /// One bound array.
    const IDS_PER_STATEMENT: usize = usize::MAX;
    /// The reading task reads the socket itself: no thread hands rows over.
    const ROW_PACE: Option<std::time::Duration> = None;
    /// Autovacuum keeps them.
    const KEEPS_STATISTICS: bool = false;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

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

    async fn release_lock(&self, held: Held) -> Result<(), StoreError> {
        if let Held::Postgres(mut conn) = held {
            sqlx::query(APPLY_UNLOCK).execute(&mut *conn).await?;
        }
        Ok(())
    }

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn args(binds: &[Bind]) -> Result<PgArguments, StoreError> {
        let mut args = PgArguments::default();
        for b in binds {
            match b {
                Bind::Text(s) => args.add(s.clone()),
                Bind::Int(i) => args.add(*i),
                Bind::Float(x) => args.add(*x),
                Bind::Bool(v) => args.add(*v),
                Bind::Time(t) => args.add(*t),
                Bind::Date(d) => args.add(*d),
                Bind::Stamp(t) => args.add(*t),
                Bind::Texts(v) => args.add(v.as_slice()),
                Bind::Dates(v) => args.add(v.as_slice()),
                Bind::ConnectorIds(_) => Err(super::UNRESOLVED.into()),
            }
            .map_err(|e| StoreError::from(sqlx::Error::Encode(e)))?;
        }
        Ok(args)
    }

    fn in_ids(first: usize, _n: usize) -> String {
        format!(" = ANY(${first})")
    }

    fn bind_ids<'q>(
        q: SqlQuery<'q, Postgres, PgArguments>,
        ids: &'q [i64],
    ) -> SqlQuery<'q, Postgres, PgArguments> {
        q.bind(ids)
    }

    fn bind_keys<'q>(
        q: SqlQuery<'q, Postgres, PgArguments>,
        ids: &'q [String],
    ) -> SqlQuery<'q, Postgres, PgArguments> {
        q.bind(ids)
    }

    /// `SET LOCAL` lasts as long as the transaction: no other statement on
    /// the connection is planned so.
    async fn planned(
        &self,
        q: &Query,
    ) -> Result<Option<Transaction<'static, Postgres>>, StoreError> {
        if !q.merge_joins {
            return Ok(None);
        }
        Ok(Some(merging(&self.pool).await?))
    }

    /// The rows come from a task, started at once, that holds the
    /// transaction and reads them into a channel of [`PLANNED_ROWS`]: a
    /// reader that stops (drops the stream) stops the task at its next row;
    /// its transaction is rolled back when its connection returns to the
    /// pool, once the server has finished the query (as a listing read
    /// from the pool did).
    ///
    /// A listing whose connectors are looked up ([`Self::resolved`]) is read
    /// so too (on a connection of the pool where nothing is set), the lookup
    /// made by the task.
    fn planned_rows(&self, q: &Query) -> Option<BoxStream<'static, Result<PgRow, StoreError>>> {
        if !q.merge_joins && !looks_connectors_up(q) {
            return None;
        }
        let (send, recv) = tokio::sync::mpsc::channel(PLANNED_ROWS);
        let (pool, q) = (self.pool.clone(), q.clone());
        tokio::spawn(async move {
            let read = async {
                let q = resolved(&pool, &q).await?.unwrap_or(q);
                if send.is_closed() {
                    // The reader left while the connectors were looked up.
                    return Ok(());
                }
                let (mut tx, mut conn);
                let on: &mut PgConnection = if q.merge_joins {
                    tx = merging(&pool).await?;
                    &mut tx
                } else {
                    conn = pool.acquire().await?;
                    &mut conn
                };
                let mut rows =
                    sqlx::query_with(AssertSqlSafe(q.sql.as_str()), Self::args(&q.binds)?)
                        .persistent(false)
                        .fetch(on);
                while let Some(row) = rows.next().await {
                    if send.send(row.map_err(StoreError::from)).await.is_err() {
                        break;
                    }
                }
                Ok::<(), StoreError>(())
            };
            if let Err(e) = read.await {
                // The reader may have gone: then no one is told.
                let _ = send.send(Err(e)).await;
            }
        });
        Some(
            futures_util::stream::unfold(recv, |mut recv| async move {
                recv.recv().await.map(|row| (row, recv))
            })
            .boxed(),
        )
    }

    async fn resolved(&self, q: &Query) -> Result<Option<Query>, StoreError> {
        resolved(&self.pool, q).await
    }

    async fn claim_session(&self) -> Result<Session<Postgres>, StoreError> {
        Ok(Session::Autocommit(self.pool.acquire().await?))
    }

    async fn explain_query(&self, q: &Query) -> Result<Vec<PlanNode>, StoreError> {
        let resolved = resolved(&self.pool, q).await?;
        let q = resolved.as_ref().unwrap_or(q);
        let sql = format!("EXPLAIN (VERBOSE, FORMAT JSON) {}", q.sql);
        let explain =
            sqlx::query_scalar_with(AssertSqlSafe(sql), Self::args(&q.binds)?).persistent(false);
        let sqlx::types::Json(plan): sqlx::types::Json<serde_json::Value> =
            match self.planned(q).await? {
                Some(mut tx) => explain.fetch_one(&mut *tx).await?,
                None => explain.fetch_one(&self.pool).await?,
            };
        let top = plan.get(0).and_then(|p| p.get("Plan"));
        Ok(top.map(plan_node).into_iter().collect())
    }

    /// Statistics of each key's expressions ([`custom_data_statistics_sql`]),
    /// those missing made, and gathered where one has no data yet (made by
    /// an apply that failed before it analyzed): `ANALYZE customers` samples
    /// a bounded number of rows and blocks neither reads nor writes. A
    /// server older than 14 keeps no statistics of expressions: nothing is
    /// made there.
    async fn keep_custom_data_of(&self, keys: &BTreeSet<CustomDataKey>) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let version: i32 =
            sqlx::query_scalar("SELECT CAST(current_setting('server_version_num') AS INTEGER)")
                .fetch_one(&self.pool)
                .await?;
        if version < 140_000 {
            return Ok(());
        }
        let kept: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(stxname AS TEXT) FROM pg_statistic_ext \
             WHERE stxrelid = CAST('customers' AS regclass)",
        )
        .fetch_all(&self.pool)
        .await?;
        let gathered: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT CAST(statistics_name AS TEXT) FROM pg_stats_ext_exprs \
             WHERE tablename = 'customers' AND null_frac IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut ungathered = false;
        for key in keys {
            for (name, sql) in custom_data_statistics_sql(key) {
                if !kept.contains(&name) {
                    sqlx::query(AssertSqlSafe(sql)).execute(&self.pool).await?;
                }
                ungathered |= !gathered.contains(&name);
            }
        }
        if ungathered {
            sqlx::query("ANALYZE customers").execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn refresh_statistics(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn load(
        &self,
        generator: Generator,
        existing: Existing,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<RowCounts, LoadError> {
        load::load_into_pg(&self.pool, generator, existing, progress).await
    }

    fn elect(&self) -> Option<Box<dyn Election>> {
        // The store's own connection options: the URL is parsed (and checked) once.
        Some(Box::new(election::PgElection::new(
            self.pool.connect_options().as_ref().clone(),
        )))
    }
}

/// How long a first connection may take before segd gives up on the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// PostgreSQL's SQLSTATE for a database that does not exist (invalid_catalog_name).
const PG_NO_DATABASE: &str = "3D000";

/// How many rows of a listing planned in a transaction of its own wait for
/// their reader ([`Backend::planned_rows`]).
const PLANNED_ROWS: usize = 1024;

/// A transaction whose statements are planned without hash tables
/// ([`Query::merge_joins`]) and without parallel workers: each worker read
/// every joined set whole (its share of the customers merged with all of
/// each set), so two workers and the leader read the sets three times. Over
/// the merged counts of two draws of the shapes bench (measured when counts
/// of an `any` merged too, before they were complements; 200,000 customers,
/// best of 3, A/B in one process), 8.2 -> 7.8 s for the 56 of the fixed seed
/// (the worst unchanged at 4.4-4.5x its scans) and 11.8 -> 10.8 s for the 83
/// of seed `stop42` (the worst, three joins of payment methods, 5.1x ->
/// 4.4x); a few are slower (fixed-seed shape-050 219 -> 315 ms, 2.6x ->
/// 3.7x).
async fn merging(pool: &PgPool) -> Result<Transaction<'static, Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    // One round trip: the settings as one simple query.
    sqlx::raw_sql(
        "SET LOCAL enable_hashjoin = off; SET LOCAL enable_hashagg = off; \
         SET LOCAL max_parallel_workers_per_gather = 0",
    )
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

/// One connection made directly, before the pool, so that a server that
/// refuses it or a database that does not exist is told at once, in the
/// user's terms, rather than as a pool timing out.
async fn first_connection(options: &PgConnectOptions, url: &str) -> Result<(), StoreError> {
    use sqlx::Connection as _;
    let host = options.get_socket().map_or_else(
        || options.get_host().to_string(),
        |s| s.display().to_string(),
    );
    let port = options.get_port();
    let at = format!("{host}:{port}");
    let connected =
        tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect_with(options))
            .await
            .map_err(|_| StoreError::NoAnswer {
                at: at.clone(),
                secs: CONNECT_TIMEOUT.as_secs(),
            })?;
    match connected {
        Ok(conn) => {
            // The pool opens its own; how this one closes does not matter.
            let _ = conn.close().await;
            Ok(())
        }
        Err(sqlx::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(StoreError::Refused { at })
        }
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some(PG_NO_DATABASE) => {
            let user = options.get_username();
            let name = options.get_database().unwrap_or(user).to_string();
            let flags = format!(" -h {host} -p {port} -U {user}");
            Err(StoreError::NoDatabase { name, at, flags })
        }
        Err(e) => Err(connect_error(e, url)),
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
///
/// The sessions run without JIT compilation (`jit = off`) unless the URL
/// sets `jit` itself (`options[jit]=on`, or in `options`). A segment's query
/// runs for tens or hundreds of milliseconds, and PostgreSQL compiles one
/// whose estimated cost passes `jit_above_cost` (100,000) first: a count of
/// an `any` of two customer blocks, no member among 200,000 customers
/// (seed `stop39` shape-156 of the shapes bench, which a per-customer
/// subplan estimated at 2,160,000), spent 224 ms of its 381 compiling and
/// took 125-133 ms without (a scan of the customers: 20 ms).
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
    let options = PgConnectOptions::from_url(&parsed).map_err(|e| connect_error(e, url))?;
    let sets_jit = parsed
        .query_pairs()
        .any(|(k, v)| k == "options[jit]" || k == "options" && v.contains("jit"));
    Ok(if sets_jit {
        options
    } else {
        options.options([("jit", "off")])
    })
}

/// Whether `q` binds a connector lookup ([`Bind::ConnectorIds`]).
fn looks_connectors_up(q: &Query) -> bool {
    q.binds.iter().any(|b| matches!(b, Bind::ConnectorIds(_)))
}

/// `q` with each connector lookup made the ids it selects now (a statement
/// of its own, before `q` is planned, so that PostgreSQL plans `q` with the
/// ids as constants: [`crate::segment`]'s `connector_ids`); none where `q`
/// looks none up. The connectors are read a moment before `q` reads the
/// rest: a connector added or renamed in between counts from the next run.
async fn resolved(pool: &PgPool, q: &Query) -> Result<Option<Query>, StoreError> {
    if !looks_connectors_up(q) {
        return Ok(None);
    }
    let mut out = q.clone();
    for b in &mut out.binds {
        if let Bind::ConnectorIds(lookup) = b {
            let ids: Vec<String> = sqlx::query_scalar_with(
                AssertSqlSafe(lookup.sql.as_str()),
                PgStore::args(&lookup.binds)?,
            )
            .persistent(false)
            .fetch_all(pool)
            .await?;
            *b = Bind::Texts(ids);
        }
    }
    Ok(Some(out))
}

/// A PostgreSQL plan node as one line: what it is to its parent, its type
/// and join type, the relation, alias and index, then its conditions.
fn plan_node(node: &serde_json::Value) -> PlanNode {
    let text = |key: &str| node.get(key).and_then(serde_json::Value::as_str);
    let mut label = String::new();
    if let Some(rel) = text("Parent Relationship") {
        label.push_str(rel);
        if let Some(name) = text("Subplan Name") {
            label.push_str(&format!(" ({name})"));
        }
        label.push_str(": ");
    }
    label.push_str(text("Node Type").unwrap_or("?"));
    if let Some(join) = text("Join Type") {
        label.push_str(&format!(" {join}"));
    }
    if let Some(index) = text("Index Name") {
        label.push_str(&format!(" using {index}"));
    }
    if let Some(rel) = text("Relation Name") {
        label.push_str(&format!(" on {rel}"));
        if let Some(alias) = text("Alias").filter(|a| *a != rel) {
            label.push_str(&format!(" {alias}"));
        }
    }
    for key in [
        "Index Cond",
        "Recheck Cond",
        "Hash Cond",
        "Merge Cond",
        "Join Filter",
        "Filter",
        "Cache Key",
    ] {
        if let Some(cond) = text(key) {
            label.push_str(&format!("; {key}: {cond}"));
        }
    }
    // What a step computes, only where it runs a subplan (whether hashed,
    // once, or per row); the rest is column lists.
    let output = node.get("Output").and_then(serde_json::Value::as_array);
    let subplans: Vec<&str> = output
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .filter(|o| o.contains("SubPlan"))
        .collect();
    if !subplans.is_empty() {
        label.push_str(&format!("; Output: {}", subplans.join(", ")));
    }
    let children = node
        .get("Plans")
        .and_then(serde_json::Value::as_array)
        .map(|plans| plans.iter().map(plan_node).collect())
        .unwrap_or_default();
    PlanNode { label, children }
}
