//! The web console in a real headless Chromium, driven over WebDriver
//! (chromedriver on a free loopback port, plain HTTP): a real `segd daemon` on
//! the repository's example definitions and 2,000 demo customers in SQLite.
//! One browser session visits every page, signs in and out, runs a webhook
//! communication against a closed port, is refused a re-queue without a
//! session, re-queues the dead delivery once signed in, sees a degraded file
//! on the overview, and checks that a customer named as HTML stays text.
//!
//! Without chromium and chromedriver on the PATH the test says it skipped and
//! passes, except in CI (`CI` set), where they are required. Screenshots of
//! the pages go under the fixture's `screenshots/`, and also to
//! `SEGD_SCREENSHOTS_DIR` when that is set (how the README's images are made).

use crate::cli_plan::TestDb;
use crate::daemon::{
    Daemon, TOKEN, free_port, header_of, http_with_head, members_in_db, migrate, segd, text,
    wait_until,
};
use crate::support::{Fixture, block_on, strings};
use fantoccini::{Client, ClientBuilder, Locator};
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A Standard Webhooks secret (`whsec_` + base64 of 24 bytes).
const SECRET: &str = "whsec_c2VnZC1icm93c2VyLXRlc3Qtc2VjcmV0LTEyMzQ=";
/// The name of the customer that must show as text.
const XSS_NAME: &str = "<img src=x onerror=window.__xss=1>";
/// The probe segment: the one customer with an address at probe.test.
const PROBE_SEGMENT: &str = "[segment]\nname = \"probe\"\ndescription = \"The browser test's customer\"\n\n\
     [[filter]]\ntype = \"customer\"\nemail = { ends_with = \"@probe.test\" }\n";
/// A segment file that does not validate (an unknown key on line 3).
const BROKEN_SEGMENT: &str = "[segment]\nname = \"broken\"\nbogus = 1\n";

/// A manual webhook communication to the probe segment, sent to `port`.
fn probe_hook(port: u16) -> String {
    format!(
        "[communication]\nname = \"probe-hook\"\nsegment = \"probe\"\nevent = \"payment_reminder\"\n\
         channel = \"webhook\"\n\n[trigger]\ntype = \"manual\"\n\n[webhook]\n\
         url = \"http://127.0.0.1:{port}/hook\"\nsecret_env = \"SEGD_WEBHOOK_SECRET\"\ntimeout = \"2s\"\n"
    )
}

/// The first file called `name` on the PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Chromium and chromedriver, or `None` after saying the test skipped (a
/// failure in CI).
fn browser_tools(test: &str) -> Option<(PathBuf, PathBuf)> {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|n| on_path(n));
    match (chromium, on_path("chromedriver")) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: chromium/chromedriver not found (CI installs them)"
            );
            eprintln!("{test}: skipped: chromium/chromedriver not found");
            None
        }
    }
}

/// chromedriver on a free loopback port, killed on drop. (It keeps
/// connections open, so readiness is its port accepting one.)
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(binary: &Path, log: &Path) -> Self {
        let port = free_port();
        let file = std::fs::File::create(log).expect("a chromedriver log");
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("a log handle"))
            .stderr(file)
            .spawn()
            .expect("start chromedriver");
        let mut d = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let up = wait_until(Duration::from_secs(20), || {
            d.child.try_wait().ok().flatten().is_some()
                || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(
            up && d.child.try_wait().ok().flatten().is_none(),
            "chromedriver did not answer on {}: {}",
            d.url,
            std::fs::read_to_string(log).unwrap_or_default()
        );
        d
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session.
async fn session(driver: &Driver, chromium: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_string(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// A webhook receiver on `port` that answers every request with 204, in a
/// thread of its own; counts the requests.
fn receiver(port: u16) -> Arc<AtomicUsize> {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the webhook port");
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 65536];
            let mut seen = Vec::new();
            // Read the head and the body (Content-Length) or until a pause.
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                if complete(&seen) {
                    break;
                }
            }
            counted.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    hits
}

/// Whether `raw` holds a whole HTTP request with a Content-Length body.
fn complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    raw.len() >= end + 4 + length
}

/// The browser side of the test: the session, where screenshots go.
struct Visit<'a> {
    c: &'a Client,
    daemon: &'a Daemon,
    shots: PathBuf,
}

