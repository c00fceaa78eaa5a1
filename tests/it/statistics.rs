//! Planner statistics (issue #12): where segd writes billing rows or indexes, it
//! leaves statistics for the query planner. The binary on a temporary SQLite file
//! and, when `SEGD_TEST_POSTGRES_URL` is set, on a fresh PostgreSQL database.
//! (The daemon's periodic refresh is tested with the daemon.)

use crate::cli_plan::{TestDb, segd};
use crate::support::{Fixture, count, strings};
use segd::store::billing::BILLING_TABLES;
use std::collections::BTreeSet;

/// The tables with planner statistics: on SQLite those with rows in
/// `sqlite_stat1` (which exists once something was analyzed); on PostgreSQL
/// those an `ANALYZE` (not autovacuum) went through.
pub fn analyzed(url: &str) -> BTreeSet<String> {
    let sql = if url.starts_with("sqlite:") {
        if count(
            url,
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'",
        ) == 0
        {
            return BTreeSet::new();
        }
        "SELECT DISTINCT tbl FROM sqlite_stat1"
    } else {
        "SELECT relname::text FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL"
    };
    strings(url, sql).into_iter().collect()
}

fn assert_analyzed(url: &str, tables: &[&str]) {
    let analyzed = analyzed(url);
    let missing: Vec<&&str> = tables.iter().filter(|t| !analyzed.contains(**t)).collect();
    assert!(
        missing.is_empty(),
        "no statistics for {missing:?} (analyzed: {analyzed:?})"
    );
}

/// `segd ARGS`, which must succeed.
fn segd_ok(f: &Fixture, db: &TestDb, args: &[&str]) {
    let o = segd(f, db, args);
    assert!(
        o.status.success(),
        "segd {args:?}: exit {:?}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn demo_data_analyzes_every_billing_table(db: &TestDb, f: &Fixture) {
    segd_ok(
        f,
        db,
        &["demo-data", "--customers", "300", "--today", "2026-11-30"],
    );
    assert_analyzed(&db.url, &BILLING_TABLES);
}

#[test]
fn sqlite_demo_data_analyzes_every_billing_table() {
    let f = Fixture::empty();
    demo_data_analyzes_every_billing_table(&TestDb::sqlite(&f), &f);
}

/// On PostgreSQL it vacuums them too: every page of each table is marked
/// all-visible, so that an index-only scan reads no row.
#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn postgres_demo_data_analyzes_every_billing_table() {
    let Some(db) = TestDb::postgres("postgres_demo_data_analyzes_every_billing_table") else {
        return;
    };
    demo_data_analyzes_every_billing_table(&db, &Fixture::empty());
    let mut vacuumed = strings(
        &db.url,
        &format!(
            "SELECT relname::text FROM pg_class WHERE relname IN ('{}') AND relkind = 'r' \
             AND relpages > 0 AND relallvisible = relpages",
            BILLING_TABLES.join("', '")
        ),
    );
    vacuumed.sort();
    let mut all: Vec<&str> = BILLING_TABLES.to_vec();
    all.sort_unstable();
    assert_eq!(
        vacuumed, all,
        "the tables every page of which is all-visible"
    );
}

/// A billing database segd meets for the first time: the billing system's sync
/// made `customers` and `invoices` (SPEC §4) and filled them, and nothing has
/// analyzed them. Migrating indexes them, and leaves statistics for them.
fn migrating_a_billing_database_analyzes_it(db: &TestDb, f: &Fixture) {
    let (json, time, rows) = if db.is_postgres() {
        (
            "JSONB",
            "TIMESTAMPTZ",
            "SELECT n FROM generate_series(1, 200) AS g(n)",
        )
    } else {
        (
            "TEXT",
            "TIMESTAMP",
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 200) SELECT n FROM g",
        )
    };
    db.exec(&format!(
        "CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT, email TEXT, country TEXT, \
         custom_data {json}, created_at {time});\n\
         CREATE TABLE invoices (id TEXT PRIMARY KEY, customer_id TEXT, number TEXT, status TEXT, \
         amount_cents BIGINT, currency TEXT, due_date DATE, created_at {time});\n\
         INSERT INTO customers (id, name, country) SELECT 'c' || n, 'Customer ' || n, \
         CASE WHEN n % 2 = 0 THEN 'DE' ELSE 'FR' END FROM ({rows}) AS s;\n\
         INSERT INTO invoices (id, customer_id, number, status, amount_cents, currency) \
         SELECT 'i' || n, 'c' || n, 'N-' || n, 'open', 1000, 'EUR' FROM ({rows}) AS s;\n"
    ));
    assert_eq!(analyzed(&db.url), BTreeSet::new(), "analyzed before segd");
    segd_ok(f, db, &["db", "migrate"]);
    assert_analyzed(&db.url, &["customers", "invoices"]);
}

