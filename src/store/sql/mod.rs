//! The store's operations, written once over [`Backend`]: what the two
//! databases do alike is here (both accept `$N` placeholders), what differs is
//! a [`Backend`] method or constant implemented by `sqlite/` and `postgres/`.
//! The [`Store`] impl below is the map: one-statement operations are written
//! in it, the rest are in a module per concern.
//!
//! - `backend`: what differs between the backends ([`Backend`], [`Session`]);
//! - `definitions`: the applied definitions, the apply lock, apply and history;
//! - `runs`: trigger runs, the outbox, claims, marks, deliveries, billing rows;
//! - `sizes`: segment size samples and membership changes.

mod backend;
mod definitions;
mod paced;
mod runs;
mod sizes;

pub(super) use backend::{Backend, Session};
pub(super) use definitions::VERSION;

use super::billing::{Existing, LoadError, Progress};
use super::outbox::{
    Claimed, Delivery, DeliveryFilter, Enqueue, Mark, Retried, Run, RunFilter, RunKind, RunResult,
    RunSummary,
};
use super::sizes::{Changes, Size, SizeSample};
use super::{ApplyEntry, ApplyLock, ApplyRecord, Election, Member, PlanNode, Store, StoreError};
use crate::demo::{Generator, RowCounts};
use crate::model::{CustomDataKey, Customer, Invoice};
use crate::plan::{Applied, AppliedState, Kind, Plan, Version};
use crate::segment::{Dialect, Query};
use chrono::{DateTime, Utc};
use definitions::Definitions;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use runs::Runs;
use sizes::Sizes;
use sqlx::{AssertSqlSafe, Database, Row as _};
use std::collections::BTreeSet;
use std::time::Duration;

