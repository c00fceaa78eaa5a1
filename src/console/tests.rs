//! The console's pages through `Router::oneshot` (no socket), over a real
//! SQLite file holding demo billing data and the example definitions, applied
//! by a reconcile and sampled twice.

use super::*;
use crate::clock::Manual;
use crate::daemon::state::Shared;
use crate::daemon::{DEFAULT_SIZE_RETENTION, Options};
use crate::demo::{DemoSpec, Generator};
use crate::segment::{Select, compile};
use crate::store::billing::Existing;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Utc};
use tower::ServiceExt as _;

const TOKEN: &str = "console-test-token";
const HOST: &str = "127.0.0.1:8080";
const ORIGIN: &str = "http://127.0.0.1:8080";
const XSS: &str = "<img src=x onerror=alert(1)>";

struct Fixture {
    _dir: tempfile::TempDir,
    opts: Options,
    store: Arc<dyn Store>,
    shared: Arc<Shared>,
    clock: Arc<Manual>,
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The example definitions, a segment of the customers whose name holds
/// `onerror` and, with `broken`, a segment file that does not validate; 300
/// demo customers and one named like an HTML tag; a reconcile, and two size
/// samples an hour apart.
async fn fixture(broken: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["segments.d", "communications.d", "templates"] {
        copy_dir(&root.join(sub), &dir.path().join(sub));
    }
    std::fs::write(
        dir.path().join("segments.d/tricky.toml"),
        "[segment]\nname = \"tricky\"\ndescription = \"Names that look like HTML\"\n\n\
         [[filter]]\ntype = \"customer\"\nname = { contains = \"onerror\" }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("communications.d/capped.toml"),
        "[communication]\nname = \"capped\"\nsegment = \"open-invoices\"\nevent = \"payment_reminder\"\n\
         channel = \"email\"\nmax_recipients = 1\n\n[trigger]\ntype = \"manual\"\n\n\
         [email]\nfrom = \"Billing <billing@acme.test>\"\nsubject = \"Reminder\"\nbody = \"Hello\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    if broken {
        std::fs::write(
            dir.path().join("segments.d/broken.toml"),
            "[segment]\nname = \"broken\"\ndescription = \"b\"\n\n[[filter]]\ntype = \"customer\"\ncountry = { near = \"DE\" }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let url = format!("sqlite:{}", dir.path().join("segd.db").display());
    let store: Arc<dyn Store> = Arc::from(
        crate::store::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let now = at("2026-03-02T10:00:00Z");
    let generator = Generator::new(DemoSpec {
        seed: 7,
        customers: 300,
        today: now.date_naive(),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    store
        .load_demo(generator, Existing::Refuse, &mut |_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let clock = Arc::new(Manual::new(now, 1));
    let delivery = crate::config::delivery(&Default::default(), dir.path(), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let opts = Options {
        dir: dir.path().to_path_buf(),
        database_url: url,
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        resync: std::time::Duration::from_secs(60),
        once: true,
        no_apply: false,
        delivery,
        api_token: Some(TOKEN.into()),
        holder: "test".into(),
        git_commit: Some("0123abc".into()),
        clock: clock.clone(),
        size_retention: DEFAULT_SIZE_RETENTION,
    };
    let shared = Arc::new(Shared::new(false, now));
    shared
        .leader
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let status = crate::daemon::reconcile(&opts, &*store, &shared).await;
    assert!(status.ok, "{:?}", status.error);
    assert_eq!(status.degraded.len(), usize::from(broken));
    let mut sampler = crate::ops::sizes::Sampler::default();
    let every = crate::ops::sizes::Limits {
        segments: usize::MAX,
        time: std::time::Duration::MAX,
        refresh: std::time::Duration::from_secs(3600),
    };
    sampler
        .pass(&*store, clock.now(), DEFAULT_SIZE_RETENTION, every)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A customer joins `tricky` between the two samples.
    let pool = store
        .as_any()
        .downcast_ref::<crate::store::SqliteStore>()
        .map(|s| s.pool.clone())
        .unwrap_or_else(|| panic!("a SQLite store"));
    sqlx::query(
        "INSERT INTO customers (id, name, email, country, custom_data, created_at) \
         VALUES ('cus_xss', $1, 'x@example.com', 'DE', '{\"note\": \"<b>hi</b>\"}', '2026-01-01T00:00:00Z')",
    )
    .bind(XSS)
    .execute(&pool)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    clock.advance(chrono::TimeDelta::hours(1));
    sampler
        .pass(&*store, clock.now(), DEFAULT_SIZE_RETENTION, every)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Fixture {
        _dir: dir,
        opts,
        store,
        shared,
        clock,
    }
}

impl Fixture {
    fn router(&self, token: Option<&str>) -> Router {
        router(Arc::new(Console::new(
            self.shared.clone(),
            self.store.clone(),
            token.map(str::to_string),
            Arc::new(|_: &str| None),
            self.clock.clone(),
        )))
    }

    fn pool(&self) -> sqlx::SqlitePool {
        self.store
            .as_any()
            .downcast_ref::<crate::store::SqliteStore>()
            .map(|s| s.pool.clone())
            .unwrap_or_else(|| panic!("a SQLite store"))
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(router: &Router, path: &str, cookie: Option<&str>) -> Answer {
    let mut r = Request::get(path).header(header::HOST, HOST);
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    send(
        router,
        r.body(Body::empty()).unwrap_or_else(|e| panic!("{e}")),
    )
    .await
}

/// A form posted from the console's own pages.
async fn post(router: &Router, path: &str, form: &str, cookie: Option<&str>) -> Answer {
    post_from(router, path, form, cookie, ORIGIN).await
}

async fn post_from(
    router: &Router,
    path: &str,
    form: &str,
    cookie: Option<&str>,
    origin: &str,
) -> Answer {
    let mut r = Request::post(path)
        .header(header::HOST, HOST)
        .header(header::ORIGIN, origin)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    send(
        router,
        r.body(Body::from(form.to_string()))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .await
}

/// The text of the element with `id` (up to its first `<`).
fn by_id<'a>(body: &'a str, id: &str) -> &'a str {
    let marker = format!("id=\"{id}\"");
    let at = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {body}"));
    let rest = &body[at..];
    let start = rest.find('>').map_or(0, |i| i + 1);
    let end = rest[start..].find('<').map_or(rest.len(), |i| start + i);
    rest[start..end].trim()
}

/// Each path answers with its status and holds its text, under the
/// console's policy, with no link outside the console.
async fn expect(router: &Router, pages: &[(&str, StatusCode, &str)]) {
    for (path, status, needle) in pages {
        let a = get(router, path, None).await;
        assert_eq!(a.status, *status, "{path}: {}", a.body);
        assert!(a.body.contains(needle), "{path} lacks {needle}: {}", a.body);
        let header = |name| a.headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(
            header(header::CONTENT_SECURITY_POLICY),
            Some(CONTENT_SECURITY_POLICY),
            "{path}"
        );
        assert_eq!(
            header(header::X_CONTENT_TYPE_OPTIONS),
            Some("nosniff"),
            "{path}"
        );
        assert!(a.body.contains("name=\"viewport\""), "{path}");
        assert!(
            !a.body.contains("http://") && !a.body.contains("https://"),
            "{path}: external link"
        );
    }
}

/// Signs in; the session cookie and the CSRF token of its forms.
async fn sign_in(router: &Router) -> (String, String) {
    let answer = post(router, "/console/signin", &format!("token={TOKEN}"), None).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let set = answer
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("a cookie"))
        .to_string();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"));
    assert!(!set.contains("Max-Age") && !set.contains(TOKEN), "{set}");
    let cookie = set.split(';').next().unwrap_or_default().to_string();
    let page = get(router, "/", Some(&cookie)).await;
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("a CSRF token in {}", page.body))
        .to_string();
    (cookie, csrf)
}

#[tokio::test]
async fn every_page_answers_with_its_key_content_and_a_strict_policy_and_bad_parameters_are_400() {
    let f = fixture(false).await;
    let router = f.router(Some(TOKEN));
    let (ok, bad) = (StatusCode::OK, StatusCode::BAD_REQUEST);
    let long = format!("/segments?q={}", "a".repeat(101));
    expect(
        &router,
        &[
            ("/", ok, "id=\"role\">Leader"),
            ("/segments", ok, "id=\"segment-overdue-eu\""),
            ("/segments?q=overdue", ok, "id=\"segment-overdue-eu\""),
            ("/segments/overdue-eu", ok, "id=\"member-count\""),
            ("/communications", ok, "id=\"communication-invoice-email\""),
            ("/communications/invoice-email", ok, "id=\"runs\""),
            ("/deliveries", ok, "id=\"deliveries\""),
            ("/history", ok, "0123abc"),
            ("/history/1", ok, "id=\"plan\""),
            ("/history/1", ok, "create segment overdue-eu</li>"),
            ("/console/signin", ok, "id=\"token\""),
            ("/segments?page=0", bad, "`page`"),
            ("/segments?page=abc", bad, "`page`"),
            ("/segments?page=99", bad, "past the last page"),
            ("/segments?unknown=1", bad, "unknown"),
            ("/deliveries?status=lost", bad, "`status`"),
            ("/deliveries?before=-3", bad, "`before`"),
            ("/deliveries/abc", bad, "delivery id"),
            ("/history?before=x", bad, "`before`"),
            ("/deliveries?since=yesterday", bad, "`since`"),
            (
                "/deliveries?since=2026-03-01&until=2026-03-02T00:00:00Z",
                ok,
                "id=\"deliveries\"",
            ),
            (&long, bad, "`q`"),
            (
                "/segments/nope",
                StatusCode::NOT_FOUND,
                "no applied segment",
            ),
        ],
    )
    .await;
    let css = get(&router, "/console/style.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers.get(header::CONTENT_SECURITY_POLICY).is_some());
    // The filter in plain words.
    let list = get(&router, "/segments?q=overdue-eu", None).await;
    assert!(
        list.body.contains("customers in DE, FR, NL, AT, BE, ES or IT, with an open, partially_paid or overdue invoice 30+ days past due"),
        "{}",
        list.body
    );
    assert!(list.body.contains("<svg class=\"chart\""));
}

#[tokio::test]
async fn member_counts_are_the_stores_and_members_page_by_id() {
    let f = fixture(false).await;
    let router = f.router(None);
    let applied = f.store.applied().await.unwrap_or_else(|e| panic!("{e}"));
    for name in ["overdue-eu", "open-invoices", "tricky"] {
        let segment = applied
            .segment(name)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("{name}"));
        let q = compile(segment, f.store.dialect(), f.clock.now(), Select::Count);
        let count = f.store.count(&q).await.unwrap_or_else(|e| panic!("{e}"));
        let page = get(&router, &format!("/segments/{name}"), None).await;
        assert_eq!(
            by_id(&page.body, "member-count"),
            count.to_string(),
            "{name}"
        );
    }
    // Paged by id: the second page starts after the first's last id.
    let first = get(&router, "/segments/open-invoices", None).await;
    let rows = first.body.matches("class=\"member\"").count();
    assert_eq!(rows, super::params::PAGE);
    let next = first
        .body
        .split("id=\"next-members\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("a next page"))
        .replace("&amp;", "&");
    let second = get(&router, &next, None).await;
    assert_eq!(second.status, StatusCode::OK);
    assert!(second.body.contains("class=\"member\""));
    // Searched by name, id or email.
    let found = get(&router, "/segments/tricky?q=ONERROR", None).await;
    assert_eq!(found.body.matches("class=\"member\"").count(), 1);
    let none = get(&router, "/segments/tricky?q=nobody-here", None).await;
    assert_eq!(none.body.matches("class=\"member\"").count(), 0);
    // Who entered between the two samples.
    let tricky = get(&router, "/segments/tricky", None).await;
    assert_eq!(by_id(&tricky.body, "entered-count"), "1");
    assert!(tricky.body.contains("<code>cus_xss</code>"));
}

#[tokio::test]
async fn database_values_are_escaped() {
    let f = fixture(false).await;
    let router = f.router(None);
    for path in [
        "/segments/tricky",
        "/communications/invoice-email?member=cus_xss",
    ] {
        let page = get(&router, path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        assert!(!page.body.contains(XSS), "{path}: unescaped");
        assert!(!page.body.contains("<b>hi</b>"), "{path}: unescaped");
    }
    let page = get(&router, "/segments/tricky", None).await;
    assert!(
        page.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn the_overview_counts_the_drift_reconciles_set_back() {
    let f = fixture(false).await;
    let router = f.router(None);
    assert_eq!(
        by_id(&get(&router, "/", None).await.body, "drift-undone"),
        "0"
    );
    // Edited outside the files: the next reconcile sets it back.
    sqlx::query("UPDATE segd_definitions SET spec = spec || '# edited' WHERE name = 'tricky'")
        .execute(&f.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = crate::daemon::reconcile(&f.opts, &*f.store, &f.shared).await;
    assert_eq!(status.updated, ["segment tricky"]);
    // A file edit is no drift.
    let file = f.opts.dir.join("segments.d/tricky.toml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&file, text.replace("Names that look", "Names looking"))
        .unwrap_or_else(|e| panic!("{e}"));
    let status = crate::daemon::reconcile(&f.opts, &*f.store, &f.shared).await;
    assert_eq!(status.updated, ["segment tricky"]);
    assert_eq!(
        by_id(&get(&router, "/", None).await.body, "drift-undone"),
        "1"
    );
}

#[tokio::test]
async fn a_degraded_file_shows_its_diagnostic_on_the_overview() {
    let f = fixture(true).await;
    let page = get(&f.router(None), "/", None).await;
    assert!(
        page.body
            .contains("broken.toml:7:13: unknown operator `near`"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"read-only\""), "{}", page.body);
}

#[tokio::test]
async fn writes_need_a_session_a_form_token_and_the_consoles_origin() {
    let f = fixture(false).await;
    // Read-only without a token: no sign-in, every write refused.
    let read_only = f.router(None);
    let home = get(&read_only, "/", None).await;
    assert!(home.body.contains("id=\"read-only\""));
    let refused = post(&read_only, "/deliveries/1/requeue", "csrf=x", None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let router = f.router(Some(TOKEN));
    let wrong = post(&router, "/console/signin", "token=nope", None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());
    let (cookie, csrf) = sign_in(&router).await;

    // A run, through the console, makes deliveries; one of them is dead.
    let run = post(
        &router,
        "/communications/invoice-email/run",
        &format!("csrf={csrf}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(run.status, StatusCode::SEE_OTHER, "{}", run.body);
    let listed = |path: &'static str| {
        let router = router.clone();
        async move {
            get(&router, path, None)
                .await
                .body
                .matches("class=\"delivery\"")
                .count()
        }
    };
    assert!(listed("/deliveries?communication=invoice-email&since=2000-01-01").await > 0);
    assert_eq!(listed("/deliveries?since=2999-01-01").await, 0);
    assert_eq!(listed("/deliveries?until=2000-01-01").await, 0);
    assert_eq!(listed("/deliveries?communication=capped").await, 0);
    let id: i64 = sqlx::query_scalar("SELECT MIN(id) FROM segd_outbox")
        .fetch_one(&f.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("UPDATE segd_outbox SET status = 'dead', attempts = 8, last_error = 'gave up' WHERE id = $1")
        .bind(id)
        .execute(&f.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A post that is no form at all is refused the same way.
    let bare = Request::post(format!("/deliveries/{id}/requeue"))
        .header(header::HOST, HOST)
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(send(&router, bare).await.status, StatusCode::UNAUTHORIZED);
    let status = async || -> String {
        sqlx::query_scalar("SELECT status FROM segd_outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&f.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let path = format!("/deliveries/{id}/requeue");
    // No session, no form token, a wrong one, another site: refused.
    assert_eq!(
        post(&router, &path, &format!("csrf={csrf}"), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&router, &path, "", Some(&cookie)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(&router, &path, "csrf=guess", Some(&cookie))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post_from(
            &router,
            &path,
            &format!("csrf={csrf}"),
            Some(&cookie),
            "http://evil.test"
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status().await, "dead");
    let page = get(&router, &format!("/deliveries/{id}"), Some(&cookie)).await;
    assert_eq!(by_id(&page.body, "last-error"), "gave up");
    assert!(page.body.contains("id=\"requeue\""));
    // With the session and its token: re-queued, then back to the delivery.
    let done = post(&router, &path, &format!("csrf={csrf}"), Some(&cookie)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(
        done.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some(format!("/deliveries/{id}").as_str())
    );
    assert_eq!(status().await, "pending");
    // A run over max_recipients is held; releasing it sends it.
    let capped = "/communications/capped";
    let held = post(
        &router,
        &format!("{capped}/run"),
        &format!("csrf={csrf}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(held.status, StatusCode::SEE_OTHER, "{}", held.body);
    let page = get(&router, capped, Some(&cookie)).await;
    assert!(page.body.contains("id=\"release\""), "{}", page.body);
    let released = post(
        &router,
        &format!("{capped}/release"),
        &format!("csrf={csrf}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(released.status, StatusCode::SEE_OTHER, "{}", released.body);
    let page = get(&router, capped, Some(&cookie)).await;
    assert!(!page.body.contains("id=\"release\""), "{}", page.body);
    assert!(page.body.contains("held (released)"), "{}", page.body);
    // Signed out, the session no longer acts.
    let out = post(
        &router,
        "/console/signout",
        &format!("csrf={csrf}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        post(&router, &path, &format!("csrf={csrf}"), Some(&cookie))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_preview_renders_the_message_a_run_would_send_a_member() {
    let f = fixture(false).await;
    let router = f.router(None);
    let members = get(&router, "/segments/open-invoices", None).await;
    let ids: Vec<&str> = members
        .body
        .split("<tr class=\"member\"><td><code>")
        .skip(1)
        .filter_map(|s| s.split('<').next())
        .collect();
    assert!(!ids.is_empty());
    let mut rendered = 0;
    for id in ids {
        let page = get(
            &router,
            &format!("/communications/invoice-email?member={id}"),
            None,
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        if page.body.contains("id=\"preview-subject\"") {
            assert!(
                by_id(&page.body, "preview-subject").starts_with("Invoice "),
                "{}",
                page.body
            );
            rendered += 1;
        } else {
            assert!(
                page.body.contains("would send this customer nothing"),
                "{}",
                page.body
            );
        }
    }
    assert!(rendered > 0);
    let nobody = get(&router, "/communications/invoice-email?member=nobody", None).await;
    assert!(nobody.body.contains("No customer has the id nobody"));
}
