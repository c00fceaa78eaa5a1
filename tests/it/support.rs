//! Fixture helpers shared by the test modules: in-memory trees and templates for
//! the library, temporary folders and the binary for end-to-end tests.

use segd::diag::Diagnostic;
use segd::validate::{Outcome, SourceFile, TemplateSource, Tree, validate};
use std::collections::BTreeMap;
use std::path::Path;
use tempfile::TempDir;

/// A template that uses every variable a template may see.
pub const VALID_TEMPLATE: &str = "Hello {{ customer.name }},\n\
     {% for invoice in invoices %}- {{ invoice.number }}\n{% endfor %}\
     ({{ communication.name }} for {{ segment.name }})\n";

/// Templates held in memory; a path not in `files` reads as `fallback`, or is
/// missing when there is no fallback.
#[derive(Debug, Clone, Default)]
pub struct MemTemplates {
    pub files: BTreeMap<String, String>,
    pub fallback: Option<String>,
}

impl MemTemplates {
    /// Every path reads as `text`.
    pub fn any(text: &str) -> Self {
        Self {
            files: BTreeMap::new(),
            fallback: Some(text.to_string()),
        }
    }
}

impl TemplateSource for MemTemplates {
    fn read(&self, path: &str) -> Result<(String, String), String> {
        self.files
            .get(path)
            .or(self.fallback.as_ref())
            .map(|text| (path.to_string(), text.clone()))
            .ok_or_else(|| "no such file".to_string())
    }
}

/// A definition file at `rel` (shown as `rel` too).
pub fn source_file(rel: &str, text: impl Into<String>) -> SourceFile {
    SourceFile {
        path: rel.to_string(),
        display: rel.to_string(),
        text: text.into(),
    }
}

/// A tree of segment and communication texts, named `segments.d/s{i}.toml` and
/// `communications.d/c{i}.toml`, with an optional `segd.toml`.
pub fn tree_of(segments: &[String], communications: &[String], settings: Option<&str>) -> Tree {
    let files = |folder: &str, prefix: &str, texts: &[String]| -> Vec<SourceFile> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| source_file(&format!("{folder}/{prefix}{i}.toml"), t.as_str()))
            .collect()
    };
    Tree {
        segments: files("segments.d", "s", segments),
        communications: files("communications.d", "c", communications),
        settings: settings.map(|t| source_file("segd.toml", t)),
        ..Tree::default()
    }
}

/// Validates a tree and checks the invariants every outcome must keep: each
/// diagnostic is located at line ≥ 1 and column ≥ 1, inside the file it names
/// when that file is one of the tree's or a template, and every renderer copes.
pub fn validate_checked(tree: &Tree, templates: &MemTemplates) -> Result<Outcome, String> {
    let outcome = validate(tree, templates);
    let mut texts: BTreeMap<&str, &str> = tree
        .segments
        .iter()
        .chain(&tree.communications)
        .chain(&tree.settings)
        .map(|f| (f.display.as_str(), f.text.as_str()))
        .collect();
    for (path, text) in &templates.files {
        texts.entry(path.as_str()).or_insert(text.as_str());
    }
    for d in &outcome.diagnostics {
        check_location(d, texts.get(d.file.as_str()).copied())?;
    }
    let _ = segd::diag::render_text(&outcome.diagnostics, false);
    let _ = segd::diag::render_json(&outcome.diagnostics, outcome.files_checked);
    let _ = segd::diag::render_github(&outcome.diagnostics);
    Ok(outcome)
}

fn check_location(d: &Diagnostic, text: Option<&str>) -> Result<(), String> {
    if d.line < 1 || d.column < 1 {
        return Err(format!("diagnostic not located at line/column >= 1: {d:?}"));
    }
    if let Some(text) = text {
        let lines = text.matches('\n').count() + 1;
        if d.line > lines {
            return Err(format!(
                "diagnostic at line {} of a {lines}-line file: {d:?}",
                d.line
            ));
        }
    }
    Ok(())
}

/// A temporary definitions folder for running the binary against.
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn empty() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    /// A copy of the repository's example tree.
    pub fn example() -> Self {
        let f = Self::empty();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        for folder in ["segments.d", "communications.d", "templates"] {
            copy_dir(&repo.join(folder), &f.dir.path().join(folder));
        }
        f
    }

    /// Writes `text` at `rel` below the folder, creating parent folders.
    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create a fixture folder");
        }
        std::fs::write(&path, text).expect("write a fixture file");
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `segd validate` run inside the folder (so paths print relative to it).
    pub fn validate(&self, format: &str) -> assert_cmd::assert::Assert {
        segd_cmd()
            .current_dir(self.path())
            .args(["validate", "--format", format])
            .assert()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a folder of the copy");
    for entry in std::fs::read_dir(from).expect("read an example folder") {
        let entry = entry.expect("read an example folder entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy an example file");
        }
    }
}

