//! The console's pages of what happened: deliveries, one delivery, the
//! apply history and one apply with its plan.

use super::params::{
    DeliveriesQuery, HistoryQuery, PAGE, Params, id_param, next_page, path_id, time_param,
};
use super::session::View;
use super::{Console, PageError, when};
use crate::model::Name;
use crate::store::ApplyEntry;
use crate::store::outbox::{DeliveryFilter, DeliveryStatus};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use minijinja::context;
use serde::Deserialize;
use std::sync::Arc;

/// The most of an apply's plan document shown, in bytes.
const MAX_PLAN_BYTES: usize = 256 * 1024;

/// The most changes of an apply listed.
const MAX_CHANGES: usize = 1_000;

pub async fn deliveries(
    State(c): State<Arc<Console>>,
    session: View,
    Params(query): Params<DeliveriesQuery>,
) -> Result<Response, PageError> {
    let communication = match query.communication.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) => Some(
            Name::parse(n)
                .map_err(|e| PageError::BadQuery(format!("`communication`: {e}")))?
                .to_string(),
        ),
    };
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            let known: Vec<&str> = DeliveryStatus::ALL.iter().map(|d| d.as_str()).collect();
            PageError::BadQuery(format!(
                "`status` is one of {}, not `{s}`",
                known.join(", ")
            ))
        })?),
    };
    let before = id_param("before", query.before.as_deref())?;
    let since = time_param("since", query.since.as_deref())?;
    let until = time_param("until", query.until.as_deref())?;
    let mut rows = c
        .store
        .deliveries(&DeliveryFilter {
            communication: communication.clone(),
            status,
            before,
            since,
            until,
            limit: Some(i64::try_from(PAGE + 1).unwrap_or(i64::MAX)),
            newest_first: true,
            ..DeliveryFilter::default()
        })
        .await?;
    let next_before = next_page(&mut rows, |d| d.id);
    c.render(
        "deliveries.html",
        &session,
        context! {
            title => "Deliveries",
            communication,
            status => status.map(DeliveryStatus::as_str),
            since => query.since.as_deref().filter(|_| since.is_some()),
            until => query.until.as_deref().filter(|_| until.is_some()),
            statuses => DeliveryStatus::ALL.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            rows,
            next_before,
        },
    )
}

pub async fn delivery(
    State(c): State<Arc<Console>>,
    Path(id): Path<String>,
    session: View,
) -> Result<Response, PageError> {
    let id = path_id("delivery id", &id)?;
    let d = c
        .store
        .deliveries(&DeliveryFilter {
            id: Some(id),
            limit: Some(1),
            ..DeliveryFilter::default()
        })
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| PageError::NotFound(format!("no delivery {id}")))?;
    let retryable = matches!(d.status, DeliveryStatus::Failed | DeliveryStatus::Dead);
    c.render(
        "delivery.html",
        &session,
        context! {
            title => format!("Delivery {id}"),
            d,
            retryable,
            next_attempt => when(d.next_attempt_at),
            created => when(d.created_at),
            sent => d.sent_at.map(when),
        },
    )
}

pub async fn history(
    State(c): State<Arc<Console>>,
    session: View,
    Params(query): Params<HistoryQuery>,
) -> Result<Response, PageError> {
    let before = id_param("before", query.before.as_deref())?;
    let mut applies = c
        .store
        .applies(before, i64::try_from(PAGE + 1).unwrap_or(i64::MAX))
        .await?;
    let next_before = next_page(&mut applies, |a| a.id);
    let rows: Vec<_> = applies
        .iter()
        .map(|a| {
            context! {
                id => a.id,
                at => when(a.applied_at),
                user => a.user.as_str(),
                commit => a.git_commit.as_deref(),
                summary => a.summary.as_str(),
            }
        })
        .collect();
    c.render(
        "history.html",
        &session,
        context! { title => "History", rows, next_before },
    )
}

/// What the apply page reads of a plan document: each change's action, kind
/// and name (the rest of the document is skipped, not kept).
#[derive(Deserialize)]
struct PlanChanges {
    #[serde(default)]
    changes: Vec<ChangeLine>,
}

#[derive(Deserialize)]
struct ChangeLine {
    #[serde(default)]
    action: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
}

pub async fn apply(
    State(c): State<Arc<Console>>,
    Path(id): Path<String>,
    session: View,
) -> Result<Response, PageError> {
    let (id, a, plan) = read_apply(&c, &id).await?;
    let size = plan.len();
    let (changes, changes_total, text, cut) = apply_page_parts(plan);
    let page = c.render(
        "apply.html",
        &session,
        context! {
            title => format!("Apply {id}"),
            id,
            at => when(a.applied_at),
            user => a.user,
            commit => a.git_commit,
            summary => a.summary,
            changes,
            changes_total,
            plan => text,
            cut,
            size_kib => size.div_ceil(1024),
        },
    );
    // A plan document cut for being this large (an apply of thousands of
    // definitions) is a burst: the memory read for it goes back to the system
    // once the page is made (20 views of a 9 MB one grew the daemon by 88 MB).
    if cut {
        crate::memory::release_freed_memory().await;
    }
    page
}

/// The apply whose id the path holds, with its plan document.
async fn read_apply(c: &Console, id: &str) -> Result<(i64, ApplyEntry, String), PageError> {
    let id = path_id("apply id", id)?;
    let (a, plan) = c
        .store
        .apply_plan(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("no apply {id}")))?;
    Ok((id, a, plan))
}

/// The plan document of an apply, whole, as stored (JSON), as plain text: no
/// template, no copy but the one read (the apply page shows at most its
/// beginning, and links here).
pub async fn apply_plan_text(
    State(c): State<Arc<Console>>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (_, _, plan) = read_apply(&c, &id).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], plan).into_response())
}

/// What the apply page shows of a plan document: each change's action, kind
/// and name (at most [`MAX_CHANGES`]) and how many there are, read without building the whole document (an
/// apply of 10,000 definitions is megabytes of JSON); the document itself,
/// pretty when short enough to show whole, otherwise its first
/// [`MAX_PLAN_BYTES`] as stored; and whether it was cut.
fn apply_page_parts(plan: String) -> (Vec<minijinja::Value>, usize, String, bool) {
    let all = serde_json::from_str::<PlanChanges>(&plan)
        .map(|doc| doc.changes)
        .unwrap_or_default();
    let total = all.len();
    let changes: Vec<_> = all
        .into_iter()
        .take(MAX_CHANGES)
        .map(|ch| context! { action => ch.action, kind => ch.kind, name => ch.name })
        .collect();
    let cut = plan.len() > MAX_PLAN_BYTES;
    let text = if cut {
        let mut end = MAX_PLAN_BYTES;
        while !plan.is_char_boundary(end) {
            end -= 1;
        }
        plan[..end].to_string()
    } else {
        serde_json::from_str::<serde_json::Value>(&plan)
            .ok()
            .and_then(|d| serde_json::to_string_pretty(&d).ok())
            .unwrap_or(plan)
    };
    (changes, total, text, cut)
}
