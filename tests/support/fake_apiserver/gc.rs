//! Cascading deletion: what a DELETE does to the owner's dependents, and the
//! `DeleteOptions` that choose it.
//!
//! Follows https://kubernetes.io/docs/concepts/architecture/garbage-collection/
//! and https://kubernetes.io/docs/tasks/administer-cluster/use-cascading-deletion/.
//! A dependent of an owner is an object in the owner's namespace with an
//! entry in `metadata.ownerReferences` whose `uid` is the owner's
//! (https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/;
//! cross-namespace owner references are disallowed by design).
//!
//! The real garbage collector works asynchronously, from watches; the fake
//! runs it synchronously inside the DELETE request, so what a test sees after
//! the response is what the collector settles at. Its work is not a client
//! request: it stays out of the request log and is recorded as [`GcEvent`]s.
//! Finalizers are not modelled: an owner deleted with `Foreground` or
//! `Orphan` is gone when the response arrives (the real apiserver first
//! answers with the owner carrying `deletionTimestamp` and the
//! `foregroundDeletion` or `orphan` finalizer), and the answer is the
//! `Success` Status of an immediate delete.

use super::managed;
use super::state::{Kind, ObjectKey, State, Stored, metadata};
use super::status::ApiError;
use super::util::now_rfc3339;
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};

/// The manager the garbage collector's writes are recorded under
/// (kube-controller-manager runs the collector).
const GC_MANAGER: &str = "kube-controller-manager";

/// `DeleteOptions.propagationPolicy`
/// (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/delete-options/).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents are kept; their owner references to the owner are removed.
    Orphan,
    /// The owner goes at once, then the collector deletes the dependents.
    Background,
    /// The collector deletes the dependents, then the owner goes.
    Foreground,
}

/// What the garbage collector did to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcAction {
    /// Deleted: none of its owners was left.
    Deleted,
    /// Kept, with its owner references to the deleted owner removed: the
    /// owner was deleted with `Orphan`, or the object has another owner
    /// that still exists.
    Orphaned,
}

/// One action of the garbage collector, in the order taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcEvent {
    pub action: GcAction,
    /// The object's API group (`batch`, `yelp.com`) and resource (`jobs`).
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The deleted owner whose dependent this object was.
    pub owner_uid: String,
}

/// The options of a DELETE that decide the dependents' fate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    pub propagation_policy: Option<String>,
    /// The deprecated `orphanDependents`.
    pub orphan_dependents: Option<bool>,
}

fn bad_bool(value: &str) -> ApiError {
    ApiError::bad_request(format!(
        "orphanDependents: invalid value {value:?}: expected true or false"
    ))
}

impl DeleteOptions {
    /// Read from a `DeleteOptions` body when the request has one, else from
    /// the query parameters: the apiserver decodes the body and then ignores
    /// the query, as its DELETE handler does (a `DeleteOptions` can be sent
    /// either way:
    /// https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/delete-options/
    /// and the `curl` examples in
    /// https://kubernetes.io/docs/tasks/administer-cluster/use-cascading-deletion/).
    /// A body that is not an object, or a field of the wrong type, is 400.
    pub fn parse(body: &Json, query: &BTreeMap<String, String>) -> Result<Self, ApiError> {
        match body {
            Json::Null => {
                let orphan_dependents = match query.get("orphanDependents").map(String::as_str) {
                    None | Some("") => None,
                    Some("true") => Some(true),
                    Some("false") => Some(false),
                    Some(other) => return Err(bad_bool(other)),
                };
                Ok(Self {
                    propagation_policy: query
                        .get("propagationPolicy")
                        .filter(|p| !p.is_empty())
                        .cloned(),
                    orphan_dependents,
                })
            }
            Json::Object(map) => {
                let propagation_policy = match map.get("propagationPolicy") {
                    None | Some(Json::Null) => None,
                    Some(Json::String(p)) => Some(p.clone()),
                    Some(other) => {
                        return Err(ApiError::bad_request(format!(
                            "propagationPolicy: expected a string, got {other}"
                        )));
                    }
                };
                let orphan_dependents = match map.get("orphanDependents") {
                    None | Some(Json::Null) => None,
                    Some(Json::Bool(b)) => Some(*b),
                    Some(other) => return Err(bad_bool(&other.to_string())),
                };
                Ok(Self {
                    propagation_policy,
                    orphan_dependents,
                })
            }
            _ => Err(ApiError::bad_request(
                "the body of a DELETE must be a DeleteOptions object",
            )),
        }
    }

