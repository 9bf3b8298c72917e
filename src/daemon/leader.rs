//! Leader election on a `coordination.k8s.io/v1` Lease
//! (https://kubernetes.io/docs/concepts/architecture/leases/), with
//! client-go's `leaderelection` semantics:
//!
//! - Every round reads the Lease and writes it back with a `PUT` guarded by
//!   `metadata.resourceVersion` (or creates it with a `POST`): of two
//!   replicas racing, the apiserver lets exactly one write win, the other
//!   gets 409 and is not the leader.
//! - The holder renews `renewTime` every `retry_period`.
//! - A standby takes the Lease over once it has seen its record unchanged
//!   for `leaseDurationSeconds` *by its own monotonic clock* (as client-go
//!   does): the holder's `renewTime` is written for people and tools, never
//!   compared across machines, so clock skew cannot hand the Lease over
//!   early. A takeover sets `acquireTime` and increments `leaseTransitions`.
//! - A leader that cannot renew steps down (publishes `false`) a
//!   `retry_period` before the lease runs out, so no standby can take over
//!   while it still believes it leads.
//! - Writes pass a [`WriteGate`] that the elector opens up to its renew
//!   deadline after each successful renewal, so writing stops on time even
//!   if this task is starved.
//! - On shutdown (which the daemon signals only once its cycle has stopped
//!   writing) the leader releases the Lease (empty `holderIdentity`,
//!   `leaseDurationSeconds: 1`), so a standby takes over in its next round.

use super::http::Trigger;
use crate::apply::gate::WriteGate;
use crate::apply::{ApplyError, KubeCluster};
use crate::config::daemon_settings::LeaderSettings;
use http::{Method, StatusCode};
use serde_json::{Value as Json, json};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::Instant;

const API_VERSION: &str = "coordination.k8s.io/v1";
const CONTENT_TYPE: &str = "application/json";

/// Elects one leader among the replicas sharing a Lease.
pub struct LeaderElector {
    cluster: KubeCluster,
    identity: String,
    namespace: String,
    name: String,
    lease_duration: Duration,
    retry_period: Duration,
    /// The Lease's `spec` as last seen, and when it was first seen so (by
    /// our clock): the basis of the expiry decision.
    observed: Option<(Json, Instant)>,
    leader: bool,
    /// Opened up to the renew deadline after each successful renewal.
    gate: WriteGate,
    /// Push hooks that reached this replica while it stands by, relayed to
    /// the leader through the Lease.
    relay: FetchRelay,
    /// The last accepted commit, written on the Lease at each renewal.
    accepted: Option<Arc<std::sync::Mutex<Option<String>>>>,
    /// The last value of [`ANNOTATION_FETCH_REQUESTED`] seen (`None`:
    /// not read yet; `Some(None)`: absent).
    relay_seen: Option<Option<String>>,
}

/// Relays fetch requests from standbys to the leader through the Lease's
/// annotation [`ANNOTATION_FETCH_REQUESTED`]: a standby that accepted a
/// push hook writes a new value there (a guarded replace, like a renewal);
/// the leader reads the Lease on every round and fetches when the value
/// changed. A hook sent to any replica thus reaches the leader within about
/// two `retry_period`s.
#[derive(Clone, Default)]
pub struct FetchRelay {
    /// Set by the daemon when a hook arrives on a standby.
    pending: Arc<AtomicBool>,
    /// Where the leader sends a fetch.
    triggers: Option<mpsc::Sender<Trigger>>,
}

impl FetchRelay {
    /// A relay that hands the leader's fetches to `triggers`.
    #[must_use]
    pub fn new(triggers: mpsc::Sender<Trigger>) -> Self {
        FetchRelay {
            pending: Arc::new(AtomicBool::new(false)),
            triggers: Some(triggers),
        }
    }

    /// Asks the leader to fetch (called on a standby).
    pub fn request(&self) {
        self.pending.store(true, Ordering::SeqCst);
    }
}

/// The Lease annotation where the leader records the last soa-configs
/// commit it accepted: a replica that starts with an empty git cache (a
/// rescheduled pod) must see a head that descends from it.
pub const ANNOTATION_ACCEPTED_REVISION: &str = "flink-gitops/accepted-revision";

