//! The console's query parameters and list extractors: every parameter checked,
//! a bad one refused with a page that says why.

use super::session::View;
use super::{Console, PageError};
use crate::model::parse_time;
use crate::plan::{Applied, AppliedState, Kind};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::Deserialize;
use std::sync::Arc;

/// Rows per page of every list.
pub const PAGE: usize = 50;

/// Keeps the first [`PAGE`] of `rows`, read one over to know whether another
/// page follows, and returns the key of the last one kept when one does.
pub(super) fn next_page<T, K>(rows: &mut Vec<T>, key: impl Fn(&T) -> K) -> Option<K> {
    if rows.len() <= PAGE {
        return None;
    }
    rows.truncate(PAGE);
    rows.last().map(key)
}

/// The longest search text taken.
const MAX_SEARCH: usize = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub(super) q: Option<String>,
    pub(super) page: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersQuery {
    pub(super) q: Option<String>,
    pub(super) after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    pub(super) member: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    pub(super) communication: Option<String>,
    pub(super) status: Option<String>,
    pub(super) since: Option<String>,
    pub(super) until: Option<String>,
    pub(super) before: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    pub(super) before: Option<String>,
}

/// A search text: trimmed, empty for none, at most [`MAX_SEARCH`] characters.
pub(super) fn search(q: Option<&str>) -> Result<Option<String>, PageError> {
    let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    if q.chars().count() > MAX_SEARCH || q.chars().any(char::is_control) {
        return Err(PageError::BadQuery(format!(
            "`q` is a search text of at most {MAX_SEARCH} characters"
        )));
    }
    Ok(Some(q.to_string()))
}

/// `?page=N`, from 1.
pub(super) fn page_number(page: Option<&str>) -> Result<usize, PageError> {
    match page {
        None | Some("") => Ok(1),
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| {
                PageError::BadQuery(format!("`page` is a page number from 1, not `{p}`"))
            }),
    }
}

/// An id parameter (`before`, a delivery's or an apply's id).
pub(super) fn id_param(name: &str, value: Option<&str>) -> Result<Option<i64>, PageError> {
    match value {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| {
                PageError::BadQuery(format!("`{name}` is a positive whole number, not `{v}`"))
            }),
    }
}

/// A time parameter: a date (00:00 UTC) or an RFC 3339 time.
pub(super) fn time_param(
    name: &str,
    value: Option<&str>,
) -> Result<Option<DateTime<Utc>>, PageError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => parse_time(v).map(Some).map_err(|e| {
            PageError::BadQuery(format!(
                "`{name}` is a date (2026-03-01) or an RFC 3339 time: {e}"
            ))
        }),
    }
}

pub(super) fn path_id(what: &str, value: &str) -> Result<i64, PageError> {
    id_param(what, Some(value))?.ok_or_else(|| PageError::BadQuery(format!("no {what}")))
}

/// A customer id parameter: at most 200 characters, no control character.
pub(super) fn customer_id(name: &str, value: Option<&str>) -> Result<Option<String>, PageError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.len() <= 200 && !v.chars().any(char::is_control) => Ok(Some(v.to_string())),
        Some(_) => Err(PageError::BadQuery(format!(
            "`{name}` is a customer id of at most 200 bytes"
        ))),
    }
}

/// The page `page` (from 1) of `items`, and the number of pages.
pub(super) fn paged<T>(items: &[T], page: usize) -> Result<(&[T], usize), PageError> {
    let pages = items.len().div_ceil(PAGE).max(1);
    if page > pages {
        return Err(PageError::BadQuery(format!(
            "`page` {page} is past the last page ({pages})"
        )));
    }
    let start = (page - 1) * PAGE;
    Ok((&items[start..(start + PAGE).min(items.len())], pages))
}

/// The applied definitions of `kind` whose name holds `q`, in name order.
pub(super) fn named<'a>(
    applied: &'a AppliedState,
    kind: Kind,
    q: Option<&str>,
) -> Vec<&'a Applied> {
    applied
        .rows
        .iter()
        .filter(|a| a.def.kind == kind)
        .filter(|a| q.is_none_or(|q| a.def.name.as_str().contains(q)))
        .collect()
}

/// Query parameters, refused with a page that says why.
pub struct Params<T>(pub T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Params(q))
            .map_err(|e| PageError::BadQuery(e.body_text()))
    }
}

/// A list page's session, search, page and definitions.
pub struct Listing {
    pub(super) session: View,
    pub(super) q: Option<String>,
    pub(super) page: usize,
    pub(super) applied: Arc<AppliedState>,
}

impl FromRequestParts<Arc<Console>> for View {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        c: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        Ok(c.session(&parts.headers))
    }
}

impl FromRequestParts<Arc<Console>> for Listing {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, c: &Arc<Console>) -> Result<Self, PageError> {
        let Params(query) = Params::<ListQuery>::from_request_parts(parts, c).await?;
        Ok(Self {
            session: c.session(&parts.headers),
            q: search(query.q.as_deref())?,
            page: page_number(query.page.as_deref())?,
            applied: c.applied().await?,
        })
    }
}

impl Listing {
    /// The definitions of `kind` the search finds, the page's share of
    /// them, and the number of pages.
    pub(super) fn of(&self, kind: Kind) -> Result<(usize, Vec<&Applied>, usize), PageError> {
        let matching = named(&self.applied, kind, self.q.as_deref());
        let (shown, pages) = paged(&matching, self.page)?;
        Ok((matching.len(), shown.to_vec(), pages))
    }

    /// The page's values for its template.
    pub(super) fn context(
        &self,
        title: &str,
        total: usize,
        pages: usize,
        rows: Vec<minijinja::Value>,
    ) -> minijinja::Value {
        context! { title, q => self.q.as_deref(), page => self.page, pages, total, rows }
    }
}
