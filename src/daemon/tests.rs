//! The scheduler and the HTTP API in-process: a real SQLite file in a
//! temporary folder, a [`Manual`] clock moved by hand (nothing sleeps on wall
//! time), requests through `Router::oneshot` (no socket).

use super::*;
use crate::clock::Manual;
use crate::ops::sizes::{Limits, Sampled, Sampler};
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
}

/// Definitions `comms` (and segment `de`) applied by a reconcile, as if at
/// `applied_at`, which is where the clock starts.
async fn fixture(comms: &[(&str, String)], applied_at: DateTime<Utc>) -> Fixture {
    let files = comms
        .iter()
        .map(|(n, t)| (format!("communications.d/{n}.toml"), t.clone()))
        .collect();
    fixture_with(files, applied_at).await
}

/// Segment `de` and the files `extra` (path below the folder, text) applied
/// by a reconcile, as if at `applied_at`, which is where the clock starts.
async fn fixture_with(extra: Vec<(String, String)>, applied_at: DateTime<Utc>) -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut files = vec![(
        "segments.d/de.toml".to_string(),
        "[segment]\nname = \"de\"\ndescription = \"d\"\n\n[[filter]]\ntype = \"customer\"\ncountry = \"DE\"\n"
            .to_string(),
    )];
    files.extend(extra);
    for (rel, text) in &files {
        let path = dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
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
        clock,
    }
}

fn pool(store: &dyn Store) -> sqlx::SqlitePool {
    store
        .as_any()
        .downcast_ref::<SqliteStore>()
        .map(|s| s.pool.clone())
        .unwrap_or_else(|| panic!("a SQLite store"))
}

impl Fixture {
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

#[tokio::test]
async fn the_scheduler_runs_each_due_occurrence_once_and_downtime_once_late() {
    let f = fixture(
        &[("daily", comm("daily", &automatic("0 9 * * *", "UTC"), ""))],
        at("2026-01-05T08:00:00Z"),
    )
    .await;
    assert_eq!(f.pass().await, [at("2026-01-05T09:00:00Z")]);
    assert!(f.runs().await.is_empty());

    f.clock.set(at("2026-01-05T08:59:59Z"));
    f.pass().await;
    assert!(f.runs().await.is_empty(), "not due a second early");

    f.clock.set(at("2026-01-05T09:00:00Z"));
    assert_eq!(f.pass().await, [at("2026-01-06T09:00:00Z")]);
    f.pass().await;
    assert_eq!(f.runs().await, [("20260105T090000Z".into(), false)]);

    // Down from before the 6th's occurrence until after the 9th's: the three
    // missed ones do not run, the latest runs once, late.
    f.clock.set(at("2026-01-09T10:30:00Z"));
    assert_eq!(f.pass().await, [at("2026-01-10T09:00:00Z")]);
    f.pass().await;
    assert_eq!(
        f.runs().await,
        [
            ("20260105T090000Z".into(), false),
            ("20260109T090000Z".into(), true)
        ]
    );
    let started: DateTime<Utc> = sqlx::query_scalar(
        "SELECT started_at FROM segd_trigger_runs WHERE occurrence = '20260109T090000Z'",
    )
    .fetch_one(&pool(&*f.store))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        started,
        at("2026-01-09T10:30:00Z"),
        "it starts when the clock says"
    );

    // Run more than a minute after its time (a slow pass), it is late too.
    f.clock.set(at("2026-01-10T09:05:00Z"));
    f.pass().await;
    assert_eq!(
        f.runs().await.last(),
        Some(&("20260110T090000Z".into(), true))
    );
}

async fn berlin_at_half_past_two(applied_at: DateTime<Utc>) -> Fixture {
    let trigger = automatic("30 2 * * *", "Europe/Berlin");
    fixture(&[("night", comm("night", &trigger, ""))], applied_at).await
}