/// The Lease annotation through which standbys ask the leader to fetch.
pub const ANNOTATION_FETCH_REQUESTED: &str = "flink-gitops/fetch-requested";

/// What a `GET` of the Lease found.
enum Current {
    Absent,
    Present(Json),
}

impl LeaderElector {
    /// An elector for the Lease `settings.lease_name` in `namespace`,
    /// holding it as `identity` (see [`default_identity`]).
    #[must_use]
    pub fn new(
        cluster: KubeCluster,
        settings: &LeaderSettings,
        identity: String,
        namespace: String,
    ) -> Self {
        LeaderElector {
            cluster,
            identity,
            namespace,
            name: settings.lease_name.clone(),
            lease_duration: settings.lease_duration.max(Duration::from_secs(1)),
            retry_period: settings.retry_period.max(Duration::from_millis(10)),
            observed: None,
            leader: false,
            gate: WriteGate::for_leader(),
            relay: FetchRelay::default(),
            relay_seen: None,
            accepted: None,
        }
    }

    /// Records the commit `accepted` holds on the Lease at each renewal.
    #[must_use]
    pub fn with_accepted_revision(
        mut self,
        accepted: Arc<std::sync::Mutex<Option<String>>>,
    ) -> Self {
        self.accepted = Some(accepted);
        self
    }

