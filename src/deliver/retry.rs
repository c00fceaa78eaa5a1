//! When to try a delivery again. Pure: the caller hands in the randomness.

use std::time::Duration;

/// The longest a receiver's `Retry-After` may park a delivery, in either of its
/// forms (seconds or an HTTP date): one day.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent,
    /// Worth another attempt (408, 429, 5xx, timeouts, connection errors).
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Never worth another attempt (other 4xx, a customer without email, …).
    Permanent {
        error: String,
    },
}

/// The delay before the next attempt after `attempts` attempts failed, or `None`
/// when the schedule is exhausted (the delivery is dead). `schedule[i]` is the
/// delay before attempt `i + 1`; `jitter` in [0, 1) spreads it by ±10%; a
/// `Retry-After` longer than the step is honoured, up to [`MAX_RETRY_AFTER`].
pub fn next_delay(
    attempts: u32,
    schedule: &[Duration],
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    let step = *schedule.get(usize::try_from(attempts).ok()?)?;
    let factor = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
    let jittered = step.mul_f64(factor);
    Some(match retry_after {
        Some(r) => r.min(MAX_RETRY_AFTER).max(jittered),
        None => jittered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Vec<Duration> {
        [0, 5, 300, 1800].map(Duration::from_secs).to_vec()
    }

    #[test]
    fn follows_the_schedule_with_jitter() {
        assert_eq!(
            next_delay(1, &schedule(), None, 0.5),
            Some(Duration::from_secs(5))
        );
        let d = next_delay(2, &schedule(), None, 0.0).expect("a step");
        assert_eq!(d, Duration::from_secs(270));
        let d = next_delay(2, &schedule(), None, 0.999).expect("a step");
        assert!(d > Duration::from_secs(329) && d < Duration::from_secs(331));
    }

    #[test]
    fn dead_after_the_last_step() {
        assert_eq!(next_delay(4, &schedule(), None, 0.5), None);
    }

    #[test]
    fn honours_a_longer_retry_after_only() {
        let long = Some(Duration::from_secs(60));
        assert_eq!(next_delay(1, &schedule(), long, 0.5), long);
        let short = Some(Duration::from_secs(1));
        assert_eq!(
            next_delay(2, &schedule(), short, 0.5),
            Some(Duration::from_secs(300))
        );
    }

    #[test]
    fn caps_a_retry_after_at_one_day() {
        let year_9999 = Some(Duration::from_secs(250_000_000_000));
        assert_eq!(
            next_delay(1, &schedule(), year_9999, 0.5),
            Some(MAX_RETRY_AFTER)
        );
        // The cap never shortens a longer step of the schedule.
        let two_days = vec![Duration::from_secs(2 * 86_400)];
        let three_days = Some(Duration::from_secs(3 * 86_400));
        let d = next_delay(0, &two_days, three_days, 0.5).expect("a step");
        assert_eq!(d, Duration::from_secs(2 * 86_400));
    }
}
