//! Deployment events: what the reconciler did to one instance (or, for
//! `sync_failed`, to the whole source), in the JSON shape the sinks deliver.
//!
//! The body is versioned by [`SCHEMA_VERSION`]; fields are only ever added
//! within a version. See the README's "Deployment status webhooks".

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::SystemTime;

/// The `schema_version` of every [`DeploymentEvent`] body.
pub const SCHEMA_VERSION: u32 = 1;

/// What happened, the `kind` field and the `X-Flink-Gitops-Event` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The custom resource was created or updated.
    Applied,
    /// The resource's `status.state` reached the ready state.
    Ready,
    /// A failed state, or the ready state was not reached in time.
    Failed,
    /// A removed instance's stop-and-delete began.
    PruneRequested,
    /// A removed instance was deleted.
    Pruned,
    /// A removed instance could not be deleted.
    PruneFailed,
    /// The source or the configuration could not be used; nothing applied.
    SyncFailed,
}

impl EventKind {
    /// Every kind, the default event filter of each sink.
    pub const ALL: [EventKind; 7] = [
        EventKind::Applied,
        EventKind::Ready,
        EventKind::Failed,
        EventKind::PruneRequested,
        EventKind::Pruned,
        EventKind::PruneFailed,
        EventKind::SyncFailed,
    ];

    /// The snake_case name, as serialised.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Applied => "applied",
            EventKind::Ready => "ready",
            EventKind::Failed => "failed",
            EventKind::PruneRequested => "prune_requested",
            EventKind::Pruned => "pruned",
            EventKind::PruneFailed => "prune_failed",
            EventKind::SyncFailed => "sync_failed",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The commit a revision names, when the source is git.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub author: String,
    /// The first line of the commit message.
    pub subject: String,
}

/// One deployment event, serialised as the webhook body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentEvent {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Unique per event (32 hex digits); the `X-Flink-Gitops-Delivery`
    /// header, the same on every retry, for idempotent receivers.
    pub id: String,
    pub kind: EventKind,
    /// Empty for `sync_failed` of the whole source.
    pub service: String,
    /// Empty for `sync_failed`.
    pub instance: String,
    pub cluster: String,
    /// `Kind/namespace/name` of the custom resource; empty for `sync_failed`.
    pub subject: String,
    /// The source revision (a commit id for git, a content hash for a directory).
    pub revision: String,
    /// The commit's author and subject, when the source is git.
    pub commit: Option<Commit>,
    /// The resource's `paasta.yelp.com/config_sha` label, when known.
    pub config_sha: Option<String>,
    /// The resource's `paasta.yelp.com/git_sha` label, when known.
    pub git_sha: Option<String>,
    /// For `applied`: what changed (paths of changed fields, or `created`).
    pub changes: Vec<String>,
    /// A human-readable sentence.
    pub message: String,
    /// When the event happened, RFC 3339 UTC with milliseconds.
    pub timestamp: String,
}

impl DeploymentEvent {
    /// A new event with a fresh id and the current time; fill in the rest
    /// with the builder methods.
    #[must_use]
    pub fn new(kind: EventKind, cluster: impl Into<String>, revision: impl Into<String>) -> Self {
        DeploymentEvent {
            schema_version: SCHEMA_VERSION,
            id: new_id(),
            kind,
            service: String::new(),
            instance: String::new(),
            cluster: cluster.into(),
            subject: String::new(),
            revision: revision.into(),
            commit: None,
            config_sha: None,
            git_sha: None,
            changes: Vec::new(),
            message: String::new(),
            timestamp: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        }
    }

    /// The instance and its resource: `subject` is `Kind/namespace/name`.
    #[must_use]
    pub fn instance(
        mut self,
        service: impl Into<String>,
        instance: impl Into<String>,
        subject: impl Into<String>,
    ) -> Self {
        self.service = service.into();
        self.instance = instance.into();
        self.subject = subject.into();
        self
    }

