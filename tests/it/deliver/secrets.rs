//! Secrets on the way out (SPEC §3, §7): SMTP credentials only over TLS, and no
//! password, token or secret in any output or log level.

use super::*;
use crate::support::segd_cmd;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};

/// An SMTP server on loopback that offers `AUTH PLAIN LOGIN` but no STARTTLS
/// (a relay without TLS), accepts everything, and records every line it is sent.
fn start_plain_smtp() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("address").port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let all = lines.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let lines = all.clone();
            std::thread::spawn(move || plain_smtp_session(conn, &lines));
        }
    });
    (port, lines)
}

fn plain_smtp_session(conn: TcpStream, lines: &Mutex<Vec<String>>) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let _ = out.write_all(b"220 plain.test ESMTP\r\n");
    let mut in_data = false;
    let mut line = String::new();
    loop {
        line.clear();
        if !matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            return;
        }
        lock(lines).push(line.trim_end().to_string());
        let reply: &[u8] = if in_data {
            if line != ".\r\n" {
                continue;
            }
            in_data = false;
            b"250 queued\r\n"
        } else {
            match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                Some("EHLO") => b"250-plain.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
                Some("AUTH") => b"235 accepted\r\n",
                Some("DATA") => {
                    in_data = true;
                    b"354 go on\r\n"
                }
                Some("QUIT") => {
                    let _ = out.write_all(b"221 bye\r\n");
                    return;
                }
                _ => b"250 ok\r\n",
            }
        };
        if out.write_all(reply).is_err() {
            return;
        }
    }
}

fn starts_with(lines: &[String], command: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.to_ascii_uppercase().starts_with(command))
        .cloned()
        .collect()
}

#[test]
fn smtp_credentials_never_travel_in_clear() {
    let billing = Billing::small();
    let (port, lines) = start_plain_smtp();
    let relay = format!("127.0.0.1:{port}");
    // (case, SEGD_SMTP_URL, SEGD_SMTP_USER/PASSWORD, whether mail goes out)
    let cases = [
        (
            "credentials in the URL",
            format!("smtp://mailer:pw-url-marker@{relay}"),
            None,
            false,
        ),
        (
            "credentials in the environment",
            format!("smtp://{relay}"),
            Some(("mailer", "pw-env-marker")),
            false,
        ),
        ("no credentials", format!("smtp://{relay}"), None, true),
        (
            "plaintext auth allowed for a local relay; user info decoded as a URL",
            format!("smtp://a+b&c:p+w%26x@{relay}?allow_plaintext_auth=true"),
            None,
            true,
        ),
    ];
    for (what, url, env_creds, delivered) in cases {
        lock(&lines).clear();
        let mut b = Bench::sqlite();
        b.set("SEGD_SMTP_URL", &url);
        if let Some((user, password)) = env_creds {
            b.set("SEGD_SMTP_USER", user)
                .set("SEGD_SMTP_PASSWORD", password);
        }
        b.f.write("communications.d/mail.toml", &email_comm("mail-invoices"));
        b.setup(&billing);
        let o = b.segd(&["trigger", "mail-invoices"]);
        // c7 has no address: unreachable, not a failure.
        let expected = if delivered { 0 } else { 1 };
        assert_eq!(code(&o), expected, "{what}: {}", text(&o));
        let seen = lock(&lines).clone();
        assert!(!seen.is_empty(), "{what}: segd reached the relay");
        let auth = starts_with(&seen, "AUTH");
        let mails = starts_with(&seen, "DATA").len();
        let rows = b.deliveries(&[]);
        let sent = rows.iter().filter(|r| status(r) == "sent").count();
        if delivered {
            assert_eq!((mails, sent), (5, 5), "{what}: {}", text(&o));
        } else {
            assert!(auth.is_empty(), "{what}: AUTH went in clear: {auth:?}");
            assert_eq!((mails, sent), (0, 0), "{what}: {seen:?}");
            let errors: Vec<&str> = rows
                .iter()
                .filter_map(|r| r["last_error"].as_str())
                .filter(|e| e.contains("STARTTLS"))
                .collect();
            assert_eq!(errors.len(), 5, "{what}: the error says why: {rows:#?}");
            assert!(
                !text(&o).contains("-marker"),
                "{what}: the password is not printed: {}",
                text(&o)
            );
        }
        if what.starts_with("plaintext") {
            use base64::Engine as _;
            let plain = auth
                .first()
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
                .unwrap_or_default();
            assert_eq!(plain, b"\0a+b&c\0p+w&x", "{what}: {auth:?}");
        } else if what == "no credentials" {
            assert!(auth.is_empty(), "{what}: {auth:?}");
        }
    }
}

/// Everything a deployment keeps secret, each with its own marker.
const MARKERS: [&str; 4] = [
    "db-pw-marker",
    "smtp-url-pw-marker",
    "smtp-env-pw-marker",
    "api-token-marker",
];