    /// The commit the leader last recorded on the Lease, if any.
    pub async fn recorded_revision(&self) -> Result<Option<String>, ApplyError> {
        Ok(match self.get().await? {
            Current::Absent => None,
            Current::Present(lease) => lease
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(ANNOTATION_ACCEPTED_REVISION))
                .and_then(Json::as_str)
                .map(str::to_owned),
        })
    }

    /// Relays push hooks between replicas through the Lease.
    #[must_use]
    pub fn with_relay(mut self, relay: FetchRelay) -> Self {
        self.relay = relay;
        self
    }

    /// Grants writes through `gate` while this elector leads, each time up
    /// to its renew deadline.
    #[must_use]
    pub fn with_gate(mut self, gate: WriteGate) -> Self {
        gate.revoke();
        self.gate = gate;
        self
    }

    /// This elector's identity, the Lease's `holderIdentity` while it leads.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether the last round (or release) left this elector the leader.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// How long a leader keeps leading without a successful renewal: the
    /// lease duration less one retry period (at least half the lease), so it
    /// steps down before any standby can see the lease expire.
    #[must_use]
    pub fn renew_deadline(&self) -> Duration {
        self.lease_duration
            .saturating_sub(self.retry_period)
            .max(self.lease_duration / 2)
    }

    /// One round: create the Lease if absent (holding it); renew it if this
    /// elector holds it; take it over if it is released or has not changed
    /// for its `leaseDurationSeconds` (then `leaseTransitions` + 1 and
    /// `acquireTime` = now). Every write is guarded by
    /// `metadata.resourceVersion`: a 409 means someone else won, and this
    /// elector is not the leader. Returns whether it leads after the round.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, ApplyError> {
        let live = match self.get().await {
            Ok(Current::Absent) => return self.create().await,
            Ok(Current::Present(live)) => live,
            Err(e) => return Err(e),
        };
        let spec = live.get("spec").cloned().unwrap_or_else(|| json!({}));
        let now = Instant::now();
        let observed_at = match &self.observed {
            Some((seen, at)) if *seen == spec => *at,
            _ => {
                self.observed = Some((spec.clone(), now));
                now
            }
        };
        let holder = text(&spec, "holderIdentity").unwrap_or_default();
        let holds = holder == self.identity;
        let requested = fetch_requested(&live);
        if holds
            && self
                .relay_seen
                .as_ref()
                .is_some_and(|seen| *seen != requested)
            && let Some(triggers) = &self.relay.triggers
        {
            tracing::info!(lease = %self.subject(), "a standby relayed a push hook: fetching");
            let _ = triggers.try_send(Trigger::Hook);
        }
        self.relay_seen = Some(requested);
        if !holds && !holder.is_empty() {
            let duration = spec
                .get("leaseDurationSeconds")
                .and_then(Json::as_u64)
                .filter(|s| *s > 0)
                .map_or(self.lease_duration, Duration::from_secs);
            if now.duration_since(observed_at) < duration {
                self.set_leader(false, &holder);
                self.relay_to_leader(&live).await;
                return Ok(false);
            }
            tracing::info!(
                lease = %self.subject(),
                previous = %holder,
                "the lease has expired; taking it over"
            );
        }
        let stamp = micro_time(SystemTime::now());
        let transitions = spec
            .get("leaseTransitions")
            .and_then(Json::as_i64)
            .unwrap_or(0);
        let mut new_spec = spec.clone();
        new_spec["holderIdentity"] = json!(self.identity);
        new_spec["leaseDurationSeconds"] = json!(self.lease_seconds());
        new_spec["renewTime"] = json!(stamp);
        if !holds || spec.get("acquireTime").is_none_or(Json::is_null) {
            new_spec["acquireTime"] = json!(stamp);
        }
        new_spec["leaseTransitions"] = json!(if holds { transitions } else { transitions + 1 });
        let mut lease = live.clone();
        if let Some(revision) = self
            .accepted
            .as_ref()
            .and_then(|a| a.lock().ok().and_then(|a| a.clone()))
        {
            lease["metadata"]["annotations"][ANNOTATION_ACCEPTED_REVISION] = json!(revision);
        }
        match self.replace(&lease, new_spec).await? {
            Some(written) => {
                self.observe(&written);
                self.set_leader(true, &self.identity.clone());
                Ok(true)
            }
            None => {
                // Someone wrote the Lease since we read it: read again next round.
                self.observed = None;
                self.set_leader(false, "");
                Ok(false)
            }
        }
    }

    /// Writes a new fetch request on the Lease when a hook is pending here
    /// (a standby): guarded by the resourceVersion like every Lease write,
    /// retried next round when the leader renewed meanwhile.
    async fn relay_to_leader(&mut self, live: &Json) {
        if !self.relay.pending.swap(false, Ordering::SeqCst) {
            return;
        }
        let value = format!("{} {}", self.identity, micro_time(SystemTime::now()));
        let mut lease = live.clone();
        lease["metadata"]["annotations"][ANNOTATION_FETCH_REQUESTED] = json!(value);
        let spec = live.get("spec").cloned().unwrap_or_else(|| json!({}));
        match self.replace(&lease, spec).await {
            // Not observed: a write of ours must not delay the expiry of
            // the holder's record.
            Ok(Some(_)) => {
                self.relay_seen = Some(Some(value));
                tracing::info!(lease = %self.subject(), "relayed a push hook to the leader");
            }
            Ok(None) => self.relay.request(),
            Err(error) => {
                self.relay.request();
                tracing::warn!(lease = %self.subject(), %error, "could not relay a push hook to the leader");
            }
        }
    }

    /// Gives the Lease up if this elector holds it: `holderIdentity`
    /// cleared, `renewTime` now and `leaseDurationSeconds: 1`, so a standby
    /// takes it over in its next round. Not the leader afterwards either way.
    pub async fn release(&mut self) -> Result<(), ApplyError> {
        let was_leader = self.leader;
        self.leader = false;
        for _ in 0..3 {
            let Current::Present(live) = self.get().await? else {
                return Ok(());
            };
            let spec = live.get("spec").cloned().unwrap_or_else(|| json!({}));
            if text(&spec, "holderIdentity").as_deref() != Some(self.identity.as_str()) {
                if was_leader {
                    tracing::info!(lease = %self.subject(), "not the lease holder any more; nothing to release");
                }
                return Ok(());
            }
            let stamp = micro_time(SystemTime::now());
            let mut new_spec = spec.clone();
            new_spec["holderIdentity"] = json!("");
            new_spec["leaseDurationSeconds"] = json!(1);
            new_spec["acquireTime"] = json!(stamp);
            new_spec["renewTime"] = json!(stamp);
            if let Some(written) = self.replace(&live, new_spec).await? {
                self.observe(&written);
                tracing::info!(lease = %self.subject(), identity = %self.identity, "released leadership");
                return Ok(());
            }
        }
        Err(ApplyError::Api {
            subject: self.subject(),
            code: StatusCode::CONFLICT.as_u16(),
            reason: "Conflict".to_owned(),
            message: "the lease kept changing while it was being released".to_owned(),
        })
    }

    /// Runs a round every `retry_period` until `shutdown` resolves,
    /// publishing leadership on `leader` (only changes are sent). A round
    /// that fails keeps the leadership until [`Self::renew_deadline`] after
    /// the last successful renewal, then steps down; a round that finds the
    /// Lease held by another (or loses a write race) steps down at once.
    /// On shutdown: publishes `false` first, then releases the Lease.
    pub async fn run(
        mut self,
        leader: tokio::sync::watch::Sender<bool>,
        shutdown: impl Future<Output = ()>,
    ) {
        let publish = |value: bool| {
            leader.send_if_modified(|current| {
                let changed = *current != value;
                *current = value;
                changed
            });
        };
        publish(false);
        let mut shutdown = std::pin::pin!(shutdown);
        let renew_deadline = self.renew_deadline();
        // When the last successful round started, while leading.
        let mut renewed: Option<Instant> = None;
        'rounds: loop {
            let started = Instant::now();
            let deadline = match renewed {
                Some(at) => at + renew_deadline,
                None => started + self.lease_duration,
            };
            let outcome = tokio::select! {
                biased;
                () = &mut shutdown => break 'rounds,
                outcome = tokio::time::timeout_at(deadline, self.try_acquire_or_renew()) => outcome,
            };
            match outcome {
                Ok(Ok(true)) => {
                    renewed = Some(started);
                    self.gate.grant_until(started + renew_deadline);
                    publish(true);
                }
                Ok(Ok(false)) => {
                    renewed = None;
                    self.gate.revoke();
                    publish(false);
                }
                Ok(Err(error)) => {
                    tracing::warn!(lease = %self.subject(), %error, "leader election round failed");
                }
                Err(_) => {
                    tracing::warn!(lease = %self.subject(), "leader election round timed out");
                }
            }
            let mut wake = started + self.retry_period;
            if let Some(at) = renewed {
                if Instant::now() >= at + renew_deadline {
                    tracing::info!(
                        lease = %self.subject(),
                        identity = %self.identity,
                        "lost leadership: the lease could not be renewed in time"
                    );
                    self.leader = false;
                    renewed = None;
                    self.gate.revoke();
                    publish(false);
                } else {
                    wake = wake.min(at + renew_deadline);
                }
            }
            tokio::select! {
                biased;
                () = &mut shutdown => break 'rounds,
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        self.gate.revoke();
        publish(false);
        let holds = self.leader
            || self.observed.as_ref().is_some_and(|(spec, _)| {
                text(spec, "holderIdentity").as_deref() == Some(self.identity.as_str())
            });
        if holds {
            match tokio::time::timeout(self.lease_duration, self.release()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(lease = %self.subject(), %error, "could not release the lease");
                }
                Err(_) => tracing::warn!(lease = %self.subject(), "releasing the lease timed out"),
            }
        }
    }

    fn subject(&self) -> String {
        format!("Lease/{}/{}", self.namespace, self.name)
    }

    fn collection(&self) -> String {
        format!("/apis/{API_VERSION}/namespaces/{}/leases", self.namespace)
    }

    fn path(&self) -> String {
        format!("{}/{}", self.collection(), self.name)
    }

    fn lease_seconds(&self) -> u64 {
        self.lease_duration.as_secs_f64().ceil().max(1.0) as u64
    }

    fn set_leader(&mut self, leader: bool, holder: &str) {
        if leader && !self.leader {
            tracing::info!(lease = %self.subject(), identity = %self.identity, "acquired leadership");
        } else if !leader && self.leader {
            tracing::info!(
                lease = %self.subject(),
                identity = %self.identity,
                holder,
                "lost leadership"
            );
        }
        self.leader = leader;
    }

    fn observe(&mut self, written: &Json) {
        let spec = written.get("spec").cloned().unwrap_or_else(|| json!({}));
        self.observed = Some((spec, Instant::now()));
    }

    async fn get(&self) -> Result<Current, ApplyError> {
        let subject = self.subject();
        let (status, body) = self
            .cluster
            .call(Method::GET, &self.path(), None, None, &subject)
            .await?;
        match status {
            StatusCode::NOT_FOUND => Ok(Current::Absent),
            status if status.is_success() => Ok(Current::Present(body)),
            status => Err(ApplyError::from_status(&subject, status, &body)),
        }
    }

    /// `POST`s a new Lease held by us; a 409 (AlreadyExists) means another
    /// replica created it first.
    async fn create(&mut self) -> Result<bool, ApplyError> {
        let stamp = micro_time(SystemTime::now());
        let lease = json!({
            "apiVersion": API_VERSION,
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_seconds(),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        });
        let subject = self.subject();
        let (status, body) = self
            .cluster
            .call(
                Method::POST,
                &self.collection(),
                Some(CONTENT_TYPE),
                Some(&lease),
                &subject,
            )
            .await?;
        if status == StatusCode::CONFLICT {
            self.observed = None;
            self.set_leader(false, "");
            return Ok(false);
        }
        if !status.is_success() {
            return Err(ApplyError::from_status(&subject, status, &body));
        }
        self.observe(&body);
        self.set_leader(true, &self.identity.clone());
        Ok(true)
    }

    /// `PUT`s `live` with `spec`, guarded by its `resourceVersion`; `None`
    /// on 409 (the Lease changed since it was read).
    async fn replace(&self, live: &Json, spec: Json) -> Result<Option<Json>, ApplyError> {
        let mut lease = live.clone();
        lease["apiVersion"] = json!(API_VERSION);
        lease["kind"] = json!("Lease");
        lease["spec"] = spec;
        if let Some(metadata) = lease.get_mut("metadata").and_then(Json::as_object_mut) {
            // Kept by the apiserver when omitted; smaller bodies.
            metadata.remove("managedFields");
        }
        let subject = self.subject();
        let (status, body) = self
            .cluster
            .call(
                Method::PUT,
                &self.path(),
                Some(CONTENT_TYPE),
                Some(&lease),
                &subject,
            )
            .await?;
        if status == StatusCode::CONFLICT {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(ApplyError::from_status(&subject, status, &body));
        }
        Ok(Some(body))
    }
}

