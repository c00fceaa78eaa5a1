//! The store's operations, written once over [`Backend`]: what the two
//! databases do alike is here (both accept `$N` placeholders), what differs is
//! a [`Backend`] method or constant implemented by `sqlite/` and `postgres/`.

mod runs;
mod sizes;

use super::billing::{Existing, LoadError, Progress};
use super::outbox::{
    Claimed, Delivery, DeliveryFilter, Enqueue, Mark, Retried, Run, RunFilter, RunKind, RunResult,
    RunSummary,
};
use super::sizes::{Changes, HISTORY_ROWS, Size, SizeSample};
use super::{
    ApplyEntry, ApplyLock, ApplyRecord, Election, Held, Member, PlanNode, Store, StoreError,
};
use crate::demo::{Generator, RowCounts};
use crate::model::{Customer, Invoice, Name};
use crate::plan::{Action, Applied, AppliedState, Definition, Kind, Plan, Undecodable, Version};
use crate::segment::{Bind, Dialect, Query};
use chrono::{DateTime, SubsecRound as _, Utc};
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use runs::Runs;
use sqlx::{AssertSqlSafe, Database, Row as _, Transaction};
use std::time::{Duration, Instant};

/// What differs between the backends.
pub(super) trait Backend: Send + Sync + 'static {
    type Db: Database;

    const DIALECT: Dialect;

    /// Taken first in an apply's transaction: serialises applies (PostgreSQL).
    const APPLY_XACT_LOCK: Option<&'static str>;

    /// The version of the applied definitions, locked until the transaction
    /// ends where the backend can lock one row.
    const VERSION_FOR_UPDATE: &'static str;

    /// Taken first in a run's transaction, with the communication bound:
    /// serialises one communication's runs (PostgreSQL).
    const TRIGGER_XACT_LOCK: Option<&'static str>;

    /// A delivery's invoice ids as the JSON array text of `invoice_ids`: of one
    /// candidate row `x`, and of a customer's rows grouped (readers sort them,
    /// see [`crate::store::outbox`]).
    const INVOICE_LIST_ONE: &'static str;
    const INVOICE_LIST_AGG: &'static str;

    /// Bounds the ids of the outbox rows a transaction writes: read before and
    /// after its insert, every row it wrote lies between.
    const OUTBOX_BOUND: &'static str;

    /// Appended to a claim's row selection: skip rows another claim has locked.
    const CLAIM_LOCKING: &'static str;

    /// `segd deliveries`: `$1` communication, `$2` status, `$3` run id, `$5`
    /// id (each NULL for any), `$6` an id the rows are below, `$7` and `$8`
    /// the times their runs started from and before (NULL: none); the order
    /// and `LIMIT $4` follow.
    const DELIVERIES: &'static str;

    /// Customers, then invoices, selected by id (see [`Backend::in_ids`]).
    const CUSTOMERS: &'static str;
    const INVOICES: &'static str;

    /// Inserts the members of a sample: `$1` segment, `$2` sampled_at, `$3`
    /// a JSON array of customer ids.
    const INSERT_MEMBERS: &'static str;

    /// How many ids one statement binds at the most.
    const IDS_PER_STATEMENT: usize;

    fn pool(&self) -> &sqlx::Pool<Self::Db>;

    /// A transaction that writes; SQLite takes the write lock at once.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, StoreError>> + Send;

    /// The apply lock, if no one holds it.
    fn try_lock(&self) -> impl Future<Output = Result<Option<Held>, StoreError>> + Send;

    fn release_lock(&self, held: Held) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn rows_affected(result: &<Self::Db as Database>::QueryResult) -> u64;

    /// A segment query's bound values.
    fn args(binds: &[Bind]) -> Result<<Self::Db as Database>::Arguments, StoreError>;

    /// ` IN ($first, …)` or ` = ANY($first)`: a condition on `n` ids bound
    /// from parameter `first` on.
    fn in_ids(first: usize, n: usize) -> String;

    fn bind_ids<'q>(
        q: sqlx::query::Query<'q, Self::Db, <Self::Db as Database>::Arguments>,
        ids: &'q [i64],
    ) -> sqlx::query::Query<'q, Self::Db, <Self::Db as Database>::Arguments>;

    fn bind_keys<'q>(
        q: sqlx::query::Query<'q, Self::Db, <Self::Db as Database>::Arguments>,
        ids: &'q [String],
    ) -> sqlx::query::Query<'q, Self::Db, <Self::Db as Database>::Arguments>;

    /// Where a claim runs: one transaction holding the write lock (SQLite), or
    /// a connection whose statements each commit (PostgreSQL).
    fn claim_session(&self) -> impl Future<Output = Result<Session<Self::Db>, StoreError>> + Send;

    fn explain_query(
        &self,
        q: &Query,
    ) -> impl Future<Output = Result<Vec<PlanNode>, StoreError>> + Send;

    fn index_custom_data_of(
        &self,
        plan: &Plan,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn refresh_statistics(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether segd refreshes the statistics itself.
    const KEEPS_STATISTICS: bool;

    fn load(
        &self,
        generator: Generator,
        existing: Existing,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> impl Future<Output = Result<RowCounts, LoadError>> + Send;

    fn elect(&self) -> Option<Box<dyn Election>>;
}

/// A connection in a transaction, or one whose statements each commit.
pub(super) enum Session<DB: Database> {
    Transaction(Transaction<'static, DB>),
    Autocommit(sqlx::pool::PoolConnection<DB>),
}

impl<DB: Database> Session<DB> {
    fn conn(&mut self) -> &mut DB::Connection {
        match self {
            Session::Transaction(tx) => tx,
            Session::Autocommit(conn) => conn,
        }
    }

    async fn finish(self) -> Result<(), StoreError> {
        if let Session::Transaction(tx) = self {
            tx.commit().await?;
        }
        Ok(())
    }
}

/// The version of the applied definitions (migration 0004).
pub(super) const VERSION: &str =
    "SELECT lineage || ':' || CAST(revision AS TEXT) FROM segd_revision WHERE id = 1";

/// Records who holds the apply lock, over whatever a holder that died left.
/// `expires` is no longer read.
const LOCK_INFO: &str = "INSERT INTO segd_locks (name, holder, since, expires) VALUES ('apply', $1, $2, $2) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, since = excluded.since, expires = excluded.expires";

const APPLIED_ROWS: &str = "SELECT kind, name, spec, hash, source, protect, templates FROM segd_definitions ORDER BY kind, name";

const CREATE_DEFINITION: &str = "INSERT INTO segd_definitions (kind, name, spec, hash, source, protect, applied_at, templates) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

const UPDATE_DEFINITION: &str = "UPDATE segd_definitions SET spec = $3, hash = $4, source = $5, protect = $6, \
     applied_at = $7, templates = $8 WHERE kind = $1 AND name = $2";

const HISTORY: &str = "INSERT INTO segd_apply_history (applied_at, applied_by, git_commit, summary, plan) \
     VALUES ($1, $2, $3, $4, $5)";

/// An apply of the history (`$1`: below this id, NULL for any; `$2` limit).
const APPLIES: &str = "SELECT id, applied_at, applied_by, git_commit, summary FROM segd_apply_history \
     WHERE (CAST($1 AS BIGINT) IS NULL OR id < $1) ORDER BY id DESC LIMIT $2";

type ApplyRow = (i64, DateTime<Utc>, String, Option<String>, String);

fn apply_entry((id, applied_at, user, git_commit, summary): ApplyRow) -> ApplyEntry {
    ApplyEntry {
        id,
        applied_at,
        user,
        git_commit,
        summary,
    }
}

/// A row of `segd_definitions`.
type DefinitionRow = (String, String, String, String, String, bool, String);

/// A row of `segd_definitions` as an applied definition; its name is checked
/// here, its spec decoded when first used.
fn applied_row(
    (kind, name, spec, hash, source, protect, templates): DefinitionRow,
) -> Result<Applied, StoreError> {
    let kind = Kind::parse(&kind).ok_or(StoreError::UnknownKind(kind))?;
    let name = Name::parse(&name).map_err(|e| Undecodable {
        kind,
        name: name.clone(),
        error: e.to_string(),
    })?;
    // An unreadable templates column is drift: it reads as no templates.
    let templates = serde_json::from_str(&templates).unwrap_or_default();
    let def = Definition {
        kind,
        name,
        spec,
        source,
        protect,
        templates,
    };
    Ok(Applied::new(def, hash))
}

/// The templates column: a JSON object of path → text.
fn templates_json(d: &Definition) -> String {
    serde_json::to_string(&d.templates).unwrap_or_else(|_| "{}".into())
}

fn count_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait::async_trait]
impl<B> Store for B
where
    B: Backend,
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
        // The version first: a change between the two reads makes the plan
        // stale, never a newer state under an older version.
        let mut conn = self.pool().acquire().await?;
        let version: String = sqlx::query_scalar(VERSION).fetch_one(&mut *conn).await?;
        let version = Version::from(version);
        let rows: Vec<DefinitionRow> = sqlx::query_as(APPLIED_ROWS).fetch_all(&mut *conn).await?;
        let rows = rows
            .into_iter()
            .map(applied_row)
            .collect::<Result<_, _>>()?;
        Ok(AppliedState { rows, version })
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
        let rows: Vec<ApplyRow> = sqlx::query_as(APPLIES)
            .bind(before)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(apply_entry).collect())
    }

    async fn apply_plan(&self, id: i64) -> Result<Option<(ApplyEntry, String)>, StoreError> {
        let sql = "SELECT id, applied_at, applied_by, git_commit, summary, plan FROM segd_apply_history WHERE id = $1";
        let row: Option<(i64, DateTime<Utc>, String, Option<String>, String, String)> =
            sqlx::query_as(sql)
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(id, at, user, commit, summary, plan)| {
            (apply_entry((id, at, user, commit, summary)), plan)
        }))
    }

    async fn lock(&self, holder: &str, wait: Duration) -> Result<ApplyLock, StoreError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(held) = self.try_lock().await? {
                sqlx::query(LOCK_INFO)
                    .bind(holder)
                    .bind(Utc::now())
                    .execute(self.pool())
                    .await?;
                return Ok(ApplyLock {
                    held,
                    holder: holder.to_string(),
                });
            }
            if Instant::now() >= deadline {
                let row: Option<(String, DateTime<Utc>)> =
                    sqlx::query_as("SELECT holder, since FROM segd_locks WHERE name = 'apply'")
                        .fetch_optional(self.pool())
                        .await?;
                let (holder, since) = row.unwrap_or_else(|| ("unknown".into(), Utc::now()));
                return Err(StoreError::Locked {
                    holder,
                    since: since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn unlock(&self, lock: ApplyLock) {
        // The record goes first, so it never removes the next holder's.
        // Neither step can undo an apply that committed, and a lock whose
        // release failed died with its connection or file: warnings only.
        if let Err(e) = sqlx::query("DELETE FROM segd_locks WHERE name = 'apply' AND holder = $1")
            .bind(lock.holder.as_str())
            .execute(self.pool())
            .await
        {
            tracing::warn!(error = %e, "forgetting the apply lock's holder failed");
        }
        if let Err(e) = self.release_lock(lock.held).await {
            tracing::warn!(error = %e, "releasing the apply lock failed");
        }
    }

    async fn apply(&self, plan: &Plan, record: &ApplyRecord) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(lock) = B::APPLY_XACT_LOCK {
            sqlx::query(lock).execute(&mut *tx).await?;
        }
        // Locks the version row (PostgreSQL), so no change of the definitions
        // can commit between this check and the commit.
        let version: String = sqlx::query_scalar(B::VERSION_FOR_UPDATE)
            .fetch_one(&mut *tx)
            .await?;
        if !plan.made_against.holds_for(&Version::from(version)) {
            return Err(StoreError::StalePlan);
        }
        let now = record.at;
        for c in &plan.changes {
            let (sql, d) = match (c.action, &c.after) {
                (Action::Create, Some(d)) => (CREATE_DEFINITION, d),
                (Action::Update, Some(d)) => (UPDATE_DEFINITION, d),
                (Action::Delete, _) => {
                    sqlx::query("DELETE FROM segd_definitions WHERE kind = $1 AND name = $2")
                        .bind(c.kind.as_str())
                        .bind(c.name.as_str())
                        .execute(&mut *tx)
                        .await?;
                    continue;
                }
                (Action::Create | Action::Update, None) => return Err(StoreError::StalePlan),
            };
            let templates = templates_json(d);
            let written = sqlx::query(sql)
                .bind(d.kind.as_str())
                .bind(d.name.as_str())
                .bind(d.spec.as_str())
                .bind(d.digest().as_str())
                .bind(d.source.as_str())
                .bind(d.protect)
                .bind(now)
                .bind(templates.as_str())
                .execute(&mut *tx)
                .await?;
            if B::rows_affected(&written) != 1 {
                return Err(StoreError::StalePlan);
            }
        }
        sqlx::query(HISTORY)
            .bind(now)
            .bind(record.user.as_str())
            .bind(record.git_commit.as_deref())
            .bind(record.summary.as_str())
            .bind(record.plan.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn index_custom_data(&self, plan: &Plan) -> Result<(), StoreError> {
        self.index_custom_data_of(plan).await
    }

    async fn pairs(&self, q: &Query) -> Result<Vec<(String, String)>, StoreError> {
        Ok(
            sqlx::query_as_with(AssertSqlSafe(q.sql.as_str()), B::args(&q.binds)?)
                .fetch_all(self.pool())
                .await?,
        )
    }

    async fn count(&self, q: &Query) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar_with(AssertSqlSafe(q.sql.clone()), B::args(&q.binds)?)
            .fetch_one(self.pool())
            .await?;
        Ok(count_of(n))
    }

    async fn counts(&self, q: &Query) -> Result<Vec<u64>, StoreError> {
        let row = sqlx::query_with(AssertSqlSafe(q.sql.clone()), B::args(&q.binds)?)
            .fetch_one(self.pool())
            .await?;
        (0..row.len())
            .map(|i| Ok(count_of(row.try_get(i)?)))
            .collect()
    }

    fn member_stream<'a>(&'a self, q: &'a Query) -> BoxStream<'a, Result<Member, StoreError>> {
        let args = match B::args(&q.binds) {
            Ok(args) => args,
            Err(e) => return futures_util::stream::once(async { Err(e) }).boxed(),
        };
        let with_rows = q.sql.starts_with("SELECT c.id, c.name, c.email");
        sqlx::query_with(AssertSqlSafe(q.sql.as_str()), args)
            .fetch(self.pool())
            .map(move |row| {
                let row = row?;
                Ok(Member {
                    id: row.try_get(0)?,
                    name: if with_rows { row.try_get(1)? } else { None },
                    email: if with_rows { row.try_get(2)? } else { None },
                })
            })
            .boxed()
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
        // To the second, so that every sample's time is stored in one form.
        let at = at.trunc_subsecs(0);
        let mut tx = self.begin_write().await?;
        for s in samples {
            sqlx::query(sizes::INSERT_SIZE)
                .bind(s.segment.as_str())
                .bind(at)
                .bind(i64::try_from(s.members).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
            // A segment too large to track forgets the members it had; a
            // small one keeps its previous sample's next to this one's.
            let Some(ids) = &s.ids else {
                sqlx::query("DELETE FROM segd_segment_members WHERE segment = $1")
                    .bind(s.segment.as_str())
                    .execute(&mut *tx)
                    .await?;
                continue;
            };
            sqlx::query(sizes::FORGET_OLDER_MEMBERS)
                .bind(s.segment.as_str())
                .bind(at)
                .execute(&mut *tx)
                .await?;
            for chunk in ids.chunks(sizes::IDS_PER_INSERT) {
                let json = serde_json::Value::from(chunk).to_string();
                sqlx::query(B::INSERT_MEMBERS)
                    .bind(s.segment.as_str())
                    .bind(at)
                    .bind(json.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn size_history(
        &self,
        segment: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Size>, StoreError> {
        let rows: Vec<(DateTime<Utc>, i64)> = sqlx::query_as(sizes::HISTORY)
            .bind(segment)
            .bind(since)
            .bind(HISTORY_ROWS)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .into_iter()
            .rev()
            .map(|(at, n)| Size {
                at,
                members: count_of(n),
            })
            .collect())
    }

    async fn latest_sizes(&self) -> Result<Vec<(String, Size)>, StoreError> {
        let rows: Vec<(String, DateTime<Utc>, i64)> =
            sqlx::query_as(sizes::LATEST).fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|(segment, at, n)| {
                let members = count_of(n);
                (segment, Size { at, members })
            })
            .collect())
    }

    async fn prune_sizes(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query("DELETE FROM segd_segment_sizes WHERE sampled_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM segd_segment_members WHERE sampled_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(B::rows_affected(&gone))
    }

    async fn membership_changes(
        &self,
        segment: &str,
        limit: usize,
    ) -> Result<Option<Changes>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let latest: Vec<(DateTime<Utc>, i64)> = sqlx::query_as(sizes::LATEST_TWO)
            .bind(segment)
            .fetch_all(&mut *conn)
            .await?;
        let [(at, at_members), (since, since_members)] = latest[..] else {
            return Ok(None);
        };
        // Both samples kept the segment's members (it was small enough).
        for (t, members) in [(at, at_members), (since, since_members)] {
            let kept: i64 = sqlx::query_scalar(sizes::KEPT)
                .bind(segment)
                .bind(t)
                .fetch_one(&mut *conn)
                .await?;
            if kept != members {
                return Ok(None);
            }
        }
        let mut only_in = async |a: DateTime<Utc>, b: DateTime<Utc>| {
            sqlx::query_scalar::<_, String>(sizes::ONLY_IN)
                .bind(segment)
                .bind(a)
                .bind(b)
                .fetch_all(&mut *conn)
                .await
        };
        let mut entered = only_in(at, since).await?;
        let mut left = only_in(since, at).await?;
        let (entered_total, left_total) = (entered.len() as u64, left.len() as u64);
        entered.truncate(limit);
        left.truncate(limit);
        Ok(Some(Changes {
            since,
            at,
            entered,
            left,
            entered_total,
            left_total,
        }))
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