    /// The policy in force: `propagationPolicy`, else `orphanDependents`
    /// (`true` is `Orphan`, `false` is `Background`), else the resource's
    /// default ([`default_propagation`]). Both set, or an unknown policy, is
    /// 422 `DeleteOptions.meta.k8s.io "" is invalid`
    /// (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/delete-options/:
    /// "Either this field or OrphanDependents may be set, but not both").
    pub fn propagation(&self, kind: &Kind) -> Result<Propagation, ApiError> {
        let invalid = |detail: String| {
            ApiError::invalid(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: {detail}"
            ))
            .details(json!({"group": "meta.k8s.io", "kind": "DeleteOptions", "name": ""}))
        };
        match (self.propagation_policy.as_deref(), self.orphan_dependents) {
            (Some(policy), Some(_)) => Err(invalid(format!(
                "propagationPolicy: Invalid value: {policy:?}: orphanDependents and deletionPropagation cannot be both set"
            ))),
            (Some("Orphan"), None) => Ok(Propagation::Orphan),
            (Some("Background"), None) => Ok(Propagation::Background),
            (Some("Foreground"), None) => Ok(Propagation::Foreground),
            (Some(other), None) => Err(invalid(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \
                 \"Foreground\", \"Background\", \"Orphan\", \"nil\""
            ))),
            (None, Some(true)) => Ok(Propagation::Orphan),
            (None, Some(false)) => Ok(Propagation::Background),
            (None, None) => Ok(default_propagation(kind)),
        }
    }
}

/// The policy of a DELETE that names none: `Background` ("By default,
/// Kubernetes uses background cascading deletion",
/// https://kubernetes.io/docs/concepts/architecture/garbage-collection/#background-deletion),
/// except for `batch/v1` Jobs, whose default is `Orphan` for backwards
/// compatibility: a Job deleted without a policy leaves its Pods (the
/// apiserver warns "child pods are preserved by default when jobs are
/// deleted"; kubectl sends `Background`, which is why
/// https://kubernetes.io/docs/concepts/workloads/controllers/job/#job-termination-and-cleanup
/// says deleting a Job with kubectl deletes its Pods).
pub fn default_propagation(kind: &Kind) -> Propagation {
    if kind.is_job() {
        Propagation::Orphan
    } else {
        Propagation::Background
    }
}

fn uid_of(object: &Json) -> Option<&str> {
    object.pointer("/metadata/uid").and_then(Json::as_str)
}

fn owner_uids(object: &Json) -> Vec<String> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Json::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Json::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The keys of the objects in `ns` with an owner reference to `owner_uid`.
fn dependents(state: &State, ns: &str, owner_uid: &str) -> Vec<ObjectKey> {
    state
        .objects
        .iter()
        .filter(|((_, _, o_ns, _), stored)| {
            o_ns == ns && owner_uids(&stored.object).iter().any(|u| u == owner_uid)
        })
        .map(|(key, _)| key.clone())
        .collect()
}

/// Whether an owner reference still names a live owner: an object in the
/// dependent's namespace with that uid that is not itself being deleted.
fn solid(state: &State, ns: &str, uid: &str, deleting: &BTreeSet<String>) -> bool {
    !deleting.contains(uid)
        && state
            .objects
            .iter()
            .any(|((_, _, o_ns, _), s)| o_ns == ns && uid_of(&s.object) == Some(uid))
}

fn kind_of_key(state: &State, key: &ObjectKey) -> Kind {
    state
        .kinds
        .iter()
        .find(|k| k.group == key.0 && k.plural == key.1)
        .cloned()
        .expect("stored objects are of registered kinds")
}

fn event(action: GcAction, key: &ObjectKey, uid: &str, owner_uid: &str) -> GcEvent {
    GcEvent {
        action,
        group: key.0.clone(),
        plural: key.1.clone(),
        namespace: key.2.clone(),
        name: key.3.clone(),
        uid: uid.to_owned(),
        owner_uid: owner_uid.to_owned(),
    }
}

