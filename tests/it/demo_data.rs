//! `segd demo-data` end to end: the binary on a temporary SQLite file and, when
//! `SEGD_TEST_POSTGRES_URL` is set, on a fresh PostgreSQL database; row counts,
//! the SPEC §4 storage forms, determinism, and refusing non-empty tables.

use crate::support::{fresh_pg_db, segd_cmd};
use sqlx::{PgPool, SqlitePool};
use std::collections::BTreeMap;

const TODAY: &str = "2026-11-30";

fn demo_data(url: &str, customers: u32, seed: u32, extra: &[&str]) -> assert_cmd::assert::Assert {
    segd_cmd()
        .args(["demo-data", "--database-url", url, "--today", TODAY])
        .args([
            "--customers",
            &customers.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(extra)
        .assert()
}

fn sqlite_url(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite://{}", dir.path().join(name).display())
}

async fn count(db: &SqlitePool, sql: &'static str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql)
        .fetch_one(db)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    n
}

const TABLES: [&str; 6] = [
    "connectors",
    "customers",
    "customer_connectors",
    "payment_methods",
    "invoices",
    "monitors",
];

/// Rows per billing table.
async fn counts_sqlite(pool: &SqlitePool) -> BTreeMap<&'static str, i64> {
    let mut out = BTreeMap::new();
    for t in TABLES {
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(pool)
            .await
            .expect("count rows");
        out.insert(t, n);
    }
    out
}

async fn counts_pg(pool: &PgPool) -> BTreeMap<&'static str, i64> {
    let mut out = BTreeMap::new();
    for t in TABLES {
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(pool)
            .await
            .expect("count rows");
        out.insert(t, n);
    }
    out
}

/// Every billing row of a SQLite database as text, each value `quote()`d (so its
/// storage class shows), in id order.
async fn dump_sqlite(pool: &SqlitePool) -> String {
    let tables: [(&str, &str); 6] = [
        (
            "connectors",
            "quote(id), quote(name), quote(kind), quote(connection)",
        ),
        (
            "customers",
            "quote(id), quote(name), quote(email), quote(country), quote(custom_data), quote(created_at)",
        ),
        (
            "customer_connectors",
            "quote(customer_id), quote(connector_id)",
        ),
        (
            "payment_methods",
            "quote(id), quote(customer_id), quote(type), quote(status), quote(connector_id), quote(is_default)",
        ),
        (
            "invoices",
            "quote(id), quote(customer_id), quote(number), quote(status), quote(amount_cents), \
             quote(currency), quote(due_date), quote(created_at)",
        ),
        (
            "monitors",
            "quote(id), quote(customer_id), quote(name), quote(state), quote(updated_at)",
        ),
    ];
    let mut out = String::new();
    for (table, cols) in tables {
        let order = if table == "customer_connectors" {
            "customer_id, connector_id"
        } else {
            "id"
        };
        let sql = format!(
            "SELECT {} FROM {table} ORDER BY {order}",
            cols.replace(", ", " || '|' || ")
        );
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .expect("dump a table");
        out.push_str(table);
        out.push('\n');
        for (r,) in rows {
            out.push_str(&r);
            out.push('\n');
        }
    }
    out
}