    #[must_use]
    pub fn commit(mut self, author: impl Into<String>, subject: impl Into<String>) -> Self {
        self.commit = Some(Commit {
            author: author.into(),
            subject: subject.into(),
        });
        self
    }

    #[must_use]
    pub fn shas(mut self, config_sha: Option<String>, git_sha: Option<String>) -> Self {
        self.config_sha = config_sha;
        self.git_sha = git_sha;
        self
    }

    #[must_use]
    pub fn changes(mut self, changes: Vec<String>) -> Self {
        self.changes = changes;
        self
    }

    #[must_use]
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// `service.instance`, or the cluster for events without an instance.
    #[must_use]
    pub fn who(&self) -> String {
        if self.service.is_empty() && self.instance.is_empty() {
            self.cluster.clone()
        } else {
            format!("{}.{} on {}", self.service, self.instance, self.cluster)
        }
    }

    /// One line for chat: kind, instance, cluster, short revision, message.
    /// Control characters (newlines included) become spaces.
    #[must_use]
    pub fn one_line(&self) -> String {
        let revision: String = self.revision.chars().take(12).collect();
        let mut line = format!("flink-gitops {}: {} at {}", self.kind, self.who(), revision);
        if !self.message.is_empty() {
            line.push_str(": ");
            line.push_str(&self.message);
        }
        line.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    }
}

/// 16 random bytes as 32 lowercase hex digits.
fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fixed() -> DeploymentEvent {
        let mut event =
            DeploymentEvent::new(EventKind::PruneRequested, "norcal-devc", "0123456789abcdef")
                .instance(
                    "example_happyhour",
                    "main",
                    "FlinkCluster/paasta-flinks/example-happyhour-main",
                )
                .commit("Jane Doe <jane@example.com>", "Remove main")
                .shas(Some("config1234".into()), None)
                .changes(vec!["spec.taskManager.replicas".into()])
                .message("stop\nrequested");
        event.id = "00112233445566778899aabbccddeeff".into();
        event.timestamp = "2025-01-02T03:04:05.678Z".into();
        event
    }

    #[test]
    fn serialises_as_the_documented_schema() {
        let json = serde_json::to_value(fixed()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "schema_version": 1,
                "id": "00112233445566778899aabbccddeeff",
                "kind": "prune_requested",
                "service": "example_happyhour",
                "instance": "main",
                "cluster": "norcal-devc",
                "subject": "FlinkCluster/paasta-flinks/example-happyhour-main",
                "revision": "0123456789abcdef",
                "commit": {"author": "Jane Doe <jane@example.com>", "subject": "Remove main"},
                "config_sha": "config1234",
                "git_sha": null,
                "changes": ["spec.taskManager.replicas"],
                "message": "stop\nrequested",
                "timestamp": "2025-01-02T03:04:05.678Z"
            })
        );
        let back: DeploymentEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, fixed());
    }

    #[test]
    fn kinds_are_snake_case() {
        for kind in EventKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.as_str().to_owned())
            );
        }
    }

    #[test]
    fn ids_are_unique_hex_and_timestamps_rfc3339() {
        let a = DeploymentEvent::new(EventKind::Applied, "c", "r");
        let b = DeploymentEvent::new(EventKind::Applied, "c", "r");
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 32);
        assert!(a.id.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(
            humantime::parse_rfc3339(&a.timestamp).is_ok(),
            "{}",
            a.timestamp
        );
    }

    #[test]
    fn one_line_has_no_newlines() {
        let line = fixed().one_line();
        assert_eq!(
            line,
            "flink-gitops prune_requested: example_happyhour.main on norcal-devc at 0123456789ab: stop requested"
        );
        let sync = DeploymentEvent::new(EventKind::SyncFailed, "c1", "abc").message("bad yaml");
        assert_eq!(
            sync.one_line(),
            "flink-gitops sync_failed: c1 at abc: bad yaml"
        );
    }
}
