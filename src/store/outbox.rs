//! Trigger runs and the delivery outbox: enqueue in one transaction, claim with
//! a lease (SKIP LOCKED on PostgreSQL), mark results in batches. A run's rows
//! are found through the run (its id range and where its fresh rows start), so
//! that enqueueing writes no index entries besides the primary key's (and an
//! invoice message's invoice).

use super::members::{pg_args, sqlite_args};
use super::{AnyStore, DbContext as _, StoreError};
use crate::deliver::payload::{Customer, Invoice};
use crate::segment::Query;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row as _};

/// Serialises the enqueueing of one communication's runs (PostgreSQL), until
/// the transaction ends.
const TRIGGER_XACT_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('segd:trigger:' || $1, 0))";

/// Runs of one communication also take turns inside the process, before they
/// take a connection: on PostgreSQL a run waiting for [`TRIGGER_XACT_LOCK`]
/// holds a pooled connection, and many concurrent triggers of one
/// communication (the HTTP API) would otherwise hold them all. Striped by a
/// hash of the name: two communications share a turn only on a collision.
static ENQUEUE_TURNS: [tokio::sync::Mutex<()>; 64] =
    [const { tokio::sync::Mutex::const_new(()) }; 64];

fn enqueue_turn(communication: &str) -> &'static tokio::sync::Mutex<()> {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    communication.hash(&mut h);
    let i = usize::try_from(h.finish() % ENQUEUE_TURNS.len() as u64).unwrap_or(0);
    &ENQUEUE_TURNS[i]
}

/// A trigger run as recorded in `segd_trigger_runs`.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: String,
    pub communication: String,
    pub channel: &'static str,
    pub occurrence: String,
    /// `manual` or `scheduled`.
    pub kind: &'static str,
    pub occurred_at: DateTime<Utc>,
    pub late: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Enqueued,
    /// Over `max_recipients`: nothing enqueued.
    Held,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Enqueued => "enqueued",
            RunStatus::Held => "held",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunResult {
    pub status: RunStatus,
    pub recipients: u64,
    pub enqueued: u64,
}

/// A claimed outbox row.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub key: String,
    pub communication: String,
    pub customer_id: String,
    pub invoice_ids: Vec<String>,
    pub occurred_at: DateTime<Utc>,
    /// Attempts made, this one included.
    pub attempts: u32,
}

/// How an attempt ends for the row.
#[derive(Debug, Clone)]
pub enum Mark {
    Sent,
    Retry { at: DateTime<Utc>, error: String },
    Failed { error: String },
    Dead { error: String },
}

/// A row of `segd deliveries`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivery {
    pub id: i64,
    pub idempotency_key: String,
    pub communication: String,
    pub channel: String,
    pub customer_id: String,
    pub invoice_ids: Vec<String>,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub communication: Option<String>,
    pub status: Option<String>,
    pub run_id: Option<String>,
    pub limit: Option<i64>,
}

/// A delivery's idempotency key, from its run (`communication:occurrence`), its
/// customer and, for an invoice message, its invoice (migrations 0005, 0006), over
/// the rows of `outbox!()`.
macro_rules! key_sql {
    () => {
        "u.id || ':' || o.customer_id || COALESCE(':' || o.invoice_id, '')"
    };
}

/// Outbox rows `o` with their runs `u`.
macro_rules! outbox {
    () => {
        "segd_outbox o JOIN segd_trigger_runs u ON u.seq = o.run"
    };
}

/// The rows of run `$3` among `segd_outbox`, with `$1` and `$2` its
/// `first_id` and `last_id`: every row of a run has an id in its range, and
/// rows of runs enqueued at the same time may lie in between (migration 0007).
macro_rules! in_range {
    () => {
        "id BETWEEN $1 AND $2 AND run = $3"
    };
}

/// A fresh row: pending and never tried. Only enqueueing makes one: a released
/// or re-queued row is due at a time instead, so a run's fresh rows are
/// claimed from its `fresh_from` on, which only ever moves forward.
macro_rules! fresh {
    () => {
        "status = 'pending' AND next_attempt_at IS NULL"
    };
}

