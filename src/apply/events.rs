//! Kubernetes Events on the custom resource, so that `kubectl describe`
//! shows what flink-gitops did to it and when
//! (core/v1 Event: https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/).
//!
//! An Event is recorded after each successful write. Recording is best
//! effort: a failure is logged at `warn` and never fails the write.
//!
//! Repeats are folded into one Event, as client-go's event recorder does
//! (`tools/record`, `EventCorrelator`): the same object, reason and message
//! name the same Event, and a repeat raises its `count` and `lastTimestamp`
//! instead of adding an Event every cycle (a prune that keeps failing would
//! otherwise add a Warning per reconcile, forever).

use super::ApplyError;
use super::KubeCluster;
use crate::plan::{LiveObject, Reason};
use http::{Method, StatusCode};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use std::time::SystemTime;

/// `source.component` and `reportingComponent` of every Event.
pub const COMPONENT: &str = "flink-gitops";

/// The soa-configs revision an Event's action came from, as an annotation on
/// the Event itself: the resource cannot carry it without breaking byte
/// parity with PaaSTA, and `status` reads it back for "Last applied".
pub const ANNOTATION_EVENT_REVISION: &str = "flink-gitops/revision";

/// Why an Event was recorded (its `reason`, CamelCase as Kubernetes' own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventReason {
    Created,
    Updated,
    /// An update whose only reasons were hand edits of the live object.
    DriftCorrected,
    /// First seen orphaned: pruned after the grace period.
    PrunePending,
    PruneRequested,
    Pruned,
    PruneFailed,
}

impl EventReason {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::Created => "Created",
            EventReason::Updated => "Updated",
            EventReason::DriftCorrected => "DriftCorrected",
            EventReason::PrunePending => "PrunePending",
            EventReason::PruneRequested => "PruneRequested",
            EventReason::Pruned => "Pruned",
            EventReason::PruneFailed => "PruneFailed",
        }
    }

    /// `Normal`, or `Warning` for failures.
    #[must_use]
    pub fn event_type(self) -> &'static str {
        match self {
            EventReason::PruneFailed => "Warning",
            _ => "Normal",
        }
    }

    /// The Event's `action` (required by the API server when `eventTime` is set).
    fn action(self) -> &'static str {
        match self {
            EventReason::Created | EventReason::Updated | EventReason::DriftCorrected => "Apply",
            EventReason::PrunePending
            | EventReason::PruneRequested
            | EventReason::Pruned
            | EventReason::PruneFailed => "Prune",
        }
    }

    /// `Updated`, or `DriftCorrected` when every reason is drift.
    #[must_use]
    pub fn of_update(reasons: &[Reason]) -> Self {
        if !reasons.is_empty() && reasons.iter().all(|r| matches!(r, Reason::Drift(_))) {
            EventReason::DriftCorrected
        } else {
            EventReason::Updated
        }
    }
}

/// The object an Event is about (`involvedObject`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Involved {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
}

impl Involved {
    /// From a live object.
    #[must_use]
    pub fn of_live(live: &LiveObject) -> Self {
        Involved {
            api_version: live.api_version.clone(),
            kind: live.kind.clone(),
            namespace: live.namespace().to_owned(),
            name: live.name().to_owned(),
            uid: uid_of(&live.object),
        }
    }
}

/// `metadata.uid` of an object.
#[must_use]
pub fn uid_of(object: &Json) -> Option<String> {
    object
        .pointer("/metadata/uid")
        .and_then(Json::as_str)
        .map(str::to_owned)
}

/// The Event body; `revision` is annotated when it names a commit.
#[must_use]
pub fn event(
    involved: &Involved,
    reason: EventReason,
    message: &str,
    revision: Option<&str>,
    now: SystemTime,
) -> Json {
    let seconds = humantime::format_rfc3339_seconds(now).to_string();
    let micros = humantime::format_rfc3339_micros(now).to_string();
    let mut object = json!({
        "apiVersion": involved.api_version,
        "kind": involved.kind,
        "name": involved.name,
        "namespace": involved.namespace,
    });
    if let Some(uid) = &involved.uid {
        object["uid"] = json!(uid);
    }
    let instance: String = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| COMPONENT.to_owned())
        .chars()
        .take(128)
        .collect();
    let mut metadata = json!({
        "name": event_name(involved, reason, message),
        "namespace": involved.namespace,
    });
    if let Some(revision) = revision.filter(|r| is_commit(r)) {
        metadata["annotations"] = json!({ ANNOTATION_EVENT_REVISION: revision });
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": metadata,
        "involvedObject": object,
        "reason": reason.as_str(),
        "type": reason.event_type(),
        "message": message,
        "action": reason.action(),
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": seconds,
        "lastTimestamp": seconds,
        "eventTime": micros,
        "count": 1,
    })
}

