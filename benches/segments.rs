//! Segment evaluation against hand-written SQL for the same set, on a large
//! demo database (SQLite or PostgreSQL):
//!
//! ```sh
//! cargo run --release -- demo-data --customers 1000000 --seed 1 --today 2026-11-30 \
//!     --database-url sqlite:///tmp/segd-bench.db
//! SEGD_BENCH_DB=sqlite:///tmp/segd-bench.db cargo bench --bench segments
//! ```
//!
//! Each segment is counted and listed by segd's compiled query and by the hand
//! query; both must give the same numbers. Prints the best of five runs. The
//! hand queries are written for this schema: the ones on unpaid invoices state
//! the predicate of the partial indexes on them (migrations 0003), as anyone
//! writing SQL against these indexes would. Each hand query gives the same set
//! on any data: an invoice or method whose customer_id names no customer makes
//! no member, so the ones that start from those tables join `customers` too.

// A benchmark reports on a terminal; the CLI's closed-pipe rule is not for it.
#![allow(clippy::disallowed_macros)]

use segd::segment::{Dialect, Query, Select, compile};
use segd::store::{SqliteStore, Store, connect};
use segd::validate::stored_segment;
use std::time::{Duration, Instant};

const AT: &str = "2026-11-30T12:00:00Z";

struct Case {
    name: &'static str,
    toml: &'static str,
    /// Hand-written SQL selecting the member ids (one column, distinct).
    sqlite: &'static str,
    postgres: &'static str,
}

/// The segment that once took a minute on 200,000 customers (its invoice
/// block probed every overdue invoice per candidate), written by hand as in
/// the report of it.
const EXPIRED_DEFAULT_OVERDUE_SQLITE: &str = "SELECT DISTINCT p.customer_id FROM payment_methods p JOIN customers c ON c.id = p.customer_id \
    WHERE p.is_default = 1 AND p.status = 'expired' AND p.customer_id IN \
    (SELECT customer_id FROM invoices WHERE status = 'overdue' AND created_at > '2026-01-01T00:00:00Z')";
const EXPIRED_DEFAULT_OVERDUE_POSTGRES: &str = "SELECT DISTINCT p.customer_id FROM payment_methods p JOIN customers c ON c.id = p.customer_id \
    WHERE p.is_default AND p.status = 'expired' AND p.customer_id IN \
    (SELECT customer_id FROM invoices WHERE status = 'overdue' AND created_at > TIMESTAMPTZ '2026-01-01T00:00:00Z')";

const CASES: &[Case] = &[
    Case {
        name: "country + email suffix",
        toml: "[segment]\nname = \"a\"\n[[filter]]\ntype = \"customer\"\ncountry = \"DE\"\nemail = { ends_with = \"@example.com\" }\n",
        sqlite: "SELECT id FROM customers WHERE country = 'DE' AND lower(email) LIKE '%@example.com'",
        postgres: "SELECT id FROM customers WHERE country = 'DE' AND lower(email) LIKE '%@example.com'",
    },
    Case {
        name: "open invoice 30+ days past due",
        toml: "[segment]\nname = \"b\"\n[[filter]]\ntype = \"invoice\"\nstatus = \"open\"\ndue_date_exceeded_by_days = { gte = 30 }\n",
        sqlite: "SELECT DISTINCT i.customer_id FROM invoices i JOIN customers c ON c.id = i.customer_id \
                 WHERE i.status = 'open' AND i.status IN ('open', 'partially_paid', 'overdue') AND i.due_date <= '2026-10-31'",
        postgres: "SELECT DISTINCT i.customer_id FROM invoices i JOIN customers c ON c.id = i.customer_id \
                   WHERE i.status = 'open' AND i.status IN ('open', 'partially_paid', 'overdue') AND i.due_date <= DATE '2026-10-31'",
    },
    Case {
        name: "expired default method + overdue invoice this year",
        toml: "[segment]\nname = \"c\"\n[[filter]]\ntype = \"payment_method\"\nis_default = true\nstatus = \"expired\"\n[[filter]]\ntype = \"invoice\"\nstatus = \"overdue\"\ncreated_after = 2026-01-01\n",
        sqlite: "SELECT DISTINCT pm.customer_id FROM payment_methods pm JOIN customers c ON c.id = pm.customer_id \
                 JOIN invoices i ON i.customer_id = pm.customer_id \
                 WHERE pm.is_default = 1 AND pm.status = 'expired' AND i.status = 'overdue' AND i.status IN ('open', 'partially_paid', 'overdue') AND i.created_at > '2026-01-01T00:00:00Z'",
        postgres: "SELECT DISTINCT pm.customer_id FROM payment_methods pm JOIN customers c ON c.id = pm.customer_id \
                 JOIN invoices i ON i.customer_id = pm.customer_id \
                   WHERE pm.is_default AND pm.status = 'expired' AND i.status = 'overdue' AND i.status IN ('open', 'partially_paid', 'overdue') AND i.created_at > TIMESTAMPTZ '2026-01-01T00:00:00Z'",
    },
    Case {
        name: "expired default (customer field), then overdue",
        toml: "[segment]\nname = \"f\"\n[[filter]]\ntype = \"customer\"\ndefault_payment_method_status = \"expired\"\n[[filter]]\ntype = \"invoice\"\nstatus = \"overdue\"\ncreated_after = 2026-01-01\n",
        sqlite: EXPIRED_DEFAULT_OVERDUE_SQLITE,
        postgres: EXPIRED_DEFAULT_OVERDUE_POSTGRES,
    },
    Case {
        name: "overdue, then expired default (customer field)",
        toml: "[segment]\nname = \"g\"\n[[filter]]\ntype = \"invoice\"\nstatus = \"overdue\"\ncreated_after = 2026-01-01\n[[filter]]\ntype = \"customer\"\ndefault_payment_method_status = \"expired\"\n",
        sqlite: EXPIRED_DEFAULT_OVERDUE_SQLITE,
        postgres: EXPIRED_DEFAULT_OVERDUE_POSTGRES,
    },
    Case {
        name: "custom_data plan = enterprise",
        toml: "[segment]\nname = \"d\"\n[[filter]]\ntype = \"customer\"\ncustom_data = { plan = \"enterprise\" }\n",
        sqlite: "SELECT id FROM customers WHERE json_extract(custom_data, '$.\"plan\"') = 'enterprise'",
        postgres: "SELECT id FROM customers WHERE custom_data @> '{\"plan\": \"enterprise\"}'",
    },
    Case {
        name: "match any of three blocks",
        toml: "[segment]\nname = \"e\"\nmatch = \"any\"\n[[filter]]\ntype = \"connector\"\nconnection = \"error\"\n[[filter]]\ntype = \"monitor\"\nstate = \"alerting\"\n[[filter]]\ntype = \"customer\"\ncountry = \"FR\"\n",
        sqlite: "SELECT id FROM customers c WHERE c.country = 'FR' OR c.id IN (SELECT cc.customer_id FROM customer_connectors cc \
                 JOIN connectors k ON k.id = cc.connector_id WHERE k.connection = 'error') OR c.id IN (SELECT customer_id FROM monitors WHERE state = 'alerting')",
        postgres: "SELECT id FROM customers WHERE country = 'FR' UNION SELECT cc.customer_id FROM customer_connectors cc \
                   JOIN connectors k ON k.id = cc.connector_id JOIN customers c ON c.id = cc.customer_id WHERE k.connection = 'error' \
                   UNION SELECT m.customer_id FROM monitors m JOIN customers c ON c.id = m.customer_id WHERE m.state = 'alerting'",
    },
];