/// The rows `o` of the runs `u` joined to them, through the runs' id ranges.
macro_rules! of_runs {
    () => {
        "o.id BETWEEN u.first_id AND u.last_id AND o.run = u.seq"
    };
}

const CLAIMED_SELECT: &str = concat!(
    "SELECT o.id, ",
    key_sql!(),
    ", u.communication, o.customer_id, o.invoice_ids, u.occurred_at, CAST(o.attempts AS BIGINT) FROM ",
    outbox!()
);

/// Fetches rows by id and hands each to the `decode` macro: on SQLite with `IN`
/// lists of at most 500 bound ids (after a select ending in `WHERE id`), on
/// PostgreSQL with one bound array.
macro_rules! by_ids {
    ($store:expr, $ids:expr, $sqlite_select:expr, $pg_sql:expr, $decode:ident) => {
        match $store {
            AnyStore::Sqlite(s) => {
                for chunk in $ids.chunks(500) {
                    let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
                    let sql = format!("{} IN ({})", $sqlite_select, marks.join(", "));
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for id in chunk {
                        q = q.bind(id);
                    }
                    for row in q.fetch_all(&s.pool).await.db("reading rows by id")? {
                        $decode!(row);
                    }
                }
            }
            AnyStore::Postgres(s) => {
                for row in sqlx::query(AssertSqlSafe($pg_sql))
                    .bind($ids)
                    .fetch_all(&s.pool)
                    .await
                    .db("reading rows by id")?
                {
                    $decode!(row);
                }
            }
        }
    };
}

/// Runs `$body` with `$pool` bound to the store's pool, whichever the backend.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            AnyStore::Sqlite(s) => {
                let $pool = &s.pool;
                $body
            }
            AnyStore::Postgres(s) => {
                let $pool = &s.pool;
                $body
            }
        }
    };
}

/// A row's invoice ids, in order: the outbox stores them as a JSON array in
/// whatever order the run's aggregate met them (sorting there costs a large run
/// a tenth of its time).
fn invoice_ids(json: &str) -> Vec<String> {
    let mut ids: Vec<String> = serde_json::from_str(json).unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// The query that records a run (started and finished `now`) and returns its `seq`.
macro_rules! insert_run {
    ($run:expr, $now:expr, $status:expr, $error:expr) => {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO segd_trigger_runs (id, communication, occurrence, kind, channel, occurred_at, \
             started_at, finished_at, status, late, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10) \
             RETURNING CAST(seq AS BIGINT)",
        )
        .bind(&$run.id)
        .bind(&$run.communication)
        .bind(&$run.occurrence)
        .bind($run.kind)
        .bind($run.channel)
        .bind($run.occurred_at)
        .bind($now)
        .bind($status)
        .bind($run.late)
        .bind($error)
    };
}

macro_rules! decode_claimed {
    ($row:expr) => {{
        let row = $row;
        // A row that does not decode (a column of another type) fails the read.
        (|| -> Result<Claimed, sqlx::Error> {
            let ids: String = row.try_get(4)?;
            let attempts: i64 = row.try_get(6)?;
            Ok(Claimed {
                id: row.try_get(0)?,
                key: row.try_get(1)?,
                communication: row.try_get(2)?,
                customer_id: row.try_get(3)?,
                invoice_ids: invoice_ids(&ids),
                occurred_at: row.try_get(5)?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            })
        })()
        .db("reading claimed deliveries")?
    }};
}

macro_rules! decode_delivery {
    ($row:expr) => {{
        let row = $row;
        (|| -> Result<Delivery, sqlx::Error> {
            let ids: String = row.try_get(5)?;
            Ok(Delivery {
                id: row.try_get(0)?,
                idempotency_key: row.try_get(1)?,
                communication: row.try_get(2)?,
                channel: row.try_get(3)?,
                customer_id: row.try_get(4)?,
                invoice_ids: invoice_ids(&ids),
                status: row.try_get(6)?,
                attempts: row.try_get(7)?,
                next_attempt_at: row.try_get(8)?,
                last_error: row.try_get(9)?,
                created_at: row.try_get(10)?,
                sent_at: row.try_get(11)?,
            })
        })()
        .db("reading deliveries")?
    }};
}

