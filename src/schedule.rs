//! When automatic communications fire: cron occurrences in a time zone. Pure.
//!
//! The DST rule (SPEC §3, croner's behaviour): a local time skipped by
//! spring-forward fires once, right after the gap; a local time that occurs twice
//! at fall-back fires once, at its first occurrence; occurrences always move
//! forward in real time.

use crate::model::Schedule;
use chrono::{DateTime, Datelike as _, DurationRound as _, TimeDelta, Utc};
use chrono_tz::Tz;

/// How far ahead a schedule must fire at least once: 5 years.
pub const HORIZON: TimeDelta = TimeDelta::days(5 * 365 + 2);

/// How often a schedule fires, as validation judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// No occurrence within [`HORIZON`] of the reference time.
    Never,
    /// Two occurrences less than a minute apart: this far apart.
    SubMinute(TimeDelta),
    AtMostOncePerMinute,
}

/// Judges a schedule from `from`: its first occurrence within [`HORIZON`], and
/// the gap to the next one (from the start of a minute, so every second a
/// firing minute holds is seen).
pub fn cadence(schedule: &Schedule, tz: Tz, from: DateTime<Utc>) -> Cadence {
    let start = from
        .duration_trunc(TimeDelta::minutes(1))
        .ok()
        .and_then(|t| t.checked_sub_signed(TimeDelta::seconds(1)))
        .unwrap_or(from);
    let horizon = from
        .checked_add_signed(HORIZON)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    // croner cannot search outside its years (next_after gives None), and the
    // local date of an instant at the ends of chrono's range does not exist.
    if !searchable(start) || !fires_on_a_day(schedule, tz, start, horizon) {
        return Cadence::Never;
    }
    let Some(first) = next_after(schedule, tz, start).filter(|t| *t <= horizon) else {
        return Cadence::Never;
    };
    match next_after(schedule, tz, first).map(|second| second - first) {
        Some(gap) if gap < TimeDelta::minutes(1) => Cadence::SubMinute(gap),
        _ => Cadence::AtMostOncePerMinute,
    }
}

/// Whether any local day from `from` to `until` matches the schedule's year,
/// month and day fields: about 1,800 cheap checks, where croner alone may
/// search to the year 4999 for a day that never comes (`0 0 1 * +MON#5`).
fn fires_on_a_day(schedule: &Schedule, tz: Tz, from: DateTime<Utc>, until: DateTime<Utc>) -> bool {
    let pattern = &schedule.cron().pattern;
    let last = until.with_timezone(&tz).date_naive();
    from.with_timezone(&tz)
        .date_naive()
        .iter_days()
        .take_while(|d| *d <= last)
        .any(|d| {
            pattern.year_match(d.year()).unwrap_or(false)
                && pattern.month_match(d.month()).unwrap_or(false)
                && pattern
                    .day_match(
                        d.year(),
                        d.month(),
                        d.day(),
                        croner::Weekday::from_days_from_sunday(d.weekday().num_days_from_sunday()),
                    )
                    .unwrap_or(false)
        })
}

/// Whether croner can search from `t`: it knows the years 1 to 4999 (and
/// panics on local times at the ends of chrono's range).
fn searchable(t: DateTime<Utc>) -> bool {
    (croner::YEAR_LOWER_LIMIT..croner::YEAR_UPPER_LIMIT).contains(&t.year())
}

/// The first occurrence strictly after `after`; `None` beyond the year 4999.
pub fn next_after(schedule: &Schedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !searchable(after) {
        return None;
    }
    let local = after.with_timezone(&tz);
    let next = schedule.cron().find_next_occurrence(&local, false).ok()?;
    let next = next.with_timezone(&Utc);
    // Guard the "always forward" rule against any library surprise.
    (next > after).then_some(next)
}

/// An occurrence that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The latest occurrence after the anchor and not after now.
    pub at: DateTime<Utc>,
    /// Earlier occurrences since the anchor that were missed (downtime); they do
    /// not run, the latest one runs once, marked late.
    pub missed: u32,
}

/// How many occurrences are stepped through before jumping to the latest one.
const STEP_LIMIT: u32 = 10_000;