fn count_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait::async_trait]
impl<B> Store for B
where
    B: Backend,
    B::Db: sqlx::database::HasStatementCache,
    for<'c> &'c mut <B::Db as Database>::Connection: sqlx::Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: sqlx::IntoArguments<B::Db>,
    for<'q> &'q str: sqlx::Encode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> i64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> bool: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'r> String: sqlx::Decode<'r, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, B::Db>,
    for<'q> Option<i64>: sqlx::Encode<'q, B::Db>,
    for<'q> Option<DateTime<Utc>>: sqlx::Encode<'q, B::Db>,
    usize: sqlx::ColumnIndex<<B::Db as Database>::Row>,
{
    fn dialect(&self) -> Dialect {
        B::DIALECT
    }

    async fn applied(&self) -> Result<AppliedState, StoreError> {
        Definitions(self).applied().await
    }

    async fn applied_hashes(&self, kind: Kind) -> Result<Vec<(String, String)>, StoreError> {
        Definitions(self).hashes(kind).await
    }

    async fn applied_named(
        &self,
        kind: Kind,
        names: &[String],
    ) -> Result<Vec<Applied>, StoreError> {
        let select = definitions::of_kind_named(kind);
        let mut out = Vec::with_capacity(names.len());
        for row in Runs(self).rows_by_keys(&select, names).await? {
            out.push(definitions::applied_row((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
                row.try_get(6)?,
            ))?);
        }
        out.sort_by(|a, b| a.def.name.cmp(&b.def.name));
        Ok(out)
    }

    async fn version(&self) -> Result<Version, StoreError> {
        let version: String = sqlx::query_scalar(VERSION).fetch_one(self.pool()).await?;
        Ok(Version::from(version))
    }

    async fn applied_at(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let sql = "SELECT applied_at FROM segd_definitions WHERE kind = $1 AND name = $2";
        Ok(sqlx::query_scalar(sql)
            .bind(kind)
            .bind(name)
            .fetch_optional(self.pool())
            .await?)
    }

    async fn applies(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ApplyEntry>, StoreError> {
        Definitions(self).applies(before, limit).await
    }

    async fn apply_plan(&self, id: i64) -> Result<Option<(ApplyEntry, String)>, StoreError> {
        Definitions(self).apply_plan(id).await
    }

    async fn lock(&self, holder: &str, wait: Duration) -> Result<ApplyLock, StoreError> {
        Definitions(self).lock(holder, wait).await
    }

    async fn unlock(&self, lock: ApplyLock) {
        Definitions(self).unlock(lock).await;
    }

    async fn apply(&self, plan: &Plan, record: &ApplyRecord) -> Result<(), StoreError> {
        Definitions(self).apply(plan, record).await
    }

    async fn keep_custom_data(&self, keys: &BTreeSet<CustomDataKey>) -> Result<(), StoreError> {
        self.keep_custom_data_of(keys).await
    }

    // A segment's queries are not kept prepared: each is its own text, run
    // once or a few times, and kept they filled each connection's statement
    // cache (100) with compiled plans while the size sampler measured
    // thousands of segments.

    // A query that looks its connectors up runs once they are
    // ([`Backend::resolved`]).

    async fn pairs(&self, q: &Query) -> Result<Vec<(String, String)>, StoreError> {
        let resolved = self.resolved(q).await?;
        let q = resolved.as_ref().unwrap_or(q);
        Ok(
            sqlx::query_as_with(AssertSqlSafe(q.sql.as_str()), B::args(&q.binds)?)
                .persistent(false)
                .fetch_all(self.pool())
                .await?,
        )
    }

    // A segment's listing (or a count, though the compiler's counts of an
    // `any` are complements now) that asks to be planned so
    // ([`Query::merge_joins`]) runs in a transaction of its own that sets it
    // ([`Backend::planned`], [`Backend::planned_rows`]).

    async fn count(&self, q: &Query) -> Result<u64, StoreError> {
        let resolved = self.resolved(q).await?;
        let q = resolved.as_ref().unwrap_or(q);
        let query = sqlx::query_scalar_with(AssertSqlSafe(q.sql.as_str()), B::args(&q.binds)?)
            .persistent(false);
        let n: i64 = match self.planned(q).await? {
            Some(mut tx) => query.fetch_one(&mut *tx).await?,
            None => query.fetch_one(self.pool()).await?,
        };
        Ok(count_of(n))
    }

    async fn counts(&self, q: &Query) -> Result<Vec<u64>, StoreError> {
        let resolved = self.resolved(q).await?;
        let q = resolved.as_ref().unwrap_or(q);
        let row = sqlx::query_with(AssertSqlSafe(q.sql.clone()), B::args(&q.binds)?)
            .persistent(false)
            .fetch_one(self.pool())
            .await?;
        (0..row.len())
            .map(|i| Ok(count_of(row.try_get(i)?)))
            .collect()
    }

    fn member_stream<'a>(&'a self, q: &'a Query) -> BoxStream<'a, Result<Member, StoreError>> {
        let rows = match self.planned_rows(q) {
            Some(rows) => rows,
            None => match B::args(&q.binds) {
                Ok(args) => sqlx::query_with(AssertSqlSafe(q.sql.as_str()), args)
                    .persistent(false)
                    .fetch(self.pool())
                    .map(|row| row.map_err(StoreError::from))
                    .boxed(),
                Err(e) => return futures_util::stream::once(async { Err(e) }).boxed(),
            },
        };
        let rows = rows.map(move |row| {
            let row = row?;
            // A query of the members' rows (`Select::Rows`, a page, a run's
            // preview) selects the name and email after the id; of their
            // ids, the id alone.
            let with_rows = row.len() > 1;
            Ok(Member {
                id: row.try_get(0)?,
                name: if with_rows { row.try_get(1)? } else { None },
                email: if with_rows { row.try_get(2)? } else { None },
            })
        });
        match B::ROW_PACE {
            Some(every) => paced::Paced::new(rows, every).boxed(),
            None => rows.boxed(),
        }
    }

    async fn explain(&self, q: &Query) -> Result<Vec<PlanNode>, StoreError> {
        self.explain_query(q).await
    }

    async fn enqueue_run(&self, run: &Run, e: &Enqueue<'_>) -> Result<RunResult, StoreError> {
        Runs(self).enqueue(run, e).await
    }

    async fn record_failed_run(
        &self,
        run: &Run,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Runs(self).record_failed(run, error, at).await
    }

    async fn last_occurrence(
        &self,
        communication: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let sql = "SELECT occurred_at FROM segd_trigger_runs WHERE communication = $1 AND kind = $2 \
                   ORDER BY occurred_at DESC LIMIT 1";
        Ok(sqlx::query_scalar(sql)
            .bind(communication)
            .bind(RunKind::Scheduled.as_str())
            .fetch_optional(self.pool())
            .await?)
    }

    async fn claim(
        &self,
        me: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
        run_id: Option<&str>,
    ) -> Result<Vec<Claimed>, StoreError> {
        Runs(self).claim(me, now, lease_until, limit, run_id).await
    }

    async fn renew(&self, me: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        let sql = "UPDATE segd_outbox SET claimed_until = $1 WHERE claimed_by = $2 AND status = 'sending'";
        sqlx::query(sql)
            .bind(until)
            .bind(me)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn release(&self, me: &str, ids: &[i64], now: DateTime<Utc>) -> Result<(), StoreError> {
        Runs(self).release(me, ids, now).await
    }

    async fn mark(
        &self,
        me: &str,
        marks: &[(i64, Mark)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Runs(self).mark(me, marks, now).await
    }

    async fn deliveries(&self, f: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
        Runs(self).deliveries(f).await
    }

    async fn runs(&self, f: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        Runs(self).runs(f).await
    }

    async fn retry_deliveries(&self, ids: &[String]) -> Result<Vec<Retried>, StoreError> {
        Runs(self).retry(ids).await
    }

    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT status, COUNT(*) FROM segd_outbox GROUP BY status ORDER BY status";
        Ok(sqlx::query_as(sql).fetch_all(self.pool()).await?)
    }

    async fn record_sizes(
        &self,
        at: DateTime<Utc>,
        samples: &[SizeSample],
    ) -> Result<(), StoreError> {
        Sizes(self).record(at, samples).await
    }

    async fn size_history(
        &self,
        segment: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Size>, StoreError> {
        Sizes(self).history(segment, since).await
    }

    async fn latest_sizes(&self) -> Result<Vec<(String, Size)>, StoreError> {
        Sizes(self).latest().await
    }

    async fn prune_sizes(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Sizes(self).prune(before).await
    }

    async fn membership_changes(
        &self,
        segment: &str,
        limit: usize,
    ) -> Result<Option<Changes>, StoreError> {
        Sizes(self).changes(segment, limit).await
    }

    async fn customers(&self, ids: &[String]) -> Result<Vec<Customer>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for row in Runs(self).rows_by_keys(B::CUSTOMERS, ids).await? {
            let custom: Option<String> = row.try_get(4)?;
            out.push(Customer {
                id: row.try_get(0)?,
                name: row.try_get(1)?,
                email: row.try_get(2)?,
                country: row.try_get(3)?,
                custom_data: custom
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or(serde_json::Value::Object(Default::default())),
                created_at: row.try_get(5)?,
            });
        }
        Ok(out)
    }

    async fn invoices(&self, ids: &[String]) -> Result<Vec<Invoice>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for row in Runs(self).rows_by_keys(B::INVOICES, ids).await? {
            out.push(Invoice {
                id: row.try_get(0)?,
                number: row.try_get(1)?,
                status: row.try_get(2)?,
                amount_cents: row.try_get(3)?,
                currency: row.try_get(4)?,
                due_date: row.try_get(5)?,
                created_at: row.try_get(6)?,
            });
        }
        Ok(out)
    }

    async fn load_demo(
        &self,
        generator: Generator,
        existing: Existing,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<RowCounts, LoadError> {
        self.load(generator, existing, progress).await
    }

    async fn optimize(&self) -> Result<(), StoreError> {
        if B::KEEPS_STATISTICS {
            self.refresh_statistics().await?;
        }
        Ok(())
    }

    fn keeps_statistics(&self) -> bool {
        B::KEEPS_STATISTICS
    }

    fn election(&self) -> Option<Box<dyn Election>> {
        self.elect()
    }

    async fn close(&self) {
        self.pool().close().await;
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