#[tokio::test]
async fn the_scheduler_fires_once_across_daylight_saving_changes() {
    // Spring forward in Berlin: 2026-03-29 02:30 does not exist; it fires
    // once, at 03:00 CEST (01:00 UTC).
    let f = berlin_at_half_past_two(at("2026-03-28T12:00:00Z")).await;
    assert_eq!(f.pass().await, [at("2026-03-29T01:00:00Z")]);
    f.clock.set(at("2026-03-29T00:59:59Z"));
    f.pass().await;
    assert!(f.runs().await.is_empty());
    f.clock.set(at("2026-03-29T01:00:00Z"));
    assert_eq!(f.pass().await, [at("2026-03-30T00:30:00Z")]);
    assert_eq!(f.runs().await, [("20260329T010000Z".into(), false)]);

    // Fall back: 2026-10-25 02:30 happens twice; it fires at the first
    // (CEST, 00:30 UTC) and not again an hour later (CET).
    let f = berlin_at_half_past_two(at("2026-10-24T12:00:00Z")).await;
    assert_eq!(f.pass().await, [at("2026-10-25T00:30:00Z")]);
    f.clock.set(at("2026-10-25T00:30:00Z"));
    assert_eq!(f.pass().await, [at("2026-10-26T01:30:00Z")]);
    f.clock.set(at("2026-10-25T01:30:00Z"));
    assert_eq!(f.pass().await, [at("2026-10-26T01:30:00Z")]);
    assert_eq!(f.runs().await, [("20261025T003000Z".into(), false)]);
}

// ---------------------------------------------------------------------------
// The HTTP API through `Router::oneshot`.

