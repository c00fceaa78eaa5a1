//! `cargo bench --bench deliver`: the outbox at volume, on SQLite (and the
//! enqueue on PostgreSQL too when `SEGD_BENCH_POSTGRES_URL` is set).
//!
//! 1. Enqueueing one run of 350,000 members (target < 1 s): the run's INSERT …
//!    SELECT into the outbox, timed through the library, the median of 5 runs.
//!    On PostgreSQL the same data in databases `segd_bench_enqueue_*`, which
//!    the bench creates and drops on the server `SEGD_BENCH_POSTGRES_URL` names
//!    (e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
//! 2. One `segd trigger` run of 100,000 webhook deliveries to a receiver in this
//!    process on loopback (target ≥ 5,000 deliveries/s, peak RSS < 100 MB), and the
//!    receiver alone with the same client concurrency, to show it is not the
//!    bottleneck.
//!
//! Knobs: `SEGD_BENCH_ENQUEUE` (350000), `SEGD_BENCH_REPEAT` (5),
//! `SEGD_BENCH_WEBHOOKS` (100000), `SEGD_BENCH_POSTGRES_URL` (unset: SQLite only).

// A benchmark reports on a terminal; the CLI's closed-pipe rule is not for it.
#![allow(clippy::disallowed_macros)]

mod common;

use axum::Router;
use axum::routing::post;
use common::{env_or, proc_kb};
use segd::store::{PgStore, SqliteStore, Store, connect};
use segd::trigger::{Occasion, enqueue, load_target, prepare};
use sqlx::AssertSqlSafe;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_c2VnZC1iZW5jaC1zZWNyZXQtbm90LWZvci1wcm9kdWN0aW9u";

/// `n` customers with one overdue invoice each, written by the database itself.
async fn fill(store: &dyn Store, n: u64) {
    if let Some(p) = store.as_any().downcast_ref::<PgStore>() {
        return fill_pg(&p.pool, n).await;
    }
    let s = store
        .as_any()
        .downcast_ref::<SqliteStore>()
        .expect("a SQLite or PostgreSQL store");
    let sql = format!(
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n}) \
         INSERT INTO customers (id, name, email, country, custom_data, created_at) \
         SELECT printf('cus_%07d', i), printf('Customer %d', i), printf('c%d@example.test', i), 'DE', '{{}}', \
         '2026-01-01T00:00:00Z' FROM k"
    );
    sqlx::query(AssertSqlSafe(sql))
        .execute(&s.pool)
        .await
        .expect("customers");
    let sql = format!(
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n}) \
         INSERT INTO invoices (id, customer_id, number, status, amount_cents, currency, due_date, created_at) \
         SELECT printf('inv_%07d', i), printf('cus_%07d', i), printf('INV-%07d', i), 'overdue', 12345, 'EUR', \
         '2026-01-10', '2026-01-01T00:00:00Z' FROM k"
    );
    sqlx::query(AssertSqlSafe(sql))
        .execute(&s.pool)
        .await
        .expect("invoices");
}

/// [`fill`] on PostgreSQL: the same rows, then statistics, as autovacuum would
/// have gathered on a live database.
async fn fill_pg(pool: &sqlx::PgPool, n: u64) {
    for sql in [
        format!(
            "INSERT INTO customers (id, name, email, country, custom_data, created_at) \
             SELECT 'cus_' || lpad(i::text, 7, '0'), 'Customer ' || i, 'c' || i || '@example.test', 'DE', '{{}}', \
             '2026-01-01T00:00:00Z' FROM generate_series(1, {n}) i"
        ),
        format!(
            "INSERT INTO invoices (id, customer_id, number, status, amount_cents, currency, due_date, created_at) \
             SELECT 'inv_' || lpad(i::text, 7, '0'), 'cus_' || lpad(i::text, 7, '0'), 'INV-' || lpad(i::text, 7, '0'), \
             'overdue', 12345, 'EUR', '2026-01-10', '2026-01-01T00:00:00Z' FROM generate_series(1, {n}) i"
        ),
        "VACUUM ANALYZE".to_string(),
    ] {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(pool)
            .await
            .expect("fill");
    }
}

