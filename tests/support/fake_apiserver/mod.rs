//! An in-process fake kube-apiserver for tests.
//!
//! Speaks real HTTP on 127.0.0.1 and copies the documented kube-apiserver
//! behaviour the reconciler relies on: namespaced custom resources and
//! `batch/v1` Jobs with get/list/create/update/patch/delete, server-side
//! apply with managed fields, conflicts and pruning, label selectors,
//! chunked lists, dry runs, resource versions and generations, and
//! cascading deletion of dependents by owner reference. Each behaviour's doc
//! comment names the Kubernetes documentation page it follows.
//!
//! ```ignore
//! let server = FakeApiServer::start();
//! server.register_flink();
//! server.create_namespace("paasta-flinks");
//! let kubeconfig = server.write_kubeconfig(dir.path());
//! ```
//!
//! Modules, one job each: [`server`] (HTTP, routing, faults, request log),
//! [`discovery`] (version and discovery documents), [`namespaces`],
//! [`ops`] (the verbs), [`ssa`] (server-side apply), [`managed`]
//! (managedFields entries and `Update` ownership), [`fields`] (field sets
//! and the `fieldsV1` encoding), [`patch`] (merge and JSON patch),
//! [`selector`] (label/field selectors), [`state`] (storage, commit rules),
//! [`gc`] (delete options and the garbage collector), [`jobs`] (Job status
//! builders, owner references), [`status`] (`Status` errors), [`faults`]
//! (fault and request types), [`raw`] (a tiny blocking HTTP client for raw
//! requests), [`rbac`] (tokens and RBAC authorization: the product's
//! kubeconfig is its ServiceAccount, bound by deploy/rbac.yaml).

mod discovery;
mod faults;
mod fields;
mod gc;
mod jobs;
mod managed;
mod namespaces;
mod ops;
mod patch;
mod raw;
pub mod rbac;
mod selector;
mod server;
mod ssa;
mod state;
mod status;
mod util;

pub use faults::{Fault, RecordedRequest};
pub use gc::{GcAction, GcEvent};
// Used by some test binaries only.
#[allow(unused_imports)]
pub use jobs::{job_complete, job_failed, job_running, owner_reference};
pub use raw::RawResponse;
#[allow(unused_imports)]
pub use rbac::{ADMIN_TOKEN, Rbac, SERVICE_ACCOUNT_TOKEN, SERVICE_ACCOUNT_USER};
pub use state::Denial;

use serde_json::{Value as Json, json};
use server::{Shared, lock};
use state::{Kind, State};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// PaaSTA's Flink custom resource.
pub const FLINK_GROUP: &str = "yelp.com";
pub const FLINK_VERSION: &str = "v1alpha1";
pub const FLINK_KIND: &str = "Flink";
pub const FLINK_PLURAL: &str = "flinks";
pub const FLINK_NAMESPACE: &str = "paasta-flinks";

/// `batch/v1` Jobs (https://kubernetes.io/docs/concepts/workloads/controllers/job/).
pub const JOB_GROUP: &str = "batch";
pub const JOB_VERSION: &str = "v1";
pub const JOB_KIND: &str = "Job";
pub const JOB_PLURAL: &str = "jobs";

