//! The generic webhook: the event as a JSON body, signed.
//!
//! Headers: `X-Flink-Gitops-Signature: sha256=<hex HMAC-SHA256 of the raw
//! body>` (when a secret is configured), `X-Flink-Gitops-Delivery: <event
//! id>` (the same on every retry), `X-Flink-Gitops-Event: <kind>`.

use super::{
    Outcome, Secret, SinkError, Stats, origin, parse_http_url, read_secret, send_with_retry,
};
use crate::apply::RetryPolicy;
use crate::config::report_settings::WebhookSettings;
use crate::report::events::DeploymentEvent;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// `X-Flink-Gitops-Signature`.
pub const SIGNATURE_HEADER: &str = "x-flink-gitops-signature";
/// `X-Flink-Gitops-Delivery`.
pub const DELIVERY_HEADER: &str = "x-flink-gitops-delivery";
/// `X-Flink-Gitops-Event`.
pub const EVENT_HEADER: &str = "x-flink-gitops-event";

/// `sha256=<hex HMAC-SHA256 of body with secret>`.
#[must_use]
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One webhook endpoint.
#[derive(Debug)]
pub struct WebhookSink {
    label: String,
    url: reqwest::Url,
    secret: Option<Secret>,
    timeout: Duration,
    policy: RetryPolicy,
    client: reqwest::Client,
}

impl WebhookSink {
    pub fn new(
        index: usize,
        settings: &WebhookSettings,
        client: reqwest::Client,
        policy: RetryPolicy,
    ) -> Result<WebhookSink, SinkError> {
        let url = parse_http_url(
            &settings.url,
            &format!("notifications.webhooks[{index}].url"),
        )?;
        let secret = settings
            .secret_file
            .as_deref()
            .map(read_secret)
            .transpose()?;
        Ok(WebhookSink {
            label: format!("webhook[{index}] {}", origin(&url)),
            url,
            secret,
            timeout: settings.timeout,
            policy,
            client,
        })
    }

    /// `webhook[N] scheme://host`, for logs.
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }

    pub(crate) async fn run(self, mut rx: mpsc::Receiver<DeploymentEvent>, stats: Arc<Stats>) {
        while let Some(event) = rx.recv().await {
            let outcome = self.deliver(&event).await;
            record(&self.label, &event, outcome, &stats);
        }
    }

    async fn deliver(&self, event: &DeploymentEvent) -> Outcome {
        let body = match serde_json::to_vec(event) {
            Ok(body) => body,
            Err(e) => return Outcome::Failed(format!("failed to serialise the event: {e}")),
        };
        let signature = self.secret.as_ref().map(|secret| signature(secret, &body));
        send_with_retry(&self.policy, self.timeout, || {
            let mut request = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(DELIVERY_HEADER, event.id.as_str())
                .header(EVENT_HEADER, event.kind.as_str())
                .body(body.clone());
            if let Some(signature) = &signature {
                request = request.header(SIGNATURE_HEADER, signature.as_str());
            }
            request
        })
        .await
    }
}

/// Counts and logs the outcome of one event's delivery.
pub(crate) fn record(label: &str, event: &DeploymentEvent, outcome: Outcome, stats: &Stats) {
    match outcome {
        Outcome::Delivered(_) => {
            stats.delivered.fetch_add(1, Ordering::Relaxed);
        }
        Outcome::Failed(reason) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                endpoint = %label,
                kind = event.kind.as_str(),
                delivery = %event.id,
                "gave up delivering a deployment event: {reason}"
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_hmac() {
        // RFC 4231 test case 2.
        let secret = Secret::from_bytes("Jefe");
        assert_eq!(
            signature(&secret, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
