//! The daemon's HTTP edge: health, readiness, metrics, status and the
//! push-hook receiver.
//!
//! | route              | answer                                                    |
//! |--------------------|-----------------------------------------------------------|
//! | `GET /healthz`     | 200 `ok` while the process serves                         |
//! | `GET /readyz`      | 200 `ready` after the first successful sync, else 503     |
//! | `GET /metrics`     | 200, OpenMetrics text                                     |
//! | `GET /status`      | 200, the daemon's status document (JSON)                  |
//! | `POST /hooks/push` | 202 and a fetch queued; 401 bad/missing signature; 413 body too large; 404 when no hook secret is configured |
//!
//! With a separate hooks listener, `/hooks/push` is served only there and
//! the other routes only on the main listener, so the hook port can face
//! the internet while probes, metrics and status stay inside the cluster.
//!
//! Every listener has its own connection cap: a client that opens
//! connections and sends nothing cannot exhaust the process's file
//! descriptors, and a flood on the hook port cannot starve the probes.
//!
//! A push hook only asks for a fetch: it carries no data the daemon trusts.
//! Accepted hooks go through a [`HookGate`]-style rate limit: at most one
//! hook-triggered cycle per `hooks.min_interval`, later ones merged into one
//! trigger at the end of the interval.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::hooks::{self, HookSecrets, Provider};
use super::metrics::{Metrics, WebhookResult};
use crate::config::daemon_settings::ServerSettings;

/// The content type of `GET /metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Written to a connection over the cap before it is closed, so that a
/// human with curl sees why rather than an empty reply.
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
connection: close\r\n\
content-type: text/plain; charset=utf-8\r\n\
content-length: 26\r\n\
\r\n\
too many open connections\n";

/// Refused connections are logged at most this often.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a reconcile cycle starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The poll interval elapsed.
    Interval,
    /// A push hook was accepted.
    Hook,
    /// The watched directory changed.
    Watch,
    /// Asked for by an operator.
    Manual,
}

/// What the handlers share with the daemon.
#[derive(Debug, Clone)]
pub struct HttpState {
    /// Set once the first sync succeeded; `/readyz` answers 200 from then.
    pub ready: Arc<AtomicBool>,
    /// Served as is by `/status`; the daemon publishes after each cycle.
    pub status: StatusBoard,
    pub metrics: Arc<Metrics>,
    /// `None` (or no secret in it): `/hooks/push` answers 404.
    pub hooks: Option<Arc<HookSecrets>>,
    /// Larger hook bodies are refused with 413.
    pub max_body_bytes: usize,
    /// At most one [`Trigger::Hook`] per this long; zero sends one per
    /// accepted hook.
    pub hook_min_interval: Duration,
    /// Accepted hooks `try_send` [`Trigger::Hook`] here.
    pub triggers: Sender<Trigger>,
}

/// How long clients may take and how many may be connected at once, per
/// listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// To send a request head, from connecting or from the previous
    /// response (hyper restarts the timer when a kept-alive connection goes
    /// idle, so this is also the idle timeout).
    pub header_timeout: Duration,
    /// To read the body and answer, from the end of the head.
    pub request_timeout: Duration,
    /// Open connections per listener; more are answered 503 and closed.
    pub max_connections: usize,
}

impl From<&ServerSettings> for Limits {
    fn from(settings: &ServerSettings) -> Self {
        Limits {
            header_timeout: settings.header_timeout,
            request_timeout: settings.request_timeout,
            max_connections: settings.max_connections,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from(&ServerSettings::default())
    }
}

/// The status document, serialised once per publication and shared by
/// every reader: a GET clones a reference count, not the document, so a
/// burst of readers of a large status costs no memory.
#[derive(Debug, Clone)]
pub struct StatusBoard {
    current: Arc<RwLock<Bytes>>,
    /// Serialises read-modify-publish so that two writers cannot lose an
    /// update; readers never take it.
    writer: Arc<Mutex<()>>,
}

impl StatusBoard {
    #[must_use]
    pub fn new(document: &serde_json::Value) -> StatusBoard {
        let board = StatusBoard {
            current: Arc::new(RwLock::new(Bytes::from_static(b"null"))),
            writer: Arc::new(Mutex::new(())),
        };
        board.publish(document);
        board
    }

    /// Replaces the document. It is serialised before the lock is taken,
    /// so readers wait only for a pointer swap.
    pub fn publish(&self, document: &serde_json::Value) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.store(document);
    }

    /// The current document, as served.
    #[must_use]
    pub fn snapshot(&self) -> Bytes {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current document, parsed back (for callers that change a few
    /// fields of it; it is not kept parsed, to hold one copy, not two).
    #[must_use]
    pub fn document(&self) -> serde_json::Value {
        parse_status(&self.snapshot())
    }

    /// Changes the current document in place and publishes the result.
    pub fn update(&self, change: impl FnOnce(&mut serde_json::Value)) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut document = parse_status(&self.snapshot());
        change(&mut document);
        self.store(&document);
    }

    fn store(&self, document: &serde_json::Value) {
        match serde_json::to_vec(document) {
            Ok(bytes) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Bytes::from(bytes);
            }
            // Keeping the previous document beats serving none.
            Err(error) => {
                tracing::error!(%error, "failed to serialise the status document; /status keeps the previous one");
            }
        }
    }
}

