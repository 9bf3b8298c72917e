//! The plan/apply and prune scenarios of `tests/apply_scenarios.rs` and
//! `tests/prune_scenarios.rs`, through the real binary against a real
//! Kubernetes API server (kind, k3d). Every test is ignored by default
//! (`cargo test` reports them as ignored, not passed); run them with
//! `--ignored` and `FLINK_GITOPS_E2E_KUBECONFIG` naming a kubeconfig:
//!
//! ```sh
//! kind create cluster --name flink-gitops
//! kind get kubeconfig --name flink-gitops > /tmp/kind.kubeconfig
//! FLINK_GITOPS_E2E_KUBECONFIG=/tmp/kind.kubeconfig cargo test --test e2e -- --ignored
//! ```
//!
//! **Setup.** The suite prepares the cluster itself, once per run: it
//! installs the Flink CRD from `deploy/crds/flink.yaml` when no
//! `flinks.yelp.com` CRD exists (an existing one, such as the operator's, is
//! left alone) and waits for it to be served, and creates the namespace
//! `paasta-flinks` when it is missing. The kubeconfig's current context must
//! be allowed to do that, to create and delete Flink objects, Jobs, Events
//! and namespaces, and to patch the status of Jobs and Flink objects (kind's
//! admin context is).
//!
//! **Isolation.** Test `t` uses its own cluster name `e2e-t` (the
//! `paasta.yelp.com/cluster` label, so no other test's objects are ever its
//! orphans) and service names `e2e_t_*` (objects `e2e--t--*`). It deletes
//! leftovers of an earlier run of the same test before it starts, and its
//! Flink objects, shutdown Jobs, Events (and namespace, for the
//! namespace-creation test) when it ends, even when it fails. Tests may run
//! in parallel.
//!
//! **What differs from the fake API server.**
//! - There is no Flink operator and no JobManager. The shutdown Jobs come
//!   from a `prune.job_template` with `suspend: true`, so no pod ever runs,
//!   and a test plays the Job controller by patching the Job's `status`
//!   subresource to `Complete` or `Failed` (the built-in Job controller
//!   leaves a finished Job alone). The default template's stop script is
//!   covered by `tests/shutdown_job_script.rs`.
//! - The operator's `status` and dashboard annotation are written by the
//!   test under the manager `flink-operator`.
//! - PaaSTA's writes are real requests made the way the Kubernetes Python
//!   client makes them: a POST (create) or a PUT of the whole object
//!   (replace) without a `fieldManager`, with the client's user agent
//!   `OpenAPI-Generator/<version>/python`, so the API server itself derives
//!   the manager name and records an `Update` entry.
//! - Requests are not counted: "writes nothing" is asserted as an unchanged
//!   `resourceVersion` (and `generation`, `managedFields`).
//! - Fault injection (429 with `Retry-After`, 500s, network errors, and the
//!   retry counts that follow) is not possible against a real API server;
//!   those scenarios run only against the fake API server
//!   (`tests/apply_scenarios.rs`, `tests/fake_apiserver.rs`).

mod support;

use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use support::scenario::{Run, WITHOUT_CANARY as ONE, path_str, summary_count as count};

const KUBECONFIG_VAR: &str = "FLINK_GITOPS_E2E_KUBECONFIG";
const NAMESPACE: &str = "paasta-flinks";
const SHA: &str = "cccccccccccccccccccccccccccccccccccccccc";
const CRD: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/flinks.yelp.com";
/// What the Kubernetes Python client sends; the API server names the
/// manager of its writes after the part before the first `/`.
const PAASTA_USER_AGENT: &str = "OpenAPI-Generator/31.0.0/python";
/// A shutdown Job that never starts a pod: there is no JobManager to stop.
const SUSPENDED_JOB: &str = "{apiVersion: batch/v1, kind: Job, spec: {suspend: true, backoffLimit: 0, \
     template: {spec: {restartPolicy: Never, containers: [{name: shutdown, image: 'registry.k8s.io/pause:3.10'}]}}}}";
const BACKGROUND: &str =
    r#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"}"#;

/// Two instances sharing a template (`main`, `canary`): the scenarios'
/// `alpha` without its deploy group, so that both are deployed. `ONE` is
/// it with `canary` removed from git.
static TWO: LazyLock<String> = LazyLock::new(|| format!("{ONE}canary:\n  <<: *base\n"));

// ---------------------------------------------------------------------------
// The API server, over HTTP through a kube client.

struct Reply {
    code: u16,
    body: Json,
}

struct Kube {
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
}

impl Kube {
    fn connect(kubeconfig: &Path) -> Result<Kube, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let client = runtime.block_on(async {
            let file = kube::config::Kubeconfig::read_from(kubeconfig)
                .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
            let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
            kube::Client::try_from(config).map_err(|e| e.to_string())
        })?;
        Ok(Kube { runtime, client })
    }

    /// One request; any status is returned, only transport errors fail.
    fn request(
        &self,
        method: &str,
        uri: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        user_agent: Option<&str>,
    ) -> Result<Reply, String> {
        let mut builder = http::Request::builder().method(method).uri(uri);
        if let Some(content_type) = content_type {
            builder = builder.header(http::header::CONTENT_TYPE, content_type);
        }
        if let Some(user_agent) = user_agent {
            builder = builder.header(http::header::USER_AGENT, user_agent);
        }
        let request = builder.body(body).map_err(|e| e.to_string())?;
        self.runtime.block_on(async {
            let response = self
                .client
                .send(request.map(kube::client::Body::from))
                .await
                .map_err(|e| format!("{method} {uri}: {e}"))?;
            let code = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect_bytes()
                .await
                .map_err(|e| format!("{method} {uri}: {e}"))?;
            Ok(Reply {
                code,
                body: serde_json::from_slice(&bytes).unwrap_or(Json::Null),
            })
        })
    }

    fn call(
        &self,
        method: &str,
        uri: &str,
        content_type: Option<&str>,
        body: Option<&Json>,
    ) -> Reply {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.request(method, uri, content_type, bytes, None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn get(&self, uri: &str) -> Reply {
        self.call("GET", uri, None, None)
    }

    /// Like [`Self::call`], failing the test unless the answer is 2xx.
    fn ok(&self, method: &str, uri: &str, content_type: Option<&str>, body: Option<&Json>) -> Json {
        let reply = self.call(method, uri, content_type, body);
        assert!(
            (200..300).contains(&reply.code),
            "{method} {uri}: {} {}",
            reply.code,
            reply.body
        );
        reply.body
    }

    /// GET `uri`: the object, `None` when it does not exist.
    fn object(&self, uri: &str) -> Option<Json> {
        let reply = self.get(uri);
        match reply.code {
            200 => Some(reply.body),
            404 => None,
            code => panic!("GET {uri}: {code} {}", reply.body),
        }
    }

    /// The items of `collection` that a `labelSelector` or `fieldSelector`
    /// (`selector`) of `value` selects.
    fn select(&self, collection: &str, selector: &str, value: &str) -> Vec<Json> {
        let list = self.ok(
            "GET",
            &format!("{collection}?{selector}={}", query(value)),
            None,
            None,
        );
        items(&list)
    }

    /// DELETE with background propagation; errors are ignored (cleanup).
    fn delete_quietly(&self, uri: &str) {
        let _ = self.request(
            "DELETE",
            uri,
            Some("application/json"),
            BACKGROUND.as_bytes().to_vec(),
            None,
        );
    }

    /// The names of the items of a collection that start with `prefix`;
    /// nothing on errors (cleanup).
    fn names_in(&self, collection: &str, prefix: &str) -> Vec<String> {
        let Ok(reply) = self.request("GET", collection, None, Vec::new(), None) else {
            return Vec::new();
        };
        items(&reply.body)
            .iter()
            .filter_map(|item| item.pointer("/metadata/name").and_then(Json::as_str))
            .filter(|name| name.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }
}

fn flinks_path(namespace: &str) -> String {
    format!("/apis/yelp.com/v1alpha1/namespaces/{namespace}/flinks")
}

fn jobs_path(namespace: &str) -> String {
    format!("/apis/batch/v1/namespaces/{namespace}/jobs")
}

fn events_path(namespace: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/events")
}

/// Percent-encodes a query value (label and field selectors).
fn query(value: &str) -> String {
    value
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace('=', "%3D")
        .replace(',', "%2C")
}

fn items(list: &Json) -> Vec<Json> {
    list.get("items")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default()
}

fn condition_true(object: &Json, kind: &str) -> bool {
    object
        .pointer("/status/conditions")
        .and_then(Json::as_array)
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == kind && c["status"] == "True")
        })
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ---------------------------------------------------------------------------
// Cluster setup, once per test process.