impl AnyStore {
    /// Records the run and, unless it is over `max_recipients`, writes every
    /// intended delivery — all in one transaction. The run's row comes first, so
    /// an occurrence that ran already fails before anything is written, and the
    /// deliveries name it; the recipients are counted from the rows written (a
    /// payment reminder writes one per recipient), which are taken back when the
    /// run is over the limit. The run then records where its rows are
    /// (migration 0007): ids between two bounds read around the insert, and
    /// fresh from the first.
    pub async fn enqueue_run(
        &self,
        run: &Run,
        one_per_recipient: bool,
        enqueue: &Query,
        max_recipients: Option<u64>,
    ) -> Result<RunResult, StoreError> {
        let _turn = enqueue_turn(&run.communication).lock().await;
        macro_rules! body {
            ($pool:expr, $begin:expr, $serialise:expr, $args:path, $bound:expr) => {{
                let mut tx = $pool.begin_with($begin).await.db("enqueueing a run")?;
                if let Some(sql) = $serialise {
                    sqlx::query(sql)
                        .bind(&run.communication)
                        .execute(&mut *tx)
                        .await
                        .db("enqueueing a run")?;
                }
                let now = Utc::now();
                let seq = insert_run!(run, now, RunStatus::Enqueued.as_str(), None::<&str>)
                    .fetch_one(&mut *tx)
                    .await
                    .db("enqueueing a run")?;
                let first: i64 = sqlx::query_scalar($bound)
                    .fetch_one(&mut *tx)
                    .await
                    .db("enqueueing a run")?;
                let written =
                    sqlx::query_with(AssertSqlSafe(enqueue.sql.clone()), $args(&enqueue.binds)?)
                        .execute(&mut *tx)
                        .await
                        .db("enqueueing a run")?
                        .rows_affected();
                let last: i64 = sqlx::query_scalar($bound)
                    .fetch_one(&mut *tx)
                    .await
                    .db("enqueueing a run")?;
                let n = if one_per_recipient {
                    written
                } else {
                    let n: i64 = sqlx::query_scalar(concat!(
                        "SELECT COUNT(DISTINCT customer_id) FROM segd_outbox WHERE ",
                        in_range!()
                    ))
                    .bind(first)
                    .bind(last)
                    .bind(seq)
                    .fetch_one(&mut *tx)
                    .await
                    .db("enqueueing a run")?;
                    u64::try_from(n).unwrap_or(0)
                };
                let held = max_recipients.is_some_and(|m| n > m);
                if held {
                    sqlx::query(concat!("DELETE FROM segd_outbox WHERE ", in_range!()))
                        .bind(first)
                        .bind(last)
                        .bind(seq)
                        .execute(&mut *tx)
                        .await
                        .db("enqueueing a run")?;
                }
                let (status, enqueued) = if held {
                    (RunStatus::Held, 0)
                } else {
                    (RunStatus::Enqueued, written)
                };
                let fresh_from = (enqueued > 0).then_some(first);
                sqlx::query(
                    "UPDATE segd_trigger_runs SET status = $2, recipients = $3, enqueued = $4, \
                     first_id = $5, last_id = $6, fresh_from = $7 WHERE seq = $1",
                )
                .bind(seq)
                .bind(status.as_str())
                .bind(i64::try_from(n).unwrap_or(i64::MAX))
                .bind(i64::try_from(enqueued).unwrap_or(i64::MAX))
                .bind(first)
                .bind(last)
                .bind(fresh_from)
                .execute(&mut *tx)
                .await
                .db("enqueueing a run")?;
                tx.commit().await.db("enqueueing a run")?;
                Ok(RunResult {
                    status,
                    recipients: n,
                    enqueued,
                })
            }};
        }
        fn ok_sqlite(
            b: &[crate::segment::Bind],
        ) -> Result<sqlx::sqlite::SqliteArguments, StoreError> {
            Ok(sqlite_args(b))
        }
        // Runs of one communication enqueue one at a time, so each sees what the
        // one before it wrote ("not sent before", `min_interval`). SQLite's
        // BEGIN IMMEDIATE takes the database's write lock before the first
        // read; on PostgreSQL a transaction-scoped advisory lock per
        // communication is the first statement, and under READ COMMITTED each
        // later statement reads what the previous holder committed.
        //
        // The bounds of the run's ids: SQLite writes one transaction at a time,
        // and gives a new row an id above every other; a PostgreSQL session's
        // ids come from the sequence in increasing order (even with a CACHE),
        // so two values it draws around the insert bound the rows between.
        match self {
            AnyStore::Sqlite(s) => body!(
                s.pool,
                "BEGIN IMMEDIATE",
                None::<&str>,
                ok_sqlite,
                "SELECT COALESCE(MAX(id), 0) FROM segd_outbox"
            ),
            AnyStore::Postgres(s) => body!(
                s.pool,
                "BEGIN",
                Some(TRIGGER_XACT_LOCK),
                pg_args,
                "SELECT nextval(pg_get_serial_sequence('segd_outbox', 'id'))"
            ),
        }
    }

