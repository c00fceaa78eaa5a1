//! The web console: server-rendered HTML pages over the store and the
//! daemon's status, served by the daemon beside its API. An edge: it reads
//! through [`Store`] and the shared operations, and holds no SQL.
//!
//! - `pages`: the read-only pages;
//! - `actions`: the write actions (re-queue a delivery, run a communication,
//!   release its held runs),
//!   behind a session that the API token opens, with CSRF protection;
//! - `session`: sessions, their cookie and their CSRF tokens;
//! - `chart`: the inline SVG size charts.
//!
//! Every page carries a strict Content-Security-Policy, and every value is
//! escaped by the templates (minijinja auto-escapes `.html` templates).

mod actions;
mod activity;
mod chart;
mod pages;
mod params;
mod session;
#[cfg(test)]
mod tests;

use crate::clock::Clock;
use crate::daemon::Env;
use crate::daemon::state::Shared;
use crate::plan::{AppliedState, Version};
use crate::store::{Store, StoreError};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use tokio::sync::Mutex;

/// The policy every console response carries: only the console's own
/// stylesheet, no script, no frames, forms posting only to the console.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The largest form the console reads.
const MAX_FORM_BYTES: usize = 4 * 1024;

/// What the console pages read and act on.
pub struct Console {
    pub shared: Arc<Shared>,
    pub store: Arc<dyn Store>,
    /// `SEGD_API_TOKEN`; without one the console is read-only.
    pub token: Option<String>,
    pub env: Arc<Env>,
    pub clock: Arc<dyn Clock>,
    sessions: std::sync::Mutex<session::Sessions>,
    /// The applied definitions, read again only when their version changed.
    applied: Mutex<Option<Arc<AppliedState>>>,
}

impl Console {
    pub fn new(
        shared: Arc<Shared>,
        store: Arc<dyn Store>,
        token: Option<String>,
        env: Arc<Env>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            shared,
            store,
            token,
            env,
            clock,
            sessions: std::sync::Mutex::new(session::Sessions::default()),
            applied: Mutex::new(None),
        }
    }

    /// The applied definitions (cached while their version stays).
    async fn applied(&self) -> Result<Arc<AppliedState>, StoreError> {
        let version: Version = self.store.version().await?;
        let mut cached = self.applied.lock().await;
        if let Some(a) = cached.as_ref()
            && a.version == version
        {
            return Ok(a.clone());
        }
        let fresh = Arc::new(self.store.applied().await?);
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    /// Renders `template` with `ctx` and the layout's own values.
    fn render(
        &self,
        template: &str,
        session: &session::View,
        ctx: minijinja::Value,
    ) -> Result<Response, PageError> {
        let layout = minijinja::context! {
            writable => self.token.is_some(),
            signed_in => session.csrf.is_some(),
            csrf => session.csrf.as_deref(),
        };
        let html = TEMPLATES
            .get_template(template)
            .and_then(|t| t.render(minijinja::context! { ..layout, ..ctx }))
            .map_err(|e| PageError::Render(e.to_string()))?;
        Ok(Html(html).into_response())
    }
}

/// The console's routes, merged into the daemon's router.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/segments", get(pages::segments))
        .route("/segments/{name}", get(pages::segment))
        .route("/communications", get(pages::communications))
        .route("/communications/{name}", get(pages::communication))
        .route("/communications/{name}/{action}", post(actions::run))
        .route("/deliveries", get(activity::deliveries))
        .route("/deliveries/{id}", get(activity::delivery))
        .route("/deliveries/{id}/requeue", post(actions::requeue))
        .route("/history", get(activity::history))
        .route("/history/{id}", get(activity::apply))
        .route("/history/{id}/plan", get(activity::apply_plan_text))
        .route("/console/style.css", get(stylesheet))
        .route(
            "/console/signin",
            get(actions::signin_form).post(actions::signin),
        )
        .route("/console/signout", post(actions::signout))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(secured))
        .with_state(console)
}

/// The security headers of every console response.
async fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("templates/style.css"),
    )
        .into_response()
}

/// The templates, embedded in the binary. Names ending in `.html` are
/// auto-escaped.
static TEMPLATES: std::sync::LazyLock<minijinja::Environment<'static>> =
    std::sync::LazyLock::new(|| {
        let mut env = minijinja::Environment::new();
        for (name, source) in [
            ("layout.html", include_str!("templates/layout.html")),
            ("overview.html", include_str!("templates/overview.html")),
            ("segments.html", include_str!("templates/segments.html")),
            ("segment.html", include_str!("templates/segment.html")),
            (
                "communications.html",
                include_str!("templates/communications.html"),
            ),
            (
                "communication.html",
                include_str!("templates/communication.html"),
            ),
            ("deliveries.html", include_str!("templates/deliveries.html")),
            ("delivery.html", include_str!("templates/delivery.html")),
            ("history.html", include_str!("templates/history.html")),
            ("apply.html", include_str!("templates/apply.html")),
            ("signin.html", include_str!("templates/signin.html")),
            ("error.html", include_str!("templates/error.html")),
            ("macros.html", include_str!("templates/macros.html")),
        ] {
            // The templates are segd's own, checked by the tests: one that does
            // not parse shows as a render error on its page.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "a console template does not parse");
            }
        }
        env
    });

/// Why a page cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    BadQuery(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("sign in with the API token first")]
    Unauthorized,
    #[error("the console is read-only: SEGD_API_TOKEN is not set")]
    ReadOnly,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Undecodable(#[from] crate::plan::Undecodable),
    #[error("rendering the page failed: {0}")]
    Render(String),
}

impl PageError {
    fn status(&self) -> StatusCode {
        match self {
            PageError::BadQuery(_) => StatusCode::BAD_REQUEST,
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::Forbidden(_) | PageError::ReadOnly => StatusCode::FORBIDDEN,
            PageError::Unauthorized => StatusCode::UNAUTHORIZED,
            PageError::Store(_) | PageError::Undecodable(_) | PageError::Render(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = crate::error::chain(&self);
        if status.is_server_error() {
            tracing::error!(error = %message, "console page failed");
        }
        let page = TEMPLATES.get_template("error.html").and_then(|t| {
            t.render(minijinja::context! {
                title => status.to_string(),
                message => message.as_str(),
                bare => true,
            })
        });
        match page {
            Ok(html) => (status, Html(html)).into_response(),
            // The message alone, as text, when even the error page fails.
            Err(_) => (status, message).into_response(),
        }
    }
}

/// A time as the console shows it: `2026-12-03 06:34:12 UTC`.
fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
