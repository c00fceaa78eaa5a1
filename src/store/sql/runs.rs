//! Trigger runs and the delivery outbox: enqueue in one transaction, claim with
//! a lease (SKIP LOCKED on PostgreSQL), mark results in batches. A run's rows
//! are found through the run (its id range and where its fresh rows start), so
//! that enqueueing writes no index entries besides the primary key's (and an
//! invoice message's invoice).

use super::Backend;
use crate::segment::{Bind, Query};
use crate::store::StoreError;
use crate::store::outbox::{
    Claimed, Delivery, DeliveryFilter, DeliveryStatus, Enqueue, Mark, Retried, Run, RunFilter,
    RunResult, RunRows, RunStatus, RunSummary, enqueue_turn, invoice_ids,
};
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Database, Row as _};

/// A delivery's idempotency key, from its run (`communication:occurrence`), its
/// customer and, for an invoice message, its invoice (migrations 0005, 0006), over
/// the rows of [`OUTBOX`].
const KEY: &str = "u.id || ':' || o.customer_id || COALESCE(':' || o.invoice_id, '')";

/// Outbox rows `o` with their runs `u`.
const OUTBOX: &str = "segd_outbox o JOIN segd_trigger_runs u ON u.seq = o.run";

/// The rows of run `$3` among `segd_outbox`, with `$1` and `$2` its
/// `first_id` and `last_id`: every row of a run has an id in its range, and
/// rows of runs enqueued at the same time may lie in between (migration 0007).
const IN_RANGE: &str = "id BETWEEN $1 AND $2 AND run = $3";

/// The statement that writes a run's outbox rows: one per candidate pair
/// (`customer_id, invoice_id`), or one per customer listing its invoices
/// (`one_per_recipient`), each naming the run, whose row the transaction wrote
/// first (the uncorrelated subquery is evaluated once). `list_one` and
/// `list_agg` make the `invoice_ids` JSON text of one pair and of a customer's.
fn outbox_rows(run: &Run, e: &Enqueue<'_>, list_one: &str, list_agg: &str) -> Query {
    let candidates = e.candidates;
    let run_id = candidates.binds.len() + 1;
    let insert = format!(
        "INSERT INTO segd_outbox (run, customer_id, invoice_id, invoice_ids, status) \
         SELECT (SELECT seq FROM segd_trigger_runs WHERE id = ${run_id}), x.customer_id"
    );
    let sql = if e.one_per_recipient {
        format!(
            "{insert}, NULL, {list_agg}, 'pending' FROM ({}) x GROUP BY x.customer_id",
            candidates.sql
        )
    } else {
        format!(
            "{insert}, x.invoice_id, {list_one}, 'pending' FROM ({}) x",
            candidates.sql
        )
    };
    let mut binds = candidates.binds.clone();
    binds.push(Bind::Text(run.id.clone()));
    Query {
        merge_joins: false,
        sql,
        binds,
    }
}

/// A fresh row: pending and never tried. Only enqueueing makes one: a released
/// or re-queued row is due at a time instead, so a run's fresh rows are
/// claimed from its `fresh_from` on, which only ever moves forward.
const FRESH: &str = "status = 'pending' AND next_attempt_at IS NULL";

/// The rows `o` of the runs `u` joined to them, through the runs' id ranges.
const OF_RUNS: &str = "o.id BETWEEN u.first_id AND u.last_id AND o.run = u.seq";

/// Records a run (started and finished at `$7`) and returns its `seq`.
const INSERT_RUN: &str = "INSERT INTO segd_trigger_runs (id, communication, occurrence, kind, channel, occurred_at, \
     started_at, finished_at, status, late, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10) \
     RETURNING CAST(seq AS BIGINT)";

/// The store's run and outbox operations.
pub(super) struct Runs<'a, B>(pub(super) &'a B);

