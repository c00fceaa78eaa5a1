//! `segd daemon` end to end (SPEC §3 automatic triggers, §5, §6): the real binary
//! on a temporary tree with a SQLite file (or a fresh PostgreSQL database), a free
//! loopback port, polled over HTTP with a tiny std client. Each daemon is killed
//! when its guard drops.

use crate::cli_plan::TestDb;
use crate::support::{Fixture, block_on, count, fresh_pg_db, segd_cmd, strings};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const TOKEN: &str = "daemon-test-token-7f3a";
const SECRET_ENV: &str = "SEGD_DAEMON_TEST_SECRET";
/// A Standard Webhooks secret (`whsec_` + base64 of 24 bytes).
const SECRET: &str = "whsec_c2VnZC1kYWVtb24tdGVzdC1zZWNyZXQtMTIz";

// ---------------------------------------------------------------------------
// Small helpers: waiting, HTTP, SQL, the CLI.

pub(crate) fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A minimal HTTP/1.1 client: one request per connection (`Connection: close`);
/// returns the status and the body (chunked bodies decoded).
pub(crate) fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String), String> {
    http_with_head(method, url, headers, body).map(|(code, _, body)| (code, body))
}

/// [`http`] with the response's status line and headers (`head`) too.
pub(crate) fn http_with_head(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String, String), String> {
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h, format!("/{p}")),
        None => (rest, "/".to_string()),
    };
    let addr: SocketAddr = host.parse().map_err(|e| format!("{host}: {e}"))?;
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut payload = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = payload.as_slice();
        loop {
            let nl = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or("bad chunk")?;
            let size_text = String::from_utf8_lossy(&rest[..nl]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(..size).ok_or("short chunk")?);
            rest = rest.get(size + 2..).unwrap_or_default();
        }
        payload = out;
    }
    Ok((status, head, String::from_utf8_lossy(&payload).into_owned()))
}

/// The value of the response header `name` in `head`.
pub(crate) fn header_of(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn get(url: &str) -> Result<(u16, String), String> {
    http("GET", url, &[], "")
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `segd ARGS --dir DIR --database-url URL` with `env`.
pub(crate) fn segd(dir: &Path, url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = segd_cmd();
    cmd.args(args)
        .arg("--dir")
        .arg(dir)
        .args(["--database-url", url]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run segd")
}

/// `segment members NAME --from db --count`, run on an empty tree so that
/// invalid files on disk cannot get in the way.
pub(crate) fn members_in_db(url: &str, name: &str) -> Option<u64> {
    let empty = tempfile::tempdir().expect("temp dir");
    let o = segd(
        empty.path(),
        url,
        &["segment", "members", name, "--from", "db", "--count"],
        &[],
    );
    if !o.status.success() {
        return None;
    }
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

pub(crate) fn migrate(dir: &Path, url: &str) {
    let o = segd(dir, url, &["db", "migrate"], &[]);
    assert!(o.status.success(), "db migrate: {}", text(&o));
}

fn segment_toml(name: &str, filter: &str) -> String {
    format!(
        "[segment]\nname = \"{name}\"\ndescription = \"daemon test {name}\"\n\n[[filter]]\ntype = \"customer\"\n{filter}\n"
    )
}

fn email_comm(name: &str, segment: &str, trigger: &str) -> String {
    format!(
        "[communication]\nname = \"{name}\"\nsegment = \"{segment}\"\nevent = \"email_invoice\"\nchannel = \"email\"\n\n\
         {trigger}\n\n[email]\nfrom = \"Billing <billing@acme.test>\"\nsubject = \"Invoice for {{{{ customer.name }}}}\"\n\
         body = \"Hello {{{{ customer.name }}}}: {{{{ invoices | length }}}} invoice(s) ({{{{ communication.name }}}}, {{{{ segment.name }}}}).\"\n"
    )
}

const MANUAL: &str = "[trigger]\ntype = \"manual\"";
const EVERY_SECOND: &str =
    "[trigger]\ntype = \"automatic\"\nschedule = \"* * * * * *\"\ntimezone = \"UTC\"";

fn webhook_comm(name: &str, segment: &str, url: &str) -> String {
    format!(
        "[communication]\nname = \"{name}\"\nsegment = \"{segment}\"\nevent = \"email_invoice\"\nchannel = \"webhook\"\n\n\
         {MANUAL}\n\n[webhook]\nurl = \"{url}\"\nsecret_env = \"{SECRET_ENV}\"\ntimeout = \"5s\"\n"
    )
}

/// Billing rows in the SQLite forms of SPEC §4: `de` customers in DE and `fr`
/// in FR, each with one open invoice.
fn billing_sql(de: usize, fr: usize) -> String {
    let mut sql = String::new();
    for i in 0..de + fr {
        let country = if i < de { "DE" } else { "FR" };
        sql.push_str(&format!(
            "INSERT INTO customers (id, name, email, country, custom_data, created_at) VALUES \
             ('c{i:03}', 'Customer {i}', 'c{i}@example.com', '{country}', '{{}}', '2026-01-05T10:00:00Z');\n\
             INSERT INTO invoices (id, customer_id, number, status, amount_cents, currency, due_date, created_at) VALUES \
             ('i{i:03}', 'c{i:03}', 'N-{i:03}', 'open', 1000, 'EUR', '2099-01-01', '2026-01-05T10:00:00Z');\n"
        ));
    }
    sql
}

/// A fixture tree with a SQLite database holding `de` + `fr` customers.
fn sqlite_setup(files: &[(&str, String)], de: usize, fr: usize) -> (Fixture, TestDb) {
    let f = Fixture::empty();
    f.write("segments.d/.keep", "")
        .write("communications.d/.keep", "");
    for (rel, t) in files {
        f.write(rel, t);
    }
    let db = TestDb::sqlite(&f);
    migrate(f.path(), &db.url);
    if de + fr > 0 {
        db.exec(&billing_sql(de, fr));
    }
    (f, db)
}

// ---------------------------------------------------------------------------
// The daemon under test.

pub(crate) struct Daemon {
    child: Child,
    base: String,
    log: PathBuf,
}

fn daemon_command(dir: &Path, url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_segd"));
    c.arg("daemon")
        .arg("--dir")
        .arg(dir)
        .args(["--database-url", url]);
    for k in [
        "SEGD_DATABASE_URL",
        "SEGD_SMTP_URL",
        "SEGD_LISTEN",
        "SEGD_RESYNC",
        "SEGD_API_TOKEN",
        "SEGD_OUTBOX_DIR",
        "SEGD_DELIVERY_CONCURRENCY",
        "SEGD_RETRY_SCHEDULE",
        "SEGD_DELIVERY_LEASE",
        "SEGD_LOG",
    ] {
        c.env_remove(k);
    }
    c.env("NO_COLOR", "1");
    c
}

impl Daemon {
    /// Starts `segd daemon` on a free loopback port and waits for /healthz.
    pub(crate) fn start(dir: &Path, url: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut all = vec!["--listen", listen.as_str()];
        all.extend_from_slice(args);
        Self::spawn(dir, url, &all, env, &listen)
    }

    /// Starts `segd daemon ARGS` (which choose the address) and waits for
    /// /healthz on `addr`.
    fn spawn(dir: &Path, url: &str, args: &[&str], env: &[(&str, &str)], addr: &str) -> Self {
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).expect("a log folder");
        let log = logs.join(format!(
            "daemon-{}-{}.log",
            addr.replace([':', '.'], "_"),
            Utc::now().timestamp_micros()
        ));
        let file = std::fs::File::create(&log).expect("a log file");
        let mut cmd = daemon_command(dir, url);
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("a log file handle"))
            .stderr(file);
        let child = cmd.spawn().expect("start segd daemon");
        let mut d = Self {
            child,
            base: format!("http://{addr}"),
            log,
        };
        let up = wait_until(Duration::from_secs(20), || {
            d.exited().is_some() || get(&d.url("/healthz")).is_ok_and(|(s, _)| s == 200)
        });
        assert!(
            up && d.exited().is_none(),
            "the daemon did not serve /healthz on {addr} within 20 s (exit {:?}):\n{}",
            d.exited(),
            d.logs()
        );
        d
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub(crate) fn logs(&self) -> String {
        let all = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    fn status(&self) -> Value {
        let (code, body) = get(&self.url("/v1/status")).expect("GET /v1/status");
        assert_eq!(code, 200, "/v1/status: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/v1/status is not JSON ({e}): {body}"))
    }

    pub(crate) fn wait_ready(&self) {
        let ok = wait_until(Duration::from_secs(15), || {
            get(&self.url("/readyz")).is_ok_and(|(s, _)| s == 200)
        });
        assert!(
            ok,
            "/readyz did not become 200 within 15 s:\n{}",
            self.logs()
        );
    }

    /// The `reconciles` counter once it has not moved for `quiet`; panics when
    /// it keeps moving for 10 s although nothing changes (no resync is due).
    fn settled_reconciles(&self, quiet: Duration) -> u64 {
        let first = self.status()["reconciles"].as_u64().expect("reconciles");
        let mut last = first;
        let mut since = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(10);
        while since.elapsed() < quiet {
            assert!(
                Instant::now() < deadline,
                "reconciles never settle ({first} → {last} in 10 s with no change to the files)"
            );
            std::thread::sleep(Duration::from_millis(50));
            let now = self.status()["reconciles"].as_u64().expect("reconciles");
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
        last
    }

    fn metrics(&self) -> String {
        let (code, body) = get(&self.url("/metrics")).expect("GET /metrics");
        assert_eq!(code, 200, "/metrics: {body}");
        body
    }

    /// Sends `signal` (by name, through kill(1)) and waits up to `timeout`.
    fn signal_and_wait(&mut self, signal: &str, timeout: Duration) -> Option<ExitStatus> {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill(1)");
        assert!(ok.success(), "kill -{signal} failed");
        let mut status = None;
        wait_until(timeout, || {
            status = self.exited();
            status.is_some()
        });
        status
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// A slow webhook receiver (axum on 127.0.0.1:0 in a runtime of its own).

#[derive(Debug, Clone)]
struct Hit {
    id: String,
    body_id: String,
    verified: bool,
}

struct ReceiverState {
    webhook: standardwebhooks::Webhook,
    delay: Duration,
    hits: Mutex<Vec<Hit>>,
    arrived: AtomicUsize,
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
) -> &'static str {
    s.arrived.fetch_add(1, Ordering::SeqCst);
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    tokio::time::sleep(s.delay).await;
    let hit = Hit {
        id: headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        body_id: parsed["id"].as_str().unwrap_or_default().to_string(),
        verified: s.webhook.verify(&body, &headers).is_ok(),
    };
    s.hits.lock().unwrap_or_else(|e| e.into_inner()).push(hit);
    "ok"
}

impl Receiver {
    fn start(delay: Duration) -> Self {
        let state = Arc::new(ReceiverState {
            webhook: standardwebhooks::Webhook::new(SECRET).expect("a valid secret"),
            delay,
            hits: Mutex::new(Vec::new()),
            arrived: AtomicUsize::new(0),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("an address").port();
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

    fn arrived(&self) -> usize {
        self.state.arrived.load(Ordering::SeqCst)
    }

    fn hits(&self) -> Vec<Hit> {
        self.state
            .hits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
// Prometheus text exposition (format 0.0.4), parsed strictly enough to catch
// what a scraper would reject.

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: Option<String>,
    samples: Vec<Sample>,
}

fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s
            .parse::<f64>()
            .map_err(|e| format!("bad value {s:?}: {e}")),
    }
}

/// `name{a="x",b="y"} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("a sample without a value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let end;
        loop {
            // Skip separators, read a label name up to '='.
            while chars.peek().is_some_and(|(_, c)| *c == ',' || *c == ' ') {
                chars.next();
            }
            if let Some(&(i, '}')) = chars.peek() {
                end = i;
                break;
            }
            let start = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
            let mut eq = None;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    eq = Some(i);
                    break;
                }
            }
            let eq = eq.ok_or("a label without '='")?;
            let lname = inner[start..eq].trim();
            if !is_label_name(lname) {
                return Err(format!("bad label name {lname:?}"));
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {lname} value not quoted"));
            }
            let mut value = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape \\{other:?} in label {lname}")),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\n' => return Err("a raw newline in a label value".into()),
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("label {lname} value not terminated"));
            }
            if labels.insert(lname.to_string(), value).is_some() {
                return Err(format!("label {lname} given twice"));
            }
            match chars.peek() {
                Some((_, ',' | '}')) => {}
                other => return Err(format!("unexpected {other:?} after label {lname}")),
            }
        }
        rest = &inner[end + 1..];
    }
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next().ok_or("a sample without a value")?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|e| format!("bad timestamp {ts:?}: {e}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields after the value".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The family a sample name belongs to, given the declared families.
fn family_of<'a>(name: &'a str, families: &BTreeMap<String, Family>) -> Option<&'a str> {
    if families.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(f) = families.get(base)
        {
            let fits = match f.kind.as_str() {
                "histogram" => true,
                "summary" => suffix != "_bucket",
                _ => false,
            };
            if fits {
                return Some(base);
            }
        }
    }
    None
}

