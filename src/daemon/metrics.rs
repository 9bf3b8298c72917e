//! The daemon's Prometheus metrics, in an explicit [`Registry`] (no global
//! state), exported in the OpenMetrics text format by `GET /metrics`.
//!
//! Every name is `flink_gitops_<noun>_<unit>`; counters end in `_total`
//! (prometheus-client appends it, and the unit suffix for metrics registered
//! with a unit). Label values are bounded: actions, error categories,
//! providers and hook results are fixed `&'static str` words; the only
//! free-form label, `revision`, is reset on every change so a single series
//! is exported.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::hooks::Provider;

/// The plan actions exported by `flink_gitops_objects{action=...}`.
pub const ACTIONS: [&str; 8] = [
    "create",
    "update",
    "unchanged",
    "skip",
    "blocked",
    "failed",
    "orphaned",
    "unmanaged",
];

/// Reconcile-duration buckets, 1 ms to 60 s.
const RECONCILE_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

type StaticLabels<const N: usize> = [(&'static str, &'static str); N];

/// What became of a push-hook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookResult {
    Accepted,
    Rejected,
    TooLarge,
}

impl WebhookResult {
    /// A bounded label for metrics.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            WebhookResult::Accepted => "accepted",
            WebhookResult::Rejected => "rejected",
            WebhookResult::TooLarge => "too_large",
        }
    }
}

