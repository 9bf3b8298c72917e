//! Pure: the desired resources against the live objects, to a [`Plan`].
//!
//! Each desired instance gets exactly one [`Action`]. The comparison rules:
//!
//! 1. Only the fields of our intent count; server-populated metadata and
//!    `status` never do, nor labels and annotations other writers added.
//! 2. Values compare JSON-semantically (`2.0` equals `2`).
//! 3. The `desired_state` annotations are not drift: `paasta start/stop/
//!    restart` and operators set them, and they persist until the next config
//!    or image change, which resets them to `running` (PaaSTA's semantics).
//! 4. A field our field manager owns live (or that a PaaSTA manager we take
//!    over owns) but that the intent no longer has is a change, so that
//!    deleting a key in git deletes it in the cluster.
//!
//! Live objects carrying PaaSTA's service/instance labels whose instance is
//! absent from a successfully loaded service are listed as orphans; nothing
//! here acts on them.

pub mod compare;
pub mod managed_fields;
pub mod path;
pub mod prune;

use crate::render::{DesiredResource, DesiredSet, meta};
use crate::value::Value;
use path::FieldPath;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// How the plan treats ownership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Our server-side-apply field manager.
    pub field_manager: String,
    /// Managers whose `Update` ownership we take over on the first write
    /// (the names PaaSTA's Python client appears under).
    pub takeover_managers: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            field_manager: "flink-gitops".to_owned(),
            takeover_managers: default_takeover_managers(),
        }
    }
}

/// The field-manager names of PaaSTA's writers: the Kubernetes Python client
/// sends no field manager, so the API server derives one from its user agent
/// (`OpenAPI-Generator/<version>/python`).
#[must_use]
pub fn default_takeover_managers() -> Vec<String> {
    vec!["OpenAPI-Generator".to_owned()]
}

/// A live object as listed from the API server (plain JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveObject {
    pub kind: String,
    pub plural: String,
    pub api_version: String,
    pub object: Json,
}

impl LiveObject {
    #[must_use]
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Json::as_str)
            .unwrap_or("")
    }

    #[must_use]
    pub fn namespace(&self) -> &str {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Json::as_str)
            .unwrap_or("")
    }

    /// A label value.
    #[must_use]
    pub fn label(&self, key: &str) -> Option<&str> {
        self.object
            .get("metadata")?
            .get("labels")?
            .get(key)?
            .as_str()
    }

    /// An annotation value.
    #[must_use]
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.object
            .get("metadata")?
            .get("annotations")?
            .get(key)?
            .as_str()
    }

    /// `(service, instance)` from PaaSTA's labels, when both are present.
    #[must_use]
    pub fn identity(&self) -> Option<(&str, &str)> {
        Some((
            self.label(meta::LABEL_SERVICE)?,
            self.label(meta::LABEL_INSTANCE)?,
        ))
    }

    /// `Kind/namespace/name`.
    #[must_use]
    pub fn subject(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace(), self.name())
    }

    #[must_use]
    pub fn resource_version(&self) -> Option<&str> {
        self.object
            .pointer("/metadata/resourceVersion")
            .and_then(Json::as_str)
    }
}

/// Why an instance needs a write.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// The configuration changed in git (restarts the Flink cluster).
    ConfigShaChanged { from: Option<String>, to: String },
    /// A new image was deployed.
    GitShaChanged { from: Option<String>, to: String },
    /// A field differs because the configuration changed.
    Changed(FieldPath),
    /// A field differs although the configuration did not change: someone
    /// edited the live object.
    Drift(FieldPath),
    /// A field we own live is gone from git.
    FieldRemoved(FieldPath),
    /// The instance came back while it was being pruned: the prune is
    /// cancelled and the resource runs again.
    PruneCancelled,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_owned());
        match self {
            Reason::ConfigShaChanged { from, to } => {
                write!(f, "config_sha changed ({} → {to})", or_none(from))
            }
            Reason::GitShaChanged { from, to } => {
                write!(f, "git_sha changed ({} → {to})", or_none(from))
            }
            Reason::Changed(path) => write!(f, "{path} changed"),
            Reason::Drift(path) => write!(f, "drift at {path}"),
            Reason::FieldRemoved(path) => write!(f, "{path} removed from git"),
            Reason::PruneCancelled => write!(
                f,
                "back in git while being pruned: cancels the prune and runs it again"
            ),
        }
    }
}

/// What happens to one instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create,
    Update(Vec<Reason>),
    Unchanged,
    /// Not deployed yet (PaaSTA's `NoDeploymentsAvailable`).
    Skip(String),
    /// Its service failed to load: nothing is known, nothing is touched.
    Blocked(String),
    /// It cannot be rendered or written.
    Failed(String),
}

impl Action {
    /// A short lowercase name for tables and metrics.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update(_) => "update",
            Action::Unchanged => "unchanged",
            Action::Skip(_) => "skip",
            Action::Blocked(_) => "blocked",
            Action::Failed(_) => "failed",
        }
    }
}