/// Parses an exposition: every sample belongs to a family declared by a
/// `# TYPE` line before it, families are contiguous, no sample repeats, and
/// histograms are well formed.
fn parse_exposition(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut seen: BTreeSet<(String, Vec<(String, String)>)> = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            match parts.next() {
                Some("HELP") => {
                    let name = parts
                        .next()
                        .ok_or_else(|| at("HELP without a name".into()))?;
                    if !is_metric_name(name) {
                        return Err(at(format!("bad metric name {name:?}")));
                    }
                    let fam = families.entry(name.to_string()).or_default();
                    if fam
                        .help
                        .replace(parts.next().unwrap_or("").to_string())
                        .is_some()
                    {
                        return Err(at(format!("second HELP for {name}")));
                    }
                }
                Some("TYPE") => {
                    let name = parts
                        .next()
                        .ok_or_else(|| at("TYPE without a name".into()))?;
                    let kind = parts.next().unwrap_or("").trim();
                    if !is_metric_name(name) {
                        return Err(at(format!("bad metric name {name:?}")));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type {kind:?}")));
                    }
                    let fam = families.entry(name.to_string()).or_default();
                    if !fam.kind.is_empty() {
                        return Err(at(format!("second TYPE for {name}")));
                    }
                    if !fam.samples.is_empty() {
                        return Err(at(format!("TYPE for {name} after its samples")));
                    }
                    fam.kind = kind.to_string();
                }
                _ => {} // a plain comment
            }
            continue;
        }
        let sample = parse_sample(line).map_err(at)?;
        let family = family_of(&sample.name, &families)
            .filter(|f| !families[*f].kind.is_empty())
            .ok_or_else(|| at(format!("sample {} of no declared family", sample.name)))?
            .to_string();
        if current.as_deref() != Some(family.as_str()) {
            if let Some(prev) = current.take() {
                finished.insert(prev);
            }
            if finished.contains(&family) {
                return Err(at(format!("the samples of {family} are not one group")));
            }
            current = Some(family.clone());
        }
        let key = (
            sample.name.clone(),
            sample.labels.clone().into_iter().collect::<Vec<_>>(),
        );
        if !seen.insert(key) {
            return Err(at("a repeated sample (same name and labels)".into()));
        }
        if let Some(f) = families.get_mut(&family) {
            f.samples.push(sample);
        }
    }
    for (name, fam) in &families {
        if fam.kind.is_empty() {
            return Err(format!("{name} has HELP but no TYPE"));
        }
        if fam.kind == "histogram" {
            check_histogram(name, fam)?;
        }
        if fam.kind == "counter"
            && let Some(s) = fam
                .samples
                .iter()
                .find(|s| s.value.is_nan() || s.value < 0.0)
        {
            return Err(format!(
                "counter {name} has a negative or NaN sample: {s:?}"
            ));
        }
    }
    Ok(families)
}