/// Times one enqueue of the run into the database at `url`; the run's members
/// are every customer, `n`.
async fn enqueue_once(url: &str, n: u64) -> f64 {
    let env = |k: &str| (k == "SEGD_BENCH_SECRET").then(|| SECRET.to_string());
    let store = connect(url).await.expect("open");
    let target = load_target(&*store, "remind").await.expect("applied");
    let prepared = prepare(&target, Occasion::manual(&segd::clock::System));
    let t = Instant::now();
    let r = enqueue(&*store, &prepared, true, &env, chrono::Utc::now())
        .await
        .expect("enqueue");
    let took = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(r.enqueued, n, "every member enqueued");
    store.close().await;
    took
}

fn report(backend: &str, n: u64, mut times: Vec<f64>) -> f64 {
    let shown: Vec<String> = times.iter().map(|t| format!("{t:.0}")).collect();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "enqueue ({backend}): {n} deliveries for {n} members in {median:.0} ms median of {} ({} ms) (target < 1000 ms)",
        times.len(),
        shown.join(", ")
    );
    median
}

async fn admin_sql(conn: &mut sqlx::PgConnection, sql: String) {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(conn)
        .await
        .expect("admin SQL");
}

/// One filled database and its copies, a fresh one for each repeat.
enum Filled {
    /// The database file; copies beside it are synced, so that their dirty
    /// pages do not compete with the run's commit.
    Sqlite(std::path::PathBuf),
    /// The database's name, and a connection to the server's own database
    /// for `CREATE DATABASE … TEMPLATE` (FILE_COPY: checkpointed, as the
    /// SQLite copies are synced).
    Postgres(String, sqlx::PgConnection, String),
}

impl Filled {
    async fn new(bin: &str, root: &std::path::Path, postgres: Option<&str>, n: u64) -> Self {
        let (filled, url) = match postgres {
            None => {
                let filled = Filled::Sqlite(root.join("base.db"));
                let url = filled.url_of("base.db");
                (filled, url)
            }
            Some(admin) => {
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect(admin).await.expect("connect");
                let base = format!("segd_bench_enqueue_{}", std::process::id());
                admin_sql(&mut conn, format!("DROP DATABASE IF EXISTS {base}")).await;
                admin_sql(&mut conn, format!("CREATE DATABASE {base}")).await;
                let filled = Filled::Postgres(admin.to_string(), conn, base.clone());
                let url = filled.url_of(&base);
                (filled, url)
            }
        };
        apply(bin, root, &url);
        let store = connect(&url).await.expect("open");
        fill(&*store, n).await;
        store.close().await;
        filled
    }

    fn url_of(&self, name: &str) -> String {
        match self {
            Filled::Sqlite(file) => format!("sqlite://{}", file.with_file_name(name).display()),
            Filled::Postgres(admin, ..) => {
                let mut u = url::Url::parse(admin).expect("SEGD_BENCH_POSTGRES_URL is a URL");
                u.set_path(&format!("/{name}"));
                u.to_string()
            }
        }
    }

    /// Copy `i`'s URL.
    async fn copy(&mut self, i: u64) -> String {
        match self {
            Filled::Sqlite(file) => {
                let copy = file.with_file_name(format!("run{i}.db"));
                std::fs::copy(&*file, &copy).expect("copy");
                std::fs::File::open(&copy)
                    .and_then(|f| f.sync_all())
                    .expect("sync");
                self.url_of(&format!("run{i}.db"))
            }
            Filled::Postgres(_, conn, base) => {
                let sql = format!("CREATE DATABASE {base}_{i} TEMPLATE {base} STRATEGY FILE_COPY");
                admin_sql(conn, sql).await;
                let name = format!("{base}_{i}");
                self.url_of(&name)
            }
        }
    }

    async fn drop_copy(&mut self, i: u64) {
        match self {
            Filled::Sqlite(file) => {
                std::fs::remove_file(file.with_file_name(format!("run{i}.db"))).expect("rm");
            }
            Filled::Postgres(_, conn, base) => {
                admin_sql(conn, format!("DROP DATABASE {base}_{i}")).await;
            }
        }
    }

    async fn finish(self) {
        if let Filled::Postgres(_, mut conn, base) = self {
            admin_sql(&mut conn, format!("DROP DATABASE {base}")).await;
        }
    }
}