/// The longest name kube-apiserver accepts for an Event (a DNS subdomain).
const NAME_MAX: usize = 253;

/// `<object name>.<16 hex digits>`, the digits from a SHA-256 of what makes
/// two Events the same: the object (its uid, else its kind and name, so that
/// a deleted and recreated object starts afresh), the reason and the message.
/// Deterministic, so that every process (each `apply` run, each daemon
/// replica) finds the Event an earlier one recorded.
#[must_use]
pub fn event_name(involved: &Involved, reason: EventReason, message: &str) -> String {
    let mut hasher = Sha256::new();
    match &involved.uid {
        Some(uid) => hasher.update(format!("uid\0{uid}\0")),
        None => hasher.update(format!(
            "name\0{}\0{}\0{}\0",
            involved.api_version, involved.kind, involved.name
        )),
    }
    hasher.update(reason.as_str());
    hasher.update("\0");
    hasher.update(message);
    let digest = hex::encode(&hasher.finalize()[..8]);
    // Object names are DNS subdomains too, but may already use up to 253
    // characters; a cut one must still end in an alphanumeric.
    let prefix: String = involved
        .name
        .chars()
        .take(NAME_MAX - digest.len() - 1)
        .collect();
    let prefix = prefix.trim_end_matches(['-', '.']);
    format!("{prefix}.{digest}")
}

/// "local" (a directory) and "unknown" are no revision worth naming.
#[must_use]
pub fn is_commit(revision: &str) -> bool {
    !matches!(revision, "" | "local" | "unknown")
}

/// Records the Event, or counts one more of it when it was recorded before;
/// a failure is logged and otherwise ignored.
pub async fn record(
    cluster: &KubeCluster,
    involved: &Involved,
    reason: EventReason,
    message: &str,
    revision: Option<&str>,
) {
    let body = event(involved, reason, message, revision, SystemTime::now());
    let subject = format!(
        "Event/{}/{} ({})",
        involved.namespace,
        involved.name,
        reason.as_str()
    );
    if let Err(error) = create_or_count(cluster, &body, &subject).await {
        tracing::warn!(%error, "failed to record the Event");
    }
}

/// Whether a create found the Event already there.
enum Created {
    New,
    Exists,
}

/// Whether an update found the Event to update.
enum Counted {
    Counted,
    Gone,
}

/// Creates `body`; when its name exists (409 AlreadyExists), reads the
/// stored Event and merge-patches `count` + 1 and `lastTimestamp`.
///
/// Create first, rather than read first: most Events happen once (their
/// message names a revision), and for them this is the one POST it always
/// was. The read on a repeat cannot be saved: `count` lives on the server,
/// and an `apply` run is a new process that knows nothing of the last one.
///
/// An Event that vanishes between the 409 and the update (kube-apiserver's
/// `--event-ttl`, one hour by default) is created again; a second round is
/// enough, as a new Event lives for the TTL, and bounds the requests.
async fn create_or_count(
    cluster: &KubeCluster,
    body: &Json,
    subject: &str,
) -> Result<(), ApplyError> {
    for _ in 0..2 {
        if let Created::New = create(cluster, body, subject).await? {
            return Ok(());
        }
        if let Counted::Counted = count_one_more(cluster, body, subject).await? {
            return Ok(());
        }
    }
    Err(ApplyError::Api {
        subject: subject.to_owned(),
        code: StatusCode::CONFLICT.as_u16(),
        reason: "AlreadyExists".to_owned(),
        message: "the Event exists when created and is gone when updated, twice".to_owned(),
    })
}

async fn create(cluster: &KubeCluster, body: &Json, subject: &str) -> Result<Created, ApplyError> {
    let uri = format!(
        "/api/v1/namespaces/{}/events",
        text(body, "/metadata/namespace")
    );
    let (status, reply) = cluster
        .call(
            Method::POST,
            &uri,
            Some("application/json"),
            Some(body),
            subject,
        )
        .await?;
    match status {
        s if s.is_success() => Ok(Created::New),
        StatusCode::CONFLICT => Ok(Created::Exists),
        _ => Err(ApplyError::from_status(subject, status, &reply)),
    }
}