/// One histogram series: its buckets (upper bound, count), `_sum` and `_count`.
#[derive(Default)]
struct Series {
    buckets: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
}

fn check_histogram(name: &str, fam: &Family) -> Result<(), String> {
    // Per label set without `le`: buckets cumulative, a +Inf bucket equal to _count, a _sum.
    let mut series: BTreeMap<Vec<(String, String)>, Series> = BTreeMap::new();
    for s in &fam.samples {
        let mut labels = s.labels.clone();
        let le = labels.remove("le");
        let entry = series.entry(labels.into_iter().collect()).or_default();
        match s.name.strip_prefix(name) {
            Some("_bucket") => {
                let le = le.ok_or_else(|| format!("{name}_bucket without le"))?;
                entry.buckets.push((parse_value(&le)?, s.value));
            }
            Some("_sum") => entry.sum = Some(s.value),
            Some("_count") => entry.count = Some(s.value),
            _ => return Err(format!("histogram {name} has a bare sample {}", s.name)),
        }
    }
    for (
        labels,
        Series {
            mut buckets,
            sum,
            count,
        },
    ) in series
    {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let inf = buckets
            .last()
            .filter(|b| b.0 == f64::INFINITY)
            .ok_or_else(|| format!("{name}{labels:?}: no +Inf bucket"))?
            .1;
        if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!(
                "{name}{labels:?}: buckets not cumulative: {buckets:?}"
            ));
        }
        if count != Some(inf) {
            return Err(format!(
                "{name}{labels:?}: _count {count:?} != +Inf bucket {inf}"
            ));
        }
        if sum.is_none() {
            return Err(format!("{name}{labels:?}: no _sum"));
        }
    }
    Ok(())
}

fn sample_value(
    families: &BTreeMap<String, Family>,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let fam = family_of(name, families)?;
    families[fam]
        .samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .reduce(|a, b| a + b)
}

#[test]
fn exposition_parser_accepts_good_text_and_rejects_bad() {
    let good = "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"z\"} 3\na_total 1 1700000000000\n\
                # TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.7\nh_count 2\n\
                # TYPE g gauge\ng NaN\n";
    let f = parse_exposition(good).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f["a_total"].samples.len(), 2);
    assert_eq!(sample_value(&f, "a_total", &[("x", "1")]), Some(3.0));
    assert_eq!(f["a_total"].samples[0].labels["y"], "q\"z");
    for bad in [
        "a 1\n",                                                          // undeclared
        "# TYPE a counter\na{x=1} 1\n",                                   // unquoted
        "# TYPE a counter\na one\n",                                      // value
        "# TYPE a counter\na 1\n# TYPE b gauge\nb 1\na{x=\"2\"} 1\n",     // split group
        "# TYPE a counter\na 1\na 2\n",                                   // repeated
        "# TYPE a wat\na 1\n",                                            // type
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n", // no +Inf
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE g gauge\ng_sum 1\n", // suffix on a gauge
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted: {bad}");
    }
}

// ---------------------------------------------------------------------------
// 1. Watching: a new file is applied within 2 s; a burst is coalesced.

#[test]
fn a_new_file_is_applied_within_two_seconds_and_a_burst_is_coalesced() {
    let (f, db) = sqlite_setup(
        &[(
            "segments.d/keep.toml",
            segment_toml("keep", "country = \"DE\""),
        )],
        5,
        1,
    );
    let d = Daemon::start(f.path(), &db.url, &[], &[]);
    d.wait_ready();
    assert_eq!(members_in_db(&db.url, "keep"), Some(5), "{}", d.logs());
    // Idle: the daemon's own reads of the files must not wake the watcher.
    let idle = d.settled_reconciles(Duration::from_millis(300));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        d.status()["reconciles"].as_u64(),
        Some(idle),
        "reconciles while nothing changed and no resync was due"
    );

    f.write(
        "segments.d/fresh.toml",
        &segment_toml("fresh", "country = \"FR\""),
    );
    let written = Instant::now();
    let mut seen_after = None;
    wait_until(Duration::from_secs(5), || {
        let started = written.elapsed();
        let ok = members_in_db(&db.url, "fresh") == Some(1);
        if ok {
            seen_after = Some(started);
        }
        ok
    });
    let seen =
        seen_after.unwrap_or_else(|| panic!("fresh.toml not applied within 5 s:\n{}", d.logs()));
    assert!(
        seen <= Duration::from_secs(2),
        "fresh.toml was applied only after {seen:?} (> 2 s)"
    );

    // A `git checkout`: 50 files written as fast as possible (half of them via a
    // temporary name and a rename, as git and editors do).
    let before = d.settled_reconciles(Duration::from_millis(600));
    for i in 0..50 {
        let text = segment_toml(&format!("burst-{i:02}"), "country = \"DE\"");
        if i % 2 == 0 {
            f.write(&format!("segments.d/burst/burst-{i:02}.toml"), &text);
        } else {
            let tmp = f.path().join(format!("segments.d/.burst-{i:02}.toml.tmp"));
            std::fs::write(&tmp, text).expect("write");
            std::fs::rename(&tmp, f.path().join(format!("segments.d/burst-{i:02}.toml")))
                .expect("rename");
        }
    }
    let all = wait_until(Duration::from_secs(10), || {
        count(
            &db.url,
            "SELECT COUNT(*) FROM segd_definitions WHERE kind = 'segment' AND name LIKE 'burst-%'",
        ) == 50
    });
    assert!(
        all,
        "the 50 files were not all applied within 10 s:\n{}",
        d.logs()
    );
    let after = d.settled_reconciles(Duration::from_millis(600));
    let grew = after - before;
    assert!(
        (1..=5).contains(&grew),
        "a burst of 50 files caused {grew} reconciles (expected 1..=5)"
    );
    let history = count(&db.url, "SELECT COUNT(*) FROM segd_apply_history");
    assert!(
        history <= 2 + 5,
        "{history} apply-history entries for: initial tree, fresh.toml and one burst"
    );
    let status = d.status();
    assert!(
        status["last_reconcile"]["ok"].as_bool() == Some(true),
        "{status}"
    );
    assert_eq!(status["degraded"], Value::Array(vec![]), "{status}");
}

/// SQLite: billing rows written behind segd's back (a sync), never analyzed,
/// get planner statistics from the daemon's start-up refresh.
#[test]
fn the_daemon_analyzes_sqlite_tables_that_have_no_statistics() {
    let (f, db) = sqlite_setup(
        &[(
            "segments.d/keep.toml",
            segment_toml("keep", "country = \"DE\""),
        )],
        5,
        1,
    );
    let unanalyzed = || {
        let analyzed = crate::statistics::analyzed(&db.url);
        ["customers", "invoices"]
            .into_iter()
            .filter(|t| !analyzed.contains(*t))
            .count()
    };
    assert_eq!(unanalyzed(), 2, "analyzed before the daemon started");
    let d = Daemon::start(f.path(), &db.url, &[], &[]);
    assert!(
        wait_until(Duration::from_secs(10), || unanalyzed() == 0),
        "customers and invoices are not analyzed 10 s after the start:\n{}",
        d.logs()
    );
}

// ---------------------------------------------------------------------------
// 2. A file that can no longer be read keeps its definitions, on PostgreSQL
// (where a leader applies). Invalid and unreadable files on SQLite, and the
// running daemon's refusal to delete every definition, are reconciles tested
// in-process: src/daemon/tests/reconcile.rs.