/// The daemon's metrics and the registry they are exported from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconcile_duration: Histogram,
    objects: Family<StaticLabels<1>, Gauge>,
    last_sync: Gauge<f64, AtomicU64>,
    source_info: Family<[(&'static str, String); 1], Gauge>,
    revision: Mutex<Option<String>>,
    errors: Family<StaticLabels<1>, Counter>,
    webhook_deliveries: Family<StaticLabels<2>, Counter>,
    services_rendered: Counter,
    leader: Gauge,
    notifications: Family<StaticLabels<1>, Counter>,
    /// The notifier's totals when last exported: its counters only grow,
    /// and ours follow them by the difference.
    notifications_seen: Mutex<NotificationTotals>,
}

/// What became of deployment events, as counted by the notifier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotificationTotals {
    pub delivered: u64,
    pub failed: u64,
    pub dropped: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    #[must_use]
    pub fn new() -> Metrics {
        let mut registry = Registry::default();

        let reconcile_duration = Histogram::new(RECONCILE_BUCKETS);
        registry.register_with_unit(
            "flink_gitops_reconcile_duration",
            "Duration of a reconcile cycle (fetch, render, plan, apply)",
            Unit::Seconds,
            reconcile_duration.clone(),
        );

        let objects = Family::<StaticLabels<1>, Gauge>::default();
        registry.register(
            "flink_gitops_objects",
            "Objects per planned action in the last reconcile cycle",
            objects.clone(),
        );

        let last_sync = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "flink_gitops_last_sync_timestamp",
            "Unix time of the last successful sync",
            Unit::Seconds,
            last_sync.clone(),
        );

        let source_info = Family::<[(&'static str, String); 1], Gauge>::default();
        registry.register(
            "flink_gitops_source_info",
            "The source revision last synced (always 1)",
            source_info.clone(),
        );

        let errors = Family::<StaticLabels<1>, Counter>::default();
        registry.register("flink_gitops_errors", "Errors by category", errors.clone());

        let webhook_deliveries = Family::<StaticLabels<2>, Counter>::default();
        registry.register(
            "flink_gitops_webhook_deliveries",
            "Push-hook deliveries by provider and result",
            webhook_deliveries.clone(),
        );

        let services_rendered = Counter::default();
        registry.register(
            "flink_gitops_services_rendered",
            "Services (re)rendered by the incremental engine",
            services_rendered.clone(),
        );

        let leader = Gauge::default();
        registry.register(
            "flink_gitops_leader",
            "1 while this replica holds the leader lease, else 0",
            leader.clone(),
        );

        let notifications = Family::<StaticLabels<1>, Counter>::default();
        registry.register(
            "flink_gitops_notifications",
            "Deployment events by result, summed over endpoints: delivered, failed (given up), dropped (queue full)",
            notifications.clone(),
        );

        Metrics {
            registry,
            reconcile_duration,
            objects,
            last_sync,
            source_info,
            revision: Mutex::new(None),
            errors,
            webhook_deliveries,
            services_rendered,
            leader,
            notifications,
            notifications_seen: Mutex::new(NotificationTotals::default()),
        }
    }

    /// One reconcile cycle took `elapsed`.
    pub fn observe_reconcile(&self, elapsed: Duration) {
        self.reconcile_duration.observe(elapsed.as_secs_f64());
    }

    /// Objects per action after a cycle. Every action in [`ACTIONS`] is set
    /// (0 when absent from `counts`); keys outside it are ignored so the
    /// label stays bounded.
    pub fn set_objects(&self, counts: &BTreeMap<&str, usize>) {
        for action in ACTIONS {
            let n = counts.get(action).copied().unwrap_or(0);
            self.objects
                .get_or_create(&[("action", action)])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for key in counts.keys().filter(|key| !ACTIONS.contains(key)) {
            tracing::debug!(action = %key, "ignoring an unknown action in the objects metric");
        }
    }

    /// The last successful sync happened at `at`.
    pub fn set_last_sync(&self, at: SystemTime) {
        let secs = at
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_sync.set(secs);
    }

    /// The revision now synced; the previous revision's series is dropped.
    pub fn set_revision(&self, revision: &str) {
        let mut current = self
            .revision
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.as_deref() == Some(revision) {
            return;
        }
        self.source_info.clear();
        self.source_info
            .get_or_create(&[("revision", revision.to_owned())])
            .set(1);
        *current = Some(revision.to_owned());
    }

    /// One error of `category` (a fixed word, e.g. `ApplyError::category`).
    pub fn error(&self, category: &'static str) {
        self.errors.get_or_create(&[("category", category)]).inc();
    }

    /// One push-hook delivery; `provider` is `None` when no provider's
    /// header was checked (missing signature, body too large).
    pub fn webhook(&self, provider: Option<Provider>, result: WebhookResult) {
        let provider = provider.map_or("unknown", Provider::label);
        self.webhook_deliveries
            .get_or_create(&[("provider", provider), ("result", result.label())])
            .inc();
    }

    /// `n` more services were (re)rendered.
    pub fn services_rendered(&self, n: usize) {
        self.services_rendered
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// The notifier's running totals (see `report::sinks::Notifier`).
    pub fn set_notifications(&self, totals: NotificationTotals) {
        let mut seen = self
            .notifications_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (result, now, before) in [
            ("delivered", totals.delivered, seen.delivered),
            ("failed", totals.failed, seen.failed),
            ("dropped", totals.dropped, seen.dropped),
        ] {
            self.notifications
                .get_or_create(&[("result", result)])
                .inc_by(now.saturating_sub(before));
        }
        *seen = totals;
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The OpenMetrics text exposition, `# EOF` included.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(err) = encode(&mut out, &self.registry) {
            // Writing to a String does not fail; keep whatever was encoded.
            tracing::error!(%err, "failed to encode the metrics");
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encode_contains_every_metric_and_value() {
        let m = Metrics::new();
        m.observe_reconcile(Duration::from_millis(1500));
        let mut counts = BTreeMap::new();
        counts.insert("create", 3);
        counts.insert("unchanged", 40);
        counts.insert("not-an-action", 9);
        m.set_objects(&counts);
        m.set_last_sync(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        m.set_revision("0123abc");
        m.error("conflict");
        m.error("conflict");
        m.webhook(Some(Provider::GitHub), WebhookResult::Accepted);
        m.webhook(None, WebhookResult::Rejected);
        m.webhook(None, WebhookResult::TooLarge);
        m.services_rendered(5);
        m.services_rendered(2);
        m.set_notifications(NotificationTotals {
            delivered: 2,
            failed: 0,
            dropped: 5,
        });
        m.set_notifications(NotificationTotals {
            delivered: 3,
            failed: 1,
            dropped: 9,
        });
        m.set_leader(true);

        let text = m.encode();
        for line in [
            "# TYPE flink_gitops_reconcile_duration_seconds histogram",
            "# UNIT flink_gitops_reconcile_duration_seconds seconds",
            "flink_gitops_reconcile_duration_seconds_count 1",
            "flink_gitops_reconcile_duration_seconds_sum 1.5",
            "flink_gitops_reconcile_duration_seconds_bucket{le=\"0.001\"} 0",
            "flink_gitops_reconcile_duration_seconds_bucket{le=\"2.5\"} 1",
            "flink_gitops_reconcile_duration_seconds_bucket{le=\"60.0\"} 1",
            "flink_gitops_objects{action=\"create\"} 3",
            "flink_gitops_objects{action=\"unchanged\"} 40",
            "flink_gitops_objects{action=\"orphaned\"} 0",
            "flink_gitops_last_sync_timestamp_seconds 1700000000.0",
            "flink_gitops_source_info{revision=\"0123abc\"} 1",
            "flink_gitops_errors_total{category=\"conflict\"} 2",
            "flink_gitops_webhook_deliveries_total{provider=\"github\",result=\"accepted\"} 1",
            "flink_gitops_webhook_deliveries_total{provider=\"unknown\",result=\"rejected\"} 1",
            "flink_gitops_webhook_deliveries_total{provider=\"unknown\",result=\"too_large\"} 1",
            "flink_gitops_services_rendered_total 7",
            "flink_gitops_notifications_total{result=\"delivered\"} 3",
            "flink_gitops_notifications_total{result=\"failed\"} 1",
            "flink_gitops_notifications_total{result=\"dropped\"} 9",
            "flink_gitops_leader 1",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("not-an-action"), "{text}");
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("flink_gitops_objects{"))
                .count(),
            ACTIONS.len()
        );
    }

    #[test]
    fn only_the_current_revision_is_exported() {
        let m = Metrics::new();
        m.set_revision("aaa");
        m.set_revision("bbb");
        m.set_revision("bbb");
        let text = m.encode();
        assert!(!text.contains("revision=\"aaa\""), "{text}");
        assert!(
            text.contains("flink_gitops_source_info{revision=\"bbb\"} 1"),
            "{text}"
        );
        m.set_leader(false);
        assert!(m.encode().lines().any(|l| l == "flink_gitops_leader 0"));
    }
}
