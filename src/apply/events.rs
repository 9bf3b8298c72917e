//! Kubernetes Events on the custom resource, so that `kubectl describe`
//! shows what flink-gitops did to it and when
//! (core/v1 Event: https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/).
//!
//! An Event is recorded after each successful write. Recording is best
//! effort: a failure is logged at `warn` and never fails the write.

use super::KubeCluster;
use crate::plan::{LiveObject, Reason};
use http::Method;
use serde_json::{Value as Json, json};
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
        "name": format!("{}.{:016x}", involved.name, rand::random::<u64>()),
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

/// "local" (a directory) and "unknown" are no revision worth naming.
#[must_use]
pub fn is_commit(revision: &str) -> bool {
    !matches!(revision, "" | "local" | "unknown")
}

/// Creates the Event; a failure is logged and otherwise ignored.
pub async fn record(
    cluster: &KubeCluster,
    involved: &Involved,
    reason: EventReason,
    message: &str,
    revision: Option<&str>,
) {
    let body = event(involved, reason, message, revision, SystemTime::now());
    let uri = format!("/api/v1/namespaces/{}/events", involved.namespace);
    let subject = format!(
        "Event/{}/{} ({})",
        involved.namespace,
        involved.name,
        reason.as_str()
    );
    let outcome = cluster
        .call(
            Method::POST,
            &uri,
            Some("application/json"),
            Some(&body),
            &subject,
        )
        .await;
    match outcome {
        Ok((status, _)) if status.is_success() => {}
        Ok((status, reply)) => {
            let error = super::ApplyError::from_status(&subject, status, &reply);
            tracing::warn!(%error, "failed to record the Event");
        }
        Err(error) => tracing::warn!(%error, "failed to record the Event"),
    }
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