fn degraded_entries(status: &Value) -> Vec<(String, String)> {
    status["degraded"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    (
                        d["name"].as_str().unwrap_or("?").to_string(),
                        d["file"].as_str().unwrap_or("?").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether /v1/status lists `file` (below `--dir`) as degraded.
fn degraded_file(status: &Value, file: &str) -> bool {
    degraded_entries(status).iter().any(|(_, f)| f == file)
}

/// Three segments (one in a subfolder) and a communication.
fn unreadable_tree() -> Vec<(&'static str, String)> {
    vec![
        (
            "segments.d/fifo.toml",
            segment_toml("fifo", "country = \"DE\""),
        ),
        (
            "segments.d/link.toml",
            segment_toml("link", "country = \"FR\""),
        ),
        (
            "segments.d/team/deep.toml",
            segment_toml("deep", "country = \"DE\""),
        ),
        (
            "communications.d/mail.toml",
            email_comm("mail", "fifo", MANUAL),
        ),
    ]
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn a_file_or_folder_that_can_no_longer_be_read_keeps_its_definitions_on_postgres() {
    let Some(pg) = block_on(fresh_pg_db(
        "a_file_or_folder_that_can_no_longer_be_read_keeps_its_definitions_on_postgres",
    )) else {
        return;
    };
    let f = Fixture::empty();
    for (rel, t) in unreadable_tree() {
        f.write(rel, &t);
    }
    unreadable_files_keep_their_definitions(&f, &pg.url);
}

/// The names of the applied definitions.
fn applied_names(url: &str) -> Vec<String> {
    strings(url, "SELECT name FROM segd_definitions ORDER BY name")
}

fn unreadable_files_keep_their_definitions(f: &Fixture, url: &str) {
    let d = Daemon::start(f.path(), url, &["--resync", "1s"], &[]);
    d.wait_ready();
    let all = ["deep", "fifo", "link", "mail"];
    // On PostgreSQL the daemon is ready before its leader has applied.
    let applied = wait_until(Duration::from_secs(15), || applied_names(url) == all);
    assert!(applied, "{:?}\n{}", applied_names(url), d.logs());

    // A FIFO, a link out of the tree and a file that is no longer UTF-8, each
    // in place of an applied definition.
    let seg = f.path().join("segments.d");
    std::fs::remove_file(seg.join("fifo.toml")).expect("rm");
    let made = Command::new("mkfifo")
        .arg(seg.join("fifo.toml"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    std::fs::remove_file(seg.join("link.toml")).expect("rm");
    std::os::unix::fs::symlink("/etc/passwd", seg.join("link.toml")).expect("symlink");
    std::fs::write(
        f.path().join("communications.d/mail.toml"),
        b"[communication]\nname = \"mail\xff\"\n",
    )
    .expect("write");
    let mut status = Value::Null;
    let reported = wait_until(Duration::from_secs(15), || {
        status = d.status();
        [
            "segments.d/fifo.toml",
            "segments.d/link.toml",
            "communications.d/mail.toml",
        ]
        .iter()
        .all(|file| degraded_file(&status, file))
    });
    assert!(reported, "not reported as degraded: {status}\n{}", d.logs());
    assert_eq!(
        applied_names(url),
        all,
        "an unreadable file's definition was deleted:\n{}",
        d.logs()
    );

    // The whole segments.d moved out of the tree, a link left in its place.
    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::rename(&seg, outside.path().join("segments.d")).expect("move");
    std::os::unix::fs::symlink(outside.path().join("segments.d"), &seg).expect("symlink");
    let reported = wait_until(Duration::from_secs(15), || {
        status = d.status();
        degraded_file(&status, "segments.d")
    });
    assert!(
        reported,
        "segments.d not reported as degraded: {status}\n{}",
        d.logs()
    );
    // Two more reconciles, to be sure none deletes.
    let before = status["reconciles"].as_u64().unwrap_or(0);
    assert!(wait_until(Duration::from_secs(15), || {
        d.status()["reconciles"].as_u64().unwrap_or(0) > before + 1
    }));
    assert_eq!(
        applied_names(url),
        all,
        "a definition of the linked-out segments.d was deleted:\n{}",
        d.logs()
    );
}

// ---------------------------------------------------------------------------
// 3. Drift in the database is undone at the next resync.

#[test]
fn drift_in_the_database_is_undone_at_the_next_resync() {
    let (f, db) = sqlite_setup(
        &[
            (
                "segments.d/keep.toml",
                segment_toml("keep", "country = \"DE\""),
            ),
            (
                "segments.d/also.toml",
                segment_toml("also", "country = \"FR\""),
            ),
        ],
        5,
        1,
    );
    let d = Daemon::start(f.path(), &db.url, &["--resync", "1s"], &[]);
    d.wait_ready();
    assert_eq!(members_in_db(&db.url, "keep"), Some(5));
    let spec = strings(
        &db.url,
        "SELECT spec FROM segd_definitions WHERE name = 'keep'",
    );
    assert_eq!(spec.len(), 1);
    assert!(spec[0].contains("DE"), "{spec:?}");

    // The spec text edited by hand (hash left alone), a definition deleted,
    // one inserted that no file declares.
    db.exec(
        "UPDATE segd_definitions SET spec = replace(spec, '\"DE\"', '\"FR\"') WHERE name = 'keep';\n\
         DELETE FROM segd_definitions WHERE name = 'also';\n\
         INSERT INTO segd_definitions (kind, name, spec, hash, source, templates, protect, applied_at) \
         SELECT kind, 'intruder', spec, hash, 'segments.d/intruder.toml', templates, 0, applied_at \
         FROM segd_definitions WHERE name = 'keep';",
    );
    let drifted = strings(
        &db.url,
        "SELECT spec FROM segd_definitions WHERE name = 'keep'",
    );
    let undone = wait_until(Duration::from_secs(6), || {
        strings(
            &db.url,
            "SELECT spec FROM segd_definitions WHERE name = 'keep'",
        ) == spec
            && count(
                &db.url,
                "SELECT COUNT(*) FROM segd_definitions WHERE name = 'also'",
            ) == 1
            && count(
                &db.url,
                "SELECT COUNT(*) FROM segd_definitions WHERE name = 'intruder'",
            ) == 0
    });
    assert!(
        undone,
        "drift not undone within 6 s with --resync 1s (drifted spec {drifted:?}, now {:?}; also: {}, intruder: {}):\n{}",
        strings(
            &db.url,
            "SELECT spec FROM segd_definitions WHERE name = 'keep'"
        ),
        count(
            &db.url,
            "SELECT COUNT(*) FROM segd_definitions WHERE name = 'also'"
        ),
        count(
            &db.url,
            "SELECT COUNT(*) FROM segd_definitions WHERE name = 'intruder'"
        ),
        d.logs()
    );
    assert_eq!(members_in_db(&db.url, "keep"), Some(5));
    assert_eq!(members_in_db(&db.url, "also"), Some(1));
    let last = strings(
        &db.url,
        "SELECT summary FROM segd_apply_history ORDER BY id DESC LIMIT 1",
    );
    assert!(!last.is_empty(), "undoing drift left no apply history");
}

// ---------------------------------------------------------------------------
// 4. /metrics is Prometheus text with reconcile and delivery families.

/// Segment `de` (customers in DE) and the manual email `mail` to it, on SQLite
/// with `de` customers in DE and `fr` in FR; and the folder its .eml files go to.
fn mail_setup(de: usize, fr: usize) -> (Fixture, TestDb, std::path::PathBuf) {
    let (f, db) = sqlite_setup(
        &[
            ("segments.d/de.toml", segment_toml("de", "country = \"DE\"")),
            (
                "communications.d/mail.toml",
                email_comm("mail", "de", MANUAL),
            ),
        ],
        de,
        fr,
    );
    let outbox = f.path().join("mail-out");
    (f, db, outbox)
}

#[test]
fn metrics_are_prometheus_text_with_reconcile_and_delivery_families() {
    let (f, db, outbox) = mail_setup(5, 1);
    let outbox_s = outbox.display().to_string();
    let d = Daemon::start(
        f.path(),
        &db.url,
        &[],
        &[("SEGD_API_TOKEN", TOKEN), ("SEGD_OUTBOX_DIR", &outbox_s)],
    );
    d.wait_ready();
    let before = parse_exposition(&d.metrics()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        before.contains_key("segd_reconciles_total"),
        "{:?}",
        before.keys()
    );

    let auth = format!("Bearer {TOKEN}");
    let (code, body) = http(
        "POST",
        &d.url("/v1/communications/mail/trigger"),
        &[("Authorization", &auth)],
        "",
    )
    .expect("POST trigger");
    assert!((200..300).contains(&code), "trigger: {code} {body}");
    let sent = wait_until(Duration::from_secs(10), || {
        d.status()["deliveries"]["sent"].as_u64() == Some(5)
    });
    assert!(sent, "5 emails not sent: {}\n{}", d.status(), d.logs());
    let emls = std::fs::read_dir(&outbox).map(|r| r.count()).unwrap_or(0);
    assert_eq!(emls, 5, "files in the outbox folder");

    let mut families = BTreeMap::new();
    let complete = wait_until(Duration::from_secs(5), || {
        families = parse_exposition(&d.metrics()).unwrap_or_else(|e| panic!("{e}"));
        sample_value(&families, "segd_deliveries_total", &[("result", "sent")]) == Some(5.0)
            && sample_value(&families, "segd_outbox_deliveries", &[("status", "sent")]) == Some(5.0)
    });
    assert!(
        complete,
        "delivery metrics after 5 sends: {:#?}",
        families.keys()
    );
    let kind = |n: &str| families.get(n).map(|f| f.kind.clone()).unwrap_or_default();
    assert_eq!(kind("segd_reconciles_total"), "counter");
    assert_eq!(kind("segd_deliveries_total"), "counter");
    assert_eq!(kind("segd_delivery_duration_seconds"), "histogram");
    assert_eq!(kind("segd_degraded_definitions"), "gauge");
    assert!(
        families.keys().any(|k| k.contains("trigger_runs")),
        "{:?}",
        families.keys()
    );
    assert!(
        sample_value(&families, "segd_reconciles_total", &[("result", "ok")]).unwrap_or(0.0) >= 1.0
    );
    assert_eq!(
        sample_value(
            &families,
            "segd_delivery_duration_seconds_count",
            &[("channel", "email")]
        ),
        Some(5.0)
    );
    for (name, fam) in &families {
        assert!(fam.help.is_some(), "{name} has no # HELP");
    }
}

// ---------------------------------------------------------------------------
// 5. The trigger endpoint's token, and loopback only.

fn listening_sockets(pid: u32) -> Option<Vec<String>> {
    let out = Command::new("ss").args(["-ltnpH"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !text.contains("pid=") {
        return None; // no process information (permissions)
    }
    let needle = format!("pid={pid},");
    Some(
        text.lines()
            .filter(|l| l.contains(&needle))
            .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
            .collect(),
    )
}

fn is_loopback(local: &str) -> bool {
    local.starts_with("127.") || local.starts_with("[::1]")
}

#[test]
fn the_trigger_endpoint_needs_the_token_and_the_api_stays_on_loopback() {
    let (f, db, outbox) = mail_setup(3, 0);
    let outbox_s = outbox.display().to_string();
    let runs = |db: &TestDb| count(&db.url, "SELECT COUNT(*) FROM segd_trigger_runs");

    // With a token.
    {
        let d = Daemon::start(
            f.path(),
            &db.url,
            &[],
            &[("SEGD_API_TOKEN", TOKEN), ("SEGD_OUTBOX_DIR", &outbox_s)],
        );
        d.wait_ready();
        // Each credential the endpoint refuses, and that only POST triggers,
        // are tested in-process (src/daemon/tests/api.rs); here, that the
        // daemon asks for the token at all.
        let url = d.url("/v1/communications/mail/trigger");
        let (code, body) = http("POST", &url, &[], "").expect("POST trigger");
        assert_eq!(code, 401, "trigger without a token: {body}");
        let auth = format!("Bearer {TOKEN}");
        let (code, body) =
            http("POST", &url, &[("Authorization", &auth)], "").expect("POST trigger");
        assert!(
            (200..300).contains(&code),
            "trigger with the token: {code} {body}"
        );
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(answer["enqueued"].as_u64(), Some(3), "{body}");
        let (code, body) = http(
            "POST",
            &d.url("/v1/communications/no-such-thing/trigger"),
            &[("Authorization", &auth)],
            "",
        )
        .expect("POST trigger");
        assert_eq!(code, 404, "an unknown communication: {body}");
        let sent = wait_until(Duration::from_secs(10), || {
            d.status()["deliveries"]["sent"].as_u64() == Some(3)
        });
        assert!(
            sent,
            "the authorised trigger did not deliver: {}",
            d.status()
        );
        assert_eq!(runs(&db), 1);

        // Loopback only: every listening socket of the process.
        match listening_sockets(d.pid()) {
            Some(socks) => {
                assert!(
                    !socks.is_empty(),
                    "ss shows no listening socket of pid {}",
                    d.pid()
                );
                assert!(
                    socks.iter().all(|s| is_loopback(s)),
                    "the daemon listens beyond loopback: {socks:?}"
                );
            }
            None => eprintln!(
                "note: `ss -ltnp` unavailable or without process info; socket check skipped"
            ),
        }
    }

    // Without a token: disabled, whatever is presented.
    {
        let d = Daemon::start(f.path(), &db.url, &[], &[("SEGD_OUTBOX_DIR", &outbox_s)]);
        d.wait_ready();
        let url = d.url("/v1/communications/mail/trigger");
        for headers in [
            vec![],
            vec![("Authorization", "Bearer ")],
            vec![("Authorization", "Bearer anything")],
        ] {
            let (code, body) = http("POST", &url, &headers, "").expect("POST trigger");
            assert!(
                !(200..300).contains(&code),
                "without SEGD_API_TOKEN the trigger endpoint must be disabled, got {code} {body}"
            );
        }
        // An empty SEGD_API_TOKEN is no token either.
        drop(d);
        let d = Daemon::start(
            f.path(),
            &db.url,
            &[],
            &[("SEGD_API_TOKEN", ""), ("SEGD_OUTBOX_DIR", &outbox_s)],
        );
        d.wait_ready();
        let (code, body) = http(
            "POST",
            &d.url("/v1/communications/mail/trigger"),
            &[("Authorization", "Bearer ")],
            "",
        )
        .expect("POST trigger");
        assert!(
            !(200..300).contains(&code),
            "with SEGD_API_TOKEN=\"\": {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(runs(&db), 1, "a trigger ran without a configured token");
    }

    // The default address is 127.0.0.1:8080, when it is free.
    let free = std::net::TcpListener::bind("0.0.0.0:8080").is_ok()
        && std::net::TcpListener::bind("127.0.0.1:8080").is_ok();
    if free {
        let d = Daemon::spawn(f.path(), &db.url, &[], &[], "127.0.0.1:8080");
        assert_eq!(get(&d.url("/v1/status")).map(|r| r.0), Ok(200));
        match listening_sockets(d.pid()) {
            Some(socks) => assert_eq!(socks, vec!["127.0.0.1:8080".to_string()]),
            None => eprintln!("note: `ss -ltnp` unavailable; default-address socket check skipped"),
        }
    } else {
        eprintln!("note: port 8080 is in use; default-address check skipped");
    }

    // Beyond loopback only when told.
    let port = free_port();
    let any = format!("0.0.0.0:{port}");
    let d = Daemon::spawn(
        f.path(),
        &db.url,
        &["--listen", &any],
        &[],
        &format!("127.0.0.1:{port}"),
    );
    if let Some(socks) = listening_sockets(d.pid()) {
        assert_eq!(socks, vec![any.clone()], "--listen {any}");
    }
}

// ---------------------------------------------------------------------------
// 6. SIGTERM during a delivery run: exit 0 in time, nothing lost.

fn deliveries_json(dir: &Path, url: &str) -> Vec<Value> {
    let o = segd(dir, url, &["deliveries", "--format", "json"], &[]);
    assert!(o.status.success(), "segd deliveries: {}", text(&o));
    serde_json::from_slice::<Value>(&o.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_else(|| panic!("segd deliveries --format json: {}", text(&o)))
}

#[test]
fn sigterm_during_deliveries_exits_cleanly_and_loses_nothing() {
    const N: usize = 40;
    let rec = Receiver::start(Duration::from_millis(250));
    let (f, db) = sqlite_setup(
        &[
            ("segments.d/de.toml", segment_toml("de", "country = \"DE\"")),
            (
                "communications.d/hook.toml",
                webhook_comm("hook", "de", &rec.url),
            ),
        ],
        N,
        2,
    );
    // Two at a time: one claimed batch (2 × 16 rows) takes ~4 s at the receiver.
    let env = [
        ("SEGD_API_TOKEN", TOKEN),
        (SECRET_ENV, SECRET),
        ("SEGD_DELIVERY_CONCURRENCY", "2"),
    ];
    let mut d = Daemon::start(f.path(), &db.url, &[], &env);
    d.wait_ready();
    let auth = format!("Bearer {TOKEN}");
    let (code, body) = http(
        "POST",
        &d.url("/v1/communications/hook/trigger"),
        &[("Authorization", &auth)],
        "",
    )
    .expect("POST trigger");
    assert!((200..300).contains(&code), "trigger: {code} {body}");
    let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(answer["enqueued"].as_u64(), Some(N as u64), "{body}");
    assert!(
        wait_until(Duration::from_secs(10), || rec.arrived() >= 3),
        "no webhook arrived:\n{}",
        d.logs()
    );

    let arrived_at_signal = rec.arrived();
    let t0 = Instant::now();
    let exit = d.signal_and_wait("TERM", Duration::from_secs(10));
    let took = t0.elapsed();
    let exit = exit.unwrap_or_else(|| panic!("no exit within 10 s of SIGTERM:\n{}", d.logs()));
    assert_eq!(
        exit.code(),
        Some(0),
        "exit after SIGTERM ({took:?}):\n{}",
        d.logs()
    );
    assert!(
        arrived_at_signal < N,
        "all webhooks arrived before SIGTERM; the test proves nothing"
    );

    let rows = deliveries_json(f.path(), &db.url);
    assert_eq!(rows.len(), N);
    let by_status = |rows: &[Value], s: &str| rows.iter().filter(|r| r["status"] == s).count();
    assert_eq!(
        by_status(&rows, "sending"),
        0,
        "the graceful stop left claimed rows behind: {rows:#?}"
    );
    assert!(
        by_status(&rows, "sent") >= arrived_at_signal,
        "{} sent, but {arrived_at_signal} had reached the receiver before SIGTERM",
        by_status(&rows, "sent")
    );
    // Once stopped, nothing more is started: only the requests in flight (2)
    // finish, and the claimed rows not started go back to pending. A few more
    // may start between reading the count and the signal landing.
    let after_stop = rec.arrived();
    assert!(
        after_stop <= arrived_at_signal + 6,
        "{after_stop} requests arrived, {arrived_at_signal} before SIGTERM: the stop kept sending"
    );
    assert_eq!(
        by_status(&rows, "pending"),
        N - by_status(&rows, "sent"),
        "the rows not sent are released to pending: {rows:#?}"
    );

    let once = segd(
        f.path(),
        &db.url,
        &["daemon", "--once"],
        &[(SECRET_ENV, SECRET)],
    );
    assert!(once.status.success(), "daemon --once: {}", text(&once));
    let rows = deliveries_json(f.path(), &db.url);
    assert_eq!(
        by_status(&rows, "sent"),
        N,
        "not every delivery is sent after daemon --once: {rows:#?}"
    );
    let keys: BTreeSet<String> = rows
        .iter()
        .map(|r| {
            r["idempotency_key"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(keys.len(), N, "idempotency keys are not distinct");
    let hits = rec.hits();
    let ids: BTreeSet<String> = hits.iter().map(|h| h.id.clone()).collect();
    assert_eq!(
        ids, keys,
        "the webhook-ids received differ from the outbox's keys"
    );
    let mut per_id: BTreeMap<&str, usize> = BTreeMap::new();
    for h in &hits {
        *per_id.entry(&h.id).or_default() += 1;
        assert_eq!(h.id, h.body_id, "webhook-id header and body id differ");
        assert!(
            h.verified,
            "a webhook failed Standard Webhooks verification: {h:?}"
        );
    }
    let twice: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "a graceful stop sent deliveries twice: {twice:?}"
    );
}

/// A runaway template stored by an older segd (validate now rejects it): its
/// deliveries fail for good at the render bound, while webhooks of another
/// communication, the HTTP API, the CLI and SIGTERM carry on.
#[test]
fn a_runaway_template_fails_its_deliveries_and_wedges_nothing() {
    const N: usize = 8;
    let rec = Receiver::start(Duration::ZERO);
    let (f, db) = sqlite_setup(
        &[
            ("segments.d/de.toml", segment_toml("de", "country = \"DE\"")),
            (
                "communications.d/mail.toml",
                email_comm("mail", "de", MANUAL),
            ),
            (
                "communications.d/mail-cli.toml",
                email_comm("mail-cli", "de", MANUAL),
            ),
            (
                "communications.d/hook.toml",
                webhook_comm("hook", "de", &rec.url),
            ),
        ],
        N,
        0,
    );
    let applied = segd(f.path(), &db.url, &["apply", "--auto-approve"], &[]);
    assert!(applied.status.success(), "apply: {}", text(&applied));
    // What an older segd let through: the body becomes ten nested loops.
    db.exec(&format!(
        "UPDATE segd_definitions SET spec = replace(spec, 'Hello {{{{ customer.name }}}}:', '{}') \
         WHERE name LIKE 'mail%'",
        crate::cli_validate::runaway_template()
    ));
    assert_eq!(
        count(
            &db.url,
            "SELECT COUNT(*) FROM segd_definitions WHERE spec LIKE '%range(10)%'"
        ),
        2
    );
    let outbox = f.path().join("mail-out");
    let outbox_env = outbox.display().to_string();
    let env = [
        ("SEGD_API_TOKEN", TOKEN),
        (SECRET_ENV, SECRET),
        ("SEGD_OUTBOX_DIR", outbox_env.as_str()),
    ];
    // `--no-apply`: the stored definition stays as it is.
    let mut d = Daemon::start(f.path(), &db.url, &["--no-apply"], &env);
    d.wait_ready();
    let auth = format!("Bearer {TOKEN}");
    for name in ["mail", "hook"] {
        let (code, body) = http(
            "POST",
            &d.url(&format!("/v1/communications/{name}/trigger")),
            &[("Authorization", &auth)],
            "",
        )
        .unwrap_or_else(|e| panic!("POST trigger {name}: {e}"));
        assert!((200..300).contains(&code), "trigger {name}: {code} {body}");
    }
    assert!(
        get(&d.url("/healthz")).is_ok_and(|(s, _)| s == 200),
        "/healthz does not answer while the runaway deliveries render:\n{}",
        d.logs()
    );
    // The CLI writes and delivers alongside: no `database is locked`, no hang.
    let cli = segd_cmd()
        .args(["trigger", "mail-cli", "--dir"])
        .arg(f.path())
        .args(["--database-url", &db.url])
        .env("SEGD_OUTBOX_DIR", &outbox_env)
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run segd trigger");
    assert!(
        String::from_utf8_lossy(&cli.stdout).contains(&format!("{N} enqueued")),
        "{}",
        text(&cli)
    );

    let by = |rows: &[Value], comm: &str, status: &str| {
        rows.iter()
            .filter(|r| r["communication"] == comm && r["status"] == status)
            .count()
    };
    let mut rows = Vec::new();
    let done = wait_until(Duration::from_secs(120), || {
        rows = deliveries_json(f.path(), &db.url);
        by(&rows, "mail", "failed") == N
            && by(&rows, "mail-cli", "failed") == N
            && by(&rows, "hook", "sent") == N
    });
    assert!(done, "not settled in 120 s: {rows:#?}\n{}", d.logs());
    assert_eq!(rec.hits().len(), N, "webhooks received");
    let reason = format!(
        "rendering the body failed: template render exceeded its work limit (fuel {})",
        segd::validate::template::RENDER_FUEL
    );
    for r in rows.iter().filter(|r| r["channel"] == "email") {
        assert_eq!(r["last_error"].as_str(), Some(reason.as_str()), "{r:#}");
        assert_eq!(r["attempts"].as_i64(), Some(1), "retried: {r:#}");
    }
    assert!(
        !outbox.exists() || std::fs::read_dir(&outbox).map_or(0, Iterator::count) == 0,
        "a runaway email was written"
    );
    let t0 = Instant::now();
    let exit = d
        .signal_and_wait("TERM", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no exit within 10 s of SIGTERM:\n{}", d.logs()));
    assert_eq!(
        exit.code(),
        Some(0),
        "exit after SIGTERM ({:?})",
        t0.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 7. Scheduling: every-second occurrences, and downtime caught up once, late.

#[derive(Debug, Clone, PartialEq, Eq)]
struct LedgerRow {
    occurrence: DateTime<Utc>,
    late: bool,
}

fn ledger(url: &str, communication: &str) -> Vec<LedgerRow> {
    strings(
        url,
        &format!(
            "SELECT occurrence || '|' || CAST(CAST(late AS INTEGER) AS TEXT) FROM segd_trigger_runs \
             WHERE communication = '{communication}' AND kind = 'scheduled' ORDER BY occurrence"
        ),
    )
    .into_iter()
    .map(|s| {
        let (occ, late) = s.split_once('|').expect("occurrence|late");
        let occurrence = NaiveDateTime::parse_from_str(occ, "%Y%m%dT%H%M%SZ")
            .unwrap_or_else(|e| panic!("occurrence {occ:?}: {e}"))
            .and_utc();
        LedgerRow {
            occurrence,
            late: late == "1",
        }
    })
    .collect()
}

/// Occurrences recorded more than once (the ledger's UNIQUE forbids it).
fn duplicated_occurrences(url: &str, communication: &str) -> Vec<String> {
    strings(
        url,
        &format!(
            "SELECT occurrence FROM segd_trigger_runs WHERE communication = '{communication}' \
             GROUP BY occurrence HAVING COUNT(*) > 1"
        ),
    )
}

/// Steps between consecutive occurrences that skip seconds.
fn gaps(rows: &[LedgerRow]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    rows.windows(2)
        .filter(|w| w[1].occurrence - w[0].occurrence != TimeDelta::seconds(1))
        .map(|w| (w[0].occurrence, w[1].occurrence))
        .collect()
}

fn tick_tree() -> Vec<(&'static str, String)> {
    vec![
        (
            "segments.d/nobody.toml",
            segment_toml("nobody", "name = \"no such customer\""),
        ),
        (
            "communications.d/tick.toml",
            email_comm("tick", "nobody", EVERY_SECOND),
        ),
    ]
}

#[test]
fn every_second_occurrences_run_once_and_downtime_is_caught_up_once_late() {
    let (f, db) = sqlite_setup(&tick_tree(), 0, 0);
    let mut d = Daemon::start(f.path(), &db.url, &[], &[]);
    d.wait_ready();
    let ran = wait_until(Duration::from_secs(10), || {
        ledger(&db.url, "tick").len() >= 4
    });
    assert!(
        ran,
        "fewer than 4 runs of an every-second communication in 10 s:\n{}",
        d.logs()
    );
    let status = d.status();
    let next = status["next_triggers"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["communication"] == "tick"))
        .cloned();
    assert!(
        next.is_some(),
        "no next trigger time in /v1/status: {status}"
    );
    let exit = d.signal_and_wait("TERM", Duration::from_secs(10));
    assert_eq!(exit.and_then(|e| e.code()), Some(0));
    let stopped = Utc::now();
    let first_life = ledger(&db.url, "tick");
    let last_before = first_life.last().expect("a run").occurrence;
    assert!(
        first_life.iter().all(|r| !r.late),
        "a run marked late while the daemon was running: {first_life:?}"
    );
    assert!(
        gaps(&first_life).is_empty(),
        "occurrences skipped while the daemon was running: {:?}",
        gaps(&first_life)
    );

    std::thread::sleep(Duration::from_secs(3));
    let restarted = Utc::now();
    let d = Daemon::start(f.path(), &db.url, &[], &[]);
    let caught_up = wait_until(Duration::from_secs(10), || {
        ledger(&db.url, "tick")
            .iter()
            .filter(|r| r.occurrence > last_before)
            .count()
            >= 3
    });
    assert!(caught_up, "no runs after the restart:\n{}", d.logs());
    drop(d);

    let all = ledger(&db.url, "tick");
    assert!(duplicated_occurrences(&db.url, "tick").is_empty());
    let after: Vec<&LedgerRow> = all.iter().filter(|r| r.occurrence > last_before).collect();
    let first = after[0];
    assert!(
        first.occurrence > stopped.trunc_subsecs_to_second()
            && first.occurrence <= restarted + TimeDelta::seconds(2),
        "the first run after the restart is for {} (stopped {stopped}, restarted {restarted})",
        first.occurrence
    );
    assert!(
        first.late,
        "the missed occurrence did not run marked late: {after:?}"
    );
    let late: Vec<_> = after.iter().filter(|r| r.late).collect();
    assert_eq!(
        late.len(),
        1,
        "the downtime was caught up more than once: {after:?}"
    );
    let after_rows: Vec<LedgerRow> = after.iter().map(|r| (*r).clone()).collect();
    assert!(
        gaps(&after_rows).is_empty(),
        "occurrences skipped after the catch-up: {:?}",
        gaps(&after_rows)
    );
    // The seconds of downtime before the latest missed one are skipped, not run.
    assert!(
        first.occurrence - last_before >= TimeDelta::seconds(2),
        "{first:?} after {last_before}"
    );
}

trait TruncSecond {
    fn trunc_subsecs_to_second(self) -> Self;
}

impl TruncSecond for DateTime<Utc> {
    fn trunc_subsecs_to_second(self) -> Self {
        use chrono::SubsecRound as _;
        self.trunc_subsecs(0)
    }
}

// ---------------------------------------------------------------------------
// 8. PostgreSQL: two daemons, one leader, failover without double runs.

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn two_daemons_on_postgres_elect_one_leader_and_fail_over() {
    let Some(pg) = block_on(fresh_pg_db(
        "two_daemons_on_postgres_elect_one_leader_and_fail_over",
    )) else {
        return;
    };
    let f = Fixture::empty();
    for (rel, t) in tick_tree() {
        f.write(rel, &t);
    }
    let mut a = Daemon::start(f.path(), &pg.url, &[], &[]);
    let mut b = Daemon::start(f.path(), &pg.url, &[], &[]);
    let leaders = |a: &Daemon, b: &Daemon| {
        (
            a.status()["leader"].as_bool() == Some(true),
            b.status()["leader"].as_bool() == Some(true),
        )
    };
    let elected = wait_until(Duration::from_secs(10), || {
        let (x, y) = leaders(&a, &b);
        x || y
    });
    assert!(
        elected,
        "no leader within 10 s:\n{}\n{}",
        a.logs(),
        b.logs()
    );
    // Exactly one, for a while.
    for _ in 0..10 {
        let (x, y) = leaders(&a, &b);
        assert!(x ^ y, "leaders: a={x} b={y}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The follower must not spin on the database: two daemons and an
    // every-second run make a few dozen transactions a second, not hundreds.
    let xacts = || {
        count(
            &pg.url,
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()",
        )
    };
    let x0 = xacts();
    std::thread::sleep(Duration::from_secs(3));
    let per_second = (xacts() - x0) / 3;
    eprintln!("two daemons: {per_second} transactions a second");
    assert!(
        per_second < 100,
        "{per_second} transactions a second on the database of two daemons"
    );
    let ran = wait_until(Duration::from_secs(10), || {
        ledger(&pg.url, "tick").len() >= 3
    });
    assert!(
        ran,
        "the leader ran no occurrences:\n{}\n{}",
        a.logs(),
        b.logs()
    );

    let (a_leads, _) = leaders(&a, &b);
    let (leader, follower) = if a_leads {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    leader.kill9();
    let killed = Utc::now();
    let t0 = Instant::now();
    let took_over = wait_until(Duration::from_secs(10), || {
        follower.status()["leader"].as_bool() == Some(true)
    });
    assert!(
        took_over,
        "the follower did not lead within 10 s:\n{}",
        follower.logs()
    );
    let leading = Utc::now();
    eprintln!("failover took {:?}", t0.elapsed());
    let more = wait_until(Duration::from_secs(10), || {
        ledger(&pg.url, "tick")
            .iter()
            .filter(|r| r.occurrence > leading)
            .count()
            >= 2
    });
    assert!(
        more,
        "the new leader runs no occurrences:\n{}",
        follower.logs()
    );
    let exit = follower.signal_and_wait("TERM", Duration::from_secs(10));
    assert_eq!(exit.and_then(|e| e.code()), Some(0));

    let all = ledger(&pg.url, "tick");
    assert!(
        duplicated_occurrences(&pg.url, "tick").is_empty(),
        "an occurrence ran twice"
    );
    // Every second ran, except across the one failover gap, which ends in one
    // late run inside the leaderless window.
    let gaps = gaps(&all);
    assert!(
        gaps.len() <= 1,
        "occurrences lost outside the failover: {gaps:?} in {all:?}"
    );
    let late: Vec<&LedgerRow> = all.iter().filter(|r| r.late).collect();
    if let Some((before, after)) = gaps.first() {
        assert!(
            *before <= killed + TimeDelta::seconds(1),
            "gap {before}..{after} before the kill at {killed}"
        );
        assert!(
            *after >= killed.trunc_subsecs_to_second(),
            "gap {before}..{after}, killed at {killed}"
        );
        assert!(
            *after <= leading + TimeDelta::seconds(1),
            "gap {before}..{after}, leading at {leading}"
        );
        assert_eq!(
            late.iter().map(|r| r.occurrence).collect::<Vec<_>>(),
            vec![*after],
            "exactly the first run after the failover gap is late"
        );
    } else {
        assert!(late.len() <= 1, "{late:?}");
    }
    drop(a);
    drop(b);
    block_on(pg.cleanup());
}

// ---------------------------------------------------------------------------
// Slow clients: a header-read timeout and a connection cap.

/// The daemon's open file descriptors.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[test]
fn slow_clients_are_cut_off_and_cannot_exhaust_the_daemon() {
    /// `MAX_CONNECTIONS` of the daemon's HTTP server.
    const CAP: usize = 256;
    let (f, db) = sqlite_setup(&[], 1, 0);
    let d = Daemon::start(f.path(), &db.url, &[], &[]);
    let addr: SocketAddr = d
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("the daemon's address");
    let before = open_fds(d.pid());

    // More half-sent requests than the cap: the header never ends.
    let mut slow: Vec<TcpStream> = (0..CAP + 64)
        .filter_map(|_| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").ok()?;
            Some(s)
        })
        .collect();
    assert_eq!(slow.len(), CAP + 64, "every slow client connected");
    std::thread::sleep(Duration::from_millis(500));
    let held = open_fds(d.pid());
    assert!(
        held <= before + CAP + 8,
        "the daemon holds {held} descriptors with {} slow clients (cap {CAP}, {before} before)",
        slow.len()
    );

    // A well-behaved client is served once the slow ones are cut off.
    let start = Instant::now();
    assert!(
        wait_until(Duration::from_secs(40), || get(&d.url("/healthz"))
            .is_ok_and(|(s, _)| s == 200)),
        "/healthz did not answer behind {} slow clients:\n{}",
        slow.len(),
        d.logs()
    );
    eprintln!("/healthz answered after {:?}", start.elapsed());

    // Every slow client was disconnected by the daemon, none answered 200.
    for (i, s) in slow.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("a read timeout");
        let mut got = Vec::new();
        match s.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("slow client {i} was never cut off: {e}"),
        }
        assert!(
            !String::from_utf8_lossy(&got).contains(" 200 "),
            "a half-sent request was answered: {}",
            String::from_utf8_lossy(&got)
        );
    }
    assert!(
        wait_until(Duration::from_secs(10), || open_fds(d.pid()) <= before + 8),
        "descriptors not released: {} now, {before} before",
        open_fds(d.pid())
    );
}

/// How many inotify watches the process `pid` holds.
fn inotify_watches(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .map(|fds| {
            fds.filter_map(Result::ok)
                .filter_map(|fd| std::fs::read_to_string(fd.path()).ok())
                .map(|info| info.matches("inotify wd:").count())
                .sum()
        })
        .unwrap_or(0)
}

/// A folder link out of the tree is not followed by the watcher (before, a
/// `templates/usr -> /usr` put a watch on each of the thousands of folders of
/// /usr); edits inside the tree still wake a reconcile.
#[test]
fn the_watcher_does_not_follow_links_out_of_the_tree() {
    let (f, db) = sqlite_setup(&[], 0, 0);
    std::fs::create_dir_all(f.path().join("templates")).expect("mkdir");
    std::os::unix::fs::symlink("/usr", f.path().join("templates/usr")).expect("link");
    let d = Daemon::start(f.path(), &db.url, &["--resync", "3650d"], &[]);
    d.wait_ready();
    let watches = inotify_watches(d.pid());
    assert!(
        (1..50).contains(&watches),
        "{watches} inotify watches for a tree of four folders"
    );
    f.write(
        "segments.d/late.toml",
        &segment_toml("late", "country = \"DE\""),
    );
    let applied = wait_until(Duration::from_secs(30), || {
        members_in_db(&db.url, "late").is_some()
    });
    assert!(applied, "the edit did not wake a reconcile:\n{}", d.logs());
}

/// The daemon never deletes every applied definition on its own (a wrong
/// --dir, an emptied checkout): it refuses the reconcile, says why in its
/// log and status, and `--once` exits 1.
/// `daemon --once` exits 1 with the refusal (the running daemon's status is
/// tested in-process: src/daemon/tests/reconcile.rs).
#[test]
fn the_daemon_refuses_to_delete_every_applied_definition() {
    let (f, db) = sqlite_setup(
        &[("segments.d/de.toml", segment_toml("de", "country = \"DE\""))],
        1,
        0,
    );
    let o = segd(f.path(), &db.url, &["daemon", "--once"], &[]);
    assert!(o.status.success(), "daemon --once: {}", text(&o));
    std::fs::remove_file(f.path().join("segments.d/de.toml")).expect("remove");
    let refusal = format!(
        "refusing to delete every applied definition (1): {} defines none of them. \
         Is --dir the right folder? Delete them with `segd apply --allow-delete-all`",
        f.path().display()
    );
    let o = segd(f.path(), &db.url, &["daemon", "--once"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(&refusal), "{}", text(&o));
    assert_eq!(
        count(&db.url, "SELECT COUNT(*) FROM segd_definitions"),
        1,
        "the definition is still applied"
    );
}
