//! The applied definitions: read them back typed, take and give back the
//! apply lock, apply a plan with its history entry in one transaction.

use super::Backend;
use crate::model::Name;
use crate::plan::{Action, Applied, AppliedState, Definition, Kind, Plan, Undecodable, Version};
use crate::store::{ApplyEntry, ApplyLock, ApplyRecord, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Database;
use std::time::{Duration, Instant};

/// The version of the applied definitions (migration 0004).
pub(in crate::store) const VERSION: &str =
    "SELECT lineage || ':' || CAST(revision AS TEXT) FROM segd_revision WHERE id = 1";

/// Records who holds the apply lock, over whatever a holder that died left.
/// `expires` is no longer read.
const LOCK_INFO: &str = "INSERT INTO segd_locks (name, holder, since, expires) VALUES ('apply', $1, $2, $2) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, since = excluded.since, expires = excluded.expires";

const APPLIED_ROWS: &str = "SELECT kind, name, spec, hash, source, protect, templates FROM segd_definitions ORDER BY kind, name";

/// The name and hash of the applied definitions of kind `$1`.
const HASHES: &str = "SELECT name, hash FROM segd_definitions WHERE kind = $1 ORDER BY name";

/// The rows of [`APPLIED_ROWS`] of `kind`, up to the name column (a list of
/// names follows). The kind is segd's own constant, never a user value.
pub(super) fn of_kind_named(kind: Kind) -> String {
    format!(
        "SELECT kind, name, spec, hash, source, protect, templates FROM segd_definitions WHERE kind = '{}' AND name",
        kind.as_str()
    )
}

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

/// An [`ApplyRow`] and its plan document.
type ApplyPlanRow = (i64, DateTime<Utc>, String, Option<String>, String, String);

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
pub(super) fn applied_row(
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

/// The store's operations on the applied definitions.
pub(super) struct Definitions<'a, B>(pub(super) &'a B);

impl<B> Definitions<'_, B>
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
    usize: sqlx::ColumnIndex<<B::Db as Database>::Row>,
{
    pub(super) async fn hashes(&self, kind: Kind) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(HASHES)
            .bind(kind.as_str())
            .fetch_all(self.0.pool())
            .await?)
    }

    pub(super) async fn applied(&self) -> Result<AppliedState, StoreError> {
        // The version first: a change between the two reads makes the plan
        // stale, never a newer state under an older version.
        let mut conn = self.0.pool().acquire().await?;
        let version: String = sqlx::query_scalar(VERSION).fetch_one(&mut *conn).await?;
        let version = Version::from(version);
        let rows: Vec<DefinitionRow> = sqlx::query_as(APPLIED_ROWS).fetch_all(&mut *conn).await?;
        let rows = rows
            .into_iter()
            .map(applied_row)
            .collect::<Result<_, _>>()?;
        Ok(AppliedState { rows, version })
    }

    pub(super) async fn applies(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ApplyEntry>, StoreError> {
        let rows: Vec<ApplyRow> = sqlx::query_as(APPLIES)
            .bind(before)
            .bind(limit)
            .fetch_all(self.0.pool())
            .await?;
        Ok(rows.into_iter().map(apply_entry).collect())
    }

    pub(super) async fn apply_plan(
        &self,
        id: i64,
    ) -> Result<Option<(ApplyEntry, String)>, StoreError> {
        let sql = "SELECT id, applied_at, applied_by, git_commit, summary, plan FROM segd_apply_history WHERE id = $1";
        let row: Option<ApplyPlanRow> = sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(self.0.pool())
            .await?;
        Ok(row.map(|(id, at, user, commit, summary, plan)| {
            (apply_entry((id, at, user, commit, summary)), plan)
        }))
    }

    pub(super) async fn lock(&self, holder: &str, wait: Duration) -> Result<ApplyLock, StoreError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(held) = self.0.try_lock().await? {
                sqlx::query(LOCK_INFO)
                    .bind(holder)
                    .bind(Utc::now())
                    .execute(self.0.pool())
                    .await?;
                return Ok(ApplyLock {
                    held,
                    holder: holder.to_string(),
                });
            }
            if Instant::now() >= deadline {
                let row: Option<(String, DateTime<Utc>)> =
                    sqlx::query_as("SELECT holder, since FROM segd_locks WHERE name = 'apply'")
                        .fetch_optional(self.0.pool())
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

    pub(super) async fn unlock(&self, lock: ApplyLock) {
        // The record goes first, so it never removes the next holder's.
        // Neither step can undo an apply that committed, and a lock whose
        // release failed died with its connection or file: warnings only.
        if let Err(e) = sqlx::query("DELETE FROM segd_locks WHERE name = 'apply' AND holder = $1")
            .bind(lock.holder.as_str())
            .execute(self.0.pool())
            .await
        {
            tracing::warn!(error = %e, "forgetting the apply lock's holder failed");
        }
        if let Err(e) = self.0.release_lock(lock.held).await {
            tracing::warn!(error = %e, "releasing the apply lock failed");
        }
    }

    pub(super) async fn apply(&self, plan: &Plan, record: &ApplyRecord) -> Result<(), StoreError> {
        let mut tx = self.0.begin_write().await?;
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
}
