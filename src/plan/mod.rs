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
//! The unit of the plan is the Kubernetes object (API group, plural,
//! namespace, name), never its labels: a live object whose name is desired
//! is planned by its desired resource (which corrects its labels), so it is
//! never an orphan, and no object gets two steps. Live objects of a
//! configured kind carrying PaaSTA's service/instance labels whose instance
//! is absent from a successfully loaded service are listed as orphans;
//! objects no configured kind claims are listed as unmanaged. Nothing here
//! acts on either.

pub mod compare;
pub mod inventory;
pub mod managed_fields;
pub mod path;
pub mod prune;
pub mod wanted;

use crate::config::parallel;
use crate::render::{DesiredResource, DesiredSet, meta};
use crate::value::Value;
use inventory::{Inventory, group_of};
use path::FieldPath;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use wanted::{Held, WantedNames};

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

/// The field-manager names of PaaSTA's writers. The Kubernetes Python
/// client sends no field manager, so the API server names it after the user
/// agent up to its first `/`: PaaSTA's `KubeClient` sets
/// `paasta/<component>/v<version>` (so `paasta`), and the client's own
/// default is `OpenAPI-Generator/<version>/python`.
#[must_use]
pub fn default_takeover_managers() -> Vec<String> {
    vec!["paasta".to_owned(), "OpenAPI-Generator".to_owned()]
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
    fn metadata(&self) -> Option<&Json> {
        self.object.get("metadata")
    }

    fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata()?.get(key)?.as_str()
    }

    fn labels(&self) -> Option<&serde_json::Map<String, Json>> {
        self.metadata()?.get("labels")?.as_object()
    }

    #[must_use]
    pub fn name(&self) -> &str {
        self.metadata_str("name").unwrap_or("")
    }

    #[must_use]
    pub fn namespace(&self) -> &str {
        self.metadata_str("namespace").unwrap_or("")
    }

    /// A label value.
    #[must_use]
    pub fn label(&self, key: &str) -> Option<&str> {
        label_in(self.labels(), key)
    }

    /// An annotation value.
    #[must_use]
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata()?.get("annotations")?.get(key)?.as_str()
    }

    /// `(service, instance)` from PaaSTA's labels, when both are present.
    #[must_use]
    pub fn identity(&self) -> Option<(&str, &str)> {
        identity_in(self.labels())
    }

    /// `Kind/namespace/name`.
    #[must_use]
    pub fn subject(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace(), self.name())
    }

    #[must_use]
    pub fn resource_version(&self) -> Option<&str> {
        self.metadata_str("resourceVersion")
    }
}

fn label_in<'a>(labels: Option<&'a serde_json::Map<String, Json>>, key: &str) -> Option<&'a str> {
    labels?.get(key)?.as_str()
}

