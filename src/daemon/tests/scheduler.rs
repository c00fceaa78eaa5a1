//! The scheduler on the clock, and the segment size samples it takes.

use super::*;
use crate::ops::sizes::{Limits, Sampled, Sampler};

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

/// Room for every segment in one pass; an hour's refresh.
const EVERY_SEGMENT: Limits = Limits {
    segments: usize::MAX,
    time: Duration::MAX,
    refresh: Duration::from_secs(3600),
};

impl Fixture {
    /// One sampling pass at the clock's time.
    async fn sample(&self, sampler: &mut Sampler, retention: Duration, limits: Limits) -> Sampled {
        sampler
            .pass(&*self.store, self.clock.now(), retention, limits)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// How many size rows each segment has, by name.
    async fn size_rows(&self) -> Vec<(String, i64)> {
        sqlx::query_as(
            "SELECT segment, COUNT(*) FROM segd_segment_sizes GROUP BY segment ORDER BY segment",
        )
        .fetch_all(&pool(&*self.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }
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
    let mut sampler = Sampler::default();
    let first = f.clock.now();
    let s = f
        .sample(&mut sampler, DEFAULT_SIZE_RETENTION, EVERY_SEGMENT)
        .await;
    assert_eq!((s.segments, s.due), (1, 0));
    sqlx::query("UPDATE customers SET country = 'DE' WHERE id = 'c3'")
        .execute(&pool(&*f.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.clock.advance(chrono::TimeDelta::hours(1));
    let s = f
        .sample(&mut sampler, DEFAULT_SIZE_RETENTION, EVERY_SEGMENT)
        .await;
    assert_eq!(s.segments, 1, "an hour on, measured again");
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
    let s = f
        .sample(&mut sampler, Duration::from_secs(2 * 86_400), EVERY_SEGMENT)
        .await;
    assert_eq!(s.pruned, 2);
    let history = f
        .store
        .size_history("de", first)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history.len(), 1);
}

#[tokio::test]
async fn a_sampling_pass_measures_at_most_its_limit_and_only_the_segments_due() {
    let mut files = vec![("segments.d/de.toml".to_string(), SEGMENT_DE.to_string())];
    files.extend(["s1", "s2", "s3", "s4"].iter().map(|n| {
        (
            format!("segments.d/{n}.toml"),
            format!("[segment]\nname = \"{n}\"\ndescription = \"d\"\n\n[[filter]]\ntype = \"customer\"\ncountry = \"FR\"\n"),
        )
    }));
    let f = fixture_of(&files, at("2026-01-05T08:00:00Z")).await;
    let two = Limits {
        segments: 2,
        ..EVERY_SEGMENT
    };
    let mut sampler = Sampler::default();
    // Five segments, two a pass, new ones by name.
    let mut passes = Vec::new();
    for _ in 0..4 {
        let s = f.sample(&mut sampler, DEFAULT_SIZE_RETENTION, two).await;
        passes.push((s.segments, s.due));
        f.clock.advance(chrono::TimeDelta::minutes(1));
    }
    assert_eq!(passes, vec![(2, 3), (2, 1), (1, 0), (0, 0)]);
    let one_each: Vec<(String, i64)> = ["de", "s1", "s2", "s3", "s4"]
        .iter()
        .map(|n| (n.to_string(), 1))
        .collect();
    assert_eq!(f.size_rows().await, one_each);
    // A changed definition is due at once; the others are not.
    sqlx::query("UPDATE segd_definitions SET hash = 'changed' WHERE name = 's3'")
        .execute(&pool(&*f.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = f.sample(&mut sampler, DEFAULT_SIZE_RETENTION, two).await;
    assert_eq!((s.segments, s.due), (1, 0));
    // An hour after the first pass, its two are due again (the oldest
    // first); a sampler that starts afresh reads the samples back.
    f.clock.set(at("2026-01-05T09:00:00Z"));
    let mut afresh = Sampler::default();
    let s = f.sample(&mut afresh, DEFAULT_SIZE_RETENTION, two).await;
    assert_eq!((s.segments, s.due), (2, 0));
    let rows = f.size_rows().await;
    let twice: Vec<&str> = rows
        .iter()
        .filter(|(_, n)| *n == 2)
        .map(|(s, _)| s.as_str())
        .collect();
    assert_eq!(twice, vec!["de", "s1", "s3"]);
    // A segment that no longer reads back is skipped (the others measured),
    // and is not due again while it stays so.
    sqlx::query(
        "UPDATE segd_definitions SET spec = 'not a segment', hash = 'broken' WHERE name = 's4'",
    )
    .execute(&pool(&*f.store))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("UPDATE segd_definitions SET hash = 'changed again' WHERE name = 's1'")
        .execute(&pool(&*f.store))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let one = Limits {
        segments: 1,
        ..EVERY_SEGMENT
    };
    let mut passes = Vec::new();
    for _ in 0..3 {
        let s = f.sample(&mut afresh, DEFAULT_SIZE_RETENTION, one).await;
        passes.push((s.segments, s.due));
    }
    assert_eq!(passes, vec![(1, 1), (0, 0), (0, 0)]);
}
