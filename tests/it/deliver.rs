//! Delivery end to end (SPEC §3, §5 `trigger` and `deliveries`), with real parts:
//! the `segd` binary, an axum webhook receiver on loopback that verifies every
//! request with the `standardwebhooks` crate and fails on purpose, an SMTP server
//! (mailin-embedded) on loopback, `.eml` files, and `kill -9` of a sending process.

use crate::cli_plan::TestDb;
use crate::support::{Fixture, block_on, count, first_line_then_close, strings};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse as _;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod destinations;
mod reach;
mod secrets;

/// The variable the test communications name in `secret_env`.
const SECRET_ENV: &str = "SEGD_IT_HOOK_SECRET";
/// Settings a developer's shell might hold; every run starts without them.
const SCRUB: &[&str] = &[
    "SEGD_DATABASE_URL",
    "SEGD_SMTP_URL",
    "SEGD_SMTP_USER",
    "SEGD_SMTP_PASSWORD",
    "SEGD_OUTBOX_DIR",
    "SEGD_RETRY_SCHEDULE",
    "SEGD_DELIVERY_LEASE",
    "SEGD_DELIVERY_CONCURRENCY",
    "SEGD_WEBHOOK_SECRET",
    "SEGD_LISTEN",
    "SEGD_RESYNC",
    "SEGD_API_TOKEN",
    "SEGD_LOG",
    SECRET_ENV,
];
const TS: &str = "2026-01-05T10:00:00Z";

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(o: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr\n{}",
        code(o),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A fresh Standard Webhooks secret, `whsec_<base64>`.
fn new_secret() -> String {
    format!("whsec_{}", base64(&rand::random::<[u8; 24]>()))
}

/// The deliveries' idempotency keys, as segd derives them from an outbox row
/// `o` and its run `u`.
const KEYS: &str = "SELECT u.id || ':' || o.customer_id || COALESCE(':' || o.invoice_id, '') \
                    FROM segd_outbox o JOIN segd_trigger_runs u ON u.seq = o.run";

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn rfc3339(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {v}"))
}

// ---------------------------------------------------------------------------
// Billing data (SPEC §4 storage forms; the same SQL works on PostgreSQL)
// ---------------------------------------------------------------------------

struct Billing {
    customers: Vec<(String, String, Option<String>, String)>,
    invoices: Vec<(String, String, String, String)>,
}

impl Billing {
    /// Seven customers (six in DE) and their invoices, like the conformance kit's:
    /// email_invoice reaches i1 i3 i4 i5 i9 i10; payment_reminder reaches c1 (i1)
    /// and c2 (i3). c7 has no email address.
    fn small() -> Self {
        let c = |id: &str, name: &str, email: Option<&str>, country: &str| {
            (
                id.to_string(),
                name.to_string(),
                email.map(str::to_string),
                country.to_string(),
            )
        };
        let i = |id: &str, cust: &str, status: &str, due: &str| {
            (
                id.to_string(),
                cust.to_string(),
                status.to_string(),
                due.to_string(),
            )
        };
        Self {
            customers: vec![
                c("c1", "Anna Schmidt", Some("anna.schmidt@example.com"), "DE"),
                c("c2", "Ben Müller", Some("ben.mueller@example.com"), "DE"),
                c("c3", "Carla Rossi", Some("carla@example.org"), "DE"),
                c("c4", "David Lee", Some("david.lee@example.net"), "DE"),
                c("c5", "Eva Dupont", Some("eva@example.fr"), "FR"),
                c("c6", "Frank Berg", Some("frank@example.de"), "DE"),
                c("c7", "Greta Nomail", None, "DE"),
            ],
            invoices: vec![
                i("i1", "c1", "open", "2020-01-10"),
                i("i2", "c1", "paid", "2020-01-01"),
                i("i3", "c2", "overdue", "2020-02-01"),
                i("i4", "c2", "partially_paid", "2099-01-01"),
                i("i5", "c4", "open", "2099-03-01"),
                i("i6", "c5", "open", "2020-01-01"),
                i("i7", "c6", "void", "2020-01-01"),
                i("i8", "c6", "draft", "2020-01-01"),
                i("i9", "c4", "open", "2099-04-01"),
                i("i10", "c7", "open", "2099-05-01"),
            ],
        }
    }

    /// `n` German customers with one open invoice each: `n` email_invoice deliveries.
    fn many(n: usize) -> Self {
        Self {
            customers: (0..n)
                .map(|k| {
                    (
                        format!("k{k:04}"),
                        format!("Customer {k}"),
                        Some(format!("k{k}@example.com")),
                        "DE".to_string(),
                    )
                })
                .collect(),
            invoices: (0..n)
                .map(|k| {
                    (
                        format!("ki{k:04}"),
                        format!("k{k:04}"),
                        "open".to_string(),
                        "2099-01-01".to_string(),
                    )
                })
                .collect(),
        }
    }

    fn name_of(&self, customer: &str) -> &str {
        self.customers
            .iter()
            .find(|c| c.0 == customer)
            .map(|c| c.1.as_str())
            .unwrap_or_default()
    }

    fn email_of(&self, customer: &str) -> Option<&str> {
        self.customers
            .iter()
            .find(|c| c.0 == customer)
            .and_then(|c| c.2.as_deref())
    }

    fn sql(&self) -> String {
        let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let customers: Vec<String> = self
            .customers
            .iter()
            .map(|(id, name, email, country)| {
                format!(
                    "({}, {}, {}, {}, '{{}}', '{TS}')",
                    q(id),
                    q(name),
                    email.as_deref().map_or("NULL".to_string(), q),
                    q(country)
                )
            })
            .collect();
        let invoices: Vec<String> = self
            .invoices
            .iter()
            .map(|(id, cust, status, due)| {
                format!(
                    "({}, {}, {}, {}, 12345, 'EUR', '{due}', '{TS}')",
                    q(id),
                    q(cust),
                    q(&format!("N-{id}")),
                    q(status)
                )
            })
            .collect();
        format!(
            "INSERT INTO customers (id, name, email, country, custom_data, created_at) VALUES {};\n\
             INSERT INTO invoices (id, customer_id, number, status, amount_cents, currency, due_date, created_at) VALUES {};",
            customers.join(", "),
            invoices.join(", ")
        )
    }
}

// ---------------------------------------------------------------------------
// The segd side: a definitions folder, a database, the environment of each run
// ---------------------------------------------------------------------------

const SEGMENT: &str =
    "[segment]\nname = \"targets\"\n\n[[filter]]\ntype = \"customer\"\ncountry = \"DE\"\n";

fn webhook_comm(name: &str, event: &str, url: &str, extra: &str) -> String {
    format!(
        "[communication]\nname = \"{name}\"\nsegment = \"targets\"\nevent = \"{event}\"\nchannel = \"webhook\"\n{extra}\n\n\
         [trigger]\ntype = \"manual\"\n\n\
         [webhook]\nurl = \"{url}\"\nsecret_env = \"{SECRET_ENV}\"\ntimeout = \"1s\"\n"
    )
}

const INVOICE_TEMPLATE: &str = "Hello {{ customer.name }},\n\n\
{% for invoice in invoices %}invoice {{ invoice.number }}: {{ invoice.amount_cents }} {{ invoice.currency }}, due {{ invoice.due_date }}\n{% endfor %}\n\
-- {{ communication.name }} for {{ segment.name }}\n";

fn email_comm(name: &str) -> String {
    format!(
        "[communication]\nname = \"{name}\"\nsegment = \"targets\"\nevent = \"email_invoice\"\nchannel = \"email\"\n\n\
         [trigger]\ntype = \"manual\"\n\n\
         [email]\nfrom = \"Billing <billing@acme.test>\"\nsubject = \"Your invoice, {{{{ customer.name }}}}\"\n\
         template = \"templates/invoice.txt\"\n"
    )
}

struct Bench {
    f: Fixture,
    db: TestDb,
    env: BTreeMap<String, String>,
}

impl Bench {
    /// A folder holding the `targets` segment, a SQLite database, a fresh secret
    /// and a short retry schedule.
    fn sqlite() -> Self {
        let f = Fixture::empty();
        let db = TestDb::sqlite(&f);
        Self::with_db(f, db)
    }

    /// [`Bench::sqlite`] on a fresh PostgreSQL database, or `None` (skipped)
    /// without `SEGD_TEST_POSTGRES_URL`.
    fn postgres(test: &str) -> Option<Self> {
        TestDb::postgres(test).map(|db| Self::with_db(Fixture::empty(), db))
    }

    fn with_db(f: Fixture, db: TestDb) -> Self {
        f.write("segments.d/targets.toml", SEGMENT);
        f.write("templates/invoice.txt", INVOICE_TEMPLATE);
        let mut env = BTreeMap::new();
        env.insert(SECRET_ENV.to_string(), new_secret());
        env.insert("SEGD_RETRY_SCHEDULE".to_string(), "0s,1s,1s".to_string());
        Self { f, db, env }
    }

    fn secret(&self) -> &str {
        &self.env[SECRET_ENV]
    }

    fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.env.insert(k.to_string(), v.to_string());
        self
    }

    fn unset(&mut self, k: &str) -> &mut Self {
        self.env.remove(k);
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_segd"));
        c.env("NO_COLOR", "1");
        for k in SCRUB {
            c.env_remove(k);
        }
        c.envs(&self.env)
            .args(args)
            .arg("--dir")
            .arg(self.f.path())
            .args(["--database-url", &self.db.url])
            .stdin(Stdio::null());
        c
    }

    fn segd(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run segd")
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start segd")
    }

    /// Applies the definitions (creating the schema), then loads the billing rows.
    fn setup(&self, billing: &Billing) {
        let o = self.segd(&["apply", "--auto-approve"]);
        assert_eq!(code(&o), 0, "apply: {}", text(&o));
        self.db.exec(&billing.sql());
    }

    /// `segd deliveries --format json [args]`.
    fn deliveries(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["deliveries", "--format", "json"];
        all.extend_from_slice(args);
        let o = self.segd(&all);
        assert_eq!(code(&o), 0, "{}", text(&o));
        match serde_json::from_slice(&o.stdout) {
            Ok(Value::Array(rows)) => rows,
            _ => panic!("deliveries --format json is not a JSON array: {}", text(&o)),
        }
    }

    /// `segd daemon --once`: reconciles and runs due work (retries included).
    fn once(&self) -> Output {
        let o = self.segd(&["daemon", "--once", "--listen", "127.0.0.1:0"]);
        assert_eq!(code(&o), 0, "daemon --once: {}", text(&o));
        o
    }

    /// Runs `daemon --once` between polls until no delivery is pending or sending.
    fn drive(&self, timeout: Duration) -> Vec<Value> {
        self.drive_seen(timeout, &mut Vec::new())
    }

    /// [`Bench::drive`], keeping every row state seen on the way in `seen`.
    fn drive_seen(&self, timeout: Duration, seen: &mut Vec<Value>) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let rows = self.deliveries(&[]);
            seen.extend(rows.iter().cloned());
            if !rows
                .iter()
                .any(|r| matches!(status(r), "pending" | "sending"))
            {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "deliveries still pending after {timeout:?}: {rows:#?}"
            );
            std::thread::sleep(Duration::from_millis(1100));
            self.once();
        }
    }

    fn outbox_keys(&self) -> Vec<String> {
        strings(&self.db.url, &format!("{KEYS} ORDER BY o.id"))
    }
}

