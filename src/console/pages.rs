//! The console's read-only pages of what is applied: the overview, segments
//! and communications (what happened is in `activity`). Every list is paged,
//! every query parameter checked (a bad one is a 400 that says why), and
//! members are read one page at a time from the database, never all.

use super::chart;
use super::params::{
    Listing, MembersQuery, PAGE, Params, PreviewQuery, customer_id, next_page, search,
};
use super::session::View;
use super::{Console, PageError, when};
use crate::deliver::payload::{Subject, email_templates, webhook_body};
use crate::model::{Communication, Delivery as Channel, Event, Segment, Trigger};
use crate::plan::{Applied, AppliedState, Decoded, Kind};
use crate::schedule::next_after;
use crate::segment::{compile_page, compile_window_end, describe, page_in_one_query};
use crate::store::outbox::RunFilter;
use crate::store::sizes::MEMBERS_TRACKED;
use crate::store::{Member, Store, StoreError};
use crate::trigger::{Occasion, find_target, member_invoices, prepare};
use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::TryStreamExt as _;
use minijinja::context;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The size chart's period.
const CHART_DAYS: i64 = 30;

/// The most occurrences a communication's 7-day forecast lists.
const MAX_FORECAST: usize = 100;

/// The most invoices a preview lists (a reminder lists them all).
const MAX_PREVIEW_INVOICES: u32 = 50;

/// The communications using each segment, by segment name.
fn users(applied: &AppliedState) -> BTreeMap<String, Vec<String>> {
    let mut by_segment: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in applied.communications().flatten() {
        by_segment
            .entry(c.segment.to_string())
            .or_default()
            .push(c.name.to_string());
    }
    by_segment
}

pub async fn overview(State(c): State<Arc<Console>>, session: View) -> Result<Response, PageError> {
    let status = c.shared.status.read().await.clone();
    let last_apply = c.store.applies(None, 1).await?.into_iter().next();
    let deliveries = c.store.outbox_counts().await?;
    let r = &status.last_reconcile;
    let degraded: Vec<_> = r
        .degraded
        .iter()
        .map(|d| {
            context! {
                kind => d.kind.as_str(),
                name => d.name.as_deref(),
                file => d.file.as_str(),
                errors => d.errors.iter().map(|e| format!("{}:{e}", d.file)).collect::<Vec<_>>(),
            }
        })
        .collect();
    let next: Vec<_> = status
        .next_triggers
        .iter()
        .take(PAGE)
        .map(|n| context! { communication => n.communication.as_str(), at => when(n.at) })
        .collect();
    c.render(
        "overview.html",
        &session,
        context! {
            title => "Overview",
            leader => c.shared.is_leader(),
            ready => c.shared.is_ready(),
            applying => !c.shared.no_apply,
            started_at => when(c.shared.started_at),
            reconciles => status.reconciles,
            drift_undone => status.drift_undone,
            last => context! {
                at => r.at.map(when),
                ok => r.ok,
                error => r.error.as_deref(),
                duration_ms => r.duration_ms,
                created => &r.created,
                updated => &r.updated,
                deleted => &r.deleted,
                drift => &r.drift,
                blocked => &r.protected_deletes_blocked,
            },
            degraded,
            undecodable => status.undecodable.iter().map(ToString::to_string).collect::<Vec<_>>(),
            apply => last_apply.map(|a| context! {
                at => when(a.applied_at),
                user => a.user,
                commit => a.git_commit,
                summary => a.summary,
            }),
            deliveries,
            next,
        },
    )
}

pub async fn segments(State(c): State<Arc<Console>>, list: Listing) -> Result<Response, PageError> {
    let (total, shown, pages) = list.of(Kind::Segment)?;
    let users = users(&list.applied);
    let now = c.clock.now();
    let from = now - TimeDelta::days(CHART_DAYS);
    let mut rows = Vec::with_capacity(shown.len());
    for a in shown {
        let name = a.def.name.as_str();
        let (description, words) = match a.decoded() {
            Ok(Decoded::Segment(s)) => (s.description.clone(), describe(s)),
            Ok(Decoded::Communication(_)) => continue,
            Err(e) => (None, e.to_string()),
        };
        // The latest size is the chart's last sample (a segment is sampled
        // hourly; none in the chart's 30 days: not known).
        let history = c.store.size_history(name, from).await?;
        let size = history.last();
        rows.push(context! {
            name,
            description,
            words,
            members => size.map(|s| s.members),
            sampled_at => size.map(|s| when(s.at)),
            chart => chart::line(&history, from, now, 120, 28),
            used_by => users.get(name).cloned().unwrap_or_default(),
        });
    }
    c.render(
        "segments.html",
        &list.session,
        list.context("Segments", total, pages, rows),
    )
}

/// The applied definition of `kind` named `name`, read back.
fn definition<'a>(
    applied: &'a AppliedState,
    kind: Kind,
    name: &str,
) -> Result<(&'a Applied, &'a Decoded), PageError> {
    let row = applied
        .rows
        .iter()
        .find(|a| a.def.kind == kind && a.def.name == name)
        .ok_or_else(|| PageError::NotFound(format!("no applied {} `{name}`", kind.as_str())))?;
    Ok((row, row.decoded()?))
}