/// GET the stored Event, then PATCH its `count` + 1 and `lastTimestamp`
/// (core/v1's fields for a repeat; `firstTimestamp` and `eventTime` stay the
/// first occurrence, which is how `kubectl describe` shows "x3 over 2m").
/// `Gone` when either request finds no Event.
async fn count_one_more(
    cluster: &KubeCluster,
    body: &Json,
    subject: &str,
) -> Result<Counted, ApplyError> {
    let uri = format!(
        "/api/v1/namespaces/{}/events/{}",
        text(body, "/metadata/namespace"),
        text(body, "/metadata/name")
    );
    let (status, stored) = cluster.call(Method::GET, &uri, None, None, subject).await?;
    match status {
        s if s.is_success() => {}
        StatusCode::NOT_FOUND => return Ok(Counted::Gone),
        _ => return Err(ApplyError::from_status(subject, status, &stored)),
    }
    let patch = repeat_patch(&stored, body);
    let (status, reply) = cluster
        .call(
            Method::PATCH,
            &uri,
            Some("application/merge-patch+json"),
            Some(&patch),
            subject,
        )
        .await?;
    match status {
        s if s.is_success() => Ok(Counted::Counted),
        StatusCode::NOT_FOUND => Ok(Counted::Gone),
        _ => Err(ApplyError::from_status(subject, status, &reply)),
    }
}

/// The merge patch that records `repeat` (a fresh Event body) on `stored`:
/// one more in `count` (an int32 in the API; a missing or unreadable count
/// is taken as the 1 it was created with), `lastTimestamp` now, and the
/// repeat's revision annotation, so the Event names the newest revision.
///
/// No `resourceVersion` precondition: two recorders racing may lose one
/// increment, which an audit record can afford (client-go does the same).
#[must_use]
pub fn repeat_patch(stored: &Json, repeat: &Json) -> Json {
    let count = stored
        .get("count")
        .and_then(Json::as_u64)
        .filter(|&c| c > 0)
        .unwrap_or(1)
        .saturating_add(1)
        .min(i32::MAX.unsigned_abs().into());
    let mut patch = json!({
        "count": count,
        "lastTimestamp": repeat["lastTimestamp"],
    });
    if let Some(annotations) = repeat.pointer("/metadata/annotations") {
        patch["metadata"] = json!({ "annotations": annotations });
    }
    patch
}

/// A string field of an Event body this module built (always present).
fn text<'a>(body: &'a Json, pointer: &str) -> &'a str {
    body.pointer(pointer)
        .and_then(Json::as_str)
        .unwrap_or_default()
}

