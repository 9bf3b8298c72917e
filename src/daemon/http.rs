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
//! A push hook only asks for a fetch: it carries no data the daemon trusts.
//! The trigger channel is meant to be tiny (capacity 1) so a burst of hooks
//! coalesces into one pending fetch.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use super::hooks::{self, HookSecrets};
use super::metrics::{Metrics, WebhookResult};

/// The content type of `GET /metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

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
    /// Served as is by `/status`; the daemon replaces it after each cycle.
    pub status: Arc<RwLock<serde_json::Value>>,
    pub metrics: Arc<Metrics>,
    /// `None` (or no secret in it): `/hooks/push` answers 404.
    pub hooks: Option<Arc<HookSecrets>>,
    /// Larger hook bodies are refused with 413.
    pub max_body_bytes: usize,
    /// Accepted hooks `try_send` [`Trigger::Hook`] here.
    pub triggers: Sender<Trigger>,
}

/// All the routes, with `state`.
pub fn router(state: HttpState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route(
            "/hooks/push",
            post(push_hook).layer(DefaultBodyLimit::max(limit)),
        )
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` completes, then
/// lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP server listening");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no successful sync yet",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn status(State(state): State<HttpState>) -> Response {
    let doc = state
        .status
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    axum::Json(doc).into_response()
}

async fn push_hook(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
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
    match state.triggers.try_send(Trigger::Hook) {
        Ok(()) => tracing::info!(%provider, "push hook accepted; fetch queued"),
        Err(TrySendError::Full(_)) => {
            tracing::debug!(%provider, "push hook accepted; a fetch is already pending");
        }
        Err(TrySendError::Closed(_)) => {
            tracing::warn!(%provider, "push hook accepted but the daemon is shutting down");
            return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
        }
    }
    (StatusCode::ACCEPTED, "accepted\n").into_response()
}
