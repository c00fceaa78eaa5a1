//! A webhook secret too short to sign with fails that communication's runs in the
//! running daemon, naming the variable; the other communications carry on.

use super::*;

#[test]
fn a_short_webhook_secret_fails_its_communication_and_the_others_carry_on() {
    let rec = Receiver::start(Duration::ZERO);
    let (f, db) = sqlite_setup(
        &[
            ("segments.d/de.toml", segment_toml("de", "country = \"DE\"")),
            (
                "communications.d/hook.toml",
                webhook_comm("hook", "de", &rec.url),
            ),
            (
                "communications.d/mail.toml",
                email_comm("mail", "de", MANUAL),
            ),
        ],
        3,
        0,
    );
    let outbox = f.path().join("mail-out");
    let outbox_s = outbox.display().to_string();
    // An empty key: signatures anyone could forge.
    let env = [
        ("SEGD_API_TOKEN", TOKEN),
        (SECRET_ENV, "whsec_"),
        ("SEGD_OUTBOX_DIR", outbox_s.as_str()),
    ];
    let d = Daemon::start(f.path(), &db.url, &[], &env);
    d.wait_ready();
    let auth = format!("Bearer {TOKEN}");
    let post = |name: &str| {
        http(
            "POST",
            &d.url(&format!("/v1/communications/{name}/trigger")),
            &[("Authorization", &auth)],
            "",
        )
        .expect("POST trigger")
    };
    let (code, body) = post("hook");
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains(SECRET_ENV) && body.contains("24 bytes"),
        "{body}"
    );
    let (code, body) = post("mail");
    assert!((200..300).contains(&code), "mail: {code} {body}");
    let files = || std::fs::read_dir(&outbox).map(|r| r.count()).unwrap_or(0);
    assert!(
        wait_until(Duration::from_secs(15), || files() == 3),
        "the emails were not sent: {}",
        d.logs()
    );
    assert_eq!(rec.arrived(), 0, "nothing is signed with the short key");
    let runs = |status: &str| {
        count(
            &db.url,
            &format!(
                "SELECT COUNT(*) FROM segd_trigger_runs WHERE communication = 'hook' AND status = '{status}'"
            ),
        )
    };
    assert_eq!(runs("failed"), 1, "the run is recorded as failed");
    assert_eq!(
        count(
            &db.url,
            "SELECT COUNT(*) FROM segd_outbox o JOIN segd_trigger_runs u ON u.seq = o.run \
             WHERE u.communication = 'hook'"
        ),
        0,
        "nothing is enqueued"
    );
}