pub async fn segment(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    session: View,
    Params(query): Params<MembersQuery>,
) -> Result<Response, PageError> {
    let q = search(query.q.as_deref())?;
    let after = customer_id("after", query.after.as_deref())?;
    let applied = c.applied().await?;
    let (row, Decoded::Segment(segment)) = definition(&applied, Kind::Segment, &name)? else {
        return Err(PageError::NotFound(format!("no applied segment `{name}`")));
    };
    let now = c.clock.now();
    let from = now - TimeDelta::days(CHART_DAYS);
    let history = c.store.size_history(&name, from).await?;
    let latest = history.last();
    let mut members = member_page(
        &*c.store,
        segment,
        now,
        (after.as_deref(), q.as_deref()),
        WINDOW,
    )
    .await?;
    let next_after = next_page(&mut members, |m| m.id.clone());
    let changes = c.store.membership_changes(&name, PAGE).await?;
    let untracked = match (&changes, latest) {
        (Some(_), _) => None,
        (None, Some(s)) if s.members > MEMBERS_TRACKED => Some(format!(
            "too large to track (over {MEMBERS_TRACKED} members)"
        )),
        (None, _) => Some("not known yet: it takes two size samples".to_string()),
    };
    let users = users(&applied);
    c.render(
        "segment.html",
        &session,
        context! {
            title => format!("Segment {name}"),
            name,
            description => segment.description.as_deref(),
            words => describe(segment),
            spec => row.def.spec.as_str(),
            source => row.def.source.as_str(),
            members_count => latest.map(|s| s.members),
            sampled_at => latest.map(|s| when(s.at)),
            chart => chart::line(&history, from, now, 600, 120),
            samples => history.len(),
            q,
            after,
            members,
            next_after,
            changes => changes.map(|ch| context! {
                since => when(ch.since),
                at => when(ch.at),
                entered => ch.entered,
                left => ch.left,
                entered_total => ch.entered_total,
                left_total => ch.left_total,
            }),
            untracked,
            used_by => users.get(name.as_str()).cloned().unwrap_or_default(),
        },
    )
}

/// How many customers the first window of a member page spans; each next
/// window spans four times as many.
const WINDOW: u64 = 20_000;

/// One page of `segment`'s members after id `after` (those matching `q`),
/// plus one to know whether another page follows. Read window by window of
/// customer ids, from a window of `first` customers ([`WINDOW`]), four times as wide
/// each time, until the page is full or the customers end: a page of a large
/// segment reads the related rows of its first window only (SQLite builds a
/// related block's list whole before it hands over the first member; on
/// 1,000,000 customers a segment's first page took 1.2 s so). A segment of
/// few members costs about 4/3 of one whole evaluation. A segment that a
/// name or email prefix drives is read in one query ([`page_in_one_query`]).
pub(super) async fn member_page(
    store: &dyn Store,
    segment: &Segment,
    now: DateTime<Utc>,
    (after, q): (Option<&str>, Option<&str>),
    first: u64,
) -> Result<Vec<Member>, StoreError> {
    let mut members = Vec::with_capacity(PAGE + 1);
    if page_in_one_query(segment, store.dialect()) {
        let want = u32::try_from(PAGE + 1).unwrap_or(u32::MAX);
        let page = compile_page(segment, store.dialect(), now, (after, None), q, want);
        return store.member_stream(&page).try_collect().await;
    }
    let mut from = after.map(str::to_string);
    let mut span = first.max(1);
    loop {
        let end_query = compile_window_end(from.as_deref(), span);
        let end = store
            .member_stream(&end_query)
            .try_next()
            .await?
            .map(|m| m.id);
        let want = u32::try_from(PAGE + 1 - members.len()).unwrap_or(u32::MAX);
        let window = (from.as_deref(), end.as_deref());
        let page = compile_page(segment, store.dialect(), now, window, q, want);
        let mut rows = store.member_stream(&page);
        while let Some(m) = rows.try_next().await? {
            members.push(m);
        }
        drop(rows);
        match end {
            Some(end) if members.len() <= PAGE => {
                from = Some(end);
                span = span.saturating_mul(4);
            }
            _ => return Ok(members),
        }
    }
}

/// A communication's trigger in words, and its next occurrences after
/// `now`: at most `n`, and none after `until`.
fn trigger(
    c: &Communication,
    now: DateTime<Utc>,
    n: usize,
    until: Option<DateTime<Utc>>,
) -> (String, Vec<String>) {
    let Trigger::Automatic { schedule, timezone } = &c.trigger else {
        return ("manual".into(), Vec::new());
    };
    let mut next = Vec::new();
    let mut at = now;
    while next.len() < n {
        match next_after(schedule, *timezone, at) {
            Some(t) if until.is_none_or(|u| t <= u) => {
                next.push(format!(
                    "{} ({})",
                    t.with_timezone(timezone).format("%Y-%m-%d %H:%M %Z"),
                    when(t)
                ));
                at = t;
            }
            _ => break,
        }
    }
    (format!("`{}` in {timezone}", schedule.as_str()), next)
}

