//! The scheduler on the clock, and the segment size samples it takes.

use super::*;

#[tokio::test]
async fn the_scheduler_runs_each_due_occurrence_once_and_downtime_once_late() {
    let f = fixture(
        &[("daily", comm("daily", &automatic("0 9 * * *", "UTC"), ""))],
        at("2026-01-05T08:00:00Z"),
    )
    .await;
    assert_eq!(f.pass().await, [at("2026-01-05T09:00:00Z")]);
    assert!(f.runs().await.is_empty());

    f.clock.set(at("2026-01-05T08:59:59Z"));
    f.pass().await;
    assert!(f.runs().await.is_empty(), "not due a second early");

    f.clock.set(at("2026-01-05T09:00:00Z"));
    assert_eq!(f.pass().await, [at("2026-01-06T09:00:00Z")]);
    f.pass().await;
    assert_eq!(f.runs().await, [("20260105T090000Z".into(), false)]);

    // Down from before the 6th's occurrence until after the 9th's: the three
    // missed ones do not run, the latest runs once, late.
    f.clock.set(at("2026-01-09T10:30:00Z"));
    assert_eq!(f.pass().await, [at("2026-01-10T09:00:00Z")]);
    f.pass().await;
    assert_eq!(
        f.runs().await,
        [
            ("20260105T090000Z".into(), false),
            ("20260109T090000Z".into(), true)
        ]
    );
    let started: DateTime<Utc> = sqlx::query_scalar(
        "SELECT started_at FROM segd_trigger_runs WHERE occurrence = '20260109T090000Z'",
    )
    .fetch_one(&pool(&*f.store))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        started,
        at("2026-01-09T10:30:00Z"),
        "it starts when the clock says"
    );

    // Run more than a minute after its time (a slow pass), it is late too.
    f.clock.set(at("2026-01-10T09:05:00Z"));
    f.pass().await;
    assert_eq!(
        f.runs().await.last(),
        Some(&("20260110T090000Z".into(), true))
    );
}

async fn berlin_at_half_past_two(applied_at: DateTime<Utc>) -> Fixture {
    let trigger = automatic("30 2 * * *", "Europe/Berlin");
    fixture(&[("night", comm("night", &trigger, ""))], applied_at).await
}

#[tokio::test]
async fn the_scheduler_fires_once_across_daylight_saving_changes() {
    // Spring forward in Berlin: 2026-03-29 02:30 does not exist; it fires
    // once, at 03:00 CEST (01:00 UTC).
    let f = berlin_at_half_past_two(at("2026-03-28T12:00:00Z")).await;
    assert_eq!(f.pass().await, [at("2026-03-29T01:00:00Z")]);
    f.clock.set(at("2026-03-29T00:59:59Z"));
    f.pass().await;
    assert!(f.runs().await.is_empty());
    f.clock.set(at("2026-03-29T01:00:00Z"));
    assert_eq!(f.pass().await, [at("2026-03-30T00:30:00Z")]);
    assert_eq!(f.runs().await, [("20260329T010000Z".into(), false)]);

    // Fall back: 2026-10-25 02:30 happens twice; it fires at the first
    // (CEST, 00:30 UTC) and not again an hour later (CET).
    let f = berlin_at_half_past_two(at("2026-10-24T12:00:00Z")).await;
    assert_eq!(f.pass().await, [at("2026-10-25T00:30:00Z")]);
    f.clock.set(at("2026-10-25T00:30:00Z"));
    assert_eq!(f.pass().await, [at("2026-10-26T01:30:00Z")]);
    f.clock.set(at("2026-10-25T01:30:00Z"));
    assert_eq!(f.pass().await, [at("2026-10-26T01:30:00Z")]);
    assert_eq!(f.runs().await, [("20261025T003000Z".into(), false)]);
}

#[tokio::test]
async fn a_sample_records_every_segment_and_the_members_of_small_ones() {
    let f = fixture(&[], at("2026-01-05T08:00:00Z")).await;
    for (id, country) in [("c1", "DE"), ("c2", "DE"), ("c3", "FR")] {
        sqlx::query(
            "INSERT INTO customers (id, name, email, country, custom_data, created_at) \
             VALUES ($1, $1, NULL, $2, '{}', '2026-01-01T00:00:00Z')",
        )
        .bind(id)
        .bind(country)
        .execute(&pool(&*f.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let first = f.clock.now();
    assert!(sample_sizes(&*f.store, &*f.clock, DEFAULT_SIZE_RETENTION).await);
    sqlx::query("UPDATE customers SET country = 'DE' WHERE id = 'c3'")
        .execute(&pool(&*f.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.clock.advance(chrono::TimeDelta::hours(1));
    assert!(sample_sizes(&*f.store, &*f.clock, DEFAULT_SIZE_RETENTION).await);
    let latest = f
        .store
        .latest_sizes()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(latest.len(), 1);
    assert_eq!((latest[0].0.as_str(), latest[0].1.members), ("de", 3));
    let changes = f
        .store
        .membership_changes("de", 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("tracked"));
    assert_eq!(changes.since, first);
    assert_eq!(changes.entered, vec!["c3".to_string()]);
    assert!(changes.left.is_empty());
    // Two days of retention at 100 days on: both samples are forgotten.
    f.clock.advance(chrono::TimeDelta::days(100));
    assert!(sample_sizes(&*f.store, &*f.clock, Duration::from_secs(2 * 86_400)).await);
    let history = f
        .store
        .size_history("de", first)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history.len(), 1);
}