    /// Records a run that failed before enqueueing anything (e.g. a missing secret).
    pub async fn record_failed_run(&self, run: &Run, error: &str) -> Result<(), StoreError> {
        let now = Utc::now();
        with_pool!(self, pool => insert_run!(run, now, "failed", Some(error)).fetch_one(pool).await.db("recording a failed run")?);
        Ok(())
    }

    /// Claims up to `limit` due rows for `me` until `lease_until`: rows whose
    /// lease expired, then retries that are due (each one range of a partial
    /// index, so a claim never sorts the backlog), then fresh rows, run by run
    /// (oldest first), each from where the run's fresh rows start (one range of
    /// the primary key); that start then moves past what was claimed. A run's
    /// own drain (`segd trigger`) takes only the run's fresh rows: retries are
    /// the daemon's.
    pub async fn claim(
        &self,
        me: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
        run_id: Option<&str>,
    ) -> Result<Vec<Claimed>, StoreError> {
        // Each binds `now` as $4.
        let tiers: &[&str] = match run_id {
            Some(_) => &[],
            None => &[
                // Not this sender's own rows: it may still have them queued.
                "status = 'sending' AND claimed_until < $4 AND claimed_by <> $1 ORDER BY id",
                "status = 'pending' AND next_attempt_at <= $4 ORDER BY next_attempt_at, id",
            ],
        };
        let runs = match run_id {
            Some(_) => {
                "SELECT seq, fresh_from, last_id FROM segd_trigger_runs WHERE id = $1 AND fresh_from IS NOT NULL"
            }
            None => {
                "SELECT seq, fresh_from, last_id FROM segd_trigger_runs WHERE fresh_from IS NOT NULL ORDER BY seq"
            }
        };
        let locking = match self {
            AnyStore::Sqlite(_) => "",
            AnyStore::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let update = |due: &str| {
            format!(
                "UPDATE segd_outbox SET status = 'sending', claimed_by = $1, claimed_until = $2, \
                 attempts = attempts + 1 WHERE id IN (SELECT id FROM segd_outbox WHERE {due} LIMIT $3{locking}) \
                 RETURNING id"
            )
        };
        let fresh = update(concat!(
            "id BETWEEN $4 AND $5 AND run = $6 AND ",
            fresh!(),
            " ORDER BY id"
        ));
        let left = |taken: usize| limit - i64::try_from(taken).unwrap_or(i64::MAX);
        // On PostgreSQL each statement commits on its own, so the run's new start
        // is read after its claim committed. Rows only stop being fresh, so a
        // start read by a concurrent claim is never past a fresh row either.
        macro_rules! take {
            ($exec:expr) => {{
                let mut ids: Vec<i64> = Vec::new();
                for due in tiers {
                    if left(ids.len()) <= 0 {
                        break;
                    }
                    ids.extend(
                        sqlx::query_scalar::<_, i64>(AssertSqlSafe(update(due)))
                            .bind(me)
                            .bind(lease_until)
                            .bind(left(ids.len()))
                            .bind(now)
                            .fetch_all($exec)
                            .await.db("claiming deliveries")?,
                    );
                }
                if left(ids.len()) > 0 {
                    let q = sqlx::query_as::<_, (i64, i64, i64)>(runs);
                    let q = match run_id {
                        Some(r) => q.bind(r),
                        None => q,
                    };
                    for (seq, from, last) in q.fetch_all($exec).await.db("claiming deliveries")? {
                        if left(ids.len()) <= 0 {
                            break;
                        }
                        ids.extend(
                            sqlx::query_scalar::<_, i64>(AssertSqlSafe(fresh.as_str()))
                                .bind(me)
                                .bind(lease_until)
                                .bind(left(ids.len()))
                                .bind(from)
                                .bind(last)
                                .bind(seq)
                                .fetch_all($exec)
                                .await.db("claiming deliveries")?,
                        );
                        sqlx::query(concat!(
                            "UPDATE segd_trigger_runs SET fresh_from = (SELECT id FROM segd_outbox WHERE ",
                            in_range!(),
                            " AND ",
                            fresh!(),
                            " ORDER BY id LIMIT 1) WHERE seq = $3"
                        ))
                        .bind(from)
                        .bind(last)
                        .bind(seq)
                        .execute($exec)
                        .await.db("claiming deliveries")?;
                    }
                }
                ids
            }};
        }
        let ids = match self {
            AnyStore::Sqlite(s) => {
                let mut tx = s
                    .pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .db("claiming deliveries")?;
                let ids = take!(&mut *tx);
                tx.commit().await.db("claiming deliveries")?;
                ids
            }
            AnyStore::Postgres(s) => take!(&s.pool),
        };
        let mut rows = Vec::with_capacity(ids.len());
        macro_rules! decode {
            ($row:expr) => {
                rows.push(decode_claimed!($row))
            };
        }
        by_ids!(
            self,
            &ids,
            format!("{CLAIMED_SELECT} WHERE o.id"),
            format!("{CLAIMED_SELECT} WHERE o.id = ANY($1)"),
            decode
        );
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// Extends the lease of every row `me` is sending.
    pub async fn renew(&self, me: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        let sql = "UPDATE segd_outbox SET claimed_until = $1 WHERE claimed_by = $2 AND status = 'sending'";
        with_pool!(self, pool => sqlx::query(sql).bind(until).bind(me).execute(pool).await.db("renewing the delivery lease")?.rows_affected());
        Ok(())
    }

    /// Hands rows `me` claimed and never started back to pending, as if never
    /// claimed (the claim counted an attempt), except that a row that was fresh
    /// is due now instead (see `fresh!`); rows claimed by another sender since are
    /// left alone.
    pub async fn release(&self, me: &str, ids: &[i64]) -> Result<(), StoreError> {
        const RELEASE: &str = "UPDATE segd_outbox SET status = 'pending', claimed_by = NULL, \
             claimed_until = NULL, attempts = attempts - 1, next_attempt_at = COALESCE(next_attempt_at, $2) \
             WHERE claimed_by = $1 AND status = 'sending' AND id";
        let now = Utc::now();
        match self {
            AnyStore::Sqlite(s) => {
                for chunk in ids.chunks(500) {
                    let marks: Vec<String> =
                        (3..=chunk.len() + 2).map(|i| format!("${i}")).collect();
                    let sql = format!("{RELEASE} IN ({})", marks.join(", "));
                    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(me).bind(now);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    q.execute(&s.pool)
                        .await
                        .db("releasing claimed deliveries")?;
                }
            }
            AnyStore::Postgres(s) => {
                sqlx::query(AssertSqlSafe(format!("{RELEASE} = ANY($3)")))
                    .bind(me)
                    .bind(now)
                    .bind(ids)
                    .execute(&s.pool)
                    .await
                    .db("releasing claimed deliveries")?;
            }
        }
        Ok(())
    }

    /// Writes the outcomes of a batch in one transaction; rows another sender
    /// has claimed since (after this one's lease expired) are left alone.
    pub async fn mark(&self, me: &str, marks: &[(i64, Mark)]) -> Result<(), StoreError> {
        let now = Utc::now();
        macro_rules! body {
            ($pool:expr, $begin:expr) => {{
                let mut tx = $pool.begin_with($begin).await.db("recording delivery outcomes")?;
                for (id, mark) in marks {
                    let (status, next, error): (&str, Option<DateTime<Utc>>, Option<&str>) = match mark {
                        Mark::Sent => ("sent", None, None),
                        Mark::Retry { at, error } => ("pending", Some(*at), Some(error)),
                        Mark::Failed { error } => ("failed", None, Some(error)),
                        Mark::Dead { error } => ("dead", None, Some(error)),
                    };
                    sqlx::query(
                        "UPDATE segd_outbox SET status = $1, next_attempt_at = COALESCE($2, next_attempt_at), \
                         last_error = $3, claimed_by = NULL, claimed_until = NULL, \
                         sent_at = CASE WHEN $1 = 'sent' THEN $4 ELSE sent_at END \
                         WHERE id = $5 AND claimed_by = $6 AND status = 'sending'",
                    )
                    .bind(status)
                    .bind(next)
                    .bind(error)
                    .bind(now)
                    .bind(*id)
                    .bind(me)
                    .execute(&mut *tx)
                    .await.db("recording delivery outcomes")?;
                }
                tx.commit().await.db("recording delivery outcomes")?;
            }};
        }
        match self {
            AnyStore::Sqlite(s) => body!(s.pool, "BEGIN IMMEDIATE"),
            AnyStore::Postgres(s) => body!(s.pool, "BEGIN"),
        }
        Ok(())
    }

    /// The customers with these ids, in the shapes deliveries use.
    pub async fn customers(&self, ids: &[String]) -> Result<Vec<Customer>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        macro_rules! decode {
            ($row:expr) => {{
                let row = $row;
                let customer = || -> Result<Customer, sqlx::Error> {
                    let custom: Option<String> = row.try_get(4)?;
                    Ok(Customer {
                        id: row.try_get(0)?,
                        name: row.try_get(1)?,
                        email: row.try_get(2)?,
                        country: row.try_get(3)?,
                        custom_data: custom
                            .and_then(|t| serde_json::from_str(&t).ok())
                            .unwrap_or(serde_json::Value::Object(Default::default())),
                        created_at: row.try_get(5)?,
                    })
                };
                out.push(customer().db("reading customers")?);
            }};
        }
        by_ids!(
            self,
            ids,
            "SELECT id, name, email, country, custom_data, CAST(created_at AS TEXT) FROM customers WHERE id",
            "SELECT id, name, email, country, custom_data::text, \
             to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM customers WHERE id = ANY($1)",
            decode
        );
        Ok(out)
    }

    /// The invoices with these ids.
    pub async fn invoices(&self, ids: &[String]) -> Result<Vec<Invoice>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        macro_rules! decode {
            ($row:expr) => {{
                let row = $row;
                let invoice = || -> Result<Invoice, sqlx::Error> {
                    Ok(Invoice {
                        id: row.try_get(0)?,
                        number: row.try_get(1)?,
                        status: row.try_get(2)?,
                        amount_cents: row.try_get(3)?,
                        currency: row.try_get(4)?,
                        due_date: row.try_get(5)?,
                        created_at: row.try_get(6)?,
                    })
                };
                out.push(invoice().db("reading invoices")?);
            }};
        }
        by_ids!(
            self,
            ids,
            "SELECT id, number, status, amount_cents, currency, CAST(due_date AS TEXT), CAST(created_at AS TEXT) \
             FROM invoices WHERE id",
            "SELECT id, number, status, amount_cents, currency, due_date::text, \
             to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM invoices WHERE id = ANY($1)",
            decode
        );
        Ok(out)
    }

