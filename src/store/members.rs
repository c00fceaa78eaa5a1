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
    /// of custom_data). Indexes of keys no segment uses any more are kept. A new
    /// index gets its statistics at once, so the planner knows how selective it is.
    pub async fn index_custom_data(&self, plan: &crate::plan::Plan) -> Result<(), StoreError> {
        let AnyStore::Sqlite(s) = self else {
            return Ok(());
        };
        let keys = plan.custom_data_keys();
        if keys.is_empty() {
            return Ok(());
        }
        for key in keys {
            sqlx::query(AssertSqlSafe(crate::segment::custom_data_index_sql(&key)))
                .execute(&s.pool)
                .await?;
        }
        // Analyzes customers when one of them is new (it has no statistics yet);
        // otherwise only sizes are checked.
        s.optimize().await
    }
}

/// One step of the plan a database chose for a query, with the steps it
/// runs for each of its rows or once before it (SQLite's `EXPLAIN QUERY PLAN`
/// rows; PostgreSQL's `EXPLAIN` nodes, each with what it is to its parent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanNode {
    pub label: String,
    pub children: Vec<PlanNode>,
}

/// The longest plan step [`PlanNode`]'s `Display` shows, in characters.
const LABEL_CHARS: usize = 400;

impl std::fmt::Display for PlanNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn write(
            node: &PlanNode,
            depth: usize,
            f: &mut std::fmt::Formatter<'_>,
        ) -> std::fmt::Result {
            // A condition may quote a whole bound list: show its start.
            let label: String = node.label.chars().take(LABEL_CHARS).collect();
            let more = if label.len() < node.label.len() {
                "…"
            } else {
                ""
            };
            writeln!(f, "{:width$}{label}{more}", "", width = depth * 2)?;
            node.children
                .iter()
                .try_for_each(|c| write(c, depth + 1, f))
        }
        write(self, 0, f)
    }
}

impl AnyStore {
    /// The plan the database would run `q` with (nothing is run): the
    /// top-level steps, in order.
    pub async fn explain(&self, q: &Query) -> Result<Vec<PlanNode>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => {
                let sql = format!("EXPLAIN QUERY PLAN {}", q.sql);
                let rows: Vec<(i64, i64, i64, String)> =
                    sqlx::query_as_with(AssertSqlSafe(sql), sqlite_args(&q.binds))
                        .fetch_all(&s.pool)
                        .await?;
                Ok(sqlite_tree(&rows, 0))
            }
            AnyStore::Postgres(s) => {
                let sql = format!("EXPLAIN (VERBOSE, FORMAT JSON) {}", q.sql);
                let sqlx::types::Json(plan): sqlx::types::Json<serde_json::Value> =
                    sqlx::query_scalar_with(AssertSqlSafe(sql), pg_args(&q.binds)?)
                        .fetch_one(&s.pool)
                        .await?;
                let top = plan.get(0).and_then(|p| p.get("Plan"));
                Ok(top.map(pg_node).into_iter().collect())
            }
        }
    }
}

/// SQLite's plan rows `(id, parent, _, detail)` under `parent`, as a tree.
fn sqlite_tree(rows: &[(i64, i64, i64, String)], parent: i64) -> Vec<PlanNode> {
    rows.iter()
        .filter(|r| r.1 == parent && r.0 != parent)
        .map(|r| PlanNode {
            label: r.3.clone(),
            children: sqlite_tree(rows, r.0),
        })
        .collect()
}

/// A PostgreSQL plan node as one line: what it is to its parent, its type
/// and join type, the relation, alias and index, then its conditions.
fn pg_node(node: &serde_json::Value) -> PlanNode {
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
        .map(|plans| plans.iter().map(pg_node).collect())
        .unwrap_or_default();
    PlanNode { label, children }
}