#[tokio::test]
async fn sqlite_rows_are_in_the_spec_forms() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(&dir, "demo.db");
    let out = demo_data(&url, 500, 7, &[]).success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("500 customers"), "{stdout}");

    let pool = SqlitePool::connect(&url).await.expect("open the database");
    let n = counts_sqlite(&pool).await;
    assert_eq!(n["connectors"], 7);
    assert_eq!(n["customers"], 500);
    assert!((1_250..=1_750).contains(&n["invoices"]), "{n:?}");
    assert!((500..=700).contains(&n["payment_methods"]), "{n:?}");
    assert!((400..=700).contains(&n["customer_connectors"]), "{n:?}");
    assert!(n["monitors"] > 50, "{n:?}");

    const TS: &str =
        "'[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z'";
    let bad = [
        (
            "customers.created_at",
            format!("SELECT count(*) FROM customers WHERE typeof(created_at) <> 'text' OR created_at NOT GLOB {TS}"),
        ),
        (
            "invoices.created_at",
            format!("SELECT count(*) FROM invoices WHERE typeof(created_at) <> 'text' OR created_at NOT GLOB {TS}"),
        ),
        (
            "monitors.updated_at",
            format!("SELECT count(*) FROM monitors WHERE typeof(updated_at) <> 'text' OR updated_at NOT GLOB {TS}"),
        ),
        (
            "invoices.due_date",
            "SELECT count(*) FROM invoices WHERE typeof(due_date) <> 'text' \
             OR due_date NOT GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]' \
             OR date(due_date) IS NOT due_date"
                .to_string(),
        ),
        (
            "payment_methods.is_default",
            "SELECT count(*) FROM payment_methods WHERE typeof(is_default) <> 'integer' OR is_default NOT IN (0, 1)"
                .to_string(),
        ),
        (
            "customers.custom_data",
            "SELECT count(*) FROM customers WHERE custom_data IS NOT NULL \
             AND (typeof(custom_data) <> 'text' OR NOT json_valid(custom_data) OR json_type(custom_data) <> 'object')"
                .to_string(),
        ),
        (
            "invoices.amount_cents",
            "SELECT count(*) FROM invoices WHERE typeof(amount_cents) <> 'integer' OR amount_cents <= 0"
                .to_string(),
        ),
        (
            "two defaults",
            "SELECT count(*) FROM (SELECT customer_id FROM payment_methods WHERE is_default = 1 \
             GROUP BY customer_id HAVING count(*) > 1)"
                .to_string(),
        ),
        (
            "dangling connector_id",
            "SELECT count(*) FROM payment_methods WHERE connector_id IS NOT NULL \
             AND connector_id NOT IN (SELECT id FROM connectors)"
                .to_string(),
        ),
        (
            "dangling customer_id",
            "SELECT (SELECT count(*) FROM invoices WHERE customer_id NOT IN (SELECT id FROM customers)) \
             + (SELECT count(*) FROM payment_methods WHERE customer_id NOT IN (SELECT id FROM customers)) \
             + (SELECT count(*) FROM monitors WHERE customer_id NOT IN (SELECT id FROM customers)) \
             + (SELECT count(*) FROM customer_connectors WHERE customer_id NOT IN (SELECT id FROM customers) \
                OR connector_id NOT IN (SELECT id FROM connectors))"
                .to_string(),
        ),
        (
            "unknown enum value",
            "SELECT (SELECT count(*) FROM invoices WHERE status NOT IN ('draft', 'open', 'paid', 'partially_paid', 'overdue', 'void')) \
             + (SELECT count(*) FROM payment_methods WHERE type NOT IN ('card', 'ach', 'sepa_debit', 'bank_transfer', 'paypal') \
                OR status NOT IN ('active', 'expired', 'failed', 'pending')) \
             + (SELECT count(*) FROM connectors WHERE connection NOT IN ('connected', 'disconnected', 'error')) \
             + (SELECT count(*) FROM monitors WHERE state NOT IN ('ok', 'alerting', 'no_data'))"
                .to_string(),
        ),
    ];
    for (what, sql) in bad {
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(&pool)
            .await
            .expect("check query");
        assert_eq!(n, 0, "{what}: {n} rows not in the SPEC §4 form");
    }
    // Around "today": invoices due today, in the coming week, and long past due.
    assert!(
        count(
            &pool,
            "SELECT count(*) FROM invoices WHERE due_date = '2026-11-30'"
        )
        .await
            > 0
    );
    assert!(
        count(
            &pool,
            "SELECT count(*) FROM invoices WHERE due_date > '2026-11-30' AND due_date <= '2026-12-07'"
        )
        .await
            > 0
    );
    assert!(
        count(
            &pool,
            "SELECT count(*) FROM invoices WHERE status = 'overdue' AND due_date < '2026-10-31'"
        )
        .await
            > 0
    );
    assert_eq!(
        count(&pool, "SELECT count(DISTINCT status) FROM invoices").await,
        6
    );
    assert!(count(&pool, "SELECT count(*) FROM customers WHERE email IS NULL").await > 0);
    assert!(
        count(
            &pool,
            "SELECT count(*) FROM customers WHERE custom_data IS NULL"
        )
        .await
            > 0
    );
}

#[tokio::test]
async fn sqlite_same_seed_gives_the_same_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b, c) = (
        sqlite_url(&dir, "a.db"),
        sqlite_url(&dir, "b.db"),
        sqlite_url(&dir, "c.db"),
    );
    demo_data(&a, 300, 7, &[]).success();
    demo_data(&b, 300, 7, &[]).success();
    demo_data(&c, 300, 8, &[]).success();
    let dump = |url: String| async move {
        let pool = SqlitePool::connect(&url).await.expect("open the database");
        dump_sqlite(&pool).await
    };
    let (a, b, c) = (dump(a).await, dump(b).await, dump(c).await);
    assert!(a.lines().count() > 1_000);
    assert!(a == b, "the same seed gave other rows");
    assert!(a != c, "another seed gave the same rows");
}

#[tokio::test]
async fn sqlite_refuses_filled_tables_unless_replace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(&dir, "demo.db");
    demo_data(&url, 40, 1, &[]).success();

    let again = demo_data(&url, 10, 2, &[]).code(1);
    let stderr = String::from_utf8_lossy(&again.get_output().stderr).into_owned();
    assert!(
        stderr.contains("not empty") && stderr.contains("--replace"),
        "{stderr}"
    );
    let pool = SqlitePool::connect(&url).await.expect("open the database");
    assert_eq!(counts_sqlite(&pool).await["customers"], 40);

    demo_data(&url, 10, 2, &["--replace"]).success();
    let n = counts_sqlite(&pool).await;
    assert_eq!(n["customers"], 10);
    assert_eq!(n["connectors"], 7);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM invoices WHERE customer_id > 'cus_000010'"
        )
        .await,
        0
    );
    // The indexes dropped for the load are back.
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'invoices_customer'"
        )
        .await,
        1
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    segd_cmd()
        .args(["demo-data", "--customers", "many"])
        .assert()
        .code(2);
    segd_cmd()
        .args(["demo-data", "--today", "2026-13-01"])
        .assert()
        .code(2);
    let help = segd_cmd().args(["demo-data", "--help"]).assert().success();
    let text = String::from_utf8_lossy(&help.get_output().stdout).into_owned();
    assert!(
        text.contains("--replace") && text.contains("refuses"),
        "{text}"
    );
}