impl<B> Runs<'_, B>
where
    B: Backend,
    B::Db: sqlx::database::HasStatementCache,
    for<'c> &'c mut <B::Db as Database>::Connection: sqlx::Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: sqlx::IntoArguments<B::Db>,
    for<'q> &'q str: sqlx::Encode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> i64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> bool: sqlx::Encode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'r> String: sqlx::Decode<'r, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, B::Db>,
    for<'q> Option<i64>: sqlx::Encode<'q, B::Db>,
    for<'q> Option<DateTime<Utc>>: sqlx::Encode<'q, B::Db>,
    usize: sqlx::ColumnIndex<<B::Db as Database>::Row>,
{
    /// Records `run` as started and finished `now` with `status`, on `conn`.
    async fn insert_run(
        conn: &mut <B::Db as Database>::Connection,
        run: &Run,
        now: DateTime<Utc>,
        status: &str,
        error: Option<&str>,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(INSERT_RUN)
            .bind(run.id.as_str())
            .bind(run.communication.as_str())
            .bind(run.occurrence.as_str())
            .bind(run.kind.as_str())
            .bind(run.channel)
            .bind(run.occurred_at)
            .bind(now)
            .bind(status)
            .bind(run.late)
            .bind(error)
            .fetch_one(conn)
            .await?)
    }

    /// Records the run and, unless it is over `max_recipients`, writes every
    /// intended delivery — all in one transaction. The run's row comes first, so
    /// an occurrence that ran already fails before anything is written, and the
    /// deliveries name it; the recipients are counted from the rows written (a
    /// payment reminder writes one per recipient), which are taken back when the
    /// run is over the limit. The run then records where its rows are
    /// (migration 0007): ids between two bounds read around the insert, and
    /// fresh from the first.
    ///
    /// Runs of one communication enqueue one at a time, so each sees what the
    /// one before it wrote ("not sent before", `min_interval`). SQLite's
    /// BEGIN IMMEDIATE takes the database's write lock before the first read;
    /// on PostgreSQL a transaction-scoped advisory lock per communication is
    /// the first statement, and under READ COMMITTED each later statement reads
    /// what the previous holder committed.
    pub(super) async fn enqueue(
        &self,
        run: &Run,
        e: &Enqueue<'_>,
    ) -> Result<RunResult, StoreError> {
        let enqueue = outbox_rows(run, e, B::INVOICE_LIST_ONE, B::INVOICE_LIST_AGG);
        // Connectors are looked up before the transaction, on the pool.
        let enqueue = self.0.resolved(&enqueue).await?.unwrap_or(enqueue);
        let resolved = match e.unreachable {
            Some(q) => self.0.resolved(q).await?,
            None => None,
        };
        let unreachable = resolved.as_ref().or(e.unreachable);
        let _turn = enqueue_turn(&run.communication).lock().await;
        let mut tx = self.0.begin_write().await?;
        if let Some(sql) = B::TRIGGER_XACT_LOCK {
            sqlx::query(sql)
                .bind(run.communication.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let now = e.started_at;
        let seq = Self::insert_run(&mut tx, run, now, RunStatus::Enqueued.as_str(), None).await?;
        let first: i64 = sqlx::query_scalar(B::OUTBOX_BOUND)
            .fetch_one(&mut *tx)
            .await?;
        let written = sqlx::query_with(
            AssertSqlSafe(enqueue.sql.as_str()),
            B::args(&enqueue.binds)?,
        )
        .persistent(false)
        .execute(&mut *tx)
        .await
        .map(|r| B::rows_affected(&r))?;
        let last: i64 = sqlx::query_scalar(B::OUTBOX_BOUND)
            .fetch_one(&mut *tx)
            .await?;
        let n = if e.one_per_recipient {
            written
        } else {
            let sql =
                format!("SELECT COUNT(DISTINCT customer_id) FROM segd_outbox WHERE {IN_RANGE}");
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(first)
                .bind(last)
                .bind(seq)
                .fetch_one(&mut *tx)
                .await?;
            u64::try_from(n).unwrap_or(0)
        };
        let unreachable = match unreachable {
            Some(q) => {
                let n: i64 =
                    sqlx::query_scalar_with(AssertSqlSafe(q.sql.as_str()), B::args(&q.binds)?)
                        .persistent(false)
                        .fetch_one(&mut *tx)
                        .await?;
                super::count_of(n)
            }
            None => 0,
        };
        let held = e.max_recipients.is_some_and(|m| n > m);
        if held {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM segd_outbox WHERE {IN_RANGE}"
            )))
            .bind(first)
            .bind(last)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }
        let (status, enqueued) = if held {
            (RunStatus::Held, 0)
        } else {
            (RunStatus::Enqueued, written)
        };
        let fresh_from = (enqueued > 0).then_some(first);
        sqlx::query(
            "UPDATE segd_trigger_runs SET status = $2, recipients = $3, enqueued = $4, \
             first_id = $5, last_id = $6, fresh_from = $7, unreachable = $8 WHERE seq = $1",
        )
        .bind(seq)
        .bind(status.as_str())
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .bind(i64::try_from(enqueued).unwrap_or(i64::MAX))
        .bind(first)
        .bind(last)
        .bind(fresh_from)
        .bind(i64::try_from(unreachable).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        let released = if e.release_held && !held {
            let r = sqlx::query(
                "UPDATE segd_trigger_runs SET released_by = $1 WHERE communication = $2 \
                 AND status = 'held' AND released_by IS NULL AND seq < $3",
            )
            .bind(run.id.as_str())
            .bind(run.communication.as_str())
            .bind(seq)
            .execute(&mut *tx)
            .await?;
            B::rows_affected(&r)
        } else {
            0
        };
        tx.commit().await?;
        Ok(RunResult {
            status,
            recipients: n,
            enqueued,
            unreachable,
            released,
        })
    }

    /// Records a run that failed before enqueueing anything (e.g. a missing secret).
    pub(super) async fn record_failed(
        &self,
        run: &Run,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.0.pool().acquire().await?;
        Self::insert_run(&mut conn, run, at, "failed", Some(error)).await?;
        Ok(())
    }

    /// Claims up to `limit` due rows for `me` until `lease_until`: rows whose
    /// lease expired, then retries that are due (each one range of a partial
    /// index, so a claim never sorts the backlog), then fresh rows, run by run
    /// (oldest first), each from where the run's fresh rows start (one range of
    /// the primary key); that start then moves past what was claimed. A run's
    /// own drain (`segd trigger`) takes only the run's fresh rows: retries are
    /// the daemon's.
    pub(super) async fn claim(
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
        let update = |due: &str| {
            format!(
                "UPDATE segd_outbox SET status = 'sending', claimed_by = $1, claimed_until = $2, \
                 attempts = attempts + 1 WHERE id IN (SELECT id FROM segd_outbox WHERE {due} LIMIT $3{}) \
                 RETURNING id",
                B::CLAIM_LOCKING
            )
        };
        let fresh = update(&format!(
            "id BETWEEN $4 AND $5 AND run = $6 AND {FRESH} ORDER BY id"
        ));
        let moved = format!(
            "UPDATE segd_trigger_runs SET fresh_from = (SELECT id FROM segd_outbox WHERE {IN_RANGE} \
             AND {FRESH} ORDER BY id LIMIT 1) WHERE seq = $3"
        );
        let left = |taken: usize| limit - i64::try_from(taken).unwrap_or(i64::MAX);
        // On PostgreSQL each statement commits on its own, so the run's new start
        // is read after its claim committed. Rows only stop being fresh, so a
        // start read by a concurrent claim is never past a fresh row either.
        let mut session = self.0.claim_session().await?;
        let conn = session.conn();
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
                    .fetch_all(&mut *conn)
                    .await?,
            );
        }
        if left(ids.len()) > 0 {
            let q = sqlx::query_as::<_, (i64, i64, i64)>(runs);
            let q = match run_id {
                Some(r) => q.bind(r),
                None => q,
            };
            for (seq, from, last) in q.fetch_all(&mut *conn).await? {
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
                        .fetch_all(&mut *conn)
                        .await?,
                );
                sqlx::query(AssertSqlSafe(moved.as_str()))
                    .bind(from)
                    .bind(last)
                    .bind(seq)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        session.finish().await?;
        let select = format!(
            "SELECT o.id, {KEY}, u.communication, o.customer_id, o.invoice_ids, u.occurred_at, \
             CAST(o.attempts AS BIGINT) FROM {OUTBOX} WHERE o.id"
        );
        let mut rows = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(B::IDS_PER_STATEMENT) {
            let sql = format!("{select}{}", B::in_ids(1, chunk.len()));
            let q = B::bind_ids(sqlx::query(AssertSqlSafe(sql)), chunk);
            for row in q.fetch_all(self.0.pool()).await? {
                let ids: String = row.try_get(4)?;
                let attempts: i64 = row.try_get(6)?;
                rows.push(Claimed {
                    id: row.try_get(0)?,
                    key: row.try_get(1)?,
                    communication: row.try_get(2)?,
                    customer_id: row.try_get(3)?,
                    invoice_ids: invoice_ids(&ids),
                    occurred_at: row.try_get(5)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                });
            }
        }
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// Hands rows `me` claimed and never started back to pending, as if never
    /// claimed (the claim counted an attempt), except that a row that was fresh
    /// is due now instead (see [`FRESH`]); rows claimed by another sender since
    /// are left alone.
    pub(super) async fn release(
        &self,
        me: &str,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const RELEASE: &str = "UPDATE segd_outbox SET status = 'pending', claimed_by = NULL, \
             claimed_until = NULL, attempts = attempts - 1, next_attempt_at = COALESCE(next_attempt_at, $2) \
             WHERE claimed_by = $1 AND status = 'sending' AND id";
        for chunk in ids.chunks(B::IDS_PER_STATEMENT) {
            let sql = format!("{RELEASE}{}", B::in_ids(3, chunk.len()));
            let q = sqlx::query(AssertSqlSafe(sql)).bind(me).bind(now);
            B::bind_ids(q, chunk).execute(self.0.pool()).await?;
        }
        Ok(())
    }

    /// Writes the outcomes of a batch in one transaction; rows another sender
    /// has claimed since (after this one's lease expired) are left alone.
    pub(super) async fn mark(
        &self,
        me: &str,
        marks: &[(i64, Mark)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.0.begin_write().await?;
        for (id, mark) in marks {
            let (status, next, error): (DeliveryStatus, Option<DateTime<Utc>>, Option<&str>) =
                match mark {
                    Mark::Sent => (DeliveryStatus::Sent, None, None),
                    Mark::Retry { at, error } => (DeliveryStatus::Pending, Some(*at), Some(error)),
                    Mark::Failed { error } => (DeliveryStatus::Failed, None, Some(error)),
                    Mark::Dead { error } => (DeliveryStatus::Dead, None, Some(error)),
                };
            sqlx::query(
                "UPDATE segd_outbox SET status = $1, next_attempt_at = COALESCE($2, next_attempt_at), \
                 last_error = $3, claimed_by = NULL, claimed_until = NULL, \
                 sent_at = CASE WHEN $1 = 'sent' THEN $4 ELSE sent_at END \
                 WHERE id = $5 AND claimed_by = $6 AND status = 'sending'",
            )
            .bind(status.as_str())
            .bind(next)
            .bind(error)
            .bind(now)
            .bind(*id)
            .bind(me)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Outbox rows, newest last.
    pub(super) async fn deliveries(&self, f: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
        let order = if f.newest_first { "DESC" } else { "ASC" };
        let sql = format!("{} ORDER BY o.id {order} LIMIT $4", B::DELIVERIES);
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(f.communication.as_deref())
            .bind(f.status.map(DeliveryStatus::as_str))
            .bind(f.run_id.as_deref())
            .bind(f.limit.unwrap_or(i64::MAX))
            .bind(f.id)
            .bind(f.before)
            .bind(f.since)
            .bind(f.until)
            .fetch_all(self.0.pool())
            .await?;
        rows.iter()
            .map(|row| {
                let ids: String = row.try_get(5)?;
                let status: String = row.try_get(6)?;
                Ok(Delivery {
                    id: row.try_get(0)?,
                    idempotency_key: row.try_get(1)?,
                    communication: row.try_get(2)?,
                    channel: row.try_get(3)?,
                    customer_id: row.try_get(4)?,
                    invoice_ids: invoice_ids(&ids),
                    status: DeliveryStatus::parse(&status).ok_or_else(|| {
                        StoreError::from(sqlx::Error::Decode(
                            format!("unknown delivery status `{status}`").into(),
                        ))
                    })?,
                    attempts: row.try_get(7)?,
                    next_attempt_at: row.try_get(8)?,
                    last_error: row.try_get(9)?,
                    created_at: row.try_get(10)?,
                    sent_at: row.try_get(11)?,
                })
            })
            .collect()
    }

    /// Runs, newest last, each with its rows counted by status (through its
    /// id range, migration 0007).
    pub(super) async fn runs(&self, f: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        // The runs chosen first, then their rows counted by status, all in one
        // query; a run without rows (no range) counts none.
        let runs = format!(
            "SELECT u.id, u.communication, u.occurrence, u.kind, u.status, u.released_by, u.started_at, \
             CAST(u.recipients AS BIGINT), CAST(u.enqueued AS BIGINT), CAST(u.unreachable AS BIGINT), \
             CAST(COUNT(CASE WHEN o.status = 'pending' AND o.attempts = 0 THEN 1 END) AS BIGINT), \
             CAST(COUNT(CASE WHEN o.status = 'sending' THEN 1 END) AS BIGINT), \
             CAST(COUNT(CASE WHEN o.status = 'sent' THEN 1 END) AS BIGINT), \
             CAST(COUNT(CASE WHEN o.status = 'pending' AND o.attempts > 0 THEN 1 END) AS BIGINT), \
             CAST(COUNT(CASE WHEN o.status = 'failed' THEN 1 END) AS BIGINT), \
             CAST(COUNT(CASE WHEN o.status = 'dead' THEN 1 END) AS BIGINT) \
             FROM (SELECT * FROM segd_trigger_runs WHERE (CAST($1 AS TEXT) IS NULL OR communication = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR id = $2) ORDER BY seq DESC LIMIT $3) u \
             LEFT JOIN segd_outbox o ON {OF_RUNS} \
             GROUP BY u.seq, u.id, u.communication, u.occurrence, u.kind, u.status, u.released_by, \
             u.started_at, u.recipients, u.enqueued, u.unreachable ORDER BY u.seq"
        );
        let n = super::count_of;
        let rows = sqlx::query(AssertSqlSafe(runs))
            .bind(f.communication.as_deref())
            .bind(f.run_id.as_deref())
            .bind(f.limit.unwrap_or(i64::MAX))
            .fetch_all(self.0.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(RunSummary {
                    id: row.try_get(0)?,
                    communication: row.try_get(1)?,
                    occurrence: row.try_get(2)?,
                    kind: row.try_get(3)?,
                    status: row.try_get(4)?,
                    released_by: row.try_get(5)?,
                    started_at: row.try_get(6)?,
                    recipients: n(row.try_get(7)?),
                    enqueued: n(row.try_get(8)?),
                    unreachable: n(row.try_get(9)?),
                    rows: RunRows {
                        pending: n(row.try_get(10)?),
                        sending: n(row.try_get(11)?),
                        sent: n(row.try_get(12)?),
                        retrying: n(row.try_get(13)?),
                        failed: n(row.try_get(14)?),
                        dead: n(row.try_get(15)?),
                    },
                })
            })
            .collect()
    }

    /// Re-queues dead or failed deliveries (by id or idempotency key), due now
    /// (never fresh again: see [`FRESH`]); what became of each. One not
    /// re-queued is looked up, to say whether it exists.
    pub(super) async fn retry(&self, ids: &[String]) -> Result<Vec<Retried>, StoreError> {
        const REQUEUE: &str = "UPDATE segd_outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, \
                               last_error = NULL WHERE status IN ('dead', 'failed') AND id";
        // A key starts with its run's id, `communication:occurrence` (neither holds
        // a colon), which narrows the search to the run's rows.
        let of_key =
            format!("SELECT o.id FROM {OUTBOX} WHERE u.id = $3 AND {OF_RUNS} AND {KEY} = $2");
        let by_key = format!("{REQUEUE} IN ({of_key})");
        let by_id = format!("{REQUEUE} = $2");
        let status_of_key =
            format!("SELECT o.status FROM {OUTBOX} WHERE u.id = $2 AND {OF_RUNS} AND {KEY} = $1");
        let status_of_id = "SELECT status FROM segd_outbox WHERE id = $1";
        let now = Utc::now();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let run: String = id.splitn(3, ':').take(2).collect::<Vec<_>>().join(":");
            let row = id.parse::<i64>().ok();
            let q = match row {
                Some(row) => sqlx::query(AssertSqlSafe(by_id.as_str()))
                    .bind(now)
                    .bind(row),
                None => sqlx::query(AssertSqlSafe(by_key.as_str()))
                    .bind(now)
                    .bind(id.as_str())
                    .bind(run.as_str()),
            };
            if B::rows_affected(&q.execute(self.0.pool()).await?) > 0 {
                out.push(Retried::Requeued);
                continue;
            }
            let status: Option<String> = match row {
                Some(row) => {
                    sqlx::query_scalar(status_of_id)
                        .bind(row)
                        .fetch_optional(self.0.pool())
                        .await?
                }
                None => {
                    sqlx::query_scalar(AssertSqlSafe(status_of_key.as_str()))
                        .bind(id.as_str())
                        .bind(run.as_str())
                        .fetch_optional(self.0.pool())
                        .await?
                }
            };
            out.push(match status.as_deref().and_then(DeliveryStatus::parse) {
                Some(s) => Retried::NotRetryable(s),
                None => Retried::Missing,
            });
        }
        Ok(out)
    }

    /// The rows `select` (ending in a column to match) picks among `keys`.
    pub(super) async fn rows_by_keys(
        &self,
        select: &str,
        keys: &[String],
    ) -> Result<Vec<<B::Db as Database>::Row>, StoreError> {
        let mut rows = Vec::new();
        for chunk in keys.chunks(B::IDS_PER_STATEMENT) {
            let sql = format!("{select}{}", B::in_ids(1, chunk.len()));
            let q = B::bind_keys(sqlx::query(AssertSqlSafe(sql)), chunk);
            rows.extend(q.fetch_all(self.0.pool()).await?);
        }
        Ok(rows)
    }
}
