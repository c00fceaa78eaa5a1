//! A trigger run: evaluate the segment at the run's instant, apply the event's
//! rules, and write every intended delivery into the outbox in one transaction.
//! Sending is the delivery worker's job.

use crate::clock::Clock;
use crate::deliver::DeliverError;
use crate::deliver::webhook::Signer;
use crate::model::{Communication, Delivery, Event, Segment};
use crate::plan::{AppliedState, Kind};
use crate::segment::{RunSpec, UNREACHABLE_SAMPLE, compile_member_run, compile_run};
use crate::store::outbox::{Enqueue, Run, RunKind, RunResult};
use crate::store::{Member, Store, StoreError};
use chrono::{DateTime, Utc};

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("{}", unknown_text(.name, .nearest.as_deref(), .defined_in.as_deref()))]
    Unknown {
        name: String,
        /// The nearest applied communication's name, when one is close.
        nearest: Option<String>,
        /// The file defining it, when the definitions on disk do.
        defined_in: Option<String>,
    },
    #[error("communication `{0}` is disabled (enabled = false)")]
    Disabled(String),
    #[error("communication `{0}` names segment `{1}`, which is not applied")]
    NoSegment(String, String),
    /// The run was recorded as failed (e.g. its webhook secret is missing).
    #[error("communication `{0}` failed")]
    Failed(String, #[source] DeliverError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn unknown_text(name: &str, nearest: Option<&str>, defined_in: Option<&str>) -> String {
    match (defined_in, nearest) {
        (Some(file), _) => format!(
            "communication `{name}` is defined in {file} but not applied (run `segd apply`)"
        ),
        (None, Some(near)) => {
            format!("no applied communication `{name}`; did you mean `{near}`?")
        }
        (None, None) => format!("no applied communication `{name}`"),
    }
}

/// Which occurrence a run is for.
#[derive(Debug, Clone, Copy)]
pub enum Occasion {
    /// On request, at `at`; `suffix` tells apart runs started in the same
    /// microsecond.
    Manual { at: DateTime<Utc>, suffix: u16 },
    /// A cron occurrence; `late` when it runs after downtime.
    Scheduled { at: DateTime<Utc>, late: bool },
}

impl Occasion {
    /// A manual run now, as `clock` tells it.
    pub fn manual(clock: &dyn Clock) -> Self {
        Self::Manual {
            at: clock.now(),
            suffix: clock.random(),
        }
    }
}

/// An applied communication and its segment.
pub struct Target {
    pub communication: Communication,
    pub segment: Segment,
}

pub async fn load_target(store: &dyn Store, name: &str) -> Result<Target, TriggerError> {
    find_target(&store.applied().await?, name)
}

/// The applied communication `name` and the segment it names.
pub fn find_target(applied: &AppliedState, name: &str) -> Result<Target, TriggerError> {
    let Some(comm) = applied.communication(name).map_err(StoreError::from)? else {
        let names: Vec<&str> = applied.names(Kind::Communication).collect();
        return Err(TriggerError::Unknown {
            name: name.to_string(),
            nearest: crate::validate::did_you_mean(name, &names).map(str::to_string),
            defined_in: None,
        });
    };
    let segment = applied
        .segment(comm.segment.as_str())
        .map_err(StoreError::from)?
        .ok_or_else(|| TriggerError::NoSegment(name.to_string(), comm.segment.to_string()))?;
    Ok(Target {
        communication: comm.clone(),
        segment: segment.clone(),
    })
}

/// The run's identity: its occurrence id (part of every idempotency key).
fn occurrence_id(occasion: Occasion) -> String {
    match occasion {
        Occasion::Manual { at, suffix } => {
            format!("manual-{}-{suffix:04x}", at.format("%Y%m%dT%H%M%S%.6fZ"))
        }
        Occasion::Scheduled { at, .. } => at.format("%Y%m%dT%H%M%SZ").to_string(),
    }
}

pub struct Prepared<'a> {
    pub run: Run,
    pub spec_at: DateTime<Utc>,
    target: &'a Target,
}