fn status(row: &Value) -> &str {
    row["status"].as_str().unwrap_or_default()
}

fn invoice_of_row(row: &Value) -> String {
    row["invoice_ids"][0]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn by_invoice(rows: &[Value]) -> BTreeMap<String, Value> {
    rows.iter()
        .map(|r| (invoice_of_row(r), r.clone()))
        .collect()
}

// ---------------------------------------------------------------------------
// The webhook receiver
// ---------------------------------------------------------------------------

/// What the receiver answers.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// A status with `Retry-After: N` (seconds).
    RetryAfter(u16, u64),
    /// A status with `Retry-After` as an HTTP date.
    RetryAt(u16, &'static str),
    /// Say nothing for this long (past the sender's timeout), then 200.
    Hang(Duration),
}

/// One request as it arrived.
#[derive(Debug, Clone)]
struct Hit {
    id: String,
    timestamp: String,
    signature: String,
    content_type: String,
    body: Value,
    /// `standardwebhooks::Webhook::verify` with the test's secret.
    verified: Result<(), String>,
    at: DateTime<Utc>,
    /// The status answered (`None` while in flight or when hung).
    status: Option<u16>,
}

impl Hit {
    fn invoice(&self) -> String {
        self.body["invoices"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Decides the reply from the parsed body and the attempt number of this
/// webhook-id (1 for the first request carrying it).
type Script = dyn Fn(&Value, usize) -> Reply + Send + Sync;

struct ReceiverState {
    webhook: standardwebhooks::Webhook,
    script: Box<Script>,
    delay: Duration,
    hits: Mutex<Vec<Hit>>,
    arrived: AtomicUsize,
    inflight: AtomicUsize,
    max_inflight: AtomicUsize,
}

struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
    rt: Option<tokio::runtime::Runtime>,
}

async fn receive(
    State(s): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    s.arrived.fetch_add(1, Ordering::SeqCst);
    let now_inflight = s.inflight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_inflight.fetch_max(now_inflight, Ordering::SeqCst);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let hit = Hit {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        verified: s.webhook.verify(&body, &headers).map_err(|e| e.to_string()),
        body: parsed.clone(),
        at: Utc::now(),
        status: None,
    };
    let (index, nth) = {
        let mut hits = lock(&s.hits);
        let nth = hits.iter().filter(|h| h.id == hit.id).count() + 1;
        hits.push(hit);
        (hits.len() - 1, nth)
    };
    let reply = (s.script)(&parsed, nth);
    tokio::time::sleep(s.delay).await;
    let (status, retry_after) = match reply {
        Reply::Status(st) => (st, None),
        Reply::RetryAfter(st, secs) => (st, Some(secs.to_string())),
        Reply::RetryAt(st, date) => (st, Some(date.to_string())),
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            s.inflight.fetch_sub(1, Ordering::SeqCst);
            return (StatusCode::OK, "late").into_response();
        }
    };
    lock(&s.hits)[index].status = Some(status);
    s.inflight.fetch_sub(1, Ordering::SeqCst);
    let mut b = axum::http::Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(value) = retry_after {
        b = b.header("retry-after", value);
    }
    b.body(axum::body::Body::from(if status < 300 {
        "{\"ok\":true}"
    } else {
        "{\"error\":\"scripted\"}"
    }))
    .expect("a response")
}

impl Receiver {
    /// A receiver answering 500 until `accept` is set, then 200.
    fn failing_until(secret: &str, accept: &Arc<AtomicBool>) -> Self {
        let flag = accept.clone();
        Self::start(secret, Duration::ZERO, move |_, _| {
            Reply::Status(if flag.load(Ordering::SeqCst) {
                200
            } else {
                500
            })
        })
    }

    /// A receiver on 127.0.0.1:0 verifying with `secret`, answering per `script`
    /// after `delay`.
    fn start(
        secret: &str,
        delay: Duration,
        script: impl Fn(&Value, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let state = Arc::new(ReceiverState {
            webhook: standardwebhooks::Webhook::new(secret).expect("a valid secret"),
            script: Box::new(script),
            delay,
            hits: Mutex::new(Vec::new()),
            arrived: AtomicUsize::new(0),
            inflight: AtomicUsize::new(0),
            max_inflight: AtomicUsize::new(0),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("address").port();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            state,
            rt: Some(rt),
        }
    }

    /// A receiver that accepts everything at once.
    fn ok(secret: &str) -> Self {
        Self::start(secret, Duration::ZERO, |_, _| Reply::Status(200))
    }

    fn hits(&self) -> Vec<Hit> {
        lock(&self.state.hits).clone()
    }

    fn arrived(&self) -> usize {
        self.state.arrived.load(Ordering::SeqCst)
    }

    /// Every request carried a valid Standard Webhooks signature.
    fn assert_all_verified(&self) {
        let bad: Vec<_> = self
            .hits()
            .into_iter()
            .filter(|h| h.verified.is_err())
            .map(|h| (h.id, h.verified))
            .collect();
        assert!(bad.is_empty(), "requests failing verification: {bad:?}");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

// ---------------------------------------------------------------------------
// The SMTP server (mailin-embedded)
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Mail {
    rcpts: Vec<String>,
    data: Vec<u8>,
}

#[derive(Clone)]
struct SmtpSink {
    mails: Arc<Mutex<Vec<Mail>>>,
    /// How long each message takes to accept.
    delay: Duration,
    rcpts: Vec<String>,
    data: Vec<u8>,
}

impl mailin_embedded::Handler for SmtpSink {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin_embedded::Response {
        self.rcpts = to.to_vec();
        self.data.clear();
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        std::thread::sleep(self.delay);
        lock(&self.mails).push(Mail {
            rcpts: std::mem::take(&mut self.rcpts),
            data: std::mem::take(&mut self.data),
        });
        mailin_embedded::response::OK
    }
}

/// Starts an SMTP server on 127.0.0.1:0 in a thread of its own (it lives until the
/// test binary exits); returns its port and what it received.
fn start_smtp() -> (u16, Arc<Mutex<Vec<Mail>>>) {
    start_smtp_taking(Duration::ZERO)
}

/// [`start_smtp`], taking `delay` to accept each message.
fn start_smtp_taking(delay: Duration) -> (u16, Arc<Mutex<Vec<Mail>>>) {
    let mails = Arc::new(Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("address").port();
    let mut server = mailin_embedded::Server::new(SmtpSink {
        mails: mails.clone(),
        delay,
        rcpts: Vec::new(),
        data: Vec::new(),
    });
    server
        .with_name("sink.test")
        // lettre keeps pooled connections open: one thread each, and to spare.
        .with_num_threads(32)
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, mails)
}

/// Checks one message is RFC 5322 (by hand: CRLF lines, header syntax, line
/// length, the required fields) and parses it; returns (to, subject, body).
fn parse_mail(data: &[u8]) -> (String, String, String) {
    let raw = String::from_utf8_lossy(data);
    let (head, _) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no blank CRLF line after the header: {raw}"));
    for line in raw.split("\r\n") {
        assert!(
            !line.contains('\n') && !line.contains('\r'),
            "bare CR or LF: {raw}"
        );
        assert!(line.len() <= 998, "a line over 998 characters: {line}");
    }
    let mut fields = BTreeMap::<String, usize>::new();
    for line in head.split("\r\n") {
        if line.starts_with(' ') || line.starts_with('\t') {
            continue; // folded
        }
        let (name, _) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("not a header field: {line:?} in {raw}"));
        assert!(
            !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':'),
            "bad field name {name:?}"
        );
        *fields.entry(name.to_ascii_lowercase()).or_default() += 1;
    }
    for required in ["from", "date"] {
        assert_eq!(fields.get(required), Some(&1), "{required} once: {raw}");
    }
    for once in ["to", "subject", "message-id"] {
        assert_eq!(fields.get(once), Some(&1), "{once} once: {raw}");
    }
    let msg = mail_parser::MessageParser::default()
        .parse(data)
        .unwrap_or_else(|| panic!("mail-parser cannot parse: {raw}"));
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default();
    assert_eq!(from, "billing@acme.test", "{raw}");
    let date = msg.date().unwrap_or_else(|| panic!("no Date: {raw}"));
    let age = Utc::now().timestamp() - date.to_timestamp();
    assert!((-120..600).contains(&age), "Date {date:?} is not now");
    let id = msg.message_id().unwrap_or_default();
    assert!(id.contains('@'), "Message-ID {id:?}");
    let to = msg
        .to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_string();
    let subject = msg.subject().unwrap_or_default().to_string();
    let body = msg.body_text(0).map(|b| b.into_owned()).unwrap_or_default();
    (to, subject, body)
}

/// The messages carry the rendered data: one per expected invoice, to the
/// customer's address, greeting them by name and naming the invoice.
fn check_mails(billing: &Billing, mails: &[(Option<Vec<String>>, Vec<u8>)], expected: &[&str]) {
    let mut got = BTreeSet::new();
    for (rcpts, data) in mails {
        let (to, subject, body) = parse_mail(data);
        let (inv, cust, _, _) = billing
            .invoices
            .iter()
            .find(|(id, ..)| body.contains(&format!("invoice N-{id}:")))
            .unwrap_or_else(|| panic!("the body names no expected invoice: {body}"));
        let name = billing.name_of(cust);
        assert_eq!(Some(to.as_str()), billing.email_of(cust), "To of {inv}");
        if let Some(rcpts) = rcpts {
            assert!(
                rcpts.iter().any(|r| r.contains(&to)),
                "RCPT {rcpts:?} vs To {to}"
            );
        }
        assert_eq!(subject, format!("Your invoice, {name}"));
        assert!(body.starts_with(&format!("Hello {name},")), "{body}");
        assert!(body.contains("12345 EUR, due"), "{body}");
        assert!(body.contains("-- mail-invoices for targets"), "{body}");
        assert!(got.insert(inv.to_string()), "{inv} mailed twice");
    }
    let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(got, want);
}

// ---------------------------------------------------------------------------
// Webhooks: payload, signatures, outcomes and retries
// ---------------------------------------------------------------------------

fn check_payload(billing: &Billing, h: &Hit, communication: &str, event: &str) {
    let j = &h.body;
    let keys: BTreeSet<&str> = j
        .as_object()
        .unwrap_or_else(|| panic!("body is not an object: {j}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "id",
            "communication",
            "event",
            "occurred_at",
            "customer",
            "invoices"
        ]),
        "{j}"
    );
    assert_eq!(
        j["id"].as_str(),
        Some(h.id.as_str()),
        "body id == webhook-id"
    );
    assert_eq!(j["communication"], communication);
    assert_eq!(j["event"], event);
    let occurred = rfc3339(&j["occurred_at"]);
    assert!(
        (Utc::now() - occurred).num_minutes().abs() < 10,
        "{occurred}"
    );
    assert!(h.content_type.contains("application/json"), "{h:?}");
    let c = &j["customer"];
    for k in ["id", "name", "email", "country", "custom_data"] {
        assert!(c.get(k).is_some(), "customer lacks {k}: {c}");
    }
    let cid = c["id"].as_str().unwrap_or_default();
    assert_eq!(c["name"].as_str(), Some(billing.name_of(cid)));
    assert_eq!(c["email"].as_str(), billing.email_of(cid));
    assert_eq!(c["country"], "DE");
    assert!(c["custom_data"].is_object(), "{c}");
    let invoices = j["invoices"].as_array().expect("invoices is a list");
    assert!(!invoices.is_empty());
    for inv in invoices {
        for k in [
            "id",
            "number",
            "status",
            "amount_cents",
            "currency",
            "due_date",
            "created_at",
        ] {
            assert!(inv.get(k).is_some(), "invoice lacks {k}: {inv}");
        }
        let id = inv["id"].as_str().unwrap_or_default();
        let row = billing
            .invoices
            .iter()
            .find(|i| i.0 == id)
            .unwrap_or_else(|| panic!("unknown invoice {id}"));
        assert_eq!(row.1, cid, "invoice {id} belongs to {cid}");
        assert_eq!(inv["number"], format!("N-{id}"));
        assert_eq!(inv["status"], row.2);
        assert_eq!(inv["amount_cents"], 12345);
        assert_eq!(inv["currency"], "EUR");
        assert_eq!(inv["due_date"], row.3);
    }
}

#[test]
fn webhook_outcomes_retries_and_signatures() {
    let billing = Billing::small();
    let b = Bench::sqlite();
    let accept_i9 = Arc::new(AtomicBool::new(false));
    let flag = accept_i9.clone();
    let rec = Receiver::start(b.secret(), Duration::ZERO, move |body, nth| {
        let inv = body["invoices"][0]["id"].as_str().unwrap_or_default();
        match (inv, nth) {
            ("i1", 1) => Reply::Status(500),
            ("i3", _) => Reply::Status(400),
            ("i4", 1) => Reply::RetryAfter(429, 2),
            ("i5", 1) => Reply::Status(503),
            ("i5", 2) => Reply::Hang(Duration::from_secs(3)),
            ("i9", _) if !flag.load(Ordering::SeqCst) => Reply::Status(503),
            _ => Reply::Status(200),
        }
    });
    b.f.write(
        "communications.d/hook.toml",
        &webhook_comm("hook-invoices", "email_invoice", &rec.url, ""),
    );
    b.setup(&billing);

    let o = b.segd(&["trigger", "hook-invoices"]);
    assert_eq!(code(&o), 1, "some deliveries failed: {}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("6 enqueued, 1 sent, 1 failed, 4 retrying, 0 dead"),
        "{out}"
    );

    // Right after the run: the 400 failed for good, the rest wait for a retry;
    // the 429's Retry-After (2s) is honoured over the 1s step, the 500 is not
    // delayed past the step.
    let rows = by_invoice(&b.deliveries(&[]));
    assert_eq!(
        rows.keys().cloned().collect::<Vec<_>>(),
        ["i1", "i10", "i3", "i4", "i5", "i9"]
    );
    assert_eq!(status(&rows["i10"]), "sent");
    assert_eq!(status(&rows["i3"]), "failed");
    assert!(
        rows["i3"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("400"),
        "{}",
        rows["i3"]
    );
    for inv in ["i1", "i4", "i5", "i9"] {
        assert_eq!(status(&rows[inv]), "pending", "{}", rows[inv]);
        assert_eq!(rows[inv]["attempts"], 1);
    }
    let first_hit = |inv: &str| {
        rec.hits()
            .into_iter()
            .find(|h| h.invoice() == inv)
            .unwrap_or_else(|| panic!("no request for {inv}"))
    };
    let wait_429 = rfc3339(&rows["i4"]["next_attempt_at"]) - first_hit("i4").at;
    assert!(
        wait_429 >= chrono::TimeDelta::milliseconds(1900),
        "Retry-After: 2 must be honoured: next attempt {wait_429} after the 429"
    );
    let wait_500 = rfc3339(&rows["i1"]["next_attempt_at"]) - first_hit("i1").at;
    assert!(
        wait_500 >= chrono::TimeDelta::milliseconds(850)
            && wait_500 <= chrono::TimeDelta::milliseconds(1500),
        "after a 500 the next step (1s ± 10%) applies: {wait_500}"
    );

    // Retries through `daemon --once` until nothing is due. i5's second
    // attempt hangs past the 1s timeout: cut, and retried.
    let mut seen = Vec::new();
    let rows = by_invoice(&b.drive_seen(Duration::from_secs(25), &mut seen));
    assert!(
        seen.iter().any(|r| invoice_of_row(r) == "i5"
            && status(r) == "pending"
            && r["last_error"]
                .as_str()
                .unwrap_or_default()
                .contains("no answer within 1s")),
        "a hang past the timeout is a retried failure: {seen:#?}"
    );
    for inv in ["i1", "i4", "i5", "i10"] {
        assert_eq!(status(&rows[inv]), "sent", "{}", rows[inv]);
    }
    for inv in ["i1", "i4"] {
        assert_eq!(rows[inv]["attempts"], 2, "{}", rows[inv]);
    }
    assert_eq!(rows["i5"]["attempts"], 3, "{}", rows["i5"]);
    assert_eq!(status(&rows["i3"]), "failed");
    assert_eq!(rows["i3"]["attempts"], 1, "a 400 is not retried");
    assert_eq!(status(&rows["i9"]), "dead", "{}", rows["i9"]);
    assert_eq!(rows["i9"]["attempts"], 3, "0s,1s,1s: three attempts");
    assert!(
        rows["i9"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("503"),
        "{}",
        rows["i9"]
    );

    // What the receiver saw: every request verifies; one webhook-id per
    // delivery, the outbox key, reused on each retry with a fresh timestamp and
    // signature and the same body; the payload has the SPEC §3 shape.
    rec.assert_all_verified();
    let hits = rec.hits();
    let mut per_id: BTreeMap<String, Vec<&Hit>> = BTreeMap::new();
    for h in &hits {
        per_id.entry(h.id.clone()).or_default().push(h);
    }
    let keys: BTreeSet<String> = b.outbox_keys().into_iter().collect();
    assert_eq!(
        per_id.keys().cloned().collect::<BTreeSet<_>>(),
        keys,
        "webhook-ids are the outbox's idempotency keys"
    );
    let attempts: BTreeMap<String, usize> = per_id
        .values()
        .map(|hs| (hs[0].invoice(), hs.len()))
        .collect();
    assert_eq!(
        attempts,
        BTreeMap::from(
            [
                ("i1", 2),
                ("i10", 1),
                ("i3", 1),
                ("i4", 2),
                ("i5", 3),
                ("i9", 3)
            ]
            .map(|(k, v)| (k.to_string(), v))
        )
    );
    for (id, hs) in &per_id {
        assert_eq!(
            rows[&hs[0].invoice()]["idempotency_key"].as_str(),
            Some(id.as_str())
        );
        for h in hs {
            assert_eq!(h.body, hs[0].body, "the same body on every attempt of {id}");
            check_payload(&billing, h, "hook-invoices", "email_invoice");
        }
        let stamps: Vec<i64> = hs
            .iter()
            .map(|h| h.timestamp.parse().expect("Unix seconds"))
            .collect();
        assert!(
            stamps.windows(2).all(|w| w[0] < w[1]),
            "each attempt of {id} is signed at its own time: {stamps:?}"
        );
        let sigs: BTreeSet<&str> = hs.iter().map(|h| h.signature.as_str()).collect();
        assert_eq!(
            sigs.len(),
            hs.len(),
            "a fresh signature per attempt of {id}"
        );
        for h in hs {
            let at = h.at.timestamp();
            let ts: i64 = h.timestamp.parse().expect("Unix seconds");
            assert!((at - ts).abs() <= 1, "timestamp {ts} vs arrival {at}");
        }
    }

    // --status filters.
    let failed = b.deliveries(&["--status", "failed"]);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(invoice_of_row(&failed[0]), "i3");
    let dead = b.deliveries(&["--status", "dead"]);
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(invoice_of_row(&dead[0]), "i9");
    assert_eq!(b.deliveries(&["--status", "sent"]).len(), 4);
    assert!(b.deliveries(&["--status", "pending"]).is_empty());
    assert_eq!(b.deliveries(&["--communication", "hook-invoices"]).len(), 6);
    assert!(b.deliveries(&["--communication", "other"]).is_empty());

    // `deliveries retry ID` re-queues the dead one; it then goes out under the
    // same webhook-id. A sent one is not re-queued.
    accept_i9.store(true, Ordering::SeqCst);
    let dead_id = dead[0]["id"].to_string();
    let sent_id = rows["i10"]["id"].to_string();
    let o = b.segd(&["deliveries", "retry", &sent_id]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let o = b.segd(&["deliveries", "retry", &dead_id]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("re-queued 1 of 1"));
    let after = by_invoice(&b.deliveries(&[]));
    assert_eq!(status(&after["i9"]), "pending");
    let rows = by_invoice(&b.drive(Duration::from_secs(10)));
    assert_eq!(status(&rows["i9"]), "sent", "{}", rows["i9"]);
    let i9: Vec<Hit> = rec
        .hits()
        .into_iter()
        .filter(|h| h.invoice() == "i9")
        .collect();
    assert_eq!(i9.len(), 4);
    assert!(i9.iter().all(|h| h.id == i9[0].id));
    assert_eq!(i9[3].status, Some(200));
    rec.assert_all_verified();
    // Nothing else was sent again.
    assert_eq!(rec.hits().len(), 13);

    // By idempotency key too: the failed one; a key of no delivery re-queues nothing.
    let key = failed[0]["idempotency_key"].as_str().expect("a key");
    let o = b.segd(&["deliveries", "retry", key]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("re-queued 1 of 1"));
    assert_eq!(status(&by_invoice(&b.deliveries(&[]))["i3"]), "pending");
    let o = b.segd(&["deliveries", "retry", "hook-invoices:never:c1:i3"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
}

/// `deliveries retry` with ids and keys of a dead, a sent and no delivery:
/// one line on stderr per id not re-queued, the others re-queued, exit 1.
fn retry_says_which_ids_it_could_not_requeue(mut b: Bench) {
    let outbox = b.f.path().join("mail-out");
    b.set("SEGD_OUTBOX_DIR", outbox.to_str().expect("utf-8 path"));
    b.f.write("communications.d/mail.toml", &email_comm("mail-invoices"));
    b.setup(&Billing::small());
    b.segd(&["trigger", "mail-invoices"]);
    let sent = b.deliveries(&["--status", "sent"]);
    let [dead, sent, ..] = &sent[..] else {
        panic!("at least two sent: {sent:#?}");
    };
    b.db.exec(&format!(
        "UPDATE segd_outbox SET status = 'dead' WHERE id = {}",
        dead["id"]
    ));
    let dead_id = dead["id"].to_string();
    let sent_id = sent["id"].to_string();
    let sent_key = sent["idempotency_key"].as_str().expect("a key");
    let o = b.segd(&[
        "deliveries",
        "retry",
        "999999",
        &dead_id,
        &sent_id,
        sent_key,
        "mail-invoices:never:c1:i1",
    ]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "error: no such delivery: 999999\n\
             error: delivery {sent_id} is sent; only failed or dead deliveries are re-queued\n\
             error: delivery {sent_key} is sent; only failed or dead deliveries are re-queued\n\
             error: no such delivery: mail-invoices:never:c1:i1\n"
        )
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "re-queued 1 of 5 deliveries\n"
    );
    let pending = b.deliveries(&["--status", "pending"]);
    assert_eq!(pending.len(), 1, "{pending:#?}");
    assert_eq!(pending[0]["id"], dead["id"]);
}

#[test]
fn retry_says_which_ids_it_could_not_requeue_on_sqlite() {
    retry_says_which_ids_it_could_not_requeue(Bench::sqlite());
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn retry_says_which_ids_it_could_not_requeue_on_postgres() {
    if let Some(b) = Bench::postgres("retry_says_which_ids_it_could_not_requeue") {
        retry_says_which_ids_it_could_not_requeue(b);
    }
}

#[test]
fn a_retry_after_date_far_away_parks_a_delivery_for_one_day_at_most() {
    let billing = Billing::small();
    let b = Bench::sqlite();
    let rec = Receiver::start(b.secret(), Duration::ZERO, |_, _| {
        Reply::RetryAt(503, "Fri, 31 Dec 9999 23:59:59 GMT")
    });
    b.f.write(
        "communications.d/hook.toml",
        &webhook_comm("hook-invoices", "email_invoice", &rec.url, ""),
    );
    b.setup(&billing);
    let o = b.segd(&["trigger", "hook-invoices"]);
    assert_eq!(
        code(&o),
        1,
        "every delivery waits for a retry: {}",
        text(&o)
    );
    let rows = b.deliveries(&[]);
    assert!(!rows.is_empty());
    let latest = Utc::now() + chrono::TimeDelta::hours(24);
    for row in &rows {
        assert_eq!(status(row), "pending", "{row}");
        let next = rfc3339(&row["next_attempt_at"]);
        assert!(
            next <= latest && next >= latest - chrono::TimeDelta::minutes(5),
            "a Retry-After in the year 9999 is capped at one day: next attempt {next}"
        );
    }
}

#[test]
fn an_applied_definition_that_no_longer_reads_back_is_reported_by_name() {
    let billing = Billing::small();
    let mut b = Bench::sqlite();
    b.set("SEGD_RETRY_SCHEDULE", "0s,1s,1s,1s,1s");
    let accept = Arc::new(AtomicBool::new(false));
    let rec = Receiver::failing_until(b.secret(), &accept);
    b.f.write(
        "communications.d/hook.toml",
        &webhook_comm("hook-invoices", "email_invoice", &rec.url, ""),
    );
    b.setup(&billing);
    // The first attempts fail: the deliveries wait for a retry.
    b.segd(&["trigger", "hook-invoices"]);
    let enqueued = b.deliveries(&[]).len();
    assert!(enqueued > 0, "the run enqueued deliveries");
    let tried = rec.arrived();

    // The stored communication is edited by hand into something unreadable.
    b.db.exec(
        "UPDATE segd_definitions SET spec = '[communication]\nname = 1\n' \
         WHERE kind = 'communication' AND name = 'hook-invoices'",
    );
    let names_the_row =
        |out: &str| out.contains("the applied communication `hook-invoices` does not read back");
    let o = b.segd(&["trigger", "hook-invoices"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(names_the_row(&stderr(&o)), "trigger: {}", text(&o));

    // The daemon (not applying the files, which would repair the row) says so
    // and fails; the due deliveries wait with that error, none is failed.
    std::thread::sleep(Duration::from_millis(1100));
    let o = b.segd(&["daemon", "--once", "--no-apply", "--listen", "127.0.0.1:0"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        text(&o).contains("undecodable: the applied communication `hook-invoices`"),
        "daemon --once: {}",
        text(&o)
    );
    let rows = b.deliveries(&[]);
    assert_eq!(rows.len(), enqueued);
    for row in &rows {
        assert_eq!(status(row), "pending", "{row}");
        let error = row["last_error"].as_str().unwrap_or_default();
        assert!(names_the_row(error), "{row}");
    }
    assert_eq!(rec.arrived(), tried, "nothing more was sent");

    // Applying the files again repairs the row; the deliveries are then sent.
    accept.store(true, Ordering::SeqCst);
    let o = b.segd(&["apply", "--auto-approve"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    // Its impact is measured as if the unreadable row were absent, with a warning.
    assert!(
        stderr(&o)
            .contains("warning: the applied communication `hook-invoices` does not read back"),
        "apply: {}",
        text(&o)
    );
    let rows = b.drive(Duration::from_secs(20));
    assert!(rows.iter().all(|r| status(r) == "sent"), "{rows:#?}");
}

#[test]
fn a_missing_or_malformed_secret_fails_the_run_and_sends_nothing_unsigned() {
    let billing = Billing::small();
    let mut b = Bench::sqlite();
    let accept = Arc::new(AtomicBool::new(false));
    let rec = Receiver::failing_until(b.secret(), &accept);
    b.f.write(
        "communications.d/hook.toml",
        &webhook_comm("hook-invoices", "email_invoice", &rec.url, ""),
    );
    b.setup(&billing);
    let secret = b.secret().to_string();

    let cases: [(&str, Option<&str>); 7] = [
        ("unset", None),
        ("empty", Some("")),
        ("no whsec_ prefix", Some("c2VjcmV0LXdpdGhvdXQtcHJlZml4")),
        ("not base64", Some("whsec_%%%not-base64!")),
        // Standard Webhooks keys are 24 to 64 bytes: an empty, a 1-byte and a
        // 23-byte key would sign webhooks anyone can forge.
        ("empty key", Some("whsec_")),
        ("1-byte key", Some("whsec_AQ==")),
        (
            "23-byte key",
            Some("whsec_c2VnZC13ZWJob29rLWtleS0yM2J5dGU="),
        ),
    ];
    for (what, value) in cases {
        match value {
            Some(v) => b.set(SECRET_ENV, v),
            None => b.unset(SECRET_ENV),
        };
        let o = b.segd(&["trigger", "hook-invoices"]);
        assert_eq!(code(&o), 1, "{what}: {}", text(&o));
        let err = stderr(&o);
        assert!(
            err.contains(SECRET_ENV),
            "{what}: names the variable: {err}"
        );
        if let Some(v) = value.filter(|v| v.len() > "whsec_".len()) {
            assert!(!err.contains(v), "{what}: the value is not printed: {err}");
        }
        if what.ends_with("key") {
            assert!(err.contains("at least 24 bytes"), "{what}: says why: {err}");
        }
        assert!(rec.hits().is_empty(), "{what}: nothing is sent");
        assert!(b.deliveries(&[]).is_empty(), "{what}: nothing is enqueued");
    }
    assert_eq!(
        count(
            &b.db.url,
            "SELECT COUNT(*) FROM segd_trigger_runs WHERE status = 'failed'"
        ),
        cases.len() as i64,
        "each failed run is recorded"
    );

    // Enqueued with the secret, refused (500) by the receiver: queued for a retry.
    b.set(SECRET_ENV, &secret);
    let o = b.segd(&["trigger", "hook-invoices"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert_eq!(rec.hits().len(), 6);
    // A worker without the secret leaves them queued: never sent unsigned.
    b.unset(SECRET_ENV);
    accept.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1200));
    let o = b.once();
    assert_eq!(rec.hits().len(), 6, "sent without a secret: {}", text(&o));
    let rows = b.deliveries(&[]);
    assert_eq!(rows.len(), 6);
    for r in &rows {
        assert_eq!(status(r), "pending", "{r}");
        assert!(
            r["last_error"]
                .as_str()
                .unwrap_or_default()
                .contains(SECRET_ENV),
            "the error names the variable: {r}"
        );
    }
    // With the secret back, they go out signed.
    b.set(SECRET_ENV, &secret);
    let rows = b.drive(Duration::from_secs(10));
    assert!(rows.iter().all(|r| status(r) == "sent"), "{rows:#?}");
    assert_eq!(rec.hits().len(), 12);
    rec.assert_all_verified();

    // The secret is never printed, nor written anywhere under --dir (database included).
    for args in [
        &["deliveries", "--format", "json"][..],
        &["trigger", "hook-invoices", "-v"],
        &["plan", "--format", "json"],
    ] {
        let all = text(&b.segd(args));
        assert!(
            !all.contains(&secret) && !all.contains(&secret[6..]),
            "{args:?}: {all}"
        );
    }
    let exported = b.f.path().join("exported");
    let o = b.segd(&["export", "--out", exported.to_str().expect("utf-8 path")]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(!text(&o).contains(&secret[6..]));
    let o = b.segd(&["daemon", "--once", "-v", "--listen", "127.0.0.1:0"]);
    assert!(!text(&o).contains(&secret[6..]));
    let mut stack = vec![b.f.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read the fixture") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let data = std::fs::read(&p).expect("read a file");
                let found = data
                    .windows(secret.len() - 6)
                    .any(|w| w == &secret.as_bytes()[6..]);
                assert!(!found, "the secret is written in {}", p.display());
            }
        }
    }
}

#[test]
fn held_runs_dry_runs_and_min_interval() {
    let billing = Billing::small();
    let b = Bench::sqlite();
    let rec = Receiver::ok(b.secret());
    b.f.write(
        "communications.d/hook.toml",
        &webhook_comm(
            "hook-reminders",
            "payment_reminder",
            &rec.url,
            "min_interval = \"7d\"\nmax_recipients = 1",
        ),
    );
    b.setup(&billing);
    let runs = |status: &str| {
        count(
            &b.db.url,
            &format!("SELECT COUNT(*) FROM segd_trigger_runs WHERE status = '{status}'"),
        )
    };
    let outbox = || count(&b.db.url, "SELECT COUNT(*) FROM segd_outbox");

    // --dry-run lists who would be reached and writes nothing.
    let o = b.segd(&["trigger", "hook-reminders", "--dry-run"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let listed: BTreeSet<&str> = out
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(listed, BTreeSet::from(["c1", "c2"]), "{out}");
    assert!(out.contains("Anna Schmidt") && out.contains("ben.mueller@example.com"));
    assert_eq!(
        count(&b.db.url, "SELECT COUNT(*) FROM segd_trigger_runs"),
        0
    );
    assert_eq!(outbox(), 0);
    assert!(rec.hits().is_empty());

    // Two recipients > max_recipients = 1: held, exit 1, nothing enqueued.
    let o = b.segd(&["trigger", "hook-reminders"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains("held") && err.contains("--allow-over-limit"),
        "{err}"
    );
    assert_eq!(runs("held"), 1);
    assert_eq!(outbox(), 0);
    std::thread::sleep(Duration::from_millis(200));
    assert!(rec.hits().is_empty(), "a held run sends nothing");
    // The daemon does not send a held run either.
    b.once();
    assert!(rec.hits().is_empty());

    // --allow-over-limit sends: one reminder per member, listing its past-due invoices.
    let o = b.segd(&["trigger", "hook-reminders", "--allow-over-limit"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    rec.assert_all_verified();
    let mut got: Vec<(String, Vec<String>)> = rec
        .hits()
        .iter()
        .map(|h| {
            check_payload(&billing, h, "hook-reminders", "payment_reminder");
            (
                h.body["customer"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                h.body["invoices"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|i| i["id"].as_str().unwrap_or_default().to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("c1".to_string(), vec!["i1".to_string()]),
            ("c2".to_string(), vec!["i3".to_string()])
        ]
    );
    assert_eq!(outbox(), 2);

    // min_interval = 7d: a second run reaches nobody again.
    let o = b.segd(&["trigger", "hook-reminders", "--allow-over-limit"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("0 enqueued"),
        "{}",
        text(&o)
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rec.hits().len(), 2);
    assert_eq!(outbox(), 2);
    // Even within the limit now (0 recipients): not held.
    let o = b.segd(&["trigger", "hook-reminders"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(rec.hits().len(), 2);
}

// ---------------------------------------------------------------------------
// Concurrent triggers of one communication
// ---------------------------------------------------------------------------

/// How many `segd trigger` processes race in the concurrency tests.
const RACERS: usize = 6;

/// Runs `segd trigger NAME` in `RACERS` processes started at once; each exits 0.
fn race_triggers(b: &Bench, name: &str) {
    let start = std::sync::Barrier::new(RACERS);
    let outs: Vec<Output> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..RACERS)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    b.segd(&["trigger", name, "--allow-over-limit"])
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("thread"))
            .collect()
    });
    for o in &outs {
        assert_eq!(code(o), 0, "{}", text(o));
    }
}

/// Concurrent runs of an `email_invoice` communication enqueue and send each
/// invoice once in all; concurrent runs of a payment reminder with
/// `min_interval` reach each customer once.
fn concurrent_triggers_enqueue_once(mut b: Bench) {
    const N: usize = 2000;
    let mut billing = Billing::many(N);
    // Past due as well, for the reminders.
    for i in &mut billing.invoices {
        i.3 = "2020-01-01".to_string();
    }
    let mail_dir = b.f.path().join("mail-out");
    b.set("SEGD_OUTBOX_DIR", mail_dir.to_str().expect("utf-8 path"));
    b.f.write("communications.d/mail.toml", &email_comm("mail-invoices"));
    let rec = Receiver::ok(b.secret());
    b.f.write(
        "communications.d/hook.toml",
        &webhook_comm(
            "hook-reminders",
            "payment_reminder",
            &rec.url,
            "min_interval = \"7d\"",
        ),
    );
    b.setup(&billing);

    race_triggers(&b, "mail-invoices");
    let per = |sql: &str| count(&b.db.url, sql);
    let mail_rows = "FROM segd_outbox o JOIN segd_trigger_runs u ON u.seq = o.run \
                     WHERE u.communication = 'mail-invoices'";
    assert_eq!(per(&format!("SELECT COUNT(*) {mail_rows}")), N as i64);
    assert_eq!(
        per(&format!("SELECT COUNT(DISTINCT o.invoice_id) {mail_rows}")),
        N as i64
    );
    let emails = std::fs::read_dir(&mail_dir)
        .expect("SEGD_OUTBOX_DIR was created")
        .count();
    assert_eq!(emails, N, "each invoice is emailed once");

    race_triggers(&b, "hook-reminders");
    let hook_rows = "FROM segd_outbox o JOIN segd_trigger_runs u ON u.seq = o.run \
                     WHERE u.communication = 'hook-reminders'";
    assert_eq!(per(&format!("SELECT COUNT(*) {hook_rows}")), N as i64);
    assert_eq!(
        per(&format!("SELECT COUNT(DISTINCT o.customer_id) {hook_rows}")),
        N as i64
    );
    rec.assert_all_verified();
    let customers: BTreeSet<String> = rec
        .hits()
        .iter()
        .map(|h| {
            h.body["customer"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        (rec.hits().len(), customers.len()),
        (N, N),
        "each customer is reminded once"
    );
}

#[test]
fn concurrent_triggers_enqueue_each_invoice_and_reminder_once_sqlite() {
    concurrent_triggers_enqueue_once(Bench::sqlite());
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn concurrent_triggers_enqueue_each_invoice_and_reminder_once_postgres() {
    if let Some(b) = Bench::postgres("concurrent_triggers_enqueue_once") {
        concurrent_triggers_enqueue_once(b);
    }
}

// ---------------------------------------------------------------------------
// Email
// ---------------------------------------------------------------------------

#[test]
fn email_over_smtp_is_rfc5322_with_the_rendered_invoice() {
    let billing = Billing::small();
    let mut b = Bench::sqlite();
    let (port, mails) = start_smtp();
    b.set("SEGD_SMTP_URL", &format!("smtp://127.0.0.1:{port}"));
    b.f.write("communications.d/mail.toml", &email_comm("mail-invoices"));
    b.setup(&billing);

    let o = b.segd(&["trigger", "mail-invoices"]);
    // c7 has no email address: unreachable, not enqueued, not a failure.
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("5 enqueued, 1 unreachable (no email address), 5 sent, 0 failed"),
        "{}",
        text(&o)
    );
    let got: Vec<(Option<Vec<String>>, Vec<u8>)> = lock(&mails)
        .iter()
        .map(|m| (Some(m.rcpts.clone()), m.data.clone()))
        .collect();
    check_mails(&billing, &got, &["i1", "i3", "i4", "i5", "i9"]);
    let rows = by_invoice(&b.deliveries(&[]));
    assert!(!rows.contains_key("i10"), "{rows:?}");
    assert_eq!(rows.values().filter(|r| status(r) == "sent").count(), 5);
    assert!(
        !b.f.path().join("outbox").exists(),
        "with SMTP configured nothing goes to files"
    );

    // Invoices already sent are not sent again.
    let o = b.segd(&["trigger", "mail-invoices"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(lock(&mails).len(), 5);
}

#[test]
fn email_without_smtp_goes_to_eml_files() {
    let billing = Billing::small();
    let mut b = Bench::sqlite();
    let outbox = b.f.path().join("mail-out");
    b.set("SEGD_OUTBOX_DIR", outbox.to_str().expect("utf-8 path"));
    b.f.write("communications.d/mail.toml", &email_comm("mail-invoices"));
    b.setup(&billing);

    let o = b.segd(&["trigger", "mail-invoices"]);
    assert_eq!(code(&o), 0, "c7 has no address: unreachable: {}", text(&o));
    let files = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(&outbox)
            .expect("SEGD_OUTBOX_DIR was created")
            .map(|e| e.expect("entry").path())
            .collect();
        v.sort();
        v
    };
    let all = files();
    assert!(
        all.iter()
            .all(|p| p.extension().is_some_and(|e| e == "eml")),
        "only finished .eml files, no temporaries: {all:?}"
    );
    let mails: Vec<(Option<Vec<String>>, Vec<u8>)> = all
        .iter()
        .map(|p| (None, std::fs::read(p).expect("read .eml")))
        .collect();
    check_mails(&billing, &mails, &["i1", "i3", "i4", "i5", "i9"]);
    assert!(
        !b.f.path().join("outbox").exists(),
        "not the default folder"
    );

    let o = b.segd(&["trigger", "mail-invoices"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(files(), all, "nothing is written twice");
}

#[test]
fn listings_end_quietly_when_their_reader_stops() {
    // 3,000 rows print far more than a pipe buffers (64 KiB), so each listing
    // meets the closed pipe.
    let mut b = Bench::sqlite();
    let outbox = b.f.path().join("mail-out");
    b.set("SEGD_OUTBOX_DIR", outbox.to_str().expect("utf-8 path"));
    b.f.write("communications.d/mail.toml", &email_comm("mail-invoices"));
    b.setup(&Billing::many(3000));
    first_line_then_close(b.command(&["trigger", "mail-invoices", "--dry-run"]))
        .assert_quiet("trigger --dry-run");
    let o = b.segd(&["trigger", "mail-invoices"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    for args in [
        &["deliveries"][..],
        &["deliveries", "--status", "sent"],
        &["deliveries", "--format", "json"],
        &["segment", "members", "targets", "--format", "csv"],
        &["segment", "members", "targets", "--format", "json"],
    ] {
        first_line_then_close(b.command(args)).assert_quiet(&args.join(" "));
    }
}

// ---------------------------------------------------------------------------
// Crash safety: kill -9 part-way, then drain
// ---------------------------------------------------------------------------

const CRASH_ROWS: usize = 300;
/// `delivery.concurrency` of the killed senders.
const CRASH_CONCURRENCY: usize = 4;
/// Outcomes that may finish in the marker's open window besides those in flight:
/// the receiver takes 50 ms, so this allows a window of ~100 ms on a busy machine.
const CRASH_SLACK: usize = 8;

/// Starts `segd trigger` against a slow receiver and kills it (SIGKILL) once
/// `after` requests arrived; returns the outbox keys left `sending` (in flight
/// at the kill).
fn trigger_and_kill(b: &Bench, rec: &Receiver, after: usize) -> BTreeSet<String> {
    let mut child = b.spawn(&["trigger", "bulk"]);
    let started = Instant::now();
    while rec.arrived() < after {
        if let Ok(Some(_)) = child.try_wait() {
            let o = child.wait_with_output().expect("output");
            panic!("trigger ended before the kill: {}", text(&o));
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no requests arrive"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill -9 segd trigger");
    let st = child.wait().expect("reap");
    assert!(!st.success());
    let arrived = rec.arrived();
    assert!(
        arrived < CRASH_ROWS / 2,
        "killed part-way ({arrived} of {CRASH_ROWS} arrived)"
    );
    // Enqueue happened before any send, in one transaction: all rows are there.
    assert_eq!(b.outbox_keys().len(), CRASH_ROWS);
    strings(&b.db.url, &format!("{KEYS} WHERE o.status = 'sending'"))
        .into_iter()
        .collect()
}

/// After the drain: every intended message arrived, signed; no row enqueued
/// twice; a webhook-id arrived more than once only when it was in flight at a
/// kill, and at most once more per kill it was in flight at. `kills` holds, per
/// kill, the keys the killed process held.
fn check_after_crash(b: &Bench, rec: &Receiver, kills: &[BTreeSet<String>]) {
    let keys = b.outbox_keys();
    assert_eq!(keys.len(), CRASH_ROWS, "nothing was enqueued twice");
    assert_eq!(
        keys.iter().collect::<BTreeSet<_>>().len(),
        CRASH_ROWS,
        "distinct keys"
    );
    let rows = b.deliveries(&[]);
    assert!(
        rows.iter().all(|r| status(r) == "sent"),
        "{:?}",
        rows.iter().map(status).collect::<BTreeSet<_>>()
    );
    rec.assert_all_verified();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for h in rec.hits() {
        *per_id.entry(h.id).or_default() += 1;
    }
    let received: BTreeSet<&String> = per_id.keys().collect();
    assert_eq!(
        received,
        keys.iter().collect::<BTreeSet<_>>(),
        "every intended message arrived, and nothing else"
    );
    let dups = per_id.values().filter(|n| **n > 1).count();
    eprintln!(
        "{} rows, {:?} claimed at the kills, {dups} received more than once, {} requests",
        keys.len(),
        kills.iter().map(BTreeSet::len).collect::<Vec<_>>(),
        rec.hits().len()
    );
    // Outcomes are written within milliseconds of finishing: a kill re-sends the
    // requests on the wire (the concurrency) and the few that finished in the
    // marker's open window, not whole batches.
    let bound = kills.len() * (CRASH_CONCURRENCY + CRASH_SLACK);
    assert!(
        dups <= bound,
        "{dups} received more than once after {} kill(s); at most {bound} expected",
        kills.len()
    );
    let unexplained: Vec<(&String, &usize)> = per_id
        .iter()
        .filter(|(k, n)| **n > 1 + kills.iter().filter(|s| s.contains(*k)).count())
        .collect();
    assert!(
        unexplained.is_empty(),
        "received more often than 1 + the kills they were in flight at: {unexplained:?}"
    );
}

/// The `bulk` webhook communication to `url`, applied, over `rows` customers.
fn bulk(b: &Bench, url: &str, rows: usize) {
    b.f.write(
        "communications.d/bulk.toml",
        &webhook_comm("bulk", "email_invoice", url, ""),
    );
    b.setup(&Billing::many(rows));
}

fn crash_bench(b: &mut Bench) -> Receiver {
    let rec = Receiver::start(b.secret(), Duration::from_millis(50), |_, _| {
        Reply::Status(200)
    });
    bulk(b, &rec.url, CRASH_ROWS);
    b.set("SEGD_DELIVERY_LEASE", "30s")
        .set("SEGD_DELIVERY_CONCURRENCY", &CRASH_CONCURRENCY.to_string());
    rec
}

/// Ends the leases of the rows killed senders held (`status = 'sending'` and
/// `and`), as if the lease (at least 30 s) had passed.
fn expire_leases(b: &Bench, and: &str) {
    b.db.exec(&format!(
        "UPDATE segd_outbox SET claimed_until = '2000-01-01T00:00:00+00:00' \
         WHERE status = 'sending'{and}"
    ));
}

#[test]
fn a_killed_trigger_loses_nothing_and_enqueues_nothing_twice() {
    let mut b = Bench::sqlite();
    let rec = crash_bench(&mut b);
    let in_flight = trigger_and_kill(&b, &rec, 40);
    assert!(!in_flight.is_empty());
    // Past the lease, the rows the dead sender held are due again.
    expire_leases(&b, "");
    b.set("SEGD_DELIVERY_CONCURRENCY", "16");
    b.drive(Duration::from_secs(30));
    check_after_crash(&b, &rec, &[in_flight]);
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn postgres_two_workers_after_kills_send_each_row_once() {
    let Some(mut b) = Bench::postgres("postgres_two_workers_after_kills") else {
        return;
    };
    let rec = crash_bench(&mut b);
    let in_flight = trigger_and_kill(&b, &rec, 40);
    assert!(!in_flight.is_empty());
    expire_leases(&b, "");

    // Two workers drain the same outbox at once. Their lease (30s) outlasts a
    // batch (64 rows × 50 ms / 4), so neither takes the other's claimed rows.
    rec.state.max_inflight.store(0, Ordering::SeqCst);
    let before = rec.arrived();
    let once = ["daemon", "--once", "--listen", "127.0.0.1:0"];
    let mut a = b.spawn(&once);
    let c = b.spawn(&once);
    // Kill one of them part-way too; the other finishes its pass.
    wait_for("the workers to send", Duration::from_secs(30), || {
        rec.arrived() >= before + 60
    });
    let a_pid = a.id();
    a.kill().expect("kill -9 a worker");
    let _ = a.wait();
    // A's claimed rows, before their lease lets the other worker take them.
    let held_by_a: BTreeSet<String> = strings(
        &b.db.url,
        &format!("{KEYS} WHERE o.status = 'sending' AND o.claimed_by LIKE '%(pid {a_pid})'"),
    )
    .into_iter()
    .collect();
    let c_out = c.wait_with_output().expect("second worker");
    assert_eq!(code(&c_out), 0, "{}", text(&c_out));
    assert!(
        rec.state.max_inflight.load(Ordering::SeqCst) > CRASH_CONCURRENCY,
        "both workers sent at once (each has concurrency 4)"
    );
    expire_leases(&b, &format!(" AND claimed_by LIKE '%(pid {a_pid})'"));
    b.drive(Duration::from_secs(30));
    check_after_crash(&b, &rec, &[in_flight, held_by_a]);
    drop(rec);
}

/// Another process holds SQLite's write lock for longer than the busy timeout
/// (10 s) while `segd trigger` sends: the outcomes finished meanwhile are kept
/// and written once the lock is free, rows claimed and not started go back to
/// pending, and nothing is left `sending` or sent twice.
#[test]
fn outcomes_that_cannot_be_written_for_a_while_are_kept_not_resent() {
    use sqlx::Connection as _;
    let mut b = Bench::sqlite();
    let rec = crash_bench(&mut b);
    let child = b.spawn(&["trigger", "bulk"]);
    wait_for("requests to arrive", Duration::from_secs(30), || {
        rec.arrived() >= 20
    });
    let url = b.db.url.clone();
    let at_lock = block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut c)
            .await
            .expect("take the write lock");
        let at_lock = rec.arrived();
        tokio::time::sleep(Duration::from_secs(12)).await;
        sqlx::query("ROLLBACK")
            .execute(&mut c)
            .await
            .expect("release");
        at_lock
    });
    let o = child.wait_with_output().expect("segd trigger");
    assert!(
        at_lock < CRASH_ROWS,
        "all had arrived before the lock; the test proves nothing"
    );
    assert_eq!(
        code(&o),
        0,
        "the drain ends once outcomes are written: {}",
        text(&o)
    );
    assert_eq!(
        count(
            &b.db.url,
            "SELECT COUNT(*) FROM segd_outbox WHERE status = 'sending'"
        ),
        0,
        "rows left sending after the drain: {}",
        text(&o)
    );
    b.drive(Duration::from_secs(30));
    check_after_crash(&b, &rec, &[]);
}

/// A lease shorter than 30 s could end while a request is still in flight (a
/// webhook waits up to 15 s) and let another sender send the row again: it is
/// allowed (tests and local setups use short ones) with a warning naming the
/// setting it came from.
#[test]
fn a_short_lease_is_a_warning_naming_the_setting() {
    let mut b = Bench::sqlite();
    let rec = Receiver::ok(b.secret());
    bulk(&b, &rec.url, 3);
    for (env, file, setting) in [
        (Some("5s"), "", "SEGD_DELIVERY_LEASE"),
        (None, "[delivery]\nlease = \"29s\"\n", "delivery.lease"),
    ] {
        match env {
            Some(v) => b.set("SEGD_DELIVERY_LEASE", v),
            None => b.unset("SEGD_DELIVERY_LEASE"),
        };
        b.f.write("segd.toml", file);
        let o = b.segd(&["trigger", "bulk"]);
        assert_eq!(code(&o), 0, "{}", text(&o));
        assert!(
            stderr(&o).contains(&format!("warning: {setting}"))
                && stderr(&o).contains("shorter than 30s"),
            "{setting}: {}",
            text(&o)
        );
    }
}

/// A claim never hands a sender back rows it still holds, even once their lease
/// has run out (it may have them queued still); another sender takes them.
fn own_expired_rows_body(mut b: Bench) {
    let rec = Receiver::start(b.secret(), Duration::ZERO, |_, _| Reply::Status(500));
    bulk(&b, &rec.url, 5);
    b.set("SEGD_RETRY_SCHEDULE", "0s,1h,1h");
    let o = b.segd(&["trigger", "bulk"]);
    assert!(text(&o).contains("5 retrying"), "{}", text(&o));
    let url = b.db.url.clone();
    let (own, other) = block_on(async move {
        let store = segd::store::connect(&url).await.expect("connect");
        let later = Utc::now() + chrono::TimeDelta::days(1);
        let long_ago = Utc::now() - chrono::TimeDelta::days(1);
        // `me` claims the retries, with a lease that has already run out.
        let held = store
            .claim("me", later, long_ago, 100, None)
            .await
            .expect("claim");
        assert_eq!(held.len(), 5, "{held:?}");
        let own = store
            .claim("me", later, later, 100, None)
            .await
            .expect("claim");
        let other = store
            .claim("other", later, later, 100, None)
            .await
            .expect("claim");
        (own.len(), other.len())
    });
    assert_eq!(
        (own, other),
        (0, 5),
        "own expired rows, then another sender's"
    );
}

#[test]
fn a_claim_never_returns_the_claimers_own_expired_rows_on_sqlite() {
    own_expired_rows_body(Bench::sqlite());
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn a_claim_never_returns_the_claimers_own_expired_rows_on_postgres() {
    if let Some(b) = Bench::postgres("own_expired_rows") {
        own_expired_rows_body(b);
    }
}

/// A communication applied again while its deliveries are being sent: the rows
/// claimed after the apply are sent as the communication now is (here to its
/// new URL), not with the definition read when the drain began.
#[test]
fn a_drain_sends_later_batches_with_the_definition_applied_meanwhile() {
    let mut b = Bench::sqlite();
    let old = Receiver::start(b.secret(), Duration::from_millis(100), |_, _| {
        Reply::Status(200)
    });
    let new = Receiver::ok(b.secret());
    bulk(&b, &old.url, 200);
    b.set("SEGD_DELIVERY_CONCURRENCY", "4");
    let child = b.spawn(&["trigger", "bulk"]);
    wait_for("requests to arrive", Duration::from_secs(30), || {
        old.arrived() >= 1
    });
    b.f.write(
        "communications.d/bulk.toml",
        &webhook_comm("bulk", "email_invoice", &new.url, ""),
    );
    let o = b.segd(&["apply", "--auto-approve"]);
    assert_eq!(code(&o), 0, "apply: {}", text(&o));
    let at_apply = old.arrived();
    let o = child.wait_with_output().expect("segd trigger");
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        at_apply < 200,
        "all were sent before the apply; the test proves nothing"
    );
    assert!(
        new.arrived() > 0 && old.arrived() + new.arrived() == 200,
        "{} to the old URL, {} to the new one",
        old.arrived(),
        new.arrived()
    );
}

/// Brings a database to migration `version`: e.g. 5, the outbox before its rows
/// named their run by number (0006).
fn migrate_to(db: &TestDb, version: i64) {
    use std::str::FromStr as _;
    block_on(async {
        let backend = if db.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut m = sqlx::migrate::Migrator::new(dir).await.expect("migrations");
        m.migrations = m
            .migrations
            .iter()
            .filter(|x| x.version <= version)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        if db.is_postgres() {
            let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
            m.run(&pool).await.expect("migrate");
            pool.close().await;
        } else {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
                .expect("url")
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options)
                .await
                .expect("connect");
            m.run(&pool).await.expect("migrate");
            pool.close().await;
        }
    });
}

fn upgrade_body(db: &TestDb) {
    migrate_to(db, 5);
    // A run with a sent invoice message and a reminder waiting for its retry
    // (invoice ids stored out of order), and a held run that wrote nothing.
    db.exec(
        "INSERT INTO segd_trigger_runs (id, communication, occurrence, kind, occurred_at, started_at, \
         finished_at, status, late, recipients, enqueued) VALUES \
         ('hook:o1', 'hook', 'o1', 'scheduled', '2026-01-05T09:00:00+00:00', '2026-01-05T09:00:01+00:00', \
          '2026-01-05T09:00:01+00:00', 'enqueued', false, 2, 2), \
         ('hook:o2', 'hook', 'o2', 'scheduled', '2026-01-06T09:00:00+00:00', '2026-01-06T09:00:01+00:00', \
          '2026-01-06T09:00:01+00:00', 'held', false, 900, 0); \
         INSERT INTO segd_outbox (run_id, communication, channel, customer_id, invoice_id, invoice_ids, \
         occurred_at, status, attempts, next_attempt_at, created_at, sent_at) VALUES \
         ('hook:o1', 'hook', 'webhook', 'c1', 'i1', '[\"i1\"]', '2026-01-05T09:00:00+00:00', 'sent', 1, \
          '2026-01-05T09:00:01+00:00', '2026-01-05T09:00:01+00:00', '2026-01-05T09:00:02+00:00'), \
         ('hook:o1', 'hook', 'webhook', 'c2', NULL, '[\"i3\",\"i2\"]', '2026-01-05T09:00:00+00:00', 'pending', 1, \
          '2026-01-05T09:10:00+00:00', '2026-01-05T09:00:01+00:00', NULL);",
    );
    block_on(async {
        let store = segd::store::connect(&db.url).await.expect("upgrade");
        let rows = store
            .deliveries(&segd::store::outbox::DeliveryFilter::default())
            .await
            .expect("deliveries");
        let seen: Vec<(&str, &str, &str, &str, Vec<String>)> = rows
            .iter()
            .map(|d| {
                (
                    d.idempotency_key.as_str(),
                    d.communication.as_str(),
                    d.channel.as_str(),
                    d.status.as_str(),
                    d.invoice_ids.clone(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "hook:o1:c1:i1",
                    "hook",
                    "webhook",
                    "sent",
                    vec!["i1".to_string()]
                ),
                (
                    "hook:o1:c2",
                    "hook",
                    "webhook",
                    "pending",
                    vec!["i2".to_string(), "i3".to_string()]
                ),
            ]
        );
        let at = |s: &str| DateTime::parse_from_rfc3339(s).expect("time").to_utc();
        assert_eq!(rows[0].created_at, at("2026-01-05T09:00:01Z"));
        assert_eq!(rows[1].next_attempt_at, at("2026-01-05T09:10:00Z"));
        // The waiting retry is due and claimable, with its run's instant.
        let now = Utc::now();
        let claimed = store
            .claim(
                "upgrade-test",
                now,
                now + chrono::TimeDelta::minutes(1),
                10,
                None,
            )
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1, "{claimed:?}");
        assert_eq!(claimed[0].key, "hook:o1:c2");
        assert_eq!(claimed[0].communication, "hook");
        assert_eq!(claimed[0].occurred_at, at("2026-01-05T09:00:00Z"));
        assert_eq!(claimed[0].attempts, 2);
        store.close().await;
    });
    // The held run is still recorded, so its occurrence cannot run again.
    assert_eq!(
        count(
            &db.url,
            "SELECT COUNT(*) FROM segd_trigger_runs WHERE status = 'held'"
        ),
        1
    );
}

#[test]
fn deliveries_written_before_runs_were_numbered_keep_their_keys_on_sqlite() {
    let f = Fixture::empty();
    upgrade_body(&TestDb::sqlite(&f));
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn deliveries_written_before_runs_were_numbered_keep_their_keys_on_postgres() {
    if let Some(db) =
        TestDb::postgres("deliveries_written_before_runs_were_numbered_keep_their_keys_on_postgres")
    {
        upgrade_body(&db);
    }
}

/// Rows enqueued before runs recorded where their rows are (0007): a fresh row,
/// one waiting for its retry and a sent one, of one run. After the upgrade the
/// run's rows are found through it, and the fresh row is claimed as fresh.
fn runs_find_their_rows_after_the_upgrade_body(db: &TestDb) {
    migrate_to(db, 6);
    db.exec(
        "INSERT INTO segd_trigger_runs (id, communication, occurrence, kind, channel, occurred_at, started_at, \
         finished_at, status, late, recipients, enqueued) VALUES \
         ('hook:o1', 'hook', 'o1', 'scheduled', 'webhook', '2026-01-05T09:00:00+00:00', '2026-01-05T09:00:01+00:00', \
          '2026-01-05T09:00:01+00:00', 'enqueued', false, 3, 3); \
         INSERT INTO segd_outbox (run, customer_id, invoice_id, invoice_ids, status, attempts, next_attempt_at, sent_at) \
         VALUES (1, 'c1', NULL, '[\"i1\"]', 'sent', 1, NULL, '2026-01-05T09:00:02+00:00'), \
         (1, 'c2', NULL, '[\"i2\"]', 'pending', 1, '2026-01-05T09:10:00+00:00', NULL), \
         (1, 'c3', NULL, '[\"i3\"]', 'pending', 0, NULL, NULL);",
    );
    let url = db.url.clone();
    block_on(async move {
        let store = segd::store::connect(&url).await.expect("upgrade");
        let filter = segd::store::outbox::DeliveryFilter {
            run_id: Some("hook:o1".to_string()),
            ..Default::default()
        };
        let rows = store.deliveries(&filter).await.expect("deliveries");
        let keys: Vec<&str> = rows.iter().map(|d| d.idempotency_key.as_str()).collect();
        assert_eq!(keys, ["hook:o1:c1", "hook:o1:c2", "hook:o1:c3"]);
        let now = Utc::now();
        let lease = now + chrono::TimeDelta::minutes(1);
        // The run's own drain takes only its fresh row; the daemon the retry.
        let own = store
            .claim("drain", now, lease, 10, Some("hook:o1"))
            .await
            .expect("claim");
        let keys: Vec<&str> = own.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["hook:o1:c3"]);
        let rest = store
            .claim("daemon", now, lease, 10, None)
            .await
            .expect("claim");
        let keys: Vec<&str> = rest.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["hook:o1:c2"]);
        store.close().await;
    });
    assert_eq!(
        count(
            &db.url,
            "SELECT COUNT(*) FROM segd_trigger_runs WHERE fresh_from IS NULL AND first_id = 1 AND last_id = 3"
        ),
        1
    );
}

#[test]
fn runs_find_their_rows_after_the_upgrade_on_sqlite() {
    let f = Fixture::empty();
    runs_find_their_rows_after_the_upgrade_body(&TestDb::sqlite(&f));
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn runs_find_their_rows_after_the_upgrade_on_postgres() {
    if let Some(db) = TestDb::postgres("runs_find_their_rows_after_the_upgrade_on_postgres") {
        runs_find_their_rows_after_the_upgrade_body(&db);
    }
}

/// A run's fresh rows are claimed through the run, forward from where they
/// start (migration 0007): each once, run by run, a few at a time; a run's own
/// drain takes only its rows, even with another run's rows within its id range
/// (runs enqueued at the same time on PostgreSQL); and a released or re-queued
/// row is due at once, though its run has moved past it.
fn fresh_rows_body(b: Bench) {
    let url = "http://127.0.0.1:9/hook";
    b.f.write(
        "communications.d/bulk.toml",
        &webhook_comm("bulk", "email_invoice", url, ""),
    )
    .write(
        "communications.d/nudge.toml",
        &webhook_comm("nudge", "payment_reminder", url, ""),
    );
    b.setup(&Billing::small());
    let env = b.env.clone();
    let db = b.db.url.clone();
    let runs: Vec<String> = block_on(async move {
        use segd::trigger::{Occasion, enqueue, load_target, prepare};
        let store = segd::store::connect(&db).await.expect("connect");
        let mut runs = Vec::new();
        for name in ["bulk", "nudge"] {
            let target = load_target(&*store, name).await.expect("applied");
            let prepared = prepare(&target, Occasion::manual(&segd::clock::System));
            enqueue(
                &*store,
                &prepared,
                false,
                &|k: &str| env.get(k).cloned(),
                chrono::Utc::now(),
            )
            .await
            .expect("enqueue");
            runs.push(prepared.run.id.clone());
        }
        store.close().await;
        runs
    });
    b.db.exec("UPDATE segd_trigger_runs SET last_id = last_id + 100 WHERE communication = 'bulk'");
    let keys_of = |run: &str| {
        strings(
            &b.db.url,
            &format!("{KEYS} WHERE u.id = '{run}' ORDER BY o.id"),
        )
    };
    let (bulk, nudge) = (keys_of(&runs[0]), keys_of(&runs[1]));
    assert_eq!((bulk.len(), nudge.len()), (6, 2));
    let db = b.db.url.clone();
    let runs_ = runs.clone();
    let (own, daemon, again, listed) = block_on(async move {
        use segd::store::outbox::{DeliveryFilter, Mark};
        let store = segd::store::connect(&db).await.expect("connect");
        let lease = Utc::now() + chrono::TimeDelta::minutes(1);
        let keys = |rows: &[segd::store::outbox::Claimed]| -> Vec<String> {
            rows.iter().map(|c| c.key.clone()).collect()
        };
        // bulk's range spans nudge's rows; its own drain takes only its own.
        let own = store
            .claim("drain", Utc::now(), lease, 100, Some(&runs_[0]))
            .await
            .expect("claim");
        let first = own.first().map(|c| c.id).unwrap_or_default();
        store
            .release("drain", &[first], Utc::now())
            .await
            .expect("release");
        // The daemon takes what is left, four at a time: bulk's released row
        // (due now), then nudge's fresh rows.
        let mut daemon = Vec::new();
        loop {
            let c = store
                .claim("daemon", Utc::now(), lease, 4, None)
                .await
                .expect("claim");
            if c.is_empty() {
                break;
            }
            daemon.push(keys(&c));
        }
        // Nothing is left; a row re-queued is due at once too.
        let none = store
            .claim("drain", Utc::now(), lease, 100, None)
            .await
            .expect("claim");
        assert!(none.is_empty(), "{none:?}");
        let some = own.last().map(|c| c.id).unwrap_or_default();
        store
            .mark(
                "drain",
                &[(
                    some,
                    Mark::Dead {
                        error: "gone".to_string(),
                    },
                )],
                Utc::now(),
            )
            .await
            .expect("mark");
        let key = own.last().map(|c| c.key.clone()).unwrap_or_default();
        assert_eq!(
            store.retry_deliveries(&[key]).await.expect("retry"),
            [segd::store::outbox::Retried::Requeued]
        );
        let again = store
            .claim("daemon", Utc::now(), lease, 100, None)
            .await
            .expect("claim");
        let filter = DeliveryFilter {
            run_id: Some(runs_[0].clone()),
            ..Default::default()
        };
        let listed: Vec<String> = store
            .deliveries(&filter)
            .await
            .expect("deliveries")
            .into_iter()
            .map(|d| d.idempotency_key)
            .collect();
        store.close().await;
        (keys(&own), daemon, keys(&again), listed)
    });
    assert_eq!(own, bulk, "bulk's rows, each once, in order");
    assert_eq!(
        daemon,
        [vec![bulk[0].clone(), nudge[0].clone(), nudge[1].clone()]],
        "the released row, then nudge's fresh rows"
    );
    assert_eq!(again, [bulk[5].clone()], "the re-queued row");
    assert_eq!(listed, bulk, "a run's deliveries are its own");
    assert_eq!(
        count(
            &b.db.url,
            "SELECT COUNT(*) FROM segd_trigger_runs WHERE fresh_from IS NOT NULL"
        ),
        0,
        "no run has fresh rows left"
    );
}

#[test]
fn fresh_rows_are_claimed_through_their_run_on_sqlite() {
    fresh_rows_body(Bench::sqlite());
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn fresh_rows_are_claimed_through_their_run_on_postgres() {
    if let Some(b) = Bench::postgres("fresh_rows_are_claimed_through_their_run_on_postgres") {
        fresh_rows_body(b);
    }
}

/// A runaway template stored by an older segd (validate now rejects it):
/// `segd trigger` ends promptly, failing those deliveries for good with the
/// bound's name, and the next run of another communication sends as usual.
fn runaway_body(mut b: Bench) {
    let rec = Receiver::start(b.secret(), Duration::ZERO, |_, _| Reply::Status(200));
    b.f.write("communications.d/mail.toml", &email_comm("mail"))
        .write(
            "communications.d/hook.toml",
            &webhook_comm("hook", "email_invoice", &rec.url, ""),
        );
    b.setup(&Billing::small());
    b.db.exec(&format!(
        "UPDATE segd_definitions SET templates = replace(templates, 'Hello {{{{ customer.name }}}},', '{}') \
         WHERE name = 'mail'",
        crate::cli_validate::runaway_template()
    ));
    let outbox = b.f.path().join("mail-out");
    b.set("SEGD_OUTBOX_DIR", &outbox.display().to_string());
    let started = Instant::now();
    let o = b.segd(&["trigger", "mail"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("5 enqueued, 1 unreachable (no email address), 0 sent, 5 failed"),
        "{}",
        text(&o)
    );
    eprintln!(
        "segd trigger with a runaway template took {:?}",
        started.elapsed()
    );
    let reason = format!(
        "rendering the body failed: template render exceeded its work limit (fuel {})",
        segd::validate::template::RENDER_FUEL
    );
    let rows = b.deliveries(&["--communication", "mail"]);
    assert_eq!(rows.len(), 5);
    for r in &rows {
        assert_eq!(status(r), "failed", "{r:#}");
        assert_eq!(r["last_error"].as_str(), Some(reason.as_str()), "{r:#}");
    }
    assert!(!outbox.exists(), "a runaway email was written");
    let o = b.segd(&["trigger", "hook"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(rec.hits().len(), 6);
}

#[test]
fn a_runaway_template_fails_its_deliveries_on_sqlite() {
    runaway_body(Bench::sqlite());
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn a_runaway_template_fails_its_deliveries_on_postgres() {
    if let Some(b) = Bench::postgres("a_runaway_template_fails_its_deliveries_on_postgres") {
        runaway_body(b);
    }
}