    /// Outbox rows, newest last.
    pub async fn deliveries(&self, f: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
        // A row due since it was enqueued shows its run's start as its next attempt.
        let sql = concat!(
            "SELECT o.id, ",
            key_sql!(),
            ", u.communication, u.channel, o.customer_id, o.invoice_ids, o.status, CAST(o.attempts AS BIGINT), \
             COALESCE(o.next_attempt_at, u.started_at), o.last_error, u.started_at, o.sent_at FROM ",
            outbox!(),
            " WHERE ($1 IS NULL OR u.communication = $1) AND ($2 IS NULL OR o.status = $2) \
             AND ($3 IS NULL OR (u.id = $3 AND ",
            of_runs!(),
            ")) ORDER BY o.id LIMIT $4"
        );
        // PostgreSQL must be told the type of a parameter that is only tested for NULL.
        let sql = match self {
            AnyStore::Sqlite(_) => sql.to_string(),
            AnyStore::Postgres(_) => sql
                .replace("$1 IS NULL", "$1::text IS NULL")
                .replace("$2 IS NULL", "$2::text IS NULL")
                .replace("$3 IS NULL", "$3::text IS NULL"),
        };
        let limit = f.limit.unwrap_or(i64::MAX);
        let mut out = Vec::new();
        with_pool!(self, pool => {
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(&f.communication)
                .bind(&f.status)
                .bind(&f.run_id)
                .bind(limit)
                .fetch_all(pool)
                .await.db("listing deliveries")?;
            for row in rows {
                out.push(decode_delivery!(row));
            }
        });
        Ok(out)
    }