/// Runs webhook and email triggers, a daemon pass that sends their retries, and
/// the read commands, with the most verbose logs and every secret set; none of
/// them shows up.
fn no_secret_in_any_output(mut b: Bench) {
    let billing = Billing::small();
    // The first attempt of each webhook is refused, so the daemon sends the rest.
    let rec = Receiver::start(b.secret(), Duration::ZERO, |_, nth| {
        Reply::Status(if nth == 1 { 503 } else { 200 })
    });
    let (port, lines) = start_plain_smtp();
    b.f.write(
        "communications.d/hook.toml",
        &webhook_comm("hook-invoices", "email_invoice", &rec.url, ""),
    );
    b.f.write("communications.d/mail.toml", &email_comm("mail-invoices"));
    // Without STARTTLS the trigger's attempts fail; the daemon's, allowed
    // plaintext auth, go out.
    let smtp = format!("smtp://mailer:{}@127.0.0.1:{port}", MARKERS[1]);
    b.set("SEGD_SMTP_URL", &smtp)
        .set("SEGD_SMTP_USER", "mailer")
        .set("SEGD_SMTP_PASSWORD", MARKERS[2])
        .set("SEGD_API_TOKEN", MARKERS[3])
        .set("SEGD_LOG", "trace");
    b.setup(&billing);
    let secret = b.secret()[6..].to_string();
    let mut all = String::new();
    let mut run = |b: &Bench, args: &[&str]| {
        let out = text(&b.segd(args));
        for m in MARKERS.iter().chain([&secret.as_str()]) {
            assert!(!out.contains(m), "{args:?} shows {m}: {out}");
        }
        all.push_str(&out);
    };
    run(&b, &["trigger", "hook-invoices", "-vv"]);
    run(&b, &["trigger", "mail-invoices", "-vv"]);
    b.set(
        "SEGD_SMTP_URL",
        &format!("{smtp}?allow_plaintext_auth=true"),
    );
    std::thread::sleep(Duration::from_millis(1200));
    run(&b, &["daemon", "--once", "-vv", "--listen", "127.0.0.1:0"]);
    run(&b, &["deliveries", "--format", "json"]);
    run(&b, &["plan", "-vv"]);
    run(&b, &["db", "migrate", "-vv"]);
    assert_eq!(rec.hits().len(), 12, "the daemon sent the retries: {all}");
    assert_eq!(
        starts_with(&lock(&lines), "DATA").len(),
        5,
        "the daemon sent the emails: {all}"
    );
    assert!(all.contains(" DEBUG "), "verbose logs were on: {all}");
}

#[test]
fn no_secret_in_any_output_on_sqlite() {
    no_secret_in_any_output(Bench::sqlite());
}

#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn no_secret_in_any_output_on_postgres() {
    let Some(mut db) = TestDb::postgres("no_secret_in_any_output_on_postgres") else {
        return;
    };
    // The test server trusts local connections: the password is carried, not checked.
    let mut url = url::Url::parse(&db.url).expect("a URL");
    url.set_password(Some(MARKERS[0])).expect("a password");
    db.url = url.to_string();
    no_secret_in_any_output(Bench::with_db(Fixture::empty(), db));
}

/// A database password in the URL's query is not echoed by errors, whether the
/// URL comes from the flag, the environment, or `segd.toml` (which refuses it).
#[test]
fn database_passwords_in_the_query_are_never_echoed() {
    let f = Fixture::example();
    // Refused at once (no pool timeout to wait out): a setting sqlx rejects.
    let bad_setting = "postgres://segd@127.0.0.1:1/segd?sslmode=bogus&password=q-pw-marker";
    db_migrate_never_echoes_the_password(&f, Some(bad_setting), None, true);
    db_migrate_never_echoes_the_password(&f, None, Some(bad_setting), true);
    let o = segd_cmd()
        .current_dir(f.path())
        .args(["db", "migrate", "--database-url"])
        .arg("mysql://u:u-pw-marker@h/segd?token=t-marker")
        .output()
        .expect("run segd");
    assert!(!text(&o).contains("-marker"), "{}", text(&o));

    f.write(
        "segd.toml",
        "database_url = \"postgres://segd@db.test/segd?password=q-pw-marker\"\n",
    );
    for args in [&["validate"][..], &["db", "migrate"], &["plan"]] {
        let o = segd_cmd()
            .current_dir(f.path())
            .args(args)
            .output()
            .expect("run segd");
        let out = text(&o);
        assert_ne!(code(&o), 0, "{args:?}: {out}");
        assert!(out.contains("segd.toml:1:"), "{args:?}: at the key: {out}");
        assert!(out.contains("SEGD_DATABASE_URL"), "{args:?}: {out}");
        assert!(!out.contains("q-pw-marker"), "{args:?}: {out}");
    }
}

