//! The daemon's parts in-process: a real SQLite file in a temporary folder, a
//! [`Manual`] clock moved by hand (nothing sleeps on wall time), requests
//! through `Router::oneshot` (no socket). The fixture and the requests are
//! here; the tests are in a module per part (`reconcile`, `scheduler`,
//! `api`, `worker`). What a user sees of the running binary (watching files,
//! signals, sockets, leader election) is tested in `tests/it/daemon.rs`.

mod api;
mod reconcile;
mod scheduler;
mod worker;

use super::state::ReconcileStatus;
use super::*;
use crate::clock::Manual;
use crate::store::SqliteStore;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::DateTime;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower::ServiceExt as _;

const TOKEN: &str = "in-process-token";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn comm(name: &str, trigger: &str, extra: &str) -> String {
    format!(
        "[communication]\nname = \"{name}\"\nsegment = \"de\"\nevent = \"email_invoice\"\nchannel = \"email\"\n{extra}\n\
         {trigger}\n\n[email]\nfrom = \"Billing <billing@acme.test>\"\nsubject = \"Invoice\"\nbody = \"Hello {{{{ customer.name }}}}\"\n"
    )
}

fn automatic(schedule: &str, timezone: &str) -> String {
    format!("[trigger]\ntype = \"automatic\"\nschedule = \"{schedule}\"\ntimezone = \"{timezone}\"")
}

const MANUAL: &str = "[trigger]\ntype = \"manual\"";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    clock: Arc<Manual>,
    opts: Options,
    /// The state the reconciles below report to and the API reads (the
    /// fixture's first reconcile reported elsewhere).
    shared: Arc<Shared>,
}

const SEGMENT_DE: &str = "[segment]\nname = \"de\"\ndescription = \"d\"\n\n[[filter]]\ntype = \"customer\"\ncountry = \"DE\"\n";

/// Definitions `comms` (and segment `de`) applied by a reconcile, as if at
/// `applied_at`, which is where the clock starts.
async fn fixture(comms: &[(&str, String)], applied_at: DateTime<Utc>) -> Fixture {
    let mut files = vec![("segments.d/de.toml".to_string(), SEGMENT_DE.to_string())];
    files.extend(
        comms
            .iter()
            .map(|(n, t)| (format!("communications.d/{n}.toml"), t.clone())),
    );
    fixture_of(&files, applied_at).await
}

/// The files (path below the folder, text) applied by a reconcile, as if at
/// `applied_at`, which is where the clock starts.
async fn fixture_of(files: &[(String, String)], applied_at: DateTime<Utc>) -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (rel, text) in files {
        write(dir.path(), rel, text);
    }
    let url = format!("sqlite:{}", dir.path().join("segd.db").display());
    let store: Arc<dyn Store> = Arc::from(
        crate::store::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let clock = Arc::new(Manual::new(applied_at, 1));
    let delivery = crate::config::delivery(&Default::default(), dir.path(), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let opts = Options {
        dir: dir.path().to_path_buf(),
        database_url: url,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        resync: Duration::from_secs(60),
        once: true,
        no_apply: false,
        delivery,
        api_token: Some(TOKEN.into()),
        size_retention: super::DEFAULT_SIZE_RETENTION,
        holder: "test".into(),
        git_commit: None,
        clock: clock.clone(),
    };
    let status = reconcile(&opts, &*store, &Shared::new(false, clock.now())).await;
    assert!(
        status.ok && status.degraded.is_empty(),
        "{:?} {:?}",
        status.error,
        status.degraded
    );
    assert_eq!(status.at, Some(applied_at), "the reconcile reads the clock");
    let stamped: Vec<DateTime<Utc>> = sqlx::query_scalar("SELECT applied_at FROM segd_definitions")
        .fetch_all(&pool(&*store))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !stamped.is_empty() && stamped.iter().all(|t| *t == applied_at),
        "the definitions are stamped with the clock: {stamped:?}"
    );
    Fixture {
        _dir: dir,
        store,
        shared: Arc::new(Shared::new(false, clock.now())),
        clock,
        opts,
    }
}

