//! `segd plan`, `apply`, `export` and `db migrate` end to end, on each backend.

use crate::support::{Fixture, PgTestDb, block_on, fresh_pg_db, segd_cmd};
use std::process::Output;

/// A database for one test: a SQLite file in the fixture folder, or a fresh
/// PostgreSQL database (dropped with the value).
pub struct TestDb {
    pub url: String,
    pg: Option<PgTestDb>,
}

impl TestDb {
    pub fn sqlite(f: &Fixture) -> Self {
        Self {
            url: format!("sqlite://{}", f.path().join("segd.db").display()),
            pg: None,
        }
    }

    /// `None` (the test says it skipped) without SEGD_TEST_POSTGRES_URL.
    pub fn postgres(test: &str) -> Option<Self> {
        let db = block_on(fresh_pg_db(test))?;
        Some(Self {
            url: db.url.clone(),
            pg: Some(db),
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// Runs SQL against the database (test setup: triggers, drift, …).
    pub fn exec(&self, sql: &str) {
        let url = self.url.clone();
        let sql = sql.to_string();
        block_on(async move {
            use sqlx::Connection as _;
            let sql = sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
            if url.starts_with("sqlite:") {
                let mut conn = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("connect");
                sql.execute(&mut conn).await.expect("run test SQL");
            } else {
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
                sql.execute(&mut conn).await.expect("run test SQL");
            }
        });
    }
}

/// Runs a test body on SQLite and, when configured, on PostgreSQL.
macro_rules! on_both {
    ($name:ident, |$f:ident, $db:ident| $body:block) => {
        mod $name {
            use super::*;

            fn body($f: &Fixture, $db: &TestDb) $body

            #[test]
            fn sqlite() {
                let f = Fixture::example();
                let db = TestDb::sqlite(&f);
                body(&f, &db);
            }

            #[test]
            #[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
            fn postgres() {
                let f = Fixture::example();
                if let Some(db) = TestDb::postgres(concat!(stringify!($name), "::postgres")) {
                    body(&f, &db);
                }
            }
        }
    };
}

pub fn segd(f: &Fixture, db: &TestDb, args: &[&str]) -> Output {
    segd_cmd()
        .args(args)
        .arg("--dir")
        .arg(f.path())
        .args(["--database-url", &db.url])
        .output()
        .expect("run segd")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn detailed(f: &Fixture, db: &TestDb) -> i32 {
    code(&segd(f, db, &["plan", "--detailed-exitcode"]))
}

fn apply(f: &Fixture, db: &TestDb) -> Output {
    let o = segd(f, db, &["apply", "--auto-approve"]);
    assert_eq!(code(&o), 0, "apply failed: {}{}", stdout(&o), stderr(&o));
    o
}

fn plan_json(f: &Fixture, db: &TestDb) -> serde_json::Value {
    let o = segd(f, db, &["plan", "--format", "json"]);
    serde_json::from_slice(&o.stdout).expect("plan --format json prints one JSON document")
}

fn actions(plan: &serde_json::Value) -> Vec<(String, String)> {
    plan["changes"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["action"].as_str().unwrap_or("").to_string(),
                        c["name"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

on_both!(plan_apply_plan_shows_nothing, |f, db| {
    assert_eq!(detailed(f, db), 2);
    apply(f, db);
    assert_eq!(detailed(f, db), 0);
    let o = segd(f, db, &["plan"]);
    assert!(stdout(&o).contains("No changes"), "{}", stdout(&o));
});

on_both!(formatting_and_key_order_do_not_make_changes, |f, db| {
    apply(f, db);
    f.write(
        "segments.d/due-this-week.toml",
        "# reordered, reformatted, same meaning\n[[filter]]\ndue_in_days = {lte=7}\nstatus = { eq = \"open\" }\ntype = \"invoice\"\n\n\
         [[filter]]\ntype='customer'\ndefault_payment_method={ne='sepa_debit'}\n\n\
         [segment]\ndescription = \"Unpaid invoices due within 7 days, customer not on SEPA direct debit\"\nname = \"due-this-week\"\nmatch = \"all\"\n",
    );
    assert_eq!(detailed(f, db), 0);
});

on_both!(an_edit_is_exactly_one_update_with_a_diff, |f, db| {
    apply(f, db);
    let path = f.path().join("segments.d/overdue-eu.toml");
    let text = std::fs::read_to_string(&path).expect("read");
    f.write(
        "segments.d/overdue-eu.toml",
        &text.replace("gte = 30", "gte = 45"),
    );
    assert_eq!(
        actions(&plan_json(f, db)),
        [("update".to_string(), "overdue-eu".to_string())]
    );
    let o = segd(f, db, &["plan"]);
    let out = stdout(&o);
    assert!(
        out.contains("- due_date_exceeded_by_days = { gte = 30 }")
            && out.contains("+ due_date_exceeded_by_days = { gte = 45 }"),
        "{out}"
    );
    assert!(
        out.contains("Plan: 0 to create, 1 to update, 0 to delete."),
        "{out}"
    );
});

on_both!(
    removing_files_deletes_and_protection_is_remembered,
    |f, db| {
        apply(f, db);
        std::fs::remove_file(
            f.path()
                .join("communications.d/integration-alert-hook.toml"),
        )
        .expect("rm");
        std::fs::remove_file(f.path().join("communications.d/overdue-reminder-eu.toml"))
            .expect("rm");
        std::fs::remove_file(f.path().join("segments.d/overdue-eu.toml")).expect("rm");
        let mut got = actions(&plan_json(f, db));
        got.sort();
        assert_eq!(
            got,
            [
                ("delete".to_string(), "integration-alert-hook".to_string()),
                ("delete".to_string(), "overdue-eu".to_string()),
                ("delete".to_string(), "overdue-reminder-eu".to_string()),
            ]
        );
        // overdue-reminder-eu is protected: the apply refuses and changes nothing.
        let o = segd(f, db, &["apply", "--auto-approve"]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(
            stderr(&o).contains("--allow-delete overdue-reminder-eu"),
            "{}",
            stderr(&o)
        );
        assert_eq!(
            actions(&plan_json(f, db)).len(),
            3,
            "a refused apply changed nothing"
        );
        let o = segd(
            f,
            db,
            &[
                "apply",
                "--auto-approve",
                "--allow-delete",
                "overdue-reminder-eu",
            ],
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(detailed(f, db), 0);
    }
);

on_both!(
    a_statement_failing_midway_rolls_back_the_whole_apply,
    |f, db| {
        segd(f, db, &["db", "migrate"]);
        if db.is_postgres() {
            db.exec(
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.name = 'overdue-reminder-eu' THEN RAISE EXCEPTION 'injected failure'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER boom BEFORE INSERT ON segd_definitions FOR EACH ROW EXECUTE FUNCTION boom();",
        );
        } else {
            db.exec(
            "CREATE TRIGGER boom BEFORE INSERT ON segd_definitions WHEN NEW.name = 'overdue-reminder-eu' \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        );
        }
        let o = segd(f, db, &["apply", "--auto-approve"]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains("rolled back"), "{}", stderr(&o));
        // Nothing of the apply is left: every definition is still a create.
        let plan = plan_json(f, db);
        assert!(actions(&plan).iter().all(|(a, _)| a == "create"));
        assert_eq!(actions(&plan).len(), 9);
    }
);

/// `segd apply SAVED` refuses the plan: the database changed since it was made.
/// Refused before the plan is shown: nothing on stdout.
fn refused_as_stale(f: &Fixture, db: &TestDb, saved: &std::path::Path) {
    let o = segd(f, db, &["apply", saved.to_str().expect("utf-8 path")]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert_eq!(
        stderr(&o),
        "error: the database changed since the plan was made; run `segd plan` again\n"
    );
    assert_eq!(stdout(&o), "");
}

on_both!(a_stale_saved_plan_is_refused, |f, db| {
    let saved = f.path().join("first.plan");
    let o = segd(
        f,
        db,
        &["plan", "--out", saved.to_str().expect("utf-8 path")],
    );
    assert_eq!(code(&o), 0);
    apply(f, db);
    refused_as_stale(f, db, &saved);
});

on_both!(a_saved_plan_is_stale_after_an_out_of_band_edit, |f, db| {
    apply(f, db);
    f.write(
        "segments.d/new.toml",
        "[segment]\nname = \"new\"\n[[filter]]\ntype = \"customer\"\ncountry = \"FR\"\n",
    );
    let saved = f.path().join("new.plan");
    let o = segd(
        f,
        db,
        &["plan", "--out", saved.to_str().expect("utf-8 path")],
    );
    assert_eq!(code(&o), 0);
    // Not through segd, and touching no row the plan changes: still stale.
    db.exec("UPDATE segd_definitions SET protect = protect WHERE name = 'overdue-eu'");
    refused_as_stale(f, db, &saved);
    // A fresh plan of the same change applies.
    let o = segd(
        f,
        db,
        &["plan", "--out", saved.to_str().expect("utf-8 path")],
    );
    assert_eq!(code(&o), 0);
    let o = segd(f, db, &["apply", saved.to_str().expect("utf-8 path")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
});

on_both!(an_empty_stale_saved_plan_is_refused, |f, db| {
    apply(f, db);
    let saved = f.path().join("empty.plan");
    let o = segd(
        f,
        db,
        &["plan", "--out", saved.to_str().expect("utf-8 path")],
    );
    assert!(stdout(&o).contains("No changes"), "{}", stdout(&o));
    f.write(
        "segments.d/new.toml",
        "[segment]\nname = \"new\"\n[[filter]]\ntype = \"customer\"\ncountry = \"FR\"\n",
    );
    apply(f, db);
    refused_as_stale(f, db, &saved);
});

on_both!(out_of_band_edits_are_drift, |f, db| {
    apply(f, db);
    db.exec("UPDATE segd_definitions SET spec = replace(spec, 'gte = 30', 'gte = 1') WHERE name = 'overdue-eu'");
    assert_eq!(
        actions(&plan_json(f, db)),
        [("update".to_string(), "overdue-eu".to_string())]
    );
    apply(f, db);
    assert_eq!(detailed(f, db), 0);
});

/// The apply lock's holder as `segd_locks` records it, once it is not `not`.
fn lock_holder(db: &TestDb, not: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let rows = crate::support::strings(&db.url, "SELECT holder FROM segd_locks");
        if let Some(h) = rows.into_iter().find(|h| h != not) {
            return h;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no apply took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

on_both!(a_killed_apply_does_not_hold_the_lock, |f, db| {
    segd(f, db, &["db", "migrate"]);
    // A record left by a holder that died (here pid 1 of another machine)
    // holds nothing.
    let dead = "alice@ci (pid 1)";
    db.exec(&format!("INSERT INTO segd_locks (name, holder, since, expires) VALUES ('apply', '{dead}', '2026-01-01T00:00:00Z', '9999-01-01T00:00:00Z')"));
    apply(f, db);
    f.write(
        "segments.d/late.toml",
        "[segment]\nname = \"late\"\n\n[[filter]]\ntype = \"invoice\"\nstatus = \"overdue\"\n",
    );
    // An apply waiting for confirmation on a terminal (`script` gives it one)
    // holds the lock.
    let line = format!(
        "NO_COLOR=1 '{}' apply --dir '{}' --database-url '{}'",
        env!("CARGO_BIN_EXE_segd"),
        f.path().display(),
        db.url
    );
    let mut waiting = std::process::Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run script(1)");
    let holder = lock_holder(db, dead);
    // A live holder: another apply is told who and since when.
    let o = segd(f, db, &["apply", "--auto-approve", "--lock-timeout", "0s"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("another apply holds the lock: {holder}, since 20")),
        "{err}"
    );
    // kill -9 the holder: the next apply takes the lock at once.
    let pid = holder
        .rsplit_once("(pid ")
        .and_then(|(_, p)| p.strip_suffix(')'))
        .expect("the holder names its pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", pid])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let o = segd(f, db, &["apply", "--auto-approve"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("1 created"), "{}", stdout(&o));
    drop(waiting.stdin.take());
    let _ = waiting.kill();
    let _ = waiting.wait();
});

on_both!(concurrent_applies_serialise, |f, db| {
    segd(f, db, &["db", "migrate"]);
    // Two real applies at once: both succeed (one waits), the state is whole.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| segd(f, db, &["apply", "--auto-approve"]));
        let b = s.spawn(|| segd(f, db, &["apply", "--auto-approve"]));
        (a.join().expect("thread"), b.join().expect("thread"))
    });
    assert_eq!((code(&a), code(&b)), (0, 0), "{}{}", stderr(&a), stderr(&b));
    assert_eq!(detailed(f, db), 0);
});

on_both!(export_round_trips, |f, db| {
    apply(f, db);
    let out = f.path().join("exported");
    let o = segd(
        f,
        db,
        &["export", "--out", out.to_str().expect("utf-8 path")],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = segd_cmd()
        .args(["validate", "--dir"])
        .arg(&out)
        .output()
        .expect("run");
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let o = segd_cmd()
        .args(["plan", "--detailed-exitcode", "--dir"])
        .arg(&out)
        .args(["--database-url", &db.url])
        .output()
        .expect("run");
    assert_eq!(code(&o), 0, "{}", stdout(&o));
});

#[test]
fn bad_databases_are_one_line_environment_errors() {
    let f = Fixture::example();
    let cases = [
        (
            "postgres://127.0.0.1:1/nowhere",
            "connection refused at 127.0.0.1:1",
        ),
        ("mysql://localhost/db", "unsupported database URL"),
        (
            &format!("sqlite://{}/no/such/dir/x.db", f.path().display()),
            "cannot open the database",
        ),
    ];
    for (url, message) in cases {
        let o = segd_cmd()
            .args(["plan", "--dir"])
            .arg(f.path())
            .args(["--database-url", url])
            .output()
            .expect("run");
        assert_eq!(code(&o), 2, "{url}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(message) && err.trim().lines().count() == 1,
            "{url}: {err}"
        );
    }
}

/// `plan` never creates the database: a missing SQLite file is planned
/// against an empty database, with a note, and a plan saved so is applied to
/// the database `apply` then creates.
#[test]
fn plan_against_a_missing_database_creates_nothing() {
    let f = Fixture::example();
    let db = TestDb::sqlite(&f);
    let file = f.path().join("segd.db");
    let saved = f.path().join("first.plan");
    let o = segd(
        &f,
        &db,
        &["plan", "--out", saved.to_str().expect("utf-8 path")],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "note: the database {} does not exist yet; this is the plan against an empty one (`segd apply` creates it)\n",
            file.display()
        )
    );
    assert!(stdout(&o).contains("Plan: 9 to create, 0 to update, 0 to delete."));
    assert!(!file.exists(), "plan created {}", file.display());
    let o = segd(&f, &db, &["apply", saved.to_str().expect("utf-8 path")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(file.exists());
    assert_eq!(detailed(&f, &db), 0);
}

/// Commands that only read the database fail (exit 2) on a missing SQLite
/// file, saying how to create it, and create nothing.
#[test]
fn reading_commands_never_create_the_database() {
    let f = Fixture::example();
    let db = TestDb::sqlite(&f);
    let file = f.path().join("segd.db");
    let out = f.path().join("exported");
    let commands: [&[&str]; 5] = [
        &["segment", "members", "overdue-eu", "--from", "db"],
        &["deliveries"],
        &["trigger", "overdue-reminder-eu", "--dry-run"],
        &["forecast"],
        &["export", "--out", out.to_str().expect("utf-8 path")],
    ];
    for args in commands {
        let o = segd(&f, &db, args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!(
                "error: the database {} does not exist; `segd apply` or `segd db migrate` creates it (or point --database-url at another)\n",
                file.display()
            ),
            "{args:?}"
        );
        assert!(!file.exists(), "{args:?} created {}", file.display());
    }
    let o = segd(&f, &db, &["db", "migrate"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(file.exists());
}

/// A server that refuses the connection is said so at once, with where it was
/// tried, not as a connection pool timing out.
#[test]
fn a_refused_connection_is_told_at_once() {
    let f = Fixture::example();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let started = std::time::Instant::now();
    let o = segd_cmd()
        .args(["plan", "--dir"])
        .arg(f.path())
        .args([
            "--database-url",
            &format!("postgres://segd@127.0.0.1:{port}/segd"),
        ])
        .output()
        .expect("run");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(code(&o), 2);
    assert_eq!(
        stderr(&o),
        format!(
            "error: connection refused at 127.0.0.1:{port}: is PostgreSQL running there, and listening on that port?\n"
        )
    );
}

/// A PostgreSQL database that does not exist is named, with the command that
/// creates it, and no driver internals (the server's source line).
#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn a_missing_postgres_database_says_how_to_create_it() {
    let Ok(admin) = std::env::var("SEGD_TEST_POSTGRES_URL") else {
        eprintln!(
            "a_missing_postgres_database_says_how_to_create_it: skipped, SEGD_TEST_POSTGRES_URL is not set"
        );
        return;
    };
    let mut url = url::Url::parse(&admin).expect("a URL");
    url.set_path("/segd_no_such_database");
    let (host, port, user) = (
        url.host_str().unwrap_or("localhost").to_string(),
        url.port().unwrap_or(5432),
        url.username().to_string(),
    );
    let f = Fixture::example();
    let o = segd_cmd()
        .args(["plan", "--dir"])
        .arg(f.path())
        .args(["--database-url", url.as_str()])
        .output()
        .expect("run");
    assert_eq!(code(&o), 2);
    assert_eq!(
        stderr(&o),
        format!(
            "error: the database `segd_no_such_database` does not exist on {host}:{port}; create it with \
             `createdb -h {host} -p {port} -U {user} segd_no_such_database`, or name another database in the URL\n"
        )
    );
}

/// `plan --detailed-exitcode` exits 2 for changes, so an error exits 1 (never
/// read as pending changes), whatever its kind.
#[test]
fn detailed_exitcode_errors_exit_1() {
    let f = Fixture::example();
    let nowhere = f.path().join("no/such/dir");
    let sqlite = format!("sqlite://{}", f.path().join("segd.db").display());
    let cases: [(&std::path::Path, &str, &str); 2] = [
        (
            f.path(),
            "postgres://127.0.0.1:1/nowhere",
            "connection refused at 127.0.0.1:1",
        ),
        (&nowhere, &sqlite, "no such directory"),
    ];
    for (dir, url, message) in cases {
        let o = segd_cmd()
            .args(["plan", "--detailed-exitcode", "--dir"])
            .arg(dir)
            .args(["--database-url", url])
            .output()
            .expect("run");
        assert_eq!(code(&o), 1, "{url}: {}", stderr(&o));
        assert!(stderr(&o).contains(message), "{url}: {}", stderr(&o));
        // Without the flag, the same errors are environment errors.
        let o = segd_cmd()
            .args(["plan", "--dir"])
            .arg(dir)
            .args(["--database-url", url])
            .output()
            .expect("run");
        assert_eq!(code(&o), 2, "{url}: {}", stderr(&o));
    }
}

/// A database segd cannot write is recognised by its error code and said so.
#[test]
fn a_read_only_sqlite_database_is_an_environment_error() {
    let f = Fixture::example();
    let file = f.path().join("empty.db");
    std::fs::write(&file, b"").expect("write");
    let o = segd_cmd()
        .args(["plan", "--dir"])
        .arg(f.path())
        .args([
            "--database-url",
            &format!("sqlite://{}?mode=ro", file.display()),
        ])
        .output()
        .expect("run");
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is read-only") && stderr(&o).trim().lines().count() == 1,
        "{}",
        stderr(&o)
    );
}

on_both!(
    a_database_from_a_newer_segd_is_refused_and_left_alone,
    |f, db| {
        segd(f, db, &["db", "migrate"]);
        if db.is_postgres() {
            db.exec("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99999, 'from the future', TRUE, '\\x00', 0)");
        } else {
            db.exec("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99999, 'from the future', 1, x'00', 0)");
        }
        let o = segd(f, db, &["apply", "--auto-approve"]);
        assert_eq!(code(&o), 2);
        assert!(stderr(&o).contains("newer segd"), "{}", stderr(&o));
        db.exec("DELETE FROM _sqlx_migrations WHERE version = 99999");
        assert_eq!(detailed(f, db), 2, "nothing was applied");
    }
);

on_both!(apply_without_a_terminal_needs_auto_approve, |f, db| {
    let o = segd(f, db, &["apply"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--auto-approve"));
    assert_eq!(detailed(f, db), 2);
});

/// `trigger` with an unknown name suggests the nearest applied one, and says
/// "not applied" only of a name the definitions on disk define.
#[test]
fn trigger_names_the_nearest_applied_communication() {
    let f = Fixture::example();
    let db = TestDb::sqlite(&f);
    apply(&f, &db);
    let o = segd(&f, &db, &["trigger", "invoice-emial", "--dry-run"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        "error: no applied communication `invoice-emial`; did you mean `invoice-email`?\n"
    );
    let o = segd(&f, &db, &["trigger", "zzzzzzzzzzzz", "--dry-run"]);
    assert_eq!(
        stderr(&o),
        "error: no applied communication `zzzzzzzzzzzz`\n"
    );
    f.write(
        "communications.d/new-one.toml",
        "[communication]\nname = \"new-one\"\nsegment = \"overdue-eu\"\nevent = \"payment_reminder\"\n\
         channel = \"webhook\"\n\n[trigger]\ntype = \"manual\"\n\n[webhook]\n\
         url = \"https://hooks.acme.test/x\"\nsecret_env = \"HOOK\"\n",
    );
    let o = segd(&f, &db, &["trigger", "new-one", "--dry-run"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        "error: communication `new-one` is defined in communications.d/new-one.toml but not applied (run `segd apply`)\n"
    );
}

// A plan deleting every applied definition (made from the wrong folder) is
// warned of by `plan` and refused by `apply`, a saved one too, unless
// `--allow-delete-all`.
on_both!(deleting_every_applied_definition_needs_a_flag, |f, db| {
    apply(f, db);
    let empty = Fixture::empty();
    empty
        .write("segments.d/.keep", "")
        .write("communications.d/.keep", "");
    let run = |args: &[&str]| {
        segd_cmd()
            .args(args)
            .arg("--dir")
            .arg(empty.path())
            .args(["--database-url", &db.url])
            .output()
            .expect("run segd")
    };
    let o = run(&["plan"]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        stderr(&o),
        format!(
            "warning: this plan deletes every applied definition (9), as {} defines none of them: \
             is --dir the right folder? `segd apply` refuses it without --allow-delete-all\n",
            empty.path().display()
        )
    );
    let refusal = "error: the plan deletes every applied definition (9): is --dir the right folder? \
                   Pass --allow-delete-all if that is meant\n";
    let o = run(&["apply", "--auto-approve"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains(refusal), "{}", stderr(&o));
    let saved = empty.path().join("all.plan");
    run(&["plan", "--out", saved.to_str().expect("utf-8 path")]);
    let o = run(&["apply", saved.to_str().expect("utf-8 path")]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains(refusal), "{}", stderr(&o));
    assert_eq!(detailed(f, db), 0, "nothing was deleted");
    let mut allow = vec!["apply", "--auto-approve", "--allow-delete-all"];
    for protected in ["enterprise", "overdue-reminder-eu"] {
        allow.extend(["--allow-delete", protected]);
    }
    let o = run(&allow);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("9 deleted"), "{}", stdout(&o));
});

/// `plan -v` says on stderr what it did, phase by phase (time, and queries
/// where it ran any); its output is what it is without `-v`.
#[test]
fn verbose_plan_shows_its_phases() {
    let f = Fixture::example();
    let db = TestDb::sqlite(&f);
    apply(&f, &db);
    f.write(
        "segments.d/new.toml",
        "[segment]\nname = \"new\"\n[[filter]]\ntype = \"customer\"\ncountry = \"FR\"\n",
    );
    let quiet = segd(&f, &db, &["plan"]);
    let o = segd(&f, &db, &["plan", "-v"]);
    assert_eq!(code(&o), 0);
    assert_eq!(stdout(&o), stdout(&quiet));
    let err = stderr(&o);
    let line = err
        .strip_prefix("plan: ")
        .and_then(|l| l.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("one `plan: …` line: {err}"));
    let phases: Vec<&str> = line.split(", ").collect();
    let names = [
        "read definitions",
        "open database",
        "read applied",
        "diff",
        "impact",
    ];
    assert_eq!(phases.len(), names.len(), "{line}");
    for (phase, name) in phases.iter().zip(names) {
        let rest = phase
            .strip_prefix(name)
            .and_then(|r| r.strip_suffix(" ms"))
            .unwrap_or_else(|| panic!("`{phase}` is not `{name} … ms`"));
        let words: Vec<&str> = rest.split_whitespace().collect();
        let ok = match words.as_slice() {
            [ms] => ms.parse::<u64>().is_ok(),
            [n, "query" | "queries", ms] => n.parse::<u64>().is_ok() && ms.parse::<u64>().is_ok(),
            _ => false,
        };
        assert!(ok, "`{phase}`");
    }
    // Reading the applied definitions and measuring the new segment query the database.
    assert!(
        phases[2].contains("quer") && phases[4].contains("quer"),
        "{line}"
    );
}

// A migration that fails shows the database's message, not the driver's
// wrapping of it (nor, on PostgreSQL, the server's source line).
on_both!(a_failed_migration_says_why_in_one_line, |f, db| {
    if !db.is_postgres() {
        // An empty file is an empty SQLite database.
        std::fs::write(f.path().join("segd.db"), b"").expect("create the database");
    }
    db.exec("CREATE TABLE segd_definitions (x INTEGER)");
    let o = segd(f, db, &["db", "migrate"]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.starts_with("error: migrating the database failed: ")
            && err.contains("segd_definitions")
            && !err.contains("at line")
            && !err.contains("while executing")
            && err.trim().lines().count() == 1,
        "{err}"
    );
});

#[test]
fn max_change_refuses_plan_and_apply_alike() {
    let f = Fixture::example();
    let db = TestDb::sqlite(&f);
    let o = segd(&f, &db, &["demo-data", "--customers", "300"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let segment = |country: &str| {
        format!(
            "[segment]\nname = \"new\"\n[[filter]]\ntype = \"customer\"\ncountry = \"{country}\"\n"
        )
    };
    f.write("segments.d/new.toml", &segment("DE"));
    apply(&f, &db);
    f.write("segments.d/new.toml", &segment("FR"));
    for args in [
        &["plan", "--max-change", "0"][..],
        &["apply", "--auto-approve", "--max-change", "0"],
    ] {
        let o = segd(&f, &db, args);
        let err = stderr(&o);
        assert_ne!(code(&o), 0, "{args:?}: {err}");
        assert!(
            err.contains("segment `new`: members ")
                && err.contains("changes by more than --max-change 0%"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(detailed(&f, &db), 2, "the refused apply changed nothing");
}