/// `segd db migrate` with the database URL from the flag or the environment
/// fails (exit 2) without showing the password in its query; `shows_url`: the
/// message shows the URL, redacted.
fn db_migrate_never_echoes_the_password(
    f: &Fixture,
    flag: Option<&str>,
    env: Option<&str>,
    shows_url: bool,
) {
    let mut cmd = segd_cmd();
    cmd.current_dir(f.path()).args(["db", "migrate"]);
    if let Some(u) = flag {
        cmd.args(["--database-url", u]);
    }
    if let Some(u) = env {
        cmd.env("SEGD_DATABASE_URL", u);
    }
    let o = cmd.output().expect("run segd");
    let out = text(&o);
    assert_eq!(code(&o), 2, "{out}");
    assert!(!out.contains("q-pw-marker"), "{out}");
    if shows_url {
        assert!(out.contains("password=***"), "shown redacted: {out}");
    }
}

/// A database that does not exist on the test server fails `db migrate`
/// without showing the password in its URL's query.
#[test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
fn a_missing_database_never_echoes_the_password_in_its_query_on_postgres() {
    let Ok(admin) = std::env::var("SEGD_TEST_POSTGRES_URL") else {
        eprintln!(
            "a_missing_database_never_echoes_the_password: skipped, SEGD_TEST_POSTGRES_URL is not set"
        );
        return;
    };
    let mut url = url::Url::parse(&admin).expect("SEGD_TEST_POSTGRES_URL is a URL");
    url.set_path("/segd_no_such_database");
    url.set_query(Some("password=q-pw-marker"));
    db_migrate_never_echoes_the_password(&Fixture::example(), None, Some(url.as_str()), false);
}

/// sqlx logs the value of a connection parameter it does not know at WARN, so
/// segd refuses such a parameter by its name before sqlx sees the URL: from the
/// flag or the environment, with the most verbose logs, in commands and the daemon.
#[test]
fn unknown_database_url_parameters_are_refused_by_name_never_logged() {
    let f = Fixture::example();
    let url = "postgres://segd@127.0.0.1:1/segd?sslmode=disable&sslpassword=sslpw-marker";
    let runs: [(&[&str], bool); 3] = [
        (
            &["daemon", "--once", "-vv", "--listen", "127.0.0.1:0"],
            true,
        ),
        (&["db", "migrate", "-vv", "--database-url", url], false),
        (&["db", "migrate", "-vv"], true),
    ];
    for (args, from_env) in runs {
        let mut cmd = segd_cmd();
        cmd.current_dir(f.path())
            .args(args)
            .env("SEGD_LOG", "trace");
        if from_env {
            cmd.env("SEGD_DATABASE_URL", url);
        }
        let o = cmd.output().expect("run segd");
        let out = text(&o);
        assert!(!out.contains("sslpw-marker"), "{args:?}: {out}");
        assert_eq!(code(&o), 2, "{args:?}: {out}");
        assert!(
            out.contains("unknown connection parameter `sslpassword`"),
            "{args:?}: names the key: {out}"
        );
    }
}

/// One list names secrets everywhere: an unknown `segd.toml` key that names a
/// secret is refused as one and its line (with the value) is never shown, while
/// a database URL naming a client key *file* (`sslkey`) and an SMTP URL's
/// `allow_plaintext_auth` flag are accepted.
#[test]
fn secret_names_agree_across_keys_lines_and_url_parameters() {
    let f = Fixture::example();
    for key in ["pwd", "smtp_pass", "private_key", "X-Api-Key"] {
        f.write("segd.toml", &format!("{key} = \"name-marker\"\n"));
        let o = segd_cmd()
            .current_dir(f.path())
            .arg("validate")
            .output()
            .expect("run segd");
        let out = text(&o);
        assert_eq!(code(&o), 1, "{key}: {out}");
        assert!(out.contains("segd.toml:1:1"), "{key}: at the key: {out}");
        assert!(out.contains("looks like a secret"), "{key}: {out}");
        assert!(!out.contains("name-marker"), "{key}: {out}");
    }
    f.write(
        "segd.toml",
        "database_url = \"postgres://db.test/segd?sslkey=/etc/segd/k.pem&ssl-key=/k.pem&sslcert=/c.pem&sslrootcert=/ca.pem\"\n\
         smtp_url = \"smtp://relay.test?allow_plaintext_auth=true\"\n",
    );
    let o = segd_cmd()
        .current_dir(f.path())
        .arg("validate")
        .output()
        .expect("run segd");
    assert_eq!(code(&o), 0, "{}", text(&o));
}

/// `redact_url` shows nothing before the last `@` when the parser's reading of
/// the URL does not end its user info there (an unencoded `/` in the password).
#[test]
fn database_passwords_with_unencoded_slashes_are_never_echoed() {
    let f = Fixture::example();
    for url in [
        "postgres://u:1234/ab-marker@127.0.0.1:1/segd",
        "segd:hunter2-marker@db/segd",
        "host=db password=hunter2-marker dbname=segd",
    ] {
        let o = segd_cmd()
            .current_dir(f.path())
            .args(["db", "migrate", "--database-url", url])
            .output()
            .expect("run segd");
        let out = text(&o);
        assert_eq!(code(&o), 2, "{url}: {out}");
        assert!(
            !out.contains("-marker") && !out.contains("1234"),
            "{url}: {out}"
        );
    }
}