/// A running fake apiserver; dropping it stops the server.
pub struct FakeApiServer {
    addr: SocketAddr,
    shared: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeApiServer {
    /// Starts the server on 127.0.0.1 (a free port) in its own thread with
    /// its own tokio runtime, and returns once it is listening. Works from
    /// plain `#[test]`s and from `#[tokio::test]`s alike.
    pub fn start() -> Self {
        let shared: Shared = Arc::new(Mutex::new(State::default()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(shared.clone());
        let thread = std::thread::Builder::new()
            .name("fake-apiserver".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake apiserver runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind 127.0.0.1:0");
                    addr_tx
                        .send(listener.local_addr().expect("local addr"))
                        .expect("report address");
                    tokio::select! {
                        result = axum::serve(listener, app).into_future() => {
                            result.expect("fake apiserver serve");
                        }
                        _ = stop_rx => {}
                    }
                });
                // Drops open connections and requests still sleeping on a
                // delay fault.
                runtime.shutdown_timeout(Duration::from_millis(200));
            })
            .expect("spawn fake apiserver thread");
        let addr = addr_rx.recv().expect("fake apiserver did not start");
        Self {
            addr,
            shared,
            shutdown: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig with one cluster (`server` = [`Self::url`]), context and
    /// current context `fake`, and a user with the token of the reconciler's
    /// ServiceAccount ([`SERVICE_ACCOUNT_USER`]): the product runs with the
    /// permissions deploy/rbac.yaml gives it, as in a cluster
    /// (https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/).
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_yaml_with(SERVICE_ACCOUNT_TOKEN)
    }

    /// [`Self::kubeconfig_yaml`] for the cluster admin (`system:masters`),
    /// for tests of something outside the product's shipped identity.
    pub fn admin_kubeconfig_yaml(&self) -> String {
        self.kubeconfig_yaml_with(ADMIN_TOKEN)
    }

    fn kubeconfig_yaml_with(&self, token: &str) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: fake\n  cluster:\n    server: {url}\n\
             contexts:\n\
             - name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\n\
             users:\n\
             - name: fake\n  user:\n    token: {token}\n\
             preferences: {{}}\n",
            url = self.url()
        )
    }

    /// Writes [`Self::kubeconfig_yaml`] (the ServiceAccount) to
    /// `dir/kubeconfig` and returns the path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, self.kubeconfig_yaml()).expect("write kubeconfig");
        path
    }

    /// Writes [`Self::admin_kubeconfig_yaml`] to `dir/admin-kubeconfig` and
    /// returns the path.
    pub fn write_admin_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("admin-kubeconfig");
        std::fs::write(&path, self.admin_kubeconfig_yaml()).expect("write kubeconfig");
        path
    }

    /// Replaces the RBAC objects the server authorizes with (by default
    /// deploy/rbac.yaml as shipped).
    pub fn set_rbac(&self, rbac: Rbac) {
        lock(&self.shared).auth.rbac = rbac;
    }

    /// Adds RBAC objects, e.g. [`Rbac::namespaces_addon`].
    pub fn grant(&self, extra: Rbac) {
        let mut state = lock(&self.shared);
        let rbac = std::mem::take(&mut state.auth.rbac);
        state.auth.rbac = rbac.with(extra);
    }

    /// Permissive: a request without a token, or with an unknown one, is the
    /// admin. By default it is `system:anonymous` (no token) or 401.
    pub fn set_permissive(&self, permissive: bool) {
        lock(&self.shared).auth.permissive = permissive;
    }

    /// Every request refused with 401 or 403 so far, in order.
    pub fn denied(&self) -> Vec<Denial> {
        lock(&self.shared).denied.clone()
    }

    /// Registers a namespaced resource kind (a custom resource, or a
    /// built-in one served the same way, see [`Self::register_jobs`]).
    /// Requests for an unregistered group/version/plural get 404.
    pub fn register_kind(&self, group: &str, version: &str, kind: &str, plural: &str) {
        let kind = Kind {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
        };
        let mut state = lock(&self.shared);
        if !state.kinds.contains(&kind) {
            state.kinds.push(kind);
        }
    }

    /// Registers `flinks.yelp.com/v1alpha1`.
    pub fn register_flink(&self) {
        self.register_kind(FLINK_GROUP, FLINK_VERSION, FLINK_KIND, FLINK_PLURAL);
    }

    /// Registers `jobs.batch/v1` at `/apis/batch/v1/namespaces/{ns}/jobs`.
    /// Jobs are served like custom resources, with the Job's own rules:
    /// `status` is a subresource (ignored in writes, `{}` on create), a
    /// delete without a propagation policy orphans the Job's dependents (see
    /// [`gc::default_propagation`]); `spec` is neither defaulted nor
    /// validated, see [`jobs`].
    pub fn register_jobs(&self) {
        self.register_kind(JOB_GROUP, JOB_VERSION, JOB_KIND, JOB_PLURAL);
    }

    /// Registers `leases.coordination.k8s.io/v1` at
    /// `/apis/coordination.k8s.io/v1/namespaces/{ns}/leases`
    /// (https://kubernetes.io/docs/concepts/architecture/leases/), served like
    /// a custom resource: a `PUT` carrying a stale `metadata.resourceVersion`
    /// gets 409 Conflict, a `POST` of an existing name 409 AlreadyExists.
    pub fn register_leases(&self) {
        self.register_kind("coordination.k8s.io", "v1", "Lease", "leases");
    }

    /// Registers core/v1 Events at `/api/v1/namespaces/{ns}/events`
    /// (https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/),
    /// served like a custom resource: no validation of the Event's fields,
    /// no `count` aggregation, no TTL.
    pub fn register_events(&self) {
        self.register_kind("", "v1", "Event", "events");
    }

    /// Registers core/v1 Pods at `/api/v1/namespaces/{ns}/pods`, served like
    /// a custom resource: nothing is scheduled or run, `status` (its
    /// `phase`, `reason`) changes only through [`Self::set_status`]; see
    /// [`Self::insert_pod`].
    pub fn register_pods(&self) {
        self.register_kind("", "v1", "Pod", "pods");
    }

    /// Creates a Pod with `labels` in `ns` and sets its `status` to
    /// `{"phase": phase}` plus `reason` when given (e.g. `Failed`/`Evicted`).
    pub fn insert_pod(
        &self,
        ns: &str,
        name: &str,
        labels: Json,
        phase: &str,
        reason: Option<&str>,
    ) {
        self.insert_as(
            "kubelet",
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            }),
        );
        let mut status = json!({"phase": phase});
        if let Some(reason) = reason {
            status["reason"] = json!(reason);
        }
        self.set_status("pods", ns, name, status);
    }

    /// Creates a namespace (no error if it exists).
    pub fn create_namespace(&self, name: &str) {
        let mut state = lock(&self.shared);
        if !state.namespaces.contains_key(name) {
            namespaces::create(&mut state, &json!({"metadata": {"name": name}}), false)
                .expect("create namespace");
        }
    }

    /// The flink set-up most tests want: the Flink kind, Jobs and
    /// `paasta-flinks`.
    pub fn with_flinks() -> Self {
        let server = Self::start();
        server.register_flink();
        server.register_jobs();
        server.create_namespace(FLINK_NAMESPACE);
        server
    }

    fn kind_of(state: &State, object: &Json) -> Kind {
        let api_version = object
            .get("apiVersion")
            .and_then(Json::as_str)
            .expect("object has apiVersion");
        let kind = object
            .get("kind")
            .and_then(Json::as_str)
            .expect("object has kind");
        state
            .kinds
            .iter()
            .find(|k| k.api_version() == api_version && k.kind == kind)
            .cloned()
            .unwrap_or_else(|| panic!("kind {api_version} {kind} is not registered"))
    }

    fn namespace_and_name(object: &Json) -> (String, String) {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Json::as_str)
                .unwrap_or_else(|| panic!("object has {pointer}"))
                .to_owned()
        };
        (text("/metadata/namespace"), text("/metadata/name"))
    }

    /// Creates `object` as an `Update` by `manager`, exactly as a `POST`
    /// with `?fieldManager=<manager>` would (PaaSTA creates its objects that
    /// way). The namespace must exist. Returns the object as served.
    pub fn insert_as(&self, manager: &str, object: Json) -> Json {
        let mut state = lock(&self.shared);
        let kind = Self::kind_of(&state, &object);
        let (ns, _) = Self::namespace_and_name(&object);
        ops::create(&mut state, &kind, &ns, object, manager, false)
            .unwrap_or_else(|e| panic!("insert_as: {}", e.message))
            .1
    }

    /// Replaces `object` as an `Update` by `manager`, as a `PUT` would.
    /// `metadata.resourceVersion` may be omitted. Returns the object as served.
    pub fn replace_as(&self, manager: &str, object: Json) -> Json {
        let mut state = lock(&self.shared);
        let kind = Self::kind_of(&state, &object);
        let (ns, name) = Self::namespace_and_name(&object);
        ops::replace(&mut state, &kind, &ns, &name, object, manager, false)
            .unwrap_or_else(|e| panic!("replace_as: {}", e.message))
            .1
    }

    /// Server-side applies `config` as `manager` (force), as a `PATCH`
    /// `application/apply-patch+yaml` would. Returns the object as served.
    pub fn apply_as(&self, manager: &str, config: Json) -> Json {
        let mut state = lock(&self.shared);
        let kind = Self::kind_of(&state, &config);
        let (ns, name) = Self::namespace_and_name(&config);
        ops::apply(&mut state, &kind, &ns, &name, &config, manager, true, false)
            .unwrap_or_else(|e| panic!("apply_as: {}", e.message))
            .1
    }

    /// The object as served, if it exists.
    pub fn object(&self, plural: &str, ns: &str, name: &str) -> Option<Json> {
        let state = lock(&self.shared);
        let kind = state.kind_by_plural(plural)?;
        ops::get(&state, &kind, ns, name).ok()
    }

    /// Every object of a resource in a namespace, as served, by name.
    pub fn objects(&self, plural: &str, ns: &str) -> Vec<Json> {
        let state = lock(&self.shared);
        state
            .objects
            .iter()
            .filter(|((_, p, o_ns, _), _)| p == plural && o_ns == ns)
            .map(|(_, stored)| stored.served())
            .collect()
    }

    /// Deletes an object directly (no request recorded, no garbage
    /// collection of its dependents); whether it existed.
    pub fn remove_object(&self, plural: &str, ns: &str, name: &str) -> bool {
        let mut state = lock(&self.shared);
        let Some(kind) = state.kind_by_plural(plural) else {
            return false;
        };
        let removed = state.objects.remove(&State::key(&kind, ns, name)).is_some();
        if removed {
            state.bump();
        }
        removed
    }

    /// Sets `status` as a write to the status subresource would: a new
    /// `resourceVersion`, no `generation` change
    /// (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource).
    /// Panics when the object does not exist.
    pub fn set_status(&self, plural: &str, ns: &str, name: &str, status: Json) {
        let mut state = lock(&self.shared);
        let kind = state
            .kind_by_plural(plural)
            .unwrap_or_else(|| panic!("{plural} is not registered"));
        let key = State::key(&kind, ns, name);
        let Some(mut stored) = state.objects.get(&key).cloned() else {
            panic!("set_status: {plural} {ns}/{name} does not exist");
        };
        if stored.object.get("status") == Some(&status) {
            return;
        }
        let rv = state.bump();
        stored.object["status"] = status;
        stored.object["metadata"]["resourceVersion"] = json!(rv);
        state.objects.insert(key, stored);
    }

    /// [`Self::set_status`] for a Job: `status` as the Job controller would
    /// write it, e.g. [`job_running`], [`job_complete`], [`job_failed`].
    pub fn set_job_status(&self, ns: &str, name: &str, status: Json) {
        self.set_status(JOB_PLURAL, ns, name, status);
    }

    /// Every action of the garbage collector so far, in order; these are
    /// not requests and do not appear in [`Self::requests`].
    pub fn gc_events(&self) -> Vec<GcEvent> {
        lock(&self.shared).gc.clone()
    }

    /// The objects the garbage collector deleted, in order.
    pub fn gc_deleted(&self) -> Vec<GcEvent> {
        lock(&self.shared)
            .gc
            .iter()
            .filter(|e| e.action == GcAction::Deleted)
            .cloned()
            .collect()
    }

    /// The latest `resourceVersion` handed out.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared).resource_version
    }

    /// Queues a fault, see [`Fault`].
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared).faults.push(fault);
    }

    /// Faults not used up yet.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared).faults.len()
    }

    pub fn clear_faults(&self) {
        lock(&self.shared).faults.clear();
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared).requests.clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared).requests.clear();
    }

    /// How many requests had this method (any when empty) and a path
    /// containing `path_contains`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        lock(&self.shared)
            .requests
            .iter()
            .filter(|r| method.is_empty() || r.method.eq_ignore_ascii_case(method))
            .filter(|r| r.path.contains(path_contains))
            .count()
    }

    /// Requests that could change state: not GET, not a dry run, and not
    /// the recording of a core/v1 Event (an audit record, see
    /// [`Self::event_writes`]).
    pub fn writes(&self) -> Vec<RecordedRequest> {
        lock(&self.shared)
            .requests
            .iter()
            .filter(|r| r.is_write() && !r.is_dry_run() && !is_event_path(&r.path))
            .cloned()
            .collect()
    }

    /// Requests that recorded (or tried to record) a core/v1 Event.
    pub fn event_writes(&self) -> Vec<RecordedRequest> {
        lock(&self.shared)
            .requests
            .iter()
            .filter(|r| r.is_write() && is_event_path(&r.path))
            .cloned()
            .collect()
    }

    /// Sends one raw HTTP/1.1 request (blocking; `path` may carry a query)
    /// as the admin: raw requests test the fake or set a test up.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&str>,
    ) -> RawResponse {
        raw::request(
            self.addr,
            method,
            path,
            content_type,
            body,
            None,
            Some(ADMIN_TOKEN),
        )
    }

    /// [`Self::raw`] with `Authorization: Bearer <token>`, or none.
    pub fn raw_with_token(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&str>,
    ) -> RawResponse {
        raw::request(self.addr, method, path, content_type, body, None, token)
    }

    /// [`Self::raw`] with a `User-Agent` header.
    pub fn raw_as(
        &self,
        user_agent: &str,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&str>,
    ) -> RawResponse {
        raw::request(
            self.addr,
            method,
            path,
            content_type,
            body,
            Some(user_agent),
            Some(ADMIN_TOKEN),
        )
    }
}

/// `/api/v1/namespaces/{ns}/events[/{name}]`.
fn is_event_path(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(
        segments.as_slice(),
        ["api", "v1", "namespaces", _, "events", ..]
    )
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