#[test]
fn sqlite_migrating_a_billing_database_analyzes_it() {
    let f = Fixture::empty();
    // An empty file is an empty SQLite database.
    f.write("segd.db", "");
    migrating_a_billing_database_analyzes_it(&TestDb::sqlite(&f), &f);
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn postgres_migrating_a_billing_database_analyzes_it() {
    let Some(db) = TestDb::postgres("postgres_migrating_a_billing_database_analyzes_it") else {
        return;
    };
    migrating_a_billing_database_analyzes_it(&db, &Fixture::empty());
}

/// What apply keeps for a custom_data key has statistics as soon as it
/// exists: SQLite's expression index, PostgreSQL's statistics of the key's
/// value, text and JSON type. A second apply makes nothing again; the
/// daemon makes those of segments applied without them as it starts.
fn a_custom_data_key_has_statistics_after_apply(db: &TestDb, f: &Fixture) {
    f.write(
        "segments.d/enterprise.toml",
        "[segment]\nname = \"enterprise\"\ndescription = \"Enterprise plan\"\n\n\
         [[filter]]\ntype = \"customer\"\ncustom_data = { plan = \"enterprise\" }\n",
    )
    .write("communications.d/.keep", "");
    segd_ok(
        f,
        db,
        &["demo-data", "--customers", "300", "--today", "2026-11-30"],
    );
    let (kept, made) = if db.is_postgres() {
        (
            "SELECT count(DISTINCT statistics_name) FROM pg_stats_ext_exprs \
             WHERE statistics_name LIKE 'segd_cd_%' AND null_frac IS NOT NULL",
            3,
        )
    } else {
        (
            "SELECT count(*) FROM sqlite_stat1 WHERE idx LIKE 'segd_cd_%'",
            1,
        )
    };
    assert_eq!(count(&db.url, kept), 0);
    segd_ok(f, db, &["apply", "--auto-approve"]);
    assert_eq!(count(&db.url, kept), made);
    f.write(
        "segments.d/enterprise.toml",
        "[segment]\nname = \"enterprise\"\ndescription = \"Enterprise plans\"\n\n\
         [[filter]]\ntype = \"customer\"\ncustom_data = { plan = \"enterprise\" }\n",
    );
    segd_ok(f, db, &["apply", "--auto-approve"]);
    assert_eq!(count(&db.url, kept), made);
    // Applied by an older segd, which made none: the daemon makes them as it
    // starts.
    if db.is_postgres() {
        db.exec(
            "DO $$ DECLARE s TEXT; BEGIN \
             FOR s IN SELECT stxname FROM pg_statistic_ext WHERE stxname LIKE 'segd_cd_%' LOOP \
             EXECUTE 'DROP STATISTICS ' || quote_ident(s); END LOOP; END $$",
        );
    } else {
        let names = strings(
            &db.url,
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'segd_cd_%'",
        );
        for name in names {
            db.exec(&format!("DROP INDEX {name}"));
        }
    }
    assert_eq!(count(&db.url, kept), 0);
    segd_ok(f, db, &["daemon", "--once", "--listen", "127.0.0.1:0"]);
    assert_eq!(count(&db.url, kept), made);
}

#[test]
fn sqlite_a_custom_data_key_has_statistics_after_apply() {
    let f = Fixture::empty();
    a_custom_data_key_has_statistics_after_apply(&TestDb::sqlite(&f), &f);
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn postgres_a_custom_data_key_has_statistics_after_apply() {
    let Some(db) = TestDb::postgres("postgres_a_custom_data_key_has_statistics_after_apply") else {
        return;
    };
    a_custom_data_key_has_statistics_after_apply(&db, &Fixture::empty());
}

/// The SQLite segd links is built with a page cache per connection, without
/// `SQLITE_ENABLE_MEMORY_MANAGEMENT` (`.cargo/config.toml`), under which all
/// connections share one cache and a segment's lookups evicted each other's
/// pages (segments reading links took 2 to 4 times as long).
#[test]
fn sqlite_page_caches_are_per_connection() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display());
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM pragma_compile_options \
             WHERE compile_options = 'ENABLE_MEMORY_MANAGEMENT'"
        ),
        0
    );
    // The query itself reads the options: one it always has is there.
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM pragma_compile_options WHERE compile_options = 'ENABLE_STAT4'"
        ),
        1
    );
}
