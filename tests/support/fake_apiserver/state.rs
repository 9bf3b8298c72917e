//! What the fake stores, and how a write is committed.

use super::faults::{Fault, RecordedRequest};
use super::gc::GcEvent;
use super::managed::Managed;
use super::rbac::Auth;
use super::util::{new_uid, normalize_numbers, now_rfc3339};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;

/// A registered custom resource kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
}

impl Kind {
    /// `group/version`, or `version` for the core group (`""`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            return self.version.clone();
        }
        format!("{}/{}", self.group, self.version)
    }

    /// `batch/v1` Jobs.
    pub fn is_job(&self) -> bool {
        self.group == "batch" && self.version == "v1" && self.plural == "jobs"
    }
}

/// An object as stored: the object without `metadata.managedFields`, and
/// its entries decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub object: Json,
    pub managed: Managed,
}

impl Stored {
    /// The object as served: entries encoded into `metadata.managedFields`
    /// (omitted when there are none) and integral floats as integers.
    pub fn served(&self) -> Json {
        let mut object = self.object.clone();
        if !self.managed.0.is_empty()
            && let Some(meta) = object.get_mut("metadata").and_then(Json::as_object_mut)
        {
            meta.insert("managedFields".to_owned(), self.managed.encode());
        }
        normalize_numbers(&mut object);
        object
    }
}

/// (group, plural, namespace, name): objects iterate by namespace/name
/// within a resource.
pub type ObjectKey = (String, String, String, String);

/// Everything the fake knows.
#[derive(Debug, Default)]
pub struct State {
    pub kinds: Vec<Kind>,
    pub namespaces: BTreeMap<String, Json>,
    pub objects: BTreeMap<ObjectKey, Stored>,
    /// The last `resourceVersion` handed out, shared by every object
    /// (etcd's revision).
    pub resource_version: u64,
    pub requests: Vec<RecordedRequest>,
    pub faults: Vec<Fault>,
    /// What the garbage collector did, in order (not client requests).
    pub gc: Vec<GcEvent>,
    /// Who may call (tokens, RBAC), see [`super::rbac`].
    pub auth: Auth,
    /// Requests refused with 401/403, in order.
    pub denied: Vec<Denial>,
}

/// A request answered 401 or 403 by authentication or authorization.
#[derive(Clone, Debug, PartialEq)]
pub struct Denial {
    pub method: String,
    pub path: String,
    pub user: String,
    pub code: u16,
    /// The `Status` message answered.
    pub message: String,
}

/// The object's `metadata`, created as `{}` when missing.
pub fn metadata(object: &mut Json) -> &mut Map<String, Json> {
    if !object.is_object() {
        *object = json!({});
    }
    let root = object.as_object_mut().expect("object checked above");
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Json::Object(Map::new()));
    if !meta.is_object() {
        *meta = Json::Object(Map::new());
    }
    meta.as_object_mut().expect("metadata checked above")
}

/// Everything but `metadata` and `status`: what `generation` counts.
fn content(object: &Json) -> Json {
    let mut content = object.clone();
    if let Some(map) = content.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    content
}

impl State {
    pub fn kind(&self, group: &str, version: &str, plural: &str) -> Option<Kind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
            .cloned()
    }

    pub fn kind_by_plural(&self, plural: &str) -> Option<Kind> {
        self.kinds.iter().find(|k| k.plural == plural).cloned()
    }

    pub fn key(kind: &Kind, ns: &str, name: &str) -> ObjectKey {
        (
            kind.group.clone(),
            kind.plural.clone(),
            ns.to_owned(),
            name.to_owned(),
        )
    }

    /// Hands out the next `resourceVersion`.
    pub fn bump(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    /// Stores the result of a write and returns (created, object as served).
    ///
    /// Server-owned metadata is the server's: `uid` and `creationTimestamp`
    /// are set on create and kept after; `generation` is 1 on create and
    /// grows by one when anything outside `metadata` and `status` changes
    /// (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource:
    /// "The .metadata.generation value is incremented for all changes,
    /// except for changes to .metadata or .status"); `status` is kept from
    /// the live object because it is a subresource (same page). A create
    /// drops the `status` sent; a Job is created with an empty `status: {}`
    /// until its controller writes one, as the Job API serves it (its
    /// `JobStatus` is a struct, never omitted:
    /// https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/job-v1/#JobStatus).
    ///
    /// Every write that changes the stored object takes a new
    /// `resourceVersion` from the one global counter; a write that changes
    /// nothing (object and managedFields identical) stores nothing and keeps
    /// the old one
    /// (https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions).
    /// A dry run (https://kubernetes.io/docs/reference/using-api/api-concepts/#dry-run)
    /// computes the same answer but stores nothing and takes no
    /// `resourceVersion` (a dry-run create answers without one).
    pub fn commit(
        &mut self,
        kind: &Kind,
        ns: &str,
        name: &str,
        mut new: Stored,
        dry_run: bool,
    ) -> (bool, Json) {
        let key = Self::key(kind, ns, name);
        new.managed.sort();
        let meta = metadata(&mut new.object);
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(ns));
        meta.remove("managedFields");
        let created = match self.objects.get(&key) {
            Some(old) => {
                let old_meta = old.object.get("metadata");
                let meta = metadata(&mut new.object);
                for field in ["uid", "creationTimestamp", "resourceVersion", "generation"] {
                    match old_meta.and_then(|m| m.get(field)) {
                        Some(value) => meta.insert(field.into(), value.clone()),
                        None => meta.remove(field),
                    };
                }
                if let Some(map) = new.object.as_object_mut() {
                    match old.object.get("status") {
                        Some(status) => map.insert("status".into(), status.clone()),
                        None => map.remove("status"),
                    };
                }
                if content(&old.object) != content(&new.object) {
                    let generation = old_meta
                        .and_then(|m| m.get("generation"))
                        .and_then(Json::as_i64)
                        .unwrap_or(0);
                    metadata(&mut new.object).insert("generation".into(), json!(generation + 1));
                }
                if *old == new {
                    return (false, old.served());
                }
                false
            }
            None => {
                meta.insert("uid".into(), json!(new_uid()));
                meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
                meta.insert("generation".into(), json!(1));
                meta.remove("resourceVersion");
                if let Some(map) = new.object.as_object_mut() {
                    if kind.is_job() {
                        map.insert("status".into(), json!({}));
                    } else {
                        map.remove("status");
                    }
                }
                true
            }
        };
        if !dry_run {
            let rv = self.bump();
            metadata(&mut new.object).insert("resourceVersion".into(), json!(rv));
            let served = new.served();
            self.objects.insert(key, new);
            return (created, served);
        }
        (created, new.served())
    }
}