/// The message of an apply Event: what was done, from which revision, and
/// the shas the object now carries.
#[must_use]
pub fn apply_message(
    reason: EventReason,
    reasons: &[Reason],
    revision: Option<&str>,
    applied: &Json,
) -> String {
    let mut message = match reason {
        EventReason::Created => "Created from soa-configs".to_owned(),
        EventReason::DriftCorrected => "Corrected hand edits back to soa-configs".to_owned(),
        _ => "Updated from soa-configs".to_owned(),
    };
    if let Some(revision) = revision {
        message.push_str(&format!(" at revision {revision}"));
    }
    let label = |key: &str| {
        applied
            .pointer("/metadata/labels")
            .and_then(|l| l.get(key))
            .and_then(Json::as_str)
    };
    let shas: Vec<String> = [
        ("config_sha", crate::render::meta::LABEL_CONFIG_SHA),
        ("git_sha", crate::render::meta::LABEL_GIT_SHA),
    ]
    .iter()
    .filter_map(|(name, key)| label(key).map(|v| format!("{name} {v}")))
    .collect();
    if !shas.is_empty() {
        message.push_str(&format!(" ({})", shas.join(", ")));
    }
    if !reasons.is_empty() {
        let listed: Vec<String> = reasons.iter().map(ToString::to_string).collect();
        message.push_str(&format!(": {}", listed.join("; ")));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::path::FieldPath;

    #[test]
    fn drift_only_updates_are_drift_corrections() {
        let drift = Reason::Drift(FieldPath::of(&["spec", "x"]));
        let changed = Reason::Changed(FieldPath::of(&["spec", "y"]));
        assert_eq!(
            EventReason::of_update(std::slice::from_ref(&drift)),
            EventReason::DriftCorrected
        );
        assert_eq!(
            EventReason::of_update(&[drift, changed]),
            EventReason::Updated
        );
        assert_eq!(EventReason::of_update(&[]), EventReason::Updated);
    }

    #[test]
    fn the_event_names_the_object() {
        let involved = Involved {
            api_version: "yelp.com/v1alpha1".into(),
            kind: "Flink".into(),
            namespace: "paasta-flinks".into(),
            name: "alpha-main".into(),
            uid: Some("u-1".into()),
        };
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let event = event(&involved, EventReason::Pruned, "gone", Some("abc123"), now);
        assert_eq!(event["involvedObject"]["uid"], "u-1");
        assert_eq!(
            event["metadata"]["annotations"][ANNOTATION_EVENT_REVISION],
            "abc123"
        );
        assert_eq!(event["type"], "Normal");
        assert_eq!(event["firstTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(event["eventTime"], "2023-11-14T22:13:20.000000Z");
        let name = event["metadata"]["name"].as_str().unwrap_or_default();
        assert!(name.starts_with("alpha-main.") && name.len() == "alpha-main.".len() + 16);
    }

    fn canary(uid: Option<&str>) -> Involved {
        Involved {
            api_version: "yelp.com/v1alpha1".into(),
            kind: "Flink".into(),
            namespace: "paasta-flinks".into(),
            name: "alpha-canary".into(),
            uid: uid.map(str::to_owned),
        }
    }

    #[test]
    fn the_same_event_has_the_same_name_and_any_difference_another() {
        let failed = EventReason::PruneFailed;
        let name = event_name(&canary(Some("u-1")), failed, "Job failed");
        assert_eq!(name, event_name(&canary(Some("u-1")), failed, "Job failed"));
        let hash = name.strip_prefix("alpha-canary.").unwrap_or_default();
        assert!(hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()));
        let others = [
            event_name(&canary(Some("u-2")), failed, "Job failed"),
            event_name(&canary(Some("u-1")), EventReason::Pruned, "Job failed"),
            event_name(&canary(Some("u-1")), failed, "Job failed again"),
            event_name(&canary(None), failed, "Job failed"),
        ];
        for other in &others {
            assert_ne!(&name, other);
        }
        // Without a uid, the object's name is the key.
        let mut renamed = canary(None);
        renamed.name = "alpha-main".into();
        assert_ne!(others[3], event_name(&renamed, failed, "Job failed"));
        assert_eq!(others[3], event_name(&canary(None), failed, "Job failed"));
        // The body carries the name.
        let body = event(
            &canary(Some("u-1")),
            failed,
            "Job failed",
            None,
            SystemTime::now(),
        );
        assert_eq!(body["metadata"]["name"], name.as_str());
    }

    #[test]
    fn a_long_object_name_is_cut_to_a_valid_event_name() {
        let mut long = canary(Some("u-1"));
        long.name = format!("{}-{}", "a".repeat(235), "b".repeat(40));
        let name = event_name(&long, EventReason::Created, "made");
        assert_eq!(name.len(), NAME_MAX - 1, "{name}");
        assert!(name.starts_with(&format!("{}.", "a".repeat(235))), "{name}");
    }

    #[test]
    fn a_repeat_counts_one_more_and_moves_the_last_time() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let repeat = event(
            &canary(Some("u-1")),
            EventReason::PruneFailed,
            "m",
            Some("abc"),
            now,
        );
        let stored = json!({"count": 3, "lastTimestamp": "2023-11-14T21:00:00Z"});
        assert_eq!(
            repeat_patch(&stored, &repeat),
            json!({
                "count": 4,
                "lastTimestamp": "2023-11-14T22:13:20Z",
                "metadata": {"annotations": {ANNOTATION_EVENT_REVISION: "abc"}},
            })
        );
        // The first and event times are the first occurrence's: not patched.
        let repeat = event(&canary(None), EventReason::PruneFailed, "m", None, now);
        for stored in [json!({}), json!({"count": 0}), json!({"count": "x"})] {
            assert_eq!(
                repeat_patch(&stored, &repeat),
                json!({"count": 2, "lastTimestamp": "2023-11-14T22:13:20Z"}),
                "{stored}"
            );
        }
        let full = json!({"count": i32::MAX});
        assert_eq!(repeat_patch(&full, &repeat)["count"], i32::MAX);
    }

    #[test]
    fn a_directory_source_is_no_revision() {
        let involved = Involved {
            api_version: "yelp.com/v1alpha1".into(),
            kind: "Flink".into(),
            namespace: "paasta-flinks".into(),
            name: "alpha-main".into(),
            uid: None,
        };
        for revision in [None, Some("local"), Some("unknown")] {
            let event = event(
                &involved,
                EventReason::Created,
                "made",
                revision,
                SystemTime::now(),
            );
            assert!(
                event["metadata"].get("annotations").is_none(),
                "{revision:?}"
            );
        }
    }
}
