//! The console's pages through `Router::oneshot` (no socket), over a real
//! SQLite file holding demo billing data and the example definitions, applied
//! by a reconcile and sampled twice: the fixture and the requests here, the
//! read-only pages in `pages`, the forms that write in `writes`.

mod pages;
mod writes;

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