/// The `segd` binary built for these tests, with colour and the environment's
/// segd settings out of the way.
pub fn segd_cmd() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_segd"));
    cmd.env("NO_COLOR", "1")
        .env_remove("SEGD_DATABASE_URL")
        .env_remove("SEGD_SMTP_URL");
    cmd
}

/// A fresh PostgreSQL database with a random name, made through the admin URL in
/// `SEGD_TEST_POSTGRES_URL` and dropped (`WITH (FORCE)`) by [`PgTestDb::cleanup`],
/// or on drop when a test panicked before it.
pub struct PgTestDb {
    /// The URL of the new database.
    pub url: String,
    admin_url: String,
    name: String,
    dropped: bool,
}

/// A fresh database when `SEGD_TEST_POSTGRES_URL` is set; otherwise `None`, after
/// saying on stderr that `test` was skipped. The tests that call it are marked
/// `#[cfg_attr(no_pg, ignore = …)]`, so a build without the variable shows them
/// as ignored and this is only reached when the variable was unset after the
/// build. In CI (`CI` set) the variable is required, so PostgreSQL tests never
/// skip silently there.
pub async fn fresh_pg_db(test: &str) -> Option<PgTestDb> {
    let Some(admin_url) = std::env::var("SEGD_TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: SEGD_TEST_POSTGRES_URL must be set in CI"
        );
        eprintln!("{test}: skipped, SEGD_TEST_POSTGRES_URL is not set");
        return None;
    };
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let name = format!(
        "segd_test_{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut url = url::Url::parse(&admin_url).expect("SEGD_TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    pg_admin(&admin_url, &format!("CREATE DATABASE {name}")).await;
    Some(PgTestDb {
        url: url.to_string(),
        admin_url,
        name,
        dropped: false,
    })
}

/// Runs one statement (made of generated identifiers only) on the admin database.
async fn pg_admin(admin_url: &str, sql: &str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to SEGD_TEST_POSTGRES_URL");
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

impl PgTestDb {
    /// A connection pool on the database (for checking what a command wrote).
    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Drops the database.
    pub async fn cleanup(mut self) {
        self.dropped = true;
        pg_admin(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Not cleaned up (the test panicked): drop it from a thread of its own,
        // which may block where an async test cannot.
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(pg_admin(&admin_url, &sql));
            }
        })
        .join();
    }
}

/// Runs a future to completion on a fresh single-threaded runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(f)
}

/// One text column of every row of `sql` (test-owned SQL, no user input), on
/// either backend.
pub fn strings(url: &str, sql: &str) -> Vec<String> {
    use sqlx::Connection as _;
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    block_on(async move {
        if url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(url).await.expect("connect");
            sqlx::query_scalar::<_, String>(sql)
                .fetch_all(&mut c)
                .await
                .expect("query")
        } else {
            let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query_scalar::<_, String>(sql)
                .fetch_all(&mut c)
                .await
                .expect("query")
        }
    })
}

/// The number `sql` (one integer) selects.
pub fn count(url: &str, sql: &str) -> i64 {
    let v = strings(url, &format!("SELECT CAST(({sql}) AS TEXT)"));
    v.first()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{sql}: {v:?}"))
}

/// What a command did when its reader stopped after the first line.
pub struct ClosedEarly {
    pub first_line: String,
    /// The exit code (`None`: ended by a signal).
    pub code: Option<i32>,
    pub stderr: String,
}

/// Runs `cmd` with stdout a pipe that is closed once its first line was read,
/// as `cmd | head -1` does.
pub fn first_line_then_close(mut cmd: std::process::Command) -> ClosedEarly {
    use std::io::BufRead as _;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start segd");
    let mut first_line = String::new();
    {
        let stdout = child.stdout.take().expect("a piped stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut first_line)
            .expect("read the first line");
    }
    let o = child.wait_with_output().expect("wait for segd");
    ClosedEarly {
        first_line,
        code: o.status.code(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

impl ClosedEarly {
    /// Ended quietly as a Unix tool does: exit 141 and nothing on stderr.
    pub fn assert_quiet(&self, what: &str) {
        assert!(!self.first_line.is_empty(), "{what}: printed nothing");
        assert_eq!(
            (self.code, self.stderr.as_str()),
            (Some(141), ""),
            "{what}: first line {:?}",
            self.first_line
        );
    }
}

/// The database a test body runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// `each_db!(name)`: runs the function `name(Db)` as two tests,
/// `name::on_sqlite` and `name::on_postgres`; the latter shows as ignored
/// when the tests were built without PostgreSQL (`cfg(no_pg)`, see build.rs).
macro_rules! each_db {
    ($name:ident) => {
        mod $name {
            #[test]
            fn on_sqlite() {
                super::$name($crate::support::Db::Sqlite);
            }

            #[test]
            #[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
            fn on_postgres() {
                super::$name($crate::support::Db::Postgres);
            }
        }
    };
}
pub(crate) use each_db;