impl Visit<'_> {
    /// Opens `path`, checks it is not an error page and carries no script,
    /// and takes a screenshot named `name`.
    async fn page(&self, path: &str, name: &str) -> String {
        self.c
            .goto(&self.daemon.url(path))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
        self.checked(path, name).await
    }

    /// The current page checked as [`Visit::page`] does.
    async fn checked(&self, what: &str, name: &str) -> String {
        let source = self.c.source().await.expect("the page source");
        assert!(
            !self.has("#error").await,
            "{what} is an error page:\n{source}"
        );
        assert!(
            !source.contains("<script"),
            "{what} carries a script: the console works without JavaScript"
        );
        self.shot(name).await;
        source
    }

    async fn shot(&self, name: &str) {
        let png = self.c.screenshot().await.expect("a screenshot");
        let file = self.shots.join(format!("{name}.png"));
        std::fs::write(&file, &png).expect("write a screenshot");
        if let Some(dir) = std::env::var_os("SEGD_SCREENSHOTS_DIR") {
            std::fs::create_dir_all(&dir).expect("create SEGD_SCREENSHOTS_DIR");
            std::fs::copy(&file, Path::new(&dir).join(format!("console-{name}.png")))
                .expect("copy a screenshot");
        }
    }

    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    /// Whether the page holds an element matching `css`.
    async fn has(&self, css: &str) -> bool {
        !self
            .c
            .find_all(Locator::Css(css))
            .await
            .expect("find elements")
            .is_empty()
    }

    async fn text(&self, css: &str) -> String {
        self.element(css)
            .await
            .text()
            .await
            .expect("an element's text")
    }

    /// Clicks `css` and waits until the page it leads to has loaded.
    async fn click(&self, css: &str) {
        self.mark_stale().await;
        self.element(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
        self.wait_loaded(css).await;
    }

    /// Marks the current document, so that [`Visit::wait_loaded`] can tell
    /// the next one from it.
    async fn mark_stale(&self) {
        self.c
            .execute("document.documentElement.dataset.stale = '1';", vec![])
            .await
            .expect("mark the page");
    }

    /// Waits up to 10 s for a new document, fully loaded, after `what`.
    async fn wait_loaded(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let fresh = "return document.readyState === 'complete' \
                     && document.documentElement.dataset.stale === undefined;";
        while self.c.execute(fresh, vec![]).await.ok() != Some(serde_json::json!(true)) {
            assert!(Instant::now() < deadline, "no new page after {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reloads `path` until `css`'s text satisfies `ok`, for up to 20 s;
    /// returns the last text.
    async fn until(&self, path: &str, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.c.goto(&self.daemon.url(path)).await.expect("open");
            let found = match self.c.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if ok(&found) || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn sign_in(&self) {
        self.c
            .goto(&self.daemon.url("/console/signin"))
            .await
            .expect("open the sign-in page");
        self.element("#token")
            .await
            .send_keys(TOKEN)
            .await
            .expect("type the token");
        self.click("form.act button[type=submit]").await;
        assert!(
            self.has("form[action='/console/signout']").await,
            "not signed in after entering the token:\n{}",
            self.c.source().await.unwrap_or_default()
        );
    }
}

/// The probe delivery's id and status, once it exists (read from a thread of
/// its own: the query runs a runtime of its own).
fn probe_delivery(url: &str) -> Option<(String, String)> {
    let url = url.to_string();
    let rows = std::thread::spawn(move || {
        strings(
            &url,
            "SELECT CAST(o.id AS TEXT) || ' ' || o.status FROM segd_outbox o \
             JOIN segd_trigger_runs r ON r.seq = o.run WHERE r.communication = 'probe-hook'",
        )
    })
    .join()
    .expect("read the probe delivery");
    rows.first()
        .and_then(|row| row.split_once(' '))
        .map(|(id, status)| (id.to_string(), status.to_string()))
}

#[test]
fn the_console_works_in_headless_chromium() {
    let test = "the_console_works_in_headless_chromium";
    let Some((chromium, chromedriver)) = browser_tools(test) else {
        return;
    };
    let started = Instant::now();
    let f = Fixture::example();
    let hook_port = free_port();
    f.write("segments.d/probe.toml", PROBE_SEGMENT)
        .write("communications.d/probe-hook.toml", &probe_hook(hook_port));
    let db = TestDb::sqlite(&f);
    migrate(f.path(), &db.url);
    let o = segd(
        f.path(),
        &db.url,
        &["demo-data", "--customers", "2000"],
        &[],
    );
    assert!(o.status.success(), "demo-data: {}", text(&o));
    db.exec(&format!(
        "INSERT INTO customers (id, name, email, country, custom_data, created_at) \
         VALUES ('cus_probe', '{XSS_NAME}', 'xss@probe.test', 'DE', '{{}}', '2026-01-01 00:00:00'); \
         INSERT INTO invoices (id, customer_id, number, status, amount_cents, currency, due_date, created_at) \
         VALUES ('inv_probe', 'cus_probe', 'PROBE-1', 'overdue', 1000, 'EUR', '2026-01-01', '2025-12-01 00:00:00');"
    ));
    let daemon = Daemon::start(
        f.path(),
        &db.url,
        &[],
        &[
            ("SEGD_API_TOKEN", TOKEN),
            ("SEGD_WEBHOOK_SECRET", SECRET),
            ("SEGD_RETRY_SCHEDULE", "0s"),
        ],
    );
    daemon.wait_ready();
    let shots = f.path().join("screenshots");
    std::fs::create_dir_all(&shots).expect("a screenshot folder");
    let driver = Driver::start(&chromedriver, &f.path().join("chromedriver.log"));

    block_on(async {
        let c = session(&driver, &chromium).await;
        let v = Visit {
            c: &c,
            daemon: &daemon,
            shots,
        };
        browse(&v, &db.url, hook_port, f.path()).await;
        c.close().await.expect("end the WebDriver session");
    });
    eprintln!("{test}: {:.1} s", started.elapsed().as_secs_f64());
}

async fn browse(v: &Visit<'_>, url: &str, hook_port: u16, dir: &Path) {
    // Read-only until signed in: the overview offers to sign in.
    let overview = v.page("/", "overview-signed-out").await;
    assert!(overview.contains("id=\"sign-in\""), "no sign-in link");
    assert!(v.text("#role").await.starts_with("Leader"));

    // Run the webhook communication: its one delivery meets a closed port and,
    // with a retry schedule of one attempt, is dead.
    v.sign_in().await;
    v.page("/communications/probe-hook", "communication-before-run")
        .await;
    v.click("#run-now").await;
    v.checked("the run's redirect", "communication-after-run")
        .await;
    let mut delivery = None;
    let dead = wait_until(Duration::from_secs(20), || {
        delivery = probe_delivery(url);
        delivery
            .as_ref()
            .is_some_and(|(_, s)| s == "dead" || s == "failed")
    });
    assert!(dead, "the probe delivery did not fail: {delivery:?}");
    let (id, status) = delivery.expect("the probe delivery");
    let page = format!("/deliveries/{id}");
    v.page(&page, "delivery-dead").await;
    assert_eq!(v.text("#status").await, status);
    let attempts = v.text("#attempts").await;
    assert!(!v.text("#last-error").await.is_empty());

    // Signed out, a re-queue posted from the console's own page is refused.
    v.click("form[action='/console/signout'] button").await;
    assert!(v.has("#sign-in").await, "still signed in after signing out");
    v.mark_stale().await;
    v.c.execute(
        "const f = document.createElement('form'); f.method = 'post'; \
         f.action = arguments[0]; const i = document.createElement('input'); \
         i.type = 'hidden'; i.name = 'csrf'; i.value = 'forged'; f.appendChild(i); \
         document.body.appendChild(f); f.submit();",
        vec![serde_json::json!(format!("{page}/requeue"))],
    )
    .await
    .expect("post a re-queue without a session");
    v.wait_loaded("the forged re-queue").await;
    let refused = v.text("#error").await;
    assert_eq!(refused, "sign in with the API token first");
    assert!(v.c.title().await.expect("a title").starts_with("401"));
    v.shot("requeue-refused").await;
    v.page(&page, "delivery-refused").await;
    assert_eq!(
        v.text("#status").await,
        status,
        "re-queued without a session"
    );
    assert_eq!(v.text("#attempts").await, attempts);
    assert_eq!(probe_delivery(url).map(|(_, s)| s), Some(status.clone()));

    // Signed in, the re-queue reaches a receiver now listening: sent.
    let hits = receiver(hook_port);
    v.sign_in().await;
    v.page(&page, "delivery-requeue").await;
    v.click("#requeue").await;
    let sent = v.until(&page, "#status", |s| s == "sent").await;
    assert_eq!(sent, "sent", "the re-queued delivery was not sent");
    assert!(hits.load(Ordering::SeqCst) >= 1, "the receiver got nothing");
    v.shot("delivery").await;

    // Every page with its key content.
    v.page("/", "overview").await;
    assert_eq!(v.text("#degraded").await, "None: every file is valid.");
    v.page("/segments", "segments").await;
    assert!(v.text("#segment-total").await.starts_with("7 segment(s)"));
    v.text("#segment-open-invoices").await;
    let shown = v
        .until("/segments/open-invoices", "#member-count", |s| {
            s.parse::<u64>().is_ok()
        })
        .await;
    let counted = members_in_db(url, "open-invoices").expect("segment members --count");
    assert_eq!(
        shown,
        counted.to_string(),
        "the segment page's member count"
    );
    v.checked("/segments/open-invoices", "segment").await;
    let rows =
        v.c.find_all(Locator::Css("#members tr.member"))
            .await
            .expect("find");
    assert_eq!(
        rows.len() as u64,
        counted.min(50),
        "the first page of members"
    );

    // A customer named as HTML shows as that text, and its markup never runs.
    v.page("/segments/probe", "segment-probe").await;
    assert!(
        v.text("#members").await.contains(XSS_NAME),
        "the customer's name does not show as text"
    );
    assert!(
        !v.has("#members img").await,
        "the customer's name became markup"
    );
    let xss =
        v.c.execute("return typeof window.__xss;", vec![])
            .await
            .expect("run a script");
    assert_eq!(xss, serde_json::json!("undefined"));

    v.page("/communications", "communications").await;
    assert!(
        v.text("#communication-total")
            .await
            .starts_with("4 communication(s)")
    );
    v.page("/communications/probe-hook", "communication").await;
    assert!(v.text("#summary").await.contains("payment_reminder"));
    assert!(!v.text("#runs").await.is_empty(), "no run listed");
    v.page("/deliveries?communication=probe-hook", "deliveries")
        .await;
    assert!(v.text("#deliveries").await.contains("sent"));
    let history = v.page("/history", "history").await;
    assert!(history.contains("href=\"/history/"), "no apply listed");
    v.click("#applies a[href^='/history/']").await;
    v.checked("an apply", "apply").await;
    assert!(!v.text("#changes").await.is_empty());

    // A file that does not validate shows on the overview with file:line.
    std::fs::write(dir.join("segments.d/broken.toml"), BROKEN_SEGMENT).expect("write a file");
    let degraded = v
        .until("/", "#degraded", |s| s.contains("broken.toml:3"))
        .await;
    assert!(
        degraded.contains("segments.d/broken.toml:3"),
        "the overview does not show the degraded file: {degraded}"
    );
    v.checked("/ (degraded)", "overview-degraded").await;

    // The policy lets no inline script run: the pages need none.
    let (code, head, _) = http_with_head("GET", &v.daemon.url("/"), &[], "").expect("GET /");
    assert_eq!(code, 200);
    let csp = header_of(&head, "content-security-policy").expect("a CSP");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
}