fn tree(root: &std::path::Path, url: &str) {
    std::fs::create_dir_all(root.join("segments.d")).expect("mkdir");
    std::fs::create_dir_all(root.join("communications.d")).expect("mkdir");
    std::fs::write(
        root.join("segments.d/all.toml"),
        "[segment]\nname = \"all\"\n",
    )
    .expect("write");
    std::fs::write(
        root.join("communications.d/remind.toml"),
        format!(
            "[communication]\nname = \"remind\"\nsegment = \"all\"\nevent = \"payment_reminder\"\nchannel = \"webhook\"\n\n\
             [trigger]\ntype = \"manual\"\n\n[webhook]\nurl = \"{url}\"\nsecret_env = \"SEGD_BENCH_SECRET\"\ntimeout = \"30s\"\n"
        ),
    )
    .expect("write");
}

fn apply(bin: &str, root: &std::path::Path, db: &str) {
    let ok = Command::new(bin)
        .args(["apply", "--auto-approve", "-q", "--dir"])
        .arg(root)
        .args(["--database-url", db])
        .stdout(Stdio::null())
        .status()
        .expect("segd apply")
        .success();
    assert!(ok, "apply failed");
}

async fn receiver() -> (String, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let app = Router::new().route(
        "/hook",
        post(move || {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), count)
}

#[tokio::main]
async fn main() {
    let bin = env!("CARGO_BIN_EXE_segd");
    let (url, count) = receiver().await;

    // 1. Enqueue: the same run into copies of one filled database; the median
    // of the repeats is the figure (this VM's disk and neighbours are noisy).
    let n = env_or::<u64>("SEGD_BENCH_ENQUEUE", 350_000);
    let repeat = env_or::<u64>("SEGD_BENCH_REPEAT", 5).max(1);
    let dir = tempfile::tempdir().expect("tmp");
    tree(dir.path(), &url);
    let postgres = std::env::var("SEGD_BENCH_POSTGRES_URL").ok();
    let mut backends = vec![("SQLite", Filled::new(bin, dir.path(), None, n).await)];
    if let Some(admin) = postgres.as_deref() {
        let filled = Filled::new(bin, dir.path(), Some(admin), n).await;
        backends.push(("PostgreSQL", filled));
    }
    // The backends take turns, so that both see the same neighbours.
    let mut times = vec![Vec::new(); backends.len()];
    for i in 0..repeat {
        for (b, (_, filled)) in backends.iter_mut().enumerate() {
            let url = filled.copy(i).await;
            times[b].push(enqueue_once(&url, n).await);
            filled.drop_copy(i).await;
        }
    }
    let mut medians = Vec::new();
    for ((name, filled), times) in backends.into_iter().zip(times) {
        medians.push(report(name, n, times));
        filled.finish().await;
    }
    if let [sqlite, pg] = medians[..] {
        println!("enqueue: PostgreSQL / SQLite = {:.2}", pg / sqlite);
    }

    // 2. Deliver.
    let m = env_or::<u64>("SEGD_BENCH_WEBHOOKS", 100_000);
    let dir = tempfile::tempdir().expect("tmp");
    let db = format!("sqlite://{}", dir.path().join("segd.db").display());
    tree(dir.path(), &url);
    apply(bin, dir.path(), &db);
    let store = connect(&db).await.expect("open");
    fill(&*store, m).await;
    store.close().await;
    count.store(0, Ordering::Relaxed);
    let t = Instant::now();
    let mut child = Command::new(bin)
        .args(["trigger", "remind", "-q", "--dir"])
        .arg(dir.path())
        .args(["--database-url", &db])
        .env("SEGD_BENCH_SECRET", SECRET)
        .env("SEGD_DELIVERY_CONCURRENCY", "64")
        .stdout(Stdio::piped())
        .spawn()
        .expect("segd trigger");
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Some(kb) = proc_kb(pid, "VmHWM") {
            peak = peak.max(kb);
        }
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t.elapsed();
    let out = child
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let received = count.load(Ordering::Relaxed);
    println!("trigger: {}", out.trim());
    println!(
        "deliver: {received} webhooks in {:.2} s = {:.0}/s (target ≥ 5000/s), peak RSS {:.1} MB (target < 100 MB)",
        took.as_secs_f64(),
        received as f64 / took.as_secs_f64(),
        peak as f64 / 1024.0
    );

    // The receiver alone, with the same concurrency.
    // reqwest takes rustls' process-wide crypto provider, which segd's
    // webhook sender installs in its own process, not in this one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let t = Instant::now();
    let per = m / 64;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let _ = client.post(&url).body("{}").send().await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    println!(
        "receiver alone: {} requests in {:.2} s = {:.0}/s",
        per * 64,
        t.elapsed().as_secs_f64(),
        (per * 64) as f64 / t.elapsed().as_secs_f64()
    );
}
