//! Delivery of [`DeploymentEvent`]s to the endpoints of
//! [`NotificationSettings`], off the reconcile path.
//!
//! [`Notifier::send`] never blocks nor awaits: each endpoint has its own
//! bounded queue ([`queue`]) and one worker task that delivers its events one
//! at a time, in the order they were sent, so events of one instance reach an
//! endpoint in order. A full queue drops the new event, counts it
//! ([`Notifier::dropped`]) and logs one warning per burst.
//!
//! Sinks: [`webhook`] (signed JSON), [`github`] (deployments and statuses),
//! [`slack`] (one line of text). Each retries network errors, 5xx and 429
//! with exponential backoff and full jitter, honouring `Retry-After`, and
//! gives up on other 4xx at once. Secrets, tokens and the Slack URL never
//! reach a log line or an error: endpoints are named by a label that holds
//! at most the host.

pub mod github;
pub mod queue;
pub mod slack;
pub mod webhook;

use crate::apply::RetryPolicy;
use crate::config::report_settings::NotificationSettings;
use crate::report::events::{DeploymentEvent, EventKind};
use queue::EndpointQueue;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Backoff between attempts; the attempt count and timeout come from each
/// endpoint's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifierOptions {
    /// The first backoff ceiling, doubled per attempt (full jitter).
    pub backoff_base: Duration,
    /// The largest wait, `Retry-After` included.
    pub backoff_cap: Duration,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        NotifierOptions {
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(120),
        }
    }
}

pub use crate::secret::Secret;
use crate::secret::SecretFileError;

impl From<SecretFileError> for SinkError {
    fn from(error: SecretFileError) -> Self {
        match error {
            SecretFileError::Read { path, source } => SinkError::ReadSecret { path, source },
            SecretFileError::Empty { path } => SinkError::EmptySecret { path },
        }
    }
}

/// Reads a notification secret file (see [`Secret::read_file`]).
pub fn read_secret(path: &Path) -> Result<Secret, SinkError> {
    Ok(Secret::read_file(path)?)
}

/// Why the notifier could not start. No variant carries a secret or a URL
/// read from a secret file.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("failed to read the notification secret file {}: {source}", path.display())]
    ReadSecret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the notification secret file {} is empty", path.display())]
    EmptySecret { path: PathBuf },
    #[error("{what} is not an http(s) URL")]
    InvalidUrl { what: String },
    #[error("the token in {} is not a valid HTTP header value", path.display())]
    InvalidToken { path: PathBuf },
    #[error("notifications.github.repository `{0}` is not `org/repo`")]
    InvalidRepository(String),
    #[error("failed to build the HTTP client: {0}")]
    Client(String),
}

/// Counters shared by the notifier and its workers.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) dropped: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) failed: AtomicU64,
}

/// The running sinks. Create it inside a tokio runtime.
#[derive(Debug)]
pub struct Notifier {
    queues: Vec<EndpointQueue>,
    workers: Vec<JoinHandle<()>>,
    stats: Arc<Stats>,
}

impl Notifier {
    /// Reads the secret files and starts one worker per endpoint. With no
    /// endpoint configured, `send` does nothing.
    pub fn start(
        settings: &NotificationSettings,
        options: NotifierOptions,
    ) -> Result<Notifier, SinkError> {
        let mut notifier = Notifier {
            queues: Vec::new(),
            workers: Vec::new(),
            stats: Arc::new(Stats::default()),
        };
        if settings.is_empty() {
            return Ok(notifier);
        }
        let client = http_client()?;
        let queue_size = settings.queue_size.max(1);
        let policy = |attempts: u32| RetryPolicy {
            attempts: attempts.max(1),
            base: options.backoff_base,
            cap: options.backoff_cap,
        };
        for (index, config) in settings.webhooks.iter().enumerate() {
            let sink = webhook::WebhookSink::new(
                index,
                config,
                client.clone(),
                policy(config.max_attempts),
            )?;
            let label = sink.label().to_owned();
            notifier.add_endpoint(label, &config.events, queue_size, |rx, stats| {
                sink.run(rx, stats)
            });
        }
        if let Some(config) = &settings.github {
            let sink =
                github::GithubSink::new(config, client.clone(), policy(config.max_attempts))?;
            let label = sink.label().to_owned();
            notifier.add_endpoint(label, &config.events, queue_size, |rx, stats| {
                sink.run(rx, stats)
            });
        }
        for (index, config) in settings.slack.iter().enumerate() {
            let sink =
                slack::SlackSink::new(index, config, client.clone(), policy(config.max_attempts))?;
            let label = sink.label().to_owned();
            notifier.add_endpoint(label, &config.events, queue_size, |rx, stats| {
                sink.run(rx, stats)
            });
        }
        Ok(notifier)
    }

