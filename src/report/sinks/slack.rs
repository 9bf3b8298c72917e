//! A Slack-compatible incoming webhook: `{"text": "<one line>"}` POSTed to
//! the URL read from `url_file` (the URL is the secret: never logged).

use super::webhook::record;
use super::{SinkError, Stats, parse_http_url, read_secret, send_with_retry};
use crate::apply::RetryPolicy;
use crate::config::report_settings::SlackSettings;
use crate::report::events::DeploymentEvent;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// One Slack endpoint.
pub struct SlackSink {
    label: String,
    url: reqwest::Url,
    timeout: Duration,
    policy: RetryPolicy,
    client: reqwest::Client,
}

impl std::fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSink")
            .field("label", &self.label)
            .field("url", &"***")
            .finish_non_exhaustive()
    }
}

impl SlackSink {
    pub fn new(
        index: usize,
        settings: &SlackSettings,
        client: reqwest::Client,
        policy: RetryPolicy,
    ) -> Result<SlackSink, SinkError> {
        let secret = read_secret(&settings.url_file)?;
        let text = std::str::from_utf8(secret.expose()).map_err(|_| SinkError::InvalidUrl {
            what: format!("the URL in {}", settings.url_file.display()),
        })?;
        let url = parse_http_url(text, &format!("the URL in {}", settings.url_file.display()))?;
        Ok(SlackSink {
            label: format!("slack[{index}]"),
            url,
            timeout: settings.timeout,
            policy,
            client,
        })
    }

    /// `slack[N]`, for logs.
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }

    pub(crate) async fn run(self, mut rx: mpsc::Receiver<DeploymentEvent>, stats: Arc<Stats>) {
        while let Some(event) = rx.recv().await {
            let body = serde_json::json!({ "text": event.one_line() });
            let outcome = send_with_retry(&self.policy, self.timeout, || {
                self.client.post(self.url.clone()).json(&body)
            })
            .await;
            record(&self.label, &event, outcome, &stats);
        }
    }
}
