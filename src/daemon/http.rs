//! The HTTP API (SPEC §6): health, readiness, metrics, status, manual trigger;
//! the web console's routes are merged in (see [`crate::console`]).

use super::state::Shared;
use crate::clock::Clock;
use crate::store::Store;
use crate::trigger::{Occasion, TriggerError, enqueue, load_target, prepare};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A client must send a request's whole header within this time, and an idle
/// keep-alive connection is closed after it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body must arrive within this time (the API takes no bodies; this
/// bounds a client that announces one and never sends it).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Connections served at once; further clients wait in the kernel's backlog
/// and hold no file descriptor of the daemon.
pub const MAX_CONNECTIONS: usize = 256;
/// The longest a connection is served: then it finishes its request (within
/// [`DRAIN_TIMEOUT`]) and is closed, so a client that never reads its responses
/// cannot keep a slot.
pub const CONNECTION_MAX_AGE: Duration = Duration::from_secs(60);
/// How long a connection may finish its request once it is closed (the daemon
/// stops, or it reached [`CONNECTION_MAX_AGE`]).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Api {
    pub shared: Arc<Shared>,
    pub store: Arc<dyn Store>,
    pub metrics: PrometheusHandle,
    /// `SEGD_API_TOKEN`; the trigger endpoint is disabled without one.
    pub token: Option<String>,
    pub env: Arc<super::Env>,
    pub clock: Arc<dyn Clock>,
}

/// The API's routes, and `console`'s (the web console, which has limits of
/// its own), under the same timeouts.
pub fn router(api: Arc<Api>, console: Router) -> Router {
    let api_routes = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/communications/{name}/trigger", post(trigger))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api);
    api_routes
        .merge(console)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            BODY_READ_TIMEOUT,
        ))
}

/// Serves `app` on `listener` until `stop`: HTTP/1.1 with
/// [`HEADER_READ_TIMEOUT`], at most [`MAX_CONNECTIONS`] at once (a connection
/// is accepted only once a slot is free), each for at most
/// [`CONNECTION_MAX_AGE`]; on `stop` it closes the listener and lets open
/// connections finish for [`DRAIN_TIMEOUT`]. `axum::serve` has neither a header timeout nor a cap,
/// so slow clients could hold the daemon's file descriptors for ever.
pub async fn serve(listener: TcpListener, app: Router, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = stop.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                () = stop.cancelled() => {}
                () = tokio::time::sleep(CONNECTION_MAX_AGE) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
        });
    }
    drop(listener);
    // Every slot back means every connection has ended.
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all)).await;
}

async fn readyz(State(api): State<Arc<Api>>) -> Response {
    let db_ok = api.store.version().await.is_ok();
    if db_ok && api.shared.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let why = if db_ok {
            "definitions not loaded yet"
        } else {
            "database unreachable"
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response()
    }
}

async fn metrics(State(api): State<Arc<Api>>) -> Response {
    // Outbox rows by status, counted at scrape time rather than on every pass.
    if let Ok(counts) = api.store.outbox_counts().await {
        for (status, n) in counts {
            metrics::gauge!("segd_outbox_deliveries", "status" => status).set(n as f64);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        api.metrics.render(),
    )
        .into_response()
}

async fn status(State(api): State<Arc<Api>>) -> Response {
    let s = api.shared.status.read().await.clone();
    let outbox = api.store.outbox_counts().await.unwrap_or_default();
    let deliveries: serde_json::Map<String, serde_json::Value> =
        outbox.into_iter().map(|(k, v)| (k, json!(v))).collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": api.shared.started_at,
        "leader": api.shared.is_leader(),
        "ready": api.shared.is_ready(),
        "apply": !api.shared.no_apply,
        "reconciles": s.reconciles,
        "last_reconcile": s.last_reconcile,
        "degraded": s.last_reconcile.degraded,
        "drift": s.last_reconcile.drift,
        "next_triggers": s.next_triggers,
        "undecodable": s.undecodable,
        "deliveries": deliveries,
    }))
    .into_response()
}

