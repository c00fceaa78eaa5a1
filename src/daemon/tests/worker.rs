//! The delivery worker on the daemon's clock and its seeded random source.

use super::*;

/// Demo customers, a manual run of `nudge` through the API (the clock's first
/// random draw), and `nudge`'s stored definition made unreadable, so that
/// every delivery fails and is retried: how many the run enqueued, and the
/// definition as it was.
async fn enqueued_with_nudge_unreadable(f: &Fixture) -> (u64, String) {
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
        router(f, Some(TOKEN), handle()),
        trigger("nudge", Some(&format!("Bearer {TOKEN}"))),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let enqueued = json(&body)["enqueued"].as_u64().unwrap_or_default();
    assert!(enqueued > 0, "{body}");
    let spec: String = sqlx::query_scalar("SELECT spec FROM segd_definitions WHERE name = 'nudge'")
        .fetch_one(&pool(&*f.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    set_spec(f, "not a definition").await;
    (enqueued, spec)
}

async fn set_spec(f: &Fixture, spec: &str) {
    sqlx::query("UPDATE segd_definitions SET spec = $1 WHERE name = 'nudge'")
        .bind(spec)
        .execute(&pool(&*f.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A delivery worker on the fixture's store and clock.
fn worker(f: &Fixture) -> Worker<'_> {
    worker_with(f, &|_: &str| None)
}

/// [`worker`] with `env` as the daemon's environment.
fn worker_with<'a>(f: &'a Fixture, env: &'a Env) -> Worker<'a> {
    let delivery = crate::config::delivery(&Default::default(), f._dir.path(), env)
        .unwrap_or_else(|e| panic!("{e}"));
    Worker::new(&*f.store, delivery, "test".into(), env, f.clock.clone())
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn retry_delays_are_spread_by_the_clocks_seeded_source() {
    let f = api_fixture().await;
    let (enqueued, _) = enqueued_with_nudge_unreadable(&f).await;
    let worker = worker(&f);
    let tally = worker
        .drain(None, |_| {}, &|| false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tally.retrying, enqueued);
    let mut due: Vec<DateTime<Utc>> = sqlx::query_scalar("SELECT next_attempt_at FROM segd_outbox")
        .fetch_all(&pool(&*f.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    due.sort();
    // The same seed after the run's draw: one draw per retry, in whichever
    // order the sends end.
    let now = f.clock.now();
    let seeded = Manual::new(now, 1);
    seeded.random();
    let mut expected: Vec<DateTime<Utc>> = (0..enqueued)
        .map(|_| {
            let delay = crate::deliver::retry::next_delay(
                1,
                &worker.config.retry_schedule,
                None,
                seeded.fraction(),
            )
            .unwrap_or_else(|| panic!("a second attempt"));
            now + chrono::TimeDelta::from_std(delay).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    expected.sort();
    assert_eq!(due, expected);
    assert!(due.first() < due.last(), "the delays are spread: {due:?}");
}

#[tokio::test]
async fn retries_and_leases_come_due_on_the_clock_not_the_wall() {
    use crate::deliver::worker::Tally;
    use chrono::TimeDelta;
    let f = api_fixture().await;
    // A communication that does not read back is tried again later.
    let (enqueued, spec) = enqueued_with_nudge_unreadable(&f).await;
    let worker = worker(&f);
    let lease = worker.config.lease;
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
    set_spec(&f, &spec).await;
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

#[tokio::test]
async fn a_short_webhook_secret_fails_its_communication_and_the_others_carry_on() {
    const SECRET_ENV: &str = "SEGD_DAEMON_TEST_SECRET";
    let hook = format!(
        "[communication]\nname = \"hook\"\nsegment = \"de\"\nevent = \"email_invoice\"\nchannel = \"webhook\"\n\n\
         {MANUAL}\n\n[webhook]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_env = \"{SECRET_ENV}\"\n"
    );
    let f = fixture(
        &[("hook", hook), ("mail", comm("mail", MANUAL, ""))],
        at("2026-01-05T08:00:00Z"),
    )
    .await;
    for i in 0..3 {
        sqlx::query(
            "INSERT INTO customers (id, name, email, country, custom_data, created_at) \
             VALUES ($1, $1, $1 || '@example.com', 'DE', '{}', '2026-01-01T00:00:00Z')",
        )
        .bind(format!("c{i}"))
        .execute(&pool(&*f.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        sqlx::query(
            "INSERT INTO invoices (id, customer_id, number, status, amount_cents, currency, due_date, created_at) \
             VALUES ($1, $2, $1, 'open', 1000, 'EUR', '2099-01-01', '2026-01-01T00:00:00Z')",
        )
        .bind(format!("i{i}"))
        .bind(format!("c{i}"))
        .execute(&pool(&*f.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    // An empty key: signatures anyone could forge.
    let env: Arc<Env> = Arc::new(|k: &str| (k == SECRET_ENV).then(|| "whsec_".to_string()));
    let api = router_with(&f, Some(TOKEN), handle(), env.clone());
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = send(api.clone(), trigger("hook", Some(&auth))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body.contains(SECRET_ENV) && body.contains("24 bytes"),
        "{body}"
    );
    let (status, _, body) = send(api, trigger("mail", Some(&auth))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let worker = worker_with(&f, &*env);
    let tally = worker
        .drain(None, |_| {}, &|| false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tally.sent, 3, "{tally:?}");
    let files = std::fs::read_dir(&worker.config.outbox_dir)
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(files, 3, "the emails were sent");
    let count = async |sql: &'static str| -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&pool(&*f.store))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM segd_trigger_runs WHERE communication = 'hook' AND status = 'failed'")
            .await,
        1,
        "the run is recorded as failed"
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM segd_outbox o JOIN segd_trigger_runs u ON u.seq = o.run \
             WHERE u.communication = 'hook'"
        )
        .await,
        0,
        "nothing is enqueued, so nothing is signed with the short key"
    );
}
