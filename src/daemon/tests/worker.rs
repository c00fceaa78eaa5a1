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
    let delivery = crate::config::delivery(&Default::default(), f._dir.path(), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    Worker::new(
        &*f.store,
        delivery,
        "test".into(),
        &|_: &str| None,
        f.clock.clone(),
    )
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