static READY: OnceLock<Result<(), String>> = OnceLock::new();

/// Installs the CRD when it is missing and waits until it is served;
/// creates `paasta-flinks` when it is missing.
fn setup(kubeconfig: &Path) -> Result<(), String> {
    let kube = Kube::connect(kubeconfig)?;
    let get = |uri: &str| kube.request("GET", uri, None, Vec::new(), None);
    let crd = get(CRD)?;
    match crd.code {
        200 => {}
        404 => {
            let manifest =
                std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/crds/flink.yaml"))
                    .map_err(|e| format!("deploy/crds/flink.yaml: {e}"))?;
            let reply = kube.request(
                "PATCH",
                &format!("{CRD}?fieldManager=flink-gitops-e2e"),
                Some("application/apply-patch+yaml"),
                manifest,
                None,
            )?;
            if !(200..300).contains(&reply.code) {
                return Err(format!("installing the CRD: {} {}", reply.code, reply.body));
            }
        }
        code => return Err(format!("GET {CRD}: {code} {}", crd.body)),
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let pause = || std::thread::sleep(Duration::from_millis(500));
    while !condition_true(&get(CRD)?.body, "Established") {
        if Instant::now() > deadline {
            return Err("the Flink CRD is not Established".to_owned());
        }
        pause();
    }
    let namespace = format!("/api/v1/namespaces/{NAMESPACE}");
    loop {
        let reply = get(&namespace)?;
        match reply.code {
            200 if reply.body.pointer("/status/phase") != Some(&json!("Terminating")) => break,
            404 => {
                let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
                let created = kube.request(
                    "POST",
                    "/api/v1/namespaces",
                    Some("application/json"),
                    body.to_string().into_bytes(),
                    None,
                )?;
                if !matches!(created.code, 201 | 409) {
                    return Err(format!(
                        "creating {NAMESPACE}: {} {}",
                        created.code, created.body
                    ));
                }
            }
            200 => {} // terminating: wait until it is gone, then create it
            code => return Err(format!("GET {namespace}: {code} {}", reply.body)),
        }
        if Instant::now() > deadline {
            return Err(format!("namespace {NAMESPACE} is not usable"));
        }
        pause();
    }
    while get(&flinks_path(NAMESPACE))?.code != 200 {
        if Instant::now() > deadline {
            return Err("Flink objects are not served".to_owned());
        }
        pause();
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// One test's soa-configs, configuration, binary runs and objects.

/// `(manager, operation)` of every `managedFields` entry.
fn managers(object: &Json) -> Vec<(String, String)> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Json::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let text = |key: &str| e[key].as_str().unwrap_or_default().to_owned();
                    (text("manager"), text("operation"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `value` with every number as a float: the API server hands an integral
/// float back as an integer (`2.0` → `2`), and those are equal.
fn numbers_as_floats(value: &Json) -> Json {
    match value {
        Json::Number(n) => n.as_f64().map_or(Json::Null, |f| json!(f)),
        Json::Array(items) => Json::Array(items.iter().map(numbers_as_floats).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), numbers_as_floats(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Both of PaaSTA's `desired_state` annotations of `object` are `state`.
fn assert_desired_state(object: &Json, state: &str) {
    for key in ["paasta.yelp.com/desired_state", "yelp.com/desired_state"] {
        assert_eq!(annotation(object, key), Some(state), "{key}");
    }
}

fn pair(manager: &str, operation: &str) -> (String, String) {
    (manager.to_owned(), operation.to_owned())
}

fn annotation<'a>(object: &'a Json, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Json::as_str)
}

fn text<'a>(object: &'a Json, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Json::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {object}"))
}

fn deployments(service: &str, cluster: &str, instances: &[&str]) -> String {
    let mut groups = serde_json::Map::new();
    let mut controls = serde_json::Map::new();
    for instance in instances {
        groups.insert(
            format!("{cluster}.{instance}"),
            json!({"docker_image": format!("services-{service}:paasta-{SHA}"), "git_sha": SHA, "image_version": null}),
        );
        controls.insert(
            format!("{service}:{cluster}.{instance}"),
            json!({"desired_state": "start", "force_bounce": null}),
        );
    }
    json!({"v1": {}, "v2": {"deployments": groups, "controls": controls}}).to_string()
}

struct Env {
    kube: Kube,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    test: &'static str,
    cluster: String,
    /// Where the Flink objects live (`kinds[].namespace`).
    namespace: String,
}

impl Env {
    /// `None` (the test is skipped) unless `FLINK_GITOPS_E2E_KUBECONFIG` is set.
    fn start(test: &'static str) -> Option<Env> {
        Env::start_in(test, NAMESPACE)
    }

    /// [`Env::start`] with the Flink objects in `namespace`; any other
    /// namespace than `paasta-flinks` is deleted before and after the test.
    fn start_in(test: &'static str, namespace: &str) -> Option<Env> {
        // The tests are ignored by default; run with `--ignored`, they need
        // a cluster, and a missing one is a failure, never a pass.
        let Some(kubeconfig) = std::env::var_os(KUBECONFIG_VAR).map(PathBuf::from) else {
            panic!(
                "{KUBECONFIG_VAR} is not set: {test} needs a Kubernetes API server (see the header of tests/e2e.rs)"
            );
        };
        assert!(
            test.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "test ids are lowercase letters and digits: {test}"
        );
        if let Err(error) = READY.get_or_init(|| setup(&kubeconfig)) {
            panic!("e2e cluster setup failed: {error}");
        }
        let kube = Kube::connect(&kubeconfig).unwrap_or_else(|e| panic!("{e}"));
        let env = Env {
            kube,
            kubeconfig,
            dir: tempfile::tempdir().expect("tempdir"),
            test,
            cluster: format!("e2e-{test}"),
            namespace: namespace.to_owned(),
        };
        env.clean();
        wait_for(
            &format!("the leftovers of an earlier run of {test} to go"),
            Duration::from_secs(180),
            || env.is_clean(),
        );
        std::fs::create_dir_all(env.path("soa")).expect("mkdir soa");
        env.write_settings(&[], &[], "");
        Some(env)
    }

    /// Every object of this test starts with this.
    fn prefix(&self) -> String {
        format!("e2e--{}--", self.test)
    }

    fn namespaces(&self) -> Vec<&str> {
        let mut namespaces = vec![NAMESPACE];
        if self.namespace != NAMESPACE {
            namespaces.push(&self.namespace);
        }
        namespaces
    }

    /// Deletes this test's Flink objects, Jobs, Events and own namespace;
    /// never fails.
    fn clean(&self) {
        let prefix = self.prefix();
        for namespace in self.namespaces() {
            for collection in [flinks_path(namespace), jobs_path(namespace)] {
                for name in self.kube.names_in(&collection, &prefix) {
                    self.kube.delete_quietly(&format!("{collection}/{name}"));
                }
            }
            let events = events_path(namespace);
            if let Ok(reply) = self.kube.request("GET", &events, None, Vec::new(), None) {
                for event in items(&reply.body) {
                    let about = event.pointer("/involvedObject/name").and_then(Json::as_str);
                    if let (Some(about), Some(name)) = (
                        about,
                        event.pointer("/metadata/name").and_then(Json::as_str),
                    ) && about.starts_with(&prefix)
                    {
                        self.kube.delete_quietly(&format!("{events}/{name}"));
                    }
                }
            }
        }
        if self.namespace != NAMESPACE {
            self.kube
                .delete_quietly(&format!("/api/v1/namespaces/{}", self.namespace));
        }
    }

    fn is_clean(&self) -> bool {
        let prefix = self.prefix();
        let objects_gone = self.namespaces().iter().all(|namespace| {
            self.kube
                .names_in(&flinks_path(namespace), &prefix)
                .is_empty()
                && self
                    .kube
                    .names_in(&jobs_path(namespace), &prefix)
                    .is_empty()
        });
        objects_gone
            && (self.namespace == NAMESPACE
                || self
                    .kube
                    .get(&format!("/api/v1/namespaces/{}", self.namespace))
                    .code
                    == 404)
    }

    // -- soa-configs and flink-gitops.yaml ---------------------------------

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// `flink-gitops.yaml` for this test's cluster: extra `apply` and
    /// `prune` keys (the suspended shutdown Job is always the template),
    /// then `rest` verbatim.
    fn write_settings(&self, apply: &[&str], prune: &[&str], rest: &str) {
        let apply: Vec<String> = std::iter::once("retry_attempts: 3")
            .chain(apply.iter().copied())
            .map(str::to_owned)
            .collect();
        let prune: Vec<String> = [
            format!("job_template: {SUSPENDED_JOB}"),
            "grace: 0s".to_owned(),
        ]
        .into_iter()
        .chain(prune.iter().map(|s| (*s).to_owned()))
        .collect();
        self.write(
            "flink-gitops.yaml",
            &format!(
                "cluster: {}\ndocker_registry: registry.example:443\napply: {{{}}}\nprune: {{{}}}\n{rest}",
                self.cluster,
                apply.join(", "),
                prune.join(", ")
            ),
        );
    }

    /// This test's service `e2e_<test>_<suffix>`.
    fn service(&self, suffix: &str) -> String {
        format!("e2e_{}_{suffix}", self.test)
    }

    /// The object name of an instance, sanitised as PaaSTA does.
    fn name(&self, service: &str, instance: &str) -> String {
        format!("{}-{instance}", service.replace('_', "--"))
    }

    /// A service with its instance file and a `deployments.json` that
    /// deploys `deployed`.
    fn add_service(&self, service: &str, instances: &str, deployed: &[&str]) {
        self.write_instances(service, instances);
        self.write(
            &format!("soa/{service}/deployments.json"),
            &deployments(service, &self.cluster, deployed),
        );
    }

    /// Service `a` with [`TWO`]'s instances and a `deployments.json` that
    /// deploys `deployed`; returns the service.
    fn add_two(&self, deployed: &[&str]) -> String {
        let a = self.service("a");
        self.add_service(&a, &TWO, deployed);
        a
    }

    /// [`Self::add_two`] deploying `main` and `canary`, and service `b`
    /// with `b_instances` deploying `main`: both services.
    fn add_a_and_b(&self, b_instances: &str) -> (String, String) {
        let a = self.add_two(&["main", "canary"]);
        let b = self.service("b");
        self.add_service(&b, b_instances, &["main"]);
        (a, b)
    }

    /// [`Self::add_two`] deploying `main` only, applied: the service and
    /// the object name of `main`.
    fn applied_main(&self) -> (String, String) {
        let a = self.add_two(&["main"]);
        self.apply();
        let name = self.name(&a, "main");
        (a, name)
    }

    fn write_instances(&self, service: &str, instances: &str) {
        self.write(
            &format!("soa/{service}/flink-{}.yaml", self.cluster),
            instances,
        );
    }

    fn remove_service(&self, service: &str) {
        std::fs::remove_dir_all(self.path(&format!("soa/{service}"))).expect("rm service");
    }

    // -- the binary ----------------------------------------------------------

    fn command(&self, command: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flink-gitops"));
        cmd.arg(command)
            .args(["--soa-dir", path_str(&self.path("soa"))])
            .args(["--config", path_str(&self.path("flink-gitops.yaml"))])
            .env_remove("KUBECONFIG")
            .env_remove("FLINK_GITOPS_CONFIG")
            .env_remove("FLINK_GITOPS_SOA_DIR");
        cmd
    }

    /// `diff` or `apply` against the cluster.
    fn run(&self, command: &str, extra: &[&str]) -> Run {
        let output = self
            .command(command)
            .args(["--kubeconfig", path_str(&self.kubeconfig)])
            .args(extra)
            .output()
            .expect("run flink-gitops");
        Run::from_output(output)
    }

    fn apply(&self) -> Run {
        let run = self.run("apply", &[]);
        assert_eq!(run.code, 0, "apply failed:\n{}", run.text());
        run
    }

    fn prune(&self) -> Run {
        self.run("apply", &["--prune"])
    }

    /// `diff --exit-code` (and `extra`) finds nothing to do.
    fn assert_in_sync(&self, extra: &[&str]) {
        let diff = self.run("diff", &[&["--exit-code"], extra].concat());
        assert_eq!(diff.code, 0, "{}", diff.text());
    }

    /// What `render -o json` prints: the objects PaaSTA would write.
    fn render(&self) -> Vec<Json> {
        let output = self
            .command("render")
            .args(["-o", "json"])
            .output()
            .expect("render");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let list: Json = serde_json::from_slice(&output.stdout).expect("json list");
        items(&list)
    }

    fn rendered(&self, name: &str) -> Json {
        self.render()
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not rendered"))
    }

    // -- Flink objects ---------------------------------------------------------

    fn flink_url(&self, name: &str) -> String {
        format!("{}/{name}", flinks_path(&self.namespace))
    }

    fn get_flink(&self, name: &str) -> Option<Json> {
        self.kube.object(&self.flink_url(name))
    }

    fn live(&self, name: &str) -> Json {
        self.get_flink(name)
            .unwrap_or_else(|| panic!("{name} does not exist"))
    }

    fn version(&self, name: &str) -> String {
        text(&self.live(name), "/metadata/resourceVersion").to_owned()
    }

    fn versions(&self, names: &[String]) -> Vec<String> {
        names.iter().map(|n| self.version(n)).collect()
    }

    /// The names of this test's Flink objects and their `resourceVersion`s.
    fn all_versions(&self) -> (Vec<String>, Vec<String>) {
        let names = self.flink_names();
        let versions = self.versions(&names);
        (names, versions)
    }

    /// The names of this test's Flink objects in its namespace.
    fn flink_names(&self) -> Vec<String> {
        let mut names = self
            .kube
            .names_in(&flinks_path(&self.namespace), &self.prefix());
        names.sort();
        names
    }

    /// A write of the Kubernetes Python client: no field manager, its user
    /// agent; fails the test unless the answer is `expected`.
    fn write_as_paasta(&self, method: &str, uri: &str, object: &Json, expected: u16) {
        let reply = self
            .kube
            .request(
                method,
                uri,
                Some("application/json"),
                object.to_string().into_bytes(),
                Some(PAASTA_USER_AGENT),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply.code, expected, "{}", reply.body);
    }

    /// PaaSTA's `create_namespaced_custom_object`: a POST without a
    /// field manager, from the Python client.
    fn create_as_paasta(&self, object: &Json) {
        self.write_as_paasta("POST", &flinks_path(&self.namespace), object, 201);
    }

    /// PaaSTA's `replace_namespaced_custom_object`: a PUT of the whole
    /// object (with the live `resourceVersion` unless it has one).
    fn replace_as_paasta(&self, mut object: Json) {
        let name = text(&object, "/metadata/name").to_owned();
        if object.pointer("/metadata/resourceVersion").is_none() {
            object["metadata"]["resourceVersion"] = json!(self.version(&name));
        }
        self.write_as_paasta("PUT", &self.flink_url(&name), &object, 200);
    }

    /// `paasta stop`: PaaSTA's API replaces the whole object with both
    /// `desired_state` annotations set to `stop`.
    fn stop_as_paasta(&self, mut object: Json) {
        for key in ["paasta.yelp.com/desired_state", "yelp.com/desired_state"] {
            object["metadata"]["annotations"][key] = json!("stop");
        }
        self.replace_as_paasta(object);
    }

    /// A hand edit: a JSON merge patch (`kubectl patch --type merge`).
    fn merge_patch_as(&self, manager: &str, name: &str, patch: &Json) {
        self.kube.ok(
            "PATCH",
            &format!("{}?fieldManager={manager}", self.flink_url(name)),
            Some("application/merge-patch+json"),
            Some(patch),
        );
    }

    /// A server-side apply by another writer (the operator).
    fn apply_as(&self, manager: &str, config: &Json) {
        let name = text(config, "/metadata/name");
        self.kube.ok(
            "PATCH",
            &format!("{}?fieldManager={manager}&force=true", self.flink_url(name)),
            Some("application/apply-patch+yaml"),
            Some(config),
        );
    }

    /// A Flink object with this name but none of PaaSTA's labels.
    fn create_unlabelled(&self, name: &str, spec: &Json) {
        self.kube.ok(
            "POST",
            &format!("{}?fieldManager=someone", flinks_path(&self.namespace)),
            Some("application/json"),
            Some(&json!({"apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
                         "metadata": {"name": name, "namespace": self.namespace}, "spec": spec})),
        );
    }

    /// The reasons of the Events recorded about `object` (by uid).
    fn event_reasons(&self, object: &Json) -> Vec<String> {
        let name = text(object, "/metadata/name");
        let uid = text(object, "/metadata/uid");
        self.kube
            .select(
                &events_path(&self.namespace),
                "fieldSelector",
                &format!("involvedObject.name={name}"),
            )
            .iter()
            .filter(|e| e.pointer("/involvedObject/uid").and_then(Json::as_str) == Some(uid))
            .filter_map(|e| e["reason"].as_str().map(str::to_owned))
            .collect()
    }

    // -- shutdown Jobs ---------------------------------------------------------

    fn job_url(&self, name: &str) -> String {
        format!("{}/{name}", jobs_path(&self.namespace))
    }

    fn job(&self, name: &str) -> Option<Json> {
        self.kube.object(&self.job_url(name))
    }

    /// The Jobs carrying this test's cluster label (shutdown Jobs copy it).
    fn jobs(&self) -> Vec<Json> {
        self.kube.select(
            &jobs_path(&self.namespace),
            "labelSelector",
            &format!("paasta.yelp.com/cluster={}", self.cluster),
        )
    }

    fn job_uids(&self) -> Vec<String> {
        let mut uids: Vec<String> = self
            .jobs()
            .iter()
            .map(|j| text(j, "/metadata/uid").to_owned())
            .collect();
        uids.sort();
        uids
    }

    fn delete_job(&self, name: &str) {
        self.kube.ok(
            "DELETE",
            &self.job_url(name),
            Some("application/json"),
            Some(&serde_json::from_str(BACKGROUND).expect("json")),
        );
        self.wait_job_gone(name);
    }

    fn wait_job_gone(&self, name: &str) {
        wait_for(
            &format!("Job {name} to be deleted"),
            Duration::from_secs(90),
            || self.job(name).is_none(),
        );
    }

    /// Plays the Job controller: marks the Job `Complete` or `Failed` through
    /// its status subresource, with the interim condition newer API servers
    /// require first (`SuccessCriteriaMet`, `FailureTarget`), or without it
    /// where an older one refuses it.
    fn finish_job(&self, name: &str, complete: bool) {
        let job = self.job(name).unwrap_or_else(|| panic!("no Job {name}"));
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let start = job
            .pointer("/status/startTime")
            .and_then(Json::as_str)
            .map_or_else(|| now.clone(), str::to_owned);
        // RFC 3339 in UTC with seconds compares as text.
        let end = if start > now {
            start.clone()
        } else {
            now.clone()
        };
        let condition = |kind: &str, reason: &str| {
            json!({"type": kind, "status": "True", "reason": reason, "message": "set by the flink-gitops e2e test",
                   "lastProbeTime": end, "lastTransitionTime": end})
        };
        let existing: Vec<Json> = job
            .pointer("/status/conditions")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        let (interim, terminal) = if complete {
            (
                condition("SuccessCriteriaMet", "CompletionsReached"),
                condition("Complete", "CompletionsReached"),
            )
        } else {
            (
                condition("FailureTarget", "BackoffLimitExceeded"),
                condition("Failed", "BackoffLimitExceeded"),
            )
        };
        let mut refusals = Vec::new();
        for added in [vec![interim, terminal.clone()], vec![terminal]] {
            let mut status = json!({"startTime": start, "active": 0});
            if complete {
                status["succeeded"] = json!(1);
                status["completionTime"] = json!(end);
            } else {
                status["failed"] = json!(1);
            }
            status["conditions"] = Json::Array(existing.iter().cloned().chain(added).collect());
            let reply = self.kube.call(
                "PATCH",
                &format!("{}/status", self.job_url(name)),
                Some("application/merge-patch+json"),
                Some(&json!({ "status": status })),
            );
            match reply.code {
                200 => return,
                422 => refusals.push(reply.body),
                code => panic!("PATCH Job {name} status: {code} {}", reply.body),
            }
        }
        panic!("the API server refused to finish Job {name}: {refusals:?}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.clean();
    }
}

// ---------------------------------------------------------------------------
// Plan/apply (tests/apply_scenarios.rs).

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_fresh_objects_are_ours_and_a_second_run_writes_nothing() {
    let Some(env) = Env::start("create") else {
        return;
    };
    let (a, b) = env.add_a_and_b("main: {job_type: stateless, parallelism: 2.0}\n");
    let run = env.apply();
    assert_eq!(count(&run.stdout, "created"), 3, "{}", run.text());

    let names = [
        env.name(&a, "main"),
        env.name(&a, "canary"),
        env.name(&b, "main"),
    ];
    for name in &names {
        let live = env.live(name);
        let rendered = env.rendered(name);
        assert_eq!(
            numbers_as_floats(&live["spec"]),
            numbers_as_floats(&rendered["spec"]),
            "{name}"
        );
        assert_eq!(
            live["metadata"]["labels"], rendered["metadata"]["labels"],
            "{name}"
        );
        assert_eq!(
            live["metadata"]["annotations"], rendered["metadata"]["annotations"],
            "{name}"
        );
        assert_eq!(
            managers(&live),
            [pair("flink-gitops", "Apply")],
            "one server-side apply by our manager: {}",
            live["metadata"]["managedFields"]
        );
        assert!(
            env.event_reasons(&live).contains(&"Created".to_owned()),
            "a Created Event on {name}"
        );
    }
    let main = env.live(&names[0]);
    assert_eq!(main["metadata"]["labels"]["paasta.yelp.com/git_sha"], SHA);
    assert!(
        text(&main, "/metadata/labels/paasta.yelp.com~1config_sha").starts_with("config"),
        "{main}"
    );

    let versions = env.versions(&names);
    let run = env.apply();
    assert_eq!(count(&run.stdout, "unchanged"), 3, "{}", run.text());
    assert_eq!(count(&run.stdout, "updated"), 0, "{}", run.text());
    assert_eq!(
        env.versions(&names),
        versions,
        "in sync: nothing is written"
    );
    env.assert_in_sync(&[]);
    env.assert_in_sync(&["--service", &a]);
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_one_instance_edited_in_git_is_the_only_write() {
    let Some(env) = Env::start("oneedit") else {
        return;
    };
    let (a, b) = env.add_a_and_b("main: {job_type: stateless, parallelism: 2}\n");
    env.apply();
    let untouched = [env.name(&a, "main"), env.name(&a, "canary")];
    let versions = env.versions(&untouched);

    env.write_instances(&b, "main: {job_type: stateless, parallelism: 4}\n");
    let run = env.apply();
    assert_eq!(count(&run.stdout, "updated"), 1, "{}", run.text());
    assert_eq!(count(&run.stdout, "unchanged"), 2, "{}", run.text());
    assert_eq!(
        env.live(&env.name(&b, "main"))["spec"]["parallelism"],
        json!(4)
    );
    assert_eq!(
        env.versions(&untouched),
        versions,
        "the others are not written"
    );
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_a_key_removed_in_git_is_removed_live() {
    let Some(env) = Env::start("removal") else {
        return;
    };
    let a = env.add_two(&["main", "canary"]);
    env.apply();
    env.write_instances(
        &a,
        &TWO.replace("    execution.checkpointing.interval: '60000'\n", "")
            .replace("instances: 2", "instances: 3"),
    );
    let run = env.apply();
    assert_eq!(count(&run.stdout, "updated"), 2, "{}", run.text());
    for instance in ["main", "canary"] {
        let live = env.live(&env.name(&a, instance));
        assert_eq!(
            live["spec"]["flink_conf"],
            json!({"state.backend.type": "rocksdb"}),
            "{instance}"
        );
        assert_eq!(live["spec"]["taskmanager"]["instances"], json!(3));
    }
    env.assert_in_sync(&[]);
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_a_hand_edit_is_reported_as_drift_and_corrected() {
    let Some(env) = Env::start("drift") else {
        return;
    };
    let (_, name) = env.applied_main();
    let config_sha = env.live(&name)["metadata"]["labels"]["paasta.yelp.com/config_sha"].clone();
    env.merge_patch_as(
        "kubectl-edit",
        &name,
        &json!({"spec": {"taskmanager": {"instances": 9}},
                "metadata": {"annotations": {"other/note": "x"}}}),
    );

    let diff = env.run("diff", &["--exit-code"]);
    assert_eq!(diff.code, 1, "{}", diff.text());
    assert!(
        diff.stdout.contains("drift at spec.taskmanager.instances"),
        "{}",
        diff.stdout
    );
    assert!(diff.stdout.contains("-    instances: 9"), "{}", diff.stdout);
    assert!(diff.stdout.contains("+    instances: 2"), "{}", diff.stdout);

    let run = env.apply();
    assert_eq!(count(&run.stdout, "updated"), 1, "{}", run.text());
    let live = env.live(&name);
    assert_eq!(live["spec"]["taskmanager"]["instances"], json!(2));
    assert_eq!(
        annotation(&live, "other/note"),
        Some("x"),
        "another writer's annotation stays"
    );
    assert_eq!(
        live["metadata"]["labels"]["paasta.yelp.com/config_sha"], config_sha,
        "a drift correction is no config change"
    );
    assert!(
        env.event_reasons(&live)
            .contains(&"DriftCorrected".to_owned()),
        "a DriftCorrected Event"
    );
    env.assert_in_sync(&[]);
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_foreign_annotations_and_the_operator_status_survive() {
    let Some(env) = Env::start("foreign") else {
        return;
    };
    let (a, name) = env.applied_main();
    env.apply_as(
        "flink-operator",
        &json!({"apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
                "metadata": {"name": name, "namespace": NAMESPACE,
                             "annotations": {"flink.yelp.com/dashboard_url": "http://dash/main"}}}),
    );
    env.kube.ok(
        "PATCH",
        &format!(
            "{}/status?fieldManager=flink-operator",
            env.flink_url(&name)
        ),
        Some("application/merge-patch+json"),
        Some(&json!({"status": {"state": "running"}})),
    );
    assert_eq!(env.live(&name)["status"], json!({"state": "running"}));

    env.write_instances(&a, &TWO.replace("cpus: 1,", "cpus: 2,"));
    let run = env.apply();
    assert_eq!(count(&run.stdout, "updated"), 1, "{}", run.text());
    let live = env.live(&name);
    assert_eq!(live["spec"]["taskmanager"]["cpus"], json!(2));
    assert_eq!(
        annotation(&live, "flink.yelp.com/dashboard_url"),
        Some("http://dash/main")
    );
    assert_eq!(live["status"], json!({"state": "running"}));
    assert!(
        managers(&live).contains(&pair("flink-operator", "Apply")),
        "{}",
        live["metadata"]["managedFields"]
    );
}

/// PaaSTA created the object (POST), later replaced it on a config change
/// (PUT), and `paasta stop` replaced it again; flink-gitops, rendering the
/// same objects, takes over without a write; its first write moves PaaSTA's
/// field ownership to its own `Apply` entry, so a key removed in git is
/// removed live.
#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_paasta_created_objects_are_taken_over_without_a_write() {
    let Some(env) = Env::start("takeover") else {
        return;
    };
    let a = env.service("a");
    let name = env.name(&a, "main");
    env.add_service(
        &a,
        "main: {job_type: stateful, parallelism: 2, taskmanager: {instances: 2}, flink_conf: {a: '1', b: '2'}}\n",
        &["main"],
    );
    for object in env.render() {
        env.create_as_paasta(&object);
    }
    env.write_instances(
        &a,
        "main: {job_type: stateful, parallelism: 2, taskmanager: {instances: 3}, flink_conf: {a: '1', b: '2'}}\n",
    );
    for object in env.render() {
        env.replace_as_paasta(object);
    }
    let seeded = env.live(&name);
    assert_eq!(
        managers(&seeded),
        [pair("OpenAPI-Generator", "Update")],
        "the API server names the Python client's writes after its user agent: {}",
        seeded["metadata"]["managedFields"]
    );
    assert_eq!(seeded["spec"]["taskmanager"]["instances"], json!(3));

    // The takeover itself writes nothing: no spec, label or config_sha
    // change, no restart, ownership untouched.
    let diff = env.run("diff", &["--exit-code"]);
    assert_eq!(diff.code, 0, "byte-identical rendering:\n{}", diff.text());
    let run = env.apply();
    assert_eq!(count(&run.stdout, "unchanged"), 1, "{}", run.text());
    assert_eq!(count(&run.stdout, "created"), 0, "{}", run.text());
    assert_eq!(count(&run.stdout, "updated"), 0, "{}", run.text());
    let after = env.live(&name);
    for pointer in [
        "/metadata/resourceVersion",
        "/metadata/generation",
        "/metadata/managedFields",
        "/metadata/labels",
        "/metadata/annotations",
        "/spec",
    ] {
        assert_eq!(after.pointer(pointer), seeded.pointer(pointer), "{pointer}");
    }

    // `paasta stop`: PaaSTA's API replaces the whole object with both
    // desired_state annotations set; a stop is not drift.
    env.stop_as_paasta(after);
    let version = env.version(&name);
    let run = env.apply();
    assert_eq!(count(&run.stdout, "unchanged"), 1, "{}", run.text());
    assert_eq!(env.version(&name), version, "a stop alone is not drift");
    assert_eq!(
        managers(&env.live(&name)),
        [pair("OpenAPI-Generator", "Update")]
    );

    // Keys PaaSTA wrote are dropped in git: the first write takes the
    // ownership over (one JSON patch of managedFields), then applies.
    env.write_instances(
        &a,
        "main: {job_type: stateful, taskmanager: {instances: 3}, flink_conf: {a: '1'}}\n",
    );
    let desired = env.rendered(&name);
    let run = env.apply();
    assert_eq!(count(&run.stdout, "updated"), 1, "{}", run.text());
    let live = env.live(&name);
    assert!(live["spec"].get("parallelism").is_none(), "{live}");
    assert_eq!(
        numbers_as_floats(&live["spec"]),
        numbers_as_floats(&desired["spec"])
    );
    assert_eq!(live["metadata"]["labels"], desired["metadata"]["labels"]);
    assert_eq!(
        annotation(&live, "paasta.yelp.com/desired_state"),
        Some("running"),
        "a config change resets the stop, as PaaSTA does"
    );
    assert_eq!(
        managers(&live),
        [pair("flink-gitops", "Apply")],
        "PaaSTA's ownership moved to ours: {}",
        live["metadata"]["managedFields"]
    );
    env.assert_in_sync(&[]);
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_a_live_stop_is_kept_until_the_config_changes() {
    let Some(env) = Env::start("stop") else {
        return;
    };
    let (a, name) = env.applied_main();
    env.stop_as_paasta(env.live(&name));

    let version = env.version(&name);
    env.apply();
    assert_eq!(env.version(&name), version, "a stop alone is not drift");

    // A hand edit is corrected, the stop stays.
    env.merge_patch_as(
        "kubectl-edit",
        &name,
        &json!({"spec": {"job_type": "stateless"}}),
    );
    env.apply();
    let live = env.live(&name);
    assert_eq!(live["spec"]["job_type"], json!("stateful"));
    assert_desired_state(&live, "stop");

    // A config change resets it to running, as PaaSTA does.
    env.write_instances(&a, &TWO.replace("instances: 2", "instances: 3"));
    env.apply();
    let live = env.live(&name);
    assert_desired_state(&live, "running");
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_dry_run_stores_nothing() {
    let Some(env) = Env::start("dryrun") else {
        return;
    };
    let a = env.add_two(&["main", "canary"]);
    let run = env.run("apply", &["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(run.stdout.contains("dry run"), "{}", run.stdout);
    assert!(env.flink_names().is_empty(), "{:?}", env.flink_names());

    env.apply();
    let name = env.name(&a, "main");
    let before = env.live(&name);
    env.write_instances(&a, &TWO.replace("cpus: 1,", "cpus: 2,"));
    let run = env.run("apply", &["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.text());
    let after = env.live(&name);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(after["spec"]["taskmanager"]["cpus"], json!(1));
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_diff_exit_codes_and_json_schema() {
    let Some(env) = Env::start("diff") else {
        return;
    };
    let a = env.add_two(&["main", "canary"]);
    let pending = env.run("diff", &["--exit-code", "--output", "json"]);
    assert_eq!(pending.code, 1, "{}", pending.text());
    let plan: Json = serde_json::from_str(&pending.stdout).expect("json");
    assert_eq!(plan["schema"], "flink-gitops/plan/v1");
    assert_eq!(plan["summary"]["create"], 2);
    assert!(env.flink_names().is_empty(), "diff never writes");

    env.apply();
    env.assert_in_sync(&[]);

    env.write_instances(&a, "main: [not, a, mapping]\n");
    let broken = env.run("diff", &["--exit-code"]);
    assert_eq!(
        broken.code,
        2,
        "an unknown service is an error: {}",
        broken.text()
    );
    assert!(broken.stdout.contains("blocked"), "{}", broken.stdout);
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_an_unlabelled_object_with_our_name_is_never_touched() {
    let Some(env) = Env::start("unlabelled") else {
        return;
    };
    let a = env.add_two(&["main", "canary"]);
    let name = env.name(&a, "main");
    env.create_unlabelled(&name, &json!({"x": 1}));
    let version = env.version(&name);

    let run = env.run("apply", &[]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(run.stderr.contains("not ours"), "{}", run.stderr);
    assert_eq!(
        count(&run.stdout, "created"),
        1,
        "the other is created: {}",
        run.text()
    );
    let live = env.live(&name);
    assert_eq!(live["spec"], json!({"x": 1}));
    assert_eq!(text(&live, "/metadata/resourceVersion"), version);
    assert!(live["metadata"].get("labels").is_none(), "{live}");
    assert!(env.get_flink(&env.name(&a, "canary")).is_some());
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_a_missing_namespace_is_created_when_configured() {
    let namespace = "flink-gitops-e2e-namespace";
    let Some(env) = Env::start_in("namespace", namespace) else {
        return;
    };
    env.write_settings(
        &["create_namespaces: true"],
        &[],
        &format!("kinds: [{{file_prefix: flink, namespace: {namespace}}}]\n"),
    );
    let a = env.add_two(&["main"]);
    let run = env.apply();
    assert!(
        run.stdout
            .contains(&format!("created namespace {namespace}")),
        "{}",
        run.text()
    );
    let created = env.kube.ok(
        "GET",
        &format!("/api/v1/namespaces/{namespace}"),
        None,
        None,
    );
    assert_eq!(created["metadata"]["labels"]["name"], namespace);
    assert_eq!(
        created["metadata"]["labels"]["paasta.yelp.com/managed"],
        "true"
    );
    let live = env.live(&env.name(&a, "main"));
    assert_eq!(live["metadata"]["namespace"], namespace);

    let again = env.apply();
    assert!(
        !again.stdout.contains("created namespace"),
        "{}",
        again.text()
    );
    assert_eq!(count(&again.stdout, "unchanged"), 1, "{}", again.text());
}

// ---------------------------------------------------------------------------
// Prune (tests/prune_scenarios.rs).

/// Service `a` with `main` and `canary` applied, then `canary` removed
/// from git. Returns the service and both object names.
fn with_canary_removed(env: &Env) -> (String, String, String) {
    let a = env.add_two(&["main", "canary"]);
    env.apply();
    env.write_instances(&a, ONE);
    let (main, canary) = (env.name(&a, "main"), env.name(&a, "canary"));
    (a, main, canary)
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_prune_signals_waits_for_the_job_then_deletes() {
    let Some(env) = Env::start("prune") else {
        return;
    };
    let (_, main, canary) = with_canary_removed(&env);
    let main_version = env.version(&main);
    let canary_version = env.version(&canary);
    let job_name = format!("{canary}-shutdown");

    // Without --prune the orphan is only listed.
    let listed = env.run("apply", &[]);
    assert_eq!(listed.code, 0, "{}", listed.text());
    assert!(
        listed.stdout.contains("not executed: pass --prune"),
        "{}",
        listed.stdout
    );
    assert_eq!(count(&listed.stdout, "orphaned"), 1, "{}", listed.stdout);
    assert_eq!(env.version(&canary), canary_version);
    let diff = env.run("diff", &["--exit-code"]);
    assert_eq!(diff.code, 1, "{}", diff.text());
    assert!(
        diff.stdout.contains(&format!(
            "stops the jobs with a savepoint, then deletes {NAMESPACE}/{canary}"
        )),
        "{}",
        diff.stdout
    );
    assert!(env.jobs().is_empty());

    // Signal and one shutdown Job; nothing deleted.
    let run = env.prune();
    assert_eq!(run.code, 0, "{}", run.text());
    let live = env.live(&canary);
    assert_desired_state(&live, "stop");
    assert!(
        annotation(&live, "flink-gitops/prune-requested-at").is_some(),
        "{live}"
    );
    assert_eq!(
        annotation(&live, "flink-gitops/prune-revision"),
        Some("local")
    );
    assert!(
        managers(&live).contains(&pair("flink-gitops-prune", "Apply")),
        "{}",
        live["metadata"]["managedFields"]
    );
    let job = env.job(&job_name).expect("the shutdown Job");
    assert_eq!(
        job["metadata"]["ownerReferences"][0]["uid"],
        live["metadata"]["uid"]
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "Flink");
    assert_eq!(
        job["metadata"]["labels"]["paasta.yelp.com/instance"],
        "canary"
    );
    assert_eq!(
        job["metadata"]["labels"]["flink-gitops/shutdown-of"],
        canary
    );
    assert_eq!(env.jobs().len(), 1);
    assert!(
        env.event_reasons(&live)
            .contains(&"PruneRequested".to_owned()),
        "a PruneRequested Event"
    );
    assert_eq!(env.version(&main), main_version, "main is untouched");

    // The Job runs: the next run waits and creates no second Job.
    let uids = env.job_uids();
    let waiting = env.prune();
    assert_eq!(waiting.code, 0, "{}", waiting.text());
    assert!(waiting.stdout.contains("waiting"), "{}", waiting.stdout);
    assert_eq!(env.job_uids(), uids);
    let json_run = env.run("diff", &["--output", "json"]);
    let plan: Json = serde_json::from_str(&json_run.stdout).expect("json");
    let entry = &plan["prunes"]["entries"][0];
    assert_eq!(entry["action"], "waiting", "{plan}");
    assert_eq!(entry["job"], json!({"name": job_name, "state": "running"}));

    // Stopped after the signal, before the Job: the next run creates it.
    env.delete_job(&job_name);
    let recreated = env.prune();
    assert_eq!(recreated.code, 0, "{}", recreated.text());
    assert!(env.job(&job_name).is_some(), "{}", recreated.text());
    assert_ne!(env.job_uids(), uids);

    // The Job completes: the resource is deleted, and the garbage collector
    // takes the Job with it.
    env.finish_job(&job_name, true);
    let deleted = env.prune();
    assert_eq!(deleted.code, 0, "{}", deleted.text());
    assert!(env.get_flink(&canary).is_none(), "{}", deleted.text());
    env.wait_job_gone(&job_name);
    assert_eq!(env.version(&main), main_version, "main is untouched");
    assert_eq!(env.flink_names(), [main]);
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_a_failed_job_keeps_the_resource_and_reports_prune_failed() {
    let Some(env) = Env::start("prunefailed") else {
        return;
    };
    let (_, _, canary) = with_canary_removed(&env);
    let job_name = format!("{canary}-shutdown");
    assert_eq!(env.prune().code, 0);
    env.finish_job(&job_name, false);
    let version = env.version(&canary);
    let uids = env.job_uids();

    let run = env.prune();
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(run.stdout.contains("prune-failed"), "{}", run.stdout);
    assert!(run.stdout.contains("PruneFailed"), "{}", run.stdout);
    let live = env.live(&canary);
    assert_eq!(text(&live, "/metadata/resourceVersion"), version);
    assert_eq!(env.job_uids(), uids, "no automatic retry");
    assert!(env.event_reasons(&live).contains(&"PruneFailed".to_owned()));
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_a_job_running_past_the_timeout_is_reported_and_the_resource_kept() {
    let Some(env) = Env::start("prunetimeout") else {
        return;
    };
    let (_, _, canary) = with_canary_removed(&env);
    assert_eq!(env.prune().code, 0);
    env.write_settings(&[], &["timeout: 0s"], "");
    std::thread::sleep(Duration::from_millis(1100));
    let run = env.prune();
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(run.stdout.contains("PruneTimedOut"), "{}", run.stdout);
    assert!(env.get_flink(&canary).is_some());
    assert!(env.job(&format!("{canary}-shutdown")).is_some());
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_an_instance_restored_mid_prune_runs_again_and_its_job_is_deleted() {
    let Some(env) = Env::start("prunecancel") else {
        return;
    };
    let (a, _, canary) = with_canary_removed(&env);
    let job_name = format!("{canary}-shutdown");
    assert_eq!(env.prune().code, 0);
    assert!(env.job(&job_name).is_some());

    env.write_instances(&a, &TWO);
    let run = env.prune();
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(count(&run.stdout, "updated"), 1, "{}", run.text());
    env.wait_job_gone(&job_name);
    let live = env.live(&canary);
    assert_desired_state(&live, "running");
    assert!(
        annotation(&live, "flink-gitops/prune-requested-at").is_none(),
        "{live}"
    );
    assert!(
        annotation(&live, "flink-gitops/prune-revision").is_none(),
        "{live}"
    );
    env.assert_in_sync(&[]);
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_nothing_is_pruned_when_the_service_cannot_be_loaded() {
    let Some(env) = Env::start("prunebroken") else {
        return;
    };
    let a = env.add_two(&["main", "canary"]);
    env.apply();
    let (names, versions) = env.all_versions();
    env.write_instances(&a, "main: {broken: [\n");
    let run = env.prune();
    assert_eq!(run.code, 1, "the broken file is an error: {}", run.text());
    assert_eq!(env.versions(&names), versions);
    assert!(env.jobs().is_empty());
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_nothing_is_pruned_from_an_empty_tree() {
    let Some(env) = Env::start("pruneempty") else {
        return;
    };
    let (a, b) = env.add_a_and_b("main: {job_type: stateless}\n");
    env.apply();
    let (names, versions) = env.all_versions();
    assert_eq!(names.len(), 3);
    env.remove_service(&a);
    env.remove_service(&b);
    let run = env.run("apply", &["--prune", "--allow-mass-prune"]);
    assert_eq!(env.versions(&names), versions, "{}", run.text());
    assert!(env.jobs().is_empty(), "{}", run.text());
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_a_mass_removal_is_blocked_until_confirmed_once() {
    let Some(env) = Env::start("massprune") else {
        return;
    };
    let (a, _) = env.add_a_and_b("main: {job_type: stateless}\n");
    env.apply();
    let (names, versions) = env.all_versions();
    // Two of three instances at once is over the 25% guard.
    env.write_instances(&a, "");
    let blocked = env.prune();
    assert_eq!(blocked.code, 1, "{}", blocked.text());
    assert!(
        blocked.stdout.contains("MassPruneBlocked"),
        "{}",
        blocked.stdout
    );
    assert_eq!(env.versions(&names), versions);
    assert!(env.jobs().is_empty());

    let confirmed = env.run("apply", &["--prune", "--allow-mass-prune"]);
    assert_eq!(confirmed.code, 0, "{}", confirmed.text());
    assert_eq!(env.jobs().len(), 2);
    // Once started, the prunes continue without the flag.
    let uids = env.job_uids();
    let again = env.prune();
    assert_eq!(again.code, 0, "{}", again.text());
    assert_eq!(env.job_uids(), uids, "no new Job");
}

#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_prune_disabled_is_respected() {
    let Some(env) = Env::start("prunedisabled") else {
        return;
    };
    let (_, _, canary) = with_canary_removed(&env);
    env.merge_patch_as(
        "kubectl-annotate",
        &canary,
        &json!({"metadata": {"annotations": {"flink-gitops/prune": "disabled"}}}),
    );
    let version = env.version(&canary);
    let run = env.prune();
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(run.stdout.contains("prune-disabled"), "{}", run.stdout);
    assert_eq!(env.version(&canary), version);
    assert!(env.jobs().is_empty());
}

/// PaaSTA's cleanup_kubernetes_cr decisions with `prune.mode: delete`: a
/// removed instance and a removed service are deleted at once; an instance
/// in YAML without deployments is kept; an object without PaaSTA's labels
/// is never touched.
#[test]
#[ignore = "needs FLINK_GITOPS_E2E_KUBECONFIG"]
fn e2e_delete_mode_reproduces_paasta_cleanup_decisions() {
    let Some(env) = Env::start("prunedelete") else {
        return;
    };
    env.write_settings(
        &[],
        &["mode: delete", "max_per_cycle: 100", "max_fraction: 1.0"],
        "",
    );
    let (a, gone, undeployed) = (
        env.service("a"),
        env.service("gone"),
        env.service("nodeploy"),
    );
    env.add_service(
        &a,
        "main: {job_type: stateful}\nold: {job_type: stateful}\n",
        &["main", "old"],
    );
    env.add_service(&gone, "main: {job_type: stateful}\n", &["main"]);
    env.add_service(&undeployed, "main: {job_type: stateful}\n", &[]);
    let run = env.apply();
    assert_eq!(count(&run.stdout, "created"), 3, "{}", run.text());
    assert_eq!(count(&run.stdout, "skipped"), 1, "{}", run.text());
    // Deployed once by PaaSTA, since gone from deployments.json.
    let kept = env.name(&undeployed, "main");
    env.create_as_paasta(&json!({
        "apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
        "metadata": {"name": kept, "namespace": NAMESPACE, "labels": {
            "paasta.yelp.com/service": undeployed, "paasta.yelp.com/instance": "main",
            "paasta.yelp.com/cluster": env.cluster, "paasta.yelp.com/config_sha": "configdeadbeef"}},
        "spec": {}}));
    let handmade = format!("{}handmade", env.prefix());
    env.create_unlabelled(&handmade, &json!({"team": "x"}));

    env.write_instances(&a, "main: {job_type: stateful}\n");
    env.remove_service(&gone);
    let run = env.prune();
    assert_eq!(run.code, 0, "{}", run.text());
    let mut expected = vec![env.name(&a, "main"), handmade, kept];
    expected.sort();
    assert_eq!(env.flink_names(), expected, "{}", run.text());
    assert!(env.jobs().is_empty(), "delete mode runs no Job");
}