/// The write an entry needs: a server-side apply of `body`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyRequest {
    pub api_version: String,
    pub kind: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
    /// The apply configuration (our intent, `desired_state` kept from live
    /// when the config and image did not change).
    pub body: Json,
    /// Managers whose ownership must move to ours before applying.
    pub takeover_from: Vec<String>,
    /// The object was being pruned: after the apply, drop the prune
    /// signal's fields and delete the shutdown Job.
    pub cancel_prune: bool,
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEntry {
    pub service: String,
    pub instance: String,
    /// `Kind/namespace/name`, or `service.instance` when there is no object.
    pub subject: String,
    pub action: Action,
    pub apply: Option<ApplyRequest>,
    /// The live object, for diffs.
    pub live: Option<Json>,
    /// The rendered object, for diffs.
    pub desired: Option<Value>,
}

/// A live object whose instance is gone from a successfully loaded service.
#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    pub service: String,
    pub instance: String,
    pub subject: String,
    pub object: LiveObject,
}

/// The plan for one cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub cluster: String,
    /// Sorted by service, then instance.
    pub entries: Vec<PlanEntry>,
    pub orphans: Vec<Orphan>,
}

impl Plan {
    /// Entries that need a write.
    pub fn writes(&self) -> impl Iterator<Item = &PlanEntry> {
        self.entries.iter().filter(|e| e.apply.is_some())
    }

    /// Number of entries per action name.
    #[must_use]
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for entry in &self.entries {
            *counts.entry(entry.action.name()).or_insert(0) += 1;
        }
        counts
    }
}

fn desired_state_paths() -> [FieldPath; 2] {
    [
        FieldPath::of(&["metadata", "annotations", meta::ANNOTATION_DESIRED_STATE]),
        FieldPath::of(&[
            "metadata",
            "annotations",
            meta::ANNOTATION_LEGACY_DESIRED_STATE,
        ]),
    ]
}

/// Builds the plan of `desired` against `live` (every object of the
/// configured kinds in their namespaces).
#[must_use]
pub fn plan(desired: &DesiredSet, live: &[LiveObject], policy: &Policy) -> Plan {
    let by_name: BTreeMap<(&str, &str, &str), &LiveObject> = live
        .iter()
        .map(|object| {
            (
                (object.kind.as_str(), object.namespace(), object.name()),
                object,
            )
        })
        .collect();
    let mut entries = Vec::new();
    for resource in &desired.resources {
        let key = (
            resource.kind.as_str(),
            resource.namespace.as_str(),
            resource.name.as_str(),
        );
        entries.push(plan_resource(resource, by_name.get(&key).copied(), policy));
    }
    for skip in &desired.skipped {
        entries.push(bare_entry(
            &skip.service,
            &skip.instance,
            Action::Skip(skip.reason.clone()),
        ));
    }
    for failed in &desired.failed {
        entries.push(bare_entry(
            &failed.service,
            &failed.instance,
            Action::Failed(failed.diagnostic.to_string()),
        ));
    }
    let known: BTreeSet<(&str, &str)> = entries
        .iter()
        .map(|e| (e.service.as_str(), e.instance.as_str()))
        .collect();
    let mut orphans = Vec::new();
    let mut blocked = Vec::new();
    for object in live {
        let Some((service, instance)) = object.identity() else {
            continue;
        };
        if let Some(diagnostics) = desired.unknown_services.get(service) {
            let why = diagnostics.first().map_or_else(
                || "its service failed to load".to_owned(),
                |d| format!("its service failed to load: {d}"),
            );
            let mut entry = bare_entry(service, instance, Action::Blocked(why));
            entry.subject = object.subject();
            blocked.push(entry);
            continue;
        }
        if known.contains(&(service, instance)) {
            continue;
        }
        if object.label(meta::LABEL_CLUSTER) != Some(desired.cluster.as_str()) {
            continue;
        }
        orphans.push(Orphan {
            service: service.to_owned(),
            instance: instance.to_owned(),
            subject: object.subject(),
            object: object.clone(),
        });
    }
    entries.extend(blocked);
    entries.sort_by(|a, b| {
        (&a.service, &a.instance, &a.subject).cmp(&(&b.service, &b.instance, &b.subject))
    });
    orphans.sort_by(|a, b| a.subject.cmp(&b.subject));
    Plan {
        cluster: desired.cluster.clone(),
        entries,
        orphans,
    }
}

/// The takeover managers that own something of `object` with `Update`.
fn takeover_managers(object: &Json, policy: &Policy) -> Vec<String> {
    let mut managers: Vec<String> = managed_fields::entries(object)
        .into_iter()
        .filter(|e| e.operation == "Update" && policy.takeover_managers.contains(&e.manager))
        .map(|e| e.manager)
        .collect();
    managers.dedup();
    managers
}

fn bare_entry(service: &str, instance: &str, action: Action) -> PlanEntry {
    PlanEntry {
        service: service.to_owned(),
        instance: instance.to_owned(),
        subject: format!("{service}.{instance}"),
        action,
        apply: None,
        live: None,
        desired: None,
    }
}