impl Default for StatusBoard {
    fn default() -> Self {
        StatusBoard::new(&serde_json::Value::Null)
    }
}

fn parse_status(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|error| {
        // Only our own serialisation is ever stored, so this is a bug.
        tracing::error!(%error, "failed to parse the published status document back");
        serde_json::Value::Null
    })
}

/// Coalesces accepted hooks into at most one trigger per interval.
#[derive(Debug)]
struct HookGate {
    min_interval: Duration,
    triggers: Sender<Trigger>,
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    last_fired: Option<Instant>,
    /// A deferred trigger is scheduled for the end of the interval.
    pending: bool,
    /// Hooks accepted since the last trigger, for the summary line.
    merged: u64,
}

impl HookGate {
    /// Counts an accepted hook and fires now, or schedules one deferred
    /// trigger for the end of the current interval.
    fn accept(self: &Arc<Self>, provider: Provider) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.merged += 1;
        if state.pending {
            tracing::debug!(%provider, "push hook accepted; merged into the pending fetch");
            return;
        }
        let now = Instant::now();
        match state.last_fired {
            Some(last) if now < last + self.min_interval => {
                state.pending = true;
                tracing::debug!(%provider, "push hook accepted; fetch deferred by hooks.min_interval");
                let gate = Arc::clone(self);
                let at = last + self.min_interval;
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    let mut state = gate.state.lock().unwrap_or_else(PoisonError::into_inner);
                    gate.fire(&mut state, Instant::now());
                });
            }
            _ => {
                tracing::debug!(%provider, "push hook accepted");
                self.fire(&mut state, now);
            }
        }
    }

    fn fire(&self, state: &mut GateState, now: Instant) {
        let hooks = std::mem::take(&mut state.merged);
        state.pending = false;
        state.last_fired = Some(now);
        match self.triggers.try_send(Trigger::Hook) {
            Ok(()) => tracing::info!(hooks, "push hooks accepted; fetch queued"),
            // Any pending cycle fetches: the hooks are served by it.
            Err(TrySendError::Full(_)) => {
                tracing::info!(hooks, "push hooks accepted; a fetch is already pending");
            }
            Err(TrySendError::Closed(_)) => {
                tracing::debug!(hooks, "push hooks accepted while the daemon shuts down");
            }
        }
    }
}

/// The handlers' state: the daemon's, plus the hook gate that lives as
/// long as the routers.
#[derive(Debug, Clone)]
struct AppState {
    http: HttpState,
    gate: Arc<HookGate>,
}

impl AppState {
    fn new(http: HttpState) -> AppState {
        let gate = Arc::new(HookGate {
            min_interval: http.hook_min_interval,
            triggers: http.triggers.clone(),
            state: Mutex::new(GateState::default()),
        });
        AppState { http, gate }
    }
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routes {
    All,
    /// Everything but `/hooks/push`.
    Probes,
    /// Only `/hooks/push`.
    Hooks,
}

/// All the routes, with `state` and the default request timeout.
pub fn router(state: HttpState) -> Router {
    routes(
        AppState::new(state),
        Routes::All,
        Limits::default().request_timeout,
    )
}

fn routes(state: AppState, which: Routes, request_timeout: Duration) -> Router {
    let limit = state.http.max_body_bytes;
    let mut router = Router::new();
    if which != Routes::Hooks {
        router = router
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .route("/status", get(status));
    }
    if which != Routes::Probes {
        router = router.route(
            "/hooks/push",
            post(push_hook).layer(DefaultBodyLimit::max(limit)),
        );
    }
    router
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            request_timeout,
            request_deadline,
        ))
}

/// The body is read inside the handler, so this bounds a slow body too.
async fn request_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::debug!(?limit, "request timed out");
            (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, HeaderValue::from_static("close"))],
                "request timed out\n",
            )
                .into_response()
        }
    }
}

/// Serves every route on `listener` with the default [`Limits`] until
/// `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, None, state, Limits::default(), shutdown).await
}