fn router(f: &Fixture, token: Option<&str>, metrics: PrometheusHandle) -> axum::Router {
    http::router(
        Arc::new(http::Api {
            shared: Arc::new(Shared::new(false, f.clock.now())),
            store: f.store.clone(),
            metrics,
            token: token.map(str::to_string),
            env: Arc::new(|_: &str| None),
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

#[tokio::test]
async fn status_reports_the_daemon_and_its_outbox() {
    let f = api_fixture().await;
    let (status, _, body) = send(router(&f, None, handle()), get("/v1/status")).await;
    assert_eq!(status, StatusCode::OK);
    let v = json(&body);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["started_at"], "2026-12-02T16:49:24.106393Z");
    assert_eq!(v["leader"], false);
    assert_eq!(v["ready"], false);
    assert_eq!(v["apply"], true);
    assert_eq!(v["reconciles"], 0);
    assert_eq!(v["next_triggers"], serde_json::json!([]));
    assert_eq!(v["deliveries"], serde_json::json!({}));
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text() {
    let f = api_fixture().await;
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("segd_reconciles_total", "result" => "ok").increment(3);
    });
    let (status, content_type, body) = call(
        router(&f, None, handle),
        get("/metrics"),
        header::CONTENT_TYPE,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        body.lines()
            .any(|l| l == r#"segd_reconciles_total{result="ok"} 3"#),
        "{body}"
    );
}

#[tokio::test]
async fn the_trigger_endpoint_is_off_without_a_token_and_asks_for_it() {
    let f = api_fixture().await;
    let (status, _, body) = send(
        router(&f, None, handle()),
        trigger("nudge", Some(&format!("Bearer {TOKEN}"))),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        json(&body)["error"],
        "the trigger endpoint is disabled: SEGD_API_TOKEN is not set"
    );

    let api = router(&f, Some(TOKEN), handle());
    let (status, challenge, body) = send(api.clone(), trigger("nudge", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="segd""#));
    assert_eq!(json(&body)["error"], "missing bearer token");

    let (status, challenge, body) = send(api.clone(), trigger("nudge", Some("Bearer nope"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer realm="segd", error="invalid_token""#)
    );
    assert_eq!(json(&body)["error"], "wrong token");

    // Nothing ran.
    assert!(f.runs().await.is_empty());
}

#[tokio::test]
async fn the_trigger_endpoint_runs_applied_enabled_communications() {
    let f = api_fixture().await;
    let api = router(&f, Some(TOKEN), handle());
    let auth = format!("bearer {TOKEN}");

    let (status, _, body) = send(api.clone(), trigger("nope", Some(&auth))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json(&body)["error"], "no such applied communication");

    let (status, _, body) = send(api.clone(), trigger("paused", Some(&auth))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(json(&body)["error"], "the communication is disabled");

    let (status, _, body) = send(api.clone(), trigger("nudge", Some(&auth))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let v = json(&body);
    // The run's id comes from the daemon's clock and its seeded random source
    // (whose first draw went to the refused run of `paused`).
    let seeded = Manual::new(f.clock.now(), 1);
    seeded.random();
    let suffix = seeded.random();
    let run = format!("nudge:manual-20261202T164924.106393Z-{suffix:04x}");
    assert_eq!(v["run"], run.as_str());
    assert_eq!(v["status"], "enqueued");
    assert_eq!(
        (v["recipients"].as_u64(), v["enqueued"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        f.runs().await,
        [(
            format!("manual-20261202T164924.106393Z-{suffix:04x}"),
            false
        )]
    );
    let started: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT started_at FROM segd_trigger_runs")
            .fetch_all(&pool(&*f.store))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        started,
        [f.clock.now()],
        "the run starts at the daemon's clock"
    );
}

// ---------------------------------------------------------------------------
// The delivery worker on the daemon's clock.

#[tokio::test]
async fn retries_and_leases_come_due_on_the_clock_not_the_wall() {
    use crate::deliver::worker::Tally;
    use chrono::TimeDelta;
    let f = api_fixture().await;
    let spec = crate::demo::DemoSpec {
        seed: 1,
        customers: 60,
        today: f.clock.now().date_naive(),
    };
    let generator = crate::demo::Generator::new(spec).unwrap_or_else(|e| panic!("{e}"));
    f.store
        .load_demo(
            generator,
            crate::store::billing::Existing::Refuse,
            &mut |_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, _, body) = send(
        router(&f, Some(TOKEN), handle()),
        trigger("nudge", Some(&format!("Bearer {TOKEN}"))),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let enqueued = json(&body)["enqueued"].as_u64().unwrap_or_default();
    assert!(enqueued > 0, "{body}");

    // A communication that does not read back is tried again later.
    let pool = pool(&*f.store);
    let spec: String = sqlx::query_scalar("SELECT spec FROM segd_definitions WHERE name = 'nudge'")
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let set_spec = |spec: String| {
        let pool = pool.clone();
        async move {
            sqlx::query("UPDATE segd_definitions SET spec = $1 WHERE name = 'nudge'")
                .bind(spec)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    set_spec("not a definition".into()).await;
    let delivery = crate::config::delivery(&Default::default(), f._dir.path(), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let lease = delivery.lease;
    let worker = Worker::new(
        &*f.store,
        delivery,
        "test".into(),
        &|_: &str| None,
        f.clock.clone(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let drain = async || {
        worker
            .drain(None, |_| {}, &|| false)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let retrying = Tally {
        retrying: enqueued,
        ..Tally::default()
    };
    assert_eq!(drain().await, retrying);
    set_spec(spec).await;
    // The second attempt comes 5s (±10%) later by the clock, whatever the wall
    // clock did meanwhile.
    assert_eq!(drain().await, Tally::default());
    f.clock.advance(TimeDelta::seconds(4));
    assert_eq!(
        drain().await,
        Tally::default(),
        "due after 4.5s at the earliest"
    );
    f.clock.advance(TimeDelta::seconds(2));

    // Rows another sender claimed stay its own until its lease runs out.
    let now = f.clock.now();
    let lease = TimeDelta::from_std(lease).unwrap_or_else(|e| panic!("{e}"));
    let held = f
        .store
        .claim("crashed", now, now + lease, 1000, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(held.len() as u64, enqueued);
    assert_eq!(drain().await, Tally::default());
    f.clock.advance(lease);
    assert_eq!(
        drain().await,
        Tally::default(),
        "the lease ends after `until`"
    );
    f.clock.advance(TimeDelta::seconds(1));
    let sent = Tally {
        sent: enqueued,
        ..Tally::default()
    };
    assert_eq!(drain().await, sent);
}

/// Room for every segment in one pass; an hour's refresh.
const EVERY_SEGMENT: Limits = Limits {
    segments: usize::MAX,
    time: Duration::MAX,
    refresh: Duration::from_secs(3600),
};

impl Fixture {
    /// One sampling pass at the clock's time.
    async fn sample(&self, sampler: &mut Sampler, retention: Duration, limits: Limits) -> Sampled {
        sampler
            .pass(&*self.store, self.clock.now(), retention, limits)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// How many size rows each segment has, by name.
    async fn size_rows(&self) -> Vec<(String, i64)> {
        sqlx::query_as(
            "SELECT segment, COUNT(*) FROM segd_segment_sizes GROUP BY segment ORDER BY segment",
        )
        .fetch_all(&pool(&*self.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

#[tokio::test]
async fn a_sample_records_every_segment_and_the_members_of_small_ones() {
    let f = fixture(&[], at("2026-01-05T08:00:00Z")).await;
    for (id, country) in [("c1", "DE"), ("c2", "DE"), ("c3", "FR")] {
        sqlx::query(
            "INSERT INTO customers (id, name, email, country, custom_data, created_at) \
             VALUES ($1, $1, NULL, $2, '{}', '2026-01-01T00:00:00Z')",
        )
        .bind(id)
        .bind(country)
        .execute(&pool(&*f.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut sampler = Sampler::default();
    let first = f.clock.now();
    let s = f
        .sample(&mut sampler, DEFAULT_SIZE_RETENTION, EVERY_SEGMENT)
        .await;
    assert_eq!((s.segments, s.due), (1, 0));
    sqlx::query("UPDATE customers SET country = 'DE' WHERE id = 'c3'")
        .execute(&pool(&*f.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.clock.advance(chrono::TimeDelta::hours(1));
    let s = f
        .sample(&mut sampler, DEFAULT_SIZE_RETENTION, EVERY_SEGMENT)
        .await;
    assert_eq!(s.segments, 1, "an hour on, measured again");
    let latest = f
        .store
        .latest_sizes()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(latest.len(), 1);
    assert_eq!((latest[0].0.as_str(), latest[0].1.members), ("de", 3));
    let changes = f
        .store
        .membership_changes("de", 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("tracked"));
    assert_eq!(changes.since, first);
    assert_eq!(changes.entered, vec!["c3".to_string()]);
    assert!(changes.left.is_empty());
    // Two days of retention at 100 days on: both samples are forgotten.
    f.clock.advance(chrono::TimeDelta::days(100));
    let s = f
        .sample(&mut sampler, Duration::from_secs(2 * 86_400), EVERY_SEGMENT)
        .await;
    assert_eq!(s.pruned, 2);
    let history = f
        .store
        .size_history("de", first)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history.len(), 1);
}

#[tokio::test]
async fn a_sampling_pass_measures_at_most_its_limit_and_only_the_segments_due() {
    let segments: Vec<(String, String)> = ["s1", "s2", "s3", "s4"]
        .iter()
        .map(|n| {
            (
                format!("segments.d/{n}.toml"),
                format!("[segment]\nname = \"{n}\"\ndescription = \"d\"\n\n[[filter]]\ntype = \"customer\"\ncountry = \"FR\"\n"),
            )
        })
        .collect();
    let f = fixture_with(segments, at("2026-01-05T08:00:00Z")).await;
    let two = Limits {
        segments: 2,
        ..EVERY_SEGMENT
    };
    let mut sampler = Sampler::default();
    // Five segments, two a pass, new ones by name.
    let mut passes = Vec::new();
    for _ in 0..4 {
        let s = f.sample(&mut sampler, DEFAULT_SIZE_RETENTION, two).await;
        passes.push((s.segments, s.due));
        f.clock.advance(chrono::TimeDelta::minutes(1));
    }
    assert_eq!(passes, vec![(2, 3), (2, 1), (1, 0), (0, 0)]);
    let one_each: Vec<(String, i64)> = ["de", "s1", "s2", "s3", "s4"]
        .iter()
        .map(|n| (n.to_string(), 1))
        .collect();
    assert_eq!(f.size_rows().await, one_each);
    // A changed definition is due at once; the others are not.
    sqlx::query("UPDATE segd_definitions SET hash = 'changed' WHERE name = 's3'")
        .execute(&pool(&*f.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = f.sample(&mut sampler, DEFAULT_SIZE_RETENTION, two).await;
    assert_eq!((s.segments, s.due), (1, 0));
    // An hour after the first pass, its two are due again (the oldest
    // first); a sampler that starts afresh reads the samples back.
    f.clock.set(at("2026-01-05T09:00:00Z"));
    let mut afresh = Sampler::default();
    let s = f.sample(&mut afresh, DEFAULT_SIZE_RETENTION, two).await;
    assert_eq!((s.segments, s.due), (2, 0));
    let rows = f.size_rows().await;
    let twice: Vec<&str> = rows
        .iter()
        .filter(|(_, n)| *n == 2)
        .map(|(s, _)| s.as_str())
        .collect();
    assert_eq!(twice, vec!["de", "s1", "s3"]);
}
