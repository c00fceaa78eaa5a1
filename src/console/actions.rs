//! The console's write actions: signing in and out, re-queueing a delivery,
//! running a communication, releasing its held runs. Each needs a session opened with the API token,
//! the session's CSRF token in the form, and (when the browser says) the
//! console's own origin; each answers with a redirect (POST-redirect-GET).

use super::session::{Sessions, View, clear_cookie, same_origin, set_cookie};
use super::{Console, PageError};
use crate::daemon::count_run;
use crate::daemon::http::token_ok;
use crate::trigger::{Occasion, TriggerError, enqueue, load_target, prepare};
use axum::Form;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Default, Deserialize)]
pub struct SignIn {
    #[serde(default)]
    token: String,
}

/// A write action's form: the session's CSRF token.
#[derive(Debug, Default, Deserialize)]
pub struct Action {
    #[serde(default)]
    csrf: String,
}

/// A posted form. One that does not parse (another content type, a body
/// over the limit) reads as empty: the action then refuses it as it
/// refuses a form without its token (401 or 403), never with a parse error.
pub struct Posted<T>(T);

impl<T, S> FromRequest<S> for Posted<T>
where
    T: serde::de::DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Posted(
            Form::<T>::from_request(req, state)
                .await
                .map(|Form(f)| f)
                .unwrap_or_default(),
        ))
    }
}

impl Console {
    /// The sessions (a panic while they were held left them whole: each
    /// change is one map operation).
    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn session(&self, headers: &HeaderMap) -> View {
        self.sessions().view(headers)
    }

    /// Checks a write request: a token is configured, the request comes from
    /// the console, its session is open and its form carries the session's
    /// CSRF token.
    fn authorize(&self, headers: &HeaderMap, form: &Action) -> Result<View, PageError> {
        if self.token.is_none() {
            return Err(PageError::ReadOnly);
        }
        if !same_origin(headers) {
            return Err(PageError::Forbidden(
                "refused: the request did not come from the console's own pages".into(),
            ));
        }
        let view = self.session(headers);
        let Some(csrf) = view.csrf.as_deref() else {
            return Err(PageError::Unauthorized);
        };
        if !token_ok(&form.csrf, csrf) {
            return Err(PageError::Forbidden(
                "refused: the form is stale or not the console's; reload the page and try again"
                    .into(),
            ));
        }
        Ok(view)
    }
}

pub async fn signin_form(
    State(c): State<Arc<Console>>,
    session: View,
) -> Result<Response, PageError> {
    c.render(
        "signin.html",
        &session,
        minijinja::context! { title => "Sign in", wrong => false },
    )
}

pub async fn signin(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Posted(form): Posted<SignIn>,
) -> Result<Response, PageError> {
    let Some(expected) = &c.token else {
        return Err(PageError::ReadOnly);
    };
    if !same_origin(&headers) {
        return Err(PageError::Forbidden(
            "refused: the request did not come from the console's own pages".into(),
        ));
    }
    if !token_ok(form.token.trim(), expected) {
        let mut page = c.render(
            "signin.html",
            &View::default(),
            minijinja::context! { title => "Sign in", wrong => true },
        )?;
        *page.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(page);
    }
    let (id, _) = c.sessions().open();
    let mut response = Redirect::to("/").into_response();
    if let Some(cookie) = set_cookie(&id) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

pub async fn signout(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Posted(form): Posted<Action>,
) -> Result<Response, PageError> {
    let view = c.authorize(&headers, &form)?;
    if let Some(id) = view.id {
        c.sessions().close(&id);
    }
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie());
    Ok(response)
}

/// Re-queues a failed or dead delivery.
pub async fn requeue(
    State(c): State<Arc<Console>>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Posted(form): Posted<Action>,
) -> Result<Response, PageError> {
    c.authorize(&headers, &form)?;
    let done = c.store.retry_deliveries(&[id.to_string()]).await?;
    tracing::info!(delivery = id, outcome = ?done.first(), "console: re-queue");
    c.shared.deliver_now.notify_one();
    Ok(Redirect::to(&format!("/deliveries/{id}")).into_response())
}

/// Runs a communication now (`run`: a manual run, as the API's trigger
/// does), or releases its held runs (`release`: a manual run over its
/// `max_recipients`, as `segd trigger --allow-over-limit` does).
pub async fn run(
    State(c): State<Arc<Console>>,
    Path((name, how)): Path<(String, String)>,
    headers: HeaderMap,
    Posted(form): Posted<Action>,
) -> Result<Response, PageError> {
    let allow_over_limit = match how.as_str() {
        "run" => false,
        "release" => true,
        _ => return Err(PageError::NotFound(format!("no action `{how}`"))),
    };
    c.authorize(&headers, &form)?;
    manual_run(&c, &name, allow_over_limit).await
}

async fn manual_run(
    c: &Console,
    name: &str,
    allow_over_limit: bool,
) -> Result<Response, PageError> {
    let target = match load_target(&*c.store, name).await {
        Ok(t) => t,
        Err(TriggerError::Unknown { .. }) => {
            return Err(PageError::NotFound(format!(
                "no applied communication `{name}`"
            )));
        }
        Err(e) => return Err(PageError::Forbidden(crate::error::chain(&e))),
    };
    let prepared = prepare(&target, Occasion::manual(&*c.clock));
    match enqueue(
        &*c.store,
        &prepared,
        allow_over_limit,
        &*c.env,
        c.clock.now(),
    )
    .await
    {
        Ok(r) => {
            count_run(name, r.status.as_str());
            c.shared.deliver_now.notify_one();
            tracing::info!(communication = %name, run = %prepared.run.id, recipients = r.recipients, status = r.status.as_str(), allow_over_limit, "console: manual run");
            Ok(Redirect::to(&format!("/communications/{name}")).into_response())
        }
        Err(TriggerError::Disabled(_)) => {
            Err(PageError::Forbidden("the communication is disabled".into()))
        }
        Err(e) => {
            count_run(name, "failed");
            Err(PageError::Forbidden(crate::error::chain(&e)))
        }
    }
}