/// Writes `text` to `rel` below `dir`, creating its folders.
fn write(dir: &std::path::Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
}

fn pool(store: &dyn Store) -> sqlx::SqlitePool {
    store
        .as_any()
        .downcast_ref::<SqliteStore>()
        .map(|s| s.pool.clone())
        .unwrap_or_else(|| panic!("a SQLite store"))
}

impl Fixture {
    /// One reconcile of the folder as it is now, reported to `shared`.
    async fn reconcile(&self) -> ReconcileStatus {
        reconcile(&self.opts, &*self.store, &self.shared).await
    }

    /// Writes `text` to `rel` below the folder.
    fn write(&self, rel: &str, text: &str) {
        write(self._dir.path(), rel, text);
    }

    /// The applied definitions' texts by name.
    async fn specs(&self) -> std::collections::BTreeMap<String, String> {
        sqlx::query_as("SELECT name, spec FROM segd_definitions")
            .fetch_all(&pool(&*self.store))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .collect()
    }

    /// One scheduling pass at the clock's time; the next occurrence of each
    /// automatic communication.
    async fn pass(&self) -> Vec<DateTime<Utc>> {
        let s = schedule_pass(&*self.store, &|_: &str| None, &*self.clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.undecodable.is_empty());
        s.next.iter().map(|n| n.at).collect()
    }

    /// The runs recorded: occurrence and whether it ran late.
    async fn runs(&self) -> Vec<(String, bool)> {
        sqlx::query_as("SELECT occurrence, late FROM segd_trigger_runs ORDER BY occurred_at")
            .fetch_all(&pool(&*self.store))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

// The HTTP API through `Router::oneshot`.

fn router(f: &Fixture, token: Option<&str>, metrics: PrometheusHandle) -> axum::Router {
    router_with(f, token, metrics, Arc::new(|_: &str| None))
}

/// [`router`] with `env` as the daemon's environment.
fn router_with(
    f: &Fixture,
    token: Option<&str>,
    metrics: PrometheusHandle,
    env: Arc<Env>,
) -> axum::Router {
    http::router(
        Arc::new(http::Api {
            shared: f.shared.clone(),
            store: f.store.clone(),
            metrics,
            token: token.map(str::to_string),
            env,
            clock: f.clock.clone(),
        }),
        axum::Router::new(),
    )
}

/// A metrics handle of its own (the global recorder is the daemon's).
fn handle() -> PrometheusHandle {
    PrometheusBuilder::new().build_recorder().handle()
}

/// The response's status, the value of its header `name` and its body.
async fn call(
    router: axum::Router,
    request: Request<Body>,
    name: header::HeaderName,
) -> (StatusCode, Option<String>, String) {
    let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
    let status = response.status();
    let value = response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (status, value, String::from_utf8_lossy(&body).into_owned())
}

/// The response's status, `WWW-Authenticate` header and body.
async fn send(
    router: axum::Router,
    request: Request<Body>,
) -> (StatusCode, Option<String>, String) {
    call(router, request, header::WWW_AUTHENTICATE).await
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn trigger(name: &str, authorization: Option<&str>) -> Request<Body> {
    let mut r = Request::post(format!("/v1/communications/{name}/trigger"));
    if let Some(a) = authorization {
        r = r.header(header::AUTHORIZATION, a);
    }
    r.body(Body::empty()).unwrap_or_else(|e| panic!("{e}"))
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

async fn api_fixture() -> Fixture {
    fixture(
        &[
            ("nudge", comm("nudge", MANUAL, "")),
            ("paused", comm("paused", MANUAL, "enabled = false")),
        ],
        at("2026-12-02T16:49:24.106393Z"),
    )
    .await
}
