//! Segment size samples (migration 0009): sizes per segment and sample, and
//! the members of each small segment's two latest samples.

use super::{Backend, count_of};
use crate::store::StoreError;
use crate::store::sizes::{Changes, HISTORY_ROWS, Size, SizeSample};
use chrono::{DateTime, SubsecRound as _, Utc};
use sqlx::Database;

const INSERT_SIZE: &str = "INSERT INTO segd_segment_sizes (segment, sampled_at, members) VALUES ($1, $2, $3) \
     ON CONFLICT (segment, sampled_at) DO UPDATE SET members = excluded.members";

/// Keeps a segment's members of the sample before `$2` and of `$2` only.
const FORGET_OLDER_MEMBERS: &str = "DELETE FROM segd_segment_members WHERE segment = $1 AND (sampled_at = $2 \
     OR sampled_at < (SELECT MAX(sampled_at) FROM segd_segment_members WHERE segment = $1 AND sampled_at < $2))";

/// The ids of sample `$2` of segment `$1` that sample `$3` does not hold.
const ONLY_IN: &str = "SELECT a.customer_id FROM segd_segment_members a WHERE a.segment = $1 AND a.sampled_at = $2 \
     AND NOT EXISTS (SELECT 1 FROM segd_segment_members b WHERE b.segment = $1 AND b.sampled_at = $3 \
     AND b.customer_id = a.customer_id) ORDER BY a.customer_id";

/// How many ids one statement inserts.
const IDS_PER_INSERT: usize = 5_000;

/// A segment's sizes since `$2`, newest first, at most `$3`.
const HISTORY: &str = "SELECT sampled_at, members FROM segd_segment_sizes WHERE segment = $1 \
     AND sampled_at >= $2 ORDER BY sampled_at DESC LIMIT $3";

/// Every segment's latest sample (segments are sampled apart, each at its
/// own times). Reads every size row: the daemon's sampler reads it once.
const LATEST: &str = "SELECT s.segment, s.sampled_at, s.members FROM segd_segment_sizes s \
     JOIN (SELECT segment, MAX(sampled_at) AS at FROM segd_segment_sizes GROUP BY segment) m \
     ON m.segment = s.segment AND m.at = s.sampled_at ORDER BY s.segment";

/// A segment's two latest samples.
const LATEST_TWO: &str = "SELECT sampled_at, members FROM segd_segment_sizes WHERE segment = $1 \
     ORDER BY sampled_at DESC LIMIT 2";

/// How many members sample `$2` of segment `$1` kept.
const KEPT: &str =
    "SELECT COUNT(*) FROM segd_segment_members WHERE segment = $1 AND sampled_at = $2";

/// The store's operations on segment sizes.
pub(super) struct Sizes<'a, B>(pub(super) &'a B);

impl<B> Sizes<'_, B>
where
    B: Backend,
    for<'c> &'c mut <B::Db as Database>::Connection: sqlx::Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: sqlx::IntoArguments<B::Db>,
    for<'q> &'q str: sqlx::Encode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> i64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'r> String: sqlx::Decode<'r, B::Db> + sqlx::Type<B::Db>,
    usize: sqlx::ColumnIndex<<B::Db as Database>::Row>,
{
    pub(super) async fn record(
        &self,
        at: DateTime<Utc>,
        samples: &[SizeSample],
    ) -> Result<(), StoreError> {
        // To the second, so that every sample's time is stored in one form.
        let at = at.trunc_subsecs(0);
        let mut tx = self.0.begin_write().await?;
        for s in samples {
            sqlx::query(INSERT_SIZE)
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
            sqlx::query(FORGET_OLDER_MEMBERS)
                .bind(s.segment.as_str())
                .bind(at)
                .execute(&mut *tx)
                .await?;
            for chunk in ids.chunks(IDS_PER_INSERT) {
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

    pub(super) async fn history(
        &self,
        segment: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Size>, StoreError> {
        let rows: Vec<(DateTime<Utc>, i64)> = sqlx::query_as(HISTORY)
            .bind(segment)
            .bind(since)
            .bind(HISTORY_ROWS)
            .fetch_all(self.0.pool())
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

    pub(super) async fn latest(&self) -> Result<Vec<(String, Size)>, StoreError> {
        let rows: Vec<(String, DateTime<Utc>, i64)> =
            sqlx::query_as(LATEST).fetch_all(self.0.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|(segment, at, n)| {
                let members = count_of(n);
                (segment, Size { at, members })
            })
            .collect())
    }

    pub(super) async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.0.begin_write().await?;
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

    pub(super) async fn changes(
        &self,
        segment: &str,
        limit: usize,
    ) -> Result<Option<Changes>, StoreError> {
        let mut conn = self.0.pool().acquire().await?;
        let latest: Vec<(DateTime<Utc>, i64)> = sqlx::query_as(LATEST_TWO)
            .bind(segment)
            .fetch_all(&mut *conn)
            .await?;
        let [(at, at_members), (since, since_members)] = latest[..] else {
            return Ok(None);
        };
        // Both samples kept the segment's members (it was small enough).
        for (t, members) in [(at, at_members), (since, since_members)] {
            let kept: i64 = sqlx::query_scalar(KEPT)
                .bind(segment)
                .bind(t)
                .fetch_one(&mut *conn)
                .await?;
            if kept != members {
                return Ok(None);
            }
        }
        let mut only_in = async |a: DateTime<Utc>, b: DateTime<Utc>| {
            sqlx::query_scalar::<_, String>(ONLY_IN)
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
}
