//! Helpers the bench binaries share (each includes this as `mod common;`).

use segd::demo::{DemoSpec, Generator, RowCounts};
use segd::store::billing::Existing;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The number in environment variable `name` (a bench's knob), or `default`.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A memory figure of process `pid` in KiB from `/proc/PID/status`: `VmRSS` (now)
/// or `VmHWM` (peak).
#[allow(dead_code)] // not every bench measures memory
pub fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Fills the billing tables of the database at `url` with demo data, replacing
/// what they hold, as `segd demo-data` does; returns the rows written.
#[allow(dead_code)] // not every bench loads demo data
pub async fn load_demo(url: &str, spec: DemoSpec) -> Result<RowCounts, Box<dyn std::error::Error>> {
    let store = segd::store::connect(url).await?;
    let rows = store
        .load_demo(Generator::new(spec)?, Existing::Replace, &mut |_| {})
        .await;
    store.close().await;
    Ok(rows?)
}

/// A generated segment `seg-NNNNN`: customers of one country with an unpaid
/// invoice some days overdue.
#[allow(dead_code)] // not every bench generates definitions
pub fn segment(i: usize, description: &str) -> String {
    let countries = ["DE", "FR", "US", "GB", "NL", "ES", "IT", "SE"];
    format!(
        "[segment]\nname = \"seg-{i:05}\"\ndescription = \"{description}\"\n\n[[filter]]\ntype = \"customer\"\ncountry = \"{}\"\n\n[[filter]]\ntype = \"invoice\"\nstatus = {{ in = [\"open\", \"overdue\"] }}\ndue_date_exceeded_by_days = {{ gte = {} }}\n",
        countries[i % countries.len()],
        i % 90
    )
}

/// A generated manual webhook communication `comm-NNNNN` to one of the
/// `segments` generated segments.
#[allow(dead_code)] // not every bench generates definitions
pub fn communication(i: usize, segments: usize) -> String {
    format!(
        "[communication]\nname = \"comm-{i:05}\"\nsegment = \"seg-{:05}\"\nevent = \"payment_reminder\"\nchannel = \"webhook\"\n\n[trigger]\ntype = \"manual\"\n\n[webhook]\nurl = \"https://hooks.example/{i}\"\nsecret_env = \"SEGD_WEBHOOK_SECRET\"\n",
        i % segments
    )
}

/// Writes `segments` generated segments and `communications` generated
/// communications into `segments.d` and `communications.d` below `root`.
#[allow(dead_code)] // not every bench generates definitions
pub fn write_tree(root: &Path, segments: usize, communications: usize) {
    std::fs::create_dir_all(root.join("segments.d")).expect("mkdir");
    std::fs::create_dir_all(root.join("communications.d")).expect("mkdir");
    for i in 0..segments {
        std::fs::write(
            root.join(format!("segments.d/seg-{i:05}.toml")),
            segment(i, "generated"),
        )
        .expect("write");
    }
    for i in 0..communications {
        std::fs::write(
            root.join(format!("communications.d/comm-{i:05}.toml")),
            communication(i, segments),
        )
        .expect("write");
    }
}

/// A `segd daemon` process on a loopback port, killed on drop.
#[allow(dead_code)] // not every bench runs the daemon
pub struct Daemon {
    child: Child,
    pub port: u16,
}

#[allow(dead_code)] // not every bench runs the daemon
impl Daemon {
    /// `segd daemon ARGS --resync 1h` on the tree `root` and the database
    /// `url`, on a free loopback port, with `env` and its stderr to
    /// `stderr`; returns once it is ready (panics after `within`), with how
    /// long that took.
    pub fn start(
        root: &Path,
        url: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
        within: Duration,
    ) -> (Self, Duration) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(env!("CARGO_BIN_EXE_segd"))
            .arg("daemon")
            .args(args)
            .args(["--resync", "1h", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--dir")
            .arg(root)
            .args(["--database-url", url])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the daemon");
        let daemon = Self { child, port };
        let t = Instant::now();
        while get(port, "/readyz").map(|(s, _)| s) != Some(200) {
            assert!(t.elapsed() < within, "the daemon did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        (daemon, t.elapsed())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on the loopback `port` (one connection, `Connection: close`):
/// the status and the raw body.
#[allow(dead_code)] // not every bench runs the daemon
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}