/// The occurrence to run now, if any: occurrences after `anchor` (the last one
/// that ran, or when the communication was applied) up to `now`.
pub fn due(schedule: &Schedule, tz: Tz, anchor: DateTime<Utc>, now: DateTime<Utc>) -> Option<Due> {
    let mut at = next_after(schedule, tz, anchor)?;
    if at > now {
        return None;
    }
    let mut missed = 0;
    while let Some(n) = next_after(schedule, tz, at) {
        if n > now {
            return Some(Due { at, missed });
        }
        missed += 1;
        at = n;
        if missed >= STEP_LIMIT {
            let latest = searchable(now)
                .then(|| {
                    schedule
                        .cron()
                        .find_previous_occurrence(&now.with_timezone(&tz), true)
                        .ok()
                })
                .flatten()
                .map(|t| t.with_timezone(&Utc))
                .filter(|t| *t >= at)
                .unwrap_or(at);
            return Some(Due { at: latest, missed });
        }
    }
    Some(Due { at, missed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn sched(s: &str) -> Schedule {
        Schedule::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn next_in_a_time_zone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap_or(Tz::UTC);
        // 09:00 Berlin in winter is 08:00 UTC.
        let n = next_after(&sched("0 9 * * *"), berlin, utc("2026-01-10T12:00:00Z"));
        assert_eq!(n, Some(utc("2026-01-11T08:00:00Z")));
    }

    #[test]
    fn spring_forward_fires_once_right_after_the_gap() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap_or(Tz::UTC);
        // 2026-03-29 02:30 does not exist in Berlin (02:00 → 03:00).
        let s = sched("30 2 * * *");
        let first = next_after(&s, berlin, utc("2026-03-28T12:00:00Z")).expect("an occurrence");
        assert_eq!(
            first,
            utc("2026-03-29T01:00:00Z"),
            "03:00 CEST, right after the gap"
        );
        let second = next_after(&s, berlin, first).expect("an occurrence");
        assert_eq!(second, utc("2026-03-30T00:30:00Z"));
    }

    #[test]
    fn fall_back_fires_once_at_the_first_occurrence() {
        let ny: Tz = "America/New_York".parse().unwrap_or(Tz::UTC);
        // 2026-11-01 01:30 happens twice in New York (EDT, then EST).
        let s = sched("30 1 * * *");
        let first = next_after(&s, ny, utc("2026-10-31T12:00:00Z")).expect("an occurrence");
        assert_eq!(first, utc("2026-11-01T05:30:00Z"), "01:30 EDT");
        let second = next_after(&s, ny, first).expect("an occurrence");
        assert_eq!(
            second,
            utc("2026-11-02T06:30:00Z"),
            "not again at 01:30 EST"
        );
    }

    #[test]
    fn downtime_runs_the_latest_missed_occurrence_once() {
        let s = sched("0 * * * *");
        let d = due(
            &s,
            Tz::UTC,
            utc("2026-01-01T00:00:00Z"),
            utc("2026-01-01T05:30:00Z"),
        );
        assert_eq!(
            d,
            Some(Due {
                at: utc("2026-01-01T05:00:00Z"),
                missed: 4
            })
        );
        assert_eq!(
            due(
                &s,
                Tz::UTC,
                utc("2026-01-01T05:00:00Z"),
                utc("2026-01-01T05:30:00Z")
            ),
            None
        );
    }

    #[test]
    fn cadence_finds_never_and_sub_minute_schedules() {
        let from = utc("2026-12-02T10:17:33Z");
        for (s, want) in [
            ("0 9 30 2 *", Cadence::Never),
            ("0 0 31 4,6,9,11 *", Cadence::Never),
            ("* * * * * *", Cadence::SubMinute(TimeDelta::seconds(1))),
            (
                "0,59 */5 * * * *",
                Cadence::SubMinute(TimeDelta::seconds(59)),
            ),
            ("0 * * * * *", Cadence::AtMostOncePerMinute),
            ("* * * * *", Cadence::AtMostOncePerMinute),
            ("0 0 29 2 *", Cadence::AtMostOncePerMinute),
            ("0 9 * * MON-FRI", Cadence::AtMostOncePerMinute),
        ] {
            assert_eq!(cadence(&sched(s), Tz::UTC, from), want, "{s}");
        }
        // Days that never come are found without a search to the year 4999.
        for s in [
            "0 0 1 * +MON#5",
            "0 0 31 2 +MON",
            "0 0 1 * +MON#5,TUE#5,WED#5",
        ] {
            let started = std::time::Instant::now();
            assert_eq!(cadence(&sched(s), Tz::UTC, from), Cadence::Never, "{s}");
            assert!(started.elapsed() < std::time::Duration::from_secs(2), "{s}");
        }
        // A rare day within the horizon is found: the fifth Sunday of February
        // 2032, from 2028.
        assert_eq!(
            cadence(
                &sched("0 9 * 2 SUN#5"),
                Tz::UTC,
                utc("2028-01-01T00:00:00Z")
            ),
            Cadence::AtMostOncePerMinute
        );
        // Near the end of the calendar nothing is left to fire.
        assert_eq!(
            cadence(&sched("0 9 * * *"), Tz::UTC, DateTime::<Utc>::MAX_UTC),
            Cadence::Never
        );
        // At the ends of chrono's range a local date west or east of UTC does
        // not exist: no occurrence, and no panic.
        for (tz, from) in [
            ("America/Anguilla", DateTime::<Utc>::MIN_UTC),
            ("Asia/Tokyo", DateTime::<Utc>::MAX_UTC),
        ] {
            let tz: Tz = tz.parse().expect("a time zone");
            assert_eq!(cadence(&sched("* */1 */1 JAN *"), tz, from), Cadence::Never);
        }
    }

    #[test]
    fn a_long_downtime_is_bounded() {
        let s = sched("* * * * * *");
        let anchor = utc("2026-01-01T00:00:00Z");
        let d = due(&s, Tz::UTC, anchor, utc("2026-01-02T00:00:00Z")).expect("due");
        assert_eq!(d.at, utc("2026-01-02T00:00:00Z"));
    }
}
