//! The plan/apply scenarios against a real cluster (kind, k3d), skipped unless
//! `FLINK_GITOPS_E2E_KUBECONFIG` names a kubeconfig. The cluster needs the
//! CRD and the namespace:
//!
//! ```sh
//! kind create cluster --name flink-gitops
//! kind get kubeconfig --name flink-gitops > /tmp/kind.kubeconfig
//! kubectl --kubeconfig /tmp/kind.kubeconfig apply -f deploy/crds/flink.yaml
//! kubectl --kubeconfig /tmp/kind.kubeconfig create namespace paasta-flinks
//! FLINK_GITOPS_E2E_KUBECONFIG=/tmp/kind.kubeconfig cargo test --test e2e -- --test-threads 1
//! ```
//!
//! Every test uses its own service names and deletes its objects at the end.

use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const NAMESPACE: &str = "paasta-flinks";
const SHA: &str = "cccccccccccccccccccccccccccccccccccccccc";

fn kubeconfig() -> Option<PathBuf> {
    std::env::var_os("FLINK_GITOPS_E2E_KUBECONFIG").map(PathBuf::from)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

struct Env {
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    service: String,
    runtime: tokio::runtime::Runtime,
    api: kube::Api<kube::api::DynamicObject>,
}

impl Env {
    fn new(kubeconfig: PathBuf, test: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let api = runtime.block_on(async {
            let file = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
            let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .expect("config");
            let client = kube::Client::try_from(config).expect("client");
            let resource = kube::api::ApiResource {
                group: "yelp.com".into(),
                version: "v1alpha1".into(),
                api_version: "yelp.com/v1alpha1".into(),
                kind: "Flink".into(),
                plural: "flinks".into(),
            };
            kube::Api::namespaced_with(client, NAMESPACE, &resource)
        });
        let env = Env {
            kubeconfig,
            dir: tempfile::tempdir().expect("tempdir"),
            service: format!("e2e_{test}"),
            runtime,
            api,
        };
        env.write_config("main: {job_type: stateful, taskmanager: {instances: 2}, flink_conf: {a: '1', b: '2'}}\n");
        let deployments = json!({"v1": {}, "v2": {
            "deployments": {"e2e.main": {"docker_image": format!("services-x:paasta-{SHA}"), "git_sha": SHA}},
            "controls": {format!("{}:e2e.main", env.service): {"desired_state": "start"}}
        }});
        env.write(
            &format!("soa/{}/deployments.json", env.service),
            &deployments.to_string(),
        );
        env.write(
            "flink-gitops.yaml",
            "cluster: e2e\ndocker_registry: registry.example:443\n",
        );
        env
    }

    fn name(&self) -> String {
        format!("{}-main", self.service.replace('_', "--"))
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn write_config(&self, text: &str) {
        self.write(&format!("soa/{}/flink-e2e.yaml", self.service), text);
    }

    fn run(&self, command: &str, extra: &[&str]) -> Run {
        let path = |p: &Path| p.to_str().expect("utf-8").to_owned();
        let output = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
            .arg(command)
            .args(["--soa-dir", &path(&self.dir.path().join("soa"))])
            .args([
                "--config",
                &path(&self.dir.path().join("flink-gitops.yaml")),
            ])
            .args(["--kubeconfig", &path(&self.kubeconfig)])
            .args(["--service", &self.service])
            .args(extra)
            .output()
            .expect("run");
        Run {
            code: output.status.code().expect("code"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn apply(&self) {
        let run = self.run("apply", &[]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    }

    fn live(&self) -> Json {
        let object = self
            .runtime
            .block_on(self.api.get(&self.name()))
            .expect("get");
        serde_json::to_value(object).expect("json")
    }

    fn patch_as(&self, manager: &str, patch: Json) {
        let params = kube::api::PatchParams {
            field_manager: Some(manager.to_owned()),
            ..Default::default()
        };
        self.runtime
            .block_on(
                self.api
                    .patch(&self.name(), &params, &kube::api::Patch::Merge(&patch)),
            )
            .expect("patch");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self
            .runtime
            .block_on(self.api.delete(&self.name(), &Default::default()));
    }
}

#[test]
fn e2e_create_then_no_writes_then_minimal_updates() {
    let Some(kubeconfig) = kubeconfig() else {
        eprintln!("FLINK_GITOPS_E2E_KUBECONFIG is not set: skipping");
        return;
    };
    let env = Env::new(kubeconfig, "sync");
    env.apply();
    let first = env.live();
    let version = first["metadata"]["resourceVersion"].clone();

    env.apply();
    assert_eq!(
        env.live()["metadata"]["resourceVersion"],
        version,
        "in sync: no write"
    );

    env.write_config(
        "main: {job_type: stateful, taskmanager: {instances: 3}, flink_conf: {a: '1'}}\n",
    );
    env.apply();
    let live = env.live();
    assert_eq!(live["spec"]["taskmanager"]["instances"], json!(3));
    assert_eq!(
        live["spec"]["flink_conf"],
        json!({"a": "1"}),
        "a key removed in git is removed live"
    );
}

#[test]
fn e2e_drift_is_corrected_and_a_stop_is_kept() {
    let Some(kubeconfig) = kubeconfig() else {
        eprintln!("FLINK_GITOPS_E2E_KUBECONFIG is not set: skipping");
        return;
    };
    let env = Env::new(kubeconfig, "drift");
    env.apply();
    env.patch_as(
        "kubectl-edit",
        json!({"spec": {"taskmanager": {"instances": 9}},
               "metadata": {"annotations": {"paasta.yelp.com/desired_state": "stop", "other/note": "x"}}}),
    );
    let diff = env.run("diff", &["--exit-code"]);
    assert_eq!(diff.code, 1, "{}", diff.stdout);
    assert!(
        diff.stdout.contains("drift at spec.taskmanager.instances"),
        "{}",
        diff.stdout
    );
    env.apply();
    let live = env.live();
    assert_eq!(live["spec"]["taskmanager"]["instances"], json!(2));
    assert_eq!(
        live["metadata"]["annotations"]["paasta.yelp.com/desired_state"],
        json!("stop")
    );
    assert_eq!(live["metadata"]["annotations"]["other/note"], json!("x"));
}