fn identity_in(labels: Option<&serde_json::Map<String, Json>>) -> Option<(&str, &str)> {
    Some((
        label_in(labels, meta::LABEL_SERVICE)?,
        label_in(labels, meta::LABEL_INSTANCE)?,
    ))
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
    /// The instance came back while its prune was pending (within
    /// `prune.grace`): the orphan mark is removed, nothing else changes.
    OrphanMarkCleared,
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
            Reason::OrphanMarkCleared => write!(
                f,
                "back in git while its prune was pending: the pending prune is dropped"
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

    /// Why an instance is skipped, blocked or failed.
    #[must_use]
    pub fn message(&self) -> Option<&str> {
        match self {
            Action::Skip(m) | Action::Blocked(m) | Action::Failed(m) => Some(m),
            _ => None,
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
    /// The object carries the orphan mark of a pending prune: drop it.
    pub clear_orphan_mark: bool,
}

impl ApplyRequest {
    /// True when the only write needed is dropping the orphan mark: the
    /// resource itself is as desired and is not applied.
    #[must_use]
    pub fn only_clears_orphan_mark(&self, action: &Action) -> bool {
        self.clear_orphan_mark
            && matches!(action, Action::Update(reasons) if reasons.iter().all(|r| *r == Reason::OrphanMarkCleared))
    }
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

impl PlanEntry {
    /// What every report of an entry shows (`diff --output json`, the
    /// daemon's `/status`): who, which action, and the action's message.
    /// Each report adds its own fields (reasons, diff, error).
    #[must_use]
    pub fn to_json(&self) -> Json {
        let mut object = serde_json::json!({
            "service": self.service,
            "instance": self.instance,
            "subject": self.subject,
            "action": self.action.name(),
        });
        if let Some(message) = self.action.message() {
            object["message"] = Json::from(message);
        }
        object
    }
}

/// A live object whose instance is gone from a successfully loaded service.
#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    pub service: String,
    pub instance: String,
    pub subject: String,
    pub object: LiveObject,
}

/// A live object that no configured kind claims: never pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmanaged {
    /// `Kind/namespace/name`.
    pub subject: String,
    /// PaaSTA's labels, when present.
    pub service: Option<String>,
    pub instance: Option<String>,
}

impl Unmanaged {
    /// Why it is left alone, in plain words.
    #[must_use]
    pub fn message(&self) -> String {
        format!(
            "{} is not claimed by any configured kind (its CRD, namespace and eks label match none): it is left alone and never pruned",
            self.subject
        )
    }

    /// As reported in `diff --output json` and `/status`.
    #[must_use]
    pub fn to_json(&self) -> Json {
        serde_json::json!({
            "subject": self.subject,
            "service": self.service,
            "instance": self.instance,
            "message": self.message(),
        })
    }
}

/// The plan for one cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub cluster: String,
    /// Sorted by service, then instance.
    pub entries: Vec<PlanEntry>,
    pub orphans: Vec<Orphan>,
    /// Sorted by subject.
    pub unmanaged: Vec<Unmanaged>,
    /// Objects of this cluster that carry our orphan mark but are not
    /// orphans now (their instance is back, only skipped or failed, or their
    /// name is wanted): the mark is dropped, so that a later removal waits
    /// the whole grace period again. They get no other step.
    pub release_marks: Vec<LiveObject>,
}

impl Plan {
    /// Entries that need a write.
    pub fn writes(&self) -> impl Iterator<Item = &PlanEntry> {
        self.entries.iter().filter(|e| e.apply.is_some())
    }

    /// The objects that get more than one step (a create, update or
    /// unchanged entry, or an orphan), by subject: always empty, as the plan
    /// is built one step per object.
    #[must_use]
    pub fn objects_with_several_steps(&self) -> Vec<&str> {
        let mut seen = HashSet::new();
        let mut repeated: Vec<&str> = self
            .entries
            .iter()
            .filter(|e| {
                matches!(
                    e.action,
                    Action::Create | Action::Update(_) | Action::Unchanged
                )
            })
            .map(|e| e.subject.as_str())
            .chain(self.orphans.iter().map(|o| o.subject.as_str()))
            .filter(|subject| !seen.insert(*subject))
            .collect();
        repeated.sort_unstable();
        repeated.dedup();
        repeated
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

/// The paths every comparison uses, spelled out once per plan.
struct Rules {
    /// Not compared: the `desired_state` annotations and the sha labels.
    ignored: Vec<FieldPath>,
    /// The legacy config_sha label.
    legacy_config_sha: FieldPath,
}

impl Rules {
    fn new() -> Self {
        let legacy_config_sha =
            FieldPath::of(&["metadata", "labels", meta::LABEL_LEGACY_CONFIG_SHA]);
        let mut ignored = desired_state_paths().to_vec();
        ignored.extend([
            FieldPath::of(&["metadata", "labels", meta::LABEL_CONFIG_SHA]),
            legacy_config_sha.clone(),
            FieldPath::of(&["metadata", "labels", meta::LABEL_GIT_SHA]),
        ]);
        Rules {
            ignored,
            legacy_config_sha,
        }
    }
}

/// Fewer resources than this per thread are planned on one thread.
const MIN_RESOURCES_PER_THREAD: usize = 256;

/// `(API group, plural, namespace, name)`: one Kubernetes object.
type ObjectKey<'a> = (&'a str, &'a str, &'a str, &'a str);

fn live_key(object: &LiveObject) -> ObjectKey<'_> {
    (
        group_of(&object.api_version),
        object.plural.as_str(),
        object.namespace(),
        object.name(),
    )
}

fn desired_key(resource: &DesiredResource) -> ObjectKey<'_> {
    (
        group_of(&resource.api_version),
        resource.plural.as_str(),
        resource.namespace.as_str(),
        resource.name.as_str(),
    )
}

/// A fast non-cryptographic hash (rustc's `FxHasher`) for the maps of object
/// names: SipHash's flooding resistance buys nothing against the names of a
/// cluster's own objects and costs a good share of a plan.
#[derive(Clone, Copy, Default)]
struct FastHash;

impl std::hash::BuildHasher for FastHash {
    type Hasher = FxHasher;

    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds the plan of `desired` against `live`, every object of which a
/// configured kind claims.
#[must_use]
pub fn plan(desired: &DesiredSet, live: &[LiveObject], policy: &Policy) -> Plan {
    plan_objects(desired, live, &[], policy)
}

/// Builds the plan of `desired` against a cluster's inventory.
#[must_use]
pub fn plan_inventory(desired: &DesiredSet, live: &Inventory, policy: &Policy) -> Plan {
    plan_objects(desired, &live.managed, &live.unmanaged, policy)
}

fn plan_objects(
    desired: &DesiredSet,
    managed: &[LiveObject],
    unmanaged: &[LiveObject],
    policy: &Policy,
) -> Plan {
    let rules = Rules::new();
    let live: Vec<&LiveObject> = managed.iter().chain(unmanaged).collect();
    // The key and PaaSTA's identity of each live object, read once.
    let live_keys: Vec<(ObjectKey, Option<(&str, &str)>)> =
        parallel::map_in_order(&live, MIN_RESOURCES_PER_THREAD, |object| {
            (live_key(object), object.identity())
        });
    let mut by_key: HashMap<ObjectKey, (&LiveObject, bool), FastHash> =
        HashMap::with_capacity_and_hasher(live.len(), FastHash);
    for ((key, identity), object) in live_keys.iter().zip(&live) {
        by_key.entry(*key).or_insert((*object, identity.is_some()));
    }
    let mut desired_keys: HashMap<ObjectKey, usize, FastHash> =
        HashMap::with_capacity_and_hasher(desired.resources.len(), FastHash);
    for resource in &desired.resources {
        *desired_keys.entry(desired_key(resource)).or_insert(0) += 1;
    }
    let mut entries =
        parallel::map_in_order(&desired.resources, MIN_RESOURCES_PER_THREAD, |resource| {
            let key = desired_key(resource);
            if desired_keys.get(&key).copied().unwrap_or(0) > 1 {
                let mut entry = bare_entry(
                    &resource.service,
                    &resource.instance,
                    Action::Failed(format!(
                        "{} is rendered by more than one instance; none of them is written",
                        resource.subject()
                    )),
                );
                entry.subject = subject_of(resource);
                return entry;
            }
            let matched = by_key.get(&key).copied();
            if let Some((object, _)) = matched
                && let Some((service, _)) = object.identity()
                && service != resource.service
                && let Some(diagnostics) = desired.unknown_services.get(service)
            {
                // Another service's object, and that service cannot be read:
                // which of the two wants it is not known.
                let mut entry = bare_entry(
                    &resource.service,
                    &resource.instance,
                    Action::Blocked(blocked_message(
                        &format!("{} belongs to service {service}, which", object.subject()),
                        diagnostics,
                    )),
                );
                entry.subject = subject_of(resource);
                return entry;
            }
            plan_resource(resource, matched, policy, &rules)
        });
    entries.reserve(desired.skipped.len() + desired.failed.len());
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
    let mut known: HashSet<(&str, &str), FastHash> =
        HashSet::with_capacity_and_hasher(entries.len(), FastHash);
    known.extend(
        entries
            .iter()
            .map(|e| (e.service.as_str(), e.instance.as_str())),
    );
    let wanted = WantedNames::of(desired);
    let mut orphans = Vec::new();
    let mut blocked = Vec::new();
    let mut unclaimed = Vec::new();
    let mut release_marks = Vec::new();
    let mut seen: HashSet<ObjectKey, FastHash> =
        HashSet::with_capacity_and_hasher(live.len(), FastHash);
    for (index, (object, (key, identity))) in live.iter().zip(&live_keys).enumerate() {
        // Identity before labels: a desired object is planned by its
        // resource above, whatever its labels say.
        if desired_keys.contains_key(key) || !seen.insert(*key) {
            continue;
        }
        if index >= managed.len() {
            unclaimed.push(Unmanaged {
                subject: object.subject(),
                service: identity.map(|(service, _)| service.to_owned()),
                instance: identity.map(|(_, instance)| instance.to_owned()),
            });
            continue;
        }
        let Some((service, instance)) = *identity else {
            continue;
        };
        if let Some(diagnostics) = desired.unknown_services.get(service) {
            let mut entry = bare_entry(
                service,
                instance,
                Action::Blocked(blocked_message("its service", diagnostics)),
            );
            entry.subject = object.subject();
            blocked.push(entry);
            continue;
        }
        if object.label(meta::LABEL_CLUSTER) != Some(desired.cluster.as_str()) {
            continue;
        }
        let held = if known.contains(&(service, instance)) {
            Some(Held::Wanted)
        } else {
            wanted.holds(object.name())
        };
        match held {
            Some(Held::Wanted) => {
                if prune::owned_annotation(
                    object,
                    prune::ANNOTATION_ORPHANED_SINCE,
                    &policy.field_manager,
                )
                .is_some()
                {
                    release_marks.push((*object).clone());
                }
                continue;
            }
            Some(Held::MaybeWantedBy(unknown)) => {
                let mut entry = bare_entry(
                    service,
                    instance,
                    Action::Blocked(format!(
                        "{} may be rendered by service {unknown}, which failed to load",
                        object.subject()
                    )),
                );
                entry.subject = object.subject();
                blocked.push(entry);
                continue;
            }
            None => {}
        }
        orphans.push(Orphan {
            service: service.to_owned(),
            instance: instance.to_owned(),
            subject: object.subject(),
            object: (*object).clone(),
        });
    }
    entries.extend(blocked);
    entries.sort_by(|a, b| {
        (&a.service, &a.instance, &a.subject).cmp(&(&b.service, &b.instance, &b.subject))
    });
    orphans.sort_by(|a, b| a.subject.cmp(&b.subject));
    unclaimed.sort_by(|a, b| a.subject.cmp(&b.subject));
    release_marks.sort_by_key(LiveObject::subject);
    let plan = Plan {
        cluster: desired.cluster.clone(),
        entries,
        orphans,
        unmanaged: unclaimed,
        release_marks,
    };
    debug_assert!(
        plan.objects_with_several_steps().is_empty(),
        "{:?}",
        plan.objects_with_several_steps()
    );
    plan
}

/// Drops the orphans of a plan made for part of the tree (some services or
/// instances) that the whole tree wants or may want: another service may
/// render the same name, and only a plan of the whole tree may prune.
pub fn hold_orphans_wanted_by(plan: &mut Plan, wanted: &WantedNames) {
    let mut blocked = Vec::new();
    plan.orphans
        .retain(|orphan| match wanted.holds(orphan.object.name()) {
            None => true,
            Some(Held::Wanted) => false,
            Some(Held::MaybeWantedBy(unknown)) => {
                let mut entry = bare_entry(
                    &orphan.service,
                    &orphan.instance,
                    Action::Blocked(format!(
                        "{} may be rendered by service {unknown}, which failed to load",
                        orphan.subject
                    )),
                );
                entry.subject = orphan.subject.clone();
                blocked.push(entry);
                false
            }
        });
    plan.entries.extend(blocked);
    plan.entries.sort_by(|a, b| {
        (&a.service, &a.instance, &a.subject).cmp(&(&b.service, &b.instance, &b.subject))
    });
}

/// `<whose> failed to load[: <first diagnostic>]`.
fn blocked_message(whose: &str, diagnostics: &[crate::config::Diagnostic]) -> String {
    diagnostics.first().map_or_else(
        || format!("{whose} failed to load"),
        |d| format!("{whose} failed to load: {d}"),
    )
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

/// `Kind/namespace/name` of a desired resource.
fn subject_of(resource: &DesiredResource) -> String {
    let mut subject = String::with_capacity(
        resource.kind.len() + resource.namespace.len() + resource.name.len() + 2,
    );
    for (index, part) in [&resource.kind, &resource.namespace, &resource.name]
        .into_iter()
        .enumerate()
    {
        if index > 0 {
            subject.push('/');
        }
        subject.push_str(part);
    }
    subject
}

/// `live` is the object of the same name, if any, and whether it carries
/// PaaSTA's identity labels.
fn plan_resource(
    resource: &DesiredResource,
    live: Option<(&LiveObject, bool)>,
    policy: &Policy,
    rules: &Rules,
) -> PlanEntry {
    let mut entry = PlanEntry {
        service: resource.service.clone(),
        instance: resource.instance.clone(),
        subject: subject_of(resource),
        action: Action::Create,
        apply: None,
        live: None,
        desired: None,
    };
    let Some((live, has_identity)) = live else {
        entry.desired = Some(resource.object.clone());
        entry.apply = apply_request(resource, &resource.object, Vec::new())
            .map_err(|e| entry.action = Action::Failed(e))
            .ok();
        return entry;
    };
    if !has_identity {
        entry.action = Action::Failed(format!(
            "{} exists without PaaSTA's service/instance labels; it is not ours and is left untouched",
            live.subject()
        ));
        return entry;
    }
    let labels = live.labels();
    let live_config_sha = label_in(labels, meta::LABEL_CONFIG_SHA);
    let live_git_sha = label_in(labels, meta::LABEL_GIT_SHA);
    let config_changed = live_config_sha != Some(resource.config_sha.as_str());
    let image_changed = live_git_sha != Some(resource.git_sha.as_str());
    let mut reasons = Vec::new();
    if config_changed {
        reasons.push(Reason::ConfigShaChanged {
            from: live_config_sha.map(str::to_owned),
            to: resource.config_sha.clone(),
        });
    }
    if image_changed {
        reasons.push(Reason::GitShaChanged {
            from: live_git_sha.map(str::to_owned),
            to: resource.git_sha.clone(),
        });
    }
    for path in compare::differing_paths(&resource.object, &live.object, &rules.ignored) {
        reasons.push(if config_changed {
            Reason::Changed(path)
        } else {
            Reason::Drift(path)
        });
    }
    // Only the prune manager's own annotations are a prune of ours: a
    // restored backup or a copied manifest may carry copies.
    let ours = |annotation| prune::owned_annotation(live, annotation, &policy.field_manager);
    let cancel_prune = ours(prune::ANNOTATION_REQUESTED_AT).is_some();
    let clear_orphan_mark = !cancel_prune && ours(prune::ANNOTATION_ORPHANED_SINCE).is_some();
    if cancel_prune {
        reasons.push(Reason::PruneCancelled);
    }
    if clear_orphan_mark {
        reasons.push(Reason::OrphanMarkCleared);
    }
    // A legacy config_sha label out of step with the main one is drift too.
    if !config_changed
        && label_in(labels, meta::LABEL_LEGACY_CONFIG_SHA) != Some(resource.config_sha.as_str())
    {
        reasons.push(Reason::Drift(rules.legacy_config_sha.clone()));
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
            request.clear_orphan_mark = clear_orphan_mark;
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
        clear_orphan_mark: false,
    })
}

#[cfg(test)]
mod tests;