impl Prepared<'_> {
    fn spec(&self) -> RunSpec<'_> {
        let c = &self.target.communication;
        RunSpec {
            communication: c.name.as_str(),
            payment_reminder: c.event == Event::PaymentReminder,
            at: self.spec_at,
            reached_since: c.min_interval.map(|d| {
                // Validation keeps intervals to 10 years; an interval reaching
                // before the earliest time covers every earlier run.
                i64::try_from(d.as_secs())
                    .ok()
                    .and_then(chrono::TimeDelta::try_seconds)
                    .and_then(|d| self.spec_at.checked_sub_signed(d))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC)
            }),
            needs_address: matches!(c.delivery, Delivery::Email(_)),
        }
    }
}

/// The run of `target` for `occasion`. Pure: the occasion carries the time.
pub fn prepare(target: &Target, occasion: Occasion) -> Prepared<'_> {
    let (at, late, kind) = match occasion {
        Occasion::Manual { at, .. } => (at, false, RunKind::Manual),
        Occasion::Scheduled { at, late } => (at, late, RunKind::Scheduled),
    };
    let occurrence = occurrence_id(occasion);
    let name = target.communication.name.as_str();
    Prepared {
        run: Run {
            id: format!("{name}:{occurrence}"),
            communication: name.to_string(),
            channel: target.communication.delivery.channel().as_str(),
            occurrence,
            kind,
            occurred_at: at,
            late,
        },
        spec_at: at,
        target,
    }
}

/// What a dry run found besides the members it handed on.
#[derive(Debug, Default)]
pub struct Preview {
    /// Messages to the members handed on (one a member and invoice).
    pub messages: u64,
    /// Members the channel cannot reach (no email address), not handed on.
    pub unreachable: u64,
    /// The first of them by id, [`UNREACHABLE_SAMPLE`] at most.
    pub unreachable_sample: Vec<Member>,
}

/// Who a run would reach, and with which invoices, without writing anything:
/// each reachable member and invoice goes to `each`, in order of id. The
/// segment is evaluated once, with every candidate, and the members without an
/// address are told apart here. Refused, as the run itself would be, for a
/// disabled communication.
pub async fn preview(
    store: &dyn Store,
    prepared: &Prepared<'_>,
    mut each: impl FnMut(Member) -> std::io::Result<()>,
) -> Result<Preview, TriggerError> {
    enabled(prepared)?;
    let mut spec = prepared.spec();
    let needs_address = std::mem::replace(&mut spec.needs_address, false);
    let q = compile_run(&prepared.target.segment, &spec, store.dialect());
    let mut found = Preview::default();
    let sample = usize::try_from(UNREACHABLE_SAMPLE).unwrap_or(usize::MAX);
    // Rows come in order of id: a member's invoices one after another.
    let mut last_unreachable: Option<String> = None;
    store
        .members(&q.preview, |m| {
            if !needs_address || has_address(m.email.as_deref()) {
                found.messages += 1;
                return each(m);
            }
            if last_unreachable.as_deref() != Some(m.id.as_str()) {
                found.unreachable += 1;
                last_unreachable = Some(m.id.clone());
                if found.unreachable_sample.len() < sample {
                    found.unreachable_sample.push(m);
                }
            }
            Ok(())
        })
        .await?;
    Ok(found)
}

/// Whether a customer has an email address: not NULL and not blank, as the
/// run's queries decide it (`NULLIF(TRIM(c.email), '') IS NOT NULL`, where
/// TRIM removes spaces only).
fn has_address(email: Option<&str>) -> bool {
    email.is_some_and(|e| !e.trim_matches(' ').is_empty())
}

/// A disabled communication (`enabled = false`) runs neither on its schedule
/// nor on demand, whoever asks: the command line, the HTTP API or the scheduler.
fn enabled(prepared: &Prepared<'_>) -> Result<(), TriggerError> {
    let c = &prepared.target.communication;
    if c.enabled {
        Ok(())
    } else {
        Err(TriggerError::Disabled(c.name.to_string()))
    }
}

/// How many members of the run the channel cannot reach (no email address).
pub async fn unreachable(store: &dyn Store, prepared: &Prepared<'_>) -> Result<u64, StoreError> {
    let q = compile_run(&prepared.target.segment, &prepared.spec(), store.dialect());
    match q.unreachable {
        Some(count) => store.count(&count).await,
        None => Ok(0),
    }
}

/// The `customer, invoice` pairs a run would send about, without writing anything.
pub async fn candidates(
    store: &dyn Store,
    prepared: &Prepared<'_>,
) -> Result<Vec<(String, String)>, StoreError> {
    let q = compile_run(&prepared.target.segment, &prepared.spec(), store.dialect());
    store.pairs(&q.candidates).await
}