fn plan_resource(
    resource: &DesiredResource,
    live: Option<&LiveObject>,
    policy: &Policy,
) -> PlanEntry {
    let mut entry = PlanEntry {
        service: resource.service.clone(),
        instance: resource.instance.clone(),
        subject: resource.subject(),
        action: Action::Create,
        apply: None,
        live: None,
        desired: None,
    };
    let Some(live) = live else {
        entry.desired = Some(resource.object.clone());
        entry.apply = apply_request(resource, &resource.object, Vec::new())
            .map_err(|e| entry.action = Action::Failed(e))
            .ok();
        return entry;
    };
    if live.identity().is_none() {
        entry.action = Action::Failed(format!(
            "{} exists without PaaSTA's service/instance labels; it is not ours and is left untouched",
            live.subject()
        ));
        return entry;
    }
    let live_config_sha = live.label(meta::LABEL_CONFIG_SHA).map(str::to_owned);
    let live_git_sha = live.label(meta::LABEL_GIT_SHA).map(str::to_owned);
    let config_changed = live_config_sha.as_deref() != Some(resource.config_sha.as_str());
    let image_changed = live_git_sha.as_deref() != Some(resource.git_sha.as_str());
    let mut reasons = Vec::new();
    if config_changed {
        reasons.push(Reason::ConfigShaChanged {
            from: live_config_sha,
            to: resource.config_sha.clone(),
        });
    }
    if image_changed {
        reasons.push(Reason::GitShaChanged {
            from: live_git_sha,
            to: resource.git_sha.clone(),
        });
    }
    let sha_labels = [
        FieldPath::of(&["metadata", "labels", meta::LABEL_CONFIG_SHA]),
        FieldPath::of(&["metadata", "labels", meta::LABEL_LEGACY_CONFIG_SHA]),
        FieldPath::of(&["metadata", "labels", meta::LABEL_GIT_SHA]),
    ];
    let mut ignored: Vec<FieldPath> = desired_state_paths().to_vec();
    ignored.extend(sha_labels.iter().cloned());
    for path in compare::differing_paths(&resource.object, &live.object, &ignored) {
        reasons.push(if config_changed {
            Reason::Changed(path)
        } else {
            Reason::Drift(path)
        });
    }
    let cancel_prune = live.annotation(prune::ANNOTATION_REQUESTED_AT).is_some();
    if cancel_prune {
        reasons.push(Reason::PruneCancelled);
    }
    // A legacy config_sha label out of step with the main one is drift too.
    if !config_changed
        && live.label(meta::LABEL_LEGACY_CONFIG_SHA) != Some(resource.config_sha.as_str())
    {
        reasons.push(Reason::Drift(sha_labels[1].clone()));
    }
    let owned = |manager: &str, operation: &str| {
        let ours = manager == policy.field_manager && operation == "Apply";
        let taken_over =
            operation == "Update" && policy.takeover_managers.iter().any(|m| m == manager);
        ours || taken_over
    };
    let scope: [&[&str]; 3] = [
        &["spec"],
        &["metadata", "labels"],
        &["metadata", "annotations"],
    ];
    for path in managed_fields::missing_owned_leaves(&live.object, owned, &scope, &resource.object)
    {
        let reason = Reason::FieldRemoved(path);
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    if reasons.is_empty() {
        entry.action = Action::Unchanged;
        return entry;
    }
    let takeover_from = takeover_managers(&live.object, policy);
    let body = if config_changed || image_changed || cancel_prune {
        resource.object.clone()
    } else {
        keep_live_desired_state(&resource.object, live)
    };
    // Kept for diffs of the entries that change; unchanged ones stay light.
    entry.live = Some(live.object.clone());
    entry.desired = Some(resource.object.clone());
    match apply_request(resource, &body, takeover_from) {
        Ok(mut request) => {
            request.cancel_prune = cancel_prune;
            entry.action = Action::Update(reasons);
            entry.apply = Some(request);
        }
        Err(e) => entry.action = Action::Failed(e),
    }
    entry
}

/// The intent with the live `desired_state` annotations, so that a
/// `paasta stop` survives writes that are not config or image changes.
fn keep_live_desired_state(intent: &Value, live: &LiveObject) -> Value {
    let mut body = intent.clone();
    if let Some(annotations) = body
        .as_map_mut()
        .and_then(|o| o.get_mut("metadata"))
        .and_then(Value::as_map_mut)
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_map_mut)
    {
        for key in [
            meta::ANNOTATION_DESIRED_STATE,
            meta::ANNOTATION_LEGACY_DESIRED_STATE,
        ] {
            if let Some(live_value) = live.annotation(key) {
                annotations.insert(key, Value::str(live_value));
            }
        }
    }
    body
}

fn apply_request(
    resource: &DesiredResource,
    body: &Value,
    takeover_from: Vec<String>,
) -> Result<ApplyRequest, String> {
    let body = body
        .to_json()
        .map_err(|e| format!("{}: {e}", resource.subject()))?;
    Ok(ApplyRequest {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
        plural: resource.plural.clone(),
        namespace: resource.namespace.clone(),
        name: resource.name.clone(),
        body,
        takeover_from,
        cancel_prune: false,
    })
}

#[cfg(test)]
mod tests;