    /// Re-queues dead or failed deliveries (by id or idempotency key), due now
    /// (never fresh again: see `fresh!`); returns how many.
    pub async fn retry_deliveries(&self, ids: &[String]) -> Result<u64, StoreError> {
        const REQUEUE: &str = "UPDATE segd_outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, \
                               last_error = NULL WHERE status IN ('dead', 'failed') AND id";
        // A key starts with its run's id, `communication:occurrence` (neither holds
        // a colon), which narrows the search to the run's rows.
        let by_key = concat!(
            "SELECT o.id FROM ",
            outbox!(),
            " WHERE u.id = $3 AND ",
            of_runs!(),
            " AND ",
            key_sql!(),
            " = $2"
        );
        let now = Utc::now();
        let mut n = 0;
        for id in ids {
            n += match id.parse::<i64>() {
                Ok(row) => {
                    with_pool!(self, pool => sqlx::query(AssertSqlSafe(format!("{REQUEUE} = $2")))
                    .bind(now)
                    .bind(row)
                    .execute(pool)
                    .await.db("re-queueing deliveries")?
                    .rows_affected())
                }
                Err(_) => {
                    let run: String = id.splitn(3, ':').take(2).collect::<Vec<_>>().join(":");
                    with_pool!(self, pool => sqlx::query(AssertSqlSafe(format!("{REQUEUE} IN ({by_key})")))
                        .bind(now)
                        .bind(id)
                        .bind(&run)
                        .execute(pool)
                        .await.db("re-queueing deliveries")?
                        .rows_affected())
                }
            };
        }
        Ok(n)
    }
}