/// What a communication does, and its next occurrences.
fn summary(c: &Communication, (trigger, next): (String, Vec<String>)) -> minijinja::Value {
    context! {
        name => c.name.as_str(),
        description => c.description.as_deref(),
        segment => c.segment.as_str(),
        event => c.event.as_str(),
        channel => c.delivery.channel().as_str(),
        enabled => c.enabled,
        trigger,
        next,
        limits => limits(c),
    }
}

fn limits(c: &Communication) -> String {
    let mut parts = Vec::new();
    if let Some(n) = c.max_recipients {
        parts.push(format!("at most {n} recipients"));
    }
    if let Some(d) = c.min_interval {
        parts.push(format!("at least {d} between messages to a customer"));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join("; ")
    }
}

pub async fn communications(
    State(c): State<Arc<Console>>,
    list: Listing,
) -> Result<Response, PageError> {
    let (total, shown, pages) = list.of(Kind::Communication)?;
    let now = c.clock.now();
    let mut rows = Vec::with_capacity(shown.len());
    for a in shown {
        let name = a.def.name.as_str();
        let last = c
            .store
            .runs(&RunFilter {
                communication: Some(name.to_string()),
                limit: Some(1),
                ..RunFilter::default()
            })
            .await?
            .into_iter()
            .next();
        let row = match a.decoded() {
            Ok(Decoded::Communication(comm)) => {
                context! { last, ..summary(comm, trigger(comm, now, 5, None)) }
            }
            Ok(Decoded::Segment(_)) => continue,
            Err(e) => context! { name, error => e.to_string(), last },
        };
        rows.push(row);
    }
    c.render(
        "communications.html",
        &list.session,
        list.context("Communications", total, pages, rows),
    )
}

pub async fn communication(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    session: View,
    Params(query): Params<PreviewQuery>,
) -> Result<Response, PageError> {
    let member = customer_id("member", query.member.as_deref())?;
    let applied = c.applied().await?;
    let (row, Decoded::Communication(comm)) = definition(&applied, Kind::Communication, &name)?
    else {
        return Err(PageError::NotFound(format!(
            "no applied communication `{name}`"
        )));
    };
    let now = c.clock.now();
    let runs = c
        .store
        .runs(&RunFilter {
            communication: Some(name.clone()),
            limit: Some(i64::try_from(PAGE).unwrap_or(i64::MAX)),
            ..RunFilter::default()
        })
        .await?;
    let preview = match &member {
        Some(id) => Some(preview(&c, comm, &applied, id).await?),
        None => None,
    };
    c.render(
        "communication.html",
        &session,
        context! {
            title => format!("Communication {name}"),
            spec => row.def.spec.as_str(),
            source => row.def.source.as_str(),
            held => runs.iter().any(|r| r.status == "held" && r.released_by.is_none()),
            runs,
            member,
            preview,
            ..summary(comm, trigger(comm, now, MAX_FORECAST, Some(now + TimeDelta::days(7))))
        },
    )
}

/// The message a communication would send `member` now, with the invoices a
/// run would pick for them: the email's subject and body, or the webhook's
/// JSON (an invoice email shows its first invoice's message).
async fn preview(
    c: &Console,
    comm: &Communication,
    applied: &AppliedState,
    member: &str,
) -> Result<minijinja::Value, PageError> {
    let customers = c.store.customers(&[member.to_string()]).await?;
    let Some(customer) = customers.first() else {
        return Ok(context! { missing => true });
    };
    let target = find_target(applied, comm.name.as_str())
        .map_err(|e| PageError::NotFound(crate::error::chain(&e)))?;
    let prepared = prepare(&target, Occasion::manual(&*c.clock));
    let mut ids = member_invoices(&*c.store, &prepared, member, MAX_PREVIEW_INVOICES).await?;
    if ids.is_empty() {
        return Ok(context! { unreached => true });
    }
    if comm.event == Event::EmailInvoice {
        ids.truncate(1);
    }
    let invoices = c.store.invoices(&ids).await?;
    let segment_description = applied
        .segment(comm.segment.as_str())?
        .and_then(|s| s.description.clone());
    let subject = Subject {
        key: "preview",
        communication: comm,
        segment_description: segment_description.as_deref(),
        occurred_at: prepared.run.occurred_at,
        customer,
        invoices: &invoices,
    };
    let templates = applied
        .rows
        .iter()
        .find(|a| a.def.kind == Kind::Communication && a.def.name == comm.name)
        .map(|a| a.def.templates.clone())
        .unwrap_or_default();
    Ok(match &comm.delivery {
        Channel::Email(email) => {
            match email_templates(email, &templates, &subject).and_then(|t| t.render()) {
                Ok(m) => context! { subject => m.subject, body => m.body },
                Err(e) => context! { error => crate::error::chain(&e) },
            }
        }
        Channel::Webhook(_) => {
            let body = webhook_body(&subject);
            let pretty = serde_json::from_str::<serde_json::Value>(&body)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or(body);
            context! { json => pretty }
        }
    })
}