    /// Gives an endpoint its bounded queue and starts its worker.
    fn add_endpoint<F>(
        &mut self,
        label: String,
        events: &[EventKind],
        queue_size: usize,
        run: impl FnOnce(mpsc::Receiver<DeploymentEvent>, Arc<Stats>) -> F,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        let (queue, rx) = EndpointQueue::new(label, events, queue_size);
        self.queues.push(queue);
        self.workers.push(tokio::spawn(run(rx, self.stats.clone())));
    }

    /// Queues the event for every endpoint whose filter takes its kind.
    /// Never blocks: a full queue drops the event for that endpoint.
    pub fn send(&self, event: DeploymentEvent) {
        for queue in &self.queues {
            if queue.accepts(event.kind) && !queue.offer(event.clone()) {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether any endpoint takes events of this kind.
    #[must_use]
    pub fn wants(&self, kind: EventKind) -> bool {
        self.queues.iter().any(|queue| queue.accepts(kind))
    }

    /// Events dropped because an endpoint's queue was full, summed over endpoints.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }

    /// Deliveries that succeeded (GitHub: per event, not per call).
    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.stats.delivered.load(Ordering::Relaxed)
    }

    /// Deliveries given up on (a non-retryable answer, or attempts exhausted).
    #[must_use]
    pub fn failed(&self) -> u64 {
        self.stats.failed.load(Ordering::Relaxed)
    }

    /// Stops taking events and lets the workers deliver what is queued,
    /// until `deadline`; then aborts them. True when everything was drained.
    pub async fn shutdown(self, deadline: Duration) -> bool {
        let Notifier {
            queues, workers, ..
        } = self;
        drop(queues);
        let aborts: Vec<_> = workers.iter().map(JoinHandle::abort_handle).collect();
        let drained = tokio::time::timeout(deadline, futures::future::join_all(workers))
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                deadline = ?deadline,
                "notification queues not drained before the deadline; undelivered events dropped"
            );
            for abort in aborts {
                abort.abort();
            }
        }
        drained
    }
}

fn http_client() -> Result<reqwest::Client, SinkError> {
    // The process installs ring at startup; tests and library users may not.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("flink-gitops/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| SinkError::Client(e.without_url().to_string()))
}

/// `scheme://host[:port]` of a configured URL: enough to name an endpoint in
/// logs without its path or query (which may carry tokens).
pub(crate) fn origin(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        _ => url.scheme().to_owned(),
    }
}

pub(crate) fn parse_http_url(text: &str, what: &str) -> Result<reqwest::Url, SinkError> {
    let invalid = || SinkError::InvalidUrl {
        what: what.to_owned(),
    };
    let url = reqwest::Url::parse(text.trim()).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid());
    }
    Ok(url)
}

/// What became of one request after its retries.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// 2xx, with the body.
    Delivered(Vec<u8>),
    /// Given up: why, without URL or secret.
    Failed(String),
}

/// Sends the request built by `build` until it succeeds, answers with a
/// non-retryable status, or `policy.attempts` are used. Each attempt is
/// bounded by `timeout`.
pub(crate) async fn send_with_retry(
    policy: &RetryPolicy,
    timeout: Duration,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Outcome {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (reason, retry_after) = match build().timeout(timeout).send().await {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    return match response.bytes().await {
                        Ok(body) => Outcome::Delivered(body.to_vec()),
                        // The receiver answered 2xx: the event arrived.
                        Err(_) => Outcome::Delivered(Vec::new()),
                    };
                }
                let retryable = status.is_server_error() || status.as_u16() == 429;
                let reason = format!("HTTP {}", status.as_u16());
                if !retryable {
                    return Outcome::Failed(format!("{reason} (not retried)"));
                }
                (reason, retry_after(response.headers()))
            }
            Err(error) => (describe(&error.without_url()), None),
        };
        if attempt >= policy.attempts {
            return Outcome::Failed(format!("{reason} after {attempt} attempts"));
        }
        let wait = policy.delay(attempt, retry_after);
        tracing::debug!(attempt, reason = %reason, wait = ?wait, "notification delivery failed; retrying");
        tokio::time::sleep(wait).await;
    }
}

/// The error and its causes on one line (reqwest's own line is terse).
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Retry-After` in seconds (the HTTP-date form is ignored: backoff applies).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_and_files_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "hunter2\r\n").unwrap();
        let secret = read_secret(&path).unwrap();
        assert_eq!(secret.expose(), b"hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        std::fs::write(&path, "\n").unwrap();
        let err = read_secret(&path).unwrap_err();
        assert!(matches!(err, SinkError::EmptySecret { .. }));
        let err = read_secret(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn origin_hides_path_and_query() {
        let url =
            parse_http_url("https://hooks.example:8443/T000/B000/XXXX?token=abc", "x").unwrap();
        assert_eq!(origin(&url), "https://hooks.example:8443");
        assert!(parse_http_url("ftp://x/", "the url").is_err());
        let err = parse_http_url("not a url hunter2", "a Slack URL").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn retry_after_seconds() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