impl AnyStore {
    /// The latest scheduled occurrence that ran (or was held or failed) for a communication.
    pub async fn last_occurrence(
        &self,
        communication: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let sql = "SELECT occurred_at FROM segd_trigger_runs WHERE communication = $1 AND kind = 'scheduled' \
                   ORDER BY occurred_at DESC LIMIT 1";
        Ok(with_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(communication)
            .fetch_optional(pool)
            .await.db("reading the last scheduled run")?))
    }

    /// When a definition was last applied.
    pub async fn applied_at(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let sql = "SELECT applied_at FROM segd_definitions WHERE kind = $1 AND name = $2";
        Ok(with_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(kind)
            .bind(name)
            .fetch_optional(pool)
            .await.db("reading when a definition was applied")?))
    }

    /// Outbox rows by status, for status and metrics.
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT status, COUNT(*) FROM segd_outbox GROUP BY status ORDER BY status";
        Ok(
            with_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await.db("counting the outbox")?),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::invoice_ids;

    #[test]
    fn a_rows_invoice_ids_read_in_order_whatever_order_they_were_stored_in() {
        assert_eq!(
            invoice_ids(r#"["inv_3","inv_1","inv_2"]"#),
            ["inv_1", "inv_2", "inv_3"]
        );
        assert_eq!(invoice_ids(r#"["inv_1"]"#), ["inv_1"]);
        assert!(invoice_ids("not json").is_empty());
    }
}
