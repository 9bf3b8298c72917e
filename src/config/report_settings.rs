//! `notifications`: where deployment events are delivered (generic
//! webhooks, GitHub deployments, Slack-compatible incoming webhooks). Every
//! key but the endpoint itself has a default; secrets (HMAC secrets, the
//! GitHub token, the Slack webhook URL) are only ever named by file.

use super::daemon_settings::duration;
use crate::report::events::EventKind;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `notifications`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// Generic JSON webhooks, signed with HMAC-SHA256.
    #[serde(default)]
    pub webhooks: Vec<WebhookSettings>,
    /// GitHub deployments and deployment statuses.
    #[serde(default)]
    pub github: Option<GithubSettings>,
    /// Slack-compatible incoming webhooks.
    #[serde(default)]
    pub slack: Vec<SlackSettings>,
    /// Events waiting per endpoint; beyond it new events are dropped and counted.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// The `status.state` that makes an applied instance `ready`.
    #[serde(default = "default_ready_state")]
    pub ready_state: String,
    /// `status.state` values that make an applied instance `failed`.
    #[serde(default = "default_failed_states")]
    pub failed_states: Vec<String>,
    /// An applied instance not ready within this time is `failed`.
    #[serde(default = "default_ready_timeout", deserialize_with = "duration")]
    pub ready_timeout: Duration,
}

fn default_ready_state() -> String {
    "running".to_owned()
}
fn default_failed_states() -> Vec<String> {
    vec!["failed".to_owned(), "error".to_owned()]
}
fn default_ready_timeout() -> Duration {
    Duration::from_secs(600)
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            webhooks: Vec::new(),
            github: None,
            slack: Vec::new(),
            queue_size: default_queue_size(),
            ready_state: default_ready_state(),
            failed_states: default_failed_states(),
            ready_timeout: default_ready_timeout(),
        }
    }
}

impl NotificationSettings {
    /// No endpoint configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.github.is_none() && self.slack.is_empty()
    }
}

/// `notifications.webhooks[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where the JSON body is POSTed.
    pub url: String,
    /// A file holding the HMAC-SHA256 secret of `X-Flink-Gitops-Signature`;
    /// without it the header is not sent.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The event kinds delivered; default all.
    #[serde(default = "all_kinds")]
    pub events: Vec<EventKind>,
    /// Per attempt, connecting to reading the whole response.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Attempts per event, the first included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

/// `notifications.github`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubSettings {
    /// GitHub Enterprise: `https://HOST/api/v3`.
    #[serde(default = "default_github_api")]
    pub api_url: String,
    /// `org/repo`, the soa-configs repository.
    pub repository: String,
    /// A file holding a token allowed to write deployments.
    pub token_file: PathBuf,
    #[serde(default = "all_kinds")]
    pub events: Vec<EventKind>,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

/// `notifications.slack[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// A file holding the incoming-webhook URL (the URL is the secret).
    pub url_file: PathBuf,
    #[serde(default = "all_kinds")]
    pub events: Vec<EventKind>,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

fn default_queue_size() -> usize {
    1000
}
fn all_kinds() -> Vec<EventKind> {
    EventKind::ALL.to_vec()
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_attempts() -> u32 {
    6
}
fn default_github_api() -> String {
    "https://api.github.com".to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<NotificationSettings, String> {
        serde_json::from_value(json).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let settings = parse(serde_json::json!({})).unwrap();
        assert_eq!(settings, NotificationSettings::default());
        assert!(settings.is_empty());
        assert_eq!(settings.queue_size, 1000);

        let settings = parse(serde_json::json!({
            "webhooks": [{"url": "https://hooks.example/x"}],
            "github": {"repository": "org/soa-configs", "token_file": "/secrets/gh"},
            "slack": [{"url_file": "/secrets/slack", "events": ["failed", "sync_failed"]}],
        }))
        .unwrap();
        let webhook = &settings.webhooks[0];
        assert_eq!(webhook.events, EventKind::ALL.to_vec());
        assert_eq!(webhook.timeout, Duration::from_secs(10));
        assert_eq!(webhook.max_attempts, 6);
        assert_eq!(webhook.secret_file, None);
        let github = settings.github.unwrap();
        assert_eq!(github.api_url, "https://api.github.com");
        assert_eq!(
            settings.slack[0].events,
            vec![EventKind::Failed, EventKind::SyncFailed]
        );
    }

    #[test]
    fn durations_and_errors() {
        let settings = parse(serde_json::json!({
            "webhooks": [{"url": "http://x", "timeout": "1500ms", "max_attempts": 2}],
            "queue_size": 5,
        }))
        .unwrap();
        assert_eq!(settings.webhooks[0].timeout, Duration::from_millis(1500));
        assert_eq!(settings.queue_size, 5);

        let err = parse(serde_json::json!({"webhooks": [{"url": "http://x", "secret": "inline"}]}))
            .unwrap_err();
        assert!(err.contains("unknown field `secret`"), "{err}");
        let err = parse(serde_json::json!({"slack": [{"url": "https://hooks.slack.com/x"}]}))
            .unwrap_err();
        assert!(err.contains("unknown field `url`"), "{err}");
        let err =
            parse(serde_json::json!({"webhooks": [{"url": "http://x", "events": ["deployed"]}]}))
                .unwrap_err();
        assert!(err.contains("unknown variant `deployed`"), "{err}");
        let err = parse(serde_json::json!({"webhooks": [{"url": "http://x", "timeout": "soon"}]}))
            .unwrap_err();
        assert!(err.contains("not a duration"), "{err}");
    }
}