async fn best<F, Fut>(mut f: F) -> (Duration, u64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let mut best = Duration::MAX;
    let mut n = 0;
    for _ in 0..5 {
        let t = Instant::now();
        n = f().await;
        best = best.min(t.elapsed());
    }
    (best, n)
}

async fn list(store: &dyn Store, q: &Query) -> u64 {
    store.members(q, |_| Ok(())).await.unwrap_or_default()
}

fn raw(sql: &str) -> Query {
    Query {
        merge_joins: false,
        sql: sql.to_string(),
        binds: Vec::new(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let Ok(url) = std::env::var("SEGD_BENCH_DB") else {
        eprintln!(
            "set SEGD_BENCH_DB to a database filled by `segd demo-data` (see the top of benches/segments.rs)"
        );
        return;
    };
    let store = match connect(&url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open {url}: {e}");
            return;
        }
    };
    let dialect = store.dialect();
    // What `segd apply` keeps for a segment comparing custom_data.plan.
    let plan = std::collections::BTreeSet::from([
        segd::model::CustomDataKey::parse("plan").expect("a valid key")
    ]);
    if let Err(e) = store.keep_custom_data(&plan).await {
        eprintln!("keeping custom_data.plan: {e}");
    }
    if let Some(s) = store.as_any().downcast_ref::<SqliteStore>() {
        let _ = sqlx::query("ANALYZE").execute(&s.pool).await;
    }
    let at = segd::model::parse_time(AT).unwrap_or_default();
    println!(
        "{:<52} {:>9} {:>12} {:>12} {:>7} {:>12} {:>12} {:>7}",
        "segment",
        "members",
        "segd count",
        "hand count",
        "ratio",
        "segd list",
        "hand list",
        "ratio"
    );
    for case in CASES {
        let seg = match stored_segment(case.toml) {
            Ok(seg) => seg,
            Err(e) => {
                eprintln!("{}: invalid in the bench: {e}", case.name);
                continue;
            }
        };
        let hand = match dialect {
            Dialect::Sqlite => case.sqlite,
            Dialect::Postgres => case.postgres,
        };
        let count_q = compile(&seg, dialect, at, Select::Count);
        let ids_q = compile(&seg, dialect, at, Select::Ids);
        let hand_count = raw(&format!("SELECT COUNT(*) FROM ({hand}) h"));
        let hand_list = raw(&format!("SELECT * FROM ({hand}) h ORDER BY 1"));
        let (sc, n1) = best(|| async { store.count(&count_q).await.unwrap_or_default() }).await;
        let (hc, n2) = best(|| async { store.count(&hand_count).await.unwrap_or_default() }).await;
        let (sl, n3) = best(|| list(&*store, &ids_q)).await;
        let (hl, n4) = best(|| list(&*store, &hand_list)).await;
        let agree = if n1 == n2 && n2 == n3 && n3 == n4 {
            ""
        } else {
            "  MISMATCH"
        };
        println!(
            "{:<52} {:>9} {:>10.1}ms {:>10.1}ms {:>7.2} {:>10.1}ms {:>10.1}ms {:>7.2}{agree}",
            case.name,
            n1,
            ms(sc),
            ms(hc),
            ms(sc) / ms(hc),
            ms(sl),
            ms(hl),
            ms(sl) / ms(hl)
        );
    }
}
