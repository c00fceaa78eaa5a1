//! Segment size samples in the store, on SQLite and PostgreSQL: sizes per
//! sample, each segment's latest sample, history, pruning, and who entered
//! and left.

use crate::support::fresh_pg_db;
use chrono::{DateTime, TimeDelta, Utc};
use segd::store::Store;
use segd::store::sizes::{Changes, SizeSample};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("a time")
        .with_timezone(&Utc)
}

fn sample(segment: &str, ids: Option<&[&str]>, members: u64) -> SizeSample {
    SizeSample {
        segment: segment.into(),
        members,
        ids: ids.map(|ids| ids.iter().map(|i| i.to_string()).collect()),
    }
}

/// Who entered and left `segment`, which must be tracked.
async fn tracked(store: &dyn Store, segment: &str, limit: usize) -> Changes {
    store
        .membership_changes(segment, limit)
        .await
        .expect("changes")
        .expect("tracked")
}

async fn sizes_are_recorded_and_pruned(store: &dyn Store) {
    let (t1, t2, t3) = (
        t("2026-11-01T10:00:00Z"),
        t("2026-11-02T10:00:00.250Z"),
        t("2026-11-03T10:00:00Z"),
    );
    assert!(store.latest_sizes().await.expect("latest").is_empty());
    store
        .record_sizes(
            t1,
            &[
                sample("small", Some(&["c1", "c2", "c3"]), 3),
                sample("big", None, 5000),
            ],
        )
        .await
        .expect("record");
    // One sample: nothing to compare with yet.
    assert_eq!(
        store
            .membership_changes("small", 10)
            .await
            .expect("changes"),
        None
    );
    store
        .record_sizes(
            t2,
            &[
                sample("small", Some(&["c2", "c3", "c4", "c5"]), 4),
                sample("big", None, 5100),
            ],
        )
        .await
        .expect("record");
    let latest = store.latest_sizes().await.expect("latest");
    let latest: Vec<(&str, u64, DateTime<Utc>)> = latest
        .iter()
        .map(|(s, z)| (s.as_str(), z.members, z.at))
        .collect();
    let t2s = t("2026-11-02T10:00:00Z");
    assert_eq!(latest, vec![("big", 5100, t2s), ("small", 4, t2s)]);
    let changes = tracked(store, "small", 1).await;
    assert_eq!((changes.since, changes.at), (t1, t2s));
    assert_eq!(changes.entered, vec!["c4".to_string()]);
    assert_eq!(changes.entered_total, 2);
    assert_eq!(changes.left, vec!["c1".to_string()]);
    assert_eq!(changes.left_total, 1);
    // Too large to track: no member ids kept.
    assert_eq!(
        store.membership_changes("big", 10).await.expect("changes"),
        None
    );
    // A third sample keeps only the last two samples' members.
    store
        .record_sizes(t3, &[sample("small", Some(&["c5"]), 1)])
        .await
        .expect("record");
    // Each segment's latest sample, whenever it was taken.
    let latest = store.latest_sizes().await.expect("latest");
    let latest: Vec<(&str, u64, DateTime<Utc>)> = latest
        .iter()
        .map(|(s, z)| (s.as_str(), z.members, z.at))
        .collect();
    assert_eq!(latest, vec![("big", 5100, t2s), ("small", 1, t3)]);
    let changes = tracked(store, "small", 10).await;
    assert_eq!((changes.since, changes.at), (t2s, t3));
    assert!(changes.entered.is_empty());
    assert_eq!(changes.left, vec!["c2", "c3", "c4"]);
    let history = store
        .size_history("small", t1 + TimeDelta::hours(1))
        .await
        .expect("history");
    let history: Vec<u64> = history.iter().map(|s| s.members).collect();
    assert_eq!(history, vec![4, 1]);
    assert_eq!(store.prune_sizes(t2s).await.expect("prune"), 2);
    let history = store
        .size_history("small", t1 - TimeDelta::days(1))
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(
        store
            .size_history("big", t1 - TimeDelta::days(1))
            .await
            .expect("history")
            .len(),
        1
    );
}

#[tokio::test]
async fn sqlite_sizes_are_recorded_and_pruned() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("segd.db").display());
    let store = segd::store::connect(&url).await.expect("connect");
    sizes_are_recorded_and_pruned(&*store).await;
    store.close().await;
}

#[tokio::test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
async fn postgres_sizes_are_recorded_and_pruned() {
    let Some(db) = fresh_pg_db("postgres_sizes_are_recorded_and_pruned").await else {
        return;
    };
    let store = segd::store::connect(&db.url).await.expect("connect");
    sizes_are_recorded_and_pruned(&*store).await;
    store.close().await;
    db.cleanup().await;
}

/// Applied segments read back by name and hash only, and by names (those
/// applied among them); the size sampler, which reads them so, measures at
/// most its limit a pass until none is due.
async fn a_sampler_reads_the_specs_it_measures(url: &str) {
    let tree = crate::support::Fixture::empty();
    for name in ["a", "b", "c"] {
        tree.write(
            &format!("segments.d/{name}.toml"),
            &format!("[segment]\nname = \"{name}\"\ndescription = \"d\"\n\n[[filter]]\ntype = \"customer\"\ncountry = \"DE\"\n"),
        );
    }
    crate::support::segd_cmd()
        .args(["apply", "--auto-approve", "-q", "--dir"])
        .arg(tree.path())
        .args(["--database-url", url])
        .assert()
        .success();
    let store = segd::store::connect(url).await.expect("connect");
    let hashes = store
        .applied_hashes(segd::plan::Kind::Segment)
        .await
        .expect("hashes");
    let names: Vec<&str> = hashes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let wanted = ["c", "a", "absent"].map(String::from);
    let named = store
        .applied_named(segd::plan::Kind::Segment, &wanted)
        .await
        .expect("named");
    let read: Vec<(&str, &str)> = named
        .iter()
        .map(|a| (a.def.name.as_str(), a.hash.as_str()))
        .collect();
    let want: Vec<(&str, &str)> = [&hashes[0], &hashes[2]]
        .iter()
        .map(|(n, h)| (n.as_str(), h.as_str()))
        .collect();
    assert_eq!(read, want);
    let limits = segd::ops::sizes::Limits {
        segments: 2,
        time: std::time::Duration::MAX,
        refresh: std::time::Duration::from_secs(3600),
    };
    let mut sampler = segd::ops::sizes::Sampler::default();
    let mut passes = Vec::new();
    for at in [
        "2026-11-01T10:00:00Z",
        "2026-11-01T10:01:00Z",
        "2026-11-01T10:02:00Z",
    ] {
        let s = sampler
            .pass(
                &*store,
                t(at),
                std::time::Duration::from_secs(86_400 * 90),
                limits,
            )
            .await
            .expect("a pass");
        passes.push((s.segments, s.due));
    }
    assert_eq!(passes, [(2, 1), (1, 0), (0, 0)]);
    store.close().await;
}

#[tokio::test]
async fn sqlite_a_sampler_reads_the_specs_it_measures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("segd.db").display());
    a_sampler_reads_the_specs_it_measures(&url).await;
}

#[tokio::test]
#[cfg_attr(no_pg, ignore = "needs SEGD_TEST_POSTGRES_URL")]
async fn postgres_a_sampler_reads_the_specs_it_measures() {
    let Some(db) = fresh_pg_db("postgres_a_sampler_reads_the_specs_it_measures").await else {
        return;
    };
    a_sampler_reads_the_specs_it_measures(&db.url).await;
    db.cleanup().await;
}
