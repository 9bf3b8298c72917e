//! GitHub deployments: one deployment per (revision, cluster), created on
//! the first event of that pair (`ref` = revision, `environment` = cluster),
//! with a `pending` status; then one status per event:
//!
//! | event | state |
//! |---|---|
//! | `applied`, `prune_requested` | `in_progress` |
//! | `ready`, `pruned` | `success` |
//! | `failed`, `prune_failed` | `failure` |
//! | `sync_failed` | `error` |
//!
//! The token is read from a file and sent as `Authorization: Bearer`.

use super::webhook::record;
use super::{Outcome, SinkError, Stats, parse_http_url, read_secret, send_with_retry};
use crate::apply::RetryPolicy;
use crate::config::report_settings::GithubSettings;
use crate::report::events::{DeploymentEvent, EventKind};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Deployments remembered, oldest forgotten first.
const REMEMBERED: usize = 256;
/// GitHub's limit on a status description.
const DESCRIPTION_CHARS: usize = 140;

/// The deployment status for an event kind.
#[must_use]
pub fn state(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Applied | EventKind::PruneRequested => "in_progress",
        EventKind::Ready | EventKind::Pruned => "success",
        EventKind::Failed | EventKind::PruneFailed => "failure",
        EventKind::SyncFailed => "error",
    }
}

/// The GitHub deployments endpoint of one repository.
pub struct GithubSink {
    label: String,
    deployments_url: String,
    authorization: HeaderValue,
    timeout: Duration,
    policy: RetryPolicy,
    client: reqwest::Client,
    /// (revision, cluster) → deployment id.
    known: HashMap<(String, String), u64>,
    order: VecDeque<(String, String)>,
}

impl std::fmt::Debug for GithubSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubSink")
            .field("label", &self.label)
            .field("deployments_url", &self.deployments_url)
            .field("authorization", &"***")
            .finish_non_exhaustive()
    }
}

impl GithubSink {
    pub fn new(
        settings: &GithubSettings,
        client: reqwest::Client,
        policy: RetryPolicy,
    ) -> Result<GithubSink, SinkError> {
        let repository = settings.repository.trim();
        let valid = repository.split('/').count() == 2
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && !part.contains(|c: char| c.is_whitespace() || c == '?' || c == '#')
            });
        if !valid {
            return Err(SinkError::InvalidRepository(settings.repository.clone()));
        }
        let api = parse_http_url(&settings.api_url, "notifications.github.api_url")?;
        let deployments_url = format!(
            "{}/repos/{repository}/deployments",
            api.as_str().trim_end_matches('/')
        );
        let token = read_secret(&settings.token_file)?;
        let mut authorization = HeaderValue::from_bytes(&[b"Bearer ", token.expose()].concat())
            .map_err(|_| SinkError::InvalidToken {
                path: settings.token_file.clone(),
            })?;
        authorization.set_sensitive(true);
        Ok(GithubSink {
            label: format!("github {repository}"),
            deployments_url,
            authorization,
            timeout: settings.timeout,
            policy,
            client,
            known: HashMap::new(),
            order: VecDeque::new(),
        })
    }

    /// `github org/repo`, for logs.
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<DeploymentEvent>, stats: Arc<Stats>) {
        while let Some(event) = rx.recv().await {
            let outcome = self.deliver(&event).await;
            record(&self.label, &event, outcome, &stats);
        }
    }

    async fn deliver(&mut self, event: &DeploymentEvent) -> Outcome {
        let id = match self.deployment(event).await {
            Ok(id) => id,
            Err(outcome) => return outcome,
        };
        self.status(id, state(event.kind), &description(event))
            .await
    }

    /// The deployment of the event's (revision, cluster), created with a
    /// `pending` status the first time.
    async fn deployment(&mut self, event: &DeploymentEvent) -> Result<u64, Outcome> {
        let key = (event.revision.clone(), event.cluster.clone());
        if let Some(id) = self.known.get(&key) {
            return Ok(*id);
        }
        let body = json!({
            "ref": event.revision,
            "environment": event.cluster,
            "auto_merge": false,
            "required_contexts": [],
            "payload": {"service": event.service, "instance": event.instance},
            "description": format!("flink-gitops {}", event.cluster),
        });
        let outcome = self.post(&self.deployments_url, &body).await;
        let body = match outcome {
            Outcome::Delivered(body) => body,
            failed @ Outcome::Failed(_) => return Err(failed),
        };
        let id = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|created| created.get("id").and_then(serde_json::Value::as_u64))
            .ok_or_else(|| {
                Outcome::Failed("GitHub created no deployment (no `id` in the answer)".to_owned())
            })?;
        if self.known.len() >= REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            self.known.remove(&oldest);
        }
        self.known.insert(key.clone(), id);
        self.order.push_back(key);
        if let Outcome::Failed(reason) = self.status(id, "pending", "queued by flink-gitops").await
        {
            tracing::warn!(endpoint = %self.label, deployment = id, "failed to set the pending status: {reason}");
        }
        Ok(id)
    }

    async fn status(&self, id: u64, state: &str, description: &str) -> Outcome {
        let url = format!("{}/{id}/statuses", self.deployments_url);
        let body = json!({
            "state": state,
            "description": description,
            "auto_inactive": true,
        });
        self.post(&url, &body).await
    }

    async fn post(&self, url: &str, body: &serde_json::Value) -> Outcome {
        send_with_retry(&self.policy, self.timeout, || {
            self.client
                .post(url)
                .header(AUTHORIZATION, self.authorization.clone())
                .header(ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .json(body)
        })
        .await
    }
}

/// The status description: the one-line summary, cut to GitHub's limit.
fn description(event: &DeploymentEvent) -> String {
    let line = event.one_line();
    let line = line.strip_prefix("flink-gitops ").unwrap_or(&line);
    if line.chars().count() <= DESCRIPTION_CHARS {
        line.to_owned()
    } else {
        let mut cut: String = line.chars().take(DESCRIPTION_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_fit() {
        let event = DeploymentEvent::new(EventKind::Failed, "c1", "abc").message("x".repeat(500));
        let text = description(&event);
        assert_eq!(text.chars().count(), DESCRIPTION_CHARS);
        assert!(text.starts_with("failed: c1 at abc: x"), "{text}");
        assert_eq!(state(EventKind::Ready), "success");
        assert_eq!(state(EventKind::SyncFailed), "error");
    }
}
