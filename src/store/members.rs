//! Running compiled segment queries: counts, and members streamed row by row.

use super::{AnyStore, StoreError};
use crate::segment::{Bind, Query};
use futures_util::TryStreamExt as _;
use sqlx::{AssertSqlSafe, Row as _};

/// One member of a segment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

pub(super) fn sqlite_args(binds: &[Bind]) -> sqlx::sqlite::SqliteArguments {
    use sqlx::Arguments as _;
    let mut args = sqlx::sqlite::SqliteArguments::default();
    for b in binds {
        // Adding a plain value to SQLite arguments cannot fail.
        let _ = match b {
            Bind::Text(s) => args.add(s.clone()),
            Bind::Int(i) => args.add(*i),
            Bind::Float(x) => args.add(*x),
            Bind::Bool(v) => args.add(i64::from(*v)),
            Bind::Time(t) => args.add(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            Bind::Date(d) => args.add(d.format("%Y-%m-%d").to_string()),
            Bind::Stamp(t) => args.add(*t),
        };
    }
    args
}

pub(super) fn pg_args(binds: &[Bind]) -> Result<sqlx::postgres::PgArguments, StoreError> {
    use sqlx::Arguments as _;
    let mut args = sqlx::postgres::PgArguments::default();
    for b in binds {
        match b {
            Bind::Text(s) => args.add(s.clone()),
            Bind::Int(i) => args.add(*i),
            Bind::Float(x) => args.add(*x),
            Bind::Bool(v) => args.add(*v),
            Bind::Time(t) => args.add(*t),
            Bind::Date(d) => args.add(*d),
            Bind::Stamp(t) => args.add(*t),
        }
        .map_err(|e| StoreError::Db(sqlx::Error::Encode(e)))?;
    }
    Ok(args)
}

impl AnyStore {
    /// Runs a `Select::Count` query.
    pub async fn count(&self, q: &Query) -> Result<u64, StoreError> {
        let n: i64 = match self {
            AnyStore::Sqlite(s) => {
                sqlx::query_scalar_with(AssertSqlSafe(q.sql.clone()), sqlite_args(&q.binds))
                    .fetch_one(&s.pool)
                    .await?
            }
            AnyStore::Postgres(s) => {
                sqlx::query_scalar_with(AssertSqlSafe(q.sql.clone()), pg_args(&q.binds)?)
                    .fetch_one(&s.pool)
                    .await?
            }
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Runs a query returning one row of integer columns.
    pub async fn counts(&self, q: &Query) -> Result<Vec<u64>, StoreError> {
        let read = |n: usize,
                    get: &dyn Fn(usize) -> Result<i64, sqlx::Error>|
         -> Result<Vec<u64>, StoreError> {
            (0..n)
                .map(|i| Ok(u64::try_from(get(i)?).unwrap_or(0)))
                .collect()
        };
        match self {
            AnyStore::Sqlite(s) => {
                let row = sqlx::query_with(AssertSqlSafe(q.sql.clone()), sqlite_args(&q.binds))
                    .fetch_one(&s.pool)
                    .await?;
                read(row.len(), &|i| row.try_get(i))
            }
            AnyStore::Postgres(s) => {
                let row = sqlx::query_with(AssertSqlSafe(q.sql.clone()), pg_args(&q.binds)?)
                    .fetch_one(&s.pool)
                    .await?;
                read(row.len(), &|i| row.try_get(i))
            }
        }
    }

    /// Runs a `Select::Ids` or `Select::Rows` query, handing each member to `each`
    /// as it arrives (never holding them all); returns how many there were.
    pub async fn members(
        &self,
        q: &Query,
        mut each: impl FnMut(Member) -> std::io::Result<()>,
    ) -> Result<u64, StoreError> {
        let mut n = 0u64;
        let with_rows = q.sql.starts_with("SELECT c.id, c.name, c.email");
        macro_rules! drain {
            ($rows:expr) => {{
                let mut rows = $rows;
                while let Some(row) = rows.try_next().await? {
                    let member = Member {
                        id: row.try_get(0)?,
                        name: if with_rows { row.try_get(1)? } else { None },
                        email: if with_rows { row.try_get(2)? } else { None },
                    };
                    n += 1;
                    if each(member).is_err() {
                        // The reader went away (a closed pipe): stop quietly.
                        break;
                    }
                }
            }};
        }
        match self {
            AnyStore::Sqlite(s) => drain!(
                sqlx::query_with(AssertSqlSafe(q.sql.clone()), sqlite_args(&q.binds))
                    .fetch(&s.pool)
            ),
            AnyStore::Postgres(s) => drain!(
                sqlx::query_with(AssertSqlSafe(q.sql.clone()), pg_args(&q.binds)?).fetch(&s.pool)
            ),
        }
        Ok(n)
    }
}

impl AnyStore {
    /// Keeps an expression index for every custom_data key the segments a plan
    /// creates or changes compare (SQLite; PostgreSQL has one GIN index over all
    /// of custom_data). Indexes of keys no segment uses any more are kept.
    pub async fn index_custom_data(&self, plan: &crate::plan::Plan) -> Result<(), StoreError> {
        let AnyStore::Sqlite(s) = self else {
            return Ok(());
        };
        let keys: std::collections::BTreeSet<String> = plan
            .changes
            .iter()
            .filter_map(|c| c.after.as_ref())
            .filter(|d| d.kind == crate::plan::Kind::Segment)
            .filter_map(|d| crate::validate::stored_segment(&d.spec))
            .flat_map(|seg| {
                seg.filters
                    .into_iter()
                    .flat_map(|f| f.custom_data.into_keys())
                    .collect::<Vec<_>>()
            })
            .collect();
        for key in keys {
            sqlx::query(AssertSqlSafe(crate::segment::custom_data_index_sql(&key)))
                .execute(&s.pool)
                .await?;
        }
        Ok(())
    }
}