/// Serves on `listener`, and `/hooks/push` on `hooks_listener` instead
/// when there is one, within `limits`, until `shutdown` completes; then
/// stops accepting, lets in-flight requests finish and closes idle
/// connections.
pub async fn serve_with(
    listener: TcpListener,
    hooks_listener: Option<TcpListener>,
    state: HttpState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::new(state);
    let (stop_tx, stop_rx) = watch::channel(false);
    let timeout = limits.request_timeout;
    let listeners = match hooks_listener {
        None => vec![(listener, routes(state, Routes::All, timeout))],
        Some(hooks_listener) => vec![
            (listener, routes(state.clone(), Routes::Probes, timeout)),
            (hooks_listener, routes(state, Routes::Hooks, timeout)),
        ],
    };
    let accepting = futures::future::join_all(
        listeners
            .into_iter()
            .map(|(listener, router)| accept_loop(listener, router, limits, stop_rx.clone())),
    );
    let signal = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let ((), _) = tokio::join!(signal, accepting);
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let addr = listener.local_addr().ok();
    if let Some(addr) = addr {
        tracing::info!(%addr, "HTTP server listening");
    }
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let mut connections = JoinSet::new();
    let mut refusals = Refusals::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // Typically EMFILE: waiting lets connections close.
                tracing::error!(%error, "failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Refusing at once rather than leaving connections in the kernel
        // backlog: a probe then fails fast instead of queueing behind idle
        // sockets that the header timeout will reap, and succeeds as soon
        // as a slot is free.
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            let _ = stream.try_write(OVERLOADED);
            drop(stream);
            refusals.count(addr, limits.max_connections);
            continue;
        };
        let router = router.clone();
        let builder = Arc::clone(&builder);
        let stop = stop.clone();
        connections.spawn(async move {
            serve_connection(stream, router, &builder, stop).await;
            drop(permit);
        });
    }
    // Stop accepting before waiting: new clients are refused by the kernel.
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    builder: &http1::Builder,
    mut stop: watch::Receiver<bool>,
) {
    let connection =
        builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    let mut connection = std::pin::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                // Header timeouts and resets land here: the client's doing.
                if let Err(error) = result {
                    tracing::debug!(%error, "HTTP connection closed");
                }
                return;
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Connections refused over the cap, logged as a summary so that a flood
/// does not become a flood of log lines.
#[derive(Debug, Default)]
struct Refusals {
    since_log: u64,
    logged_at: Option<Instant>,
}

impl Refusals {
    fn count(&mut self, addr: Option<std::net::SocketAddr>, max_connections: usize) {
        self.since_log += 1;
        let now = Instant::now();
        if self
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_EVERY)
        {
            tracing::warn!(
                addr = addr.map(tracing::field::display),
                refused = self.since_log,
                max_connections,
                "refusing connections: server.max_connections reached"
            );
            self.since_log = 0;
            self.logged_at = Some(now);
        }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.http.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no successful sync yet",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
        )],
        state.http.metrics.encode(),
    )
        .into_response()
}

async fn status(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.http.status.snapshot(),
    )
        .into_response()
}

async fn push_hook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let AppState { http: state, gate } = state;
    let Some(secrets) = state.hooks.as_deref().filter(|s| !s.is_empty()) else {
        return (StatusCode::NOT_FOUND, "push hooks are not configured\n").into_response();
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            state.metrics.webhook(None, WebhookResult::TooLarge);
            tracing::warn!(
                limit = state.max_body_bytes,
                "rejected a push hook: body too large"
            );
            return (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n").into_response();
        }
        Err(rejection) => {
            state.metrics.webhook(None, WebhookResult::Rejected);
            tracing::warn!(status = %rejection.status(), "rejected a push hook: unreadable body");
            return (rejection.status(), "unreadable body\n").into_response();
        }
    };
    // Authenticate the raw bytes before anything looks at them.
    let provider = match hooks::verify(&headers, &body, secrets) {
        Ok(provider) => provider,
        Err(err) => {
            state
                .metrics
                .webhook(err.provider(), WebhookResult::Rejected);
            // The error names the provider and the reason, never a header value.
            tracing::warn!(
                provider = err.provider().map_or("unknown", hooks::Provider::label),
                reason = err.category(),
                "rejected a push hook: {err}"
            );
            return (StatusCode::UNAUTHORIZED, "invalid or missing signature\n").into_response();
        }
    };
    state
        .metrics
        .webhook(Some(provider), WebhookResult::Accepted);
    if state.triggers.is_closed() {
        tracing::warn!(%provider, "push hook accepted but the daemon is shutting down");
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    gate.accept(provider);
    (StatusCode::ACCEPTED, "accepted\n").into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_board_shares_one_allocation_between_readers() {
        let board = StatusBoard::new(&json!({"instances": [1, 2, 3]}));
        let (a, b) = (board.snapshot(), board.snapshot());
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(a, b);
    }

    #[test]
    fn status_board_serves_the_published_document_exactly() {
        let document = json!({
            "cluster": "c",
            "revision": null,
            "ratio": 0.1,
            "instances": [{"subject": "a/b", "reasons": ["image"]}],
        });
        let board = StatusBoard::default();
        board.publish(&document);
        assert_eq!(board.snapshot(), serde_json::to_vec(&document).unwrap());
        assert_eq!(board.document(), document);
    }

    #[test]
    fn status_board_update_changes_only_what_it_is_told() {
        let board = StatusBoard::new(&json!({"last_error": null, "instances": [1, 2]}));
        board.update(|doc| doc["last_error"] = json!("boom"));
        assert_eq!(
            board.document(),
            json!({"last_error": "boom", "instances": [1, 2]})
        );
    }
}