fn fetch_requested(lease: &Json) -> Option<String> {
    lease
        .pointer("/metadata/annotations")?
        .get(ANNOTATION_FETCH_REQUESTED)?
        .as_str()
        .map(str::to_owned)
}

fn text(spec: &Json, key: &str) -> Option<String> {
    spec.get(key).and_then(Json::as_str).map(str::to_owned)
}

/// A `MicroTime`: RFC 3339 in UTC with microseconds, `2026-11-26T12:00:00.123456Z`.
fn micro_time(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

/// This replica's identity: `POD_NAME`, else the host name
/// (`/proc/sys/kernel/hostname`, then `HOSTNAME`), else `flink-gitops`.
#[must_use]
pub fn default_identity() -> String {
    let non_empty = |value: String| {
        let value = value.trim().to_owned();
        (!value.is_empty()).then_some(value)
    };
    if let Some(pod) = std::env::var("POD_NAME").ok().and_then(non_empty) {
        return pod;
    }
    // Outside Kubernetes two replicas may share a host: the process id keeps
    // their identities apart (client-go appends a random suffix likewise).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(non_empty)
        .or_else(|| std::env::var("HOSTNAME").ok().and_then(non_empty))
        .unwrap_or_else(|| "flink-gitops".to_owned());
    format!("{host}_{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_has_microseconds_and_z() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_694_400_123_456);
        assert_eq!(micro_time(time), "2026-11-26T12:00:00.123456Z");
    }

    #[test]
    fn default_identity_is_never_empty() {
        assert!(!default_identity().is_empty());
    }
}