#[tokio::test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
async fn postgres_gets_the_same_rows_in_its_types() {
    let Some(db) = fresh_pg_db("postgres_gets_the_same_rows_in_its_types").await else {
        return;
    };
    let out = demo_data(&db.url, 500, 7, &[]).success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("500 customers"), "{stdout}");
    let pg = db.pool().await;

    // The same data as on SQLite.
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(&dir, "demo.db");
    demo_data(&url, 500, 7, &[]).success();
    let lite = SqlitePool::connect(&url).await.expect("open the database");
    assert_eq!(counts_pg(&pg).await, counts_sqlite(&lite).await);

    // Column types: TIMESTAMPTZ, DATE, BOOLEAN, JSONB.
    let (ts, date, boolean, json): (String, String, String, String) = sqlx::query_as(
        "SELECT (SELECT pg_typeof(created_at)::text FROM customers LIMIT 1), \
         (SELECT pg_typeof(due_date)::text FROM invoices LIMIT 1), \
         (SELECT pg_typeof(is_default)::text FROM payment_methods LIMIT 1), \
         (SELECT pg_typeof(custom_data)::text FROM customers LIMIT 1)",
    )
    .fetch_one(&pg)
    .await
    .expect("column types");
    assert_eq!(
        (ts.as_str(), date.as_str(), boolean.as_str(), json.as_str()),
        ("timestamp with time zone", "date", "boolean", "jsonb")
    );

    // Row by row, in SQLite's text forms.
    let invoices_pg: Vec<(String,)> = sqlx::query_as(
        "SELECT concat_ws('|', id, customer_id, number, status, amount_cents, currency, \
         to_char(due_date, 'YYYY-MM-DD'), \
         to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')) \
         FROM invoices ORDER BY id",
    )
    .fetch_all(&pg)
    .await
    .expect("read invoices");
    let invoices_lite: Vec<(String,)> = sqlx::query_as(
        "SELECT id || '|' || customer_id || '|' || number || '|' || status || '|' || amount_cents \
         || '|' || currency || '|' || due_date || '|' || created_at FROM invoices ORDER BY id",
    )
    .fetch_all(&lite)
    .await
    .expect("read invoices");
    assert_eq!(invoices_pg, invoices_lite);

    let methods_pg: Vec<(String, Option<String>, bool)> =
        sqlx::query_as("SELECT id, connector_id, is_default FROM payment_methods ORDER BY id")
            .fetch_all(&pg)
            .await
            .expect("read payment methods");
    let methods_lite: Vec<(String, Option<String>, bool)> =
        sqlx::query_as("SELECT id, connector_id, is_default FROM payment_methods ORDER BY id")
            .fetch_all(&lite)
            .await
            .expect("read payment methods");
    assert_eq!(methods_pg, methods_lite);

    type CustomerRow = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let customers_pg: Vec<CustomerRow> = sqlx::query_as(
        "SELECT id, name, email, country, custom_data::text FROM customers ORDER BY id",
    )
    .fetch_all(&pg)
    .await
    .expect("read customers");
    let customers_lite: Vec<CustomerRow> =
        sqlx::query_as("SELECT id, name, email, country, custom_data FROM customers ORDER BY id")
            .fetch_all(&lite)
            .await
            .expect("read customers");
    assert_eq!(customers_pg.len(), customers_lite.len());
    let json = |s: &Option<String>| {
        s.as_deref()
            .map(|t| serde_json::from_str::<serde_json::Value>(t).expect("JSON"))
    };
    for (p, l) in customers_pg.iter().zip(&customers_lite) {
        assert_eq!((&p.0, &p.1, &p.2, &p.3), (&l.0, &l.1, &l.2, &l.3));
        assert_eq!(json(&p.4), json(&l.4), "custom_data of {}", p.0);
    }

    // A second load is refused; --replace swaps the data.
    demo_data(&db.url, 20, 3, &[]).code(1);
    assert_eq!(counts_pg(&pg).await["customers"], 500);
    demo_data(&db.url, 20, 3, &["--replace"]).success();
    assert_eq!(counts_pg(&pg).await["customers"], 20);
    let (indexes,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM pg_indexes WHERE indexname = 'invoices_customer'")
            .fetch_one(&pg)
            .await
            .expect("indexes");
    assert_eq!(indexes, 1);

    pg.close().await;
    db.cleanup().await;
}