/// Constant-time comparison of a presented token with the configured one
/// (their SHA-256 digests, so their lengths leak nothing either).
pub(crate) fn token_ok(presented: &str, expected: &str) -> bool {
    use sha2::{Digest as _, Sha256};
    use subtle::ConstantTimeEq as _;
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.as_slice().ct_eq(b.as_slice()).into()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// 401 with the challenge RFC 6750 asks for: `error="invalid_token"` when a
/// token was presented and is not the one configured. (The token grants
/// everything the API does, so no valid token is ever refused with 403.)
fn unauthorized(presented: bool) -> Response {
    let (challenge, message) = if presented {
        (
            r#"Bearer realm="segd", error="invalid_token""#,
            "wrong token",
        )
    } else {
        (r#"Bearer realm="segd""#, "missing bearer token")
    };
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static(challenge),
    );
    response
}

async fn trigger(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(expected) = &api.token else {
        return error(
            StatusCode::NOT_FOUND,
            "the trigger endpoint is disabled: SEGD_API_TOKEN is not set",
        );
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme name is case-insensitive (RFC 9110).
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(str::trim);
    match presented {
        None => return unauthorized(false),
        Some(t) if !token_ok(t, expected) => return unauthorized(true),
        Some(_) => {}
    }
    let target = match load_target(&*api.store, &name).await {
        Ok(t) => t,
        Err(TriggerError::Unknown { .. }) => {
            return error(StatusCode::NOT_FOUND, "no such applied communication");
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &crate::error::chain(&e)),
    };
    let prepared = prepare(&target, Occasion::manual(&*api.clock));
    let env = api.env.clone();
    match enqueue(&*api.store, &prepared, false, &*env, api.clock.now()).await {
        Ok(r) => {
            super::count_run(&name, r.status.as_str());
            api.shared.deliver_now.notify_one();
            tracing::info!(communication = %name, run = %prepared.run.id, recipients = r.recipients, enqueued = r.enqueued, unreachable = r.unreachable, status = r.status.as_str(), "manual trigger");
            (
                StatusCode::ACCEPTED,
                Json(json!({
                    "run": prepared.run.id,
                    "status": r.status.as_str(),
                    "recipients": r.recipients,
                    "enqueued": r.enqueued,
                    "unreachable": r.unreachable,
                })),
            )
                .into_response()
        }
        Err(TriggerError::Disabled(_)) => {
            error(StatusCode::CONFLICT, "the communication is disabled")
        }
        Err(e) => {
            super::count_run(&name, "failed");
            error(StatusCode::UNPROCESSABLE_ENTITY, &crate::error::chain(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;
    use tokio::time::Instant;

    /// `serve` on a loopback port. The tests run on paused time: when every
    /// task waits, the runtime's clock jumps to the next timer, so a timeout of
    /// a minute passes at once.
    async fn serving() -> (TcpStream, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let stop = CancellationToken::new();
        let app = Router::new().route("/healthz", get(|| async { "ok\n" }));
        let task = tokio::spawn(serve(listener, app, stop.clone()));
        let client = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (client, stop, task)
    }

    /// What the server sends until it closes the connection.
    async fn rest(client: &mut TcpStream) -> String {
        let mut got = Vec::new();
        // A reset is a close too.
        let _ = client.read_to_end(&mut got).await;
        String::from_utf8_lossy(&got).into_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn a_half_sent_request_is_cut_off_after_the_header_timeout() {
        let (mut slow, stop, task) = serving().await;
        let started = Instant::now();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let got = rest(&mut slow).await;
        let took = started.elapsed();
        assert!(!got.contains(" 200 "), "{got}");
        assert!(
            (HEADER_READ_TIMEOUT..HEADER_READ_TIMEOUT + Duration::from_secs(1)).contains(&took),
            "cut off after {took:?}"
        );
        stop.cancel();
        task.await.unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_is_closed_at_its_maximum_age() {
        let (mut client, stop, task) = serving().await;
        let started = Instant::now();
        let mut answered = 0;
        loop {
            if client
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .is_err()
            {
                break;
            }
            let mut buf = [0; 1024];
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let got = String::from_utf8_lossy(&buf[..n]);
                    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
                    answered += 1;
                }
            }
            // Busy enough that the header timeout never ends it.
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let took = started.elapsed();
        assert!(
            (CONNECTION_MAX_AGE..=CONNECTION_MAX_AGE + Duration::from_secs(5)).contains(&took),
            "closed after {took:?}"
        );
        assert!(answered >= 12, "{answered} answers");
        stop.cancel();
        task.await.unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_closes_hanging_connections_within_the_drain_timeout() {
        let (mut slow, stop, task) = serving().await;
        slow.write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Let the server take the connection, then stop it.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        stop.cancel();
        task.await.unwrap_or_else(|e| panic!("{e}"));
        let took = started.elapsed();
        assert!(took <= DRAIN_TIMEOUT, "stopped after {took:?}");
        assert!(!rest(&mut slow).await.contains(" 200 "));
    }

    #[test]
    fn tokens() {
        assert!(token_ok("abc", "abc"));
        assert!(!token_ok("abd", "abc"));
        assert!(!token_ok("", "abc"));
    }
}
