//! The scheduler's dry run, occurrence after occurrence: what each one would
//! send given what the occurrences before it in the forecast would have sent.
//! The database answers who is a candidate at each instant (its runs so far
//! taken into account); this module carries the forecast's own sends forward:
//! an invoice is emailed once, `min_interval` keeps a customer from being
//! reached again too soon, and an occurrence over `max_recipients` is held and
//! sends nothing.

use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{BTreeSet, HashMap, HashSet};

/// What one occurrence would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The customers it reaches (or would, were it not held).
    pub recipients: u64,
    /// The messages it sends (or would, were it not held).
    pub messages: u64,
    /// Over `max_recipients`: held, nothing sent.
    pub held: bool,
}

/// A communication's forecast so far.
pub struct Simulation {
    /// One message per customer listing its invoices (payment_reminder),
    /// rather than one per invoice, each sent once (email_invoice).
    one_per_recipient: bool,
    min_interval: Option<TimeDelta>,
    max_recipients: Option<u64>,
    /// Invoices the forecast's earlier occurrences email.
    sent: HashSet<String>,
    /// When the forecast's earlier occurrences last reached each customer.
    reached: HashMap<String, DateTime<Utc>>,
}

impl Simulation {
    pub fn new(
        one_per_recipient: bool,
        min_interval: Option<std::time::Duration>,
        max_recipients: Option<u64>,
    ) -> Self {
        Self {
            one_per_recipient,
            min_interval: min_interval.map(|d| {
                i64::try_from(d.as_secs())
                    .ok()
                    .and_then(TimeDelta::try_seconds)
                    .unwrap_or(TimeDelta::MAX)
            }),
            max_recipients,
            sent: HashSet::new(),
            reached: HashMap::new(),
        }
    }

    /// The occurrence at `at`, from the database's candidates then
    /// (`customer, invoice` pairs of reachable members); records what it sends.
    pub fn occurrence(&mut self, at: DateTime<Utc>, candidates: &[(String, String)]) -> Outcome {
        let recent = |c: &str| {
            self.reached.get(c).is_some_and(|last| {
                self.min_interval
                    .is_some_and(|i| at.signed_duration_since(*last) < i)
            })
        };
        let due: Vec<&(String, String)> = candidates
            .iter()
            .filter(|(c, i)| (self.one_per_recipient || !self.sent.contains(i)) && !recent(c))
            .collect();
        let customers: BTreeSet<&str> = due.iter().map(|(c, _)| c.as_str()).collect();
        let recipients = customers.len() as u64;
        let messages = if self.one_per_recipient {
            recipients
        } else {
            due.iter().map(|(_, i)| i).collect::<BTreeSet<_>>().len() as u64
        };
        let held = self.max_recipients.is_some_and(|m| recipients > m);
        if !held {
            for c in customers {
                self.reached.insert(c.to_string(), at);
            }
            if !self.one_per_recipient {
                self.sent.extend(due.iter().map(|(_, i)| i.clone()));
            }
        }
        Outcome {
            recipients,
            messages,
            held,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(c, i)| (c.to_string(), i.to_string()))
            .collect()
    }

    fn day(d: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2026, 12, d)
            .and_then(|d| d.and_hms_opt(7, 0, 0))
            .map(|t| t.and_utc())
            .unwrap_or_default()
    }

    fn outcome(recipients: u64, messages: u64, held: bool) -> Outcome {
        Outcome {
            recipients,
            messages,
            held,
        }
    }

    #[test]
    fn an_invoice_is_emailed_by_one_occurrence_only() {
        let mut s = Simulation::new(false, None, None);
        let all = pairs(&[("c1", "i1"), ("c1", "i2"), ("c2", "i3")]);
        assert_eq!(s.occurrence(day(1), &all), outcome(2, 3, false));
        assert_eq!(s.occurrence(day(2), &all), outcome(0, 0, false));
        let more = pairs(&[("c1", "i1"), ("c1", "i2"), ("c2", "i3"), ("c2", "i4")]);
        assert_eq!(s.occurrence(day(3), &more), outcome(1, 1, false));
    }

    #[test]
    fn min_interval_holds_a_customer_back_across_occurrences() {
        let week = std::time::Duration::from_secs(7 * 86_400);
        let mut s = Simulation::new(true, Some(week), None);
        let all = pairs(&[("c1", "i1"), ("c2", "i2")]);
        assert_eq!(s.occurrence(day(1), &all), outcome(2, 2, false));
        assert_eq!(s.occurrence(day(2), &all), outcome(0, 0, false));
        assert_eq!(s.occurrence(day(7), &all), outcome(0, 0, false));
        assert_eq!(s.occurrence(day(8), &all), outcome(2, 2, false));
        // Without min_interval a reminder goes out at every occurrence.
        let mut s = Simulation::new(true, None, None);
        assert_eq!(s.occurrence(day(1), &all), outcome(2, 2, false));
        assert_eq!(s.occurrence(day(2), &all), outcome(2, 2, false));
    }

    #[test]
    fn a_held_occurrence_sends_nothing_so_the_next_one_still_would() {
        let mut s = Simulation::new(false, None, Some(1));
        let all = pairs(&[("c1", "i1"), ("c2", "i2")]);
        assert_eq!(s.occurrence(day(1), &all), outcome(2, 2, true));
        assert_eq!(s.occurrence(day(2), &all), outcome(2, 2, true));
        assert_eq!(
            s.occurrence(day(3), &pairs(&[("c1", "i1")])),
            outcome(1, 1, false)
        );
        assert_eq!(s.occurrence(day(4), &all), outcome(1, 1, false));
    }
}