/// Removes from the object at `key` its owner references to the uids in
/// `remove`, as the collector's patch does: a new `resourceVersion`, no
/// `generation` change (metadata only); `ownerReferences` is dropped when it
/// ends up empty, and then leaves every managedFields entry.
fn strip_references(
    state: &mut State,
    key: &ObjectKey,
    remove: &BTreeSet<String>,
    owner_uid: &str,
) {
    let Some(live) = state.objects.get(key).cloned() else {
        return;
    };
    let kind = kind_of_key(state, key);
    let mut object = live.object.clone();
    let kept: Vec<Json> = object
        .pointer("/metadata/ownerReferences")
        .and_then(Json::as_array)
        .map(|refs| {
            refs.iter()
                .filter(|r| {
                    !r.get("uid")
                        .and_then(Json::as_str)
                        .is_some_and(|u| remove.contains(u))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut managed = live.managed.clone();
    if kept.is_empty() {
        metadata(&mut object).remove("ownerReferences");
        managed::record_update(
            &mut managed,
            &live.object,
            &object,
            GC_MANAGER,
            &kind.api_version(),
            &now_rfc3339(),
        );
    } else {
        // The fake treats lists as atomic; the entry that owns the list
        // keeps it, as the owners of the other items of the real
        // (uid-keyed) list keep theirs.
        metadata(&mut object).insert("ownerReferences".into(), Json::Array(kept));
    }
    state.commit(&kind, &key.2, &key.3, Stored { object, managed }, false);
    let uid = uid_of(&live.object).unwrap_or_default().to_owned();
    state
        .gc
        .push(event(GcAction::Orphaned, key, &uid, owner_uid));
}

/// Collects the dependents of the deleted (or, in foreground, being
/// deleted) owner `owner_uid` in `ns`. A dependent with another solid owner
/// only loses its references to the dangling ones; any other is deleted,
/// and its own dependents are collected in turn, before it (`Foreground`)
/// or after it (`Background`). The collector deletes dependents with an
/// explicit policy, so a dependent Job's own dependents go too.
fn collect(
    state: &mut State,
    ns: &str,
    owner_uid: &str,
    foreground: bool,
    deleting: &mut BTreeSet<String>,
) {
    for key in dependents(state, ns, owner_uid) {
        let Some(stored) = state.objects.get(&key) else {
            continue;
        };
        let uid = uid_of(&stored.object).unwrap_or_default().to_owned();
        if deleting.contains(&uid) {
            continue;
        }
        let (solid_owners, dangling): (Vec<String>, Vec<String>) = owner_uids(&stored.object)
            .into_iter()
            .partition(|u| solid(state, ns, u, deleting));
        if !solid_owners.is_empty() {
            strip_references(state, &key, &dangling.into_iter().collect(), owner_uid);
            continue;
        }
        deleting.insert(uid.clone());
        if foreground {
            collect(state, ns, &uid, true, deleting);
        }
        if state.objects.remove(&key).is_some() {
            state.bump();
            state
                .gc
                .push(event(GcAction::Deleted, &key, &uid, owner_uid));
        }
        if !foreground {
            collect(state, ns, &uid, false, deleting);
        }
    }
}

/// Deletes the object at `key` (it must exist) with `policy`, and lets the
/// collector handle its dependents:
/// - `Background`: the owner goes, then its dependents
///   (https://kubernetes.io/docs/concepts/architecture/garbage-collection/#background-deletion);
/// - `Foreground`: the dependents go, then the owner
///   (https://kubernetes.io/docs/concepts/architecture/garbage-collection/#foreground-deletion;
///   the fake deletes every dependent, blocking or not, before the owner);
/// - `Orphan`: the dependents stay and lose their owner references to it
///   (https://kubernetes.io/docs/concepts/architecture/garbage-collection/#orphaned-dependents).
pub fn delete(state: &mut State, key: &ObjectKey, policy: Propagation) {
    let Some(owner) = state.objects.get(key) else {
        return;
    };
    let ns = key.2.clone();
    let uid = uid_of(&owner.object).unwrap_or_default().to_owned();
    let mut deleting = BTreeSet::from([uid.clone()]);
    match policy {
        Propagation::Background => {
            state.objects.remove(key);
            state.bump();
            collect(state, &ns, &uid, false, &mut deleting);
        }
        Propagation::Foreground => {
            collect(state, &ns, &uid, true, &mut deleting);
            state.objects.remove(key);
            state.bump();
        }
        Propagation::Orphan => {
            for dependent in dependents(state, &ns, &uid) {
                strip_references(state, &dependent, &BTreeSet::from([uid.clone()]), &uid);
            }
            state.objects.remove(key);
            state.bump();
        }
    }
}