/// The invoices a run would send one customer about now (at most `limit`;
/// none when it would not reach them).
pub async fn member_invoices(
    store: &dyn Store,
    prepared: &Prepared<'_>,
    customer: &str,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let q = compile_member_run(
        &prepared.target.segment,
        &prepared.spec(),
        store.dialect(),
        customer,
        limit,
    );
    let pairs = store.pairs(&q).await?;
    Ok(pairs.into_iter().map(|(_, invoice)| invoice).collect())
}

/// Checks the communication can send, then records the run (started at `now`)
/// and enqueues.
pub async fn enqueue(
    store: &dyn Store,
    prepared: &Prepared<'_>,
    allow_over_limit: bool,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    now: DateTime<Utc>,
) -> Result<RunResult, TriggerError> {
    enabled(prepared)?;
    let c = &prepared.target.communication;
    if let Delivery::Webhook(w) = &c.delivery
        && let Err(e) = Signer::from_env(&w.secret_env, env)
    {
        store
            .record_failed_run(&prepared.run, &crate::error::chain(&e), now)
            .await?;
        return Err(TriggerError::Failed(c.name.to_string(), e));
    }
    let spec = prepared.spec();
    let q = compile_run(&prepared.target.segment, &spec, store.dialect());
    let e = Enqueue {
        candidates: &q.candidates,
        one_per_recipient: spec.payment_reminder,
        unreachable: q.unreachable.as_ref(),
        max_recipients: c.max_recipients.filter(|_| !allow_over_limit),
        release_held: allow_over_limit,
        started_at: now,
    };
    Ok(store.enqueue_run(&prepared.run, &e).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Manual;
    use crate::validate::{stored_communication, stored_segment};

    fn target() -> Target {
        let segment = stored_segment(
            "[segment]\nname = \"de\"\ndescription = \"d\"\n\n[[filter]]\ntype = \"customer\"\ncountry = \"DE\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let communication = stored_communication(
            "[communication]\nname = \"nudge\"\nsegment = \"de\"\nevent = \"email_invoice\"\nchannel = \"email\"\n\n\
             [trigger]\ntype = \"manual\"\n\n[email]\nfrom = \"Billing <billing@acme.test>\"\nsubject = \"Hi\"\nbody = \"Hello\"\n",
            &Default::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Target {
            communication,
            segment,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn manual_run_ids_follow_the_clock_and_its_seed() {
        let target = target();
        let ids = |seed| {
            let clock = Manual::new(at("2026-12-02T16:49:24.106393Z"), seed);
            [0, 1].map(|_| prepare(&target, Occasion::manual(&clock)).run.id)
        };
        let first = ids(1);
        assert_eq!(first, ids(1), "the same clock and seed give the same ids");
        assert_ne!(first, ids(2));
        assert_ne!(first[0], first[1], "two runs in one microsecond differ");
        for id in &first {
            let suffix = id
                .strip_prefix("nudge:manual-20261202T164924.106393Z-")
                .unwrap_or_else(|| panic!("{id}"));
            assert!(
                suffix.len() == 4 && suffix.chars().all(|c| c.is_ascii_hexdigit()),
                "{id}"
            );
        }
        let run = prepare(
            &target,
            Occasion::manual(&Manual::new(at("2026-12-02T16:49:24Z"), 1)),
        )
        .run;
        assert_eq!(run.occurred_at, at("2026-12-02T16:49:24Z"));
        assert_eq!((run.kind, run.late), (RunKind::Manual, false));
    }

    #[test]
    fn an_address_is_one_not_null_and_not_blank_as_in_the_run_queries() {
        for (email, has) in [
            (None, false),
            (Some(""), false),
            (Some("   "), false),
            (Some(" a@example.com "), true),
            // SQL's TRIM removes spaces only: a tab is an address to the run.
            (Some("\t"), true),
        ] {
            assert_eq!(has_address(email), has, "{email:?}");
        }
    }

    #[test]
    fn scheduled_run_ids_name_their_occurrence() {
        let target = target();
        let occasion = Occasion::Scheduled {
            at: at("2026-03-29T01:00:00Z"),
            late: true,
        };
        let run = prepare(&target, occasion).run;
        assert_eq!(run.id, "nudge:20260329T010000Z");
        assert_eq!((run.kind, run.late), (RunKind::Scheduled, true));
    }
}
